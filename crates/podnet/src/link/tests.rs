//! As root (`cargo test -p ferry-podnet -- --ignored`): plans applied in a network namespace
//! of the test's own, read back with iproute2.

use std::process::Command;

use super::*;
use crate::plan::{plan, Backend, Cidr, Peer};

/// A network namespace with a veth "underlay" device holding `192.168.77.1/24` (MTU 1400),
/// deleted on drop.
struct Namespace(String);

impl Namespace {
    fn new() -> Namespace {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ferry-podnet-{}-{n}", std::process::id());
        let namespace = Namespace(name);
        namespace.ip(&["netns", "add", &namespace.0]);
        for args in [
            vec!["link", "set", "lo", "up"],
            vec![
                "link", "add", "under0", "mtu", "1400", "type", "veth", "peer", "name", "under1",
            ],
            vec!["link", "set", "under1", "up"],
            vec!["address", "add", "192.168.77.1/24", "dev", "under0"],
            vec!["link", "set", "under0", "up"],
        ] {
            let mut all = vec!["-n", namespace.0.as_str()];
            all.extend(args);
            namespace.ip(&all);
        }
        namespace
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn show(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.0.as_str()];
        all.extend(args);
        self.ip(&all)
    }

    fn fdb(&self) -> String {
        let out = Command::new("bridge")
            .args(["-n", &self.0, "fdb", "show", "dev", VXLAN_DEVICE])
            .output()
            .expect("bridge");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` with a netlink connection opened inside the namespace.
    fn with_netlink<T: Send + 'static>(
        &self,
        f: impl FnOnce(Netlink) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>>
            + Send
            + 'static,
    ) -> T {
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("netns file");
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&file),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let netlink = Netlink::connect().expect("netlink");
                f(netlink).await
            })
        })
        .join()
        .expect("thread")
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn peers() -> Vec<Peer> {
    vec![
        Peer {
            pod_cidr: "10.42.1.0/24".parse().expect("valid"),
            node_ip: "192.168.77.2".parse().expect("valid"),
            node: "b".into(),
        },
        Peer {
            pod_cidr: "10.42.2.0/24".parse().expect("valid"),
            node_ip: "192.168.77.3".parse().expect("valid"),
            node: "c".into(),
        },
    ]
}

fn own() -> (Ipv4Addr, Cidr) {
    (
        "192.168.77.1".parse().expect("valid"),
        "10.42.0.0/24".parse().expect("valid"),
    )
}

#[test]
#[ignore = "needs root: creates a network namespace"]
fn vxlan_plans_make_the_device_entries_and_routes_and_undo_them() {
    let ns = Namespace::new();
    let (ip, cidr) = own();
    let full = plan(Backend::Vxlan, ip, cidr, &peers());
    let one = plan(Backend::Vxlan, ip, cidr, &peers()[..1]);
    let changes = ns.with_netlink(move |nl| {
        Box::pin(async move {
            let first = nl.apply(&full).await.expect("apply");
            let again = nl.apply(&full).await.expect("apply again");
            (first, again)
        })
    });
    // Per peer a neighbour and a route; the second sync finds nothing to do.
    assert_eq!(changes.0.added, 4, "{changes:?}");
    assert_eq!(changes.1, Changes::default());
    let link = ns.show(&["-d", "link", "show", VXLAN_DEVICE]);
    assert!(link.contains("mtu 1350"), "{link}");
    assert!(link.contains("vxlan id 1"), "{link}");
    assert!(link.contains("local 192.168.77.1"), "{link}");
    assert!(link.contains("dstport 8472"), "{link}");
    assert!(link.contains("nolearning"), "{link}");
    assert!(link.contains("0e:fe:c0:a8:4d:01"), "{link}");
    let addresses = ns.show(&["address", "show", "dev", VXLAN_DEVICE]);
    assert!(addresses.contains("10.42.0.0/32"), "{addresses}");
    let routes = ns.show(&["route", "show", "proto", "77"]);
    assert!(
        routes.contains("10.42.1.0/24 via 10.42.1.0 dev ferry.1 onlink"),
        "{routes}"
    );
    assert!(routes.contains("10.42.2.0/24 via 10.42.2.0 dev ferry.1 onlink"));
    let neighbours = ns.show(&["neigh", "show", "dev", VXLAN_DEVICE]);
    assert!(
        neighbours.contains("10.42.1.0 lladdr 0e:fe:c0:a8:4d:02 PERMANENT"),
        "{neighbours}"
    );
    let fdb = ns.fdb();
    assert!(fdb.contains("0e:fe:c0:a8:4d:02 dst 192.168.77.2"), "{fdb}");
    assert!(fdb.contains("0e:fe:c0:a8:4d:03 dst 192.168.77.3"), "{fdb}");

    // A route removed by hand comes back; a peer that went loses its route and entries.
    ns.show(&["route", "del", "10.42.1.0/24"]);
    let changes = ns.with_netlink(move |nl| Box::pin(async move { nl.apply(&one).await }));
    assert_eq!(
        changes.expect("apply"),
        Changes {
            added: 1,
            removed: 2
        }
    );
    let routes = ns.show(&["route", "show", "proto", "77"]);
    assert!(routes.contains("10.42.1.0/24 via 10.42.1.0"), "{routes}");
    assert!(!routes.contains("10.42.2.0"), "{routes}");
    assert!(!ns.fdb().contains("192.168.77.3"));

    // Alone again: the device goes too.
    let removed = ns.with_netlink(move |nl| {
        Box::pin(async move { nl.apply(&Plan::default()).await.expect("apply") })
    });
    assert!(removed.removed >= 2, "{removed:?}");
    assert!(!ns.show(&["link", "show"]).contains(VXLAN_DEVICE));
    assert_eq!(ns.show(&["route", "show", "proto", "77"]), "");
}

#[test]
#[ignore = "needs root: creates a network namespace"]
fn host_gw_routes_via_the_peers_and_cleanup_removes_ours_only() {
    let ns = Namespace::new();
    ns.show(&["route", "add", "10.99.0.0/24", "via", "192.168.77.9"]);
    let (ip, cidr) = own();
    let host_gw = plan(Backend::HostGw, ip, cidr, &peers());
    let vxlan = plan(Backend::Vxlan, ip, cidr, &peers());
    let removed = ns.with_netlink(move |nl| {
        Box::pin(async move {
            nl.apply(&host_gw).await.expect("apply");
            nl.apply(&host_gw).await.expect("apply again");
            let routes = nl.routes(None).await.expect("routes");
            assert_eq!(routes, host_gw.routes);
            // Switching backends replaces the routes.
            nl.apply(&vxlan).await.expect("switch");
            nl.cleanup().await.expect("cleanup")
        })
    });
    assert_eq!(removed.len(), 3, "{removed:?}");
    let routes = ns.show(&["route", "show"]);
    assert!(routes.contains("10.99.0.0/24 via 192.168.77.9"), "{routes}");
    assert!(!routes.contains("10.42."), "{routes}");
    assert!(!ns.show(&["link", "show"]).contains(VXLAN_DEVICE));
}
