//! Signing keys (PKCS#8 PEM) and public keys (SPKI PEM), Ed25519 or ECDSA
//! P-256, and their `keyid`: the lower-case hex SHA-256 of the public key's
//! DER-encoded SubjectPublicKeyInfo (what `openssl pkey -pubout -outform DER |
//! sha256sum` prints).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use pkcs8::der::pem::LineEnding;
use pkcs8::ObjectIdentifier;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// The file names `keygen` writes.
pub const PRIVATE_KEY_FILE: &str = "attest.key";
pub const PUBLIC_KEY_FILE: &str = "attest.pub";

/// A signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    /// ECDSA over P-256 with SHA-256, DER-encoded signatures.
    EcdsaP256,
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256 => "ecdsa-p256",
        })
    }
}

impl std::str::FromStr for Algorithm {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        match s {
            "ed25519" => Ok(Algorithm::Ed25519),
            "ecdsa-p256" | "p256" | "ecdsa" => Ok(Algorithm::EcdsaP256),
            _ => Err(KeyError::Unsupported(s.into())),
        }
    }
}

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write key file `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("key file `{0}` already exists; remove it or choose another directory")]
    Exists(PathBuf),
    #[error("private key file `{path}` is readable or writable by group or others (mode {mode:o}); chmod 600 it")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("not a PEM file: {0}")]
    Pem(String),
    #[error("PEM label `{found}` where {expected} was expected")]
    Label { found: String, expected: &'static str },
    #[error("unsupported key algorithm `{0}` (supported: ed25519, ecdsa-p256)")]
    Unsupported(String),
    #[error("malformed key: {0}")]
    Malformed(String),
    #[error("the system's random source failed: {0}")]
    Random(String),
}

#[derive(Clone)]
enum Secret {
    Ed25519(ed25519_dalek::SigningKey),
    EcdsaP256(p256::ecdsa::SigningKey),
}

/// A private key that signs envelopes.
#[derive(Clone)]
pub struct SigningKey {
    secret: Secret,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("algorithm", &self.algorithm()).field("keyid", &self.keyid()).finish()
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Public {
    Ed25519(ed25519_dalek::VerifyingKey),
    EcdsaP256(p256::ecdsa::VerifyingKey),
}

/// A public key that verifies envelopes.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: Public,
    spki_der: Vec<u8>,
    keyid: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").field("algorithm", &self.algorithm()).field("keyid", &self.keyid).finish()
    }
}

/// The keyid of a public key: hex SHA-256 of its SubjectPublicKeyInfo DER.
pub fn keyid(spki_der: &[u8]) -> String {
    hex::encode(Sha256::digest(spki_der))
}

fn malformed(e: impl std::fmt::Display) -> KeyError {
    KeyError::Malformed(e.to_string())
}

fn pem_decode(pem: &str) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| KeyError::Pem(e.to_string()))?;
    Ok((label.to_string(), Zeroizing::new(der)))
}

impl SigningKey {
    /// A new random key.
    pub fn generate(alg: Algorithm) -> Result<SigningKey, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        loop {
            getrandom::fill(seed.as_mut()).map_err(|e| KeyError::Random(e.to_string()))?;
            let secret = match alg {
                Algorithm::Ed25519 => Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed)),
                Algorithm::EcdsaP256 => {
                    // A scalar of zero or above the group order (probability
                    // about 2^-32) is refused: draw again.
                    match p256::ecdsa::SigningKey::from_bytes(&(*seed).into()) {
                        Ok(k) => Secret::EcdsaP256(k),
                        Err(_) => continue,
                    }
                }
            };
            return SigningKey::from_secret(secret);
        }
    }

    fn from_secret(secret: Secret) -> Result<SigningKey, KeyError> {
        let public = match &secret {
            Secret::Ed25519(k) => PublicKey::from_public(Public::Ed25519(k.verifying_key()))?,
            Secret::EcdsaP256(k) => PublicKey::from_public(Public::EcdsaP256(*k.verifying_key()))?,
        };
        Ok(SigningKey { secret, public })
    }

    /// Reads a PKCS#8 (`PRIVATE KEY`) or, for P-256, SEC1 (`EC PRIVATE KEY`)
    /// PEM private key.
    pub fn from_pem(pem: &str) -> Result<SigningKey, KeyError> {
        let (label, der) = pem_decode(pem)?;
        let secret = match label.as_str() {
            "PRIVATE KEY" => {
                let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).map_err(malformed)?;
                let oid = info.algorithm.oid;
                if oid == OID_ED25519 {
                    Secret::Ed25519(ed25519_dalek::SigningKey::from_pkcs8_der(&der).map_err(malformed)?)
                } else if oid == OID_EC_PUBLIC_KEY {
                    Secret::EcdsaP256(
                        p256::ecdsa::SigningKey::from_pkcs8_der(&der)
                            .map_err(|_| KeyError::Unsupported("an EC key on a curve other than P-256".into()))?,
                    )
                } else {
                    return Err(KeyError::Unsupported(oid.to_string()));
                }
            }
            "EC PRIVATE KEY" => {
                let sk = p256::SecretKey::from_sec1_der(&der)
                    .map_err(|_| KeyError::Unsupported("an EC key on a curve other than P-256".into()))?;
                Secret::EcdsaP256(sk.into())
            }
            "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Unsupported("an encrypted private key".into())),
            other => {
                return Err(KeyError::Label {
                    found: other.into(),
                    expected: "a private key (`PRIVATE KEY` or `EC PRIVATE KEY`, as `brig-attest keygen` writes)",
                })
            }
        };
        SigningKey::from_secret(secret)
    }

    /// Reads a private key file, refusing one that group or others may read.
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let read = |source| KeyError::Read { path: path.to_path_buf(), source };
        // The mode checked is the file's that is read (one descriptor).
        let (mut file, meta) = brig_files::open_regular(path).map_err(read)?;
        if meta.mode() & 0o077 != 0 {
            return Err(KeyError::Permissions { path: path.to_path_buf(), mode: meta.mode() & 0o7777 });
        }
        let mut pem = Zeroizing::new(String::new());
        std::io::Read::read_to_string(&mut file, &mut pem).map_err(read)?;
        SigningKey::from_pem(&pem)
    }

    /// The PKCS#8 PEM encoding.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        match &self.secret {
            // PKCS#8 v1 (RFC 8410 without the optional public key): OpenSSL 3.0,
            // and so Python's `cryptography`, refuse the v2 form.
            Secret::Ed25519(k) => ed25519_dalek::pkcs8::KeypairBytes { secret_key: k.to_bytes(), public_key: None }
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(malformed),
            Secret::EcdsaP256(k) => k.to_pkcs8_pem(LineEnding::LF).map_err(malformed),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub fn keyid(&self) -> &str {
        &self.public.keyid
    }

    /// Signs `msg` (Ed25519, or ECDSA P-256/SHA-256 with a DER signature).
    pub fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        use ed25519_dalek::Signer;
        match &self.secret {
            Secret::Ed25519(k) => Ok(k.sign(msg).to_bytes().to_vec()),
            Secret::EcdsaP256(k) => {
                let sig: p256::ecdsa::DerSignature =
                    p256::ecdsa::signature::Signer::try_sign(k, msg).map_err(malformed)?;
                Ok(sig.as_bytes().to_vec())
            }
        }
    }
}

impl PublicKey {
    fn from_public(key: Public) -> Result<PublicKey, KeyError> {
        let doc = match &key {
            Public::Ed25519(k) => k.to_public_key_der().map_err(malformed)?,
            Public::EcdsaP256(k) => k.to_public_key_der().map_err(malformed)?,
        };
        let spki_der = doc.as_bytes().to_vec();
        Ok(PublicKey { keyid: keyid(&spki_der), key, spki_der })
    }

    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let info = spki::SubjectPublicKeyInfoRef::try_from(der).map_err(malformed)?;
        let oid = info.algorithm.oid;
        let key = if oid == OID_ED25519 {
            Public::Ed25519(ed25519_dalek::VerifyingKey::from_public_key_der(der).map_err(malformed)?)
        } else if oid == OID_EC_PUBLIC_KEY {
            Public::EcdsaP256(
                p256::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map_err(|_| KeyError::Unsupported("an EC key on a curve other than P-256".into()))?,
            )
        } else {
            return Err(KeyError::Unsupported(oid.to_string()));
        };
        // Re-encode, so that the keyid is that of the canonical encoding.
        PublicKey::from_public(key)
    }

    /// Reads a `PUBLIC KEY` PEM (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        let (label, der) = pem_decode(pem)?;
        if label != "PUBLIC KEY" {
            let expected = if label.contains("PRIVATE") {
                "a public key (`PUBLIC KEY`): this is a private key; give its `.pub` file"
            } else {
                "a public key (`PUBLIC KEY`, as `brig-attest keygen` writes to attest.pub)"
            };
            return Err(KeyError::Label { found: label, expected });
        }
        PublicKey::from_spki_der(&der)
    }

    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        // A verifier's input, which may come through a pipe (`--key <(...)`),
        // so not only a regular file; but read bounded: `--key /dev/zero`
        // must not read without end. A public key's PEM is a few hundred bytes.
        const MAX: u64 = 64 << 10;
        use std::io::Read as _;
        let read = |source| KeyError::Read { path: path.to_path_buf(), source };
        let invalid = |why: &str| read(std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string()));
        let mut bytes = Vec::new();
        std::fs::File::open(path).and_then(|f| f.take(MAX + 1).read_to_end(&mut bytes)).map_err(read)?;
        if bytes.len() as u64 > MAX {
            return Err(invalid(&format!("larger than the {MAX} bytes a public key file may be")));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(invalid("empty"));
        }
        let pem = String::from_utf8(bytes).map_err(|_| invalid("not text (UTF-8)"))?;
        PublicKey::from_pem(&pem)
    }

    pub fn to_pem(&self) -> String {
        // INVARIANT: encoding a DER document we produced as PEM cannot fail.
        pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &self.spki_der).unwrap_or_default()
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    pub fn algorithm(&self) -> Algorithm {
        match self.key {
            Public::Ed25519(_) => Algorithm::Ed25519,
            Public::EcdsaP256(_) => Algorithm::EcdsaP256,
        }
    }

    /// Checks a signature made by [`SigningKey::sign_raw`]. Ed25519 uses strict
    /// verification (no small-order keys, canonical `S`); ECDSA signatures
    /// must be DER.
    pub fn verify_raw(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.key {
            Public::Ed25519(k) => match ed25519_dalek::Signature::from_slice(sig) {
                Ok(s) => k.verify_strict(msg, &s).is_ok(),
                Err(_) => false,
            },
            Public::EcdsaP256(k) => match p256::ecdsa::Signature::from_der(sig) {
                Ok(s) => p256::ecdsa::signature::Verifier::verify(k, msg, &s).is_ok(),
                Err(_) => false,
            },
        }
    }
}

/// The files [`keygen`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    pub private: PathBuf,
    pub public: PathBuf,
    pub keyid: String,
}

/// Generates a key pair into `dir` (created mode 0700 if missing):
/// `attest.key` (PKCS#8 PEM, mode 0600) and `attest.pub` (SPKI PEM). Refuses
/// to overwrite either.
pub fn keygen(dir: &Path, alg: Algorithm) -> Result<KeyFiles, KeyError> {
    let key = SigningKey::generate(alg)?;
    let private = dir.join(PRIVATE_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Write { path, source }
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(werr(dir))?;
    for p in [&private, &public] {
        if std::fs::symlink_metadata(p).is_ok() {
            return Err(KeyError::Exists(p.clone()));
        }
    }
    let write = |path: &Path, bytes: &[u8], mode: u32| -> Result<(), KeyError> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.to_path_buf())
            } else {
                KeyError::Write { path: path.to_path_buf(), source: e }
            }
        })?;
        // A key file cut short (a full disk) would make every later keygen
        // refuse with `Exists`: the file this call created is removed.
        f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| {
            let _ = std::fs::remove_file(path);
            KeyError::Write { path: path.to_path_buf(), source: e }
        })
    };
    write(&private, key.to_pem()?.as_bytes(), 0o600)?;
    if let Err(e) = write(&public, key.public_key().to_pem().as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&private);
        return Err(e);
    }
    Ok(KeyFiles { private, public, keyid: key.keyid().to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verifier's key file may be a pipe, so it is not required to be a
    /// regular file; but `/dev/zero` is refused after 64 KiB instead of read
    /// without end, and an empty file says so.
    #[test]
    fn a_public_key_file_is_read_bounded() {
        let e = PublicKey::load(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("larger than the 65536 bytes"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pub");
        std::fs::write(&empty, "\n").unwrap();
        let e = PublicKey::load(&empty).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn pem_round_trip_and_keyid() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let k = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pem(&k.to_pem().unwrap()).unwrap();
            assert_eq!(again.keyid(), k.keyid());
            let p = PublicKey::from_pem(&k.public_key().to_pem()).unwrap();
            assert_eq!(&p, k.public_key());
            assert_eq!(p.keyid(), hex::encode(Sha256::digest(p.spki_der())));
            assert_eq!(p.keyid().len(), 64);
            let sig = k.sign_raw(b"msg").unwrap();
            assert!(p.verify_raw(b"msg", &sig));
            assert!(!p.verify_raw(b"msG", &sig));
        }
    }

    #[test]
    fn openssl_keys_are_read_with_the_same_keyid() {
        let d = tempfile::tempdir().unwrap();
        for (name, args) in [
            ("ed", &["genpkey", "-algorithm", "ed25519"][..]),
            ("ec", &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..]),
        ] {
            let key = d.path().join(format!("{name}.key"));
            let st = std::process::Command::new("openssl").args(args).arg("-out").arg(&key).status().unwrap();
            assert!(st.success());
            let out = std::process::Command::new("openssl")
                .args(["pkey", "-pubout", "-outform", "DER", "-in"])
                .arg(&key)
                .output()
                .unwrap();
            let k = SigningKey::from_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
            assert_eq!(k.keyid(), hex::encode(Sha256::digest(&out.stdout)), "{name}");
        }
    }

    #[test]
    fn openssl_reads_our_private_keys() {
        let d = tempfile::tempdir().unwrap();
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let files = keygen(&d.path().join(alg.to_string()), alg).unwrap();
            let out = std::process::Command::new("openssl")
                .args(["pkey", "-pubout", "-outform", "DER", "-in"])
                .arg(&files.private)
                .output()
                .unwrap();
            assert!(out.status.success(), "{alg}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(hex::encode(Sha256::digest(&out.stdout)), files.keyid, "{alg}");
        }
    }

    #[test]
    fn rejects_wrong_inputs() {
        assert!(matches!(SigningKey::from_pem("nope"), Err(KeyError::Pem(_))));
        let k = SigningKey::generate(Algorithm::Ed25519).unwrap();
        assert!(matches!(SigningKey::from_pem(&k.public_key().to_pem()), Err(KeyError::Label { .. })));
        let e = PublicKey::from_pem(&k.to_pem().unwrap()).unwrap_err();
        assert!(e.to_string().contains("this is a private key"), "{e}");
    }

    #[test]
    fn keygen_writes_private_key_0600_and_refuses_to_overwrite() {
        let d = tempfile::tempdir().unwrap();
        let files = keygen(&d.path().join("keys"), Algorithm::Ed25519).unwrap();
        let mode = std::fs::metadata(&files.private).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k = SigningKey::load(&files.private).unwrap();
        assert_eq!(k.keyid(), files.keyid);
        assert_eq!(PublicKey::load(&files.public).unwrap().keyid(), files.keyid);
        assert!(matches!(keygen(&d.path().join("keys"), Algorithm::Ed25519), Err(KeyError::Exists(_))));
        std::fs::set_permissions(&files.private, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        assert!(matches!(SigningKey::load(&files.private), Err(KeyError::Permissions { .. })));
    }
}
