//! mcpod's own places on the host: its state directory, and the empty
//! directory every host process it starts works in.
//!
//! A host process never inherits mcpod's working directory. With the usual
//! `mcpod serve --root .` that is the agent's workspace, where an agent (or a
//! child, through a writable mount) can put files: Python puts the current
//! directory first on `sys.path` for `-c` and `-m`, pyenv's shims pick their
//! interpreter from a `.python-version` there, and node resolves `-e`'s
//! requires from it. Every host process starts in [`work_dir`] instead, a
//! directory mcpod made for itself (mode 0500, empty) under the state
//! directory, which no agent path, mount or package names.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `$MCPOD_STATE_DIR`, else `$XDG_CACHE_HOME/mcpod`, else `~/.cache/mcpod`.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MCPOD_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("mcpod");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache").join("mcpod")
}

/// The working directory of every host process mcpod starts: `cwd` under
/// the state directory, made once (mode 0500: not even mcpod writes there)
/// and checked to be a directory of mcpod's own user that nobody else can
/// write and that holds nothing. Where it cannot be had, `/` (root's, and
/// written by no agent, mount or package either), said once in the log.
pub fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = state_dir().join("cwd");
        match make_work_dir(&dir) {
            Ok(()) => dir,
            Err(why) => {
                tracing::warn!(
                    "host processes work in / instead of {}: {why}",
                    dir.display()
                );
                PathBuf::from("/")
            }
        }
    })
}

/// Make `dir` (and its parents) and check it is ours, closed to others and empty.
fn make_work_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o500).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create it: {e}")),
    }
    // Not followed: a symlink put in its place is refused, not trusted.
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot read it: {e}"))?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != uid {
        return Err(format!(
            "it is not a directory of uid {uid}; remove it and mcpod makes it again"
        ));
    }
    if meta.mode() & 0o022 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500))
            .map_err(|e| format!("it is writable by others and cannot be closed: {e}"))?;
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list it: {e}"))?;
    if entries.next().is_some() {
        return Err("it is not empty; remove what is in it".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_work_dir_is_made_closed_and_one_with_files_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state").join("cwd");
        make_work_dir(&dir).expect("made");
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o500);
        make_work_dir(&dir).expect("made again");

        let full = tmp.path().join("full");
        std::fs::create_dir(&full).expect("dir");
        std::fs::write(full.join("json.py"), "raise SystemExit(9)").expect("plant");
        let err = make_work_dir(&full).expect_err("a planted file is refused");
        assert!(err.contains("not empty"), "{err}");

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path(), &link).expect("symlink");
        let err = make_work_dir(&link).expect_err("a symlink is refused");
        assert!(err.contains("not a directory"), "{err}");
    }
}
