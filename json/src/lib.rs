//! JSON read strictly where two readers must not disagree.
//!
//! serde_json (like Python's `json`, JavaScript's `JSON.parse` and Go's
//! `encoding/json`) keeps the *last* value of a key an object repeats; other
//! parsers keep the first or fail. A signed statement, an audit line or a
//! token with `"tenant":"evil","tenant":"acme"` therefore says one thing to
//! brig and another to the next tool that reads the same bytes (RFC 8259
//! §4: names "SHOULD be unique"; RFC 7515 §5.2 lets a JWS reader refuse
//! them). Where brig reads such documents it parses them with
//! [`from_slice`], which builds the same `serde_json::Value` serde_json
//! would, in the same one pass (its nesting limit applies), and refuses the
//! first repeated key.
//!
//! Written here rather than taken from a crate: cedar-policy-core has the
//! same walk (`JsonValueWithNoDuplicateKeys`), but the standalone
//! attestation verifier should not depend on Cedar; the crates that offer
//! only this are young single-maintainer ones.

#![forbid(unsafe_code)]

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a document was refused: not JSON, or a key repeated in an object.
#[derive(Debug)]
pub struct StrictJsonError(serde_json::Error);

impl fmt::Display for StrictJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StrictJsonError {}

impl StrictJsonError {
    /// The line (1-based) where reading stopped.
    pub fn line(&self) -> usize {
        self.0.line()
    }

    /// The column (1-based) where reading stopped.
    pub fn column(&self) -> usize {
        self.0.column()
    }

    /// Whether the document is JSON but repeats a key.
    pub fn is_duplicate_key(&self) -> bool {
        self.0.to_string().starts_with(DUPLICATE)
    }
}

const DUPLICATE: &str = "duplicate key";

/// Parses `bytes` as one JSON value in which no object repeats a key. The
/// error names the key (escaped: it comes from the input) and where it is
/// (line and column).
pub fn from_slice(bytes: &[u8]) -> Result<Value, StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict::deserialize(&mut de).map_err(StrictJsonError)?;
    de.end().map_err(StrictJsonError)?;
    Ok(value.0)
}

/// A value read with its keys checked.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("{DUPLICATE} `{}`", key.escape_default())));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Strict(Value::Object(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        for doc in [
            r#"{"a":1,"a":1}"#,
            r#"{"tenant":"evil","x":[],"tenant":"acme"}"#,
            r#"{"p":{"q":[{"r":1},{"s":1,"s":2}]}}"#,
            r#"[{"k":{}}, {"k":1,"k":2}]"#,
            // The same name spelled two ways is the same key.
            r#"{"a":1,"\u0061":2}"#,
        ] {
            let e = from_slice(doc.as_bytes()).unwrap_err();
            assert!(e.is_duplicate_key(), "{doc}: {e}");
        }
        let e = from_slice(br#"{"x":{"id":1,"id":2}}"#).unwrap_err();
        assert!(e.to_string().contains("`id`") && e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn unique_keys_and_plain_values_pass() {
        for doc in [
            r#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}"#,
            "[]",
            "{}",
            "1",
            "\"s\\u00e9\"",
            "null",
            "[1.5,true,-3,18446744073709551615]",
        ] {
            // The value is the one serde_json reads.
            let expected: Value = serde_json::from_str(doc).unwrap();
            assert_eq!(from_slice(doc.as_bytes()).unwrap(), expected, "{doc}");
        }
    }

    #[test]
    fn a_key_from_the_input_is_shown_escaped() {
        let e = from_slice(b"{\"\\u001b[2J\\n\":1,\"\\u001b[2J\\n\":2}").unwrap_err();
        let text = e.to_string();
        assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
    }

    #[test]
    fn what_is_not_json_is_refused_and_not_called_a_duplicate() {
        for doc in ["{\"a\":1", "{\"a\":1} x", "", "{'a':1}"] {
            let e = from_slice(doc.as_bytes()).unwrap_err();
            assert!(!e.is_duplicate_key(), "{doc}: {e}");
        }
        // serde_json's nesting limit holds: no stack overflow.
        let deep = "[".repeat(100_000);
        assert!(from_slice(deep.as_bytes()).is_err());
    }
}
