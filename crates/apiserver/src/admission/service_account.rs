//! ServiceAccount (upstream's `plugin/pkg/admission/serviceaccount`): every new pod runs as a
//! service account (`default` unless named) that must exist, inherits its image pull secrets
//! when it names none, and — unless the pod or the account turns `automountServiceAccountToken`
//! off — gets the `kube-api-access-<random>` projected volume (a bound token, the cluster CA
//! from `kube-root-ca.crt`, the namespace) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container that has nothing there.
//!
//! The `default` account is made by the serviceaccount controller just after its namespace, so
//! a pod created at once may find it missing: as upstream, the lookup of `default` is retried
//! for a little while before the pod is refused.

use std::time::Duration;

use async_trait::async_trait;
use rand::Rng as _;
use serde_json::{json, Value};

use super::{Attributes, MutatingPlugin, Operation};
use crate::object::meta_str;
use crate::registry::{GroupResource, PODS};
use crate::status::ApiError;
use crate::storage::Storage;

/// Where the token, CA and namespace are mounted.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The prefix of the token volume's name.
const VOLUME_PREFIX: &str = "kube-api-access-";
/// The token lifetime the volume asks for (upstream's `WarnOnlyBoundTokenExpirationSeconds`).
const TOKEN_SECONDS: i64 = 3607;
/// Lookups of a missing `default` account before the pod is refused.
const DEFAULT_ATTEMPTS: usize = 10;

/// The ServiceAccount plugin.
pub struct ServiceAccount;

/// The projected volume every pod gets (upstream's `TokenVolumeSource`).
fn token_volume(name: &str) -> Value {
    json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}})
}

/// Five characters of upstream's `utilrand.String` alphabet.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Adds the token volume and its mounts to `pod` (upstream's `mountServiceAccountToken`): each
/// init and app container without a mount at [`TOKEN_MOUNT_PATH`] gets one; the volume is
/// added if some container needs it and the pod has none yet.
pub fn mount_token(pod: &mut Value, suffix: &str) {
    let spec = &mut pod["spec"];
    let existing = spec["volumes"].as_array().and_then(|volumes| {
        volumes
            .iter()
            .filter_map(|v| v["name"].as_str())
            .find(|name| name.starts_with(VOLUME_PREFIX))
            .map(str::to_string)
    });
    let name = existing
        .clone()
        .unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let containers = spec.get_mut(list).and_then(Value::as_array_mut);
        for container in containers.into_iter().flatten() {
            let has_mount = container["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"] == TOKEN_MOUNT_PATH);
            if has_mount {
                continue;
            }
            if !container["volumeMounts"].is_array() {
                container["volumeMounts"] = json!([]);
            }
            if let Some(mounts) = container["volumeMounts"].as_array_mut() {
                mounts.push(mount.clone());
            }
            needed = true;
        }
    }
    if needed && existing.is_none() {
        if !spec["volumes"].is_array() {
            spec["volumes"] = json!([]);
        }
        if let Some(volumes) = spec["volumes"].as_array_mut() {
            volumes.push(token_volume(&name));
        }
    }
}

/// The service account `namespace/name`, retried a while for `default`.
async fn find_account(
    storage: &Storage,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let attempts = if name == "default" {
        DEFAULT_ATTEMPTS
    } else {
        1
    };
    for attempt in 0..attempts {
        if attempt > 0 {
            let wait = rand::rng().random_range(100..200);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        if let Some(account) =
            crate::storage::read_core(&*storage.store, "serviceaccounts", namespace, name).await?
        {
            return Ok(Some(account));
        }
    }
    Ok(None)
}

#[async_trait]
impl MutatingPlugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn admit(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        pod: &mut Value,
    ) -> Result<(), ApiError> {
        if GroupResource::of(attributes.resource) != PODS
            || attributes.user.is_none()
            || attributes.operation != Operation::Create
            || !attributes.subresource.is_empty()
        {
            return Ok(());
        }
        // Mirror pods are the kubelet's, with no service account.
        if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string() {
            return Ok(());
        }
        let namespace = meta_str(pod, "namespace").unwrap_or_default().to_string();
        let account_name = match pod["spec"]["serviceAccountName"].as_str() {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => {
                pod["spec"]["serviceAccountName"] = json!("default");
                "default".to_string()
            }
        };
        let Some(account) = find_account(storage, &namespace, &account_name).await? else {
            return Err(ApiError::forbidden(format!(
                "pods \"{}\" is forbidden: error looking up service account {namespace}/{account_name}: serviceaccount \"{account_name}\" not found",
                meta_str(pod, "name").unwrap_or_default()
            )));
        };
        let automount = pod["spec"]["automountServiceAccountToken"]
            .as_bool()
            .or_else(|| account["automountServiceAccountToken"].as_bool())
            .unwrap_or(true);
        if automount {
            mount_token(pod, &random_suffix());
        }
        let pulls_nothing = pod["spec"]["imagePullSecrets"]
            .as_array()
            .is_none_or(Vec::is_empty);
        if pulls_nothing {
            if let Some(secrets) = account["imagePullSecrets"]
                .as_array()
                .filter(|s| !s.is_empty())
            {
                pod["spec"]["imagePullSecrets"] = Value::Array(secrets.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_mounts_one_token_volume() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                           {"name": "own", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}});
        mount_token(&mut pod, "abcde");
        let mount = json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(
            pod["spec"]["initContainers"][0]["volumeMounts"],
            json!([mount])
        );
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"][1], mount);
        // A container with its own mount there keeps it.
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        let volumes = pod["spec"]["volumes"].as_array().expect("volumes");
        assert_eq!(volumes.len(), 2);
        assert_eq!(volumes[1], token_volume("kube-api-access-abcde"));
        assert_eq!(
            volumes[1]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        // Admitting again changes nothing.
        let again = pod.clone();
        mount_token(&mut pod, "zzzzz");
        assert_eq!(pod, again);
        // Nobody needs it: no volume.
        let mut covered = json!({"spec": {"containers": [{"name": "own", "volumeMounts": [{"name": "m", "mountPath": TOKEN_MOUNT_PATH}]}]}});
        mount_token(&mut covered, "abcde");
        assert!(covered["spec"].get("volumes").is_none());
        assert_eq!(random_suffix().len(), 5);
    }

    /// What the plugin adds is in the form a decode and encode gives (upstream's plugin works
    /// on typed objects), so a later update of the pod does not see its spec change.
    #[test]
    fn the_volume_is_written_as_the_types_write_it() {
        let info = ferry_api::registry::find("", "v1", "pods").expect("pods");
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]}});
        mount_token(&mut pod, "abcde");
        let canonical = crate::registry::generic::canonical(info, pod.clone()).expect("canonical");
        assert_eq!(canonical["spec"], pod["spec"]);
    }
}
