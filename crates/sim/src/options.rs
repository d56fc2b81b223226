//! The options of `ferry sim` and the parsers the CLI uses for `--labels` and `--taints`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

use crate::ipam::Ipv4Cidr;

/// Options of `ferry sim`; [`Options::default`] gives upstream-like values for one node.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many Nodes to register.
    pub nodes: usize,
    /// Node names are this prefix and an index: `sim-0`, `sim-1`, ...
    pub name_prefix: String,
    /// `status.capacity.cpu` (and allocatable), a Quantity: `"32"`.
    pub cpu: String,
    /// `status.capacity.memory` (and allocatable), a Quantity: `"256Gi"`.
    pub memory: String,
    /// `status.capacity.pods` (and allocatable), the kubelet's `--max-pods`.
    pub max_pods: u32,
    /// Labels added to every Node, over the kubelet's own.
    pub labels: BTreeMap<String, String>,
    /// `spec.taints` of every Node at registration (the kubelet's `--register-with-taints`).
    pub taints: Vec<Taint>,
    /// How long after a pod is bound (and seen) it becomes Running and Ready.
    pub pod_start_delay: Duration,
    /// How often each Node's Lease is renewed; the Lease lasts 40 s, as the kubelet's.
    pub lease_renew_interval: Duration,
    /// How often each Node posts its status (the Ready heartbeat) when nothing changed.
    pub status_update_interval: Duration,
    /// Pod IPs of a Node without `spec.podCIDR` come from this range: node `i` gets its `i`-th
    /// /24 (wrapping around when the range has fewer). Just data; nothing routes them.
    pub pod_cidr_fallback: Ipv4Cidr,
    /// Requests to the API server in flight at once, over all nodes and pods.
    pub max_in_flight: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            nodes: 1,
            name_prefix: "sim-".into(),
            cpu: "32".into(),
            memory: "256Gi".into(),
            max_pods: 110,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            pod_start_delay: Duration::from_secs(1),
            lease_renew_interval: Duration::from_secs(10),
            status_update_interval: Duration::from_secs(60),
            pod_cidr_fallback: Ipv4Cidr::new(std::net::Ipv4Addr::new(10, 64, 0, 0), 10),
            max_in_flight: 32,
        }
    }
}

/// Why a `--labels` or `--taints` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A label is not `key=value`.
    #[error("invalid label {0:?}: want key=value")]
    Label(String),
    /// A taint is not `key[=value]:Effect`.
    #[error("invalid taint {0:?}: want key[=value]:NoSchedule|PreferNoSchedule|NoExecute")]
    Taint(String),
    /// A taint's effect is not one Kubernetes knows.
    #[error("invalid taint effect {0:?}: want NoSchedule, PreferNoSchedule or NoExecute")]
    Effect(String),
}

/// Parses one taint as `kubectl taint` and the kubelet's `--register-with-taints` write it:
/// `key=value:Effect` or `key:Effect`.
pub fn parse_taint(s: &str) -> Result<Taint, ParseError> {
    let s = s.trim();
    let (key_value, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| ParseError::Taint(s.to_string()))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(ParseError::Effect(effect.to_string()));
    }
    let (key, value) = match key_value.split_once('=') {
        Some((key, value)) => (key, Some(value.to_string())),
        None => (key_value, None),
    };
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(ParseError::Taint(s.to_string()));
    }
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

/// Parses a comma-separated list of taints (see [`parse_taint`]); empty gives none.
pub fn parse_taints(s: &str) -> Result<Vec<Taint>, ParseError> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(parse_taint)
        .collect()
}

/// Parses `k=v,k2=v2` into labels; empty gives none. Values may be empty (`k=`), keys may not.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let mut labels = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                labels.insert(key.trim().to_string(), value.trim().to_string());
            }
            _ => return Err(ParseError::Label(part.to_string())),
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints() {
        let ok = [
            ("k=v:NoSchedule", ("k", Some("v"), "NoSchedule")),
            ("k:NoExecute", ("k", None, "NoExecute")),
            (
                "example.com/gpu=true:PreferNoSchedule",
                ("example.com/gpu", Some("true"), "PreferNoSchedule"),
            ),
            (" k=:NoSchedule ", ("k", Some(""), "NoSchedule")),
        ];
        for (input, (key, value, effect)) in ok {
            let taint = parse_taint(input).expect(input);
            assert_eq!(
                (
                    taint.key.as_str(),
                    taint.value.as_deref(),
                    taint.effect.as_str()
                ),
                (key, value, effect),
                "{input}"
            );
        }
        assert_eq!(parse_taint("k=v"), Err(ParseError::Taint("k=v".into())));
        assert_eq!(
            parse_taint("k=v:Sometimes"),
            Err(ParseError::Effect("Sometimes".into()))
        );
        assert_eq!(
            parse_taint("=v:NoSchedule"),
            Err(ParseError::Taint("=v:NoSchedule".into()))
        );
        assert_eq!(
            parse_taint(":NoSchedule"),
            Err(ParseError::Taint(":NoSchedule".into()))
        );
        let list = parse_taints("a=1:NoSchedule, b:NoExecute,").expect("list");
        assert_eq!(
            list.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(parse_taints("").expect("empty").is_empty());
    }

    #[test]
    fn labels() {
        type Want = Option<&'static [(&'static str, &'static str)]>;
        let table: [(&str, Want); 6] = [
            ("", Some(&[])),
            ("a=1", Some(&[("a", "1")])),
            ("a=1, b=2,", Some(&[("a", "1"), ("b", "2")])),
            ("zone=", Some(&[("zone", "")])),
            ("a", None),
            ("=1", None),
        ];
        for (input, want) in table {
            let got = parse_labels(input).ok();
            let want = want.map(|w| {
                w.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            });
            assert_eq!(got, want, "{input:?}");
        }
    }
}
