//! The pod's resolver config (upstream `pkg/kubelet/network/dns/dns.go`): per `dnsPolicy`, the
//! cluster DNS or the node's resolv.conf, merged with the pod's `dnsConfig` and cut to the
//! resolver's limits.

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use super::{pod_namespace, SandboxContext};
use crate::runtime::v1;

/// Upstream's `defaultDNSOptions` for ClusterFirst pods.
const CLUSTER_FIRST_DNS_OPTIONS: &[&str] = &["ndots:5"];
/// `validation.MaxDNSNameservers`.
const MAX_DNS_NAMESERVERS: usize = 3;
/// `validation.MaxDNSSearchPaths`.
const MAX_DNS_SEARCH_PATHS: usize = 32;
/// `validation.MaxDNSSearchListChars`.
const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;

/// The pod's resolver config (upstream `Configurer.GetPodDNS`).
pub(super) fn pod_dns_config(pod: &Pod, spec: &PodSpec, ctx: &SandboxContext) -> v1::DnsConfig {
    let mut config = match &ctx.host_resolv_conf {
        Some(contents) => parse_resolv_conf(contents),
        None => v1::DnsConfig::default(),
    };
    let host_network = spec.host_network.unwrap_or(false);
    enum DnsType {
        None,
        Cluster,
        Host,
    }
    let dns_type = match spec.dns_policy.as_deref() {
        Some("None") => DnsType::None,
        Some("ClusterFirstWithHostNet") => DnsType::Cluster,
        Some("Default") => DnsType::Host,
        // ClusterFirst, the default; host-network pods fall back to the node's DNS.
        _ if host_network => DnsType::Host,
        _ => DnsType::Cluster,
    };
    let host = |mut config: v1::DnsConfig| {
        if ctx.host_resolv_conf.is_none() {
            // `--resolv-conf=""`: resolve on the local machine only, as upstream.
            config.servers = ctx
                .node_ips
                .iter()
                .map(|ip| if ip.contains(':') { "::1" } else { "127.0.0.1" }.to_string())
                .collect();
            if config.servers.is_empty() {
                config.servers.push("127.0.0.1".into());
            }
            config.searches = vec![".".into()];
        }
        config
    };
    config = match dns_type {
        DnsType::None => v1::DnsConfig::default(),
        DnsType::Cluster if !ctx.cluster_dns.is_empty() => {
            let mut searches = Vec::new();
            if !ctx.cluster_domain.is_empty() {
                let domain = &ctx.cluster_domain;
                searches.push(format!("{}.svc.{domain}", pod_namespace(pod)));
                searches.push(format!("svc.{domain}"));
                searches.push(domain.clone());
            }
            searches.extend(config.searches);
            v1::DnsConfig {
                servers: ctx.cluster_dns.clone(),
                searches: omit_duplicates(searches),
                options: CLUSTER_FIRST_DNS_OPTIONS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            }
        }
        DnsType::Cluster | DnsType::Host => host(config),
    };
    if let Some(pod_dns) = &spec.dns_config {
        let mut servers = std::mem::take(&mut config.servers);
        servers.extend(pod_dns.nameservers.iter().flatten().cloned());
        config.servers = omit_duplicates(servers);
        let mut searches = std::mem::take(&mut config.searches);
        searches.extend(pod_dns.searches.iter().flatten().cloned());
        config.searches = omit_duplicates(searches);
        let options: Vec<(String, Option<String>)> = pod_dns
            .options
            .iter()
            .flatten()
            .map(|o| (o.name.clone().unwrap_or_default(), o.value.clone()))
            .collect();
        config.options = merge_dns_options(&config.options, &options);
    }
    fit_dns_limits(config)
}

/// Nameservers, searches and options from resolv.conf contents (upstream `parseResolvConf`).
pub fn parse_resolv_conf(contents: &str) -> v1::DnsConfig {
    let mut config = v1::DnsConfig::default();
    for line in contents.lines() {
        if line.starts_with(['#', ';']) {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.first() {
            Some(&"nameserver") => {
                if let Some(server) = fields.get(1) {
                    config.servers.push(server.to_string());
                }
            }
            Some(&"search") => {
                // The last search line wins; "a." and "a" are the same domain.
                config.searches = fields[1..]
                    .iter()
                    .filter(|s| **s != ".")
                    .map(|s| s.trim_end_matches('.').to_string())
                    .collect();
            }
            Some(&"options") => {
                let parsed: Vec<(String, Option<String>)> = fields[1..]
                    .iter()
                    .map(|o| match o.split_once(':') {
                        Some((name, value)) => (name.to_string(), Some(value.to_string())),
                        None => (o.to_string(), None),
                    })
                    .collect();
                config.options = merge_dns_options(&config.options, &parsed);
            }
            _ => {}
        }
    }
    config
}

/// Merges options by name, later ones winning (upstream `mergeDNSOptions`; kept in first-seen
/// order where upstream's comes from a Go map).
fn merge_dns_options(existing: &[String], extra: &[(String, Option<String>)]) -> Vec<String> {
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| {
        if let Some(entry) = merged.iter_mut().find(|(n, _)| n == name) {
            entry.1 = value.to_string();
        } else {
            merged.push((name.to_string(), value.to_string()));
        }
    };
    for option in existing {
        match option.split_once(':') {
            Some((name, value)) => set(name, value),
            None => set(option, ""),
        }
    }
    for (name, value) in extra {
        set(name, value.as_deref().unwrap_or(""));
    }
    merged
        .into_iter()
        .map(|(name, value)| {
            if value.is_empty() {
                name
            } else {
                format!("{name}:{value}")
            }
        })
        .collect()
}

fn omit_duplicates(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Upstream `formDNSConfigFitsLimits`: at most 3 nameservers; at most 32 search domains, none
/// over 253 characters, 2048 characters in all.
fn fit_dns_limits(mut config: v1::DnsConfig) -> v1::DnsConfig {
    config.servers.truncate(MAX_DNS_NAMESERVERS);
    config.searches.truncate(MAX_DNS_SEARCH_PATHS);
    config.searches.retain(|s| s.len() <= 253);
    let mut total = config.searches.join(" ").len();
    while total > MAX_DNS_SEARCH_LIST_CHARS {
        match config.searches.pop() {
            Some(last) => total = total.saturating_sub(last.len() + 1),
            None => break,
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::podconfig::testing::*;
    use crate::podconfig::{sandbox_config, SandboxContext};
    use crate::runtime::v1;

    #[test]
    fn dns_config_per_policy() {
        let cluster_search = ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"];
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let host = v1::DnsConfig {
            servers: strings(&["192.168.1.1", "192.168.1.2"]),
            searches: strings(&["example.com", "corp"]),
            options: strings(&["ndots:2", "edns0"]),
        };
        let mut cluster_searches = strings(&cluster_search);
        cluster_searches.extend(strings(&["example.com", "corp"]));
        let cluster = v1::DnsConfig {
            servers: strings(&["10.43.0.10"]),
            searches: cluster_searches.clone(),
            options: strings(&["ndots:5"]),
        };
        let custom = json!({"nameservers": ["1.1.1.1"], "searches": ["my.dns"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]});
        let mut merged_searches = cluster_searches.clone();
        merged_searches.push("my.dns".into());
        // (spec, context tweak, want)
        type Tweak = fn(&mut SandboxContext);
        let no_tweak: Tweak = |_| {};
        let cases: Vec<(serde_json::Value, Tweak, v1::DnsConfig)> = vec![
            (json!({}), no_tweak, cluster.clone()),
            (
                json!({"dnsPolicy": "ClusterFirst"}),
                no_tweak,
                cluster.clone(),
            ),
            (
                json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true}),
                no_tweak,
                host.clone(),
            ),
            (
                json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true}),
                no_tweak,
                cluster.clone(),
            ),
            (json!({"dnsPolicy": "Default"}), no_tweak, host.clone()),
            (
                json!({"dnsPolicy": "None", "dnsConfig": custom.clone()}),
                no_tweak,
                v1::DnsConfig {
                    servers: strings(&["1.1.1.1"]),
                    searches: strings(&["my.dns"]),
                    options: strings(&["ndots:1", "single-request"]),
                },
            ),
            (
                json!({"dnsPolicy": "ClusterFirst", "dnsConfig": custom}),
                no_tweak,
                v1::DnsConfig {
                    servers: strings(&["10.43.0.10", "1.1.1.1"]),
                    searches: merged_searches,
                    options: strings(&["ndots:1", "single-request"]),
                },
            ),
            // No cluster DNS configured: ClusterFirst falls back to the node's.
            (json!({}), |c| c.cluster_dns.clear(), host.clone()),
            // --resolv-conf="": local resolver only.
            (
                json!({"dnsPolicy": "Default"}),
                |c| c.host_resolv_conf = None,
                v1::DnsConfig {
                    servers: strings(&["127.0.0.1"]),
                    searches: strings(&["."]),
                    options: vec![],
                },
            ),
        ];
        for (spec, tweak, want) in cases {
            let mut spec = spec;
            spec["containers"] = json!([{"name": "c"}]);
            let mut ctx = sandbox_ctx();
            tweak(&mut ctx);
            let got = sandbox_config(&pod(spec.clone()), &ctx).expect("config");
            assert_eq!(got.dns_config, Some(want), "{spec}");
        }
    }

    #[test]
    fn dns_limits() {
        let mut ctx = sandbox_ctx();
        ctx.host_resolv_conf = Some(format!(
            "nameserver 1.1.1.1\nnameserver 1.1.1.2\nnameserver 1.1.1.3\nnameserver 1.1.1.4\nsearch {}\n",
            (0..40).map(|i| format!("d{i}.example")).collect::<Vec<_>>().join(" ")
        ));
        let p = pod(json!({"dnsPolicy": "Default", "containers": [{"name": "c"}]}));
        let dns = sandbox_config(&p, &ctx)
            .expect("config")
            .dns_config
            .expect("dns");
        assert_eq!(dns.servers.len(), 3);
        assert_eq!(dns.searches.len(), 32);
    }
}
