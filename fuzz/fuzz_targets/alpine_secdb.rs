#![no_main]
//! Never panics on Alpine secdb, JSON and YAML.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = patchwarden_feeds::alpine::parse_json(data, "fuzz.json");
    let _ = patchwarden_feeds::alpine::parse_yaml(data, "fuzz.yaml");
});
