//! Which brig jobs a namespace belongs to.
//!
//! A spec may join a namespace by path: a pod's containers join their
//! sandbox's, `docker run --network container:X` joins X's. Nothing in the
//! path says whose namespace it is, and a job must not join another
//! principal's (its IPC objects, its loopback services, its network, its user
//! namespace and ID range). So every job registers every namespace it is in
//! (neither the host's: its own, and those it joined) in [`REGISTRY_DIR`]: a
//! directory per namespace, named by its type and nsfs identity, holding one
//! symbolic link per job to the job's state directory (root and id). A
//! namespace's owners are the registered jobs still in it: it stays owned
//! while any job of its pod lives, whichever went first. A `create` that
//! joins a namespace with owners must be for the same principal
//! ([`same_principal`]: the same tenant, or with no tenant the same issuer and
//! subject; every job is the same unauthenticated principal under
//! `[auth] mode = "off"`): checked before the launch (and audited), and again
//! right after libcontainer's build under the registry's lock, when the job
//! registers ([`register`]). A job that finds another principal in a
//! namespace it made itself (someone joined it between its build and its
//! registration) fails its own launch. The registry is global (not per
//! `--root`), like the user-namespace slots: Docker, Podman and containerd
//! use their own roots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;

use crate::nspin::proc_name;
use crate::pod::NamespaceId;
use crate::state::RunRecord;

/// Where the entries live.
pub const REGISTRY_DIR: &str = "/run/brig/namespaces";
/// The container's list of its entries (for `delete`).
const OWN_FILE: &str = "brig-namespaces.json";

const TYPES: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::User,
    LinuxNamespaceType::Time,
];

/// A job registered in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub root: PathBuf,
    pub id: String,
}

impl Owner {
    fn dir(&self) -> PathBuf {
        self.root.join(&self.id)
    }

    /// Its identity (`RunRecord.auth.identity`).
    fn identity(&self) -> Result<BTreeMap<String, String>, String> {
        RunRecord::load(&self.dir())
            .map(|r| r.auth.identity)
            .map_err(|e| format!("the record of job `{}` cannot be read: {e}", self.id))
    }
}

fn namespace_dir(registry: &Path, typ: LinuxNamespaceType, ns: NamespaceId) -> PathBuf {
    registry.join(format!("{}-{}-{}", proc_name(typ), ns.dev, ns.ino))
}

/// A job's entry name: a digest of its root and id (any id is a safe name).
fn entry_name(root: &Path, id: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(root.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(id.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The init pid libcontainer recorded for a job.
fn init_pid(dir: &Path) -> Option<i32> {
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state.json")).ok()?).ok()?;
    state.get("pid")?.as_i64().and_then(|p| i32::try_from(p).ok())
}

/// The registered jobs still in namespace `ns` (an entry whose job is gone,
/// or whose pid was reused outside the namespace, is not believed).
fn owners_in(registry: &Path, typ: LinuxNamespaceType, ns: NamespaceId) -> Vec<Owner> {
    let dir = namespace_dir(registry, typ, ns);
    if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return vec![];
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|dir| {
            let owner = Owner { id: dir.file_name()?.to_str()?.to_string(), root: dir.parent()?.to_path_buf() };
            let pid = init_pid(&dir)?;
            let live = NamespaceId::of(Path::new(&format!("/proc/{pid}/ns/{}", proc_name(typ)))).ok()?;
            (live == ns).then_some(owner)
        })
        .collect()
}

/// The state roots of the jobs registered in any namespace (every job brig
/// runs, under any `--root`: Docker's, containerd's, Podman's, a platform's
/// per-tenant ones), in `registry`. An entry whose job directory is gone is
/// left out.
fn state_roots_in(registry: &Path) -> Vec<PathBuf> {
    let mut roots = std::collections::BTreeSet::new();
    let Ok(namespaces) = std::fs::read_dir(registry) else { return vec![] };
    // Every job is in a mount namespace (its own or one it joined): those
    // entries name them all, in one link per job.
    let mount = format!("{}-", proc_name(LinuxNamespaceType::Mount));
    for ns in namespaces.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&mount)) {
        let Ok(jobs) = std::fs::read_dir(ns.path()) else { continue };
        for job in jobs.flatten() {
            // An entry whose job directory is gone (a job killed with brig)
            // names no state root any more.
            let Some(dir) = std::fs::read_link(job.path()).ok().filter(|d| d.is_dir()) else { continue };
            if let Some(root) = dir.parent() {
                roots.insert(root.to_path_buf());
            }
        }
    }
    roots.into_iter().collect()
}

/// The name of the link, in the registry, to a job's root filesystem.
fn rootfs_link_name(root: &Path, id: &str) -> String {
    format!("{ROOTFS_LINK_PREFIX}{}", entry_name(root, id))
}

const ROOTFS_LINK_PREFIX: &str = "rootfs-";

/// The root filesystems (`root.path`, canonical) of the registered jobs
/// whose directories still exist (an entry a killed brig left is not
/// believed), but job `root`/`id`'s own. Each entry is a file: the job's
/// directory, a NUL, its root filesystem.
fn rootfs_of_others_in(registry: &Path, root: &Path, id: &str) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let own = rootfs_link_name(root, id);
    let Ok(entries) = std::fs::read_dir(registry) else { return vec![] };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(ROOTFS_LINK_PREFIX) && n != own))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| {
            let (dir, rootfs) = bytes.split_at(bytes.iter().position(|b| *b == 0)?);
            let dir = Path::new(std::ffi::OsStr::from_bytes(dir));
            dir.is_dir().then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&rootfs[1..])))
        })
        .collect()
}

/// Whether job `root`/`id`, rooted at `rootfs`, and the other jobs' state
/// roots and root filesystems stay apart: no job's root filesystem is at,
/// inside or above another state root (it would read the jobs' specs and
/// records there, and reach their sockets), whichever of the two came first.
/// The state roots live brig jobs use (from the registry's entries).
pub fn live_state_roots() -> Vec<PathBuf> {
    state_roots_in(Path::new(REGISTRY_DIR))
}

pub fn check_apart(root: &Path, id: &str, rootfs: &Path) -> Result<(), String> {
    check_apart_in(Path::new(REGISTRY_DIR), root, id, rootfs)
}

fn check_apart_in(registry: &Path, root: &Path, id: &str, rootfs: &Path) -> Result<(), String> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let own_root = canonical(root);
    let overlaps = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    for state in state_roots_in(registry).iter().map(|r| canonical(r)) {
        if overlaps(rootfs, &state) {
            return Err(format!(
                "root.path `{}` is at, inside or above `{}`, the state directory of other brig jobs",
                rootfs.display(),
                state.display()
            ));
        }
    }
    for other in rootfs_of_others_in(registry, root, id) {
        if overlaps(&own_root, &other) {
            return Err(format!(
                "brig's state directory `{}` is at, inside or above `{}`, the root filesystem of a running job \
                 (which would see this directory's jobs)",
                own_root.display(),
                other.display()
            ));
        }
    }
    Ok(())
}

/// The jobs, under any state root, in user namespace `ns` that brig made for
/// them with an ID range from its pool (a per-job user namespace, a pod's).
pub fn range_holders(ns: NamespaceId) -> Vec<Owner> {
    owners_in(Path::new(REGISTRY_DIR), LinuxNamespaceType::User, ns)
        .into_iter()
        .filter(|o| RunRecord::load(&o.dir()).is_ok_and(|r| r.userns.is_some()))
        .collect()
}

/// Refuses a namespace in `joined` that has an owner (other than `me`) of
/// another principal than `identity`, or that no brig job is in but some
/// process (other than those in `except`) is, unless it is brig's own (the
/// host's, which the profile's ceilings govern) or `shares_host(type)` (a
/// profile that lets a job share the host's namespace of that type: joining
/// any other is no wider).
///
/// A namespace with a process and no job is someone else's: a runc
/// container's, a daemon's private mount namespace, a pod on another
/// runtime. Joining it would put the job in with them (their loopback
/// services, their SysV shared memory), and joining a mount namespace would
/// set the job's root up inside it (`pivot_root`), changing the root of
/// every process there. A namespace no process is in is one a client made
/// for a pod (CNI's or Podman's network namespace, pinned by a bind mount,
/// before the sandbox's first job). That part is for root only (an
/// unprivileged user can only join namespaces of their own user namespaces,
/// which the kernel checks) and leaves user namespaces to their own rules
/// (a brig job's per-job one only as its pod's member, never one nested in
/// a job, and its maps as a spec's own: `lifecycle::joins_a_per_job_userns`).
///
/// Checked before the launch, and again in [`register`] once the job's init
/// (`except` there) is in the namespaces: whoever entered or registered in
/// between is seen.
pub fn check_joined(
    joined: &[(LinuxNamespaceType, PathBuf, NamespaceId)],
    identity: &BTreeMap<String, String>,
    shares_host: impl Fn(LinuxNamespaceType) -> bool,
) -> Result<(), String> {
    check_joined_in(Path::new(REGISTRY_DIR), joined, identity, None, shares_host, &[])
}

fn check_joined_in(
    registry: &Path,
    joined: &[(LinuxNamespaceType, PathBuf, NamespaceId)],
    identity: &BTreeMap<String, String>,
    me: Option<&Owner>,
    shares_host: impl Fn(LinuxNamespaceType) -> bool,
    except: &[i32],
) -> Result<(), String> {
    let as_root = nix::unistd::geteuid().is_root();
    for (typ, path, ns) in joined {
        let name = proc_name(*typ);
        let owners = owners_in(registry, *typ, *ns);
        if owners.is_empty() && as_root && *typ != LinuxNamespaceType::User && !shares_host(*typ) {
            let host = NamespaceId::of(Path::new(&format!("/proc/self/ns/{name}"))).ok();
            let someone = if host == Some(*ns) { None } else { a_process_in(*typ, *ns, except) };
            if let Some(pid) = someone {
                return Err(format!(
                    "linux.namespaces: the {name} namespace `{}` is no brig job's, and process {pid} is in it; a job \
                     joins only namespaces of jobs launched for its own tenant (or subject), or one that no process \
                     is in yet (a pod's, made by its client)",
                    path.display()
                ));
            }
        }
        let foreign =
            first_foreign(owners, identity, me).map_err(|e| format!("linux.namespaces: `{}`: {e}", path.display()))?;
        if let Some(owner) = foreign {
            return Err(format!(
                "linux.namespaces: the {name} namespace `{}` is job `{}`'s, launched for another principal; \
                 a job joins only the namespaces of jobs launched for its own tenant (or subject)",
                path.display(),
                owner.id
            ));
        }
    }
    Ok(())
}

/// A process (not brig itself, nor one of `except` or their children) with
/// a thread whose `typ` namespace is `ns`, if any: the first found in
/// `/proc`, thread by thread (a thread may have unshared or entered a
/// namespace its process's main thread is not in); processes and threads
/// that vanish while it is read are skipped. (A job's init has one child
/// before `start`: its job's process, forked and hardened, that has not yet
/// executed the job.)
fn a_process_in(typ: LinuxNamespaceType, ns: NamespaceId, except: &[i32]) -> Option<i32> {
    let me = std::process::id() as i32;
    let name = proc_name(typ);
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        if pid == me || except.contains(&pid) {
            return None;
        }
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
            .find_map(|t| {
                let tid = t.file_name();
                let theirs =
                    NamespaceId::of(Path::new(&format!("/proc/{pid}/task/{}/ns/{name}", tid.to_str()?))).ok()?;
                (theirs == ns).then_some(pid)
            })
            .filter(|pid| crate::state::parent_pid(*pid).is_none_or(|parent| !except.contains(&parent)))
    })
}

/// The first of `owners` (other than `me`) launched for another principal
/// than `identity`.
fn first_foreign(
    owners: Vec<Owner>,
    identity: &BTreeMap<String, String>,
    me: Option<&Owner>,
) -> Result<Option<Owner>, String> {
    for owner in owners.into_iter().filter(|o| Some(o) != me) {
        if !same_principal(&owner.identity()?, identity) {
            return Ok(Some(owner));
        }
    }
    Ok(None)
}

/// Holds the registry's lock (`<registry>.lock`) until dropped. The registry
/// itself is put on a tmpfs first when it is empty and on disk: each launch
/// makes a directory per namespace there and each delete removes them, and on
/// a `/run` on disk (this host's is ext4 mounted `-o discard`) a removed
/// directory costs a synchronous block discard (see `lifecycle`'s rootfs
/// mount parent). Only the real registry is mounted on (not a test's).
fn lock(registry: &Path) -> std::io::Result<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(registry)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(registry.with_extension("lock"))?;
    let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e)?;
    if registry == Path::new(REGISTRY_DIR) {
        let on_tmpfs =
            nix::sys::statfs::statfs(registry).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        if !on_tmpfs && std::fs::read_dir(registry)?.next().is_none() {
            use nix::mount::MsFlags;
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            if let Err(e) = nix::mount::mount(Some("tmpfs"), registry, Some("tmpfs"), flags, Some("mode=0700")) {
                tracing::warn!(dir = %registry.display(), "mounting a tmpfs for the namespace registry: {e}");
            }
        }
    }
    Ok(lock)
}

/// After libcontainer's build, under the registry's lock: the namespaces the
/// job joined (`joined`) are checked again for another principal, then every
/// namespace its init `init` is in (but the host's) is registered for job
/// `root`/`id` (state directory `dir`). A namespace the job made itself in
/// which another principal's job is already registered fails the launch.
///
/// The joined namespaces are checked again as before the launch
/// ([`check_joined`]; a process in one may be the job's init only).
pub fn register(
    root: &Path,
    id: &str,
    (init, rootfs): (i32, &Path),
    dir: &Path,
    identity: &BTreeMap<String, String>,
    joined: &[(LinuxNamespaceType, PathBuf, NamespaceId)],
    shares_host: impl Fn(LinuxNamespaceType) -> bool,
) -> Result<(), String> {
    register_in(Path::new(REGISTRY_DIR), root, id, (init, rootfs), dir, identity, joined, shares_host)
}

#[allow(clippy::too_many_arguments)]
fn register_in(
    registry: &Path,
    root: &Path,
    id: &str,
    (init, rootfs): (i32, &Path),
    dir: &Path,
    identity: &BTreeMap<String, String>,
    joined: &[(LinuxNamespaceType, PathBuf, NamespaceId)],
    shares_host: impl Fn(LinuxNamespaceType) -> bool,
) -> Result<(), String> {
    let io = |what: &str, path: &Path, e: std::io::Error| format!("{what} `{}`: {e}", path.display());
    let _lock = lock(registry).map_err(|e| io("locking", registry, e))?;
    let me = Owner { root: root.to_path_buf(), id: id.to_string() };
    check_joined_in(registry, joined, identity, Some(&me), shares_host, &[init])?;
    // Checked again under the lock, then recorded: of two creates, one rooted
    // in the other's state root, the second to register sees the first
    // (the check at the start of `create` cannot see a job not yet here).
    check_apart_in(registry, root, id, rootfs)?;
    let rootfs_entry = registry.join(rootfs_link_name(root, id));
    {
        use std::os::unix::ffi::OsStrExt;
        let mut body = dir.as_os_str().as_bytes().to_vec();
        body.push(0);
        body.extend_from_slice(rootfs.as_os_str().as_bytes());
        let _ = std::fs::remove_file(&rootfs_entry);
        std::fs::write(&rootfs_entry, body).map_err(|e| io("writing", &rootfs_entry, e))?;
    }
    let entry = entry_name(root, id);
    let target = root.join(id);
    let mut names = Vec::new();
    // The links made so far, removed again if registration fails half-way
    // (a full disk): `unregister` finds entries only through OWN_FILE, so
    // any left here would stay, naming a container that never was.
    let mut made: Vec<PathBuf> = Vec::new();
    let registered = (|| -> Result<(), String> {
        for typ in TYPES {
            let name = proc_name(typ);
            let Ok(mine) = NamespaceId::of(Path::new(&format!("/proc/{init}/ns/{name}"))) else { continue };
            let Ok(host) = NamespaceId::of(Path::new(&format!("/proc/self/ns/{name}"))) else { continue };
            if mine == host {
                continue;
            }
            let made_here = !joined.iter().any(|(t, _, ns)| *t == typ && *ns == mine);
            if made_here {
                if let Some(owner) = first_foreign(owners_in(registry, typ, mine), identity, Some(&me))? {
                    return Err(format!(
                        "job `{}` of another principal joined this job's {name} namespace before it was registered",
                        owner.id
                    ));
                }
            }
            let ns_dir = namespace_dir(registry, typ, mine);
            // Anything but a directory there (an entry of an earlier brig, a
            // leftover) is replaced.
            if std::fs::symlink_metadata(&ns_dir).is_ok_and(|m| !m.is_dir()) {
                std::fs::remove_file(&ns_dir).map_err(|e| io("replacing", &ns_dir, e))?;
            }
            match std::fs::create_dir(&ns_dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("creating", &ns_dir, e)),
            }
            let link = ns_dir.join(&entry);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&target, &link).map_err(|e| io("creating", &link, e))?;
            made.push(link);
            names.push(ns_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        }
        let own = dir.join(OWN_FILE);
        std::fs::write(&own, serde_json::to_vec(&names).unwrap_or_default()).map_err(|e| io("writing", &own, e))
    })();
    if registered.is_err() {
        for link in &made {
            let _ = std::fs::remove_file(link);
        }
        let _ = std::fs::remove_file(&rootfs_entry);
        let _ = std::fs::remove_file(dir.join(OWN_FILE));
    }
    registered
}

/// Removes the entries job `root`/`id` registered.
pub fn unregister(root: &Path, id: &str, dir: &Path) {
    unregister_in(Path::new(REGISTRY_DIR), root, id, dir)
}

fn unregister_in(registry: &Path, root: &Path, id: &str, dir: &Path) {
    let _ = std::fs::remove_file(registry.join(rootfs_link_name(root, id)));
    let Ok(bytes) = std::fs::read(dir.join(OWN_FILE)) else { return };
    let names: Vec<String> = serde_json::from_slice(&bytes).unwrap_or_default();
    let Ok(_lock) = lock(registry) else { return };
    let entry = entry_name(root, id);
    for name in names.iter().filter(|n| !n.is_empty() && !n.contains('/') && !n.starts_with('.')) {
        let ns_dir = registry.join(name);
        let _ = std::fs::remove_file(ns_dir.join(&entry));
        // The last job of the namespace takes its directory (under the
        // lock: no job is registering in it meanwhile).
        let _ = std::fs::remove_dir(&ns_dir);
    }
}

/// Whether two jobs' identities (`RunRecord.auth.identity`: `iss`, `sub`,
/// `tenant`) are one principal: the same issuer and tenant when either has a
/// tenant, else the same issuer and subject. Two unauthenticated jobs (empty
/// identities) are one; an unauthenticated job and an authenticated one are
/// not.
pub fn same_principal(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    let key = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned();
    if key(a, "iss") != key(b, "iss") {
        return false;
    }
    match (key(a, "tenant"), key(b, "tenant")) {
        (None, None) => key(a, "sub") == key(b, "sub"),
        (ta, tb) => ta == tb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn one_principal_is_one_tenant_or_one_subject() {
        let acme = |sub: &str| id(&[("iss", "i"), ("sub", sub), ("tenant", "acme")]);
        assert!(same_principal(&acme("a"), &acme("b")), "a tenant's jobs");
        assert!(!same_principal(&acme("a"), &id(&[("iss", "i"), ("sub", "a"), ("tenant", "globex")])));
        assert!(!same_principal(&acme("a"), &id(&[("iss", "other"), ("sub", "a"), ("tenant", "acme")])));
        assert!(!same_principal(&acme("a"), &id(&[("iss", "i"), ("sub", "a")])), "a tenant's and no tenant's");
        assert!(same_principal(&id(&[("iss", "i"), ("sub", "a")]), &id(&[("iss", "i"), ("sub", "a")])));
        assert!(!same_principal(&id(&[("iss", "i"), ("sub", "a")]), &id(&[("iss", "i"), ("sub", "b")])));
        assert!(same_principal(&id(&[]), &id(&[])), "authorization off");
        assert!(!same_principal(&id(&[]), &acme("a")));
    }

    #[test]
    fn an_entry_is_believed_only_while_its_job_is_in_the_namespace() {
        let registry = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("job");
        std::fs::create_dir_all(&dir).unwrap();
        // A job whose init is a child in its own UTS namespace.
        let mut child = std::process::Command::new("unshare").args(["--uts", "sleep", "30"]).spawn().unwrap();
        let pid = child.id() as i32;
        let ns_path = format!("/proc/{pid}/ns/uts");
        let host = NamespaceId::of(Path::new("/proc/self/ns/uts")).unwrap();
        let mut mine = host;
        for _ in 0..100 {
            mine = NamespaceId::of(Path::new(&ns_path)).unwrap();
            if mine != host {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_ne!(mine, host);
        std::fs::write(dir.join("state.json"), format!("{{\"pid\": {pid}}}")).unwrap();
        let rootfs = root.path().join("images/one");
        register_in(registry.path(), root.path(), "job", (pid, &rootfs), &dir, &BTreeMap::new(), &[], |_| false)
            .unwrap();
        // A state root inside that job's root filesystem is refused (the
        // job would see its jobs), one elsewhere is not.
        let inside = rootfs.join("state");
        let e = check_apart_in(registry.path(), &inside, "other", Path::new("/elsewhere")).unwrap_err();
        assert!(e.contains("root filesystem of a running job"), "{e}");
        check_apart_in(registry.path(), &root.path().join("state-b"), "other", Path::new("/elsewhere")).unwrap();
        // An entry whose job directory is gone (a brig killed mid-create) is
        // not believed.
        std::fs::write(registry.path().join("rootfs-stale"), b"/nonexistent/job\0/srv/images/stale").unwrap();
        check_apart_in(registry.path(), Path::new("/srv/images/stale/state"), "other", Path::new("/elsewhere"))
            .unwrap();
        std::fs::remove_file(registry.path().join("rootfs-stale")).unwrap();
        let me = Owner { root: root.path().to_path_buf(), id: "job".into() };
        assert_eq!(owners_in(registry.path(), LinuxNamespaceType::Uts, mine), vec![me]);
        assert!(owners_in(registry.path(), LinuxNamespaceType::Network, host).is_empty(), "the host's is nobody's");
        let _ = child.kill();
        let _ = child.wait();
        assert!(owners_in(registry.path(), LinuxNamespaceType::Uts, mine).is_empty(), "its job is gone");
        unregister_in(registry.path(), root.path(), "job", &dir);
        let left: Vec<_> = std::fs::read_dir(registry.path()).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_file(registry.path().with_extension("lock"));
    }
    /// A registration that fails half-way (its own list of entries cannot be
    /// written: a full disk) leaves none of its entries: `unregister` finds
    /// them only through that list, so they would stay for good.
    #[test]
    fn a_registration_that_fails_half_way_leaves_no_entry() {
        let registry = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("job");
        // The list's place taken by a directory: writing it fails.
        std::fs::create_dir_all(dir.join(OWN_FILE)).unwrap();
        let mut child = std::process::Command::new("unshare").args(["--uts", "--ipc", "sleep", "30"]).spawn().unwrap();
        let pid = child.id() as i32;
        let host = NamespaceId::of(Path::new("/proc/self/ns/uts")).unwrap();
        for _ in 0..100 {
            if NamespaceId::of(Path::new(&format!("/proc/{pid}/ns/uts"))).is_ok_and(|ns| ns != host) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let rootfs = root.path().join("images/one");
        let e =
            register_in(registry.path(), root.path(), "job", (pid, &rootfs), &dir, &BTreeMap::new(), &[], |_| false)
                .unwrap_err();
        let _ = child.kill();
        let _ = child.wait();
        assert!(e.contains(OWN_FILE), "{e}");
        let mut left = Vec::new();
        for entry in std::fs::read_dir(registry.path()).unwrap().flatten() {
            match entry.file_type().unwrap().is_dir() {
                true => left.extend(std::fs::read_dir(entry.path()).unwrap().flatten().map(|e| e.path())),
                false => left.push(entry.path()),
            }
        }
        assert!(left.is_empty(), "entries left: {left:?}");
        let _ = std::fs::remove_file(registry.path().with_extension("lock"));
    }
}
