//! The nftables vocabulary the proxy speaks: statements, rules and the commands of one
//! transaction, each built once and rendered two ways — as libnftables JSON, which is what is
//! applied (through the `nftables` crate, one `nft -j -f -` transaction per sync), and as nft
//! text, which is what people and golden tests read. The JSON is assembled here rather than with
//! the crate's typed schema because that schema cannot declare a verdict map
//! (`type … : verdict`), the structure the proxy's lookups rest on.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

/// The table the proxy owns (family `ip`).
pub const TABLE: &str = "ferry-proxy";

/// The masquerade mark bit (kube-proxy's 0x4000).
pub const MASQ_MARK: u32 = 0x4000;

/// One statement of a rule, in both forms.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    /// libnftables JSON.
    pub json: Value,
    /// nft syntax.
    pub text: String,
}

/// A rule: statements evaluated in order.
pub type Rule = Vec<Stmt>;

fn stmt(json: Value, text: String) -> Stmt {
    Stmt { json, text }
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn prefix(addr: Ipv4Addr, len: u8) -> Value {
    json!({"prefix": {"addr": addr.to_string(), "len": len}})
}

/// A transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// `tcp`, `udp`, `sctp`: as nft names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// The protocol of a Service port (`TCP` when not given); `None` for an unknown one.
    pub fn parse(name: Option<&str>) -> Option<Protocol> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// `ip saddr <addr>`.
pub fn saddr(addr: Ipv4Addr) -> Stmt {
    stmt(
        json!({"match": {"op": "==", "left": payload("ip", "saddr"), "right": addr.to_string()}}),
        format!("ip saddr {addr}"),
    )
}

/// `ip saddr <addr/len>` or, negated, `ip saddr != <addr/len>`.
pub fn saddr_in(addr: Ipv4Addr, len: u8, negated: bool) -> Stmt {
    let (op, shown) = if negated { ("!=", "!= ") } else { ("==", "") };
    stmt(
        json!({"match": {"op": op, "left": payload("ip", "saddr"), "right": prefix(addr, len)}}),
        format!("ip saddr {shown}{addr}/{len}"),
    )
}

/// `ip daddr <addr/len>`.
pub fn daddr_in(addr: Ipv4Addr, len: u8) -> Stmt {
    stmt(
        json!({"match": {"op": "==", "left": payload("ip", "daddr"), "right": prefix(addr, len)}}),
        format!("ip daddr {addr}/{len}"),
    )
}

/// `ip daddr != 127.0.0.0/8`: not loopback.
pub fn daddr_not_loopback() -> Stmt {
    stmt(
        json!({"match": {"op": "!=", "left": payload("ip", "daddr"), "right": prefix(Ipv4Addr::new(127, 0, 0, 0), 8)}}),
        "ip daddr != 127.0.0.0/8".into(),
    )
}

/// `ip saddr @<set>` / `ip daddr @<set>`.
pub fn addr_in_set(field: &str, set: &str) -> Stmt {
    stmt(
        json!({"match": {"op": "==", "left": payload("ip", field), "right": format!("@{set}")}}),
        format!("ip {field} @{set}"),
    )
}

/// `meta l4proto <proto>`.
pub fn l4proto(protocol: Protocol) -> Stmt {
    let p = protocol.as_str();
    stmt(
        json!({"match": {"op": "==", "left": meta("l4proto"), "right": p}}),
        format!("meta l4proto {p}"),
    )
}

/// `ct state new`.
pub fn ct_new() -> Stmt {
    stmt(
        json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}),
        "ct state new".into(),
    )
}

/// `fib <saddr|daddr> type local`: the address is one of this machine's.
pub fn fib_local(field: &str) -> Stmt {
    stmt(
        json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": [field]}}, "right": "local"}}),
        format!("fib {field} type local"),
    )
}

/// `meta mark & 0x4000 == 0`.
pub fn unmarked() -> Stmt {
    stmt(
        json!({"match": {"op": "==", "left": {"&": [meta("mark"), MASQ_MARK]}, "right": 0}}),
        format!("meta mark & {MASQ_MARK:#010x} == 0x00000000"),
    )
}

/// `meta mark set meta mark | 0x4000` (`or`) or `^ 0x4000` (`xor`).
pub fn set_mark(xor: bool) -> Stmt {
    let (op, shown) = if xor { ("^", "^") } else { ("|", "|") };
    stmt(
        json!({"mangle": {"key": meta("mark"), "value": {op: [meta("mark"), MASQ_MARK]}}}),
        format!("meta mark set meta mark {shown} {MASQ_MARK:#010x}"),
    )
}

/// `masquerade fully-random`.
pub fn masquerade() -> Stmt {
    stmt(
        json!({"masquerade": {"flags": ["fully-random"]}}),
        "masquerade fully-random".into(),
    )
}

/// `dnat to <addr>:<port>`.
pub fn dnat(addr: Ipv4Addr, port: u16) -> Stmt {
    stmt(
        json!({"dnat": {"addr": addr.to_string(), "port": port}}),
        format!("dnat to {addr}:{port}"),
    )
}

/// `update @<set> { ip saddr }`: remembers the client (session affinity).
pub fn remember_client(set: &str) -> Stmt {
    stmt(
        json!({"set": {"op": "update", "elem": payload("ip", "saddr"), "set": format!("@{set}")}}),
        format!("update @{set} {{ ip saddr }}"),
    )
}

/// `jump <chain>`.
pub fn jump(chain: &str) -> Stmt {
    stmt(json!({"jump": {"target": chain}}), format!("jump {chain}"))
}

/// `goto <chain>`.
pub fn goto(chain: &str) -> Stmt {
    stmt(json!({"goto": {"target": chain}}), format!("goto {chain}"))
}

/// `return`.
pub fn ret() -> Stmt {
    stmt(json!({"return": null}), "return".into())
}

/// `drop`.
pub fn drop() -> Stmt {
    stmt(json!({"drop": null}), "drop".into())
}

/// `reject` (ICMP port unreachable: the client sees "connection refused").
pub fn reject() -> Stmt {
    stmt(json!({"reject": null}), "reject".into())
}

fn address_port() -> (Value, &'static str) {
    (
        json!({"concat": [payload("ip", "daddr"), meta("l4proto"), payload("th", "dport")]}),
        "ip daddr . meta l4proto . th dport",
    )
}

fn port() -> (Value, &'static str) {
    (
        json!({"concat": [meta("l4proto"), payload("th", "dport")]}),
        "meta l4proto . th dport",
    )
}

/// `ip daddr . meta l4proto . th dport vmap @<map>`.
pub fn lookup_address_port(map: &str) -> Stmt {
    let (key, shown) = address_port();
    stmt(
        json!({"vmap": {"key": key, "data": format!("@{map}")}}),
        format!("{shown} vmap @{map}"),
    )
}

/// `meta l4proto . th dport vmap @<map>`.
pub fn lookup_port(map: &str) -> Stmt {
    let (key, shown) = port();
    stmt(
        json!({"vmap": {"key": key, "data": format!("@{map}")}}),
        format!("{shown} vmap @{map}"),
    )
}

/// `dnat to <key> map @<addresses> : <key> map @<ports>`: the endpoint the packet's
/// destination (`ip daddr . meta l4proto . th dport`, or with `by_port` only the protocol and
/// port, for node ports) maps to in a pair of maps.
pub fn dnat_from_maps(by_port: bool, addresses: &str, ports: &str) -> Stmt {
    let (key, shown) = if by_port { port() } else { address_port() };
    stmt(
        json!({"dnat": {
            "addr": {"map": {"key": key, "data": format!("@{addresses}")}},
            "port": {"map": {"key": key, "data": format!("@{ports}")}},
        }}),
        format!("dnat to {shown} map @{addresses} : {shown} map @{ports}"),
    )
}

/// `ct status dnat`: the connection's destination was translated.
pub fn ct_dnat() -> Stmt {
    stmt(
        json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
        "ct status dnat".into(),
    )
}

/// `ip saddr . ip daddr @<set>`.
pub fn addresses_in_set(set: &str) -> Stmt {
    stmt(
        json!({"match": {"op": "==", "left": {"concat": [payload("ip", "saddr"), payload("ip", "daddr")]}, "right": format!("@{set}")}}),
        format!("ip saddr . ip daddr @{set}"),
    )
}

/// `numgen random mod N vmap { 0 : goto a, 1 : goto b, … }`: one of `chains` at random.
pub fn pick_one(chains: &[String]) -> Stmt {
    let pairs: Vec<Value> = chains
        .iter()
        .enumerate()
        .map(|(i, c)| json!([i, {"goto": {"target": c}}]))
        .collect();
    let shown: Vec<String> = chains
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{i} : goto {c}"))
        .collect();
    stmt(
        json!({"vmap": {"key": {"numgen": {"mode": "random", "mod": chains.len(), "offset": 0}}, "data": {"set": pairs}}}),
        format!(
            "numgen random mod {} vmap {{ {} }}",
            chains.len(),
            shown.join(", ")
        ),
    )
}

/// The key of a map or set element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// `address . protocol . port`.
    AddressPort(Ipv4Addr, Protocol, u16),
    /// `protocol . port`.
    Port(Protocol, u16),
    /// An address (a set element).
    Address(Ipv4Addr),
    /// `address . address` (a set element).
    Pair(Ipv4Addr, Ipv4Addr),
}

impl Key {
    fn json(&self) -> Value {
        match self {
            Key::AddressPort(a, p, n) => json!({"concat": [a.to_string(), p.as_str(), n]}),
            Key::Port(p, n) => json!({"concat": [p.as_str(), n]}),
            Key::Address(a) => json!(a.to_string()),
            Key::Pair(a, b) => json!({"concat": [a.to_string(), b.to_string()]}),
        }
    }

    fn text(&self) -> String {
        match self {
            Key::AddressPort(a, p, n) => format!("{a} . {} . {n}", p.as_str()),
            Key::Port(p, n) => format!("{} . {n}", p.as_str()),
            Key::Address(a) => a.to_string(),
            Key::Pair(a, b) => format!("{a} . {b}"),
        }
    }
}

/// What a map element maps its key to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Data {
    /// `goto <chain>` (a verdict map).
    Goto(String),
    /// `drop` (a verdict map).
    Drop,
    /// An address.
    Address(Ipv4Addr),
    /// A port.
    Port(u16),
}

impl Data {
    fn json(&self) -> Value {
        match self {
            Data::Goto(chain) => json!({"goto": {"target": chain}}),
            Data::Drop => json!({"drop": null}),
            Data::Address(a) => json!(a.to_string()),
            Data::Port(p) => json!(p),
        }
    }

    fn text(&self) -> String {
        match self {
            Data::Goto(chain) => format!("goto {chain}"),
            Data::Drop => "drop".into(),
            Data::Address(a) => a.to_string(),
            Data::Port(p) => p.to_string(),
        }
    }
}

/// A base chain's hook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hook {
    /// `nat` or `filter`.
    pub kind: &'static str,
    /// `prerouting`, `input`, `forward`, `output`, `postrouting`.
    pub hook: &'static str,
    /// Priority (dstnat is -100, srcnat 100).
    pub priority: i32,
}

/// A named set or map of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct SetDecl {
    /// Its name.
    pub name: String,
    /// Key types (`ipv4_addr`, `inet_proto`, `inet_service`).
    pub key: &'static [&'static str],
    /// A map's data type (`verdict`, `ipv4_addr`, `inet_service`); `None` for a set.
    pub data: Option<&'static str>,
    /// For a dynamic set with timeouts (session affinity): the timeout in seconds.
    pub timeout: Option<u32>,
}

/// One command of a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `add table`.
    AddTable,
    /// `delete table`.
    DeleteTable,
    /// `add chain` (a base chain with its hook).
    AddChain(String, Option<Hook>),
    /// `flush chain`.
    FlushChain(String),
    /// `delete chain`.
    DeleteChain(String),
    /// `add rule`.
    AddRule(String, Rule),
    /// `add map` or `add set`.
    AddSet(SetDecl),
    /// `delete map` / `delete set`.
    DeleteSet(SetDecl),
    /// `add element`: keys, for a map with what each maps to.
    AddElements(String, Vec<(Key, Option<Data>)>),
    /// `delete element` (by its key).
    DeleteElement(String, Key),
}

fn set_kind(decl: &SetDecl) -> &'static str {
    if decl.data.is_some() {
        "map"
    } else {
        "set"
    }
}

impl Command {
    /// The libnftables JSON command.
    pub fn json(&self) -> Value {
        let table = |extra: Value| {
            let mut object = json!({"family": "ip", "table": TABLE});
            if let (Some(o), Some(e)) = (object.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            object
        };
        let elements = |set: &str, elements: &[(Key, Option<Data>)]| {
            let elem: Vec<Value> = elements
                .iter()
                .map(|(key, data)| match data {
                    Some(d) => json!([key.json(), d.json()]),
                    None => key.json(),
                })
                .collect();
            json!({"element": table(json!({"name": set, "elem": elem}))})
        };
        match self {
            Command::AddTable => json!({"add": {"table": {"family": "ip", "name": TABLE}}}),
            Command::DeleteTable => json!({"delete": {"table": {"family": "ip", "name": TABLE}}}),
            Command::AddChain(name, hook) => {
                let mut chain = table(json!({"name": name}));
                if let (Some(h), Some(c)) = (hook, chain.as_object_mut()) {
                    c.insert("type".into(), json!(h.kind));
                    c.insert("hook".into(), json!(h.hook));
                    c.insert("prio".into(), json!(h.priority));
                    c.insert("policy".into(), json!("accept"));
                }
                json!({"add": {"chain": chain}})
            }
            Command::FlushChain(name) => json!({"flush": {"chain": table(json!({"name": name}))}}),
            Command::DeleteChain(name) => {
                json!({"delete": {"chain": table(json!({"name": name}))}})
            }
            Command::AddRule(chain, rule) => {
                let expr: Vec<Value> = rule.iter().map(|s| s.json.clone()).collect();
                json!({"add": {"rule": table(json!({"chain": chain, "expr": expr}))}})
            }
            Command::AddSet(decl) => {
                let key = if decl.key.len() == 1 {
                    json!(decl.key[0])
                } else {
                    json!(decl.key)
                };
                let mut object = table(json!({"name": decl.name, "type": key}));
                if let Some(o) = object.as_object_mut() {
                    if let Some(data) = decl.data {
                        o.insert("map".into(), json!(data));
                    }
                    if let Some(timeout) = decl.timeout {
                        o.insert("flags".into(), json!(["timeout"]));
                        o.insert("timeout".into(), json!(timeout));
                    }
                }
                json!({"add": {set_kind(decl): object}})
            }
            Command::DeleteSet(decl) => {
                json!({"delete": {set_kind(decl): table(json!({"name": decl.name}))}})
            }
            Command::AddElements(set, added) => json!({"add": elements(set, added)}),
            Command::DeleteElement(set, key) => {
                json!({"delete": elements(set, &[(key.clone(), None)])})
            }
        }
    }

    /// The nft command.
    pub fn text(&self) -> String {
        let t = format!("ip {TABLE}");
        let element = |key: &Key, data: &Option<Data>| match data {
            Some(d) => format!("{} : {}", key.text(), d.text()),
            None => key.text(),
        };
        match self {
            Command::AddTable => format!("add table {t}"),
            Command::DeleteTable => format!("delete table {t}"),
            Command::AddChain(name, None) => format!("add chain {t} {name}"),
            Command::AddChain(name, Some(h)) => format!(
                "add chain {t} {name} {{ type {} hook {} priority {}; policy accept; }}",
                h.kind, h.hook, h.priority
            ),
            Command::FlushChain(name) => format!("flush chain {t} {name}"),
            Command::DeleteChain(name) => format!("delete chain {t} {name}"),
            Command::AddRule(chain, rule) => {
                let shown: Vec<&str> = rule.iter().map(|s| s.text.as_str()).collect();
                format!("add rule {t} {chain} {}", shown.join(" "))
            }
            Command::AddSet(decl) => {
                let mut body = format!("type {}", decl.key.join(" . "));
                if let Some(data) = decl.data {
                    let _ = write!(body, " : {data}");
                }
                if let Some(timeout) = decl.timeout {
                    let _ = write!(body, "; flags timeout; timeout {timeout}s");
                }
                format!("add {} {t} {} {{ {body}; }}", set_kind(decl), decl.name)
            }
            Command::DeleteSet(decl) => format!("delete {} {t} {}", set_kind(decl), decl.name),
            Command::AddElements(set, added) => {
                let shown: Vec<String> = added.iter().map(|(k, d)| element(k, d)).collect();
                format!("add element {t} {set} {{ {} }}", shown.join(", "))
            }
            Command::DeleteElement(set, key) => {
                format!("delete element {t} {set} {{ {} }}", element(key, &None))
            }
        }
    }
}

/// One transaction: applied whole or not at all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transaction {
    /// Its commands, in order.
    pub commands: Vec<Command>,
}

impl Transaction {
    /// The libnftables JSON document (`{"nftables": [...]}`).
    pub fn json(&self) -> Value {
        let commands: Vec<Value> = self.commands.iter().map(Command::json).collect();
        json!({"nftables": commands})
    }

    /// The nft script, one command per line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.commands {
            out.push_str(&c.text());
            out.push('\n');
        }
        out
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

/// Why a transaction was not applied.
#[derive(Debug, thiserror::Error)]
#[error("applying the nftables transaction: {0}")]
pub struct ApplyError(#[from] nftables::helper::NftablesError);

/// How `nft` is run: the program and arguments before `-j -f -` (`ip netns exec <ns> nft` in
/// tests).
#[derive(Debug, Clone)]
pub struct Nft {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
}

impl Default for Nft {
    fn default() -> Nft {
        Nft {
            program: "nft".into(),
            args: Vec::new(),
        }
    }
}

impl Nft {
    /// Applies a transaction: one `nft -j -f -`, all or nothing.
    pub async fn apply(&self, transaction: &Transaction) -> Result<(), ApplyError> {
        let payload = transaction.json().to_string();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        nftables::helper::apply_ruleset_raw_async(&payload, Some(self.program.as_str()), args)
            .await?;
        Ok(())
    }

    /// [`Nft::apply`], waiting (outside a runtime: `ferry agent --cleanup`).
    pub fn apply_blocking(&self, transaction: &Transaction) -> Result<(), ApplyError> {
        let payload = transaction.json().to_string();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        nftables::helper::apply_ruleset_raw(&payload, Some(self.program.as_str()), args)?;
        Ok(())
    }
}
