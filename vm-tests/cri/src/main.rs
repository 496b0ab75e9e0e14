//! brig-cri-test: drives containerd's CRI plugin through the CRI gRPC API
//! (runtime.v1), the calls the kubelet makes for a pod, with the pod's runtime
//! handler set to brig's (`RuntimeClass: brig`), and checks what the jobs saw.
//!
//! Usage (vm-tests/cri/run.sh passes all of these):
//!   brig-cri-test --socket SOCK --handler NAME --image REF --log-dir DIR
//!                 --brig WRAPPER --brig-root DIR [--cgroup-parent PATH]
//!                 [--profiles restricted,standard,permissive]
//!
//! For each profile in `--profiles` (default `restricted`), one pod whose
//! annotation `dev.brig.profile` names it: RunPodSandbox, three containers
//! (a job that runs to its end, a long-running one with ExecSync and
//! StopContainer, one stopped by its `dev.brig.timeout`), then
//! StopPodSandbox and RemovePodSandbox. What a job must see under each
//! profile is in `Expect::of`.
//!
//! `--brig WRAPPER --brig-root DIR` is how the test reads brig's own view of a
//! container (`WRAPPER --root DIR state ID`): DIR is the runc shim's root for
//! the handler and namespace (`<Root option, default /run/containerd/runc>/k8s.io`).
//!
//! Prints one line per check (`PASS name` / `FAIL name: why`) and ends with
//! `N passed, N failed`; exits 1 if a check failed, 2 on a usage error. Every
//! call has a deadline, and the pod is stopped and removed whatever happened.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest, CreateContainerRequest,
    ExecSyncRequest, ImageSpec, ImageStatusRequest, LinuxContainerConfig, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListContainersRequest, ListPodSandboxRequest, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxFilter, PodSandboxMetadata, PodSandboxState, PodSandboxStatusRequest,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest, VersionRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

/// What one gRPC call may take (the job runs meanwhile, never in a call).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a job may take to exit by itself.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Args {
    socket: PathBuf,
    handler: String,
    image: String,
    log_dir: PathBuf,
    brig: PathBuf,
    brig_root: PathBuf,
    cgroup_parent: String,
    profiles: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut m: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let Some(name) = k.strip_prefix("--") else { return Err(format!("unexpected argument `{k}`")) };
        let v = it.next().ok_or_else(|| format!("`{k}` needs a value"))?;
        m.insert(name.to_string(), v);
    }
    let mut take = |k: &str| m.remove(k).ok_or_else(|| format!("missing --{k}"));
    let args = Args {
        socket: take("socket")?.into(),
        handler: take("handler")?,
        image: take("image")?,
        log_dir: take("log-dir")?.into(),
        brig: take("brig")?.into(),
        brig_root: take("brig-root")?.into(),
        cgroup_parent: take("cgroup-parent").unwrap_or_default(),
        profiles: take("profiles").unwrap_or_else(|_| "restricted".into()).split(',').map(str::to_string).collect(),
    };
    if let Some(p) = args.profiles.iter().find(|p| Expect::of(p).is_none()) {
        return Err(format!("--profiles: no expectations for `{p}` (restricted, standard, permissive)"));
    }
    if let Some(k) = m.keys().next() {
        return Err(format!("unknown option --{k}"));
    }
    Ok(args)
}

/// The results so far.
#[derive(Debug, Default)]
struct Checks {
    passed: u32,
    failed: u32,
    /// `[profile] ` while a pod of that profile is tested.
    prefix: String,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: impl Display) -> bool {
        if ok {
            self.passed += 1;
            println!("PASS {}{name}", self.prefix);
        } else {
            self.failed += 1;
            println!("FAIL {}{name}: {detail}", self.prefix);
        }
        ok
    }
    fn pass(&mut self, name: &str) {
        self.check(name, true, "");
    }
    fn fail(&mut self, name: &str, detail: impl Display) {
        self.check(name, false, detail);
    }
}

/// Awaits a gRPC call with a deadline; the error is the status message.
async fn call<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Err(_) => Err(format!("{what}: no answer within {CALL_TIMEOUT:?}")),
        Ok(Err(s)) => Err(format!("{what}: {:?}: {}", s.code(), s.message())),
        Ok(Ok(r)) => Ok(r.into_inner()),
    }
}

async fn connect(socket: &Path) -> Result<Channel, String> {
    let path = socket.to_path_buf();
    // The URI is required by the API and ignored by the connector.
    Endpoint::try_from("http://[::]:0")
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(10))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|e| format!("connecting to {}: {e}", socket.display()))
}

/// `brig --root ROOT state ID`, parsed.
fn brig_state(args: &Args, id: &str) -> Result<serde_json::Value, String> {
    let out = std::process::Command::new(&args.brig)
        .arg("--root")
        .arg(&args.brig_root)
        .args(["state", id])
        .output()
        .map_err(|e| format!("running {}: {e}", args.brig.display()))?;
    if !out.status.success() {
        return Err(format!("brig state {id}: {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("brig state {id}: {e}"))
}

fn annotation<'a>(state: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    state.get("annotations")?.get(key)?.as_str()
}

/// What a job must see under each profile brig is asked for.
#[derive(Debug, Clone, Copy)]
struct Expect {
    profile: &'static str,
    /// `NoNewPrivs`, `Seccomp` (2: filtered) and `CapEff` of the job's root process.
    no_new_privs: &'static str,
    seccomp: &'static str,
    cap_eff: &'static str,
    /// Each job in a user namespace of its own (`user_namespace.mode = "per_job"`).
    own_userns: bool,
    /// A private network namespace (`network.mode = "none"`) rather than the pod's.
    private_net: bool,
    read_only_rootfs: bool,
}

impl Expect {
    fn of(profile: &str) -> Option<Expect> {
        match profile {
            "restricted" => Some(Expect {
                profile: "restricted",
                no_new_privs: "1",
                seccomp: "2",
                cap_eff: "0000000000000000",
                own_userns: true,
                private_net: true,
                read_only_rootfs: true,
            }),
            // standard's 10 capabilities (CHOWN DAC_OVERRIDE FOWNER FSETID
            // KILL SETGID SETUID SETPCAP NET_BIND_SERVICE SYS_CHROOT), not
            // containerd's default 14 (a80425fb: + NET_RAW MKNOD AUDIT_WRITE
            // SETFCAP), the user namespace the spec asks for (none), the pod's
            // network.
            "standard" => Some(Expect {
                profile: "standard",
                no_new_privs: "1",
                seccomp: "2",
                cap_eff: "00000000000405fb",
                own_userns: false,
                private_net: false,
                read_only_rootfs: false,
            }),
            // runc's behaviour: the spec as the CRI plugin wrote it for a
            // container without a securityContext (containerd's 14 default
            // capabilities, no no_new_privs, no seccomp: the kubelet's default
            // is Unconfined), the pod's network.
            "permissive" => Some(Expect {
                profile: "permissive",
                no_new_privs: "0",
                seccomp: "0",
                cap_eff: "00000000a80425fb",
                own_userns: false,
                private_net: false,
                read_only_rootfs: false,
            }),
            _ => None,
        }
    }
}

/// Checks brig's view of a container: the pass-through annotations arrived
/// and brig chose the profile they name.
fn check_brig_state(
    c: &mut Checks,
    args: &Args,
    x: Expect,
    what: &str,
    id: &str,
    want: &[(&str, &str)],
    absent: &[&str],
) {
    let st = match brig_state(args, id) {
        Ok(s) => s,
        Err(e) => {
            c.fail(&format!("{what}: brig state"), e);
            return;
        }
    };
    for (k, v) in want {
        let got = annotation(&st, k);
        c.check(&format!("{what}: annotation {k}={v} in the OCI spec"), got == Some(v), format!("got {got:?}"));
    }
    for k in absent {
        let got = annotation(&st, k);
        c.check(&format!("{what}: annotation {k} not passed through"), got.is_none(), format!("got {got:?}"));
    }
    let profile = st.pointer("/brig/profile").and_then(|p| p.as_str());
    c.check(&format!("{what}: brig.profile == {}", x.profile), profile == Some(x.profile), format!("got {profile:?}"));
}

/// The uid_map of a live process of the container (`brig state`'s pid).
fn host_uid_map(args: &Args, id: &str) -> Result<String, String> {
    let st = brig_state(args, id)?;
    let pid = st.get("pid").and_then(|p| p.as_i64()).filter(|p| *p > 0).ok_or("no pid in brig state")?;
    std::fs::read_to_string(format!("/proc/{pid}/uid_map")).map_err(|e| format!("/proc/{pid}/uid_map: {e}"))
}

/// The first mapping's host base, from a uid_map's text.
fn uid_map_base(map: &str) -> Option<u64> {
    let mut f = map.split_whitespace();
    let (_inside, host) = (f.next()?, f.next()?);
    host.parse().ok()
}

/// The job's output from a CRI log file (`TIME STREAM TAG TEXT` lines).
fn read_cri_log(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = String::new();
    for line in text.lines() {
        let mut f = line.splitn(4, ' ');
        let (_time, stream, _tag, body) = (f.next(), f.next(), f.next(), f.next().unwrap_or(""));
        if matches!(stream, Some("stdout") | Some("stderr")) {
            out.push_str(body);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The value of `Key:` in /proc/self/status output.
fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
}

/// Checks the hardening a job or exec reported (its /proc/self/status).
fn check_hardening(c: &mut Checks, x: Expect, what: &str, text: &str) {
    for (key, want) in [("NoNewPrivs", x.no_new_privs), ("Seccomp", x.seccomp), ("CapEff", x.cap_eff)] {
        let got = status_field(text, key);
        c.check(&format!("{what}: {key} {want}"), got == Some(want), format!("got {got:?} in {text:?}"));
    }
}

struct Cri {
    rt: RuntimeServiceClient<Channel>,
    img: ImageServiceClient<Channel>,
}

impl Cri {
    async fn container_state(&mut self, id: &str) -> Result<k8s_cri::v1::ContainerStatus, String> {
        let r = call(
            "ContainerStatus",
            self.rt.container_status(ContainerStatusRequest { container_id: id.into(), verbose: false }),
        )
        .await?;
        r.status.ok_or_else(|| "ContainerStatus: no status".into())
    }

    async fn wait_exited(&mut self, id: &str, limit: Duration) -> Result<k8s_cri::v1::ContainerStatus, String> {
        let start = Instant::now();
        loop {
            let st = self.container_state(id).await?;
            if st.state == ContainerState::ContainerExited as i32 {
                return Ok(st);
            }
            if start.elapsed() > limit {
                return Err(format!("still {:?} after {limit:?}", ContainerState::try_from(st.state)));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn exec(&mut self, id: &str, cmd: &[&str]) -> Result<(i32, String, String), String> {
        let r = call(
            "ExecSync",
            self.rt.exec_sync(ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 20,
            }),
        )
        .await?;
        Ok((r.exit_code, String::from_utf8_lossy(&r.stdout).into(), String::from_utf8_lossy(&r.stderr).into()))
    }
}

/// A container of the pod, as the kubelet describes it.
fn container(args: &Args, name: &str, command: &[&str], annotations: &[(&str, &str)], log: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata { name: name.into(), attempt: 0 }),
        image: Some(ImageSpec { image: args.image.clone(), ..Default::default() }),
        command: command.iter().map(|s| s.to_string()).collect(),
        annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        labels: [("brig-cri-test".to_string(), name.to_string())].into(),
        log_path: log.into(),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The namespaces the kubelet asks for by default (no hostNetwork, hostPID,
/// hostIPC, shareProcessNamespace): the pod's network and IPC, a pid
/// namespace per container. (The CRI's zero value would be POD for pid too:
/// a pod-wide pid namespace, `shareProcessNamespace: true`.)
fn kubelet_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// What the job prints: its hardening, user namespace, network interfaces
/// (from /proc/net/dev) and local IPv4 addresses (/proc/net/fib_trie: `ip`
/// needs a raw netlink socket, which brig's seccomp filters refuse), and
/// whether / is writable.
const JOB_SCRIPT: &str = "grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status; \
                          echo uid_map: $(cat /proc/self/uid_map); \
                          echo ifaces: $(awk -F: 'NR > 2 { gsub(/ /, \"\", $1); print $1 }' /proc/net/dev); \
                          echo addrs: $(awk '/32 host LOCAL/ { print a } { a = $2 }' /proc/net/fib_trie | sort -u); \
                          if touch /rootfs-write 2>/dev/null; then echo rootfs: writable; else echo rootfs: read-only; fi; \
                          echo job done";

/// One pod with the given profile, from RunPodSandbox to the removal of its
/// containers; `pod` gets the sandbox id as soon as there is one.
async fn scenario(
    c: &mut Checks,
    cri: &mut Cri,
    args: &Args,
    x: Expect,
    pod: &mut Option<String>,
) -> Result<(), String> {
    // -------------------------------------------------------------- the pod
    let name = format!("brig-cri-{}", x.profile);
    let uid = format!("{name}-{}", std::process::id());
    let log_dir = args.log_dir.join(&name);
    std::fs::create_dir_all(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    let pod_annotations: HashMap<String, String> = [
        ("dev.brig.profile", x.profile),
        ("dev.brig.timeout", "5m"),
        // Not in pod_annotations: must not reach the OCI spec.
        ("example.com/not-passed", "x"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let pod_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata { name: name.clone(), uid, namespace: "default".into(), attempt: 0 }),
        hostname: name.clone(),
        log_directory: log_dir.to_string_lossy().into(),
        labels: [("app".to_string(), "brig-cri-test".to_string())].into(),
        annotations: pod_annotations,
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: args.cgroup_parent.clone(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = Instant::now();
    let run = call(
        "RunPodSandbox",
        cri.rt.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod_config.clone()),
            runtime_handler: args.handler.clone(),
        }),
    )
    .await;
    let sandbox = match run {
        Ok(r) => {
            c.pass(&format!("RunPodSandbox (runtime handler {}) in {:.1} s", args.handler, t.elapsed().as_secs_f64()));
            r.pod_sandbox_id
        }
        Err(e) => {
            c.fail("RunPodSandbox", e);
            return Err("no pod".into());
        }
    };
    *pod = Some(sandbox.clone());

    let st = call(
        "PodSandboxStatus",
        cri.rt.pod_sandbox_status(PodSandboxStatusRequest { pod_sandbox_id: sandbox.clone(), verbose: false }),
    )
    .await?;
    let status = st.status.unwrap_or_default();
    c.check(
        "PodSandboxStatus: SANDBOX_READY",
        status.state == PodSandboxState::SandboxReady as i32,
        format!("state {:?}", PodSandboxState::try_from(status.state)),
    );
    c.check(
        &format!("PodSandboxStatus: runtime handler {}", args.handler),
        status.runtime_handler == args.handler,
        format!("got {:?}", status.runtime_handler),
    );
    let pod_ip = status.network.map(|n| n.ip).unwrap_or_default();
    c.check(&format!("PodSandboxStatus: pod IP from CNI ({pod_ip})"), !pod_ip.is_empty(), "no IP");

    let want = [("dev.brig.profile", x.profile), ("dev.brig.timeout", "5m")];
    check_brig_state(c, args, x, "sandbox", &sandbox, &want, &["example.com/not-passed"]);
    let sandbox_map = host_uid_map(args, &sandbox);
    let sandbox_base = sandbox_map.as_deref().ok().and_then(uid_map_base);
    if x.own_userns {
        c.check(
            "sandbox: in a user namespace of its own (uid_map host base > 0)",
            sandbox_base.is_some_and(|b| b > 0),
            format!("{sandbox_map:?}"),
        );
    } else {
        c.check(
            "sandbox: in the host's user namespace (as the spec asks)",
            sandbox_base == Some(0),
            format!("{sandbox_map:?}"),
        );
    }

    // ------------------------------------------- a job that runs to its end
    let job = create_and_start(
        c,
        cri,
        &sandbox,
        &pod_config,
        container(args, "job", &["/bin/sh", "-c", JOB_SCRIPT], &[], "job.log"),
    )
    .await?;
    match cri.wait_exited(&job, EXIT_TIMEOUT).await {
        Err(e) => c.fail("job: exits", e),
        Ok(st) => {
            c.check("job: ContainerStatus exit code 0", st.exit_code == 0, format!("exit code {}", st.exit_code));
            let log = PathBuf::from(&st.log_path);
            c.check(
                "job: ContainerStatus log path is <log_directory>/job.log",
                log == log_dir.join("job.log"),
                format!("{}", log.display()),
            );
            match read_cri_log(&log) {
                Err(e) => c.fail("job: log file", e),
                Ok(out) => {
                    for l in out.lines() {
                        println!("      | {l}");
                    }
                    c.check("job: the log has the job's output", out.contains("job done"), format!("{out:?}"));
                    check_hardening(c, x, "job", &out);
                    let field = |k: &str| out.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("").to_string();
                    let map = field("uid_map: ");
                    let base = uid_map_base(&map);
                    if x.own_userns {
                        c.check(
                            "job: in a user namespace, not the host's (uid_map host base > 0)",
                            base.is_some_and(|b| b > 0),
                            format!("uid_map {map:?}"),
                        );
                        // One user namespace per pod (as `hostUsers: false`):
                        // the sandbox's, whose IPC and UTS the job joins.
                        c.check(
                            "job: in the pod's user namespace (the sandbox's ID range)",
                            base.is_some() && base == sandbox_base,
                            format!("job {base:?}, sandbox {sandbox_base:?}"),
                        );
                    } else {
                        c.check(
                            "job: no user namespace (as the spec asks)",
                            base == Some(0),
                            format!("uid_map {map:?}"),
                        );
                    }
                    let (ifaces, addrs) = (field("ifaces: "), field("addrs: "));
                    if x.private_net {
                        c.check(
                            "job: a private network namespace (loopback only, not the pod's)",
                            ifaces.trim() == "lo" && !addrs.contains(pod_ip.as_str()),
                            format!("interfaces {ifaces:?}, addresses {addrs:?}"),
                        );
                    } else {
                        c.check(
                            &format!("job: in the pod's network namespace (has {pod_ip})"),
                            !pod_ip.is_empty() && addrs.split_whitespace().any(|a| a == pod_ip),
                            format!("interfaces {ifaces:?}, addresses {addrs:?}"),
                        );
                    }
                    if x.read_only_rootfs {
                        c.check(
                            "job: read-only root filesystem",
                            out.contains("rootfs: read-only"),
                            format!("{out:?}"),
                        );
                    }
                }
            }
        }
    }
    // The CRI plugin deletes a container's task (`brig delete`) as soon as
    // it exits: brig's state of the job is gone; svc below is checked live.

    // ------------------------- a long-running container, with ExecSync into it
    let svc = create_and_start(
        c,
        cri,
        &sandbox,
        &pod_config,
        // A service that handles SIGTERM (a job without a handler ignores it,
        // as a pid 1 does under runc; StopContainer then waits for SIGKILL).
        container(
            args,
            "svc",
            &["/bin/sh", "-c", "trap 'exit 143' TERM; sleep 300 & wait"],
            &[("dev.brig.timeout", "2m")],
            "svc.log",
        ),
    )
    .await?;
    let st = cri.container_state(&svc).await?;
    c.check(
        "svc: ContainerStatus CONTAINER_RUNNING",
        st.state == ContainerState::ContainerRunning as i32,
        format!("{:?}", ContainerState::try_from(st.state)),
    );
    // A container annotation (container_annotations) overrides the pod's.
    check_brig_state(
        c,
        args,
        x,
        "svc",
        &svc,
        &[("dev.brig.profile", x.profile), ("dev.brig.timeout", "2m")],
        &["example.com/not-passed"],
    );
    let status_cmd = "grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status; echo exec ok";
    match cri.exec(&svc, &["/bin/sh", "-c", status_cmd]).await {
        Err(e) => c.fail("svc: ExecSync", e),
        Ok((code, out, err)) => {
            c.check(
                "svc: ExecSync exit code 0 and output",
                code == 0 && out.contains("exec ok"),
                format!("{code} {out:?} {err:?}"),
            );
            check_hardening(c, x, "svc exec", &out);
        }
    }
    match cri.exec(&svc, &["/bin/sh", "-c", "echo to-stderr >&2; exit 3"]).await {
        Err(e) => c.fail("svc: ExecSync exit code 3", e),
        Ok((code, _, err)) => {
            c.check(
                "svc: ExecSync exit code 3 and stderr",
                code == 3 && err.contains("to-stderr"),
                format!("{code} {err:?}"),
            );
        }
    }
    let t = Instant::now();
    match call("StopContainer", cri.rt.stop_container(StopContainerRequest { container_id: svc.clone(), timeout: 10 }))
        .await
    {
        Err(e) => c.fail("svc: StopContainer", e),
        Ok(_) => {
            let st = cri.container_state(&svc).await?;
            // SIGTERM: the supervisor forwards it (the job handles it), and
            // the job exits 143 at once.
            c.check(
                &format!("svc: StopContainer -> exited 143 (SIGTERM) in {:.1} s", t.elapsed().as_secs_f64()),
                st.state == ContainerState::ContainerExited as i32 && st.exit_code == 143,
                format!("{:?} exit code {}", ContainerState::try_from(st.state), st.exit_code),
            );
        }
    }

    // -------------------- a container annotation brig acts on: the timeout
    let slow = create_and_start(
        c,
        cri,
        &sandbox,
        &pod_config,
        container(args, "timeout", &["/bin/sleep", "120"], &[("dev.brig.timeout", "2s")], "timeout.log"),
    )
    .await?;
    let t = Instant::now();
    match cri.wait_exited(&slow, Duration::from_secs(30)).await {
        Err(e) => c.fail("timeout: dev.brig.timeout=2s stops the job", e),
        Ok(st) => {
            let secs = t.elapsed().as_secs_f64();
            c.check(
                &format!("timeout: dev.brig.timeout=2s stops the job (exit code {}, after {secs:.1} s)", st.exit_code),
                st.exit_code == 143 && secs < 15.0,
                format!("exit code {} after {secs:.1} s", st.exit_code),
            );
        }
    }

    for id in [&job, &svc, &slow] {
        if let Err(e) =
            call("RemoveContainer", cri.rt.remove_container(RemoveContainerRequest { container_id: id.clone() })).await
        {
            c.fail("RemoveContainer", e);
        }
    }
    let left = call("ListContainers", cri.rt.list_containers(ListContainersRequest { filter: None })).await?;
    let left: Vec<_> = left.containers.iter().filter(|x| x.pod_sandbox_id == sandbox).map(|x| x.id.clone()).collect();
    c.check("RemoveContainer: no container left in the pod", left.is_empty(), format!("{left:?}"));
    Ok(())
}

async fn create_and_start(
    c: &mut Checks,
    cri: &mut Cri,
    sandbox: &str,
    pod_config: &PodSandboxConfig,
    config: ContainerConfig,
) -> Result<String, String> {
    let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
    let created = call(
        "CreateContainer",
        cri.rt.create_container(CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        }),
    )
    .await;
    let id = match created {
        Ok(r) => {
            c.pass(&format!("{name}: CreateContainer"));
            r.container_id
        }
        Err(e) => {
            c.fail(&format!("{name}: CreateContainer"), e);
            return Err(format!("{name}: not created"));
        }
    };
    match call("StartContainer", cri.rt.start_container(StartContainerRequest { container_id: id.clone() })).await {
        Ok(_) => c.pass(&format!("{name}: StartContainer")),
        Err(e) => {
            c.fail(&format!("{name}: StartContainer"), e);
            let _ = call("RemoveContainer", cri.rt.remove_container(RemoveContainerRequest { container_id: id })).await;
            return Err(format!("{name}: not started"));
        }
    }
    Ok(id)
}

/// The CRI server answers and has the image.
async fn preflight(c: &mut Checks, cri: &mut Cri, args: &Args) -> Result<(), String> {
    let v = call("Version", cri.rt.version(VersionRequest { version: "v1".into() })).await?;
    c.pass(&format!("Version: {} {} (CRI {})", v.runtime_name, v.runtime_version, v.runtime_api_version));
    let img = call(
        "ImageStatus",
        cri.img.image_status(ImageStatusRequest {
            image: Some(ImageSpec { image: args.image.clone(), ..Default::default() }),
            verbose: false,
        }),
    )
    .await?;
    if c.check(&format!("ImageStatus: {} present", args.image), img.image.is_some(), "not found") {
        Ok(())
    } else {
        Err("no image".into())
    }
}

/// Stops and removes the pod (whatever the scenario left) and checks that
/// neither CRI nor brig still knows it.
async fn teardown(c: &mut Checks, cri: &mut Cri, args: &Args, sandbox: &str) {
    let t = Instant::now();
    match call("StopPodSandbox", cri.rt.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: sandbox.into() }))
        .await
    {
        Ok(_) => c.pass(&format!("StopPodSandbox in {:.1} s", t.elapsed().as_secs_f64())),
        Err(e) => c.fail("StopPodSandbox", e),
    }
    match call(
        "RemovePodSandbox",
        cri.rt.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: sandbox.into() }),
    )
    .await
    {
        Ok(_) => c.pass("RemovePodSandbox"),
        Err(e) => c.fail("RemovePodSandbox", e),
    }
    let filter = PodSandboxFilter { id: sandbox.into(), ..Default::default() };
    match call("ListPodSandbox", cri.rt.list_pod_sandbox(ListPodSandboxRequest { filter: Some(filter) })).await {
        Ok(l) => {
            c.check("ListPodSandbox: the pod is gone", l.items.is_empty(), format!("{} left", l.items.len()));
        }
        Err(e) => c.fail("ListPodSandbox", e),
    }
    c.check("brig: no state left for the pod", brig_state(args, sandbox).is_err(), "brig state still answers");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("brig-cri-test: {e}");
            eprintln!("usage: brig-cri-test --socket SOCK --handler NAME --image REF --log-dir DIR --brig WRAPPER --brig-root DIR [--cgroup-parent PATH] [--profiles P1,P2]");
            return ExitCode::from(2);
        }
    };
    let mut c = Checks::default();
    let channel = match connect(&args.socket).await {
        Ok(ch) => ch,
        Err(e) => {
            c.fail("connect", e);
            println!("{} passed, {} failed", c.passed, c.failed);
            return ExitCode::from(1);
        }
    };
    let mut cri = Cri { rt: RuntimeServiceClient::new(channel.clone()), img: ImageServiceClient::new(channel) };
    if let Err(e) = preflight(&mut c, &mut cri, &args).await {
        c.fail("preflight", e);
    } else {
        for profile in &args.profiles {
            let Some(x) = Expect::of(profile) else { continue };
            c.prefix = format!("[{profile}] ");
            let mut pod = None;
            if let Err(e) = scenario(&mut c, &mut cri, &args, x, &mut pod).await {
                c.fail("scenario stopped", e);
            }
            if let Some(sandbox) = pod {
                teardown(&mut c, &mut cri, &args, &sandbox).await;
            }
        }
        c.prefix.clear();
    }
    println!("{} passed, {} failed", c.passed, c.failed);
    if c.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
