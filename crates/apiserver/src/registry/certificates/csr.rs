//! The CertificateSigningRequest strategy (certificates.k8s.io/v1), as upstream's
//! `pkg/registry/certificates/certificates/strategy.go`:
//!
//! - create records who asks (`spec.username`, `uid`, `groups`, `extra` — clients cannot set
//!   them) and starts with an empty status;
//! - an update of the main resource changes neither spec nor status (only metadata);
//! - `approval` changes only `status.conditions`;
//! - `status` changes the status except the Approved/Denied conditions (those belong to
//!   `approval`), never the spec;
//! - validation: a PEM `CERTIFICATE REQUEST` that parses, a signer, usages; a certificate only on
//!   an approved request and never replaced; not both Approved and Denied, and approval
//!   conditions are never removed.

use std::collections::BTreeMap;

use base64::Engine as _;
use ferry_api::registry::ResourceInfo;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::generic::not_updatable;
use crate::registry::Strategy;
use crate::status::{ApiError, FieldError};

/// The CertificateSigningRequest strategy.
pub struct CsrStrategy;

impl Strategy for CsrStrategy {
    fn prepare_for_create(&self, object: &mut Value, user: Option<&UserInfo>) {
        set_requesting_user(object, user);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate(object, None, errors);
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        validate(new, Some(old), errors);
    }

    fn merge_update(
        &self,
        _info: &ResourceInfo,
        subresource: &str,
        old: &Value,
        requested: Value,
    ) -> Result<Value, ApiError> {
        merge_update(subresource, old, &requested).ok_or_else(|| not_updatable(subresource))
    }

    fn selectable_fields(&self, object: &Value, fields: &mut BTreeMap<String, String>) {
        fields.insert(
            "spec.signerName".into(),
            ferry_api::selector::text_at(object, "/spec/signerName"),
        );
    }
}

const APPROVAL_TYPES: &[&str] = &["Approved", "Denied"];

/// The key usages upstream accepts in `spec.usages`.
const KEY_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// On create: the requesting user, from authentication, whatever the client sent.
pub fn set_requesting_user(object: &mut Value, user: Option<&UserInfo>) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["username", "uid", "groups", "extra"] {
        spec.remove(field);
    }
    if let Some(user) = user {
        spec.insert("username".into(), json!(user.name));
        if !user.uid.is_empty() {
            spec.insert("uid".into(), json!(user.uid));
        }
        spec.insert("groups".into(), json!(user.groups));
    }
}

fn conditions(object: &Value) -> Vec<Value> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn condition_type(condition: &Value) -> &str {
    condition.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Fills `lastUpdateTime` and `lastTransitionTime` of conditions that come without them, as
/// upstream's `populateConditionTimestamps`.
fn populate_condition_timestamps(new: &mut Value, old: &Value) {
    let now = crate::object::now_rfc3339();
    let old_conditions = conditions(old);
    let Some(list) = new
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for condition in list.iter_mut().filter_map(Value::as_object_mut) {
        let kind = condition
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let previous = old_conditions
            .iter()
            .find(|c| condition_type(c) == kind && c.get("status") == condition.get("status"));
        for field in ["lastUpdateTime", "lastTransitionTime"] {
            if condition.get(field).is_none_or(Value::is_null) {
                let value = previous
                    .and_then(|p| p.get(field))
                    .filter(|v| !v.is_null())
                    .cloned()
                    .unwrap_or_else(|| json!(now));
                condition.insert(field.into(), value);
            }
        }
    }
}

/// The object an update of `subresource` ("" for the main resource) writes, from the stored
/// `old` and the `requested` one. `None`: not a subresource of CSRs.
pub fn merge_update(subresource: &str, old: &Value, requested: &Value) -> Option<Value> {
    let mut new = old.clone();
    match subresource {
        "" => {
            // Only metadata changes through the main resource.
            if let Some(meta) = requested.get("metadata") {
                new["metadata"] = meta.clone();
            }
        }
        "approval" => {
            let requested_conditions = conditions(requested);
            if !new.get("status").is_some_and(Value::is_object) {
                new["status"] = json!({});
            }
            new["status"]["conditions"] = json!(requested_conditions);
        }
        "status" => {
            let mut status = requested.get("status").cloned().unwrap_or(json!({}));
            // Approval conditions are the approval subresource's: keep the stored ones.
            let kept: Vec<Value> = conditions(requested)
                .into_iter()
                .filter(|c| !APPROVAL_TYPES.contains(&condition_type(c)))
                .chain(
                    conditions(old)
                        .into_iter()
                        .filter(|c| APPROVAL_TYPES.contains(&condition_type(c))),
                )
                .collect();
            if let Value::Object(s) = &mut status {
                if kept.is_empty() {
                    s.remove("conditions");
                } else {
                    s.insert("conditions".into(), json!(kept));
                }
            }
            new["status"] = status;
            for field in ["labels", "annotations"] {
                if let Some(v) = requested.get("metadata").and_then(|m| m.get(field)) {
                    crate::object::metadata_mut(&mut new).insert(field.into(), v.clone());
                }
            }
        }
        _ => return None,
    }
    populate_condition_timestamps(&mut new, old);
    Some(new)
}

fn has_condition(object: &Value, kind: &str) -> bool {
    conditions(object).iter().any(|c| condition_type(c) == kind)
}

/// Why `spec.request` is not a usable certificate request.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    /// Not a string.
    #[error("")]
    NotAString,
    /// Not base64.
    #[error(transparent)]
    Base64(#[from] base64::DecodeError),
    /// Not PEM.
    #[error(transparent)]
    Pem(#[from] pem::PemError),
    /// A PEM block of another type.
    #[error("PEM block type must be CERTIFICATE REQUEST, not {0}")]
    BlockType(String),
    /// Not a PKCS#10 request.
    #[error("{0}")]
    Der(String),
}

/// Whether `spec.request` (base64 of the PEM bytes in JSON) is a parsable
/// `CERTIFICATE REQUEST`.
fn parse_request(object: &Value) -> Result<(), RequestError> {
    let encoded = object
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .ok_or(RequestError::NotAString)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded)?;
    let block = pem::parse(&bytes)?;
    if block.tag() != "CERTIFICATE REQUEST" {
        return Err(RequestError::BlockType(block.tag().to_string()));
    }
    use x509_parser::prelude::FromDer as _;
    x509_parser::certification_request::X509CertificationRequest::from_der(block.contents())
        .map_err(|e| RequestError::Der(e.to_string()))?;
    Ok(())
}

/// Upstream's `ValidateCertificateSigningRequest{Create,Update}`, the parts ferry enforces.
pub fn validate(object: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    match object.pointer("/spec/request") {
        None | Some(Value::Null) => errors.push(FieldError::required("spec.request", "")),
        Some(_) => {
            if let Err(why) = parse_request(object) {
                errors.push(FieldError::invalid(
                    "spec.request",
                    "",
                    format!("invalid certificate request: {why}"),
                ));
            }
        }
    }
    let signer = object
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if signer.is_empty() {
        errors.push(FieldError::required("spec.signerName", ""));
    } else if signer.split('/').count() != 2 || signer.starts_with('/') || signer.ends_with('/') {
        errors.push(FieldError::invalid(
            "spec.signerName",
            signer,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    let usages = object
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if usages.is_empty() {
        errors.push(FieldError::required("spec.usages", ""));
    }
    let mut seen = vec![];
    for (i, usage) in usages.iter().enumerate() {
        match usage.as_str() {
            Some(u) if KEY_USAGES.contains(&u) => {
                if seen.contains(&u) {
                    errors.push(FieldError::duplicate(format!("spec.usages[{i}]"), u));
                }
                seen.push(u);
            }
            _ => errors.push(FieldError::invalid_raw(
                format!("spec.usages[{i}]"),
                usage.to_string(),
                "supported values: \"any\", \"cert sign\", \"client auth\", \"code signing\", \"content commitment\", \"crl sign\", \"data encipherment\", \"decipher only\", \"digital signature\", \"email protection\", \"encipher only\", \"ipsec end system\", \"ipsec tunnel\", \"ipsec user\", \"key agreement\", \"key encipherment\", \"microsoft sgc\", \"netscape sgc\", \"ocsp signing\", \"s/mime\", \"server auth\", \"signing\", \"timestamping\"",
            )),
        }
    }
    for (i, condition) in conditions(object).iter().enumerate() {
        let kind = condition_type(condition);
        if kind.is_empty() {
            errors.push(FieldError::required(
                format!("status.conditions[{i}].type"),
                "",
            ));
        }
        let status = condition
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("");
        if APPROVAL_TYPES.contains(&kind) && status != "True" {
            errors.push(FieldError::invalid_raw(
                format!("status.conditions[{i}].status"),
                format!("{status:?}"),
                "must be \"True\" for Approved and Denied conditions",
            ));
        }
    }
    if let Some(value) = object
        .pointer("/spec/expirationSeconds")
        .filter(|v| !v.is_null())
    {
        match value.as_i64().filter(|s| i32::try_from(*s).is_ok()) {
            None => errors.push(FieldError::invalid_raw(
                "spec.expirationSeconds",
                value.to_string(),
                "must be a 32-bit integer",
            )),
            Some(seconds) if seconds < 600 => {
                errors.push(FieldError::invalid_raw(
                    "spec.expirationSeconds",
                    seconds.to_string(),
                    "may not specify a duration less than 600 seconds (10 minutes)",
                ));
            }
            Some(_) => {}
        }
    }
    if has_condition(object, "Approved") && has_condition(object, "Denied") {
        errors.push(FieldError::invalid(
            "status.conditions",
            "Approved",
            "Approved condition may not be combined with Denied",
        ));
    }
    let certificate = object
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !certificate.is_empty() && !has_condition(object, "Approved") {
        errors.push(FieldError::forbidden(
            "status.certificate",
            "certificate can only be set if an Approved condition exists",
        ));
    }
    let Some(old) = old else {
        return;
    };
    for kind in APPROVAL_TYPES {
        if has_condition(old, kind) && !has_condition(object, kind) {
            errors.push(FieldError::forbidden(
                "status.conditions",
                format!("updates may not remove a condition of type {kind:?}"),
            ));
        }
    }
    let old_certificate = old
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !old_certificate.is_empty() && old_certificate != certificate {
        errors.push(FieldError::forbidden(
            "status.certificate",
            "updates may not modify existing certificate content",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:n1");
        params
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem")
    }

    fn csr() -> Value {
        let request = base64::engine::general_purpose::STANDARD.encode(csr_pem());
        json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "node-csr-1"},
            "spec": {"request": request, "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                "usages": ["digital signature", "client auth"],
                "username": "admin", "groups": ["system:masters"]},
            "status": {}})
    }

    #[test]
    fn create_records_the_requesting_user() {
        let mut object = csr();
        let user = UserInfo {
            name: "system:bootstrap:abcdef".into(),
            uid: String::new(),
            groups: vec!["system:bootstrappers".into(), "system:authenticated".into()],
        };
        set_requesting_user(&mut object, Some(&user));
        assert_eq!(object["spec"]["username"], "system:bootstrap:abcdef");
        assert_eq!(
            object["spec"]["groups"],
            json!(["system:bootstrappers", "system:authenticated"])
        );
        assert!(object["spec"].get("uid").is_none());
        let mut errors = Vec::new();
        validate(&object, None, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn validation_as_upstream() {
        let mut bad = csr();
        bad["spec"]["request"] = json!(base64::engine::general_purpose::STANDARD.encode("nope"));
        bad["spec"]["signerName"] = json!("");
        bad["spec"]["usages"] = json!([]);
        let mut errors = Vec::new();
        validate(&bad, None, &mut errors);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.request", "spec.signerName", "spec.usages"]);
        // A certificate needs an approval.
        let mut issued = csr();
        issued["status"]["certificate"] = json!("Y2VydA==");
        let mut errors = Vec::new();
        validate(&issued, None, &mut errors);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn subresources_change_only_their_part() {
        let old = csr();
        let mut requested = old.clone();
        requested["spec"]["signerName"] = json!("example.com/other");
        requested["status"]["certificate"] = json!("Y2VydA==");
        requested["status"]["conditions"] = json!([{"type": "Approved", "status": "True",
            "reason": "AutoApproved"}]);
        // approval: the conditions only, timestamps filled in.
        let approved = merge_update("approval", &old, &requested).expect("approval");
        assert_eq!(approved["spec"], old["spec"]);
        assert!(approved["status"].get("certificate").is_none());
        assert_eq!(approved["status"]["conditions"][0]["type"], "Approved");
        assert!(approved["status"]["conditions"][0]["lastUpdateTime"].is_string());
        // status: the certificate, but not the approval conditions.
        let status = merge_update("status", &old, &requested).expect("status");
        assert_eq!(status["spec"], old["spec"]);
        assert_eq!(status["status"]["certificate"], "Y2VydA==");
        assert!(status["status"].get("conditions").is_none());
        let mut errors = Vec::new();
        validate(&status, Some(&old), &mut errors);
        assert_eq!(errors.len(), 1, "no certificate before approval");
        let issued = merge_update("status", &approved, &requested).expect("status");
        assert_eq!(
            issued["status"]["conditions"],
            approved["status"]["conditions"]
        );
        let mut errors = Vec::new();
        validate(&issued, Some(&approved), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        // main resource: neither spec nor status.
        let main = merge_update("", &issued, &requested).expect("main");
        assert_eq!(main["spec"], old["spec"]);
        assert_eq!(main["status"], issued["status"]);
        // Approval conditions stay; the certificate is never replaced.
        let mut removed = issued.clone();
        removed["status"]["conditions"] = json!([]);
        removed["status"]["certificate"] = json!("b3RoZXI=");
        let mut errors = Vec::new();
        validate(&removed, Some(&issued), &mut errors);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(merge_update("scale", &old, &requested).is_none());
    }
}
