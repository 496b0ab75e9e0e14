//! `exec` into a container that runs in its own user namespace.
//!
//! libcontainer 0.7's tenant path never joins the container's user namespace
//! (its namespace list lacks `user`), so an exec'd process would run as host
//! root in the container's other namespaces. brig joins the namespaces itself:
//! the ones the container unshared, in an order that works for a host-root
//! caller — everything else first, the user namespace last — then forks the
//! process into the pid namespace (`CLONE_PARENT`: it is brig's child), sets
//! its user, rlimits, terminal and capabilities inside the user namespace, and
//! hands over to brig's supervisor in `exec` mode, which applies Landlock and
//! brig's seccomp filter.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::{LinuxSeccomp, Process};

/// Namespaces joined, in order (user last; pid before the fork).
const JOIN_ORDER: [(&str, libc::c_int); 7] = [
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
    ("user", libc::CLONE_NEWUSER),
];

/// What an `exec` needs.
#[derive(Debug)]
pub struct TenantRequest<'a> {
    pub init_pid: i32,
    pub process: &'a Process,
    pub cgroup_path: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub stub_fd: RawFd,
    pub plan_fd: RawFd,
    pub client_seccomp: Option<&'a LinuxSeccomp>,
    /// brig's filters to install before executing the supervisor
    /// (crate::supervisor::filters_before_exec).
    pub sealed_filters: &'a [Vec<u8>],
    pub preserve_fds: i32,
}

fn same_ns(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn cgroup_procs_files(cgroup_path: &Path) -> Vec<PathBuf> {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    if crate::cgroup::is_unified() {
        return vec![Path::new("/sys/fs/cgroup").join(rel).join("cgroup.procs")];
    }
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path().join(rel).join("cgroup.procs"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default()
}

/// Reports a failure from a child over the error pipe and exits.
fn child_fail(err_fd: RawFd, what: &str, e: impl std::fmt::Display) -> ! {
    let msg = format!("{what}: {e}");
    // SAFETY: writing a live buffer to a pipe we own, then _exit.
    unsafe {
        libc::write(err_fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(127);
    }
}

/// Whether process `pid` is in a user namespace other than brig's own (or
/// cannot be looked at: then the caller takes the path that joins it, which
/// fails with the reason).
pub fn in_other_user_namespace(pid: i32) -> bool {
    !same_ns(Path::new(&format!("/proc/{pid}/ns/user")), Path::new("/proc/self/ns/user"))
}

/// Starts the process; returns its pid (brig's child).
pub fn spawn(req: &TenantRequest<'_>) -> Result<Pid, String> {
    // Non-dumpable before anything of the container is joined (as
    // libcontainer and the supervisor are): until it executes, the process
    // is brig with brig's descriptors and environment, and in a user
    // namespace the caller owns (rootless, or a job with CAP_SYS_PTRACE) the
    // job's processes would pass the ptrace check on it (/proc/PID/mem, fd,
    // environ, exe). The flag is kept across fork.
    // SAFETY: prctl(PR_SET_DUMPABLE) takes plain integers.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(format!("making the exec non-dumpable: {}", std::io::Error::last_os_error()));
    }
    // Everything that needs the host's view is opened now.
    let mut namespaces: Vec<(OwnedFd, libc::c_int)> = Vec::new();
    for (name, flag) in JOIN_ORDER {
        let theirs = PathBuf::from(format!("/proc/{}/ns/{name}", req.init_pid));
        if same_ns(&theirs, &Path::new("/proc/self/ns").join(name)) {
            continue;
        }
        let f = std::fs::File::open(&theirs).map_err(|e| format!("opening `{}`: {e}", theirs.display()))?;
        namespaces.push((OwnedFd::from(f), flag));
    }
    // An unprivileged caller (rootless brig) owns the job's user namespace and
    // gets the rights to join the other namespaces only inside it: user first.
    if !nix::unistd::geteuid().is_root() {
        namespaces.sort_by_key(|(_, flag)| *flag != libc::CLONE_NEWUSER);
    }
    let console = match (req.process.terminal().unwrap_or(false), req.console_socket) {
        (true, Some(p)) => Some(
            UnixStream::connect(p).map_err(|e| format!("connecting to the console socket `{}`: {e}", p.display()))?,
        ),
        (true, None) => return Err("a terminal needs --console-socket".into()),
        (false, _) => None,
    };
    let procs = cgroup_procs_files(req.cgroup_path);
    let args = req.process.args().clone().filter(|a| !a.is_empty()).ok_or("the process has no args")?;
    let env: Vec<CString> =
        req.process.env().iter().flatten().filter_map(|e| CString::new(e.as_bytes()).ok()).collect();
    let path_var = req
        .process
        .env()
        .iter()
        .flatten()
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_string))
        .unwrap_or_else(|| brig_policy::DEFAULT_PATH.into());
    let user = req.process.user();
    let gids: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    let rlimits: Vec<(libc::c_int, u64, u64)> = req
        .process
        .rlimits()
        .iter()
        .flatten()
        .filter_map(|r| {
            let name = serde_json::to_value(r.typ()).ok()?.as_str()?.to_string();
            crate::tenant::rlimit_resource(&name).map(|res| (res, r.soft(), r.hard()))
        })
        .collect();
    let caps = req.process.capabilities().clone();
    let cwd = req.process.cwd().clone();
    // The OOM score the process asks for (harden_exec has raised a negative
    // one to 0 where the job may not lower it); without one, the process
    // inherits brig's, which `exec` set to the job's. The umask: `exec`
    // fills in runc's default.
    let oom_score_adj = req.process.oom_score_adj().map(|a| a.to_string());
    let umask = user.umask().unwrap_or(0o022);

    let (pid_r, pid_w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let (err_r, err_w) = pipe_cloexec().map_err(|e| e.to_string())?;

    // SAFETY: brig is single-threaded; the children exec or _exit.
    match unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())? {
        nix::unistd::ForkResult::Child => {
            drop(pid_r);
            drop(err_r);
            let ew = err_w.as_raw_fd();
            let me = std::process::id().to_string();
            if let Some(adj) = &oom_score_adj {
                if let Err(e) = std::fs::write("/proc/self/oom_score_adj", adj) {
                    child_fail(ew, "setting process.oomScoreAdj", e);
                }
            }
            for p in &procs {
                if let Err(e) = std::fs::write(p, &me) {
                    child_fail(ew, &format!("joining the cgroup `{}`", p.display()), e);
                }
            }
            for (fd, flag) in &namespaces {
                // SAFETY: setns on a namespace descriptor we opened.
                if unsafe { libc::setns(fd.as_raw_fd(), *flag) } != 0 {
                    child_fail(ew, "joining a namespace", std::io::Error::last_os_error());
                }
            }
            // Into the pid namespace, as brig's child.
            // SAFETY: clone without a new stack behaves like fork.
            let child = unsafe { libc::syscall(libc::SYS_clone, libc::CLONE_PARENT | libc::SIGCHLD, 0, 0, 0, 0) };
            if child < 0 {
                child_fail(ew, "forking into the pid namespace", std::io::Error::last_os_error());
            }
            if child > 0 {
                let s = child.to_string();
                // SAFETY: write to our pipe, then leave.
                unsafe {
                    libc::write(pid_w.as_raw_fd(), s.as_ptr().cast(), s.len());
                    libc::_exit(0);
                }
            }
            drop(pid_w);
            let ids = (user.uid(), user.gid(), umask);
            grandchild(req, ew, console, &cwd, ids, &gids, &rlimits, caps, &args, &path_var, &env)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(pid_w);
            drop(err_w);
            let mut s = String::new();
            let _ = std::fs::File::from(pid_r).read_to_string(&mut s);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut err = String::new();
            let _ = std::fs::File::from(err_r).read_to_string(&mut err);
            let pid: Option<i32> = s.trim().parse().ok();
            if !err.is_empty() {
                if let Some(p) = pid {
                    let _ = nix::sys::signal::kill(Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(Pid::from_raw(p), None);
                }
                return Err(err);
            }
            pid.map(Pid::from_raw).ok_or_else(|| "the process did not start".to_string())
        }
    }
}

fn pipe_cloexec() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

/// `RLIMIT_*` name -> resource number.
pub fn rlimit_resource(name: &str) -> Option<libc::c_int> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    } as libc::c_int)
}

#[allow(clippy::too_many_arguments)]
fn grandchild(
    req: &TenantRequest<'_>,
    ew: RawFd,
    console: Option<UnixStream>,
    cwd: &Path,
    (uid, gid, umask): (u32, u32, u32),
    gids: &[libc::gid_t],
    rlimits: &[(libc::c_int, u64, u64)],
    caps: Option<oci_spec::runtime::LinuxCapabilities>,
    args: &[String],
    path_var: &str,
    env: &[CString],
) -> ! {
    // The scheduler and I/O priority, as libcontainer's init sets them: here,
    // in the job's cgroup and user namespace, where the kernel judges them by
    // the job's own capabilities (CAP_SYS_NICE in a user namespace is no
    // right over the host's CPUs; set as host root before `setns`, a
    // namespaced capability became a host one).
    if let Err(e) = set_scheduler(req.process.scheduler().as_ref()) {
        child_fail(ew, "setting process.scheduler", e);
    }
    if let Err(e) = set_io_priority(req.process.io_priority().as_ref()) {
        child_fail(ew, "setting process.ioPriority", e);
    }
    // Only the caller's stdio, the preserved range, and our handover survive.
    let keep_below = 3 + req.preserve_fds.max(0);
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<RawFd> = dir.flatten().filter_map(|e| e.file_name().to_string_lossy().parse().ok()).collect();
        for fd in fds {
            if fd >= keep_below && fd != req.stub_fd && fd != req.plan_fd && fd != ew {
                // SAFETY: marking descriptors close-on-exec.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
    if let Some(sock) = console {
        let size = req
            .process
            .console_size()
            .as_ref()
            .map(|b| (u16::try_from(b.height()).unwrap_or(u16::MAX), u16::try_from(b.width()).unwrap_or(u16::MAX)));
        if let Err(e) = attach_terminal(&sock, size) {
            child_fail(ew, "setting up the terminal", e);
        }
    }
    if let Err(e) = std::env::set_current_dir(cwd) {
        child_fail(ew, &format!("entering the working directory `{}`", cwd.display()), e);
    }
    // SAFETY: credential system calls with plain values and a live array.
    unsafe {
        libc::umask(umask as libc::mode_t);
        if libc::setgroups(gids.len(), gids.as_ptr()) != 0 && !gids.is_empty() {
            child_fail(ew, "setting supplementary groups", std::io::Error::last_os_error());
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            child_fail(ew, "setting the gid", std::io::Error::last_os_error());
        }
        // Keep capabilities across the uid change; they are set explicitly below.
        libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0);
        if libc::setresuid(uid, uid, uid) != 0 {
            child_fail(ew, "setting the uid", std::io::Error::last_os_error());
        }
        for (res, soft, hard) in rlimits {
            let lim = libc::rlimit { rlim_cur: *soft, rlim_max: *hard };
            if libc::setrlimit(*res as _, &lim) != 0 {
                child_fail(ew, "setting an rlimit", std::io::Error::last_os_error());
            }
        }
    }
    if let Err(e) = set_capabilities(caps) {
        child_fail(ew, "setting capabilities", e);
    }
    if let Some(seccomp) = req.client_seccomp {
        if let Err(e) = nix::sys::prctl::set_no_new_privs() {
            child_fail(ew, "setting no_new_privs", e);
        }
        if let Err(e) = libcontainer::seccomp::initialize_seccomp(seccomp) {
            child_fail(ew, "installing the spec's seccomp filter", e);
        }
    }
    let program = match crate::supervisor::find_program(&args[0], path_var) {
        Ok(p) => p,
        Err(why) => child_fail(ew, "starting the process", why),
    };
    if !req.sealed_filters.is_empty() {
        // (crate::supervisor::filters_before_exec.)
        let Ok(path) = CString::new(program.as_os_str().as_encoded_bytes()) else {
            child_fail(ew, "starting the process", "a NUL byte in the program's path")
        };
        let argv: Vec<CString> = args.iter().filter_map(|a| CString::new(a.as_bytes()).ok()).collect();
        let e = crate::supervisor::exec_sealed(req.sealed_filters, &path, &argv, env);
        child_fail(ew, &format!("executing `{}`", program.display()), e)
    }
    // SAFETY: clearing close-on-exec on the plan descriptor we hand over.
    unsafe { libc::fcntl(req.plan_fd, libc::F_SETFD, 0) };
    let mut argv: Vec<CString> = ["brig-init", "exec"].iter().filter_map(|s| CString::new(*s).ok()).collect();
    argv.extend(CString::new(req.plan_fd.to_string()).ok());
    argv.extend(CString::new("-").ok());
    argv.extend(CString::new(program.as_os_str().as_encoded_bytes()).ok());
    argv.extend(CString::new("--").ok());
    argv.extend(args.iter().filter_map(|a| CString::new(a.as_bytes()).ok()));
    let e = nix::unistd::fexecve(req.stub_fd, &argv, env).err();
    child_fail(ew, "starting brig's supervisor", format!("{e:?}"))
}

fn set_capabilities(caps: Option<oci_spec::runtime::LinuxCapabilities>) -> Result<(), String> {
    use caps::{CapSet, CapsHashSet};
    let wanted = caps.unwrap_or_default();
    let convert = |set: &Option<oci_spec::runtime::Capabilities>| -> CapsHashSet {
        set.iter().flatten().filter_map(|c| format!("CAP_{c}").parse::<caps::Capability>().ok()).collect()
    };
    // Order matters: each capset must keep effective within permitted and
    // ambient within permitted and inheritable.
    caps::clear(None, CapSet::Ambient).map_err(|e| e.to_string())?;
    let bounding = convert(wanted.bounding());
    for c in caps::all() {
        if !bounding.contains(&c) {
            caps::drop(None, CapSet::Bounding, c).map_err(|e| e.to_string())?;
        }
    }
    caps::set(None, CapSet::Inheritable, &convert(wanted.inheritable())).map_err(|e| e.to_string())?;
    caps::set(None, CapSet::Effective, &convert(wanted.effective())).map_err(|e| e.to_string())?;
    caps::set(None, CapSet::Permitted, &convert(wanted.permitted())).map_err(|e| e.to_string())?;
    caps::set(None, CapSet::Ambient, &convert(wanted.ambient())).map_err(|e| e.to_string())?;
    Ok(())
}

/// Opens a pseudo-terminal in the container, sends its master to the console
/// socket, and makes the slave the controlling terminal and stdio; `size`
/// (rows, columns) is `process.consoleSize`, its first size.
///
/// The master comes from the container's own devpts instance, through its
/// `ptmx` node (`/dev/pts/ptmx`, checked to be on devpts), and the slave
/// from the master (`TIOCGPTPEER`), never by a path in `/dev`: this runs as
/// root of the job's user namespace with its capabilities, before Landlock,
/// and the job can write `/dev` (a `/dev/ptmx` it replaced with a link to a
/// terminal it holds failed every `exec -t`; a slave opened by name could be
/// one the job swapped in).
fn attach_terminal(sock: &UnixStream, size: Option<(u16, u16)>) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let master = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NOFOLLOW)
        .open("/dev/pts/ptmx")
        .map_err(|e| format!("/dev/pts/ptmx: {e}"))?;
    let on_devpts =
        nix::sys::statfs::fstatfs(&master).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::DEVPTS_SUPER_MAGIC);
    if !on_devpts {
        return Err("/dev/pts/ptmx is not the container's devpts".into());
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK on the master we opened, reading a live int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(format!("unlocking the terminal: {}", std::io::Error::last_os_error()));
    }
    if let Some((rows, cols)) = size {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ on the master we opened, with a live winsize.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    let fds = [master.as_raw_fd()];
    let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"/dev/ptmx")];
    nix::sys::socket::sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, nix::sys::socket::MsgFlags::empty(), None)
        .map_err(|e| e.to_string())?;
    nix::unistd::setsid().map_err(|e| e.to_string())?;
    // SAFETY: TIOCGPTPEER on the master we opened; on success it returns a
    // new descriptor of its slave, which the File then owns.
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY) };
    if slave < 0 {
        return Err(format!("opening the terminal's slave: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `slave` was just returned by the kernel and is owned by nothing else.
    let slave = unsafe { std::fs::File::from_raw_fd(slave) };
    // SAFETY: TIOCSCTTY on the slave we opened; dup2 onto stdio.
    unsafe {
        libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0);
        for fd in 0..3 {
            libc::dup2(slave.as_raw_fd(), fd);
        }
    }
    drop(slave);
    drop(master);
    Ok(())
}

/// `struct sched_attr` (sched_setattr(2)), with the utilization clamps.
#[repr(C)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

/// `process.scheduler`, as libcontainer's init applies it.
fn set_scheduler(scheduler: Option<&oci_spec::runtime::Scheduler>) -> std::io::Result<()> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let Some(s) = scheduler else { return Ok(()) };
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().fold(0u64, |acc, f| {
        acc | match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        }
    });
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0).max(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        sched_util_min: 0,
        sched_util_max: 0,
    };
    // SAFETY: sched_setattr(2) on this process, reading `attr`, a
    // `struct sched_attr` whose `size` says how much the kernel may read.
    if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `process.ioPriority` (ioprio_set(2) on this process).
fn set_io_priority(io: Option<&oci_spec::runtime::LinuxIOPriority>) -> std::io::Result<()> {
    use oci_spec::runtime::IOPriorityClass as C;
    let Some(io) = io else { return Ok(()) };
    if !(0..=7).contains(&io.priority()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("priority {} is outside 0-7", io.priority()),
        ));
    }
    let class: i64 = match io.class() {
        C::IoprioClassRt => 1,
        C::IoprioClassBe => 2,
        C::IoprioClassIdle => 3,
    };
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    let prio = (class << 13) | io.priority();
    // SAFETY: ioprio_set(2) on this process with plain integers.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio as libc::c_ulong) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
