//! The audit log: append-only, hash-chained JSON lines, one per decision.
//!
//! Each line is one JSON object:
//!
//! ```text
//! {"seq":N,"prev":"<hex>",<record fields...>,"hash":"<hex>"}
//! ```
//!
//! - `seq` is the 1-based line number;
//! - `prev` is the SHA-256 of the previous line's bytes (without its
//!   newline); line 1 chains to [`GENESIS`];
//! - `hash` is the SHA-256 of the line's bytes up to the `,"hash"` member,
//!   with a closing `}` — that is, of the line as it was before the hash was
//!   added. The hashed bytes are exactly what is in the file, so there is no
//!   JSON canonicalization to agree on.
//!
//! Appends take an exclusive `flock` on the log, read its last line, write
//! the new line with one `write` in append mode, and `fsync` before
//! returning. [`verify`] names the first line that was edited, removed,
//! inserted or reordered. What a hash chain cannot show by itself: the
//! removal of the *last* lines, or an edit of the last line whose `hash` was
//! recomputed; anchor the head (`brig audit verify` prints it) elsewhere to
//! catch those.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::authz::{Action, Decision};
use crate::context::LaunchContext;
use crate::token::VerifiedToken;
use crate::util::rfc3339_millis;

/// What line 1's `prev` is: SHA-256 of `brig audit log v1`.
pub const GENESIS: &str = "59dc75b1fe1abd13cb1a3edd2d813ab4d60bdc9f842013920a244e2f505ee827";

/// Longest `reason` kept in a record, in characters.
const MAX_REASON: usize = 4096;

fn genesis() -> String {
    GENESIS.to_string()
}

/// Why the audit log could not be written or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log could not be opened, locked, read, written or synced.
    #[error("audit log `{}`: {op}: {source}", path.display())]
    Io {
        /// The log.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The log ends in the middle of a line (a crash during a write):
    /// nothing is appended until someone looks.
    #[error("audit log `{}` ends with an incomplete line {line}: inspect it (`brig audit verify`), then truncate the partial line", path.display())]
    Torn {
        /// The log.
        path: PathBuf,
        /// The incomplete line's number.
        line: usize,
    },
    /// The last line is not a record, so the next one cannot be numbered.
    #[error("audit log `{}`: the last line is not a brig audit record: `brig audit verify` names the damage", path.display())]
    BadTail {
        /// The log.
        path: PathBuf,
    },
    /// A line does not verify.
    #[error("audit log `{}`: line {line}: {reason}", path.display())]
    Tampered {
        /// The log.
        path: PathBuf,
        /// The first bad line (1-based).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// The outcome that was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    /// Authorized.
    Allow,
    /// Refused (token, policy or any error).
    Deny,
    /// Launched with `[auth] mode = "off"`: not authorized.
    NotAuthorized,
}

/// One audit record. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// RFC 3339 UTC, milliseconds.
    pub time: String,
    /// The container.
    pub container_id: String,
    /// `launch` or `exec`.
    pub action: String,
    /// The outcome.
    pub decision: AuditDecision,
    /// Determining policy ids.
    pub policy_ids: Vec<String>,
    /// `sub`.
    pub subject: Option<String>,
    /// `iss`.
    pub issuer: Option<String>,
    /// Tenant claim.
    pub tenant: Option<String>,
    /// `jti`.
    pub jti: Option<String>,
    /// Requested profile.
    pub profile: Option<String>,
    /// Image digest.
    pub image_digest: Option<String>,
    /// Why.
    pub reason: String,
}

impl AuditRecord {
    /// A record of a Cedar decision.
    pub fn from_decision(
        now: SystemTime,
        container_id: &str,
        action: Action,
        decision: &Decision,
        token: &VerifiedToken,
        context: &LaunchContext,
    ) -> AuditRecord {
        AuditRecord {
            time: rfc3339_millis(now),
            container_id: container_id.to_string(),
            action: action.as_str().to_string(),
            decision: if decision.allowed { AuditDecision::Allow } else { AuditDecision::Deny },
            policy_ids: decision.determining_policies.clone(),
            subject: Some(token.subject.clone()),
            issuer: Some(token.issuer.clone()),
            tenant: token.tenant.clone(),
            jti: token.jti.clone(),
            profile: Some(context.profile.clone()),
            image_digest: context.image.digest.clone(),
            reason: decision.reason.clone(),
        }
    }

    /// A record of a refusal before any policy ran (no token, a bad token,
    /// policies that do not load). `reason` must not contain the token.
    pub fn denied(
        now: SystemTime,
        container_id: &str,
        action: Action,
        context: Option<&LaunchContext>,
        reason: &str,
    ) -> AuditRecord {
        AuditRecord {
            time: rfc3339_millis(now),
            container_id: container_id.to_string(),
            action: action.as_str().to_string(),
            decision: AuditDecision::Deny,
            policy_ids: Vec::new(),
            subject: None,
            issuer: None,
            tenant: None,
            jti: None,
            profile: context.map(|c| c.profile.clone()),
            image_digest: context.and_then(|c| c.image.digest.clone()),
            reason: reason.to_string(),
        }
    }

    /// A record of a launch with authorization off.
    pub fn not_authorized(
        now: SystemTime,
        container_id: &str,
        action: Action,
        context: Option<&LaunchContext>,
    ) -> AuditRecord {
        AuditRecord {
            decision: AuditDecision::NotAuthorized,
            reason: "not authorized: `[auth] mode` is `off`".into(),
            ..AuditRecord::denied(now, container_id, action, context, "")
        }
    }
}

#[derive(Serialize)]
struct LineBody<'a> {
    seq: u64,
    prev: &'a str,
    #[serde(flatten)]
    record: &'a AuditRecord,
}

/// The audit log at a path.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

/// What a verified log looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSummary {
    /// Number of records.
    pub records: usize,
    /// SHA-256 of the last line (the genesis value for an empty log): anchor
    /// it elsewhere to detect truncation.
    pub head: String,
    /// Anchors given that belong to another log (not checked).
    pub elsewhere: usize,
}

/// Where one record sits in the log: its `seq` and the SHA-256 of its line
/// (what the next line's `prev` holds). A run's signed attestation carries
/// the anchor of its launch decision, so a log rewritten with recomputed
/// hashes, or cut back before that record, no longer matches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnchor {
    /// The record's line number.
    pub seq: u64,
    /// SHA-256 of the record's line (hex), without its newline.
    pub sha256: String,
    /// SHA-256 of the log's first line: which log (which generation, once
    /// logs are rotated) the record is in. Empty: not known (an anchor given
    /// by hand as `SEQ:SHA256`), taken to be the log being checked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log: String,
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl std::fmt::Display for AuditAnchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.sha256)?;
        if !self.log.is_empty() {
            write!(f, "@{}", self.log)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for AuditAnchor {
    type Err = String;

    /// `SEQ:SHA256[@LOG]`, as [`Display`](std::fmt::Display) writes it.
    fn from_str(s: &str) -> Result<AuditAnchor, String> {
        let (anchor, log) = s.split_once('@').unwrap_or((s, ""));
        let (seq, sha256) = anchor.split_once(':').ok_or_else(|| format!("`{s}`: expected SEQ:SHA256[@LOG]"))?;
        let seq =
            seq.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| format!("`{s}`: SEQ is not a line number"))?;
        if !is_sha256_hex(sha256) || !(log.is_empty() || is_sha256_hex(log)) {
            return Err(format!("`{s}`: SHA256 and LOG are 64 lowercase hex digits"));
        }
        Ok(AuditAnchor { seq, sha256: sha256.to_string(), log: log.to_string() })
    }
}

impl AuditLog {
    /// Uses the log at `path`, creating it (mode 0600, directory 0700) if needed.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let io = |op, source| AuditError::Io { path: path.to_path_buf(), op, source };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.is_dir() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| io("creating the directory", e))?;
            }
        }
        brig_files::open_regular_with(OpenOptions::new().append(true).create(true).mode(0o600), path)
            .map_err(|e| io("opening", e))?;
        Ok(AuditLog { path: path.to_path_buf() })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record`, chained to the last line, and fsyncs it; returns
    /// where it was written.
    pub fn append(&self, record: &AuditRecord) -> Result<AuditAnchor, AuditError> {
        let path = &self.path;
        let io = |op, source| AuditError::Io { path: path.clone(), op, source };
        let (mut f, _) =
            brig_files::open_regular_with(OpenOptions::new().read(true).append(true).create(true).mode(0o600), path)
                .map_err(|e| io("opening", e))?;
        f.lock().map_err(|e| io("locking", e))?;
        let (prev, seq, len) = self.tail(&mut f)?;
        let mut record = record.clone();
        if record.reason.chars().count() > MAX_REASON {
            record.reason = record.reason.chars().take(MAX_REASON).collect::<String>() + "…";
        }
        let line = seal(seq + 1, &prev, &record);
        let was_empty = seq == 0;
        // A failed write (a full disk) or flush leaves no partial line: the
        // log is cut back to its last whole record, which the next launch
        // chains to, and the launch is refused with the error.
        let written = f.write_all(format!("{line}\n").as_bytes()).map_err(|e| io("writing", e));
        if let Err(e) = written.and_then(|()| f.sync_data().map_err(|e| io("syncing", e))) {
            return Err(match f.set_len(len).and_then(|()| f.sync_data()) {
                Ok(()) => e,
                Err(cut) => AuditError::Io { path: path.clone(), op: "removing a partly written record", source: cut },
            });
        }
        if was_empty {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("syncing the directory", e))?;
            }
        }
        let sha256 = hex::encode(Sha256::digest(line.as_bytes()));
        // The record is written: a first line that cannot be read back only
        // leaves the anchor without its log (taken as the log at hand).
        let log = match was_empty {
            true => sha256.clone(),
            false => first_line_hash(&mut f).unwrap_or_default(),
        };
        Ok(AuditAnchor { seq: seq + 1, sha256, log })
    }

    /// `(SHA-256 of the last line, its seq, the log's length)`, or
    /// `(genesis, 0, 0)` for an empty log.
    fn tail(&self, f: &mut File) -> Result<(String, u64, u64), AuditError> {
        let path = &self.path;
        let io = |op, source| AuditError::Io { path: path.clone(), op, source };
        let len = f.seek(SeekFrom::End(0)).map_err(|e| io("seeking", e))?;
        if len == 0 {
            return Ok((genesis(), 0, 0));
        }
        // Read backwards until the newline before the last line, in chunks
        // kept apart and joined once (not prepended to each other: a huge
        // last line would cost quadratic time), and no further back than the
        // longest line a record may be.
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut held = 0usize;
        let mut pos = len;
        loop {
            let step = 4096.min(pos);
            pos -= step;
            let mut chunk = vec![0u8; usize::try_from(step).unwrap_or(4096)];
            f.seek(SeekFrom::Start(pos)).map_err(|e| io("seeking", e))?;
            f.read_exact(&mut chunk).map_err(|e| io("reading", e))?;
            if chunks.is_empty() && chunk.last() != Some(&b'\n') {
                let lines = self.count_lines()?;
                return Err(AuditError::Torn { path: path.clone(), line: lines + 1 });
            }
            // The newline ending the last line does not count.
            let search = if chunks.is_empty() { &chunk[..chunk.len() - 1] } else { &chunk[..] };
            let found = search.iter().rposition(|b| *b == b'\n').is_some();
            held += chunk.len();
            chunks.push(chunk);
            if found || pos == 0 {
                break;
            }
            if held > MAX_LINE + 1 {
                return Err(AuditError::BadTail { path: path.clone() });
            }
        }
        let mut buf = Vec::with_capacity(held);
        for chunk in chunks.iter().rev() {
            buf.extend_from_slice(chunk);
        }
        let body = &buf[..buf.len() - 1];
        let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let last = &buf[start..buf.len() - 1];
        // The last line must be a whole record, sealed by its own hash: a
        // line that is not (junk appended, CRLF line ends) would have the
        // next record chained to it, and the log would not verify again.
        let seq = std::str::from_utf8(last)
            .ok()
            .and_then(|line| check_sealed(line).ok())
            .and_then(|(mut value, _)| {
                let seq = value.remove("seq").and_then(|v| v.as_u64())?;
                value.remove("prev").filter(serde_json::Value::is_string)?;
                serde_json::from_value::<AuditRecord>(serde_json::Value::Object(value)).ok()?;
                Some(seq)
            })
            .ok_or_else(|| AuditError::BadTail { path: path.clone() })?;
        Ok((hex::encode(Sha256::digest(last)), seq, len))
    }

    fn count_lines(&self) -> Result<usize, AuditError> {
        let (f, _) = brig_files::open_regular(&self.path).map_err(|source| AuditError::Io {
            path: self.path.clone(),
            op: "opening",
            source,
        })?;
        Ok(BufReader::new(f).split(b'\n').count().saturating_sub(1))
    }
}

/// The line for `record` at `seq`, chained to `prev`, with its `hash`.
fn seal(seq: u64, prev: &str, record: &AuditRecord) -> String {
    // INVARIANT: serializing a struct of strings, bools and vectors cannot fail.
    let body = serde_json::to_string(&LineBody { seq, prev, record }).unwrap_or_default();
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    format!("{},\"hash\":\"{hash}\"}}", &body[..body.len().saturating_sub(1)])
}

/// SHA-256 of the first line of the log open as `f`. Read through the same
/// bound as every other line: a first line longer than that is no record,
/// and a file without a newline is not read whole into memory.
fn first_line_hash(f: &mut File) -> std::io::Result<String> {
    f.seek(SeekFrom::Start(0))?;
    let mut line = Vec::new();
    BufReader::new(f).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the first line is longer than {MAX_LINE} bytes: not an audit log"),
        ));
    }
    Ok(hex::encode(Sha256::digest(&line)))
}

/// Which log `path` is: the SHA-256 of its first line (what
/// [`AuditAnchor::log`] names).
pub fn log_id(path: &Path) -> Result<String, AuditError> {
    brig_files::open_regular(path).and_then(|(mut f, _)| first_line_hash(&mut f)).map_err(|source| AuditError::Io {
        path: path.to_path_buf(),
        op: "reading",
        source,
    })
}

/// Verifies the whole log at `path`: every line's hash, chain and sequence.
/// Returns the number of records, or the first bad line.
pub fn verify(path: &Path) -> Result<usize, AuditError> {
    verify_summary(path).map(|s| s.records)
}

/// Like [`verify`], also returning the head hash to anchor elsewhere.
pub fn verify_summary(path: &Path) -> Result<AuditSummary, AuditError> {
    verify_anchored(path, &[])
}

/// Like [`verify_summary`], and each of `anchors` must be in the log as it
/// was written: a log rewritten with recomputed hashes, or cut back before
/// an anchored record, is refused.
///
/// An anchor whose `log` names another first line is from another log (an
/// older generation, once the log is rotated by moving it aside) and is
/// counted in [`AuditSummary::elsewhere`], not checked here; but anchors
/// given, none of them from this log, is an error: the log was replaced
/// from its first line (or rotated with no anchored record since).
pub fn verify_anchored(path: &Path, anchors: &[AuditAnchor]) -> Result<AuditSummary, AuditError> {
    let first = log_id(path)?;
    let (here, elsewhere): (Vec<AuditAnchor>, Vec<AuditAnchor>) =
        anchors.iter().cloned().partition(|a| a.log.is_empty() || a.log == first);
    if here.is_empty() && !elsewhere.is_empty() {
        return Err(AuditError::Tampered {
            path: path.to_path_buf(),
            line: 1,
            reason: format!(
                "none of the {} anchored record(s) is from this log (its first line is not theirs): \
                 the log was replaced, or rotated with no anchored record since",
                elsewhere.len()
            ),
        });
    }
    let anchors = &here[..];
    let mut summary = verify_lines(path, anchors)?;
    summary.elsewhere = elsewhere.len();
    if let Some(a) = anchors.iter().filter(|a| a.seq > summary.records as u64).min_by_key(|a| a.seq) {
        return Err(AuditError::Tampered {
            path: path.to_path_buf(),
            line: summary.records + 1,
            reason: format!(
                "the log ends at record {} but record {} was anchored ({a}): records were removed from its end",
                summary.records, a.seq
            ),
        });
    }
    Ok(summary)
}

/// The longest line a record may be (its reason is capped at `MAX_REASON`;
/// ids, policy ids and claims are short): a longer line is not brig's, and
/// neither verifying nor appending reads more of one than this.
const MAX_LINE: usize = 1 << 20;

fn verify_lines(path: &Path, anchors: &[AuditAnchor]) -> Result<AuditSummary, AuditError> {
    let io = |source| AuditError::Io { path: path.to_path_buf(), op: "reading", source };
    let (file, _) = brig_files::open_regular(path).map_err(io)?;
    // Line by line: a log of any size verifies in constant memory.
    let mut reader = BufReader::with_capacity(64 << 10, file);
    let bad = |line: usize, reason: String| AuditError::Tampered { path: path.to_path_buf(), line, reason };
    let mut prev = genesis();
    let mut count = 0;
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let got = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut raw).map_err(io)?;
        if got == 0 {
            break;
        }
        let n = count + 1;
        if raw.last() != Some(&b'\n') {
            if raw.len() > MAX_LINE {
                return Err(bad(n, format!("longer than {MAX_LINE} bytes: not a brig audit record")));
            }
            return Err(bad(n, "incomplete line (no newline at the end of the log)".into()));
        }
        raw.pop();
        let line = std::str::from_utf8(&raw).map_err(|_| bad(n, "not UTF-8".into()))?;
        check_line(line, n, &prev).map_err(|r| bad(n, r))?;
        prev = hex::encode(Sha256::digest(&raw));
        if let Some(a) = anchors.iter().find(|a| a.seq == n as u64 && a.sha256 != prev) {
            return Err(bad(n, format!("does not match its anchor ({a}): the log was rewritten")));
        }
        count = n;
    }
    Ok(AuditSummary { records: count, head: prev, elsewhere: 0 })
}

/// A line's own seal: it ends with the `hash` of the rest, and the rest is
/// a JSON object (returned, with the hash). Says nothing of its place in
/// the chain.
fn check_sealed(line: &str) -> Result<(serde_json::Map<String, serde_json::Value>, &str), String> {
    const SUFFIX_LEN: usize = ",\"hash\":\"\"}".len() + 64;
    if line.len() < SUFFIX_LEN || !line.ends_with("\"}") || !line.is_char_boundary(line.len() - SUFFIX_LEN) {
        return Err("not a brig audit record".into());
    }
    let split = line.len() - SUFFIX_LEN;
    let (head, tail) = line.split_at(split);
    let hash = tail.strip_prefix(",\"hash\":\"").and_then(|t| t.strip_suffix("\"}")).ok_or("no `hash` at the end")?;
    let body = format!("{head}}}");
    if hex::encode(Sha256::digest(body.as_bytes())) != hash {
        return Err("content does not match its `hash` (the line was edited)".into());
    }
    // brig writes each key once; a line that repeats one (`"decision":"deny",
    // ...,"decision":"allow"`) reads differently to readers that keep the
    // first value and those that keep the last.
    match brig_json::from_slice(body.as_bytes()) {
        Ok(serde_json::Value::Object(value)) => Ok((value, hash)),
        Err(e) if e.is_duplicate_key() => Err(format!("repeats a key ({e})")),
        _ => Err("not a JSON object".into()),
    }
}

fn check_line(line: &str, n: usize, expected_prev: &str) -> Result<(), String> {
    let (mut value, _) = check_sealed(line)?;
    let seq = value.remove("seq").and_then(|v| v.as_u64());
    let prev = value.remove("prev");
    let prev = prev.as_ref().and_then(|v| v.as_str());
    if prev != Some(expected_prev) {
        return Err(format!(
            "does not chain to line {} (`prev` differs): a line before it was removed, inserted, reordered or edited",
            n - 1
        ));
    }
    if seq != Some(n as u64) {
        return Err(format!(
            "sequence number {} where {n} was expected",
            seq.map_or("missing".into(), |s| s.to_string())
        ));
    }
    serde_json::from_value::<AuditRecord>(serde_json::Value::Object(value))
        // serde quotes the line (an unknown field's name): escaped, so a line
        // cannot write to the terminal that checks it.
        .map_err(|e| format!("not a valid record: {}", e.to_string().escape_debug()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize) -> AuditRecord {
        AuditRecord {
            time: "2025-01-01T00:00:00.000Z".into(),
            container_id: format!("c{i}"),
            action: "launch".into(),
            decision: if i.is_multiple_of(2) { AuditDecision::Allow } else { AuditDecision::Deny },
            policy_ids: vec![format!("p{i}")],
            subject: Some("repo:x".into()),
            issuer: Some("https://ci".into()),
            tenant: Some("acme".into()),
            jti: Some(format!("j{i}")),
            profile: Some("restricted".into()),
            image_digest: None,
            reason: "allowed by `p`".into(),
        }
    }

    fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.log");
        let log = AuditLog::open(&path).unwrap();
        for i in 0..n {
            log.append(&rec(i)).unwrap();
        }
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }

    fn bad_line(path: &Path) -> usize {
        match verify(path) {
            Err(AuditError::Tampered { line, .. }) => line,
            other => panic!("expected tampering, got {other:?}"),
        }
    }

    #[test]
    fn genesis_is_the_hash_of_its_label() {
        assert_eq!(GENESIS, hex::encode(Sha256::digest(b"brig audit log v1")));
    }

    #[test]
    fn appends_verify_and_chain() {
        let (_d, path) = log_with(5);
        assert_eq!(verify(&path).unwrap(), 5);
        let l = lines(&path);
        let first: serde_json::Value = serde_json::from_str(&l[0]).unwrap();
        assert_eq!(first["prev"], genesis());
        assert_eq!(first["seq"], 1);
        let second: serde_json::Value = serde_json::from_str(&l[1]).unwrap();
        assert_eq!(second["prev"], hex::encode(Sha256::digest(l[0].as_bytes())));
        assert!(verify(&PathBuf::from("/nonexistent/audit.log")).is_err());
    }

    #[test]
    fn edit_is_detected() {
        let (_d, path) = log_with(5);
        let mut l = lines(&path);
        l[2] = l[2]
            .replace("\"deny\"", "\"allow\"")
            .replace("\"allow\",\"policy_ids\":[\"p2\"]", "\"deny\",\"policy_ids\":[\"p2\"]");
        l[2] = l[2].replace("c2", "c9");
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 3);
    }

    #[test]
    fn edit_with_recomputed_hash_breaks_the_next_line() {
        let (_d, path) = log_with(5);
        let mut l = lines(&path);
        let v: serde_json::Value = serde_json::from_str(&l[1]).unwrap();
        let mut r: AuditRecord = serde_json::from_value({
            let mut m = v.as_object().unwrap().clone();
            m.remove("seq");
            m.remove("prev");
            m.remove("hash");
            serde_json::Value::Object(m)
        })
        .unwrap();
        r.decision = AuditDecision::Allow;
        r.reason = "forged".into();
        l[1] = seal(2, v["prev"].as_str().unwrap(), &r);
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 3);
    }

    #[test]
    fn delete_insert_reorder_are_detected() {
        let (_d, path) = log_with(5);
        let orig = lines(&path);

        let mut l = orig.clone();
        l.remove(1);
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 2);

        let mut l = orig.clone();
        l.insert(3, orig[0].clone());
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 4);

        let mut l = orig.clone();
        l.swap(2, 3);
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 3);

        let mut l = orig.clone();
        l.remove(0);
        write_lines(&path, &l);
        assert_eq!(bad_line(&path), 1);

        write_lines(&path, &orig);
        assert_eq!(verify(&path).unwrap(), 5);
    }

    #[test]
    fn torn_tail_refuses_appends() {
        let (_d, path) = log_with(2);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":3,\"prev\":").unwrap();
        let log = AuditLog::open(&path).unwrap();
        assert!(matches!(log.append(&rec(3)), Err(AuditError::Torn { line: 3, .. })));
        assert_eq!(bad_line(&path), 3);
    }

    /// A last line that is not a sealed record (junk with a `seq`, a line
    /// ending in CRLF, an edited record, an over-long line) gets nothing
    /// chained to it: the log is left as it is for `verify` to name.
    #[test]
    fn a_last_line_that_is_not_a_sealed_record_refuses_appends() {
        let third_record = {
            let (_d, path) = log_with(3);
            fs::read_to_string(&path).unwrap().lines().nth(2).unwrap().to_string()
        };
        let tails: Vec<Vec<u8>> = vec![
            b"{\"seq\":99,\"x\":\"junk\"}\n".to_vec(),
            b"{\"seq\":3}\r\n".to_vec(),
            format!("{}\n", third_record.replacen("\"seq\":3", "\"seq\":4", 1)).into_bytes(),
            [vec![b'{'; MAX_LINE + 10], b"\n".to_vec()].concat(),
        ];
        for tail in tails {
            let (_d, path) = log_with(2);
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(&tail).unwrap();
            let before = fs::read(&path).unwrap();
            let log = AuditLog::open(&path).unwrap();
            let e = log.append(&rec(3)).unwrap_err();
            assert!(matches!(e, AuditError::BadTail { .. }), "{e}");
            assert_eq!(fs::read(&path).unwrap(), before, "the log changed");
            assert_eq!(bad_line(&path), 3);
        }
        // CRLF line ends throughout: refused from the first line on.
        let (_d, path) = log_with(2);
        let crlf = fs::read_to_string(&path).unwrap().replace('\n', "\r\n");
        fs::write(&path, crlf).unwrap();
        assert!(matches!(AuditLog::open(&path).unwrap().append(&rec(3)), Err(AuditError::BadTail { .. })));
        assert_eq!(bad_line(&path), 1);
    }

    #[test]
    fn concurrent_appends_stay_chained() {
        let (_d, path) = log_with(0);
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let log = AuditLog::open(&path).unwrap();
                    for i in 0..10 {
                        log.append(&rec(t * 100 + i)).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(verify(&path).unwrap(), 40);
    }

    /// A line that says `"decision":"deny"` and again `"decision":"allow"`
    /// reads as an allow to serde (the last) and as a deny to a first-wins
    /// reader: a bad line, even sealed and chained. (The last line: the
    /// chain alone cannot protect it, so only the repetition can fail.)
    #[test]
    fn a_line_that_repeats_a_key_is_bad() {
        let (_d, path) = log_with(3);
        let mut l = lines(&path);
        let last = l[2].clone();
        assert!(last.contains("\"decision\":\"deny\"") || last.contains("\"decision\":\"allow\""), "{last}");
        let (head, _) = last.rsplit_once(",\"hash\":\"").unwrap();
        let body = format!("{head},\"decision\":\"allow\"}}");
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        l[2] = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
        write_lines(&path, &l);
        match verify(&path) {
            Err(AuditError::Tampered { line: 3, reason, .. }) => assert!(reason.contains("repeats a key"), "{reason}"),
            other => panic!("expected line 3 to be bad, got {other:?}"),
        }
    }

    /// The first line names the log (anchors carry its digest); it is read
    /// through the same 1 MiB bound as every other line.
    #[test]
    fn a_first_line_past_the_bound_is_refused_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        fs::write(&path, vec![b'x'; MAX_LINE + 10]).unwrap();
        let e = log_id(&path).unwrap_err().to_string();
        assert!(e.contains("first line is longer than"), "{e}");
        // A log whose first line is exactly at the bound still has an id.
        fs::write(&path, [vec![b'x'; MAX_LINE], b"\n".to_vec()].concat()).unwrap();
        assert!(log_id(&path).is_ok());
    }

    #[test]
    fn long_lines_and_tail_reading() {
        let (_d, path) = log_with(0);
        let log = AuditLog::open(&path).unwrap();
        let mut r = rec(1);
        r.reason = "x".repeat(10_000);
        log.append(&r).unwrap();
        log.append(&r).unwrap();
        log.append(&rec(2)).unwrap();
        assert_eq!(verify(&path).unwrap(), 3);
    }

    /// What a hash chain alone cannot show, an anchor does: a log rewritten
    /// with every hash recomputed (a deny turned into an allow), and a log
    /// cut back before an anchored record.
    #[test]
    fn anchors_catch_a_resealed_or_cut_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        let anchors: Vec<AuditAnchor> = (1..=4).map(|i| log.append(&rec(i)).unwrap()).collect();
        assert_eq!(anchors.iter().map(|a| a.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(verify_anchored(&path, &anchors).unwrap().head, anchors[3].sha256);
        let original = fs::read(&path).unwrap();

        // Rewritten from line 3 on, with hashes and chain recomputed.
        let mut lines: Vec<String> = String::from_utf8(original.clone()).unwrap().lines().map(String::from).collect();
        let mut prev = hex::encode(Sha256::digest(lines[1].as_bytes()));
        for (i, line) in lines.iter_mut().enumerate().skip(2) {
            let mut r = rec(i + 1);
            r.decision = AuditDecision::Allow;
            *line = seal(i as u64 + 1, &prev, &r);
            prev = hex::encode(Sha256::digest(line.as_bytes()));
        }
        fs::write(&path, lines.join("\n") + "\n").unwrap();
        assert_eq!(verify(&path).unwrap(), 4, "the chain alone cannot tell");
        let err = verify_anchored(&path, &anchors[2..3]).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("rewritten"), "{err}");
        // An anchor before the rewrite still holds.
        verify_anchored(&path, &anchors[..2]).unwrap();

        // The last record removed.
        let mut cut: Vec<&[u8]> = original.split(|b| *b == b'\n').collect();
        cut.truncate(3);
        fs::write(&path, [cut.join(&b'\n'), b"\n".to_vec()].concat()).unwrap();
        assert_eq!(verify(&path).unwrap(), 3);
        let err = verify_anchored(&path, &anchors).unwrap_err().to_string();
        assert!(err.contains("record 4 was anchored") && err.contains("removed from its end"), "{err}");

        // Rotation: the log moved aside, a new one started. Its own anchors
        // are checked, the old ones are counted as another log's; the old
        // anchors alone are an error (the log was replaced).
        fs::write(&path, &original).unwrap();
        fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
        let log = AuditLog::open(&path).unwrap();
        let new = log.append(&rec(9)).unwrap();
        assert_eq!((new.seq, &new.log), (1, &new.sha256));
        let mut all = anchors.clone();
        all.push(new.clone());
        assert_eq!(verify_anchored(&path, &all).unwrap().elsewhere, 4);
        let err = verify_anchored(&path, &anchors).unwrap_err().to_string();
        assert!(err.contains("none of the 4"), "{err}");
        verify_anchored(&dir.path().join("audit.log.1"), &anchors).unwrap();
        // An anchor given by hand (no log) is checked against the log at hand.
        let by_hand = AuditAnchor { log: String::new(), ..anchors[0].clone() };
        assert!(verify_anchored(&path, &[by_hand]).is_err());

        assert_eq!(anchors[0].to_string().parse::<AuditAnchor>().unwrap(), anchors[0]);
        assert_eq!(format!("1:{}", "a".repeat(64)).parse::<AuditAnchor>().unwrap().log, "");
        assert!("0:ab".parse::<AuditAnchor>().is_err());
        assert!(format!("1:{}", "A".repeat(64)).parse::<AuditAnchor>().is_err());
    }
}
