//! Fuzz target: petrel_proto::fuzzing::sasl_exchange (see that function for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    petrel_proto::fuzzing::sasl_exchange(data);
});
