//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use serde_json::Value;

/// The group, version and kind an object names in `apiVersion` and `kind`, as the API server
/// reads them (`""` for what is missing).
pub fn gvk(object: &Value) -> (String, String, String) {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    (group.to_string(), version.to_string(), kind.to_string())
}

/// Checks an object as ferry decodes it into its kind: when `ferry_api::kinds::canonical`
/// accepts it, the result is canonical again (decoding into the type and encoding it again
/// changes nothing the second time). Returns the canonical object.
pub fn check_canonical(object: Value) -> Option<Value> {
    let (group, version, kind) = gvk(&object);
    let once = ferry_api::kinds::canonical(&group, &version, &kind, object).ok()?;
    let twice = ferry_api::kinds::canonical(&group, &version, &kind, once.clone())
        .unwrap_or_else(|e| panic!("canonical {kind} does not decode again: {e}: {once}"));
    assert_eq!(
        once, twice,
        "canonical is not idempotent for {group}/{version} {kind}"
    );
    Some(once)
}

/// Checks that a value's JSON text reads back as the value.
pub fn check_json_text(value: &Value) {
    let text = serde_json::to_string(value).expect("a Value encodes");
    let back: Value = serde_json::from_str(&text).expect("encoded JSON decodes");
    assert_eq!(&back, value, "{text} reads back differently");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_read_back_exactly() {
        // Fails without serde_json's `float_roundtrip` (see Cargo.toml).
        check_json_text(&json!({"x": [1.1e120, 6.666666666666667e40, -0.0]}));
        let big: Value =
            serde_json::from_str("3344440000000000000000001078402061").expect("a float");
        check_json_text(&big);
    }

    #[test]
    fn a_pod_is_canonical_twice() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": null},
            "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let canonical = check_canonical(pod).expect("a valid pod");
        assert_eq!(canonical["metadata"], json!({"name": "p"}));
        assert_eq!(
            check_canonical(json!({"apiVersion": "v1", "kind": "Pod", "spec": 1})),
            None
        );
    }

    #[test]
    fn gvk_splits_the_api_version() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        assert_eq!(
            gvk(&deployment),
            ("apps".into(), "v1".into(), "Deployment".into())
        );
        assert_eq!(
            gvk(&json!({"apiVersion": "v1"})),
            ("".into(), "v1".into(), "".into())
        );
    }
}
