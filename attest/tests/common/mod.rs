//! A sample run on disk: a rootfs, an input mount and an output mount, and
//! the `RunFacts` the shim would fill for it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use brig_attest::*;

/// A token-looking string that must never reach an attestation.
pub const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

pub struct Sample {
    pub facts: RunFacts,
    /// Holds `out/…`: the `--artifacts DIR` for the subjects.
    pub artifacts: PathBuf,
    /// The host directory mounted at `/out`.
    pub out: PathBuf,
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

pub fn sample(dir: &Path) -> Sample {
    let rootfs = dir.join("rootfs");
    write(&rootfs.join("bin/busybox"), b"\x7fELF pretend busybox");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    write(&rootfs.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n");
    let input = dir.join("in");
    write(&input.join("data.csv"), b"a,b\n1,2\n");
    let artifacts = dir.join("art");
    let out = artifacts.join("out");
    write(&out.join("result.txt"), b"3\n");
    write(&out.join("logs/run.log"), b"read data.csv\nwrote result.txt\n");
    let limits = Limits::new(1000, 1 << 30);
    let rd = rootfs_digest_with(&rootfs, None, &Limits::ROOTFS).unwrap();
    let facts = RunFacts {
        container_id: "job-42".into(),
        host: "node-1.example".into(),
        brig_version: "0.1.0".into(),
        request: JobRequest {
            image: Some(format!("sha256:{}", "ab".repeat(32))),
            image_bound_by_token: true,
            profile: Some("restricted".into()),
            args: vec!["/bin/sh".into(), "-c".into(), "wc -l /in/data.csv > /out/result.txt".into()],
            cwd: Some("/".into()),
            inputs: vec!["/in".into()],
            outputs: vec!["/out".into()],
            timeout: Some("90s".into()),
            egress: vec![],
        },
        profile: ProfileFacts {
            name: "restricted".into(),
            digest: format!("sha256:{}", "cd".repeat(32)),
            origin: Some("builtin".into()),
        },
        authorization: Authorization {
            mode: "required".into(),
            decision: "allow".into(),
            policy_ids: vec!["policy0".into()],
            audit_record: Some(brig_attest::AuditRecordRef { seq: 7, sha256: "ab".repeat(32), log: "cd".repeat(32) }),
        },
        identity: Some(Identity {
            iss: Some("https://issuer.example".into()),
            sub: Some("alice".into()),
            jti: Some("jti-1".into()),
            tenant: Some("acme".into()),
            other: BTreeMap::new(),
        }),
        enforcement: Enforcement {
            landlock: Landlock { abi: Some(5), status: "full".into() },
            seccomp: Seccomp {
                filter_digest: Some(format!("sha256:{}", "ef".repeat(32))),
                filters: 2,
                client_filter_kept: true,
            },
            namespaces: vec!["pid".into(), "mount".into(), "network".into(), "ipc".into(), "uts".into()],
            user_namespace: Some(UserNamespace {
                uid_map: vec![IdMap { container_id: 0, host_id: 100_000, size: 65_536 }],
                gid_map: vec![IdMap { container_id: 0, host_id: 100_000, size: 65_536 }],
            }),
            no_new_privs: true,
            capabilities: Capabilities::default(),
            readonly_rootfs: true,
            cgroup: BTreeMap::from([("memory.max".to_string(), "268435456".to_string())]),
            egress: vec![],
            other: BTreeMap::new(),
        },
        tightened: vec![serde_json::json!({"field": "process.capabilities", "from": "docker default", "to": "none"})],
        rootfs: RootfsFacts::new(&rootfs, &rd),
        inputs: vec![MountTree {
            path: "/in".into(),
            tree: hash_tree(&input, &limits).unwrap(),
            unchanged_during_run: Some(true),
        }],
        outputs: vec![MountTree {
            path: "/out".into(),
            tree: hash_tree(&out, &limits).unwrap(),
            unchanged_during_run: None,
        }],
        started_on: "2026-01-02T03:04:05.123456789Z".parse().unwrap(),
        finished_on: "2026-01-02T03:04:06Z".parse().unwrap(),
        outcome: Outcome {
            exit_code: Some(0),
            resources: Resources { cpu_ns: Some(12_345_678), peak_memory_bytes: Some(3 << 20), peak_pids: Some(2) },
            ..Outcome::default()
        },
    };
    Sample { facts, artifacts, out }
}

pub fn signed(facts: &RunFacts, key: &SigningKey) -> Vec<u8> {
    sign(&statement_bytes(facts).unwrap(), PAYLOAD_TYPE, key).unwrap().to_json()
}
