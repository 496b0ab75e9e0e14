//! Namespaces a spec joins by path, opened once.
//!
//! A namespace path (`/proc/<pid>/ns/net`, a bind-mounted namespace file, a
//! link to one) is checked (not the host's, the pod's, ...) and then joined.
//! Checking the path and later opening it again would join whatever the path
//! names by then: a job that can write the directory of a path another job's
//! spec names could swap a harmless file for a link to `/proc/1/ns/mnt`
//! between the two. So `create` opens each path once, before anything looks
//! at it ([`pin`]): the descriptor must be a namespace file (nsfs) of the type
//! the spec says. Every check reads the namespace through that descriptor
//! ([`resolved`]), libcontainer joins it through the same descriptor
//! (`/proc/self/fd/N`, inherited by the processes it clones:
//! [`for_libcontainer`]), and after the build the init is checked to be in
//! exactly those namespaces ([`check_joined`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::pod::NamespaceId;

/// `_IO(0xb7, 0x3)`: the `CLONE_NEW*` type of a namespace file.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
/// `statfs.f_type` of nsfs.
const NSFS_MAGIC: i64 = 0x6e73_6673;

struct Pinned {
    path: PathBuf,
    typ: LinuxNamespaceType,
    id: NamespaceId,
    fd: OwnedFd,
}

/// The namespaces this process pinned (one `create` per process).
static PINNED: Mutex<Vec<Pinned>> = Mutex::new(Vec::new());

fn clone_flag(typ: LinuxNamespaceType) -> libc::c_int {
    match typ {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80,
    }
}

/// `/proc/<pid>/ns/` entry of a namespace type.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

fn open_namespace(path: &Path, typ: LinuxNamespaceType) -> std::result::Result<(OwnedFd, NamespaceId), String> {
    // Following links is what a namespace path means (`/proc/<pid>/ns/net`
    // is one); what it leads to now is what is checked and joined. Opened
    // with O_PATH first: a device or FIFO named there is never opened for
    // real (a watchdog would start, a tape rewind); only an nsfs file is.
    let located = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot be opened ({e})"))?;
    let fs = nix::sys::statfs::fstatfs(&located).map_err(|e| e.to_string())?;
    if fs.filesystem_type().0 as i64 != NSFS_MAGIC {
        return Err("not a namespace file".into());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(format!("/proc/self/fd/{}", located.as_raw_fd()))
        .map_err(|e| format!("cannot be opened ({e})"))?;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the type or -1.
    let actual = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if actual < 0 {
        return Err(format!("not a namespace file ({})", std::io::Error::last_os_error()));
    }
    if actual != clone_flag(typ) {
        return Err(format!(
            "a namespace of another type (CLONE_NEW* {actual:#x}), not a {} namespace",
            proc_name(typ)
        ));
    }
    let meta = nix::sys::stat::fstat(file.as_raw_fd()).map_err(|e| e.to_string())?;
    Ok((OwnedFd::from(file), NamespaceId { dev: meta.st_dev, ino: meta.st_ino }))
}

/// Pins `path` unless it is pinned already; its place in `pinned`.
fn pin_one(pinned: &mut Vec<Pinned>, id: &str, typ: LinuxNamespaceType, path: &Path) -> Result<usize> {
    if let Some(at) = pinned.iter().position(|p| p.path == path && p.typ == typ) {
        return Ok(at);
    }
    let (fd, nsid) = open_namespace(path, typ).map_err(|e| {
        Error::state(id, format!("linux.namespaces: the {} namespace `{}`: {e}", proc_name(typ), path.display()))
    })?;
    pinned.push(Pinned { path: path.to_path_buf(), typ, id: nsid, fd });
    Ok(pinned.len() - 1)
}

/// Opens every namespace `spec` joins by path, once, and keeps it open for
/// this process. Refused: a path that cannot be opened, that is not a
/// namespace file, or a namespace of another type than the entry says
/// (libcontainer would fail on the first two as well; a path that appears
/// only later must not be joined unchecked).
pub fn pin(id: &str, spec: &Spec) -> Result<()> {
    let mut pinned = PINNED.lock().unwrap_or_else(|e| e.into_inner());
    for ns in spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).into_iter().flatten() {
        if let Some(path) = ns.path() {
            pin_one(&mut pinned, id, ns.typ(), path)?;
        }
    }
    Ok(())
}

/// The path to read a spec's namespace path through: the pinned descriptor
/// (`/proc/self/fd/N`) when [`pin`] opened it, else the path itself.
pub fn resolved(path: &Path) -> PathBuf {
    let pinned = PINNED.lock().unwrap_or_else(|e| e.into_inner());
    match pinned.iter().find(|p| p.path == path) {
        Some(p) => PathBuf::from(format!("/proc/self/fd/{}", p.fd.as_raw_fd())),
        None => path.to_path_buf(),
    }
}

/// The namespaces pinned: (type, the spec's path, namespace).
pub fn pinned() -> Vec<(LinuxNamespaceType, PathBuf, NamespaceId)> {
    let pinned = PINNED.lock().unwrap_or_else(|e| e.into_inner());
    pinned.iter().map(|p| (p.typ, p.path.clone(), p.id)).collect()
}

/// libcontainer's copy of the spec: every namespace path becomes a pinned
/// descriptor (`/proc/self/fd/N`; libcontainer's processes are clones of this
/// one and hold the same descriptors until they exec). A path brig set itself
/// after [`pin`] (a pod's own namespaces, `/proc/<first job>/ns/...`) is
/// pinned now. Returns what the init must be in: (type, namespace).
pub fn for_libcontainer(id: &str, spec: &mut Spec) -> Result<Vec<(LinuxNamespaceType, NamespaceId)>> {
    let mut pinned = PINNED.lock().unwrap_or_else(|e| e.into_inner());
    let mut joined = Vec::new();
    let Some(namespaces) = spec.linux_mut().as_mut().and_then(|l| l.namespaces_mut().as_mut()) else {
        return Ok(joined);
    };
    for ns in namespaces.iter_mut() {
        let Some(path) = ns.path().clone() else { continue };
        let at = pin_one(&mut pinned, id, ns.typ(), &path)?;
        let p = &pinned[at];
        ns.set_path(Some(PathBuf::from(format!("/proc/self/fd/{}", p.fd.as_raw_fd()))));
        joined.push((p.typ, p.id));
    }
    Ok(joined)
}

/// For the test that swaps a namespace path between the check and the join
/// (`BRIG_TEST_FAULT=swap-namespace-links`, tests/tests/attacks.rs): every
/// pinned path that is a symbolic link is made a link to this process's own
/// (the host's) namespace of its type, as a job that can write the link's
/// directory could do at that moment.
pub fn swap_links_for_test() {
    let pinned = PINNED.lock().unwrap_or_else(|e| e.into_inner());
    for p in pinned.iter() {
        if std::fs::symlink_metadata(&p.path).is_ok_and(|m| m.file_type().is_symlink()) {
            let _ = std::fs::remove_file(&p.path);
            let _ =
                std::os::unix::fs::symlink(format!("/proc/{}/ns/{}", std::process::id(), proc_name(p.typ)), &p.path);
        }
    }
}

/// After the build: the init is in each namespace libcontainer was given
/// through a pinned descriptor.
pub fn check_joined(id: &str, init: i32, joined: &[(LinuxNamespaceType, NamespaceId)]) -> Result<()> {
    for (typ, want) in joined {
        let path = PathBuf::from(format!("/proc/{init}/ns/{}", proc_name(*typ)));
        let got = NamespaceId::of(&path).map_err(|e| Error::state(id, format!("reading `{}`: {e}", path.display())))?;
        if got != *want {
            return Err(Error::state(
                id,
                format!(
                    "the init is not in the {} namespace the spec names (it changed during the launch)",
                    proc_name(*typ)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_joining(typ: &str, path: &Path) -> Spec {
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": typ, "path": path}]}
        }))
        .unwrap()
    }

    #[test]
    fn only_a_namespace_file_of_the_right_type_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let err = pin("t", &spec_joining("network", &file)).unwrap_err().to_string();
        assert!(err.contains("not a namespace file"), "{err}");
        let err = pin("t", &spec_joining("ipc", Path::new("/proc/self/ns/net"))).unwrap_err().to_string();
        assert!(err.contains("another type"), "{err}");
        // A link to a namespace file is followed once: what it named then is
        // what every later read sees, whatever the link becomes.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/proc/self/ns/uts", &link).unwrap();
        pin("t", &spec_joining("uts", &link)).unwrap();
        std::fs::remove_file(&link).unwrap();
        std::fs::write(&link, "swapped").unwrap();
        let through = resolved(&link);
        assert!(through.starts_with("/proc/self/fd"), "{}", through.display());
        assert_eq!(NamespaceId::of(&through).unwrap(), NamespaceId::of(Path::new("/proc/self/ns/uts")).unwrap());
        let mut spec = spec_joining("uts", &link);
        let joined = for_libcontainer("t", &mut spec).unwrap();
        assert_eq!(joined.len(), 1);
        let path = spec.linux().as_ref().unwrap().namespaces().as_ref().unwrap()[0].path().clone().unwrap();
        assert_eq!(path, through);
    }
}
