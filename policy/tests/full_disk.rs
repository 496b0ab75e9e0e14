//! A full disk under the audit log, for real: a tiny tmpfs mounted for the
//! test (the tests run as root; without root this test fails rather than
//! skip).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use brig_policy::{audit, Action, AuditError, AuditLog, AuditRecord};

fn record(id: &str, reason: &str) -> AuditRecord {
    let mut r = AuditRecord::not_authorized(SystemTime::now(), id, Action::Launch, None);
    r.reason = reason.to_string();
    r
}

/// A record that does not fit is refused with the error and leaves no
/// partial line: the log still verifies, and once there is room again the
/// next record chains to the last whole one.
#[test]
fn a_full_disk_never_leaves_a_partial_audit_record() {
    let tmpfs = brig_tests::SmallTmpfs::mount("audit", "64k");
    let dir = tmpfs.path();

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
    tmpfs.fill(0);

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
