//! Files a build reads besides the context tree (the Containerfile, the ignore
//! file): read with a size bound, never blocking on a FIFO, and checked for
//! where they really are once open, so that a symlink cannot lead the read out
//! of the place it is allowed in.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The largest Containerfile mcpod reads.
pub const MAX_CONTAINERFILE: u64 = 1 << 20;
/// The largest ignore file mcpod reads.
pub const MAX_IGNORE_FILE: u64 = 1 << 20;

/// Read the regular file `path` (`what` names it in errors), at most `limit`
/// bytes. `allow` is called with the path of the file actually opened (all
/// symlinks resolved) before anything is read, and may refuse it.
///
/// The file is opened non-blocking, so a FIFO put in its place cannot hang the
/// read, and its type is checked on the open descriptor before it is read.
/// Errors: [`Error::Io`] when it cannot be opened (`NotFound` included, for
/// the caller to tell), [`Error::InvalidInput`] when it is not a regular file
/// or is larger than `limit`, and whatever `allow` returns.
pub fn read_bounded(
    path: &Path,
    what: &str,
    limit: u64,
    allow: impl FnOnce(&Path) -> Result<()>,
) -> Result<Vec<u8>> {
    // A quick look first, so that a device is not even opened.
    let meta = std::fs::metadata(path).map_err(|e| Error::io("reading", path, e))?;
    check_meta(path, what, limit, &meta)?;
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Error::io("reading", path, e))?;
    // What was opened may differ from what was looked at: check it again.
    let meta = file.metadata().map_err(|e| Error::io("reading", path, e))?;
    check_meta(path, what, limit, &meta)?;
    allow(&opened_path(&file, path)?)?;
    let mut bytes = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, what, limit, bytes.len() as u64));
    }
    Ok(bytes)
}

fn check_meta(path: &Path, what: &str, limit: u64, meta: &std::fs::Metadata) -> Result<()> {
    if !meta.is_file() {
        return Err(Error::invalid(
            what,
            path.display().to_string(),
            "it is not a regular file",
            format!("make the {what} a regular file"),
        ));
    }
    if meta.len() > limit {
        return Err(too_large(path, what, limit, meta.len()));
    }
    Ok(())
}

fn too_large(path: &Path, what: &str, limit: u64, size: u64) -> Error {
    Error::invalid(
        what,
        path.display().to_string(),
        format!("it is {size} bytes, over the limit of {limit} bytes"),
        format!("keep the {what} under {} KiB", limit >> 10),
    )
}

/// The path of the file open as `file`: `/proc/self/fd` knows it without a
/// race; without /proc, the resolved `path`.
fn opened_path(file: &std::fs::File, path: &Path) -> Result<PathBuf> {
    use std::os::fd::AsRawFd;
    let link = format!("/proc/self/fd/{}", file.as_raw_fd());
    match std::fs::read_link(link) {
        Ok(real) => Ok(real),
        Err(_) => std::fs::canonicalize(path).map_err(|e| Error::io("resolving", path, e)),
    }
}

/// Refuse `real` (where `path` really is) unless it lies inside one of
/// `roots` (canonical paths).
pub fn inside(what: &str, path: &Path, real: &Path, roots: &[&Path], place: &str) -> Result<()> {
    if roots.iter().any(|root| real.starts_with(root)) {
        return Ok(());
    }
    Err(Error::invalid(
        what,
        path.display().to_string(),
        format!("it resolves to `{}`, outside {place}", real.display()),
        format!("replace the symlink with the {what} itself, inside {place}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_never_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").expect("write");
        let ok = read_bounded(&file, "thing", 5, |_| Ok(())).expect("at the limit");
        assert_eq!(ok, b"12345");
        let err = read_bounded(&file, "thing", 4, |_| Ok(())).expect_err("over");
        assert!(
            err.to_string().contains("5 bytes, over the limit of 4"),
            "{err}"
        );

        // A FIFO is refused, not opened for a read that would never end.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let err = read_bounded(&fifo, "thing", 10, |_| Ok(())).expect_err("fifo");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = read_bounded(Path::new("/dev/zero"), "thing", 10, |_| Ok(())).expect_err("dev");
        assert!(err.to_string().contains("not a regular file"), "{err}");

        // `allow` sees where a symlink leads.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let canonical = std::fs::canonicalize(&file).expect("canonical");
        let mut seen = None;
        read_bounded(&link, "thing", 10, |real| {
            seen = Some(real.to_path_buf());
            Ok(())
        })
        .expect("read");
        assert_eq!(seen, Some(canonical.clone()));
        let elsewhere = dir.path().join("elsewhere");
        let err =
            inside("thing", &link, &canonical, &[&elsewhere], "the context").expect_err("out");
        assert!(
            err.to_string().contains(&canonical.display().to_string()),
            "{err}"
        );
    }
}
