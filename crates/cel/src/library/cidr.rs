//! Kubernetes' CIDR library: `cidr(string)`, `isCIDR(string)`, and on a CIDR
//! `containsIP(ip|string)`, `containsCIDR(cidr|string)`, `ip()`, `masked()`,
//! `prefixLength()` and `string(cidr)`.
//!
//! As upstream (Go's `netip.ParsePrefix`), the address keeps the bits past the prefix
//! (`cidr('10.0.0.1/8').ip()` is `10.0.0.1`; `masked()` clears them), and IPv6 zones and
//! IPv4-mapped IPv6 addresses are refused.

use std::net::IpAddr;

use cel::common::types::{CelBool, CelInt, CelString, Kind, Type};
use cel::{DeclarationError, Env, ExecutionError};

use super::ip::{is_ipv4_mapped, parse_ip, Ip};
use super::{error, opaque_value};

/// Upstream's `net.CIDR`.
static CIDR_TYPE: Type = Type::simple_type(Kind::Opaque, "net.CIDR");

/// An IP prefix: an address and how many of its leading bits are the network's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    address: IpAddr,
    bits: u8,
}

opaque_value!(Cidr, &CIDR_TYPE);

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_overload!(env, fn cidr: (CelString) -> Result<Cidr>)?;
    cel::add_overload!(env, fn is_cidr: (CelString) -> CelBool, name = "isCIDR")?;
    cel::add_member_overload!(env, fn contains_ip: (Cidr, Ip) -> CelBool, name = "containsIP")?;
    cel::add_member_overload!(env, fn contains_ip_string: (Cidr, CelString) -> Result<CelBool>,
        name = "containsIP")?;
    cel::add_member_overload!(env, fn contains_cidr: (Cidr, Cidr) -> CelBool, name = "containsCIDR")?;
    cel::add_member_overload!(env, fn contains_cidr_string: (Cidr, CelString) -> Result<CelBool>,
        name = "containsCIDR")?;
    cel::add_member_overload!(env, fn ip: (Cidr) -> Ip)?;
    cel::add_member_overload!(env, fn masked: (Cidr) -> Cidr)?;
    cel::add_member_overload!(env, fn prefix_length: (Cidr) -> CelInt)?;
    cel::add_overload!(env, fn cidr_to_string: (Cidr) -> CelString, name = "string")?;
    Ok(())
}

/// Upstream's `parseCIDR`, with the message `cidr()` gives.
fn parse_cidr(raw: &str) -> Result<Cidr, String> {
    let wrapped = |cause: &str| {
        format!(
            "network address parse error during conversion from string: network address parse error during conversion from string: netip.ParsePrefix({raw:?}): {cause}"
        )
    };
    let (address, bits) = raw.split_once('/').ok_or_else(|| wrapped("no '/'"))?;
    if address.contains('%') {
        return Err(wrapped("IPv6 zones cannot be present in a prefix"));
    }
    let address: IpAddr = address
        .parse()
        .map_err(|_| wrapped(&format!("ParseAddr({address:?}): unable to parse IP")))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    // Go's netip: decimal digits, no sign, no leading zero.
    let valid_digits = !bits.is_empty()
        && bits.len() <= 3
        && bits.bytes().all(|b| b.is_ascii_digit())
        && !(bits.len() > 1 && bits.starts_with('0'));
    let bits = match bits.parse::<u8>() {
        Ok(bits) if valid_digits && bits <= max => bits,
        _ => return Err(wrapped(&format!("bad bits after slash: {bits:?}"))),
    };
    if is_ipv4_mapped(address) {
        return Err(format!(
            "network address parse error during conversion from string: IPv4-mapped IPv6 address {raw:?} is not allowed"
        ));
    }
    Ok(Cidr { address, bits })
}

impl Cidr {
    /// The address with the bits past the prefix cleared.
    fn network(&self) -> IpAddr {
        mask(self.address, self.bits)
    }

    /// Go's `Prefix.Contains`: an address of the same family in the network.
    fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.address.is_ipv4() && mask(address, self.bits) == self.network()
    }
}

fn mask(address: IpAddr, bits: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

fn cidr(raw: &CelString<'_>) -> Result<Cidr, ExecutionError> {
    parse_cidr(raw.inner()).map_err(|e| error("cidr", e))
}

fn is_cidr(raw: &CelString<'_>) -> CelBool {
    parse_cidr(raw.inner()).is_ok().into()
}

fn contains_ip(cidr: &Cidr, ip: &Ip) -> CelBool {
    cidr.contains(ip.0).into()
}

fn contains_ip_string(cidr: &Cidr, raw: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let address = parse_ip(raw.inner()).map_err(|e| error("containsIP", e))?;
    Ok(cidr.contains(address).into())
}

/// Upstream: the prefixes overlap and `other`'s is at least as long.
fn contains_cidr(cidr: &Cidr, other: &Cidr) -> CelBool {
    (cidr.bits <= other.bits && cidr.contains(other.address)).into()
}

fn contains_cidr_string(cidr: &Cidr, raw: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let other = parse_cidr(raw.inner()).map_err(|e| error("containsCIDR", e))?;
    Ok(contains_cidr(cidr, &other))
}

fn ip(cidr: &Cidr) -> Ip {
    Ip(cidr.address)
}

fn masked(cidr: &Cidr) -> Cidr {
    Cidr {
        address: cidr.network(),
        bits: cidr.bits,
    }
}

fn prefix_length(cidr: &Cidr) -> CelInt {
    i64::from(cidr.bits).into()
}

fn cidr_to_string(cidr: &Cidr) -> CelString<'static> {
    format!("{}/{}", cidr.address, cidr.bits).into()
}

#[cfg(test)]
mod tests {
    use crate::testing::{eval, eval_err};

    #[test]
    fn upstream_examples() {
        let cases = [
            "isCIDR('192.168.0.0/24')",
            "isCIDR('::1/128')",
            "!isCIDR('192.168.0.0/33')",
            "!isCIDR('192.168.0.0')",
            "!isCIDR('::ffff:1.2.3.4/96')",
            "!isCIDR('192.168.0.0/024')",
            "cidr('192.168.0.0/24').containsIP(ip('192.168.0.1'))",
            "cidr('192.168.0.0/24').containsIP('192.168.0.1')",
            "!cidr('192.168.0.0/24').containsIP(ip('192.168.1.1'))",
            "!cidr('192.168.0.0/24').containsIP('::1')",
            "cidr('2001:db8::/32').containsIP('2001:db8::1')",
            "cidr('192.168.0.0/24').containsCIDR(cidr('192.168.0.0/25'))",
            "cidr('192.168.0.0/24').containsCIDR('192.168.0.0/24')",
            "!cidr('192.168.0.0/24').containsCIDR('192.168.0.0/23')",
            "!cidr('192.168.0.0/24').containsCIDR('10.0.0.0/25')",
            "cidr('0.0.0.0/0').containsIP('8.8.8.8')",
            "cidr('192.168.0.0/24').ip() == ip('192.168.0.0')",
            "cidr('192.168.0.1/24').ip() == ip('192.168.0.1')",
            "cidr('192.168.0.1/24').masked() == cidr('192.168.0.0/24')",
            "string(cidr('192.168.0.1/24').masked()) == '192.168.0.0/24'",
            "cidr('::1/128').prefixLength() == 128",
            "cidr('192.168.0.0/16').prefixLength() == 16",
            "string(cidr('2001:DB8::/32')) == '2001:db8::/32'",
            "cidr('192.168.0.0/24') != cidr('192.168.0.0/25')",
        ];
        for source in cases {
            assert_eq!(eval(source), Ok(true), "{source}");
        }
    }

    #[test]
    fn invalid_prefixes_fail_with_upstreams_errors() {
        let cases = [
            ("cidr('192.168.0.0')", "network address parse error during conversion from string: network address parse error during conversion from string: netip.ParsePrefix(\"192.168.0.0\"): no '/'"),
            ("cidr('192.168.0.0/33')", "bad bits after slash: \"33\""),
            ("cidr('::ffff:1.2.3.4/96')", "IPv4-mapped IPv6 address \"::ffff:1.2.3.4/96\" is not allowed"),
            ("cidr('fe80::%eth0/64')", "IPv6 zones cannot be present in a prefix"),
            ("cidr('10.0.0.0/8').containsIP('x')", "IP Address \"x\" parse error"),
        ];
        for (source, want) in cases {
            let message = eval_err(source);
            assert!(message.contains(want), "{source}: {message}");
        }
    }
}
