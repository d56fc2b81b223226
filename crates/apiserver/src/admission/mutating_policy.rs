//! MutatingAdmissionPolicy (upstream's `plugin/policy/mutating`, alpha: it acts only when
//! `--runtime-config` serves `admissionregistration.k8s.io/v1alpha1`): each
//! MutatingAdmissionPolicyBinding applies its policy's mutations to the creates and updates
//! that the policy's `matchConstraints` and the binding's `matchResources` match and whose
//! `matchConditions` hold.
//!
//! - Mutations run in order, each seeing the object as the ones before left it, with
//!   `object`, `oldObject`, `request`, `params` (each of the binding's `paramRef` objects in
//!   turn), `namespaceObject` and `variables`, compiled as mutation programs
//!   ([`ferry_cel::Program::compile_mutation`]).
//! - `ApplyConfiguration`: the `Object{…}` the expression gives is merged into the object with
//!   the kind's merge schema, as server-side apply merges but owning nothing; setting an atomic
//!   list, map or struct is an error. `JSONPatch`: the `JSONPatch{…}` operations are applied in
//!   order; a failed `test` leaves the object as it was.
//! - A binding whose policy's `reinvocationPolicy` is `IfNeeded` runs once more when a later
//!   binding changed the object, or a later plugin did ([`MutatingPlugin::reinvoke`]).
//! - An error (an expression that fails, a patch that does not apply, missing params) refuses
//!   the write under `failurePolicy: Fail` with upstream's 403 `policy '<policy>' with binding
//!   '<binding>' denied request: …`, and is passed over under `Ignore`.
//!
//! - A binding that changed the object has the kind's defaults applied to it again
//!   ([`Attributes::default_again`]), as upstream defaults what it decodes.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::admissionregistration::v1::{MatchResources, ParamKind, ParamRef};
use serde_json::Value;

use super::cel::{match_conditions, Matched, Programs, RequestVariables};
use super::policy::{namespace_object, params, resources_match};
use super::{Attributes, MutatingPlugin, Operation};
use crate::fieldmanager::FieldManager;
use crate::object::meta_str;
use crate::reflector::{LazyObjects, Objects};
use crate::status::{ApiError, StatusCause};
use crate::storage::Storage;
use ferry_cel::Variable;

/// The group whose writes policies never apply to, so a broken policy can always be fixed.
const ADMISSION_CONFIGURATION_GROUP: &str = "admissionregistration.k8s.io";

/// How a mutation's result changes the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchType {
    ApplyConfiguration,
    JsonPatch,
}

/// One mutation of a policy.
#[derive(Debug, Clone)]
struct Mutation {
    patch_type: PatchType,
    expression: String,
}

/// A binding with what its policy says, decoded once per change of the stored policies.
#[derive(Debug, Clone)]
struct Bound {
    policy: String,
    binding: String,
    constraints: MatchResources,
    narrowing: Option<MatchResources>,
    param_kind: Option<ParamKind>,
    param_ref: Option<ParamRef>,
    ignore_failures: bool,
    reinvoke: bool,
    match_conditions: Vec<(String, String)>,
    variables: Vec<(String, String)>,
    mutations: Vec<Mutation>,
}

/// `value` as a `T`, if it is one.
fn decoded<T: serde::de::DeserializeOwned>(value: Option<&Value>) -> Option<T> {
    value.and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// `name: expression` pairs of a list of `{name, expression}` objects.
fn named_expressions(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let text = |field: &str| item[field].as_str().unwrap_or_default().to_string();
            (text("name"), text("expression"))
        })
        .collect()
}

impl Bound {
    /// The binding `binding` of `policy` (both stored objects), if they make sense.
    fn decode(binding: &Value, policy: &Value) -> Option<Bound> {
        let spec = &policy["spec"];
        let constraints = serde_json::from_value(spec.get("matchConstraints")?.clone()).ok()?;
        let narrowing = match binding.pointer("/spec/matchResources") {
            Some(resources) if !resources.is_null() => {
                Some(serde_json::from_value(resources.clone()).ok()?)
            }
            _ => None,
        };
        let mutations = spec["mutations"]
            .as_array()?
            .iter()
            .filter_map(|m| {
                let (patch_type, member) = match m["patchType"].as_str()? {
                    "ApplyConfiguration" => (PatchType::ApplyConfiguration, "applyConfiguration"),
                    "JSONPatch" => (PatchType::JsonPatch, "jsonPatch"),
                    _ => return None,
                };
                let expression = m[member]["expression"].as_str()?.to_string();
                Some(Mutation {
                    patch_type,
                    expression,
                })
            })
            .collect();
        Some(Bound {
            policy: meta_str(policy, "name")?.to_string(),
            binding: meta_str(binding, "name")?.to_string(),
            constraints,
            narrowing,
            param_kind: decoded(spec.get("paramKind")),
            param_ref: decoded(binding.pointer("/spec/paramRef")),
            ignore_failures: spec["failurePolicy"].as_str() == Some("Ignore"),
            reinvoke: spec["reinvocationPolicy"].as_str() == Some("IfNeeded"),
            match_conditions: named_expressions(&spec["matchConditions"]),
            variables: named_expressions(&spec["variables"]),
            mutations,
        })
    }

    /// Upstream's `PolicyError`: the message of an error of this binding.
    fn denied(&self, why: &str) -> String {
        format!(
            "policy '{}' with binding '{}' denied request: {why}",
            self.policy, self.binding
        )
    }
}

/// The MutatingAdmissionPolicy plugin.
pub struct MutatingAdmissionPolicyPlugin {
    /// Whether the API is served at all; when not, the plugin does nothing.
    served: bool,
    policies: LazyObjects,
    namespaces: LazyObjects,
    /// Match conditions and variables.
    programs: Programs,
    /// Mutations, whose struct literals build the patch.
    mutations: Programs,
    /// The bindings with their policies, decoded at one generation of `policies`.
    decoded: parking_lot::Mutex<Option<(u64, Arc<Vec<Bound>>)>>,
}

impl Default for MutatingAdmissionPolicyPlugin {
    fn default() -> Self {
        MutatingAdmissionPolicyPlugin {
            served: ferry_api::registry::serves_version(ADMISSION_CONFIGURATION_GROUP, "v1alpha1"),
            policies: LazyObjects::new(&[
                "/mutatingadmissionpolicies/",
                "/mutatingadmissionpolicybindings/",
            ]),
            namespaces: LazyObjects::new(&["/namespaces/"]),
            programs: Programs::default(),
            mutations: Programs::mutations(),
            decoded: parking_lot::Mutex::new(None),
        }
    }
}

impl MutatingAdmissionPolicyPlugin {
    /// The bindings whose policy exists, with it, by binding name; decoded again only when
    /// they changed.
    fn bound(&self, stored: &Objects) -> Arc<Vec<Bound>> {
        let generation = stored.generation();
        if let Some((at, bound)) = self.decoded.lock().as_ref() {
            if *at == generation {
                return bound.clone();
            }
        }
        let policies = stored.under("/mutatingadmissionpolicies/");
        let mut bindings = stored.under("/mutatingadmissionpolicybindings/");
        bindings.sort_by(|a, b| meta_str(a, "name").cmp(&meta_str(b, "name")));
        let bound: Vec<Bound> = bindings
            .iter()
            .filter_map(|binding| {
                let name = binding.pointer("/spec/policyName")?.as_str()?;
                let policy = policies
                    .iter()
                    .find(|p| meta_str(p, "name") == Some(name))?;
                Bound::decode(binding, policy)
            })
            .collect();
        let bound = Arc::new(bound);
        *self.decoded.lock() = Some((generation, bound.clone()));
        bound
    }

    /// Whether the plugin looks at this request at all.
    fn applies(&self, attributes: &Attributes<'_>) -> bool {
        self.served
            && attributes.user.is_some()
            && attributes.operation != Operation::Delete
            && attributes.resource.group != ADMISSION_CONFIGURATION_GROUP
    }

    /// Runs the bindings that match (only the reinvocable ones when `again`); on the first
    /// pass, a reinvocable binding is run once more when a later one changed the object. The
    /// first error under `failurePolicy: Fail` refuses the write, with every such error among
    /// its causes.
    async fn run(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
        again: bool,
    ) -> Result<(), ApiError> {
        if !self.applies(attributes) {
            return Ok(());
        }
        let bound = self.bound(self.policies.get(&storage.store).await?);
        if bound.is_empty() {
            return Ok(());
        }
        let namespaces = self.namespaces.get(&storage.store).await?;
        let mut failures = Vec::new();
        // Reinvocable bindings run so far, and those a later change calls back.
        let mut invoked: Vec<&Bound> = Vec::new();
        let mut pending: Vec<&Bound> = Vec::new();
        for b in bound.iter().filter(|b| !again || b.reinvoke) {
            let Some(changed) = self
                .run_binding(storage, b, attributes, object, namespaces, &mut failures)
                .await?
            else {
                continue;
            };
            if changed {
                pending.append(&mut invoked);
            }
            if b.reinvoke {
                invoked.push(b);
            }
        }
        for b in pending {
            self.run_binding(storage, b, attributes, object, namespaces, &mut failures)
                .await?;
        }
        match failures.first() {
            None => Ok(()),
            Some(first) => Err(refusal(attributes, object, first, &failures)),
        }
    }

    /// Runs binding `b` with each of its params if the request matches it: `None` when it does
    /// not, else whether the object changed. Its error, under `failurePolicy: Fail`, is added
    /// to `failures`.
    async fn run_binding(
        &self,
        storage: &Storage,
        b: &Bound,
        attributes: &Attributes<'_>,
        object: &mut Value,
        namespaces: &Objects,
        failures: &mut Vec<String>,
    ) -> Result<Option<bool>, ApiError> {
        if !resources_match(&b.constraints, attributes, object, namespaces)? {
            return Ok(None);
        }
        if let Some(narrowing) = &b.narrowing {
            if !resources_match(narrowing, attributes, object, namespaces)? {
                return Ok(None);
            }
        }
        let before = object.clone();
        let namespace = attributes.namespace(object).to_string();
        let found = params(
            storage,
            b.param_kind.as_ref(),
            b.param_ref.as_ref(),
            &namespace,
        )
        .await;
        let namespace_object = namespace_object(namespaces, &namespace);
        let outcome = found.and_then(|params| {
            params
                .unwrap_or_else(|| vec![Value::Null])
                .iter()
                .try_for_each(|param| self.invoke(b, attributes, object, &namespace_object, param))
        });
        match outcome {
            Ok(()) => {}
            Err(why) if b.ignore_failures => {
                tracing::warn!(policy = %b.policy, binding = %b.binding, %why, "mutation failed, ignored by its failurePolicy");
            }
            Err(why) => failures.push(b.denied(&why)),
        }
        let changed = *object != before;
        if changed {
            attributes.default_again(object);
        }
        Ok(Some(changed))
    }

    /// One binding with one param: its match conditions, then its mutations in order.
    fn invoke(
        &self,
        b: &Bound,
        attributes: &Attributes<'_>,
        object: &mut Value,
        namespace_object: &Value,
        param: &Value,
    ) -> Result<(), String> {
        {
            let variables = RequestVariables::of(attributes, object);
            let mut bindings = variables.bindings();
            bindings.push(("params", Variable::Json(param)));
            bindings.push(("namespaceObject", Variable::Json(namespace_object)));
            match match_conditions(&self.programs, &b.match_conditions, &bindings) {
                Matched::Yes => {}
                Matched::No => return Ok(()),
                Matched::Error(why) => return Err(why),
            }
        }
        for mutation in &b.mutations {
            let patched = {
                let variables = RequestVariables::of(attributes, object);
                let mut bindings = variables.bindings();
                bindings.push(("params", Variable::Json(param)));
                bindings.push(("namespaceObject", Variable::Json(namespace_object)));
                let defined = self.variables(&b.variables, &bindings);
                bindings.push(("variables", Variable::Json(&defined)));
                let program = self
                    .mutations
                    .get(&mutation.expression)
                    .map_err(|e| e.to_string())?;
                let patch = program.eval(&bindings).map_err(|e| e.to_string())?;
                apply(mutation.patch_type, attributes.field_manager, object, patch)?
            };
            *object = patched;
        }
        Ok(())
    }

    /// The policy's variables in order, each seeing those before it; one that fails is left
    /// out, and the expressions using it fail in turn.
    fn variables(
        &self,
        variables: &[(String, String)],
        bindings: &[(&str, Variable<'_>)],
    ) -> Value {
        let mut defined = serde_json::Map::new();
        for (name, expression) in variables {
            let so_far = Value::Object(defined.clone());
            let mut scope = bindings.to_vec();
            scope.push(("variables", Variable::Json(&so_far)));
            let value = self
                .programs
                .get(expression)
                .ok()
                .and_then(|p| p.eval(&scope).ok());
            if let Some(value) = value {
                defined.insert(name.clone(), value);
            }
        }
        Value::Object(defined)
    }
}

/// `object` with a mutation's result applied.
fn apply(
    patch_type: PatchType,
    schema: Option<&FieldManager>,
    object: &Value,
    patch: Value,
) -> Result<Value, String> {
    match patch_type {
        PatchType::ApplyConfiguration => {
            let Value::Object(mut config) = patch else {
                return Err(
                    "type mismatch: ApplyConfiguration expression must evaluate to an Object"
                        .into(),
                );
            };
            // The configuration is of the object's type (upstream sets its group-version-kind).
            for field in ["apiVersion", "kind"] {
                if let Some(value) = object.get(field) {
                    config.insert(field.to_string(), value.clone());
                }
            }
            let schema = schema.ok_or("error applying patch: the request has no merge schema")?;
            schema
                .merge_config(object, &Value::Object(config))
                .map_err(|e| match e {
                    ferry_smd::PatchError::Atomic(_) => {
                        format!("error applying patch: invalid ApplyConfiguration: {e}")
                    }
                    ferry_smd::PatchError::Invalid(_) => format!("error applying patch: {e}"),
                })
        }
        PatchType::JsonPatch => {
            if !patch.is_array() {
                return Err(
                    "type mismatch: JSONPatchType.expression should evaluate to array".into(),
                );
            }
            let operations: json_patch::Patch =
                serde_json::from_value(patch).map_err(|e| format!("JSON Patch: {e}"))?;
            let mut patched = object.clone();
            match json_patch::patch(&mut patched, &operations) {
                Ok(()) => Ok(patched),
                // A failed test leaves the object as it was.
                Err(e) if matches!(e.kind, json_patch::PatchErrorKind::TestFailed) => {
                    Ok(object.clone())
                }
                Err(e) => Err(format!("JSON Patch: {e}")),
            }
        }
    }
}

/// Upstream's refusal: 403 with reason Invalid, the first failure's message, and every failure
/// among the causes.
fn refusal(attributes: &Attributes<'_>, object: &Value, first: &str, all: &[String]) -> ApiError {
    let mut error = attributes.forbidden(object, "admission request denied by policy");
    error.message = first.to_string();
    error.reason = "Invalid";
    let mut details = error.details.take().map(|d| *d).unwrap_or_default();
    details.causes = all
        .iter()
        .map(|message| StatusCause {
            message: message.clone(),
            ..StatusCause::default()
        })
        .collect();
    error.details = Some(Box::new(details));
    error
}

#[async_trait]
impl MutatingPlugin for MutatingAdmissionPolicyPlugin {
    fn name(&self) -> &'static str {
        "MutatingAdmissionPolicy"
    }

    async fn admit(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        self.run(storage, attributes, object, false).await
    }

    fn reinvocable(&self) -> bool {
        self.served
            && self
                .decoded
                .lock()
                .as_ref()
                .is_some_and(|(_, bound)| bound.iter().any(|b| b.reinvoke))
    }

    async fn reinvoke(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        self.run(storage, attributes, object, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "a", "image": "a:1"}]}}}})
    }

    fn mutate(patch_type: PatchType, expression: &str, object: &Value) -> Result<Value, String> {
        let schema = FieldManager::of_type("apps", "v1", "Deployment");
        let program = Programs::mutations()
            .get(expression)
            .map_err(|e| e.to_string())?;
        let patch = program
            .eval(&[("object", object)])
            .map_err(|e| e.to_string())?;
        apply(patch_type, Some(&schema), object, patch)
    }

    #[test]
    fn apply_configurations_merge_into_the_object() {
        let object = deployment();
        let merged = mutate(
            PatchType::ApplyConfiguration,
            "Object{metadata: Object.metadata{labels: {'env': 'prod'}}, spec: Object.spec{replicas: object.spec.replicas + 2, \
             template: Object.spec.template{spec: Object.spec.template.spec{containers: [Object.spec.template.spec.containers{name: 'side', image: 'side:1'}]}}}}",
            &object,
        )
        .expect("merges");
        assert_eq!(
            merged["metadata"]["labels"],
            json!({"app": "web", "env": "prod"})
        );
        assert_eq!(merged["spec"]["replicas"], 3);
        let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["a", "side"]);

        let atomic = mutate(
            PatchType::ApplyConfiguration,
            "Object{spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{containers: \
             [Object.spec.template.spec.containers{name: 'a', args: ['-v']}]}}}}",
            &object,
        )
        .expect_err("atomic");
        assert_eq!(
            atomic,
            "error applying patch: invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: .spec.template.spec.containers[0].args"
        );
        // Objects are named for their field paths, as upstream checks.
        let misnamed = mutate(
            PatchType::ApplyConfiguration,
            "Object{spec: Object.spec{template: Object.spec.tmpl{}}}",
            &object,
        )
        .expect_err("misnamed");
        assert_eq!(
            misnamed,
            "type mismatch: unexpected type name \"Object.spec.tmpl\", expected \"Object.spec.template\", which matches field name path from root Object type"
        );
        let not_an_object =
            mutate(PatchType::ApplyConfiguration, "[1]", &object).expect_err("list");
        assert!(
            not_an_object.starts_with("type mismatch"),
            "{not_an_object}"
        );
    }

    #[test]
    fn json_patches_apply_in_order_and_a_failed_test_changes_nothing() {
        let object = deployment();
        let patched = mutate(
            PatchType::JsonPatch,
            "[JSONPatch{op: 'replace', path: '/spec/replicas', value: 5}, \
              JSONPatch{op: 'add', path: '/metadata/labels/' + jsonpatch.escapeKey('example.com/tier'), value: 'front'}]",
            &object,
        )
        .expect("patches");
        assert_eq!(patched["spec"]["replicas"], 5);
        assert_eq!(patched["metadata"]["labels"]["example.com/tier"], "front");

        let tested = mutate(
            PatchType::JsonPatch,
            "[JSONPatch{op: 'test', path: '/spec/replicas', value: 9}, JSONPatch{op: 'replace', path: '/spec/replicas', value: 5}]",
            &object,
        )
        .expect("a failed test is no error");
        assert_eq!(tested, object);

        let missing = mutate(
            PatchType::JsonPatch,
            "[JSONPatch{op: 'remove', path: '/spec/paused'}]",
            &object,
        )
        .expect_err("nothing to remove");
        assert!(missing.starts_with("JSON Patch: "), "{missing}");
    }

    /// A plugin over a store holding `policies` (name, reinvocationPolicy, failurePolicy,
    /// mutation expression), each bound by `<name>-binding`, matching Deployment creates.
    async fn plugin_with(
        policies: &[(&str, &str, &str, &str)],
    ) -> (MutatingAdmissionPolicyPlugin, Storage, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ferry_store::embedded::EmbeddedStore::open(ferry_store::embedded::Config::new(
            dir.path(),
        ))
        .await
        .expect("open");
        let storage = Storage::new(Arc::new(store));
        let optional = |plural: &str| {
            ferry_api::registry::OPTIONAL_RESOURCES
                .iter()
                .find(|r| r.plural == plural)
                .expect("optional")
        };
        for (name, reinvocation, failure, expression) in policies {
            let policy = json!({"metadata": {"name": name}, "spec": {
                "reinvocationPolicy": reinvocation, "failurePolicy": failure,
                "matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": ["apps"],
                    "apiVersions": ["v1"], "resources": ["deployments"], "scope": "*"}]},
                "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": expression}}]}});
            let binding = json!({"metadata": {"name": format!("{name}-binding")}, "spec": {"policyName": name}});
            for (plural, object) in [
                ("mutatingadmissionpolicies", &policy),
                ("mutatingadmissionpolicybindings", &binding),
            ] {
                let info = optional(plural);
                let key = crate::storage::key(info, "", meta_str(object, "name").expect("name"));
                storage
                    .store
                    .put(key, object.to_string().into())
                    .await
                    .expect("put");
            }
        }
        let plugin = MutatingAdmissionPolicyPlugin {
            served: true,
            ..MutatingAdmissionPolicyPlugin::default()
        };
        (plugin, storage, dir)
    }

    async fn admit(
        plugin: &MutatingAdmissionPolicyPlugin,
        storage: &Storage,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        let user = crate::auth::UserInfo {
            name: "jane".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
        };
        let schema = FieldManager::of_type("apps", "v1", "Deployment");
        let attributes = Attributes {
            resource: ferry_api::registry::find("apps", "v1", "deployments").expect("deployments"),
            subresource: "",
            operation: Operation::Create,
            user: Some(&user),
            old: None,
            dry_run: false,
            warnings: None,
            audit_annotations: None,
            field_manager: Some(&schema),
            auth: None,
            strategy: None,
        };
        plugin.admit(storage, &attributes, object).await
    }

    /// `a` labels what `b` did; `b` runs after it (bindings in name order).
    const SEES_TEAM: &str = "Object{metadata: Object.metadata{labels: {'seen': 'team' in object.metadata.labels ? 'team' : 'none'}}}";
    const ADDS_TEAM: &str = "Object{metadata: Object.metadata{labels: {'team': 'x'}}}";

    #[tokio::test]
    async fn if_needed_bindings_run_again_after_a_later_change() {
        for (reinvocation, seen) in [("IfNeeded", "team"), ("Never", "none")] {
            let (plugin, storage, _dir) = plugin_with(&[
                ("a", reinvocation, "Fail", SEES_TEAM),
                ("b", "Never", "Fail", ADDS_TEAM),
            ])
            .await;
            let mut object = deployment();
            admit(&plugin, &storage, &mut object)
                .await
                .expect("admitted");
            assert_eq!(
                object["metadata"]["labels"],
                json!({"app": "web", "seen": seen, "team": "x"}),
                "{reinvocation}"
            );
            assert_eq!(plugin.reinvocable(), reinvocation == "IfNeeded");
        }
    }

    #[tokio::test]
    async fn failures_refuse_under_fail_and_pass_under_ignore() {
        let broken = "Object{spec: Object.spec{replicas: object.spec.missing}}";
        let (plugin, storage, _dir) = plugin_with(&[
            ("a", "Never", "Ignore", broken),
            ("b", "Never", "Fail", broken),
            ("c", "Never", "Fail", ADDS_TEAM),
        ])
        .await;
        let mut object = deployment();
        let refused = admit(&plugin, &storage, &mut object)
            .await
            .expect_err("b fails");
        assert_eq!((refused.code, refused.reason), (403, "Invalid"));
        assert!(
            refused.message.starts_with("policy 'b' with binding 'b-binding' denied request: expression 'Object{spec: Object.spec{replicas: object.spec.missing}}' resulted in error"),
            "{}",
            refused.message
        );
        let causes = refused.details.expect("details").causes;
        assert_eq!(causes.len(), 1, "the ignored failure is no cause");
    }

    #[test]
    fn bindings_decode_with_their_policies_in_binding_order() {
        let policy = json!({"metadata": {"name": "p"}, "spec": {
            "failurePolicy": "Ignore", "reinvocationPolicy": "IfNeeded",
            "matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": ["apps"],
                "apiVersions": ["v1"], "resources": ["deployments"]}]},
            "matchConditions": [{"name": "big", "expression": "object.spec.replicas > 1"}],
            "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": "[]"}},
                {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": "Object{}"}}]}});
        let binding = json!({"metadata": {"name": "b"}, "spec": {"policyName": "p"}});
        let bound = Bound::decode(&binding, &policy).expect("decodes");
        assert!(bound.ignore_failures && bound.reinvoke);
        assert_eq!(
            bound.match_conditions,
            [("big".to_string(), "object.spec.replicas > 1".to_string())]
        );
        let types: Vec<PatchType> = bound.mutations.iter().map(|m| m.patch_type).collect();
        assert_eq!(types, [PatchType::JsonPatch, PatchType::ApplyConfiguration]);
        assert_eq!(
            bound.denied("boom"),
            "policy 'p' with binding 'b' denied request: boom"
        );
        assert!(Bound::decode(&binding, &json!({"metadata": {"name": "p"}, "spec": {}})).is_none());
    }
}
