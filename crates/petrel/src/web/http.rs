//! The HTTP/1.1 of the reference pages, by hand: parsing a request head (GET and HEAD, and
//! POST with a `Content-Length` body for the bounce form, POST and DELETE for the JSON API),
//! percent-decoding the path and the query, and writing a response with Content-Length and
//! `Connection: close`. Everything here handles bytes from anyone on the network: it never
//! panics, and a request it cannot read becomes a `Rejection` with a status code.

use std::fmt::Write as _;

/// The most a request head may take, request line and header fields together.
pub const MAX_HEAD: usize = 16 * 1024;

/// The request methods the pages answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    /// Only for the JSON API.
    Delete,
}

/// A request the server understood.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The percent-decoded path, starting with `/`.
    pub path: String,
    /// The decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    /// `Content-Length`, when given.
    pub content_length: Option<usize>,
    /// The `Authorization` field's value, when given (the JSON API's bearer token).
    pub authorization: Option<String>,
    /// The body (POST), read by the server after the head.
    pub body: Vec<u8>,
}

impl Request {
    /// The fields of an `application/x-www-form-urlencoded` body, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (decode_form(key), decode_form(value))
            })
            .collect()
    }

    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why a request head was refused: the status to answer and a short reason for the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: &'static str,
}

fn reject(status: u16, reason: &'static str) -> Rejection {
    Rejection { status, reason }
}

/// Where the head ends in `buffer`: the index just past the empty line (CRLF or bare LF).
pub fn head_end(buffer: &[u8]) -> Option<usize> {
    let mut start = 0;
    for (index, byte) in buffer.iter().enumerate() {
        if *byte != b'\n' {
            continue;
        }
        let line = &buffer[start..index];
        if line.is_empty() || line == b"\r" {
            // An empty line before the request line is allowed (RFC 9112 §2.2) and skipped.
            if start > 0 && !buffer[..start].iter().all(|b| matches!(b, b'\r' | b'\n')) {
                return Some(index + 1);
            }
        }
        start = index + 1;
    }
    None
}

/// Parses a whole request head (as cut by `head_end`).
///
/// # Errors
/// 400 for anything malformed, 405 for another method, 505 for another HTTP version.
pub fn parse_head(head: &[u8]) -> Result<Request, Rejection> {
    let text = std::str::from_utf8(head).map_err(|_| reject(400, "the request is not UTF-8"))?;
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .skip_while(|line| line.is_empty());
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(reject(400, "the request line is not METHOD TARGET VERSION"));
    };
    if !method
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        || method.is_empty()
    {
        return Err(reject(400, "the method is not a token"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") && v.len() == 8 => {
            return Err(reject(505, "only HTTP/1.0 and HTTP/1.1 are spoken here"));
        }
        _ => return Err(reject(400, "the version is not HTTP/1.x")),
    };
    let Fields {
        has_host,
        content_length,
        authorization,
    } = check_fields(lines)?;
    if http11 && !has_host {
        return Err(reject(400, "an HTTP/1.1 request needs a Host field"));
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        _ => return Err(reject(405, "only GET, HEAD, POST and DELETE are allowed")),
    };
    let (path, query) = parse_target(target)?;
    Ok(Request {
        method,
        path,
        query,
        content_length,
        authorization,
        body: Vec::new(),
    })
}

/// What the header fields say.
struct Fields {
    has_host: bool,
    content_length: Option<usize>,
    authorization: Option<String>,
}

/// Checks the header fields are `name: value` lines; whether one is `Host`, and the
/// `Content-Length` when given (chunked bodies are refused: the form never sends them).
fn check_fields<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Fields, Rejection> {
    let mut has_host = false;
    let mut content_length = None;
    let mut authorization = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(reject(400, "a header field has no colon"));
        };
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(reject(400, "a header field name is malformed"));
        }
        has_host |= name.eq_ignore_ascii_case("host");
        if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .trim()
                .parse()
                .map_err(|_| reject(400, "Content-Length is not a number"))?;
            if content_length.is_some_and(|l| l != length) {
                return Err(reject(400, "two different Content-Length fields"));
            }
            content_length = Some(length);
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(reject(411, "send the body with a Content-Length"));
        }
        if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value.trim().to_owned());
        }
    }
    Ok(Fields {
        has_host,
        content_length,
        authorization,
    })
}

/// Splits a request target (origin-form, or absolute-form `http://host/path`) into the decoded
/// path and query.
fn parse_target(target: &str) -> Result<(String, Vec<(String, String)>), Rejection> {
    let target = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |slash| &rest[slash..]),
        None => target,
    };
    if !target.starts_with('/') {
        return Err(reject(400, "the target is not a path"));
    }
    if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(reject(400, "the target holds spaces or control characters"));
    }
    let target = target.split('#').next().unwrap_or(target);
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(raw_path.as_bytes(), false)
        .ok_or(reject(400, "the path is not valid percent-encoded UTF-8"))?;
    let query = raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_form(key), decode_form(value))
        })
        .collect();
    Ok((path, query))
}

/// Percent-decodes `bytes` (`+` as a space when `plus` is set); `None` for a bad escape or
/// text that is not UTF-8.
pub fn percent_decode(bytes: &[u8], plus: bool) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'%' => {
                let high = bytes.get(index + 1).and_then(|b| hex_value(*b))?;
                let low = bytes.get(index + 2).and_then(|b| hex_value(*b))?;
                out.push(high * 16 + low);
                index += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                index += 1;
            }
            _ => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Decodes a query key or value leniently: a bad escape leaves the text as it came.
fn decode_form(text: &str) -> String {
    percent_decode(text.as_bytes(), true).unwrap_or_else(|| text.replace('+', " "))
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Percent-encodes `text` for a path segment or a query value: everything but the unreserved
/// characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Percent-encodes a path, keeping its slashes.
pub fn encode_path(path: &str) -> String {
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// The fuzz target `http_request` (fuzz/, which includes this file): a request head cut by
/// `head_end` and parsed, its body read as a form, must never panic, and a parsed path starts
/// with `/`; percent-encoding must round-trip any text. Replayed over the corpus by the tests.
#[cfg_attr(not(test), allow(dead_code))]
pub fn fuzz_request(input: &[u8]) {
    if let Some(end) = head_end(input) {
        assert!(end <= input.len());
        if let Ok(mut request) = parse_head(&input[..end]) {
            assert!(request.path.starts_with('/'), "{:?}", request.path);
            request.body = input[end..].to_vec();
            let _ = request.form();
            let _ = request.param("code");
        }
    }
    let text = String::from_utf8_lossy(input);
    assert_eq!(
        percent_decode(encode(&text).as_bytes(), false).as_deref(),
        Some(&*text)
    );
    assert_eq!(
        percent_decode(encode_path(&text).as_bytes(), false).as_deref(),
        Some(&*text)
    );
}

/// A response to send.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Extra header fields (Location, Allow).
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Content-Type; HTML unless said otherwise.
    pub content_type: &'static str,
}

impl Response {
    /// An HTML page.
    pub fn html(status: u16, body: String) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body,
            content_type: "text/html; charset=utf-8",
        }
    }

    /// Plain text, e.g. the Prometheus exposition format.
    pub fn text(content_type: &'static str, body: String) -> Response {
        Response {
            status: 200,
            headers: Vec::new(),
            body,
            content_type,
        }
    }

    /// A 302 to `location` (a path with its query, already encoded), with a small page.
    pub fn redirect(location: &str) -> Response {
        let escaped = super::html::escape(location);
        Response {
            status: 302,
            headers: vec![("Location", location.to_owned())],
            content_type: "text/html; charset=utf-8",
            body: format!(
                "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Found</title></head><body><p><a href=\"{escaped}\">{escaped}</a></p></body></html>\n"
            ),
        }
    }

    /// The bytes on the wire; without the body for HEAD.
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        let _ = write!(head, "Content-Type: {}\r\n", self.content_type);
        let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        head.push_str("Connection: close\r\n");
        head.push_str("Cache-Control: no-cache\r\n");
        head.push_str("X-Content-Type-Options: nosniff\r\n");
        head.push_str("Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'\r\n");
        head.push_str("Referrer-Policy: no-referrer\r\n");
        for (name, value) in &self.headers {
            // Values are built by this module's callers from encoded text; a stray line break
            // would split the head, so it is dropped.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// The reason phrase of the statuses the server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    /// Replays the committed corpus of the `http_request` fuzz target.
    #[test]
    fn fuzz_corpus_replays() {
        let corpus =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/http_request");
        let mut count = 0;
        for entry in std::fs::read_dir(corpus).unwrap() {
            super::fuzz_request(&std::fs::read(entry.unwrap().path()).unwrap());
            count += 1;
        }
        assert!(count > 0);
    }
}
