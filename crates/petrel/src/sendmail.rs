//! `petrel sendmail` (also when invoked as `sendmail`) and `petrel mailq` (also as `mailq`): the
//! traditional local submission interfaces for cron, scripts and applications.
//!
//! sendmail reads a message from standard input and hands it to the running daemon through its
//! control socket (the daemon stores it with its usual fsyncs before answering, and delivers it
//! at once); without a daemon it stores the message into the queue directly, the same way.
//! Flags: -t (recipients from To/Cc/Bcc, Bcc removed), -i / -oi (a lone "." does not end the
//! input), -f SENDER, -bs (an SMTP session on stdin/stdout, `sendmail_bs.rs`), -F NAME
//! (ignored), other -o/-b options accepted and ignored as sendmail does.

use std::io::Read;

use petrel_proto::address::{ForwardPath, ReversePath, parse_forward_path, parse_reverse_path};
use petrel_proto::params::{Body, MailParameters, RcptParameters};
use petrel_proto::session::{Message, RcptRequest};
use petrel_proto::xtext;

use crate::config;

/// What the command line asked for.
#[derive(Debug, Default)]
struct Request {
    from: Option<String>,
    recipients: Vec<String>,
    is_from_headers: bool,
    is_dot_literal: bool,
    /// `-bs`: speak SMTP on stdin/stdout.
    is_smtp_session: bool,
    config: Option<std::path::PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Request, String> {
    let mut request = Request::default();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        let mut value = |flag: &str| -> Result<String, String> {
            if arg.len() > flag.len() {
                return Ok(arg[flag.len()..].to_owned());
            }
            index += 1;
            args.get(index)
                .cloned()
                .ok_or(format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "-t" => request.is_from_headers = true,
            "-i" | "-oi" => request.is_dot_literal = true,
            "-bs" => request.is_smtp_session = true,
            "--config" => request.config = Some(value("--config")?.into()),
            a if a.starts_with("-f") || a.starts_with("-r") => request.from = Some(value(&a[..2])?),
            a if a.starts_with("-F")
                || a.starts_with("-o")
                || a.starts_with("-b")
                || a.starts_with("-B")
                || a.starts_with("-N")
                || a.starts_with("-R")
                || a.starts_with("-V") =>
            {
                if matches!(a, "-F" | "-N" | "-R" | "-V" | "-B") {
                    index += 1;
                }
            }
            "--" => {
                request.recipients.extend(args[index + 1..].iter().cloned());
                break;
            }
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            recipient => request.recipients.push(recipient.to_owned()),
        }
        index += 1;
    }
    Ok(request)
}

/// Runs sendmail with its own argument conventions; exit status 0 only once queued.
pub fn sendmail(args: &[String]) -> Result<(), String> {
    let request = parse_args(args)?;
    let config = config::load(&config::locate(request.config.as_deref()))?;
    if request.is_smtp_session {
        return crate::sendmail_bs::serve(&config);
    }
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| format!("cannot read the message: {e}"))?;
    let mut content = to_crlf(&input, request.is_dot_literal);
    let mut recipients = request.recipients.clone();
    if request.is_from_headers {
        let (headers_recipients, without_bcc) = recipients_from_headers(&content);
        recipients.extend(headers_recipients);
        content = without_bcc;
    }
    if recipients.is_empty() {
        return Err("no recipients (give them as arguments, or -t to read To/Cc/Bcc)".into());
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let sender = request
        .from
        .unwrap_or_else(|| format!("{user}@{}", config.hostname));
    submit(&config, &sender, &recipients, content)
}

/// Queues one message: through the running daemon's control socket, else into the spool.
///
/// # Errors
/// What kept the message from being stored.
pub fn submit(
    config: &config::Config,
    sender: &str,
    recipients: &[String],
    content: Vec<u8>,
) -> Result<(), String> {
    let socket = config.data_dir.join("control.sock");
    if let Ok(stream) = std::os::unix::net::UnixStream::connect(&socket) {
        return through_daemon(stream, sender, recipients, &content);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(into_spool(config, sender, recipients, content))
}

/// Hands the message to the running daemon through its control socket: `submit` with the
/// envelope in xtext, the content's length, the content; the daemon answers after its fsyncs.
fn through_daemon(
    mut stream: std::os::unix::net::UnixStream,
    sender: &str,
    recipients: &[String],
    content: &[u8],
) -> Result<(), String> {
    use std::io::{BufRead, Write};
    let mut line = format!("submit {}", xtext::encode(sender.as_bytes()));
    for recipient in recipients {
        line.push(' ');
        line.push_str(&xtext::encode(recipient.as_bytes()));
    }
    let fail = |e: std::io::Error| format!("the running petrel did not answer: {e}");
    write!(stream, "{line}\n{}\n", content.len()).map_err(fail)?;
    stream.write_all(content).map_err(fail)?;
    let mut reader = std::io::BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).map_err(fail)?;
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).map_err(fail)?;
    match status.trim_end() {
        "ok" => Ok(()),
        _ => Err(rest.trim_end().to_owned()),
    }
}

/// The message a local submission makes: from `sender` to `recipients`, as submission (so Date
/// and Message-ID are added when missing).
///
/// # Errors
/// A sentence naming the address that is not valid.
pub fn local_message(
    sender: &str,
    recipients: &[String],
    content: Vec<u8>,
) -> Result<Message, String> {
    let reverse_path = if sender.is_empty() {
        ReversePath::Null
    } else {
        parse_reverse_path(&format!("<{sender}>"))
            .map_err(|_| format!("{sender:?} is not a valid sender address"))?
    };
    let mut requests = Vec::new();
    for recipient in recipients {
        let forward_path: ForwardPath = parse_forward_path(&format!("<{recipient}>"))
            .map_err(|_| format!("{recipient:?} is not a valid address"))?;
        requests.push(RcptRequest {
            forward_path,
            parameters: RcptParameters::default(),
        });
    }
    Ok(Message {
        helo: "localhost".into(),
        is_esmtp: false,
        reverse_path,
        parameters: MailParameters {
            body: Body::EightBitMime,
            ..MailParameters::default()
        },
        recipients: requests,
        content,
        is_tls: false,
        authenticated_as: None,
    })
}

async fn into_spool(
    config: &config::Config,
    sender: &str,
    recipients: &[String],
    content: Vec<u8>,
) -> Result<(), String> {
    let message = local_message(sender, recipients, content)?;
    let queue = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            crate::queue_open::open(&config, crate::queue_open::Opener::Command)
        })
        .await
        .map_err(|e| format!("cannot open the queue: {e}"))??
    };
    let settings = config.server_settings()?;
    let context = petrel_server::receive::Receiving {
        client: std::net::IpAddr::from([127, 0, 0, 1]),
        hostname: &config.hostname,
        is_submission: true,
        policy: &settings.policy,
        authentication: petrel_server::receive::Authentication::Sign(&settings.dkim),
    };
    let stored = petrel_server::receive::store_message(queue, message, None, &context).await;
    match stored.queue_id {
        Some(id) => {
            eprintln!("queued as {id}; petrel delivers it when it runs");
            Ok(())
        }
        None => Err(format!("not queued: {}", stored.reply.to_line())),
    }
}

/// The message with CR LF line ends; without -i a line of a single "." ends it.
fn to_crlf(input: &[u8], is_dot_literal: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 40);
    for line in input.split_inclusive(|&b| b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if !is_dot_literal && bare == b"." {
            break;
        }
        out.extend_from_slice(bare);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Addresses in To, Cc and Bcc (simple `a@b` and `Name <a@b>` forms), and the message without
/// its Bcc fields.
fn recipients_from_headers(content: &[u8]) -> (Vec<String>, Vec<u8>) {
    let text = String::from_utf8_lossy(content).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match fields.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push_str("\r\n");
                last.push_str(line);
            }
            _ => fields.push(line.to_owned()),
        }
    }
    let mut recipients = Vec::new();
    let mut kept = Vec::new();
    for field in fields {
        let (name, value) = field.split_once(':').unwrap_or((&field, ""));
        let name = name.trim().to_ascii_lowercase();
        if matches!(name.as_str(), "to" | "cc" | "bcc") {
            for part in value.split(',') {
                let address = match (part.find('<'), part.find('>')) {
                    (Some(open), Some(close)) if open < close => &part[open + 1..close],
                    _ => part,
                };
                let address = address.trim();
                if address.contains('@') {
                    recipients.push(address.to_owned());
                }
            }
        }
        if name != "bcc" {
            kept.push(field);
        }
    }
    let rebuilt = format!("{}\r\n\r\n{body}", kept.join("\r\n"));
    (recipients, rebuilt.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendmail_flags() {
        let args: Vec<String> = [
            "-oi",
            "-t",
            "-f",
            "cron@example.org",
            "-Fname",
            "x@y.example",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let request = parse_args(&args).unwrap();
        assert!(request.is_dot_literal && request.is_from_headers);
        assert_eq!(request.from.as_deref(), Some("cron@example.org"));
        assert_eq!(request.recipients, ["x@y.example"]);
        assert!(parse_args(&["-q".to_owned()]).is_err());
    }

    #[test]
    fn dots_and_headers() {
        assert_eq!(to_crlf(b"a\n.\nb\n", false), b"a\r\n");
        assert_eq!(to_crlf(b"a\n.\nb", true), b"a\r\n.\r\nb\r\n");
        let (recipients, kept) = recipients_from_headers(b"To: A <a@x.example>, b@x.example\r\nBcc: secret@x.example\r\nSubject: s\r\n\r\nbody\r\n");
        assert_eq!(
            recipients,
            ["a@x.example", "b@x.example", "secret@x.example"]
        );
        assert_eq!(
            kept,
            b"To: A <a@x.example>, b@x.example\r\nSubject: s\r\n\r\nbody\r\n"
        );
    }
}
