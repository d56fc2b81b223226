//! Structural schemas of CustomResourceDefinitions: what upstream's
//! `k8s.io/apiextensions-apiserver/pkg/apiserver/schema` (with its `validation` and `cel`
//! packages, and kube-openapi's validator) does with a CRD version's `openAPIV3Schema`.
//!
//! A schema is checked and parsed once ([`Structural::new`]: the structural invariants, the
//! CRD OpenAPI checks, default values, and the compilation of `x-kubernetes-validations`
//! rules through `ferry-cel`), then used for every custom resource of that version:
//! [`Structural::prune`] drops unknown fields, [`Structural::apply_defaults`] fills in
//! defaults, [`Structural::validate`] checks values (on update,
//! [`Structural::validate_update`], with upstream's validation ratcheting: `correlation`), and
//! [`Structural::validate_rules`] runs the CEL rules, whose estimated costs are limited when
//! the schema is accepted (`cost`). Errors are [`FieldError`]s that print as upstream's
//! `field.Error`s.
//!
//! Start reading at [`schema`] (the parsed tree and the checks on it), then [`validation`].
//! Pure functions over JSON, no I/O.

mod correlation;
mod cost;
mod defaulting;
mod errors;
mod formats;
mod listtype;
mod pruning;
mod rules;
mod schema;
mod validation;

use std::collections::HashSet;

use serde_json::Value;

pub use errors::{go_value, FieldError, FieldErrorKind};

/// Which `x-kubernetes-validations` expressions are held to upstream's estimated cost limits.
/// Upstream checks them when a definition is written, except for expressions the definition
/// already had, and not when it serves a definition it accepted before.
#[derive(Debug, Clone, Copy)]
pub enum CostLimits<'a> {
    /// Every expression: a new definition.
    All,
    /// Every expression but these, which the definition had before (see [`expressions`]).
    Except(&'a HashSet<String>),
    /// None: a stored definition, being served.
    Unlimited,
}

impl CostLimits<'_> {
    /// Whether the expression `source` is held to the limits.
    pub(crate) fn applies_to(self, source: &str) -> bool {
        match self {
            CostLimits::All => true,
            CostLimits::Except(had) => !had.contains(source),
            CostLimits::Unlimited => false,
        }
    }
}

/// Every `rule` and `messageExpression` in a schema (JSONSchemaProps as JSON).
pub fn expressions(schema: &Value) -> HashSet<String> {
    let mut out = HashSet::new();
    rules::expressions(schema, &mut out);
    out
}

/// A CRD version's `openAPIV3Schema` (JSONSchemaProps as JSON), checked and parsed once.
pub struct Structural {
    root: schema::Schema,
}

impl std::fmt::Debug for Structural {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Structural")
            .field("type", &self.root.type_)
            .field(
                "properties",
                &self.root.properties.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Structural {
    /// Parses and checks a schema. The errors are upstream's reasons for rejecting it (a
    /// schema that is not structural, an invalid OpenAPI schema, defaults that do not
    /// validate, rules that do not compile or whose estimated cost is over upstream's limits),
    /// with paths under `base_path` (e.g.
    /// `spec.versions[0].schema.openAPIV3Schema`), e.g.
    /// `spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields`.
    pub fn new(schema: &Value, base_path: &str) -> Result<Structural, Vec<FieldError>> {
        Structural::with_cost_limits(schema, base_path, CostLimits::All)
    }

    /// [`Structural::new`], holding only the expressions `limits` says to upstream's cost
    /// limits: an updated definition's new expressions, none of a stored definition's.
    pub fn with_cost_limits(
        schema: &Value,
        base_path: &str,
        limits: CostLimits<'_>,
    ) -> Result<Structural, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut root = schema::parse(schema, base_path, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let structural = schema::validate_structural(&root, base_path);
        let structural_ok = structural.is_empty();
        errors.extend(structural);
        errors.extend(schema::validate_crd_schema(&root, base_path));
        if structural_ok {
            errors.extend(defaulting::validate_defaults(&root, base_path));
        }
        // Upstream compiles rules only for schemas without other problems.
        if errors.is_empty() {
            errors.extend(rules::compile(&mut root, base_path, limits));
        }
        if errors.is_empty() {
            Ok(Structural { root })
        } else {
            Err(errors)
        }
    }

    /// Applies `default`s as upstream does for create, update and reads: into objects that are
    /// present (a missing parent is not created), within additionalProperties and items too,
    /// and over `null`s the schema does not allow.
    pub fn apply_defaults(&self, value: &mut Value) {
        defaulting::apply(value, &self.root);
    }

    /// Prunes the fields the schema does not specify (`x-kubernetes-preserve-unknown-fields`
    /// stops it; `apiVersion`, `kind` and `metadata` are kept at the root and in
    /// `x-kubernetes-embedded-resource` objects; the root `metadata`'s own fields are the
    /// caller's), then drops `null`s the schema neither allows nor defaults, as upstream's
    /// decoding does. Returns the pruned fields, sorted, as `fieldValidation=Strict` names
    /// them in `unknown field "spec.foo"` (the dropped `null`s are not listed).
    pub fn prune(&self, value: &mut Value) -> Vec<String> {
        let pruned = pruning::prune(value, &self.root, true);
        pruning::prune_non_nullable_nulls(value, Some(&self.root));
        pruned
    }

    /// Validates a whole custom resource: the schema's value validations (as kube-openapi),
    /// the `apiVersion`/`kind` of embedded resources, and `x-kubernetes-list-type` set/map
    /// uniqueness. The resource's own metadata is the caller's to validate.
    pub fn validate(&self, value: &Value) -> Vec<FieldError> {
        let mut errors = validation::validate(&self.root, value, "");
        validation::validate_embedded(&self.root, value, "", &mut errors);
        listtype::validate(&self.root, value, "", &mut errors);
        errors
    }

    /// Validates an update of `old` to `new` as [`Structural::validate`] validates a value,
    /// with upstream's validation ratcheting: a schema error at a value unchanged from its
    /// correlated old value is dropped (fields correlate by name, map-list items by key), so
    /// an object stored under an older, looser schema can be updated elsewhere; the
    /// `x-kubernetes-list-type` checks run only if `old` passes them. Embedded resources'
    /// `apiVersion`/`kind` do not ratchet.
    pub fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errors = validation::validate_update(&self.root, new, old, "");
        validation::validate_embedded(&self.root, new, "", &mut errors);
        let mut old_list_errors = Vec::new();
        listtype::validate(&self.root, old, "", &mut old_list_errors);
        if old_list_errors.is_empty() {
            listtype::validate(&self.root, new, "", &mut errors);
        }
        errors
    }

    /// Evaluates the `x-kubernetes-validations` rules with `self` bound at each rule's node
    /// and, for transition rules (naming `oldSelf`), `oldSelf` bound to the correlated old
    /// value; a transition rule without one is skipped, unless it sets `optionalOldSelf`,
    /// which binds `oldSelf` as a CEL optional (`optional.none()` without an old value).
    ///
    /// With `old` (an update), a rule that does not name `oldSelf` and fails where the value
    /// is unchanged from its correlated old value (or, where none correlates, its nearest
    /// correlated ancestor is) does not report: upstream's ratcheting.
    pub fn validate_rules(&self, new: &Value, old: Option<&Value>) -> Vec<FieldError> {
        rules::validate(&self.root, new, old)
    }

    /// Whether the schema has any `x-kubernetes-validations` rule (so callers can skip
    /// [`Structural::validate_rules`]).
    pub fn has_rules(&self) -> bool {
        self.root.has_rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "spec.versions[0].schema.openAPIV3Schema";

    fn widget() -> Structural {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["color"],
                    "x-kubernetes-validations": [{"rule": "self.replicas <= self.maxReplicas", "message": "replicas must not exceed maxReplicas"}],
                    "properties": {
                        "color": {"type": "string", "enum": ["red", "blue"]},
                        "replicas": {"type": "integer", "default": 1, "minimum": 0},
                        "maxReplicas": {"type": "integer", "default": 3},
                        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            },
        });
        Structural::new(&schema, BASE).expect("a structural schema")
    }

    #[test]
    fn a_custom_resource_goes_through_prune_default_validate_rules() {
        let s = widget();
        let mut cr = json!({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"color": "pink", "extra": true, "replicas": 5, "tags": ["a", "a"], "config": {"anything": 1}},
            "status": {"ready": "yes"},
        });
        assert_eq!(s.prune(&mut cr), vec!["spec.extra"]);
        s.apply_defaults(&mut cr);
        assert_eq!(cr["spec"]["maxReplicas"], json!(3));
        assert_eq!(cr["spec"]["config"], json!({"anything": 1}));
        let errors: Vec<String> = s.validate(&cr).iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            vec![
                "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\"",
                "status.ready: Invalid value: \"string\": status.ready in body must be of type boolean: \"string\"",
                "spec.tags[1]: Duplicate value: \"a\"",
            ]
        );
        let rules: Vec<String> = s
            .validate_rules(&cr, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            rules,
            vec!["spec: Invalid value: \"object\": replicas must not exceed maxReplicas"]
        );
        assert!(s.has_rules());
    }

    fn strings(errors: Vec<FieldError>) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn updates_ratchet_errors_at_unchanged_values() {
        let s = widget();
        // Stored under an older, looser schema: a color no longer allowed, a duplicate tag,
        // replicas above maxReplicas.
        let old = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"color": "pink", "replicas": 5, "maxReplicas": 3, "tags": ["a", "a"]},
            "status": {"ready": "yes"}});
        let mut new = old.clone();
        new["status"] = json!({"ready": true});
        assert!(strings(s.validate_update(&new, &old)).is_empty());
        assert!(s.validate_rules(&new, Some(&old)).is_empty());
        // The same update as a create is refused.
        assert_eq!(s.validate(&new).len(), 2);
        assert_eq!(s.validate_rules(&new, None).len(), 1);

        // Changing an invalid value to another invalid one is refused, and so is a rule on
        // the changed subtree; the unchanged list (old already has duplicates) is not checked.
        let mut changed = new.clone();
        changed["spec"]["color"] = json!("green");
        assert_eq!(
            strings(s.validate_update(&changed, &old)),
            vec!["spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\""]
        );
        assert_eq!(
            strings(s.validate_rules(&changed, Some(&old))),
            vec!["spec: Invalid value: \"object\": replicas must not exceed maxReplicas"]
        );

        // A value made invalid, and a required field dropped from a changed object, are not
        // ratcheted.
        let mut broken = new.clone();
        broken["spec"] = json!({"replicas": -1, "maxReplicas": 3, "tags": ["a", "a"]});
        assert_eq!(
            strings(s.validate_update(&broken, &old)),
            vec![
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
                "spec.color: Required value",
            ]
        );
    }

    #[test]
    fn list_type_errors_ratchet_only_when_old_has_them() {
        let s = widget();
        let spec = |tags: Value| json!({"spec": {"color": "red", "tags": tags}});
        assert!(s
            .validate_update(&spec(json!(["a", "a", "b"])), &spec(json!(["a", "a"])))
            .is_empty());
        assert_eq!(
            strings(s.validate_update(&spec(json!(["b", "b"])), &spec(json!(["a"])))),
            vec!["spec.tags[1]: Duplicate value: \"b\""]
        );
    }

    #[test]
    fn bad_schemas_are_refused_with_upstream_messages() {
        let errors = Structural::new(
            &json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
            BASE,
        )
        .expect_err("not structural");
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"]
        );

        let errors = Structural::new(
            &json!({"type": "object", "properties": {"spec": {"type": "object",
                "x-kubernetes-validations": [{"rule": "self.a ==", "message": "m"}]}}}),
            BASE,
        )
        .expect_err("does not compile");
        assert!(errors[0].to_string().contains("x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.a ==\", Message:\"m\""), "{errors:?}");
        assert!(
            errors[0].to_string().contains(": compilation failed: "),
            "{errors:?}"
        );
    }

    #[test]
    fn structural_is_shareable_between_request_handlers() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Structural>();
    }
}
