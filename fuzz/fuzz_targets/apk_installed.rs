#![no_main]
//! Never panics on apk's installed database (`/lib/apk/db/installed`).
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = patchwarden_inventory::apk::parse_installed(text, Path::new("installed"));
});
