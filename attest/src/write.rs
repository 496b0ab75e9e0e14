//! Writing an envelope atomically: a temporary file in the same directory,
//! written and fsynced, renamed over `<container-id>.intoto.json`, then the
//! directory fsynced. On any failure before the rename the temporary file is
//! removed and nothing else changed: an existing envelope stays as it was, a
//! missing one stays missing.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::dsse::Envelope;
use crate::statement::valid_container_id;

/// The suffix of an envelope file.
pub const ENVELOPE_SUFFIX: &str = ".intoto.json";

/// Between a container id and the number of a later run's record: a
/// character ids cannot hold (`x~1` is never a container's id, while `x.1`
/// may be), so a name says whose record it is.
pub const RUN_SEPARATOR: char = '~';

/// How many records one container id may have in a directory.
const MAX_RECORDS_PER_ID: u32 = 100_000;

/// Why an envelope was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("container id `{0}` cannot name an attestation file")]
    BadContainerId(String),
    #[error("no space left to write `{path}` ({source}); the temporary file was removed and nothing was written")]
    NoSpace { path: PathBuf, source: std::io::Error },
    #[error("cannot {op} `{path}`: {source}; the temporary file was removed and nothing was written")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("`{path}` was written but its directory could not be synced ({source}); it may not survive a crash")]
    SyncDir { path: PathBuf, source: std::io::Error },
}

/// The file operations `write_envelope` performs, so that tests can fail
/// them one by one.
pub(crate) trait Fs {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn FileLike>>;
    /// Renames `from` to `to` unless `to` exists (`AlreadyExists` then).
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
    fn remove(&self, path: &Path) -> std::io::Result<()>;
}

pub(crate) trait FileLike: Write {
    fn sync(&mut self) -> std::io::Result<()>;
}

impl FileLike for std::fs::File {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_all()
    }
}

pub(crate) struct RealFs;

impl Fs for RealFs {
    fn create(&self, path: &Path) -> std::io::Result<Box<dyn FileLike>> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)?;
        // Held while the file is open (until after its rename): a cleaner
        // that cannot take it knows the writer lives, whatever pid
        // namespace or host it is in (`remove_stale_temporaries`). Where the
        // filesystem has no locks, the cleaner cannot take one either and
        // leaves the file.
        let _ = rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive);
        Ok(Box::new(f))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        rename_noreplace(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)
    }
}

/// `rename(2)` that never replaces what is there (`RENAME_NOREPLACE`).
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(std::io::Error::from)
}

/// `n` random bytes as hex (for temporary names).
pub(crate) fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    if getrandom::fill(&mut b).is_err() {
        // Uniqueness also comes from the pid and `create_new`; randomness only
        // avoids collisions with a stale file.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        return format!("{t:x}");
    }
    hex::encode(b)
}

fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || e.raw_os_error() == Some(rustix::io::Errno::DQUOT.raw_os_error())
}

/// The path of the envelope of `container_id` in `dir`.
pub fn envelope_path(dir: &Path, container_id: &str) -> Result<PathBuf, WriteError> {
    if !valid_container_id(container_id) {
        return Err(WriteError::BadContainerId(container_id.into()));
    }
    Ok(dir.join(format!("{container_id}{ENVELOPE_SUFFIX}")))
}

/// Writes `env` to `<dir>/<container-id>.intoto.json` atomically and durably;
/// returns its path. `dir` must exist. A record already there (an earlier run
/// under the same id: a reused name, or another state root's container of
/// that id, maybe another tenant's) is never replaced: the new one takes the
/// first free `<container-id>~<n>.intoto.json`, n = 1, 2, ... Writing the
/// same bytes again is a no-op that returns the record's path: a `delete`
/// killed after its rename, retried, does not leave the run recorded twice.
pub fn write_envelope(dir: &Path, container_id: &str, env: &Envelope) -> Result<PathBuf, WriteError> {
    write_bytes(&RealFs, dir, container_id, &env.to_json())
}

/// [`write_envelope`] of an envelope already serialized (`Envelope::to_json`),
/// as a retried `delete` writes the one it sealed the first time.
pub fn write_envelope_bytes(dir: &Path, container_id: &str, envelope: &[u8]) -> Result<PathBuf, WriteError> {
    write_bytes(&RealFs, dir, container_id, envelope)
}

/// Whether `path` is a regular file (not a link) holding exactly `bytes`.
fn holds_exactly(path: &Path, bytes: &[u8]) -> bool {
    use std::io::Read;
    let Ok(meta) = std::fs::symlink_metadata(path) else { return false };
    if !meta.is_file() || meta.len() != bytes.len() as u64 {
        return false;
    }
    let mut held = Vec::with_capacity(bytes.len());
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .and_then(|f| f.take(bytes.len() as u64 + 1).read_to_end(&mut held))
        .is_ok_and(|_| held == bytes)
}

/// Removes what writes of `container_id`'s record killed before their
/// rename left in `dir`: `.<id>.intoto.json.<pid>.<hex>.tmp` files whose
/// writer is gone. A live writer (another state root's container of the
/// same id, being written) holds a lock on its file until the rename; its
/// pid, where this process can see it, is a second sign. Returns how many
/// it removed. It reads the whole directory: for a retried write, not
/// every one.
pub fn remove_stale_temporaries(dir: &Path, container_id: &str) -> usize {
    let prefix = format!(".{container_id}{ENVELOPE_SUFFIX}.");
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)).and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let Some((pid, hex)) = rest.split_once('.') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
            .open(entry.path())
        else {
            continue;
        };
        // Held: its writer lives (in a pid namespace this one cannot see).
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

pub(crate) fn write_bytes(fs: &dyn Fs, dir: &Path, container_id: &str, bytes: &[u8]) -> Result<PathBuf, WriteError> {
    let target = envelope_path(dir, container_id)?;
    let tmp = dir.join(format!(".{container_id}{ENVELOPE_SUFFIX}.{}.{}.tmp", std::process::id(), random_hex(6)));
    let err = |op: &'static str, path: &Path, source: std::io::Error| {
        if is_no_space(&source) {
            WriteError::NoSpace { path: path.to_path_buf(), source }
        } else {
            WriteError::Io { op, path: path.to_path_buf(), source }
        }
    };
    let mut file = fs.create(&tmp).map_err(|e| err("create", &tmp, e))?;
    let written = (|| {
        file.write_all(bytes).map_err(|e| err("write", &tmp, e))?;
        file.flush().map_err(|e| err("write", &tmp, e))?;
        file.sync().map_err(|e| err("sync", &tmp, e))?;
        // The file stays open, and locked, until it is renamed.
        let mut target = target.clone();
        for n in 1..=MAX_RECORDS_PER_ID {
            match fs.rename(&tmp, &target) {
                Ok(()) => return Ok(target),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if holds_exactly(&target, bytes) {
                        fs.remove(&tmp).map_err(|e| err("remove", &tmp, e))?;
                        return Ok(target);
                    }
                    target = dir.join(format!("{container_id}{RUN_SEPARATOR}{n}{ENVELOPE_SUFFIX}"));
                }
                Err(e) => return Err(err("rename", &target, e)),
            }
        }
        Err(err("rename", &target, std::io::Error::other(format!("{MAX_RECORDS_PER_ID} records of this id already"))))
    })();
    let target = match written {
        Ok(target) => target,
        Err(e) => {
            let _ = fs.remove(&tmp);
            return Err(e);
        }
    };
    fs.sync_dir(dir).map_err(|source| WriteError::SyncDir { path: target.clone(), source })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Only the leftovers of this id's writes by dead processes go: not a
    /// live writer's, not another id's (`a` is not `a.b`), nothing else.
    #[test]
    fn stale_temporaries_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str| std::fs::write(dir.path().join(name), b"{").unwrap();
        let dead = ".a.intoto.json.2147483647.00112233aabb.tmp";
        let live = ".a.intoto.json.1.00112233aabb.tmp";
        let others = [
            ".a.b.intoto.json.2147483647.00112233aabb.tmp",
            ".b.intoto.json.2147483647.00112233aabb.tmp",
            "a.intoto.json",
            ".a.intoto.json.x.00112233aabb.tmp",
            ".a.intoto.json.2147483647.short.tmp",
        ];
        for n in [dead, live].iter().chain(others.iter()) {
            put(n);
        }
        assert_eq!(remove_stale_temporaries(dir.path(), "a"), 1);
        assert!(!dir.path().join(dead).exists());
        for n in [live].iter().chain(others.iter()) {
            assert!(dir.path().join(n).exists(), "{n} removed");
        }
        assert_eq!(remove_stale_temporaries(dir.path(), "a"), 0);
        // A writer this process cannot see by pid (another pid namespace)
        // holds its file's lock until the rename: left alone.
        let held = ".a.intoto.json.2147483646.00112233aabb.tmp";
        let writer = RealFs.create(&dir.path().join(held)).unwrap();
        assert_eq!(remove_stale_temporaries(dir.path(), "a"), 0);
        assert!(dir.path().join(held).exists());
        drop(writer);
        assert_eq!(remove_stale_temporaries(dir.path(), "a"), 1);
    }

    /// A file system that fails the n-th write (or a named step) like a full disk.
    struct Faulty {
        fail_write_after: Option<usize>,
        fail_sync: bool,
        fail_rename: bool,
        written: std::rc::Rc<Cell<usize>>,
    }

    struct FaultyFile {
        inner: std::fs::File,
        budget: Option<usize>,
        written: std::rc::Rc<Cell<usize>>,
        fail_sync: bool,
    }

    impl Write for FaultyFile {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = match self.budget {
                Some(0) => return Err(std::io::Error::from_raw_os_error(28)),
                Some(b) => buf.len().min(b),
                None => buf.len(),
            };
            if let Some(b) = &mut self.budget {
                *b -= n;
            }
            self.written.set(self.written.get() + n);
            self.inner.write(&buf[..n])
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }

    impl FileLike for FaultyFile {
        fn sync(&mut self) -> std::io::Result<()> {
            if self.fail_sync {
                return Err(std::io::Error::from_raw_os_error(5));
            }
            self.inner.sync_all()
        }
    }

    impl Fs for Faulty {
        fn create(&self, path: &Path) -> std::io::Result<Box<dyn FileLike>> {
            let inner = std::fs::OpenOptions::new().write(true).create_new(true).open(path)?;
            Ok(Box::new(FaultyFile {
                inner,
                budget: self.fail_write_after,
                written: self.written.clone(),
                fail_sync: self.fail_sync,
            }))
        }
        fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
            if self.fail_rename {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            RealFs.rename(from, to)
        }
        fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
            RealFs.sync_dir(dir)
        }
        fn remove(&self, path: &Path) -> std::io::Result<()> {
            std::fs::remove_file(path)
        }
    }

    fn faulty(after: Option<usize>, sync: bool, rename: bool) -> Faulty {
        Faulty { fail_write_after: after, fail_sync: sync, fail_rename: rename, written: Default::default() }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    /// A second run under the same id never replaces the first's record
    /// (another tenant's container of that id under another state root would
    /// have erased it): it takes the next free name.
    #[test]
    fn writes_and_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = write_bytes(&RealFs, d.path(), "job-1", b"one").unwrap();
        assert_eq!(p, d.path().join("job-1.intoto.json"));
        let second = write_bytes(&RealFs, d.path(), "job-1", b"two").unwrap();
        assert_eq!(second, d.path().join("job-1~1.intoto.json"));
        let third = write_bytes(&RealFs, d.path(), "job-1", b"three").unwrap();
        assert_eq!(third, d.path().join("job-1~2.intoto.json"));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(std::fs::read(&second).unwrap(), b"two");
        assert_eq!(listing(d.path()), ["job-1.intoto.json", "job-1~1.intoto.json", "job-1~2.intoto.json"]);
    }

    /// The retry of a write that got as far as its rename (a `delete` killed
    /// before it could remove the container) finds its own record and adds
    /// none; a record of other bytes, or a link to the same bytes, is not it.
    #[test]
    fn writing_the_same_record_again_adds_nothing() {
        let d = tempfile::tempdir().unwrap();
        write_bytes(&RealFs, d.path(), "job", b"first run").unwrap();
        let second = write_bytes(&RealFs, d.path(), "job", b"second run").unwrap();
        assert_eq!(write_bytes(&RealFs, d.path(), "job", b"second run").unwrap(), second);
        assert_eq!(write_bytes(&RealFs, d.path(), "job", b"first run").unwrap(), d.path().join("job.intoto.json"));
        assert_eq!(listing(d.path()), ["job.intoto.json", "job~1.intoto.json"]);
        // A link holding the bytes is not the record.
        let e = tempfile::tempdir().unwrap();
        std::fs::write(e.path().join("elsewhere"), b"third").unwrap();
        std::os::unix::fs::symlink(e.path().join("elsewhere"), d.path().join("job~2.intoto.json")).unwrap();
        assert_eq!(write_bytes(&RealFs, d.path(), "job", b"third").unwrap(), d.path().join("job~3.intoto.json"));
    }

    #[test]
    fn full_disk_mid_write_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        let fs = faulty(Some(10), false, false);
        let e = write_bytes(&fs, d.path(), "job", &[b'x'; 100]).unwrap_err();
        assert!(matches!(e, WriteError::NoSpace { .. }), "{e}");
        assert!(e.to_string().contains("no space left") && e.to_string().contains("temporary file was removed"));
        assert_eq!(fs.written.get(), 10, "the write really started");
        assert!(listing(d.path()).is_empty());
    }

    #[test]
    fn failures_keep_the_previous_envelope() {
        let d = tempfile::tempdir().unwrap();
        write_bytes(&RealFs, d.path(), "job", b"old").unwrap();
        for fs in [faulty(Some(0), false, false), faulty(None, true, false), faulty(None, false, true)] {
            let e = write_bytes(&fs, d.path(), "job", b"new").unwrap_err();
            assert!(e.to_string().contains("temporary file was removed"), "{e}");
            assert_eq!(listing(d.path()), ["job.intoto.json"]);
            assert_eq!(std::fs::read(d.path().join("job.intoto.json")).unwrap(), b"old");
        }
    }

    #[test]
    fn refuses_ids_that_escape_the_directory() {
        let d = tempfile::tempdir().unwrap();
        for id in ["", ".", "..", "../x", "a/b", "a\0b"] {
            assert!(matches!(write_bytes(&RealFs, d.path(), id, b"x"), Err(WriteError::BadContainerId(_))), "{id:?}");
        }
    }
}
