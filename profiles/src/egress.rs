//! Egress rules: the job's network allowlist, and its compiler to nftables.
//!
//! A profile's `[network]` section says what network a job gets:
//!
//! * `none` — loopback only. Whatever interfaces the client put into the
//!   job's namespace (Docker's `eth0` on its bridge), every packet that is not
//!   on `lo` is refused.
//! * `allow` — new outbound connections only to the profile's rules (and its
//!   DNS resolver); a job may narrow them with `dev.brig.egress`.
//! * `client` — the client's network as it built it. Filtered only when the
//!   job requests rules (`dev.brig.egress`) or the profile sets
//!   `block_host = true` (then only link-local/metadata and the host's own
//!   addresses are refused).
//!
//! [`plan`] turns the section and the job's request into an [`EgressPlan`]
//! (pure: refusals name the rule and leave nothing behind); [`compile`] turns
//! a plan plus the host's addresses into one nftables JSON document, installed
//! by the shim in one `nft -j -f -` transaction in the job's network namespace
//! before the job starts. The document is typed with the `nftables` crate
//! (MIT/Apache-2.0, the schema of nft's stable JSON API); see docs/egress.md
//! for why this and not a netlink crate.
//!
//! Always refused unless a profile rule names them explicitly (its CIDR lies
//! inside the range, or is the single address): [`ALWAYS_BLOCKED`] (link-local,
//! cloud metadata), the profile's extra `block` ranges, and the host's own
//! addresses as seen from the namespace (known only at installation).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range, SetItem, CT};
use nftables::schema::{
    Chain, Counter, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetFlag, SetType, SetTypeValue, Table,
};
use nftables::stmt::{self, Operator, Reject, RejectType, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::harden::Host;
use crate::landlock::{LandlockPlan, NET_BIND_TCP, NET_CONNECT_TCP};
use crate::model::{NetworkMode, Profile};

/// The annotation a job requests rules with (the job contract, DESIGN.md).
pub const ANNOTATION: &str = "dev.brig.egress";

/// Ranges refused in every filtered namespace unless a profile rule names
/// them: IPv4 link-local (cloud metadata at 169.254.169.254, 169.254.170.2),
/// IPv6 link-local, AWS's IPv6 metadata and EKS Pod Identity addresses,
/// Azure's WireServer (provisioning secrets) and Alibaba Cloud's metadata
/// service, which are not link-local.
pub const ALWAYS_BLOCKED: &[&str] =
    &["169.254.0.0/16", "168.63.129.16/32", "100.100.100.200/32", "fe80::/10", "fd00:ec2::254/128", "fd00:ec2::23/128"];

/// More TCP ports than this in an allowlist are not mirrored into Landlock
/// (one Landlock rule per port); nftables alone enforces them.
pub const MAX_LANDLOCK_PORTS: usize = 1024;

/// Up to this many distinct (protocol, ports) groups in an allowlist get a
/// plain address set and a rule each; more share one concatenated set.
const MAX_PORT_GROUPS: usize = 8;

/// The nftables chain priority of brig's chains (`filter`).
const PRIORITY: i32 = 0;

// ---------------------------------------------------------------- values

/// Why a rule or address does not parse: the input, the part of it that is
/// wrong (when it is not the whole), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub input: String,
    pub part: Option<String>,
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.part {
            Some(part) if *part != self.input => write!(f, "`{}`: `{part}` {}", self.input, self.reason),
            _ => write!(f, "`{}` {}", self.input, self.reason),
        }
    }
}

impl std::error::Error for RuleError {}

fn rule_error(input: &str, reason: impl Into<String>) -> RuleError {
    RuleError { input: input.to_string(), part: None, reason: reason.into() }
}

/// The error about a part, reported for the whole input.
fn within_input(input: &str, e: RuleError) -> RuleError {
    RuleError { input: input.to_string(), part: Some(e.part.unwrap_or(e.input)), reason: e.reason }
}

/// An IPv4 or IPv6 network: an address with no bits set past the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

fn max_len(v4: bool) -> u8 {
    if v4 {
        32
    } else {
        128
    }
}

/// The top `len` bits of a `max`-bit number held in a u128.
fn mask(len: u8, max: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let full = if max == 128 { u128::MAX } else { (1u128 << max) - 1 };
    (u128::MAX << (max - len)) & full
}

fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn bits_addr(v4: bool, bits: u128) -> IpAddr {
    if v4 {
        // INVARIANT: IPv4 values are kept in the low 32 bits.
        IpAddr::V4(Ipv4Addr::from(u32::try_from(bits & u128::from(u32::MAX)).unwrap_or(0)))
    } else {
        IpAddr::V6(Ipv6Addr::from(bits))
    }
}

impl Cidr {
    /// A network; refuses a prefix too long for the family, or host bits set.
    pub fn new(addr: IpAddr, len: u8) -> Result<Cidr, RuleError> {
        let v4 = addr.is_ipv4();
        let max = max_len(v4);
        let show = || format!("{addr}/{len}");
        if len > max {
            return Err(rule_error(&show(), format!("has a prefix longer than {max} bits")));
        }
        let bits = addr_bits(addr);
        let net = bits & mask(len, max);
        if net != bits {
            return Err(rule_error(
                &show(),
                format!("has bits set past the prefix (the network is `{}/{len}`)", bits_addr(v4, net)),
            ));
        }
        Ok(Cidr { addr, len })
    }

    /// The single address `addr/32` or `addr/128`.
    pub fn host(addr: IpAddr) -> Cidr {
        Cidr { addr, len: max_len(addr.is_ipv4()) }
    }

    /// Everything of one family (`0.0.0.0/0` or `::/0`).
    pub fn everything(v4: bool) -> Cidr {
        Cidr { addr: bits_addr(v4, 0), len: 0 }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// A single address (`/32`, `/128`).
    pub fn is_single(&self) -> bool {
        self.len == max_len(self.is_v4())
    }

    /// `other` lies inside `self` (same family).
    pub fn contains(&self, other: &Cidr) -> bool {
        self.is_v4() == other.is_v4()
            && other.len >= self.len
            && addr_bits(other.addr) & mask(self.len, max_len(self.is_v4())) == addr_bits(self.addr)
    }

    pub fn contains_addr(&self, a: IpAddr) -> bool {
        self.contains(&Cidr::host(a))
    }

    /// The two halves one bit longer, unless this is a single address.
    fn halves(&self) -> Option<(Cidr, Cidr)> {
        let v4 = self.is_v4();
        let max = max_len(v4);
        if self.len >= max {
            return None;
        }
        let len = self.len + 1;
        let low = addr_bits(self.addr);
        let high = low | (1u128 << (max - len));
        Some((Cidr { addr: bits_addr(v4, low), len }, Cidr { addr: bits_addr(v4, high), len }))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Cidr {
    type Err = RuleError;

    /// `ADDR/LEN`, or `ADDR` for a single address.
    fn from_str(s: &str) -> Result<Cidr, RuleError> {
        let s = s.trim();
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let a = a.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(a);
        let addr: IpAddr =
            a.parse().map_err(|_| rule_error(s, "is not an IP address or network (names are not rules)"))?;
        let len = match len {
            None => max_len(addr.is_ipv4()),
            Some(l) => l.parse::<u8>().map_err(|_| rule_error(s, "has a prefix length that is not a number"))?,
        };
        Cidr::new(addr, len)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A range of ports, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    /// Every port (what a rule without ports means for TCP and UDP).
    pub const ALL: PortRange = PortRange { lo: 0, hi: u16::MAX };

    pub fn contains(&self, other: &PortRange) -> bool {
        self.lo <= other.lo && other.hi <= self.hi
    }

    pub fn count(&self) -> usize {
        usize::from(self.hi - self.lo) + 1
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl FromStr for PortRange {
    type Err = RuleError;

    /// `PORT` or `PORT-PORT`, ports 1..=65535.
    fn from_str(s: &str) -> Result<PortRange, RuleError> {
        let port = |p: &str| match p.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(rule_error(s, "is not a port or port range (1-65535, e.g. `443` or `8000-8100`)")),
            Ok(n) => Ok(n),
        };
        let (lo, hi) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(s)?, port(s)?),
        };
        if lo > hi {
            return Err(rule_error(s, "is an empty port range"));
        }
        Ok(PortRange { lo, hi })
    }
}

/// The transport protocol of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    /// Without ports: every protocol (ICMP included). With ports: TCP and UDP.
    #[default]
    Any,
}

impl Proto {
    fn covers_tcp(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Any)
    }

    /// The transport protocols a ported rule of this protocol matches.
    fn transports(self) -> &'static [&'static str] {
        match self {
            Proto::Tcp => &["tcp"],
            Proto::Udp => &["udp"],
            Proto::Any => &["tcp", "udp"],
        }
    }
}

impl FromStr for Proto {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Proto, RuleError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "any" => Ok(Proto::Any),
            _ => Err(rule_error(s, "is not a protocol (`tcp`, `udp` or `any`)")),
        }
    }
}

/// One allowlisted destination: a network, optionally ports, a protocol.
///
/// Text form (profiles and `dev.brig.egress`): `CIDR[:PORTS][/PROTO]`, e.g.
/// `10.0.0.5/32:443/tcp`, `10.0.0.53/32:53/udp`, `10.0.0.0/8` (everything to
/// the network), `2001:db8::/32:8000-8100/tcp`, `[2001:db8::1]:443/tcp`. A
/// single address may omit its prefix length. Without a protocol: every
/// protocol without ports, TCP and UDP with ports. Profiles may also write a
/// table: `{ cidr = "10.0.0.0/8", ports = "443", proto = "tcp" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EgressRule {
    pub cidr: Cidr,
    /// `None`: every port.
    pub ports: Option<PortRange>,
    pub proto: Proto,
}

impl EgressRule {
    /// Whether every destination this rule opens is also opened by `ceiling`.
    pub fn within(&self, ceiling: &EgressRule) -> bool {
        // `any` covers both transports (and, without ports, every protocol:
        // the port check below keeps a portless `any` out of a ported one).
        let proto = ceiling.proto == Proto::Any || ceiling.proto == self.proto;
        let ports = match (ceiling.ports, self.ports) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(c), Some(r)) => c.contains(&r),
        };
        ceiling.cidr.contains(&self.cidr) && proto && ports
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cidr)?;
        if let Some(p) = self.ports {
            write!(f, ":{p}")?;
        }
        match self.proto {
            Proto::Tcp => f.write_str("/tcp"),
            Proto::Udp => f.write_str("/udp"),
            Proto::Any => Ok(()),
        }
    }
}

impl FromStr for EgressRule {
    type Err = RuleError;

    fn from_str(input: &str) -> Result<EgressRule, RuleError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(rule_error(input, "is empty"));
        }
        let wrap = |e: RuleError| within_input(s, e);
        // A trailing `/tcp`, `/udp` or `/any` is the protocol.
        let (rest, proto) = match s.rsplit_once('/') {
            Some((r, p)) if p.parse::<Proto>().is_ok() => (r, p.parse::<Proto>().map_err(wrap)?),
            _ => (s, Proto::Any),
        };
        let (cidr_text, ports_text): (String, Option<&str>) = if let Some(inner) = rest.strip_prefix('[') {
            // [v6]/LEN:PORTS or [v6]:PORTS
            let (addr, after) = inner.split_once(']').ok_or_else(|| rule_error(s, "has `[` without `]`"))?;
            let (len, ports) = match after.strip_prefix('/') {
                Some(x) => match x.split_once(':') {
                    Some((l, p)) => (Some(l), Some(p)),
                    None => (Some(x), None),
                },
                None => (None, after.strip_prefix(':')),
            };
            if !after.is_empty() && !after.starts_with('/') && !after.starts_with(':') {
                return Err(rule_error(s, "has text after `]` that is not `/LEN` or `:PORTS`"));
            }
            (len.map(|l| format!("{addr}/{l}")).unwrap_or_else(|| addr.to_string()), ports)
        } else if let Some((addr, after)) = rest.split_once('/') {
            // ADDR/LEN[:PORTS] (IPv4 or IPv6: the prefix length has no colon)
            match after.split_once(':') {
                Some((l, p)) => (format!("{addr}/{l}"), Some(p)),
                None => (rest.to_string(), None),
            }
        } else {
            // ADDR[:PORTS]: an IPv4 address with a port, or a bare address.
            match rest.rsplit_once(':') {
                Some((a, p)) if a.parse::<Ipv4Addr>().is_ok() => (a.to_string(), Some(p)),
                _ => (rest.to_string(), None),
            }
        };
        let cidr: Cidr = cidr_text.parse().map_err(wrap)?;
        let ports = ports_text.map(|p| p.parse::<PortRange>().map_err(wrap)).transpose()?;
        Ok(EgressRule { cidr, ports, proto })
    }
}

impl Serialize for EgressRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a profile may write for a rule: the text form or a table.
#[derive(Deserialize)]
#[serde(untagged)]
enum RuleInput {
    Text(String),
    Table(RuleTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleTable {
    cidr: String,
    #[serde(default)]
    ports: Option<PortsInput>,
    #[serde(default)]
    proto: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortsInput {
    Number(u16),
    Text(String),
}

impl<'de> Deserialize<'de> for EgressRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<EgressRule, D::Error> {
        use serde::de::Error;
        match RuleInput::deserialize(d)? {
            RuleInput::Text(s) => s.parse().map_err(D::Error::custom),
            RuleInput::Table(t) => {
                let cidr: Cidr = t.cidr.parse().map_err(D::Error::custom)?;
                let ports = match t.ports {
                    None => None,
                    Some(PortsInput::Number(n)) => Some(n.to_string().parse::<PortRange>().map_err(D::Error::custom)?),
                    Some(PortsInput::Text(s)) => Some(s.parse::<PortRange>().map_err(D::Error::custom)?),
                };
                let proto = match t.proto {
                    None => Proto::Any,
                    Some(p) => p.parse().map_err(D::Error::custom)?,
                };
                Ok(EgressRule { cidr, ports, proto })
            }
        }
    }
}

/// A port the job may accept new connections on: `8080/tcp`, `5353/udp`,
/// `9000-9010/tcp`, or `8080` (TCP and UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InboundRule {
    pub ports: PortRange,
    pub proto: Proto,
}

impl fmt::Display for InboundRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ports)?;
        match self.proto {
            Proto::Tcp => f.write_str("/tcp"),
            Proto::Udp => f.write_str("/udp"),
            Proto::Any => Ok(()),
        }
    }
}

impl FromStr for InboundRule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<InboundRule, RuleError> {
        let wrap = |e: RuleError| within_input(s, e);
        let (ports, proto) = match s.trim().split_once('/') {
            Some((p, proto)) => (p, proto.parse::<Proto>().map_err(wrap)?),
            None => (s.trim(), Proto::Any),
        };
        Ok(InboundRule { ports: ports.parse().map_err(wrap)?, proto })
    }
}

impl Serialize for InboundRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InboundRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<InboundRule, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The rules in `dev.brig.egress` (comma-separated), or `None` without the
/// annotation. An empty annotation is a request for no destinations at all.
pub fn parse_request(value: &str) -> Result<Vec<EgressRule>, RuleError> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect()
}

/// The job's requested rules, from the spec's annotations (exposed so that the
/// launch policy can see them in its context).
pub fn requested(spec: &Spec) -> Result<Option<Vec<EgressRule>>, Refused> {
    let Some(value) = spec.annotations().as_ref().and_then(|a| a.get(ANNOTATION)) else { return Ok(None) };
    parse_request(value).map(Some).map_err(|e| Refused {
        field: format!("annotations.{ANNOTATION}"),
        reason: format!(
            "{e} (a rule is CIDR[:PORT[-PORT]][/tcp|udp], e.g. `10.0.0.5/32:443/tcp`; rules are separated by commas)"
        ),
    })
}

// ------------------------------------------------------------------ plan

/// What the ruleset enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// `none`: only loopback.
    LoopbackOnly,
    /// New outbound connections only to the allowlist; new inbound only to the
    /// profile's `inbound` ports.
    Allowlist,
    /// `client` with `block_host`: everything but the always-blocked ranges and
    /// the host's addresses.
    Guard,
}

/// The egress part of a job's plan (recorded in the run record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressPlan {
    pub policy: Policy,
    /// Accepted before the always-blocked ranges: profile rules that name a
    /// blocked range or a single address (and requests inside those).
    pub open: Vec<EgressRule>,
    /// Accepted after the always-blocked ranges.
    pub allow: Vec<EgressRule>,
    /// Ports the job may accept new connections on.
    pub inbound: Vec<InboundRule>,
    /// Always-blocked ranges ([`ALWAYS_BLOCKED`] and the profile's `block`).
    pub blocked: Vec<Cidr>,
    /// Also refuse the host's own addresses (resolved at installation).
    pub block_host: bool,
    /// What the job asked for in `dev.brig.egress` (for the launch policy's
    /// context and the record), if it asked.
    pub requested: Option<Vec<EgressRule>>,
    /// How the Landlock TCP rules follow the allowlist (for the record).
    pub landlock: String,
}

/// An ask the profile refuses: the spec field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub field: String,
    pub reason: String,
}

fn refused(field: impl Into<String>, reason: impl Into<String>) -> Refused {
    Refused { field: field.into(), reason: reason.into() }
}

/// Parses [`ALWAYS_BLOCKED`].
pub fn always_blocked() -> Vec<Cidr> {
    // INVARIANT: the constants are valid networks (tested).
    ALWAYS_BLOCKED.iter().filter_map(|c| c.parse().ok()).collect()
}

/// A profile rule that may open a blocked destination: it names a blocked
/// range (lies inside it) or a single address.
fn names_explicitly(rule: &EgressRule, blocked: &[Cidr]) -> bool {
    rule.cidr.is_single() || blocked.iter().any(|b| b.contains(&rule.cidr))
}

fn list(rules: &[EgressRule]) -> String {
    rules.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
}

/// The profile's own rules: `allow` plus the DNS resolver (TCP and UDP 53).
fn profile_rules(profile: &Profile) -> Vec<EgressRule> {
    let n = &profile.network;
    let mut rules = n.allow.clone();
    if let Some(dns) = n.dns {
        rules.push(EgressRule { cidr: Cidr::host(dns), ports: Some(PortRange { lo: 53, hi: 53 }), proto: Proto::Any });
    }
    rules
}

/// Plans the job's egress: `None` when nothing is filtered (`client` without
/// rules or `block_host`).
pub fn plan(profile: &Profile, spec: &Spec, host: &dyn Host) -> Result<Option<EgressPlan>, Refused> {
    let n = &profile.network;
    let asked = requested(spec)?;
    let field = format!("annotations.{ANNOTATION}");
    let mut blocked = always_blocked();
    blocked.extend(n.block.iter().copied());
    let own = profile_rules(profile);
    let dns: Vec<EgressRule> = own.iter().skip(n.allow.len()).copied().collect();

    let policy = match (n.mode, &asked) {
        (NetworkMode::None, Some(rules)) if !rules.is_empty() => {
            return Err(refused(
                field,
                format!(
                    "{} asks for network access, but the profile gives jobs none (`network.mode = \"none\"`)",
                    list(rules)
                ),
            ))
        }
        (NetworkMode::None, _) => Policy::LoopbackOnly,
        (NetworkMode::Allow, _) | (NetworkMode::Client, Some(_)) => Policy::Allowlist,
        (NetworkMode::Client, None) if n.block_host => Policy::Guard,
        (NetworkMode::Client, None) => return Ok(None),
    };

    let mut open = Vec::new();
    let mut allow = Vec::new();
    match (policy, &asked) {
        (Policy::Allowlist, Some(rules)) => {
            // Under `client` without a profile allowlist the job may narrow its
            // network to anything (every destination is already reachable) —
            // except blocked ranges, which only a profile rule can open.
            let unlimited = n.mode == NetworkMode::Client && own.is_empty();
            for r in rules {
                let fits: Vec<&EgressRule> = own.iter().filter(|c| r.within(c)).collect();
                let explicit = fits.iter().any(|c| names_explicitly(c, &blocked));
                let inside_blocked = blocked.iter().find(|b| b.contains(&r.cidr));
                let hint = match inside_blocked {
                    Some(b) if !explicit => {
                        Some(format!("it names `{b}`, which only a profile rule naming it can open"))
                    }
                    _ if fits.is_empty() && !unlimited => Some(if own.is_empty() {
                        "the profile allows no destinations".to_string()
                    } else {
                        format!("the profile allows {}", list(&own))
                    }),
                    _ => None,
                };
                if let Some(hint) = hint {
                    return Err(refused(field, format!("`{r}` is outside the profile's network allowlist ({hint})")));
                }
                if explicit {
                    open.push(*r);
                } else {
                    allow.push(*r);
                }
            }
            // The profile's resolver stays reachable whatever the job narrows.
            for d in &dns {
                if !open.contains(d) {
                    open.push(*d);
                }
            }
        }
        (Policy::Allowlist, None) => {
            for r in &own {
                if names_explicitly(r, &blocked) {
                    open.push(*r);
                } else {
                    allow.push(*r);
                }
            }
        }
        (Policy::Guard, _) => open.extend(own.iter().filter(|r| names_explicitly(r, &blocked))),
        (Policy::LoopbackOnly, _) => {}
    }

    check_namespace(spec, host)?;
    Ok(Some(EgressPlan {
        policy,
        open,
        allow,
        inbound: if policy == Policy::Allowlist { n.inbound.clone() } else { Vec::new() },
        blocked: normalize(blocked),
        block_host: policy != Policy::LoopbackOnly,
        requested: asked,
        landlock: "unchanged".into(),
    }))
}

/// Rules live in the job's network namespace: it must have its own.
fn check_namespace(spec: &Spec, host: &dyn Host) -> Result<(), Refused> {
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    let shared = match namespaces.iter().find(|n| n.typ() == LinuxNamespaceType::Network) {
        None => true,
        Some(ns) => ns.path().as_deref().is_some_and(|p| host.is_host_namespace(LinuxNamespaceType::Network, p)),
    };
    if shared {
        return Err(refused(
            "linux.namespaces",
            "egress rules are enforced in the job's own network namespace, but the job would share the host's",
        ));
    }
    Ok(())
}

/// The job must not be able to change its rules: no `CAP_NET_ADMIN` in any
/// set (an absent capabilities object means root keeps every capability).
/// Called on the hardened spec (client defaults already dropped).
pub fn check_capabilities(spec: &Spec) -> Result<(), Refused> {
    let why = "would let the job change its egress rules (the profile filters its network)";
    let Some(caps) = spec.process().as_ref().and_then(|p| p.capabilities().clone()) else {
        return Err(refused(
            "process.capabilities",
            format!("the spec sets no capabilities, so the job would keep all of root's: `CAP_NET_ADMIN` {why}"),
        ));
    };
    match net_admin_set(&caps) {
        Some(name) => Err(refused(format!("process.capabilities.{name}"), format!("`CAP_NET_ADMIN` {why}"))),
        None => Ok(()),
    }
}

/// The first capability set (by name) holding `CAP_NET_ADMIN`, if any.
pub fn net_admin_set(caps: &LinuxCapabilities) -> Option<&'static str> {
    let sets = [
        ("bounding", caps.bounding()),
        ("effective", caps.effective()),
        ("permitted", caps.permitted()),
        ("inheritable", caps.inheritable()),
        ("ambient", caps.ambient()),
    ];
    sets.into_iter().find(|(_, set)| set.as_ref().is_some_and(|s| s.contains(&Capability::NetAdmin))).map(|(n, _)| n)
}

/// `caps` without `CAP_NET_RAW` in any set, and whether it held it: under
/// egress rules a packet socket (`AF_PACKET`) would send frames below
/// nftables' `inet` hooks, to any address.
pub fn without_raw_network(caps: &LinuxCapabilities) -> (LinuxCapabilities, bool) {
    let mut had = false;
    let mut strip = |set: &Option<Capabilities>| {
        set.clone().map(|mut s| {
            had |= s.remove(&Capability::NetRaw);
            s
        })
    };
    let (b, e, p, i, a) = (
        strip(caps.bounding()),
        strip(caps.effective()),
        strip(caps.permitted()),
        strip(caps.inheritable()),
        strip(caps.ambient()),
    );
    let mut out = caps.clone();
    out.set_bounding(b).set_effective(e).set_permitted(p).set_inheritable(i).set_ambient(a);
    (out, had)
}

/// Mirrors the allowlist's TCP ports into the job's Landlock rules (a second
/// layer: a job that somehow bypassed nftables still cannot connect to other
/// ports). Inbound TCP ports are added to the bind and connect rights.
pub fn derive_landlock(plan: &mut EgressPlan, landlock: &mut LandlockPlan) {
    if plan.policy != Policy::Allowlist {
        return;
    }
    let mut connect: BTreeSet<u16> = BTreeSet::new();
    let mut every: Option<EgressRule> = None;
    let mut total = 0usize;
    for r in plan.open.iter().chain(&plan.allow).filter(|r| r.proto.covers_tcp()) {
        match r.ports {
            None => every = every.or(Some(*r)),
            Some(p) => {
                total += p.count();
                if total > MAX_LANDLOCK_PORTS {
                    every = every.or(Some(*r));
                } else {
                    connect.extend(p.lo..=p.hi);
                }
            }
        }
    }
    let mut bind: BTreeSet<u16> = BTreeSet::new();
    for i in plan.inbound.iter().filter(|i| i.proto.covers_tcp()) {
        if i.ports.count() <= MAX_LANDLOCK_PORTS {
            bind.extend(i.ports.lo..=i.ports.hi);
        }
    }
    // Local clients may reach the job's own listening ports.
    connect.extend(bind.iter().copied());
    if landlock.net_handled & NET_BIND_TCP != 0 {
        for p in &bind {
            *landlock.net_rules.entry(*p).or_insert(0) |= NET_BIND_TCP;
        }
    }
    match every {
        Some(r) => {
            landlock.net_handled &= !NET_CONNECT_TCP;
            for v in landlock.net_rules.values_mut() {
                *v &= !NET_CONNECT_TCP;
            }
            landlock.net_rules.retain(|_, v| *v != 0);
            plan.landlock = format!("tcp connect not restricted by Landlock: `{r}` allows more ports than it mirrors");
        }
        None => {
            landlock.net_handled |= NET_CONNECT_TCP;
            for p in &connect {
                *landlock.net_rules.entry(*p).or_insert(0) |= NET_CONNECT_TCP;
            }
            let mut ports: Vec<u16> =
                landlock.net_rules.iter().filter(|(_, v)| **v & NET_CONNECT_TCP != 0).map(|(p, _)| *p).collect();
            ports.sort_unstable();
            plan.landlock = format!(
                "tcp connect restricted by Landlock to {}",
                if ports.is_empty() {
                    "no ports".to_string()
                } else {
                    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
                }
            );
        }
    }
}

// --------------------------------------------------------------- compile

/// The nftables table a container's rules live in (per container, so that
/// containers sharing a namespace, as in a Kubernetes pod, do not collide).
pub fn table_name(container_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(container_id.as_bytes());
    format!("brig_{}", &hex::encode(digest)[..16])
}

/// The named counters, one per kind of refusal.
pub const COUNTER_BLOCKED: &str = "blocked";
pub const COUNTER_REFUSED: &str = "refused";
pub const COUNTER_INBOUND: &str = "inbound";

/// Drops networks contained in another (interval sets refuse overlaps).
fn normalize(mut cidrs: Vec<Cidr>) -> Vec<Cidr> {
    cidrs.sort_by_key(|c| (c.is_v4(), c.len, *c));
    cidrs.dedup();
    let mut out: Vec<Cidr> = Vec::new();
    for c in cidrs {
        if !out.iter().any(|o| o.contains(&c)) {
            out.push(c);
        }
    }
    out.sort();
    out
}

/// Sorted, non-overlapping, non-adjacent port ranges covering `ranges`.
fn merge_ports(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort();
    let mut out: Vec<PortRange> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if u32::from(r.lo) <= u32::from(last.hi) + 1 => last.hi = last.hi.max(r.hi),
            _ => out.push(r),
        }
    }
    out
}

/// Disjoint (network, ports) boxes covering exactly the union of `boxes`
/// (one family, one protocol): nftables' concatenated interval sets refuse
/// overlapping elements, and allowlists overlap (`10.0.0.0/8:443` and
/// `10.1.0.0/16:400-500`). Networks nest or are disjoint, so splitting a
/// network in halves along the paths to the networks inside it gives
/// disjoint pieces, each with the union of the ports of every box around it.
fn disjoint(v4: bool, boxes: &[(Cidr, PortRange)]) -> Vec<(Cidr, PortRange)> {
    fn walk(node: Cidr, inherited: Vec<PortRange>, inside: Vec<(Cidr, PortRange)>, out: &mut Vec<(Cidr, PortRange)>) {
        let Some((low, high)) = node.halves().filter(|_| !inside.is_empty()) else {
            out.extend(inherited.into_iter().map(|p| (node, p)));
            return;
        };
        for half in [low, high] {
            let mut ports = inherited.clone();
            let mut deeper = Vec::new();
            for (c, p) in inside.iter().filter(|(c, _)| half.contains(c)) {
                if *c == half {
                    ports.push(*p);
                } else {
                    deeper.push((*c, *p));
                }
            }
            if !ports.is_empty() || !deeper.is_empty() {
                walk(half, merge_ports(ports), deeper, out);
            }
        }
    }
    let root = Cidr::everything(v4);
    let mut top = Vec::new();
    let mut inside = Vec::new();
    for (c, p) in boxes.iter().filter(|(c, _)| c.is_v4() == v4) {
        if *c == root {
            top.push(*p);
        } else {
            inside.push((*c, *p));
        }
    }
    let mut out = Vec::new();
    if !top.is_empty() || !inside.is_empty() {
        walk(root, merge_ports(top), inside, &mut out);
    }
    out
}

fn s(v: impl Into<String>) -> Cow<'static, str> {
    Cow::Owned(v.into())
}

fn matches(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(stmt::Match { left, right, op: Operator::EQ })
}

fn payload(protocol: &str, field: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
        protocol: s(protocol),
        field: s(field),
    })))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn text(v: impl Into<String>) -> Expression<'static> {
    Expression::String(s(v))
}

fn net(c: &Cidr) -> Expression<'static> {
    if c.is_single() {
        text(c.addr().to_string())
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(text(c.addr().to_string())),
            len: u32::from(c.prefix_len()),
        }))
    }
}

fn ports(p: &PortRange) -> Expression<'static> {
    if p.lo == p.hi {
        Expression::Number(u32::from(p.lo))
    } else {
        Expression::Range(Box::new(Range {
            range: [Expression::Number(u32::from(p.lo)), Expression::Number(u32::from(p.hi))],
        }))
    }
}

fn anon_set(items: &[&str]) -> Expression<'static> {
    Expression::Named(NamedExpression::Set(items.iter().map(|i| SetItem::Element(text(*i))).collect()))
}

fn daddr(v4: bool) -> Expression<'static> {
    payload(if v4 { "ip" } else { "ip6" }, "daddr")
}

/// The statements refusing a packet, counted: TCP gets a reset (the job's
/// `connect` fails at once with `ECONNREFUSED`, one count per attempt), the
/// rest an ICMP "administratively prohibited".
fn refuse_rules(table: &str, chain: &str, prefix: &[Statement<'static>], counter: &str) -> Vec<NfListObject<'static>> {
    let tcp = {
        let mut e = prefix.to_vec();
        e.push(matches(meta(MetaKey::L4proto), text("tcp")));
        e.push(Statement::Counter(stmt::Counter::Named(s(counter))));
        e.push(Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None))));
        e
    };
    let other = {
        let mut e = prefix.to_vec();
        e.push(Statement::Counter(stmt::Counter::Named(s(counter))));
        e.push(Statement::Reject(Some(Reject::new(Some(RejectType::ICMPX), Some(RejectCode::AdminProhibited)))));
        e
    };
    vec![rule(table, chain, tcp), rule(table, chain, other)]
}

fn rule(table: &str, chain: &str, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: s(table),
        chain: s(chain),
        expr: Cow::Owned(expr),
        handle: None,
        index: None,
        comment: None,
    })
}

fn accept() -> Statement<'static> {
    Statement::Accept(None)
}

/// The match statements selecting one rule's destinations.
fn rule_matches(r: &EgressRule) -> Vec<Vec<Statement<'static>>> {
    let v4 = r.cidr.is_v4();
    let dst = matches(daddr(v4), net(&r.cidr));
    match (r.ports, r.proto) {
        (None, Proto::Any) => vec![vec![dst]],
        (p, proto) => {
            let range = p.unwrap_or(PortRange::ALL);
            proto
                .transports()
                .iter()
                .map(|t| {
                    let mut e = vec![dst.clone(), matches(meta(MetaKey::L4proto), text(*t))];
                    if p.is_some() {
                        e.push(matches(payload("th", "dport"), ports(&range)));
                    }
                    e
                })
                .collect()
        }
    }
}

fn ct_state(states: &[&str]) -> Statement<'static> {
    Statement::Match(stmt::Match {
        left: Expression::Named(NamedExpression::CT(CT { key: s("state"), family: None, dir: None })),
        right: Expression::List(states.iter().map(|x| text(*x)).collect()),
        op: Operator::IN,
    })
}

/// Neighbour discovery: IPv6 does not work without it (link-local, hop limit
/// 255: it cannot reach anything past the link).
fn nd_accept() -> Vec<Statement<'static>> {
    vec![
        matches(meta(MetaKey::L4proto), text("ipv6-icmp")),
        matches(
            payload("icmpv6", "type"),
            anon_set(&["nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert"]),
        ),
        accept(),
    ]
}

fn set_object(
    table: &str,
    name: &str,
    set_type: SetTypeValue<'static>,
    elem: Vec<Expression<'static>>,
) -> NfListObject<'static> {
    NfListObject::Set(Box::new(Set {
        family: NfFamily::INet,
        table: s(table),
        name: s(name),
        handle: None,
        set_type,
        policy: None,
        flags: Some(HashSet::from([SetFlag::Interval])),
        elem: Some(Cow::Owned(elem)),
        timeout: None,
        gc_interval: None,
        size: None,
        comment: None,
    }))
}

/// Addresses that are never "the host's" for the blocking rules.
fn is_host_candidate(a: &IpAddr) -> bool {
    !(a.is_loopback() || a.is_unspecified() || a.is_multicast())
}

/// How big the compiled ruleset is (for the record and the benchmark).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesetSize {
    pub rules: usize,
    pub set_elements: usize,
}

/// The whole ruleset for one job, as one nftables JSON document (one atomic
/// transaction): table `inet <table>` with output and input chains.
///
/// `host` are the host's addresses as seen from the job's namespace (its
/// gateways, the host's interface addresses); refused when `plan.block_host`.
pub fn compile(plan: &EgressPlan, table: &str, host: &[IpAddr]) -> (Nftables<'static>, RulesetSize) {
    let mut objs: Vec<NfListObject<'static>> = Vec::new();
    let mut size = RulesetSize::default();
    objs.push(NfListObject::Table(Table { family: NfFamily::INet, name: s(table), handle: None }));
    let counters: &[&str] = match plan.policy {
        Policy::Guard => &[COUNTER_BLOCKED],
        Policy::LoopbackOnly => &[COUNTER_REFUSED, COUNTER_INBOUND],
        Policy::Allowlist => &[COUNTER_BLOCKED, COUNTER_REFUSED, COUNTER_INBOUND],
    };
    for c in counters {
        objs.push(NfListObject::Counter(Counter {
            family: NfFamily::INet,
            table: s(table),
            name: s(*c),
            handle: None,
            packets: Some(0),
            bytes: Some(0),
        }));
    }
    let chain = |name: &str, hook: NfHook, policy: NfChainPolicy| {
        NfListObject::Chain(Chain {
            family: NfFamily::INet,
            table: s(table),
            name: s(name),
            newname: None,
            handle: None,
            _type: Some(NfChainType::Filter),
            hook: Some(hook),
            prio: Some(PRIORITY),
            dev: None,
            policy: Some(policy),
        })
    };
    let out_policy = if plan.policy == Policy::Guard { NfChainPolicy::Accept } else { NfChainPolicy::Drop };
    objs.push(chain("output", NfHook::Output, out_policy));
    // Established traffic (the bulk of the packets) leaves at the first rule.
    let established = || rule(table, "output", vec![ct_state(&["established", "related"]), accept()]);
    let mut rules: Vec<NfListObject<'static>> = Vec::new();
    if plan.policy == Policy::Allowlist {
        rules.push(established());
    }
    rules.push(rule(table, "output", vec![matches(meta(MetaKey::Oif), text("lo")), accept()]));

    if plan.policy == Policy::LoopbackOnly {
        rules.extend(refuse_rules(table, "output", &[], COUNTER_REFUSED));
    } else {
        rules.push(rule(table, "output", nd_accept()));
        // Explicit openings of blocked destinations come first.
        for r in &plan.open {
            for mut e in rule_matches(r) {
                e.push(accept());
                rules.push(rule(table, "output", e));
            }
        }
        // The always-blocked ranges and the host's addresses.
        let mut blocked = plan.blocked.clone();
        if plan.block_host {
            blocked.extend(host.iter().filter(|a| is_host_candidate(a)).map(|a| Cidr::host(*a)));
        }
        let blocked = normalize(blocked);
        for v4 in [true, false] {
            let elems: Vec<Expression<'static>> = blocked.iter().filter(|c| c.is_v4() == v4).map(net).collect();
            if elems.is_empty() {
                continue;
            }
            let name = if v4 { "blocked4" } else { "blocked6" };
            size.set_elements += elems.len();
            let typ = if v4 { SetType::Ipv4Addr } else { SetType::Ipv6Addr };
            objs.push(set_object(table, name, SetTypeValue::Single(typ), elems));
            rules.extend(refuse_rules(
                table,
                "output",
                &[matches(daddr(v4), text(format!("@{name}")))],
                COUNTER_BLOCKED,
            ));
        }
        if plan.policy == Policy::Allowlist {
            // The allowlist, as interval sets: one lookup per new connection
            // whatever the number of rules.
            for v4 in [true, false] {
                let fam = if v4 { "4" } else { "6" };
                let hosts: Vec<Cidr> = normalize(
                    plan.allow
                        .iter()
                        .filter(|r| r.cidr.is_v4() == v4 && r.ports.is_none() && r.proto == Proto::Any)
                        .map(|r| r.cidr)
                        .collect(),
                );
                if !hosts.is_empty() {
                    let name = format!("hosts{fam}");
                    size.set_elements += hosts.len();
                    let typ = if v4 { SetType::Ipv4Addr } else { SetType::Ipv6Addr };
                    objs.push(set_object(table, &name, SetTypeValue::Single(typ), hosts.iter().map(net).collect()));
                    rules.push(rule(table, "output", vec![matches(daddr(v4), text(format!("@{name}"))), accept()]));
                }
                // Ported rules, grouped by (transport, ports): with few
                // groups, one address interval set and one rule per group
                // (nftables loads plain interval sets faster than
                // concatenations); with many, one concatenated set.
                let mut groups: BTreeMap<(&str, PortRange), Vec<Cidr>> = BTreeMap::new();
                for r in
                    plan.allow.iter().filter(|r| r.cidr.is_v4() == v4 && !(r.ports.is_none() && r.proto == Proto::Any))
                {
                    for t in r.proto.transports() {
                        groups.entry((*t, r.ports.unwrap_or(PortRange::ALL))).or_default().push(r.cidr);
                    }
                }
                let typ = if v4 { SetType::Ipv4Addr } else { SetType::Ipv6Addr };
                if groups.len() <= MAX_PORT_GROUPS {
                    for (i, ((t, range), cidrs)) in groups.into_iter().enumerate() {
                        let name = format!("allow{fam}_{i}");
                        let cidrs = normalize(cidrs);
                        size.set_elements += cidrs.len();
                        objs.push(set_object(table, &name, SetTypeValue::Single(typ), cidrs.iter().map(net).collect()));
                        let mut e = vec![
                            matches(daddr(v4), text(format!("@{name}"))),
                            matches(meta(MetaKey::L4proto), text(t)),
                        ];
                        if range != PortRange::ALL {
                            e.push(matches(payload("th", "dport"), ports(&range)));
                        }
                        e.push(accept());
                        rules.push(rule(table, "output", e));
                    }
                } else {
                    let mut elems = Vec::new();
                    for t in ["tcp", "udp"] {
                        let boxes: Vec<(Cidr, PortRange)> = groups
                            .iter()
                            .filter(|((gt, _), _)| *gt == t)
                            .flat_map(|((_, range), cidrs)| cidrs.iter().map(move |c| (*c, *range)))
                            .collect();
                        for (c, p) in disjoint(v4, &boxes) {
                            elems.push(Expression::Named(NamedExpression::Concat(vec![net(&c), text(t), ports(&p)])));
                        }
                    }
                    let name = format!("allow{fam}");
                    size.set_elements += elems.len();
                    objs.push(set_object(
                        table,
                        &name,
                        SetTypeValue::Concatenated(Cow::Owned(vec![typ, SetType::InetProto, SetType::InetService])),
                        elems,
                    ));
                    let key = Expression::Named(NamedExpression::Concat(vec![
                        daddr(v4),
                        meta(MetaKey::L4proto),
                        payload("th", "dport"),
                    ]));
                    rules.push(rule(table, "output", vec![matches(key, text(format!("@{name}"))), accept()]));
                }
            }
            rules.extend(refuse_rules(table, "output", &[], COUNTER_REFUSED));
        }
    }

    if plan.policy != Policy::Guard {
        objs.push(chain("input", NfHook::Input, NfChainPolicy::Drop));
        if plan.policy == Policy::Allowlist {
            rules.push(rule(table, "input", vec![ct_state(&["established", "related"]), accept()]));
        }
        rules.push(rule(table, "input", vec![matches(meta(MetaKey::Iif), text("lo")), accept()]));
        if plan.policy == Policy::Allowlist {
            rules.push(rule(table, "input", nd_accept()));
            for i in &plan.inbound {
                for t in i.proto.transports() {
                    rules.push(rule(
                        table,
                        "input",
                        vec![
                            matches(meta(MetaKey::L4proto), text(*t)),
                            matches(payload("th", "dport"), ports(&i.ports)),
                            accept(),
                        ],
                    ));
                }
            }
        }
        rules.push(rule(
            table,
            "input",
            vec![Statement::Counter(stmt::Counter::Named(s(COUNTER_INBOUND))), Statement::Drop(None)],
        ));
    }
    size.rules = rules.len();
    objs.extend(rules);
    let objects: Vec<NfObject<'static>> = objs.into_iter().map(|o| NfObject::CmdObject(NfCmd::Add(o))).collect();
    (Nftables { objects: Cow::Owned(objects) }, size)
}

/// The document removing a container's table (and so its rules).
pub fn delete_table(table: &str) -> Nftables<'static> {
    Nftables {
        objects: Cow::Owned(vec![NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(Table {
            family: NfFamily::INet,
            name: s(table),
            handle: None,
        })))]),
    }
}

/// One counter's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

/// What the job's ruleset refused, read at `delete` into the run's outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressCounts {
    /// Packets to always-blocked destinations (link-local, metadata, the host).
    pub blocked: Count,
    /// New outbound connection attempts not on the allowlist (TCP: one packet
    /// per `connect`, answered with a reset).
    pub refused: Count,
    /// Inbound packets dropped (new connections to ports the profile does not
    /// open).
    pub inbound: Count,
}

/// Reads the named counters from `nft -j list table inet <table>` output.
/// Values are read as u64 (the schema types them narrower).
pub fn parse_counters(json: &str) -> Result<EgressCounts, String> {
    let doc: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("nft printed invalid JSON: {e}"))?;
    let items = doc.get("nftables").and_then(|v| v.as_array()).ok_or("nft printed no `nftables` array")?;
    let mut found: BTreeMap<String, Count> = BTreeMap::new();
    for item in items {
        let Some(c) = item.get("counter") else { continue };
        let name = c.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let n = |k: &str| c.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        found.insert(name, Count { packets: n("packets"), bytes: n("bytes") });
    }
    let get = |k: &str| found.get(k).copied().unwrap_or_default();
    Ok(EgressCounts { blocked: get(COUNTER_BLOCKED), refused: get(COUNTER_REFUSED), inbound: get(COUNTER_INBOUND) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn r(s: &str) -> EgressRule {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn rules_parse_and_print_canonically() {
        for (input, canonical) in [
            ("10.0.0.5/32:443/tcp", "10.0.0.5/32:443/tcp"),
            ("10.0.0.53/32:53/udp", "10.0.0.53/32:53/udp"),
            ("10.0.0.5:443/tcp", "10.0.0.5/32:443/tcp"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.0.0.0/8/any", "10.0.0.0/8"),
            ("0.0.0.0/0:80", "0.0.0.0/0:80"),
            ("10.0.0.0/8:8000-8100/TCP", "10.0.0.0/8:8000-8100/tcp"),
            ("2001:db8::/32:443/tcp", "2001:db8::/32:443/tcp"),
            ("[2001:db8::1]:443/tcp", "2001:db8::1/128:443/tcp"),
            ("[2001:db8::]/32:53", "2001:db8::/32:53"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("fd00:ec2::254/128/udp", "fd00:ec2::254/128/udp"),
            (" 192.0.2.1/32:22/tcp ", "192.0.2.1/32:22/tcp"),
        ] {
            let rule = r(input);
            assert_eq!(rule.to_string(), canonical, "{input}");
            assert_eq!(r(canonical), rule, "{canonical} round trip");
        }
    }

    #[test]
    fn bad_rules_are_named() {
        for (input, why) in [
            ("10.0.0.5/24:443/tcp", "bits set past the prefix"),
            ("10.0.0.0/33", "longer than 32"),
            ("example.com:443", "not an IP address"),
            ("10.0.0.5/32:0/tcp", "not a port"),
            ("10.0.0.5/32:99999/tcp", "not a port"),
            ("10.0.0.5/32:90-80/tcp", "empty port range"),
            ("10.0.0.5/32:443/sctp", "not a port"),
            ("", "empty"),
            ("[2001:db8::1", "without `]`"),
        ] {
            let e = input.parse::<EgressRule>().unwrap_err().to_string();
            assert!(e.contains(why), "{input}: {e}");
        }
        let e = parse_request("10.0.0.5/32:443/tcp, nope").unwrap_err().to_string();
        assert!(e.contains("`nope`"), "{e}");
    }

    #[test]
    fn tables_in_profiles() {
        #[derive(Deserialize)]
        struct T {
            allow: Vec<EgressRule>,
        }
        let t: T = toml::from_str(
            "allow = [\"10.0.0.0/8:443/tcp\", { cidr = \"192.0.2.0/24\", ports = 53, proto = \"udp\" }, { cidr = \"198.51.100.7\", ports = \"8000-8100\" }]",
        )
        .unwrap();
        let shown: Vec<String> = t.allow.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8:443/tcp", "192.0.2.0/24:53/udp", "198.51.100.7/32:8000-8100"]);
        assert!(toml::from_str::<T>("allow = [{ cidr = \"10.0.0.0/8\", port = 1 }]").is_err());
    }

    #[test]
    fn containment() {
        let ceiling = r("10.0.0.0/8:443/tcp");
        assert!(r("10.1.2.3/32:443/tcp").within(&ceiling));
        assert!(!r("10.1.2.3/32:443/udp").within(&ceiling));
        assert!(!r("10.1.2.3/32:443").within(&ceiling), "tcp+udp is wider than tcp");
        assert!(!r("10.1.2.3/32/tcp").within(&ceiling), "every port is wider than 443");
        assert!(!r("11.0.0.1/32:443/tcp").within(&ceiling));
        assert!(!r("2001:db8::1/128:443/tcp").within(&ceiling));
        let ranged = r("10.0.0.0/8:8000-8100");
        assert!(r("10.0.0.1:8050-8060/udp").within(&ranged));
        assert!(r("10.0.0.1:8050/tcp").within(&ranged));
        assert!(!r("10.0.0.1:7999-8050/tcp").within(&ranged));
        assert!(!r("10.0.0.1").within(&ranged), "every protocol is wider than tcp/udp on ports");
        let everything = r("0.0.0.0/0");
        assert!(r("10.0.0.1").within(&everything) && r("10.0.0.1:1/udp").within(&everything));
        assert!(c("169.254.0.0/16").contains(&c("169.254.169.254/32")));
        assert!(!c("169.254.0.0/16").contains(&c("169.0.0.0/8")));
        assert!(c("::/0").contains(&c("fe80::1")) && !c("::/0").contains(&c("10.0.0.1")));
    }

    #[test]
    fn constants_parse() {
        assert_eq!(always_blocked().len(), ALWAYS_BLOCKED.len());
    }

    #[test]
    fn disjoint_covers_exactly_the_union() {
        let boxes = vec![
            (c("10.0.0.0/8"), PortRange { lo: 400, hi: 500 }),
            (c("10.1.0.0/16"), PortRange { lo: 450, hi: 600 }),
            (c("10.1.2.3/32"), PortRange::ALL),
            (c("10.1.0.0/16"), PortRange { lo: 601, hi: 700 }),
            (c("192.0.2.0/24"), PortRange { lo: 53, hi: 53 }),
        ];
        let out = disjoint(true, &boxes);
        // No two pieces overlap.
        for (i, (a, pa)) in out.iter().enumerate() {
            for (b, pb) in &out[i + 1..] {
                let nets = a.contains(b) || b.contains(a);
                let ports = pa.lo <= pb.hi && pb.lo <= pa.hi;
                assert!(!(nets && ports), "{a}:{pa} overlaps {b}:{pb}");
            }
        }
        // Same membership as the boxes, on sample points.
        let covered = |set: &[(Cidr, PortRange)], a: &str, p: u16| {
            let ip: IpAddr = a.parse().unwrap();
            set.iter().any(|(c, r)| c.contains_addr(ip) && r.lo <= p && p <= r.hi)
        };
        for a in ["10.0.0.1", "10.1.0.1", "10.1.2.3", "10.1.2.4", "10.255.0.1", "192.0.2.9", "192.0.3.1", "11.0.0.1"] {
            for p in [1, 53, 399, 400, 449, 450, 500, 501, 600, 601, 700, 701, 65535] {
                assert_eq!(covered(&out, a, p), covered(&boxes, a, p), "{a}:{p}");
            }
        }
        assert!(disjoint(false, &boxes).is_empty());
        let everything = disjoint(true, &[(c("0.0.0.0/0"), PortRange { lo: 80, hi: 80 })]);
        assert_eq!(everything, vec![(c("0.0.0.0/0"), PortRange { lo: 80, hi: 80 })]);
    }

    #[test]
    fn ports_merge() {
        let m = merge_ports(vec![
            PortRange { lo: 10, hi: 20 },
            PortRange { lo: 21, hi: 30 },
            PortRange { lo: 5, hi: 6 },
            PortRange { lo: 15, hi: 16 },
            PortRange { lo: 65535, hi: 65535 },
            PortRange::ALL,
        ]);
        assert_eq!(m, vec![PortRange::ALL]);
        let m = merge_ports(vec![PortRange { lo: 10, hi: 20 }, PortRange { lo: 22, hi: 30 }]);
        assert_eq!(m.len(), 2);
    }

    // ------------------------------------------------------------ planning

    struct FakeHost;
    impl Host for FakeHost {
        fn is_host_namespace(&self, _: LinuxNamespaceType, path: &Path) -> bool {
            path == Path::new("/proc/1/ns/net")
        }
        fn canonical(&self, p: &Path) -> Option<PathBuf> {
            Some(p.to_path_buf())
        }
        fn is_dockerd_process_binary(&self, _: &Path) -> bool {
            false
        }
    }

    fn profile(network: &str) -> Profile {
        crate::parse(&format!("name = \"t\"\n[network]\n{network}\n"), "t").unwrap()
    }

    fn spec(egress: Option<&str>, netns: Option<&str>) -> Spec {
        let mut ns = vec![serde_json::json!({"type": "pid"}), serde_json::json!({"type": "mount"})];
        match netns {
            Some("") => {}
            Some(p) => ns.push(serde_json::json!({"type": "network", "path": p})),
            None => ns.push(serde_json::json!({"type": "network"})),
        }
        let mut v = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}},
            "root": {"path": "/"},
            "linux": {"namespaces": ns},
        });
        if let Some(e) = egress {
            v["annotations"] = serde_json::json!({ ANNOTATION: e });
        }
        serde_json::from_value(v).unwrap()
    }

    fn plan_of(network: &str, egress: Option<&str>) -> Result<Option<EgressPlan>, Refused> {
        plan(&profile(network), &spec(egress, None), &FakeHost)
    }

    #[test]
    fn modes() {
        let p = plan_of("mode = \"none\"", None).unwrap().unwrap();
        assert_eq!(p.policy, Policy::LoopbackOnly);
        assert!(plan_of("mode = \"client\"", None).unwrap().is_none(), "client without rules is the client's network");
        let p = plan_of("mode = \"client\"\nblock_host = true", None).unwrap().unwrap();
        assert_eq!(p.policy, Policy::Guard);
        let p = plan_of(
            "mode = \"allow\"\nallow = [\"10.0.0.0/8:443/tcp\", \"169.254.169.254/32:80/tcp\"]\ndns = \"10.0.0.53\"",
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.policy, Policy::Allowlist);
        let show = |v: &[EgressRule]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(show(&p.allow), ["10.0.0.0/8:443/tcp"]);
        assert_eq!(show(&p.open), ["169.254.169.254/32:80/tcp", "10.0.0.53/32:53"]);
        assert!(p.blocked.contains(&c("169.254.0.0/16")) && p.blocked.contains(&c("fe80::/10")));
    }

    #[test]
    fn requests_must_lie_inside_the_profile() {
        let net = "mode = \"allow\"\nallow = [\"10.0.0.0/8:443/tcp\", \"192.0.2.53/32:53/udp\"]";
        let p = plan_of(net, Some("10.0.0.5/32:443/tcp,192.0.2.53/32:53/udp")).unwrap().unwrap();
        assert_eq!(p.allow.len() + p.open.len(), 2);
        assert_eq!(p.requested.as_ref().map(Vec::len), Some(2));
        let e = plan_of(net, Some("10.0.0.5/32:443/tcp,10.0.0.5/32:80/tcp")).unwrap_err();
        assert_eq!(e.field, "annotations.dev.brig.egress");
        assert!(
            e.reason.contains("`10.0.0.5/32:80/tcp` is outside") && e.reason.contains("10.0.0.0/8:443/tcp"),
            "{}",
            e.reason
        );
        let e = plan_of("mode = \"none\"", Some("10.0.0.5/32:443/tcp")).unwrap_err();
        assert!(e.reason.contains("`10.0.0.5/32:443/tcp`") && e.reason.contains("none"), "{}", e.reason);
        let e = plan_of(net, Some("garbage")).unwrap_err();
        assert!(e.reason.contains("`garbage`"), "{}", e.reason);
        // An empty request: no destinations at all (but the resolver).
        let p = plan_of("mode = \"allow\"\nallow = [\"10.0.0.0/8\"]\ndns = \"10.0.0.53\"", Some("")).unwrap().unwrap();
        assert!(p.allow.is_empty() && p.open.len() == 1);
    }

    #[test]
    fn blocked_ranges_open_only_by_name_in_the_profile() {
        // A broad profile rule does not let a job ask for the metadata address.
        let e =
            plan_of("mode = \"allow\"\nallow = [\"0.0.0.0/0:80/tcp\"]", Some("169.254.169.254/32:80/tcp")).unwrap_err();
        assert!(e.reason.contains("169.254.0.0/16"), "{}", e.reason);
        // Under `client` any narrowing is fine, but not to a blocked range.
        assert!(plan_of("mode = \"client\"", Some("192.0.2.1/32:80/tcp")).unwrap().is_some());
        assert!(plan_of("mode = \"client\"", Some("169.254.169.254/32:80/tcp")).is_err());
        // So are the metadata and provisioning services outside link-local.
        for (ask, range) in [
            ("168.63.129.16/32:32526/tcp", "168.63.129.16/32"),
            ("100.100.100.200/32:80/tcp", "100.100.100.200/32"),
            ("fd00:ec2::23/128:80/tcp", "fd00:ec2::23/128"),
        ] {
            let e = plan_of("mode = \"client\"", Some(ask)).unwrap_err();
            assert!(e.reason.contains(range), "{ask}: {}", e.reason);
        }
        // A profile rule naming it makes the request an explicit opening.
        let p = plan_of("mode = \"allow\"\nallow = [\"169.254.169.254/32:80/tcp\"]", Some("169.254.169.254/32:80/tcp"))
            .unwrap()
            .unwrap();
        assert_eq!(p.open, vec![r("169.254.169.254/32:80/tcp")]);
        // A broad rule goes after the blocked ranges.
        let p = plan_of("mode = \"allow\"\nallow = [\"0.0.0.0/0:80/tcp\"]", None).unwrap().unwrap();
        assert!(p.open.is_empty() && p.allow == vec![r("0.0.0.0/0:80/tcp")]);
    }

    #[test]
    fn filtering_needs_the_jobs_own_namespace_and_no_net_admin() {
        let prof = profile("mode = \"none\"");
        let e = plan(&prof, &spec(None, Some("")), &FakeHost).unwrap_err();
        assert_eq!(e.field, "linux.namespaces");
        let e = plan(&prof, &spec(None, Some("/proc/1/ns/net")), &FakeHost).unwrap_err();
        assert_eq!(e.field, "linux.namespaces");
        assert!(plan(&prof, &spec(None, Some("/run/netns/job")), &FakeHost).unwrap().is_some());
        // `client` without filtering does not care.
        assert!(plan(&profile("mode = \"client\""), &spec(None, Some("")), &FakeHost).unwrap().is_none());

        let mut s = spec(None, None);
        check_capabilities(&s).unwrap();
        let process = s.process_mut().as_mut().unwrap();
        let mut caps = process.capabilities().clone().unwrap();
        caps.set_ambient(Some([Capability::NetAdmin].into_iter().collect()));
        process.set_capabilities(Some(caps));
        let e = check_capabilities(&s).unwrap_err();
        assert_eq!(e.field, "process.capabilities.ambient");
        s.process_mut().as_mut().unwrap().set_capabilities(None);
        assert_eq!(check_capabilities(&s).unwrap_err().field, "process.capabilities");
    }

    #[test]
    fn landlock_follows_the_allowlist() {
        let section: crate::model::LandlockSection =
            toml::from_str("mode = \"required\"\ntcp_connect = []\ntcp_bind = []").unwrap();
        let spec = spec(None, None);
        let base = LandlockPlan::compile(&section, &spec, &[]);
        let mut p = plan_of(
            "mode = \"allow\"\nallow = [\"10.0.0.0/8:443/tcp\", \"10.0.0.0/8:8000-8002\", \"10.0.0.0/8:53/udp\"]\ninbound = [\"9000/tcp\"]",
            None,
        )
        .unwrap()
        .unwrap();
        let mut ll = base.clone();
        derive_landlock(&mut p, &mut ll);
        let connect: Vec<u16> =
            ll.net_rules.iter().filter(|(_, v)| **v & NET_CONNECT_TCP != 0).map(|(k, _)| *k).collect();
        assert_eq!(connect, [443, 8000, 8001, 8002, 9000]);
        assert_eq!(ll.net_rules.get(&9000).copied().unwrap_or(0) & NET_BIND_TCP, NET_BIND_TCP);
        assert!(p.landlock.contains("443,8000,8001,8002,9000"), "{}", p.landlock);
        // Every port: Landlock cannot mirror it, nftables alone enforces.
        let mut p = plan_of("mode = \"allow\"\nallow = [\"10.0.0.0/8/tcp\"]", None).unwrap().unwrap();
        let mut ll = base.clone();
        derive_landlock(&mut p, &mut ll);
        assert_eq!(ll.net_handled & NET_CONNECT_TCP, 0);
        assert!(p.landlock.contains("not restricted"), "{}", p.landlock);
        // `none` keeps the profile's choice.
        let mut p = plan_of("mode = \"none\"", None).unwrap().unwrap();
        let mut ll = base.clone();
        derive_landlock(&mut p, &mut ll);
        assert_eq!(ll, base);
    }

    // ------------------------------------------------------------- compile

    fn json(doc: &Nftables<'_>) -> String {
        serde_json::to_string(doc).unwrap()
    }

    #[test]
    fn loopback_only_ruleset() {
        let p = plan_of("mode = \"none\"", None).unwrap().unwrap();
        let (doc, size) = compile(&p, "brig_t", &[]);
        let text = json(&doc);
        assert!(text.contains(r#""policy":"drop""#) && text.contains(r#""right":"lo""#), "{text}");
        assert!(text.contains(r#""counter":"refused""#) && text.contains(r#""counter":"inbound""#), "{text}");
        assert!(!text.contains("blocked4"), "{text}");
        assert_eq!(size.set_elements, 0);
    }

    #[test]
    fn allowlist_ruleset_blocks_metadata_and_host_before_broad_rules() {
        let p = plan_of(
            "mode = \"allow\"\nallow = [\"0.0.0.0/0:80/tcp\", \"10.0.0.0/8:443/tcp\", \"10.1.0.0/16:443\"]",
            None,
        )
        .unwrap()
        .unwrap();
        let host: Vec<IpAddr> =
            vec!["172.17.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap(), "2001:db8::5".parse().unwrap()];
        let (doc, size) = compile(&p, "brig_t", &host);
        let text = json(&doc);
        let blocked_at = text.find("@blocked4").unwrap();
        let allow_at = text.find("@allow4").unwrap();
        assert!(blocked_at < allow_at, "blocked ranges come before the allowlist");
        assert!(text.contains("172.17.0.1") && text.contains("2001:db8::5") && !text.contains("127.0.0.1"), "{text}");
        assert!(text.contains(r#""addr":"169.254.0.0","len":16"#), "{text}");
        assert!(text.contains(r#""type":"tcp reset""#) && text.contains("admin-prohibited"), "{text}");
        assert!(size.set_elements >= 4, "{size:?}");
    }

    #[test]
    fn hundred_rules_become_set_elements_not_rules() {
        let allow: Vec<String> = (0..100).map(|i| format!("\"10.{i}.0.0/16:443/tcp\"")).collect();
        let p = plan_of(&format!("mode = \"allow\"\nallow = [{}]", allow.join(",")), None).unwrap().unwrap();
        let (_, size) = compile(&p, "brig_t", &[]);
        assert!(size.rules < 20, "{size:?}");
        assert!(size.set_elements >= 100, "{size:?}");
    }

    #[test]
    fn many_port_groups_share_one_concatenated_set() {
        let allow: Vec<String> = (0..20).map(|i| format!("\"10.{i}.0.0/16:{}/tcp\"", 8000 + i)).collect();
        let p = plan_of(&format!("mode = \"allow\"\nallow = [{}, \"10.0.0.0/8:8005\"]", allow.join(",")), None)
            .unwrap()
            .unwrap();
        let (doc, size) = compile(&p, "brig_t", &[]);
        let text = json(&doc);
        assert!(text.contains(r#""name":"allow4""#) && text.contains(r#""concat""#), "{text}");
        assert!(!text.contains("allow4_0"), "{text}");
        assert!(size.rules < 20 && size.set_elements >= 21, "{size:?}");
        // Few groups: a plain set per group.
        let p = plan_of(
            "mode = \"allow\"\nallow = [\"10.0.0.0/8:443/tcp\", \"10.1.0.0/16:443/tcp\", \"192.0.2.0/24:53\"]",
            None,
        )
        .unwrap()
        .unwrap();
        let (doc, _) = compile(&p, "brig_t", &[]);
        let text = json(&doc);
        assert!(text.contains("allow4_0") && text.contains("allow4_2") && !text.contains("allow4_3"), "{text}");
        assert!(!text.contains(r#""addr":"10.1.0.0""#), "nested networks of one group are merged: {text}");
    }

    #[test]
    fn counters_are_read_as_u64() {
        let out = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"table": {"family": "inet", "name": "brig_t"}},
            {"counter": {"family": "inet", "name": "blocked", "table": "brig_t", "packets": 3, "bytes": 180}},
            {"counter": {"family": "inet", "name": "refused", "table": "brig_t", "packets": 5000000000, "bytes": 99999999999}}]}"#;
        let c = parse_counters(out).unwrap();
        assert_eq!(c.blocked, Count { packets: 3, bytes: 180 });
        assert_eq!(c.refused.packets, 5_000_000_000);
        assert_eq!(c.inbound, Count::default());
        assert!(parse_counters("nope").is_err());
    }

    #[test]
    fn table_names_are_short_and_stable() {
        assert_eq!(table_name("abc"), table_name("abc"));
        assert_ne!(table_name("abc"), table_name("abd"));
        assert_eq!(table_name(&"x".repeat(1024)).len(), 21);
    }
}
