//! Where container state lives, and brig's per-container files.
//!
//! `ROOT/<id>/` is libcontainer's directory (its `state.json` and saved
//! config) and holds brig's files next to them: `brig.json` (the run record),
//! `brig-plan` (the encoded job plan, reused for `exec`) and `brig-status`
//! (what the in-container supervisor reports). While `create` runs, a
//! [`Staging`] directory holds the effective config.json libcontainer reads
//! and the status file whose descriptor the supervisor inherits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// runc's default is /run/runc; brig's is /run/brig (rootless:
/// `$XDG_RUNTIME_DIR/brig`, see `rootless::default_state_root`).
pub const DEFAULT_ROOT: &str = "/run/brig";
pub const RECORD_FILE: &str = "brig.json";
pub const PLAN_FILE: &str = "brig-plan";
pub const STATUS_FILE: &str = "brig-status";
/// The effective (hardened, token-free) spec. libcontainer's state points its
/// `bundle` at the container directory, so that everything it re-reads later
/// (`exec` loads the init's spec from the bundle) sees what really runs, not
/// the caller's config.json; `brig state` reports the caller's bundle from the
/// run record.
pub const SPEC_FILE: &str = "config.json";
const STAGING: &str = ".staging";
/// Under `STAGING`: emptied container directories kept for reuse.
const FREE: &str = "free";

/// Where a `create` stages libcontainer's config.json and the supervisor's
/// status file: one of the directories `ROOT/.staging/slots/N`, which creates
/// reuse one after another (each holds a `flock` on its directory while it
/// uses it), plus the id's create lock ([`IdLock`]: a second create of the
/// same id fails while the first runs, a delete waits). A create makes and
/// removes no directory: on a state root on disk, removing a directory frees
/// its block, which ext4 mounted `-o discard` (this host's `/run`) discards
/// synchronously, 0.3-0.7 ms. Dropped: the staged files, then the id's
/// lock, then the slot's `flock`.
#[derive(Debug)]
pub struct Staging {
    pub dir: PathBuf,
    slot: Option<nix::fcntl::Flock<std::fs::File>>,
    /// The id's create lock ([`StateRoot::lock_id`]), held until dropped.
    id_lock: Option<IdLock>,
}

/// A container id's create lock: a `flock` on `.staging/<id>.lock`, held by
/// a `create` from its staging to the end of its build, and by `delete`
/// while it removes the container, so that neither removes what the other
/// is making. A create that died holds nothing (the kernel let go of its
/// lock); its file is taken over.
#[derive(Debug)]
pub struct IdLock {
    path: PathBuf,
    held: Option<nix::fcntl::Flock<std::fs::File>>,
}

impl Drop for IdLock {
    fn drop(&mut self) {
        // The file first, then the lock: whoever opened the file meanwhile
        // finds it is no longer the one at the path, and makes another.
        // Only if the file at the path is still the one held: nothing else
        // removes it, but never another holder's.
        use std::os::unix::fs::MetadataExt;
        if let Some(held) = &self.held {
            let same = match (held.metadata(), std::fs::symlink_metadata(&self.path)) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                _ => false,
            };
            if same {
                let _ = std::fs::remove_file(&self.path);
            }
        }
        drop(self.held.take());
    }
}

impl Staging {
    fn clear(&self) {
        for name in [SPEC_FILE, STATUS_FILE] {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.slot.is_some() {
            self.clear();
        }
        // (The lock file goes with the id lock, which checks it is its own.)
        drop(self.id_lock.take());
        drop(self.slot.take());
    }
}

/// An id as an error shows it: an invalid one may hold anything (an escape
/// sequence for the caller's terminal, a megabyte): escaped, at most 64
/// characters.
fn shown_id(id: &str) -> String {
    brig_files::printable_cut(id, 64)
}

/// Why a container id is unusable.
#[derive(Debug, thiserror::Error)]
pub enum IdError {
    #[error("invalid container id `{}`: use letters, digits and `_ + - .`, not `.` or `..`, at most {MAX_ID_LEN} characters", shown_id(.0))]
    Invalid(String),
    #[error("container id `{}` is too long for a new container: at most {MAX_ID_LEN} characters", shown_id(.0))]
    TooLong(String),
    #[error("container id `{0}` is reserved: brig keeps its own files under that name in the state root (ids may not start with `.` or be {RESERVED})", RESERVED = RESERVED_IDS.join(", "))]
    Reserved(String),
}

/// Names of brig's own entries in the default state root, `/run/brig`:
/// the user-namespace slot registry (`crate::userns::ALLOCATION_DIR`), the
/// namespace registry with its lock (`crate::nsowner::REGISTRY_DIR`) and the
/// cgroup registry (`crate::cgclaim::REGISTRY_DIR`). A
/// container of that name would be the registry, and its `delete` would
/// empty it.
pub const RESERVED_IDS: [&str; 4] = ["userns", "namespaces", "namespaces.lock", "cgroups"];

/// The longest id: names brig derives from it (`<12 hex>-<id>` for the
/// idmapped rootfs, `<id>.lock`, `<id>.binds`, ...) must fit in a file name
/// (255 bytes). runc has no limit of its own, and fails at its state
/// directory past 255; containerd's and Docker's ids are 64 characters.
pub const MAX_ID_LEN: usize = 200;

/// Checks the id of a container to create: [`validate_id`], and at most
/// [`MAX_ID_LEN`] characters. (Existing containers are managed whatever their
/// length: one made by an earlier brig with a longer id can still be deleted.)
pub fn validate_new_id(id: &str) -> Result<(), IdError> {
    validate_id(id)?;
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(id.to_string()));
    }
    Ok(())
}

/// Checks an id the way runc does (`^[\w+-\.]+$`), minus `.` and `..`.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    // Names brig itself keeps in the state root are not container ids: a
    // container `userns` (or `.staging`) would be brig's user-namespace slot
    // registry (its staging area), and `delete --force` would empty it.
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if !ok {
        return Err(IdError::Invalid(id.to_string()));
    }
    if id.starts_with('.') || RESERVED_IDS.contains(&id) {
        return Err(IdError::Reserved(id.to_string()));
    }
    Ok(())
}

/// A process's start time: field 22 of `/proc/<pid>/stat` (clock ticks
/// since boot), read after the command name, which may hold spaces and `)`.
pub fn process_start_ticks(pid: i32) -> Option<u64> {
    stat_field(pid, 19)
}

/// The parent of process `pid` (`/proc/<pid>/stat`), if it still exists.
pub fn parent_pid(pid: i32) -> Option<i32> {
    stat_field(pid, 1)
}

/// Field `n` after the command name (`state` is 0) of `/proc/<pid>/stat`;
/// the name, in parentheses, may hold spaces and parentheses itself.
fn stat_field<T: std::str::FromStr>(pid: i32, n: usize) -> Option<T> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(n)?.parse().ok()
}

/// The default state root: /run/brig, or `$XDG_RUNTIME_DIR/brig` for a
/// rootless caller (as runc uses `$XDG_RUNTIME_DIR/runc`).
pub fn default_root() -> PathBuf {
    let caller = crate::rootless::Caller::detect();
    if caller.is_rootless() {
        crate::rootless::default_state_root(&caller)
    } else {
        PathBuf::from(DEFAULT_ROOT)
    }
}

/// The state root (`--root`).
#[derive(Debug, Clone)]
pub struct StateRoot {
    pub path: PathBuf,
}

impl StateRoot {
    pub fn new(flag: Option<&Path>) -> StateRoot {
        StateRoot { path: flag.map(Path::to_path_buf).unwrap_or_else(default_root) }
    }

    /// Creates the root (mode 0700) if needed and makes the path absolute.
    /// An existing root must be this user's own directory, writable by no
    /// one else: another user who made it first (a `--root` in a shared
    /// directory) could plant state whose pids brig would signal, or links
    /// whose targets it would empty.
    pub fn ensure(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.path)?;
        self.path = std::fs::canonicalize(&self.path)?;
        let meta = std::fs::symlink_metadata(&self.path)?;
        let euid = nix::unistd::geteuid().as_raw();
        if !meta.is_dir() || meta.uid() != euid || meta.mode() & 0o022 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "the state root `{}` must be a directory owned by uid {euid} and writable by no one else (owner {}, mode {:o})",
                    self.path.display(),
                    meta.uid(),
                    meta.mode() & 0o7777
                ),
            ));
        }
        Ok(())
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.path.join(id)
    }

    /// Where brig before 0.1 staged a create of `id` (removed by `delete --force`).
    pub fn legacy_staging_dir(&self, id: &str) -> PathBuf {
        self.path.join(STAGING).join(id)
    }

    /// The lock file of a create of `id` in progress (see [`Staging`]).
    pub fn staging_lock(&self, id: &str) -> PathBuf {
        self.path.join(STAGING).join(format!("{id}.lock"))
    }

    /// Empties a deleted container's directory and keeps it, under
    /// `ROOT/.staging/free/`, for a later create (see
    /// [`StateRoot::reuse_container_dir`]): removing it would free its block,
    /// which on a state root on disk (ext4 `-o discard`, this host's `/run`)
    /// is discarded synchronously, 0.3-0.5 ms. Removed after all if it cannot
    /// be moved.
    pub fn retire_container_dir(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        // Gone already (two `delete --force` at once, as runc, succeed): a
        // missing directory or entry is what this wants.
        let gone = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                gone(std::fs::remove_dir_all(entry.path()))?;
            } else {
                gone(std::fs::remove_file(entry.path()))?;
            }
        }
        let free = self.path.join(STAGING).join(FREE);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let moved = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&free)
            .and_then(|()| std::fs::rename(dir, free.join(format!("{}-{nanos}", std::process::id()))));
        match moved {
            Ok(()) => Ok(()),
            Err(_) => gone(std::fs::remove_dir(dir)),
        }
    }

    /// Moves a directory [`StateRoot::retire_container_dir`] kept to the
    /// place of container `id`, which libcontainer (patched, see
    /// third_party/README.md) then uses as it is, being empty. False when none
    /// is left (libcontainer makes one). The caller holds `id`'s staging lock
    /// and has checked that `id` has no directory.
    pub fn reuse_container_dir(&self, id: &str) -> bool {
        let Ok(entries) = std::fs::read_dir(self.path.join(STAGING).join(FREE)) else { return false };
        // Another create may take the same one first: try a few.
        entries.flatten().take(4).any(|e| std::fs::rename(e.path(), self.container_dir(id)).is_ok())
    }

    /// Claims a staging directory for a create of `id`; `Ok(None)` when
    /// another create of `id` is in progress (or was killed: `delete --force`
    /// clears it).
    pub fn stage(&self, id: &str) -> std::io::Result<Option<Staging>> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let slots = self.path.join(STAGING).join("slots");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&slots)?;
        let Some(id_lock) = self.lock_id(id)? else { return Ok(None) };
        let mut staging = Staging { dir: PathBuf::new(), slot: None, id_lock: Some(id_lock) };
        let open = |dir: &Path| std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(dir);
        for n in 0u32.. {
            let dir = slots.join(n.to_string());
            // Slots outlive creates: made only by the first create to need one.
            let handle = match open(&dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                    open(&dir)?
                }
                handle => handle?,
            };
            match nix::fcntl::Flock::lock(handle, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(held) => {
                    staging.dir = dir;
                    staging.slot = Some(held);
                    break;
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => continue,
                Err((_, e)) => return Err(e.into()),
            }
        }
        // What a create killed while holding this slot left behind.
        staging.clear();
        Ok(Some(staging))
    }

    /// Takes `id`'s create lock ([`IdLock`]) if no other process holds it
    /// (`None`: a create or delete of that id is under way).
    pub fn lock_id(&self, id: &str) -> std::io::Result<Option<IdLock>> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
        let path = self.staging_lock(id);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
        }
        loop {
            let file = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(&path)?;
            let held = match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(held) => held,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
                Err((_, e)) => return Err(e.into()),
            };
            // Removed (and maybe made again) between the open and the lock:
            // only the file at the path counts.
            let locked = held.metadata()?;
            match std::fs::symlink_metadata(&path) {
                Ok(now) if now.dev() == locked.dev() && now.ino() == locked.ino() => {
                    return Ok(Some(IdLock { path, held: Some(held) }))
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Ids of the containers under this root (directories holding a state.json).
    pub fn container_ids(&self) -> std::io::Result<Vec<String>> {
        let mut ids = Vec::new();
        let entries = match std::fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(e),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !entry.path().join("state.json").is_file() {
                continue;
            }
            ids.push(name);
        }
        ids.sort();
        Ok(ids)
    }
}

/// Writes `bytes` to `path` atomically (a temporary file in the same
/// directory, then rename), so readers never see a partial file. State under
/// the state root is volatile by nature (runc's is a tmpfs): it is not
/// fsync'd, which on a disk-backed /run costs milliseconds per file.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_file_atomic(path, bytes, mode, false)
}

/// Writes a `--pid-file` as runc does: a new file renamed into place, so a
/// link at the path is replaced, not followed, and no reader sees it half
/// written.
pub fn write_pid_file(path: &Path, pid: i32) -> std::io::Result<()> {
    write_atomic(path, pid.to_string().as_bytes(), 0o644)
}

/// Like `write_atomic`, and durable: fsync of the file before the rename and
/// of the directory after it.
pub fn write_durable(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    write_file_atomic(path, bytes, mode, true)
}

fn write_file_atomic(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The profile a container runs under.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProfileRef {
    pub name: String,
    pub digest: String,
    pub origin: String,
}

/// How the launch was authorized.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthRecord {
    /// `required` or `off`.
    pub mode: String,
    /// `allow` (or `not-authorized` when auth is off).
    pub decision: String,
    #[serde(default)]
    pub policy_ids: Vec<String>,
    /// Token identity (never the token).
    #[serde(default)]
    pub identity: BTreeMap<String, String>,
    /// The launch token's `jti` (for `exec` with the same token).
    #[serde(default)]
    pub jti: Option<String>,
    /// What was authorized (the base of `exec` decisions).
    #[serde(default)]
    pub context: Option<brig_policy::LaunchContext>,
    /// Where the launch decision is in the audit log (for the attestation).
    #[serde(default)]
    pub audit_record: Option<brig_policy::AuditAnchor>,
}

/// Everything brig decided at `create`, kept for `exec`, `delete` and the
/// attestation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub profile: ProfileRef,
    pub auth: AuthRecord,
    pub tightened: Vec<brig_profiles::Tightening>,
    pub plan: brig_profiles::JobPlan,
    /// The cgroup path libcontainer used.
    pub cgroup_path: PathBuf,
    /// Whether the spec carried its own seccomp profile (kept and stacked).
    pub spec_seccomp: bool,
    /// Namespaces the job runs in (types).
    pub namespaces: Vec<String>,
    /// The image digest the orchestrator declared, if any.
    #[serde(default)]
    pub image_digest: Option<String>,
    /// The profile's cgroup ceiling, which `update` may not exceed.
    #[serde(default)]
    pub cgroup_ceiling: brig_profiles::model::CgroupSection,
    /// The profile's capability ceiling (for `exec`).
    #[serde(default)]
    pub cap_ceiling: Vec<String>,

    /// Whether the profile allows devices beyond the standard set (for
    /// `update`, which rewrites the device rules on cgroup v1).
    #[serde(default)]
    pub devices_allowed: bool,
    /// The job's own user namespace, if brig made one.
    #[serde(default)]
    pub userns: Option<UsernsRecord>,
    /// The init's start time (`/proc/<pid>/stat` field 22, clock ticks since
    /// boot), so that a recycled pid is never taken for the container's.
    #[serde(default)]
    pub init_start: Option<u64>,
    /// What `create` measured, for the attestation `delete` writes.
    #[serde(default)]
    pub measurements: Option<crate::attestation::Measurements>,
    /// What became of the profile's `process.memfd_noexec` (`enforced`, or
    /// why not), when it asks for it.
    #[serde(default)]
    pub memfd_noexec: Option<String>,
}

/// A per-job user namespace: the range and the idmapped rootfs mount.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UsernsRecord {
    pub slot: u32,
    pub host_base: u32,
    pub size: u32,
    /// The idmapped bind of the rootfs, unmounted at `delete`.
    pub rootfs_mount: PathBuf,
    /// Writable bind-mount directories handed to the job's root, by host
    /// path (handed back when the range is freed: `Allocator::record_handed`).
    #[serde(default)]
    pub chowned: Vec<PathBuf>,
    /// Where bind sources were staged for the job's root to reach.
    #[serde(default)]
    pub binds: Option<PathBuf>,
    /// Idmapped overlay layers (when the rootfs is a client's overlay).
    #[serde(default)]
    pub layers: Option<PathBuf>,
    /// The client's network namespace was replaced by a private one (the
    /// profile allows no network).
    #[serde(default)]
    pub private_netns: bool,
    /// The client's network namespace that the private one replaced: a job
    /// of the same pod asking for it gets this job's private one.
    #[serde(default)]
    pub client_netns: Option<PathBuf>,
    /// Set when the job joined the user namespace (and range) of another job
    /// of its pod.
    #[serde(default)]
    pub pod: Option<crate::pod::PodMembership>,
}

impl RunRecord {
    pub fn load(dir: &Path) -> std::io::Result<RunRecord> {
        let bytes = std::fs::read(dir.join(RECORD_FILE))?;
        serde_json::from_slice(&bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        write_atomic(&dir.join(RECORD_FILE), &bytes, 0o600)
    }
}

/// What the supervisor reported through the status file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SupervisorStatus {
    /// The job's pid (in the container's pid namespace).
    pub pid: Option<i64>,
    pub started_ns: Option<u64>,
    pub landlock_abi: Option<u64>,
    /// `off`, `none`, `partial` or `full`.
    pub landlock: Option<String>,
    pub seccomp_filters: Option<u64>,
    /// Where starting the job failed, if it did.
    pub error_stage: Option<String>,
    pub error_errno: Option<i64>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub timed_out: bool,
    pub ended_ns: Option<u64>,
    /// The supervisor finished its report.
    pub done: bool,
}

impl SupervisorStatus {
    /// Parses `key=value` lines; unknown keys and malformed lines are ignored
    /// (the file is written by brig's own supervisor, but read defensively).
    pub fn parse(text: &str) -> SupervisorStatus {
        let mut s = SupervisorStatus::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else { continue };
            let int = || v.trim().parse::<i64>().ok();
            let uint = || v.trim().parse::<u64>().ok();
            match k {
                "pid" => s.pid = int(),
                "started_ns" => s.started_ns = uint(),
                "landlock_abi" => s.landlock_abi = uint(),
                "landlock" => s.landlock = Some(v.trim().to_string()),
                "seccomp_filters" => s.seccomp_filters = uint(),
                "error_stage" => s.error_stage = Some(v.trim().to_string()),
                "error_errno" => s.error_errno = int(),
                "exit_code" => s.exit_code = int(),
                "signal" => s.signal = int(),
                "timed_out" => s.timed_out = v.trim() == "1",
                "ended_ns" => s.ended_ns = uint(),
                "done" => s.done = v.trim() == "1",
                _ => {}
            }
        }
        s
    }

    pub fn load(dir: &Path) -> SupervisorStatus {
        std::fs::read_to_string(dir.join(STATUS_FILE)).map(|t| SupervisorStatus::parse(&t)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {

    /// Every name brig keeps in the default state root is reserved: a
    /// container of that name would be the registry (review finding).
    #[test]
    fn every_registry_in_the_default_root_is_a_reserved_id() {
        let dirs = [crate::userns::ALLOCATION_DIR, crate::nsowner::REGISTRY_DIR, crate::cgclaim::REGISTRY_DIR];
        for dir in dirs {
            let path = Path::new(dir);
            assert_eq!(path.parent(), Some(Path::new("/run/brig")), "{dir}");
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(validate_id(name).is_err(), "{name} is a valid container id");
        }
        // The namespace registry's lock sits beside it (crate::nsowner).
        assert!(validate_id("namespaces.lock").is_err());
    }
    use super::*;

    /// A state root someone else can write (made first by another user in a
    /// shared directory) is refused; one's own 0700 root is used.
    #[test]
    fn a_state_root_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = StateRoot::new(Some(&shared)).ensure().unwrap_err().to_string();
        assert!(e.contains("writable by no one else"), "{e}");
        let mut own = StateRoot::new(Some(&dir.path().join("own")));
        own.ensure().unwrap();
        let mode = std::fs::metadata(&own.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn staging_excludes_a_second_create_of_an_id_and_reuses_its_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot { path: dir.path().to_path_buf() };
        let a = root.stage("a").unwrap().unwrap();
        assert!(root.stage("a").unwrap().is_none(), "a second create of `a` while the first runs");
        let b = root.stage("b").unwrap().unwrap();
        assert_ne!(a.dir, b.dir, "two creates at once stage apart");
        std::fs::write(a.dir.join(SPEC_FILE), "{}").unwrap();
        std::fs::write(a.dir.join(STATUS_FILE), "").unwrap();
        let first = a.dir.clone();
        drop(a);
        assert_eq!(std::fs::read_dir(&first).unwrap().count(), 0, "emptied");
        assert!(!root.staging_lock("a").exists());
        // The next create reuses the free directory, not a new one.
        let again = root.stage("a").unwrap().unwrap();
        assert_eq!(again.dir, first);
        drop((again, b));
        assert_eq!(std::fs::read_dir(root.path.join(STAGING).join("slots")).unwrap().count(), 2);
        // What a killed create left in its directory (its flock went with
        // it) is cleared when the directory is taken again.
        std::fs::write(first.join(STATUS_FILE), "old").unwrap();
        std::fs::write(first.join(SPEC_FILE), "old").unwrap();
        let next = root.stage("k").unwrap().unwrap();
        assert_eq!(next.dir, first);
        assert_eq!(std::fs::read_dir(&next.dir).unwrap().count(), 0);
        // A create that holds a directory keeps it from others.
        let other = root.stage("l").unwrap().unwrap();
        assert_ne!(other.dir, first);
    }

    #[test]
    fn a_deleted_containers_directory_is_emptied_kept_and_reused_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot { path: dir.path().to_path_buf() };
        let old = root.container_dir("old");
        std::fs::create_dir_all(old.join("sub")).unwrap();
        std::fs::write(old.join("state.json"), "{}").unwrap();
        std::fs::write(old.join("sub/x"), "x").unwrap();
        root.retire_container_dir(&old).unwrap();
        assert!(!old.exists());
        let free: Vec<_> = std::fs::read_dir(dir.path().join(STAGING).join(FREE)).unwrap().flatten().collect();
        assert_eq!(free.len(), 1);
        assert_eq!(std::fs::read_dir(free[0].path()).unwrap().count(), 0, "kept empty");
        // Not a container: ids are what holds a state.json.
        assert!(root.container_ids().unwrap().is_empty());
        assert!(root.reuse_container_dir("new"));
        assert!(root.container_dir("new").is_dir());
        assert_eq!(std::fs::read_dir(root.container_dir("new")).unwrap().count(), 0);
        assert!(!root.reuse_container_dir("other"), "each kept directory is reused once");
        assert!(!root.container_dir("other").exists());
    }

    #[test]
    fn libcontainers_state_is_saved_in_place_and_reads_back_after_shrinking() {
        // third_party/libcontainer: `State::save` overwrites the file in
        // place (no truncation, no replacement, so no freed block and no
        // discard) and pads a shorter state with spaces.
        use libcontainer::container::{ContainerStatus, State};
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let mut state = State::new("job", ContainerStatus::Creating, None, PathBuf::from("/a/long/bundle/path/x/y/z"));
        state.annotations = Some([("k".to_string(), "v".repeat(300))].into_iter().collect());
        state.save(dir.path()).unwrap();
        let (inode, long) = (std::fs::metadata(&file).unwrap().ino(), std::fs::metadata(&file).unwrap().len());
        state.status = ContainerStatus::Running;
        state.pid = Some(42);
        state.bundle = PathBuf::from("/b");
        state.annotations = None;
        state.save(dir.path()).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.ino(), inode, "the same file, not a replacement");
        assert_eq!(meta.len(), long, "never truncated");
        let loaded = State::load(dir.path()).unwrap();
        assert_eq!(loaded.status, ContainerStatus::Running);
        assert_eq!(loaded.pid, Some(42));
        assert_eq!(loaded.bundle, PathBuf::from("/b"));
        assert_eq!(loaded.annotations, None);
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"], "job");
        assert!(text.trim_end().ends_with('}') && text.ends_with(' '), "padded with spaces: {text}");
        // Growing again still reads back whole.
        state.annotations = Some([("k".to_string(), "w".repeat(600))].into_iter().collect());
        state.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()).unwrap().annotations.unwrap()["k"], "w".repeat(600));
    }

    #[test]
    fn ids() {
        for ok in ["a", "web-1", "x.y_z+1", "ABC"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x", "é"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
        validate_new_id(&"a".repeat(MAX_ID_LEN)).unwrap();
        let long = validate_new_id(&"a".repeat(MAX_ID_LEN + 1)).unwrap_err().to_string();
        assert!(long.contains("at most 200 characters"), "{long}");
        // An existing container with a longer id is still managed.
        validate_id(&"a".repeat(MAX_ID_LEN + 40)).unwrap();
        // An invalid id is shown escaped and cut: it may drive the caller's
        // terminal, or be a megabyte.
        let e = validate_id(&format!("\u{1b}[2J{}", "x".repeat(100_000))).unwrap_err().to_string();
        assert!(!e.contains('\u{1b}') && e.contains("\\u{1b}") && e.len() < 400, "{e}");
        assert!(long.len() < 400, "{long}");
    }

    #[test]
    fn status_lines() {
        let s = SupervisorStatus::parse("pid=2\nstarted_ns=5\nlandlock_abi=7\nlandlock=full\nseccomp_filters=3\nexit_code=0\ntimed_out=0\nended_ns=9\ndone=1\n");
        assert_eq!(s.pid, Some(2));
        assert_eq!(s.landlock.as_deref(), Some("full"));
        assert_eq!(s.exit_code, Some(0));
        assert!(s.done && !s.timed_out);
        let s = SupervisorStatus::parse("garbage\npid=x\nsignal=9\ntimed_out=1\n");
        assert_eq!(s.pid, None);
        assert_eq!(s.signal, Some(9));
        assert!(s.timed_out && !s.done);
    }

    #[test]
    fn atomic_write_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_durable(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
