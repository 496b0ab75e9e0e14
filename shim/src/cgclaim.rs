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
    #[error("{} container `{id}`, which has not been deleted", held_text(cgroup, held))]
    Held { cgroup: PathBuf, held: PathBuf, id: String },
    #[error("the cgroup registry `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn held_text(cgroup: &Path, held: &Path) -> String {
    if cgroup == held {
        format!("the cgroup `{}` belongs to", cgroup.display())
    } else {
        format!("`{}` is inside the cgroup `{}` of", cgroup.display(), held.display())
    }
}

fn entry(registry: &Path, cgroup_path: &Path) -> PathBuf {
    // One entry however the path is spelled (`/a//b/`, `a/b`): the kernel
    // finds the same cgroup. (`..` is refused before a claim.)
    let rel: PathBuf = cgroup_path.components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect();
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
/// (`<root>/<id>`): true if this call made the claim, false if `owner`
/// already held it (a create retried after a crash; or a second create of a
/// live container, which must then not give it up when it fails). Refused
/// when another container holds the path or a cgroup above it (whose `kill
/// --all`, limits and `delete` cover its subtree).
pub fn claim(registry: &Path, cgroup_path: &Path, owner: &Path) -> Result<bool, ClaimError> {
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
    let held = |path: &Path| -> Result<(), ClaimError> {
        match other_holder(&entry(registry, path), owner) {
            Some(dir) => {
                let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                Err(ClaimError::Held { cgroup: cgroup_path.to_path_buf(), held: path.to_path_buf(), id })
            }
            None => Ok(()),
        }
    };
    let mut ancestor = cgroup_path.parent();
    while let Some(a) = ancestor.filter(|a| a.components().any(|c| matches!(c, std::path::Component::Normal(_)))) {
        held(a)?;
        ancestor = a.parent();
    }
    let link = entry(registry, cgroup_path);
    for _ in 0..2 {
        match std::os::unix::fs::symlink(owner, &link) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                held(cgroup_path)?;
                if std::fs::read_link(&link).is_ok_and(|t| t == owner) {
                    // Fresh again: the creating container's grace starts now.
                    let now = nix::sys::time::TimeSpec::UTIME_NOW;
                    nix::sys::stat::utimensat(None, &link, &now, &now, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
                        .map_err(|e| io(&link, std::io::Error::from(e)))?;
                    return Ok(false);
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
#[cfg(test)]
fn held_by_other(registry: &Path, cgroup_path: &Path, owner: &Path) -> bool {
    other_holder(&entry(registry, cgroup_path), owner).is_some()
}

/// Whether `owner` holds the claim on `cgroup_path`.
pub fn held_by(registry: &Path, cgroup_path: &Path, owner: &Path) -> bool {
    std::fs::read_link(entry(registry, cgroup_path)).is_ok_and(|t| t == owner)
}

/// Gives up `owner`'s claim on `cgroup_path` (nothing if another holds it).
pub fn release(registry: &Path, cgroup_path: &Path, owner: &Path) {
    let link = entry(registry, cgroup_path);
    if std::fs::read_link(&link).is_ok_and(|t| t == owner) {
        let _ = std::fs::remove_file(&link);
    }
}

/// Gives up every claim `owner` holds: `delete --force` of a container
/// whose create died before its state was written (its cgroup path unknown).
pub fn release_all_of(registry: &Path, owner: &Path) {
    for e in std::fs::read_dir(registry).into_iter().flatten().flatten() {
        if std::fs::read_link(e.path()).is_ok_and(|t| t == owner) {
            let _ = std::fs::remove_file(e.path());
        }
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
        assert!(claim(&registry, cg, &a).unwrap(), "a new claim");
        assert!(!claim(&registry, cg, &a).unwrap(), "one's own again: not made by this call");
        // Another container (same id, another root) is refused, naming the holder.
        let err = claim(&registry, cg, &b).unwrap_err().to_string();
        assert!(err.contains("belongs to container `job`"), "{err}");
        // So is a cgroup below it (the holder's kill --all and delete cover it).
        let err = claim(&registry, Path::new("/brig/job/sub"), &b).unwrap_err().to_string();
        assert!(err.contains("`/brig/job/sub` is inside the cgroup `/brig/job` of container `job`"), "{err}");
        assert!(held_by_other(&registry, cg, &b));
        assert!(!held_by_other(&registry, cg, &a));
        // Another path is free; the same path spelled otherwise is not.
        claim(&registry, Path::new("/brig/other"), &b).unwrap();
        for same in ["brig/job", "/brig//job/", "//brig/./job"] {
            assert!(claim(&registry, Path::new(same), &b).is_err(), "{same}");
        }
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
        // Its create died: `delete --force` gives up what it held.
        release_all_of(&registry, &a);
        claim(&registry, Path::new("/brig/job"), &b).unwrap();
    }
}
