//! Verification of an envelope: signature, payload type, statement shape,
//! optionally the subjects against files, and `KEY=VALUE` requirements.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::dsse::{b64, check_signatures, Envelope, SigCheck, PAYLOAD_TYPE};
use crate::keys::PublicKey;
use crate::name::{escape, unescape};
use crate::statement::{
    parse_digest, run_subject_digest, BUILDER_PREFIX, BUILD_TYPE, PREDICATE_TYPE, RUN_SUBJECT_PREFIX, STATEMENT_TYPE,
};

/// The largest envelope `verify` reads.
pub const MAX_ENVELOPE_BYTES: usize = 64 << 20;

/// Why an envelope did not verify. Each reason is its own variant.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the envelope is {size} bytes, more than the {max} bytes allowed")]
    TooLarge { size: usize, max: usize },
    #[error("the envelope is not a DSSE envelope: {0}")]
    Malformed(String),
    #[error("the envelope's `payload` is not base64")]
    PayloadEncoding,
    #[error("no trusted key was given")]
    NoTrustedKeys,
    #[error("the envelope has no signature")]
    NoSignatures,
    #[error("unknown key: no signature is by a trusted key (the envelope is signed by keyid {})", keyids.join(", "))]
    UnknownKey { keyids: Vec<String> },
    #[error("bad signature by keyid `{keyid}`: the envelope was altered after it was signed")]
    BadSignature { keyid: String },
    #[error("keyid `{keyid}` is on two signatures: an envelope carries one signature per key")]
    RepeatedSignature { keyid: String },
    #[error("payload type is `{found}`, expected `application/vnd.in-toto+json`")]
    PayloadType { found: String },
    #[error("the payload is not a JSON object: {0}")]
    NotJson(String),
    #[error("the payload repeats a key ({0}): readers that keep the first value and readers that keep the last would read different statements")]
    DuplicateKey(String),
    #[error("statement `_type` is `{found}`, expected `https://in-toto.io/Statement/v1`")]
    StatementType { found: String },
    #[error("`predicateType` is `{found}`, expected `https://slsa.dev/provenance/v1`")]
    PredicateType { found: String },
    #[error("`buildType` is `{found}`, not a brig run")]
    BuildType { found: String },
    #[error("subject {index} is malformed: {reason}")]
    BadSubject { index: usize, reason: String },
    #[error("the statement is malformed at `{field}`: {reason}")]
    BadStatement { field: &'static str, reason: String },
    #[error("subject `{name}` cannot name a file under the artifacts directory")]
    UnsafeName { name: String },
    #[error("subject `{name}` is under no `--artifacts` mount")]
    NotMapped { name: String },
    #[error("missing file: subject `{name}` has no file at `{}`", path.display())]
    MissingFile { name: String, path: PathBuf },
    #[error("subject `{name}`: `{}` is not a regular file (symlinks are not followed)", path.display())]
    NotAFile { name: String, path: PathBuf },
    #[error("cannot read subject `{name}` at `{}`: {source}", path.display())]
    ArtifactIo { name: String, path: PathBuf, source: std::io::Error },
    #[error("digest mismatch for `{name}`: the statement says sha256:{expected}, the file is sha256:{actual}")]
    DigestMismatch { name: String, expected: String, actual: String },
    #[error("output `{path}` is declared but was not measured ({why}): its files are not attested")]
    OutputNotMeasured { path: String, why: String },
    #[error("output `{path}` has no `--artifacts` directory (give `{path}=DIR`)")]
    OutputNotMapped { path: String },
    #[error("`--artifacts {mount}=…`: `{mount}` is not an output of this run")]
    NotAnOutput { mount: String },
    #[error("cannot measure output `{path}` at `{}`: {reason}", dir.display())]
    OutputIo { path: String, dir: PathBuf, reason: String },
    #[error("output `{path}` at `{}` is not what was attested (a file, link or entry added, removed or changed): the statement says sha256:{expected}, the directory is sha256:{actual}", dir.display())]
    TreeMismatch { path: String, dir: PathBuf, expected: String, actual: String },
    #[error("requirement not met: `{key}` is `{actual}`, required `{expected}`")]
    RequirementNotMet { key: String, expected: String, actual: String },
    #[error("bad requirement `{0}`: {1}")]
    BadRequirement(String, String),
}

/// Where the files named by the subjects are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifacts {
    /// Subject `out/a.txt` is `DIR/out/a.txt`.
    Dir(PathBuf),
    /// Each container mount path (`/out`) is a host directory: subject
    /// `out/a.txt` is `HOSTDIR/a.txt`.
    Mounts(Vec<(String, PathBuf)>),
}

impl Artifacts {
    /// Parses the `--artifacts` argument(s): `DIR`, or one or more
    /// `/container/path=HOSTDIR`.
    pub fn parse(args: &[String]) -> Result<Option<Artifacts>, VerifyError> {
        let mut mounts = Vec::new();
        let mut dir = None;
        for a in args {
            match a.split_once('=') {
                Some((m, d)) if m.starts_with('/') => mounts.push((m.trim_end_matches('/').to_string(), d.into())),
                _ => {
                    if dir.replace(PathBuf::from(a)).is_some() {
                        return Err(VerifyError::BadRequirement(
                            a.clone(),
                            "give one `--artifacts DIR`, or `--artifacts /mount=DIR` per mount".into(),
                        ));
                    }
                }
            }
        }
        match (dir, mounts.is_empty()) {
            (None, true) => Ok(None),
            (Some(d), true) => Ok(Some(Artifacts::Dir(d))),
            (None, false) => Ok(Some(Artifacts::Mounts(mounts))),
            (Some(_), false) => {
                Err(VerifyError::BadRequirement("--artifacts".into(), "do not mix `DIR` with `/mount=DIR`".into()))
            }
        }
    }
}

/// A field a requirement checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The profile's name.
    Profile,
    /// The profile's digest.
    ProfileDigest,
    /// The exit code (`none` if the job did not exit).
    Exit,
    /// The signal that ended the job (`none` if none).
    Signal,
    /// The image digest (`sha256:…`).
    Image,
    /// The rootfs digest (`sha256:…`).
    Rootfs,
    /// The token's tenant.
    Tenant,
    /// The token's `sub`.
    Subject,
    /// The token's `iss`.
    Issuer,
    /// The authorization decision.
    Decision,
    TimedOut,
    Oom,
    Killed,
    /// An output (a statement subject) named `NAME`, or `NAME@sha256:HEX`.
    Output,
    /// `true` when no input tree changed on the host during the run.
    InputsUnchanged,
    /// `true` when the rootfs's change stamp from before the job started
    /// held when it had ended (nothing changed the tree in between).
    RootfsUnchanged,
    /// The builder id (`brig://HOST`).
    Builder,
    /// The container id.
    Container,
    /// The keyid of the trusted key that verified the envelope: `builder`
    /// is what the statement says, the key is who signed it; with several
    /// hosts' keys trusted, this is what ties a record to one host.
    KeyId,
    /// `sha256:HEX` of the statement (the payload's bytes): one run's record
    /// exactly, where container and tenant can name several runs.
    Statement,
}

impl Field {
    const ALL: &'static [(&'static str, Field)] = &[
        ("profile", Field::Profile),
        ("profile-digest", Field::ProfileDigest),
        ("exit", Field::Exit),
        ("signal", Field::Signal),
        ("image", Field::Image),
        ("rootfs", Field::Rootfs),
        ("tenant", Field::Tenant),
        ("subject", Field::Subject),
        ("sub", Field::Subject),
        ("iss", Field::Issuer),
        ("decision", Field::Decision),
        ("timed_out", Field::TimedOut),
        ("timed-out", Field::TimedOut),
        ("oom", Field::Oom),
        ("killed", Field::Killed),
        ("output", Field::Output),
        ("inputs-unchanged", Field::InputsUnchanged),
        ("rootfs-unchanged", Field::RootfsUnchanged),
        ("builder", Field::Builder),
        ("container", Field::Container),
        ("keyid", Field::KeyId),
        ("statement", Field::Statement),
    ];

    /// The keys `--require` accepts.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        Self::ALL.iter().map(|(k, _)| *k)
    }
}

/// A `KEY=VALUE` requirement on the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub field: Field,
    pub value: String,
}

impl FromStr for Requirement {
    type Err = VerifyError;
    fn from_str(s: &str) -> Result<Requirement, VerifyError> {
        let bad = |why: String| VerifyError::BadRequirement(s.to_string(), why);
        let (key, value) = s.split_once('=').ok_or_else(|| bad("expected KEY=VALUE".into()))?;
        let field = Field::ALL.iter().find(|(k, _)| *k == key).map(|(_, f)| *f).ok_or_else(|| {
            bad(format!("unknown key `{key}` (known: {})", Field::keys().collect::<Vec<_>>().join(", ")))
        })?;
        match field {
            Field::TimedOut | Field::Oom | Field::Killed | Field::InputsUnchanged | Field::RootfsUnchanged
                if value != "true" && value != "false" =>
            {
                return Err(bad("expected `true` or `false`".into()))
            }
            Field::Exit | Field::Signal if value != "none" && value.parse::<i64>().is_err() => {
                return Err(bad("expected a number or `none`".into()))
            }
            Field::KeyId if !is_lower_hex(value) || value.len() != 64 => {
                return Err(bad("expected 64 lower-case hex digits (the keyid `verified:` prints)".into()))
            }
            Field::Image | Field::Rootfs | Field::ProfileDigest | Field::Statement if parse_digest(value).is_none() => {
                return Err(bad("expected `sha256:` and 64 lower-case hex digits".into()))
            }
            _ => {}
        }
        Ok(Requirement { key: key.to_string(), field, value: value.to_string() })
    }
}

/// A subject of a verified statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    pub sha256: String,
}

/// A statement whose envelope verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedStatement {
    pub statement: Value,
    /// The trusted key that signed it.
    pub keyid: String,
    /// `sha256:HEX` of the payload: this record's identity.
    pub statement_digest: String,
    pub subjects: Vec<Subject>,
    /// Files whose digest was recomputed (with `--artifacts`).
    pub artifacts_checked: usize,
}

impl VerifiedStatement {
    /// The value of a field, as requirements compare it.
    pub fn field(&self, f: Field) -> String {
        match f {
            Field::KeyId => self.keyid.clone(),
            Field::Statement => self.statement_digest.clone(),
            _ => field_value(&self.statement, f),
        }
    }

    /// The container id (`invocationId`).
    pub fn container_id(&self) -> String {
        self.field(Field::Container)
    }

    /// Where the launch decision is in the audit log (`seq`, SHA-256 of
    /// its line, SHA-256 of the log's first line), when the run recorded one.
    pub fn audit_record(&self) -> Option<(u64, String, String)> {
        let r = at(&self.statement, "/predicate/buildDefinition/internalParameters/authorization/auditRecord");
        let log = r.get("log").and_then(|l| l.as_str()).unwrap_or("").to_string();
        Some((r.get("seq")?.as_u64()?, r.get("sha256")?.as_str()?.to_string(), log))
    }
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    v.pointer(path).unwrap_or(&Value::Null)
}

fn outcome(s: &Value) -> &Value {
    at(s, "/predicate/runDetails/byproducts")
        .as_array()
        .and_then(|a| a.iter().find(|b| b.get("name").and_then(Value::as_str) == Some("outcome")))
        .map_or(&Value::Null, |b| at(b, "/annotations"))
}

fn dependency<'a>(s: &'a Value, name: &str) -> &'a Value {
    at(s, "/predicate/buildDefinition/resolvedDependencies")
        .as_array()
        .and_then(|a| a.iter().find(|b| b.get("name").and_then(Value::as_str) == Some(name)))
        .unwrap_or(&Value::Null)
}

/// A number or flag as requirements compare it: `none` when absent.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A name (tenant, subject, issuer, profile, ...) as requirements compare it:
/// empty when absent, so `tenant=` requires that there is none, and
/// `tenant=none` is the tenant called `none` only.
fn name_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => text(other),
    }
}

fn field_value(s: &Value, f: Field) -> String {
    let ip = "/predicate/buildDefinition/internalParameters";
    match f {
        Field::Profile => name_text(at(s, &format!("{ip}/profile/name"))),
        Field::ProfileDigest => text(at(s, &format!("{ip}/profile/digest"))),
        Field::Exit => text(at(outcome(s), "/exitCode")),
        Field::Signal => text(at(outcome(s), "/signal")),
        Field::TimedOut => text(at(outcome(s), "/timedOut")),
        Field::Oom => text(at(outcome(s), "/oomKilled")),
        Field::Killed => text(at(outcome(s), "/killed")),
        Field::Image => name_text(at(s, "/predicate/buildDefinition/externalParameters/image")),
        Field::Rootfs => match at(dependency(s, "rootfs"), "/digest/sha256").as_str() {
            Some(h) => format!("sha256:{h}"),
            None => "none".into(),
        },
        Field::Tenant => name_text(at(s, &format!("{ip}/identity/tenant"))),
        Field::Subject => name_text(at(s, &format!("{ip}/identity/sub"))),
        Field::Issuer => name_text(at(s, &format!("{ip}/identity/iss"))),
        Field::Decision => name_text(at(s, &format!("{ip}/authorization/decision"))),
        Field::Builder => name_text(at(s, "/predicate/runDetails/builder/id")),
        Field::Container => name_text(at(s, "/predicate/runDetails/metadata/invocationId")),
        Field::Output | Field::KeyId | Field::Statement => String::new(),
        Field::InputsUnchanged => inputs_unchanged(s),
        Field::RootfsUnchanged => match at(dependency(s, "rootfs"), "/annotations/unchangedDuringRun").as_bool() {
            Some(b) => b.to_string(),
            None => "unknown".into(),
        },
    }
}

/// `true` when every input tree was unchanged during the run (or there were
/// none), `false` when one changed, `unknown` when one was not checked.
fn inputs_unchanged(s: &Value) -> String {
    let deps = at(s, "/predicate/buildDefinition/resolvedDependencies").as_array().cloned().unwrap_or_default();
    let mut answer = "true";
    for d in deps.iter().filter(|d| d.get("name").and_then(Value::as_str).is_some_and(|n| n.starts_with("inputs:"))) {
        match at(d, "/annotations/unchangedDuringRun").as_bool() {
            Some(true) => {}
            Some(false) => return "false".into(),
            None => answer = "unknown",
        }
    }
    answer.into()
}

fn check_requirement(v: &VerifiedStatement, r: &Requirement) -> Result<(), VerifyError> {
    let subjects = &v.subjects;
    let not_met = |actual: String| VerifyError::RequirementNotMet {
        key: r.key.clone(),
        expected: clean(&r.value),
        actual: if actual.is_empty() { "(absent)".into() } else { clean(&actual) },
    };
    if r.field == Field::Output {
        let (name, digest) = match r.value.rsplit_once("@sha256:") {
            Some((n, d)) => (n, Some(d)),
            None => (r.value.as_str(), None),
        };
        return match subjects.iter().find(|x| x.name == name) {
            None => Err(not_met("absent".into())),
            Some(x) if digest.is_some_and(|d| d != x.sha256) => Err(not_met(format!("{}@sha256:{}", x.name, x.sha256))),
            Some(_) => Ok(()),
        };
    }
    let actual = v.field(r.field);
    if actual == r.value {
        Ok(())
    } else {
        Err(not_met(actual))
    }
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks the statement's shape; returns its subjects.
fn check_statement(s: &Value) -> Result<Vec<Subject>, VerifyError> {
    if !s.is_object() {
        return Err(VerifyError::NotJson("not an object".into()));
    }
    let ty = at(s, "/_type");
    if ty.as_str() != Some(STATEMENT_TYPE) {
        return Err(VerifyError::StatementType { found: clean(&text(ty)) });
    }
    let pt = at(s, "/predicateType");
    if pt.as_str() != Some(PREDICATE_TYPE) {
        return Err(VerifyError::PredicateType { found: clean(&text(pt)) });
    }
    let subj = at(s, "/subject")
        .as_array()
        .ok_or(VerifyError::BadStatement { field: "subject", reason: "missing or not an array".into() })?;
    if subj.is_empty() {
        return Err(VerifyError::BadStatement { field: "subject", reason: "empty".into() });
    }
    let mut subjects = Vec::with_capacity(subj.len());
    let mut names = BTreeSet::new();
    for (index, x) in subj.iter().enumerate() {
        let bad = |reason: &str| VerifyError::BadSubject { index, reason: reason.into() };
        let name = x.get("name").and_then(Value::as_str).ok_or_else(|| bad("no `name`"))?;
        if name.is_empty() || unescape(name).is_none() {
            return Err(bad(&format!("name `{}` is not a canonical brig name", escape(name.as_bytes()))));
        }
        if !names.insert(name) {
            return Err(bad(&format!("name `{name}` appears twice")));
        }
        let digest = x.get("digest").and_then(Value::as_object).ok_or_else(|| bad("no `digest` object"))?;
        if digest.is_empty() {
            return Err(bad("empty `digest`"));
        }
        for (alg, v) in digest {
            let v = v.as_str().ok_or_else(|| bad(&format!("digest `{alg}` is not a string")))?;
            let ok = match alg.as_str() {
                "sha256" | "sha384" | "sha512" => parse_digest(&format!("{alg}:{v}")).is_some(),
                _ => is_lower_hex(v),
            };
            if !ok {
                return Err(bad(&format!("digest `{alg}` is not lower-case hex of the right length")));
            }
        }
        let sha256 = digest.get("sha256").and_then(Value::as_str).ok_or_else(|| bad("no `sha256` digest"))?;
        subjects.push(Subject { name: name.to_string(), sha256: sha256.to_string() });
    }
    let bt = at(s, "/predicate/buildDefinition/buildType");
    if bt.as_str() != Some(BUILD_TYPE) {
        return Err(VerifyError::BuildType { found: clean(&text(bt)) });
    }
    if !at(s, "/predicate/buildDefinition/externalParameters").is_object() {
        return Err(VerifyError::BadStatement {
            field: "predicate.buildDefinition.externalParameters",
            reason: "missing or not an object".into(),
        });
    }
    if !at(s, "/predicate/runDetails/builder/id").as_str().is_some_and(|b| b.starts_with(BUILDER_PREFIX)) {
        return Err(VerifyError::BadStatement {
            field: "predicate.runDetails.builder.id",
            reason: format!("missing or not a `{BUILDER_PREFIX}` id"),
        });
    }
    let id = at(s, "/predicate/runDetails/metadata/invocationId").as_str().ok_or(VerifyError::BadStatement {
        field: "predicate.runDetails.metadata.invocationId",
        reason: "missing or not a string".into(),
    })?;
    // The outcome: its `content` and `annotations` must say the same.
    let byproducts = at(s, "/predicate/runDetails/byproducts").as_array().cloned().unwrap_or_default();
    let outcomes: Vec<&Value> =
        byproducts.iter().filter(|b| b.get("name").and_then(Value::as_str) == Some("outcome")).collect();
    let bad_outcome = |reason: &str| VerifyError::BadStatement {
        field: "predicate.runDetails.byproducts[outcome]",
        reason: reason.into(),
    };
    let [o] = outcomes.as_slice() else { return Err(bad_outcome("there must be exactly one `outcome` byproduct")) };
    let content =
        o.get("content").and_then(Value::as_str).and_then(b64).ok_or_else(|| bad_outcome("no base64 `content`"))?;
    let decoded: Value = serde_json::from_slice(&content).map_err(|_| bad_outcome("`content` is not JSON"))?;
    if Some(&decoded) != o.get("annotations") {
        return Err(bad_outcome("`content` and `annotations` differ"));
    }
    declared_outputs(s)?;
    // The run subject (a run without output files) is bound to the run.
    let run_name = format!("{RUN_SUBJECT_PREFIX}{id}");
    if let Some(run) = subjects.iter().find(|x| x.name == run_name) {
        let rootfs = at(dependency(s, "rootfs"), "/digest/sha256").as_str().unwrap_or_default();
        let started = at(s, "/predicate/runDetails/metadata/startedOn").as_str().unwrap_or_default();
        let expected = run_subject_digest(id, rootfs, started);
        if run.sha256 != expected {
            return Err(VerifyError::DigestMismatch {
                name: run.name.clone(),
                expected: run.sha256.clone(),
                actual: expected,
            });
        }
    }
    Ok(subjects)
}

/// The outputs the run declared, each with the root digest of its measured
/// tree (byproduct `outputs:<path>`). An output without one (its measurement
/// failed: over the limits, changed while measured) fails verification: the
/// record would otherwise verify while attesting none of its files.
fn declared_outputs(s: &Value) -> Result<Vec<(String, String)>, VerifyError> {
    let bad = |reason: String| VerifyError::BadStatement {
        field: "predicate.buildDefinition.externalParameters.outputs",
        reason,
    };
    let declared = match at(s, "/predicate/buildDefinition/externalParameters/outputs") {
        Value::Null => Vec::new(),
        Value::Array(a) => a.clone(),
        _ => return Err(bad("not an array".into())),
    };
    let byproducts = at(s, "/predicate/runDetails/byproducts").as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for d in &declared {
        let path = d.as_str().ok_or_else(|| bad("an entry is not a string".into()))?;
        if !path.starts_with('/') || path.split('/').any(|c| c == "." || c == "..") {
            return Err(bad(format!("`{}` is not an absolute container path", clean(path))));
        }
        let name = format!("outputs:{path}");
        let digest = byproducts
            .iter()
            .filter(|b| b.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .map(|b| at(b, "/digest/sha256").as_str().filter(|h| h.len() == 64 && is_lower_hex(h)))
            .next();
        match digest {
            Some(Some(h)) => out.push((path.to_string(), h.to_string())),
            Some(None) => return Err(bad(format!("byproduct `{}` has no sha256 digest", clean(&name)))),
            None => {
                let why = outcome(s).get("error").and_then(Value::as_str).map(clean);
                return Err(VerifyError::OutputNotMeasured {
                    path: clean(path),
                    why: why.unwrap_or_else(|| "no `outputs:` byproduct".into()),
                });
            }
        }
    }
    Ok(out)
}

/// Recomputes each declared output's tree from its artifacts directory, so
/// that files added (or links changed) after the run are caught, not only
/// changes to the files the subjects name.
fn check_output_trees(artifacts: &Artifacts, outputs: &[(String, String)]) -> Result<(), VerifyError> {
    if let Artifacts::Mounts(mounts) = artifacts {
        for (m, _) in mounts {
            if !outputs.iter().any(|(p, _)| p.trim_end_matches('/') == m) {
                return Err(VerifyError::NotAnOutput { mount: clean(m) });
            }
        }
    }
    for (path, expected) in outputs {
        let dir = match artifacts {
            Artifacts::Dir(d) => d.join(path.trim_start_matches('/')),
            Artifacts::Mounts(mounts) => match mounts.iter().find(|(m, _)| m == path.trim_end_matches('/')) {
                Some((_, d)) => d.clone(),
                None => return Err(VerifyError::OutputNotMapped { path: clean(path) }),
            },
        };
        let tree = crate::measure::hash_tree(&dir, &crate::measure::Limits::ROOTFS)
            .map_err(|e| VerifyError::OutputIo { path: clean(path), dir: dir.clone(), reason: e.to_string() })?;
        if &tree.root_sha256 != expected {
            return Err(VerifyError::TreeMismatch {
                path: clean(path),
                dir,
                expected: expected.clone(),
                actual: tree.root_sha256,
            });
        }
    }
    Ok(())
}

/// Where a subject's file is: a base directory (the user's, followed if it is
/// a symlink) and the components below it (never followed).
fn resolve(artifacts: &Artifacts, name: &str) -> Result<(PathBuf, Vec<Vec<u8>>), VerifyError> {
    let unsafe_name = || VerifyError::UnsafeName { name: name.to_string() };
    let (base, rest) = match artifacts {
        Artifacts::Dir(d) => (d.clone(), name.to_string()),
        Artifacts::Mounts(mounts) => {
            let mut best: Option<(usize, &PathBuf, String)> = None;
            for (m, dir) in mounts {
                let m = escape(m.trim_start_matches('/').as_bytes());
                let rest = if name == m {
                    Some(String::new())
                } else {
                    name.strip_prefix(&format!("{m}/")).map(str::to_string)
                };
                if let Some(rest) = rest {
                    if best.as_ref().is_none_or(|(l, _, _)| m.len() > *l) {
                        best = Some((m.len(), dir, rest));
                    }
                }
            }
            let (_, dir, rest) = best.ok_or_else(|| VerifyError::NotMapped { name: name.to_string() })?;
            (dir.clone(), rest)
        }
    };
    if rest.is_empty() {
        return Ok((base, Vec::new()));
    }
    let raw = unescape(&rest).ok_or_else(unsafe_name)?;
    let mut comps = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        if c.is_empty() || c == b"." || c == b".." {
            return Err(unsafe_name());
        }
        comps.push(c.to_vec());
    }
    Ok((base, comps))
}

fn check_artifact(artifacts: &Artifacts, s: &Subject, buf: &mut [u8]) -> Result<(), VerifyError> {
    let (mut path, comps) = resolve(artifacts, &s.name)?;
    let name = s.name.clone();
    let n = comps.len();
    // Refuse symlinks below the base: a statement must not lead the verifier
    // out of the directory it was given.
    let mut meta = std::fs::metadata(&path);
    for (i, c) in comps.iter().enumerate() {
        match &meta {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(VerifyError::NotAFile { name, path }),
            Err(_) => break,
        }
        path.push(std::ffi::OsStr::from_bytes(c));
        meta = std::fs::symlink_metadata(&path);
        if i + 1 < n {
            if let Ok(m) = &meta {
                if m.file_type().is_symlink() {
                    return Err(VerifyError::NotAFile { name, path });
                }
            }
        }
    }
    match meta {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(VerifyError::MissingFile { name, path }),
        Err(source) => return Err(VerifyError::ArtifactIo { name, path, source }),
        Ok(m) if !m.is_file() => return Err(VerifyError::NotAFile { name, path }),
        Ok(_) => {}
    }
    let mut flags = rustix::fs::OFlags::NONBLOCK;
    if n > 0 {
        flags |= rustix::fs::OFlags::NOFOLLOW;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(&path)
        .map_err(|source| VerifyError::ArtifactIo { name: name.clone(), path: path.clone(), source })?;
    let mut h = Sha256::new();
    loop {
        match f.read(buf) {
            Ok(0) => break,
            Ok(k) => h.update(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(VerifyError::ArtifactIo { name, path, source }),
        }
    }
    let actual = hex::encode(h.finalize());
    if actual != s.sha256 {
        return Err(VerifyError::DigestMismatch { name, expected: s.sha256.clone(), actual });
    }
    Ok(())
}

fn parse_envelope(bytes: &[u8]) -> Result<(Envelope, Vec<u8>), VerifyError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(VerifyError::TooLarge { size: bytes.len(), max: MAX_ENVELOPE_BYTES });
    }
    // An object with the three named fields, as DSSE defines it (serde would
    // also read a struct from a positional array).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(VerifyError::Malformed("the envelope is not a JSON object".into()));
    }
    // serde's messages quote the input (an unknown field's name): cleaned,
    // so an envelope cannot write to the verifier's terminal or log.
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| VerifyError::Malformed(clean(&e.to_string())))?;
    let payload = b64(&env.payload).ok_or(VerifyError::PayloadEncoding)?;
    Ok((env, payload))
}

/// Verifies an envelope (see the crate docs for the order of the checks).
pub fn verify(
    envelope: &[u8],
    trusted_keys: &[PublicKey],
    artifacts: Option<&Path>,
    requirements: &[Requirement],
) -> Result<VerifiedStatement, VerifyError> {
    let artifacts = artifacts.map(|p| Artifacts::Dir(p.to_path_buf()));
    verify_with(envelope, trusted_keys, artifacts.as_ref(), requirements)
}

/// [`verify`] with artifacts given per mount.
pub fn verify_with(
    envelope: &[u8],
    trusted_keys: &[PublicKey],
    artifacts: Option<&Artifacts>,
    requirements: &[Requirement],
) -> Result<VerifiedStatement, VerifyError> {
    let (keyid, payload, statement) = signed_statement(envelope, trusted_keys)?;
    let subjects = check_statement(&statement)?;
    let mut artifacts_checked = 0;
    if let Some(a) = artifacts {
        let id = at(&statement, "/predicate/runDetails/metadata/invocationId").as_str().unwrap_or_default();
        let run_name = format!("{RUN_SUBJECT_PREFIX}{id}");
        let mut buf = vec![0u8; 256 * 1024];
        for s in subjects.iter().filter(|s| s.name != run_name) {
            check_artifact(a, s, &mut buf)?;
            artifacts_checked += 1;
        }
        check_output_trees(a, &declared_outputs(&statement)?)?;
    }
    let statement_digest = format!("sha256:{}", hex::encode(Sha256::digest(&payload)));
    let verified = VerifiedStatement { statement, keyid, statement_digest, subjects, artifacts_checked };
    for r in requirements {
        check_requirement(&verified, r)?;
    }
    Ok(verified)
}

/// The envelope's signer (keyid), payload and statement, once a signature
/// by one of `trusted_keys` verifies, the payload type is in-toto's and the
/// payload is strict JSON (no repeated key): what both [`verify_with`] and
/// [`signed_audit_anchor`] start from.
fn signed_statement(envelope: &[u8], trusted_keys: &[PublicKey]) -> Result<(String, Vec<u8>, Value), VerifyError> {
    if trusted_keys.is_empty() {
        return Err(VerifyError::NoTrustedKeys);
    }
    let (env, payload) = parse_envelope(envelope)?;
    let keyid = match check_signatures(&env, &payload, trusted_keys) {
        SigCheck::Verified(k) => k,
        SigCheck::NoSignatures => return Err(VerifyError::NoSignatures),
        SigCheck::Unknown(keyids) => {
            return Err(VerifyError::UnknownKey { keyids: keyids.iter().map(|k| clean(k)).collect() })
        }
        SigCheck::Bad(keyid) => return Err(VerifyError::BadSignature { keyid: clean(&keyid) }),
        SigCheck::Repeated(keyid) => return Err(VerifyError::RepeatedSignature { keyid: clean(&keyid) }),
    };
    if env.payload_type != PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType { found: clean(&env.payload_type) });
    }
    let statement: Value = brig_json::from_slice(&payload).map_err(|e| match e.is_duplicate_key() {
        true => VerifyError::DuplicateKey(clean(&e.to_string())),
        false => VerifyError::NotJson(clean(&e.to_string())),
    })?;
    Ok((keyid, payload, statement))
}

/// The audit-log anchor (`seq`, SHA-256 of the line, SHA-256 of the log's
/// first line) of an envelope signed by one of `trusted_keys`, if the run
/// recorded one: what `brig audit verify --attested` checks the log
/// against. Only what makes the anchor brig's is checked (a trusted
/// signature, the payload type, a strict JSON statement of brig's type), not
/// whether the run's record is complete: a run whose output could not be
/// measured (over the limits) fails [`verify_with`], but its launch decision
/// is still genuine, and a job that fills its output past the limits must
/// not make the check of the whole log fail.
pub fn signed_audit_anchor(
    envelope: &[u8],
    trusted_keys: &[PublicKey],
) -> Result<Option<(u64, String, String)>, VerifyError> {
    let (keyid, _, statement) = signed_statement(envelope, trusted_keys)?;
    for (pointer, expected) in [("/_type", STATEMENT_TYPE), ("/predicateType", PREDICATE_TYPE)] {
        let found = at(&statement, pointer);
        if found.as_str() != Some(expected) {
            return Err(match pointer {
                "/_type" => VerifyError::StatementType { found: clean(&text(found)) },
                _ => VerifyError::PredicateType { found: clean(&text(found)) },
            });
        }
    }
    let verified =
        VerifiedStatement { statement, keyid, statement_digest: String::new(), subjects: vec![], artifacts_checked: 0 };
    Ok(verified.audit_record())
}

/// Text from an envelope made safe for a terminal or a log (control,
/// bidirectional and invisible format characters escaped):
/// [`brig_files::printable`].
pub fn clean(s: &str) -> String {
    brig_files::printable(s)
}

fn show_val(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => clean(s),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(show_val).collect::<Vec<_>>().join(", "),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        other => clean(&other.to_string()),
    }
}

fn human_bytes(v: &Value) -> String {
    match v.as_u64() {
        None => "-".into(),
        Some(b) if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        Some(b) if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) => format!("{b} B"),
    }
}

/// Renders an envelope's statement for people. Does not verify the signature.
pub fn show(envelope: &[u8]) -> Result<String, VerifyError> {
    use std::fmt::Write;
    let (env, payload) = parse_envelope(envelope)?;
    let s: Value = serde_json::from_slice(&payload).map_err(|e| VerifyError::NotJson(e.to_string()))?;
    let mut o = String::new();
    let ip = at(&s, "/predicate/buildDefinition/internalParameters");
    let ep = at(&s, "/predicate/buildDefinition/externalParameters");
    let rd = at(&s, "/predicate/runDetails");
    let oc = outcome(&s);
    let keyids: Vec<String> = env.signatures.iter().map(|x| clean(&x.keyid)).collect();
    // Writing to a String cannot fail.
    let _ = (|| -> std::fmt::Result {
        writeln!(o, "envelope     {} signed by keyid {}", clean(&env.payload_type), show_val(&keyids.into()))?;
        writeln!(o, "             (signature NOT checked here: use `verify --key`)")?;
        writeln!(o, "statement    {}  predicate {}", show_val(at(&s, "/_type")), show_val(at(&s, "/predicateType")))?;
        writeln!(o, "container    {}", show_val(at(rd, "/metadata/invocationId")))?;
        writeln!(
            o,
            "builder      {} (brig {})",
            show_val(at(rd, "/builder/id")),
            show_val(at(rd, "/builder/version/brig"))
        )?;
        writeln!(o, "started      {}", show_val(at(rd, "/metadata/startedOn")))?;
        writeln!(o, "finished     {}", show_val(at(rd, "/metadata/finishedOn")))?;
        let ended = match (at(oc, "/exitCode"), at(oc, "/signal")) {
            (Value::Number(n), _) => format!("exit {n}"),
            (_, Value::Number(n)) => format!("signal {n}"),
            _ => "did not run".into(),
        };
        writeln!(
            o,
            "outcome      {ended}; timed out: {}; OOM-killed: {}; killed: {}{}",
            show_val(at(oc, "/timedOut")),
            show_val(at(oc, "/oomKilled")),
            show_val(at(oc, "/killed")),
            match at(oc, "/error") {
                Value::String(e) => format!("; start failed at {}", clean(e)),
                _ => String::new(),
            }
        )?;
        let cpu = at(oc, "/resources/cpuNs").as_u64().map_or("-".into(), |n| format!("{:.3} s", n as f64 / 1e9));
        writeln!(
            o,
            "resources    cpu {cpu}; peak memory {}; peak pids {}",
            human_bytes(at(oc, "/resources/peakMemoryBytes")),
            show_val(at(oc, "/resources/peakPids"))
        )?;
        writeln!(
            o,
            "image        {} (bound by token: {})",
            show_val(at(ep, "/image")),
            show_val(at(dependency(&s, "image"), "/annotations/boundByToken"))
        )?;
        let rootfs = dependency(&s, "rootfs");
        let rootfs_during = match at(rootfs, "/annotations/unchangedDuringRun").as_bool() {
            Some(true) => "  (unchanged during the run)",
            Some(false) => "  (CHANGED after it was measured)",
            None => "",
        };
        writeln!(
            o,
            "rootfs       sha256:{} ({} entries, {} files, {}) at {}{rootfs_during}",
            show_val(at(rootfs, "/digest/sha256")),
            show_val(at(rootfs, "/annotations/entries")),
            show_val(at(rootfs, "/annotations/files")),
            human_bytes(at(rootfs, "/annotations/bytes")),
            show_val(at(rootfs, "/annotations/path"))
        )?;
        writeln!(
            o,
            "profile      {} {} (requested: {})",
            show_val(at(ip, "/profile/name")),
            show_val(at(ip, "/profile/digest")),
            show_val(at(ep, "/profile"))
        )?;
        writeln!(
            o,
            "decision     {} (authorization {}) policies: {}",
            show_val(at(ip, "/authorization/decision")),
            show_val(at(ip, "/authorization/mode")),
            show_val(at(ip, "/authorization/policyIds"))
        )?;
        let audit = at(ip, "/authorization/auditRecord");
        if !audit.is_null() {
            let log = at(audit, "/log").as_str().filter(|l| !l.is_empty()).map(|l| format!("@{l}")).unwrap_or_default();
            writeln!(o, "audit record {}:{}{log}", show_val(at(audit, "/seq")), show_val(at(audit, "/sha256")))?;
        }
        let id = at(ip, "/identity");
        if id.is_null() {
            writeln!(o, "identity     -")?;
        } else {
            writeln!(
                o,
                "identity     iss={} sub={} tenant={} jti={}",
                show_val(at(id, "/iss")),
                show_val(at(id, "/sub")),
                show_val(at(id, "/tenant")),
                show_val(at(id, "/jti"))
            )?;
        }
        writeln!(o, "command      {}", show_val(at(ep, "/process/args")))?;
        writeln!(
            o,
            "timeout      {}   egress requested: {}",
            show_val(at(ep, "/timeout")),
            show_val(at(ep, "/egress"))
        )?;
        let en = at(ip, "/enforcement");
        writeln!(
            o,
            "landlock     ABI {} status {}",
            show_val(at(en, "/landlock/abi")),
            show_val(at(en, "/landlock/status"))
        )?;
        writeln!(
            o,
            "seccomp      {} filter(s), brig's {} (client filter kept: {})",
            show_val(at(en, "/seccomp/filters")),
            show_val(at(en, "/seccomp/filterDigest")),
            show_val(at(en, "/seccomp/clientFilterKept"))
        )?;
        writeln!(o, "namespaces   {}", show_val(at(en, "/namespaces")))?;
        if let Some(u) = at(en, "/userNamespace").as_object() {
            let maps = |k: &str| {
                u.get(k).and_then(Value::as_array).map_or("-".into(), |a| {
                    a.iter()
                        .map(|m| {
                            format!(
                                "{}->{} ({})",
                                show_val(at(m, "/containerId")),
                                show_val(at(m, "/hostId")),
                                show_val(at(m, "/size"))
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                })
            };
            writeln!(o, "user ns      uid {}; gid {}", maps("uidMap"), maps("gidMap"))?;
        }
        writeln!(
            o,
            "privileges   no_new_privs {}; read-only rootfs {}; effective caps: {}; bounding: {}",
            show_val(at(en, "/noNewPrivs")),
            show_val(at(en, "/readonlyRootfs")),
            show_val(at(en, "/capabilities/effective")),
            show_val(at(en, "/capabilities/bounding"))
        )?;
        writeln!(o, "egress       {}", show_val(at(en, "/egress")))?;
        let deps = at(&s, "/predicate/buildDefinition/resolvedDependencies").as_array().cloned().unwrap_or_default();
        let inputs: Vec<&Value> = deps
            .iter()
            .filter(|d| !matches!(d.get("name").and_then(Value::as_str), Some("image" | "rootfs")))
            .collect();
        writeln!(o, "inputs       {}", if inputs.is_empty() { "-" } else { "" })?;
        for d in inputs {
            let during = match at(d, "/annotations/unchangedDuringRun").as_bool() {
                Some(true) => "  (unchanged during the run)",
                Some(false) => "  (CHANGED on the host during the run)",
                None => "",
            };
            writeln!(o, "  {}  {}{during}", show_val(at(d, "/digest/sha256")), show_val(at(d, "/name")))?;
        }
        writeln!(o, "subjects")?;
        for x in at(&s, "/subject").as_array().cloned().unwrap_or_default() {
            writeln!(o, "  {}  {}", show_val(at(&x, "/digest/sha256")), show_val(at(&x, "/name")))?;
        }
        Ok(())
    })();
    Ok(o)
}
