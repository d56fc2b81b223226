//! A container's environment (upstream `makeEnvironmentVariables` in `kubelet_pods.go`):
//! `envFrom` sources, then `env` entries with `$(VAR)` expansion ([`expand`]) and values from
//! `fieldRef`, `resourceFieldRef`, `configMapKeyRef` and `secretKeyRef`.

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::{pod_name, pod_namespace, pod_uid, ConfigError, ContainerContext};
use crate::downward::{format_map, split_subscript, ResourceValueError};

/// The container's environment in upstream's resolution order (`makeEnvironmentVariables`):
/// `envFrom` sources first (with their prefix), then `env` entries in order, each `value`
/// expanded against the variables defined before it, later definitions replacing earlier ones.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    ctx: &ContainerContext,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = pod_namespace(pod);
    let mut env: Vec<(String, String)> = Vec::new();
    fn set(env: &mut Vec<(String, String)>, name: String, value: String) {
        if let Some(entry) = env.iter_mut().find(|(n, _)| *n == name) {
            entry.1 = value;
        } else {
            env.push((name, value));
        }
    }

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(cm) = &source.config_map_ref {
            match ctx.config_maps.get(&cm.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut env, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if cm.optional.unwrap_or(false) => {}
                None => return Err(ConfigError::ConfigMapNotFound(cm.name.clone())),
            }
        } else if let Some(secret) = &source.secret_ref {
            match ctx.secrets.get(&secret.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(
                            &mut env,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(v).into_owned(),
                        );
                    }
                }
                None if secret.optional.unwrap_or(false) => {}
                None => return Err(ConfigError::SecretNotFound(secret.name.clone())),
            }
        }
    }

    for var in container.env.iter().flatten() {
        let value = match (var.value.as_deref(), &var.value_from) {
            (Some(value), _) if !value.is_empty() => {
                let snapshot = env.clone();
                let lookup = |name: &str| {
                    snapshot
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                };
                expand(value, &lookup)
            }
            (_, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    field_ref_value(pod, field.api_version.as_deref(), &field.field_path, ctx)?
                } else if let Some(resource) = &from.resource_field_ref {
                    resource_field_value(
                        container,
                        &resource.resource,
                        resource.divisor.as_ref(),
                        ctx,
                    )?
                } else if let Some(key_ref) = &from.config_map_key_ref {
                    let optional = key_ref.optional.unwrap_or(false);
                    match ctx.config_maps.get(&key_ref.name) {
                        None if optional => continue,
                        None => return Err(ConfigError::ConfigMapNotFound(key_ref.name.clone())),
                        Some(data) => match data.get(&key_ref.key) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(ConfigError::ConfigMapKeyNotFound {
                                    key: key_ref.key.clone(),
                                    namespace,
                                    name: key_ref.name.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(key_ref) = &from.secret_key_ref {
                    let optional = key_ref.optional.unwrap_or(false);
                    match ctx.secrets.get(&key_ref.name) {
                        None if optional => continue,
                        None => return Err(ConfigError::SecretNotFound(key_ref.name.clone())),
                        Some(data) => match data.get(&key_ref.key) {
                            Some(v) => String::from_utf8_lossy(v).into_owned(),
                            None if optional => continue,
                            None => {
                                return Err(ConfigError::SecretKeyNotFound {
                                    key: key_ref.key.clone(),
                                    namespace,
                                    name: key_ref.name.clone(),
                                });
                            }
                        },
                    }
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// Upstream's `$(VAR)` expansion (`third_party/forked/golang/expansion`): `$(NAME)` becomes the
/// variable's value, or stays as written when undefined; `$$` is a literal `$`; anything else is
/// copied.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if after.is_empty() {
            // A trailing '$' is literal.
            out.push('$');
            rest = after;
            break;
        }
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(close) => {
                    let name = &tail[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[close + 1..];
                }
                None => {
                    // Unterminated reference: copied as is.
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A `fieldRef` value (upstream `podFieldSelectorRuntimeValue` and
/// `fieldpath.ExtractFieldPathAsString`).
fn field_ref_value(
    pod: &Pod,
    api_version: Option<&str>,
    field_path: &str,
    ctx: &ContainerContext,
) -> Result<String, ConfigError> {
    let version = api_version.unwrap_or("v1");
    if version != "v1" && !version.is_empty() {
        return Err(ConfigError::FieldRef(format!(
            "unsupported pod version: {version}"
        )));
    }
    let spec = pod.spec.clone().unwrap_or_default();
    if let Some((path, key)) = split_subscript(field_path) {
        let map = match path {
            "metadata.annotations" => &pod.metadata.annotations,
            "metadata.labels" => &pod.metadata.labels,
            _ => {
                return Err(ConfigError::FieldRef(format!(
                    "field label not supported: {field_path}"
                )));
            }
        };
        return Ok(map
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    Ok(match field_path {
        "metadata.name" => pod_name(pod),
        "metadata.namespace" => pod_namespace(pod),
        "metadata.uid" => pod_uid(pod),
        "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
        "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.hostIP" => ctx.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => ctx.host_ips.join(","),
        "status.podIP" => ctx.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => ctx.pod_ips.join(","),
        // Accepted by the API's field label conversion but not resolvable by the kubelet.
        "spec.restartPolicy" | "spec.schedulerName" | "status.phase" => {
            return Err(ConfigError::FieldRef(format!(
                "unsupported fieldPath: {field_path}"
            )));
        }
        _ => {
            return Err(ConfigError::FieldRef(format!(
                "field label not supported: {field_path}"
            )));
        }
    })
}

fn resource_field_value(
    container: &Container,
    resource: &str,
    divisor: Option<&ApiQuantity>,
    ctx: &ContainerContext,
) -> Result<String, ConfigError> {
    let allocatable = |name: &str| {
        ctx.node_allocatable
            .get(name)
            .map(crate::downward::parse_api_quantity)
            .transpose()
    };
    crate::downward::container_resource_value(container, resource, divisor, &allocatable).map_err(
        |e| match e {
            ResourceValueError::Unsupported(r) => ConfigError::UnsupportedResource(r),
            ResourceValueError::Quantity { value, source } => {
                ConfigError::Quantity { value, source }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::podconfig::testing::*;

    #[test]
    fn expansion_like_upstream() {
        let vars = BTreeMap::from([
            ("VAR".to_string(), "value".to_string()),
            ("EMPTY".to_string(), String::new()),
        ]);
        let lookup = |name: &str| vars.get(name).cloned();
        let cases = [
            ("$(VAR)", "value"),
            ("x-$(VAR)-y", "x-value-y"),
            ("$(VAR)$(VAR)", "valuevalue"),
            ("$(UNDEFINED)", "$(UNDEFINED)"),
            ("$(EMPTY)", ""),
            ("$$(VAR)", "$(VAR)"),
            ("$$$(VAR)", "$value"),
            ("$$$$(VAR)", "$$(VAR)"),
            ("$VAR", "$VAR"),
            ("$(VAR", "$(VAR"),
            ("$()", "$()"),
            ("trailing$", "trailing$"),
            ("$", "$"),
            ("no vars", "no vars"),
            ("ünï$(VAR)cødé", "ünïvaluecødé"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &lookup), want, "{input}");
        }
    }

    #[test]
    fn env_resolution() {
        let env = |e: serde_json::Value| {
            env_of(&one(json!({"name": "c", "env": e, "resources": {
                "requests": {"cpu": "250m", "memory": "64Mi"},
                "limits": {"memory": "128Mi"}
            }})))
        };
        let pairs = |v: &[(&str, &str)]| {
            Ok(v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>())
        };
        let field =
            |path: &str| json!([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": path}}}]);
        let resource = |r: &str, divisor: Option<&str>| {
            let mut sel = json!({"resource": r});
            if let Some(d) = divisor {
                sel["divisor"] = json!(d);
            }
            json!([{"name": "X", "valueFrom": {"resourceFieldRef": sel}}])
        };
        type Case = (
            serde_json::Value,
            Result<Vec<(String, String)>, ConfigError>,
        );
        let cases: Vec<Case> = vec![
            (
                json!([{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-2"},
                       {"name": "C", "value": "$(D)"}, {"name": "D", "value": "4"},
                       {"name": "A", "value": "$(A)$(A)"}]),
                pairs(&[("A", "11"), ("B", "1-2"), ("C", "$(D)"), ("D", "4")]),
            ),
            (
                json!([{"name": "E", "value": "$$(A)"}]),
                pairs(&[("E", "$(A)")]),
            ),
            (json!([{"name": "E"}]), pairs(&[("E", "")])),
            (field("metadata.name"), pairs(&[("X", "web")])),
            (field("metadata.namespace"), pairs(&[("X", "ns")])),
            (field("metadata.uid"), pairs(&[("X", "u1")])),
            (field("metadata.labels['app']"), pairs(&[("X", "")])),
            (field("spec.nodeName"), pairs(&[("X", "")])),
            (field("status.hostIP"), pairs(&[("X", "192.168.1.10")])),
            (field("status.podIP"), pairs(&[("X", "10.42.0.5")])),
            (field("status.podIPs"), pairs(&[("X", "10.42.0.5,fd00::5")])),
            (
                field("spec.restartPolicy"),
                Err(ConfigError::FieldRef(
                    "unsupported fieldPath: spec.restartPolicy".into(),
                )),
            ),
            (
                field("metadata.bogus"),
                Err(ConfigError::FieldRef(
                    "field label not supported: metadata.bogus".into(),
                )),
            ),
            (resource("requests.cpu", None), pairs(&[("X", "1")])),
            (resource("requests.cpu", Some("1m")), pairs(&[("X", "250")])),
            (resource("limits.cpu", None), pairs(&[("X", "4")])),
            (
                resource("limits.memory", Some("1Mi")),
                pairs(&[("X", "128")]),
            ),
            (
                resource("requests.memory", None),
                pairs(&[("X", "67108864")]),
            ),
            (
                resource("limits.nvidia.com/gpu", None),
                Err(ConfigError::UnsupportedResource(
                    "limits.nvidia.com/gpu".into(),
                )),
            ),
            (
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "B"}}}]),
                pairs(&[("X", "b")]),
            ),
            (
                json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "PASSWORD"}}}]),
                pairs(&[("X", "hunter2")]),
            ),
            (
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]),
                Err(ConfigError::ConfigMapNotFound("nope".into())),
            ),
            (
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]),
                Err(ConfigError::ConfigMapKeyNotFound {
                    key: "k".into(),
                    namespace: "ns".into(),
                    name: "cfg".into(),
                }),
            ),
            (
                json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]),
                Err(ConfigError::SecretNotFound("nope".into())),
            ),
            (
                json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}}]),
                Err(ConfigError::SecretKeyNotFound {
                    key: "k".into(),
                    namespace: "ns".into(),
                    name: "sec".into(),
                }),
            ),
            (
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}},
                       {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k", "optional": true}}}]),
                pairs(&[]),
            ),
        ];
        for (spec_env, want) in cases {
            assert_eq!(env(spec_env.clone()), want, "{spec_env}");
        }
    }

    #[test]
    fn env_from_then_env() {
        let p = one(json!({"name": "c",
            "envFrom": [
                {"configMapRef": {"name": "cfg"}},
                {"secretRef": {"name": "sec"}, "prefix": "S_"},
                {"configMapRef": {"name": "missing", "optional": true}}
            ],
            "env": [{"name": "A", "value": "override-$(B)"}]
        }));
        assert_eq!(
            env_of(&p),
            Ok(vec![
                ("A".to_string(), "override-b".to_string()),
                ("B".to_string(), "b".to_string()),
                ("S_PASSWORD".to_string(), "hunter2".to_string()),
            ])
        );
        let missing = one(json!({"name": "c", "envFrom": [{"secretRef": {"name": "gone"}}]}));
        assert_eq!(
            env_of(&missing),
            Err(ConfigError::SecretNotFound("gone".into()))
        );
    }

    #[test]
    fn field_ref_maps_are_formatted_like_upstream() {
        let p = pod_with(
            json!({"labels": {"b": "2", "a": "x\"y"}}),
            json!({"containers": [{"name": "c", "env": [
                {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
                {"name": "K", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['b']"}}}
            ]}]}),
        );
        assert_eq!(
            env_of(&p),
            Ok(vec![
                ("L".to_string(), "a=\"x\\\"y\"\nb=\"2\"".to_string()),
                ("K".to_string(), "2".to_string()),
            ])
        );
    }
}
