//! Entry points of the fuzz target for what the authentication checks read from strangers
//! (`fuzz/`): DNS TXT records (SPF, DKIM keys, DMARC, MTA-STS, TLS-RPT), DKIM-Signature
//! header values and whole messages, through mail-auth's parsers. Kept here so the committed
//! corpus is also replayed by `cargo test`. A panic is a bug found. Not a public API.

use mail_auth::common::parse::TxtRecordParser;

/// Parses the input as every kind of record and header, and as a message.
pub fn authentication_input(input: &[u8]) {
    let _ = mail_auth::spf::Spf::parse(input);
    let _ = mail_auth::common::verify::DomainKey::parse(input);
    let _ = mail_auth::dmarc::Dmarc::parse(input);
    let _ = mail_auth::mta_sts::MtaSts::parse(input);
    let _ = mail_auth::mta_sts::TlsRpt::parse(input);
    let _ = mail_auth::dkim::Signature::parse(input);
    if let Some(message) = mail_auth::AuthenticatedMessage::parse(input) {
        let _ = message.body_hashes.len();
    }
}

#[cfg(test)]
mod tests {
    /// Replays the committed corpus (fuzz/corpus/<target>/) through the targets' entry points,
    /// so every input a campaign kept is checked by `cargo test`.
    #[test]
    fn fuzz_corpus_replays() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 1] = [("authentication_input", super::authentication_input)];
        for (name, target) in targets {
            let mut count = 0;
            for entry in std::fs::read_dir(corpus.join(name)).unwrap() {
                target(&std::fs::read(entry.unwrap().path()).unwrap());
                count += 1;
            }
            assert!(count > 0, "empty corpus for {name}");
        }
    }
}
