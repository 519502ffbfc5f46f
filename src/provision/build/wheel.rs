//! One sdist built into a wheel: its build requirements read from its
//! `pyproject.toml` as data and downloaded on the host as wheels only, then
//! `pip wheel --no-index --no-deps` in a build container
//! ([`super::sandbox_args`]: network none, no capabilities, a read-only
//! root, a non-root uid, the build policy's limits, a deadline and a bounded
//! log) on Debian's Python of the base's minor version with its headers.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::super::bases::Base;
use super::super::reference::{self, normalize_pypi};
use super::super::{Progressed, pip};
use super::{Log, hand_back, run_logged, sandbox_args, toolchain};
use crate::engine::runtime;
use crate::engine::userns::UserMode;
use crate::image::store;
use crate::{Error, Result};

/// The most build requirements one sdist may name.
pub const MAX_BUILD_REQUIRES: usize = 32;
/// The largest wheel a build may make.
pub const MAX_WHEEL_BYTES: u64 = 256 << 20;
/// How long one sdist's build may take.
pub const DEADLINE: Duration = Duration::from_secs(15 * 60);
/// setuptools' legacy build when an sdist declares none (PEP 517's default).
const DEFAULT_REQUIRES: &[&str] = &["setuptools>=40.8.0", "wheel"];
/// Where the build container has its inputs and output.
const IN: &str = "/mcpod";

/// One sdist a lock records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sdist {
    /// The normalized project name.
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub url: String,
}

impl Sdist {
    pub fn row(&self) -> String {
        format!(
            "{}=={} {} {}\n",
            self.name, self.version, self.sha256, self.url
        )
    }

    pub fn shown(&self) -> String {
        format!("{}=={} (sdist)", self.name, self.version)
    }
}

/// The one wheel of `sdist` in `dir` (none when there is none yet); more
/// than one, another project's, or one too large is refused.
pub fn the_wheel(dir: &Path, sdist: &Sdist) -> Result<Option<PathBuf>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(None);
    };
    let wheels: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    let refuse = |reason: String| Err(refused(sdist, reason));
    match wheels.as_slice() {
        [] => Ok(None),
        [wheel] => {
            let name = wheel
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let project = name.split('-').next().unwrap_or_default();
            if normalize_pypi(project) != sdist.name {
                return refuse(format!(
                    "its build made `{}`, a wheel of another project",
                    super::cut(&name, 200)
                ));
            }
            let size = fs::symlink_metadata(wheel)
                .map_err(|e| Error::io("reading", wheel, e))?
                .len();
            if size > MAX_WHEEL_BYTES {
                return refuse(format!(
                    "its build made a wheel of {size} bytes, more than the {} MiB mcpod takes",
                    MAX_WHEEL_BYTES >> 20
                ));
            }
            Ok(Some(wheel.clone()))
        }
        more => refuse(format!("its build made {} wheels, not one", more.len())),
    }
}

/// An sdist mcpod will not build or take the build of, and why.
fn refused(sdist: &Sdist, reason: String) -> Error {
    Error::invalid(
        "package",
        sdist.shown(),
        reason,
        "pin the dependency to a version with wheels (`pins`)",
    )
}

/// The build requirements of an sdist, read from its `pyproject.toml`
/// (`[build-system].requires`; setuptools when it declares no build
/// system), each a name with version specifiers and an optional marker.
pub fn build_requires(sdist: &Sdist, pyproject: Option<Vec<u8>>) -> Result<Vec<String>> {
    let refuse = |reason: String| Err(refused(sdist, reason));
    let Some(bytes) = pyproject else {
        return Ok(DEFAULT_REQUIRES.iter().map(|s| s.to_string()).collect());
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return refuse("its pyproject.toml is not UTF-8".into());
    };
    let doc: toml_edit::Document<String> = match text.to_string().parse() {
        Ok(doc) => doc,
        Err(e) => {
            return refuse(format!(
                "its pyproject.toml is not TOML: {}",
                lines(&e.to_string())
            ));
        }
    };
    let Some(system) = doc.get("build-system") else {
        return Ok(DEFAULT_REQUIRES.iter().map(|s| s.to_string()).collect());
    };
    let Some(requires) = system.get("requires").and_then(|r| r.as_array()) else {
        return refuse("its pyproject.toml's [build-system] has no `requires` list".into());
    };
    if requires.len() > MAX_BUILD_REQUIRES {
        return refuse(format!(
            "it names {} build requirements, more than the {MAX_BUILD_REQUIRES} mcpod takes",
            requires.len()
        ));
    }
    let mut out = Vec::new();
    for value in requires.iter() {
        let text = value.as_str().unwrap_or_default().trim();
        let (req, marker) = text.split_once(';').unwrap_or((text, ""));
        let marker_ok = marker.len() <= 200
            && marker
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" _.'\"<>=!(),~-".contains(&b));
        if let Err(why) = reference::requirement(req).map(|_| ()).and(if marker_ok {
            Ok(())
        } else {
            Err("its marker has characters a marker does not".into())
        }) {
            return refuse(format!(
                "its build requirement `{}` is not one mcpod takes: {why}",
                super::cut(text, 200)
            ));
        }
        out.push(text.to_string());
    }
    Ok(out)
}

/// Download `requires` (with their dependencies) as wheels for the base's
/// Python into `deps`, on the host, no build: a build requirement that is
/// itself only an sdist is refused.
pub async fn download(
    sdist: &Sdist,
    requires: &[String],
    base: &Base,
    deps: &Path,
    progress: &Progressed,
    cancel: &CancellationToken,
) -> Result<()> {
    let file = deps.with_extension("in");
    super::super::write(&file, requires.join("\n").as_bytes())?;
    (progress.say)(format!(
        "downloading the build requirements of {} as wheels: {}",
        sdist.shown(),
        requires.join(", ")
    ));
    let mut args: Vec<OsString> = vec![
        "download".into(),
        "--quiet".into(),
        "--dest".into(),
        deps.into(),
        "-r".into(),
        file.into(),
    ];
    args.extend(pip::target(base)?);
    let pip = pip::pinned_pip_for(base, cancel.clone()).await?;
    match runtime::pip_from(
        pip.as_deref(),
        args,
        Some(progress.lines("pip")),
        cancel.clone(),
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(Error::CommandFailed { stderr_tail, .. }) => Err(Error::invalid(
            "package",
            sdist.shown(),
            format!(
                "its build requirements ({}) are not all available as wheels for Python {} (mcpod builds sdists one level deep, never a build requirement's); pip said:\n{}",
                requires.join(", "),
                base.python_minor().unwrap_or_default(),
                lines(&stderr_tail)
            ),
            "pin the dependency to a version with wheels (`pins`)",
        )),
        Err(other) => Err(other),
    }
}

/// The build container: `pip wheel` over the sdist, offline, from the
/// build requirements in `deps`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    sdist: &Sdist,
    file: &Path,
    deps: &Path,
    out: &Path,
    toolchain: &toolchain::Toolchain,
    python: &str,
    progress: &Progressed,
    cancel: &CancellationToken,
) -> Result<()> {
    let user = UserMode::detect().await;
    user.usable()?;
    let pip = super::super::as_of::pip_wheel(
        &store::state_dir().join("provision").join("pip"),
        cancel.clone(),
    )
    .await?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    (progress.say)(format!(
        "building {} from {name} in a build container (network none, Debian's {python})",
        sdist.shown()
    ));
    let container = format!("mcpod-build-{}", crate::engine::nonce());
    let mut args = sandbox_args(
        &container,
        &sdist.shown(),
        &[
            format!("--volume={}:{IN}/src.archive:ro", file.display()),
            format!("--volume={}:{IN}/deps:ro", deps.display()),
            format!("--volume={}:{IN}/pip.whl:ro", pip.display()),
            format!("--volume={}:{IN}/out:rw,U", out.display()),
        ],
        DEADLINE,
        &user,
    );
    // pip reads the archive's kind from its name: link it under its own.
    let script = format!(
        "ln -s {IN}/src.archive /tmp/{name} && exec {python} -I {IN}/pip.whl/pip wheel --no-index --find-links {IN}/deps --no-deps --no-cache-dir --wheel-dir {IN}/out /tmp/{name}"
    );
    args.extend([toolchain.image_id.clone(), "sh".into(), "-c".into(), script]);
    let (ran, log) = run_logged(args, &container, DEADLINE, progress, cancel).await;
    let handed_back = hand_back(out).await;
    let status = match ran {
        Ok(status) => status,
        Err(Error::Cancelled { .. }) if !cancel.is_cancelled() => {
            return Err(failed(
                sdist,
                python,
                &format!(
                    "it printed more than {} MiB, so the build was stopped",
                    super::MAX_LOG_BYTES >> 20
                ),
                &log,
            ));
        }
        Err(Error::Timeout { .. }) => {
            return Err(failed(
                sdist,
                python,
                &format!(
                    "it did not finish within {} s and was stopped",
                    DEADLINE.as_secs()
                ),
                &log,
            ));
        }
        Err(other) => return Err(other),
    };
    handed_back?;
    if !status.success() {
        return Err(failed(sdist, python, "its build failed", &log));
    }
    Ok(())
}

fn failed(sdist: &Sdist, python: &str, what: &str, log: &Log) -> Error {
    let first_error = log
        .first_error
        .as_deref()
        .map(|e| format!("; the first error: `{e}`"))
        .unwrap_or_default();
    Error::invalid(
        "package",
        sdist.shown(),
        format!(
            "no wheel of it fits the base's Python, so mcpod built its sdist in a build container (Debian's {python}, no network), and {what}{first_error}; the build log ends:\n{}",
            log.tail()
        ),
        format!(
            "pin `{}` to a version with wheels for this Python (`pins`), or run on another Python (`runtime`: python@3.11 or python@3.13); a build that needs a C library's headers or the network cannot build here",
            sdist.name
        ),
    )
}

/// The last lines of a message (at most 1500 bytes), each cut and escaped.
fn lines(text: &str) -> String {
    let mut kept: Vec<String> = Vec::new();
    let mut bytes = 0;
    for line in text.lines().rev().filter(|l| !l.trim().is_empty()) {
        let line = super::cut(line, 300);
        bytes += line.len() + 1;
        if bytes > 1500 {
            break;
        }
        kept.push(line);
    }
    kept.reverse();
    kept.join("\n")
}

/// The sha256 of a file, hex.
pub fn sha256_of(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut file = fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Sdist {
        Sdist {
            name: "sgmllib3k".into(),
            version: "1.0.0".into(),
            sha256: "7868fb1c8bfa764c1ac563d3cf369c381d1325d36124933a726f29fcdaa812e9".into(),
            url: "https://files.pythonhosted.org/packages/x/sgmllib3k-1.0.0.tar.gz".into(),
        }
    }

    #[test]
    fn build_requirements_are_read_as_data() {
        let req = |text: &str| build_requires(&s(), Some(text.as_bytes().to_vec()));
        assert_eq!(build_requires(&s(), None).unwrap(), DEFAULT_REQUIRES);
        assert_eq!(req("[project]\nname='x'\n").unwrap(), DEFAULT_REQUIRES);
        assert_eq!(
            req("[build-system]\nrequires = [\"hatchling>=1.0\", \"tomli; python_version < '3.11'\"]\n").unwrap(),
            ["hatchling>=1.0", "tomli; python_version < '3.11'"]
        );
        for bad in [
            "[build-system\nrequires = [",
            "[build-system]\nbuild-backend = 'x'\n",
            "[build-system]\nrequires = ['--index-url http://evil']\n",
            "[build-system]\nrequires = ['x @ https://evil/x.tar.gz']\n",
            "[build-system]\nrequires = ['x\\n-e .']\n",
        ] {
            let err = req(bad).expect_err(bad).to_string();
            assert!(err.contains("sgmllib3k==1.0.0 (sdist)"), "{err}");
        }
        let many = format!(
            "[build-system]\nrequires = [{}]\n",
            vec!["'a'"; 40].join(",")
        );
        assert!(
            req(&many)
                .unwrap_err()
                .to_string()
                .contains("more than the 32")
        );
    }
}
