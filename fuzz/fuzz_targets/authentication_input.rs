//! Fuzz target: petrel_mailauth::fuzzing::authentication_input (see that function for what is checked).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    petrel_mailauth::fuzzing::authentication_input(data);
});
