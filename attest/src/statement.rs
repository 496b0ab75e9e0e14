//! The in-toto Statement v1 with a SLSA Provenance v1 predicate, built from
//! [`RunFacts`]. docs/attestation.md maps every field.

use std::collections::BTreeSet;

use base64::Engine;
use chrono::SecondsFormat;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::facts::{Enforcement, MountTree, Outcome, RunFacts};
use crate::measure::EntryKind;
use crate::name::escape;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The SLSA `buildType` of a brig run (documented at this address).
pub const BUILD_TYPE: &str = "https://github.com/brig-runtime/brig/blob/main/docs/attestation.md#run-v1";
/// The builder id is this prefix followed by the host name.
pub const BUILDER_PREFIX: &str = "brig://";
/// The media type of the outcome byproduct's `content`.
pub const OUTCOME_MEDIA_TYPE: &str = "application/vnd.brig.outcome.v1+json";
/// The media type of a tree descriptor (its digest is over the canonical list).
pub const TREE_MEDIA_TYPE: &str = "application/vnd.brig.tree.v1";
/// The media type of the rootfs descriptor (its digest is over the canonical list).
pub const ROOTFS_MEDIA_TYPE: &str = "application/vnd.brig.rootfs.v1";
/// The prefix of the subject that stands for the run when it produced no file.
pub const RUN_SUBJECT_PREFIX: &str = "run:";

/// Why a statement could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("mount path `{0}` is not a normalized absolute path")]
    BadMountPath(String),
    #[error("two outputs are both named `{0}`")]
    DuplicateSubject(String),
    #[error("`{value}` is not a digest (`sha256:` and 64 lower-case hex digits) in {field}")]
    BadDigest { field: &'static str, value: String },
    #[error("container id `{0}` is empty or holds characters other than letters, digits, `_`, `+`, `-` and `.`")]
    BadContainerId(String),
}

/// Splits `alg:hex`, checking the algorithm is sha256, sha384 or sha512 and
/// the hex has its length, lower case.
pub fn parse_digest(s: &str) -> Option<(&str, &str)> {
    let (alg, hex) = s.split_once(':')?;
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return None,
    };
    (hex.len() == len && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some((alg, hex))
}

/// Container ids brig accepts (runc's grammar).
pub fn valid_container_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
}

/// The statement's name for a mount path: the path without its leading `/`.
fn mount_name(path: &str) -> Result<String, StatementError> {
    let rest = path.strip_prefix('/').ok_or_else(|| StatementError::BadMountPath(path.into()))?;
    if rest.is_empty() || rest.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(StatementError::BadMountPath(path.into()));
    }
    Ok(escape(rest.as_bytes()))
}

/// The name of an entry of a mount in the statement: `out/a.txt` for `a.txt`
/// under `/out`; the mount's own name when the mount is a single file.
pub fn entry_name(mount: &str, entry: &str) -> Result<String, StatementError> {
    let m = mount_name(mount)?;
    Ok(if entry.is_empty() { m } else { format!("{m}/{entry}") })
}

/// The digest of the run subject (used when the run produced no file).
pub fn run_subject_digest(container_id: &str, rootfs_sha256: &str, started_on: &str) -> String {
    let text = format!("brig-run-v1\n{container_id}\n{rootfs_sha256}\n{started_on}\n");
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn timestamp(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn host_uri(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for b in host.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The outcome as it appears in the statement (the annotations of the
/// `outcome` byproduct, and its `content`).
pub fn outcome_json(o: &Outcome) -> Value {
    json!({
        "exitCode": o.exit_code,
        "signal": o.signal,
        "timedOut": o.timed_out,
        "oomKilled": o.oom_killed,
        "killed": o.killed,
        "error": o.error,
        "resources": {
            "cpuNs": o.resources.cpu_ns,
            "peakMemoryBytes": o.resources.peak_memory_bytes,
            "peakPids": o.resources.peak_pids,
        },
    })
}

/// The launch decision, with where it is in the audit log when one is kept.
fn authorization_json(a: &crate::facts::Authorization) -> Value {
    let mut v = json!({"mode": a.mode, "decision": a.decision, "policyIds": a.policy_ids});
    if let Some(r) = &a.audit_record {
        v["auditRecord"] = json!({"seq": r.seq, "sha256": r.sha256, "log": r.log});
    }
    v
}

fn enforcement_json(e: &Enforcement) -> Value {
    let userns = e.user_namespace.as_ref().map(|u| {
        let maps = |m: &[crate::facts::IdMap]| -> Vec<Value> {
            m.iter().map(|l| json!({"containerId": l.container_id, "hostId": l.host_id, "size": l.size})).collect()
        };
        json!({"uidMap": maps(&u.uid_map), "gidMap": maps(&u.gid_map)})
    });
    json!({
        "landlock": {"abi": e.landlock.abi, "status": e.landlock.status},
        "seccomp": {
            "filterDigest": e.seccomp.filter_digest,
            "filters": e.seccomp.filters,
            "clientFilterKept": e.seccomp.client_filter_kept,
        },
        "namespaces": e.namespaces,
        "userNamespace": userns,
        "noNewPrivs": e.no_new_privs,
        "capabilities": {
            "bounding": e.capabilities.bounding,
            "effective": e.capabilities.effective,
            "permitted": e.capabilities.permitted,
            "inheritable": e.capabilities.inheritable,
            "ambient": e.capabilities.ambient,
        },
        "readonlyRootfs": e.readonly_rootfs,
        "cgroup": e.cgroup,
        "egress": e.egress,
        "other": e.other,
    })
}

fn digest_set(field: &'static str, s: &str) -> Result<Value, StatementError> {
    let (alg, hex) = parse_digest(s).ok_or_else(|| StatementError::BadDigest { field, value: s.into() })?;
    let mut m = Map::new();
    m.insert(alg.into(), Value::String(hex.into()));
    Ok(Value::Object(m))
}

fn sha256_set(field: &'static str, hex: &str) -> Result<Value, StatementError> {
    digest_set(field, &format!("sha256:{hex}"))
}

/// A tree descriptor: digest over its canonical list, the non-file entries
/// listed (they have no content digest of their own).
fn tree_descriptor(kind: &str, m: &MountTree) -> Result<Value, StatementError> {
    mount_name(&m.path)?;
    let mut others = Vec::new();
    for e in &m.tree.entries {
        let name = entry_name(&m.path, &e.name)?;
        let v = match &e.kind {
            EntryKind::File { .. } => continue,
            EntryKind::Symlink { target } => json!({"name": name, "type": "symlink", "target": target}),
            EntryKind::Fifo => json!({"name": name, "type": "fifo"}),
            EntryKind::Socket => json!({"name": name, "type": "socket"}),
            EntryKind::CharDevice { major, minor } => {
                json!({"name": name, "type": "char_device", "device": format!("{major}:{minor}")})
            }
            EntryKind::BlockDevice { major, minor } => {
                json!({"name": name, "type": "block_device", "device": format!("{major}:{minor}")})
            }
        };
        others.push(v);
    }
    let mut annotations = json!({"files": m.tree.files, "bytes": m.tree.bytes, "others": others});
    if let Some(unchanged) = m.unchanged_during_run {
        annotations["unchangedDuringRun"] = json!(unchanged);
    }
    Ok(json!({
        "name": format!("{kind}:{}", m.path),
        "digest": sha256_set("a tree's root digest", &m.tree.root_sha256)?,
        "mediaType": TREE_MEDIA_TYPE,
        "annotations": annotations,
    }))
}

/// Builds the statement for a run.
pub fn statement(f: &RunFacts) -> Result<Value, StatementError> {
    if !valid_container_id(&f.container_id) {
        return Err(StatementError::BadContainerId(f.container_id.clone()));
    }
    let started_on = timestamp(&f.started_on);
    let finished_on = timestamp(&f.finished_on);

    // Subjects: every regular file under the outputs.
    let mut subjects = Vec::new();
    let mut seen = BTreeSet::new();
    for m in &f.outputs {
        for (entry, _, sha) in m.tree.files() {
            let name = entry_name(&m.path, entry)?;
            if !seen.insert(name.clone()) {
                return Err(StatementError::DuplicateSubject(name));
            }
            subjects.push(json!({"name": name, "digest": sha256_set("an output's digest", sha)?}));
        }
    }
    if subjects.is_empty() {
        let digest = run_subject_digest(&f.container_id, &f.rootfs.sha256, &started_on);
        subjects.push(json!({
            "name": format!("{RUN_SUBJECT_PREFIX}{}", f.container_id),
            "digest": {"sha256": digest},
        }));
    }

    // Resolved dependencies: image, rootfs, input trees and every input file.
    let mut deps = Vec::new();
    if let Some(image) = &f.request.image {
        deps.push(json!({
            "name": "image",
            "digest": digest_set("the image digest", image)?,
            "annotations": {"boundByToken": f.request.image_bound_by_token},
        }));
    }
    let mut rootfs_annotations = json!({
        "path": f.rootfs.path,
        "entries": f.rootfs.entries,
        "files": f.rootfs.files,
        "bytes": f.rootfs.bytes,
    });
    if let Some(unchanged) = f.rootfs.unchanged_during_run {
        rootfs_annotations["unchangedDuringRun"] = json!(unchanged);
    }
    deps.push(json!({
        "name": "rootfs",
        "digest": sha256_set("the rootfs digest", &f.rootfs.sha256)?,
        "mediaType": ROOTFS_MEDIA_TYPE,
        "annotations": rootfs_annotations,
    }));
    for m in &f.inputs {
        deps.push(tree_descriptor("inputs", m)?);
        for (entry, size, sha) in m.tree.files() {
            deps.push(json!({
                "name": entry_name(&m.path, entry)?,
                "digest": sha256_set("an input's digest", sha)?,
                "annotations": {"size": size},
            }));
        }
    }

    // Byproducts: the outcome, and each output tree.
    let outcome = outcome_json(&f.outcome);
    let outcome_bytes = serde_json::to_vec(&outcome).unwrap_or_default();
    let mut byproducts = vec![json!({
        "name": "outcome",
        "mediaType": OUTCOME_MEDIA_TYPE,
        "content": base64::engine::general_purpose::STANDARD.encode(outcome_bytes),
        "annotations": outcome,
    })];
    for m in &f.outputs {
        byproducts.push(tree_descriptor("outputs", m)?);
    }

    let identity = f
        .identity
        .as_ref()
        .map(|i| json!({"iss": i.iss, "sub": i.sub, "jti": i.jti, "tenant": i.tenant, "other": i.other}));
    Ok(json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "image": f.request.image,
                    "profile": f.request.profile,
                    "process": {"args": f.request.args, "cwd": f.request.cwd},
                    "inputs": f.request.inputs,
                    "outputs": f.request.outputs,
                    "timeout": f.request.timeout,
                    "egress": f.request.egress,
                },
                "internalParameters": {
                    "profile": {"name": f.profile.name, "digest": f.profile.digest, "origin": f.profile.origin},
                    "authorization": authorization_json(&f.authorization),
                    "identity": identity,
                    "enforcement": enforcement_json(&f.enforcement),
                    "tightened": f.tightened,
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {
                    "id": format!("{BUILDER_PREFIX}{}", host_uri(&f.host)),
                    "version": {"brig": f.brig_version},
                },
                "metadata": {
                    "invocationId": f.container_id,
                    "startedOn": started_on,
                    "finishedOn": finished_on,
                },
                "byproducts": byproducts,
            },
        },
    }))
}

/// The statement serialized as the DSSE payload.
pub fn statement_bytes(f: &RunFacts) -> Result<Vec<u8>, StatementError> {
    // INVARIANT: a `serde_json::Value` always serializes.
    Ok(serde_json::to_vec(&statement(f)?).unwrap_or_default())
}
