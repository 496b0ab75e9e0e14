//! A full disk, for real: a tiny tmpfs mounted for the test (the tests run as
//! root; without root this test fails rather than skip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use brig_attest::*;
use std::path::Path;

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn full_disk_never_leaves_a_half_written_envelope() {
    let tmpfs = brig_tests::SmallTmpfs::mount("attestations", "64k");
    let dir = tmpfs.path().to_path_buf();
    let d = tempfile::tempdir().unwrap();

    let s = common::sample(&d.path().join("run"));
    let k = SigningKey::generate(Algorithm::Ed25519).unwrap();
    // A first envelope fits.
    let first = attest(&s.facts, &k, &dir).unwrap();
    let before = std::fs::read(&first).unwrap();

    // A bigger one for the same container, with 2 KiB left: the write starts,
    // then the disk is full.
    let mut big = s.facts.clone();
    big.request.args = (0..400).map(|i| format!("argument-{i:04}")).collect();
    let env = sign(&statement_bytes(&big).unwrap(), PAYLOAD_TYPE, &k).unwrap();
    assert!(env.to_json().len() > 8192);
    tmpfs.fill(2048);
    let e = write_envelope(&dir, "job-42", &env).unwrap_err();
    assert!(matches!(e, WriteError::NoSpace { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("no space left") && msg.contains("temporary file was removed"), "{msg}");
    assert_eq!(listing(&dir), ["filler", "job-42.intoto.json"], "no temporary file is left");
    assert_eq!(std::fs::read(&first).unwrap(), before, "the previous envelope is intact");
    assert!(verify(&before, &[k.public_key().clone()], None, &[]).is_ok());

    // Another container: nothing at all is left behind.
    let e = write_envelope(&dir, "job-43", &env).unwrap_err();
    assert!(matches!(e, WriteError::NoSpace { .. }), "{e}");
    assert_eq!(listing(&dir), ["filler", "job-42.intoto.json"]);

    // Space again: the retry succeeds.
    std::fs::remove_file(dir.join("filler")).unwrap();
    let p = write_envelope(&dir, "job-42", &env).unwrap();
    assert!(verify(&std::fs::read(p).unwrap(), &[k.public_key().clone()], None, &[]).is_ok());
}

/// keygen on a full disk fails naming the file and leaves no key file cut
/// short behind (which would make every later keygen refuse with `Exists`).
#[test]
fn keygen_on_a_full_disk_leaves_no_partial_key() {
    let tmpfs = brig_tests::SmallTmpfs::mount("keys", "64k");
    let dir = tmpfs.path().join("keys");
    std::fs::create_dir(&dir).unwrap();
    tmpfs.fill(0);
    let e = keygen(&dir, Algorithm::Ed25519).unwrap_err();
    assert!(e.to_string().contains("attest.key") || e.to_string().contains("attest.pub"), "{e}");
    assert!(listing(&dir).is_empty(), "a partial key was left: {:?}", listing(&dir));
    std::fs::remove_file(tmpfs.path().join("filler")).unwrap();
    keygen(&dir, Algorithm::Ed25519).unwrap();
    assert_eq!(listing(&dir), [PRIVATE_KEY_FILE, PUBLIC_KEY_FILE]);
}
