//! brig's patch of cedar-policy-core (third_party/README.md) reads plain
//! identifiers and names without Cedar's parser; these tests check that it
//! gives exactly what the parser gives, over every short string of an
//! alphabet that covers the grammar's corner cases, and every keyword.

use std::str::FromStr;

use cedar_policy_core::ast::{Id, InternalName, Name};
use cedar_policy_core::parser::text_to_cst;
use cedar_policy_core::{default_from_normalized_str, FromNormalizedStr};

/// Every string up to `len` characters over `alphabet`, plus the words the
/// grammar treats specially and strings built from them.
fn corpus(alphabet: &[&str], len: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut level = vec![String::new()];
    for _ in 0..len {
        let mut next = Vec::new();
        for s in &level {
            for a in alphabet {
                next.push(format!("{s}{a}"));
            }
        }
        all.extend(next.iter().cloned());
        level = next;
    }
    let words = [
        "true",
        "false",
        "if",
        "then",
        "else",
        "in",
        "is",
        "like",
        "has",
        "permit",
        "forbid",
        "when",
        "unless",
        "principal",
        "action",
        "resource",
        "context",
        "__cedar",
        "ip",
        "ipaddr",
        "isInRange",
        "decimal",
    ];
    for w in words {
        for s in [
            w.to_string(),
            format!("{w}x"),
            format!("x{w}"),
            format!("_{w}"),
            format!("{w}::A"),
            format!("A::{w}"),
            format!("Brig::{w}::B"),
            format!(" {w}"),
            format!("{w}\n"),
            format!("?{w}"),
            w.to_uppercase(),
        ] {
            all.push(s);
        }
    }
    all.extend(["Brig::Subject", "Brig::Action", "a//c", "a /*", "\"a\"", "a::::b", "::", "a::"].map(String::from));
    all
}

const ALPHABET: [&str; 8] = ["a", "Z", "_", "1", ":", " ", "é", "-"];

#[test]
fn identifiers_read_as_the_grammar_reads_them() {
    let (mut checked, mut accepted) = (0, 0);
    for s in corpus(&ALPHABET, 4) {
        let fast = Id::from_str(&s).map_err(|e| e.to_string());
        let parsed = match text_to_cst::parse_ident(&s) {
            Ok(node) => node.to_valid_ident().map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(fast.is_ok(), parsed.is_ok(), "{s:?}: patched {fast:?}, grammar {parsed:?}");
        if let (Ok(a), Ok(b)) = (&fast, &parsed) {
            assert_eq!(a, b, "{s:?}");
            assert_eq!(a.as_ref(), b.as_ref(), "{s:?}");
            accepted += 1;
        }
        checked += 1;
    }
    assert!(checked > 4000 && accepted > 300, "{checked} strings, {accepted} identifiers");
}

#[test]
fn normalized_names_read_as_the_parser_reads_them() {
    let mut accepted = 0;
    for s in corpus(&ALPHABET, 4) {
        let fast = Name::from_normalized_str(&s).map(|n| n.to_string()).ok();
        accepted += usize::from(fast.is_some());
        let reference = default_from_normalized_str::<Name>(&s, || "Name").map(|n| n.to_string()).ok();
        assert_eq!(fast, reference, "Name {s:?}");
        let fast = InternalName::from_normalized_str(&s).map(|n| n.to_string()).ok();
        let reference = default_from_normalized_str::<InternalName>(&s, || "InternalName").map(|n| n.to_string()).ok();
        assert_eq!(fast, reference, "InternalName {s:?}");
    }
    assert!(accepted > 300, "{accepted} names");
}
