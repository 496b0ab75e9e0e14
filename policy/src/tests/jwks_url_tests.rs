//! The JWKS URL over HTTPS with a pinned CA, against a TLS server on
//! 127.0.0.1 that serves a bounded number of requests and stops.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use super::token_tests::{claims, config, jwks, keys, now, sign};
use crate::token::TokenVerifier;
use crate::TrustError;

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn make_pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    Pki { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

/// Serves `body` over TLS for at most `requests` connections; returns the port.
fn serve(pki: &Pki, body: String, requests: usize) -> u16 {
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls::pki_types::pem::PemObject::pem_slice_iter(pki.cert_pem.as_bytes()).map(Result::unwrap).collect();
    let key = rustls::pki_types::pem::PemObject::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(tcp) = stream else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else { continue };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(response.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

#[test]
fn jwks_over_https_with_a_pinned_ca_and_a_cache() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let port = serve(&pki, jwks(), 1);
    let mut cfg = config();
    cfg.jwks_url = Some(format!("https://localhost:{port}/jwks.json"));
    cfg.jwks_ca_file = Some(ca.clone());
    cfg.jwks_cache_file = dir.path().join("cache/jwks.json");
    cfg.validate().unwrap();
    let v = TokenVerifier::new(&cfg).unwrap();
    v.verify(&sign(&keys().es, &claims()), now()).unwrap();
    // the server is gone: the cached copy is used within its TTL
    let v = TokenVerifier::new(&cfg).unwrap();
    v.verify(&sign(&keys().rs, &claims()), now()).unwrap();

    // the cache expired and the server is gone: fail closed
    cfg.jwks_cache_ttl_secs = 0;
    assert!(matches!(TokenVerifier::new(&cfg), Err(TrustError::Fetch { .. })));

    // a server whose certificate does not chain to the pinned CA is refused
    let other = make_pki();
    let port = serve(&other, jwks(), 1);
    cfg.jwks_url = Some(format!("https://localhost:{port}/jwks.json"));
    let e = TokenVerifier::new(&cfg).unwrap_err();
    assert!(matches!(e, TrustError::Fetch { .. }), "{e}");

    // a JWKS document with a private key is refused before it is cached
    let mut leaky: serde_json::Value = serde_json::from_str(&jwks()).unwrap();
    leaky["keys"][0]["d"] = serde_json::json!("AAAA");
    let port = serve(&pki, leaky.to_string(), 1);
    cfg.jwks_url = Some(format!("https://localhost:{port}/jwks.json"));
    assert!(matches!(TokenVerifier::new(&cfg), Err(TrustError::Key { .. })));
}
