//! YAML request bodies (`application/yaml`, and server-side apply's
//! `application/apply-patch+yaml`): `serde_yaml_ng` into a JSON `Value`, as the API server's
//! `parse_body` does, then `ferry_api::kinds::canonical` with the object's own kind.
//!
//! Holds: no panic (aliases, deep nesting, odd scalars included); a decoded document's JSON
//! text reads back as itself; a canonical object is canonical again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(object) = serde_yaml_ng::from_slice::<Value>(data) else {
        return;
    };
    ferry_fuzz::check_json_text(&object);
    ferry_fuzz::check_canonical(object);
});
