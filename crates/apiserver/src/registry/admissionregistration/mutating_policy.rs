//! MutatingAdmissionPolicies and their bindings (`admissionregistration.k8s.io/v1alpha1`,
//! served when `--runtime-config` turns the version on): upstream's defaults and validation.
//! Every expression must compile — mutations in the mutation environment, where `Object{…}`
//! and `JSONPatch{…}` literals construct the patch — and no rule may match DELETE, which a
//! mutation has nothing to change in.

use serde_json::Value;

use super::policy::{
    default_match_resources, default_policy_spec, validate_conditions_and_variables,
    validate_match_resources, validate_param_kind, validate_param_ref,
};
use super::webhookconfiguration::{one_of, strings};
use crate::registry::Strategy;
use crate::status::FieldError;

const PATCH_TYPES: &[&str] = &["ApplyConfiguration", "JSONPatch"];
const REINVOCATION_POLICIES: &[&str] = &["Never", "IfNeeded"];
/// The operations a mutating policy or binding may match.
const MUTATING_OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "UPDATE"];

/// Rules of `resources` matching an operation a mutation cannot act on.
fn validate_mutating_operations(path: &str, resources: &Value, errors: &mut Vec<FieldError>) {
    let rules = resources["resourceRules"].as_array().into_iter().flatten();
    for rule in rules {
        for operation in strings(&rule["operations"]) {
            if !MUTATING_OPERATIONS.contains(&operation) {
                errors.push(FieldError::not_supported(
                    format!("{path}.resourceRules.operations"),
                    operation,
                    MUTATING_OPERATIONS,
                ));
            }
        }
    }
}

/// That a mutation's expression compiles in the mutation environment.
fn validate_mutation_expression(field: &str, expression: &Value, errors: &mut Vec<FieldError>) {
    match expression.as_str().filter(|e| !e.trim().is_empty()) {
        None => errors.push(FieldError::required(field, "")),
        Some(source) => {
            if let Err(error) = ferry_cel::Program::compile_mutation(source) {
                errors.push(FieldError::invalid(field, source, error.to_string()));
            }
        }
    }
}

/// One mutation: a known patchType with its member, and only it.
fn validate_mutation(path: &str, mutation: &Value, errors: &mut Vec<FieldError>) {
    let patch_type = mutation["patchType"].as_str().unwrap_or_default();
    if patch_type.is_empty() {
        errors.push(FieldError::required(format!("{path}.patchType"), ""));
        return;
    }
    if !PATCH_TYPES.contains(&patch_type) {
        errors.push(FieldError::not_supported(
            format!("{path}.patchType"),
            patch_type,
            PATCH_TYPES,
        ));
        return;
    }
    let (member, other) = match patch_type {
        "ApplyConfiguration" => ("applyConfiguration", "jsonPatch"),
        _ => ("jsonPatch", "applyConfiguration"),
    };
    if !mutation[other].is_null() {
        errors.push(FieldError::invalid(
            format!("{path}.{other}"),
            format!("{{{other}}}"),
            format!("must not be specified when patchType is {patch_type}"),
        ));
    }
    if mutation[member].is_null() {
        errors.push(FieldError::required(
            format!("{path}.{member}"),
            format!("must be specified when patchType is {patch_type}"),
        ));
        return;
    }
    validate_mutation_expression(
        &format!("{path}.{member}.expression"),
        &mutation[member]["expression"],
        errors,
    );
}

/// The MutatingAdmissionPolicy strategy.
pub struct MutatingAdmissionPolicyStrategy;

impl Strategy for MutatingAdmissionPolicyStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&crate::auth::UserInfo>) {
        self.prepare_for_update(object, &Value::Null);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        default_policy_spec(new);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        match spec["failurePolicy"].as_str() {
            None => errors.push(FieldError::required("spec.failurePolicy", "")),
            Some(_) => one_of(
                "spec.failurePolicy".into(),
                &spec["failurePolicy"],
                &["Fail", "Ignore"],
                errors,
            ),
        }
        validate_param_kind(spec, errors);
        match spec.get("matchConstraints").filter(|m| m.is_object()) {
            None => errors.push(FieldError::required("spec.matchConstraints", "")),
            Some(constraints) => {
                validate_match_resources("spec.matchConstraints", constraints, errors);
                if constraints["resourceRules"]
                    .as_array()
                    .is_none_or(Vec::is_empty)
                {
                    errors.push(FieldError::required(
                        "spec.matchConstraints.resourceRules",
                        "",
                    ));
                }
                validate_mutating_operations("spec.matchConstraints", constraints, errors);
            }
        }
        let mutations = spec["mutations"].as_array().map_or(&[][..], Vec::as_slice);
        if mutations.is_empty() {
            errors.push(FieldError::required(
                "spec.mutations",
                "mutations must contain at least one item",
            ));
        }
        for (index, mutation) in mutations.iter().enumerate() {
            validate_mutation(&format!("spec.mutations[{index}]"), mutation, errors);
        }
        match spec["reinvocationPolicy"].as_str() {
            None | Some("") => errors.push(FieldError::required("spec.reinvocationPolicy", "")),
            Some(_) => one_of(
                "spec.reinvocationPolicy".into(),
                &spec["reinvocationPolicy"],
                REINVOCATION_POLICIES,
                errors,
            ),
        }
        validate_conditions_and_variables(spec, errors);
    }
}

/// The MutatingAdmissionPolicyBinding strategy.
pub struct MutatingAdmissionPolicyBindingStrategy;

impl Strategy for MutatingAdmissionPolicyBindingStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&crate::auth::UserInfo>) {
        self.prepare_for_update(object, &Value::Null);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        default_match_resources(new.pointer_mut("/spec/matchResources"));
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        match spec["policyName"].as_str().filter(|n| !n.is_empty()) {
            None => errors.push(FieldError::required("spec.policyName", "")),
            Some(name) => {
                for problem in crate::registry::generic::dns1123_subdomain_problems(name) {
                    errors.push(FieldError::invalid("spec.policyName", name, problem));
                }
            }
        }
        validate_param_ref(spec, errors);
        if let Some(resources) = spec.get("matchResources").filter(|r| r.is_object()) {
            validate_match_resources("spec.matchResources", resources, errors);
            validate_mutating_operations("spec.matchResources", resources, errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{tests::resource_of, validate};
    use serde_json::{json, Value};

    fn policy() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "failurePolicy": "Fail", "reinvocationPolicy": "Never",
            "matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": [""],
                "apiVersions": ["v1"], "resources": ["pods"]}]},
            "mutations": [{"patchType": "ApplyConfiguration",
                "applyConfiguration": {"expression": "Object{metadata: Object.metadata{labels: {'a': 'b'}}}"}}]}})
    }

    fn errors(object: Value) -> String {
        let info = ferry_api::registry::OPTIONAL_RESOURCES
            .iter()
            .find(|r| r.plural == "mutatingadmissionpolicies")
            .expect("optional");
        match validate(resource_of(info), &object, None) {
            Ok(()) => String::new(),
            Err(error) => error.message,
        }
    }

    #[test]
    fn policies_need_mutations_that_compile_in_the_mutation_environment() {
        assert_eq!(errors(policy()), "");
        let empty = errors(json!({"metadata": {"name": "p"}, "spec": {}}));
        for want in [
            "spec.failurePolicy: Required value",
            "spec.matchConstraints: Required value",
            "spec.mutations: Required value: mutations must contain at least one item",
            "spec.reinvocationPolicy: Required value",
        ] {
            assert!(empty.contains(want), "{want} in {empty}");
        }

        let mut both = policy();
        both["spec"]["mutations"] = json!([{"patchType": "JSONPatch",
            "applyConfiguration": {"expression": "Object{}"}}]);
        let both = errors(both);
        assert!(both.contains("spec.mutations[0].applyConfiguration: Invalid value: \"{applyConfiguration}\": must not be specified when patchType is JSONPatch"), "{both}");
        assert!(both.contains("spec.mutations[0].jsonPatch: Required value: must be specified when patchType is JSONPatch"), "{both}");

        let mut unknown = policy();
        unknown["spec"]["mutations"][0]["applyConfiguration"]["expression"] = json!("Foo{}");
        let unknown = errors(unknown);
        assert!(unknown.contains("spec.mutations[0].applyConfiguration.expression: Invalid value: \"Foo{}\": compilation failed: ERROR: <input>:1:4: undeclared reference to 'Foo'"), "{unknown}");

        let mut delete = policy();
        delete["spec"]["matchConstraints"]["resourceRules"][0]["operations"] = json!(["DELETE"]);
        let delete = errors(delete);
        assert!(delete.contains("spec.matchConstraints.resourceRules.operations: Unsupported value: \"DELETE\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"UPDATE\""), "{delete}");

        let mut reinvoke = policy();
        reinvoke["spec"]["reinvocationPolicy"] = json!("Always");
        let reinvoke = errors(reinvoke);
        assert!(reinvoke.contains("spec.reinvocationPolicy: Unsupported value: \"Always\": supported values: \"Never\", \"IfNeeded\""), "{reinvoke}");
    }
}
