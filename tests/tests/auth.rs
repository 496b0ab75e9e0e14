//! Launch authorization with real tokens and real containers (issue 4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use brig_tests::{brig_bin, unique_id, Brig, Bundle};
use serde_json::{json, Value};

/// A brig configured by `brig init` (development keys, the function-platform
/// policies), with its own state directories.
struct Auth {
    brig: Brig,
    etc: PathBuf,
    var: PathBuf,
    key: PathBuf,
    tenant_dirs: Vec<PathBuf>,
}

impl Drop for Auth {
    fn drop(&mut self) {
        for d in &self.tenant_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

const ISS: &str = "https://brig.local/test";

fn setup() -> Auth {
    let brig = Brig::new("[auth]\nmode = \"off\"\n"); // replaced below
    let etc = brig.dir.path().join("etc");
    let var = brig.dir.path().join("var");
    let out = Command::new(brig_bin())
        .args(["init", "--dir"])
        .arg(&etc)
        .arg("--state-dir")
        .arg(&var)
        .args(["--issuer", ISS])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::copy(etc.join("config.toml"), &brig.config).unwrap();
    let key = etc.join("keys/token.key");
    Auth { brig, etc, var, key, tenant_dirs: vec![] }
}

impl Auth {
    fn mint(&self, extra: &[&str]) -> String {
        let mut args = vec!["token", "mint", "--key", self.key.to_str().unwrap(), "--iss", ISS, "--sub", "fn-7"];
        args.extend_from_slice(extra);
        let out = Command::new(brig_bin()).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Tenant directories under /var/lib/brig/jobs (unique per test).
    fn tenant(&mut self, name: &str) -> PathBuf {
        let base = PathBuf::from("/var/lib/brig/jobs").join(name);
        std::fs::create_dir_all(base.join("in")).unwrap();
        std::fs::create_dir_all(base.join("out")).unwrap();
        std::fs::write(base.join("in/data.txt"), format!("{name} data\n")).unwrap();
        self.tenant_dirs.push(base.clone());
        base
    }

    /// `admin.cedar`: admins may do anything, then `extra` (forbids).
    fn admin_policies(&self, extra: &str) {
        std::fs::write(
            self.etc.join("policy/admin.cedar"),
            format!("@id(\"admin-all\")\npermit (principal in Brig::Role::\"admin\", action, resource);\n{extra}"),
        )
        .unwrap();
    }

    fn audit_log(&self) -> PathBuf {
        self.var.join("audit.log")
    }
}

fn bundle_with(token: &str, tenant_base: &Path, script: &str) -> Bundle {
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.push(
        "/mounts",
        json!({"destination": "/in", "type": "bind", "source": tenant_base.join("in"), "options": ["rbind", "ro"]}),
    );
    b.push(
        "/mounts",
        json!({"destination": "/out", "type": "bind", "source": tenant_base.join("out"), "options": ["rbind", "rw"]}),
    );
    b.annotate("dev.brig.inputs", "/in");
    b.annotate("dev.brig.outputs", "/out");
    b.annotate("dev.brig.token", token);
    b
}

/// base64url without padding.
fn b64(data: &[u8]) -> String {
    let out = Command::new("python3")
        .args(["-c", "import base64,sys;print(base64.urlsafe_b64encode(sys.stdin.buffer.read()).decode().rstrip('='))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut out = out;
    out.stdin.take().unwrap().write_all(data).unwrap();
    String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap().trim().to_string()
}

fn hs256(secret: &[u8], data: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", "import hmac,hashlib,sys,base64;k=open(sys.argv[1],'rb').read();print(base64.urlsafe_b64encode(hmac.new(k,sys.argv[2].encode(),hashlib.sha256).digest()).decode().rstrip('='))"])
        .arg(std::str::from_utf8(secret).unwrap())
        .arg(data)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn kid_of(a: &Auth) -> String {
    let meta: Value = serde_json::from_slice(&std::fs::read(a.etc.join("keys/token.key.meta.json")).unwrap()).unwrap();
    meta["kid"].as_str().unwrap().to_string()
}

fn nothing_left(a: &Auth, id: &str) {
    assert!(a.brig.ok(&["list", "-q"]).trim().is_empty(), "containers left");
    assert!(!a.brig.root.join(id).exists(), "state left for {id}");
    assert!(!Path::new(&format!("/sys/fs/cgroup/pids/brig/{id}")).exists(), "cgroup left for {id}");
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains(id), "a process mentions {id}");
}

#[test]
fn valid_token_launches_and_every_bad_token_is_refused_distinctly() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let tenant = acme.file_name().unwrap().to_str().unwrap().to_string();
    let acme_token = || a.mint(&["--tenant", &tenant, "--role", "function"]);
    let ok = bundle_with(&acme_token(), &acme, "cat /in/data.txt > /out/copy.txt");
    let (code, _, err) = a.brig.run(&ok, &unique_id("ok"));
    assert_eq!(code, 0, "a valid token must launch: {err}");
    assert!(acme.join("out/copy.txt").exists());

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let kid = kid_of(&a);
    let valid = acme_token();
    let parts: Vec<&str> = valid.split('.').collect();
    let payload = json!({"iss": ISS, "sub": "fn-7", "aud": "brig", "exp": now + 300, "iat": now, "tenant": tenant, "roles": ["function"], "jti": unique_id("j")});
    // HS256 "signed" with the published public key (key confusion).
    let jwks = a.etc.join("jwks.json");
    let hs_header = b64(json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string().as_bytes());
    let hs_body = b64(payload.to_string().as_bytes());
    let hs_token = format!(
        "{hs_header}.{hs_body}.{}",
        hs256(jwks.to_str().unwrap().as_bytes(), &format!("{hs_header}.{hs_body}"))
    );
    let none_token = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": kid}).to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let mut bad_sig = valid.clone();
    let last = bad_sig.pop().unwrap();
    bad_sig.push(if last == 'A' { 'B' } else { 'A' });
    // A key the JWKS does not know.
    let other = a.brig.dir.path().join("other-keys");
    let out = Command::new(brig_bin()).args(["token", "keygen", "--out"]).arg(&other).output().unwrap();
    assert!(out.status.success());
    let unknown_kid = String::from_utf8(
        Command::new(brig_bin())
            .args([
                "token",
                "mint",
                "--key",
                other.join("token.key").to_str().unwrap(),
                "--iss",
                ISS,
                "--sub",
                "x",
                "--tenant",
                &tenant,
                "--role",
                "function",
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let replayed = acme_token();
    let (code, _, _) = a.brig.run(&bundle_with(&replayed, &acme, "true"), &unique_id("first"));
    assert_eq!(code, 0);

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            a.mint(&[
                "--tenant",
                &tenant,
                "--role",
                "function",
                "--claims",
                &json!({"exp": now - 3600, "iat": now - 4000, "nbf": now - 4000}).to_string(),
            ]),
            "expired",
        ),
        (
            "not yet valid",
            a.mint(&[
                "--tenant",
                &tenant,
                "--role",
                "function",
                "--claims",
                &json!({"nbf": now + 3000, "exp": now + 3300}).to_string(),
            ]),
            "not valid before",
        ),
        (
            "wrong issuer",
            a.mint(&[
                "--tenant",
                &tenant,
                "--role",
                "function",
                "--claims",
                &json!({"iss": "https://evil.example"}).to_string(),
            ]),
            "issuer",
        ),
        ("wrong audience", a.mint(&["--tenant", &tenant, "--role", "function", "--aud", "someone-else"]), "audience"),
        ("unknown kid", unknown_kid, "key id"),
        ("bad signature", bad_sig, "signature"),
        ("alg none", none_token, "none"),
        ("key confusion", hs_token, "HS256"),
        ("truncated", format!("{}.{}", parts[0], parts[1]), "truncated"),
        ("garbage", "this-is-not-a-token".into(), "not a compact JWS"),
        ("replayed jti", replayed, "already used"),
        ("lifetime over maximum", a.mint(&["--tenant", &tenant, "--role", "function", "--ttl", "2h"]), "lifetime"),
    ];
    let mut messages = Vec::new();
    for (what, token, needle) in cases {
        let id = unique_id("bad");
        let err =
            a.brig.fails(&["create", "--bundle", bundle_with(&token, &acme, "true").path().to_str().unwrap(), &id]);
        assert!(err.contains("token refused") && err.to_lowercase().contains(&needle.to_lowercase()), "{what}: {err}");
        assert!(!err.contains(&token) || token.len() < 20, "{what}: the token leaked into the error");
        nothing_left(&a, &id);
        let line = err.lines().last().unwrap().to_string();
        assert!(!messages.contains(&line), "{what}: same message as another case: {line}");
        messages.push(line);
    }
    // No token at all, with authorization required.
    let mut b = bundle_with("x", &acme, "true");
    b.config["annotations"].as_object_mut().unwrap().remove("dev.brig.token");
    b.write();
    let err = a.brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("none")]);
    assert!(err.contains("no token"), "{err}");
}

#[test]
fn cedar_decides_on_the_tenants_own_paths() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let globex = a.tenant(&unique_id("globex"));
    // The function-platform policy: `{tenant}` in a path is the caller's tenant.
    let tenant_name = acme.file_name().unwrap().to_str().unwrap().to_string();
    let token = a.mint(&["--tenant", &tenant_name, "--role", "function"]);
    let (code, _, err) = a.brig.run(&bundle_with(&token, &acme, "cat /in/data.txt"), &unique_id("own"));
    assert_eq!(code, 0, "own paths: {err}");
    let token = a.mint(&["--tenant", &tenant_name, "--role", "function"]);
    let id = unique_id("other");
    let err = a.brig.fails(&["create", "--bundle", bundle_with(&token, &globex, "true").path().to_str().unwrap(), &id]);
    assert!(err.contains("launch refused") && err.contains(globex.join("in").to_str().unwrap()), "{err}");
    nothing_left(&a, &id);
    // The decision is in the audit log, chained.
    let log = std::fs::read_to_string(a.audit_log()).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["decision"], "deny");
    assert_eq!(last["container_id"], id.as_str());
    assert_eq!(last["tenant"], tenant_name.as_str());
    assert!(!log.contains(&token), "the token is in the audit log");
}

/// `context.container_source` (the function-platform's "this container's
/// own hosts/resolv.conf") trusts the container id only when the bundle is
/// the one a client keeps for that id. A bundle elsewhere, whose writer also
/// picks the id, cannot name another container's id to be given its files.
#[test]
fn a_container_id_counts_only_with_the_clients_own_bundle() {
    let mut a = setup();
    let tenant = a.tenant(&unique_id("acme"));
    let tenant_name = tenant.file_name().unwrap().to_str().unwrap().to_string();
    let victim = unique_id("victim");
    let victim_dir = PathBuf::from("/var/lib/docker/containers").join(&victim);
    std::fs::create_dir_all(&victim_dir).unwrap();
    a.tenant_dirs.push(victim_dir.clone());
    std::fs::write(victim_dir.join("hosts"), "10.9.9.9 victim-only\n").unwrap();
    // A client's state directory (as for k3s), configured.
    let state = a.brig.dir.path().join("client-state");
    let tasks = state.join("io.containerd.runtime.v2.task");
    std::fs::create_dir_all(tasks.join("moby")).unwrap();
    let mut config = std::fs::read_to_string(&a.brig.config).unwrap();
    config.push_str(&format!("\n[clients]\nstate_dirs = [\"{}\"]\n", state.display()));
    std::fs::write(&a.brig.config, config).unwrap();

    let bundle = |token: &str| {
        let mut b = Bundle::new(&["cat", "/etc/hosts"]);
        b.push(
            "/mounts",
            json!({"destination": "/etc/hosts", "type": "bind", "source": victim_dir.join("hosts"), "options": ["rbind", "ro"]}),
        );
        b.annotate("dev.brig.token", token);
        b
    };
    let mint = || a.mint(&["--tenant", &tenant_name, "--role", "function"]);
    // Anywhere else: the victim's id buys nothing.
    let b = bundle(&mint());
    let err = a.brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &victim]);
    assert!(err.contains("launch refused") && err.contains("no policy permits"), "{err}");
    nothing_left(&a, &victim);
    let explain = |dir: &Path, id: &str| {
        let out = Command::new(brig_bin())
            .args(["--config", a.brig.config.to_str().unwrap(), "policy", "explain", "--bundle"])
            .arg(dir)
            .args(["--id", id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(explain(b.path(), &victim).contains("decision: deny"), "{}", explain(b.path(), &victim));

    // Named after the id, but not in a client's layout (`<state>/<id>`: a
    // place an image or a job could write): nothing.
    let loose = state.join(&victim);
    std::fs::create_dir_all(&loose).unwrap();
    let b = bundle(&mint());
    std::fs::copy(b.path().join("config.json"), loose.join("config.json")).unwrap();
    assert!(explain(&loose, &victim).contains("decision: deny"), "{}", explain(&loose, &victim));
    // The client's own bundle for that id (containerd's layout under the
    // state directory): this container's files, permitted.
    let own = tasks.join("moby").join(&victim);
    std::fs::create_dir_all(&own).unwrap();
    let b = bundle(&mint());
    std::fs::copy(b.path().join("config.json"), own.join("config.json")).unwrap();
    assert!(explain(&own, &victim).contains("decision: allow"), "{}", explain(&own, &victim));
    let out = a.brig.ok(&["run", "--bundle", own.to_str().unwrap(), &victim]);
    assert!(out.contains("victim-only"), "{out}");
    a.brig.ok(&["delete", "--force", &victim]);
    // The same bundle under another id is not that container's.
    let other = unique_id("other");
    let b = bundle(&mint());
    std::fs::copy(b.path().join("config.json"), own.join("config.json")).unwrap();
    let err = a.brig.fails(&["create", "--bundle", own.to_str().unwrap(), &other]);
    assert!(err.contains("no policy permits"), "{err}");
    nothing_left(&a, &other);
}

#[test]
fn forbid_wins_and_a_broken_policy_fails_closed() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let name = acme.file_name().unwrap().to_str().unwrap().to_string();
    let policy = a.etc.join("policy");
    // An admin may launch anything, but never with the permissive profile.
    a.admin_policies(
        "@id(\"never-permissive\")\nforbid (principal, action, resource) \
         when { context has profile && context.profile == \"permissive\" };\n",
    );
    let admin = a.mint(&["--tenant", &name, "--role", "admin"]);
    let (code, _, err) = a.brig.run(&bundle_with(&admin, &acme, "true"), &unique_id("admin"));
    assert_eq!(code, 0, "{err}");
    let admin = a.mint(&["--tenant", &name, "--role", "admin"]);
    let mut b = bundle_with(&admin, &acme, "true");
    b.annotate("dev.brig.profile", "permissive");
    let err = a.brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("perm")]);
    assert!(err.contains("never-permissive"), "the forbid must be named: {err}");

    // A broken policy file: every launch fails closed, naming file and line.
    std::fs::write(policy.join("broken.cedar"), "permit (principal, action, resource)\nwhen { this is not cedar };\n")
        .unwrap();
    let admin = a.mint(&["--tenant", &name, "--role", "admin"]);
    let err = a.brig.fails(&[
        "create",
        "--bundle",
        bundle_with(&admin, &acme, "true").path().to_str().unwrap(),
        &unique_id("broken"),
    ]);
    assert!(err.contains("broken.cedar") && err.contains(":2"), "{err}");
    let out = a.brig.cmd(&["policy", "validate", policy.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("broken.cedar"));
}

/// A host namespace joined by path is a host namespace to the policy: a
/// `forbid` on `context.host_namespaces` stops it as it stops leaving the
/// namespace out, under a profile that lets both through.
#[test]
fn a_host_namespace_joined_by_path_is_a_host_namespace_to_the_policy() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let name = acme.file_name().unwrap().to_str().unwrap().to_string();
    a.admin_policies(
        "@id(\"no-host-network\")\nforbid (principal, action, resource) \
         when { context has host_namespaces && context.host_namespaces.contains(\"network\") };\n",
    );
    let with_network = |network: Option<serde_json::Value>| {
        let admin = a.mint(&["--tenant", &name, "--role", "admin"]);
        let mut b = bundle_with(&admin, &acme, "true");
        b.annotate("dev.brig.profile", "permissive");
        let mut namespaces: Vec<Value> = b.config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] != "network")
            .cloned()
            .collect();
        namespaces.extend(network);
        b.set("/linux/namespaces", Value::Array(namespaces));
        b
    };
    let (code, _, err) = a.brig.run(&with_network(Some(json!({"type": "network"}))), &unique_id("ns"));
    assert_eq!(code, 0, "its own network namespace: {err}");
    for (what, network) in [
        ("left out", None),
        ("joined by path", Some(json!({"type": "network", "path": format!("/proc/{}/ns/net", std::process::id())}))),
    ] {
        let b = with_network(network);
        // The authoring tools decide what `create` decides (before it: the
        // launch consumes the token's `jti`).
        let out = a.brig.cmd(&["policy", "explain", "--bundle", b.path().to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success() && text.contains("no-host-network"), "explain, host network {what}: {text}");
        let cases = a.brig.dir.path().join(format!("cases-{}.toml", what.replace(' ', "-")));
        std::fs::write(
            &cases,
            format!(
                "[[case]]\nname = \"host network {what}\"\nbundle = \"{}\"\nexpect = \"deny\"\n\
                 expect_policies = [\"no-host-network\"]\nclaims = {{ iss = \"{ISS}\", sub = \"fn-7\", \
                 tenant = \"{name}\", roles = [\"admin\"] }}\n",
                b.path().display()
            ),
        )
        .unwrap();
        let out = a.brig.cmd(&["policy", "test", cases.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("ok    host network"), "policy test, {what}: {text}");
        let err = a.brig.fails(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("ns")]);
        assert!(err.contains("no-host-network"), "the host network {what} must be forbidden: {err}");
    }
}

/// `brig policy explain` and `brig policy test` decide on the request
/// `create` builds (the profile's defaults and tightening applied, the
/// configured claim names), with the token checks `create` makes; a case that
/// cannot be built fails instead of passing for a deny.
#[test]
fn the_policy_tools_decide_what_create_decides() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let name = acme.file_name().unwrap().to_str().unwrap().to_string();
    // restricted's default timeout (15 minutes) applies to a job that asks
    // for none: the raw spec has no timeout, the launch has one.
    a.admin_policies(
        "@id(\"short-jobs-only\")\nforbid (principal, action == Brig::Action::\"launch\", resource) \
         when { context has timeout_secs && context.timeout_secs > 600 };\n",
    );
    let admin = a.mint(&["--tenant", &name, "--role", "admin"]);
    let b = bundle_with(&admin, &acme, "true");
    let bundle = b.path().to_str().unwrap();
    let explain = |args: &[&str]| {
        let out = a.brig.cmd(&[&["policy", "explain", "--bundle"][..], args].concat());
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, text) = explain(&[bundle]);
    assert!(code == Some(1) && text.contains("short-jobs-only"), "{text}");
    let write_cases = |file: &str, body: &str| {
        let path = a.brig.dir.path().join(file);
        std::fs::write(&path, body).unwrap();
        path
    };
    let claims = format!("{{ iss = \"{ISS}\", sub = \"fn-7\", tenant = \"{name}\", roles = [\"admin\"] }}");
    let cases = write_cases(
        "timeout.toml",
        &format!(
            "[[case]]\nname = \"the profile's default timeout\"\nbundle = \"{bundle}\"\nexpect = \"deny\"\n\
             expect_policies = [\"short-jobs-only\"]\nclaims = {claims}\n"
        ),
    );
    let out = a.brig.cmd(&["policy", "test", cases.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let err = a.brig.fails(&["create", "--bundle", bundle, &unique_id("timeout")]);
    assert!(err.contains("short-jobs-only"), "{err}");

    // The token `create` just used: single-use, so explain refuses it too.
    let (code, text) = explain(&[bundle]);
    assert!(code == Some(1) && text.contains("token refused") && text.contains("already"), "{text}");
    // No token: `create` refuses, and so does explain (no anonymous decision).
    let mut anonymous = bundle_with("", &acme, "true");
    anonymous.config["annotations"].as_object_mut().unwrap().remove("dev.brig.token");
    anonymous.write();
    let (code, text) = explain(&[anonymous.path().to_str().unwrap()]);
    assert!(code == Some(1) && text.contains("no token"), "{text}");
    // A token without a `jti` where single-use tokens are configured.
    let no_jti = a.mint(&["--tenant", &name, "--role", "admin", "--no-jti"]);
    let (code, text) = explain(&[bundle_with(&no_jti, &acme, "true").path().to_str().unwrap()]);
    assert!(code == Some(1) && text.contains("jti"), "{text}");
    // A job's refusal by its own asks (a timeout over the profile's maximum).
    let fresh = a.mint(&["--tenant", &name, "--role", "admin"]);
    let mut long = bundle_with(&fresh, &acme, "true");
    long.annotate("dev.brig.timeout", "30h");
    let (code, text) = explain(&[long.path().to_str().unwrap()]);
    assert!(code == Some(1) && text.contains("timeout"), "{text}");

    // Claims under the configured names: `org` is the tenant claim.
    let config = std::fs::read_to_string(&a.brig.config).unwrap();
    std::fs::write(&a.brig.config, config.replacen("[auth]\n", "[auth]\ntenant_claim = \"org\"\n", 1)).unwrap();
    let policies = a.brig.dir.path().join("org-policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("p.cedar"),
        "@id(\"acme-only\")\npermit (principal in Brig::Tenant::\"acme\", action == Brig::Action::\"launch\", resource);\n\
         @id(\"overflow\")\nforbid (principal, action == Brig::Action::\"launch\", resource) \
         when { context has timeout_secs && context.timeout_secs * 9223372036854775807 > 0 };\n",
    )
    .unwrap();
    let cases = write_cases(
        "org.toml",
        &format!(
            "policies = \"{}\"\n\
             [[case]]\nname = \"the configured tenant claim\"\nexpect = \"allow\"\nclaims = {{ org = \"acme\" }}\n\
             [[case]]\nname = \"not the tenant claim\"\nexpect = \"deny\"\nclaims = {{ tenant = \"acme\" }}\n\
             [[case]]\nname = \"an evaluation error names no policy\"\nexpect = \"deny\"\nexpect_policies = []\n\
             claims = {{ org = \"acme\" }}\ncontext = {{ timeout_secs = 60 }}\n",
            policies.display()
        ),
    );
    let out = a.brig.cmd(&["policy", "test", cases.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("3 case(s), 0 failed"), "{text}");

    // Cases that cannot be built fail: a missing bundle, claims of the
    // wrong type, a file with no cases.
    let cases = write_cases(
        "broken.toml",
        &format!(
            "policies = \"{}\"\n\
             [[case]]\nname = \"missing bundle\"\nexpect = \"deny\"\nbundle = \"/nonexistent/bundle\"\n\
             [[case]]\nname = \"tenant of the wrong type\"\nexpect = \"deny\"\nclaims = {{ org = 5 }}\n",
            policies.display()
        ),
    );
    let out = a.brig.cmd(&["policy", "test", cases.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("ERROR missing bundle") && text.contains("/nonexistent/bundle"), "{text}");
    assert!(text.contains("ERROR tenant of the wrong type") && text.contains("org"), "{text}");
    let cases = write_cases("empty.toml", &format!("policies = \"{}\"\n", policies.display()));
    let out = a.brig.cmd(&["policy", "test", cases.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stdout).contains("no cases"));

    // Authorization off: explain says nothing is decided, as `create` decides nothing.
    let config = std::fs::read_to_string(&a.brig.config).unwrap();
    std::fs::write(&a.brig.config, config.replacen("mode = \"required\"", "mode = \"off\"", 1)).unwrap();
    let (code, text) = explain(&[anonymous.path().to_str().unwrap()]);
    assert!(code == Some(0) && text.contains("authorization is off"), "{text}");
}

/// `brig token keygen` writes the private key whole, mode 0600, in place of
/// whatever was at its path: never through a link planted there, never into
/// an existing file's looser mode; a JWKS it cannot read stops it, instead of
/// being overwritten without the keys it held.
#[test]
fn token_keygen_never_writes_a_key_through_what_was_there() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let keygen = |out: &Path| Command::new(brig_bin()).args(["token", "keygen", "--out"]).arg(out).output().unwrap();
    let loose = dir.path().join("loose");
    std::fs::create_dir_all(&loose).unwrap();
    std::fs::write(loose.join("token.key"), "old").unwrap();
    std::fs::set_permissions(loose.join("token.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(keygen(&loose).status.success());
    let meta = std::fs::metadata(loose.join("token.key")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(loose.join("token.key")).unwrap().contains("PRIVATE KEY"));

    let linked = dir.path().join("linked");
    std::fs::create_dir_all(&linked).unwrap();
    let elsewhere = dir.path().join("elsewhere.pem");
    std::fs::write(&elsewhere, "not a key").unwrap();
    std::os::unix::fs::symlink(&elsewhere, linked.join("token.key")).unwrap();
    assert!(keygen(&linked).status.success());
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "not a key", "written through the link");
    assert!(!std::fs::symlink_metadata(linked.join("token.key")).unwrap().file_type().is_symlink());

    // A --name that is a path (or hidden) would put the key outside --out.
    let named = dir.path().join("named");
    for name in ["../../escape", "a/b", ".hidden", ""] {
        let out =
            Command::new(brig_bin()).args(["token", "keygen", "--name", name, "--out"]).arg(&named).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("--name"), "{name:?}: {err}");
    }
    assert!(!dir.path().join("escape.key").exists() && !named.join("a").exists());

    let bad = dir.path().join("bad-jwks");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("jwks.json"), "{ not json").unwrap();
    let out = keygen(&bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("jwks.json"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(bad.join("jwks.json")).unwrap(), "{ not json");
    assert!(!bad.join("token.key").exists(), "a key whose public half is in no JWKS");

    // A JWKS that reads but that the new key cannot join (it holds a
    // private member) stops keygen before the existing key is replaced.
    let held = dir.path().join("held");
    std::fs::create_dir_all(&held).unwrap();
    assert!(keygen(&held).status.success());
    let old_key = std::fs::read(held.join("token.key")).unwrap();
    std::fs::write(
        held.join("jwks.json"),
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"leaky","x":"AA","d":"AA"}]}"#,
    )
    .unwrap();
    let out = keygen(&held);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("jwks.json") && err.contains("leaky"), "{err}");
    assert_eq!(std::fs::read(held.join("token.key")).unwrap(), old_key, "the signing key was replaced");
    // An unknown algorithm is named as the option, and makes no directory.
    let fresh = dir.path().join("fresh/sub");
    let out =
        Command::new(brig_bin()).args(["token", "keygen", "--alg", "bogus", "--out"]).arg(&fresh).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--alg"));
    assert!(!fresh.exists(), "a failed keygen left its --out directory");
}

#[test]
fn exec_is_authorized_separately() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let name = acme.file_name().unwrap().to_str().unwrap().to_string();
    // The function-platform policies permit launch and mounts, not exec.
    let token = a.mint(&["--tenant", &name, "--role", "function"]);
    let mut b = bundle_with(&token, &acme, "sleep 30");
    b.config["annotations"].as_object_mut().unwrap().remove("dev.brig.token");
    b.set("/process/env", json!(["PATH=/bin", format!("BRIG_TOKEN={token}")]));
    let id = unique_id("exec");
    a.brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    // Docker's way: the container's environment (with the token) in process.json.
    let process = json!({"terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["true"], "env": ["PATH=/bin", format!("BRIG_TOKEN={token}")]});
    let pfile = a.brig.dir.path().join("p.json");
    std::fs::write(&pfile, process.to_string()).unwrap();
    let err = a.brig.fails(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(err.contains("exec refused"), "{err}");
    // A policy that permits exec for functions: the same token may exec
    // (its single-use jti is bound to this container).
    std::fs::write(
        a.etc.join("policy/exec.cedar"),
        "@id(\"fn-exec\")\npermit (principal in Brig::Role::\"function\", action == Brig::Action::\"exec\", resource);\n",
    )
    .unwrap();
    a.brig.ok(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    // Without a token, exec is refused.
    std::fs::write(
        &pfile,
        json!({"terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["true"], "env": ["PATH=/bin"]})
            .to_string(),
    )
    .unwrap();
    let err = a.brig.fails(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(err.contains("no token"), "{err}");
    // The policy sees the exec's groups: supplementary group 6 (disk) is
    // forbidden, the same process without it is not.
    std::fs::write(
        a.etc.join("policy/groups.cedar"),
        "@id(\"no-disk-group\")\nforbid (principal, action == Brig::Action::\"exec\", resource) \
         when { context.exec.additional_gids.contains(6) || context.exec.gid == 6 };\n",
    )
    .unwrap();
    let with_groups = |gid: u32, extra: &[u32]| {
        std::fs::write(
            &pfile,
            json!({"terminal": false, "user": {"uid": 0, "gid": gid, "additionalGids": extra}, "cwd": "/",
                   "args": ["true"], "env": ["PATH=/bin", format!("BRIG_TOKEN={token}")]})
            .to_string(),
        )
        .unwrap();
    };
    with_groups(0, &[6]);
    let err = a.brig.fails(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(err.contains("no-disk-group"), "{err}");
    with_groups(6, &[]);
    let err = a.brig.fails(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(err.contains("no-disk-group"), "{err}");
    with_groups(0, &[10]);
    a.brig.ok(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    // A refusal by the profile (a capability over its ceiling) is audited
    // like a policy's deny.
    std::fs::write(
        &pfile,
        json!({"terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["true"],
               "env": ["PATH=/bin", format!("BRIG_TOKEN={token}")],
               "capabilities": {"bounding": ["CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"], "permitted": ["CAP_SYS_ADMIN"]}})
        .to_string(),
    )
    .unwrap();
    let before = std::fs::read_to_string(a.audit_log()).unwrap().lines().count();
    let err = a.brig.fails(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
    let log = std::fs::read_to_string(a.audit_log()).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(log.lines().count(), before + 1, "the refusal was not audited");
    assert_eq!((last["action"].as_str(), last["decision"].as_str()), (Some("exec"), Some("deny")), "{last}");
    a.brig.ok(&["delete", "--force", &id]);
}

/// A container launched while authorization was off gets no unauthorized
/// exec once the configuration requires it.
#[test]
fn exec_is_authorized_once_authorization_is_on() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let required = std::fs::read_to_string(&a.brig.config).unwrap();
    std::fs::write(&a.brig.config, required.replacen("mode = \"required\"", "mode = \"off\"", 1)).unwrap();
    let mut b = bundle_with("", &acme, "sleep 30");
    b.config["annotations"].as_object_mut().unwrap().remove("dev.brig.token");
    b.write();
    let id = unique_id("off-then-on");
    a.brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    a.brig.ok(&["exec", &id, "true"]);
    std::fs::write(&a.brig.config, &required).unwrap();
    let err = a.brig.fails(&["exec", &id, "true"]);
    assert!(err.contains("exec refused") && err.contains("no token"), "{err}");
    // The policy sees the launch as it was (kept while authorization was
    // off), not an empty one: a forbid on its profile applies.
    let acme_name = acme.file_name().unwrap().to_str().unwrap().to_string();
    a.admin_policies(
        "@id(\"no-exec-in-restricted\")\nforbid (principal, action == Brig::Action::\"exec\", resource) \
         when { context.profile == \"restricted\" };\n",
    );
    let admin = a.mint(&["--tenant", &acme_name, "--role", "admin"]);
    // Launched for no principal: every token is another's, refused before
    // any policy unless the policies are to decide.
    let err = a.brig.fails(&["exec", "-e", &format!("BRIG_TOKEN={admin}"), &id, "true"]);
    assert!(err.contains("launched without authorization"), "{err}");
    std::fs::write(&a.brig.config, required.replacen("[auth]\n", "[auth]\nother_principal_exec = \"policy\"\n", 1))
        .unwrap();
    let admin = a.mint(&["--tenant", &acme_name, "--role", "admin"]);
    let err = a.brig.fails(&["exec", "-e", &format!("BRIG_TOKEN={admin}"), &id, "true"]);
    assert!(err.contains("no-exec-in-restricted"), "{err}");
    a.brig.ok(&["delete", "--force", &id]);
}

/// The policy decides on an exec's process as it will run: a process.json
/// without capabilities gets the container's, and that is what
/// `context.exec.capabilities` shows (it used to show none).
#[test]
fn exec_is_decided_on_the_capabilities_it_gets() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let name = acme.file_name().unwrap().to_str().unwrap().to_string();
    a.admin_policies(
        "@id(\"no-kill-exec\")\nforbid (principal, action == Brig::Action::\"exec\", resource) \
         when { context has exec && context.exec.capabilities.contains(\"CAP_KILL\") };\n",
    );
    let token = a.mint(&["--tenant", &name, "--role", "admin"]);
    let mut b = bundle_with(&token, &acme, "sleep 30");
    b.annotate("dev.brig.profile", "standard");
    for (set, caps) in [
        ("bounding", json!(["CAP_KILL"])),
        ("effective", json!(["CAP_KILL"])),
        ("permitted", json!(["CAP_KILL"])),
        ("inheritable", json!([])),
        ("ambient", json!([])),
    ] {
        b.set(&format!("/process/capabilities/{set}"), caps);
    }
    let id = unique_id("xcap");
    let (code, _, err) = a.brig.cmd_files(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(code, 0, "{err}");
    let pfile = a.brig.dir.path().join("exec-process.json");
    let process = |caps: Option<Value>| {
        let mut p = json!({"terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["true"],
                           "env": ["PATH=/bin", format!("BRIG_TOKEN={}", a.mint(&["--tenant", &name, "--role", "admin"]))]});
        if let Some(c) = caps {
            p["capabilities"] = c;
        }
        std::fs::write(&pfile, p.to_string()).unwrap();
    };
    process(Some(json!({"bounding": [], "effective": [], "permitted": []})));
    a.brig.ok(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    process(None);
    let err = a.brig.fails(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert!(err.contains("no-kill-exec"), "the container's CAP_KILL must be what the policy sees: {err}");
    a.brig.ok(&["delete", "--force", &id]);
}

#[test]
fn the_token_is_nowhere_the_job_state_or_logs_can_see() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let name = acme.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::write(
        a.etc.join("policy/exec.cedar"),
        "@id(\"fn-exec\")\npermit (principal in Brig::Role::\"function\", action == Brig::Action::\"exec\", resource);\n",
    )
    .unwrap();
    let token = a.mint(&["--tenant", &name, "--role", "function"]);
    let mut b = bundle_with(&token, &acme, "cat /proc/self/environ | tr '\\0' '\\n'; env; sleep 30");
    // Both ways at once: annotation and environment.
    b.set("/process/env", json!(["PATH=/bin", format!("BRIG_TOKEN={token}")]));
    let id = unique_id("leak");
    let log = a.brig.dir.path().join("brig.log");
    // The container inherits brig's stdio: files, not pipes.
    let (code, _, err) = a.brig.cmd_files(&[
        "--log",
        log.to_str().unwrap(),
        "--debug",
        "run",
        "-d",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]);
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let state = a.brig.ok(&["state", &id]);
    let init = serde_json::from_str::<Value>(&state).unwrap()["pid"].as_i64().unwrap();
    let init_env = std::fs::read(format!("/proc/{init}/environ")).unwrap();
    let exec_out = a.brig.ok(&[
        "exec",
        "--env",
        &format!("BRIG_TOKEN={token}"),
        &id,
        "sh",
        "-c",
        "env; cat /proc/1/environ 2>&1; cat /proc/self/environ",
    ]);
    a.brig.ok(&["delete", "--force", &id]);
    let mut places: Vec<(String, String)> = vec![
        ("brig state".into(), state),
        ("/proc/1/environ (host view)".into(), String::from_utf8_lossy(&init_env).into_owned()),
        ("exec output".into(), exec_out),
        ("debug log".into(), std::fs::read_to_string(&log).unwrap_or_default()),
        ("audit log".into(), std::fs::read_to_string(a.audit_log()).unwrap()),
        ("attestation".into(), std::fs::read_to_string(a.var.join(format!("attestations/{id}.intoto.json"))).unwrap()),
    ];
    for entry in std::fs::read_dir(&a.brig.root).unwrap().flatten() {
        if entry.path().is_file() {
            places
                .push((entry.path().display().to_string(), std::fs::read_to_string(entry.path()).unwrap_or_default()));
        }
    }
    for (place, text) in places {
        assert!(!text.contains(&token), "the token appears in {place}");
    }
}

#[test]
fn tampering_with_the_audit_log_is_detected() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let name = acme.file_name().unwrap().to_str().unwrap().to_string();
    for _ in 0..3 {
        let t = a.mint(&["--tenant", &name, "--role", "function"]);
        let (code, _, err) = a.brig.run(&bundle_with(&t, &acme, "true"), &unique_id("aud"));
        assert_eq!(code, 0, "{err}");
    }
    let path = a.audit_log();
    let out = a.brig.ok(&["audit", "verify", path.to_str().unwrap()]);
    assert!(out.contains("3 record(s)"), "{out}");
    let original = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let edited = original.replacen("\"decision\":\"allow\"", "\"decision\":\"deny\"", 1);
    let removed = [lines[0], lines[2]].join("\n") + "\n";
    let reordered = [lines[1], lines[0], lines[2]].join("\n") + "\n";
    for (what, text, bad_line) in
        [("edited", edited, "line 1"), ("removed", removed, "line 2"), ("reordered", reordered, "line 1")]
    {
        std::fs::write(&path, text).unwrap();
        let (code, out, _) = a.brig.cmd_files(&["audit", "verify", path.to_str().unwrap()]);
        assert_ne!(code, 0, "{what} not detected");
        assert!(out.contains(bad_line), "{what}: {out}");
    }
}

/// `dev.brig.token-file` names a file inside `[auth] token_dir` only: the
/// bundle cannot make root brig read another pod's token or any host file,
/// through an absolute path, `..`, or a symbolic link, nor block it on a FIFO
/// or feed it an endless file. Each refusal names the annotation, never the
/// file's content (nor a token given in its place), and is audited.
#[test]
fn a_token_file_is_read_only_from_the_token_directory() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let tenant = acme.file_name().unwrap().to_str().unwrap().to_string();
    let token_dir = a.var.join("tokens");
    assert!(token_dir.is_dir(), "brig init makes the token directory");
    let config = std::fs::read_to_string(&a.brig.config).unwrap();
    assert!(config.contains(&format!("token_dir = \"{}\"", token_dir.display())), "{config}");
    let with_file = |name: &str| {
        let mut b = bundle_with("", &acme, "cat /in/data.txt > /out/copy.txt");
        let mut annotations = b.config["annotations"].as_object().unwrap().clone();
        annotations.remove("dev.brig.token");
        annotations.insert("dev.brig.token-file".into(), json!(name));
        b.set("/annotations", Value::Object(annotations));
        b
    };
    let mint = || a.mint(&["--tenant", &tenant, "--role", "function"]);

    // Inside the directory, by absolute or relative name: launches.
    std::fs::write(token_dir.join("job-a.jwt"), format!("{}\n", mint())).unwrap();
    let (code, _, err) = a.brig.run(&with_file(token_dir.join("job-a.jwt").to_str().unwrap()), &unique_id("tf"));
    assert_eq!(code, 0, "a token file in the token directory must launch: {err}");
    // The next job may get another ID range: the first job's file is not its.
    std::fs::remove_file(acme.join("out/copy.txt")).unwrap();
    std::fs::write(token_dir.join("job-b.jwt"), mint()).unwrap();
    let (code, _, err) = a.brig.run(&with_file("job-b.jwt"), &unique_id("tf"));
    assert_eq!(code, 0, "a relative token file name must launch: {err}");

    // A valid token outside the directory (another pod's, say).
    let outside = a.brig.dir.path().join("victim.jwt");
    let secret = mint();
    std::fs::write(&outside, &secret).unwrap();
    let link = token_dir.join("looks-mine.jwt");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let sub = token_dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let fifo = token_dir.join("fifo.jwt");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let huge = token_dir.join("huge.jwt");
    std::fs::write(&huge, vec![b'a'; 1 << 20]).unwrap();
    let shared = token_dir.join("shared.jwt");
    std::fs::write(&shared, mint()).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let dotdot = format!("sub/../../{}", outside.file_name().unwrap().to_str().unwrap());
    let cases: Vec<(String, &str)> = vec![
        (outside.to_str().unwrap().to_string(), "not inside the token directory"),
        ("/etc/shadow".into(), "not inside the token directory"),
        (format!("{}/../victim.jwt", token_dir.display()), "leaves the token directory"),
        (dotdot, "leaves the token directory"),
        (link.to_str().unwrap().to_string(), "symbolic link"),
        ("fifo.jwt".into(), "not a regular file"),
        ("sub".into(), "not a regular file"),
        ("huge.jwt".into(), "longer than a token"),
        ("shared.jwt".into(), "writable by no one else"),
        ("missing.jwt".into(), "cannot be opened"),
        // The token itself where its file's name goes (it belongs in
        // `dev.brig.token`): refused, and never echoed into the error or the
        // audit log (it was not spent: whoever reads the logs could use it).
        (secret.clone(), "is a token, not a file name"),
    ];
    for (name, why) in &cases {
        let id = unique_id("tf-bad");
        let started = std::time::Instant::now();
        let (code, out, err) = a.brig.run(&with_file(name), &id);
        assert_ne!(code, 0, "{name} was accepted");
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "{name} blocked brig");
        assert!(err.contains("dev.brig.token-file") && err.contains(why), "{name}: {err}");
        assert!(!out.contains(&secret) && !err.contains(&secret), "{name}: the token leaked");
        nothing_left(&a, &id);
    }
    let log = std::fs::read_to_string(a.audit_log()).unwrap();
    assert_eq!(log.matches("dev.brig.token-file").count(), cases.len(), "every refusal is audited");
    assert!(!log.contains(&secret), "the token is in the audit log");
}

/// A job joins only the namespaces of jobs launched for its own principal:
/// another tenant's job cannot make itself a member of a tenant's pod (its
/// IPC objects, its hostname, its user namespace and ID range), whatever
/// path it names; the tenant's own next job can.
#[test]
fn a_job_cannot_join_another_tenants_namespaces() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let acme_name = acme.file_name().unwrap().to_str().unwrap().to_string();
    let globex = a.tenant(&unique_id("globex"));
    let globex_name = globex.file_name().unwrap().to_str().unwrap().to_string();
    let token = a.mint(&["--tenant", &acme_name, "--role", "function"]);
    let mut sandbox = bundle_with(&token, &acme, "sleep 60");
    sandbox.push("/linux/namespaces", json!({"type": "time"}));
    let sandbox_id = unique_id("acme-sandbox");
    a.brig.ok(&["run", "-d", "--bundle", sandbox.path().to_str().unwrap(), &sandbox_id]);
    let leader = a.brig.state(&sandbox_id)["pid"].as_i64().unwrap();
    let member = |token: &str, base: &Path| {
        let mut b = bundle_with(token, base, "readlink /proc/self/ns/ipc");
        b.set(
            "/linux/namespaces",
            json!([
                {"type": "pid"}, {"type": "mount"}, {"type": "network"}, {"type": "cgroup"},
                {"type": "ipc", "path": format!("/proc/{leader}/ns/ipc")},
                {"type": "uts", "path": format!("/proc/{leader}/ns/uts")}
            ]),
        );
        b
    };
    let intruder = a.mint(&["--tenant", &globex_name, "--role", "function"]);
    let b = member(&intruder, &globex);
    let out = a.brig.cmd(&["policy", "explain", "--bundle", b.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("another principal"), "explain says what create does: {text}");
    let err = a.brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("globex")]);
    assert!(err.contains("another principal") && err.contains(&sandbox_id), "{err}");
    let last: Value =
        serde_json::from_str(std::fs::read_to_string(a.audit_log()).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(last["decision"], "deny", "the refusal is audited: {last}");
    // The same tenant's job (another subject) joins its pod.
    let own = a.mint(&["--tenant", &acme_name, "--role", "function"]);
    let b = member(&own, &acme);
    let (code, out, err) = a.brig.run(&b, &unique_id("acme-member"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), std::fs::read_link(format!("/proc/{leader}/ns/ipc")).unwrap().display().to_string());

    // Every namespace type, the time namespace too.
    let intruder = a.mint(&["--tenant", &globex_name, "--role", "function"]);
    let mut b = bundle_with(&intruder, &globex, "true");
    b.set(
        "/linux/namespaces",
        json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
            {"type": "cgroup"}, {"type": "time", "path": format!("/proc/{leader}/ns/time")}
        ]),
    );
    let err = a.brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("globex-time")]);
    assert!(err.contains("another principal"), "{err}");

    // The pod stays the tenant's while any of its jobs lives: with the
    // sandbox gone, a member's namespaces (the sandbox's) are still refused
    // to another tenant.
    let own = a.mint(&["--tenant", &acme_name, "--role", "function"]);
    let mut long = member(&own, &acme);
    long.set("/process/args", json!(["sleep", "60"]));
    let member_id = unique_id("acme-member");
    a.brig.ok(&["run", "-d", "--bundle", long.path().to_str().unwrap(), &member_id]);
    let member_pid = a.brig.state(&member_id)["pid"].as_i64().unwrap();
    a.brig.ok(&["delete", "--force", &sandbox_id]);
    let intruder = a.mint(&["--tenant", &globex_name, "--role", "function"]);
    let mut b = bundle_with(&intruder, &globex, "true");
    b.set(
        "/linux/namespaces",
        json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "network"}, {"type": "cgroup"},
            {"type": "ipc", "path": format!("/proc/{member_pid}/ns/ipc")},
            {"type": "uts", "path": format!("/proc/{member_pid}/ns/uts")}
        ]),
    );
    let err = a.brig.fails(&["run", "--bundle", b.path().to_str().unwrap(), &unique_id("globex-late")]);
    assert!(err.contains("another principal") && err.contains(&member_id), "{err}");
    a.brig.ok(&["delete", "--force", &member_id]);
}

/// Every example policy set passes its own cases through `brig policy test`
/// (the runtime's request builder: the bundle case is hardened as `create`
/// would, so its mounts must exist on this host).
#[test]
fn every_example_passes_its_cases_through_the_cli() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy/examples");
    let mounts =
        [PathBuf::from("/var/lib/brig/jobs/acme/in/req-42"), PathBuf::from("/var/lib/brig/jobs/acme/out/req-42")];
    let made: Vec<&PathBuf> = mounts.iter().filter(|m| !m.exists()).collect();
    for m in &made {
        std::fs::create_dir_all(m).unwrap();
    }
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[auth]\nmode = \"off\"\n").unwrap();
    let mut ran = 0;
    for example in std::fs::read_dir(&examples).unwrap().flatten().filter(|e| e.path().is_dir()) {
        let cases = example.path().join("cases.toml");
        let out = Command::new(brig_bin())
            .arg("--config")
            .arg(config.path())
            .args(["policy", "test"])
            .arg(&cases)
            .env_remove("BRIG_CONFIG")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(" 0 failed"),
            "{}: {text}{}",
            cases.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    for m in &made {
        let _ = std::fs::remove_dir(m);
    }
    assert!(ran >= 4, "the four example sets");
}

/// A FIFO where the configuration names a file — the configuration itself,
/// the JWKS, a policy, a profile, the audit log, the attestation key — is
/// refused at once with the path and what it is; `brig` neither waits on it
/// (a read of a FIFO blocks until something writes) nor leaves anything.
#[test]
fn a_fifo_at_a_configured_path_is_refused_not_waited_on() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let tenant = acme.file_name().unwrap().to_str().unwrap().to_string();
    std::fs::write(a.etc.join("profiles/strict.toml"), "name = \"strict\"\n").unwrap();
    let finished = |mut cmd: Command| -> (bool, String) {
        let err = tempfile::NamedTempFile::new().unwrap();
        let mut child = cmd.stdout(std::process::Stdio::null()).stderr(err.reopen().unwrap()).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("brig waited on a FIFO: {:?}", cmd);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        (status.success(), std::fs::read_to_string(err.path()).unwrap())
    };
    let targets = [
        a.etc.join("jwks.json"),
        a.etc.join("policy/functions.cedar"),
        a.etc.join("profiles/strict.toml"),
        a.audit_log(),
        a.etc.join("keys/attest.key"),
        a.brig.config.clone(),
    ];
    for target in &targets {
        let saved = a.brig.dir.path().join("saved");
        let existed = target.exists();
        if existed {
            std::fs::rename(target, &saved).unwrap();
        }
        nix::unistd::mkfifo(target, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let id = unique_id("fifo");
        let token = a.mint(&["--tenant", &tenant, "--role", "function"]);
        let bundle = bundle_with(&token, &acme, "true");
        let mut cmd = a.brig.command();
        cmd.args(["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let (ok, err) = finished(cmd);
        assert!(!ok, "{}: launched", target.display());
        assert!(err.contains(&target.display().to_string()) && err.contains("FIFO"), "{}: {err}", target.display());
        std::fs::remove_file(target).unwrap();
        if existed {
            std::fs::rename(&saved, target).unwrap();
        }
        assert!(!a.brig.root.join(&id).exists(), "{}: state left", target.display());
    }
    // Everything back in place: the same launch runs.
    let token = a.mint(&["--tenant", &tenant, "--role", "function"]);
    let (code, _, err) = a.brig.run(&bundle_with(&token, &acme, "true"), &unique_id("ok"));
    assert_eq!(code, 0, "{err}");
}

/// `brig init` with relative directories writes a configuration that names
/// them absolutely (brig is run from any directory), and a configuration
/// with a relative path is refused, naming the field.
#[test]
fn configured_paths_are_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(brig_bin())
        .current_dir(dir.path())
        .args(["init", "--dir", "etc", "--state-dir", "var", "--issuer", ISS])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = dir.path().join("etc/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!("jwks_file = \"{}/etc/jwks.json\"", dir.path().display())), "{text}");
    // From another working directory.
    let validate = || {
        Command::new(brig_bin())
            .current_dir("/")
            .arg("--config")
            .arg(&config)
            .args(["policy", "validate"])
            .output()
            .unwrap()
    };
    let out = validate();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&config, text.replace(&format!("{}/var/audit.log", dir.path().display()), "audit.log")).unwrap();
    let out = validate();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("audit.path") && err.contains("absolute"), "{err}");
}

/// Another tenant's token, allowed to exec, does not exec into this tenant's
/// container: refused before any policy by default; with
/// `other_principal_exec = "policy"` the policies decide, seeing
/// `context.exec.other_principal` and the container's owner. The owner's
/// own new token (another jti, same tenant) is not another principal.
#[test]
fn exec_into_another_tenants_container_is_refused() {
    let mut a = setup();
    let acme = a.tenant(&unique_id("acme"));
    let acme_name = acme.file_name().unwrap().to_str().unwrap().to_string();
    let globex_name = unique_id("globex");
    std::fs::write(
        a.etc.join("policy/exec.cedar"),
        "@id(\"fn-exec\")\npermit (principal in Brig::Role::\"function\", action == Brig::Action::\"exec\", resource);\n",
    )
    .unwrap();
    let token = a.mint(&["--tenant", &acme_name, "--role", "function"]);
    let b = bundle_with(&token, &acme, "sleep 30");
    let id = unique_id("owned");
    a.brig.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let pfile = a.brig.dir.path().join("p.json");
    let exec_with = |token: &str| {
        let process = json!({"terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["true"],
                             "env": ["PATH=/bin", format!("BRIG_TOKEN={token}")]});
        std::fs::write(&pfile, process.to_string()).unwrap();
        a.brig.cmd(&["exec", "--process", pfile.to_str().unwrap(), &id])
    };
    let globex = || a.mint(&["--tenant", &globex_name, "--role", "function"]);
    let globex_token = globex();
    let out = exec_with(&globex_token);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("another principal"), "{err}");
    // The refused token was not spent: a second try is refused for the same
    // reason, not as a replay.
    let out = exec_with(&globex_token);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another principal") && !err.contains("already used"), "{err}");
    let log = std::fs::read_to_string(a.audit_log()).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!((last["action"].as_str(), last["decision"].as_str()), (Some("exec"), Some("deny")), "{last}");
    // The owner's tenant with a new token.
    let out = exec_with(&a.mint(&["--tenant", &acme_name, "--role", "function"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The policies decide: they see the owner.
    let config = std::fs::read_to_string(&a.brig.config).unwrap();
    std::fs::write(&a.brig.config, config.replacen("[auth]\n", "[auth]\nother_principal_exec = \"policy\"\n", 1))
        .unwrap();
    let out = exec_with(&globex());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(
        a.etc.join("policy/owner.cedar"),
        format!(
            "@id(\"own-containers-only\")\nforbid (principal, action == Brig::Action::\"exec\", resource) \
             when {{ context.exec.other_principal && context.exec.owner has tenant && context.exec.owner.tenant == \"{acme_name}\" }};\n"
        ),
    )
    .unwrap();
    let out = exec_with(&globex());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("own-containers-only"), "{err}");
    let out = exec_with(&a.mint(&["--tenant", &acme_name, "--role", "function"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    a.brig.ok(&["delete", "--force", &id]);
}

/// `brig init` puts its arguments into the configuration as TOML strings
/// (an issuer with quotes in it is one odd issuer, not an added trusted
/// one), refuses options that make no valid configuration before writing
/// anything, and writes keys and policies only into directories, never
/// through a link planted in their place.
#[test]
fn init_writes_what_it_was_given_and_only_where_it_says() {
    let base = tempfile::tempdir().unwrap();
    let init = |name: &str, extra: &[&str]| {
        let d = base.path().join(name);
        let out = Command::new(brig_bin())
            .arg("init")
            .arg("--dir")
            .arg(d.join("etc"))
            .arg("--state-dir")
            .arg(d.join("var"))
            .args(extra)
            .output()
            .unwrap();
        (d, out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // An injected second issuer stays inside the one string.
    let (d, ok, err) = init("inject", &["--issuer", r#"https://a", "https://evil.example"#]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(d.join("etc/config.toml")).unwrap();
    let parsed: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(parsed["auth"]["issuers"].as_array().unwrap().len(), 1, "{text}");
    // An issuer that makes no valid configuration: refused, nothing written.
    let (d, ok, err) = init("empty", &["--issuer", ""]);
    assert!(!ok && err.contains("would not load") && err.contains("issuers"), "{err}");
    assert!(!d.exists(), "a refused init wrote {}", d.display());
    // A link where the keys or the policy go: refused, the target untouched.
    use std::os::unix::fs::PermissionsExt;
    let victim = base.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let linked = base.path().join("linked/etc");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink(&victim, linked.join("keys")).unwrap();
    let (_, ok, err) = init("linked", &["--issuer", "https://ci"]);
    assert!(!ok && err.contains("keys") && err.contains("not a directory"), "{err}");
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0, "keys written through the link");
    assert_eq!(std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777, 0o755);
    let planted = base.path().join("planted/etc/policy");
    std::fs::create_dir_all(&planted).unwrap();
    let target = base.path().join("target.txt");
    std::fs::write(&target, "mine").unwrap();
    std::os::unix::fs::symlink(&target, planted.join("functions.cedar")).unwrap();
    let (d, ok, err) = init("planted", &["--issuer", "https://ci"]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "mine", "the policy was written through the link");
    assert!(!std::fs::symlink_metadata(d.join("etc/policy/functions.cedar")).unwrap().file_type().is_symlink());
    // Keys from an earlier init without --force: refused before any is replaced.
    std::fs::remove_file(d.join("etc/config.toml")).unwrap();
    let token_key = std::fs::read(d.join("etc/keys/token.key")).unwrap();
    let (_, ok, err) = init("planted", &["--issuer", "https://ci"]);
    assert!(!ok && err.contains("attest.key") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(d.join("etc/keys/token.key")).unwrap(), token_key, "a refused init replaced a key");
}

/// `brig policy validate` prints policy ids and file names as the author
/// wrote them but escaped (no escape sequence reaches the terminal, no
/// newline in an id forges a line), and a policy whose operators chain
/// past Cedar's recursion is refused by name instead of called valid (or
/// crashing brig when the set is freed).
#[test]
fn policy_validate_prints_names_escaped_and_refuses_endless_chains() {
    let dir = tempfile::tempdir().unwrap();
    let validate = |d: &Path| {
        let out = Command::new(brig_bin()).args(["policy", "validate"]).arg(d).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let odd = dir.path().join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(
        odd.join("x\u{1b}[2Jy.cedar"),
        "@id(\"ok\\u{1b}[31m\\nverified: fake\")\npermit (principal, action == Brig::Action::\"launch\", resource);\n",
    )
    .unwrap();
    let (code, out) = validate(&odd);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(!out.lines().any(|l| l.starts_with("verified")), "a newline in an id forged a line: {out:?}");
    assert!(out.contains("\\u{1b}[31m") && out.contains("x\\u{1b}[2Jy.cedar"), "{out:?}");
    // Files that hold no policy (only comments): as no files at all, every
    // launch would be denied; not called valid.
    let none = dir.path().join("none");
    std::fs::create_dir_all(&none).unwrap();
    std::fs::write(none.join("empty.cedar"), "// nothing yet\n").unwrap();
    let (code, out) = validate(&none);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("every launch would be denied"), "{out}");

    let chain = dir.path().join("chain");
    std::fs::create_dir_all(&chain).unwrap();
    std::fs::write(
        chain.join("sum.cedar"),
        format!("permit (principal, action, resource) when {{ {}1 == 2 }};\n", "1 + ".repeat(50_000)),
    )
    .unwrap();
    let (code, out) = validate(&chain);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("sum.cedar:1:") && out.contains("operators in one policy"), "{out}");
}
