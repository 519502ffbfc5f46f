//! The persistent stat cache: (relative path, size, mtime, ctime, inode, mode)
//! → blake3 of the file's content, so that a warm walk stats files instead of
//! reading them.
//!
//! File format (all integers little endian), written to a temporary file and
//! renamed into place:
//!
//! ```text
//! magic    "MCPODSC1"
//! root     u32 length + bytes   the canonical context root the entries belong to
//! scanned  i64                  wall clock (ns) when the run that wrote it started
//! count    u64
//! count × { path u32 length + bytes, size u64, mtime_ns i64, ctime_ns i64,
//!           inode u64, mode u32, digest [32] }
//! check    [32]                 blake3 of everything above
//! ```
//!
//! Anything that does not parse or check out is ignored: the cache is then
//! empty and rewritten, never an error.
//!
//! Racy clean: an entry is trusted only when the file's mtime and ctime are
//! more than [`RACY_NS`] older than `scanned`. A write that lands in the same
//! timestamp tick as the stat that produced the entry (so that size, mtime and
//! ctime are unchanged) must then have happened before `scanned - RACY_NS`,
//! that is before the stat: the entry describes the content after that write.

use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"MCPODSC1";
/// How close to the scan start a timestamp makes an entry untrustworthy.
pub const RACY_NS: i64 = 2_000_000_000;
/// A cache file larger than this is not read (it cannot be one of ours).
const MAX_FILE: u64 = 1 << 30;
const ENTRY_FIXED: usize = 8 + 8 + 8 + 8 + 4 + 32;

/// What the cache keys a digest on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub mode: u32,
}

impl FileStat {
    /// Whether a cache entry for this stat, written by a run that started at
    /// `scanned_ns`, can be trusted.
    pub fn settled_before(&self, scanned_ns: i64) -> bool {
        let limit = scanned_ns.saturating_sub(RACY_NS);
        self.mtime_ns < limit && self.ctime_ns < limit
    }
}

/// The outcome of looking a file up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Same stat, old enough to trust: use the digest.
    Hit([u8; 32]),
    /// Same stat, but too recent to trust: read the file, compare with this digest.
    Racy([u8; 32]),
    /// No entry, or the stat differs.
    Miss,
}

/// A loaded cache: its records sorted by path, the paths left in the file's bytes.
#[derive(Debug, Default)]
pub struct StatCache {
    bytes: Vec<u8>,
    records: Vec<Record>,
    scanned_ns: i64,
    /// False when the file was missing, corrupt or for another root.
    valid: bool,
}

#[derive(Debug)]
struct Record {
    /// Where the path lies in `StatCache::bytes`.
    path: (u32, u32),
    stat: FileStat,
    digest: [u8; 32],
}

impl StatCache {
    /// Load the cache at `path` for the context whose canonical root is `root`.
    /// Never fails: anything unusable gives an empty (invalid) cache.
    pub fn load(path: &Path, root: &[u8]) -> StatCache {
        let bytes = match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() && meta.len() <= MAX_FILE => std::fs::read(path).ok(),
            _ => None,
        };
        let Some(bytes) = bytes else {
            return StatCache::default();
        };
        match parse(&bytes, root) {
            Some((records, scanned_ns)) => StatCache {
                bytes,
                records,
                scanned_ns,
                valid: true,
            },
            None => {
                tracing::debug!(path = %path.display(), "ignoring an unusable stat cache");
                StatCache::default()
            }
        }
    }

    /// True when the file held a usable cache for this root.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    fn path(&self, r: &Record) -> &[u8] {
        let (start, len) = (r.path.0 as usize, r.path.1 as usize);
        &self.bytes[start..start + len]
    }

    /// Look `rel` up. Lookups must come in increasing path order, each with
    /// the same `cursor` (start at 0): the cache is merged with the sorted
    /// walk, no hashing or allocation per file.
    pub fn lookup(&self, cursor: &mut usize, rel: &[u8], stat: &FileStat) -> Lookup {
        while let Some(r) = self.records.get(*cursor) {
            match self.path(r).cmp(rel) {
                std::cmp::Ordering::Less => *cursor += 1,
                std::cmp::Ordering::Greater => return Lookup::Miss,
                std::cmp::Ordering::Equal => {
                    *cursor += 1;
                    return if r.stat != *stat {
                        Lookup::Miss
                    } else if stat.settled_before(self.scanned_ns) {
                        Lookup::Hit(r.digest)
                    } else {
                        Lookup::Racy(r.digest)
                    };
                }
            }
        }
        Lookup::Miss
    }
}

/// Check and parse a cache file: its records (sorted, as written) and scan time.
fn parse(bytes: &[u8], root: &[u8]) -> Option<(Vec<Record>, i64)> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, check) = bytes.split_at(body_len);
    if blake3::hash(body).as_bytes() != check {
        return None;
    }
    let mut r = Reader {
        bytes: body,
        pos: 0,
    };
    if r.take(8)? != MAGIC || r.bytes_u32()? != root {
        return None;
    }
    let scanned_ns = r.i64()?;
    let count = r.u64()?;
    // Every entry takes at least ENTRY_FIXED bytes: refuse absurd counts up front.
    if count > ((body.len() - r.pos) / ENTRY_FIXED) as u64 {
        return None;
    }
    let mut records: Vec<Record> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
        let start = u32::try_from(r.pos).ok()?;
        let path = r.take(len as usize)?;
        // Strictly increasing paths, as written; anything else is not ours.
        if let Some(prev) = records.last() {
            let (ps, pl) = (prev.path.0 as usize, prev.path.1 as usize);
            if body[ps..ps + pl] >= *path {
                return None;
            }
        }
        let stat = FileStat {
            size: r.u64()?,
            mtime_ns: r.i64()?,
            ctime_ns: r.i64()?,
            ino: r.u64()?,
            mode: u32::from_le_bytes(r.take(4)?.try_into().ok()?),
        };
        let digest: [u8; 32] = r.take(32)?.try_into().ok()?;
        records.push(Record {
            path: (start, len),
            stat,
            digest,
        });
    }
    if r.pos != body.len() {
        return None;
    }
    Some((records, scanned_ns))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes_u32(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        self.take(n as usize)
    }
}

/// Serialize entries, which must come sorted by path, without duplicates
/// (a file that is not sorted does not load).
pub fn encode<'a>(
    root: &[u8],
    scanned_ns: i64,
    entries: impl ExactSizeIterator<Item = (&'a [u8], FileStat, [u8; 32])>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.len() * (ENTRY_FIXED + 40));
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, root);
    out.extend_from_slice(&scanned_ns.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (path, stat, digest) in entries {
        put_bytes(&mut out, path);
        out.extend_from_slice(&stat.size.to_le_bytes());
        out.extend_from_slice(&stat.mtime_ns.to_le_bytes());
        out.extend_from_slice(&stat.ctime_ns.to_le_bytes());
        out.extend_from_slice(&stat.ino.to_le_bytes());
        out.extend_from_slice(&stat.mode.to_le_bytes());
        out.extend_from_slice(&digest);
    }
    let check = blake3::hash(&out);
    out.extend_from_slice(check.as_bytes());
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Paths longer than 4 GiB do not exist; saturate rather than wrap.
    let n = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&bytes[..n as usize]);
}

/// The name of the temporary file a write goes through. Unique per process and
/// call, so that concurrent writers never share one.
pub fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp.{}.{seq}", std::process::id()));
    path.with_file_name(name)
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory,
/// then a rename. The directory is created if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = temp_path(path);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mtime_ns: i64) -> FileStat {
        FileStat {
            size: 3,
            mtime_ns,
            ctime_ns: mtime_ns,
            ino: 42,
            mode: 0o100644,
        }
    }

    #[test]
    fn round_trip_and_racy_entries() {
        let dir = std::env::temp_dir().join(format!("mcpod-statcache-{}", std::process::id()));
        let path = dir.join("nested").join("cache");
        let now = 100 * RACY_NS;
        let old = stat(now - 3 * RACY_NS);
        let recent = stat(now - RACY_NS / 2);
        let entries = [
            (&b"a"[..], old, [1u8; 32]),
            (&b"b/c"[..], recent, [2u8; 32]),
        ];
        let bytes = encode(b"/root", now, entries.iter().copied());
        assert!(write_atomic(&path, &bytes).is_ok());

        let cache = StatCache::load(&path, b"/root");
        assert!(cache.is_valid());
        assert_eq!(cache.len(), 2);
        let one = |rel: &[u8], stat: &FileStat| cache.lookup(&mut 0, rel, stat);
        assert_eq!(one(b"a", &old), Lookup::Hit([1; 32]));
        assert_eq!(one(b"b/c", &recent), Lookup::Racy([2; 32]));
        assert_eq!(one(b"a", &FileStat { ino: 43, ..old }), Lookup::Miss);
        let touched = FileStat {
            ctime_ns: old.ctime_ns + 1,
            ..old
        };
        assert_eq!(one(b"a", &touched), Lookup::Miss);
        assert_eq!(one(b"zzz", &old), Lookup::Miss);
        assert_eq!(one(b"", &old), Lookup::Miss);

        // Merged with a sorted walk: one cursor, paths in increasing order.
        let mut cursor = 0;
        assert_eq!(cache.lookup(&mut cursor, b"0", &old), Lookup::Miss);
        assert_eq!(cache.lookup(&mut cursor, b"a", &old), Lookup::Hit([1; 32]));
        assert_eq!(cache.lookup(&mut cursor, b"b", &old), Lookup::Miss);
        assert_eq!(
            cache.lookup(&mut cursor, b"b/c", &recent),
            Lookup::Racy([2; 32])
        );
        assert_eq!(cache.lookup(&mut cursor, b"c", &old), Lookup::Miss);

        // Records out of order are not ours.
        let unsorted = encode(b"/root", now, entries.iter().rev().copied());
        assert!(write_atomic(&path, &unsorted).is_ok());
        assert!(!StatCache::load(&path, b"/root").is_valid());
        let duplicate = encode(b"/root", now, [entries[0], entries[0]].into_iter());
        assert!(write_atomic(&path, &duplicate).is_ok());
        assert!(!StatCache::load(&path, b"/root").is_valid());
        assert!(write_atomic(&path, &bytes).is_ok());

        // Another root: nothing is trusted.
        assert!(!StatCache::load(&path, b"/elsewhere").is_valid());

        // Any corruption, including truncation, gives an empty cache.
        for cut in [0, 1, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(write_atomic(&path, &bytes[..cut]).is_ok());
            let c = StatCache::load(&path, b"/root");
            assert!(!c.is_valid() && c.len() == 0, "truncated at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(write_atomic(&path, &flipped).is_ok());
        assert!(!StatCache::load(&path, b"/root").is_valid());
        assert!(!StatCache::load(&dir.join("missing"), b"/root").is_valid());
        // A directory where the file should be.
        assert!(!StatCache::load(&dir, b"/root").is_valid());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn forged_count_is_rejected() {
        // A well-checksummed file whose count claims more entries than it holds.
        let mut body = Vec::new();
        body.extend_from_slice(MAGIC);
        put_bytes(&mut body, b"/r");
        body.extend_from_slice(&0i64.to_le_bytes());
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        let check = blake3::hash(&body);
        body.extend_from_slice(check.as_bytes());
        assert!(parse(&body, b"/r").is_none());
    }
}
