//! Node IPAM (upstream's range allocator): each Node gets `spec.podCIDR` (and `podCIDRs`), a
//! `/--node-cidr-mask-size` block of `--cluster-cidr`, which the node's CNI IPAM hands out to
//! pods. Blocks of existing nodes are marked used before anything is allocated; a deleted
//! node's block is released.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{reference, EventType};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use parking_lot::Mutex;
use serde_json::json;

use crate::queue::{Queue, Reconciler};
use crate::util::api_code;
use crate::{ApiContext as _, Context, Error};

/// Why a CIDR could not be parsed or allocated.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CidrError {
    /// Not `a.b.c.d/len` with an IPv4 address.
    #[error("invalid IPv4 CIDR {0:?}")]
    Invalid(String),
    /// The node mask is not longer than the cluster prefix, or leaves too many blocks.
    #[error("node CIDR mask /{mask} does not fit cluster CIDR {cidr}")]
    Mask {
        /// The cluster CIDR.
        cidr: String,
        /// The node mask size.
        mask: u8,
    },
}

/// Parses `a.b.c.d/len` into the network address and prefix length.
pub fn parse_cidr(cidr: &str) -> Result<(u32, u8), CidrError> {
    let invalid = || CidrError::Invalid(cidr.to_string());
    let (ip, len) = cidr.split_once('/').ok_or_else(invalid)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| invalid())?;
    let len: u8 = len.parse().map_err(|_| invalid())?;
    if len > 32 {
        return Err(invalid());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((u32::from(ip) & mask, len))
}

/// A bitmap of the node-sized blocks of a cluster CIDR.
pub struct CidrSet {
    base: u32,
    prefix: u8,
    mask: u8,
    used: Vec<bool>,
    next: usize,
}

impl CidrSet {
    /// The blocks of `cidr` of size `/mask`.
    pub fn new(cidr: &str, mask: u8) -> Result<CidrSet, CidrError> {
        let (base, prefix) = parse_cidr(cidr)?;
        if mask <= prefix || mask > 30 || mask - prefix > 20 {
            return Err(CidrError::Mask {
                cidr: cidr.to_string(),
                mask,
            });
        }
        Ok(CidrSet {
            base,
            prefix,
            mask,
            used: vec![false; 1 << (mask - prefix)],
            next: 0,
        })
    }

    fn block(&self, index: usize) -> String {
        let ip = self.base + ((index as u32) << (32 - self.mask));
        format!("{}/{}", Ipv4Addr::from(ip), self.mask)
    }

    fn index(&self, cidr: &str) -> Option<usize> {
        let (ip, len) = parse_cidr(cidr).ok()?;
        if len != self.mask || (self.prefix > 0 && (ip ^ self.base) >> (32 - self.prefix) != 0) {
            return None;
        }
        Some(((ip - self.base) >> (32 - self.mask)) as usize)
    }

    /// Marks `cidr` used (a node already has it); false if it is not one of our blocks.
    pub fn occupy(&mut self, cidr: &str) -> bool {
        match self.index(cidr) {
            Some(i) => {
                self.used[i] = true;
                true
            }
            None => false,
        }
    }

    /// Frees `cidr`.
    pub fn release(&mut self, cidr: &str) {
        if let Some(i) = self.index(cidr) {
            self.used[i] = false;
        }
    }

    /// The next free block, round-robin from the last allocation.
    pub fn allocate(&mut self) -> Option<String> {
        let n = self.used.len();
        for step in 0..n {
            let i = (self.next + step) % n;
            if !self.used[i] {
                self.used[i] = true;
                self.next = (i + 1) % n;
                return Some(self.block(i));
            }
        }
        None
    }
}

/// The controller: a queue of node names and the allocation bitmap.
pub struct NodeIpamController {
    ctx: Arc<Context>,
    queue: Arc<Queue<String>>,
    cidrs: Mutex<CidrSet>,
}

fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()?
        .pod_cidr
        .as_deref()
        .filter(|c| !c.is_empty())
}

/// Run with one worker: allocation is serial anyway.
impl Reconciler for NodeIpamController {
    type Key = String;
    type Error = Error;
    const NAME: &'static str = "nodeipam";

    fn queue(&self) -> &Arc<Queue<String>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, name: String) -> Result<Option<Duration>, Error> {
        self.sync(name).await
    }
}

impl NodeIpamController {
    /// Registers the handlers; fails on an invalid `--cluster-cidr`.
    pub fn new(ctx: Arc<Context>) -> Result<Arc<NodeIpamController>, CidrError> {
        let cidrs = CidrSet::new(&ctx.options.cluster_cidr, ctx.options.node_cidr_mask_size)?;
        let controller = Arc::new(NodeIpamController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            cidrs: Mutex::new(cidrs),
        });
        let c = controller.clone();
        ctx.nodes.add_handler(move |old, new| match (old, new) {
            (_, Some(node)) => match pod_cidr(node) {
                Some(cidr) => {
                    c.cidrs.lock().occupy(cidr);
                }
                None => c.queue.add(node.name_any()),
            },
            (Some(node), None) => {
                if let Some(cidr) = pod_cidr(node) {
                    c.cidrs.lock().release(cidr);
                }
            }
            (None, None) => {}
        });
        Ok(controller)
    }

    async fn sync(&self, name: String) -> Result<Option<Duration>, Error> {
        let Some(node) = self.ctx.nodes.get("", &name) else {
            return Ok(None);
        };
        if pod_cidr(&node).is_some() {
            return Ok(None);
        }
        let Some(cidr) = self.cidrs.lock().allocate() else {
            self.ctx.recorder("cidrAllocator").event(
                reference(node.as_ref()),
                EventType::Normal,
                "CIDRNotAvailable",
                format!("Node {name} status is now: CIDRNotAvailable"),
            );
            return Ok(Some(Duration::from_secs(30)));
        };
        let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
        let api: Api<Node> = Api::all(self.ctx.client.clone());
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.ctx.recorder("cidrAllocator").event(
                    reference(node.as_ref()),
                    EventType::Normal,
                    "CIDRAssignmentSucceeded",
                    format!("Node {name} got CIDR {cidr}"),
                );
                Ok(None)
            }
            Err(e) => {
                self.cidrs.lock().release(&cidr);
                if api_code(&e) == Some(404) {
                    return Ok(None);
                }
                Err(e).context("assigning a pod CIDR")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_cut_in_order_and_reused_after_release() {
        let mut set = CidrSet::new("10.42.0.0/16", 24).expect("set");
        assert!(set.occupy("10.42.0.0/24"));
        assert!(!set.occupy("10.43.0.0/24"), "outside the cluster CIDR");
        assert_eq!(set.allocate().as_deref(), Some("10.42.1.0/24"));
        assert_eq!(set.allocate().as_deref(), Some("10.42.2.0/24"));
        set.release("10.42.1.0/24");
        let mut all = Vec::new();
        while let Some(c) = set.allocate() {
            all.push(c);
        }
        assert_eq!(all.len(), 254, "256 blocks, 2 in use");
        assert!(all.contains(&"10.42.1.0/24".to_string()));
    }

    #[test]
    fn bad_cidrs_are_rejected() {
        assert!(matches!(
            CidrSet::new("10.42.0.0", 24),
            Err(CidrError::Invalid(_))
        ));
        assert!(matches!(
            CidrSet::new("10.42.0.0/24", 16),
            Err(CidrError::Mask { .. })
        ));
        assert_eq!(
            parse_cidr("10.42.7.9/16"),
            Ok((u32::from(Ipv4Addr::new(10, 42, 0, 0)), 16))
        );
    }
}
