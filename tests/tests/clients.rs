//! The configs Docker, Podman and containerd really send (captured in
//! tests/fixtures/clients/) under brig's profiles (issue 3): client defaults
//! are tightened and recorded; explicit asks beyond the profile are refused
//! with the field named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use brig_tests::{clients_config, fake_dockerd, rootfs, unique_id, Brig, Bundle};
use serde_json::{json, Value};

fn restricted() -> Brig {
    Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n{}", clients_config()))
}

/// Files a client keeps in its state directories, recreated for a test.
struct ClientFiles {
    dirs: Vec<PathBuf>,
}

impl Drop for ClientFiles {
    fn drop(&mut self) {
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn fixture(client: &str, scenario: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/clients")
        .join(client)
        .join(format!("{scenario}.config.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Makes a captured config runnable here: the test rootfs, the probe as the
/// process, real files behind the client's bind mounts, fresh namespaces
/// instead of the client's (gone) ones, and a stand-in `dockerd` for Docker's
/// `libnetwork-setkey` hook.
fn adapt(mut config: Value, args: &[&str]) -> (Bundle, ClientFiles) {
    let tag = format!("brig-test-{}", unique_id("f"));
    let mut files = ClientFiles { dirs: vec![] };

    let mut bundle = Bundle::new(args);
    let readonly = config["root"]["readonly"].as_bool().unwrap_or(false);
    config["root"] = json!({ "path": rootfs(), "readonly": readonly });
    let mut process = bundle.config["process"].clone();
    process["capabilities"] = config["process"]["capabilities"].clone();
    process["rlimits"] = config["process"]["rlimits"].clone();
    process["noNewPrivileges"] = config["process"]["noNewPrivileges"].clone();
    process["env"] = config["process"]["env"].clone();
    config["process"] = process;
    for m in config["mounts"].as_array_mut().unwrap() {
        let Some(src) = m["source"].as_str().map(str::to_string) else { continue };
        if src.contains('<') {
            // `/var/lib/docker/containers/<id1>/resolv.conf` -> a real file.
            let start = src.find('<').unwrap();
            let end = src[start..].find('>').unwrap() + start + 1;
            let real = format!("{}{tag}{}", &src[..start], &src[end..]);
            let dir = PathBuf::from(format!("{}{tag}", &src[..start]));
            files.dirs.push(dir);
            let p = PathBuf::from(&real);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            if m["destination"] == "/dev/shm" {
                std::fs::create_dir_all(&p).unwrap();
            } else {
                std::fs::write(&p, "# brig test\n").unwrap();
            }
            m["source"] = json!(real);
        }
    }
    for ns in config["linux"]["namespaces"].as_array_mut().unwrap() {
        ns.as_object_mut().unwrap().remove("path");
    }
    if let Some(hooks) = config["hooks"].as_object_mut() {
        for list in hooks.values_mut() {
            for h in list.as_array_mut().unwrap() {
                if h["path"].as_str().is_some_and(|p| p.starts_with("/proc/")) {
                    h["path"] = json!(fake_dockerd().1);
                }
            }
        }
    }
    config["linux"]["cgroupsPath"] = json!(format!("/brig-test/{tag}"));
    bundle.config = config;
    bundle.write();
    (bundle, files)
}

fn probe_status() -> Vec<&'static str> {
    vec!["/bin/brig-probe", "status"]
}

#[test]
fn client_default_specs_run_under_restricted_and_are_tightened() {
    let brig = restricted();
    for (client, scenario) in [("docker", "run"), ("docker", "exec"), ("podman", "run-rm"), ("ctr", "run-rm")] {
        let (bundle, _files) = adapt(fixture(client, scenario), &probe_status());
        let id = unique_id(client);
        let (code, _, err) = brig.cmd_files(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
        assert_eq!(code, 0, "{client}/{scenario}: {err}");
        let state = brig.state(&id);
        let tightened = state["brig"]["tightened"].as_array().unwrap().clone();
        let fields: Vec<&str> = tightened.iter().map(|t| t["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&"process.capabilities"), "{client}: {tightened:?}");
        assert!(
            fields.contains(&"root.readonly") || bundle.config["root"]["readonly"] == true,
            "{client}: {tightened:?}"
        );
        let caps = tightened.iter().find(|t| t["field"] == "process.capabilities").unwrap();
        assert!(caps["requested"].as_str().unwrap().contains("CAP_NET_RAW") || client == "podman", "{caps}");
        assert_eq!(caps["applied"], "none");
        if client == "podman" {
            // Podman's nofile=20000 is tightened to the profile's 1024.
            assert!(fields.contains(&"process.rlimits.nofile"), "{tightened:?}");
        }
        brig.ok(&["start", &id]);
        brig.wait_status(&id, "stopped");
        let outcome = brig.state(&id)["brig"]["outcome"].clone();
        assert_eq!(outcome["exit_code"], 0, "{client}/{scenario}: {outcome}");
        assert_eq!(outcome["landlock"], "full", "{outcome}");
        brig.ok(&["delete", &id]);

        // And the job really runs with the tightened settings.
        let (bundle, _files) = adapt(fixture(client, scenario), &probe_status());
        let (code, out, err) = brig.run(&bundle, &unique_id(client));
        assert_eq!(code, 0, "{client}/{scenario}: {err}");
        assert!(out.contains("CapEff:\t0000000000000000") && out.contains("NoNewPrivs:\t1"), "{client}: {out}");
        assert!(out.contains("Seccomp:\t2"), "{client}: {out}");
    }
}

#[test]
fn explicit_asks_beyond_the_profile_are_refused_with_the_field_named() {
    let brig = restricted();
    type Patch = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, &str, Patch, Vec<&str>)> = vec![
        ("docker", "cap-add", Box::new(|_| {}), vec!["process.capabilities", "CAP_SYS_ADMIN", "restricted"]),
        ("docker", "pid-host", Box::new(|_| {}), vec!["linux.namespaces", "pid", "restricted"]),
        ("docker", "privileged", Box::new(|_| {}), vec!["linux.devices", "restricted"]),
        ("docker", "volume", Box::new(|_| {}), vec!["mounts[", "/data", "/run/brig-vmtests/vol-x", "restricted"]),
        (
            "docker",
            "run",
            Box::new(|c: &mut Value| c["hooks"]["prestart"][0]["path"] = json!("/bin/true")),
            vec!["hooks.prestart[0]", "/bin/true", "restricted"],
        ),
        (
            "docker",
            "run",
            Box::new(|c: &mut Value| c["linux"]["sysctl"]["kernel.shmmax"] = json!("1")),
            vec!["linux.sysctl.kernel.shmmax", "restricted"],
        ),
        (
            "ctr",
            "run-rm",
            Box::new(|c: &mut Value| {
                c["linux"]["devices"] = json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11}])
            }),
            vec!["linux.devices", "/dev/kmsg"],
        ),
        (
            "ctr",
            "run-rm",
            Box::new(|c: &mut Value| {
                let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
                ns.retain(|n| n["type"] != "network");
            }),
            vec!["linux.namespaces", "network"],
        ),
        (
            // A new pid namespace, then the host's: libcontainer would join
            // the last, a check of the first would pass it.
            "ctr",
            "run-rm",
            Box::new(|c: &mut Value| {
                let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
                ns.push(json!({"type": "pid", "path": format!("/proc/{}/ns/pid", std::process::id())}));
            }),
            vec!["linux.namespaces[", "pid namespace is listed more than once", "restricted"],
        ),
        (
            "docker",
            "run",
            Box::new(|c: &mut Value| c["linux"]["netDevices"] = json!({"brigtest0": {}})),
            vec!["linux.netDevices.brigtest0", "restricted"],
        ),
        (
            // Written after the profile's limits on cgroup v2: would lift them.
            "docker",
            "run",
            Box::new(|c: &mut Value| c["linux"]["resources"]["unified"] = json!({"memory.max": "max"})),
            vec!["linux.resources.unified.memory.max", "restricted"],
        ),
        (
            // libcontainer applies mount options in order: the last wins.
            "docker",
            "run",
            Box::new(|c: &mut Value| {
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/data", "type": "bind", "source": "/var/lib/brig/data",
                    "options": ["rbind", "ro", "rw"]
                }))
            }),
            vec!["mounts[", "/data", "read-only and read-write", "restricted"],
        ),
        (
            "docker",
            "run",
            Box::new(|c: &mut Value| c["linux"]["intelRdt"] = json!({"closID": "host-group"})),
            vec!["linux.intelRdt", "restricted"],
        ),
        (
            "docker",
            "run",
            Box::new(|c: &mut Value| c["linux"]["resources"]["cpu"] = json!({"burst": 100000})),
            vec!["linux.resources.cpu.burst", "restricted"],
        ),
        (
            "docker",
            "run",
            Box::new(|c: &mut Value| c["linux"]["resources"]["cpu"] = json!({"realtimeRuntime": 950000})),
            vec!["linux.resources.cpu.realtimeRuntime", "restricted"],
        ),
        (
            // `docker run --device-cgroup-rule 'b 8:0 rw'`: one host disk, for a
            // device node the image may ship.
            "docker",
            "run",
            Box::new(|c: &mut Value| {
                c["linux"]["resources"]["devices"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"allow": true, "type": "b", "major": 8, "minor": 0, "access": "rw"}))
            }),
            vec!["linux.resources.devices[", "`b 8:0`", "restricted"],
        ),
        (
            // v1 net_cls: a class id the host's tc or firewall may trust.
            "docker",
            "run",
            Box::new(|c: &mut Value| c["linux"]["resources"]["network"] = json!({"classID": 1048577})),
            vec!["linux.resources.network", "restricted"],
        ),
    ];
    for (client, scenario, patch, needles) in cases {
        let mut config = fixture(client, scenario);
        patch(&mut config);
        let (bundle, _files) = adapt(config, &["true"]);
        let (code, _, err) =
            brig.cmd_files(&["create", "--bundle", bundle.path().to_str().unwrap(), &unique_id("refuse")]);
        assert_ne!(code, 0, "{client}/{scenario} was not refused");
        for n in needles {
            assert!(err.contains(n), "{client}/{scenario}: `{n}` missing from: {err}");
        }
    }
    // Nothing was created by the refusals.
    assert!(brig.ok(&["list", "-q"]).trim().is_empty());
}

#[test]
fn a_writable_bind_mount_under_the_allowed_prefix_is_accepted() {
    let brig = restricted();
    let dir = PathBuf::from(format!("/var/lib/brig/jobs/test-{}", unique_id("w")));
    std::fs::create_dir_all(&dir).unwrap();
    let mut b = Bundle::new(&["sh", "-c", "echo written > /out/result && cat /out/result"]);
    b.push("/mounts", json!({"destination": "/out", "type": "bind", "source": dir, "options": ["rbind", "rw"]}));
    let (code, out, err) = brig.run(&b, &unique_id("w"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "written");
    assert_eq!(std::fs::read_to_string(dir.join("result")).unwrap().trim(), "written");
    // `..` does not climb out of the allowed prefix.
    let mut escape = Bundle::new(&["true"]);
    escape.push(
        "/mounts",
        json!({"destination": "/out", "type": "bind", "source": format!("{}/../../../../../etc", dir.display()), "options": ["rbind", "rw"]}),
    );
    let err = brig.fails(&["create", "--bundle", escape.path().to_str().unwrap(), &unique_id("w")]);
    assert!(err.contains("/etc") && err.contains("outside the allowed prefixes"), "{err}");
    // Nor does a symlink inside it.
    let link = dir.join("link-to-etc");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    let mut sym = Bundle::new(&["true"]);
    sym.push("/mounts", json!({"destination": "/out", "type": "bind", "source": link, "options": ["rbind", "rw"]}));
    let err = brig.fails(&["create", "--bundle", sym.path().to_str().unwrap(), &unique_id("w")]);
    assert!(err.contains("`/etc`"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A containerd with a non-default root (k3s, RKE2) keeps a pod's
/// `/etc/hosts` and `/dev/shm` elsewhere: refused until the operator names
/// that directory in `[clients] state_dirs`; then only client files (not an
/// arbitrary destination) may come from it.
#[test]
fn client_state_dirs_from_the_configuration() {
    let state = PathBuf::from(format!("/var/lib/brig-test-k3s-{}/agent/containerd", unique_id("s")));
    let pod = state.join("io.containerd.grpc.v1.cri/sandboxes/abc");
    std::fs::create_dir_all(&pod).unwrap();
    std::fs::write(pod.join("hosts"), "127.0.0.1 localhost pod-a\n").unwrap();
    let hosts_bind = |dest: &str| {
        let mut b = Bundle::new(&["cat", dest]);
        b.push(
            "/mounts",
            json!({"destination": dest, "type": "bind", "source": pod.join("hosts"), "options": ["rbind", "rw"]}),
        );
        b
    };
    let err =
        restricted().fails(&["create", "--bundle", hosts_bind("/etc/hosts").path().to_str().unwrap(), &unique_id("k")]);
    assert!(err.contains("outside the allowed prefixes"), "{err}");

    let brig = Brig::new(&format!(
        "[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n[clients]\nstate_dirs = [\"{}\"]\n",
        state.display()
    ));
    let (code, out, err) = brig.run(&hosts_bind("/etc/hosts"), &unique_id("k"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pod-a"), "{out}");
    // Not a way to mount that directory anywhere else.
    let err = brig.fails(&["create", "--bundle", hosts_bind("/data/hosts").path().to_str().unwrap(), &unique_id("k")]);
    assert!(err.contains("outside the allowed prefixes"), "{err}");
    std::fs::remove_dir_all(state.ancestors().nth(2).unwrap()).unwrap();
}

/// Kubernetes gives Guaranteed pods an OOM score of -997; at -1000 no OOM
/// killer, the cgroup's included, may pick the job. Under `restricted` the
/// score is raised to 0 and the change recorded, and the job's memory bomb
/// is still killed.
#[test]
fn a_negative_oom_score_is_raised_to_zero_and_recorded() {
    let brig = restricted();
    let mut b = Bundle::new(&["cat", "/proc/self/oom_score_adj"]);
    b.set("/process/oomScoreAdj", json!(-1000));
    b.set("/linux/resources/memory", json!({"disableOOMKiller": true}));
    let id = unique_id("oom");
    let (code, out, err) = brig.cmd_files(&["run", "--keep", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "0", "the job's OOM score");
    let tightened = brig.state(&id)["brig"]["tightened"].clone();
    let t = tightened.as_array().unwrap().iter().find(|t| t["field"] == "process.oomScoreAdj").cloned();
    assert_eq!(
        t.map(|t| (t["requested"].clone(), t["applied"].clone())),
        Some((json!("-1000"), json!("0"))),
        "{tightened}"
    );
    // The OOM killer stays on (docker run --oom-kill-disable).
    assert!(tightened.as_array().unwrap().iter().any(|t| t["field"] == "linux.resources.memory.disableOOMKiller"));
    brig.ok(&["delete", &id]);
}

/// A memory reservation (v1 soft limit, v2 `memory.low`) of "unlimited"
/// would shield the job's memory from the host's reclaim: under `restricted`
/// it is held to the job's own limit, recorded, and visible in the cgroup;
/// `update` cannot lift it again.
#[test]
fn a_memory_reservation_stays_within_the_jobs_limit() {
    let brig = restricted();
    let mut b = Bundle::new(&["sleep", "30"]);
    let id = unique_id("resv");
    let cgroup_path = format!("/brig-test/{id}");
    b.set("/linux/cgroupsPath", json!(cgroup_path));
    b.set("/linux/resources/memory", json!({"reservation": -1}));
    brig.ok(&["run", "--detach", "--bundle", b.path().to_str().unwrap(), &id]);
    let limit = (512u64 << 20).to_string();
    let tightened = brig.state(&id)["brig"]["tightened"].clone();
    let t = tightened.as_array().unwrap().iter().find(|t| t["field"] == "linux.resources.memory.reservation").cloned();
    assert_eq!(t.map(|t| (t["requested"].clone(), t["applied"].clone())), Some((json!("unlimited"), json!(limit))));
    let (controller, file) = match Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        true => ("", "memory.low"),
        false => ("memory", "memory.soft_limit_in_bytes"),
    };
    let applied = std::fs::read_to_string(brig_tests::cgroup_dir(controller, &cgroup_path).join(file)).unwrap();
    assert_eq!(applied.trim(), limit, "{file}");
    let err = brig.fails(&["update", "--memory-reservation", "-1", &id]);
    assert!(err.contains("memory.reservation") && err.contains("restricted"), "{err}");
    brig.ok(&["delete", "--force", &id]);
}

/// What init applies while it is still root and the job could only ask for
/// with `CAP_SYS_NICE` (a job that starves the host's CPUs or disks) is
/// refused under `restricted`, naming the field.
#[test]
fn real_time_scheduling_and_io_are_refused() {
    let brig = restricted();
    let cases = [
        ("/process/scheduler", json!({"policy": "SCHED_FIFO", "priority": 99}), "process.scheduler.policy"),
        ("/process/scheduler", json!({"policy": "SCHED_RR", "priority": 1}), "process.scheduler.policy"),
        ("/process/scheduler", json!({"policy": "SCHED_OTHER", "nice": -20}), "process.scheduler.nice"),
        ("/process/ioPriority", json!({"class": "IOPRIO_CLASS_RT", "priority": 0}), "process.ioPriority.class"),
    ];
    for (pointer, value, field) in cases {
        let mut b = Bundle::new(&["true"]);
        b.set(pointer, value.clone());
        let (code, _, err) = brig.cmd_files(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("rt")]);
        assert_ne!(code, 0, "{value} was not refused");
        assert!(err.contains(field) && err.contains("CAP_SYS_NICE") && err.contains("restricted"), "{value}: {err}");
    }
    // A batch or idle policy, or a positive nice value, asks for less.
    let mut b = Bundle::new(&["true"]);
    b.set("/process/scheduler", json!({"policy": "SCHED_BATCH", "nice": 5}));
    let (code, _, err) = brig.run(&b, &unique_id("rt"));
    assert_eq!(code, 0, "{err}");
    assert!(brig.ok(&["list", "-q"]).trim().is_empty());
}

/// The same holds for `exec`: a real-time policy in its process.json is
/// refused, a negative OOM score is raised to 0.
#[test]
fn exec_is_held_to_the_same_scheduling_and_oom_rules() {
    let brig = restricted();
    let (_b, id) = brig.detached_sleeper("rtexec");
    let pfile = brig.dir.path().join("process.json");
    let process = |extra: Value| {
        let mut p = json!({
            "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
            "args": ["cat", "/proc/self/oom_score_adj"], "env": ["PATH=/bin"]
        });
        p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        std::fs::write(&pfile, p.to_string()).unwrap();
    };
    process(json!({"scheduler": {"policy": "SCHED_FIFO", "priority": 50}}));
    let err = brig.fails(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(err.contains("process.scheduler.policy") && err.contains("CAP_SYS_NICE"), "{err}");
    process(json!({"oomScoreAdj": -1000}));
    let out = brig.ok(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert_eq!(out.trim(), "0");
    brig.ok(&["delete", "--force", &id]);
}

/// Mount asks that would reach past the profile, each refused naming the
/// field, under `standard` and `restricted`: a kernel filesystem away from
/// its place (a second `proc` shows `/proc/sys/kernel/core_pattern` and
/// `/proc/sysrq-trigger` unmasked), a client's whole state bound where a
/// client puts one container's file, a writable bind of a shared prefix
/// itself, a source that does not exist, and inputs or outputs that are
/// not the spec's bind mounts (they widen Landlock).
#[test]
fn mounts_that_would_unmask_or_widen_are_refused() {
    let storage = PathBuf::from("/var/lib/containers/storage");
    let made_storage = !storage.exists();
    std::fs::create_dir_all(&storage).unwrap();
    let jobs = PathBuf::from(format!("/var/lib/brig/jobs/test-{}", unique_id("m")));
    std::fs::create_dir_all(&jobs).unwrap();
    let victim_state = storage.join(format!("overlay-containers/{}/userdata", unique_id("victim")));
    std::fs::create_dir_all(victim_state.join("mounts/secrets")).unwrap();
    std::fs::write(victim_state.join("config.v2.json"), "{\"Env\": [\"DB_PASSWORD=x\"]}").unwrap();
    std::fs::write(victim_state.join("mounts/secrets/db"), "x").unwrap();
    let storage_secrets = storage.join(format!("secrets-test-{}", unique_id("s"))).join("secrets");
    std::fs::create_dir_all(&storage_secrets).unwrap();
    for profile in ["standard", "restricted"] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        type Case<'a> = (Value, Option<(&'a str, &'a str)>, &'a str);
        let cases: Vec<Case> = vec![
            (
                json!({"destination": "/tmp/p", "type": "proc", "source": "proc"}),
                None,
                "may only be mounted at `/proc`",
            ),
            (
                json!({"destination": "/tmp/s", "type": "sysfs", "source": "sysfs"}),
                None,
                "may only be mounted at `/sys`",
            ),
            (json!({"destination": "/tmp/c", "type": "cgroup", "source": "cgroup"}), None, "`/sys/fs/cgroup`"),
            (
                json!({"destination": "/run/secrets", "type": "bind", "source": storage, "options": ["rbind", "rw"]}),
                None,
                "outside the allowed prefixes",
            ),
            (
                json!({"destination": "/etc/hosts", "type": "bind", "source": storage, "options": ["rbind", "ro"]}),
                None,
                "outside the allowed prefixes",
            ),
            // Another container's state file (Docker's config.v2.json holds
            // its environment; a swarm secret) is not a client's /etc/hosts.
            (
                json!({"destination": "/etc/hosts", "type": "bind", "source": victim_state.join("config.v2.json"), "options": ["rbind", "ro"]}),
                None,
                "outside the allowed prefixes",
            ),
            (
                json!({"destination": "/etc/resolv.conf", "type": "bind", "source": victim_state.join("mounts/secrets/db"), "options": ["rbind", "ro"]}),
                None,
                "outside the allowed prefixes",
            ),
            // A store's own secrets (Podman's whole secret store), not a
            // container's.
            (
                json!({"destination": "/run/secrets", "type": "bind", "source": storage_secrets, "options": ["rbind", "rw"]}),
                None,
                "outside the allowed prefixes",
            ),
            (
                json!({"destination": "/jobs", "type": "bind", "source": "/var/lib/brig/jobs", "options": ["rbind", "rw"]}),
                None,
                "outside the allowed prefixes",
            ),
            (
                json!({"destination": "/out", "type": "bind", "source": jobs.join("missing"), "options": ["rbind", "rw"]}),
                None,
                "does not exist",
            ),
            (
                json!({"destination": "/out", "type": "bind", "source": jobs, "options": ["rbind", "rw"]}),
                Some(("dev.brig.outputs", "/")),
                "dev.brig.outputs",
            ),
            (
                json!({"destination": "/out", "type": "bind", "source": jobs, "options": ["rbind", "ro"]}),
                Some(("dev.brig.outputs", "/out")),
                "not a writable bind mount",
            ),
            (
                json!({"destination": "/out", "type": "bind", "source": jobs, "options": ["rbind", "rw"]}),
                Some(("dev.brig.inputs", "/etc")),
                "not a bind mount",
            ),
        ];
        for (mount, annotation, why) in cases {
            let mut b = Bundle::new(&["true"]);
            b.push("/mounts", mount.clone());
            if let Some((k, v)) = annotation {
                b.annotate(k, v);
            }
            let (code, _, err) = brig.run(&b, &unique_id("mnt"));
            assert_ne!(code, 0, "{profile}: accepted {mount} {annotation:?}");
            assert!(err.contains(why), "{profile}: {mount} {annotation:?}: {err}");
        }
        assert!(brig.ok(&["list", "-q"]).trim().is_empty());
    }
    std::fs::remove_dir_all(&jobs).unwrap();
    std::fs::remove_dir_all(victim_state.parent().unwrap()).unwrap();
    std::fs::remove_dir_all(storage_secrets.parent().unwrap()).unwrap();
    if made_storage {
        let _ = std::fs::remove_dir_all(&storage);
    }
}

/// Docker's `libnetwork-setkey` hook passes every profile only as Docker
/// sends it: `/proc/<pid>/exe` of a process running the host's dockerd,
/// `libnetwork-setkey` first, no environment. A binary merely named
/// `dockerd` (a bundle's, an image's, the stand-in before the configuration
/// names it), any other process's executable, or the genuine one with
/// `LD_PRELOAD` would run as host root: refused under `restricted`.
#[test]
fn only_dockers_own_setkey_hook_passes() {
    let (fake_bin, fake_hook) = fake_dockerd();
    let named_dockerd = tempfile::tempdir().unwrap();
    let lookalike = named_dockerd.path().join("dockerd");
    std::fs::copy(fake_bin, &lookalike).unwrap();
    let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let setkey = json!(["libnetwork-setkey", "-exec-root=/var/run/docker", "x", "y"]);
    let hook = |path: &Path, env: Option<Value>| {
        let mut h = json!({"path": path, "args": setkey});
        if let Some(env) = env {
            h["env"] = env;
        }
        let mut b = Bundle::new(&["true"]);
        b.set("/hooks", json!({"prestart": [h]}));
        b
    };
    let configured = restricted();
    let unconfigured = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    let (code, _, err) = configured.run(&hook(fake_hook, None), &unique_id("hook"));
    assert_eq!(code, 0, "Docker's own hook must pass: {err}");
    let sleeper_exe = PathBuf::from(format!("/proc/{}/exe", sleeper.id()));
    let cases: Vec<(&str, &Brig, Bundle)> = vec![
        ("a file named dockerd", &configured, hook(&lookalike, None)),
        ("a running dockerd that is not the host's", &unconfigured, hook(fake_hook, None)),
        ("another process's executable", &configured, hook(&sleeper_exe, None)),
        ("the genuine one with LD_PRELOAD", &configured, hook(fake_hook, Some(json!(["LD_PRELOAD=/tmp/x.so"])))),
    ];
    for (what, brig, bundle) in cases {
        let (code, _, err) =
            brig.cmd_files(&["create", "--bundle", bundle.path().to_str().unwrap(), &unique_id("hook")]);
        assert_ne!(code, 0, "{what} passed");
        assert!(err.contains("hooks.prestart[0]"), "{what}: {err}");
    }
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

/// `docker run --init` (`podman run --init` alike) under `restricted`: the
/// client binds its init program read-only at its own destination, which
/// the profile's bind ceilings refused. That file, and only read-only, at
/// that destination, with an init's name: anything else there is still
/// refused.
#[test]
fn a_clients_init_program_runs_under_restricted() {
    let brig = restricted();
    let init_bind = |source: &str, options: Value| {
        let mut b = Bundle::new(&["/sbin/docker-init", "--", "echo", "under-tini"]);
        b.push(
            "/mounts",
            json!({"destination": "/sbin/docker-init", "type": "bind", "source": source, "options": options}),
        );
        b
    };
    // Debian's docker.io links /usr/bin/docker-init to tini's tini-static.
    let tini = "/usr/bin/tini-static";
    assert!(std::path::Path::new(tini).exists(), "{tini} is missing: install Debian's `tini` (scripts/deps.sh does)");
    let (code, out, err) = brig.run(&init_bind(tini, json!(["rbind", "ro"])), &unique_id("init"));
    assert_eq!((code, out.as_str()), (0, "under-tini\n"), "{err}");
    // A copy anyone may write, under /usr/ with an init's name, is not one.
    let writable = std::path::PathBuf::from(format!("/usr/local/lib/{}", unique_id("brig-test-init")));
    std::fs::create_dir_all(&writable).unwrap();
    std::fs::copy(tini, writable.join("tini")).unwrap();
    std::fs::set_permissions(writable.join("tini"), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let writable_tini = writable.join("tini").display().to_string();
    for (source, options) in [
        (writable_tini.as_str(), json!(["rbind", "ro"])),
        (tini, json!(["rbind", "rw"])),
        ("/usr/bin/busybox", json!(["rbind", "ro"])),
        ("/etc/passwd", json!(["rbind", "ro"])),
    ] {
        let (code, _, err) = brig.run(&init_bind(source, options.clone()), &unique_id("init"));
        assert_ne!(code, 0, "{source} {options}");
        assert!(err.contains("/sbin/docker-init") && err.contains("outside the allowed prefixes"), "{source}: {err}");
    }
    std::fs::remove_dir_all(&writable).unwrap();
}
