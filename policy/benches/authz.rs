//! Authorization cost: token verification + Cedar decision with 1 and 1,000
//! policies, and `PolicySet::load` of 1,000 policies cold and cached.
//!
//! `cargo bench -p brig-policy --bench authz` prints p50/p99 from a plain
//! timing loop first, then runs the criterion benchmarks.

// A benchmark fails loudly on bad fixtures; that is what `expect` is for here.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use brig_policy::{
    authorize, keygen, mint, Action, GeneratedKey, LaunchContext, MountInfo, PolicySet, TokenVerifier, TrustConfig,
};
use criterion::{criterion_group, Criterion};
use serde_json::json;

const ISS: &str = "https://fn.example";

/// The function-platform example plus, per tenant, a launch and a mount policy.
fn tenant_policies(n: usize) -> String {
    let mut text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/function-platform/functions.cedar"),
    )
    .unwrap_or_default();
    let mut i = 0;
    while text.matches("@id(").count() < n {
        text.push_str(&format!(
            r#"@id("t{i}-launch") permit (principal in Brig::Tenant::"t{i}", action == Brig::Action::"launch", resource in Brig::Profile::"restricted")
  when {{ context.devices.isEmpty() && context has timeout_secs && context.timeout_secs <= 600 }};
@id("t{i}-data") permit (principal in Brig::Tenant::"t{i}", action == Brig::Action::"mount", resource in Brig::Path::"/srv/shared/t{i}")
  when {{ !context.mount.read_write }};
"#
        ));
        i += 1;
    }
    text
}

/// 1,000 policies none of which the scope index can set aside.
fn unscoped_policies(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"@id("repo-{i}") permit (principal, action == Brig::Action::"launch", resource)
  when {{ context.claims has repository && context.claims.repository == "org/repo-{i}" }};
"#
            )
        })
        .collect()
}

fn single_policy() -> String {
    r#"@id("fn-launch") permit (principal in Brig::Role::"function", action == Brig::Action::"launch", resource in Brig::Profile::"restricted")
  when { principal has tenant && context.devices.isEmpty() };"#
        .to_string()
}

struct Fixture {
    key: GeneratedKey,
    verifier: TokenVerifier,
    token: String,
    context: LaunchContext,
}

fn fixture(alg: &str) -> Fixture {
    let key = keygen(alg).expect("keygen");
    let jwks = json!({"keys": [key.public_jwk]}).to_string();
    let config = TrustConfig::required(vec![ISS.into()], vec!["brig".into()]);
    let verifier = TokenVerifier::with_jwks(&config, &jwks, None).expect("verifier");
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let claims = json!({
        "iss": ISS, "sub": "fn-7", "aud": "brig", "iat": now, "exp": now + 600,
        "tenant": "acme", "roles": ["function"], "jti": "j-1", "repository": "org/repo-999",
    });
    let token = mint(&claims, &key.private_pem, &key.kid, alg).expect("mint");
    let bind = |s: &str, d: &str, rw: bool| MountInfo {
        source: s.into(),
        destination: d.into(),
        read_write: rw,
        kind: "bind".into(),
    };
    let context = LaunchContext {
        profile: "restricted".into(),
        timeout_secs: Some(60),
        mounts: vec![
            MountInfo { source: "proc".into(), destination: "/proc".into(), read_write: true, kind: "proc".into() },
            bind("/var/lib/brig/jobs/acme/in/req-1", "/in", false),
            bind("/var/lib/brig/jobs/acme/out/req-1", "/out", true),
        ],
        host_namespaces: ["user".to_string()].into(),
        ..Default::default()
    };
    Fixture { key, verifier, token, context }
}

fn set_of(text: String) -> PolicySet {
    PolicySet::from_texts(&[("bench.cedar".into(), text)], None).expect("policies")
}

/// `BRIG_BENCH_SMOKE=1` (test.sh): every measurement once or twice, so that
/// CI runs the whole timing loop (its hand-built contexts must still fit the
/// schema) in seconds; the figures then mean nothing.
fn smoke() -> bool {
    std::env::var_os("BRIG_BENCH_SMOKE").is_some()
}

fn percentiles(name: &str, iterations: usize, mut f: impl FnMut()) {
    let iterations = if smoke() { iterations.min(2) } else { iterations };
    for _ in 0..iterations / 10 {
        f();
    }
    let mut times: Vec<Duration> = (0..iterations)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!("{name:<58} p50 {:>10.1?}  p99 {:>10.1?}  (n={iterations})", p(0.50), p(0.99));
}

fn write_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bench.cedar"), text).expect("write");
    dir
}

/// Where the time of one Cedar request goes (public Cedar API, built-in schema).
fn breakdown() {
    use cedar_policy::{
        Authorizer, Context, Entities, Entity, EntityUid, Policy, Request, RestrictedExpression, Schema,
    };
    use std::collections::{HashMap, HashSet};
    use std::str::FromStr;
    println!("--- breakdown of one request ---");
    let text = brig_policy::BUILTIN_SCHEMA;
    percentiles("Schema::from_cedarschema_str (built-in)", 200, || {
        black_box(Schema::from_cedarschema_str(text).expect("schema").0);
    });
    let (schema, _) = Schema::from_cedarschema_str(text).expect("schema");
    let frag = cedar_policy::SchemaFragment::from_cedarschema_str(text).expect("frag").0;
    let json = frag.to_json_value().expect("json");
    percentiles("Schema::from_json_value (built-in)", 200, || {
        black_box(Schema::from_json_value(json.clone()).expect("schema"));
    });
    let p = "permit (principal in Brig::Tenant::\"t1\", action == Brig::Action::\"launch\", resource in Brig::Profile::\"restricted\") when { context.devices.isEmpty() && context has timeout_secs && context.timeout_secs <= 600 };";
    percentiles("Policy::parse (one policy)", 500, || {
        black_box(Policy::parse(None, p).expect("parse"));
    });
    let est = Policy::parse(None, p).expect("parse").to_json().expect("est");
    percentiles("Policy::from_json (one policy, EST)", 500, || {
        black_box(Policy::from_json(None, est.clone()).expect("est"));
    });
    let action = EntityUid::from_str("Brig::Action::\"launch\"").expect("uid");
    let principal = EntityUid::from_str("Brig::Subject::\"i|s\"").expect("uid");
    let resource = EntityUid::from_str("Brig::Image::\"x\"").expect("uid");
    let ctx = json!({
        "profile": "restricted", "image": {}, "rootfs": "/var/lib/brig/images/x", "mounts": [{"source": "/a/b", "destination": "/in", "read_write": false, "kind": "bind"}],
        "capabilities": ["CAP_CHOWN"], "host_namespaces": ["user"], "joined_namespaces": [], "devices": [],
        "resources": {}, "egress": [], "timeout_secs": 60, "inputs": [], "outputs": [], "annotations": [],
        "annotation_keys": [], "user": {"uid": 0, "gid": 0, "additional_gids": []}, "claims": {"iss": "i", "sub": "s", "tenant": "acme"},
    });
    percentiles("Context::from_json_value with schema", 1000, || {
        black_box(Context::from_json_value(ctx.clone(), Some((&schema, &action))).expect("ctx"));
    });
    percentiles("Context::from_json_value without schema", 1000, || {
        black_box(Context::from_json_value(ctx.clone(), None).expect("ctx"));
    });
    let c = Context::from_json_value(ctx.clone(), Some((&schema, &action))).expect("ctx");
    percentiles("Request::new with schema", 1000, || {
        black_box(
            Request::new(principal.clone(), action.clone(), resource.clone(), c.clone(), Some(&schema)).expect("req"),
        );
    });
    percentiles("Request::new without schema", 1000, || {
        black_box(Request::new(principal.clone(), action.clone(), resource.clone(), c.clone(), None).expect("req"));
    });
    let mk = || {
        let s = |v: &str| RestrictedExpression::new_string(v.to_string());
        let attrs = HashMap::from([
            ("issuer".to_string(), s("i")),
            ("subject".to_string(), s("s")),
            ("roles".to_string(), RestrictedExpression::new_set([s("function")])),
        ]);
        vec![Entity::new(principal.clone(), attrs, HashSet::new()).expect("entity")]
    };
    percentiles("Entities::from_entities (1) with schema", 1000, || {
        black_box(Entities::from_entities(mk(), Some(&schema)).expect("entities"));
    });
    percentiles("Entities::from_entities (1) without schema", 1000, || {
        black_box(Entities::from_entities(mk(), None).expect("entities"));
    });
    let entities = Entities::from_entities(mk(), None).expect("entities");
    let request = Request::new(principal.clone(), action.clone(), resource.clone(), c, None).expect("req");
    let set = cedar_policy::PolicySet::from_str(p).expect("set");
    percentiles("Authorizer::is_authorized (1 policy)", 1000, || {
        black_box(Authorizer::new().is_authorized(&request, &set, &entities));
    });
}

/// Where the time of an EdDSA verification goes: the public key's
/// decompression (done on every `jsonwebtoken::crypto::verify`) and the
/// signature check itself.
fn ed25519_breakdown() {
    use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
    println!("--- breakdown of an EdDSA verification ---");
    let sk = SigningKey::from_bytes(&[7u8; 32]);
    let bytes = sk.verifying_key().to_bytes();
    let msg = [b'x'; 300];
    let sig = sk.sign(&msg);
    percentiles("VerifyingKey::from_bytes (decompression)", 2000, || {
        black_box(VerifyingKey::from_bytes(black_box(&bytes)).expect("key"));
    });
    let vk = VerifyingKey::from_bytes(&bytes).expect("key");
    percentiles("VerifyingKey::verify (decompressed key)", 2000, || {
        black_box(vk.verify(black_box(&msg), &sig)).expect("verify");
    });
    percentiles("VerifyingKey::verify_strict (decompressed key)", 2000, || {
        black_box(vk.verify_strict(black_box(&msg), &sig)).expect("verify");
    });
}

fn timing_loop() {
    breakdown();
    ed25519_breakdown();
    println!("--- p50/p99 from a timing loop (one decision = 1 launch + 2 mount requests) ---");
    let fx = fixture("EdDSA");
    let now = SystemTime::now();
    for alg in ["EdDSA", "ES256", "RS256"] {
        let f = if alg == "EdDSA" { None } else { Some(fixture(alg)) };
        let f = f.as_ref().unwrap_or(&fx);
        percentiles(&format!("verify {alg}"), 2000, || {
            black_box(f.verifier.verify(&f.token, now).expect("verify"));
        });
    }
    let _ = &fx.key;
    let identity = fx.verifier.verify(&fx.token, now).expect("verify");
    for (label, set) in [
        ("1 policy", set_of(single_policy())),
        ("1,000 policies (tenant-scoped)", set_of(tenant_policies(1000))),
        ("1,000 policies (unscoped)", set_of(unscoped_policies(1000))),
    ] {
        percentiles(&format!("authorize, {label}"), 2000, || {
            black_box(authorize(&set, &identity, Action::Launch, &fx.context));
        });
        percentiles(&format!("verify EdDSA + authorize, {label}"), 2000, || {
            let id = fx.verifier.verify(&fx.token, now).expect("verify");
            black_box(authorize(&set, &id, Action::Launch, &fx.context));
        });
    }
    let text = tenant_policies(1000);
    let dir = write_dir(&text);
    percentiles("PolicySet::load, 1,000 policies, cold (parse + validate)", 20, || {
        black_box(PolicySet::load(dir.path()).expect("load"));
    });
    let cache = tempfile::tempdir().expect("tempdir");
    PolicySet::load_cached(dir.path(), Some(cache.path())).expect("load");
    let cached: u64 = std::fs::read_dir(cache.path())
        .expect("cache dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!("policy text {} bytes, cache entry {cached} bytes", text.len());
    percentiles("PolicySet::load_cached, 1,000 policies, cached", 100, || {
        let s = PolicySet::load_cached(dir.path(), Some(cache.path())).expect("load");
        assert!(s.from_cache());
        black_box(s);
    });
    // What one `brig create` pays: load through the cache, verify, decide
    // (the buckets the request needs are parsed from the cache on first use).
    percentiles("per invocation: load_cached + verify EdDSA + authorize, 1,000", 100, || {
        let s = PolicySet::load_cached(dir.path(), Some(cache.path())).expect("load");
        let id = fx.verifier.verify(&fx.token, now).expect("verify");
        let d = authorize(&s, &id, Action::Launch, &fx.context);
        assert!(d.allowed, "{}", d.reason);
        black_box(d);
    });
    let one = write_dir(&single_policy());
    percentiles("PolicySet::load, 1 policy, cold", 100, || {
        black_box(PolicySet::load(one.path()).expect("load"));
    });
    PolicySet::load_cached(one.path(), Some(cache.path())).expect("load");
    percentiles("PolicySet::load_cached, 1 policy, cached", 100, || {
        black_box(PolicySet::load_cached(one.path(), Some(cache.path())).expect("load"));
    });
}

fn benches(c: &mut Criterion) {
    let fx = fixture("EdDSA");
    let now = SystemTime::now();
    let identity = fx.verifier.verify(&fx.token, now).expect("verify");
    c.bench_function("verify EdDSA", |b| b.iter(|| fx.verifier.verify(black_box(&fx.token), now)));
    for (label, set) in [("1", set_of(single_policy())), ("1000", set_of(tenant_policies(1000)))] {
        c.bench_function(&format!("authorize/{label}"), |b| {
            b.iter(|| authorize(&set, &identity, Action::Launch, black_box(&fx.context)))
        });
        c.bench_function(&format!("verify+authorize/{label}"), |b| {
            b.iter(|| {
                let id = fx.verifier.verify(black_box(&fx.token), now).expect("verify");
                authorize(&set, &id, Action::Launch, &fx.context)
            })
        });
    }
    let dir = write_dir(&tenant_policies(1000));
    let cache = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("load-1000");
    g.sample_size(10);
    g.bench_function("cold", |b| b.iter(|| PolicySet::load(dir.path()).expect("load")));
    g.bench_function("cached", |b| b.iter(|| PolicySet::load_cached(dir.path(), Some(cache.path())).expect("load")));
    g.bench_function("per-invocation", |b| {
        b.iter(|| {
            let s = PolicySet::load_cached(dir.path(), Some(cache.path())).expect("load");
            let id = fx.verifier.verify(&fx.token, now).expect("verify");
            authorize(&s, &id, Action::Launch, &fx.context)
        })
    });
    g.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    targets = benches
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: keep that quick.
    // BRIG_BENCH_LOOP=0 skips the timing loop (for profiling one criterion benchmark).
    let bench =
        std::env::args().any(|a| a == "--bench") && std::env::var_os("BRIG_BENCH_LOOP").is_none_or(|v| v != "0");
    if bench || smoke() {
        timing_loop();
    }
    group();
    Criterion::default().configure_from_args().final_summary();
}
