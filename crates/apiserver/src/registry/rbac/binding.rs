//! RoleBindings and ClusterRoleBindings (`ValidateRoleBinding`, `ValidateClusterRoleBinding`,
//! their defaults): the role reference names a Role (bindings only) or ClusterRole of the RBAC
//! group and never changes; each subject is a User, Group or ServiceAccount with upstream's
//! rules for its API group and namespace.

use serde_json::Value;

use super::GROUP;
use crate::registry::generic::dns1123_subdomain_problems;
use crate::registry::{NameRule, Strategy};
use crate::status::FieldError;

/// The strategy of RoleBinding (`namespaced`) and ClusterRoleBinding.
pub struct BindingStrategy {
    /// RoleBinding rather than ClusterRoleBinding.
    pub namespaced: bool,
}

/// Upstream's v1 defaults: the role reference's group, and each subject's group by its kind.
fn set_defaults(object: &mut Value) {
    if !object["roleRef"].is_object() {
        object["roleRef"] = Value::Object(Default::default());
    }
    if let Some(role_ref) = object.get_mut("roleRef").and_then(Value::as_object_mut) {
        if role_ref
            .get("apiGroup")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            role_ref.insert("apiGroup".into(), Value::String(GROUP.into()));
        }
    }
    for subject in object
        .get_mut("subjects")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(subject) = subject.as_object_mut() else {
            continue;
        };
        let unset = subject
            .get("apiGroup")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty();
        let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
        if unset && matches!(kind, "User" | "Group") {
            subject.insert("apiGroup".into(), Value::String(GROUP.into()));
        }
    }
}

fn text<'a>(object: &'a Value, field: &str) -> &'a str {
    object[field].as_str().unwrap_or("")
}

/// A subject's errors (`ValidateRoleBindingSubject`).
fn validate_subject(subject: &Value, namespaced: bool, path: &str, errors: &mut Vec<FieldError>) {
    let (name, group) = (text(subject, "name"), text(subject, "apiGroup"));
    if name.is_empty() {
        errors.push(FieldError::required(format!("{path}.name"), ""));
    }
    match text(subject, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                for problem in dns1123_subdomain_problems(name) {
                    errors.push(FieldError::invalid(format!("{path}.name"), name, problem));
                }
            }
            if !group.is_empty() {
                errors.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    group,
                    &[""],
                ));
            }
            if !namespaced && text(subject, "namespace").is_empty() {
                errors.push(FieldError::required(format!("{path}.namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != GROUP {
                errors.push(FieldError::not_supported(
                    format!("{path}.apiGroup"),
                    group,
                    &[GROUP],
                ));
            }
        }
        kind => errors.push(FieldError::not_supported(
            format!("{path}.kind"),
            kind,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// Go's `%#v` of a role reference, as upstream prints it in "cannot change roleRef".
fn go_role_ref(role_ref: &Value) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
        text(role_ref, "apiGroup"),
        text(role_ref, "kind"),
        text(role_ref, "name")
    )
}

impl Strategy for BindingStrategy {
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&crate::auth::UserInfo>) {
        set_defaults(object);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        set_defaults(new);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let role_ref = &object["roleRef"];
        let group = text(role_ref, "apiGroup");
        if group != GROUP {
            errors.push(FieldError::not_supported(
                "roleRef.apiGroup",
                group,
                &[GROUP],
            ));
        }
        let kinds: &[&str] = if self.namespaced {
            &["Role", "ClusterRole"]
        } else {
            &["ClusterRole"]
        };
        let kind = text(role_ref, "kind");
        if !kinds.contains(&kind) {
            errors.push(FieldError::not_supported("roleRef.kind", kind, kinds));
        }
        let name = text(role_ref, "name");
        if name.is_empty() {
            errors.push(FieldError::required("roleRef.name", ""));
        } else if name.contains('/') || name.contains('%') || name == "." || name == ".." {
            errors.push(FieldError::invalid(
                "roleRef.name",
                name,
                "may not contain '/' or '%', and may not be '.' or '..'",
            ));
        }
        for (i, subject) in object["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            validate_subject(subject, self.namespaced, &format!("subjects[{i}]"), errors);
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        self.validate(new, errors);
        if new["roleRef"] != old["roleRef"] {
            errors.push(FieldError::invalid_raw(
                "roleRef",
                go_role_ref(&new["roleRef"]),
                "cannot change roleRef",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::{tests::resource, validate};
    use serde_json::json;

    fn message(plural: &str, object: &Value, old: Option<&Value>) -> String {
        let r = resource(GROUP, "v1", plural);
        match validate(r, object, old) {
            Ok(()) => String::new(),
            Err(e) => e.message,
        }
    }

    #[test]
    fn defaults_fill_the_groups() {
        let mut binding = json!({"roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "ci"}]});
        set_defaults(&mut binding);
        assert_eq!(binding["roleRef"]["apiGroup"], GROUP);
        assert_eq!(binding["subjects"][0]["apiGroup"], GROUP);
        assert!(binding["subjects"][1].get("apiGroup").is_none());
    }

    #[test]
    fn references_and_subjects_are_checked_as_upstream() {
        let good = json!({"metadata": {"name": "b", "namespace": "a"},
            "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "jane", "apiGroup": GROUP},
                         {"kind": "ServiceAccount", "name": "ci"}]});
        assert_eq!(message("rolebindings", &good, None), "");
        assert_eq!(
            message("clusterrolebindings", &json!({"metadata": {"name": "b"},
                "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "ci"}, {"kind": "Robot", "name": "r2"}]}), None),
            "ClusterRoleBinding.rbac.authorization.k8s.io \"b\" is invalid: [roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\", subjects[0].namespace: Required value, subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"]"
        );
        assert_eq!(
            message("rolebindings", &json!({"metadata": {"name": "b", "namespace": "a"}}), None),
            "RoleBinding.rbac.authorization.k8s.io \"b\" is invalid: [roleRef.apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\", roleRef.kind: Unsupported value: \"\": supported values: \"Role\", \"ClusterRole\", roleRef.name: Required value]"
        );
        let mut moved = good.clone();
        moved["roleRef"]["name"] = json!("other");
        assert_eq!(
            message("rolebindings", &moved, Some(&good)),
            "RoleBinding.rbac.authorization.k8s.io \"b\" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"other\"}: cannot change roleRef"
        );
    }
}
