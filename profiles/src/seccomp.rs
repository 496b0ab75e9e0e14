//! Compiles a profile's `[seccomp]` section to one classic BPF program.
//!
//! brig classifies every syscall number itself (`ENOSYS` list and unknown
//! numbers, allowed, conditional, denied) and writes the result out as a
//! binary search over intervals; the syscalls with argument conditions jump
//! to a program of their rules alone, compiled by `seccompiler`. See
//! `job_program` for why, and `docs/profiles.md` for the figures.
//! Unconditionally allowed syscalls read no argument on their path, so the
//! kernel's seccomp action cache (Linux >= 5.11) skips the filter for them.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// brig's seccomp filter.
///
/// Compiled to one classic-BPF program ([`compile`]): the `enosys` list and
/// numbers the architecture does not define get `ENOSYS` (`clone3`, whose
/// arguments a filter cannot inspect, so that libc falls back to `clone`);
/// allowed syscalls pass, conditional ones when a rule holds; the rest get
/// `EPERM`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeccompSection {
    /// Syscalls allowed without conditions.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Syscalls allowed when their arguments match.
    #[serde(default)]
    pub allow_if: Vec<ConditionalRule>,
    /// Syscalls that fail with `ENOSYS`.
    #[serde(default)]
    pub enosys: Vec<String>,
}

/// A conditional allow rule: the syscall passes if, for every condition, the
/// argument matches one of the condition's values.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalRule {
    pub syscall: String,
    pub args: Vec<ArgCondition>,
    /// Why the rule exists (shown by `brig profile show`).
    #[serde(default)]
    pub comment: String,
}

/// One argument condition.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArgCondition {
    /// Argument index, 0..=5.
    pub index: u8,
    /// Compare `arg & mask` instead of `arg`.
    pub mask: Option<u64>,
    /// The argument (masked) must equal one of these.
    pub any_of: Vec<u64>,
    /// Compare only the low 32 bits (for `int` arguments).
    #[serde(default = "yes")]
    pub dword: bool,
}

fn yes() -> bool {
    true
}

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

    /// Every syscall number the architecture defines. Not `Sysno::iter()`:
    /// syscalls 0.6 stops it one short of the table's last entry.
    fn all_syscalls(self) -> Vec<i64> {
        use syscalls::{aarch64, x86_64};
        match self {
            Arch::X86_64 => (x86_64::Sysno::first().id()..=x86_64::Sysno::last().id())
                .filter_map(|n| x86_64::Sysno::new(usize::try_from(n).ok()?))
                .map(|s| i64::from(s.id()))
                .collect(),
            Arch::Aarch64 => (aarch64::Sysno::first().id()..=aarch64::Sysno::last().id())
                .filter_map(|n| aarch64::Sysno::new(usize::try_from(n).ok()?))
                .map(|s| i64::from(s.id()))
                .collect(),
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
    #[error("building the {arch} seccomp filter: {why}")]
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

/// seccompiler's program for `rules` (syscall number -> argument rules).
fn seccompiler_program(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
    arch: Arch,
) -> Result<BpfProgram, SeccompError> {
    let backend = |source| SeccompError::Backend { arch: arch.name(), source };
    let filter = SeccompFilter::new(rules, mismatch, matched, arch.target()).map_err(backend)?;
    BpfProgram::try_from(filter).map_err(backend)
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
const BPF_JA: u16 = 0x05;

/// The most instructions a classic BPF program may have (`BPF_MAXINSNS`).
const MAX_INSNS: usize = 4096;

/// Every syscall number, split into consecutive intervals `(lo, hi, action)`
/// that together cover `0..=u32::MAX`, sorted. `classify` returns `None` for
/// a number the search never sees (dispatched before it): it joins whichever
/// interval it borders, so it costs no interval of its own.
fn partition(classify: impl Fn(u32) -> Option<u32>, max_known: u32) -> Vec<(u32, u32, u32)> {
    let mut out: Vec<(u32, u32, u32)> = Vec::new();
    let mut pending: Option<u32> = None; // first of a run of don't-care numbers
    for n in 0..=max_known {
        let Some(action) = classify(n) else {
            match out.last_mut() {
                Some((_, hi, _)) => *hi = n,
                None => pending = pending.or(Some(n)),
            }
            continue;
        };
        match out.last_mut() {
            Some((_, hi, a)) if *a == action => *hi = n,
            _ => out.push((pending.take().unwrap_or(n), n, action)),
        }
    }
    let above = SECCOMP_RET_ERRNO | ENOSYS;
    match out.last_mut() {
        Some((_, hi, a)) if *a == above => *hi = u32::MAX,
        _ => out.push((pending.unwrap_or(max_known.saturating_add(1)), u32::MAX, above)),
    }
    out
}

/// A search over `intervals` (sorted, consecutive, covering every number
/// from the first's `lo` to the last's `hi`), with the syscall number in the
/// accumulator: returns the action of the interval that holds it. Halved
/// until a few intervals are left, then tried in order: the kernel runs it,
/// and emulates it for each syscall number at installation, in about
/// 2·log₂(intervals) steps. Every jump is short or a `JA`, so no offset can
/// overflow.
fn interval_tree(intervals: &[(u32, u32, u32)]) -> Result<Vec<sock_filter>, SeccompError> {
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    if intervals.len() <= 4 {
        let mut out = Vec::with_capacity(2 * intervals.len());
        for (i, &(_, hi, action)) in intervals.iter().enumerate() {
            if i + 1 < intervals.len() {
                // Above this interval: try the next (skip the return).
                out.push(insn(BPF_JGT_K, 1, 0, hi));
            }
            out.push(insn(BPF_RET_K, 0, 0, action));
        }
        return Ok(out);
    }
    let mid = intervals.len() / 2;
    let (below, above) = (interval_tree(&intervals[..mid])?, interval_tree(&intervals[mid..])?);
    let skip = u32::try_from(below.len())
        .map_err(|_| SeccompError::Program { arch: "native", why: "too many syscall number intervals".into() })?;
    let mut out = Vec::with_capacity(2 + below.len() + above.len());
    // At or above the middle interval's start: jump over the lower half.
    out.push(insn(BPF_JGE_K, 0, 1, intervals[mid].0));
    out.push(insn(BPF_JA, 0, 0, skip));
    out.extend(below);
    out.extend(above);
    Ok(out)
}

/// The job's one program. For the native architecture (any other kills the
/// process):
/// - the `enosys` list, and every number `arch` does not define (syscalls
///   newer than brig's table, x32 numbers on x86_64), fail with `ENOSYS`;
/// - `allowed` pass;
/// - the numbers of `conditional` pass when one of their argument rules
///   does, else fail with `EPERM`;
/// - any other syscall fails with `EPERM`.
///
/// The numbers are classified here and written out as a search over
/// intervals; only the conditional syscalls jump to a `seccompiler` program
/// of their rules alone. seccompiler's program for a whole profile matches
/// numbers one by one (~1,500 instructions for `restricted`, plus the `ENOSYS`
/// programs it takes one filter each for), and the kernel checks, converts,
/// JIT-compiles and, for its action cache, emulates every filter for every
/// syscall number at each installation: about a millisecond per launch and
/// exec here (`cargo bench -p brig-profiles --bench seccomp_install`).
/// Numbers allowed outright never read an argument on their path, so the
/// kernel's action cache (Linux >= 5.11) skips the filter for them entirely.
fn job_program(
    arch: Arch,
    allowed: &BTreeSet<u32>,
    conditional: BTreeMap<i64, Vec<SeccompRule>>,
    enosys: &BTreeSet<u32>,
) -> Result<Vec<u8>, SeccompError> {
    let too_big = |n: usize| SeccompError::Program {
        arch: arch.name(),
        why: format!("the filter would have {n} instructions, more than the kernel's {MAX_INSNS}"),
    };
    let insn = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    let known: BTreeSet<u32> = arch.all_syscalls().into_iter().filter_map(|n| u32::try_from(n).ok()).collect();
    let max_known = known.last().copied().unwrap_or(0);
    // `ENOSYS` wins over any allowance (libc falls back from `clone3` only
    // on `ENOSYS`): a conditional syscall on the list is not dispatched.
    let conditional: BTreeMap<i64, Vec<SeccompRule>> = conditional
        .into_iter()
        .filter(|(n, _)| u32::try_from(*n).is_ok_and(|n| known.contains(&n) && !enosys.contains(&n)))
        .collect();
    let conditional_numbers: Vec<u32> = conditional.keys().filter_map(|&n| u32::try_from(n).ok()).collect();
    let classify = |n: u32| {
        Some(if enosys.contains(&n) || !known.contains(&n) {
            SECCOMP_RET_ERRNO | ENOSYS
        } else if conditional_numbers.binary_search(&n).is_ok() {
            return None;
        } else if allowed.contains(&n) {
            SECCOMP_RET_ALLOW
        } else {
            SECCOMP_RET_ERRNO | EPERM
        })
    };
    let tree = interval_tree(&partition(classify, max_known))?;
    let rules: Vec<sock_filter> = if conditional.is_empty() {
        Vec::new()
    } else {
        seccompiler_program(conditional, SeccompAction::Errno(EPERM), SeccompAction::Allow, arch)?
    };
    // Layout: arch check (3), load nr (1), a jump pair per conditional
    // number, the search, then the rules program (which checks the
    // architecture and loads the number again).
    let rules_start = 4 + 2 * conditional_numbers.len() + tree.len();
    let total = rules_start + rules.len();
    if total > MAX_INSNS {
        return Err(too_big(total));
    }
    let mut insns = Vec::with_capacity(total);
    insns.extend([
        insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
        insn(BPF_JEQ_K, 1, 0, arch.audit_arch()),
        insn(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
    ]);
    for nr in conditional_numbers {
        let at = insns.len();
        // Equal: fall through to the long jump; else skip it.
        insns.push(insn(BPF_JEQ_K, 0, 1, nr));
        let distance = u32::try_from(rules_start - (at + 2)).map_err(|_| too_big(total))?;
        insns.push(insn(BPF_JA, 0, 0, distance));
    }
    insns.extend(tree);
    debug_assert_eq!(insns.len(), rules_start);
    insns.extend(rules);
    Ok(to_bytes(&insns))
}

/// Per syscall number, the argument rules of which one must hold.
type ConditionalRules = BTreeMap<i64, Vec<SeccompRule>>;

/// The numbers `section` allows outright, and the rules of those it allows
/// only with argument conditions. An unconditional allow wins over any
/// conditional rule for the same syscall.
fn policy_rules(section: &SeccompSection, arch: Arch) -> Result<(BTreeSet<u32>, ConditionalRules), SeccompError> {
    let allowed: BTreeSet<u32> =
        section.allow.iter().filter_map(|n| arch.syscall_number(n)).filter_map(|n| u32::try_from(n).ok()).collect();
    let mut conditional: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for rule in &section.allow_if {
        let Some(nr) = arch.syscall_number(&rule.syscall) else { continue };
        // Checked even when an unconditional allow makes it moot.
        let compiled = conditional_rules(rule)?;
        if u32::try_from(nr).is_ok_and(|n| allowed.contains(&n)) {
            continue;
        }
        conditional.entry(nr).or_default().extend(compiled);
    }
    Ok((allowed, conditional))
}

/// What a compiled program is a function of: `section` (its canonical JSON
/// form) and `arch`. build.rs compiles the built-in profiles' sections ahead
/// of time and `crate::prebuilt` finds them by this (sha256).
pub fn fingerprint(section: &SeccompSection, arch: Arch) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(arch.name().as_bytes());
    h.update([0]);
    // INVARIANT: the section holds only strings, numbers, bools and lists, so
    // serializing it cannot fail.
    h.update(serde_json::to_vec(section).unwrap_or_default());
    h.finalize().into()
}

/// Compiles `section` for `arch`.
pub fn compile(section: &SeccompSection, arch: Arch) -> Result<CompiledSeccomp, SeccompError> {
    check_names(section)?;
    let (allowed, conditional) = policy_rules(section, arch)?;
    let enosys: BTreeSet<u32> =
        section.enosys.iter().filter_map(|n| arch.syscall_number(n)).filter_map(|n| u32::try_from(n).ok()).collect();
    let programs = vec![job_program(arch, &allowed, conditional, &enosys)?];
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

    /// seccompiler's own program for `rules`.
    fn program(
        rules: BTreeMap<i64, Vec<SeccompRule>>,
        mismatch: SeccompAction,
        matched: SeccompAction,
        arch: Arch,
    ) -> Result<Vec<u8>, SeccompError> {
        Ok(to_bytes(&seccompiler_program(rules, mismatch, matched, arch)?))
    }

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
            assert_eq!(c.programs.len(), 1);
            assert!(c.instructions() < 4096 * 3);
            assert!(c.programs.iter().all(|p| p.len() % 8 == 0 && p.len() / 8 < 4096));
            assert!(c.digest.starts_with("sha256:"));
        }
        let a = compile(&section(), Arch::X86_64).unwrap();
        let b = compile(&section(), Arch::Aarch64).unwrap();
        assert_ne!(a.digest, b.digest);
    }

    /// What a filter sees of a syscall (`struct seccomp_data`).
    #[derive(Debug, Clone, Copy)]
    struct Call {
        nr: u32,
        arch: u32,
        args: [u64; 6],
    }

    /// A decoded program, checked as the kernel's classic BPF checker would
    /// (length, jumps inside the program, a return at the end).
    struct Bpf(Vec<(u16, u8, u8, u32)>);

    impl Bpf {
        fn new(program: &[u8]) -> Bpf {
            let insns: Vec<(u16, u8, u8, u32)> = program
                .chunks(8)
                .map(|c| (u16::from_le_bytes([c[0], c[1]]), c[2], c[3], u32::from_le_bytes([c[4], c[5], c[6], c[7]])))
                .collect();
            assert!(!insns.is_empty() && insns.len() <= MAX_INSNS, "{} instructions", insns.len());
            assert_eq!(insns[insns.len() - 1].0, BPF_RET_K, "the last instruction must return");
            for (pc, &(code, jt, jf, k)) in insns.iter().enumerate() {
                let targets: Vec<usize> = match code {
                    BPF_JA => vec![pc + 1 + k as usize],
                    BPF_JEQ_K | BPF_JGT_K | BPF_JGE_K | BPF_JSET_K => {
                        vec![pc + 1 + usize::from(jt), pc + 1 + usize::from(jf)]
                    }
                    _ => vec![],
                };
                assert!(targets.iter().all(|&t| t < insns.len()), "instruction {pc} jumps out of the program");
            }
            Bpf(insns)
        }

        /// Runs the program (the subset brig and seccompiler emit) on `call`.
        /// Returns the action and whether the path read an argument: the
        /// kernel's action cache can only skip a filter for a number whose
        /// path reads none.
        fn run(&self, call: &Call) -> (u32, bool) {
            let (mut pc, mut acc, mut read_args) = (0usize, 0u32, false);
            loop {
                let (code, jt, jf, k) = self.0[pc];
                pc += 1;
                match code {
                    BPF_LD_W_ABS => {
                        acc = match k {
                            SECCOMP_DATA_NR => call.nr,
                            SECCOMP_DATA_ARCH => call.arch,
                            16..=63 if k % 4 == 0 => {
                                read_args = true;
                                let arg = call.args[(k as usize - 16) / 8];
                                if (k - 16) % 8 == 0 {
                                    arg as u32
                                } else {
                                    (arg >> 32) as u32
                                }
                            }
                            other => panic!("load of seccomp_data offset {other}"),
                        }
                    }
                    BPF_ALU_AND_K => acc &= k,
                    BPF_JA => pc += k as usize,
                    BPF_JEQ_K | BPF_JGT_K | BPF_JGE_K | BPF_JSET_K => {
                        let taken = match code {
                            BPF_JEQ_K => acc == k,
                            BPF_JGT_K => acc > k,
                            BPF_JGE_K => acc >= k,
                            _ => acc & k != 0,
                        };
                        pc += usize::from(if taken { jt } else { jf });
                    }
                    BPF_RET_K => return (k, read_args),
                    other => panic!("unexpected BPF opcode {other:#x}"),
                }
            }
        }
    }

    const BPF_ALU_AND_K: u16 = 0x54;
    const BPF_JSET_K: u16 = 0x45;

    /// The action of `program` for syscall `nr` (arguments all zero).
    fn run_bpf(program: &[u8], nr: u32, audit_arch: u32) -> u32 {
        Bpf::new(program).run(&Call { nr, arch: audit_arch, args: [0; 6] }).0
    }

    /// What brig installed before its own compiler, all from seccompiler, in
    /// installation order: the policy (every allowed number one by one, the
    /// conditional ones with their rules; else `EPERM`), the `enosys` list,
    /// and every number the architecture defines (else `ENOSYS`).
    fn seccompiler_reference(section: &SeccompSection, arch: Arch) -> Vec<Vec<u8>> {
        let (allowed, conditional) = policy_rules(section, arch).unwrap();
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = conditional;
        for nr in allowed {
            rules.insert(i64::from(nr), vec![]);
        }
        let mut out = vec![program(rules, SeccompAction::Errno(EPERM), SeccompAction::Allow, arch).unwrap()];
        let enosys: BTreeMap<i64, Vec<SeccompRule>> =
            section.enosys.iter().filter_map(|n| arch.syscall_number(n)).map(|nr| (nr, vec![])).collect();
        if !enosys.is_empty() {
            out.push(program(enosys, SeccompAction::Allow, SeccompAction::Errno(ENOSYS), arch).unwrap());
        }
        let known: BTreeMap<i64, Vec<SeccompRule>> = arch.all_syscalls().into_iter().map(|n| (n, vec![])).collect();
        out.push(program(known, SeccompAction::Errno(ENOSYS), SeccompAction::Allow, arch).unwrap());
        out
    }

    /// The action the kernel takes for a stack of filters (`seccomp_run_filters`):
    /// the lowest action as a signed number (the most restrictive) wins; on a
    /// tie, the newest filter's. `results` are in installation order.
    fn kernel_combination(results: &[u32]) -> u32 {
        let action = |r: u32| (r & 0xffff_0000) as i32;
        let mut best = u32::MAX;
        for (i, &r) in results.iter().rev().enumerate() {
            if i == 0 || action(r) < action(best) {
                best = r;
            }
        }
        best
    }

    /// A small deterministic generator (xorshift64*), for argument values.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[(self.next() % from.len() as u64) as usize]
        }
    }

    /// Argument values worth trying for `section`'s conditions at `index`:
    /// each listed value, with the bits outside its mask flipped, one bit
    /// off, in the high half, and a few extremes.
    fn candidates(section: &SeccompSection, index: u8) -> Vec<u64> {
        let mut out = vec![0, 1, u64::from(u32::MAX), u64::MAX, 1 << 32];
        for cond in section.allow_if.iter().flat_map(|r| &r.args).filter(|c| c.index == index) {
            for &v in &cond.any_of {
                let mask = cond.mask.unwrap_or(u64::MAX);
                out.extend([
                    v,
                    v | !mask,
                    v | (!mask & 0xffff_0000),
                    v ^ 1,
                    v ^ (1 << 33),
                    v | (1 << 32),
                    v.wrapping_sub(1),
                ]);
                out.extend((0..64).map(|b| v ^ (1 << b)));
            }
        }
        out
    }

    fn restricted() -> SeccompSection {
        crate::ProfileSet::builtin().get("restricted").unwrap().profile.seccomp.clone().unwrap()
    }

    /// Most syscalls allowed, many with conditions, some also on the
    /// `enosys` list: the largest program a profile is likely to ask for,
    /// and every way the lists can overlap.
    fn everything(arch: Arch) -> SeccompSection {
        let mut s = restricted();
        let names: Vec<String> = arch
            .all_syscalls()
            .into_iter()
            .map(|n| match arch {
                Arch::X86_64 => syscalls::x86_64::Sysno::new(n as usize).unwrap().name().to_string(),
                Arch::Aarch64 => syscalls::aarch64::Sysno::new(n as usize).unwrap().name().to_string(),
            })
            .collect();
        let conditional: Vec<&String> = s.allow_if.iter().map(|r| &r.syscall).collect();
        let (mut allow, mut extra) = (Vec::new(), Vec::new());
        for (i, n) in names.iter().enumerate() {
            if conditional.contains(&n) {
                continue;
            }
            if i % 7 == 3 {
                extra.push(ConditionalRule {
                    syscall: n.clone(),
                    args: vec![ArgCondition { index: (i % 6) as u8, mask: None, any_of: vec![i as u64], dword: false }],
                    comment: String::new(),
                });
            } else if i % 5 != 0 {
                allow.push(n.clone());
            }
            // Allowed, conditional or neither, and also on the ENOSYS list.
            if i % 11 == 0 {
                s.enosys.push(n.clone());
            }
        }
        // A conditional rule for a syscall that is also allowed outright.
        extra.push(ConditionalRule {
            syscall: allow[0].clone(),
            args: vec![ArgCondition { index: 0, mask: None, any_of: vec![7], dword: false }],
            comment: String::new(),
        });
        s.enosys.push("socket".into());
        s.allow = allow;
        s.allow_if.extend(extra);
        s
    }

    #[test]
    fn the_one_program_decides_as_seccompilers_three() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let foreign = if arch == Arch::X86_64 { Arch::Aarch64 } else { Arch::X86_64 };
            for (name, section) in [("test", section()), ("restricted", restricted()), ("everything", everything(arch))]
            {
                let compiled = compile(&section, arch).unwrap();
                assert_eq!(compiled.programs.len(), 1);
                let ours = Bpf::new(&compiled.programs[0]);
                let reference_programs = seccompiler_reference(&section, arch);
                let reference: Vec<Bpf> = reference_programs.iter().map(|p| Bpf::new(p)).collect();
                let (allowed, conditional) = policy_rules(&section, arch).unwrap();
                let what = format!("{} {name}", arch.name());
                let x32 = 0x4000_0000u32;
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
                let per_index: Vec<Vec<u64>> = (0..6).map(|i| candidates(&section, i)).collect();
                let probes = (0..1100u32).chain([x32, x32 + 39, x32 + 512, 0x7fff_ffff, 0x8000_0000, u32::MAX]);
                for nr in probes {
                    let tries = match (conditional.contains_key(&i64::from(nr)), name) {
                        (false, _) => 3,
                        (true, "everything") => 200,
                        (true, _) => 3000,
                    };
                    for t in 0..tries {
                        let args: [u64; 6] = std::array::from_fn(|i| if t == 0 { 0 } else { rng.pick(&per_index[i]) });
                        let call = Call { nr, arch: arch.audit_arch(), args };
                        let (got, read_args) = ours.run(&call);
                        let want = kernel_combination(&reference.iter().map(|p| p.run(&call).0).collect::<Vec<_>>());
                        assert_eq!(got, want, "{what}: nr {nr:#x} args {args:x?}");
                        if allowed.contains(&nr) && got == SECCOMP_RET_ALLOW {
                            assert!(!read_args, "{what}: nr {nr} is allowed outright but its path reads arguments");
                        }
                    }
                    let call = Call { nr, arch: foreign.audit_arch(), args: [0; 6] };
                    assert_eq!(ours.run(&call).0, SECCOMP_RET_KILL_PROCESS, "{what}: foreign arch");
                }
                // Both sides of the rules, the lists' overlaps and unknown
                // numbers were exercised above; spot checks of each.
                let nr = |n: &str| arch.syscall_number(n).unwrap() as u32;
                let run = |n: u32, args: [u64; 6]| ours.run(&Call { nr: n, arch: arch.audit_arch(), args }).0;
                assert_eq!(run(1000, [0; 6]), SECCOMP_RET_ERRNO | ENOSYS, "{what}: unknown number");
                assert_eq!(run(x32 + nr("getpid"), [0; 6]), SECCOMP_RET_ERRNO | ENOSYS, "{what}: x32");
                if name == "restricted" {
                    let socket = nr("socket");
                    assert_eq!(run(socket, [2, 1 | 0o2000000, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
                    assert_eq!(run(socket, [17, 3, 0, 0, 0, 0]), SECCOMP_RET_ERRNO | EPERM);
                    assert_eq!(run(socket, [2, 3, 0, 0, 0, 0]), SECCOMP_RET_ERRNO | EPERM);
                    assert_eq!(run(nr("clone3"), [0; 6]), SECCOMP_RET_ERRNO | ENOSYS);
                    assert_eq!(run(nr("getpid"), [0; 6]), SECCOMP_RET_ALLOW);
                    assert_eq!(run(nr("ptrace"), [0; 6]), SECCOMP_RET_ERRNO | EPERM);
                }
                if name == "everything" {
                    // On the ENOSYS list and conditional: ENOSYS whatever the arguments.
                    assert_eq!(run(nr("socket"), [2, 1, 0, 0, 0, 0]), SECCOMP_RET_ERRNO | ENOSYS);
                }
                let n_ours = compiled.programs[0].len() / 8;
                let n_ref: usize = reference_programs.iter().map(|p| p.len() / 8).sum();
                println!("{what}: {n_ours} instructions, seccompiler's {n_ref}");
                match name {
                    "restricted" => assert!(n_ours * 3 < n_ref, "{what}: {n_ours} instructions, seccompiler's {n_ref}"),
                    "everything" => assert!(n_ours < n_ref, "{what}: {n_ours} instructions, seccompiler's {n_ref}"),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn the_last_syscall_of_the_table_is_known() {
        // syscalls 0.6's `Sysno::iter()` stops one short of the last entry;
        // a profile allowing that syscall must get it, not ENOSYS.
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let last = match arch {
                Arch::X86_64 => syscalls::x86_64::Sysno::last().id(),
                Arch::Aarch64 => syscalls::aarch64::Sysno::last().id(),
            };
            let name = match arch {
                Arch::X86_64 => syscalls::x86_64::Sysno::last().name(),
                Arch::Aarch64 => syscalls::aarch64::Sysno::last().name(),
            };
            assert!(arch.all_syscalls().contains(&i64::from(last)), "{}: {name}", arch.name());
            let s = SeccompSection { allow: vec![name.into()], ..Default::default() };
            let program = compile(&s, arch).unwrap().programs.remove(0);
            assert_eq!(run_bpf(&program, last as u32, arch.audit_arch()), SECCOMP_RET_ALLOW, "{}: {name}", arch.name());
            assert_eq!(run_bpf(&program, last as u32 + 1, arch.audit_arch()), SECCOMP_RET_ERRNO | ENOSYS);
        }
    }

    #[test]
    fn a_filter_too_large_for_the_kernel_is_a_clear_error() {
        let names = ["socket", "bind", "connect", "ioctl", "fcntl", "prctl", "setsockopt", "getsockopt"];
        let s = SeccompSection {
            allow_if: names
                .iter()
                .map(|n| ConditionalRule {
                    syscall: n.to_string(),
                    args: vec![ArgCondition { index: 1, mask: None, any_of: (0..250).collect(), dword: false }],
                    comment: String::new(),
                })
                .collect(),
            ..Default::default()
        };
        let err = compile(&s, Arch::X86_64).unwrap_err();
        assert!(matches!(err, SeccompError::Program { .. } | SeccompError::Backend { .. }), "{err:?}");
        assert!(err.to_string().contains("instructions") || err.to_string().contains("large"), "{err}");
    }

    #[test]
    fn restricted_policy_program_stays_small() {
        // What the kernel converts, JIT-compiles and emulates per syscall
        // number at every launch and exec (docs/launch.md).
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let c = compile(&restricted(), arch).unwrap();
            assert_eq!(c.programs.len(), 1);
            assert!(c.programs[0].len() / 8 < 450, "{}: {} instructions", arch.name(), c.programs[0].len() / 8);
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
