//! Independent verification: brig's envelopes checked by Python's
//! `securesystemslib` (DSSE, keyid match) and `jsonschema` (the Statement v1 /
//! SLSA Provenance v1 schema in `statement-v1.schema.json`). The test installs
//! both into a virtual environment under `target/` when they are missing and
//! fails, saying why, when it cannot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use brig_attest::*;

const PACKAGES: &[&str] = &["securesystemslib[crypto]==1.6.0", "jsonschema==4.26.0"];
const CHECK: &str = "import securesystemslib, jsonschema, cryptography; \
    from securesystemslib.dsse import Envelope; from securesystemslib.signer import SSlibKey; \
    v = tuple(int(x) for x in securesystemslib.__version__.split('.')[:2]); assert v >= (0, 27), v";

fn venv() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("brig-attest-venv");
    let python = dir.join("bin/python");
    let ready = || Command::new(&python).args(["-c", CHECK]).output().is_ok_and(|o| o.status.success());
    if ready() {
        return python;
    }
    let run = |cmd: &mut Command| {
        let out =
            cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (python3 with venv and pip is required)"));
        assert!(
            out.status.success(),
            "{cmd:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&dir));
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(PACKAGES));
    assert!(ready(), "securesystemslib and jsonschema were installed into {} but do not import", dir.display());
    python
}

fn check(
    python: &Path,
    envelope: &Path,
    pubkey: &Path,
    artifacts: Option<&Path>,
    resign: Option<(&Path, &Path)>,
) -> String {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut cmd = Command::new(python);
    cmd.arg(here.join("independent_verify.py")).arg(envelope).arg(pubkey).arg(here.join("statement-v1.schema.json"));
    if let Some(a) = artifacts {
        cmd.arg("--artifacts").arg(a);
    }
    if let Some((private, out)) = resign {
        cmd.arg("--resign").arg(private).arg(out);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn securesystemslib_and_the_schema_accept_brigs_envelopes() {
    let python = venv();
    let d = tempfile::tempdir().unwrap();
    let s = common::sample(&d.path().join("run"));
    for (i, alg) in [Algorithm::Ed25519, Algorithm::EcdsaP256].into_iter().enumerate() {
        let keys = keygen(&d.path().join(format!("keys{i}")), alg).unwrap();
        let key = SigningKey::load(&keys.private).unwrap();
        let out = d.path().join(format!("att{i}"));
        std::fs::create_dir(&out).unwrap();

        let env = attest(&s.facts, &key, &out).unwrap();
        let theirs = d.path().join(format!("theirs{i}.json"));
        let said = check(&python, &env, &keys.public, Some(&s.artifacts), Some((&keys.private, &theirs)));
        assert!(said.contains("2 file(s) rehashed"), "{said}");

        // The other way round: securesystemslib signs, brig verifies.
        let public = PublicKey::load(&keys.public).unwrap();
        let theirs = std::fs::read(&theirs).unwrap();
        let v = verify(&theirs, std::slice::from_ref(&public), Some(&s.artifacts), &["tenant=acme".parse().unwrap()])
            .unwrap();
        assert_eq!(v.keyid, key.keyid());
        let mut t = theirs.clone();
        let at = t.windows(5).position(|w| w == b"\"sig\"").unwrap() + 12;
        t[at] = if t[at] == b'A' { b'B' } else { b'A' };
        assert!(matches!(verify(&t, &[public], None, &[]), Err(VerifyError::BadSignature { .. })));

        // A run that produced nothing (the run is the subject), killed by a signal.
        let mut none = s.facts.clone();
        none.container_id = "job-43".into();
        none.outputs.clear();
        none.outcome = Outcome { signal: Some(9), killed: true, ..Outcome::default() };
        let env = attest(&none, &key, &out).unwrap();
        check(&python, &env, &keys.public, None, None);
    }
}
