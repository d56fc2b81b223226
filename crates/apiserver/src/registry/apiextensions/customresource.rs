//! Custom resources: the [`Strategy`] of one served version of a CustomResourceDefinition,
//! built at run time from it (upstream's `apiextensions-apiserver/pkg/registry/customresource`),
//! and the [`Resource`]s a definition serves.
//!
//! Objects are kept in the definition's storage version and served in the version asked for;
//! ferry converts between versions with the `None` strategy (only `apiVersion` changes), as
//! upstream does without a conversion webhook.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_api::printers::CustomColumns;
use ferry_api::registry::{CustomResourceInfo, ResourceInfo};
use ferry_schema::{CostLimits, Structural};
use serde_json::{json, Value};

use super::conversion::ConversionWebhook;
use crate::registry::{NameRule, Resource, ScalePaths, Strategy, SubresourceKind};
use crate::status::{ApiError, FieldError, FieldErrorKind};
use crate::storage::Storage;

/// The rules of one served version of a custom resource.
pub struct CustomResourceStrategy {
    /// `group/version` objects are served in.
    api_version: String,
    /// `group/version` objects are stored in.
    storage_api_version: String,
    /// The version's schema (none when it has none: `x-kubernetes-preserve-unknown-fields`
    /// everywhere, as a v1beta1 definition without one).
    schema: Option<Arc<Structural>>,
    /// Whether the version has the `status` subresource (then the status is its own, and
    /// `metadata.generation` does not count it).
    status: bool,
    /// The version's `selectableFields`: the field selector name and where its value is.
    selectable: Vec<(String, String)>,
    /// The definition is being deleted: no new objects.
    terminating: bool,
    /// The definition's conversion webhook (`None`: versions differ only in `apiVersion`).
    conversion: Option<Arc<ConversionWebhook>>,
}

/// `.spec.replicas` as a JSON pointer (`/spec/replicas`).
fn pointer(json_path: &str) -> String {
    json_path
        .trim_start_matches('.')
        .split('.')
        .fold(String::new(), |mut out, part| {
            out.push('/');
            out.push_str(&part.replace('~', "~0").replace('/', "~1"));
            out
        })
}

impl CustomResourceStrategy {
    fn schema_errors(errors: Vec<ferry_schema::FieldError>, out: &mut Vec<FieldError>) {
        out.extend(errors.into_iter().map(|e| FieldError {
            field: e.field,
            kind: kind_of(e.kind),
            value: e.value,
            detail: e.detail,
        }));
    }

    /// Everything but metadata (and the status, when it is a subresource): what
    /// `metadata.generation` counts.
    fn counted<'a>(&self, object: &'a Value) -> impl Iterator<Item = (&'a String, &'a Value)> {
        let status = self.status;
        object
            .as_object()
            .into_iter()
            .flatten()
            .filter(move |(k, _)| k.as_str() != "metadata" && !(status && k.as_str() == "status"))
    }
}

/// The apiserver's kind of a schema error.
pub(crate) fn kind_of(kind: ferry_schema::FieldErrorKind) -> FieldErrorKind {
    use ferry_schema::FieldErrorKind as S;
    match kind {
        S::NotFound => FieldErrorKind::NotFound,
        S::Required => FieldErrorKind::Required,
        S::Duplicate => FieldErrorKind::Duplicate,
        S::Invalid => FieldErrorKind::Invalid,
        S::TypeInvalid => FieldErrorKind::TypeInvalid,
        S::NotSupported => FieldErrorKind::NotSupported,
        S::Forbidden => FieldErrorKind::Forbidden,
        S::TooLong => FieldErrorKind::TooLong,
        S::TooMany => FieldErrorKind::TooMany,
        S::Internal => FieldErrorKind::Internal,
    }
}

#[async_trait]
impl Strategy for CustomResourceStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&crate::auth::UserInfo>) {
        if let Some(schema) = &self.schema {
            schema.apply_defaults(object);
        }
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        if let Some(schema) = &self.schema {
            schema.apply_defaults(new);
        }
    }

    fn spec_changed(&self, new: &Value, old: &Value) -> bool {
        !self.counted(new).eq(self.counted(old))
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        if let Some(schema) = &self.schema {
            Self::schema_errors(schema.validate(object), errors);
            Self::schema_errors(schema.validate_rules(object, None), errors);
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        if let Some(schema) = &self.schema {
            Self::schema_errors(schema.validate_update(new, old), errors);
            Self::schema_errors(schema.validate_rules(new, Some(old)), errors);
        }
    }

    fn selectable_fields(&self, object: &Value, fields: &mut BTreeMap<String, String>) {
        for (name, pointer) in &self.selectable {
            let value = match object.pointer(pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            fields.insert(name.clone(), value);
        }
    }

    fn prune_unknown_fields(&self, _info: &ResourceInfo, object: &mut Value) -> Vec<String> {
        match &self.schema {
            Some(schema) => schema.prune(object),
            None => Vec::new(),
        }
    }

    fn accepts_strategic_merge(&self) -> bool {
        false
    }

    async fn begin_create(
        &self,
        _storage: &Storage,
        _info: &ResourceInfo,
        _key: &[u8],
        _object: &mut Value,
    ) -> Result<(), ApiError> {
        if self.terminating {
            return Err(ApiError::method_not_allowed(
                "create not allowed while custom resource definition is terminating",
            ));
        }
        Ok(())
    }

    fn encode_for_storage(&self, mut object: Value) -> Value {
        object["apiVersion"] = json!(self.storage_api_version);
        object
    }

    fn decode_stored(&self, mut object: Value) -> Value {
        if self.conversion.is_some() {
            // Converted (and defaulted) by `convert_stored`.
            return object;
        }
        object["apiVersion"] = json!(self.api_version);
        if let Some(schema) = &self.schema {
            schema.apply_defaults(&mut object);
        }
        object
    }

    async fn convert_stored(
        &self,
        storage: &Storage,
        objects: &mut [Value],
    ) -> Result<(), ApiError> {
        let Some(conversion) = &self.conversion else {
            return Ok(());
        };
        let others: Vec<usize> = (0..objects.len())
            .filter(|&i| {
                objects[i].get("apiVersion").and_then(Value::as_str) != Some(&self.api_version)
            })
            .collect();
        if !others.is_empty() {
            let sent = others.iter().map(|&i| objects[i].clone()).collect();
            let converted = conversion.convert(storage, &self.api_version, sent).await?;
            for (i, object) in others.into_iter().zip(converted) {
                objects[i] = object;
            }
        }
        if let Some(schema) = &self.schema {
            for object in objects.iter_mut() {
                schema.apply_defaults(object);
            }
        }
        Ok(())
    }

    async fn convert_for_storage(
        &self,
        storage: &Storage,
        object: &Value,
    ) -> Result<Option<Value>, ApiError> {
        let Some(conversion) = &self.conversion else {
            return Ok(None);
        };
        if object.get("apiVersion").and_then(Value::as_str) == Some(&self.storage_api_version) {
            return Ok(None);
        }
        let converted = conversion
            .convert(storage, &self.storage_api_version, vec![object.clone()])
            .await?;
        Ok(converted.into_iter().next())
    }
}

/// What a definition serves: one resource per served version, or why it cannot be served (a
/// schema that does not parse; the definition's validation keeps those out, so this is a
/// definition stored by an older server).
pub fn resources_of(crd: &Value, terminating: bool) -> Result<Vec<Arc<Resource>>, String> {
    let text = |pointer: &str| crd.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    let strings = |pointer: &str| -> Vec<String> {
        crd.pointer(pointer)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let group = text("/spec/group");
    let kind = text("/status/acceptedNames/kind");
    let kind = if kind.is_empty() {
        text("/spec/names/kind")
    } else {
        kind
    };
    let names = |field: &str| {
        let accepted = text(&format!("/status/acceptedNames/{field}"));
        if accepted.is_empty() {
            text(&format!("/spec/names/{field}")).to_string()
        } else {
            accepted.to_string()
        }
    };
    let plural = names("plural");
    let singular = {
        let s = names("singular");
        if s.is_empty() {
            kind.to_lowercase()
        } else {
            s
        }
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        .ok_or("no storage version")?;
    let conversion = ConversionWebhook::of(crd)?.map(Arc::new);
    let mut served = Vec::new();
    for version in &versions {
        if version.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let name = version.get("name").and_then(Value::as_str).unwrap_or("");
        let subresources = version.get("subresources");
        let status = subresources.and_then(|s| s.get("status")).is_some();
        let scale = subresources.and_then(|s| s.get("scale"));
        let info = CustomResourceInfo {
            group: group.to_string(),
            version: name.to_string(),
            kind: kind.to_string(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced: text("/spec/scope") == "Namespaced",
            short_names: strings("/status/acceptedNames/shortNames"),
            categories: strings("/status/acceptedNames/categories"),
            status,
            scale: scale.is_some(),
        }
        .intern();
        let schema = match version.pointer("/schema/openAPIV3Schema") {
            Some(schema) => Some(Arc::new(
                // An accepted definition is served whatever its rules' estimated costs.
                Structural::with_cost_limits(
                    schema,
                    "spec.versions.schema.openAPIV3Schema",
                    CostLimits::Unlimited,
                )
                .map_err(|errors| {
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                })?,
            )),
            None => None,
        };
        let selectable = version
            .get("selectableFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
            .map(|path| (path.trim_start_matches('.').to_string(), pointer(path)))
            .collect();
        let strategy = CustomResourceStrategy {
            api_version: format!("{group}/{name}"),
            storage_api_version: format!("{group}/{storage}"),
            schema,
            status,
            selectable,
            terminating,
            conversion: conversion.clone(),
        };
        let columns = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let scale_paths = match scale {
            Some(scale) => {
                let path = |field: &str| scale.get(field).and_then(Value::as_str).map(pointer);
                ScalePaths {
                    spec_replicas: path("specReplicasPath").unwrap_or_default(),
                    status_replicas: path("statusReplicasPath").unwrap_or_default(),
                    selector: path("labelSelectorPath"),
                    selector_is_text: true,
                }
            }
            None => ScalePaths::default(),
        };
        let mut kinds = Vec::new();
        if status {
            kinds.push(("status", SubresourceKind::Part));
        }
        if scale.is_some() {
            kinds.push(("scale", SubresourceKind::Scale));
        }
        let mut resource = Resource::new(
            info,
            Box::new(strategy),
            Arc::new(CustomColumns::new(&columns)),
            scale_paths,
            kinds,
        );
        resource.schema = version
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .map(Arc::new);
        served.push(Arc::new(resource));
    }
    Ok(served)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_become_pointers() {
        assert_eq!(pointer(".spec.replicas"), "/spec/replicas");
        assert_eq!(pointer(".status.a/b"), "/status/a~1b");
    }
}
