//! A full disk under the audit log, for real: a tiny tmpfs mounted for the
//! test (the tests run as root; without root this test fails rather than
//! skip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use brig_policy::{audit, Action, AuditError, AuditLog, AuditRecord};

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn record(id: &str, reason: &str) -> AuditRecord {
    let mut r = AuditRecord::not_authorized(SystemTime::now(), id, Action::Launch, None);
    r.reason = reason.to_string();
    r
}

/// Fills the file system of `dir` completely.
fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    f.sync_all().unwrap();
}

/// A record that does not fit is refused with the error and leaves no
/// partial line: the log still verifies, and once there is room again the
/// next record chains to the last whole one.
#[test]
fn a_full_disk_never_leaves_a_partial_audit_record() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test mounts a tmpfs to fill a disk for real and must run as root (the test suite runs as root)"
    );
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("audit");
    std::fs::create_dir(&dir).unwrap();
    let st =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "brig-audit-test"]).arg(&dir).status();
    assert!(st.is_ok_and(|s| s.success()), "cannot mount a tmpfs on {}", dir.display());
    let _mount = Mount(dir.clone());

    let path = dir.join("audit.log");
    let log = AuditLog::open(&path).unwrap();
    // Small records (≈ 400 bytes) until the file ends less than 600 bytes
    // before a page boundary, so that a big record (≈ 1.9 KB) starts in the
    // page the file has and needs a new one (tmpfs allocates pages): then
    // the disk is filled, and its write is cut short.
    let big = "x".repeat(1500);
    let mut n = 0;
    while std::fs::metadata(&path).map(|m| m.len() % 4096).unwrap_or(0) < 3500 {
        log.append(&record(&format!("job-{n}"), "small")).unwrap();
        n += 1;
    }
    let before = std::fs::read(&path).unwrap();
    fill(&dir);

    let e = log.append(&record("job-full", &big)).unwrap_err();
    assert!(matches!(e, AuditError::Io { op: "writing", .. }), "{e}");
    assert!(e.to_string().contains("No space left") && e.to_string().contains("audit.log"), "{e}");
    let after = std::fs::read(&path).unwrap();
    assert!(
        after == before,
        "the log is cut back to its last whole record: {} bytes, were {}",
        after.len(),
        before.len()
    );
    assert_eq!(audit::verify(&path).unwrap(), n);

    std::fs::remove_file(dir.join("filler")).unwrap();
    log.append(&record("job-after", "room again")).unwrap();
    assert_eq!(audit::verify(&path).unwrap(), n + 1);
}
