//! What installing the `restricted` seccomp programs costs the job at every
//! launch and exec: the kernel checks, converts and JIT-compiles each program
//! and, for its action cache, emulates it once per syscall number.
//!
//! `cargo bench -p brig-profiles --bench seccomp_install` (as root or not:
//! each program is installed in a forked child with `no_new_privs`). Prints
//! p50/p99 per program, next to seccompiler's number-by-number policy program
//! for the same syscalls (the largest of the three programs brig installed
//! before its own compiler).

// A benchmark fails loudly on a bad setup; that is what `expect` is for here.
#![allow(clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use brig_profiles::seccomp::{compile, Arch};
use brig_profiles::ProfileSet;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

/// Installs `program` in a forked child; returns how long `seccomp(2)` took.
fn install_once(program: &[u8]) -> Duration {
    let mut pipe = [0i32; 2];
    // SAFETY: pipe writes two descriptors into the array we own.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the child only makes system calls and exits with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let fprog = libc::sock_fprog {
            len: u16::try_from(program.len() / 8).unwrap_or(u16::MAX),
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        let mut t0 = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        let mut t1 = t0;
        // SAFETY: plain system calls on memory the child owns; fprog points
        // at `program`, alive for the call.
        unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t0);
            let r = libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const _ as libc::c_ulong);
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t1);
            let ns: i64 = if r == 0 { (t1.tv_sec - t0.tv_sec) * 1_000_000_000 + (t1.tv_nsec - t0.tv_nsec) } else { -1 };
            libc::write(pipe[1], (&ns as *const i64).cast(), 8);
            libc::_exit(0);
        }
    }
    let mut ns = 0i64;
    // SAFETY: reads 8 bytes into `ns`, waits for our own child, closes our fds.
    unsafe {
        libc::close(pipe[1]);
        libc::read(pipe[0], (&mut ns as *mut i64).cast(), 8);
        libc::close(pipe[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
    assert!(ns >= 0, "installing the filter failed");
    Duration::from_nanos(ns as u64)
}

fn report(name: &str, program: &[u8], runs: usize) {
    let mut times: Vec<Duration> = (0..runs).map(|_| install_once(program)).collect();
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!("{name:<52} {:>5} insns  p50 {:>9.1?}  p99 {:>9.1?}", program.len() / 8, p(0.5), p(0.99));
}

fn main() {
    let runs = if std::env::args().any(|a| a == "--bench") { 300 } else { 5 };
    let set = ProfileSet::builtin();
    let section = set.get("restricted").expect("restricted").profile.seccomp.clone().expect("seccomp section");
    let arch = Arch::native().expect("x86_64 or aarch64");
    let compiled = compile(&section, arch).expect("compile");
    for (i, program) in compiled.programs.iter().enumerate() {
        report(&format!("brig restricted: program {}", i + 1), program, runs);
    }
    // seccompiler's own program for the same syscalls, one number at a time
    // (the conditional ones allowed outright: a little smaller than the real
    // thing, so a lower bound of what it cost).
    let target = match arch {
        Arch::X86_64 => TargetArch::x86_64,
        Arch::Aarch64 => TargetArch::aarch64,
    };
    let rules: BTreeMap<i64, Vec<SeccompRule>> = section
        .allow
        .iter()
        .chain(section.allow_if.iter().map(|r| &r.syscall))
        .filter_map(|n| arch.syscall_number(n))
        .map(|n| (n, vec![]))
        .collect();
    let filter = SeccompFilter::new(rules, SeccompAction::Errno(1), SeccompAction::Allow, target).expect("filter");
    let bpf: BpfProgram = filter.try_into().expect("bpf");
    let bytes: Vec<u8> = bpf
        .iter()
        .flat_map(|i| {
            let mut b = i.code.to_le_bytes().to_vec();
            b.extend([i.jt, i.jf]);
            b.extend(i.k.to_le_bytes());
            b
        })
        .collect();
    report("seccompiler, number by number (same syscalls)", &bytes, runs);
}
