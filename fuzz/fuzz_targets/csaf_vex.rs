#![no_main]
//! Never panics on Red Hat CSAF VEX documents.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = patchwarden_feeds::redhat::parse(data, "fuzz.json");
});
