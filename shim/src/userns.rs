//! Per-job user-namespace ID ranges.
//!
//! Every job under a profile with `user_namespace = "per_job"` gets its own
//! range of host IDs (container 0..size maps to host base..base+size), disjoint
//! from every other live job's, from a pool the configuration names. A range is
//! a *slot*: a file `slot-<n>` in the allocation directory, created with
//! `O_EXCL` (so concurrent `brig create`s cannot both take it) and holding the
//! owner: the state root and container id, and the pid and start time of the
//! `brig` process that took it. A slot is **stale** when its container does
//! not exist and the process that took it is gone (killed between allocation
//! and launch); `delete --force` of that id frees it, and so does any
//! allocation that meets it — so no range leaks. `delete` releases the slot.
//! Allocation starts at a random slot (see `allocate`).
//!
//! Jobs of one pod (a Kubernetes sandbox and its containers, a Podman pod,
//! `docker run --network container:X`) share the pod's user namespace, and so
//! its range: the first job owns the slot, the others are *members*, each a
//! file in `slot-<n>.members/`. The range stays taken while any of them lives:
//! when the owner goes first, a live member becomes the owner. Membership
//! changes happen under an exclusive lock on the allocation directory, so a
//! release cannot free a slot a member is joining.
//!
//! Writable bind directories (outputs) handed to a range's root are listed in
//! `slot-<n>.handed`, by host path, and handed back to root when the range is
//! freed: not before, since a pod's jobs share their volumes (a Kubernetes
//! `emptyDir`), and not by each job's own record, which goes with the job.
//!
//! The allocation directory is global (`/run/brig/userns`), not per `--root`:
//! Docker, Podman and containerd each use their own state root, and their jobs
//! must still get disjoint ranges. It lives on /run, like container state, so
//! a reboot frees everything at once.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where slots live.
pub const ALLOCATION_DIR: &str = "/run/brig/userns";

/// The pool of host IDs and the size of each job's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// First host ID of the pool.
    pub start: u32,
    /// Number of host IDs in the pool.
    pub count: u32,
    /// IDs per job (65536 gives every job a full 16-bit ID space).
    #[serde(default = "default_range")]
    pub range: u32,
}

fn default_range() -> u32 {
    65536
}

impl Default for Pool {
    /// 1024 ranges of 65536 IDs starting at 2^30: far above the IDs of host
    /// users and of the usual /etc/subuid entries (100000+).
    fn default() -> Self {
        Pool { start: 1 << 30, count: 1024 * 65536, range: 65536 }
    }
}

impl Pool {
    /// The lowest first ID a pool may have: below it are the host's own
    /// users (`nobody` is 65534), and 0 would map a job's root to host root.
    pub const MIN_START: u32 = 65536;

    /// Refuses a pool whose ranges would map a job's IDs onto the host's
    /// users, wrap past the largest ID, or hold no range at all.
    pub fn check(&self) -> Result<(), UsernsError> {
        let bad = |why| Err(UsernsError::BadPool { start: self.start, count: self.count, range: self.range, why });
        if self.start < Self::MIN_START {
            return bad("`start` is below 65536, the host's own user and group IDs (0 would be host root)");
        }
        if self.range == 0 || self.slots() == 0 {
            return bad("it holds no range of `range` IDs");
        }
        // The last ID handed out, start + slots x range - 1, must stay below
        // 4294967295 ((uid_t)-1, "no ID").
        if u64::from(self.start) + u64::from(self.slots()) * u64::from(self.range) > u64::from(u32::MAX) {
            return bad("it runs past the largest user ID, 4294967294");
        }
        Ok(())
    }

    /// Whether host IDs `first .. first + size` share an ID with the pool's
    /// ranges (those handed out now or later).
    pub fn overlaps(&self, first: u32, size: u32) -> bool {
        let end = u64::from(first) + u64::from(size);
        let pool_end = u64::from(self.start) + u64::from(self.slots()) * u64::from(self.range);
        size > 0 && u64::from(first) < pool_end && u64::from(self.start) < end
    }

    pub fn slots(&self) -> u32 {
        self.count.checked_div(self.range).unwrap_or(0)
    }

    /// Reads the pool from a subordinate-ID file line `user:start:count`
    /// (`/etc/subuid`), as `useradd` and `usermod --add-subuids` write it.
    pub fn from_subid_file(path: &Path, user: &str, range: u32) -> Result<Pool, UsernsError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| UsernsError::Io { path: path.to_path_buf(), source: e })?;
        for line in text.lines() {
            let mut parts = line.trim().split(':');
            if parts.next() == Some(user) {
                let start = parts.next().and_then(|s| s.parse().ok());
                let count = parts.next().and_then(|s| s.parse().ok());
                if let (Some(start), Some(count)) = (start, count) {
                    return Ok(Pool { start, count, range });
                }
                return Err(UsernsError::BadSubid { path: path.to_path_buf(), line: line.to_string() });
            }
        }
        Err(UsernsError::NoSubid { path: path.to_path_buf(), user: user.to_string() })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("`{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}`: no entry for user `{user}` (add one, e.g. `usermod --add-subuids 1073741824-1140850687 {user}`)", path.display())]
    NoSubid { path: PathBuf, user: String },
    #[error("`{}`: malformed line `{line}` (expected user:start:count)", path.display())]
    BadSubid { path: PathBuf, line: String },
    #[error("the user-namespace pool is exhausted: all {0} ranges are held by live containers")]
    Exhausted(u32),
    #[error("the pod's user-namespace range (slot {0}) is no longer held: its first job is gone")]
    PodGone(u32),
    #[error("the user-namespace pool {{ start = {start}, count = {count}, range = {range} }} is refused: {why}")]
    BadPool { start: u32, count: u32, range: u32, why: &'static str },
}

/// Who holds a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub root: PathBuf,
    pub id: String,
    pub pid: i32,
    /// `/proc/<pid>/stat` field 22, to tell a reused pid from the holder.
    pub start_time: u64,
}

/// An allocated range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub slot: u32,
    /// First host ID (container ID 0 maps to it).
    pub host_base: u32,
    pub size: u32,
}

impl Holder {
    /// This `brig` process, taking a slot for `root`/`id`.
    fn me(root: &Path, id: &str) -> Holder {
        let me = std::process::id() as i32;
        Holder {
            root: root.to_path_buf(),
            id: id.to_string(),
            pid: me,
            start_time: crate::state::process_start_ticks(me).unwrap_or(0),
        }
    }
}

/// Whether the slot's holder is gone for good.
fn is_stale(h: &Holder) -> bool {
    let container_exists = h.root.join(&h.id).join("state.json").exists();
    if container_exists {
        return false;
    }
    match crate::state::process_start_ticks(h.pid) {
        Some(t) => t != h.start_time,
        None => true,
    }
}

/// The slot allocator.
#[derive(Debug, Clone)]
pub struct Allocator {
    pub dir: PathBuf,
    pub pool: Pool,
}

impl Allocator {
    pub fn new(dir: impl Into<PathBuf>, pool: Pool) -> Allocator {
        Allocator { dir: dir.into(), pool }
    }

    fn slot_path(&self, slot: u32) -> PathBuf {
        self.dir.join(format!("slot-{slot}"))
    }

    /// Takes a free (or stale) slot for `root`/`id`.
    pub fn allocate(&self, root: &Path, id: &str) -> Result<Range, UsernsError> {
        let io = |path: &Path, source| UsernsError::Io { path: path.to_path_buf(), source };
        self.pool.check()?;
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let body = serde_json::to_vec(&Holder::me(root, id)).unwrap_or_default();
        // The scan starts at a random slot and wraps. From slot 0 every
        // allocation would walk past every live job's slot (a read and a
        // `stat` each), and a range would go to the next job the moment it
        // is freed: that job would own on disk whatever the previous one
        // left with those IDs on a shared volume. From a random start a freed
        // range is taken again by the next allocation with a chance of one in
        // the number of free ranges. Without randomness the scan starts at 0.
        let slots = self.pool.slots();
        let first = getrandom::u32().unwrap_or(0) % slots.max(1);
        for slot in (first..slots).chain(0..first) {
            let path = self.slot_path(slot);
            for _attempt in 0..2 {
                match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                    Ok(mut f) => {
                        f.write_all(&body).map_err(|e| io(&path, e))?;
                        return Ok(Range {
                            slot,
                            host_base: self.pool.start + slot * self.pool.range,
                            size: self.pool.range,
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        if !self.reclaim_if_stale(slot) {
                            break;
                        }
                    }
                    Err(e) => return Err(io(&path, e)),
                }
            }
        }
        Err(UsernsError::Exhausted(self.pool.slots()))
    }

    /// Removes a stale slot; true if the slot is now free. A slot whose owner
    /// is stale but has a live member passes to the member instead.
    fn reclaim_if_stale(&self, slot: u32) -> bool {
        match Self::holder_of(&self.slot_path(slot)) {
            // A slot being written right now reads as empty: not stale.
            None => false,
            Some(h) if is_stale(&h) => {
                let Ok(_lock) = self.lock() else { return false };
                // Re-read under the lock: a release may have handed it over.
                match Self::holder_of(&self.slot_path(slot)) {
                    Some(h) if is_stale(&h) => self.free_or_hand_over(slot),
                    _ => false,
                }
            }
            Some(_) => false,
        }
    }

    fn handed_path(&self, slot: u32) -> PathBuf {
        self.dir.join(format!("slot-{slot}.handed"))
    }

    /// Records that `dirs` are about to be handed to `slot`'s root, so that
    /// they are handed back when the range is freed, whichever of the pod's
    /// jobs goes last. Call before changing their owner.
    pub fn record_handed(&self, slot: u32, owner: u32, dirs: &[PathBuf]) -> Result<(), UsernsError> {
        use std::os::unix::ffi::OsStrExt;
        if dirs.is_empty() {
            return Ok(());
        }
        let io = |path: &Path, source| UsernsError::Io { path: path.to_path_buf(), source };
        let _lock = self.lock()?;
        let path = self.handed_path(slot);
        // A line per directory: the owner it was handed to, and the path
        // hex-encoded (any byte may be in a path). The owner is kept, not
        // computed from the pool: `delete` does not read the configuration.
        let mut body = Vec::new();
        for dir in dirs {
            body.extend_from_slice(format!("{owner} ").as_bytes());
            body.extend_from_slice(hex::encode(dir.as_os_str().as_bytes()).as_bytes());
            body.push(b'\n');
        }
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(|e| io(&path, e))?;
        file.write_all(&body).and_then(|()| file.sync_data()).map_err(|e| io(&path, e))
    }

    /// Hands the directories recorded for `slot` back to root. Only those
    /// still owned by the range's first ID and still directories (not a link
    /// put in the place of one) change, and only their owner, never the group:
    /// what the jobs wrote inside stays theirs. Call with the lock held, once
    /// no job holds the range.
    fn return_handed(&self, slot: u32) {
        use std::os::unix::ffi::OsStringExt;
        use std::os::unix::fs::MetadataExt;
        let path = self.handed_path(slot);
        let Ok(text) = std::fs::read_to_string(&path) else { return };
        let dirs: std::collections::BTreeSet<(u64, PathBuf)> = text
            .lines()
            .filter_map(|l| {
                let (owner, path) = l.split_once(' ')?;
                Some((owner.parse().ok()?, PathBuf::from(std::ffi::OsString::from_vec(hex::decode(path).ok()?))))
            })
            .collect();
        for (owner, dir) in dirs {
            match std::fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() && u64::from(meta.uid()) == owner => {
                    if let Err(e) = std::os::unix::fs::lchown(&dir, Some(0), None) {
                        tracing::warn!(slot, dir = %dir.display(), "handing the output directory back to root: {e}");
                    }
                }
                _ => {}
            }
        }
        let _ = std::fs::remove_file(&path);
    }

    fn members_dir(&self, slot: u32) -> PathBuf {
        self.dir.join(format!("slot-{slot}.members"))
    }

    /// A member's file: a digest of its root and id, so any id is a safe name.
    fn member_path(&self, slot: u32, root: &Path, id: &str) -> PathBuf {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(root.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(id.as_bytes());
        self.members_dir(slot).join(hex::encode(&h.finalize()[..16]))
    }

    /// Holds the allocation directory's lock until dropped.
    fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>, UsernsError> {
        let io = |path: &Path, source| UsernsError::Io { path: path.to_path_buf(), source };
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let path = self.dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| io(&path, e.into()))
    }

    fn holder_of(path: &Path) -> Option<Holder> {
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }

    fn live_members(&self, slot: u32) -> Vec<(PathBuf, Holder)> {
        let Ok(entries) = std::fs::read_dir(self.members_dir(slot)) else { return vec![] };
        entries
            .flatten()
            .filter_map(|e| Self::holder_of(&e.path()).map(|h| (e.path(), h)))
            .filter(|(_, h)| !is_stale(h))
            .collect()
    }

    /// Joins `root`/`id` to the pod whose range is `slot`, owned by `owner`
    /// (a job under `root`). Refused when the slot is no longer the pod's.
    pub fn join(&self, slot: u32, root: &Path, id: &str, owner: &str) -> Result<(), UsernsError> {
        let io = |path: &Path, source| UsernsError::Io { path: path.to_path_buf(), source };
        let _lock = self.lock()?;
        let held_by_pod = |h: &Holder| h.root == root && !is_stale(h);
        let owner_holds = Self::holder_of(&self.slot_path(slot)).is_some_and(|h| held_by_pod(&h) && h.id == owner);
        let a_member_holds = self.live_members(slot).iter().any(|(_, h)| h.root == root && h.id == owner);
        if !owner_holds && !a_member_holds {
            return Err(UsernsError::PodGone(slot));
        }
        let dir = self.members_dir(slot);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let path = self.member_path(slot, root, id);
        let body = serde_json::to_vec(&Holder::me(root, id)).unwrap_or_default();
        std::fs::write(&path, body).map_err(|e| io(&path, e))
    }

    /// Releases what `root`/`id` holds of `slot`: its membership, or its
    /// ownership (handed to a live member if the pod has one).
    pub fn release(&self, slot: u32, root: &Path, id: &str) {
        let Ok(_lock) = self.lock() else {
            tracing::warn!(slot, id, "cannot lock the user-namespace allocation directory; the range is kept");
            return;
        };
        let member = self.member_path(slot, root, id);
        if member.exists() {
            let _ = std::fs::remove_file(member);
            return;
        }
        let path = self.slot_path(slot);
        if Self::holder_of(&path).is_some_and(|h| h.root == root && h.id == id) {
            self.free_or_hand_over(slot);
        }
    }

    /// Releases whatever `root`/`id` still holds without a record of it: a
    /// create killed between allocation and launch, found by `delete
    /// --force` of its id. Only a stale hold goes (its container does not
    /// exist and the brig that took it is gone), never a live create's.
    /// Without this such a range would wait for an allocation to meet it.
    pub fn release_stale_of(&self, root: &Path, id: &str) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let slots: Vec<u32> =
            entries.flatten().filter_map(|e| e.file_name().to_str()?.strip_prefix("slot-")?.parse().ok()).collect();
        if slots.is_empty() {
            return;
        }
        let Ok(_lock) = self.lock() else {
            tracing::warn!(id, "cannot lock the user-namespace allocation directory; a left-over range is kept");
            return;
        };
        let ours = |h: &Holder| h.root == root && h.id == id && is_stale(h);
        for slot in slots {
            let member = self.member_path(slot, root, id);
            if Self::holder_of(&member).is_some_and(|h| ours(&h)) {
                let _ = std::fs::remove_file(member);
            }
            if Self::holder_of(&self.slot_path(slot)).is_some_and(|h| ours(&h)) {
                self.free_or_hand_over(slot);
            }
        }
    }

    /// The owner is gone: a live member takes the slot, or it is freed. Call
    /// with the lock held.
    fn free_or_hand_over(&self, slot: u32) -> bool {
        let path = self.slot_path(slot);
        match self.live_members(slot).into_iter().next() {
            Some((member_file, heir)) => {
                let tmp = self.dir.join(format!(".heir-{slot}-{}", std::process::id()));
                let body = serde_json::to_vec(&heir).unwrap_or_default();
                if std::fs::write(&tmp, body).is_ok() && std::fs::rename(&tmp, &path).is_ok() {
                    let _ = std::fs::remove_file(member_file);
                }
                false
            }
            None => {
                let _ = std::fs::remove_dir_all(self.members_dir(slot));
                self.return_handed(slot);
                // Rename first: of two reclaimers only one wins the rename.
                let tomb = self.dir.join(format!(".stale-{slot}-{}", std::process::id()));
                if std::fs::rename(&path, &tomb).is_ok() {
                    let _ = std::fs::remove_file(&tomb);
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(dir: &Path) -> Allocator {
        Allocator::new(dir, Pool { start: 1_000_000, count: 65536 * 4, range: 65536 })
    }

    #[test]
    fn disjoint_ranges_until_exhausted() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let a = alloc(&d.path().join("slots"));
        // Live holders: make their containers exist.
        let mut ranges = vec![];
        for i in 0..4 {
            let id = format!("c{i}");
            std::fs::create_dir_all(root.join(&id)).unwrap();
            std::fs::write(root.join(&id).join("state.json"), "{}").unwrap();
            ranges.push(a.allocate(&root, &id).unwrap());
        }
        let mut bases: Vec<u32> = ranges.iter().map(|r| r.host_base).collect();
        bases.sort();
        assert_eq!(bases, vec![1_000_000, 1_065_536, 1_131_072, 1_196_608]);
        assert!(matches!(a.allocate(&root, "c4"), Err(UsernsError::Exhausted(4))));
        a.release(ranges[1].slot, &root, "c1");
        assert_eq!(a.allocate(&root, "c5").unwrap().slot, ranges[1].slot);
    }

    #[test]
    fn a_freed_range_is_not_handed_straight_to_the_next_job() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let a = Allocator::new(d.path().join("slots"), Pool { start: 1_000_000, count: 65536 * 256, range: 65536 });
        std::fs::create_dir_all(root.join("c")).unwrap();
        std::fs::write(root.join("c").join("state.json"), "{}").unwrap();
        // Allocate and free, 40 times over: with the scan from slot 0 every
        // job got slot 0, the range its predecessor had just freed.
        let mut taken = vec![];
        for _ in 0..40 {
            let range = a.allocate(&root, "c").unwrap();
            assert!(range.slot < 256 && range.host_base == 1_000_000 + range.slot * 65536);
            a.release(range.slot, &root, "c");
            taken.push(range.slot);
        }
        let straight_reuse = taken.windows(2).filter(|w| w[0] == w[1]).count();
        // One in 256 per allocation: more than 3 of 39 is as good as never.
        assert!(straight_reuse <= 3, "a freed range went straight to the next job: {taken:?}");
    }

    #[test]
    fn stale_slots_are_reclaimed_live_ones_are_not() {
        let d = tempfile::tempdir().unwrap();
        let a = alloc(&d.path().join("slots"));
        std::fs::create_dir_all(&a.dir).unwrap();
        // A holder that died before its container existed.
        let dead = Holder { root: d.path().join("root"), id: "gone".into(), pid: i32::MAX - 1, start_time: 1 };
        std::fs::write(a.slot_path(0), serde_json::to_vec(&dead).unwrap()).unwrap();
        // A live holder (this test process) whose container does not exist yet.
        let me = std::process::id() as i32;
        let live = Holder {
            root: d.path().join("root"),
            id: "starting".into(),
            pid: me,
            start_time: crate::state::process_start_ticks(me).unwrap(),
        };
        for slot in 1..4 {
            std::fs::write(a.slot_path(slot), serde_json::to_vec(&live).unwrap()).unwrap();
        }
        let r = a.allocate(&d.path().join("root"), "new").unwrap();
        assert_eq!(r.slot, 0, "the dead holder's slot is reclaimed");
        let r = a.allocate(&d.path().join("root"), "new2");
        assert!(matches!(r, Err(UsernsError::Exhausted(4))), "the live holders keep their slots: {r:?}");
    }

    #[test]
    fn a_hold_left_by_a_dead_create_is_released_by_its_id_only() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let a = alloc(&d.path().join("slots"));
        std::fs::create_dir_all(&a.dir).unwrap();
        let dead = |id: &str| Holder { root: root.clone(), id: id.into(), pid: i32::MAX - 1, start_time: 1 };
        std::fs::write(a.slot_path(2), serde_json::to_vec(&dead("crashed")).unwrap()).unwrap();
        std::fs::write(a.slot_path(3), serde_json::to_vec(&dead("other")).unwrap()).unwrap();
        // A live create of the same id (this process) keeps its slot.
        let me = std::process::id() as i32;
        let live = Holder {
            root: root.clone(),
            id: "crashed".into(),
            pid: me,
            start_time: crate::state::process_start_ticks(me).unwrap(),
        };
        std::fs::write(a.slot_path(1), serde_json::to_vec(&live).unwrap()).unwrap();
        // The same id under another state root is another container.
        let elsewhere = Holder { root: d.path().join("elsewhere"), ..dead("crashed") };
        std::fs::write(a.slot_path(0), serde_json::to_vec(&elsewhere).unwrap()).unwrap();
        a.release_stale_of(&root, "crashed");
        assert!(!a.slot_path(2).exists(), "the dead create's range is released");
        for slot in [0, 1, 3] {
            assert!(a.slot_path(slot).exists(), "slot {slot} is not that create's");
        }
    }

    #[test]
    fn release_only_frees_the_owner() {
        let d = tempfile::tempdir().unwrap();
        let a = alloc(&d.path().join("slots"));
        let r = a.allocate(d.path(), "x").unwrap();
        a.release(r.slot, d.path(), "other");
        assert!(a.slot_path(r.slot).exists());
        a.release(r.slot, d.path(), "x");
        assert!(!a.slot_path(r.slot).exists());
    }

    /// A pod's range outlives its first job while another job of the pod
    /// lives, and is freed when the last one goes.
    #[test]
    fn pod_members_keep_the_range() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let a = alloc(&d.path().join("slots"));
        for id in ["sandbox", "app", "sidecar"] {
            std::fs::create_dir_all(root.join(id)).unwrap();
            std::fs::write(root.join(id).join("state.json"), "{}").unwrap();
        }
        let r = a.allocate(&root, "sandbox").unwrap();
        a.join(r.slot, &root, "app", "sandbox").unwrap();
        a.join(r.slot, &root, "sidecar", "sandbox").unwrap();
        // A member leaving frees nothing.
        a.release(r.slot, &root, "sidecar");
        std::fs::remove_dir_all(root.join("sidecar")).unwrap();
        assert!(a.slot_path(r.slot).exists());
        // The owner leaving first hands the range to the live member.
        a.release(r.slot, &root, "sandbox");
        std::fs::remove_dir_all(root.join("sandbox")).unwrap();
        let holder = Allocator::holder_of(&a.slot_path(r.slot)).unwrap();
        assert_eq!(holder.id, "app");
        assert_ne!(a.allocate(&root, "other").unwrap().slot, r.slot, "a live pod's range is not reallocated");
        a.release(r.slot, &root, "app");
        assert!(!a.slot_path(r.slot).exists());
        assert!(!a.members_dir(r.slot).exists());
    }

    #[test]
    fn joining_a_gone_pod_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let a = alloc(&d.path().join("slots"));
        std::fs::create_dir_all(root.join("sandbox")).unwrap();
        std::fs::write(root.join("sandbox").join("state.json"), "{}").unwrap();
        let r = a.allocate(&root, "sandbox").unwrap();
        assert!(matches!(a.join(r.slot, &root, "app", "someone-else"), Err(UsernsError::PodGone(_))));
        assert!(matches!(a.join(r.slot, &d.path().join("other-root"), "app", "sandbox"), Err(UsernsError::PodGone(_))));
        a.release(r.slot, &root, "sandbox");
        assert!(matches!(a.join(r.slot, &root, "app", "sandbox"), Err(UsernsError::PodGone(_))));
    }

    /// A stale owner with a live member: reclaiming hands the slot over
    /// instead of freeing it.
    #[test]
    fn stale_owner_with_live_member_is_not_reclaimed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let a = alloc(&d.path().join("slots"));
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(root.join("app").join("state.json"), "{}").unwrap();
        std::fs::create_dir_all(root.join("sandbox")).unwrap();
        std::fs::write(root.join("sandbox").join("state.json"), "{}").unwrap();
        let r = a.allocate(&root, "sandbox").unwrap();
        a.join(r.slot, &root, "app", "sandbox").unwrap();
        // The sandbox vanished without `delete` (and its brig is gone).
        std::fs::remove_dir_all(root.join("sandbox")).unwrap();
        let dead = Holder { root: root.clone(), id: "sandbox".into(), pid: i32::MAX - 1, start_time: 1 };
        std::fs::write(a.slot_path(r.slot), serde_json::to_vec(&dead).unwrap()).unwrap();
        // The three other slots, then a fourth allocation that meets the
        // stale owner's slot (the scan starts anywhere): handed to the
        // member, not freed.
        for i in 0..3 {
            let next = a.allocate(&root, &format!("new{i}")).unwrap();
            assert_ne!(next.slot, r.slot);
        }
        assert!(matches!(a.allocate(&root, "new3"), Err(UsernsError::Exhausted(4))));
        assert_eq!(Allocator::holder_of(&a.slot_path(r.slot)).unwrap().id, "app");
    }

    /// A pool that would map a job's IDs onto the host's users (root
    /// included), wrap past the largest ID, or hold no range is refused by
    /// the configuration and by the allocator, naming what is wrong.
    #[test]
    fn pools_that_would_map_host_users_or_wrap_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (pool, why) in [
            (Pool { start: 0, count: 65536 * 4, range: 65536 }, "below 65536"),
            (Pool { start: 1000, count: 65536 * 4, range: 65536 }, "below 65536"),
            (Pool { start: 4_294_967_000, count: 131_072, range: 65536 }, "largest user ID"),
            (Pool { start: u32::MAX - 65535, count: 65536, range: 65536 }, "largest user ID"),
            (Pool { start: 1 << 30, count: 100, range: 65536 }, "no range"),
            (Pool { start: 1 << 30, count: 65536, range: 0 }, "no range"),
        ] {
            let e = pool.check().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(&pool.start.to_string()), "{pool:?}: {e}");
            let e = Allocator::new(dir.path(), pool).allocate(Path::new("/r"), "x").unwrap_err().to_string();
            assert!(e.contains(why), "{pool:?}: {e}");
            let section = crate::config::UserNamespaceSection { pool: Some(pool), ..Default::default() };
            assert!(section.pool().is_err(), "{pool:?}");
        }
        Pool::default().check().unwrap();
        Pool { start: 65536, count: 65536, range: 65536 }.check().unwrap();
        Pool { start: u32::MAX - 65536, count: 65536, range: 65536 }.check().unwrap();
    }

    #[test]
    fn subid_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("subuid");
        std::fs::write(&f, "alice:100000:65536\nbrig:1073741824:67108864\n").unwrap();
        let p = Pool::from_subid_file(&f, "brig", 65536).unwrap();
        assert_eq!((p.start, p.count, p.slots()), (1073741824, 67108864, 1024));
        assert!(matches!(Pool::from_subid_file(&f, "bob", 65536), Err(UsernsError::NoSubid { .. })));
    }

    #[test]
    fn concurrent_allocations_are_disjoint() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("slots");
        let root = d.path().join("root");
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let dir = dir.clone();
                let root = root.clone();
                std::thread::spawn(move || {
                    Allocator::new(dir, Pool { start: 1_000_000, count: 65536 * 64, range: 65536 })
                        .allocate(&root, &format!("c{i}"))
                        .unwrap()
                        .slot
                })
            })
            .collect();
        let mut slots: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        slots.sort();
        slots.dedup();
        assert_eq!(slots.len(), 16);
    }
}
