//! brig's launch authorization: job tokens verified against a JWKS, Cedar
//! policies over the token's claims and the final OCI spec, and the
//! hash-chained audit log. `docs/policy.md` is the user-facing description.
//!
//! The shim calls, per launch:
//!
//! 1. [`TokenVerifier::new`] with the `[auth]` section, then
//!    [`TokenVerifier::verify_for_launch`] (or `verify_for_exec`);
//! 2. [`PolicySet::load_with`] with the `[policy]` section;
//! 3. [`LaunchContext::from_spec`] on the final spec;
//! 4. [`authorize`] → [`Decision`];
//! 5. [`AuditLog::append`] with an [`AuditRecord`], before going on.
#![forbid(unsafe_code)]

pub mod audit;
pub mod authz;
mod cache;
mod claims;
pub mod config;
pub mod context;
mod decide;
pub mod devtools;
mod jwks;
pub mod replay;
pub mod testing;
pub mod token;
mod usage;
mod util;

pub use audit::{AuditAnchor, AuditDecision, AuditError, AuditLog, AuditRecord, AuditSummary};
pub use authz::{
    authorize, Action, Decision, Diag, LoadedPolicies, PolicyError, PolicyLoader, PolicySet, RequestDecision,
    BUILTIN_SCHEMA,
};
pub use config::{AuditConfig, AuthMode, ConfigError, OtherPrincipalExec, PolicyConfig, ReplayConfig, TrustConfig};
pub use context::{
    ContextError, EgressRule, ExecOwner, ExecRequest, ImageRef, LaunchContext, MountInfo, Resources, SpecOptions,
    UserInfo, DEFAULT_PATH,
};
pub use devtools::{jwks_from, keygen, mint, DevError, GeneratedKey};
pub use jwks::TrustError;
pub use replay::{PendingRecord, ReplayError, ReplayGuard};
pub use testing::{
    load_cases, run_tests, run_tests_with, unverified_token, CaseFile, CaseRequests, Expect, SpecAsWritten, TestCase,
    TestFileError, TestResult,
};
pub use token::{identity_from_claims, JtiRecord, TokenError, TokenVerifier, VerifiedToken};

#[cfg(test)]
mod tests;
