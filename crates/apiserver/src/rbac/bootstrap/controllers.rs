//! The roles of the controller manager and of each of its controllers (upstream's
//! `controller_policy.go`): the manager (`system:kube-controller-manager`) may run the shared
//! informers, hold its Lease and make its controllers' service accounts and tokens; each
//! controller acts as the ServiceAccount `kube-system/<name>`, bound to
//! `system:controller:<name>`.
//!
//! Every controller upstream 1.33 runs by default has its role here (upstream's rules, its
//! `extensions` group left out), those ferry does not run too (attach-detach, expand, route,
//! TTL, the legacy token cleaner, the ValidatingAdmissionPolicy status and ServiceCIDR
//! controllers), so a controller manager run beside ferry's finds them; roles of controllers
//! behind feature gates that are off by default (DRA, VolumeAttributesClass, SELinux) are not.
//! Where a ferry controller needs more than upstream's role, the extra rule says why.

use serde_json::Value;

use super::{cluster_binding, cluster_role, events_rules, named, rule, READ};

/// The prefix of the controllers' roles and bindings.
pub const ROLE_PREFIX: &str = "system:controller:";

/// The namespace of the controllers' service accounts.
const NAMESPACE: &str = "kube-system";

/// The controllers' roles by service-account name, each with its rules (events added to those
/// upstream gives them).
fn controller_rules() -> Vec<(&'static str, bool, Vec<Value>)> {
    const EVENTS: bool = true;
    vec![
        (
            "clusterrole-aggregation-controller",
            !EVENTS,
            vec![rule(
                &["escalate", "get", "list", "watch", "update", "patch"],
                "rbac.authorization.k8s.io",
                &["clusterroles"],
            )],
        ),
        (
            "cronjob-controller",
            EVENTS,
            vec![
                rule(&["get", "list", "watch", "update"], "batch", &["cronjobs"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "delete", "patch",
                    ],
                    "batch",
                    &["jobs"],
                ),
                rule(
                    &["update"],
                    "batch",
                    &["cronjobs/status", "cronjobs/finalizers"],
                ),
                rule(&["list", "watch", "delete"], "", &["pods"]),
            ],
        ),
        (
            "daemon-set-controller",
            EVENTS,
            vec![
                rule(READ, "apps", &["daemonsets"]),
                rule(
                    &["update"],
                    "apps",
                    &["daemonsets/status", "daemonsets/finalizers"],
                ),
                rule(&["list", "watch"], "", &["nodes"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    "",
                    &["pods"],
                ),
                rule(&["create"], "", &["pods/binding"]),
                rule(
                    &[
                        "get", "list", "watch", "create", "delete", "update", "patch",
                    ],
                    "apps",
                    &["controllerrevisions"],
                ),
            ],
        ),
        (
            "deployment-controller",
            EVENTS,
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    "apps",
                    &["deployments"],
                ),
                rule(
                    &["update"],
                    "apps",
                    &["deployments/status", "deployments/finalizers"],
                ),
                rule(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    "apps",
                    &["replicasets"],
                ),
                rule(&["get", "list", "watch", "update"], "", &["pods"]),
            ],
        ),
        (
            "disruption-controller",
            EVENTS,
            vec![
                rule(
                    READ,
                    "apps",
                    &["deployments", "replicasets", "statefulsets"],
                ),
                rule(READ, "", &["replicationcontrollers"]),
                rule(READ, "policy", &["poddisruptionbudgets"]),
                rule(&["update"], "policy", &["poddisruptionbudgets/status"]),
                rule(&["patch", "update"], "", &["pods/status"]),
                rule(&["get"], "*", &["*/scale"]),
            ],
        ),
        (
            "endpoint-controller",
            EVENTS,
            vec![
                rule(READ, "", &["services", "pods"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    "",
                    &["endpoints"],
                ),
                rule(&["create"], "", &["endpoints/restricted"]),
            ],
        ),
        (
            "endpointslice-controller",
            EVENTS,
            vec![
                rule(READ, "", &["services", "pods", "nodes"]),
                // Slices owned by their Service with blockOwnerDeletion.
                rule(&["update"], "", &["services/finalizers"]),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    "discovery.k8s.io",
                    &["endpointslices"],
                ),
            ],
        ),
        (
            "endpointslicemirroring-controller",
            EVENTS,
            vec![
                rule(READ, "", &["services", "endpoints"]),
                rule(
                    &["update"],
                    "",
                    &["services/finalizers", "endpoints/finalizers"],
                ),
                rule(
                    &["get", "list", "watch", "create", "update", "delete"],
                    "discovery.k8s.io",
                    &["endpointslices"],
                ),
            ],
        ),
        (
            "ephemeral-volume-controller",
            EVENTS,
            vec![
                rule(&["get", "list", "watch"], "", &["pods"]),
                rule(&["update"], "", &["pods/finalizers"]),
                rule(
                    &["get", "list", "watch", "create"],
                    "",
                    &["persistentvolumeclaims"],
                ),
            ],
        ),
        (
            "generic-garbage-collector",
            EVENTS,
            vec![rule(
                &["get", "list", "watch", "patch", "update", "delete"],
                "*",
                &["*"],
            )],
        ),
        (
            "horizontal-pod-autoscaler",
            EVENTS,
            vec![
                rule(READ, "autoscaling", &["horizontalpodautoscalers"]),
                rule(
                    &["update"],
                    "autoscaling",
                    &["horizontalpodautoscalers/status"],
                ),
                rule(&["get", "update"], "*", &["*/scale"]),
                rule(&["list", "watch"], "", &["pods"]),
                rule(&["list", "watch"], "metrics.k8s.io", &["pods"]),
                rule(READ, "custom.metrics.k8s.io", &["*"]),
                rule(READ, "external.metrics.k8s.io", &["*"]),
            ],
        ),
        (
            "job-controller",
            EVENTS,
            vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    "batch",
                    &["jobs"],
                ),
                rule(&["update"], "batch", &["jobs/status", "jobs/finalizers"]),
                rule(
                    &["list", "watch", "create", "delete", "patch"],
                    "",
                    &["pods"],
                ),
                // ferry's job controller also deletes finished Jobs whose
                // ttlSecondsAfterFinished ran out (upstream's ttl-after-finished controller).
                rule(&["delete"], "batch", &["jobs"]),
            ],
        ),
        (
            "namespace-controller",
            !EVENTS,
            vec![
                rule(&["get", "list", "watch", "delete"], "", &["namespaces"]),
                rule(
                    &["update"],
                    "",
                    &["namespaces/finalize", "namespaces/status"],
                ),
                // ferry sets the deletion conditions with a merge patch of the status.
                rule(&["patch"], "", &["namespaces/status"]),
                rule(
                    &["get", "list", "watch", "delete", "deletecollection"],
                    "*",
                    &["*"],
                ),
            ],
        ),
        (
            // Node lifecycle and node IPAM (upstream's node-ipam-controller uses it too).
            "node-controller",
            EVENTS,
            vec![
                rule(
                    &["get", "list", "watch", "update", "delete", "patch"],
                    "",
                    &["nodes"],
                ),
                rule(&["patch", "update"], "", &["nodes/status", "pods/status"]),
                rule(&["list", "watch", "get", "delete"], "", &["pods"]),
            ],
        ),
        (
            "persistent-volume-binder",
            EVENTS,
            vec![
                rule(
                    &["get", "list", "watch", "update", "create", "delete"],
                    "",
                    &["persistentvolumes"],
                ),
                rule(&["update"], "", &["persistentvolumes/status"]),
                rule(
                    &["get", "list", "watch", "update"],
                    "",
                    &["persistentvolumeclaims"],
                ),
                rule(&["update"], "", &["persistentvolumeclaims/status"]),
                rule(&["list", "watch", "get", "create", "delete"], "", &["pods"]),
                rule(READ, "storage.k8s.io", &["storageclasses"]),
                rule(&["list", "watch"], "", &["nodes"]),
                rule(&["watch"], "", &["events"]),
                rule(&["get"], "", &["services"]),
            ],
        ),
        (
            "pod-garbage-collector",
            !EVENTS,
            vec![
                rule(&["list", "watch", "delete"], "", &["pods"]),
                rule(READ, "", &["nodes"]),
                rule(&["patch"], "", &["pods/status"]),
            ],
        ),
        (
            "pv-protection-controller",
            EVENTS,
            vec![rule(
                &["get", "list", "watch", "update"],
                "",
                &["persistentvolumes"],
            )],
        ),
        (
            "pvc-protection-controller",
            EVENTS,
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    "",
                    &["persistentvolumeclaims"],
                ),
                rule(&["list", "watch", "get"], "", &["pods"]),
            ],
        ),
        (
            "replicaset-controller",
            EVENTS,
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    "apps",
                    &["replicasets"],
                ),
                rule(
                    &["update"],
                    "apps",
                    &["replicasets/status", "replicasets/finalizers"],
                ),
                rule(
                    &["list", "watch", "patch", "create", "delete"],
                    "",
                    &["pods"],
                ),
            ],
        ),
        (
            "replication-controller",
            EVENTS,
            vec![
                rule(
                    &["get", "list", "watch", "update"],
                    "",
                    &["replicationcontrollers"],
                ),
                rule(
                    &["update"],
                    "",
                    &[
                        "replicationcontrollers/status",
                        "replicationcontrollers/finalizers",
                    ],
                ),
                rule(
                    &["list", "watch", "patch", "create", "delete"],
                    "",
                    &["pods"],
                ),
            ],
        ),
        (
            "resourcequota-controller",
            EVENTS,
            vec![
                rule(&["list", "watch"], "*", &["*"]),
                rule(&["update"], "", &["resourcequotas/status"]),
            ],
        ),
        (
            "root-ca-cert-publisher",
            EVENTS,
            vec![
                rule(&["create", "update"], "", &["configmaps"]),
                // ferry's publisher reads the ConfigMap from the API (upstream's from an
                // informer the manager's own identity runs).
                named(rule(&["get"], "", &["configmaps"]), &["kube-root-ca.crt"]),
            ],
        ),
        (
            "service-account-controller",
            EVENTS,
            vec![rule(&["create"], "", &["serviceaccounts"])],
        ),
        (
            // ferry's servicelb fills `status.loadBalancer`, as a cloud's service controller.
            "service-controller",
            EVENTS,
            vec![
                rule(READ, "", &["services"]),
                rule(&["patch", "update"], "", &["services/status"]),
                rule(&["list", "watch"], "", &["nodes"]),
            ],
        ),
        (
            "statefulset-controller",
            EVENTS,
            vec![
                rule(&["list", "watch"], "", &["pods"]),
                rule(READ, "apps", &["statefulsets"]),
                rule(
                    &["update"],
                    "apps",
                    &["statefulsets/status", "statefulsets/finalizers"],
                ),
                rule(
                    &["get", "create", "delete", "update", "patch"],
                    "",
                    &["pods"],
                ),
                rule(
                    &[
                        "get", "create", "delete", "update", "patch", "list", "watch",
                    ],
                    "apps",
                    &["controllerrevisions"],
                ),
                rule(
                    &["get", "create", "list", "watch", "update", "delete"],
                    "",
                    &["persistentvolumeclaims"],
                ),
                // ferry sets the claims' owners (persistentVolumeClaimRetentionPolicy) with a
                // merge patch.
                rule(&["patch"], "", &["persistentvolumeclaims"]),
                rule(&["update"], "", &["pods/finalizers"]),
            ],
        ),
        (
            "attachdetach-controller",
            EVENTS,
            vec![
                rule(
                    &["list", "watch"],
                    "",
                    &["persistentvolumes", "persistentvolumeclaims"],
                ),
                rule(READ, "", &["nodes"]),
                rule(&["patch", "update"], "", &["nodes/status"]),
                rule(&["list", "watch"], "", &["pods"]),
                rule(
                    &["get", "create", "delete", "list", "watch"],
                    "storage.k8s.io",
                    &["volumeattachments"],
                ),
                rule(READ, "storage.k8s.io", &["csidrivers"]),
                rule(READ, "storage.k8s.io", &["csinodes"]),
            ],
        ),
        (
            "expand-controller",
            EVENTS,
            vec![
                rule(
                    &["get", "list", "watch", "update", "patch"],
                    "",
                    &["persistentvolumes"],
                ),
                rule(&["update", "patch"], "", &["persistentvolumeclaims/status"]),
                rule(READ, "", &["persistentvolumeclaims"]),
            ],
        ),
        (
            "legacy-service-account-token-cleaner",
            !EVENTS,
            vec![
                named(
                    rule(&["get"], "", &["configmaps"]),
                    &["kube-apiserver-legacy-service-account-token-tracking"],
                ),
                rule(&["patch", "delete"], "", &["secrets"]),
            ],
        ),
        (
            "route-controller",
            EVENTS,
            vec![
                rule(&["list", "watch"], "", &["nodes"]),
                rule(&["patch"], "", &["nodes/status"]),
            ],
        ),
        (
            "service-cidrs-controller",
            EVENTS,
            vec![
                rule(
                    &["get", "list", "watch", "patch", "update"],
                    "networking.k8s.io",
                    &["servicecidrs"],
                ),
                rule(
                    &["patch", "update"],
                    "networking.k8s.io",
                    &["servicecidrs/finalizers"],
                ),
                rule(
                    &["patch", "update"],
                    "networking.k8s.io",
                    &["servicecidrs/status"],
                ),
                rule(READ, "networking.k8s.io", &["ipaddresses"]),
            ],
        ),
        (
            "ttl-after-finished-controller",
            EVENTS,
            vec![rule(
                &["get", "list", "watch", "delete"],
                "batch",
                &["jobs"],
            )],
        ),
        (
            "ttl-controller",
            EVENTS,
            vec![rule(&["update", "patch", "list", "watch"], "", &["nodes"])],
        ),
        (
            "validatingadmissionpolicy-status-controller",
            EVENTS,
            vec![
                rule(
                    READ,
                    "admissionregistration.k8s.io",
                    &["validatingadmissionpolicies"],
                ),
                rule(
                    &["get", "patch", "update"],
                    "admissionregistration.k8s.io",
                    &["validatingadmissionpolicies/status"],
                ),
            ],
        ),
        (
            "certificate-controller",
            EVENTS,
            vec![
                rule(
                    &["get", "list", "watch", "delete"],
                    "certificates.k8s.io",
                    &["certificatesigningrequests"],
                ),
                rule(
                    &["update"],
                    "certificates.k8s.io",
                    &[
                        "certificatesigningrequests/status",
                        "certificatesigningrequests/approval",
                    ],
                ),
                named(
                    rule(&["approve"], "certificates.k8s.io", &["signers"]),
                    &["kubernetes.io/kube-apiserver-client-kubelet"],
                ),
                named(
                    rule(&["sign"], "certificates.k8s.io", &["signers"]),
                    &[
                        "kubernetes.io/legacy-unknown",
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                    ],
                ),
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["subjectaccessreviews"],
                ),
            ],
        ),
    ]
}

/// The manager's own role: the shared informers (list and watch of everything), its Lease,
/// the controllers' service accounts and their tokens, and the token controller's Secrets
/// (which upstream runs with the manager's identity too).
fn manager_rules() -> Vec<Value> {
    let mut rules = events_rules().to_vec();
    rules.extend([
        rule(&["create"], "coordination.k8s.io", &["leases"]),
        named(
            rule(&["get", "update"], "coordination.k8s.io", &["leases"]),
            &["kube-controller-manager"],
        ),
        rule(&["create"], "", &["endpoints"]),
        named(
            rule(&["get", "update"], "", &["endpoints"]),
            &["kube-controller-manager"],
        ),
        rule(&["create"], "", &["secrets", "serviceaccounts"]),
        rule(&["delete"], "", &["secrets"]),
        rule(
            &["get"],
            "",
            &["namespaces", "secrets", "serviceaccounts", "configmaps"],
        ),
        rule(&["update"], "", &["secrets", "serviceaccounts"]),
        rule(&["create"], "authentication.k8s.io", &["tokenreviews"]),
        rule(
            &["create"],
            "authorization.k8s.io",
            &["subjectaccessreviews"],
        ),
        rule(&["list", "watch"], "*", &["*"]),
        rule(&["create"], "", &["serviceaccounts/token"]),
    ]);
    rules
}

/// The names of the controllers' service accounts that have a role here.
pub fn controller_names() -> Vec<&'static str> {
    controller_rules()
        .into_iter()
        .map(|(name, ..)| name)
        .collect()
}

/// `system:kube-controller-manager` and one `system:controller:<name>` per controller.
pub fn cluster_roles() -> Vec<Value> {
    let mut roles = vec![cluster_role(
        "system:kube-controller-manager",
        &[],
        manager_rules(),
    )];
    for (name, events, mut rules) in controller_rules() {
        if events {
            rules.extend(events_rules());
        }
        roles.push(cluster_role(&format!("{ROLE_PREFIX}{name}"), &[], rules));
    }
    roles
}

/// Their bindings: the manager's user, each controller's service account.
pub fn cluster_role_bindings() -> Vec<Value> {
    let mut bindings = vec![cluster_binding(
        "system:kube-controller-manager",
        "system:kube-controller-manager",
        &[("User", "system:kube-controller-manager")],
    )];
    for name in controller_names() {
        let role = format!("{ROLE_PREFIX}{name}");
        let account = format!("{NAMESPACE}/{name}");
        bindings.push(cluster_binding(
            &role,
            &role,
            &[("ServiceAccount", account.as_str())],
        ));
    }
    bindings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_controller_role_is_bound_to_its_service_account() {
        let roles = cluster_roles();
        let bindings = cluster_role_bindings();
        assert_eq!(roles.len(), bindings.len());
        for name in controller_names() {
            let role = format!("{ROLE_PREFIX}{name}");
            assert!(roles.iter().any(|r| r["metadata"]["name"] == role.as_str()));
            let binding = bindings
                .iter()
                .find(|b| b["metadata"]["name"] == role.as_str())
                .unwrap_or_else(|| panic!("{role}"));
            assert_eq!(binding["roleRef"]["name"], role.as_str());
            assert_eq!(
                binding["subjects"][0],
                serde_json::json!({"kind": "ServiceAccount", "name": name, "namespace": "kube-system"})
            );
        }
        let mut names = controller_names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), controller_names().len(), "no name twice");
    }
}
