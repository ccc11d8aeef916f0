//! Fuzz target: petrel_catalogue::fuzzing::reply_line (see that function for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    petrel_catalogue::fuzzing::reply_line(data);
});
