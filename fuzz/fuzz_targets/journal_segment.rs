//! Fuzz target: petrel_queue::fuzzing::journal_segment (see that function for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    petrel_queue::fuzzing::journal_segment(data);
});
