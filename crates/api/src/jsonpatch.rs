//! JSON patches (`application/json-patch+json`, RFC 6902) applied as upstream's
//! evanphx/json-patch applies them, with the `json-patch` crate: one operation after another,
//! and a `test` of `null` passes where the value is absent and its parent present (kube-rs's
//! finalizer helper tests `/metadata/finalizers` so before adding the first). All or nothing
//! is the caller's: it drops the object on an error.

use serde_json::Value;

/// Applies `ops` to `object`; the first operation that fails ends it.
pub fn apply(object: &mut Value, ops: &json_patch::Patch) -> Result<(), json_patch::PatchError> {
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
        json_patch::patch(object, std::slice::from_ref(op))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_test_of_null_passes_where_the_value_is_absent() {
        let patch = |ops: Value| -> json_patch::Patch { serde_json::from_value(ops).expect("ops") };
        let mut object = json!({"metadata": {"name": "a"}});
        let first = patch(json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
        ]));
        apply(&mut object, &first).expect("absent is null");
        assert_eq!(object["metadata"]["finalizers"], json!(["f"]));
        // Now present: the same test fails, as does one whose parent is absent.
        let mut again = object.clone();
        assert!(apply(&mut again, &first).is_err());
        let orphan = patch(json!([{"op": "test", "path": "/spec/x", "value": null}]));
        assert!(apply(&mut object, &orphan).is_err());
    }
}
