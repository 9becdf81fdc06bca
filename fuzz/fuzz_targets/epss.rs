#![no_main]
//! Never panics on FIRST EPSS: the daily CSV (plain or gzip) and the API's elements.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = patchwarden_feeds::epss::parse_csv(data, "fuzz.csv");
    let _ = patchwarden_feeds::epss::parse_api_element(data, "fuzz.json");
});
