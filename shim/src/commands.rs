//! The other runc commands: exec, ps, list, pause, resume, update, events,
//! features, spec; and `brig profile`.

use std::io::Read;
use std::path::{Path, PathBuf};

use libcgroups::common::{create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, LinuxResources, Process, Spec};

use crate::bundle;
use crate::cli::{Exec, GlobalOpts, List, Ps, SpecCmd, Update};
use crate::error::{Error, Result};
use crate::lifecycle::{self, load, state_of, state_root, status_name};
use crate::state::{self, RunRecord, PLAN_FILE};
use crate::supervisor::Handover;

pub(crate) fn cgroup_manager(id: &str, c: &Container) -> Result<AnyCgroupManager> {
    let cgroup_path = c.spec().map_err(|e| Error::container(id, e))?.cgroup_path;
    create_cgroup_manager(CgroupConfig { cgroup_path, systemd_cgroup: false, container_name: id.to_string() })
        .map_err(|e| Error::state(id, format!("opening the cgroup: {e}")))
}

/// Reads a process.json, naming the bad field on error.
fn read_process(path: &Path) -> Result<Process> {
    let text = brig_files::read_at_most(path, bundle::MAX_SPEC_BYTES).map_err(|e| Error::io("reading", path, e))?;
    let process: Process = bundle::parse_json(&text, path)?;
    bundle::check_process(&process, "process").map_err(|(field, message)| {
        Error::Bundle(bundle::BundleError::Invalid { path: path.to_path_buf(), field, message })
    })?;
    Ok(process)
}

/// The process an `exec` without `--process` runs: the container's process
/// with the command, environment, user and directory from the flags.
fn process_from_args(base: &Spec, args: &Exec) -> Result<Process> {
    if args.command.is_empty() {
        return Err(Error::Usage("exec needs --process FILE or a command".into()));
    }
    let mut p = base.process().clone().unwrap_or_default();
    p.set_args(Some(args.command.clone()));
    p.set_terminal(Some(args.tty));
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &args.env {
        let key = kv.split_once('=').map(|(k, _)| k).unwrap_or(kv);
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        if !cwd.is_absolute() {
            return Err(Error::Usage(format!("--cwd `{}`: not an absolute path", cwd.display())));
        }
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &args.user {
        let bad = || Error::Usage(format!("--user `{u}`: expected UID[:GID]"));
        let (uid, gid) = u.split_once(':').map(|(a, b)| (a, Some(b))).unwrap_or((u.as_str(), None));
        let user = p.user_mut();
        user.set_uid(uid.parse().map_err(|_| bad())?);
        if let Some(g) = gid {
            user.set_gid(g.parse().map_err(|_| bad())?);
        }
    }
    if !args.additional_gids.is_empty() {
        p.user_mut().set_additional_gids(Some(args.additional_gids.clone()));
    }
    if !args.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let n = name.to_ascii_uppercase();
            let cap: oci_spec::runtime::Capability = n
                .strip_prefix("CAP_")
                .unwrap_or(&n)
                .parse()
                .map_err(|_| Error::Usage(format!("--cap `{name}` is not a capability")))?;
            for set in [caps.bounding().clone(), caps.effective().clone(), caps.permitted().clone()].iter().enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => caps.set_bounding(Some(s)),
                    1 => caps.set_effective(Some(s)),
                    _ => caps.set_permitted(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(caps));
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// Every capability set empty.
fn no_capabilities() -> LinuxCapabilities {
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(Capabilities::new()))
        .set_effective(Some(Capabilities::new()))
        .set_permitted(Some(Capabilities::new()))
        .set_inheritable(Some(Capabilities::new()))
        .set_ambient(Some(Capabilities::new()));
    caps
}

/// Holds an exec'd process to the container's profile, as `create` held the
/// init: no token, the profile's no_new_privs, and capabilities tightened to
/// the container's. Client defaults (Docker, Podman and containerd copy their
/// 14 default capabilities into every exec) are dropped; any other capability
/// the container lacks is refused, unless the profile allows any.
fn harden_exec(id: &str, record: &RunRecord, base: &Spec, process: &mut Process) -> Result<()> {
    crate::pipeline::scrub_process_token(process);
    if let Some(userns) = &record.userns {
        crate::lifecycle::check_ids_in_range(process, userns.size)
            .map_err(|e| Error::state(id, format!("exec refused: {e}")))?;
    }
    if record.plan.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    let any = record.cap_ceiling.iter().any(|c| c == "ALL");
    // Scheduling, I/O class and OOM score, which init applies while still
    // root: held to what the container's capabilities allow.
    let bounding = base.process().as_ref().and_then(|p| p.capabilities().as_ref()).and_then(|c| c.bounding().clone());
    let has = |cap: Capability| any || bounding.as_ref().is_some_and(|b| b.contains(&cap));
    match brig_profiles::harden::init_privileges(process, has(Capability::SysNice), has(Capability::SysResource)) {
        Ok(Some(adj)) => tracing::info!(id, requested = adj, "exec: process.oomScoreAdj raised to 0"),
        Ok(None) => {}
        Err((field, reason)) => {
            return Err(Error::state(id, format!("profile `{}` refuses exec: {field}: {reason}", record.profile.name)))
        }
    }
    // Resource limits: never above the container's (the profile's `core = 0`
    // or `nofile` would otherwise not hold for an exec'd process, which
    // libcontainer sets up as host root); the container's where the exec
    // names none (an exec would otherwise inherit brig's own).
    if let Some((i, typ)) = brig_profiles::harden::duplicate_rlimit(process.rlimits().as_deref().unwrap_or_default()) {
        return Err(Error::state(
            id,
            format!(
                "exec refused: process.rlimits[{i}]: {typ} is listed twice (the last would win over the capped first)"
            ),
        ));
    }
    let own_limits = base.process().as_ref().and_then(|p| p.rlimits().clone()).unwrap_or_default();
    if !own_limits.is_empty() {
        let mut limits = process.rlimits().clone().unwrap_or_default();
        for own in &own_limits {
            match limits.iter_mut().find(|l| l.typ() == own.typ()) {
                Some(l) => {
                    let hard = l.hard().min(own.hard());
                    if let Ok(capped) = oci_spec::runtime::PosixRlimitBuilder::default()
                        .typ(l.typ())
                        .hard(hard)
                        .soft(l.soft().min(hard))
                        .build()
                    {
                        *l = capped;
                    } else {
                        *l = *own;
                    }
                }
                None => limits.push(*own),
            }
        }
        process.set_rlimits(Some(limits));
    }
    // No capabilities in process.json: the container's own, never what
    // libcontainer would leave (host root's full set, or on the user
    // namespace path oci-spec's defaults).
    let Some(caps) = process.capabilities().clone() else {
        let own = base.process().as_ref().and_then(|p| p.capabilities().clone()).unwrap_or_else(no_capabilities);
        process.set_capabilities(Some(own));
        return Ok(());
    };
    // Under egress rules, no exec gets what would let it change or bypass
    // them, whatever the profile's ceiling (`docker exec --privileged`).
    if record.plan.egress.is_some() {
        if let Some(set) = brig_profiles::egress::net_admin_set(&caps) {
            return Err(Error::state(
                id,
                format!(
                    "profile `{}` refuses exec: CAP_NET_ADMIN in its {set} set would let the process change the job's egress rules",
                    record.profile.name
                ),
            ));
        }
        process.set_capabilities(Some(brig_profiles::egress::without_raw_network(&caps).0));
    }
    if any {
        return Ok(());
    }
    let allowed = base.process().as_ref().and_then(|p| p.capabilities().clone()).unwrap_or_default();
    let filter = |name: &str,
                  asked: &Option<Capabilities>,
                  have: &Option<Capabilities>|
     -> Result<Option<Capabilities>> {
        let Some(asked) = asked else { return Ok(None) };
        let have = have.clone().unwrap_or_default();
        let mut extra: Vec<String> = asked
            .iter()
            .filter(|c| !have.contains(c))
            .map(|c| format!("CAP_{c}"))
            .filter(|c| !brig_profiles::clients::DEFAULT_CAPABILITIES.contains(&c.as_str()))
            .collect();
        extra.sort();
        if let Some(first) = extra.first() {
            return Err(Error::state(
                id,
                format!(
                    "profile `{}` refuses exec: process.capabilities.{name} asks for `{first}`, which the container does not have",
                    record.profile.name
                ),
            ));
        }
        Ok(Some(asked.iter().filter(|c| have.contains(c)).copied().collect()))
    };
    let mut tightened = LinuxCapabilities::default();
    tightened.set_bounding(filter("bounding", caps.bounding(), allowed.bounding())?);
    tightened.set_effective(filter("effective", caps.effective(), allowed.effective())?);
    tightened.set_permitted(filter("permitted", caps.permitted(), allowed.permitted())?);
    tightened.set_inheritable(filter("inheritable", caps.inheritable(), allowed.inheritable())?);
    tightened.set_ambient(filter("ambient", caps.ambient(), allowed.ambient())?);
    process.set_capabilities(Some(tightened));
    Ok(())
}

/// Authorizes an `exec` like a launch: the token (Docker and Podman copy the
/// container's environment, `BRIG_TOKEN` included, into every exec) is
/// verified again, and the Cedar policies decide on the launch's context plus
/// what the exec runs. Containers created with authorization off need none.
/// `BRIG_TOKEN` from an exec's environment (Docker and Podman copy the
/// container's environment into every exec).
fn exec_token(process: &Process) -> Option<String> {
    let prefix = format!("{}=", crate::pipeline::TOKEN_ENV);
    process.env().iter().flatten().find_map(|e| e.strip_prefix(&prefix).map(str::to_string))
}

/// The token the container's launch spent: its issuer and `jti` (an exec
/// with that same token is not spent again).
fn launch_token(record: &RunRecord) -> Option<(&str, &str)> {
    Some((record.auth.identity.get("iss")?.as_str(), record.auth.jti.as_deref()?))
}

fn authorize_exec(
    g: &GlobalOpts,
    id: &str,
    record: &RunRecord,
    process: &Process,
    token: Option<String>,
    refused: Option<Error>,
) -> Result<()> {
    // Authorized when the launch was, and when the configuration now asks
    // for it (a container launched while authorization was off gets no
    // unauthorized exec once it is on).
    let config = crate::config::Config::load(&crate::config::Config::locate(g.config.as_deref()))?;
    if record.auth.mode != "required" && config.auth.mode != crate::config::AuthMode::Required {
        return refused.map_or(Ok(()), Err);
    }
    // Loaded while the token is verified (see `PolicyLoader`).
    let policies = brig_policy::PolicyLoader::start(&config.policy);
    let now = std::time::SystemTime::now();
    let ctx =
        record.auth.context.clone().unwrap_or_default().with_exec(brig_policy::ExecRequest::from_process(process));
    let deny = |reason: String| -> Error {
        let rec = brig_policy::AuditRecord::denied(now, id, brig_policy::Action::Exec, Some(&ctx), &reason);
        match crate::pipeline::audit(&config, &rec) {
            Ok(_) => Error::state(id, format!("exec refused: {reason}")),
            Err(e) => Error::Launch(e),
        }
    };
    // A refusal by the profile is audited like a policy's.
    if let Some(e) = refused {
        return Err(deny(e.to_string()));
    }
    let token = token.ok_or_else(|| deny("no token: exec needs BRIG_TOKEN in the process environment".into()))?;
    let verifier = brig_policy::TokenVerifier::new(&config.auth)
        .map_err(|e| deny(format!("token verification is not available: {e}")))?;
    // Checked without spending a single-use token first: a token refused
    // below (another principal's) stays usable for what it was minted for.
    let verified = verifier
        .verify_exec_without_consuming(&token, now, id, launch_token(record))
        .map_err(|e| deny(format!("token refused: {e}")))?;
    // Whose container it is: another tenant's token may be allowed to exec
    // (into its own containers) without being allowed into this one. A
    // container launched without authorization has no owner: every token
    // is another principal's there (deny by default, during a migration too).
    let owner = &record.auth.identity;
    let other_principal =
        owner.is_empty() || !crate::nsowner::same_principal(owner, &crate::pipeline::identity_of(&verified));
    if other_principal && config.auth.other_principal_exec == brig_policy::OtherPrincipalExec::Deny {
        return Err(deny(
            if owner.is_empty() {
                "the container was launched without authorization, for no principal; \
                 an exec into it is refused unless `[auth] other_principal_exec = \"policy\"` lets the policies decide"
            } else {
                "the container was launched for another principal (tenant, or issuer and subject); \
                 an exec into it is refused unless `[auth] other_principal_exec = \"policy\"` lets the policies decide"
            }
            .into(),
        ));
    }
    // Now spent (a single-use token), before the policies decide, as a
    // launch's is; a token another exec spent in between is refused here.
    let verified = verifier
        .verify_for_exec(&token, now, id, launch_token(record))
        .map_err(|e| deny(format!("token refused: {e}")))?;
    let mut ctx = ctx.clone();
    if let Some(exec) = ctx.exec.as_mut() {
        exec.other_principal = other_principal;
        exec.owner = brig_policy::ExecOwner {
            issuer: owner.get("iss").cloned(),
            subject: owner.get("sub").cloned(),
            tenant: owner.get("tenant").cloned(),
        };
    }
    let policies = policies.finish().map_err(|e| deny(format!("the policies cannot be used: {e}")))?;
    let decision = brig_policy::authorize(&policies, &verified, brig_policy::Action::Exec, &ctx);
    crate::pipeline::audit(
        &config,
        &brig_policy::AuditRecord::from_decision(now, id, brig_policy::Action::Exec, &decision, &verified, &ctx),
    )
    .map_err(Error::Launch)?;
    if !decision.allowed {
        return Err(Error::state(id, format!("exec refused: {}", decision.reason)));
    }
    Ok(())
}

/// `exec`: a new process in a running container, under the container's
/// profile (the spec's seccomp filter, Landlock and brig's seccomp filter are
/// applied to it as to the job).
pub fn exec(g: &GlobalOpts, args: &Exec) -> Result<i32> {
    let root = state_root(g)?;
    let id = args.id.as_str();
    let c = load(&root, id)?;
    // As runc: a created container takes processes too (only its init
    // exists, waiting for `start`); a paused one only when asked.
    match c.status() {
        ContainerStatus::Running | ContainerStatus::Created => {}
        ContainerStatus::Paused if args.ignore_paused => {}
        s => return Err(Error::state(id, format!("cannot exec in a container that is {}", status_name(s)))),
    }
    let dir = root.container_dir(id);
    let plan = std::fs::read(dir.join(PLAN_FILE)).map_err(|e| Error::io("reading", dir.join(PLAN_FILE), e))?;
    let record = RunRecord::load(&dir).map_err(|e| Error::io("reading", dir.join(state::RECORD_FILE), e))?;
    let base = bundle::read_spec(&dir.join(state::SPEC_FILE))?;

    let mut process = match &args.process {
        Some(p) => read_process(p)?,
        None => process_from_args(&base, args)?,
    };
    bundle::check_process(&process, "process").map_err(|(field, why)| Error::Usage(format!("exec: {field} {why}")))?;
    crate::host::check_apparmor(&process)
        .map_err(|why| Error::Usage(format!("exec: process.apparmorProfile {why}")))?;
    if !process.cwd().is_absolute() {
        return Err(Error::Usage(format!("process.cwd `{}`: not an absolute path", process.cwd().display())));
    }
    // The policy decides on the process as it will run: the capabilities
    // `harden_exec` fills in or strips (a process.json without any gets the
    // container's) are what `context.exec.capabilities` shows.
    // (`harden_exec` scrubs the token from the environment: taken first.)
    let token = exec_token(&process);
    let refused = harden_exec(id, &record, &base, &mut process).err();
    // A terminal brig relays itself (below) starts at the caller's size.
    if process.terminal().unwrap_or(false) && !args.detach && args.console_socket.is_none() {
        if let Some(size) = crate::console::caller_size() {
            process.set_console_size(Some(size));
        }
    }
    authorize_exec(g, id, &record, &process, token, refused)?;
    if let Some(userns) = &record.userns {
        crate::lifecycle::hand_stdio_to(userns.host_base.saturating_add(process.user().uid()));
    }
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let client_seccomp = base.linux().as_ref().and_then(|l| l.seccomp().clone());
    if client_seccomp.as_ref().is_some_and(libcontainer::seccomp::is_notify) {
        return Err(Error::state(id, "exec under a seccomp profile with SCMP_ACT_NOTIFY is not supported"));
    }
    let handover = Handover::for_exec(&plan, client_seccomp.clone())
        .map_err(|e| Error::io("preparing the supervisor for", &dir, e))?;
    let init = c.pid().ok_or_else(|| Error::state(id, "no init pid"))?;
    // What the job's processes get when the process names none, not the
    // caller's (a containerd shim runs at -998), on either path below: the
    // job's OOM score (brig takes it, and the process inherits it; where the
    // kernel does not let brig's caller go there, the caller's stays), and
    // runc's umask.
    if process.oom_score_adj().is_none() {
        if let Ok(job) = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", init.as_raw())) {
            let _ = std::fs::write("/proc/self/oom_score_adj", job.trim());
        }
    }
    if process.user().umask().is_none() {
        let mut user = process.user().clone();
        user.set_umask(Some(0o022));
        process.set_user(user);
    }
    // A foreground exec with a terminal and no console socket: brig relays
    // the terminal itself, as `runc exec -t` does (crate::console).
    let console = match process.terminal().unwrap_or(false) && !args.detach && args.console_socket.is_none() {
        true => Some(
            crate::console::ConsoleListener::new()
                .map_err(|e| Error::state(id, format!("making the socket for the exec's terminal: {e}")))?,
        ),
        false => None,
    };
    let console_socket = match &console {
        Some(l) => Some(l.path().to_path_buf()),
        None => args.console_socket.clone(),
    };
    // libcontainer's tenant path does not join user namespaces: brig's does,
    // whenever the job is in one (made by brig, by a rootless caller, or
    // asked for by the spec: Docker's userns-remap, Podman's --userns).
    if record.userns.is_some()
        || crate::rootless::exec_joins_userns(&dir)
        || crate::tenant::in_other_user_namespace(init.as_raw())
    {
        let executor_fds = handover.executor();
        let pid = crate::tenant::spawn(&crate::tenant::TenantRequest {
            init_pid: init.as_raw(),
            process: &process,
            cgroup_path: &record.cgroup_path,
            console_socket: console_socket.as_deref(),
            stub_fd: executor_fds.stub_fd(),
            plan_fd: executor_fds.plan_fd(),
            client_seccomp: client_seccomp.as_ref(),
            sealed_filters: executor_fds.sealed_filters(),
            preserve_fds: args.preserve_fds,
        })
        .map_err(|e| Error::state(id, format!("exec: {e}")))?;
        drop(handover);
        if let Some(pf) = &args.pid_file {
            write_pid_file(pf, pid.as_raw())?;
        }
        return match (args.detach, console) {
            (true, _) => Ok(0),
            (false, None) => wait_exit(id, pid),
            (false, Some(console)) => wait_with_terminal(id, pid, console),
        };
    }
    // libcontainer's tenant builder reads the process from a file: written
    // only on this path, and removed once the process has started (the
    // environment in it may hold secrets).
    let path = dir.join(format!("exec-{}-{nanos}.json", std::process::id()));
    let bytes = serde_json::to_vec(&process).map_err(|e| Error::state(id, e.to_string()))?;
    state::write_atomic(&path, &bytes, 0o600).map_err(|e| Error::io("writing", &path, e))?;
    let cleanup = RemoveFile(Some(path.clone()));
    // (The pid file is brig's to write: libcontainer's follows a link.)
    let builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(&root.path)
        .map_err(|e| Error::container(id, e))?
        .with_console_socket(console_socket.as_ref())
        .with_preserved_fds(args.preserve_fds)
        .with_executor(handover.executor())
        .as_tenant()
        // (libcontainer takes a console socket only for a detached process;
        // brig waits for this one itself either way.)
        .with_detach(args.detach || console.is_some())
        .with_ignore_paused(args.ignore_paused)
        .with_sub_cgroup(args.cgroup.clone())
        .with_process(Some(&path));
    let pid = builder.build().map_err(|e| Error::container(id, e))?;
    drop(cleanup);
    if let Some(pf) = &args.pid_file {
        write_pid_file(pf, pid.as_raw())?;
    }
    drop(handover);
    match (args.detach, console) {
        (true, _) => Ok(0),
        (false, None) => wait_exit(id, pid),
        (false, Some(console)) => wait_with_terminal(id, pid, console),
    }
}

/// [`wait_exit`] for a foreground exec whose terminal brig relays: the
/// master libcontainer sent to `console` is copied to and from brig's own
/// stdin and stdout until the process ends.
fn wait_with_terminal(id: &str, pid: nix::unistd::Pid, console: crate::console::ConsoleListener) -> Result<i32> {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
    // Signals first: none may end brig with the caller's terminal raw.
    let mut mask = SigSet::all();
    mask.remove(Signal::SIGKILL);
    mask.remove(Signal::SIGSTOP);
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
        .map_err(|e| Error::state(id, format!("blocking signals: {e}")))?;
    let terminal = match console.receive() {
        Ok(master) => crate::console::Terminal::attach(master),
        Err(e) => {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            return Err(Error::state(id, format!("taking the exec's terminal: {e}")));
        }
    };
    let result = terminal.relay(pid, &mask, crate::lifecycle::forwardable);
    drop(terminal);
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            tracing::warn!(id, "relaying the exec's terminal: {e}");
            wait_exit(id, pid)
        }
    }
}

/// Waits for a foreground exec'd process, forwarding the signals `brig exec`
/// gets to it (as `runc exec` does; `run` does the same for the job).
fn wait_exit(id: &str, pid: nix::unistd::Pid) -> Result<i32> {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
    let failed = |e: nix::errno::Errno| Error::state(id, format!("waiting for the exec'd process: {e}"));
    // The exit code if it has ended (`WNOHANG`), or waiting for it.
    let reap = |flags: Option<WaitPidFlag>| -> Result<Option<i32>> {
        loop {
            match waitpid(pid, flags) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Some(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Some(128 + sig as i32)),
                Ok(_) if flags.is_some() => return Ok(None),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(failed(e)),
            }
        }
    };
    let mut mask = SigSet::all();
    mask.remove(Signal::SIGKILL);
    mask.remove(Signal::SIGSTOP);
    let mut old = SigSet::empty();
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old)).is_err() {
        return reap(None).map(|c| c.unwrap_or(255));
    }
    let result = (|| {
        // It may have ended before the signals were blocked (its SIGCHLD
        // then went by).
        if let Some(code) = reap(Some(WaitPidFlag::WNOHANG))? {
            return Ok(code);
        }
        loop {
            match mask.wait() {
                Ok(Signal::SIGCHLD) => {
                    if let Some(code) = reap(Some(WaitPidFlag::WNOHANG))? {
                        return Ok(code);
                    }
                }
                Ok(Signal::SIGWINCH | Signal::SIGURG | Signal::SIGPIPE) | Err(_) => {}
                Ok(sig) => {
                    let _ = nix::sys::signal::kill(pid, sig);
                }
            }
        }
    })();
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    result
}

/// [`state::write_pid_file`], naming the file in the error.
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    state::write_pid_file(path, pid).map_err(|e| Error::io("writing", path, e))
}

struct RemoveFile(Option<PathBuf>);

impl Drop for RemoveFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub fn ps(g: &GlobalOpts, args: &Ps) -> Result<()> {
    let root = state_root(g)?;
    let id = args.id.as_str();
    let c = load(&root, id)?;
    let pids: Vec<i32> = if c.status() == ContainerStatus::Stopped {
        vec![]
    } else {
        cgroup_manager(id, &c)?
            .get_all_pids()
            .map_err(|e| Error::state(id, format!("listing processes: {e}")))?
            .iter()
            .map(|p| p.as_raw())
            .collect()
    };
    if args.format == "json" {
        crate::outln!("{}", serde_json::to_string(&pids).unwrap_or_else(|_| "[]".into()));
        return Ok(());
    }
    let ps_args = if args.ps_args.is_empty() { vec!["-ef".to_string()] } else { args.ps_args.clone() };
    let output = std::process::Command::new("ps").args(&ps_args).output().map_err(|e| Error::io("running", "ps", e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return Ok(()) };
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::Usage("ps output has no PID column".into()))?;
    crate::outln!("{header}");
    for line in lines {
        let pid = line.split_whitespace().nth(pid_col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            crate::outln!("{line}");
        }
    }
    Ok(())
}

pub fn list(g: &GlobalOpts, args: &List) -> Result<()> {
    let root = state_root(g)?;
    let ids = root.container_ids().map_err(|e| Error::io("reading", &root.path, e))?;
    let mut states = Vec::new();
    for id in &ids {
        if let Ok(c) = load(&root, id) {
            states.push(state_of(&root, &c));
        }
    }
    if args.quiet {
        for s in &states {
            crate::outln!("{}", s.id);
        }
    } else if args.format == "json" {
        crate::outln!("{}", serde_json::to_string(&states).unwrap_or_else(|_| "[]".into()));
    } else {
        let rows: Vec<[String; 6]> = states
            .iter()
            .map(|s| {
                let owner = if s.owner.is_empty() {
                    lifecycle::owner_of(&root.container_dir(&s.id)).map(|u| u.to_string()).unwrap_or_default()
                } else {
                    s.owner.clone()
                };
                [
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.clone(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    owner,
                ]
            })
            .collect();
        let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
        let mut widths = header.clone().map(|h| h.len());
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r.iter()) {
                *w = (*w).max(cell.len());
            }
        }
        for r in std::iter::once(&header).chain(rows.iter()) {
            let line: Vec<String> = r.iter().zip(widths.iter()).map(|(c, w)| format!("{c:<w$}")).collect();
            crate::outln!("{}", line.join("   ").trim_end());
        }
    }
    Ok(())
}

pub fn pause(g: &GlobalOpts, id: &str) -> Result<()> {
    let root = state_root(g)?;
    let mut c = load(&root, id)?;
    c.pause().map_err(|e| Error::container(id, e))
}

pub fn resume(g: &GlobalOpts, id: &str) -> Result<()> {
    let root = state_root(g)?;
    let mut c = load(&root, id)?;
    c.resume().map_err(|e| Error::container(id, e))
}

fn resources_from_flags(u: &Update) -> LinuxResources {
    if u.kernel_memory.is_some() || u.kernel_memory_tcp.is_some() {
        tracing::warn!(
            "--kernel-memory and --kernel-memory-tcp are ignored (kernel memory limits are gone, as in runc)"
        );
    }
    let mut r = LinuxResources::default();
    if u.memory.is_some() || u.memory_reservation.is_some() || u.memory_swap.is_some() {
        let mut m = oci_spec::runtime::LinuxMemory::default();
        m.set_limit(u.memory);
        m.set_reservation(u.memory_reservation);
        m.set_swap(u.memory_swap);
        r.set_memory(Some(m));
    }
    if u.cpu_period.is_some()
        || u.cpu_quota.is_some()
        || u.cpu_share.is_some()
        || u.cpuset_cpus.is_some()
        || u.cpuset_mems.is_some()
        || u.cpu_rt_period.is_some()
        || u.cpu_rt_runtime.is_some()
    {
        let mut c = oci_spec::runtime::LinuxCpu::default();
        c.set_period(u.cpu_period);
        c.set_quota(u.cpu_quota);
        c.set_shares(u.cpu_share);
        c.set_cpus(u.cpuset_cpus.clone());
        c.set_mems(u.cpuset_mems.clone());
        c.set_realtime_period(u.cpu_rt_period);
        c.set_realtime_runtime(u.cpu_rt_runtime);
        r.set_cpu(Some(c));
    }
    if let Some(limit) = u.pids_limit {
        let mut p = oci_spec::runtime::LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    if let Some(w) = u.blkio_weight {
        let mut b = oci_spec::runtime::LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    r
}

pub fn update(g: &GlobalOpts, args: &Update) -> Result<()> {
    let root = state_root(g)?;
    let id = args.id.as_str();
    let c = load(&root, id)?;
    // A stopped container has no processes to limit (its cgroup goes with
    // its `delete`): nothing to update, as with runc.
    if c.status() == ContainerStatus::Stopped {
        return Err(Error::state(id, "container is stopped: nothing to update"));
    }
    let resources = match &args.resources {
        Some(path) => {
            let mut text = Vec::new();
            let origin = if path == Path::new("-") {
                std::io::stdin().read_to_end(&mut text).map_err(|e| Error::io("reading", "stdin", e))?;
                PathBuf::from("<stdin>")
            } else {
                text = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
                path.clone()
            };
            let de = &mut serde_json::Deserializer::from_slice(&text);
            serde_path_to_error::deserialize::<_, LinuxResources>(de).map_err(|e| {
                Error::Bundle(bundle::BundleError::Invalid {
                    path: origin,
                    field: e.path().to_string(),
                    message: e.into_inner().to_string(),
                })
            })?
        }
        None => resources_from_flags(args),
    };
    let dir = root.container_dir(id);
    // One update at a time: on cgroup v1 the CPU period and quota are two
    // writes, and two updates that each pass the check could interleave
    // them into a pair above the ceiling.
    let _lock = std::fs::File::open(&dir)
        .and_then(|d| nix::fcntl::Flock::lock(d, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e.into()))
        .map_err(|e| Error::io("locking", &dir, e))?;
    // Without its run record the update cannot be held to the profile: refused.
    let record = RunRecord::load(&dir).map_err(|e| Error::io("reading", dir.join(state::RECORD_FILE), e))?;
    let current_cpu = crate::cgroup::current_cpu_max(&record.cgroup_path);
    let mut resources = crate::limits::fill_swap_without_swap(
        crate::limits::fill_cpu_pair(crate::limits::zero_means_unchanged(resources), current_cpu),
        &record.cgroup_ceiling,
    );
    crate::limits::check_update(&record, &resources).map_err(|m| Error::state(id, m))?;
    if let Some(path) = crate::rootless::own_v1_limits(&dir) {
        return crate::rootless::apply_v1(&path, &resources).map(|_| ()).map_err(|e| Error::state(id, e.to_string()));
    }
    // Device rules are not updated, as runc's `update` ignores them:
    // containerd's CRI sends the spec's whole resources, whose deny-all would
    // deny every device to the running job on cgroup v1 until the allows
    // follow (and fail under a job's own child cgroups); on v2 the device
    // program is built again below from the job's own rules, since libcgroups
    // builds it from the update's alone.
    if resources.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        tracing::debug!("container `{id}`: the update's device rules are ignored, as runc does");
    }
    let spec_path = dir.join(state::SPEC_FILE);
    let created = match bundle::read_spec(&spec_path) {
        Ok(spec) => Some(spec),
        // On v2 without the job's rules the program would lose its grants
        // (read before anything is written, so a failure changes nothing).
        Err(e) if crate::cgroup::is_unified() => {
            return Err(Error::state(id, format!("reading the job's device rules from its effective spec: {e}")))
        }
        Err(_) => None,
    };
    let created = created.as_ref().and_then(|s| s.linux().as_ref()?.resources().as_ref());
    // What libcgroups leaves out on cgroup v2 (swap equal to the limit is
    // "no swap": it skips writing the 0), as at create; written first, so
    // that a later write that fails cannot leave a new limit over old swap.
    crate::cgroup::apply_fixups(&record.cgroup_path, &resources, None)
        .map_err(|e| Error::state(id, format!("updating the cgroup: {e}")))?;
    // On cgroup v1 brig writes the CPU pair itself, in the order that keeps
    // every intermediate pair within the old or the new one (libcgroups
    // writes the period first: a shrinking period over the old quota is
    // more CPUs than either).
    let v1_cpu_pair = match crate::cgroup::is_unified() {
        true => None,
        false => resources.cpu_mut().as_mut().map(|cpu| {
            let pair = (cpu.quota(), cpu.period());
            cpu.set_quota(None);
            cpu.set_period(None);
            pair
        }),
    };
    // The OOM killer stays as the job was created (libcgroups writes the
    // setting with every memory update; an update does not change it).
    let disable_oom_killer = created.and_then(|r| r.memory().as_ref()?.disable_oom_killer()).unwrap_or(false);
    // A job created rootless has no device program (it could not load one):
    // an update by root gives it one that allows what it had, everything.
    let created_rootless = crate::rootless::RootlessRecord::load(&dir).is_some();
    let devices = match (crate::cgroup::is_unified(), created_rootless) {
        (true, false) => created.and_then(|r| r.devices().clone()),
        (true, true) => Some(vec![oci_spec::runtime::LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rwm")
            .build()
            .map_err(|e| Error::state(id, format!("building the device rules: {e}")))?]),
        // v1: only the default allows are written again (they only add).
        (false, _) => None,
    };
    resources.set_devices(devices);
    // A rootless caller cannot load the device program; libcgroups then goes
    // on without it, as at create.
    cgroup_manager(id, &c)?
        .with_rootless(crate::rootless::is_rootless() || created_rootless)
        .apply(&ControllerOpt { resources: &resources, disable_oom_killer, oom_score_adj: None, freezer_state: None })
        .map_err(|e| Error::state(id, format!("updating the cgroup: {e}")))?;
    if let Some((quota, period)) = v1_cpu_pair {
        crate::cgroup::write_v1_cpu_pair(&record.cgroup_path, quota, period, current_cpu)
            .map_err(|e| Error::state(id, format!("updating the cgroup's CPU quota: {e}")))?;
    }
    Ok(())
}

pub fn events(g: &GlobalOpts, id: &str, stats: bool, interval: std::time::Duration) -> Result<()> {
    let root = state_root(g)?;
    let c = load(&root, id)?;
    let running = |c: &Container| matches!(c.status(), ContainerStatus::Running | ContainerStatus::Paused);
    if !running(&c) {
        return Err(Error::state(id, format!("container is {}", status_name(c.status()))));
    }
    let cgroup_path = c.spec().map_err(|e| Error::container(id, e))?.cgroup_path;
    let print_stats = || -> Result<()> {
        let data = cgroup_manager(id, &c)?.stats().map_err(|e| Error::state(id, format!("reading stats: {e}")))?;
        let data = crate::events::runc_stats(&data, &crate::events::HostCgroup(&cgroup_path));
        let event = serde_json::json!({ "type": "stats", "id": id, "data": data });
        crate::outln!("{event}");
        Ok(())
    };
    print_stats()?;
    if stats {
        return Ok(());
    }
    // As `runc events`: statistics every `interval`, and an `oom` event as
    // soon as the kernel OOM-kills a process of the container (the cgroup's
    // oom_kill count read five times a second), until it stops.
    let interval = interval.max(std::time::Duration::from_millis(10));
    let tick = interval.min(std::time::Duration::from_millis(200));
    let mut ooms = crate::cgroup::usage(&cgroup_path).oom_kills;
    let mut next = std::time::Instant::now() + interval;
    loop {
        std::thread::sleep(tick.min(next.saturating_duration_since(std::time::Instant::now())));
        let now_ooms = crate::cgroup::usage(&cgroup_path).oom_kills;
        if now_ooms > ooms {
            // (One event for however many kills since the last look, as the
            // kernel's notification coalesces them for runc.)
            crate::outln!("{}", serde_json::json!({ "type": "oom", "id": id }));
            ooms = now_ooms;
        }
        if std::time::Instant::now() >= next {
            match load(&root, id) {
                Ok(c) if running(&c) => print_stats()?,
                // Stopped or deleted: the stream ends.
                _ => return Ok(()),
            }
            next += interval;
        }
    }
}

/// Every capability Linux 6.x defines.
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub fn features() -> Result<()> {
    let caps: Vec<&str> = ALL_CAPABILITIES.to_vec();
    let f = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.1",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "iversion",
            "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion", "nolazytime",
            "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind", "relatime", "remount", "ro",
            "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "silent", "slave", "strictatime",
            "suid", "sync", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]
            },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
            "mountExtensions": { "idmap": { "enabled": true } }
        },
        "annotations": {
            "io.github.brig.version": crate::VERSION,
            "io.github.brig.supervisor": "brig-init",
            "dev.brig.profiles": "restricted,standard,permissive"
        }
    });
    crate::outln!("{}", serde_json::to_string_pretty(&f).unwrap_or_default());
    Ok(())
}

/// runc's template spec (`runc spec`), optionally rootless.
pub fn template_spec(rootless: bool) -> Spec {
    let mut spec = Spec::default();
    // oci-spec's default names its own project; runc's template says "runc".
    spec.set_hostname(Some("brig".to_string()));
    // runc's template denies every device the default set does not allow
    // (oci-spec's default has no rule at all).
    if let Some(r) = spec.linux_mut().as_mut().and_then(|l| l.resources_mut().as_mut()) {
        r.set_devices(
            oci_spec::runtime::LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()
                .ok()
                .map(|deny_all| vec![deny_all]),
        );
    }
    if rootless {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let json = serde_json::json!({
            "uidMappings": [{"containerID": 0, "hostID": uid, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": gid, "size": 1}],
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}, {"type": "user"}],
            "maskedPaths": spec.linux().as_ref().and_then(|l| l.masked_paths().clone()),
            "readonlyPaths": spec.linux().as_ref().and_then(|l| l.readonly_paths().clone()),
        });
        if let Ok(linux) = serde_json::from_value(json) {
            spec.set_linux(Some(linux));
        }
        if let Some(mounts) = spec.mounts_mut() {
            for m in mounts.iter_mut() {
                if m.destination() == Path::new("/sys") {
                    m.set_typ(Some("none".into()));
                    m.set_source(Some(PathBuf::from("/sys")));
                    m.set_options(Some(["rbind", "nosuid", "noexec", "nodev", "ro"].map(String::from).to_vec()));
                }
                if let Some(opts) = m.options().clone() {
                    m.set_options(Some(opts.into_iter().filter(|o| !o.starts_with("gid=")).collect()));
                }
            }
        }
    }
    spec
}

pub fn spec(args: &SpecCmd) -> Result<()> {
    let dir = args.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
    let path = dir.join("config.json");
    if path.exists() {
        return Err(Error::Usage(format!("`{}` already exists; remove it first", path.display())));
    }
    let text = serde_json::to_string_pretty(&template_spec(args.rootless)).map_err(|e| Error::Usage(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| Error::io("writing", &path, e))
}
