//! [`RunFacts`]: everything the shim knows about a run, as the input of
//! [`crate::statement`]. The shim fills it from its run record, the
//! supervisor's report and the cgroup; this crate only shapes and signs it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::measure::TreeDigest;
use crate::rootfs::RootfsDigest;

/// The facts of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    /// The container id (the statement's `invocationId`).
    pub container_id: String,
    /// The host's name (part of the builder id).
    pub host: String,
    /// brig's version (`CARGO_PKG_VERSION` of the shim).
    pub brig_version: String,
    /// What the orchestrator asked for.
    pub request: JobRequest,
    /// The profile the run was held to.
    pub profile: ProfileFacts,
    /// How the launch was authorized.
    pub authorization: Authorization,
    /// Who asked (from the verified token; never the token). `None` when
    /// authorization was off or there was no token.
    #[serde(default)]
    pub identity: Option<Identity>,
    /// What the kernel actually enforced.
    pub enforcement: Enforcement,
    /// What brig tightened in the client's spec (the shim's `Tightening`
    /// records, serialized as they are).
    #[serde(default)]
    pub tightened: Vec<serde_json::Value>,
    /// The measured rootfs (before the job started).
    pub rootfs: RootfsFacts,
    /// The measured input mounts (before the job started).
    #[serde(default)]
    pub inputs: Vec<MountTree>,
    /// The measured output mounts (after the job ended).
    #[serde(default)]
    pub outputs: Vec<MountTree>,
    pub started_on: DateTime<Utc>,
    pub finished_on: DateTime<Utc>,
    pub outcome: Outcome,
}

/// The job as requested (annotations and the OCI process).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    /// `dev.brig.image.digest`, e.g. `sha256:…` (validate it with
    /// [`crate::parse_digest`] at `create`).
    #[serde(default)]
    pub image: Option<String>,
    /// Whether the token named this image digest.
    #[serde(default)]
    pub image_bound_by_token: bool,
    /// `dev.brig.profile`, if the request named one.
    #[serde(default)]
    pub profile: Option<String>,
    /// `process.args` (never the environment: it may hold `BRIG_TOKEN`).
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// `dev.brig.inputs`, container paths.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// `dev.brig.outputs`, container paths.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// `dev.brig.timeout` as given, e.g. `90s`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// `dev.brig.egress` rules as given.
    #[serde(default)]
    pub egress: Vec<String>,
}

/// The profile in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileFacts {
    pub name: String,
    /// `sha256:…` of the profile as compiled.
    pub digest: String,
    /// `builtin`, or the file it came from.
    #[serde(default)]
    pub origin: Option<String>,
}

/// The launch decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Authorization {
    /// `required` or `off`.
    pub mode: String,
    /// `allow`, or `not-authorized` when authorization is off.
    pub decision: String,
    #[serde(default)]
    pub policy_ids: Vec<String>,
    /// Where the launch decision is in the audit log, when one is
    /// configured: checked against the log by `brig audit verify --attested`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_record: Option<AuditRecordRef>,
}

/// One record of the audit log: its line number and the SHA-256 of its line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecordRef {
    pub seq: u64,
    pub sha256: String,
    /// SHA-256 of the log's first line (which log, once logs are rotated).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log: String,
}

/// The token's identity (claims only; never the token itself).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    /// Other identity claims the configuration names.
    #[serde(default)]
    pub other: BTreeMap<String, String>,
}

/// What the kernel enforced on the job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Enforcement {
    pub landlock: Landlock,
    pub seccomp: Seccomp,
    /// Namespace types the job runs in (`pid`, `mount`, `network`, …).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The user-namespace mapping, if the job has its own user namespace.
    #[serde(default)]
    pub user_namespace: Option<UserNamespace>,
    pub no_new_privs: bool,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// cgroup limits applied (`memory.max`, `pids.max`, `cpu.max`, …).
    #[serde(default)]
    pub cgroup: BTreeMap<String, String>,
    /// Egress rules in place.
    #[serde(default)]
    pub egress: Vec<String>,
    /// Anything else the shim wants on record (kept as given).
    #[serde(default)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Landlock as applied by the job process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Landlock {
    /// The ABI version the kernel offered.
    #[serde(default)]
    pub abi: Option<u32>,
    /// `full`, `partial`, `none` or `off`, as the supervisor reported.
    pub status: String,
}

/// seccomp as installed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Seccomp {
    /// `sha256:…` of brig's compiled BPF program.
    #[serde(default)]
    pub filter_digest: Option<String>,
    /// Filters installed (brig's, plus the client's when kept).
    pub filters: u32,
    /// The client's own filter was kept and stacked under brig's.
    #[serde(default)]
    pub client_filter_kept: bool,
}

/// A user-namespace id mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserNamespace {
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
}

/// One line of `uid_map`/`gid_map`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

/// The job's capability sets (names like `CAP_NET_BIND_SERVICE`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub bounding: Vec<String>,
    #[serde(default)]
    pub effective: Vec<String>,
    #[serde(default)]
    pub permitted: Vec<String>,
    #[serde(default)]
    pub inheritable: Vec<String>,
    #[serde(default)]
    pub ambient: Vec<String>,
}

/// The measured rootfs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootfsFacts {
    /// The host path measured.
    pub path: String,
    /// Lower-case hex SHA-256 ([`RootfsDigest::sha256`]).
    pub sha256: String,
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    /// Its change stamp from before the job started, taken again when the
    /// job has ended: `false` when it differs (the tree changed on the host
    /// in between: what ran may not be what is attested). `None` where not
    /// checked (a writable rootfs, a directory replaced before `delete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged_during_run: Option<bool>,
}

impl RootfsFacts {
    pub fn new(path: &std::path::Path, d: &RootfsDigest) -> RootfsFacts {
        RootfsFacts {
            path: path.to_string_lossy().into_owned(),
            sha256: d.sha256.clone(),
            entries: d.entries,
            files: d.files,
            bytes: d.bytes,
            unchanged_during_run: None,
        }
    }
}

/// A measured mount: its container path (absolute, e.g. `/out`) and tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountTree {
    pub path: String,
    pub tree: TreeDigest,
    /// For an input: whether, when the job ended, its tree was still what
    /// was measured before the job started, never changed in between
    /// ([`crate::change_stamp`]). `None` for outputs, and where not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged_during_run: Option<bool>,
}

/// How the job ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The exit code, if the job exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that ended the job, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// The wall-clock limit ended it.
    #[serde(default)]
    pub timed_out: bool,
    /// The kernel's OOM killer ended it (cgroup `memory.events` `oom_kill`).
    #[serde(default)]
    pub oom_killed: bool,
    /// `brig kill` (or the client) ended it.
    #[serde(default)]
    pub killed: bool,
    /// Where starting the job failed, if it did (`landlock`, `exec`, …).
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub resources: Resources,
}

/// Resource use from the cgroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// `cpu.stat` `usage_usec` × 1000.
    #[serde(default)]
    pub cpu_ns: Option<u64>,
    /// `memory.peak` (bytes).
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
    /// `pids.peak`.
    #[serde(default)]
    pub peak_pids: Option<u64>,
}
