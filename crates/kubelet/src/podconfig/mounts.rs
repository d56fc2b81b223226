//! A container's mounts (upstream `makeMounts` in `kubelet_pods.go`): its volumeMounts onto
//! the host paths of the pod's prepared volumes (with subPath and subPathExpr, read-only and
//! propagation), the pod's managed `/etc/hosts`, and the termination message file.

use k8s_openapi::api::core::v1::Container;

use super::{expand, ConfigError, ContainerContext};
use crate::runtime::v1;

/// Where a prepared volume is on the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeHostPath {
    /// The host path bind-mounted into containers.
    pub host_path: String,
    /// The volume is read-only whatever the mount says (secret, configMap, downwardAPI, ...).
    pub read_only: bool,
}

pub(super) fn container_mounts(
    container: &Container,
    envs: &[(String, String)],
    ctx: &ContainerContext,
) -> Result<Vec<v1::Mount>, ConfigError> {
    let privileged = container
        .security_context
        .as_ref()
        .and_then(|sc| sc.privileged)
        .unwrap_or(false);
    let mut mounts = Vec::new();
    let mut mounts_etc_hosts = false;
    for mount in container.volume_mounts.iter().flatten() {
        let volume = ctx
            .volumes
            .get(&mount.name)
            .ok_or_else(|| ConfigError::VolumeNotFound {
                volume: mount.name.clone(),
                container: container.name.clone(),
            })?;
        let mut sub_path = mount.sub_path.clone().unwrap_or_default();
        if let Some(expr) = mount.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
            // Upstream ExpandContainerVolumeMounts: an undefined or empty variable is an error.
            let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
            let expanded = expand(expr, &|name| {
                let value = envs
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                if value.is_empty() {
                    missing.borrow_mut().insert(name.to_string());
                }
                Some(value)
            });
            let missing = missing.into_inner();
            if !missing.is_empty() {
                let names: Vec<String> = missing.into_iter().collect();
                return Err(ConfigError::SubPathExprMissing(names.join(", ")));
            }
            sub_path = expanded;
        }
        let mut host_path = volume.host_path.clone();
        if !sub_path.is_empty() {
            if sub_path.starts_with('/') {
                return Err(ConfigError::SubPathAbsolute(sub_path));
            }
            if sub_path.split('/').any(|part| part == "..") {
                return Err(ConfigError::SubPathBacksteps(sub_path));
            }
            host_path = format!("{}/{}", host_path.trim_end_matches('/'), sub_path);
        }
        let propagation = match mount.mount_propagation.as_deref() {
            Some("HostToContainer") => v1::MountPropagation::PropagationHostToContainer,
            Some("Bidirectional") => {
                if !privileged {
                    return Err(ConfigError::BidirectionalUnprivileged);
                }
                v1::MountPropagation::PropagationBidirectional
            }
            _ => v1::MountPropagation::PropagationPrivate,
        };
        if mount.mount_path == "/etc/hosts" {
            mounts_etc_hosts = true;
        }
        mounts.push(v1::Mount {
            container_path: mount.mount_path.clone(),
            host_path,
            readonly: mount.read_only.unwrap_or(false) || volume.read_only,
            propagation: propagation as i32,
            ..Default::default()
        });
    }
    if let Some(hosts) = ctx.etc_hosts_path.as_ref().filter(|_| !mounts_etc_hosts) {
        mounts.push(v1::Mount {
            container_path: "/etc/hosts".into(),
            host_path: hosts.clone(),
            ..Default::default()
        });
    }
    if let Some(host_file) = &ctx.termination_message_host_path {
        let path = container
            .termination_message_path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/dev/termination-log".into());
        mounts.push(v1::Mount {
            container_path: path,
            host_path: host_file.clone(),
            ..Default::default()
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::podconfig::testing::*;
    use crate::podconfig::*;
    use crate::runtime::v1;

    #[test]
    fn mounts() {
        let mounts = |container: serde_json::Value, tweak: fn(&mut ContainerContext)| {
            let p = one(container);
            let mut ctx = container_ctx();
            tweak(&mut ctx);
            let spec = p.spec.clone().unwrap_or_default();
            container_config(&p, &spec.containers[0], &ctx).map(|c| {
                c.mounts
                    .into_iter()
                    .map(|m| (m.container_path, m.host_path, m.readonly, m.propagation))
                    .collect::<Vec<_>>()
            })
        };
        let private = v1::MountPropagation::PropagationPrivate as i32;
        let none: fn(&mut ContainerContext) = |_| {};
        assert_eq!(
            mounts(
                json!({"name": "c", "env": [{"name": "POD", "value": "p1"}], "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "data", "mountPath": "/ro", "readOnly": true},
                    {"name": "conf", "mountPath": "/etc/conf"},
                    {"name": "data", "mountPath": "/sub", "subPath": "a/b"},
                    {"name": "data", "mountPath": "/expr", "subPathExpr": "logs/$(POD)"},
                    {"name": "data", "mountPath": "/h2c", "mountPropagation": "HostToContainer"}
                ]}),
                |ctx| {
                    ctx.etc_hosts_path = Some("/data/pods/u1/etc-hosts".into());
                    ctx.termination_message_host_path =
                        Some("/data/pods/u1/containers/c/0a1b".into());
                }
            ),
            Ok(vec![
                (
                    "/data".into(),
                    "/data/pods/u1/volumes/data".into(),
                    false,
                    private
                ),
                (
                    "/ro".into(),
                    "/data/pods/u1/volumes/data".into(),
                    true,
                    private
                ),
                (
                    "/etc/conf".into(),
                    "/data/pods/u1/volumes/conf".into(),
                    true,
                    private
                ),
                (
                    "/sub".into(),
                    "/data/pods/u1/volumes/data/a/b".into(),
                    false,
                    private
                ),
                (
                    "/expr".into(),
                    "/data/pods/u1/volumes/data/logs/p1".into(),
                    false,
                    private
                ),
                (
                    "/h2c".into(),
                    "/data/pods/u1/volumes/data".into(),
                    false,
                    v1::MountPropagation::PropagationHostToContainer as i32
                ),
                (
                    "/etc/hosts".into(),
                    "/data/pods/u1/etc-hosts".into(),
                    false,
                    private
                ),
                (
                    "/dev/termination-log".into(),
                    "/data/pods/u1/containers/c/0a1b".into(),
                    false,
                    private
                ),
            ])
        );
        let errors = [
            (
                json!({"name": "c", "volumeMounts": [{"name": "gone", "mountPath": "/x"}]}),
                ConfigError::VolumeNotFound {
                    volume: "gone".into(),
                    container: "c".into(),
                },
            ),
            (
                json!({"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "../etc"}]}),
                ConfigError::SubPathBacksteps("../etc".into()),
            ),
            (
                json!({"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "/etc"}]}),
                ConfigError::SubPathAbsolute("/etc".into()),
            ),
            (
                json!({"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/x", "subPathExpr": "$(B)/$(A)"}]}),
                ConfigError::SubPathExprMissing("A, B".into()),
            ),
            (
                json!({"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/x", "mountPropagation": "Bidirectional"}]}),
                ConfigError::BidirectionalUnprivileged,
            ),
        ];
        for (container, want) in errors {
            assert_eq!(mounts(container.clone(), none), Err(want), "{container}");
        }
        // A container mounting its own /etc/hosts does not get the managed one.
        let own = mounts(
            json!({"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/etc/hosts", "subPath": "hosts"}]}),
            |ctx| ctx.etc_hosts_path = Some("/managed".into()),
        )
        .expect("mounts");
        assert_eq!(own.len(), 1);
    }
}
