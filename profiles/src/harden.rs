//! Applies a profile to an OCI spec: the profile is a ceiling.
//!
//! Two kinds of excess are treated differently:
//! - **client defaults** (the default capability set of Docker, Podman and
//!   containerd, a writable rootfs, missing `no_new_privs`, generous rlimits and
//!   cgroup limits, missing masked paths) are **tightened** to the profile, and
//!   every change is recorded as a [`Tightening`];
//! - **explicit asks** (capabilities outside every client's defaults, host
//!   namespaces, devices, bind mounts of host paths outside the allowed
//!   prefixes, hooks not on the allowlist, sysctls, a longer timeout, egress
//!   outside the profile's network allowlist) are
//!   **refused** with the field and the profile named, unless the profile's
//!   `ceilings` allow them.

use std::collections::{BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxCpu, LinuxMemory, LinuxNamespaceType, LinuxPids, LinuxResources,
    LinuxSeccomp, LinuxSeccompAction, LinuxSyscall, LinuxWeightDeviceBuilder, Mount, PosixRlimitBuilder,
    PosixRlimitType, Spec,
};
use serde::Serialize;

use crate::clients;
use crate::landlock::LandlockPlan;
use crate::model::Profile;
use crate::seccomp::{self, Arch, CompiledSeccomp};
use crate::units::Duration;

/// Facts about the host that hardening depends on (a trait so that the logic
/// is tested without root or real namespaces).
pub trait Host {
    /// Whether joining the namespace at `path` means sharing the host's.
    fn is_host_namespace(&self, typ: LinuxNamespaceType, path: &Path) -> bool;
    /// The path with symlinks resolved, if it exists.
    fn canonical(&self, path: &Path) -> Option<PathBuf>;
    /// Whether a hook path is `/proc/<pid>/exe` of a process running the
    /// host's dockerd (Docker's `libnetwork-setkey` hook).
    fn is_dockerd_process_binary(&self, path: &Path) -> bool;
    /// Whether `resolved` is inside a client's state directory (where it
    /// keeps `/etc/hosts` and the like for each container).
    fn is_client_state(&self, resolved: &Path) -> bool {
        clients::CLIENT_STATE_PREFIXES.iter().any(|p| resolved.starts_with(p))
    }
    /// Whether `resolved` is a regular file.
    fn is_file(&self, resolved: &Path) -> bool {
        std::fs::metadata(resolved).is_ok_and(|m| m.is_file())
    }
    /// Whether `resolved` is a regular file owned by root that neither its
    /// group nor others may write (a system binary, not a user's).
    fn is_system_file(&self, resolved: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(resolved).is_ok_and(|m| m.is_file() && m.uid() == 0 && m.mode() & 0o022 == 0)
    }
}

/// Whether a read-only bind is a client's `--init` program (`CLIENT_INITS`):
/// at its destination, a root-owned regular file under `/usr/` with its name
/// that no one else may write.
fn is_client_init(dest: &str, resolved: &Path, read_only: bool, host: &dyn Host) -> bool {
    let name = resolved.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    read_only
        && resolved.starts_with("/usr/")
        && clients::CLIENT_INITS.iter().any(|(d, names)| *d == dest && names.contains(&name))
        && host.is_system_file(resolved)
}

/// Whether a client's per-container file (or directory) is what `source`
/// is: the files (`/etc/hosts`, `/etc/resolv.conf`, ...) must be regular
/// files with the names clients give them, and the two directories
/// (`/dev/shm`, `/run/secrets`) a container's `shm` or `secrets` directory, never a client's whole
/// state (`/var/lib/containers/storage` bound at `/run/secrets` would hand
/// the job every container's layers).
fn is_client_file(dest: &str, resolved: &Path, host: &dyn Host) -> bool {
    if !clients::CLIENT_FILES.contains(&dest) || !host.is_client_state(resolved) {
        return false;
    }
    let named = |names: &[&str]| resolved.file_name().and_then(|n| n.to_str()).is_some_and(|n| names.contains(&n));
    // The n-th directory above `resolved` (1: its parent).
    let above = |n: usize| {
        resolved.ancestors().nth(n).and_then(|a| a.file_name()).and_then(|a| a.to_str()).unwrap_or_default().to_string()
    };
    // A container's own directory, where each client keeps it: Docker's
    // `containers/<id>/mounts/{shm,secrets}`, Podman's
    // `overlay-containers/<id>/userdata/shm` and `userdata/run/secrets`,
    // containerd CRI's `sandboxes/<id>/shm`; never a store's own `secrets`
    // (Podman's whole secret store) or `shm`.
    let per_container = || {
        above(1) == "mounts"
            || above(1) == "userdata"
            || (above(1) == "run" && above(2) == "userdata")
            || above(2) == "sandboxes"
    };
    match dest {
        "/dev/shm" => named(&["shm"]) && per_container(),
        "/run/secrets" => named(&["secrets"]) && per_container(),
        // Each file by the name its clients give it: a file of another
        // container's state (Docker's `config.v2.json` with its environment,
        // a secret under `mounts/secrets/`) is not `/etc/hosts`.
        "/etc/hosts" => named(&["hosts", "etc-hosts"]) && host.is_file(resolved),
        "/etc/resolv.conf" => named(&["resolv.conf"]) && host.is_file(resolved),
        "/etc/hostname" => named(&["hostname"]) && host.is_file(resolved),
        "/run/.containerenv" => named(&[".containerenv"]) && host.is_file(resolved),
        // The kubelet names it at random, in the pod's container directory.
        // (`<kubelet root>/pods/<uid>/containers/<name>/<random>`, whatever
        // the kubelet's root: k0s, microk8s, `--root-dir`).
        "/dev/termination-log" => above(2) == "containers" && above(4) == "pods" && host.is_file(resolved),
        _ => false,
    }
}

/// Where the kernel filesystems may be mounted: anywhere else (a second
/// `proc` at `/tmp/p`) they would show the job what the masked and
/// read-only paths hide (`/proc/sys/kernel/core_pattern`, `/proc/sysrq-trigger`).
fn kernel_fs_destination(typ: &str) -> Option<&'static str> {
    match typ {
        "proc" => Some("/proc"),
        "sysfs" => Some("/sys"),
        "cgroup" | "cgroup2" => Some("/sys/fs/cgroup"),
        _ => None,
    }
}

/// What the job asked for through annotations, already parsed.
#[derive(Debug, Clone, Default)]
pub struct JobAsks {
    /// `dev.brig.timeout`.
    pub timeout: Option<Duration>,
    /// Container paths granted read-only by Landlock (declared inputs).
    pub read_paths: Vec<String>,
    /// Container paths granted read-write by Landlock (declared outputs).
    pub write_paths: Vec<String>,
}

/// A client default the profile tightened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Tightening {
    /// The spec field, e.g. `process.capabilities`.
    pub field: String,
    /// What the spec asked for.
    pub requested: String,
    /// What the job gets.
    pub applied: String,
}

/// An explicit ask beyond the profile's ceiling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("profile `{profile}` refuses {field}: {reason}")]
pub struct Refusal {
    pub profile: String,
    pub field: String,
    pub reason: String,
}

/// Why hardening failed.
#[derive(Debug, thiserror::Error)]
pub enum HardenError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("profile `{profile}`: {source}")]
    Seccomp {
        profile: String,
        #[source]
        source: seccomp::SeccompError,
    },
    #[error("this architecture ({0}) has no seccomp compiler in brig")]
    UnsupportedArch(&'static str),
}

/// What the job's process enforces in addition to the OCI fields.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct JobPlan {
    pub no_new_privs: bool,
    /// Wall-clock limit.
    pub timeout: Option<std::time::Duration>,
    /// SIGTERM -> SIGKILL grace.
    pub grace: std::time::Duration,
    pub landlock: Option<LandlockPlan>,
    #[serde(skip)]
    pub seccomp: Option<CompiledSeccomp>,
    /// `sha256:` of brig's seccomp programs, if any.
    pub seccomp_digest: Option<String>,
    /// The egress ruleset to install in the job's network namespace before
    /// `start` (`None`: the client's network, unfiltered).
    #[serde(default)]
    pub egress: Option<crate::egress::EgressPlan>,
    /// The job gets its own user namespace and ID range (the shim allocates
    /// the range).
    #[serde(default)]
    pub per_job_userns: bool,
    /// Set `vm.memfd_noexec = 2` in the job's (own) pid namespace before it
    /// starts (the shim does it).
    #[serde(default)]
    pub memfd_noexec: bool,
}

/// The result of hardening: the spec libcontainer will run, the plan for the
/// job's process, and what was tightened.
#[derive(Debug, Clone)]
pub struct Hardened {
    pub spec: Spec,
    pub plan: JobPlan,
    pub tightened: Vec<Tightening>,
}

/// The kernel's CPU weight for a cgroup nobody set one for, as v1 shares.
const DEFAULT_CPU_SHARES: u64 = 1024;

/// Default grace between SIGTERM and SIGKILL at timeout.
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The syscalls the supervisor needs beyond what client seccomp profiles allow
/// (Docker 20.10's profile predates Landlock). They can only reduce privilege.
const SUPERVISOR_SYSCALLS: &[&str] = &["landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"];

struct Ctx<'a> {
    profile: &'a Profile,
    tightened: Vec<Tightening>,
}

impl Ctx<'_> {
    fn refuse(&self, field: impl Into<String>, reason: impl Into<String>) -> HardenError {
        HardenError::Refused(Refusal { profile: self.profile.name.clone(), field: field.into(), reason: reason.into() })
    }

    fn tighten(&mut self, field: impl Into<String>, requested: impl Into<String>, applied: impl Into<String>) {
        self.tightened.push(Tightening { field: field.into(), requested: requested.into(), applied: applied.into() });
    }
}

/// Applies `profile` to `spec`.
pub fn harden(profile: &Profile, mut spec: Spec, asks: &JobAsks, host: &dyn Host) -> Result<Hardened, HardenError> {
    let mut ctx = Ctx { profile, tightened: Vec::new() };
    check_namespaces(&ctx, &spec, host, asks.timeout.is_some())?;
    check_devices(&ctx, &spec)?;
    check_hooks(&ctx, &spec, host)?;
    check_sysctls(&ctx, &spec)?;
    check_cgroup_extras(&mut ctx, &mut spec)?;
    check_mount_options(&ctx, &spec)?;
    if let Some((i, typ)) =
        spec.process().as_ref().and_then(|p| duplicate_rlimit(p.rlimits().as_deref().unwrap_or_default()))
    {
        return Err(ctx.refuse(
            format!("process.rlimits[{i}]"),
            format!("{typ} is listed twice (the last would win over the limit checked on the first)"),
        ));
    }
    harden_mounts(&mut ctx, &mut spec, host)?;
    harden_capabilities(&mut ctx, &mut spec)?;
    harden_init_privileges(&mut ctx, &mut spec)?;
    let mut egress = crate::egress::plan(profile, &spec, host).map_err(|r| ctx.refuse(r.field, r.reason))?;
    if egress.is_some() {
        crate::egress::check_capabilities(&spec).map_err(|r| ctx.refuse(r.field, r.reason))?;
        drop_raw_network(&mut ctx, &mut spec);
    }
    let no_new_privs = harden_process(&mut ctx, &mut spec);
    harden_rootfs(&mut ctx, &mut spec);
    harden_paths(&mut ctx, &mut spec);
    harden_rlimits(&mut ctx, &mut spec);
    harden_cgroup(&mut ctx, &mut spec);
    deny_devices_by_default(&mut spec);
    let timeout = timeout(&ctx, asks)?;
    let per_job_userns = check_user_namespace(&ctx, &spec)?;

    let seccomp = match &profile.seccomp {
        Some(section) => {
            let arch = Arch::native().ok_or(HardenError::UnsupportedArch(std::env::consts::ARCH))?;
            Some(
                crate::prebuilt::compile(section, arch)
                    .map_err(|source| HardenError::Seccomp { profile: profile.name.clone(), source })?,
            )
        }
        None => None,
    };
    let mut landlock = profile.landlock.as_ref().map(|section| {
        let extra: Vec<(String, u64)> = asks
            .read_paths
            .iter()
            .map(|p| (p.clone(), crate::landlock::READ))
            .chain(asks.write_paths.iter().map(|p| (p.clone(), crate::landlock::READ_WRITE)))
            .collect();
        LandlockPlan::compile(section, &spec, &extra)
    });
    if let (Some(e), Some(l)) = (egress.as_mut(), landlock.as_mut()) {
        crate::egress::derive_landlock(e, l);
    }
    if landlock.is_some() {
        allow_supervisor_syscalls(&mut ctx, &mut spec);
    }
    // No device nodes in the rootfs work when the profile allows no devices
    // (the patched libcontainer reads this; third_party/README.md): an image
    // may ship a node for a host disk, and on cgroup v2 no device cgroup
    // would stop it being opened. The spec cannot ask otherwise.
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    if !profile.ceilings.devices {
        annotations.insert(ROOTFS_NODEV_ANNOTATION.to_string(), "true".to_string());
    }
    // Every bind source now names the canonical path checked above: the
    // (patched) libcontainer opens it with no symbolic link on the way and
    // mounts that descriptor, so one swapped for a link since fails the
    // launch (the per-job user-namespace path pins its staged binds too).
    annotations.insert(PIN_BIND_SOURCES_ANNOTATION.to_string(), "true".to_string());
    spec.set_annotations(Some(annotations));
    let plan = JobPlan {
        no_new_privs,
        timeout,
        grace: profile.timeout.grace.map(|g| g.0).unwrap_or(DEFAULT_GRACE),
        seccomp_digest: seccomp.as_ref().map(|s| s.digest.clone()),
        seccomp,
        landlock,
        egress,
        per_job_userns,
        memfd_noexec: profile.process.memfd_noexec == Some(true),
    };
    Ok(Hardened { spec, plan, tightened: ctx.tightened })
}

/// Docker's first device rule, `a *:* rwm` denied.
fn is_deny_all(rule: &oci_spec::runtime::LinuxDeviceCgroup) -> bool {
    use oci_spec::runtime::LinuxDeviceType;
    !rule.allow()
        && rule.typ().unwrap_or(LinuxDeviceType::A) == LinuxDeviceType::A
        && rule.major().is_none_or(|m| m < 0)
        && rule.minor().is_none_or(|m| m < 0)
        && rule.access().as_deref().is_none_or(|a| ["r", "w", "m"].iter().all(|c| a.contains(c)))
}

/// A device is denied unless a rule allows it, as with runc whatever the
/// spec says (runc starts every job from "deny all"). libcgroups instead
/// applies a spec's rules on top of what the new cgroup inherits, which on
/// cgroup v1 is its parent's `a *:* rwm`, and applies no rule at all when
/// the spec has no `linux.resources` (v1 and v2): a spec without Docker's
/// deny-all (`brig spec`'s, a hand-written one) left every device open to a
/// job that could create nodes. So every effective spec has resources whose
/// rules start with the deny-all; a spec's later `allow a` still opens
/// everything, as with runc, where the profile allows devices at all.
fn deny_devices_by_default(spec: &mut Spec) {
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let resources = linux.resources_mut().get_or_insert_with(LinuxResources::default);
    let mut rules = resources.devices().clone().unwrap_or_default();
    if !rules.first().is_some_and(is_deny_all) {
        let deny_all = oci_spec::runtime::LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .typ(oci_spec::runtime::LinuxDeviceType::A)
            .access("rwm")
            .build()
            .unwrap_or_default();
        rules.insert(0, deny_all);
        resources.set_devices(Some(rules));
    }
}

/// The annotation by which the (patched) libcontainer makes the rootfs
/// `nodev` (`libcontainer::rootfs::ROOTFS_NODEV_ANNOTATION`).
pub const ROOTFS_NODEV_ANNOTATION: &str = "dev.brig.rootfs-nodev";

/// The annotation by which the (patched) libcontainer pins bind sources
/// (`libcontainer::rootfs::PIN_BIND_SOURCES_ANNOTATION`).
pub const PIN_BIND_SOURCES_ANNOTATION: &str = "dev.brig.pin-bind-sources";

fn allowed(list: &[String], item: &str) -> bool {
    list.iter().any(|a| a == "*" || a == "ALL" || a.eq_ignore_ascii_case(item))
}

/// Whether `profile` lets a job share the host's `typ` namespace (its
/// `ceilings.host_namespaces`): then joining any other namespace of that
/// type gives the job nothing more.
pub fn shares_host_namespace(profile: &Profile, typ: LinuxNamespaceType) -> bool {
    allowed(&profile.ceilings.host_namespaces, ns_name(typ))
}

fn ns_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// Namespaces whose sharing with the host is an explicit ask. (The user,
/// cgroup and time namespaces are governed elsewhere.)
const GUARDED_NAMESPACES: [LinuxNamespaceType; 5] = [
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
];

fn check_namespaces(ctx: &Ctx<'_>, spec: &Spec, host: &dyn Host, timeout_asked: bool) -> Result<(), HardenError> {
    let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    // One entry per type. libcontainer keeps the last entry of a type, and
    // a check of the first would let `[{"type":"pid"},{"type":"pid",
    // "path":"/proc/1/ns/pid"}]` pass as a new namespace and join the host's.
    for (i, ns) in namespaces.iter().enumerate() {
        if namespaces[..i].iter().any(|earlier| earlier.typ() == ns.typ()) {
            return Err(ctx.refuse(
                format!("linux.namespaces[{i}]"),
                format!("the {} namespace is listed more than once", ns_name(ns.typ())),
            ));
        }
    }
    for typ in GUARDED_NAMESPACES {
        let entry = namespaces.iter().find(|n| n.typ() == typ);
        let shared = match entry {
            None => true,
            Some(ns) => ns.path().as_deref().is_some_and(|p| host.is_host_namespace(typ, p)),
        };
        if shared && !allowed(&ctx.profile.ceilings.host_namespaces, ns_name(typ)) {
            let how = match entry.and_then(|n| n.path().clone()) {
                Some(p) => format!("joining `{}` would share the host's {} namespace", p.display(), ns_name(typ)),
                None => {
                    format!("the spec does not create a {} namespace, so the job would share the host's", ns_name(typ))
                }
            };
            return Err(ctx.refuse("linux.namespaces", how));
        }
    }
    // The timeout is enforced by brig's supervisor as the pid namespace's
    // pid 1: at expiry it signals every process in it, and the namespace
    // dies with it. In a pid namespace joined by path (another container's,
    // a pod's shared one) it is an ordinary process that the job can stop
    // (SIGSTOP) or outlive (setsid), so a profile with a timeout requires a
    // pid namespace of the job's own.
    // A timeout the job asks for (`dev.brig.timeout`, under a profile with
    // none of its own) is held to the same rule, and so is a spec with no
    // pid namespace at all (the host's, where a profile allows it).
    let timed = ctx.profile.timeout.default.is_some() || ctx.profile.timeout.max.is_some() || timeout_asked;
    // `memfd_noexec` is a setting of the pid namespace: set in a joined one
    // (a pod's), it would change other containers' jobs; in none, the host's.
    let why_own = if timed {
        Some("the profile's timeout needs the job's own pid namespace (its supervisor must be pid 1 to stop every process at expiry)")
    } else if ctx.profile.process.memfd_noexec == Some(true) {
        Some("the profile's `process.memfd_noexec` is set in the job's own pid namespace (a joined one is others' too)")
    } else {
        None
    };
    let Some(why_own) = why_own else { return Ok(()) };
    if !namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::Pid) {
        return Err(ctx.refuse("linux.namespaces", format!("no pid namespace of the job's own: {why_own}")));
    }
    if let Some((i, ns)) =
        namespaces.iter().enumerate().find(|(_, n)| n.typ() == LinuxNamespaceType::Pid && n.path().is_some())
    {
        return Err(ctx.refuse(
            format!("linux.namespaces[{i}]"),
            format!(
                "joining the pid namespace `{}`: {why_own}",
                ns.path().as_deref().unwrap_or(Path::new("")).display()
            ),
        ));
    }
    Ok(())
}

fn check_devices(ctx: &Ctx<'_>, spec: &Spec) -> Result<(), HardenError> {
    if ctx.profile.ceilings.devices {
        return Ok(());
    }
    let Some(linux) = spec.linux() else { return Ok(()) };
    // A host network interface moved into the job: the job reaches the
    // host's networks through it, past the profile's egress rules.
    if let Some(name) = linux.net_devices().as_ref().and_then(|d| d.keys().min()) {
        return Err(ctx.refuse(
            format!("linux.netDevices.{name}"),
            format!("moving the host's network interface `{name}` into the job is not allowed (the profile allows no extra devices)"),
        ));
    }
    if let Some(dev) = linux.devices().as_ref().and_then(|d| d.first()) {
        return Err(ctx.refuse(
            "linux.devices",
            format!("device `{}` is not allowed (the profile allows no extra devices)", dev.path().display()),
        ));
    }
    let rules = linux.resources().as_ref().and_then(|r| r.devices().clone()).unwrap_or_default();
    check_device_rules(&rules).map_err(|(i, reason)| ctx.refuse(format!("linux.resources.devices[{i}]"), reason))
}

/// Device-cgroup rules that grant reading or writing only devices of the
/// clients' standard set ([`clients::STANDARD_DEVICES`]); else the first
/// other rule's index and why. A narrow rule for a host disk (`b 8:0 rw`,
/// what `docker run --device-cgroup-rule` produces) is refused like a wide
/// one: the image may ship a device node for it. Used at `create` and by
/// `update` (which rewrites the rules on cgroup v1).
pub fn check_device_rules(rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<(), (usize, String)> {
    for (i, rule) in rules.iter().enumerate() {
        if !rule.allow() {
            continue;
        }
        let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
        let typ = rule.typ().map(|t| t.as_str().to_string()).unwrap_or_else(|| "a".into());
        // cgroup v1 reads `a` as "every device, every access", whatever
        // follows it: `a *:* m` allows reading and writing all of them.
        if typ == "a" {
            return Err((i, format!("access `{access}` to all devices is outside the standard device set")));
        }
        if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            return Err((i, format!("access `{access}` is not a combination of `r`, `w` and `m`")));
        }
        // Making device nodes (`m`) opens nothing.
        if !(access.contains('r') || access.contains('w')) {
            continue;
        }
        let standard = clients::STANDARD_DEVICES
            .iter()
            .any(|&(t, major, minor)| typ == t && rule.major() == Some(major) && rule.minor() == minor);
        if standard {
            continue;
        }
        let which = match (rule.major(), rule.minor()) {
            (Some(ma), Some(mi)) => format!("`{typ} {ma}:{mi}`"),
            (Some(ma), None) => format!("all `{typ} {ma}:*`"),
            _ => format!("all `{typ}`"),
        };
        return Err((i, format!("access `{access}` to {which} devices is outside the standard device set")));
    }
    Ok(())
}

fn check_hooks(ctx: &Ctx<'_>, spec: &Spec, host: &dyn Host) -> Result<(), HardenError> {
    let Some(hooks) = spec.hooks() else { return Ok(()) };
    #[allow(deprecated)]
    let lists = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (kind, list) in lists {
        for (i, hook) in list.iter().flatten().enumerate() {
            let path = hook.path().to_string_lossy().to_string();
            let args = hook.args().clone().unwrap_or_default();
            let env = hook.env().clone().unwrap_or_default();
            let field = format!("hooks.{kind}[{i}]");
            let any = ctx.profile.ceilings.hooks.iter().any(|h| h == "*" || h == "ALL");
            if any {
                continue;
            }
            // Hooks run as host root in the host's namespaces: the binary is
            // named exactly (an absolute path, case and all), and nothing in
            // its environment may load other code into it.
            // Only `PATH`, and only over the system's own directories: any
            // other variable (`LD_PRELOAD`, `BASH_ENV`, `GCONV_PATH`, ...) or
            // directory could make the hook run a job's file.
            if let Some(var) = env.iter().find(|e| !is_system_path_var(e)) {
                let name = var.split('=').next().unwrap_or_default();
                return Err(ctx.refuse(
                    field,
                    format!("a hook's environment may set only PATH, over system directories (not `{name}`)"),
                ));
            }
            if hook.path().is_absolute() && ctx.profile.ceilings.hooks.contains(&path) {
                continue;
            }
            if env.is_empty() && clients::is_client_hook(host.is_dockerd_process_binary(hook.path()), &args) {
                continue;
            }
            return Err(ctx.refuse(field, format!("hook binary `{path}` is not on the profile's allowlist")));
        }
    }
    Ok(())
}

/// `PATH=` over system directories only (what NVIDIA's hooks.d entries set).
fn is_system_path_var(var: &str) -> bool {
    const SYSTEM: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
    var.strip_prefix("PATH=").is_some_and(|dirs| dirs.split(':').all(|d| SYSTEM.contains(&d)))
}

fn sysctl_allowed(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

/// A mount with both a read-only (`ro`, `rro`) and a read-write (`rw`,
/// `rrw`) option: libcontainer applies them in order, so the last wins,
/// while every check here reads `ro` as read-only. Refused under every
/// profile.
fn check_mount_options(ctx: &Ctx<'_>, spec: &Spec) -> Result<(), HardenError> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let options: Vec<&str> = m.options().iter().flatten().map(String::as_str).collect();
        let ro = options.iter().any(|o| matches!(*o, "ro" | "rro"));
        let rw = options.iter().any(|o| matches!(*o, "rw" | "rrw"));
        if ro && rw {
            return Err(ctx.refuse(
                format!("mounts[{i}] ({})", m.destination().display()),
                "both read-only and read-write options: which one holds depends on their order",
            ));
        }
    }
    Ok(())
}

/// Why a `linux.resources.unified` key may never be written, under any
/// profile: it is not one file of the job's own cgroup directory (a slash or
/// `..` leads out of it: `../../../proc/sys/kernel/core_pattern`), or it
/// moves processes into the job's cgroup (`cgroup.procs`, `cgroup.threads`:
/// any host process, which `kill --all` would then kill).
pub fn unified_key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() || key == "." || key == ".." || key.contains('/') || key.contains('\0') {
        Some("a unified key must be the name of one file of the job's cgroup (no `/`, no `..`)")
    } else if matches!(key, "cgroup.procs" | "cgroup.threads") {
        Some("writing it would move other processes into the job's cgroup")
    } else {
        None
    }
}

/// Why a `hugepageLimits[].pageSize` may never be used, under any profile:
/// libcgroups checks only its leading digits and names the cgroup file
/// with it (`hugetlb.<pageSize>.limit_in_bytes`), so `2MB/../..` would lead
/// out of the job's cgroup. The kernel's sizes are digits and `KB`, `MB` or
/// `GB` (`2MB`, `1GB`, `64KB`).
pub fn hugepage_size_problem(page_size: &str) -> Option<&'static str> {
    let digits = page_size.len() - page_size.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let ok = digits > 0 && matches!(&page_size[digits..], "KB" | "MB" | "GB");
    (!ok).then_some("a page size is digits and `KB`, `MB` or `GB` (`2MB`, `1GB`), as the kernel names them")
}

/// cgroup settings that sidestep a profile's limits, under a profile that
/// sets limits: the OOM killer disabled (a memory bomb hangs at its limit
/// instead of dying) is turned back on and recorded; raw cgroup v2 files in
/// `linux.resources.unified` (libcgroups writes them as they are, after its
/// own limits: `memory.max = "max"` would lift the profile's, and
/// `cgroup.procs` would move any host process into the job's cgroup), a CPU
/// burst above the quota, a real-time CPU budget, and Intel RDT classes (a
/// `closID` joins a host group and its reserved cache) are refused.
fn check_cgroup_extras(ctx: &mut Ctx<'_>, spec: &mut Spec) -> Result<(), HardenError> {
    // Under every profile: libcgroups writes `<cgroup>/<key>` as host root
    // with no check of its own (runc refuses a key with a slash).
    let keys = spec.linux().as_ref().and_then(|l| l.resources().as_ref()).and_then(|r| r.unified().clone());
    for key in keys.iter().flat_map(|u| u.keys()) {
        if let Some(why) = unified_key_problem(key) {
            return Err(ctx.refuse(format!("linux.resources.unified.{key}"), why));
        }
    }
    let hugepages =
        spec.linux().as_ref().and_then(|l| l.resources().as_ref()).and_then(|r| r.hugepage_limits().clone());
    for (i, limit) in hugepages.iter().flatten().enumerate() {
        if let Some(why) = hugepage_size_problem(limit.page_size()) {
            return Err(ctx.refuse(format!("linux.resources.hugepageLimits[{i}].pageSize"), why));
        }
    }
    if ctx.profile.cgroup == Default::default() {
        return Ok(());
    }
    let Some(linux) = spec.linux_mut() else { return Ok(()) };
    let unified = linux.resources().as_ref().and_then(|r| r.unified().as_ref());
    if let Some(key) = unified.and_then(|u| u.keys().min()) {
        return Err(ctx.refuse(
            format!("linux.resources.unified.{key}"),
            "raw cgroup files would override the profile's cgroup limits",
        ));
    }
    if linux.intel_rdt().is_some() {
        return Err(ctx.refuse("linux.intelRdt", "Intel RDT classes are outside the profile's cgroup limits"));
    }
    // v1 net_cls/net_prio: a class id the host's traffic control or firewall
    // rules may treat as another (trusted) cgroup's.
    if linux.resources().as_ref().is_some_and(|r| r.network().is_some()) {
        return Err(ctx.refuse(
            "linux.resources.network",
            "a network class or priority could lift the host's network rules for the job",
        ));
    }
    let Some(resources) = linux.resources_mut() else { return Ok(()) };
    if let Some(cpu) = resources.cpu() {
        if cpu.burst().is_some_and(|b| b > 0) {
            return Err(ctx.refuse("linux.resources.cpu.burst", "a CPU burst above the profile's quota"));
        }
        if cpu.realtime_runtime().is_some_and(|r| r != 0) || cpu.realtime_period().is_some_and(|p| p != 0) {
            return Err(ctx.refuse("linux.resources.cpu.realtimeRuntime", "a real-time CPU budget"));
        }
    }
    if let Some(mem) = resources.memory_mut() {
        if mem.disable_oom_killer() == Some(true) {
            mem.set_disable_oom_killer(Some(false));
            ctx.tighten("linux.resources.memory.disableOOMKiller", "true", "false");
        }
    }
    Ok(())
}

fn check_sysctls(ctx: &Ctx<'_>, spec: &Spec) -> Result<(), HardenError> {
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().clone()).unwrap_or_default();
    let mut names: Vec<&String> = sysctls.keys().collect();
    names.sort();
    for name in names {
        if clients::DEFAULT_SYSCTLS.contains(&name.as_str()) || sysctl_allowed(&ctx.profile.ceilings.sysctls, name) {
            continue;
        }
        return Err(ctx.refuse(format!("linux.sysctl.{name}"), format!("sysctl `{name}` is not allowed")));
    }
    Ok(())
}

/// Lexically normalizes an absolute path (`..` cannot climb above `/`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(s) => out.push(s),
            _ => {}
        }
    }
    out
}

fn under_prefix(path: &Path, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| path.starts_with(Path::new(p)))
}

/// A writable bind must be below an allowed prefix, not the prefix itself
/// (`/var/lib/brig/jobs` holds every tenant's directory; under a per-job
/// user namespace a writable source is handed to the job's root), unless
/// the prefix is `/` (a profile that allows any).
fn under_prefix_strictly(path: &Path, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| {
        let p = Path::new(p);
        path.starts_with(p) && (p == Path::new("/") || path.components().count() > p.components().count())
    })
}

/// How deep a bind source may be (components of its canonical path).
const MAX_SOURCE_DEPTH: usize = 64;

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind")
}

/// Filesystems a spec may mount without touching host storage.
const VIRTUAL_FS: &[&str] = &["proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "shm", "none"];

fn harden_mounts(ctx: &mut Ctx<'_>, spec: &mut Spec, host: &dyn Host) -> Result<(), HardenError> {
    let ceilings = ctx.profile.ceilings.clone();
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (i, m) in mounts.iter_mut().enumerate() {
        let dest = m.destination().to_string_lossy().to_string();
        let field = format!("mounts[{i}] ({dest})");
        if is_bind(m) {
            let Some(source) = m.source().clone() else {
                return Err(ctx.refuse(field, "a bind mount without a source"));
            };
            if !source.is_absolute() {
                return Err(ctx.refuse(field, format!("bind source `{}` is not an absolute path", source.display())));
            }
            // The source must exist: what is checked is what gets mounted
            // (the spec is pointed at the resolved path).
            let Some(resolved) = host.canonical(&source) else {
                return Err(ctx.refuse(field, format!("bind source `{}` does not exist", source.display())));
            };
            // Every ancestor of a source is an entity the policy may match
            // (`Brig::Path`): a source thousands of directories deep (a job
            // can make one in its output for the next job to mount) would
            // make each decision build millions of them.
            if resolved.components().count() > MAX_SOURCE_DEPTH {
                return Err(ctx.refuse(field, format!("bind source is more than {MAX_SOURCE_DEPTH} directories deep")));
            }
            let read_only = m.options().iter().flatten().any(|o| o == "ro");
            let client_file = is_client_file(&dest, &resolved, host);
            let ok = client_file
                || is_client_init(&dest, &resolved, read_only, host)
                || under_prefix_strictly(&resolved, &ceilings.writable_mounts)
                || (read_only && under_prefix(&resolved, &ceilings.readonly_mounts));
            if !ok {
                let kind = if read_only { "read-only" } else { "writable" };
                let allowed = if read_only {
                    let mut all = ceilings.readonly_mounts.clone();
                    all.extend(
                        ceilings.writable_mounts.iter().filter(|p| !ceilings.readonly_mounts.contains(p)).cloned(),
                    );
                    all
                } else {
                    ceilings.writable_mounts.clone()
                };
                let hint = if allowed.is_empty() {
                    "the profile allows none".to_string()
                } else {
                    format!("allowed prefixes: {}", allowed.join(", "))
                };
                return Err(ctx.refuse(
                    field,
                    format!(
                        "{kind} bind mount of host path `{}` is outside the allowed prefixes ({hint})",
                        resolved.display()
                    ),
                ));
            }
            // `ro` on a recursive bind makes its top mount read-only and no
            // other (as in runc): a filesystem mounted below the source would
            // stay writable. Where the profile does not allow writing the
            // source, `rro` (mount_setattr AT_RECURSIVE) makes all of it so.
            let recursive = m.options().iter().flatten().any(|o| o == "rbind");
            if read_only
                && recursive
                && !client_file
                && !under_prefix_strictly(&resolved, &ceilings.writable_mounts)
                && !m.options().iter().flatten().any(|o| o == "rro")
            {
                let mut options = m.options().clone().unwrap_or_default();
                options.push("rro".into());
                m.set_options(Some(options));
                ctx.tighten(
                    format!("mounts[{i}].options"),
                    format!("{dest} read-only at its top mount only"),
                    format!("{dest} read-only with every mount below it (rro)"),
                );
            }
            m.set_source(Some(resolved));
            continue;
        }
        let typ = m.typ().clone().unwrap_or_default();
        if let Some(only) = kernel_fs_destination(&typ) {
            if normalize(m.destination()) != Path::new(only) {
                return Err(ctx.refuse(
                    field,
                    format!("a `{typ}` filesystem may only be mounted at `{only}` (elsewhere it would unmask what the profile masks)"),
                ));
            }
        }
        if !VIRTUAL_FS.contains(&typ.as_str()) && !ceilings.devices {
            return Err(ctx.refuse(
                field,
                format!("mounting a `{typ}` filesystem needs a device, which the profile does not allow"),
            ));
        }
        // Kernel interfaces stay read-only unless the profile allows unmasking.
        if matches!(typ.as_str(), "sysfs" | "cgroup" | "cgroup2") && !ceilings.unmask_paths {
            let mut options = m.options().clone().unwrap_or_default();
            if !options.iter().any(|o| o == "ro") {
                // `rrw` too: libcontainer applies the recursive attributes
                // after the flags, so it would clear the `ro` added here.
                options.retain(|o| o != "rw" && o != "rrw");
                options.push("ro".into());
                m.set_options(Some(options));
                ctx.tighten(format!("mounts[{i}].options"), format!("{dest} read-write"), format!("{dest} read-only"));
            }
        }
    }
    if ctx.profile.rootfs.writable_mounts_noexec == Some(true) {
        writable_mounts_noexec(ctx, &mut mounts, &ceilings.writable_mounts, host);
    }
    // Scratch space from the profile, unless the spec mounts something there.
    for t in &ctx.profile.rootfs.tmpfs {
        // A tmpfs of the spec's own in the profile's place (each, when
        // several are stacked there) keeps the profile's bounds: its size
        // at most, and no devices, setuid bits or (unless the profile
        // allows it) programs.
        let mut taken = false;
        for (i, m) in mounts.iter_mut().enumerate() {
            if normalize(m.destination()) == Path::new(&t.path) {
                taken = true;
                if m.typ().as_deref() == Some("tmpfs") {
                    bound_spec_tmpfs(ctx, i, m, t);
                }
            }
        }
        if taken {
            continue;
        }
        let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
        if !t.exec {
            options.push("noexec".into());
        }
        options.push(format!("mode={}", t.mode));
        options.push(format!("size={}", t.size.0));
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(&t.path));
        m.set_typ(Some("tmpfs".into()));
        m.set_source(Some(PathBuf::from("tmpfs")));
        m.set_options(Some(options));
        mounts.push(m);
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// `[rootfs] writable_mounts_noexec`: the job runs only the image's
/// programs, never a file it could have written. Every mount but the
/// kernel's filesystems and read-only binds from elsewhere is mounted
/// `noexec`: whatever it can write (a tmpfs, a bind or any other
/// filesystem without `ro`, `/dev` included), every bind from the host
/// areas jobs may write (`ceilings.writable_mounts`: a read-only bind of a
/// directory another mount of the job writes would run what it wrote) and
/// every bind of a client's per-container state (`/dev/shm`, secrets), is mounted `noexec`,
/// a recursive bind with every mount below it (`rnoexec`). The kernel then
/// refuses `execve` and executable mappings of its files whatever Landlock
/// grants there (a working directory, an entrypoint, or a profile path
/// that an image's link leads to such a mount).
fn writable_mounts_noexec(ctx: &mut Ctx<'_>, mounts: &mut [Mount], writable_prefixes: &[String], host: &dyn Host) {
    for (i, m) in mounts.iter_mut().enumerate() {
        let options = m.options().clone().unwrap_or_default();
        let has = |o: &str| options.iter().any(|x| x == o);
        let typ = m.typ().clone().unwrap_or_default();
        let dest = m.destination().display().to_string();
        let bind = is_bind(m);
        // What may keep running programs: a kernel filesystem (nothing of
        // the job's is on it), and a read-only bind from outside the
        // job-data areas that is not a client's per-container state (its
        // `/dev/shm`, secrets: another container writes those), such as a
        // tools directory or a client's init program.
        let exec_may_stay = if bind {
            let source = m.source().clone().unwrap_or_default();
            has("ro") && !under_prefix(&source, writable_prefixes) && !host.is_client_state(&source)
        } else {
            NOEXEC_EXEMPT_FS.contains(&typ.as_str())
        };
        let recursive = has("rbind");
        if exec_may_stay {
            // Never `rexec`: it would make executable what is mounted below.
            if has("rexec") {
                m.set_options(Some(options.iter().filter(|o| *o != "rexec").cloned().collect()));
                ctx.tighten(format!("mounts[{i}].options"), format!("{dest} rexec"), format!("{dest} without rexec"));
            }
            continue;
        }
        if has("noexec") && (!recursive || has("rnoexec")) && !has("exec") && !has("rexec") {
            continue;
        }
        let mut options: Vec<String> =
            options.iter().filter(|o| !matches!(o.as_str(), "exec" | "rexec")).cloned().collect();
        if !options.iter().any(|o| o == "noexec") {
            options.push("noexec".into());
        }
        if recursive && !options.iter().any(|o| o == "rnoexec") {
            options.push("rnoexec".into());
        }
        m.set_options(Some(options));
        ctx.tighten(
            format!("mounts[{i}].options"),
            format!("{dest} executable"),
            format!("{dest} noexec (the profile runs only the image's programs)"),
        );
    }
}

/// Filesystems [`writable_mounts_noexec`] leaves as they are: the kernel's
/// interfaces, whose files the job cannot choose.
const NOEXEC_EXEMPT_FS: &[&str] = &["proc", "sysfs", "cgroup", "cgroup2", "mqueue", "devpts", "securityfs", "debugfs"];

/// A spec's tmpfs at the path of one of the profile's: at most the
/// profile's size (a size of 0, a percentage or none is unlimited), and
/// `nosuid`, `nodev` and, unless the profile's allows programs, `noexec`.
fn bound_spec_tmpfs(ctx: &mut Ctx<'_>, i: usize, m: &mut Mount, t: &crate::model::TmpfsMount) {
    let dest = m.destination().display().to_string();
    let mut options = m.options().clone().unwrap_or_default();
    let size = options.iter().rev().find_map(|o| o.strip_prefix("size=")).map(str::to_string);
    let within =
        size.as_deref().and_then(|v| v.parse::<crate::units::ByteSize>().ok()).filter(|s| s.0 > 0 && s.0 <= t.size.0);
    // `nr_blocks` sizes it too, in pages, and the kernel applies whichever
    // comes last.
    if within.is_none() || options.iter().any(|o| o.starts_with("nr_blocks=")) {
        options.retain(|o| !o.starts_with("size=") && !o.starts_with("nr_blocks="));
        options.push(format!("size={}", t.size.0));
        ctx.tighten(
            format!("mounts[{i}].options"),
            format!("{dest} size {}", size.as_deref().unwrap_or("unlimited")),
            format!("{dest} size {}", t.size),
        );
    }
    let mut wanted = vec!["nosuid", "nodev"];
    if !t.exec {
        wanted.push("noexec");
    }
    for flag in wanted {
        let opposite = &flag[2..];
        if !options.iter().any(|o| o == flag) || options.iter().any(|o| o == opposite) {
            options.retain(|o| o != opposite);
            if !options.iter().any(|o| o == flag) {
                options.push(flag.to_string());
            }
            ctx.tighten(format!("mounts[{i}].options"), format!("{dest} {opposite}"), format!("{dest} {flag}"));
        }
    }
    m.set_options(Some(options));
}

fn cap_name(c: &Capability) -> String {
    format!("CAP_{c}")
}

fn parse_cap(name: &str) -> Option<Capability> {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("CAP_").unwrap_or(&n);
    Capability::from_str(n).ok()
}

fn harden_capabilities(ctx: &mut Ctx<'_>, spec: &mut Spec) -> Result<(), HardenError> {
    let Some(keep) = ctx.profile.process.capabilities.clone() else { return Ok(()) };
    let keep: HashSet<Capability> = keep.iter().filter_map(|c| parse_cap(c)).collect();
    let ceiling = ctx.profile.ceilings.capabilities.clone();
    let Some(process) = spec.process_mut() else { return Ok(()) };
    let Some(caps) = process.capabilities().clone() else {
        // No capabilities object: libcontainer would leave root all of its
        // capabilities. Give the job exactly the profile's.
        let set: Capabilities = keep.iter().copied().collect();
        let mut new = LinuxCapabilities::default();
        new.set_bounding(Some(set.clone()));
        new.set_effective(Some(set.clone()));
        new.set_permitted(Some(set));
        new.set_inheritable(Some(Capabilities::new()));
        new.set_ambient(Some(Capabilities::new()));
        process.set_capabilities(Some(new));
        let kept: BTreeSet<String> = keep.iter().map(cap_name).collect();
        ctx.tighten(
            "process.capabilities",
            "unset (all of root's)",
            if kept.is_empty() { "none".to_string() } else { kept.into_iter().collect::<Vec<_>>().join(",") },
        );
        return Ok(());
    };

    let mut dropped: BTreeSet<String> = BTreeSet::new();
    let mut filter = |set_name: &str, set: &Option<Capabilities>| -> Result<Option<Capabilities>, HardenError> {
        let Some(set) = set else { return Ok(None) };
        let mut out = Capabilities::new();
        let mut sorted: Vec<&Capability> = set.iter().collect();
        sorted.sort_by_key(|c| cap_name(c));
        for c in sorted {
            let name = cap_name(c);
            if keep.contains(c) || allowed(&ceiling, &name) {
                out.insert(*c);
            } else if clients::DEFAULT_CAPABILITIES.contains(&name.as_str()) {
                dropped.insert(name);
            } else {
                return Err(HardenError::Refused(Refusal {
                    profile: ctx.profile.name.clone(),
                    field: format!("process.capabilities.{set_name}"),
                    reason: format!("`{name}` is outside the profile's capabilities"),
                }));
            }
        }
        Ok(Some(out))
    };
    let mut new = LinuxCapabilities::default();
    new.set_bounding(filter("bounding", caps.bounding())?);
    new.set_effective(filter("effective", caps.effective())?);
    new.set_permitted(filter("permitted", caps.permitted())?);
    new.set_inheritable(filter("inheritable", caps.inheritable())?);
    new.set_ambient(filter("ambient", caps.ambient())?);
    process.set_capabilities(Some(new));
    if !dropped.is_empty() {
        let kept: BTreeSet<String> = keep.iter().map(cap_name).collect();
        ctx.tighten(
            "process.capabilities",
            dropped.iter().cloned().collect::<Vec<_>>().join(","),
            if kept.is_empty() { "none".to_string() } else { kept.into_iter().collect::<Vec<_>>().join(",") },
        );
    }
    Ok(())
}

/// Under egress rules the job keeps no `CAP_NET_RAW`: a packet socket
/// (`AF_PACKET`) sends frames below nftables' `inet` hooks, to any address.
/// Docker's and containerd's default set carries it, so it is tightened
/// away (and recorded), not refused.
fn drop_raw_network(ctx: &mut Ctx<'_>, spec: &mut Spec) {
    let Some(process) = spec.process_mut() else { return };
    let Some(caps) = process.capabilities().clone() else { return };
    let (caps, had) = crate::egress::without_raw_network(&caps);
    process.set_capabilities(Some(caps));
    if had {
        ctx.tighten("process.capabilities", "CAP_NET_RAW", "dropped: the profile filters the job's network");
    }
}

fn harden_process(ctx: &mut Ctx<'_>, spec: &mut Spec) -> bool {
    let want = ctx.profile.process.no_new_privs;
    let Some(process) = spec.process_mut() else { return want.unwrap_or(false) };
    let current = process.no_new_privileges().unwrap_or(false);
    if want == Some(true) && !current {
        process.set_no_new_privileges(Some(true));
        ctx.tighten("process.noNewPrivileges", "false", "true");
        return true;
    }
    current
}

/// Settings the container's init applies for the job while it still has
/// root's privileges, which the job itself could only make with a
/// capability: a real-time scheduling policy, a raised nice value or the
/// real-time I/O class (`CAP_SYS_NICE`: a job that starves the host's
/// CPUs or disks), and a negative OOM score (`CAP_SYS_RESOURCE`: at -1000
/// no OOM killer, its cgroup's included, may pick the job, so a memory
/// bomb hangs at its limit instead of dying). Each is allowed when the
/// profile keeps the capability or its ceiling allows it. A negative OOM
/// score is lowered to 0 and recorded, since Kubernetes adds one on its own
/// (-997 for Guaranteed pods); the others are refused.
fn harden_init_privileges(ctx: &mut Ctx<'_>, spec: &mut Spec) -> Result<(), HardenError> {
    let may = |cap: &str| {
        ctx.profile.process.capabilities.iter().flatten().any(|c| parse_cap(c).is_some_and(|c| cap_name(&c) == cap))
            || allowed(&ctx.profile.ceilings.capabilities, cap)
    };
    let (nice_ok, resource_ok) = (may("CAP_SYS_NICE"), may("CAP_SYS_RESOURCE"));
    let Some(process) = spec.process_mut() else { return Ok(()) };
    match init_privileges(process, nice_ok, resource_ok) {
        Ok(Some(adj)) => ctx.tighten("process.oomScoreAdj", adj.to_string(), "0"),
        Ok(None) => {}
        Err((field, reason)) => return Err(ctx.refuse(field, reason)),
    }
    Ok(())
}

/// [`harden_init_privileges`] for one process (also `exec`'s): `nice_ok` and
/// `resource_ok` say whether the job may have `CAP_SYS_NICE` and
/// `CAP_SYS_RESOURCE`. Returns the negative OOM score it raised to 0, or the
/// field and reason of a refusal.
pub fn init_privileges(
    process: &mut oci_spec::runtime::Process,
    nice_ok: bool,
    resource_ok: bool,
) -> Result<Option<i32>, (&'static str, String)> {
    // (uid_t)-1 and (gid_t)-1 mean "leave unchanged" to setresuid(2),
    // setresgid(2) and setgroups' callers: a process asking for them would
    // keep the runtime's own IDs (host root) while policy saw 4294967295.
    let user = process.user();
    let unchanged = |what: &str| {
        format!("{what} 4294967295 is (uid_t)-1, which the kernel takes as \"keep the current ID\" (the runtime's root); no process may ask for it")
    };
    if user.uid() == u32::MAX {
        return Err(("process.user.uid", unchanged("uid")));
    }
    if user.gid() == u32::MAX {
        return Err(("process.user.gid", unchanged("gid")));
    }
    if user.additional_gids().iter().flatten().any(|g| *g == u32::MAX) {
        return Err(("process.user.additionalGids", unchanged("gid")));
    }
    if !nice_ok {
        if let Some(s) = process.scheduler() {
            use oci_spec::runtime::LinuxSchedulerPolicy as P;
            if matches!(s.policy(), P::SchedFifo | P::SchedRr | P::SchedDeadline) {
                return Err((
                    "process.scheduler.policy",
                    format!(
                        "the real-time policy `{}` needs CAP_SYS_NICE, outside the profile's capabilities",
                        s.policy()
                    ),
                ));
            }
            if let Some(nice) = s.nice().filter(|n| *n < 0) {
                return Err((
                    "process.scheduler.nice",
                    format!("a negative nice value ({nice}) needs CAP_SYS_NICE, outside the profile's capabilities"),
                ));
            }
        }
        if process
            .io_priority()
            .as_ref()
            .is_some_and(|io| io.class() == oci_spec::runtime::IOPriorityClass::IoprioClassRt)
        {
            return Err((
                "process.ioPriority.class",
                "the real-time I/O class needs CAP_SYS_NICE, outside the profile's capabilities".to_string(),
            ));
        }
    }
    match process.oom_score_adj() {
        Some(adj) if adj < 0 && !resource_ok => {
            process.set_oom_score_adj(Some(0));
            Ok(Some(adj))
        }
        _ => Ok(None),
    }
}

fn harden_rootfs(ctx: &mut Ctx<'_>, spec: &mut Spec) {
    if ctx.profile.rootfs.read_only != Some(true) {
        return;
    }
    if let Some(root) = spec.root_mut() {
        if root.readonly() != Some(true) {
            root.set_readonly(Some(true));
            ctx.tighten("root.readonly", "false", "true");
        }
    }
}

fn harden_paths(ctx: &mut Ctx<'_>, spec: &mut Spec) {
    let masked = ctx.profile.paths.masked.clone();
    let readonly = ctx.profile.paths.readonly.clone();
    if masked.is_empty() && readonly.is_empty() {
        return;
    }
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let mut added = Vec::new();
    let mut merge = |current: Option<Vec<String>>, wanted: &[String], name: &str| -> Vec<String> {
        let mut list = current.unwrap_or_default();
        for p in wanted {
            if !list.contains(p) {
                list.push(p.clone());
                added.push(format!("{name} {p}"));
            }
        }
        list
    };
    let m = merge(linux.masked_paths().clone(), &masked, "masked");
    let r = merge(linux.readonly_paths().clone(), &readonly, "readonly");
    linux.set_masked_paths(Some(m));
    linux.set_readonly_paths(Some(r));
    if !added.is_empty() {
        ctx.tighten("linux.maskedPaths/readonlyPaths", "fewer paths", added.join(", "));
    }
}

fn rlimit_type(name: &str) -> Option<PosixRlimitType> {
    let n = format!("RLIMIT_{}", name.to_ascii_uppercase());
    serde_json::from_value(serde_json::Value::String(n)).ok()
}

/// The index and type of an rlimit listed a second time: runtimes apply the
/// entries in order, so the last wins, while a ceiling check reads the first.
pub fn duplicate_rlimit(rlimits: &[oci_spec::runtime::PosixRlimit]) -> Option<(usize, String)> {
    rlimits.iter().enumerate().find_map(|(i, r)| {
        rlimits[..i].iter().any(|earlier| earlier.typ() == r.typ()).then(|| (i, format!("{:?}", r.typ())))
    })
}

fn harden_rlimits(ctx: &mut Ctx<'_>, spec: &mut Spec) {
    let wanted = ctx.profile.rlimits.clone();
    if wanted.is_empty() {
        return;
    }
    let Some(process) = spec.process_mut() else { return };
    let mut rlimits = process.rlimits().clone().unwrap_or_default();
    for (name, &limit) in &wanted {
        let Some(typ) = rlimit_type(name) else { continue };
        let make = |soft: u64, hard: u64| PosixRlimitBuilder::default().typ(typ).soft(soft).hard(hard).build().ok();
        match rlimits.iter_mut().find(|r| r.typ() == typ) {
            Some(r) => {
                if r.hard() > limit || r.soft() > limit {
                    let before = format!("{name}={}:{}", r.soft(), r.hard());
                    if let Some(new) = make(r.soft().min(limit), r.hard().min(limit)) {
                        *r = new;
                    }
                    ctx.tighten(format!("process.rlimits.{name}"), before, format!("{name}={}:{}", r.soft(), r.hard()));
                }
            }
            None => {
                if let Some(r) = make(limit, limit) {
                    rlimits.push(r);
                    ctx.tighten(format!("process.rlimits.{name}"), "unset", format!("{name}={limit}:{limit}"));
                }
            }
        }
    }
    process.set_rlimits(Some(rlimits));
}

fn over(current: Option<i64>, ceiling: i64) -> bool {
    match current {
        None => true,
        Some(v) => v <= 0 || v > ceiling,
    }
}

fn show(v: Option<i64>) -> String {
    match v {
        None => "unset".into(),
        Some(v) if v <= 0 => "unlimited".into(),
        Some(v) => v.to_string(),
    }
}

fn harden_cgroup(ctx: &mut Ctx<'_>, spec: &mut Spec) {
    let c = ctx.profile.cgroup.clone();
    if c == Default::default() {
        return;
    }
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let resources = linux.resources_mut().get_or_insert_with(LinuxResources::default);
    let mut changes: Vec<(String, String, String)> = Vec::new();

    if c.memory.is_some() || c.memory_swap.is_some() {
        let mem = resources.memory_mut().get_or_insert_with(LinuxMemory::default);
        if let Some(limit) = c.memory {
            let limit = i64::try_from(limit.0).unwrap_or(i64::MAX);
            if over(mem.limit(), limit) {
                changes.push(("linux.resources.memory.limit".into(), show(mem.limit()), limit.to_string()));
                mem.set_limit(Some(limit));
            }
        }
        // A reservation (v1 soft limit, v2 `memory.low`: protection from
        // reclaim) is kept within the job's own memory: "unlimited" would
        // shield all of it from the host's reclaim, above the limit is moot.
        if let (Some(limit), Some(reservation)) = (mem.limit().filter(|l| *l > 0), mem.reservation()) {
            if reservation <= 0 || reservation > limit {
                changes.push(("linux.resources.memory.reservation".into(), show(Some(reservation)), limit.to_string()));
                mem.set_reservation(Some(limit));
            }
        }
        if let Some(swap) = c.memory_swap {
            let floor = mem.limit().unwrap_or(0);
            let profile_swap = i64::try_from(swap.0).unwrap_or(i64::MAX);
            // The profile's swap allowance (memory + swap over memory, as
            // OCI counts them) holds for a lower limit too: under a profile
            // without swap (`memory_swap` = `memory`), Docker's `--memory
            // 128m` (which sends 256m of memory + swap) gets none, as
            // `update` already did.
            let allowance = c.memory.map(|m| profile_swap.saturating_sub(i64::try_from(m.0).unwrap_or(i64::MAX)));
            let swap = match (allowance, mem.limit().filter(|l| *l > 0)) {
                (Some(allowance), Some(limit)) => profile_swap.min(limit.saturating_add(allowance.max(0))),
                _ => profile_swap,
            }
            .max(floor);
            if over(mem.swap(), swap) {
                changes.push(("linux.resources.memory.swap".into(), show(mem.swap()), swap.to_string()));
                mem.set_swap(Some(swap));
            }
        }
    }
    if c.cpus.is_some() || c.cpu_shares.is_some() {
        let cpu = resources.cpu_mut().get_or_insert_with(LinuxCpu::default);
        if let Some(cpus) = c.cpus {
            let period = cpu.period().filter(|p| *p > 0).unwrap_or(100_000);
            let quota = (cpus * period as f64).round() as i64;
            if over(cpu.quota(), quota) {
                changes.push(("linux.resources.cpu.quota".into(), show(cpu.quota()), format!("{quota}/{period}")));
                cpu.set_quota(Some(quota));
                cpu.set_period(Some(period));
            }
        }
        if let Some(shares) = c.cpu_shares {
            // Unset is the kernel's default weight (1024 shares, `cpu.weight`
            // 100): left alone under a ceiling at or above it, so a profile
            // capping the weight at the default costs no cgroup write.
            if cpu.shares().unwrap_or(DEFAULT_CPU_SHARES) > shares {
                changes.push((
                    "linux.resources.cpu.shares".into(),
                    cpu.shares().map(|s| s.to_string()).unwrap_or_else(|| "unset".into()),
                    shares.to_string(),
                ));
                cpu.set_shares(Some(shares));
            }
        }
    }
    if let Some(pids) = c.pids {
        let current = resources.pids().as_ref().map(|p| p.limit());
        if over(current, pids) {
            changes.push(("linux.resources.pids.limit".into(), show(current), pids.to_string()));
            let mut p = LinuxPids::default();
            p.set_limit(pids);
            resources.set_pids(Some(p));
        }
    }
    if let Some(weight) = c.blkio_weight {
        let bio = resources.block_io_mut().get_or_insert_with(Default::default);
        if bio.weight().is_none_or(|w| w > weight) {
            changes.push((
                "linux.resources.blockIO.weight".into(),
                bio.weight().map(|w| w.to_string()).unwrap_or_else(|| "unset".into()),
                weight.to_string(),
            ));
            bio.set_weight(Some(weight));
        }
        // The same ceiling for the other weights, which would otherwise
        // outweigh it (`weightDevice` per device, `leafWeight` on CFQ).
        if bio.leaf_weight().is_some_and(|w| w > weight) {
            changes.push((
                "linux.resources.blockIO.leafWeight".into(),
                bio.leaf_weight().map(|w| w.to_string()).unwrap_or_default(),
                weight.to_string(),
            ));
            bio.set_leaf_weight(Some(weight));
        }
        if let Some(devices) = bio.weight_device().clone() {
            let mut capped = Vec::with_capacity(devices.len());
            for (i, d) in devices.iter().enumerate() {
                let cap = |what: &str, w: Option<u16>, changes: &mut Vec<(String, String, String)>| match w {
                    Some(w) if w > weight => {
                        changes.push((
                            format!("linux.resources.blockIO.weightDevice[{i}].{what}"),
                            w.to_string(),
                            weight.to_string(),
                        ));
                        Some(weight)
                    }
                    w => w,
                };
                let mut b = LinuxWeightDeviceBuilder::default().major(d.major()).minor(d.minor());
                if let Some(w) = cap("weight", d.weight(), &mut changes) {
                    b = b.weight(w);
                }
                if let Some(w) = cap("leafWeight", d.leaf_weight(), &mut changes) {
                    b = b.leaf_weight(w);
                }
                // The builder cannot fail (no required field); if it did, the
                // entry would be left out, never kept uncapped.
                if let Ok(dev) = b.build() {
                    capped.push(dev);
                }
            }
            bio.set_weight_device(Some(capped));
        }
    }
    for (field, from, to) in changes {
        ctx.tighten(field, from, to);
    }
}

/// Under `per_job`, a spec's own user namespace is kept only if its mappings
/// leave host root out; with none, the shim allocates one.
fn check_user_namespace(ctx: &Ctx<'_>, spec: &Spec) -> Result<bool, HardenError> {
    use crate::model::UserNamespaceMode;
    if ctx.profile.user_namespace.mode != UserNamespaceMode::PerJob {
        return Ok(false);
    }
    let Some(linux) = spec.linux() else { return Ok(true) };
    let has_userns = linux.namespaces().iter().flatten().any(|n| n.typ() == LinuxNamespaceType::User);
    if !has_userns {
        return Ok(true);
    }
    for (field, maps) in [("linux.uidMappings", linux.uid_mappings()), ("linux.gidMappings", linux.gid_mappings())] {
        for m in maps.iter().flatten() {
            if m.host_id() == 0 && m.size() > 0 {
                return Err(ctx.refuse(field, "the user namespace maps container IDs onto host root (host ID 0)"));
            }
        }
    }
    Ok(false)
}

fn timeout(ctx: &Ctx<'_>, asks: &JobAsks) -> Result<Option<std::time::Duration>, HardenError> {
    let t = &ctx.profile.timeout;
    match (asks.timeout, t.max) {
        (Some(asked), Some(max)) if asked > max => Err(ctx.refuse(
            "annotations.dev.brig.timeout",
            format!("a timeout of {asked} is longer than the profile's maximum of {max}"),
        )),
        (Some(asked), _) if asked.0.is_zero() => {
            Err(ctx.refuse("annotations.dev.brig.timeout", "a timeout must be longer than zero"))
        }
        (Some(asked), _) => Ok(Some(asked.0)),
        (None, max) => Ok(t.default.or(max).map(|d| d.0)),
    }
}

/// Lets the supervisor apply Landlock under a client's seccomp profile that
/// predates it. Only added when the client's filter does not mention them.
fn allow_supervisor_syscalls(ctx: &mut Ctx<'_>, spec: &mut Spec) {
    let Some(linux) = spec.linux_mut() else { return };
    let Some(seccomp) = linux.seccomp_mut() else { return };
    if seccomp.default_action() == LinuxSeccompAction::ScmpActAllow {
        return;
    }
    let mentioned: HashSet<String> =
        seccomp.syscalls().iter().flatten().flat_map(|s| s.names().iter().cloned()).collect();
    let missing: Vec<String> =
        SUPERVISOR_SYSCALLS.iter().filter(|s| !mentioned.contains(**s)).map(|s| s.to_string()).collect();
    if missing.is_empty() {
        return;
    }
    let mut rule = LinuxSyscall::default();
    rule.set_names(missing.clone());
    rule.set_action(LinuxSeccompAction::ScmpActAllow);
    let mut syscalls = seccomp.syscalls().clone().unwrap_or_default();
    syscalls.push(rule);
    seccomp.set_syscalls(Some(syscalls));
    ctx.tighten(
        "linux.seccomp.syscalls",
        "client profile without Landlock syscalls",
        format!("allowed {} (they only reduce privilege)", missing.join(",")),
    );
}

/// Exposed for `brig profile` and tests.
pub fn client_seccomp_is_present(spec: &Spec) -> Option<&LinuxSeccomp> {
    spec.linux().as_ref().and_then(|l| l.seccomp().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeHost;
    impl Host for FakeHost {
        fn is_host_namespace(&self, _: LinuxNamespaceType, _: &Path) -> bool {
            false
        }
        fn canonical(&self, p: &Path) -> Option<PathBuf> {
            Some(p.to_path_buf())
        }
        fn is_dockerd_process_binary(&self, _: &Path) -> bool {
            false
        }
    }

    fn spec_with_resources(resources: serde_json::Value) -> Spec {
        let mut spec = serde_json::to_value(Spec::default()).unwrap();
        spec["linux"]["resources"] = resources;
        serde_json::from_value(spec).unwrap()
    }

    fn tightened(h: &Hardened, field: &str) -> Option<(String, String)> {
        h.tightened.iter().find(|t| t.field == field).map(|t| (t.requested.clone(), t.applied.clone()))
    }

    /// Every effective spec starts its device rules with runc's "deny all"
    /// (libcgroups applies no rule without `linux.resources`, and on cgroup
    /// v1 a spec's rules only add to the inherited "allow all"): without
    /// resources, with no rules, with an allow only; Docker's own deny-all
    /// is not doubled, and a later `allow a` stays after it, as with runc.
    #[test]
    fn devices_are_denied_unless_a_rule_allows_them() {
        let deny_all = serde_json::json!({"allow": false, "type": "a", "access": "rwm"});
        let kmsg = serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"});
        let all = serde_json::json!({"allow": true, "type": "a", "access": "rwm"});
        let docker = serde_json::json!({"allow": false, "access": "rwm"});
        for profile in ["permissive", "standard", "restricted"] {
            let p = crate::ProfileSet::builtin().get(profile).unwrap().profile.clone();
            let mut cases = vec![
                (spec_with_resources(serde_json::Value::Null), vec![deny_all.clone()]),
                (spec_with_resources(serde_json::json!({})), vec![deny_all.clone()]),
                (spec_with_resources(serde_json::json!({"devices": []})), vec![deny_all.clone()]),
                (spec_with_resources(serde_json::json!({"devices": [docker.clone()]})), vec![docker.clone()]),
            ];
            if p.ceilings.devices {
                // No `linux` at all (the other profiles refuse it: no namespaces).
                let mut no_linux = serde_json::to_value(Spec::default()).unwrap();
                no_linux.as_object_mut().unwrap().remove("linux");
                cases.push((serde_json::from_value(no_linux).unwrap(), vec![deny_all.clone()]));
                cases.push((
                    spec_with_resources(serde_json::json!({"devices": [kmsg.clone()]})),
                    vec![deny_all.clone(), kmsg.clone()],
                ));
                cases.push((
                    spec_with_resources(serde_json::json!({"devices": [docker.clone(), all.clone()]})),
                    vec![docker.clone(), all.clone()],
                ));
            }
            for (i, (spec, want)) in cases.into_iter().enumerate() {
                let h = harden(&p, spec, &JobAsks::default(), &FakeHost).unwrap();
                let rules = h.spec.linux().as_ref().unwrap().resources().as_ref().unwrap().devices().clone().unwrap();
                let got = serde_json::to_value(&rules).unwrap();
                let want: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
                    serde_json::from_value(serde_json::Value::from(want)).unwrap();
                assert_eq!(got, serde_json::to_value(&want).unwrap(), "{profile} case {i}");
            }
        }
    }

    fn with_mounts(mounts: serde_json::Value) -> Spec {
        let mut spec = serde_json::to_value(Spec::default()).unwrap();
        spec["mounts"] = mounts;
        serde_json::from_value(spec).unwrap()
    }

    fn options_at(h: &Hardened, dest: &str) -> Vec<String> {
        let m = h.spec.mounts().iter().flatten().find(|m| m.destination() == Path::new(dest)).unwrap();
        m.options().clone().unwrap_or_default()
    }

    /// `restricted` runs only the image's programs: every mount the job can
    /// write (the client's `/dev` and `/dev/shm`, a volume, a tmpfs of the
    /// spec's) and every bind from the job-data areas is made `noexec`
    /// (recursive binds `rnoexec` too, an `exec` or `rexec` dropped) and the
    /// change recorded; read-only binds from elsewhere and kernel
    /// filesystems keep their options. `standard` changes none of them.
    #[test]
    fn writable_mounts_are_noexec_where_only_the_images_programs_run() {
        let shm = format!("{}/abc/mounts/shm", clients::CLIENT_STATE_PREFIXES[0].trim_end_matches('/'));
        let spec = with_mounts(serde_json::json!([
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755"]},
            {"destination": "/dev/shm", "type": "bind", "source": shm, "options": ["rbind", "ro", "rexec"]},
            {"destination": "/work", "type": "bind", "source": "/var/lib/brig/jobs/a/out", "options": ["rbind", "rw", "rexec"]},
            {"destination": "/bin2", "type": "bind", "source": "/var/lib/brig/jobs/a/out", "options": ["bind", "ro"]},
            {"destination": "/tools", "type": "bind", "source": "/var/lib/brig/data/tools", "options": ["rbind", "ro", "rexec"]},
            {"destination": "/opt", "type": "tmpfs", "source": "tmpfs", "options": ["size=8m", "mode=1777"]},
            {"destination": "/proc", "type": "proc", "source": "proc"},
        ]));
        let restricted = crate::ProfileSet::builtin().get("restricted").unwrap().profile.clone();
        let h = harden(&restricted, spec.clone(), &JobAsks::default(), &FakeHost).unwrap();
        for dest in ["/dev", "/dev/shm", "/work", "/bin2", "/opt"] {
            let options = options_at(&h, dest);
            assert!(options.contains(&"noexec".to_string()), "{dest}: {options:?}");
            assert!(!options.iter().any(|o| o == "exec" || o == "rexec"), "{dest}: {options:?}");
            let (_, applied) = h
                .tightened
                .iter()
                .find(|t| t.applied.starts_with(&format!("{dest} noexec")))
                .map(|t| (t.field.clone(), t.applied.clone()))
                .unwrap_or_else(|| panic!("{dest}: not recorded: {:?}", h.tightened));
            assert!(applied.contains("image's programs"), "{applied}");
        }
        assert!(options_at(&h, "/work").contains(&"rnoexec".to_string()), "a recursive bind's submounts");
        let tools = options_at(&h, "/tools");
        assert!(!tools.iter().any(|o| o.contains("noexec") || o == "rexec"), "exec stays, rexec goes: {tools:?}");
        assert!(!options_at(&h, "/proc").iter().any(|o| o.contains("noexec")));
        let standard = crate::ProfileSet::builtin().get("standard").unwrap().profile.clone();
        let h = harden(&standard, spec, &JobAsks::default(), &FakeHost).unwrap();
        assert!(!options_at(&h, "/dev").contains(&"noexec".to_string()), "standard runs what it likes");
    }

    /// A tmpfs of the spec's in place of the profile's keeps the profile's
    /// bounds: size (0, none or a percentage is unlimited), nosuid, nodev,
    /// noexec.
    #[test]
    fn a_spec_tmpfs_in_the_profiles_place_keeps_its_bounds() {
        let restricted = crate::ProfileSet::builtin().get("restricted").unwrap().profile.clone();
        let limit = restricted.rootfs.tmpfs.iter().find(|t| t.path == "/tmp").unwrap().size.0;
        for (asked, kept) in [
            ("size=0", false),
            ("size=50%", false),
            ("size=1g", false),
            ("size=8m", true),
            ("mode=1777", false),
            ("nr_blocks=2621440", false),
        ] {
            let spec = with_mounts(serde_json::json!([
                {"destination": "/tmp/", "type": "tmpfs", "source": "tmpfs", "options": [asked, "exec", "suid", "dev"]},
            ]));
            let h = harden(&restricted, spec, &JobAsks::default(), &FakeHost).unwrap();
            let tmps: Vec<_> =
                h.spec.mounts().iter().flatten().filter(|m| m.destination().starts_with("/tmp")).collect();
            assert_eq!(tmps.len(), 1, "the profile's /tmp is not added over the spec's: {tmps:?}");
            let options = options_at(&h, "/tmp/");
            let size: Vec<_> = options.iter().filter(|o| o.starts_with("size=")).collect();
            let want = if kept { asked.to_string() } else { format!("size={limit}") };
            assert_eq!(size, vec![&want], "{asked}: {options:?}");
            assert!(!options.iter().any(|o| o.starts_with("nr_blocks=")), "{asked}: {options:?}");
            for flag in ["nosuid", "nodev", "noexec"] {
                assert!(options.iter().any(|o| o == flag), "{asked}: {flag}: {options:?}");
                assert!(!options.iter().any(|o| o == &flag[2..]), "{asked}: {options:?}");
            }
        }
    }

    /// Several tmpfs mounts stacked at the profile's path are each bounded,
    /// whatever is mounted there first.
    #[test]
    fn every_spec_tmpfs_at_the_profiles_path_is_bounded() {
        let restricted = crate::ProfileSet::builtin().get("restricted").unwrap().profile.clone();
        let spec = with_mounts(serde_json::json!([
            {"destination": "/tmp", "type": "bind", "source": "/var/lib/brig/jobs/a", "options": ["rbind", "rw"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=8m", "nr_blocks=2621440", "exec"]},
        ]));
        let h = harden(&restricted, spec, &JobAsks::default(), &FakeHost).unwrap();
        let tmpfs = h.spec.mounts().iter().flatten().find(|m| m.typ().as_deref() == Some("tmpfs")).unwrap();
        let options = tmpfs.options().clone().unwrap();
        assert!(!options.iter().any(|o| o.starts_with("nr_blocks=") || o == "exec"), "{options:?}");
        assert!(options.iter().any(|o| o == "noexec"), "{options:?}");
    }

    /// `rrw` next to the `ro` added to a kernel filesystem would clear it
    /// (libcontainer applies recursive attributes last): it is dropped.
    #[test]
    fn a_kernel_filesystem_made_read_only_loses_rrw() {
        let spec = with_mounts(serde_json::json!([
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "rrw"]},
        ]));
        for profile in ["standard", "restricted"] {
            let p = crate::ProfileSet::builtin().get(profile).unwrap().profile.clone();
            let h = harden(&p, spec.clone(), &JobAsks::default(), &FakeHost).unwrap();
            let options = options_at(&h, "/sys");
            assert!(
                options.contains(&"ro".to_string()) && !options.iter().any(|o| o == "rrw" || o == "rw"),
                "{options:?}"
            );
        }
    }

    /// A hugepage size is the kernel's name for one (`2MB`), never a path.
    #[test]
    fn hugepage_sizes_are_names_not_paths() {
        for ok in ["2MB", "1GB", "64KB"] {
            assert_eq!(hugepage_size_problem(ok), None, "{ok}");
        }
        for bad in ["2MB/../../x", "", "MB", "2mb", "2 MB", "../2MB", "2MB\0"] {
            assert!(hugepage_size_problem(bad).is_some(), "{bad}");
        }
        let spec =
            spec_with_resources(serde_json::json!({"hugepageLimits": [{"pageSize": "2MB/../../x", "limit": 1}]}));
        for profile in ["permissive", "standard", "restricted"] {
            let p = crate::ProfileSet::builtin().get(profile).unwrap().profile.clone();
            let e = harden(&p, spec.clone(), &JobAsks::default(), &FakeHost).unwrap_err().to_string();
            assert!(e.contains("hugepageLimits[0].pageSize"), "{profile}: {e}");
        }
    }

    /// RLIMIT_NICE and RLIMIT_RTPRIO above 0 would let a job without
    /// CAP_SYS_NICE lower its nice value or take real-time priority (a
    /// review finding): `restricted` and `standard` hold both at 0, set when
    /// the spec has none, lowered when it asks for more (and recorded).
    #[test]
    fn scheduling_rlimits_are_held_at_zero() {
        let mut spec = serde_json::to_value(Spec::default()).unwrap();
        spec["process"]["rlimits"] = serde_json::json!([
            {"type": "RLIMIT_NICE", "soft": 40, "hard": 40},
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}
        ]);
        let spec: Spec = serde_json::from_value(spec).unwrap();
        for profile in ["restricted", "standard"] {
            let p = crate::ProfileSet::builtin().get(profile).unwrap().profile.clone();
            let h = harden(&p, spec.clone(), &JobAsks::default(), &FakeHost).unwrap();
            let rlimits = h.spec.process().as_ref().unwrap().rlimits().clone().unwrap();
            for typ in [PosixRlimitType::RlimitNice, PosixRlimitType::RlimitRtprio] {
                let r = rlimits.iter().find(|r| r.typ() == typ).unwrap_or_else(|| panic!("{profile}: {typ:?} unset"));
                assert_eq!((r.soft(), r.hard()), (0, 0), "{profile}: {typ:?}");
            }
            assert!(h.tightened.iter().any(|t| t.field == "process.rlimits.nice"), "{profile}: {:?}", h.tightened);
        }
    }

    /// An rlimit listed twice is refused under every profile: the first
    /// would be checked, the last applied.
    #[test]
    fn an_rlimit_listed_twice_is_refused() {
        let mut spec = serde_json::to_value(Spec::default()).unwrap();
        spec["process"]["rlimits"] = serde_json::json!([
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
            {"type": "RLIMIT_CORE", "soft": 18446744073709551615u64, "hard": 18446744073709551615u64}
        ]);
        let spec: Spec = serde_json::from_value(spec).unwrap();
        for profile in ["restricted", "permissive"] {
            let p = crate::ProfileSet::builtin().get(profile).unwrap().profile.clone();
            let e = harden(&p, spec.clone(), &JobAsks::default(), &FakeHost).unwrap_err().to_string();
            assert!(e.contains("process.rlimits[2]") && e.contains("twice"), "{profile}: {e}");
        }
    }

    /// A process asking for uid or gid 4294967295, (uid_t)-1, which
    /// setresuid(2) and setresgid(2) take as "keep the current ID" (the
    /// runtime's root), is refused under every profile, for the job and
    /// for `exec` (`init_privileges`); 4294967294 is an ordinary ID.
    #[test]
    fn the_no_change_id_is_refused_for_every_process() {
        for (user, field) in [
            (serde_json::json!({"uid": 4294967295u32, "gid": 0}), "process.user.uid"),
            (serde_json::json!({"uid": 0, "gid": 4294967295u32}), "process.user.gid"),
            (
                serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 4294967295u32]}),
                "process.user.additionalGids",
            ),
        ] {
            let mut spec = serde_json::to_value(Spec::default()).unwrap();
            spec["process"]["user"] = user.clone();
            let spec: Spec = serde_json::from_value(spec).unwrap();
            for profile in ["restricted", "standard", "permissive"] {
                let p = crate::ProfileSet::builtin().get(profile).unwrap().profile.clone();
                let e = harden(&p, spec.clone(), &JobAsks::default(), &FakeHost).unwrap_err().to_string();
                assert!(e.contains(field) && e.contains("4294967295"), "{profile} {user}: {e}");
            }
            let mut process = spec.process().clone().unwrap();
            let (f, _) = init_privileges(&mut process, true, true).unwrap_err();
            assert_eq!(f, field);
        }
        let mut spec = serde_json::to_value(Spec::default()).unwrap();
        spec["process"]["user"] = serde_json::json!({"uid": 4294967294u32, "gid": 4294967294u32});
        let mut process = serde_json::from_value::<Spec>(spec).unwrap().process().clone().unwrap();
        init_privileges(&mut process, true, true).unwrap();
    }

    /// A unified key that leads out of the job's cgroup, or moves processes
    /// into it, is refused under every profile, one without cgroup limits too.
    #[test]
    fn unified_keys_name_one_file_of_the_jobs_cgroup() {
        let unlimited = crate::parse("name = \"u\"\n[ceilings]\ncapabilities = [\"ALL\"]\n", "u").unwrap();
        for key in ["../../../../proc/sys/kernel/core_pattern", "cgroup.procs", ".."] {
            let spec = spec_with_resources(serde_json::json!({"unified": {key: "|/x"}}));
            let e = harden(&unlimited, spec, &JobAsks::default(), &FakeHost).unwrap_err().to_string();
            assert!(e.contains(&format!("linux.resources.unified.{key}")), "{key}: {e}");
        }
        let spec = spec_with_resources(serde_json::json!({"unified": {"memory.high": "1G"}}));
        harden(&unlimited, spec, &JobAsks::default(), &FakeHost).unwrap();
    }

    /// A bind source deeper than any real one is refused before the policy
    /// builds an entity for each of its ancestors.
    #[test]
    fn a_very_deep_bind_source_is_refused() {
        let profile = crate::parse("name = \"p\"\n[ceilings]\nreadonly_mounts = [\"/data/\"]\n", "p").unwrap();
        let deep = format!("/data{}", "/d".repeat(100));
        let mut spec = serde_json::to_value(Spec::default()).unwrap();
        spec["mounts"] =
            serde_json::json!([{"destination": "/in", "type": "bind", "source": deep, "options": ["rbind", "ro"]}]);
        let spec: Spec = serde_json::from_value(spec).unwrap();
        let e = harden(&profile, spec, &JobAsks::default(), &FakeHost).unwrap_err().to_string();
        assert!(e.contains("mounts[0]") && e.contains("directories deep"), "{e}");
    }

    /// A recursive read-only bind of a path the profile does not let the job
    /// write becomes read-only all the way down (`rro`), recorded; one the
    /// profile lets it write, or a non-recursive bind, stays as asked.
    #[test]
    fn a_recursive_read_only_bind_is_read_only_below_too() {
        let profile = crate::parse(
            "name = \"p\"\n[ceilings]\nwritable_mounts = [\"/jobs/\"]\nreadonly_mounts = [\"/data/\", \"/jobs/\"]\n",
            "p",
        )
        .unwrap();
        let mut spec = serde_json::to_value(Spec::default()).unwrap();
        spec["mounts"] = serde_json::json!([
            {"destination": "/in", "type": "bind", "source": "/data/in", "options": ["rbind", "ro"]},
            {"destination": "/top", "type": "bind", "source": "/data/top", "options": ["bind", "ro"]},
            {"destination": "/mine", "type": "bind", "source": "/jobs/a/in", "options": ["rbind", "ro"]}
        ]);
        let spec: Spec = serde_json::from_value(spec).unwrap();
        let h = harden(&profile, spec, &JobAsks::default(), &FakeHost).unwrap();
        let options = |dest: &str| {
            let mounts = h.spec.mounts().clone().unwrap();
            mounts.iter().find(|m| m.destination() == Path::new(dest)).unwrap().options().clone().unwrap()
        };
        assert_eq!(options("/in"), ["rbind", "ro", "rro"]);
        assert_eq!(options("/top"), ["bind", "ro"]);
        assert_eq!(options("/mine"), ["rbind", "ro"]);
        let (_, applied) = h
            .tightened
            .iter()
            .find(|t| t.applied.starts_with("/in "))
            .map(|t| (t.requested.clone(), t.applied.clone()))
            .expect("recorded");
        assert!(applied.contains("rro"), "{applied}");
    }

    /// A profile with a timeout needs the job's own pid namespace (its
    /// supervisor must be pid 1); one without may join another's.
    #[test]
    fn a_timeout_needs_the_jobs_own_pid_namespace() {
        let mut spec = serde_json::to_value(Spec::default()).unwrap();
        spec["linux"]["namespaces"] = serde_json::json!([
            {"type": "pid", "path": "/proc/4242/ns/pid"}, {"type": "mount"}, {"type": "network"},
            {"type": "ipc"}, {"type": "uts"}, {"type": "cgroup"}
        ]);
        let spec: Spec = serde_json::from_value(spec).unwrap();
        let timed = crate::parse("name = \"timed\"\n[timeout]\ndefault = \"1m\"\n", "timed").unwrap();
        let e = harden(&timed, spec.clone(), &JobAsks::default(), &FakeHost).unwrap_err().to_string();
        assert!(e.contains("linux.namespaces[0]") && e.contains("own pid namespace"), "{e}");
        let untimed = crate::parse("name = \"untimed\"\n[ceilings]\ncapabilities = [\"ALL\"]\n", "untimed").unwrap();
        harden(&untimed, spec.clone(), &JobAsks::default(), &FakeHost).unwrap();
        // A timeout the job asks for needs it too.
        let asks = JobAsks { timeout: Some(crate::Duration(std::time::Duration::from_secs(60))), ..Default::default() };
        let e = harden(&untimed, spec, &asks, &FakeHost).unwrap_err().to_string();
        assert!(e.contains("linux.namespaces[0]") && e.contains("own pid namespace"), "{e}");
        // And the host's pid namespace (no entry), where the profile allows it.
        let mut host_pid = serde_json::to_value(Spec::default()).unwrap();
        host_pid["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "network"}]);
        let host_pid: Spec = serde_json::from_value(host_pid).unwrap();
        let open = crate::parse(
            "name = \"open\"\n[timeout]\ndefault = \"1m\"\n[ceilings]\nhost_namespaces = [\"*\"]\ncapabilities = [\"ALL\"]\n",
            "open",
        )
        .unwrap();
        let e = harden(&open, host_pid, &JobAsks::default(), &FakeHost).unwrap_err().to_string();
        assert!(e.contains("no pid namespace of the job's own"), "{e}");
    }

    /// `memfd_noexec` is set in the job's pid namespace: never in a joined
    /// one (others' jobs) or the host's, so a profile with it needs the
    /// job's own; the plan carries it to the shim.
    #[test]
    fn memfd_noexec_needs_the_jobs_own_pid_namespace() {
        let with_ns = |ns: serde_json::Value| -> Spec {
            let mut spec = serde_json::to_value(Spec::default()).unwrap();
            spec["linux"]["namespaces"] = ns;
            serde_json::from_value(spec).unwrap()
        };
        let rest = serde_json::json!([{"type": "mount"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}]);
        let mut joined = serde_json::json!([{"type": "pid", "path": "/proc/4242/ns/pid"}]);
        let mut own = serde_json::json!([{"type": "pid"}]);
        for extra in rest.as_array().unwrap() {
            joined.as_array_mut().unwrap().push(extra.clone());
            own.as_array_mut().unwrap().push(extra.clone());
        }
        let sealed = crate::parse(
            "name = \"sealed\"\n[process]\nmemfd_noexec = true\n[ceilings]\nhost_namespaces = [\"pid\"]\n",
            "sealed",
        )
        .unwrap();
        let e = harden(&sealed, with_ns(joined.clone()), &JobAsks::default(), &FakeHost).unwrap_err().to_string();
        assert!(e.contains("linux.namespaces[0]") && e.contains("process.memfd_noexec"), "{e}");
        let e = harden(&sealed, with_ns(rest), &JobAsks::default(), &FakeHost).unwrap_err().to_string();
        assert!(e.contains("no pid namespace of the job's own") && e.contains("memfd_noexec"), "{e}");
        assert!(harden(&sealed, with_ns(own.clone()), &JobAsks::default(), &FakeHost).unwrap().plan.memfd_noexec);
        // Without it, the joined namespace is fine and nothing is set.
        let plain = crate::parse("name = \"plain\"\n", "plain").unwrap();
        assert!(!harden(&plain, with_ns(joined), &JobAsks::default(), &FakeHost).unwrap().plan.memfd_noexec);
        let restricted = crate::ProfileSet::builtin().get("restricted").unwrap().profile.clone();
        assert!(harden(&restricted, with_ns(own), &JobAsks::default(), &FakeHost).unwrap().plan.memfd_noexec);
    }

    /// Shares of a contended resource stay within the profile's: a weight
    /// per device (or a leaf weight) would otherwise outweigh the capped
    /// cgroup weight, and a memory reservation shield more than the job's
    /// own memory from the host's reclaim.
    /// The profile's swap allowance holds below its memory ceiling: under
    /// `restricted` (no swap), Docker's `--memory 128m` (memory + swap 256m)
    /// gets no swap; a profile allowing 256m of swap allows it over a lower
    /// limit too, and never more than its own memory + swap.
    #[test]
    fn a_lower_memory_limit_keeps_the_profiles_swap_allowance() {
        let docker =
            |limit: i64, swap: i64| spec_with_resources(serde_json::json!({"memory": {"limit": limit, "swap": swap}}));
        let restricted = crate::ProfileSet::builtin().get("restricted").unwrap().profile.clone();
        let swapping =
            crate::parse("name = \"swapping\"\n[cgroup]\nmemory = \"512m\"\nmemory_swap = \"768m\"\n", "swapping")
                .unwrap();
        let mib = 1024 * 1024;
        for (profile, limit, swap, want) in [
            (&restricted, 128 * mib, 256 * mib, 128 * mib),
            (&restricted, 128 * mib, -1, 128 * mib),
            (&restricted, 128 * mib, 128 * mib, 128 * mib),
            (&swapping, 128 * mib, 1024 * mib, 384 * mib),
            (&swapping, 128 * mib, 200 * mib, 200 * mib),
            (&swapping, 600 * mib, 2048 * mib, 768 * mib),
        ] {
            let h = harden(profile, docker(limit, swap), &JobAsks::default(), &FakeHost).unwrap();
            let mem = h.spec.linux().as_ref().unwrap().resources().clone().unwrap().memory().unwrap();
            assert_eq!(mem.swap(), Some(want), "{} limit {limit} swap {swap}", profile.name);
        }
    }

    #[test]
    fn weights_and_reservations_are_held_to_the_profile() {
        let profile = crate::parse(
            "name = \"weighted\"\n[cgroup]\nmemory = \"256m\"\ncpu_shares = 512\nblkio_weight = 200\n",
            "weighted",
        )
        .unwrap();
        let spec = spec_with_resources(serde_json::json!({
            "memory": {"limit": 1073741824i64, "reservation": -1},
            "cpu": {"shares": 262144},
            "blockIO": {"weight": 1000, "leafWeight": 1000, "weightDevice": [
                {"major": 8, "minor": 0, "weight": 1000, "leafWeight": 150},
                {"major": 8, "minor": 16, "weight": 100}
            ]}
        }));
        let h = harden(&profile, spec, &JobAsks::default(), &FakeHost).unwrap();
        let r = h.spec.linux().as_ref().unwrap().resources().clone().unwrap();
        let mem = r.memory().unwrap();
        assert_eq!((mem.limit(), mem.reservation()), (Some(268435456), Some(268435456)));
        assert_eq!(tightened(&h, "linux.resources.memory.reservation"), Some(("unlimited".into(), "268435456".into())));
        assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(512));
        let bio = r.block_io().clone().unwrap();
        assert_eq!((bio.weight(), bio.leaf_weight()), (Some(200), Some(200)));
        let devices = bio.weight_device().clone().unwrap();
        let got: Vec<_> = devices.iter().map(|d| (d.major(), d.minor(), d.weight(), d.leaf_weight())).collect();
        assert_eq!(got, vec![(8, 0, Some(200), Some(150)), (8, 16, Some(100), None)]);
        assert_eq!(
            tightened(&h, "linux.resources.blockIO.weightDevice[0].weight"),
            Some(("1000".into(), "200".into()))
        );
        assert_eq!(tightened(&h, "linux.resources.blockIO.weightDevice[0].leafWeight"), None);
        assert_eq!(tightened(&h, "linux.resources.blockIO.weightDevice[1].weight"), None);

        // A reservation within the limit is the job's own business.
        let spec =
            spec_with_resources(serde_json::json!({"memory": {"limit": 134217728i64, "reservation": 67108864i64}}));
        let h = harden(&profile, spec, &JobAsks::default(), &FakeHost).unwrap();
        let r = h.spec.linux().as_ref().unwrap().resources().clone().unwrap();
        assert_eq!(r.memory().unwrap().reservation(), Some(67108864));
        assert_eq!(tightened(&h, "linux.resources.memory.reservation"), None);
    }

    /// `restricted` holds a job's CPU weight at the default (1024 shares):
    /// a spec's 262144 (what `--cpu-shares` or a Kubernetes request of 256
    /// CPUs sends) would win most of a contended CPU from every other job.
    /// Unset stays unset (the same weight, and no cgroup write); a lower
    /// weight is the job's own.
    #[test]
    fn restricted_holds_the_cpu_weight_at_the_default() {
        let restricted = crate::ProfileSet::builtin().get("restricted").unwrap().profile.clone();
        let shares_of = |cpu: serde_json::Value| {
            let h = harden(
                &restricted,
                spec_with_resources(serde_json::json!({ "cpu": cpu })),
                &JobAsks::default(),
                &FakeHost,
            )
            .unwrap();
            let shares = h.spec.linux().as_ref().unwrap().resources().clone().unwrap().cpu().clone().unwrap().shares();
            (shares, tightened(&h, "linux.resources.cpu.shares"))
        };
        assert_eq!(
            shares_of(serde_json::json!({"shares": 262144})),
            (Some(1024), Some(("262144".into(), "1024".into())))
        );
        assert_eq!(shares_of(serde_json::json!({})), (None, None));
        assert_eq!(shares_of(serde_json::json!({"shares": 2})), (Some(2), None));
        // A profile below the default sets it where the spec has none.
        let light = crate::parse("name = \"light\"\n[cgroup]\ncpu_shares = 512\n", "light").unwrap();
        let h = harden(&light, spec_with_resources(serde_json::json!({"cpu": {}})), &JobAsks::default(), &FakeHost)
            .unwrap();
        assert_eq!(
            h.spec.linux().as_ref().unwrap().resources().clone().unwrap().cpu().clone().unwrap().shares(),
            Some(512)
        );
    }
}
