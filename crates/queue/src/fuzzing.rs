//! Entry points of the queue's fuzz targets (`fuzz/`): the envelope record reader and the
//! journal's recovery walk, which read files a crash may have torn. Kept here so the committed
//! corpus is also replayed by `cargo test`. Each takes arbitrary bytes; a panic is a bug found.
//! Not a public API.

/// Decodes the input as an envelope record; what decodes must encode and decode to the same.
pub fn envelope_record(input: &[u8]) {
    if let Ok((id, envelope)) = crate::record::decode(input) {
        let encoded = crate::record::encode(&id, &envelope);
        let again = crate::record::decode(&encoded);
        assert!(
            matches!(&again, Ok((again_id, again_envelope)) if *again_id == id && *again_envelope == envelope),
            "a decoded record does not survive encode and decode"
        );
    }
}

/// The journal's recovery walk over the input as a segment, and over a torn segment built
/// from it (see `journal::fuzz_segment`).
pub fn journal_segment(input: &[u8]) {
    crate::journal::fuzz_segment(input);
}

#[cfg(test)]
mod tests {
    /// Replays the committed corpus (fuzz/corpus/<target>/) through the targets' entry points,
    /// so every input a campaign kept is checked by `cargo test`.
    #[test]
    fn fuzz_corpus_replays() {
        let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 2] = [
            ("envelope_record", super::envelope_record),
            ("journal_segment", super::journal_segment),
        ];
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
