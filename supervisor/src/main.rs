//! `brig-init`: the supervisor that brig runs as the container's init.
//!
//! brig's executor (inside libcontainer's init, after pivot_root, the uid switch
//! and the capability drop) `execveat`s this binary from a sealed memfd, so the
//! container's pid 1 is neither the job nor a copy of the host's `brig` (the
//! CVE-2019-5736 class: nothing in the container can reach a host binary through
//! `/proc/1/exe`). It is freestanding — raw system calls, no libc, no heap — so
//! it runs in any root filesystem and stays at a few pages of memory.
//!
//! Usage (built by brig, never by people):
//!
//! ```text
//! brig-init init PLAN_FD STATUS_FD EXE -- ARGV...   supervise the job as pid 1
//! brig-init init-at-start=FD PLAN_FD STATUS_FD EXE -- ARGV...
//!                                                   the same, from `create` on
//! brig-init exec PLAN_FD -         EXE -- ARGV...   harden and exec (for `brig exec`)
//! ```
//!
//! In `init` mode it forks the job; the job applies `no_new_privs`, Landlock and
//! then the seccomp filters — seccomp last, right before `execve` — and reports
//! what was enforced over a close-on-exec pipe. In `init-at-start` mode
//! (libcontainer runs it at `create`, once the container is ready) the job is
//! forked and hardened at once, and waits, hardened, for the supervisor to
//! receive `start` on the listening socket FD (what libcontainer's init would
//! wait on): only the `execve` is left for `start`. The supervisor reaps every child,
//! forwards signals to the job, enforces the wall-clock timeout (SIGTERM, then
//! SIGKILL after the grace period), and appends `key=value` lines to the status
//! file that brig opened on the host before the container existed. It exits with
//! the job's exit code, or 128 + the signal that killed it.
#![no_std]
#![no_main]

mod mem;
mod plan;
mod sys;

use plan::{Plan, FLAG_LANDLOCK_REQUIRED, FLAG_NO_NEW_PRIVS};
use sys::Fd;

/// Exit code when the job could not be started (as in shells and runc).
const EXIT_CANNOT_EXEC: i32 = 126;
const EXIT_NOT_FOUND: i32 = 127;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    sys::exit(EXIT_CANNOT_EXEC)
}

/// Referenced by the precompiled `core` in debug builds; never called because
/// every profile of this crate aborts on panic.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "xor rbp, rbp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "mov x29, xzr",
    "mov x0, sp",
    "and sp, x0, #-16",
    "bl {entry}",
    "brk #1",
    entry = sym entry,
);

/// The process entry point: `sp` points at `argc`, then `argv[]`, NULL, `envp[]`, NULL.
///
/// # Safety
/// Called once by `_start` with the initial stack pointer the kernel set up.
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: the kernel's initial stack layout is argc followed by argc argv
    // pointers, a NULL, the environment pointers and a NULL.
    let (argc, argv, envp) = unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        (argc, argv, argv.add(argc + 1))
    };
    let code = match Args::parse(argc, argv, envp) {
        Some(args) => run(&args),
        None => {
            sys::write_all(2, b"brig-init: invalid arguments (this program is started by brig)\n");
            EXIT_CANNOT_EXEC
        }
    };
    sys::exit(code)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Init,
    Exec,
}

struct Args {
    mode: Mode,
    /// `init-at-start`: the socket `brig start` connects to.
    start_fd: Option<Fd>,
    plan_fd: Fd,
    status_fd: Option<Fd>,
    exe: *const u8,
    argv: *const *const u8,
    envp: *const *const u8,
}

impl Args {
    fn parse(argc: usize, argv: *const *const u8, envp: *const *const u8) -> Option<Args> {
        if argc < 7 {
            return None;
        }
        // SAFETY: argc was checked, so argv[0..7] are valid NUL-terminated strings.
        let arg = |i: usize| unsafe { sys::cstr(*argv.add(i)) };
        let (mode, start_fd) = match arg(1) {
            b"init" => (Mode::Init, None),
            b"exec" => (Mode::Exec, None),
            a => (Mode::Init, Some(parse_fd(a.strip_prefix(b"init-at-start=")?)?)),
        };
        let plan_fd = parse_fd(arg(2))?;
        let status_fd = match arg(3) {
            b"-" => None,
            s => Some(parse_fd(s)?),
        };
        if arg(5) != b"--" || (mode == Mode::Init) != status_fd.is_some() {
            return None;
        }
        // SAFETY: indexes 4 and 6 are below argc.
        let (exe, job_argv) = unsafe { (*argv.add(4), argv.add(6)) };
        Some(Args { mode, start_fd, plan_fd, status_fd, exe, argv: job_argv, envp })
    }
}

fn parse_fd(s: &[u8]) -> Option<Fd> {
    let mut n: i32 = 0;
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i32::from(c - b'0');
    }
    Some(n)
}

fn run(args: &Args) -> i32 {
    // Nothing in the container may ptrace us or read our memory or fds.
    sys::prctl(sys::PR_SET_DUMPABLE, 0);
    // Our descriptors must not reach the job.
    sys::set_cloexec(args.plan_fd);
    for fd in [args.status_fd, args.start_fd].into_iter().flatten() {
        sys::set_cloexec(fd);
    }
    let plan_bytes = match sys::map_file(args.plan_fd) {
        Some(b) => b,
        None => return fail(args.status_fd, b"plan", sys::EINVAL),
    };
    sys::close(args.plan_fd);
    let plan = match Plan::decode(plan_bytes) {
        Ok(p) => p,
        Err(_) => return fail(args.status_fd, b"plan", sys::EINVAL),
    };

    match (args.mode, args.status_fd) {
        (Mode::Init, Some(status)) => supervise(args, &plan, status),
        _ => {
            // `brig exec`: harden this process and become the job, with no
            // signal blocked or ignored (brig may have blocked them).
            sys::sigprocmask_set(&sys::SigSet::empty());
            sys::reset_signal_dispositions();
            let report = harden(&plan);
            if let Err((stage, errno)) = report.result {
                sys::write_all(2, b"brig-init: cannot apply hardening: ");
                sys::write_all(2, stage);
                sys::write_all(2, b"\n");
                return exit_code_for(errno);
            }
            let errno = sys::execve(args.exe, args.argv, args.envp);
            say_exec_failed(errno);
            exit_code_for(errno)
        }
    }
}

/// One line on stderr for a failed `execve`: the errno and its likely cause.
fn say_exec_failed(errno: i32) {
    let why: &[u8] = match errno {
        sys::ENOENT => b" (no such file: the program, or the interpreter its #! line names)",
        sys::EACCES => b" (permission denied: not executable, or outside the paths the profile's Landlock section lets the job execute)",
        sys::EPERM => b" (operation not permitted)",
        _ => b"",
    };
    let mut line = Line::new();
    line.text(b"brig-init: the job could not start: exec failed, errno ").num(errno as u64).text(why).text(b"\n");
    line.flush(2);
}

fn exit_code_for(errno: i32) -> i32 {
    if errno == sys::ENOENT {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXEC
    }
}

/// Records a failure before the job started.
fn fail(status: Option<Fd>, stage: &[u8], errno: i32) -> i32 {
    if let Some(fd) = status {
        let mut line = Line::new();
        line.text(b"error_stage=").text(stage).text(b"\nerror_errno=").num(errno as u64).text(b"\n");
        line.flush(fd);
    }
    exit_code_for(errno)
}

/// A failure before exec: the stage that failed and the errno.
type StageError = (&'static [u8], i32);

/// What the job's process managed to enforce.
struct Report {
    landlock_abi: u64,
    /// 0 = not requested, 1 = not enforced, 2 = partially, 3 = fully.
    landlock: u8,
    filters: u32,
    result: Result<(), StageError>,
}

/// Applies `no_new_privs`, Landlock and the seccomp filters, in that order, to
/// the calling process. seccomp comes last so that Landlock's own syscalls are
/// never subject to the filter.
fn harden(plan: &Plan<'_>) -> Report {
    let mut report = Report { landlock_abi: 0, landlock: 0, filters: 0, result: Ok(()) };
    if plan.flags & FLAG_NO_NEW_PRIVS != 0 && sys::prctl(sys::PR_SET_NO_NEW_PRIVS, 1) < 0 {
        report.result = Err((b"no_new_privs", sys::EPERM));
        return report;
    }
    if plan.wants_landlock() {
        let (abi, state, res) = landlock(plan);
        report.landlock_abi = abi;
        report.landlock = state;
        if let Err(e) = res {
            report.result = Err(e);
            return report;
        }
        // Required means the kernel must enforce Landlock at all; rights
        // newer than its ABI are masked and the run records `partial`.
        if state == 1 && plan.flags & FLAG_LANDLOCK_REQUIRED != 0 {
            report.result = Err((b"landlock_required", sys::EOPNOTSUPP));
            return report;
        }
    }
    for filter in plan.filters() {
        let err = sys::seccomp_install(filter.insns);
        if err != 0 {
            report.result = Err((b"seccomp", err));
            return report;
        }
        report.filters += 1;
    }
    report
}

/// Landlock rights that apply to a file (as opposed to a directory).
const LANDLOCK_FILE_RIGHTS: u64 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14) | (1 << 15);

fn landlock(plan: &Plan<'_>) -> (u64, u8, Result<(), StageError>) {
    let abi = sys::landlock_abi();
    let fs_supported: u64 = match abi {
        0 => 0,
        1 => (1 << 13) - 1,
        2 => (1 << 14) - 1,
        3 | 4 => (1 << 15) - 1,
        _ => (1 << 16) - 1,
    };
    let net_supported: u64 = if abi >= 4 { 0b11 } else { 0 };
    let scope_supported: u64 = if abi >= 6 { 0b11 } else { 0 };
    let fs = plan.fs_handled & fs_supported;
    let net = plan.net_handled & net_supported;
    let scoped = plan.scoped & scope_supported;
    let full = fs == plan.fs_handled && net == plan.net_handled && scoped == plan.scoped;
    if fs == 0 && net == 0 && scoped == 0 {
        return (abi, 1, Ok(()));
    }
    let attr = [fs, net, scoped];
    let attr_size = if abi >= 6 {
        24
    } else if abi >= 4 {
        16
    } else {
        8
    };
    let ruleset = match sys::landlock_create_ruleset(&attr, attr_size) {
        Ok(fd) => fd,
        Err(e) => return (abi, 1, Err((b"landlock_create_ruleset", e))),
    };
    let root = sys::root_identity();
    for rule in plan.fs_rules() {
        let fd = match sys::open_path(rule.path) {
            Ok(fd) => fd,
            // A path the image does not have grants nothing; brig lints profiles
            // and records the rules, so a missing path is not an error here.
            Err(e) if e == sys::ENOENT || e == sys::ENOTDIR => continue,
            Err(e) => {
                sys::close(ruleset);
                return (abi, 1, Err((b"landlock_open", e)));
            }
        };
        // A path that resolves to the root directory (an image's `/srv` that
        // is a symbolic link to `/`) grants nothing unless the rule is `/`.
        let is_slash = rule.path.first() == Some(&b'/') && rule.path.get(1).is_none_or(|&c| c == 0);
        let this = sys::identity(fd);
        if !is_slash && this.is_some_and(|t| root.is_some_and(|r| t.same_file(&r))) {
            sys::close(fd);
            continue;
        }
        let mut access = rule.access & fs;
        if !this.is_some_and(|t| t.dir) {
            access &= LANDLOCK_FILE_RIGHTS;
        }
        if access != 0 {
            if let Err(e) = sys::landlock_add_path_rule(ruleset, access, fd) {
                sys::close(fd);
                sys::close(ruleset);
                return (abi, 1, Err((b"landlock_add_rule", e)));
            }
        }
        sys::close(fd);
    }
    if net != 0 {
        for rule in plan.net_rules() {
            let access = rule.access & net;
            if access != 0 {
                if let Err(e) = sys::landlock_add_net_rule(ruleset, access, rule.port) {
                    sys::close(ruleset);
                    return (abi, 1, Err((b"landlock_add_rule", e)));
                }
            }
        }
    }
    let res = sys::landlock_restrict_self(ruleset);
    sys::close(ruleset);
    match res {
        Ok(()) => (abi, if full { 3 } else { 2 }, Ok(())),
        Err(e) => (abi, 1, Err((b"landlock_restrict_self", e))),
    }
}

/// The job's process, forked by the supervisor: hardens itself, reports
/// what it enforced and executes the job; with `go`, only once a byte can be
/// read there (`start`). Never returns.
fn job_process(args: &Args, plan: &Plan<'_>, report_w: Fd, go: Option<Fd>) -> ! {
    // Take the terminal's foreground (so ^C reaches the job and not the
    // supervisor), then harden and exec. Signals blocked meanwhile: a
    // background process group that sets the foreground gets SIGTTOU.
    sys::sigprocmask_set(&sys::SigSet::full());
    if sys::is_tty(0) {
        sys::setpgid_self();
        sys::tcsetpgrp_self(0);
    }
    sys::sigprocmask_set(&sys::SigSet::empty());
    sys::reset_signal_dispositions();
    let report = harden(plan);
    let errno = match report.result {
        Ok(()) => {
            send_report(report_w, &report, b"", 0);
            if let Some(go) = go {
                let mut byte = [0u8; 1];
                if sys::read(go, &mut byte) != Ok(1) || byte != GO {
                    // The supervisor is gone, or the read failed (a spec's
                    // seccomp filter that refuses it, or whose notify agent
                    // answers for it): the supervisor finds its byte unread
                    // and starts the job anew at `start`.
                    sys::exit(EXIT_CANNOT_EXEC);
                }
                // The job does not die with the supervisor, as one forked
                // at `start` would not.
                sys::prctl(sys::PR_SET_PDEATHSIG, 0);
            }
            sys::execve(args.exe, args.argv, args.envp)
        }
        Err((stage, errno)) => {
            send_report(report_w, &report, stage, errno);
            sys::exit(exit_code_for(errno))
        }
    };
    // Said on the job's own stderr too: under Docker, Podman or
    // containerd that is where the user looks (the container's log),
    // and nothing else tells them why the job exited 126 or 127.
    say_exec_failed(errno);
    send_report(report_w, &report, b"exec", errno);
    sys::exit(exit_code_for(errno))
}

/// What the supervisor writes to let a waiting job's process go.
const GO: [u8; 1] = *b"!";

/// A job forked and hardened before `start`, waiting to be let go.
struct Waiting {
    pid: i32,
    report_r: Fd,
    go_r: Fd,
    go_w: Fd,
}

/// Forks the job's process; with `wait_for_go`, one that waits to be let go
/// after hardening itself. The pid and the read end of its report pipe.
fn fork_job(args: &Args, plan: &Plan<'_>, wait_for_go: bool) -> Result<Waiting, i32> {
    let (report_r, report_w) = sys::pipe_cloexec()?;
    let (go_r, go_w) = match wait_for_go {
        true => match sys::pipe_cloexec() {
            Ok(p) => p,
            Err(e) => {
                sys::close(report_r);
                sys::close(report_w);
                return Err(e);
            }
        },
        false => (-1, -1),
    };
    let supervisor = sys::getpid();
    match sys::fork() {
        Err(e) => {
            for fd in [report_r, report_w, go_r, go_w] {
                if fd >= 0 {
                    sys::close(fd);
                }
            }
            Err(e)
        }
        Ok(0) => {
            sys::close(report_r);
            if wait_for_go {
                // (At `start` the supervisor has closed the listener, and
                // its number may be another descriptor's.)
                if let Some(fd) = args.start_fd {
                    sys::close(fd);
                }
                sys::close(go_w);
                // A job left waiting must not outlive a supervisor that is
                // not its pid namespace's init (whose end ends everything).
                sys::prctl(sys::PR_SET_PDEATHSIG, sys::SIGKILL as usize);
                if sys::getppid() != supervisor {
                    sys::exit(EXIT_CANNOT_EXEC);
                }
            }
            job_process(args, plan, report_w, wait_for_go.then_some(go_r))
        }
        Ok(pid) => {
            sys::close(report_w);
            Ok(Waiting { pid, report_r, go_r, go_w })
        }
    }
}

/// What the plan's Landlock path rules name in the container's filesystem:
/// each path's device and inode (or its absence), folded into one value.
/// The job's process resolves the rules when it hardens itself, at
/// `create`; a path made or replaced before `start` (`docker cp` into a
/// created container) changes the value, and the job is then forked anew,
/// so that its rules are those of the filesystem at `start`.
fn rule_paths_stamp(plan: &Plan<'_>) -> u64 {
    // FNV-1a over the numbers.
    let mut stamp: u64 = 0xcbf2_9ce4_8422_2325;
    for rule in plan.fs_rules() {
        let numbers = sys::path_identity(rule.path).map(|i| i.numbers()).unwrap_or([u64::MAX; 3]);
        for n in numbers {
            stamp ^= n;
            stamp = stamp.wrapping_mul(0x0100_0000_01b3);
        }
    }
    stamp
}

/// Waits for `start`: one connection on the listening socket, read to its
/// end, as libcontainer's init does.
fn wait_for_start(listener: Fd) -> Result<(), i32> {
    let conn = sys::accept(listener)?;
    let mut buf = [0u8; 64];
    while matches!(sys::read(conn, &mut buf), Ok(n) if n > 0) {}
    sys::close(conn);
    sys::close(listener);
    Ok(())
}

/// The pid-1 loop.
fn supervise(args: &Args, plan: &Plan<'_>, status: Fd) -> i32 {
    let all = sys::SigSet::full();
    let am_pid1 = sys::getpid() == 1;
    if !am_pid1 {
        // In a shared pid namespace we are not the reaper of orphans by default.
        sys::prctl(sys::PR_SET_CHILD_SUBREAPER, 1);
    }
    // `init-at-start`: the job is forked and hardened now; signals stay as
    // libcontainer's init had them until `start` (a pid 1 still ignores what
    // it has no handler for).
    let mut waiting = None;
    let mut stamp = 0;
    if let Some(listener) = args.start_fd {
        // Before the job's process resolves its rules.
        stamp = rule_paths_stamp(plan);
        match fork_job(args, plan, true) {
            Ok(w) => waiting = Some(w),
            Err(e) => return fail(Some(status), b"fork", e),
        }
        if let Err(e) = wait_for_start(listener) {
            if let Some(w) = &waiting {
                sys::kill(w.pid, sys::SIGKILL);
            }
            return fail(Some(status), b"start", e);
        }
    }
    sys::sigprocmask_set(&all);
    let started = sys::now(sys::CLOCK_REALTIME);
    // Two reports at most (hardening's, then exec's if it failed), ≈ 65
    // bytes each; what follows in `line` (512 bytes) must fit as well.
    let mut buf = [0u8; 400];
    let mut got = 0;
    let mut job = None;
    if let Some(w) = waiting {
        // The filesystem its rules were made from changed: start anew.
        let stale = rule_paths_stamp(plan) != stamp;
        if stale {
            sys::kill(w.pid, sys::SIGKILL);
        } else {
            // A process stopped before `start` (SIGSTOP to a created
            // container, or ^Z at its terminal) would hold the report open.
            sys::kill(w.pid, sys::SIGCONT);
            sys::write_all(w.go_w, &GO);
        }
        sys::close(w.go_w);
        // The pipe reaches EOF once the job has exec'd (close-on-exec) or died.
        got = sys::read_full(w.report_r, &mut buf);
        sys::close(w.report_r);
        // The byte still there: the job's process ended before `start`
        // without a failure of its own (killed meanwhile, or it could not
        // wait): the job starts now, as it would have without waiting.
        let not_started = sys::bytes_waiting(w.go_r).is_ok_and(|n| n > 0);
        sys::close(w.go_r);
        if stale || (not_started && !contains(&buf[..got], b"error_stage=")) {
            sys::wait_for(w.pid);
            got = 0;
        } else {
            job = Some(w.pid);
        }
    }
    let job = match job {
        Some(pid) => pid,
        None => match fork_job(args, plan, false) {
            Ok(w) => {
                got = sys::read_full(w.report_r, &mut buf);
                sys::close(w.report_r);
                w.pid
            }
            Err(e) => return fail(Some(status), b"fork", e),
        },
    };

    let mut line = Line::new();
    line.text(b"pid=").num(job as u64).text(b"\nstarted_ns=").num(started).text(b"\n");
    append_report(&mut line, &buf[..got]);
    line.flush(status);

    let exit = wait_job(job, plan, am_pid1);
    let ended = sys::now(sys::CLOCK_REALTIME);
    let mut line = Line::new();
    match exit.how {
        Exit::Code(c) => line.text(b"exit_code=").num(c as u64),
        Exit::Signal(s) => line.text(b"signal=").num(s as u64),
    };
    line.text(b"\ntimed_out=").num(exit.timed_out as u64);
    line.text(b"\nended_ns=").num(ended).text(b"\ndone=1\n");
    line.flush(status);
    match exit.how {
        Exit::Code(c) => c,
        Exit::Signal(s) => 128 + s,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Job -> supervisor report: `ok|err`, then fields, as text.
fn send_report(fd: Fd, r: &Report, stage: &[u8], errno: i32) {
    let mut line = Line::new();
    line.text(b"landlock_abi=").num(r.landlock_abi).text(b"\nlandlock=");
    line.text(match r.landlock {
        0 => b"off" as &[u8],
        1 => b"none",
        2 => b"partial",
        _ => b"full",
    });
    line.text(b"\nseccomp_filters=").num(u64::from(r.filters)).text(b"\n");
    if !stage.is_empty() {
        line.text(b"error_stage=").text(stage).text(b"\nerror_errno=").num(errno as u64).text(b"\n");
    }
    line.flush(fd);
}

fn append_report(line: &mut Line, report: &[u8]) {
    if report.is_empty() {
        line.text(b"error_stage=report\n");
    } else {
        line.text(report);
        // A cut report still ends its last line: the next field must not
        // run into it (`error_errnoexit_code=127`).
        if report.last() != Some(&b'\n') {
            line.text(b"\n");
        }
    }
}

enum Exit {
    Code(i32),
    Signal(i32),
}

struct JobExit {
    how: Exit,
    timed_out: bool,
}

fn wait_job(job: i32, plan: &Plan<'_>, am_pid1: bool) -> JobExit {
    let start = sys::now(sys::CLOCK_MONOTONIC);
    let ms = 1_000_000u64;
    let mut deadline =
        if plan.timeout_ms > 0 { Some(start.saturating_add(plan.timeout_ms.saturating_mul(ms))) } else { None };
    let mut timed_out = false;
    let all = sys::SigSet::full();
    // A job that ended before the supervisor blocked SIGCHLD (before
    // `start`) left no signal to wait for: reap first.
    let mut reap = true;
    loop {
        // The deadline is checked on every turn, not only when the wait times
        // out: `sigtimedwait` returns a pending signal before it reports a
        // timeout, so a job that kept one pending at pid 1 (a stream of
        // SIGWINCH through its terminal, queued real-time signals) would
        // otherwise never reach its timeout or its grace period's SIGKILL.
        if let Some(d) = deadline {
            let now = sys::now(sys::CLOCK_MONOTONIC);
            if now >= d {
                if !timed_out {
                    timed_out = true;
                    sys::kill(job, sys::SIGTERM);
                    deadline = Some(now.saturating_add(plan.grace_ms.saturating_mul(ms)));
                } else {
                    // Grace is over: kill the job and, as pid 1, everything
                    // else in the container. Never kill(-1) outside our own
                    // pid namespace.
                    if am_pid1 {
                        sys::kill(-1, sys::SIGKILL);
                    }
                    sys::kill(job, sys::SIGKILL);
                    deadline = None;
                }
            }
        }
        if reap {
            // Reap everything that exited: the job and any orphans.
            reap = false;
            loop {
                match sys::wait_any_nohang() {
                    Some((pid, st)) if pid == job => {
                        let how = if st & 0x7f == 0 { Exit::Code((st >> 8) & 0xff) } else { Exit::Signal(st & 0x7f) };
                        return JobExit { how, timed_out };
                    }
                    Some(_) => continue,
                    None => break,
                }
            }
        }
        let timeout = deadline.map(|d| d.saturating_sub(sys::now(sys::CLOCK_MONOTONIC)));
        match sys::sigtimedwait(&all, timeout) {
            Ok(sys::SIGCHLD) => reap = true,
            Ok(sig) => {
                // Forward everything else to the job, as the kernel would
                // deliver it to a pid 1 (runc's jobs are pid 1): a signal
                // whose default action would end or stop the job reaches it
                // only if it handles it (`docker stop` of a job that does not
                // handle SIGTERM waits for the SIGKILL, as with runc).
                if pid1_would_take(job, sig) {
                    sys::kill(job, sig);
                }
            }
            // Timed out: the top of the loop acts on the deadline.
            Err(_) => {}
        }
    }
}

/// Whether a pid 1 would receive `sig` from outside its pid namespace: a
/// signal it handles, blocks or waits for, or one whose default action is to
/// ignore it or to continue (SIGCHLD, SIGCONT, SIGURG, SIGWINCH). SIGKILL and SIGSTOP never
/// come here: they reach the supervisor itself, the container's pid 1. When
/// the job's handlers cannot be read, the signal is forwarded.
fn pid1_would_take(job: i32, sig: i32) -> bool {
    const HARMLESS: [i32; 4] = [17, 18, 23, 28];
    if HARMLESS.contains(&sig) || !(1..=64).contains(&sig) {
        return true;
    }
    if waits_for_signals(job) {
        return true;
    }
    match handled_signals(job) {
        Some(mask) => mask & (1u64 << (sig - 1)) != 0,
        None => true,
    }
}

/// Whether `pid` sleeps in `sigtimedwait`/`sigwait` (tini, dumb-init): the
/// kernel then shows the signals waited for as unblocked, yet queues them.
/// Unknown (no `wchan`, or `0` where the kernel hides it) counts as waiting:
/// a signal is dropped only when the job certainly would not take it.
fn waits_for_signals(pid: i32) -> bool {
    let mut path = Line::new();
    path.text(b"/proc/").num(pid as u64).text(b"/wchan\0");
    let Ok(fd) = sys::open_read(path.bytes()) else { return true };
    let mut buf = [0u8; 64];
    let len = sys::read(fd, &mut buf).unwrap_or(0);
    sys::close(fd);
    let text = &buf[..len];
    text.is_empty()
        || text == b"0"
        || text.windows(13).any(|w| w == b"sigtimedwait.")
        || text.ends_with(b"sigtimedwait")
}

/// The signals `pid` would take as a pid 1: those it handles (`SigCgt` of
/// `/proc/<pid>/status`) and those it blocks (`SigBlk`: the kernel queues a
/// blocked signal even for a pid 1, and inits such as tini and dumb-init
/// block every signal and wait for them with `sigtimedwait`).
fn handled_signals(pid: i32) -> Option<u64> {
    let mut path = Line::new();
    path.text(b"/proc/").num(pid as u64).text(b"/status\0");
    let fd = sys::open_read(path.bytes()).ok()?;
    let mut buf = [0u8; 2048];
    let len = sys::read_full(fd, &mut buf);
    sys::close(fd);
    let text = &buf[..len];
    Some(status_mask(text, b"SigCgt:\t")? | status_mask(text, b"SigBlk:\t")?)
}

/// The hexadecimal mask after `key` in a `/proc/<pid>/status` text.
fn status_mask(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    let mut mask = 0u64;
    for &c in text[at..].iter().take_while(|c| c.is_ascii_hexdigit()) {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => c - b'A' + 10,
        };
        mask = (mask << 4) | u64::from(digit);
    }
    Some(mask)
}

/// A small stack buffer for status lines (no heap here).
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line { buf: [0; 512], len: 0 }
    }

    fn text(&mut self, s: &[u8]) -> &mut Line {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self
    }

    fn num(&mut self, mut n: u64) -> &mut Line {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.text(&digits[i..])
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn flush(&self, fd: Fd) {
        sys::write_all(fd, self.bytes());
    }
}
