//! Which brig job a namespace belongs to.
//!
//! A spec may join a namespace by path: a pod's containers join their
//! sandbox's, `docker run --network container:X` joins X's. Nothing in the
//! path says whose namespace it is, and a job must not join another
//! principal's (its IPC objects, its loopback services, its network). So
//! every job's own namespaces (neither the host's nor joined) are registered
//! at `create`, one entry per namespace in [`REGISTRY_DIR`] named by its type
//! and nsfs identity: a symbolic link to the job's state directory (root and
//! id; one system call to make, none of it read back but the link), removed
//! at `delete`. A `create` that joins a registered namespace must be for the
//! same principal as its owner ([`same_principal`]): the same tenant, or with
//! no tenant the same issuer and subject (both unauthenticated under
//! `[auth] mode = "off"`). The registry is global (not per `--root`), like the
//! user-namespace slots: Docker, Podman and containerd use their own roots.
//! An entry is believed only while its job lives in that namespace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;
use serde::{Deserialize, Serialize};

use crate::nspin::proc_name;
use crate::pod::NamespaceId;

/// Where the entries live.
pub const REGISTRY_DIR: &str = "/run/brig/namespaces";
/// The container's list of its entries (for `delete`).
const OWN_FILE: &str = "brig-namespaces.json";

const TYPES: [LinuxNamespaceType; 7] = [
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::User,
];

/// The job a namespace belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub root: PathBuf,
    pub id: String,
}

fn entry_name(typ: LinuxNamespaceType, ns: NamespaceId) -> String {
    format!("{}-{}-{}", proc_name(typ), ns.dev, ns.ino)
}

fn read_entry(path: &Path) -> Option<Owner> {
    let dir = std::fs::read_link(path).ok()?;
    let id = dir.file_name()?.to_str()?.to_string();
    Some(Owner { root: dir.parent()?.to_path_buf(), id })
}

/// The init pid libcontainer recorded for a job.
fn init_pid(root: &Path, id: &str) -> Option<i32> {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join(id).join("state.json")).ok()?).ok()?;
    state.get("pid")?.as_i64().and_then(|p| i32::try_from(p).ok())
}

/// The live job whose own namespace `ns` is, if any.
pub fn owner(typ: LinuxNamespaceType, ns: NamespaceId) -> Option<Owner> {
    owner_in(Path::new(REGISTRY_DIR), typ, ns)
}

fn owner_in(dir: &Path, typ: LinuxNamespaceType, ns: NamespaceId) -> Option<Owner> {
    let owner = read_entry(&dir.join(entry_name(typ, ns)))?;
    // A stale entry (its job gone without `delete`, the inode since reused)
    // names a job that is not in that namespace.
    let pid = init_pid(&owner.root, &owner.id)?;
    let live = NamespaceId::of(Path::new(&format!("/proc/{pid}/ns/{}", proc_name(typ)))).ok()?;
    (live == ns).then_some(owner)
}

/// Registers the namespaces of job `root`/`id` (init `init`, container
/// directory `dir`) that are its own: not this process's (the host's), not
/// another live job's (a pod member's joined ones).
pub fn register(root: &Path, id: &str, init: i32, dir: &Path) -> std::io::Result<()> {
    register_in(Path::new(REGISTRY_DIR), root, id, init, dir)
}

fn register_in(registry: &Path, root: &Path, id: &str, init: i32, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(registry)?;
    let me = Owner { root: root.to_path_buf(), id: id.to_string() };
    let target = root.join(id);
    let mut names = Vec::new();
    for typ in TYPES {
        let name = proc_name(typ);
        let Ok(mine) = NamespaceId::of(Path::new(&format!("/proc/{init}/ns/{name}"))) else { continue };
        let host = NamespaceId::of(Path::new(&format!("/proc/self/ns/{name}")))?;
        if mine == host {
            continue;
        }
        let entry = entry_name(typ, mine);
        let path = registry.join(&entry);
        match std::os::unix::fs::symlink(&target, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Another live job's (a pod member joined it): not ours.
                // Else a stale entry (its job gone without `delete`, the
                // inode reused since): replaced.
                if owner_in(registry, typ, mine).is_some_and(|o| o != me) {
                    continue;
                }
                let tmp = registry.join(format!(".{entry}.{}", std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(&target, &tmp)?;
                std::fs::rename(&tmp, &path)?;
            }
            Err(e) => return Err(e),
        }
        names.push(entry);
    }
    std::fs::write(dir.join(OWN_FILE), serde_json::to_vec(&names).unwrap_or_default())
}

/// Removes the entries job `root`/`id` registered (those still naming it).
pub fn unregister(root: &Path, id: &str, dir: &Path) {
    unregister_in(Path::new(REGISTRY_DIR), root, id, dir)
}

fn unregister_in(registry: &Path, root: &Path, id: &str, dir: &Path) {
    let Ok(bytes) = std::fs::read(dir.join(OWN_FILE)) else { return };
    let names: Vec<String> = serde_json::from_slice(&bytes).unwrap_or_default();
    let me = Owner { root: root.to_path_buf(), id: id.to_string() };
    for name in names.iter().filter(|n| !n.contains('/') && !n.starts_with('.')) {
        let path = registry.join(name);
        if read_entry(&path).is_some_and(|o| o == me) {
            let _ = std::fs::remove_file(path);
        }
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
        register_in(registry.path(), root.path(), "job", pid, &dir).unwrap();
        let me = Owner { root: root.path().to_path_buf(), id: "job".into() };
        assert_eq!(owner_in(registry.path(), LinuxNamespaceType::Uts, mine), Some(me));
        assert_eq!(owner_in(registry.path(), LinuxNamespaceType::Network, host), None, "the host's is nobody's");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(owner_in(registry.path(), LinuxNamespaceType::Uts, mine), None, "its job is gone");
        unregister_in(registry.path(), root.path(), "job", &dir);
        assert_eq!(std::fs::read_dir(registry.path()).unwrap().count(), 0);
    }
}
