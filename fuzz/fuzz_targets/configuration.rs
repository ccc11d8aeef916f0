//! Fuzz target: the configuration file's reader and checks (crates/petrel/src/config.rs,
//! included by path: petrel is a binary crate); see `fuzz_configuration` for what is checked.
#![no_main]

#[path = "../../crates/petrel/src/config.rs"]
#[allow(dead_code)]
mod config;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    config::fuzz_configuration(data);
});
