#![no_main]
//! Never panics on NVD CVE API 2.0 pages.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = patchwarden_feeds::nvd::parse(data, "fuzz.json");
});
