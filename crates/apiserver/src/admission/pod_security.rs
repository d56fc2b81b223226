//! PodSecurity (upstream's `k8s.io/pod-security-admission` in the API server): a namespace's
//! `pod-security.kubernetes.io/<mode>[-version]` labels hold its pods to a level of the Pod
//! Security Standards ([`ferry_api::pod_security`]).
//!
//! - Pods (created, or updated in a way that matters: containers added or removed, an image
//!   changed, an ephemeral container added) that break the `enforce` level are refused; those
//!   that break the `warn` level get a warning; the audit log records the enforced level and
//!   the `audit` level's violations (`pod-security.kubernetes.io/enforce-policy`,
//!   `…/audit-violations`, `…/exempt`).
//! - Workload resources (Deployments, Jobs, …) are only warned about, from their pod template.
//! - A namespace's labels must name known levels and versions; raising its `enforce` level
//!   warns about the pods already there that would break it.
//!
//! The defaults for namespaces without labels (privileged everywhere unless configured) and
//! the exempt users, namespaces and runtime classes are a [`Config`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_api::pod_security::{
    self as pss, Level, LevelVersion, Policy, Version, Violation, LABEL_PREFIX,
};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use serde_json::Value;

use super::{Attributes, Operation, ValidatingPlugin};
use crate::object::{labels, meta_str};
use crate::registry::{GroupResource, NAMESPACES, PODS};
use crate::status::{ApiError, FieldError};
use crate::storage::Storage;

/// Pod subresources whose writes are not evaluated.
const IGNORED_SUBRESOURCES: &[&str] = &[
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// The audit annotation naming the enforced level.
const ENFORCE_POLICY: &str = "pod-security.kubernetes.io/enforce-policy";
/// The audit annotation with the audit level's violations.
const AUDIT_VIOLATIONS: &str = "pod-security.kubernetes.io/audit-violations";
/// The audit annotation saying why a request was not evaluated.
const EXEMPT: &str = "pod-security.kubernetes.io/exempt";

/// At most this many existing pods are checked when a namespace's enforce level is raised.
const EXISTING_PODS_LIMIT: usize = 3000;
/// … and for at most this long.
const EXISTING_PODS_TIMEOUT: Duration = Duration::from_secs(1);

/// What upstream's `PodSecurityConfiguration` sets.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The policy of a namespace without labels.
    pub defaults: Policy,
    /// Users whose requests are not checked.
    pub exempt_usernames: Vec<String>,
    /// Namespaces whose pods are not checked.
    pub exempt_namespaces: Vec<String>,
    /// Runtime classes whose pods are not checked.
    pub exempt_runtime_classes: Vec<String>,
}

/// The API versions of `PodSecurityConfiguration` ferry reads.
const CONFIGURATION_VERSIONS: &[&str] = &[
    "pod-security.admission.config.k8s.io/v1",
    "pod-security.admission.config.k8s.io/v1beta1",
    "pod-security.admission.config.k8s.io/v1alpha1",
];

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigurationFile {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    defaults: BTreeMap<String, String>,
    #[serde(default)]
    exemptions: Exemptions,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Exemptions {
    #[serde(default)]
    usernames: Vec<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    runtime_classes: Vec<String>,
}

impl Config {
    /// The plugin's configuration from upstream's `PodSecurityConfiguration`
    /// (`pod-security.admission.config.k8s.io/v1`): `defaults` (`enforce`, `enforce-version`,
    /// `audit`, …, privileged and latest where unset) and `exemptions`.
    pub fn from_configuration(given: &Value) -> Result<Config, String> {
        let file: ConfigurationFile =
            serde_json::from_value(given.clone()).map_err(|e| e.to_string())?;
        if file.kind != "PodSecurityConfiguration"
            || !CONFIGURATION_VERSIONS.contains(&file.api_version.as_str())
        {
            return Err(format!(
                "expected kind PodSecurityConfiguration of pod-security.admission.config.k8s.io/v1, got kind {:?} of {:?}",
                file.kind, file.api_version
            ));
        }
        let mut defaults = Policy::default();
        let modes = [
            ("enforce", &mut defaults.enforce),
            ("audit", &mut defaults.audit),
            ("warn", &mut defaults.warn),
        ];
        let mut errors = Vec::new();
        for (mode, target) in modes {
            if let Some(value) = file.defaults.get(mode) {
                match Level::parse(value) {
                    Some(level) => target.level = level,
                    None => errors.push(format!(
                        "defaults.{mode}: Invalid value: {value:?}: must be one of privileged, baseline, restricted"
                    )),
                }
            }
            if let Some(value) = file.defaults.get(&format!("{mode}-version")) {
                match Version::parse(value) {
                    Some(version) => target.version = version,
                    None => errors.push(format!(
                        "defaults.{mode}-version: Invalid value: {value:?}: must be \"latest\" or \"v1.x\""
                    )),
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors.join(", "));
        }
        Ok(Config {
            defaults,
            exempt_usernames: file.exemptions.usernames,
            exempt_namespaces: file.exemptions.namespaces,
            exempt_runtime_classes: file.exemptions.runtime_classes,
        })
    }
}

/// The PodSecurity plugin.
pub struct PodSecurity {
    config: Config,
    /// The namespaces, kept in memory once first needed (upstream's namespace lister).
    namespaces: crate::reflector::LazyObjects,
}

impl Default for PodSecurity {
    fn default() -> PodSecurity {
        PodSecurity::new(Config::default())
    }
}

impl PodSecurity {
    /// The plugin with `config`.
    pub fn new(config: Config) -> PodSecurity {
        PodSecurity {
            config,
            namespaces: crate::reflector::LazyObjects::new(&["/namespaces/"]),
        }
    }

    fn exempt_runtime_class(&self, spec: Option<&k8s_openapi::api::core::v1::PodSpec>) -> bool {
        let class = spec.and_then(|s| s.runtime_class_name.as_deref());
        class.is_some_and(|c| self.config.exempt_runtime_classes.iter().any(|e| e == c))
    }

    /// The namespace's policy (and whether its labels were valid).
    async fn policy(&self, storage: &Storage, namespace: &str) -> Result<(Policy, bool), ApiError> {
        let lookup_failed =
            || ApiError::internal(format!("failed to lookup namespace {namespace:?}"));
        let cached = self
            .namespaces
            .get(&storage.store)
            .await
            .map_err(|_| lookup_failed())?
            .get(&format!("/namespaces/{namespace}"));
        let object = match cached {
            Some(object) => object,
            // Not seen yet (just created): read it from the store, as upstream falls back to a
            // live lookup.
            None => {
                let info = ferry_api::registry::find("", "v1", NAMESPACES.resource)
                    .ok_or_else(|| ApiError::internal("no namespaces resource"))?;
                let stored = storage
                    .store
                    .get(&crate::storage::key(info, "", namespace))
                    .await
                    .map_err(|_| lookup_failed())?
                    .ok_or_else(lookup_failed)?;
                serde_json::from_slice(&stored.value).map_err(|_| lookup_failed())?
            }
        };
        let (policy, errors) = pss::policy_for(&labels(&object), &self.config.defaults);
        Ok((policy, errors.is_empty()))
    }

    async fn pod(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError> {
        if IGNORED_SUBRESOURCES.contains(&attributes.subresource) {
            return Ok(());
        }
        let namespace = attributes.namespace(object);
        if let Some(exemption) = self.exempt(attributes, namespace) {
            attributes.annotate(EXEMPT.into(), exemption.into());
            return Ok(());
        }
        let (policy, valid) = self.policy(storage, namespace).await?;
        if valid && policy.fully_privileged() {
            attributes.annotate(ENFORCE_POLICY.into(), LevelVersion::PRIVILEGED.to_string());
            return Ok(());
        }
        if let Some(old) = attributes.old {
            if !significant_update(old, object) {
                return Ok(());
            }
        }
        let pod: Pod = serde_json::from_value(object.clone())
            .map_err(|_| ApiError::bad_request("failed to decode pod"))?;
        let spec = pod.spec.unwrap_or_default();
        if self.exempt_runtime_class(Some(&spec)) {
            attributes.annotate(EXEMPT.into(), "runtimeClass".into());
            return Ok(());
        }
        attributes.annotate(ENFORCE_POLICY.into(), policy.enforce.to_string());
        if policy.audit.level != Level::Privileged {
            let audited = pss::evaluate(policy.audit, &pod.metadata, &spec);
            if !audited.is_empty() {
                attributes.annotate(
                    AUDIT_VIOLATIONS.into(),
                    format!(
                        "would violate PodSecurity \"{}\": {}",
                        policy.audit,
                        pss::forbidden_detail(&audited)
                    ),
                );
            }
        }
        let enforced = pss::evaluate(policy.enforce, &pod.metadata, &spec);
        if !enforced.is_empty() {
            let why = format!(
                "violates PodSecurity \"{}\": {}",
                policy.enforce,
                pss::forbidden_detail(&enforced)
            );
            return Err(attributes.forbidden(object, &why));
        }
        if !policy.warn.equivalent(&policy.enforce) {
            warn(
                attributes,
                policy.warn,
                &pss::evaluate(policy.warn, &pod.metadata, &spec),
            );
        }
        Ok(())
    }

    async fn workload(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
        template: &str,
    ) -> Result<(), ApiError> {
        let namespace = attributes.namespace(object);
        if !attributes.subresource.is_empty() {
            return Ok(());
        }
        if let Some(exemption) = self.exempt(attributes, namespace) {
            attributes.annotate(EXEMPT.into(), exemption.into());
            return Ok(());
        }
        // Workloads are never refused: a namespace that cannot be read is let through.
        let Ok((policy, valid)) = self.policy(storage, namespace).await else {
            return Ok(());
        };
        if valid && policy.warn.level == Level::Privileged {
            return Ok(());
        }
        let template = object.pointer(template).filter(|t| !t.is_null());
        let Some(Ok(template)) =
            template.map(|t| serde_json::from_value::<PodTemplateSpec>(t.clone()))
        else {
            return Ok(());
        };
        let spec = template.spec.unwrap_or_default();
        if self.exempt_runtime_class(Some(&spec)) {
            return Ok(());
        }
        let meta = template.metadata.unwrap_or_default();
        warn(
            attributes,
            policy.warn,
            &pss::evaluate(policy.warn, &meta, &spec),
        );
        Ok(())
    }

    async fn namespace(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError> {
        if !attributes.subresource.is_empty() {
            return Ok(());
        }
        let name = meta_str(object, "name").unwrap_or_default();
        let (policy, errors) = pss::policy_for(&labels(object), &self.config.defaults);
        let old = attributes
            .old
            .map(|old| pss::policy_for(&labels(old), &self.config.defaults));
        let errors_are_new = old
            .as_ref()
            .is_none_or(|(_, old_errors)| old_errors.is_empty() || *old_errors != errors);
        if !errors.is_empty() && errors_are_new {
            let causes: Vec<FieldError> = errors
                .iter()
                .map(|e| FieldError::invalid(&e.field, &e.value, e.detail))
                .collect();
            return Err(ApiError::invalid("Namespace", "", name, &causes));
        }
        if let Some((old, _)) = old {
            let (new, old) = (policy.enforce, old.enforce);
            let unchanged = new == old;
            let not_stricter = new.version == old.version && new.level <= old.level;
            if unchanged || new.level == Level::Privileged || not_stricter {
                return Ok(());
            }
        }
        if self.config.exempt_namespaces.iter().any(|n| n == name) {
            if let Some(warning) = self.exempt_namespace_warning(name, object, &policy) {
                attributes.warn(warning);
            }
            return Ok(());
        }
        if attributes.old.is_some() {
            for warning in self.existing_pods(storage, name, policy.enforce).await {
                attributes.warn(warning);
            }
        }
        Ok(())
    }

    /// `namespace "<ns>" is exempt from Pod Security, and the policy (…) will be ignored`, for
    /// the labelled modes that check something, unless the policy is the defaults.
    fn exempt_namespace_warning(
        &self,
        name: &str,
        object: &Value,
        policy: &Policy,
    ) -> Option<String> {
        if policy.fully_privileged() || *policy == self.config.defaults {
            return None;
        }
        let labels = labels(object);
        let modes = [
            ("enforce", policy.enforce),
            ("audit", policy.audit),
            ("warn", policy.warn),
        ];
        let set: Vec<String> = modes
            .iter()
            .filter(|(_, lv)| lv.level != Level::Privileged)
            .filter(|(mode, _)| {
                labels.contains_key(&format!("{LABEL_PREFIX}{mode}"))
                    || labels.contains_key(&format!("{LABEL_PREFIX}{mode}-version"))
            })
            .map(|(mode, lv)| format!("{mode}={lv}"))
            .collect();
        if set.is_empty() {
            return None;
        }
        Some(format!(
            "namespace {name:?} is exempt from Pod Security, and the policy ({}) will be ignored",
            set.join(", ")
        ))
    }

    /// Warnings about the pods in `namespace` that break `enforce` (upstream's
    /// `EvaluatePodsInNamespace`): one line per distinct set of reasons.
    async fn existing_pods(
        &self,
        storage: &Storage,
        namespace: &str,
        enforce: LevelVersion,
    ) -> Vec<String> {
        let Some(info) = ferry_api::registry::find("", "v1", PODS.resource) else {
            return Vec::new();
        };
        let prefix = crate::storage::prefix(info, namespace);
        let request = ferry_store::RangeRequest::new(ferry_store::KeyRange::prefix(prefix));
        let Ok(listed) = storage.store.range(request).await else {
            return vec!["failed to list pods while checking new PodSecurity enforce level".into()];
        };
        let pods: Vec<Pod> = listed
            .kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .filter(|pod: &Pod| !self.exempt_runtime_class(pod.spec.as_ref()))
            .collect();
        let pods = controllers_first(pods);
        let started = Instant::now();
        let mut by_reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut checked = 0;
        for pod in pods.iter().take(EXISTING_PODS_LIMIT) {
            let spec = pod.spec.clone().unwrap_or_default();
            let violations = pss::evaluate(enforce, &pod.metadata, &spec);
            checked += 1;
            if !violations.is_empty() {
                let name = pod.metadata.name.clone().unwrap_or_default();
                by_reasons
                    .entry(pss::forbidden_reason(&violations))
                    .or_default()
                    .push(name);
            }
            if started.elapsed() > EXISTING_PODS_TIMEOUT {
                break;
            }
        }
        let mut warnings = Vec::new();
        if checked < pods.len() {
            warnings.push(format!(
                "new PodSecurity enforce level only checked against the first {checked} of {} existing pods",
                pods.len()
            ));
        }
        if by_reasons.is_empty() {
            return warnings;
        }
        warnings.push(format!(
            "existing pods in namespace {namespace:?} violate the new PodSecurity enforce level \"{enforce}\""
        ));
        let mut lines: Vec<String> = by_reasons
            .into_iter()
            .map(|(reasons, names)| {
                let first = names.iter().min().cloned().unwrap_or_default();
                match names.len() {
                    1 => format!("{first}: {reasons}"),
                    2 => format!("{first} (and 1 other pod): {reasons}"),
                    n => format!("{first} (and {} other pods): {reasons}", n - 1),
                }
            })
            .collect();
        lines.sort();
        warnings.extend(lines);
        warnings
    }

    /// Why the request is exempt (upstream's audit annotation value), if it is.
    fn exempt(&self, attributes: &Attributes<'_>, namespace: &str) -> Option<&'static str> {
        let config = &self.config;
        if config.exempt_namespaces.iter().any(|n| n == namespace) {
            return Some("namespace");
        }
        let user = attributes
            .user
            .is_some_and(|u| config.exempt_usernames.contains(&u.name));
        user.then_some("user")
    }
}

/// Adds `would violate PodSecurity "<level:version>": …` when there are violations.
fn warn(attributes: &Attributes<'_>, level: LevelVersion, violations: &[Violation]) {
    if level.level != Level::Privileged && !violations.is_empty() {
        attributes.warn(format!(
            "would violate PodSecurity \"{level}\": {}",
            pss::forbidden_detail(violations)
        ));
    }
}

/// Pods without a controller and the first pod of each controller, then the other replicas:
/// a truncated check still sees every kind of pod.
fn controllers_first(pods: Vec<Pod>) -> Vec<Pod> {
    let mut seen = std::collections::HashSet::new();
    let (first, rest): (Vec<Pod>, Vec<Pod>) = pods.into_iter().partition(|pod| {
        let owners = pod.metadata.owner_references.iter().flatten();
        let controller = owners
            .filter(|o| o.controller == Some(true))
            .map(|o| o.uid.clone())
            .next();
        controller.is_none_or(|uid| seen.insert(uid))
    });
    first.into_iter().chain(rest).collect()
}

/// Whether a pod update changes what the standards look at: containers added or removed, an
/// image changed, an ephemeral container added or its image changed.
fn significant_update(old: &Value, new: &Value) -> bool {
    let images = |pod: &Value, list: &str| -> Vec<Option<String>> {
        let containers = pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array);
        let images = containers.into_iter().flatten();
        images
            .map(|c| c["image"].as_str().map(String::from))
            .collect()
    };
    if ["containers", "initContainers"]
        .iter()
        .any(|list| images(old, list) != images(new, list))
    {
        return true;
    }
    let ephemeral = |pod: &Value| -> BTreeMap<String, Option<String>> {
        let list = pod
            .pointer("/spec/ephemeralContainers")
            .and_then(Value::as_array);
        let containers = list.into_iter().flatten();
        containers
            .map(|c| {
                let name = c["name"].as_str().unwrap_or_default().to_string();
                (name, c["image"].as_str().map(String::from))
            })
            .collect()
    };
    let old = ephemeral(old);
    ephemeral(new)
        .iter()
        .any(|(name, image)| old.get(name) != Some(image))
}

#[async_trait]
impl ValidatingPlugin for PodSecurity {
    fn name(&self) -> &'static str {
        "PodSecurity"
    }

    async fn validate(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError> {
        if attributes.user.is_none() || attributes.operation == Operation::Delete {
            return Ok(());
        }
        let resource = GroupResource::of(attributes.resource);
        if resource == PODS {
            return self.pod(storage, attributes, object).await;
        }
        if resource == NAMESPACES {
            return self.namespace(storage, attributes, object).await;
        }
        let GroupResource { group, resource } = resource;
        match pss::template_pointer(group, resource) {
            Some(template) => self.workload(storage, attributes, object, template).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_container_and_image_changes_are_significant() {
        let pod = json!({"metadata": {"labels": {"a": "1"}},
            "spec": {"containers": [{"name": "a", "image": "x"}]}});
        let mut relabelled = pod.clone();
        relabelled["metadata"]["labels"]["a"] = json!("2");
        relabelled["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
        assert!(!significant_update(&pod, &relabelled));
        let mut image = pod.clone();
        image["spec"]["containers"][0]["image"] = json!("y");
        assert!(significant_update(&pod, &image));
        let mut debug = pod.clone();
        debug["spec"]["ephemeralContainers"] = json!([{"name": "d", "image": "busybox"}]);
        assert!(significant_update(&pod, &debug));
        assert!(!significant_update(&debug, &debug));
        let mut init = pod.clone();
        init["spec"]["initContainers"] = json!([{"name": "i", "image": "x"}]);
        assert!(significant_update(&pod, &init));
    }

    #[test]
    fn replicas_of_one_controller_come_after_the_first() {
        let pod = |name: &str, owner: Option<&str>| -> Pod {
            let owners = owner.map(|uid| {
                json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}])
            });
            serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": owners}}))
                .expect("pod")
        };
        let pods = vec![
            pod("a1", Some("u")),
            pod("a2", Some("u")),
            pod("b", None),
            pod("c1", Some("v")),
        ];
        let names: Vec<String> = controllers_first(pods)
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        assert_eq!(names, ["a1", "b", "c1", "a2"]);
    }

    #[test]
    fn exempt_namespaces_name_the_labelled_modes() {
        let plugin = PodSecurity::new(Config {
            exempt_namespaces: vec!["kube-system".into()],
            ..Config::default()
        });
        let ns = json!({"metadata": {"name": "kube-system",
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
        let (policy, _) = pss::policy_for(&labels(&ns), &Config::default().defaults);
        assert_eq!(
            plugin.exempt_namespace_warning("kube-system", &ns, &policy).as_deref(),
            Some("namespace \"kube-system\" is exempt from Pod Security, and the policy (enforce=restricted:latest) will be ignored")
        );
        let plain = json!({"metadata": {"name": "kube-system"}});
        assert_eq!(
            plugin.exempt_namespace_warning("kube-system", &plain, &Policy::default()),
            None
        );
    }

    #[test]
    fn configuration_sets_defaults_and_exemptions() {
        let given = json!({
            "apiVersion": "pod-security.admission.config.k8s.io/v1",
            "kind": "PodSecurityConfiguration",
            "defaults": {"enforce": "baseline", "warn": "restricted", "warn-version": "v1.30"},
            "exemptions": {"namespaces": ["kube-system"], "runtimeClasses": ["kata"]},
        });
        let config = Config::from_configuration(&given).expect("valid");
        assert_eq!(config.defaults.enforce.to_string(), "baseline:latest");
        assert_eq!(config.defaults.warn.to_string(), "restricted:v1.30");
        assert_eq!(config.defaults.audit, LevelVersion::PRIVILEGED);
        assert_eq!(config.exempt_namespaces, ["kube-system"]);
        assert_eq!(config.exempt_runtime_classes, ["kata"]);

        let mut bad = given.clone();
        bad["defaults"]["enforce"] = json!("strict");
        bad["defaults"]["audit-version"] = json!("1.30");
        assert_eq!(
            Config::from_configuration(&bad).expect_err("invalid"),
            "defaults.enforce: Invalid value: \"strict\": must be one of privileged, baseline, restricted, defaults.audit-version: Invalid value: \"1.30\": must be \"latest\" or \"v1.x\""
        );
        let mut wrong = given;
        wrong["kind"] = json!("AdmissionConfiguration");
        assert!(Config::from_configuration(&wrong).is_err());
    }
}
