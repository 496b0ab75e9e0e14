//! The real host behind `brig_profiles::Host`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;

/// Reads namespaces and paths from /proc and the filesystem.
#[derive(Debug, Default)]
pub struct RealHost {
    /// Client state directories the configuration adds (`[clients]`).
    pub client_state_dirs: Vec<PathBuf>,
}

impl RealHost {
    pub fn new(config: &crate::config::Config) -> RealHost {
        RealHost { client_state_dirs: config.clients.state_dirs.clone() }
    }
}

fn proc_ns_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

impl brig_profiles::Host for RealHost {
    fn is_host_namespace(&self, typ: LinuxNamespaceType, path: &Path) -> bool {
        let ours = Path::new("/proc/self/ns").join(proc_ns_name(typ));
        match (std::fs::metadata(path), std::fs::metadata(&ours)) {
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

    fn hook_binary_name(&self, path: &Path) -> Option<String> {
        let resolved = std::fs::read_link(path).unwrap_or_else(|_| path.to_path_buf());
        resolved.file_name().map(|n| n.to_string_lossy().trim_end_matches(" (deleted)").to_string())
    }
}
