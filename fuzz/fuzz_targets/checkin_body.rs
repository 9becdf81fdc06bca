#![no_main]
//! Never panics on the check-in body as the server reads it (`CheckInView`, packages borrowed).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(report) = serde_json::from_str::<patchwarden_model::fleet::CheckInView<'_>>(text) {
        if let Some(inventory) = &report.inventory {
            let _ = inventory.to_inventory();
        }
    }
});
