//! `brig policy validate|test|explain`, `brig token keygen|mint`,
//! `brig audit verify`, and `brig init`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::cli::{AuditCmd, GlobalOpts, InitOpts, PolicyCmd, TokenCmd};
use crate::config::Config;
use crate::error::{Error, Result};

fn config(g: &GlobalOpts) -> Result<Config> {
    Ok(Config::load(&Config::locate(g.config.as_deref()))?)
}

fn usage(e: impl std::fmt::Display) -> Error {
    Error::Usage(e.to_string())
}

pub fn policy(g: &GlobalOpts, cmd: &PolicyCmd) -> Result<i32> {
    match cmd {
        PolicyCmd::Validate { dir } => {
            let dir = match dir {
                Some(d) => d.clone(),
                None => config(g)?.policy.dir,
            };
            match brig_policy::PolicySet::load(&dir) {
                // As a directory without policy files: valid text, but no
                // launch could ever be permitted.
                Ok(set) if set.is_empty() => {
                    crate::outln!(
                        "{}: no policies (the `*.cedar` files hold none): every launch would be denied",
                        brig_files::printable(&dir.display().to_string())
                    );
                    Ok(1)
                }
                Ok(set) => {
                    crate::outln!(
                        "{}: {} policies, valid against the schema (strict)",
                        brig_files::printable(&dir.display().to_string()),
                        set.len()
                    );
                    // Ids and file names are the policy author's: a newline
                    // in one would forge a line (the output layer keeps
                    // newlines).
                    for (id, file) in set.policies() {
                        crate::outln!("  {}  ({})", brig_files::printable(&id), brig_files::printable(&file));
                    }
                    for w in set.warnings() {
                        crate::outln!("warning: {w}");
                    }
                    Ok(0)
                }
                Err(e) => {
                    crate::outln!("{e}");
                    Ok(1)
                }
            }
        }
        PolicyCmd::Test { cases } => policy_test(g, cases),
        PolicyCmd::Explain { bundle, token, id } => explain(g, bundle, token.as_deref(), id.as_deref()),
    }
}

/// `brig policy test`: every case decided as `create` would decide it.
fn policy_test(g: &GlobalOpts, cases: &Path) -> Result<i32> {
    let file = brig_policy::load_cases(cases).map_err(usage)?;
    if file.cases.is_empty() {
        crate::outln!("{}: no cases (`[[case]]` tables)", cases.display());
        return Ok(1);
    }
    // The configuration gives the profiles and the claim names a bundle's
    // request is built with. A cases file that names its policies can run
    // without one (a policy author's machine): the built-in profiles and the
    // default claim names apply then.
    let config = match Config::load(&Config::locate(g.config.as_deref())) {
        Ok(c) => c,
        Err(crate::config::ConfigError::Missing(path)) if file.policies.is_some() && g.config.is_none() => {
            crate::outln!("note: no configuration at {}: built-in profiles, default claim names", path.display());
            Config::parse("[auth]\nmode = \"off\"\n", &path)?
        }
        Err(e) => return Err(e.into()),
    };
    let dir = file.policies.clone().unwrap_or_else(|| config.policy.dir.clone());
    let set = match brig_policy::PolicySet::load(&dir) {
        Ok(s) => s,
        Err(e) => {
            crate::outln!("{e}");
            return Ok(1);
        }
    };
    let requests = RuntimeRequests { config: &config, host: crate::host::RealHost::new(&config) };
    let results = brig_policy::run_tests_with(&set, &file.cases, &requests);
    let failed = results.iter().filter(|r| !r.passed).count();
    for r in &results {
        // A case's name is the file writer's text: control characters
        // (terminal escapes) are shown escaped, not sent to the terminal.
        let name = printable(&r.name);
        match (&r.error, r.passed) {
            (Some(e), _) => crate::outln!("ERROR {name}: {e}"),
            (None, true) => crate::outln!("ok    {name}"),
            (None, false) => crate::outln!("FAIL  {name}\n{}\n{}", r.diff, r.decision.explain()),
        }
    }
    crate::outln!("{} case(s), {} failed", results.len(), failed);
    Ok(i32::from(failed > 0))
}

/// `text` with its control characters escaped (`\u{1b}`), the rest as is.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A case's request as `create` builds it: the bundle read, the token taken
/// out, the rootless adaptation, then [`crate::pipeline::describe`]; claims
/// under the configured claim names.
struct RuntimeRequests<'a> {
    config: &'a Config,
    host: crate::host::RealHost,
}

impl brig_policy::CaseRequests for RuntimeRequests<'_> {
    fn bundle_context(&self, bundle: &Path) -> std::result::Result<brig_policy::LaunchContext, String> {
        let (request, _) = request_as_create_reads_it(bundle)?;
        crate::pipeline::describe(self.config, &request, &self.host, None).map(|d| d.context).map_err(|e| e.to_string())
    }

    fn identity(
        &self,
        claims: &serde_json::Map<String, Value>,
    ) -> std::result::Result<brig_policy::VerifiedToken, String> {
        brig_policy::identity_from_claims(claims, &self.config.auth).map_err(|e| format!("claims: {e}"))
    }
}

/// Reads a bundle as `create` does before the policy sees it: the token
/// taken out of the spec, and for a rootless caller the same adaptation
/// (its own user and network namespaces).
fn request_as_create_reads_it(
    bundle: &Path,
) -> std::result::Result<(crate::bundle::LaunchRequest, crate::pipeline::Credential), String> {
    let mut request = crate::bundle::LaunchRequest::read(bundle).map_err(|e| e.to_string())?;
    let credential = crate::pipeline::take_credential(&mut request.spec);
    let caller = crate::rootless::Caller::detect();
    if caller.is_rootless() {
        crate::rootless::adapt_request(&caller, &mut request.spec).map_err(|e| e.to_string())?;
    }
    Ok((request, credential))
}

/// The decision `create` would make for a bundle, without launching and
/// without consuming a single-use token: the same request
/// ([`crate::pipeline::describe`]), the same token checks (a single-use
/// token's `jti` must be there and unused; nothing is recorded).
fn explain(g: &GlobalOpts, bundle: &Path, token_file: Option<&Path>, id: Option<&str>) -> Result<i32> {
    let config = config(g)?;
    let (request, credential) = match request_as_create_reads_it(bundle) {
        Ok(r) => r,
        Err(e) => {
            crate::outln!("decision: deny\nreason: {e}");
            return Ok(1);
        }
    };
    let mut described = match crate::pipeline::describe(&config, &request, &crate::host::RealHost::new(&config), None) {
        Ok(d) => d,
        Err(e) => {
            crate::outln!("decision: deny\nreason: {e}");
            return Ok(1);
        }
    };
    if let Some(id) = id {
        described.context.container_id =
            crate::pipeline::client_container_id(&request.bundle, id, &config).unwrap_or_default();
    }
    let profile = &described.profile;
    crate::outln!("profile: {} ({})", profile.profile.name, profile.digest);
    for t in &described.hardened.tightened {
        crate::outln!("tightened: {}: {} -> {}", t.field, t.requested, t.applied);
    }
    if config.auth.mode == crate::config::AuthMode::Off {
        crate::outln!(
            "decision: none: authorization is off (`[auth] mode = \"off\"` in {}): `create` launches this \
             without a token or a policy decision",
            config.path.display()
        );
        return Ok(0);
    }
    let token = match token_file {
        // (Bounded as a token file is: a token is a few KiB.)
        Some(p) => Some(
            String::from_utf8_lossy(&brig_files::read_at_most(p, 64 << 10).map_err(|e| Error::io("reading", p, e))?)
                .trim()
                .to_string(),
        ),
        None => match credential.resolve(&config.auth.token_dir) {
            Ok(t) => t,
            Err(e) => {
                crate::outln!("decision: deny\nreason: {e}");
                return Ok(1);
            }
        },
    };
    let Some(token) = token else {
        crate::outln!(
            "decision: deny\nreason: no token: set the `dev.brig.token` annotation (or `dev.brig.token-file`, \
             or BRIG_TOKEN in the process environment), or pass --token FILE"
        );
        return Ok(1);
    };
    let verifier = brig_policy::TokenVerifier::new(&config.auth).map_err(usage)?;
    let verified = match verifier.verify_without_consuming(&token, SystemTime::now()) {
        Ok(v) => v,
        Err(e) => {
            crate::outln!("decision: deny\nreason: token refused: {e}");
            return Ok(1);
        }
    };
    let set = match brig_policy::PolicySet::load_with(&config.policy) {
        Ok(s) => s,
        Err(e) => {
            crate::outln!("decision: deny\nreason: the launch policies cannot be used: {e}");
            return Ok(1);
        }
    };
    // The namespaces the spec joins, as `create` checks them: another
    // principal's job in one is a refusal (crate::nsowner).
    let joined = crate::nspin::pin("explain", &request.spec).map_err(|e| e.to_string()).and_then(|()| {
        crate::pipeline::check_joined_owners(&crate::pipeline::identity_of(&verified), &described.profile.profile)
    });
    if let Err(e) = joined {
        crate::outln!("decision: deny\nreason: {e}");
        return Ok(1);
    }
    let decision = brig_policy::authorize(&set, &verified, brig_policy::Action::Launch, &described.context);
    crate::out!("{}", decision.explain());
    Ok(i32::from(!decision.allowed))
}

/// Metadata stored next to a development signing key.
fn meta_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".meta.json");
    PathBuf::from(p)
}

/// Writes `bytes` to `path` whole or not at all: a new file in the same
/// directory (created exclusively, with `mode` from the start), flushed, then
/// renamed over `path`. Whatever `path` was (a file with a looser mode, a
/// symbolic link planted there) is replaced, never written through.
fn write_replacing(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let err = |e: std::io::Error| Error::io("writing", path, e);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".brig-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(err)?;
    file.write_all(bytes).and_then(|()| file.as_file().sync_all()).map_err(err)?;
    file.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Generates a token signing key in `dir` and adds its public key to
/// `dir/jwks.json` (keeping the keys already there: rotation).
pub fn token_keygen(dir: &Path, alg: &str, name: &str) -> Result<(PathBuf, String)> {
    // The key file is `<out>/<name>.key`: a name is a file name, not a path.
    if name.is_empty() || name.starts_with('.') || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(usage(format!(
            "--name `{}`: use letters, digits and `- _ .`, not starting with `.` (it names the key file in --out)",
            name.escape_debug()
        )));
    }
    // Everything that can fail is checked before anything is written: a key
    // replaced and then not published (a JWKS that does not take the new
    // key) would lose the old signing key for nothing.
    let key = brig_policy::keygen(alg).map_err(|e| usage(format!("--alg: {e}")))?;
    let jwks_path = dir.join("jwks.json");
    // The keys already trusted are kept: a JWKS that cannot be read is an
    // error, not an empty set to overwrite.
    let not_jwks = |why: String| {
        usage(format!("`{}`: {why}; fix or move it first (the keys it holds are kept)", jwks_path.display()))
    };
    let mut keys: Vec<Value> = match brig_files::read(&jwks_path) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("keys").and_then(Value::as_array).cloned())
            .ok_or_else(|| not_jwks("not a JWKS (`{\"keys\": [...]}`)".into()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("reading", &jwks_path, e)),
    };
    keys.retain(|k| k["kid"] != key.public_jwk["kid"]);
    keys.push(key.public_jwk.clone());
    let jwks = brig_policy::jwks_from(&keys).map_err(|e| not_jwks(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let key_path = dir.join(format!("{name}.key"));
    write_replacing(&key_path, key.private_pem.as_bytes(), 0o600)?;
    let meta = json!({ "alg": key.alg, "kid": key.kid });
    write_replacing(&meta_path(&key_path), meta.to_string().as_bytes(), 0o644)?;
    write_replacing(&jwks_path, &serde_json::to_vec_pretty(&jwks).unwrap_or_default(), 0o644)?;
    Ok((key_path, key.kid))
}

fn parse_ttl(s: &str) -> Result<Duration> {
    s.parse::<brig_profiles::Duration>().map(|d| d.0).map_err(usage)
}

pub fn token(cmd: &TokenCmd) -> Result<i32> {
    match cmd {
        TokenCmd::Keygen { out, alg, name } => {
            let (key, kid) = token_keygen(out, alg, name)?;
            crate::outln!("private key  {}  (development only: keep it root-only)", key.display());
            crate::outln!("jwks         {}", out.join("jwks.json").display());
            crate::outln!("kid          {kid}");
            Ok(0)
        }
        TokenCmd::Mint { key, iss, sub, aud, tenant, roles, ttl, no_jti, image_digest, claims } => {
            let pem =
                String::from_utf8(brig_files::read_at_most(key, 64 << 10).map_err(|e| Error::io("reading", key, e))?)
                    .map_err(|_| Error::Usage(format!("`{}` is not a PEM key (not UTF-8)", key.display())))?;
            let meta_file = meta_path(key);
            let meta: Value = match brig_files::read_at_most(&meta_file, 64 << 10) {
                Ok(b) => serde_json::from_slice(&b).map_err(|_| {
                    usage(format!("`{}` is not the JSON `brig token keygen` writes", meta_file.display()))
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(usage(format!(
                        "`{}` is missing: mint with keys made by `brig token keygen`",
                        meta_file.display()
                    )))
                }
                Err(e) => return Err(Error::io("reading", &meta_file, e)),
            };
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let mut c = match claims {
                Some(text) => serde_json::from_str::<Value>(text).map_err(|e| usage(format!("--claims: {e}")))?,
                None => json!({}),
            };
            let obj = c.as_object_mut().ok_or_else(|| usage("--claims must be a JSON object"))?;
            // Claims given in --claims win over the defaults (tests mint
            // expired or future tokens that way).
            let exp = now + parse_ttl(ttl)?.as_secs();
            for (k, v) in [
                ("iss", json!(iss)),
                ("sub", json!(sub)),
                ("aud", json!(aud)),
                ("iat", json!(now)),
                ("nbf", json!(now)),
                ("exp", json!(exp)),
            ] {
                obj.entry(k).or_insert(v);
            }
            if let Some(t) = tenant {
                obj.insert("tenant".into(), json!(t));
            }
            if !roles.is_empty() {
                obj.insert("roles".into(), json!(roles));
            }
            if let Some(d) = image_digest {
                obj.insert("image_digest".into(), json!(d));
            }
            if !*no_jti {
                let mut r = [0u8; 16];
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut r))
                    .map_err(|e| Error::io("reading", "/dev/urandom", e))?;
                obj.insert("jti".into(), json!(hex::encode(r)));
            }
            let alg = meta["alg"].as_str().unwrap_or("EdDSA");
            let kid = meta["kid"].as_str().unwrap_or_default();
            brig_policy::devtools::check_dates(&c).map_err(usage)?;
            let token = brig_policy::mint(&c, &pem, kid, alg).map_err(usage)?;
            crate::outln!("{token}");
            Ok(0)
        }
    }
}

pub fn audit(g: &GlobalOpts, cmd: &AuditCmd) -> Result<i32> {
    match cmd {
        AuditCmd::Verify { path, anchors, attested, keys, rotated } => {
            let path = match path {
                Some(p) => p.clone(),
                None => config(g)?.audit_path().ok_or_else(|| usage("no audit log is configured (`[audit] path`)"))?,
            };
            let mut all: Vec<brig_policy::AuditAnchor> = anchors
                .iter()
                .map(|a| a.parse::<brig_policy::AuditAnchor>())
                .collect::<std::result::Result<_, _>>()
                .map_err(usage)?;
            let Attested { anchors: from_attestations, without, bad } = attested_anchors(attested, keys)?;
            all.extend(from_attestations);
            for why in &bad {
                crate::outln!("{why}");
            }
            // Each anchor goes to the log it names (by its first line; one
            // given by hand, to the log at hand); every anchor must land in
            // one of the logs given, or the check fails.
            let logs: Vec<PathBuf> = std::iter::once(path.clone()).chain(rotated.iter().cloned()).collect();
            let mut ids = Vec::new();
            for log in &logs {
                match brig_policy::audit::log_id(log) {
                    Ok(id) => ids.push(id),
                    Err(e) => {
                        crate::outln!("{e}");
                        return Ok(1);
                    }
                }
            }
            let mut per_log: Vec<Vec<brig_policy::AuditAnchor>> = vec![Vec::new(); logs.len()];
            let mut nowhere = 0;
            for a in all {
                match (a.log.is_empty(), ids.iter().position(|id| *id == a.log)) {
                    (true, _) => per_log[0].push(a),
                    (false, Some(i)) => per_log[i].push(a),
                    (false, None) => nowhere += 1,
                }
            }
            let mut failed = !bad.is_empty();
            for (log, anchors) in logs.iter().zip(&per_log) {
                match brig_policy::audit::verify_anchored(log, anchors) {
                    Ok(s) => {
                        crate::outln!("{}: {} record(s), chain intact, head {}", log.display(), s.records, s.head);
                        if !anchors.is_empty() {
                            crate::outln!("{} anchored record(s) match", anchors.len());
                        }
                    }
                    Err(e) => {
                        crate::outln!("{}: {e}", log.display());
                        failed = true;
                    }
                }
            }
            if without > 0 {
                crate::outln!("{without} attestation(s) name no audit record (made without an audit log)");
            }
            if nowhere > 0 {
                crate::outln!(
                    "{nowhere} anchored record(s) are in none of the logs given: the log was replaced, or rotated \
                     (give the earlier generations with --rotated)"
                );
                failed = true;
            }
            Ok(if failed { 1 } else { 0 })
        }
    }
}

/// The audit anchors of the attestations at `paths` (envelopes, or
/// directories of them), each verified against `keys` first: an anchor is
/// only as good as the signature over it.
fn attested_anchors(paths: &[PathBuf], keys: &[PathBuf]) -> Result<Attested> {
    if paths.is_empty() {
        return Ok(Attested::default());
    }
    if keys.is_empty() {
        return Err(usage("--attested needs --key (the attestation public key)"));
    }
    let keys = keys
        .iter()
        .map(|k| brig_attest::PublicKey::load(k).map_err(|e| usage(format!("key `{}`: {e}", k.display()))))
        .collect::<Result<Vec<_>>>()?;
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| Error::io("reading", p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.to_string_lossy().ends_with(brig_attest::ENVELOPE_SUFFIX))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Attested::default();
    for f in files {
        // One envelope that cannot be read or does not verify is reported and
        // the others still checked: the check fails, with every bad file named.
        // Read as `brig attest verify` reads one: a regular file, opened
        // without blocking, at most the largest envelope.
        // Only the signature makes an anchor brig's: a run whose record is
        // incomplete (an output over the measuring limits) still anchors its
        // launch decision (brig_attest::signed_audit_anchor).
        let verified = brig_attest::cli::read_envelope(&f).map_err(|e| format!("{e:#}")).and_then(|bytes| {
            brig_attest::signed_audit_anchor(&bytes, &keys)
                .map_err(|e| format!("`{}` does not verify: {e}", f.display()))
        });
        match verified {
            Ok(anchor) => match anchor {
                Some((seq, sha256, log)) => out.anchors.push(brig_policy::AuditAnchor { seq, sha256, log }),
                None => out.without += 1,
            },
            Err(why) => out.bad.push(brig_attest::clean(&why)),
        }
    }
    Ok(out)
}

/// What `--attested` found: the anchors of the envelopes that verify, how
/// many verified but name no audit record, and why each of the others failed.
#[derive(Debug, Default)]
struct Attested {
    anchors: Vec<brig_policy::AuditAnchor>,
    without: usize,
    bad: Vec<String>,
}

/// The example policy set `brig init` installs (the multi-tenant function
/// platform of policy/examples/).
const INIT_POLICY: &str = include_str!("../../policy/examples/function-platform/functions.cedar");

/// `s` as a TOML basic string, quotes and escapes included.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Makes `path` a directory, or checks that it is one already (not a link
/// to one); `mode` is set either way when given (a new directory is 0755
/// otherwise).
fn own_directory(path: &Path, mode: Option<u32>) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(usage(format!(
                "`{}` is not a directory (a link or a file): brig init writes only into directories it made or \
                 that were directories already",
                path.display()
            )))
        }
        Err(_) => std::fs::DirBuilder::new()
            .mode(mode.unwrap_or(0o755))
            .create(path)
            .map_err(|e| Error::io("creating", path, e))?,
    }
    match mode {
        Some(mode) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("protecting", path, e)),
        None => Ok(()),
    }
}

/// `brig init`: a development configuration with generated keys.
pub fn init(opts: &InitOpts) -> Result<i32> {
    // An unprivileged user's configuration is the one brig reads for them
    // (`~/.config/brig/config.toml`), with state they own.
    let rootless = crate::rootless::is_rootless();
    let user_dir = |what: &str| {
        let found = match what {
            "config" => crate::rootless::user_config().and_then(|c| c.parent().map(Path::to_path_buf)),
            _ => match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
                Some(d) => Some(PathBuf::from(d).join("brig")),
                None => std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| PathBuf::from(h).join(".local/share/brig")),
            },
        };
        found.ok_or_else(|| {
            usage(format!("rootless: no home directory for the {what} directory; pass --dir and --state-dir"))
        })
    };
    let dir = &match (&opts.dir, rootless) {
        (Some(d), _) => d.clone(),
        (None, true) => user_dir("config")?,
        (None, false) => PathBuf::from("/etc/brig"),
    };
    let state_dir = match (&opts.state_dir, rootless) {
        (Some(d), _) => d.clone(),
        (None, true) => user_dir("state")?,
        (None, false) => PathBuf::from("/var/lib/brig"),
    };
    // The configuration names every file by an absolute path (brig reads it
    // from whatever directory its caller runs in).
    let absolute = |d: &Path| std::path::absolute(d).map_err(|e| Error::io("resolving", d, e));
    let dir = &absolute(dir)?;
    let state_dir = absolute(&state_dir)?;
    let config_path = dir.join("config.toml");
    if config_path.exists() && !opts.force {
        return Err(usage(format!(
            "`{}` exists; use --force to replace the development configuration",
            config_path.display()
        )));
    }
    let keys = dir.join("keys");
    let jwks = dir.join("jwks.json");
    let policy_dir = dir.join("policy");
    let profiles_dir = dir.join("profiles");
    let attest_key = keys.join(brig_attest::PRIVATE_KEY_FILE);
    let state = &state_dir;
    // The configuration first, and checked as brig will read it, before
    // anything is written: an argument that does not make a valid
    // configuration (an issuer with a quote in it, an empty one) leaves no
    // keys or files behind. Every value is a TOML string made by the toml
    // crate: `--issuer 'https://a", "https://evil'` is one odd issuer, not
    // two trusted ones.
    let q = |p: &Path| toml_string(&p.display().to_string());
    let text = format!(
        r#"# brig development configuration, written by `brig init`.
# The keys under keys/ were generated on this machine for local use; a
# production issuer keeps its signing keys in its own KMS and publishes a JWKS.

[auth]
mode = "required"
issuers = [{issuer}]
audiences = ["brig"]
jwks_file = {jwks}
algorithms = ["EdDSA", "ES256", "RS256"]
leeway_secs = 30
max_lifetime_secs = 3600
# The only directory a `dev.brig.token-file` annotation may name a file in.
token_dir = {tokens}

[auth.replay]
dir = {jti}

[policy]
dir = {policy}
cache_dir = {policy_cache}

[audit]
path = {audit}

[profiles]
dir = {profiles}
default = "restricted"

[attest]
key = {attest_key}
dir = {attestations}
rootfs_cache = {rootfs_cache}
"#,
        issuer = toml_string(&opts.issuer),
        jwks = q(&jwks),
        tokens = q(&state.join("tokens")),
        jti = q(&state.join("jti")),
        policy = q(&policy_dir),
        policy_cache = q(&state.join("policy-cache")),
        audit = q(&state.join("audit.log")),
        profiles = q(&profiles_dir),
        attest_key = q(&attest_key),
        attestations = q(&state.join("attestations")),
        rootfs_cache = q(&state.join("cache/rootfs")),
    );
    crate::config::Config::parse(&text, &config_path)
        .map_err(|e| usage(format!("the configuration these options make would not load: {e}")))?;
    // Directories brig writes keys and policies into are made here or were
    // directories already: never a link (the keys would be written, and the
    // directory's mode changed, wherever it points).
    // (The two top directories are the caller's to place: they may be links.)
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(state)
        .map_err(|e| Error::io("creating", state, e))?;
    own_directory(&keys, Some(0o700))?;
    own_directory(&policy_dir, None)?;
    own_directory(&profiles_dir, None)?;
    own_directory(&state.join("tokens"), Some(0o700))?;
    if !opts.force {
        for f in [brig_attest::PRIVATE_KEY_FILE, brig_attest::PUBLIC_KEY_FILE] {
            if std::fs::symlink_metadata(keys.join(f)).is_ok() {
                return Err(usage(format!(
                    "`{}` exists; use --force to replace the development keys",
                    keys.join(f).display()
                )));
            }
        }
    }
    let (token_key, kid) = token_keygen(&keys, "EdDSA", "token")?;
    std::fs::rename(keys.join("jwks.json"), &jwks).map_err(|e| Error::io("writing", &jwks, e))?;
    if opts.force {
        let _ = std::fs::remove_file(keys.join(brig_attest::PRIVATE_KEY_FILE));
        let _ = std::fs::remove_file(keys.join(brig_attest::PUBLIC_KEY_FILE));
    }
    let attest = brig_attest::keygen(&keys, brig_attest::Algorithm::Ed25519).map_err(usage)?;
    // Replaces whatever is at the path (a link planted there included).
    write_replacing(&policy_dir.join("functions.cedar"), INIT_POLICY.as_bytes(), 0o644)?;
    write_replacing(&config_path, text.as_bytes(), 0o600)?;
    crate::outln!("wrote {}", config_path.display());
    crate::outln!("  token signing key  {} (kid {kid})", token_key.display());
    crate::outln!("  jwks               {}", jwks.display());
    crate::outln!("  attestation key    {} (public: {})", attest.private.display(), attest.public.display());
    crate::outln!("  policies           {}", policy_dir.display());
    crate::outln!("mint a development token:");
    crate::outln!(
        "  brig token mint --key {} --iss {} --aud brig --sub alice --tenant acme --role function --ttl 10m",
        token_key.display(),
        opts.issuer
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A case name with a terminal escape is printed escaped; other text,
    /// accents included, as it is.
    #[test]
    fn case_names_reach_the_terminal_without_control_characters() {
        assert_eq!(printable("café \u{1b}[2Jcleared\n"), "café \\u{1b}[2Jcleared\\n");
        assert!(!printable("\u{7}\u{9b}x").chars().any(char::is_control));
    }
}
