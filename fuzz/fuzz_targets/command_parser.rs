//! Fuzz target: petrel_proto::fuzzing::command_parser (see that function for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    petrel_proto::fuzzing::command_parser(data);
});
