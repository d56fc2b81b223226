//! The plugin registry: a constructor per plugin name, as upstream's `frameworkruntime.Registry`.
//! Constructors get the plugin's pluginConfig args and the [`Handle`] (what plugins may use of
//! the scheduler: the binder, the volume and workload caches).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::binder::Binder;
use crate::config::ConfigError;
use crate::framework::Plugin;

/// What a plugin constructor may use.
#[derive(Clone)]
pub struct Handle {
    /// Binds pods (the DefaultBinder's API call) and volumes (VolumeBinding's).
    pub binder: Arc<dyn Binder>,
    /// Claims, volumes and classes as the watchers see them.
    pub volumes: Arc<crate::volumes::VolumeCache>,
    /// The selectors of Services and controllers (PodTopologySpread's default selector).
    pub workloads: Arc<crate::workloads::WorkloadCache>,
}

/// Builds a plugin from its args.
pub type Factory = fn(Option<&serde_json::Value>, &Handle) -> Result<Arc<dyn Plugin>, ConfigError>;

/// Plugin constructors by name.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, Factory>,
}

impl Registry {
    /// Adds (or replaces) a plugin.
    pub fn register(&mut self, name: &'static str, factory: Factory) {
        self.factories.insert(name, factory);
    }

    /// Builds the plugin `name`.
    pub fn build(
        &self,
        name: &str,
        args: Option<&serde_json::Value>,
        handle: &Handle,
    ) -> Result<Arc<dyn Plugin>, ConfigError> {
        let factory = self
            .factories
            .get(name)
            .ok_or_else(|| ConfigError::UnknownPlugin(name.to_string()))?;
        factory(args, handle)
    }

    /// The registered names.
    pub fn names(&self) -> impl Iterator<Item = &&'static str> {
        self.factories.keys()
    }
}
