//! Cedar decisions: the examples' cases, tenants' mounts, forbid over
//! permit, failing closed, exec, claims, the cache.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::token_tests::{claims, config, jwks, keys, now, sign};
use crate::authz::{authorize, Action, PolicyError, PolicySet};
use crate::context::{ExecRequest, LaunchContext, MountInfo};
use crate::testing::{load_cases, run_tests, unverified_token};
use crate::token::TokenVerifier;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn every_example_passes_its_cases() {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(examples_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert!(dirs.len() >= 4, "{dirs:?}");
    let mut failed = Vec::new();
    for dir in dirs {
        let file = load_cases(&dir.join("cases.toml")).unwrap();
        let set = PolicySet::load(file.policies.as_deref().unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .validate_requests(true);
        assert!(set.warnings().is_empty(), "{}: {:?}", dir.display(), set.warnings());
        assert!(!file.cases.is_empty());
        // Cedar's own request validation does not change a single decision.
        let fast = set.clone().validate_requests(false);
        for (r, quick) in run_tests(&set, &file.cases).into_iter().zip(run_tests(&fast, &file.cases)) {
            assert_eq!(r.decision, quick.decision, "{}: {}", dir.display(), r.name);
            if !r.passed {
                failed.push(format!("{} / {}:\n{}{}", dir.display(), r.name, r.diff, r.decision.explain()));
            }
        }
    }
    assert!(failed.is_empty(), "failing cases:\n{}", failed.join("\n"));
}

fn function_platform() -> PolicySet {
    PolicySet::load(&examples_dir().join("function-platform")).unwrap().validate_requests(true)
}

fn bind(source: &str, destination: &str, read_write: bool) -> MountInfo {
    MountInfo { source: source.into(), destination: destination.into(), read_write, kind: "bind".into() }
}

#[test]
fn tenant_mounts_with_a_real_token() {
    let set = function_platform();
    let v = TokenVerifier::with_jwks(&config(), &jwks(), None).unwrap();
    let mut c = claims();
    c["roles"] = json!(["function"]);
    let id = v.verify(&sign(&keys().es, &c), now()).unwrap();
    assert_eq!(id.tenant.as_deref(), Some("acme"));

    let mut ctx = LaunchContext { profile: "restricted".into(), ..Default::default() };
    ctx.mounts =
        vec![bind("/var/lib/brig/jobs/acme/in/x", "/in", false), bind("/var/lib/brig/jobs/acme/out/x", "/out", true)];
    let d = authorize(&set, &id, Action::Launch, &ctx);
    assert!(d.allowed, "{}", d.explain());
    assert_eq!(d.determining_policies, ["fn-launch", "fn-own-inputs", "fn-own-outputs"]);

    ctx.mounts.push(bind("/var/lib/brig/jobs/globex/in/x", "/other", false));
    let d = authorize(&set, &id, Action::Launch, &ctx);
    assert!(!d.allowed);
    assert!(
        d.reason.contains("/var/lib/brig/jobs/globex/in/x") && d.reason.contains("no policy permits"),
        "{}",
        d.reason
    );
    assert!(d.determining_policies.is_empty());
    assert_eq!(d.requests.iter().filter(|r| !r.allowed).count(), 1);
}

/// A request's context carries only what the policies read (`usage.rs`):
/// a forbid that tests an attribute with `has` only, after a comment that
/// ends like an attribute access (`given.`), still sees it, and every decision is the one
/// made with the whole context checked against the schema.
#[test]
fn a_context_pruned_to_what_the_policies_read_decides_the_same() {
    use crate::usage::ContextUse;
    let text = r#"
@id("all") permit (principal, action, resource);
@id("long") forbid (principal, action == Brig::Action::"launch", resource) when { // no deadline given.
  context has timeout_secs };
@id("kvm") forbid (principal, action == Brig::Action::"launch", resource) when { context.devices.contains("/dev/kvm") };
"#;
    let pruned = PolicySet::from_texts(&[("p.cedar".into(), text.into())], None).unwrap();
    assert_eq!(pruned.context_use, ContextUse::Only(["devices".to_string(), "timeout_secs".to_string()].into()));
    let whole = pruned.clone().validate_requests(true);
    let token = unverified_token(json!({"iss": "i", "sub": "alice", "tenant": "acme"}).as_object().unwrap());
    let base = LaunchContext {
        profile: "restricted".into(),
        mounts: vec![bind("/var/lib/brig/jobs/acme/in/x", "/in", false)],
        ..Default::default()
    };
    let long = LaunchContext { timeout_secs: Some(60), ..base.clone() };
    let kvm = LaunchContext { devices: ["/dev/kvm".to_string()].into(), ..base.clone() };
    for (ctx, want) in [(&base, None), (&long, Some("long")), (&kvm, Some("kvm"))] {
        let d = authorize(&pruned, &token, Action::Launch, ctx);
        assert_eq!(d, authorize(&whole, &token, Action::Launch, ctx));
        match want {
            None => assert!(d.allowed, "{}", d.explain()),
            Some(id) => {
                assert!(!d.allowed, "{}", d.explain());
                assert_eq!(d.determining_policies, [id]);
            }
        }
    }
    // The example sets read a few attributes each, so that the example test
    // above (fast against schema-checked) compares pruned contexts.
    for dir in ["function-platform", "ci-pinned", "federated-learning", "break-glass"] {
        let set = PolicySet::load(&examples_dir().join(dir)).unwrap();
        assert!(matches!(set.context_use, ContextUse::Only(_)), "{dir}: {:?}", set.context_use);
    }
}

#[test]
fn forbid_beats_permit() {
    let set = PolicySet::load(&examples_dir().join("break-glass")).unwrap();
    let token = unverified_token(json!({"iss": "i", "sub": "alice", "roles": ["operator"]}).as_object().unwrap());
    let mut ctx = LaunchContext { profile: "standard".into(), ..Default::default() };
    let d = authorize(&set, &token, Action::Launch, &ctx);
    assert!(d.allowed, "{}", d.explain());
    ctx.host_namespaces.insert("pid".into());
    let d = authorize(&set, &token, Action::Launch, &ctx);
    assert!(!d.allowed);
    assert_eq!(d.determining_policies, ["forbid-host-namespaces"]);
    assert!(d.reason.contains("forbidden by `forbid-host-namespaces`"), "{}", d.reason);
}

#[test]
fn exec_is_authorized_separately() {
    let set = PolicySet::load(&examples_dir().join("break-glass")).unwrap();
    let token = unverified_token(json!({"iss": "i", "sub": "alice", "roles": ["operator"]}).as_object().unwrap());
    let ctx = LaunchContext { profile: "standard".into(), ..Default::default() };
    assert!(authorize(&set, &token, Action::Launch, &ctx).allowed);
    let shell = ExecRequest { args: vec!["/bin/sh".into()], cwd: "/".into(), tty: true, ..Default::default() };
    let d = authorize(&set, &token, Action::Exec, &ctx.with_exec(shell));
    assert!(!d.allowed, "{}", d.explain());
    let ps = ExecRequest { args: vec!["ps".into(), "aux".into()], cwd: "/".into(), ..Default::default() };
    let d = authorize(&set, &token, Action::Exec, &ctx.with_exec(ps));
    assert!(d.allowed, "{}", d.explain());
    // exec without the exec's process is an error, so a deny
    assert!(!authorize(&set, &token, Action::Exec, &ctx).allowed);
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn an_invalid_policy_file_fails_closed_with_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.cedar", "permit (principal, action == Brig::Action::\"launch\", resource);\n");
    write(
        dir.path(),
        "bad.cedar",
        "// a comment\npermit (principal, action, resource)\n  when { context.profile == };\n",
    );
    let e = PolicySet::load(dir.path()).unwrap_err();
    let PolicyError::Parse(diags) = &e else { panic!("{e}") };
    assert_eq!(diags[0].file, "bad.cedar");
    assert_eq!(diags[0].line, 3, "{e}");
    assert!(diags[0].column > 1, "{e}");
    assert!(e.to_string().contains("bad.cedar:3:"), "{e}");

    // parses, but does not validate: no such attribute
    write(
        dir.path(),
        "bad.cedar",
        "permit (principal, action == Brig::Action::\"launch\", resource)\n  when { context.proflie == \"x\" };\n",
    );
    let e = PolicySet::load(dir.path()).unwrap_err();
    let PolicyError::Validation(diags) = &e else { panic!("{e}") };
    assert_eq!((diags[0].file.as_str(), diags[0].line), ("bad.cedar", 2), "{e}");

    // an unknown entity type in the scope
    write(dir.path(), "bad.cedar", "permit (principal == Brig::User::\"x\", action, resource);\n");
    assert!(matches!(PolicySet::load(dir.path()), Err(PolicyError::Validation(_))));

    // a schema that lacks what brig builds
    std::fs::remove_file(dir.path().join("bad.cedar")).unwrap();
    write(
        dir.path(),
        "brig.cedarschema",
        "namespace Brig { entity Subject; action launch appliesTo { principal: Subject, resource: Subject }; }",
    );
    let e = PolicySet::load(dir.path()).unwrap_err();
    assert!(matches!(e, PolicyError::Schema(_)) && e.to_string().contains("may change only `Brig::Claims`"), "{e}");

    // an empty directory and a missing one
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(PolicySet::load(empty.path()), Err(PolicyError::NoPolicies(_))));
    assert!(matches!(PolicySet::load(&empty.path().join("nope")), Err(PolicyError::Read { .. })));
}

#[test]
fn policy_ids_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.cedar",
        "permit (principal, action == Brig::Action::\"launch\", resource);\n@id(\"named\") forbid (principal, action == Brig::Action::\"launch\", resource) when { context.profile == \"x\" };",
    );
    let set = PolicySet::load(dir.path()).unwrap();
    assert_eq!(set.policies(), [("a.cedar:0".to_string(), "a.cedar".to_string()), ("named".into(), "a.cedar".into())]);
    write(dir.path(), "b.cedar", "@id(\"named\") permit (principal, action, resource);");
    let e = PolicySet::load(dir.path()).unwrap_err();
    assert!(e.to_string().contains("`named` is also used in `a.cedar`"), "{e}");
}

#[test]
fn evaluation_errors_deny() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.cedar",
        r#"@id("all") permit (principal, action == Brig::Action::"launch", resource);
@id("overflow") permit (principal, action == Brig::Action::"launch", resource)
  when { context has timeout_secs && context.timeout_secs * 9223372036854775807 > 0 };"#,
    );
    let set = PolicySet::load(dir.path()).unwrap();
    let token = unverified_token(json!({"iss": "i", "sub": "s"}).as_object().unwrap());
    let mut ctx = LaunchContext { profile: "p".into(), ..Default::default() };
    assert!(authorize(&set, &token, Action::Launch, &ctx).allowed);
    ctx.timeout_secs = Some(10);
    let d = authorize(&set, &token, Action::Launch, &ctx);
    assert!(!d.allowed, "{}", d.explain());
    assert!(d.errors[0].contains("overflow"), "{:?}", d.errors);
}

#[test]
fn claims_are_mapped_by_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.cedar",
        r#"permit (principal, action == Brig::Action::"launch", resource)
  when { context.claims has repository && context.claims.repository == "acme/app" };"#,
    );
    let set = PolicySet::load(dir.path()).unwrap();
    assert!(set.declared_claims().contains(&"repository".to_string()));
    let ctx = LaunchContext { profile: "p".into(), ..Default::default() };
    // an undeclared claim is dropped, not an error
    let t = unverified_token(
        json!({"iss": "i", "sub": "s", "repository": "acme/app", "x-custom": {"a": 1}}).as_object().unwrap(),
    );
    assert!(authorize(&set, &t, Action::Launch, &ctx).allowed);
    // a declared claim of the wrong type fails closed
    let t = unverified_token(json!({"iss": "i", "sub": "s", "repository": 42}).as_object().unwrap());
    let d = authorize(&set, &t, Action::Launch, &ctx);
    assert!(!d.allowed && !d.errors.is_empty(), "{}", d.explain());
}

#[test]
fn a_directory_schema_can_declare_more_claims() {
    let dir = tempfile::tempdir().unwrap();
    let schema = crate::BUILTIN_SCHEMA.replace(
        "\"ticket\"?: String,",
        "\"ticket\"?: String,\n    \"https://example.com/team\"?: String,\n    \"gateway\"?: ipaddr,",
    );
    write(dir.path(), "brig.cedarschema", &schema);
    write(
        dir.path(),
        "p.cedar",
        r#"permit (principal, action == Brig::Action::"egress", resource)
  when { context.claims has gateway && context.rule.cidr.isInRange(context.claims.gateway) };
permit (principal, action == Brig::Action::"launch", resource)
  when { context.claims has "https://example.com/team" && context.claims["https://example.com/team"] == "ml" };"#,
    );
    let set = PolicySet::load(dir.path()).unwrap();
    let t = unverified_token(
        json!({"iss": "i", "sub": "s", "gateway": "10.0.0.0/8", "https://example.com/team": "ml"}).as_object().unwrap(),
    );
    let mut ctx = LaunchContext { profile: "p".into(), ..Default::default() };
    ctx.egress = crate::context::parse_egress("10.1.2.3/32:443/tcp").unwrap();
    let d = authorize(&set, &t, Action::Launch, &ctx);
    assert!(d.allowed, "{}", d.explain());
    ctx.egress = crate::context::parse_egress("192.168.1.1/32:443/tcp").unwrap();
    assert!(!authorize(&set, &t, Action::Launch, &ctx).allowed);
}

/// A copy of the function-platform policies in a temporary directory, an
/// empty cache directory, and the example's cases.
fn function_platform_copy() -> (tempfile::TempDir, tempfile::TempDir, crate::testing::CaseFile) {
    let policies = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::copy(examples_dir().join("function-platform/functions.cedar"), policies.path().join("functions.cedar"))
        .unwrap();
    let file = load_cases(&examples_dir().join("function-platform/cases.toml")).unwrap();
    (policies, cache, file)
}

#[test]
fn cache_round_trip_and_invalidation() {
    let policies = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("c");
    std::fs::copy(examples_dir().join("function-platform/functions.cedar"), policies.path().join("functions.cedar"))
        .unwrap();
    let cold = PolicySet::load_cached(policies.path(), Some(&cache_dir)).unwrap();
    assert!(!cold.from_cache());
    let warm = PolicySet::load_cached(policies.path(), Some(&cache_dir)).unwrap();
    assert!(warm.from_cache(), "second load must come from the cache");
    assert_eq!(cold.digest(), warm.digest());
    assert_eq!(cold.policies(), warm.policies());
    // The cached set prunes request contexts as the parsed one does.
    assert!(matches!(warm.context_use, crate::usage::ContextUse::Only(_)));
    assert_eq!(cold.context_use, warm.context_use);
    let file = load_cases(&examples_dir().join("function-platform/cases.toml")).unwrap();
    for (a, b) in run_tests(&cold, &file.cases).iter().zip(run_tests(&warm, &file.cases)) {
        assert_eq!(a.decision, b.decision);
        assert!(b.passed, "{}: {}", b.name, b.diff);
    }
    // a changed policy file is a new digest: parsed (and validated) again
    write(policies.path(), "functions.cedar", "permit (principal, action, resource) when { context.nope };");
    assert!(PolicySet::load_cached(policies.path(), Some(&cache_dir)).is_err());
    // a cache entry writable by others is not trusted
    std::fs::copy(examples_dir().join("function-platform/functions.cedar"), policies.path().join("functions.cedar"))
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    let entry = cache_dir.join(format!("{}.cache", cold.digest()));
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(!PolicySet::load_cached(policies.path(), Some(&cache_dir)).unwrap().from_cache());
}

/// The newest cache entry in `dir`.
fn cache_entry(dir: &Path) -> PathBuf {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.retain(|p| p.extension().is_some_and(|e| e == "cache"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.remove(0)
}

#[test]
fn a_damaged_cache_entry_is_parsed_again_or_denies() {
    let (policies, cache, file) = function_platform_copy();
    let cold = PolicySet::load_cached(policies.path(), Some(cache.path())).unwrap();
    let entry = cache_entry(cache.path());
    let good = std::fs::read(&entry).unwrap();
    // truncated anywhere (a full disk, a crash): not used, the set is parsed again
    for cut in [0, 8, 16, good.len() / 2, good.len() - 1] {
        std::fs::write(&entry, &good[..cut]).unwrap();
        let set = PolicySet::load_cached(policies.path(), Some(cache.path())).unwrap();
        assert!(!set.from_cache(), "cut at {cut}");
        assert_eq!(set.policies(), cold.policies());
        assert!(run_tests(&set, &file.cases).iter().all(|r| r.passed));
        // the parse wrote a good entry back
        assert_eq!(std::fs::read(&entry).unwrap(), good);
    }
    // policies damaged inside an entry of the right shape: every decision
    // that needs them denies with the error, none allows
    let start = good.windows(8).position(|w| w == b"\"effect\"").unwrap();
    let mut bad = good.clone();
    bad[start..start + 8].copy_from_slice(b"\"efXect\"");
    std::fs::write(&entry, &bad).unwrap();
    let set = PolicySet::load_cached(policies.path(), Some(cache.path())).unwrap();
    assert!(set.from_cache());
    let mut denied = 0;
    for (case, result) in file.cases.iter().zip(run_tests(&set, &file.cases)) {
        assert!(!result.decision.allowed, "{}: allowed from a damaged cache", case.name);
        if result.decision.reason.contains("cached polic") || result.decision.reason.contains("damaged") {
            denied += 1;
        }
    }
    assert!(denied > 0, "no decision reported the damaged cache");
}

#[test]
fn no_damage_to_a_cache_entry_allows_what_the_policies_deny() {
    // Bytes all over the entry's body flipped in turn: a decision read from
    // the damaged entry is the original one or a deny, never an allow the
    // policies do not give (each section is checked against its digest).
    let (policies, cache, file) = function_platform_copy();
    let cold = PolicySet::load_cached(policies.path(), Some(cache.path())).unwrap();
    let expected: Vec<bool> = run_tests(&cold, &file.cases).iter().map(|r| r.decision.allowed).collect();
    assert!(expected.iter().any(|a| *a) && expected.iter().any(|a| !*a), "{expected:?}");
    let entry = cache_entry(cache.path());
    let good = std::fs::read(&entry).unwrap();
    let header_len = usize::try_from(u64::from_le_bytes(good[8..16].try_into().unwrap())).unwrap();
    let body = 16 + header_len;
    let (mut read_damage, mut flips) = (0, 0);
    // (every byte is slow in a debug build; 300 spread over the body)
    let step = ((good.len() - body) / 300).max(1);
    for at in (body..good.len()).step_by(step) {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        std::fs::write(&entry, &bad).unwrap();
        let set = PolicySet::load_cached(policies.path(), Some(cache.path())).unwrap();
        assert!(set.from_cache());
        for ((case, result), allowed) in file.cases.iter().zip(run_tests(&set, &file.cases)).zip(&expected) {
            assert!(
                result.decision.allowed == *allowed || !result.decision.allowed,
                "byte {at} flipped: `{}` allowed, the policies deny it",
                case.name
            );
            read_damage += usize::from(result.decision.reason.contains("damaged"));
        }
        flips += 1;
    }
    assert!(flips >= 300 && read_damage > flips, "{flips} flips, {read_damage} decisions saw the damage");
}

#[test]
fn an_emptied_index_table_does_not_drop_a_forbid() {
    // The principal index of the cached entry loses its entries (count
    // zeroed): without the section's digest the lookup would find no scoped
    // bucket, skip the `forbid`, and allow.
    let policies = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    write(
        policies.path(),
        "p.cedar",
        r#"@id("all") permit (principal, action, resource);
@id("not-mallory") forbid (principal == Brig::Subject::"i|mallory", action, resource);"#,
    );
    let mallory = unverified_token(json!({"iss": "i", "sub": "mallory"}).as_object().unwrap());
    let ctx = LaunchContext { profile: "restricted".into(), ..Default::default() };
    let cold = PolicySet::load_cached(policies.path(), Some(cache.path())).unwrap();
    assert_eq!(authorize(&cold, &mallory, Action::Launch, &ctx).determining_policies, ["not-mallory"]);
    let entry = cache_entry(cache.path());
    let mut bytes = std::fs::read(&entry).unwrap();
    let header_len = usize::try_from(u64::from_le_bytes(bytes[8..16].try_into().unwrap())).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&bytes[16..16 + header_len]).unwrap();
    let table = usize::try_from(header["index"][0]["by_entity"]["start"].as_u64().unwrap()).unwrap();
    bytes[16 + header_len + table..16 + header_len + table + 4].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(&entry, &bytes).unwrap();
    let warm = PolicySet::load_cached(policies.path(), Some(cache.path())).unwrap();
    assert!(warm.from_cache());
    let d = authorize(&warm, &mallory, Action::Launch, &ctx);
    assert!(!d.allowed, "a damaged index allowed mallory: {}", d.explain());
    assert!(d.reason.contains("damaged"), "{}", d.reason);
}

#[test]
fn warming_a_set_changes_no_decision() {
    // `warm` decides a made-up launch on the loader's thread; the set's
    // decisions afterwards are those of a set never warmed, for every
    // example's cases (allowed and denied ones).
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(examples_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    for dir in dirs {
        let file = load_cases(&dir.join("cases.toml")).unwrap();
        let policies = file.policies.as_deref().unwrap();
        let warmed = PolicySet::load(policies).unwrap();
        warmed.warm();
        warmed.warm();
        let cold = PolicySet::load(policies).unwrap();
        for (w, c) in run_tests(&warmed, &file.cases).into_iter().zip(run_tests(&cold, &file.cases)) {
            assert_eq!(w.decision, c.decision, "{}: {}", dir.display(), w.name);
            assert_eq!(w.passed, c.passed, "{}: {}", dir.display(), w.name);
        }
    }
}

#[test]
fn the_background_loader_gives_the_same_set_and_errors() {
    use crate::authz::PolicyLoader;
    use crate::config::PolicyConfig;
    let (policies, cache, file) = function_platform_copy();
    let config = PolicyConfig { dir: policies.path().into(), cache: true, cache_dir: cache.path().join("c") };
    use std::sync::atomic::Ordering::SeqCst;
    let check = |set: &PolicySet| {
        for r in run_tests(set, &file.cases) {
            assert!(r.passed, "{}: {}", r.name, r.diff);
        }
    };
    // Whoever loads it, each without and then with the cache entry:
    for round in 0..2 {
        let config = PolicyConfig { cache_dir: cache.path().join(format!("c{round}")), ..config.clone() };
        // the thread, which claimed the load before the launch asked;
        let loader = PolicyLoader::start(&config);
        while !loader.claimed.load(SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let set = loader.finish().unwrap();
        check(&set);
        assert_eq!(set.join_loader(), Some(true), "the thread loaded it");
        // the launch, which asked before the thread ran: the thread then
        // loads nothing (one load, not two);
        let config = PolicyConfig { cache_dir: cache.path().join(format!("d{round}")), ..config.clone() };
        let (go, gate) = std::sync::mpsc::channel();
        let set = PolicyLoader::start_with(&config, true, Some(gate)).finish().unwrap();
        check(&set);
        go.send(()).unwrap();
        assert_eq!(set.join_loader(), Some(false), "the launch loaded it, not the thread");
        // the launch, with no thread at all.
        let set = PolicyLoader::start_with(&config, false, None).finish().unwrap();
        check(&set);
        assert_eq!(set.join_loader(), None);
    }
    // dropped before the thread ran (a launch that failed early): the
    // thread, let go only while the drop waits for it, loads nothing (it
    // would have written a cache entry)
    let unused = PolicyConfig { cache_dir: cache.path().join("unused"), ..config.clone() };
    let (go, gate) = std::sync::mpsc::channel();
    let loader = PolicyLoader::start_with(&unused, true, Some(gate));
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        go.send(())
    });
    drop(loader);
    release.join().unwrap().unwrap();
    assert!(!unused.cache_dir.exists(), "the thread loaded a set nobody asked for");
    // an invalid policy is the loader's error too (and every launch fails closed)
    write(policies.path(), "bad.cedar", "permit (principal, action, resource) when { context.nope };");
    assert!(matches!(PolicyLoader::start(&config).finish(), Err(PolicyError::Validation(_))));
    assert!(matches!(PolicyLoader::start_with(&config, false, None).finish(), Err(PolicyError::Validation(_))));

    // dropped unfinished: waits for the thread, nothing left half-written
    drop(PolicyLoader::start(&config));
    let empty = tempfile::tempdir().unwrap();
    let none = PolicyConfig { dir: empty.path().into(), ..config };
    assert!(matches!(PolicyLoader::start(&none).finish(), Err(PolicyError::NoPolicies(_))));
}

#[test]
fn tenant_source_substitution() {
    use crate::authz::tenant_source;
    assert_eq!(
        tenant_source("/var/lib/brig/jobs/acme/in/x", Some("acme")).unwrap(),
        "/var/lib/brig/jobs/{tenant}/in/x"
    );
    assert_eq!(tenant_source("/var/lib/brig/jobs/acme-2/in", Some("acme")).unwrap(), "/var/lib/brig/jobs/acme-2/in");
    assert_eq!(tenant_source("/x/{tenant}/in", Some("acme")), None);
    assert_eq!(tenant_source("/x/a/b", Some("a/b")), None);
    assert_eq!(tenant_source("/x/a", None), None);
    assert_eq!(tenant_source("/x/../a", Some("..")), None);
}

#[test]
fn the_index_does_not_change_decisions() {
    // Many principal-scoped policies; only the caller's tenant's apply.
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&format!(
            "@id(\"t{i}\") permit (principal in Brig::Tenant::\"t{i}\", action == Brig::Action::\"launch\", resource) when {{ context.profile == \"restricted\" }};\n"
        ));
    }
    text.push_str("@id(\"deny-std\") forbid (principal, action, resource) when { context.profile == \"standard\" };\n");
    text.push_str(
        "@id(\"role\") permit (principal in Brig::Role::\"admin\", action == Brig::Action::\"launch\", resource);\n",
    );
    let set = PolicySet::from_texts(&[("many.cedar".into(), text)], None).unwrap();
    let tok = |tenant: &str, roles: serde_json::Value| {
        unverified_token(json!({"iss": "i", "sub": "s", "tenant": tenant, "roles": roles}).as_object().unwrap())
    };
    let restricted = LaunchContext { profile: "restricted".into(), ..Default::default() };
    let standard = LaunchContext { profile: "standard".into(), ..Default::default() };
    let d = authorize(&set, &tok("t17", json!([])), Action::Launch, &restricted);
    assert_eq!(d.determining_policies, ["t17"]);
    assert!(!authorize(&set, &tok("t17", json!([])), Action::Launch, &standard).allowed);
    assert!(!authorize(&set, &tok("nobody", json!([])), Action::Launch, &restricted).allowed);
    let d = authorize(&set, &tok("t3", json!(["admin"])), Action::Launch, &restricted);
    assert_eq!(d.determining_policies, ["role", "t3"]);
    // a role listed twice is one parent, not a duplicate policy
    let d = authorize(&set, &tok("t3", json!(["admin", "admin"])), Action::Launch, &restricted);
    assert_eq!(d.determining_policies, ["role", "t3"], "{}", d.explain());
    let d = authorize(&set, &tok("t3", json!(["admin"])), Action::Launch, &standard);
    assert_eq!(d.determining_policies, ["deny-std"]);
}

#[test]
fn paths_named_in_conditions_are_ancestors_too() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.cedar",
        r#"permit (principal, action == Brig::Action::"launch", resource);
permit (principal, action == Brig::Action::"mount", resource)
  when { resource in Brig::Path::"/srv/data" && !context.mount.read_write };"#,
    );
    let cache = tempfile::tempdir().unwrap();
    for set in [
        PolicySet::load(dir.path()).unwrap().validate_requests(true),
        PolicySet::load_cached(dir.path(), Some(cache.path())).unwrap(),
        PolicySet::load_cached(dir.path(), Some(cache.path())).unwrap(),
    ] {
        let t = unverified_token(json!({"iss": "i", "sub": "s"}).as_object().unwrap());
        let mut ctx = LaunchContext { profile: "p".into(), ..Default::default() };
        ctx.mounts = vec![bind("/srv/data/a/b", "/in", false), bind("/srv/data", "/all", false)];
        assert!(authorize(&set, &t, Action::Launch, &ctx).allowed, "from cache: {}", set.from_cache());
        ctx.mounts.push(bind("/srv/database", "/db", false));
        assert!(!authorize(&set, &t, Action::Launch, &ctx).allowed);
    }
}
