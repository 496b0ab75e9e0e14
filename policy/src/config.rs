//! The `[auth]`, `[policy]` and `[audit]` sections of `/etc/brig/config.toml`.
//!
//! The shim parses the file and hands each section to this crate; every
//! section rejects unknown keys, and [`TrustConfig::validate`],
//! [`PolicyConfig::validate`] and [`AuditConfig::validate`] name the field
//! that is wrong.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Most leeway brig accepts for clock skew, in seconds.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Algorithms brig knows how to verify (`none` is never one of them).
pub const KNOWN_ALGORITHMS: &[&str] =
    &["EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "HS256", "HS384", "HS512"];

/// A configuration value that is wrong, with the field that holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `auth.leeway_secs`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError { field: field.to_string(), message: message.into() }
    }
}

/// Whether launches must carry a valid token and pass the Cedar policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Every launch and exec is authenticated and authorized.
    Required,
    /// No authentication or authorization: only for OCI conformance runs and
    /// migrations. Every launch is still audited, as not authorized.
    Off,
}

/// Single-use `jti` protection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// Directory of used-`jti` records (root-only, on persistent storage so
    /// that the records survive a reboot).
    pub dir: PathBuf,
}

/// The `[auth]` section: who may issue job tokens and how they are checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// `required` or `off`; there is no default, it must be written down.
    pub mode: AuthMode,
    /// Accepted `iss` values (exact match).
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Accepted `aud` values; a token is accepted if any of its audiences is listed.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Verification keys: a JWKS (JSON Web Key Set) file.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Verification keys: an `https://` JWKS URL, fetched with the CA in `jwks_ca_file`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// PEM file of the CA certificate(s) the JWKS server's certificate must chain to
    /// (the only trust roots used for `jwks_url`).
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// Where the fetched JWKS is cached (root-only).
    #[serde(default = "default_jwks_cache_file")]
    pub jwks_cache_file: PathBuf,
    /// How long a fetched JWKS is used before it is fetched again.
    #[serde(default = "default_jwks_cache_ttl")]
    pub jwks_cache_ttl_secs: u64,
    /// Accepted signature algorithms.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (at most 300).
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Longest accepted token lifetime: `exp - iat` (or `exp - now` without `iat`).
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime_secs: u64,
    /// Single-use `jti`: when set, every token must carry a `jti` and each is
    /// accepted for one launch only.
    #[serde(default)]
    pub replay: Option<ReplayConfig>,
    /// The only directory a `dev.brig.token-file` annotation may name a
    /// file in (written by a node agent; root-only).
    #[serde(default = "default_token_dir")]
    pub token_dir: PathBuf,
    /// A shared secret for HS256/HS384/HS512; HMAC tokens are refused unless this is set.
    #[serde(default)]
    pub hmac_secret_file: Option<PathBuf>,
    /// Claim holding the tenant (a string).
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Claim holding the roles (a string or an array of strings).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Claim holding the image digest the token was issued for.
    #[serde(default = "default_image_digest_claim")]
    pub image_digest_claim: String,
    /// An exec whose principal is not the container's (another tenant):
    /// refused before any policy (`deny`, the default), or decided by the
    /// policies on `context.exec.other_principal` and `context.exec.owner`
    /// (`policy`, for a break-glass role).
    #[serde(default)]
    pub other_principal_exec: OtherPrincipalExec,
}

/// Who decides an exec into a container launched for another principal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtherPrincipalExec {
    /// Refused, whatever the policies say.
    #[default]
    Deny,
    /// The policies decide (they see `context.exec.other_principal`).
    Policy,
}

fn default_jwks_cache_file() -> PathBuf {
    PathBuf::from("/var/lib/brig/jwks-cache.json")
}
fn default_token_dir() -> PathBuf {
    PathBuf::from("/run/brig-tokens")
}
fn default_jwks_cache_ttl() -> u64 {
    300
}
fn default_algorithms() -> Vec<String> {
    vec!["EdDSA".into(), "ES256".into(), "RS256".into()]
}
fn default_leeway() -> u64 {
    30
}
/// The longest `auth.max_lifetime_secs` may be: 30 days.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 30 * 24 * 3600;

fn default_max_lifetime() -> u64 {
    3600
}
fn default_tenant_claim() -> String {
    "tenant".into()
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_image_digest_claim() -> String {
    "image_digest".into()
}

impl TrustConfig {
    /// A `required` configuration with the defaults and no keys yet.
    pub fn required(issuers: Vec<String>, audiences: Vec<String>) -> TrustConfig {
        TrustConfig {
            mode: AuthMode::Required,
            issuers,
            audiences,
            jwks_file: None,
            jwks_url: None,
            jwks_ca_file: None,
            jwks_cache_file: default_jwks_cache_file(),
            jwks_cache_ttl_secs: default_jwks_cache_ttl(),
            algorithms: default_algorithms(),
            leeway_secs: default_leeway(),
            max_lifetime_secs: default_max_lifetime(),
            replay: None,
            token_dir: default_token_dir(),
            hmac_secret_file: None,
            tenant_claim: default_tenant_claim(),
            roles_claim: default_roles_claim(),
            image_digest_claim: default_image_digest_claim(),
            other_principal_exec: OtherPrincipalExec::Deny,
        }
    }

    /// Checks the section; with `mode = "off"` only the shape is checked.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(ConfigError::new(
                "auth.leeway_secs",
                format!("{} is more than the maximum of {MAX_LEEWAY_SECS}", self.leeway_secs),
            ));
        }
        if !self.token_dir.is_absolute() || self.token_dir == Path::new("/") {
            return Err(ConfigError::new(
                "auth.token_dir",
                format!("`{}` is not an absolute directory below `/`", self.token_dir.display()),
            ));
        }
        for (i, alg) in self.algorithms.iter().enumerate() {
            if alg.eq_ignore_ascii_case("none") {
                return Err(ConfigError::new("auth.algorithms", "`none` can never be allowed"));
            }
            if !KNOWN_ALGORITHMS.contains(&alg.as_str()) {
                return Err(ConfigError::new(
                    "auth.algorithms",
                    format!("entry {i}: unknown algorithm `{alg}` (known: {})", KNOWN_ALGORITHMS.join(", ")),
                ));
            }
        }
        let wants_hmac = self.algorithms.iter().any(|a| a.starts_with("HS"));
        if wants_hmac && self.hmac_secret_file.is_none() {
            return Err(ConfigError::new(
                "auth.algorithms",
                "HMAC algorithms are allowed only together with `auth.hmac_secret_file`",
            ));
        }
        if !wants_hmac && self.hmac_secret_file.is_some() {
            return Err(ConfigError::new(
                "auth.hmac_secret_file",
                "set, but no HS256/HS384/HS512 in `auth.algorithms`: add one or remove the secret",
            ));
        }
        for (field, value) in [
            ("auth.tenant_claim", &self.tenant_claim),
            ("auth.roles_claim", &self.roles_claim),
            ("auth.image_digest_claim", &self.image_digest_claim),
        ] {
            if value.is_empty() {
                return Err(ConfigError::new(field, "must name a claim"));
            }
        }
        if let Some(url) = &self.jwks_url {
            if !url.starts_with("https://") {
                return Err(ConfigError::new("auth.jwks_url", "must be an `https://` URL"));
            }
            if self.jwks_ca_file.is_none() {
                return Err(ConfigError::new("auth.jwks_ca_file", "required with `auth.jwks_url` (the pinned CA)"));
            }
        }
        if self.jwks_ca_file.is_some() && self.jwks_url.is_none() {
            return Err(ConfigError::new("auth.jwks_ca_file", "set, but there is no `auth.jwks_url`"));
        }
        if let Some(replay) = &self.replay {
            if !replay.dir.is_absolute() {
                return Err(ConfigError::new("auth.replay.dir", "must be an absolute path"));
            }
        }
        // A relative path would be read relative to wherever the client ran
        // brig from (dockerd's, containerd's or a shell's directory).
        for (field, value) in [
            ("auth.jwks_file", self.jwks_file.as_deref()),
            ("auth.jwks_ca_file", self.jwks_ca_file.as_deref()),
            ("auth.jwks_cache_file", Some(self.jwks_cache_file.as_path())),
            ("auth.hmac_secret_file", self.hmac_secret_file.as_deref()),
        ] {
            if value.is_some_and(|p| !p.is_absolute()) {
                return Err(ConfigError::new(field, "must be an absolute path"));
            }
        }
        if self.mode == AuthMode::Off {
            return Ok(());
        }
        if self.issuers.is_empty() || self.issuers.iter().any(String::is_empty) {
            return Err(ConfigError::new("auth.issuers", "list at least one issuer (non-empty strings)"));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::new("auth.audiences", "list at least one audience (non-empty strings)"));
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::new("auth.algorithms", "list at least one algorithm"));
        }
        if self.jwks_file.is_none() && self.jwks_url.is_none() && self.hmac_secret_file.is_none() {
            return Err(ConfigError::new(
                "auth.jwks_file",
                "no verification keys: set `jwks_file` (or `jwks_url` with `jwks_ca_file`)",
            ));
        }
        if self.max_lifetime_secs == 0 {
            return Err(ConfigError::new("auth.max_lifetime_secs", "must be more than 0"));
        }
        // A job token is a launch credential, not a long-lived key: a bound
        // of 30 days keeps a typo (or u64::MAX) from accepting tokens that
        // live for ages, and the single-use records' pruning meaningful.
        if self.max_lifetime_secs > MAX_TOKEN_LIFETIME_SECS {
            return Err(ConfigError::new(
                "auth.max_lifetime_secs",
                format!("must be at most {MAX_TOKEN_LIFETIME_SECS} (30 days)"),
            ));
        }
        Ok(())
    }
}

/// The `[policy]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory of `*.cedar` policies and, optionally, `brig.cedarschema`.
    #[serde(default = "default_policy_dir")]
    pub dir: PathBuf,
    /// Keep a parsed copy of the policy set, keyed by the content digest of
    /// the policy files and the schema, so that a launch does not re-parse.
    #[serde(default = "default_true")]
    pub cache: bool,
    /// Where the parsed copies are kept (root-only).
    #[serde(default = "default_policy_cache_dir")]
    pub cache_dir: PathBuf,
}

fn default_policy_dir() -> PathBuf {
    PathBuf::from("/etc/brig/policy")
}
fn default_policy_cache_dir() -> PathBuf {
    PathBuf::from("/var/lib/brig/policy-cache")
}
fn default_true() -> bool {
    true
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig { dir: default_policy_dir(), cache: true, cache_dir: default_policy_cache_dir() }
    }
}

impl PolicyConfig {
    /// Checks the section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.dir.is_absolute() {
            return Err(ConfigError::new("policy.dir", "must be an absolute path"));
        }
        if self.cache && !self.cache_dir.is_absolute() {
            return Err(ConfigError::new("policy.cache_dir", "must be an absolute path"));
        }
        Ok(())
    }
}

/// The `[audit]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The hash-chained JSON-lines audit log.
    #[serde(default = "default_audit_path")]
    pub path: PathBuf,
}

fn default_audit_path() -> PathBuf {
    PathBuf::from("/var/lib/brig/audit.log")
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { path: default_audit_path() }
    }
}

impl AuditConfig {
    /// Checks the section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.path.is_absolute() {
            return Err(ConfigError::new("audit.path", "must be an absolute path"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TrustConfig, String> {
        toml::from_str::<TrustConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_validation() {
        let c = parse("mode = \"required\"\nissuers = [\"https://ci\"]\naudiences = [\"brig\"]\njwks_file = \"/etc/brig/jwks.json\"\n")
            .unwrap();
        assert_eq!(c.algorithms, ["EdDSA", "ES256", "RS256"]);
        assert_eq!(c.leeway_secs, 30);
        assert_eq!(c.max_lifetime_secs, 3600);
        assert_eq!(c.tenant_claim, "tenant");
        c.validate().unwrap();

        let mut bad = c.clone();
        bad.leeway_secs = 301;
        assert_eq!(bad.validate().unwrap_err().field, "auth.leeway_secs");
        for lifetime in [MAX_TOKEN_LIFETIME_SECS + 1, u64::MAX] {
            let mut bad = c.clone();
            bad.max_lifetime_secs = lifetime;
            assert_eq!(bad.validate().unwrap_err().field, "auth.max_lifetime_secs");
        }
        let mut ok = c.clone();
        ok.max_lifetime_secs = MAX_TOKEN_LIFETIME_SECS;
        ok.validate().unwrap();
        let mut bad = c.clone();
        bad.algorithms.push("none".into());
        assert_eq!(bad.validate().unwrap_err().field, "auth.algorithms");
        let mut bad = c.clone();
        bad.algorithms.push("HS256".into());
        let e = bad.validate().unwrap_err();
        assert!(e.to_string().contains("hmac_secret_file"), "{e}");
        let mut bad = c.clone();
        bad.jwks_url = Some("http://idp/jwks".into());
        assert_eq!(bad.validate().unwrap_err().field, "auth.jwks_url");
        let mut bad = c.clone();
        bad.issuers.clear();
        assert_eq!(bad.validate().unwrap_err().field, "auth.issuers");
        let mut bad = c.clone();
        bad.jwks_file = Some("jwks.json".into());
        assert_eq!(bad.validate().unwrap_err().field, "auth.jwks_file", "a relative path");
        let mut bad = c.clone();
        bad.jwks_cache_file = "cache.json".into();
        assert_eq!(bad.validate().unwrap_err().field, "auth.jwks_cache_file");
        let mut bad = c;
        bad.jwks_file = None;
        assert_eq!(bad.validate().unwrap_err().field, "auth.jwks_file");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse("mode = \"required\"\nissuer = \"x\"\n").unwrap_err();
        assert!(e.contains("issuer"), "{e}");
        assert!(toml::from_str::<PolicyConfig>("dri = \"/x\"").is_err());
        assert!(toml::from_str::<AuditConfig>("pth = \"/x\"").is_err());
        let p: PolicyConfig = toml::from_str("").unwrap();
        assert_eq!(p.dir, PathBuf::from("/etc/brig/policy"));
        let a: AuditConfig = toml::from_str("").unwrap();
        assert_eq!(a.path, PathBuf::from("/var/lib/brig/audit.log"));
    }

    #[test]
    fn off_mode_needs_nothing_else() {
        let c = parse("mode = \"off\"").unwrap();
        c.validate().unwrap();
    }
}
