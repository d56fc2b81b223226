//! A container's Linux security context (upstream `determineEffectiveSecurityContext` in
//! `security_context.go`): the container's settings over the pod's, the image's user, seccomp,
//! capabilities, masked and read-only `/proc` paths; and upstream's `runAsNonRoot` check.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, SeccompProfile};

use super::{namespace_options, pod_name, pod_namespace, pod_uid, ConfigError, ContainerContext};
use crate::runtime::v1;

/// Paths a container's `/proc` masks by default (upstream `defaultMaskedPaths`).
const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// Paths mounted read-only by default (upstream `defaultReadonlyPaths`).
const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn seccomp_profile(
    profile: Option<&SeccompProfile>,
    profile_root: &str,
) -> Result<v1::SecurityProfile, ConfigError> {
    use v1::security_profile::ProfileType;
    let unconfined = v1::SecurityProfile {
        profile_type: ProfileType::Unconfined as i32,
        localhost_ref: String::new(),
    };
    let Some(profile) = profile else {
        // kubelet `--seccomp-default` is off: unconfined unless the pod asks.
        return Ok(unconfined);
    };
    match profile.type_.as_str() {
        "RuntimeDefault" => Ok(v1::SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        }),
        "Localhost" => match profile.localhost_profile.as_deref() {
            Some(name) if !name.is_empty() => Ok(v1::SecurityProfile {
                profile_type: ProfileType::Localhost as i32,
                localhost_ref: format!("{}/{name}", profile_root.trim_end_matches('/')),
            }),
            _ => Err(ConfigError::SeccompLocalhostProfileMissing),
        },
        _ => Ok(unconfined),
    }
}

/// Upstream `determineEffectiveSecurityContext`: the container's security context with the pod's
/// user, group and non-root settings as defaults, plus the pod's namespaces and groups.
pub(super) fn container_security_context(
    spec: &PodSpec,
    container: &Container,
    ctx: &ContainerContext,
) -> Result<v1::LinuxContainerSecurityContext, ConfigError> {
    let psc = spec.security_context.clone().unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let run_as_group = sc.run_as_group.or(psc.run_as_group);
    let seccomp = seccomp_profile(
        sc.seccomp_profile.as_ref().or(psc.seccomp_profile.as_ref()),
        &ctx.seccomp_profile_root,
    )?;
    let mut supplemental_groups = Vec::new();
    supplemental_groups.extend(psc.fs_group);
    supplemental_groups.extend(psc.supplemental_groups.iter().flatten().copied());
    let unmasked = sc.proc_mount.as_deref() == Some("Unmasked");
    let (masked_paths, readonly_paths) = if unmasked {
        (Vec::new(), Vec::new())
    } else {
        (
            DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            DEFAULT_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    };
    let capabilities = sc.capabilities.as_ref().map(|c| v1::Capability {
        add_capabilities: c.add.clone().unwrap_or_default(),
        drop_capabilities: c.drop.clone().unwrap_or_default(),
        ..Default::default()
    });
    Ok(v1::LinuxContainerSecurityContext {
        capabilities,
        privileged: sc.privileged.unwrap_or(false),
        namespace_options: Some(match &ctx.pid_target {
            Some(target) => v1::NamespaceOption {
                pid: v1::NamespaceMode::Target as i32,
                target_id: target.clone(),
                ..namespace_options(spec)
            },
            None => namespace_options(spec),
        }),
        // Upstream getImageUser: an image without a user runs as root, and says so explicitly.
        run_as_user: match (run_as_user, ctx.image_uid, ctx.image_username.is_empty()) {
            (Some(value), _, _) | (None, Some(value), _) => Some(v1::Int64Value { value }),
            (None, None, true) => Some(v1::Int64Value { value: 0 }),
            (None, None, false) => None,
        },
        run_as_group: run_as_group.map(|value| v1::Int64Value { value }),
        run_as_username: if run_as_user.is_none() && ctx.image_uid.is_none() {
            ctx.image_username.clone()
        } else {
            String::new()
        },
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups,
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths,
        readonly_paths,
        seccomp: Some(seccomp),
        ..Default::default()
    })
}

/// Upstream `verifyRunAsNonRoot`.
pub(super) fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    ctx: &ContainerContext,
) -> Result<(), ConfigError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let psc = spec.security_context.unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    if !sc.run_as_non_root.or(psc.run_as_non_root).unwrap_or(false) {
        return Ok(());
    }
    let pod_ref = format!("{}_{}({})", pod_name(pod), pod_namespace(pod), pod_uid(pod));
    let name = &container.name;
    if let Some(user) = sc.run_as_user.or(psc.run_as_user) {
        if user == 0 {
            return Err(ConfigError::RunAsNonRoot(format!(
                "container's runAsUser breaks non-root policy (pod: \"{pod_ref}\", container: {name})"
            )));
        }
        return Ok(());
    }
    match ctx.image_uid {
        Some(0) => Err(ConfigError::RunAsNonRoot(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{pod_ref}\", container: {name})"
        ))),
        Some(_) => Ok(()),
        None if !ctx.image_username.is_empty() => Err(ConfigError::RunAsNonRoot(format!(
            "container has runAsNonRoot and image has non-numeric user ({}), cannot verify user is non-root (pod: \"{pod_ref}\", container: {name})",
            ctx.image_username
        ))),
        // No user in the image: it runs as root.
        None => Err(ConfigError::RunAsNonRoot(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{pod_ref}\", container: {name})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::podconfig::testing::*;
    use crate::podconfig::*;

    #[test]
    fn container_security_context_cases() {
        let sc_of = |p: &Pod| {
            config(p)
                .expect("config")
                .linux
                .and_then(|l| l.security_context)
                .expect("sc")
        };
        let c = sc_of(&pod(json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 7, "supplementalGroups": [8]},
            "containers": [{"name": "c", "securityContext": {
                "privileged": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                "runAsUser": 2000, "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}
            }}]
        })));
        assert!(c.privileged);
        assert!(c.readonly_rootfs);
        assert!(c.no_new_privs);
        assert_eq!(c.run_as_user, Some(v1::Int64Value { value: 2000 }));
        assert_eq!(c.run_as_group, Some(v1::Int64Value { value: 100 }));
        assert_eq!(c.supplemental_groups, vec![7, 8]);
        assert_eq!(
            c.capabilities,
            Some(v1::Capability {
                add_capabilities: vec!["NET_ADMIN".into()],
                drop_capabilities: vec!["ALL".into()],
                ..Default::default()
            })
        );
        assert_eq!(c.masked_paths.len(), DEFAULT_MASKED_PATHS.len());
        assert_eq!(c.readonly_paths.len(), DEFAULT_READONLY_PATHS.len());

        let plain = sc_of(&one(json!({"name": "c"})));
        assert!(!plain.privileged && !plain.no_new_privs && !plain.readonly_rootfs);
        // The image's user when the spec sets none.
        assert_eq!(plain.run_as_user, Some(v1::Int64Value { value: 1000 }));

        use v1::security_profile::ProfileType;
        let seccomp = |spec: serde_json::Value| {
            config(&pod(spec)).map(|c| {
                c.linux
                    .and_then(|l| l.security_context)
                    .and_then(|s| s.seccomp)
                    .map(|s| (s.profile_type, s.localhost_ref))
            })
        };
        let cases = [
            (
                json!({"containers": [{"name": "c"}]}),
                Ok(Some((ProfileType::Unconfined as i32, String::new()))),
            ),
            (
                json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "c"}]}),
                Ok(Some((ProfileType::RuntimeDefault as i32, String::new()))),
            ),
            (
                json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                       "containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]}),
                Ok(Some((ProfileType::Unconfined as i32, String::new()))),
            ),
            (
                json!({"containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}]}),
                Ok(Some((
                    ProfileType::Localhost as i32,
                    "/data/seccomp/p.json".to_string(),
                ))),
            ),
            (
                json!({"containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Localhost"}}}]}),
                Err(ConfigError::SeccompLocalhostProfileMissing),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(seccomp(spec.clone()), want, "{spec}");
        }
    }

    #[test]
    fn run_as_non_root() {
        let check = |spec: serde_json::Value, uid: Option<i64>, username: &str| {
            let p = pod(spec);
            let mut ctx = container_ctx();
            ctx.image_uid = uid;
            ctx.image_username = username.into();
            let spec = p.spec.clone().unwrap_or_default();
            container_config(&p, &spec.containers[0], &ctx).map(|_| ())
        };
        let non_root =
            json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]});
        assert_eq!(check(non_root.clone(), Some(1000), ""), Ok(()));
        assert_eq!(
            check(non_root.clone(), Some(0), ""),
            Err(ConfigError::RunAsNonRoot("container has runAsNonRoot and image will run as root (pod: \"web_ns(u1)\", container: c)".into()))
        );
        assert_eq!(
            check(non_root.clone(), None, "nobody"),
            Err(ConfigError::RunAsNonRoot("container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root (pod: \"web_ns(u1)\", container: c)".into()))
        );
        assert_eq!(
            check(
                json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 0}, "containers": [{"name": "c"}]}),
                Some(1000),
                ""
            ),
            Err(ConfigError::RunAsNonRoot(
                "container's runAsUser breaks non-root policy (pod: \"web_ns(u1)\", container: c)"
                    .into()
            ))
        );
        assert_eq!(
            check(json!({"containers": [{"name": "c"}]}), Some(0), ""),
            Ok(())
        );
    }
}
