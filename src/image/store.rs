//! mcpod's own state next to the image store: where it lives, the per-key
//! build lock, and the record of what each cached image declares (so a cache
//! hit needs no second probe).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::labels::Declared;
use crate::{Error, Result};

pub use crate::engine::home::state_dir;

/// Where the stat cache of the context at `context` lives.
pub fn stat_cache_path(context: &Path) -> PathBuf {
    let id = blake3::hash(context.as_os_str().as_encoded_bytes());
    state_dir().join("stat").join(&id.to_hex()[..16])
}

/// A directory of mcpod's own for one build (mode 0700, under the state
/// directory), removed with what is in it when dropped.
pub struct BuildDir {
    path: PathBuf,
}

impl BuildDir {
    pub fn create() -> Result<BuildDir> {
        use std::os::unix::fs::DirBuilderExt;
        let parent = state_dir().join("build");
        std::fs::create_dir_all(&parent).map_err(|e| Error::io("creating", &parent, e))?;
        let path = parent.join(crate::engine::nonce());
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| Error::io("creating", &path, e))?;
        Ok(BuildDir { path })
    }

    /// Write `bytes` as `name` in the directory; its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.path.join(name);
        std::fs::write(&path, bytes).map_err(|e| Error::io("writing", &path, e))?;
        Ok(path)
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a build directory");
        }
    }
}

/// What a cached image declares, written after a successful build.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub image_id: String,
    pub tag: String,
    pub declared: Declared,
}

fn record_path(key_hex: &str) -> PathBuf {
    state_dir().join("images").join(format!("{key_hex}.json"))
}

/// The record for `key_hex` if it describes `image_id`; anything unreadable is ignored.
pub fn read_record(key_hex: &str, image_id: &str) -> Option<Record> {
    record(key_hex).filter(|r| r.image_id == image_id)
}

/// The record for `key_hex`, whichever image it describes; anything unreadable is ignored.
pub fn record(key_hex: &str) -> Option<Record> {
    let bytes = std::fs::read(record_path(key_hex)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Write the record atomically (temp file + rename).
pub fn write_record(key_hex: &str, record: &Record) -> Result<()> {
    let path = record_path(key_hex);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let bytes = serde_json::to_vec(record).map_err(|e| Error::UnexpectedOutput {
        command: "serialising the image record".into(),
        reason: e.to_string(),
    })?;
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &tmp, e))
}

/// Held while one key is being built; in-process and across processes.
pub struct KeyLock {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    _file: std::fs::File,
}

/// Wait for the build lock of `key_hex`. Cancelling the returned future while it
/// waits on another task of this process is safe; waiting on another process
/// blocks a worker thread until that process finishes its build.
pub async fn lock_key(key_hex: &str) -> Result<KeyLock> {
    static LOCKS: OnceLock<StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        OnceLock::new();
    let mutex = {
        let mut map = LOCKS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.retain(|_, m| Arc::strong_count(m) > 1);
        map.entry(key_hex.to_string()).or_default().clone()
    };
    let guard = mutex.lock_owned().await;
    let dir = state_dir().join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let path = dir.join(format!("{key_hex}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| Error::io("locking", &path, std::io::Error::other(e)))?
        .map_err(|e| Error::io("locking", &path, e))?;
    Ok(KeyLock {
        _guard: guard,
        _file: file,
    })
}
