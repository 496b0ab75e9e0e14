//! `brig profile lint`: contradictions and mistakes a parser cannot see.

use std::str::FromStr;

use oci_spec::runtime::Capability;
use serde::Serialize;

use crate::landlock;
use crate::model::{LandlockSection, Profile};
use crate::seccomp;

/// One problem in a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The profile field, e.g. `seccomp.allow`.
    pub field: String,
    /// 1-based line in the source where the offending text appears, if found.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// The line of `needle` for `field` (`cgroup.pids`): looked for first in
/// the field's own table (`[cgroup]`; for a deeper field the longest table
/// that holds it), a line whose key is the needle before one that merely
/// contains it; then anywhere. A plain search found `memory` in
/// `name = "memory_x"` on line 1 for a `memory` key on line 4.
fn line_of(source: &str, field: &str, needle: &str) -> Option<usize> {
    let code = |l: &str| l.split('#').next().unwrap_or("").to_string();
    let header = |l: &str| {
        let t = code(l);
        let t = t.trim();
        t.strip_prefix("[[")
            .and_then(|r| r.strip_suffix("]]"))
            .or_else(|| t.strip_prefix('[').and_then(|r| r.strip_suffix(']')))
            .map(|n| n.split('.').map(str::trim).collect::<Vec<_>>().join("."))
    };
    let is_key = |l: &str| {
        let t = code(l);
        t.trim_start().strip_prefix(needle).is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    let lines: Vec<&str> = source.lines().collect();
    let parts: Vec<&str> = field.split('.').collect();
    for cut in (0..parts.len()).rev() {
        let table = parts[..cut].join(".");
        for matches in [&is_key as &dyn Fn(&str) -> bool, &|l: &str| code(l).contains(needle)] {
            let mut inside = table.is_empty();
            for (i, l) in lines.iter().enumerate() {
                match header(l) {
                    Some(h) => inside = h == table,
                    None if inside && matches(l) => return Some(i + 1),
                    None => {}
                }
            }
        }
    }
    lines.iter().position(|l| code(l).contains(needle)).map(|i| i + 1)
}

struct Linter<'a> {
    source: &'a str,
    findings: Vec<Finding>,
}

impl Linter<'_> {
    fn add(&mut self, field: &str, needle: &str, message: String) {
        self.findings.push(Finding { field: field.to_string(), line: line_of(self.source, field, needle), message });
    }
}

fn known_capability(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    let n = n.strip_prefix("CAP_").unwrap_or(&n);
    n == "ALL" || Capability::from_str(n).is_ok()
}

/// The checks whose failure would make a limit not hold as enforced (a
/// cgroup limit of 0 or below, a CPU share that rounds to no quota, a zero or
/// inverted timeout, a tmpfs of size 0, a misspelt rlimit).
fn lint_limits(l: &mut Linter<'_>, profile: &Profile) {
    for name in profile.rlimits.keys() {
        let n = format!("RLIMIT_{}", name.to_ascii_uppercase());
        if serde_json::from_value::<oci_spec::runtime::PosixRlimitType>(serde_json::Value::String(n)).is_err() {
            l.add("rlimits", name, format!("`{name}` is not a resource limit"));
        }
    }

    let c = &profile.cgroup;
    if let (Some(m), Some(s)) = (c.memory, c.memory_swap) {
        if s < m {
            l.add(
                "cgroup.memory_swap",
                "memory_swap",
                format!("memory_swap ({s}) is below memory ({m}); it counts memory plus swap"),
            );
        }
    }
    if let Some(cpus) = c.cpus {
        // The quota is cpus x 100 ms per 100 ms period, and the kernel's
        // smallest quota is 1 ms: below 0.01 CPU it would round to no quota.
        if !(0.01..=1024.0).contains(&cpus) {
            l.add("cgroup.cpus", "cpus", format!("cpus = {cpus} must be within 0.01..=1024"));
        }
    }
    for (field, size) in [("cgroup.memory", c.memory), ("cgroup.memory_swap", c.memory_swap)] {
        if size.is_some_and(|s| s.0 == 0) {
            let key = field.trim_start_matches("cgroup.");
            l.add(field, key, format!("{key} = 0 is no limit the kernel takes; remove it for none"));
        }
    }
    if let Some(p) = c.pids {
        if p <= 0 {
            l.add("cgroup.pids", "pids", format!("pids = {p} must be positive"));
        }
    }
    if let Some(w) = c.blkio_weight {
        if !(10..=1000).contains(&w) {
            l.add("cgroup.blkio_weight", "blkio_weight", format!("blkio_weight = {w} must be within 10..=1000"));
        }
    }
    if let Some(s) = c.cpu_shares {
        if !(2..=262_144).contains(&s) {
            l.add("cgroup.cpu_shares", "cpu_shares", format!("cpu_shares = {s} must be within 2..=262144"));
        }
    }

    let t = &profile.timeout;
    for (field, value) in [("timeout.default", t.default), ("timeout.max", t.max), ("timeout.grace", t.grace)] {
        if value.is_some_and(|d| d.0.is_zero()) {
            let key = field.trim_start_matches("timeout.");
            l.add(field, key, format!("{key} = 0s would mean no limit at all; remove it for none"));
        }
    }
    if let (Some(d), Some(m)) = (t.default, t.max) {
        if d > m {
            l.add("timeout.default", "default", format!("the default timeout ({d}) exceeds the maximum ({m})"));
        }
    }

    for tmp in &profile.rootfs.tmpfs {
        if tmp.size.0 == 0 {
            l.add("rootfs.tmpfs.size", "size", "a tmpfs needs a size above zero".into());
        }
    }
}

/// The findings of [`lint`] that would make a limit not hold as enforced
/// (a cgroup limit of 0 or below, a CPU share that rounds to no quota, a
/// zero or inverted timeout, a tmpfs of size 0, a misspelt rlimit): a profile
/// with any is refused when loaded for a launch. The rest of lint's findings
/// are advice for the author and do not stop a launch.
pub fn limit_findings(profile: &Profile, source: &str) -> Vec<Finding> {
    // Only these checks: the whole lint compiles the seccomp section for
    // every architecture, too slow for every launch.
    let mut l = Linter { source, findings: Vec::new() };
    lint_limits(&mut l, profile);
    l.findings
}

/// Lints `profile` (parsed from `source`).
pub fn lint(profile: &Profile, source: &str) -> Vec<Finding> {
    let mut l = Linter { source, findings: Vec::new() };

    if profile.name.is_empty() || !profile.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        l.add("name", "name", format!("`{}` is not a valid profile name (letters, digits, - and _)", profile.name));
    }

    if let Some(s) = &profile.seccomp {
        for (field, names) in [("seccomp.allow", &s.allow), ("seccomp.enosys", &s.enosys)] {
            for n in names {
                if !seccomp::is_known_syscall(n) {
                    l.add(field, &format!("\"{n}\""), format!("`{n}` is not a syscall on x86_64 or aarch64"));
                }
            }
        }
        for r in &s.allow_if {
            if !seccomp::is_known_syscall(&r.syscall) {
                l.add(
                    "seccomp.allow_if.syscall",
                    &format!("\"{}\"", r.syscall),
                    format!("`{}` is not a syscall on x86_64 or aarch64", r.syscall),
                );
            }
        }
        for arch in [seccomp::Arch::X86_64, seccomp::Arch::Aarch64] {
            if let Err(e) = seccomp::compile(s, arch) {
                if !matches!(e, seccomp::SeccompError::UnknownSyscall(_)) {
                    l.add("seccomp", "[seccomp", e.to_string());
                }
            }
        }
        for n in &s.enosys {
            if s.allow.contains(n) {
                l.add("seccomp.enosys", &format!("\"{n}\""), format!("`{n}` is both allowed and in `enosys`"));
            }
        }
    }

    if (profile.seccomp.is_some() || profile.landlock.is_some()) && profile.process.no_new_privs != Some(true) {
        l.add(
            "process.no_new_privs",
            "no_new_privs",
            "seccomp and Landlock need `no_new_privs = true` (otherwise setuid binaries could shed them)".into(),
        );
    }

    for c in profile.process.capabilities.iter().flatten() {
        if !known_capability(c) || c.eq_ignore_ascii_case("ALL") {
            l.add("process.capabilities", c, format!("`{c}` is not a capability"));
        }
    }
    for c in &profile.ceilings.capabilities {
        if !known_capability(c) {
            l.add("ceilings.capabilities", c, format!("`{c}` is not a capability"));
        }
    }

    lint_limits(&mut l, profile);

    for tmp in &profile.rootfs.tmpfs {
        if !tmp.path.starts_with('/') {
            l.add("rootfs.tmpfs.path", &tmp.path, format!("`{}` is not an absolute container path", tmp.path));
        }
        if u32::from_str_radix(&tmp.mode, 8).map_or(true, |m| m > 0o7777) {
            l.add("rootfs.tmpfs.mode", &tmp.mode, format!("`{}` is not an octal mode", tmp.mode));
        }
    }

    if let Some(ll) = &profile.landlock {
        lint_landlock(&mut l, profile, ll);
    }

    for (field, list) in [
        ("ceilings.writable_mounts", &profile.ceilings.writable_mounts),
        ("ceilings.readonly_mounts", &profile.ceilings.readonly_mounts),
    ] {
        for p in list {
            if !p.starts_with('/') {
                l.add(field, p, format!("`{p}` is not an absolute host path"));
            }
        }
    }
    l.findings
}

fn lint_landlock(l: &mut Linter<'_>, profile: &Profile, ll: &LandlockSection) {
    for (field, list) in
        [("landlock.read", &ll.read), ("landlock.read_exec", &ll.read_exec), ("landlock.read_write", &ll.read_write)]
    {
        for p in list {
            if !p.starts_with('/') {
                l.add(field, p, format!("`{p}` is not an absolute container path"));
            }
        }
    }
    // A writable rootfs that Landlock makes read-only everywhere is a contradiction.
    if profile.rootfs.read_only == Some(false) {
        let root_writable = ll.read_write.iter().any(|p| p == "/");
        let root_readable = ll.read.iter().chain(ll.read_exec.iter()).any(|p| p == "/");
        if root_readable && !root_writable {
            l.add(
                "rootfs.read_only",
                "read_only",
                "the rootfs is declared writable but Landlock grants `/` read-only: writes would fail; set read_only = true or grant `/` in landlock.read_write".into(),
            );
        }
    }
    for t in &profile.rootfs.tmpfs {
        let covered = ll.grant_mounts || ll.read_write.iter().any(|p| t.path.starts_with(p.as_str()));
        if !covered {
            l.add(
                "landlock.read_write",
                "[landlock",
                format!("tmpfs `{}` is writable scratch but Landlock does not grant it (add it to read_write or set grant_mounts)", t.path),
            );
        }
    }
    let _ = landlock::FS_ALL;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    #[test]
    fn finds_contradictions_with_lines() {
        let src = "name = \"bad\"\n[process]\nno_new_privs = true\n[rootfs]\nread_only = false\n[landlock]\nmode = \"required\"\nread_exec = [\"/\"]\n[seccomp]\nallow = [\"read\", \"frobnicate\"]\n";
        let p = parse(src, "bad.toml").unwrap();
        let f = lint(&p, src);
        assert!(f.iter().any(|f| f.field == "rootfs.read_only" && f.line == Some(5)), "{f:?}");
        assert!(
            f.iter().any(|f| f.field == "seccomp.allow" && f.line == Some(10) && f.message.contains("frobnicate")),
            "{f:?}"
        );
    }

    /// A finding's line is that of its key in its own table, not the first
    /// line that happens to hold the word (the profile's name, another key
    /// that starts with it).
    #[test]
    fn lines_are_those_of_the_key_in_its_table() {
        let src =
            "name = \"memory_x\"\n# pids and memory below\n[cgroup]\nmemory_swap = \"1g\"\nmemory = \"0\"\npids = 0\n";
        let p = parse(src, "memory_x.toml").unwrap();
        let f = lint(&p, src);
        assert!(f.iter().any(|f| f.field == "cgroup.memory" && f.line == Some(5)), "{f:?}");
        assert!(f.iter().any(|f| f.field == "cgroup.pids" && f.line == Some(6)), "{f:?}");
    }

    #[test]
    fn seccomp_without_nnp_is_flagged() {
        let src = "name = \"x\"\n[seccomp]\nallow = [\"read\"]\n";
        let p = parse(src, "x.toml").unwrap();
        assert!(lint(&p, src).iter().any(|f| f.field == "process.no_new_privs"));
    }

    #[test]
    fn bad_values() {
        let src = "name = \"x\"\n[cgroup]\nmemory = \"1g\"\nmemory_swap = \"512m\"\npids = 0\n[timeout]\ndefault = \"2h\"\nmax = \"1h\"\n[rlimits]\nnofiles = 3\n";
        let p = parse(src, "x.toml").unwrap();
        let f = lint(&p, src);
        for field in ["cgroup.memory_swap", "cgroup.pids", "timeout.default", "rlimits"] {
            assert!(f.iter().any(|x| x.field == field), "{field}: {f:?}");
        }
    }
}
