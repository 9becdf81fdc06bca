#![no_main]
//! Never panics on the deployment configuration (TOML: change policy, windows, profiles, rollouts).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = patchwarden_deploy::config::DeployConfig::parse(text, "fuzz.toml");
});
