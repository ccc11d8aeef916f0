//! Entry points of the fuzz targets in `fuzz/` (command parser, DATA and BDAT decoders, SASL,
//! the whole server session), kept here so the committed corpus is also replayed by
//! `cargo test`. Each takes arbitrary bytes; a panic is a bug found. Not a public API.

use crate::chunk::BareNewlineFilter;
use crate::data::{BareNewline, DataDecoder};
use crate::session::{Event, ServerSession, SessionConfig};
use crate::{address, base64, command, params, sasl, standard};

/// Parses the input as a command line and every argument it can hold.
pub fn command_parser(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(
        command::Command::Mail { path, parameters } | command::Command::Rcpt { path, parameters },
    ) = command::parse_command(text)
    {
        let _ = address::parse_reverse_path(path);
        let _ = address::parse_forward_path(path);
        let _ = params::parse_mail_parameters(parameters.split(' '));
        let _ = params::parse_rcpt_parameters(parameters.split(' '));
    }
    if let Ok(mailbox) = address::parse_mailbox(text) {
        let folder = address::mailbox_folder(&mailbox.local_part_content(), Some("+"));
        assert!(folder.is_none_or(|f| !f.contains('/') && !f.starts_with('.')));
    }
}

/// Decodes the input whole and split at a point the first byte chooses; both must agree.
pub fn data_decoder(input: &[u8]) {
    for policy in [BareNewline::Reject, BareNewline::Normalize] {
        let whole = decode(input, input.len(), policy);
        let cut = input
            .first()
            .map_or(0, |&b| usize::from(b) % (input.len() + 1));
        assert_eq!(whole, decode(input, cut, policy));
    }
}

fn decode(input: &[u8], cut: usize, policy: BareNewline) -> (Vec<u8>, Option<usize>, u64) {
    let mut decoder = DataDecoder::new(1000, 1 << 20, policy);
    let mut body = Vec::new();
    let (used, is_end) = decoder.decode(&input[..cut], &mut body);
    if is_end {
        return (body, Some(used), decoder.body_bytes());
    }
    let (more, is_end) = decoder.decode(&input[cut..], &mut body);
    (body, is_end.then_some(used + more), decoder.body_bytes())
}

/// Filters the input whole and split; both must agree, and normalising leaves no bare CR/LF.
pub fn bdat_decoder(input: &[u8]) {
    let cut = input
        .first()
        .map_or(0, |&b| usize::from(b) % (input.len() + 1));
    let mut whole = Vec::new();
    let mut filter = BareNewlineFilter::new(BareNewline::Normalize);
    filter.push(input, &mut whole);
    filter.finish(&mut whole);
    let mut split = Vec::new();
    let mut filter = BareNewlineFilter::new(BareNewline::Normalize);
    filter.push(&input[..cut], &mut split);
    filter.push(&input[cut..], &mut split);
    filter.finish(&mut split);
    assert_eq!(whole, split);
    for (index, &byte) in whole.iter().enumerate() {
        match byte {
            b'\r' => assert_eq!(whole.get(index + 1), Some(&b'\n')),
            b'\n' => assert_eq!(index.checked_sub(1).map(|i| whole[i]), Some(b'\r')),
            _ => {}
        }
    }
}

/// An AUTH exchange (RFC 4954, RFC 4616, LOGIN) over untrusted lines: the first line is
/// `MECHANISM [initial-response]`, each further line a response; every step must be a
/// challenge, credentials or a refusal with a 5xx. Base64 must round-trip the input, and a
/// PLAIN message built from it must give back its username and password.
pub fn sasl_exchange(input: &[u8]) {
    assert_eq!(
        base64::decode(&base64::encode(input)).as_deref(),
        Some(input)
    );
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or("");
    let (mechanism, initial) = match first.split_once(' ') {
        Some((mechanism, initial)) => (mechanism, Some(initial)),
        None => (first, None),
    };
    if let Ok((mut exchange, mut step)) = sasl::SaslExchange::start(mechanism, initial) {
        for line in lines {
            match step {
                sasl::SaslStep::Challenge(_) => step = exchange.respond(line),
                sasl::SaslStep::Done(_) => break,
                sasl::SaslStep::Failed(template) => {
                    assert!(template.code >= 500);
                    break;
                }
            }
        }
    }
    if let Some((username, password)) = text.split_once('\0')
        && !username.is_empty()
        && !password.is_empty()
        && !password.contains('\0')
    {
        let message = base64::encode(format!("\0{username}\0{password}").as_bytes());
        let started = sasl::SaslExchange::start("PLAIN", Some(&message));
        assert!(
            matches!(&started, Ok((_, sasl::SaslStep::Done(credentials)))
                if credentials.username == username && credentials.password == password),
            "{started:?}"
        );
    }
}

/// Runs a whole server session over the input, cut into chunks at every 0xff byte, accepting
/// every MAIL and RCPT, queueing every message, completing every STARTTLS and accepting the
/// password "secret"; every reply line must be well formed.
pub fn server_session(input: &[u8]) {
    let mut session = ServerSession::new(SessionConfig {
        can_start_tls: true,
        offers_auth: true,
        ..SessionConfig::default()
    });
    let mut output = session.take_output();
    for chunk in input.split(|&b| b == 0xff) {
        session.receive(chunk);
        loop {
            match session.poll() {
                Event::NeedInput | Event::Close => break,
                Event::Mail(_) | Event::Rcpt(_) => session.accept(),
                Event::Message(_) => session.finish_message(standard::QUEUED.reply()),
                Event::StartTls => session.tls_started(),
                Event::Auth(credentials) if credentials.password == "secret" => {
                    session.accept_auth(&credentials.username)
                }
                Event::Auth(_) => session.refuse_auth(false),
            }
        }
        output.extend(session.take_output());
    }
    for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.len() >= 5 && line[..3].iter().all(u8::is_ascii_digit));
        assert_eq!(line.last(), Some(&b'\r'));
    }
}
