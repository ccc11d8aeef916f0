//! `sendmail -bs`: an SMTP session on standard input and output, as Postfix and Sendmail offer
//! it to local programs (some mail libraries speak SMTP to `sendmail -bs` rather than run a
//! socket). The session is `proto`'s server session; every MAIL and RCPT is accepted (the
//! caller is local, as for `sendmail` itself), and each message is handed to the daemon or the
//! spool exactly like `petrel sendmail`: the 250 comes only once it is stored.
//!
//! A local program may end its lines with a bare LF: they become CR LF before the session sees
//! them (the input is trusted, and SMTP smuggling needs a second server to smuggle past). It may
//! also write its whole session at once: lines are given to the session one at a time, each
//! after the replies to the one before, as if the program had waited for them.

use std::io::{Read, Write};

use petrel_proto::data::BareNewline;
use petrel_proto::{Event, ServerSession, standard};

use crate::config::Config;

/// Serves one SMTP session on stdin/stdout until QUIT or the end of the input.
///
/// # Errors
/// When the configuration's files cannot be read or stdout cannot be written.
pub fn serve(config: &Config) -> Result<(), String> {
    let settings = config.server_settings()?;
    let mut session_config = settings.session.clone();
    session_config.bare_newline = BareNewline::Normalize;
    let mut session = ServerSession::new(session_config);
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut buffer = vec![0u8; 8192];
    let mut last = 0u8;
    let mut pending: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
    let write_error = |e: std::io::Error| format!("cannot write to standard output: {e}");
    loop {
        match session.poll() {
            Event::NeedInput => {
                output
                    .write_all(&session.take_output())
                    .map_err(write_error)?;
                output.flush().map_err(write_error)?;
                if !pending.contains(&b'\n') {
                    let count = input.read(&mut buffer).unwrap_or(0);
                    if count == 0 && pending.is_empty() {
                        return Ok(());
                    }
                    pending.extend(with_crlf(&buffer[..count], &mut last));
                    if count > 0 && !pending.contains(&b'\n') {
                        continue;
                    }
                }
                let end = pending
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(pending.len(), |p| p + 1);
                let line: Vec<u8> = pending.drain(..end).collect();
                session.receive(&line);
            }
            Event::Mail(_) | Event::Rcpt(_) => session.accept(),
            Event::Message(message) => {
                let sender = message.reverse_path.to_string();
                let recipients: Vec<String> = message
                    .recipients
                    .iter()
                    .map(|r| r.forward_path.to_string())
                    .collect();
                let reply =
                    match crate::sendmail::submit(config, &sender, &recipients, message.content) {
                        Ok(()) => standard::QUEUED.reply(),
                        Err(error) => {
                            eprintln!("sendmail -bs: {error}");
                            standard::LOCAL_ERROR.reply()
                        }
                    };
                session.finish_message(reply);
            }
            // Neither is offered on a local session.
            Event::StartTls => return Ok(()),
            Event::Auth(_) => session.refuse_auth(false),
            Event::Close => {
                output
                    .write_all(&session.take_output())
                    .map_err(write_error)?;
                return output.flush().map_err(write_error);
            }
        }
    }
}

/// Bare LF becomes CR LF; `last` carries the previous chunk's final byte.
fn with_crlf(bytes: &[u8], last: &mut u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    for &byte in bytes {
        if byte == b'\n' && *last != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        *last = byte;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_lf_becomes_crlf_across_chunks() {
        let mut last = 0;
        assert_eq!(with_crlf(b"EHLO x\nMAIL\r", &mut last), b"EHLO x\r\nMAIL\r");
        assert_eq!(with_crlf(b"\nRCPT\n", &mut last), b"\nRCPT\r\n");
    }
}
