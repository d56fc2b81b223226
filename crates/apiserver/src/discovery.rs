//! Discovery: `/api`, `/apis`, `/api/v1`, `/apis/<group>[/<version>]`, in both the classic form
//! and the aggregated form (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) that kubectl 1.32
//! asks for first. Built from the resource registry: the built-in resources, then the groups
//! CustomResourceDefinitions add (after the built-in ones, by name, as upstream's aggregator
//! orders groups of equal priority; versions in Kubernetes' version order).

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

/// What discovery lists at one moment: the built-in resources and the custom ones served then.
pub struct Served {
    custom: Arc<CustomResources>,
}

impl Served {
    /// The resources `registry` serves now.
    pub fn of(registry: &Registry) -> Served {
        Served {
            custom: registry.custom(),
        }
    }

    /// The named groups (not core), each with its versions, preferred version first.
    fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut groups = registry::groups();
        let mut custom: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for r in self.custom.all() {
            let (group, version) = (r.info.group, r.info.version);
            if let Some((_, versions)) = groups.iter_mut().find(|(g, _)| *g == group) {
                // A CRD in a built-in group adds its versions there.
                if !versions.contains(&version) {
                    versions.push(version);
                }
                continue;
            }
            match custom.iter_mut().find(|(g, _)| *g == group) {
                Some((_, versions)) if !versions.contains(&version) => versions.push(version),
                Some(_) => {}
                None => custom.push((group, vec![version])),
            }
        }
        custom.sort_by(|a, b| a.0.cmp(b.0));
        groups.extend(custom);
        for (_, versions) in &mut groups {
            versions.sort_by(|a, b| registry::compare_versions(a, b));
        }
        groups
    }

    /// The resources of one group-version, in discovery order (custom ones by plural).
    fn resources_in(&self, group: &str, version: &str) -> Vec<&'static ResourceInfo> {
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
}
