//! Measurement of input and output trees: per-file SHA-256 and a root digest
//! over the canonical list of entries.
//!
//! Files are hashed in parallel by a small pool of threads (one per available
//! CPU, at most 8) fed by a single walker through a bounded queue of open
//! files, so each file is opened once, read once (256 KiB reads) and never by
//! path after it was listed. `sha2` picks its SHA-NI backend at run time.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::name::escape;
use crate::walk::{walk, Kind, RootLinks};

/// Bounds on what one measurement may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most entries (files, directories, symlinks, anything) below the root.
    pub max_files: u64,
    /// Most bytes of regular-file content, summed over the tree.
    pub max_bytes: u64,
    /// Deepest directory nesting below the root.
    #[serde(default = "default_depth")]
    pub max_depth: usize,
}

fn default_depth() -> usize {
    Limits::DEFAULT_DEPTH
}

impl Limits {
    pub const DEFAULT_DEPTH: usize = 256;

    pub fn new(max_files: u64, max_bytes: u64) -> Limits {
        Limits { max_files, max_bytes, max_depth: Self::DEFAULT_DEPTH }
    }

    /// The bounds `rootfs_digest` uses: a million entries, 64 GiB.
    pub const ROOTFS: Limits = Limits { max_files: 1_000_000, max_bytes: 64 << 30, max_depth: Self::DEFAULT_DEPTH };
}

/// Which bound a measurement exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MaxFiles,
    MaxBytes,
    MaxDepth,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::MaxFiles => "the entry limit (`max_files`)",
            Limit::MaxBytes => "the size limit (`max_bytes`)",
            Limit::MaxDepth => "the depth limit (`max_depth`)",
        })
    }
}

/// Why a tree could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("{limit} was exceeded under `{root}`: {value} > {max}")]
    LimitExceeded { limit: Limit, value: u64, max: u64, root: PathBuf },
    #[error("cannot read `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("`{path}` changed while it was being measured")]
    Changed { path: PathBuf },
    #[error("`{path}` has a file type brig does not know")]
    UnknownType { path: PathBuf },
    #[error("`{path}` is no longer the path that was checked: a symbolic link is on the way")]
    LinkOnTheWay { path: PathBuf },
}

/// One entry of a measured tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// The relative path, escaped (see [`crate::name`]); empty when the root
    /// itself is a file.
    pub name: String,
    #[serde(flatten)]
    pub kind: EntryKind,
}

/// What an entry is; directories are not recorded in a [`TreeDigest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryKind {
    File { size: u64, sha256: String },
    Symlink { target: String },
    Fifo,
    Socket,
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
}

/// A measured tree: its entries sorted by name and the root digest over
/// their canonical list ([`TreeDigest::canonical`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeDigest {
    /// Lower-case hex SHA-256 of [`TreeDigest::canonical`].
    pub root_sha256: String,
    /// Regular files.
    pub files: u64,
    /// Bytes of regular-file content.
    pub bytes: u64,
    pub entries: Vec<TreeEntry>,
}

/// The first line of a tree's canonical list.
pub const TREE_FORMAT: &str = "brig-tree-v1";

impl TreeDigest {
    /// The canonical list the root digest is taken over: `brig-tree-v1\n`, then
    /// one line per entry in name order, fields separated by a tab:
    /// `F name size sha256`, `L name target`, `P name`, `S name`,
    /// `C name major:minor`, `B name major:minor`. Names and targets are
    /// escaped, so they hold no tab or newline.
    pub fn canonical(entries: &[TreeEntry]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + entries.len() * 96);
        out.extend_from_slice(TREE_FORMAT.as_bytes());
        out.push(b'\n');
        for e in entries {
            let line = match &e.kind {
                EntryKind::File { size, sha256 } => format!("F\t{}\t{size}\t{sha256}\n", e.name),
                EntryKind::Symlink { target } => format!("L\t{}\t{target}\n", e.name),
                EntryKind::Fifo => format!("P\t{}\n", e.name),
                EntryKind::Socket => format!("S\t{}\n", e.name),
                EntryKind::CharDevice { major, minor } => format!("C\t{}\t{major}:{minor}\n", e.name),
                EntryKind::BlockDevice { major, minor } => format!("B\t{}\t{major}:{minor}\n", e.name),
            };
            out.extend_from_slice(line.as_bytes());
        }
        out
    }

    /// Recomputes the root digest from the entries (they must be sorted).
    pub fn recompute_root(&self) -> String {
        hex::encode(Sha256::digest(Self::canonical(&self.entries)))
    }

    /// The regular files, as (name, size, sha256).
    pub fn files(&self) -> impl Iterator<Item = (&str, u64, &str)> {
        self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::File { size, sha256 } => Some((e.name.as_str(), *size, sha256.as_str())),
            _ => None,
        })
    }
}

/// Measures every entry under `root` (see the crate docs for what is recorded).
/// `root` itself may be or pass through a symbolic link (`brig attest verify
/// --artifacts` measures what a user names); nothing below it is followed.
pub fn hash_tree(root: &Path, limits: &Limits) -> Result<TreeDigest, MeasureError> {
    hash_tree_with(root, limits, RootLinks::Follow, false).map(|w| w.tree)
}

/// [`hash_tree`] of a canonical path that no symbolic link may lead to: a job's
/// input or output, checked by its canonical path at `create`. A directory on
/// the way swapped for a link since (by another job that can write its
/// parent) is [`MeasureError::LinkOnTheWay`], never measured through: root
/// brig would otherwise record digests of whatever the link names.
pub fn hash_tree_no_links(root: &Path, limits: &Limits) -> Result<TreeDigest, MeasureError> {
    hash_tree_with(root, limits, RootLinks::Refuse, false).map(|w| w.tree)
}

/// [`hash_tree_no_links`], with the device and inode of the root the walk
/// measured (held from the first look to the last read): what tells that
/// the directory measured is still the one identified earlier.
pub fn hash_tree_no_links_identified(root: &Path, limits: &Limits) -> Result<(TreeDigest, (u64, u64)), MeasureError> {
    let walked = hash_tree_with(root, limits, RootLinks::Refuse, false)?;
    let identity = walked.root_id.ok_or_else(|| MeasureError::Changed { path: root.to_path_buf() })?;
    Ok((walked.tree, identity))
}

/// A tree measured by [`hash_tree_no_links_stamped`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedTree {
    pub tree: TreeDigest,
    /// The device and inode of the root that was measured (the walk holds it
    /// from the first look to the last read): what a later check that the job
    /// sees the measured directory compares with.
    pub identity: (u64, u64),
    /// The tree's [`change_stamp`] as the measuring walk saw it.
    pub change_stamp: String,
}

/// [`hash_tree_no_links`], with the root's identity and the tree's change
/// stamp, both from the walk that hashed it.
pub fn hash_tree_no_links_stamped(root: &Path, limits: &Limits) -> Result<StampedTree, MeasureError> {
    let walked = hash_tree_with(root, limits, RootLinks::Refuse, true)?;
    let identity = walked.root_id.ok_or_else(|| MeasureError::Changed { path: root.to_path_buf() })?;
    Ok(StampedTree { tree: walked.tree, identity, change_stamp: walked.stamp.unwrap_or_default() })
}

/// What tells whether a tree changed between two looks, even if it was
/// changed back: the SHA-256 of every entry's name, type, device, inode and
/// status-change time (`ctime`), the root's included, in name order. The
/// kernel sets an inode's `ctime` to the current time on every write,
/// truncate, `chmod`, `chown`, link count or xattr change, and no system call
/// sets it back; a file replaced or a directory renamed in is another inode;
/// an entry added, removed or renamed changes its directory's `ctime`. So a
/// tree whose stamp is the same at both looks had, between them, the content
/// the first look hashed (on a local filesystem; a network or FUSE
/// filesystem reports whatever times its server gives). Reads no file's
/// content: it costs a walk of the metadata.
pub fn change_stamp(root: &Path, limits: &Limits) -> Result<String, MeasureError> {
    let mut stamp = ChangeStamp::default();
    walk(root, limits, true, RootLinks::Refuse, |entry, _| {
        stamp.add(&entry.rel, &entry.meta);
        Ok(())
    })?;
    Ok(stamp.finish())
}

/// The lines [`change_stamp`] is taken over.
#[derive(Default)]
struct ChangeStamp {
    lines: Vec<(String, String)>,
}

impl ChangeStamp {
    fn add(&mut self, rel: &[u8], m: &crate::walk::Meta) {
        let kind = match m.kind {
            Kind::File => 'F',
            Kind::Dir => 'D',
            Kind::Symlink => 'L',
            Kind::Fifo => 'P',
            Kind::Socket => 'S',
            Kind::CharDev => 'C',
            Kind::BlockDev => 'B',
        };
        let name = escape(rel);
        let line = format!("{kind}\t{name}\t{}\t{}\t{}\n", m.dev, m.ino, m.ctime_ns);
        self.lines.push((name, line));
    }

    fn finish(mut self) -> String {
        self.lines.sort_unstable();
        let mut h = Sha256::new();
        h.update(b"brig-change-stamp-v1\n");
        for (_, line) in &self.lines {
            h.update(line.as_bytes());
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }
}

/// What one hashing walk saw: the tree, the root's device and inode, and
/// the tree's change stamp.
struct Walked {
    tree: TreeDigest,
    root_id: Option<(u64, u64)>,
    /// Only when asked for: the other walks (outputs, user paths) have no use for it.
    stamp: Option<String>,
}

fn hash_tree_with(root: &Path, limits: &Limits, root_links: RootLinks, stamped: bool) -> Result<Walked, MeasureError> {
    struct Pending {
        name: String,
        kind: PendingKind,
    }
    enum PendingKind {
        Done(EntryKind),
        File { size: u64, job: usize },
    }
    let mut pending: Vec<Pending> = Vec::new();
    let mut inodes: HashMap<(u64, u64), usize> = HashMap::new();
    let mut root_id = None;
    let mut stamp = stamped.then(ChangeStamp::default);
    let digests = hash_files(|submit| {
        // Directories are visited only for the root's identity and the
        // change stamp.
        walk(root, limits, true, root_links, |entry, opener| {
            if let Some(stamp) = &mut stamp {
                stamp.add(&entry.rel, &entry.meta);
            }
            if entry.rel.is_empty() {
                root_id = Some((entry.meta.dev, entry.meta.ino));
            }
            let name = escape(&entry.rel);
            let m = entry.meta;
            let kind = match m.kind {
                Kind::File => {
                    let job = match inodes.get(&(m.dev, m.ino)) {
                        Some(&job) => job,
                        None => {
                            let job = inodes.len();
                            inodes.insert((m.dev, m.ino), job);
                            if let Some(opener) = opener {
                                submit(Job {
                                    id: job,
                                    file: opener.open()?,
                                    size: m.size,
                                    path: opener.path().into(),
                                })?;
                            }
                            job
                        }
                    };
                    PendingKind::File { size: m.size, job }
                }
                Kind::Symlink => PendingKind::Done(EntryKind::Symlink {
                    target: escape(entry.target.as_deref().unwrap_or_default()),
                }),
                Kind::Fifo => PendingKind::Done(EntryKind::Fifo),
                Kind::Socket => PendingKind::Done(EntryKind::Socket),
                Kind::CharDev => PendingKind::Done(EntryKind::CharDevice {
                    major: rustix::fs::major(m.rdev),
                    minor: rustix::fs::minor(m.rdev),
                }),
                Kind::BlockDev => PendingKind::Done(EntryKind::BlockDevice {
                    major: rustix::fs::major(m.rdev),
                    minor: rustix::fs::minor(m.rdev),
                }),
                Kind::Dir => return Ok(()),
            };
            pending.push(Pending { name, kind });
            Ok(())
        })
    })?;
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut entries = Vec::with_capacity(pending.len());
    for p in pending {
        let kind = match p.kind {
            PendingKind::Done(k) => k,
            PendingKind::File { size, job } => {
                files += 1;
                bytes += size;
                // INVARIANT: `hash_files` returned a digest for every job it was given.
                let sha256 = digests.get(job).map(hex::encode).unwrap_or_default();
                EntryKind::File { size, sha256 }
            }
        };
        entries.push(TreeEntry { name: p.name, kind });
    }
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    let root_sha256 = hex::encode(Sha256::digest(TreeDigest::canonical(&entries)));
    Ok(Walked {
        tree: TreeDigest { root_sha256, files, bytes, entries },
        root_id,
        stamp: stamp.map(ChangeStamp::finish),
    })
}

/// An open file to hash; `id` numbers the jobs from 0 without gaps.
pub(crate) struct Job {
    pub id: usize,
    pub file: File,
    pub size: u64,
    pub path: PathBuf,
}

const READ_BUF: usize = 256 * 1024;
const QUEUE: usize = 64;

/// Runs `produce` on this thread, hashing the files it submits on a pool of
/// worker threads; returns the digests indexed by job id.
pub(crate) fn hash_files<P>(produce: P) -> Result<Vec<[u8; 32]>, MeasureError>
where
    P: FnOnce(&dyn Fn(Job) -> Result<(), MeasureError>) -> Result<(), MeasureError>,
{
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
    let rx = Mutex::new(rx);
    let cancel = AtomicBool::new(false);
    let failure: Mutex<Option<MeasureError>> = Mutex::new(None);
    let results: Mutex<Vec<(usize, [u8; 32])>> = Mutex::new(Vec::new());
    let produced = std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut buf = vec![0u8; READ_BUF];
                let mut local = Vec::new();
                loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok(mut job) = job else { break };
                    if cancel.load(Ordering::Relaxed) {
                        continue;
                    }
                    match hash_one(&mut job.file, job.size, &mut buf) {
                        Ok(Some(d)) => local.push((job.id, d)),
                        Ok(None) => fail(&cancel, &failure, MeasureError::Changed { path: job.path }),
                        Err(source) => fail(&cancel, &failure, MeasureError::Io { path: job.path, source }),
                    }
                }
                if let Ok(mut r) = results.lock() {
                    r.extend(local);
                }
            });
        }
        let submit = |job: Job| -> Result<(), MeasureError> {
            if cancel.load(Ordering::Relaxed) {
                return Err(MeasureError::Changed { path: job.path });
            }
            let path = job.path.clone();
            tx.send(job)
                .map_err(|_| MeasureError::Io { path, source: std::io::Error::other("the hashing threads stopped") })
        };
        let produced = produce(&submit);
        if produced.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        drop(tx);
        produced
    });
    // A worker's failure is the real cause when the producer stopped because
    // of the cancellation.
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    produced?;
    let results = results.into_inner().unwrap_or_default();
    let mut digests = vec![[0u8; 32]; results.len()];
    for (id, d) in results {
        if let Some(slot) = digests.get_mut(id) {
            *slot = d;
        }
    }
    Ok(digests)
}

fn fail(cancel: &AtomicBool, failure: &Mutex<Option<MeasureError>>, e: MeasureError) {
    cancel.store(true, Ordering::Relaxed);
    if let Ok(mut f) = failure.lock() {
        f.get_or_insert(e);
    }
}

/// Hashes a whole file; `None` if it does not hold exactly `size` bytes (it
/// changed after it was listed). Never reads more than `size + 1` bytes.
fn hash_one(file: &mut File, size: u64, buf: &mut [u8]) -> std::io::Result<Option<[u8; 32]>> {
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if total > size {
            return Ok(None);
        }
        hasher.update(&buf[..n]);
    }
    Ok((total == size).then(|| hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/c.txt"), b"hello\n").unwrap();
        std::fs::write(d.path().join("top"), b"").unwrap();
        symlink("../../etc/passwd", d.path().join("a/escape")).unwrap();
        d
    }

    /// The change stamp stays the same while nothing changes, and changes
    /// with any change to the tree, also one undone afterwards: the same
    /// bytes written back with their old modification time, a mode changed
    /// and changed back, a file added, a file replaced by a copy, the root
    /// renamed away for a copy.
    #[test]
    fn a_change_stamp_sees_every_change_even_one_undone() {
        use std::os::unix::fs::PermissionsExt;
        let limits = Limits::ROOTFS;
        let d = tree();
        let root = d.path();
        let measured = hash_tree_no_links_stamped(root, &limits).unwrap();
        assert_eq!(change_stamp(root, &limits).unwrap(), measured.change_stamp, "a walk alone agrees");
        assert_eq!(change_stamp(root, &limits).unwrap(), change_stamp(root, &limits).unwrap());
        assert!(measured.change_stamp.starts_with("sha256:") && measured.change_stamp.len() == 71);
        let file = root.join("a/b/c.txt");
        let check_changed = |what: &str, before: &str| {
            let after = change_stamp(root, &limits).unwrap();
            assert_ne!(after, before, "{what} went unseen");
            after
        };
        // The same bytes back, and the old mtime back: content and mtime
        // are as measured, the ctime is not.
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, b"poison\n").unwrap();
        std::fs::write(&file, b"hello\n").unwrap();
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(mtime).unwrap();
        assert_eq!(hash_tree_no_links(root, &limits).unwrap(), measured.tree, "the content is back");
        let stamp = check_changed("a write undone", &measured.change_stamp);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let stamp = check_changed("a mode changed back", &stamp);
        std::fs::write(root.join("a/new"), b"").unwrap();
        let stamp = check_changed("a file added", &stamp);
        std::fs::remove_file(root.join("a/new")).unwrap();
        let stamp = check_changed("a file removed", &stamp);
        let copy = root.join("a/b/copy");
        std::fs::copy(&file, &copy).unwrap();
        std::fs::rename(&copy, &file).unwrap();
        let stamp = check_changed("a file replaced by a copy", &stamp);
        // The root renamed away and an identical copy put in its place.
        let parent = tempfile::tempdir().unwrap();
        let (dir, aside) = (parent.path().join("in"), parent.path().join("aside"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("x"), b"x").unwrap();
        let before = change_stamp(&dir, &limits).unwrap();
        std::fs::rename(&dir, &aside).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(aside.join("x"), dir.join("x")).unwrap();
        assert_eq!(hash_tree_no_links(&dir, &limits).unwrap(), hash_tree_no_links(&aside, &limits).unwrap());
        assert_ne!(change_stamp(&dir, &limits).unwrap(), before, "a root swapped for a copy went unseen");
        let _ = stamp;
    }

    /// A job's output (a canonical path checked at create) swapped for a link
    /// to a host directory, or reached through one, is refused, not measured
    /// through; the same path given by a user (`hash_tree`) is followed.
    #[test]
    fn a_checked_root_reached_through_a_link_is_refused() {
        let d = tree();
        let limits = Limits::new(100, 1 << 20);
        let real = hash_tree_no_links(&d.path().join("a"), &limits).unwrap();
        assert_eq!(real.entries.len(), 2);
        let secret = tempfile::tempdir().unwrap();
        std::fs::write(secret.path().join("shadow"), b"root:secret\n").unwrap();
        std::fs::rename(d.path().join("a"), d.path().join("a.old")).unwrap();
        symlink(secret.path(), d.path().join("a")).unwrap();
        for root in [d.path().join("a"), d.path().join("a/shadow")] {
            match hash_tree_no_links(&root, &limits) {
                Err(MeasureError::LinkOnTheWay { path }) => assert_eq!(path, root),
                other => panic!("{}: {other:?}", root.display()),
            }
        }
        assert_eq!(hash_tree(&d.path().join("a"), &limits).unwrap().entries[0].name, "shadow");
        // A file root with no link on the way is measured.
        assert_eq!(hash_tree_no_links(&d.path().join("top"), &limits).unwrap().entries.len(), 1);
    }

    #[test]
    fn records_files_and_symlinks_without_following() {
        let d = tree();
        let t = hash_tree(d.path(), &Limits::new(100, 1 << 20)).unwrap();
        let names: Vec<_> = t.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a/b/c.txt", "a/escape", "top"]);
        assert_eq!(
            t.entries[0].kind,
            EntryKind::File {
                size: 6,
                sha256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03".into()
            }
        );
        assert_eq!(t.entries[1].kind, EntryKind::Symlink { target: "../../etc/passwd".into() });
        assert_eq!((t.files, t.bytes), (2, 6));
        assert_eq!(t.recompute_root(), t.root_sha256);
    }

    #[test]
    fn canonical_list_is_documented_format() {
        let d = tree();
        let t = hash_tree(d.path(), &Limits::new(100, 1 << 20)).unwrap();
        let text = String::from_utf8(TreeDigest::canonical(&t.entries)).unwrap();
        assert_eq!(
            text,
            "brig-tree-v1\n\
             F\ta/b/c.txt\t6\t5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\n\
             L\ta/escape\t../../etc/passwd\n\
             F\ttop\t0\te3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        );
    }

    #[test]
    fn limits_are_named() {
        let d = tree();
        // 5 entries below the root: a, a/b, a/b/c.txt, a/escape, top.
        assert!(hash_tree(d.path(), &Limits::new(5, 6)).is_ok());
        let e = hash_tree(d.path(), &Limits::new(4, 1 << 20)).unwrap_err();
        assert!(matches!(e, MeasureError::LimitExceeded { limit: Limit::MaxFiles, max: 4, .. }), "{e}");
        assert!(e.to_string().contains("max_files"), "{e}");
        let e = hash_tree(d.path(), &Limits::new(100, 5)).unwrap_err();
        assert!(matches!(e, MeasureError::LimitExceeded { limit: Limit::MaxBytes, value: 6, max: 5, .. }), "{e}");
        assert!(e.to_string().contains("max_bytes"), "{e}");
        let e = hash_tree(d.path(), &Limits { max_depth: 1, ..Limits::new(100, 100) }).unwrap_err();
        assert!(matches!(e, MeasureError::LimitExceeded { limit: Limit::MaxDepth, .. }), "{e}");
    }

    #[test]
    fn deterministic_and_sensitive() {
        let d = tree();
        let l = Limits::new(100, 1 << 20);
        let first = hash_tree(d.path(), &l).unwrap();
        assert_eq!(hash_tree(d.path(), &l).unwrap(), first);
        std::fs::write(d.path().join("a/b/c.txt"), b"hellO\n").unwrap();
        let byte = hash_tree(d.path(), &l).unwrap();
        assert_ne!(byte.root_sha256, first.root_sha256);
        std::fs::remove_file(d.path().join("a/escape")).unwrap();
        symlink("elsewhere", d.path().join("a/escape")).unwrap();
        assert_ne!(hash_tree(d.path(), &l).unwrap().root_sha256, byte.root_sha256);
        std::fs::rename(d.path().join("top"), d.path().join("top2")).unwrap();
        assert_ne!(hash_tree(d.path(), &l).unwrap().root_sha256, byte.root_sha256);
    }

    #[test]
    fn hard_links_are_read_once_and_recorded_twice() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x"), b"same").unwrap();
        std::fs::hard_link(d.path().join("x"), d.path().join("y")).unwrap();
        let t = hash_tree(d.path(), &Limits::new(10, 100)).unwrap();
        let files: Vec<_> = t.files().collect();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].2, files[1].2);
        assert_eq!(t.bytes, 8);
    }

    #[test]
    fn root_file_and_special_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("one");
        std::fs::write(&f, b"x").unwrap();
        let t = hash_tree(&f, &Limits::new(1, 1)).unwrap();
        assert_eq!(t.entries.len(), 1);
        assert_eq!(t.entries[0].name, "");
        let fifo = d.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let t = hash_tree(d.path(), &Limits::new(10, 10)).unwrap();
        assert!(t.entries.iter().any(|e| e.name == "fifo" && e.kind == EntryKind::Fifo));
    }

    #[test]
    fn many_files_in_parallel_match_sequential_hashes() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..300u32 {
            let dir = d.path().join(format!("d{}", i % 7));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("f{i}")), vec![(i % 251) as u8; (i as usize) * 1013]).unwrap();
        }
        let t = hash_tree(d.path(), &Limits::new(1000, 1 << 30)).unwrap();
        assert_eq!(t.files, 300);
        for (name, _, sha) in t.files() {
            let data = std::fs::read(d.path().join(name)).unwrap();
            assert_eq!(hex::encode(Sha256::digest(&data)), sha, "{name}");
        }
    }

    #[test]
    fn unusual_names_are_escaped() {
        let d = tempfile::tempdir().unwrap();
        use std::os::unix::ffi::OsStrExt;
        let raw = std::ffi::OsStr::from_bytes(b"new\nline\xff%");
        std::fs::write(d.path().join(raw), b"").unwrap();
        let t = hash_tree(d.path(), &Limits::new(10, 10)).unwrap();
        assert_eq!(t.entries[0].name, "new%0Aline%FF%25");
    }
}
