//! The JSON API (issue 19, item 3; the paths of shared/INTERFACE.md), on when `[http]
//! api_token_file` names a token: every request carries `Authorization: Bearer TOKEN` (401
//! without one, 403 with another, compared in constant time).
//!
//!   GET    /api/v1/queue                 the objects of `petrel queue list --json`
//!   GET    /api/v1/queue/ID              the object of `petrel queue show ID --json`
//!   POST   /api/v1/queue/ID/hold | release | flush | bounce
//!   DELETE /api/v1/queue/ID
//!   GET    /api/v1/explain?q=CODE_OR_LINE&lang=en|id     the object of `petrel explain --json`
//!
//! The objects come from the same code as the CLI's, and the actions go through the daemon's
//! queue control as `petrel queue` does. Errors are `{"error": "..."}` with 400, 404 or 409.

use petrel_delivery::control::{Control, ControlError};
use serde_json::json;

use super::http::{Method, Request, Response};
use crate::queue_cli::QueueCommand;

/// What the API needs: the token and the queue control.
pub struct Api {
    pub token: String,
    pub control: Control,
}

fn reply(status: u16, body: String) -> Response {
    Response {
        status,
        headers: Vec::new(),
        body,
        content_type: "application/json",
    }
}

fn error(status: u16, message: &str) -> Response {
    reply(status, format!("{:#}\n", json!({ "error": message })))
}

/// Equal without telling how much matched by how long it took (tokens, CSRF tokens).
pub fn same(given: &[u8], wanted: &[u8]) -> bool {
    given.len() == wanted.len()
        && given
            .iter()
            .zip(wanted)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// Answers a request under `/api/`.
pub async fn respond(request: &Request, api: &Api) -> Response {
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let Some(given) = request
        .authorization
        .as_deref()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
    else {
        let mut response = error(401, "send Authorization: Bearer TOKEN");
        response
            .headers
            .push(("WWW-Authenticate", "Bearer realm=\"petrel\"".to_owned()));
        return response;
    };
    if !same(given.trim().as_bytes(), api.token.as_bytes()) {
        return error(403, "the token is not this server's");
    }
    let parts: Vec<&str> = request
        .path
        .trim_start_matches("/api/v1/")
        .split('/')
        .collect();
    match (request.method, parts.as_slice()) {
        (Method::Get | Method::Head, ["queue"]) => {
            let queue = api.control.queue().clone();
            answer(
                tokio::task::spawn_blocking(move || crate::queue_view::list(queue.as_ref(), true))
                    .await,
                500,
            )
        }
        (Method::Get | Method::Head, ["queue", id]) => {
            let (queue, id) = (api.control.queue().clone(), (*id).to_owned());
            answer(
                tokio::task::spawn_blocking(move || {
                    crate::queue_view::show(queue.as_ref(), &id, true)
                })
                .await,
                404,
            )
        }
        (Method::Post, ["queue", id, action]) => {
            let id = (*id).to_owned();
            let command = match *action {
                "hold" => QueueCommand::Hold { id },
                "release" => QueueCommand::Release { id },
                "flush" => QueueCommand::Flush { id: Some(id) },
                "bounce" => QueueCommand::Bounce { id },
                _ => return error(404, "no such action: hold, release, flush or bounce"),
            };
            act(&api.control, &command).await
        }
        (Method::Delete, ["queue", id]) => {
            act(
                &api.control,
                &QueueCommand::Delete {
                    id: (*id).to_owned(),
                },
            )
            .await
        }
        (Method::Get | Method::Head, ["explain"]) => {
            let Some(query) = request.param("q") else {
                return error(400, "give the code or reply line as q=");
            };
            match crate::explain::as_json(query, request.param("lang").unwrap_or("en")) {
                Ok(text) => reply(200, text),
                Err((2, message)) => error(404, &message),
                Err((_, message)) => error(400, &message),
            }
        }
        (Method::Get | Method::Head | Method::Post | Method::Delete, _) => error(
            404,
            "no such API path; see /api/v1/queue and /api/v1/explain",
        ),
    }
}

/// The JSON text of a view, or the error with `status`.
fn answer(result: Result<Result<String, String>, tokio::task::JoinError>, status: u16) -> Response {
    match result {
        Ok(Ok(text)) => reply(200, text),
        Ok(Err(message)) => error(status, &message),
        Err(_) => error(500, "the request did not finish"),
    }
}

/// Runs a queue action through the control, as `petrel queue` does.
async fn act(control: &Control, command: &QueueCommand) -> Response {
    match crate::queue_cli::act(control, command).await {
        Ok(text) => reply(
            200,
            format!("{:#}\n", json!({ "ok": true, "message": text.trim_end() })),
        ),
        Err(Ok(ControlError::NotInQueue(_))) => error(404, "the message is not in the queue"),
        Err(Ok(busy @ ControlError::Busy { .. })) => error(409, &busy.to_string()),
        Err(Ok(other)) => error(500, &other.to_string()),
        Err(Err(message)) => error(400, &message),
    }
}
