//! The command parser (RFC 5321 §4.1): one CR LF-terminated line in, one typed `Command` out.
//!
//! Handles untrusted bytes. Verbs are case-insensitive (S-SESS-3); MAIL and RCPT arguments are
//! split into the path and parameter words here and typed in `address` and `params`. Errors are
//! typed; the session turns each into exactly one reply.

use crate::params::parse_decimal;

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    Ehlo(&'a str),
    Helo(&'a str),
    /// `MAIL FROM:` with the path text (brackets included) and the parameter words.
    Mail {
        path: &'a str,
        parameters: &'a str,
    },
    /// `RCPT TO:` with the path text and the parameter words.
    Rcpt {
        path: &'a str,
        parameters: &'a str,
    },
    Data,
    Bdat {
        size_bytes: u64,
        is_last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    /// EXPN and TURN: recognised, not implemented (S-SESS-8).
    NotImplemented,
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 §4).
    Auth {
        mechanism: &'a str,
        initial: Option<&'a str>,
    },
}

/// Why a command line was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command we know (500 5.5.2).
    Unrecognised,
    /// A known verb with malformed arguments (501 5.5.4).
    Syntax,
    /// `MAIL` without a well-formed `FROM:<path>` (501 5.1.7).
    SenderSyntax,
    /// `RCPT` without a well-formed `TO:<path>` (501 5.1.3).
    RecipientSyntax,
}

/// Parses one command line, without its CR LF.
///
/// # Errors
/// A `CommandError` naming the reply the session should give.
pub fn parse_command(line: &str) -> Result<Command<'_>, CommandError> {
    let (verb, rest) = match line.find(' ') {
        Some(space) => (&line[..space], &line[space + 1..]),
        None => (line, ""),
    };
    let has_argument = !rest.trim().is_empty();
    let no_argument = |command: Command<'static>| {
        if has_argument {
            Err(CommandError::Syntax)
        } else {
            Ok(command)
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" | "HELO" => {
            let domain = rest.trim();
            if domain.is_empty() || domain.contains(' ') {
                return Err(CommandError::Syntax);
            }
            if verb.eq_ignore_ascii_case("EHLO") {
                Ok(Command::Ehlo(domain))
            } else {
                Ok(Command::Helo(domain))
            }
        }
        "MAIL" => split_path(rest, "FROM:")
            .map(|(path, parameters)| Command::Mail { path, parameters })
            .ok_or(CommandError::SenderSyntax),
        "RCPT" => split_path(rest, "TO:")
            .map(|(path, parameters)| Command::Rcpt { path, parameters })
            .ok_or(CommandError::RecipientSyntax),
        "DATA" => no_argument(Command::Data),
        "BDAT" => parse_bdat(rest),
        "RSET" => no_argument(Command::Rset),
        "QUIT" => no_argument(Command::Quit),
        "STARTTLS" => no_argument(Command::StartTls),
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "VRFY" if has_argument => Ok(Command::Vrfy),
        "VRFY" => Err(CommandError::Syntax),
        "EXPN" | "TURN" => Ok(Command::NotImplemented),
        "AUTH" => {
            let mut words = rest.split(' ').filter(|w| !w.is_empty());
            let mechanism = words.next().ok_or(CommandError::Syntax)?;
            let initial = words.next();
            if words.next().is_some() {
                return Err(CommandError::Syntax);
            }
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(CommandError::Unrecognised),
    }
}

/// Splits `FROM:<path> params` (a space after the colon tolerated, S-TXN-5); the path ends at
/// the first `>` outside a quoted string.
fn split_path<'a>(rest: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let text = rest[keyword.len()..].trim_start_matches(' ');
    if !text.starts_with('<') {
        return None;
    }
    let mut is_quoted = false;
    let mut is_escaped = false;
    for (index, c) in text.char_indices() {
        match c {
            _ if is_escaped => is_escaped = false,
            '\\' if is_quoted => is_escaped = true,
            '"' => is_quoted = !is_quoted,
            '>' if !is_quoted => {
                let (path, after) = text.split_at(index + 1);
                if !after.is_empty() && !after.starts_with(' ') {
                    return None;
                }
                return Some((path, after.trim()));
            }
            _ => {}
        }
    }
    None
}

fn parse_bdat(rest: &str) -> Result<Command<'static>, CommandError> {
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let size_bytes = words
        .next()
        .and_then(parse_decimal)
        .ok_or(CommandError::Syntax)?;
    let is_last = match words.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax);
    }
    Ok(Command::Bdat {
        size_bytes,
        is_last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_sess_3_verbs_case_insensitive() {
        assert_eq!(
            parse_command("ehlo client.example"),
            Ok(Command::Ehlo("client.example"))
        );
        assert_eq!(parse_command("NoOp whatever"), Ok(Command::Noop));
        assert_eq!(parse_command("quit"), Ok(Command::Quit));
    }

    #[test]
    fn s_txn_5_mail_with_space_and_params() {
        assert_eq!(
            parse_command("MAIL FROM: <a@b.example> SIZE=10 BODY=8BITMIME"),
            Ok(Command::Mail {
                path: "<a@b.example>",
                parameters: "SIZE=10 BODY=8BITMIME"
            })
        );
        assert_eq!(
            parse_command("rcpt to:<\"a>b\"@c.example>"),
            Ok(Command::Rcpt {
                path: "<\"a>b\"@c.example>",
                parameters: ""
            })
        );
        assert_eq!(
            parse_command("MAIL FROM:a@b"),
            Err(CommandError::SenderSyntax)
        );
        assert_eq!(
            parse_command("RCPT <a@b>"),
            Err(CommandError::RecipientSyntax)
        );
        assert_eq!(
            parse_command("MAIL FROM:<a@b>x"),
            Err(CommandError::SenderSyntax)
        );
    }

    #[test]
    fn s_txn_3_arguments_on_data_rset_quit() {
        assert_eq!(parse_command("DATA x"), Err(CommandError::Syntax));
        assert_eq!(parse_command("RSET x"), Err(CommandError::Syntax));
        assert_eq!(parse_command("QUIT x"), Err(CommandError::Syntax));
    }

    #[test]
    fn bdat_forms() {
        assert_eq!(
            parse_command("BDAT 0 LAST"),
            Ok(Command::Bdat {
                size_bytes: 0,
                is_last: true
            })
        );
        assert_eq!(parse_command("BDAT x"), Err(CommandError::Syntax));
        assert_eq!(parse_command("BDAT 10 FIRST"), Err(CommandError::Syntax));
    }

    #[test]
    fn s_sess_8_unknown_and_unimplemented() {
        assert_eq!(parse_command("FOO"), Err(CommandError::Unrecognised));
        assert_eq!(parse_command("EXPN list"), Ok(Command::NotImplemented));
        assert_eq!(parse_command(""), Err(CommandError::Unrecognised));
    }
}
