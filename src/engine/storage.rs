//! containers-storage's image index, read directly: which ID each image name
//! has, without starting buildah (whose `images` listing reads every image,
//! so its cost grows with the store).
//!
//! The index is `<graphroot>/<driver>-images/images.json`, which buildah,
//! podman and skopeo rewrite atomically (temp file and rename) while holding
//! the write lock on `images.lock` next to it (an fcntl lock over the whole
//! file); it is read here under that lock's read side. Where the store is is
//! the engine's answer (`buildah info`), asked once and remembered in the
//! state directory together with a fingerprint of everything that decides it
//! (the storage settings' files and variables, this user): a changed setting
//! asks again. Every failure here (no answer, no index, a lock held too long,
//! an index too large or unreadable) is `None` or an error the caller answers
//! by asking buildah instead; nothing is guessed.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::process::Invocation;
use crate::{Error, Result};

/// The largest index read: about 50,000 images.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;
/// How long a reader waits for a writer's lock before asking buildah instead.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

/// One image in the index: what a lookup needs of it.
#[derive(Clone, Debug, Deserialize)]
pub struct StoredImage {
    pub id: String,
    #[serde(default)]
    pub names: Option<Vec<String>>,
}

impl StoredImage {
    pub fn names(&self) -> &[String] {
        self.names.as_deref().unwrap_or_default()
    }
}

/// What a read of the index found.
pub enum IndexRead {
    /// The index is still the version the reader knew.
    Unchanged,
    /// The index's version and its images. The version is a digest of what
    /// identifies one state of the index: the lock file's content (every
    /// writer records a new token there under the write lock) and the index
    /// file's identity (device, inode, size, mtime, ctime; writers replace it
    /// by a rename).
    Changed(String, Vec<StoredImage>),
}

/// The image index of the store buildah uses.
#[derive(Clone, Debug)]
pub struct ImageIndex {
    /// `<graphroot>/<driver>-images`.
    dir: PathBuf,
}

impl ImageIndex {
    /// The index in `dir` (a store's `<driver>-images` directory).
    pub fn at(dir: impl Into<PathBuf>) -> ImageIndex {
        ImageIndex { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every image in the index, read under the index's read lock (blocking:
    /// call it off the async threads), with the index's version.
    pub fn read(&self) -> Result<(String, Vec<StoredImage>)> {
        match self.read_if_changed(None)? {
            IndexRead::Changed(version, images) => Ok((version, images)),
            IndexRead::Unchanged => Err(Error::UnexpectedOutput {
                command: format!("reading the image index in {}", self.dir.display()),
                reason: "it was not read".into(),
            }),
        }
    }

    /// The index unless its version (see [`IndexRead`]) is still `known`, under
    /// the index's read lock (blocking: call it off the async threads).
    pub fn read_if_changed(&self, known: Option<&str>) -> Result<IndexRead> {
        use std::os::unix::fs::MetadataExt;
        let lock_path = self.dir.join("images.lock");
        let lock =
            std::fs::File::open(&lock_path).map_err(|e| Error::io("opening", &lock_path, e))?;
        let _held = ReadLock::take(&lock, &lock_path, LOCK_WAIT)?;
        let token = read_bounded(&lock_path, 4096)?;
        let path = self.dir.join("images.json");
        let m = std::fs::metadata(&path).map_err(|e| Error::io("reading", &path, e))?;
        let mut h = blake3::Hasher::new();
        h.update(&token);
        h.update(
            format!(
                "\n{} {} {} {}.{} {}.{}",
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec()
            )
            .as_bytes(),
        );
        let version = h.finalize().to_hex().to_string();
        if known == Some(version.as_str()) {
            return Ok(IndexRead::Unchanged);
        }
        let bytes = read_bounded(&path, MAX_INDEX_BYTES)?;
        Ok(IndexRead::Changed(version, parse_index(&path, &bytes)?))
    }

    /// Whether the image `id` still has its directory in the store (removing
    /// an image removes it): one `stat`.
    pub fn holds(&self, id: &str) -> bool {
        is_hex_id(id) && self.dir.join(id).is_dir()
    }
}

/// The images an index's bytes list; an error naming `path` when they are not
/// an index.
pub fn parse_index(path: &Path, bytes: &[u8]) -> Result<Vec<StoredImage>> {
    // An empty file is an empty store (containers-storage writes none at first).
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let images: Vec<StoredImage> =
        serde_json::from_slice(bytes).map_err(|e| Error::UnexpectedOutput {
            command: format!("reading the image index {}", path.display()),
            reason: format!("it is not containers-storage's image list: {e}"),
        })?;
    if let Some(bad) = images.iter().find(|i| !is_hex_id(&i.id)) {
        return Err(Error::UnexpectedOutput {
            command: format!("reading the image index {}", path.display()),
            reason: format!("an image ID is not 64 hex digits: {:?}", bad.id),
        });
    }
    Ok(images)
}

fn is_hex_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Read `path`, refusing one larger than `max` bytes.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(len.min(max) as usize + 1);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::UnexpectedOutput {
            command: format!("reading the image index {}", path.display()),
            reason: format!(
                "it is larger than {max} bytes, the most mcpod reads of it (buildah lists the store instead)"
            ),
        });
    }
    Ok(bytes)
}

/// containers-storage's read lock on a lock file: an fcntl read lock on the
/// whole file, as its `lockfile.RLock` takes. Released when dropped (or when
/// the file is closed).
struct ReadLock<'a>(&'a std::fs::File);

impl<'a> ReadLock<'a> {
    fn take(file: &'a std::fs::File, path: &Path, wait: Duration) -> Result<ReadLock<'a>> {
        let started = Instant::now();
        loop {
            match fcntl_lock(file, libc::F_RDLCK as libc::c_short) {
                Ok(()) => return Ok(ReadLock(file)),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EAGAIN | libc::EACCES | libc::EINTR)
                    ) && started.elapsed() < wait =>
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => {
                    return Err(Error::io(
                        "taking the read lock on",
                        path,
                        std::io::Error::new(
                            e.kind(),
                            format!(
                                "{e} (waited {} ms for a writer)",
                                started.elapsed().as_millis()
                            ),
                        ),
                    ));
                }
            }
        }
    }
}

impl Drop for ReadLock<'_> {
    fn drop(&mut self) {
        let _ = fcntl_lock(self.0, libc::F_UNLCK as libc::c_short);
    }
}

fn fcntl_lock(file: &std::fs::File, kind: libc::c_short) -> std::io::Result<()> {
    // SAFETY: a zeroed flock is a valid value; the fields set are the ones fcntl reads.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 0;
    lock.l_len = 0;
    // SAFETY: the descriptor is open for the call; `lock` outlives it.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Where the store buildah uses keeps its image index, remembered.
#[derive(Serialize, Deserialize)]
struct Remembered {
    fingerprint: String,
    dir: PathBuf,
}

/// One file per fingerprint: callers with different settings (a different
/// `PATH`, say) sharing a state directory do not undo each other's.
fn remembered_path(fingerprint: &str) -> PathBuf {
    super::home::state_dir().join("image-index").join(format!(
        "{}.json",
        &fingerprint[..fingerprint.len().min(32)]
    ))
}

/// The image index of the store buildah uses; `None` when it cannot be told
/// (buildah does not answer, or its answer names no index here).
pub async fn image_index() -> Option<ImageIndex> {
    let fingerprint = settings_fingerprint();
    if let Some(found) = std::fs::read(remembered_path(&fingerprint))
        .ok()
        .and_then(|b| serde_json::from_slice::<Remembered>(&b).ok())
        .filter(|r| r.fingerprint == fingerprint)
    {
        return Some(ImageIndex::at(found.dir));
    }
    let dir = match ask_buildah().await {
        Ok(dir) => dir,
        Err(e) => {
            tracing::info!(
                "the image index is not read directly; buildah lists the store instead: {e}"
            );
            return None;
        }
    };
    let remembered = Remembered {
        fingerprint,
        dir: dir.clone(),
    };
    if let Err(e) = remember(&remembered) {
        tracing::warn!("could not remember where the image index is: {e}");
    }
    Some(ImageIndex::at(dir))
}

/// `<graphroot>/<driver>-images` from `buildah info`, checked to hold an index.
async fn ask_buildah() -> Result<PathBuf> {
    #[derive(Deserialize)]
    struct Info {
        store: Store,
    }
    #[derive(Deserialize)]
    struct Store {
        #[serde(rename = "GraphRoot")]
        graph_root: PathBuf,
        #[serde(rename = "GraphDriverName")]
        driver: String,
    }
    let inv = Invocation::new("buildah")
        .arg("info")
        .timeout(Duration::from_secs(60));
    let display = inv.display();
    let out = inv.run().await?;
    let info: Info = super::process::parse_json(&display, &out.stdout)?;
    let driver_ok = !info.store.driver.is_empty()
        && info
            .store
            .driver
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !info.store.graph_root.is_absolute() || !driver_ok {
        return Err(Error::UnexpectedOutput {
            command: display,
            reason: format!(
                "the store is {:?} with driver {:?}, not an absolute path and a driver name",
                info.store.graph_root, info.store.driver
            ),
        });
    }
    let dir = info
        .store
        .graph_root
        .join(format!("{}-images", info.store.driver));
    if !dir.join("images.lock").is_file() {
        return Err(Error::UnexpectedOutput {
            command: display,
            reason: format!("{} has no images.lock", dir.display()),
        });
    }
    Ok(dir)
}

fn remember(r: &Remembered) -> Result<()> {
    let path = remembered_path(&r.fingerprint);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let bytes = serde_json::to_vec(r).map_err(|e| Error::UnexpectedOutput {
        command: "serialising where the image index is".into(),
        reason: e.to_string(),
    })?;
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &tmp, e))
}

/// The variables containers-storage reads to find its store (besides its
/// settings files).
const SETTINGS_VARS: &[&str] = &[
    "CONTAINERS_STORAGE_CONF",
    "STORAGE_DRIVER",
    "STORAGE_OPTS",
    "HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "PATH",
];

/// A digest of everything that decides where buildah's store is: this user,
/// the variables above, and the identity (device, inode, size, mtime) of each
/// storage settings file and drop-in directory entry containers-storage
/// reads. A few `stat`s.
fn settings_fingerprint() -> String {
    use std::os::unix::fs::MetadataExt;
    let mut h = blake3::Hasher::new();
    // SAFETY: geteuid has no preconditions.
    h.update(format!("euid={}\n", unsafe { libc::geteuid() }).as_bytes());
    let var = |name: &str| std::env::var_os(name);
    for name in SETTINGS_VARS {
        h.update(name.as_bytes());
        match var(name) {
            Some(v) => h.update(b"=").update(v.as_encoded_bytes()),
            None => h.update(b" unset"),
        };
        h.update(b"\n");
    }
    let config_home = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")));
    let mut files: Vec<PathBuf> = vec![
        "/usr/share/containers/storage.conf".into(),
        "/etc/containers/storage.conf".into(),
    ];
    if let Some(c) = var("CONTAINERS_STORAGE_CONF") {
        files.push(c.into());
    }
    if let Some(c) = &config_home {
        files.push(c.join("containers/storage.conf"));
    }
    let drop_ins: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            let mut d = f.clone().into_os_string();
            d.push(".d");
            PathBuf::from(d)
        })
        .collect();
    for dir in &drop_ins {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut names: Vec<PathBuf> = entries.flatten().take(256).map(|e| e.path()).collect();
            names.sort();
            files.extend(names);
        }
    }
    for file in &files {
        h.update(file.as_os_str().as_encoded_bytes());
        match std::fs::metadata(file) {
            Ok(m) => h.update(
                format!(
                    " {} {} {} {}.{}\n",
                    m.dev(),
                    m.ino(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec()
                )
                .as_bytes(),
            ),
            Err(_) => h.update(b" absent\n"),
        };
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_that_is_not_one_is_an_error_naming_it() {
        let p = Path::new("/s/overlay-images/images.json");
        for bad in [
            &b"{not json"[..],
            b"{\"id\": \"x\"}",
            b"[{\"names\": [\"a\"]}]",
            b"[{\"id\": \"../../etc\"}]",
            b"[{\"id\": 7}]",
        ] {
            let e = parse_index(p, bad).expect_err("not an index").to_string();
            assert!(e.contains("/s/overlay-images/images.json"), "{e}");
        }
        assert!(parse_index(p, b"").expect("empty").is_empty());
        let id = "a".repeat(64);
        let ok = format!(
            r#"[{{"id":"{id}","names":["localhost/x:1"],"layer":"l","big-data-sizes":{{"manifest":1}}}}]"#
        );
        let images = parse_index(p, ok.as_bytes()).expect("an index");
        assert_eq!(
            (images[0].id.as_str(), images[0].names()),
            (id.as_str(), &["localhost/x:1".to_string()][..])
        );
    }

    #[test]
    fn an_index_over_the_bound_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("images.json");
        std::fs::write(&path, vec![b' '; 101]).expect("write");
        let e = read_bounded(&path, 100).expect_err("too large").to_string();
        assert!(
            e.contains("larger than 100 bytes") && e.contains("images.json"),
            "{e}"
        );
        assert_eq!(read_bounded(&path, 101).expect("at the bound").len(), 101);
    }

    #[test]
    fn a_writer_holding_the_lock_makes_the_read_give_up_in_bounded_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("images.lock");
        std::fs::write(&lock, b"").expect("write");
        std::fs::write(dir.path().join("images.json"), b"[]").expect("write");
        // fcntl locks are per process: the writer is another process, which
        // holds an fcntl write lock (as containers-storage's writers take) until killed.
        let script = "import fcntl,sys,time\nf=open(sys.argv[1],'r+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('held',flush=True)\ntime.sleep(60)";
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&lock)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert_eq!(line.trim(), "held");
        let file = std::fs::File::open(&lock).expect("open");
        let e = ReadLock::take(&file, &lock, Duration::from_millis(50))
            .err()
            .expect("the writer holds it")
            .to_string();
        assert!(e.contains("images.lock") && e.contains("waited"), "{e}");
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            ImageIndex::at(dir.path())
                .read()
                .expect("free again")
                .1
                .is_empty()
        );
    }

    #[test]
    fn holds_only_asks_about_an_image_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = "b".repeat(64);
        std::fs::create_dir(dir.path().join(&id)).expect("mkdir");
        let index = ImageIndex::at(dir.path());
        assert!(index.holds(&id));
        assert!(!index.holds(&"c".repeat(64)));
        assert!(!index.holds(".."));
    }
}
