//! Discovery: `/api`, `/apis`, `/api/v1`, `/apis/<group>[/<version>]`, in both the classic form
//! and the aggregated form (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) that kubectl 1.32
//! asks for first. Built from the resource registry (the built-in resources and the groups
//! CustomResourceDefinitions add) and the aggregated APIs' group-versions
//! ([`RemoteVersion`], from [`crate::aggregator`]), ordered as upstream's aggregator orders
//! APIServices: `apiregistration.k8s.io` first, then by group priority and name; versions by
//! version priority, then in Kubernetes' version order.

use std::sync::Arc;

use ferry_api::registry::{self, ResourceInfo};
use serde_json::{json, Value};

use crate::registry::{CustomResources, Registry};

/// The media type of aggregated discovery.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery (v2; v2beta1 is answered as v2,
/// which kubectl also accepts).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let part = part.replace(' ', "");
        part.contains("g=apidiscovery.k8s.io")
            && part.contains("as=APIGroupDiscoveryList")
            && (part.contains("v=v2;") || part.ends_with("v=v2") || part.contains("v=v2beta1"))
    })
}

/// An aggregated API's group-version (an APIService with a `service`), as discovery lists it:
/// its priorities, and the resources the extension server's `/apis/<group>/<version>` listed
/// when last asked (an `APIResourceList`'s `resources`), stale while it is unavailable.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteVersion {
    /// The API group.
    pub group: String,
    /// The version.
    pub version: String,
    /// `spec.groupPriorityMinimum`.
    pub group_priority: i64,
    /// `spec.versionPriority`.
    pub version_priority: i64,
    /// The remote's resources (`APIResource` objects), empty if never fetched.
    pub resources: Vec<Value>,
    /// Whether the APIService is available (aggregated discovery's `freshness: Current`) or not
    /// (`Stale`, listed with what was last fetched).
    pub fresh: bool,
}

/// The group priority of custom resources' groups (upstream's CRD registration).
const CUSTOM_GROUP_PRIORITY: i64 = 1000;
/// The version priority of custom resources' versions.
const CUSTOM_VERSION_PRIORITY: i64 = 100;

/// A group, its priority, and its versions with theirs.
type PrioritizedGroup<'a> = (&'a str, i64, Vec<(&'a str, i64)>);

/// Adds `version` of `group` (the group's priority is the highest of its versions').
fn add_version<'a>(
    groups: &mut Vec<PrioritizedGroup<'a>>,
    group: &'a str,
    group_priority: i64,
    version: &'a str,
    version_priority: i64,
) {
    match groups.iter_mut().find(|(g, _, _)| *g == group) {
        Some((_, priority, versions)) => {
            *priority = (*priority).max(group_priority);
            if !versions.iter().any(|(v, _)| *v == version) {
                versions.push((version, version_priority));
            }
        }
        None => groups.push((group, group_priority, vec![(version, version_priority)])),
    }
}

/// What discovery lists at one moment: the built-in resources, the custom ones served then,
/// and the aggregated APIs.
pub struct Served {
    custom: Arc<CustomResources>,
    remote: Vec<RemoteVersion>,
}

impl Served {
    /// The resources `registry` serves now.
    pub fn of(registry: &Registry) -> Served {
        Served {
            custom: registry.custom(),
            remote: Vec::new(),
        }
    }

    /// With the aggregated APIs' group-versions, which take the place of a local group-version
    /// of the same name.
    pub fn with_remote(mut self, remote: Vec<RemoteVersion>) -> Served {
        self.remote = remote;
        self
    }

    fn remote(&self, group: &str, version: &str) -> Option<&RemoteVersion> {
        self.remote
            .iter()
            .find(|r| r.group == group && r.version == version)
    }

    /// The named groups (not core), each with its versions, preferred version first, as
    /// upstream's aggregator orders them: by group priority (the highest of the group's
    /// versions), then by name; versions by version priority, then in Kubernetes' order.
    fn groups(&self) -> Vec<(&str, Vec<&str>)> {
        // (group, its priority, versions with their priorities)
        let mut groups: Vec<PrioritizedGroup<'_>> = Vec::new();
        for (group, versions) in registry::groups() {
            for version in versions {
                let (group_priority, version_priority) = if group == "apiregistration.k8s.io" {
                    (registry::APIREGISTRATION_GROUP_PRIORITY.into(), 15)
                } else {
                    registry::priority(group, version)
                        .map(|(g, v)| (i64::from(g), i64::from(v)))
                        .unwrap_or((CUSTOM_GROUP_PRIORITY, CUSTOM_VERSION_PRIORITY))
                };
                add_version(
                    &mut groups,
                    group,
                    group_priority,
                    version,
                    version_priority,
                );
            }
        }
        for r in self.custom.all() {
            add_version(
                &mut groups,
                r.info.group,
                CUSTOM_GROUP_PRIORITY,
                r.info.version,
                CUSTOM_VERSION_PRIORITY,
            );
        }
        for r in &self.remote {
            add_version(
                &mut groups,
                &r.group,
                r.group_priority,
                &r.version,
                r.version_priority,
            );
        }
        groups.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        groups
            .into_iter()
            .map(|(group, _, mut versions)| {
                versions.sort_by(|a, b| {
                    b.1.cmp(&a.1)
                        .then_with(|| registry::compare_versions(a.0, b.0))
                });
                (group, versions.into_iter().map(|(v, _)| v).collect())
            })
            .collect()
    }

    /// The local resources of one group-version, in discovery order (custom ones by plural);
    /// none when an aggregated API serves it.
    fn resources_in(&self, group: &str, version: &str) -> Vec<&'static ResourceInfo> {
        if self.remote(group, version).is_some() {
            return Vec::new();
        }
        let mut found: Vec<&'static ResourceInfo> =
            registry::resources_in(group, version).collect();
        let mut custom: Vec<&'static ResourceInfo> = self
            .custom
            .all()
            .map(|r| r.info)
            .filter(|r| r.group == group && r.version == version)
            .collect();
        custom.sort_by_key(|r| r.plural);
        found.extend(custom);
        found
    }
}

/// `GET /api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
}

/// `GET /apis`.
pub fn group_list(served: &Served) -> Value {
    let groups: Vec<Value> = served
        .groups()
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`.
pub fn group(served: &Served, name: &str) -> Option<Value> {
    let (g, vs) = served.groups().into_iter().find(|(g, _)| *g == name)?;
    let mut value = group_json(g, &vs);
    value["kind"] = json!("APIGroup");
    value["apiVersion"] = json!("v1");
    Some(value)
}

/// `GET /api/v1`, `GET /apis/<group>/<version>`.
pub fn resource_list(served: &Served, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in served.resources_in(group, version) {
        let mut entry = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for s in r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.plural, s.name), "singularName": "", "namespaced": r.namespaced,
                "kind": s.kind, "verbs": s.verbs,
            });
            if !s.in_parent_group_version() {
                sub["group"] = json!(s.group);
                sub["version"] = json!(s.version);
            }
            resources.push(sub);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn aggregated_version(served: &Served, group: &str, version: &str) -> Value {
    if let Some(remote) = served.remote(group, version) {
        return aggregated_remote_version(remote);
    }
    let resources: Vec<Value> = served
        .resources_in(group, version)
        .into_iter()
        .map(|r| {
            let mut entry = json!({
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs,
            });
            if !r.short_names.is_empty() {
                entry["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                entry["categories"] = json!(r.categories);
            }
            if !r.subresources.is_empty() {
                entry["subresources"] = r
                    .subresources
                    .iter()
                    .map(|s| {
                        let (g, v) = if s.in_parent_group_version() { (r.group, r.version) } else { (s.group, s.version) };
                        json!({"subresource": s.name, "responseKind": {"group": g, "version": v, "kind": s.kind}, "verbs": s.verbs})
                    })
                    .collect();
            }
            entry
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// An aggregated API's version in aggregated discovery, from the `APIResource`s its server
/// listed (upstream's `convertAPIResourceToDiscovery`): subresources (`<plural>/<sub>`) under
/// their resource, each kind in its resource's group-version unless the entry names another.
pub fn aggregated_remote_version(remote: &RemoteVersion) -> Value {
    let mut resources: Vec<Value> = Vec::new();
    let kind_of = |entry: &Value| {
        let text = |field: &str| entry[field].as_str().filter(|s| !s.is_empty());
        json!({"group": text("group").unwrap_or(&remote.group),
               "version": text("version").unwrap_or(&remote.version),
               "kind": entry["kind"]})
    };
    for entry in remote
        .resources
        .iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| !n.contains('/')))
    {
        let mut out = json!({
            "resource": entry["name"],
            "responseKind": kind_of(entry),
            "scope": if entry["namespaced"] == true { "Namespaced" } else { "Cluster" },
            "singularResource": entry["singularName"],
            "verbs": entry.get("verbs").cloned().unwrap_or_else(|| json!([])),
        });
        for field in ["shortNames", "categories"] {
            if entry[field].as_array().is_some_and(|a| !a.is_empty()) {
                out[field] = entry[field].clone();
            }
        }
        resources.push(out);
    }
    for entry in &remote.resources {
        let Some((parent, sub)) = entry["name"].as_str().and_then(|n| n.split_once('/')) else {
            continue;
        };
        if let Some(parent) = resources.iter_mut().find(|r| r["resource"] == parent) {
            let subresource = json!({"subresource": sub, "responseKind": kind_of(entry),
                "verbs": entry.get("verbs").cloned().unwrap_or_else(|| json!([]))});
            match parent["subresources"].as_array_mut() {
                Some(list) => list.push(subresource),
                None => parent["subresources"] = json!([subresource]),
            }
        }
    }
    let freshness = if remote.fresh { "Current" } else { "Stale" };
    json!({"version": remote.version, "resources": resources, "freshness": freshness})
}

/// Aggregated `GET /api` (`core == true`) or `GET /apis`.
pub fn aggregated(served: &Served, core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![
            json!({"metadata": {"creationTimestamp": null}, "versions": [aggregated_version(served, "", "v1")]}),
        ]
    } else {
        served
            .groups()
            .iter()
            .map(|(g, vs)| {
                let versions: Vec<Value> = vs
                    .iter()
                    .map(|v| aggregated_version(served, g, v))
                    .collect();
                json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
            })
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_header_selects_aggregated() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(!wants_aggregated("application/json"));
    }

    #[test]
    fn core_resource_list_has_pods_and_subresources() {
        let served = Served::of(&Registry::builtin());
        let list = resource_list(&served, "", "v1").expect("core v1");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(
            names.contains(&"pods")
                && names.contains(&"pods/status")
                && names.contains(&"namespaces")
        );
        let apps = aggregated(&served, false);
        let apps = apps["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .cloned()
            .expect("apps");
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["resource"] == "deployments")
            .cloned()
            .expect("deployments");
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["subresources"].as_array().map(Vec::len), Some(2));
    }

    fn wardle(fresh: bool) -> RemoteVersion {
        RemoteVersion {
            group: "wardle.example.com".into(),
            version: "v1alpha1".into(),
            group_priority: 1000,
            version_priority: 15,
            resources: vec![
                json!({"name": "flunders", "singularName": "flunder", "namespaced": true,
                       "kind": "Flunder", "verbs": ["get", "list", "watch"], "shortNames": ["fl"]}),
                json!({"name": "flunders/status", "singularName": "", "namespaced": true,
                       "kind": "Flunder", "verbs": ["get", "patch"]}),
            ],
            fresh,
        }
    }

    #[test]
    fn aggregated_apis_are_merged_by_priority() {
        let served = Served::of(&Registry::builtin()).with_remote(vec![wardle(true)]);
        let names: Vec<String> = group_list(&served)["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .filter_map(|g| g["name"].as_str().map(String::from))
            .collect();
        assert_eq!(names[0], "apiregistration.k8s.io");
        assert_eq!(names[1], "apps");
        // 1000 is above metrics.k8s.io's 100.
        let wardle_at = names.iter().position(|n| n == "wardle.example.com");
        let metrics_at = names.iter().position(|n| n == "metrics.k8s.io");
        assert!(wardle_at < metrics_at && wardle_at.is_some(), "{names:?}");
        let group = group(&served, "wardle.example.com").expect("group");
        assert_eq!(
            group["preferredVersion"]["groupVersion"],
            "wardle.example.com/v1alpha1"
        );

        let all = aggregated(&served, false);
        let version = all["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|g| g["metadata"]["name"] == "wardle.example.com")
            .map(|g| g["versions"][0].clone())
            .expect("wardle");
        assert_eq!(version["freshness"], "Current");
        assert_eq!(
            version["resources"],
            json!([{"resource": "flunders", "scope": "Namespaced", "singularResource": "flunder",
                "responseKind": {"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"},
                "verbs": ["get", "list", "watch"], "shortNames": ["fl"],
                "subresources": [{"subresource": "status", "verbs": ["get", "patch"],
                    "responseKind": {"group": "wardle.example.com", "version": "v1alpha1", "kind": "Flunder"}}]}])
        );
        let stale = aggregated_remote_version(&wardle(false));
        assert_eq!(stale["freshness"], "Stale");
    }

    #[test]
    fn an_aggregated_api_takes_a_local_group_versions_place() {
        let metrics = RemoteVersion {
            group: "metrics.k8s.io".into(),
            version: "v1beta1".into(),
            group_priority: 100,
            version_priority: 100,
            resources: vec![],
            fresh: false,
        };
        let served = Served::of(&Registry::builtin()).with_remote(vec![metrics]);
        assert!(resource_list(&served, "metrics.k8s.io", "v1beta1").is_none());
        let all = aggregated(&served, false);
        let found = all["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|g| g["metadata"]["name"] == "metrics.k8s.io")
            .count();
        assert_eq!(found, 1);
    }
}
