//! Decisions: the entities and contexts of a launch or an exec, the Cedar
//! requests, and how their answers make one [`Decision`].
//!
//! A launch is decided by one Cedar request for the launch itself plus one
//! per host mount (`mount`) and one per egress rule (`egress`): Cedar has no
//! "for all" over a set, so "every mount is under the tenant's prefix" is
//! written as a `mount` policy and checked once per mount. The launch is
//! allowed only if every request is allowed and no policy raised an error.
//!
//! Entities and contexts are built directly as Cedar values, typed as the
//! built-in schema says (a directory's schema may change only the claims,
//! which `claims.rs` type-checks), so no JSON is parsed per request.
//! [`PolicySet::validate_requests`] adds Cedar's own schema check of every
//! request and entity; the tests run with it.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use cedar_policy::{Authorizer, Context, Entities, Entity, EntityId, EntityUid, Request, RestrictedExpression};
use serde::{Deserialize, Serialize};

use crate::authz::{
    EntityKey, Names, PolicySet, ACTIONS, ALL_PATHS, EGRESS, EXEC, LAUNCH, MOUNT, ROLE, SUBJECT, TENANT,
};
use crate::claims::claims_record;
use crate::context::{normalize, EgressRule, LaunchContext, MountInfo};
use crate::token::VerifiedToken;
use crate::Action;

/// The placeholder `tenant_source` puts where the tenant's segment was.
pub const TENANT_PLACEHOLDER: &str = "{tenant}";

/// The decision of one Cedar request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestDecision {
    /// `launch`, `exec`, `mount` or `egress`.
    pub action: String,
    /// What the request was about, e.g. `` `/var/lib/x` at `/in` (bind, read-only)``.
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
            out.push_str(&format!("  [{}] {}: {}", if r.allowed { "allow" } else { "deny " }, r.action, r.subject));
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
    segment_replaced(source, tenant?, TENANT_PLACEHOLDER)
}

/// The placeholder `container_source` puts where the container's own id was.
pub const CONTAINER_PLACEHOLDER: &str = "{container}";

/// `source` with each path segment equal to `segment` replaced by
/// `placeholder`; None for a segment that cannot be one, or a source that
/// already has braces (it could fake the placeholder).
fn segment_replaced(source: &str, segment: &str, placeholder: &str) -> Option<String> {
    if segment.is_empty() || segment == "." || segment == ".." || segment.contains('/') {
        return None;
    }
    if source.contains('{') || source.contains('}') {
        return None;
    }
    Some(source.split('/').map(|seg| if seg == segment { placeholder } else { seg }).collect::<Vec<_>>().join("/"))
}

type Re = RestrictedExpression;

fn string(v: &str) -> Re {
    Re::new_string(v.to_string())
}

fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Re {
    Re::new_set(items.into_iter().map(|s| string(s)))
}

fn longs<'a>(items: impl IntoIterator<Item = &'a u32>) -> Re {
    Re::new_set(items.into_iter().map(|&v| Re::new_long(i64::from(v))))
}

fn long(v: impl TryInto<i64>, what: &str) -> Result<Re, String> {
    v.try_into().map(Re::new_long).map_err(|_| format!("`{what}` is too large"))
}

fn record(fields: Vec<(&str, Re)>) -> Result<Re, String> {
    Re::new_record(fields.into_iter().map(|(k, v)| (k.to_string(), v))).map_err(|e| e.to_string())
}

fn egress_rule(r: &EgressRule) -> Result<Re, String> {
    record(vec![("cidr", Re::new_ip(&r.cidr)), ("port", Re::new_long(i64::from(r.port))), ("proto", string(&r.proto))])
}

fn mount_rec(m: &MountInfo) -> Result<Re, String> {
    record(vec![
        ("source", string(&m.source)),
        ("destination", string(&m.destination)),
        ("read_write", Re::new_bool(m.read_write)),
        ("kind", string(&m.kind)),
    ])
}

fn image_rec(c: &LaunchContext) -> Result<Re, String> {
    let mut f = Vec::new();
    if let Some(d) = &c.image.digest {
        f.push(("digest", string(d)));
    }
    if let Some(n) = &c.image.name {
        f.push(("name", string(n)));
    }
    record(f)
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
    names: &'static Names,
    token: &'a VerifiedToken,
    context: &'a LaunchContext,
    principal: EntityUid,
    parents: Vec<EntityUid>,
    keys: Vec<EntityKey>,
    resource: EntityUid,
    claims: Re,
    image: Re,
}

impl<'a> Builder<'a> {
    fn new(set: &'a PolicySet, token: &'a VerifiedToken, context: &'a LaunchContext) -> Result<Builder<'a>, String> {
        let names = Names::get()?;
        let principal_id = token.principal_id();
        let principal = EntityUid::from_type_name_and_id(names.subject.clone(), EntityId::new(&principal_id));
        let mut parents = Vec::new();
        let mut keys = vec![(SUBJECT.to_string(), principal_id)];
        if let Some(t) = &token.tenant {
            parents.push(EntityUid::from_type_name_and_id(names.tenant.clone(), EntityId::new(t)));
            keys.push((TENANT.to_string(), t.clone()));
        }
        for r in &token.roles {
            let key = (ROLE.to_string(), r.clone());
            // A role listed twice is one parent.
            if !keys.contains(&key) {
                parents.push(EntityUid::from_type_name_and_id(names.role.clone(), EntityId::new(r)));
                keys.push(key);
            }
        }
        let image_id = context.image.digest.as_deref().or(context.image.name.as_deref()).unwrap_or("");
        let resource = EntityUid::from_type_name_and_id(names.image.clone(), EntityId::new(image_id));
        let claims = claims_record(&set.claims, &token.claims)?;
        let image = image_rec(context)?;
        Ok(Builder { set, names, token, context, principal, parents, keys, resource, claims, image })
    }

    fn entities(&self, with_paths: bool) -> Result<Entities, String> {
        let n = self.names;
        let t = self.token;
        let c = self.context;
        let mut list = Vec::new();
        let mut attrs = HashMap::from([
            ("issuer".to_string(), string(&t.issuer)),
            ("subject".to_string(), string(&t.subject)),
            ("roles".to_string(), strings(&t.roles)),
        ]);
        if let Some(tenant) = &t.tenant {
            attrs.insert("tenant".into(), string(tenant));
        }
        if let Some(d) = &t.image_digest {
            attrs.insert("image_digest".into(), string(d));
        }
        let parents: HashSet<EntityUid> = self.parents.iter().cloned().collect();
        list.push(Entity::new(self.principal.clone(), attrs, parents).map_err(|e| e.to_string())?);
        for p in &self.parents {
            list.push(Entity::new_no_attrs(p.clone(), HashSet::new()));
        }
        let profile = EntityUid::from_type_name_and_id(n.profile.clone(), EntityId::new(&c.profile));
        let mut image_attrs = HashMap::from([("profile".to_string(), string(&c.profile))]);
        if let Some(d) = &c.image.digest {
            image_attrs.insert("digest".into(), string(d));
        }
        if let Some(name) = &c.image.name {
            image_attrs.insert("name".into(), string(name));
        }
        list.push(
            Entity::new(self.resource.clone(), image_attrs, HashSet::from([profile.clone()]))
                .map_err(|e| e.to_string())?,
        );
        list.push(Entity::new_no_attrs(profile, HashSet::new()));
        if with_paths {
            // A mount source's parents are the ancestors the policies mention
            // (all of them, flattened): `in` can observe no other, and Cedar
            // has fewer entities to close over.
            let all = self.set.paths.contains(ALL_PATHS)?;
            let path_uid = |p: &str| EntityUid::from_type_name_and_id(n.path.clone(), EntityId::new(p));
            let mut seen = HashSet::new();
            for m in c.mounts.iter().filter(|m| m.reaches_host()) {
                let mut chain = vec![m.source.clone()];
                if m.source.starts_with('/') {
                    for a in path_ancestors(&m.source) {
                        if all || self.set.paths.contains(&a)? {
                            chain.push(a);
                        }
                    }
                }
                for (i, p) in chain.iter().enumerate() {
                    if !seen.insert(p.clone()) {
                        continue;
                    }
                    let parents = chain[i + 1..].iter().map(|a| path_uid(a)).collect();
                    list.push(
                        Entity::new(path_uid(p), HashMap::from([("path".to_string(), string(p))]), parents)
                            .map_err(|e| e.to_string())?,
                    );
                }
            }
        }
        use cedar_policy_core::entities::{Entities as CoreEntities, NoEntitiesSchema, TCComputation};
        use cedar_policy_core::extensions::Extensions;
        let core = |tc| {
            CoreEntities::from_entities(
                list.iter().map(|e| e.as_ref().clone()),
                None::<&NoEntitiesSchema>,
                tc,
                Extensions::all_available(),
            )
            .map_err(|e| e.to_string())
        };
        if self.set.validate_requests {
            // The checked path (the tests') also holds the hierarchy to the
            // claim below: Cedar fails a set that is not closed and acyclic.
            core(TCComputation::EnforceAlreadyComputed)
                .map_err(|e| format!("the entity hierarchy is not closed: {e}"))?;
            return Entities::from_entities(list, Some(self.set.schema()?)).map_err(|e| e.to_string());
        }
        // The hierarchy above is built transitively closed and acyclic: a
        // Subject's parents are its Tenant and Roles, an Image's its Profile,
        // none of which has parents, and a Path's parents are all its listed
        // ancestors (each of which lists its own, a subset). So Cedar is told
        // not to compute the closure again, most of what building the
        // entities cost. The schema-checked path (tests) computes it, and the
        // example sets' decisions are compared across the two.
        core(TCComputation::AssumeAlreadyComputed).map(Entities::from)
    }

    /// Whether a request's context carries `attr`: every attribute when
    /// requests are checked against the schema, else those the policies can
    /// read (`usage.rs`); building the rest would change no answer.
    fn wants(&self, attr: &str) -> bool {
        self.set.validate_requests || self.set.context_use.needs(attr)
    }

    /// The fields of `Request` (and of `ExecRequest`, with `exec` added)
    /// that the policies can read.
    fn request_fields(&self) -> Result<Vec<(&'static str, Re)>, String> {
        let c = self.context;
        let mut f = Vec::new();
        let mut add = |name: &'static str, value: &dyn Fn() -> Result<Re, String>| -> Result<(), String> {
            if self.wants(name) {
                f.push((name, value()?));
            }
            Ok(())
        };
        add("profile", &|| Ok(string(&c.profile)))?;
        add("image", &|| Ok(self.image.clone()))?;
        add("rootfs", &|| Ok(string(&c.rootfs)))?;
        add("mounts", &|| Ok(Re::new_set(c.mounts.iter().map(mount_rec).collect::<Result<Vec<_>, _>>()?)))?;
        add("capabilities", &|| Ok(strings(&c.capabilities)))?;
        add("host_namespaces", &|| Ok(strings(&c.host_namespaces)))?;
        add("joined_namespaces", &|| Ok(strings(&c.joined_namespaces)))?;
        add("devices", &|| Ok(strings(&c.devices)))?;
        add("resources", &|| {
            let mut resources = Vec::new();
            if let Some(v) = c.resources.memory_bytes {
                resources.push(("memory_bytes", Re::new_long(v)));
            }
            if let Some(v) = c.resources.pids {
                resources.push(("pids", Re::new_long(v)));
            }
            if let Some(v) = c.resources.cpu_millis {
                resources.push(("cpu_millis", Re::new_long(v)));
            }
            record(resources)
        })?;
        add("egress", &|| Ok(Re::new_set(c.egress.iter().map(egress_rule).collect::<Result<Vec<_>, _>>()?)))?;
        add("inputs", &|| Ok(strings(&c.inputs)))?;
        add("outputs", &|| Ok(strings(&c.outputs)))?;
        add("annotations", &|| {
            Ok(Re::new_set(
                c.annotations
                    .iter()
                    .map(|(k, v)| record(vec![("key", string(k)), ("value", string(v))]))
                    .collect::<Result<Vec<_>, _>>()?,
            ))
        })?;
        add("annotation_keys", &|| Ok(strings(c.annotations.keys())))?;
        add("user", &|| {
            record(vec![
                ("uid", Re::new_long(i64::from(c.user.uid))),
                ("gid", Re::new_long(i64::from(c.user.gid))),
                ("additional_gids", longs(&c.user.additional_gids)),
            ])
        })?;
        add("claims", &|| Ok(self.claims.clone()))?;
        if let Some(t) = c.timeout_secs {
            add("timeout_secs", &|| long(t, "timeout_secs"))?;
        }
        Ok(f)
    }

    fn decide(
        &self,
        action: usize,
        resource: EntityUid,
        context: Result<Vec<(&'static str, Re)>, String>,
        entities: &Entities,
        subject: String,
    ) -> RequestDecision {
        let action_uid = &self.names.actions[action];
        let deny = |error: String| RequestDecision {
            action: ACTIONS[action].into(),
            subject: subject.clone(),
            allowed: false,
            determining_policies: Vec::new(),
            errors: vec![error],
        };
        let context = match context.and_then(|f| {
            Context::from_pairs(f.into_iter().filter(|(k, _)| self.wants(k)).map(|(k, v)| (k.to_string(), v)))
                .map_err(|e| e.to_string())
        }) {
            Ok(c) => c,
            Err(e) => return deny(format!("building the `{}` context: {e}", ACTIONS[action])),
        };
        let schema = match self.set.validate_requests.then(|| self.set.schema()).transpose() {
            Ok(s) => s,
            Err(e) => return deny(e),
        };
        let request = match Request::new(self.principal.clone(), action_uid.clone(), resource, context, schema) {
            Ok(r) => r,
            Err(e) => return deny(format!("building the `{}` request: {e}", ACTIONS[action])),
        };
        // Each bucket is a Cedar policy set on its own; joined: any satisfied
        // forbid denies, else any satisfied permit allows (INVARIANT in authz.rs).
        let authorizer = Authorizer::new();
        let mut forbids: Vec<String> = Vec::new();
        let mut permits: Vec<String> = Vec::new();
        let mut errors = Vec::new();
        let buckets = match self.set.index[action].buckets(&self.keys) {
            Ok(b) => b,
            Err(e) => return deny(format!("loading the `{}` policies: {e}", ACTIONS[action])),
        };
        for bucket in &buckets {
            let set = match bucket.set() {
                Ok(s) => s,
                Err(e) => return deny(format!("loading the `{}` policies: {e}", ACTIONS[action])),
            };
            let response = authorizer.is_authorized(&request, set, entities);
            let reasons = response.diagnostics().reason().map(ToString::to_string);
            match response.decision() {
                cedar_policy::Decision::Allow => permits.extend(reasons),
                cedar_policy::Decision::Deny => forbids.extend(reasons),
            }
            errors.extend(response.diagnostics().errors().map(ToString::to_string));
        }
        let allowed = forbids.is_empty() && !permits.is_empty() && errors.is_empty();
        // Denied by an error: no policy determined it (a permit that held
        // alongside the error did not allow anything).
        let mut determining = match (forbids.is_empty(), errors.is_empty()) {
            (false, _) => forbids,
            (true, true) => permits,
            (true, false) => Vec::new(),
        };
        determining.sort();
        RequestDecision { action: ACTIONS[action].into(), subject, allowed, determining_policies: determining, errors }
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
    let context =
        if context.mounts.iter().any(|m| m.source.starts_with('/') && normalize(Path::new(&m.source)) != m.source) {
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
    let b = match Builder::new(policies, token, context) {
        Ok(b) => b,
        Err(e) => return Decision::deny_with_error(format!("building the request: {e}")),
    };
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
            requests.push(b.decide(LAUNCH, b.resource.clone(), b.request_fields(), &entities, image_desc));
            for m in context.mounts.iter().filter(|m| m.reaches_host()) {
                let fields = mount_rec(m).map(|mount| {
                    let mut f = vec![
                        ("mount", mount),
                        ("input", Re::new_bool(context.inputs.contains(&m.destination))),
                        ("output", Re::new_bool(context.outputs.contains(&m.destination))),
                        ("profile", string(&context.profile)),
                        ("image", b.image.clone()),
                        ("claims", b.claims.clone()),
                    ];
                    if let Some(ts) = tenant_source(&m.source, token.tenant.as_deref()) {
                        f.push(("tenant_source", string(&ts)));
                    }
                    // The container's own files (Docker's `hosts`,
                    // `resolv.conf` under its id): a policy tells them from
                    // another container's.
                    if let Some(cs) = segment_replaced(&m.source, &context.container_id, CONTAINER_PLACEHOLDER) {
                        f.push(("container_source", string(&cs)));
                    }
                    f
                });
                let path = EntityUid::from_type_name_and_id(b.names.path.clone(), EntityId::new(&m.source));
                requests.push(b.decide(MOUNT, path, fields, &entities, describe_mount(m)));
            }
            for r in &context.egress {
                let fields = egress_rule(r).map(|rule| {
                    vec![
                        ("rule", rule),
                        ("profile", string(&context.profile)),
                        ("image", b.image.clone()),
                        ("claims", b.claims.clone()),
                    ]
                });
                let desc = format!("`{}:{}/{}`", r.cidr, r.port, r.proto);
                requests.push(b.decide(EGRESS, b.resource.clone(), fields, &entities, desc));
            }
        }
        Action::Exec => {
            let Some(exec) = &context.exec else {
                return Decision::deny_with_error("exec request without the exec's process".into());
            };
            let fields = b.request_fields().and_then(|mut f| {
                f.push((
                    "exec",
                    record(vec![
                        ("command", string(exec.args.first().map_or("", String::as_str))),
                        ("args", strings(&exec.args)),
                        ("command_line", string(&exec.args.join(" "))),
                        ("cwd", string(&exec.cwd)),
                        ("uid", Re::new_long(i64::from(exec.uid))),
                        ("gid", Re::new_long(i64::from(exec.gid))),
                        ("additional_gids", longs(&exec.additional_gids)),
                        ("tty", Re::new_bool(exec.tty)),
                        ("capabilities", strings(&exec.capabilities)),
                        ("search_path", strings(&exec.search_path)),
                        ("other_principal", Re::new_bool(exec.other_principal)),
                        ("owner", {
                            let o = &exec.owner;
                            let fields = [("issuer", &o.issuer), ("subject", &o.subject), ("tenant", &o.tenant)];
                            record(
                                fields.into_iter().filter_map(|(k, v)| v.as_deref().map(|v| (k, string(v)))).collect(),
                            )?
                        }),
                    ])?,
                ));
                Ok(f)
            });
            let desc = format!("`{}` in {image_desc}", exec.args.join(" "));
            requests.push(b.decide(EXEC, b.resource.clone(), fields, &entities, desc));
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
