//! The runc lifecycle: create, start, state, kill, delete, run.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{SigSet, Signal as NixSignal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::Serialize;

use crate::bundle::LaunchRequest;
use crate::cgroup;
use crate::cli::{CreateOpts, GlobalOpts};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pipeline::{self, Prepared};
use crate::state::{self, RunRecord, StateRoot, SupervisorStatus, PLAN_FILE, STATUS_FILE};
use crate::supervisor::{encode_plan, Handover};

/// Opens the state root for a command that reads existing containers.
pub fn state_root(g: &GlobalOpts) -> Result<StateRoot> {
    let mut root = StateRoot::new(g.root.as_deref());
    root.ensure().map_err(|e| match g.root.is_none() && crate::rootless::is_rootless() {
        true => {
            Error::Usage(format!("state root `{}`: {e} ({})", root.path.display(), crate::rootless::state_root_hint()))
        }
        false => Error::io("state root", root.path.clone(), e),
    })?;
    Ok(root)
}

/// Loads a container's libcontainer state.
pub fn load(root: &StateRoot, id: &str) -> Result<Container> {
    state::validate_id(id)?;
    let dir = root.container_dir(id);
    if !dir.join("state.json").exists() {
        return Err(Error::NotFound(id.to_string()));
    }
    let mut c = Container::load(dir.clone()).map_err(|e| Error::container(id, e))?;
    // A pid that now belongs to a process started after the container's
    // init (the init died, the pid was reused) is not the container's: it
    // is forgotten, so the container reads as stopped and nothing signals,
    // joins or kills that process.
    if let (Some(pid), Ok(record)) = (c.pid(), RunRecord::load(&dir)) {
        if let (Some(recorded), Some(now)) = (record.init_start, state::process_start_ticks(pid.as_raw())) {
            if recorded != now {
                tracing::warn!(
                    id,
                    pid = pid.as_raw(),
                    "the init's pid now belongs to another process: the container is stopped"
                );
                c.state.pid = None;
            }
        }
    }
    c.refresh_status().map_err(|e| Error::container(id, e))?;
    // A create still in progress (its staging lock held, no init yet, or a
    // hook running) is "creating", not a stopped container. (Container::load
    // refreshed the status: the one on disk is read again, only here.)
    if c.status() == ContainerStatus::Stopped
        && root.staging_lock(id).exists()
        && libcontainer::container::State::load(&dir).is_ok_and(|s| s.status == ContainerStatus::Creating)
    {
        c.set_status(ContainerStatus::Creating);
    }
    Ok(c)
}

fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// `create`: the pipeline, then libcontainer, then brig's files.
pub fn create(g: &GlobalOpts, id: &str, opts: &CreateOpts) -> Result<Container> {
    create_with(g, id, opts, false).map(|(container, _)| container)
}

/// `create`; with `own_terminal` (a foreground `run`), a terminal the spec
/// asks for without a console socket is brig's to relay (crate::console):
/// the listener its master was sent to comes back with the container.
fn create_with(
    g: &GlobalOpts,
    id: &str,
    opts: &CreateOpts,
    own_terminal: bool,
) -> Result<(Container, Option<crate::console::ConsoleListener>)> {
    state::validate_new_id(id)?;
    // A pid file that cannot be written fails the create, as with runc
    // (libcontainer only warns; containerd then reads no pid).
    if let Some(pid_file) = &opts.pid_file {
        let dir = pid_file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "--pid-file `{}`: the directory `{}` does not exist",
                pid_file.display(),
                dir.display()
            )));
        }
    }
    let root = state_root(g)?;
    if root.container_dir(id).exists() {
        return Err(Error::Exists(id.to_string()));
    }
    let t0 = Instant::now();
    let config = Config::load(&Config::locate(g.config.as_deref()))?;
    let caller = crate::rootless::Caller::detect();
    // The policy set loads on another thread while this one reads the
    // bundle and prepares; rootless, only after the rootless adaptation,
    // which changes the process environment (`set_var` needs a single
    // thread).
    let mut policies = match caller.is_rootless() {
        true => None,
        false => pipeline::start_policy_loader(&config),
    };
    let mut request = LaunchRequest::read(&opts.bundle)?;
    if let Some(process) = request.spec.process() {
        crate::host::check_apparmor(process).map_err(|message| {
            Error::Bundle(crate::bundle::BundleError::Invalid {
                path: request.config_path.clone(),
                field: "process.apparmorProfile".into(),
                message,
            })
        })?;
    }
    tracing::debug!(elapsed_us = t0.elapsed().as_micros() as u64, "config and bundle read");
    // brig's state root (other containers' state, their idmapped roots) is
    // never a job's root filesystem; the configured directories are checked
    // with the profile (pipeline::check_rootfs_location).
    // Nor any other state root a job of brig's lives under (a platform's
    // per-tenant roots, Docker's, containerd's): through it a job would read
    // other jobs' specs and records and reach their sockets (start another
    // tenant's created job through its notify socket).
    // Nor may this state root lie in a running job's root filesystem (a job
    // rooted in a state root before any job of it lived). Checked again when
    // the job registers, under the registry's lock (crate::nsowner).
    let own = std::fs::canonicalize(&root.path).unwrap_or_else(|_| root.path.clone());
    if pipeline::overlaps(&request.rootfs, &own) {
        return Err(Error::Usage(format!(
            "{}: root.path `{}` is at, inside or above brig's state directory `{}`",
            request.config_path.display(),
            request.rootfs.display(),
            own.display()
        )));
    }
    crate::nsowner::check_apart(&root.path, id, &request.rootfs)
        .map_err(|e| Error::Usage(format!("{}: {e}", request.config_path.display())))?;
    let wants_terminal = request.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    let mut console = None;
    let with_console;
    let opts = match own_terminal && wants_terminal && opts.console_socket.is_none() {
        true => {
            let listener = crate::console::ConsoleListener::new()
                .map_err(|e| Error::state(id, format!("making the socket for the job's terminal: {e}")))?;
            with_console = CreateOpts { console_socket: Some(listener.path().to_path_buf()), ..opts.clone() };
            if let (Some(size), Some(process)) = (crate::console::caller_size(), request.spec.process_mut()) {
                process.set_console_size(Some(size));
            }
            console = Some(listener);
            &with_console
        }
        false => opts,
    };
    // Rootless: the job's own network namespace and user namespace (over the
    // user's subordinate IDs) before the pipeline sees the spec.
    let rootless = match caller.is_rootless() {
        true => {
            let adapted = crate::rootless::adapt_request(&caller, &mut request.spec)
                .map_err(|e| Error::state(id, e.to_string()))?;
            policies = pipeline::start_policy_loader(&config);
            Some(adapted)
        }
        false => None,
    };
    // Every namespace the spec joins by path is opened now, once: what is
    // checked from here on is what the job joins (crate::nspin).
    crate::nspin::pin(id, &request.spec)?;
    let prepared = pipeline::prepare(&config, request, id, &own, policies)?;
    tracing::debug!(elapsed_us = t0.elapsed().as_micros() as u64, "pipeline done");
    tracing::info!(
        id,
        profile = prepared.profile.profile.name.as_str(),
        tightened = prepared.hardened.tightened.len(),
        "launch prepared"
    );
    // Fault injection for the test of the pinned root filesystem
    // (tests/tests/attacks.rs): `root.path` exchanged with its sibling `alt`
    // (a link elsewhere) once every check has passed.
    if std::env::var_os("BRIG_TEST_FAULT").is_some_and(|v| v == "swap-rootfs-after-checks") {
        let alt = prepared.request.rootfs.with_file_name("alt");
        let _ =
            nix::fcntl::renameat2(None, &prepared.request.rootfs, None, &alt, nix::fcntl::RenameFlags::RENAME_EXCHANGE);
    }
    launch(&root, id, &prepared, opts, g, rootless.as_ref()).map(|c| (c, console))
}

fn launch(
    root: &StateRoot,
    id: &str,
    prepared: &Prepared,
    opts: &CreateOpts,
    g: &GlobalOpts,
    rootless: Option<&crate::rootless::Adapted>,
) -> Result<Container> {
    let staging = root
        .stage(id)
        .map_err(|e| Error::io("staging the create in", root.path.join(".staging"), e))?
        .ok_or_else(|| Error::Exists(id.to_string()))?;

    let mut spec = prepared.hardened.spec.clone();
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let requested = linux.cgroups_path().clone().map(|p| {
        let s = p.to_string_lossy().to_string();
        match cgroup::systemd_to_cgroupfs(&s) {
            // `--systemd-cgroup` style paths, on a host without systemd.
            Some(converted) if !systemd_running() => PathBuf::from(converted),
            _ => p,
        }
    });
    // No `.` or `..` in a requested path, rootless too: libcgroups joins it
    // as it is, and the delegation checks below resolve it on the real
    // filesystem (a `..` could leave cgroupfs for a directory the user made).
    if let Some(why) = requested.as_deref().and_then(cgroup::refuse_dot_components) {
        return Err(Error::state(id, format!("refusing linux.cgroupsPath: {why}")));
    }
    // Rootless: the job's cgroup must be in a subtree delegated to the user
    // (refused here, naming what is missing, when the job needs limits).
    let rootless_cgroup = match rootless {
        Some(a) => Some(
            crate::rootless::plan_cgroup(
                &a.caller,
                id,
                requested.clone(),
                linux.resources().as_ref(),
                &prepared.profile.profile,
            )
            .map_err(|e| Error::state(id, e.to_string()))?,
        ),
        None => None,
    };
    if let Some(note) = rootless_cgroup.as_ref().and_then(|p| p.note.as_ref()) {
        tracing::warn!(id, "{note}");
    }
    let asked_for = requested.is_some();
    let mut cgroup_path = match (&rootless_cgroup, requested) {
        (Some(plan), _) => plan.path.clone(),
        (None, Some(p)) => {
            if let Some(why) = cgroup::refuse_requested(&p, id) {
                return Err(Error::state(id, format!("refusing linux.cgroupsPath: {why}")));
            }
            p
        }
        (None, None) => cgroup::default_path(id, &root.path),
    };
    // The cgroup is this container's until it is deleted: not one a stopped
    // container still holds (crate::cgclaim). A rootless job's is in its
    // user's delegated subtree, which the kernel keeps other users out of.
    let mut cgroup_claim = None;
    if rootless.is_none() {
        let registry = Path::new(crate::cgclaim::REGISTRY_DIR);
        let owner = root.container_dir(id);
        let mut claimed = crate::cgclaim::claim(registry, &cgroup_path, &owner);
        if !asked_for && matches!(claimed, Err(crate::cgclaim::ClaimError::Held { .. })) {
            // `/brig/<id>` taken meanwhile by a job of that id under another root.
            cgroup_path = cgroup::root_scoped_path(id, &root.path);
            claimed = crate::cgclaim::claim(registry, &cgroup_path, &owner);
        }
        let what = if asked_for { "refusing linux.cgroupsPath" } else { "the job's cgroup" };
        let made = claimed.map_err(|e| Error::state(id, format!("{what}: {e}")))?;
        // Only a claim this create made is given up if it fails: a second
        // create of a live container must not free the first one's.
        cgroup_claim = Some(ReleaseClaim { cgroup: cgroup_path.clone(), owner, armed: made });
    }
    if g.systemd_cgroup && systemd_running() {
        tracing::warn!("--systemd-cgroup: brig manages cgroups through cgroupfs");
    }
    linux.set_cgroups_path(Some(cgroup_path.clone()));
    let io_weight = cgroup::take_v2_io_weight(linux);
    let mut userns_guard = None;
    // A rootless job's user namespace is the one `rootless::adapt_request`
    // gave it (or the caller's): no allocated range, no idmapped rootfs.
    // A job that joins a per-job user namespace by path is a member of that
    // job's pod: it joins through `setup_userns`, which keeps the range held
    // while it lives. Joined directly, the range would go back to the pool
    // with its first job and be handed to another job, maybe another
    // tenant's, while this one still runs with its IDs.
    let mut per_job_userns = prepared.hardened.plan.per_job_userns;
    if rootless.is_none() && !per_job_userns {
        let per_job_profile =
            prepared.profile.profile.user_namespace.mode == brig_profiles::model::UserNamespaceMode::PerJob;
        per_job_userns = joins_a_per_job_userns(
            root,
            id,
            &spec,
            (per_job_profile, &prepared.profile.profile.name),
            prepared.userns_pool,
        )?;
        if !per_job_userns {
            check_spec_mappings(id, &spec, prepared.userns_pool, per_job_profile)?;
        }
    }
    if per_job_userns && rootless.is_none() {
        let loopback_only = prepared
            .hardened
            .plan
            .egress
            .as_ref()
            .is_some_and(|e| e.policy == brig_profiles::egress::Policy::LoopbackOnly);
        let guard = setup_userns(
            root,
            id,
            &mut spec,
            prepared.userns_pool,
            loopback_only,
            &prepared.auth.identity,
            prepared.request.rootfs_identity,
        )?;
        if let Some(process) = spec.process() {
            check_ids_in_range(process, guard.record.size).map_err(|e| Error::state(id, e))?;
            hand_stdio_to(guard.record.host_base.saturating_add(process.user().uid()));
        }
        userns_guard = Some(guard);
    }

    let config_json =
        serde_json::to_vec(&spec).map_err(|e| Error::state(id, format!("encoding the effective spec: {e}")))?;
    // What libcontainer reads: without `linux.resources` when brig writes a
    // rootless job's limits itself (cgroup v1) or there is no delegated cgroup.
    // And with the user namespace prepared for a per-job one (never both:
    // a rootless job has no per-job user namespace).
    let encode = |s: &oci_spec::runtime::Spec| {
        serde_json::to_vec(s).map_err(|e| Error::state(id, format!("encoding the effective spec: {e}")))
    };
    let job_userns = userns_guard.as_ref().and_then(|g| g.job_userns.as_ref());
    // libcontainer joins the namespaces the spec names through the
    // descriptors `create` opened and checked (crate::nspin).
    let mut lc_spec = spec.clone();
    // What the job's init must find once everything is mounted
    // (crate::maskcheck::verify_expected_mounts): the root filesystem that
    // was checked (not when its overlay was rebuilt from idmapped layers: a
    // new mount), and each measured input and output.
    {
        let rebuilt = userns_guard.as_ref().is_some_and(|g| g.record.layers.is_some());
        let mut expected: Vec<(String, u64, u64)> = Vec::new();
        if !rebuilt {
            // The directory the checks judged (crate::bundle), not whatever
            // the path names now.
            let (dev, ino) = prepared.request.rootfs_identity;
            expected.push(("/".into(), dev, ino));
        }
        expected.extend(prepared.measurements.iter().flat_map(|m| m.identities.iter().cloned()));
        let text: Vec<String> = expected.iter().map(|(p, dev, ino)| format!("{dev} {ino} {p}")).collect();
        lc_spec
            .annotations_mut()
            .get_or_insert_with(Default::default)
            .insert(libcontainer::rootfs::EXPECT_MOUNTS_ANNOTATION.into(), text.join("\n"));
    }
    let mut pinned_joins = crate::nspin::for_libcontainer(id, &mut lc_spec)?;
    if job_userns.is_some() {
        // The per-job user namespace takes the place of any the spec named.
        pinned_joins.retain(|(typ, _)| *typ != oci_spec::runtime::LinuxNamespaceType::User);
    }
    let libcontainer_json = match (&rootless_cgroup, job_userns) {
        (Some(plan), _) if plan.strip_resources => {
            if let Some(l) = lc_spec.linux_mut() {
                l.set_resources(None);
            }
            encode(&lc_spec)?
        }
        (_, Some(userns)) => encode(&join_prepared_userns(&lc_spec, userns))?,
        // Always libcontainer's own copy: it carries what the init must find
        // (the expected mounts), which brig's copy does not.
        _ => encode(&lc_spec)?,
    };
    state::write_atomic(&staging.dir.join(state::SPEC_FILE), &libcontainer_json, 0o600)
        .map_err(|e| Error::io("writing", staging.dir.join(state::SPEC_FILE), e))?;

    tracing::debug!("effective spec staged");
    let plan = encode_plan(&prepared.hardened.plan);
    let status_path = staging.dir.join(STATUS_FILE);
    let mut handover = Handover::for_init(&plan, &status_path)
        .map_err(|e| Error::io("preparing the supervisor for", &staging.dir, e))?;
    handover.set_memfd_noexec = prepared.hardened.plan.memfd_noexec && rootless.is_none();
    let early_init = handover.early_init.clone();

    let builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(&root.path)
        .map_err(|e| Error::container(id, e))?
        .with_console_socket(opts.console_socket.as_ref())
        .with_preserved_fds(opts.preserve_fds)
        .with_executor(handover.executor())
        .as_init(&staging.dir)
        .with_oci_bundle(&prepared.request.bundle)
        .with_systemd(false)
        .with_detach(true)
        .with_no_pivot(opts.no_pivot);
    // Rootless cgroup v1: the job's cgroups and limits exist before its
    // processes do (removed again if the launch fails).
    let mut rootless_cgroup_guard = None;
    if let Some(plan) = rootless_cgroup.as_ref().filter(|p| p.brig_writes_limits) {
        rootless_cgroup_guard = Some(RemoveCgroup(Some(plan.path.clone())));
        let resources = spec.linux().as_ref().and_then(|l| l.resources().clone()).unwrap_or_default();
        crate::rootless::apply_v1(&plan.path, &resources).map_err(|e| Error::state(id, e.to_string()))?;
    }
    if std::env::var_os("BRIG_TEST_FAULT").is_some_and(|v| v == "swap-namespace-links") {
        crate::nspin::swap_links_for_test();
    }
    tracing::debug!("handover prepared, building");
    let reused = root.reuse_container_dir(id);
    let mut container = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            // libcontainer removes what it made on most failures; a reused
            // directory it never got to is still empty.
            let dir = root.container_dir(id);
            if reused && std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none()) {
                let _ = root.retire_container_dir(&dir);
            } else if left_before_its_init(&dir) {
                // A failure before the init existed (a console socket that
                // cannot be reached): libcontainer left its state, which no
                // `delete` could load, and the id would stay taken.
                let _ = root.retire_container_dir(&dir);
            }
            return Err(Error::container(id, e));
        }
    };
    tracing::debug!("container built");
    // The process that made the job's user namespace exited meanwhile.
    if let Some(holder) = userns_guard.as_mut().and_then(|g| g.holder.take()) {
        if let Err(e) = holder.release() {
            tracing::warn!(id, "{e}");
        }
    }
    drop(handover);

    // Everything after the build: any failure removes the container (its
    // init, cgroup, state, egress rules, registered namespaces) before the
    // guards release its range and cgroups, so nothing is left half-made.
    let finished = (|| -> Result<()> {
        // Fault injection for the test of this clean-up (tests/tests/userns.rs).
        if std::env::var_os("BRIG_TEST_FAULT").is_some_and(|v| v == "after-build") {
            return Err(Error::state(id, "fault injected after the build (BRIG_TEST_FAULT)"));
        }
        let init = container.pid().map(|p| p.as_raw()).unwrap_or(0);
        crate::nspin::check_joined(id, init, &pinned_joins)?;
        // The pid file is brig's to write, as runc writes it (libcontainer's
        // followed a link at the path).
        if let Some(pid_file) = &opts.pid_file {
            state::write_pid_file(pid_file, init).map_err(|e| Error::io("writing the pid file", pid_file, e))?;
        }
        if let Some(membership) = userns_guard.as_ref().and_then(|g| g.record.pod.as_ref()) {
            crate::pod::check_joined(id, init, membership)?;
        }
        // The run record, then the job's namespaces in the registry, at once:
        // until it is registered, a job of another principal could join what
        // it made (crate::nsowner). A rootless job's namespaces are its
        // user's, which the kernel keeps other users out of.
        let dir = root.container_dir(id);
        let mut record = prepared.record(id, &cgroup_path);
        // The init's start time as read when its pid was reported (the same
        // process: libcontainer's build waited for it), else now.
        let early =
            early_init.as_ref().and_then(|cell| cell.get()).filter(|e| e.init == init && e.start_ticks.is_some());
        record.init_start = match early {
            Some(e) => e.start_ticks,
            None => container.pid().and_then(|p| state::process_start_ticks(p.as_raw())),
        };
        if let Some(guard) = userns_guard.as_mut() {
            record.userns = Some(guard.record.clone());
        }
        // The root filesystem's change stamp for the attestation, now that
        // libcontainer has made its mount points there and before the job
        // starts (docs/attestation.md). Not for a writable one: the job's
        // own writes would read as changes.
        let readonly = spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
        if let Some(m) = record.measurements.as_mut().filter(|_| readonly) {
            match brig_attest::change_stamp(&record.rootfs, &brig_attest::Limits::ROOTFS) {
                Ok(stamp) => m.rootfs_stamp = Some(stamp),
                Err(e) => {
                    tracing::warn!(id, "the root filesystem's change stamp: {e} (rootfs-unchanged will be unknown)")
                }
            }
        }
        // Before the job starts, and before its namespaces are registered
        // (nothing else can join them yet).
        if record.plan.memfd_noexec {
            let failed = |e: String| Error::state(id, format!("process.memfd_noexec: setting vm.memfd_noexec: {e}"));
            // Set while libcontainer built the container, in this init's pid
            // namespace (crate::supervisor::EarlyInit); else now.
            // (`early` is this init's: its start time is the one recorded.)
            let early = early.and_then(|e| e.memfd_noexec.clone());
            let outcome = match (rootless, early) {
                (Some(_), _) => crate::memfd::Outcome::Rootless,
                (None, Some(outcome)) => outcome.map_err(failed)?,
                (None, None) => crate::memfd::enforce(init, record.init_start).map_err(|e| failed(e.to_string()))?,
            };
            if outcome == crate::memfd::Outcome::Rootless {
                tracing::warn!(id, "process.memfd_noexec: {}", outcome.as_str());
            }
            record.memfd_noexec = Some(outcome.as_str().to_string());
        }
        record.save(&dir).map_err(|e| Error::io("writing", dir.join(state::RECORD_FILE), e))?;
        if rootless.is_none() {
            crate::nsowner::register(
                &root.path,
                id,
                (init, &prepared.request.rootfs),
                &dir,
                &record.auth.identity,
                &crate::nspin::pinned(),
                |typ| brig_profiles::harden::shares_host_namespace(&prepared.profile.profile, typ),
            )
            .map_err(|e| Error::state(id, format!("linux.namespaces: {e}")))?;
        }

        // The egress rules go into the job's network namespace now: the init (and
        // the client's network, set up by its hooks) exists, the job has not
        // started. A failure removes the container (docs/egress.md).
        if let Some(plan) = &prepared.hardened.plan.egress {
            let installed = match rootless.filter(|a| a.caller.mode == crate::rootless::Mode::Unprivileged) {
                Some(_) if crate::egress::hooks_after_create(&spec) => {
                    Err("a startContainer or poststart hook may add a network interface after create, and rootless \
                     brig cannot install nftables rules"
                        .to_string())
                }
                Some(_) => crate::rootless::check_private_network(&dir, init, plan),
                None => crate::egress::install(
                    &dir,
                    id,
                    init,
                    plan,
                    crate::egress::new_and_untouched(&spec),
                    crate::egress::hooks_after_create(&spec),
                )
                .map_err(|e| e.to_string()),
            };
            installed.map_err(|e| Error::state(id, format!("installing the egress rules: {e}")))?;
        }

        // libcontainer's bundle is brig's copy of the effective spec (see
        // state::SPEC_FILE); `brig state` shows the caller's bundle.
        state::write_atomic(&dir.join(state::SPEC_FILE), &config_json, 0o600)
            .map_err(|e| Error::io("writing", dir.join(state::SPEC_FILE), e))?;
        container.state.bundle = dir.clone();
        container.save().map_err(|e| Error::container(id, e))?;
        let own_cgroup = rootless_cgroup.as_ref().is_none_or(|p| p.delegated);
        if let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()).filter(|_| own_cgroup) {
            cgroup::apply_fixups(&cgroup_path, resources, io_weight)
                .map_err(|e| Error::state(id, format!("cgroup: {e}")))?;
        }
        if let (Some(a), Some(plan)) = (rootless, &rootless_cgroup) {
            crate::rootless::RootlessRecord::new(a, plan)
                .save(&dir)
                .map_err(|e| Error::io("writing", dir.join(crate::rootless::RECORD_FILE), e))?;
        }

        std::fs::rename(&status_path, dir.join(STATUS_FILE)).map_err(|e| Error::io("moving", &status_path, e))?;
        state::write_atomic(&dir.join(PLAN_FILE), &plan, 0o600)
            .map_err(|e| Error::io("writing", dir.join(PLAN_FILE), e))?;
        Ok(())
    })();
    if let Err(e) = finished {
        let dir = root.container_dir(id);
        crate::egress::teardown(&dir);
        crate::nsowner::unregister(&root.path, id, &dir);
        if let Err(d) = container.delete(true) {
            tracing::warn!(id, "removing the half-created container: {d}");
        }
        return Err(e);
    }
    if let Some(guard) = userns_guard.as_mut() {
        guard.armed = false;
    }
    if let Some(guard) = rootless_cgroup_guard.as_mut() {
        guard.0 = None;
    }
    if let Some(claim) = cgroup_claim.as_mut() {
        claim.armed = false;
    }
    Ok(container)
}

/// Gives up a cgroup claim when dropped (a failed create), unless disarmed.
struct ReleaseClaim {
    cgroup: PathBuf,
    owner: PathBuf,
    armed: bool,
}

impl Drop for ReleaseClaim {
    fn drop(&mut self) {
        if self.armed {
            crate::cgclaim::release(Path::new(crate::cgclaim::REGISTRY_DIR), &self.cgroup, &self.owner);
        }
    }
}

/// Removes a cgroup brig created when dropped, unless disarmed.
struct RemoveCgroup(Option<PathBuf>);

impl Drop for RemoveCgroup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = cgroup::remove(&p);
        }
    }
}

/// Undoes a per-job user namespace setup unless the launch succeeded.
struct UsernsGuard {
    allocator: crate::userns::Allocator,
    root: PathBuf,
    id: String,
    record: state::UsernsRecord,
    /// The user namespace made for the idmapped rootfs, which the job joins
    /// (none when it joins its pod's). Held open until the job is in it.
    job_userns: Option<OwnedFd>,
    /// The process that made `job_userns`, exiting; reaped when the launch is
    /// done with the guard (or when it is dropped).
    holder: Option<crate::idmap::UsernsHolder>,
    armed: bool,
}

impl Drop for UsernsGuard {
    fn drop(&mut self) {
        if self.armed {
            release_userns(&self.allocator, &self.root, &self.id, &self.record);
        }
    }
}

fn release_userns(allocator: &crate::userns::Allocator, root: &Path, id: &str, rec: &state::UsernsRecord) {
    if let Err(e) = crate::idmap::unmount(&rec.rootfs_mount) {
        tracing::warn!(id, mount = %rec.rootfs_mount.display(), "unmounting the idmapped rootfs: {e}");
    }
    let _ = std::fs::remove_dir(&rec.rootfs_mount);
    // The writable bind directories handed to the range's root go back to
    // root when the allocator frees the range (`Allocator::record_handed`).
    if let Some(binds) = &rec.binds {
        remove_staged_binds(binds);
    }
    if let Some(layers) = &rec.layers {
        remove_staged_binds(layers);
    }
    allocator.release(rec.slot, root, id);
}

/// Makes `mount` (in `ROOTFS_MOUNT_DIR`) ready to take a job's root
/// filesystem; the lock returned is held until it is mounted.
fn prepare_rootfs_mountpoint(mount: &Path) -> Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    use std::os::unix::fs::DirBuilderExt;
    // The job's root (an unprivileged host ID under a per-job user
    // namespace) must traverse the path to its rootfs during setup: 0711, no
    // listing. The state root is 0700.
    let parent = Path::new(ROOTFS_MOUNT_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(parent)
        .map_err(|e| Error::io("creating", parent, e))?;
    let lock = rootfs_mount_parent_on_tmpfs(parent).map_err(|e| Error::io("preparing", parent, e))?;
    mkdir_traversable(mount)?;
    Ok(lock)
}

/// Creates the directory `p` with mode 0711 (traversable, not listable);
/// one already there is fine.
fn mkdir_traversable(p: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o711)
        .create(p)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(e),
        })
        .map_err(|e| Error::io("creating", p, e))
}

/// The directory `create` checked (crate::bundle), by descriptor: a link
/// put at its path since (to a host directory the checks refuse) is never
/// followed, and another directory there is refused.
fn open_checked_rootfs(id: &str, rootfs: &Path, identity: (u64, u64)) -> Result<OwnedFd> {
    let (fd, found) = crate::bundle::open_no_symlinks(rootfs)
        .and_then(|fd| crate::bundle::dir_identity(&fd).map(|found| (fd, found)))
        .map_err(|e| Error::state(id, format!("root.path `{}` changed since it was checked: {e}", rootfs.display())))?;
    if found != identity {
        return Err(Error::state(
            id,
            format!("root.path `{}` is no longer the directory that was checked", rootfs.display()),
        ));
    }
    Ok(fd)
}

/// A new user namespace cannot mount sysfs for a network namespace it does not
/// own (Podman and Kubernetes create the network namespace first, as host
/// root). As runc does, bind the host's /sys read-only instead; the profile's
/// masked paths still apply.
fn sysfs_for_joined_netns(spec: &mut oci_spec::runtime::Spec) {
    use oci_spec::runtime::LinuxNamespaceType;
    let joined = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network && n.path().is_some()));
    if !joined {
        return;
    }
    if let Some(mounts) = spec.mounts_mut() {
        for m in mounts.iter_mut().filter(|m| m.typ().as_deref() == Some("sysfs")) {
            m.set_typ(Some("bind".into()));
            m.set_source(Some(PathBuf::from("/sys")));
            m.set_options(Some(["rbind", "nosuid", "noexec", "nodev", "ro"].map(String::from).to_vec()));
        }
    }
}

/// Bind-mounts every bind source into a directory the job's (unprivileged)
/// root can traverse, and points the spec at those. libcontainer resolves bind
/// sources inside the new user namespace, where host paths such as Docker's
/// `/var/lib/docker` (0710) are not traversable; runc opens them beforehand.
fn stage_bind_sources(
    id: &str,
    spec: &mut oci_spec::runtime::Spec,
    rootfs_mount: &Path,
    rec: &mut state::UsernsRecord,
) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = staged_dir(rootfs_mount, "binds");
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let mut staged_any = false;
    for (i, m) in mounts.iter_mut().enumerate() {
        let bind =
            m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind");
        let Some(src) = m.source().clone() else { continue };
        if !bind {
            continue;
        }
        // The source was checked against the profile's prefixes by its
        // canonical path (harden), and the spec points there. Opened again
        // with no symbolic link anywhere on the way, it is the object that was
        // checked, or the launch stops: a job that swaps a directory it can
        // write for a link to `/etc` between the check and this mount gains
        // nothing. The mount is of the open file (`/proc/self/fd`), not of
        // the path again.
        let pinned = open_checked_source(&src).map_err(|e| {
            Error::state(id, format!("bind source `{}` is not what was checked (changed since; {e})", src.display()))
        })?;
        let meta = pinned.metadata().map_err(|e| Error::io("bind mount source", &src, e))?;
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", pinned.as_raw_fd()));
        if !staged_any {
            std::fs::DirBuilder::new()
                .mode(0o711)
                .recursive(true)
                .create(&dir)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| Error::io("creating", &dir, e))?;
            rec.binds = Some(dir.clone());
            staged_any = true;
        }
        let target = dir.join(i.to_string());
        if meta.is_dir() {
            std::fs::DirBuilder::new().mode(0o711).create(&target).map_err(|e| Error::io("creating", &target, e))?;
        } else {
            // Never an existing file: a leftover mountpoint would be a bind
            // of some host file, which truncating would empty.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&target)
                .map_err(|e| Error::io("creating", &target, e))?;
        }
        nix::mount::mount(
            Some(&by_fd),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| Error::state(id, format!("staging bind source `{}`: {e}", src.display())))?;
        m.set_source(Some(target));
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// Opens `path` (absolute, canonical) as an `O_PATH` descriptor, refusing a
/// symbolic link in any component: `ELOOP` if one was put there since the
/// path was resolved.
fn open_checked_source(path: &Path) -> std::io::Result<std::fs::File> {
    crate::bundle::open_no_symlinks(path).map(std::fs::File::from)
}

/// Mounts at `mount` an overlay of idmapped binds of the client's layers.
///
/// The client's upper directory becomes the top *lower* layer (what the client
/// wrote before start stays visible), and the new overlay writes to a private
/// tmpfs owned by the job's root: sharing the client's upper directory between
/// two overlay mounts is undefined behaviour, and its work directory cannot be
/// reset through an idmapped mount. The job's writes to its root filesystem
/// are therefore discarded with the container (under `restricted` the root is
/// read-only anyway; only mountpoints land there).
fn idmapped_overlay(
    id: &str,
    layers: &crate::idmap::OverlayLayers,
    mount: &Path,
    userns: &std::os::fd::OwnedFd,
    host_base: u32,
) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = staged_dir(mount, "layers");
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .mode(0o711)
            .recursive(true)
            .create(parent)
            .map_err(|e| Error::io("creating", parent, e))?;
    }
    let mkdir = mkdir_traversable;
    mkdir(&dir)?;
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        Error::state(id, format!("idmapping overlay {what} `{}`: {e}", p.display()))
    };
    // Podman mounts with layer paths relative to its storage directory
    // (`lowerdir=l/ABC:l/DEF`, after a chdir): resolve them against it (the
    // upper directory's grandparent).
    let base = layers.upper.as_ref().and_then(|u| u.parent()).and_then(|p| p.parent()).map(Path::to_path_buf);
    let mut sources: Vec<PathBuf> = layers.upper.iter().cloned().collect();
    for l in &layers.lower {
        sources.push(match (&base, l.is_relative()) {
            (Some(b), true) => b.join(l),
            _ => l.clone(),
        });
    }
    let mut lowers = Vec::new();
    for (i, l) in sources.iter().enumerate() {
        let src = std::fs::canonicalize(l).map_err(|e| fail("layer", l, e))?;
        let t = dir.join(format!("l{i}"));
        mkdir(&t)?;
        crate::idmap::idmapped_bind_with(&src, &t, userns, false).map_err(|e| fail("layer", &src, e))?;
        lowers.push(t.display().to_string());
    }
    let rw = dir.join("rw");
    mkdir(&rw)?;
    nix::mount::mount(
        Some("tmpfs"),
        &rw,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some("mode=0711,size=64m"),
    )
    .map_err(|e| Error::state(id, format!("mounting the rootfs scratch tmpfs: {e}")))?;
    for sub in ["upper", "work"] {
        let p = rw.join(sub);
        mkdir(&p)?;
        std::os::unix::fs::chown(&p, Some(host_base), Some(host_base))
            .map_err(|e| Error::io("handing to the job's root", &p, e))?;
    }
    // The overlay's root takes the upper layer's mode: the usual 0755.
    let _ = std::fs::set_permissions(rw.join("upper"), std::fs::Permissions::from_mode(0o755));
    let mut data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        rw.join("upper").display(),
        rw.join("work").display()
    );
    for o in layers.options.iter().filter(|o| !o.starts_with("index=") && !o.starts_with("volatile")) {
        data.push(',');
        data.push_str(o);
    }
    // The upper layer is not idmapped, so overlayfs's own work in it (done
    // with the mounter's credentials) succeeds as host root; files the job
    // creates are owned by the job's (mapped) root.
    let _ = host_base;
    let result =
        nix::mount::mount(Some("overlay"), mount, Some("overlay"), nix::mount::MsFlags::empty(), Some(data.as_str()));
    result.map_err(|e| Error::state(id, format!("mounting the idmapped overlay: {e}")))?;
    Ok(dir)
}

/// Unmounts and removes staged bind sources.
fn remove_staged_binds(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = crate::idmap::unmount(&e.path());
            let _ = std::fs::remove_file(e.path()).or_else(|_| std::fs::remove_dir(e.path()));
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Where idmapped root filesystems are mounted (outside the 0700 state root).
pub const ROOTFS_MOUNT_DIR: &str = "/run/brig-rootfs";

/// Puts a tmpfs on `parent` (`ROOTFS_MOUNT_DIR`) unless it already is one.
///
/// Every per-job user namespace launch makes a mountpoint directory there and
/// removes it at delete (and, for a client's overlay, one per layer). On a
/// `/run` that is on disk (this host's is the ext4 root, mounted `-o
/// discard`), removing a directory frees its block with a synchronous discard,
/// 0.2-0.3 ms; on a tmpfs, directories cost no block. The tmpfs (mode 0711,
/// `nosuid,nodev,noexec`; it only ever holds empty mountpoint directories) is
/// mounted once, under an exclusive `flock`, and only on an empty directory:
/// the mountpoints of running jobs are never hidden. While `parent` is still
/// on disk the launch holds the lock shared (returned) until it has made and
/// mounted on its mountpoint, so that no tmpfs can cover it in between. A
/// failed mount leaves `parent` as it was, with a warning.
fn rootfs_mount_parent_on_tmpfs(parent: &Path) -> std::io::Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::os::unix::fs::OpenOptionsExt;
    let on_tmpfs = || nix::sys::statfs::statfs(parent).map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    if on_tmpfs()? {
        return Ok(None);
    }
    let lock_path = parent.with_extension("lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&lock_path)?;
    let exclusive = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))?;
    if !on_tmpfs()? && std::fs::read_dir(parent)?.next().is_none() {
        use nix::mount::MsFlags;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if let Err(e) = nix::mount::mount(Some("tmpfs"), parent, Some("tmpfs"), flags, Some("mode=0711")) {
            tracing::warn!(dir = %parent.display(), "mounting a tmpfs for the idmapped root filesystems: {e}");
        }
    }
    if on_tmpfs()? {
        return Ok(None);
    }
    let file = exclusive.unlock().map_err(|(_, e)| std::io::Error::from(e))?;
    let shared = Flock::lock(file, FlockArg::LockShared).map_err(|(_, e)| std::io::Error::from(e))?;
    // Not atomic with the unlock: a tmpfs may have been mounted in between.
    if on_tmpfs()? {
        return Ok(None);
    }
    Ok(Some(shared))
}

/// Where the staged bind sources (`binds`) or the idmapped overlay layers
/// (`layers`) of the container whose rootfs mountpoint is `mount` go:
/// `ROOTFS_MOUNT_DIR/.<kind>/<mountpoint's name>`. Mountpoint names start
/// with a hex digest, never `.`, and are one per (root, id): no container's
/// path is another's (`<mount>.binds` was container `<id>.binds`'s
/// mountpoint, and `a.b`'s was `a`'s).
pub fn staged_dir(mount: &Path, kind: &str) -> PathBuf {
    let parent = mount.parent().unwrap_or(Path::new(ROOTFS_MOUNT_DIR));
    parent.join(format!(".{kind}")).join(mount.file_name().unwrap_or_default())
}

/// The idmapped rootfs mountpoint of container `id` under state root `root`.
pub fn rootfs_mountpoint(root: &Path, id: &str) -> PathBuf {
    use sha2::Digest;
    let h = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    Path::new(ROOTFS_MOUNT_DIR).join(format!("{}-{id}", hex::encode(&h[..6])))
}

/// Gives the job its own user namespace: a range of host IDs, the mappings in
/// the spec, an idmapped bind of the rootfs, and its writable bind-mount
/// directories owned by its (mapped) root.
/// libcontainer 0.7 creates the user namespace before joining the others, and
/// a new user namespace cannot join a network namespace host root created
/// (Podman's default network, Kubernetes pods). When the profile gives the job
/// no network anyway, a private namespace replaces the client's; otherwise the
/// launch is refused, saying why.
fn own_network_namespace(
    id: &str,
    spec: &mut oci_spec::runtime::Spec,
    loopback_only: bool,
    leader: Option<&crate::pod::PodLeader>,
) -> Result<(bool, Option<PathBuf>)> {
    use oci_spec::runtime::LinuxNamespaceType;
    let Some(linux) = spec.linux_mut() else { return Ok((false, None)) };
    let Some(namespaces) = linux.namespaces_mut() else { return Ok((false, None)) };
    let Some(net) = namespaces.iter_mut().find(|n| n.typ() == LinuxNamespaceType::Network && n.path().is_some()) else {
        return Ok((false, None));
    };
    let requested = net.path().clone().unwrap_or_default();
    // Already the pod's own (`--network container:X` with X a brig job).
    if let Some(leader) = leader {
        let owner = crate::pod::NamespaceId::owner_of(&requested);
        if owner.is_ok_and(|o| o == leader.user_namespace) {
            return Ok((false, None));
        }
        // The client's pod network, which the pod's first job swapped for a
        // private one: join that.
        if leader.userns.client_netns.as_deref() == Some(requested.as_path()) {
            net.set_path(Some(leader.namespace_path("net")));
            return Ok((false, None));
        }
        return Err(Error::state(
            id,
            format!(
                "linux.namespaces: the network namespace `{}` is not the network of the pod `{}` whose other namespaces the job joins",
                requested.display(),
                leader.id
            ),
        ));
    }
    if !loopback_only {
        return Err(Error::state(
            id,
            format!(
                "the profile gives each job its own user namespace, which cannot join the client's network namespace `{}` \
                 (libcontainer enters the user namespace first); use a profile with `network.mode = \"none\"` or `user_namespace.mode = \"spec\"`",
                requested.display()
            ),
        ));
    }
    net.set_path(None);
    Ok((true, Some(requested)))
}

/// runc's `fixStdioPermissions`, for a user namespace brig made: the pipes a
/// client hands the job as stdio (containerd's shim, conmon, Docker's FIFOs)
/// belong to host root, which the job's user namespace does not map, so the
/// job could not reopen them (`echo x > /dev/stdout`, a log file linked to
/// `/dev/stdout`: EACCES), though a runc job can. A client that knows the
/// mapping chowns them itself (containerd's `io_uid`); this one is brig's.
/// Only FIFOs: a terminal, `/dev/null` or a file the caller redirected to is
/// left alone. The group is kept, as runc keeps it.
pub fn hand_stdio_to(host_uid: u32) {
    for fd in 0..=2 {
        let Ok(st) = nix::sys::stat::fstat(fd) else { continue };
        if st.st_mode & libc::S_IFMT != libc::S_IFIFO || st.st_uid == host_uid {
            continue;
        }
        if let Err(e) = nix::unistd::fchown(fd, Some(nix::unistd::Uid::from_raw(host_uid)), None) {
            tracing::debug!(fd, "handing the stdio pipe to the job's root: {e}");
        }
    }
}

/// A per-job user namespace maps container IDs 0..`size`: a process whose
/// uid or gids lie beyond would fail in the kernel (`setresgid`: EINVAL,
/// reported by the clients as "failed syscall: unknown"). Refused here,
/// naming the field and the range.
pub fn check_ids_in_range(process: &oci_spec::runtime::Process, size: u32) -> std::result::Result<(), String> {
    let user = process.user();
    let gids = user.additional_gids().clone().unwrap_or_default();
    let ids = [("process.user.uid", user.uid()), ("process.user.gid", user.gid())]
        .into_iter()
        .chain(gids.iter().map(|g| ("process.user.additionalGids", *g)));
    for (field, value) in ids {
        if value >= size {
            return Err(format!(
                "{field}: {value} is outside the job's user namespace, which maps IDs 0 to {} \
                 (user_namespace.mode = \"per_job\"; the pool's `range` sets the size)",
                size - 1
            ));
        }
    }
    Ok(())
}

/// Whether `spec` joins, by path, a user namespace brig made for a job with an
/// ID range from its pool. Only a job under a `per_job` profile, under the
/// same state root, joins one (as a member of that job's pod); any other is
/// refused.
fn joins_a_per_job_userns(
    root: &StateRoot,
    id: &str,
    spec: &oci_spec::runtime::Spec,
    (per_job_profile, profile): (bool, &str),
    pool: crate::userns::Pool,
) -> Result<bool> {
    let Some(path) = crate::pod::joined_user_namespace(spec) else { return Ok(false) };
    let pinned = crate::nspin::resolved(&path);
    let ns = crate::pod::NamespaceId::of(&pinned)
        .map_err(|e| Error::state(id, format!("linux.namespaces: the user namespace `{}`: {e}", path.display())))?;
    let local = crate::pod::jobs_with_own_userns(&root.path, id);
    let per_job_owner = |ns: crate::pod::NamespaceId| {
        local
            .iter()
            .find(|l| l.user_namespace == ns)
            .map(|l| l.id.clone())
            .or_else(|| crate::nsowner::range_holders(ns).first().map(|h| h.id.clone()))
    };
    let here = local.iter().find(|l| l.user_namespace == ns);
    let holders = crate::nsowner::range_holders(ns);
    let holder = match (here, holders.first()) {
        (None, None) => {
            // Not a per-job user namespace, but maybe one made inside one
            // (its maps then land in that job's range, which goes back to
            // the pool with it), or one mapping onto the pool by itself.
            let ancestors = crate::pod::user_namespace_ancestors(&pinned).map_err(|e| {
                Error::state(id, format!("linux.namespaces: the user namespace `{}`: {e}", path.display()))
            })?;
            if let Some(owner) = ancestors.into_iter().find_map(per_job_owner) {
                return Err(Error::state(
                    id,
                    format!(
                        "linux.namespaces: the user namespace `{}` is nested in job `{owner}`'s per-job user namespace, \
                         whose ID range it maps into; a job joins a pod's user namespace itself or none",
                        path.display()
                    ),
                ));
            }
            // Its maps, read from a process in it; with none to show them,
            // it is not joined (fail closed).
            let Some([uids, gids]) = crate::pod::user_namespace_maps(&path, ns) else {
                return Err(Error::state(
                    id,
                    format!(
                        "linux.namespaces: the user namespace `{}` has no process to read its ID maps from; \
                         a joined user namespace must be checked",
                        path.display()
                    ),
                ));
            };
            for (field, maps) in [("the joined user namespace's uid_map", uids), ("its gid_map", gids)] {
                for (i, (_, host_id, size)) in maps.into_iter().enumerate() {
                    check_mapping(&format!("{field}[{i}]"), host_id, size, pool, per_job_profile)
                        .map_err(|e| Error::state(id, format!("linux.namespaces: `{}`: {e}", path.display())))?;
                }
            }
            return Ok(false);
        }
        (Some(l), _) => l.id.clone(),
        (None, Some(h)) => {
            return Err(Error::state(
                id,
                format!(
                    "linux.namespaces: the user namespace `{}` is job `{}`'s, under another state root (`{}`); \
                     a job joins only the user namespace of a pod under its own root",
                    path.display(),
                    h.id,
                    h.root.display()
                ),
            ))
        }
    };
    if !per_job_profile {
        return Err(Error::state(
            id,
            format!(
                "linux.namespaces: the user namespace `{}` is job `{holder}`'s own, with an ID range from brig's pool; \
                 only a job under a profile with `user_namespace.mode = \"per_job\"` joins it, as a member of its pod \
                 (profile `{profile}`)",
                path.display()
            ),
        ));
    }
    Ok(true)
}

/// Host IDs below this are the host's own users and groups (system accounts,
/// people, `nobody`): the floor of brig's pool too.
const FIRST_UNPRIVILEGED_HOST_ID: u32 = crate::userns::Pool::MIN_START;

/// The mappings of a spec's own user namespace (not a rootless caller's,
/// which are the caller's own IDs). Never onto brig's pool, under any
/// profile: its ranges are handed to per-job user namespaces, each to one job
/// (or pod) at a time, and this job would share IDs with whichever holds
/// them. Under a `per_job` profile, never onto the host's users and groups
/// either (host root included): the job's root must be an ID no host user is.
fn check_spec_mappings(
    id: &str,
    spec: &oci_spec::runtime::Spec,
    pool: crate::userns::Pool,
    per_job_profile: bool,
) -> Result<()> {
    let Some(linux) = spec.linux() else { return Ok(()) };
    let own_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User && n.path().is_none());
    if !own_userns {
        return Ok(());
    }
    for (field, maps) in [("linux.uidMappings", linux.uid_mappings()), ("linux.gidMappings", linux.gid_mappings())] {
        for (i, m) in maps.iter().flatten().enumerate() {
            check_mapping(&format!("{field}[{i}]"), m.host_id(), m.size(), pool, per_job_profile)
                .map_err(|e| Error::state(id, e))?;
        }
    }
    Ok(())
}

/// One mapping of a user namespace a spec brings or joins, host IDs
/// `host_id .. host_id + size`: never on brig's pool; under `per_job`, never
/// on the host's users and groups.
fn check_mapping(
    field: &str,
    host_id: u32,
    size: u32,
    pool: crate::userns::Pool,
    per_job_profile: bool,
) -> std::result::Result<(), String> {
    if per_job_profile && host_id < FIRST_UNPRIVILEGED_HOST_ID && size > 0 {
        let what = if host_id == 0 { "host root (host ID 0)" } else { "the host's own users and groups" };
        return Err(format!(
            "{field}.hostID: the user namespace maps container IDs onto {what}; host IDs below \
             {FIRST_UNPRIVILEGED_HOST_ID} are refused under a profile with a per-job user namespace"
        ));
    }
    if pool.overlaps(host_id, size) {
        return Err(format!(
            "{field}: host IDs {}..{} overlap brig's pool of per-job ID ranges (from {}): another job would share them",
            host_id,
            u64::from(host_id) + u64::from(size),
            pool.start
        ));
    }
    Ok(())
}

fn setup_userns(
    root: &StateRoot,
    id: &str,
    spec: &mut oci_spec::runtime::Spec,
    pool: crate::userns::Pool,
    loopback_only: bool,
    identity: &std::collections::BTreeMap<String, String>,
    rootfs_identity: (u64, u64),
) -> Result<UsernsGuard> {
    use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType};
    let allocator = crate::userns::Allocator::new(crate::userns::ALLOCATION_DIR, pool);
    // A job joining the namespaces of another job of its pod joins its user
    // namespace and shares its range (see `pod`): only a job of the same
    // principal (crate::nsowner::same_principal).
    let leader = crate::pod::find_leader(&root.path, id, spec)?;
    if let Some(l) = &leader {
        let theirs = RunRecord::load(&root.container_dir(&l.id))
            .map_err(|e| Error::state(id, format!("reading the record of the pod's job `{}`: {e}", l.id)))?
            .auth
            .identity;
        if !crate::nsowner::same_principal(&theirs, identity) {
            return Err(Error::state(
                id,
                format!(
                    "linux.namespaces: the namespaces joined are job `{}`'s, launched for another principal; \
                     a job joins only the pods of its own tenant (or subject)",
                    l.id
                ),
            ));
        }
    }
    let range = match &leader {
        Some(l) => {
            allocator.join(l.userns.slot, &root.path, id, &l.id).map_err(|e| Error::state(id, e.to_string()))?;
            crate::userns::Range { slot: l.userns.slot, host_base: l.userns.host_base, size: l.userns.size }
        }
        None => allocator.allocate(&root.path, id).map_err(|e| Error::state(id, e.to_string()))?,
    };
    // Fault injection for the test that kills brig between allocation and
    // launch (tests/tests/userns.rs): nothing may leak.
    if std::env::var_os("BRIG_TEST_FAULT").is_some_and(|v| v == "after-userns-allocation") {
        std::process::abort();
    }
    let mount = rootfs_mountpoint(&root.path, id);
    let mut guard = UsernsGuard {
        allocator,
        root: root.path.clone(),
        id: id.to_string(),
        record: state::UsernsRecord {
            slot: range.slot,
            host_base: range.host_base,
            size: range.size,
            rootfs_mount: mount.clone(),
            chowned: vec![],
            binds: None,
            layers: None,
            private_netns: false,
            client_netns: None,
            pod: leader
                .as_ref()
                .map(|l| crate::pod::PodMembership { joined: l.id.clone(), user_namespace: l.user_namespace }),
        },
        job_userns: None,
        holder: None,
        armed: true,
    };
    (guard.record.private_netns, guard.record.client_netns) =
        own_network_namespace(id, spec, loopback_only, leader.as_ref())?;
    let bad = |e: oci_spec::OciSpecError| Error::state(id, format!("building the user namespace spec: {e}"));
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    // A spec's own user namespace entry is replaced by brig's.
    namespaces.retain(|n| n.typ() != LinuxNamespaceType::User);
    let user = LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::User);
    let user = match &leader {
        Some(l) => user.path(l.namespace_path("user")),
        None => user,
    };
    namespaces.push(user.build().map_err(bad)?);
    linux.set_namespaces(Some(namespaces));
    let map = LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(range.host_base)
        .size(range.size)
        .build()
        .map_err(bad)?;
    linux.set_uid_mappings(Some(vec![map]));
    linux.set_gid_mappings(Some(vec![map]));
    // Docker's `ping_group_range` ("0 2147483647") names GIDs the job's user
    // namespace does not map; the kernel refuses it there. Keep it to the range.
    if let Some(sysctl) = linux.sysctl_mut() {
        if let Some(v) = sysctl.get_mut("net.ipv4.ping_group_range") {
            *v = format!("0 {}", range.size - 1);
        }
    }

    let rootfs = spec.root().as_ref().map(|r| r.path().clone()).ok_or_else(|| Error::state(id, "no root"))?;
    // Held until the rootfs is mounted, when its parent is not on a tmpfs
    // (see `rootfs_mount_parent_on_tmpfs`).
    let _parent_lock = prepare_rootfs_mountpoint(&mount)?;
    let (userns, holder) = crate::idmap::userns_fd(range.host_base, range.size)
        .map_err(|e| Error::state(id, format!("creating the user namespace for the rootfs mapping: {e}")))?;
    guard.holder = Some(holder);
    let checked = open_checked_rootfs(id, &rootfs, rootfs_identity)?;
    match crate::idmap::idmapped_bind_fd(std::os::fd::AsFd::as_fd(&checked), &mount, &userns) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // overlayfs cannot be idmapped itself, but its layers can
            // (Linux >= 5.19): rebuild the client's overlay (Docker, Podman,
            // containerd) from idmapped binds of its layers.
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            match crate::idmap::overlay_layers(&mountinfo, &rootfs) {
                Some(layers) => {
                    guard.record.layers = Some(staged_dir(&mount, "layers"));
                    idmapped_overlay(id, &layers, &mount, &userns, range.host_base)?;
                }
                None => {
                    return Err(Error::state(
                        id,
                        format!(
                            "the root filesystem `{}` does not support idmapped mounts, which a per-job user namespace needs \
                             (use a filesystem that does — ext4, xfs, btrfs, tmpfs >= 6.3, or an overlay of such layers — \
                             or a profile with `user_namespace.mode = \"spec\"`)",
                            rootfs.display()
                        ),
                    ))
                }
            }
        }
        Err(e) => return Err(Error::state(id, format!("idmapping the root filesystem `{}`: {e}", rootfs.display()))),
    }
    if let Some(r) = spec.root_mut() {
        r.set_path(mount.clone());
    }
    sysfs_for_joined_netns(spec);
    let host_sources: Vec<Option<PathBuf>> = spec.mounts().iter().flatten().map(|m| m.source().clone()).collect();
    stage_bind_sources(id, spec, &mount, &mut guard.record)?;
    // Writable bind mounts (outputs) must be writable by the job's root; what
    // it writes there is then owned on the host by the mapped ID, never root.
    // The directory's owner (not its group) is handed over, through the
    // staged mount (the object that was checked), and handed back to root
    // when the range is freed: the allocator records the host path first.
    let mut handed = Vec::new();
    for (m, host_source) in spec.mounts().iter().flatten().zip(&host_sources) {
        let bind =
            m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind");
        let ro = m.options().iter().flatten().any(|o| o == "ro");
        let (Some(staged), Some(host_source)) = (m.source(), host_source) else { continue };
        if !bind || ro || brig_profiles::clients::CLIENT_FILES.contains(&m.destination().to_string_lossy().as_ref()) {
            continue;
        }
        if std::fs::metadata(staged).is_ok_and(|meta| meta.is_dir() && meta.uid() == 0) {
            handed.push((staged.clone(), host_source.clone()));
        }
    }
    let host_paths: Vec<PathBuf> = handed.iter().map(|(_, host)| host.clone()).collect();
    // To the job's user, not always its root: a job running as uid 1000
    // (`docker run -u 1000`) has no capability to write a directory its root
    // owns. (A uid beyond the range is refused right after this.)
    let job_uid = spec.process().as_ref().map(|p| p.user().uid()).filter(|u| *u < range.size).unwrap_or(0);
    let owner = range.host_base + job_uid;
    guard
        .allocator
        .record_handed(range.slot, owner, &host_paths)
        .map_err(|e| Error::state(id, format!("recording the output directories handed to the job: {e}")))?;
    for (staged, host_source) in handed {
        std::os::unix::fs::chown(&staged, Some(owner), None)
            .map_err(|e| Error::io("handing to the job's root", &host_source, e))?;
        guard.record.chowned.push(host_source);
    }
    // The rootfs is idmapped with the maps the job's user namespace gets:
    // the job joins that namespace instead of libcontainer making a second
    // one with the same maps (an `unshare` and a round trip to this process
    // to write them). A pod member joins its pod's instead.
    if leader.is_none() {
        guard.job_userns = Some(userns);
    }
    Ok(guard)
}

/// libcontainer's copy of the spec, with the job's user namespace entry
/// pointing at `userns`, which this process holds open until the job's
/// processes are in it (brig's own copy keeps the entry without a path: the
/// path means nothing once this process is gone).
fn join_prepared_userns(spec: &oci_spec::runtime::Spec, userns: &OwnedFd) -> oci_spec::runtime::Spec {
    use oci_spec::runtime::LinuxNamespaceType;
    let mut spec = spec.clone();
    let path = PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), userns.as_raw_fd()));
    if let Some(ns) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
        .and_then(|n| n.iter_mut().find(|n| n.typ() == LinuxNamespaceType::User))
    {
        ns.set_path(Some(path));
    }
    spec
}

pub fn start(g: &GlobalOpts, id: &str) -> Result<()> {
    start_checked(g, id, true)
}

/// `start`; `recheck`: check the network again (not in `run`, where nothing
/// comes between the two).
fn start_checked(g: &GlobalOpts, id: &str, recheck: bool) -> Result<()> {
    let root = state_root(g)?;
    let mut c = load(&root, id)?;
    if c.status() != ContainerStatus::Created {
        return Err(Error::state(id, format!("cannot start a container that is {}", status_name(c.status()))));
    }
    if recheck {
        recheck_egress(&root, id, &c)?;
    }
    c.start().map_err(|e| Error::container(id, e))
}

/// A network namespace found closed at `create` may have been wired by the
/// client since (Podman with a user namespace configures the runtime's
/// namespace after `create`): checked again, and filtered before the job
/// runs (crate::egress::recheck_at_start). Rootless brig cannot filter: the
/// start is refused.
fn recheck_egress(root: &StateRoot, id: &str, c: &Container) -> Result<()> {
    let dir = root.container_dir(id);
    if crate::egress::Installed::load(&dir).is_none_or(|i| i.ruleset) {
        return Ok(());
    }
    let Some(pid) = c.pid().map(|p| p.as_raw()) else { return Ok(()) };
    let record = RunRecord::load(&dir).map_err(|e| Error::io("reading", dir.join(state::RECORD_FILE), e))?;
    let Some(plan) = record.plan.egress.as_ref() else { return Ok(()) };
    let rootless =
        crate::rootless::RootlessRecord::load(&dir).is_some_and(|r| r.mode == crate::rootless::Mode::Unprivileged);
    let checked = match rootless {
        true => crate::rootless::check_private_network(&dir, pid, plan).map(|_| ()),
        false => crate::egress::recheck_at_start(&dir, id, pid, plan).map(|_| ()).map_err(|e| e.to_string()),
    };
    checked.map_err(|e| {
        Error::state(id, format!("the job's network changed after create; installing the egress rules: {e}"))
    })
}

pub fn status_name(s: ContainerStatus) -> &'static str {
    match s {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

/// runc's `state` output (the OCI state plus runc's extra fields).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateOutput {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::HashMap<String, String>>,
    /// brig's view (an extension runc's consumers ignore): the profile, and
    /// how the job ended once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brig: Option<BrigState>,
}

/// The `brig` object of `brig state`.
#[derive(Debug, Serialize)]
pub struct BrigState {
    pub profile: String,
    pub profile_digest: String,
    pub authorization: String,
    /// Client defaults the profile tightened.
    pub tightened: Vec<brig_profiles::Tightening>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

pub fn state_of(root: &StateRoot, c: &Container) -> StateOutput {
    let status = c.status();
    let pid = match status {
        ContainerStatus::Stopped => 0,
        _ => c.pid().map(|p| p.as_raw()).unwrap_or(0),
    };
    let dir = root.container_dir(c.id());
    let record = RunRecord::load(&dir).ok();
    let rootfs = record.as_ref().map(|r| r.rootfs.clone()).unwrap_or_default();
    let brig = record.as_ref().map(|r| BrigState {
        profile: r.profile.name.clone(),
        profile_digest: r.profile.digest.clone(),
        authorization: r.auth.decision.clone(),
        tightened: r.tightened.clone(),
        outcome: (status == ContainerStatus::Stopped).then(|| outcome(&dir, r)),
    });
    let owner = c.state.creator.and_then(|uid| nix::unistd::User::from_uid(uid.into()).ok().flatten()).map(|u| u.name);
    StateOutput {
        oci_version: "1.2.1".into(),
        id: c.id().to_string(),
        pid,
        status: status_name(status).into(),
        bundle: record.as_ref().map(|r| r.bundle.clone()).unwrap_or_else(|| c.bundle().clone()),
        rootfs,
        created: c.created().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)).unwrap_or_default(),
        owner: owner.unwrap_or_default(),
        annotations: c.state.annotations.clone(),
        brig,
    }
}

pub fn state(g: &GlobalOpts, id: &str) -> Result<()> {
    let root = state_root(g)?;
    let c = load(&root, id)?;
    let out = serde_json::to_string_pretty(&state_of(&root, &c)).map_err(|e| Error::state(id, e.to_string()))?;
    crate::outln!("{out}");
    Ok(())
}

/// A signal as `kill` takes it: a name or number libcontainer knows (1-31),
/// or one it cannot send (0, which only checks that the process exists, and
/// the real-time signals 32-64, `RTMIN+n`, `RTMAX-n`), as runc takes them:
/// containerd and Podman pass signals as numbers.
#[derive(Debug)]
pub enum KillSignal {
    Standard(Signal),
    Raw(i32),
}

impl KillSignal {
    /// Whether this is `sig`, however it was spelled (`9`, `KILL`, `sigkill`).
    pub fn is(&self, sig: NixSignal) -> bool {
        match self {
            KillSignal::Standard(s) => s.as_nix() == sig,
            KillSignal::Raw(n) => *n == sig as i32,
        }
    }
}

pub fn parse_signal(s: &str) -> Result<KillSignal> {
    let unknown = || Error::Usage(format!("unknown signal `{s}`"));
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let realtime = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let n = if rest.is_empty() { 0 } else { rest.parse::<i32>().ok()? };
        let v = base + sign * n;
        (min..=max).contains(&v).then_some(v)
    };
    let raw = if let Ok(n) = s.parse::<i32>() {
        match n {
            1..=31 => None,
            0 => Some(0),
            n if (32..=max).contains(&n) => Some(n),
            _ => return Err(unknown()),
        }
    } else if let Some(rest) = name.strip_prefix("RTMIN") {
        Some(realtime(min, rest.strip_prefix('+').unwrap_or(rest), 1).ok_or_else(unknown)?)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        Some(realtime(max, rest.strip_prefix('-').unwrap_or(rest), -1).ok_or_else(unknown)?)
    } else {
        None
    };
    match raw {
        Some(n) => Ok(KillSignal::Raw(n)),
        None => Signal::try_from(s).map(KillSignal::Standard).map_err(|_| unknown()),
    }
}

pub fn kill(g: &GlobalOpts, id: &str, signal: Option<&str>, all: bool) -> Result<()> {
    let root = state_root(g)?;
    let mut c = load(&root, id)?;
    let sig = parse_signal(signal.unwrap_or("SIGTERM"))?;
    let sigkill = sig.is(NixSignal::SIGKILL);
    let stop = sig.is(NixSignal::SIGSTOP);
    let before = c.status();
    if before == ContainerStatus::Stopped && !all {
        return Err(Error::state(id, "container not running"));
    }
    let sig = match sig {
        KillSignal::Standard(sig) => sig,
        KillSignal::Raw(n) => return kill_raw(id, &c, n, all),
    };
    // SIGSTOP cannot be caught, so the container's pid 1, brig's supervisor,
    // cannot forward it: sent to it, it would stop the supervisor (and the
    // timeout's clock) while the job ran on. The job is stopped instead, as
    // runc's pid 1 is the job; SIGCONT reaches it through the supervisor.
    // (Before `start` the init's child is brig's own process, waiting to
    // execute the job: the supervisor is stopped, as the init was.)
    if stop && !all && !matches!(before, ContainerStatus::Stopped | ContainerStatus::Created) {
        if let Some(init) = c.pid() {
            let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
            let jobs: Vec<i32> = children.split_whitespace().filter_map(|p| p.parse().ok()).collect();
            if !jobs.is_empty() {
                for job in jobs {
                    let _ = nix::sys::signal::kill(Pid::from_raw(job), NixSignal::SIGSTOP);
                }
                return Ok(());
            }
        }
    }
    // A rootless job without a cgroup of its own has no process list: signal
    // its init (the pid namespace's; SIGKILL takes the rest with it).
    let all = all && !crate::rootless::without_own_cgroup(&root.container_dir(id));
    c.kill(sig, all).map_err(|e| Error::container(id, e))?;
    // libcontainer marks the container stopped after any signal; keep
    // created/paused while the init is alive (runc's semantics).
    if matches!(before, ContainerStatus::Created | ContainerStatus::Paused) {
        let _ = c.refresh_status();
        if c.status() != ContainerStatus::Stopped {
            // `--all` freezes the cgroup to list and signal its processes,
            // then thaws it: a paused job would run again while its state
            // said paused. A signal does not resume a job (nor does one sent
            // to the init alone); SIGKILL, which needs the thaw on cgroup v1
            // to be acted on, is left to end it.
            if before == ContainerStatus::Paused && all && !sigkill {
                use libcgroups::common::{CgroupManager, FreezerState};
                crate::commands::cgroup_manager(id, &c)?
                    .freeze(FreezerState::Frozen)
                    .map_err(|e| Error::state(id, format!("pausing the job again after signalling it: {e}")))?;
            }
            c.set_status(before);
            let _ = c.save();
        }
    }
    Ok(())
}

/// `kill` with a signal libcontainer cannot send: to the init, or with
/// `--all` to every process of the container's cgroup. The status is left
/// alone (none of these stops a container by default).
fn kill_raw(id: &str, c: &Container, signo: i32, all: bool) -> Result<()> {
    use libcgroups::common::CgroupManager;
    let pids: Vec<i32> = match all {
        true if c.status() == ContainerStatus::Stopped => vec![],
        true => crate::commands::cgroup_manager(id, c)?
            .get_all_pids()
            .map_err(|e| Error::state(id, format!("listing processes: {e}")))?
            .iter()
            .map(|p| p.as_raw())
            .collect(),
        false => vec![c.pid().map(|p| p.as_raw()).ok_or_else(|| Error::state(id, "container not running"))?],
    };
    for pid in pids {
        // SAFETY: kill(2) with a pid and a signal number; no memory involved.
        if unsafe { libc::kill(pid, signo) } != 0 {
            let e = std::io::Error::last_os_error();
            if !all {
                return Err(Error::state(id, format!("signalling the init ({pid}) with {signo}: {e}")));
            }
        }
    }
    Ok(())
}

fn process_gone(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw())) {
        Err(_) => true,
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
            matches!(state, Some('Z') | Some('X') | None)
        }
    }
}

fn wait_gone(pid: Pid, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    process_gone(pid)
}

/// How the job ended, as far as brig can tell at `delete`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Outcome {
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub timed_out: bool,
    pub oom_killed: bool,
    /// The job never started (the reason).
    pub start_error: Option<String>,
    pub started_ns: Option<u64>,
    pub ended_ns: Option<u64>,
    pub usage: cgroup::Usage,
    pub landlock: Option<String>,
    pub landlock_abi: Option<u64>,
    pub seccomp_filters: Option<u64>,
    /// What the egress ruleset refused (its nftables counters), if the job
    /// had one and its namespace was still held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<brig_profiles::EgressCounts>,
}

/// Reads the supervisor's report and the cgroup before the cgroup goes away.
pub fn outcome(dir: &Path, record: &RunRecord) -> Outcome {
    let s = SupervisorStatus::load(dir);
    let usage = cgroup::usage(&record.cgroup_path);
    let (exit_code, signal) = how_it_ended(&s);
    let oom_killed = usage.oom_kills > 0 && signal == Some(9);
    let start_error =
        s.error_stage.as_ref().map(|stage| format!("{stage} failed (errno {})", s.error_errno.unwrap_or(0)));
    Outcome {
        exit_code,
        signal,
        timed_out: s.timed_out,
        oom_killed,
        start_error,
        started_ns: s.started_ns,
        ended_ns: s.ended_ns,
        usage,
        landlock: s.landlock,
        landlock_abi: s.landlock_abi,
        seccomp_filters: s.seccomp_filters,
        egress: crate::egress::counters(dir),
    }
}

/// The exit status from the supervisor's report. The supervisor writes it
/// when the job has ended; without it, the status is inferred.
fn how_it_ended(s: &SupervisorStatus) -> (Option<i64>, Option<i64>) {
    const ENOENT: i64 = 2;
    match (s.done, s.exit_code, s.signal) {
        (true, code, sig) => (code, sig),
        // The supervisor failed before the job was forked and exited with
        // the shell's codes: 127 for a missing program, 126 otherwise.
        (false, _, _) if s.pid.is_none() && s.error_stage.is_some() => {
            (Some(if s.error_errno == Some(ENOENT) { 127 } else { 126 }), None)
        }
        // The supervisor died before it finished its report. It is the
        // job's pid-namespace init and ignores every signal it has no
        // handler for, so what ended it early is SIGKILL from outside
        // (`kill`, the OOM killer, `delete --force`), possibly before it
        // wrote anything at all (a kill right after `start`).
        (false, _, _) => (None, Some(9)),
    }
}

pub fn delete(g: &GlobalOpts, id: &str, force: bool) -> Result<()> {
    state::validate_id(id)?;
    // One delete (or update) of a container at a time: a second waits, then
    // finds it gone.
    let root = state_root(g)?;
    let dir = root.container_dir(id);
    // Never while a create of this id is under way (it would take the
    // create's cgroup claim and half of what it made, and leave the rest
    // running unclaimed): wait for it to end, then delete what it made.
    let _id_lock = wait_for_id_lock(&root, id)?;
    let _lock = std::fs::File::open(&dir)
        .ok()
        .and_then(|d| nix::fcntl::Flock::lock(d, nix::fcntl::FlockArg::LockExclusive).ok());
    match delete_once(&root, id, force) {
        // Another `delete --force` removed it meanwhile (its cgroup, its
        // state): both succeed, as with runc.
        Err(_) if force && !dir.join("state.json").exists() => Ok(()),
        r => r,
    }
}

/// Whether a failed build left `dir` with libcontainer's state of a
/// container still being created and no init (nothing runs that its state
/// would be needed to find).
fn left_before_its_init(dir: &Path) -> bool {
    libcontainer::container::State::load(dir).is_ok_and(|s| s.status == ContainerStatus::Creating && s.pid.is_none())
}

/// Whether the container's state.json is there but is not JSON (empty, cut
/// short): what a create that met a full disk leaves. Any other failure to
/// load a container is not a reason to remove it without its state.
fn state_unparseable(dir: &Path) -> bool {
    std::fs::read(dir.join("state.json")).is_ok_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_err())
}

/// How long `delete` waits for a create of the same id to end.
const CREATE_WAIT: Duration = Duration::from_secs(30);

fn wait_for_id_lock(root: &StateRoot, id: &str) -> Result<state::IdLock> {
    let deadline = Instant::now() + CREATE_WAIT;
    loop {
        match root.lock_id(id) {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                return Err(Error::state(
                    id,
                    format!(
                        "a create of this container is still under way after {}s; retry the delete once it has ended",
                        CREATE_WAIT.as_secs()
                    ),
                ))
            }
            Err(e) => return Err(Error::io("locking", root.staging_lock(id), e)),
        }
    }
}

fn delete_once(root: &StateRoot, id: &str, force: bool) -> Result<()> {
    let dir = root.container_dir(id);
    if !dir.join("state.json").exists() {
        if force {
            // runc: `delete --force` of a container that is gone succeeds,
            // and cleans up what an aborted create may have left.
            crate::egress::release(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            remove_leftovers(root, id, &dir);
            return Ok(());
        }
        return Err(Error::NotFound(id.to_string()));
    }
    // (A `delete --force` that got there first: see `delete`.)
    // libcontainer's configuration, read once for the whole delete. One that
    // is missing or not JSON beside a state.json is what a create that failed
    // between the two writes (a full disk) leaves: such a container cannot
    // be killed through libcontainer, so `delete --force` removes what it
    // left instead.
    let config = libcontainer::config::YoukiConfig::load(&dir);
    let mut c = match load(root, id) {
        Ok(_) if force && config.is_err() => {
            let why = Error::state(id, "libcontainer's configuration (youki_config.json) is missing or not JSON");
            return remove_with_unreadable_state(root, id, &dir, &why);
        }
        Ok(c) => c,
        Err(e) if force && (state_unparseable(&dir) || config.is_err()) => {
            return remove_with_unreadable_state(root, id, &dir, &e)
        }
        Err(e) => return Err(e),
    };
    match c.status() {
        ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Creating if !force => {
            return Err(Error::state(
                id,
                format!(
                    "cannot delete a container that is {} (stop it first, or use --force)",
                    status_name(c.status())
                ),
            ));
        }
        ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Creating => {
            let all = !crate::rootless::without_own_cgroup(&dir);
            c.kill(Signal::try_from("SIGKILL").map_err(|_| Error::Usage("SIGKILL".into()))?, all)
                .map_err(|e| Error::container(id, e))?;
            if let Some(pid) = c.pid() {
                if !wait_gone(pid, Duration::from_secs(10)) {
                    return Err(Error::state(id, "the container's processes did not exit after SIGKILL"));
                }
            }
        }
        ContainerStatus::Created => {
            // Only the init exists, waiting for `start` (runc deletes created
            // containers without --force too).
            if let Some(pid) = c.pid() {
                let _ = nix::sys::signal::kill(pid, NixSignal::SIGKILL);
                if !wait_gone(pid, Duration::from_secs(10)) {
                    return Err(Error::state(id, "the container's init did not exit after SIGKILL"));
                }
            }
        }
        ContainerStatus::Stopped => {}
    }
    // A run record that is there but cannot be read would lose the run's
    // attestation: the container is kept (even with --force, as for an
    // attestation that cannot be written) until the file is repaired, or
    // removed by whoever accepts deleting the run unattested.
    let record = readable_record(id, &dir)?;
    if let Some(record) = &record {
        attest_run(id, &dir, record)?;
    }
    finish_delete(root, id, &c, config.ok())?;
    if record.is_none() {
        // A create that died during the build (state.json written, its run
        // record not yet): what it had made before is found by name.
        remove_leftovers(root, id, &c.root);
    }
    release_recorded_userns(root, id, record.as_ref());
    Ok(())
}

/// The container's run record. One that is there but cannot be read is a
/// reason to keep the container when it may be the only account of an
/// attested run (not JSON at all, or JSON naming measurements): deleting it
/// would lose the run's attestation (even with --force, as for an
/// attestation that cannot be written). A record of another brig version
/// that says the run was not measured (no `measurements`) does not keep the
/// container: it is deleted as it was before, without its record.
fn readable_record(id: &str, dir: &Path) -> Result<Option<RunRecord>> {
    match RunRecord::load(dir) {
        Ok(record) => Ok(Some(record)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            let path = dir.join(state::RECORD_FILE);
            let unattested = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v.get("measurements").is_none_or(serde_json::Value::is_null));
            if unattested {
                tracing::warn!(id, record = %path.display(), "the run record cannot be read ({e}); it names no measurements: deleted without it");
                return Ok(None);
            }
            Err(Error::state(
                id,
                format!(
                    "its run record `{}` cannot be read ({e}), so the run cannot be attested: the container is kept; \
                     repair the file, or remove it to delete the container without an attestation",
                    path.display()
                ),
            ))
        }
    }
}

/// Logs how the job ended and, for a measured run, writes its attestation
/// before any state goes away: if it cannot be written (a full disk), the
/// caller keeps the container and `delete` can be retried. Measured and
/// signed once (crate::attestation::seal_once): a retry writes what the
/// first attempt saw.
fn attest_run(id: &str, dir: &Path, record: &RunRecord) -> Result<()> {
    // Read before the cgroup and the state are removed.
    let outcome = outcome(dir, record);
    tracing::info!(
        id,
        exit = ?outcome.exit_code,
        signal = ?outcome.signal,
        oom = outcome.oom_killed,
        timed_out = outcome.timed_out,
        "job ended"
    );
    let Some(m) = &record.measurements else { return Ok(()) };
    let not_written = |e: String| {
        Error::state(id, format!("the run's attestation was not written ({e}); the container is kept, retry `delete`"))
    };
    let envelope = crate::attestation::seal_once(dir, id, &m.settings, || {
        let spec = crate::bundle::read_spec(&dir.join(state::SPEC_FILE)).ok();
        let killed = outcome.signal == Some(9) && !outcome.oom_killed && !outcome.timed_out;
        let rootless = crate::rootless::RootlessRecord::load(dir);
        crate::attestation::facts(record, m, spec.as_ref(), &outcome, killed, rootless.as_ref())
    })
    .map_err(not_written)?;
    let path = crate::attestation::write_sealed(&envelope, id, &m.settings).map_err(not_written)?;
    tracing::info!(id, attestation = %path.display(), "attestation written");
    Ok(())
}

/// Gives up the user-namespace range and idmapped root a run record holds.
fn release_recorded_userns(root: &StateRoot, id: &str, record: Option<&RunRecord>) {
    if let Some(u) = record.and_then(|r| r.userns.as_ref()) {
        let allocator = crate::userns::Allocator::new(crate::userns::ALLOCATION_DIR, crate::userns::Pool::default());
        release_userns(&allocator, &root.path, id, u);
    }
}

/// `delete --force` of a container whose state.json does not parse (a
/// create that met a full disk wrote it empty): no create holds the id (see
/// `delete`), so what is there is left over. Its processes are found by its
/// cgroup (only one the registry says is this container's), and killed;
/// only once that cgroup is gone do its claim, its user-namespace range and
/// its state go, as for a create that died before writing its state.
fn remove_with_unreadable_state(root: &StateRoot, id: &str, dir: &Path, why: &Error) -> Result<()> {
    tracing::warn!(id, "the container's state cannot be read ({why}); removing what it left");
    let record = readable_record(id, dir)?;
    let config = libcontainer::config::YoukiConfig::load(dir).ok();
    let cgroups: Vec<PathBuf> =
        record.iter().map(|r| r.cgroup_path.clone()).chain(config.iter().map(|c| c.cgroup_path.clone())).collect();
    let registry = Path::new(crate::cgclaim::REGISTRY_DIR);
    for cg in cgroups.iter().filter(|cg| crate::cgclaim::held_by(registry, cg, dir)) {
        cgroup::thaw(cg);
        cgroup::kill_all(cg);
        if let Err(err) = cgroup::remove(cg) {
            return Err(Error::state(
                id,
                format!(
                    "its state cannot be read ({why}), and its cgroup `{}` could not be removed ({err}): kept, retry the delete",
                    cg.display()
                ),
            ));
        }
    }
    // A measured run is attested before its state goes, here too (the
    // state.json that does not parse is libcontainer's, not the record).
    if let Some(record) = &record {
        attest_run(id, dir, record)?;
    }
    crate::egress::teardown(dir);
    crate::nsowner::unregister(&root.path, id, dir);
    let _ = std::fs::remove_dir_all(dir);
    remove_leftovers(root, id, dir);
    release_recorded_userns(root, id, record.as_ref());
    Ok(())
}

/// What a create that died may have left outside the container's state
/// directory: its staging lock, its idmapped root and staged binds, its
/// cgroup claims, its user-namespace range.
fn remove_leftovers(root: &StateRoot, id: &str, dir: &Path) {
    let _ = std::fs::remove_dir_all(root.legacy_staging_dir(id));
    // (Not the id's lock file: the caller holds it, and drops it with it.)
    let leftover = rootfs_mountpoint(&root.path, id);
    if leftover.exists() {
        let _ = crate::idmap::unmount(&leftover);
        let _ = std::fs::remove_dir(&leftover);
    }
    remove_staged_binds(&staged_dir(&leftover, "binds"));
    remove_staged_binds(&staged_dir(&leftover, "layers"));
    crate::cgclaim::release_all_of(Path::new(crate::cgclaim::REGISTRY_DIR), dir);
    crate::userns::Allocator::new(crate::userns::ALLOCATION_DIR, crate::userns::Pool::default())
        .release_stale_of(&root.path, id);
}

/// What libcontainer's `delete` does for a stopped container, without its
/// slow cgroup lookups: remove the cgroup, run the poststop hooks, remove the
/// state directory.
fn finish_delete(
    root: &StateRoot,
    id: &str,
    c: &Container,
    config: Option<libcontainer::config::YoukiConfig>,
) -> Result<()> {
    if let Some(config) = &config {
        cgroup::remove(&config.cgroup_path)
            .map_err(|e| Error::state(id, format!("removing cgroup `{}`: {e}", config.cgroup_path.display())))?;
        // A poststop hook that fails is logged and the others still run; the
        // container is deleted all the same (runtime-spec: "the runtime MUST
        // log a warning, but the remaining hooks and lifecycle continue"):
        // a hook that can never succeed again must not keep it forever.
        for hook in config.hooks.as_ref().and_then(|h| h.poststop().as_ref()).into_iter().flatten() {
            if let Err(e) = libcontainer::hooks::run_hooks(Some(&vec![hook.clone()]), Some(&c.state), None, None, None)
            {
                tracing::warn!(id, hook = %hook.path().display(), "poststop hook failed: {e}");
            }
        }
    }
    // The egress rules leave with the container (its namespace may be the
    // client's and outlive it), and with them the namespace holder mount.
    crate::egress::teardown(&c.root);
    crate::nsowner::unregister(&root.path, id, &c.root);
    root.retire_container_dir(&c.root).map_err(|e| Error::io("removing", &c.root, e))?;
    if let Some(config) = &config {
        crate::cgclaim::release(Path::new(crate::cgclaim::REGISTRY_DIR), &config.cgroup_path, &c.root);
    }
    Ok(())
}

/// Signals `run` forwards to the container (runc's set: all but these).
pub(crate) fn forwardable(sig: NixSignal) -> bool {
    !matches!(sig, NixSignal::SIGCHLD | NixSignal::SIGWINCH | NixSignal::SIGURG | NixSignal::SIGPIPE)
}

/// `run`: create, start, and (unless detached) wait, forward signals, and
/// delete. Returns the exit code to exit with.
pub fn run(g: &GlobalOpts, id: &str, opts: &CreateOpts, detach: bool, keep: bool) -> Result<i32> {
    let (container, console) = create_with(g, id, opts, !detach)?;
    let pid = container.pid().ok_or_else(|| Error::state(id, "no init pid after create"))?;
    let mut mask = SigSet::all();
    mask.remove(NixSignal::SIGKILL);
    mask.remove(NixSignal::SIGSTOP);
    let mut old = SigSet::empty();
    if !detach {
        nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
            .map_err(|e| Error::state(id, format!("blocking signals: {e}")))?;
    }
    // The job's terminal, when brig relays it: taken (and the caller's
    // terminal made raw) before the job starts, so its first output and its
    // first look at the window size are right; with signals blocked, so
    // that none ends brig with the caller's terminal raw (and SIGTTOU does
    // not stop a brig in the background).
    let terminal = match console.map(crate::console::ConsoleListener::receive).transpose() {
        Ok(master) => master.map(crate::console::Terminal::attach),
        Err(e) => {
            let _ = delete(g, id, true);
            return Err(Error::state(id, format!("taking the job's terminal: {e}")));
        }
    };
    if let Err(e) = start_checked(g, id, false) {
        let _ = delete(g, id, true);
        return Err(e);
    }
    if detach {
        return Ok(0);
    }
    let relayed = terminal.as_ref().map(|t| t.relay(pid, &mask, forwardable));
    // The caller's terminal settings come back before anything is printed,
    // and before a failed relay falls back to waiting without one.
    drop(terminal);
    let code = match relayed {
        Some(Ok(code)) => code,
        relay_failed => {
            if let Some(Err(e)) = relay_failed {
                tracing::warn!(id, "relaying the job's terminal: {e}");
            }
            loop {
                // (The relay may have read the SIGCHLD already.)
                match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(_, code)) => break code,
                    Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    // Nothing left to wait for (reaped already): no status.
                    Err(_) => break 255,
                }
                match mask.wait() {
                    Ok(NixSignal::SIGCHLD) => match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(_, code)) => break code,
                        Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
                        _ => continue,
                    },
                    Ok(sig) if forwardable(sig) => {
                        let _ = nix::sys::signal::kill(pid, sig);
                    }
                    _ => continue,
                }
            }
        }
    };
    let _ = nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&old), None);
    let root = state_root(g)?;
    let dir = root.container_dir(id);
    if let Ok(record) = RunRecord::load(&dir) {
        report_outcome(id, &record, &outcome(&dir, &record));
    }
    if !keep {
        delete(g, id, true)?;
    }
    Ok(code)
}

/// Tells the person running `brig run` why a job ended abnormally.
fn report_outcome(id: &str, record: &RunRecord, o: &Outcome) {
    if o.timed_out {
        let limit = record.plan.timeout.map(|t| brig_profiles::Duration(t).to_string()).unwrap_or_default();
        eprintln!("brig: container `{id}`: the job exceeded its timeout of {limit} and was stopped");
    }
    if o.oom_killed {
        eprintln!("brig: container `{id}`: the job was killed by the OOM killer (out of memory in its cgroup)");
    }
    if let Some(e) = &o.start_error {
        eprintln!("brig: container `{id}`: the job could not start: {e}");
    }
}

/// Owner uid of the state directory (for `list`).
pub fn owner_of(dir: &Path) -> Option<u32> {
    std::fs::metadata(dir).ok().map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kill` treats SIGKILL (a paused job is not frozen again) and SIGSTOP
    /// (sent to the job, not to the supervisor) by value: every spelling
    /// runc, containerd and Podman use is recognized, and no other signal is.
    #[test]
    fn every_spelling_of_a_signal_is_told_by_its_value() {
        for s in ["9", "KILL", "kill", "SIGKILL", "SigKill"] {
            let sig = parse_signal(s).unwrap();
            assert!(sig.is(NixSignal::SIGKILL), "{s}");
            assert!(!sig.is(NixSignal::SIGSTOP), "{s}");
        }
        for s in ["19", "STOP", "stop", "SIGSTOP", "sigstop"] {
            let sig = parse_signal(s).unwrap();
            assert!(sig.is(NixSignal::SIGSTOP), "{s}");
            assert!(!sig.is(NixSignal::SIGKILL), "{s}");
        }
        for s in ["15", "TERM", "18", "CONT", "20", "TSTP", "0", "RTMIN", "64"] {
            let sig = parse_signal(s).unwrap();
            assert!(!sig.is(NixSignal::SIGKILL) && !sig.is(NixSignal::SIGSTOP), "{s}");
        }
    }

    /// harden's annotation is the one the patched libcontainer reads.
    #[test]
    fn the_nodev_annotation_is_libcontainers() {
        assert_eq!(brig_profiles::harden::ROOTFS_NODEV_ANNOTATION, libcontainer::rootfs::ROOTFS_NODEV_ANNOTATION);
        assert_eq!(
            brig_profiles::harden::PIN_BIND_SOURCES_ANNOTATION,
            libcontainer::rootfs::PIN_BIND_SOURCES_ANNOTATION
        );
    }

    /// A bind source swapped for a symbolic link after it was checked (a
    /// job's writable directory replaced by a link to `/etc`) is refused at
    /// staging, wherever in the path the link is; the checked object itself
    /// is opened, and the descriptor is that object.
    #[test]
    fn a_bind_source_swapped_for_a_link_is_refused() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("out");
        std::fs::create_dir_all(real.join("sub")).unwrap();
        let pinned = open_checked_source(&real.join("sub")).unwrap();
        assert_eq!(pinned.metadata().unwrap().ino(), std::fs::metadata(real.join("sub")).unwrap().ino());

        std::fs::rename(real.join("sub"), dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink("/etc", real.join("sub")).unwrap();
        let err = open_checked_source(&real.join("sub")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");

        std::fs::rename(&real, dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), &real).unwrap();
        std::fs::create_dir(dir.path().join("real/inner")).unwrap();
        let err = open_checked_source(&real.join("inner")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
    }

    #[test]
    fn the_rootfs_mount_parent_goes_on_a_tmpfs_only_when_empty() {
        use nix::fcntl::{Flock, FlockArg};
        let on_tmpfs =
            |p: &Path| nix::sys::statfs::statfs(p).unwrap().filesystem_type() == nix::sys::statfs::TMPFS_MAGIC;
        let base = tempfile::tempdir_in("/var/tmp").unwrap();
        assert!(!on_tmpfs(base.path()), "the test needs a directory on disk");
        // Empty: a tmpfs is mounted, mode 0711, and later launches find it.
        let empty = base.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(rootfs_mount_parent_on_tmpfs(&empty).unwrap().is_none());
        assert!(on_tmpfs(&empty), "mounting a tmpfs needs root: run the tests as root");
        assert_eq!(std::fs::metadata(&empty).unwrap().permissions().mode() & 0o7777, 0o711);
        assert!(rootfs_mount_parent_on_tmpfs(&empty).unwrap().is_none());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert_eq!(mounts.lines().filter(|l| l.contains(empty.to_str().unwrap())).count(), 1, "one tmpfs, not two");
        nix::mount::umount2(&empty, nix::mount::MntFlags::MNT_DETACH).unwrap();
        // Holding a running job's mountpoint: left on disk, and the launch
        // holds the lock shared, so no other launch can cover it meanwhile.
        let busy = base.path().join("busy");
        std::fs::create_dir_all(busy.join("job-mountpoint")).unwrap();
        let shared = rootfs_mount_parent_on_tmpfs(&busy).unwrap().expect("a shared lock");
        assert!(!on_tmpfs(&busy));
        let other = std::fs::File::open(busy.with_extension("lock")).unwrap();
        let other = match Flock::lock(other, FlockArg::LockExclusiveNonblock) {
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => f,
            r => panic!("a mounter got the lock while a launch holds it shared: {:?}", r.is_ok()),
        };
        drop(shared);
        assert!(Flock::lock(other, FlockArg::LockExclusiveNonblock).is_ok());
    }

    fn status(text: &str) -> SupervisorStatus {
        SupervisorStatus::parse(text)
    }

    #[test]
    fn a_finished_report_is_taken_as_written() {
        assert_eq!(how_it_ended(&status("pid=2\nstarted_ns=1\nexit_code=3\ndone=1\n")), (Some(3), None));
        assert_eq!(how_it_ended(&status("pid=2\nstarted_ns=1\nsignal=10\ndone=1\n")), (None, Some(10)));
    }

    #[test]
    fn a_supervisor_killed_before_it_reported_was_sigkilled() {
        // Killed while the job ran, and killed before the first report line
        // (the race between `start` returning and `kill`).
        assert_eq!(how_it_ended(&status("pid=2\nstarted_ns=1\n")), (None, Some(9)));
        assert_eq!(how_it_ended(&status("")), (None, Some(9)));
    }

    #[test]
    fn a_failure_before_the_job_forked_exits_like_a_shell() {
        assert_eq!(how_it_ended(&status("error_stage=plan\nerror_errno=22\n")), (Some(126), None));
        assert_eq!(how_it_ended(&status("error_stage=exec\nerror_errno=2\n")), (Some(127), None));
    }
}
