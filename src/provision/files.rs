//! Files provisioning writes and reads of its own: temporary directories
//! renamed into place, atomic writes, bounded reads, locks of several files,
//! and a staged tree's size and modes.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A directory of mcpod's own that is removed when dropped, unless persisted.
pub(super) struct TempDir {
    path: Option<PathBuf>,
}

impl TempDir {
    pub(super) fn create(path: &Path) -> Result<TempDir> {
        std::fs::create_dir_all(path).map_err(|e| Error::io("creating", path, e))?;
        Ok(TempDir {
            path: Some(path.to_path_buf()),
        })
    }

    pub(super) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new("/nonexistent"))
    }

    /// Rename into `to`; when another provisioning got there first, keep
    /// theirs (same lock, same content) and remove this one.
    pub(super) fn persist(mut self, to: &Path) -> Result<()> {
        let Some(path) = self.path.take() else {
            return Ok(());
        };
        match std::fs::rename(&path, to) {
            Ok(()) => Ok(()),
            Err(_) if to.join("ctx").is_dir() => {
                let _ = std::fs::remove_dir_all(&path);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&path);
                Err(Error::io("renaming", to, e))
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Write a file of mcpod's own.
pub(super) fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io("writing", path, e))
}

/// Write a file of mcpod's own atomically.
pub(super) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", crate::engine::nonce()));
    write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming", &tmp, e))
}

/// The most a staged package may take on disk.
pub(super) const MAX_STAGED_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// What staging a lock warned of, beside its `ctx`.
pub(super) const STAGE_WARNINGS: &str = "warnings.json";

/// Bytes of the regular files under `dir` (links not followed).
pub(super) fn tree_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io("reading", &d, e))? {
            let entry = entry.map_err(|e| Error::io("reading", &d, e))?;
            let meta = entry
                .metadata()
                .map_err(|e| Error::io("reading", entry.path(), e))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// The largest file provisioning reads (a lockfile, a report, a manifest).
pub(super) const MAX_READ: u64 = 16 * 1024 * 1024;

/// Read a file of at most 16 MiB (mcpod's own, or a staged package's:
/// opened non-blocking and refused unless it is a regular file).
pub(super) fn read_small(path: &Path) -> Result<Vec<u8>> {
    crate::cache::input::read_bounded(path, "file", MAX_READ, |_| Ok(()))
}

/// A lock of several files as one byte string (each `NAME LEN\n` then its bytes).
pub(super) fn lock_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        out.extend_from_slice(format!("{name} {}\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// The files of a lock made by [`lock_bytes`].
pub(super) fn lock_files(mut lock: &[u8]) -> Result<Vec<(&str, &[u8])>> {
    let bad = || Error::UnexpectedOutput {
        command: "reading a recorded lock".into(),
        reason: "it is not a lock mcpod wrote (remove it, or provision with `refresh`)".into(),
    };
    let mut out = Vec::new();
    while !lock.is_empty() {
        let nl = lock.iter().position(|&b| b == b'\n').ok_or_else(bad)?;
        let header = std::str::from_utf8(&lock[..nl]).map_err(|_| bad())?;
        let (name, len) = header.rsplit_once(' ').ok_or_else(bad)?;
        let len: usize = len.parse().map_err(|_| bad())?;
        let rest = &lock[nl + 1..];
        if rest.len() < len || name.contains('/') || name.is_empty() {
            return Err(bad());
        }
        out.push((name, &rest[..len]));
        lock = &rest[len..];
    }
    Ok(out)
}

/// Every file and directory under `dir` readable by all, writable by none
/// but the owner (sessions may run as an unmapped uid).
pub(super) fn readable(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let set = |path: &Path, dir_or_exec: bool| {
            let mode = if dir_or_exec { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("setting the mode of", path, e))
        };
        set(&d, true)?;
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io("reading", &d, e))? {
            let entry = entry.map_err(|e| Error::io("reading", &d, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("reading", entry.path(), e))?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let exec = entry
                    .metadata()
                    .map(|m| m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false);
                set(&entry.path(), exec)?;
            }
        }
    }
    Ok(())
}
