//! Bases made from the host's own runtime: the `node` or `python3` on PATH,
//! the libraries `ldd` lists (the host's programs are trusted to be run),
//! Python's standard library, each at its host path.

use std::fs;
use std::path::{Path, PathBuf};

use super::super::rootfs::Rootfs;
use super::{Runtime, Staged, blocking, staged};
use crate::engine::runtime;
use crate::image::Progress;
use crate::{Error, Result};

/// The host program a base would be made from, and its version.
pub async fn program(runtime: Runtime) -> Result<(PathBuf, String)> {
    Ok(match runtime {
        Runtime::Node => {
            let p = runtime::probe_node().await?;
            (p.exe, p.version)
        }
        Runtime::Python => {
            let p = runtime::probe_python().await?;
            (p.exe, p.version)
        }
    })
}

/// Directories of Python's standard library a server never needs (tests,
/// GUI toolkits, the static library, the host's installed packages).
fn skip_in_stdlib(rel: &Path) -> bool {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().to_string());
    let Some(first) = first else { return false };
    if rel.components().count() == 1 {
        let name = first.as_str();
        return matches!(
            name,
            "site-packages"
                | "dist-packages"
                | "test"
                | "idlelib"
                | "tkinter"
                | "turtledemo"
                | "ensurepip"
                | "lib2to3"
                | "__phello__"
        ) || name.starts_with("config-3")
            || name == "turtle.py";
    }
    // The Tk extension module pulls in X11.
    first == "lib-dynload"
        && rel
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("_tkinter"))
}

/// The system libraries a manylinux wheel may link without carrying them
/// (PEP 600's list, less the graphics ones), from the directory the host's
/// libc is in: native wheels (Rust- and C++-built) load libgcc_s and libstdc++.
fn manylinux_libraries(libs: &std::collections::BTreeSet<PathBuf>) -> Vec<PathBuf> {
    const ALLOWED: &[&str] = &[
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "libm.so.6",
        "libdl.so.2",
        "librt.so.1",
        "libpthread.so.0",
        "libutil.so.1",
        "libresolv.so.2",
        "libcrypt.so.1",
        "libz.so.1",
    ];
    let Some(dir) = libs
        .iter()
        .find(|l| l.file_name().is_some_and(|n| n == "libc.so.6"))
        .and_then(|l| l.parent())
    else {
        return Vec::new();
    };
    ALLOWED
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.exists())
        .collect()
}

/// Stage `runtime`'s host program into `rootfs`.
pub async fn stage(runtime: Runtime, mut rootfs: Rootfs, progress: &Progress) -> Result<Staged> {
    match runtime {
        Runtime::Node => {
            let probe = runtime::probe_node().await?;
            (progress)(format!(
                "making the node base from the host's {} {}",
                probe.exe.display(),
                probe.version
            ));
            let libs = runtime::libraries(std::slice::from_ref(&probe.exe)).await?;
            super::copy_node(
                rootfs,
                probe.exe.clone(),
                libs.into_iter().collect(),
                progress,
            )
            .await?;
            Ok(Staged {
                version: probe.version,
                glibc: None,
                origin: format!("the host's {}", probe.exe.display()),
                env: "NODE_ENV=production",
                headers: None,
                integrity: None,
                debian: None,
            })
        }
        Runtime::Python => {
            let probe = runtime::probe_python().await?;
            if probe.implementation != "cpython" {
                return Err(Error::invalid(
                    "python3",
                    probe.exe.display().to_string(),
                    format!(
                        "it is {}, not CPython (wheels are chosen for CPython)",
                        probe.implementation
                    ),
                    "put a CPython python3 first on mcpod's PATH, or name a base with --base python=IMAGE",
                ));
            }
            (progress)(format!(
                "making the python base from the host's {} {}",
                probe.exe.display(),
                probe.version
            ));
            let mut elves = vec![probe.exe.clone()];
            if let Ok(entries) = fs::read_dir(&probe.dynload) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.ends_with(".so") && !name.starts_with("_tkinter") {
                        elves.push(entry.path());
                    }
                }
            }
            let mut libs = runtime::libraries(&elves).await?;
            libs.extend(manylinux_libraries(&libs));
            let p = probe.clone();
            blocking(move || {
                rootfs.copy_file(&p.exe, &p.exe)?;
                if p.exe != Path::new("/usr/bin/python3") {
                    rootfs.symlink(Path::new("/usr/bin/python3"), &p.exe)?;
                }
                rootfs.copy_tree(&p.stdlib, &skip_in_stdlib)?;
                if !p.dynload.starts_with(&p.stdlib) && p.dynload.is_dir() {
                    rootfs.copy_tree(&p.dynload, &|rel| {
                        rel.to_string_lossy().starts_with("_tkinter")
                    })?;
                }
                for lib in &libs {
                    rootfs.copy_file(lib, lib)?;
                }
                let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
                if certs.is_file() {
                    rootfs.copy_file(certs, certs)?;
                }
                rootfs.dir(Path::new("/tmp"), 0o1777)?;
                Ok(rootfs.size())
            })
            .await
            .map(|size| staged(progress, size))?;
            Ok(Staged {
                version: probe.version,
                glibc: Some(probe.glibc),
                origin: format!("the host's {}", probe.exe.display()),
                env: PYTHON_ENV,
                headers: None,
                integrity: None,
                debian: None,
            })
        }
    }
}

pub const PYTHON_ENV: &str = "PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1";

/// The directories the host's libraries are in (where the host's libc is,
/// then the multiarch and lib64 ones), for a program not from the host.
pub async fn library_dirs() -> Result<Vec<PathBuf>> {
    let sh = fs::canonicalize("/bin/sh").map_err(|e| Error::io("reading", "/bin/sh", e))?;
    let libs = runtime::libraries(&[sh]).await?;
    let mut dirs: Vec<PathBuf> = libs
        .iter()
        .filter(|l| l.file_name().is_some_and(|n| n == "libc.so.6"))
        .filter_map(|l| l.parent().map(Path::to_path_buf))
        .collect();
    let arch = std::env::consts::ARCH;
    for d in [
        format!("/usr/lib/{arch}-linux-gnu"),
        format!("/lib/{arch}-linux-gnu"),
        "/usr/lib64".into(),
        "/lib64".into(),
    ] {
        let d = PathBuf::from(d);
        if d.is_dir() && !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    Ok(dirs)
}

/// The host files of the libraries `names` (found in `dirs`) and of what
/// those load in turn (`ldd` on the host's own libraries).
pub async fn libraries_named(names: &[String], dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for name in names {
        let path = dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.exists())
            .ok_or_else(|| Error::UnexpectedOutput {
                command: "finding the libraries node loads".into(),
                reason: format!(
                    "the library `{name}` is not on the host (looked in {})",
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        found.push(path);
    }
    let mut all: std::collections::BTreeSet<PathBuf> = runtime::libraries(&found).await?;
    all.extend(found);
    Ok(all.into_iter().collect())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stdlib_keeps_what_servers_import() {
        for skipped in [
            "site-packages",
            "test",
            "tkinter",
            "config-3.11-x86_64-linux-gnu",
            "lib-dynload/_tkinter.cpython-311-x86_64-linux-gnu.so",
        ] {
            assert!(skip_in_stdlib(Path::new(skipped)), "{skipped}");
        }
        for kept in [
            "json",
            "asyncio",
            "os.py",
            "lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
            "unittest",
            "json/tests",
        ] {
            assert!(!skip_in_stdlib(Path::new(kept)), "{kept}");
        }
    }
}
