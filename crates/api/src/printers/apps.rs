//! Table printers of the `apps` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `replicasets.apps`.
pub struct ReplicaSet;

impl TablePrinter for ReplicaSet {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Desired", "integer", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"),
            col("Current", "integer", "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"),
            col("Ready", "integer", "The number of ready replicas for this replica set."),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", SELECTOR_DESC),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let (names, images) = containers_cells(at(o, &["spec", "template", "spec", "containers"]));
        vec![
            name(o),
            opt_int(o, &["spec", "replicas"]).unwrap_or(1).into(),
            int(o, &["status", "replicas"]).into(),
            int(o, &["status", "readyReplicas"]).into(),
            age(o, now),
            names.into(),
            images.into(),
            format_label_selector(at(o, &["spec", "selector"])).into(),
        ]
    }
}

/// The table of `daemonsets.apps`.
pub struct DaemonSet;

impl TablePrinter for DaemonSet {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"),
            col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"),
            col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
            col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
            col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
            col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", "A label query over pods that are managed by the daemon set. Must match in order to be controlled. If empty, defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let (names, images) = containers_cells(at(o, &["spec", "template", "spec", "containers"]));
        vec![
            name(o),
            int(o, &["status", "desiredNumberScheduled"]).into(),
            int(o, &["status", "currentNumberScheduled"]).into(),
            int(o, &["status", "numberReady"]).into(),
            int(o, &["status", "updatedNumberScheduled"]).into(),
            int(o, &["status", "numberAvailable"]).into(),
            format_labels(at(o, &["spec", "template", "spec", "nodeSelector"])).into(),
            age(o, now),
            names.into(),
            images.into(),
            format_label_selector(at(o, &["spec", "selector"])).into(),
        ]
    }
}

/// The table of `statefulsets.apps`.
pub struct StatefulSet;

impl TablePrinter for StatefulSet {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Ready", "string", "Number of the pod with ready state"),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let (names, images) = containers_cells(at(o, &["spec", "template", "spec", "containers"]));
        vec![
            name(o),
            format!(
                "{}/{}",
                int(o, &["status", "readyReplicas"]),
                opt_int(o, &["spec", "replicas"]).unwrap_or(1)
            )
            .into(),
            age(o, now),
            names.into(),
            images.into(),
        ]
    }
}

/// The table of `deployments.apps`.
pub struct Deployment;

impl TablePrinter for Deployment {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Ready", "string", "Number of the pod with ready state"),
            col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let (names, images) = containers_cells(at(o, &["spec", "template", "spec", "containers"]));
        let selector = match selector_string(at(o, &["spec", "selector"])) {
            Ok(s) => s,
            Err(()) => "<invalid>".to_string(),
        };
        vec![
            name(o),
            format!(
                "{}/{}",
                int(o, &["status", "readyReplicas"]),
                opt_int(o, &["spec", "replicas"]).unwrap_or(1)
            )
            .into(),
            int(o, &["status", "updatedReplicas"]).into(),
            int(o, &["status", "availableReplicas"]).into(),
            age(o, now),
            names.into(),
            images.into(),
            selector.into(),
        ]
    }
}

/// The table of `controllerrevisions.apps`.
pub struct ControllerRevision;

impl TablePrinter for ControllerRevision {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Controller", "string", "Controller of the object"),
            col(
                "Revision",
                "string",
                "Revision indicates the revision of the state represented by Data.",
            ),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let controller = arr(o, &["metadata", "ownerReferences"])
            .iter()
            .find(|r| at(r, &["controller"]).as_bool() == Some(true));
        let controller = match controller {
            None => "<none>".to_string(),
            Some(r) => {
                let api_version = st(r, &["apiVersion"]);
                let group = match api_version.split_once('/') {
                    Some((g, _)) => g,
                    None => "",
                };
                let kind = st(r, &["kind"]);
                let gk = if group.is_empty() {
                    kind.to_string()
                } else {
                    format!("{kind}.{group}")
                };
                if gk.is_empty() {
                    st(r, &["name"]).to_string()
                } else {
                    format!("{}/{}", gk.to_lowercase(), st(r, &["name"]))
                }
            }
        };
        vec![
            name(o),
            controller.into(),
            int(o, &["revision"]).into(),
            age(o, now),
        ]
    }
}
