//! Per-run attestations (issue 5): what a run leaves, that it verifies, and
//! that tampering with anything is caught.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use brig_tests::{unique_id, Brig, Bundle};
use serde_json::{json, Value};

struct Setup {
    brig: Brig,
    attest_dir: PathBuf,
    pubkey: PathBuf,
    jobs: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.jobs);
    }
}

fn setup() -> Setup {
    setup_with("")
}

fn setup_with(extra_config: &str) -> Setup {
    let keys = tempfile::tempdir().unwrap().keep();
    let out = std::process::Command::new(brig_tests::brig_bin())
        .args(["attest", "keygen", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let brig = Brig::new(&format!(
        "[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n[attest]\nkey = \"{}\"\ndir = \"{{dir}}/attestations\"\nrootfs_cache = \"{{dir}}/cache\"\n{extra_config}",
        keys.join("attest.key").display()
    ));
    let attest_dir = brig.dir.path().join("attestations");
    let jobs = PathBuf::from(format!("/var/lib/brig/jobs/attest-{}", unique_id("t")));
    std::fs::create_dir_all(jobs.join("in")).unwrap();
    std::fs::create_dir_all(jobs.join("out")).unwrap();
    std::fs::write(jobs.join("in/data.txt"), "input bytes\n").unwrap();
    Setup { brig, attest_dir, pubkey: keys.join("attest.pub"), jobs }
}

fn job(s: &Setup, script: &str) -> Bundle {
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.push(
        "/mounts",
        json!({"destination": "/in", "type": "bind", "source": s.jobs.join("in"), "options": ["rbind", "ro"]}),
    );
    b.push(
        "/mounts",
        json!({"destination": "/out", "type": "bind", "source": s.jobs.join("out"), "options": ["rbind", "rw"]}),
    );
    b.annotate("dev.brig.inputs", "/in");
    b.annotate("dev.brig.outputs", "/out");
    b.annotate("dev.brig.image.digest", &format!("sha256:{}", "ab".repeat(32)));
    b
}

fn verify(s: &Setup, envelope: &Path, extra: &[&str]) -> (bool, String) {
    let out = s
        .brig
        .command()
        .args(["attest", "verify"])
        .arg(envelope)
        .arg("--key")
        .arg(&s.pubkey)
        .args(extra)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn sha256sum(p: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

fn statement(envelope: &Path) -> Value {
    let env: Value = serde_json::from_slice(&std::fs::read(envelope).unwrap()).unwrap();
    let payload = env["payload"].as_str().unwrap();
    let out = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut out = out;
    out.stdin.take().unwrap().write_all(payload.as_bytes()).unwrap();
    let o = out.wait_with_output().unwrap();
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Kernel log lines of memfd refusals whose process was brig itself (a job's
/// own are `brig-probe[…]`, `sh[…]`, …).
fn brigs_memfd_refusals_logged() -> usize {
    let out = std::process::Command::new("dmesg").output().expect("dmesg");
    assert!(out.status.success(), "dmesg: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("] brig[") && l.contains("memfd_create()"))
        .count()
}

#[test]
fn a_run_is_attested_and_every_tamper_is_caught() {
    let s = setup();
    let b = job(&s, "cat /in/data.txt > /out/copy.txt; echo second > /out/second.txt");
    let id = unique_id("att");
    let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ";
    let mut b = b;
    b.annotate("dev.brig.token", token);
    let kernel_errors_before = brigs_memfd_refusals_logged();
    let (code, _, err) = s.brig.run(&b, &id);
    assert_eq!(code, 0, "{err}");
    // Setting vm.memfd_noexec puts nothing in the kernel log (a refused
    // executable memfd, brig's old check, is logged at error level and held
    // the launch while a serial console printed it).
    assert_eq!(brigs_memfd_refusals_logged(), kernel_errors_before, "brig's launch logged a memfd refusal");
    let envelope = s.attest_dir.join(format!("{id}.intoto.json"));
    assert!(envelope.exists(), "no attestation at {}", envelope.display());
    let out_dir = s.jobs.join("out");
    let (ok, msg) = verify(
        &s,
        &envelope,
        &[
            "--artifacts",
            &format!("/out={}", out_dir.display()),
            "--require",
            "profile=restricted",
            "--require",
            "exit=0",
            "--require",
            &format!("image=sha256:{}", "ab".repeat(32)),
            "--require",
            "inputs-unchanged=true",
        ],
    );
    assert!(ok, "{msg}");
    // The subjects are the outputs, with the digests sha256sum computes.
    let st = statement(&envelope);
    // `restricted` sets vm.memfd_noexec in the job's pid namespace (this
    // machine's kernel has it).
    let enforcement = &st["predicate"]["buildDefinition"]["internalParameters"]["enforcement"];
    assert_eq!(enforcement["other"]["memfd_noexec"], "enforced", "{enforcement}");
    let subjects = st["subject"].as_array().unwrap();
    for (name, file) in [("out/copy.txt", "copy.txt"), ("out/second.txt", "second.txt")] {
        let subj =
            subjects.iter().find(|x| x["name"] == name).unwrap_or_else(|| panic!("{name} not a subject: {subjects:?}"));
        assert_eq!(subj["digest"]["sha256"], sha256sum(&out_dir.join(file)));
    }
    // The token never appears.
    let text = std::fs::read_to_string(&envelope).unwrap();
    assert!(!text.contains(token) && !serde_json::to_string(&st).unwrap().contains(token));

    // Tampering: a byte of the envelope's signature, of the payload, of an output.
    let mut env: Value = serde_json::from_str(&text).unwrap();
    let sig = env["signatures"][0]["sig"].as_str().unwrap().to_string();
    let flipped = if sig.starts_with('A') { sig.replacen('A', "B", 1) } else { format!("A{}", &sig[1..]) };
    env["signatures"][0]["sig"] = json!(flipped);
    let bad = s.brig.dir.path().join("bad-sig.json");
    std::fs::write(&bad, env.to_string()).unwrap();
    let (ok, msg) = verify(&s, &bad, &[]);
    assert!(!ok && msg.to_lowercase().contains("signature"), "{msg}");

    let mut env: Value = serde_json::from_str(&text).unwrap();
    let mut st2 = st.clone();
    st2["predicate"]["runDetails"]["metadata"]["invocationId"] = json!("someone-else");
    let enc = std::process::Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut enc = enc;
    enc.stdin.take().unwrap().write_all(serde_json::to_string(&st2).unwrap().as_bytes()).unwrap();
    env["payload"] = json!(String::from_utf8(enc.wait_with_output().unwrap().stdout).unwrap());
    let bad = s.brig.dir.path().join("bad-payload.json");
    std::fs::write(&bad, env.to_string()).unwrap();
    let (ok, msg) = verify(&s, &bad, &[]);
    assert!(!ok && msg.to_lowercase().contains("signature"), "{msg}");

    std::fs::write(out_dir.join("second.txt"), "changed\n").unwrap();
    let (ok, msg) = verify(&s, &envelope, &["--artifacts", &format!("/out={}", out_dir.display())]);
    assert!(!ok && msg.contains("second.txt"), "{msg}");
    // A requirement that does not hold.
    let (ok, msg) = verify(&s, &envelope, &["--require", "profile=permissive"]);
    assert!(!ok && msg.contains("profile"), "{msg}");
    // `brig attest show` prints it readably.
    let show = s.brig.ok(&["attest", "show", envelope.to_str().unwrap()]);
    assert!(show.contains("restricted") && show.contains(&id), "{show}");
}

#[test]
fn timeouts_oom_and_kills_are_attested() {
    let s = setup();
    // Timeout.
    let mut t = job(&s, "sleep 30");
    t.annotate("dev.brig.timeout", "1s");
    let id_t = unique_id("att-t");
    let (code, _, _) = s.brig.run(&t, &id_t);
    assert_eq!(code, 143);
    let (ok, msg) = verify(
        &s,
        &s.attest_dir.join(format!("{id_t}.intoto.json")),
        &["--require", "timed_out=true", "--require", "signal=15"],
    );
    assert!(ok, "{msg}");
    // OOM.
    let mut o = Bundle::new(&["/bin/brig-probe", "mem-bomb", "1024"]);
    o.set("/linux/resources/memory", json!({"limit": 64 << 20, "swap": 64 << 20}));
    let id_o = unique_id("att-o");
    let (code, _, _) = s.brig.run(&o, &id_o);
    assert_eq!(code, 137);
    let (ok, msg) = verify(&s, &s.attest_dir.join(format!("{id_o}.intoto.json")), &["--require", "oom=true"]);
    assert!(ok, "{msg}");
    // Killed by `brig kill`.
    let k = job(&s, "sleep 30");
    let id_k = unique_id("att-k");
    s.brig.ok(&["run", "-d", "--bundle", k.path().to_str().unwrap(), &id_k]);
    s.brig.ok(&["kill", &id_k, "KILL"]);
    s.brig.wait_status(&id_k, "stopped");
    s.brig.ok(&["delete", &id_k]);
    let (ok, msg) = verify(
        &s,
        &s.attest_dir.join(format!("{id_k}.intoto.json")),
        &["--require", "killed=true", "--require", "signal=9", "--require", "oom=false"],
    );
    assert!(ok, "{msg}");
}

/// Attestation settings that `delete` could never sign with (a missing key,
/// a public key, an envelope directory that is a file, a relative path) are
/// refused at `create`, naming the setting, before the job runs: the job
/// used to run, and its container could then never be deleted.
#[test]
fn attestation_settings_are_checked_before_the_job_runs() {
    let s = setup();
    let file = s.brig.dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    for (key, dir, named) in [
        ("/nonexistent/attest.key".to_string(), "{dir}/attestations".to_string(), "`key`"),
        (s.pubkey.display().to_string(), "{dir}/attestations".to_string(), "`key`"),
        ("attest.key".to_string(), "{dir}/attestations".to_string(), "`key` = `attest.key` is not an absolute path"),
        (s.pubkey.with_file_name("attest.key").display().to_string(), file.display().to_string(), "`dir`"),
    ] {
        let brig = Brig::new(&format!(
            "[auth]\nmode = \"off\"\n[profiles]\ndefault = \"restricted\"\n[attest]\nkey = \"{key}\"\ndir = \"{dir}\"\nrootfs_cache = \"{{dir}}/cache\"\n"
        ));
        let id = unique_id("attcfg");
        let b = job(&s, "echo RAN > /out/ran.txt");
        let err = brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
        assert!(err.contains("[attest]") && err.contains(named), "{key} {dir}: {err}");
        assert!(!brig.root.join(&id).exists(), "{key} {dir}: a container is left");
        assert!(!s.jobs.join("out/ran.txt").exists());
    }
}

#[test]
fn inputs_must_be_read_only_and_within_limits() {
    let s = setup();
    let mut b = job(&s, "true");
    // An input mounted writable is refused.
    let mounts: Vec<Value> = b.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if m["destination"] == "/in" {
                m["options"] = json!(["rbind", "rw"]);
            }
            m
        })
        .collect();
    b.set("/mounts", json!(mounts));
    let err = s.brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("att")]);
    assert!(err.contains("dev.brig.inputs") && err.contains("read-only"), "{err}");
    // A malformed image digest is refused.
    let mut b = job(&s, "true");
    b.annotate("dev.brig.image.digest", "sha256:nothex");
    let err = s.brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("att")]);
    assert!(err.contains("dev.brig.image.digest"), "{err}");
}

/// The job sees the last mount at a path: a second mount at a declared
/// input or output (or one inside it, or one laid over it later) would make
/// the signed record name data the job never read or a file it never wrote.
/// Each is refused at `create`, naming the annotation.
#[test]
fn a_mount_over_a_declared_input_or_output_is_refused() {
    let s = setup();
    std::fs::create_dir_all(s.jobs.join("evil")).unwrap();
    std::fs::write(s.jobs.join("evil/data.txt"), "not what was measured\n").unwrap();
    for (dest, key) in [("/in", "dev.brig.inputs"), ("/in/sub", "dev.brig.inputs"), ("/out", "dev.brig.outputs")] {
        let mut b = job(&s, "true");
        b.push(
            "/mounts",
            json!({"destination": dest, "type": "bind", "source": s.jobs.join("evil"), "options": ["rbind", "ro"]}),
        );
        let err = s.brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("att")]);
        assert!(err.contains(key) && (err.contains("measured") || err.contains("mounted 2 times")), "{dest}: {err}");
    }
}

/// The audit log's chain alone cannot show a log rewritten with every hash
/// recomputed, or cut back at its end. Each run's signed attestation names
/// its launch record (seq and line hash), and `brig audit verify --attested`
/// checks the log against them.
#[test]
fn attestations_anchor_the_audit_log() {
    let s = setup_with("[audit]\npath = \"{dir}/audit.log\"\n");
    let log = s.brig.dir.path().join("audit.log");
    let ids: Vec<String> = (0..2).map(|_| unique_id("anc")).collect();
    for id in &ids {
        let (code, _, err) = s.brig.run(&job(&s, "true"), id);
        assert_eq!(code, 0, "{err}");
    }
    let check = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", log.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, out, err) = s.brig.cmd_files(&args);
        (code, format!("{out}{err}"))
    };
    let attested = ["--attested", s.attest_dir.to_str().unwrap(), "--key", s.pubkey.to_str().unwrap()];
    let (code, out) = check(&attested);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 anchored record(s) match"), "{out}");
    let st = statement(&s.attest_dir.join(format!("{}.intoto.json", ids[1])));
    let anchor = &st["predicate"]["buildDefinition"]["internalParameters"]["authorization"]["auditRecord"];
    assert!(anchor["seq"].as_u64().is_some() && anchor["sha256"].as_str().is_some_and(|h| h.len() == 64), "{st}");

    // The last record rewritten (its decision changed), its hash recomputed:
    // the chain still holds, the anchor does not.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let last = lines.pop().unwrap();
    let body = &last[..last.rfind(",\"hash\"").unwrap()];
    let body = format!("{},\"reason\":\"rewritten\"}}", body.replacen(",\"reason\":", ",\"was\":", 1));
    let mut v: Value = serde_json::from_str(&body).unwrap();
    v.as_object_mut().unwrap().remove("was");
    let body = serde_json::to_string(&v).unwrap();
    let hash = sha256_hex(body.as_bytes());
    lines.push(format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]));
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let (code, out) = check(&[]);
    assert_eq!(code, 0, "the chain alone passes a resealed last line: {out}");
    let (code, out) = check(&attested);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("rewritten"), "{out}");

    // The last record removed.
    lines.pop();
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    assert_eq!(check(&[]).0, 0);
    let (code, out) = check(&attested);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("removed from its end"), "{out}");
    // An anchor given by hand, and one that is malformed.
    let (code, out) = check(&["--anchor", &format!("{}:{}", anchor["seq"], anchor["sha256"].as_str().unwrap())]);
    assert_ne!(code, 0, "{out}");
    assert_ne!(check(&["--anchor", "x"]).0, 0);

    // Rotation (the log moved aside, a new one started by the next launch):
    // the earlier runs' anchors are in the old log, which must be given too
    // (--rotated); then every anchor is checked where it belongs.
    std::fs::write(&log, text.clone()).unwrap();
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let id = unique_id("anc");
    let (code, _, err) = s.brig.run(&job(&s, "true"), &id);
    assert_eq!(code, 0, "{err}");
    let (code, out) = check(&attested);
    assert_ne!(code, 0, "anchors of a log not given must fail the check: {out}");
    assert!(out.contains("2 anchored record(s) are in none of the logs given"), "{out}");
    let mut with_rotated = attested.to_vec();
    with_rotated.extend_from_slice(&["--rotated", rotated.to_str().unwrap()]);
    let (code, out) = check(&with_rotated);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 anchored record(s) match") && out.contains("2 anchored record(s) match"), "{out}");
    // An envelope that does not verify fails the check, named, and the
    // others are still checked (not one error for the whole directory).
    let forged = s.attest_dir.join("0-forged.intoto.json");
    let mut env: Value =
        serde_json::from_slice(&std::fs::read(s.attest_dir.join(format!("{}.intoto.json", ids[0]))).unwrap()).unwrap();
    env["payload"] = Value::String(env["payload"].as_str().unwrap().replacen('e', "f", 1));
    std::fs::write(&forged, serde_json::to_vec(&env).unwrap()).unwrap();
    let (code, out) = check(&with_rotated);
    std::fs::remove_file(&forged).unwrap();
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("0-forged.intoto.json` does not verify"), "{out}");
    assert!(out.contains("1 anchored record(s) match") && out.contains("2 anchored record(s) match"), "{out}");
    // A FIFO (which would hang a plain read) and a link to /dev/zero (which
    // would fill memory) among the envelopes: each refused, named.
    let fifo = s.attest_dir.join("0-fifo.intoto.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let zero = s.attest_dir.join("0-zero.intoto.json");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let (code, out) = check(&with_rotated);
    std::fs::remove_file(&fifo).unwrap();
    std::fs::remove_file(&zero).unwrap();
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("0-fifo.intoto.json` is not a regular file"), "{out}");
    assert!(out.contains("0-zero.intoto.json` is not a regular file"), "{out}");
    // The current log replaced from its first line (every hash recomputed)
    // and one more run chained to it: the old anchors still fail it.
    std::fs::write(&log, "").unwrap();
    let (code, _, err) = s.brig.run(&job(&s, "true"), &unique_id("anc"));
    assert_eq!(code, 0, "{err}");
    let (code, out) = check(&attested);
    assert_ne!(code, 0, "{out}");
}

/// An output directory replaced on the host between the job's end and
/// `delete` (moved aside, a new one of the same name put in its place) is
/// not attested as the job's output. And a run whose output is over the
/// measuring limits, so that its record fails `attest verify`, still
/// anchors its launch decision: one job filling its output must not make
/// `brig audit verify --attested` fail for the whole log.
#[test]
fn an_output_replaced_after_the_job_is_not_attested_and_an_unmeasured_one_still_anchors() {
    let s = setup_with("max_files = 20\n[audit]\npath = \"{dir}/audit.log\"\n");
    let id = unique_id("swap");
    let bundle = job(&s, "echo genuine > /out/result.txt");
    s.brig.ok(&["create", "--bundle", bundle.path().to_str().unwrap(), &id]);
    s.brig.ok(&["start", &id]);
    s.brig.wait_status(&id, "stopped");
    let out = s.jobs.join("out");
    let real = s.jobs.join("out.real");
    std::fs::rename(&out, &real).unwrap();
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("result.txt"), "forged\n").unwrap();
    s.brig.ok(&["delete", &id]);
    let envelope = s.attest_dir.join(format!("{id}.intoto.json"));
    let (ok, text) = verify(&s, &envelope, &[]);
    assert!(!ok && text.contains("no longer the directory the job was given"), "{text}");
    let st = statement(&envelope);
    assert!(!st["subject"].to_string().contains("result.txt"), "the swapped output is a subject: {st}");

    // A fresh job directory: the one moved aside still belongs to the
    // first job's range (it was not the output when the range was freed).
    let s = setup_with("max_files = 20\n[audit]\npath = \"{dir}/audit.log\"\n");
    let full = unique_id("full");
    let (code, _, err) = s.brig.run(&job(&s, "for i in $(seq 1 30); do echo $i > /out/f$i; done"), &full);
    assert_eq!(code, 0, "{err}");
    let (ok, text) = verify(&s, &s.attest_dir.join(format!("{full}.intoto.json")), &[]);
    assert!(!ok && text.contains("/out"), "an output over the limits verified: {text}");
    let log = s.brig.dir.path().join("audit.log");
    let (code, stdout, stderr) = s.brig.cmd_files(&[
        "audit",
        "verify",
        log.to_str().unwrap(),
        "--attested",
        s.attest_dir.to_str().unwrap(),
        "--key",
        s.pubkey.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(format!("{stdout}{stderr}").contains("1 anchored record(s) match"), "{stdout}{stderr}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bytes");
    std::fs::write(&file, bytes).unwrap();
    sha256sum(&file)
}

/// The input directory is swapped for another one (renamed, no link on the
/// way) over and over while jobs that read it launch: what a job sharing
/// the data directory could do between the measurement and the mount. No
/// attestation ever names other data than what its job read: each launch
/// either measured and mounted the same directory, or fails naming the path
/// (the init checks it sees the measured directory).
#[test]
fn an_input_swapped_after_it_was_measured_is_never_attested_for_other_data() {
    let s = setup();
    let other = s.jobs.join("in-other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("data.txt"), "other bytes\n").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, jobs) = (stop.clone(), s.jobs.clone());
        std::thread::spawn(move || {
            let (input, other, aside) = (jobs.join("in"), jobs.join("in-other"), jobs.join("in-aside"));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::rename(&input, &aside);
                let _ = std::fs::rename(&other, &input);
                let _ = std::fs::rename(&aside, &other);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let (mut consistent, mut refused) = (0, 0);
    for _ in 0..16 {
        let id = unique_id("swapin");
        let (code, out, err) = s.brig.run(&job(&s, "cat /in/data.txt"), &id);
        if code != 0 {
            if err.contains("checked and measured") {
                refused += 1;
            }
            continue;
        }
        let st = statement(&s.attest_dir.join(format!("{id}.intoto.json")));
        let deps = st["predicate"]["buildDefinition"]["resolvedDependencies"].as_array().unwrap().clone();
        let measured = deps.iter().find(|d| d["name"] == "in/data.txt").unwrap()["digest"]["sha256"].clone();
        let read = sha256_hex(out.as_bytes());
        assert_eq!(measured, read.as_str(), "attested one input, the job read another: {out:?}");
        consistent += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!("{consistent} consistent runs, {refused} refused");
    assert!(refused > 0, "the swap never met a launch");
}

/// An input changed on the host while its job runs, and changed back (bytes
/// and modification time) before the job ends: the job read other data than
/// was measured. The attestation says the input changed during the run, and
/// `--require inputs-unchanged=true` refuses it.
#[test]
fn an_input_changed_on_the_host_during_the_run_is_attested_as_changed() {
    let s = setup();
    let input = s.jobs.join("in/data.txt");
    let read = s.jobs.join("out/read.txt");
    let original = std::fs::read(&input).unwrap();
    let mtime = std::fs::metadata(&input).unwrap().modified().unwrap();
    let tamper = {
        let (input, read, original) = (input.clone(), read.clone(), original.clone());
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            std::fs::write(&input, b"poisoned bytes\n").unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !read.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::fs::write(&input, &original).unwrap();
            std::fs::File::options().write(true).open(&input).unwrap().set_modified(mtime).unwrap();
        })
    };
    let id = unique_id("abain");
    // Renamed into place: the tamper thread puts the input back as soon as
    // the file appears, which a redirection does before `cat` has read.
    let (code, _, err) = s
        .brig
        .run(&job(&s, "sleep 2; cat /in/data.txt > /out/read.tmp && mv /out/read.tmp /out/read.txt; sleep 1"), &id);
    tamper.join().unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&read).unwrap(), b"poisoned bytes\n", "the job did not read the changed input");
    assert_eq!(std::fs::read(&input).unwrap(), original, "the input is back as it was");
    let envelope = s.attest_dir.join(format!("{id}.intoto.json"));
    let st = statement(&envelope);
    let deps = st["predicate"]["buildDefinition"]["resolvedDependencies"].as_array().unwrap().clone();
    let measured = deps.iter().find(|d| d["name"] == "in/data.txt").unwrap()["digest"]["sha256"].clone();
    assert_eq!(measured, sha256_hex(&original).as_str(), "the measurement was before the change");
    let tree = deps.iter().find(|d| d["name"] == "inputs:/in").unwrap();
    assert_eq!(tree["annotations"]["unchangedDuringRun"], json!(false), "{tree}");
    let (ok, msg) = verify(&s, &envelope, &["--require", "inputs-unchanged=true"]);
    assert!(!ok && msg.contains("inputs-unchanged") && msg.contains("false"), "{msg}");
    let show = s.brig.ok(&["attest", "show", envelope.to_str().unwrap()]);
    assert!(show.contains("CHANGED on the host during the run"), "{show}");
}

#[test]
fn a_full_disk_keeps_the_container_for_a_retry() {
    let s = setup();
    // The attestation directory is a tiny tmpfs, filled up.
    std::fs::create_dir_all(&s.attest_dir).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&s.attest_dir)
        .status()
        .unwrap();
    assert!(st.success());
    let filler = s.attest_dir.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 64 * 1024]);
    let b = job(&s, "echo x > /out/x");
    let id = unique_id("att-full");
    s.brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    s.brig.wait_status(&id, "stopped");
    let err = s.brig.fails(&["delete", &id]);
    assert!(err.contains("attestation was not written") && err.contains("retry"), "{err}");
    assert_eq!(s.brig.status(&id), "stopped", "the container must be kept");
    assert!(std::fs::read_dir(&s.attest_dir).unwrap().flatten().all(|e| e.file_name() == "filler"), "no partial file");
    // Between the failed delete and its retry, the outputs change on the
    // host: the retry writes what the first attempt measured and signed.
    let out_dir = s.jobs.join("out");
    std::fs::write(out_dir.join("x"), "TAMPERED\n").unwrap();
    std::fs::write(out_dir.join("planted"), "planted\n").unwrap();
    std::fs::remove_file(&filler).unwrap();
    s.brig.ok(&["delete", &id]);
    let envelope = s.attest_dir.join(format!("{id}.intoto.json"));
    let artifacts = format!("/out={}", out_dir.display());
    let (ok, msg) = verify(&s, &envelope, &["--require", "exit=0", "--artifacts", &artifacts]);
    assert!(!ok && msg.contains("out/x"), "the retry attested the outputs as they were at the retry: {msg}");
    let subjects = statement(&envelope)["subject"].to_string();
    assert!(!subjects.contains("planted"), "{subjects}");
    std::fs::write(out_dir.join("x"), "x\n").unwrap();
    std::fs::remove_file(out_dir.join("planted")).unwrap();
    let (ok, msg) = verify(&s, &envelope, &["--require", "exit=0", "--artifacts", &artifacts]);
    assert!(ok, "{msg}");
    let _ = std::process::Command::new("umount").arg(&s.attest_dir).status();
}

/// A `delete` whose write got as far as its rename (killed before it removed
/// the container) and is then retried adds no second record of the run;
/// and a run record that cannot be read keeps the container instead of
/// deleting it unattested.
#[test]
fn a_retried_delete_records_the_run_once_and_an_unreadable_record_keeps_it() {
    let s = setup();
    let b = job(&s, "echo y > /out/y");
    let id = unique_id("att-once");
    s.brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    s.brig.wait_status(&id, "stopped");
    let state_dir = s.brig.root.join(&id);
    let record = state_dir.join("brig.json");
    let saved = std::fs::read(&record).unwrap();
    std::fs::write(&record, b"{garbage").unwrap();
    let err = s.brig.fails(&["delete", "--force", &id]);
    assert!(err.contains("brig.json") && err.contains("cannot be read") && err.contains("kept"), "{err}");
    assert_eq!(s.brig.status(&id), "stopped", "the container must be kept");
    std::fs::write(&record, &saved).unwrap();
    // A first attempt that fails after sealing: the attestation directory
    // is replaced by a file, so the write fails once the envelope is kept.
    let attest_dir = s.attest_dir.clone();
    let aside = s.brig.dir.path().join("attestations-aside");
    std::fs::rename(&attest_dir, &aside).unwrap();
    std::fs::write(&attest_dir, b"not a directory").unwrap();
    let err = s.brig.fails(&["delete", &id]);
    assert!(err.contains("attestation was not written"), "{err}");
    let kept = std::fs::read(state_dir.join("brig-envelope.json")).unwrap();
    std::fs::remove_file(&attest_dir).unwrap();
    std::fs::rename(&aside, &attest_dir).unwrap();
    // The record as a delete killed after its rename leaves it: written,
    // and the container still there; and an earlier attempt's temporary
    // file, as one killed before its rename leaves it.
    std::fs::write(attest_dir.join(format!("{id}.intoto.json")), &kept).unwrap();
    let unfinished = attest_dir.join(format!(".{id}.intoto.json.2147483647.0123456789ab.tmp"));
    std::fs::write(&unfinished, &kept[..10]).unwrap();
    s.brig.ok(&["delete", &id]);
    assert!(!unfinished.exists(), "an earlier attempt's temporary file was left");
    let names: Vec<String> = std::fs::read_dir(&attest_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(id.as_str()))
        .collect();
    assert_eq!(names, [format!("{id}.intoto.json")], "the run was recorded twice");
    let (ok, msg) = verify(&s, &attest_dir.join(format!("{id}.intoto.json")), &["--require", "exit=0"]);
    assert!(ok, "{msg}");
}

/// Records are keyed by container id, and ids are not unique across state
/// roots (a platform's per-tenant roots) nor over time (a reused name): a
/// later run never replaces an earlier run's record; it takes
/// `<id>~<n>.intoto.json`, which verifies as that container's (and only
/// as its: `<id>.1` is another container's id).
#[test]
fn a_later_run_of_the_same_id_never_replaces_a_record() {
    let s = setup();
    let id = unique_id("att-reused");
    let first = job(&s, "exit 0");
    let (code, _, err) = s.brig.run(&first, &id);
    assert_eq!(code, 0, "{err}");
    let record = s.attest_dir.join(format!("{id}.intoto.json"));
    let before = std::fs::read(&record).unwrap();
    // The same id under another state root, with the same configuration.
    let other_root = s.brig.dir.path().join("other-root");
    let second = job(&s, "exit 3");
    let out = std::process::Command::new(brig_tests::brig_bin())
        .arg("--root")
        .arg(&other_root)
        .arg("--config")
        .arg(&s.brig.config)
        .args(["run", "--bundle", second.path().to_str().unwrap(), &id])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&record).unwrap(), before, "the first run's record was replaced");
    let (ok, msg) = verify(&s, &record, &["--require", "exit=0"]);
    assert!(ok, "{msg}");
    let later = s.attest_dir.join(format!("{id}~1.intoto.json"));
    let (ok, msg) = verify(&s, &later, &["--require", "exit=3"]);
    assert!(ok, "{msg}");
    // A record under another id's name is still refused.
    let copied = s.attest_dir.join("someone-else~1.intoto.json");
    std::fs::copy(&later, &copied).unwrap();
    let (ok, msg) = verify(&s, &copied, &[]);
    assert!(!ok && msg.contains("holds the record of container"), "{msg}");
}

/// The root filesystem is measured at `create`; a change on the host
/// before `start` (or during the run) means what ran is not what was
/// measured. Its change stamp, taken once the container is built, is taken
/// again when the job has ended, and the record says whether it held
/// (`rootfs-unchanged`): the mount points libcontainer makes in the tree
/// are no change, a writable rootfs (the job's own writes) and a rootfs
/// directory replaced before `delete` (an unmounted overlay) are unknown.
#[test]
fn a_rootfs_changed_between_create_and_start_is_attested_as_changed() {
    let s = setup();
    // No mount points in it: libcontainer makes /proc, /dev, /in, /out...
    let make_root = || {
        let root = tempfile::Builder::new().prefix("brig-rootfs-").tempdir().unwrap();
        for d in ["bin", "etc"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        std::fs::copy(brig_tests::rootfs().join("bin/busybox"), root.path().join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", root.path().join("bin/sh")).unwrap();
        std::os::unix::fs::symlink("busybox", root.path().join("bin/cat")).unwrap();
        std::fs::write(root.path().join("etc/motd"), "as measured\n").unwrap();
        root
    };
    let root = make_root();
    let with_root = |root: &Path, script: &str| {
        let mut b = job(&s, script);
        b.set("/root", json!({"path": root, "readonly": true}));
        b
    };
    let rootfs_unchanged = |id: &str| {
        let st = statement(&s.attest_dir.join(format!("{id}.intoto.json")));
        let deps = st["predicate"]["buildDefinition"]["resolvedDependencies"].as_array().unwrap().clone();
        deps.iter().find(|d| d["name"] == "rootfs").unwrap()["annotations"]["unchangedDuringRun"].clone()
    };
    // Unchanged (mount points made in it by the build): said so.
    let id = unique_id("rootfs-same");
    let (code, _, err) = s.brig.run(&with_root(root.path(), "cat /etc/motd > /out/motd"), &id);
    assert_eq!(code, 0, "{err}");
    assert!(root.path().join("proc").is_dir(), "libcontainer made no mount point in the rootfs");
    let envelope = s.attest_dir.join(format!("{id}.intoto.json"));
    let (ok, msg) = verify(&s, &envelope, &["--require", "rootfs-unchanged=true"]);
    assert!(ok, "{msg}");
    // Changed on the host after create measured it, before start.
    let id = unique_id("rootfs-changed");
    // (Another output file: the first job's belongs to its own ID range.)
    let b = with_root(root.path(), "cat /etc/motd > /out/motd2");
    s.brig.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    std::fs::write(root.path().join("etc/motd"), "swapped in after the measurement\n").unwrap();
    s.brig.ok(&["start", &id]);
    s.brig.wait_status(&id, "stopped");
    s.brig.ok(&["delete", &id]);
    assert_eq!(std::fs::read_to_string(s.jobs.join("out/motd2")).unwrap(), "swapped in after the measurement\n");
    let envelope = s.attest_dir.join(format!("{id}.intoto.json"));
    let (ok, msg) = verify(&s, &envelope, &["--require", "rootfs-unchanged=true"]);
    assert!(!ok && msg.contains("rootfs-unchanged") && msg.contains("false"), "{msg}");
    let show = s.brig.ok(&["attest", "show", envelope.to_str().unwrap()]);
    assert!(show.contains("CHANGED after it was measured"), "{show}");
    // The rootfs directory replaced before delete (a client that unmounts
    // its overlay first leaves the empty mount point): unknown, not changed.
    let root2 = make_root();
    let id = unique_id("rootfs-gone");
    let b = with_root(root2.path(), "true");
    s.brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    s.brig.wait_status(&id, "stopped");
    let aside = root2.path().with_extension("aside");
    std::fs::rename(root2.path(), &aside).unwrap();
    std::fs::create_dir(root2.path()).unwrap();
    s.brig.ok(&["delete", &id]);
    std::fs::remove_dir_all(&aside).unwrap();
    assert_eq!(rootfs_unchanged(&id), Value::Null, "a replaced rootfs directory is no verdict");
    // A writable rootfs (the job may write it): no verdict either.
    let root3 = make_root();
    let id = unique_id("rootfs-rw");
    let mut b = job(&s, "true");
    b.set("/root", json!({"path": root3.path(), "readonly": false}));
    b.annotate("dev.brig.profile", "standard");
    let (code, _, err) = s.brig.run(&b, &id);
    assert_eq!(code, 0, "{err}");
    assert_eq!(rootfs_unchanged(&id), Value::Null, "a writable rootfs is no verdict");
}
