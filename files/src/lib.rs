//! Opening the files an operator names — the configuration, profiles, JWKS,
//! CA bundles, policies and schemas, keys, the audit log — as regular files.
//!
//! `std::fs::read` of a FIFO blocks until something writes to it, so a
//! mistaken path (or one swapped for a FIFO) would hang every `brig`
//! invocation with no error; a device would be read from. Here the path is
//! checked first, so that what is not a regular file is not even opened
//! (opening has effects of its own: a FIFO's writer is let go, a tape is
//! rewound, a terminal can become the controlling one); then the file is
//! opened non-blocking (which a FIFO honours and a regular file ignores)
//! and without taking a terminal, and checked again with `fstat` on the
//! descriptor opened, so what is read is what was checked.

#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a file that is not a regular one is, for the error message.
fn kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Opens `options` at `path` without blocking on a FIFO, and checks that it
/// is a regular file (`InvalidInput` naming what it is otherwise). Returns
/// its metadata too, from the one `fstat`.
pub fn open_regular_with(options: &mut OpenOptions, path: &Path) -> io::Result<(File, std::fs::Metadata)> {
    let not_regular = |meta: &std::fs::Metadata| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{}, not a regular file", kind(meta)))
    };
    // Not there: the open says so, or creates it if asked to.
    if let Some(before) = std::fs::metadata(path).ok().filter(|m| !m.is_file()) {
        return Err(not_regular(&before));
    }
    // Swapped for something else since: refused by the `fstat` below.
    let file = match options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC).open(path) {
        Ok(file) => file,
        // A FIFO opened for writing with no reader, or a socket: say what it
        // is rather than "No such device or address".
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return Err(std::fs::metadata(path).map(|meta| not_regular(&meta)).unwrap_or(e))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    Ok((file, meta))
}

/// Opens `path` for reading, as a regular file, with its metadata.
pub fn open_regular(path: &Path) -> io::Result<(File, std::fs::Metadata)> {
    open_regular_with(OpenOptions::new().read(true), path)
}

/// The most [`read`] and [`read_to_string`] read: every file an operator
/// names (configuration, profile, policy, schema, JWKS, key, cases) is far
/// smaller, and one that is not (a wrong path, a log given by mistake) must
/// not cost seconds and gigabytes before it is refused.
pub const MAX_OPERATOR_FILE: u64 = 16 << 20;

/// `std::fs::read`, of a regular file of at most [`MAX_OPERATOR_FILE`].
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    read_at_most(path, MAX_OPERATOR_FILE)
}

/// `std::fs::read`, of a regular file of at most `max` bytes (a larger one,
/// or one that grows past it while read, is `InvalidData` naming the limit):
/// what a caller hands brig cannot make it read without end.
pub fn read_at_most(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let too_big = || io::Error::new(io::ErrorKind::InvalidData, format!("larger than the {max} bytes allowed"));
    let (file, meta) = open_regular(path)?;
    if meta.len() > max {
        return Err(too_big());
    }
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(too_big());
    }
    Ok(out)
}

/// `std::fs::read_to_string`, of a regular file of at most
/// [`MAX_OPERATOR_FILE`].
pub fn read_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

/// serde's message with the strings it quotes (`invalid type: string
/// "BRIG_TOKEN=eyJ…", expected a sequence`) left out: a value in a spec may
/// be a secret (a token, a password in the environment), and error messages
/// go to the client's logs. The field's path says where the mistake is.
pub fn without_string_values(message: &str) -> String {
    // A string value serde quotes (Debug-quoted: escapes skipped), and the
    // value of an unknown variant (a value in an enum's place, a capability
    // name, may still be a secret pasted in the wrong field). Field names
    // (`unknown field`) are the schema's and stay.
    let message = without_values(message, "string \"", "a string", '"');
    without_values(&message, "unknown variant `", "unknown variant", '`')
}

/// `message` with each `mark`, and the value that follows it up to its
/// closing `close` (not one escaped by a backslash), replaced by `with`.
fn without_values(message: &str, mark: &str, with: &str, close: char) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(mark) {
        out.push_str(&rest[..at]);
        out.push_str(with);
        let value = &rest[at + mark.len()..];
        let mut escaped = false;
        let mut end = value.len();
        for (i, c) in value.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                c if c == close => {
                    end = i + c.len_utf8();
                    break;
                }
                _ => {}
            }
        }
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// What is wrong in a file an operator wrote, said without quoting it.
///
/// Parsers' messages quote the input: the toml crate prints the offending
/// line, serde quotes values (`invalid type: string "..."`). A file given
/// by mistake (a token or key file as the configuration, a secret pasted in
/// the wrong field) would have its content in the error, and errors go to
/// the terminal, the `--log` file and the client's logs. The result is
/// `line L, column C: MESSAGE` (when the parser gave a position), with the
/// values serde quotes left out and control characters escaped.
pub fn located(text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> String {
    let message = printable(&without_string_values(message.trim_end()));
    match span.and_then(|s| text.get(..s.start)) {
        Some(before) => {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// `s` with control characters (C0, C1, DEL) and the characters
/// that hide or reorder text (bidirectional controls, zero-width and other
/// invisible format characters) escaped, so a *name* from a file (a path, a
/// policy id, a profile name) cannot write to the terminal it is shown on
/// or pass for another. Not for text in general: Persian and Hebrew need
/// ZWNJ and RLM, emoji need ZWJ (see [`without_controls`]).
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || is_hiding(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`printable`] of at most the first `max` characters of `s`, with `…`
/// when some were left out: an untrusted value in a message may be of any
/// length.
pub fn printable_cut(s: &str, max: usize) -> String {
    let mut cut: String = s.chars().take(max).collect();
    if s.chars().nth(max).is_some() {
        cut.push('…');
    }
    printable(&cut)
}

/// A character that shows as nothing, or changes how what follows it shows
/// (soft hyphen, zero-width characters, bidirectional controls such as
/// U+202E, the byte-order mark): in a message, such a character in an
/// untrusted value can make it read as another.
pub fn is_hiding(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `s` with control characters other than newline and tab (C0, C1, DEL)
/// escaped, and everything else as it is: what the commands print, which
/// includes JSON (`brig state`: serde escapes control characters, so they
/// never appear raw in JSON and this changes none) and text in any script.
/// An escape sequence in a name printed in it no longer drives the terminal.
pub fn without_controls(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn located_errors_quote_no_value_and_no_line() {
        let text = "[auth]\nmode = \"required\"\nhmac_secret = \"hunter2-SECRET\"\n";
        let at = text.find("hmac_secret").unwrap();
        let e = located(text, Some(at..at + 11), "unknown field `hmac_secret`, expected `mode`\n");
        assert_eq!(e, "line 3, column 1: unknown field `hmac_secret`, expected `mode`");
        let e = located(text, None, "invalid type: string \"hunter2-SECRET\", expected u64");
        assert_eq!(e, "invalid type: a string, expected u64");
        let e = located("x", Some(0..1), "unknown field `\u{1b}[2J\nverified`");
        assert!(!e.chars().any(char::is_control), "{e:?}");
        // A span past the text (or inside a character) gives no position.
        assert_eq!(located("é", Some(1..2), "m"), "m");
        assert_eq!(located("ab\ncd", Some(4..5), "m"), "line 2, column 2: m");
    }

    /// A FIFO with no writer, a directory, a device and a socket are each
    /// refused at once (the FIFO is not waited on), naming what they are; a
    /// regular file and a link to one are read.
    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        for (path, what) in
            [(fifo.as_path(), "a FIFO"), (dir.path(), "a directory"), (Path::new("/dev/zero"), "a device")]
        {
            let e = read(path).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{}", path.display());
            assert!(e.to_string().contains(what), "{}: {e}", path.display());
            assert!(read_to_string(path).is_err());
        }
        // A socket cannot be opened at all (ENXIO): named all the same.
        assert!(read(&sock).unwrap_err().to_string().contains("a socket"));
        // Refused without being opened: a writer waiting for a reader to
        // open the FIFO is still waiting.
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = fifo.clone();
        let writer = std::thread::spawn(move || {
            let opened = OpenOptions::new().write(true).open(&waiting);
            tx.send(opened.is_ok()).unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(read_at_most(&fifo, 10).is_err());
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(),
            "reading the FIFO opened it (its writer went on)"
        );
        let _reader = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();
        assert!(rx.recv().unwrap());
        writer.join().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "text").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_to_string(&file).unwrap(), "text");
        assert_eq!(read(&link).unwrap(), b"text");
        // Opened for appending (the audit log): a regular file is created,
        // a FIFO with no reader fails at once (ENXIO) rather than waiting.
        let appended = open_regular_with(OpenOptions::new().append(true).create(true), &dir.path().join("log"));
        assert!(appended.is_ok());
        let e = open_regular_with(OpenOptions::new().append(true), &fifo).unwrap_err();
        assert!(e.kind() == io::ErrorKind::InvalidInput && e.to_string().contains("a FIFO"), "{e}");
    }

    /// A file over the limit is refused before it is read, a sparse one
    /// too (no memory spent on it); one at the limit is read.
    #[test]
    fn read_at_most_stops_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "0123456789").unwrap();
        assert_eq!(read_at_most(&file, 10).unwrap(), b"0123456789");
        let e = read_at_most(&file, 9).unwrap_err();
        assert!(e.kind() == io::ErrorKind::InvalidData && e.to_string().contains("9 bytes"), "{e}");
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(100 << 30).unwrap();
        assert!(read_at_most(&dir.path().join("sparse"), 1 << 20).is_err());
        assert!(read_at_most(Path::new("/dev/zero"), 1 << 20).unwrap_err().to_string().contains("a device"));
    }
}
