#![no_main]
//! Never panics on OSV records (as osv.dev publishes them).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = patchwarden_feeds::osv::parse(data, "fuzz.json");
});
