//! The API server's `labelSelector` and `fieldSelector` query parameters
//! (`ferry_api::selector`, upstream's `labels.Parse` and `fields.ParseSelector`), and
//! matching with them.
//!
//! Input: the query parameter's text.
//!
//! Holds: no panic; a parsed selector has no empty keys or field names, and the empty label
//! set matches a label selector exactly when it has only `notin`/`!=`/`!key` requirements.

#![no_main]

use std::collections::BTreeMap;

use ferry_api::selector::{FieldSelector, LabelSelector, Requirement};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let none = BTreeMap::new();
    if let Ok(selector) = LabelSelector::parse(text) {
        let only_negative = selector
            .0
            .iter()
            .all(|r| matches!(r, Requirement::NotIn(..) | Requirement::DoesNotExist(_)));
        assert_eq!(selector.matches(&none), only_negative, "{selector:?}");
        for r in &selector.0 {
            let (Requirement::In(key, _)
            | Requirement::NotIn(key, _)
            | Requirement::Exists(key)
            | Requirement::DoesNotExist(key)) = r;
            assert!(!key.is_empty(), "empty key in {text:?}");
        }
    }
    if let Ok(selector) = FieldSelector::parse(text) {
        let _ = selector.matches(&none);
        assert_eq!(selector.fields().count(), selector.0.len());
    }
});
