//! Per-job user namespaces (issue 7): container root is an unprivileged host
//! ID, each concurrent job has its own range, and nothing leaks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;

use brig_tests::{unique_id, Brig, Bundle};
use serde_json::json;

fn restricted() -> Brig {
    Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n")
}

/// Host base of a running container's user namespace, read on the host.
fn host_base(brig: &Brig, id: &str) -> u64 {
    let pid = brig.state(id)["pid"].as_i64().unwrap();
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    map.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn job_root_is_an_unprivileged_host_id() {
    let brig = restricted();
    let out_dir = std::path::PathBuf::from(format!("/var/lib/brig/jobs/userns-{}", unique_id("o")));
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut b =
        Bundle::new(&["sh", "-c", "cat /proc/self/uid_map; id -u; echo data > /out/made-by-job; ls -ln /bin/busybox"]);
    b.push("/mounts", json!({"destination": "/out", "type": "bind", "source": out_dir, "options": ["rbind", "rw"]}));
    let (code, out, err) = brig.run(&b, &unique_id("uid"));
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let map: Vec<u64> = lines.next().unwrap().split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(map[0], 0);
    assert!(map[1] > 0, "host base must not be 0: {map:?}");
    assert_eq!(lines.next().unwrap(), "0", "the job is root inside");
    // The image appears owned by the job's root (idmapped), not by nobody.
    assert!(
        out.contains(" 0        0 ") || out.lines().last().unwrap().split_whitespace().nth(2) == Some("0"),
        "{out}"
    );
    // What it wrote is owned on the host by the mapped ID, not by root.
    let meta = std::fs::metadata(out_dir.join("made-by-job")).unwrap();
    assert_eq!(u64::from(std::os::unix::fs::MetadataExt::uid(&meta)), map[1]);
    assert_ne!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
    std::fs::remove_dir_all(&out_dir).unwrap();
    // Released at delete: no slot left for this run.
    assert!(!std::fs::read_dir("/run/brig/userns").map(|d| d.count()).is_ok_and(|n| n > 64));
}

#[test]
fn concurrent_jobs_get_disjoint_ranges() {
    let brig = restricted();
    let bundle = Bundle::new(&["sleep", "30"]);
    let ids: Vec<String> = (0..16).map(|_| unique_id("par")).collect();
    // The containers inherit brig's stdio: files, not pipes (a pipe would
    // stay open for the life of the job).
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            let err = tempfile::NamedTempFile::new().unwrap();
            let child = brig
                .command()
                .args(["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), id])
                .stdout(Stdio::null())
                .stderr(err.reopen().unwrap())
                .spawn()
                .unwrap();
            (child, err)
        })
        .collect();
    for (mut c, err) in children {
        let status = c.wait().unwrap();
        assert!(status.success(), "{}", std::fs::read_to_string(err.path()).unwrap());
    }
    let mut bases: Vec<u64> = ids.iter().map(|id| host_base(&brig, id)).collect();
    bases.sort();
    for w in bases.windows(2) {
        assert!(w[1] - w[0] >= 65536, "overlapping ranges: {bases:?}");
    }
    assert!(bases[0] > 0);
    for id in &ids {
        brig.ok(&["delete", "--force", id]);
    }
}

#[test]
fn a_crash_between_allocation_and_launch_leaks_no_range() {
    let brig = restricted();
    let bundle = Bundle::new(&["sleep", "30"]);
    let crashed = unique_id("crash");
    let out = brig
        .command()
        .env("BRIG_TEST_FAULT", "after-userns-allocation")
        .args(["create", "--bundle", bundle.path().to_str().unwrap(), &crashed])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fault did not fire");
    // The slot names our container, which does not exist, and its holder is dead.
    let held = std::fs::read_dir("/run/brig/userns")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&format!("\"{crashed}\""))));
    assert!(held, "the crashed create should have held a slot");
    // Later launches never get the range while it is held, and work.
    let ids: Vec<String> = (0..3).map(|_| unique_id("after")).collect();
    for id in &ids {
        brig.ok(&["run", "-d", "--bundle", bundle.path().to_str().unwrap(), id]);
    }
    let held_by = |id: &str| {
        std::fs::read_dir("/run/brig/userns")
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&format!("\"{id}\""))))
            .map(|e| e.file_name())
            .collect::<Vec<_>>()
    };
    let crashed_slot = held_by(&crashed);
    for id in &ids {
        assert_ne!(held_by(id), crashed_slot, "{id} got the range a crashed create holds");
        brig.ok(&["delete", "--force", id]);
    }
    // The crashed create also held its cgroup (/run/brig/cgroups); `delete
    // --force` of what it left gives that up too.
    let claims_of = |id: &str| {
        std::fs::read_dir("/run/brig/cgroups")
            .map(|d| d.flatten().filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.ends_with(id))).count())
            .unwrap_or(0)
    };
    assert_eq!(claims_of(&crashed), 1, "the crashed create held no cgroup claim");
    brig.ok(&["delete", "--force", &crashed]);
    assert_eq!(claims_of(&crashed), 0, "delete --force left the crashed create's cgroup claim");
    // And its range: an allocation meets a stale hold only by chance (the
    // scan starts anywhere), the client's `delete` frees it at once.
    assert_eq!(held_by(&crashed), Vec::<std::ffi::OsString>::new(), "delete --force left the crashed create's range");
}

/// A create that fails after libcontainer built the container (a record
/// that cannot be written, a cgroup fix-up the kernel refuses) leaves
/// nothing: no state, no init, no cgroup, no range held, no registered
/// namespace.
#[test]
fn a_create_that_fails_after_the_build_leaves_nothing() {
    let brig = restricted();
    let bundle = Bundle::new(&["sleep", "30"]);
    let id = unique_id("half");
    // Files, not pipes: an init left behind would hold a pipe open.
    let err_file = tempfile::NamedTempFile::new().unwrap();
    let status = brig
        .command()
        .env("BRIG_TEST_FAULT", "after-build")
        .args(["create", "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .stderr(err_file.reopen().unwrap())
        .status()
        .unwrap();
    assert!(!status.success(), "the fault did not fire");
    assert!(std::fs::read_to_string(err_file.path()).unwrap().contains("fault injected"));
    assert!(!brig.root.join(&id).exists(), "state left behind");
    assert!(brig.ok(&["list", "-q"]).trim().is_empty());
    let named = |dir: &str| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&format!("\"{id}\""))))
    };
    assert!(!named("/run/brig/userns"), "a range is still held for it");
    let registered = std::fs::read_dir("/run/brig/namespaces")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.ends_with(&id)));
    assert!(!registered, "a namespace is still registered to it");
    let procs = std::process::Command::new("pgrep").args(["-f", "sleep 30"]).output().unwrap();
    for pid in String::from_utf8_lossy(&procs.stdout).split_whitespace() {
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        assert!(!cgroup.contains(&id), "its init {pid} still runs");
    }
    assert!(!brig_tests::cgroup_dir("pids", &format!("/brig/{id}")).exists(), "its cgroup is left");
}

/// A profile with only the per-job user namespace (no seccomp, no Landlock,
/// the client's default capabilities): shows what the user namespace alone
/// gives.
const USERNS_ONLY: &str = "name = \"userns-only\"\n[user_namespace]\nmode = \"per_job\"\n[ceilings]\ncapabilities = [\"ALL\"]\nwritable_mounts = [\"/\"]\nreadonly_mounts = [\"/\"]\nhooks = [\"*\"]\nsysctls = [\"*\"]\n";

fn userns_only() -> Brig {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"userns-only\"\n");
    let dir = brig.dir.path().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("userns-only.toml"), USERNS_ONLY).unwrap();
    brig
}

fn docker_caps(b: &mut Bundle) {
    let caps = json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE"
    ]);
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), caps.clone());
    }
    b.set("/process/capabilities/inheritable", json!([]));
    b.set("/process/capabilities/ambient", json!([]));
}

/// The host pid of the job (the supervisor's child) of a running container.
///
/// `start` returns once the supervisor runs; it forks the job right after,
/// so on a loaded machine the child may not exist yet: wait for it.
fn job_pid(brig: &Brig, id: &str) -> i64 {
    let init = brig.state(id)["pid"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i64>() else { continue };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i64>().ok());
            if ppid == Some(init) {
                return pid;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no job process under init {init} after 10 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Runs `brig-probe ARGS` on the host as `uid`/`gid` with no capabilities:
/// what a job's process could do if it escaped its namespaces.
fn as_escaped(uid: u64, args: &[&str]) -> String {
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &uid.to_string(),
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(brig_tests::probe_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn jobs_cannot_reach_each_other_or_the_host() {
    for (name, brig) in [("restricted", restricted()), ("userns-only", userns_only())] {
        // Two jobs; A has a secret in its environment.
        let mut a = Bundle::new(&["sh", "-c", "exec sleep 30"]);
        a.set("/process/env", json!(["PATH=/bin", "VICTIM_SECRET=hunter2"]));
        docker_caps(&mut a);
        let a_id = unique_id("victim");
        brig.ok(&["run", "-d", "--bundle", a.path().to_str().unwrap(), &a_id]);
        let mut b = Bundle::new(&["sleep", "30"]);
        docker_caps(&mut b);
        let b_id = unique_id("attacker");
        brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &b_id]);
        let (a_base, b_base) = (host_base(&brig, &a_id), host_base(&brig, &b_id));
        assert_ne!(a_base, b_base, "{name}");
        let a_job = job_pid(&brig, &a_id).to_string();

        // From inside B, A's processes and the host's do not exist.
        let out = brig.ok(&["exec", &b_id, "/bin/brig-probe", "kill", &a_job, "0"]);
        assert_eq!(out.trim(), "errno=ESRCH", "{name}: {out}");

        // A process of B that escaped its namespaces has B's host uid and no
        // capabilities: it cannot signal, trace or read A's processes...
        assert_eq!(as_escaped(b_base, &["kill", &a_job, "9"]), "errno=EPERM", "{name}");
        assert_eq!(as_escaped(b_base, &["ptrace-attach", &a_job]), "errno=EPERM", "{name}");
        assert_eq!(as_escaped(b_base, &["read", &format!("/proc/{a_job}/environ")]), "errno=EACCES", "{name}");
        // ...nor host processes.
        let mut host = std::process::Command::new("sleep").arg("30").env("HOST_SECRET", "s3cr3t").spawn().unwrap();
        let hp = host.id().to_string();
        assert_eq!(as_escaped(b_base, &["kill", &hp, "9"]), "errno=EPERM", "{name}");
        assert_eq!(as_escaped(b_base, &["ptrace-attach", &hp]), "errno=EPERM", "{name}");
        assert_eq!(as_escaped(b_base, &["read", &format!("/proc/{hp}/environ")]), "errno=EACCES", "{name}");
        assert!(host.try_wait().unwrap().is_none());
        host.kill().unwrap();
        host.wait().unwrap();
        // Control: the same uid as the victim's (the job itself) can.
        assert_eq!(as_escaped(a_base, &["kill", &a_job, "0"]), "ok", "{name}: control");
        assert_eq!(brig.status(&a_id), "running", "{name}: the victim survived");
        brig.ok(&["delete", "--force", &a_id]);
        brig.ok(&["delete", "--force", &b_id]);
    }
}

#[test]
fn a_job_that_escapes_its_mount_namespace_holds_no_host_privileges() {
    // Simulated breakout: check, from the host, the credentials the job's
    // process really has.
    let brig = userns_only();
    let mut b = Bundle::new(&["sleep", "30"]);
    docker_caps(&mut b);
    let id = unique_id("creds");
    brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let base = host_base(&brig, &id);
    let job = job_pid(&brig, &id);
    let status = std::fs::read_to_string(format!("/proc/{job}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse::<u64>().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), vec![base; 4], "effective host uid must be the mapped one");
    assert_eq!(field("Gid:"), vec![base; 4]);
    // Its capabilities (Docker's 14 here) hold only in its own user
    // namespace, which is not the initial one: on the host it is an ordinary
    // unprivileged uid. The same uid with no capabilities cannot read a
    // root-only host file.
    let user_ns = std::fs::read_link(format!("/proc/{job}/ns/user")).unwrap();
    let host_ns = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(user_ns, host_ns, "the job must not be in the initial user namespace");
    let secret = brig.dir.path().join("root-only");
    std::fs::write(&secret, "x").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::set_permissions(brig.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_eq!(as_escaped(base, &["read", secret.to_str().unwrap()]), "errno=EACCES");
    brig.ok(&["delete", "--force", &id]);
}

/// A host network namespace, as Kubernetes' CNI or Podman's pod makes one.
struct HostNetns(String);

impl HostNetns {
    fn new() -> HostNetns {
        let name = unique_id("pod-net");
        let st = std::process::Command::new("ip").args(["netns", "add", &name]).status().unwrap();
        assert!(st.success(), "ip netns add");
        HostNetns(name)
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for HostNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "delete", &self.0]).status();
    }
}

/// The namespaces of a pod's second job: the first job's IPC and UTS (by
/// `/proc/<pid>/ns/..`, as the CRI plugin and Podman pass them) and the
/// client's pod network.
fn pod_member(leader_pid: i64, netns: &str, args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    b.set(
        "/linux/namespaces",
        json!([
            {"type": "pid"},
            {"type": "mount"},
            {"type": "ipc", "path": format!("/proc/{leader_pid}/ns/ipc")},
            {"type": "uts", "path": format!("/proc/{leader_pid}/ns/uts")},
            {"type": "network", "path": netns}
        ]),
    );
    b
}

fn ns_inode(pid: i64, typ: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{typ}")).unwrap().to_string_lossy().into_owned()
}

/// The job joins the user namespace brig made to idmap its rootfs (one
/// namespace per job, not two with the same maps): init, job and an `exec`
/// share it, with the job's range and `setgroups` as a new one has; brig's
/// saved copy of the spec names no path (libcontainer's pointed at a
/// descriptor of the `brig create` process, gone with it).
#[test]
fn the_job_runs_in_the_user_namespace_its_rootfs_is_mapped_with() {
    let brig = restricted();
    let id = unique_id("join");
    let bundle = Bundle::new(&["sleep", "30"]);
    brig.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let init = brig.state(&id)["pid"].as_i64().unwrap();
    let job = job_pid(&brig, &id);
    let base = host_base(&brig, &id);
    assert!(base > 0);
    for pid in [init, job] {
        for map in ["uid_map", "gid_map"] {
            let text = std::fs::read_to_string(format!("/proc/{pid}/{map}")).unwrap();
            let fields: Vec<u64> = text.split_whitespace().map(|x| x.parse().unwrap()).collect();
            assert_eq!(fields, vec![0, base, 65536], "{pid} {map}");
        }
        assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/setgroups")).unwrap().trim(), "allow");
    }
    assert_eq!(ns_inode(init, "user"), ns_inode(job, "user"));
    assert_ne!(ns_inode(job, "user"), ns_inode(std::process::id().into(), "user"));
    let exec_ns = brig.ok(&["exec", &id, "readlink", "/proc/self/ns/user"]);
    assert_eq!(exec_ns.trim(), ns_inode(job, "user"));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(brig.root.join(&id).join("config.json")).unwrap()).unwrap();
    let user = saved["linux"]["namespaces"].as_array().unwrap().iter().find(|n| n["type"] == "user").unwrap();
    assert!(user.get("path").is_none_or(|p| p.is_null()), "brig's copy of the spec: {user}");
    brig.ok(&["delete", "--force", &id]);
}

/// A pod (Kubernetes sandbox + containers, a Podman pod): the second job
/// joins the first's user namespace and range, since its own could not join
/// the first's IPC and UTS namespaces; it gets the first job's private network
/// for the pod network the first job's profile replaced. The range stays
/// taken until the pod's last job is deleted, in whichever order.
#[test]
fn pod_jobs_share_one_user_namespace() {
    let brig = restricted();
    let netns = HostNetns::new();
    let mut sandbox = Bundle::new(&["sleep", "60"]);
    sandbox.set(
        "/linux/namespaces",
        json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network", "path": netns.path()}]),
    );
    let sandbox_id = unique_id("sandbox");
    brig.ok(&["run", "-d", "--bundle", sandbox.path().to_str().unwrap(), &sandbox_id]);
    let leader = brig.state(&sandbox_id)["pid"].as_i64().unwrap();

    let app = pod_member(leader, &netns.path(), &["sleep", "60"]);
    let app_id = unique_id("app");
    brig.ok(&["run", "-d", "--bundle", app.path().to_str().unwrap(), &app_id]);
    let member = brig.state(&app_id)["pid"].as_i64().unwrap();
    for typ in ["user", "ipc", "uts", "net"] {
        assert_eq!(ns_inode(member, typ), ns_inode(leader, typ), "{typ} namespace shared with the pod");
    }
    let client_net = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(netns.path()).unwrap());
    assert_ne!(
        ns_inode(member, "net"),
        format!("net:[{client_net}]"),
        "the profile's private network, not the client's"
    );
    assert_eq!(host_base(&brig, &app_id), host_base(&brig, &sandbox_id));
    assert_ne!(ns_inode(member, "pid"), ns_inode(leader, "pid"), "its own pid namespace, as asked");

    // The sandbox goes first (a pod being torn down out of order): the range
    // stays with the live member, so no new job gets it.
    let base = host_base(&brig, &sandbox_id);
    brig.ok(&["delete", "--force", &sandbox_id]);
    let other_id = unique_id("other");
    let other = Bundle::new(&["sleep", "60"]);
    brig.ok(&["run", "-d", "--bundle", other.path().to_str().unwrap(), &other_id]);
    assert_ne!(host_base(&brig, &other_id), base, "a live pod's range was handed to another job");
    assert_eq!(brig.status(&app_id), "running");
    brig.ok(&["delete", "--force", &app_id]);
    brig.ok(&["delete", "--force", &other_id]);
}

/// Joining namespaces is no way into another tenant's: a job cannot join a
/// pod's IPC namespace with some other network, nor namespaces of a user
/// namespace brig did not make for one of its jobs.
#[test]
fn a_job_cannot_join_foreign_namespaces() {
    let brig = restricted();
    let netns = HostNetns::new();
    let mut sandbox = Bundle::new(&["sleep", "60"]);
    sandbox.set(
        "/linux/namespaces",
        json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network", "path": netns.path()}]),
    );
    let sandbox_id = unique_id("sandbox");
    brig.ok(&["run", "-d", "--bundle", sandbox.path().to_str().unwrap(), &sandbox_id]);
    let leader = brig.state(&sandbox_id)["pid"].as_i64().unwrap();

    // The pod's IPC, but a network that is not the pod's.
    let elsewhere = HostNetns::new();
    let b = pod_member(leader, &elsewhere.path(), &["true"]);
    let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("stray")]);
    assert!(err.contains("is not the network of the pod"), "{err}");

    // A user namespace someone else made (not a brig job's).
    let mut foreign = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--ipc", "--uts", "sleep", "60"])
        .spawn()
        .unwrap();
    // Wait until it is in its own user namespace (not a fixed sleep).
    let own_userns = std::fs::read_link("/proc/self/ns/user").unwrap();
    for _ in 0..100 {
        match std::fs::read_link(format!("/proc/{}/ns/user", foreign.id())) {
            Ok(ns) if ns != own_userns => break,
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
    // Its IPC namespace, which no brig job is in, is refused first.
    let b = pod_member(i64::from(foreign.id() as i32), &netns.path(), &["true"]);
    let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("stray")]);
    assert!(err.contains("ipc namespace") && err.contains("is no brig job's"), "{err}");
    // Its user namespace alone: its maps are a spec's own, and map host root.
    let mut b = Bundle::new(&["true"]);
    b.push("/linux/namespaces", json!({"type": "user", "path": format!("/proc/{}/ns/user", foreign.id())}));
    let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("stray")]);
    assert!(err.contains("joined user namespace") && err.contains("host root"), "{err}");
    foreign.kill().unwrap();
    foreign.wait().unwrap();
    brig.ok(&["delete", "--force", &sandbox_id]);
}

/// A spec that joins another job's per-job user namespace by path (and no
/// other of its namespaces) joins it as a member of that job's pod: the range
/// stays held while it lives, so the first job's delete does not hand its IDs
/// to a new job. Only under a `per_job` profile: under another it would hold
/// the range without being counted, and is refused. A spec's own mappings
/// may not land on brig's pool (any profile) nor on host users (`per_job`).
#[test]
fn a_user_namespace_joined_or_mapped_by_a_spec_shares_no_range() {
    let brig = restricted();
    let first_id = unique_id("first");
    let first = Bundle::new(&["sleep", "60"]);
    brig.ok(&["run", "-d", "--bundle", first.path().to_str().unwrap(), &first_id]);
    let first_pid = brig.state(&first_id)["pid"].as_i64().unwrap();
    let base = host_base(&brig, &first_id);

    let joiner = |profile: &str| {
        let mut b = Bundle::new(&["sleep", "60"]);
        b.push("/linux/namespaces", json!({"type": "user", "path": format!("/proc/{first_pid}/ns/user")}));
        b.set("/annotations", json!({"dev.brig.profile": profile}));
        b
    };
    let err = brig.fails(&["run", "--bundle", joiner("standard").path().to_str().unwrap(), &unique_id("std")]);
    assert!(err.contains("linux.namespaces") && err.contains("per_job"), "{err}");

    let member_id = unique_id("member");
    brig.ok(&["run", "-d", "--bundle", joiner("restricted").path().to_str().unwrap(), &member_id]);
    let member = brig.state(&member_id)["pid"].as_i64().unwrap();
    assert_eq!(ns_inode(member, "user"), ns_inode(first_pid, "user"));
    assert_eq!(host_base(&brig, &member_id), base);
    brig.ok(&["delete", "--force", &first_id]);
    let next_id = unique_id("next");
    brig.ok(&["run", "-d", "--bundle", first.path().to_str().unwrap(), &next_id]);
    assert_ne!(host_base(&brig, &next_id), base, "a range still in use was handed to another job");
    assert_eq!(brig.status(&member_id), "running");

    // Mappings of the spec's own: onto the pool (here the range `next`
    // holds), under every profile; onto host users under `per_job`.
    let next_base = host_base(&brig, &next_id);
    for (profile, host_id, want) in [
        ("standard", next_base, "overlap brig's pool"),
        ("permissive", next_base + 65535, "overlap brig's pool"),
        ("restricted", next_base, "overlap brig's pool"),
        ("restricted", 1000, "below 65536"),
    ] {
        let mut b = Bundle::new(&["true"]);
        b.push("/linux/namespaces", json!({"type": "user"}));
        b.set("/linux/uidMappings", json!([{"containerID": 0, "hostID": host_id, "size": 1}]));
        b.set("/linux/gidMappings", json!([{"containerID": 0, "hostID": 231072, "size": 1}]));
        b.set("/annotations", json!({"dev.brig.profile": profile}));
        let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("mapped")]);
        assert!(err.contains("linux.uidMappings[0]") && err.contains(want), "{profile} {host_id}: {err}");
    }
    brig.ok(&["delete", "--force", &member_id]);
    brig.ok(&["delete", "--force", &next_id]);
}

/// `exec` into a job whose user namespace the spec asked for (Docker's
/// userns-remap, Podman's --userns) joins it: the exec'd process is the
/// job's root, not the host's.
#[test]
fn exec_joins_a_user_namespace_the_spec_asked_for() {
    for profile in ["permissive", "standard"] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        let mut b = Bundle::new(&["sleep", "30"]);
        b.push("/linux/namespaces", json!({"type": "user"}));
        b.set("/linux/uidMappings", json!([{"containerID": 0, "hostID": 231072, "size": 65536}]));
        b.set("/linux/gidMappings", json!([{"containerID": 0, "hostID": 231072, "size": 65536}]));
        let id = unique_id("execuserns");
        brig.ok(&["run", "--detach", "--bundle", b.path().to_str().unwrap(), &id]);
        let map = brig.ok(&["exec", &id, "cat", "/proc/self/uid_map"]);
        let fields: Vec<&str> = map.split_whitespace().collect();
        assert_eq!(fields, ["0", "231072", "65536"], "{profile}: exec ran outside the job's user namespace: {map}");
        let process = json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["cat", "/proc/self/uid_map"]});
        let pfile = brig.dir.path().join("p.json");
        std::fs::write(&pfile, process.to_string()).unwrap();
        let map = brig.ok(&["exec", "--process", pfile.to_str().unwrap(), &id]);
        assert_eq!(map.split_whitespace().collect::<Vec<_>>(), ["0", "231072", "65536"], "{profile}: {map}");
        brig.ok(&["delete", "--force", &id]);
    }
}

/// Each job's staged bind sources have their own directory: ids `a` and
/// `a.x` (or `a.binds`) never share one, so one job's staging cannot
/// truncate another's host file, and a forced delete of `a` leaves
/// `a.binds`'s root filesystem alone.
#[test]
fn ids_with_dots_do_not_share_staging_paths() {
    let brig = restricted();
    let base = unique_id("dots");
    let data = std::path::PathBuf::from("/var/lib/brig/data").join(&base);
    std::fs::create_dir_all(&data).unwrap();
    let host_file = data.join("precious.txt");
    std::fs::write(&host_file, "keep me\n").unwrap();
    let with_file = || {
        let mut b = Bundle::new(&["sleep", "30"]);
        b.push(
            "/mounts",
            json!({"destination": "/etc/precious.txt", "type": "bind", "source": host_file, "options": ["rbind", "ro"]}),
        );
        b
    };
    let (a, ax, ab) = (base.clone(), format!("{base}.x"), format!("{base}.binds"));
    let bundles: Vec<Bundle> = (0..3).map(|_| with_file()).collect();
    for (id, b) in [&a, &ax, &ab].into_iter().zip(&bundles) {
        brig.ok(&["run", "--detach", "--bundle", b.path().to_str().unwrap(), id]);
    }
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "keep me\n", "a job's staging truncated a host file");
    for id in [&a, &ax, &ab] {
        assert_eq!(brig.ok(&["exec", id, "cat", "/etc/precious.txt"]), "keep me\n", "{id}");
    }
    brig.ok(&["delete", "--force", &a]);
    brig.ok(&["delete", "--force", &a]); // gone: cleans leftovers, must not touch a.binds
    assert_eq!(brig.ok(&["exec", &ab, "sh", "-c", "ls /bin/sh && cat /etc/precious.txt"]), "/bin/sh\nkeep me\n");
    for id in [&ax, &ab] {
        brig.ok(&["delete", "--force", id]);
    }
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "keep me\n");
    std::fs::remove_dir_all(&data).unwrap();
}

/// A root-owned writable bind directory (an output) is handed to the job's
/// root for the job's life and handed back at `delete`: the next job that
/// mounts it, with whatever ID range it gets, can write there, and what each
/// job wrote stays owned by that job's mapped ID.
#[test]
fn an_output_directory_is_handed_to_each_job_in_turn() {
    use std::os::unix::fs::MetadataExt;
    let brig = restricted();
    let out_dir = std::path::PathBuf::from(format!("/var/lib/brig/jobs/userns-{}", unique_id("turn")));
    std::fs::create_dir_all(&out_dir).unwrap();
    let writer = |file: &str| {
        let mut b = Bundle::new(&["sh", "-c", &format!("echo {file} > /out/{file} && sleep 30")]);
        b.push(
            "/mounts",
            json!({"destination": "/out", "type": "bind", "source": out_dir, "options": ["rbind", "rw"]}),
        );
        b
    };
    let owner = |path: &std::path::Path| u64::from(std::fs::metadata(path).unwrap().uid());
    let wait_for = |path: &std::path::Path| {
        for _ in 0..100 {
            if path.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("{} was never written", path.display());
    };

    let (first, first_bundle) = (unique_id("turn"), writer("first"));
    brig.ok(&["run", "--detach", "--bundle", first_bundle.path().to_str().unwrap(), &first]);
    let first_base = host_base(&brig, &first);
    wait_for(&out_dir.join("first"));
    assert_eq!(owner(&out_dir), first_base, "the directory is the running job's");
    brig.ok(&["delete", "--force", &first]);
    assert_eq!(owner(&out_dir), 0, "delete hands the directory back to root");
    // A job that takes the range the first freed: the next writer gets
    // another one.
    let holder_bundle = Bundle::new(&["sleep", "30"]);
    let holder = unique_id("turn");
    brig.ok(&["run", "--detach", "--bundle", holder_bundle.path().to_str().unwrap(), &holder]);

    // Other tests' jobs come and go: while a writer gets the first's range,
    // it is deleted and another holder takes that range.
    let mut running = vec![holder];
    let mut second = None;
    for attempt in 0..4 {
        let (id, bundle) = (unique_id("turn"), writer(&format!("second{attempt}")));
        brig.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let base = host_base(&brig, &id);
        if base != first_base {
            running.push(id);
            second = Some((out_dir.join(format!("second{attempt}")), base));
            break;
        }
        brig.ok(&["delete", "--force", &id]);
        let holder = unique_id("turn");
        brig.ok(&["run", "--detach", "--bundle", holder_bundle.path().to_str().unwrap(), &holder]);
        running.push(holder);
    }
    let (second_file, second_base) = second.expect("a writer with a range other than the first's");
    wait_for(&second_file);
    assert_eq!(owner(&out_dir.join("first")), first_base);
    assert_eq!(owner(&second_file), second_base);
    for id in &running {
        brig.ok(&["delete", "--force", id]);
    }
    assert_eq!(owner(&out_dir), 0);
    std::fs::remove_dir_all(&out_dir).unwrap();
}

/// A pod's jobs share their volumes (a Kubernetes `emptyDir`): an output
/// directory handed to the pod's range stays the pod's while any of its jobs
/// lives, and goes back to root when the last one goes, in either order of
/// deletion (a member's own record goes with it).
#[test]
fn a_pods_output_directory_is_handed_back_when_the_pod_is_gone() {
    use std::os::unix::fs::MetadataExt;
    // A configured pool (above the default one): `delete` reads no
    // configuration, and must still know whose the directory was.
    let brig = Brig::new(
        "[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n\
         [user_namespace]\npool = { start = 1207959552, count = 67108864, range = 65536 }\n",
    );
    let owner = |path: &std::path::Path| u64::from(std::fs::metadata(path).unwrap().uid());
    for sandbox_goes_first in [false, true] {
        let netns = HostNetns::new();
        let volume = std::path::PathBuf::from(format!("/var/lib/brig/jobs/userns-{}", unique_id("pod-vol")));
        std::fs::create_dir_all(&volume).unwrap();
        let mut sandbox = Bundle::new(&["sleep", "60"]);
        sandbox.set(
            "/linux/namespaces",
            json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network", "path": netns.path()}]),
        );
        let sandbox_id = unique_id("pod-vol-sandbox");
        brig.ok(&["run", "-d", "--bundle", sandbox.path().to_str().unwrap(), &sandbox_id]);
        let leader = brig.state(&sandbox_id)["pid"].as_i64().unwrap();
        let base = host_base(&brig, &sandbox_id);
        assert!(base >= 1207959552, "the configured pool: {base}");

        let mut app = pod_member(leader, &netns.path(), &["sh", "-c", "echo hi > /out/app && sleep 60"]);
        app.push(
            "/mounts",
            json!({"destination": "/out", "type": "bind", "source": volume, "options": ["rbind", "rw"]}),
        );
        let app_id = unique_id("pod-vol-app");
        brig.ok(&["run", "-d", "--bundle", app.path().to_str().unwrap(), &app_id]);
        for _ in 0..100 {
            if volume.join("app").exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(owner(&volume.join("app")), base, "the member wrote its output");
        assert_eq!(owner(&volume), base, "the volume is the pod's while it runs");

        let (first, last) = if sandbox_goes_first { (&sandbox_id, &app_id) } else { (&app_id, &sandbox_id) };
        brig.ok(&["delete", "--force", first]);
        assert_eq!(owner(&volume), base, "a job of the pod still lives (sandbox first: {sandbox_goes_first})");
        brig.ok(&["delete", "--force", last]);
        assert_eq!(owner(&volume), 0, "the pod is gone: root's again (sandbox first: {sandbox_goes_first})");
        assert_eq!(owner(&volume.join("app")), base, "what the job wrote stays its own");
        std::fs::remove_dir_all(&volume).unwrap();
    }
}

/// A read-only recursive bind of an input is read-only all the way down: a
/// filesystem mounted below the source on the host is no writable hole into
/// it (runc makes only the top mount read-only; brig adds `rro`).
#[test]
fn a_read_only_input_is_read_only_below_its_top_mount() {
    let brig = restricted();
    let data = std::path::PathBuf::from("/var/lib/brig/data").join(unique_id("rro"));
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "mode=0777", "tmpfs"])
        .arg(data.join("sub"))
        .status()
        .unwrap()
        .success();
    assert!(mounted, "mounting a tmpfs below the input");
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "grep ' /data/sub ' /proc/self/mountinfo; echo x > /data/sub/f && echo WROTE; echo x > /data/f && echo WROTE-TOP; true",
    ]);
    b.push("/mounts", json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "ro"]}));
    let (code, out, err) = brig.run(&b, &unique_id("rro"));
    let leftover = std::fs::read_dir(data.join("sub")).unwrap().count();
    std::process::Command::new("umount").arg(data.join("sub")).status().unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    assert_eq!(code, 0, "{err}");
    let line = out.lines().find(|l| l.contains(" /data/sub ")).unwrap_or_else(|| panic!("no /data/sub mount: {out}"));
    let per_mount_options = line.split_whitespace().nth(5).unwrap();
    assert!(per_mount_options.split(',').any(|o| o == "ro"), "{line}");
    assert!(!out.contains("WROTE"), "{out}");
    assert_eq!(err.matches("Read-only file system").count(), 2, "{err}");
    assert_eq!(leftover, 0, "the job wrote below its read-only input");
}

/// A per-job user namespace maps container IDs 0 to 65535: a job or exec
/// asking for a uid or gid beyond is refused up front, naming the field and
/// the range (the kernel's EINVAL reached Docker as "failed syscall:
/// unknown"), and leaves nothing behind.
#[test]
fn ids_outside_the_jobs_range_are_refused_by_name() {
    let brig = restricted();
    for (user, field) in [
        (json!({"uid": 70000, "gid": 0}), "process.user.uid"),
        (json!({"uid": 0, "gid": 65536}), "process.user.gid"),
        (json!({"uid": 1000, "gid": 1000, "additionalGids": [100000]}), "process.user.additionalGids"),
    ] {
        let mut b = Bundle::new(&["true"]);
        b.set("/process/user", user.clone());
        let id = unique_id("bigid");
        let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
        assert!(err.contains(field) && err.contains("0 to 65535"), "{user}: {err}");
        assert!(!brig.root.join(&id).exists(), "{user}: state left");
    }
    let id = unique_id("bigid");
    let b = Bundle::new(&["sleep", "30"]);
    brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let err = brig.fails(&["exec", "--user", "70000:70000", &id, "true"]);
    assert!(err.contains("process.user.uid") && err.contains("0 to 65535"), "{err}");
    brig.ok(&["exec", "--user", "65535:65535", &id, "true"]);
    brig.ok(&["delete", "--force", &id]);
}

/// The job's stdio pipes (a client's: containerd's shim, conmon) are handed
/// to the job's root, as runc's `fixStdioPermissions` and containerd's
/// `io_uid` do: `echo x > /dev/stdout` (a log file linked to `/dev/stdout`,
/// as nginx's images do) works in a per-job user namespace, for the job and
/// an exec. A file the caller redirected to keeps its owner.
#[test]
fn the_job_reopens_its_stdio_pipes() {
    let brig = restricted();
    let b = Bundle::new(&["sh", "-c", "echo via-dev-stdout > /dev/stdout && echo via-fd > /proc/self/fd/2"]);
    // Through pipes, as a client's shim gives them.
    let out = brig.cmd(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("stdio")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via-dev-stdout\n");
    assert!(err.contains("via-fd"), "{err}");
    let id = unique_id("stdio");
    let sleeper = Bundle::new(&["sleep", "30"]);
    brig.ok(&["run", "-d", "--bundle", sleeper.path().to_str().unwrap(), &id]);
    let out = brig.cmd(&["exec", &id, "sh", "-c", "echo from-exec > /dev/stdout"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-exec\n");
    // A regular file as stdout is left as it is.
    let log = tempfile::NamedTempFile::new().unwrap();
    let st =
        brig.command().args(["exec", &id, "sh", "-c", "echo to-file"]).stdout(log.reopen().unwrap()).status().unwrap();
    assert!(st.success());
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(log.path()).unwrap()), 0);
    brig.ok(&["delete", "--force", &id]);
}

/// A job running as a non-root user (`docker run -u 1000:1000 -v ...`) gets
/// its output directory handed to that user, not to its root, which it could
/// not write as (no capability overrides the owner); handed back to root at
/// delete.
#[test]
fn an_output_directory_is_handed_to_the_jobs_own_user() {
    use std::os::unix::fs::MetadataExt;
    let brig = restricted();
    let out_dir = std::path::PathBuf::from(format!("/var/lib/brig/jobs/userns-{}", unique_id("user")));
    std::fs::create_dir_all(&out_dir).unwrap();
    let id = unique_id("user");
    let mut b = Bundle::new(&["sh", "-c", "id -u && echo made > /out/f"]);
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}));
    b.push("/mounts", json!({"destination": "/out", "type": "bind", "source": out_dir, "options": ["rbind", "rw"]}));
    brig.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let base = {
        let pid = brig.state(&id)["pid"].as_i64().unwrap();
        let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
        map.split_whitespace().nth(1).unwrap().parse::<u32>().unwrap()
    };
    brig.ok(&["start", &id]);
    brig.wait_status(&id, "stopped");
    assert_eq!(std::fs::read_to_string(out_dir.join("f")).unwrap(), "made\n");
    assert_eq!(std::fs::metadata(out_dir.join("f")).unwrap().uid(), base + 1000);
    assert_eq!(std::fs::metadata(&out_dir).unwrap().uid(), base + 1000);
    brig.ok(&["delete", &id]);
    assert_eq!(std::fs::metadata(&out_dir).unwrap().uid(), 0, "handed back to root");
    std::fs::remove_dir_all(&out_dir).unwrap();
}

/// An exec's `scheduler` and `ioPriority` apply on brig's own exec path
/// (into a user namespace) as libcontainer applies them on the other: they
/// were left out, and the process ran with the caller's.
#[test]
fn exec_gets_its_scheduler_and_io_priority() {
    for profile in ["restricted", "permissive"] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        let id = unique_id("sched");
        let b = Bundle::new(&["sleep", "30"]);
        brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
        let process = json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "env": ["PATH=/bin"],
            "args": ["sleep", "30"],
            "scheduler": {"policy": "SCHED_BATCH", "nice": 7},
            "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}});
        let pfile = brig.dir.path().join("p.json");
        std::fs::write(&pfile, process.to_string()).unwrap();
        let pid_file = brig.dir.path().join("exec.pid");
        brig.ok(&["exec", "-d", "--pid-file", pid_file.to_str().unwrap(), "--process", pfile.to_str().unwrap(), &id]);
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        // Read on the host: the job's seccomp filter refuses ioprio_get.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        assert_eq!((fields[16], fields[38]), ("7", "3"), "{profile}: nice 7, SCHED_BATCH");
        // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, pid) with plain integers.
        let prio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid) };
        assert_eq!(prio, 3 << 13, "{profile}: IOPRIO_CLASS_IDLE");
        brig.ok(&["delete", "--force", &id]);
    }
    // CAP_SYS_NICE in the job's own user namespace is no right over the
    // host's CPUs: a negative nice or the real-time I/O class fails, as it
    // does for the job itself (they were set as host root, before joining).
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"permissive\"\n");
    let mut b = Bundle::new(&["sleep", "30"]);
    b.push("/linux/namespaces", json!({"type": "user"}));
    b.set("/linux/uidMappings", json!([{"containerID": 0, "hostID": 231072, "size": 65536}]));
    b.set("/linux/gidMappings", json!([{"containerID": 0, "hostID": 231072, "size": 65536}]));
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), json!(["CAP_SYS_NICE", "CAP_KILL"]));
    }
    b.set("/process/capabilities/inheritable", json!([]));
    b.set("/process/capabilities/ambient", json!([]));
    let id = unique_id("nice");
    brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    for (field, value) in [
        ("scheduler", json!({"policy": "SCHED_OTHER", "nice": -20})),
        ("ioPriority", json!({"class": "IOPRIO_CLASS_RT", "priority": 0})),
    ] {
        let mut process = json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "env": ["PATH=/bin"], "args": ["true"],
            "capabilities": {"bounding": ["CAP_SYS_NICE"], "effective": ["CAP_SYS_NICE"], "permitted": ["CAP_SYS_NICE"]}});
        process[field] = value;
        let pfile = brig.dir.path().join("nice.json");
        std::fs::write(&pfile, process.to_string()).unwrap();
        let err = brig.fails(&["exec", "--process", pfile.to_str().unwrap(), &id]);
        assert!(err.contains(&format!("process.{field}")), "{field}: {err}");
    }
    brig.ok(&["delete", "--force", &id]);
}

/// A user namespace a job made inside its per-job one maps into the job's
/// range too: joining it by path would run with that range without holding
/// it (it goes back to the pool with the job). Refused under every profile,
/// naming the job.
#[test]
fn a_user_namespace_nested_in_a_jobs_is_not_joined() {
    let brig = userns_only();
    let mut first = Bundle::new(&[
        "sh",
        "-c",
        "unshare -U sleep 3017 & p=$!; sleep 0.5; echo '0 1 65535' > /proc/$p/uid_map && echo '0 1 65535' > /proc/$p/gid_map && echo mapped; wait",
    ]);
    docker_caps(&mut first);
    let first_id = unique_id("nester");
    let out = tempfile::NamedTempFile::new().unwrap();
    brig.command()
        .args(["run", "-d", "--bundle", first.path().to_str().unwrap(), &first_id])
        .stdout(out.reopen().unwrap())
        .status()
        .unwrap();
    let job_userns = ns_inode(brig.state(&first_id)["pid"].as_i64().unwrap(), "user");
    // The nested one: `sleep 3017` in a user namespace other than the job's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let nested = loop {
        let found = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: i64 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (cmd == b"sleep\x003017\x00" && std::fs::read_to_string(out.path()).ok()?.contains("mapped"))
                .then_some(pid)
                .filter(|p| ns_inode(*p, "user") != job_userns)
        });
        if let Some(pid) = found {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no nested user namespace: {}",
            std::fs::read_to_string(out.path()).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    for profile in ["userns-only", "standard", "permissive"] {
        let mut b = Bundle::new(&["true"]);
        b.push("/linux/namespaces", json!({"type": "user", "path": format!("/proc/{nested}/ns/user")}));
        b.set("/annotations", json!({"dev.brig.profile": profile}));
        let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("joiner")]);
        assert!(err.contains("nested in job") && err.contains(&first_id), "{profile}: {err}");
    }
    brig.ok(&["delete", "--force", &first_id]);
}

/// A user namespace joined by path is held to the rules of a spec's own maps
/// however the path is written (`/proc/<pid>/task/<tid>/ns/user` named the
/// same namespace and skipped the check): one mapping host root is refused
/// under a per-job profile.
#[test]
fn a_joined_user_namespace_is_checked_whatever_its_path() {
    let brig = restricted();
    let mut holder = std::process::Command::new("unshare").args(["-U", "sleep", "60"]).spawn().unwrap();
    let pid = holder.id();
    let own = std::fs::read_link("/proc/self/ns/user").unwrap();
    for _ in 0..100 {
        if std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|ns| ns != own) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), "0 0 65536\n").unwrap();
    std::fs::write(format!("/proc/{pid}/setgroups"), "deny").unwrap();
    std::fs::write(format!("/proc/{pid}/gid_map"), "0 0 65536\n").unwrap();
    for path in [format!("/proc/{pid}/ns/user"), format!("/proc/{pid}/task/{pid}/ns/user")] {
        let mut b = Bundle::new(&["id"]);
        b.push("/linux/namespaces", json!({"type": "user", "path": path}));
        let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("hostroot")]);
        assert!(err.contains("host root"), "{path}: {err}");
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
}
