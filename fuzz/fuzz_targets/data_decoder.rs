//! Fuzz target: petrel_proto::fuzzing::data_decoder (see that function for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    petrel_proto::fuzzing::data_decoder(data);
});
