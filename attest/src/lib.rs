//! brig's per-run attestations: measurement, in-toto statements, DSSE signing,
//! atomic writing, and verification. The format and its guarantees are in
//! `docs/attestation.md`.
//!
//! The shim's part, in order:
//!
//! 1. at `create`, before the job starts: [`rootfs_digest`] of the rootfs and
//!    [`hash_tree`] of every input mount (refuse the launch on
//!    [`MeasureError::LimitExceeded`]); keep the results in the run record;
//! 2. when the job has ended (at the latest on `delete`): [`hash_tree`] of
//!    every output mount, fill a [`RunFacts`], and call [`attest`] (or
//!    [`statement_bytes`], [`sign`] and [`write_envelope`] one by one). If
//!    writing fails ([`WriteError`]), keep the state and report it, so that
//!    `delete` can be retried.
//!
//! Verification ([`verify`], [`show`]) needs none of the runtime; the
//! `brig-attest` binary in this crate and `brig attest` both call it.

#![forbid(unsafe_code)]

pub mod cli;
mod dsse;
mod facts;
mod keys;
mod measure;
pub mod name;
mod rootfs;
mod statement;
mod verify;
mod walk;
mod write;

use std::path::{Path, PathBuf};

pub use dsse::{pae, sign, Envelope, Signature, PAYLOAD_TYPE};
pub use facts::{
    AuditRecordRef, Authorization, Capabilities, Enforcement, IdMap, Identity, JobRequest, Landlock, MountTree,
    Outcome, ProfileFacts, Resources, RootfsFacts, RunFacts, Seccomp, UserNamespace,
};
pub use keys::{
    keygen, keyid, Algorithm, KeyError, KeyFiles, PublicKey, SigningKey, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE,
};
pub use measure::{
    change_stamp, hash_tree, hash_tree_no_links, hash_tree_no_links_identified, hash_tree_no_links_stamped, EntryKind,
    Limit, Limits, MeasureError, StampedTree, TreeDigest, TreeEntry, TREE_FORMAT,
};
pub use rootfs::{
    cache_file, rootfs_digest, rootfs_digest_with, CacheReport, CacheStatus, RootfsDigest, CACHE_MAX_FILES,
    RACY_WINDOW_NS, ROOTFS_FORMAT,
};
pub use statement::{
    entry_name, outcome_json, parse_digest, run_subject_digest, statement, statement_bytes, valid_container_id,
    StatementError, BUILDER_PREFIX, BUILD_TYPE, OUTCOME_MEDIA_TYPE, PREDICATE_TYPE, ROOTFS_MEDIA_TYPE,
    RUN_SUBJECT_PREFIX, STATEMENT_TYPE, TREE_MEDIA_TYPE,
};
pub use verify::{
    clean, show, signed_audit_anchor, verify, verify_with, Artifacts, Field, Requirement, Subject, VerifiedStatement,
    VerifyError, MAX_ENVELOPE_BYTES,
};
pub use write::{
    envelope_path, remove_stale_temporaries, write_envelope, write_envelope_bytes, WriteError, ENVELOPE_SUFFIX,
};

/// Why [`attest`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("cannot build the statement: {0}")]
    Statement(#[from] StatementError),
    #[error("cannot sign the statement: {0}")]
    Sign(#[from] KeyError),
    #[error("cannot write the attestation: {0}")]
    Write(#[from] WriteError),
}

/// Builds the statement of a run, signs it and writes it to
/// `<dir>/<container-id>.intoto.json`; returns the path.
pub fn attest(facts: &RunFacts, key: &SigningKey, dir: &Path) -> Result<PathBuf, AttestError> {
    let payload = statement_bytes(facts)?;
    let env = sign(&payload, PAYLOAD_TYPE, key)?;
    Ok(write_envelope(dir, &facts.container_id, &env)?)
}
