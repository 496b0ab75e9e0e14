//! The token's claims as Cedar sees them: the schema's `Brig::Claims` record
//! type decides which claims are passed and with which types.
//!
//! brig builds `context.claims` itself (rather than asking Cedar to parse
//! JSON against the schema, which costs ~100 µs a request), so this module
//! is the type check: a declared claim whose value does not have its
//! declared type is an error, and an error denies.

use std::collections::BTreeMap;

use cedar_policy::RestrictedExpression;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::util::shown;

/// A claim's declared type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ClaimType {
    String,
    Long,
    Bool,
    IpAddr,
    Set(Box<ClaimType>),
    Record(BTreeMap<String, ClaimAttr>),
}

/// A record attribute: its type and whether it must be present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClaimAttr {
    pub(crate) ty: ClaimType,
    pub(crate) required: bool,
}

/// Reads the attributes of `Brig::Claims` from the schema in Cedar's JSON format.
pub(crate) fn declared_claims(schema_json: &Value) -> Result<BTreeMap<String, ClaimAttr>, String> {
    let common = schema_json.pointer("/Brig/commonTypes").and_then(Value::as_object);
    let claims = common.and_then(|c| c.get("Claims")).ok_or("no common type `Brig::Claims`")?;
    match claim_type(claims, common, 0)? {
        ClaimType::Record(attrs) => Ok(attrs),
        _ => Err("`Brig::Claims` is not a record".into()),
    }
}

fn claim_type(ty: &Value, common: Option<&Map<String, Value>>, depth: usize) -> Result<ClaimType, String> {
    if depth > 16 {
        return Err("`Brig::Claims` nests too deeply".into());
    }
    let kind = ty.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "Set" => {
            let element = ty.get("element").ok_or("a `Set` without an element type")?;
            Ok(ClaimType::Set(Box::new(claim_type(element, common, depth + 1)?)))
        }
        "Record" => {
            let mut attrs = BTreeMap::new();
            if let Some(map) = ty.get("attributes").and_then(Value::as_object) {
                for (name, attr) in map {
                    let required = attr.get("required").and_then(Value::as_bool).unwrap_or(true);
                    attrs.insert(name.clone(), ClaimAttr { ty: claim_type(attr, common, depth + 1)?, required });
                }
            }
            Ok(ClaimType::Record(attrs))
        }
        "String" => Ok(ClaimType::String),
        "Long" => Ok(ClaimType::Long),
        "Boolean" | "Bool" => Ok(ClaimType::Bool),
        "Extension" | "EntityOrCommon" | "Entity" => {
            let name = ty.get("name").and_then(Value::as_str).unwrap_or("");
            let name = name.strip_prefix("__cedar::").unwrap_or(name);
            match name {
                "String" => Ok(ClaimType::String),
                "Long" => Ok(ClaimType::Long),
                "Bool" | "Boolean" => Ok(ClaimType::Bool),
                "ipaddr" => Ok(ClaimType::IpAddr),
                other => {
                    let local = other.strip_prefix("Brig::").unwrap_or(other);
                    match common.and_then(|c| c.get(local)) {
                        Some(t) if kind != "Entity" && kind != "Extension" => claim_type(t, common, depth + 1),
                        _ => Err(format!(
                            "claims of type `{}` are not supported (String, Long, Bool, ipaddr, sets and records are)",
                            shown(other)
                        )),
                    }
                }
            }
        }
        other => Err(format!("claims of type `{}` are not supported", shown(other))),
    }
}

/// `context.claims`: every declared claim the token has, checked against its type.
pub(crate) fn claims_record(
    declared: &BTreeMap<String, ClaimAttr>,
    claims: &Map<String, Value>,
) -> Result<RestrictedExpression, String> {
    record(declared, claims, "")
}

fn record(
    attrs: &BTreeMap<String, ClaimAttr>,
    values: &Map<String, Value>,
    path: &str,
) -> Result<RestrictedExpression, String> {
    let mut fields = Vec::new();
    for (name, attr) in attrs {
        let here = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
        match values.get(name) {
            None | Some(Value::Null) if attr.required => {
                return Err(format!("claim `{}` is required by the schema", shown(&here)))
            }
            None | Some(Value::Null) => {}
            Some(v) => fields.push((name.clone(), expr(v, &attr.ty, &here)?)),
        }
    }
    RestrictedExpression::new_record(fields).map_err(|e| e.to_string())
}

fn expr(v: &Value, ty: &ClaimType, path: &str) -> Result<RestrictedExpression, String> {
    let wrong = |want: &str| format!("claim `{}` must be {want}", shown(path));
    match (ty, v) {
        (ClaimType::String, Value::String(s)) => Ok(RestrictedExpression::new_string(s.clone())),
        (ClaimType::String, _) => Err(wrong("a string")),
        (ClaimType::Long, Value::Number(n)) => {
            n.as_i64().map(RestrictedExpression::new_long).ok_or_else(|| wrong("an integer"))
        }
        (ClaimType::Long, _) => Err(wrong("an integer")),
        (ClaimType::Bool, Value::Bool(b)) => Ok(RestrictedExpression::new_bool(*b)),
        (ClaimType::Bool, _) => Err(wrong("a boolean")),
        (ClaimType::IpAddr, Value::String(s)) => {
            let ok = match s.split_once('/') {
                Some((ip, prefix)) => ip.parse::<std::net::IpAddr>().is_ok() && prefix.parse::<u8>().is_ok(),
                None => s.parse::<std::net::IpAddr>().is_ok(),
            };
            if ok {
                Ok(RestrictedExpression::new_ip(s))
            } else {
                Err(wrong("an IP address or CIDR"))
            }
        }
        (ClaimType::IpAddr, _) => Err(wrong("an IP address or CIDR string")),
        (ClaimType::Set(element), Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(expr(item, element, &format!("{path}[{i}]"))?);
            }
            Ok(RestrictedExpression::new_set(out))
        }
        // A single string where a set of strings is declared is a set of
        // one, as JWT reads `aud` and brig reads the roles claim for the
        // principal's `Role`s (docs/policy.md).
        (ClaimType::Set(element), Value::String(_)) if **element == ClaimType::String => {
            Ok(RestrictedExpression::new_set([expr(v, element, path)?]))
        }
        (ClaimType::Set(_), _) => Err(wrong("an array")),
        (ClaimType::Record(attrs), Value::Object(map)) => {
            if let Some(extra) = map.keys().find(|k| !attrs.contains_key(*k)) {
                return Err(format!(
                    "claim `{}` has `{}`, which the schema does not declare",
                    shown(path),
                    shown(extra)
                ));
            }
            record(attrs, map, path)
        }
        (ClaimType::Record(_), _) => Err(wrong("an object")),
    }
}
