//! Idmapped mounts: the job's root filesystem appears owned by the job's
//! (unprivileged) root without chowning the image.
//!
//! `mount_setattr(MOUNT_ATTR_IDMAP)` (Linux 5.12; overlayfs from 5.19, tmpfs
//! from 6.3) attaches a user namespace's mapping to a mount: a file owned by
//! host uid 0 on disk is seen through the mount as owned by the mapped uid
//! `base`, which the job's user namespace shows as 0. The user namespace that
//! carries the mapping is made by a short-lived child process that shares
//! brig's memory.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

/// Stack of the child that holds a new user namespace open (it makes three
/// system calls).
const HOLDER_STACK: usize = 64 * 1024;

/// The child of [`userns_fd`]: created in the new user namespace, it closes
/// its copy of the pipe's write end, waits until the parent closes its own,
/// then exits. `arg` points to `[read end, write end]`.
extern "C" fn hold_userns(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `[c_int; 2]` at the bottom of this
    // child's stack allocation, alive until this child has been waited for
    // (the memory is shared: CLONE_VM).
    let [read_end, write_end] = unsafe { (arg as *const [libc::c_int; 2]).read_unaligned() };
    let mut byte = 0u8;
    // SAFETY: raw system calls on this child's own descriptor table (a copy);
    // no allocation, no lock, no TLS but errno.
    unsafe {
        libc::syscall(libc::SYS_close, write_end);
        libc::syscall(libc::SYS_read, read_end, std::ptr::addr_of_mut!(byte), 1usize);
        libc::syscall(libc::SYS_exit, 0);
    }
    0
}

/// A user namespace whose uid and gid maps are `0 base size`.
///
/// A user namespace is made by a process, so a child is created in a new one
/// (`clone(CLONE_NEWUSER)`), its maps written, its namespace opened, and the
/// child let go. The child shares brig's memory (`CLONE_VM`) instead of
/// copying it as `fork` would: a fork of the 30 MB runtime costs its page
/// tables, and brig then write-faults every page it touches afterwards.
///
/// The child is let go as soon as the namespace is open, but reaped only when
/// the returned [`UsernsHolder`] is released or dropped: its exit then runs
/// while the launch goes on, instead of the launch waiting for it.
pub fn userns_fd(base: u32, size: u32) -> std::io::Result<(OwnedFd, UsernsHolder)> {
    use nix::sys::signal::{SigSet, SigmaskHow};
    let (hold_r, hold_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // The child's argument lives at the bottom of its stack allocation, so
    // that both are freed (or leaked) together.
    let mut stack = vec![0u8; HOLDER_STACK];
    let fds: [libc::c_int; 2] = [hold_r.as_raw_fd(), hold_w.as_raw_fd()];
    let arg = stack.as_mut_ptr().cast::<[libc::c_int; 2]>();
    // SAFETY: `stack` is at least 8 bytes; `write_unaligned` needs no alignment.
    unsafe { arg.write_unaligned(fds) };
    // SAFETY: in bounds (one past the end); the stack grows down on the
    // architectures brig supports, and the top is 16-byte aligned as the ABIs want.
    let top = unsafe { stack.as_mut_ptr().add(HOLDER_STACK) };
    let top = ((top as usize) & !15) as *mut libc::c_void;
    // The child starts with every signal blocked (as posix_spawn does): no
    // handler may ever run on its stack with brig's memory. Only SIGKILL and
    // SIGSTOP reach it.
    let mut previous = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut previous))?;
    // SAFETY: `hold_userns` runs on `stack` and reads its argument from it;
    // `stack` outlives the child (`Holder` waits for it, or leaks the stack),
    // and the child makes only raw system calls.
    let child =
        unsafe { libc::clone(hold_userns, top, libc::CLONE_VM | libc::CLONE_NEWUSER | libc::SIGCHLD, arg.cast()) };
    let clone_error = std::io::Error::last_os_error();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None)?;
    if child < 0 {
        return Err(std::io::Error::other(format!("creating a user namespace for the idmapped mount: {clone_error}")));
    }
    // From here on, whatever happens (an error, a panic), the stack is freed
    // only once the child is known to be gone.
    let mut holder = Holder { pid: nix::unistd::Pid::from_raw(child), stack: Some(stack), hold_w: Some(hold_w) };
    let map = format!("0 {base} {size}\n");
    let result = std::fs::write(format!("/proc/{child}/uid_map"), &map)
        .and_then(|()| std::fs::write(format!("/proc/{child}/gid_map"), &map))
        .and_then(|()| std::fs::File::open(format!("/proc/{child}/ns/user")))
        .map(OwnedFd::from);
    drop(hold_r);
    match result {
        Ok(fd) => {
            // EOF on the pipe: the child exits, and is reaped later.
            drop(holder.hold_w.take());
            Ok((fd, UsernsHolder(holder)))
        }
        Err(e) => {
            holder.release()?;
            Err(e)
        }
    }
}

/// The exited (or exiting) holder child of [`userns_fd`], not yet reaped,
/// and the stack it ran on, freed once it is known to be gone.
#[derive(Debug)]
pub struct UsernsHolder(Holder);

impl UsernsHolder {
    /// Reaps the child, then frees its stack.
    pub fn release(self) -> std::io::Result<()> {
        let UsernsHolder(holder) = self;
        holder.release()
    }
}

/// The holder child of [`userns_fd`], the stack it runs on, and the write
/// end of the pipe it waits on.
#[derive(Debug)]
struct Holder {
    pid: nix::unistd::Pid,
    stack: Option<Vec<u8>>,
    hold_w: Option<OwnedFd>,
}

impl Holder {
    /// Lets the child go, waits for it, then frees its stack.
    fn release(mut self) -> std::io::Result<()> {
        let waited = self.wait();
        waited.map_err(|e| std::io::Error::other(format!("waiting for the user-namespace holder: {e}")))
    }

    fn wait(&mut self) -> Result<(), nix::errno::Errno> {
        // EOF on the pipe: the child exits.
        drop(self.hold_w.take());
        let Some(stack) = self.stack.take() else { return Ok(()) };
        loop {
            match nix::sys::wait::waitpid(self.pid, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                // ECHILD: already reaped (SIGCHLD ignored): gone either way.
                Ok(_) | Err(nix::errno::Errno::ECHILD) => {
                    drop(stack);
                    return Ok(());
                }
                Err(e) => {
                    // Not known to be gone: it may still run on `stack`.
                    std::mem::forget(stack);
                    return Err(e);
                }
            }
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Only does something when `release` was not reached (a panic).
        let _ = self.wait();
    }
}

/// Bind-mounts `source` at `target` with the mapping of `userns`; `recursive
/// = false` leaves out the mounts below `source` (an overlay layer directory
/// holding the overlay's own mountpoint). Fails with `EINVAL` on filesystems
/// without idmapped-mount support.
pub fn idmapped_bind_with(source: &Path, target: &Path, userns: &OwnedFd, recursive: bool) -> std::io::Result<()> {
    let src = cpath(source)?;
    idmapped_bind_at(libc::AT_FDCWD, &src, 0, target, userns, recursive)
}

/// Bind-mounts, recursively, the directory `source` is open on (the one that
/// was checked, whatever its path names now) at `target` with the mapping of
/// `userns`, as `idmapped_bind_with`.
pub fn idmapped_bind_fd(source: std::os::fd::BorrowedFd<'_>, target: &Path, userns: &OwnedFd) -> std::io::Result<()> {
    idmapped_bind_at(source.as_raw_fd(), &CString::default(), libc::AT_EMPTY_PATH as libc::c_uint, target, userns, true)
}

fn idmapped_bind_at(
    dirfd: libc::c_int,
    src: &CString,
    flags: libc::c_uint,
    target: &Path,
    userns: &OwnedFd,
    recursive: bool,
) -> std::io::Result<()> {
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    let dst = cpath(target)?;
    let empty = CString::default();
    // SAFETY: open_tree takes a descriptor (or AT_FDCWD), a NUL-terminated
    // path and flags; returns a new fd.
    let tree = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dirfd,
            src.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | rec | flags,
        )
    })?;
    // SAFETY: the kernel returned a new descriptor that we own.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let attr =
        MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: userns.as_raw_fd() as u64 };
    // SAFETY: attr is a live struct mount_attr of the size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | rec,
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

/// An overlay mount's layers, from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayLayers {
    pub lower: Vec<std::path::PathBuf>,
    pub upper: Option<std::path::PathBuf>,
    pub work: Option<std::path::PathBuf>,
    /// Other overlay options to keep (`uuid=on`, `index=off`, ...): the layers
    /// carry state written under them.
    pub options: Vec<String>,
}

/// Splits overlay's option list: commas separate options, `\,` and `\:` are
/// escapes; `lowerdir` is `:`-separated.
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if let Some(l) = out.last_mut() {
                        l.push(n);
                    }
                }
            }
            c if c == sep => out.push(String::new()),
            c => {
                if let Some(l) = out.last_mut() {
                    l.push(c)
                }
            }
        }
    }
    out
}

/// Unescapes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|d| (b'0'..=b'7').contains(d)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The layers of the overlay mounted exactly at `path`, if it is one.
pub fn overlay_layers(mountinfo: &str, path: &Path) -> Option<OverlayLayers> {
    let target = path.to_string_lossy();
    let line = mountinfo.lines().rev().find(|l| {
        let mut f = l.split(' ');
        f.nth(4).map(unescape_mountinfo).as_deref() == Some(target.as_ref())
    })?;
    let (_, after) = line.split_once(" - ")?;
    let mut f = after.split(' ');
    if f.next()? != "overlay" {
        return None;
    }
    let _source = f.next()?;
    let options = unescape_mountinfo(f.next()?);
    let mut layers = OverlayLayers { lower: vec![], upper: None, work: None, options: vec![] };
    const KEEP: [&str; 8] =
        ["uuid=", "index=", "redirect_dir=", "metacopy=", "xino=", "nfs_export=", "userxattr", "volatile"];
    for opt in split_escaped(&options, ',') {
        if let Some(v) = opt.strip_prefix("lowerdir=") {
            layers.lower = split_escaped(v, ':').into_iter().map(std::path::PathBuf::from).collect();
        } else if let Some(v) = opt.strip_prefix("upperdir=") {
            layers.upper = Some(v.into());
        } else if let Some(v) = opt.strip_prefix("workdir=") {
            layers.work = Some(v.into());
        } else if KEEP.iter().any(|k| opt.starts_with(k)) {
            layers.options.push(opt);
        }
    }
    (!layers.lower.is_empty()).then_some(layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_namespace_outlives_its_holder_which_is_reaped_on_release() {
        let (userns, holder) = userns_fd(1_500_000_000, 65536).expect("making a user namespace needs root");
        let pid = holder.0.pid;
        // Let go at once: it exits without being waited for ...
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the holder did not exit: {stat}");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // ... and is reaped on release; the namespace stays, held by the fd.
        holder.release().unwrap();
        assert_eq!(nix::sys::signal::kill(pid, None), Err(nix::errno::Errno::ESRCH));
        let ns = std::fs::read_link(format!("/proc/self/fd/{}", userns.as_raw_fd())).unwrap();
        assert!(ns.to_string_lossy().starts_with("user:["), "{}", ns.display());
        assert_ne!(ns, std::fs::read_link("/proc/self/ns/user").unwrap());
        // Dropped without release: reaped too.
        let (_, holder) = userns_fd(1_500_000_000, 65536).unwrap();
        let pid = holder.0.pid;
        drop(holder);
        assert_eq!(nix::sys::signal::kill(pid, None), Err(nix::errno::Errno::ESRCH));
    }

    #[test]
    fn parses_docker_overlay_mountinfo() {
        let mi = "58 42 0:49 / /var/lib/docker/overlay2/abc/merged rw,relatime shared:2 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/NRH:/var/lib/docker/overlay2/l/W4E,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work\n\
                  59 42 8:1 / /data\\040dir rw - ext4 /dev/vda rw\n";
        let l = overlay_layers(mi, Path::new("/var/lib/docker/overlay2/abc/merged")).unwrap();
        assert_eq!(
            l.lower,
            vec![std::path::PathBuf::from("/var/lib/docker/overlay2/l/NRH"), "/var/lib/docker/overlay2/l/W4E".into()]
        );
        assert_eq!(l.upper.unwrap(), std::path::PathBuf::from("/var/lib/docker/overlay2/abc/diff"));
        assert_eq!(l.work.unwrap(), std::path::PathBuf::from("/var/lib/docker/overlay2/abc/work"));
        assert_eq!(overlay_layers(mi, Path::new("/data dir")), None);
        assert_eq!(split_escaped("a\\:b:c", ':'), vec!["a:b".to_string(), "c".into()]);
    }
}
