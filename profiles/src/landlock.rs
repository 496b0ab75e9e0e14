//! Compiles a profile's `[landlock]` section (plus the job's mounts) into the
//! Landlock ruleset the supervisor applies in the job's process.
//!
//! Rights are the kernel's `LANDLOCK_ACCESS_*` bits. The plan always asks the
//! kernel to handle every right up to ABI 5 (filesystem) and the requested
//! network and scope rights; the supervisor masks what the running kernel's ABI
//! lacks and reports whether enforcement was full or partial.

use std::collections::BTreeMap;

use oci_spec::runtime::Spec;
use serde::Serialize;

use crate::model::{LandlockMode, LandlockScope, LandlockSection};

pub const EXECUTE: u64 = 1 << 0;
pub const WRITE_FILE: u64 = 1 << 1;
pub const READ_FILE: u64 = 1 << 2;
pub const READ_DIR: u64 = 1 << 3;
pub const REMOVE_DIR: u64 = 1 << 4;
pub const REMOVE_FILE: u64 = 1 << 5;
pub const MAKE_CHAR: u64 = 1 << 6;
pub const MAKE_DIR: u64 = 1 << 7;
pub const MAKE_REG: u64 = 1 << 8;
pub const MAKE_SOCK: u64 = 1 << 9;
pub const MAKE_FIFO: u64 = 1 << 10;
pub const MAKE_BLOCK: u64 = 1 << 11;
pub const MAKE_SYM: u64 = 1 << 12;
pub const REFER: u64 = 1 << 13;
pub const TRUNCATE: u64 = 1 << 14;
pub const IOCTL_DEV: u64 = 1 << 15;
/// Every filesystem right up to ABI 5.
pub const FS_ALL: u64 = (1 << 16) - 1;

pub const NET_BIND_TCP: u64 = 1 << 0;
pub const NET_CONNECT_TCP: u64 = 1 << 1;

pub const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
pub const SCOPE_SIGNAL: u64 = 1 << 1;

/// Read files and list directories.
pub const READ: u64 = READ_FILE | READ_DIR;
/// Read and execute.
pub const READ_EXEC: u64 = READ | EXECUTE;
/// Read and write; never device nodes.
pub const READ_WRITE: u64 = READ
    | WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_SYM
    | REFER
    | TRUNCATE
    | IOCTL_DEV;

/// The ruleset for one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LandlockPlan {
    pub required: bool,
    pub fs_handled: u64,
    pub net_handled: u64,
    pub scoped: u64,
    /// Container path -> granted rights (merged per path).
    pub fs_rules: BTreeMap<String, u64>,
    /// TCP port -> granted rights.
    pub net_rules: BTreeMap<u16, u64>,
}

/// Mount types whose contents are kernel interfaces: read-only at most.
const KERNEL_FS: &[&str] = &["proc", "sysfs", "cgroup", "cgroup2", "mqueue", "securityfs", "debugfs"];

impl LandlockPlan {
    /// Builds the ruleset from the profile section, the spec's mounts and
    /// extra grants (the job's declared inputs and outputs).
    pub fn compile(section: &LandlockSection, spec: &Spec, extra: &[(String, u64)]) -> LandlockPlan {
        let mut fs_rules: BTreeMap<String, u64> = BTreeMap::new();
        let mut grant = |path: &str, access: u64| {
            *fs_rules.entry(path.to_string()).or_insert(0) |= access;
        };
        for p in &section.read {
            grant(p, READ);
        }
        for p in &section.read_exec {
            grant(p, READ_EXEC);
        }
        for p in &section.read_write {
            grant(p, READ_WRITE);
        }
        if section.grant_mounts {
            for m in spec.mounts().iter().flatten() {
                let dest = lexical(&m.destination().to_string_lossy());
                if dest == "/" {
                    continue;
                }
                let typ = m.typ().as_deref().unwrap_or("bind");
                let ro = m.options().iter().flatten().any(|o| o == "ro");
                let access = if KERNEL_FS.contains(&typ) || ro { READ } else { READ_WRITE };
                grant(&dest, access);
            }
            if let Some(p) = spec.process() {
                // `/.` or `/x/..` is `/` too: the working directory never
                // grants the whole root filesystem.
                let cwd = lexical(&p.cwd().to_string_lossy());
                if cwd != "/" {
                    grant(&cwd, READ_EXEC);
                }
                // The program the spec runs, when named by an absolute path:
                // images' entrypoints live anywhere (`/docker-entrypoint.sh`,
                // `/catatonit`, `/home/app/run`), outside the profile's exec
                // paths. That one file only (or, through a link, its
                // target); a name without `/` is looked up in `PATH`.
                if let Some(program) = p.args().as_ref().and_then(|a| a.first()) {
                    let program = lexical(program);
                    if program.starts_with('/') && program != "/" {
                        grant(&program, READ_EXEC);
                    }
                }
            }
        }
        for (path, access) in extra {
            grant(path, *access);
        }
        let mut net_handled = 0;
        let mut net_rules: BTreeMap<u16, u64> = BTreeMap::new();
        if let Some(ports) = &section.tcp_connect {
            net_handled |= NET_CONNECT_TCP;
            for &p in ports {
                *net_rules.entry(p).or_insert(0) |= NET_CONNECT_TCP;
            }
        }
        if let Some(ports) = &section.tcp_bind {
            net_handled |= NET_BIND_TCP;
            for &p in ports {
                *net_rules.entry(p).or_insert(0) |= NET_BIND_TCP;
            }
        }
        let scoped = section.scope.iter().fold(0, |acc, s| {
            acc | match s {
                LandlockScope::AbstractUnixSocket => SCOPE_ABSTRACT_UNIX_SOCKET,
                LandlockScope::Signal => SCOPE_SIGNAL,
            }
        });
        LandlockPlan {
            required: section.mode == LandlockMode::Required,
            fs_handled: FS_ALL,
            net_handled,
            scoped,
            fs_rules,
            net_rules,
        }
    }
}

/// Names of the rights in `access`, for people.
pub fn describe_fs(access: u64) -> Vec<&'static str> {
    const NAMES: [&str; 16] = [
        "execute",
        "write_file",
        "read_file",
        "read_dir",
        "remove_dir",
        "remove_file",
        "make_char",
        "make_dir",
        "make_reg",
        "make_sock",
        "make_fifo",
        "make_block",
        "make_sym",
        "refer",
        "truncate",
        "ioctl_dev",
    ];
    (0..16).filter(|i| access & (1 << i) != 0).map(|i| NAMES[i]).collect()
}

/// `path` with `.`, `..` and repeated `/` resolved lexically (inside the
/// container: no symlinks to follow), always absolute.
pub fn lexical(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {

    #[test]
    fn lexical_paths_name_the_root_however_spelled() {
        for p in ["/", "/.", "//", "/./.", "/x/..", "/x/../..", "."] {
            assert_eq!(lexical(p), "/", "{p}");
        }
        assert_eq!(lexical("/srv/./data//x/../y"), "/srv/data/y");
    }

    use super::*;

    fn section() -> LandlockSection {
        LandlockSection {
            mode: LandlockMode::Required,
            read: vec!["/etc".into()],
            read_exec: vec!["/bin".into(), "/usr".into()],
            read_write: vec!["/tmp".into()],
            grant_mounts: true,
            tcp_connect: Some(vec![443]),
            tcp_bind: None,
            scope: vec![LandlockScope::Signal],
        }
    }

    #[test]
    fn merges_rules_and_mounts() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"cwd": "/work", "args": ["sh"], "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro"]},
                {"destination": "/out", "type": "bind", "source": "/srv/out", "options": ["rbind", "rw"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}
            ]
        }))
        .unwrap();
        let plan = LandlockPlan::compile(&section(), &spec, &[("/in".into(), READ)]);
        assert!(plan.required);
        assert_eq!(plan.fs_rules["/proc"], READ);
        assert_eq!(plan.fs_rules["/data"], READ);
        assert_eq!(plan.fs_rules["/out"], READ_WRITE);
        assert_eq!(plan.fs_rules["/tmp"], READ_WRITE);
        assert_eq!(plan.fs_rules["/work"], READ_EXEC);
        assert_eq!(plan.fs_rules["/in"], READ);
        assert_eq!(plan.fs_rules["/bin"], READ_EXEC);
        assert_eq!(plan.net_handled, NET_CONNECT_TCP);
        assert_eq!(plan.net_rules[&443], NET_CONNECT_TCP);
        assert_eq!(plan.scoped, SCOPE_SIGNAL);
        assert_eq!(plan.fs_handled & (MAKE_CHAR | MAKE_BLOCK), MAKE_CHAR | MAKE_BLOCK);
        assert_eq!(READ_WRITE & (MAKE_CHAR | MAKE_BLOCK | EXECUTE), 0);
    }
}
