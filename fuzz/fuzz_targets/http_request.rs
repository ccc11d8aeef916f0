//! Fuzz target: the web server's hand-written HTTP request parser (crates/petrel/src/web/http.rs,
//! included by path: petrel is a binary crate); see `fuzz_request` for what is checked.
#![no_main]

#[path = "../../crates/petrel/src/web/http.rs"]
#[allow(dead_code)]
mod http;

/// Only for `Response::redirect` to compile (responses are not fuzzed; the real escape is in
/// crates/petrel/src/web/html.rs, which needs the whole web module).
mod html {
    pub fn escape(text: &str) -> String {
        text.to_owned()
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    http::fuzz_request(data);
});
