//! Job tokens: compact JWS (JWT) verified against the configured keys.
//!
//! The checks, in the order they run (the first failure is reported):
//!
//! 1. shape: three base64url parts, at most 16 KiB, JSON header and payload;
//! 2. `alg`: `none` is always refused, and so is a `crit` header;
//! 3. HMAC `alg`: naming a JWKS key by `kid` is a key-confusion attempt;
//!    otherwise it must be allowed and a secret configured;
//! 4. other `alg`s: `kid` required and known; an `alg` that does not fit the
//!    key's type (or the JWK's own `alg`) is a key-confusion attempt; then
//!    the allowlist;
//! 5. the signature;
//! 6. claims: `exp`, `iss`, `aud`, `sub` present; `iss` and `aud` trusted;
//!    `exp`, `nbf`, `iat` within the leeway; lifetime within the maximum;
//!    tenant/roles/image-digest claims well-typed;
//! 7. `jti`, when single-use tokens are configured.
//!
//! No error, `Display` or `Debug` output contains the token, its signature
//! or any key: errors name claims and show at most 64 characters of an
//! untrusted claim value (`iss`, `kid`).

use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::config::{AuthMode, TrustConfig};
use crate::jwks::{KeySet, TrustError};
use crate::replay::{PendingRecord, ReplayError, ReplayGuard};
use crate::util::{from_unix_secs, rfc3339, shown, unix_secs};

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The header `typ` values of a job token, compared without case and
/// without an `application/` prefix (RFC 7515, 4.1.9): a plain JWT, an OAuth
/// access token (RFC 9068), a generic JWS (SPIFFE's JWT-SVIDs may say so).
const TOKEN_TYPES: [&str; 3] = ["JWT", "at+jwt", "JOSE"];

/// Why a token was refused. Each failure has its own variant and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS: wrong number of parts, bad base64url, not JSON.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// `alg: none`.
    #[error("token is unsigned (`alg: none`): unsigned tokens are never accepted")]
    AlgorithmNone,
    /// `alg` is not on the allowlist.
    #[error("token algorithm `{alg}` is not allowed (allowed: {allowed})")]
    DisallowedAlgorithm {
        /// The token's `alg`.
        alg: String,
        /// The configured allowlist.
        allowed: String,
    },
    /// `alg` does not fit the key the token names.
    #[error("token algorithm `{alg}` does not fit key `{kid}` (a {key_type} key): refused as a key-confusion attempt")]
    KeyConfusion {
        /// The token's `alg`.
        alg: String,
        /// The key's `kid`.
        kid: String,
        /// The key's type.
        key_type: &'static str,
    },
    /// The header has no `kid`.
    #[error("token header has no `kid`: keys are selected by `kid`")]
    MissingKeyId,
    /// No key has the token's `kid`.
    #[error("token key id `{0}` is not in the configured JWKS")]
    UnknownKeyId(String),
    /// The token's `kid` names a JWKS key brig left out.
    #[error("token key id `{kid}` names a JWKS key that brig does not verify signatures with: {why}")]
    KeyNotForSignatures { kid: String, why: String },
    /// The header has `crit` extensions.
    #[error("token header has critical extensions (`crit`) brig does not understand")]
    CriticalHeader,
    /// The header's `typ` names another kind of JWT.
    #[error("token type `{0}` is not a job token (`typ` must be absent, `JWT`, `at+jwt` or `JOSE`)")]
    WrongType(String),
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// A required claim is missing.
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or value.
    #[error("token claim `{claim}` is invalid: {reason}")]
    InvalidClaim {
        /// The claim.
        claim: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `exp` (plus the leeway) has passed.
    #[error("token expired at {expired_at} ({ago}s ago, leeway {leeway}s)")]
    Expired {
        /// `exp`, RFC 3339.
        expired_at: String,
        /// Seconds since `exp`.
        ago: i64,
        /// The leeway.
        leeway: i64,
    },
    /// `nbf` (minus the leeway) has not come yet.
    #[error("token is not valid before {not_before} (in {in_secs}s, leeway {leeway}s)")]
    NotYetValid {
        /// `nbf`, RFC 3339.
        not_before: String,
        /// Seconds until `nbf`.
        in_secs: i64,
        /// The leeway.
        leeway: i64,
    },
    /// `iat` is in the future (beyond the leeway).
    #[error("token was issued in the future ({issued_at}, leeway {leeway}s)")]
    IssuedInFuture {
        /// `iat`, RFC 3339.
        issued_at: String,
        /// The leeway.
        leeway: i64,
    },
    /// `exp - iat` (or `exp - now`) is over the maximum lifetime.
    #[error("token lifetime of {lifetime}s is over the maximum of {max}s")]
    LifetimeTooLong {
        /// The lifetime.
        lifetime: i64,
        /// `auth.max_lifetime_secs`.
        max: i64,
    },
    /// `iss` is not a configured issuer.
    #[error("token issuer `{0}` is not trusted")]
    WrongIssuer(String),
    /// No `aud` value is a configured audience.
    #[error("token audience does not include any accepted audience ({0})")]
    WrongAudience(String),
    /// The `jti` was already used.
    #[error("token was already used (`jti` seen before): single-use tokens cannot be replayed")]
    Replayed,
    /// Exec with the launch token into a container it did not launch.
    #[error(
        "token `jti` launched a different container: the launch token is accepted for exec only into its own container"
    )]
    ExecOtherContainer,
    /// Exec with the launch token, but its launch record is gone.
    #[error("token `jti` has no launch record to exec with")]
    ExecNoLaunchRecord,
    /// The replay record store failed (fails closed).
    #[error("single-use token check failed: {0}")]
    ReplayStore(String),
}

/// A verified token's identity and claims. Holds no token, signature or key.
#[derive(Clone, PartialEq)]
pub struct VerifiedToken {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `aud` (one or more).
    pub audience: Vec<String>,
    /// `jti`.
    pub jti: Option<String>,
    /// `exp`.
    pub expires_at: SystemTime,
    /// `iat`.
    pub issued_at: Option<SystemTime>,
    /// The configured tenant claim.
    pub tenant: Option<String>,
    /// The configured roles claim.
    pub roles: Vec<String>,
    /// The configured image-digest claim.
    pub image_digest: Option<String>,
    /// `alg` of the header.
    pub algorithm: String,
    /// `kid` of the header.
    pub key_id: Option<String>,
    /// Every claim of the payload.
    pub claims: Map<String, Value>,
}

impl std::fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Claim values can carry anything an issuer put there; show names only.
        let names: Vec<&String> = self.claims.keys().collect();
        f.debug_struct("VerifiedToken")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("audience", &self.audience)
            .field("jti", &self.jti)
            .field("expires_at", &rfc3339(unix_secs(self.expires_at)))
            .field("tenant", &self.tenant)
            .field("roles", &self.roles)
            .field("image_digest", &self.image_digest)
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("claim_names", &names)
            .finish()
    }
}

impl VerifiedToken {
    /// The Cedar principal id: `<iss>|<sub>`.
    pub fn principal_id(&self) -> String {
        format!("{}|{}", self.issuer, self.subject)
    }
}

/// What a verification is for, as far as single-use `jti` goes.
#[derive(Debug, Clone, Copy)]
enum Use<'a> {
    /// Record the `jti`, bound to no container.
    Plain,
    /// Record the `jti`, bound to the container being created.
    Launch(&'a str),
    /// Exec into `container`; the launch's `jti` is accepted again for it.
    Exec { container: &'a str, launch: Option<(&'a str, &'a str)> },
    /// Check only (`brig policy explain`): a single-use token must have a
    /// `jti` not used yet, and nothing is recorded.
    Check,
    /// Check only, as an exec into `container` would (the launch's `jti`
    /// accepted again): nothing is recorded.
    ExecCheck { container: &'a str, launch: Option<(&'a str, &'a str)> },
}

/// Verifies job tokens against the configured keys and claims.
#[derive(Debug)]
pub struct TokenVerifier {
    keys: KeySet,
    issuers: Vec<String>,
    audiences: Vec<String>,
    allowed: Vec<Algorithm>,
    allowed_names: String,
    leeway: i64,
    max_lifetime: i64,
    replay: Option<ReplayGuard>,
    tenant_claim: String,
    roles_claim: String,
    image_digest_claim: String,
}

impl TokenVerifier {
    /// Loads the keys the `[auth]` section names (JWKS file, JWKS URL, HMAC secret).
    pub fn new(config: &TrustConfig) -> Result<TokenVerifier, TrustError> {
        config.validate()?;
        if config.mode == AuthMode::Off {
            return Err(TrustError::ModeOff);
        }
        let keys = KeySet::load(config, SystemTime::now())?;
        TokenVerifier::build(config, keys)
    }

    /// A verifier over a JWKS document given in memory, ignoring the
    /// configuration's key sources (tests, benchmarks, `brig policy explain`).
    pub fn with_jwks(
        config: &TrustConfig,
        jwks: &str,
        hmac_secret: Option<&[u8]>,
    ) -> Result<TokenVerifier, TrustError> {
        let keys = KeySet::from_jwks(jwks, hmac_secret)?;
        TokenVerifier::build(config, keys)
    }

    fn build(config: &TrustConfig, keys: KeySet) -> Result<TokenVerifier, TrustError> {
        let mut allowed = Vec::new();
        for name in &config.algorithms {
            let alg = name.parse::<Algorithm>().map_err(|_| {
                TrustError::Config(crate::config::ConfigError {
                    field: "auth.algorithms".into(),
                    message: format!("unknown algorithm `{}`", shown(name)),
                })
            })?;
            allowed.push(alg);
        }
        let replay = match &config.replay {
            Some(r) => Some(ReplayGuard::open(&r.dir, config.leeway_secs)?),
            None => None,
        };
        Ok(TokenVerifier {
            keys,
            issuers: config.issuers.clone(),
            audiences: config.audiences.clone(),
            allowed,
            allowed_names: config.algorithms.join(", "),
            leeway: i64::try_from(config.leeway_secs.min(crate::config::MAX_LEEWAY_SECS)).unwrap_or(0),
            max_lifetime: i64::try_from(config.max_lifetime_secs).unwrap_or(i64::MAX),
            replay,
            tenant_claim: config.tenant_claim.clone(),
            roles_claim: config.roles_claim.clone(),
            image_digest_claim: config.image_digest_claim.clone(),
        })
    }

    /// Verifies `token` at `now`. A single-use `jti` is recorded, bound to no
    /// container; use [`TokenVerifier::verify_for_launch`] for `create` so
    /// that the same token can later `exec` into the container.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<VerifiedToken, TokenError> {
        self.verify_inner(token, now, Use::Plain)
    }

    /// Verifies the token of a `create`; a single-use `jti` is recorded and
    /// bound to `container_id`.
    pub fn verify_for_launch(
        &self,
        token: &str,
        now: SystemTime,
        container_id: &str,
    ) -> Result<VerifiedToken, TokenError> {
        self.verify_inner(token, now, Use::Launch(container_id))
    }

    /// [`TokenVerifier::verify_for_launch`], with the single-use record
    /// created but not yet flushed to disk: the caller commits it
    /// ([`JtiRecord::commit`]) before the launch proceeds. A launch flushes
    /// its audit record too; committing after that one costs the disk one
    /// journal commit instead of two on ext4 and the like.
    pub fn verify_for_launch_deferred(
        &self,
        token: &str,
        now: SystemTime,
        container_id: &str,
    ) -> Result<(VerifiedToken, JtiRecord), TokenError> {
        self.verify_pending(token, now, Use::Launch(container_id))
    }

    /// Verifies the token of an `exec` into `container_id`, whose launch
    /// spent `launch` (its token's issuer and `jti`). Every check runs again
    /// (an expired token cannot exec); the launch's own token (the same
    /// issuer and `jti`) is accepted if its record names this container; any
    /// other is consumed like a launch. The issuer is part of the match:
    /// another issuer's token with the same `jti`, once spent on an earlier
    /// container of the same id, is not the launch's.
    pub fn verify_for_exec(
        &self,
        token: &str,
        now: SystemTime,
        container_id: &str,
        launch: Option<(&str, &str)>,
    ) -> Result<VerifiedToken, TokenError> {
        self.verify_inner(token, now, Use::Exec { container: container_id, launch })
    }

    /// Every check [`TokenVerifier::verify_for_exec`] makes, recording
    /// nothing: what an exec learns about the token (whose it is) before
    /// it spends the token's single use, so that a token refused for another
    /// reason (another principal's container) is not used up.
    pub fn verify_exec_without_consuming(
        &self,
        token: &str,
        now: SystemTime,
        container_id: &str,
        launch: Option<(&str, &str)>,
    ) -> Result<VerifiedToken, TokenError> {
        self.verify_inner(token, now, Use::ExecCheck { container: container_id, launch })
    }

    /// Every check a launch makes, the single-use one included (a `jti` is
    /// required and must not be used yet), without recording anything: for
    /// `brig policy explain`.
    pub fn verify_without_consuming(&self, token: &str, now: SystemTime) -> Result<VerifiedToken, TokenError> {
        self.verify_inner(token, now, Use::Check)
    }

    fn verify_inner(&self, token: &str, now: SystemTime, usage: Use<'_>) -> Result<VerifiedToken, TokenError> {
        let (verified, record) = self.verify_pending(token, now, usage)?;
        record.commit()?;
        Ok(verified)
    }

    fn verify_pending(
        &self,
        token: &str,
        now: SystemTime,
        usage: Use<'_>,
    ) -> Result<(VerifiedToken, JtiRecord), TokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Malformed("empty"));
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed("longer than 16 KiB"));
        }
        let parts: Vec<&str> = token.split('.').collect();
        let (header_b64, payload_b64, sig_b64) = match parts.as_slice() {
            [h, p, s] => (*h, *p, *s),
            [_, _, _, _, _] => return Err(TokenError::Malformed("encrypted tokens (JWE) are not supported")),
            [_] => return Err(TokenError::Malformed("not a compact JWS (no `.` separators)")),
            [_, _] => return Err(TokenError::Malformed("truncated (2 of 3 parts)")),
            _ => return Err(TokenError::Malformed("more than 3 parts")),
        };
        let header = decode_object(header_b64, Part::Header)?;
        let alg_name = match header.get("alg") {
            Some(Value::String(a)) => a.as_str(),
            _ => return Err(TokenError::Malformed("header has no `alg`")),
        };
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(TokenError::AlgorithmNone);
        }
        if header.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }
        // Explicit typing (RFC 8725, 3.11): a JWT of another kind from the
        // same issuer (a logout token, a DPoP proof, a security event) is not
        // a job token, even if its claims would pass.
        match header.get("typ") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) => {
                // Media types are compared without case, the prefix too.
                let media = match t.get(..12) {
                    Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &t[12..],
                    _ => t.as_str(),
                };
                if !TOKEN_TYPES.iter().any(|k| media.eq_ignore_ascii_case(k)) {
                    return Err(TokenError::WrongType(shown(t)));
                }
            }
            Some(_) => return Err(TokenError::Malformed("header `typ` is not a string")),
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(TokenError::Malformed("header `kid` is not a string")),
        };
        let disallowed =
            || TokenError::DisallowedAlgorithm { alg: shown(alg_name), allowed: self.allowed_names.clone() };
        let alg: Algorithm = alg_name.parse().map_err(|_| disallowed())?;
        let key: &DecodingKey = if is_hmac(alg) {
            // An HMAC token naming a public key is the classic key confusion:
            // the "secret" would be the public key everyone has.
            if let Some(entry) = kid.and_then(|k| self.keys.keys.get(k).map(|e| (k, e))) {
                return Err(TokenError::KeyConfusion {
                    alg: format!("{alg:?}"),
                    kid: shown(entry.0),
                    key_type: entry.1.kind.name(),
                });
            }
            match &self.keys.hmac {
                Some(secret) if self.allowed.contains(&alg) => secret,
                _ => return Err(disallowed()),
            }
        } else {
            let kid = kid.ok_or(TokenError::MissingKeyId)?;
            let entry = self.keys.keys.get(kid).ok_or_else(|| match self.keys.skipped.get(kid) {
                Some(why) => TokenError::KeyNotForSignatures { kid: shown(kid), why: why.clone() },
                None => TokenError::UnknownKeyId(shown(kid)),
            })?;
            if !entry.kind.fits(alg) || entry.alg.is_some_and(|a| a != alg) {
                return Err(TokenError::KeyConfusion {
                    alg: format!("{alg:?}"),
                    kid: shown(kid),
                    key_type: entry.kind.name(),
                });
            }
            if !self.allowed.contains(&alg) {
                return Err(disallowed());
            }
            &entry.key
        };
        if sig_b64.is_empty() {
            return Err(TokenError::Malformed("no signature"));
        }
        if URL_SAFE_NO_PAD.decode(sig_b64).is_err() {
            return Err(TokenError::Malformed("signature is not base64url"));
        }
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        match jsonwebtoken::crypto::verify(sig_b64, signed.as_bytes(), key, alg) {
            Ok(true) => {}
            _ => return Err(TokenError::BadSignature),
        }
        let claims = decode_object(payload_b64, Part::Payload)?;
        let verified = self.check_claims(claims, alg, kid, unix_secs(now))?;
        let record = self.check_jti(&verified, unix_secs(now), usage)?;
        Ok((verified, JtiRecord(record)))
    }

    fn check_claims(
        &self,
        claims: Map<String, Value>,
        alg: Algorithm,
        kid: Option<&str>,
        now: i64,
    ) -> Result<VerifiedToken, TokenError> {
        let exp = numeric_date(&claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
        let issuer = string_claim(&claims, "iss")?.ok_or(TokenError::MissingClaim("iss"))?;
        let audience = match claims.get("aud") {
            None | Some(Value::Null) => return Err(TokenError::MissingClaim("aud")),
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => {
                let mut out = Vec::new();
                for a in list {
                    match a {
                        Value::String(a) => out.push(a.clone()),
                        _ => return Err(invalid("aud", "must be a string or an array of strings")),
                    }
                }
                out
            }
            Some(_) => return Err(invalid("aud", "must be a string or an array of strings")),
        };
        let subject = string_claim(&claims, "sub")?.ok_or(TokenError::MissingClaim("sub"))?;
        if !self.issuers.contains(&issuer) {
            return Err(TokenError::WrongIssuer(shown(&issuer)));
        }
        if !audience.iter().any(|a| self.audiences.contains(a)) {
            return Err(TokenError::WrongAudience(self.audiences.join(", ")));
        }
        let nbf = numeric_date(&claims, "nbf")?;
        let iat = numeric_date(&claims, "iat")?;
        // The dates as they were judged, whole seconds: a fractional
        // NumericDate (RFC 7519 allows one) reaches the policies as the
        // `Long` the schema declares, not as an error after the token's
        // single use was spent.
        let mut claims = claims;
        for (name, value) in [("exp", Some(exp)), ("nbf", nbf), ("iat", iat)] {
            if let Some(v) = value {
                claims.insert(name.to_string(), Value::from(v));
            }
        }
        if now >= exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired {
                expired_at: rfc3339(exp),
                ago: now.saturating_sub(exp),
                leeway: self.leeway,
            });
        }
        if let Some(nbf) = nbf {
            if now.saturating_add(self.leeway) < nbf {
                return Err(TokenError::NotYetValid {
                    not_before: rfc3339(nbf),
                    in_secs: nbf.saturating_sub(now),
                    leeway: self.leeway,
                });
            }
        }
        if let Some(iat) = iat {
            if iat > now.saturating_add(self.leeway) {
                return Err(TokenError::IssuedInFuture { issued_at: rfc3339(iat), leeway: self.leeway });
            }
            if exp < iat {
                return Err(invalid("exp", "is before `iat`"));
            }
        }
        let lifetime = exp.saturating_sub(iat.unwrap_or(now));
        if lifetime > self.max_lifetime {
            return Err(TokenError::LifetimeTooLong { lifetime, max: self.max_lifetime });
        }
        let TypedClaims { jti, tenant, roles, image_digest } =
            typed_claims(&claims, &self.tenant_claim, &self.roles_claim, &self.image_digest_claim)?;
        Ok(VerifiedToken {
            issuer,
            subject,
            audience,
            jti,
            expires_at: from_unix_secs(exp),
            issued_at: iat.map(from_unix_secs),
            tenant,
            roles,
            image_digest,
            algorithm: format!("{alg:?}"),
            key_id: kid.map(str::to_string),
            claims,
        })
    }

    fn check_jti(&self, token: &VerifiedToken, now: i64, usage: Use<'_>) -> Result<Option<PendingRecord>, TokenError> {
        let Some(guard) = &self.replay else { return Ok(None) };
        let jti = token.jti.as_deref().ok_or(TokenError::MissingClaim("jti"))?;
        let exp = unix_secs(token.expires_at);
        let result = match usage {
            Use::Plain => guard.consume_pending(&token.issuer, jti, exp, None, now).map(Some),
            Use::Launch(c) => guard.consume_pending(&token.issuer, jti, exp, Some(c), now).map(Some),
            Use::Exec { container, launch } if launch == Some((token.issuer.as_str(), jti)) => {
                guard.check_launch_record(&token.issuer, jti, container).map(|()| None)
            }
            Use::Exec { container, .. } => {
                guard.consume_pending(&token.issuer, jti, exp, Some(container), now).map(Some)
            }
            Use::Check => guard.check_unused(&token.issuer, jti, now).map(|()| None),
            Use::ExecCheck { container, launch } if launch == Some((token.issuer.as_str(), jti)) => {
                guard.check_launch_record(&token.issuer, jti, container).map(|()| None)
            }
            Use::ExecCheck { .. } => guard.check_unused(&token.issuer, jti, now).map(|()| None),
        };
        result.map_err(replay_error)
    }
}

/// The claims brig reads besides the registered ones, typed.
struct TypedClaims {
    jti: Option<String>,
    tenant: Option<String>,
    roles: Vec<String>,
    image_digest: Option<String>,
}

fn typed_claims(
    claims: &Map<String, Value>,
    tenant_claim: &str,
    roles_claim: &str,
    image_digest_claim: &str,
) -> Result<TypedClaims, TokenError> {
    let jti = match claims.get("jti") {
        None | Some(Value::Null) => None,
        Some(Value::String(j)) if !j.is_empty() && j.len() <= 256 => Some(j.clone()),
        Some(_) => return Err(invalid("jti", "must be a non-empty string of at most 256 bytes")),
    };
    let tenant = match claims.get(tenant_claim) {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
        Some(_) => return Err(invalid(tenant_claim, "must be a non-empty string")),
    };
    let roles = match claims.get(roles_claim) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(r)) => vec![r.clone()],
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for r in list {
                match r {
                    Value::String(r) => out.push(r.clone()),
                    _ => return Err(invalid(roles_claim, "must be a string or an array of strings")),
                }
            }
            out
        }
        Some(_) => return Err(invalid(roles_claim, "must be a string or an array of strings")),
    };
    let image_digest = match claims.get(image_digest_claim) {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.clone()),
        Some(_) => return Err(invalid(image_digest_claim, "must be a string")),
    };
    Ok(TypedClaims { jti, tenant, roles, image_digest })
}

/// The identity a verified token with these claims would give, under the
/// configured claim names and with the same typing, but with no signature,
/// issuer, audience or time checks (`iss` and `sub` default to `test`): for
/// `brig policy test`, whose cases are claims, not tokens. Never use it to
/// authorize a launch.
pub fn identity_from_claims(claims: &Map<String, Value>, trust: &TrustConfig) -> Result<VerifiedToken, TokenError> {
    let TypedClaims { jti, tenant, roles, image_digest } =
        typed_claims(claims, &trust.tenant_claim, &trust.roles_claim, &trust.image_digest_claim)?;
    let issuer = string_claim(claims, "iss")?.unwrap_or_else(|| "test".to_string());
    let subject = string_claim(claims, "sub")?.unwrap_or_else(|| "test".to_string());
    let audience = match claims.get("aud") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list.iter().filter_map(|a| a.as_str().map(str::to_string)).collect(),
        Some(_) => return Err(invalid("aud", "must be a string or an array of strings")),
    };
    let exp = numeric_date(claims, "exp")?.unwrap_or(i64::MAX / 2);
    let iat = numeric_date(claims, "iat")?;
    Ok(VerifiedToken {
        issuer,
        subject,
        audience,
        jti,
        expires_at: from_unix_secs(exp),
        issued_at: iat.map(from_unix_secs),
        tenant,
        roles,
        image_digest,
        algorithm: "none (unverified test claims)".into(),
        key_id: None,
        claims: claims.clone(),
    })
}

fn replay_error(e: ReplayError) -> TokenError {
    match e {
        ReplayError::Replayed => TokenError::Replayed,
        ReplayError::NotThisContainer => TokenError::ExecOtherContainer,
        ReplayError::NoLaunchRecord => TokenError::ExecNoLaunchRecord,
        e @ ReplayError::Io { .. } => TokenError::ReplayStore(e.to_string()),
    }
}

/// The single-use record a verification created (if the token's `jti` is
/// single-use), not yet flushed to disk: it survives a crash only once
/// committed. Dropped uncommitted, it still refuses the token (the kernel
/// writes it back in time); only a crash before that loses it. A commit that
/// fails removes the record, and the caller must not act on the token.
#[must_use = "a single-use record survives a crash only once committed"]
#[derive(Debug)]
pub struct JtiRecord(Option<PendingRecord>);

impl JtiRecord {
    /// Flushes the record (file and directory) to disk.
    pub fn commit(self) -> Result<(), TokenError> {
        match self.0 {
            Some(r) => r.commit().map_err(replay_error),
            None => Ok(()),
        }
    }
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn invalid(claim: &str, reason: &'static str) -> TokenError {
    TokenError::InvalidClaim { claim: shown(claim), reason }
}

/// A token part as a JSON object; `what` names the part in the error. A key
/// repeated in it is refused (RFC 7515 5.2 allows it): serde_json keeps the
/// last value, other readers of the same token (a gateway, the issuer's
/// logs) may keep the first, and the two would see different claims.
fn decode_object(part: &str, what: Part) -> Result<Map<String, Value>, TokenError> {
    let not_json = match what {
        Part::Header => "header is not base64url JSON",
        Part::Payload => "payload is not base64url JSON",
    };
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed(not_json))?;
    match brig_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(TokenError::Malformed(not_json)),
        Err(e) => Err(TokenError::Malformed(match (e.is_duplicate_key(), what) {
            (false, _) => not_json,
            (true, Part::Header) => "header repeats a key",
            (true, Part::Payload) => "payload repeats a claim",
        })),
    }
}

#[derive(Clone, Copy)]
enum Part {
    Header,
    Payload,
}

fn string_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<String>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(invalid(name, "must be a non-empty string")),
    }
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, fractions dropped.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            // Beyond ±10^15 seconds (some 30 million years) no date is real;
            // refusing them keeps every date computation from overflowing.
            if let Some(i) = n.as_i64() {
                return if i.unsigned_abs() < 1_000_000_000_000_000 {
                    Ok(Some(i))
                } else {
                    Err(invalid(name, "is not a usable NumericDate"))
                };
            }
            match n.as_f64() {
                // INVARIANT: the range check makes the cast exact after floor().
                #[allow(clippy::cast_possible_truncation)]
                Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
                _ => Err(invalid(name, "is not a usable NumericDate")),
            }
        }
        Some(_) => Err(invalid(name, "must be a number (seconds since the epoch)")),
    }
}
