//! A file-descriptor-relative tree walk that never follows a symlink inside
//! the tree.
//!
//! Every directory is opened with `openat(parent, name, O_DIRECTORY |
//! O_NOFOLLOW)` and every file with `openat(parent, name, O_NOFOLLOW |
//! O_NONBLOCK)`, then `fstat`ed and compared with what `fstatat` saw: a path
//! component swapped for a symlink (or a file for a FIFO) between the listing
//! and the open can neither lead the walk out of the tree nor block it; it is
//! reported as [`MeasureError::Changed`].

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, CWD};

use crate::measure::{Limit, Limits, MeasureError};

/// The type of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

/// What `lstat` says about an entry (the fields brig records or keys on).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
    pub rdev: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Meta {
    fn from_stat(st: &rfs::Stat) -> Option<Meta> {
        let kind = match FileType::from_raw_mode(st.st_mode as rfs::RawMode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            FileType::CharacterDevice => Kind::CharDev,
            FileType::BlockDevice => Kind::BlockDev,
            _ => return None,
        };
        #[allow(clippy::unnecessary_cast)] // the field types differ between architectures
        let (mtime_ns, ctime_ns) = (
            (st.st_mtime as i64).saturating_mul(1_000_000_000).saturating_add(st.st_mtime_nsec as i64),
            (st.st_ctime as i64).saturating_mul(1_000_000_000).saturating_add(st.st_ctime_nsec as i64),
        );
        #[allow(clippy::unnecessary_cast)]
        Some(Meta {
            kind,
            perm: (st.st_mode as u32) & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: u64::try_from(st.st_size).unwrap_or(0),
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            rdev: st.st_rdev as u64,
            mtime_ns,
            ctime_ns,
        })
    }

    fn same_inode(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino && self.kind == other.kind
    }
}

/// One entry of the tree; `rel` is its path relative to the root (empty for
/// the root itself).
#[derive(Debug)]
pub(crate) struct Entry {
    pub rel: Vec<u8>,
    pub meta: Meta,
    /// The target of a symlink.
    pub target: Option<Vec<u8>>,
}

/// Opens a regular file the walk has just seen, checking it is still that file.
#[derive(Debug)]
pub(crate) struct Opener<'a> {
    dir: BorrowedFd<'a>,
    name: &'a CStr,
    follow: bool,
    meta: Meta,
    path: PathBuf,
}

impl Opener<'_> {
    pub fn open(&self) -> Result<File, MeasureError> {
        let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        if !self.follow {
            flags |= OFlags::NOFOLLOW;
        }
        let fd = match rfs::openat(self.dir, self.name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP) | Err(rustix::io::Errno::NOENT) => {
                return Err(MeasureError::Changed { path: self.path.clone() })
            }
            Err(e) => return Err(io_err(&self.path, e)),
        };
        check_same(&fd, &self.meta, &self.path)?;
        Ok(File::from(fd))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn check_same(fd: &OwnedFd, expected: &Meta, path: &Path) -> Result<(), MeasureError> {
    let st = rfs::fstat(fd).map_err(|e| io_err(path, e))?;
    match Meta::from_stat(&st) {
        Some(m) if m.same_inode(expected) => Ok(()),
        _ => Err(MeasureError::Changed { path: path.to_path_buf() }),
    }
}

pub(crate) fn io_err(path: &Path, e: rustix::io::Errno) -> MeasureError {
    MeasureError::Io { path: path.to_path_buf(), source: e.into() }
}

fn full_path(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

struct Frame {
    fd: OwnedFd,
    prefix: Vec<u8>,
    names: Vec<CString>,
    next: usize,
    /// 1 for the root.
    depth: usize,
}

/// Whether the path to the root of a walk may pass through symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RootLinks {
    /// `root` may be or pass through links (a path a user names).
    Follow,
    /// No link anywhere on the way (`openat2(RESOLVE_NO_SYMLINKS)`): a
    /// canonical path brig checked earlier.
    Refuse,
}

/// Walks `root` (following `root` itself if it is a symlink and `root_links`
/// allows, nothing below it),
/// calling `visit` for every entry in a depth-first order (directories only if
/// `include_dirs`). Regular files come with an [`Opener`]. Enforces `limits`:
/// every entry below the root counts towards `max_files`, every regular file's
/// size towards `max_bytes`, before anything is read.
pub(crate) fn walk<F>(
    root: &Path,
    limits: &Limits,
    include_dirs: bool,
    root_links: RootLinks,
    mut visit: F,
) -> Result<(), MeasureError>
where
    F: FnMut(Entry, Option<&Opener<'_>>) -> Result<(), MeasureError>,
{
    // What the root is. With `Refuse`, the object reached with no link on the
    // way; the opens below follow the path again and must find that object
    // (`check_same`), or the walk fails as `Changed`.
    let st = match root_links {
        RootLinks::Follow => rfs::statat(CWD, root, AtFlags::empty()).map_err(|e| io_err(root, e))?,
        RootLinks::Refuse => {
            let pinned = rfs::openat2(
                CWD,
                root,
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                rfs::ResolveFlags::NO_SYMLINKS | rfs::ResolveFlags::NO_MAGICLINKS,
            )
            .map_err(|e| match e {
                rustix::io::Errno::LOOP => MeasureError::LinkOnTheWay { path: root.to_path_buf() },
                e => io_err(root, e),
            })?;
            rfs::fstat(&pinned).map_err(|e| io_err(root, e))?
        }
    };
    let meta = Meta::from_stat(&st).ok_or_else(|| MeasureError::UnknownType { path: root.to_path_buf() })?;
    let mut bytes: u64 = 0;
    let mut count: u64 = 0;
    match meta.kind {
        Kind::Dir => {}
        Kind::File => {
            add_bytes(&mut bytes, meta.size, limits, root)?;
            let name = CString::new(root.as_os_str().as_bytes())
                .map_err(|_| MeasureError::UnknownType { path: root.to_path_buf() })?;
            let opener = Opener { dir: CWD, name: &name, follow: true, meta, path: root.to_path_buf() };
            return visit(Entry { rel: Vec::new(), meta, target: None }, Some(&opener));
        }
        _ => return visit(Entry { rel: Vec::new(), meta, target: None }, None),
    }
    let fd = rfs::openat(CWD, root, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io_err(root, e))?;
    check_same(&fd, &meta, root)?;
    if include_dirs {
        visit(Entry { rel: Vec::new(), meta, target: None }, None)?;
    }
    let names = read_names(&fd, root, root, &mut count, limits)?;
    let mut stack = vec![Frame { fd, prefix: Vec::new(), names, next: 0, depth: 1 }];
    let mut link_buf = Vec::new();
    while let Some(top) = stack.last_mut() {
        let depth = top.depth;
        let Some(name) = top.names.get_mut(top.next).map(std::mem::take) else {
            stack.pop();
            continue;
        };
        top.next += 1;
        let mut rel = top.prefix.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        let path = full_path(root, &rel);
        let st = match rfs::statat(&top.fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return Err(MeasureError::Changed { path }),
            Err(e) => return Err(io_err(&path, e)),
        };
        let meta = Meta::from_stat(&st).ok_or_else(|| MeasureError::UnknownType { path: path.clone() })?;
        match meta.kind {
            Kind::Dir => {
                if depth >= limits.max_depth {
                    return Err(MeasureError::LimitExceeded {
                        limit: Limit::MaxDepth,
                        value: depth as u64 + 1,
                        max: limits.max_depth as u64,
                        root: root.to_path_buf(),
                    });
                }
                let sub = match rfs::openat(
                    &top.fd,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::NOENT) => {
                        return Err(MeasureError::Changed { path })
                    }
                    Err(e) => return Err(io_err(&path, e)),
                };
                check_same(&sub, &meta, &path)?;
                if include_dirs {
                    visit(Entry { rel: rel.clone(), meta, target: None }, None)?;
                }
                let names = read_names(&sub, &path, root, &mut count, limits)?;
                stack.push(Frame { fd: sub, prefix: rel, names, next: 0, depth: depth + 1 });
            }
            Kind::Symlink => {
                let target = rfs::readlinkat(&top.fd, &name, std::mem::take(&mut link_buf)).map_err(|e| match e {
                    rustix::io::Errno::NOENT | rustix::io::Errno::INVAL => MeasureError::Changed { path: path.clone() },
                    e => io_err(&path, e),
                })?;
                let target = target.into_bytes();
                visit(Entry { rel, meta, target: Some(target) }, None)?;
            }
            Kind::File => {
                add_bytes(&mut bytes, meta.size, limits, root)?;
                let opener = Opener { dir: top.fd.as_fd(), name: &name, follow: false, meta, path };
                visit(Entry { rel, meta, target: None }, Some(&opener))?;
            }
            _ => visit(Entry { rel, meta, target: None }, None)?,
        }
    }
    Ok(())
}

fn add_bytes(total: &mut u64, size: u64, limits: &Limits, root: &Path) -> Result<(), MeasureError> {
    *total = total.saturating_add(size);
    if *total > limits.max_bytes {
        return Err(MeasureError::LimitExceeded {
            limit: Limit::MaxBytes,
            value: *total,
            max: limits.max_bytes,
            root: root.to_path_buf(),
        });
    }
    Ok(())
}

/// Lists a directory's names (without `.` and `..`), sorted by bytes, counting
/// them towards `max_files` as they are read so that a huge directory is
/// refused before it is held in memory.
fn read_names(
    fd: &OwnedFd,
    path: &Path,
    root: &Path,
    count: &mut u64,
    limits: &Limits,
) -> Result<Vec<CString>, MeasureError> {
    let mut dir = rfs::Dir::read_from(fd).map_err(|e| io_err(path, e))?;
    let mut names = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry.map_err(|e| io_err(path, e))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        *count += 1;
        if *count > limits.max_files {
            return Err(MeasureError::LimitExceeded {
                limit: Limit::MaxFiles,
                value: *count,
                max: limits.max_files,
                root: root.to_path_buf(),
            });
        }
        names.push(name.to_owned());
    }
    names.sort_unstable();
    Ok(names)
}
