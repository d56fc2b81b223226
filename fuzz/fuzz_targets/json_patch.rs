//! JSON patch (`application/json-patch+json`, RFC 6902) and JSON merge patch
//! (`application/merge-patch+json`, RFC 7386) bodies, decoded and applied with the `json-patch`
//! crate as the API server's PATCH applies them (`ferry_api::jsonpatch::apply`).
//!
//! Input: the JSON array `[original, patch]`; the patch is tried as both kinds.
//!
//! Holds: no panic; a merge patch is idempotent (applying it to its own result changes
//! nothing).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let [original, patch] = parts.as_slice() else {
        return;
    };

    if let Ok(ops) = serde_json::from_value::<json_patch::Patch>(patch.clone()) {
        let mut object = original.clone();
        let _ = ferry_api::jsonpatch::apply(&mut object, &ops);
    }

    let mut once = original.clone();
    json_patch::merge(&mut once, patch);
    let mut twice = once.clone();
    json_patch::merge(&mut twice, patch);
    assert_eq!(once, twice, "merge patch is not idempotent");
});
