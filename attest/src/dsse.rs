//! DSSE envelopes: PAE, signing, and signature verification.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, PublicKey, SigningKey};

/// The payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Base64 (standard, padded) of the payload.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Hex SHA-256 of the signer's SubjectPublicKeyInfo DER.
    pub keyid: String,
    /// Base64 (standard, padded) of the signature.
    pub sig: String,
}

/// The pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII
/// decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let t = payload_type.as_bytes();
    let mut out = Vec::with_capacity(32 + t.len() + payload.len());
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(t.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(t);
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` into a one-signature envelope.
pub fn sign(payload: &[u8], payload_type: &str, key: &SigningKey) -> Result<Envelope, KeyError> {
    let sig = key.sign_raw(&pae(payload_type, payload))?;
    Ok(Envelope {
        payload: STANDARD.encode(payload),
        payload_type: payload_type.to_string(),
        signatures: vec![Signature { keyid: key.keyid().to_string(), sig: STANDARD.encode(sig) }],
    })
}

/// Decodes base64 as DSSE allows it: standard or URL-safe, padded or not.
/// Non-canonical trailing bits are refused, so each payload has one spelling
/// per alphabet.
pub(crate) fn b64(s: &str) -> Option<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(s).ok())
}

impl Envelope {
    /// The envelope as written to disk (pretty JSON and a final newline).
    pub fn to_json(&self) -> Vec<u8> {
        // INVARIANT: a struct of strings always serializes.
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// The decoded payload, if it is valid base64.
    pub fn payload_bytes(&self) -> Option<Vec<u8>> {
        b64(&self.payload)
    }
}

/// The outcome of checking an envelope's signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SigCheck {
    /// A trusted key verified a signature; its keyid.
    Verified(String),
    NoSignatures,
    /// No signature is by a trusted key; their keyids.
    Unknown(Vec<String>),
    /// A signature by a trusted key does not verify (or is not base64).
    Bad(String),
    /// A trusted key's keyid on two signatures.
    Repeated(String),
}

/// Checks signatures over the PAE of the envelope: every signature whose keyid
/// is trusted must verify, at least one must be present; signatures by other
/// keys are ignored.
pub(crate) fn check_signatures(env: &Envelope, payload: &[u8], trusted: &[PublicKey]) -> SigCheck {
    if env.signatures.is_empty() {
        return SigCheck::NoSignatures;
    }
    // Each signature by a trusted key costs a verification over the whole
    // payload: a copied signature repeated a million times must not cost a
    // million. A keyid is verified once (the first of its signatures).
    let mut seen = std::collections::BTreeSet::new();
    let msg = pae(&env.payload_type, payload);
    let mut verified = None;
    let mut unknown = Vec::new();
    for s in &env.signatures {
        let keys: Vec<&PublicKey> = trusted.iter().filter(|k| k.keyid() == s.keyid).collect();
        if keys.is_empty() {
            if unknown.len() < 8 {
                unknown.push(s.keyid.chars().take(128).collect());
            }
            continue;
        }
        if !seen.insert(s.keyid.as_str()) {
            return SigCheck::Repeated(s.keyid.clone());
        }
        let Some(sig) = b64(&s.sig) else { return SigCheck::Bad(s.keyid.clone()) };
        if !keys.iter().any(|k| k.verify_raw(&msg, &sig)) {
            return SigCheck::Bad(s.keyid.clone());
        }
        verified.get_or_insert_with(|| s.keyid.clone());
    }
    match verified {
        Some(k) => SigCheck::Verified(k),
        None => SigCheck::Unknown(unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Algorithm;

    #[test]
    fn pae_matches_the_spec() {
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae(PAYLOAD_TYPE, "é".as_bytes()), "DSSEv1 28 application/vnd.in-toto+json 2 é".as_bytes());
    }

    #[test]
    fn sign_and_check_round_trip_both_algorithms() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let k = SigningKey::generate(alg).unwrap();
            let env = sign(b"{}", PAYLOAD_TYPE, &k).unwrap();
            assert_eq!(env.signatures[0].keyid, k.keyid());
            let payload = env.payload_bytes().unwrap();
            assert_eq!(
                check_signatures(&env, &payload, &[k.public_key().clone()]),
                SigCheck::Verified(k.keyid().into())
            );
            let other = SigningKey::generate(alg).unwrap();
            assert!(matches!(check_signatures(&env, &payload, &[other.public_key().clone()]), SigCheck::Unknown(_)));
            // The payload type is signed too.
            let mut t = env.clone();
            t.payload_type = "application/json".into();
            assert!(matches!(check_signatures(&t, &payload, &[k.public_key().clone()]), SigCheck::Bad(_)));
        }
    }

    #[test]
    fn envelope_json_shape() {
        let k = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let env = sign(b"x", PAYLOAD_TYPE, &k).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&env.to_json()).unwrap();
        assert_eq!(v["payload"], "eA==");
        assert_eq!(v["payloadType"], PAYLOAD_TYPE);
        assert_eq!(v["signatures"][0]["keyid"], k.keyid());
        assert!(serde_json::from_str::<Envelope>(r#"{"payload":"","payloadType":"","signatures":[],"x":1}"#).is_err());
    }
}
