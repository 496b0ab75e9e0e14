//! **Development helpers** behind `brig token keygen|jwks|mint`: generate a
//! signing key, publish its public half as a JWKS, and mint tokens with
//! chosen claims.
//!
//! These are for local use and tests. A production issuer keeps its private
//! keys in its own key management and is not brig. Minted tokens are as
//! valid as any other token signed by a trusted key, so a private key made
//! here must never be trusted in production configuration.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Why a development helper failed.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The algorithm is not one keygen/mint support.
    #[error("unsupported algorithm `{0}` (EdDSA, ES256 and RS256 are)")]
    Algorithm(String),
    /// Key generation or encoding failed.
    #[error("key generation failed: {0}")]
    Keygen(String),
    /// The private key PEM does not fit the algorithm.
    #[error("the private key is not a PKCS#8 (or, for RSA, PKCS#1) PEM key for `{0}`")]
    PrivateKey(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The claims are not a JSON object, or a JWK is not an object.
    #[error("{0}")]
    Shape(&'static str),
    /// A JWK of a set to publish holds private key material.
    #[error("key {index} (kid `{kid}`) holds private key material: a JWKS publishes public keys only")]
    PrivateJwk { index: usize, kid: String },
}

fn parse_alg(alg: &str) -> Result<Algorithm, DevError> {
    match alg {
        "EdDSA" => Ok(Algorithm::EdDSA),
        "ES256" => Ok(Algorithm::ES256),
        "RS256" => Ok(Algorithm::RS256),
        other => Err(DevError::Algorithm(other.to_string())),
    }
}

/// A development key pair: the private key as PEM and the public key as a JWK.
#[derive(Clone)]
pub struct GeneratedKey {
    /// `EdDSA`, `ES256` or `RS256`.
    pub alg: String,
    /// The JWK thumbprint (RFC 7638), also the JWK's `kid`.
    pub kid: String,
    /// PKCS#8 PEM (PKCS#1 for RSA). Secret: write it root-only.
    pub private_pem: String,
    /// The public JWK, with `kid`, `alg` and `use: sig`.
    pub public_jwk: Value,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Generates a key pair for `alg` (`EdDSA`, `ES256` or `RS256`, 2048-bit).
/// Development helper: see the module documentation.
pub fn keygen(alg: &str) -> Result<GeneratedKey, DevError> {
    use rand_core::OsRng;
    let keygen_err = |e: &dyn std::fmt::Display| DevError::Keygen(e.to_string());
    let (private_pem, mut jwk, thumb_input) = match parse_alg(alg)? {
        Algorithm::EdDSA => {
            use ed25519_dalek::pkcs8::EncodePrivateKey;
            let sk = ed25519_dalek::SigningKey::generate(&mut OsRng);
            let pem = sk.to_pkcs8_pem(Default::default()).map_err(|e| keygen_err(&e))?.to_string();
            let x = URL_SAFE_NO_PAD.encode(sk.verifying_key().as_bytes());
            let thumb = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            (pem, json!({"kty": "OKP", "crv": "Ed25519", "x": x}), thumb)
        }
        Algorithm::ES256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            use p256::pkcs8::EncodePrivateKey;
            let sk = p256::SecretKey::random(&mut OsRng);
            let pem = sk.to_pkcs8_pem(Default::default()).map_err(|e| keygen_err(&e))?.to_string();
            let point = sk.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(DevError::Keygen("P-256 point at infinity".into()));
            };
            let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
            let thumb = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            (pem, json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}), thumb)
        }
        _ => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let sk = rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(|e| keygen_err(&e))?;
            let pem = sk.to_pkcs1_pem(Default::default()).map_err(|e| keygen_err(&e))?.to_string();
            let n = URL_SAFE_NO_PAD.encode(sk.n().to_bytes_be());
            let e = URL_SAFE_NO_PAD.encode(sk.e().to_bytes_be());
            let thumb = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
            (pem, json!({"kty": "RSA", "n": n, "e": e}), thumb)
        }
    };
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumb_input.as_bytes()));
    if let Value::Object(m) = &mut jwk {
        m.insert("kid".into(), Value::String(kid.clone()));
        m.insert("alg".into(), Value::String(alg.to_string()));
        m.insert("use".into(), Value::String("sig".into()));
    }
    Ok(GeneratedKey { alg: alg.to_string(), kid, private_pem, public_jwk: jwk })
}

/// A JWKS document (`{"keys": [...]}`) of public JWKs. Several keys at once
/// is how keys are rotated: publish the new key, start signing with it,
/// remove the old one when its last token has expired.
pub fn jwks_from(keys: &[Value]) -> Result<Value, DevError> {
    for (index, k) in keys.iter().enumerate() {
        let Some(obj) = k.as_object() else { return Err(DevError::Shape("a JWK is not a JSON object")) };
        if ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|m| obj.contains_key(*m)) {
            let kid = obj.get("kid").and_then(Value::as_str).unwrap_or("none");
            return Err(DevError::PrivateJwk { index, kid: kid.escape_debug().to_string() });
        }
    }
    Ok(json!({ "keys": keys }))
}

/// Checks that the date claims `claims` has are whole seconds (NumericDate):
/// what `brig token mint` checks before minting a token that brig's own
/// verifier would refuse as malformed. (`mint` itself mints anything, for
/// the tests of that refusal.)
pub fn check_dates(claims: &Value) -> Result<(), DevError> {
    for (claim, shape) in [
        ("exp", "`exp` is not a whole number of seconds (NumericDate)"),
        ("nbf", "`nbf` is not a whole number of seconds (NumericDate)"),
        ("iat", "`iat` is not a whole number of seconds (NumericDate)"),
    ] {
        if claims.get(claim).is_some_and(|v| !v.is_i64() && !v.is_u64()) {
            return Err(DevError::Shape(shape));
        }
    }
    Ok(())
}

/// Mints a signed token with `claims` (a JSON object), header `{alg, kid, typ: "JWT"}`.
/// Development helper: see the module documentation.
pub fn mint(claims: &Value, private_pem: &str, kid: &str, alg: &str) -> Result<String, DevError> {
    let algorithm = parse_alg(alg)?;
    if !claims.is_object() {
        return Err(DevError::Shape("the claims are not a JSON object"));
    }
    let pem = private_pem.as_bytes();
    let key = match algorithm {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
        _ => EncodingKey::from_rsa_pem(pem),
    }
    .map_err(|_| DevError::PrivateKey(alg.to_string()))?;
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| DevError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Dates that are not whole seconds would make a token brig's own
    /// verifier refuses as malformed: the helper refuses to mint it.
    #[test]
    fn dates_that_are_not_numeric_are_refused_before_minting() {
        for claims in [
            serde_json::json!({"sub": "x", "exp": "x"}),
            serde_json::json!({"sub": "x", "nbf": 1.5}),
            serde_json::json!({"sub": "x", "iat": null}),
        ] {
            let e = check_dates(&claims).unwrap_err().to_string();
            assert!(e.contains("NumericDate"), "{claims}: {e}");
        }
        check_dates(&serde_json::json!({"sub": "x", "exp": 2_000_000_000u64, "iat": -5})).unwrap();
    }
}
