#![no_main]
//! Never panics on feed format detection (what `feeds import` decides a file is).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = patchwarden_feeds::detect("fuzz.json", data);
    let _ = patchwarden_feeds::detect("fuzz", data);
});
