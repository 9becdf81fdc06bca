#![no_main]
//! Never panics on the Debian security tracker's JSON.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = patchwarden_feeds::debian::parse(data, "fuzz.json");
});
