//! PersistentVolumes (`pkg/registry/core/persistentvolume`): a create keeps the status it is
//! given.

use crate::registry::Strategy;

/// The PersistentVolume strategy.
pub struct PersistentVolumeStrategy;

impl Strategy for PersistentVolumeStrategy {
    fn resets_status_on_create(&self) -> bool {
        false
    }
}
