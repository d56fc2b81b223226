//! The ruleset for a fixed set of Services and endpoints, as nft text (golden file), and the
//! partial syncs between two states.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;
use crate::model::service_ports;
use crate::sync;

pub(crate) const CONFIG: Config = Config {
    cluster_cidr: (Ipv4Addr::new(10, 42, 0, 0), 16),
    service_cidr: (Ipv4Addr::new(10, 43, 0, 0), 16),
};

fn service(name: &str, spec: serde_json::Value) -> Arc<Service> {
    Arc::new(
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
        )
        .expect("service"),
    )
}

fn slice(service: &str, endpoints: &[(&str, &str, bool)]) -> Arc<EndpointSlice> {
    let endpoints: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|(ip, node, ready)| {
            json!({"addresses": [ip], "nodeName": node,
            "conditions": {"ready": ready, "serving": ready, "terminating": false}})
        })
        .collect();
    Arc::new(
        serde_json::from_value(
            json!({"metadata": {"name": format!("{service}-x"), "namespace": "default",
            "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}),
        )
        .expect("slice"),
    )
}

/// A ClusterIP Service with two endpoints, a NodePort one with client affinity and an
/// external-local policy, and one without endpoints.
pub(crate) fn fixture() -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
    let port = json!([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]);
    let services = vec![
        service("web", json!({"clusterIP": "10.43.0.20", "ports": port})),
        service(
            "edge",
            json!({"clusterIP": "10.43.0.21", "type": "NodePort", "externalTrafficPolicy": "Local",
            "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
        ),
        service(
            "idle",
            json!({"clusterIP": "10.43.0.22", "type": "NodePort",
            "ports": [{"name": "http", "port": 80, "nodePort": 30081, "protocol": "TCP"}]}),
        ),
    ];
    let slices = vec![
        slice(
            "web",
            &[("10.42.0.5", "node-a", true), ("10.42.1.5", "node-b", true)],
        ),
        slice(
            "edge",
            &[("10.42.0.6", "node-a", true), ("10.42.1.6", "node-b", true)],
        ),
        slice("idle", &[("10.42.0.7", "node-a", false)]),
    ];
    (services, slices)
}

fn ruleset(services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Ruleset {
    desired(&CONFIG, &service_ports(services, slices, "node-a"))
}

#[test]
fn the_full_ruleset_is_the_golden_one() {
    let (services, slices) = fixture();
    let text = sync::full(&CONFIG, &ruleset(&services, &slices)).text();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/full.nft");
    if std::env::var_os("FERRY_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden")).expect("dir");
        std::fs::write(path, &text).expect("write golden");
    }
    let golden =
        std::fs::read_to_string(path).expect("golden file (FERRY_UPDATE_GOLDEN=1 writes it)");
    assert_eq!(text, golden);
}

#[test]
fn an_unchanged_state_syncs_nothing_and_one_endpoint_touches_one_service() {
    let (services, mut slices) = fixture();
    let before = ruleset(&services, &slices);
    assert!(sync::partial(&before, &before).is_empty());
    // web loses an endpoint: its elements move to pick-1 and out of slot 1, which nothing
    // else uses, so slot 1 and pick-2 go; nothing of edge or idle is touched.
    slices[0] = slice("web", &[("10.42.0.5", "node-a", true)]);
    let after = ruleset(&services, &slices);
    let text = sync::partial(&before, &after).text();
    assert!(!text.contains("edge") && !text.contains("idle"), "{text}");
    for expected in [
        "delete element ip ferry-proxy service-ips { 10.43.0.20 . tcp . 80 }",
        "add element ip ferry-proxy service-ips { 10.43.0.20 . tcp . 80 : goto pick-1 }",
        "delete element ip ferry-proxy slot-1-addresses { 10.43.0.20 . tcp . 80 }",
        "delete element ip ferry-proxy endpoint-pairs { 10.42.1.5 . 10.42.1.5 }",
        "delete chain ip ferry-proxy slot-1",
        "delete chain ip ferry-proxy pick-2",
        "delete map ip ferry-proxy slot-1-ports",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
    // idle gets a ready endpoint: out of the no-endpoint maps, into the service maps.
    slices[2] = slice("idle", &[("10.42.0.7", "node-a", true)]);
    let ready = ruleset(&services, &slices);
    let text = sync::partial(&after, &ready).text();
    for expected in [
        "delete element ip ferry-proxy no-endpoint-services { 10.43.0.22 . tcp . 80 }",
        "add element ip ferry-proxy service-nodeports { tcp . 30081 : goto nodeport-pick-1 }",
        "add element ip ferry-proxy nodeport-slot-0-addresses { tcp . 30081 : 10.42.0.7 }",
        "add element ip ferry-proxy nodeport-slot-0-ports { tcp . 30081 : 8080 }",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
}

/// `count` ClusterIP Services named svc-0… with `endpoints` ready endpoints each.
fn many(count: usize, endpoints: usize) -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
    let port = json!([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]);
    let services = (0..count)
        .map(|i| {
            let ip = format!("10.43.1.{}", i + 1);
            service(&format!("svc-{i}"), json!({"clusterIP": ip, "ports": port}))
        })
        .collect();
    let slices = (0..count)
        .map(|i| {
            let ips: Vec<String> = (0..endpoints)
                .map(|e| format!("10.42.{i}.{}", e + 1))
                .collect();
            let endpoints: Vec<(&str, &str, bool)> =
                ips.iter().map(|ip| (ip.as_str(), "node-a", true)).collect();
            slice(&format!("svc-{i}"), &endpoints)
        })
        .collect();
    (services, slices)
}

#[test]
fn services_share_their_chains_and_a_change_is_element_updates_only() {
    let (services, mut slices) = many(50, 3);
    let before = ruleset(&services, &slices);
    // 50 Services of 3 endpoints: pick-3 and three slots, whatever the count.
    let chains: Vec<&String> = before.chains.keys().collect();
    assert_eq!(chains, ["pick-3", "slot-0", "slot-1", "slot-2"]);
    assert_eq!(
        before.elements.get(&(
            SERVICE_IPS.into(),
            Key::AddressPort(Ipv4Addr::new(10, 43, 1, 8), nft::Protocol::Tcp, 80)
        )),
        Some(&Some(Data::Goto("pick-3".into())))
    );
    // One endpoint of svc-7 replaced by another: two element updates, no chain touched.
    slices[7] = slice(
        "svc-7",
        &[
            ("10.42.7.1", "node-a", true),
            ("10.42.7.2", "node-a", true),
            ("10.42.7.9", "node-a", true),
        ],
    );
    let after = ruleset(&services, &slices);
    let transaction = sync::partial(&before, &after);
    let text = transaction.text();
    assert!(
        transaction
            .commands
            .iter()
            .all(|c| matches!(c, Command::AddElements(..) | Command::DeleteElement(..))),
        "{text}"
    );
    assert!(
        text.contains(
            "add element ip ferry-proxy slot-2-addresses { 10.43.1.8 . tcp . 80 : 10.42.7.9 }"
        ),
        "{text}"
    );
    assert!(
        text.contains("add element ip ferry-proxy endpoint-pairs { 10.42.7.9 . 10.42.7.9 }"),
        "{text}"
    );
}

#[test]
fn local_policies_use_this_nodes_endpoints() {
    let (services, slices) = fixture();
    let set = ruleset(&services, &slices);
    let external = set
        .chains
        .iter()
        .find(|(name, _)| name.starts_with("external-") && name.contains("/edge/"))
        .map(|(_, rules)| rules)
        .expect("edge's external chain");
    let last: Vec<&str> = external
        .last()
        .expect("rules")
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    assert!(last[0].starts_with("numgen random mod 1 vmap"), "{last:?}");
    assert!(last[0].contains("10.42.0.6"), "{last:?}");
    // internalTrafficPolicy: Local without an endpoint on this node: dropped.
    let port = json!([{"name": "http", "port": 80, "protocol": "TCP"}]);
    let inside = vec![service(
        "inside",
        json!({"clusterIP": "10.43.0.30", "internalTrafficPolicy": "Local", "ports": port}),
    )];
    let elsewhere = vec![slice("inside", &[("10.42.1.9", "node-b", true)])];
    let set = ruleset(&inside, &elsewhere);
    let key = Key::AddressPort(Ipv4Addr::new(10, 43, 0, 30), nft::Protocol::Tcp, 80);
    assert_eq!(
        set.elements.get(&(SERVICE_IPS.into(), key)),
        Some(&Some(Data::Drop))
    );
}

/// A network namespace of the test's own, removed when dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("ferry-proxy-{tag}-{}", std::process::id());
        run("ip", &["netns", "add", &name], None);
        Netns(name)
    }

    fn nft(&self) -> crate::Nft {
        crate::Nft {
            program: "ip".into(),
            args: vec!["netns".into(), "exec".into(), self.0.clone(), "nft".into()],
        }
    }

    /// The table as `nft -j list` shows it, without handles, in a canonical order (objects and
    /// set elements sorted): what it holds, not the order it was built in.
    fn listing(&self) -> Vec<String> {
        let out = run(
            "ip",
            &[
                "netns",
                "exec",
                &self.0,
                "nft",
                "-j",
                "list",
                "table",
                "ip",
                "ferry-proxy",
            ],
            None,
        );
        let mut listing: serde_json::Value = serde_json::from_str(&out).expect("nft json");
        strip_handles(&mut listing);
        let mut objects: Vec<String> = listing["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                let mut o = o.clone();
                for kind in ["map", "set"] {
                    if let Some(elements) = o
                        .pointer_mut(&format!("/{kind}/elem"))
                        .and_then(|e| e.as_array_mut())
                    {
                        elements.sort_by_key(|e| e.to_string());
                    }
                }
                o.to_string()
            })
            .collect();
        objects.sort();
        objects
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

fn strip_handles(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("handle");
            map.remove("metainfo");
            map.values_mut().for_each(strip_handles);
        }
        serde_json::Value::Array(items) => {
            items.retain(|i| i.get("metainfo").is_none());
            items.iter_mut().for_each(strip_handles);
        }
        _ => {}
    }
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// As root (`cargo test -p ferry-proxy -- --ignored`): the golden text is valid nft, the JSON
/// applies, and partial syncs from one state to another leave the same table as a full sync of
/// the second state.
#[tokio::test]
#[ignore = "needs root and nft: creates network namespaces"]
async fn transactions_apply_and_partial_syncs_equal_full_ones() {
    let (services, slices) = fixture();
    let first = ruleset(&services, &slices);
    let partial_ns = Netns::new("partial");
    let full_ns = Netns::new("full");
    // The text form is what nft reads too.
    let text = sync::full(&CONFIG, &first).text();
    run(
        "ip",
        &["netns", "exec", &partial_ns.0, "nft", "-c", "-f", "-"],
        Some(&text),
    );
    partial_ns
        .nft()
        .apply(&sync::full(&CONFIG, &first))
        .await
        .expect("full sync");
    // Web loses an endpoint, idle gets one, edge goes.
    let mut changed_slices = slices.clone();
    changed_slices[0] = slice("web", &[("10.42.0.5", "node-a", true)]);
    changed_slices[2] = slice("idle", &[("10.42.0.7", "node-a", true)]);
    let changed_services: Vec<_> = services
        .iter()
        .filter(|s| s.metadata.name.as_deref() != Some("edge"))
        .cloned()
        .collect();
    let second = ruleset(&changed_services, &changed_slices);
    partial_ns
        .nft()
        .apply(&sync::partial(&first, &second))
        .await
        .expect("partial sync");
    full_ns
        .nft()
        .apply(&sync::full(&CONFIG, &second))
        .await
        .expect("full sync of the second state");
    assert_eq!(partial_ns.listing(), full_ns.listing());
    // And back: the first state again, partially.
    partial_ns
        .nft()
        .apply(&sync::partial(&second, &first))
        .await
        .expect("partial sync back");
    full_ns
        .nft()
        .apply(&sync::full(&CONFIG, &first))
        .await
        .expect("full sync of the first state");
    assert_eq!(partial_ns.listing(), full_ns.listing());
    // Cleanup removes the table; removing it again is no error.
    partial_ns
        .nft()
        .apply(&sync::cleanup())
        .await
        .expect("cleanup");
    partial_ns
        .nft()
        .apply(&sync::cleanup())
        .await
        .expect("cleanup again");
}
