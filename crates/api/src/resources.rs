//! Resource lists (`{"cpu": "500m", "memory": "128Mi"}`) with exact arithmetic that writes its
//! results back as upstream does, and a pod's total requests and limits as upstream's
//! `resourcehelper.PodRequests` / `PodLimits` compute them — for the LimitRanger and
//! ResourceQuota admission plugins and the quota controller.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::Value;

use crate::quantity::{Format, Quantity};

/// A quantity with the format it is written back in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amount {
    /// The value.
    pub quantity: Quantity,
    /// How it is written.
    pub format: Format,
}

impl Amount {
    /// Parses a quantity string; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Amount> {
        Some(Amount {
            quantity: Quantity::parse(text).ok()?,
            format: Format::of(text),
        })
    }

    /// A whole number of units (object counts).
    pub fn count(n: i64) -> Amount {
        Amount {
            quantity: Quantity::from_units(n),
            format: Format::DecimalSi,
        }
    }
}

impl std::fmt::Display for Amount {
    /// Upstream's canonical form (`Quantity.String()`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.quantity.canonical(self.format))
    }
}

/// Amounts by resource name.
pub type ResourceList = BTreeMap<String, Amount>;

/// The list in a JSON object of quantity strings; entries that are not quantities are left out
/// (the API server's validation refuses them).
pub fn from_json(value: &Value) -> ResourceList {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, q)| Some((name.clone(), Amount::parse(q.as_str()?)?)))
        .collect()
}

/// The list of a typed `ResourceList`.
pub fn from_api(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> ResourceList {
    list.into_iter()
        .flatten()
        .filter_map(|(name, q)| Some((name.clone(), Amount::parse(&q.0)?)))
        .collect()
}

/// The list as a JSON object of canonical quantity strings.
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(name, amount)| (name.clone(), Value::String(amount.to_string())))
            .collect(),
    )
}

/// Adds `other` into `list`; a sum keeps the format of the amount already there.
pub fn add(list: &mut ResourceList, other: &ResourceList) {
    for (name, amount) in other {
        list.entry(name.clone())
            .and_modify(|sum| sum.quantity = sum.quantity + amount.quantity)
            .or_insert(*amount);
    }
}

/// Raises every amount of `list` to the one in `other` where that is larger.
pub fn max(list: &mut ResourceList, other: &ResourceList) {
    for (name, amount) in other {
        match list.get(name) {
            Some(existing) if existing.quantity >= amount.quantity => {}
            _ => {
                list.insert(name.clone(), *amount);
            }
        }
    }
}

/// `list` without the entries not named in `names`.
pub fn mask(list: &ResourceList, names: &[String]) -> ResourceList {
    list.iter()
        .filter(|(name, _)| names.contains(name))
        .map(|(name, amount)| (name.clone(), *amount))
        .collect()
}

/// `name=amount` pairs in name order joined by commas (upstream's quota `prettyPrint`).
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(name, amount)| format!("{name}={amount}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn requests_of(container: &Container) -> ResourceList {
    from_api(
        container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref()),
    )
}

fn limits_of(container: &Container) -> ResourceList {
    from_api(container.resources.as_ref().and_then(|r| r.limits.as_ref()))
}

/// The pod's total of one kind of container resource (requests or limits): the sum over
/// containers and restartable init containers (sidecars), raised to what each regular init
/// container needs (its own plus the sidecars started before it).
fn pod_total(spec: &PodSpec, of: fn(&Container) -> ResourceList) -> ResourceList {
    let mut total = ResourceList::new();
    for container in &spec.containers {
        add(&mut total, &of(container));
    }
    let mut sidecars = ResourceList::new();
    let mut init = ResourceList::new();
    for container in spec.init_containers.iter().flatten() {
        let own = of(container);
        if container.restart_policy.as_deref() == Some("Always") {
            add(&mut total, &own);
            add(&mut sidecars, &own);
            max(&mut init, &sidecars);
        } else {
            let mut needed = own;
            add(&mut needed, &sidecars);
            max(&mut init, &needed);
        }
    }
    max(&mut total, &init);
    total
}

/// What the pod requests (upstream's `PodRequests`), with its `overhead` added when asked.
pub fn pod_requests(spec: &PodSpec, with_overhead: bool) -> ResourceList {
    let mut total = pod_total(spec, requests_of);
    if with_overhead {
        add(&mut total, &from_api(spec.overhead.as_ref()));
    }
    total
}

/// The pod's limits (upstream's `PodLimits`); the overhead is added, when asked, only to the
/// resources that have a limit.
pub fn pod_limits(spec: &PodSpec, with_overhead: bool) -> ResourceList {
    let mut total = pod_total(spec, limits_of);
    if with_overhead {
        for (name, amount) in from_api(spec.overhead.as_ref()) {
            if let Some(sum) = total.get_mut(&name) {
                sum.quantity = sum.quantity + amount.quantity;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: Value) -> PodSpec {
        serde_json::from_value(value).expect("spec")
    }

    #[test]
    fn sums_keep_the_first_format() {
        let mut list = from_json(&json!({"cpu": "500m", "memory": "128Mi"}));
        add(
            &mut list,
            &from_json(&json!({"cpu": "500m", "memory": "128Mi", "pods": "1"})),
        );
        assert_eq!(
            to_json(&list),
            json!({"cpu": "1", "memory": "256Mi", "pods": "1"})
        );
        assert_eq!(pretty(&list), "cpu=1,memory=256Mi,pods=1");
        let masked = mask(&list, &["pods".to_string()]);
        assert_eq!(pretty(&masked), "pods=1");
    }

    #[test]
    fn pod_totals_follow_the_init_container_rule() {
        let c = |name: &str, cpu: &str, memory: &str| {
            json!({"name": name, "image": "x",
                "resources": {"requests": {"cpu": cpu}, "limits": {"memory": memory}}})
        };
        let mut sidecar = c("side", "100m", "64Mi");
        sidecar["restartPolicy"] = json!("Always");
        let pod = spec(json!({
            "containers": [c("a", "200m", "128Mi"), c("b", "300m", "128Mi")],
            "initContainers": [sidecar, c("big", "1", "1Gi")],
            "overhead": {"cpu": "10m", "memory": "1Mi", "pods": "1"},
        }));
        // containers 500m + sidecar 100m = 600m < init 1 + sidecar 100m = 1100m.
        assert_eq!(to_json(&pod_requests(&pod, false)), json!({"cpu": "1100m"}));
        assert_eq!(
            to_json(&pod_requests(&pod, true)),
            json!({"cpu": "1110m", "memory": "1Mi", "pods": "1"})
        );
        // 256Mi + 64Mi = 320Mi < 1Gi + 64Mi.
        assert_eq!(
            to_json(&pod_limits(&pod, false)),
            json!({"memory": "1088Mi"})
        );
        assert_eq!(
            to_json(&pod_limits(&pod, true)),
            json!({"memory": "1089Mi"})
        );
    }
}
