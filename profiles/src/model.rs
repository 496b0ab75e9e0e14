//! The profile model: what a TOML profile file may say.
//!
//! Every section is optional; an absent section means "honour the spec" for
//! that aspect (which is how `permissive` reproduces runc's behaviour). Unknown
//! fields are errors, so a typo in a profile is never silently ignored.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::egress::{Cidr, EgressRule, InboundRule};
use crate::units::{ByteSize, Duration};

/// A hardening profile.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The profile's name (`restricted`, `standard`, `permissive`, or a custom one).
    pub name: String,
    /// One line for `brig profile list`.
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub process: ProcessSection,
    #[serde(default)]
    pub rootfs: RootfsSection,
    #[serde(default)]
    pub paths: PathsSection,
    /// Resource limits, by name without the `RLIMIT_` prefix, lower-case
    /// (`nofile`, `nproc`, `core`, ...). Soft and hard are both set to the value;
    /// a spec asking for more is tightened to it.
    #[serde(default)]
    pub rlimits: BTreeMap<String, u64>,
    #[serde(default)]
    pub cgroup: CgroupSection,
    #[serde(default)]
    pub timeout: TimeoutSection,
    /// brig's own seccomp filter, stacked on top of any filter in the spec.
    #[serde(default)]
    pub seccomp: Option<SeccompSection>,
    #[serde(default)]
    pub landlock: Option<LandlockSection>,
    #[serde(default)]
    pub ceilings: Ceilings,
    #[serde(default)]
    pub network: NetworkSection,
    #[serde(default)]
    pub user_namespace: UserNamespaceSection,
}

/// Whether the job's root is a host root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserNamespaceSection {
    #[serde(default)]
    pub mode: UserNamespaceMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserNamespaceMode {
    /// Honour the spec (runc's behaviour).
    #[default]
    Spec,
    /// Every job runs in its own user namespace, its IDs mapped to a range of
    /// host IDs allocated for that run and disjoint from every other live
    /// job's; the rootfs is idmapped. A spec's own user namespace is kept if
    /// its mappings do not include host root.
    PerJob,
}

/// Process attributes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSection {
    /// Force `no_new_privs` on (true), or honour the spec (absent).
    pub no_new_privs: Option<bool>,
    /// No memfd in the job's pid namespace can be `execve`d (true): brig sets
    /// `vm.memfd_noexec = 2` there (Linux 6.6+), so a program the job wrote
    /// to memory cannot be executed. Needs the job's own pid namespace.
    /// Absent or false: the host's setting.
    #[serde(default)]
    pub memfd_noexec: Option<bool>,
    /// Capabilities the job keeps at most (in every set, bounding included).
    /// Capabilities the spec asks for beyond these are dropped if they belong to
    /// a client's default set, refused otherwise (unless `ceilings.capabilities`
    /// allows them). Absent: honour the spec.
    pub capabilities: Option<Vec<String>>,
}

/// The root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RootfsSection {
    /// Force a read-only root filesystem (true), or honour the spec (absent).
    pub read_only: Option<bool>,
    /// Bounded writable scratch space, mounted as tmpfs.
    #[serde(default)]
    pub tmpfs: Vec<TmpfsMount>,
    /// Every mount the job can write, and every bind from the host areas
    /// jobs write (`ceilings.writable_mounts`), is mounted `noexec`: the job
    /// runs only the image's programs (true), or the spec's options hold
    /// (absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_mounts_noexec: Option<bool>,
}

/// A size-bounded tmpfs mount added to the job.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TmpfsMount {
    pub path: String,
    pub size: ByteSize,
    /// Octal mode of the mount's root, e.g. `"1777"`.
    #[serde(default = "default_tmpfs_mode")]
    pub mode: String,
    /// Allow executing files from it (default: `noexec`).
    #[serde(default)]
    pub exec: bool,
}

fn default_tmpfs_mode() -> String {
    "1777".to_string()
}

/// Paths hidden or made read-only inside the job, in addition to the spec's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PathsSection {
    #[serde(default)]
    pub masked: Vec<String>,
    #[serde(default)]
    pub readonly: Vec<String>,
}

/// cgroup limits. Each is a ceiling: a spec asking for less keeps its own value,
/// a spec asking for more (or nothing) gets the profile's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupSection {
    pub memory: Option<ByteSize>,
    /// Memory plus swap; equal to `memory` means no swap.
    pub memory_swap: Option<ByteSize>,
    /// CPU bandwidth in CPUs (e.g. 1.5 = 150 ms per 100 ms period).
    pub cpus: Option<f64>,
    /// Relative CPU weight as cgroup v1 shares (2..=262144); converted on v2.
    pub cpu_shares: Option<u64>,
    pub pids: Option<i64>,
    /// Block I/O weight (10..=1000).
    pub blkio_weight: Option<u16>,
}

/// The wall-clock limit.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSection {
    /// Applied when the job does not ask for one.
    pub default: Option<Duration>,
    /// The most a job may ask for (`dev.brig.timeout`); more is refused.
    pub max: Option<Duration>,
    /// Time between SIGTERM and SIGKILL at expiry.
    pub grace: Option<Duration>,
}

pub use crate::seccomp::{ArgCondition, ConditionalRule, SeccompSection};

/// Whether a Landlock restriction is mandatory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LandlockMode {
    /// Refuse to launch unless the kernel enforces every requested right.
    Required,
    /// Launch anyway; record what the kernel enforced.
    BestEffort,
}

/// Landlock filesystem, network and scope rules, by container path.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockSection {
    pub mode: LandlockMode,
    /// Read-only (files and directory listings).
    #[serde(default)]
    pub read: Vec<String>,
    /// Read and execute.
    #[serde(default)]
    pub read_exec: Vec<String>,
    /// Read and write (create, remove, truncate; no device nodes).
    #[serde(default)]
    pub read_write: Vec<String>,
    /// Grant every mount of the spec access matching its mount options (rw or
    /// ro), and the process's working directory read and execute.
    #[serde(default)]
    pub grant_mounts: bool,
    /// TCP ports the job may connect to; absent = not restricted by Landlock.
    pub tcp_connect: Option<Vec<u16>>,
    /// TCP ports the job may bind; absent = not restricted by Landlock.
    pub tcp_bind: Option<Vec<u16>>,
    /// Scopes (Landlock ABI 6): `abstract_unix_socket`, `signal`.
    #[serde(default)]
    pub scope: Vec<LandlockScope>,
}

/// Landlock IPC scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LandlockScope {
    /// No connecting to abstract unix sockets created outside the sandbox.
    AbstractUnixSocket,
    /// No signalling processes outside the sandbox.
    Signal,
}

/// What a spec may explicitly ask for at most. Anything beyond is refused with
/// the field named; client defaults are tightened instead (see `harden`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ceilings {
    /// Capabilities outside every client's default set that a spec may keep
    /// (`"ALL"` for any).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Host namespaces the job may share (`pid`, `network`, `ipc`, `uts`,
    /// `mount`, `cgroup`; `"*"` for any).
    #[serde(default)]
    pub host_namespaces: Vec<String>,
    /// Allow devices in `linux.devices` and device-cgroup rules wider than the
    /// standard set.
    #[serde(default)]
    pub devices: bool,
    /// Host path prefixes that may be bind-mounted writable (`"/"` for any).
    #[serde(default)]
    pub writable_mounts: Vec<String>,
    /// Host path prefixes that may be bind-mounted read-only (`"/"` for any).
    #[serde(default)]
    pub readonly_mounts: Vec<String>,
    /// Hook binaries that may run on the host (`"*"` for any).
    #[serde(default)]
    pub hooks: Vec<String>,
    /// sysctls the spec may set; a trailing `*` matches a prefix.
    #[serde(default)]
    pub sysctls: Vec<String>,
    /// Allow a spec to remove masked or read-only paths (what `--privileged`
    /// does). Without it, the profile's paths are always added back.
    #[serde(default)]
    pub unmask_paths: bool,
}

/// Network access (enforced by the egress rules, `crate::egress`; docs/egress.md).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    #[serde(default)]
    pub mode: NetworkMode,
    /// Destinations the job may reach (`mode = "allow"`), and the ceiling of
    /// what a job may request with `dev.brig.egress` (`allow`, and `client`
    /// when not empty): `CIDR[:PORTS][/PROTO]` text, e.g. `10.0.0.0/8:443/tcp`,
    /// or `{ cidr, ports, proto }` tables.
    #[serde(default)]
    pub allow: Vec<EgressRule>,
    /// The resolver the job may query (TCP and UDP port 53), if any.
    pub dns: Option<IpAddr>,
    /// Ports the job may accept new connections on (`8080/tcp`); every other
    /// new inbound connection is dropped (`allow`, and `client` with rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound: Vec<InboundRule>,
    /// `client` mode: refuse link-local (cloud metadata) and the host's own
    /// addresses even when the job requests no rules.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub block_host: bool,
    /// Extra ranges always refused unless a rule names them, in addition to
    /// `169.254.0.0/16`, `fe80::/10` and the host's addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block: Vec<Cidr>,
}

/// The network the job gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// Keep whatever network the client built; filtered only when the job
    /// requests rules (or `block_host` is set).
    #[default]
    Client,
    /// Loopback only: every packet not on `lo` is refused, whatever
    /// interfaces the client put into the namespace.
    None,
    /// The client's network, filtered to an allowlist.
    Allow,
}
