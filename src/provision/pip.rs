//! The host's pip as provisioning runs it: the flags that pick wheels for a
//! base rather than for the host, and the pinned pip for a base whose
//! Python is not the host's.

use std::ffi::OsString;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::bases::Base;
use crate::engine::runtime;
use crate::{Error, Result};

/// pip's flags that pick wheels for the base, not for the host.
pub(crate) fn target(base: &Base) -> Result<Vec<OsString>> {
    let minor = base.python_minor().ok_or_else(|| Error::UnexpectedOutput {
        command: "the python base".into(),
        reason: format!("`{}` is not a Python version", base.version),
    })?;
    let abi = format!("cp{}", minor.replace('.', ""));
    let glibc_minor: u32 = base
        .glibc
        .as_deref()
        .and_then(|g| g.strip_prefix("2."))
        .and_then(|m| m.parse().ok())
        .unwrap_or(17);
    let mut args: Vec<OsString> = [
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.extend([minor.into(), "--abi".into(), abi.into()]);
    for v in (17..=glibc_minor.max(17)).rev() {
        args.push("--platform".into());
        args.push(format!("manylinux_2_{v}_x86_64").into());
    }
    for legacy in [
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
    ] {
        args.push("--platform".into());
        args.push(legacy.into());
    }
    Ok(args)
}

/// The pinned pip (run from its wheel) when `base`'s Python is not the
/// host's: pip 23's resolver checks Requires-Python against the Python it
/// runs on, not `--python-version` (`requires a different Python: 3.11.7
/// not in '>=3.12'` for a 3.13 base); pip 26 checks the target's.
pub(crate) async fn pinned_pip_for(
    base: &Base,
    cancel: CancellationToken,
) -> Result<Option<PathBuf>> {
    let host = runtime::probe_python().await?;
    if Some(host.minor) == base.python_minor() {
        return Ok(None);
    }
    let dir = crate::image::store::state_dir()
        .join("provision")
        .join("pip");
    Ok(Some(super::as_of::pip_wheel(&dir, cancel).await?))
}
