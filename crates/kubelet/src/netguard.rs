//! The pod-network guard: pod and service addresses never leave the machine.
//!
//! Installed before the first sandbox (the CNI bridge plugin turns on `net.ipv4.ip_forward`):
//!
//! - a blackhole route for the cluster CIDR, so the host sends nothing for it anywhere but to
//!   the node's own bridge (its connected /24 is more specific);
//! - a route for the service CIDR into [`SERVICE_DEVICE`], an empty bridge of its own that
//!   never forwards anything: unlike a blackhole, it lets this machine connect to a cluster IP
//!   (the service proxy's DNAT on the output hook then sends the packet to a pod), and what no
//!   proxy rule rewrote goes nowhere;
//! - an nftables table `inet ferry` whose forward chain drops what pods send anywhere but
//!   back over the node's bridge, and what arrives for pods from anywhere but the bridge, and
//!   rejects forwarded traffic still addressed to the service CIDR (the proxy rewrites what a
//!   Service serves before it is forwarded). Traffic between this node's pods and other nodes'
//!   pods and node addresses is let through: their podCIDRs are kept in the set
//!   [`REMOTE_PODS`] and their InternalIPs in [`REMOTE_NODES`] ([`allow_peers`], called by the
//!   pod network controller as nodes come and go), and the routes to them lead only to those
//!   nodes. (The cluster DNS and the API server run on the server's node: pods of the other
//!   nodes reach them through their Services, whose endpoints are its address.)
//!
//! The ruleset is a pure function of the settings ([`ruleset`]); [`install`] and [`remove`] run
//! `nft` and `ip`. Installing replaces the table atomically (`nft -f` runs one transaction).

use std::io::Write;
use std::process::{Command, Stdio};

/// The nftables table (family `inet`) the agent owns.
pub const TABLE: &str = "ferry";

/// The set of other nodes' podCIDRs, whose pods this node's pods may reach and be reached by.
pub const REMOTE_PODS: &str = "remote-pods";

/// The set of other nodes' InternalIPs, which this node's pods may reach and be reached from.
pub const REMOTE_NODES: &str = "remote-nodes";

/// The device the service CIDR is routed into: a bridge without ports.
pub const SERVICE_DEVICE: &str = "ferry-svc";

/// What to guard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    /// The cluster's pod CIDR (every node's podCIDR lies in it), e.g. `10.42.0.0/16`.
    pub cluster_cidr: String,
    /// The service CIDR, e.g. `10.43.0.0/16`.
    pub service_cidr: String,
    /// The node's pod bridge.
    pub bridge: String,
}

/// Why the guard could not be installed or removed.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// `nft` or `ip` could not be run.
    #[error("running {command}: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// The error.
        source: std::io::Error,
    },
    /// The command failed.
    #[error("{command} failed: {stderr}")]
    Failed {
        /// The command.
        command: String,
        /// What it printed.
        stderr: String,
    },
    /// A CIDR that is not `a.b.c.d/n`.
    #[error("invalid CIDR {0:?}")]
    InvalidCidr(String),
}

/// The nft script that (re)creates the guard table in one transaction.
pub fn ruleset(guard: &Guard) -> Result<String, GuardError> {
    for cidr in [&guard.cluster_cidr, &guard.service_cidr] {
        if crate::cni::parse_ipv4_cidr(cidr).is_none() {
            return Err(GuardError::InvalidCidr(cidr.clone()));
        }
    }
    let Guard {
        cluster_cidr: pods,
        service_cidr: services,
        bridge,
    } = guard;
    Ok(format!(
        r#"add table inet {TABLE}
delete table inet {TABLE}
table inet {TABLE} {{
	comment "ferry: pod and service traffic stays on this machine"
	set {REMOTE_PODS} {{
		type ipv4_addr; flags interval;
	}}
	set {REMOTE_NODES} {{
		type ipv4_addr;
	}}
	chain forward {{
		type filter hook forward priority filter - 10; policy accept;
		iifname "{bridge}" ip daddr @{REMOTE_PODS} accept
		oifname "{bridge}" ip saddr @{REMOTE_PODS} accept
		iifname "{bridge}" ip daddr @{REMOTE_NODES} accept
		oifname "{bridge}" ip saddr @{REMOTE_NODES} accept
		ip saddr {pods} oifname != "{bridge}" drop
		ip daddr {pods} iifname != "{bridge}" drop
		ip daddr {services} reject with icmp type admin-prohibited
	}}
}}
"#
    ))
}

fn run(command: &str, args: &[&str], stdin: Option<&str>) -> Result<(), GuardError> {
    let shown = format!("{command} {}", args.join(" "));
    let mut child = Command::new(command)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| GuardError::Spawn {
            command: shown.clone(),
            source,
        })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|source| GuardError::Spawn {
                command: shown.clone(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| GuardError::Spawn {
            command: shown.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(GuardError::Failed {
            command: shown,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Installs (or replaces) the guard: the nft table, then the routes.
pub fn install(guard: &Guard) -> Result<(), GuardError> {
    run("nft", &["-f", "-"], Some(&ruleset(guard)?))?;
    run(
        "ip",
        &["route", "replace", "blackhole", &guard.cluster_cidr],
        None,
    )?;
    match run(
        "ip",
        &["link", "add", SERVICE_DEVICE, "type", "bridge"],
        None,
    ) {
        Err(GuardError::Failed { stderr, .. }) if stderr.contains("File exists") => {}
        other => other?,
    }
    run("ip", &["link", "set", SERVICE_DEVICE, "up"], None)?;
    run(
        "ip",
        &[
            "route",
            "replace",
            &guard.service_cidr,
            "dev",
            SERVICE_DEVICE,
        ],
        None,
    )?;
    Ok(())
}

/// The other nodes, as the guard needs them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peers {
    /// Their podCIDRs (`a.b.c.d/n`).
    pub pod_cidrs: Vec<String>,
    /// Their InternalIPs.
    pub node_ips: Vec<std::net::Ipv4Addr>,
}

/// The nft script that makes [`REMOTE_PODS`] and [`REMOTE_NODES`] hold exactly `peers`, in one
/// transaction.
pub fn peers_script(peers: &Peers) -> Result<String, GuardError> {
    if let Some(bad) = peers
        .pod_cidrs
        .iter()
        .find(|c| crate::cni::parse_ipv4_cidr(c).is_none())
    {
        return Err(GuardError::InvalidCidr(bad.clone()));
    }
    let nodes: Vec<String> = peers.node_ips.iter().map(|ip| ip.to_string()).collect();
    let mut script = String::new();
    for (set, elements) in [(REMOTE_PODS, &peers.pod_cidrs), (REMOTE_NODES, &nodes)] {
        script.push_str(&format!("flush set inet {TABLE} {set}\n"));
        if !elements.is_empty() {
            script.push_str(&format!(
                "add element inet {TABLE} {set} {{ {} }}\n",
                elements.join(", ")
            ));
        }
    }
    Ok(script)
}

/// Lets this node's pods and the pods and addresses of `peers` reach each other; nodes no
/// longer listed are shut out again.
pub fn allow_peers(peers: &Peers) -> Result<(), GuardError> {
    run("nft", &["-f", "-"], Some(&peers_script(peers)?))
}

/// Removes the guard (what is already gone is not an error).
pub fn remove(guard: &Guard) -> Result<(), GuardError> {
    for cidr in [&guard.cluster_cidr, &guard.service_cidr] {
        match run("ip", &["route", "del", cidr], None) {
            Err(GuardError::Failed { stderr, .. }) if stderr.contains("No such process") => {}
            other => other?,
        }
    }
    match run("ip", &["link", "del", SERVICE_DEVICE], None) {
        Err(GuardError::Failed { stderr, .. }) if stderr.contains("Cannot find device") => {}
        other => other?,
    }
    match run("nft", &["delete", "table", "inet", TABLE], None) {
        Err(GuardError::Failed { stderr, .. }) if stderr.contains("No such file") => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_replaces_the_table_and_guards_both_ranges() {
        let guard = Guard {
            cluster_cidr: "10.42.0.0/16".into(),
            service_cidr: "10.43.0.0/16".into(),
            bridge: "ferry0".into(),
        };
        let rules = ruleset(&guard).expect("valid");
        // Declared, deleted and recreated in one transaction: never a moment without it.
        assert!(
            rules.starts_with("add table inet ferry\ndelete table inet ferry\ntable inet ferry {")
        );
        assert!(rules.contains("ip saddr 10.42.0.0/16 oifname != \"ferry0\" drop"));
        assert!(rules.contains("ip daddr 10.42.0.0/16 iifname != \"ferry0\" drop"));
        assert!(rules.contains("ip daddr 10.43.0.0/16 reject"));
        // Other nodes' pods are let through before anything is dropped.
        let accept = rules
            .find("iifname \"ferry0\" ip daddr @remote-pods accept")
            .expect("accept rule");
        assert!(rules.contains("oifname \"ferry0\" ip saddr @remote-pods accept"));
        assert!(accept < rules.find("drop").expect("drop rule"));
        assert!(rules.contains("iifname \"ferry0\" ip daddr @remote-nodes accept"));
        let peers = Peers {
            pod_cidrs: vec!["10.42.1.0/24".into(), "10.42.2.0/24".into()],
            node_ips: vec!["192.168.1.2".parse().expect("ip")],
        };
        assert_eq!(
            peers_script(&peers).expect("valid"),
            "flush set inet ferry remote-pods\n\
             add element inet ferry remote-pods { 10.42.1.0/24, 10.42.2.0/24 }\n\
             flush set inet ferry remote-nodes\n\
             add element inet ferry remote-nodes { 192.168.1.2 }\n"
        );
        assert_eq!(
            peers_script(&Peers::default()).expect("valid"),
            "flush set inet ferry remote-pods\nflush set inet ferry remote-nodes\n"
        );
        let bad = Peers {
            pod_cidrs: vec!["10.42.1.0".into()],
            ..Peers::default()
        };
        assert!(peers_script(&bad).is_err());
        let bad = Guard {
            cluster_cidr: "10.42.0.0".into(),
            ..guard
        };
        assert!(matches!(ruleset(&bad), Err(GuardError::InvalidCidr(_))));
    }
}
