//! Thin wrappers over the raw system calls the supervisor needs.
//!
//! Every `unsafe` block here is a system call whose pointer arguments refer to
//! live, correctly sized Rust values for the duration of the call.

use syscalls::{syscall, Errno, Sysno};

pub type Fd = i32;

pub const ENOENT: i32 = 2;
pub const EACCES: i32 = 13;
pub const EINTR: i32 = 4;
pub const EPERM: i32 = 1;
pub const ENOTDIR: i32 = 20;
pub const EINVAL: i32 = 22;
pub const EOPNOTSUPP: i32 = 95;

pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
pub const SIGCONT: i32 = 18;
pub const SIGCHLD: i32 = 17;

pub const PR_SET_PDEATHSIG: usize = 1;
pub const PR_SET_DUMPABLE: usize = 4;
pub const PR_SET_CHILD_SUBREAPER: usize = 36;
pub const PR_SET_NO_NEW_PRIVS: usize = 38;

pub const CLOCK_REALTIME: usize = 0;
pub const CLOCK_MONOTONIC: usize = 1;

const O_CLOEXEC: usize = 0o2000000;
const O_PATH: usize = 0o10000000;
const AT_FDCWD: isize = -100;
const AT_EMPTY_PATH: usize = 0x1000;
const F_SETFD: usize = 2;
const FD_CLOEXEC: usize = 1;
const TCGETS: usize = 0x5401;
const TIOCSPGRP: usize = 0x5410;
const FIONREAD: usize = 0x541B;
const SOCK_CLOEXEC: usize = O_CLOEXEC;
const STATX_TYPE: usize = 0x1;
const STATX_SIZE: usize = 0x200;
const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;
const PROT_READ: usize = 1;
const MAP_PRIVATE: usize = 2;
const WNOHANG: usize = 1;
const SECCOMP_SET_MODE_FILTER: usize = 1;
const LANDLOCK_CREATE_RULESET_VERSION: usize = 1;
const LANDLOCK_RULE_PATH_BENEATH: usize = 1;
const LANDLOCK_RULE_NET_PORT: usize = 2;

fn errno(e: Errno) -> i32 {
    e.into_raw()
}

pub fn exit(code: i32) -> ! {
    loop {
        // SAFETY: exit_group takes no pointers and does not return.
        let _ = unsafe { syscall!(Sysno::exit_group, code) };
    }
}

pub fn write_all(fd: Fd, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: buf is a live slice of buf.len() bytes.
        match unsafe { syscall!(Sysno::write, fd, buf.as_ptr(), buf.len()) } {
            Ok(0) => return,
            Ok(n) => buf = &buf[n..],
            Err(e) if e == Errno::EINTR => continue,
            Err(_) => return,
        }
    }
}

pub fn read(fd: Fd, buf: &mut [u8]) -> Result<usize, i32> {
    loop {
        // SAFETY: buf is a live, writable slice of buf.len() bytes.
        match unsafe { syscall!(Sysno::read, fd, buf.as_mut_ptr(), buf.len()) } {
            Err(e) if errno(e) == EINTR => continue,
            r => return r.map_err(errno),
        }
    }
}

/// Reads until `buf` is full, end of file or an error; the bytes read.
pub fn read_full(fd: Fd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match read(fd, &mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

pub fn close(fd: Fd) {
    // SAFETY: close takes no pointers.
    let _ = unsafe { syscall!(Sysno::close, fd) };
}

pub fn set_cloexec(fd: Fd) {
    // SAFETY: fcntl(F_SETFD) takes no pointers.
    let _ = unsafe { syscall!(Sysno::fcntl, fd, F_SETFD, FD_CLOEXEC) };
}

pub fn prctl(option: usize, arg: usize) -> isize {
    // SAFETY: the prctl options used here take integer arguments only.
    match unsafe { syscall!(Sysno::prctl, option, arg, 0, 0, 0) } {
        Ok(v) => v as isize,
        Err(_) => -1,
    }
}

pub fn getpid() -> i32 {
    // SAFETY: getpid takes no arguments.
    unsafe { syscall!(Sysno::getpid) }.map(|p| p as i32).unwrap_or(0)
}

pub fn getppid() -> i32 {
    // SAFETY: getppid takes no arguments.
    unsafe { syscall!(Sysno::getppid) }.map(|p| p as i32).unwrap_or(0)
}

/// Accepts one connection on a listening socket, close-on-exec.
pub fn accept(listener: Fd) -> Result<Fd, i32> {
    loop {
        // SAFETY: no peer address is asked for (two NULL pointers).
        match unsafe { syscall!(Sysno::accept4, listener, 0, 0, SOCK_CLOEXEC) } {
            Err(e) if errno(e) == EINTR => continue,
            r => return r.map(|fd| fd as Fd).map_err(errno),
        }
    }
}

/// The number of bytes waiting to be read on a pipe.
pub fn bytes_waiting(fd: Fd) -> Result<usize, i32> {
    let mut n: i32 = 0;
    // SAFETY: FIONREAD writes one int into the live `n`.
    unsafe { syscall!(Sysno::ioctl, fd, FIONREAD, &mut n as *mut i32) }.map_err(errno)?;
    Ok(n.max(0) as usize)
}

/// Waits for the child `pid` to end and reaps it.
pub fn wait_for(pid: i32) {
    let mut status: i32 = 0;
    loop {
        // SAFETY: status is a live int; rusage is not requested.
        match unsafe { syscall!(Sysno::wait4, pid as isize, &mut status as *mut i32, 0, 0) } {
            Err(e) if errno(e) == EINTR => continue,
            _ => return,
        }
    }
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill takes no pointers.
    let _ = unsafe { syscall!(Sysno::kill, pid as isize, sig) };
}

/// `fork()` through `clone(SIGCHLD)`, which exists on every architecture.
pub fn fork() -> Result<i32, i32> {
    // SAFETY: with a NULL stack the child continues on a copy of our stack, as
    // with fork(2); no other pointers are passed.
    unsafe { syscall!(Sysno::clone, SIGCHLD, 0, 0, 0, 0) }.map(|p| p as i32).map_err(errno)
}

/// Returns the errno; only returns on failure.
pub fn execve(path: *const u8, argv: *const *const u8, envp: *const *const u8) -> i32 {
    // SAFETY: path, argv and envp come from our own NUL-terminated argument
    // vector and environment, which stay valid until the exec.
    match unsafe { syscall!(Sysno::execve, path, argv, envp) } {
        Ok(_) => EINVAL,
        Err(e) => errno(e),
    }
}

pub fn pipe_cloexec() -> Result<(Fd, Fd), i32> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a live array of two ints.
    unsafe { syscall!(Sysno::pipe2, fds.as_mut_ptr(), O_CLOEXEC) }.map_err(errno)?;
    Ok((fds[0], fds[1]))
}

pub fn now(clock: usize) -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: ts is a live struct timespec (two 64-bit fields on 64-bit targets).
    let _ = unsafe { syscall!(Sysno::clock_gettime, clock, ts.as_mut_ptr()) };
    (ts[0] as u64).saturating_mul(1_000_000_000).saturating_add(ts[1] as u64)
}

/// A kernel `sigset_t` (64 signals).
#[derive(Clone, Copy)]
pub struct SigSet(u64);

impl SigSet {
    pub fn full() -> SigSet {
        SigSet(!0)
    }

    pub fn empty() -> SigSet {
        SigSet(0)
    }
}

/// Every signal's disposition back to the default. `execve` keeps a signal
/// that is ignored ignored: brig's own process ignores SIGPIPE (Rust's
/// runtime does), and a shell that starts it in the background ignores
/// SIGINT and SIGQUIT; a job must not inherit either (runc's jobs start with
/// none ignored).
pub fn reset_signal_dispositions() {
    // The kernel's `struct sigaction` (x86_64 and aarch64): handler, flags,
    // restorer, mask. SIG_DFL is 0.
    let default: [u64; 4] = [0, 0, 0, 0];
    for sig in 1..=64usize {
        if sig == 9 || sig == 19 {
            continue; // SIGKILL, SIGSTOP: cannot be changed
        }
        // SAFETY: `default` is a live kernel sigaction; the old one is not
        // requested; an invalid signal number only returns EINVAL.
        let _ = unsafe { syscall!(Sysno::rt_sigaction, sig, default.as_ptr(), 0, 8) };
    }
}

pub fn sigprocmask_set(set: &SigSet) {
    const SIG_SETMASK: usize = 2;
    // SAFETY: set points at a live 8-byte sigset; the old set is not requested.
    let _ = unsafe { syscall!(Sysno::rt_sigprocmask, SIG_SETMASK, &set.0 as *const u64, 0, 8) };
}

/// Waits for a signal in `set` (which must be blocked); `Err(EAGAIN)` on timeout.
pub fn sigtimedwait(set: &SigSet, timeout_ns: Option<u64>) -> Result<i32, i32> {
    let mut info = [0u8; 128];
    let ts;
    let ts_ptr = match timeout_ns {
        Some(ns) => {
            ts = [(ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64];
            ts.as_ptr() as usize
        }
        None => 0,
    };
    // SAFETY: set, info (a 128-byte siginfo_t) and the optional timespec are
    // live for the call.
    unsafe { syscall!(Sysno::rt_sigtimedwait, &set.0 as *const u64, info.as_mut_ptr(), ts_ptr, 8) }
        .map(|s| s as i32)
        .map_err(errno)
}

/// Reaps one exited child without blocking: `Some((pid, wait status))`.
pub fn wait_any_nohang() -> Option<(i32, i32)> {
    let mut status: i32 = 0;
    // SAFETY: status is a live int; rusage is not requested.
    match unsafe { syscall!(Sysno::wait4, -1isize, &mut status as *mut i32, WNOHANG, 0) } {
        Ok(0) | Err(_) => None,
        Ok(pid) => Some((pid as i32, status)),
    }
}

pub fn is_tty(fd: Fd) -> bool {
    let mut termios = [0u8; 64];
    // SAFETY: TCGETS writes a struct termios (36 bytes) into the 64-byte buffer.
    unsafe { syscall!(Sysno::ioctl, fd, TCGETS, termios.as_mut_ptr()) }.is_ok()
}

pub fn setpgid_self() {
    // SAFETY: setpgid takes no pointers.
    let _ = unsafe { syscall!(Sysno::setpgid, 0, 0) };
}

pub fn tcsetpgrp_self(fd: Fd) {
    let pgrp: i32 = getpid();
    // SAFETY: TIOCSPGRP reads one pid_t from the live `pgrp`.
    let _ = unsafe { syscall!(Sysno::ioctl, fd, TIOCSPGRP, &pgrp as *const i32) };
}

/// Maps a whole file read-only; the mapping lives until the process execs or exits.
pub fn map_file(fd: Fd) -> Option<&'static [u8]> {
    let mut stx = [0u8; 256];
    // SAFETY: "" is a NUL-terminated empty path and stx a 256-byte struct statx.
    unsafe { syscall!(Sysno::statx, fd, c"".as_ptr(), AT_EMPTY_PATH, STATX_SIZE, stx.as_mut_ptr()) }.ok()?;
    let size = u64::from_le_bytes([stx[40], stx[41], stx[42], stx[43], stx[44], stx[45], stx[46], stx[47]]);
    if size == 0 || size > (16 << 20) {
        return None;
    }
    let len = size as usize;
    // SAFETY: a fresh private read-only mapping of `len` bytes of `fd`.
    let addr = unsafe { syscall!(Sysno::mmap, 0, len, PROT_READ, MAP_PRIVATE, fd, 0) }.ok()?;
    // SAFETY: the kernel mapped `len` readable bytes at `addr`; the mapping is
    // never unmapped, so the slice is valid for 'static.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}

/// Length of a NUL-terminated string, as a slice without the NUL.
///
/// # Safety
/// `p` must point at a NUL-terminated string that outlives the returned slice.
pub unsafe fn cstr(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // SAFETY: guaranteed by the caller.
    unsafe {
        while p.add(n).read_volatile() != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

/// Opens `path` (NUL-terminated) with O_PATH.
pub fn open_path(path: &[u8]) -> Result<Fd, i32> {
    // SAFETY: path is NUL-terminated (validated by the plan decoder).
    unsafe { syscall!(Sysno::openat, AT_FDCWD, path.as_ptr(), O_PATH | O_CLOEXEC) }.map(|fd| fd as Fd).map_err(errno)
}

/// Opens `path` (NUL-terminated) read-only.
pub fn open_read(path: &[u8]) -> Result<Fd, i32> {
    const O_RDONLY: usize = 0;
    // SAFETY: path is NUL-terminated (built by the caller).
    unsafe { syscall!(Sysno::openat, AT_FDCWD, path.as_ptr(), O_RDONLY | O_CLOEXEC) }.map(|fd| fd as Fd).map_err(errno)
}

const STATX_INO: usize = 0x100;

/// What a path is: its device and inode, and whether it is a directory.
#[derive(Clone, Copy)]
pub struct Identity {
    dev: (u32, u32),
    ino: u64,
    pub dir: bool,
}

impl Identity {
    /// The same file (device and inode).
    pub fn same_file(&self, other: &Identity) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// The identity of `fd`, or of `path` (NUL-terminated) when `fd` is
/// AT_FDCWD: one statx.
fn identity_at(fd: Fd, path: *const u8, flags: usize) -> Option<Identity> {
    let mut stx = [0u8; 256];
    // SAFETY: path is NUL-terminated and stx a 256-byte struct statx.
    let ok = unsafe { syscall!(Sysno::statx, fd, path, flags, STATX_TYPE | STATX_INO, stx.as_mut_ptr()) };
    ok.ok()?;
    let u32_at = |o: usize| u32::from_le_bytes([stx[o], stx[o + 1], stx[o + 2], stx[o + 3]]);
    let mut ino = [0u8; 8];
    ino.copy_from_slice(&stx[32..40]);
    Some(Identity {
        dev: (u32_at(136), u32_at(140)),
        ino: u64::from_le_bytes(ino),
        dir: (u16::from_le_bytes([stx[28], stx[29]]) & S_IFMT) == S_IFDIR,
    })
}

/// The identity of the open file `fd`.
pub fn identity(fd: Fd) -> Option<Identity> {
    identity_at(fd, c"".as_ptr().cast(), AT_EMPTY_PATH)
}

/// The identity of `path` (NUL-terminated, links followed), as an
/// `open_path` of it would find it.
pub fn path_identity(path: &[u8]) -> Option<Identity> {
    identity_at(AT_FDCWD as Fd, path.as_ptr(), 0)
}

impl Identity {
    /// Device and inode as numbers.
    pub fn numbers(&self) -> [u64; 3] {
        [u64::from(self.dev.0), u64::from(self.dev.1), self.ino]
    }
}

/// The identity of the job's root directory.
pub fn root_identity() -> Option<Identity> {
    identity_at(AT_FDCWD as Fd, c"/".as_ptr().cast(), 0)
}

pub fn seccomp_install(insns: &[u8]) -> i32 {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const u8,
    }
    let prog = SockFprog { len: (insns.len() / 8) as u16, filter: insns.as_ptr() };
    // SAFETY: prog points at a live sock_fprog whose filter covers len
    // instructions of 8 bytes inside `insns`.
    match unsafe { syscall!(Sysno::seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog as *const SockFprog) } {
        Ok(_) => 0,
        Err(e) => errno(e),
    }
}

/// The Landlock ABI version the kernel offers, 0 if none.
pub fn landlock_abi() -> u64 {
    // SAFETY: with the VERSION flag the attribute pointer must be NULL.
    match unsafe { syscall!(Sysno::landlock_create_ruleset, 0, 0, LANDLOCK_CREATE_RULESET_VERSION) } {
        Ok(v) => v as u64,
        Err(_) => 0,
    }
}

pub fn landlock_create_ruleset(attr: &[u64; 3], size: usize) -> Result<Fd, i32> {
    // SAFETY: attr is a live struct landlock_ruleset_attr of at least `size` bytes.
    unsafe { syscall!(Sysno::landlock_create_ruleset, attr.as_ptr(), size, 0) }.map(|fd| fd as Fd).map_err(errno)
}

pub fn landlock_add_path_rule(ruleset: Fd, access: u64, parent: Fd) -> Result<(), i32> {
    // struct landlock_path_beneath_attr is packed: u64 then s32.
    let mut attr = [0u8; 12];
    attr[..8].copy_from_slice(&access.to_le_bytes());
    attr[8..].copy_from_slice(&parent.to_le_bytes());
    // SAFETY: attr is a live 12-byte packed landlock_path_beneath_attr.
    unsafe { syscall!(Sysno::landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, attr.as_ptr(), 0) }
        .map(|_| ())
        .map_err(errno)
}

pub fn landlock_add_net_rule(ruleset: Fd, access: u64, port: u64) -> Result<(), i32> {
    let attr = [access, port];
    // SAFETY: attr is a live struct landlock_net_port_attr (two u64).
    unsafe { syscall!(Sysno::landlock_add_rule, ruleset, LANDLOCK_RULE_NET_PORT, attr.as_ptr(), 0) }
        .map(|_| ())
        .map_err(errno)
}

pub fn landlock_restrict_self(ruleset: Fd) -> Result<(), i32> {
    // SAFETY: landlock_restrict_self takes no pointers.
    unsafe { syscall!(Sysno::landlock_restrict_self, ruleset, 0) }.map(|_| ()).map_err(errno)
}
