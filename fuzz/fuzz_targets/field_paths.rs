//! Field paths as `metadata.managedFields[].fieldsV1` carries them: `ferry_smd`'s FieldsV1
//! decoder (`FieldSet::from_fields_v1`, which parses each `f:`, `k:`, `v:`, `i:` path element)
//! and encoders.
//!
//! Input: a FieldsV1 JSON object.
//!
//! Holds: no panic; a decoded set encodes (as a `Value` and as upstream's byte-exact text) to
//! FieldsV1 that decodes to the same set, both encodings agree, and every path in the set
//! prints and is found in it.

#![no_main]

use ferry_smd::FieldSet;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(fields) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(set) = FieldSet::from_fields_v1(&fields) else {
        return;
    };
    let encoded = set.to_fields_v1();
    let decoded = FieldSet::from_fields_v1(&encoded)
        .unwrap_or_else(|e| panic!("{encoded} does not decode: {e}"));
    assert_eq!(
        decoded, set,
        "{fields} re-encoded as {encoded} reads differently"
    );
    let text = set.to_fields_v1_json();
    let from_text: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text} is not JSON: {e}"));
    assert_eq!(from_text, encoded, "the two encodings differ");
    for path in set.iter() {
        let _ = path.to_string();
        assert!(set.has(&path), "{path} is listed but not in the set");
    }
});
