//! The base a package gets, from what resolving it says: npm's lock carries
//! the package's `engines.node`; pip's refusal carries its `Requires-Python`.
//! (Which runtimes exist and how they are made is `bases`' business.)

use std::path::Path;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::bases::{self, Asked, Base, OperatorBases, Runtime};
use super::reference::{PackageRef, Pin};
use super::{Progressed, lock_files, pypi};
use crate::image::Progress;
use crate::{Error, Result};

/// The root package's `engines.node`, as npm's lock records it.
pub fn engines_node(lock: &[u8], name: &str) -> Option<String> {
    let files = lock_files(lock).ok()?;
    let doc: Value = serde_json::from_slice(files.last()?.1).ok()?;
    doc["packages"][format!("node_modules/{name}")]["engines"]["node"]
        .as_str()
        .map(str::to_string)
}

/// A warning when `base`'s node is outside the package's engines.node (a
/// request named it, or the operator's base carries it).
pub fn engines_mismatch(package: &PackageRef, lock: &[u8], base: &Base) -> Option<String> {
    let range = engines_node(lock, &package.name)?;
    let parsed = bases::versions::NodeRange::parse(&range).ok()?;
    let version = bases::versions::Version::parse(&base.version)?;
    (!parsed.matches(version)).then(|| {
        format!(
            "`{package}` asks for node `{}` (its engines.node), and it runs on node {version} ({}): it may fail at start (a missing `node:` module or API); drop `runtime` to let mcpod choose a node that fits",
            range.chars().take(80).collect::<String>().escape_debug(),
            base.id
        )
    })
}

/// The node base for an npm package whose lock is `lock`: the base, notes
/// (why it), warnings.
pub async fn node(
    package: &PackageRef,
    lock: &[u8],
    asked: Option<&Asked>,
    operator: &OperatorBases,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<(Base, Vec<String>, Vec<String>)> {
    let engines = engines_node(lock, &package.name);
    if operator.contains_key(&Runtime::Node) {
        let base = bases::resolve(
            &bases::Pick::Host(Runtime::Node),
            operator,
            progress,
            cancel,
        )
        .await?;
        return Ok((base, Vec::new(), Vec::new()));
    }
    let chosen = bases::choice::node(
        &package.to_string(),
        asked,
        engines.as_deref(),
        cancel.clone(),
    )
    .await?;
    let base = bases::resolve(&chosen.pick, operator, progress, cancel).await?;
    Ok((
        base,
        vec![format!("runs on {}", chosen.why)],
        chosen.warnings,
    ))
}

/// Resolve a PyPI package on `first`; when pip refuses it because the
/// package's Requires-Python excludes that Python and `may_switch`, once
/// more on the oldest Python that satisfies it. The lock, the version, and
/// the other base with why, when it switched.
#[allow(clippy::too_many_arguments)]
pub async fn pypi(
    package: &PackageRef,
    pins: &[Pin],
    first: &Base,
    may_switch: bool,
    work: &Path,
    as_of: Option<(&Path, &str)>,
    progress: &Progressed,
    operator: &OperatorBases,
    cancel: CancellationToken,
) -> Result<(Vec<u8>, String, Option<(String, Base)>)> {
    let refused =
        match pypi::resolve(package, pins, first, work, as_of, progress, cancel.clone()).await {
            Ok((lock, version)) => return Ok((lock, version, None)),
            Err(e) => e,
        };
    let spec = match &refused {
        Error::CommandFailed { stderr_tail, .. } => {
            requires_python(stderr_tail, package.exact_version())
        }
        _ => None,
    };
    let Some(spec) = spec else {
        return Err(refused);
    };
    let minor = first.python_minor().unwrap_or_default();
    let other = bases::choice::python_for(&spec, &minor)?;
    let Some(chosen) = other.filter(|_| may_switch) else {
        let fix = if may_switch {
            format!(
                "no Python base mcpod can make satisfies it; name one with --base python=IMAGE, or provision another version of `{}`",
                package.name
            )
        } else {
            format!(
                "name a Python that satisfies it with `runtime` (can be made: {})",
                bases::choice::python_minors(&minor).join(", ")
            )
        };
        return Err(Error::invalid(
            "package",
            package.to_string(),
            format!(
                "its Requires-Python is `{spec}`, and the base's Python is {}",
                first.version
            ),
            fix,
        ));
    };
    (progress.say)(format!("{}; resolving again on it", chosen.why));
    let base = bases::resolve(&chosen.pick, operator, progress.say.clone(), cancel.clone()).await?;
    let (lock, version) =
        pypi::resolve(package, pins, &base, work, as_of, progress, cancel).await?;
    Ok((
        lock,
        version,
        Some((format!("runs on {}", chosen.why), base)),
    ))
}

/// The `Requires-Python` pip names when it ignored versions for it:
/// `Ignored the following versions that require a different python version:
/// 0.5 Requires-Python >=3.12; 0.6 Requires-Python >=3.12` (the entry of
/// `version` when given, else the last).
fn requires_python(stderr: &str, version: Option<&str>) -> Option<String> {
    const MARK: &str = "require a different python version:";
    let line = stderr.lines().find(|l| l.contains(MARK))?;
    let list = &line[line.find(MARK)? + MARK.len()..];
    let entries: Vec<(&str, &str)> = list
        .split(';')
        .filter_map(|e| {
            let (v, spec) = e.trim().split_once(" Requires-Python ")?;
            Some((v.trim(), spec.trim()))
        })
        .collect();
    let entry = match version {
        Some(v) => entries.iter().find(|(have, _)| *have == v),
        None => entries.last(),
    }?;
    Some(entry.1.to_string()).filter(|s| !s.is_empty() && s.len() <= 256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_s_refusal_names_requires_python() {
        let tail = "ERROR: Ignored the following versions that require a different python version: 0.5 Requires-Python >=3.12; 0.6 Requires-Python >=3.13,<4\nERROR: Could not find a version that satisfies the requirement x==0.5 (from versions: none)\n";
        assert_eq!(
            requires_python(tail, Some("0.5")).as_deref(),
            Some(">=3.12")
        );
        assert_eq!(requires_python(tail, None).as_deref(), Some(">=3.13,<4"));
        assert_eq!(requires_python(tail, Some("0.7")), None);
        assert_eq!(
            requires_python("ERROR: No matching distribution", None),
            None
        );
    }

    #[test]
    fn engines_come_from_the_lock() {
        let lock = super::super::lock_bytes(&[
            ("package.json", b"{}"),
            (
                "package-lock.json",
                br#"{"packages":{"node_modules/@b/d":{"version":"1.4.0","engines":{"node":">=22.5.0"}}}}"#,
            ),
        ]);
        assert_eq!(engines_node(&lock, "@b/d").as_deref(), Some(">=22.5.0"));
        assert_eq!(engines_node(&lock, "other"), None);
    }
}
