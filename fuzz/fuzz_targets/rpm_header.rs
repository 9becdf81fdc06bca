#![no_main]
//! Never panics on rpm header blobs as rpmdb.sqlite and Berkeley DB `Packages` store them.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = patchwarden_inventory::rpm::package_of_blob(data);
});
