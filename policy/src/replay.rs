//! Single-use `jti`: a directory of records, one file per used `(iss, jti)`.
//!
//! - **Atomic across brig processes**: every check-and-record runs under an
//!   exclusive `flock` of `<dir>/.lock`, and the record itself is created
//!   with `O_CREAT|O_EXCL`, so two concurrent launches with the same token
//!   cannot both succeed.
//! - **Survives a restart**: records are made durable (their directory
//!   fsync'd) before the launch proceeds.
//! - **A record is a symbolic link** whose target is the record, never
//!   followed: `v1 <exp> <container>`, the container being the first 128
//!   bits of the SHA-256 of the container's id in hex (or `-`). `symlink(2)`
//!   writes the entry, the inode and the content in one step, as metadata
//!   only: on a journaling filesystem the journal commit that flushes the
//!   audit record (written after the record) makes it durable too, and the
//!   record's own flush has nothing left to write. A regular file took a
//!   second journal commit (≈ 0.3 ms per launch on this machine's ext4): its
//!   content is allocated on writeback, after the audit record's commit. The
//!   target is at most 56 bytes (46 for an `exp` of this century), whatever
//!   the id: ext4 and XFS keep a target
//!   under 60 bytes in the inode itself (a longer one gets a data block,
//!   which ext4 before 6.2 wrote like file data).
//!   Records written as regular files by earlier versions (JSON, `exp` also
//!   in the mtime) are still read, and the later of the two `exp` counts.
//! - **Pruned after expiry**: records whose `exp` plus the leeway has passed
//!   are removed (at most once a minute, under the lock). A pruned token is
//!   expired, so it is refused by the time checks before its `jti` is looked
//!   at.
//! - File names are the SHA-256 of `iss`, a NUL and `jti`: a `jti` chosen by
//!   an issuer can never name a path.

use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::util::{from_unix_secs, unix_secs};

/// How often the directory is pruned, at most.
const PRUNE_INTERVAL_SECS: i64 = 60;

/// Why a `jti` was refused or could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The `jti` was already used.
    #[error("token `jti` was already used: single-use tokens cannot be replayed")]
    Replayed,
    /// Exec with the launch's `jti`, but the record does not name this container.
    #[error("token `jti` was used to launch a different container (or no container): it is accepted for exec only into the container it launched")]
    NotThisContainer,
    /// Exec with the launch's `jti`, but there is no record of it.
    #[error("token `jti` has no launch record: exec with the launch token needs the record its launch wrote")]
    NoLaunchRecord,
    /// The record directory failed.
    #[error("replay records in `{}`: {op}: {source}", dir.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// What is stored for a used `jti`.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    /// The token's `exp`.
    exp: i64,
    /// [`container_digest`] of the container the token launched.
    container: Option<String>,
}

/// Version tag of a link record's target.
const RECORD_VERSION: &str = "v1";

impl Record {
    /// The link target: `v1 <exp> <container digest or ->`.
    fn to_target(&self) -> String {
        format!("{RECORD_VERSION} {} {}", self.exp, self.container.as_deref().unwrap_or("-"))
    }

    fn from_target(target: &[u8]) -> Option<Record> {
        let text = std::str::from_utf8(target).ok()?;
        let mut fields = text.split(' ');
        let (version, exp, container) = (fields.next()?, fields.next()?, fields.next()?);
        if version != RECORD_VERSION || fields.next().is_some() {
            return None;
        }
        let exp = exp.parse().ok()?;
        let container = match container {
            "-" => None,
            d if d.len() == 32 && d.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
                Some(d.to_string())
            }
            _ => return None,
        };
        Some(Record { exp, container })
    }
}

/// A container id as a record holds it: the first 128 bits of its SHA-256,
/// in hex (ids may be 1,024 characters long; the record stays short).
fn container_digest(id: &str) -> String {
    hex::encode(&Sha256::digest(id.as_bytes())[..16])
}

/// A record of an earlier version: a regular file of JSON.
#[derive(Deserialize)]
struct LegacyRecord {
    exp: i64,
    #[serde(default)]
    container_id: Option<String>,
}

/// A record written but not yet flushed to disk.
#[must_use = "a record survives a crash only once committed"]
#[derive(Debug)]
pub struct PendingRecord {
    path: PathBuf,
    guard: ReplayGuard,
}

impl PendingRecord {
    /// Flushes the record and its directory entry to disk. On failure the
    /// record is removed (as if the token had not been used) and the caller
    /// must not act on the token.
    pub fn commit(self) -> Result<(), ReplayError> {
        // The record is an entry and an inode with its content, made in one
        // step by `symlink(2)`: flushing the directory makes it durable.
        let synced = fs::File::open(&self.guard.dir).and_then(|d| d.sync_all());
        if let Err(e) = synced {
            let _ = fs::remove_file(&self.path);
            return Err(self.guard.io("writing a record", e));
        }
        Ok(())
    }
}

/// The directory of used-`jti` records.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    dir: PathBuf,
    leeway_secs: i64,
}

impl ReplayGuard {
    /// Uses (and creates, mode 0700) the record directory.
    pub fn open(dir: &Path, leeway_secs: u64) -> Result<ReplayGuard, ReplayError> {
        let guard = ReplayGuard { dir: dir.to_path_buf(), leeway_secs: i64::try_from(leeway_secs).unwrap_or(300) };
        if !dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| guard.io("creating the directory", e))?;
        }
        Ok(guard)
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> ReplayError {
        ReplayError::Io { dir: self.dir.clone(), op, source }
    }

    fn record_path(&self, issuer: &str, jti: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(issuer.as_bytes());
        h.update([0u8]);
        h.update(jti.as_bytes());
        self.dir.join(format!("{}.jti", hex::encode(h.finalize())))
    }

    fn lock(&self) -> Result<fs::File, ReplayError> {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join(".lock"))
            .map_err(|e| self.io("opening the lock file", e))?;
        f.lock().map_err(|e| self.io("locking", e))?;
        Ok(f)
    }

    /// Records `(issuer, jti)` as used, or returns [`ReplayError::Replayed`]
    /// if it already is. `container_id` binds the record to the container the
    /// token launched (see [`ReplayGuard::check_launch_record`]).
    pub fn consume(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: i64,
        container_id: Option<&str>,
        now: i64,
    ) -> Result<(), ReplayError> {
        self.consume_pending(issuer, jti, expires_at, container_id, now)?.commit()
    }

    /// [`ReplayGuard::consume`] without the flush to disk, for a caller that
    /// commits the record later (before it acts on the token). Concurrent
    /// brig processes see the record at once; only a crash before the commit
    /// can lose it.
    pub fn consume_pending(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: i64,
        container_id: Option<&str>,
        now: i64,
    ) -> Result<PendingRecord, ReplayError> {
        let _lock = self.lock()?;
        let path = self.record_path(issuer, jti);
        match read_record(&path) {
            Ok(None) => {}
            // A stale record (its token expired long ago) does not block a
            // new token that reuses the `jti`; a live one does, and so does
            // one that cannot be read (fail closed).
            Ok(Some(old)) if old.exp.saturating_add(self.leeway_secs) < now => {
                fs::remove_file(&path).map_err(|e| self.io("removing a stale record", e))?
            }
            Ok(Some(_)) | Err(_) => return Err(ReplayError::Replayed),
        }
        let record = Record { exp: expires_at, container: container_id.map(container_digest) };
        match std::os::unix::fs::symlink(record.to_target(), &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(ReplayError::Replayed),
            Err(e) => return Err(self.io("creating a record", e)),
        }
        self.maybe_prune(now);
        Ok(PendingRecord { path, guard: self.clone() })
    }

    /// [`ReplayError::Replayed`] if `(issuer, jti)` is recorded as used (a
    /// live record, or one that cannot be read), as a launch would find it;
    /// records nothing.
    pub fn check_unused(&self, issuer: &str, jti: &str, now: i64) -> Result<(), ReplayError> {
        match read_record(&self.record_path(issuer, jti)) {
            Ok(None) => Ok(()),
            Ok(Some(old)) if old.exp.saturating_add(self.leeway_secs) < now => Ok(()),
            Ok(Some(_)) | Err(_) => Err(ReplayError::Replayed),
        }
    }

    /// For `exec` with the token that launched the container: the record must
    /// exist and name `container_id`.
    pub fn check_launch_record(&self, issuer: &str, jti: &str, container_id: &str) -> Result<(), ReplayError> {
        let _lock = self.lock()?;
        let path = self.record_path(issuer, jti);
        let record = match read_record(&path) {
            Ok(Some(r)) => r,
            Ok(None) => return Err(ReplayError::NoLaunchRecord),
            Err(RecordError::Unreadable) => return Err(ReplayError::NoLaunchRecord),
            Err(RecordError::Io(e)) => return Err(self.io("reading a record", e)),
        };
        if record.container.is_some_and(|c| c == container_digest(container_id)) {
            Ok(())
        } else {
            Err(ReplayError::NotThisContainer)
        }
    }

    fn maybe_prune(&self, now: i64) {
        let stamp = self.dir.join(".pruned");
        let last = fs::metadata(&stamp).and_then(|m| m.modified()).map(unix_secs).unwrap_or(0);
        if now - last < PRUNE_INTERVAL_SECS && last <= now {
            return;
        }
        let _ = fs::write(&stamp, b"")
            .and_then(|()| fs::File::options().write(true).open(&stamp)?.set_modified(from_unix_secs(now)));
        let _ = self.prune_locked(now);
    }

    /// Removes the records of tokens that have expired (plus the leeway).
    pub fn prune(&self, now: i64) -> Result<usize, ReplayError> {
        let _lock = self.lock()?;
        self.prune_locked(now)
    }

    fn prune_locked(&self, now: i64) -> Result<usize, ReplayError> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir).map_err(|e| self.io("listing", e))? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            if !name.to_string_lossy().ends_with(".jti") {
                continue;
            }
            // An unreadable record is kept: it refuses its token (above).
            let Ok(Some(record)) = read_record(&entry.path()) else { continue };
            if record.exp.saturating_add(self.leeway_secs) < now && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Number of records (for tests and `brig` diagnostics).
    pub fn len(&self) -> usize {
        fs::read_dir(&self.dir)
            .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".jti")).count())
            .unwrap_or(0)
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a record that exists could not be used.
enum RecordError {
    /// Not a record brig wrote (bad JSON, or neither a link nor a file).
    Unreadable,
    /// The filesystem failed.
    Io(std::io::Error),
}

/// The record at `path` (`None` if there is none), never following a link.
fn read_record(path: &Path) -> Result<Option<Record>, RecordError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RecordError::Io(e)),
    };
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).map_err(RecordError::Io)?.into_os_string().into_vec();
        return Record::from_target(&target).map(Some).ok_or(RecordError::Unreadable);
    }
    if !meta.file_type().is_file() {
        return Err(RecordError::Unreadable);
    }
    // Earlier versions: a regular file of JSON, the token's `exp` also in
    // its mtime (the content may be empty after a crash; the mtime is
    // metadata). The later `exp` counts: an mtime reset by a copy or a
    // restore must not make a live record look stale.
    let mtime_exp = meta.modified().map(unix_secs).map_err(RecordError::Io)?;
    let mut content = Vec::new();
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut content))
        .map_err(RecordError::Io)?;
    let legacy: Option<LegacyRecord> = serde_json::from_slice(&content).ok();
    Ok(Some(Record {
        exp: legacy.as_ref().map_or(mtime_exp, |l| l.exp.max(mtime_exp)),
        container: legacy.and_then(|l| l.container_id).map(|id| container_digest(&id)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_once_then_replayed_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let g = ReplayGuard::open(&dir.path().join("r"), 30).unwrap();
        g.consume("iss", "j1", 2_000, Some("c1"), 1_000).unwrap();
        assert!(matches!(g.consume("iss", "j1", 2_000, Some("c2"), 1_001), Err(ReplayError::Replayed)));
        // another issuer's `j1` is a different token
        g.consume("iss2", "j1", 2_000, None, 1_001).unwrap();
        let again = ReplayGuard::open(&dir.path().join("r"), 30).unwrap();
        assert!(matches!(again.consume("iss", "j1", 2_000, None, 1_002), Err(ReplayError::Replayed)));
        again.check_launch_record("iss", "j1", "c1").unwrap();
        assert!(matches!(again.check_launch_record("iss", "j1", "c2"), Err(ReplayError::NotThisContainer)));
        assert!(matches!(again.check_launch_record("iss", "nope", "c1"), Err(ReplayError::NoLaunchRecord)));
    }

    #[test]
    fn a_pending_record_already_refuses_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let g = ReplayGuard::open(dir.path(), 30).unwrap();
        let pending = g.consume_pending("iss", "j1", 2_000, Some("c1"), 1_000).unwrap();
        // another brig process sees it before the flush
        let other = ReplayGuard::open(dir.path(), 30).unwrap();
        assert!(matches!(other.consume("iss", "j1", 2_000, None, 1_001), Err(ReplayError::Replayed)));
        assert!(matches!(other.consume_pending("iss", "j1", 2_000, None, 1_001), Err(ReplayError::Replayed)));
        pending.commit().unwrap();
        other.check_launch_record("iss", "j1", "c1").unwrap();
        // dropped without a commit, a record still refuses the token
        drop(g.consume_pending("iss", "j2", 2_000, None, 1_000).unwrap());
        assert!(matches!(other.consume("iss", "j2", 2_000, None, 1_001), Err(ReplayError::Replayed)));
    }

    #[test]
    fn pruned_after_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let g = ReplayGuard::open(dir.path(), 30).unwrap();
        g.consume("iss", "a", 1_100, None, 1_000).unwrap();
        g.consume("iss", "b", 5_000, None, 1_000).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g.prune(1_129).unwrap(), 0);
        assert_eq!(g.prune(1_131).unwrap(), 1);
        assert_eq!(g.len(), 1);
        // `a` is usable again only because its token has expired long ago
        g.consume("iss", "a", 9_000, None, 1_200).unwrap();
    }

    #[test]
    fn records_are_short_links_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let g = ReplayGuard::open(dir.path(), 30).unwrap();
        // The longest id `validate_id` allows.
        let long_id = "c".repeat(1024);
        g.consume("iss", "j1", 2_000, Some(&long_id), 1_000).unwrap();
        let path = g.record_path("iss", "j1");
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        // Kept in the inode on ext4 and XFS (under 60 bytes), whatever the id.
        let target = fs::read_link(&path).unwrap();
        assert!(target.as_os_str().len() < 60, "{target:?}");
        // Its target is the record, not a path: following it finds nothing,
        // and a reader that followed it would take the token as unused.
        assert!(fs::metadata(&path).is_err());
        assert!(matches!(g.consume("iss", "j1", 2_000, None, 1_001), Err(ReplayError::Replayed)));
        g.check_launch_record("iss", "j1", &long_id).unwrap();
        assert!(matches!(g.check_launch_record("iss", "j1", &"c".repeat(1023)), Err(ReplayError::NotThisContainer)));

        // A link that is not a record (here: to a real file holding what an
        // earlier version wrote) is never followed, refuses its token, names
        // no container and is not pruned.
        let planted = g.record_path("iss", "j2");
        let real = dir.path().join("real");
        fs::write(&real, br#"{"exp":0,"recorded_at":0,"container_id":"c1"}"#).unwrap();
        std::os::unix::fs::symlink(&real, &planted).unwrap();
        assert!(matches!(g.consume("iss", "j2", 2_000, None, 1_000), Err(ReplayError::Replayed)));
        assert!(matches!(g.check_launch_record("iss", "j2", "c1"), Err(ReplayError::NoLaunchRecord)));
        // Nor a target that is almost a record.
        for (jti, target) in [("j3", "v1 100"), ("j4", "v1 100 - x"), ("j5", "v2 100 -"), ("j6", "v1 100 ABCDEF")] {
            std::os::unix::fs::symlink(target, g.record_path("iss", jti)).unwrap();
            assert!(matches!(g.consume("iss", jti, 2_000, None, 1_000), Err(ReplayError::Replayed)), "{target}");
        }
        assert_eq!(g.prune(1_000_000).unwrap(), 1, "only the expired record `j1` goes");
        assert!(fs::symlink_metadata(&planted).is_ok());
    }

    #[test]
    fn records_of_earlier_versions_are_read() {
        // A regular file of JSON, the token's `exp` also in its mtime.
        let dir = tempfile::tempdir().unwrap();
        let g = ReplayGuard::open(dir.path(), 30).unwrap();
        let old = |jti: &str, mtime: i64, content: &[u8]| {
            let path = g.record_path("iss", jti);
            fs::write(&path, content).unwrap();
            fs::File::options().write(true).open(&path).unwrap().set_modified(from_unix_secs(mtime)).unwrap();
        };
        old("a", 2_000, br#"{"exp":2000,"recorded_at":1000,"container_id":"c1"}"#);
        // what a crash between the create and the flush could leave
        old("b", 2_000, b"");
        // an mtime reset by a copy: the record's own `exp` still counts
        old("c", 0, br#"{"exp":2000,"recorded_at":1000}"#);
        for jti in ["a", "b", "c"] {
            assert!(matches!(g.consume("iss", jti, 2_000, None, 1_500), Err(ReplayError::Replayed)), "{jti}");
        }
        g.check_launch_record("iss", "a", "c1").unwrap();
        assert!(matches!(g.check_launch_record("iss", "a", "c2"), Err(ReplayError::NotThisContainer)));
        assert_eq!(g.prune(2_029).unwrap(), 0);
        assert_eq!(g.prune(2_031).unwrap(), 3);
        g.consume("iss", "a", 9_000, None, 2_031).unwrap();
    }

    #[test]
    fn concurrent_consumers_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let g = ReplayGuard::open(&path, 30).unwrap();
                    g.consume("iss", "same", 5_000, Some(&format!("c{i}")), 1_000).is_ok()
                })
            })
            .collect();
        let wins = handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count();
        assert_eq!(wins, 1);
    }
}
