//! The host side of the in-container supervisor (`supervisor/`, `brig-init`):
//! the embedded binary, the sealed memfds it runs from, the job plan encoding,
//! and the libcontainer executor that hands over to it.

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::fcntl::{fcntl, FcntlArg, FdFlag, SealFlag};
use oci_spec::runtime::{LinuxSeccomp, Spec};

use brig_profiles::JobPlan;

/// The freestanding supervisor, built by build.rs.
pub static SUPERVISOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/brig-init"));

/// The plan format, shared verbatim with the supervisor.
#[allow(dead_code)]
#[path = "../../supervisor/src/plan.rs"]
pub mod format;

/// Lowest descriptor number for the fds handed to the container, above any
/// `--preserve-fds` range a caller may pass.
const FD_FLOOR: RawFd = 200;

const MFD_CLOEXEC: libc::c_uint = 0x1;
const MFD_ALLOW_SEALING: libc::c_uint = 0x2;
const MFD_NOEXEC_SEAL: libc::c_uint = 0x8;
const MFD_EXEC: libc::c_uint = 0x10;

/// Creates a sealed, read-only memfd holding `bytes`.
fn sealed_memfd(name: &CStr, bytes: &[u8], executable: bool) -> std::io::Result<OwnedFd> {
    let base = MFD_CLOEXEC | MFD_ALLOW_SEALING;
    let extra = if executable { MFD_EXEC } else { MFD_NOEXEC_SEAL };
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a
    // new descriptor that we own, or -1.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), base | extra) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Kernels before 6.3 do not know MFD_EXEC / MFD_NOEXEC_SEAL.
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), base) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a freshly created descriptor owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(owned);
    file.write_all(bytes)?;
    let owned = OwnedFd::from(file);
    let seals = SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE;
    fcntl(owned.as_raw_fd(), FcntlArg::F_ADD_SEALS(seals))?;
    raise(owned)
}

/// Moves a descriptor to a number at or above FD_FLOOR (close-on-exec).
fn raise(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    let n = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(FD_FLOOR))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// Encodes `plan` in the supervisor's format (see `supervisor/src/plan.rs`).
pub fn encode_plan(plan: &JobPlan) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(format::MAGIC);
    out.extend_from_slice(&format::VERSION.to_le_bytes());
    let mut flags = 0u32;
    if plan.no_new_privs || plan.landlock.is_some() || plan.seccomp.is_some() {
        flags |= format::FLAG_NO_NEW_PRIVS;
    }
    if plan.landlock.as_ref().is_some_and(|l| l.required) {
        flags |= format::FLAG_LANDLOCK_REQUIRED;
    }
    out.extend_from_slice(&flags.to_le_bytes());
    let ms = |d: Option<std::time::Duration>| d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0);
    out.extend_from_slice(&ms(plan.timeout).to_le_bytes());
    out.extend_from_slice(&ms(Some(plan.grace)).to_le_bytes());
    let (fs, net, scoped) =
        plan.landlock.as_ref().map(|l| (l.fs_handled, l.net_handled, l.scoped)).unwrap_or((0, 0, 0));
    for v in [fs, net, scoped] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let put_u32 =
        |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    match &plan.landlock {
        Some(l) => {
            put_u32(&mut out, l.fs_rules.len());
            for (path, access) in &l.fs_rules {
                out.extend_from_slice(&access.to_le_bytes());
                put_u32(&mut out, path.len() + 1);
                out.extend_from_slice(path.as_bytes());
                out.push(0);
            }
            put_u32(&mut out, l.net_rules.len());
            for (port, access) in &l.net_rules {
                out.extend_from_slice(&access.to_le_bytes());
                out.extend_from_slice(&u64::from(*port).to_le_bytes());
            }
        }
        None => {
            put_u32(&mut out, 0);
            put_u32(&mut out, 0);
        }
    }
    let programs: &[Vec<u8>] = plan.seccomp.as_ref().map(|s| s.programs.as_slice()).unwrap_or(&[]);
    put_u32(&mut out, programs.len());
    for p in programs {
        put_u32(&mut out, p.len() / 8);
        while out.len() % 8 != 0 {
            out.push(0);
        }
        out.extend_from_slice(p);
    }
    out
}

/// The descriptors a launch hands to the container.
#[derive(Debug)]
pub struct Handover {
    pub stub: OwnedFd,
    pub plan: OwnedFd,
    pub status: Option<OwnedFd>,
    pub client_seccomp: Option<LinuxSeccomp>,
    /// brig's own filters, installed before the supervisor is executed
    /// (`filters_before_exec`).
    pub sealed_filters: Vec<Vec<u8>>,
    /// For `create`: what brig learns about the job's init as soon as it
    /// exists, while the init sets the container up
    /// (`Executor::init_created`); the launch reads it here.
    pub early_init: Option<Arc<OnceLock<EarlyInit>>>,
    /// Whether `vm.memfd_noexec = 2` is set in the init's pid namespace then.
    pub set_memfd_noexec: bool,
}

/// What brig read and did for the job's `init` while libcontainer built the
/// container.
#[derive(Debug, Clone)]
pub struct EarlyInit {
    pub init: i32,
    /// Its start time (`/proc/<init>/stat`), read when its pid was reported:
    /// read after the build instead, it costs 0.05-0.2 ms on the launch's
    /// path, the init being in the middle of executing the supervisor.
    pub start_ticks: Option<u64>,
    /// `vm.memfd_noexec` set in its pid namespace (when asked for).
    pub memfd_noexec: Option<Result<crate::memfd::Outcome, String>>,
}

/// The Landlock ABI this kernel offers, 0 if none.
fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with the VERSION flag the attribute pointer must be NULL and
    // the size 0; the call only returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

/// For `exec`: the plan's seccomp filters, when the exec'd process becomes
/// the job without the supervisor (`exec_sealed`). Through the supervisor,
/// the process is dumpable from its `execve` of the supervisor until the
/// supervisor's first instruction makes it not, and the supervisor applies
/// the plan after that: in between, a job with the same user and
/// capabilities could open its `/proc/<pid>/mem` and run code there before
/// any filter. Under Landlock the job cannot reach a process outside its
/// domain, and the supervisor is what applies Landlock; without a Landlock
/// domain to apply (a profile without one, or a kernel without Landlock when
/// the profile does not require it) the supervisor has nothing to do but
/// the filters, so brig installs them and executes the job itself, as runc
/// does: its `execve` is the one system call made under the filter. (A
/// profile that requires Landlock on a kernel without it goes through the
/// supervisor, which refuses it.)
pub fn filters_before_exec(plan: &[u8], landlock_abi: i64) -> Vec<Vec<u8>> {
    let Ok(decoded) = format::Plan::decode(plan) else { return Vec::new() };
    let landlock_applies = decoded.wants_landlock() && landlock_abi > 0;
    let landlock_refuses = decoded.wants_landlock() && decoded.flags & format::FLAG_LANDLOCK_REQUIRED != 0;
    if landlock_applies || landlock_refuses {
        return Vec::new();
    }
    decoded.filters().map(|f| f.insns.to_vec()).collect()
}

/// The exec'd process becomes the job without the supervisor (see
/// `filters_before_exec`): every signal unblocked and at its default, as
/// the supervisor leaves them; `no_new_privs`; the plan's filters; then
/// `execve`. Returns only on failure.
pub(crate) fn exec_sealed(filters: &[Vec<u8>], program: &CStr, argv: &[CString], env: &[CString]) -> std::io::Error {
    // The kernel's `struct sigaction` (x86_64 and aarch64): handler, flags,
    // restorer, mask; SIG_DFL is 0.
    let default: [u64; 4] = [0; 4];
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: a live kernel sigaction, no old one asked for; an
            // invalid number only returns EINVAL.
            unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, default.as_ptr(), std::ptr::null::<u8>(), 8usize) };
        }
    }
    let none: [u64; 1] = [0];
    // SAFETY: a live 8-byte signal set, no old one asked for.
    unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, none.as_ptr(), std::ptr::null::<u8>(), 8usize)
    };
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        return std::io::Error::from(e);
    }
    for filter in filters {
        if let Err(e) = install_filter(filter) {
            return e;
        }
    }
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: NUL-terminated strings and NULL-terminated arrays that outlive
    // the call, which only returns on failure.
    unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    std::io::Error::last_os_error()
}

impl Handover {
    /// For a container's init: the supervisor reports to `status_path`.
    pub fn for_init(plan: &[u8], status_path: &Path) -> std::io::Result<Handover> {
        use std::os::unix::fs::OpenOptionsExt;
        let status = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(status_path)?;
        Ok(Handover {
            stub: sealed_memfd(c"brig-init", SUPERVISOR, true)?,
            plan: sealed_memfd(c"brig-plan", plan, false)?,
            status: Some(raise(OwnedFd::from(status))?),
            client_seccomp: None,
            sealed_filters: Vec::new(),
            early_init: Some(Default::default()),
            set_memfd_noexec: false,
        })
    }

    /// For `exec`: harden and exec, no supervision. libcontainer 0.7 does not
    /// carry the spec's seccomp filter into exec'd processes, so brig installs
    /// it itself (`client_seccomp`).
    pub fn for_exec(plan: &[u8], client_seccomp: Option<LinuxSeccomp>) -> std::io::Result<Handover> {
        Ok(Handover {
            stub: sealed_memfd(c"brig-init", SUPERVISOR, true)?,
            plan: sealed_memfd(c"brig-plan", plan, false)?,
            status: None,
            client_seccomp,
            sealed_filters: filters_before_exec(plan, landlock_abi()),
            early_init: None,
            set_memfd_noexec: false,
        })
    }

    pub fn executor(&self) -> BrigExecutor {
        BrigExecutor {
            stub: self.stub.as_raw_fd(),
            plan: self.plan.as_raw_fd(),
            status: self.status.as_ref().map(|f| f.as_raw_fd()),
            client_seccomp: self.client_seccomp.clone(),
            sealed_filters: self.sealed_filters.clone(),
            early_init: self.early_init.clone(),
            set_memfd_noexec: self.set_memfd_noexec,
        }
    }
}

/// libcontainer's last step in the container: exec the supervisor.
///
/// It runs inside the container after pivot_root, the user switch, the
/// capability drop and the spec's seccomp filter, in a clone of brig, and
/// replaces itself with the supervisor immediately.
#[derive(Debug, Clone)]
pub struct BrigExecutor {
    stub: RawFd,
    plan: RawFd,
    status: Option<RawFd>,
    client_seccomp: Option<LinuxSeccomp>,
    sealed_filters: Vec<Vec<u8>>,
    early_init: Option<Arc<OnceLock<EarlyInit>>>,
    set_memfd_noexec: bool,
}

/// Installs a classic BPF seccomp program (`struct sock_filter` array).
pub(crate) fn install_filter(insns: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(insns.len() / 8).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog { len, filter: insns.as_ptr() as *mut libc::sock_filter };
    // SAFETY: prog points at a live sock_fprog whose filter covers `len`
    // instructions of 8 bytes inside `insns`, which outlives the call.
    let r =
        unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const libc::sock_fprog) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn clear_cloexec(fd: RawFd) -> Result<(), ExecutorError> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))
        .map(|_| ())
        .map_err(|e| ExecutorError::Other(format!("preparing descriptor {fd} for the supervisor: {e}")))
}

fn process_args(spec: &Spec) -> Option<&Vec<String>> {
    spec.process().as_ref().and_then(|p| p.args().as_ref()).filter(|a| !a.is_empty())
}

fn path_var(spec: &Spec) -> String {
    spec.process()
        .as_ref()
        .and_then(|p| p.env().as_ref())
        .and_then(|env| env.iter().find_map(|e| e.strip_prefix("PATH=").map(str::to_string)))
        .unwrap_or_else(|| brig_policy::DEFAULT_PATH.to_string())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Resolves the job's program like execvp(3), in the container's filesystem.
pub fn resolve_program(program: &str, path_var: &str) -> Option<PathBuf> {
    find_program(program, path_var).ok()
}

/// [`resolve_program`], or why not, in the words runc uses (Docker and
/// Podman turn "permission denied" into exit code 126, "not found" and "no
/// such file or directory" into 127).
pub fn find_program(program: &str, path_var: &str) -> Result<PathBuf, String> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return match std::fs::metadata(&p) {
            Ok(_) if is_executable(&p) => Ok(p),
            Ok(_) => Err(format!("exec: \"{program}\": permission denied")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(format!("exec: \"{program}\": stat {program}: no such file or directory"))
            }
            Err(e) => Err(format!("exec: \"{program}\": {e}")),
        };
    }
    let candidates: Vec<PathBuf> =
        path_var.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(program)).collect();
    if let Some(p) = candidates.iter().find(|p| is_executable(p)) {
        return Ok(p.clone());
    }
    if candidates.iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file())) {
        return Err(format!("exec: \"{program}\": permission denied"));
    }
    Err(format!("exec: \"{program}\": executable file not found in $PATH"))
}

impl BrigExecutor {
    /// The supervisor memfd.
    pub fn stub_fd(&self) -> RawFd {
        self.stub
    }

    /// The job plan memfd.
    pub fn plan_fd(&self) -> RawFd {
        self.plan
    }

    /// brig's filters to install before the supervisor is executed.
    pub fn sealed_filters(&self) -> &[Vec<u8>] {
        &self.sealed_filters
    }

    /// Executes the supervisor (for `exec`, the job itself when there is
    /// nothing to supervise); with `start_listener`, one that waits for
    /// `start` on it.
    fn exec_supervisor(&self, spec: &Spec, start_listener: Option<RawFd>) -> Result<(), ExecutorError> {
        // The job's own init only: an exec'd process enters the mounts the
        // init was checked in.
        if self.status.is_some() {
            crate::maskcheck::verify(spec)
                .map_err(|e| ExecutorError::Other(format!("the job's /proc and /sys: {e}")))?;
            crate::maskcheck::verify_expected_mounts(spec)
                .map_err(|e| ExecutorError::Other(format!("the job's mounts: {e}")))?;
        }
        let args = process_args(spec).ok_or(ExecutorError::InvalidArg)?;
        let program = find_program(&args[0], &path_var(spec)).map_err(|why| ExecutorError::Execution(why.into()))?;
        if let Some(seccomp) = &self.client_seccomp {
            // Installing a filter after the capability drop needs
            // no_new_privs; it is a tightening, and exec'd processes of a
            // container with a client filter always run under it.
            nix::sys::prctl::set_no_new_privs().map_err(|e| {
                ExecutorError::Other(format!("setting no_new_privs for the client seccomp filter: {e}"))
            })?;
            libcontainer::seccomp::initialize_seccomp(seccomp)
                .map_err(|e| ExecutorError::Other(format!("installing the spec's seccomp filter: {e}")))?;
        }
        let env = || -> Vec<CString> {
            std::env::vars_os()
                .filter_map(|(k, v)| {
                    let mut kv = k.into_encoded_bytes();
                    kv.push(b'=');
                    kv.extend_from_slice(v.as_encoded_bytes());
                    CString::new(kv).ok()
                })
                .collect()
        };
        let cstr = |s: &str| CString::new(s).map_err(|_| ExecutorError::InvalidArg);
        if self.status.is_none() && !self.sealed_filters.is_empty() {
            // (`filters_before_exec`.) The job itself, with its own argv; the
            // plan and supervisor descriptors stay close-on-exec.
            let path = CString::new(program.as_os_str().as_encoded_bytes()).map_err(|_| ExecutorError::InvalidArg)?;
            let argv = args.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
            let err = exec_sealed(&self.sealed_filters, &path, &argv, &env());
            return Err(ExecutorError::Execution(format!("executing `{}`: {err}", program.display()).into()));
        }
        clear_cloexec(self.plan)?;
        let status = match self.status {
            Some(fd) => {
                clear_cloexec(fd)?;
                fd.to_string()
            }
            None => "-".to_string(),
        };
        let mode = match (self.status, start_listener) {
            (Some(_), Some(fd)) => {
                clear_cloexec(fd)?;
                format!("init-at-start={fd}")
            }
            (Some(_), None) => "init".to_string(),
            (None, _) => "exec".to_string(),
        };
        let mut argv = vec![
            cstr("brig-init")?,
            cstr(&mode)?,
            cstr(&self.plan.to_string())?,
            cstr(&status)?,
            CString::new(program.as_os_str().as_encoded_bytes()).map_err(|_| ExecutorError::InvalidArg)?,
            cstr("--")?,
        ];
        for a in args {
            argv.push(cstr(a)?);
        }
        // fexecve only returns on failure.
        let err = nix::unistd::fexecve(self.stub, &argv, &env()).err();
        Err(ExecutorError::Execution(format!("starting brig's supervisor: {err:?}").into()))
    }
}

impl Executor for BrigExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        self.exec_supervisor(spec, None)
    }

    /// A job's init: the supervisor is executed at `create`, once the init
    /// is ready, and waits for `start` on `start_listener` itself. It forks
    /// the job and hardens it meanwhile, while brig finishes the `create`
    /// (supervisor/src/main.rs, `init-at-start`); `start` only lets it execute.
    fn exec_awaiting_start(&self, spec: &Spec, start_listener: RawFd) -> Option<Result<(), ExecutorError>> {
        self.status?;
        Some(self.exec_supervisor(spec, Some(start_listener)))
    }

    /// In brig's process, once the job's init exists, while the init mounts
    /// the container's filesystems rather than after the build: its start
    /// time is read, and `vm.memfd_noexec` set in its pid namespace. The
    /// launch checks that it was this init's before it uses either.
    fn init_created(&self, init: i32) {
        if let Some(cell) = &self.early_init {
            let start_ticks = crate::state::process_start_ticks(init);
            let memfd_noexec =
                self.set_memfd_noexec.then(|| crate::memfd::enforce(init, start_ticks).map_err(|e| e.to_string()));
            let _ = cell.set(EarlyInit { init, start_ticks, memfd_noexec });
        }
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let args = process_args(spec)
            .ok_or_else(|| ExecutorValidationError::ArgValidationError("the spec has no process.args".into()))?;
        find_program(&args[0], &path_var(spec)).map_err(ExecutorValidationError::ArgValidationError)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brig_profiles::landlock::LandlockPlan;
    use std::collections::BTreeMap;

    fn plan() -> JobPlan {
        let section = brig_profiles::model::SeccompSection { allow: vec!["read".into()], ..Default::default() };
        let seccomp = brig_profiles::seccomp::compile(&section, brig_profiles::seccomp::Arch::X86_64).unwrap();
        JobPlan {
            no_new_privs: true,
            timeout: Some(std::time::Duration::from_secs(90)),
            grace: std::time::Duration::from_secs(5),
            landlock: Some(LandlockPlan {
                required: true,
                fs_handled: 0xffff,
                net_handled: 2,
                scoped: 3,
                fs_rules: BTreeMap::from([("/bin".to_string(), 13u64), ("/tmp".to_string(), 0xbfbe)]),
                net_rules: BTreeMap::from([(443u16, 2u64)]),
            }),
            seccomp_digest: Some(seccomp.digest.clone()),
            seccomp: Some(seccomp),
            egress: None,
            per_job_userns: false,
            memfd_noexec: false,
        }
    }

    #[test]
    fn plan_round_trips_through_the_supervisor_decoder() {
        let p = plan();
        let bytes = encode_plan(&p);
        let decoded = format::Plan::decode(&bytes).unwrap();
        assert_eq!(decoded.flags, format::FLAG_NO_NEW_PRIVS | format::FLAG_LANDLOCK_REQUIRED);
        assert_eq!(decoded.timeout_ms, 90_000);
        assert_eq!(decoded.grace_ms, 5_000);
        assert_eq!((decoded.fs_handled, decoded.net_handled, decoded.scoped), (0xffff, 2, 3));
        let rules: Vec<(Vec<u8>, u64)> = decoded.fs_rules().map(|r| (r.path.to_vec(), r.access)).collect();
        assert_eq!(rules, vec![(b"/bin\0".to_vec(), 13), (b"/tmp\0".to_vec(), 0xbfbe)]);
        assert_eq!(decoded.net_rules().collect::<Vec<_>>(), vec![format::NetRule { access: 2, port: 443 }]);
        let filters: Vec<Vec<u8>> = decoded.filters().map(|f| f.insns.to_vec()).collect();
        assert_eq!(filters, p.seccomp.unwrap().programs);
    }

    /// brig installs the filters and executes the job itself exactly when
    /// no Landlock domain keeps the job away from the exec'd process (and
    /// none must be refused for want of Landlock).
    #[test]
    fn filters_go_before_the_exec_only_without_a_landlock_domain() {
        let with = plan();
        let programs = with.seccomp.clone().unwrap().programs;
        assert!(filters_before_exec(&encode_plan(&with), 7).is_empty());
        // Required Landlock on a kernel without it: the supervisor refuses.
        assert!(with.landlock.as_ref().unwrap().required);
        assert!(filters_before_exec(&encode_plan(&with), 0).is_empty());
        let mut best_effort = plan();
        best_effort.landlock.as_mut().unwrap().required = false;
        assert!(filters_before_exec(&encode_plan(&best_effort), 7).is_empty());
        assert_eq!(filters_before_exec(&encode_plan(&best_effort), 0), programs, "a kernel without Landlock");
        let mut without = plan();
        without.landlock = None;
        assert_eq!(filters_before_exec(&encode_plan(&without), 7), programs);
        let mut nothing = without.clone();
        nothing.seccomp = None;
        assert!(filters_before_exec(&encode_plan(&nothing), 0).is_empty());
        assert!(filters_before_exec(b"not a plan", 0).is_empty());
    }

    #[test]
    fn decoder_rejects_every_truncation_and_corruption() {
        let bytes = encode_plan(&plan());
        for n in 0..bytes.len() {
            assert!(format::Plan::decode(&bytes[..n]).is_err(), "truncated at {n}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(format::Plan::decode(&extra).is_err());
        let mut bad_magic = bytes.clone();
        bad_magic[0] ^= 1;
        assert!(format::Plan::decode(&bad_magic).is_err());
    }

    #[test]
    fn empty_plan_is_valid() {
        let p = JobPlan {
            no_new_privs: false,
            timeout: None,
            grace: std::time::Duration::from_secs(10),
            landlock: None,
            seccomp: None,
            seccomp_digest: None,
            egress: None,
            per_job_userns: false,
            memfd_noexec: false,
        };
        let d = format::Plan::decode(&encode_plan(&p)).map(|d| (d.flags, d.timeout_ms)).unwrap();
        assert_eq!(d, (0, 0));
    }

    #[test]
    fn supervisor_is_embedded_and_static() {
        assert_eq!(&SUPERVISOR[..4], b"\x7fELF");
        assert!(SUPERVISOR.len() < 256 * 1024, "supervisor grew to {} bytes", SUPERVISOR.len());
    }

    #[test]
    fn resolves_programs_like_execvp() {
        assert_eq!(resolve_program("sh", "/nonexistent:/bin"), Some(PathBuf::from("/bin/sh")));
        assert_eq!(resolve_program("/bin/sh", ""), Some(PathBuf::from("/bin/sh")));
        assert_eq!(resolve_program("no-such-program-here", "/bin:/usr/bin"), None);
        let d = tempfile::tempdir().unwrap();
        let plain = d.path().join("data");
        std::fs::write(&plain, "x").unwrap();
        assert_eq!(resolve_program(plain.to_str().unwrap(), ""), None);
        // runc's words, which clients turn into 126 and 127.
        let why = |p: &str, path: &str| find_program(p, path).unwrap_err();
        assert!(why(plain.to_str().unwrap(), "").ends_with("permission denied"));
        assert!(why(d.path().to_str().unwrap(), "").ends_with("permission denied"), "a directory");
        assert!(why("/no/such", "").ends_with("no such file or directory"));
        assert!(why("no-such-program-here", "/bin").ends_with("executable file not found in $PATH"));
        assert!(why("data", d.path().to_str().unwrap()).ends_with("permission denied"));
    }
}
