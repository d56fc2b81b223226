//! Admission: the stage between authorization and the store that may change or refuse a write,
//! as upstream's `k8s.io/apiserver/pkg/admission`. Each plugin is one file and a trait object
//! in an ordered [`Chain`]; [`by_name`] builds them by upstream's names, so
//! `--enable-admission-plugins` can choose them.
//!
//! Mutating plugins ([`MutatingPlugin`], upstream's `Admit`) run after the kind's defaults and
//! before its validation; validating plugins ([`ValidatingPlugin`], `Validate`) after its
//! validation, just before the store.

mod authorizer;
mod cel;
mod config;
mod default_class;
mod default_toleration_seconds;
mod limit_ranger;
mod mutating_policy;
mod namespace_lifecycle;
mod node_restriction;
mod pod_security;
mod policy;
mod priority;
mod request;
mod resource_quota;
mod rules;
mod runtime_class;
mod service_account;
pub mod storage_protection;
pub(crate) mod webhook;

pub use config::{ConfigError, Configuration};
pub use default_class::DefaultClass;
pub use default_toleration_seconds::DefaultTolerationSeconds;
pub use limit_ranger::LimitRanger;
pub use mutating_policy::MutatingAdmissionPolicyPlugin;
pub use namespace_lifecycle::{NamespaceLifecycle, IMMORTAL_NAMESPACES};
pub use node_restriction::NodeRestriction;
pub use pod_security::{Config as PodSecurityConfig, PodSecurity};
pub use policy::ValidatingAdmissionPolicyPlugin;
pub use priority::{system_classes as system_priority_classes, Priority};
pub use resource_quota::ResourceQuota;
pub use runtime_class::RuntimeClass;
pub use service_account::{ServiceAccount, TOKEN_MOUNT_PATH};
pub use webhook::{MutatingAdmissionWebhook, ValidatingAdmissionWebhook};

use std::sync::Arc;

use async_trait::async_trait;
use ferry_api::registry::ResourceInfo;
use serde_json::Value;

use crate::auth::UserInfo;
use crate::status::ApiError;
use crate::storage::Storage;

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A create.
    Create,
    /// An update or patch (of the object or a subresource).
    Update,
    /// A delete.
    Delete,
}

/// What a plugin is told about a write (upstream's `admission.Attributes`).
pub struct Attributes<'a> {
    /// The resource written.
    pub resource: &'static ResourceInfo,
    /// The subresource ("" for the object itself).
    pub subresource: &'a str,
    /// Create, update or delete.
    pub operation: Operation,
    /// Who asks (`None` for the server's own writes, which every plugin admits).
    pub user: Option<&'a UserInfo>,
    /// The stored object, for an update.
    pub old: Option<&'a Value>,
    /// Whether the request is a dry run (`dryRun=All`): plugins with side effects (quota
    /// charges) check without writing.
    pub dry_run: bool,
    /// Where a plugin leaves warnings for the client (`Warning` response headers); `None` for
    /// writes whose warnings nobody reads.
    pub warnings: Option<&'a parking_lot::Mutex<Vec<String>>>,
    /// Where a plugin leaves audit annotations; `None` for writes nobody audits.
    pub audit_annotations: Option<&'a parking_lot::Mutex<crate::audit::Annotations>>,
    /// The kind's merge schema, with which MutatingAdmissionPolicies apply their
    /// configurations; `None` for writes no policy mutates (deletes, subresource requests).
    pub field_manager: Option<&'a crate::fieldmanager::FieldManager>,
    /// The server's authentication and authorization, for the CEL `authorizer` of policies and
    /// match conditions; `None` where nobody asks it.
    pub auth: Option<&'a Arc<crate::auth::Auth>>,
    /// The kind's rules, whose defaults a webhook's or policy's change is given again
    /// ([`Attributes::default_again`]); `None` for writes nobody mutates.
    pub strategy: Option<&'a dyn crate::registry::Strategy>,
}

impl Attributes<'_> {
    /// 403 `<resource> "<name>" is forbidden: <why>` for `object` (upstream's
    /// `admission.NewForbidden`).
    pub fn forbidden(&self, object: &Value, why: &str) -> ApiError {
        let name = crate::object::meta_str(object, "name").unwrap_or("Unknown");
        ApiError::forbidden_object(crate::status::Target::of(self.resource, name), why)
    }

    /// The kind's defaults, applied again to an object a mutating webhook or policy changed
    /// (upstream defaults the object it decodes from the mutation).
    pub fn default_again(&self, object: &mut Value) {
        if let Some(strategy) = self.strategy {
            strategy.default_fields(object);
        }
    }

    /// Passes a warning to the client.
    pub fn warn(&self, warning: String) {
        if let Some(warnings) = self.warnings {
            warnings.lock().push(warning);
        }
    }

    /// Records an audit annotation (the first value of a key stays, as upstream's).
    pub fn annotate(&self, key: String, value: String) {
        if let Some(annotations) = self.audit_annotations {
            annotations.lock().0.entry(key).or_insert(value);
        }
    }

    /// The namespace written in ("" for cluster-scoped objects).
    pub fn namespace<'o>(&self, object: &'o Value) -> &'o str {
        crate::object::meta_str(object, "namespace").unwrap_or_default()
    }
}

/// A plugin that may change the object (and refuse it).
#[async_trait]
pub trait MutatingPlugin: Send + Sync {
    /// The plugin's upstream name.
    fn name(&self) -> &'static str;

    /// Admits `object`: the new object of a create or update, a copy of the stored object of a
    /// delete.
    async fn admit(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError>;

    /// Whether the plugin may want to run once more when later plugins change the object
    /// (upstream's reinvocation: policies with `reinvocationPolicy: IfNeeded`).
    fn reinvocable(&self) -> bool {
        false
    }

    /// Runs once more, after later plugins changed the object it admitted.
    async fn reinvoke(
        &self,
        _storage: &Storage,
        _attributes: &Attributes<'_>,
        _object: &mut Value,
    ) -> Result<(), ApiError> {
        Ok(())
    }
}

/// A plugin that may only refuse the object, after its validation.
#[async_trait]
pub trait ValidatingPlugin: Send + Sync {
    /// The plugin's upstream name.
    fn name(&self) -> &'static str;

    /// Validates `object` (as for [`MutatingPlugin::admit`]).
    async fn validate(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError>;
}

/// One plugin: its mutating phase, its validating phase, or both (LimitRanger defaults in one
/// and checks in the other).
#[derive(Default)]
pub struct Plugin {
    /// Runs in the mutating phase.
    pub mutating: Option<Arc<dyn MutatingPlugin>>,
    /// Runs in the validating phase.
    pub validating: Option<Arc<dyn ValidatingPlugin>>,
}

impl Plugin {
    fn mutating(plugin: impl MutatingPlugin + 'static) -> Plugin {
        Plugin {
            mutating: Some(Arc::new(plugin)),
            validating: None,
        }
    }

    fn validating(plugin: impl ValidatingPlugin + 'static) -> Plugin {
        Plugin {
            mutating: None,
            validating: Some(Arc::new(plugin)),
        }
    }

    fn both(plugin: impl MutatingPlugin + ValidatingPlugin + 'static) -> Plugin {
        let plugin = Arc::new(plugin);
        Plugin {
            mutating: Some(plugin.clone()),
            validating: Some(plugin),
        }
    }
}

/// The plugins ferry has, by upstream's name, in upstream's order (ResourceQuota last: a
/// refusal after it would leave its charge behind).
pub const PLUGINS: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "PodSecurity",
    "Priority",
    "DefaultTolerationSeconds",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "PersistentVolumeClaimResize",
    "RuntimeClass",
    "DefaultIngressClass",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
];

/// The plugins `ferry server` enables when none are named: all of [`PLUGINS`].
pub const DEFAULT_PLUGINS: &[&str] = PLUGINS;

/// The plugin called `name`, with its part of `configuration` where it takes one.
fn by_name(name: &str, configuration: &Configuration) -> Result<Option<Plugin>, ConfigError> {
    let invalid = |message: String| ConfigError::Plugin {
        plugin: name.to_string(),
        message,
    };
    Ok(Some(match name {
        "NamespaceLifecycle" => Plugin::mutating(NamespaceLifecycle),
        "LimitRanger" => Plugin::both(LimitRanger::default()),
        "NodeRestriction" => Plugin::mutating(NodeRestriction),
        "ServiceAccount" => Plugin::mutating(ServiceAccount),
        "PodSecurity" => {
            let config = match configuration.plugin(name) {
                Some(given) => PodSecurityConfig::from_configuration(given).map_err(invalid)?,
                None => PodSecurityConfig::default(),
            };
            Plugin::validating(PodSecurity::new(config))
        }
        "Priority" => Plugin::mutating(Priority::default()),
        "DefaultTolerationSeconds" => Plugin::mutating(DefaultTolerationSeconds),
        "DefaultStorageClass" => Plugin::mutating(DefaultClass::storage()),
        "StorageObjectInUseProtection" => {
            Plugin::mutating(storage_protection::StorageObjectInUseProtection)
        }
        "PersistentVolumeClaimResize" => {
            Plugin::validating(storage_protection::PersistentVolumeClaimResize::default())
        }
        "RuntimeClass" => Plugin::both(RuntimeClass::default()),
        "DefaultIngressClass" => Plugin::mutating(DefaultClass::ingress()),
        "MutatingAdmissionPolicy" => Plugin::mutating(MutatingAdmissionPolicyPlugin::default()),
        "MutatingAdmissionWebhook" => Plugin::mutating(MutatingAdmissionWebhook::default()),
        "ValidatingAdmissionPolicy" => {
            Plugin::validating(ValidatingAdmissionPolicyPlugin::default())
        }
        "ValidatingAdmissionWebhook" => Plugin::validating(ValidatingAdmissionWebhook::default()),
        "ResourceQuota" => Plugin::validating(ResourceQuota::default()),
        _ => return Ok(None),
    }))
}

/// A plugin name ferry does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown admission plugin {0:?} (known: {known})", known = PLUGINS.join(", "))]
pub struct UnknownPlugin(pub String);

/// A chain that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A plugin ferry does not have.
    #[error(transparent)]
    Unknown(#[from] UnknownPlugin),
    /// A plugin's configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The chain: mutating plugins, then validating ones, each in order; the first refusal wins.
#[derive(Default)]
pub struct Chain {
    mutating: Vec<Arc<dyn MutatingPlugin>>,
    validating: Vec<Arc<dyn ValidatingPlugin>>,
}

impl Chain {
    /// The named plugins, run in [`PLUGINS`]' order whatever the order of `names` (as upstream
    /// orders `--enable-admission-plugins`); an unknown name is an error.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Chain, ChainError> {
        Chain::configured(names, &Configuration::default())
    }

    /// As [`Chain::from_names`], each plugin with its part of `configuration`
    /// (`--admission-control-config-file`).
    pub fn configured<S: AsRef<str>>(
        names: &[S],
        configuration: &Configuration,
    ) -> Result<Chain, ChainError> {
        for name in names {
            if !PLUGINS.contains(&name.as_ref()) {
                return Err(UnknownPlugin(name.as_ref().to_string()).into());
            }
        }
        let mut chain = Chain::default();
        for name in PLUGINS {
            if !names.iter().any(|n| n.as_ref() == *name) {
                continue;
            }
            let plugin = by_name(name, configuration)?.unwrap_or_default();
            chain.mutating.extend(plugin.mutating);
            chain.validating.extend(plugin.validating);
        }
        Ok(chain)
    }

    /// Adds a validating check that is not one of the named plugins and cannot be disabled
    /// (RBAC's escalation prevention, which upstream runs in its registry); it runs before the
    /// named plugins, so that ResourceQuota stays last.
    pub fn add_validating(&mut self, check: impl ValidatingPlugin + 'static) {
        self.validating.insert(0, Arc::new(check));
    }

    /// The names of the plugins in the chain, mutating first.
    pub fn names(&self) -> Vec<&'static str> {
        let mutating = self.mutating.iter().map(|p| p.name());
        mutating
            .chain(self.validating.iter().map(|p| p.name()))
            .collect()
    }

    /// Runs the mutating plugins; then, once, each reinvocable plugin whose output a later one
    /// changed.
    pub async fn admit(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        let traced = crate::journey::traced();
        // What each reinvocable plugin left.
        let mut outputs: Vec<(&Arc<dyn MutatingPlugin>, Value)> = Vec::new();
        for plugin in &self.mutating {
            let start = traced.then(ferry_journey::now_unix_nanos);
            let admitted = plugin.admit(storage, attributes, object).await;
            if let Some(start) = start {
                plugin_step(plugin.name(), start, admitted.as_ref().err());
            }
            admitted?;
            if plugin.reinvocable() {
                outputs.push((plugin, object.clone()));
            }
        }
        for (plugin, output) in outputs {
            if *object != output {
                plugin.reinvoke(storage, attributes, object).await?;
            }
        }
        Ok(())
    }

    /// Runs the validating plugins.
    pub async fn validate(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError> {
        let traced = crate::journey::traced();
        for plugin in &self.validating {
            let start = traced.then(ferry_journey::now_unix_nanos);
            let validated = plugin.validate(storage, attributes, object).await;
            if let Some(start) = start {
                plugin_step(plugin.name(), start, validated.as_ref().err());
            }
            validated?;
        }
        Ok(())
    }
}

/// A plugin's `admission plugin` step is kept when it took at least this long or refused: a
/// write passes a dozen plugins that take microseconds, and a step each would cost more than
/// they do (the phase's step has their time).
const PLUGIN_STEP_FROM_NANOS: u64 = 1_000_000;

/// Records plugin `name`'s step, from `start` to now, if it is worth one.
fn plugin_step(name: &str, start: u64, refused: Option<&ApiError>) {
    let end = ferry_journey::now_unix_nanos();
    if refused.is_none() && end.saturating_sub(start) < PLUGIN_STEP_FROM_NANOS {
        return;
    }
    let error = refused.map(|e| e.message.as_str());
    ferry_journey::record_past("admission plugin", start, end, &[("plugin", name)], error);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slow_or_refusing_plugins_are_steps() {
        let capture = ferry_journey::testing::capture();
        let now = ferry_journey::now_unix_nanos();
        let request = ferry_journey::step!("request", component = "kube-apiserver");
        request.in_scope(|| {
            plugin_step("Quick", now, None);
            plugin_step("Slow", now - 5_000_000, None);
            plugin_step("Refusing", now, Some(&ApiError::forbidden("no")));
        });
        drop(request);
        let spans: Vec<_> = capture
            .spans()
            .into_iter()
            .filter(|s| s.step == "admission plugin")
            .collect();
        let plugins: Vec<_> = spans
            .iter()
            .map(|s| (s.attributes["plugin"].as_str(), s.error.as_deref()))
            .collect();
        assert_eq!(plugins, [("Slow", None), ("Refusing", Some("no"))]);
        assert!(spans[0].end_unix_nanos - spans[0].start_unix_nanos >= 5_000_000);
    }

    #[test]
    fn chains_are_built_by_name_in_upstream_order() {
        let chain = Chain::from_names(&["NodeRestriction", "NamespaceLifecycle"]).expect("known");
        assert_eq!(chain.names(), ["NamespaceLifecycle", "NodeRestriction"]);
        let none = Chain::from_names::<&str>(&[]).expect("empty");
        assert!(none.names().is_empty());
        let err = Chain::from_names(&["AlwaysPullImages"])
            .err()
            .expect("unknown");
        assert_eq!(
            err.to_string(),
            "unknown admission plugin \"AlwaysPullImages\" (known: NamespaceLifecycle, LimitRanger, ServiceAccount, NodeRestriction, PodSecurity, Priority, DefaultTolerationSeconds, DefaultStorageClass, StorageObjectInUseProtection, PersistentVolumeClaimResize, RuntimeClass, DefaultIngressClass, MutatingAdmissionPolicy, MutatingAdmissionWebhook, ValidatingAdmissionPolicy, ValidatingAdmissionWebhook, ResourceQuota)"
        );
    }
}
