//! `brig-probe`: runs inside test containers and tries one thing, printing
//! `ok` (with details) or `errno=NAME`, so that the tests assert the exact
//! failure. Runs as a normal glibc binary (the tests copy its libraries into
//! the rootfs).
//!
//! Usage: `brig-probe ATTACK [ARGS]`; see `main` for the list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::CString;

fn errno() -> String {
    format!("{:?}", nix::errno::Errno::last())
}

/// Prints the outcome of a raw syscall-style return value.
fn report(ret: libc::c_long) {
    if ret < 0 {
        println!("errno={}", errno());
    } else {
        println!("ok");
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn syscall0(nr: libc::c_long) -> libc::c_long {
    // SAFETY: test probe; the syscall takes no pointer arguments here.
    unsafe { libc::syscall(nr, 0, 0, 0, 0, 0) }
}

/// The cheapest filter there is: one `RET ALLOW` instruction. What a syscall
/// costs under it is the kernel's fixed price for having seccomp at all (the
/// slow syscall-entry path), the floor any filter is measured against.
fn install_allow_all_filter() {
    let program =
        [libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW }];
    let fprog = libc::sock_fprog { len: 1, filter: program.as_ptr() as *mut libc::sock_filter };
    // SAFETY: prctl and seccomp with a valid, live one-instruction program.
    let rc = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog as *const libc::sock_fprog)
    };
    assert_eq!(rc, 0, "installing the allow-all filter failed: {}", std::io::Error::last_os_error());
}

fn main() {
    // Run as Docker's `libnetwork-setkey` hook (`/proc/<pid>/exe` of a copy
    // of this probe standing in for dockerd): read the state, succeed.
    if std::env::args().next().is_some_and(|a| a == "libnetwork-setkey") {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    }
    // `hold`: stay alive (as a stand-in dockerd process) until the process
    // that started it is gone.
    if std::env::args().nth(1).as_deref() == Some("hold") {
        // SAFETY: getppid has no arguments and cannot fail.
        let parent = unsafe { libc::getppid() };
        // SAFETY: as above.
        while unsafe { libc::getppid() } == parent {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // The test's copy of this binary goes with it.
        if let Ok(exe) = std::fs::read_link("/proc/self/exe") {
            if exe
                .parent()
                .and_then(|d| d.file_name())
                .is_some_and(|n| n.to_string_lossy().starts_with("brig-test-dockerd-"))
            {
                let _ = std::fs::remove_file(&exe);
                if let Some(dir) = exe.parent() {
                    let _ = std::fs::remove_dir(dir);
                }
            }
        }
        std::process::exit(0);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    // SAFETY: raw syscalls with valid, live arguments, in a throwaway test
    // process whose only job is to try them.
    unsafe {
        match arg(0).as_str() {
            "mount" => {
                let _ = std::fs::create_dir_all("/tmp/m");
                report(libc::mount(
                    cstr("none").as_ptr(),
                    cstr("/tmp/m").as_ptr(),
                    cstr("tmpfs").as_ptr(),
                    0,
                    std::ptr::null(),
                ) as libc::c_long)
            }
            // Keep a signal pending at pid 1: queued real-time signals, sent
            // faster than one process can take them (ignored here, where the
            // supervisor forwards them, as is SIGTERM).
            "sigstream" => {
                let sig = libc::SIGRTMIN() + 1;
                libc::signal(sig, libc::SIG_IGN);
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                loop {
                    libc::kill(1, sig);
                }
            }
            // An init such as tini or dumb-init: SIGTERM blocked (no
            // handler), taken with sigwait.
            "sigwait-term" => {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                println!("waiting");
                let mut sig = 0;
                libc::sigwait(&set, &mut sig);
                println!("got-signal={sig}");
            }
            "unshare-user" => report(libc::unshare(libc::CLONE_NEWUSER) as libc::c_long),
            "unshare-net" => report(libc::unshare(libc::CLONE_NEWNET) as libc::c_long),
            "unshare-mount" => report(libc::unshare(libc::CLONE_NEWNS) as libc::c_long),
            "clone-newuser" => {
                // fork with a namespace flag through clone(2)
                let pid = libc::syscall(libc::SYS_clone, libc::CLONE_NEWUSER | libc::SIGCHLD, 0, 0, 0, 0);
                if pid == 0 {
                    libc::_exit(0);
                }
                if pid > 0 {
                    libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
                }
                report(pid)
            }
            "setns" => {
                let fd = libc::open(cstr("/proc/self/ns/net").as_ptr(), libc::O_RDONLY);
                if fd < 0 {
                    println!("errno={}", errno());
                } else {
                    report(libc::setns(fd, 0) as libc::c_long)
                }
            }
            "ptrace" => report(libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0)),
            "ptrace-attach" => {
                let pid: i32 = arg(1).parse().unwrap();
                let r = libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0);
                if r == 0 {
                    libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
                }
                report(r)
            }
            "pid-of" => {
                // The first pid whose cmdline contains the argument.
                let needle = arg(1);
                let mut found = None;
                for e in std::fs::read_dir("/proc").unwrap().flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if let Ok(pid) = name.parse::<i32>() {
                        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                        if pid != std::process::id() as i32 && String::from_utf8_lossy(&cmd).contains(&needle) {
                            found = Some(pid);
                            break;
                        }
                    }
                }
                match found {
                    Some(p) => println!("ok pid={p}"),
                    None => println!("errno=ESRCH"),
                }
            }
            "bpf" => {
                // BPF_MAP_CREATE with a zeroed attr: EPERM from seccomp, EINVAL if allowed.
                let attr = [0u8; 128];
                report(libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), attr.len()))
            }
            "keyctl" => report(libc::syscall(libc::SYS_keyctl, 1 /* JOIN_SESSION_KEYRING */, 0, 0, 0, 0)),
            "add_key" => report(libc::syscall(
                libc::SYS_add_key,
                cstr("user").as_ptr(),
                cstr("brig").as_ptr(),
                b"x".as_ptr(),
                1,
                -3, /* KEY_SPEC_SESSION_KEYRING */
            )),
            "perf_event_open" => {
                // A software event (task clock) on ourselves.
                let mut attr = [0u8; 128];
                attr[0..4].copy_from_slice(&1u32.to_le_bytes()); // PERF_TYPE_SOFTWARE
                attr[4..8].copy_from_slice(&128u32.to_le_bytes()); // size
                attr[8..16].copy_from_slice(&1u64.to_le_bytes()); // PERF_COUNT_SW_TASK_CLOCK
                report(libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0))
            }
            "io_uring_setup" => {
                let params = [0u8; 120];
                report(libc::syscall(libc::SYS_io_uring_setup, 4, params.as_ptr()))
            }
            "userfaultfd" => report(libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC)),
            "kexec_load" => report(libc::syscall(libc::SYS_kexec_load, 0, 0, 0, 0)),
            "init_module" => report(libc::syscall(libc::SYS_init_module, std::ptr::null::<u8>(), 0, cstr("").as_ptr())),
            "finit_module" => report(libc::syscall(libc::SYS_finit_module, -1, cstr("").as_ptr(), 0)),
            "open_by_handle_at" => {
                let handle = [0u8; 136];
                report(libc::syscall(libc::SYS_open_by_handle_at, libc::AT_FDCWD, handle.as_ptr(), libc::O_RDONLY))
            }
            // A raw syscall number, no arguments (unknown and x32 numbers).
            "syscall" => report(syscall0(arg(1).parse().unwrap())),
            // clone3 with no arguments: EINVAL from the kernel, ENOSYS from a
            // filter that hides it (glibc then falls back to clone).
            "clone3" => report(libc::syscall(libc::SYS_clone3, 0, 0)),
            "personality" => report(libc::personality(0x0040000 /* ADDR_NO_RANDOMIZE */) as libc::c_long),
            "raw-socket" => report(libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) as libc::c_long),
            "packet-socket" => report(libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) as libc::c_long),
            "tcp-socket" => {
                report(libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) as libc::c_long)
            }
            "chmod-suid" => {
                let path = arg(1);
                let _ = std::fs::write(&path, b"#!/bin/sh\n");
                report(libc::chmod(cstr(&path).as_ptr(), 0o4755) as libc::c_long)
            }
            // Creating a file with the setuid bit by each call that takes a
            // mode (`chmod-suid` sets it afterwards); and openat2, whose mode
            // seccomp cannot read.
            // (`open` and `creat` are x86_64's; aarch64 has only openat.)
            #[cfg(target_arch = "x86_64")]
            "open-suid" => {
                report(libc::syscall(libc::SYS_open, cstr(&arg(1)).as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o4755))
            }
            #[cfg(not(target_arch = "x86_64"))]
            "open-suid" | "creat-suid" => report(libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                cstr(&arg(1)).as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
                0o4755,
            )),
            "openat-suid" => report(libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                cstr(&arg(1)).as_ptr(),
                libc::O_CREAT | libc::O_WRONLY,
                0o4755,
            )),
            "tmpfile-suid" => report(libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD,
                cstr(&arg(1)).as_ptr(),
                libc::O_TMPFILE | libc::O_WRONLY,
                0o2755,
            )),
            #[cfg(target_arch = "x86_64")]
            "creat-suid" => report(libc::syscall(libc::SYS_creat, cstr(&arg(1)).as_ptr(), 0o4755)),
            "mknod-suid" => report(libc::syscall(
                libc::SYS_mknodat,
                libc::AT_FDCWD,
                cstr(&arg(1)).as_ptr(),
                libc::S_IFREG | 0o6755,
                0,
            )),
            "openat2" => {
                let how = [(libc::O_CREAT | libc::O_WRONLY) as u64, 0o4755u64, 0u64];
                report(libc::syscall(
                    libc::SYS_openat2,
                    libc::AT_FDCWD,
                    cstr(&arg(1)).as_ptr(),
                    how.as_ptr(),
                    std::mem::size_of_val(&how),
                ))
            }
            // An ordinary open of an existing file whose mode register holds
            // the setuid bits (no O_CREAT: the mode is not read).
            "open-no-create" => {
                report(libc::syscall(libc::SYS_openat, libc::AT_FDCWD, cstr(&arg(1)).as_ptr(), libc::O_RDONLY, 0o7777))
            }
            // Run code that is not in the image: a copy of this probe in a
            // memfd (flags: `plain` none, `exec` MFD_EXEC), executed through
            // /proc/self/fd (`via-fd`) or execveat (`execveat`). The copy
            // prints `ok` (`exec-ok`) if it ran.
            "memfd-exec" => {
                let flags: libc::c_uint = if arg(1) == "exec" {
                    0x10 /* MFD_EXEC */
                } else {
                    0
                };
                let fd = libc::memfd_create(cstr("payload").as_ptr(), flags);
                if fd < 0 {
                    println!("errno={}", errno());
                    return;
                }
                let me = std::fs::read("/proc/self/exe").unwrap();
                assert_eq!(libc::write(fd, me.as_ptr().cast(), me.len()), me.len() as isize);
                let argv = [cstr("brig-probe"), cstr("exec-ok")];
                let argv_ptrs = [argv[0].as_ptr(), argv[1].as_ptr(), std::ptr::null()];
                let envp = [std::ptr::null::<libc::c_char>()];
                if arg(2) == "execveat" {
                    libc::syscall(
                        libc::SYS_execveat,
                        fd,
                        cstr("").as_ptr(),
                        argv_ptrs.as_ptr(),
                        envp.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    );
                } else {
                    libc::execve(cstr(&format!("/proc/self/fd/{fd}")).as_ptr(), argv_ptrs.as_ptr(), envp.as_ptr());
                }
                println!("errno={}", errno());
            }
            "exec-ok" => println!("ok"),
            "write" => match std::fs::write(arg(1), b"brig-probe\n") {
                Ok(()) => println!("ok"),
                Err(e) => println!("errno={:?}", nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))),
            },
            "read" => match std::fs::read(arg(1)) {
                Ok(b) => println!("ok bytes={}", b.len()),
                Err(e) => println!("errno={:?}", nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0))),
            },
            "kill" => {
                let pid: i32 = arg(1).parse().unwrap();
                let sig: i32 = arg(2).parse().unwrap_or(0);
                report(libc::kill(pid, sig) as libc::c_long)
            }
            "fork-bomb" => {
                // Fork children that sleep until the pids limit stops us.
                let mut n = 0;
                loop {
                    let pid = libc::fork();
                    if pid == 0 {
                        libc::sleep(30);
                        libc::_exit(0);
                    }
                    if pid < 0 {
                        println!("errno={} forked={n}", errno());
                        break;
                    }
                    n += 1;
                    if n >= 100_000 {
                        println!("ok forked={n}");
                        break;
                    }
                }
                libc::kill(0, libc::SIGKILL);
            }
            "mem-bomb" => {
                // Touch memory until the OOM killer stops us.
                let mut chunks: Vec<Vec<u8>> = Vec::new();
                let mb: usize = arg(1).parse().unwrap_or(4096);
                for _ in 0..mb {
                    let mut v = vec![0u8; 1 << 20];
                    for i in (0..v.len()).step_by(4096) {
                        v[i] = 1;
                    }
                    chunks.push(v);
                }
                println!("ok allocated={}MiB", chunks.len());
            }
            "getpid-loop" | "getpid-loop-floor" => {
                let n: u64 = arg(1).parse().unwrap_or(10_000_000);
                if arg(0) == "getpid-loop-floor" {
                    install_allow_all_filter();
                }
                let start = std::time::Instant::now();
                for _ in 0..n {
                    syscall0(libc::SYS_getpid);
                }
                let ns = start.elapsed().as_nanos() as f64 / n as f64;
                println!("ok ns_per_call={ns:.2}");
            }
            "status" => {
                let s = std::fs::read_to_string("/proc/self/status").unwrap();
                for l in s.lines().filter(|l| {
                    ["NoNewPrivs", "Seccomp", "CapEff", "CapBnd", "CapPrm"].iter().any(|k| l.starts_with(k))
                }) {
                    println!("{l}");
                }
            }
            other => {
                eprintln!("brig-probe: unknown attack `{other}`");
                std::process::exit(2);
            }
        }
    }
}
