//! Which entries a change makes stale, and, as root in a network namespace of the test's own,
//! that [`flush`] deletes those and only those.

use super::*;
use crate::model::{Endpoint, ServicePortName};

fn port(protocol: Protocol, endpoints: &[[u8; 4]], node_port: Option<u16>) -> ServicePort {
    ServicePort {
        name: ServicePortName {
            namespace: "default".into(),
            name: "dns".into(),
            port: "dns".into(),
            protocol,
        },
        cluster_ip: Ipv4Addr::new(10, 43, 0, 10),
        port: 53,
        node_port,
        external_ips: Vec::new(),
        affinity_timeout: None,
        internal_local: false,
        external_local: false,
        endpoints: endpoints
            .iter()
            .map(|ip| Endpoint {
                ip: Ipv4Addr::from(*ip),
                port: 5353,
                ready: true,
                serving: true,
                terminating: false,
                local: false,
            })
            .collect(),
    }
}

const A: [u8; 4] = [10, 42, 0, 5];
const B: [u8; 4] = [10, 42, 0, 6];

#[test]
fn a_removed_udp_endpoint_is_flushed_on_every_destination() {
    let before = [port(Protocol::Udp, &[A, B], Some(30053))];
    let after = [port(Protocol::Udp, &[A], Some(30053))];
    assert_eq!(
        stale(&before, &after),
        [
            Filter {
                destination: None,
                port: 30053,
                endpoint: Some(Ipv4Addr::from(B))
            },
            Filter {
                destination: Some(Ipv4Addr::new(10, 43, 0, 10)),
                port: 53,
                endpoint: Some(Ipv4Addr::from(B))
            },
        ]
    );
    // The Service gone altogether: its endpoints' entries too.
    assert_eq!(stale(&after, &[]).len(), 2);
    // Nothing changed, or TCP (whose connections end and are reset): nothing.
    assert!(stale(&before, &before).is_empty());
    let tcp_before = [port(Protocol::Tcp, &[A, B], None)];
    let tcp_after = [port(Protocol::Tcp, &[A], None)];
    assert!(stale(&tcp_before, &tcp_after).is_empty());
}

#[test]
fn a_udp_port_getting_its_first_endpoint_is_flushed_whole() {
    let before = [port(Protocol::Udp, &[], None)];
    let after = [port(Protocol::Udp, &[A], None)];
    assert_eq!(
        stale(&before, &after),
        [Filter {
            destination: Some(Ipv4Addr::new(10, 43, 0, 10)),
            port: 53,
            endpoint: None
        }]
    );
    // A new Service with endpoints at once: its port too (traffic may have been rejected).
    assert_eq!(stale(&[], &after).len(), 1);
    // An endpoint added to one that had some: nothing is stale.
    let more = [port(Protocol::Udp, &[A, B], None)];
    assert!(stale(&after, &more).is_empty());
}

#[test]
fn filters_match_on_every_given_field() {
    let entry = Entry {
        source: (Ipv4Addr::new(10, 42, 0, 9), 40000),
        destination: (Ipv4Addr::new(10, 43, 0, 10), 53),
        reply_source: Ipv4Addr::from(A),
    };
    let any = Filter {
        destination: None,
        port: 53,
        endpoint: None,
    };
    assert!(any.matches(&entry));
    let other_endpoint = Filter {
        endpoint: Some(Ipv4Addr::from(B)),
        ..any.clone()
    };
    assert!(!other_endpoint.matches(&entry));
    let other_port = Filter { port: 54, ..any };
    assert!(!other_port.matches(&entry));
}

/// As root (`cargo test -p ferry-proxy -- --ignored`): UDP flows in a namespace of the test's
/// own; the flush deletes the one a filter names and keeps the other.
#[test]
#[ignore = "needs root: creates a network namespace"]
fn flush_deletes_the_matching_entries_over_netlink() {
    let name = format!("ferry-conntrack-{}", std::process::id());
    let ip = |args: &[&str]| {
        let status = std::process::Command::new("ip")
            .args(args)
            .status()
            .expect("ip");
        assert!(status.success(), "ip {args:?}");
    };
    ip(&["netns", "add", &name]);
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let _gone = Gone(name.clone());
    ip(&["-n", &name, "link", "set", "lo", "up"]);
    // A rule that uses conntrack, so the namespace tracks flows.
    let mut nft = std::process::Command::new("ip")
        .args(["netns", "exec", &name, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    use std::io::Write as _;
    nft.stdin
        .take()
        .expect("stdin")
        .write_all(b"add table ip t\nadd chain ip t o { type filter hook output priority 0; }\nadd rule ip t o ct state new counter\n")
        .expect("write");
    assert!(nft.wait().expect("nft").success());
    let path = format!("/var/run/netns/{name}");
    let (kept, flushed, left) = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.send_to(b"x", "127.0.0.1:9998").expect("send");
        socket.send_to(b"x", "127.0.0.1:9999").expect("send");
        let before = udp_entries().expect("dump");
        let flushed = flush(&[Filter {
            destination: Some(Ipv4Addr::LOCALHOST),
            port: 9999,
            endpoint: None,
        }])
        .expect("flush");
        (before, flushed, udp_entries().expect("dump"))
    })
    .join()
    .expect("thread");
    let ports = |entries: &[Entry]| -> Vec<u16> {
        let mut p: Vec<u16> = entries.iter().map(|e| e.destination.1).collect();
        p.sort();
        p
    };
    assert_eq!(ports(&kept), [9998, 9999]);
    assert_eq!(flushed, 1);
    assert_eq!(ports(&left), [9998]);
}
