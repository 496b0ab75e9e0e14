//! The rootfs digest: a deterministic digest over the whole root filesystem
//! (paths, types, modes, owners, symlink targets, device numbers, file
//! contents), with a per-file content cache so that launching the same rootfs
//! again re-reads no file whose inode has not changed.
//!
//! # What the cache trusts
//!
//! One cache file per rootfs (keyed by the SHA-256 of its canonical path) maps
//! each regular file's name to `(st_dev, st_ino, size, mtime_ns, ctime_ns,
//! sha256)`. A later measurement walks the tree's metadata (`fstatat`,
//! `readlinkat`; always fresh, so modes, owners, names, symlinks and the set of
//! entries are never taken from the cache) and reuses a file's digest only if
//! all five keys match. A write to a file, a `truncate`, a `rename` over it, a
//! `chmod`/`chown`, `utimensat` (which sets mtime but moves ctime to now) all
//! change ctime, and ctime cannot be set to an arbitrary value without root
//! (changing the clock) or raw access to the block device.
//!
//! Timestamps are taken from a coarse clock: two writes within one tick leave
//! the same ctime. So a file whose mtime or ctime is within
//! [`RACY_WINDOW_NS`] of the moment the measurement started is hashed but not
//! cached ("racily clean", as git calls it): any later change to it moves its
//! ctime past the recorded value.
//!
//! The cache directory and files must be owned by the effective user and not
//! writable by group or others; otherwise the cache is not used (the
//! measurement is done in full and reports [`CacheStatus::Untrusted`]). A
//! corrupt or foreign cache file is ignored. The cache is an optimization: it
//! never fails a measurement.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::measure::{hash_files, Job, Limits, MeasureError};
use crate::name::escape;
use crate::walk::{walk, Kind, RootLinks};

/// Files changed this close to the start of a measurement are not cached.
pub const RACY_WINDOW_NS: i64 = 2_000_000_000;
/// The first line of the rootfs canonical list.
pub const ROOTFS_FORMAT: &str = "brig-rootfs-v1";
const CACHE_VERSION: u32 = 1;
const CACHE_MAX_BYTES: u64 = 256 << 20;
/// Most cache files kept in a cache directory (oldest removed first).
pub const CACHE_MAX_FILES: usize = 256;

/// How the cache was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    /// No file was read.
    Hit,
    /// Some files were reused, some read.
    Partial,
    /// Every file was read (no cache, or nothing in it matched).
    Miss,
    /// The cache directory or file is not safe to trust; every file was read.
    Untrusted,
    /// No cache directory was given.
    Disabled,
}

/// What the cache did for one measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheReport {
    pub status: CacheStatus,
    pub reused_files: u64,
    pub hashed_files: u64,
    /// The cache file was (re)written.
    pub stored: bool,
}

/// A measured rootfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsDigest {
    /// Lower-case hex SHA-256 of the canonical list.
    pub sha256: String,
    /// Entries, the root directory included.
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    pub cache: CacheReport,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    rootfs: String,
    measured_at_ns: i64,
    /// name → (dev, ino, size, mtime_ns, ctime_ns, sha256 hex)
    files: HashMap<String, (u64, u64, u64, i64, i64, String)>,
}

/// Measures `rootfs` with the default bounds ([`Limits::ROOTFS`]), using and
/// refreshing the cache in `cache_dir` (created, mode 0700, if missing).
pub fn rootfs_digest(rootfs: &Path, cache_dir: &Path) -> Result<RootfsDigest, MeasureError> {
    rootfs_digest_with(rootfs, Some(cache_dir), &Limits::ROOTFS)
}

/// [`rootfs_digest`] with explicit bounds; `cache_dir: None` measures without
/// a cache.
pub fn rootfs_digest_with(
    rootfs: &Path,
    cache_dir: Option<&Path>,
    limits: &Limits,
) -> Result<RootfsDigest, MeasureError> {
    let started_ns = now_ns();
    let canonical_root =
        std::fs::canonicalize(rootfs).map_err(|source| MeasureError::Io { path: rootfs.to_path_buf(), source })?;
    let (cache_path, mut status) = match cache_dir {
        None => (None, CacheStatus::Disabled),
        Some(dir) => match prepare_cache_dir(dir) {
            Ok(()) => (Some(dir.join(cache_name(&canonical_root))), CacheStatus::Miss),
            Err(_) => (None, CacheStatus::Untrusted),
        },
    };
    let root_str = escape(canonical_root.as_os_str().as_bytes());
    let old = match &cache_path {
        Some(p) => match load_cache(p, &root_str) {
            Load::Ok(c) => Some(c),
            Load::Missing => None,
            Load::Untrusted => {
                status = CacheStatus::Untrusted;
                None
            }
        },
        None => None,
    };
    let old_files = old.map(|c| c.files).unwrap_or_default();

    // Entries in walk order; a file's digest is either known or a job number.
    enum Content {
        Known(String),
        Job(usize),
    }
    struct Rec {
        name: String,
        kind: Kind,
        perm: u32,
        uid: u32,
        gid: u32,
        size: u64,
        rdev: u64,
        target: Option<String>,
        content: Option<Content>,
        key: (u64, u64, u64, i64, i64),
    }
    let mut recs: Vec<Rec> = Vec::new();
    let mut inodes: HashMap<(u64, u64), usize> = HashMap::new();
    let mut reused = 0u64;
    let digests = hash_files(|submit| {
        walk(&canonical_root, limits, true, RootLinks::Refuse, |entry, opener| {
            let m = entry.meta;
            let name = if entry.rel.is_empty() { ".".to_string() } else { escape(&entry.rel) };
            let key = (m.dev, m.ino, m.size, m.mtime_ns, m.ctime_ns);
            let content = match (m.kind, opener) {
                (Kind::File, Some(opener)) => Some(match old_files.get(&name) {
                    Some((d, i, s, mt, ct, sha)) if (*d, *i, *s, *mt, *ct) == key && is_hex64(sha) => {
                        reused += 1;
                        Content::Known(sha.clone())
                    }
                    _ => match inodes.get(&(m.dev, m.ino)) {
                        Some(&job) => Content::Job(job),
                        None => {
                            let job = inodes.len();
                            inodes.insert((m.dev, m.ino), job);
                            submit(Job { id: job, file: opener.open()?, size: m.size, path: opener.path().into() })?;
                            Content::Job(job)
                        }
                    },
                }),
                _ => None,
            };
            recs.push(Rec {
                name,
                kind: m.kind,
                perm: m.perm,
                uid: m.uid,
                gid: m.gid,
                size: m.size,
                rdev: m.rdev,
                target: entry.target.as_deref().map(escape),
                content,
                key,
            });
            Ok(())
        })
    })?;
    let hashed = inodes.len() as u64;

    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut new_files = HashMap::new();
    let mut lines: Vec<(String, String)> = Vec::with_capacity(recs.len());
    for r in recs {
        let (n, perm, uid, gid) = (&r.name, r.perm, r.uid, r.gid);
        let line = match r.kind {
            Kind::Dir => format!("D\t{n}\t{perm:04o}\t{uid}\t{gid}\n"),
            Kind::File => {
                let sha = match r.content {
                    Some(Content::Known(s)) => s,
                    // INVARIANT: `hash_files` returned a digest for every job.
                    Some(Content::Job(j)) => digests.get(j).map(hex::encode).unwrap_or_default(),
                    None => String::new(),
                };
                files += 1;
                bytes += r.size;
                let (_, _, _, mtime, ctime) = r.key;
                if mtime.max(ctime) < started_ns.saturating_sub(RACY_WINDOW_NS) {
                    new_files.insert(r.name.clone(), (r.key.0, r.key.1, r.key.2, r.key.3, r.key.4, sha.clone()));
                }
                format!("F\t{n}\t{perm:04o}\t{uid}\t{gid}\t{}\t{sha}\n", r.size)
            }
            Kind::Symlink => format!("L\t{n}\t{uid}\t{gid}\t{}\n", r.target.unwrap_or_default()),
            Kind::Fifo => format!("P\t{n}\t{perm:04o}\t{uid}\t{gid}\n"),
            Kind::Socket => format!("S\t{n}\t{perm:04o}\t{uid}\t{gid}\n"),
            Kind::CharDev | Kind::BlockDev => format!(
                "{}\t{n}\t{perm:04o}\t{uid}\t{gid}\t{}:{}\n",
                if r.kind == Kind::CharDev { 'C' } else { 'B' },
                rustix::fs::major(r.rdev),
                rustix::fs::minor(r.rdev)
            ),
        };
        lines.push((r.name, line));
    }
    lines.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    hasher.update(ROOTFS_FORMAT.as_bytes());
    hasher.update(b"\n");
    for (_, line) in &lines {
        hasher.update(line.as_bytes());
    }
    let sha256 = hex::encode(hasher.finalize());

    if status == CacheStatus::Miss {
        if hashed == 0 {
            status = CacheStatus::Hit;
        } else if reused > 0 {
            status = CacheStatus::Partial;
        }
    }
    let mut stored = false;
    if let (Some(path), CacheStatus::Miss | CacheStatus::Partial | CacheStatus::Hit) = (&cache_path, status) {
        // Rewrite only when something changed (a hit leaves the file as it is).
        let changed = status != CacheStatus::Hit || new_files.len() != old_files.len();
        if changed {
            let cache =
                CacheFile { version: CACHE_VERSION, rootfs: root_str, measured_at_ns: started_ns, files: new_files };
            stored = store_cache(path, &cache).is_ok();
            if stored {
                if let Some(dir) = cache_dir {
                    evict(dir);
                }
            }
        }
    }
    Ok(RootfsDigest {
        sha256,
        entries: lines.len() as u64,
        files,
        bytes,
        cache: CacheReport { status, reused_files: reused, hashed_files: hashed, stored },
    })
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)).unwrap_or(0)
}

fn cache_name(root: &Path) -> String {
    format!("rootfs-{}.json", hex::encode(Sha256::digest(root.as_os_str().as_bytes())))
}

fn trusted(meta: &std::fs::Metadata) -> bool {
    meta.uid() == rustix::process::geteuid().as_raw() && meta.mode() & 0o022 == 0
}

fn prepare_cache_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.is_dir() && trusted(&meta) {
        Ok(())
    } else {
        Err(std::io::Error::other("cache directory is not owned by us or is writable by others"))
    }
}

enum Load {
    Ok(CacheFile),
    Missing,
    Untrusted,
}

fn load_cache(path: &Path, root: &str) -> Load {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(_) => return Load::Missing,
    };
    let Ok(meta) = file.metadata() else { return Load::Missing };
    if !meta.is_file() || !trusted(&meta) {
        return Load::Untrusted;
    }
    if meta.len() > CACHE_MAX_BYTES {
        return Load::Missing;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    if file.take(CACHE_MAX_BYTES).read_to_end(&mut bytes).is_err() {
        return Load::Missing;
    }
    match serde_json::from_slice::<CacheFile>(&bytes) {
        Ok(c) if c.version == CACHE_VERSION && c.rootfs == root => Load::Ok(c),
        _ => Load::Missing,
    }
}

fn store_cache(path: &Path, cache: &CacheFile) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(cache).map_err(std::io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), crate::write::random_hex(8)));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        std::io::Write::write_all(&mut f, &bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Keeps at most [`CACHE_MAX_FILES`] cache files, removing the least recently
/// written.
fn evict(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut found: Vec<(SystemTime, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.as_bytes();
            n.starts_with(b"rootfs-") && n.ends_with(b".json")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if found.len() <= CACHE_MAX_FILES {
        return;
    }
    found.sort();
    let excess = found.len() - CACHE_MAX_FILES;
    for (_, p) in found.into_iter().take(excess) {
        let _ = std::fs::remove_file(p);
    }
}

/// The path of the cache file for `rootfs` in `cache_dir` (for tests and
/// operators).
pub fn cache_file(rootfs: &Path, cache_dir: &Path) -> std::io::Result<PathBuf> {
    Ok(cache_dir.join(cache_name(&std::fs::canonicalize(rootfs)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// A rootfs whose files are older than the racy window, so the cache keeps them.
    fn old_tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("bin/busybox"), vec![7u8; 100_000]).unwrap();
        std::fs::write(r.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        symlink("busybox", r.join("bin/sh")).unwrap();
        d
    }

    fn cold(root: &Path) -> String {
        rootfs_digest_with(root, None, &Limits::ROOTFS).unwrap().sha256
    }

    #[test]
    fn deterministic_and_sensitive_to_metadata() {
        let d = old_tree();
        let r = d.path();
        let base = cold(r);
        assert_eq!(cold(r), base);
        std::fs::set_permissions(r.join("etc/passwd"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let mode = cold(r);
        assert_ne!(mode, base, "a mode change");
        std::fs::remove_file(r.join("bin/sh")).unwrap();
        symlink("/bin/busybox", r.join("bin/sh")).unwrap();
        let link = cold(r);
        assert_ne!(link, mode, "a symlink target");
        std::os::unix::fs::lchown(r.join("etc/passwd"), Some(1000), Some(1000)).unwrap();
        let owner = cold(r);
        assert_ne!(owner, link, "an owner");
        let mut data = std::fs::read(r.join("bin/busybox")).unwrap();
        data[5000] ^= 1;
        std::fs::write(r.join("bin/busybox"), data).unwrap();
        let byte = cold(r);
        assert_ne!(byte, owner, "a byte");
        std::fs::create_dir(r.join("tmp")).unwrap();
        assert_ne!(cold(r), byte, "an empty directory");
    }

    #[test]
    fn same_digest_for_same_tree_elsewhere() {
        let a = old_tree();
        let b = old_tree();
        assert_eq!(cold(a.path()), cold(b.path()), "the digest does not depend on where the rootfs is");
    }

    #[test]
    fn racy_files_are_hashed_but_not_cached() {
        let d = old_tree();
        let cache = tempfile::tempdir().unwrap();
        let first = rootfs_digest(d.path(), cache.path()).unwrap();
        assert_eq!(first.cache.status, CacheStatus::Miss);
        // Everything was just written: nothing is trusted yet.
        let second = rootfs_digest(d.path(), cache.path()).unwrap();
        assert_eq!(second.sha256, first.sha256);
        assert_eq!(second.cache.reused_files, 0);
    }

    #[test]
    fn cache_reuses_unchanged_files_and_sees_every_change() {
        let d = old_tree();
        let r = d.path();
        // Let the files age past the racy window, as an unpacked image has.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let cache = tempfile::tempdir().unwrap();
        let c = cache.path();
        let first = rootfs_digest(r, c).unwrap();
        assert_eq!((first.cache.status, first.cache.hashed_files, first.cache.stored), (CacheStatus::Miss, 2, true));
        assert_eq!(first.sha256, cold(r));
        let warm = rootfs_digest(r, c).unwrap();
        assert_eq!(warm.sha256, first.sha256);
        assert_eq!(
            (warm.cache.status, warm.cache.reused_files, warm.cache.hashed_files, warm.cache.stored),
            (CacheStatus::Hit, 2, 0, false)
        );

        // Same size, one byte changed, mtime put back: ctime still moves.
        let bb = r.join("bin/busybox");
        let mtime = std::fs::metadata(&bb).unwrap().modified().unwrap();
        let mut data = std::fs::read(&bb).unwrap();
        data[99_999] ^= 0x80;
        std::fs::write(&bb, &data).unwrap();
        std::fs::File::options().write(true).open(&bb).unwrap().set_modified(mtime).unwrap();
        let touched = rootfs_digest(r, c).unwrap();
        assert_ne!(touched.sha256, first.sha256);
        assert_eq!(touched.sha256, cold(r));
        assert_eq!((touched.cache.status, touched.cache.hashed_files), (CacheStatus::Partial, 1));
        // The just-changed file is racy: it is read again next time, not trusted.
        let again = rootfs_digest(r, c).unwrap();
        assert_eq!(again.sha256, touched.sha256);
        assert_eq!(again.cache.hashed_files, 1);

        // Replaced by rename with same-size contents: a new inode.
        std::fs::write(r.join("etc/new"), b"root:x:0:0::/root:/bin/XX\n").unwrap();
        std::fs::rename(r.join("etc/new"), r.join("etc/passwd")).unwrap();
        let renamed = rootfs_digest(r, c).unwrap();
        assert_eq!(renamed.sha256, cold(r));
        assert_ne!(renamed.sha256, again.sha256);

        // A corrupt cache file is ignored.
        std::fs::write(cache_file(r, c).unwrap(), b"{not json").unwrap();
        let corrupt = rootfs_digest(r, c).unwrap();
        assert_eq!(corrupt.sha256, renamed.sha256);
        assert_eq!(corrupt.cache.status, CacheStatus::Miss);

        // A cache others can write is not used.
        std::fs::set_permissions(c, std::fs::Permissions::from_mode(0o777)).unwrap();
        let open = rootfs_digest(r, c).unwrap();
        assert_eq!(open.sha256, renamed.sha256);
        assert_eq!((open.cache.status, open.cache.reused_files), (CacheStatus::Untrusted, 0));
        std::fs::set_permissions(c, std::fs::Permissions::from_mode(0o700)).unwrap();
        let f = cache_file(r, c).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(rootfs_digest(r, c).unwrap().cache.status, CacheStatus::Untrusted);
    }
}
