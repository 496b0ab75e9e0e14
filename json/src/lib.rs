//! JSON read strictly where two readers must not disagree.
//!
//! serde_json (like Python's `json`, JavaScript's `JSON.parse` and Go's
//! `encoding/json`) keeps the *last* value of a key an object repeats; other
//! parsers keep the first or fail. A signed statement, an audit line or a
//! token with `"tenant":"evil","tenant":"acme"` therefore says one thing to
//! brig and another to the next tool that reads the same bytes (RFC 8259
//! §4: names "SHOULD be unique"; RFC 7515 §5.2 lets a JWS reader refuse
//! them). Where brig reads such documents it checks them first with
//! [`check_unique_keys`], which walks the whole document (serde_json's own
//! nesting limit applies) and refuses the first repeated key.
//!
//! Written here rather than taken from a crate: cedar-policy-core has the
//! same walk (`JsonValueWithNoDuplicateKeys`), but the standalone
//! attestation verifier should not depend on Cedar; the crates that offer
//! only this are young single-maintainer ones.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

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
    /// Whether the document is JSON but repeats a key.
    pub fn is_duplicate_key(&self) -> bool {
        self.0.to_string().starts_with(DUPLICATE)
    }
}

const DUPLICATE: &str = "duplicate key";

/// Checks that `bytes` is one JSON value in which no object repeats a key.
/// The error names the key (escaped: it comes from the input) and where it
/// is (line and column).
pub fn check_unique_keys(bytes: &[u8]) -> Result<(), StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Walk::deserialize(&mut de).and_then(|_| de.end()).map_err(StrictJsonError)
}

/// A value walked for its keys and dropped.
struct Walk;

impl<'de> Deserialize<'de> for Walk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Walk, D::Error> {
        d.deserialize_any(WalkVisitor)
    }
}

struct WalkVisitor;

impl<'de> Visitor<'de> for WalkVisitor {
    type Value = Walk;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_str<E>(self, _: &str) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_unit<E>(self) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Walk, A::Error> {
        while seq.next_element::<Walk>()?.is_some() {}
        Ok(Walk)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Walk, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format_args!("{DUPLICATE} `{}`", key.escape_default())));
            }
            map.next_value::<Walk>()?;
            seen.insert(key);
        }
        Ok(Walk)
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
            let e = check_unique_keys(doc.as_bytes()).unwrap_err();
            assert!(e.is_duplicate_key(), "{doc}: {e}");
        }
        let e = check_unique_keys(br#"{"x":{"id":1,"id":2}}"#).unwrap_err();
        assert!(e.to_string().contains("`id`") && e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn unique_keys_and_plain_values_pass() {
        for doc in [r#"{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}"#, "[]", "{}", "1", "\"s\"", "null", "[1.5,true]"] {
            check_unique_keys(doc.as_bytes()).unwrap();
        }
    }

    #[test]
    fn a_key_from_the_input_is_shown_escaped() {
        let e = check_unique_keys(b"{\"\\u001b[2J\\n\":1,\"\\u001b[2J\\n\":2}").unwrap_err();
        let text = e.to_string();
        assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
    }

    #[test]
    fn what_is_not_json_is_refused_and_not_called_a_duplicate() {
        for doc in ["{\"a\":1", "{\"a\":1} x", "", "{'a':1}"] {
            let e = check_unique_keys(doc.as_bytes()).unwrap_err();
            assert!(!e.is_duplicate_key(), "{doc}: {e}");
        }
        // serde_json's nesting limit holds: no stack overflow.
        let deep = "[".repeat(100_000);
        assert!(check_unique_keys(deep.as_bytes()).is_err());
    }
}
