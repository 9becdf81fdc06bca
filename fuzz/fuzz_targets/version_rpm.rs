#![no_main]
//! Rpm versions: the laws of `common/version_laws.rs`.
use libfuzzer_sys::fuzz_target;

#[path = "../common/version_laws.rs"]
mod version_laws;

fuzz_target!(|data: &[u8]| version_laws::check(patchwarden_version::Scheme::Rpm, data));
