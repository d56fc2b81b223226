//! JSON request bodies decoded into ferry's kinds: `serde_json` into a `Value`, then
//! `ferry_api::kinds::canonical` with the object's own `apiVersion` and `kind`, as the API
//! server decodes a create or update.
//!
//! Holds: no panic; the decoded value's JSON text reads back as itself; a canonical object is
//! canonical again (decoding into its type and encoding it again changes nothing the second
//! time).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(object) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    ferry_fuzz::check_json_text(&object);
    ferry_fuzz::check_canonical(object);
});
