//! The queue console at `/queue/` (issue 19, item 2), on when `[http] console = true`: log in
//! with a user of `[auth] users_file`; see the queue with filters (`filter.rs`), find a message
//! by queue id or Message-ID, read one message's envelope, recipients, every attempt with its
//! reply explained, the TLS of each hop and its headers; hold, release, flush, bounce or
//! delete it through the daemon's queue control, as `petrel queue` and the JSON API do.
//!
//! Safety: only clients in `[http] console_networks` (loopback when not given) get an answer
//! other than 403; a session cookie that scripts cannot read and other sites do not send
//! (`session.rs`); every POST carries the session's CSRF token and, when the browser names
//! one, an `Origin` (or `Referer`) that is this server; five failed logins from an address
//! within five minutes make it wait. The pages are built with maud (`view.rs`).

mod filter;
mod session;
mod view;

use std::net::IpAddr;
use std::sync::Arc;

use petrel_delivery::control::{Control, ControlError};
use petrel_queue::Place;
use petrel_server::ServerSettings;
use petrel_server::network::IpNetwork;
use tokio::sync::watch;

use super::http::{Method, Request, Response};
use crate::queue_cli::QueueCommand;
use filter::Filter;
use session::{Session, Sessions};
use view::Viewer;

/// The most messages the list shows at once.
const LIST_LIMIT: usize = 500;

/// What the console needs: the queue control, the users, who may ask, the sessions.
pub struct Console {
    control: Control,
    settings: watch::Receiver<Arc<ServerSettings>>,
    networks: Vec<IpNetwork>,
    sessions: Sessions,
    /// Password checks running at once (argon2 takes about 19 MiB and tens of ms each).
    checks: tokio::sync::Semaphore,
}

/// How many password checks run at once.
const MAX_CHECKS: usize = 4;

impl Console {
    /// A console acting through `control`, with the users of `settings` (read again on
    /// SIGHUP), for clients in `networks` (loopback when empty).
    pub fn new(
        control: Control,
        settings: watch::Receiver<Arc<ServerSettings>>,
        networks: Vec<IpNetwork>,
    ) -> Console {
        Console {
            control,
            settings,
            networks,
            sessions: Sessions::default(),
            checks: tokio::sync::Semaphore::new(MAX_CHECKS),
        }
    }

    /// The session a cookie names, while its user still has the password it logged in with
    /// (a removed user, or one whose password changed, is logged out).
    fn live_session(&self, cookie: Option<&str>) -> Option<Session> {
        let session = self.sessions.find(cookie)?;
        let users = self.settings.borrow().users.clone();
        if users.hash(&session.user) == Some(session.hash.as_str()) {
            Some(session)
        } else {
            self.sessions.end(cookie);
            None
        }
    }

    fn admits(&self, peer: Option<IpAddr>) -> bool {
        let Some(peer) = peer.map(|ip| ip.to_canonical()) else {
            return false;
        };
        if self.networks.is_empty() {
            peer.is_loopback()
        } else {
            self.networks.iter().any(|network| network.contains(peer))
        }
    }
}

/// Answers a request under `/queue` (a POST's form read into `request.body`).
pub async fn respond(request: &Request, console: &Console) -> Response {
    let mut response = answer(request, console).await;
    // Queue pages are not kept by caches; the browser names this origin on the forms it
    // posts (with "no-referrer" it would send "Origin: null").
    response
        .headers
        .push(("Cache-Control", "no-store".to_owned()));
    response
        .headers
        .push(("Referrer-Policy", "same-origin".to_owned()));
    response
}

async fn answer(request: &Request, console: &Console) -> Response {
    if !console.admits(request.peer) {
        return refused(
            403,
            "The queue console answers only clients in [http] console_networks (loopback unless set).",
        );
    }
    if request.method == Method::Delete {
        return refused(405, "The console takes GET and POST.");
    }
    let path = request.path.as_str();
    if path == "/queue" {
        return Response::redirect("/queue/");
    }
    if path == "/queue/login" {
        return login(request, console).await;
    }
    let session = console.live_session(request.cookie.as_deref());
    if request.method == Method::Post {
        let Some(session) = session else {
            return refused(403, "Log in first: this form has no live session.");
        };
        if let Err(reason) = check_form(request, Some(&session)) {
            return refused(403, reason);
        }
        return post(request, console, &session).await;
    }
    let Some(session) = session else {
        return Response::redirect("/queue/login");
    };
    let viewer = Viewer {
        user: &session.user,
        csrf: &session.csrf,
    };
    match path.trim_start_matches("/queue/") {
        "" => list(request, console, &viewer).await,
        id if !id.contains('/') => message(request, console, &viewer, id).await,
        _ => refused(404, "No such console page."),
    }
}

/// The login form (GET) and a login (POST).
async fn login(request: &Request, console: &Console) -> Response {
    if request.method != Method::Post {
        if console.live_session(request.cookie.as_deref()).is_some() {
            return Response::redirect("/queue/");
        }
        return Response::html(200, view::login(None));
    }
    if let Err(reason) = check_form(request, None) {
        return refused(403, reason);
    }
    let Some(peer) = request.peer else {
        return refused(403, "No client address.");
    };
    if !console.sessions.try_login(peer) {
        return Response::html(
            429,
            view::login(Some(
                "Too many failed logins from your address: wait five minutes.",
            )),
        );
    }
    let form = request.form();
    let field = |name: &str| super::http::field(&form, name).unwrap_or("").to_owned();
    let (user, password) = (field("user"), field("password"));
    let users = console.settings.borrow().users.clone();
    let Ok(_slot) = console.checks.acquire().await else {
        return refused(503, "The console is stopping.");
    };
    let checked = {
        let (user, users) = (user.clone(), users.clone());
        tokio::task::spawn_blocking(move || users.verify(&user, &password)).await
    };
    let hash = users.hash(&user).map(str::to_owned);
    if let (Ok(true), Some(hash)) = (checked, hash) {
        console.sessions.succeeded(peer);
        return match console.sessions.start(&user, &hash) {
            Ok(token) => {
                tracing::info!(%user, %peer, "console: logged in");
                Response::see_other("/queue/", vec![("Set-Cookie", session::set_cookie(&token))])
            }
            Err(error) => refused(500, &format!("Cannot start a session: {error}")),
        };
    }
    tracing::warn!(%user, %peer, "console: failed login");
    Response::html(401, view::login(Some("Wrong user or password.")))
}

/// Whether a posted form comes from this console: the browser's `Origin` (when it names one)
/// is this server, and the form carries the session's CSRF token.
fn check_form(request: &Request, session: Option<&Session>) -> Result<(), &'static str> {
    if let Some(origin) = request.origin.as_deref() {
        let host = request.host.as_deref().unwrap_or("");
        let is_ours = ["http://", "https://"].iter().any(|scheme| {
            origin
                .strip_prefix(scheme)
                .and_then(|rest| rest.strip_prefix(host))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        });
        if host.is_empty() || !is_ours {
            return Err("This form was sent from another site (its Origin is not this server).");
        }
    }
    if let Some(session) = session {
        let form = request.form();
        let given = super::http::field(&form, "csrf").unwrap_or("");
        if !session::same(given.as_bytes(), session.csrf.as_bytes()) {
            return Err(
                "This form's CSRF token is missing or wrong: reload the page and try again.",
            );
        }
    }
    Ok(())
}

/// A checked POST: logout, or an action on a message.
async fn post(request: &Request, console: &Console, session: &Session) -> Response {
    let rest = request.path.trim_start_matches("/queue/");
    if rest == "logout" {
        console.sessions.end(request.cookie.as_deref());
        return Response::see_other(
            "/queue/login",
            vec![("Set-Cookie", session::clear_cookie())],
        );
    }
    let Some((id, action)) = rest.split_once('/') else {
        return refused(404, "No such action.");
    };
    let id = id.to_owned();
    let command = match action {
        "hold" => QueueCommand::Hold { id: id.clone() },
        "release" => QueueCommand::Release { id: id.clone() },
        "flush" => QueueCommand::Flush {
            id: Some(id.clone()),
        },
        "bounce" => QueueCommand::Bounce { id: id.clone() },
        "delete" => QueueCommand::Delete { id: id.clone() },
        _ => {
            return refused(
                404,
                "No such action: hold, release, flush, bounce or delete.",
            );
        }
    };
    match crate::queue_cli::act(&console.control, &command).await {
        Ok(_) => {
            tracing::info!(user = %session.user, queue_id = %id, action, "console: action");
            let location = if action == "delete" {
                format!("/queue/?done=delete&id={id}")
            } else {
                format!("/queue/{id}?done={action}")
            };
            Response::see_other(&location, Vec::new())
        }
        Err(Ok(ControlError::NotInQueue(_))) => refused(404, "The message is not in the queue."),
        Err(Ok(busy @ ControlError::Busy { .. })) => refused(409, &busy.to_string()),
        Err(Ok(other)) => refused(500, &other.to_string()),
        Err(Err(message)) => refused(400, &message),
    }
}

/// The queue page (or, for `q=`, the message it finds).
async fn list(request: &Request, console: &Console, viewer: &Viewer<'_>) -> Response {
    let queue = console.control.queue().clone();
    if let Some(wanted) = request.param("q").map(str::trim).filter(|q| !q.is_empty()) {
        let wanted = wanted.to_owned();
        let found = {
            let wanted = wanted.clone();
            tokio::task::spawn_blocking(move || crate::queue_view::find(queue.as_ref(), &wanted))
                .await
        };
        return match found {
            Ok(Some((id, _, _))) => Response::redirect(&format!("/queue/{}", id.as_str())),
            _ => refused(
                404,
                &format!("No message {wanted:?} in the queue or its history."),
            ),
        };
    }
    let (filter, error) = match Filter::from_query(&request.query) {
        Ok(filter) => (filter, None),
        Err(error) => (Filter::default(), Some(error)),
    };
    let read = {
        let filter = filter.clone();
        tokio::task::spawn_blocking(move || {
            let now = petrel_delivery::scheduler::unix_now();
            let mut total = 0;
            let mut rows = Vec::new();
            for place in [Place::Active, Place::Held] {
                for (id, envelope) in queue.envelopes_in(place).map_err(|e| e.to_string())? {
                    total += 1;
                    if filter.matches(place, &envelope, now) {
                        rows.push(view::Row {
                            id,
                            place,
                            envelope,
                        });
                    }
                }
            }
            rows.sort_by_key(|row| row.envelope.arrival_unix_seconds);
            Ok::<_, String>((total, rows, now))
        })
        .await
    };
    let (total, rows, now) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(error)) => return refused(500, &format!("Cannot read the queue: {error}")),
        Err(_) => return refused(500, "The queue could not be read."),
    };
    let flash = match (request.param("done"), request.param("id")) {
        (Some("delete"), Some(id)) => Some(format!("Deleted {id} (no bounce sent).")),
        _ => None,
    };
    Response::html(
        200,
        view::list(
            viewer,
            &view::ListPage {
                query: &request.query,
                filter: &filter,
                error: error.as_deref(),
                flash: flash.as_deref(),
                total,
                rows: &rows,
                limit: LIST_LIMIT,
                now,
            },
        ),
    )
}

/// One message's page.
async fn message(
    request: &Request,
    console: &Console,
    viewer: &Viewer<'_>,
    wanted: &str,
) -> Response {
    let queue = console.control.queue().clone();
    let wanted = wanted.to_owned();
    let found = tokio::task::spawn_blocking(move || {
        let (id, place, envelope) = crate::queue_view::find(queue.as_ref(), &wanted)?;
        let content = queue.read_message_in(&id, place).ok();
        Some((id, place, envelope, content))
    })
    .await;
    let Ok(Some((id, place, envelope, content))) = found else {
        return refused(404, "No such message in the queue or its history.");
    };
    let flash = request.param("done").and_then(|done| match done {
        "hold" => Some("Held: no delivery until it is released."),
        "release" => Some("Released: it is delivered at its next attempt."),
        "flush" => Some("Queued for delivery now."),
        "bounce" => Some("Bounced: the sender gets a delivery status notification."),
        _ => None,
    });
    let headers = content.as_deref().map(crate::queue_view::headers);
    Response::html(
        200,
        view::message(
            viewer,
            &view::MessagePage {
                id: &id,
                place,
                envelope: &envelope,
                headers: headers.as_deref(),
                size: content.as_ref().map(Vec::len),
                flash,
                now: petrel_delivery::scheduler::unix_now(),
            },
        ),
    )
}

/// A page saying why a request was refused.
fn refused(status: u16, reason: &str) -> Response {
    let body = maud::html! {
        h1 { (status) " " (super::http::reason(status)) }
        p.error { (reason) }
        p { a href="/queue/" { "Back to the queue" } }
    };
    Response::html(status, view::page("Refused", None, body))
}
