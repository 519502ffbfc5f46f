//! The host programs provisioning runs: npm and pip resolve and fetch
//! packages, ldd lists the libraries a program loads, and node and python3
//! say what they are. Like every host process they get the allow-listed
//! environment, a working directory of mcpod's own and fixed argv: a package
//! name or version never appears here, only paths of files mcpod wrote.
//! python3 always runs isolated (`-I`: no current or script directory on
//! `sys.path`, no `PYTHON*` variables, no user site), so no module planted
//! anywhere but the interpreter's own library runs.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::process::{Invocation, LineSink, Output};
use crate::Result;

/// npm and pip get this long to resolve or fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(900);
/// A probe of a runtime.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// `npm ARGS` in `dir`, its output lines to `lines`.
pub async fn npm(
    dir: &Path,
    args: &[&str],
    lines: LineSink,
    cancel: CancellationToken,
) -> Result<Output> {
    Invocation::new("npm")
        .args(args)
        .current_dir(dir)
        .timeout(FETCH_TIMEOUT)
        .cancel_on(cancel)
        .on_line(lines)
        .run()
        .await
}

/// `python3 -m pip ARGS`, its output lines to `lines` (or kept, when `None`).
pub async fn pip(
    args: Vec<OsString>,
    lines: Option<LineSink>,
    cancel: CancellationToken,
) -> Result<Output> {
    pip_from(None, args, lines, cancel).await
}

/// `python3 -m pip ARGS`, or with `wheel` (a pip wheel of mcpod's own,
/// fetched with its hash checked) that pip run from the wheel,
/// `python3 -I WHEEL/pip ARGS`.
pub async fn pip_from(
    wheel: Option<&Path>,
    args: Vec<OsString>,
    lines: Option<LineSink>,
    cancel: CancellationToken,
) -> Result<Output> {
    let pip: Vec<OsString> = match wheel {
        Some(wheel) => vec![wheel.join("pip").into()],
        None => vec!["-m".into(), "pip".into()],
    };
    let mut invocation = Invocation::new("python3")
        .arg("-I")
        .args(pip)
        .args(["--disable-pip-version-check", "--no-input"])
        .args(args)
        .timeout(FETCH_TIMEOUT)
        .cancel_on(cancel);
    if let Some(lines) = lines {
        invocation = invocation.on_line(lines);
    }
    invocation.run().await
}

/// `python3 -I ARGS` (a script of mcpod's own), its stdout.
pub async fn python(args: Vec<OsString>, timeout: Duration) -> Result<String> {
    Ok(Invocation::new("python3")
        .arg("-I")
        .args(args)
        .timeout(timeout)
        .run()
        .await?
        .stdout)
}

/// What the host's node is.
#[derive(Clone, Debug, Deserialize)]
pub struct NodeProbe {
    /// e.g. `v20.20.2`
    pub version: String,
    /// The real path of the executable.
    pub exe: PathBuf,
}

/// Ask the `node` on PATH what it is.
pub async fn probe_node() -> Result<NodeProbe> {
    let out = Invocation::new("node")
        .args([
            "-e",
            "const fs=require('fs');console.log(JSON.stringify({version:process.version,exe:fs.realpathSync(process.execPath)}))",
        ])
        .timeout(PROBE_TIMEOUT)
        .run()
        .await?;
    super::process::parse_json("node -e (probe)", &out.stdout)
}

/// What the host's python3 is.
#[derive(Clone, Debug, Deserialize)]
pub struct PythonProbe {
    /// e.g. `3.11.7`
    pub version: String,
    /// e.g. `3.11`
    pub minor: String,
    /// `cpython`
    pub implementation: String,
    /// The real path of the executable.
    pub exe: PathBuf,
    /// The standard library's directory.
    pub stdlib: PathBuf,
    /// The directory of its extension modules.
    pub dynload: PathBuf,
    /// e.g. `2.36`
    pub glibc: String,
}

/// The probe as a Python program (also run inside operator bases).
pub const PYTHON_PROBE: &str = "import json, os, sys, sysconfig\n\
v = sys.version_info\n\
print(json.dumps({'version': '%d.%d.%d' % v[:3], 'minor': '%d.%d' % v[:2], \
'implementation': sys.implementation.name, 'exe': os.path.realpath(sys.executable), \
'stdlib': sysconfig.get_paths()['stdlib'], 'dynload': sysconfig.get_config_var('DESTSHARED') or '', \
'glibc': (os.confstr('CS_GNU_LIBC_VERSION') or ' ').split(' ')[-1]}))";

/// Ask the `python3` on PATH what it is.
pub async fn probe_python() -> Result<PythonProbe> {
    let stdout = python(vec!["-c".into(), PYTHON_PROBE.into()], PROBE_TIMEOUT).await?;
    super::process::parse_json("python3 -c (probe)", &stdout)
}

/// Every library the ELF files `paths` load (and the dynamic loader), as
/// absolute host paths, from `ldd`.
pub async fn libraries(paths: &[PathBuf]) -> Result<BTreeSet<PathBuf>> {
    let out = Invocation::new("ldd")
        .args(paths)
        .timeout(PROBE_TIMEOUT)
        .run()
        .await?;
    parse_ldd(&out.stdout)
}

/// Lines of `ldd`: `libx.so => /path (0x..)`, `/lib64/ld-linux-x86-64.so.2 (0x..)`,
/// `linux-vdso.so.1 (0x..)`, and `FILE:` headers when given several files.
fn parse_ldd(stdout: &str) -> Result<BTreeSet<PathBuf>> {
    let mut out = BTreeSet::new();
    for line in stdout.lines() {
        let line = line.trim();
        if let Some((name, rest)) = line.split_once(" => ") {
            let path = rest.split(" (").next().unwrap_or_default().trim();
            if path == "not found" || !path.starts_with('/') {
                return Err(crate::Error::UnexpectedOutput {
                    command: "ldd".into(),
                    reason: format!("the library `{name}` is missing on the host"),
                });
            }
            out.insert(PathBuf::from(path));
        } else if line.starts_with('/') && line.contains(" (0x") {
            out.insert(PathBuf::from(line.split(" (").next().unwrap_or_default()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines() {
        let out = "/a/x.so:\n\tlinux-vdso.so.1 (0x00007ffd)\n\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n/a/y.so:\n\tstatically linked\n";
        let libs = parse_ldd(out).unwrap();
        let libs: Vec<_> = libs
            .iter()
            .map(|p| p.to_string_lossy().to_string())
            .collect();
        assert_eq!(
            libs,
            [
                "/lib/x86_64-linux-gnu/libm.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        assert!(parse_ldd("\tlibfoo.so => not found\n").is_err());
    }
}
