//! The nft script for the isolated pods: the table `inet ferry-policy`, replaced whole in one
//! transaction. Its forward chain accepts replies of allowed flows (conntrack), then sends a
//! packet from an egress-isolated pod to that pod's `egress-…` chain and one to an
//! ingress-isolated pod to its `ingress-…` chain; each returns for what a rule allows and drops
//! the rest. Only forwarded traffic is filtered: the node's own traffic to its pods (the
//! kubelet's probes) is always allowed, as upstream requires.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::model::{Addresses, Allow, Isolated};

/// The nftables table (family `inet`) the policy controller owns.
pub const TABLE: &str = "ferry-policy";

fn chain_name(direction: &str, ip: Ipv4Addr) -> String {
    format!("{direction}-{}", ip.to_string().replace('.', "-"))
}

fn list<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One rule of an ingress (`remote` = `saddr`) or egress (`daddr`) chain.
fn allow_rule(remote: &str, allow: &Allow) -> String {
    let mut rule = String::new();
    match &allow.addresses {
        Addresses::Any => {}
        Addresses::Block { cidr, except } => {
            let _ = write!(rule, "ip {remote} {cidr} ");
            if !except.is_empty() {
                let _ = write!(rule, "ip {remote} != {{ {} }} ", list(except));
            }
        }
        Addresses::Pods(ips) => {
            let _ = write!(rule, "ip {remote} {{ {} }} ", list(ips));
        }
    }
    if let Some(ports) = &allow.ports {
        let protocol = ports.protocol.nft();
        if ports.first == ports.last {
            let _ = write!(rule, "{protocol} dport {} ", ports.first);
        } else {
            let _ = write!(rule, "{protocol} dport {}-{} ", ports.first, ports.last);
        }
    }
    rule.push_str("return");
    rule
}

/// The script that (re)creates the table for `isolated`.
pub fn script(isolated: &[Isolated]) -> String {
    let mut out = format!(
        "add table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n\
         \tcomment \"ferry: NetworkPolicy\"\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tct state established,related accept\n"
    );
    for (direction, address) in [("egress", "saddr"), ("ingress", "daddr")] {
        let entries: Vec<String> = isolated
            .iter()
            .filter(|i| match direction {
                "egress" => i.egress.is_some(),
                _ => i.ingress.is_some(),
            })
            .map(|i| format!("{} : jump {}", i.ip, chain_name(direction, i.ip)))
            .collect();
        if !entries.is_empty() {
            let _ = writeln!(out, "\t\tip {address} vmap {{ {} }}", entries.join(", "));
        }
    }
    out.push_str("\t}\n");
    for pod in isolated {
        for (direction, remote, allows) in [
            ("ingress", "saddr", &pod.ingress),
            ("egress", "daddr", &pod.egress),
        ] {
            let Some(allows) = allows else {
                continue;
            };
            let _ = writeln!(out, "\tchain {} {{", chain_name(direction, pod.ip));
            let _ = writeln!(out, "\t\tcomment \"{}\"", pod.pod);
            for allow in allows {
                let _ = writeln!(out, "\t\t{}", allow_rule(remote, allow));
            }
            out.push_str("\t\tdrop\n\t}\n");
        }
    }
    out.push_str("}\n");
    out
}

/// The script that removes the table.
pub fn cleanup_script() -> String {
    format!("add table inet {TABLE}\ndelete table inet {TABLE}\n")
}
