//! Secrets (`pkg/registry/core/secret`): type `Opaque` by default, keys checked as ConfigMap
//! keys, selectable by `type`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::core::configmap::validate_keys;
use crate::registry::generic::default;
use crate::registry::Strategy;
use crate::status::FieldError;

/// The Secret strategy.
pub struct SecretStrategy;

impl Strategy for SecretStrategy {
    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        default(object, "type", json!("Opaque"));
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_keys(object, errors);
        // A service-account token Secret names its account (`ValidateSecret`).
        let account = "kubernetes.io/service-account.name";
        if object["type"] == "kubernetes.io/service-account-token"
            && object["metadata"]["annotations"][account]
                .as_str()
                .is_none_or(str::is_empty)
        {
            errors.push(FieldError::required(
                format!("metadata.annotations[{account}]"),
                "",
            ));
        }
    }

    fn selectable_fields(&self, object: &Value, fields: &mut BTreeMap<String, String>) {
        fields.insert("type".into(), ferry_api::selector::text_at(object, "/type"));
    }
}
