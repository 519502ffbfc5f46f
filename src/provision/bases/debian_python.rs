//! Python from a Debian release's own packages (bookworm's 3.11, trixie's
//! 3.13): `python3` and its dependency closure, fetched by
//! [`debian`](super::super::debian) (signature and SHA-256 checked) and
//! unpacked with `dpkg-deb -x`, never installed or run on the host. No
//! maintainer script runs, so the CA bundle is the host's, as for a base
//! made from the host's Python. The packages (name=version) are recorded
//! with the base, so a derived base (system packages) names them installed.

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::super::debian::{self, Suite};
use super::super::rootfs::Rootfs;
use super::{Staged, blocking, host, staged};
use crate::image::Progress;
use crate::{Error, Result};

/// The Debian releases whose Python a base can be made from: name, minor,
/// and the version their archive carries (what `Requires-Python` is checked
/// against before anything is fetched).
pub const RELEASES: &[(&str, &str, &str)] =
    &[("bookworm", "3.11", "3.11.2"), ("trixie", "3.13", "3.13.5")];

pub fn suite(name: &str) -> Option<&'static str> {
    RELEASES.iter().find(|r| r.0 == name).map(|r| r.0)
}

pub fn minor_of(suite: &str) -> Option<&'static str> {
    RELEASES.iter().find(|r| r.0 == suite).map(|r| r.1)
}

/// The release whose Python is `minor`.
pub fn suite_with(minor: &str) -> Option<&'static str> {
    RELEASES.iter().find(|r| r.1 == minor).map(|r| r.0)
}

/// What a Python base is made of: the release's `python3`, and the system
/// libraries a manylinux wheel may link without carrying them (PEP 600's
/// list less the graphics ones; libc6, libgcc-s1 and zlib1g come with
/// python3): native wheels built with C++ or Rust load libstdc++.
const PACKAGES: &[&str] = &["python3", "libstdc++6", "libcrypt1"];

/// Directories of the unpacked tree no server reads (documentation, manual
/// pages, translations): left out of the image.
const DROPPED: &[&str] = &["usr/share/doc", "usr/share/man", "usr/share/locale"];

/// Stage `suite`'s Python into `rootfs`.
pub async fn stage(
    suite: &'static str,
    mut rootfs: Rootfs,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Staged> {
    let minor = minor_of(suite).unwrap_or("?");
    let release = Suite::parse(suite).ok_or_else(|| {
        Error::invalid(
            "runtime",
            format!("python@{minor}"),
            format!("`{suite}` is not a Debian release mcpod makes trees from"),
            "choose python@3.11 or python@3.13",
        )
    })?;
    (progress)(format!(
        "making the python {minor} base from Debian {suite}'s packages"
    ));
    let wanted: Vec<String> = PACKAGES.iter().map(|p| p.to_string()).collect();
    let debs = debian::fetch(release, &wanted, &[], progress, cancel).await?;
    let python = debs
        .iter()
        .find(|d| d.name == format!("python{minor}"))
        .ok_or_else(|| Error::UnexpectedOutput {
            command: format!("fetching python3 from Debian {suite}"),
            reason: format!(
                "the closure of python3 has no python{minor} (it has {})",
                debs.iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    // `3.13.5-2` → `3.13.5`: the upstream version the interpreter reports.
    let version = python
        .version
        .split(['-', '+', '~'])
        .next()
        .unwrap_or(&python.version)
        .to_string();
    let root = rootfs.path().to_path_buf();
    debian::unpack(&debs, &root, cancel).await?;
    blocking(move || {
        for dir in DROPPED {
            let path = root.join(dir);
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(|e| Error::io("removing", &path, e))?;
            }
        }
        // No maintainer script made the CA bundle: the host's, as host.rs does.
        let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if certs.is_file() {
            rootfs.copy_file(certs, certs)?;
        }
        rootfs.dir(Path::new("/tmp"), 0o1777)?;
        Ok(tree_size(&root))
    })
    .await
    .map(|size| staged(progress, size))?;
    Ok(Staged {
        version,
        glibc: Some(release.glibc().to_string()),
        origin: format!(
            "Debian {suite}'s python3 ({} packages from the archive, signature and SHA-256 checked)",
            debs.len()
        ),
        env: host::PYTHON_ENV,
        headers: None,
        integrity: None,
        debian: Some((release, debs)),
    })
}

/// Files and bytes under `root` (links not followed).
pub(super) fn tree_size(root: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => {
                    files += 1;
                    bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                }
                _ => {}
            }
        }
    }
    (files, bytes)
}
