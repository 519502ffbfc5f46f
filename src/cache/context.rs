//! The build-context digest: walk the context as buildah would send it (ignore
//! rules applied), hash every file in parallel, and fold the entries, sorted by
//! path, into one blake3 digest.
//!
//! What goes in, per entry, each field framed so the stream decodes one way:
//!
//! - a directory (empty or not, unless excluded): `d`, path;
//! - a symlink (never followed): `l`, path, target text;
//! - a regular file: `f`, path, its three executable bits (`mode & 0o111`),
//!   size, blake3 of the content.
//!
//! Paths are relative to the root with `/` separators, as raw bytes. mtime,
//! ownership, the other permission bits and the order the file system lists
//! entries in do not count. The ignore file itself is part of the context
//! unless it excludes itself, as with buildah.
//!
//! Special files, as buildah 1.28 treats them in `COPY . /dst`: a socket is
//! left out (buildah skips it), so it is left out here too. A FIFO or a device
//! node is copied into the image as one, which the key could only cover by
//! trusting its node type and numbers; a context with one (not excluded) is
//! refused instead, naming it. None of them is ever opened: a FIFO blocks its
//! reader, a device like /dev/zero never ends.
//!
//! The ignore file (found by `ignore_file.rs`) is read with a bound
//! ([`MAX_IGNORE_FILE`](super::input::MAX_IGNORE_FILE)) and refused when it
//! resolves outside the context (the Containerfile's own one: outside the
//! context and the Containerfile's directory).
//!
//! With a stat cache, a file whose (size, mtime, ctime, inode, mode) is
//! unchanged since the last run is not read; see `statcache.rs` for the
//! racy-clean rule. If the cache file lies inside the context it is left out of
//! the walk, since it changes whenever it is written.

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::ignore::{IgnoreRules, ParentMatches};
use super::ignore_file::load_ignore;
use super::statcache::{self, FileStat, Lookup, StatCache};
use crate::{Error, Result};

const DOMAIN: &[u8] = b"mcpod-context-v1";
/// Read buffer per hashing thread.
const READ_BUF: usize = 256 * 1024;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextDigest {
    pub digest: [u8; 32],
    /// Regular files hashed (after ignore rules).
    pub files: u64,
    /// Bytes of regular-file content hashed or taken from the stat cache.
    pub bytes: u64,
    /// The ignore file that applied, if any.
    pub ignore_file: Option<PathBuf>,
    /// Files whose digest came from the stat cache (not read this time).
    pub cached_files: u64,
    /// Bytes actually read this time.
    pub read_bytes: u64,
}

impl ContextDigest {
    /// The digest as 64 hex digits.
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.digest).to_hex().to_string()
    }
}

/// Hash the build context at `root` as buildah would send it when it builds
/// `containerfile` (see the module docs; relative to `root` when relative).
///
/// `stat_cache`: where to keep the persistent (path, size, mtime, ctime, inode,
/// mode) → content-digest cache, if any. It is read if usable (a missing or
/// corrupt file is ignored), and rewritten atomically only when something
/// changed; failing to write it is logged, not an error.
///
/// Errors: [`Error::InvalidInput`] when `root` is not an existing directory or
/// the ignore file has an invalid pattern; [`Error::Io`], naming the path, when
/// something in the context cannot be read.
pub fn hash_context(
    root: &Path,
    containerfile: Option<&Path>,
    stat_cache: Option<&Path>,
) -> Result<ContextDigest> {
    hash_context_for_build(root, containerfile, stat_cache).map(|(digest, _)| digest)
}

/// What the hashing walk saw, for a build to pin ([`hash_context_for_build`]; checked by
/// `verify`).
pub struct HashedContext {
    pub(super) root: PathBuf,
    pub(super) rules: IgnoreRules,
    pub(super) ignore_text: String,
    pub(super) skip: Option<Vec<u8>>,
    pub(super) threads: usize,
    pub(super) scanned_ns: i64,
    /// Sorted, with every file's digest.
    pub(super) tree: Tree,
}

/// [`hash_context`], keeping what the walk saw, so that a build can check
/// that buildah read the same ([`HashedContext::pin`]). Costs nothing more.
pub fn hash_context_for_build(
    root: &Path,
    containerfile: Option<&Path>,
    stat_cache: Option<&Path>,
) -> Result<(ContextDigest, HashedContext)> {
    let scanned_ns = now_ns();
    check_root(root)?;
    let canonical = std::fs::canonicalize(root).map_err(|e| Error::io("resolving", root, e))?;
    let (rules, ignore_file, ignore_text) = load_ignore(root, &canonical, containerfile)?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 16);

    let root_id = canonical.as_os_str().as_bytes();
    let skip = stat_cache.and_then(|p| relative_inside(&canonical, p));
    let walker = Walker {
        root,
        rules: &rules,
        skip: skip.as_deref(),
        stat_all: false,
    };
    let (walked, cache) = walk_loading_cache(&walker, threads, stat_cache, root_id);
    let Tree { names, mut entries } = walked?;

    let unread = take_cached(&cache, &names, &mut entries);
    let mut rewrite = (stat_cache.is_some() && !cache.is_valid()) || unread.stale;
    let read_bytes = read_unread(root, &names, &mut entries, unread.jobs, threads)?;
    rewrite |= racy_settled(&entries, unread.racy, scanned_ns);

    let result = fold(
        &names,
        &entries,
        ignore_file,
        unread.cached_files,
        read_bytes,
    );
    if let (Some(path), true) = (stat_cache, rewrite) {
        write_stat_cache(path, root_id, scanned_ns, &names, &entries);
    }
    let hashed = HashedContext {
        root: root.to_path_buf(),
        rules,
        ignore_text,
        skip,
        threads,
        scanned_ns,
        tree: Tree { names, entries },
    };
    Ok((result, hashed))
}

/// Walk the tree on `threads` threads while the stat cache at `stat_cache`
/// (if any) is loaded on one more.
fn walk_loading_cache(
    walker: &Walker<'_>,
    threads: usize,
    stat_cache: Option<&Path>,
    root_id: &[u8],
) -> (Result<Tree>, StatCache) {
    std::thread::scope(|s| {
        let loader = stat_cache.map(|p| s.spawn(move || StatCache::load(p, root_id)));
        let walked = walk(walker, threads);
        let cache = match loader {
            Some(h) => h
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => StatCache::default(),
        };
        (walked, cache)
    })
}

/// What the stat cache left to read.
struct Unread {
    /// The entries of the files to read.
    jobs: Vec<usize>,
    /// The racy ones among them, with the digest the cache had.
    racy: Vec<(usize, [u8; 32])>,
    /// Files whose digest the cache vouched for.
    cached_files: u64,
    /// The cache missed a file, or lists one that is gone: rewrite it.
    stale: bool,
}

/// Take what the stat cache can vouch for into `entries` (a merge of two
/// sorted lists); the rest is to be read.
fn take_cached(cache: &StatCache, names: &[u8], entries: &mut [Entry]) -> Unread {
    let mut stale = false;
    let mut jobs = Vec::new();
    let mut racy = Vec::new();
    let mut known = 0usize;
    let mut cached_files = 0u64;
    let mut cursor = 0;
    for (idx, entry) in entries.iter_mut().enumerate() {
        let rel = entry.rel(names);
        let Kind::File { stat, digest } = &mut entry.kind else {
            continue;
        };
        match cache.lookup(&mut cursor, rel, stat) {
            Lookup::Hit(d) => {
                *digest = Some(d);
                known += 1;
                cached_files += 1;
            }
            Lookup::Racy(d) => {
                known += 1;
                racy.push((idx, d));
                jobs.push(idx);
            }
            Lookup::Miss => {
                stale = true;
                jobs.push(idx);
            }
        }
    }
    // Entries for files that are gone: drop them from the cache file.
    stale |= known != cache.len();
    Unread {
        jobs,
        racy,
        cached_files,
        stale,
    }
}

/// Read and hash the files of `jobs`, their digests into `entries`.
/// Returns the bytes read.
fn read_unread(
    root: &Path,
    names: &[u8],
    entries: &mut [Entry],
    mut jobs: Vec<usize>,
    threads: usize,
) -> Result<u64> {
    // Biggest first, so that no thread is left with a large file at the end.
    jobs.sort_unstable_by_key(|&i| std::cmp::Reverse(entries[i].size()));
    let hashed = hash_files(root, names, entries, &jobs, threads)?;
    let mut read_bytes = 0;
    for (idx, digest, n) in hashed {
        if let Kind::File { digest: slot, .. } = &mut entries[idx].kind {
            *slot = Some(digest);
        }
        read_bytes += n;
    }
    Ok(read_bytes)
}

/// Whether a racy entry calls for rewriting the cache: its content changed,
/// or it is unchanged and old enough now that, with a newer scan time, the
/// next run can trust it.
fn racy_settled(entries: &[Entry], racy: Vec<(usize, [u8; 32])>, scanned_ns: i64) -> bool {
    let mut rewrite = false;
    for (idx, old) in racy {
        if let Kind::File { stat, digest } = &entries[idx].kind {
            rewrite |= *digest != Some(old) || stat.settled_before(scanned_ns);
        }
    }
    rewrite
}

/// Write the stat cache: every file hashed, with its stat and digest. A
/// failure is logged: the digest is right either way.
fn write_stat_cache(path: &Path, root_id: &[u8], scanned_ns: i64, names: &[u8], entries: &[Entry]) {
    let files = entries.iter().filter_map(|e| match &e.kind {
        Kind::File {
            stat,
            digest: Some(d),
        } => Some((e.rel(names), *stat, *d)),
        _ => None,
    });
    let files: Vec<_> = files.collect();
    let bytes = statcache::encode(root_id, scanned_ns, files.into_iter());
    if let Err(e) = statcache::write_atomic(path, &bytes) {
        // The digest is right either way; the next walk will just read more.
        tracing::warn!(path = %path.display(), error = %e, "could not write the build-context stat cache");
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn check_root(root: &Path) -> Result<()> {
    let fix = "pass the directory that holds the files the Containerfile copies";
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::invalid(
            "context",
            root.display().to_string(),
            "it is not a directory",
            fix,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::invalid(
            "context",
            root.display().to_string(),
            "it does not exist",
            fix,
        )),
        Err(e) => Err(Error::io("reading the build context", root, e)),
    }
}

/// The path of `file` relative to the (canonical) root, if it lies inside it.
fn relative_inside(root: &Path, file: &Path) -> Option<Vec<u8>> {
    let name = file.file_name()?;
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let parent = std::fs::canonicalize(parent).ok()?;
    let rel = parent.join(name);
    let rel = rel.strip_prefix(root).ok()?;
    Some(rel.as_os_str().as_bytes().to_vec())
}

/// Whether `rel` is the stat cache file or one of its temporary files.
fn is_cache_file(rel: &[u8], cache: &[u8]) -> bool {
    rel.strip_prefix(cache)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b".tmp."))
}

/// The entries of a walk, sorted by path; their paths live in one buffer.
pub(super) struct Tree {
    pub(super) names: Vec<u8>,
    pub(super) entries: Vec<Entry>,
}

pub(super) struct Entry {
    /// (start, length) of the path in [`Tree::names`].
    rel: (usize, usize),
    pub(super) kind: Kind,
}

/// An entry; the stats of directories and symlinks only when the walk was
/// asked for them ([`Walker::stat_all`]).
pub(super) enum Kind {
    Dir(Option<FileStat>),
    Symlink(Vec<u8>, Option<FileStat>),
    File {
        stat: FileStat,
        digest: Option<[u8; 32]>,
    },
}

impl Entry {
    pub(super) fn rel<'a>(&self, names: &'a [u8]) -> &'a [u8] {
        &names[self.rel.0..self.rel.0 + self.rel.1]
    }

    fn size(&self) -> u64 {
        match &self.kind {
            Kind::File { stat, .. } => stat.size,
            _ => 0,
        }
    }
}

pub(super) fn file_stat(meta: &std::fs::Metadata) -> FileStat {
    FileStat {
        size: meta.size(),
        mtime_ns: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
        ctime_ns: meta
            .ctime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.ctime_nsec()),
        ino: meta.ino(),
        mode: meta.mode(),
    }
}

/// Fold the sorted entries into the digest.
fn fold(
    names: &[u8],
    entries: &[Entry],
    ignore_file: Option<PathBuf>,
    cached_files: u64,
    read_bytes: u64,
) -> ContextDigest {
    fn frame(buf: &mut Vec<u8>, bytes: &[u8]) {
        buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        buf.extend_from_slice(bytes);
    }
    let mut h = blake3::Hasher::new();
    let mut buf = Vec::with_capacity(128 * 1024);
    frame(&mut buf, DOMAIN);
    let (mut files, mut bytes) = (0u64, 0u64);
    for e in entries {
        match &e.kind {
            Kind::Dir(_) => {
                buf.push(b'd');
                frame(&mut buf, e.rel(names));
            }
            Kind::Symlink(target, _) => {
                buf.push(b'l');
                frame(&mut buf, e.rel(names));
                frame(&mut buf, target);
            }
            Kind::File { stat, digest } => {
                buf.push(b'f');
                frame(&mut buf, e.rel(names));
                buf.push((stat.mode & 0o111) as u8);
                buf.extend_from_slice(&stat.size.to_le_bytes());
                // Every file has a digest by now; an absent one would be a bug,
                // and the zero digest still keeps the stream decodable.
                buf.extend_from_slice(&digest.unwrap_or_default());
                files += 1;
                bytes += stat.size;
            }
        }
        if buf.len() >= 120 * 1024 {
            h.update(&buf);
            buf.clear();
        }
    }
    buf.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    h.update(&buf);
    ContextDigest {
        digest: *h.finalize().as_bytes(),
        files,
        bytes,
        ignore_file,
        cached_files,
        read_bytes,
    }
}

/// A directory waiting to be read.
struct DirJob {
    abs: PathBuf,
    rel: Vec<u8>,
    parent: ParentMatches,
}

struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

struct QueueState {
    jobs: Vec<DirJob>,
    /// Workers reading a directory right now (they may add jobs).
    busy: usize,
    failed: Option<Error>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Run `work` on `threads` scoped threads; their results (a panic is re-raised).
fn on_threads<T: Send>(threads: usize, work: impl Fn() -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(&work)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// What a walk applies.
pub(super) struct Walker<'a> {
    pub(super) root: &'a Path,
    pub(super) rules: &'a IgnoreRules,
    /// The stat cache file, when it lies inside the context.
    pub(super) skip: Option<&'a [u8]>,
    /// Stat directories and symlinks too (files always are).
    pub(super) stat_all: bool,
}

/// Walk the tree on `threads` threads; the entries come back sorted by path.
pub(super) fn walk(walker: &Walker<'_>, threads: usize) -> Result<Tree> {
    let queue = Queue {
        state: Mutex::new(QueueState {
            jobs: vec![DirJob {
                abs: walker.root.to_path_buf(),
                rel: Vec::new(),
                parent: walker.rules.root(),
            }],
            busy: 0,
            failed: None,
        }),
        wake: Condvar::new(),
    };
    let parts: Vec<Tree> = on_threads(threads, || walk_worker(&queue, walker));
    if let Some(e) = queue.lock().failed.take() {
        return Err(e);
    }
    // One buffer for all paths; shift each part's offsets by where it lands.
    let mut tree = Tree {
        names: Vec::with_capacity(parts.iter().map(|p| p.names.len()).sum()),
        entries: Vec::with_capacity(parts.iter().map(|p| p.entries.len()).sum()),
    };
    for part in parts {
        let base = tree.names.len();
        tree.names.extend_from_slice(&part.names);
        tree.entries.extend(part.entries.into_iter().map(|mut e| {
            e.rel.0 += base;
            e
        }));
    }
    // Each walker sorted its own part: a stable sort just merges those runs.
    let names = &tree.names;
    tree.entries.sort_by(|a, b| a.rel(names).cmp(b.rel(names)));
    Ok(tree)
}

/// One walking thread: reads directories off the queue until none are left,
/// and returns its entries sorted by path.
fn walk_worker(queue: &Queue, walker: &Walker<'_>) -> Tree {
    let mut out = Tree {
        names: Vec::new(),
        entries: Vec::new(),
    };
    let mut found = Vec::new();
    let mut rel = Vec::new();
    loop {
        let job = {
            let mut st = queue.lock();
            loop {
                if st.failed.is_some() {
                    return out;
                }
                if let Some(job) = st.jobs.pop() {
                    st.busy += 1;
                    break job;
                }
                if st.busy == 0 {
                    drop(st);
                    let names = &out.names;
                    out.entries
                        .sort_unstable_by(|a, b| a.rel(names).cmp(b.rel(names)));
                    return out;
                }
                st = queue
                    .wake
                    .wait(st)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let result = read_dir(&job, walker, &mut rel, &mut out, &mut found);
        let mut st = queue.lock();
        st.busy -= 1;
        let wake = match result {
            Ok(()) => {
                st.jobs.append(&mut found);
                !st.jobs.is_empty() || st.busy == 0
            }
            Err(e) => {
                found.clear();
                st.failed.get_or_insert(e);
                true
            }
        };
        drop(st);
        if wake {
            queue.wake.notify_all();
        }
    }
}

/// Read one directory: its entries go to `out`, its subdirectories to `found`.
/// `rel` is scratch space for the paths.
fn read_dir(
    job: &DirJob,
    walker: &Walker<'_>,
    rel: &mut Vec<u8>,
    out: &mut Tree,
    found: &mut Vec<DirJob>,
) -> Result<()> {
    let listing =
        std::fs::read_dir(&job.abs).map_err(|e| Error::io("reading the directory", &job.abs, e))?;
    rel.clear();
    rel.extend_from_slice(&job.rel);
    if !rel.is_empty() {
        rel.push(b'/');
    }
    let prefix = rel.len();
    let (rules, skip) = (walker.rules, walker.skip);
    let stat = |item: &std::fs::DirEntry| -> Result<Option<FileStat>> {
        if !walker.stat_all {
            return Ok(None);
        }
        let meta = item
            .metadata()
            .map_err(|e| Error::io("reading the metadata of", item.path(), e))?;
        Ok(Some(file_stat(&meta)))
    };
    let push = |out: &mut Tree, rel: &[u8], kind: Kind| {
        out.entries.push(Entry {
            rel: (out.names.len(), rel.len()),
            kind,
        });
        out.names.extend_from_slice(rel);
    };
    for item in listing {
        let item = item.map_err(|e| Error::io("reading the directory", &job.abs, e))?;
        rel.truncate(prefix);
        rel.extend_from_slice(item.file_name().as_bytes());
        if skip.is_some_and(|cache| is_cache_file(rel, cache)) {
            continue;
        }
        let file_type = item
            .file_type()
            .map_err(|e| Error::io("reading the type of", item.path(), e))?;
        if file_type.is_dir() {
            let (excluded, state) = if rules.is_empty() {
                (false, ParentMatches::default())
            } else {
                rules.check_dir(rel, &job.parent)
            };
            if excluded && !rules.may_reinclude_under(rel) {
                continue;
            }
            if !excluded {
                push(out, rel, Kind::Dir(stat(&item)?));
            }
            found.push(DirJob {
                abs: item.path(),
                rel: rel.clone(),
                parent: state,
            });
            continue;
        }
        if !rules.is_empty() && rules.check_file(rel, &job.parent) {
            continue;
        }
        if file_type.is_symlink() {
            let path = item.path();
            let target = std::fs::read_link(&path)
                .map_err(|e| Error::io("reading the symlink", &path, e))?;
            let kind = Kind::Symlink(target.into_os_string().into_vec(), stat(&item)?);
            push(out, rel, kind);
        } else if file_type.is_file() {
            let meta = item
                .metadata()
                .map_err(|e| Error::io("reading the metadata of", item.path(), e))?;
            let kind = Kind::File {
                stat: file_stat(&meta),
                digest: None,
            };
            push(out, rel, kind);
        } else if let Some(what) = special_kind(&file_type) {
            return Err(special_file(walker.root, rel, what));
        }
        // A socket: buildah leaves it out, and so does the key.
    }
    Ok(())
}

/// What a FIFO or device node is called in an error; `None` for a socket.
fn special_kind(file_type: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if file_type.is_char_device() {
        Some("a character device")
    } else if file_type.is_block_device() {
        Some("a block device")
    } else {
        None
    }
}

fn special_file(root: &Path, rel: &[u8], what: &str) -> Error {
    let rel = String::from_utf8_lossy(rel);
    Error::invalid(
        "build context entry",
        rel.as_ref(),
        format!(
            "it is {what} in the context `{}`; buildah would copy it into the image as such, and the cache key does not cover special files",
            root.display()
        ),
        format!("remove it, or exclude it in .containerignore (a line `{rel}`)"),
    )
}

/// Hash the content of `entries[jobs[..]]` on up to `threads` threads.
/// Returns (entry index, digest, bytes read).
pub(super) fn hash_files(
    root: &Path,
    names: &[u8],
    entries: &[Entry],
    jobs: &[usize],
    threads: usize,
) -> Result<Vec<(usize, [u8; 32], u64)>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let work = || -> Result<Vec<(usize, [u8; 32], u64)>> {
        let mut buf = vec![0u8; READ_BUF];
        let mut done = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some(&idx) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            let path = root.join(OsStr::from_bytes(entries[idx].rel(names)));
            match hash_file(&path, &mut buf) {
                Ok((digest, n)) => done.push((idx, digest, n)),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(done)
    };
    let threads = threads.min(jobs.len());
    if threads <= 1 {
        return work();
    }
    let results: Vec<Result<Vec<_>>> = on_threads(threads, work);
    let mut all = Vec::with_capacity(jobs.len());
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

/// blake3 of a file's content, streamed through `buf`.
fn hash_file(path: &Path, buf: &mut [u8]) -> Result<([u8; 32], u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    loop {
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading", path, e)),
        }
    }
    Ok((*hasher.finalize().as_bytes(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_file_names() {
        assert!(is_cache_file(b"state/stat", b"state/stat"));
        assert!(is_cache_file(b"state/stat.tmp.12.0", b"state/stat"));
        assert!(!is_cache_file(b"state/stats", b"state/stat"));
        assert!(!is_cache_file(b"state", b"state/stat"));
    }

    #[test]
    fn root_must_be_a_directory() {
        let missing =
            std::env::temp_dir().join(format!("mcpod-no-such-context-{}", std::process::id()));
        assert!(matches!(
            hash_context(&missing, None, None),
            Err(Error::InvalidInput { ref field, .. }) if field == "context"
        ));
    }
}
