//! Small helpers shared by the modules.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most characters of an untrusted value shown in a message.
const SHOWN_MAX: usize = 64;

/// An untrusted string made safe to put in a message: control and hiding
/// characters (`brig_files::is_hiding`: bidirectional controls, zero-width
/// characters) escaped, cut to 64 characters.
pub(crate) fn shown(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == SHOWN_MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else if brig_files::is_hiding(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The time `secs` seconds after the Unix epoch (the epoch for negative values).
pub(crate) fn from_unix_secs(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// RFC 3339 UTC time with seconds, e.g. `2025-01-31T12:00:00Z`.
pub(crate) fn rfc3339(secs: i64) -> String {
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => format!("@{secs}"),
    }
}

/// RFC 3339 UTC time with milliseconds.
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    match chrono::DateTime::from_timestamp(secs, d.subsec_nanos()) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => format!("@{secs}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_escapes_and_cuts() {
        assert_eq!(shown("a\nb"), "a\\nb");
        // A right-to-left override would show `kid-evil` reversed.
        assert_eq!(shown("kid\u{202e}live"), "kid\\u{202e}live");
        assert_eq!(shown("a\u{200b}b"), "a\\u{200b}b");
        assert_eq!(shown(&"x".repeat(100)).chars().count(), 65);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
