//! Rootless brig: `brig` run by an unprivileged user (docs/rootless.md).
//!
//! Two callers are rootless:
//!
//! * **unprivileged**: brig's effective uid is not 0 (a user running `brig`
//!   directly). brig gives every job a user namespace mapping container root to
//!   the user's own uid and container IDs 1.. to the user's subordinate ranges
//!   (`/etc/subuid`, `/etc/subgid`), written by the setuid helpers `newuidmap`
//!   and `newgidmap` (Debian's `uidmap`). Every job of one user gets the same
//!   mapping: the user's whole subordinate range, not a slice of it (see
//!   docs/rootless.md for why), so the per-job range allocator of rootful brig
//!   (`userns.rs`) is not used, and nor are idmapped mounts (they need
//!   `CAP_SYS_ADMIN` in the initial user namespace): files the user owns
//!   appear owned by root in the job, files of other host users by `nobody`.
//! * **in a user namespace**: brig's effective uid is 0 inside a user namespace
//!   someone else made (rootless Podman runs its runtime in the namespace of its
//!   "pause" process). The job runs in that namespace, whose root is the
//!   unprivileged user on the host; brig adds none of its own.
//!
//! Either way the job gets its own network namespace (loopback only unless the
//! client joined it to one it made), brig's supervisor, seccomp programs and
//! Landlock ruleset exactly as rootful jobs do, and cgroup limits **only where a
//! cgroup subtree is delegated to the user**. Without one, brig refuses a job
//! whose profile (or spec) sets limits, naming what is missing; on cgroup v1 it
//! refuses every job, because libcontainer 0.7's v1 manager puts each container
//! into a cgroup of every mounted hierarchy.
//!
//! On cgroup v1 an unprivileged user cannot write `devices.allow`/`deny`
//! (they need `CAP_SYS_ADMIN` in the initial namespace), and libcontainer's v1
//! manager always writes them when it applies limits. brig therefore writes a
//! rootless v1 job's limits itself (memory, swap, pids, cpu, cpuset, blkio),
//! before the job's processes exist, and hands libcontainer a spec without
//! `linux.resources`, so that libcontainer only creates the job's cgroups and
//! joins them. The device cgroup is the delegated parent's: the job cannot
//! create device nodes in its user namespace anyway.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, LinuxResources, Spec};
use serde::{Deserialize, Serialize};

/// Where v1 and v2 hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The conventional delegated parent of a user's jobs: `/brig-rootless/<uid>`.
pub const CONVENTIONAL_PARENT: &str = "/brig-rootless";
/// Where the setuid ID-mapping helpers are looked for (besides `PATH`).
const HELPER_DIRS: &[&str] = &["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"];
/// The v1 controllers libcontainer 0.7's v1 manager joins when mounted.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// Why a rootless launch cannot go ahead. Every message names what is missing
/// and how to provide it.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error(
        "rootless brig needs subordinate {kind}s for user `{user}` (uid {uid}) in `{}`, and there are none: \
         ask an administrator to add a range, e.g. `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}` \
         (or give the spec its own single-ID mapping, `brig spec --rootless`)",
        file.display()
    )]
    NoSubids { kind: &'static str, user: String, uid: u32, file: PathBuf },
    #[error("reading `{}`: {source}", file.display())]
    SubidRead {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "rootless brig maps the job's IDs with `{helper}` (several ranges need the setuid helper), which was not found \
         in PATH or {}: install Debian's `uidmap` package (`apt-get install uidmap`)",
        HELPER_DIRS.join(", ")
    )]
    NoHelper { helper: &'static str },
    #[error(
        "`{}` is neither setuid root nor has file capabilities (or sits on a nosuid mount), so it cannot write the \
         job's {kind} map: reinstall Debian's `uidmap` (`apt-get install --reinstall uidmap`) or `chmod u+s` it as root",
        path.display()
    )]
    HelperNotPrivileged { path: PathBuf, kind: &'static str },
    #[error(
        "unprivileged user namespaces are disabled ({setting}): rootless brig needs them; \
         an administrator can enable them with `sysctl {enable}`"
    )]
    UsernsDisabled { setting: String, enable: &'static str },
    #[error(
        "linux.{field}: host IDs {start}..{end} are neither the caller's own {kind} ({own}) nor in its subordinate \
         ranges in `{}` ({ranges}): rootless brig (and newuidmap) cannot map them",
        file.display()
    )]
    UnmappableIds {
        field: &'static str,
        kind: &'static str,
        start: u64,
        end: u64,
        own: u32,
        file: PathBuf,
        ranges: String,
    },
    #[error(
        "the spec joins network namespace `{0}`, but rootless brig creates the job's user namespace, which cannot \
         enter a network namespace owned by another user namespace: let the job have its own (remove the path), \
         or run brig inside the namespace's user namespace (as rootless Podman does)"
    )]
    JoinedNetns(String),
    #[error("{0}")]
    NotDelegated(String),
    #[error("rootless cgroup v1: {0}")]
    Unsupported(String),
    #[error("writing the job's cgroup limit `{}`: {source}", path.display())]
    CgroupWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How brig was invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Root in the initial user namespace.
    Rootful,
    /// An unprivileged effective uid.
    Unprivileged,
    /// uid 0 inside a user namespace someone else made (rootless Podman).
    UserNamespace,
}

/// The caller, as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub mode: Mode,
    /// The caller's uid and gid in the initial user namespace.
    pub host_uid: u32,
    pub host_gid: u32,
    /// The host user's name, if /etc/passwd has it.
    pub user: Option<String>,
}

/// The `0 0 4294967295` map of the initial user namespace.
fn is_initial_map(map: &str) -> bool {
    let f: Vec<&str> = map.split_whitespace().collect();
    f == ["0", "0", "4294967295"]
}

/// The outside ID of inside ID `id` in a `/proc/PID/{u,g}id_map`.
fn map_to_host(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let f: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        match f[..] {
            [inside, outside, count] if u64::from(id) >= inside && u64::from(id) < inside + count => {
                u32::try_from(outside + (u64::from(id) - inside)).ok()
            }
            _ => None,
        }
    })
}

impl Caller {
    /// Reads the caller's identity (euid, and `/proc/self/uid_map` when euid is 0).
    pub fn detect() -> Caller {
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        let gid_map = std::fs::read_to_string("/proc/self/gid_map").unwrap_or_default();
        let (mode, host_uid, host_gid) = if euid != 0 {
            (Mode::Unprivileged, euid, egid)
        } else if uid_map.is_empty() || is_initial_map(&uid_map) {
            (Mode::Rootful, 0, 0)
        } else {
            (
                Mode::UserNamespace,
                map_to_host(&uid_map, 0).unwrap_or(u32::MAX),
                map_to_host(&gid_map, egid).unwrap_or(u32::MAX),
            )
        };
        let user = passwd_name(host_uid);
        Caller { mode, host_uid, host_gid, user }
    }

    pub fn is_rootless(&self) -> bool {
        self.mode != Mode::Rootful
    }

    fn user_display(&self) -> String {
        self.user.clone().unwrap_or_else(|| self.host_uid.to_string())
    }
}

/// Whether this brig process is rootless (cheap: one file read).
pub fn is_rootless() -> bool {
    Caller::detect().is_rootless()
}

/// The name of host uid `uid` in /etc/passwd (read directly: inside a user
/// namespace the C library would see the same file, but this avoids NSS).
fn passwd_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _ = f.next();
        (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// The default state root of a rootless caller: `$XDG_RUNTIME_DIR/brig`, as
/// runc uses `$XDG_RUNTIME_DIR/runc`; without it `/run/user/<uid>/brig`.
pub fn default_state_root(caller: &Caller) -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("brig"),
        _ => PathBuf::from(format!("/run/user/{}/brig", caller.host_uid)),
    }
}

/// Why the default rootless state root may be unusable, for error messages.
pub fn state_root_hint() -> String {
    let set = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| !d.is_empty());
    if set {
        "rootless brig keeps container state in $XDG_RUNTIME_DIR/brig: make XDG_RUNTIME_DIR a directory you own, or pass --root".into()
    } else {
        "rootless brig keeps container state in $XDG_RUNTIME_DIR/brig, and XDG_RUNTIME_DIR is not set (so it tried \
         /run/user/<uid>/brig): set XDG_RUNTIME_DIR to a directory you own (0700), or pass --root"
            .into()
    }
}

/// The configuration of a rootless caller: `$XDG_CONFIG_HOME/brig/config.toml`
/// (`~/.config/brig/config.toml`), if that exists; else the system-wide one.
pub fn user_config() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".config"),
    };
    Some(base.join("brig").join("config.toml"))
}

// ------------------------------------------------------------ subordinate IDs

/// One `/etc/subuid` line's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubidRange {
    pub start: u32,
    pub count: u32,
}

/// The ranges of `user` (by name or uid, as shadow's newuidmap accepts) in a
/// subordinate-ID file, in file order.
pub fn subid_ranges(text: &str, user: Option<&str>, uid: u32) -> Vec<SubidRange> {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?.parse().ok()?, f.next()?.parse().ok()?);
            (Some(who) == user || who == uid).then_some(SubidRange { start, count })
        })
        .filter(|r| r.count > 0)
        .collect()
}

fn read_subids(file: &Path, caller: &Caller) -> Result<Vec<SubidRange>, RootlessError> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(subid_ranges(&t, caller.user.as_deref(), caller.host_uid)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(source) => Err(RootlessError::SubidRead { file: file.to_path_buf(), source }),
    }
}

/// Container 0 → `own`, then container 1.. → each subordinate range in turn.
pub fn build_map(own: u32, ranges: &[SubidRange]) -> Vec<[u32; 3]> {
    let mut map = vec![[0, own, 1]];
    let mut next: u64 = 1;
    for r in ranges {
        if next + u64::from(r.count) > u64::from(u32::MAX) {
            break;
        }
        map.push([next as u32, r.start, r.count]);
        next += u64::from(r.count);
    }
    map
}

/// Checks that every host ID of `map` is the caller's own or subordinate.
fn check_mappable(
    field: &'static str,
    kind: &'static str,
    map: &[LinuxIdMapping],
    own: u32,
    ranges: &[SubidRange],
    file: &Path,
) -> Result<(), RootlessError> {
    for m in map {
        let (start, end) = (u64::from(m.host_id()), u64::from(m.host_id()) + u64::from(m.size()));
        let own_ok = start == u64::from(own) && end == start + 1;
        let sub_ok =
            ranges.iter().any(|r| start >= u64::from(r.start) && end <= u64::from(r.start) + u64::from(r.count));
        if !(own_ok || sub_ok) {
            let shown: Vec<String> = ranges.iter().map(|r| format!("{}+{}", r.start, r.count)).collect();
            return Err(RootlessError::UnmappableIds {
                field,
                kind,
                start,
                end,
                own,
                file: file.to_path_buf(),
                ranges: if shown.is_empty() { "none".into() } else { shown.join(", ") },
            });
        }
    }
    Ok(())
}

/// A setuid ID-mapping helper: its path, or why it cannot be used.
fn find_helper(name: &'static str, kind: &'static str) -> Result<PathBuf, RootlessError> {
    use std::os::unix::fs::MetadataExt;
    let in_path: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect()).unwrap_or_default();
    let fixed = HELPER_DIRS.iter().map(|d| Path::new(d).join(name));
    let path =
        in_path.into_iter().chain(fixed).find(|p| p.is_file()).ok_or(RootlessError::NoHelper { helper: name })?;
    let meta = std::fs::metadata(&path).map_err(|_| RootlessError::NoHelper { helper: name })?;
    let setuid_root = meta.uid() == 0 && meta.mode() & 0o4000 != 0;
    // A nosuid mount makes the kernel ignore both.
    let nosuid =
        nix::sys::statvfs::statvfs(&path).is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID));
    if nosuid || !(setuid_root || has_file_caps(&path)) {
        return Err(RootlessError::HelperNotPrivileged { path, kind });
    }
    Ok(path)
}

fn has_file_caps(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    let name = c"security.capability";
    // SAFETY: NUL-terminated strings; a null buffer of size 0 asks for the size.
    let n = unsafe { libc::getxattr(c.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    n > 0
}

/// libcontainer 0.7 looks the helpers up in `PATH` (and ignores their exit
/// status): make sure the directory of the one brig checked comes first.
fn put_first_in_path(helper: &Path) {
    let Some(dir) = helper.parent() else { return };
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&current).filter(|d| d != dir).collect();
    dirs.insert(0, dir.to_path_buf());
    if let Ok(joined) = std::env::join_paths(dirs) {
        // brig is single-threaded here (before libcontainer's build).
        std::env::set_var("PATH", joined);
    }
}

fn check_userns_enabled() -> Result<(), RootlessError> {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Err(RootlessError::UsernsDisabled {
            setting: "kernel.unprivileged_userns_clone = 0".into(),
            enable: "kernel.unprivileged_userns_clone=1",
        });
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Err(RootlessError::UsernsDisabled {
            setting: "user.max_user_namespaces = 0".into(),
            enable: "user.max_user_namespaces=15000",
        });
    }
    Ok(())
}

// -------------------------------------------------------------- the request

/// What brig changed in a rootless job's spec before the pipeline saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapted {
    pub caller: Caller,
    /// brig (libcontainer) creates the job's user namespace; false when the
    /// job runs in the caller's (rootless Podman's).
    pub own_userns: bool,
    /// brig added the user namespace and its mapping (the spec had none).
    pub added_userns: bool,
    /// brig added a private network namespace (the spec had none).
    pub added_netns: bool,
    /// The job's ID maps, host side in the initial namespace: (container, host, size).
    pub uid_map: Vec<[u32; 3]>,
    pub gid_map: Vec<[u32; 3]>,
    /// Rootless Podman's `/dev/shm` bind (a tmpfs in its storage) became the
    /// job's own tmpfs: the source it had.
    pub replaced_shm: Option<PathBuf>,
}

fn to_oci(map: &[[u32; 3]]) -> Vec<LinuxIdMapping> {
    map.iter()
        .filter_map(|m| {
            oci_spec::runtime::LinuxIdMappingBuilder::default().container_id(m[0]).host_id(m[1]).size(m[2]).build().ok()
        })
        .collect()
}

fn from_oci(map: &[LinuxIdMapping]) -> Vec<[u32; 3]> {
    map.iter().map(|m| [m.container_id(), m.host_id(), m.size()]).collect()
}

/// Reads `/proc/self/{u,g}id_map` as triples.
fn own_map(file: &str) -> Vec<[u32; 3]> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<u32> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (f.len() == 3).then(|| [f[0], f[1], f[2]])
        })
        .collect()
}

/// Gives a rootless job what it needs before hardening: its own network
/// namespace, and (unprivileged caller) a user namespace over the user's
/// subordinate IDs. Checks every prerequisite and says what is missing.
pub fn adapt_request(caller: &Caller, spec: &mut Spec) -> Result<Adapted, RootlessError> {
    use oci_spec::runtime::LinuxNamespaceBuilder;
    let mut adapted = Adapted {
        caller: caller.clone(),
        own_userns: false,
        added_userns: false,
        added_netns: false,
        uid_map: vec![],
        gid_map: vec![],
        replaced_shm: None,
    };
    adapted.replaced_shm = podman_shm_to_tmpfs(spec);
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    let typ_ns = |t: LinuxNamespaceType| LinuxNamespaceBuilder::default().typ(t).build().ok();
    if !namespaces.iter().any(|n| n.typ() == LinuxNamespaceType::Network) {
        namespaces.extend(typ_ns(LinuxNamespaceType::Network));
        adapted.added_netns = true;
    }
    let userns = namespaces.iter().find(|n| n.typ() == LinuxNamespaceType::User).cloned();
    match caller.mode {
        Mode::Rootful => {}
        Mode::UserNamespace => {
            // The job lives in the caller's namespace (or one the spec makes
            // inside it, which libcontainer maps as that namespace's root).
            adapted.own_userns = userns.as_ref().is_some_and(|n| n.path().is_none());
            adapted.uid_map = own_map("/proc/self/uid_map");
            adapted.gid_map = own_map("/proc/self/gid_map");
        }
        Mode::Unprivileged => {
            check_userns_enabled()?;
            if let Some(net) = namespaces.iter().find(|n| n.typ() == LinuxNamespaceType::Network) {
                if let Some(p) = net.path() {
                    return Err(RootlessError::JoinedNetns(p.display().to_string()));
                }
            }
            let subuid_file = Path::new("/etc/subuid");
            let subgid_file = Path::new("/etc/subgid");
            match userns {
                Some(ref n) if n.path().is_some() => {
                    // Joining an existing user namespace: its maps are set.
                    adapted.own_userns = false;
                }
                Some(_) => {
                    // The spec's own mapping (`brig spec --rootless`): check it
                    // the way newuidmap would, since libcontainer ignores the
                    // helper's exit status.
                    let uid_maps = linux.uid_mappings().clone().unwrap_or_default();
                    let gid_maps = linux.gid_mappings().clone().unwrap_or_default();
                    let sub_u = read_subids(subuid_file, caller)?;
                    let sub_g = read_subids(subgid_file, caller)?;
                    check_mappable("uidMappings", "uid", &uid_maps, caller.host_uid, &sub_u, subuid_file)?;
                    check_mappable("gidMappings", "gid", &gid_maps, caller.host_gid, &sub_g, subgid_file)?;
                    let single = |m: &[LinuxIdMapping], own: u32| {
                        m.len() <= 1 && m.iter().all(|x| x.host_id() == own && x.size() == 1)
                    };
                    if !single(&uid_maps, caller.host_uid) {
                        put_first_in_path(&find_helper("newuidmap", "uid")?);
                    }
                    if !single(&gid_maps, caller.host_gid) {
                        put_first_in_path(&find_helper("newgidmap", "gid")?);
                    }
                    adapted.own_userns = true;
                    adapted.uid_map = from_oci(&uid_maps);
                    adapted.gid_map = from_oci(&gid_maps);
                }
                None => {
                    let user = caller.user_display();
                    let sub_u = read_subids(subuid_file, caller)?;
                    if sub_u.is_empty() {
                        return Err(RootlessError::NoSubids {
                            kind: "uid",
                            user,
                            uid: caller.host_uid,
                            file: subuid_file.into(),
                        });
                    }
                    let sub_g = read_subids(subgid_file, caller)?;
                    if sub_g.is_empty() {
                        return Err(RootlessError::NoSubids {
                            kind: "gid",
                            user,
                            uid: caller.host_uid,
                            file: subgid_file.into(),
                        });
                    }
                    put_first_in_path(&find_helper("newuidmap", "uid")?);
                    put_first_in_path(&find_helper("newgidmap", "gid")?);
                    adapted.uid_map = build_map(caller.host_uid, &sub_u);
                    adapted.gid_map = build_map(caller.host_gid, &sub_g);
                    namespaces.extend(typ_ns(LinuxNamespaceType::User));
                    linux.set_uid_mappings(Some(to_oci(&adapted.uid_map)));
                    linux.set_gid_mappings(Some(to_oci(&adapted.gid_map)));
                    adapted.own_userns = true;
                    adapted.added_userns = true;
                }
            }
        }
    }
    linux.set_namespaces(Some(namespaces));
    Ok(adapted)
}

/// Rootless Podman bind-mounts `/dev/shm` from a tmpfs it mounted in the
/// user's container storage (`~/.local/share/containers/storage/
/// <driver>-containers/<id>/userdata/shm`), which no profile's ceilings can
/// name in advance (rootful Podman's is under /var/lib/containers/storage/,
/// a client-state prefix). When the job has an IPC namespace of its own (no
/// other container shares that /dev/shm), the bind is replaced by an
/// equivalent private tmpfs of the same size: nothing else could see it.
/// Returns the replaced source.
fn podman_shm_to_tmpfs(spec: &mut Spec) -> Option<PathBuf> {
    let private_ipc = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Ipc && n.path().is_none()));
    if !private_ipc {
        return None;
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts = spec.mounts().clone()?;
    let m = mounts.iter_mut().find(|m| {
        m.destination() == Path::new("/dev/shm")
            && (m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind"))
    })?;
    let source = m.source().clone()?;
    let text = source.to_string_lossy();
    if !(text.contains("/containers/storage/") && text.ends_with("/userdata/shm")) {
        return None;
    }
    // The source must be the tmpfs Podman mounted there.
    let size = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (left.split(' ').nth(4)? == text && right.starts_with("tmpfs ")).then(|| {
            right.split(' ').nth(2).unwrap_or_default().split(',').find(|o| o.starts_with("size=")).map(String::from)
        })
    })?;
    let mut options: Vec<String> = ["nosuid", "noexec", "nodev", "mode=1777"].map(String::from).to_vec();
    options.push(size.unwrap_or_else(|| "size=65536k".into()));
    m.set_typ(Some("tmpfs".into()));
    m.set_source(Some(PathBuf::from("shm")));
    m.set_options(Some(options));
    spec.set_mounts(Some(mounts));
    Some(source)
}

// ------------------------------------------------------------------ cgroups

/// The cgroup version of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Where a rootless job's cgroup goes, and who writes its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupPlan {
    pub version: CgroupVersion,
    /// The job's cgroup (as in `linux.cgroupsPath`).
    pub path: PathBuf,
    /// Whether the user may create it and move processes into it.
    pub delegated: bool,
    /// brig writes the limits (v1); libcontainer sees no `linux.resources`.
    pub brig_writes_limits: bool,
    /// libcontainer gets no `linux.resources` (v1, or v2 without delegation).
    pub strip_resources: bool,
    /// Why the job runs without a cgroup of its own, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a job needs cgroup limits: the profile's `[cgroup]` section (one
/// reason naming every limit it sets), else limits in the spec.
pub fn limit_reasons(profile: &brig_profiles::model::Profile, r: Option<&LinuxResources>) -> Vec<String> {
    let c = &profile.cgroup;
    let mut set = Vec::new();
    if let Some(m) = c.memory {
        set.push(format!("memory = {m}"));
    }
    if let Some(m) = c.memory_swap {
        set.push(format!("memory_swap = {m}"));
    }
    if let Some(x) = c.cpus {
        set.push(format!("cpus = {x}"));
    }
    if let Some(x) = c.cpu_shares {
        set.push(format!("cpu_shares = {x}"));
    }
    if let Some(x) = c.pids {
        set.push(format!("pids = {x}"));
    }
    if let Some(x) = c.blkio_weight {
        set.push(format!("blkio_weight = {x}"));
    }
    if !set.is_empty() {
        return vec![format!("profile `{}` sets [cgroup] {}", profile.name, set.join(", "))];
    }
    r.map(spec_limits).unwrap_or_default().into_iter().map(|f| format!("the spec sets linux.resources.{f}")).collect()
}

/// The limits a spec's resources set (devices aside).
fn spec_limits(r: &LinuxResources) -> Vec<&'static str> {
    let mut f = Vec::new();
    if let Some(m) = r.memory() {
        if m.limit().is_some_and(|v| v > 0) {
            f.push("memory.limit");
        }
        if m.swap().is_some_and(|v| v > 0) {
            f.push("memory.swap");
        }
        if m.reservation().is_some_and(|v| v > 0) {
            f.push("memory.reservation");
        }
    }
    if r.pids().as_ref().is_some_and(|p| p.limit() > 0) {
        f.push("pids.limit");
    }
    if let Some(c) = r.cpu() {
        if c.quota().is_some_and(|q| q > 0) {
            f.push("cpu.quota");
        }
        if c.shares().is_some() {
            f.push("cpu.shares");
        }
        if c.cpus().is_some() || c.mems().is_some() {
            f.push("cpu.cpus");
        }
    }
    if let Some(b) = r.block_io() {
        if b.weight().is_some()
            || b.throttle_read_bps_device().as_ref().is_some_and(|v| !v.is_empty())
            || b.throttle_write_bps_device().as_ref().is_some_and(|v| !v.is_empty())
            || b.throttle_read_iops_device().as_ref().is_some_and(|v| !v.is_empty())
            || b.throttle_write_iops_device().as_ref().is_some_and(|v| !v.is_empty())
        {
            f.push("blockIO");
        }
    }
    if r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) {
        f.push("hugepageLimits");
    }
    if r.unified().as_ref().is_some_and(|v| !v.is_empty()) {
        f.push("unified");
    }
    f
}

/// The v1 hierarchies: controller → mount point, from `/proc/self/mountinfo`.
pub fn v1_mounts(mountinfo: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let mut r = right.split(' ');
        if r.next() != Some("cgroup") {
            continue;
        }
        let _source = r.next();
        let opts: BTreeSet<&str> = r.next().unwrap_or_default().split(',').collect();
        let Some(mount_point) = left.split(' ').nth(4) else { continue };
        for c in V1_CONTROLLERS {
            if opts.contains(c) {
                out.push((c.to_string(), PathBuf::from(mount_point)));
            }
        }
    }
    out
}

fn writable(p: &Path) -> bool {
    nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok()
}

fn describe_owner(p: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(p) {
        Ok(m) => format!("owned by uid {}, not writable", m.uid()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".into(),
        Err(e) => e.to_string(),
    }
}

/// The nearest existing ancestor of `dir` at or below `stop`.
fn nearest_existing(dir: &Path, stop: &Path) -> PathBuf {
    let mut cur = dir.to_path_buf();
    while !cur.exists() && cur != stop {
        if !cur.pop() {
            break;
        }
    }
    cur
}

/// What keeps `rel` from being a delegated cgroup in hierarchy `base`: the
/// path (relative to `base`) and the problem.
fn delegation_gap(base: &Path, rel: &Path) -> Option<(PathBuf, String)> {
    let target = base.join(rel);
    let anchor = nearest_existing(&target, base);
    let relative = |p: &Path| p.strip_prefix(base).map(Path::to_path_buf).unwrap_or_else(|_| p.to_path_buf());
    if anchor == base || !writable(&anchor) {
        // Name the job's parent: what an administrator delegates.
        let parent = target.parent().unwrap_or(&target).to_path_buf();
        return Some((relative(&parent), describe_owner(&parent)));
    }
    let procs = target.join("cgroup.procs");
    if target.exists() && !writable(&procs) {
        return Some((relative(&procs), describe_owner(&procs)));
    }
    None
}

/// The v1 gaps, grouped: "`/sys/fs/cgroup/C/x` does not exist for C in cpu, memory".
fn v1_gaps(v1: &[(String, PathBuf)], rel: &Path) -> Vec<String> {
    let mut groups: Vec<((PathBuf, String), Vec<String>)> = Vec::new();
    for (c, mount) in v1 {
        if let Some(gap) = delegation_gap(mount, rel) {
            match groups.iter_mut().find(|(g, _)| *g == gap) {
                Some((_, cs)) => cs.push(c.clone()),
                None => groups.push((gap, vec![c.clone()])),
            }
        }
    }
    groups
        .into_iter()
        .map(|((path, problem), cs)| {
            format!("`{CGROUP_ROOT}/C/{}` {problem}, for C in {}", path.display(), cs.join(", "))
        })
        .collect()
}

fn own_cgroup_v2() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| l.strip_prefix("0::")).map(PathBuf::from)
}

/// v2: the highest ancestor of brig's own cgroup that the caller may write
/// (systemd's `user@UID.service`, or what an administrator delegated).
fn discovered_v2_parent() -> Option<PathBuf> {
    let own = own_cgroup_v2()?;
    let mut best = None;
    let mut cur = own.clone();
    loop {
        if cur == Path::new("/") {
            break;
        }
        let dir = Path::new(CGROUP_ROOT).join(cur.strip_prefix("/").unwrap_or(&cur));
        if writable(&dir) && writable(&dir.join("cgroup.procs")) {
            best = Some(cur.clone());
        } else {
            break;
        }
        if !cur.pop() {
            break;
        }
    }
    best
}

/// The default parent of a rootless job's cgroup: `/brig-rootless/<uid>` if an
/// administrator made it, else (v2) the delegated subtree brig runs in.
fn default_parent(caller: &Caller, version: CgroupVersion, v1: &[(String, PathBuf)]) -> Option<PathBuf> {
    let conventional = Path::new(CONVENTIONAL_PARENT).join(caller.host_uid.to_string());
    let rel = conventional.strip_prefix("/").unwrap_or(&conventional).to_path_buf();
    let exists = match version {
        CgroupVersion::V2 => Path::new(CGROUP_ROOT).join(&rel).is_dir(),
        CgroupVersion::V1 => v1.iter().any(|(_, m)| m.join(&rel).is_dir()),
    };
    if exists {
        return Some(conventional);
    }
    match version {
        CgroupVersion::V2 => discovered_v2_parent(),
        CgroupVersion::V1 => None,
    }
}

/// v2 controllers a spec's resources need.
fn v2_controllers(r: Option<&LinuxResources>) -> BTreeSet<&'static str> {
    let mut c = BTreeSet::new();
    for f in r.map(spec_limits).unwrap_or_default() {
        c.insert(match f {
            x if x.starts_with("memory") => "memory",
            "pids.limit" => "pids",
            "cpu.cpus" => "cpuset",
            x if x.starts_with("cpu") => "cpu",
            "blockIO" => "io",
            "hugepageLimits" => "hugetlb",
            _ => continue,
        });
    }
    c
}

fn v2_gaps(rel: &Path, resources: Option<&LinuxResources>) -> Vec<String> {
    let base = Path::new(CGROUP_ROOT);
    let mut gaps = Vec::new();
    if let Some((path, problem)) = delegation_gap(base, rel) {
        gaps.push(format!("`{}` {problem}", base.join(path).display()));
        return gaps;
    }
    let target = base.join(rel);
    let anchor = nearest_existing(&target, base);
    // A process moves only between cgroups whose common ancestor's
    // cgroup.procs the mover may write (cgroup v2's delegation rule).
    if let Some(own) = own_cgroup_v2() {
        let own_dir = base.join(own.strip_prefix("/").unwrap_or(&own));
        let mut common = anchor.clone();
        while !own_dir.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
        if !writable(&common.join("cgroup.procs")) {
            gaps.push(format!(
                "brig runs in cgroup `{}`, outside the delegated subtree: cgroup v2 moves a process only within a subtree \
                 whose root's cgroup.procs the user may write (`{}` is {}); start brig from inside the subtree \
                 (as systemd's user@.service does)",
                own.display(),
                common.join("cgroup.procs").display(),
                describe_owner(&common.join("cgroup.procs"))
            ));
        }
    }
    let available = std::fs::read_to_string(anchor.join("cgroup.controllers")).unwrap_or_default();
    let enabled = std::fs::read_to_string(anchor.join("cgroup.subtree_control")).unwrap_or_default();
    for c in v2_controllers(resources) {
        if !available.split_whitespace().any(|x| x == c) {
            gaps.push(format!(
                "controller `{c}` is not available in `{}` (enable it in its parent's cgroup.subtree_control)",
                anchor.display()
            ));
        } else if target != anchor
            && !enabled.split_whitespace().any(|x| x == c)
            && !writable(&anchor.join("cgroup.subtree_control"))
        {
            gaps.push(format!("controller `{c}` is not enabled in `{}/cgroup.subtree_control`", anchor.display()));
        }
    }
    gaps
}

/// Decides where a rootless job's cgroup goes, and refuses the launch when
/// the job needs limits (or cgroup v1 needs a cgroup) and no subtree is
/// delegated to the user.
pub fn plan_cgroup(
    caller: &Caller,
    id: &str,
    requested: Option<PathBuf>,
    resources: Option<&LinuxResources>,
    profile: &brig_profiles::model::Profile,
) -> Result<CgroupPlan, RootlessError> {
    let version = if crate::cgroup::is_unified() { CgroupVersion::V2 } else { CgroupVersion::V1 };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let v1 = v1_mounts(&mountinfo);
    let parent = default_parent(caller, version, &v1);
    let path = match (&requested, &parent) {
        (Some(p), _) => p.clone(),
        (None, Some(parent)) => parent.join(id),
        (None, None) => Path::new(CONVENTIONAL_PARENT).join(caller.host_uid.to_string()).join(id),
    };
    let rel = path.strip_prefix("/").unwrap_or(&path).to_path_buf();
    let gaps: Vec<String> = match version {
        CgroupVersion::V2 => v2_gaps(&rel, resources),
        CgroupVersion::V1 => v1_gaps(&v1, &rel),
    };
    let reasons = limit_reasons(profile, resources);
    let user = caller.user_display();
    let how = |v: CgroupVersion| {
        match v {
        CgroupVersion::V1 => format!(
            "as root, for every v1 controller C mounted under /sys/fs/cgroup: `mkdir -p /sys/fs/cgroup/C{parent} && \
             chown {uid} /sys/fs/cgroup/C{parent} /sys/fs/cgroup/C{parent}/cgroup.procs /sys/fs/cgroup/C{parent}/tasks`, \
             and for cpuset copy cpuset.cpus and cpuset.mems into each new directory (docs/rootless.md)",
            parent = path.parent().map(|p| p.display().to_string()).unwrap_or_default(),
            uid = caller.host_uid,
        ),
        CgroupVersion::V2 => format!(
            "as root: `mkdir -p /sys/fs/cgroup{parent} && chown {uid} /sys/fs/cgroup{parent} \
             /sys/fs/cgroup{parent}/cgroup.procs /sys/fs/cgroup{parent}/cgroup.subtree_control \
             /sys/fs/cgroup{parent}/cgroup.threads`, with the controllers enabled in its parent's \
             cgroup.subtree_control, and start brig from inside it (docs/rootless.md)",
            parent = path.parent().map(|p| p.display().to_string()).unwrap_or_default(),
            uid = caller.host_uid,
        ),
    }
    };
    let delegated = gaps.is_empty();
    match (version, delegated) {
        (CgroupVersion::V1, true) => {
            Ok(CgroupPlan { version, path, delegated, brig_writes_limits: true, strip_resources: true, note: None })
        }
        (CgroupVersion::V2, true) => {
            Ok(CgroupPlan { version, path, delegated, brig_writes_limits: false, strip_resources: false, note: None })
        }
        (CgroupVersion::V1, false) => Err(RootlessError::NotDelegated(format!(
            "rootless brig on cgroup v1 needs a cgroup subtree delegated to user `{user}` (uid {uid}) in every v1 \
             hierarchy, for every job{why} (libcontainer 0.7 puts each container into a cgroup of every mounted \
             hierarchy), and the job's cgroup `{path}` is not delegated: {gaps}. To delegate one, {how}",
            uid = caller.host_uid,
            why = if reasons.is_empty() {
                String::new()
            } else {
                format!(" (this one also needs limits: {})", reasons.join(", "))
            },
            path = path.display(),
            gaps = gaps.join("; "),
            how = how(version),
        ))),
        (CgroupVersion::V2, false) if !reasons.is_empty() => Err(RootlessError::NotDelegated(format!(
            "the job needs cgroup limits ({why}), but no cgroup subtree is delegated to user `{user}` (uid {uid}) for \
             the job's cgroup `{path}`: {gaps}. brig refuses to run it without its limits. To delegate one, {how}; \
             or use a profile without [cgroup] limits",
            why = reasons.join(", "),
            uid = caller.host_uid,
            path = path.display(),
            gaps = gaps.join("; "),
            how = how(version),
        ))),
        (CgroupVersion::V2, false) => {
            let note = format!(
                "no cgroup subtree is delegated to user `{user}` (uid {}): the job runs in brig's own cgroup, without \
                 limits of its own ({})",
                caller.host_uid,
                gaps.join("; ")
            );
            Ok(CgroupPlan {
                version,
                path,
                delegated,
                brig_writes_limits: false,
                strip_resources: true,
                note: Some(note),
            })
        }
    }
}

fn write(path: PathBuf, value: &str) -> Result<(), RootlessError> {
    std::fs::write(&path, value).map_err(|source| RootlessError::CgroupWrite { path, source })
}

/// cgroup v1: creates the job's cgroup `cgroup_path` in the hierarchies whose
/// limits brig writes, and writes them (at `create`, before any of the job's
/// processes exist; at `update`). Returns the files written.
pub fn apply_v1(cgroup_path: &Path, r: &LinuxResources) -> Result<Vec<PathBuf>, RootlessError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = v1_mounts(&mountinfo);
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path).to_path_buf();
    let dir = |controller: &str| -> Result<PathBuf, RootlessError> {
        let mount = mounts.iter().find(|(c, _)| c == controller).map(|(_, m)| m.clone()).ok_or_else(|| {
            RootlessError::Unsupported(format!(
                "the `{controller}` controller is not mounted, so its limits cannot be set"
            ))
        })?;
        let d = mount.join(&rel);
        std::fs::create_dir_all(&d).map_err(|source| RootlessError::CgroupWrite { path: d.clone(), source })?;
        Ok(d)
    };
    let mut written = Vec::new();
    let mut put = |d: &Path, file: &str, value: String| -> Result<(), RootlessError> {
        let p = d.join(file);
        write(p.clone(), &value)?;
        written.push(p);
        Ok(())
    };
    let refuse = |field: &str| {
        Err(RootlessError::Unsupported(format!(
            "linux.resources.{field} cannot be applied by an unprivileged user on cgroup v1 (brig writes memory, \
             pids, cpu, cpuset and blkio limits itself; remove the field or run brig as root)"
        )))
    };
    if let Some(m) = r.memory() {
        let d = dir("memory")?;
        if let Some(l) = m.limit() {
            put(&d, "memory.limit_in_bytes", l.to_string())?;
        }
        if let Some(s) = m.swap() {
            if !d.join("memory.memsw.limit_in_bytes").exists() {
                return Err(RootlessError::Unsupported(
                    "linux.resources.memory.swap needs swap accounting (memory.memsw.limit_in_bytes), which this \
                     kernel does not have (boot with swapaccount=1)"
                        .into(),
                ));
            }
            put(&d, "memory.memsw.limit_in_bytes", s.to_string())?;
        }
        if let Some(v) = m.reservation() {
            put(&d, "memory.soft_limit_in_bytes", v.to_string())?;
        }
        if let Some(v) = m.swappiness() {
            put(&d, "memory.swappiness", v.to_string())?;
        }
        if m.disable_oom_killer() == Some(true) {
            put(&d, "memory.oom_control", "1".into())?;
        }
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            tracing::warn!("linux.resources.memory.kernel/kernelTCP are deprecated on cgroup v1 and ignored");
        }
    }
    if let Some(p) = r.pids() {
        let d = dir("pids")?;
        put(&d, "pids.max", if p.limit() > 0 { p.limit().to_string() } else { "max".into() })?;
    }
    if let Some(c) = r.cpu() {
        if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
            return refuse("cpu.realtimeRuntime");
        }
        if c.shares().is_some() || c.quota().is_some() || c.period().is_some() {
            let d = dir("cpu")?;
            if let Some(v) = c.period() {
                put(&d, "cpu.cfs_period_us", v.to_string())?;
            }
            if let Some(v) = c.quota() {
                put(&d, "cpu.cfs_quota_us", v.to_string())?;
            }
            if let Some(v) = c.shares() {
                put(&d, "cpu.shares", v.to_string())?;
            }
        }
        if c.cpus().is_some() || c.mems().is_some() {
            let d = dir("cpuset")?;
            let parent = d.parent().map(Path::to_path_buf).unwrap_or_default();
            // A cpuset cgroup needs both before a process may join it.
            for (file, asked) in [("cpuset.mems", c.mems()), ("cpuset.cpus", c.cpus())] {
                let value = match asked {
                    Some(v) => v.clone(),
                    None => std::fs::read_to_string(parent.join(file)).unwrap_or_default().trim().to_string(),
                };
                put(&d, file, value)?;
            }
        }
    }
    if let Some(b) = r.block_io() {
        let d = dir("blkio")?;
        if let Some(w) = b.weight() {
            let file = ["blkio.weight", "blkio.bfq.weight"].into_iter().find(|f| d.join(f).exists());
            match file {
                Some(f) => put(&d, f, w.to_string())?,
                None => {
                    return Err(RootlessError::Unsupported(
                        "linux.resources.blockIO.weight: no blkio.weight or blkio.bfq.weight (no proportional I/O \
                         scheduler on this host)"
                            .into(),
                    ))
                }
            }
        }
        let throttles = [
            ("blkio.throttle.read_bps_device", b.throttle_read_bps_device()),
            ("blkio.throttle.write_bps_device", b.throttle_write_bps_device()),
            ("blkio.throttle.read_iops_device", b.throttle_read_iops_device()),
            ("blkio.throttle.write_iops_device", b.throttle_write_iops_device()),
        ];
        for (file, list) in throttles {
            for t in list.iter().flatten() {
                put(&d, file, format!("{}:{} {}", t.major(), t.minor(), t.rate()))?;
            }
        }
        if b.weight_device().as_ref().is_some_and(|v| !v.is_empty()) {
            return refuse("blockIO.weightDevice");
        }
    }
    if r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) {
        return refuse("hugepageLimits");
    }
    if r.network().is_some() {
        return refuse("network");
    }
    if r.rdma().as_ref().is_some_and(|v| !v.is_empty()) {
        return refuse("rdma");
    }
    if r.unified().as_ref().is_some_and(|v| !v.is_empty()) {
        return refuse("unified");
    }
    Ok(written)
}

// ------------------------------------------------------------------ egress

/// The egress step for a job whose user namespace an unprivileged brig made.
///
/// Until `start` execs the supervisor, the job's init is not dumpable and its
/// memory belongs to the initial user namespace, so an unprivileged caller
/// cannot open `/proc/<init>/ns/net` (let alone bind-mount it to hold it, or
/// enter it to run `nft`). It does not need to: the spec's network namespace
/// is a fresh one (`adapt_request` refuses joined ones), created inside the
/// job's user namespace, and brig checks through `/proc/<init>/net/` (readable
/// by the owner) that it has nothing but loopback, which is what
/// `egress::install` accepts without a ruleset. A namespace with any other
/// device or route is refused: rootless brig cannot filter it.
pub fn check_private_network(
    dir: &Path,
    pid: i32,
    plan: &brig_profiles::EgressPlan,
) -> Result<crate::egress::Installed, String> {
    let start = std::time::Instant::now();
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/net/{f}"));
    let (dev, route, route6) = match (read("dev"), read("route"), read("ipv6_route")) {
        (Ok(d), Ok(r), Ok(r6)) => (d, r, r6),
        (d, r, r6) => {
            let e = [d.err(), r.err(), r6.err()].into_iter().flatten().next();
            return Err(format!(
                "reading the job's network devices and routes (/proc/{pid}/net): {}",
                e.map(|e| e.to_string()).unwrap_or_default()
            ));
        }
    };
    if !crate::egress::nothing_leaves(&dev, &route, &route6) {
        return Err(format!(
            "the profile filters the job's network, and its network namespace has devices or routes besides \
             loopback ({}); rootless brig cannot install nftables rules before the job starts: give the job a \
             network namespace of its own without devices (Podman: `--network none`)",
            dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect::<Vec<_>>().join(", ")
        ));
    }
    crate::egress::record_closed(dir, plan, start).map_err(|e| e.to_string())
}

// ------------------------------------------------------------------ record

/// The rootless part of a run's record, next to `brig.json` in the
/// container's state directory.
pub const RECORD_FILE: &str = "brig-rootless.json";

/// What brig records about a rootless run (`brig-rootless.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootlessRecord {
    pub mode: Mode,
    /// The caller on the host.
    pub host_uid: u32,
    pub host_gid: u32,
    /// brig created the job's user namespace (false: the caller's, Podman's).
    pub own_userns: bool,
    /// The job's ID maps as (container, host, size), host IDs in the caller's
    /// namespace (the initial one for an unprivileged caller).
    pub uid_map: Vec<[u32; 3]>,
    pub gid_map: Vec<[u32; 3]>,
    /// brig gave the job a private network namespace the spec lacked.
    pub added_netns: bool,
    /// Rootless Podman's `/dev/shm` bind source, replaced by a private tmpfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_shm: Option<PathBuf>,
    pub cgroup: CgroupPlan,
}

impl RootlessRecord {
    pub fn new(a: &Adapted, cgroup: &CgroupPlan) -> RootlessRecord {
        RootlessRecord {
            mode: a.caller.mode,
            host_uid: a.caller.host_uid,
            host_gid: a.caller.host_gid,
            own_userns: a.own_userns,
            uid_map: a.uid_map.clone(),
            gid_map: a.gid_map.clone(),
            added_netns: a.added_netns,
            replaced_shm: a.replaced_shm.clone(),
            cgroup: cgroup.clone(),
        }
    }
}

impl RootlessRecord {
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        crate::state::write_atomic(&dir.join(RECORD_FILE), &bytes, 0o600)
    }

    pub fn load(dir: &Path) -> Option<RootlessRecord> {
        std::fs::read(dir.join(RECORD_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }
}

/// The cgroup whose limits brig writes itself (a rootless cgroup v1 job in
/// state directory `dir`): `update` goes through [`apply_v1`], not
/// libcontainer's manager, which would fail on `devices.allow`.
pub fn own_v1_limits(dir: &Path) -> Option<PathBuf> {
    RootlessRecord::load(dir).filter(|r| r.cgroup.brig_writes_limits).map(|r| r.cgroup.path)
}

/// Whether the rootless job in state directory `dir` runs without a cgroup of
/// its own (cgroup v2, no delegated subtree, no limits required).
pub fn without_own_cgroup(dir: &Path) -> bool {
    RootlessRecord::load(dir).is_some_and(|r| !r.cgroup.delegated)
}

/// Whether `exec` into the container in state directory `dir` must join the
/// job's user namespace itself (libcontainer's tenant path does not): brig
/// made one and the caller is outside it.
pub fn exec_joins_userns(dir: &Path) -> bool {
    RootlessRecord::load(dir).is_some_and(|r| r.own_userns && r.mode == Mode::Unprivileged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_map_and_host_ids() {
        assert!(is_initial_map("         0          0 4294967295\n"));
        assert!(!is_initial_map("0 1990 1\n1 100000 65536\n"));
        let m = "         0       1990          1\n         1     100000      65536\n";
        assert_eq!(map_to_host(m, 0), Some(1990));
        assert_eq!(map_to_host(m, 1), Some(100000));
        assert_eq!(map_to_host(m, 65536), Some(165535));
        assert_eq!(map_to_host(m, 65537), None);
    }

    #[test]
    fn subids_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:65536\nalice:400000:10\nbroken\nalice:x:1\n";
        assert_eq!(
            subid_ranges(text, Some("alice"), 1000),
            vec![SubidRange { start: 100000, count: 65536 }, SubidRange { start: 400000, count: 10 }]
        );
        assert_eq!(subid_ranges(text, Some("carol"), 1001), vec![SubidRange { start: 200000, count: 1000 }]);
        assert!(subid_ranges(text, None, 5).is_empty());
    }

    #[test]
    fn map_is_own_id_then_subordinates() {
        let m = build_map(1000, &[SubidRange { start: 100000, count: 65536 }, SubidRange { start: 400000, count: 10 }]);
        assert_eq!(m, vec![[0, 1000, 1], [1, 100000, 65536], [65537, 400000, 10]]);
    }

    #[test]
    fn mappable_ids() {
        let ranges = [SubidRange { start: 100000, count: 65536 }];
        let ok = to_oci(&[[0, 1000, 1], [1, 100000, 65536]]);
        check_mappable("uidMappings", "uid", &ok, 1000, &ranges, Path::new("/etc/subuid")).unwrap();
        let bad = to_oci(&[[0, 0, 1]]);
        let e = check_mappable("uidMappings", "uid", &bad, 1000, &ranges, Path::new("/etc/subuid")).unwrap_err();
        assert!(e.to_string().contains("host IDs 0..1"), "{e}");
        let over = to_oci(&[[1, 100000, 65537]]);
        assert!(check_mappable("uidMappings", "uid", &over, 1000, &ranges, Path::new("/etc/subuid")).is_err());
    }

    #[test]
    fn v1_hierarchies_from_mountinfo() {
        let mi = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                  32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
                  35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                  40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let m = v1_mounts(mi);
        assert_eq!(
            m,
            vec![
                ("cpu".to_string(), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")),
                ("cpuacct".to_string(), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")),
                ("memory".to_string(), PathBuf::from("/sys/fs/cgroup/memory")),
            ]
        );
    }

    #[test]
    fn limits_from_profile_or_spec() {
        let restricted = brig_profiles::ProfileSet::load_one(None, "restricted").unwrap().profile;
        let why = limit_reasons(&restricted, None);
        assert_eq!(
            why,
            vec!["profile `restricted` sets [cgroup] memory = 512m, memory_swap = 512m, cpus = 1, cpu_shares = 1024, pids = 256"]
        );
        let permissive = brig_profiles::ProfileSet::load_one(None, "permissive").unwrap().profile;
        assert!(limit_reasons(&permissive, None).is_empty());
        let r: LinuxResources = serde_json::from_value(serde_json::json!({"pids": {"limit": 5}})).unwrap();
        assert_eq!(limit_reasons(&permissive, Some(&r)), vec!["the spec sets linux.resources.pids.limit".to_string()]);
        let empty: LinuxResources = serde_json::from_value(serde_json::json!({})).unwrap();
        assert!(limit_reasons(&permissive, Some(&empty)).is_empty());
    }
}
