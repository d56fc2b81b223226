//! Table printers of the `storage.k8s.io` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `storageclasses.storage.k8s.io`.
pub struct StorageClass;

impl TablePrinter for StorageClass {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
            col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."),
            col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature."),
            col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let mut n = st(o, &["metadata", "name"]).to_string();
        if annotation(o, "storageclass.kubernetes.io/is-default-class") == Some("true")
            || annotation(o, "storageclass.beta.kubernetes.io/is-default-class") == Some("true")
        {
            n.push_str(" (default)");
        }
        vec![
            n.into(),
            st(o, &["provisioner"]).into(),
            at(o, &["reclaimPolicy"])
                .as_str()
                .unwrap_or("Delete")
                .into(),
            at(o, &["volumeBindingMode"])
                .as_str()
                .unwrap_or("Immediate")
                .into(),
            at(o, &["allowVolumeExpansion"])
                .as_bool()
                .unwrap_or(false)
                .into(),
            age(o, now),
        ]
    }
}

/// The table of `volumeattachments.storage.k8s.io`.
pub struct VolumeAttachment;

impl TablePrinter for VolumeAttachment {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            Column {
                name: "Attacher",
                type_: "string",
                format: "name",
                description: "attacher indicates the name of the volume driver that MUST handle this request. This is the name returned by GetPluginName().",
                priority: 0,
            },
            col("PV", "string", "persistentVolumeName represents the name of the persistent volume to attach."),
            col("Node", "string", "nodeName represents the node that the volume should be attached to."),
            col("Attached", "boolean", "attached indicates the volume is successfully attached. This field must only be set by the entity completing the attach operation, i.e. the external-attacher."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        vec![
            name(o),
            st(o, &["spec", "attacher"]).into(),
            st(o, &["spec", "source", "persistentVolumeName"]).into(),
            st(o, &["spec", "nodeName"]).into(),
            at(o, &["status", "attached"])
                .as_bool()
                .unwrap_or(false)
                .into(),
            age(o, now),
        ]
    }
}

/// The table of `csinodes.storage.k8s.io`.
pub struct CsiNode;

impl TablePrinter for CsiNode {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Drivers",
                "integer",
                "Drivers indicates the number of CSI drivers registered on the node",
            ),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        vec![
            name(o),
            (arr(o, &["spec", "drivers"]).len() as i64).into(),
            age(o, now),
        ]
    }
}

/// The table of `csidrivers.storage.k8s.io`.
pub struct CsiDriver;

impl TablePrinter for CsiDriver {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("AttachRequired", "boolean", "attachRequired indicates this CSI volume driver requires an attach operation (because it implements the CSI ControllerPublishVolume() method), and that the Kubernetes attach detach controller should call the attach volume interface which checks the volumeattachment status and waits until the volume is attached before proceeding to mounting. The CSI external-attacher coordinates with CSI volume driver and updates the volumeattachment status when the attach operation is complete. If the value is specified to false, the attach operation will be skipped. Otherwise the attach operation will be called.\n\nThis field is immutable."),
            col("PodInfoOnMount", "boolean", "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations, if set to true. If set to false, pod information will not be passed on mount. Default is false."),
            col("StorageCapacity", "boolean", "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report by creating CSIStorageCapacity objects with capacity information, if set to true."),
            col("TokenRequests", "string", "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication. Kubelet will pass the tokens in VolumeContext in the CSI NodePublishVolume calls. The CSI driver should parse and validate the following VolumeContext."),
            col("RequiresRepublish", "boolean", "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume. This field defaults to false."),
            col("Modes", "string", "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports. The default if the list is empty is \"Persistent\", which is the usage defined by the CSI specification and implemented in Kubernetes via the usual PV/PVC mechanism."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let b = |field: &str, default: bool| -> Value {
            at(o, &["spec", field]).as_bool().unwrap_or(default).into()
        };
        let tokens = at(o, &["spec", "tokenRequests"]);
        let tokens = match tokens.as_array() {
            None => "<unset>".to_string(),
            Some(list) => list
                .iter()
                .map(|t| st(t, &["audience"]))
                .collect::<Vec<_>>()
                .join(","),
        };
        let modes: Vec<&str> = arr(o, &["spec", "volumeLifecycleModes"])
            .iter()
            .map(|m| m.as_str().unwrap_or(""))
            .collect();
        // Defaulted to [Persistent] upstream.
        let modes = if modes.is_empty() {
            "Persistent".to_string()
        } else {
            modes.join(",")
        };
        vec![
            name(o),
            b("attachRequired", true),
            b("podInfoOnMount", false),
            b("storageCapacity", false),
            tokens.into(),
            b("requiresRepublish", false),
            modes.into(),
            age(o, now),
        ]
    }
}

/// The table of `csistoragecapacities.storage.k8s.io`.
pub struct CsiStorageCapacity;

impl TablePrinter for CsiStorageCapacity {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("StorageClassName", "string", "storageClassName represents the name of the StorageClass that the reported capacity applies to. It must meet the same requirements as the name of a StorageClass object (non-empty, DNS subdomain). If that object no longer exists, the CSIStorageCapacity object is obsolete and should be removed by its creator. This field is immutable."),
            col("Capacity", "string", "capacity is the value reported by the CSI driver in its GetCapacityResponse for a GetCapacityRequest with topology and parameters that match the previous fields."),
        ]
    }

    fn row(&self, o: &Value, _now: i128) -> Vec<Value> {
        let cap = at(o, &["capacity"]);
        let cap = if cap.is_null() {
            "<unset>".to_string()
        } else {
            quantity(cap)
        };
        vec![name(o), st(o, &["storageClassName"]).into(), cap.into()]
    }
}
