//! Idmapped mounts: the job's root filesystem appears owned by the job's
//! (unprivileged) root without chowning the image.
//!
//! `mount_setattr(MOUNT_ATTR_IDMAP)` (Linux 5.12; overlayfs from 5.19, tmpfs
//! from 6.3) attaches a user namespace's mapping to a mount: a file owned by
//! host uid 0 on disk is seen through the mount as owned by the mapped uid
//! `base`, which the job's user namespace shows as 0. The user namespace that
//! carries the mapping is made by a short-lived child process.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::unistd::{fork, ForkResult};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x0000_0004;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn cpath(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_long) -> std::io::Result<libc::c_long> {
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A user namespace whose uid and gid maps are `0 base size`.
pub fn userns_fd(base: u32, size: u32) -> std::io::Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe()?;
    let (hold_r, hold_w) = nix::unistd::pipe()?;
    // SAFETY: brig is single-threaded here; the child only makes async-signal-
    // safe system calls and exits with _exit.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(ready_r);
            drop(hold_w);
            // SAFETY: plain system calls on descriptors this process owns.
            unsafe {
                let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
                let byte = [u8::from(ok)];
                libc::write(ready_w.as_raw_fd(), byte.as_ptr().cast(), 1);
                let mut buf = [0u8; 1];
                libc::read(hold_r.as_raw_fd(), buf.as_mut_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(hold_r);
            let mut byte = [0u8; 1];
            let n = nix::unistd::read(ready_r.as_raw_fd(), &mut byte)?;
            let result = (|| {
                if n != 1 || byte[0] != 1 {
                    return Err(std::io::Error::other("creating a user namespace for the idmapped mount failed"));
                }
                let map = format!("0 {base} {size}\n");
                std::fs::write(format!("/proc/{child}/uid_map"), &map)?;
                std::fs::write(format!("/proc/{child}/gid_map"), &map)?;
                let f = std::fs::File::open(format!("/proc/{child}/ns/user"))?;
                Ok(OwnedFd::from(f))
            })();
            drop(hold_w);
            let _ = nix::sys::wait::waitpid(child, None);
            result
        }
    }
}

/// Bind-mounts `source` (recursively) at `target` with the mapping of `userns`.
/// Fails with `EINVAL` on filesystems without idmapped-mount support.
pub fn idmapped_bind(source: &Path, target: &Path, userns: &OwnedFd) -> std::io::Result<()> {
    let src = cpath(source)?;
    let dst = cpath(target)?;
    let empty = CString::default();
    // SAFETY: open_tree takes a NUL-terminated path and flags; returns a new fd.
    let tree = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE,
        )
    })?;
    // SAFETY: the kernel returned a new descriptor that we own.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let attr = MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: userns.as_raw_fd() as u64 };
    // SAFETY: attr is a live struct mount_attr of the size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    // SAFETY: move_mount takes descriptors and NUL-terminated paths.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// Detaches the mount at `target` (and everything below it).
pub fn unmount(target: &Path) -> std::io::Result<()> {
    match nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
