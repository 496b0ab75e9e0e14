//! Cedar authorization: loading a policy directory, building the entities
//! and contexts of a launch, and deciding.
//!
//! A launch is decided by one Cedar request for the launch itself plus one
//! per host mount (`mount`) and one per egress rule (`egress`): Cedar has no
//! "for all" over a set, so "every mount is under the tenant's prefix" is
//! written as a `mount` policy and checked once per mount. The launch is
//! allowed only if every request is allowed and no policy raised an error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PrincipalConstraint, Request, RestrictedExpression, Schema, SchemaFragment, ValidationMode, Validator,
};
use miette::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::config::PolicyConfig;
use crate::context::{normalize, EgressRule, LaunchContext, MountInfo};
use crate::token::VerifiedToken;

/// The built-in schema (`policy/brig.cedarschema`).
pub const BUILTIN_SCHEMA: &str = include_str!("../brig.cedarschema");
/// Name of a policy directory's own schema.
pub const SCHEMA_FILE: &str = "brig.cedarschema";
/// The placeholder `tenant_source` puts where the tenant's segment was.
pub const TENANT_PLACEHOLDER: &str = "{tenant}";
/// Version of the on-disk cache format; part of the cache key.
const CACHE_FORMAT: &str = "brig-policy-cache/1";

/// A place in a policy or schema file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diag {
    /// The file (name within the policy directory, or `<built-in schema>`).
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

fn joined(diags: &[Diag]) -> String {
    diags.iter().map(|d| format!("\n  {d}")).collect()
}

/// Why a policy directory could not be loaded. Loading fails on the first
/// file that cannot be read and on any parse or validation error, so the
/// shim fails closed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The directory or a file in it could not be read.
    #[error("reading `{}`: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No `*.cedar` file: every launch would be denied.
    #[error("no `*.cedar` policy files in `{}`: every launch would be denied", .0.display())]
    NoPolicies(PathBuf),
    /// The schema does not parse or lacks what brig needs.
    #[error("schema errors:{}", joined(.0))]
    Schema(Vec<Diag>),
    /// Policies do not parse.
    #[error("policy parse errors:{}", joined(.0))]
    Parse(Vec<Diag>),
    /// Policies do not validate against the schema (strict mode).
    #[error("policy validation errors (strict mode):{}", joined(.0))]
    Validation(Vec<Diag>),
}

/// The two requests the shim authorizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `create` / `run`.
    Launch,
    /// `exec` into a running container.
    Exec,
}

impl Action {
    /// `launch` or `exec`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Launch => "launch",
            Action::Exec => "exec",
        }
    }
}

/// Cedar actions, by index into the per-action policy partitions.
const ACTIONS: [&str; 4] = ["launch", "exec", "mount", "egress"];
const LAUNCH: usize = 0;
const EXEC: usize = 1;
const MOUNT: usize = 2;
const EGRESS: usize = 3;

/// How a declared claim is passed to Cedar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum ClaimKind {
    Json,
    IpAddr,
}

/// Entity type names and action ids, parsed once.
#[derive(Debug, Clone)]
struct Names {
    subject: EntityTypeName,
    tenant: EntityTypeName,
    role: EntityTypeName,
    image: EntityTypeName,
    profile: EntityTypeName,
    path: EntityTypeName,
    actions: [EntityUid; 4],
}

impl Names {
    fn new() -> Result<Names, String> {
        let t = |s: &str| EntityTypeName::from_str(s).map_err(|e| e.to_string());
        let action_ty = t("Brig::Action")?;
        let a = |id: &str| EntityUid::from_type_name_and_id(action_ty.clone(), EntityId::new(id));
        Ok(Names {
            subject: t("Brig::Subject")?,
            tenant: t("Brig::Tenant")?,
            role: t("Brig::Role")?,
            image: t("Brig::Image")?,
            profile: t("Brig::Profile")?,
            path: t("Brig::Path")?,
            actions: [a(ACTIONS[0]), a(ACTIONS[1]), a(ACTIONS[2]), a(ACTIONS[3])],
        })
    }
}

/// The policies that can apply to one action, indexed by principal scope.
///
/// INVARIANT (soundness of the index): a policy whose principal scope is
/// `== E`, `in E` or `is T in E` can only be satisfied when `E` is the
/// principal or one of its ancestors, and Cedar evaluates the scope before
/// the conditions, so leaving such a policy out of a request whose principal
/// does not have `E` changes neither the decision, nor its reasons, nor its
/// errors. brig builds the hierarchy itself: a Subject's ancestors are
/// exactly its Tenant and Roles, which have none.
#[derive(Debug, Clone, Default)]
struct ActionIndex {
    any_principal: Vec<cedar_policy::Policy>,
    by_entity: HashMap<EntityUid, Vec<cedar_policy::Policy>>,
}

/// A loaded, validated policy directory.
#[derive(Clone)]
pub struct PolicySet {
    schema: Schema,
    set: cedar_policy::PolicySet,
    index: Vec<ActionIndex>,
    claims: BTreeMap<String, ClaimKind>,
    files: BTreeMap<String, String>,
    warnings: Vec<Diag>,
    digest: String,
    from_cache: bool,
    names: Names,
    /// The schema in Cedar's JSON schema format (what the cache stores).
    schema_json: Value,
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field("policies", &self.len())
            .field("digest", &self.digest)
            .field("from_cache", &self.from_cache)
            .finish_non_exhaustive()
    }
}

/// What the on-disk cache holds for one content digest.
#[derive(Serialize, Deserialize)]
struct CacheEntry {
    format: String,
    digest: String,
    schema: Value,
    policies: Value,
    files: BTreeMap<String, String>,
    claims: BTreeMap<String, ClaimKind>,
    warnings: Vec<Diag>,
}

struct Sources {
    /// `(file name, text)`, sorted by name.
    policies: Vec<(String, String)>,
    /// `(file name, text)` of the schema.
    schema: (String, String),
}

fn read_sources(dir: &Path) -> Result<Sources, PolicyError> {
    let read_err = |path: &Path, source| PolicyError::Read { path: path.to_path_buf(), source };
    let mut policies = Vec::new();
    let mut schema = None;
    for entry in fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') {
            continue;
        }
        if name.ends_with(".cedar") {
            policies.push((name, fs::read_to_string(&path).map_err(|e| read_err(&path, e))?));
        } else if name == SCHEMA_FILE {
            schema = Some((name, fs::read_to_string(&path).map_err(|e| read_err(&path, e))?));
        }
    }
    if policies.is_empty() {
        return Err(PolicyError::NoPolicies(dir.to_path_buf()));
    }
    policies.sort();
    Ok(Sources { policies, schema: schema.unwrap_or_else(|| ("<built-in schema>".into(), BUILTIN_SCHEMA.into())) })
}

fn content_digest(sources: &Sources) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(CACHE_FORMAT.as_bytes());
    field(env!("CARGO_PKG_VERSION").as_bytes());
    field(sources.schema.0.as_bytes());
    field(sources.schema.1.as_bytes());
    for (name, text) in &sources.policies {
        field(name.as_bytes());
        field(text.as_bytes());
    }
    hex::encode(h.finalize())
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn diag_of(d: &dyn Diagnostic, file: &str, text: &str, message: String) -> Diag {
    let offset = d.labels().and_then(|mut l| l.next()).map(|l| l.offset());
    let (line, column) = offset.map_or((0, 0), |o| line_col(text, o));
    let mut message = message;
    if let Some(help) = d.help() {
        message.push_str(&format!(" (help: {help})"));
    }
    Diag { file: file.to_string(), line, column, message }
}

impl PolicySet {
    /// Loads `dir` without a cache: every `*.cedar` file plus the directory's
    /// `brig.cedarschema` (or the built-in schema), strictly validated.
    pub fn load(dir: &Path) -> Result<PolicySet, PolicyError> {
        PolicySet::from_sources(read_sources(dir)?)
    }

    /// Loads the configured directory, through the cache when it is enabled.
    pub fn load_with(config: &PolicyConfig) -> Result<PolicySet, PolicyError> {
        PolicySet::load_cached(&config.dir, config.cache.then_some(config.cache_dir.as_path()))
    }

    /// Loads `dir`; with a `cache_dir`, a set parsed and validated before
    /// from the same content (policy files, schema, brig version) is read
    /// from the cache instead of parsed again.
    pub fn load_cached(dir: &Path, cache_dir: Option<&Path>) -> Result<PolicySet, PolicyError> {
        let sources = read_sources(dir)?;
        let Some(cache_dir) = cache_dir else { return PolicySet::from_sources(sources) };
        let digest = content_digest(&sources);
        let cache_file = cache_dir.join(format!("{digest}.json"));
        if let Some(set) = read_cache(&cache_file, &digest) {
            return Ok(set);
        }
        let set = PolicySet::from_sources(sources)?;
        // A cache that cannot be written only costs a parse next time.
        let _ = write_cache(&set, &cache_file, cache_dir);
        Ok(set)
    }

    /// Parses and validates policies given in memory: `(file name, text)`
    /// pairs and an optional schema text (else the built-in one).
    pub fn from_texts(policies: &[(String, String)], schema: Option<&str>) -> Result<PolicySet, PolicyError> {
        let mut policies = policies.to_vec();
        policies.sort();
        let schema = match schema {
            Some(s) => (SCHEMA_FILE.to_string(), s.to_string()),
            None => ("<built-in schema>".into(), BUILTIN_SCHEMA.into()),
        };
        PolicySet::from_sources(Sources { policies, schema })
    }

    fn from_sources(sources: Sources) -> Result<PolicySet, PolicyError> {
        let digest = content_digest(&sources);
        let names = Names::new().map_err(|m| schema_diag(&sources.schema.0, m))?;
        let (schema, claims, schema_json) = parse_schema(&sources.schema.0, &sources.schema.1, &names)?;

        let mut parse_errors = Vec::new();
        let mut set = cedar_policy::PolicySet::new();
        let mut files = BTreeMap::new();
        let mut first_seen: HashMap<String, String> = HashMap::new();
        for (file, text) in &sources.policies {
            let parsed = match cedar_policy::PolicySet::from_str(text) {
                Ok(p) => p,
                Err(errs) => {
                    for e in errs.iter() {
                        parse_errors.push(diag_of(e, file, text, e.to_string()));
                    }
                    continue;
                }
            };
            if parsed.templates().next().is_some() {
                parse_errors.push(Diag {
                    file: file.clone(),
                    line: 0,
                    column: 0,
                    message: "policy templates (`?principal`, `?resource`) are not supported".into(),
                });
                continue;
            }
            // Cedar names the policies of one text `policy0`, `policy1`, ... in order.
            let mut list: Vec<(usize, &cedar_policy::Policy)> = parsed
                .policies()
                .map(|p| (p.id().to_string().trim_start_matches("policy").parse().unwrap_or(usize::MAX), p))
                .collect();
            list.sort_by_key(|(i, _)| *i);
            for (index, policy) in list {
                let id = match policy.annotation("id") {
                    Some(id) if !id.is_empty() => id.to_string(),
                    _ => format!("{file}:{index}"),
                };
                if let Some(other) = first_seen.get(&id) {
                    parse_errors.push(Diag {
                        file: file.clone(),
                        line: 0,
                        column: 0,
                        message: format!("policy id `{id}` is also used in `{other}`"),
                    });
                    continue;
                }
                first_seen.insert(id.clone(), file.clone());
                files.insert(id.clone(), file.clone());
                if let Err(e) = set.add(policy.new_id(cedar_policy::PolicyId::new(&id))) {
                    parse_errors.push(Diag { file: file.clone(), line: 0, column: 0, message: e.to_string() });
                }
            }
        }
        if !parse_errors.is_empty() {
            return Err(PolicyError::Parse(parse_errors));
        }

        let texts: HashMap<&str, &str> = sources.policies.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
        let locate = |policy_id: &cedar_policy::PolicyId| -> (String, &str) {
            let id: &str = policy_id.as_ref();
            let file = files.get(id).cloned().unwrap_or_default();
            let text = texts.get(file.as_str()).copied().unwrap_or("");
            (file, text)
        };
        let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        let mut errors = Vec::new();
        for e in result.validation_errors() {
            let (file, text) = locate(e.policy_id());
            errors.push(diag_of(e, &file, text, format!("policy `{}`: {e}", e.policy_id())));
        }
        let mut warnings = Vec::new();
        for w in result.validation_warnings() {
            let (file, text) = locate(w.policy_id());
            warnings.push(diag_of(w, &file, text, format!("policy `{}`: {w}", w.policy_id())));
        }
        if !errors.is_empty() {
            return Err(PolicyError::Validation(errors));
        }
        Ok(PolicySet::assemble(schema, schema_json, set, claims, files, warnings, digest, false, names))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        schema: Schema,
        schema_json: Value,
        set: cedar_policy::PolicySet,
        claims: BTreeMap<String, ClaimKind>,
        files: BTreeMap<String, String>,
        warnings: Vec<Diag>,
        digest: String,
        from_cache: bool,
        names: Names,
    ) -> PolicySet {
        let mut index = vec![ActionIndex::default(); ACTIONS.len()];
        for policy in set.policies() {
            let applies: Vec<usize> = match policy.action_constraint() {
                ActionConstraint::Any => (0..ACTIONS.len()).collect(),
                ActionConstraint::Eq(a) => names.actions.iter().position(|x| *x == a).into_iter().collect(),
                ActionConstraint::In(list) => {
                    (0..ACTIONS.len()).filter(|i| list.contains(&names.actions[*i])).collect()
                }
            };
            let key = match policy.principal_constraint() {
                PrincipalConstraint::Any | PrincipalConstraint::Is(_) => None,
                PrincipalConstraint::Eq(e) | PrincipalConstraint::In(e) | PrincipalConstraint::IsIn(_, e) => Some(e),
            };
            for i in applies {
                match &key {
                    None => index[i].any_principal.push(policy.clone()),
                    Some(e) => index[i].by_entity.entry(e.clone()).or_default().push(policy.clone()),
                }
            }
        }
        PolicySet { schema, set, index, claims, files, warnings, digest, from_cache, names, schema_json }
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.set.policies().count()
    }

    /// Whether there are no policies.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every policy id with its file, sorted by id.
    pub fn policies(&self) -> Vec<(String, String)> {
        self.files.iter().map(|(id, file)| (id.clone(), file.clone())).collect()
    }

    /// Validation warnings (not fatal), with file, line and column.
    pub fn warnings(&self) -> &[Diag] {
        &self.warnings
    }

    /// SHA-256 over the policy files, the schema and brig's version: the cache key.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether this set was read from the cache.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// The claims the schema's `Claims` type declares (the ones passed to Cedar).
    pub fn declared_claims(&self) -> Vec<String> {
        self.claims.keys().cloned().collect()
    }

    fn candidates(
        &self,
        action: usize,
        principal_and_ancestors: &[EntityUid],
    ) -> Result<cedar_policy::PolicySet, cedar_policy::PolicySetError> {
        let idx = &self.index[action];
        let mut list: Vec<cedar_policy::Policy> = idx.any_principal.clone();
        for e in principal_and_ancestors {
            if let Some(more) = idx.by_entity.get(e) {
                list.extend(more.iter().cloned());
            }
        }
        // Each policy is filed once per action and the entities are distinct,
        // so ids cannot repeat; if they did, the error denies.
        cedar_policy::PolicySet::from_policies(list)
    }
}

fn schema_diag(file: &str, message: String) -> PolicyError {
    PolicyError::Schema(vec![Diag { file: file.to_string(), line: 0, column: 0, message }])
}

/// Parses the schema, checks it has what brig builds, and reads the `Claims` type.
fn parse_schema(file: &str, text: &str, names: &Names) -> Result<(Schema, BTreeMap<String, ClaimKind>, Value), PolicyError> {
    let (schema, _warnings) = Schema::from_cedarschema_str(text).map_err(|e| {
        PolicyError::Schema(vec![diag_of(&e, file, text, e.to_string())])
    })?;
    let mut missing = Vec::new();
    let types: HashSet<String> = schema.entity_types().map(ToString::to_string).collect();
    for t in [&names.subject, &names.tenant, &names.role, &names.image, &names.profile, &names.path] {
        if !types.contains(&t.to_string()) {
            missing.push(format!("entity type `{t}`"));
        }
    }
    let actions: HashSet<&EntityUid> = schema.actions().collect();
    for a in &names.actions {
        if !actions.contains(a) {
            missing.push(format!("action `{a}`"));
        }
    }
    let (fragment, _) = SchemaFragment::from_cedarschema_str(text).map_err(|e| {
        PolicyError::Schema(vec![diag_of(&e, file, text, e.to_string())])
    })?;
    let json = fragment.to_json_value().map_err(|e| schema_diag(file, e.to_string()))?;
    let claims = match json.pointer("/Brig/commonTypes/Claims/attributes").and_then(Value::as_object) {
        Some(attrs) => attrs
            .iter()
            .map(|(name, ty)| {
                let is_ip = ty.get("name").and_then(Value::as_str).is_some_and(|n| n == "ipaddr" || n.ends_with("::ipaddr"));
                (name.clone(), if is_ip { ClaimKind::IpAddr } else { ClaimKind::Json })
            })
            .collect(),
        None => {
            missing.push("common type `Brig::Claims` (a record)".into());
            BTreeMap::new()
        }
    };
    if !missing.is_empty() {
        return Err(PolicyError::Schema(
            missing.into_iter().map(|m| Diag { file: file.into(), line: 0, column: 0, message: format!("missing {m}") }).collect(),
        ));
    }
    Ok((schema, claims, json))
}

fn cache_trusted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(file), Some(Ok(dir))) = (fs::symlink_metadata(path), path.parent().map(fs::metadata)) else {
        return false;
    };
    // Written by the same user as the directory, writable by nobody else.
    file.is_file() && file.uid() == dir.uid() && file.mode() & 0o022 == 0 && dir.mode() & 0o022 == 0
}

fn read_cache(path: &Path, digest: &str) -> Option<PolicySet> {
    if !cache_trusted(path) {
        return None;
    }
    let bytes = fs::read(path).ok()?;
    let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
    if entry.format != CACHE_FORMAT || entry.digest != digest {
        return None;
    }
    let schema = Schema::from_json_value(entry.schema.clone()).ok()?;
    let set = cedar_policy::PolicySet::from_json_value(entry.policies).ok()?;
    let names = Names::new().ok()?;
    Some(PolicySet::assemble(schema, entry.schema, set, entry.claims, entry.files, entry.warnings, entry.digest, true, names))
}

fn write_cache(set: &PolicySet, path: &Path, dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| e.to_string())?;
    let entry = CacheEntry {
        format: CACHE_FORMAT.into(),
        digest: set.digest.clone(),
        schema: set.schema_json.clone(),
        policies: set.set.clone().to_json().map_err(|e| e.to_string())?,
        files: set.files.clone(),
        claims: set.claims.clone(),
        warnings: set.warnings.clone(),
    };
    let bytes = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
    crate::jwks::write_atomic(path, &bytes).map_err(|e| e.to_string())?;
    prune_cache(dir, path);
    Ok(())
}

/// Keeps the four most recent cache entries.
fn prune_cache(dir: &Path, keep: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<(SystemTime, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, p) in entries.into_iter().skip(4) {
        if p != keep {
            let _ = fs::remove_file(p);
        }
    }
}

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

/// The decision of one Cedar request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestDecision {
    /// `launch`, `exec`, `mount` or `egress`.
    pub action: String,
    /// What the request was about, e.g. `mount /var/lib/x at /in (read-only)`.
    pub subject: String,
    /// Cedar's decision, and no errors.
    pub allowed: bool,
    /// Policies that determined it (permits when allowed, forbids when denied).
    pub determining_policies: Vec<String>,
    /// Evaluation errors (each one denies).
    pub errors: Vec<String>,
}

/// The decision on a launch or an exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Every request allowed, no errors.
    pub allowed: bool,
    /// Policy ids: the permits of every request when allowed; the forbids
    /// that denied when denied (empty when nothing permitted).
    pub determining_policies: Vec<String>,
    /// Errors on the way (entity/context building, policy evaluation).
    pub errors: Vec<String>,
    /// One line for people: what was decided and why.
    pub reason: String,
    /// Each Cedar request and its decision (for `brig policy explain`).
    pub requests: Vec<RequestDecision>,
}

impl Decision {
    fn deny_with_error(error: String) -> Decision {
        Decision {
            allowed: false,
            determining_policies: Vec::new(),
            reason: format!("denied: {error}"),
            errors: vec![error],
            requests: Vec::new(),
        }
    }

    /// A multi-line report: the decision, each request, its policies and errors.
    pub fn explain(&self) -> String {
        let mut out = format!("decision: {}\nreason: {}\n", if self.allowed { "allow" } else { "deny" }, self.reason);
        if !self.determining_policies.is_empty() {
            out.push_str(&format!("determining policies: {}\n", self.determining_policies.join(", ")));
        }
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        for r in &self.requests {
            out.push_str(&format!(
                "  [{}] {}: {}",
                if r.allowed { "allow" } else { "deny " },
                r.action,
                r.subject
            ));
            if !r.determining_policies.is_empty() {
                out.push_str(&format!(" — by {}", r.determining_policies.join(", ")));
            }
            out.push('\n');
            for e in &r.errors {
                out.push_str(&format!("      error: {e}\n"));
            }
        }
        out
    }
}

/// Replaces every path segment of `source` equal to `tenant` by `{tenant}`.
/// `None` when that cannot be done unambiguously: no tenant, a tenant that
/// is empty, `.`, `..` or contains `/`, or a source already holding `{` or `}`.
pub fn tenant_source(source: &str, tenant: Option<&str>) -> Option<String> {
    let tenant = tenant?;
    if tenant.is_empty() || tenant == "." || tenant == ".." || tenant.contains('/') {
        return None;
    }
    if source.contains('{') || source.contains('}') {
        return None;
    }
    Some(source.split('/').map(|seg| if seg == tenant { TENANT_PLACEHOLDER } else { seg }).collect::<Vec<_>>().join("/"))
}

fn ip_json(cidr: &str) -> Value {
    json!({"__extn": {"fn": "ip", "arg": cidr}})
}

fn egress_json(r: &EgressRule) -> Value {
    json!({"cidr": ip_json(&r.cidr), "port": r.port, "proto": r.proto})
}

fn mount_json(m: &MountInfo) -> Value {
    json!({"source": m.source, "destination": m.destination, "read_write": m.read_write, "kind": m.kind})
}

fn image_json(c: &LaunchContext) -> Value {
    let mut m = Map::new();
    if let Some(d) = &c.image.digest {
        m.insert("digest".into(), json!(d));
    }
    if let Some(n) = &c.image.name {
        m.insert("name".into(), json!(n));
    }
    Value::Object(m)
}

/// Ancestors of a host path, nearest first: `/a/b/c` → `/a/b`, `/a`, `/`.
fn path_ancestors(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = p.trim_end_matches('/').to_string();
    while let Some(i) = cur.rfind('/') {
        cur.truncate(i);
        out.push(if cur.is_empty() { "/".to_string() } else { cur.clone() });
        if cur.is_empty() {
            break;
        }
    }
    out
}

struct Builder<'a> {
    set: &'a PolicySet,
    token: &'a VerifiedToken,
    context: &'a LaunchContext,
    principal: EntityUid,
    ancestry: Vec<EntityUid>,
    resource: EntityUid,
    claims: Value,
}

impl<'a> Builder<'a> {
    fn new(set: &'a PolicySet, token: &'a VerifiedToken, context: &'a LaunchContext) -> Builder<'a> {
        let n = &set.names;
        let principal = EntityUid::from_type_name_and_id(n.subject.clone(), EntityId::new(token.principal_id()));
        let mut ancestry = vec![principal.clone()];
        if let Some(t) = &token.tenant {
            ancestry.push(EntityUid::from_type_name_and_id(n.tenant.clone(), EntityId::new(t)));
        }
        for r in &token.roles {
            let uid = EntityUid::from_type_name_and_id(n.role.clone(), EntityId::new(r));
            // A role listed twice must not pull its policies in twice.
            if !ancestry.contains(&uid) {
                ancestry.push(uid);
            }
        }
        let image_id = context.image.digest.as_deref().or(context.image.name.as_deref()).unwrap_or("");
        let resource = EntityUid::from_type_name_and_id(n.image.clone(), EntityId::new(image_id));
        let mut claims = Map::new();
        for (name, value) in &token.claims {
            match set.claims.get(name) {
                Some(_) if value.is_null() => {}
                Some(ClaimKind::Json) => {
                    claims.insert(name.clone(), value.clone());
                }
                Some(ClaimKind::IpAddr) => {
                    claims.insert(name.clone(), value.as_str().map_or_else(|| value.clone(), ip_json));
                }
                None => {}
            }
        }
        Builder { set, token, context, principal, ancestry, resource, claims: Value::Object(claims) }
    }

    fn entities(&self, with_paths: bool) -> Result<Entities, String> {
        let n = &self.set.names;
        let t = self.token;
        let c = self.context;
        let mut list = Vec::new();
        let s = |v: &str| RestrictedExpression::new_string(v.to_string());
        let mut attrs = HashMap::from([
            ("issuer".to_string(), s(&t.issuer)),
            ("subject".to_string(), s(&t.subject)),
            ("roles".to_string(), RestrictedExpression::new_set(t.roles.iter().map(|r| s(r)))),
        ]);
        if let Some(tenant) = &t.tenant {
            attrs.insert("tenant".into(), s(tenant));
        }
        if let Some(d) = &t.image_digest {
            attrs.insert("image_digest".into(), s(d));
        }
        let parents: HashSet<EntityUid> = self.ancestry[1..].iter().cloned().collect();
        list.push(Entity::new(self.principal.clone(), attrs, parents.clone()).map_err(|e| e.to_string())?);
        for p in parents {
            list.push(Entity::new_no_attrs(p, HashSet::new()));
        }
        let profile = EntityUid::from_type_name_and_id(n.profile.clone(), EntityId::new(&c.profile));
        let mut image_attrs = HashMap::from([("profile".to_string(), s(&c.profile))]);
        if let Some(d) = &c.image.digest {
            image_attrs.insert("digest".into(), s(d));
        }
        if let Some(name) = &c.image.name {
            image_attrs.insert("name".into(), s(name));
        }
        list.push(
            Entity::new(self.resource.clone(), image_attrs, HashSet::from([profile.clone()])).map_err(|e| e.to_string())?,
        );
        list.push(Entity::new_no_attrs(profile, HashSet::new()));
        if with_paths {
            let mut seen = HashSet::new();
            for m in c.mounts.iter().filter(|m| m.reaches_host()) {
                let mut chain = vec![m.source.clone()];
                if m.source.starts_with('/') {
                    chain.extend(path_ancestors(&m.source));
                }
                for (i, p) in chain.iter().enumerate() {
                    if !seen.insert(p.clone()) {
                        break;
                    }
                    let uid = EntityUid::from_type_name_and_id(n.path.clone(), EntityId::new(p));
                    let parents = chain
                        .get(i + 1)
                        .map(|parent| EntityUid::from_type_name_and_id(n.path.clone(), EntityId::new(parent)))
                        .into_iter()
                        .collect();
                    list.push(Entity::new(uid, HashMap::from([("path".to_string(), s(p))]), parents).map_err(|e| e.to_string())?);
                }
            }
        }
        Entities::from_entities(list, Some(&self.set.schema)).map_err(|e| e.to_string())
    }

    fn request_json(&self) -> Map<String, Value> {
        let c = self.context;
        let mut m = Map::new();
        m.insert("profile".into(), json!(c.profile));
        m.insert("image".into(), image_json(c));
        m.insert("mounts".into(), Value::Array(c.mounts.iter().map(mount_json).collect()));
        m.insert("capabilities".into(), json!(c.capabilities));
        m.insert("host_namespaces".into(), json!(c.host_namespaces));
        m.insert("joined_namespaces".into(), json!(c.joined_namespaces));
        m.insert("devices".into(), json!(c.devices));
        m.insert("resources".into(), serde_json::to_value(&c.resources).unwrap_or_else(|_| json!({})));
        m.insert("egress".into(), Value::Array(c.egress.iter().map(egress_json).collect()));
        if let Some(t) = c.timeout_secs {
            m.insert("timeout_secs".into(), json!(t));
        }
        m.insert("inputs".into(), json!(c.inputs));
        m.insert("outputs".into(), json!(c.outputs));
        m.insert(
            "annotations".into(),
            Value::Array(c.annotations.iter().map(|(k, v)| json!({"key": k, "value": v})).collect()),
        );
        m.insert("annotation_keys".into(), json!(c.annotations.keys().collect::<Vec<_>>()));
        m.insert("user".into(), json!({"uid": c.user.uid, "gid": c.user.gid}));
        m.insert("claims".into(), self.claims.clone());
        m
    }

    fn decide(
        &self,
        action: usize,
        resource: EntityUid,
        context: Value,
        entities: &Entities,
        subject: String,
    ) -> RequestDecision {
        let n = &self.set.names;
        let action_uid = &n.actions[action];
        let deny = |error: String| RequestDecision {
            action: ACTIONS[action].into(),
            subject: subject.clone(),
            allowed: false,
            determining_policies: Vec::new(),
            errors: vec![error],
        };
        let context = match Context::from_json_value(context, Some((&self.set.schema, action_uid))) {
            Ok(c) => c,
            Err(e) => return deny(format!("building the `{}` context: {e}", ACTIONS[action])),
        };
        let request =
            match Request::new(self.principal.clone(), action_uid.clone(), resource, context, Some(&self.set.schema)) {
                Ok(r) => r,
                Err(e) => return deny(format!("building the `{}` request: {e}", ACTIONS[action])),
            };
        let policies = match self.set.candidates(action, &self.ancestry) {
            Ok(p) => p,
            Err(e) => return deny(format!("selecting the `{}` policies: {e}", ACTIONS[action])),
        };
        let response = Authorizer::new().is_authorized(&request, &policies, entities);
        let mut determining: Vec<String> = response.diagnostics().reason().map(ToString::to_string).collect();
        determining.sort();
        let errors: Vec<String> = response.diagnostics().errors().map(ToString::to_string).collect();
        RequestDecision {
            action: ACTIONS[action].into(),
            subject,
            allowed: response.decision() == cedar_policy::Decision::Allow && errors.is_empty(),
            determining_policies: determining,
            errors,
        }
    }
}

fn describe_mount(m: &MountInfo) -> String {
    format!(
        "`{}` at `{}` ({}, {})",
        m.source,
        m.destination,
        m.kind,
        if m.read_write { "read-write" } else { "read-only" }
    )
}

/// Decides a launch or an exec: `token` wants `action` with `context`.
/// Any error denies; no matching `permit` denies; a matching `forbid` denies.
pub fn authorize(policies: &PolicySet, token: &VerifiedToken, action: Action, context: &LaunchContext) -> Decision {
    // Policies judge normalized host paths, whoever built the context:
    // `/jobs/acme/out/../../globex` must not pass for a path under `acme`.
    let normalized;
    let context = if context.mounts.iter().any(|m| m.source.starts_with('/') && normalize(Path::new(&m.source)) != m.source)
    {
        let mut c = context.clone();
        for m in &mut c.mounts {
            if m.source.starts_with('/') {
                m.source = normalize(Path::new(&m.source));
            }
        }
        normalized = c;
        &normalized
    } else {
        context
    };
    let b = Builder::new(policies, token, context);
    let entities = match b.entities(action == Action::Launch) {
        Ok(e) => e,
        Err(e) => return Decision::deny_with_error(format!("building the entities: {e}")),
    };
    let mut requests = Vec::new();
    let image_desc = format!(
        "image `{}` with profile `{}`",
        context.image.digest.as_deref().or(context.image.name.as_deref()).unwrap_or("<unknown>"),
        context.profile
    );
    match action {
        Action::Launch => {
            requests.push(b.decide(LAUNCH, b.resource.clone(), Value::Object(b.request_json()), &entities, image_desc));
            for m in context.mounts.iter().filter(|m| m.reaches_host()) {
                let mut ctx = Map::new();
                ctx.insert("mount".into(), mount_json(m));
                if let Some(ts) = tenant_source(&m.source, token.tenant.as_deref()) {
                    ctx.insert("tenant_source".into(), json!(ts));
                }
                ctx.insert("input".into(), json!(context.inputs.contains(&m.destination)));
                ctx.insert("output".into(), json!(context.outputs.contains(&m.destination)));
                ctx.insert("profile".into(), json!(context.profile));
                ctx.insert("image".into(), image_json(context));
                ctx.insert("claims".into(), b.claims.clone());
                let path = EntityUid::from_type_name_and_id(policies.names.path.clone(), EntityId::new(&m.source));
                requests.push(b.decide(MOUNT, path, Value::Object(ctx), &entities, describe_mount(m)));
            }
            for r in &context.egress {
                let ctx = json!({
                    "rule": egress_json(r),
                    "profile": context.profile,
                    "image": image_json(context),
                    "claims": b.claims,
                });
                let desc = format!("`{}:{}/{}`", r.cidr, r.port, r.proto);
                requests.push(b.decide(EGRESS, b.resource.clone(), ctx, &entities, desc));
            }
        }
        Action::Exec => {
            let Some(exec) = &context.exec else {
                return Decision::deny_with_error("exec request without the exec's process".into());
            };
            let mut ctx = b.request_json();
            ctx.insert(
                "exec".into(),
                json!({
                    "command": exec.args.first().cloned().unwrap_or_default(),
                    "args": exec.args,
                    "command_line": exec.args.join(" "),
                    "cwd": exec.cwd,
                    "uid": exec.uid,
                    "tty": exec.tty,
                    "capabilities": exec.capabilities,
                }),
            );
            let desc = format!("`{}` in {image_desc}", exec.args.join(" "));
            requests.push(b.decide(EXEC, b.resource.clone(), Value::Object(ctx), &entities, desc));
        }
    }
    combine(requests)
}

fn combine(requests: Vec<RequestDecision>) -> Decision {
    let allowed = requests.iter().all(|r| r.allowed);
    let mut determining = Vec::new();
    let mut errors = Vec::new();
    let mut denials = Vec::new();
    for r in &requests {
        errors.extend(r.errors.iter().map(|e| format!("{} {}: {e}", r.action, r.subject)));
        if allowed || !r.allowed {
            for p in &r.determining_policies {
                if !determining.contains(p) {
                    determining.push(p.clone());
                }
            }
        }
        if !r.allowed {
            denials.push(if !r.errors.is_empty() {
                format!("{} {}: an error denies ({})", r.action, r.subject, r.errors.join("; "))
            } else if r.determining_policies.is_empty() {
                format!("{} {}: no policy permits it", r.action, r.subject)
            } else {
                format!("{} {}: forbidden by {}", r.action, r.subject, quoted(&r.determining_policies))
            });
        }
    }
    let reason = if allowed {
        format!("allowed by {}", quoted(&determining))
    } else {
        let more = denials.len().saturating_sub(1);
        let first = denials.into_iter().next().unwrap_or_else(|| "nothing was decided".into());
        if more > 0 {
            format!("denied: {first} (and {more} more denied)")
        } else {
            format!("denied: {first}")
        }
    };
    Decision { allowed, determining_policies: determining, errors, reason, requests }
}

fn quoted(ids: &[String]) -> String {
    ids.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}
