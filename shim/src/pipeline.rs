//! The launch pipeline up to the point where libcontainer takes over:
//! read → authenticate → harden → authorize → record.
//!
//! Every stage is pure with respect to the host (it reads, it does not
//! create), so a refusal leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use brig_profiles::{harden, Hardened, JobAsks, LoadedProfile, ProfileSet};

use crate::bundle::{annotation, BundleError, LaunchRequest};
use crate::config::{AuthMode, Config};
use crate::host::RealHost;
use crate::state::{AuthRecord, ProfileRef, RunRecord};
use std::time::SystemTime;

/// Why a launch was refused before anything was created.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Profile(#[from] brig_profiles::ProfileError),
    #[error(transparent)]
    Harden(#[from] brig_profiles::HardenError),
    #[error("launch refused: {0}")]
    Unauthorized(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("describing the launch for the policy: {0}")]
    Describe(String),
    #[error(transparent)]
    Measure(#[from] crate::attestation::MeasureError),
}

/// The environment variable clients without annotations use for the token.
pub const TOKEN_ENV: &str = "BRIG_TOKEN";

/// A token taken out of the spec. Its text is never printed: `Debug` is redacted.
pub struct Credential {
    pub token: Option<String>,
    /// Where it came from (annotation, file, environment).
    pub source: &'static str,
    /// The `dev.brig.token-file` annotation, read only when a token is
    /// needed and none came inline (see [`Credential::resolve`]).
    pub file: Option<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("source", &self.source)
            .field("file", &self.file)
            .finish()
    }
}

impl Credential {
    /// The token: the inline one, or else the named token file's, read from
    /// inside `token_dir` (see [`read_token_file`]).
    pub fn resolve(mut self, token_dir: &Path) -> Result<Option<String>, String> {
        if self.token.is_some() {
            return Ok(self.token.take());
        }
        match self.file.as_deref() {
            Some(name) => read_token_file(token_dir, name).map(Some),
            None => Ok(None),
        }
    }
}

/// Reads the token file a bundle names (`dev.brig.token-file`).
///
/// The bundle is not trusted to pick a file for root to read: the file must
/// be inside the configured token directory (`[auth] token_dir`, where a
/// node agent writes tokens), reached without a symbolic link or a mount
/// crossing (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_XDEV`, so no `..`, no link to another pod's token or to
/// `/etc/shadow`), a regular file (never a FIFO or a device: opened
/// non-blocking, checked with `fstat`) owned by brig's user and writable by
/// no one else, and read only up to one byte past the longest token.
/// Errors name the annotation and the path, never the file's content.
pub fn read_token_file(token_dir: &Path, name: &str) -> Result<String, String> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::MetadataExt;
    let key = annotation::TOKEN_FILE;
    // A token put here by mistake (it belongs in `dev.brig.token`) is
    // refused without being echoed: the message reaches logs and the audit
    // log, and the token, never verified, was never spent.
    if looks_like_a_token(name) {
        return Err(format!(
            "{key}: the value is a token, not a file name (a token goes in `{}`); it is not shown",
            annotation::TOKEN
        ));
    }
    let shown = token_file_name_shown(name);
    let fail = |why: &str| Err(format!("{key} `{shown}`: {why}"));
    let path = Path::new(name);
    let relative = if path.is_absolute() {
        match path.strip_prefix(token_dir) {
            Ok(r) => r,
            Err(_) => {
                return fail(&format!("not inside the token directory `{}` ([auth] token_dir)", token_dir.display()))
            }
        }
    } else {
        path
    };
    if relative.as_os_str().is_empty() {
        return fail("names no file");
    }
    let dir = std::fs::File::open(token_dir)
        .map_err(|e| format!("{key} `{shown}`: the token directory `{}`: {e}", token_dir.display()))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_XDEV);
    let fd = match openat2(std::os::fd::AsRawFd::as_raw_fd(&dir), relative, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::EXDEV) => {
            return fail(&format!("leaves the token directory `{}` ([auth] token_dir)", token_dir.display()))
        }
        Err(nix::errno::Errno::ELOOP) => return fail("is or passes through a symbolic link"),
        Err(e) => return fail(&format!("cannot be opened: {}", std::io::Error::from(e).kind())),
    };
    // SAFETY: `fd` was just returned by openat2 and is owned by nothing else.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    let meta = file.metadata().map_err(|e| format!("{key} `{shown}`: {}", e.kind()))?;
    if !meta.file_type().is_file() {
        return fail("is not a regular file");
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return fail("must be owned by brig's user and writable by no one else");
    }
    let mut text = String::new();
    let limit = brig_policy::token::MAX_TOKEN_BYTES as u64 + 1;
    file.take(limit).read_to_string(&mut text).map_err(|e| format!("{key} `{shown}`: cannot be read: {}", e.kind()))?;
    if text.len() as u64 >= limit {
        return fail(&format!("is longer than a token ({} bytes at most)", brig_policy::token::MAX_TOKEN_BYTES));
    }
    Ok(text.trim().to_string())
}

/// Whether a `dev.brig.token-file` value is a compact JWS rather than a file
/// name: three base64url segments, the first a JSON object (`eyJ`).
fn looks_like_a_token(value: &str) -> bool {
    let value = value.trim();
    let segments: Vec<&str> = value.split('.').collect();
    value.starts_with("eyJ")
        && segments.len() == 3
        && segments[..2].iter().all(|s| !s.is_empty())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

/// Whether `value` holds a run of 20 or more base64url characters with at
/// least four upper- and four lower-case letters: what every part of a JWT
/// is (a header is 20 characters at least, and base64 of JSON mixes cases
/// throughout) and a file name seldom is (hex digests, UUIDs and words are
/// not).
fn looks_like_token_text(value: &str) -> bool {
    value.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')).any(|run| {
        let count = |f: fn(&u8) -> bool| run.bytes().filter(&f).count();
        run.len() >= 20 && count(u8::is_ascii_uppercase) >= 4 && count(u8::is_ascii_lowercase) >= 4
    })
}

/// A token file name as messages show it: control and hiding characters
/// escaped, at most 128 characters; not at all when part of it looks like
/// part of a token (`looks_like_token_text`): a token pasted with a fourth
/// part, a space or a line break in it is no exact token, and would
/// otherwise show its header and claims.
fn token_file_name_shown(name: &str) -> String {
    const MAX: usize = 128;
    if looks_like_token_text(name) {
        return format!("<{} characters, not shown: part of the value looks like a token>", name.chars().count());
    }
    brig_files::printable_cut(name, MAX)
}

/// Removes every trace of a token from the spec (annotations and the
/// process environment), so that neither the job, `brig state`, the saved
/// config nor any log can see it.
pub fn take_credential(spec: &mut Spec) -> Credential {
    let mut token = None;
    let mut source = "none";
    let mut token_file = None;
    if let Some(annotations) = spec.annotations_mut() {
        if let Some(t) = annotations.remove(annotation::TOKEN) {
            token = Some(t);
            source = "annotation";
        }
        token_file = annotations.remove(annotation::TOKEN_FILE);
    }
    if let Some(process) = spec.process_mut() {
        if let Some(env) = process.env_mut() {
            let mut from_env = None;
            // The first entry, as getenv(3) and `exec` (commands::exec_token)
            // read it; every entry is removed.
            env.retain(|e| match e.strip_prefix(&format!("{TOKEN_ENV}=")) {
                Some(v) => {
                    from_env.get_or_insert_with(|| v.to_string());
                    false
                }
                None => true,
            });
            if token.is_none() {
                if let Some(t) = from_env {
                    token = Some(t);
                    source = "environment";
                }
            }
        }
    }
    if token.is_none() && token_file.is_some() {
        source = "file";
    }
    Credential { token, source, file: token_file }
}

/// Removes the token variable from an `exec` process.
pub fn scrub_process_token(process: &mut oci_spec::runtime::Process) {
    if let Some(env) = process.env_mut() {
        env.retain(|e| !e.starts_with(&format!("{TOKEN_ENV}=")));
    }
}

/// The result of the pipeline: what libcontainer will run.
#[derive(Debug)]
pub struct Prepared {
    pub request: LaunchRequest,
    pub hardened: Hardened,
    pub profile: LoadedProfile,
    pub auth: AuthRecord,
    /// The pool per-job user-namespace ranges come from.
    pub userns_pool: crate::userns::Pool,
    /// What was measured before the job starts (when attestations are on).
    pub measurements: Option<crate::attestation::Measurements>,
}

fn job_asks(req: &LaunchRequest) -> Result<JobAsks, BundleError> {
    let timeout = match req.annotation(annotation::TIMEOUT) {
        Some(t) => Some(t.parse::<brig_profiles::Duration>().map_err(|e| BundleError::Annotation {
            path: req.config_path.clone(),
            key: annotation::TIMEOUT,
            message: e.to_string(),
        })?),
        None => None,
    };
    // Each declared input or output is a bind mount of the spec (an output
    // a writable one): the annotation widens Landlock to that path, so it
    // must not name `/` or a directory the spec does not mount.
    let binds: Vec<(String, bool)> = req
        .spec
        .mounts()
        .iter()
        .flatten()
        .filter(|m| {
            m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind")
        })
        .map(|m| {
            let rw = !m.options().iter().flatten().any(|o| o == "ro");
            (brig_profiles::landlock::lexical(&m.destination().to_string_lossy()), rw)
        })
        .collect();
    let checked = |key: &'static str, writable: bool| -> Result<Vec<String>, BundleError> {
        let paths = req.annotation_list(key);
        for p in &paths {
            let p = brig_profiles::landlock::lexical(p);
            let ok = p != "/" && binds.iter().any(|(dest, rw)| *dest == p && (*rw || !writable));
            if !ok {
                let what = if writable { "a writable bind mount" } else { "a bind mount" };
                return Err(BundleError::Annotation {
                    path: req.config_path.clone(),
                    key,
                    message: format!("`{p}` is not {what} of the spec"),
                });
            }
        }
        Ok(paths)
    };
    Ok(JobAsks {
        timeout,
        read_paths: checked(annotation::INPUTS, false)?,
        write_paths: checked(annotation::OUTPUTS, true)?,
    })
}

/// Appends an audit record (fsync'd) when an audit log is configured. An
/// audit record that cannot be written stops the launch.
/// Returns where the record was written (None without an audit log).
pub fn audit(
    config: &Config,
    record: &brig_policy::AuditRecord,
) -> Result<Option<brig_policy::AuditAnchor>, LaunchError> {
    let Some(path) = config.audit_path() else { return Ok(None) };
    brig_policy::AuditLog::open(&path)
        .and_then(|log| log.append(record))
        .map(Some)
        .map_err(|e| LaunchError::Unauthorized(format!("cannot write the audit record to `{}`: {e}", path.display())))
}

/// Denies: writes the audit record, returns the error.
fn deny(config: &Config, id: &str, ctx: Option<&brig_policy::LaunchContext>, reason: String) -> LaunchError {
    let record = brig_policy::AuditRecord::denied(SystemTime::now(), id, brig_policy::Action::Launch, ctx, &reason);
    match audit(config, &record) {
        Ok(_) => LaunchError::Unauthorized(reason),
        Err(e) => e,
    }
}

/// The policy set of a launch, loaded on another thread (or by this one, if
/// it asks first) while this one reads the bundle, hardens the spec and
/// verifies the token (`None` when authorization is off). The thread is
/// joined when the loaded set is dropped at the end of the authorization
/// step, or on any early return: before anything forks.
pub fn start_policy_loader(config: &Config) -> Option<brig_policy::PolicyLoader> {
    (config.auth.mode == AuthMode::Required).then(|| brig_policy::PolicyLoader::start(&config.policy))
}

/// Whether `rootfs` is at, inside or above `tree` (both canonical).
pub fn overlaps(rootfs: &Path, tree: &Path) -> bool {
    rootfs.starts_with(tree) || tree.starts_with(rootfs)
}

/// brig's own directories: policies, their cache, profiles, tokens, the
/// single-use token records, attestations, the rootfs measurement cache,
/// other jobs' idmapped roots, the namespace registry and user-namespace
/// slots.
fn brig_own_trees(config: &Config) -> Vec<PathBuf> {
    let mut trees: Vec<PathBuf> =
        vec![config.policy.dir.clone(), config.policy.cache_dir.clone(), config.profiles.dir.clone()];
    trees.push(config.auth.token_dir.clone());
    trees.extend(config.auth.replay.as_ref().map(|r| r.dir.clone()));
    if let Some(a) = &config.attest {
        trees.extend([a.dir.clone(), a.rootfs_cache.clone()]);
    }
    trees.extend([PathBuf::from(crate::lifecycle::ROOTFS_MOUNT_DIR), PathBuf::from("/run/brig")]);
    trees
}

/// brig's own files: its configuration, the audit log, the attestation key,
/// the JWKS, its cache and the CA it is fetched with, and the HMAC secret.
/// (Relative paths are made absolute: a `--config` given relative is the
/// file in the current directory.)
fn brig_own_files(config: &Config) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = vec![config.path.clone()];
    files.extend(config.audit_path());
    files.extend(config.attest.as_ref().map(|a| a.key.clone()));
    files.extend(config.auth.jwks_file.clone());
    files.extend(config.auth.jwks_ca_file.clone());
    files.push(config.auth.jwks_cache_file.clone());
    files.extend(config.auth.hmac_secret_file.clone());
    files.into_iter().filter_map(|f| std::path::absolute(&f).ok()).collect()
}

/// Other runtimes' state roots, and every state root a live brig job uses
/// (Docker's `/run/docker/runtime-<name>/moby`, containerd's
/// `/run/containerd/runc/<namespace>`, a platform's per-tenant roots, from
/// the namespace registry): their jobs' specs, records and notify sockets.
fn runtime_state_trees() -> Vec<PathBuf> {
    let mut trees: Vec<PathBuf> =
        ["/run/runc", "/run/docker/runtime-runc", "/run/docker/runtime-brig", "/run/containerd/runc"]
            .map(PathBuf::from)
            .into();
    trees.extend(crate::nsowner::live_state_roots());
    trees
}

/// Whether `profile` confines what a job mounts from the host: every profile
/// but one whose ceilings let a job mount the whole host writable
/// (`permissive`: the spec as runc runs it; a job that may write `/` is
/// beyond what keeping brig's files out of its mounts would protect).
fn confines_mounts(profile: &brig_profiles::model::Profile) -> bool {
    !profile.ceilings.writable_mounts.iter().any(|p| p.trim_end_matches('/').is_empty())
}

/// No mount from the host may be at, inside or above one of brig's own
/// directories, nor above one of its files, whatever the profile's ceilings
/// and the policy allow: a job would read other jobs' unused tokens, the
/// attestation key or the audit log (or write them). `sources` are the
/// mounts' (destination, canonical host source), as the policy judges them.
pub fn check_mount_sources<'a>(
    config: &Config,
    extra_trees: impl FnOnce() -> Vec<PathBuf>,
    sources: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), String> {
    let sources: Vec<(&str, &Path)> =
        sources.into_iter().map(|(d, s)| (d, Path::new(s))).filter(|(_, s)| s.is_absolute()).collect();
    // Most jobs mount nothing from the host: nothing to resolve then (the
    // paths below cost a canonicalization each, the live state roots a
    // reading of the namespace registry).
    if sources.is_empty() {
        return Ok(());
    }
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let trees: Vec<PathBuf> = brig_own_trees(config)
        .into_iter()
        .chain(extra_trees())
        .filter_map(|t| std::path::absolute(t).ok())
        .map(|t| real(&t))
        .collect();
    let files: Vec<PathBuf> = brig_own_files(config).iter().map(|f| real(f)).collect();
    for (destination, source) in sources {
        if trees.iter().any(|t| overlaps(source, t)) || files.iter().any(|f| f.starts_with(source)) {
            // (Which of brig's paths is not said, as for root.path.)
            return Err(format!(
                "mount at `{destination}`: source `{}` is at, inside or above one of brig's own directories or \
                 files (tokens, keys, policies, attestations, the audit log, runtime state) or a runtime's state \
                 root: never a job's",
                source.display()
            ));
        }
    }
    Ok(())
}

/// Where a job's root filesystem may not be: at, inside or above one of
/// brig's own directories (its state, the attestations, the single-use token
/// records, tokens, policies, caches), of the profile's writable-mount
/// prefixes (`ceilings.writable_mounts`, where jobs write: a root filesystem
/// there would show the job another tenant's data without the mount decision
/// its bind would get), or of other runtimes' and the kubelet's state; nor
/// above the audit log, the keys or the configuration. Under a per-job user
/// namespace the idmapped root shows its root-owned files as the job's own.
/// (Anywhere else is the policy's to judge: `context.rootfs`.)
pub fn check_rootfs_location(
    rootfs: &Path,
    config: &Config,
    profile: &brig_profiles::model::Profile,
    writable: bool,
) -> Result<(), String> {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut trees = brig_own_trees(config);
    // Where jobs write (their outputs, other tenants' too): the profile's
    // writable-mount prefixes; for a writable root filesystem, its
    // read-only ones too (the job would write where it may only read; a
    // read-only root may well be an image kept there).
    let ceilings = &profile.ceilings;
    let readonly = if writable { &ceilings.readonly_mounts[..] } else { &[] };
    trees.extend(
        ceilings
            .writable_mounts
            .iter()
            .chain(readonly)
            .filter(|p| !p.trim_end_matches('/').is_empty())
            .map(PathBuf::from),
    );
    // Other runtimes' and orchestrators' state: runc state roots (Docker's,
    // containerd's), the kubelet's (pod secrets, its client key), etcd,
    // cron's spool (a writable root there would be a host crontab).
    trees.extend(
        [
            "/run/runc",
            "/run/docker/runtime-runc",
            "/run/containerd/runc",
            "/var/lib/kubelet",
            "/var/lib/etcd",
            "/var/spool",
        ]
        .map(PathBuf::from),
    );

    let files = brig_own_files(config);
    for tree in trees.iter().filter(|t| t.is_absolute()).map(|t| real(t)) {
        if overlaps(rootfs, &tree) {
            return Err(format!(
                "root.path `{}` is at, inside or above one of brig's own directories, another runtime's state, \
                 or the profile's job-data prefixes",
                rootfs.display()
            ));
        }
    }
    for file in files.iter().filter(|f| f.is_absolute()).map(|f| real(f)) {
        if file.starts_with(rootfs) {
            // (Which file is not said: the bundle's writer need not learn
            // where the keys are.)
            return Err(format!("root.path `{}` contains brig's configuration, keys or audit log", rootfs.display()));
        }
    }
    Ok(())
}

/// What a launch is, as the policy sees it: the profile in force, the
/// hardened spec and the context built from it.
#[derive(Debug)]
pub struct Described {
    pub profile: LoadedProfile,
    pub hardened: Hardened,
    pub context: brig_policy::LaunchContext,
}

/// Everything `create` does to a request before the decision (the token
/// aside): the profile it names or the default, the job's own asks, the
/// hardening (tightening and refusals), rlimits fitted to the host, the
/// context described from the final spec, with bind sources canonical and
/// host namespaces joined by path marked. `brig policy explain` and
/// `brig policy test` call this too, so what they decide is what `create`
/// decides. `state_root`: the one `create` keeps the job's state under
/// (never a mount's source either), if any.
pub fn describe(
    config: &Config,
    request: &LaunchRequest,
    host: &RealHost,
    state_root: Option<&Path>,
) -> Result<Described, LaunchError> {
    let name = request.annotation(annotation::PROFILE).unwrap_or_else(|| config.profiles.default.clone());
    let profile = ProfileSet::load_one(Some(&config.profiles.dir), &name)?;
    let asks = job_asks(request)?;
    let mut hardened = harden(&profile.profile, request.spec.clone(), &asks, host)?;
    // Writable as the job will have it (a profile may make it read-only).
    let writable = hardened.spec.root().as_ref().is_some_and(|r| !r.readonly().unwrap_or(false));
    check_rootfs_location(&request.rootfs, config, &profile.profile, writable).map_err(|message| {
        BundleError::Invalid { path: request.config_path.clone(), field: "root.path".into(), message }
    })?;
    crate::limits::fit_rlimits_to_host(&request.spec, &mut hardened, &crate::limits::own_hard_limit)
        .map_err(|e| LaunchError::Config(format!("profile `{}`: {e}", profile.profile.name)))?;
    let options = brig_policy::SpecOptions {
        default_profile: config.profiles.default.clone(),
        default_timeout_secs: hardened.plan.timeout.map(|t| t.as_secs()),
        image_name: None,
    };
    let mut context = brig_policy::LaunchContext::from_spec(&hardened.spec, &options)
        .map_err(|e| LaunchError::Describe(e.to_string()))?;
    context.canonicalize_sources();
    if confines_mounts(&profile.profile) {
        check_mount_sources(
            config,
            || runtime_state_trees().into_iter().chain(state_root.map(Path::to_path_buf)).collect(),
            context.mounts.iter().filter(|m| m.reaches_host()).map(|m| (m.destination.as_str(), m.source.as_str())),
        )
        .map_err(|message| BundleError::Invalid {
            path: request.config_path.clone(),
            field: "mounts".into(),
            message,
        })?;
    }
    // A namespace joined by path that is the host's own is a host namespace
    // to the policy as well (`{"type": "network", "path": "/proc/1/ns/net"}`
    // must not pass a `forbid` on `context.host_namespaces`, which lists only
    // the namespaces the spec leaves out).
    {
        use brig_profiles::Host;
        for ns in hardened.spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).into_iter().flatten() {
            let Some(path) = ns.path() else { continue };
            if host.is_host_namespace(ns.typ(), path) {
                if let Ok(serde_json::Value::String(name)) = serde_json::to_value(ns.typ()) {
                    context.host_namespaces.insert(name);
                }
            }
        }
    }
    Ok(Described { profile, hardened, context })
}

/// containerd's bundles, `<dir>/<namespace>/<id>` (Docker's `moby`,
/// Kubernetes' `k8s.io`, `ctr`'s `default`): the system containerd's, and
/// the one dockerd runs itself when there is none (Docker in Docker).
const TASK_BUNDLES: &[&str] =
    &["/run/containerd/io.containerd.runtime.v2.task", "/run/docker/containerd/daemon/io.containerd.runtime.v2.task"];
/// containerd's task directory under a state directory.
const TASK_DIR: &str = "io.containerd.runtime.v2.task";
/// Podman's (rootful): `<dir>/<id>/userdata`.
const PODMAN_BUNDLES: &[&str] =
    &["/var/lib/containers/storage/overlay-containers", "/run/containers/storage/overlay-containers"];

/// The id a policy may find in a mount's source as `{container}`
/// (`context.container_source`): `id`, when the bundle (as it was read,
/// links resolved) is the one a client keeps for that id, in its own layout:
/// containerd's task bundle (Docker and Kubernetes alike), Podman's
/// `userdata`, or either layout under a configured `[clients] state_dirs`
/// (`<dir>/io.containerd.runtime.v2.task/<namespace>/<id>`: k3s's
/// `/run/k3s/containerd`). Anywhere else, whoever writes the bundle also
/// picks the id, and could pick another container's to be given its `hosts`
/// or `resolv.conf`: then none, and no `container_source`.
pub fn client_container_id(bundle: &Path, id: &str, config: &Config) -> Option<String> {
    let name = bundle.file_name()?.to_str()?;
    let parent = bundle.parent()?;
    let configured: Vec<PathBuf> =
        config.clients.state_dirs.iter().filter_map(|d| std::fs::canonicalize(d).ok()).collect();
    let task_dirs = TASK_BUNDLES.iter().map(PathBuf::from).chain(configured.iter().map(|d| d.join(TASK_DIR)));
    let podman_dirs =
        PODMAN_BUNDLES.iter().map(PathBuf::from).chain(configured.iter().map(|d| d.join("overlay-containers")));
    let containerd = name == id && parent.parent().is_some_and(|p| task_dirs.clone().any(|d| p == d));
    let podman = name == "userdata"
        && parent.file_name().and_then(|n| n.to_str()) == Some(id)
        && parent.parent().is_some_and(|p| podman_dirs.clone().any(|d| p == d));
    (containerd || podman).then(|| id.to_string())
}

/// Runs the pipeline for `create` (and `run`) of `id` under `state_root`;
/// `policies` is what [`start_policy_loader`] started (without it, an
/// authorized launch is denied).
pub fn prepare(
    config: &Config,
    mut request: LaunchRequest,
    id: &str,
    state_root: &Path,
    policies: Option<brig_policy::PolicyLoader>,
) -> Result<Prepared, LaunchError> {
    let t0 = std::time::Instant::now();
    let us = |t: std::time::Instant| t.elapsed().as_micros() as u64;
    let credential = take_credential(&mut request.spec);
    let now = SystemTime::now();

    let host = RealHost::new(config);
    let Described { profile, hardened, mut context } =
        describe(config, &request, &host, Some(state_root)).map_err(|e| match config.auth.mode {
            AuthMode::Required => deny(config, id, None, e.to_string()),
            AuthMode::Off => e,
        })?;
    context.container_id = client_container_id(&request.bundle, id, config).unwrap_or_default();
    tracing::debug!(elapsed_us = us(t0), "hardened and described");

    let auth = match config.auth.mode {
        AuthMode::Off => {
            if let Err(e) = check_joined_owners(&BTreeMap::new(), &profile.profile) {
                return Err(deny(config, id, Some(&context), e));
            }
            let audit_record = audit(
                config,
                &brig_policy::AuditRecord::not_authorized(now, id, brig_policy::Action::Launch, Some(&context)),
            )?;
            AuthRecord {
                audit_record,
                mode: "off".into(),
                decision: "not-authorized".into(),
                policy_ids: vec![],
                identity: BTreeMap::new(),
                jti: None,
                // Kept: an exec is authorized on it if authorization is
                // required by then.
                context: Some(context.clone()),
            }
        }
        AuthMode::Required => {
            let Some(policies) = policies else {
                return Err(deny(config, id, Some(&context), "the policies were not loaded".into()));
            };
            let token = credential.resolve(&config.auth.token_dir).map_err(|e| deny(config, id, Some(&context), e))?;
            let Some(token) = token.as_deref() else {
                return Err(deny(
                    config,
                    id,
                    Some(&context),
                    "no token: set the `dev.brig.token` annotation (or `dev.brig.token-file`, or BRIG_TOKEN in the process environment)".into(),
                ));
            };
            let verifier = brig_policy::TokenVerifier::new(&config.auth)
                .map_err(|e| deny(config, id, Some(&context), format!("token verification is not available: {e}")))?;
            // The single-use record is flushed after the audit record (below):
            // one disk flush covers both on a journaling filesystem.
            let (verified, jti_record) = verifier
                .verify_for_launch_deferred(token, now, id)
                .map_err(|e| deny(config, id, Some(&context), format!("token refused: {e}")))?;
            tracing::debug!(elapsed_us = us(t0), "token verified");
            if let Err(e) = check_joined_owners(&identity_of(&verified), &profile.profile) {
                return Err(deny(config, id, Some(&context), e));
            }
            let policies = policies
                .finish()
                .map_err(|e| deny(config, id, Some(&context), format!("the launch policies cannot be used: {e}")))?;
            tracing::debug!(elapsed_us = us(t0), "policies loaded");
            let decision = brig_policy::authorize(&policies, &verified, brig_policy::Action::Launch, &context);
            tracing::debug!(elapsed_us = us(t0), "decided");
            let audit_record = audit(
                config,
                &brig_policy::AuditRecord::from_decision(
                    now,
                    id,
                    brig_policy::Action::Launch,
                    &decision,
                    &verified,
                    &context,
                ),
            )?;
            jti_record
                .commit()
                .map_err(|e| deny(config, id, Some(&context), format!("recording the token as used: {e}")))?;
            tracing::debug!(elapsed_us = us(t0), "decision and token use recorded");
            if !decision.allowed {
                return Err(LaunchError::Unauthorized(decision.reason));
            }
            AuthRecord {
                audit_record,
                mode: "required".into(),
                decision: "allow".into(),
                policy_ids: decision.determining_policies.clone(),
                identity: identity_of(&verified),
                jti: verified.jti.clone(),
                context: Some(context),
            }
        }
    };

    let userns_pool = config.user_namespace.pool().map_err(|e| LaunchError::Config(e.to_string()))?;
    let measurements = match &config.attest {
        Some(settings) => Some(crate::attestation::measure(settings, &request, &hardened.spec)?),
        None => None,
    };
    Ok(Prepared { request, hardened, profile, auth, userns_pool, measurements })
}

/// A namespace the spec joins by path in which jobs of another principal are
/// registered is refused (crate::nsowner): a tenant never joins another
/// tenant's IPC, network or mount namespace. Checked again after the build.
/// Nor one no brig job is in but another process is (a runc container's, a
/// daemon's), unless `profile` lets the job share the host's.
pub fn check_joined_owners(
    identity: &BTreeMap<String, String>,
    profile: &brig_profiles::Profile,
) -> Result<(), String> {
    crate::nsowner::check_joined(&crate::nspin::pinned(), identity, |typ| {
        brig_profiles::harden::shares_host_namespace(profile, typ)
    })
}

/// The token's identity for records (never the token).
pub fn identity_of(t: &brig_policy::VerifiedToken) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("iss".to_string(), t.issuer.clone());
    m.insert("sub".to_string(), t.subject.clone());
    if let Some(j) = &t.jti {
        m.insert("jti".to_string(), j.clone());
    }
    if let Some(tenant) = &t.tenant {
        m.insert("tenant".to_string(), tenant.clone());
    }
    m
}

impl Prepared {
    /// The run record saved with the container.
    pub fn record(&self, id: &str, cgroup_path: &Path) -> RunRecord {
        let spec = &self.hardened.spec;
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .iter()
            .map(|n| n.typ().to_string())
            .collect();
        RunRecord {
            id: id.to_string(),
            bundle: self.request.bundle.clone(),
            rootfs: self.request.rootfs.clone(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            profile: ProfileRef {
                name: self.profile.profile.name.clone(),
                digest: self.profile.digest.clone(),
                origin: self.profile.origin.to_string(),
            },
            auth: self.auth.clone(),
            tightened: self.hardened.tightened.clone(),
            plan: self.hardened.plan.clone(),
            cgroup_path: cgroup_path.to_path_buf(),
            spec_seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()).is_some(),
            namespaces,
            image_digest: self.request.annotation(annotation::IMAGE_DIGEST),
            cgroup_ceiling: self.profile.profile.cgroup.clone(),
            cap_ceiling: self.profile.profile.ceilings.capabilities.clone(),
            devices_allowed: self.profile.profile.ceilings.devices,
            userns: None,
            init_start: None,
            measurements: self.measurements.clone(),
            memfd_noexec: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_token_in_place_of_a_token_file_name_is_never_shown() {
        let token = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsifQ.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLWJ5dGVz";
        assert!(looks_like_a_token(token) && looks_like_a_token(&format!("{token}\n")));
        let e = read_token_file(Path::new("/nonexistent"), token).unwrap_err();
        assert!(e.contains("is a token, not a file name") && !e.contains("eyJ"), "{e}");
        for name in ["job-a.jwt", "/run/brig-tokens/x.y.z", "eyJ.only-two", "sub/eyJa.b.c"] {
            assert!(!looks_like_a_token(name), "{name}");
        }
        // A token that is not exactly one (a fourth part, a space, a line
        // break) is not shown either, nor is any part of it.
        let header_and_claims = &token[..token.rfind('.').unwrap()];
        for near in
            [format!("{token}.x"), token.replacen('.', " .", 1), format!("x\n{token}"), format!("{header_and_claims}.")]
        {
            let e = read_token_file(Path::new("/nonexistent"), &near).unwrap_err();
            assert!(!e.contains("eyJ") && !e.contains("c2lnbmF0dXJl") && e.contains("not shown"), "{e}");
        }
        // Names a file is given are shown: paths, hex digests, UUIDs.
        for name in [
            "/var/lib/kubelet/pods/0f8e6c1e-8a4b-4f5e-9c1d-2b3a4c5d6e7f/volumes/kubernetes.io~projected/token/token",
            "job-5f2c9a4b8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b.jwt",
        ] {
            let e = read_token_file(Path::new("/nonexistent"), name).unwrap_err();
            assert!(e.contains(name), "{e}");
        }
        // Any other name is shown escaped and bounded.
        let e = read_token_file(Path::new("/nonexistent"), &format!("a\u{1b}[2J{}", "x".repeat(500))).unwrap_err();
        assert!(!e.contains('\u{1b}') && e.contains("\\u{1b}") && e.len() < 400, "{e}");
    }

    #[test]
    fn token_is_removed_from_annotations_and_env() {
        let mut s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "annotations": {"dev.brig.token": "secret.jwt.here", "keep": "me"},
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                        "env": ["PATH=/bin", "BRIG_TOKEN=other.jwt.value"]}
        }));
        let c = take_credential(&mut s);
        assert_eq!(c.token.as_deref(), Some("secret.jwt.here"));
        assert_eq!(c.source, "annotation");
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains("secret.jwt.here") && !text.contains("other.jwt.value"), "{text}");
        assert!(text.contains("keep"));
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn token_from_env_when_no_annotation() {
        let mut s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}, "env": ["BRIG_TOKEN=abc"]}
        }));
        let c = take_credential(&mut s);
        assert_eq!((c.token.as_deref(), c.source), (Some("abc"), "environment"));
        assert!(s.process().as_ref().unwrap().env().as_ref().unwrap().is_empty());
        // Twice: the first, as getenv(3) and `exec` read it; both removed.
        let mut s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                        "env": ["BRIG_TOKEN=first", "A=1", "BRIG_TOKEN=second"]}
        }));
        assert_eq!(take_credential(&mut s).token.as_deref(), Some("first"));
        assert_eq!(s.process().as_ref().unwrap().env().as_ref().unwrap(), &["A=1".to_string()]);
    }
}
