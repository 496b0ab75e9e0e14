//! Rootless brig (issue 7): `brig` run by an unprivileged user.
//!
//! Each test runs as root, creates its own unprivileged user (with or without
//! subordinate IDs), a root filesystem, bundle, configuration and
//! `$XDG_RUNTIME_DIR` owned by that user, delegates (or not) a cgroup subtree
//! to it, and runs `brig` as that user with `setpriv`. Everything is removed
//! at the end (the user, its /etc/subuid and /etc/subgid entries, its cgroups
//! and files), also when the test fails. A step that cannot be done (no
//! `useradd`, no `setpriv`) fails the test with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use brig_tests::{brig_bin, require_root, rootfs};
use serde_json::{json, Value};

/// useradd/usermod/userdel lock /etc/passwd and /etc/subuid: one at a time.
static USERS: Mutex<()> = Mutex::new(());
static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

const CGROUP: &str = "/sys/fs/cgroup";

fn sh(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn unified() -> bool {
    Path::new(CGROUP).join("cgroup.controllers").exists()
}

/// v1 hierarchies (mount points of `cgroup` filesystems with a controller).
fn v1_hierarchies() -> Vec<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mi.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut r = right.split(' ');
            let point = PathBuf::from(left.split(' ').nth(4)?);
            (r.next()? == "cgroup" && !r.nth(1)?.contains("name=")).then_some(point)
        })
        .collect()
}

/// A v1 controller's directory for a cgroup path.
fn v1_dir(controller: &str, cgroup: &str) -> PathBuf {
    Path::new(CGROUP).join(controller).join(cgroup.trim_start_matches('/'))
}

/// An unprivileged user of this test, with its own directory.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    /// Subordinate uid range (start, count), if it has one.
    subuid: Option<(u32, u32)>,
    subgid: Option<(u32, u32)>,
    /// /tmp/brig-rootless-<name>: home, rootfs, bundles, runtime dir (all the user's).
    dir: PathBuf,
    delegated: bool,
}

impl User {
    /// Creates the user; `subids`: whether it gets subordinate uid and gid ranges.
    fn new(subuids: bool, subgids: bool) -> User {
        require_root();
        for tool in ["useradd", "userdel", "usermod", "setpriv"] {
            let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().any(|d| Path::new(d).join(tool).exists());
            assert!(
                found,
                "`{tool}` is missing: the rootless tests create their own user (Debian's passwd and util-linux)"
            );
        }
        let name = format!("brl{}x{}", std::process::id(), COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
        let dir = PathBuf::from(format!("/tmp/brig-rootless-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let _lock = USERS.lock().unwrap_or_else(|e| e.into_inner());
            // SUB_*_COUNT=0: no automatic ranges; the test adds what it wants.
            sh(Command::new("useradd").args([
                "-M",
                "-d",
                dir.join("home").to_str().unwrap(),
                "-s",
                "/bin/sh",
                "-K",
                "SUB_UID_COUNT=0",
                "-K",
                "SUB_GID_COUNT=0",
                &name,
            ]));
        }
        let id = |flag: &str| -> u32 {
            let out = sh(Command::new("id").args([flag, &name]));
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        let mut user = User { name, uid, gid, subuid: None, subgid: None, dir, delegated: false };
        {
            let _lock = USERS.lock().unwrap_or_else(|e| e.into_inner());
            let range = free_subid_range(65536);
            if subuids {
                sh(Command::new("usermod").args([
                    "--add-subuids",
                    &format!("{}-{}", range, range + 65535),
                    &user.name,
                ]));
                user.subuid = Some((range, 65536));
            }
            if subgids {
                sh(Command::new("usermod").args([
                    "--add-subgids",
                    &format!("{}-{}", range, range + 65535),
                    &user.name,
                ]));
                user.subgid = Some((range, 65536));
            }
        }
        for d in ["home", "run", "bundles", "home/.config/brig"] {
            std::fs::create_dir_all(user.dir.join(d)).unwrap();
        }
        std::fs::set_permissions(&user.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::set_permissions(user.dir.join("run"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        // The root filesystem, owned by the user (it appears owned by root in
        // the job), plus one file left owned by host root.
        sh(Command::new("cp").arg("-a").arg(rootfs()).arg(user.dir.join("rootfs")));
        std::fs::write(user.dir.join("rootfs/etc/host-root-file"), "x").unwrap();
        sh(Command::new("chown").arg("-R").arg(format!("{}:{}", user.uid, user.gid)).arg(&user.dir));
        std::os::unix::fs::chown(user.dir.join("rootfs/etc/host-root-file"), Some(0), Some(0)).unwrap();
        user
    }

    /// `/brig-rootless/<uid>`.
    fn parent(&self) -> String {
        format!("/brig-rootless/{}", self.uid)
    }

    /// Delegates `/brig-rootless/<uid>` to the user, as docs/rootless.md says.
    fn delegate(&mut self) {
        let parent = self.parent();
        let chown = |p: &Path| std::os::unix::fs::chown(p, Some(self.uid), Some(self.gid)).unwrap();
        if unified() {
            let base = Path::new(CGROUP).join("brig-rootless");
            let d = base.join(self.uid.to_string());
            std::fs::create_dir_all(d.join("session")).unwrap();
            let controllers = std::fs::read_to_string(Path::new(CGROUP).join("cgroup.controllers")).unwrap();
            for c in controllers.split_whitespace().filter(|c| ["cpu", "memory", "pids", "cpuset", "io"].contains(c)) {
                for p in [&base, &d] {
                    std::fs::write(p.join("cgroup.subtree_control"), format!("+{c}")).unwrap();
                }
            }
            for f in ["", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control"] {
                chown(&d.join(f));
            }
            for f in ["", "cgroup.procs", "cgroup.threads"] {
                chown(&d.join("session").join(f));
            }
        } else {
            for h in v1_hierarchies() {
                let d = h.join(parent.trim_start_matches('/'));
                std::fs::create_dir_all(&d).unwrap();
                if h.join("cpuset.cpus").exists() {
                    // New cpuset cgroups start empty: give the parents the host's.
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        let v = std::fs::read_to_string(h.join(f)).unwrap();
                        std::fs::write(h.join("brig-rootless").join(f), &v).unwrap();
                        std::fs::write(d.join(f), &v).unwrap();
                    }
                }
                for f in ["", "cgroup.procs", "tasks"] {
                    chown(&d.join(f));
                }
            }
        }
        self.delegated = true;
    }

    /// A command running `brig ARGS` as the user: no `--root` (so the default,
    /// `$XDG_RUNTIME_DIR/brig`), its own config in `~/.config/brig/`.
    fn brig(&self, args: &[&str]) -> Command {
        self.brig_env(args, &[("XDG_RUNTIME_DIR", self.dir.join("run").to_str().unwrap())])
    }

    fn brig_env(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = if unified() && self.delegated {
            // cgroup v2: brig must run inside the delegated subtree.
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg("echo $$ > \"$0\" && exec \"$@\"")
                .arg(format!("{CGROUP}{}/session/cgroup.procs", self.parent()));
            c.arg("setpriv");
            c
        } else {
            Command::new("setpriv")
        };
        c.args(["--reuid", &self.uid.to_string(), "--regid", &self.gid.to_string(), "--init-groups"])
            .args(["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C"])
            .arg(format!("HOME={}", self.dir.join("home").display()))
            .arg(format!("USER={}", self.name));
        for (k, v) in env {
            c.arg(format!("{k}={v}"));
        }
        c.arg(brig_bin()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs brig as the user with stdio in files: (code, stdout, stderr).
    fn run(&self, mut c: Command) -> (i32, String, String) {
        let out = tempfile::NamedTempFile::new().unwrap();
        let err = tempfile::NamedTempFile::new().unwrap();
        let status = c.stdout(out.reopen().unwrap()).stderr(err.reopen().unwrap()).status().unwrap();
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(out.path()).unwrap(),
            std::fs::read_to_string(err.path()).unwrap(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(self.brig(args));
        assert_eq!(code, 0, "brig {args:?} as {} failed ({code}): {err}{out}", self.name);
        out
    }

    fn fails(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(self.brig(args));
        assert_ne!(code, 0, "brig {args:?} as {} unexpectedly succeeded: {out}", self.name);
        err
    }

    fn config(&self, profile: &str) {
        let p = self.dir.join("home/.config/brig/config.toml");
        std::fs::write(
            &p,
            format!(
                "[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\ndir = \"{}/profiles\"\n",
                self.dir.display()
            ),
        )
        .unwrap();
        std::os::unix::fs::chown(&p, Some(self.uid), Some(self.gid)).unwrap();
    }

    /// Adds signed attestations to the user's configuration: keys and
    /// records in the user's directory.
    fn attest(&self) {
        let keys = self.dir.join("keys");
        sh(Command::new(brig_bin()).args(["attest", "keygen", "--out"]).arg(&keys));
        sh(Command::new("chown").arg("-R").arg(format!("{}:{}", self.uid, self.gid)).arg(&keys));
        let p = self.dir.join("home/.config/brig/config.toml");
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str(&format!(
            "[attest]\nkey = \"{0}/keys/attest.key\"\ndir = \"{0}/attestations\"\nrootfs_cache = \"{0}/cache\"\n",
            self.dir.display()
        ));
        std::fs::write(&p, text).unwrap();
    }

    /// A bundle as `brig spec` (runc's template: no user namespace) writes it.
    fn bundle(&self, name: &str, args: &[&str], resources: Value) -> PathBuf {
        let dir = self.dir.join("bundles").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        sh(Command::new(brig_bin()).args(["spec", "--bundle"]).arg(&dir));
        let mut c: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        c["root"] = json!({"path": self.dir.join("rootfs"), "readonly": true});
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(args);
        c["linux"]["resources"] = resources;
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&c).unwrap()).unwrap();
        sh(Command::new("chown").arg("-R").arg(format!("{}:{}", self.uid, self.gid)).arg(&dir));
        dir
    }

    fn state_dir(&self, id: &str) -> PathBuf {
        self.dir.join("run/brig").join(id)
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        while Instant::now() < deadline {
            let (code, out, _) = self.run(self.brig(&["state", id]));
            if code == 0 {
                let s: Value = serde_json::from_str(&out).unwrap_or_default();
                last = s["status"].as_str().unwrap_or_default().to_string();
                if last == want {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("container {id} did not reach `{want}` (last: `{last}`)");
    }
}

/// The first subordinate-ID start at or above 1_000_000, 65536-aligned, that
/// no /etc/subuid or /etc/subgid entry overlaps.
fn free_subid_range(count: u32) -> u32 {
    let mut used: Vec<(u64, u64)> = Vec::new();
    for f in ["/etc/subuid", "/etc/subgid"] {
        for l in std::fs::read_to_string(f).unwrap_or_default().lines() {
            let p: Vec<&str> = l.split(':').collect();
            let num = |i: usize| p.get(i).and_then(|x| x.parse::<u64>().ok());
            if let (Some(s), Some(c)) = (num(1), num(2)) {
                used.push((s, s + c));
            }
        }
    }
    let mut start: u64 = 1_000_000;
    while used.iter().any(|&(s, e)| start < e && s < start + u64::from(count)) {
        start += 65536;
    }
    u32::try_from(start).unwrap()
}

impl Drop for User {
    fn drop(&mut self) {
        // Containers first (as the user), then cgroups, files, the user.
        if let Ok(entries) = std::fs::read_dir(self.dir.join("run/brig")) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if !id.starts_with('.') {
                    let _ = self.brig(&["delete", "--force", &id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
                }
            }
        }
        let parent = self.parent();
        let rel = parent.trim_start_matches('/');
        let dirs: Vec<PathBuf> = if unified() {
            vec![Path::new(CGROUP).join(rel)]
        } else {
            v1_hierarchies().iter().map(|h| h.join(rel)).collect()
        };
        for d in dirs {
            // Children (jobs, the v2 session leaf), then the user's directory.
            if let Ok(entries) = std::fs::read_dir(&d) {
                for e in entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
            let _ = std::fs::remove_dir(&d);
            let _ = std::fs::remove_dir(d.parent().unwrap());
        }
        let _lock = USERS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&self.name).output();
        // userdel removes the subordinate ranges too; make sure.
        for f in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(t) = std::fs::read_to_string(f) {
                let prefix = format!("{}:", self.name);
                if t.lines().any(|l| l.starts_with(&prefix)) {
                    let kept: String =
                        t.lines().filter(|l| !l.starts_with(&prefix)).map(|l| format!("{l}\n")).collect();
                    let _ = std::fs::write(f, kept);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads the file a detached job writes its stdout to until it has `lines` lines.
fn wait_lines(path: &Path, lines: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= lines || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rootless_lifecycle_is_hardened_mapped_and_limited() {
    let mut u = User::new(true, true);
    u.delegate();
    u.config("restricted");
    u.attest();
    // The job reports what the kernel enforces on it, then waits.
    let job = "cat /proc/self/uid_map; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; \
               cat /secret/data.txt 2>&1 | sed 's/^/landlock: /'; \
               stat -c 'owner %u %n' /bin/busybox /etc/host-root-file; exec sleep 300";
    let bundle = u.bundle(
        "life",
        &["sh", "-c", job],
        json!({"memory": {"limit": 67108864, "swap": 67108864}, "pids": {"limit": 32}}),
    );
    let id = "life";
    let out_file = u.dir.join("life.out");
    {
        let out = std::fs::File::create(&out_file).unwrap();
        let err = tempfile::NamedTempFile::new().unwrap();
        let status = u
            .brig(&["create", "--bundle", bundle.to_str().unwrap(), id])
            .stdout(out)
            .stderr(err.reopen().unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "rootless create failed: {}", std::fs::read_to_string(err.path()).unwrap());
    }
    // State under $XDG_RUNTIME_DIR/brig, owned by the user.
    let dir = u.state_dir(id);
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), u.uid, "state in $XDG_RUNTIME_DIR/brig");
    assert_eq!(u.state(id)["status"], "created");
    let pid = u.state(id)["pid"].as_i64().unwrap();

    // The job's cgroup: in the delegated subtree, limits written before start.
    let cg = format!("{}/{id}", u.parent());
    let record: Value = serde_json::from_slice(&std::fs::read(dir.join("brig-rootless.json")).unwrap()).unwrap();
    assert_eq!(record["mode"], "unprivileged", "{record}");
    assert_eq!(record["cgroup"]["path"], json!(cg), "{record}");
    assert_eq!(record["cgroup"]["delegated"], true, "{record}");
    if unified() {
        let d = Path::new(CGROUP).join(cg.trim_start_matches('/'));
        assert_eq!(std::fs::read_to_string(d.join("memory.max")).unwrap().trim(), "67108864");
        assert_eq!(std::fs::read_to_string(d.join("pids.max")).unwrap().trim(), "32");
        assert_eq!(std::fs::read_to_string(d.join("cpu.max")).unwrap().trim(), "100000 100000");
    } else {
        assert_eq!(record["cgroup"]["brig_writes_limits"], true, "{record}");
        let read = |c: &str, f: &str| std::fs::read_to_string(v1_dir(c, &cg).join(f)).unwrap().trim().to_string();
        assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(read("memory", "memory.memsw.limit_in_bytes"), "67108864");
        assert_eq!(read("pids", "pids.max"), "32");
        // restricted's `cpus = 1.0`.
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "100000");
        for h in v1_hierarchies() {
            let procs = h.join(cg.trim_start_matches('/')).join("cgroup.procs");
            let text = std::fs::read_to_string(&procs).unwrap_or_else(|e| panic!("{}: {e}", procs.display()));
            assert!(text.lines().any(|l| l == pid.to_string()), "init {pid} not in {}", procs.display());
        }
    }
    // On the host the init is the user, not root.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.split_whitespace().skip(1).all(|x| x == u.uid.to_string()), "{uid_line}");

    u.ok(&["start", id]);
    u.wait_status(id, "running");
    let out = wait_lines(&out_file, 7);
    let (sub_start, sub_count) = u.subuid.unwrap();
    let mut lines = out.lines();
    let map = |l: Option<&str>| -> Vec<u64> { l.unwrap().split_whitespace().map(|x| x.parse().unwrap()).collect() };
    assert_eq!(map(lines.next()), vec![0, u64::from(u.uid), 1], "{out}");
    assert_eq!(map(lines.next()), vec![1, u64::from(sub_start), u64::from(sub_count)], "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // /secret is not in restricted's Landlock rules: refused although the
    // file is the job root's and mode 0644.
    assert!(out.contains("landlock: cat: can't open '/secret/data.txt': Permission denied"), "{out}");
    // No idmapped mount: the user's files are root's in the job, host root's are nobody's.
    assert!(out.contains("owner 0 /bin/busybox"), "{out}");
    assert!(out.contains("owner 65534 /etc/host-root-file"), "{out}");
    let status = std::fs::read_to_string(dir.join("brig-status")).unwrap();
    assert!(status.contains("landlock=full") || status.contains("landlock=partial"), "{status}");

    // exec: joins the job's user namespace and gets the same enforcement.
    let out = u.ok(&["exec", id, "sh", "-c", "id -u; cat /proc/self/uid_map; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; cat /secret/data.txt 2>&1; true"]);
    assert!(out.starts_with("0\n"), "{out}");
    let own = ["0".to_string(), u.uid.to_string(), "1".to_string()];
    assert!(out.lines().any(|l| l.split_whitespace().eq(own.iter().map(String::as_str))), "{out}");
    assert!(out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("Permission denied"), "{out}");

    // update: lower limits (brig writes them itself on v1), never above the profile.
    u.ok(&["update", "--pids-limit", "10", id]);
    let pids_max = if unified() {
        Path::new(CGROUP).join(cg.trim_start_matches('/')).join("pids.max")
    } else {
        v1_dir("pids", &cg).join("pids.max")
    };
    assert_eq!(std::fs::read_to_string(&pids_max).unwrap().trim(), "10");
    let err = u.fails(&["update", "--pids-limit", "1000", id]);
    assert!(err.contains("ceiling is 256"), "{err}");

    u.ok(&["kill", id, "KILL"]);
    u.wait_status(id, "stopped");
    u.ok(&["delete", id]);
    assert!(!dir.exists(), "state left after delete");
    // The run's attestation says it was rootless, whose, and with what maps.
    let envelope = u.dir.join("attestations").join(format!("{id}.intoto.json"));
    let out = sh(Command::new(brig_bin())
        .args(["attest", "verify", "--print", "--key"])
        .arg(u.dir.join("keys/attest.pub"))
        .arg(&envelope));
    let verified: Value = serde_json::from_slice(&out.stdout).unwrap();
    let enforcement = &verified["predicate"]["buildDefinition"]["internalParameters"]["enforcement"];
    let rootless = &enforcement["other"]["rootless"];
    assert_eq!(rootless["mode"], "unprivileged", "{enforcement}");
    assert_eq!(rootless["host_uid"], u.uid, "{enforcement}");
    assert_eq!(rootless["own_user_namespace"], true, "{enforcement}");
    assert_eq!(rootless["cgroup"], json!(cg), "{enforcement}");
    // Only host root can set vm.memfd_noexec: said so, not claimed.
    assert!(
        enforcement["other"]["memfd_noexec"].as_str().is_some_and(|m| m.starts_with("not enforced: rootless")),
        "{enforcement}"
    );
    assert_eq!(
        enforcement["userNamespace"]["uidMap"],
        json!([
            {"containerId": 0, "hostId": u.uid, "size": 1},
            {"containerId": 1, "hostId": sub_start, "size": sub_count}
        ]),
        "{enforcement}"
    );
    if unified() {
        assert!(!Path::new(CGROUP).join(cg.trim_start_matches('/')).exists(), "cgroup left after delete");
    } else {
        for h in v1_hierarchies() {
            assert!(!h.join(cg.trim_start_matches('/')).exists(), "cgroup left in {}", h.display());
        }
    }
}

#[test]
fn rootless_limits_are_enforced() {
    let mut u = User::new(true, true);
    u.delegate();
    u.config("restricted");
    // A fork bomb under pids 16 stops below it.
    let b = u.bundle("fork", &["/bin/brig-probe", "fork-bomb"], json!({"pids": {"limit": 16}}));
    let (code, out, err) = u.run(u.brig(&["run", "--bundle", b.to_str().unwrap(), "fork"]));
    let forked: Option<u32> =
        out.split_whitespace().find_map(|w| w.strip_prefix("forked=")).and_then(|n| n.parse().ok());
    assert!(out.contains("errno=EAGAIN") && forked.is_some_and(|n| n < 16), "code {code}: {out}{err}");
    // A memory bomb under 32 MiB is OOM-killed, and brig reports it.
    let b = u.bundle(
        "mem",
        &["/bin/brig-probe", "mem-bomb", "256"],
        json!({"memory": {"limit": 33554432, "swap": 33554432}}),
    );
    let (code, out, err) = u.run(u.brig(&["run", "--bundle", b.to_str().unwrap(), "mem"]));
    assert_eq!(code, 137, "the memory bomb was not killed: {out}{err}");
    assert!(err.contains("OOM killer"), "{err}");
}

#[test]
fn missing_subordinate_ids_are_named() {
    let u = User::new(false, false);
    u.config("restricted");
    let b = u.bundle("x", &["true"], json!({}));
    let err = u.fails(&["run", "--bundle", b.to_str().unwrap(), "x"]);
    assert!(err.contains("/etc/subuid") && err.contains(&u.name) && err.contains("usermod --add-subuids"), "{err}");
    let u = User::new(true, false);
    u.config("restricted");
    let b = u.bundle("x", &["true"], json!({}));
    let err = u.fails(&["run", "--bundle", b.to_str().unwrap(), "x"]);
    assert!(err.contains("subordinate gids") && err.contains("/etc/subgid"), "{err}");
    // A spec mapping IDs the user does not own is refused the same way
    // newuidmap would, but by name (libcontainer ignores the helper's status).
    let mut u = User::new(true, true);
    u.delegate();
    u.config("permissive");
    let b = u.bundle("m", &["true"], json!({}));
    let mut c: Value = serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": u.gid, "size": 1}]);
    std::fs::write(b.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    let err = u.fails(&["run", "--bundle", b.to_str().unwrap(), "m"]);
    assert!(err.contains("linux.uidMappings") && err.contains("host IDs 0..1"), "{err}");
}

#[test]
fn missing_or_unprivileged_newuidmap_is_named() {
    let mut u = User::new(true, true);
    u.delegate();
    u.config("restricted");
    let b = u.bundle("x", &["true"], json!({}));
    let helper = ["/usr/bin/newuidmap", "/bin/newuidmap"].into_iter().find(|p| Path::new(p).exists());
    let helper = helper.expect("newuidmap is missing: install Debian's `uidmap` (the rootless tests need it)");
    // A copy without the setuid bit, and /dev/null, each bind-mounted over the
    // helper in a private mount namespace of the brig process only.
    let plain = u.dir.join("newuidmap-plain");
    std::fs::copy(helper, &plain).unwrap();
    std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (over, want) in [("/dev/null", "was not found"), (plain.to_str().unwrap(), "neither setuid root")] {
        let inner = u.brig(&["run", "--bundle", b.to_str().unwrap(), "x"]);
        let mut argv = vec![inner.get_program().to_string_lossy().to_string()];
        argv.extend(inner.get_args().map(|a| a.to_string_lossy().to_string()));
        let mut c = Command::new("unshare");
        c.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"",
            "sh",
        ])
        .arg(over)
        .arg(helper)
        .args(&argv)
        .stdin(Stdio::null());
        let (code, out, err) = u.run(c);
        assert_ne!(code, 0, "{out}");
        assert!(err.contains("newuidmap") && err.contains(want) && err.contains("uidmap"), "{err}");
    }
    assert!(!u.state_dir("x").exists());
}

#[test]
fn missing_cgroup_delegation_is_named_and_nothing_is_left() {
    let u = User::new(true, true);
    u.config("restricted");
    let b = u.bundle("x", &["true"], json!({}));
    let err = u.fails(&["run", "--bundle", b.to_str().unwrap(), "x"]);
    let parent = u.parent();
    if unified() {
        assert!(err.contains("needs cgroup limits") && err.contains("[cgroup] memory = 512m"), "{err}");
        assert!(err.contains(&parent) && err.contains("chown"), "{err}");
        // Without limits in the profile, v2 runs the job in brig's own cgroup.
        u.config("permissive");
        u.ok(&["run", "--bundle", b.to_str().unwrap(), "y"]);
    } else {
        // cgroup v1: named per hierarchy, with the command that fixes it, and
        // the limits the profile requires.
        assert!(err.contains("cgroup v1") && err.contains("[cgroup] memory = 512m"), "{err}");
        assert!(err.contains(&format!("`/sys/fs/cgroup/C{parent}` does not exist, for C in")), "{err}");
        assert!(err.contains("memory") && err.contains("pids") && err.contains("chown"), "{err}");
        // Even a profile without limits: libcontainer 0.7's v1 manager joins
        // every hierarchy.
        u.config("permissive");
        let err = u.fails(&["run", "--bundle", b.to_str().unwrap(), "y"]);
        assert!(err.contains("for every job") && !err.contains("also needs limits"), "{err}");
        for h in v1_hierarchies() {
            assert!(!h.join(parent.trim_start_matches('/')).exists(), "created {}", h.display());
        }
    }
    assert!(!u.state_dir("x").exists(), "state left after a refused create");
}

#[test]
fn rootless_defaults_and_their_errors() {
    let mut u = User::new(true, true);
    u.delegate();
    // No configuration: the error names the user's configuration path
    // (when there is no system-wide one to fall back to).
    let b = u.bundle("x", &["true"], json!({}));
    if !Path::new("/etc/brig/config.toml").exists() {
        let err = u.fails(&["run", "--bundle", b.to_str().unwrap(), "x"]);
        let want = u.dir.join("home/.config/brig/config.toml");
        assert!(err.contains(want.to_str().unwrap()) && err.contains("brig init"), "{err}");
    }
    u.config("restricted");
    // No XDG_RUNTIME_DIR and no /run/user/<uid>: says how to fix it.
    let (code, _, err) = u.run(u.brig_env(&["run", "--bundle", b.to_str().unwrap(), "x"], &[]));
    assert_ne!(code, 0);
    assert!(err.contains(&format!("/run/user/{}/brig", u.uid)) && err.contains("XDG_RUNTIME_DIR"), "{err}");
    // With it: works, state under it.
    u.ok(&["run", "--bundle", b.to_str().unwrap(), "x"]);
    assert!(u.dir.join("run/brig").is_dir());
}
