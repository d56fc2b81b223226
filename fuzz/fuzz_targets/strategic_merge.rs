//! Strategic merge patch bodies (`application/strategic-merge-patch+json`), applied with
//! `ferry_api::patch::strategic_merge` and the built-in kind's list strategies, as the API
//! server's PATCH does.
//!
//! Input: the JSON array `[group, kind, original, patch]`.
//!
//! Holds: no panic; on an error the original is left as it was (the documented contract); on
//! success the result is a JSON object.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let [group, kind, original, patch] = parts.as_slice() else {
        return;
    };
    let (Some(group), Some(kind)) = (group.as_str(), kind.as_str()) else {
        return;
    };
    let schema = ferry_api::patch::schema_for(group, kind);
    let mut merged = original.clone();
    match ferry_api::patch::strategic_merge(&mut merged, patch, &schema) {
        Ok(()) => assert!(merged.is_object(), "a merge gave {merged}"),
        Err(e) => assert_eq!(&merged, original, "failed ({e}) but changed the original"),
    }
});
