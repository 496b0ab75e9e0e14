//! The runc lifecycle with real containers (issue 2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use brig_tests::{cgroup_dir, unique_id, Brig, Bundle, ConsoleSocket};
use serde_json::{json, Value};

fn schema_check(state: &Value) {
    let schema: Value = serde_json::from_str(include_str!("../fixtures/state-schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(state).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "state does not match the runtime-spec state schema: {errors:?}\n{state}");
}

#[test]
fn create_start_kill_delete() {
    let brig = Brig::default();
    let bundle = Bundle::new(&["sleep", "30"]);
    let id = unique_id("life");
    let pid_file = brig.dir.path().join("pid");
    brig.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), "--pid-file", pid_file.to_str().unwrap(), &id]);

    let created = brig.state(&id);
    assert_eq!(created["status"], "created");
    schema_check(&created);
    let pid = created["pid"].as_i64().unwrap();
    assert!(pid > 0);
    let pid_text = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(pid_text.trim().parse::<i64>().unwrap(), pid, "pid file");
    assert_eq!(created["bundle"], bundle.path().canonicalize().unwrap().to_str().unwrap());

    brig.ok(&["start", &id]);
    let running = brig.state(&id);
    assert_eq!(running["status"], "running");
    schema_check(&running);
    // Starting twice is an error.
    let err = brig.fails(&["start", &id]);
    assert!(err.contains("running"), "{err}");
    // Deleting a running container needs --force.
    let err = brig.fails(&["delete", &id]);
    assert!(err.contains("running") && err.contains("--force"), "{err}");

    brig.ok(&["kill", &id, "KILL"]);
    brig.wait_status(&id, "stopped");
    let stopped = brig.state(&id);
    schema_check(&stopped);
    assert_eq!(stopped["pid"], 0);
    brig.ok(&["delete", &id]);
    let err = brig.fails(&["state", &id]);
    assert!(err.contains(&id) && err.contains("does not exist"), "{err}");
    // runc: delete --force of a missing container succeeds.
    brig.ok(&["delete", "--force", &id]);
}

/// A deleted container's directory is emptied and kept (a removed directory
/// costs a block discard on a state root on disk) and the next create takes
/// it; a failed create leaves none behind, and the directory a create takes
/// holds nothing of the container before it.
#[test]
fn deleted_container_directories_are_reused_empty() {
    let brig = Brig::default();
    let free = brig.root.join(".staging/free");
    let count = |d: &std::path::Path| std::fs::read_dir(d).map(|e| e.count()).unwrap_or(0);
    let bundle = Bundle::new(&["true"]);
    let first = unique_id("reuse");
    brig.ok(&["run", "--bundle", bundle.path().to_str().unwrap(), &first]);
    assert!(!brig.root.join(&first).exists());
    assert_eq!(count(&free), 1);
    let kept = std::fs::read_dir(&free).unwrap().next().unwrap().unwrap().path();
    assert_eq!(count(&kept), 0, "kept empty");
    let second = unique_id("reuse");
    brig.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &second]);
    assert_eq!(count(&free), 0, "taken by the next create");
    assert_eq!(brig.status(&second), "created");
    let mut names: Vec<String> = std::fs::read_dir(brig.root.join(&second))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.contains(&"state.json".to_string()), "{names:?}");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(brig.root.join(&second).join("state.json")).unwrap()).unwrap();
    assert_eq!(state["id"], second.as_str());
    brig.ok(&["delete", "--force", &second]);
    assert_eq!(count(&free), 1);
    // A create that libcontainer refuses before it uses the directory (a
    // terminal without a console socket) gives the kept directory back: the
    // id stays free, and the next create takes the directory.
    let mut broken = Bundle::new(&["true"]);
    broken.set("/process/terminal", serde_json::json!(true));
    let third = unique_id("reuse");
    let err = brig.fails(&["create", "--bundle", broken.path().to_str().unwrap(), &third]);
    assert!(err.contains("console"), "{err}");
    assert!(!brig.root.join(&third).exists(), "no directory left for a failed create");
    assert_eq!(count(&free), 1, "given back");
    brig.ok(&["run", "--bundle", bundle.path().to_str().unwrap(), &third]);
    assert_eq!(count(&free), 1);
}

#[test]
fn flags_after_the_container_id() {
    let brig = Brig::default();
    let bundle = Bundle::new(&["true"]);
    let id = unique_id("order");
    brig.ok(&["create", &id, "--bundle", bundle.path().to_str().unwrap()]);
    assert_eq!(brig.status(&id), "created");
    brig.ok(&["delete", &id, "--force"]);
}

#[test]
fn run_propagates_exit_codes_and_signals() {
    let brig = Brig::default();
    for (script, expected) in [("exit 0", 0), ("exit 7", 7), ("kill -TERM $$", 143), ("kill -KILL $$", 137)] {
        let bundle = Bundle::new(&["sh", "-c", script]);
        let id = unique_id("exit");
        let (code, _, err) = brig.run(&bundle, &id);
        assert_eq!(code, expected, "`{script}`: {err}");
        // `run` deletes the container afterwards.
        assert!(brig.fails(&["state", &id]).contains("does not exist"));
    }
}

#[test]
fn run_streams_stdout_and_forwards_signals() {
    use std::io::{BufRead, BufReader, Read};
    let brig = Brig::default();
    // The trap is set, and stderr written, before the first line of stdout,
    // so once "out" is read the job handles SIGTERM and "err" is on its way
    // (no race with a slow start).
    let bundle = Bundle::new(&[
        "sh",
        "-c",
        "trap 'echo got-term; exit 42' TERM; echo err >&2; echo out; while true; do sleep 0.05; done",
    ]);
    let id = unique_id("fwd");
    let mut child = brig
        .command()
        .args(["run", "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first.trim(), "out", "streamed before the job ends");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(42), "stdout: {first}{rest} stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(rest.contains("got-term"), "{rest}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
}

#[test]
fn exec_into_a_running_container() {
    let brig = Brig::default();
    let (_bundle, id) = brig.detached_sleeper("exec");
    assert_eq!(brig.status(&id), "running");

    let out = brig.ok(&["exec", &id, "sh", "-c", "echo inside; cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert!(out.contains("inside") && out.contains("brig-init"), "{out}");
    let (code, _, _) = brig.cmd_files(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(code, 5);

    // runc's process.json form, detached with a pid file (what containerd does).
    let process = json!({
        "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
        "args": ["sh", "-c", "echo from-process-json > /dev/shm/marker; sleep 1"],
        "env": ["PATH=/bin"]
    });
    let pfile = brig.dir.path().join("process.json");
    std::fs::write(&pfile, process.to_string()).unwrap();
    let pid_file = brig.dir.path().join("exec.pid");
    brig.ok(&["exec", "--process", pfile.to_str().unwrap(), "--detach", "--pid-file", pid_file.to_str().unwrap(), &id]);
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(pid > 0);
    // The detached process writes its marker soon; poll rather than guess.
    let mut out = String::new();
    for _ in 0..100 {
        out = brig.cmd_files(&["exec", &id, "cat", "/dev/shm/marker"]).1;
        if out.trim() == "from-process-json" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(out.trim(), "from-process-json");

    // A process.json with a bad field names it.
    std::fs::write(&pfile, r#"{"cwd":"/","args":["sh"],"user":{"uid":"root","gid":0}}"#).unwrap();
    let err = brig.fails(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(err.contains("user.uid"), "{err}");

    let ps: Vec<i64> = serde_json::from_str(&brig.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(ps.len() >= 2, "{ps:?}");
    brig.ok(&["delete", "--force", &id]);
}

/// containerd's form of an exec with a terminal (`exec --detach --tty
/// --console-socket`) into `id`: the master arrives, the process's stdin is
/// a pseudo-terminal.
fn exec_tty_through_a_console_socket(brig: &Brig, id: &str) {
    let console = ConsoleSocket::new();
    let child = brig
        .command()
        .args(["exec", "--detach", "--tty", "--console-socket", console.path.to_str().unwrap(), id])
        .args(["sh", "-c", "tty; echo tty-done; sleep 1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let master = console.receive();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = brig_tests::read_until(&master, "tty-done");
    assert!(text.contains("/dev/pts/") && text.contains("tty-done"), "not a terminal: {text:?}");
}

#[test]
fn exec_with_a_terminal_through_a_console_socket() {
    // containerd's form: exec --detach --tty --console-socket.
    let brig = Brig::default();
    let (_bundle, id) = brig.detached_sleeper("tty");
    exec_tty_through_a_console_socket(&brig, &id);
    // runc's rule: a console socket needs --detach.
    let console2 = ConsoleSocket::new();
    let err = brig.fails(&["exec", "--tty", "--console-socket", console2.path.to_str().unwrap(), &id, "true"]);
    assert!(err.contains("console socket"), "{err}");
    brig.ok(&["delete", "--force", &id]);
}

/// The job can write its `/dev`: a `/dev/ptmx` it replaced (here with a
/// link to `/dev/null`) is not what an exec's terminal is made from, in a
/// job without a user namespace of its own (libcontainer's exec) or with
/// one (brig's): the terminal comes from the container's devpts.
#[test]
fn a_dev_ptmx_the_job_replaced_does_not_break_exec_tty() {
    let restricted = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    for brig in [Brig::default(), restricted] {
        let (_bundle, id) = brig.detached_sleeper("ptmx");
        brig.ok(&["exec", &id, "sh", "-c", "rm -f /dev/ptmx && ln -s null /dev/ptmx && test -L /dev/ptmx"]);
        exec_tty_through_a_console_socket(&brig, &id);
        brig.ok(&["delete", "--force", &id]);
    }
}

#[test]
fn create_with_a_terminal_through_a_console_socket() {
    let brig = Brig::default();
    let mut bundle = Bundle::new(&["sh", "-c", "tty; stty size; echo tty-job-done; sleep 1"]);
    bundle.set("/process/terminal", json!(true));
    // The terminal's first size is the spec's (`docker run -t`), as runc sets it.
    bundle.set("/process/consoleSize", json!({"height": 33, "width": 111}));
    let id = unique_id("ctty");
    let console = ConsoleSocket::new();
    let mut child = brig
        .command()
        .args([
            "create",
            "--bundle",
            bundle.path().to_str().unwrap(),
            "--console-socket",
            console.path.to_str().unwrap(),
            &id,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let master = console.receive();
    assert!(child.wait().unwrap().success());
    brig.ok(&["start", &id]);
    let out = brig_tests::read_until(&master, "tty-job-done");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("33 111"), "consoleSize: {out:?}");
    // Without a console socket, a terminal spec is refused.
    let id2 = unique_id("ctty");
    let err = brig.fails(&["create", "--bundle", bundle.path().to_str().unwrap(), &id2]);
    assert!(err.to_lowercase().contains("console"), "{err}");
}

/// Appends what can be read from `fd` until it is quiet for `quiet_ms`.
fn read_available(fd: &std::os::fd::OwnedFd, out: &mut String, quiet_ms: u16) {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(fd), nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(quiet_ms)).unwrap_or(0) == 0 {
            return;
        }
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(n) if n > 0 => out.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => return,
        }
    }
}

/// Runs `cmd` with a pseudo-terminal of `rows`x`cols` as its stdin, stdout
/// and stderr (as a person at a terminal would), types `input` once `prompt`
/// has appeared, and returns what appeared on the terminal, the exit code,
/// and whether the terminal's settings were as before afterwards.
fn on_a_terminal(mut cmd: Command, rows: u16, cols: u16, prompt: &str, input: &[u8]) -> (String, i32, bool) {
    let pty =
        nix::pty::openpty(Some(&nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }), None)
            .unwrap();
    let before = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    cmd.stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
    let mut child = cmd.spawn().unwrap();
    let mut out = brig_tests::read_until(&pty.master, prompt);
    assert!(out.contains(prompt), "no {prompt:?} on the terminal: {out:?}");
    nix::unistd::write(&pty.master, input).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        read_available(&pty.master, &mut out, 100);
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "still running: {out:?}");
    };
    // What the job wrote last.
    read_available(&pty.master, &mut out, 200);
    let after = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    let settings = |t: &nix::sys::termios::Termios| {
        (t.input_flags, t.output_flags, t.control_flags, t.local_flags, t.control_chars)
    };
    let same = settings(&after) == settings(&before);
    (out, status.code().unwrap_or(-1), same)
}

/// A foreground `run` or `exec` with a terminal and no `--console-socket`
/// relays the job's terminal to the caller's, as `runc run` and
/// `runc exec -t` do: the job is on a terminal of the caller's size, what
/// the caller types reaches it, its exit code is brig's, and the caller's
/// terminal is left as it was (not raw). Both exec paths: brig's own (the
/// job in a user namespace, `restricted`) and libcontainer's (`permissive`).
#[test]
fn a_foreground_run_or_exec_relays_the_jobs_terminal() {
    for profile in ["restricted", "permissive"] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        let mut bundle =
            Bundle::new(&["sh", "-c", "tty; stty size; echo ready; read line; echo \"got:$line\"; exit 3"]);
        bundle.set("/process/terminal", json!(true));
        let id = unique_id("rtty");
        let mut run = brig.command();
        run.args(["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let (out, code, restored) = on_a_terminal(run, 37, 101, "ready", b"hello there\r");
        assert!(out.contains("/dev/pts/"), "{profile}: not on a terminal: {out:?}");
        assert!(out.contains("37 101"), "{profile}: the caller's window size: {out:?}");
        assert!(out.contains("got:hello there"), "{profile}: the input did not reach the job: {out:?}");
        assert_eq!(code, 3, "{profile}: exit code: {out:?}");
        assert!(restored, "{profile}: the caller's terminal was left changed");
        brig.fails(&["state", &id]);

        let mut sleeper = Bundle::new(&["sleep", "60"]);
        sleeper.set("/process/terminal", json!(false));
        let id = unique_id("etty");
        brig.ok(&["run", "-d", "--bundle", sleeper.path().to_str().unwrap(), &id]);
        let mut exec = brig.command();
        exec.args(["exec", "-t", &id, "sh", "-c", "tty; stty size; echo ready; read line; echo \"got:$line\"; exit 4"]);
        let (out, code, restored) = on_a_terminal(exec, 21, 77, "ready", b"abc\r");
        assert!(out.contains("/dev/pts/") && out.contains("21 77"), "{profile}: exec's terminal: {out:?}");
        assert!(out.contains("got:abc"), "{profile}: exec's input: {out:?}");
        assert_eq!(code, 4, "{profile}: exec's exit code: {out:?}");
        assert!(restored, "{profile}: exec left the caller's terminal changed");
        brig.ok(&["delete", "-f", &id]);
    }
}

/// Input the job does not read waits in brig, which goes on copying output
/// and forwarding signals: a paste larger than the terminal's buffer into a
/// job that is not reading does not stop a SIGTERM from reaching it.
#[test]
fn a_relayed_terminal_forwards_signals_while_input_waits() {
    let brig = Brig::default();
    // Raw mode: the terminal holds back input it has no room for (a
    // canonical one would drop it).
    let mut bundle = Bundle::new(&[
        "sh",
        "-c",
        "stty raw -echo; trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    bundle.set("/process/terminal", json!(true));
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut child = brig
        .command()
        .args(["run", "--bundle", bundle.path().to_str().unwrap(), &unique_id("paste")])
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    let mut out = brig_tests::read_until(&pty.master, "ready");
    assert!(out.contains("ready"), "{out:?}");
    // 1 MiB: far more than the job's terminal takes.
    let master = pty.master.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = nix::unistd::write(&master, &vec![b'x'; 1024 * 1024]);
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        read_available(&pty.master, &mut out, 50);
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("brig did not forward SIGTERM while input waited: {}", out.len());
        }
    };
    read_available(&pty.master, &mut out, 200);
    assert!(out.contains("got-term"), "{}", &out[out.len().saturating_sub(300)..]);
    assert_eq!(status.code(), Some(7));
}

#[test]
fn annotations_are_preserved_in_state() {
    let brig = Brig::default();
    let mut bundle = Bundle::new(&["true"]);
    bundle.annotate("org.example.team", "search").annotate("io.kubernetes.pod.name", "p1");
    let id = unique_id("ann");
    brig.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let s = brig.state(&id);
    assert_eq!(s["annotations"]["org.example.team"], "search");
    assert_eq!(s["annotations"]["io.kubernetes.pod.name"], "p1");
    schema_check(&s);
    let list: Vec<Value> = serde_json::from_str(&brig.ok(&["list", "--format", "json"])).unwrap();
    assert!(list.iter().any(|c| c["id"] == id.as_str() && c["status"] == "created"), "{list:?}");
    assert!(brig.ok(&["list", "-q"]).lines().any(|l| l == id));
    assert!(brig.ok(&["list"]).starts_with("ID"));
    brig.ok(&["delete", &id]);
}

/// Hooks get the OCI state on stdin as runc gives it: the caller's bundle
/// (not brig's copy of the spec), the container's own annotations (not
/// brig's markers for libcontainer). A failing poststop hook is logged and
/// the others still run; `delete` succeeds (runtime-spec lifecycle).
#[test]
fn hooks_get_the_callers_state_and_a_failing_poststop_hook_does_not_block_delete() {
    let brig = Brig::default();
    let hooks = tempfile::tempdir().unwrap();
    let hook = hooks.path().join("save-state");
    std::fs::write(&hook, "#!/bin/sh\ncat > \"$1\"\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let saving = |name: &str| json!({"path": hook, "args": ["save-state", hooks.path().join(format!("{name}.json"))]});
    let mut bundle = Bundle::new(&["true"]);
    bundle.annotate("org.example.team", "search");
    bundle.set(
        "/hooks",
        json!({
            "prestart": [saving("prestart")],
            "createRuntime": [saving("createRuntime")],
            "poststart": [saving("poststart")],
            "poststop": [{"path": "/bin/false"}, saving("poststop")]
        }),
    );
    let id = unique_id("hooks");
    brig.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    brig.ok(&["start", &id]);
    brig.wait_status(&id, "stopped");
    let (code, out, err) = brig.cmd_files(&["delete", &id]);
    assert_eq!(code, 0, "a failing poststop hook must not fail delete: {err}{out}");
    assert!(err.contains("poststop hook failed"), "the failure is logged: {err}");
    assert!(err.contains("hook 0 (`/bin/false`)"), "the failing hook is named: {err}");
    assert!(!brig.root.join(&id).exists(), "the container is deleted");
    let bundle_dir = std::fs::canonicalize(bundle.path()).unwrap();
    for name in ["prestart", "createRuntime", "poststart", "poststop"] {
        let text = std::fs::read_to_string(hooks.path().join(format!("{name}.json")))
            .unwrap_or_else(|e| panic!("the {name} hook did not run: {e}"));
        let state: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(state["id"], id.as_str(), "{name}: {state}");
        assert_eq!(state["bundle"], bundle_dir.display().to_string(), "{name}: {state}");
        assert_eq!(state["annotations"], json!({"org.example.team": "search"}), "{name}: {state}");
    }
}

/// A failing hook of `create` names itself: which of the phase's hooks, and
/// its path (a spec may list several; "exited with non-zero exit code: 3"
/// alone did not say whose).
#[test]
fn a_failing_hook_is_named() {
    let brig = Brig::default();
    let mut bundle = Bundle::new(&["true"]);
    bundle.set(
        "/hooks",
        json!({"createRuntime": [{"path": "/bin/true"}, {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]}),
    );
    let id = unique_id("badhook");
    let err = brig.fails(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    assert!(err.contains("hook 1 (`/bin/sh`)") && err.contains("exit code: 3"), "{err}");
    assert!(!brig.root.join(&id).exists());
}

/// `memory.disableOOMKiller` is applied, as runc does, where a profile lets
/// it through (`permissive`); profiles with cgroup limits tighten it
/// (attacks.rs). cgroup v2 has no such switch.
#[test]
fn disable_oom_killer_is_applied() {
    let brig = Brig::default();
    let mut bundle = Bundle::new(&["sleep", "30"]);
    let id = unique_id("oomctl");
    let cgroup_path = format!("/brig-test/{id}");
    bundle
        .set("/linux/cgroupsPath", json!(cgroup_path))
        .set("/linux/resources/memory", json!({"limit": 64 * 1024 * 1024, "disableOOMKiller": true}));
    brig.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let control = std::fs::read_to_string(cgroup_dir("memory", &cgroup_path).join("memory.oom_control")).unwrap();
        assert!(control.lines().any(|l| l == "oom_kill_disable 1"), "{control}");
        // An update leaves it as the job was created.
        brig.ok(&["update", "--memory", "33554432", &id]);
        let control = std::fs::read_to_string(cgroup_dir("memory", &cgroup_path).join("memory.oom_control")).unwrap();
        assert!(control.lines().any(|l| l == "oom_kill_disable 1"), "after update: {control}");
    }
    brig.ok(&["delete", "--force", &id]);
}

#[test]
fn cgroup_limits_from_the_spec_are_applied() {
    let brig = Brig::default();
    let mut bundle = Bundle::new(&["sleep", "30"]);
    let id = unique_id("cg");
    let cgroup_path = format!("/brig-test/{id}");
    bundle
        .set("/linux/cgroupsPath", json!(cgroup_path))
        .set("/linux/resources/memory", json!({"limit": 64 * 1024 * 1024, "swap": 64 * 1024 * 1024}))
        .set("/linux/resources/pids", json!({"limit": 42}))
        .set("/linux/resources/cpu", json!({"quota": 50000, "period": 100000, "shares": 512}));
    brig.ok(&["run", "--detach", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let read = |controller: &str, file: &str| {
        std::fs::read_to_string(cgroup_dir(controller, &cgroup_path).join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    if unified {
        assert_eq!(read("", "memory.max").trim(), "67108864");
        assert_eq!(read("", "pids.max").trim(), "42");
        assert_eq!(read("", "cpu.max").trim(), "50000 100000");
    } else {
        assert_eq!(read("memory", "memory.limit_in_bytes").trim(), "67108864");
        assert_eq!(read("pids", "pids.max").trim(), "42");
        assert_eq!(read("cpu", "cpu.cfs_quota_us").trim(), "50000");
        assert_eq!(read("cpu", "cpu.cfs_period_us").trim(), "100000");
        assert_eq!(read("cpu", "cpu.shares").trim(), "512");
    }
    // The init is in the cgroup.
    let pid = brig.state(&id)["pid"].as_i64().unwrap().to_string();
    assert!(read("pids", "cgroup.procs").lines().any(|l| l == pid));
    if !unified {
        // In every v1 hierarchy with a controller libcontainer manages: the
        // init moved itself as a whole (third_party/README.md), not a thread.
        let managed = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"];
        let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        for line in membership.lines() {
            let mut fields = line.splitn(3, ':');
            let (controllers, path) = (fields.nth(1).unwrap_or(""), fields.next().unwrap_or(""));
            if controllers.split(',').any(|c| managed.contains(&c)) {
                assert!(path.ends_with(&cgroup_path), "init {pid} not in {cgroup_path}: {line}");
            }
        }
    }

    // update --resources - (containerd's form) changes the limits.
    let mut child = brig
        .command()
        .args(["update", "--resources", "-", &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids":{"limit":21},"memory":{"limit":33554432,"swap":33554432}}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if unified {
        assert_eq!(read("", "pids.max").trim(), "21");
    } else {
        assert_eq!(read("pids", "pids.max").trim(), "21");
        assert_eq!(read("memory", "memory.limit_in_bytes").trim(), "33554432");
    }
    // A malformed update names the field.
    let mut child = brig
        .command()
        .args(["update", "--resources", "-", &id])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(br#"{"pids":{"limit":"many"}}"#).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pids.limit"));

    // events --stats prints runc's stats record (runc's `types.Stats`
    // names: what tools written against `runc events` read). Some CPU
    // burnt first, so that the CPU times' units show.
    brig.ok(&["exec", &id, "sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"]);
    let ev: Value = serde_json::from_str(brig.ok(&["events", "--stats", &id]).trim()).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    let data = &ev["data"];
    assert_eq!(data["pids"]["limit"], 21, "{data}");
    assert!(data["pids"]["current"].as_u64().is_some_and(|n| n >= 1), "{data}");
    assert!(data["memory"]["usage"]["usage"].as_u64().is_some_and(|n| n > 0), "{data}");
    assert!(data["memory"]["usage"]["failcnt"].is_u64() && data["memory"]["kernelTCP"].is_object(), "{data}");
    if !unified {
        assert_eq!(data["memory"]["usage"]["limit"], 33554432, "{data}");
        assert!(data["cpuset"]["cpus"].as_array().is_some_and(|c| !c.is_empty()), "{data}");
    }
    assert!(data["cpu"]["usage"]["total"].as_u64().is_some_and(|n| n > 0), "{data}");
    assert!(data["cpu"]["usage"]["user"].is_u64() && data["cpu"]["usage"]["kernel"].is_u64(), "{data}");
    // All in nanoseconds, as runc reports them (cgroup v1's cpuacct.stat
    // counts clock ticks, v2's cpu.stat microseconds): user + kernel is
    // about the total (ticks round to 10 ms each).
    let usage = &data["cpu"]["usage"];
    let (total, split) =
        (usage["total"].as_u64().unwrap(), usage["user"].as_u64().unwrap() + usage["kernel"].as_u64().unwrap());
    assert!(total >= 100_000_000, "the loop burnt under 0.1 s of CPU: {data}");
    assert!(
        split >= total / 4 && split <= total * 2 + 20_000_000,
        "user + kernel {split} against total {total}: {data}"
    );
    // Per-CPU figures and cpuset flags exist on cgroup v1 only (runc leaves
    // them out on v2); pressure on v2 only.
    assert_eq!(data["cpu"]["usage"]["percpu"].is_array(), !unified, "{data}");
    assert_eq!(data["cpu"]["psi"]["some"]["total"].is_u64(), unified, "{data}");
    assert!(data["network_interfaces"].is_null() && data["intel_rdt"].is_object() && data["blkio"].is_object());

    brig.ok(&["delete", "--force", &id]);
    assert!(!cgroup_dir("pids", &cgroup_path).exists(), "cgroup left behind");
}

#[test]
fn pause_and_resume() {
    let brig = Brig::default();
    let (_bundle, id) = brig.detached_sleeper("pause");
    brig.ok(&["pause", &id]);
    assert_eq!(brig.status(&id), "paused");
    brig.ok(&["resume", &id]);
    assert_eq!(brig.status(&id), "running");
    // A paused container can be force-deleted.
    brig.ok(&["pause", &id]);
    brig.ok(&["delete", "--force", &id]);
}

/// `kill --all` of a paused job signals every process and leaves the job
/// paused, as its state says (it froze the cgroup to signal, then thawed it:
/// the job ran again while `state` said paused). SIGKILL still ends it.
#[test]
fn kill_all_of_a_paused_job_leaves_it_paused() {
    let brig = Brig::default();
    let id = unique_id("pausedkill");
    let cgroup_path = format!("/brig-test/{id}");
    let mut bundle = Bundle::new(&["sh", "-c", "trap '' USR1; while :; do sleep 1; done"]);
    bundle.set("/linux/cgroupsPath", json!(cgroup_path));
    brig.ok(&["run", "-d", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let frozen = || {
        let v2 = cgroup_dir("", &cgroup_path).join("cgroup.freeze");
        match std::fs::read_to_string(&v2) {
            Ok(text) => text.trim() == "1",
            Err(_) => std::fs::read_to_string(cgroup_dir("freezer", &cgroup_path).join("freezer.state"))
                .unwrap()
                .trim()
                .eq("FROZEN"),
        }
    };
    brig.ok(&["pause", &id]);
    assert!(frozen());
    brig.ok(&["kill", "--all", &id, "USR1"]);
    assert_eq!(brig.status(&id), "paused");
    assert!(frozen(), "kill --all thawed a paused job");
    brig.ok(&["resume", &id]);
    assert_eq!(brig.status(&id), "running");
    assert!(!frozen());
    brig.ok(&["pause", &id]);
    brig.ok(&["kill", "--all", &id, "KILL"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while brig.status(&id) != "stopped" {
        assert!(std::time::Instant::now() < deadline, "SIGKILL did not end a paused job");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    brig.ok(&["delete", &id]);
}

#[test]
fn kill_all_and_signal_names() {
    let brig = Brig::default();
    let bundle = Bundle::new(&["sh", "-c", "sleep 30 & sleep 30"]);
    let id = unique_id("killall");
    brig.ok(&["run", "-d", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let err = brig.fails(&["kill", &id, "SIGBOGUS"]);
    assert!(err.contains("SIGBOGUS"), "{err}");
    brig.ok(&["kill", "--all", &id, "9"]);
    brig.wait_status(&id, "stopped");
    let err = brig.fails(&["kill", &id, "TERM"]);
    assert!(err.contains("not running"), "{err}");
    brig.ok(&["delete", &id]);
}

/// Signals by number are the signals with those numbers (containerd and
/// Podman pass numbers): 5 is SIGTRAP and 7 SIGBUS; 0 checks the init
/// exists; the real-time signals (34-64, `RTMIN+n`, glibc's RTMIN being
/// 34) are sent too.
#[test]
fn kill_sends_the_signal_a_number_names() {
    let brig = Brig::default();
    let script = "for s in 5 7 10 37 39; do trap \"echo got-$s\" $s; done; echo ready; \
                  while true; do sleep 0.05; done";
    let bundle = Bundle::new(&["sh", "-c", script]);
    let id = unique_id("signum");
    let out_file = brig.dir.path().join("signum.out");
    let status = brig
        .command()
        .args(["run", "-d", "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let wait_for = |needle: &str| {
        for _ in 0..200 {
            if std::fs::read_to_string(&out_file).unwrap_or_default().contains(needle) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("never got `{needle}`: {}", std::fs::read_to_string(&out_file).unwrap_or_default());
    };
    wait_for("ready");
    // busybox sh prints the trap for a number by that number.
    for (signal, got) in
        [("5", "got-5"), ("7", "got-7"), ("SIGUSR1", "got-10"), ("37", "got-37"), ("RTMIN+5", "got-39")]
    {
        brig.ok(&["kill", &id, signal]);
        wait_for(got);
    }
    brig.ok(&["kill", &id, "0"]);
    assert_eq!(brig.status(&id), "running", "0 only checks");
    // A pid 1 does not take a signal it does not handle (runc's jobs are
    // pid 1): SIGTERM to a job that has no handler for it changes nothing,
    // as `docker stop` of such a job then waits for SIGKILL.
    let plain = Bundle::new(&["sleep", "30"]);
    let plain_id = unique_id("pid1");
    brig.ok(&["run", "-d", "--bundle", plain.path().to_str().unwrap(), &plain_id]);
    brig.ok(&["kill", &plain_id, "TERM"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(brig.status(&plain_id), "running", "TERM without a handler");
    brig.ok(&["kill", &plain_id, "KILL"]);
    brig.wait_status(&plain_id, "stopped");
    brig.ok(&["delete", &plain_id]);
    // But a signal the job blocks is queued for it, as for a pid 1 (tini and
    // dumb-init block every signal and take them with sigwait).
    let waiter = Bundle::new(&["/bin/brig-probe", "sigwait-term"]);
    let waiter_id = unique_id("sigwait");
    let waiter_out = brig.dir.path().join("sigwait.out");
    let status = brig
        .command()
        .args(["run", "-d", "--bundle", waiter.path().to_str().unwrap(), &waiter_id])
        .stdout(std::fs::File::create(&waiter_out).unwrap())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let read_out = || std::fs::read_to_string(&waiter_out).unwrap_or_default();
    for _ in 0..200 {
        if read_out().contains("waiting") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    brig.ok(&["kill", &waiter_id, "TERM"]);
    brig.wait_status(&waiter_id, "stopped");
    assert!(read_out().contains("got-signal=15"), "{}", read_out());
    brig.ok(&["delete", &waiter_id]);
    for bad in ["65", "RTMIN+40"] {
        let err = brig.fails(&["kill", &id, bad]);
        assert!(err.contains("unknown signal"), "{bad}: {err}");
    }
    brig.ok(&["delete", "--force", &id]);
}

/// A job starts with no signal ignored, as under runc, whatever brig's
/// process ignores: SIGPIPE (Rust's runtime ignores it; `yes | head` must
/// end quietly), SIGINT and SIGQUIT (a shell's background job ignores them).
/// The same for an exec.
#[test]
fn a_job_inherits_no_ignored_signal() {
    let brig = Brig::default();
    let bundle = Bundle::new(&["sh", "-c", "grep SigIgn /proc/self/status; sleep 30"]);
    let id = unique_id("sigign");
    let out_file = brig.dir.path().join("sigign.out");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' INT QUIT; exec \"$@\"")
        .arg("sh")
        .arg(brig_tests::brig_bin())
        .arg("--root")
        .arg(&brig.root)
        .arg("--config")
        .arg(&brig.config)
        .args(["run", "-d", "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(Stdio::null());
    assert!(cmd.status().unwrap().success());
    for _ in 0..200 {
        if std::fs::read_to_string(&out_file).unwrap_or_default().contains("SigIgn") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(text.contains("SigIgn:\t0000000000000000"), "the job: {text}");
    let out = brig.ok(&["exec", &id, "grep", "SigIgn", "/proc/self/status"]);
    assert!(out.contains("SigIgn:\t0000000000000000"), "an exec: {out}");
    brig.ok(&["delete", "--force", &id]);
}

/// Two `delete --force` of one container at once (a shim and an
/// orchestrator cleaning up) both succeed, as with runc.
#[test]
fn concurrent_force_deletes_both_succeed() {
    let brig = Brig::default();
    for round in 0..5 {
        let bundle = Bundle::new(&["sleep", "30"]);
        let id = unique_id("dd");
        brig.ok(&["run", "-d", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let spawn = || {
            brig.command()
                .args(["delete", "--force", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for (who, child) in [("first", a), ("second", b)] {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}, {who}: {}", String::from_utf8_lossy(&out.stderr));
        }
        assert!(!brig.root.join(&id).exists());
    }
}

/// The working directory is made when the image lacks it (runc does;
/// `docker run -w /new/dir`), also under a read-only root; a relative one is
/// refused naming the field. An `exec` that fails itself exits 255 (runc),
/// so a caller can tell it from the process's own exit code.
#[test]
fn a_missing_working_directory_is_made_and_exec_failures_exit_255() {
    let brig = Brig::default();
    let mut bundle = Bundle::new(&["sh", "-c", "pwd; sleep 30"]);
    bundle.set("/process/cwd", json!("/work/new/dir")).set("/root/readonly", json!(true));
    let id = unique_id("cwd");
    let (code, out, err) = brig.cmd_files(&["run", "-d", "--bundle", bundle.path().to_str().unwrap(), &id]);
    assert_eq!(code, 0, "{err}");
    let _ = out;
    let out = brig.ok(&["exec", &id, "pwd"]);
    assert_eq!(out.trim(), "/work/new/dir");
    let (code, _, _) = brig.cmd_files(&["exec", &id, "/no/such/program"]);
    assert_eq!(code, 255, "exec of a missing program");
    let (code, _, _) = brig.cmd_files(&["exec", &id, "sh", "-c", "exit 3"]);
    assert_eq!(code, 3, "the process's own exit code");
    let (code, _, err) = brig.cmd_files(&["exec", "--cwd", "relative", &id, "true"]);
    assert_eq!(code, 255, "{err}");
    brig.ok(&["delete", "--force", &id]);
    let mut bundle = Bundle::new(&["true"]);
    bundle.set("/process/cwd", json!("relative/dir"));
    let (code, _, err) = brig.run(&bundle, &unique_id("cwd"));
    assert_ne!(code, 0);
    assert!(err.contains("process.cwd"), "{err}");
}

/// One id under two state roots (`--root`), neither asking for a cgroup:
/// each gets its own, so a forced delete in one root leaves the other's job
/// running (runc's semantics of several roots).
#[test]
fn the_same_id_under_two_roots_shares_nothing() {
    let (a, b) = (Brig::default(), Brig::default());
    let bundle = Bundle::new(&["sleep", "30"]);
    let id = unique_id("tworoots");
    a.ok(&["run", "-d", "--bundle", bundle.path().to_str().unwrap(), &id]);
    b.ok(&["run", "-d", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let pid_b = b.state(&id)["pid"].as_i64().unwrap();
    a.ok(&["delete", "--force", &id]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(std::path::Path::new(&format!("/proc/{pid_b}")).exists(), "the other root's job was killed");
    assert_eq!(b.status(&id), "running");
    b.ok(&["delete", "--force", &id]);
}

/// While `create` runs (here a prestart hook takes a second) the container
/// is "creating", not a stopped one a poller would take for exited.
#[test]
fn a_container_being_created_is_creating() {
    let brig = Brig::default();
    let mut bundle = Bundle::new(&["true"]);
    bundle.set("/hooks", json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "1"]}]}));
    let id = unique_id("creating");
    let mut create = brig
        .command()
        .args(["create", "--bundle", bundle.path().to_str().unwrap(), &id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..100 {
        let out = brig.command().args(["state", &id]).output().unwrap();
        if out.status.success() {
            let s: Value = serde_json::from_slice(&out.stdout).unwrap();
            seen.push(s["status"].as_str().unwrap_or_default().to_string());
        }
        if create.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(create.wait().unwrap().success());
    assert!(seen.iter().any(|s| s == "creating"), "{seen:?}");
    assert!(!seen.iter().any(|s| s == "stopped"), "{seen:?}");
    assert_eq!(brig.status(&id), "created");
    brig.ok(&["delete", &id]);
}

/// A signal to a foreground `brig exec` reaches the exec'd process (runc
/// forwards them), whose exit code comes back; nothing is left running.
#[test]
fn signals_reach_a_foreground_exec() {
    let brig = Brig::default();
    let bundle = Bundle::new(&["sleep", "30"]);
    let id = unique_id("execsig");
    brig.ok(&["run", "-d", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let out_file = brig.dir.path().join("exec.out");
    let mut exec = brig
        .command()
        .args(["exec", &id, "sh", "-c", "trap 'exit 42' TERM; echo ready; while true; do sleep 0.05; done"])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::fs::read_to_string(&out_file).unwrap_or_default().contains("ready") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(exec.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = exec.wait().unwrap();
    assert_eq!(status.code(), Some(42), "the exec'd process's own exit code");
    let ps = brig.ok(&["exec", &id, "ps"]);
    assert!(!ps.contains("trap"), "{ps}");
    brig.ok(&["delete", "--force", &id]);
}

#[test]
fn clear_errors_for_bad_input() {
    let brig = Brig::default();
    // Unknown id.
    for cmd in [
        &["state", "nope"][..],
        &["start", "nope"],
        &["kill", "nope", "9"],
        &["delete", "nope"],
        &["exec", "nope", "true"],
    ] {
        let err = brig.fails(cmd);
        assert!(err.contains("`nope` does not exist"), "{cmd:?}: {err}");
    }
    // Invalid id.
    let bundle = Bundle::new(&["true"]);
    let err = brig.fails(&["create", "--bundle", bundle.path().to_str().unwrap(), "../evil"]);
    assert!(err.contains("invalid container id"), "{err}");
    // Duplicate id.
    let id = unique_id("dup");
    brig.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    let err = brig.fails(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(brig.status(&id), "created", "the first container must be untouched");
    brig.ok(&["delete", &id]);
    // Missing config.json.
    let empty = tempfile::tempdir().unwrap();
    let err = brig.fails(&["create", "--bundle", empty.path().to_str().unwrap(), &unique_id("x")]);
    assert!(err.contains("config.json"), "{err}");
    // Malformed config.json: the JSON path of the bad field.
    let mut bad = Bundle::new(&["true"]);
    bad.set("/process/rlimits", json!([{"type": "RLIMIT_NOFILE", "hard": "lots", "soft": 1}]));
    let err = brig.fails(&["create", "--bundle", bad.path().to_str().unwrap(), &unique_id("x")]);
    assert!(err.contains("process.rlimits[0].hard"), "{err}");
    std::fs::write(bad.path().join("config.json"), "{ not json").unwrap();
    let err = brig.fails(&["create", "--bundle", bad.path().to_str().unwrap(), &unique_id("x")]);
    assert!(err.contains("config.json"), "{err}");
    // Missing rootfs.
    let mut norootfs = Bundle::new(&["true"]);
    norootfs.set("/root/path", json!("does-not-exist"));
    let err = brig.fails(&["create", "--bundle", norootfs.path().to_str().unwrap(), &unique_id("x")]);
    assert!(err.contains("does-not-exist") && err.contains("root"), "{err}");
    // A program that does not exist in the image.
    let missing = Bundle::new(&["no-such-program"]);
    let err = brig.fails(&["create", "--bundle", missing.path().to_str().unwrap(), &unique_id("x")]);
    assert!(err.contains("no-such-program") && err.contains("not found"), "{err}");
    // Nothing is left behind by the failures.
    let listed = brig.ok(&["list", "-q"]);
    assert!(listed.trim().is_empty(), "{listed}");
}

#[test]
fn refuses_to_launch_without_a_configuration() {
    let brig = Brig::default();
    let bundle = Bundle::new(&["true"]);
    let out = brig_tests::brig_command_without_config(&brig)
        .args([
            "--config",
            "/nonexistent/brig/config.toml",
            "run",
            "--bundle",
            bundle.path().to_str().unwrap(),
            &unique_id("nocfg"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("brig init") && err.contains("/nonexistent/brig/config.toml"), "{err}");
}

#[test]
fn json_log_lines_for_the_shim() {
    let brig = Brig::default();
    let log = brig.dir.path().join("log.json");
    let out = brig
        .command()
        .args(["--log", log.to_str().unwrap(), "--log-format", "json", "state", "missing-container"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("missing-container"), "{last}");
    assert!(last["time"].is_string());
}

#[test]
fn spec_seccomp_is_enforced() {
    // Docker and Podman send their seccomp profile in linux.seccomp; brig must
    // enforce it (never drop it). Here: deny mkdir/mkdirat with EPERM.
    let brig = Brig::default();
    let mut bundle = Bundle::new(&["sh", "-c", "mkdir /tmp/x 2>&1; echo rc=$?"]);
    bundle.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        }),
    );
    bundle.push(
        "/mounts",
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}),
    );
    let (code, out, err) = brig.run(&bundle, &unique_id("seccomp"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Operation not permitted") && out.contains("rc=1"), "mkdir was not denied: {out}");
    // The filter applies to exec'd processes too.
    let mut long = Bundle::new(&["sleep", "30"]);
    long.set("/linux/seccomp", bundle.config["linux"]["seccomp"].clone());
    long.push(
        "/mounts",
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}),
    );
    let id = unique_id("seccomp");
    brig.ok(&["run", "-d", "--bundle", long.path().to_str().unwrap(), &id]);
    let out = brig.ok(&["exec", &id, "sh", "-c", "mkdir /tmp/y 2>&1; echo rc=$?"]);
    assert!(out.contains("Operation not permitted") && out.contains("rc=1"), "exec escaped the filter: {out}");
    brig.ok(&["delete", "--force", &id]);
    // And without the filter it works (the filter is what denies it).
    let mut open = Bundle::new(&["sh", "-c", "mkdir /tmp/x 2>&1; echo rc=$?"]);
    open.push(
        "/mounts",
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}),
    );
    let (_, out, _) = brig.run(&open, &unique_id("seccomp"));
    assert!(out.contains("rc=0"), "{out}");
}

#[test]
fn features_spec_and_version() {
    let brig = Brig::default();
    let f: Value = serde_json::from_str(&brig.ok(&["features"])).unwrap();
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(f["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n == "user"));
    // runc's layout, which Docker and go-runc parse: `<name> version X`,
    // `commit:`, `spec:`; `-v` as runc.
    let v = brig.ok(&["--version"]);
    let lines: Vec<&str> = v.lines().collect();
    assert!(lines[0].starts_with("brig version "), "{v}");
    assert!(lines[1].starts_with("commit: ") && lines[2].starts_with("spec: 1."), "{v}");
    assert_eq!(brig.ok(&["-v"]), v);
    // A pid file in a directory that does not exist fails the create.
    let bundle = Bundle::new(&["true"]);
    let id = unique_id("pidfile");
    let err = brig.fails(&[
        "create",
        "--pid-file",
        "/nonexistent-dir/x.pid",
        "--bundle",
        bundle.path().to_str().unwrap(),
        &id,
    ]);
    assert!(err.contains("/nonexistent-dir"), "{err}");
    assert!(!brig.root.join(&id).exists());
    let dir = tempfile::tempdir().unwrap();
    brig.ok(&["spec", "--rootless", "--bundle", dir.path().to_str().unwrap()]);
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap()).unwrap();
    assert!(spec["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "user"));
    // spec refuses to overwrite.
    brig.fails(&["spec", "--bundle", dir.path().to_str().unwrap()]);
}

#[test]
fn exec_joins_the_containers_cgroup_and_spec() {
    // No cgroupsPath in the bundle: brig chooses one, and exec'd processes
    // must land in it (not in a cgroup of their own), under the effective spec.
    let brig = Brig::default();
    let (bundle, id) = brig.detached_sleeper("execcg");
    let init = brig.state(&id)["pid"].as_i64().unwrap();
    let pid_file = brig.dir.path().join("e.pid");
    brig.ok(&["exec", "--detach", "--pid-file", pid_file.to_str().unwrap(), &id, "sleep", "5"]);
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let cgroups = |p: i64| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    let pick = |text: String| -> Vec<String> {
        let mut v: Vec<String> =
            text.lines().filter(|l| !l.contains("name=systemd") && !l.starts_with("0::")).map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(pick(cgroups(pid)), pick(cgroups(init)), "exec'd process is not in the container's cgroups");
    assert!(cgroups(init).contains(&format!("/brig/{id}")), "{}", cgroups(init));
    // `state` still reports the caller's bundle.
    assert_eq!(brig.state(&id)["bundle"], bundle.path().canonicalize().unwrap().to_str().unwrap());
    brig.ok(&["delete", "--force", &id]);
    let leftovers: Vec<_> = std::fs::read_dir("/sys/fs/cgroup/pids")
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().contains(&format!(":youki:{id}"))).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_reader_that_goes_away_ends_brig_quietly() {
    // `brig features | head -c0`, `brig state ID | true`: standard output's
    // reader is gone. brig ends with 141 (128 + SIGPIPE) as runc does, with
    // no panic or backtrace on stderr.
    let brig = Brig::default();
    let (_bundle, id) = brig.detached_sleeper("pipe");
    for args in [vec!["features"], vec!["state", id.as_str()], vec!["list"], vec!["ps", id.as_str()]] {
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        drop(read_end);
        let out = brig.command().args(&args).stdout(Stdio::from(write_end)).stderr(Stdio::piped()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{args:?}: {stderr}");
    }
    brig.ok(&["delete", "--force", &id]);
}

/// A root filesystem of its own (busybox and its applets), for tests that
/// plant symlinks and files in it.
fn private_rootfs() -> tempfile::TempDir {
    let root = tempfile::Builder::new().prefix("brig-rootfs-").tempdir().unwrap();
    for d in ["bin", "dev", "etc", "proc", "sys", "tmp"] {
        std::fs::create_dir_all(root.path().join(d)).unwrap();
    }
    std::fs::copy(brig_tests::rootfs().join("bin/busybox"), root.path().join("bin/busybox")).unwrap();
    for applet in ["sh", "grep", "cat", "test"] {
        std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet)).unwrap();
    }
    root
}

/// Mount destinations are made and mounted inside the root filesystem, as
/// the container will see it, whatever symlinks the image plants on the way
/// (absolute ones, `..` chains), and a file on the way fails the launch.
/// (libcontainer makes missing destinations with brig's patch 3 of
/// third_party/README.md, pathrs' `mkdir_all` without its procfs re-open.)
#[test]
fn mount_destinations_stay_inside_the_rootfs() {
    let brig = Brig::default();
    let rootfs = private_rootfs();
    let r = rootfs.path();
    let tag = unique_id("esc");
    // A host directory an absolute symlink in the image names.
    let host_dir = std::env::temp_dir().join(format!("brig-escape-{tag}"));
    std::fs::create_dir_all(&host_dir).unwrap();
    // The same path exists in the rootfs: there is where the symlink leads.
    std::fs::create_dir_all(r.join(host_dir.strip_prefix("/").unwrap())).unwrap();
    std::os::unix::fs::symlink(&host_dir, r.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", r.join("etc/up")).unwrap();
    let up_name = format!("brig-up-{tag}");

    let mut bundle = Bundle::new(&[
        "sh",
        "-c",
        &format!(
            "grep -q ' {hd}/made/deep ' /proc/self/mountinfo && grep -q ' /{up}/x ' /proc/self/mountinfo",
            hd = host_dir.display(),
            up = up_name
        ),
    ]);
    bundle.set("/root", json!({ "path": r, "readonly": false }));
    bundle.push("/mounts", json!({ "destination": "/abs/made/deep", "type": "tmpfs", "source": "tmpfs" }));
    bundle
        .push("/mounts", json!({ "destination": format!("/etc/up/{up_name}/x"), "type": "tmpfs", "source": "tmpfs" }));
    let (code, out, err) = brig.run(&bundle, &unique_id("mnt"));
    assert_eq!(code, 0, "the mounts are where the container sees them\n{out}\n{err}");

    // Made inside the rootfs, where the symlinks lead within it...
    let inside = r.join(host_dir.strip_prefix("/").unwrap()).join("made/deep");
    assert!(inside.is_dir(), "{} was not made", inside.display());
    assert!(r.join(&up_name).join("x").is_dir());
    // ...and nothing on the host.
    assert_eq!(std::fs::read_dir(&host_dir).unwrap().count(), 0, "a directory was made on the host");
    assert!(!std::path::Path::new("/").join(&up_name).exists(), "a directory was made in the host's /");

    // A symlink that dangles inside the rootfs (its target exists only on
    // the host): refused, as pathrs refuses it, and nothing made anywhere.
    let host_only = std::env::temp_dir().join(format!("brig-escape-only-{tag}"));
    std::fs::create_dir_all(&host_only).unwrap();
    std::os::unix::fs::symlink(&host_only, r.join("dangling")).unwrap();
    let mut bundle = Bundle::new(&["true"]);
    bundle.set("/root", json!({ "path": r, "readonly": false }));
    bundle.push("/mounts", json!({ "destination": "/dangling/sub", "type": "tmpfs", "source": "tmpfs" }));
    let (code, _, err) = brig.run(&bundle, &unique_id("mnt"));
    assert_ne!(code, 0, "a mount through a dangling symlink must fail");
    assert!(err.contains("/dangling/sub"), "the error names the mount: {err}");
    assert_eq!(std::fs::read_dir(&host_only).unwrap().count(), 0, "a directory was made on the host");
    assert!(!r.join(host_only.strip_prefix("/").unwrap()).exists());
    let _ = std::fs::remove_dir_all(&host_only);

    // A regular file on the way: refused, nothing made.
    std::fs::write(r.join("etc/plain"), "x").unwrap();
    let mut bundle = Bundle::new(&["true"]);
    bundle.set("/root", json!({ "path": r, "readonly": false }));
    bundle.push("/mounts", json!({ "destination": "/etc/plain/sub", "type": "tmpfs", "source": "tmpfs" }));
    let (code, _, err) = brig.run(&bundle, &unique_id("mnt"));
    assert_ne!(code, 0, "a mount under a regular file must fail");
    assert!(!err.is_empty());
    assert_eq!(std::fs::read_to_string(r.join("etc/plain")).unwrap(), "x");

    // A file bind mount onto a symlink that leads out of the rootfs lands
    // inside it (or fails), never on the host's file.
    let host_file = std::env::temp_dir().join(format!("brig-escape-file-{tag}"));
    std::fs::write(&host_file, "host").unwrap();
    std::os::unix::fs::symlink(&host_file, r.join("etc/hostlink")).unwrap();
    let source = brig.dir.path().join("bound");
    std::fs::write(&source, "bound").unwrap();
    let mut bundle = Bundle::new(&["cat", "/etc/hostlink"]);
    bundle.set("/root", json!({ "path": r, "readonly": false }));
    bundle.push(
        "/mounts",
        json!({ "destination": "/etc/hostlink", "type": "bind", "source": source, "options": ["bind", "ro"] }),
    );
    let (code, out, err) = brig.run(&bundle, &unique_id("mnt"));
    assert_ne!(code, 0, "the symlink dangles inside the rootfs: nothing to mount on\n{out}\n{err}");
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host");

    // The same symlink once its target exists inside the rootfs too: the
    // file is bound there, over the rootfs's file, not the host's.
    let inside_file = r.join(host_file.strip_prefix("/").unwrap());
    std::fs::write(&inside_file, "inside").unwrap();
    let (code, out, err) = brig.run(&bundle, &unique_id("mnt"));
    assert_eq!((code, out.as_str()), (0, "bound"), "{err}");
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host");
    assert_eq!(std::fs::read_to_string(&inside_file).unwrap(), "inside");
    let _ = std::fs::remove_file(&host_file);
    let _ = std::fs::remove_dir_all(&host_dir);
}

/// A namespace type listed twice is refused under every profile, even one
/// that allows the host's namespaces: libcontainer keeps the last entry.
#[test]
fn a_namespace_listed_twice_is_refused() {
    let brig = Brig::default();
    let mut bundle = Bundle::new(&["true"]);
    bundle.push(
        "/linux/namespaces",
        json!({ "type": "network", "path": format!("/proc/{}/ns/net", std::process::id()) }),
    );
    let (code, _, err) = brig.run(&bundle, &unique_id("twice"));
    assert_ne!(code, 0, "a duplicated namespace must be refused");
    assert!(err.contains("network namespace is listed more than once"), "{err}");
    assert!(brig.ok(&["list", "-q"]).trim().is_empty());
}

/// The host's root, a system directory, or a directory inside the trees of
/// the host's configuration, software and kernel, as the job's root
/// filesystem is refused, naming the field; also through a symbolic link.
#[test]
fn the_hosts_root_is_not_a_rootfs() {
    let brig = Brig::default();
    // Paths that exist on any host (the QEMU guest has no /etc/ssl): a
    // directory made inside /etc for the test, and links to it.
    let etc_sub = tempfile::Builder::new().prefix("brig-test-").tempdir_in("/etc").expect("tempdir in /etc");
    let etc_sub_path = etc_sub.path().to_string_lossy().into_owned();
    let link_dir = tempfile::tempdir().expect("tempdir");
    let link = link_dir.path().join("looks-harmless");
    std::os::unix::fs::symlink(etc_sub.path(), &link).expect("symlink");
    let link = link.to_string_lossy().into_owned();
    let via_proc = format!("/proc/self/root{etc_sub_path}");
    let root_sub = tempfile::Builder::new().prefix("brig-test-").tempdir_in("/root").expect("tempdir in /root");
    let root_sub_path = root_sub.path().to_string_lossy().into_owned();
    for root in [
        "/",
        "/etc",
        "/usr/",
        "/root/",
        &etc_sub_path,
        "/proc/self/fd",
        "/sys/kernel",
        "/proc/self/root",
        &via_proc,
        &link,
        &root_sub_path,
    ]
    .into_iter()
    // Shared parents: every bundle and state root below would be seen
    // (those the host has: the QEMU guest has no /var/lib).
    .chain(["/tmp", "/var/lib", "/var/tmp"].into_iter().filter(|p| std::path::Path::new(p).is_dir()))
    {
        let mut bundle = Bundle::new(&["true"]);
        bundle.set("/root", json!({ "path": root, "readonly": true }));
        let (code, _, err) = brig.run(&bundle, &unique_id("hostroot"));
        assert_ne!(code, 0, "{root} was accepted");
        assert!(err.contains("root.path") && err.contains("cannot be a container's root filesystem"), "{err}");
    }
}

/// A cgroupsPath naming a cgroup that already holds processes (a host
/// service's, another job's) is refused: the job would rewrite its limits
/// and a forced delete would kill them all.
#[test]
fn a_populated_cgroup_is_not_joined() {
    let brig = Brig::default();
    let (_first, id) = brig.detached_sleeper("cgown");
    let mut second = Bundle::new(&["true"]);
    second.set("/linux/cgroupsPath", json!(format!("/brig/{id}")));
    let (code, _, err) = brig.run(&second, &unique_id("cgjoin"));
    assert_ne!(code, 0, "joined another container's cgroup");
    assert!(err.contains("linux.cgroupsPath") && err.contains("only `/brig/cgjoin"), "{err}");
    // Nor one outside /brig that holds processes, nor one below it.
    let placed_id = unique_id("cgplaced");
    let theirs = format!("/brig-test/{placed_id}");
    let mut placed = Bundle::new(&["sleep", "30"]);
    placed.set("/linux/cgroupsPath", json!(theirs));
    brig.ok(&["run", "-d", "--bundle", placed.path().to_str().unwrap(), &placed_id]);
    second.set("/linux/cgroupsPath", json!(theirs));
    let (code, _, err) = brig.run(&second, &unique_id("cgjoin"));
    assert_ne!(code, 0, "joined another container's cgroup");
    assert!(err.contains("already holds processes"), "{err}");
    second.set("/linux/cgroupsPath", json!(format!("{theirs}/nested")));
    let (code, _, err) = brig.run(&second, &unique_id("cgjoin"));
    assert_ne!(code, 0, "nested below another container's cgroup");
    assert!(err.contains("below a cgroup that holds processes"), "{err}");
    brig.ok(&["delete", "--force", &placed_id]);
    // Nor one reached with `..` (libcgroups joins the path as it is).
    second.set("/linux/cgroupsPath", json!(format!("/brig/x/../{id}")));
    let (code, _, err) = brig.run(&second, &unique_id("cgjoin"));
    assert_ne!(code, 0, "a cgroupsPath with `..` was accepted");
    assert!(err.contains("linux.cgroupsPath") && err.contains(".."), "{err}");
    // The first container is untouched.
    assert_eq!(brig.status(&id), "running");
    brig.ok(&["delete", "--force", &id]);
}

fn caps_of(status: &str) -> Vec<String> {
    status.lines().filter(|l| l.starts_with("Cap")).map(str::to_string).collect()
}

/// An exec whose process.json carries no `capabilities` gets the container's
/// capabilities, never libcontainer's fallback (host root's full set, or
/// oci-spec's defaults on the user-namespace path).
#[test]
fn exec_without_capabilities_gets_the_containers_not_all() {
    for profile in ["standard", "restricted", "permissive"] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        let (_bundle, id) = brig.detached_sleeper("execcaps");
        let plain = caps_of(&brig.ok(&["exec", &id, "cat", "/proc/self/status"]));
        let process = json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["cat", "/proc/self/status"]});
        let pfile = brig.dir.path().join("nocaps.json");
        std::fs::write(&pfile, process.to_string()).unwrap();
        let bare = caps_of(&brig.ok(&["exec", "--process", pfile.to_str().unwrap(), &id]));
        assert_eq!(bare, plain, "{profile}: an exec without capabilities got other capabilities than the container's");
        if profile != "permissive" {
            assert!(
                bare.iter().all(|l| !l.ends_with("ffffffffff")),
                "{profile}: an exec without capabilities holds every capability: {bare:?}"
            );
        }
        if profile == "restricted" {
            assert!(bare.iter().all(|l| l.ends_with("0000000000000000")), "{profile}: {bare:?}");
        }
        brig.ok(&["delete", "--force", &id]);
    }
}

/// A stopped container keeps its cgroup until it is deleted, and its
/// `kill --all`, `update`, `delete` and recorded usage act on that cgroup: no
/// other job may be put in it, neither one of the same id under another
/// state root (which would get the same default `/brig/<id>`) nor one whose
/// spec asks for that `cgroupsPath`.
/// `delete --force` racing a `create` of the same id (a client's timeout
/// path): the delete used to remove the state and the cgroup claim the
/// create had made so far, and the create went on to leave a running
/// container with no claim (another job could be given its cgroup), or a
/// half-made one. Now the delete waits for the create to end and removes
/// all of it: after both, the container is either wholly there (with its
/// claim) or wholly gone (no claim, no cgroup, no state).
#[test]
fn a_forced_delete_during_a_create_waits_and_removes_it_whole() {
    let brig = Brig::default();
    let b = Bundle::new(&["sleep", "60"]);
    let claims_of = |id: &str| {
        std::fs::read_dir("/run/brig/cgroups")
            .map(|d| d.flatten().filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.ends_with(id))).count())
            .unwrap_or(0)
    };
    let mut outcomes = std::collections::BTreeMap::new();
    for i in 0..24u64 {
        let id = unique_id("racedel");
        let mut create = brig
            .command()
            .args(["create", "--bundle", b.path().to_str().unwrap(), &id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(150 * (i % 12)));
        let deleted = brig.cmd(&["delete", "--force", &id]);
        let created = create.wait().unwrap();
        let state = brig.root.join(&id).join("state.json");
        let kept = state.exists();
        if kept {
            assert_eq!(claims_of(&id), 1, "container {id} is there without its cgroup claim");
            let status = brig.status(&id);
            assert!(status == "created", "{id}: {status}");
            brig.ok(&["delete", "--force", &id]);
        }
        assert!(!brig.root.join(&id).exists(), "{id}: a state directory is left");
        assert_eq!(claims_of(&id), 0, "{id}: a cgroup claim is left");
        assert!(
            !std::path::Path::new(&format!("/sys/fs/cgroup/pids/brig/{id}")).exists()
                && !std::path::Path::new(&format!("/sys/fs/cgroup/unified/brig/{id}")).exists()
                && !std::path::Path::new(&format!("/sys/fs/cgroup/brig/{id}")).exists(),
            "{id}: its cgroup is left"
        );
        *outcomes.entry((created.success(), deleted.status.success(), kept)).or_insert(0) += 1;
    }
    eprintln!("(create ok, delete ok, kept until the test's own delete): {outcomes:?}");
}

/// `--pid-file` at a symbolic link replaces the link with a file holding the
/// pid, as runc does (a new file renamed into place), for `create` and for
/// `exec` with and without a per-job user namespace: the link's target (a
/// host file) is never written through.
#[test]
fn a_pid_file_at_a_link_is_replaced_never_written_through() {
    for profile in ["restricted", "permissive"] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        let victim = brig.dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let link = |name: &str| {
            let l = brig.dir.path().join(name);
            std::os::unix::fs::symlink(&victim, &l).unwrap();
            l
        };
        let b = Bundle::new(&["sleep", "60"]);
        let id = unique_id("pidlink");
        let created = link("create.pid");
        brig.ok(&["create", "--pid-file", created.to_str().unwrap(), "--bundle", b.path().to_str().unwrap(), &id]);
        brig.ok(&["start", &id]);
        let execd = link("exec.pid");
        brig.ok(&["exec", "--detach", "--pid-file", execd.to_str().unwrap(), &id, "sleep", "30"]);
        for file in [&created, &execd] {
            let meta = std::fs::symlink_metadata(file).unwrap();
            assert!(meta.file_type().is_file(), "{profile}: {} is still a link", file.display());
            assert!(std::fs::read_to_string(file).unwrap().trim().parse::<i32>().is_ok_and(|p| p > 0), "{profile}");
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "{profile}: written through a link");
        brig.ok(&["delete", "--force", &id]);
    }
}

/// A container whose state.json, or libcontainer's configuration beside it,
/// cannot be read (a create that met a full disk wrote one empty) is
/// removed whole by `delete --force`: its init killed through its own
/// (claimed) cgroup, the cgroup, the claim and the state gone. It used to
/// fail for ever, and keep the id.
#[test]
fn a_container_with_an_unreadable_state_is_removed_by_a_forced_delete() {
    for emptied in ["state.json", "youki_config.json"] {
        a_container_with_this_file_emptied_is_removed_by_a_forced_delete(emptied);
    }
}

fn a_container_with_this_file_emptied_is_removed_by_a_forced_delete(emptied: &str) {
    let brig = Brig::default();
    let b = Bundle::new(&["sleep", "60"]);
    let id = unique_id("emptystate");
    brig.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let state: Value = serde_json::from_slice(&std::fs::read(brig.root.join(&id).join("state.json")).unwrap()).unwrap();
    let init = state["pid"].as_i64().unwrap();
    let record: Value = serde_json::from_slice(&std::fs::read(brig.root.join(&id).join("brig.json")).unwrap()).unwrap();
    let cgroup = record["cgroup_path"].as_str().unwrap().trim_start_matches('/').to_string();
    // Running, and frozen (a frozen process takes no SIGKILL until thawed).
    brig.ok(&["start", &id]);
    brig.ok(&["pause", &id]);
    std::fs::write(brig.root.join(&id).join(emptied), "").unwrap();
    assert!(!brig.cmd(&["delete", &id]).status.success(), "a plain delete of an unreadable {emptied}");
    brig.ok(&["delete", "--force", &id]);
    assert!(!brig.root.join(&id).exists(), "the state directory is left");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{init}")).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stat = std::fs::read_to_string(format!("/proc/{init}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z"), "the init {init} still runs: {stat}");
    for hierarchy in ["pids", "memory", "unified", ""] {
        let dir = std::path::Path::new("/sys/fs/cgroup").join(hierarchy).join(&cgroup);
        assert!(!dir.exists(), "{} is left", dir.display());
    }
    let claims = std::fs::read_dir("/run/brig/cgroups")
        .map(|d| d.flatten().filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.ends_with(&id))).count())
        .unwrap_or(0);
    assert_eq!(claims, 0, "the cgroup claim is left");
    // The id is free again.
    brig.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    brig.ok(&["delete", "--force", &id]);
}

/// A create that fails before the container's init exists (its console
/// socket cannot be reached) leaves no state behind: the id can be created
/// again at once. It used to leave a state directory no `delete` could load.
#[test]
fn a_create_that_fails_before_its_init_leaves_no_state() {
    let brig = Brig::default();
    let mut b = Bundle::new(&["true"]);
    b.set("/process/terminal", json!(true));
    let id = unique_id("nosock");
    let missing = tempfile::tempdir().unwrap().path().join("no-such.sock");
    let err = brig.fails(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--console-socket",
        missing.to_str().unwrap(),
        &id,
    ]);
    assert!(err.contains("console socket"), "{err}");
    assert!(!brig.root.join(&id).exists(), "the state directory is left");
    let plain = Bundle::new(&["true"]);
    brig.ok(&["run", "--bundle", plain.path().to_str().unwrap(), &id]);
}

#[test]
fn a_stopped_containers_cgroup_is_never_given_to_another_job() {
    let cgroup_of = |brig: &Brig, id: &str| -> String {
        let record: Value =
            serde_json::from_slice(&std::fs::read(brig.root.join(id).join("brig.json")).unwrap()).unwrap();
        record["cgroup_path"].as_str().unwrap().to_string()
    };
    // The same id under two state roots: the first stopped, the second running.
    let (first, second) = (Brig::default(), Brig::default());
    let id = unique_id("samecg");
    let done = Bundle::new(&["true"]);
    first.ok(&["run", "--detach", "--bundle", done.path().to_str().unwrap(), &id]);
    first.wait_status(&id, "stopped");
    let sleeper = Bundle::new(&["sleep", "30"]);
    second.ok(&["run", "--detach", "--bundle", sleeper.path().to_str().unwrap(), &id]);
    let (a, b) = (cgroup_of(&first, &id), cgroup_of(&second, &id));
    assert_ne!(a, b, "two containers share the cgroup {a}");
    let err = first.fails(&["update", "--pids-limit", "100000", &id]);
    assert!(err.contains("stopped"), "{err}");
    first.ok(&["kill", "--all", &id, "KILL"]);
    first.ok(&["delete", &id]);
    assert_eq!(second.status(&id), "running", "the stopped container's kill --all reached the other job");
    second.ok(&["delete", "--force", &id]);

    // A cgroupsPath a stopped container holds.
    let brig = Brig::default();
    let victim = unique_id("cgvictim");
    let path = format!("/brig-test/{victim}");
    let mut b = Bundle::new(&["true"]);
    b.set("/linux/cgroupsPath", json!(path));
    brig.ok(&["run", "--detach", "--bundle", b.path().to_str().unwrap(), &victim]);
    brig.wait_status(&victim, "stopped");
    let attacker = unique_id("cgattacker");
    let mut b = Bundle::new(&["sleep", "30"]);
    b.set("/linux/cgroupsPath", json!(path));
    let err = brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &attacker]);
    assert!(err.contains("linux.cgroupsPath") && err.contains(&victim), "{err}");
    assert!(!brig.root.join(&attacker).exists(), "state left for {attacker}");
    // Once the holder is deleted, the path is free again.
    brig.ok(&["delete", &victim]);
    brig.ok(&["create", "--bundle", b.path().to_str().unwrap(), &attacker]);
    assert_eq!(cgroup_of(&brig, &attacker), path);
    brig.ok(&["delete", "--force", &attacker]);
}

/// Names brig keeps in its state root are not container ids: `delete --force
/// userns` would otherwise empty the user-namespace slot registry.
#[test]
fn brigs_own_state_entries_are_not_container_ids() {
    let brig = Brig::default();
    for id in ["userns", "namespaces", "namespaces.lock", "cgroups", ".staging", ".hidden"] {
        let err = brig.fails(&["delete", "--force", id]);
        assert!(err.contains("reserved"), "{id}: {err}");
        let (code, _, err) = brig.run(&Bundle::new(&["true"]), id);
        assert_ne!(code, 0, "{id} was accepted as a container id");
        assert!(err.contains("reserved"), "{id}: {err}");
    }
}

/// A cgroupsPath with child cgroups (`/brig`, the parent of every job's) is
/// refused: `kill --all`, `delete --force` and `pause` would act on every job
/// under it.
#[test]
fn a_parent_of_other_cgroups_is_not_a_jobs_cgroup() {
    let brig = Brig::default();
    let (_other, other_id) = brig.detached_sleeper("cgchild");
    let mut parent = Bundle::new(&["true"]);
    parent.set("/linux/cgroupsPath", json!("/brig"));
    let (code, _, err) = brig.run(&parent, &unique_id("cgparent"));
    assert_ne!(code, 0, "a job was given /brig, the parent of every job's cgroup");
    assert!(err.contains("linux.cgroupsPath") && err.contains("where brig makes each job's cgroup"), "{err}");
    // Nor a cgroup there that is not yet any job's (a later job's own).
    parent.set("/linux/cgroupsPath", json!("/brig/not-yet-created"));
    let (code, _, err) = brig.run(&parent, &unique_id("cgparent"));
    assert_ne!(code, 0, "a job was given another job's future cgroup");
    assert!(err.contains("where brig makes each job's cgroup"), "{err}");
    assert_eq!(brig.status(&other_id), "running", "the other job was touched");
    brig.ok(&["delete", "--force", &other_id]);
}

/// A container whose init died and whose pid now belongs to another process
/// reads as stopped: `kill`, `exec` and `delete --force` leave that process
/// alone.
#[test]
fn a_recycled_init_pid_is_not_the_container() {
    let brig = Brig::default();
    let (_bundle, id) = brig.detached_sleeper("recycled");
    let state_file = brig.root.join(&id).join("state.json");
    // The init goes away; a host process takes "its" pid (simulated: the
    // state file is pointed at it, as the kernel would by reusing the pid).
    brig.ok(&["kill", &id, "KILL"]);
    brig.wait_status(&id, "stopped");
    let mut host = Command::new("sleep").arg("60").spawn().unwrap();
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    state["pid"] = json!(host.id());
    state["status"] = json!("running");
    std::fs::write(&state_file, state.to_string()).unwrap();

    assert_eq!(brig.status(&id), "stopped", "a recycled pid was taken for the container's init");
    let _ = brig.cmd_files(&["kill", &id, "KILL"]);
    let _ = brig.cmd_files(&["exec", &id, "true"]);
    brig.ok(&["delete", "--force", &id]);
    assert!(host.try_wait().unwrap().is_none(), "brig killed a host process that reused the init's pid");
    host.kill().unwrap();
    host.wait().unwrap();
}

/// An exec's resource limits never exceed the container's (the profile's
/// `core = 0`, `nofile = 1024` under restricted), asked for or not.
#[test]
fn exec_rlimits_are_held_to_the_containers() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    let (_bundle, id) = brig.detached_sleeper("execrlim");
    let pfile = brig.dir.path().join("rlimits.json");
    for rlimits in [
        json!([{"type": "RLIMIT_CORE", "hard": u64::MAX, "soft": u64::MAX},
               {"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}]),
        json!([]),
    ] {
        let process = json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "rlimits": rlimits,
                             "args": ["sh", "-c", "echo core=$(ulimit -c) nofile=$(ulimit -n) hard=$(ulimit -Hn)"]});
        std::fs::write(&pfile, process.to_string()).unwrap();
        let out = brig.ok(&["exec", "--process", pfile.to_str().unwrap(), &id]);
        assert_eq!(out.trim(), "core=0 nofile=1024 hard=1024", "asked {rlimits}");
    }
    // Listed twice, the second (applied last) would escape the cap on the
    // first: refused, for an exec and for a launch.
    let twice = json!([{"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
                       {"type": "RLIMIT_CORE", "hard": u64::MAX, "soft": u64::MAX}]);
    let process = json!({"user": {"uid": 0, "gid": 0}, "cwd": "/", "rlimits": twice, "args": ["true"]});
    std::fs::write(&pfile, process.to_string()).unwrap();
    let err = brig.fails(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(err.contains("process.rlimits[1]") && err.contains("twice"), "{err}");
    brig.ok(&["delete", "--force", &id]);
    let mut b = Bundle::new(&["true"]);
    b.set("/process/rlimits", twice);
    let (code, _, err) = brig.run(&b, &unique_id("rlim2"));
    assert_ne!(code, 0);
    assert!(err.contains("process.rlimits[1]") && err.contains("twice"), "{err}");
}

/// An exec'd process gets the OOM score and umask its process.json asks
/// for (they were ignored for a job with its own user namespace), and when
/// it names no OOM score, the job's own, never the caller's (a containerd
/// shim runs at -998: its exec'd processes were the last the OOM killer
/// would pick); no umask gives runc's 0022, whatever the caller's.
#[test]
fn exec_gets_its_oom_score_and_umask_not_the_callers() {
    for profile in ["restricted", "permissive"] {
        exec_oom_score_and_umask(profile);
    }
}

fn exec_oom_score_and_umask(profile: &str) {
    let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
    let (_bundle, id) = brig.detached_sleeper("execoom");
    let pfile = brig.dir.path().join("oom.json");
    let show = "echo adj=$(cat /proc/self/oom_score_adj) umask=$(umask)";
    let process = json!({"user": {"uid": 0, "gid": 0, "umask": 63}, "cwd": "/", "oomScoreAdj": 300,
                         "args": ["sh", "-c", show]});
    std::fs::write(&pfile, process.to_string()).unwrap();
    let out = brig.ok(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert_eq!(out.trim(), "adj=300 umask=0077", "{profile}");
    // Without either, from a caller at another score and umask.
    let job_adj = brig.ok(&["exec", &id, "cat", "/proc/1/oom_score_adj"]).trim().to_string();
    let out = Command::new("sh")
        .arg("-c")
        .arg("echo 77 > /proc/self/oom_score_adj; umask 0; exec \"$0\" \"$@\"")
        .arg(brig_tests::brig_bin())
        .args(["--root", brig.root.to_str().unwrap(), "--config", brig.config.to_str().unwrap()])
        .args(["exec", &id, "sh", "-c", show])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(out, format!("adj={job_adj} umask=0022"), "{profile}");
    assert_ne!(job_adj, "77");
    brig.ok(&["delete", "--force", &id]);
}

/// A Landlock rule path that the image makes a symbolic link to `/` (`/srv`
/// -> `/`) grants nothing: it would otherwise open the whole root
/// filesystem to the job under `restricted`.
#[test]
fn a_landlock_path_linked_to_the_root_grants_nothing() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    let cp = Command::new("cp").arg("-a").arg(brig_tests::rootfs()).arg(&root).status().unwrap();
    assert!(cp.success());
    let _ = std::fs::remove_dir_all(root.join("srv"));
    std::os::unix::fs::symlink("/", root.join("srv")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::write(root.join("data/secret.txt"), "not for the job\n").unwrap();
    let mut b = Bundle::new(&["sh", "-c", "cat /data/secret.txt; cat /srv/data/secret.txt; echo rc=$?"]);
    b.set("/root", json!({"path": root, "readonly": true}));
    let (code, out, err) = brig.run(&b, &unique_id("srvlink"));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("not for the job"), "the job read outside its Landlock paths: {out}");
    assert!(out.contains("rc=1"), "{out}");
}

/// The longest id brig takes runs its whole life under `restricted` (whose
/// per-job user namespace derives the longest names from it: the idmapped
/// rootfs, staged binds); one character more is refused up front, naming the
/// limit, before anything is made (it failed half-way with "File name too
/// long" past about 240).
#[test]
fn the_longest_id_runs_and_a_longer_one_is_refused_up_front() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    let unique = unique_id("long");
    let id = format!("{unique}{}", "x".repeat(200 - unique.len()));
    // A writable bind: staged and handed to the job's range, under the id.
    let out_dir = std::path::PathBuf::from(format!("/var/lib/brig/jobs/{unique}"));
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut bundle = Bundle::new(&["sleep", "30"]);
    bundle
        .push("/mounts", json!({"destination": "/out", "type": "bind", "source": out_dir, "options": ["rbind", "rw"]}));
    brig.ok(&["run", "-d", "--bundle", bundle.path().to_str().unwrap(), &id]);
    assert_eq!(brig.ok(&["exec", &id, "sh", "-c", "echo in > /out/f; cat /out/f"]).trim(), "in");
    brig.ok(&["delete", "--force", &id]);
    std::fs::remove_dir_all(&out_dir).unwrap();
    let longer = format!("{id}y");
    let err = brig.fails(&["run", "--bundle", bundle.path().to_str().unwrap(), &longer]);
    assert!(err.contains("at most 200 characters"), "{err}");
    assert!(!brig.root.join(&longer).exists());
}

/// A tmpfs with runc's `tmpcopyup` (Podman adds it to every tmpfs: `--tmpfs`,
/// `--read-only`, `--mount type=tmpfs`) starts with a copy of what its
/// destination held in the image, links as links, modes kept; writes go to
/// the tmpfs, never to the image. It failed with EINVAL ("failed to prepare
/// rootfs") under every profile.
#[test]
fn a_tmpfs_with_tmpcopyup_starts_with_the_images_files() {
    for profile in ["permissive", "restricted"] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        let mut b = Bundle::new(&[
            "sh",
            "-c",
            "cat /secret/data.txt && echo written > /secret/new && cat /secret/new && stat -c %a /secret/data.txt",
        ]);
        b.push(
            "/mounts",
            json!({"destination": "/secret", "type": "tmpfs", "source": "tmpfs",
                   "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup", "size=1m"]}),
        );
        let (code, out, err) = brig.run(&b, &unique_id("copyup"));
        assert_eq!(code, 0, "{profile}: {err}");
        let want_mode = format!(
            "{:o}",
            std::os::unix::fs::MetadataExt::mode(
                &std::fs::metadata(brig_tests::rootfs().join("secret/data.txt")).unwrap()
            ) & 0o777
        );
        assert_eq!(out, format!("top secret\nwritten\n{want_mode}\n"), "{profile}");
        assert!(!brig_tests::rootfs().join("secret/new").exists(), "{profile}: written through to the image");
    }
}

/// An image's entrypoint named by an absolute path outside the profile's
/// Landlock exec paths (`/docker-entrypoint.sh`, Podman's `/catatonit`) runs
/// under `restricted`: that one file is granted, not its directory. A
/// program that cannot be executed says so on the job's own stderr (the
/// container's log under a client), with the errno and its likely cause.
#[test]
fn an_entrypoint_outside_the_exec_paths_runs_and_a_failed_exec_says_why() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    let name = unique_id("entry");
    let script = brig_tests::rootfs().join(format!("data/{name}.sh"));
    std::fs::write(
        &script,
        "#!/bin/sh\necho entry-ran \"$@\"\ncat /data/*-other.sh >/dev/null 2>&1 && echo read-neighbours\n/data/*-other.sh 2>/dev/null || echo neighbour-refused\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let neighbour = brig_tests::rootfs().join(format!("data/{name}-other.sh"));
    std::fs::write(&neighbour, "#!/bin/sh\necho other\n").unwrap();
    std::fs::set_permissions(&neighbour, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let b = Bundle::new(&[&format!("/data/{name}.sh"), "arg1"]);
    let (code, out, err) = brig.run(&b, &unique_id("entry"));
    assert_eq!((code, out.as_str()), (0, "entry-ran arg1\nneighbour-refused\n"), "{err}");
    // Found through PATH (no `/`: nothing granted), Landlock refuses it.
    let mut b = Bundle::new(&[&format!("{name}-other.sh")]);
    b.set("/process/env", json!(["PATH=/data:/bin"]));
    let (code, _, err) = brig.run(&b, &unique_id("entry"));
    assert_eq!(code, 126, "{err}");
    assert!(
        err.contains("brig-init: the job could not start: exec failed, errno 13") && err.contains("Landlock"),
        "{err}"
    );
    std::fs::remove_file(&script).unwrap();
    std::fs::remove_file(&neighbour).unwrap();
}

/// `kill ID SIGSTOP` (`docker kill -s STOP`) stops the job, as runc's, not
/// brig's supervisor, the container's pid 1, which cannot forward it: the job
/// ran on and the timeout's clock stopped. SIGCONT resumes it.
#[test]
fn sigstop_stops_the_job_not_the_supervisor() {
    let brig = Brig::default();
    let (_bundle, id) = brig.detached_sleeper("stop");
    let init = brig.state(&id)["pid"].as_i64().unwrap();
    let state_of = |pid: i64| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(')').unwrap().1.split_whitespace().next().unwrap().to_string()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let job = loop {
        let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap();
        if let Some(pid) = children.split_whitespace().next() {
            break pid.parse::<i64>().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no job under the supervisor");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    brig.ok(&["kill", &id, "SIGSTOP"]);
    let wait_for = |pid: i64, want: bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while (state_of(pid) == "T") != want {
            assert!(std::time::Instant::now() < deadline, "{pid}: state {}", state_of(pid));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    wait_for(job, true);
    assert_ne!(state_of(init), "T", "the supervisor was stopped");
    brig.ok(&["kill", &id, "CONT"]);
    wait_for(job, false);
    brig.ok(&["delete", "--force", &id]);
}

/// A working directory the container does not have is named, for an exec
/// on both exec paths ("failed to unix syscall" said nothing). (A job's own
/// is made if missing, as runc makes it.)
#[test]
fn a_missing_working_directory_is_named() {
    for profile in ["permissive", "restricted"] {
        let brig = Brig::new(&format!("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"{profile}\"\n"));
        let (_bundle, id) = brig.detached_sleeper("cwd");
        let err = brig.fails(&["exec", "--cwd", "/nowhere", &id, "true"]);
        assert!(err.contains("/nowhere"), "{profile}: {err}");
        brig.ok(&["delete", "--force", &id]);
    }
}

/// An AppArmor profile on a host without AppArmor is refused naming the
/// field, at `create` (libcontainer failed deep in the init with "io error")
/// and at `exec` (where it was dropped in silence), as runc refuses it. On a
/// host with AppArmor (the QEMU guest's kernel has it) the check lets the
/// profile through to libcontainer.
#[test]
fn an_apparmor_profile_the_host_cannot_apply_is_refused_naming_the_field() {
    let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|t| t.trim() == "Y");
    let refused = |err: &str| err.contains("process.apparmorProfile") && err.contains("AppArmor is not enabled");
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    let mut b = Bundle::new(&["sleep", "30"]);
    b.set("/process/apparmorProfile", json!("unconfined"));
    let id = unique_id("aa");
    let (code, _, err) = brig.cmd_files(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let _ = brig.cmd_files(&["delete", "--force", &id]);
    if enabled {
        assert!(!refused(&err), "AppArmor is enabled here: {err}");
    } else {
        assert!(code != 0 && refused(&err), "{err}");
    }
    let id = unique_id("aa");
    let b = Bundle::new(&["sleep", "30"]);
    brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let process = json!({"terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["true"],
                         "apparmorProfile": "unconfined"});
    let pfile = brig.dir.path().join("p.json");
    std::fs::write(&pfile, process.to_string()).unwrap();
    let (code, _, err) = brig.cmd_files(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    brig.ok(&["delete", "--force", &id]);
    if enabled {
        assert!(!refused(&err), "AppArmor is enabled here: {err}");
    } else {
        assert!(code != 0 && refused(&err), "{err}");
    }
}

/// A run record brig cannot read that names no measurements (one written by
/// another brig version, say) does not keep its container: there is no
/// attestation to lose. (One that is not JSON, or names measurements, keeps
/// it: tests/tests/attest.rs.)
#[test]
fn an_unreadable_record_of_an_unmeasured_run_does_not_block_delete() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    let id = unique_id("oldrecord");
    let b = Bundle::new(&["sleep", "30"]);
    brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    std::fs::write(brig.root.join(&id).join("brig.json"), r#"{"written_by": "another version"}"#).unwrap();
    brig.ok(&["delete", "--force", &id]);
    let (code, _, err) = brig.cmd_files(&["state", &id]);
    assert_ne!(code, 0, "the container is gone: {err}");
}

/// What `state` and `list --format json` print is JSON that clients parse
/// (go-runc, Podman): text in any script survives as it was written
/// (zero-width joiners in emoji, ZWNJ in Persian, RLM in Hebrew), and a
/// control character only ever appears as JSON's own escape.
#[test]
fn state_and_list_print_annotations_as_valid_json() {
    let brig = Brig::default();
    let mut b = Bundle::new(&["sleep", "30"]);
    let values = [
        ("team", "👨\u{200d}👩\u{200d}👧"),
        ("fa", "می\u{200c}خواهم"),
        ("he", "שלום\u{200f}"),
        ("esc", "a\u{1b}[2Jb\nc"),
    ];
    for (k, v) in values {
        b.annotate(&format!("example.com/{k}"), v);
    }
    let id = unique_id("utf");
    brig.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let state = brig.state(&id);
    let (_, list, _) = brig.cmd_files(&["list", "--format", "json"]);
    let list: Value = serde_json::from_str(&list).unwrap_or_else(|e| panic!("list is not JSON ({e}): {list}"));
    let listed = list.as_array().unwrap().iter().find(|c| c["id"] == id.as_str()).expect("listed").clone();
    for (k, v) in values {
        let key = format!("example.com/{k}");
        assert_eq!(state["annotations"][&key], v, "state: {key}");
        assert_eq!(listed["annotations"][&key], v, "list: {key}");
    }
    brig.ok(&["delete", "--force", &id]);
}

/// The processes whose parent is `pid` (`/proc/<child>/stat`).
fn children_of(pid: i32) -> Vec<i32> {
    let mut children = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let after = &stat[stat.rfind(')').unwrap() + 1..];
        if after.split_whitespace().nth(1) == Some(pid.to_string().as_str()) {
            children.push(child);
        }
    }
    children
}

/// `create`s `id` with the job's stdout going to the file returned.
fn create_with_output_to_a_file(brig: &Brig, bundle: &Bundle, id: &str) -> tempfile::NamedTempFile {
    let out = tempfile::NamedTempFile::new().unwrap();
    let created = brig
        .command()
        .args(["create", "--bundle", bundle.path().to_str().unwrap(), id])
        .stdout(out.reopen().unwrap())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(created.success());
    out
}

/// At `create` the supervisor forks the job's process, which hardens
/// itself (no_new_privs, Landlock, seccomp) and waits for `start`: nothing
/// of the job runs before it, and what waits is brig's code under the
/// profile already. One killed before `start` is forked again at `start`:
/// the job runs once, as it would have.
#[test]
fn the_job_waits_hardened_for_start_and_runs_once() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    for kill_before_start in [false, true] {
        let bundle = Bundle::new(&["sh", "-c", "echo job-ran; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"]);
        let id = unique_id("prestart");
        let out = create_with_output_to_a_file(&brig, &bundle, &id);
        let init = brig.state(&id)["pid"].as_i64().unwrap() as i32;
        let children = children_of(init);
        assert_eq!(children.len(), 1, "the init's children before start: {children:?}");
        let waiting = children[0];
        let status = std::fs::read_to_string(format!("/proc/{waiting}/status")).unwrap();
        assert!(status.contains("NoNewPrivs:\t1") && status.contains("Seccomp:\t2"), "{status}");
        let cmdline = std::fs::read(format!("/proc/{waiting}/cmdline")).unwrap();
        assert!(cmdline.starts_with(b"brig-init\0"), "not the job yet: {}", String::from_utf8_lossy(&cmdline));
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "", "the job ran before start");
        if kill_before_start {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(waiting), nix::sys::signal::SIGKILL).unwrap();
            // Left a zombie: the supervisor reaps it at `start`.
            for _ in 0..500 {
                let stat = std::fs::read_to_string(format!("/proc/{waiting}/stat")).unwrap_or_default();
                if stat.is_empty() || stat[stat.rfind(')').unwrap() + 1..].trim_start().starts_with('Z') {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        brig.ok(&["start", &id]);
        brig.wait_status(&id, "stopped");
        let text = std::fs::read_to_string(out.path()).unwrap();
        assert_eq!(text.matches("job-ran").count(), 1, "{text}");
        assert!(text.contains("NoNewPrivs:\t1") && text.contains("Seccomp:\t2"), "{text}");
        let report = std::fs::read_to_string(brig.root.join(&id).join("brig-status")).unwrap();
        assert!(report.contains("exit_code=0\n") && report.contains("landlock=full\n"), "{report}");
        brig.ok(&["delete", &id]);
    }
}

/// `exec` into a created container runs, as with runc (which refuses only
/// stopped and, without `--ignore-paused`, paused ones), under the profile
/// as any exec; the job still starts once, at `start`; a stopped container
/// refuses it.
#[test]
fn exec_into_a_created_container_runs_hardened_and_the_job_still_starts_once() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    let bundle = Bundle::new(&["sh", "-c", "echo job-ran"]);
    let id = unique_id("execcreated");
    let out = create_with_output_to_a_file(&brig, &bundle, &id);
    let inside =
        brig.ok(&["exec", &id, "sh", "-c", "echo exec-ran; grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status"]);
    assert!(inside.starts_with("exec-ran\n"), "{inside}");
    assert!(
        inside.contains("NoNewPrivs:\t1")
            && inside.contains("Seccomp:\t2")
            && inside.contains("CapEff:\t0000000000000000"),
        "{inside}"
    );
    assert_eq!(brig.state(&id)["status"], "created");
    assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "", "the exec started the job");
    brig.ok(&["start", &id]);
    brig.wait_status(&id, "stopped");
    assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "job-ran\n");
    let refused = brig.fails(&["exec", &id, "true"]);
    assert!(refused.contains("cannot exec in a container that is stopped"), "{refused}");
    brig.ok(&["delete", &id]);
}

/// A startContainer hook runs at `start`, in the container, before the
/// job (runtime-spec lifecycle): with one, the supervisor is started only
/// after it, as libcontainer's init always did.
#[test]
fn a_start_container_hook_runs_at_start_before_the_job() {
    let brig = Brig::default();
    let mut bundle = Bundle::new(&["cat", "/dev/hook-ran"]);
    bundle.set(
        "/hooks",
        json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo hooked > /dev/hook-ran"]}]}),
    );
    let id = unique_id("starthook");
    let out = create_with_output_to_a_file(&brig, &bundle, &id);
    let init = brig.state(&id)["pid"].as_i64().unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{init}/root/dev/hook-ran")).exists(), "the hook ran at create");
    brig.ok(&["start", &id]);
    brig.wait_status(&id, "stopped");
    assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "hooked\n");
    let report = std::fs::read_to_string(brig.root.join(&id).join("brig-status")).unwrap();
    assert!(report.contains("exit_code=0\n"), "{report}");
}

/// The job's Landlock rules are those of its filesystem at `start`, as when
/// it hardened itself only then: a path a rule names that appears between
/// `create` and `start` (`docker cp` into a created container) is granted.
/// And a job whose waiting process was stopped before `start` (^Z at its
/// terminal) still starts.
#[test]
fn a_path_made_between_create_and_start_gets_its_rule_and_a_stopped_wait_starts() {
    let restricted = include_str!("../../profiles/builtin/restricted.toml");
    let profile = restricted
        .replace("name = \"restricted\"", "name = \"late\"")
        .replace("read = [\"/etc\", \"/proc\"]", "read = [\"/etc\", \"/proc\", \"/late\"]")
        // A writable root of its own, which the host's root writes below:
        // no user namespace that does not map it.
        .replace("read_only = true", "read_only = false")
        .replace("mode = \"per_job\"", "mode = \"spec\"");
    assert!(
        profile.contains("\"/late\"]") && profile.contains("mode = \"spec\"") && profile.contains("read_only = false")
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("late.toml"), profile).unwrap();
    let brig = Brig::new(&format!(
        "[auth]\nmode = \"off\"\n[profiles]\ndefault = \"late\"\ndir = \"{}\"\n",
        dir.path().display()
    ));
    for stop_before_start in [false, true] {
        let rootfs = tempfile::tempdir().unwrap();
        let copied =
            Command::new("cp").arg("-a").arg(brig_tests::rootfs().join(".")).arg(rootfs.path()).status().unwrap();
        assert!(copied.success());
        let mut bundle = Bundle::new(&["sh", "-c", "cat /late/note || echo no-access"]);
        bundle.set("/root", json!({"path": rootfs.path(), "readonly": false}));
        let id = unique_id("late");
        let out = create_with_output_to_a_file(&brig, &bundle, &id);
        let init = brig.state(&id)["pid"].as_i64().unwrap() as i32;
        std::fs::create_dir(rootfs.path().join("late")).unwrap();
        std::fs::write(rootfs.path().join("late/note"), "made-before-start\n").unwrap();
        if stop_before_start {
            let waiting = children_of(init);
            assert_eq!(waiting.len(), 1, "{waiting:?}");
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(waiting[0]), nix::sys::signal::SIGSTOP).unwrap();
        }
        brig.ok(&["start", &id]);
        brig.wait_status(&id, "stopped");
        assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "made-before-start\n");
        brig.ok(&["delete", &id]);
    }
}
