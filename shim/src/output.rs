//! Standard output of the commands that print (`state`, `list`, `ps`,
//! `events`, `features`, `spec`, the policy and profile tools).
//!
//! `println!` panics when the reader has gone away (`brig list | head -1`);
//! runc and other Unix tools end quietly then (SIGPIPE). brig keeps SIGPIPE
//! ignored, so that a peer closing any *other* pipe or socket is an error it
//! handles, and ends with status 141 (128 + SIGPIPE) only when standard
//! output is closed. Any other failure to write is a message and status 1.

use std::io::Write;

/// Writes `args` (and a newline if `newline`) to standard output; see the
/// module comment for what happens when that fails.
///
/// Control characters other than newline and tab are written escaped
/// (`\u{1b}`): what the commands print comes from files and specs others
/// wrote (policy ids, file names, profile names, mount paths), and an escape
/// sequence in one would drive the terminal it is shown on. JSON output
/// (`state`, `list`, `events`) is unchanged by this: serde writes every
/// control character as an escape, and the rest of Unicode (zero-width
/// joiners in emoji, ZWNJ in Persian) is left as it is. Names that could
/// forge a line or hide text are escaped where they are printed
/// (`brig_files::printable`).
pub fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    let text = brig_files::without_controls(&args.to_string());
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| if newline { stdout.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("brig: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// `println!` for brig's commands (see [`write`]).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*), true) };
}

/// `print!` for brig's commands (see [`write`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*), false) };
}
