#![no_main]
//! Never panics on dpkg status files (`/var/lib/dpkg/status`, distroless `status.d`).
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut out = Vec::new();
    let _ = patchwarden_inventory::dpkg::parse_status(text, Path::new("status"), false, &mut out);
    out.clear();
    let _ =
        patchwarden_inventory::dpkg::parse_status(text, Path::new("status.d/x"), true, &mut out);
});
