//! The built-in profiles' seccomp programs, compiled by build.rs with the
//! same compiler (`seccomp.rs`, included there) for every architecture brig
//! supports. Compiling `restricted`'s section took ≈ 0.08 ms of every launch
//! (mostly resolving ≈ 300 syscall names); a lookup takes ≈ 0.01 ms.

use crate::seccomp::{self, Arch, CompiledSeccomp, SeccompError, SeccompSection};

/// One prebuilt program: the fingerprint of what it was compiled from, the
/// architecture's name, the programs and their digest.
struct Prebuilt {
    fingerprint: [u8; 32],
    arch: &'static str,
    programs: &'static [&'static [u8]],
    digest: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/prebuilt_seccomp.rs"));

/// `seccomp::compile(section, arch)`, served from the prebuilt programs when
/// `section` is, to the byte, a built-in profile's (whatever file it came
/// from); compiled now otherwise.
pub fn compile(section: &SeccompSection, arch: Arch) -> Result<CompiledSeccomp, SeccompError> {
    let fingerprint = seccomp::fingerprint(section, arch);
    match PREBUILT.iter().find(|p| p.fingerprint == fingerprint && p.arch == arch.name()) {
        Some(p) => Ok(CompiledSeccomp {
            arch,
            programs: p.programs.iter().map(|b| b.to_vec()).collect(),
            digest: p.digest.to_string(),
        }),
        None => seccomp::compile(section, arch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every prebuilt program is what the compiler makes of its section now:
    /// a stale or foreign program can never be served.
    #[test]
    fn prebuilt_programs_equal_a_fresh_compile() {
        let set = crate::ProfileSet::builtin();
        let mut served = 0;
        for loaded in set.iter() {
            let (name, Some(section)) = (&loaded.profile.name, loaded.profile.seccomp.clone()) else { continue };
            for arch in [Arch::X86_64, Arch::Aarch64] {
                let fresh = seccomp::compile(&section, arch).unwrap();
                assert!(PREBUILT.iter().any(|p| p.fingerprint == seccomp::fingerprint(&section, arch)), "{name}");
                assert_eq!(compile(&section, arch).unwrap(), fresh, "{name} on {}", arch.name());
                served += 1;
            }
        }
        assert_eq!(served, PREBUILT.len(), "a prebuilt program for a section no built-in has");
        assert!(served >= 2);
    }

    /// A section that differs in anything (here one syscall) is compiled, not
    /// served from a built-in's program.
    #[test]
    fn any_other_section_is_compiled() {
        let set = crate::ProfileSet::builtin();
        let mut section = set.get("restricted").unwrap().profile.seccomp.clone().unwrap();
        let arch = Arch::native().unwrap();
        let builtin = compile(&section, arch).unwrap();
        section.allow.retain(|s| s != "getpid");
        assert!(!PREBUILT.iter().any(|p| p.fingerprint == seccomp::fingerprint(&section, arch)));
        let other = compile(&section, arch).unwrap();
        assert_ne!(other.digest, builtin.digest);
        assert_eq!(other, seccomp::compile(&section, arch).unwrap());
    }
}
