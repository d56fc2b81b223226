//! Kubernetes' IP library: `ip(string)`, `isIP(string)`, `ip.isCanonical(string)`, and on an
//! IP `family()`, `isUnspecified()`, `isLoopback()`, `isLinkLocalMulticast()`,
//! `isLinkLocalUnicast()`, `isGlobalUnicast()` and `string(ip)`.
//!
//! As upstream (Go's `netip.ParseAddr`), IPv4 addresses have no leading zeros, and IPv6
//! addresses with a zone (`fe80::1%eth0`) or mapping an IPv4 address (`::ffff:1.2.3.4`) are
//! refused.

use std::net::IpAddr;

use cel::common::types::{CelBool, CelInt, CelString, Kind, Type};
use cel::{DeclarationError, Env, ExecutionError};

use super::{error, opaque_value};

/// Upstream's `net.IP`.
static IP_TYPE: Type = Type::simple_type(Kind::Opaque, "net.IP");

/// An IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ip(pub(crate) IpAddr);

opaque_value!(Ip, &IP_TYPE);

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_overload!(env, fn ip: (CelString) -> Result<Ip>)?;
    cel::add_overload!(env, fn is_ip: (CelString) -> CelBool, name = "isIP")?;
    cel::add_overload!(env, fn is_canonical: (CelString) -> Result<CelBool>,
        name = "ip.isCanonical")?;
    cel::add_member_overload!(env, fn family: (Ip) -> CelInt)?;
    cel::add_member_overload!(env, fn is_unspecified: (Ip) -> CelBool)?;
    cel::add_member_overload!(env, fn is_loopback: (Ip) -> CelBool)?;
    cel::add_member_overload!(env, fn is_link_local_multicast: (Ip) -> CelBool)?;
    cel::add_member_overload!(env, fn is_link_local_unicast: (Ip) -> CelBool)?;
    cel::add_member_overload!(env, fn is_global_unicast: (Ip) -> CelBool)?;
    cel::add_overload!(env, fn ip_to_string: (Ip) -> CelString, name = "string")?;
    Ok(())
}

/// Upstream's `parseIPAddr`.
pub(crate) fn parse_ip(raw: &str) -> Result<IpAddr, String> {
    if let Some((address, _zone)) = raw.split_once('%') {
        if address.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(format!("IP address {raw:?} with zone value is not allowed"));
        }
    }
    let address: IpAddr = raw.parse().map_err(|_| {
        format!("IP Address {raw:?} parse error during conversion from string: ParseAddr({raw:?}): unable to parse IP")
    })?;
    if is_ipv4_mapped(address) {
        return Err(format!("IPv4-mapped IPv6 address {raw:?} is not allowed"));
    }
    Ok(address)
}

/// `::ffff:a.b.c.d`.
pub(crate) fn is_ipv4_mapped(address: IpAddr) -> bool {
    matches!(address, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

fn ip(raw: &CelString<'_>) -> Result<Ip, ExecutionError> {
    parse_ip(raw.inner()).map(Ip).map_err(|e| error("ip", e))
}

fn is_ip(raw: &CelString<'_>) -> CelBool {
    parse_ip(raw.inner()).is_ok().into()
}

fn is_canonical(raw: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let address = parse_ip(raw.inner()).map_err(|e| error("ip.isCanonical", e))?;
    Ok((address.to_string() == raw.inner()).into())
}

fn family(ip: &Ip) -> CelInt {
    match ip.0 {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 6,
    }
    .into()
}

fn is_unspecified(ip: &Ip) -> CelBool {
    ip.0.is_unspecified().into()
}

fn is_loopback(ip: &Ip) -> CelBool {
    ip.0.is_loopback().into()
}

/// Go's `IsLinkLocalMulticast`: 224.0.0.0/24, ff02::/16.
fn is_link_local_multicast(ip: &Ip) -> CelBool {
    match ip.0 {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
    }
    .into()
}

fn is_link_local_unicast(ip: &Ip) -> CelBool {
    link_local_unicast(ip.0).into()
}

/// Go's `IsLinkLocalUnicast`: 169.254.0.0/16, fe80::/10.
fn link_local_unicast(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.octets()[..2] == [169, 254],
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Go's `IsGlobalUnicast`: neither unspecified, broadcast, loopback, multicast nor link-local
/// (private addresses are global unicast).
fn is_global_unicast(ip: &Ip) -> CelBool {
    let address = ip.0;
    let broadcast = matches!(address, IpAddr::V4(v4) if v4.is_broadcast());
    let global = !address.is_unspecified()
        && !broadcast
        && !address.is_loopback()
        && !address.is_multicast()
        && !link_local_unicast(address);
    global.into()
}

fn ip_to_string(ip: &Ip) -> CelString<'static> {
    ip.0.to_string().into()
}

#[cfg(test)]
mod tests {
    use crate::testing::{eval, eval_err};

    #[test]
    fn upstream_examples() {
        let cases = [
            "isIP('127.0.0.1')",
            "isIP('::1')",
            "!isIP('127.0.0.256')",
            "!isIP(':::1')",
            "!isIP('127.0.0.01')",
            "!isIP('::ffff:1.2.3.4')",
            "!isIP('fe80::1%eth0')",
            "ip.isCanonical('127.0.0.1')",
            "ip.isCanonical('2001:db8::abcd')",
            "!ip.isCanonical('2001:DB8::ABCD')",
            "!ip.isCanonical('2001:db8:0:0:0:0:0:abcd')",
            "ip('127.0.0.1').family() == 4",
            "ip('::1').family() == 6",
            "ip('0.0.0.0').isUnspecified()",
            "ip('::').isUnspecified()",
            "!ip('127.0.0.1').isUnspecified()",
            "ip('127.0.0.1').isLoopback()",
            "ip('::1').isLoopback()",
            "!ip('1.2.3.4').isLoopback()",
            "ip('224.0.0.1').isLinkLocalMulticast()",
            "ip('ff02::1').isLinkLocalMulticast()",
            "!ip('224.0.1.1').isLinkLocalMulticast()",
            "ip('169.254.169.254').isLinkLocalUnicast()",
            "ip('fe80::1').isLinkLocalUnicast()",
            "!ip('192.168.0.1').isLinkLocalUnicast()",
            "ip('192.168.0.1').isGlobalUnicast()",
            "ip('2001:db8::abcd').isGlobalUnicast()",
            "!ip('255.255.255.255').isGlobalUnicast()",
            "!ip('ff00::1').isGlobalUnicast()",
            "string(ip('127.0.0.1')) == '127.0.0.1'",
            "string(ip('2001:DB8::ABCD')) == '2001:db8::abcd'",
            "ip('127.0.0.1') == ip('127.0.0.1')",
            "ip('127.0.0.1') != ip('127.0.0.2')",
            "[ip('::1')].map(ip, ip.family()) == [6]",
        ];
        for source in cases {
            assert_eq!(eval(source), Ok(true), "{source}");
        }
    }

    #[test]
    fn invalid_addresses_fail_with_upstreams_errors() {
        let cases = [
            (
                "ip('1.2.3')",
                "IP Address \"1.2.3\" parse error during conversion from string",
            ),
            (
                "ip('::ffff:1.2.3.4')",
                "IPv4-mapped IPv6 address \"::ffff:1.2.3.4\" is not allowed",
            ),
            (
                "ip('fe80::1%eth0')",
                "IP address \"fe80::1%eth0\" with zone value is not allowed",
            ),
            ("ip.isCanonical('x')", "IP Address \"x\" parse error"),
        ];
        for (source, want) in cases {
            let message = eval_err(source);
            assert!(message.contains(want), "{source}: {message}");
        }
    }
}
