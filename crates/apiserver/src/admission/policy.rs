//! ValidatingAdmissionPolicy (upstream's `plugin/policy/validating`): each
//! ValidatingAdmissionPolicyBinding applies its policy's CEL validations ([`super::cel`]) to
//! the writes that both the policy's `matchConstraints` and the binding's `matchResources`
//! match, and whose `matchConditions` hold.
//!
//! - Expressions see `object`, `oldObject`, `request`, `params` (the binding's `paramRef`
//!   objects of the policy's `paramKind`; each is checked in turn), `namespaceObject` and
//!   `variables` (the policy's, in order).
//! - A validation that is false fails with its `messageExpression`'s result, its `message`,
//!   or `failed expression: <expression>`; its `reason` (Invalid unless set) gives the code.
//! - The binding's `validationActions` decide: `Deny` refuses the write with upstream's
//!   `ValidatingAdmissionPolicy '<policy>' with binding '<binding>' denied request: …`,
//!   `Warn` sends it to the client as a warning, `Audit` adds it to the audit event's
//!   `validation.policy.admission.k8s.io/validation_failure` annotation; the policy's
//!   `auditAnnotations` are recorded as `<policy>/<key>`.
//! - An expression that cannot be evaluated refuses the write under `failurePolicy: Fail`
//!   (the default) and is passed over under `Ignore`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, ParamKind, ParamRef, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicySpec,
};
use serde_json::Value;

use super::cel::{match_conditions, Matched, Programs, RequestVariables};
use super::{rules, Attributes, ValidatingPlugin};
use crate::object::{labels, meta_str};
use crate::reflector::{LazyObjects, Objects};
use crate::status::{ApiError, StatusCause};
use crate::storage::Storage;
use ferry_cel::Variable;

/// The group whose writes policies never apply to (as upstream, so a broken policy can always
/// be fixed).
const ADMISSION_CONFIGURATION_GROUP: &str = "admissionregistration.k8s.io";

/// A binding and its policy, decoded.
type Bound = (ValidatingAdmissionPolicyBinding, ValidatingAdmissionPolicy);

/// The ValidatingAdmissionPolicy plugin.
pub struct ValidatingAdmissionPolicyPlugin {
    policies: LazyObjects,
    namespaces: LazyObjects,
    programs: Programs,
    /// The bindings with their policies, decoded at one generation of `policies`.
    decoded: parking_lot::Mutex<Option<(u64, std::sync::Arc<Vec<Bound>>)>>,
}

impl Default for ValidatingAdmissionPolicyPlugin {
    fn default() -> Self {
        ValidatingAdmissionPolicyPlugin {
            policies: LazyObjects::new(&[
                "/validatingadmissionpolicies/",
                "/validatingadmissionpolicybindings/",
            ]),
            namespaces: LazyObjects::new(&["/namespaces/"]),
            programs: Programs::default(),
            decoded: parking_lot::Mutex::new(None),
        }
    }
}

/// What one validation decided.
enum Outcome {
    Passed,
    /// False: the message and reason.
    Failed(String, String),
    /// Could not be evaluated.
    Error(String),
}

/// Whether `resources` (a policy's constraints or a binding's narrowing) match the request.
pub(super) fn resources_match(
    resources: &MatchResources,
    attributes: &Attributes<'_>,
    object: &Value,
    namespaces: &Objects,
) -> Result<bool, ApiError> {
    let request = rules::Request {
        operation: super::request::operation_name(attributes.operation),
        group: attributes.resource.group,
        version: attributes.resource.version,
        resource: attributes.resource.plural,
        subresource: attributes.subresource,
        namespace: attributes.namespace(object),
    };
    let name = meta_str(object, "name").unwrap_or_default();
    let named = |rule: &NamedRuleWithOperations| {
        let names = rule.resource_names.as_deref().unwrap_or_default();
        let as_rule = k8s_openapi::api::admissionregistration::v1::RuleWithOperations {
            operations: rule.operations.clone(),
            api_groups: rule.api_groups.clone(),
            api_versions: rule.api_versions.clone(),
            resources: rule.resources.clone(),
            scope: rule.scope.clone(),
        };
        (names.is_empty() || names.iter().any(|n| n == name))
            && rules::rule_matches(&as_rule, &request)
    };
    if let Some(rules) = &resources.resource_rules {
        if !rules.iter().any(named) {
            return Ok(false);
        }
    }
    if resources.exclude_resource_rules.iter().flatten().any(named) {
        return Ok(false);
    }
    let (old, new) = match attributes.operation {
        super::Operation::Delete => (Some(labels(object)), None),
        _ => (attributes.old.map(labels), Some(labels(object))),
    };
    if !rules::object_selected(
        resources.object_selector.as_ref(),
        old.as_ref(),
        new.as_ref(),
    ) {
        return Ok(false);
    }
    rules::namespace_selected(
        resources.namespace_selector.as_ref(),
        attributes,
        object,
        namespaces,
    )
}

/// The object of `namespace` (`null` for cluster-scoped requests).
pub(super) fn namespace_object(namespaces: &Objects, namespace: &str) -> Value {
    if namespace.is_empty() {
        return Value::Null;
    }
    namespaces
        .get(&format!("/namespaces/{namespace}"))
        .unwrap_or(Value::Null)
}

/// The objects a binding's `paramRef` names, or `None` when the policy takes none (no
/// `paramKind`); `Err(message)` when none is found and the binding says to deny.
pub(super) async fn params(
    storage: &Storage,
    kind: Option<&ParamKind>,
    reference: Option<&ParamRef>,
    request_namespace: &str,
) -> Result<Option<Vec<Value>>, String> {
    let Some(kind) = kind else {
        return Ok(None);
    };
    let Some(reference) = reference else {
        return Err("failed to configure binding: no paramRef specified".into());
    };
    let (group, version) = kind
        .api_version
        .as_deref()
        .unwrap_or_default()
        .rsplit_once('/')
        .unwrap_or(("", kind.api_version.as_deref().unwrap_or_default()));
    let kind_name = kind.kind.as_deref().unwrap_or_default();
    let info = ferry_api::registry::find_by_kind(group, version, kind_name)
        .ok_or_else(|| format!("failed to find resource referenced by paramKind: '{group}/{version}, Kind={kind_name}'"))?;
    let namespace = match reference.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns,
        _ if info.namespaced => request_namespace,
        _ => "",
    };
    let prefix = crate::storage::prefix(info, namespace);
    let listed = storage
        .store
        .range(ferry_store::RangeRequest::new(
            ferry_store::KeyRange::prefix(prefix),
        ))
        .await
        .map_err(|e| format!("failed to list params: {e}"))?;
    let objects = listed
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok());
    let found: Vec<Value> = match (&reference.name, &reference.selector) {
        (Some(name), _) => objects
            .filter(|o| meta_str(o, "name") == Some(name))
            .collect(),
        (None, Some(selector)) => objects
            .filter(|o| ferry_api::matching::selector_matches(selector, &labels(o)))
            .collect(),
        (None, None) => Vec::new(),
    };
    if found.is_empty() && reference.parameter_not_found_action.as_deref() == Some("Deny") {
        return Err(
            "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
        );
    }
    Ok(Some(found))
}

/// Upstream's code of a validation's reason.
fn reason_code(reason: &str) -> (u16, &'static str) {
    match reason {
        "Unauthorized" => (401, "Unauthorized"),
        "Forbidden" => (403, "Forbidden"),
        "RequestEntityTooLarge" => (413, "RequestEntityTooLarge"),
        _ => (422, "Invalid"),
    }
}

impl ValidatingAdmissionPolicyPlugin {
    /// The bindings whose policy exists, with it; decoded again only when they changed.
    fn bound(&self, stored: &Objects) -> std::sync::Arc<Vec<Bound>> {
        let generation = stored.generation();
        if let Some((at, bound)) = self.decoded.lock().as_ref() {
            if *at == generation {
                return bound.clone();
            }
        }
        let policies: BTreeMap<String, ValidatingAdmissionPolicy> = stored
            .under("/validatingadmissionpolicies/")
            .into_iter()
            .filter_map(|p| serde_json::from_value::<ValidatingAdmissionPolicy>(p).ok())
            .filter_map(|p| Some((p.metadata.name.clone()?, p)))
            .collect();
        let bound: Vec<Bound> = stored
            .under("/validatingadmissionpolicybindings/")
            .into_iter()
            .filter_map(|b| serde_json::from_value::<ValidatingAdmissionPolicyBinding>(b).ok())
            .filter_map(|binding| {
                let name = binding.spec.as_ref()?.policy_name.as_ref()?;
                let policy = policies.get(name)?.clone();
                Some((binding, policy))
            })
            .collect();
        let bound = std::sync::Arc::new(bound);
        *self.decoded.lock() = Some((generation, bound.clone()));
        bound
    }

    /// The policy's `auditAnnotations`: `<policy>/<key>` set to each `valueExpression` that
    /// gives a string (null leaves the key out).
    fn audit_annotations(
        &self,
        attributes: &Attributes<'_>,
        policy_name: &str,
        spec: &ValidatingAdmissionPolicySpec,
        variables: &RequestVariables,
        namespace_object: &Value,
        param: &Value,
    ) {
        let mut bindings = variables.bindings();
        bindings.push(("params", Variable::Json(param)));
        bindings.push(("namespaceObject", Variable::Json(namespace_object)));
        for annotation in spec.audit_annotations.iter().flatten() {
            let value = self
                .programs
                .get(&annotation.value_expression)
                .ok()
                .and_then(|p| p.eval(&bindings).ok());
            if let Some(Value::String(value)) = value {
                attributes.annotate(format!("{policy_name}/{}", annotation.key), value);
            }
        }
    }

    /// The policy's verdicts on the request, with `params` bound to `param`.
    fn evaluate(
        &self,
        spec: &ValidatingAdmissionPolicySpec,
        variables: &RequestVariables,
        namespace_object: &Value,
        param: &Value,
    ) -> Vec<Outcome> {
        let mut bindings = variables.bindings();
        bindings.push(("params", Variable::Json(param)));
        bindings.push(("namespaceObject", Variable::Json(namespace_object)));
        let conditions: Vec<(String, String)> = spec
            .match_conditions
            .iter()
            .flatten()
            .map(|c| (c.name.clone(), c.expression.clone()))
            .collect();
        match match_conditions(&self.programs, &conditions, &bindings) {
            Matched::Yes => {}
            Matched::No => return Vec::new(),
            Matched::Error(why) => return vec![Outcome::Error(why)],
        }
        // Variables in order, each seeing those before it; one that fails is left out, and
        // the expressions using it fail in turn.
        let mut defined = serde_json::Map::new();
        for variable in spec.variables.iter().flatten() {
            let mut scope = bindings.clone();
            let so_far = Value::Object(defined.clone());
            scope.push(("variables", Variable::Json(&so_far)));
            let value = self
                .programs
                .get(&variable.expression)
                .ok()
                .and_then(|p| p.eval(&scope).ok());
            if let Some(value) = value {
                defined.insert(variable.name.clone(), value);
            }
        }
        let defined = Value::Object(defined);
        bindings.push(("variables", Variable::Json(&defined)));
        let mut outcomes = Vec::new();
        for validation in spec.validations.iter().flatten() {
            let verdict = self
                .programs
                .get(&validation.expression)
                .map_err(|e| e.to_string())
                .and_then(|p| p.eval_bool(&bindings).map_err(|e| e.to_string()));
            let outcome = match verdict {
                Ok(true) => Outcome::Passed,
                Ok(false) => {
                    let from_expression = validation.message_expression.as_deref().and_then(|m| {
                        let program = self.programs.get(m).ok()?;
                        let text = program.eval_string(&bindings).ok()?;
                        let text = text.trim().to_string();
                        (!text.is_empty() && !text.contains('\n')).then_some(text)
                    });
                    let message = from_expression
                        .or_else(|| validation.message.clone().filter(|m| !m.is_empty()))
                        .unwrap_or_else(|| format!("failed expression: {}", validation.expression));
                    Outcome::Failed(message, validation.reason.clone().unwrap_or_default())
                }
                Err(why) => Outcome::Error(why),
            };
            outcomes.push(outcome);
        }
        outcomes
    }
}

/// The audit annotation of validation failures (upstream's
/// `validation.policy.admission.k8s.io/validation_failure`, a JSON list).
const VALIDATION_FAILURE: &str = "validation.policy.admission.k8s.io/validation_failure";

/// Adds a failure to the request's validation-failure audit annotation.
fn audit_failure(
    attributes: &Attributes<'_>,
    policy: &str,
    binding: &str,
    index: usize,
    actions: &[String],
    message: &str,
) {
    let Some(annotations) = attributes.audit_annotations else {
        return;
    };
    let mut annotations = annotations.lock();
    let existing = annotations.0.get(VALIDATION_FAILURE);
    let mut failures: Vec<Value> = existing
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    failures.push(serde_json::json!({
        "message": message, "policy": policy, "binding": binding,
        "expressionIndex": index, "validationActions": actions,
    }));
    annotations.0.insert(
        VALIDATION_FAILURE.to_string(),
        Value::Array(failures).to_string(),
    );
}

/// A denial, as upstream's `admission.NewForbidden` with the validation's reason and code.
fn denial(attributes: &Attributes<'_>, object: &Value, message: &str, reason: &str) -> ApiError {
    let mut error = attributes.forbidden(object, message);
    let (code, reason) = reason_code(reason);
    error.code = code;
    error.reason = reason;
    let mut details = error.details.take().map(|d| *d).unwrap_or_default();
    details.causes.push(StatusCause {
        message: message.to_string(),
        ..StatusCause::default()
    });
    error.details = Some(Box::new(details));
    error
}

#[async_trait]
impl ValidatingPlugin for ValidatingAdmissionPolicyPlugin {
    fn name(&self) -> &'static str {
        "ValidatingAdmissionPolicy"
    }

    async fn validate(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError> {
        if attributes.user.is_none() || attributes.resource.group == ADMISSION_CONFIGURATION_GROUP {
            return Ok(());
        }
        let bound = self.bound(self.policies.get(&storage.store).await?);
        if bound.is_empty() {
            return Ok(());
        }
        let namespaces = self.namespaces.get(&storage.store).await?;
        let request_namespace = attributes.namespace(object);
        // What expressions see, made once the first binding matches.
        let mut context: Option<(Value, RequestVariables)> = None;
        for (binding, policy) in bound.iter() {
            let (Some(binding_spec), Some(spec)) = (&binding.spec, &policy.spec) else {
                continue;
            };
            let Some(constraints) = &spec.match_constraints else {
                continue;
            };
            if !resources_match(constraints, attributes, object, namespaces)? {
                continue;
            }
            if let Some(narrowing) = &binding_spec.match_resources {
                if !resources_match(narrowing, attributes, object, namespaces)? {
                    continue;
                }
            }
            let binding_name = binding.metadata.name.clone().unwrap_or_default();
            let policy_name = policy.metadata.name.clone().unwrap_or_default();
            let (namespace_object, variables) = context.get_or_insert_with(|| {
                (
                    namespace_object(namespaces, request_namespace),
                    RequestVariables::of(attributes, object),
                )
            });
            let ignore_errors = spec.failure_policy.as_deref() == Some("Ignore");
            let actions = binding_spec.validation_actions.clone().unwrap_or_default();
            let denied_by = format!(
                "ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}' denied request"
            );
            let found = params(
                storage,
                spec.param_kind.as_ref(),
                binding_spec.param_ref.as_ref(),
                request_namespace,
            )
            .await;
            let params = match found {
                Ok(params) => params,
                Err(why) if ignore_errors => {
                    tracing::warn!(policy = %policy_name, binding = %binding_name, %why, "policy failed, ignored by its failurePolicy");
                    continue;
                }
                Err(why) => {
                    return Err(denial(
                        attributes,
                        object,
                        &format!("{denied_by}: {why}"),
                        "",
                    ))
                }
            };
            let params = params.unwrap_or_else(|| vec![Value::Null]);
            for param in &params {
                let outcomes = self.evaluate(spec, variables, namespace_object, param);
                if !outcomes.is_empty() {
                    self.audit_annotations(
                        attributes,
                        &policy_name,
                        spec,
                        variables,
                        namespace_object,
                        param,
                    );
                }
                for (index, outcome) in outcomes.into_iter().enumerate() {
                    let (message, reason) = match outcome {
                        Outcome::Passed => continue,
                        Outcome::Failed(message, reason) => (message, reason),
                        Outcome::Error(_) if ignore_errors => continue,
                        Outcome::Error(why) => (why, String::new()),
                    };
                    if actions.iter().any(|a| a == "Audit") {
                        audit_failure(
                            attributes,
                            &policy_name,
                            &binding_name,
                            index,
                            &actions,
                            &message,
                        );
                    }
                    if actions.iter().any(|a| a == "Warn") {
                        attributes.warn(format!(
                            "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {message}"
                        ));
                    }
                    if actions.iter().any(|a| a == "Deny") {
                        return Err(denial(
                            attributes,
                            object,
                            &format!("{denied_by}: {message}"),
                            &reason,
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_give_upstreams_codes() {
        assert_eq!(reason_code(""), (422, "Invalid"));
        assert_eq!(reason_code("Invalid"), (422, "Invalid"));
        assert_eq!(reason_code("Forbidden"), (403, "Forbidden"));
        assert_eq!(
            reason_code("RequestEntityTooLarge"),
            (413, "RequestEntityTooLarge")
        );
    }

    #[test]
    fn validations_fail_with_their_message_expression_message_or_expression() {
        let plugin = ValidatingAdmissionPolicyPlugin::default();
        let spec: ValidatingAdmissionPolicySpec = serde_json::from_value(json!({
            "variables": [{"name": "replicas", "expression": "object.spec.replicas"}],
            "validations": [
                {"expression": "variables.replicas <= 5"},
                {"expression": "variables.replicas <= 4", "message": "at most four"},
                {"expression": "variables.replicas <= 3",
                 "messageExpression": "'replicas: ' + string(variables.replicas)", "reason": "Forbidden"},
                {"expression": "params.max >= variables.replicas"},
                {"expression": "object.spec.missing"},
            ]
        }))
        .expect("spec");
        let variables = RequestVariables {
            object: json!({"spec": {"replicas": 6}}),
            old_object: Value::Null,
            request: json!({}),
            authorizer: None,
        };
        let outcomes = plugin.evaluate(&spec, &variables, &Value::Null, &json!({"max": 10}));
        let summary: Vec<String> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Passed => "passed".to_string(),
                Outcome::Failed(m, r) => format!("{m} ({r})"),
                Outcome::Error(e) => format!("error: {e}"),
            })
            .collect();
        assert_eq!(summary[0], "failed expression: variables.replicas <= 5 ()");
        assert_eq!(summary[1], "at most four ()");
        assert_eq!(summary[2], "replicas: 6 (Forbidden)");
        assert_eq!(summary[3], "passed");
        assert!(
            summary[4].starts_with("error: expression 'object.spec.missing' resulted in error"),
            "{}",
            summary[4]
        );

        let conditioned: ValidatingAdmissionPolicySpec = serde_json::from_value(json!({
            "matchConditions": [{"name": "big", "expression": "object.spec.replicas > 100"}],
            "validations": [{"expression": "false"}]
        }))
        .expect("spec");
        assert!(plugin
            .evaluate(&conditioned, &variables, &Value::Null, &Value::Null)
            .is_empty());
    }
}
