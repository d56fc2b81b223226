//! The scheduler's view of storage: claims, volumes, classes, CSI drivers and nodes as the
//! watchers last saw them,
//! and the volumes the VolumeBinding plugin has chosen for pods not bound yet (upstream's
//! assume cache), so two pods scheduled at once never pick the same volume.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, CSIStorageCapacity, StorageClass};
use parking_lot::{Mutex, RwLock};

/// Claims by `namespace/name`, volumes and classes by name, and the assumed choices.
#[derive(Default)]
pub struct VolumeCache {
    claims: RwLock<HashMap<String, Arc<PersistentVolumeClaim>>>,
    volumes: RwLock<HashMap<String, Arc<PersistentVolume>>>,
    classes: RwLock<HashMap<String, Arc<StorageClass>>>,
    drivers: RwLock<HashMap<String, Arc<CSIDriver>>>,
    /// CSINodes by (node) name: the drivers' volume limits.
    csi_nodes: RwLock<HashMap<String, Arc<CSINode>>>,
    /// By `namespace/name`.
    capacities: RwLock<HashMap<String, Arc<CSIStorageCapacity>>>,
    /// Volume name → the claim (`namespace/name`) it was chosen for.
    assumed: Mutex<HashMap<String, String>>,
}

/// `namespace/name` of a claim.
pub fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or(""),
        claim.metadata.name.as_deref().unwrap_or("")
    )
}

impl VolumeCache {
    /// A claim was added or changed.
    pub fn put_claim(&self, claim: Arc<PersistentVolumeClaim>) {
        self.claims.write().insert(claim_key(&claim), claim);
    }

    /// A claim went.
    pub fn remove_claim(&self, claim: &PersistentVolumeClaim) {
        self.claims.write().remove(&claim_key(claim));
    }

    /// A volume was added or changed; once it names a claim it is no longer merely assumed.
    pub fn put_volume(&self, volume: Arc<PersistentVolume>) {
        let name = volume.metadata.name.clone().unwrap_or_default();
        if volume
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some()
        {
            self.assumed.lock().remove(&name);
        }
        self.volumes.write().insert(name, volume);
    }

    /// A volume went.
    pub fn remove_volume(&self, name: &str) {
        self.volumes.write().remove(name);
        self.assumed.lock().remove(name);
    }

    /// A class was added or changed.
    pub fn put_class(&self, class: Arc<StorageClass>) {
        self.classes
            .write()
            .insert(class.metadata.name.clone().unwrap_or_default(), class);
    }

    /// A class went.
    pub fn remove_class(&self, name: &str) {
        self.classes.write().remove(name);
    }

    /// A CSIDriver was added or changed.
    pub fn put_driver(&self, driver: Arc<CSIDriver>) {
        self.drivers
            .write()
            .insert(driver.metadata.name.clone().unwrap_or_default(), driver);
    }

    /// A CSIDriver went.
    pub fn remove_driver(&self, name: &str) {
        self.drivers.write().remove(name);
    }

    /// A CSINode was added or changed.
    pub fn put_csi_node(&self, node: Arc<CSINode>) {
        self.csi_nodes
            .write()
            .insert(node.metadata.name.clone().unwrap_or_default(), node);
    }

    /// A CSINode went.
    pub fn remove_csi_node(&self, name: &str) {
        self.csi_nodes.write().remove(name);
    }

    /// The CSINode of node `name`.
    pub fn csi_node(&self, name: &str) -> Option<Arc<CSINode>> {
        self.csi_nodes.read().get(name).cloned()
    }

    /// A CSIStorageCapacity was added or changed.
    pub fn put_capacity(&self, capacity: Arc<CSIStorageCapacity>) {
        let key = format!(
            "{}/{}",
            capacity.metadata.namespace.as_deref().unwrap_or(""),
            capacity.metadata.name.as_deref().unwrap_or("")
        );
        self.capacities.write().insert(key, capacity);
    }

    /// A CSIStorageCapacity went.
    pub fn remove_capacity(&self, capacity: &CSIStorageCapacity) {
        let key = format!(
            "{}/{}",
            capacity.metadata.namespace.as_deref().unwrap_or(""),
            capacity.metadata.name.as_deref().unwrap_or("")
        );
        self.capacities.write().remove(&key);
    }

    /// The CSIDriver `name`.
    pub fn driver(&self, name: &str) -> Option<Arc<CSIDriver>> {
        self.drivers.read().get(name).cloned()
    }

    /// Every CSIStorageCapacity.
    pub fn capacities(&self) -> Vec<Arc<CSIStorageCapacity>> {
        self.capacities.read().values().cloned().collect()
    }

    /// The claim `namespace/name`.
    pub fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims
            .read()
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    /// The volume `name`.
    pub fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volumes.read().get(name).cloned()
    }

    /// The class `name`.
    pub fn class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.classes.read().get(name).cloned()
    }

    /// Every volume not assumed for a claim other than `claim` (`namespace/name`).
    pub fn free_volumes(&self, claim: &str) -> Vec<Arc<PersistentVolume>> {
        let assumed = self.assumed.lock();
        self.volumes
            .read()
            .iter()
            .filter(|(name, _)| assumed.get(*name).is_none_or(|c| c == claim))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Marks `volume` as chosen for `claim`.
    pub fn assume(&self, volume: &str, claim: &str) {
        self.assumed.lock().insert(volume.into(), claim.into());
    }

    /// Forgets the choice of `volume`.
    pub fn forget(&self, volume: &str) {
        self.assumed.lock().remove(volume);
    }
}
