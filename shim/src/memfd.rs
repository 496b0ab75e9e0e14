//! `vm.memfd_noexec = 2` in a job's pid namespace (profile
//! `process.memfd_noexec`): no memfd made there can be `execve`d, so a job
//! cannot run a program its image does not have by writing it to memory
//! (`memfd_create` + `execveat`), past a `noexec` `/tmp` and Landlock's
//! execute rules, which do not see memfds. It is not a ban on code from
//! memory: the dynamic loader can still map a memfd (`ld.so
//! /proc/self/fd/N`), and anonymous executable memory (a JIT) is allowed
//! (docs/threat-model.md).
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

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;

const SYSCTL: &CStr = c"/proc/sys/vm/memfd_noexec";

/// What became of the setting for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `vm.memfd_noexec = 2` holds in the job's pid namespace: read back
    /// there as 2 after it was written.
    Enforced,
    /// The kernel has no such setting, or one that does not hold (before
    /// Linux 6.6, `2` let `MFD_EXEC` memfds be made and refused callers that
    /// name neither flag: it is not set there).
    Unsupported,
    /// Written, but the job's pid namespace reads another value back.
    NotHeld,
    /// Not set: brig runs rootless, and only the host's root may set it.
    Rootless,
}

impl Outcome {
    /// As recorded in the run record and the attestation.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Enforced => "enforced",
            Outcome::Unsupported => "unsupported: the kernel has no vm.memfd_noexec that holds (Linux 6.6+)",
            Outcome::NotHeld => "not enforced: vm.memfd_noexec did not read back as 2 in the job's pid namespace",
            Outcome::Rootless => "not enforced: rootless (only host root can set vm.memfd_noexec)",
        }
    }
}

/// Whether the running kernel's `vm.memfd_noexec = 2` refuses `MFD_EXEC`
/// and leaves callers that name neither flag alone (Linux 6.6: "sysctl: fix
/// MEMFD_NOEXEC_SCOPE_NOEXEC_ENFORCED", "memfd: do not -EACCES old
/// memfd_create() users").
fn kernel_has_it(release: &str) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 6)
}

/// Sets `vm.memfd_noexec = 2` in the pid namespace of `init` (the job's
/// init, created and not started). `init_start` is its start time as
/// recorded (`/proc/<pid>/stat`), so that a pid reused meanwhile is never
/// taken for it; the host's own pid namespace is never changed.
pub fn enforce(init: i32, init_start: Option<u64>) -> io::Result<Outcome> {
    // uname(2), not /proc/sys/kernel/osrelease: no path to walk. A kernel
    // built without the setting fails the child's open (ENOENT, below).
    let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    if !kernel_has_it(&release) {
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
    written
}

/// What the child found besides an errno.
const NOT_HELD: i32 = -2;
/// Not run (the initial value).
const NOT_RUN: i32 = -1;

/// Writes the setting from a child in the pid namespace this thread's
/// children go to, then checks that it holds there: it reads back as 2 (the
/// sysctl shows the reader's own pid namespace's value).
///
/// Not by making a memfd asked for executable and seeing it refused: the
/// kernel logs every such refusal at error level ("memfd_create() requires
/// MFD_NOEXEC_SEAL", rate-limited), so each launch put an error in the
/// kernel log, and on a host with a serial console the write of that line
/// held the launch for about a millisecond. The refusal itself is the
/// kernel's for the value read back (Linux 6.6+, `kernel_has_it`); the
/// attack tests show it from inside a job.
fn write_from_child() -> io::Result<Outcome> {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    // The child reports here (it shares this thread's memory), not through
    // its exit status: with SIGCHLD ignored (a disposition brig may inherit)
    // the kernel reaps it and there is no status to read.
    let result = AtomicI32::new(NOT_RUN);
    let mut stack = vec![0u8; 64 * 1024];
    // The child shares this thread's memory until it exits (CLONE_VM |
    // CLONE_VFORK: no copy of brig's address space), so it only makes
    // system calls: no allocation, no locks.
    let child = Box::new(|| -> isize {
        // SAFETY: system calls with NUL-terminated paths and a live
        // two-byte buffer; every descriptor is closed before returning.
        let found = unsafe {
            let errno = || (*libc::__errno_location()).max(1);
            let fd = libc::open(SYSCTL.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            let mut back = [0u8; 4];
            if fd < 0 {
                errno()
            } else if libc::write(fd, b"2\n".as_ptr().cast(), 2) != 2 {
                let e = errno();
                libc::close(fd);
                e
            } else {
                let n = libc::pread(fd, back.as_mut_ptr().cast(), back.len(), 0);
                let e = errno();
                libc::close(fd);
                match n {
                    n if n < 0 => e,
                    2 if back[..2] == *b"2\n" => 0,
                    _ => NOT_HELD,
                }
            }
        };
        result.store(found, Ordering::SeqCst);
        0
    });
    // The child starts with every signal blocked: no handler may run on its
    // stack with brig's memory (as the idmap holder, crate::idmap).
    let mut previous = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut previous))?;
    // SAFETY: the callback only makes system calls and stores to `result`
    // (above); the stack and `result` outlive the child, which has exited
    // when clone returns (CLONE_VFORK).
    let cloned = unsafe {
        nix::sched::clone(child, &mut stack, CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK, Some(libc::SIGCHLD))
    };
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None)?;
    let pid = cloned?;
    loop {
        match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            // ECHILD: reaped by the kernel (SIGCHLD ignored).
            Ok(_) | Err(nix::errno::Errno::ECHILD) => break,
            Err(e) => return Err(e.into()),
        }
    }
    match result.load(Ordering::SeqCst) {
        0 => Ok(Outcome::Enforced),
        NOT_HELD => Ok(Outcome::NotHeld),
        NOT_RUN => Err(io::Error::other("the child setting vm.memfd_noexec did not run")),
        libc::ENOENT => Ok(Outcome::Unsupported),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kernels_whose_setting_holds_get_it() {
        for (release, has) in [
            ("6.18.0-1-amd64", true),
            ("6.6.0", true),
            ("6.12.95+deb12-amd64", true),
            ("7.0-rc1", true),
            ("6.5.13-generic", false),
            ("6.3.0", false),
            ("5.15.0-91-generic", false),
            ("", false),
        ] {
            assert_eq!(kernel_has_it(release), has, "{release}");
        }
    }
}
