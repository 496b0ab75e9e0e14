//! Reading a bundle's `config.json` into a typed launch request.
//!
//! Parse, don't validate: a malformed config is rejected here with the JSON
//! path of the bad field, before anything is created on the host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

/// brig's annotations (the job contract, see docs/launch.md), defined once
/// in the policy crate, which builds the request context from them.
pub use brig_policy::context::annotations as annotation;

/// Why a bundle could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle `{}`: {source}", path.display())]
    Bundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` not found: the bundle must contain config.json", path.display())]
    MissingConfig { path: PathBuf },
    #[error("reading `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}`: invalid value at `{field}`: {message}", path.display())]
    Invalid { path: PathBuf, field: String, message: String },
    #[error("`{}`: {field} is required", path.display())]
    MissingField { path: PathBuf, field: &'static str },
    #[error("root filesystem `{}` (root.path in `{}`): {source}", rootfs.display(), config.display())]
    Rootfs {
        rootfs: PathBuf,
        config: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}`: annotation `{key}`: {message}", path.display())]
    Annotation { path: PathBuf, key: &'static str, message: String },
}

/// The largest config.json (or `exec --process` file) brig reads: far
/// above any real spec (Kubernetes' are tens of KiB), far below what would
/// strain the host. runc streams the file; brig reads it whole, so a bundle
/// writer must not be able to make that unbounded (`/dev/zero`, a sparse
/// file), nor hang `create` on a FIFO.
pub const MAX_SPEC_BYTES: u64 = 16 << 20;

/// Reads `path` as an OCI runtime spec, naming the JSON path of any bad field.
pub fn read_spec(path: &Path) -> Result<Spec, BundleError> {
    let text = match brig_files::read_at_most(path, MAX_SPEC_BYTES) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BundleError::MissingConfig { path: path.to_path_buf() })
        }
        Err(source) => return Err(BundleError::Read { path: path.to_path_buf(), source }),
    };
    parse_spec(&text, path)
}

/// Parses spec JSON; errors carry the JSON path (`process.rlimits[0].type`).
pub fn parse_spec(text: &[u8], path: &Path) -> Result<Spec, BundleError> {
    let spec: Spec = parse_json(text, path)?;
    if let Some(process) = spec.process() {
        check_process(process, "process").map_err(|(field, message)| BundleError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        })?;
    }
    Ok(spec)
}

/// One JSON document (an object, nothing after it); errors carry the JSON
/// path of the bad field.
pub fn parse_json<T: serde::de::DeserializeOwned>(text: &[u8], path: &Path) -> Result<T, BundleError> {
    let invalid = |field: String, message: String| BundleError::Invalid { path: path.to_path_buf(), field, message };
    // An object, not the positional (array) form serde also reads structs from.
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("(document)".into(), "not a JSON object".into()));
    }
    let de = &mut serde_json::Deserializer::from_slice(text);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "(document)".to_string() } else { field };
        invalid(field, without_string_values(&e.into_inner().to_string()))
    })?;
    de.end().map_err(|e| invalid("(document)".into(), format!("text after the JSON document: {e}")))?;
    Ok(value)
}

pub use brig_files::without_string_values;

/// What the kernel and libc cannot take in a process: an argument or an
/// environment entry with a NUL byte, an environment entry without `=` or
/// with an empty name, a resource limit whose soft value is above its hard
/// one, an `oomScoreAdj` outside -1000..=1000, a `umask` above 0o7777.
/// Refused here, naming the field, rather than by the kernel as an errno
/// in a debug dump. The value of an argument or an environment entry is
/// never in the message (it may be a secret). `Err((field, reason))`.
pub fn check_process(process: &oci_spec::runtime::Process, prefix: &str) -> Result<(), (String, String)> {
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        if r.soft() > r.hard() {
            return Err((
                format!("{prefix}.rlimits[{i}]"),
                format!("the soft limit ({}) is above the hard limit ({})", r.soft(), r.hard()),
            ));
        }
    }
    if let Some(adj) = process.oom_score_adj().filter(|a| !(-1000..=1000).contains(a)) {
        return Err((format!("{prefix}.oomScoreAdj"), format!("{adj} is outside -1000..=1000")));
    }
    if let Some(umask) = process.user().umask().filter(|u| *u > 0o7777) {
        return Err((format!("{prefix}.user.umask"), format!("{umask} is above 0o7777 (4095)")));
    }
    for (i, arg) in process.args().iter().flatten().enumerate() {
        if arg.contains('\0') {
            return Err((format!("{prefix}.args[{i}]"), "contains a NUL byte".into()));
        }
    }
    for (i, entry) in process.env().iter().flatten().enumerate() {
        let field = format!("{prefix}.env[{i}]");
        let Some((name, value)) = entry.split_once('=') else {
            return Err((field, "is not NAME=VALUE (no `=`)".into()));
        };
        if name.is_empty() {
            return Err((field, "has an empty name".into()));
        }
        if name.contains('\0') || value.contains('\0') {
            return Err((format!("{field} (`{}`)", name.replace('\0', "\\0")), "contains a NUL byte".into()));
        }
    }
    Ok(())
}

/// A bundle, read and checked.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    /// The bundle directory, absolute.
    pub bundle: PathBuf,
    /// `bundle/config.json`.
    pub config_path: PathBuf,
    pub spec: Spec,
    /// The root filesystem, absolute and resolved.
    pub rootfs: PathBuf,
    /// The device and inode of the directory at `rootfs` when it was read
    /// and checked: the object every later step must find there (a link put
    /// in its place since would make the job's root another directory).
    pub rootfs_identity: (u64, u64),
}

/// Opens `path` (absolute, canonical) as an `O_PATH` descriptor, refusing a
/// symbolic link in any component (`ELOOP`): a canonical path has none, so
/// one found now was put there since the path was resolved.
pub fn open_no_symlinks(path: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::os::fd::FromRawFd;
    let how = OpenHow::new()
        // Not O_NOFOLLOW: with O_PATH it would open a trailing link itself
        // instead of failing.
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(libc::AT_FDCWD, path, how).map_err(std::io::Error::from)?;
    // SAFETY: `fd` was just returned by openat2 and is owned by nothing else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The device and inode of an open directory (`NotADirectory` for anything else).
pub fn dir_identity(fd: &std::os::fd::OwnedFd) -> std::io::Result<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(std::io::Error::from)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"));
    }
    Ok((st.st_dev, st.st_ino))
}

/// Container paths that must say where they are without resolving: a
/// mount's destination and a device's path may not be empty or hold a `..`
/// component, and a device's path must be a normal path below `/dev`
/// (`/dev/../../tmp/x` would create the node outside the container's
/// `/dev` tmpfs, in the image's directory on the host). The field and why,
/// for the first that is not. Also a `maskedPaths` or `readonlyPaths` entry
/// that is not absolute, and a hostname or domain name longer than the
/// kernel takes (64 bytes).
fn check_paths(spec: &Spec) -> Option<(String, String)> {
    use std::path::Component;
    let has_dots = |p: &Path| p.components().any(|c| matches!(c, Component::ParentDir));
    for (name, value) in [("hostname", spec.hostname()), ("domainname", spec.domainname())] {
        if let Some(v) = value.as_ref().filter(|v| v.len() > 64) {
            return Some((name.into(), format!("{} bytes; the kernel takes at most 64", v.len())));
        }
    }
    let linux = spec.linux().as_ref();
    for (name, paths) in [
        ("linux.maskedPaths", linux.and_then(|l| l.masked_paths().as_ref())),
        ("linux.readonlyPaths", linux.and_then(|l| l.readonly_paths().as_ref())),
    ] {
        if let Some((i, p)) = paths.into_iter().flatten().enumerate().find(|(_, p)| !p.starts_with('/')) {
            return Some((format!("{name}[{i}]"), format!("`{}` is not an absolute path", brig_files::printable(p))));
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest = m.destination();
        if dest.as_os_str().is_empty() {
            return Some((format!("mounts[{i}].destination"), "empty".into()));
        }
        if has_dots(dest) {
            return Some((
                format!("mounts[{i}].destination"),
                format!("`{}` holds a `..` component", brig_files::printable(&dest.to_string_lossy())),
            ));
        }
    }
    for (i, d) in spec.linux().as_ref().and_then(|l| l.devices().as_ref()).into_iter().flatten().enumerate() {
        let path = d.path();
        let normal = path.is_absolute()
            && path.starts_with("/dev")
            && path != Path::new("/dev")
            && !has_dots(path)
            && path
                .to_str()
                .is_some_and(|p| !p.contains("//") && !p.ends_with('/') && !p.ends_with("/.") && !p.contains("/./"));
        if !normal {
            return Some((
                format!("linux.devices[{i}].path"),
                format!(
                    "`{}` is not a plain path below /dev (no `.`, `..` or empty components)",
                    brig_files::printable(&path.to_string_lossy())
                ),
            ));
        }
    }
    None
}

impl LaunchRequest {
    /// Reads and checks `bundle/config.json`.
    pub fn read(bundle: &Path) -> Result<LaunchRequest, BundleError> {
        let bundle = std::fs::canonicalize(bundle)
            .map_err(|source| BundleError::Bundle { path: bundle.to_path_buf(), source })?;
        let config_path = bundle.join("config.json");
        let mut spec = read_spec(&config_path)?;
        let version = spec.version().clone();
        if !version.starts_with("1.") {
            return Err(BundleError::Invalid {
                path: config_path,
                field: "ociVersion".into(),
                message: format!("`{version}` is not a 1.x runtime spec version"),
            });
        }
        let root = spec.root().clone().ok_or(BundleError::MissingField { path: config_path.clone(), field: "root" })?;
        if spec.process().is_none() {
            return Err(BundleError::MissingField { path: config_path, field: "process" });
        }
        if spec.process().as_ref().and_then(|p| p.args().as_ref()).is_none_or(|a| a.is_empty()) {
            return Err(BundleError::MissingField { path: config_path, field: "process.args" });
        }
        if let Some(cwd) = spec.process().as_ref().map(|p| p.cwd()).filter(|c| !c.is_absolute()) {
            return Err(BundleError::Invalid {
                path: config_path,
                field: "process.cwd".into(),
                message: format!(
                    "`{}` is not an absolute path (runc: \"Cwd must be an absolute path\")",
                    cwd.display()
                ),
            });
        }
        if root.path().as_os_str().is_empty() {
            // Joined to the bundle, an empty path would make the bundle
            // directory itself the job's root filesystem.
            return Err(BundleError::Invalid {
                path: config_path,
                field: "root.path".into(),
                message: "empty: name the root filesystem's directory".into(),
            });
        }
        if let Some((field, message)) = check_paths(&spec) {
            return Err(BundleError::Invalid { path: config_path, field, message });
        }
        let rootfs_path = if root.path().is_absolute() { root.path().clone() } else { bundle.join(root.path()) };
        let rootfs = std::fs::canonicalize(&rootfs_path).map_err(|source| BundleError::Rootfs {
            rootfs: rootfs_path.clone(),
            config: config_path.clone(),
            source,
        })?;
        // What every check below judges, by path, is pinned here: the
        // directory found at the resolved path with no link on the way.
        let rootfs_identity = open_no_symlinks(&rootfs).and_then(|fd| dir_identity(&fd)).map_err(|source| {
            BundleError::Rootfs { rootfs: rootfs_path.clone(), config: config_path.clone(), source }
        })?;
        // The host's own root or system directories as the job's root
        // filesystem: the job would see (and, idmapped under a per-job user
        // namespace, own) the host's files.
        // Shared parents too (`/tmp`, `/var/lib`, `/run/containerd`): a job
        // rooted there would see every container, bundle and state root
        // below, and block any new state root under it (crate::nsowner).
        const HOST_DIRS: [&str; 33] = [
            "/",
            "/bin",
            "/boot",
            "/dev",
            "/etc",
            "/home",
            "/lib",
            "/lib32",
            "/lib64",
            "/libx32",
            "/media",
            "/mnt",
            "/opt",
            "/proc",
            "/root",
            "/run",
            "/sbin",
            "/srv",
            "/sys",
            "/usr",
            "/var",
            "/tmp",
            "/var/tmp",
            "/var/lib",
            "/var/run",
            "/dev/shm",
            "/run/user",
            "/run/containerd",
            "/run/docker",
            "/run/containers",
            "/var/lib/docker",
            "/var/lib/containerd",
            "/var/lib/containers",
        ];
        // Nor anything inside the trees that hold the host's configuration,
        // software and kernel: no client keeps a container's root filesystem
        // there (Docker, containerd and Podman use /var/lib and /run,
        // rootless Podman the user's home), and a job rooted at `/etc/ssl`
        // would read what is there; nor inside root's home (`/root/.ssh`:
        // under a per-job user namespace the idmapped rootfs shows the job
        // root's files as its own). (Other home directories hold bundles
        // people make by hand and rootless storage, so only their top is
        // refused.) `canonicalize` has resolved symbolic links (`/lib` ->
        // `/usr/lib`).
        const HOST_TREES: [&str; 12] =
            ["/bin", "/boot", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root", "/sbin", "/sys", "/usr"];
        if HOST_DIRS.iter().any(|d| rootfs == Path::new(d)) || HOST_TREES.iter().any(|d| rootfs.starts_with(d)) {
            return Err(BundleError::Invalid {
                path: config_path,
                field: "root.path".into(),
                message: format!("the host's `{}` cannot be a container's root filesystem", rootfs.display()),
            });
        }
        // libcontainer will read the effective spec from brig's state
        // directory, so the root path must not depend on the bundle.
        let mut new_root = root.clone();
        new_root.set_path(rootfs.clone());
        spec.set_root(Some(new_root));
        Ok(LaunchRequest { bundle, config_path, spec, rootfs, rootfs_identity })
    }

    pub fn annotations(&self) -> HashMap<String, String> {
        self.spec.annotations().clone().unwrap_or_default()
    }

    pub fn annotation(&self, key: &str) -> Option<String> {
        self.spec.annotations().as_ref().and_then(|a| a.get(key).cloned())
    }

    /// A comma-separated list annotation, trimmed, empty items dropped.
    pub fn annotation_list(&self, key: &str) -> Vec<String> {
        self.annotation(key)
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value of the wrong type is named by its field, never quoted: an
    /// environment given as one string holds the token (a review finding:
    /// it reached stderr and the `--log` file).
    #[test]
    fn a_mistyped_value_is_never_quoted_in_the_error() {
        let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln";
        let text = format!(
            r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","user":{{"uid":0,"gid":0}},"env":"BRIG_TOKEN={token} \"q\""}},"root":{{"path":"rootfs"}}}}"#
        );
        let e = parse_spec(text.as_bytes(), Path::new("config.json")).unwrap_err().to_string();
        assert!(e.contains("process.env") && e.contains("a string"), "{e}");
        assert!(!e.contains(token) && !e.contains("BRIG_TOKEN"), "{e}");
        assert_eq!(
            without_string_values(r#"invalid type: string "a\"b\\", expected x; string "c", y"#),
            "invalid type: a string, expected x; a string, y"
        );
        assert_eq!(without_string_values(r#"cut: string "unterminated"#), "cut: a string");
        assert_eq!(
            without_string_values("unknown variant `CAP_eyJ.secret`, expected one of `CAP_CHOWN`"),
            "unknown variant, expected one of `CAP_CHOWN`"
        );
    }

    /// A NUL byte in an argument or an environment entry, an entry with no
    /// `=` or an empty name, are refused naming the field and never the
    /// value (the init panicked on them, printing the value, a secret);
    /// text after the document and the positional (array) form are refused.
    #[test]
    fn processes_the_kernel_cannot_take_and_trailing_text_are_refused() {
        let spec = |process: &str| {
            format!(
                r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","user":{{"uid":0,"gid":0}},{process}}},"root":{{"path":"rootfs"}}}}"#
            )
        };
        for (process, field) in [
            (r#""args":["sh"],"env":["DB_PASSWORD=hunter2\u0000secret"]"#, "process.env[0]"),
            (r#""args":["sh"],"env":["A=1","=x"]"#, "process.env[1]"),
            (r#""args":["sh"],"env":["NOEQUALS"]"#, "process.env[0]"),
            (r#""args":["sh","a\u0000b"]"#, "process.args[1]"),
            (r#""args":["sh"],"rlimits":[{"type":"RLIMIT_NOFILE","hard":10,"soft":20}]"#, "process.rlimits[0]"),
            (r#""args":["sh"],"oomScoreAdj":5000"#, "process.oomScoreAdj"),
        ] {
            let e = parse_spec(spec(process).as_bytes(), Path::new("/b/config.json")).unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("/b/config.json"), "{process}: {e}");
            assert!(!e.contains("hunter2") && !e.contains("secret"), "{e}");
        }
        parse_spec(spec(r#""args":["sh"],"env":["A=","B=c=d"]"#).as_bytes(), Path::new("c")).unwrap();
        let good = spec(r#""args":["sh"]"#);
        let e = parse_spec(format!("{good} garbage").as_bytes(), Path::new("c")).unwrap_err().to_string();
        assert!(e.contains("after the JSON document"), "{e}");
        parse_spec(format!("  {good}\n\n").as_bytes(), Path::new("c")).unwrap();
        let e = parse_spec(br#"["1.0.2"]"#, Path::new("c")).unwrap_err().to_string();
        assert!(e.contains("not a JSON object"), "{e}");
    }

    #[test]
    fn names_the_bad_field() {
        let bad = br#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":"zero","gid":0}},"root":{"path":"rootfs"}}"#;
        let err = parse_spec(bad, Path::new("/b/config.json")).unwrap_err().to_string();
        assert!(err.contains("process.user.uid") && err.contains("/b/config.json"), "{err}");
        let bad = br#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0},"rlimits":[{"type":"RLIMIT_BOGUS","hard":1,"soft":1}]}}"#;
        let err = parse_spec(bad, Path::new("c")).unwrap_err().to_string();
        assert!(err.contains("process.rlimits[0].type"), "{err}");
        let err = parse_spec(b"{not json", Path::new("c")).unwrap_err().to_string();
        assert!(err.contains("invalid value"), "{err}");
    }

    #[test]
    fn requires_root_process_and_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let write = |s: &str| std::fs::write(dir.path().join("config.json"), s).unwrap();
        assert!(matches!(LaunchRequest::read(dir.path()), Err(BundleError::MissingConfig { .. })));
        write(r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}}}"#);
        assert!(matches!(LaunchRequest::read(dir.path()), Err(BundleError::MissingField { field: "root", .. })));
        write(
            r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},"root":{"path":"rootfs"}}"#,
        );
        let err = LaunchRequest::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("rootfs") && err.contains("root.path"), "{err}");
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let req = LaunchRequest::read(dir.path()).unwrap();
        assert!(req.spec.root().as_ref().unwrap().path().is_absolute());
        write(
            r#"{"ociVersion":"0.9","process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},"root":{"path":"rootfs"}}"#,
        );
        assert!(LaunchRequest::read(dir.path()).unwrap_err().to_string().contains("ociVersion"));
    }

    /// An empty root path (the bundle itself as the root filesystem), a
    /// mount destination that is empty or climbs with `..`, and a device
    /// path that is not a plain path below /dev (`/dev/../../tmp/x` would
    /// put the node in the image's directory on the host) are refused,
    /// naming the field, under every profile (the bundle is read first).
    #[test]
    fn paths_that_do_not_say_where_they_are_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let read = |extra: &str, root: &str| {
            let text = format!(
                r#"{{"ociVersion":"1.0.2","process":{{"cwd":"/","args":["sh"],"user":{{"uid":0,"gid":0}}}},"root":{{"path":"{root}"}}{extra}}}"#
            );
            std::fs::write(dir.path().join("config.json"), text).unwrap();
            LaunchRequest::read(dir.path()).map(drop).map_err(|e| e.to_string())
        };
        let e = read("", "").unwrap_err();
        assert!(e.contains("root.path") && e.contains("empty"), "{e}");
        for (extra, field) in [
            (r#","mounts":[{"destination":""}]"#, "mounts[0].destination"),
            (r#","mounts":[{"destination":"/tmp"},{"destination":"/a/../../etc"}]"#, "mounts[1].destination"),
            (
                r#","linux":{"devices":[{"path":"/dev/../../tmp/evil","type":"b","major":8,"minor":0}]}"#,
                "linux.devices[0].path",
            ),
            (r#","linux":{"devices":[{"path":"/dev","type":"c","major":1,"minor":3}]}"#, "linux.devices[0].path"),
            (r#","linux":{"devices":[{"path":"/devx/null","type":"c","major":1,"minor":3}]}"#, "linux.devices[0].path"),
            (
                r#","linux":{"devices":[{"path":"/dev/./null","type":"c","major":1,"minor":3}]}"#,
                "linux.devices[0].path",
            ),
            (r#","linux":{"devices":[{"path":"dev/null","type":"c","major":1,"minor":3}]}"#, "linux.devices[0].path"),
            (r#","linux":{"maskedPaths":["/proc/kcore","proc/keys"]}"#, "linux.maskedPaths[1]"),
            (r#","linux":{"readonlyPaths":["sys"]}"#, "linux.readonlyPaths[0]"),
            (
                r#","hostname":"hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh""#,
                "hostname",
            ),
        ] {
            let e = read(extra, "rootfs").unwrap_err();
            assert!(e.contains(field), "{extra}: {e}");
        }
        read(r#","linux":{"devices":[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]},"mounts":[{"destination":"/data"}]"#, "rootfs")
            .unwrap();
    }
}
