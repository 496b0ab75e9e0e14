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
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
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
    let mut out = Vec::with_capacity(bpf.len() * 8);
    for insn in bpf {
        out.extend_from_slice(&insn.code.to_le_bytes());
        out.push(insn.jt);
        out.push(insn.jf);
        out.extend_from_slice(&insn.k.to_le_bytes());
    }
    Ok(out)
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

    let known: BTreeMap<i64, Vec<SeccompRule>> = arch.all_syscalls().into_iter().map(|nr| (nr, vec![])).collect();
    programs.push(program(known, SeccompAction::Errno(ENOSYS), SeccompAction::Allow, arch)?);

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
