//! Which attributes of `context` a policy set reads, from the policies'
//! text, so that a request's context carries only those.
//!
//! Turning Cedar values into a request context is most of what a decision
//! costs (`benches/authz.rs`); a set that reads `context.devices` and
//! `context.timeout_secs` needs neither the mounts nor the claims built.
//!
//! Soundness: leaving out an attribute is safe only if no policy can
//! observe it, and `has` can observe an absence (`forbid … when { context
//! has x && … }`), so the reader never under-reports. It reads the text as
//! code throughout, strings and comments included: a `context` there is
//! treated like a real one, which can only add attributes or give up. Every
//! occurrence of the token `context` that is not an attribute name (after
//! `.` or `has`) or part of a path (after `::`) must be followed by `.name`,
//! `has name`, `has "name"` or `["name"]`; anything else (the whole record
//! used, a record key `context:`, an escape in the name, a comment in
//! between) means "every attribute", which is only slower.

use std::collections::BTreeSet;

/// Names this reader's rules in the policy cache's digest (`authz.rs`): a
/// change to [`ContextUse::of`] must change it, so that no entry keeps a
/// list an older reader made.
pub(crate) const READER_VERSION: &str = "context-use/1";

/// The top-level `context` attributes a policy set can read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum ContextUse {
    /// Possibly any of them.
    #[default]
    All,
    /// Only these.
    Only(BTreeSet<String>),
}

impl ContextUse {
    /// Reads the policies' texts.
    pub(crate) fn of<'a>(texts: impl IntoIterator<Item = &'a str>) -> ContextUse {
        let mut names = BTreeSet::new();
        for text in texts {
            if !scan(text, &mut names) {
                return ContextUse::All;
            }
        }
        ContextUse::Only(names)
    }

    /// Whether a request's context must carry `attr`.
    pub(crate) fn needs(&self, attr: &str) -> bool {
        match self {
            ContextUse::All => true,
            ContextUse::Only(names) => names.contains(attr),
        }
    }

    /// For the cache: `None` is [`ContextUse::All`].
    pub(crate) fn to_list(&self) -> Option<Vec<String>> {
        match self {
            ContextUse::All => None,
            ContextUse::Only(names) => Some(names.iter().cloned().collect()),
        }
    }

    pub(crate) fn from_list(list: Option<Vec<String>>) -> ContextUse {
        list.map_or(ContextUse::All, |l| ContextUse::Only(l.into_iter().collect()))
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return None;
    }
    let n = b.iter().take_while(|c| is_ident(**c)).count();
    Some(&s[..n])
}

/// A string literal without escapes at the start of `s`: (its content, the rest).
fn plain_string(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let end = body.find(['"', '\\'])?;
    body[end..].starts_with('"').then(|| (&body[..end], &body[end + 1..]))
}

/// Whether `s` ends with the keyword `kw` as a whole token.
fn ends_with_keyword(s: &str, kw: &str) -> bool {
    s.strip_suffix(kw).is_some_and(|before| !before.bytes().last().is_some_and(is_ident))
}

/// Adds the attributes `text` reads from `context` to `out`; `false` if it
/// may read the record otherwise.
fn scan(text: &str, out: &mut BTreeSet<String>) -> bool {
    const VAR: &str = "context";
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(found) = text[from..].find(VAR) {
        let at = from + found;
        let end = at + VAR.len();
        from = end;
        if (at > 0 && is_ident(bytes[at - 1])) || (end < bytes.len() && is_ident(bytes[end])) {
            continue; // part of another identifier (`contexts`, `my_context`)
        }
        let before = text[..at].trim_end();
        // What precedes may be the end of a comment (`// checked.` then a
        // line `context has x`): on a line with `//`, nothing is set aside.
        let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
        if !line.contains("//") && (before.ends_with('.') || before.ends_with("::") || ends_with_keyword(before, "has"))
        {
            continue; // an attribute named `context`, or a path segment
        }
        let rest = text[end..].trim_start();
        let name = if let Some(r) = rest.strip_prefix('.') {
            let r = r.trim_start();
            let Some(name) = ident(r) else { return false };
            let next = r[name.len()..].trim_start();
            if next.starts_with('(') || next.starts_with("//") {
                return false; // a method call on the record, or a comment before what follows
            }
            name
        } else if let Some(r) = rest.strip_prefix("has").filter(|r| !r.bytes().next().is_some_and(is_ident)) {
            let r = r.trim_start();
            match ident(r) {
                Some(name) => name,
                None => match plain_string(r) {
                    Some((name, _)) => name,
                    None => return false,
                },
            }
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some((name, after)) = plain_string(r.trim_start()) else { return false };
            if !after.trim_start().starts_with(']') {
                return false;
            }
            name
        } else {
            return false;
        };
        out.insert(name.to_string());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(names: &[&str]) -> ContextUse {
        ContextUse::Only(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn attribute_reads_are_collected() {
        let text = r#"
            permit (principal, action, resource) when { context.devices.isEmpty() && context . timeout_secs <= 60 };
            forbid (principal, action, resource) when { context has egress && context has "inputs" };
            permit (principal, action, resource) when { context["mount"].read_write == false };
            permit (principal, action, resource) when { principal has context && principal.context == 1 };
            permit (principal, action, resource) when { Brig::context::"x" == resource && my_context.x == contexts.y };
        "#;
        assert_eq!(ContextUse::of([text]), only(&["devices", "egress", "inputs", "mount", "timeout_secs"]));
    }

    #[test]
    fn any_other_use_of_the_record_is_every_attribute() {
        for text in [
            "permit (principal, action, resource) when { context == {} };",
            "permit (principal, action, resource) when { {context: 1}.context == 1 };",
            "permit (principal, action, resource) when { context has \"a\\u{62}\" };",
            "permit (principal, action, resource) when { context[\"a\\\"b\"] == 1 };",
            "permit (principal, action, resource) when { context // the request\n.x == 1 };",
            "permit (principal, action, resource) when { context.isEmpty() };",
            "permit (principal, action, resource) when { context.contains // c\n(1) };",
            "permit (principal, action, resource) when { [context].contains(context) };",
            "permit (principal, action, resource) when { context has 1 };",
            "permit (principal, action, resource) when { context hasx };",
            "permit (principal, action, resource) when { context.1 };",
            "permit (principal, action, resource) when { context",
        ] {
            assert_eq!(ContextUse::of([text]), ContextUse::All, "{text}");
        }
        // One text that gives up is enough.
        assert_eq!(ContextUse::of(["when { context.a }", "when { context }"]), ContextUse::All);
    }

    #[test]
    fn strings_and_comments_count_as_code() {
        // Only slower, never fewer attributes.
        assert_eq!(
            ContextUse::of([r#"@id("context.profile") permit (principal, action, resource);"#]),
            only(&["profile"])
        );
        assert_eq!(ContextUse::of(["// the context\npermit (principal, action, resource);"]), ContextUse::All);
    }

    #[test]
    fn a_comment_ending_like_an_attribute_access_hides_nothing() {
        for (text, want) in [
            ("forbid (principal, action, resource) when { // checked.\n context has x };", "x"),
            ("forbid (principal, action, resource) when { // what it has\n context has x };", "x"),
            ("forbid (principal, action, resource) when { // Brig::\n context has x };", "x"),
        ] {
            assert_eq!(ContextUse::of([text]), only(&[want]), "{text}");
        }
    }

    #[test]
    fn no_use_is_no_attribute() {
        assert_eq!(ContextUse::of(["permit (principal, action, resource);"]), only(&[]));
        assert!(!only(&[]).needs("profile"));
        assert!(ContextUse::All.needs("profile"));
    }
}
