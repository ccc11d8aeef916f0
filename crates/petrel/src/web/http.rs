//! The HTTP of the reference pages below hyper (which reads and checks the request heads and
//! writes the responses): the request and response as the pages see them, the request target
//! split into a percent-decoded path and query, and percent-encoding for links. Everything
//! here handles bytes from anyone on the network: it never panics, and a target it cannot
//! read becomes a `Rejection` with a status code.

use std::fmt::Write as _;

/// The most a request head may take, request line and header fields together.
pub const MAX_HEAD: usize = 16 * 1024;

/// What every page may load: nothing but its own inline style, and forms posted to itself.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

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
    /// The `Cookie` field's value (the console's session).
    pub cookie: Option<String>,
    /// The `Origin` field's value, or failing that `Referer`'s (the console's forms).
    pub origin: Option<String>,
    /// The `Host` field's value.
    pub host: Option<String>,
    /// The client's address.
    pub peer: Option<std::net::IpAddr>,
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
        field(&self.query, name)
    }
}

/// The first value of `name` among decoded `name=value` pairs (a query or a form).
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
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

/// Splits a request target (origin-form, or absolute-form `http://host/path`) into the decoded
/// path and query.
pub fn parse_target(target: &str) -> Result<(String, Vec<(String, String)>), Rejection> {
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

/// The fuzz target `http_request` (fuzz/, which includes this file): any request target read
/// as a path and query must never panic, and a parsed path starts with `/`; the body read as a
/// form too; percent-encoding must round-trip any text. Replayed over the corpus by the tests.
#[cfg_attr(not(test), allow(dead_code))]
pub fn fuzz_request(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let (target, body) = text.split_once('\n').unwrap_or((&text, ""));
    if let Ok((path, query)) = parse_target(target) {
        assert!(path.starts_with('/'), "{path:?}");
        let request = Request {
            method: Method::Post,
            path,
            query,
            content_length: Some(body.len()),
            authorization: None,
            cookie: None,
            origin: None,
            host: None,
            peer: None,
            body: body.as_bytes().to_vec(),
        };
        let _ = request.form();
        let _ = request.param("code");
    }
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

    /// A 303 ("See Other", the answer to a form posted) to `location`, with extra fields.
    pub fn see_other(location: &str, headers: Vec<(&'static str, String)>) -> Response {
        let mut response = Response::redirect(location);
        response.status = 303;
        response.headers.extend(headers);
        response
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
}

/// The reason phrase of the statuses the server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        303 => "See Other",
        401 => "Unauthorized",
        403 => "Forbidden",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
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
