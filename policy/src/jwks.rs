//! Verification keys: a JWKS file, an HTTPS JWKS URL (pinned CA, cached on
//! disk with an expiry), and an optional HMAC secret.
//!
//! Nothing in this module puts key material into an error message: errors
//! name the file, the URL or the `kid`, never the key.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, TrustConfig};
use crate::util::{shown, unix_secs};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Smallest HMAC secret accepted, in bytes.
pub const MIN_HMAC_SECRET: usize = 32;
/// Largest JWKS document read from a file or a URL.
const MAX_JWKS_BYTES: u64 = 1 << 20;

/// Why the verification keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The `[auth]` section is invalid.
    #[error("auth configuration: {0}")]
    Config(#[from] ConfigError),
    /// Token verification is off.
    #[error("`auth.mode` is `off`: there is no token verifier")]
    ModeOff,
    /// A key file could not be read.
    #[error("reading `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The JWKS document is not a JWKS.
    #[error("JWKS from {origin}: {reason}")]
    Jwks {
        /// The file or URL.
        origin: String,
        /// What is wrong (never the key).
        reason: String,
    },
    /// A key of the JWKS cannot be used.
    #[error("JWKS from {origin}: key `{kid}`: {reason}")]
    Key {
        /// The file or URL.
        origin: String,
        /// The key's `kid`.
        kid: String,
        /// What is wrong (never the key).
        reason: String,
    },
    /// The JWKS URL could not be fetched.
    #[error("fetching the JWKS from `{url}`: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The single-use `jti` directory is unusable.
    #[error("`auth.replay.dir`: {0}")]
    Replay(#[from] crate::replay::ReplayError),
    /// The HMAC secret file is unusable.
    #[error("`{}`: {reason}", path.display())]
    HmacSecret {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the secret).
        reason: String,
    },
}

/// The kind of an asymmetric key, as far as algorithm matching goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RSA",
            KeyKind::EcP256 => "EC P-256",
            KeyKind::EcP384 => "EC P-384",
            KeyKind::Ed25519 => "Ed25519",
        }
    }

    /// Whether a token signed with `alg` may be verified with a key of this kind.
    pub(crate) fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::EcP256 => alg == ES256,
            KeyKind::EcP384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

/// One verification key of the JWKS.
pub(crate) struct PublicKey {
    pub(crate) kind: KeyKind,
    /// The JWK's own `alg`, when it names one: the token must use exactly that.
    pub(crate) alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").field("kind", &self.kind).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// All verification keys, by `kid`.
pub(crate) struct KeySet {
    pub(crate) keys: HashMap<String, PublicKey>,
    pub(crate) hmac: Option<DecodingKey>,
    /// Keys of the JWKS that are not for verifying signatures, or of a kind
    /// brig does not verify with, by `kid`, and why: left out (an identity
    /// provider's JWKS often has an encryption key beside its signing keys,
    /// and one such key must not stop every launch), never selectable.
    pub(crate) skipped: HashMap<String, String>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("hmac", &self.hmac.is_some())
            .field("skipped", &self.skipped.len())
            .finish()
    }
}

impl KeySet {
    /// Loads every key source the configuration names.
    pub(crate) fn load(config: &TrustConfig, now: SystemTime) -> Result<KeySet, TrustError> {
        let mut keys = HashMap::new();
        let mut skipped = HashMap::new();
        if let Some(path) = &config.jwks_file {
            let text = read_limited(path)?;
            add_jwks(&mut keys, &mut skipped, &text, &format!("`{}`", path.display()))?;
        }
        if let (Some(url), Some(ca)) = (&config.jwks_url, &config.jwks_ca_file) {
            let text = cached_or_fetched(url, ca, &config.jwks_cache_file, config.jwks_cache_ttl_secs, now)?;
            add_jwks(&mut keys, &mut skipped, &text, &format!("`{url}`"))?;
        }
        let hmac = match &config.hmac_secret_file {
            Some(path) => Some(load_hmac_secret(path)?),
            None => None,
        };
        Ok(KeySet { keys, hmac, skipped })
    }

    /// Keys from a JWKS document given in memory (tests, benchmarks, `brig policy explain`).
    pub(crate) fn from_jwks(jwks: &str, hmac_secret: Option<&[u8]>) -> Result<KeySet, TrustError> {
        let mut keys = HashMap::new();
        let mut skipped = HashMap::new();
        add_jwks(&mut keys, &mut skipped, jwks, "memory")?;
        let hmac = match hmac_secret {
            Some(s) if s.len() < MIN_HMAC_SECRET => {
                return Err(TrustError::HmacSecret {
                    path: PathBuf::from("<memory>"),
                    reason: format!("shorter than {MIN_HMAC_SECRET} bytes"),
                })
            }
            Some(s) => Some(DecodingKey::from_secret(s)),
            None => None,
        };
        Ok(KeySet { keys, hmac, skipped })
    }
}

fn read_limited(path: &Path) -> Result<String, TrustError> {
    use std::io::Read;
    let read_err = |source| TrustError::Read { path: path.to_path_buf(), source };
    let too_large = || TrustError::Jwks {
        origin: format!("`{}`", path.display()),
        reason: format!("larger than {MAX_JWKS_BYTES} bytes"),
    };
    let (file, meta) = brig_files::open_regular(path).map_err(read_err)?;
    if meta.len() > MAX_JWKS_BYTES {
        return Err(too_large());
    }
    // Bounded by what is read, not by the size seen: the file may grow.
    let mut text = String::new();
    file.take(MAX_JWKS_BYTES + 1).read_to_string(&mut text).map_err(read_err)?;
    if text.len() as u64 > MAX_JWKS_BYTES {
        return Err(too_large());
    }
    Ok(text)
}

fn load_hmac_secret(path: &Path) -> Result<DecodingKey, TrustError> {
    let bytes = brig_files::read(path).map_err(|source| TrustError::Read { path: path.to_path_buf(), source })?;
    // A trailing newline from `echo ... > file` is not part of the secret.
    let secret = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if secret.len() < MIN_HMAC_SECRET {
        return Err(TrustError::HmacSecret {
            path: path.to_path_buf(),
            reason: format!("shorter than {MIN_HMAC_SECRET} bytes"),
        });
    }
    Ok(DecodingKey::from_secret(secret))
}

/// Private-key members of a JWK (RFC 7518 §6.2.2, §6.3.2, RFC 8037).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Adds the JWKS document `text` to `keys`. A key that is malformed, holds
/// private material, or repeats a `kid` fails the whole document (fail
/// closed); a well-formed key that is not for signatures (`use` other than
/// `sig`), names an algorithm brig does not know (`RSA-OAEP`, `ECDH-ES`), or
/// is of a kind brig does not verify with (P-521, X25519, `oct`) goes to
/// `skipped` instead.
fn add_jwks(
    keys: &mut HashMap<String, PublicKey>,
    skipped: &mut HashMap<String, String>,
    text: &str,
    origin: &str,
) -> Result<(), TrustError> {
    let jwks_err = |reason: String| TrustError::Jwks { origin: origin.to_string(), reason };
    // Read as tokens are (crate::token): a key repeated in one object is
    // refused, where a lenient reader would take one of the two values and
    // another reader of the same file the other.
    let doc = brig_json::from_slice(text.as_bytes()).map_err(|e| {
        jwks_err(match e.is_duplicate_key() {
            true => format!("repeats a key in one object (line {}, column {})", e.line(), e.column()),
            false => format!("not JSON (line {}, column {})", e.line(), e.column()),
        })
    })?;
    let list =
        doc.get("keys").and_then(serde_json::Value::as_array).ok_or_else(|| jwks_err("no `keys` array".to_string()))?;
    for (i, raw) in list.iter().enumerate() {
        let obj = raw.as_object().ok_or_else(|| jwks_err(format!("key {i} is not an object")))?;
        let kid = match obj.get("kid") {
            Some(serde_json::Value::String(k)) if !k.is_empty() => k.clone(),
            _ => return Err(jwks_err(format!("key {i} has no `kid` (keys are selected by `kid`)"))),
        };
        let key_err = |reason: String| TrustError::Key { origin: origin.to_string(), kid: shown(&kid), reason };
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(key_err(format!(
                "has private or symmetric key material (`{member}`): a JWKS holds public keys only \
                 (HMAC secrets go in `auth.hmac_secret_file`)"
            )));
        }
        let mut skip = |reason: String| {
            if keys.contains_key(&kid) || skipped.insert(kid.clone(), reason).is_some() {
                return Err(key_err("duplicate `kid`".into()));
            }
            Ok(())
        };
        match obj.get("use") {
            None => {}
            Some(serde_json::Value::String(u)) if u == "sig" => {}
            Some(serde_json::Value::String(u)) => {
                skip(format!("its `use` is `{}`, not `sig`", shown(u)))?;
                continue;
            }
            Some(_) => return Err(key_err("`use` is not a string".into())),
        }
        // RFC 7517 4.3: a key whose `key_ops` do not include `verify` is not
        // for checking signatures (an IdP may mark an encryption key so,
        // without `use`).
        match obj.get("key_ops") {
            None => {}
            Some(serde_json::Value::Array(ops)) => {
                let mut names = Vec::with_capacity(ops.len());
                for op in ops {
                    let Some(op) = op.as_str() else { return Err(key_err("`key_ops` holds a non-string".into())) };
                    names.push(op);
                }
                if !names.contains(&"verify") {
                    let listed: Vec<String> = names.iter().map(|o| format!("`{}`", shown(o))).collect();
                    skip(format!("its `key_ops` ({}) do not include `verify`", listed.join(", ")))?;
                    continue;
                }
            }
            Some(_) => return Err(key_err("`key_ops` is not an array".into())),
        }
        let alg = match obj.get("alg") {
            None => None,
            Some(serde_json::Value::String(a)) => match a.parse::<Algorithm>() {
                Ok(alg) => Some(alg),
                Err(_) => {
                    skip(format!("its `alg` `{}` is not a signature algorithm brig verifies", shown(a)))?;
                    continue;
                }
            },
            Some(_) => return Err(key_err("`alg` is not a string".into())),
        };
        match (obj.get("kty").and_then(serde_json::Value::as_str), obj.get("crv").and_then(serde_json::Value::as_str)) {
            (Some("RSA"), _) | (Some("EC"), Some("P-256" | "P-384")) | (Some("OKP"), Some("Ed25519")) => {}
            (Some(kty @ ("EC" | "OKP")), Some(crv)) => {
                skip(format!("brig does not verify with {kty} keys on `{}`", shown(crv)))?;
                continue;
            }
            (Some(kty), _) if !["EC", "OKP"].contains(&kty) => {
                skip(format!("brig does not verify with `{}` keys", shown(kty)))?;
                continue;
            }
            _ => {}
        }
        let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|_| key_err("not a valid JWK".into()))?;
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                let n = URL_SAFE_NO_PAD.decode(rsa.n.as_bytes()).map_err(|_| key_err("`n` is not base64url".into()))?;
                // Exact bit length: whole bytes after the first non-zero one,
                // plus that byte's significant bits (0x01 counts 1, not 8).
                let bits = n
                    .iter()
                    .position(|b| *b != 0)
                    .map_or(0, |first| (n.len() - first - 1) * 8 + (8 - n[first].leading_zeros() as usize));
                if bits < MIN_RSA_BITS {
                    return Err(key_err(format!("RSA modulus under {MIN_RSA_BITS} bits")));
                }
                usable_rsa(&n, &rsa.e).map_err(key_err)?;
                KeyKind::Rsa
            }
            AlgorithmParameters::EllipticCurve(ec) => {
                let (kind, len) = match ec.curve {
                    EllipticCurve::P256 => (KeyKind::EcP256, 32),
                    EllipticCurve::P384 => (KeyKind::EcP384, 48),
                    _ => return Err(key_err("unsupported elliptic curve (P-256 and P-384 are)".into())),
                };
                let x = coordinate(&ec.x, "x", len).map_err(key_err)?;
                let y = coordinate(&ec.y, "y", len).map_err(key_err)?;
                on_curve(kind, &x, &y).map_err(key_err)?;
                kind
            }
            AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                EllipticCurve::Ed25519 => {
                    // A key of another length made the signature check
                    // panic (an out-of-range slice in the verifier).
                    let x = coordinate(&okp.x, "x", 32).map_err(key_err)?;
                    weak_ed25519(&x).map_err(key_err)?;
                    KeyKind::Ed25519
                }
                _ => return Err(key_err("unsupported OKP curve (Ed25519 is)".into())),
            },
            _ => return Err(key_err("unsupported key type (RSA, EC and OKP are)".into())),
        };
        if let Some(a) = alg {
            if !kind.fits(a) {
                return Err(key_err(format!("`alg` `{a:?}` does not fit a {} key", kind.name())));
            }
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| key_err("not a usable public key".into()))?;
        if skipped.contains_key(&kid) || keys.insert(kid.clone(), PublicKey { kind, alg, key }).is_some() {
            return Err(key_err("duplicate `kid`".into()));
        }
    }
    Ok(())
}

/// Checks that a key member is base64url of exactly `len` bytes.
fn coordinate(value: &str, member: &str, len: usize) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| format!("`{member}` is not base64url"))?;
    if bytes.len() != len {
        return Err(format!("`{member}` is {} bytes; this curve's is {len}", bytes.len()));
    }
    Ok(bytes)
}

/// An RSA key the signature check can use, checked as the check itself
/// does (`rsa::RsaPublicKey::new`: a modulus of at most 4096 bits, odd; an
/// odd exponent from 3 to 2^33 - 1, below the modulus). Without this a key
/// the check refuses loaded, and every token signed with it was then
/// refused as "signature does not verify".
fn usable_rsa(n: &[u8], e: &str) -> Result<(), String> {
    let e = URL_SAFE_NO_PAD.decode(e.as_bytes()).map_err(|_| "`e` is not base64url".to_string())?;
    rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(n), rsa::BigUint::from_bytes_be(&e)).map(drop).map_err(|err| {
        match err {
            rsa::Error::ModulusTooLarge => {
                format!(
                    "RSA modulus over {} bits (the signature check refuses larger keys)",
                    rsa::RsaPublicKey::MAX_SIZE
                )
            }
            other => format!("not a usable RSA public key ({other})"),
        }
    })
}

/// Whether (`x`, `y`), decoded by [`coordinate`], is a point of the key's
/// curve (not the identity). A point off the curve loaded, and every token
/// signed for that `kid` was then refused as "signature does not verify".
fn on_curve(kind: KeyKind, x: &[u8], y: &[u8]) -> Result<(), String> {
    let mut sec1 = Vec::with_capacity(1 + x.len() + y.len());
    sec1.push(0x04);
    sec1.extend_from_slice(x);
    sec1.extend_from_slice(y);
    let valid = match kind {
        KeyKind::EcP256 => p256::PublicKey::from_sec1_bytes(&sec1).is_ok(),
        KeyKind::EcP384 => p384::PublicKey::from_sec1_bytes(&sec1).is_ok(),
        _ => false,
    };
    match valid {
        true => Ok(()),
        false => Err("(`x`, `y`) is not a point of the curve".into()),
    }
}

/// An Ed25519 public key (`x`, decoded by [`coordinate`]) that is
/// not a point of the curve, or is one of small order: with such a key
/// (the identity point, say) signatures made without any private key
/// verify, so a JWKS holding one (an IdP's bug, a poisoned fetch) would let
/// anyone mint tokens.
fn weak_ed25519(x: &[u8]) -> Result<(), String> {
    let bytes: [u8; 32] = x.try_into().map_err(|_| "`x` is not 32 bytes".to_string())?;
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| "`x` is not a point of Ed25519".to_string())?;
    if key.is_weak() {
        return Err("a weak Ed25519 key (a point of small order): signatures made without any private key would \
                    verify with it"
            .into());
    }
    Ok(())
}

/// The on-disk copy of a fetched JWKS.
#[derive(Serialize, Deserialize)]
struct JwksCache {
    url: String,
    fetched_at: i64,
    jwks: String,
}

fn cached_or_fetched(url: &str, ca: &Path, cache: &Path, ttl: u64, now: SystemTime) -> Result<String, TrustError> {
    let now_s = unix_secs(now);
    if let Ok(text) = fs::read_to_string(cache) {
        if let Ok(c) = serde_json::from_str::<JwksCache>(&text) {
            let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
            // A copy from the future (clock set back) is not trusted either.
            if c.url == url && c.fetched_at <= now_s + 60 && now_s < c.fetched_at.saturating_add(ttl) {
                return Ok(c.jwks);
            }
        }
    }
    let jwks = fetch(url, ca)?;
    // Refuse a bad document before it is cached.
    add_jwks(&mut HashMap::new(), &mut HashMap::new(), &jwks, &format!("`{url}`"))?;
    let entry = JwksCache { url: url.to_string(), fetched_at: now_s, jwks: jwks.clone() };
    // A cache that cannot be written only costs a fetch next time.
    let _ = write_atomic(cache, &serde_json::to_vec(&entry).unwrap_or_default());
    Ok(jwks)
}

/// Fetches `url` over HTTPS, trusting only the CA certificates in `ca`.
fn fetch(url: &str, ca: &Path) -> Result<String, TrustError> {
    let fetch_err = |reason: String| TrustError::Fetch { url: url.to_string(), reason };
    let pem = brig_files::read(ca).map_err(|source| TrustError::Read { path: ca.to_path_buf(), source })?;
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
            roots.push(c);
        }
    }
    if roots.is_empty() {
        return Err(fetch_err(format!("no CA certificate in `{}`", ca.display())));
    }
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots))).build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .https_only(true)
        .max_redirects(0)
        // No proxy from the environment: the JWKS comes from the configured host.
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let mut response = agent.get(url).call().map_err(|e| fetch_err(e.to_string()))?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_JWKS_BYTES)
        .read_to_string()
        .map_err(|e| fetch_err(format!("reading the body: {e}")))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename), mode 0600.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
