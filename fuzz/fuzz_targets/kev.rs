#![no_main]
//! Never panics on the CISA KEV catalog.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = patchwarden_feeds::kev::parse(data, "fuzz.json");
});
