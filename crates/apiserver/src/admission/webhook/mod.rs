//! MutatingAdmissionWebhook and ValidatingAdmissionWebhook (upstream's
//! `k8s.io/apiserver/pkg/admission/plugin/webhook`): the webhooks of every
//! Mutating/ValidatingWebhookConfiguration whose rules, namespace selector and object selector
//! match a write are sent an `admission.k8s.io/v1` `AdmissionReview` ([`client`]).
//!
//! - Mutating webhooks are called one after another, configurations by name, webhooks in
//!   order; each may answer a base64 JSONPatch that is applied before the next is called,
//!   and the patched object has the kind's defaults applied again (a sidecar a webhook
//!   injects is defaulted as upstream's is). Those with `reinvocationPolicy: IfNeeded` are called once more when a later webhook
//!   changed the object.
//! - Validating webhooks are called all at once; any refusal refuses the write.
//! - A refusal is upstream's `admission webhook "<name>" denied the request: <message>` with
//!   the webhook's code (at least 400); a webhook that cannot be reached, answers garbage or
//!   outlives its `timeoutSeconds` refuses the write with a 500 when its `failurePolicy` is
//!   `Fail` (the default) and is skipped when it is `Ignore`.
//! - In a dry run, webhooks whose `sideEffects` are not `None` or `NoneOnDryRun` refuse the
//!   request instead of being called.
//! - Writes to the admission configuration itself (`admissionregistration.k8s.io`) are never
//!   sent to webhooks, so a broken webhook can always be removed.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhookConfiguration, RuleWithOperations,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{json, Value};

use super::{rules, Attributes, MutatingPlugin, Operation, ValidatingPlugin};
use crate::object::{labels, meta_str};
use crate::reflector::LazyObjects;
use crate::status::ApiError;
use crate::storage::Storage;
use crate::webhook::{self as client, resolve_endpoint};

/// The group of the admission configuration, whose writes are never sent to webhooks.
const ADMISSION_CONFIGURATION_GROUP: &str = "admissionregistration.k8s.io";

/// `timeoutSeconds` when unset.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One webhook, as the plugins use it.
#[derive(Debug, Clone)]
struct Hook {
    name: String,
    client_config: WebhookClientConfig,
    rules: Option<Vec<RuleWithOperations>>,
    ignore_failures: bool,
    namespace_selector: Option<LabelSelector>,
    object_selector: Option<LabelSelector>,
    side_effects: String,
    timeout: Duration,
    review_versions: Vec<String>,
    reinvoke: bool,
    /// `matchConditions`: name and CEL expression.
    match_conditions: Vec<(String, String)>,
}

impl Hook {
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: String,
        client_config: WebhookClientConfig,
        rules: Option<Vec<RuleWithOperations>>,
        failure_policy: Option<String>,
        namespace_selector: Option<LabelSelector>,
        object_selector: Option<LabelSelector>,
        side_effects: String,
        timeout_seconds: Option<i32>,
        review_versions: Vec<String>,
        match_conditions: Option<Vec<MatchCondition>>,
    ) -> Hook {
        let timeout = timeout_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        Hook {
            name,
            client_config,
            rules,
            ignore_failures: failure_policy.as_deref() == Some("Ignore"),
            namespace_selector,
            object_selector,
            side_effects,
            timeout,
            review_versions,
            reinvoke: false,
            match_conditions: match_conditions
                .into_iter()
                .flatten()
                .map(|c| (c.name, c.expression))
                .collect(),
        }
    }
}

/// A [`Hook`] from a MutatingWebhook or a ValidatingWebhook (the same fields, two types).
macro_rules! hook {
    ($w:expr) => {{
        let w = $w;
        Hook::new(
            w.name,
            w.client_config,
            w.rules,
            w.failure_policy,
            w.namespace_selector,
            w.object_selector,
            w.side_effects,
            w.timeout_seconds,
            w.admission_review_versions,
            w.match_conditions,
        )
    }};
}

/// The webhooks of the stored configurations under `prefix`, in upstream's order.
fn hooks(configurations: Vec<Value>, mutating: bool) -> Vec<Hook> {
    let mut hooks = Vec::new();
    let mut configurations: Vec<(String, Value)> = configurations
        .into_iter()
        .map(|c| (meta_str(&c, "name").unwrap_or_default().to_string(), c))
        .collect();
    configurations.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, configuration) in configurations {
        if mutating {
            let Ok(parsed) = serde_json::from_value::<MutatingWebhookConfiguration>(configuration)
            else {
                continue;
            };
            for w in parsed.webhooks.into_iter().flatten() {
                let reinvoke = w.reinvocation_policy.as_deref() == Some("IfNeeded");
                let mut hook = hook!(w);
                hook.reinvoke = reinvoke;
                hooks.push(hook);
            }
        } else {
            let Ok(parsed) =
                serde_json::from_value::<ValidatingWebhookConfiguration>(configuration)
            else {
                continue;
            };
            hooks.extend(parsed.webhooks.into_iter().flatten().map(|w| hook!(w)));
        }
    }
    hooks
}

/// What both plugins share: the configurations (the namespaces, Services and EndpointSlices
/// that selectors and service references are resolved with are the storage's
/// [`Storage::cluster`]).
struct Webhooks {
    mutating: bool,
    programs: super::cel::Programs,
    configurations: LazyObjects,
}

/// Why a webhook was not asked, or its answer not used: a refusal to pass on as it is, or a
/// failure that `failurePolicy` decides about.
enum CallError {
    /// Its match conditions left the request out: not called.
    Skipped,
    Refused(ApiError),
    Failed(String),
}

impl Webhooks {
    /// The webhooks that `attributes` and `object` match, or `None` when the request is not
    /// sent to webhooks at all.
    async fn matching(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<Vec<Hook>, ApiError> {
        let info = attributes.resource;
        if attributes.user.is_none() || info.group == ADMISSION_CONFIGURATION_GROUP {
            return Ok(Vec::new());
        }
        let stored = self.configurations.get(&storage.store).await?;
        let prefix = if self.mutating {
            "/mutatingwebhookconfigurations/"
        } else {
            "/validatingwebhookconfigurations/"
        };
        let hooks = hooks(stored.under(prefix), self.mutating);
        if hooks.is_empty() {
            return Ok(hooks);
        }
        let namespace = attributes.namespace(object);
        let request = rules::Request {
            operation: super::request::operation_name(attributes.operation),
            group: info.group,
            version: info.version,
            resource: info.plural,
            subresource: attributes.subresource,
            namespace,
        };
        let (old, new) = match attributes.operation {
            Operation::Delete => (Some(labels(object)), None),
            _ => (attributes.old.map(labels), Some(labels(object))),
        };
        let mut matched = Vec::new();
        for hook in hooks {
            if !rules::rules_match(hook.rules.as_ref(), &request)
                || !rules::object_selected(
                    hook.object_selector.as_ref(),
                    old.as_ref(),
                    new.as_ref(),
                )
                || !rules::namespace_selected(
                    hook.namespace_selector.as_ref(),
                    attributes,
                    object,
                    storage.cluster().await?,
                )?
            {
                continue;
            }
            matched.push(hook);
        }
        Ok(matched)
    }

    /// Where `hook` is reached.
    async fn target(&self, storage: &Storage, hook: &Hook) -> Result<client::Target, String> {
        let config = &hook.client_config;
        if let Some(url) = &config.url {
            return client::Target::from_url(url, hook.timeout);
        }
        let service = config
            .service
            .as_ref()
            .ok_or("webhook has neither a url nor a service")?;
        let port = service.port.unwrap_or(443);
        let server_name = format!("{}.{}.svc", service.name, service.namespace);
        let path = service.path.as_deref().unwrap_or("/");
        let shown = client::Target::new(
            server_name.clone(),
            u16::try_from(port).unwrap_or(443),
            server_name.clone(),
            u16::try_from(port).unwrap_or(443),
            path,
            None,
            hook.timeout,
        );
        let unreachable = |why: String| format!("Post {:?}: {why}", shown.url);
        let cluster = storage
            .cluster()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (address, endpoint_port) =
            resolve_endpoint(cluster, &service.namespace, &service.name, port)
                .map_err(unreachable)?;
        Ok(client::Target::new(
            address,
            endpoint_port,
            server_name,
            shown.port,
            path,
            None,
            hook.timeout,
        ))
    }

    /// Asks `hook` about `object`; the answer's `response`.
    async fn ask(
        &self,
        storage: &Storage,
        hook: &Hook,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<Value, CallError> {
        let failed = |why: String| {
            CallError::Failed(format!(
                "failed calling webhook {:?}: failed to call webhook: {why}",
                hook.name
            ))
        };
        if !hook.match_conditions.is_empty() {
            let variables = super::cel::RequestVariables::of(attributes, object);
            let outcome = super::cel::match_conditions(
                &self.programs,
                &hook.match_conditions,
                &variables.bindings(),
            );
            match outcome {
                super::cel::Matched::Yes => {}
                super::cel::Matched::No => return Err(CallError::Skipped),
                super::cel::Matched::Error(why) => {
                    return Err(CallError::Failed(format!(
                        "failed calling webhook {:?}: {why}",
                        hook.name
                    )))
                }
            }
        }
        if attributes.dry_run && !matches!(hook.side_effects.as_str(), "None" | "NoneOnDryRun") {
            return Err(CallError::Refused(ApiError::bad_request(format!(
                "admission webhook {:?} does not support dry run",
                hook.name
            ))));
        }
        let version = ["v1", "v1beta1"]
            .into_iter()
            .find(|v| hook.review_versions.iter().any(|given| given == v))
            .ok_or_else(|| {
                failed(format!(
                    "webhook does not accept known AdmissionReview versions (v1, v1beta1), accepts {:?}",
                    hook.review_versions
                ))
            })?;
        let target = self.target(storage, hook).await.map_err(&failed)?;
        let roots = client::roots(
            hook.client_config
                .ca_bundle
                .as_ref()
                .map(|b| base64::engine::general_purpose::STANDARD.encode(&b.0))
                .as_deref(),
        )
        .map_err(&failed)?;
        let uid = crate::object::new_uid();
        let review = review(version, &uid, attributes, object);
        let answer = client::call(&target, client::tls(roots), &review, hook.timeout)
            .await
            .map_err(&failed)?;
        let response = answer
            .get("response")
            .filter(|r| r.is_object())
            .cloned()
            .ok_or_else(|| failed("received empty webhook response".into()))?;
        let answered_uid = response["uid"].as_str().unwrap_or_default();
        if answered_uid != uid {
            return Err(failed(format!(
                "expected response.uid={uid:?}, got {answered_uid:?}"
            )));
        }
        for warning in response["warnings"].as_array().into_iter().flatten() {
            if let Some(warning) = warning.as_str() {
                attributes.warn(warning.to_string());
            }
        }
        if let Some(annotations) = response["auditAnnotations"].as_object() {
            for (key, value) in annotations {
                if let Some(value) = value.as_str() {
                    attributes.annotate(format!("{}/{key}", hook.name), value.to_string());
                }
            }
        }
        if response["allowed"].as_bool() != Some(true) {
            return Err(CallError::Refused(denied(&hook.name, &response["status"])));
        }
        Ok(response)
    }

    /// Applies `failurePolicy` to a call that failed.
    fn decide(&self, hook: &Hook, error: CallError) -> Result<(), ApiError> {
        match error {
            CallError::Skipped => Ok(()),
            CallError::Refused(refusal) => Err(refusal),
            CallError::Failed(why) if hook.ignore_failures => {
                tracing::warn!(webhook = %hook.name, %why, "webhook failed, ignored by its failurePolicy");
                Ok(())
            }
            CallError::Failed(why) => Err(ApiError::internal(why)),
        }
    }
}

/// Upstream's `ToStatusErr`: the webhook's refusal as a Status, at least 400.
fn denied(webhook: &str, status: &Value) -> ApiError {
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let denied_by = format!("admission webhook {webhook:?} denied the request");
    let explanation = [status["message"].as_str(), status["reason"].as_str()]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty());
    let message = match explanation {
        Some(why) => format!("{denied_by}: {why}"),
        None => format!("{denied_by} without explanation"),
    };
    ApiError::from_code(code, message)
}

/// The `AdmissionReview` sent about `object`.
fn review(version: &str, uid: &str, attributes: &Attributes<'_>, object: &Value) -> Value {
    let mut request = super::request::admission_request(attributes, object, true);
    request["uid"] = json!(uid);
    json!({
        "apiVersion": format!("admission.k8s.io/{version}"),
        "kind": "AdmissionReview",
        "request": request,
    })
}

/// Applies a mutating webhook's answer to `object`; whether it changed.
fn apply_patch(hook: &str, response: &Value, object: &mut Value) -> Result<bool, String> {
    let Some(patch) = response["patch"].as_str().filter(|p| !p.is_empty()) else {
        return Ok(false);
    };
    let failed = |why: String| format!("failed calling webhook {hook:?}: {why}");
    match response["patchType"].as_str() {
        Some("JSONPatch") => {}
        other => {
            return Err(failed(format!(
                "unsupported patch type {:?}",
                other.unwrap_or_default()
            )))
        }
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .map_err(|e| failed(format!("the patch is not base64: {e}")))?;
    let operations: json_patch::Patch =
        serde_json::from_slice(&bytes).map_err(|e| failed(format!("invalid JSONPatch: {e}")))?;
    let before = object.clone();
    json_patch::patch(object, &operations).map_err(|e| {
        *object = before.clone();
        failed(format!("the patch does not apply: {e}"))
    })?;
    Ok(*object != before)
}

/// The MutatingAdmissionWebhook plugin.
pub struct MutatingAdmissionWebhook(Webhooks);

impl Default for MutatingAdmissionWebhook {
    fn default() -> Self {
        MutatingAdmissionWebhook(Webhooks {
            mutating: true,
            programs: Default::default(),
            configurations: LazyObjects::new(&["/mutatingwebhookconfigurations/"]),
        })
    }
}

/// The ValidatingAdmissionWebhook plugin.
pub struct ValidatingAdmissionWebhook(Webhooks);

impl Default for ValidatingAdmissionWebhook {
    fn default() -> Self {
        ValidatingAdmissionWebhook(Webhooks {
            mutating: false,
            programs: Default::default(),
            configurations: LazyObjects::new(&["/validatingwebhookconfigurations/"]),
        })
    }
}

#[async_trait]
impl MutatingPlugin for MutatingAdmissionWebhook {
    fn name(&self) -> &'static str {
        "MutatingAdmissionWebhook"
    }

    async fn admit(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        if attributes.operation == Operation::Delete {
            // A delete has no new object to change; validating webhooks see deletes.
            return Ok(());
        }
        let webhooks = &self.0;
        let hooks = webhooks.matching(storage, attributes, object).await?;
        // For each webhook called, how many changes had been made once it answered.
        let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
        let mut changes = 0;
        for (index, hook) in hooks.iter().enumerate() {
            match webhooks.ask(storage, hook, attributes, object).await {
                Ok(response) => {
                    if apply_patch(&hook.name, &response, object).map_err(ApiError::internal)? {
                        attributes.default_again(object);
                        changes += 1;
                    }
                }
                Err(error) => webhooks.decide(hook, error)?,
            }
            seen.insert(index, changes);
        }
        // Once more for those that asked to be, if a later webhook changed the object.
        for (index, hook) in hooks.iter().enumerate() {
            let changed_since = seen.get(&index).is_some_and(|seen| *seen < changes);
            if !hook.reinvoke || !changed_since {
                continue;
            }
            match webhooks.ask(storage, hook, attributes, object).await {
                Ok(response) => {
                    if apply_patch(&hook.name, &response, object).map_err(ApiError::internal)? {
                        attributes.default_again(object);
                    }
                }
                Err(error) => webhooks.decide(hook, error)?,
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ValidatingPlugin for ValidatingAdmissionWebhook {
    fn name(&self) -> &'static str {
        "ValidatingAdmissionWebhook"
    }

    async fn validate(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError> {
        let webhooks = &self.0;
        let hooks = webhooks.matching(storage, attributes, object).await?;
        let answers = futures::future::join_all(
            hooks
                .iter()
                .map(|hook| webhooks.ask(storage, hook, attributes, object)),
        )
        .await;
        for (hook, answer) in hooks.iter().zip(answers) {
            if let Err(error) = answer {
                webhooks.decide(hook, error)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_which_webhook_and_why() {
        let refusal = denied(
            "deny.example.com",
            &json!({"code": 403, "message": "no pods on Fridays"}),
        );
        assert_eq!(refusal.code, 403);
        assert_eq!(
            refusal.message,
            "admission webhook \"deny.example.com\" denied the request: no pods on Fridays"
        );
        let bare = denied("deny.example.com", &Value::Null);
        assert_eq!(bare.code, 400);
        assert_eq!(
            bare.message,
            "admission webhook \"deny.example.com\" denied the request without explanation"
        );
        let low = denied("d", &json!({"code": 200, "reason": "Nope"}));
        assert_eq!(
            (low.code, low.message.as_str()),
            (400, "admission webhook \"d\" denied the request: Nope")
        );
    }

    #[test]
    fn patches_are_base64_json_patches() {
        let mut object = json!({"metadata": {"name": "p"}});
        let patch = base64::engine::general_purpose::STANDARD
            .encode(r#"[{"op": "add", "path": "/metadata/labels", "value": {"hooked": "yes"}}]"#);
        let response = json!({"patch": patch, "patchType": "JSONPatch"});
        assert_eq!(apply_patch("h", &response, &mut object), Ok(true));
        assert_eq!(object["metadata"]["labels"]["hooked"], "yes");
        assert_eq!(
            apply_patch("h", &json!({"allowed": true}), &mut object),
            Ok(false)
        );
        let wrong = json!({"patch": patch, "patchType": "MergePatch"});
        assert!(apply_patch("h", &wrong, &mut object).is_err());
        let broken = base64::engine::general_purpose::STANDARD
            .encode(r#"[{"op": "replace", "path": "/spec/missing", "value": 1}]"#);
        let before = object.clone();
        assert!(apply_patch(
            "h",
            &json!({"patch": broken, "patchType": "JSONPatch"}),
            &mut object
        )
        .is_err());
        assert_eq!(
            object, before,
            "a patch that fails leaves the object as it was"
        );
    }

    #[test]
    fn configurations_are_ordered_by_name_and_defaulted() {
        let configuration = |name: &str, hook: &str| {
            json!({"metadata": {"name": name}, "webhooks": [{
                "name": hook, "clientConfig": {"url": "https://127.0.0.1:1/"},
                "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "reinvocationPolicy": "IfNeeded", "failurePolicy": "Ignore", "timeoutSeconds": 3}]})
        };
        let hooks = hooks(
            vec![configuration("b", "second"), configuration("a", "first")],
            true,
        );
        let names: Vec<&str> = hooks.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["first", "second"]);
        assert!(hooks[0].reinvoke && hooks[0].ignore_failures);
        assert_eq!(hooks[0].timeout, Duration::from_secs(3));
        let plain = json!({"metadata": {"name": "c"}, "webhooks": [{"name": "v",
            "clientConfig": {"url": "https://127.0.0.1:1/"}, "sideEffects": "None",
            "admissionReviewVersions": ["v1"]}]});
        let validating = super::hooks(vec![plain], false);
        assert!(
            !validating[0].ignore_failures,
            "failurePolicy defaults to Fail"
        );
        assert_eq!(validating[0].timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn service_references_resolve_to_a_ready_endpoint() {
        let cluster = crate::reflector::Objects::from_objects(vec![
            (
                "/services/system/hook".to_string(),
                json!({"metadata": {"name": "hook", "namespace": "system"},
                    "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}),
            ),
            (
                "/endpointslices/system/hook-abc".to_string(),
                json!({"metadata": {"name": "hook-abc", "namespace": "system",
                        "labels": {"kubernetes.io/service-name": "hook"}},
                    "ports": [{"name": "https", "port": 8443}],
                    "endpoints": [{"addresses": ["10.42.0.9"], "conditions": {"ready": false}},
                                  {"addresses": ["10.42.0.7"], "conditions": {"ready": true}}]}),
            ),
        ]);
        assert_eq!(
            resolve_endpoint(&cluster, "system", "hook", 443),
            Ok(("10.42.0.7".to_string(), 8443))
        );
        assert_eq!(
            resolve_endpoint(&cluster, "system", "hook", 80),
            Err("service \"hook\" has no port 80".to_string())
        );
        assert_eq!(
            resolve_endpoint(&cluster, "system", "gone", 443),
            Err("service \"gone\" not found".to_string())
        );
    }
}
