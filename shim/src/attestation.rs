//! Measurement at `create` and the signed run attestation at `delete`
//! (`brig-attest` does the hashing, the statement and DSSE; this module maps
//! brig's run onto it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use brig_attest::{Limits, MountTree, RootfsFacts};

use crate::bundle::{annotation, LaunchRequest};
use crate::state::RunRecord;

/// The `[attest]` section of the configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttestConfig {
    /// The signing key (PKCS#8 PEM, Ed25519 or ECDSA P-256; mode 0600).
    pub key: PathBuf,
    /// Where envelopes go: `<dir>/<container-id>.intoto.json`.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// The rootfs measurement cache (see docs/attestation.md).
    #[serde(default = "default_cache")]
    pub rootfs_cache: PathBuf,
    /// Bounds on what a job's inputs (and outputs) may hold.
    #[serde(default = "default_max_files")]
    pub max_files: u64,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: brig_profiles::ByteSize,
}

impl AttestConfig {
    /// What `delete` will need to sign the run, checked before the job runs:
    /// a job whose attestation could never be written would otherwise run,
    /// and its container could then never be deleted (the settings are
    /// kept in its record). Absolute paths, a directory for the envelopes,
    /// and a private key that loads.
    pub fn check(&self) -> Result<(), String> {
        for (key, path) in [("key", &self.key), ("dir", &self.dir), ("rootfs_cache", &self.rootfs_cache)] {
            if !path.is_absolute() {
                return Err(format!("`{key}` = `{}` is not an absolute path", path.display()));
            }
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("`dir`: creating `{}`: {e}", self.dir.display()))?;
        // A read-only directory (or file system) would let the job run and
        // keep its container until the directory is writable again.
        nix::unistd::access(&self.dir, nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK)
            .map_err(|e| format!("`dir`: `{}` is not writable: {e}", self.dir.display()))?;
        brig_attest::SigningKey::load(&self.key).map_err(|e| format!("`key`: `{}`: {e}", self.key.display()))?;
        Ok(())
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("/var/lib/brig/attestations")
}

fn default_cache() -> PathBuf {
    PathBuf::from("/var/lib/brig/cache/rootfs")
}

fn default_max_files() -> u64 {
    100_000
}

fn default_max_bytes() -> brig_profiles::ByteSize {
    brig_profiles::ByteSize(16 << 30)
}

impl AttestConfig {
    pub fn limits(&self) -> Limits {
        Limits::new(self.max_files, self.max_bytes.0)
    }
}

/// Why a measurement refused a launch.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("[attest] {0}: no run could be attested, so none is started")]
    Settings(String),
    #[error("annotation `{key}`: {message}")]
    Annotation { key: &'static str, message: String },
    #[error("measuring {what}: {source}")]
    Measure {
        what: String,
        #[source]
        source: brig_attest::MeasureError,
    },
}

/// What `create` measured, kept in the run record for the attestation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Measurements {
    pub settings: AttestConfig,
    pub image_digest: Option<String>,
    pub rootfs: RootfsFacts,
    pub inputs: Vec<MountTree>,
    /// Output mount path in the container -> host directory.
    pub outputs: Vec<(String, PathBuf)>,
    /// The job's request as it was made.
    pub request: brig_attest::JobRequest,
    /// Each measured input and output: its path in the job, and the device
    /// and inode of the host directory measured there. The job's init checks
    /// that this is what it sees (crate::maskcheck::verify_expected_mounts):
    /// a link swapped on the way after the measurement would mount another.
    #[serde(default)]
    pub identities: Vec<(String, u64, u64)>,
    /// Each input's path in the job, the host directory measured, and its
    /// change stamp from that measurement (`brig_attest::change_stamp`):
    /// compared when the job has ended, so the attestation says whether an
    /// input changed on the host while the job could read it.
    #[serde(default)]
    pub input_stamps: Vec<(String, PathBuf, String)>,
    /// Device and inode of the root filesystem's directory as measured.
    #[serde(default)]
    pub rootfs_identity: Option<(u64, u64)>,
    /// The root filesystem's change stamp (`brig_attest::change_stamp`),
    /// taken once the container is built (libcontainer has made its mount
    /// points in the tree) and before the job starts: compared when the job
    /// has ended. `None` for a writable root filesystem (the job's own
    /// writes would count as changes) and in records made before.
    #[serde(default)]
    pub rootfs_stamp: Option<String>,
}

fn identity(path: &str, source: &Path) -> Result<(String, u64, u64), MeasureError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(source).map_err(|e| MeasureError::Annotation {
        key: annotation::INPUTS,
        message: format!("`{path}`: reading `{}`: {e}", source.display()),
    })?;
    Ok((path.to_string(), m.dev(), m.ino()))
}

/// Where a mount of the spec lands in the job's tree, and what backs it.
struct Landed {
    /// The destination with symbolic links followed, as the job sees it.
    at: PathBuf,
    /// The host directory a bind mount shows there (None for other mounts:
    /// a tmpfs starts empty, a proc or sysfs is not a place to declare).
    source: Option<PathBuf>,
}

/// The host path behind the job's path `path`, given the mounts in place
/// (the latest mount at `path` or above it: a later mount over a parent
/// hides the earlier ones below it; else the root filesystem), or None
/// where no host directory backs it.
fn backing(rootfs: &Path, mounts: &[Landed], path: &Path) -> Option<PathBuf> {
    match mounts.iter().rev().find(|m| path.starts_with(&m.at)) {
        Some(m) => Some(m.source.as_ref()?.join(path.strip_prefix(&m.at).ok()?)),
        None => Some(rootfs.join(path.strip_prefix("/").ok()?)),
    }
}

/// Where the job's path `dest` leads once `mounts` are in place: symbolic
/// links are followed as libcontainer follows them for a mount's target,
/// inside the job's tree (an absolute link starts again at its root, `..`
/// stops there), through the root filesystem or the host directories bind
/// mounted on the way. None after too many links.
fn land(rootfs: &Path, mounts: &[Landed], dest: &Path) -> Option<PathBuf> {
    use std::collections::VecDeque;
    use std::path::Component;
    let mut todo: VecDeque<std::ffi::OsString> = VecDeque::new();
    let push_front = |todo: &mut VecDeque<std::ffi::OsString>, p: &Path| {
        for c in p.components().rev() {
            match c {
                Component::Normal(n) => todo.push_front(n.to_os_string()),
                Component::ParentDir => todo.push_front("..".into()),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
    };
    push_front(&mut todo, dest);
    let mut at = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&name);
        let link = backing(rootfs, mounts, &next)
            .filter(|b| std::fs::symlink_metadata(b).is_ok_and(|m| m.file_type().is_symlink()))
            .and_then(|b| std::fs::read_link(b).ok());
        match link {
            Some(target) => {
                links += 1;
                if links > 40 {
                    return None;
                }
                if target.is_absolute() {
                    at = PathBuf::from("/");
                }
                push_front(&mut todo, &target);
            }
            None => at = next,
        }
    }
    Some(at)
}

fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind")
}

/// The host source of the bind mount the job sees at `dest`, and whether it
/// is read-only: the mount that lands there must be the only one, with no
/// mount below it and none laid over it later, or what is measured (that
/// mount's source) would not be what the job reads or writes.
fn mount_source(spec: &Spec, rootfs: &Path, dest: &str) -> Result<(PathBuf, bool), String> {
    let mounts: Vec<&oci_spec::runtime::Mount> = spec.mounts().iter().flatten().collect();
    let mut landed: Vec<Landed> = Vec::with_capacity(mounts.len());
    for m in &mounts {
        let at = land(rootfs, &landed, m.destination())
            .ok_or_else(|| format!("the mount at `{}` goes through too many links", m.destination().display()))?;
        let source = match is_bind(m) {
            true => m.source().as_ref().and_then(|s| std::fs::canonicalize(s).ok()),
            false => None,
        };
        landed.push(Landed { at, source });
    }
    let seen = land(rootfs, &landed, Path::new(dest))
        .ok_or_else(|| format!("`{dest}` goes through too many links in the job's tree"))?;
    let at_dest: Vec<usize> = (0..landed.len()).filter(|&i| landed[i].at == seen).collect();
    let [k] = at_dest[..] else {
        return Err(match at_dest.len() {
            0 => format!("`{dest}` is not a bind mount of the spec"),
            n => format!("`{dest}` is mounted {n} times; only one mount may be measured there"),
        });
    };
    for (j, l) in landed.iter().enumerate() {
        if j != k && l.at != seen && l.at.starts_with(&seen) {
            return Err(format!(
                "the mount at `{}` lies inside `{dest}`: the job would not see what is measured",
                mounts[j].destination().display()
            ));
        }
        if j > k && seen.starts_with(&l.at) {
            return Err(format!(
                "the mount at `{}` comes after `{dest}` and covers it: the job would not see what is measured",
                mounts[j].destination().display()
            ));
        }
    }
    let m = mounts[k];
    let source = match (is_bind(m), m.source()) {
        (true, Some(s)) => s.clone(),
        _ => return Err(format!("`{dest}` is not a bind mount of the spec")),
    };
    let ro = m.options().iter().flatten().any(|o| o == "ro");
    Ok((source, ro))
}

/// Measures the image, the rootfs and the inputs before the job starts.
pub fn measure(settings: &AttestConfig, req: &LaunchRequest, spec: &Spec) -> Result<Measurements, MeasureError> {
    settings.check().map_err(MeasureError::Settings)?;
    let image_digest = match req.annotation(annotation::IMAGE_DIGEST) {
        Some(d) if brig_attest::parse_digest(&d).is_some() => Some(d),
        Some(d) => {
            return Err(MeasureError::Annotation {
                key: annotation::IMAGE_DIGEST,
                message: format!("`{d}` is not a digest like `sha256:<64 hex digits>`"),
            })
        }
        None => None,
    };
    let rootfs_digest =
        brig_attest::rootfs_digest_with(&req.rootfs, Some(&settings.rootfs_cache), &Limits::ROOTFS).map_err(
            |source| MeasureError::Measure { what: format!("the root filesystem `{}`", req.rootfs.display()), source },
        )?;
    let rootfs = RootfsFacts::new(&req.rootfs, &rootfs_digest);
    let limits = settings.limits();
    let mut inputs = Vec::new();
    let mut identities = Vec::new();
    let mut input_stamps = Vec::new();
    for path in req.annotation_list(annotation::INPUTS) {
        let (source, ro) = mount_source(spec, &req.rootfs, &path)
            .map_err(|message| MeasureError::Annotation { key: annotation::INPUTS, message })?;
        if !ro {
            return Err(MeasureError::Annotation {
                key: annotation::INPUTS,
                message: format!("input `{path}` must be mounted read-only (add `ro` to its mount options)"),
            });
        }
        // The identity of the very directory hashed (a swap between a stat
        // and the walk would otherwise pair one directory's identity with
        // another's digest).
        let measured = brig_attest::hash_tree_no_links_stamped(&source, &limits)
            .map_err(|source| MeasureError::Measure { what: format!("input `{path}`"), source })?;
        let (dev, ino) = measured.identity;
        identities.push((path.clone(), dev, ino));
        input_stamps.push((path.clone(), source, measured.change_stamp));
        inputs.push(MountTree { path, tree: measured.tree, unchanged_during_run: None });
    }
    let mut outputs = Vec::new();
    for path in req.annotation_list(annotation::OUTPUTS) {
        let (source, _) = mount_source(spec, &req.rootfs, &path)
            .map_err(|message| MeasureError::Annotation { key: annotation::OUTPUTS, message })?;
        identities.push(identity(&path, &source)?);
        outputs.push((path, source));
    }
    let process = spec.process().as_ref();
    let request = brig_attest::JobRequest {
        image: image_digest.clone(),
        image_bound_by_token: false,
        profile: req.annotation(annotation::PROFILE),
        args: process.and_then(|p| p.args().clone()).unwrap_or_default(),
        cwd: process.map(|p| p.cwd().display().to_string()),
        inputs: req.annotation_list(annotation::INPUTS),
        outputs: req.annotation_list(annotation::OUTPUTS),
        timeout: req.annotation(annotation::TIMEOUT),
        egress: req.annotation_list(annotation::EGRESS),
    };
    Ok(Measurements {
        settings: settings.clone(),
        image_digest,
        rootfs,
        inputs,
        outputs,
        request,
        identities,
        input_stamps,
        rootfs_identity: Some(req.rootfs_identity),
        rootfs_stamp: None,
    })
}

fn cap_names(set: &Option<oci_spec::runtime::Capabilities>) -> Vec<String> {
    let mut v: Vec<String> = set.iter().flatten().map(|c| format!("CAP_{c}")).collect();
    v.sort();
    v
}

fn time_of(ns: Option<u64>) -> Option<chrono::DateTime<chrono::Utc>> {
    let ns = ns?;
    chrono::DateTime::from_timestamp((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32)
}

/// Builds the attestation's facts from the run record and how the job ended.
pub fn facts(
    record: &RunRecord,
    m: &Measurements,
    spec: Option<&Spec>,
    outcome: &crate::lifecycle::Outcome,
    killed: bool,
    rootless: Option<&crate::rootless::RootlessRecord>,
) -> brig_attest::RunFacts {
    let limits = m.settings.limits();
    let mut outputs = Vec::new();
    let mut errors = Vec::new();
    for (path, source) in &m.outputs {
        // The directory measured must be the one the job was given: one put
        // in its place on the host after the job (a `mv` of the output and a
        // new directory of the same name) is not the job's output. Records
        // made before the identities were kept say nothing either way.
        let given = m.identities.iter().find(|(p, _, _)| p == path).map(|(_, dev, ino)| (*dev, *ino));
        match brig_attest::hash_tree_no_links_identified(source, &limits) {
            Ok((_, measured)) if given.is_some_and(|given| given != measured) => errors.push(format!(
                "measuring output `{path}`: `{}` is no longer the directory the job was given (it was replaced \
                 on the host after the launch); not attested",
                source.display()
            )),
            Ok((tree, _)) => outputs.push(MountTree { path: path.clone(), tree, unchanged_during_run: None }),
            // Recorded as an error of the run; the output is not a subject.
            Err(e) => errors.push(format!("measuring output `{path}`: {e}")),
        }
    }
    // Each input looked at again, now that the job has ended: a change stamp
    // that differs means the input changed on the host while the job could
    // read it (even if it was changed back), so what the job read may not be
    // what was measured. Records made before the stamps were kept say
    // nothing either way.
    let inputs: Vec<MountTree> = m
        .inputs
        .iter()
        .map(|input| {
            let stamp = m.input_stamps.iter().find(|(path, _, _)| *path == input.path);
            let unchanged = stamp.map(|(path, source, before)| match brig_attest::change_stamp(source, &limits) {
                Ok(after) => after == *before,
                Err(e) => {
                    errors.push(format!("checking input `{path}` after the run: {e}"));
                    false
                }
            });
            MountTree { unchanged_during_run: unchanged, ..input.clone() }
        })
        .collect();
    // The root filesystem walked again (metadata only, as for inputs): a
    // change stamp that differs from the one taken before the job started
    // means the tree changed on the host while the job could read it, so
    // what ran may not be what is attested. A directory that is no longer
    // the one measured (a client unmounted its overlay before `delete`,
    // leaving the empty mount point) says nothing either way.
    let mut rootfs = m.rootfs.clone();
    rootfs.unchanged_during_run = m.rootfs_stamp.as_ref().and_then(|before| {
        use std::os::unix::fs::MetadataExt;
        let now = std::fs::symlink_metadata(&record.rootfs).ok().map(|md| (md.dev(), md.ino()));
        if m.rootfs_identity.is_some() && now != m.rootfs_identity {
            tracing::info!(
                rootfs = %record.rootfs.display(),
                "the root filesystem is no longer the directory measured; rootfs-unchanged is unknown"
            );
            return None;
        }
        match brig_attest::change_stamp(&record.rootfs, &Limits::ROOTFS) {
            Ok(after) => Some(after == *before),
            Err(e) => {
                errors.push(format!("checking the root filesystem after the run: {e}"));
                None
            }
        }
    });
    let identity = (!record.auth.identity.is_empty()).then(|| {
        let id = &record.auth.identity;
        brig_attest::Identity {
            iss: id.get("iss").cloned(),
            sub: id.get("sub").cloned(),
            jti: id.get("jti").cloned(),
            tenant: id.get("tenant").cloned(),
            other: id
                .iter()
                .filter(|(k, _)| !["iss", "sub", "jti", "tenant"].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    });
    let process = spec.and_then(|s| s.process().as_ref());
    let caps = process.and_then(|p| p.capabilities().clone()).unwrap_or_default();
    let linux = spec.and_then(|s| s.linux().as_ref());
    let mut cgroup = BTreeMap::new();
    if let Some(r) = linux.and_then(|l| l.resources().as_ref()) {
        if let Some(l) = r.memory().as_ref().and_then(|m| m.limit()) {
            cgroup.insert("memory".to_string(), l.to_string());
        }
        if let Some(p) = r.pids().as_ref() {
            cgroup.insert("pids".to_string(), p.limit().to_string());
        }
        if let Some(c) = r.cpu() {
            if let (Some(q), Some(p)) = (c.quota(), c.period()) {
                cgroup.insert("cpu".to_string(), format!("{q}/{p}"));
            }
        }
    }
    let mut user_namespace = record.userns.as_ref().map(|u| {
        let map = vec![brig_attest::IdMap { container_id: 0, host_id: u.host_base, size: u.size }];
        brig_attest::UserNamespace { uid_map: map.clone(), gid_map: map }
    });
    // A rootless job: the caller, and the maps over its subordinate IDs (or
    // the caller's own namespace's, rootless Podman's), are part of what the
    // job ran under; a verifier can require or refuse it.
    let mut other = BTreeMap::new();
    if let Some(m) = &record.memfd_noexec {
        other.insert("memfd_noexec".to_string(), serde_json::Value::String(m.clone()));
    }
    if let Some(r) = rootless {
        let maps = |m: &[[u32; 3]]| {
            m.iter().map(|&[c, h, n]| brig_attest::IdMap { container_id: c, host_id: h, size: n }).collect()
        };
        if r.own_userns && user_namespace.is_none() {
            user_namespace = Some(brig_attest::UserNamespace { uid_map: maps(&r.uid_map), gid_map: maps(&r.gid_map) });
        }
        other.insert(
            "rootless".to_string(),
            serde_json::json!({
                "mode": r.mode,
                "host_uid": r.host_uid,
                "host_gid": r.host_gid,
                "own_user_namespace": r.own_userns,
                "cgroup": r.cgroup.path,
                "cgroup_delegated": r.cgroup.delegated,
            }),
        );
    }
    let egress = record
        .plan
        .egress
        .as_ref()
        .map(|e| serde_json::to_value(e).ok().map(|v| vec![v.to_string()]).unwrap_or_default())
        .unwrap_or_default();
    let now = chrono::Utc::now();
    let mut error = outcome.start_error.clone();
    if !errors.is_empty() {
        error = Some([error.unwrap_or_default(), errors.join("; ")].join(" ").trim().to_string());
    }
    brig_attest::RunFacts {
        container_id: record.id.clone(),
        host: nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        brig_version: crate::VERSION.to_string(),
        request: m.request.clone(),
        profile: brig_attest::ProfileFacts {
            name: record.profile.name.clone(),
            digest: record.profile.digest.clone(),
            origin: Some(record.profile.origin.clone()),
        },
        authorization: brig_attest::Authorization {
            mode: record.auth.mode.clone(),
            decision: record.auth.decision.clone(),
            policy_ids: record.auth.policy_ids.clone(),
            audit_record: record.auth.audit_record.as_ref().map(|a| brig_attest::AuditRecordRef {
                seq: a.seq,
                sha256: a.sha256.clone(),
                log: a.log.clone(),
            }),
        },
        identity,
        enforcement: brig_attest::Enforcement {
            landlock: brig_attest::Landlock {
                abi: outcome.landlock_abi.map(|a| a as u32),
                status: outcome.landlock.clone().unwrap_or_else(|| "off".into()),
            },
            seccomp: brig_attest::Seccomp {
                filter_digest: record.plan.seccomp_digest.clone(),
                filters: outcome.seccomp_filters.unwrap_or(0) as u32,
                client_filter_kept: record.spec_seccomp,
            },
            namespaces: {
                let mut ns = record.namespaces.clone();
                if record.userns.is_some() && !ns.iter().any(|n| n == "user") {
                    ns.push("user".into());
                }
                ns
            },
            user_namespace,
            no_new_privs: record.plan.no_new_privs,
            capabilities: brig_attest::Capabilities {
                bounding: cap_names(caps.bounding()),
                effective: cap_names(caps.effective()),
                permitted: cap_names(caps.permitted()),
                inheritable: cap_names(caps.inheritable()),
                ambient: cap_names(caps.ambient()),
            },
            readonly_rootfs: spec.and_then(|s| s.root().as_ref()).and_then(|r| r.readonly()).unwrap_or(false),
            cgroup,
            egress,
            other,
        },
        tightened: record.tightened.iter().filter_map(|t| serde_json::to_value(t).ok()).collect(),
        rootfs,
        inputs,
        outputs,
        started_on: time_of(outcome.started_ns).unwrap_or(now),
        finished_on: time_of(outcome.ended_ns).unwrap_or(now),
        outcome: brig_attest::Outcome {
            exit_code: outcome.exit_code.map(|c| c as i32),
            signal: outcome.signal.map(|s| s as i32),
            timed_out: outcome.timed_out,
            oom_killed: outcome.oom_killed,
            killed,
            error,
            resources: brig_attest::Resources {
                cpu_ns: outcome.usage.cpu_ns,
                peak_memory_bytes: outcome.usage.memory_peak,
                peak_pids: outcome.usage.pids_peak,
            },
        },
    }
}

/// Signs and writes the attestation; the path of the envelope.
/// In the container's directory: the run's statement, once `delete` has
/// measured the outputs and built it, and its signed envelope, once signed.
/// A `delete` retried after a failed write (a full disk, a read-only
/// directory, a key that would not load, a kill) writes what the first
/// attempt measured and signed, not the outputs as they are by then; and a
/// write that got as far as its rename is found again, not repeated
/// (`brig_attest::write_envelope_bytes`).
pub const STATEMENT_FILE: &str = "brig-statement.json";
pub const ENVELOPE_FILE: &str = "brig-envelope.json";

/// The run's envelope: the one kept in `dir` if there is one, or else the
/// statement kept there (or built from `facts()` and kept) signed now and
/// kept. Nothing kept is ever rebuilt.
pub fn seal_once(
    dir: &Path,
    id: &str,
    settings: &AttestConfig,
    facts: impl FnOnce() -> brig_attest::RunFacts,
) -> Result<Vec<u8>, String> {
    let kept = |name: &str| match std::fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading `{}`: {e}", dir.join(name).display())),
    };
    let keep = |name: &str, bytes: &[u8]| {
        crate::state::write_atomic(&dir.join(name), bytes, 0o600)
            .map_err(|e| format!("keeping `{}`: {e}", dir.join(name).display()))
    };
    if let Some(envelope) = kept(ENVELOPE_FILE)? {
        // A retry: an attempt killed before its rename left its temporary
        // file in the attestation directory.
        let removed = brig_attest::remove_stale_temporaries(&settings.dir, id);
        if removed > 0 {
            tracing::debug!(id, removed, "removed an earlier attempt's unfinished record");
        }
        return Ok(envelope);
    }
    let statement = match kept(STATEMENT_FILE)? {
        Some(statement) => statement,
        None => {
            let statement = brig_attest::statement_bytes(&facts()).map_err(|e| e.to_string())?;
            keep(STATEMENT_FILE, &statement)?;
            statement
        }
    };
    let key = brig_attest::SigningKey::load(&settings.key)
        .map_err(|e| format!("loading the attestation key `{}`: {e}", settings.key.display()))?;
    let envelope = brig_attest::sign(&statement, brig_attest::PAYLOAD_TYPE, &key).map_err(|e| e.to_string())?.to_json();
    keep(ENVELOPE_FILE, &envelope)?;
    Ok(envelope)
}

/// Writes a sealed envelope (`seal_once`) for container `id`.
pub fn write_sealed(envelope: &[u8], id: &str, settings: &AttestConfig) -> Result<PathBuf, String> {
    std::fs::create_dir_all(&settings.dir).map_err(|e| format!("creating `{}`: {e}", settings.dir.display()))?;
    brig_attest::write_envelope_bytes(&settings.dir, id, envelope).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::symlink;

    struct Tree {
        _dir: tempfile::TempDir,
        rootfs: PathBuf,
        host: PathBuf,
    }

    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        let host = dir.path().join("host");
        for d in ["in", "data", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        for d in ["approved", "evil", "x"] {
            std::fs::create_dir_all(host.join(d)).unwrap();
        }
        Tree { rootfs, host, _dir: dir }
    }

    fn spec(mounts: &[(&str, &Path, &str)]) -> Spec {
        let mounts: Vec<serde_json::Value> = mounts
            .iter()
            .map(|(dest, src, ro)| {
                serde_json::json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", ro]})
            })
            .collect();
        serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "mounts": mounts}))
            .unwrap()
    }

    #[test]
    fn the_one_bind_mount_at_a_path_is_measured() {
        let t = tree();
        let s = spec(&[("/data", &t.host.join("x"), "rw"), ("/in", &t.host.join("approved"), "ro")]);
        assert_eq!(mount_source(&s, &t.rootfs, "/in").unwrap(), (t.host.join("approved"), true));
        assert_eq!(mount_source(&s, &t.rootfs, "/data").unwrap(), (t.host.join("x"), false));
        assert!(mount_source(&s, &t.rootfs, "/etc").unwrap_err().contains("not a bind mount"));
    }

    /// The attack: the job sees the last mount at a path, the attestation
    /// measured the first.
    #[test]
    fn a_second_mount_at_a_declared_path_is_refused() {
        let t = tree();
        let s = spec(&[("/in", &t.host.join("approved"), "ro"), ("/in", &t.host.join("evil"), "ro")]);
        assert!(mount_source(&s, &t.rootfs, "/in").unwrap_err().contains("mounted 2 times"));
        // The same through a differently spelled destination.
        let s = spec(&[("/in", &t.host.join("approved"), "ro"), ("//in/./", &t.host.join("evil"), "ro")]);
        assert!(mount_source(&s, &t.rootfs, "/in").unwrap_err().contains("mounted 2 times"));
    }

    #[test]
    fn a_mount_inside_or_later_over_a_declared_path_is_refused() {
        let t = tree();
        let s = spec(&[("/in", &t.host.join("approved"), "ro"), ("/in/sub", &t.host.join("evil"), "ro")]);
        assert!(mount_source(&s, &t.rootfs, "/in").unwrap_err().contains("lies inside"));
        let s = spec(&[("/data/in", &t.host.join("approved"), "ro"), ("/data", &t.host.join("evil"), "ro")]);
        assert!(mount_source(&s, &t.rootfs, "/data/in").unwrap_err().contains("covers it"));
    }

    /// A destination that reaches the declared path through a link of the
    /// image, or of a host directory mounted before it, lands on it too.
    #[test]
    fn links_on_the_way_to_a_mount_are_followed() {
        let t = tree();
        symlink("/in", t.rootfs.join("in2")).unwrap();
        let s = spec(&[("/in", &t.host.join("approved"), "ro"), ("/in2", &t.host.join("evil"), "ro")]);
        assert!(mount_source(&s, &t.rootfs, "/in").unwrap_err().contains("mounted 2 times"));
        symlink("../../in", t.host.join("x/y")).unwrap();
        let s = spec(&[
            ("/data", &t.host.join("x"), "ro"),
            ("/in", &t.host.join("approved"), "ro"),
            ("/data/y", &t.host.join("evil"), "ro"),
        ]);
        assert!(mount_source(&s, &t.rootfs, "/in").unwrap_err().contains("mounted 2 times"));
        // The tree the links are read in is the one the job sees: of two
        // mounts at `/data`, the later; a later mount over a parent hides a
        // deeper earlier one.
        let (plain, evil) = (t.host.join("x"), t.host.join("evil"));
        std::fs::create_dir_all(plain.join("y2")).unwrap();
        symlink("/in", evil.join("y2")).unwrap();
        std::fs::create_dir_all(plain.join("sub")).unwrap();
        let s = spec(&[
            ("/data", &plain, "ro"),
            ("/data", &evil, "ro"),
            ("/in", &t.host.join("approved"), "ro"),
            ("/data/y2", &t.host.join("x"), "ro"),
        ]);
        assert!(mount_source(&s, &t.rootfs, "/in").unwrap_err().contains("mounted 2 times"));
        std::fs::create_dir_all(evil.join("sub")).unwrap();
        symlink("/in", evil.join("sub/y3")).unwrap();
        let s = spec(&[
            ("/data/sub", &plain, "ro"),
            ("/data", &evil, "ro"),
            ("/in", &t.host.join("approved"), "ro"),
            ("/data/sub/y3", &t.host.join("x"), "ro"),
        ]);
        assert!(mount_source(&s, &t.rootfs, "/in").unwrap_err().contains("mounted 2 times"));
        // A link that loops is an error, not a hang.
        symlink("/loop", t.rootfs.join("loop")).unwrap();
        let s = spec(&[("/in", &t.host.join("approved"), "ro"), ("/loop/x", &t.host.join("evil"), "ro")]);
        assert!(mount_source(&s, &t.rootfs, "/in").unwrap_err().contains("too many links"));
        // A declared path that is itself a link of the image is measured
        // where the job reads it.
        let s = spec(&[("/in", &t.host.join("approved"), "ro")]);
        assert_eq!(mount_source(&s, &t.rootfs, "/in2").unwrap().0, t.host.join("approved"));
    }
}
