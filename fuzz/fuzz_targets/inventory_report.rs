#![no_main]
//! Never panics on an inventory report (`patchwarden inventory --json`, the agent's).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(inventory) = serde_json::from_slice::<patchwarden_model::Inventory>(data) {
        // What the server derives from one: the digest, and the borrowed view round trips.
        let _ = patchwarden_model::fleet::inventory_digest(&inventory);
        let view = patchwarden_model::InventoryView::of(&inventory);
        assert_eq!(view.to_inventory(), inventory);
    }
});
