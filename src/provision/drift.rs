//! A provisioned server that fails at start importing or using a dependency
//! (ModuleNotFoundError, ImportError, AttributeError; node's missing module
//! or export): most often its dependencies moved on since it was published.
//! The image's label names its lock; the lock (in the state dir) says which
//! versions were installed of the packages the traceback names, and the fix
//! is `resolve_as_of` or a pin, not the labels.

use super::{Ecosystem, lock_files, read_small};
use crate::image::store;

/// The label naming a provisioned image's lock (its blake3 digest).
pub const LOCK_LABEL: &str = "mcpod.provision.lock";
/// The label naming the package at its exact version.
pub const TITLE_LABEL: &str = "org.opencontainers.image.title";
/// How many installed versions a message names.
const NAMED: usize = 6;

/// What a server's stderr says when a dependency is not what it expected.
const SIGNS: &[&str] = &[
    "ModuleNotFoundError",
    "ImportError",
    "AttributeError",
    "TypeError: ",
    "ERR_MODULE_NOT_FOUND",
    "ERR_PACKAGE_PATH_NOT_EXPORTED",
    "does not provide an export named",
    "Cannot find module",
];

/// Whether `stderr` looks like a dependency that moved on.
pub fn looks_like_drift(stderr: &str) -> bool {
    SIGNS.iter().any(|s| stderr.contains(s))
}

/// The fix for a provisioned image (`labels`) whose servers failed with
/// `stderr` (their tails): the installed versions of the dependencies the
/// traceback names, and the options: the cause and the fix. `None` when it
/// is not that case.
pub fn fix(
    labels: &std::collections::BTreeMap<String, String>,
    stderr: &str,
) -> Option<(String, String)> {
    if !looks_like_drift(stderr) {
        return None;
    }
    let digest = labels.get(LOCK_LABEL)?;
    if digest.len() != 32 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let reference = labels.get(TITLE_LABEL)?;
    let package = super::PackageRef::parse("label", reference).ok()?;
    let lock = read_small(&store::state_dir().join("provision/locks").join(digest)).ok()?;
    let locked = locked_versions(package.ecosystem, &lock);
    let own = package.normalized_name();
    let mut named: Vec<&(String, String)> = Vec::new();
    // Those the traceback runs through, then the package's own dependencies.
    let mut names: Vec<String> = named_in(package.ecosystem, stderr)
        .into_iter()
        .filter(|n| *n != own)
        .collect();
    names.extend(direct(package.ecosystem, &own, digest, &lock));
    for name in names {
        if let Some(found) = locked.iter().find(|(n, _)| *n == name)
            && !named.contains(&found)
            && named.len() < NAMED
        {
            named.push(found);
        }
    }
    let installed = if named.is_empty() {
        format!("{} packages are locked (`{digest}`)", locked.len())
    } else {
        let list = named
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("installed: {list} (of {} locked packages)", locked.len())
    };
    let pin = named
        .first()
        .and_then(|(n, v)| {
            let major: u64 = v.split('.').next()?.parse().ok()?;
            (major > 0).then(|| match package.ecosystem {
                Ecosystem::Pypi => format!("{n}<{major}"),
                Ecosystem::Npm => format!("{n}@<{major}"),
            })
        })
        .unwrap_or_else(|| match package.ecosystem {
            Ecosystem::Pypi => "NAME<MAJOR".into(),
            Ecosystem::Npm => "NAME@<MAJOR".into(),
        });
    Some((
        format!(
            "the server failed importing or using a dependency, which has likely changed since `{reference}` was published"
        ),
        format!(
            "{installed}; provision it with its dependencies as they stood then: `provision: {{\"package\": \"{reference}\", \"resolve_as_of\": \"published\"}}` \
             (or a past day, `YYYY-MM-DD`; CLI `--as-of published`), or pin the dependency: `\"pins\": [\"{pin}\"]` (CLI `--pin '{pin}'`)"
        ),
    ))
}

/// The (normalized name, version) of every package in a lock.
fn locked_versions(ecosystem: Ecosystem, lock: &[u8]) -> Vec<(String, String)> {
    let Ok(files) = lock_files(lock) else {
        return Vec::new();
    };
    match ecosystem {
        Ecosystem::Pypi => files
            .iter()
            .find(|(n, _)| *n == "requirements.txt")
            .map(|(_, b)| String::from_utf8_lossy(b).to_string())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.split_once("==")?;
                let version = rest.split_whitespace().next()?;
                Some((super::reference::normalize_pypi(name), version.to_string()))
            })
            .collect(),
        Ecosystem::Npm => {
            let doc: serde_json::Value = files
                .iter()
                .find(|(n, _)| *n == "package-lock.json")
                .and_then(|(_, b)| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            let mut out: Vec<(String, String)> = doc["packages"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(path, entry)| {
                    let name = path.rsplit("node_modules/").next()?;
                    let version = entry["version"].as_str()?;
                    (!name.is_empty() && path.contains("node_modules/"))
                        .then(|| (name.to_string(), version.to_string()))
                })
                .collect();
            out.sort();
            out.dedup();
            out
        }
    }
}

/// The package's own dependencies: npm's from the lock, PyPI's from the
/// staged package's METADATA (`Requires-Dist`, extras left out).
fn direct(ecosystem: Ecosystem, own: &str, digest: &str, lock: &[u8]) -> Vec<String> {
    match ecosystem {
        Ecosystem::Npm => {
            let doc: serde_json::Value = lock_files(lock)
                .ok()
                .and_then(|files| {
                    let (_, b) = files.into_iter().find(|(n, _)| *n == "package-lock.json")?;
                    serde_json::from_slice(b).ok()
                })
                .unwrap_or_default();
            doc["packages"][format!("node_modules/{own}")]["dependencies"]
                .as_object()
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default()
        }
        Ecosystem::Pypi => {
            let site = store::state_dir()
                .join("provision/pypi")
                .join(digest)
                .join("ctx/site");
            let Some(info) = std::fs::read_dir(&site).ok().and_then(|entries| {
                entries.flatten().map(|e| e.path()).find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_suffix(".dist-info"))
                        .and_then(|n| n.rsplit_once('-'))
                        .is_some_and(|(n, _)| super::reference::normalize_pypi(n) == own)
                })
            }) else {
                return Vec::new();
            };
            let metadata = read_small(&info.join("METADATA")).unwrap_or_default();
            String::from_utf8_lossy(&metadata)
                .lines()
                .take_while(|l| !l.is_empty())
                .filter_map(|l| l.strip_prefix("Requires-Dist:"))
                .filter(|l| !l.contains("extra =="))
                .map(|l| {
                    let name = l
                        .trim()
                        .split([' ', '<', '>', '=', '!', '~', ';', '[', '('])
                        .next();
                    super::reference::normalize_pypi(name.unwrap_or_default())
                })
                .collect()
        }
    }
}

/// The packages a traceback names, in order: the directories under the
/// staged tree its frames are in, and the modules it says are missing.
fn named_in(ecosystem: Ecosystem, stderr: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |name: String| {
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    };
    for line in stderr.lines() {
        match ecosystem {
            Ecosystem::Pypi => {
                let mut rest = line;
                while let Some(at) = rest.find(&format!("{}/", super::pypi::SITE)) {
                    rest = &rest[at + super::pypi::SITE.len() + 1..];
                    let top = rest.split(['/', '"', '\'']).next().unwrap_or_default();
                    let top = top.strip_suffix(".py").unwrap_or(top);
                    push(super::reference::normalize_pypi(top));
                }
                if let Some((_, module)) = line.split_once("No module named '") {
                    let top = module.split(['.', '\'']).next().unwrap_or_default();
                    push(super::reference::normalize_pypi(top));
                }
            }
            Ecosystem::Npm => {
                let mut rest = line;
                while let Some(at) = rest.find("node_modules/") {
                    rest = &rest[at + "node_modules/".len()..];
                    let mut parts = rest.split(['/', '\'', '"', ':', ' ']);
                    let first = parts.next().unwrap_or_default();
                    let name = if first.starts_with('@') {
                        format!("{first}/{}", parts.next().unwrap_or_default())
                    } else {
                        first.to_string()
                    };
                    push(name);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceback_names_the_locked_packages_it_ran_through() {
        let stderr = r#"Traceback (most recent call last):
  File "/opt/mcp/site/mcp_server_sqlite/server.py", line 120, in main
    @server.list_resources()
  File "/opt/mcp/site/mcp/server/lowlevel/server.py", line 9, in x
AttributeError: 'Server' object has no attribute 'list_resources'
ModuleNotFoundError: No module named 'pydantic_core._x'"#;
        assert!(looks_like_drift(stderr));
        assert_eq!(
            named_in(Ecosystem::Pypi, stderr),
            ["mcp-server-sqlite", "mcp", "pydantic-core"]
        );
        let lock = super::super::lock_bytes(&[
            (
                "requirements.txt",
                b"mcp==2.1.0 --hash=sha256:ab\nmcp-server-sqlite==2025.4.25 --hash=sha256:cd\n",
            ),
            ("constraints.txt", b""),
        ]);
        assert_eq!(
            locked_versions(Ecosystem::Pypi, &lock),
            [
                ("mcp".to_string(), "2.1.0".to_string()),
                ("mcp-server-sqlite".to_string(), "2025.4.25".to_string())
            ]
        );
        let node = "Error [ERR_MODULE_NOT_FOUND]: Cannot find module '/app/node_modules/@scope/pkg/dist/x.js' imported from /app/node_modules/zod/index.js";
        assert_eq!(named_in(Ecosystem::Npm, node), ["@scope/pkg", "zod"]);
        assert!(!looks_like_drift("Error: connect ECONNREFUSED"));
    }

    /// An image's labels are the image's to say: a lock label that is not a
    /// digest of mcpod's own (a path, too long, not hex) is never read, and
    /// the generic fix stays.
    #[test]
    fn a_hostile_lock_label_is_never_read() {
        let stderr = "AttributeError: 'Server' object has no attribute 'list_resources'";
        for hostile in [
            "../../../../etc/passwd",
            "/etc/shadow",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef0123456789abcdeg",
            "",
        ] {
            let labels = std::collections::BTreeMap::from([
                (LOCK_LABEL.to_string(), hostile.to_string()),
                (
                    TITLE_LABEL.to_string(),
                    "pypi:mcp-server-sqlite==2025.4.25".to_string(),
                ),
            ]);
            assert_eq!(fix(&labels, stderr), None, "{hostile}");
        }
    }
}
