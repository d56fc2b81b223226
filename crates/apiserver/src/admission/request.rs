//! What plugins that call out or evaluate expressions are told about a request: upstream's
//! `admission.k8s.io/v1` `AdmissionRequest`, sent to webhooks and bound to `request` in CEL.

use serde_json::{json, Value};

use super::{Attributes, Operation};
use crate::object::meta_str;
use crate::registry::{GroupResource, NAMESPACES};

/// `CREATE`, `UPDATE` or `DELETE`.
pub fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
    }
}

/// The object after the request and before it (`null` where there is none): a create has no
/// old object, a delete no new one.
pub fn new_and_old(attributes: &Attributes<'_>, object: &Value) -> (Value, Value) {
    match attributes.operation {
        Operation::Create => (object.clone(), Value::Null),
        Operation::Update => (
            object.clone(),
            attributes.old.cloned().unwrap_or(Value::Null),
        ),
        Operation::Delete => (Value::Null, object.clone()),
    }
}

/// The request about `object` (without the `uid` that only webhooks get); `object` and
/// `oldObject` only `with_objects` (CEL expressions have them as variables of their own, and
/// upstream leaves them out of their `request`).
pub fn admission_request(attributes: &Attributes<'_>, object: &Value, with_objects: bool) -> Value {
    let info = attributes.resource;
    let name = meta_str(object, "name").unwrap_or_default();
    // A Namespace's own requests carry its name as their namespace, as upstream's do.
    let namespace = if GroupResource::of(info) == NAMESPACES {
        name
    } else {
        attributes.namespace(object)
    };
    let kind = json!({"group": info.group, "version": info.version, "kind": info.kind});
    let resource = json!({"group": info.group, "version": info.version, "resource": info.plural});
    let options = match attributes.operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
    };
    let user = attributes.user.map_or(
        json!({}),
        |u| json!({"username": u.name, "uid": u.uid, "groups": u.groups}),
    );
    let mut request = json!({
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": name,
        "namespace": namespace,
        "operation": operation_name(attributes.operation),
        "userInfo": user,
        "dryRun": attributes.dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options},
    });
    if !attributes.subresource.is_empty() {
        request["subResource"] = json!(attributes.subresource);
    }
    if with_objects {
        let (new, old) = new_and_old(attributes, object);
        request["object"] = new;
        request["oldObject"] = old;
    }
    request
}
