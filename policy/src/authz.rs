//! Cedar authorization: loading a policy directory (parse, strict
//! validation, the principal-scope index, the on-disk cache). Decisions are
//! in `decide.rs`.
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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use cedar_policy::{
    ActionConstraint, Authorizer, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PrincipalConstraint, Schema,
    SchemaFragment, ValidationMode, Validator,
};
use miette::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::cache::{self, Section, Span};
use crate::claims::{declared_claims, ClaimAttr};
use crate::config::PolicyConfig;
use crate::usage::ContextUse;

pub use crate::decide::{
    authorize, tenant_source, Decision, RequestDecision, CONTAINER_PLACEHOLDER, TENANT_PLACEHOLDER,
};

/// How deep `(`, `[` and `{` may nest in a policy file. Real policies nest a
/// handful of levels; Cedar's parser recurses per level (a few hundred
/// levels overflowed the stack and aborted the launch).
pub const MAX_NESTING: usize = 32;

/// How many operators (`.`, `&&`, `||`, `!`, `==`, `<`, `+`, `in`, `has`,
/// `like`, `is`, `if`, ...) one policy may hold. A chain of them nests
/// without brackets (`a || b || c` is `(a || b) || c`), and Cedar's
/// validator, evaluator and the code that frees a policy recurse once per
/// level: at about 3,000 levels the validator stopped checking types and
/// called the policy valid, and at 50,000 freeing it overflowed the stack
/// and aborted brig. Generated policies that list many values should use a
/// set (`[...].contains(x)`), whose elements are no operators.
pub const MAX_OPERATORS: usize = 1000;

/// What [`nested_too_deep_in`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TooDeep {
    Brackets,
    Ifs,
    Operators,
}

impl TooDeep {
    fn message(self) -> String {
        match self {
            TooDeep::Brackets => format!("brackets nested more than {MAX_NESTING} deep"),
            TooDeep::Ifs => format!("more than {MAX_NESTING} `if`s in one policy (an `else if` chain nests)"),
            TooDeep::Operators => format!(
                "more than {MAX_OPERATORS} operators in one policy (a chain of them nests; list many values in a set: `[...].contains(x)`)"
            ),
        }
    }
}

/// The line and column (1-based) where `text` first nests brackets deeper
/// than [`MAX_NESTING`] (with `angles`, `<` and `>` too: a schema's type
/// parameters), or where one policy (up to a `;` outside brackets) holds
/// more than MAX_NESTING `if`s (an `else if` chain nests without brackets)
/// or, for policies (not `angles`), more than [`MAX_OPERATORS`] operators,
/// outside string literals and `//` comments.
fn nested_too_deep_in(text: &str, angles: bool) -> Option<(usize, usize, TooDeep)> {
    let (mut depth, mut ifs, mut ops, mut line, mut column) = (0usize, 0usize, 0usize, 1usize, 0usize);
    let (mut in_string, mut escaped, mut in_comment) = (false, false, false);
    let mut previous = ' ';
    // The last character outside strings, comments and white space: tells
    // a negative number (`[-1, -2]`) from a subtraction.
    let mut last_token_char = '[';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        column += 1;
        let before = std::mem::replace(&mut previous, c);
        if c == '\n' {
            (line, column, in_comment) = (line + 1, 0, false);
            continue;
        }
        if in_comment {
            continue;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        let word = |ch: char| ch.is_alphanumeric() || ch == '_';
        // A two-character operator (`&&`, `==`, `<=`, ...) counts once: its
        // second character is taken here.
        let operator = match c {
            '&' | '|' => Some(c),
            '!' | '=' => Some('='),
            '<' | '>' if !angles => Some('='),
            _ => None,
        };
        if let Some(second) = operator {
            if chars.peek() == Some(&second) {
                chars.next();
                column += 1;
                previous = second;
            }
            ops += 1;
        }
        let after_token = last_token_char;
        if !c.is_whitespace() {
            last_token_char = c;
        }
        match c {
            '"' => in_string = true,
            '/' if chars.peek() == Some(&'/') => in_comment = true,
            // An index (`context["a"]["b"]`) chains as `.a.b` does; a set
            // literal costs one however many elements it has.
            '[' => {
                depth += 1;
                ops += 1;
            }
            '(' | '{' => depth += 1,
            '<' if angles => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '>' if angles => depth = depth.saturating_sub(1),
            ';' if depth == 0 => (ifs, ops) = (0, 0),
            // A minus that starts a number after `[`, `,`, `(` or an
            // operator is part of the literal (`[-1, -2]`), not a link.
            '-' if chars.peek().is_some_and(char::is_ascii_digit) && "[,(=<>!&|+-*:".contains(after_token) => {}
            '.' | '+' | '-' | '*' => ops += 1,
            c if word(c) && !word(before) => {
                let token: String = std::iter::once(c).chain(chars.clone().take_while(|&n| word(n))).take(5).collect();
                if matches!(token.as_str(), "if" | "in" | "has" | "like" | "is") {
                    ops += 1;
                }
                if token == "if" {
                    ifs += 1;
                    if ifs > MAX_NESTING {
                        return Some((line, column, TooDeep::Ifs));
                    }
                }
            }
            _ => {}
        }
        if depth > MAX_NESTING {
            return Some((line, column, TooDeep::Brackets));
        }
        if !angles && ops > MAX_OPERATORS {
            return Some((line, column, TooDeep::Operators));
        }
    }
    None
}

fn nested_too_deep(text: &str) -> Option<(usize, usize, TooDeep)> {
    nested_too_deep_in(text, false)
}

/// The built-in schema (`policy/brig.cedarschema`).
pub const BUILTIN_SCHEMA: &str = include_str!("../brig.cedarschema");
/// Name of a policy directory's own schema.
pub const SCHEMA_FILE: &str = "brig.cedarschema";
/// File name suffix of a cache entry.
const CACHE_SUFFIX: &str = "cache";
/// Version of the on-disk cache format; part of the cache key.
const CACHE_FORMAT: &str = "brig-policy-cache/5";

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
    /// The thread loading the policies in the background failed.
    #[error("loading the policies in the background: {0}")]
    Loader(String),
    /// A file that looks meant as a policy but would not be loaded (a
    /// `forbid` in `deny.Cedar` would silently not apply).
    #[error("`{}` would not be loaded (policy files end in `.cedar`, in lower case): rename or remove it", .0.display())]
    NotLoaded(PathBuf),
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
pub(crate) const ACTIONS: [&str; 4] = ["launch", "exec", "mount", "egress"];
pub(crate) const LAUNCH: usize = 0;
pub(crate) const EXEC: usize = 1;
pub(crate) const MOUNT: usize = 2;
pub(crate) const EGRESS: usize = 3;

/// Entity type names and action ids, parsed once per process.
#[derive(Debug)]
pub(crate) struct Names {
    pub(crate) subject: EntityTypeName,
    pub(crate) tenant: EntityTypeName,
    pub(crate) role: EntityTypeName,
    pub(crate) image: EntityTypeName,
    pub(crate) profile: EntityTypeName,
    pub(crate) path: EntityTypeName,
    pub(crate) actions: [EntityUid; 4],
}

pub(crate) const SUBJECT: &str = "Brig::Subject";
pub(crate) const TENANT: &str = "Brig::Tenant";
pub(crate) const ROLE: &str = "Brig::Role";

impl Names {
    fn new() -> Result<Names, String> {
        let t = |s: &str| EntityTypeName::from_str(s).map_err(|e| e.to_string());
        let action_ty = t("Brig::Action")?;
        let a = |id: &str| EntityUid::from_type_name_and_id(action_ty.clone(), EntityId::new(id));
        Ok(Names {
            subject: t(SUBJECT)?,
            tenant: t(TENANT)?,
            role: t(ROLE)?,
            image: t("Brig::Image")?,
            profile: t("Brig::Profile")?,
            path: t("Brig::Path")?,
            actions: [a(ACTIONS[0]), a(ACTIONS[1]), a(ACTIONS[2]), a(ACTIONS[3])],
        })
    }

    pub(crate) fn get() -> Result<&'static Names, String> {
        static NAMES: OnceLock<Result<Names, String>> = OnceLock::new();
        NAMES.get_or_init(Names::new).as_ref().map_err(Clone::clone)
    }
}

/// An entity a policy's principal scope names: `(type, id)`.
pub(crate) type EntityKey = (String, String);

/// Where a bucket's policies come from.
#[derive(Clone)]
enum Source {
    /// Parsed and validated in this process.
    Parsed(Vec<Policy>),
    /// From the cache: a JSON array of `[id, EST]`, read and parsed on first use.
    Cached(Section),
}

/// Policies that apply to one action and one principal scope, made into a
/// Cedar policy set on first use.
pub(crate) struct Bucket {
    source: Source,
    set: OnceLock<Result<cedar_policy::PolicySet, String>>,
}

impl Clone for Bucket {
    fn clone(&self) -> Self {
        Bucket { source: self.source.clone(), set: OnceLock::new() }
    }
}

impl Bucket {
    fn new(source: Source) -> Bucket {
        Bucket { source, set: OnceLock::new() }
    }

    fn is_empty(&self) -> bool {
        match &self.source {
            Source::Parsed(p) => p.is_empty(),
            Source::Cached(section) => section.is_empty(),
        }
    }

    pub(crate) fn set(&self) -> Result<&cedar_policy::PolicySet, String> {
        self.set
            .get_or_init(|| {
                let policies = match &self.source {
                    Source::Parsed(p) => p.clone(),
                    Source::Cached(section) => {
                        let blob = section.bytes()?;
                        let list: Vec<(String, Value)> =
                            serde_json::from_slice(blob).map_err(|e| format!("cached policies: {e}"))?;
                        let mut out = Vec::with_capacity(list.len());
                        for (id, est) in list {
                            let policy = Policy::from_json(Some(PolicyId::new(&id)), est)
                                .map_err(|e| format!("cached policy `{id}`: {e}"))?;
                            out.push(policy);
                        }
                        out
                    }
                };
                cedar_policy::PolicySet::from_policies(policies).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The bucket as the cache stores it: a JSON array of `[id, EST]`.
    fn to_blob(&self) -> Result<Vec<u8>, String> {
        match &self.source {
            Source::Cached(section) => section.bytes().map(<[u8]>::to_vec),
            Source::Parsed(list) => {
                let mut out = Vec::with_capacity(list.len());
                for p in list {
                    out.push((p.id().to_string(), p.to_json().map_err(|e| e.to_string())?));
                }
                serde_json::to_vec(&out).map_err(|e| e.to_string())
            }
        }
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
/// exactly its Tenant and Roles, which have none. Cedar's decision is also
/// compositional — any satisfied `forbid` denies, else any satisfied `permit`
/// allows — so the buckets are evaluated separately and their answers joined
/// (`decide.rs`).
#[derive(Clone)]
pub(crate) struct ActionIndex {
    any: Arc<Bucket>,
    by_entity: EntityIndex,
}

#[derive(Clone)]
enum EntityIndex {
    Parsed(HashMap<EntityKey, Arc<Bucket>>),
    /// A sorted table of entity → bucket span (`cache.rs`), and the
    /// buckets already looked up.
    Cached {
        table: Section,
        body: cache::Body,
        found: Arc<Mutex<HashMap<Span, Arc<Bucket>>>>,
    },
}

/// The `Brig::Path` ids the policies mention.
#[derive(Clone)]
pub(crate) enum PathSet {
    Parsed(HashSet<String>),
    /// A sorted table of paths (`cache.rs`).
    Cached(Section),
}

impl PathSet {
    pub(crate) fn contains(&self, path: &str) -> Result<bool, String> {
        match self {
            PathSet::Parsed(set) => Ok(set.contains(path)),
            PathSet::Cached(table) => Ok(cache::table_get(table.bytes()?, path.as_bytes())?.is_some()),
        }
    }
}

/// What only the authoring tools and diagnostics read.
#[derive(Clone, Serialize, Deserialize)]
struct Meta {
    /// Policy id → file.
    files: BTreeMap<String, String>,
    warnings: Vec<Diag>,
    /// The schema in Cedar's JSON format.
    schema_json: String,
}

/// A loaded, validated policy directory.
pub struct PolicySet {
    pub(crate) index: Vec<ActionIndex>,
    pub(crate) claims: BTreeMap<String, ClaimAttr>,
    /// Every `Brig::Path` id the policies mention: the only ancestors of a
    /// mount source that a policy can observe (see `decide.rs`).
    pub(crate) paths: PathSet,
    /// The `context` attributes the policies can read (`usage.rs`): the
    /// only ones a request's context needs.
    pub(crate) context_use: ContextUse,
    count: usize,
    /// Set when parsed; read from `meta_section` on first use when cached.
    meta: OnceLock<Result<Meta, String>>,
    meta_section: Option<Section>,
    digest: String,
    from_cache: bool,
    /// Built on demand, for [`PolicySet::validate_requests`].
    schema: OnceLock<Result<Schema, String>>,
    pub(crate) validate_requests: bool,
}

impl Clone for PolicySet {
    fn clone(&self) -> Self {
        PolicySet {
            index: self.index.clone(),
            claims: self.claims.clone(),
            paths: self.paths.clone(),
            context_use: self.context_use.clone(),
            count: self.count,
            // A cached set reads its metadata again rather than copy a read error.
            meta: match self.meta.get() {
                Some(m) if m.is_ok() || self.meta_section.is_none() => OnceLock::from(m.clone()),
                _ => OnceLock::new(),
            },
            meta_section: self.meta_section.clone(),
            digest: self.digest.clone(),
            from_cache: self.from_cache,
            schema: OnceLock::new(),
            validate_requests: self.validate_requests,
        }
    }
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

/// The header of a cache entry (`cache.rs`); spans are in its body.
#[derive(Serialize, Deserialize)]
struct CacheHeader {
    format: String,
    digest: String,
    claims: BTreeMap<String, ClaimAttr>,
    count: usize,
    meta: Span,
    paths: Span,
    /// [`PolicySet::context_use`]; `None` for every attribute.
    context: Option<Vec<String>>,
    index: Vec<CachedAction>,
}

#[derive(Serialize, Deserialize)]
struct CachedAction {
    /// The unscoped bucket.
    any: Span,
    /// The table of entity → bucket.
    by_entity: Span,
}

struct Sources {
    /// `(file name, text)`, sorted by name.
    policies: Vec<(String, String)>,
    /// `(file name, text)` of the schema; `None` for the built-in one.
    schema: Option<(String, String)>,
}

/// A source file: the name it is known by (in the digest and in messages)
/// and the directory entry's own path (a name that is not UTF-8 is shown
/// lossily, but the file read is always the entry found).
type SourceFile = (String, PathBuf);

/// The policy directory's files: `(policy files sorted by name, the schema
/// file)`, with the same rules for [`read_sources`] and [`stream_digest`].
fn list_sources(dir: &Path) -> Result<(Vec<SourceFile>, Option<SourceFile>), PolicyError> {
    let read_err = |path: &Path, source| PolicyError::Read { path: path.to_path_buf(), source };
    let mut policies = Vec::new();
    let mut schema = None;
    for entry in fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if name.ends_with(".cedar") {
            policies.push((name, entry.path()));
        } else if name.to_ascii_lowercase().ends_with(".cedar") {
            return Err(PolicyError::NotLoaded(entry.path()));
        } else if name == SCHEMA_FILE {
            schema = Some((name, entry.path()));
        }
    }
    if policies.is_empty() {
        return Err(PolicyError::NoPolicies(dir.to_path_buf()));
    }
    policies.sort();
    Ok((policies, schema))
}

fn read_sources(dir: &Path) -> Result<Sources, PolicyError> {
    let (files, schema_file) = list_sources(dir)?;
    let read = |(name, path): SourceFile| {
        brig_files::read_to_string(&path).map(|text| (name, text)).map_err(|source| PolicyError::Read { path, source })
    };
    let schema = schema_file.map(read).transpose()?;
    let policies = files.into_iter().map(read).collect::<Result<Vec<_>, _>>()?;
    Ok(Sources { policies, schema })
}

/// The fields of a content digest, in order ([`content_digest`]).
struct DigestWriter(Sha256);

impl DigestWriter {
    fn new() -> DigestWriter {
        let mut w = DigestWriter(Sha256::new());
        w.field(CACHE_FORMAT.as_bytes());
        w.field(env!("CARGO_PKG_VERSION").as_bytes());
        // A cache entry keeps the context attributes `usage.rs` read: an
        // entry written by another version of that reader is not used.
        w.field(crate::usage::READER_VERSION.as_bytes());
        w
    }

    fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// [`content_digest`] of what `dir` holds now, read in chunks through one
/// small buffer instead of into memory: a launch whose set is in the cache
/// needs only the digest (a 1,000-policy set is ≈ 200 KB of text). `None`
/// when a file's size changed while it was read (the caller then reads the
/// texts, and their digest is the one that counts).
fn stream_digest(dir: &Path) -> Result<Option<String>, PolicyError> {
    use std::io::Read;
    let read_err = |path: &Path, source| PolicyError::Read { path: path.to_path_buf(), source };
    let (files, schema) = list_sources(dir)?;
    let mut w = DigestWriter::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut file_field = |w: &mut DigestWriter, path: &Path| -> Result<bool, PolicyError> {
        let (mut file, meta) = brig_files::open_regular(path).map_err(|e| read_err(path, e))?;
        let len = meta.len();
        w.0.update(len.to_le_bytes());
        let mut total = 0u64;
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(path, e)),
            };
            w.0.update(&buf[..n]);
            total += n as u64;
        }
        Ok(total == len)
    };
    match &schema {
        Some((name, path)) => {
            w.field(name.as_bytes());
            if !file_field(&mut w, path)? {
                return Ok(None);
            }
        }
        None => w.field(BUILTIN_SCHEMA.as_bytes()),
    }
    for (name, path) in &files {
        w.field(name.as_bytes());
        if !file_field(&mut w, path)? {
            return Ok(None);
        }
    }
    Ok(Some(w.finish()))
}

/// What identifies a policy set in the cache: the cache format, brig's
/// version, the schema (file name and text, or the built-in one) and every
/// policy file's name and text, each length-prefixed.
fn content_digest(sources: &Sources) -> String {
    let mut w = DigestWriter::new();
    match &sources.schema {
        Some((name, text)) => {
            w.field(name.as_bytes());
            w.field(text.as_bytes());
        }
        None => w.field(BUILTIN_SCHEMA.as_bytes()),
    }
    for (name, text) in &sources.policies {
        w.field(name.as_bytes());
        w.field(text.as_bytes());
    }
    w.finish()
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
        let Some(cache_dir) = cache_dir else { return PolicySet::from_sources(read_sources(dir)?) };
        let cache_file = |digest: &str| cache_dir.join(format!("{digest}.{CACHE_SUFFIX}"));
        if let Some(digest) = stream_digest(dir)? {
            if let Some(set) = read_cache(&cache_file(&digest), &digest) {
                return Ok(set);
            }
        }
        // A miss: the texts read now are what is parsed, and their digest
        // (not the streamed one: a file may have changed since) names the
        // entry written.
        let set = PolicySet::from_sources(read_sources(dir)?)?;
        // A cache that cannot be written only costs a parse next time.
        let _ = write_cache(&set, &cache_file(set.digest()), cache_dir);
        Ok(set)
    }

    /// Does now, on this thread, the one-time work a first decision would
    /// otherwise do: Cedar's extension functions and name validators, brig's
    /// entity type names, and the unscoped policies of each action (the
    /// scoped ones depend on the principal).
    ///
    /// Then one decision on a made-up launch (a principal no token can name,
    /// no claims, one read-only bind mount): a process's first decision pays
    /// for faulting in the code and lazy state of entity, context and
    /// request building and of Cedar's evaluator (≈ 0.5 ms of a launch
    /// here), and this thread can pay it while the launch's does other work.
    /// Deciding has no side effect; the answer is dropped.
    pub fn warm(&self) {
        let _ = Authorizer::new();
        let _ = Names::get();
        for a in &self.index {
            let _ = a.any.set();
        }
        let token = crate::token::VerifiedToken {
            issuer: String::new(),
            subject: String::new(),
            audience: Vec::new(),
            jti: None,
            expires_at: SystemTime::UNIX_EPOCH,
            issued_at: None,
            tenant: None,
            roles: Vec::new(),
            image_digest: None,
            algorithm: String::new(),
            key_id: None,
            claims: serde_json::Map::new(),
        };
        let context = crate::context::LaunchContext {
            profile: String::new(),
            mounts: vec![crate::context::MountInfo {
                source: "/".into(),
                destination: "/".into(),
                read_write: false,
                kind: "bind".into(),
            }],
            ..Default::default()
        };
        let _ = crate::decide::authorize(self, &token, crate::Action::Launch, &context);
    }

    /// Parses and validates policies given in memory: `(file name, text)`
    /// pairs and an optional schema text (else the built-in one).
    pub fn from_texts(policies: &[(String, String)], schema: Option<&str>) -> Result<PolicySet, PolicyError> {
        let mut policies = policies.to_vec();
        policies.sort();
        let schema = schema.map(|s| (SCHEMA_FILE.to_string(), s.to_string()));
        PolicySet::from_sources(Sources { policies, schema })
    }

    /// Also checks every request and its entities against the schema with
    /// Cedar's own request validation (slower; the tests turn it on to show
    /// that what brig builds conforms).
    pub fn validate_requests(mut self, on: bool) -> PolicySet {
        self.validate_requests = on;
        self
    }

    pub(crate) fn schema(&self) -> Result<&Schema, String> {
        self.schema
            .get_or_init(|| {
                let json: Value = serde_json::from_str(&self.meta()?.schema_json).map_err(|e| e.to_string())?;
                Schema::from_json_value(json).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn from_sources(sources: Sources) -> Result<PolicySet, PolicyError> {
        let digest = content_digest(&sources);
        let names = Names::get().map_err(|m| schema_diag(SCHEMA_FILE, m))?;
        let (schema, claims, schema_json) = parse_schema(sources.schema.as_ref())?;

        let mut parse_errors = Vec::new();
        let mut set = cedar_policy::PolicySet::new();
        let mut files = BTreeMap::new();
        for (file, text) in &sources.policies {
            if let Some((line, column, why)) = nested_too_deep(text) {
                parse_errors.push(Diag {
                    file: file.clone(),
                    line,
                    column,
                    message: format!(
                        "{}: refused before parsing (Cedar takes stack for every level, and a deep enough policy would crash the launch)",
                        why.message()
                    ),
                });
                continue;
            }
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
            let mut list: Vec<(usize, &Policy)> = parsed
                .policies()
                .map(|p| (p.id().to_string().trim_start_matches("policy").parse().unwrap_or(usize::MAX), p))
                .collect();
            list.sort_by_key(|(i, _)| *i);
            for (index, policy) in list {
                let id = match policy.annotation("id") {
                    Some(id) if !id.is_empty() => id.to_string(),
                    _ => format!("{file}:{index}"),
                };
                if let Some(other) = files.get(&id) {
                    parse_errors.push(Diag {
                        file: file.clone(),
                        line: 0,
                        column: 0,
                        message: format!("policy id `{id}` is also used in `{other}`"),
                    });
                    continue;
                }
                files.insert(id.clone(), file.clone());
                if let Err(e) = set.add(policy.new_id(PolicyId::new(&id))) {
                    parse_errors.push(Diag { file: file.clone(), line: 0, column: 0, message: e.to_string() });
                }
            }
        }
        if !parse_errors.is_empty() {
            return Err(PolicyError::Parse(parse_errors));
        }

        let texts: HashMap<&str, &str> = sources.policies.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
        let locate = |policy_id: &PolicyId| -> (String, &str) {
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
        let index = build_index(&set, names);
        let paths = referenced_paths(&sources);
        let context_use = ContextUse::of(sources.policies.iter().map(|(_, text)| text.as_str()));
        Ok(PolicySet {
            index,
            claims,
            paths: PathSet::Parsed(paths),
            context_use,
            count: files.len(),
            meta: OnceLock::from(Ok(Meta { files, warnings, schema_json: schema_json.to_string() })),
            meta_section: None,
            digest,
            from_cache: false,
            schema: OnceLock::from(Ok(schema)),
            validate_requests: false,
        })
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no policies.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every policy id with its file, sorted by id.
    /// (For a set read from the cache, an unreadable entry lists none.)
    pub fn policies(&self) -> Vec<(String, String)> {
        self.meta().map(|m| m.files.iter().map(|(id, file)| (id.clone(), file.clone())).collect()).unwrap_or_default()
    }

    /// Validation warnings (not fatal), with file, line and column.
    pub fn warnings(&self) -> &[Diag] {
        self.meta().map(|m| m.warnings.as_slice()).unwrap_or_default()
    }

    fn meta(&self) -> Result<&Meta, String> {
        self.meta
            .get_or_init(|| {
                let section = self.meta_section.as_ref().ok_or("policy set without metadata")?;
                serde_json::from_slice(section.bytes()?).map_err(|e| format!("policy cache metadata: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
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
}

/// A policy set being loaded on a background thread, so that a launch
/// overlaps that work with its own: reading the spec, verifying the token.
///
/// Whoever comes first loads the set: the thread, or the launch itself when
/// it asks for the set before the thread has started (on a small VM a new
/// thread can wait a millisecond or more for a CPU; the launch then does not
/// wait for it). The thread hands the set over as soon as it is loaded and
/// then, only if the launch is not asking yet, warms it
/// ([`PolicySet::warm`]). Dropping the loader, or the [`LoadedPolicies`] it
/// gave, waits for the thread (a launch forks only once it is
/// single-threaded again).
#[derive(Debug)]
pub struct PolicyLoader {
    /// Returns whether it loaded the set (the tests check who did).
    thread: Option<std::thread::JoinHandle<bool>>,
    loaded: std::sync::mpsc::Receiver<Result<Arc<PolicySet>, PolicyError>>,
    /// Set by whoever loads the set (the thread or [`PolicyLoader::finish`]).
    pub(crate) claimed: Arc<std::sync::atomic::AtomicBool>,
    /// Set when the launch asks for the set.
    asked: Arc<std::sync::atomic::AtomicBool>,
    config: PolicyConfig,
}

impl PolicyLoader {
    /// Starts loading `config`'s policy set ([`PolicySet::load_with`]).
    pub fn start(config: &PolicyConfig) -> PolicyLoader {
        PolicyLoader::start_with(config, true, None)
    }

    /// `spawn: false`: as when no thread can be started. `gate`: the thread
    /// waits for it before it tries to claim the load (the tests hold it
    /// back to take the path where the launch comes first).
    pub(crate) fn start_with(
        config: &PolicyConfig,
        spawn: bool,
        gate: Option<std::sync::mpsc::Receiver<()>>,
    ) -> PolicyLoader {
        use std::sync::atomic::Ordering::SeqCst;
        let background = config.clone();
        let (tx, loaded) = std::sync::mpsc::sync_channel(1);
        let claimed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (thread_claimed, thread_asked) = (claimed.clone(), asked.clone());
        // The main thread's stack size: parsing and validating take stack in
        // proportion to a policy's nesting (bounded by MAX_NESTING).
        let builder = std::thread::Builder::new().name("brig-policy".into()).stack_size(8 << 20);
        let thread = spawn
            .then(|| {
                builder.spawn(move || {
                    if let Some(gate) = gate {
                        let _ = gate.recv();
                    }
                    if thread_claimed.swap(true, SeqCst) {
                        return false; // the launch loads it itself
                    }
                    let set = PolicySet::load_with(&background).map(Arc::new);
                    let warm = set.as_ref().ok().cloned();
                    // The launch may have given up (and dropped the receiver).
                    let _ = tx.send(set);
                    if let Some(set) = warm.filter(|_| !thread_asked.load(SeqCst)) {
                        set.warm();
                    }
                    true
                })
            })
            .and_then(Result::ok);
        PolicyLoader { thread, loaded, claimed, asked, config: config.clone() }
    }

    /// The loaded set, or why it could not be loaded.
    pub fn finish(mut self) -> Result<LoadedPolicies, PolicyError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.asked.store(true, SeqCst);
        let set = match self.claimed.swap(true, SeqCst) {
            // Loading (or loaded) on the thread.
            true => self.loaded.recv().map_err(|_| PolicyError::Loader("the loading thread panicked".into()))??,
            // The thread has not started (or could not be): load it here.
            false => Arc::new(PolicySet::load_with(&self.config)?),
        };
        Ok(LoadedPolicies { set, warming: self.thread.take() })
    }
}

impl Drop for PolicyLoader {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        // Unfinished (the launch failed before it asked): a thread that has
        // not started loading does not start now, and none warms up. One
        // that is loading is waited for, not left running while the process
        // exits (it may be writing the cache).
        self.asked.store(true, SeqCst);
        self.claimed.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A loaded policy set ([`PolicyLoader::finish`]), possibly still being
/// warmed up by the loader's thread; dropping it waits for that thread.
#[derive(Debug)]
pub struct LoadedPolicies {
    set: Arc<PolicySet>,
    warming: Option<std::thread::JoinHandle<bool>>,
}

impl LoadedPolicies {
    /// Waits for the loader's thread: `Some(true)` if it loaded the set,
    /// `Some(false)` if the launch did, `None` if there was no thread.
    #[cfg(test)]
    pub(crate) fn join_loader(mut self) -> Option<bool> {
        self.warming.take().map(|t| t.join().unwrap_or(false))
    }
}

impl std::ops::Deref for LoadedPolicies {
    type Target = PolicySet;
    fn deref(&self) -> &PolicySet {
        &self.set
    }
}

impl Drop for LoadedPolicies {
    fn drop(&mut self) {
        if let Some(t) = self.warming.take() {
            let _ = t.join();
        }
    }
}

fn build_index(set: &cedar_policy::PolicySet, names: &Names) -> Vec<ActionIndex> {
    let mut any: Vec<Vec<Policy>> = vec![Vec::new(); ACTIONS.len()];
    let mut by_entity: Vec<HashMap<EntityKey, Vec<Policy>>> = vec![HashMap::new(); ACTIONS.len()];
    for policy in set.policies() {
        let applies: Vec<usize> = match policy.action_constraint() {
            ActionConstraint::Any => (0..ACTIONS.len()).collect(),
            ActionConstraint::Eq(a) => names.actions.iter().position(|x| *x == a).into_iter().collect(),
            ActionConstraint::In(list) => (0..ACTIONS.len()).filter(|i| list.contains(&names.actions[*i])).collect(),
        };
        let key = match policy.principal_constraint() {
            PrincipalConstraint::Any | PrincipalConstraint::Is(_) => None,
            PrincipalConstraint::Eq(e) | PrincipalConstraint::In(e) | PrincipalConstraint::IsIn(_, e) => {
                Some((e.type_name().to_string(), e.id().unescaped().to_string()))
            }
        };
        for i in applies {
            match &key {
                None => any[i].push(policy.clone()),
                Some(k) => by_entity[i].entry(k.clone()).or_default().push(policy.clone()),
            }
        }
    }
    any.into_iter()
        .zip(by_entity)
        .map(|(any, by)| ActionIndex {
            any: Arc::new(Bucket::new(Source::Parsed(any))),
            by_entity: EntityIndex::Parsed(
                by.into_iter().map(|(k, v)| (k, Arc::new(Bucket::new(Source::Parsed(v))))).collect(),
            ),
        })
        .collect()
}

/// Every `Brig::Path` id the policy files mention (scopes, conditions, and
/// comments too: more is only slower), read from their text: each `Path` token must be followed by `::` and a
/// string literal; if one is not (a comment in between, an escape this
/// reader does not decode), the answer is "all paths", which is only slower.
fn referenced_paths(sources: &Sources) -> HashSet<String> {
    let mut out = HashSet::new();
    for (_, text) in &sources.policies {
        if !scan_paths(text, &mut out) {
            out.insert(ALL_PATHS.to_string());
            break;
        }
    }
    out
}

/// Adds the ids of `Path::"..."` in `text` to `out`; `false` if a `Path`
/// token is not followed by a literal this reader understands.
fn scan_paths(text: &str, out: &mut HashSet<String>) -> bool {
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut from = 0;
    while let Some(found) = text[from..].find("Path") {
        let at = from + found;
        let end = at + 4;
        from = end;
        if (at > 0 && is_ident(bytes[at - 1])) || (end < bytes.len() && is_ident(bytes[end])) {
            continue; // part of another identifier (`path`, `Paths`, ...)
        }
        let rest = text[end..].trim_start();
        let Some(rest) = rest.strip_prefix("::") else { return false };
        let rest = rest.trim_start();
        let Some(lit) = rest.strip_prefix('"') else { return false };
        let mut id = String::new();
        let mut chars = lit.chars();
        loop {
            match chars.next() {
                None => return false,
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('"') => id.push('"'),
                    Some('\\') => id.push('\\'),
                    Some('\'') => id.push('\''),
                    _ => return false,
                },
                Some(c) => id.push(c),
            }
        }
        out.insert(id);
    }
    true
}

/// In `PolicySet::paths`: keep every ancestor of every mount source.
pub(crate) const ALL_PATHS: &str = "\0all";

fn schema_diag(file: &str, message: String) -> PolicyError {
    PolicyError::Schema(vec![Diag { file: file.to_string(), line: 0, column: 0, message }])
}

/// The schema in Cedar's JSON format, without `Brig::Claims`.
fn without_claims(mut json: Value) -> Value {
    if let Some(common) = json.pointer_mut("/Brig/commonTypes").and_then(Value::as_object_mut) {
        common.remove("Claims");
    }
    json
}

/// Parses the schema (the directory's, or the built-in one), checks that a
/// directory's schema differs from the built-in one only in `Brig::Claims`,
/// and reads the declared claims.
fn parse_schema(
    source: Option<&(String, String)>,
) -> Result<(Schema, BTreeMap<String, ClaimAttr>, Value), PolicyError> {
    let (file, text) = match source {
        Some((f, t)) => (f.as_str(), t.as_str()),
        None => ("<built-in schema>", BUILTIN_SCHEMA),
    };
    if let Some((line, column, _)) = nested_too_deep_in(text, true) {
        return Err(PolicyError::Schema(vec![Diag {
            file: file.to_string(),
            line,
            column,
            message: format!("types nested more than {MAX_NESTING} deep: refused before parsing (the parser takes stack for every level)"),
        }]));
    }
    let (schema, _warnings) = Schema::from_cedarschema_str(text)
        .map_err(|e| PolicyError::Schema(vec![diag_of(&e, file, text, e.to_string())]))?;
    let (fragment, _) = SchemaFragment::from_cedarschema_str(text)
        .map_err(|e| PolicyError::Schema(vec![diag_of(&e, file, text, e.to_string())]))?;
    let json = fragment.to_json_value().map_err(|e| schema_diag(file, e.to_string()))?;
    if source.is_some() {
        // brig builds every entity and context itself, typed by the built-in
        // schema; only the claims it passes through may be declared anew.
        let (builtin, _) = SchemaFragment::from_cedarschema_str(BUILTIN_SCHEMA)
            .map_err(|e| schema_diag("<built-in schema>", e.to_string()))?;
        let builtin = without_claims(builtin.to_json_value().map_err(|e| schema_diag(file, e.to_string()))?);
        let mine = without_claims(json.clone());
        if mine != builtin {
            let mut what = Vec::new();
            for section in ["entityTypes", "actions", "commonTypes"] {
                let p = format!("/Brig/{section}");
                if mine.pointer(&p) != builtin.pointer(&p) {
                    what.push(section);
                }
            }
            return Err(schema_diag(
                file,
                format!(
                    "differs from the built-in schema in {}: a policy directory's schema may change only `Brig::Claims` \
                     (brig builds every other entity and context itself)",
                    if what.is_empty() { "its namespaces".to_string() } else { what.join(", ") }
                ),
            ));
        }
    }
    let claims = declared_claims(&json).map_err(|m| schema_diag(file, m))?;
    Ok((schema, claims, json))
}

fn read_cache(path: &Path, digest: &str) -> Option<PolicySet> {
    let entry: cache::Entry<CacheHeader> = cache::open(path)?;
    let header = entry.header;
    if header.format != CACHE_FORMAT || header.digest != digest || header.index.len() != ACTIONS.len() {
        return None;
    }
    let body = entry.body;
    let mut index = Vec::with_capacity(ACTIONS.len());
    for a in header.index {
        index.push(ActionIndex {
            any: Arc::new(Bucket::new(Source::Cached(body.section(a.any)?))),
            by_entity: EntityIndex::Cached {
                table: body.section(a.by_entity)?,
                body: body.clone(),
                found: Arc::default(),
            },
        });
    }
    Some(PolicySet {
        index,
        claims: header.claims,
        paths: PathSet::Cached(body.section(header.paths)?),
        context_use: ContextUse::from_list(header.context),
        count: header.count,
        meta: OnceLock::new(),
        meta_section: Some(body.section(header.meta)?),
        digest: header.digest,
        from_cache: true,
        schema: OnceLock::new(),
        validate_requests: false,
    })
}

fn write_cache(set: &PolicySet, path: &Path, dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    let mut push = |bytes: &[u8]| -> Span {
        let span = Span::of(body.len() as u64, bytes);
        body.extend_from_slice(bytes);
        span
    };
    let too_big = || "too large for the cache format".to_string();
    let meta = push(&serde_json::to_vec(set.meta()?).map_err(|e| e.to_string())?);
    let PathSet::Parsed(paths) = &set.paths else { return Err("already cached".into()) };
    let no_section = Span { start: 0, end: 0, sha256: [0; 32] };
    let paths = cache::encode_table(paths.iter().map(|p| (p.as_bytes().to_vec(), no_section)).collect());
    let paths = push(&paths.ok_or_else(too_big)?);
    let mut index = Vec::new();
    for a in &set.index {
        let EntityIndex::Parsed(by_entity) = &a.by_entity else { return Err("already cached".into()) };
        let any = push(&a.any.to_blob()?);
        let mut table = Vec::with_capacity(by_entity.len());
        for ((type_name, id), bucket) in by_entity {
            table.push((cache::entity_key(type_name, id), push(&bucket.to_blob()?)));
        }
        let by_entity = push(&cache::encode_table(table).ok_or_else(too_big)?);
        index.push(CachedAction { any, by_entity });
    }
    let header = CacheHeader {
        format: CACHE_FORMAT.into(),
        digest: set.digest.clone(),
        claims: set.claims.clone(),
        count: set.count,
        meta,
        paths,
        context: set.context_use.to_list(),
        index,
    };
    let bytes = cache::encode(&header, &body).map_err(|e| e.to_string())?;
    crate::jwks::write_atomic(path, &bytes).map_err(|e| e.to_string())?;
    prune_cache(dir, path);
    Ok(())
}

/// Keeps the four most recent cache entries.
fn prune_cache(dir: &Path, keep: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut entries: Vec<(SystemTime, PathBuf)> = rd
        .filter_map(Result::ok)
        // `.json`: entries of brig before cache format 3.
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(&format!(".{CACHE_SUFFIX}")) || name.ends_with(".json")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, p) in entries.into_iter().skip(4) {
        if p != keep {
            let _ = fs::remove_file(p);
        }
    }
}

impl ActionIndex {
    /// The buckets that can apply to a principal with these `(type, id)` keys.
    pub(crate) fn buckets(&self, keys: &[EntityKey]) -> Result<Vec<Arc<Bucket>>, String> {
        let mut out = vec![self.any.clone()];
        match &self.by_entity {
            EntityIndex::Parsed(map) => out.extend(keys.iter().filter_map(|k| map.get(k).cloned())),
            EntityIndex::Cached { table, body, found } => {
                let table = table.bytes()?;
                for (type_name, id) in keys {
                    let Some(span) = cache::table_get(table, &cache::entity_key(type_name, id))? else { continue };
                    let mut found = found.lock().map_err(|_| "policy cache: a lookup panicked")?;
                    let bucket = match found.get(&span) {
                        Some(b) => b.clone(),
                        None => {
                            let section = body.section(span).ok_or("policy cache: a bucket outside the entry")?;
                            let b = Arc::new(Bucket::new(Source::Cached(section)));
                            found.insert(span, b.clone());
                            b
                        }
                    };
                    out.push(bucket);
                }
            }
        }
        out.retain(|b| !b.is_empty());
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `context.rootfs` is the spec's root filesystem (normalized): a policy
    /// can keep jobs to the image stores it trusts.
    #[test]
    fn a_policy_judges_where_the_root_filesystem_is() {
        let set = PolicySet::from_texts(
            &[(
                "p.cedar".into(),
                r#"permit (principal, action == Brig::Action::"launch", resource) when { context.rootfs like "/srv/images/*" };"#
                    .into(),
            )],
            None,
        )
        .unwrap();
        let token = crate::testing::unverified_token(serde_json::json!({"iss": "i", "sub": "s"}).as_object().unwrap());
        for (root, allowed) in
            [("/srv/images/a/rootfs", true), ("/srv/images/../../var/lib/x", false), ("/home/x", false)]
        {
            let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2", "root": {"path": root}, "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
            }))
            .unwrap();
            let ctx = crate::LaunchContext::from_spec(&spec, &crate::SpecOptions::default()).unwrap();
            assert_eq!(crate::authorize(&set, &token, Action::Launch, &ctx).allowed, allowed, "{root}: {}", ctx.rootfs);
        }
    }

    /// A roles claim given as one string (which the token's typing and the
    /// principal's `Role` accept) is a set of one in `context.claims` too,
    /// not an error that denies.
    #[test]
    fn a_single_string_where_a_set_of_strings_is_declared_is_a_set_of_one() {
        let set = PolicySet::from_texts(
            &[(
                "p.cedar".into(),
                r#"permit (principal in Brig::Role::"function", action == Brig::Action::"launch", resource)
                   when { context.claims has roles && context.claims.roles.contains("function") };"#
                    .into(),
            )],
            None,
        )
        .unwrap();
        for roles in [serde_json::json!("function"), serde_json::json!(["function"])] {
            let claims = serde_json::json!({"iss": "i", "sub": "s", "roles": roles});
            let token = crate::testing::unverified_token(claims.as_object().unwrap());
            let d = crate::authorize(&set, &token, Action::Launch, &crate::LaunchContext::default());
            assert!(d.allowed, "{roles}: {}", d.reason);
        }
        let claims = serde_json::json!({"iss": "i", "sub": "s", "roles": 7});
        let token = crate::testing::unverified_token(claims.as_object().unwrap());
        assert!(!crate::authorize(&set, &token, Action::Launch, &crate::LaunchContext::default()).allowed);
    }

    #[test]
    fn path_literals_are_read_from_the_text() {
        let mut out = HashSet::new();
        assert!(scan_paths(
            r#"permit (principal, action, resource in Brig::Path::"/a/b") when { resource in Brig :: Path :: "/c\"d" && context.path == "/x" };"#,
            &mut out
        ));
        assert_eq!(out, HashSet::from(["/a/b".to_string(), "/c\"d".to_string()]));
        // anything this reader does not follow makes it give up (keep all ancestors)
        assert!(!scan_paths(r#"resource in Brig::Path::/* x */"/a""#, &mut HashSet::new()));
        assert!(!scan_paths(r#"resource in Brig::Path::"\u{2f}a""#, &mut HashSet::new()));
        // a string or a comment that says Path without `::` too
        assert!(!scan_paths(r#"when { context.x == "Path" }"#, &mut HashSet::new()));
        assert!(!scan_paths("// Path of the data\npermit (principal, action, resource);", &mut HashSet::new()));
    }

    /// A policy nested deeper than MAX_NESTING is refused with its file,
    /// line and column before Cedar's parser sees it (a few hundred levels
    /// overflowed the stack and aborted the launch); brackets in strings and
    /// comments do not count, and MAX_NESTING levels are fine.
    #[test]
    fn policies_nested_too_deep_are_refused_before_parsing() {
        let nested = |n: usize| format!("{}true{}", "(".repeat(n), ")".repeat(n));
        let ok = format!(
            "// ((((((((((\npermit (principal, action, resource) when {{ {} && \"((((\" == \"((((\" }};",
            nested(MAX_NESTING - 1)
        );
        assert_eq!(nested_too_deep(&ok), None);
        assert_eq!(
            nested_too_deep(&format!("{}{}", "(".repeat(MAX_NESTING + 1), "x")),
            Some((1, MAX_NESTING + 1, TooDeep::Brackets))
        );
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ok.cedar"), &ok).unwrap();
        PolicySet::load(dir.path()).unwrap();
        // An `else if` chain nests without brackets; a schema's type
        // parameters nest with angle brackets.
        let chain =
            format!("permit (principal, action, resource) when {{ {}true }};", "if true then true else ".repeat(3000));
        assert!(nested_too_deep(&chain).is_some());
        let many = "permit (principal, action, resource) when { if true then true else false };\n".repeat(100);
        assert_eq!(nested_too_deep(&many), None, "ifs of separate policies do not add up");
        assert_eq!(nested_too_deep("permit (principal, action, resource) when { context.diff == \"x\" };"), None);
        let schema = format!("namespace X {{ type T = {}String{}; }}", "Set<".repeat(5000), ">".repeat(5000));
        assert!(nested_too_deep_in(&schema, true).is_some());
        assert_eq!(nested_too_deep_in(BUILTIN_SCHEMA, true), None, "the built-in schema");
        let deep = format!("permit (principal, action, resource)\nwhen {{ {} }};", nested(100_000));
        fs::write(dir.path().join("deep.cedar"), deep).unwrap();
        let e = PolicySet::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("deep.cedar:2:") && e.contains("nested more than"), "{e}");
    }

    /// A chain of operators nests without brackets: 3,000 attribute accesses
    /// passed validation unchecked (Cedar's type checker gave up at its
    /// stack limit and reported nothing) and 50,000 `+` crashed brig when
    /// the set was freed. Refused by count, per policy, with the place; a
    /// set of many values and many policies of a few hundred operators each
    /// are fine.
    #[test]
    fn operator_chains_are_bounded_per_policy() {
        let head = "permit (principal, action, resource) when { ";
        let dots = format!("{head}context{} == \"x\" }};", ".profile".repeat(3000));
        let (line, _, why) = nested_too_deep(&dots).unwrap();
        assert_eq!((line, why), (1, TooDeep::Operators));
        let sum = format!("{head}{}1 == 2 }};", "1 + ".repeat(50_000));
        assert_eq!(nested_too_deep(&sum).map(|t| t.2), Some(TooDeep::Operators));
        let ors = format!("{head}{}false }};", "context.x == \"a\" || ".repeat(400));
        assert_eq!(nested_too_deep(&ors).map(|t| t.2), Some(TooDeep::Operators));
        let kw = format!("{head}{}true }};", "principal in resource && ".repeat(MAX_OPERATORS / 2 + 1));
        assert_eq!(nested_too_deep(&kw).map(|t| t.2), Some(TooDeep::Operators));
        // What is fine: a set of 20,000 values, many policies of a few
        // hundred operators, operators in strings and comments.
        let set = format!(
            "permit (principal, action == Brig::Action::\"launch\", resource) when {{ [{}].contains(context.profile) }};",
            (0..20_000).map(|i| format!("\"v{i}.a-b\"")).collect::<Vec<_>>().join(", ")
        );
        assert_eq!(nested_too_deep(&set), None);
        let some = format!("{head}{}false }};\n", "context.x == \"a\" || ".repeat(300)).repeat(20);
        assert_eq!(nested_too_deep(&some), None, "operators of separate policies do not add up");
        let quoted = format!("// {}\n{head}\"{}\" == \"\" }};", "a.b".repeat(5000), "&&".repeat(5000));
        assert_eq!(nested_too_deep(&quoted), None);
        // Indexing chains as attribute access does (it was not counted:
        // 50,000 of them were called valid and crashed brig).
        let index = format!("{head}context{} == \"x\" }};", "[\"profile\"]".repeat(3000));
        assert_eq!(nested_too_deep(&index).map(|t| t.2), Some(TooDeep::Operators));
        // Negative numbers in a set are literals, not subtractions.
        let negatives = format!(
            "{head}[{}].contains(-5) && 3 - 2 == 1 }};",
            (1..5000).map(|i| format!("-{i}")).collect::<Vec<_>>().join(", ")
        );
        assert_eq!(nested_too_deep(&negatives), None);
        let subtractions = format!("{head}{}1 == 0 }};", "1 - ".repeat(MAX_OPERATORS + 1));
        assert_eq!(nested_too_deep(&subtractions).map(|t| t.2), Some(TooDeep::Operators));
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("sum.cedar"), &sum).unwrap();
        let e = PolicySet::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("sum.cedar:1:") && e.contains("operators in one policy"), "{e}");
        fs::write(dir.path().join("sum.cedar"), &set).unwrap();
        PolicySet::load(dir.path()).unwrap();
    }

    /// The digest a launch streams to find its cache entry is the digest of
    /// the texts that a miss parses and writes under: same files, same
    /// order, same framing; and any change to a name, a text or the schema
    /// changes it.
    #[test]
    fn the_streamed_digest_is_the_digest_of_the_texts() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let both = |d: &Path| {
            let streamed = stream_digest(d).unwrap().expect("no file changed while read");
            assert_eq!(streamed, content_digest(&read_sources(d).unwrap()));
            streamed
        };
        // larger than the read buffer, so that it is hashed in several chunks
        let long: String = (0..3000).map(|i| format!("// line {i} of a long comment\n")).collect();
        fs::write(d.join("b.cedar"), format!("{long}permit (principal, action, resource);")).unwrap();
        fs::write(d.join("a.cedar"), "forbid (principal, action, resource);").unwrap();
        fs::write(d.join("notes.txt"), "not a policy").unwrap();
        fs::write(d.join(".hidden.cedar"), "not read").unwrap();
        let mut seen = HashSet::from([both(d)]);
        fs::write(d.join("notes.txt"), "still not a policy").unwrap();
        assert!(!seen.insert(both(d)), "files other than policies and the schema are not part of the digest");
        fs::write(d.join(SCHEMA_FILE), BUILTIN_SCHEMA).unwrap();
        assert!(seen.insert(both(d)), "a schema file, even the built-in text, is a different set");
        fs::write(d.join("a.cedar"), "forbid (principal, action, resource) ;").unwrap();
        assert!(seen.insert(both(d)));
        fs::rename(d.join("a.cedar"), d.join("c.cedar")).unwrap();
        assert!(seen.insert(both(d)), "file names (and so the order) are part of the digest");
        // moving text across the boundary between two files is a change
        fs::write(d.join("b.cedar"), format!("{long}permit (principal, action, resource);forbid")).unwrap();
        fs::write(d.join("c.cedar"), " (principal, action, resource) ;").unwrap();
        assert!(seen.insert(both(d)));
        // a name that is not UTF-8 is read from the entry itself (shown lossily)
        use std::os::unix::ffi::OsStrExt;
        let odd = d.join(std::ffi::OsStr::from_bytes(b"odd-\xff.cedar"));
        fs::write(&odd, "forbid (principal, action, resource) when { false };").unwrap();
        assert!(seen.insert(both(d)));
        assert!(read_sources(d)
            .unwrap()
            .policies
            .iter()
            .any(|(n, t)| n == "odd-\u{fffd}.cedar" && t.contains("false")));
        fs::remove_file(&odd).unwrap();
        // an unreadable file is the same error either way
        fs::create_dir(d.join("dir.cedar")).unwrap();
        assert!(matches!(stream_digest(d), Err(PolicyError::Read { .. })));
        assert!(matches!(read_sources(d), Err(PolicyError::Read { .. })));
        fs::remove_dir(d.join("dir.cedar")).unwrap();
        for f in ["b.cedar", "c.cedar"] {
            fs::remove_file(d.join(f)).unwrap();
        }
        assert!(matches!(stream_digest(d), Err(PolicyError::NoPolicies(_))));
        // A policy file in the wrong case is not silently skipped: its
        // `forbid` would not apply. Every launch fails, naming it.
        fs::write(d.join("a.cedar"), "permit (principal, action, resource);").unwrap();
        fs::write(d.join("deny.Cedar"), "forbid (principal, action, resource);").unwrap();
        for e in [stream_digest(d).map(|_| ()), read_sources(d).map(|_| ())] {
            match e {
                Err(PolicyError::NotLoaded(p)) => assert!(p.ends_with("deny.Cedar")),
                other => panic!("{other:?}"),
            }
        }
    }
}
