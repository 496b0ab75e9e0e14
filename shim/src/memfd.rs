//! `vm.memfd_noexec = 2` in a job's pid namespace (profile
//! `process.memfd_noexec`): no memfd made there can be executed, so a job
//! cannot run code it did not get from its image by writing it to memory
//! (`memfd_create` + `execveat`), past a `noexec` `/tmp` and Landlock's
//! execute rules, which do not see memfds.
//!
//! The setting belongs to a pid namespace and is read when a memfd is made,
//! by the namespace of the process making it; it can only be raised, and a
//! namespace made inside inherits it. The kernel lets a process change it
//! only for its own pid namespace, with `CAP_SYS_ADMIN` there and host root
//! as its effective user (the sysctl's mode bits are checked against the
//! host's root, not a user namespace's). So brig, as host root, sets it from
//! a short-lived child in the job's pid namespace, after `create` made the
//! namespace and before the job starts. brig's own supervisor is a memfd made
//! on the host, so it still runs.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};

const SYSCTL: &CStr = c"/proc/sys/vm/memfd_noexec";

/// What became of the setting for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `vm.memfd_noexec = 2` holds in the job's pid namespace.
    Enforced,
    /// The kernel has no such setting (before Linux 6.3).
    Unsupported,
}

impl Outcome {
    /// As recorded in the run record and the attestation.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Enforced => "enforced",
            Outcome::Unsupported => "unsupported: the kernel has no vm.memfd_noexec (Linux 6.3+)",
        }
    }
}

/// Sets `vm.memfd_noexec = 2` in the pid namespace of `init` (the job's
/// init, created and not started). `init_start` is its start time as
/// recorded (`/proc/<pid>/stat`), so that a pid reused meanwhile is never
/// taken for it; the host's own pid namespace is never changed.
pub fn enforce(init: i32, init_start: Option<u64>) -> io::Result<Outcome> {
    if !std::path::Path::new("/proc/sys/vm/memfd_noexec").exists() {
        return Ok(Outcome::Unsupported);
    }
    let ns = File::open(format!("/proc/{init}/ns/pid"))?;
    let own_ns = File::open("/proc/self/ns/pid")?;
    let (own, target) = (own_ns.metadata()?, ns.metadata()?);
    if (target.dev(), target.ino()) == (own.dev(), own.ino()) {
        return Err(io::Error::other(format!("process {init} is in brig's own pid namespace, not a job's")));
    }
    if init_start.is_none() || crate::state::process_start_ticks(init) != init_start {
        return Err(io::Error::other(format!("process {init} is no longer the job's init")));
    }
    // setns(CLONE_NEWPID) changes where this thread's children go; it goes
    // back to brig's own pid namespace (which a thread may always rejoin)
    // before anything else is started. (A thread of its own for this costs
    // more than the rest together.)
    nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWPID)?;
    let written = write_from_child();
    if let Err(e) = nix::sched::setns(own_ns.as_fd(), CloneFlags::CLONE_NEWPID) {
        // Every process brig started from now on would be in the job's pid
        // namespace: stop here rather than go on.
        tracing::error!("cannot rejoin brig's own pid namespace after setting vm.memfd_noexec: {e}");
        std::process::abort();
    }
    written?;
    Ok(Outcome::Enforced)
}

/// Writes the setting from a child in the pid namespace this thread's
/// children go to.
fn write_from_child() -> io::Result<()> {
    let mut stack = vec![0u8; 64 * 1024];
    // The child shares this thread's memory until it exits (CLONE_VM |
    // CLONE_VFORK: no copy of brig's address space), so it only makes
    // system calls: no allocation, no locks.
    let child = Box::new(|| -> isize {
        // SAFETY: open and write with a NUL-terminated path and a live
        // two-byte buffer; the descriptor is closed with the child.
        unsafe {
            let fd = libc::open(SYSCTL.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return *libc::__errno_location() as isize;
            }
            if libc::write(fd, b"2\n".as_ptr().cast(), 2) != 2 {
                return (*libc::__errno_location()).max(1) as isize;
            }
            0
        }
    });
    // SAFETY: the callback only makes system calls (above); the stack
    // outlives the child, which the parent waits for (CLONE_VFORK).
    let pid = unsafe {
        nix::sched::clone(child, &mut stack, CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK, Some(libc::SIGCHLD))
    }?;
    match waitpid(pid, None)? {
        WaitStatus::Exited(_, 0) => Ok(()),
        WaitStatus::Exited(_, errno) => Err(io::Error::from_raw_os_error(errno)),
        other => Err(io::Error::other(format!("the child setting vm.memfd_noexec ended: {other:?}"))),
    }
}
