//! Every token failure mode, with real Ed25519, P-256 and RSA keys.

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::config::{ReplayConfig, TrustConfig};
use crate::devtools::{jwks_from, keygen, mint, GeneratedKey};
use crate::token::{TokenError, TokenVerifier};
use crate::TrustError;

pub(crate) struct Keys {
    pub ed: GeneratedKey,
    pub es: GeneratedKey,
    pub rs: GeneratedKey,
    /// A second Ed25519 key, published under the same kid nowhere.
    pub other_ed: GeneratedKey,
}

pub(crate) fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        ed: keygen("EdDSA").unwrap(),
        es: keygen("ES256").unwrap(),
        rs: keygen("RS256").unwrap(),
        other_ed: keygen("EdDSA").unwrap(),
    })
}

pub(crate) fn jwks() -> String {
    let k = keys();
    jwks_from(&[k.ed.public_jwk.clone(), k.es.public_jwk.clone(), k.rs.public_jwk.clone()]).unwrap().to_string()
}

pub(crate) const ISS: &str = "https://issuer.test";

pub(crate) fn config() -> TrustConfig {
    TrustConfig::required(vec![ISS.into()], vec!["brig".into()])
}

pub(crate) fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn t(secs: i64) -> i64 {
    1_750_000_000 + secs
}

pub(crate) fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "repo:acme/app:ref:refs/heads/main", "aud": "brig",
        "iat": t(0), "nbf": t(0), "exp": t(600), "jti": "jti-1",
        "tenant": "acme", "roles": ["ci"],
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

pub(crate) fn sign(key: &GeneratedKey, claims: &Value) -> String {
    mint(claims, &key.private_pem, &key.kid, &key.alg).unwrap()
}

fn verifier() -> TokenVerifier {
    TokenVerifier::with_jwks(&config(), &jwks(), None).unwrap()
}

/// A token with an arbitrary header and an HMAC-SHA256 signature under `secret`.
fn hs256(header: Value, claims: &Value, secret: &[u8]) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = header.get("kid").and_then(Value::as_str).map(str::to_string);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn err(v: &TokenVerifier, token: &str) -> TokenError {
    v.verify(token, now()).expect_err("token must be refused")
}

#[test]
fn valid_tokens_for_each_algorithm() {
    let v = verifier();
    for key in [&keys().ed, &keys().es, &keys().rs] {
        let token = sign(key, &claims());
        let id = v.verify(&token, now()).unwrap_or_else(|e| panic!("{}: {e}", key.alg));
        assert_eq!(id.issuer, ISS);
        assert_eq!(id.subject, "repo:acme/app:ref:refs/heads/main");
        assert_eq!(id.tenant.as_deref(), Some("acme"));
        assert_eq!(id.roles, ["ci"]);
        assert_eq!(id.jti.as_deref(), Some("jti-1"));
        assert_eq!(id.audience, ["brig"]);
        assert_eq!(id.key_id.as_deref(), Some(key.kid.as_str()));
        assert_eq!(id.principal_id(), format!("{ISS}|repo:acme/app:ref:refs/heads/main"));
    }
}

#[test]
fn key_rotation_two_keys_at_once() {
    let k = keys();
    let jwks = jwks_from(&[k.ed.public_jwk.clone(), k.other_ed.public_jwk.clone()]).unwrap().to_string();
    let v = TokenVerifier::with_jwks(&config(), &jwks, None).unwrap();
    v.verify(&sign(&k.ed, &claims()), now()).unwrap();
    v.verify(&sign(&k.other_ed, &claims()), now()).unwrap();
}

/// Every refusal, each with its own variant and its own message.
fn failures() -> Vec<(&'static str, String, TokenError)> {
    let v = verifier();
    let k = keys();
    let c = claims();
    let good = sign(&k.ed, &c);
    let mut out = Vec::new();
    let mut case = |name: &'static str, token: String| {
        let e = err(&v, &token);
        out.push((name, token, e));
    };
    case("expired", sign(&k.ed, &with(c.clone(), json!({"iat": t(-1000), "nbf": t(-1000), "exp": t(-100)}))));
    case("not yet valid", sign(&k.ed, &with(c.clone(), json!({"nbf": t(100), "exp": t(700)}))));
    case("issued in the future", sign(&k.ed, &with(c.clone(), json!({"iat": t(100), "nbf": null}))));
    case("wrong issuer", sign(&k.ed, &with(c.clone(), json!({"iss": "https://evil.test"}))));
    case("wrong audience", sign(&k.ed, &with(c.clone(), json!({"aud": ["other"]}))));
    case("unknown kid", mint(&c, &k.ed.private_pem, "no-such-kid", "EdDSA").unwrap());
    // signed by a key that is not the one its kid names
    case("bad signature", mint(&c, &k.other_ed.private_pem, &k.ed.kid, "EdDSA").unwrap());
    case("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&c)));
    // HS256 "signed" with the RSA public key (its JWK text) as the secret
    case("key confusion", hs256(json!({"kid": k.rs.kid}), &c, k.rs.public_jwk.to_string().as_bytes()));
    case("garbage", "this is not a token".into());
    case("truncated", good[..good.len() / 2].to_string());
    case("lifetime over maximum", sign(&k.ed, &with(c.clone(), json!({"exp": t(7200)}))));
    case("missing exp", sign(&k.ed, &with(c.clone(), json!({"exp": null}))));
    case("missing kid", {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = None;
        jsonwebtoken::encode(&h, &c, &EncodingKey::from_ed_pem(k.ed.private_pem.as_bytes()).unwrap()).unwrap()
    });
    // HMAC with no shared secret configured
    case("disallowed algorithm", hs256(json!({}), &c, b"0123456789abcdef0123456789abcdef"));
    out
}

#[test]
fn each_failure_is_refused_with_a_distinct_message() {
    let fails = failures();
    let mut messages = HashSet::new();
    let mut variants = HashSet::new();
    for (name, _, e) in &fails {
        println!("{name:>24}: {e}");
        assert!(messages.insert(e.to_string()), "{name}: message not distinct: {e}");
        variants.insert(std::mem::discriminant(e));
    }
    let by_name = |n: &str| &fails.iter().find(|(name, _, _)| *name == n).unwrap().2;
    assert!(matches!(by_name("expired"), TokenError::Expired { .. }));
    assert!(matches!(by_name("not yet valid"), TokenError::NotYetValid { .. }));
    assert!(matches!(by_name("issued in the future"), TokenError::IssuedInFuture { .. }));
    assert!(matches!(by_name("wrong issuer"), TokenError::WrongIssuer(_)));
    assert!(matches!(by_name("wrong audience"), TokenError::WrongAudience(_)));
    assert!(matches!(by_name("unknown kid"), TokenError::UnknownKeyId(_)));
    assert!(matches!(by_name("bad signature"), TokenError::BadSignature));
    assert!(matches!(by_name("alg none"), TokenError::AlgorithmNone));
    assert!(matches!(by_name("key confusion"), TokenError::KeyConfusion { .. }));
    assert!(matches!(by_name("garbage"), TokenError::Malformed(_)));
    assert!(matches!(by_name("truncated"), TokenError::Malformed(_)));
    // a token cut inside its signature is refused too
    let good = sign(&keys().ed, &claims());
    let cut = &good[..good.len() - 5];
    assert!(matches!(err(&verifier(), cut), TokenError::BadSignature | TokenError::Malformed(_)));
    assert!(matches!(by_name("lifetime over maximum"), TokenError::LifetimeTooLong { .. }));
    assert!(matches!(by_name("missing exp"), TokenError::MissingClaim("exp")));
    assert!(matches!(by_name("missing kid"), TokenError::MissingKeyId));
    assert!(matches!(by_name("disallowed algorithm"), TokenError::DisallowedAlgorithm { .. }));
    // garbage and truncated share `Malformed`, with different messages
    assert_eq!(variants.len(), fails.len() - 1);
}

#[test]
fn no_message_or_debug_contains_the_token_or_keys() {
    let k = keys();
    let mut secrets: Vec<String> = Vec::new();
    for key in [&k.ed, &k.es, &k.rs, &k.other_ed] {
        secrets.push(key.private_pem.clone());
        for line in key.private_pem.lines().filter(|l| !l.starts_with("-----") && l.len() > 16) {
            secrets.push(line.to_string());
        }
        for member in ["x", "y", "n"] {
            if let Some(v) = key.public_jwk.get(member).and_then(Value::as_str) {
                secrets.push(v.to_string());
            }
        }
    }
    let v = verifier();
    let debug_verifier = format!("{v:?}");
    for s in &secrets {
        assert!(!debug_verifier.contains(s.as_str()), "verifier Debug shows key material");
    }
    for (name, token, e) in failures() {
        let shown = format!("{e} {e:?}");
        let mut parts: Vec<&str> = token.split('.').filter(|p| p.len() >= 8).collect();
        parts.push(&token);
        for p in parts {
            assert!(!shown.contains(p), "{name}: error shows token material: {shown}");
        }
        for s in &secrets {
            assert!(!shown.contains(s.as_str()), "{name}: error shows key material");
        }
    }
    let token = sign(&k.ed, &claims());
    let id = v.verify(&token, now()).unwrap();
    let debug = format!("{id:?}");
    assert!(!debug.contains(&token) && !debug.contains(token.split('.').nth(2).unwrap()));
    // trust errors name the kid, never the key
    let mut leaky = k.ed.public_jwk.clone();
    leaky["d"] = json!("c2VjcmV0LXByaXZhdGUta2V5LW1hdGVyaWFs");
    let jwks = json!({"keys": [leaky]}).to_string();
    let e = TokenVerifier::with_jwks(&config(), &jwks, None).unwrap_err();
    assert!(matches!(e, TrustError::Key { .. }), "{e}");
    assert!(!format!("{e} {e:?}").contains("c2VjcmV0"), "{e}");
}

#[test]
fn key_confusion_variants() {
    let k = keys();
    let c = claims();
    // HS256 naming the EC key, HMAC not configured
    let v = verifier();
    let token = hs256(json!({"kid": k.es.kid}), &c, k.es.public_jwk.to_string().as_bytes());
    assert!(matches!(err(&v, &token), TokenError::KeyConfusion { key_type: "EC P-256", .. }));
    // with an HMAC secret configured, an HS256 token naming a JWKS key is still refused
    let mut cfg = config();
    cfg.algorithms.push("HS256".into());
    cfg.hmac_secret_file = Some("/unused".into());
    let secret = b"0123456789abcdef0123456789abcdef";
    let hv = TokenVerifier::with_jwks(&cfg, &jwks(), Some(secret)).unwrap();
    let token = hs256(json!({"kid": k.rs.kid}), &c, k.rs.public_jwk.to_string().as_bytes());
    assert!(matches!(err(&hv, &token), TokenError::KeyConfusion { key_type: "RSA", .. }));
    // ... while a real HS256 token under the configured secret verifies
    hv.verify(&hs256(json!({}), &c, secret), now()).unwrap();
    // and HS256 without a configured secret is not allowed at all
    assert!(matches!(err(&v, &hs256(json!({}), &c, secret)), TokenError::DisallowedAlgorithm { .. }));
    // RS256 header naming the Ed25519 key
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(k.ed.kid.clone());
    let token = jsonwebtoken::encode(&h, &c, &EncodingKey::from_rsa_pem(k.rs.private_pem.as_bytes()).unwrap()).unwrap();
    assert!(matches!(err(&v, &token), TokenError::KeyConfusion { key_type: "Ed25519", .. }));
}

#[test]
fn more_malformed_and_missing() {
    let v = verifier();
    let k = keys();
    let c = claims();
    assert!(matches!(err(&v, ""), TokenError::Malformed("empty")));
    assert!(matches!(err(&v, "a.b"), TokenError::Malformed(_)));
    assert!(matches!(err(&v, "a.b.c.d.e"), TokenError::Malformed("encrypted tokens (JWE) are not supported")));
    assert!(matches!(err(&v, "!!!.e30.sig"), TokenError::Malformed(_)));
    assert!(matches!(err(&v, &"x".repeat(20_000)), TokenError::Malformed(_)));
    let good = sign(&k.ed, &c);
    // payload swapped after signing: the signature no longer matches
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(&with(c.clone(), json!({"tenant": "globex"}))), parts[2]);
    assert!(matches!(err(&v, &forged), TokenError::BadSignature));
    for claim in ["iss", "aud", "sub"] {
        let e = err(&v, &sign(&k.ed, &with(c.clone(), json!({ claim: null }))));
        assert!(matches!(e, TokenError::MissingClaim(n) if n == claim), "{claim}: {e}");
    }
    let e = err(&v, &sign(&k.ed, &with(c.clone(), json!({"tenant": 7}))));
    assert!(matches!(e, TokenError::InvalidClaim { .. }), "{e}");
    let e = err(&v, &sign(&k.ed, &with(c.clone(), json!({"exp": "tomorrow"}))));
    assert!(matches!(e, TokenError::InvalidClaim { .. }), "{e}");
    // no iat: the lifetime is counted from now
    let e = err(&v, &sign(&k.ed, &with(c.clone(), json!({"iat": null, "exp": t(3700)}))));
    assert!(matches!(e, TokenError::LifetimeTooLong { lifetime: 3700, .. }), "{e}");
    v.verify(&sign(&k.ed, &with(c.clone(), json!({"iat": null, "exp": t(3500)}))), now()).unwrap();
    // inside the leeway
    v.verify(&sign(&k.ed, &with(c.clone(), json!({"nbf": t(20)}))), now()).unwrap();
    v.verify(&sign(&k.ed, &with(c.clone(), json!({"iat": t(-500), "exp": t(-10)}))), now()).unwrap();
    // a crit header
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(k.ed.kid.clone());
    h.crit = Some(vec!["exp".into()]);
    let token = jsonwebtoken::encode(&h, &c, &EncodingKey::from_ed_pem(k.ed.private_pem.as_bytes()).unwrap()).unwrap();
    assert!(matches!(err(&v, &token), TokenError::CriticalHeader));
    // `typ`: another kind of JWT from the same issuer is refused, a job
    // token's types (any case, with or without `application/`) pass.
    let key = EncodingKey::from_ed_pem(k.ed.private_pem.as_bytes()).unwrap();
    let typed = |typ: &str| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(k.ed.kid.clone());
        h.typ = Some(typ.into());
        jsonwebtoken::encode(&h, &c, &key).unwrap()
    };
    for other in ["logout+jwt", "dpop+jwt", "secevent+jwt", "application/example+jwt", ""] {
        let e = err(&v, &typed(other));
        assert!(matches!(&e, TokenError::WrongType(t) if t == other), "{other}: {e}");
        assert!(e.to_string().contains("is not a job token"), "{e}");
    }
    for ok in ["JWT", "jwt", "application/jwt", "Application/JWT", "at+jwt", "application/AT+JWT", "JOSE"] {
        v.verify(&typed(ok), now()).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(k.ed.kid.clone());
    let untyped = jsonwebtoken::encode(&h, &c, &key).unwrap();
    let (head, rest) = untyped.split_once('.').unwrap();
    let mut head_json: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap();
    head_json["typ"] = json!(7);
    let bad_typ = format!("{}.{rest}", b64(&head_json));
    assert!(matches!(err(&v, &bad_typ), TokenError::Malformed(m) if m.contains("typ")));
    // `typ: null` is no type, as if absent (the signature covers the header,
    // so re-sign it).
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(k.ed.kid.clone());
    h.typ = None;
    let header_null = {
        let mut j = serde_json::to_value(&h).unwrap();
        j["typ"] = Value::Null;
        j
    };
    let signing_input = format!("{}.{}", b64(&header_null), b64(&c));
    let sig = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, Algorithm::EdDSA).unwrap();
    v.verify(&format!("{signing_input}.{sig}"), now()).unwrap();
    // `None` in any case
    let none = format!("{}.{}.", b64(&json!({"alg": "NoNe"})), b64(&c));
    assert!(matches!(err(&v, &none), TokenError::AlgorithmNone));
}

/// A key repeated in the header or the payload is refused, signed or not:
/// serde keeps the last value, a first-wins reader of the same token (a
/// gateway, the issuer's logs) the first, and the two would see different
/// claims.
#[test]
fn repeated_keys_are_refused() {
    let k = keys();
    let v = verifier();
    let key = EncodingKey::from_ed_pem(k.ed.private_pem.as_bytes()).unwrap();
    // Signed by the trusted key, so only the repetition can refuse it.
    let signed_raw = |header: &str, payload: &str| {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::EdDSA).unwrap();
        format!("{input}.{sig}")
    };
    let header = format!(r#"{{"alg":"EdDSA","kid":"{}"}}"#, k.ed.kid);
    let payload = claims().to_string();
    v.verify(&signed_raw(&header, &payload), now()).expect("the raw-built token is valid as it is");
    let tenant = r#""tenant":"acme""#;
    assert_eq!(payload.matches(tenant).count(), 1);
    for (what, header, payload, want) in [
        (
            "tenant twice",
            header.clone(),
            payload.replacen(tenant, &format!(r#""tenant":"globex",{tenant}"#), 1),
            "payload repeats a claim",
        ),
        (
            "a nested key twice",
            header.clone(),
            payload.replacen(tenant, &format!(r#"{tenant},"ctx":{{"a":1,"a":2}}"#), 1),
            "payload repeats a claim",
        ),
        (
            "exp twice",
            header.clone(),
            payload.replacen(r#""exp":"#, &format!(r#""exp":{},"exp":"#, t(10_000_000)), 1),
            "payload repeats a claim",
        ),
        (
            "kid twice",
            format!(r#"{{"alg":"EdDSA","kid":"other","kid":"{}"}}"#, k.ed.kid),
            payload.clone(),
            "header repeats a key",
        ),
        (
            "alg twice",
            format!(r#"{{"alg":"HS256","alg":"EdDSA","kid":"{}"}}"#, k.ed.kid),
            payload.clone(),
            "header repeats a key",
        ),
    ] {
        let e = err(&v, &signed_raw(&header, &payload));
        assert!(matches!(&e, TokenError::Malformed(m) if *m == want), "{what}: {e}");
    }
}

#[test]
fn algorithm_allowlist() {
    let mut cfg = config();
    cfg.algorithms = vec!["EdDSA".into()];
    let v = TokenVerifier::with_jwks(&cfg, &jwks(), None).unwrap();
    v.verify(&sign(&keys().ed, &claims()), now()).unwrap();
    assert!(matches!(err(&v, &sign(&keys().es, &claims())), TokenError::DisallowedAlgorithm { .. }));
}

fn replay_verifier(dir: &std::path::Path) -> TokenVerifier {
    let mut cfg = config();
    cfg.replay = Some(ReplayConfig { dir: dir.to_path_buf() });
    TokenVerifier::with_jwks(&cfg, &jwks(), None).unwrap()
}

#[test]
fn replayed_jti_is_refused_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let token = sign(&keys().ed, &claims());
    replay_verifier(dir.path()).verify(&token, now()).unwrap();
    let e = replay_verifier(dir.path()).verify(&token, now()).unwrap_err();
    assert_eq!(e, TokenError::Replayed);
    // a token without jti is refused when single-use is on
    let e = replay_verifier(dir.path()).verify(&sign(&keys().ed, &with(claims(), json!({"jti": null}))), now());
    assert_eq!(e.unwrap_err(), TokenError::MissingClaim("jti"));
    // a bad token never consumes its jti
    let bad = sign(&keys().ed, &with(claims(), json!({"jti": "fresh", "aud": "other"})));
    assert!(replay_verifier(dir.path()).verify(&bad, now()).is_err());
    let fresh = sign(&keys().ed, &with(claims(), json!({"jti": "fresh"})));
    replay_verifier(dir.path()).verify(&fresh, now()).unwrap();
}

#[test]
fn exec_with_the_launch_token() {
    let dir = tempfile::tempdir().unwrap();
    let v = replay_verifier(dir.path());
    let token = sign(&keys().ed, &claims());
    let id = v.verify_for_launch(&token, now(), "c1").unwrap();
    let jti = id.jti.as_deref().map(|j| (ISS, j));
    // the same token may exec into its own container, repeatedly
    v.verify_for_exec(&token, now(), "c1", jti).unwrap();
    v.verify_for_exec(&token, now(), "c1", jti).unwrap();
    // not into another container, and it cannot launch again
    assert_eq!(v.verify_for_exec(&token, now(), "c2", jti).unwrap_err(), TokenError::ExecOtherContainer);
    assert_eq!(v.verify_for_exec(&token, now(), "c2", None).unwrap_err(), TokenError::Replayed);
    assert_eq!(v.verify_for_launch(&token, now(), "c3").unwrap_err(), TokenError::Replayed);
    // an expired launch token cannot exec
    let later = now() + Duration::from_secs(700);
    assert!(matches!(v.verify_for_exec(&token, later, "c1", jti).unwrap_err(), TokenError::Expired { .. }));
    // a fresh token for exec is single-use like any other
    let exec_token = sign(&keys().ed, &with(claims(), json!({"jti": "exec-1"})));
    v.verify_for_exec(&exec_token, now(), "c1", jti).unwrap();
    assert_eq!(v.verify_for_exec(&exec_token, now(), "c1", jti).unwrap_err(), TokenError::Replayed);
    // a launch record from plain `verify` is bound to no container
    let plain = sign(&keys().ed, &with(claims(), json!({"jti": "plain"})));
    v.verify(&plain, now()).unwrap();
    assert_eq!(
        v.verify_for_exec(&plain, now(), "c1", Some((ISS, "plain"))).unwrap_err(),
        TokenError::ExecOtherContainer
    );
}

/// The launch's token is matched by issuer and `jti`: issuer A's token `J`,
/// spent launching an earlier container `c1`, is not the launch token of a
/// new `c1` launched with issuer B's token `J`, so it cannot exec there
/// unspent (it is refused as replayed).
#[test]
fn an_exec_is_matched_to_the_launch_token_by_issuer_too() {
    let dir = tempfile::tempdir().unwrap();
    let other = "https://other-issuer.test";
    let mut cfg = TrustConfig::required(vec![ISS.into(), other.into()], vec!["brig".into()]);
    cfg.replay = Some(ReplayConfig { dir: dir.path().to_path_buf() });
    let v = TokenVerifier::with_jwks(&cfg, &jwks(), None).unwrap();
    let from_a = sign(&keys().ed, &with(claims(), json!({"jti": "J"})));
    let from_b = sign(&keys().ed, &with(claims(), json!({"jti": "J", "iss": other})));
    v.verify_for_launch(&from_a, now(), "c1").unwrap();
    v.verify_for_launch(&from_b, now(), "c1").unwrap();
    let launch = Some((other, "J"));
    assert_eq!(v.verify_for_exec(&from_a, now(), "c1", launch).unwrap_err(), TokenError::Replayed);
    assert_eq!(v.verify_exec_without_consuming(&from_a, now(), "c1", launch).unwrap_err(), TokenError::Replayed);
    v.verify_for_exec(&from_b, now(), "c1", launch).unwrap();
}

#[test]
fn jwks_file_loading_and_trust_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks()).unwrap();
    let mut cfg = config();
    cfg.jwks_file = Some(path.clone());
    let v = TokenVerifier::new(&cfg).unwrap();
    v.verify(&sign(&keys().rs, &claims()), now()).unwrap();

    let k = keys();
    let dup = jwks_from(&[k.ed.public_jwk.clone(), k.ed.public_jwk.clone()]).unwrap().to_string();
    assert!(TokenVerifier::with_jwks(&cfg, &dup, None).unwrap_err().to_string().contains("duplicate"));
    let mut no_kid = k.ed.public_jwk.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let e = TokenVerifier::with_jwks(&cfg, &json!({"keys": [no_kid]}).to_string(), None).unwrap_err();
    assert!(e.to_string().contains("kid"), "{e}");
    let oct = json!({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}).to_string();
    assert!(TokenVerifier::with_jwks(&cfg, &oct, None).is_err());
    // RSA moduli are measured in bits: 256 bytes whose first is 0x01 is a
    // 2,041-bit modulus, refused; one whose first is 0x80 is 2,048 bits.
    let rsa_with_n = |first: u8| {
        let mut n = vec![0xffu8; 256];
        n[0] = first;
        let n = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &n);
        json!({"keys": [{"kty": "RSA", "kid": "r", "use": "sig", "n": n, "e": "AQAB"}]}).to_string()
    };
    let e = TokenVerifier::with_jwks(&cfg, &rsa_with_n(0x01), None).unwrap_err();
    assert!(e.to_string().contains("under 2048 bits"), "{e}");
    TokenVerifier::with_jwks(&cfg, &rsa_with_n(0x80), None).unwrap();
    // Ed25519 and EC keys of the wrong length are refused at load, naming
    // the member: a short Ed25519 `x` made every token naming it panic the
    // verifier.
    let b64 = |n: usize| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, vec![7u8; n]);
    for (key, member) in [
        (json!({"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": "AAAA"}), "`x` is 3 bytes"),
        (json!({"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": b64(33)}), "`x` is 33 bytes"),
        (json!({"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": "!!"}), "`x` is not base64url"),
        (json!({"kty": "EC", "crv": "P-256", "kid": "p", "x": b64(31), "y": b64(32)}), "`x` is 31 bytes"),
        (json!({"kty": "EC", "crv": "P-256", "kid": "p", "x": b64(32), "y": b64(2)}), "`y` is 2 bytes"),
        (json!({"kty": "EC", "crv": "P-384", "kid": "p", "x": b64(32), "y": b64(32)}), "`x` is 32 bytes"),
    ] {
        let e = TokenVerifier::with_jwks(&cfg, &json!({"keys": [key]}).to_string(), None).unwrap_err().to_string();
        assert!(e.contains(member), "{key}: {e}");
    }
    std::fs::write(&path, "{not json").unwrap();
    assert!(TokenVerifier::new(&cfg).unwrap_err().to_string().contains("not JSON"));
    cfg.mode = crate::AuthMode::Off;
    assert!(matches!(TokenVerifier::new(&cfg), Err(TrustError::ModeOff)));
}

/// A fractional NumericDate (RFC 7519 allows one) is judged in whole
/// seconds and reaches the policies as the integer the schema declares: it
/// made the decision fail after the token's single use was spent.
#[test]
fn fractional_dates_reach_the_policies_as_whole_seconds() {
    let v = verifier();
    let mut c = claims();
    c["iat"] = json!(t(0) as f64 + 0.5);
    c["nbf"] = json!(t(0) as f64 + 0.25);
    c["exp"] = json!(t(600) as f64 + 0.75);
    let token = v.verify(&sign(&keys().ed, &c), now()).unwrap();
    for (name, want) in [("iat", t(0)), ("nbf", t(0)), ("exp", t(600))] {
        assert_eq!(token.claims[name].as_i64(), Some(want), "{name}: {}", token.claims[name]);
    }
}

/// An identity provider's JWKS often holds keys brig does not verify with
/// (Keycloak publishes an RSA-OAEP encryption key beside its signing keys):
/// they are left out, not a reason to refuse every launch, and a token that
/// names one is refused saying so. A left-out key still may not share a
/// `kid` with a signing key, and private material still fails the document.
#[test]
fn keys_not_for_signatures_are_left_out_of_the_jwks() {
    let k = keys();
    let rsa_n = k.rs.public_jwk["n"].clone();
    let b64 = |n: usize| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, vec![7u8; n]);
    let others = [
        json!({"kty": "RSA", "kid": "enc-1", "use": "enc", "alg": "RSA-OAEP", "n": rsa_n, "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "oaep", "alg": "RSA-OAEP-256", "n": rsa_n, "e": "AQAB"}),
        json!({"kty": "OKP", "kid": "x", "crv": "X25519", "x": b64(32)}),
        json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": b64(66), "y": b64(66)}),
        json!({"kty": "EC", "kid": "ecdh", "crv": "P-256", "alg": "ECDH-ES", "x": b64(32), "y": b64(32)}),
        // Marked for other operations by `key_ops` alone (RFC 7517 4.3).
        json!({"kty": "RSA", "kid": "wrap", "key_ops": ["wrapKey", "unwrapKey"], "n": rsa_n, "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "encrypt", "key_ops": ["encrypt"], "n": rsa_n, "e": "AQAB"}),
    ];
    let mut all = vec![k.ed.public_jwk.clone(), k.es.public_jwk.clone(), k.rs.public_jwk.clone()];
    all.extend(others.iter().cloned());
    let v = TokenVerifier::with_jwks(&config(), &json!({"keys": all}).to_string(), None).unwrap();
    for key in [&k.ed, &k.es, &k.rs] {
        v.verify(&sign(key, &claims()), now()).unwrap();
    }
    // A token naming the encryption key (signed by a real key).
    let mut header_kid = k.rs.clone();
    header_kid.kid = "enc-1".into();
    let e = v.verify(&sign(&header_kid, &claims()), now()).unwrap_err();
    assert!(matches!(e, TokenError::KeyNotForSignatures { .. }), "{e}");
    assert!(e.to_string().contains("`use` is `enc`"), "{e}");
    header_kid.kid = "wrap".into();
    let e = v.verify(&sign(&header_kid, &claims()), now()).unwrap_err();
    assert!(matches!(e, TokenError::KeyNotForSignatures { .. }), "{e}");
    assert!(e.to_string().contains("do not include `verify`"), "{e}");
    // `key_ops` that include `verify` keep the key.
    let mut verify_ops = k.ed.public_jwk.clone();
    verify_ops["key_ops"] = json!(["verify"]);
    let v = TokenVerifier::with_jwks(&config(), &json!({"keys": [verify_ops]}).to_string(), None).unwrap();
    v.verify(&sign(&k.ed, &claims()), now()).unwrap();
    let mut odd = k.ed.public_jwk.clone();
    odd["key_ops"] = json!("verify");
    let e = TokenVerifier::with_jwks(&config(), &json!({"keys": [odd]}).to_string(), None).unwrap_err();
    assert!(e.to_string().contains("`key_ops` is not an array"), "{e}");
    // A left-out key with a signing key's `kid`, either order.
    let mut clash = others[0].clone();
    clash["kid"] = k.ed.public_jwk["kid"].clone();
    for keys in [vec![k.ed.public_jwk.clone(), clash.clone()], vec![clash.clone(), k.ed.public_jwk.clone()]] {
        let e = TokenVerifier::with_jwks(&config(), &json!({"keys": keys}).to_string(), None).unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
    }
    // Private material in a left-out key still fails the whole document.
    let mut private = others[2].clone();
    private["d"] = json!(b64(32));
    let e = TokenVerifier::with_jwks(&config(), &json!({"keys": [k.ed.public_jwk.clone(), private]}).to_string(), None)
        .unwrap_err();
    assert!(e.to_string().contains("private"), "{e}");
}

/// An Ed25519 key of small order (the identity point) verifies signatures
/// made without any private key: `R` = the identity, `S` = 0 passes the
/// check for every message. A JWKS holding one (an IdP's bug, a poisoned
/// fetch) is refused whole, as is one whose `x` is not a point of the curve,
/// so no such token is ever accepted.
#[test]
fn weak_or_invalid_ed25519_keys_fail_the_jwks() {
    let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let off_curve = (2u8..=255)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            b
        })
        .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
        .unwrap();
    let forged = {
        let header = b64(br#"{"alg":"EdDSA","kid":"weak","typ":"JWT"}"#);
        let payload = b64(claims().to_string().as_bytes());
        let mut signature = [0u8; 64];
        signature[0] = 1;
        format!("{header}.{payload}.{}", b64(&signature))
    };
    for (x, why) in [(identity, "weak Ed25519 key"), (off_curve, "not a point of Ed25519")] {
        let weak = json!({"kty": "OKP", "crv": "Ed25519", "kid": "weak", "use": "sig", "x": b64(&x)});
        let doc = json!({"keys": [keys().ed.public_jwk.clone(), weak]}).to_string();
        let e = TokenVerifier::with_jwks(&config(), &doc, None).unwrap_err();
        assert!(e.to_string().contains(why) && e.to_string().contains("weak"), "{e}");
    }
    // The forgery itself: against a verifier of the good key alone, refused.
    assert!(verifier().verify(&forged, now()).is_err());
}

/// A key the signature check cannot use fails the JWKS at load, naming the
/// key and why, instead of loading and then refusing every token signed
/// with it as "signature does not verify": an RSA modulus over 4096 bits,
/// an RSA exponent of 1 or an even one, an EC point off its curve. A key
/// repeated member (two `kid`s in one key, which a lenient reader resolves
/// to either) fails it too.
#[test]
fn keys_the_signature_check_cannot_use_fail_the_jwks() {
    let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    // An odd modulus of the given size (no factors are needed to be refused).
    let modulus = |bits: usize| {
        let mut n = vec![0xa5u8; bits / 8];
        n[0] = 0xc1;
        *n.last_mut().unwrap() |= 1;
        b64(&n)
    };
    let rsa = |n: String, e: &[u8]| json!({"kty": "RSA", "kid": "bad", "use": "sig", "n": n, "e": b64(e)});
    let point = |crv: &str, len: usize| json!({"kty": "EC", "crv": crv, "kid": "bad", "x": b64(&vec![1u8; len]), "y": b64(&vec![2u8; len])});
    for (key, why) in [
        (rsa(modulus(8192), &[1, 0, 1]), "RSA modulus over 4096 bits"),
        (rsa(modulus(2048), &[1]), "not a usable RSA public key"),
        (rsa(modulus(2048), &[1, 0, 0]), "not a usable RSA public key"),
        (point("P-256", 32), "not a point of the curve"),
        (point("P-384", 48), "not a point of the curve"),
    ] {
        let doc = json!({"keys": [keys().ed.public_jwk.clone(), key]}).to_string();
        let e = TokenVerifier::with_jwks(&config(), &doc, None).unwrap_err().to_string();
        assert!(e.contains(why) && e.contains("bad"), "{e}");
    }
    // The keys brig mints, and a 4096-bit modulus, still load.
    let doc = json!({"keys": [keys().ed.public_jwk.clone(), keys().es.public_jwk.clone(), keys().rs.public_jwk.clone(),
                              rsa(modulus(4096), &[1, 0, 1])]});
    TokenVerifier::with_jwks(&config(), &doc.to_string(), None).unwrap();
    let ed = keys().ed.public_jwk.to_string();
    let repeated = ed.replacen('{', r#"{"kid":"other","#, 1);
    let e = TokenVerifier::with_jwks(&config(), &format!(r#"{{"keys": [{repeated}]}}"#), None).unwrap_err().to_string();
    assert!(e.contains("repeats a key"), "{e}");
}

/// A signed token whose dates are far outside any real time (an issuer's
/// bug, or a key in the wrong hands) is refused naming the claim, and no
/// date arithmetic overflows on the way (a debug build would panic).
#[test]
fn dates_out_of_any_real_range_are_refused_naming_the_claim() {
    let v = verifier();
    for (claim, value) in [
        ("exp", json!(i64::MIN)),
        ("exp", json!(i64::MAX)),
        ("nbf", json!(i64::MAX)),
        ("iat", json!(i64::MIN)),
        ("exp", json!(u64::MAX)),
        ("nbf", json!(-1e300)),
    ] {
        let token = sign(&keys().ed, &with(claims(), json!({ claim: value })));
        let e = err(&v, &token).to_string();
        assert!(e.contains(claim) && e.contains("NumericDate"), "{claim} = {value}: {e}");
    }
}
