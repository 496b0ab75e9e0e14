//! `brig policy test`: a file of requests with expected decisions.
//!
//! A cases file is TOML (or JSON, by the `.json` extension):
//!
//! ```toml
//! policies = "."            # optional: the policy directory, relative to this file
//!
//! [[case]]
//! name = "tenant reads its own inputs"
//! action = "launch"         # or "exec" (default "launch")
//! expect = "allow"          # or "deny"
//! expect_policies = ["tenant-inputs"]   # optional: exact determining policies
//! claims = { iss = "https://fn.example", sub = "fn-1", tenant = "acme" }
//! context = { profile = "restricted", mounts = [
//!   { source = "/var/lib/brig/jobs/acme/in/x", destination = "/in", read_write = false, kind = "bind" },
//! ] }
//! # or, instead of `context`: bundle = "bundles/job"   (its config.json)
//! ```
//!
//! The claims are not a signed token: a case tests the policies, not the
//! token checks. `context` is a [`LaunchContext`] where every field may be
//! left out.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::authz::{authorize, Action, Decision, PolicySet};
use crate::context::{LaunchContext, SpecOptions};
use crate::token::VerifiedToken;
use crate::util::from_unix_secs;

/// Why a cases file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    /// Not readable.
    #[error("reading `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not a cases file.
    #[error("`{}`: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Expected outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

/// One case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Shown in results.
    pub name: String,
    /// `launch` (default) or `exec`.
    #[serde(default = "default_action")]
    pub action: Action,
    /// The token's claims (`iss` and `sub` default to `test` and `test`).
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// The request, as a [`LaunchContext`] fragment.
    #[serde(default)]
    pub context: Option<LaunchContext>,
    /// Or a bundle directory whose `config.json` is the request.
    #[serde(default)]
    pub bundle: Option<PathBuf>,
    /// The expected decision.
    pub expect: Expect,
    /// If given, the determining policies must be exactly these (any order).
    #[serde(default)]
    pub expect_policies: Option<Vec<String>>,
}

fn default_action() -> Action {
    Action::Launch
}

/// A parsed cases file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The policy directory, relative to the file (made absolute by [`load_cases`]).
    #[serde(default)]
    pub policies: Option<PathBuf>,
    /// The cases.
    #[serde(default, rename = "case")]
    pub cases: Vec<TestCase>,
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    /// The case's name.
    pub name: String,
    /// Whether the decision was as expected.
    pub passed: bool,
    /// The decision.
    pub decision: Decision,
    /// Expected versus actual, one `-`/`+` pair per difference (empty when passed).
    pub diff: String,
    /// The case could not be turned into a request (an unreadable bundle, a
    /// malformed spec, claims of the wrong type): it fails, whatever it
    /// expected, since nothing was decided.
    #[serde(default)]
    pub error: Option<String>,
}

/// Turns a case into the request `create` would decide on.
pub trait CaseRequests {
    /// The context for a bundle directory (its `config.json`).
    fn bundle_context(&self, bundle: &Path) -> Result<LaunchContext, String>;
    /// The identity a token with these claims would give.
    fn identity(&self, claims: &Map<String, Value>) -> Result<VerifiedToken, String>;
}

/// Requests without brig's runtime: a bundle's spec as written (no profile
/// applied; the default profile `restricted`) and the default claim names.
/// `brig policy test` uses the runtime's own builder instead, which hardens
/// the spec as `create` does.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpecAsWritten;

impl CaseRequests for SpecAsWritten {
    fn bundle_context(&self, bundle: &Path) -> Result<LaunchContext, String> {
        let path = bundle.join("config.json");
        let text = brig_files::read_to_string(&path).map_err(|e| format!("reading `{}`: {e}", path.display()))?;
        let spec: oci_spec::runtime::Spec = serde_json::from_str(&text)
            .map_err(|e| format!("`{}`: {}", path.display(), brig_files::located(&text, None, &e.to_string())))?;
        let options = SpecOptions { default_profile: "restricted".into(), ..Default::default() };
        LaunchContext::from_spec(&spec, &options).map_err(|e| e.to_string())
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<VerifiedToken, String> {
        let trust = crate::config::TrustConfig::required(Vec::new(), Vec::new());
        crate::token::identity_from_claims(claims, &trust).map_err(|e| format!("claims: {e}"))
    }
}

/// Reads a cases file; relative `policies` and `bundle` paths are resolved
/// against the file's directory.
pub fn load_cases(path: &Path) -> Result<CaseFile, TestFileError> {
    let text =
        brig_files::read_to_string(path).map_err(|source| TestFileError::Read { path: path.to_path_buf(), source })?;
    let parse_err = |message: String| TestFileError::Parse { path: path.to_path_buf(), message };
    // Said without quoting the file (a case's claims may be a real token's).
    let mut file: CaseFile = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| parse_err(brig_files::located(&text, None, &e.to_string())))?
    } else {
        toml::from_str(&text).map_err(|e| parse_err(brig_files::located(&text, e.span(), e.message())))?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(p) = &file.policies {
        file.policies = Some(base.join(p));
    }
    for case in &mut file.cases {
        if case.context.is_some() && case.bundle.is_some() {
            return Err(parse_err(format!("case `{}`: give `context` or `bundle`, not both", case.name)));
        }
        if let Some(b) = &case.bundle {
            case.bundle = Some(base.join(b));
        }
    }
    Ok(file)
}

/// A token identity from bare claims, for tests and `brig policy explain`
/// without a token. Never use it to authorize a launch.
pub fn unverified_token(claims: &Map<String, Value>) -> VerifiedToken {
    let s = |k: &str, d: &str| claims.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
    let num = |k: &str| claims.get(k).and_then(Value::as_i64);
    let roles = match claims.get("roles") {
        Some(Value::String(r)) => vec![r.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    let audience = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    VerifiedToken {
        issuer: s("iss", "test"),
        subject: s("sub", "test"),
        audience,
        jti: claims.get("jti").and_then(Value::as_str).map(str::to_string),
        expires_at: from_unix_secs(num("exp").unwrap_or(i64::MAX / 2)),
        issued_at: num("iat").map(from_unix_secs),
        tenant: claims.get("tenant").and_then(Value::as_str).map(str::to_string),
        roles,
        image_digest: claims.get("image_digest").and_then(Value::as_str).map(str::to_string),
        algorithm: "none (unverified test claims)".into(),
        key_id: None,
        claims: claims.clone(),
    }
}

/// Runs every case against `policies`, with requests as [`SpecAsWritten`]
/// builds them.
pub fn run_tests(policies: &PolicySet, cases: &[TestCase]) -> Vec<TestResult> {
    run_tests_with(policies, cases, &SpecAsWritten)
}

/// Runs every case against `policies`, with requests from `requests`.
pub fn run_tests_with(policies: &PolicySet, cases: &[TestCase], requests: &dyn CaseRequests) -> Vec<TestResult> {
    cases
        .iter()
        .map(|case| {
            let request = requests.identity(&case.claims).and_then(|identity| {
                let context = match &case.bundle {
                    Some(bundle) => requests.bundle_context(bundle)?,
                    None => case.context.clone().unwrap_or_default(),
                };
                Ok((identity, context))
            });
            let (identity, context) = match request {
                Ok(r) => r,
                Err(e) => {
                    return TestResult {
                        name: case.name.clone(),
                        passed: false,
                        decision: Decision {
                            allowed: false,
                            determining_policies: Vec::new(),
                            errors: vec![e.clone()],
                            reason: format!("nothing decided: {e}"),
                            requests: Vec::new(),
                        },
                        diff: format!("- decision: {:?}\n+ no decision: {e}\n", case.expect),
                        error: Some(e),
                    };
                }
            };
            let decision = authorize(policies, &identity, case.action, &context);
            let mut diff = String::new();
            let actual = if decision.allowed { Expect::Allow } else { Expect::Deny };
            if actual != case.expect {
                diff.push_str(&format!(
                    "- decision: {:?}\n+ decision: {:?} ({})\n",
                    case.expect, actual, decision.reason
                ));
            }
            if let Some(expected) = &case.expect_policies {
                let mut e = expected.clone();
                e.sort();
                let mut a = decision.determining_policies.clone();
                a.sort();
                if e != a {
                    diff.push_str(&format!("- policies: {e:?}\n+ policies: {a:?}\n"));
                }
            }
            TestResult { name: case.name.clone(), passed: diff.is_empty(), decision, diff, error: None }
        })
        .collect()
}
