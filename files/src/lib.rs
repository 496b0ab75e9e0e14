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

/// `std::fs::read`, of a regular file only.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let (mut file, meta) = open_regular(path)?;
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut out)?;
    Ok(out)
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

/// `std::fs::read_to_string`, of a regular file only.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    let (mut file, meta) = open_regular(path)?;
    let mut out = String::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_string(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
