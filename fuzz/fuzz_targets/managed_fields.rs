//! `metadata.managedFields` of an object, decoded with `ferry_smd::ManagedFields::from_object`
//! as every update and apply does, and written back.
//!
//! Input: an object (JSON).
//!
//! Holds: no panic; decoded managed fields, written back into an object (in upstream's order),
//! decode to the same entries in that order.

#![no_main]

use ferry_smd::ManagedFields;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(object) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(managed) = ManagedFields::from_object(&object) else {
        return;
    };
    let mut written = json!({"metadata": {}});
    managed.write_to(&mut written);
    let again = ManagedFields::from_object(&written)
        .unwrap_or_else(|e| panic!("{written} does not decode: {e}"));
    let sorted = managed.clone().sorted();
    assert_eq!(sorted.0.len(), managed.0.len(), "sorting lost entries");
    assert_eq!(again, sorted, "written as {written}");
    for entry in &managed.0 {
        let _ = entry.identifier();
    }
});
