//! PyPI dependencies that ship only an sdist, built into wheels where they
//! cannot reach the host.
//!
//! The host resolves wheels only (`--only-binary=:all:`), so no package's
//! build code runs there, not even for metadata. When pip says no wheel
//! fits a requirement ([`wanted`]), mcpod's own script ([`FETCH_SCRIPT`],
//! run with the pinned pip's finder: the operator's index configuration,
//! certificates and credentials) finds that project's sdist for the base's
//! Python, downloads it with a bound and checks its sha256, and copies its
//! `pyproject.toml` out as data. The build requirements are read from it
//! statically (`[build-system].requires`, else setuptools) and downloaded
//! on the host as wheels only. The wheel is built in a throwaway build
//! container ([`super::sandbox_args`]: network none, no capabilities, a
//! read-only root, a non-root uid, the build policy's limits, a deadline, a
//! bounded log) from Debian's Python of the base's minor version with its
//! headers ([`super::toolchain::for_python`]), by `pip wheel --no-index
//! --no-deps`. The host resolves again with the built wheels as find-links,
//! reading their metadata (no code), at most [`MAX_SDISTS`] times.
//!
//! The lock records each sdist (`sdists.txt`: name, version, sha256, URL),
//! so a repeat is reproducible; the sdist and the wheel built from it are
//! cached by the sdist's sha256 and the toolchain's key, so a repeat is
//! offline and builds nothing.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::super::bases::Base;
use super::super::reference::{self, normalize_pypi};
use super::super::{Progressed, TempDir};
use super::toolchain;
pub use super::wheel::Sdist;
use super::wheel::{build_requires, download, run, the_wheel};
use crate::engine::process::Invocation;
use crate::image::store;
use crate::{Error, Result};

/// The most sdists one resolution builds.
pub const MAX_SDISTS: usize = 8;
/// The largest sdist downloaded.
pub const MAX_SDIST_BYTES: u64 = 64 << 20;
/// The largest `pyproject.toml` read.
pub const MAX_PYPROJECT_BYTES: u64 = 256 << 10;
/// The lock's file of sdists.
pub const LOCK_FILE: &str = "sdists.txt";
/// mcpod's script that finds, downloads and reads an sdist (as data).
const FETCH_SCRIPT: &str = include_str!("sdist_fetch.py");

/// The sdists of `lock` (none when it has no `sdists.txt`).
pub fn in_lock(lock: &[u8]) -> Result<Vec<Sdist>> {
    let files = super::super::lock_files(lock)?;
    let Some((_, text)) = files.iter().find(|(n, _)| *n == LOCK_FILE) else {
        return Ok(Vec::new());
    };
    String::from_utf8_lossy(text)
        .lines()
        .map(|line| {
            parse_row(line).ok_or_else(|| Error::UnexpectedOutput {
                command: "reading a recorded lock".into(),
                reason: format!(
                    "`{}` is not an sdist row mcpod wrote (provision with `refresh`)",
                    super::cut(line, 200)
                ),
            })
        })
        .collect()
}

fn parse_row(line: &str) -> Option<Sdist> {
    let mut parts = line.split(' ');
    let (pinned, sha256, url) = (parts.next()?, parts.next()?, parts.next()?);
    let (_, version) = pinned.split_once("==")?;
    let (name, spec) = reference::requirement(pinned).ok()?;
    let hex = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    let web =
        url.starts_with("https://") || url.starts_with("http://") || url.starts_with("file:/");
    (parts.next().is_none() && hex && web && spec == format!("=={version}") && !name.is_empty())
        .then(|| Sdist {
            name,
            version: version.to_string(),
            sha256: sha256.to_string(),
            url: url.to_string(),
        })
}

/// The lock's `sdists.txt`.
pub fn lock_rows(sdists: &[Sdist]) -> String {
    let mut rows: Vec<String> = sdists.iter().map(Sdist::row).collect();
    rows.sort();
    rows.concat()
}

/// What a staged tree's key adds for wheels built from sdists: nothing when
/// the lock has none, else the toolchain's recipe and release.
pub fn key(lock: &[u8], base: &Base) -> String {
    if in_lock(lock).map(|s| s.is_empty()).unwrap_or(true) {
        return String::new();
    }
    format!("-s{}", built_key(base))
}

fn built_key(base: &Base) -> String {
    let suite = toolchain::python_suite(base)
        .map(|s| s.as_str())
        .unwrap_or("none");
    let mut h = blake3::Hasher::new();
    h.update(toolchain::PYTHON_RECIPE.as_bytes());
    h.update(b"\0");
    h.update(suite.as_bytes());
    h.update(b"\0");
    h.update(base.python_minor().unwrap_or_default().as_bytes());
    h.finalize().to_hex()[..16].to_string()
}

/// The requirement pip found no wheel for (`name`, specifiers), from its
/// message ("Could not find a version that satisfies the requirement X
/// (from …)", "No matching distribution found for X").
pub fn wanted(message: &str) -> Option<(String, String)> {
    let from = |line: &str| {
        for marker in [
            "satisfies the requirement ",
            "No matching distribution found for ",
        ] {
            if let Some((_, rest)) = line.split_once(marker) {
                let req = rest.split(" (from").next().unwrap_or(rest);
                let req = req.split(';').next().unwrap_or(req).trim();
                return reference::requirement(req).ok();
            }
        }
        None
    };
    message.lines().find_map(from)
}

/// The wheels one resolution built: a find-links directory pip reads.
pub struct Wheels {
    dir: PathBuf,
    pub built: Vec<Sdist>,
    tried: Vec<(String, String)>,
}

impl Wheels {
    /// Empty, in `work` (per Python minor: the wheels are built for it).
    pub fn new(work: &Path, base: &Base) -> Result<Wheels> {
        let dir = work.join(format!(
            "wheels-{}",
            base.python_minor().unwrap_or_default()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        Ok(Wheels {
            dir,
            built: Vec::new(),
            tried: Vec::new(),
        })
    }

    /// pip's flags to read the built wheels (none before one is built).
    pub fn args(&self) -> Vec<OsString> {
        if self.built.is_empty() {
            return Vec::new();
        }
        vec![
            "--find-links".into(),
            self.dir.clone().into(),
            // A wheel built here is tagged `linux_x86_64`, not manylinux.
            "--platform".into(),
            "linux_x86_64".into(),
        ]
    }

    /// Whether `name` is one of the built sdists.
    pub fn get(&self, name: &str) -> Option<&Sdist> {
        self.built.iter().find(|s| s.name == normalize_pypi(name))
    }

    /// After pip failed with `error`: build the sdist of the requirement it
    /// found no wheel for. `Ok(false)` when the error is not that or the
    /// project has no sdist for it either (pip's error stands).
    pub async fn add(
        &mut self,
        error: &Error,
        base: &Base,
        cutoff: Option<&str>,
        progress: &Progressed,
        cancel: &CancellationToken,
    ) -> Result<bool> {
        let Error::CommandFailed { stderr_tail, .. } = error else {
            return Ok(false);
        };
        let Some((name, spec)) = wanted(stderr_tail) else {
            return Ok(false);
        };
        if self.tried.contains(&(name.clone(), spec.clone())) {
            return Ok(false);
        }
        self.tried.push((name.clone(), spec.clone()));
        if self.built.len() >= MAX_SDISTS {
            return Err(Error::invalid(
                "package",
                format!("{name}{spec}"),
                format!(
                    "it is one more dependency with no wheel for Python {}, and mcpod builds at most {MAX_SDISTS} sdists for one package (built: {})",
                    base.python_minor().unwrap_or_default(),
                    self.built
                        .iter()
                        .map(Sdist::shown)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "pin some of them to versions with wheels (`pins`), or build an image for the server with build_image",
            ));
        }
        let Some((sdist, wheel)) = find(&name, &spec, base, cutoff, progress, cancel).await? else {
            return Ok(false);
        };
        let file = wheel.file_name().unwrap_or_default();
        let link = self.dir.join(file);
        fs::copy(&wheel, &link).map_err(|e| Error::io("copying", &wheel, e))?;
        self.built.retain(|s| s.name != sdist.name);
        self.built.push(sdist);
        Ok(true)
    }
}

/// What the fetch script answered.
#[derive(Debug, Default, Deserialize)]
struct Fetched {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    none: bool,
    #[serde(default)]
    unsupported: Option<String>,
    #[serde(default)]
    too_big: Option<u64>,
    #[serde(default)]
    mismatch: Option<String>,
    #[serde(default)]
    pyproject_too_big: Option<u64>,
    #[serde(default)]
    unreadable: Option<String>,
}

fn cache() -> PathBuf {
    store::state_dir().join("provision").join("sdists")
}

/// Run the fetch script into a fresh directory under the cache; the
/// directory and what it answered.
async fn fetch(
    what: &str,
    mode: &[&str],
    base: &Base,
    cancel: &CancellationToken,
) -> Result<(TempDir, Fetched)> {
    let pip = super::super::as_of::pip_wheel(
        &store::state_dir().join("provision").join("pip"),
        cancel.clone(),
    )
    .await?;
    let tmp = TempDir::create(&cache().join(format!("fetch-{}", crate::engine::nonce())))?;
    let mut args: Vec<OsString> = vec![
        "-c".into(),
        FETCH_SCRIPT.into(),
        pip.into(),
        tmp.path().into(),
        MAX_SDIST_BYTES.to_string().into(),
        MAX_PYPROJECT_BYTES.to_string().into(),
        base.python_minor().unwrap_or_default().into(),
    ];
    args.extend(mode.iter().map(OsString::from));
    let out = Invocation::new("python3")
        .arg("-I")
        .args(args)
        .timeout(Duration::from_secs(600))
        .cancel_on(cancel.clone())
        .run()
        .await?;
    let said: Fetched = crate::engine::process::parse_json("the sdist fetch", &out.stdout)?;
    let refuse = |reason: String| {
        Err(Error::invalid(
            "package",
            what,
            reason,
            "pin the dependency to a version with wheels for this Python (`pins`), or choose another Python (`runtime`)",
        ))
    };
    if let Some(n) = said.too_big {
        return refuse(format!(
            "its sdist is larger than the {} MiB mcpod downloads ({n} bytes read)",
            MAX_SDIST_BYTES >> 20
        ));
    }
    if let Some(got) = &said.mismatch {
        return refuse(format!(
            "its sdist's sha256 is {got}, not the one the index or the lock gives: the download is not the file recorded"
        ));
    }
    if let Some(n) = said.pyproject_too_big {
        return refuse(format!(
            "its sdist's pyproject.toml is {n} bytes, more than the {} KiB mcpod reads",
            MAX_PYPROJECT_BYTES >> 10
        ));
    }
    if let Some(file) = &said.unsupported {
        return refuse(format!(
            "its sdist `{}` is not a .tar.gz or .zip mcpod can read",
            super::cut(file, 200)
        ));
    }
    if let Some(why) = &said.unreadable {
        return refuse(format!(
            "its sdist is not an archive mcpod can read: {}",
            super::cut(why, 300)
        ));
    }
    Ok((tmp, said))
}

/// Find the sdist of `name` `spec` for the base's Python, download and
/// build it (or take the wheel built before): the sdist and its wheel.
async fn find(
    name: &str,
    spec: &str,
    base: &Base,
    cutoff: Option<&str>,
    progress: &Progressed,
    cancel: &CancellationToken,
) -> Result<Option<(Sdist, PathBuf)>> {
    let what = format!("{name}{spec}");
    (progress.say)(format!(
        "no wheel of {what} fits Python {}; looking for its sdist",
        base.python_minor().unwrap_or_default()
    ));
    let mode = ["find", name, spec, cutoff.unwrap_or("")];
    let (tmp, said) = fetch(&what, &mode, base, cancel).await?;
    if said.none {
        return Ok(None);
    }
    let sdist = sdist_of(name, &said)?;
    let src = keep(&sdist, tmp)?;
    let wheel = built(&sdist, &src, base, progress, cancel).await?;
    Ok(Some((sdist, wheel)))
}

fn sdist_of(name: &str, said: &Fetched) -> Result<Sdist> {
    let row = format!(
        "{name}=={} {} {}",
        said.version.as_deref().unwrap_or_default(),
        said.sha256.as_deref().unwrap_or_default(),
        said.url.as_deref().unwrap_or_default()
    );
    parse_row(&row).ok_or_else(|| Error::UnexpectedOutput {
        command: "the sdist fetch".into(),
        reason: format!("an answer mcpod cannot record: {}", super::cut(&row, 300)),
    })
}

/// Move a fetched sdist into the cache (`<sha256>/src`), unless it is there.
fn keep(sdist: &Sdist, tmp: TempDir) -> Result<PathBuf> {
    let src = cache().join(&sdist.sha256).join("src");
    if !src.is_dir() {
        if let Some(parent) = src.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        }
        tmp.persist(&src)?;
    }
    Ok(src)
}

/// The wheel built from the sdist the lock records, for `base` (the staging
/// of a lock): from the cache, else fetched by its URL and sha256 and built.
pub async fn wheel_for(
    sdist: &Sdist,
    base: &Base,
    progress: &Progressed,
    cancel: &CancellationToken,
) -> Result<PathBuf> {
    let src = cache().join(&sdist.sha256).join("src");
    if !src.is_dir() {
        let mode = ["take", sdist.url.as_str(), sdist.sha256.as_str()];
        let (tmp, _) = fetch(&sdist.shown(), &mode, base, cancel).await?;
        keep(sdist, tmp)?;
    }
    built(sdist, &src, base, progress, cancel).await
}

/// The wheel of `sdist` (in `src`) for `base`: cached, else built now.
async fn built(
    sdist: &Sdist,
    src: &Path,
    base: &Base,
    progress: &Progressed,
    cancel: &CancellationToken,
) -> Result<PathBuf> {
    let _lock = store::lock_key(&format!("sdist-{}", sdist.sha256)).await?;
    let out = cache()
        .join(&sdist.sha256)
        .join(format!("built-{}", built_key(base)));
    if let Some(wheel) = the_wheel(&out, sdist).ok().flatten() {
        return Ok(wheel);
    }
    let file = archive(src)?;
    let requires = build_requires(
        sdist,
        super::super::read_small(&src.join("pyproject.toml")).ok(),
    )?;
    let work = TempDir::create(
        &cache()
            .join(&sdist.sha256)
            .join(format!("build-{}", crate::engine::nonce())),
    )?;
    let deps = work.path().join("deps");
    download(sdist, &requires, base, &deps, progress, cancel).await?;
    let (toolchain, python) = toolchain::for_python(base, &progress.say, cancel).await?;
    let wheels = work.path().join("out");
    fs::create_dir_all(&wheels).map_err(|e| Error::io("creating", &wheels, e))?;
    run(
        sdist, &file, &deps, &wheels, &toolchain, &python, progress, cancel,
    )
    .await?;
    let Some(wheel) = the_wheel(&wheels, sdist)? else {
        return Err(Error::invalid(
            "package",
            sdist.shown(),
            "its build in mcpod's build container ended without a wheel",
            "pin the dependency to a version with wheels (`pins`)",
        ));
    };
    drop(wheel);
    super::super::readable(&wheels)?;
    let _ = fs::remove_dir_all(&out);
    fs::rename(&wheels, &out).map_err(|e| Error::io("moving", &wheels, e))?;
    the_wheel(&out, sdist)?.ok_or_else(|| Error::UnexpectedOutput {
        command: "building an sdist".into(),
        reason: format!("{} has no wheel", out.display()),
    })
}

/// The sdist archive in `src`.
fn archive(src: &Path) -> Result<PathBuf> {
    fs::read_dir(src)
        .map_err(|e| Error::io("reading", src, e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".tar.gz") || n.ends_with(".zip")
        })
        .ok_or_else(|| Error::UnexpectedOutput {
            command: "building an sdist".into(),
            reason: format!("{} holds no sdist", src.display()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Sdist {
        Sdist {
            name: "sgmllib3k".into(),
            version: "1.0.0".into(),
            sha256: "7868fb1c8bfa764c1ac563d3cf369c381d1325d36124933a726f29fcdaa812e9".into(),
            url: "https://files.pythonhosted.org/packages/9e/bd/x/sgmllib3k-1.0.0.tar.gz".into(),
        }
    }

    #[test]
    fn pip_says_which_requirement_has_no_wheel() {
        let said = "ERROR: Could not find a version that satisfies the requirement sgmllib3k (from feedparser) (from versions: none)\nERROR: No matching distribution found for sgmllib3k\n";
        assert_eq!(wanted(said), Some(("sgmllib3k".into(), String::new())));
        let said = "ERROR: Could not find a version that satisfies the requirement PyPika==0.48.9 (from versions: 0.50.0, 0.51.0)";
        assert_eq!(wanted(said), Some(("pypika".into(), "==0.48.9".into())));
        assert_eq!(
            wanted("ERROR: No matching distribution found for --index-url=http://x"),
            None
        );
        assert_eq!(wanted("ERROR: ResolutionImpossible"), None);
    }

    #[test]
    fn lock_rows_round_trip_and_strangers_are_refused() {
        let rows = lock_rows(&[s()]);
        let lock = super::super::super::lock_bytes(&[
            ("requirements.txt", b""),
            (LOCK_FILE, rows.as_bytes()),
        ]);
        assert_eq!(in_lock(&lock).unwrap(), [s()]);
        for bad in [
            "sgmllib3k==1.0.0 abc https://x/y.tar.gz",
            "sgmllib3k>=1 7868fb1c8bfa764c1ac563d3cf369c381d1325d36124933a726f29fcdaa812e9 https://x",
            "sgmllib3k==1.0.0 7868fb1c8bfa764c1ac563d3cf369c381d1325d36124933a726f29fcdaa812e9 ftp://x",
            "-e==1 7868fb1c8bfa764c1ac563d3cf369c381d1325d36124933a726f29fcdaa812e9 https://x",
        ] {
            assert!(parse_row(bad).is_none(), "{bad}");
        }
    }
}
