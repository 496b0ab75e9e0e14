//! The attack suite (issue 3): each attack runs inside a job under
//! `restricted` and must fail in the specific way the profile makes it fail;
//! the same attack under `permissive` (with the capabilities it needs) shows
//! that the profile, not the environment, is what stops it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use brig_tests::{unique_id, Brig, Bundle};
use serde_json::json;

fn restricted() -> Brig {
    Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n")
}

fn permissive() -> Brig {
    Brig::default()
}

/// A bundle running the probe, with a tmpfs /tmp (restricted adds its own).
fn probe(args: &[&str]) -> Bundle {
    let mut full = vec!["/bin/brig-probe"];
    full.extend_from_slice(args);
    let mut b = Bundle::new(&full);
    b.push(
        "/mounts",
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=16m"]}),
    );
    b
}

/// Capabilities the permissive runs get, so that each attack can succeed
/// when nothing stops it (this host's root lacks CAP_SYS_RESOURCE).
const STRONG_CAPS: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_PTRACE",
    "CAP_NET_RAW",
    "CAP_NET_ADMIN",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_DAC_READ_SEARCH",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_KILL",
    "CAP_CHOWN",
];

fn strong(b: &mut Bundle) {
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), json!(STRONG_CAPS));
    }
    for set in ["inheritable", "ambient"] {
        b.set(&format!("/process/capabilities/{set}"), json!([]));
    }
    b.set("/process/noNewPrivileges", json!(false));
}

fn run_probe(brig: &Brig, bundle: &Bundle) -> (i32, String, String) {
    brig.run(bundle, &unique_id("atk"))
}

fn first_line(out: &str) -> String {
    out.lines().next().unwrap_or("").trim().to_string()
}

/// (attack, args, result under restricted, result under permissive or None)
const ATTACKS: &[(&str, &[&str], &str, Option<&str>)] = &[
    ("mount", &[], "errno=EPERM", Some("ok")),
    ("unshare-user", &[], "errno=EPERM", Some("ok")),
    ("unshare-net", &[], "errno=EPERM", Some("ok")),
    ("unshare-mount", &[], "errno=EPERM", Some("ok")),
    ("clone-newuser", &[], "errno=EPERM", Some("ok")),
    ("setns", &[], "errno=EPERM", Some("ok")),
    ("ptrace", &[], "errno=EPERM", Some("ok")),
    ("bpf", &[], "errno=EPERM", Some("errno=EINVAL")),
    ("keyctl", &[], "errno=EPERM", Some("ok")),
    ("add_key", &[], "errno=EPERM", Some("ok")),
    ("perf_event_open", &[], "errno=EPERM", Some("ok")),
    ("io_uring_setup", &[], "errno=EPERM", Some("ok")),
    ("userfaultfd", &[], "errno=EPERM", Some("ok")),
    ("kexec_load", &[], "errno=EPERM", None),
    ("init_module", &[], "errno=EPERM", None),
    ("finit_module", &[], "errno=EPERM", None),
    ("open_by_handle_at", &[], "errno=EPERM", None),
    ("personality", &[], "errno=EPERM", Some("ok")),
    // Numbers the architecture does not define, and getpid through the x32
    // ABI: ENOSYS (the "known syscalls" filter), as from a kernel without them.
    ("syscall", &["1000"], "errno=ENOSYS", Some("errno=ENOSYS")),
    ("syscall", &["1073741863"], "errno=ENOSYS", None),
    ("clone3", &[], "errno=ENOSYS", None),
    ("raw-socket", &[], "errno=EPERM", Some("ok")),
    ("packet-socket", &[], "errno=EPERM", Some("ok")),
    ("chmod-suid", &["/tmp/suid"], "errno=EPERM", Some("ok")),
    ("open-suid", &["/tmp/suid-open"], "errno=EPERM", Some("ok")),
    ("openat-suid", &["/tmp/suid-openat"], "errno=EPERM", Some("ok")),
    ("tmpfile-suid", &["/tmp"], "errno=EPERM", Some("ok")),
    ("creat-suid", &["/tmp/suid-creat"], "errno=EPERM", Some("ok")),
    ("mknod-suid", &["/tmp/suid-mknod"], "errno=EPERM", Some("ok")),
    ("openat2", &["/tmp/suid-openat2"], "errno=ENOSYS", Some("ok")),
    ("open-no-create", &["/etc/passwd"], "ok", Some("ok")),
    // Code that is not in the image, run from a memfd: `vm.memfd_noexec = 2`
    // in the job's pid namespace (an executable memfd is refused, any other
    // is sealed non-executable).
    ("memfd-exec", &["plain", "via-fd"], "errno=EACCES", Some("ok")),
    ("memfd-exec", &["plain", "execveat"], "errno=EACCES", Some("ok")),
    ("memfd-exec", &["exec", "via-fd"], "errno=EACCES", Some("ok")),
    ("read", &["/secret/data.txt"], "errno=EACCES", Some("ok bytes=11")),
    ("read", &["/proc/interrupts"], "ok bytes=0", None),
    ("write", &["/bin/planted"], "errno=EROFS", None),
    ("kill", &["1", "0"], "errno=EPERM", Some("ok")),
    // Sanity: what the profile allows still works.
    ("tcp-socket", &[], "ok", Some("ok")),
    ("write", &["/tmp/scratch"], "ok", Some("ok")),
];

#[test]
fn attacks_fail_under_restricted_and_work_under_permissive() {
    let r = restricted();
    let p = permissive();
    let mut failures = Vec::new();
    // vm.memfd_noexec is set in the jobs' pid namespaces, never the host's.
    let host_memfd_noexec = || std::fs::read_to_string("/proc/sys/vm/memfd_noexec").ok();
    let host_before = host_memfd_noexec();
    for (attack, args, want_r, want_p) in ATTACKS {
        let mut a = vec![*attack];
        a.extend_from_slice(args);
        let (code, out, err) = run_probe(&r, &probe(&a));
        let got = first_line(&out);
        if code != 0 || got != *want_r {
            failures.push(format!("restricted {a:?}: want `{want_r}`, got `{got}` (exit {code}) {err}"));
        }
        if let Some(want_p) = want_p {
            let mut b = probe(&a);
            strong(&mut b);
            let (code, out, err) = run_probe(&p, &b);
            let got = first_line(&out);
            if code != 0 || got != *want_p {
                failures.push(format!("permissive {a:?}: want `{want_p}`, got `{got}` (exit {code}) {err}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} attack results differ:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(host_memfd_noexec(), host_before, "the host's vm.memfd_noexec changed");
}

#[test]
fn masked_kernel_files_are_unreadable_or_empty() {
    // /proc/kcore and /proc/sysrq-trigger do not exist on every kernel; where
    // they do, restricted masks or write-protects them.
    let r = restricted();
    let (_, out, _) = run_probe(&r, &probe(&["read", "/proc/kcore"]));
    let got = first_line(&out);
    assert!(got == "ok bytes=0" || got == "errno=ENOENT", "{got}");
    let (_, out, _) = run_probe(&r, &probe(&["write", "/proc/sysrq-trigger"]));
    let got = first_line(&out);
    assert!(got == "errno=EROFS" || got == "errno=ENOENT", "{got}");
    // And /proc/interrupts is readable where the profile does not mask it.
    let (_, out, _) = run_probe(&permissive(), &probe(&["read", "/proc/interrupts"]));
    assert!(first_line(&out).starts_with("ok bytes=") && !first_line(&out).ends_with("=0"), "{out}");
}

#[test]
fn restricted_status_inside_the_job() {
    let (code, out, err) = run_probe(&restricted(), &probe(&["status"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000000"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

#[test]
fn fork_bomb_is_stopped_by_the_pids_limit() {
    // restricted's pids ceiling (256) applies although the spec sets none.
    let (code, out, err) = run_probe(&restricted(), &probe(&["fork-bomb"]));
    let got = first_line(&out);
    assert!(got.starts_with("errno=EAGAIN forked="), "exit {code}: {got} {err}");
    let n: u32 = got.rsplit('=').next().unwrap().parse().unwrap();
    assert!(n < 256, "forked {n}");
    // Under permissive only the spec's own limit applies.
    let mut b = probe(&["fork-bomb"]);
    b.set("/linux/resources/pids", json!({"limit": 32}));
    let (_, out, _) = run_probe(&permissive(), &b);
    let got = first_line(&out);
    let n: u32 = got.rsplit('=').next().unwrap().parse().unwrap();
    assert!(got.starts_with("errno=EAGAIN") && n < 32, "{got}");
}

#[test]
fn memory_bomb_is_oom_killed_and_reported() {
    let brig = restricted();
    let mut b = probe(&["mem-bomb", "1024"]);
    b.set("/linux/resources/memory", json!({"limit": 64 << 20, "swap": 64 << 20}));
    let (code, out, err) = run_probe(&brig, &b);
    assert_eq!(code, 137, "stdout: {out} stderr: {err}");
    assert!(err.contains("OOM killer"), "not reported as OOM: {err}");
    // The same through create/start/state: the outcome says oom_killed.
    let id = unique_id("oom");
    brig.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    brig.ok(&["start", &id]);
    brig.wait_status(&id, "stopped");
    let outcome = brig.state(&id)["brig"]["outcome"].clone();
    assert_eq!(outcome["oom_killed"], true, "{outcome}");
    assert_eq!(outcome["signal"], 9, "{outcome}");
    brig.ok(&["delete", &id]);
}

/// `brig events` streams as `runc events` does: an `oom` event as soon as a
/// process of the container is OOM-killed (here a child, while the job goes
/// on), and statistics every interval; the stream ends when the job stops.
#[test]
fn events_stream_reports_an_oom_kill_and_ends_with_the_job() {
    use std::io::BufRead;
    let brig = restricted();
    let mut b = probe(&[]);
    b.set("/process/args", json!(["sh", "-c", "sleep 2; /bin/brig-probe mem-bomb 1024; sleep 2"]));
    b.set("/linux/resources/memory", json!({"limit": 64 << 20, "swap": 64 << 20}));
    let id = unique_id("oomev");
    brig.ok(&["run", "--detach", "--bundle", b.path().to_str().unwrap(), &id]);
    let mut events = brig
        .command()
        .args(["events", "--interval", "500ms", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let lines: Vec<serde_json::Value> = std::io::BufReader::new(events.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let status = events.wait().unwrap();
    assert!(status.success(), "events ended with {status}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "the stream outlived the job");
    let kinds: Vec<&str> = lines.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "oom").count(), 1, "{kinds:?}");
    assert!(kinds.iter().filter(|k| **k == "stats").count() >= 3, "{kinds:?}");
    assert!(lines.iter().all(|e| e["id"] == id.as_str()));
    let oom_at = kinds.iter().position(|k| *k == "oom").unwrap();
    assert!(oom_at > 0 && oom_at + 1 < kinds.len(), "the OOM came mid-stream: {kinds:?}");
    brig.ok(&["delete", &id]);
}

#[test]
fn timeout_stops_the_job_and_is_reported() {
    let brig = restricted();
    let mut b = Bundle::new(&["sleep", "30"]);
    b.annotate("dev.brig.timeout", "1s");
    let started = std::time::Instant::now();
    let (code, _, err) = brig.run(&b, &unique_id("timeout"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(code, 143, "{err}");
    assert!(err.contains("exceeded its timeout of 1s"), "{err}");
    // A job that ignores SIGTERM is killed after the grace period.
    let mut stubborn = Bundle::new(&["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"]);
    stubborn.annotate("dev.brig.timeout", "1s");
    let id = unique_id("timeout");
    brig.ok(&["create", "--bundle", stubborn.path().to_str().unwrap(), &id]);
    brig.ok(&["start", &id]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(brig.status(&id), "running", "killed before the grace period");
    // restricted's grace is 10 s.
    for _ in 0..200 {
        if brig.status(&id) == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let outcome = brig.state(&id)["brig"]["outcome"].clone();
    assert_eq!(outcome["timed_out"], true, "{outcome}");
    assert_eq!(outcome["signal"], 9, "killed after the grace period: {outcome}");
    brig.ok(&["delete", &id]);
}

#[test]
fn a_longer_timeout_than_the_profile_allows_is_refused() {
    let brig = restricted();
    let mut b = Bundle::new(&["true"]);
    b.annotate("dev.brig.timeout", "2h");
    let err = brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("t")]);
    assert!(err.contains("dev.brig.timeout") && err.contains("restricted") && err.contains("1h"), "{err}");
    b.annotate("dev.brig.timeout", "soon");
    let err = brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("t")]);
    assert!(err.contains("dev.brig.timeout") && err.contains("soon"), "{err}");
}

#[test]
fn exit_status_and_signals_reported_through_create_start_delete() {
    let brig = restricted();
    for (script, field, value) in [("exit 3", "exit_code", 3), ("kill -USR1 $$", "signal", 10)] {
        let b = Bundle::new(&["sh", "-c", script]);
        let id = unique_id("st");
        brig.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
        brig.ok(&["start", &id]);
        brig.wait_status(&id, "stopped");
        let outcome = brig.state(&id)["brig"]["outcome"].clone();
        assert_eq!(outcome[field], value, "{script}: {outcome}");
        brig.ok(&["delete", &id]);
    }
    // Killed from outside.
    let b = Bundle::new(&["sleep", "30"]);
    let id = unique_id("st");
    brig.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    brig.ok(&["start", &id]);
    brig.ok(&["kill", &id, "KILL"]);
    brig.wait_status(&id, "stopped");
    let outcome = brig.state(&id)["brig"]["outcome"].clone();
    assert_eq!(outcome["signal"], 9, "{outcome}");
    assert_eq!(outcome["oom_killed"], false, "{outcome}");
    brig.ok(&["delete", &id]);
}

/// A job cannot raise its own cgroup limits or write anything under
/// `/sys/fs/cgroup`, under `standard` (root with ten capabilities, no user
/// namespace of its own) and `restricted`, with and without a cgroup
/// namespace: every hierarchy is mounted read-only (libcontainer used to mount
/// each cgroup v1 hierarchy read-write whatever the spec's options).
#[test]
fn a_job_cannot_raise_its_own_cgroup_limits() {
    let script = "for f in memory/memory.limit_in_bytes pids/pids.max memory.max pids.max; do \
                    [ -e /sys/fs/cgroup/$f ] && { echo 1073741824 > /sys/fs/cgroup/$f && echo RAISED $f; }; \
                  done; \
                  mkdir /sys/fs/cgroup/evil && echo MADE; \
                  grep ' /sys/fs/cgroup' /proc/self/mountinfo; true";
    for profile in ["standard", "restricted"] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        for cgroup_namespace in [true, false] {
            let mut b = Bundle::new(&["sh", "-c", script]);
            if !cgroup_namespace {
                let namespaces: Vec<serde_json::Value> = b.config["linux"]["namespaces"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|n| n["type"] != "cgroup")
                    .cloned()
                    .collect();
                b.set("/linux/namespaces", json!(namespaces));
            }
            let (code, out, err) = brig.run(&b, &unique_id("cg"));
            let case = format!("{profile}, cgroup namespace {cgroup_namespace}");
            assert_eq!(code, 0, "{case}: {err}");
            assert!(!out.contains("RAISED") && !out.contains("MADE"), "{case}: {out}");
            let mounts: Vec<&str> = out.lines().filter(|l| l.contains(" /sys/fs/cgroup")).collect();
            assert!(!mounts.is_empty(), "{case}: {out}");
            for line in mounts {
                let options = line.split_whitespace().nth(5).unwrap();
                assert!(options.split(',').any(|o| o == "ro"), "{case}: writable: {line}");
            }
            assert!(err.contains("Read-only file system"), "{case}: {err}");
        }
    }
}

/// A device node shipped in the image does not work under a profile that
/// allows no devices (the rootfs is `nodev`), whatever the device cgroup
/// allows (cgroup v2 has none without its BPF filter; here the node is
/// `/dev/null`'s, which every device cgroup allows); under `permissive` it
/// opens.
#[test]
fn an_images_own_device_node_does_not_work() {
    let image = tempfile::tempdir().unwrap();
    let rootfs = image.path().join("rootfs");
    let copied = std::process::Command::new("cp").arg("-a").arg(brig_tests::rootfs()).arg(&rootfs).status().unwrap();
    assert!(copied.success());
    std::fs::create_dir_all(rootfs.join("opt")).unwrap();
    let made = std::process::Command::new("mknod")
        .args(["-m", "0666"])
        .arg(rootfs.join("opt/null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success());
    for (profile, works) in [("restricted", false), ("standard", false), ("permissive", true)] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        let mut b = Bundle::new(&["sh", "-c", "cat /opt/null && echo OPENED; true"]);
        b.set("/root", json!({"path": rootfs, "readonly": true}));
        let (code, out, err) = brig.run(&b, &unique_id("dev"));
        assert_eq!(code, 0, "{profile}: {err}");
        if works {
            assert!(out.contains("OPENED"), "{profile}: {out} {err}");
        } else {
            assert!(!out.contains("OPENED"), "{profile}: the image's device node opened: {out}");
            assert!(err.contains("Permission denied"), "{profile}: {err}");
        }
    }
}

/// A job that may create device nodes (`permissive` keeps the spec's
/// `CAP_MKNOD`, as Docker grants it) makes one for `/dev/kmsg` (c 1:11) and
/// cannot open it unless a device rule of its spec allows it: also when the
/// spec has no device rules or no `linux.resources` at all (libcgroups then
/// applied nothing, and every device opened), on cgroup v1 (this host) and
/// v2 (the QEMU suite runs this file; its eBPF device filter). It opens for
/// writing, which `/dev/kmsg` allows without `CAP_SYSLOG`, so the refusal
/// is the device cgroup's.
#[test]
fn a_device_the_rules_do_not_allow_does_not_open() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"permissive\"\n");
    let job = "mknod /dev/k c 1 11 || exit 3; if (exec 3>/dev/k) 2>/dev/e; then echo OPENED; \
               else echo \"REFUSED: $(cat /dev/e)\"; fi";
    let deny_all = json!({"allow": false, "access": "rwm"});
    let kmsg = json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"});
    for (case, resources, opens) in [
        ("no linux.resources", serde_json::Value::Null, false),
        ("no device rules", json!({"devices": []}), false),
        (
            "an allow of another device only",
            json!({"devices": [{"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]}),
            false,
        ),
        ("Docker's deny-all", json!({"devices": [deny_all]}), false),
        ("allowed by a rule", json!({"devices": [deny_all, kmsg]}), true),
    ] {
        let mut b = Bundle::new(&["sh", "-c", job]);
        b.set("/linux/resources", resources);
        for set in ["bounding", "effective", "permitted"] {
            b.push(&format!("/process/capabilities/{set}"), json!("CAP_MKNOD"));
        }
        let (code, out, err) = brig.run(&b, &unique_id("devrule"));
        assert_eq!(code, 0, "{case}: {out} {err}");
        if opens {
            assert!(out.contains("OPENED"), "{case}: {out} {err}");
        } else {
            assert!(out.contains("REFUSED") && out.contains("Operation not permitted"), "{case}: {out} {err}");
        }
    }
}

/// `exec --user 4294967295` (and the same uid or gid in a process.json, or
/// at create): (uid_t)-1 is "keep the current ID" to setresuid(2), so the
/// exec'd process stayed the runtime's host root (it read a root-only file
/// the job's root cannot), while the policy had seen uid 4294967295. Now
/// refused, naming the field, under `restricted` and `permissive`; the job
/// and an ordinary exec go on.
#[test]
fn the_no_change_uid_is_never_a_processs_user() {
    for profile in ["restricted", "permissive"] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        let id = unique_id("uidmax");
        let b = Bundle::new(&["sleep", "60"]);
        brig.ok(&["run", "--detach", "--bundle", b.path().to_str().unwrap(), &id]);
        for (user, field) in [
            ("4294967295", "process.user.uid"),
            ("0:4294967295", "process.user.gid"),
            ("4294967295:4294967295", "process.user.uid"),
        ] {
            let out = brig.cmd(&["exec", "--user", user, &id, "sh", "-c", "echo RAN; id"]);
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(!out.status.success() && !stdout.contains("RAN"), "{profile} --user {user}: {stdout} {stderr}");
            assert!(stderr.contains(field) && stderr.contains("4294967295"), "{profile} --user {user}: {stderr}");
        }
        assert!(brig.ok(&["exec", &id, "sh", "-c", "echo RAN"]).contains("RAN"), "{profile}");
        brig.ok(&["delete", "--force", &id]);
        let mut b = Bundle::new(&["sh", "-c", "echo RAN"]);
        b.set("/process/user/uid", json!(4294967295u32));
        let (code, out, err) = brig.run(&b, &unique_id("uidmax"));
        assert!(code != 0 && !out.contains("RAN") && err.contains("process.user.uid"), "{profile} create: {out} {err}");
    }
}

/// An update keeps the job's device rules whatever rules it carries, as
/// runc's `update` ignores them: containerd's CRI sends the spec's whole
/// resources, whose deny-all took back (cgroup v1: written to the running
/// job's cgroup, then only the default allows) a device the spec allowed;
/// on cgroup v2 the device program is built again from the job's own rules,
/// not the update's alone (the QEMU suite runs this file).
#[test]
fn an_update_keeps_the_jobs_device_rules() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"permissive\"\n");
    let deny_all = json!({"allow": false, "access": "rwm"});
    let kmsg = json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"});
    let mut b = Bundle::new(&["sleep", "60"]);
    b.set("/linux/resources", json!({"devices": [deny_all, kmsg]}));
    for set in ["bounding", "effective", "permitted"] {
        b.push(&format!("/process/capabilities/{set}"), json!("CAP_MKNOD"));
    }
    let id = unique_id("devupd");
    brig.ok(&["run", "--detach", "--bundle", b.path().to_str().unwrap(), &id]);
    let opens = || {
        let job = "mknod /dev/k c 1 11 2>/dev/null; if (exec 3>/dev/k) 2>/dev/e; then echo OPENED; \
                   else echo \"REFUSED: $(cat /dev/e)\"; fi";
        brig.ok(&["exec", &id, "sh", "-c", job])
    };
    assert!(opens().contains("OPENED"), "before any update");
    // What containerd's UpdateContainerResources sends: the spec's resources.
    let update = json!({"devices": [deny_all, kmsg], "pids": {"limit": 100}}).to_string();
    let cri = brig.dir.path().join("cri-update.json");
    std::fs::write(&cri, &update).unwrap();
    brig.ok(&["update", "--resources", cri.to_str().unwrap(), &id]);
    assert!(opens().contains("OPENED"), "after containerd's update");
    // Rules that would deny the device are ignored too, as runc does.
    let deny = json!({"devices": [deny_all]}).to_string();
    std::fs::write(&cri, &deny).unwrap();
    brig.ok(&["update", "--resources", cri.to_str().unwrap(), &id]);
    brig.ok(&["update", "--memory", "268435456", &id]);
    assert!(opens().contains("OPENED"), "after updates without the rule");
    brig.ok(&["delete", "--force", &id]);
}

/// A job that keeps a signal pending at pid 1 (here by queueing real-time
/// signals in a loop, on a profile without Landlock's signal scope, as on
/// kernels before 6.12; through a terminal's window size it needs no `kill`
/// at all) still meets its timeout and its
/// grace period's SIGKILL: the supervisor used to act on the deadline only
/// when its wait for signals timed out.
#[test]
fn a_signal_stream_does_not_stop_the_timeout() {
    let restricted_toml = include_str!("../../profiles/builtin/restricted.toml");
    let profile = restricted_toml
        .replace("name = \"restricted\"", "name = \"noscope\"")
        .replace("scope = [\"abstract_unix_socket\", \"signal\"]", "scope = [\"abstract_unix_socket\"]")
        .replace("grace = \"10s\"", "grace = \"1s\"");
    assert!(
        profile.contains("name = \"noscope\"")
            && profile.contains("grace = \"1s\"")
            && !profile.contains("\"signal\"]")
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("noscope.toml"), profile).unwrap();
    let brig = Brig::new(&format!(
        "[auth]\nmode = \"off\"\n[profiles]\ndefault = \"noscope\"\ndir = \"{}\"\n",
        dir.path().display()
    ));
    let mut b = Bundle::new(&["/bin/brig-probe", "sigstream"]);
    b.annotate("dev.brig.timeout", "1s");
    let id = unique_id("sigstream");
    brig.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    brig.ok(&["start", &id]);
    let started = std::time::Instant::now();
    while brig.status(&id) != "stopped" && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let stopped = brig.status(&id) == "stopped";
    let outcome = brig.state(&id)["brig"]["outcome"].clone();
    brig.ok(&["delete", "--force", &id]);
    assert!(stopped, "the job outlived its timeout and grace period by far");
    assert_eq!(outcome["timed_out"], true, "{outcome}");
    assert_eq!(outcome["signal"], 9, "{outcome}");
}

/// An exec'd process is dumpable from its `execve` of brig's supervisor
/// until the supervisor's first instruction, and the supervisor hardens it
/// only after that: a job with the same user could write code into its
/// `/proc/<pid>/mem` in between (a review found it, under a seccomp profile
/// without Landlock, as `standard` is on a kernel without Landlock). Without
/// a Landlock domain to keep the job out (and for the supervisor to apply),
/// brig installs the plan's filters itself and executes the job directly, as
/// runc does: the job's `execve` is the only call under the filter, and the
/// filter is never installed twice. Under Landlock the supervisor still does
/// it all, Landlock first.
#[test]
fn an_exec_without_landlock_is_filtered_before_anything_else_runs() {
    let restricted_toml = include_str!("../../profiles/builtin/restricted.toml");
    let start = restricted_toml.find("[landlock]").unwrap();
    let end = start + restricted_toml[start..].find("\n\n").unwrap();
    let profile = format!("{}{}", &restricted_toml[..start], &restricted_toml[end..])
        .replace("name = \"restricted\"", "name = \"nolandlock\"");
    assert!(!profile.contains("[landlock]") && profile.contains("[seccomp]"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nolandlock.toml"), profile).unwrap();
    for (name, sealed) in [("nolandlock", true), ("restricted", false)] {
        let brig = Brig::new(&format!(
            "[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{name}\"\ndir = \"{}\"\n",
            dir.path().display()
        ));
        let id = unique_id("sealed");
        let b = Bundle::new(&["sleep", "30"]);
        brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
        let trace = brig.dir.path().join("strace.out");
        let out = std::process::Command::new("strace")
            .args(["-f", "-qq", "-s", "64", "-e", "trace=seccomp,execve,execveat", "-o"])
            .arg(&trace)
            .arg(brig_tests::brig_bin())
            .arg("--root")
            .arg(&brig.root)
            .arg("--config")
            .arg(&brig.config)
            .args(["exec", &id, "grep", "Seccomp_filters", "/proc/self/status"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("strace (scripts/deps.sh installs it)");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        brig.ok(&["delete", "--force", &id]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        // One filter (brig's), never installed twice.
        assert!(stdout.split_whitespace().eq(["Seccomp_filters:", "1"]), "{name}: {stdout}");
        let text = std::fs::read_to_string(&trace).unwrap();
        // The process that becomes the job: the one that executes grep.
        let job = text
            .lines()
            .find(|l| l.contains("[\"grep\", \"Seccomp_filters\"") && l.contains("exec"))
            .unwrap_or_else(|| panic!("{name}: no exec of the job in:\n{text}"));
        let pid = job.split_whitespace().next().unwrap();
        let mine: Vec<&str> = text.lines().filter(|l| l.split_whitespace().next() == Some(pid)).collect();
        let at = mine.iter().position(|l| *l == job).unwrap();
        let filter = |l: &&&str| l.contains("seccomp(SECCOMP_SET_MODE_FILTER") && l.ends_with("= 0");
        let supervisor = mine[..at].iter().position(|l| l.contains("[\"brig-init\""));
        let filters_at: Vec<usize> = mine[..at].iter().enumerate().filter(|(_, l)| filter(l)).map(|(i, _)| i).collect();
        if sealed {
            assert_eq!(supervisor, None, "{name}: the job is executed directly:\n{text}");
            assert_eq!(filters_at.len(), 1, "{name}:\n{text}");
            // Nothing but the job's execve after the filter.
            assert_eq!(filters_at[0] + 1, at, "{name}: only the job's execve after the filter:\n{text}");
            assert!(job.split_whitespace().nth(1).is_some_and(|c| c.starts_with("execve(\"/bin/grep\"")), "{job}");
        } else {
            let supervisor = supervisor.unwrap_or_else(|| panic!("{name}: no supervisor:\n{text}"));
            assert_eq!(filters_at.len(), 1, "{name}:\n{text}");
            assert!(filters_at[0] > supervisor, "{name}: Landlock first, in the supervisor:\n{text}");
        }
    }
}

/// `restricted` runs only the image's programs: a job never runs a program
/// it wrote, wherever Landlock grants execution. Each case copies busybox
/// (standing for a downloaded binary) to a place the job can write where
/// Landlock would let it execute: its working directory on the client's
/// `/dev` (the working directory is granted execution) or on a writable
/// volume, a tmpfs of the spec's at a profile path that may execute
/// (`/opt`), a read-only bind of the directory another of its mounts
/// writes. The copy works and running it fails with EACCES (the mount is
/// `noexec`), where under `permissive` it runs.
#[test]
fn a_restricted_job_never_runs_a_program_it_wrote() {
    let restricted = restricted();
    let data = std::path::PathBuf::from(format!("/var/lib/brig/jobs/noexec-{}", unique_id("x")));
    std::fs::create_dir_all(&data).unwrap();
    let volume = |b: &mut Bundle, dest: &str, options: &[&str]| {
        b.push("/mounts", json!({"destination": dest, "type": "bind", "source": data, "options": options}));
    };
    type Setup<'a> = Box<dyn Fn(&mut Bundle) + 'a>;
    let cases: Vec<(&str, &str, Setup)> = vec![
        (
            "/dev as the working directory",
            "/dev",
            Box::new(|b: &mut Bundle| {
                b.set("/process/cwd", json!("/dev"));
            }),
        ),
        (
            "a writable volume as the working directory",
            "/work",
            Box::new(|b: &mut Bundle| {
                volume(b, "/work", &["rbind", "rw"]);
                b.set("/process/cwd", json!("/work"));
            }),
        ),
        (
            "a tmpfs of the spec's at /opt",
            "/opt",
            Box::new(|b: &mut Bundle| {
                b.push("/mounts", json!({"destination": "/opt", "type": "tmpfs", "source": "tmpfs", "options": ["size=16m", "mode=1777", "exec"]}));
            }),
        ),
        (
            "a read-only bind of what another mount writes",
            "/work",
            Box::new(|b: &mut Bundle| {
                volume(b, "/work", &["rbind", "rw"]);
                volume(b, "/usr/local", &["rbind", "ro"]);
            }),
        ),
    ];
    for (what, dir, setup) in &cases {
        let run_from = if *what == "a read-only bind of what another mount writes" { "/usr/local" } else { dir };
        // Named `echo`: busybox picks its applet by the name it runs as.
        let script = format!("cp /bin/busybox {dir}/echo && echo copied && {run_from}/echo ran-it; echo \"exit=$?\"");
        let mut b = Bundle::new(&["sh", "-c", &script]);
        setup(&mut b);
        let (code, out, err) = restricted.run(&b, &unique_id("noexec"));
        assert_eq!(code, 0, "{what}: {err}");
        assert!(out.contains("copied"), "{what}: the copy did not work, so this shows nothing: {out} {err}");
        assert!(!out.contains("ran-it") && out.contains("exit=126"), "{what}: the job ran its own program: {out}");
        let _ = std::fs::remove_file(data.join("echo"));
        let mut b = Bundle::new(&["sh", "-c", &script]);
        setup(&mut b);
        let (code, out, err) = permissive().run(&b, &unique_id("noexec"));
        assert_eq!(code, 0, "{what}: {err}");
        assert!(out.contains("ran-it"), "{what}: under permissive it should run: {out} {err}");
        let _ = std::fs::remove_file(data.join("echo"));
    }
    std::fs::remove_dir_all(&data).unwrap();
}

/// A bind source is swapped for a link to `/etc` over and over while jobs
/// that bind it launch (what a `standard` job, host root with
/// `/var/lib/brig/jobs/` writable, could do to another job's input): no job
/// ever gets `/etc`. Each launch mounts the checked directory or fails
/// naming the link.
#[test]
fn a_bind_source_swapped_for_a_link_never_mounts_the_link() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"standard\"\n");
    let base = std::path::PathBuf::from(format!("/var/lib/brig/jobs/swap-{}", unique_id("s")));
    let src = base.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("mine"), "mine\n").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, src, base) = (stop.clone(), src.clone(), base.clone());
        std::thread::spawn(move || {
            let (real, link) = (base.join("real"), base.join("link"));
            std::os::unix::fs::symlink("/etc", &link).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // src: a link to /etc for 3 ms, then the directory for 9 ms
                // (so that launches get through too, on a slow machine).
                let _ = std::fs::rename(&src, &real);
                let _ = std::fs::rename(&link, &src);
                std::thread::sleep(std::time::Duration::from_millis(3));
                let _ = std::fs::rename(&src, &link);
                let _ = std::fs::rename(&real, &src);
                std::thread::sleep(std::time::Duration::from_millis(9));
            }
        })
    };
    // At least 24 launches, and more (up to 96) until one got through: under
    // emulation (the QEMU suite) a launch spans many swaps.
    let mut mounted = 0;
    for round in 0..96 {
        if round >= 24 && mounted > 0 {
            break;
        }
        let mut b = Bundle::new(&["sh", "-c", "ls /in"]);
        b.push("/mounts", json!({"destination": "/in", "type": "bind", "source": src, "options": ["rbind", "ro"]}));
        let (code, out, err) = brig.run(&b, &unique_id("swap"));
        assert!(!out.contains("passwd") && !out.contains("hostname"), "a job got /etc: {out}");
        if code == 0 {
            assert_eq!(out.trim(), "mine", "{err}");
            mounted += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    std::fs::remove_dir_all(&base).unwrap();
    assert!(mounted > 0, "no launch got through while the source was swapped");
}

/// Two `standard` jobs share a writable root filesystem (the same bundle, or
/// a volume over it); one renames the other's `proc` directory over and over
/// while the other is set up (done here from the host, as that job would).
/// The procfs already mounted there moves along, and libcontainer's masks,
/// applied by path afterwards, would land on the empty directory left in its
/// place: the job would find an unmasked, writable procfs under `/root`
/// (host root: `/proc/sys/kernel/core_pattern`). No job ever sees a
/// writable `sys/kernel/core_pattern`: each launch either has its masks on
/// its procfs or fails naming `/proc` (crate `maskcheck`).
/// `root.path` is swapped, over and over, with a link to a directory the
/// checks refuse (here one inside brig's state root, holding a decoy): what
/// whoever writes the bundle's directory could do between the checks and
/// the mount. No job ever gets the decoy as its root, under a per-job user
/// namespace (the idmapped bind is made from the directory that was
/// checked) or without one (the init finds its root is not that directory).
#[test]
fn a_root_filesystem_swapped_for_a_link_after_its_checks_is_never_the_jobs_root() {
    for profile in ["restricted", "permissive"] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        let copied = std::process::Command::new("cp").arg("-a").arg(brig_tests::rootfs()).arg(&root).status().unwrap();
        assert!(copied.success());
        std::fs::create_dir_all(&brig.root).unwrap();
        let decoy = brig.root.join("decoy");
        let copied = std::process::Command::new("cp").arg("-a").arg(brig_tests::rootfs()).arg(&decoy).status().unwrap();
        assert!(copied.success());
        std::fs::write(decoy.join("DECOY"), "").unwrap();
        let alt = dir.path().join("alt");
        std::os::unix::fs::symlink(&decoy, &alt).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (stop, a, b) = (stop.clone(), root.clone(), alt.clone());
            std::thread::spawn(move || {
                use std::os::unix::ffi::OsStrExt;
                let a = std::ffi::CString::new(a.as_os_str().as_bytes()).unwrap();
                let b = std::ffi::CString::new(b.as_os_str().as_bytes()).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // SAFETY: two NUL-terminated paths; renameat2 only reads them.
                    unsafe {
                        libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE)
                    };
                    std::thread::sleep(std::time::Duration::from_micros(300));
                }
            })
        };
        let (mut ran, mut refused) = (0, 0);
        for _ in 0..30 {
            let mut b = Bundle::new(&["sh", "-c", "if [ -e /DECOY ]; then echo ROOT-IS-DECOY; else echo own-root; fi"]);
            b.set("/root", json!({"path": root, "readonly": true}));
            let (code, out, err) = brig.run(&b, &unique_id("swaproot"));
            assert!(
                !out.contains("ROOT-IS-DECOY"),
                "{profile}: a job got the refused directory as its root: {out}{err}"
            );
            if code == 0 && out.contains("own-root") {
                ran += 1;
            } else {
                assert!(err.contains("root") || err.contains("/"), "{profile}: exit {code}: {out}{err}");
                refused += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(refused > 0, "{profile}: the race was never hit ({ran} ran)");
        // The swap at the worst moment, every time: once every check has
        // passed (BRIG_TEST_FAULT exchanges root.path with `alt`).
        if std::fs::symlink_metadata(&root).is_ok_and(|m| m.file_type().is_symlink()) {
            std::fs::rename(&root, dir.path().join("tmp")).unwrap();
            std::fs::rename(&alt, &root).unwrap();
            std::fs::rename(dir.path().join("tmp"), &alt).unwrap();
        }
        let mut b = Bundle::new(&["sh", "-c", "if [ -e /DECOY ]; then echo ROOT-IS-DECOY; else echo own-root; fi"]);
        b.set("/root", json!({"path": root, "readonly": true}));
        let out = brig
            .command()
            .args(["run", "--bundle", b.path().to_str().unwrap(), &unique_id("swapfault")])
            .env("BRIG_TEST_FAULT", "swap-rootfs-after-checks")
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::symlink_metadata(&root).unwrap().file_type().is_symlink(), "the fault did not swap");
        assert!(!out.status.success() && !stdout.contains("ROOT-IS-DECOY"), "{profile}: {stdout}{stderr}");
        assert!(
            stderr.contains("changed since it was checked")
                || stderr.contains("no longer the directory that was checked")
                || stderr.contains("is not the directory that was checked"),
            "{profile}: {stderr}"
        );
        let _ = std::fs::remove_dir_all(&decoy);
    }
}

#[test]
fn a_procfs_moved_while_the_job_is_set_up_is_never_left_unmasked() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"standard\"\n");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    let copied = std::process::Command::new("cp").arg("-a").arg(brig_tests::rootfs()).arg(&root).status().unwrap();
    assert!(copied.success());
    std::fs::create_dir_all(root.join("root")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mover = {
        let (stop, root) = (stop.clone(), root.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::rename(root.join("proc"), root.join(format!("root/p{i}")));
                let _ = std::fs::create_dir(root.join("proc"));
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    // Opening for writing (appending nothing) is the test: busybox's `-w`
    // is always true for root, and nothing is written.
    let script = "for d in /proc /root/p*; do [ -e $d/sys/kernel/core_pattern ] || continue; \
                  if (exec 3>>$d/sys/kernel/core_pattern) 2>/dev/null; then echo UNMASKED $d; else echo masked $d; fi; done";
    let (mut clean, mut refused) = (0, 0);
    for _ in 0..16 {
        let mut b = Bundle::new(&["sh", "-c", script]);
        b.set("/root", json!({"path": root, "readonly": false}));
        let (code, out, err) = brig.run(&b, &unique_id("mvproc"));
        assert!(!out.contains("UNMASKED"), "a job found a writable procfs: {out}{err}");
        match code {
            0 => clean += 1,
            _ if err.contains("is not the procfs mounted for the job") || err.contains("`/proc` is gone") => {
                refused += 1
            }
            _ => eprintln!("failed otherwise: {err}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    mover.join().unwrap();
    eprintln!("{clean} launches with their masks, {refused} refused naming /proc");
    // The mover is faster than a launch: the race is hit, not missed.
    assert!(refused > 0, "no launch met the moved procfs ({clean} launched)");
}

/// A bundle writer cannot make `create` (or `exec --process`) read without
/// end or hang: a config.json that is a link to /dev/zero, a FIFO, or a huge
/// sparse file is refused at once, naming the file.
#[test]
fn a_config_json_that_is_endless_or_a_fifo_is_refused_at_once() {
    let brig = restricted();
    let b = Bundle::new(&["true"]);
    let config = b.path().join("config.json");
    let check = |what: &str, brig: &Brig| {
        let started = std::time::Instant::now();
        let err = brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("endless")]);
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{what}: took {:?}", started.elapsed());
        assert!(err.contains("config.json"), "{what}: {err}");
        err
    };
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    assert!(check("/dev/zero", &brig).contains("not a regular file"));
    std::fs::remove_file(&config).unwrap();
    nix::unistd::mkfifo(&config, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(check("a FIFO", &brig).contains("not a regular file"));
    std::fs::remove_file(&config).unwrap();
    std::fs::File::create(&config).unwrap().set_len(1 << 30).unwrap();
    assert!(check("sparse", &brig).contains("bytes allowed"));
    // `exec --process` the same way.
    let id = unique_id("endless");
    let sleeper = Bundle::new(&["sleep", "30"]);
    brig.ok(&["run", "-d", "--bundle", sleeper.path().to_str().unwrap(), &id]);
    let err = brig.fails(&["exec", "--process", "/dev/zero", &id]);
    brig.ok(&["delete", "--force", &id]);
    assert!(err.contains("/dev/zero") && err.contains("not a regular file"), "{err}");
}

/// No mount goes over `/proc` or under it (runc's `checkProcMount`), under
/// any profile, with the destination resolved in the root (a link in the
/// image naming `/proc/sys`): a bind of a host directory at `/proc/sys` showed
/// the job that directory in place of the kernel's settings. The files lxcfs
/// replaces (`/proc/uptime`, …) may still be bound.
#[test]
fn no_mount_goes_over_proc_but_lxcfs_files() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"permissive\"\n");
    let images = tempfile::tempdir().unwrap();
    let image = images.path().join("rootfs");
    let copied = std::process::Command::new("cp").arg("-a").arg(brig_tests::rootfs()).arg(&image).status();
    assert!(copied.unwrap().success());
    std::os::unix::fs::symlink("proc/sys", image.join("sysx")).unwrap();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("planted"), "planted by the bundle\n").unwrap();
    let uptime = host.path().join("uptime");
    std::fs::write(&uptime, "12345.67 890.12\n").unwrap();
    let job = |mount: serde_json::Value| {
        let mut b = Bundle::new(&["sh", "-c", "cat /proc/sys/planted /proc/uptime 2>&1; true"]);
        b.set("/root", json!({"path": image, "readonly": true}));
        b.push("/mounts", mount);
        brig.run(&b, &unique_id("procmount"))
    };
    for mount in [
        json!({"destination": "/proc/sys", "type": "bind", "source": host.path(), "options": ["rbind", "ro"]}),
        json!({"destination": "/sysx", "type": "bind", "source": host.path(), "options": ["rbind", "ro"]}),
        json!({"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
        json!({"destination": "/proc", "type": "bind", "source": host.path(), "options": ["rbind", "ro"]}),
    ] {
        let (code, out, err) = job(mount.clone());
        assert_ne!(code, 0, "{mount}: {out}");
        assert!(!out.contains("planted by the bundle"), "{mount}: {out}");
        assert!(err.contains("/proc"), "{mount}: {err}");
    }
    let (code, out, err) =
        job(json!({"destination": "/proc/uptime", "type": "bind", "source": uptime, "options": ["bind", "ro"]}));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("12345.67"), "lxcfs' files may be bound: {out}");
}

/// A bind mount of brig's own directories or of a directory above its files
/// (token files, single-use records, the audit log, the attestation key,
/// the configuration), or of a state root, is refused whatever the
/// profile's ceilings and the policy allow, here a profile that lets jobs
/// mount the whole host read-only (a job would otherwise read other jobs'
/// unused tokens and the signing key). Only a profile that lets a job mount
/// `/` writable (`permissive`, runc's behaviour) leaves it to the spec.
#[test]
fn brigs_own_directories_and_files_are_never_a_mount_source() {
    let tokens = tempfile::tempdir().unwrap();
    std::fs::write(tokens.path().join("other-job"), "eyJhbGciOiJFZERTQSJ9.unused.token\n").unwrap();
    // The JWKS cache (a job writing it would add its own signing key).
    let cache = tempfile::tempdir().unwrap();
    let jwks_cache = cache.path().join("jwks-cache.json");
    std::fs::write(&jwks_cache, "{}").unwrap();
    // `permissive` with its mount ceilings narrowed: anything read-only,
    // nothing writable.
    let profiles = tempfile::tempdir().unwrap();
    let readonly_host = include_str!("../../profiles/builtin/permissive.toml")
        .replace("name = \"permissive\"", "name = \"readonly-host\"")
        .replace("writable_mounts = [\"/\"]", "writable_mounts = []");
    assert!(readonly_host.contains("writable_mounts = []"));
    std::fs::write(profiles.path().join("readonly-host.toml"), readonly_host).unwrap();
    let brig = Brig::new(&format!(
        "[auth]\nmode = \"off\"\ntoken_dir = \"{}\"\njwks_cache_file = \"{}\"\n[audit]\npath = \"{{dir}}/logs/audit.log\"\n[profiles]\ndir = \"{}\"\ndefault = \"readonly-host\"\n",
        tokens.path().display(),
        jwks_cache.display(),
        profiles.path().display()
    ));
    let logs = brig.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("audit.log"), "").unwrap();
    let beside = brig.dir.path().join("beside");
    std::fs::create_dir_all(&beside).unwrap();
    std::fs::write(beside.join("ok"), "fine\n").unwrap();
    // Another state root with a live job (its jobs' specs, records and
    // notify sockets), and this launch's own state root.
    let victim = restricted();
    let victim_id = unique_id("victim");
    let sleeper = Bundle::new(&["sleep", "30"]);
    victim.ok(&["create", "--bundle", sleeper.path().to_str().unwrap(), &victim_id]);
    std::fs::create_dir_all(&brig.root).unwrap();
    for (source, dest) in [
        (tokens.path().to_path_buf(), "/tok"),
        (tokens.path().join("other-job"), "/tok/one"),
        (logs.clone(), "/logs"),
        (brig.dir.path().to_path_buf(), "/cfg"),
        (std::path::PathBuf::from("/run"), "/hostrun"),
        (std::path::PathBuf::from("/"), "/host"),
        (victim.root.clone(), "/tok/state"),
        (victim.root.join(&victim_id), "/tok/job"),
        (brig.root.clone(), "/tok/own"),
        (jwks_cache.clone(), "/tok/jwks"),
    ] {
        let mut b = Bundle::new(&["sh", "-c", "cat /tok/* /tok/one /logs/* /cfg/config.toml 2>&1; true"]);
        b.push("/mounts", json!({"destination": dest, "type": "bind", "source": source, "options": ["rbind", "ro"]}));
        let (code, out, err) = brig.run(&b, &unique_id("ownmount"));
        assert_ne!(code, 0, "{}: {out}", source.display());
        assert!(!out.contains("unused.token") && !out.contains("[auth]"), "{}: {out}", source.display());
        assert!(
            err.contains(&format!("mount at `{dest}`")) && err.contains("brig's own"),
            "{}: {err}",
            source.display()
        );
    }
    victim.ok(&["delete", "--force", &victim_id]);
    // A directory beside them is the policy's (here: allowed) to mount.
    let mut b = Bundle::new(&["cat", "/beside/ok"]);
    b.push("/mounts", json!({"destination": "/beside", "type": "bind", "source": beside, "options": ["rbind", "ro"]}));
    let (code, out, err) = brig.run(&b, &unique_id("ownmount"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("fine"), "{out}");
    // Under `permissive` (a writable `/` allowed), as under runc.
    let permissive = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"permissive\"\n");
    let mut b = Bundle::new(&["sh", "-c", "test -s /host-etc/passwd && echo ok"]);
    b.push(
        "/mounts",
        json!({"destination": "/host-etc", "type": "bind", "source": "/etc", "options": ["rbind", "ro"]}),
    );
    let (code, out, err) = permissive.run(&b, &unique_id("ownmount"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"), "{out}");
}

/// `root.path` is the job's whole view: a bundle naming brig's own state,
/// another tenant's job data (the profile's data prefixes, which a bind would
/// need a mount decision for), or a directory above them, is refused naming
/// `root.path` (under a per-job user namespace the idmapped root would show
/// their root-owned files as the job's own).
#[test]
fn a_root_filesystem_over_brigs_state_or_job_data_is_refused() {
    let brig = restricted();
    let data = std::path::PathBuf::from(format!("/var/lib/brig/jobs/rootpath-{}", unique_id("r")));
    std::fs::create_dir_all(data.join("in")).unwrap();
    std::fs::write(data.join("in/secret"), "another tenant's input\n").unwrap();
    std::fs::create_dir_all(&brig.root).unwrap();
    let state = brig.root.canonicalize().unwrap();
    for path in [data.join("in"), data.clone(), std::path::PathBuf::from("/var/lib/brig"), state.clone()] {
        let mut b = Bundle::new(&["cat", "/in/secret"]);
        b.set("/root", json!({"path": path, "readonly": true}));
        let (code, out, err) = brig.run(&b, &unique_id("rootpath"));
        assert_ne!(code, 0, "{}: {out}", path.display());
        assert!(!out.contains("another tenant"), "{}: {out}", path.display());
        assert!(err.contains("root.path"), "{}: {err}", path.display());
    }
    std::fs::remove_dir_all(&data).unwrap();
    // Under a read-only prefix of the profile (`standard`: `/var/lib/brig/`),
    // a writable root is refused (the job would write where it may only
    // read); a read-only one, an image kept there, is not.
    let standard = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"standard\"\n");
    let images = std::path::PathBuf::from(format!("/var/lib/brig/images-{}", unique_id("r")));
    std::fs::create_dir_all(&images).unwrap();
    let copied =
        std::process::Command::new("cp").arg("-a").arg(brig_tests::rootfs()).arg(images.join("rootfs")).status();
    assert!(copied.unwrap().success());
    for (readonly, ok) in [(false, false), (true, true)] {
        let mut b = Bundle::new(&["true"]);
        b.set("/root", json!({"path": images.join("rootfs"), "readonly": readonly}));
        let (code, _, err) = standard.run(&b, &unique_id("rootpath"));
        assert_eq!(code == 0, ok, "read-only {readonly}: {err}");
        if !ok {
            assert!(err.contains("root.path"), "{err}");
        }
    }
    std::fs::remove_dir_all(&images).unwrap();
}

/// Another state root a brig job lives under (a platform's per-tenant
/// `--root`) is no job's root filesystem either, at, inside or above it: the
/// job would read the other jobs' specs and records and reach their notify
/// sockets (and start another tenant's created job).
#[test]
fn a_root_filesystem_over_another_state_root_is_refused() {
    let victim = restricted();
    let id = unique_id("victim");
    let sleeper = Bundle::new(&["sleep", "30"]);
    victim.ok(&["create", "--bundle", sleeper.path().to_str().unwrap(), &id]);
    let state = victim.root.canonicalize().unwrap();
    let attacker = restricted();
    for path in [state.join(&id), state.clone(), victim.dir.path().to_path_buf()] {
        let mut b = Bundle::new(&["cat", "config.json"]);
        b.set("/root", json!({"path": path, "readonly": true}));
        b.set("/process/cwd", json!("/"));
        let (code, out, err) = attacker.run(&b, &unique_id("rootpath"));
        assert_ne!(code, 0, "{}: {out}", path.display());
        assert!(err.contains("root.path") && err.contains("other brig jobs"), "{}: {err}", path.display());
    }
    assert_eq!(victim.status(&id), "created");
    victim.ok(&["delete", "--force", &id]);

    // The other order: a job rooted where a state root is made later (no job
    // lived there yet). The state root's first create is refused, not
    // exposed to the running job.
    let images = tempfile::tempdir().unwrap();
    let image = images.path().join("rootfs");
    let copied = std::process::Command::new("cp").arg("-a").arg(brig_tests::rootfs()).arg(&image).status();
    assert!(copied.unwrap().success());
    let mut squatter = Bundle::new(&["sleep", "30"]);
    squatter.set("/root", json!({"path": image, "readonly": true}));
    let squatter_id = unique_id("squatter");
    attacker.ok(&["run", "-d", "--bundle", squatter.path().to_str().unwrap(), &squatter_id]);
    let later_root = image.join("tmp/state");
    // Stdio to a file: a created container would hold a pipe open.
    let err_file = tempfile::NamedTempFile::new().unwrap();
    let later_id = unique_id("victim");
    let status = std::process::Command::new(brig_tests::brig_bin())
        .arg("--root")
        .arg(&later_root)
        .arg("--config")
        .arg(&victim.config)
        .args(["create", "--bundle", sleeper.path().to_str().unwrap(), &later_id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(err_file.reopen().unwrap())
        .status()
        .unwrap();
    let err = std::fs::read_to_string(err_file.path()).unwrap();
    if status.success() {
        let _ = std::process::Command::new(brig_tests::brig_bin())
            .arg("--root")
            .arg(&later_root)
            .args(["delete", "--force", &later_id])
            .status();
    }
    assert!(!status.success() && err.contains("root filesystem of a running job"), "{err}");
    attacker.ok(&["delete", "--force", &squatter_id]);
}

/// A namespace of its own made by `unshare --TYPE=FILE true`: pinned by a
/// bind mount at `path`, with no process in it; unmounted when dropped.
struct PinnedNamespace {
    path: std::path::PathBuf,
    typ: &'static str,
}

impl PinnedNamespace {
    fn new(typ: &'static str, path: &std::path::Path) -> PinnedNamespace {
        std::fs::write(path, b"").unwrap();
        let st = std::process::Command::new("unshare").arg(format!("--{typ}={}", path.display())).arg("true").status();
        assert!(st.unwrap().success(), "unshare --{typ}={}", path.display());
        PinnedNamespace { path: path.to_path_buf(), typ }
    }

    /// As `readlink /proc/PID/ns/TYPE` names it.
    fn name(&self) -> String {
        use std::os::unix::fs::MetadataExt;
        format!("{}:[{}]", self.typ, std::fs::metadata(&self.path).unwrap().ino())
    }
}

impl Drop for PinnedNamespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.path).status();
    }
}

/// A namespace that no brig job is in but another process is (a runc
/// container's, a daemon's private mount namespace), or one of its threads,
/// is refused by path under `standard` and `restricted`: the job would share the other process's IPC objects
/// and loopback services, and joining its mount namespace would set the
/// job's root up in it (`pivot_root`), changing that process's root. Where
/// the profile lets a job share the host's namespaces (`permissive`),
/// joining one is no wider and works.
#[test]
fn a_namespace_of_a_process_that_is_no_brig_job_is_not_joined() {
    let standard = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"standard\"\n");
    let mut victim = std::process::Command::new("unshare")
        .args(["--ipc", "--net", "--mount", "--propagation", "private", "sleep", "60"])
        .spawn()
        .unwrap();
    let pid = victim.id();
    let ns_of = |typ: &str, pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/{typ}")).unwrap();
    for _ in 0..100 {
        if ns_of("mnt", &pid.to_string()) != ns_of("mnt", "self") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let root_before: Vec<_> =
        std::fs::read_dir(format!("/proc/{pid}/root/")).unwrap().flatten().map(|e| e.file_name()).collect();
    for (typ, proc_name) in [("ipc", "ipc"), ("network", "net"), ("mount", "mnt")] {
        let mut b = Bundle::new(&["true"]);
        let namespaces: Vec<serde_json::Value> = b.config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] != typ)
            .cloned()
            .chain([json!({"type": typ, "path": format!("/proc/{pid}/ns/{proc_name}")})])
            .collect();
        b.set("/linux/namespaces", serde_json::Value::Array(namespaces));
        let err = standard.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("foreign")]);
        assert!(
            err.contains("linux.namespaces") && err.contains("is no brig job's") && err.contains(&pid.to_string()),
            "{typ}: {err}"
        );
        if typ == "ipc" {
            let id = unique_id("foreign-ok");
            let (code, _, err) = permissive().run(&b, &id);
            assert_eq!(code, 0, "permissive may share the host's namespaces, so another's too: {err}");
        }
    }
    let root_after: Vec<_> =
        std::fs::read_dir(format!("/proc/{pid}/root/")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(root_before, root_after, "the other process's root changed");
    let _ = victim.kill();
    let _ = victim.wait();
    // A namespace only one thread of a process is in (here a thread of this
    // test's, which unshared its IPC namespace): the process's main thread
    // is elsewhere, and the namespace is still someone's. Under `restricted`
    // too.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: unshare(2) of this thread's IPC namespace; no memory involved.
        let r = unsafe { libc::unshare(libc::CLONE_NEWIPC) };
        // SAFETY: gettid(2) has no arguments.
        let tid = unsafe { libc::gettid() };
        tx.send((r, tid)).unwrap();
        let _ = stop_rx.recv();
    });
    let (r, tid) = rx.recv().unwrap();
    assert_eq!(r, 0, "unshare(CLONE_NEWIPC) in a thread");
    let path = format!("/proc/{}/task/{tid}/ns/ipc", std::process::id());
    for brig in [&standard, &restricted()] {
        let b = joining_ipc(&["true"], std::path::Path::new(&path));
        let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("thread-ns")]);
        assert!(err.contains("is no brig job's") && err.contains(&std::process::id().to_string()), "{err}");
    }
    stop_tx.send(()).unwrap();
    thread.join().unwrap();
    assert!(standard.ok(&["list", "-q"]).trim().is_empty());
}

/// A bundle running `args` that joins the IPC namespace at `path`.
fn joining_ipc(args: &[&str], path: &std::path::Path) -> Bundle {
    let mut b = Bundle::new(args);
    let namespaces: Vec<serde_json::Value> = b.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "ipc")
        .cloned()
        .chain([json!({"type": "ipc", "path": path})])
        .collect();
    b.set("/linux/namespaces", serde_json::Value::Array(namespaces));
    b
}

/// A namespace path another job could swap: the spec joins an IPC namespace
/// through a link (a `standard` job, host root with `/var/lib/brig/jobs/`
/// writable, could own the link's directory), and between brig's check and
/// libcontainer's join the link is made to name the host's IPC namespace
/// (`BRIG_TEST_FAULT=swap-namespace-links` does it at that moment). The job
/// joins the namespace that was checked, never the host's.
#[test]
fn a_namespace_path_swapped_after_the_check_is_not_what_the_job_joins() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"standard\"\n");
    // A namespace no process is in, pinned by a bind mount (as a client
    // pins a pod's network namespace): one a job may join.
    let dir = tempfile::tempdir().unwrap();
    let pinned = PinnedNamespace::new("ipc", &dir.path().join("ipc-ns"));
    let own = pinned.path.display().to_string();
    let theirs = pinned.name();
    let host = std::fs::read_link("/proc/self/ns/ipc").unwrap().display().to_string();
    assert_ne!(theirs, host, "unshare --ipc gave no namespace of its own");
    let link = dir.path().join("ipc");
    std::os::unix::fs::symlink(&own, &link).unwrap();
    let b = joining_ipc(&["readlink", "/proc/self/ns/ipc"], &link);
    let mut cmd = brig.command();
    cmd.args(["run", "--bundle", b.path().to_str().unwrap(), &unique_id("nsswap")])
        .env("BRIG_TEST_FAULT", "swap-namespace-links");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(std::fs::read_link(&link).unwrap().display().to_string(), own, "the fault did not swap the link");
    assert!(!stdout.contains(&host), "the job joined the host's IPC namespace: {stdout}");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), theirs, "the job is in the namespace that was checked");

    // A path that cannot be opened when brig checks it is refused then, not
    // left for libcontainer to open later (when a link may be there).
    let missing = dir.path().join("not-yet");
    let b = joining_ipc(&["true"], &missing);
    let err = brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("nsmissing")]);
    assert!(err.contains("not-yet") && err.contains("cannot be opened"), "{err}");
}
