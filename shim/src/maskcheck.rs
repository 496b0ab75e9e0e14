//! The job's `/proc` and `/sys` are checked, in the container's init right
//! before it hands over to the supervisor, to be the kernel filesystems
//! libcontainer mounted, with the spec's masked and read-only paths on them.
//!
//! Why: libcontainer applies masks and read-only binds *by path* after
//! `pivot_root`, and skips a path that does not exist. A job that shares a
//! writable root filesystem with this one (the same bundle, or a volume over
//! it) can rename the `proc` directory while this job is being set up: the
//! procfs mounted on it moves along, an empty directory takes its place, the
//! masks land in that directory or are skipped, and this job finds an
//! unmasked, writable procfs where the other one put it (as host root under
//! `standard`: `/proc/sys/kernel/core_pattern`). Everything here is looked
//! up relative to one descriptor of the mount root, so a swap between checks
//! cannot mix two trees; a mask that is not on the mounted filesystem fails
//! the launch.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Spec;

use libc::{PROC_SUPER_MAGIC, SYSFS_MAGIC, TMPFS_MAGIC};

/// `statfs.f_type`'s type on this target.
type FsType = libc::__fsword_t;

fn cstr(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| format!("`{}` has a NUL byte", p.display()))
}

/// `openat(dir, path, O_PATH | O_NOFOLLOW | O_CLOEXEC)`: None if it does not exist.
fn open_path(dir: Option<&OwnedFd>, path: &Path) -> Result<Option<OwnedFd>, String> {
    let c = cstr(path)?;
    let base = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: openat with a NUL-terminated path; a new descriptor is returned
    // and owned below.
    let fd = unsafe { libc::openat(base, c.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) => Ok(None),
            _ => Err(format!("opening `{}`: {e}", path.display())),
        };
    }
    // SAFETY: `fd` was just returned by openat and nothing else owns it.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn fstatfs(fd: &OwnedFd) -> Result<libc::statfs, String> {
    // SAFETY: an all-zero statfs is a valid value to be overwritten.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes one statfs into `st`, which outlives the call.
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(format!("fstatfs: {}", std::io::Error::last_os_error()));
    }
    Ok(st)
}

fn fstat(fd: &OwnedFd) -> Result<libc::stat, String> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one stat into `st`; O_PATH descriptors allow it.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(format!("fstat: {}", std::io::Error::last_os_error()));
    }
    Ok(st)
}

/// Whether `fd` is the root of a mount: statx's STATX_ATTR_MOUNT_ROOT
/// (Linux 5.8); on a kernel that does not report it, whether its device
/// differs from its parent's (`parent`: the directory it was opened in).
fn is_mount_root(fd: &OwnedFd, parent: &Path) -> Result<bool, String> {
    // SAFETY: an all-zero statx is a valid value to be overwritten.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx on the descriptor itself (empty path), writing into `stx`.
    let r = unsafe { libc::statx(fd.as_raw_fd(), c"".as_ptr(), libc::AT_EMPTY_PATH, 0, &mut stx) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        // (A seccomp profile without statx answers EPERM, as std expects.)
        if !matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM | libc::EACCES)) {
            return Err(format!("statx: {e}"));
        }
    } else if stx.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0 {
        return Ok(stx.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0);
    }
    let above = std::fs::metadata(parent).map_err(|e| format!("`{}`: {e}", parent.display()))?;
    Ok(fstat(fd)?.st_dev != std::os::unix::fs::MetadataExt::dev(&above))
}

/// The checks for one kernel filesystem mounted at `base` (`/proc` or `/sys`).
fn check_tree(base: &Path, magic: FsType, kind: &str, masked: &[&Path], readonly: &[&Path]) -> Result<(), String> {
    let root = open_path(None, base)?.ok_or_else(|| format!("`{}` is gone", base.display()))?;
    let fs = fstatfs(&root)?;
    if fs.f_type != magic || !is_mount_root(&root, base.parent().unwrap_or(Path::new("/")))? {
        return Err(format!(
            "`{}` is not the {kind} mounted for the job (was its directory moved while the job was set up?)",
            base.display()
        ));
    }
    for path in masked {
        let Ok(rel) = path.strip_prefix(base) else { continue };
        let Some(fd) = open_path(Some(&root), rel)? else { continue };
        let st = fstat(&fd)?;
        let null = st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3);
        let empty_tmpfs = st.st_mode & libc::S_IFMT == libc::S_IFDIR && fstatfs(&fd)?.f_type == TMPFS_MAGIC;
        if !null && !empty_tmpfs {
            return Err(format!("the masked path `{}` is not masked", path.display()));
        }
    }
    for path in readonly {
        let Ok(rel) = path.strip_prefix(base) else { continue };
        let Some(fd) = open_path(Some(&root), rel)? else { continue };
        // SAFETY: an all-zero statvfs is a valid value to be overwritten.
        let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: fstatvfs writes one statvfs into `vfs`.
        if unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut vfs) } != 0 {
            return Err(format!("fstatvfs `{}`: {}", path.display(), std::io::Error::last_os_error()));
        }
        if vfs.f_flag & libc::ST_RDONLY == 0 {
            return Err(format!("the read-only path `{}` is writable", path.display()));
        }
    }
    Ok(())
}

/// Checks the job's `/proc` and `/sys` (those the spec mounts) against the
/// spec's masked and read-only paths. Run in the container, after
/// libcontainer's masks, before anything of the job runs.
pub fn verify(spec: &Spec) -> Result<(), String> {
    let linux = spec.linux().as_ref();
    // Spelled as libcontainer resolves them (`/tmp/../proc/kcore` is `/proc/kcore`).
    let lexical = |p: &String| std::path::PathBuf::from(brig_profiles::landlock::lexical(p));
    let masked: Vec<std::path::PathBuf> =
        linux.and_then(|l| l.masked_paths().as_ref()).into_iter().flatten().map(lexical).collect();
    let readonly: Vec<std::path::PathBuf> =
        linux.and_then(|l| l.readonly_paths().as_ref()).into_iter().flatten().map(lexical).collect();
    let masked: Vec<&Path> = masked.iter().map(|p| p.as_path()).collect();
    let readonly: Vec<&Path> = readonly.iter().map(|p| p.as_path()).collect();
    for (base, magic, kind) in [("/proc", PROC_SUPER_MAGIC, "procfs"), ("/sys", SYSFS_MAGIC, "sysfs")] {
        // However the spec spells it (`/tmp/../proc`): libcontainer mounts it there.
        let mounted = spec
            .mounts()
            .iter()
            .flatten()
            .any(|m| brig_profiles::landlock::lexical(&m.destination().to_string_lossy()) == base);
        let guarded = masked.iter().chain(&readonly).any(|p| p.starts_with(base));
        if mounted && guarded {
            check_tree(Path::new(base), magic, kind, &masked, &readonly)?;
        }
    }
    Ok(())
}

/// Checks that each path the spec's `dev.brig.expect-mounts` names (one
/// `DEV INO PATH` a line, written by `create`) is, as the job sees it, the
/// host directory that was checked there: the root filesystem, and every
/// measured input and output. A link swapped on the way to a bind source or
/// to the root filesystem after `create` looked at it would otherwise mount
/// another directory than the one checked (and measured).
pub fn verify_expected_mounts(spec: &Spec) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let Some(text) = spec.annotations().as_ref().and_then(|a| a.get(libcontainer::rootfs::EXPECT_MOUNTS_ANNOTATION))
    else {
        return Ok(());
    };
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, ' ');
        let (Some(dev), Some(ino), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("malformed expectation `{line}`"));
        };
        let (dev, ino) = match (dev.parse::<u64>(), ino.parse::<u64>()) {
            (Ok(d), Ok(i)) => (d, i),
            _ => return Err(format!("malformed expectation `{line}`")),
        };
        let seen = std::fs::metadata(path).map_err(|e| format!("`{path}`: {e}"))?;
        if (seen.dev(), seen.ino()) != (dev, ino) {
            return Err(format!(
                "`{path}` is not the directory that was checked and measured for it (was a link swapped on the way?)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's own `/proc`: a procfs mount root, where nothing is
    /// masked, so a masked path there is reported; one that does not exist
    /// is not.
    #[test]
    fn an_unmasked_path_on_the_real_procfs_is_reported() {
        check_tree(Path::new("/proc"), PROC_SUPER_MAGIC, "procfs", &[Path::new("/proc/no-such-file")], &[]).unwrap();
        let err =
            check_tree(Path::new("/proc"), PROC_SUPER_MAGIC, "procfs", &[Path::new("/proc/version")], &[]).unwrap_err();
        assert!(err.contains("not masked"), "{err}");
        let err =
            check_tree(Path::new("/proc"), PROC_SUPER_MAGIC, "procfs", &[], &[Path::new("/proc/sys")]).unwrap_err();
        assert!(err.contains("writable"), "{err}");
    }

    /// The check runs however the spec spells `/proc` (libcontainer
    /// normalizes the destination and mounts it at `/proc` all the same).
    #[test]
    fn a_proc_mount_spelled_otherwise_is_checked() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [{"destination": "/tmp/../proc", "type": "proc", "source": "proc"}],
            "linux": {"maskedPaths": ["/proc/version"]}
        }))
        .unwrap();
        let err = verify(&spec).unwrap_err();
        assert!(err.contains("/proc/version"), "{err}");
    }

    #[test]
    fn expected_mounts_are_what_a_path_shows() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let m = std::fs::metadata(dir.path()).unwrap();
        let spec_with = |line: String| -> Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2",
                "annotations": {libcontainer::rootfs::EXPECT_MOUNTS_ANNOTATION: line}
            }))
            .unwrap()
        };
        let p = dir.path().display();
        verify_expected_mounts(&spec_with(format!("{} {} {p}", m.dev(), m.ino()))).unwrap();
        let err = verify_expected_mounts(&spec_with(format!("{} {} {p}", m.dev(), m.ino() + 1))).unwrap_err();
        assert!(err.contains("not the directory that was checked"), "{err}");
        assert!(verify_expected_mounts(&spec_with("x y /".into())).unwrap_err().contains("malformed"));
    }

    /// An ordinary directory where the procfs should be (what the rename
    /// leaves) is refused before any path is looked at.
    #[test]
    fn a_directory_in_place_of_the_procfs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_tree(dir.path(), PROC_SUPER_MAGIC, "procfs", &[], &[]).unwrap_err();
        assert!(err.contains("not the procfs"), "{err}");
    }
}
