//! Shared helpers for brig's integration tests.
//!
//! The tests run real containers and must run as root; a test that cannot
//! run fails with the reason instead of skipping. Each test gets its own
//! state root, configuration and container ids, so tests run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_debug_implementations)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde_json::{json, Value};

/// Panics unless the tests run as root (CI does).
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "brig's integration tests run real containers and must run as root (CI runs them as root)"
    );
}

/// A binary of this build: target/<profile>/<name>.
fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    let bin = dir.join(name);
    assert!(bin.exists(), "`{}` not found: build the workspace first (`cargo build --workspace`)", bin.display());
    bin
}

/// The `brig` binary of this build, or `$BRIG_BIN`.
pub fn brig_bin() -> PathBuf {
    match std::env::var_os("BRIG_BIN") {
        Some(p) => PathBuf::from(p),
        None => built_binary("brig"),
    }
}

/// The probe binary copied into test root filesystems.
pub fn probe_bin() -> PathBuf {
    built_binary("brig-probe")
}

/// A stand-in dockerd for Docker's `libnetwork-setkey` hook: a root-owned
/// copy of the probe, running until this test process ends (`hold`), whose
/// `/proc/<pid>/exe` a captured Docker config's hook names. Returns the
/// binary and the hook path; a configuration that runs such a bundle names
/// the binary in `[clients] dockerd_binaries` (`clients_config`).
pub fn fake_dockerd() -> &'static (PathBuf, PathBuf) {
    static FAKE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FAKE.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("brig-test-dockerd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.join("dockerd");
        std::fs::copy(probe_bin(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let child = Command::new(&bin).arg("hold").stdin(Stdio::null()).spawn().unwrap();
        let hook = PathBuf::from(format!("/proc/{}/exe", child.id()));
        // Not waited for: it outlives every test and exits with this process.
        std::mem::forget(child);
        (bin, hook)
    })
}

/// `[clients]` naming the stand-in dockerd (`fake_dockerd`).
pub fn clients_config() -> String {
    format!("[clients]\ndockerd_binaries = [\"{}\"]\n", fake_dockerd().0.display())
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A container id unique to this test process.
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

fn copy_with_libs(bin: &Path, rootfs: &Path, dest: &str) {
    std::fs::copy(bin, rootfs.join(dest.trim_start_matches('/'))).unwrap();
    // The probe is a normal (glibc) binary: bring its shared libraries.
    let out = Command::new("ldd").arg(bin).output().unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = line.split_whitespace().find(|w| w.starts_with('/')).map(PathBuf::from);
        if let Some(lib) = path {
            let target = rootfs.join(lib.strip_prefix("/").unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            if !target.exists() {
                std::fs::copy(&lib, &target).unwrap();
            }
        }
    }
}

/// Builds a busybox root filesystem (from Debian's busybox-static) with the
/// probe, once per test process.
pub fn rootfs() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            let busybox = Path::new("/bin/busybox");
            assert!(busybox.exists(), "/bin/busybox is missing: install Debian's busybox-static (`.ci/run` does)");
            let base = std::env::temp_dir().join("brig-test-rootfs");
            std::fs::create_dir_all(&base).unwrap();
            // Remove root filesystems of test processes that are gone.
            for e in std::fs::read_dir(&base).unwrap().flatten() {
                let pid: Option<i32> = e.file_name().to_string_lossy().parse().ok();
                if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
            let root = base.join(std::process::id().to_string());
            let _ = std::fs::remove_dir_all(&root);
            // `opt` and `usr/local`: places `restricted` lets programs run from.
            for d in
                ["bin", "dev", "etc", "proc", "sys", "tmp", "root", "secret", "work", "data", "out", "opt", "usr/local"]
            {
                std::fs::create_dir_all(root.join(d)).unwrap();
            }
            std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
            let list = Command::new(busybox).arg("--list").output().unwrap();
            for applet in String::from_utf8_lossy(&list.stdout).lines() {
                if applet != "busybox" {
                    let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
                }
            }
            std::fs::write(
                root.join("etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
            )
            .unwrap();
            std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
            std::fs::write(root.join("secret/data.txt"), "top secret\n").unwrap();
            copy_with_libs(&probe_bin(), &root, "/bin/brig-probe");
            root
        })
        .clone()
}

/// A bundle whose config.json starts as `brig spec`'s template, running a
/// command in the shared busybox rootfs.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new().prefix("brig-bundle-").tempdir().unwrap();
        let out = Command::new(brig_bin()).args(["spec", "--bundle"]).arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "brig spec failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        let mut config: Value = serde_json::from_str(&text).unwrap();
        config["root"] = json!({ "path": rootfs(), "readonly": true });
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        let mut b = Bundle { dir, config };
        b.write();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets a value at a JSON pointer (creating objects on the way) and saves.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Bundle {
        let mut cur = &mut self.config;
        for part in pointer.trim_start_matches('/').split('/') {
            if !cur.is_object() {
                *cur = json!({});
            }
            cur = cur.as_object_mut().unwrap().entry(part.to_string()).or_insert(Value::Null);
        }
        *cur = value;
        self.write();
        self
    }

    pub fn annotate(&mut self, key: &str, value: &str) -> &mut Bundle {
        if !self.config["annotations"].is_object() {
            self.config["annotations"] = json!({});
        }
        self.config["annotations"][key] = json!(value);
        self.write();
        self
    }

    pub fn push(&mut self, pointer: &str, value: Value) -> &mut Bundle {
        let arr = self.config.pointer_mut(pointer).expect("pointer exists");
        arr.as_array_mut().expect("an array").push(value);
        self.write();
        self
    }

    pub fn write(&mut self) {
        std::fs::write(self.dir.path().join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap()).unwrap();
    }
}

/// One test's brig: its own state root and configuration.
pub struct Brig {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
}

impl Default for Brig {
    fn default() -> Self {
        Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"permissive\"\n")
    }
}

impl Brig {
    /// A brig with the given config.toml text (`{dir}` is replaced by the
    /// test's directory).
    pub fn new(config: &str) -> Brig {
        require_root();
        let dir = tempfile::Builder::new().prefix("brig-test-").tempdir().unwrap();
        let root = dir.path().join("state");
        let config_path = dir.path().join("config.toml");
        let text = config.replace("{dir}", &dir.path().display().to_string());
        let text = if text.contains("[profiles]") && !text.contains("dir =") {
            text.replace("[profiles]\n", &format!("[profiles]\ndir = \"{}/profiles\"\n", dir.path().display()))
        } else {
            text
        };
        std::fs::write(&config_path, text).unwrap();
        Brig { dir, root, config: config_path }
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(brig_bin());
        c.arg("--root").arg(&self.root).arg("--config").arg(&self.config);
        c.stdin(Stdio::null());
        c
    }

    /// Runs brig with `args`; stdout and stderr are captured (and brig's
    /// stdio is not inherited by the container, so use `run` only for
    /// commands whose container exits).
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs brig with the container's stdio going to files (so that a
    /// detached container never holds a pipe the test waits on).
    pub fn cmd_files(&self, args: &[&str]) -> (i32, String, String) {
        let out = tempfile::NamedTempFile::new().unwrap();
        let err = tempfile::NamedTempFile::new().unwrap();
        let status =
            self.command().args(args).stdout(out.reopen().unwrap()).stderr(err.reopen().unwrap()).status().unwrap();
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(out.path()).unwrap(),
            std::fs::read_to_string(err.path()).unwrap(),
        )
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cmd_files(args);
        assert_eq!(code, 0, "brig {args:?} failed ({code}): {err}{out}");
        out
    }

    /// Asserts failure and returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cmd_files(args);
        assert_ne!(code, 0, "brig {args:?} unexpectedly succeeded: {out}");
        err
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.ok(&["state", id]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("state of {id} is not JSON ({e}): {out}"))
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Waits (up to 10 s) for a container to exist and reach `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        let mut last = String::new();
        for _ in 0..1000 {
            let out = self.cmd(&["state", id]);
            if out.status.success() {
                let state: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
                last = state["status"].as_str().unwrap_or_default().to_string();
                if last == status {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {id} did not reach `{status}` (last seen: `{last}`)");
    }

    /// A container running `sleep 30`, started detached: its bundle (keep it
    /// alive while the container runs) and its id.
    pub fn detached_sleeper(&self, prefix: &str) -> (Bundle, String) {
        let bundle = Bundle::new(&["sleep", "30"]);
        let id = unique_id(prefix);
        self.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
        (bundle, id)
    }

    /// `run` with output captured: (exit code, stdout, stderr).
    pub fn run(&self, bundle: &Bundle, id: &str) -> (i32, String, String) {
        self.cmd_files(&["run", "--bundle", bundle.path().to_str().unwrap(), id])
    }
}

impl Drop for Brig {
    fn drop(&mut self) {
        // Leave nothing behind: containers, their cgroups, their state.
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if !id.starts_with('.') {
                    let _ = self
                        .command()
                        .args(["delete", "--force", &id])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}

/// Receives the pseudo-terminal master sent to a `--console-socket`.
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
    _dir: tempfile::TempDir,
}

impl Default for ConsoleSocket {
    fn default() -> Self {
        ConsoleSocket::new()
    }
}

impl ConsoleSocket {
    pub fn new() -> ConsoleSocket {
        let dir = tempfile::Builder::new().prefix("brig-console-").tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        ConsoleSocket { path, listener, _dir: dir }
    }

    /// Accepts one connection (within 10 s) and returns the received fd.
    pub fn receive(&self) -> OwnedFd {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let mut fds = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(&self.listener), nix::poll::PollFlags::POLLIN)];
        let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
        assert!(ready > 0, "nothing connected to the console socket within 10 s");
        let (stream, _) = self.listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()).unwrap();
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the kernel installed this descriptor for us.
                return unsafe { OwnedFd::from_raw_fd(fds[0]) };
            }
        }
        panic!("no file descriptor received on the console socket");
    }
}

/// Reads from a pty master until `needle` appears or 10 s pass.
pub fn read_until(fd: &OwnedFd, needle: &str) -> String {
    let mut out = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline && !out.contains(needle) {
        let mut fds = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(fd), nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap_or(0) == 0 {
            continue;
        }
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    out
}

/// The cgroup v1 directory of a controller for a cgroup path (this host), or
/// the unified one.
pub fn cgroup_dir(controller: &str, cgroup_path: &str) -> PathBuf {
    let rel = cgroup_path.trim_start_matches('/');
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(controller).join(rel)
    }
}

/// A brig command with this test's state root but no `--config`.
pub fn brig_command_without_config(b: &Brig) -> Command {
    let mut c = Command::new(brig_bin());
    c.arg("--root").arg(&b.root);
    c.stdin(Stdio::null());
    c
}

/// A small tmpfs mounted on a new directory, to fill a disk for real;
/// unmounted, and the directory removed, when dropped. Panics unless the
/// tests run as root (CI runs them as root).
pub struct SmallTmpfs {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallTmpfs {
    /// Mounts a tmpfs of `size` (`64k`, …) on a directory named `name`.
    pub fn mount(name: &str, size: &str) -> SmallTmpfs {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test mounts a tmpfs to fill a disk for real and must run as root (the test suite runs as root)"
        );
        let parent = tempfile::tempdir().expect("a temporary directory");
        let path = parent.path().join(name);
        std::fs::create_dir(&path).expect("the mount point");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), &format!("brig-{name}-test")])
            .arg(&path)
            .status();
        assert!(st.is_ok_and(|s| s.success()), "cannot mount a tmpfs on {}", path.display());
        SmallTmpfs { path, _parent: parent }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fills the tmpfs but for `leave` bytes with a file `filler` (remove it
    /// to make room again).
    pub fn fill(&self, leave: u64) {
        use std::io::Write;
        let path = self.path.join("filler");
        let mut f = std::fs::File::create(&path).expect("the filler file");
        let chunk = vec![0u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", self.path.display()),
            }
        }
        let len = f.metadata().expect("the filler's size").len();
        f.set_len(len.saturating_sub(leave)).expect("leaving room");
        f.sync_all().expect("syncing the filler");
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}
