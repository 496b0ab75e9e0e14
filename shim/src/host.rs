//! The real host behind `brig_profiles::Host`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;

/// Reads namespaces and paths from /proc and the filesystem.
#[derive(Debug, Default)]
pub struct RealHost {
    /// Client state directories the configuration adds (`[clients]`).
    pub client_state_dirs: Vec<PathBuf>,
    /// dockerd binaries the configuration adds (`[clients]`).
    pub dockerd_binaries: Vec<PathBuf>,
}

impl RealHost {
    pub fn new(config: &crate::config::Config) -> RealHost {
        RealHost {
            client_state_dirs: config.clients.state_dirs.clone(),
            dockerd_binaries: config.clients.dockerd_binaries.clone(),
        }
    }
}

/// Where Debian, Docker's packages and its static binaries put dockerd.
const DOCKERD_BINARIES: &[&str] = &["/usr/bin/dockerd", "/usr/sbin/dockerd", "/usr/local/bin/dockerd"];

impl brig_profiles::Host for RealHost {
    fn is_host_namespace(&self, typ: LinuxNamespaceType, path: &Path) -> bool {
        let ours = Path::new("/proc/self/ns").join(crate::nspin::proc_name(typ));
        // Through the descriptor `create` pinned (crate::nspin): the
        // namespace checked is the namespace joined.
        match (std::fs::metadata(crate::nspin::resolved(path)), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            // A namespace path that cannot be inspected is treated as the
            // host's: fail closed.
            _ => true,
        }
    }

    fn is_client_state(&self, resolved: &Path) -> bool {
        brig_profiles::clients::CLIENT_STATE_PREFIXES.iter().any(|p| resolved.starts_with(p))
            || self.client_state_dirs.iter().any(|d| resolved.starts_with(d))
    }

    fn canonical(&self, path: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(path).ok()
    }

    fn is_dockerd_process_binary(&self, path: &Path) -> bool {
        // `/proc/<pid>/exe` and nothing else: a file merely named `dockerd`
        // (in a bundle, an image, a job's output) is not dockerd.
        let Some(pid) = path.to_str().and_then(|p| p.strip_prefix("/proc/")).and_then(|p| p.strip_suffix("/exe"))
        else {
            return false;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        // The process's executable itself (the magic link is followed to
        // its inode), compared with the host's dockerd binaries; or, after
        // an upgrade of the package while dockerd runs on, the replaced
        // binary (`<path> (deleted)`), itself root-owned and not writable by
        // others.
        let Ok(exe) = std::fs::metadata(path) else { return false };
        let trusted = |m: &std::fs::Metadata| m.is_file() && m.uid() == 0 && m.mode() & 0o022 == 0;
        let link = std::fs::read_link(path).ok();
        DOCKERD_BINARIES.iter().map(Path::new).chain(self.dockerd_binaries.iter().map(PathBuf::as_path)).any(|b| {
            let same = std::fs::metadata(b).is_ok_and(|m| trusted(&m) && m.dev() == exe.dev() && m.ino() == exe.ino());
            let replaced = link.as_deref() == Some(Path::new(&format!("{} (deleted)", b.display()))) && trusted(&exe);
            same || replaced
        })
    }
}

/// Whether the host enforces AppArmor (`/sys/module/apparmor/parameters/enabled`).
fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|t| t.trim() == "Y")
}

/// A process's AppArmor profile, checked against the host: one the host
/// cannot apply is refused naming the field (runc refuses it too), rather
/// than failing deep in the init with an unclear error (`create`) or being
/// dropped in silence (`exec`). brig's own confinement (seccomp, Landlock,
/// the user namespace) does not depend on it. (An SELinux label on a host
/// without SELinux is ignored, as runc ignores it.)
pub fn check_apparmor(process: &oci_spec::runtime::Process) -> Result<(), String> {
    match process.apparmor_profile().as_deref().filter(|p| !p.is_empty()) {
        Some(profile) if !apparmor_enabled() => Err(format!(
            "profile `{}`: AppArmor is not enabled on this host, so it cannot be applied",
            profile.escape_debug()
        )),
        _ => Ok(()),
    }
}
