//! Fuzz target: petrel_proto::fuzzing::server_session (see that function for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    petrel_proto::fuzzing::server_session(data);
});
