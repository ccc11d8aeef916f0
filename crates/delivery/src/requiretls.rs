//! REQUIRETLS (RFC 8689) and its opposite, the `TLS-Required: No` header field, as delivery
//! reads them from a message: the MAIL parameter travels in the envelope
//! (`Envelope::requires_tls`); the header field is looked up here in the message's header
//! section (§5: a sender's request to deliver even when MTA-STS or DANE would refuse).
//!
//! Pure; the message bytes are untrusted and only scanned.

/// Whether the header section of `content` has a `TLS-Required: No` field (RFC 8689 §5).
pub fn tls_required_no(content: &[u8]) -> bool {
    let header_end = content
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(content.len(), |end| end + 2);
    let header = String::from_utf8_lossy(&content[..header_end]);
    // Unfold (RFC 5322 §2.2.3), then read each field's name and value.
    let unfolded = header.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").any(|field| {
        field.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("TLS-Required")
                && value.trim().eq_ignore_ascii_case("No")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_field_is_found_only_in_the_header_section() {
        assert!(tls_required_no(
            b"From: a@b\r\nTLS-Required: No\r\n\r\nbody\r\n"
        ));
        assert!(tls_required_no(b"tls-required:\r\n  no\r\n\r\n"));
        assert!(!tls_required_no(b"TLS-Required: Yes\r\n\r\n"));
        assert!(!tls_required_no(b"From: a@b\r\n\r\nTLS-Required: No\r\n"));
        assert!(!tls_required_no(b"X-TLS-Required: No\r\n\r\n"));
        assert!(!tls_required_no(b""));
    }
}
