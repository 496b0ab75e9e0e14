//! Jobs that join another job's namespaces: a Kubernetes pod's containers and
//! its sandbox, a Podman pod, `docker run --network container:X`.
//!
//! A job with its own user namespace can only join namespaces that user
//! namespace owns (the kernel asks for `CAP_SYS_ADMIN` over the owner). The
//! namespaces of a brig job with a per-job user namespace are owned by that
//! job's user namespace, so a second job of the pod cannot join them from a
//! user namespace of its own. It joins the first job's instead, with the same
//! ID range: one user namespace per pod, as Kubernetes does for
//! `hostUsers: false`. Which job that is, is read from the namespaces the spec
//! names, never from an annotation a client could forge: each namespace file's
//! owning user namespace (`NS_GET_USERNS`) is compared with the user namespace
//! of each job brig runs under the same state root.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::{RunRecord, UsernsRecord};

/// `_IO(0xb7, 0x1)`: an fd for the user namespace owning a namespace.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
/// `_IO(0xb7, 0x2)`: an fd for the parent of a user namespace.
const NS_GET_PARENT: libc::c_ulong = 0xb702;

/// The ancestors of the user namespace at `path`, nearest first, up to the
/// caller's own (whose parent the kernel does not show: EPERM).
pub fn user_namespace_ancestors(path: &Path) -> std::io::Result<Vec<NamespaceId>> {
    let mut current = OwnedFd::from(std::fs::File::open(path)?);
    let mut ancestors = Vec::new();
    // The kernel nests user namespaces 32 deep at most.
    for _ in 0..=32 {
        // SAFETY: NS_GET_PARENT takes no argument; on success it returns a
        // new file descriptor, which OwnedFd then owns and closes.
        let fd = unsafe { libc::ioctl(current.as_raw_fd(), NS_GET_PARENT as _) };
        if fd < 0 {
            break;
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let parent = unsafe { OwnedFd::from_raw_fd(fd) };
        let meta = nix::sys::stat::fstat(parent.as_raw_fd()).map_err(std::io::Error::from)?;
        ancestors.push(NamespaceId { dev: meta.st_dev, ino: meta.st_ino });
        current = parent;
    }
    Ok(ancestors)
}

/// The ID mappings (`inside outside count` lines: uid, then gid) of the user
/// namespace `ns`, as the host sees them, read from a process in it: the one
/// `path` names when it is `/proc/<pid>/ns/user`, else any (the path's text
/// is no guide: `/proc/<pid>/task/<tid>/ns/user`, a bind mount of the file).
/// The process must still be in `ns` once they are read. None when no
/// process is in it.
pub fn user_namespace_maps(path: &Path, ns: NamespaceId) -> Option<[Vec<(u32, u32, u32)>; 2]> {
    let named = path
        .to_str()
        .and_then(|p| p.strip_prefix("/proc/")?.strip_suffix("/ns/user"))
        .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string);
    let others = std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|e| {
        let name = e.file_name().into_string().ok()?;
        name.bytes().all(|b| b.is_ascii_digit()).then_some(name)
    });
    named.into_iter().chain(others).find_map(|pid| maps_of(&pid, ns))
}

fn maps_of(pid: &str, ns: NamespaceId) -> Option<[Vec<(u32, u32, u32)>; 2]> {
    let in_ns = || NamespaceId::of(Path::new(&format!("/proc/{pid}/ns/user"))).ok() == Some(ns);
    if !in_ns() {
        return None;
    }
    let read = |file: &str| -> Option<Vec<(u32, u32, u32)>> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
        text.lines()
            .map(|l| {
                let mut f = l.split_whitespace().map(str::parse::<u32>);
                Some((f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?))
            })
            .collect()
    };
    let maps = [read("uid_map")?, read("gid_map")?];
    in_ns().then_some(maps)
}

/// A namespace, as the kernel identifies it (nsfs device and inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceId {
    pub dev: u64,
    pub ino: u64,
}

impl NamespaceId {
    /// The namespace a namespace file (`/proc/<pid>/ns/<type>`, a bind mount
    /// of one) refers to.
    pub fn of(path: &Path) -> std::io::Result<NamespaceId> {
        let meta = std::fs::metadata(path)?;
        Ok(NamespaceId { dev: meta.dev(), ino: meta.ino() })
    }

    /// The user namespace owning the namespace a spec's path names (read
    /// through the descriptor `create` pinned for it, crate::nspin).
    pub fn owner_of(path: &Path) -> std::io::Result<NamespaceId> {
        let file = std::fs::File::open(crate::nspin::resolved(path))?;
        // SAFETY: NS_GET_USERNS takes no argument; on success it returns a
        // new file descriptor, which OwnedFd then owns and closes.
        let fd = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_USERNS as _) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let owner = unsafe { OwnedFd::from_raw_fd(fd) };
        let meta = nix::sys::stat::fstat(owner.as_raw_fd()).map_err(std::io::Error::from)?;
        Ok(NamespaceId { dev: meta.st_dev, ino: meta.st_ino })
    }
}

/// How a job is part of a pod, kept in its run record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodMembership {
    /// The job whose user namespace this job joined.
    pub joined: String,
    /// That user namespace; the job's init is checked to be in it.
    pub user_namespace: NamespaceId,
}

/// The job of the pod whose user namespace a new job joins.
#[derive(Debug, Clone)]
pub struct PodLeader {
    pub id: String,
    pub pid: i32,
    pub userns: UsernsRecord,
    pub user_namespace: NamespaceId,
}

impl PodLeader {
    pub fn namespace_path(&self, typ: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{typ}", self.pid))
    }
}

/// The job whose user namespace owns the namespaces `spec` joins, if they are
/// not the host's. Refused when they belong to a user namespace that is no
/// brig job's, or to two different ones.
pub fn find_leader(root: &Path, id: &str, spec: &Spec) -> Result<Option<PodLeader>> {
    let host = NamespaceId::of(Path::new("/proc/self/ns/user"))
        .map_err(|e| Error::state(id, format!("reading brig's own user namespace: {e}")))?;
    let joined: Vec<(LinuxNamespaceType, PathBuf)> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|n| n.path().clone().map(|p| (n.typ(), p)))
        .collect();
    let mut owner: Option<(NamespaceId, PathBuf)> = None;
    for (typ, path) in &joined {
        // A user namespace named by path is the pod's user namespace itself
        // (its owner is the host's); any other is owned by it.
        let this = match typ {
            LinuxNamespaceType::User => NamespaceId::of(&crate::nspin::resolved(path)),
            _ => NamespaceId::owner_of(path),
        }
        .map_err(|e| Error::state(id, format!("linux.namespaces: the {typ:?} namespace `{}`: {e}", path.display())))?;
        if this == host {
            continue;
        }
        match &owner {
            Some((first, first_path)) if *first != this => {
                return Err(Error::state(
                    id,
                    format!(
                        "linux.namespaces: `{}` and `{}` belong to two different user namespaces; a job can join one pod only",
                        first_path.display(),
                        path.display()
                    ),
                ))
            }
            Some(_) => {}
            None => owner = Some((this, path.clone())),
        }
    }
    let Some((wanted, path)) = owner else { return Ok(None) };
    for leader in jobs_with_own_userns(root, id) {
        if leader.user_namespace == wanted {
            return Ok(Some(leader));
        }
    }
    Err(Error::state(
        id,
        format!(
            "linux.namespaces: `{}` belongs to a user namespace that is not one of a job brig runs under this root; \
             a job with its own user namespace can only join the namespaces of its own pod",
            path.display()
        ),
    ))
}

/// Live jobs under `root` (other than `id`) with a user namespace brig made.
pub fn jobs_with_own_userns(root: &Path, id: &str) -> Vec<PodLeader> {
    let Ok(entries) = std::fs::read_dir(root) else { return vec![] };
    let mut leaders = vec![];
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == id || name.starts_with('.') {
            continue;
        }
        let dir = entry.path();
        let Ok(RunRecord { userns: Some(userns), .. }) = RunRecord::load(&dir) else { continue };
        let Some(pid) = std::fs::read(dir.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("pid").and_then(|p| p.as_i64()))
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        let Ok(user_namespace) = NamespaceId::of(Path::new(&format!("/proc/{pid}/ns/user"))) else { continue };
        leaders.push(PodLeader { id: name, pid, userns, user_namespace });
    }
    leaders
}

/// The user namespace a spec joins by path, if it names one.
pub fn joined_user_namespace(spec: &Spec) -> Option<PathBuf> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)
        .and_then(|n| n.path().clone())
}

/// After `create`: the job's init must be in the pod's user namespace. A pid
/// reused between finding the leader and joining it would show here.
pub fn check_joined(id: &str, init_pid: i32, membership: &PodMembership) -> Result<()> {
    let actual = NamespaceId::of(Path::new(&format!("/proc/{init_pid}/ns/user")))
        .map_err(|e| Error::state(id, format!("reading the job's user namespace: {e}")))?;
    if actual != membership.user_namespace {
        return Err(Error::state(
            id,
            format!("the job did not end up in the user namespace of `{}`, the pod it joins", membership.joined),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_namespaces_are_owned_by_the_host_user_namespace() {
        let host = NamespaceId::of(Path::new("/proc/self/ns/user")).unwrap();
        for typ in ["net", "ipc", "uts", "mnt"] {
            assert_eq!(NamespaceId::owner_of(Path::new(&format!("/proc/self/ns/{typ}"))).unwrap(), host);
        }
    }

    #[test]
    fn spec_joining_host_namespaces_has_no_leader() {
        let d = tempfile::tempdir().unwrap();
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [{"type": "network", "path": "/proc/self/ns/net"}, {"type": "mount"}]}
        }))
        .unwrap();
        assert!(find_leader(d.path(), "job", &spec).unwrap().is_none());
    }

    #[test]
    fn missing_namespace_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [{"type": "ipc", "path": "/nonexistent/ns/ipc"}]}
        }))
        .unwrap();
        let e = find_leader(d.path(), "job", &spec).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ns/ipc"), "{e}");
    }
}
