//! JSON patch (`application/json-patch+json`, RFC 6902) and JSON merge patch
//! (`application/merge-patch+json`, RFC 7386) bodies, decoded and applied with the `json-patch`
//! crate as the API server's PATCH applies them (`rest::apply_json_patch`, copied here: it is
//! private to ferry-apiserver).
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
        let _ = apply_json_patch(&mut object, &ops);
    }

    let mut once = original.clone();
    json_patch::merge(&mut once, patch);
    let mut twice = once.clone();
    json_patch::merge(&mut twice, patch);
    assert_eq!(once, twice, "merge patch is not idempotent");
});

/// ferry-apiserver's `rest::apply_json_patch`: a `test` of `null` passes where the value is
/// absent and its parent present; the operations apply one by one.
fn apply_json_patch(object: &mut Value, ops: &json_patch::Patch) -> Result<(), String> {
    for op in ops.iter() {
        if let json_patch::PatchOperation::Test(test) = op {
            let path = test.path.as_str();
            let parent = path
                .rsplit_once('/')
                .map(|(parent, _)| parent)
                .unwrap_or("");
            if test.value.is_null()
                && object.pointer(path).is_none()
                && object.pointer(parent).is_some()
            {
                continue;
            }
        }
        json_patch::patch(object, std::slice::from_ref(op)).map_err(|e| e.to_string())?;
    }
    Ok(())
}
