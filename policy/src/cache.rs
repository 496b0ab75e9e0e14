//! The on-disk form of a validated policy set, read lazily.
//!
//! A launch needs a handful of the set's policies (the buckets its principal
//! can match, see `authz.rs`), so a cache entry is laid out for reading only
//! those: a small header (digest, declared claims, where each section is),
//! then sections read with `pread` on first use — the per-action principal
//! index and the set of mentioned paths as sorted binary tables (looked up by
//! binary search, never deserialized whole), the policies of each bucket as
//! Cedar's JSON (EST), and the metadata only the authoring tools read
//! (policy files, warnings, schema). With 1,000 policies a launch reads a few
//! kilobytes of a ~600 KB entry.
//!
//! ```text
//! "brigpc04" | u64 header length | header (JSON) | body
//! ```
//!
//! A section is named by a [`Span`]: its range in the body and the SHA-256 of
//! its bytes, checked when it is read. A table is
//! `u32 n | n × u32 entry offset | entries`, an entry
//! `u32 key length | key | u64 start | u64 end | 32-byte SHA-256`, sorted by
//! key bytes.
//!
//! The entry's name is the content digest, so a changed policy file, schema
//! or brig version never reads a stale entry; an entry that is malformed,
//! truncated or not owned like its directory is ignored (the set is parsed
//! again), and a section that cannot be read or does not match its digest
//! once the entry is in use denies the request.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first bytes of an entry; the version is also part of the digest.
const MAGIC: &[u8; 8] = b"brigpc04";
/// A header larger than this is not one brig wrote.
const MAX_HEADER: u64 = 16 << 20;

/// A section of an entry's body: its byte range and the SHA-256 of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Span {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) sha256: [u8; 32],
}

impl Span {
    /// The span of `bytes` written at `start`.
    pub(crate) fn of(start: u64, bytes: &[u8]) -> Span {
        Span { start, end: start + bytes.len() as u64, sha256: Sha256::digest(bytes).into() }
    }
}

/// A section of an open cache entry, read (and checked) on first use and kept.
pub(crate) struct Section {
    file: Arc<File>,
    /// Absolute offsets in the file.
    start: u64,
    end: u64,
    sha256: [u8; 32],
    bytes: OnceLock<Result<Vec<u8>, String>>,
}

impl Clone for Section {
    fn clone(&self) -> Self {
        Section {
            file: self.file.clone(),
            start: self.start,
            end: self.end,
            sha256: self.sha256,
            bytes: OnceLock::new(),
        }
    }
}

impl Section {
    pub(crate) fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub(crate) fn bytes(&self) -> Result<&[u8], String> {
        self.bytes
            .get_or_init(|| {
                let len = usize::try_from(self.end - self.start).map_err(|e| e.to_string())?;
                let mut buf = vec![0; len];
                self.file
                    .read_exact_at(&mut buf, self.start)
                    .map_err(|e| format!("reading the policy cache at {}..{}: {e}", self.start, self.end))?;
                if <[u8; 32]>::from(Sha256::digest(&buf)) != self.sha256 {
                    return Err(format!(
                        "the policy cache is damaged at {}..{} (digest mismatch)",
                        self.start, self.end
                    ));
                }
                Ok(buf)
            })
            .as_deref()
            .map_err(Clone::clone)
    }
}

/// The body of an open cache entry.
#[derive(Clone)]
pub(crate) struct Body {
    file: Arc<File>,
    /// Where the body starts, and the file's length.
    start: u64,
    len: u64,
}

impl Body {
    /// The section at `span`; `None` if it is outside the file.
    pub(crate) fn section(&self, span: Span) -> Option<Section> {
        let start = self.start.checked_add(span.start)?;
        let end = self.start.checked_add(span.end)?;
        (start <= end && end <= self.len).then(|| Section {
            file: self.file.clone(),
            start,
            end,
            sha256: span.sha256,
            bytes: OnceLock::new(),
        })
    }
}

/// An open, trusted cache entry whose header has been read.
pub(crate) struct Entry<H> {
    pub(crate) header: H,
    pub(crate) body: Body,
}

/// Opens the entry at `path` if it is a regular file owned by the owner of
/// its directory and neither is writable by group or others (checked on the
/// open descriptor, so a swapped file is not read), and reads its header.
pub(crate) fn open<H: for<'de> Deserialize<'de>>(path: &Path) -> Option<Entry<H>> {
    let dir = fs::metadata(path.parent()?).ok()?;
    let link = fs::symlink_metadata(path).ok()?;
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    let trusted = link.is_file()
        && meta.is_file()
        && (meta.dev(), meta.ino()) == (link.dev(), link.ino())
        && meta.uid() == dir.uid()
        && meta.mode() & 0o022 == 0
        && dir.mode() & 0o022 == 0;
    if !trusted {
        return None;
    }
    let mut prefix = [0u8; 16];
    file.read_exact_at(&mut prefix, 0).ok()?;
    if &prefix[..8] != MAGIC {
        return None;
    }
    let header_len = u64::from_le_bytes(prefix[8..].try_into().ok()?);
    let body = 16u64.checked_add(header_len)?;
    if header_len > MAX_HEADER || body > meta.len() {
        return None;
    }
    let mut header = vec![0; usize::try_from(header_len).ok()?];
    file.read_exact_at(&mut header, 16).ok()?;
    let header = serde_json::from_slice(&header).ok()?;
    Some(Entry { header, body: Body { file: Arc::new(file), start: body, len: meta.len() } })
}

/// Builds an entry: the header (whose ranges point into `body`) then `body`.
pub(crate) fn encode<H: Serialize>(header: &H, body: &[u8]) -> io::Result<Vec<u8>> {
    let header = serde_json::to_vec(header)?;
    let mut out = Vec::with_capacity(16 + header.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    Ok(out)
}

/// The key of an entity in an index table: the type's length, the type, the id
/// (unambiguous whatever the id contains).
pub(crate) fn entity_key(type_name: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + type_name.len() + id.len());
    k.extend_from_slice(&(type_name.len() as u32).to_le_bytes());
    k.extend_from_slice(type_name.as_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// A sorted table of `key → span` (see the module comment); `None` if it
/// would not fit the format's 32-bit offsets.
pub(crate) fn encode_table(mut entries: Vec<(Vec<u8>, Span)>) -> Option<Vec<u8>> {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    let n = entries.len();
    let mut offsets = Vec::with_capacity(n);
    let mut data = Vec::new();
    let base = n.checked_mul(4)?.checked_add(4)?;
    for (key, span) in &entries {
        offsets.push(u32::try_from(base.checked_add(data.len())?).ok()?);
        data.extend_from_slice(&u32::try_from(key.len()).ok()?.to_le_bytes());
        data.extend_from_slice(key);
        data.extend_from_slice(&span.start.to_le_bytes());
        data.extend_from_slice(&span.end.to_le_bytes());
        data.extend_from_slice(&span.sha256);
    }
    u32::try_from(base.checked_add(data.len())?).ok()?;
    let mut out = Vec::with_capacity(base + data.len());
    out.extend_from_slice(&u32::try_from(n).ok()?.to_le_bytes());
    for o in offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    out.extend_from_slice(&data);
    Some(out)
}

fn u32_at(b: &[u8], at: usize) -> Result<usize, String> {
    let bytes = at.checked_add(4).and_then(|end| b.get(at..end)).ok_or("policy cache: truncated table")?;
    let mut a = [0u8; 4];
    a.copy_from_slice(bytes);
    Ok(u32::from_le_bytes(a) as usize)
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, String> {
    let bytes = at.checked_add(8).and_then(|end| b.get(at..end)).ok_or("policy cache: truncated table")?;
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes);
    Ok(u64::from_le_bytes(a))
}

/// The span stored under `key` in `table`, by binary search.
pub(crate) fn table_get(table: &[u8], key: &[u8]) -> Result<Option<Span>, String> {
    const TRUNCATED: &str = "policy cache: truncated table";
    if table.is_empty() {
        return Ok(None);
    }
    let n = u32_at(table, 0)?;
    let entry = |i: usize| -> Result<(&[u8], usize), String> {
        let at = u32_at(table, i.checked_mul(4).and_then(|o| o.checked_add(4)).ok_or(TRUNCATED)?)?;
        let len = u32_at(table, at)?;
        let key_end = at.checked_add(4).and_then(|s| s.checked_add(len)).ok_or(TRUNCATED)?;
        let key = table.get(at + 4..key_end).ok_or(TRUNCATED)?;
        Ok((key, key_end))
    };
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (k, after) = entry(mid)?;
        match k.cmp(key) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => {
                let sha = after.checked_add(16).and_then(|s| table.get(s..s + 32)).ok_or(TRUNCATED)?;
                let mut sha256 = [0u8; 32];
                sha256.copy_from_slice(sha);
                return Ok(Some(Span { start: u64_at(table, after)?, end: u64_at(table, after + 8)?, sha256 }));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookups_find_every_key_and_only_those() {
        let keys: Vec<Vec<u8>> = (0..300).map(|i| entity_key("Brig::Tenant", &format!("t{i}"))).collect();
        let span = |i: usize| Span::of(i as u64, format!("bucket {i}").as_bytes());
        let table = encode_table(keys.iter().enumerate().map(|(i, k)| (k.clone(), span(i))).collect()).unwrap();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(table_get(&table, k).unwrap(), Some(span(i)));
        }
        assert_eq!(table_get(&table, &entity_key("Brig::Tenant", "t300")).unwrap(), None);
        assert_eq!(table_get(&table, &entity_key("Brig::Role", "t1")).unwrap(), None);
        assert_eq!(table_get(&[], b"x").unwrap(), None);
        // type and id cannot run into each other
        assert_ne!(entity_key("Brig::Tenant", "x"), entity_key("Brig::Tenan", "tx"));
    }

    #[test]
    fn a_truncated_table_is_an_error_not_a_panic() {
        let table = encode_table((0..50).map(|i| (format!("k{i}").into_bytes(), Span::of(1, b"x"))).collect()).unwrap();
        for cut in 0..table.len() {
            // every prefix either answers or reports truncation
            let _ = table_get(&table[..cut], b"k25");
        }
        let mut bad = table.clone();
        for i in 0..50 {
            bad[4 + 4 * i..8 + 4 * i].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        assert!(table_get(&bad, b"k25").is_err());
        assert!(table_get(&table[..table.len() - 1], b"k9").is_err());
    }
}
