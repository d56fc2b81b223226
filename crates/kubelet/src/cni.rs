//! The CNI network config the node's containerd uses for every pod sandbox.
//!
//! [`conflist`] is a pure function from [`CniConfig`] to the conflist JSON; [`write_conflist`]
//! puts it in containerd's CNI `conf_dir`. containerd's CRI plugin then runs the chain (CNI ADD
//! on RunPodSandbox, DEL on StopPodSandbox) with the plugins in `/usr/lib/cni` (Debian's
//! `containernetworking-plugins`).
//!
//! The chain is `bridge` (with `host-local` IPAM on the node's podCIDR) then `portmap`. The
//! `loopback` plugin is not listed: containerd's CRI plugin brings up `lo` in every sandbox itself
//! (go-cni's loopback network), so it only has to exist in the bin dir.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::json;

/// Debian's CNI plugin directory.
pub const DEFAULT_CNI_BIN_DIR: &str = "/usr/lib/cni";

/// The file name [`write_conflist`] uses; containerd loads the first conflist by name.
pub const CONFLIST_FILE: &str = "10-ferry.conflist";

/// Errors from building or writing the CNI config.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The podCIDR is not an IPv4 `address/prefix` with a prefix of 8 to 30.
    #[error("invalid podCIDR {0:?}: want an IPv4 CIDR like 10.42.0.0/24")]
    InvalidPodCidr(String),
    /// The bridge name is empty or longer than Linux's 15-byte interface name limit.
    #[error("invalid bridge name {0:?}: 1 to 15 characters")]
    InvalidBridgeName(String),
    /// Writing the conflist failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// What the node's pod network looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniConfig {
    /// The CNI network name (also the name of host-local's lease directory).
    pub network_name: String,
    /// The Linux bridge the pods' veths attach to (at most 15 characters).
    pub bridge: String,
    /// The node's `spec.podCIDR`, e.g. `10.42.0.0/24`; pod IPs come from it.
    pub pod_cidr: String,
    /// Where host-local keeps its leases (instead of `/var/lib/cni/networks`).
    pub ipam_data_dir: PathBuf,
    /// Give the bridge the subnet's first address and make it the pods' default gateway. Needed
    /// for the host to reach pod IPs; the bridge plugin then also turns on
    /// `net.ipv4.ip_forward`, so the pod-CIDR guard must be in place first (docs/RUNTIME.md).
    pub is_gateway: bool,
    /// The MTU of the bridge and the pods' interfaces, if not the kernel's default (the VXLAN
    /// overlay needs room for its header).
    pub mtu: Option<u32>,
}

impl CniConfig {
    /// A config for `pod_cidr` on bridge `bridge`, leases under `data_dir/cni/ipam`, no gateway.
    pub fn new(bridge: &str, pod_cidr: &str, data_dir: &Path) -> Self {
        Self {
            network_name: "ferry".to_string(),
            bridge: bridge.to_string(),
            pod_cidr: pod_cidr.to_string(),
            ipam_data_dir: data_dir.join("cni").join("ipam"),
            is_gateway: false,
            mtu: None,
        }
    }
}

/// Parses an IPv4 CIDR into (network address, prefix length).
pub fn parse_ipv4_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, prefix) = cidr.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    if !(8..=30).contains(&prefix) {
        return None;
    }
    let mask = u32::MAX << (32 - u32::from(prefix));
    Some((Ipv4Addr::from(u32::from(addr) & mask), prefix))
}

/// Whether `ip` lies in the IPv4 `cidr`.
pub fn cidr_contains(cidr: &str, ip: Ipv4Addr) -> bool {
    parse_ipv4_cidr(cidr).is_some_and(|(net, prefix)| {
        let mask = u32::MAX << (32 - u32::from(prefix));
        u32::from(ip) & mask == u32::from(net)
    })
}

/// The conflist JSON for `config`.
pub fn conflist(config: &CniConfig) -> Result<serde_json::Value, CniError> {
    let (network, prefix) = parse_ipv4_cidr(&config.pod_cidr)
        .ok_or_else(|| CniError::InvalidPodCidr(config.pod_cidr.clone()))?;
    if config.bridge.is_empty() || config.bridge.len() > 15 {
        return Err(CniError::InvalidBridgeName(config.bridge.clone()));
    }
    let mut value = json!({
        "cniVersion": "1.0.0",
        "name": config.network_name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": config.bridge,
                "isGateway": config.is_gateway,
                // No SNAT: pod traffic must never leave the machine.
                "ipMasq": false,
                // A pod can reach itself through a Service's address.
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": format!("{network}/{prefix}") }]],
                    // With a gateway on the bridge, everything else goes through it: Services
                    // (the proxy's DNAT), other nodes' pods, and nothing beyond (the guard).
                    "routes": if config.is_gateway { json!([{ "dst": "0.0.0.0/0" }]) } else { json!([]) },
                    "dataDir": config.ipam_data_dir,
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    if let Some(mtu) = config.mtu {
        value["plugins"][0]["mtu"] = json!(mtu);
    }
    Ok(value)
}

/// Writes the conflist for `config` to `conf_dir/10-ferry.conflist` (creating the directory),
/// through a temporary file and a rename: containerd watches the directory and must never read
/// half a file. Returns the file's path.
pub fn write_conflist(conf_dir: &Path, config: &CniConfig) -> Result<PathBuf, CniError> {
    let value = conflist(config)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CniError::Io { path, source }
    };
    std::fs::create_dir_all(conf_dir).map_err(io(conf_dir))?;
    let path = conf_dir.join(CONFLIST_FILE);
    // Not *.conflist, so containerd ignores it while it is being written.
    let tmp = conf_dir.join(format!(".{CONFLIST_FILE}.tmp"));
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    std::fs::write(&tmp, text + "\n").map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_is_bridge_with_host_local_then_portmap() {
        let config = CniConfig::new("ferry0", "10.42.7.0/24", Path::new("/var/lib/ferry"));
        let value = conflist(&config).expect("valid config");
        assert_eq!(
            value,
            json!({
                "cniVersion": "1.0.0",
                "name": "ferry",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "ferry0",
                        "isGateway": false,
                        "ipMasq": false,
                        "hairpinMode": true,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{ "subnet": "10.42.7.0/24" }]],
                            "routes": [],
                            "dataDir": "/var/lib/ferry/cni/ipam",
                        }
                    },
                    { "type": "portmap", "capabilities": { "portMappings": true } }
                ]
            })
        );
    }

    #[test]
    fn pod_cidr_is_normalized_and_checked() {
        let mut config = CniConfig::new("ferry0", "10.42.7.9/24", Path::new("/d"));
        let value = conflist(&config).expect("valid");
        assert_eq!(
            value["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.42.7.0/24"
        );
        // With a gateway, pods route everything through it (Services, other nodes).
        let gateway = CniConfig {
            is_gateway: true,
            ..config.clone()
        };
        let value = conflist(&gateway).expect("valid config");
        assert_eq!(
            value["plugins"][0]["ipam"]["routes"],
            json!([{"dst": "0.0.0.0/0"}])
        );
        assert_eq!(value["plugins"][0].get("mtu"), None);
        // Under the VXLAN overlay the bridge and the pods' interfaces get a lower MTU.
        let overlay = CniConfig {
            mtu: Some(1450),
            ..config.clone()
        };
        assert_eq!(
            conflist(&overlay).expect("valid")["plugins"][0]["mtu"],
            1450
        );
        for bad in [
            "10.42.7.0",
            "10.42.7.0/33",
            "10.42.7.0/31",
            "fd00::/64",
            "x/24",
        ] {
            config.pod_cidr = bad.to_string();
            assert!(
                matches!(conflist(&config), Err(CniError::InvalidPodCidr(_))),
                "{bad}"
            );
        }
        config.pod_cidr = "10.42.7.0/24".to_string();
        config.bridge = "a-bridge-name-too-long".to_string();
        assert!(matches!(
            conflist(&config),
            Err(CniError::InvalidBridgeName(_))
        ));
    }

    #[test]
    fn cidr_contains_checks_the_prefix() {
        assert!(cidr_contains(
            "10.42.251.0/24",
            Ipv4Addr::new(10, 42, 251, 2)
        ));
        assert!(!cidr_contains(
            "10.42.251.0/24",
            Ipv4Addr::new(10, 42, 252, 2)
        ));
        assert!(!cidr_contains("garbage", Ipv4Addr::new(10, 42, 251, 2)));
    }

    #[test]
    fn write_conflist_replaces_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf_dir = dir.path().join("net.d");
        let mut config = CniConfig::new("ferry0", "10.42.0.0/24", dir.path());
        let path = write_conflist(&conf_dir, &config).expect("write");
        config.pod_cidr = "10.42.1.0/24".to_string();
        write_conflist(&conf_dir, &config).expect("rewrite");
        let text = std::fs::read_to_string(&path).expect("read");
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            value["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.42.1.0/24"
        );
        let names: Vec<_> = std::fs::read_dir(&conf_dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(CONFLIST_FILE)]);
    }
}
