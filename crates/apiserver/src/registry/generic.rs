//! What every kind shares: the rules of `ObjectMeta` (names, labels, empty lists, generation),
//! the status subresource's update rule, and [`Generic`], the strategy of kinds without rules
//! of their own. [`prepare_for_create`], [`prepare_for_update`] and [`validate`] run these and
//! then the kind's [`Strategy`]; the REST verbs call them.

use ferry_api::registry::ResourceInfo;
use serde_json::{json, Value};

use super::{NameRule, Resource, Strategy};
use crate::object::{meta_str, metadata_mut};
use crate::status::{ApiError, FieldError};

/// The strategy of a kind with no rules of its own.
#[derive(Debug, Default, Clone, Copy)]
pub struct Generic {
    tracks_generation: bool,
}

impl Generic {
    /// A kind whose `metadata.generation` moves with its spec.
    pub fn tracking_generation() -> Generic {
        Generic {
            tracks_generation: true,
        }
    }
}

impl Strategy for Generic {
    fn tracks_generation(&self) -> bool {
        self.tracks_generation
    }
}

/// Sets `object[key]` if absent (`SetDefaults_*`).
pub fn default(object: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = object {
        map.entry(key.to_string()).or_insert(value);
    }
}

fn has_status(info: &ResourceInfo) -> bool {
    info.subresources.iter().any(|s| s.name == "status")
}

/// ObjectMeta's list and map fields are `omitempty` upstream: an empty one (a patch that
/// removed the last owner reference or finalizer) is not stored, so it reads back as absent.
fn drop_empty_metadata(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "ownerReferences",
            "finalizers",
            "labels",
            "annotations",
            "managedFields",
        ] {
            let empty = match meta.get(field) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(o)) => o.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                meta.remove(field);
            }
        }
    }
}

/// What a create resets and defaults: the generic rules, then the kind's.
pub fn prepare_for_create(
    resource: &Resource,
    object: &mut Value,
    user: Option<&crate::auth::UserInfo>,
) {
    let strategy = &resource.strategy;
    drop_empty_metadata(object);
    if strategy.tracks_generation() {
        metadata_mut(object).insert("generation".into(), json!(1));
    }
    if has_status(resource.info) && strategy.resets_status_on_create() {
        object["status"] = json!({});
    }
    strategy.prepare_for_create(object, user);
}

/// What an update changes beyond the request: empty metadata lists go, `generation` moves when
/// the spec changes, then the kind's rules.
pub fn prepare_for_update(resource: &Resource, new: &mut Value, old: &Value) {
    drop_empty_metadata(new);
    resource.strategy.prepare_for_update(new, old);
    if !resource.strategy.tracks_generation() {
        return;
    }
    let generation = old
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let next = if resource.strategy.spec_changed(new, old) {
        generation + 1
    } else {
        generation
    };
    metadata_mut(new).insert("generation".into(), json!(next));
}

/// The object as upstream's decode → encode writes it (see `ferry_api::kinds`): fields its type
/// always writes are there, `null`s of optional fields are gone. A field of the wrong type fails
/// as upstream's decoding does, with 400.
pub fn canonical(info: &ResourceInfo, object: Value) -> Result<Value, ApiError> {
    ferry_api::kinds::canonical(info.group, info.version, info.kind, object).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {e}",
            info.kind, info.version, info.kind
        ))
    })
}

/// The update rule of kinds with a status subresource: an update of the main resource keeps the
/// stored status; an update of `status` takes only the status (and labels and annotations, as
/// upstream lets it). Other subresources are not updatable.
pub fn merge_update(
    info: &ResourceInfo,
    subresource: &str,
    old: &Value,
    mut requested: Value,
) -> Result<Value, ApiError> {
    match subresource {
        "" => {
            if has_status(info) {
                match old.get("status") {
                    Some(s) => requested["status"] = s.clone(),
                    None => {
                        if let Value::Object(m) = &mut requested {
                            m.remove("status");
                        }
                    }
                }
            }
            Ok(requested)
        }
        "status" => {
            let mut new = old.clone();
            match requested.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Value::Object(m) = &mut new {
                        m.remove("status");
                    }
                }
            }
            for field in ["labels", "annotations"] {
                if let Some(v) = requested.get("metadata").and_then(|m| m.get(field)) {
                    metadata_mut(&mut new).insert(field.into(), v.clone());
                }
            }
            Ok(new)
        }
        other => Err(not_updatable(other)),
    }
}

/// 405 for an update of a subresource that cannot be updated.
pub fn not_updatable(subresource: &str) -> ApiError {
    ApiError::method_not_allowed(format!(
        "the server does not allow this method on the requested resource ({subresource})"
    ))
}

pub use ferry_api::names::{
    dns1035_label_problems, dns1123_label_problems, dns1123_subdomain_problems, is_dns_label,
    is_dns_subdomain, label_value_problems, max_len_error, qualified_name_problems, LABEL_MESSAGE,
    SUBDOMAIN_MESSAGE,
};

/// Upstream's `IsValidPortName` (an IANA service name, as a named `targetPort`).
pub fn port_name_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 15 {
        problems.push(max_len_error(15));
    }
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        problems
            .push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !value.bytes().any(|b| b.is_ascii_lowercase()) {
        problems.push("must contain at least one letter (a-z)".into());
    }
    if value.contains("--") {
        problems.push("must not contain consecutive hyphens".into());
    }
    if value.starts_with('-') || value.ends_with('-') {
        problems.push("must not begin or end with a hyphen".into());
    }
    problems
}

/// An IP address as Go's `netutils.ParseIPSloppy` reads it: IPv4 octets may have leading
/// zeros (read as decimal).
pub fn parse_ip_sloppy(value: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = value.parse() {
        return Some(ip);
    }
    let octets: Vec<&str> = value.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let mut bytes = [0u8; 4];
    for (byte, octet) in bytes.iter_mut().zip(&octets) {
        if octet.is_empty() || octet.len() > 3 || !octet.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *byte = octet.parse().ok()?;
    }
    Some(std::net::IpAddr::from(bytes))
}

/// `ValidateImmutableField`: the field at `pointer` (named `field` in messages) may not change.
pub fn immutable(
    new: &Value,
    old: &Value,
    pointer: &str,
    field: &str,
    errors: &mut Vec<FieldError>,
) {
    let value = new.pointer(pointer);
    if value != old.pointer(pointer) {
        errors.push(FieldError::invalid_raw(
            field,
            value.map(Value::to_string).unwrap_or_default(),
            "field is immutable",
        ));
    }
}

/// Upstream's `IsValidIP`: an address, written in canonical form.
fn ip_address_problem(value: &str) -> Option<String> {
    match value.parse::<std::net::IpAddr>() {
        Err(_) => Some("must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into()),
        Ok(ip) if ip.to_string() != value => {
            Some(format!("must be in canonical form ({:?})", ip.to_string()))
        }
        Ok(_) => None,
    }
}

/// `ValidateObjectMeta`'s name and label rules.
fn validate_object_meta(rule: NameRule, object: &Value, errors: &mut Vec<FieldError>) {
    let name = meta_str(object, "name").unwrap_or("");
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        match rule {
            NameRule::Label if !is_dns_label(name) => {
                errors.push(FieldError::invalid("metadata.name", name, LABEL_MESSAGE))
            }
            NameRule::Subdomain if !is_dns_subdomain(name) => errors.push(FieldError::invalid(
                "metadata.name",
                name,
                SUBDOMAIN_MESSAGE,
            )),
            NameRule::Dns1035Label => {
                for problem in dns1035_label_problems(name) {
                    errors.push(FieldError::invalid("metadata.name", name, problem));
                }
            }
            NameRule::IpAddress => {
                if let Some(problem) = ip_address_problem(name) {
                    errors.push(FieldError::invalid("metadata.name", name, problem));
                }
            }
            _ => {}
        }
    }
    if let Some(Value::Object(labels)) = object.pointer("/metadata/labels") {
        for (k, v) in labels {
            let value = v.as_str().unwrap_or("");
            let key_name = k.rsplit('/').next().unwrap_or(k);
            let ok_key = !key_name.is_empty()
                && key_name.len() <= 63
                && key_name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok_key {
                errors.push(FieldError::invalid("metadata.labels", k.as_str(), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
            }
            let ok_value = value.len() <= 63
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok_value || !v.is_string() {
                errors.push(FieldError::invalid("metadata.labels", value, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
            }
        }
    }
}

/// Validation of a create (`old` is `None`) or an update: object metadata, then the kind's
/// rules. Fails with upstream's 422.
pub fn validate(resource: &Resource, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let strategy = &resource.strategy;
    let mut errors = Vec::new();
    validate_object_meta(strategy.name_rule(), object, &mut errors);
    match old {
        Some(old) => strategy.validate_update(object, old, &mut errors),
        None => strategy.validate(object, &mut errors),
    }
    if errors.is_empty() {
        return Ok(());
    }
    let info = resource.info;
    let name = meta_str(object, "name").unwrap_or("");
    Err(ApiError::invalid(info.kind, info.group, name, &errors))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::registry::Registry;

    /// The resource of `info` as the registry builds it, served or not (optional versions).
    pub(crate) fn resource_of(info: &'static ferry_api::ResourceInfo) -> &'static Resource {
        Box::leak(Box::new(Resource::built_in(info)))
    }

    /// The registered resource of a built-in kind, for strategy tests.
    pub(crate) fn resource(group: &str, version: &str, plural: &str) -> &'static Resource {
        static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        REGISTRY
            .get_or_init(Registry::builtin)
            .builtin_resource(group, version, plural)
            .expect("registered")
    }

    /// `field: message` of each cause of the 422 a create of `object` (or its update from
    /// `old`) gets; empty when it is valid.
    pub(crate) fn field_errors(
        resource: &Resource,
        object: &Value,
        old: Option<&Value>,
    ) -> Vec<String> {
        match validate(resource, object, old) {
            Ok(()) => Vec::new(),
            Err(e) => e
                .details
                .expect("details")
                .causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect(),
        }
    }

    #[test]
    fn names_are_checked_by_the_kinds_rule() {
        let cm = resource("", "v1", "configmaps");
        let err = validate(cm, &json!({"metadata": {"name": "Bad_Name"}}), None).expect_err("bad");
        assert!(err.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));
        let ns = resource("", "v1", "namespaces");
        assert!(validate(ns, &json!({"metadata": {"name": "a.b"}}), None).is_err());
        assert!(validate(cm, &json!({"metadata": {"name": "a.b"}}), None).is_ok());
        let roles = resource("rbac.authorization.k8s.io", "v1", "clusterroles");
        assert!(validate(roles, &json!({"metadata": {"name": "system:Admin"}}), None).is_ok());
        let err = validate(cm, &json!({"metadata": {}}), None).expect_err("no name");
        assert!(
            err.message
                .contains("metadata.name: Required value: name or generateName is required"),
            "{}",
            err.message
        );
    }

    #[test]
    fn labels_are_checked() {
        let cm = resource("", "v1", "configmaps");
        let bad = json!({"metadata": {"name": "x", "labels": {"a b": "ok", "k": "no spaces"}}});
        let err = validate(cm, &bad, None).expect_err("bad labels");
        assert_eq!(err.code, 422);
        assert!(
            err.message.starts_with("ConfigMap \"x\" is invalid: ["),
            "{}",
            err.message
        );
    }

    #[test]
    fn generation_moves_with_the_spec_only() {
        let deployments = resource("apps", "v1", "deployments");
        let mut created = json!({"metadata": {"name": "d", "labels": {}}, "spec": {"replicas": 1}});
        prepare_for_create(deployments, &mut created, None);
        assert_eq!(created.pointer("/metadata/generation"), Some(&json!(1)));
        assert_eq!(created.pointer("/metadata/labels"), None);
        assert_eq!(created.pointer("/status"), Some(&json!({})));
        let mut relabelled = created.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        prepare_for_update(deployments, &mut relabelled, &created);
        assert_eq!(relabelled.pointer("/metadata/generation"), Some(&json!(1)));
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(3);
        prepare_for_update(deployments, &mut scaled, &created);
        assert_eq!(scaled.pointer("/metadata/generation"), Some(&json!(2)));
        let cm = resource("", "v1", "configmaps");
        let mut plain = json!({"metadata": {"name": "c"}});
        prepare_for_create(cm, &mut plain, None);
        assert_eq!(plain, json!({"metadata": {"name": "c"}}));
    }

    #[test]
    fn status_updates_take_only_the_status() {
        let pods = resource("", "v1", "pods").info;
        let old =
            json!({"metadata": {"name": "p"}, "spec": {"a": 1}, "status": {"phase": "Pending"}});
        let requested = json!({"metadata": {"name": "p", "labels": {"x": "y"}}, "spec": {"a": 2}, "status": {"phase": "Running"}});
        let main = merge_update(pods, "", &old, requested.clone()).expect("main");
        assert_eq!(main["spec"]["a"], 2);
        assert_eq!(main["status"]["phase"], "Pending");
        let status = merge_update(pods, "status", &old, requested.clone()).expect("status");
        assert_eq!(status["spec"]["a"], 1);
        assert_eq!(status["status"]["phase"], "Running");
        assert_eq!(status["metadata"]["labels"]["x"], "y");
        assert_eq!(
            merge_update(pods, "binding", &old, requested)
                .expect_err("405")
                .code,
            405
        );
    }
}
