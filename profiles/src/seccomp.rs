//! Compiles a profile's `[seccomp]` section to classic BPF with `seccompiler`.
//!
//! Three programs are stacked (installed in this order):
//! 1. **policy**: allowed syscalls (with their argument conditions) pass,
//!    every other syscall fails with `EPERM`;
//! 2. **enosys**: the profile's `enosys` list fails with `ENOSYS`;
//! 3. **known**: every syscall number the architecture defines passes, any
//!    other number (unknown or newer syscalls, x32 numbers on x86_64) fails
//!    with `ENOSYS`.
//!
//! The kernel runs every filter and keeps the most restrictive action; among
//! equal actions (two errnos) the most recently installed filter's value wins,
//! hence the order. seccompiler emits one match action per filter, which is
//! why this takes three programs rather than one. Unconditionally allowed
//! syscalls are constant in all three programs, so the kernel's seccomp action
//! cache (Linux >= 5.11) skips the filters for them entirely.

use std::collections::BTreeMap;
use std::str::FromStr;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use sha2::{Digest, Sha256};

use crate::model::{ConditionalRule, SeccompSection};

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// A CPU architecture brig compiles filters for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this binary runs on.
    pub fn native() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    fn target(self) -> TargetArch {
        match self {
            Arch::X86_64 => TargetArch::x86_64,
            Arch::Aarch64 => TargetArch::aarch64,
        }
    }

    /// The syscall number of `name` on this architecture.
    pub fn syscall_number(self, name: &str) -> Option<i64> {
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok().map(|s| i64::from(s.id())),
            Arch::Aarch64 => syscalls::aarch64::Sysno::from_str(name).ok().map(|s| i64::from(s.id())),
        }
    }

    /// `AUDIT_ARCH_*`, what seccomp reports in `seccomp_data.arch`.
    fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 => 0xC000_003E,
            Arch::Aarch64 => 0xC000_00B7,
        }
    }

    fn all_syscalls(self) -> Vec<i64> {
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::iter().map(|s| i64::from(s.id())).collect(),
            Arch::Aarch64 => syscalls::aarch64::Sysno::iter().map(|s| i64::from(s.id())).collect(),
        }
    }
}

/// Whether `name` is a syscall on any architecture brig supports.
pub fn is_known_syscall(name: &str) -> bool {
    [Arch::X86_64, Arch::Aarch64].iter().any(|a| a.syscall_number(name).is_some())
}

/// Compiled seccomp programs for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledSeccomp {
    pub arch: Arch,
    /// Raw `struct sock_filter` arrays, in installation order.
    pub programs: Vec<Vec<u8>>,
    /// `sha256:` over the programs; recorded in the run's attestation.
    pub digest: String,
}

impl CompiledSeccomp {
    /// Total number of BPF instructions.
    pub fn instructions(&self) -> usize {
        self.programs.iter().map(|p| p.len() / 8).sum()
    }
}

/// Why a seccomp section could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// `{0}` is not a syscall on x86_64 or aarch64
    #[error("`{0}` is not a syscall on x86_64 or aarch64")]
    UnknownSyscall(String),
    #[error("seccomp rule for `{syscall}`: {why}")]
    BadRule { syscall: String, why: String },
    #[error("building the {arch} known-syscalls filter: {why}")]
    Program { arch: &'static str, why: String },
    #[error("compiling the {arch} filter: {source}")]
    Backend {
        arch: &'static str,
        #[source]
        source: seccompiler::BackendError,
    },
}

fn check_names(section: &SeccompSection) -> Result<(), SeccompError> {
    let names = section.allow.iter().chain(section.enosys.iter()).chain(section.allow_if.iter().map(|r| &r.syscall));
    for name in names {
        if !is_known_syscall(name) {
            return Err(SeccompError::UnknownSyscall(name.clone()));
        }
    }
    Ok(())
}

fn conditional_rules(rule: &ConditionalRule) -> Result<Vec<SeccompRule>, SeccompError> {
    let bad = |why: String| SeccompError::BadRule { syscall: rule.syscall.clone(), why };
    if rule.args.is_empty() {
        return Err(bad("`args` is empty; list the syscall under `allow` instead".into()));
    }
    // Every condition must hold (AND); each condition accepts any of its values
    // (OR). BPF rules are ANDs of comparisons, so expand the product.
    let mut combos: Vec<Vec<SeccompCondition>> = vec![vec![]];
    for cond in &rule.args {
        if cond.index > 5 {
            return Err(bad(format!("argument index {} is out of range 0..=5", cond.index)));
        }
        if cond.any_of.is_empty() {
            return Err(bad(format!("argument {} has an empty `any_of`", cond.index)));
        }
        let len = if cond.dword { SeccompCmpArgLen::Dword } else { SeccompCmpArgLen::Qword };
        let mut next = Vec::new();
        for combo in &combos {
            for &value in &cond.any_of {
                if cond.dword && value > u64::from(u32::MAX) {
                    return Err(bad(format!("value {value:#x} does not fit a 32-bit argument")));
                }
                let op = match cond.mask {
                    Some(mask) => SeccompCmpOp::MaskedEq(mask),
                    None => SeccompCmpOp::Eq,
                };
                let c = SeccompCondition::new(cond.index, len.clone(), op, value).map_err(|e| bad(e.to_string()))?;
                let mut v = combo.clone();
                v.push(c);
                next.push(v);
            }
        }
        combos = next;
        if combos.len() > 256 {
            return Err(bad("too many value combinations (more than 256)".into()));
        }
    }
    combos.into_iter().map(|c| SeccompRule::new(c).map_err(|e| bad(e.to_string()))).collect()
}

fn program(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
    arch: Arch,
) -> Result<Vec<u8>, SeccompError> {
    let backend = |source| SeccompError::Backend { arch: arch.name(), source };
    let filter = SeccompFilter::new(rules, mismatch, matched, arch.target()).map_err(backend)?;
    let bpf: BpfProgram = filter.try_into().map_err(backend)?;
    Ok(to_bytes(&bpf))
}

/// A program as the raw `struct sock_filter` array the supervisor installs.
fn to_bytes(bpf: &[sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bpf.len() * 8);
    for insn in bpf {
        out.extend_from_slice(&insn.code.to_le_bytes());
        out.push(insn.jt);
        out.push(insn.jf);
        out.extend_from_slice(&insn.k.to_le_bytes());
    }
    out
}

// Classic BPF, as seccomp takes it (linux/filter.h, linux/seccomp.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGT_K: u16 = 0x25;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

/// The syscall numbers `arch` defines, as sorted, disjoint inclusive ranges.
fn known_ranges(arch: Arch) -> Vec<(u32, u32)> {
    let mut numbers: Vec<u32> = arch.all_syscalls().into_iter().filter_map(|n| u32::try_from(n).ok()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for n in numbers {
        match ranges.last_mut() {
            Some((_, hi)) if *hi + 1 == n => *hi = n,
            _ => ranges.push((n, n)),
        }
    }
    ranges
}

/// The "known" program: every number `arch` defines passes, any other
/// (unknown or newer syscalls, x32 numbers on x86_64) fails with `ENOSYS`; a
/// foreign architecture kills the process, as seccompiler's programs do.
///
/// Written out here rather than by seccompiler because seccompiler matches
/// numbers one by one: its version of this program is ~1,900 instructions,
/// which the kernel converts and JIT-compiles at every launch and exec (about
/// a millisecond), while as ranges it is a few dozen.
fn known_program(arch: Arch) -> Result<Vec<u8>, SeccompError> {
    let ranges = known_ranges(arch);
    // Layout: arch check (3), load nr (1), two jumps per range, ENOSYS, ALLOW.
    let enosys = 4 + 2 * ranges.len();
    let allow = enosys + 1;
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    let mut insns = vec![
        insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
        insn(BPF_JEQ_K, 1, 0, arch.audit_arch()),
        insn(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
    ];
    // Jump offsets count from the next instruction; the ranges are sorted,
    // so a number below a range's start is in none of them.
    let offset = |from: usize, to: usize| {
        u8::try_from(to - from - 1).map_err(|_| SeccompError::Program {
            arch: arch.name(),
            why: "too many syscall number ranges for one jump".into(),
        })
    };
    for (lo, hi) in ranges {
        let at = insns.len();
        insns.push(insn(BPF_JGE_K, 0, offset(at, enosys)?, lo));
        insns.push(insn(BPF_JGT_K, 0, offset(at + 1, allow)?, hi));
    }
    insns.push(insn(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS));
    insns.push(insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW));
    Ok(to_bytes(&insns))
}

/// Compiles `section` for `arch`.
pub fn compile(section: &SeccompSection, arch: Arch) -> Result<CompiledSeccomp, SeccompError> {
    check_names(section)?;

    let mut policy: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for name in &section.allow {
        if let Some(nr) = arch.syscall_number(name) {
            // An unconditional allow wins over any conditional rule.
            policy.insert(nr, vec![]);
        }
    }
    for rule in &section.allow_if {
        let Some(nr) = arch.syscall_number(&rule.syscall) else { continue };
        let compiled = conditional_rules(rule)?;
        match policy.get_mut(&nr) {
            Some(existing) if existing.is_empty() => {} // already unconditional
            Some(existing) => existing.extend(compiled),
            None => {
                policy.insert(nr, compiled);
            }
        }
    }
    let mut programs = vec![program(policy, SeccompAction::Errno(EPERM), SeccompAction::Allow, arch)?];

    let enosys: BTreeMap<i64, Vec<SeccompRule>> =
        section.enosys.iter().filter_map(|n| arch.syscall_number(n)).map(|nr| (nr, vec![])).collect();
    if !enosys.is_empty() {
        programs.push(program(enosys, SeccompAction::Allow, SeccompAction::Errno(ENOSYS), arch)?);
    }

    programs.push(known_program(arch)?);

    let mut h = Sha256::new();
    h.update(arch.name().as_bytes());
    for p in &programs {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let digest = format!("sha256:{}", hex::encode(h.finalize()));
    Ok(CompiledSeccomp { arch, programs, digest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ArgCondition;

    fn section() -> SeccompSection {
        SeccompSection {
            allow: vec!["read".into(), "write".into(), "exit_group".into()],
            allow_if: vec![ConditionalRule {
                syscall: "socket".into(),
                args: vec![
                    ArgCondition { index: 0, mask: None, any_of: vec![1, 2, 10], dword: true },
                    ArgCondition { index: 1, mask: Some(0xf), any_of: vec![1, 2], dword: true },
                ],
                comment: String::new(),
            }],
            enosys: vec!["clone3".into()],
        }
    }

    #[test]
    fn compiles_for_both_arches() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let c = compile(&section(), arch).unwrap();
            assert_eq!(c.programs.len(), 3);
            assert!(c.instructions() < 4096 * 3);
            assert!(c.programs.iter().all(|p| p.len() % 8 == 0 && p.len() / 8 < 4096));
            assert!(c.digest.starts_with("sha256:"));
        }
        let a = compile(&section(), Arch::X86_64).unwrap();
        let b = compile(&section(), Arch::Aarch64).unwrap();
        assert_ne!(a.digest, b.digest);
    }

    /// Runs a seccomp cBPF program (the subset brig and seccompiler emit)
    /// on a syscall number and architecture; returns the action.
    fn run_bpf(program: &[u8], nr: u32, audit_arch: u32) -> u32 {
        let insns: Vec<(u16, u8, u8, u32)> = program
            .chunks(8)
            .map(|c| (u16::from_le_bytes([c[0], c[1]]), c[2], c[3], u32::from_le_bytes([c[4], c[5], c[6], c[7]])))
            .collect();
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let (code, jt, jf, k) = insns[pc];
            pc += 1;
            match code {
                BPF_LD_W_ABS => acc = if k == SECCOMP_DATA_ARCH { audit_arch } else { nr },
                0x05 => pc += k as usize, // BPF_JMP|BPF_JA
                BPF_JEQ_K | BPF_JGT_K | BPF_JGE_K => {
                    let taken = match code {
                        BPF_JEQ_K => acc == k,
                        BPF_JGT_K => acc > k,
                        _ => acc >= k,
                    };
                    pc += usize::from(if taken { jt } else { jf });
                }
                BPF_RET_K => return k,
                other => panic!("unexpected BPF opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn known_program_matches_the_per_number_filter_and_stays_small() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let known = known_program(arch).unwrap();
            assert!(known.len() / 8 < 64, "{}: {} instructions", arch.name(), known.len() / 8);
            // What seccompiler builds from the same list, number by number.
            let rules: BTreeMap<i64, Vec<SeccompRule>> = arch.all_syscalls().into_iter().map(|n| (n, vec![])).collect();
            let reference = program(rules, SeccompAction::Errno(ENOSYS), SeccompAction::Allow, arch).unwrap();
            let x32 = 0x4000_0000u32;
            let probes = (0..1100u32).chain([x32, x32 + 39, x32 + 512, 0x7fff_ffff, u32::MAX]);
            for nr in probes {
                let want = run_bpf(&reference, nr, arch.audit_arch());
                assert_eq!(run_bpf(&known, nr, arch.audit_arch()), want, "{} nr {nr:#x}", arch.name());
            }
            let getpid = arch.syscall_number("getpid").unwrap() as u32;
            assert_eq!(run_bpf(&known, getpid, arch.audit_arch()), SECCOMP_RET_ALLOW);
            assert_eq!(run_bpf(&known, 1000, arch.audit_arch()), SECCOMP_RET_ERRNO | ENOSYS);
            assert_eq!(run_bpf(&known, x32 + getpid, arch.audit_arch()), SECCOMP_RET_ERRNO | ENOSYS);
            // A foreign architecture is killed, as by seccompiler's filters.
            let foreign = if arch == Arch::X86_64 { Arch::Aarch64 } else { Arch::X86_64 };
            assert_eq!(run_bpf(&known, getpid, foreign.audit_arch()), SECCOMP_RET_KILL_PROCESS);
            assert_eq!(run_bpf(&reference, getpid, foreign.audit_arch()), SECCOMP_RET_KILL_PROCESS);
        }
    }

    #[test]
    fn digest_is_deterministic_and_content_sensitive() {
        let a = compile(&section(), Arch::X86_64).unwrap();
        assert_eq!(a, compile(&section(), Arch::X86_64).unwrap());
        let mut s = section();
        s.allow.push("getpid".into());
        assert_ne!(a.digest, compile(&s, Arch::X86_64).unwrap().digest);
    }

    #[test]
    fn unknown_names_are_errors() {
        let mut s = section();
        s.allow.push("not_a_syscall".into());
        let err = compile(&s, Arch::X86_64).unwrap_err();
        assert!(err.to_string().contains("not_a_syscall"), "{err}");
    }

    #[test]
    fn arch_specific_names_are_skipped_not_errors() {
        // `open` exists on x86_64 but not on aarch64.
        let s = SeccompSection { allow: vec!["open".into()], ..Default::default() };
        compile(&s, Arch::Aarch64).unwrap();
        compile(&s, Arch::X86_64).unwrap();
    }

    #[test]
    fn bad_conditions_are_rejected() {
        let mut s = section();
        s.allow_if[0].args[0].index = 6;
        assert!(compile(&s, Arch::X86_64).is_err());
        let mut s = section();
        s.allow_if[0].args[0].any_of.clear();
        assert!(compile(&s, Arch::X86_64).is_err());
    }
}
