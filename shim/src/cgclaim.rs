//! Which container a cgroup belongs to.
//!
//! A stopped container keeps its (empty) cgroup until it is deleted, and its
//! `kill --all`, `update`, `events` and `delete`, and the usage its
//! attestation reports, all act on whatever is in that cgroup. A new job
//! must therefore never be put in it: not a job of the same id under another
//! state root (which `cgroup::default_path` would give `/brig/<id>` too), not
//! one whose spec names that `cgroupsPath`. So every job claims its cgroup
//! here, in [`REGISTRY_DIR`]: an entry per cgroup path (a digest of it), a
//! symbolic link to the state directory of the container that holds it. The
//! claim holds while that directory exists (until `delete`); an entry whose
//! container is gone is stale and taken over. Like the namespace registry
//! (`crate::nsowner`) it is global, not per `--root`: Docker, Podman and
//! containerd use their own roots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest;

/// Where the entries live.
pub const REGISTRY_DIR: &str = "/run/brig/cgroups";

/// How long a fresh claim stands although its container directory does not
/// exist yet (libcontainer makes it after the claim, during the build).
const CREATING: Duration = Duration::from_secs(60);

/// Why a cgroup cannot be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("the cgroup `{}` belongs to container `{}` (state `{}`), which has not been deleted", cgroup.display(), id, dir.display())]
    Held { cgroup: PathBuf, id: String, dir: PathBuf },
    #[error("the cgroup registry `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn entry(registry: &Path, cgroup_path: &Path) -> PathBuf {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    let digest = sha2::Sha256::digest(rel.as_os_str().as_encoded_bytes());
    registry.join(hex::encode(&digest[..16]))
}

/// The state directory of the container holding `cgroup_path`, if it is
/// not `owner` and still stands (or is being created).
fn other_holder(link: &Path, owner: &Path) -> Option<PathBuf> {
    let target = std::fs::read_link(link).ok()?;
    if target == owner {
        return None;
    }
    let fresh = std::fs::symlink_metadata(link)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < CREATING));
    (target.is_dir() || fresh).then_some(target)
}

/// Claims `cgroup_path` for the container whose state directory is `owner`
/// (`<root>/<id>`). Claiming one's own again is fine.
pub fn claim(registry: &Path, cgroup_path: &Path, owner: &Path) -> Result<(), ClaimError> {
    let io = |path: &Path, source| ClaimError::Io { path: path.to_path_buf(), source };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(registry).map_err(|e| io(registry, e))?;
    }
    let lock_path = registry.join(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io(&lock_path, e))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io(&lock_path, std::io::Error::from(e)))?;
    let link = entry(registry, cgroup_path);
    for _ in 0..2 {
        match std::os::unix::fs::symlink(owner, &link) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Some(dir) = other_holder(&link, owner) {
                    let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    return Err(ClaimError::Held { cgroup: cgroup_path.to_path_buf(), id, dir });
                }
                if std::fs::read_link(&link).is_ok_and(|t| t == owner) {
                    return Ok(());
                }
                // Stale: its container is gone.
                std::fs::remove_file(&link).map_err(|e| io(&link, e))?;
            }
            Err(e) => return Err(io(&link, e)),
        }
    }
    Err(io(&link, std::io::Error::other("claimed by another create meanwhile")))
}

/// Whether `cgroup_path` is held by a container other than `owner`.
pub fn held_by_other(registry: &Path, cgroup_path: &Path, owner: &Path) -> bool {
    other_holder(&entry(registry, cgroup_path), owner).is_some()
}

/// Gives up `owner`'s claim on `cgroup_path` (nothing if another holds it).
pub fn release(registry: &Path, cgroup_path: &Path, owner: &Path) {
    let link = entry(registry, cgroup_path);
    if std::fs::read_link(&link).is_ok_and(|t| t == owner) {
        let _ = std::fs::remove_file(&link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_is_one_containers_until_it_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("cgroups");
        let (a, b) = (dir.path().join("root1/job"), dir.path().join("root2/job"));
        std::fs::create_dir_all(&a).unwrap();
        let cg = Path::new("/brig/job");
        claim(&registry, cg, &a).unwrap();
        claim(&registry, cg, &a).unwrap();
        // Another container (same id, another root) is refused, naming the holder.
        let err = claim(&registry, cg, &b).unwrap_err().to_string();
        assert!(err.contains("belongs to container `job`") && err.contains("root1"), "{err}");
        assert!(held_by_other(&registry, cg, &b));
        assert!(!held_by_other(&registry, cg, &a));
        // Another path is free; the same path spelled without the slash is not.
        claim(&registry, Path::new("/brig/other"), &b).unwrap();
        assert!(claim(&registry, Path::new("brig/job"), &b).is_err());
        // Once the holder is deleted (its directory gone, the claim old), the
        // next one takes it over.
        std::fs::remove_dir_all(&a).unwrap();
        let link = entry(&registry, cg);
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        let times = [nix::sys::time::TimeSpec::from(Duration::from_secs(0)); 2]
            .map(|_| nix::sys::time::TimeSpec::from(old.duration_since(std::time::UNIX_EPOCH).unwrap()));
        nix::sys::stat::utimensat(None, &link, &times[0], &times[1], nix::sys::stat::UtimensatFlags::NoFollowSymlink)
            .unwrap();
        claim(&registry, cg, &b).unwrap();
        // A release by someone else leaves the claim; the holder's frees it.
        release(&registry, cg, &a);
        assert!(held_by_other(&registry, cg, &a));
        release(&registry, cg, &b);
        assert!(!held_by_other(&registry, cg, &a));
    }

    #[test]
    fn a_claim_being_created_stands_before_its_directory_exists() {
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("cgroups");
        let (a, b) = (dir.path().join("root1/job"), dir.path().join("root2/job"));
        claim(&registry, Path::new("/brig/job"), &a).unwrap();
        assert!(claim(&registry, Path::new("/brig/job"), &b).is_err());
    }
}
