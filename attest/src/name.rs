//! Names: how a path (arbitrary bytes on Linux) becomes a string in a
//! statement, and back.
//!
//! A name is the relative path's bytes with every byte that is `%`, an ASCII
//! control character (0x00-0x1f, 0x7f) or part of an invalid UTF-8 sequence
//! written as `%XX` (two upper-case hex digits); every other character is kept
//! as it is. The mapping is a bijection between byte strings and *canonical*
//! names, so a name identifies exactly one path, a path has exactly one name,
//! and no name carries a newline, a tab or a terminal escape sequence.

/// Escapes raw path bytes into a name.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' || c.is_ascii_control() {
                push_pct(&mut out, c as u8);
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            push_pct(&mut out, b);
        }
    }
    out
}

fn push_pct(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

/// Decodes a name back into path bytes; `None` if it is not canonical (a
/// stray `%`, a raw control character, or an escape that [`escape`] would not
/// have produced).
pub fn unescape(name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len());
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = hex_val(*bytes.get(i + 1)?)?;
            let lo = hex_val(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else if b.is_ascii_control() {
            return None;
        } else {
            out.push(b);
            i += 1;
        }
    }
    // INVARIANT: only canonical names are accepted, so that two different
    // strings never name the same file.
    (escape(&out) == name).then_some(out)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_kept() {
        assert_eq!(escape(b"bin/busybox"), "bin/busybox");
        assert_eq!(escape("données/é.txt".as_bytes()), "données/é.txt");
        assert_eq!(escape(b"a b"), "a b");
    }

    #[test]
    fn escapes_percent_controls_and_invalid_utf8() {
        assert_eq!(escape(b"50%"), "50%25");
        assert_eq!(escape(b"a\nb\tc\x1b[31m"), "a%0Ab%09c%1B[31m");
        assert_eq!(escape(b"bad\xff\xfe"), "bad%FF%FE");
        assert_eq!(escape(b"\x7f"), "%7F");
    }

    #[test]
    fn round_trips_and_rejects_non_canonical() {
        for raw in [&b"x"[..], b"50%", b"a\nb", b"\xff\x00%", "é".as_bytes(), b""] {
            assert_eq!(unescape(&escape(raw)).as_deref(), Some(raw));
        }
        assert_eq!(unescape("%61"), None, "`a` must be spelled `a`");
        assert_eq!(unescape("%0a"), None, "lower-case hex is not canonical");
        assert_eq!(unescape("50%"), None);
        assert_eq!(unescape("a\nb"), None);
        // An escaped valid UTF-8 sequence is not canonical either.
        assert_eq!(unescape("%C3%A9"), None);
    }
}
