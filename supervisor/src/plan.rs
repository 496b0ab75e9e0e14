//! The job plan: what the supervisor enforces in the job's process before `execve`.
//!
//! The host (`brig create`) encodes the plan into a sealed memfd; the supervisor
//! maps it read-only and decodes it in place, without allocating. This file uses
//! only `core` so that it compiles both into the freestanding supervisor and into
//! `brig` (which includes it for its round-trip tests). All integers are
//! little-endian.
//!
//! ```text
//! magic     8 bytes  "BRIGPLAN"
//! version   u32      1
//! flags     u32      FLAG_*
//! timeout   u64      wall-clock limit in milliseconds, 0 = none
//! grace     u64      SIGTERM -> SIGKILL grace in milliseconds
//! fs_handled  u64    Landlock filesystem rights the ruleset handles
//! net_handled u64    Landlock network rights the ruleset handles
//! scoped      u64    Landlock scopes
//! n_fs      u32, then n_fs times:  access u64, len u32, path bytes (NUL-terminated, len includes NUL)
//! n_net     u32, then n_net times: access u64, port u64
//! n_filter  u32, then n_filter times: n_insn u32, pad to 8, n_insn * 8 bytes (struct sock_filter)
//! ```

/// Leading bytes of every plan.
pub const MAGIC: &[u8; 8] = b"BRIGPLAN";
/// Format version.
pub const VERSION: u32 = 1;
/// Refuse to start the job unless the kernel enforces Landlock (rights newer
/// than the kernel's ABI are masked and reported as partial).
pub const FLAG_LANDLOCK_REQUIRED: u32 = 1;
/// Set `no_new_privs` in the job before Landlock and seccomp.
pub const FLAG_NO_NEW_PRIVS: u32 = 2;
/// Upper bound on any count in a plan (defends the decoder against absurd input).
pub const MAX_ITEMS: u32 = 4096;
/// Upper bound on BPF instructions per filter (the kernel's BPF_MAXINSNS).
pub const MAX_INSNS: u32 = 4096;

/// A decoding error: the plan is truncated or malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanError;

/// A read-only view of an encoded plan.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub flags: u32,
    pub timeout_ms: u64,
    pub grace_ms: u64,
    pub fs_handled: u64,
    pub net_handled: u64,
    pub scoped: u64,
    fs_rules: Section<'a>,
    net_rules: Section<'a>,
    filters: Section<'a>,
}

#[derive(Debug, Clone, Copy)]
struct Section<'a> {
    count: u32,
    buf: &'a [u8],
    start: usize,
}

/// A Landlock path-beneath rule.
#[derive(Debug, Clone, Copy)]
pub struct FsRule<'a> {
    pub access: u64,
    /// The container path, NUL-terminated.
    pub path: &'a [u8],
}

/// A Landlock TCP port rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetRule {
    pub access: u64,
    pub port: u64,
}

/// One classic-BPF seccomp program (raw `struct sock_filter` array).
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    pub insns: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PlanError> {
        let end = self.pos.checked_add(n).ok_or(PlanError)?;
        let out = self.buf.get(self.pos..end).ok_or(PlanError)?;
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, PlanError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PlanError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn align8(&mut self) -> Result<(), PlanError> {
        let pad = (8 - self.pos % 8) % 8;
        self.take(pad).map(|_| ())
    }

    fn count(&mut self, max: u32) -> Result<u32, PlanError> {
        let n = self.u32()?;
        if n > max {
            return Err(PlanError);
        }
        Ok(n)
    }

    fn fs_rule(&mut self) -> Result<FsRule<'a>, PlanError> {
        let access = self.u64()?;
        let len = self.u32()? as usize;
        let path = self.take(len)?;
        // A path must be non-empty, NUL-terminated and hold no other NUL.
        match path.split_last() {
            Some((0, rest)) if !rest.is_empty() && !rest.contains(&0) => Ok(FsRule { access, path }),
            _ => Err(PlanError),
        }
    }

    fn net_rule(&mut self) -> Result<NetRule, PlanError> {
        let access = self.u64()?;
        let port = self.u64()?;
        if port > u64::from(u16::MAX) {
            return Err(PlanError);
        }
        Ok(NetRule { access, port })
    }

    fn filter(&mut self) -> Result<Filter<'a>, PlanError> {
        let n = self.count(MAX_INSNS)?;
        if n == 0 {
            return Err(PlanError);
        }
        self.align8()?;
        let insns = self.take(n as usize * 8)?;
        Ok(Filter { insns })
    }
}

impl<'a> Plan<'a> {
    /// Decodes and fully validates a plan.
    pub fn decode(buf: &'a [u8]) -> Result<Plan<'a>, PlanError> {
        let mut c = Cursor { buf, pos: 0 };
        if c.take(8)? != MAGIC || c.u32()? != VERSION {
            return Err(PlanError);
        }
        let flags = c.u32()?;
        let timeout_ms = c.u64()?;
        let grace_ms = c.u64()?;
        let fs_handled = c.u64()?;
        let net_handled = c.u64()?;
        let scoped = c.u64()?;

        let fs_rules = section(&mut c, Cursor::fs_rule)?;
        let net_rules = section(&mut c, Cursor::net_rule)?;
        let filters = section(&mut c, Cursor::filter)?;
        if c.pos != buf.len() {
            return Err(PlanError);
        }
        Ok(Plan { flags, timeout_ms, grace_ms, fs_handled, net_handled, scoped, fs_rules, net_rules, filters })
    }

    /// Landlock filesystem rules.
    pub fn fs_rules(&self) -> impl Iterator<Item = FsRule<'a>> {
        items(self.fs_rules, Cursor::fs_rule)
    }

    /// Landlock network rules.
    pub fn net_rules(&self) -> impl Iterator<Item = NetRule> + 'a {
        items(self.net_rules, Cursor::net_rule)
    }

    /// Seccomp programs, in installation order.
    pub fn filters(&self) -> impl Iterator<Item = Filter<'a>> {
        items(self.filters, Cursor::filter)
    }

    /// Whether the plan asks for any Landlock restriction.
    pub fn wants_landlock(&self) -> bool {
        self.fs_handled != 0 || self.net_handled != 0 || self.scoped != 0
    }
}

/// Reads a counted section, validating every item, and returns where it starts.
fn section<'a, T>(
    c: &mut Cursor<'a>,
    item: fn(&mut Cursor<'a>) -> Result<T, PlanError>,
) -> Result<Section<'a>, PlanError> {
    let count = c.count(MAX_ITEMS)?;
    let start = c.pos;
    for _ in 0..count {
        item(c)?;
    }
    Ok(Section { count, buf: c.buf, start })
}

/// Re-reads a section that `decode` already validated. Offsets stay relative to
/// the plan start, so alignment is the same as during validation.
fn items<'a, T: 'a>(s: Section<'a>, item: fn(&mut Cursor<'a>) -> Result<T, PlanError>) -> impl Iterator<Item = T> + 'a {
    let mut c = Cursor { buf: s.buf, pos: s.start };
    (0..s.count).map_while(move |_| item(&mut c).ok())
}
