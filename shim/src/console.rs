//! The job's terminal for a foreground `run` or `exec` that has
//! `process.terminal` and no `--console-socket`: brig takes the
//! pseudo-terminal's master itself and copies between it and its own stdin
//! and stdout, as `runc run` and `runc exec` do. The caller's terminal is put
//! in raw mode for the while (the job's terminal does the line editing and
//! echo) and restored afterwards; its size is the job's, and follows it on
//! `SIGWINCH`. Docker, Podman and containerd always pass a console socket and
//! copy themselves; this is for people typing `brig run`.
//!
//! The master comes as runc's protocol has it: libcontainer connects to a
//! socket path during the build and sends the master over it. The socket is
//! in a fresh directory only the caller can enter, and the connection must
//! come from this very process (libcontainer connects from it before it
//! forks): nobody else can hand brig a descriptor of their choosing.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Where libcontainer sends the master: a listening socket in a private
/// temporary directory (removed when this is dropped).
#[derive(Debug)]
pub struct ConsoleListener {
    path: PathBuf,
    listener: UnixListener,
    _dir: tempfile::TempDir,
}

impl ConsoleListener {
    pub fn new() -> io::Result<ConsoleListener> {
        // `tempfile` makes the directory 0700.
        let dir = tempfile::Builder::new().prefix("brig-console-").tempdir()?;
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        Ok(ConsoleListener { path, listener, _dir: dir })
    }

    /// The path to give libcontainer as the console socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The master libcontainer sent during the build (its connection is
    /// already queued by then: no waiting).
    pub fn receive(self) -> io::Result<OwnedFd> {
        use nix::sys::socket::{getsockopt, recvmsg, sockopt, ControlMessageOwned, MsgFlags};
        let (stream, _) = self.listener.accept().map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => io::Error::other("the container's terminal was never sent"),
            _ => e,
        })?;
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        let peer = getsockopt(&stream, sockopt::PeerCredentials).map_err(io::Error::from)?;
        if peer.pid() != std::process::id() as libc::pid_t {
            return Err(io::Error::other(format!(
                "the console socket was connected by process {}, not by this brig",
                peer.pid()
            )));
        }
        let mut buf = [0u8; 4096];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
        let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
            .map_err(io::Error::from)?;
        let mut master = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: the kernel installed this descriptor in this
                    // process for this message; nothing else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    if master.is_none() {
                        master = Some(owned);
                    }
                }
            }
        }
        master.ok_or_else(|| io::Error::other("no descriptor came with the container's terminal"))
    }
}

/// The job's terminal, attached to the caller's: the caller's terminal
/// settings come back when this is dropped.
#[derive(Debug)]
pub struct Terminal {
    master: OwnedFd,
    saved: Option<Termios>,
}

fn stdin_fd() -> BorrowedFd<'static> {
    // SAFETY: descriptor 0 stays open for the life of the process (brig never
    // closes it); borrowing it does not take ownership.
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// The caller's window size (rows, columns), when its stdin is a terminal:
/// the job's terminal is made that size (`process.consoleSize`), so that a
/// job that looks at once (an exec'd process starts as soon as it is made)
/// sees it.
pub fn caller_size() -> Option<oci_spec::runtime::Box> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which lives across the call.
    let ok = unsafe { libc::ioctl(stdin_fd().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_row > 0 && ws.ws_col > 0).then(|| {
        oci_spec::runtime::BoxBuilder::default()
            .height(u64::from(ws.ws_row))
            .width(u64::from(ws.ws_col))
            .build()
            .unwrap_or_default()
    })
}

/// Gives `to` the window size of `from`, when `from` is a terminal.
fn copy_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which lives across the call.
    if unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0 {
        // SAFETY: TIOCSWINSZ reads one winsize from `ws`.
        unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

impl Terminal {
    /// Puts the caller's terminal (stdin, if it is one) in raw mode and gives
    /// the job's terminal its size.
    pub fn attach(master: OwnedFd) -> Terminal {
        let stdin = stdin_fd();
        let mut saved = None;
        if nix::unistd::isatty(stdin.as_raw_fd()).unwrap_or(false) {
            if let Ok(settings) = termios::tcgetattr(stdin) {
                let mut raw = settings.clone();
                termios::cfmakeraw(&mut raw);
                if termios::tcsetattr(stdin, SetArg::TCSANOW, &raw).is_ok() {
                    saved = Some(settings);
                }
            }
            copy_size(stdin, master.as_fd());
        }
        Terminal { master, saved }
    }

    /// Copies between the caller and the job's terminal until `pid` ends,
    /// and returns its exit code (128 + the signal if a signal ended it).
    /// The signals of `mask`, which the caller has blocked, are read here:
    /// `SIGWINCH` resizes the job's terminal, those `forward` accepts are sent
    /// to `pid`.
    pub fn relay(&self, pid: Pid, mask: &SigSet, forward: impl Fn(Signal) -> bool) -> io::Result<i32> {
        let signals = SignalFd::with_flags(mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        // Non-blocking: input the job does not read yet waits here (and no
        // more is read from the caller meanwhile) instead of blocking brig,
        // which must go on copying output and forwarding signals.
        set_nonblocking(&self.master)?;
        let mut stdin_open = true;
        let mut master_open = true;
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        let mut stdout = io::stdout().lock();
        loop {
            // It may have ended before the signal descriptor existed.
            if let Some(code) = reap(pid)? {
                self.drain(&mut buf, &mut stdout);
                return Ok(code);
            }
            let stdin = stdin_fd();
            let read_input = stdin_open && pending.is_empty();
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            if master_open {
                let events = match pending.is_empty() {
                    true => PollFlags::POLLIN,
                    false => PollFlags::POLLIN | PollFlags::POLLOUT,
                };
                fds.push(PollFd::new(self.master.as_fd(), events));
            }
            if read_input {
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).unwrap_or(PollFlags::empty());
            let (sig_ev, master_ev, stdin_ev) = (
                ready(0),
                if master_open { ready(1) } else { PollFlags::empty() },
                if read_input { ready(if master_open { 2 } else { 1 }) } else { PollFlags::empty() },
            );
            if master_ev.contains(PollFlags::POLLOUT) && !pending.is_empty() {
                match nix::unistd::write(&self.master, &pending) {
                    Ok(n) => drop(pending.drain(..n)),
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(_) => {
                        pending.clear();
                        stdin_open = false;
                    }
                }
            }
            if master_ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                match read_fd(self.master.as_fd(), &mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = stdout.write_all(&buf[..n]).and_then(|()| stdout.flush());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // 0 or EIO: no process holds the job's side any more.
                    Ok(_) | Err(_) => master_open = false,
                }
            }
            if stdin_ev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                match io::stdin().lock().read(&mut buf) {
                    Ok(n) if n > 0 => pending.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // End of input (as runc, the job's terminal gets no EOF
                    // character: it reads on until it ends by itself).
                    Ok(_) | Err(_) => stdin_open = false,
                }
            }
            if sig_ev.contains(PollFlags::POLLIN) {
                while let Ok(Some(info)) = signals.read_signal() {
                    let Ok(sig) = Signal::try_from(info.ssi_signo as libc::c_int) else { continue };
                    match sig {
                        Signal::SIGCHLD => {}
                        Signal::SIGWINCH => copy_size(stdin_fd(), self.master.as_fd()),
                        s if forward(s) => {
                            let _ = nix::sys::signal::kill(pid, s);
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// What the job wrote before it ended and brig has not copied yet (at
    /// most 32 reads: a process still holding the terminal may go on writing).
    fn drain(&self, buf: &mut [u8], out: &mut impl Write) {
        for _ in 0..32 {
            match read_fd(self.master.as_fd(), buf) {
                Ok(n) if n > 0 && out.write_all(&buf[..n]).is_ok() => {}
                _ => break,
            }
        }
        let _ = out.flush();
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Some(settings) = &self.saved {
            let _ = termios::tcsetattr(stdin_fd(), SetArg::TCSANOW, settings);
        }
    }
}

fn reap(pid: Pid) -> io::Result<Option<i32>> {
    loop {
        return match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Ok(Some(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(128 + sig as i32)),
            Ok(_) => Ok(None),
            Err(Errno::EINTR) => continue,
            Err(e) => Err(e.into()),
        };
    }
}

fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd.as_raw_fd(), buf) {
            Err(Errno::EINTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor sent by another process is refused: only libcontainer,
    /// connecting from this process, may hand brig the job's terminal.
    #[test]
    fn a_terminal_sent_by_another_process_is_refused() {
        let listener = ConsoleListener::new().unwrap();
        let path = listener.path().to_path_buf();
        let child = std::process::Command::new("python3")
            .args([
                "-c",
                "import socket,sys,os,array\n\
                 s=socket.socket(socket.AF_UNIX)\n\
                 s.connect(sys.argv[1])\n\
                 fd=os.open('/dev/null',os.O_RDONLY)\n\
                 s.sendmsg([b'x'],[(socket.SOL_SOCKET,socket.SCM_RIGHTS,array.array('i',[fd]))])\n",
                path.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(child.success());
        let err = listener.receive().unwrap_err();
        assert!(err.to_string().contains("not by this brig"), "{err}");
    }

    #[test]
    fn nothing_sent_is_an_error_not_a_wait() {
        let listener = ConsoleListener::new().unwrap();
        let err = listener.receive().unwrap_err();
        assert!(err.to_string().contains("never sent"), "{err}");
    }

    #[test]
    fn a_terminal_sent_by_this_process_is_received() {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let listener = ConsoleListener::new().unwrap();
        let stream = std::os::unix::net::UnixStream::connect(listener.path()).unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        let fds = [file.as_raw_fd()];
        sendmsg::<()>(
            stream.as_raw_fd(),
            &[io::IoSlice::new(b"x")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let received = listener.receive().unwrap();
        let a = nix::sys::stat::fstat(received.as_raw_fd()).unwrap();
        let b = nix::sys::stat::fstat(file.as_raw_fd()).unwrap();
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
    }
}
