//! Sending a TLS report (RFC 8460 §3, §5): the `_smtp._tls` TXT record's `rua` addresses, the
//! report gzipped under the RFC's file name, as a `multipart/report; report-type="tlsrpt"`
//! mail (§5.3, stored in petrel's own queue and delivered like any message, with
//! `TLS-Required: No` so a TLS problem cannot stop the report about it) and as an HTTPS POST
//! of `application/tlsrpt+gzip` (§5.4, the certificate verified, no redirects).
//!
//! The TXT record and the receiving web server are untrusted: malformed input is an error
//! value, never a panic.

use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use petrel_dns::Resolver;

use super::report::About;
use crate::client::TlsClient;
use crate::mta_sts::fetch::connect_https;

/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a domain wants its reports (§3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rua {
    /// Addresses of `mailto:` URIs.
    pub mailto: Vec<String>,
    /// `https:` URIs.
    pub https: Vec<String>,
}

/// Parses a `_smtp._tls` TXT record: `v=TLSRPTv1; rua=mailto:a@example.org,https://...`.
///
/// # Errors
/// Not version TLSRPTv1 first, no `rua`, or no URI petrel can use.
pub fn parse_record(record: &str) -> Result<Rua, String> {
    let mut fields = record.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next() != Some("v=TLSRPTv1") {
        return Err(format!(
            "not a TLSRPT record (v=TLSRPTv1 first): {record:?}"
        ));
    }
    let rua = fields
        .filter_map(|field| field.split_once('='))
        .find(|(key, _)| key.trim() == "rua")
        .map(|(_, value)| value.trim())
        .ok_or_else(|| format!("TLSRPT record without rua: {record:?}"))?;
    let mut found = Rua::default();
    for uri in rua.split(',').map(str::trim) {
        if let Some(address) = uri.strip_prefix("mailto:") {
            let address = address.split('?').next().unwrap_or("");
            if address.contains('@') && !address.contains(char::is_whitespace) {
                found.mailto.push(address.to_owned());
            }
        } else if uri.starts_with("https://") {
            found.https.push(uri.to_owned());
        }
    }
    if found.mailto.is_empty() && found.https.is_empty() {
        return Err(format!("no mailto: or https: address in rua: {rua:?}"));
    }
    Ok(found)
}

/// The `rua` of `domain`, from its one `v=TLSRPTv1` record at `_smtp._tls.<domain>`.
///
/// # Errors
/// No record, several, a DNS failure, or a record that does not parse.
pub async fn lookup(resolver: &Resolver, domain: &str) -> Result<Rua, String> {
    let name = format!("_smtp._tls.{domain}");
    let records = resolver
        .txt(&name)
        .await
        .map_err(|failure| format!("TXT {name}: {failure}"))?;
    let candidates: Vec<&String> = records
        .iter()
        .filter(|r| r.starts_with("v=TLSRPTv1"))
        .collect();
    match candidates.as_slice() {
        [one] => parse_record(one),
        [] => Err(format!("{name} has no TLSRPT record: no report is wanted")),
        _ => Err(format!("{name} has several TLSRPT records: none is used")),
    }
}

/// `json` gzipped.
pub fn gzip(json: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = encoder.write_all(json);
    encoder.finish().unwrap_or_default()
}

/// §5.1: `submitter!policy-domain!begin!end.json.gz`, the times in Unix seconds.
pub fn file_name(about: &About<'_>, begin: i64, end: i64) -> String {
    format!("{}!{}!{begin}!{end}.json.gz", about.submitter, about.domain)
}

/// The report mail (§5.3): headers, a short text part and the gzipped report attached.
pub fn mail(about: &About<'_>, to: &str, date: &str, name: &str, gzipped: &[u8]) -> Vec<u8> {
    let boundary = format!("tlsrpt-{}-{}", about.day, about.domain.replace('.', "-"));
    let attachment = crate::tlsrpt::base64_lines(gzipped);
    format!(
        "From: TLS reporting <postmaster@{submitter}>\r\n\
         To: <{to}>\r\n\
         Subject: Report Domain: {domain} Submitter: {submitter} Report-ID: <{id}>\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}>\r\n\
         TLS-Report-Domain: {domain}\r\n\
         TLS-Report-Submitter: {submitter}\r\n\
         TLS-Required: No\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the TLS report (RFC 8460) of {submitter} for {domain} on {day} (UTC).\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: application/tlsrpt+gzip\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         \r\n\
         {attachment}\
         --{boundary}--\r\n",
        submitter = about.submitter,
        domain = about.domain,
        day = about.day,
        id = about.report_id(),
    )
    .into_bytes()
}

/// POSTs the gzipped report to `url` (`https://host[:port]/path`).
///
/// # Errors
/// A sentence: a bad URL, no connection, a certificate that does not verify, a status other
/// than 2xx (redirects are not followed).
pub async fn post(
    resolver: &Resolver,
    tls: &TlsClient,
    url: &str,
    gzipped: &[u8],
    source: Option<IpAddr>,
) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url}: not https"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("{url}: bad port {port:?}"))?,
        ),
        None => (authority, 443),
    };
    let attempt = async {
        let stream = connect_https(resolver, tls, host, port, source)
            .await
            .map_err(|e| e.detail)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let driver = tokio::spawn(connection);
        let request = Request::post(path)
            .header(HOST, authority)
            .header(USER_AGENT, concat!("petrel/", env!("CARGO_PKG_VERSION")))
            .header(CONTENT_TYPE, "application/tlsrpt+gzip")
            .body(Full::new(Bytes::copy_from_slice(gzipped)))
            .map_err(|e| format!("{url}: {e}"))?;
        let response = sender.send_request(request).await;
        let result = match response {
            Ok(response) if response.status().is_success() => {
                let _ = response.into_body().collect().await;
                Ok(())
            }
            Ok(response) => Err(format!("{url}: HTTP {}", response.status())),
            Err(error) => Err(format!("{url}: {error}")),
        };
        driver.abort();
        result
    };
    tokio::time::timeout(POST_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("{url}: no answer within {POST_TIMEOUT:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_gives_mailto_and_https_addresses() {
        let rua = parse_record(
            "v=TLSRPTv1; rua=mailto:reports@example.org,https://reporting.example.org/v1/tlsrpt",
        )
        .unwrap();
        assert_eq!(rua.mailto, ["reports@example.org"]);
        assert_eq!(rua.https, ["https://reporting.example.org/v1/tlsrpt"]);
        assert!(parse_record("rua=mailto:a@b; v=TLSRPTv1").is_err());
        assert!(parse_record("v=TLSRPTv1;").is_err());
        assert!(parse_record("v=TLSRPTv1; rua=http://plain.example/").is_err());
    }

    #[test]
    fn the_file_name_and_the_gzip_are_the_rfcs() {
        let about = About {
            domain: "example.org",
            day: "2026-12-07",
            submitter: "mx.example.net",
            organization: "mx.example.net",
            contact: "postmaster@mx.example.net",
            manual_at: None,
        };
        assert_eq!(
            file_name(&about, 1_796_601_600, 1_796_687_999),
            "mx.example.net!example.org!1796601600!1796687999.json.gz"
        );
        let packed = gzip(b"{\"a\": 1}");
        let mut unpacked = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&packed[..]),
            &mut unpacked,
        )
        .unwrap();
        assert_eq!(unpacked, "{\"a\": 1}");
        let mail =
            String::from_utf8(mail(&about, "r@example.org", "date", "f.json.gz", &packed)).unwrap();
        assert!(mail.contains("Subject: Report Domain: example.org Submitter: mx.example.net Report-ID: <2026-12-07_example.org@mx.example.net>\r\n"));
        assert!(mail.contains("report-type=\"tlsrpt\""));
        assert!(mail.contains("filename=\"f.json.gz\""));
        assert!(mail.contains("TLS-Required: No\r\n"));
    }
}
