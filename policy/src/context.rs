//! [`LaunchContext`]: what a launch (or exec) asks for, taken from the final
//! OCI spec; the shim fills it and every Cedar decision reads it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Process, Spec};
use serde::{Deserialize, Serialize};

use crate::util::shown;

/// Annotation keys of the job contract (DESIGN.md).
pub mod annotations {
    /// The job's token (removed before anything else sees the spec).
    pub const TOKEN: &str = "dev.brig.token";
    /// Host path of a file holding the token.
    pub const TOKEN_FILE: &str = "dev.brig.token-file";
    /// Requested hardening profile.
    pub const PROFILE: &str = "dev.brig.profile";
    /// Image digest as the orchestrator knows it.
    pub const IMAGE_DIGEST: &str = "dev.brig.image.digest";
    /// Comma-separated container paths of the job's inputs.
    pub const INPUTS: &str = "dev.brig.inputs";
    /// Comma-separated container paths of the job's outputs.
    pub const OUTPUTS: &str = "dev.brig.outputs";
    /// Requested egress rules, `CIDR:PORT/PROTO,...`.
    pub const EGRESS: &str = "dev.brig.egress";
    /// Requested wall-clock limit, e.g. `90s`.
    pub const TIMEOUT: &str = "dev.brig.timeout";
    /// Image name set by the CRI plugin of containerd (Kubernetes).
    pub const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
}

/// Mount types that do not reach a host path and get no `mount` decision.
pub const VIRTUAL_FS: &[&str] = &["proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2"];

/// Namespace types reported in `host_namespaces` when the spec does not create them.
pub const NAMESPACE_TYPES: &[&str] = &["pid", "network", "mount", "ipc", "uts", "user", "cgroup"];

/// Why a spec could not be described.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// An annotation has a value brig cannot read.
    #[error("annotation `{key}`: {reason}")]
    Annotation {
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The spec has no `process`.
    #[error("the OCI spec has no `process`")]
    NoProcess,
}

/// The image the job runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageRef {
    /// `sha256:<hex>`, as the orchestrator knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// A name such as `docker.io/library/busybox:1.36`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One mount of the final spec.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountInfo {
    /// Host source (lexically normalized when absolute), or the fs name (`proc`).
    pub source: String,
    /// Container path.
    pub destination: String,
    /// Not mounted `ro`.
    pub read_write: bool,
    /// `bind` for bind mounts, else the file-system type.
    pub kind: String,
}

impl MountInfo {
    /// Whether this mount reaches the host (everything but [`VIRTUAL_FS`]).
    pub fn reaches_host(&self) -> bool {
        !VIRTUAL_FS.contains(&self.kind.as_str())
    }
}

/// One requested egress rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    /// `10.0.0.5/32`, `fd00::/64`.
    pub cidr: String,
    /// 1 to 65535.
    pub port: u16,
    /// `tcp` or `udp`.
    pub proto: String,
}

/// Resource limits of the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    /// `linux.resources.memory.limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<i64>,
    /// `linux.resources.pids.limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    /// CPU quota in thousandths of a CPU (`quota * 1000 / period`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_millis: Option<i64>,
}

/// The process user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserInfo {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups (`additionalGids`).
    pub additional_gids: BTreeSet<u32>,
}

impl UserInfo {
    fn of(process: &Process) -> UserInfo {
        let user = process.user();
        UserInfo {
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().iter().flatten().copied().collect(),
        }
    }
}

/// What an `exec` runs (from the exec's `process.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecRequest {
    /// argv.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups (`additionalGids`).
    pub additional_gids: BTreeSet<u32>,
    /// Whether a terminal is requested.
    pub tty: bool,
    /// Union of the process's capability sets.
    pub capabilities: BTreeSet<String>,
    /// The directories `args[0]` is looked up in when it has no `/`: the
    /// process's `PATH` (empty entries skipped), or [`DEFAULT_PATH`]. The
    /// same name runs a different program from another directory, so a
    /// policy that allows commands by name checks these too.
    pub search_path: Vec<String>,
    /// Whether the exec's principal is not the one the container was
    /// launched for (another tenant; with no tenant, another issuer or
    /// subject; any, for a container launched without authorization).
    /// Filled in by brig; false in test cases unless given.
    pub other_principal: bool,
    /// Who the container was launched for (empty when it was launched
    /// without authorization).
    pub owner: ExecOwner,
}

/// The principal a container was launched for, as an exec sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecOwner {
    /// `iss` of the launch's token.
    pub issuer: Option<String>,
    /// `sub` of the launch's token.
    pub subject: Option<String>,
    /// The launch's tenant claim.
    pub tenant: Option<String>,
}

/// The search path of a process without `PATH` in its environment (runc's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ExecRequest {
    /// Describes an exec's process.
    pub fn from_process(process: &Process) -> ExecRequest {
        let path = process.env().iter().flatten().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
        ExecRequest {
            search_path: path.split(':').filter(|d| !d.is_empty()).map(str::to_string).collect(),
            args: process.args().clone().unwrap_or_default(),
            cwd: process.cwd().to_string_lossy().into_owned(),
            uid: process.user().uid(),
            gid: process.user().gid(),
            additional_gids: UserInfo::of(process).additional_gids,
            tty: process.terminal().unwrap_or(false),
            capabilities: capabilities_of(process),
            other_principal: false,
            owner: ExecOwner::default(),
        }
    }
}

/// What a launch asks for. The shim fills it from the final OCI spec
/// ([`LaunchContext::from_spec`]); test cases give fragments of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LaunchContext {
    /// Requested hardening profile.
    pub profile: String,
    /// The image.
    pub image: ImageRef,
    /// The root filesystem's host directory (`root.path`, symbolic links
    /// resolved): where a job's files come from is the policy's to judge.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rootfs: String,
    /// The container's id (for `context.container_source` of its mounts).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    /// Every mount of the spec.
    pub mounts: Vec<MountInfo>,
    /// Union of the process's capability sets (`CAP_...`).
    pub capabilities: BTreeSet<String>,
    /// Namespace types shared with the host (absent from the spec).
    pub host_namespaces: BTreeSet<String>,
    /// Namespace types joined by path.
    pub joined_namespaces: BTreeSet<String>,
    /// Device nodes (`linux.devices[].path`).
    pub devices: BTreeSet<String>,
    /// Resource limits.
    pub resources: Resources,
    /// Requested egress.
    pub egress: Vec<EgressRule>,
    /// Requested wall-clock limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Container paths of the job's inputs.
    pub inputs: BTreeSet<String>,
    /// Container paths of the job's outputs.
    pub outputs: BTreeSet<String>,
    /// Annotations, the token annotations excepted.
    pub annotations: BTreeMap<String, String>,
    /// The process user.
    pub user: UserInfo,
    /// For `exec`: what it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecRequest>,
}

/// What the shim knows that is not in the spec.
#[derive(Debug, Clone, Default)]
pub struct SpecOptions {
    /// Profile when the spec does not ask for one (the configured default).
    pub default_profile: String,
    /// Timeout when the spec does not ask for one (the profile's).
    pub default_timeout_secs: Option<u64>,
    /// Image name, when the shim knows it from elsewhere.
    pub image_name: Option<String>,
}

impl LaunchContext {
    /// Describes the final spec. Mount sources are normalized lexically only;
    /// call [`LaunchContext::canonicalize_sources`] to resolve symbolic links.
    pub fn from_spec(spec: &Spec, options: &SpecOptions) -> Result<LaunchContext, ContextError> {
        let empty = std::collections::HashMap::new();
        let ann = spec.annotations().as_ref().unwrap_or(&empty);
        let get = |k: &str| ann.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let process = spec.process().as_ref().ok_or(ContextError::NoProcess)?;

        let profile = get(annotations::PROFILE).map_or_else(|| options.default_profile.clone(), str::to_string);
        let digest = match get(annotations::IMAGE_DIGEST) {
            Some(d) if is_digest(d) => Some(d.to_string()),
            Some(d) => {
                return Err(ContextError::Annotation {
                    key: annotations::IMAGE_DIGEST,
                    reason: format!("`{}` is not `sha256:<64 hex>` or `sha512:<128 hex>`", shown(d)),
                })
            }
            None => None,
        };
        // Names and digests share the `Brig::Image` id space (the digest when
        // there is one, else the name): a name of a digest's form (an image
        // ID, as containerd before 2.0 reports an untagged image) would pass
        // as the pinned image that policies permit by digest. It names no
        // image: treated as no name.
        let name = options
            .image_name
            .clone()
            .or_else(|| get(annotations::CRI_IMAGE_NAME).map(str::to_string))
            .filter(|n| !(is_digest(n) || n.starts_with("sha256:") || n.starts_with("sha512:")));

        let mut mounts = Vec::new();
        for m in spec.mounts().as_deref().unwrap_or_default() {
            let opts = m.options().as_deref().unwrap_or_default();
            let is_bind = opts.iter().any(|o| o == "bind" || o == "rbind") || m.typ().as_deref() == Some("bind");
            let kind = if is_bind { "bind".to_string() } else { m.typ().clone().unwrap_or_else(|| "none".into()) };
            let source = match m.source() {
                Some(s) if s.is_absolute() => normalize(s),
                Some(s) => s.to_string_lossy().into_owned(),
                None => kind.clone(),
            };
            mounts.push(MountInfo {
                source,
                destination: normalize(m.destination()),
                read_write: !opts.iter().any(|o| o == "ro"),
                kind,
            });
        }

        let mut host_namespaces: BTreeSet<String> = NAMESPACE_TYPES.iter().map(|s| s.to_string()).collect();
        let mut joined_namespaces = BTreeSet::new();
        let mut devices = BTreeSet::new();
        let mut resources = Resources::default();
        if let Some(linux) = spec.linux() {
            for ns in linux.namespaces().as_deref().unwrap_or_default() {
                let name = enum_name(&ns.typ());
                host_namespaces.remove(&name);
                if ns.path().is_some() {
                    joined_namespaces.insert(name);
                }
            }
            for d in linux.devices().as_deref().unwrap_or_default() {
                devices.insert(d.path().to_string_lossy().into_owned());
            }
            if let Some(r) = linux.resources() {
                resources.memory_bytes = r.memory().as_ref().and_then(|m| m.limit()).filter(|l| *l > 0);
                resources.pids = r.pids().as_ref().map(|p| p.limit()).filter(|l| *l > 0);
                if let Some(cpu) = r.cpu() {
                    if let (Some(q), Some(p)) = (cpu.quota(), cpu.period()) {
                        if q > 0 && p > 0 {
                            resources.cpu_millis = i64::try_from(i128::from(q) * 1000 / i128::from(p)).ok();
                        }
                    }
                }
            }
        } else {
            // No `linux` section: every namespace is the host's.
        }

        let egress = match get(annotations::EGRESS) {
            Some(v) => parse_egress(v)?,
            None => Vec::new(),
        };
        let timeout_secs = match get(annotations::TIMEOUT) {
            Some(v) => Some(parse_duration(v).ok_or_else(|| ContextError::Annotation {
                key: annotations::TIMEOUT,
                reason: format!("`{}` is not a duration such as `90s`, `5m`, `1h`", shown(v)),
            })?),
            None => options.default_timeout_secs,
        };
        let list = |k: &str| -> BTreeSet<String> {
            get(k)
                .map(|v| {
                    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| normalize(Path::new(s))).collect()
                })
                .unwrap_or_default()
        };
        let annotations_map = ann
            .iter()
            .filter(|(k, _)| k.as_str() != annotations::TOKEN && k.as_str() != annotations::TOKEN_FILE)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();

        Ok(LaunchContext {
            profile,
            image: ImageRef { digest, name },
            rootfs: spec.root().as_ref().map(|r| normalize(r.path())).unwrap_or_default(),
            container_id: String::new(),
            mounts,
            capabilities: capabilities_of(process),
            host_namespaces,
            joined_namespaces,
            devices,
            resources,
            egress,
            timeout_secs,
            inputs: list(annotations::INPUTS),
            outputs: list(annotations::OUTPUTS),
            annotations: annotations_map,
            user: UserInfo::of(process),
            exec: None,
        })
    }

    /// Resolves the symbolic links of every host mount source that exists
    /// (`realpath`), so that policies judge the path the kernel will mount.
    /// The shim must then mount exactly these paths (or hold them open) so
    /// that a link changed after the decision cannot redirect the mount.
    pub fn canonicalize_sources(&mut self) {
        for m in &mut self.mounts {
            if m.reaches_host() && m.source.starts_with('/') {
                if let Ok(real) = std::fs::canonicalize(&m.source) {
                    m.source = real.to_string_lossy().into_owned();
                }
            }
        }
    }

    /// The exec's context: the container's launch context plus the exec.
    pub fn with_exec(&self, exec: ExecRequest) -> LaunchContext {
        LaunchContext { exec: Some(exec), ..self.clone() }
    }
}

fn enum_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn capabilities_of(process: &Process) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(caps) = process.capabilities() {
        for set in [caps.bounding(), caps.effective(), caps.permitted(), caps.inheritable(), caps.ambient()]
            .into_iter()
            .flatten()
        {
            out.extend(set.iter().map(enum_name));
        }
    }
    out
}

/// `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
pub fn is_digest(s: &str) -> bool {
    let hex_ok =
        |h: &str, n: usize| h.len() == n && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match s.split_once(':') {
        Some(("sha256", h)) => hex_ok(h, 64),
        Some(("sha512", h)) => hex_ok(h, 128),
        _ => false,
    }
}

/// Lexical normalization: `.` and empty segments dropped, `..` applied (never above `/`).
pub fn normalize(p: &Path) -> String {
    let mut out = PathBuf::new();
    let absolute = p.is_absolute();
    for c in p.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => out.push("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                if out.as_os_str() != "/" {
                    out.pop();
                }
            }
            Component::Normal(s) => out.push(s),
        }
    }
    let s = out.to_string_lossy().into_owned();
    if s.is_empty() && absolute {
        "/".into()
    } else {
        s
    }
}

/// `10.0.0.5/32:443/tcp,10.0.0.53/32:53/udp` (IPv6: `[fd00::1]/128:443/tcp`).
pub fn parse_egress(value: &str) -> Result<Vec<EgressRule>, ContextError> {
    let err = |reason: String| ContextError::Annotation { key: annotations::EGRESS, reason };
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || err(format!("`{}` is not `CIDR:PORT/PROTO`", shown(item)));
        let (addr_port, proto) = item.rsplit_once('/').ok_or_else(bad)?;
        let (cidr, port) = addr_port.rsplit_once(':').ok_or_else(bad)?;
        let cidr = cidr.trim_start_matches('[').replacen("]/", "/", 1);
        let (ip, prefix) = cidr.split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > if ip.is_ipv4() { 32 } else { 128 } {
            return Err(bad());
        }
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
        let proto = proto.to_ascii_lowercase();
        if proto != "tcp" && proto != "udp" {
            return Err(err(format!("`{}`: protocol must be `tcp` or `udp`", shown(item))));
        }
        out.push(EgressRule { cidr: format!("{ip}/{prefix}"), port, proto });
    }
    Ok(out)
}

/// `90`, `90s`, `5m`, `2h`, `1h30m`.
pub fn parse_duration(v: &str) -> Option<u64> {
    if let Ok(n) = v.parse::<u64>() {
        return Some(n);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    if num.is_empty() {
        Some(total)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The directories a bare command is looked up in are the process's
    /// `PATH` (empty entries skipped, as the supervisor skips them), or the
    /// default one.
    #[test]
    fn an_exec_names_where_its_command_is_looked_up() {
        let process = |env: Vec<&str>| -> Process {
            serde_json::from_value(
                serde_json::json!({"args": ["ls"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": env}),
            )
            .unwrap()
        };
        assert_eq!(ExecRequest::from_process(&process(vec!["PATH=/tmp::/bin", "A=b"])).search_path, ["/tmp", "/bin"]);
        assert_eq!(ExecRequest::from_process(&process(vec!["A=b"])).search_path.join(":"), DEFAULT_PATH);
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize(Path::new("/var/lib/brig/jobs/a/in/../../b/in")), "/var/lib/brig/jobs/b/in");
        assert_eq!(normalize(Path::new("/../../etc")), "/etc");
        assert_eq!(normalize(Path::new("//a/./b/")), "/a/b");
        assert_eq!(normalize(Path::new("/")), "/");
    }

    #[test]
    fn egress_and_durations() {
        let r = parse_egress("10.0.0.5/32:443/tcp, [fd00::1]/128:53/UDP").unwrap();
        assert_eq!(r[0], EgressRule { cidr: "10.0.0.5/32".into(), port: 443, proto: "tcp".into() });
        assert_eq!(r[1].cidr, "fd00::1/128");
        assert_eq!(r[1].proto, "udp");
        assert!(parse_egress("10.0.0.5/33:443/tcp").is_err());
        assert!(parse_egress("10.0.0.5/32:0/tcp").is_err());
        assert!(parse_egress("10.0.0.5/32:443/icmp").is_err());
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("9x"), None);
    }

    /// An image name of a digest's form is no name: it would be the same
    /// `Brig::Image` as the pinned digest a policy permits.
    #[test]
    fn an_image_name_of_a_digests_form_is_no_name() {
        let spec = |name: &str| -> Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2",
                "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
                "root": {"path": "rootfs"},
                "annotations": {"io.kubernetes.cri.image-name": name}
            }))
            .unwrap()
        };
        let options =
            SpecOptions { default_profile: "restricted".into(), default_timeout_secs: None, image_name: None };
        let pinned = format!("sha256:{}", "2".repeat(64));
        for name in [pinned.as_str(), "sha256:2222", "sha512:x"] {
            let c = LaunchContext::from_spec(&spec(name), &options).unwrap();
            assert_eq!((c.image.name, c.image.digest), (None, None), "{name}");
        }
        let named = format!("docker.io/library/busybox@{pinned}");
        let c = LaunchContext::from_spec(&spec(&named), &options).unwrap();
        assert_eq!(c.image.name.as_deref(), Some(named.as_str()));
    }

    #[test]
    fn from_a_docker_like_spec() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "user": {"uid": 1000, "gid": 1000}, "args": ["sh"], "cwd": "/",
                "capabilities": {"bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"], "effective": ["CAP_CHOWN"]}
            },
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/in", "type": "bind", "source": "/var/lib/brig/jobs/acme/in/./x", "options": ["rbind", "ro"]},
                {"destination": "/out", "source": "/var/lib/brig/jobs/acme/out", "options": ["bind"]}
            ],
            "annotations": {
                "dev.brig.token": "secret-token",
                "dev.brig.profile": "restricted",
                "dev.brig.image.digest": format!("sha256:{}", "a".repeat(64)),
                "dev.brig.inputs": "/in",
                "dev.brig.outputs": "/out/",
                "dev.brig.egress": "10.0.0.5/32:443/tcp",
                "dev.brig.timeout": "90s"
            },
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"}],
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
                "resources": {"memory": {"limit": 1048576}, "pids": {"limit": 64}, "cpu": {"quota": 50000, "period": 100000}}
            }
        }))
        .unwrap();
        let c =
            LaunchContext::from_spec(&spec, &SpecOptions { default_profile: "standard".into(), ..Default::default() })
                .unwrap();
        assert_eq!(c.profile, "restricted");
        assert_eq!(c.mounts[1].source, "/var/lib/brig/jobs/acme/in/x");
        assert!(!c.mounts[1].read_write);
        assert_eq!(c.mounts[2].kind, "bind");
        assert!(c.mounts[2].read_write);
        assert!(!c.mounts[0].reaches_host());
        assert!(c.capabilities.contains("CAP_NET_BIND_SERVICE"));
        assert!(c.host_namespaces.contains("user") && !c.host_namespaces.contains("pid"));
        assert!(c.joined_namespaces.contains("network") && !c.host_namespaces.contains("network"));
        assert!(c.devices.contains("/dev/fuse"));
        assert_eq!(c.resources.cpu_millis, Some(500));
        assert_eq!(c.resources.pids, Some(64));
        assert_eq!(c.timeout_secs, Some(90));
        assert!(c.outputs.contains("/out"));
        assert!(!c.annotations.contains_key("dev.brig.token"));
        assert!(!format!("{c:?}").contains("secret-token"));
    }
}
