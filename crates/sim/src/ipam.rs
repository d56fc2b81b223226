//! Made-up addresses: IPv4 CIDRs and a per-node pod IP allocator in the spirit of the CNI
//! `host-local` plugin (the next free address after the last one handed out, so a released
//! address is not reused at once). Nothing routes these addresses; they are status data.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 range such as `10.42.3.0/24`, normalised to its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    network: u32,
    prefix_len: u8,
}

/// Why a CIDR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid IPv4 CIDR {0:?}")]
pub struct CidrError(pub String);

impl Ipv4Cidr {
    /// The range of `prefix_len` bits around `address` (clamped to 32).
    pub fn new(address: Ipv4Addr, prefix_len: u8) -> Ipv4Cidr {
        let prefix_len = prefix_len.min(32);
        Ipv4Cidr {
            network: u32::from(address) & mask(prefix_len),
            prefix_len,
        }
    }

    /// The first address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// How many addresses it holds.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix_len))
    }

    /// Whether it holds `address`.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & mask(self.prefix_len) == self.network
    }

    /// The `index`-th subrange of `prefix_len` bits, wrapping around when there are fewer (a
    /// longer prefix than this range's, else the range itself).
    pub fn subnet(&self, prefix_len: u8, index: usize) -> Ipv4Cidr {
        if prefix_len <= self.prefix_len {
            return *self;
        }
        let prefix_len = prefix_len.min(32);
        let count = 1u64 << (prefix_len - self.prefix_len);
        let step = 1u64 << (32 - u32::from(prefix_len));
        let offset = (index as u64 % count) * step;
        Ipv4Cidr {
            network: self.network + offset as u32,
            prefix_len,
        }
    }

    /// The address at `offset` from the network address (wrapping within the range).
    pub fn nth(&self, offset: u64) -> Ipv4Addr {
        Ipv4Addr::from(self.network + (offset % self.size()) as u32)
    }

    /// Offsets pods may get: not the network address, the gateway (`.1`, the bridge in
    /// host-local setups) or the broadcast address, when the range is big enough to spare them.
    fn pod_offsets(&self) -> std::ops::Range<u64> {
        if self.size() >= 4 {
            2..self.size() - 1
        } else {
            0..self.size()
        }
    }
}

fn mask(prefix_len: u8) -> u32 {
    if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len))
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Ipv4Cidr, CidrError> {
        let err = || CidrError(s.to_string());
        let (address, prefix_len) = s.trim().split_once('/').ok_or_else(err)?;
        let address: Ipv4Addr = address.parse().map_err(|_| err())?;
        let prefix_len: u8 = prefix_len.parse().map_err(|_| err())?;
        if prefix_len > 32 {
            return Err(err());
        }
        Ok(Ipv4Cidr::new(address, prefix_len))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix_len)
    }
}

/// The pod IPs one node has handed out. Addresses are remembered whatever range they came
/// from, so a node that gets its `spec.podCIDR` late never hands out an address still in use.
#[derive(Debug, Default)]
pub struct PodIpam {
    used: BTreeSet<u32>,
    /// Offset (in the range of the last allocation) to try first.
    next: u64,
}

impl PodIpam {
    /// A free address of `range`, now in use; `None` when the range is full.
    pub fn allocate(&mut self, range: Ipv4Cidr) -> Option<Ipv4Addr> {
        let offsets = range.pod_offsets();
        let len = offsets.end - offsets.start;
        if len == 0 {
            return None;
        }
        let start = self.next.clamp(offsets.start, offsets.end - 1);
        for i in 0..len {
            let offset = offsets.start + (start - offsets.start + i) % len;
            let address = range.nth(offset);
            if self.used.insert(u32::from(address)) {
                self.next = offset + 1;
                return Some(address);
            }
        }
        None
    }

    /// Marks an address found in a pod's status (after a restart of the sim) as in use.
    pub fn mark_used(&mut self, address: Ipv4Addr) {
        self.used.insert(u32::from(address));
    }

    /// Frees an address.
    pub fn release(&mut self, address: Ipv4Addr) {
        self.used.remove(&u32::from(address));
    }

    /// How many addresses are in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().expect(s)
    }

    #[test]
    fn cidrs() {
        assert_eq!(cidr("10.42.3.7/24").to_string(), "10.42.3.0/24");
        assert_eq!(
            cidr("10.64.0.0/10").subnet(24, 0).to_string(),
            "10.64.0.0/24"
        );
        assert_eq!(
            cidr("10.64.0.0/10").subnet(24, 257).to_string(),
            "10.65.1.0/24"
        );
        assert_eq!(
            cidr("10.64.0.0/22").subnet(24, 5).to_string(),
            "10.64.1.0/24",
            "wraps"
        );
        assert_eq!(
            cidr("10.64.0.0/24").subnet(16, 5).to_string(),
            "10.64.0.0/24"
        );
        assert!(cidr("10.42.0.0/16").contains(Ipv4Addr::new(10, 42, 200, 1)));
        assert!(!cidr("10.42.0.0/16").contains(Ipv4Addr::new(10, 43, 0, 1)));
        assert_eq!(cidr("0.0.0.0/0").size(), 1 << 32);
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "x/8"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allocation_skips_reserved_addresses_and_never_reuses_one_in_use() {
        let range = cidr("10.42.7.0/29"); // .2 ..= .6 for pods
        let mut ipam = PodIpam::default();
        let got: Vec<String> = std::iter::from_fn(|| ipam.allocate(range))
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "10.42.7.2",
                "10.42.7.3",
                "10.42.7.4",
                "10.42.7.5",
                "10.42.7.6"
            ]
        );
        assert_eq!(ipam.allocate(range), None, "full");
        ipam.release(Ipv4Addr::new(10, 42, 7, 4));
        assert_eq!(
            ipam.allocate(range),
            Some(Ipv4Addr::new(10, 42, 7, 4)),
            "the only free one"
        );
        assert_eq!(ipam.in_use(), 5);
    }

    #[test]
    fn released_addresses_wait_their_turn() {
        let range = cidr("10.42.0.0/24");
        let mut ipam = PodIpam::default();
        let a = ipam.allocate(range).expect("a");
        let b = ipam.allocate(range).expect("b");
        ipam.release(a);
        let c = ipam.allocate(range).expect("c");
        assert_ne!(c, a, "host-local moves on rather than reusing at once");
        assert_eq!(u32::from(c), u32::from(b) + 1);
    }

    #[test]
    fn addresses_from_another_range_stay_reserved() {
        let mut ipam = PodIpam::default();
        ipam.mark_used(Ipv4Addr::new(10, 42, 1, 2));
        assert_eq!(
            ipam.allocate(cidr("10.42.1.0/24")),
            Some(Ipv4Addr::new(10, 42, 1, 3))
        );
        // A node that moves to a new range starts at its own first pod address.
        let fresh = ipam.allocate(cidr("10.42.9.0/24")).expect("fresh");
        assert!(cidr("10.42.9.0/24").contains(fresh));
    }
}
