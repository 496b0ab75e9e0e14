//! `brig profile list|show|lint|diff` and profile overrides (issue 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use brig_tests::{unique_id, Brig, Bundle};
use serde_json::json;

#[test]
fn list_show_diff() {
    let brig = Brig::default();
    let list = brig.ok(&["profile", "list"]);
    for name in ["restricted", "standard", "permissive"] {
        assert!(list.contains(name), "{list}");
    }
    let show = brig.ok(&["profile", "show", "restricted", "--compiled"]);
    assert!(show.contains("[seccomp]") && show.contains("sha256:"), "{show}");
    assert!(show.contains("seccomp x86_64") && show.contains("seccomp aarch64"), "{show}");
    let diff = brig.ok(&["profile", "diff", "standard", "restricted"]);
    assert!(diff.contains("rootfs.read_only"), "{diff}");
    let err = brig.fails(&["profile", "show", "nope"]);
    assert!(err.contains("nope") && err.contains("restricted"), "{err}");
}

#[test]
fn lint_names_file_line_and_field() {
    let brig = Brig::default();
    let dir = brig.dir.path().join("lint");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.toml"),
        "name = \"bad\"\n[process]\nno_new_privs = true\n[rootfs]\nread_only = false\n[landlock]\nmode = \"required\"\nread_exec = [\"/\"]\n[seccomp]\nallow = [\"read\", \"frobnicate\"]\n",
    )
    .unwrap();
    std::fs::write(dir.join("typo.toml"), "name = \"typo\"\n[cgroup]\nmemroy = \"1g\"\n").unwrap();
    let (code, out, _) = brig.cmd_files(&["profile", "lint", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bad.toml: line 10: seccomp.allow") && out.contains("frobnicate"), "{out}");
    assert!(out.contains("bad.toml: line 5: rootfs.read_only"), "{out}");
    assert!(out.contains("typo.toml") && out.contains("memroy") && out.contains("line 3"), "{out}");
    // The built-ins lint clean.
    let good = brig.dir.path().join("good");
    std::fs::create_dir_all(&good).unwrap();
    for name in ["restricted", "standard", "permissive"] {
        let show = brig.ok(&["profile", "show", name]);
        let toml: String = show.lines().skip(1).collect::<Vec<_>>().join("\n");
        std::fs::write(good.join(format!("{name}.toml")), toml).unwrap();
    }
    let out = brig.ok(&["profile", "lint", good.to_str().unwrap()]);
    assert!(out.contains("no problems"), "{out}");
    // A directory with no profile file lints nothing: an error, not a pass.
    let empty = brig.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = brig.fails(&["profile", "lint", empty.to_str().unwrap()]);
    assert!(err.contains("nothing to lint") && err.contains("empty"), "{err}");
}

/// `lint` never passes what it did not read: a configuration that does not
/// load is an error (it names the profile directory a launch uses); a FIFO
/// or a directory among the files is a problem for that file, not a hang
/// or an abort; and nothing from a file reaches the terminal unescaped or
/// quoted (a token file given as a profile stays out of the output).
#[test]
fn lint_reads_what_it_says_and_quotes_nothing() {
    let broken = Brig::new("[auth\nmode = \"off\"\n");
    for args in [&["profile", "lint"][..], &["profile", "list"]] {
        let (code, out, err) = broken.cmd_files(args);
        assert_ne!(code, 0, "{args:?} passed with a configuration that does not load: {out}");
        assert!(err.contains("config.toml") && err.contains("line 1"), "{err}");
    }
    let brig = Brig::default();
    let dir = brig.dir.path().join("odd");
    std::fs::create_dir_all(dir.join("sub.toml")).unwrap();
    nix::unistd::mkfifo(&dir.join("fifo.toml"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ";
    std::fs::write(dir.join("token.toml"), token).unwrap();
    std::fs::write(dir.join("esc.toml"), "name = \"esc\"\n[seccomp]\nallow = [\"read\", \"\\u001b[2Jfake\"]\n")
        .unwrap();
    let (code, out, err) = brig.cmd_files(&["profile", "lint", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("fifo.toml: cannot read") && out.contains("sub.toml: cannot read"), "{out}");
    assert!(out.contains("token.toml") && !out.contains("c2VjcmV0") && !out.contains("eyJ"), "{out}");
    assert!(out.contains("esc.toml") && out.contains("\\u{1b}[2Jfake"), "{out}");
    assert!(!out.contains('\u{1b}') && !err.contains('\u{1b}'), "{out:?}{err:?}");
}

#[test]
fn a_profile_file_overrides_the_builtin_and_is_used() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    let profiles = brig.dir.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    // A custom profile selected by annotation: keeps CAP_CHOWN only.
    std::fs::write(
        profiles.join("custom.toml"),
        "name = \"custom\"\n[process]\nno_new_privs = true\ncapabilities = [\"CAP_CHOWN\"]\n",
    )
    .unwrap();
    let mut b = Bundle::new(&["/bin/brig-probe", "status"]);
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), json!(["CAP_CHOWN", "CAP_KILL"]));
    }
    b.annotate("dev.brig.profile", "custom");
    let (code, out, err) = brig.run(&b, &unique_id("custom"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CapEff:\t0000000000000001"), "CAP_CHOWN only: {out}");
    // An unknown profile is refused, naming the known ones.
    b.annotate("dev.brig.profile", "nonexistent");
    let err = brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("custom")]);
    assert!(err.contains("nonexistent") && err.contains("custom"), "{err}");
    // A broken profile file fails every launch closed, naming the file.
    std::fs::write(profiles.join("broken.toml"), "name = \"broken\"\n[rootfs]\nread_onyl = true\n").unwrap();
    b.annotate("dev.brig.profile", "custom");
    let err = brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("custom")]);
    assert!(err.contains("broken.toml") && err.contains("read_onyl"), "{err}");
}

#[test]
fn update_cannot_raise_limits_above_the_profile() {
    let brig = Brig::new("[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n");
    let (_b, id) = brig.detached_sleeper("upd");
    let err = brig.fails(&["update", "--memory", "4294967296", &id]);
    assert!(err.contains("memory.limit") && err.contains("restricted"), "{err}");
    let err = brig.fails(&["update", "--pids-limit", "100000", &id]);
    assert!(err.contains("pids.limit"), "{err}");
    brig.ok(&["update", "--pids-limit", "100", &id]);
    // One half of the CPU pair is checked with the other half in the cgroup:
    // restricted's 1 CPU is 100000/100000 there.
    brig.ok(&["update", "--cpu-period", "100000", &id]);
    brig.ok(&["update", "--cpu-quota", "50000", &id]);
    let err = brig.fails(&["update", "--cpu-period", "1000", &id]);
    assert!(err.contains("cpu.quota to 50000/1000") && err.contains("restricted"), "{err}");
    // A shrinking period: the quota goes first (never 50000/10000 on the way).
    brig.ok(&["update", "--cpu-quota", "10000", "--cpu-period", "10000", &id]);
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let dir = brig_tests::cgroup_dir("cpu", &format!("/brig/{id}"));
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
        assert_eq!((read("cpu.cfs_quota_us"), read("cpu.cfs_period_us")), ("10000".into(), "10000".into()));
    }
    brig.ok(&["update", "--cpu-quota", "50000", "--cpu-period", "100000", &id]);
    // Within the ratio but below the kernel's 1 ms quota: on cgroup v1 the
    // period would be written and the quota refused (100 CPUs).
    let err = brig.fails(&["update", "--cpu-quota", "500", "--cpu-period", "1000", &id]);
    assert!(err.contains("kernel's bounds") && err.contains("restricted"), "{err}");
    // `docker update --memory 256m` sends no swap: under restricted (no
    // swap) the job stays without swap.
    brig.ok(&["update", "--memory", "268435456", &id]);
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let dir = brig_tests::cgroup_dir("memory", &format!("/brig/{id}"));
        let limit = std::fs::read_to_string(dir.join("memory.limit_in_bytes")).unwrap();
        assert_eq!(limit.trim(), "268435456");
    }
    // Zeros mean "unchanged" (what dockerd sends for fields it has no value for).
    brig.ok(&["update", "--cpu-quota", "0", "--cpu-period", "0", "--memory", "0", "--pids-limit", "90", &id]);
    // Nor through raw cgroup v2 files.
    let out = brig
        .command()
        .args(["update", "--resources", "-", &id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(br#"{"unified": {"pids.max": "max"}}"#)?;
            child.wait_with_output()
        })
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unified.pids.max") && err.contains("restricted"), "{err}");
    brig.ok(&["delete", "--force", &id]);
}
