//! Upstream's NetworkPolicy semantics on fixed pods and namespaces, and the table they make.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::model::{isolated, Addresses, Allow, Ports, Protocol};
use super::render;

fn pod(namespace: &str, name: &str, node: &str, ip: &str, labels: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": namespace, "name": name,
            "labels": serde_json::from_str::<serde_json::Value>(labels).expect("labels")},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i",
            "ports": [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
        "status": {"phase": "Running", "podIP": ip},
    }))
    .expect("pod")
}

fn namespace(name: &str, labels: &str) -> Namespace {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name,
        "labels": serde_json::from_str::<serde_json::Value>(labels).expect("labels")}}))
    .expect("namespace")
}

fn policy(yaml: &str) -> NetworkPolicy {
    serde_yaml_ng::from_str(yaml).expect("policy")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("ip")
}

fn world() -> (Vec<Pod>, Vec<Namespace>) {
    (
        vec![
            pod("default", "web", "a", "10.42.0.2", r#"{"app": "web"}"#),
            pod(
                "default",
                "client",
                "b",
                "10.42.1.2",
                r#"{"role": "client"}"#,
            ),
            pod("default", "other", "a", "10.42.0.3", r#"{"role": "other"}"#),
            pod("team", "client", "b", "10.42.1.3", r#"{"role": "client"}"#),
            pod("default", "web-b", "b", "10.42.1.4", r#"{"app": "web"}"#),
        ],
        vec![
            namespace("default", r#"{"kubernetes.io/metadata.name": "default"}"#),
            namespace(
                "team",
                r#"{"kubernetes.io/metadata.name": "team", "trusted": "yes"}"#,
            ),
        ],
    )
}

#[test]
fn a_policy_without_rules_denies_all_ingress_to_the_pods_it_selects() {
    let (pods, namespaces) = world();
    let deny = policy("metadata: {name: deny, namespace: default}\nspec: {podSelector: {matchLabels: {app: web}}}");
    let result = isolated([&deny], &pods, &namespaces, "a");
    // Only this node's selected pod; egress is not isolated (no Egress type, no egress rules).
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].ip, ip("10.42.0.2"));
    assert_eq!(result[0].pod, "default/web");
    assert_eq!(result[0].ingress, Some(vec![]));
    assert_eq!(result[0].egress, None);
    // No policy: nothing isolated.
    assert!(isolated([], &pods, &namespaces, "a").is_empty());
    // A policy of another namespace does not select it.
    let elsewhere = policy("metadata: {name: deny, namespace: team}\nspec: {podSelector: {}}");
    assert!(isolated([&elsewhere], &pods, &namespaces, "a").is_empty());
}

#[test]
fn pod_and_namespace_selectors_pick_peers_and_named_ports_resolve_on_the_receiver() {
    let (pods, namespaces) = world();
    let allow = policy(
        r#"
metadata: {name: allow, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: http}]
  - from: [{namespaceSelector: {matchLabels: {trusted: "yes"}}, podSelector: {matchLabels: {role: client}}}]
  - from: [{namespaceSelector: {matchLabels: {trusted: "yes"}}}]
    ports: [{port: missing}, {protocol: UDP, port: 5000, endPort: 5010}]
"#,
    );
    let result = isolated([&allow], &pods, &namespaces, "a");
    let ingress = result[0].ingress.clone().expect("isolated");
    let tcp = |first, last| Ports {
        protocol: Protocol::Tcp,
        first,
        last,
    };
    assert_eq!(
        ingress,
        vec![
            // A podSelector alone: the policy's namespace only.
            Allow {
                addresses: Addresses::Pods(vec![ip("10.42.1.2")]),
                ports: Some(tcp(8080, 8080)),
            },
            // Both selectors: the pods they pick in the namespaces they pick; a name the pod
            // lacks matches nothing, a range stays a range.
            Allow {
                addresses: Addresses::Pods(vec![ip("10.42.1.3")]),
                ports: None,
            },
            Allow {
                addresses: Addresses::Pods(vec![ip("10.42.1.3")]),
                ports: Some(Ports {
                    protocol: Protocol::Udp,
                    first: 5000,
                    last: 5010
                }),
            },
        ]
    );
    // The other selected pod, on node b, is that node's business.
    assert_eq!(result.len(), 1);
}

#[test]
fn ip_blocks_keep_their_exceptions_and_egress_resolves_names_per_peer() {
    let (pods, namespaces) = world();
    let egress = policy(
        r#"
metadata: {name: egress, namespace: default}
spec:
  podSelector: {matchLabels: {role: other}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.42.0.0/16]}}]
    ports: [{protocol: UDP, port: 53}]
  - to: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: http}]
"#,
    );
    let result = isolated([&egress], &pods, &namespaces, "a");
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].ingress, None);
    let allows = result[0].egress.clone().expect("isolated");
    assert_eq!(
        allows,
        vec![
            Allow {
                addresses: Addresses::Block {
                    cidr: "10.0.0.0/8".parse().expect("cidr"),
                    except: vec!["10.42.0.0/16".parse().expect("cidr")],
                },
                ports: Some(Ports {
                    protocol: Protocol::Udp,
                    first: 53,
                    last: 53
                }),
            },
            Allow {
                addresses: Addresses::Pods(vec![ip("10.42.0.2")]),
                ports: Some(Ports {
                    protocol: Protocol::Tcp,
                    first: 8080,
                    last: 8080
                }),
            },
            Allow {
                addresses: Addresses::Pods(vec![ip("10.42.1.4")]),
                ports: Some(Ports {
                    protocol: Protocol::Tcp,
                    first: 8080,
                    last: 8080
                }),
            },
        ]
    );
}

#[test]
fn empty_rules_allow_everything_and_terminated_pods_are_skipped() {
    let (mut pods, namespaces) = world();
    let open = policy(
        "metadata: {name: open, namespace: default}\nspec:\n  podSelector: {}\n  ingress: [{}]\n  egress: [{}]",
    );
    pods[0].status.as_mut().expect("status").phase = Some("Succeeded".into());
    let result = isolated([&open], &pods, &namespaces, "a");
    // web finished; `other` is isolated both ways, with an allow-all rule each.
    assert_eq!(result.len(), 1);
    let all = Some(vec![Allow {
        addresses: Addresses::Any,
        ports: None,
    }]);
    assert_eq!(result[0].ingress, all);
    assert_eq!(result[0].egress, all);
}

#[test]
fn the_table_sends_isolated_pods_to_their_chains() {
    let (pods, namespaces) = world();
    let both = policy(
        r#"
metadata: {name: both, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}, {ipBlock: {cidr: 192.168.0.0/16, except: [192.168.1.0/24]}}]
    ports: [{port: 8080, endPort: 8090}]
"#,
    );
    let script = render::script(&isolated([&both], &pods, &namespaces, "a"));
    assert!(script.starts_with(
        "add table inet ferry-policy\ndelete table inet ferry-policy\ntable inet ferry-policy {"
    ));
    for line in [
        "ct state established,related accept",
        "ip saddr vmap { 10.42.0.2 : jump egress-10-42-0-2 }",
        "ip daddr vmap { 10.42.0.2 : jump ingress-10-42-0-2 }",
        "chain ingress-10-42-0-2 {",
        "comment \"default/web\"",
        "ip saddr { 10.42.1.2 } tcp dport 8080-8090 return",
        "ip saddr 192.168.0.0/16 ip saddr != { 192.168.1.0/24 } tcp dport 8080-8090 return",
        "chain egress-10-42-0-2 {",
    ] {
        assert!(script.contains(line), "{line:?} missing:\n{script}");
    }
    // Each chain ends by dropping what no rule returned.
    assert_eq!(script.matches("\t\tdrop\n\t}").count(), 2, "{script}");
    // Nothing isolated: the forward chain has nothing to look up.
    let empty = render::script(&[]);
    assert!(!empty.contains("vmap"), "{empty}");
}

/// As root: the scripts are valid nft (checked, not applied).
#[test]
#[ignore = "needs root and nft"]
fn the_tables_pass_nft_check() {
    let (pods, namespaces) = world();
    let policies = [
        policy("metadata: {name: deny, namespace: default}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}"),
        policy(
            r#"
metadata: {name: allow, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.0.0/16]}}]
    ports: [{port: http}, {protocol: UDP, port: 53}, {protocol: SCTP, port: 9000, endPort: 9100}, {protocol: TCP}]
  egress:
  - {}
"#,
        ),
    ];
    for script in [
        render::script(&isolated(&policies, &pods, &namespaces, "a")),
        render::script(&[]),
    ] {
        let mut child = std::process::Command::new("nft")
            .args(["-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "{}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
