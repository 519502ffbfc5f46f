//! The second gate on npm sources, independent of npm's own `--allow-*`
//! flags: before anything is fetched or installed, every package of a
//! package-lock.json must come from the operator's registry. A git, `file:`,
//! directory, link or URL source anywhere in the tree (a dependency of a
//! dependency included) is refused, naming its place in the tree and what it
//! points at.

use serde_json::Value;

use crate::{Error, Result};

/// The public registry; npm fetches its tarball URLs from the configured
/// registry instead while `replace-registry-host` is `npmjs` (its default).
const PUBLIC: &str = "https://registry.npmjs.org/";

/// The registries npm is configured with (`registry`, each `@scope:registry`),
/// as URL prefixes ending in `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registries {
    prefixes: Vec<String>,
    /// The `--allow-*` flags this npm does not know (an older npm ignores
    /// them, so it reads those sources while resolving).
    pub unknown_flags: Vec<&'static str>,
}

/// npm's settings that refuse sources other than the registry.
const ALLOW: &[&str] = &["allow-git", "allow-remote", "allow-file", "allow-directory"];

impl Registries {
    /// From `npm config list --json`.
    pub fn from_config(config: &Value) -> Registries {
        let mut prefixes = Vec::new();
        let mut add = |url: &str| {
            let url = url.trim();
            if url.starts_with("https://") || url.starts_with("http://") {
                let prefix = if url.ends_with('/') {
                    url.to_string()
                } else {
                    format!("{url}/")
                };
                if !prefixes.contains(&prefix) {
                    prefixes.push(prefix);
                }
            }
        };
        add(config["registry"].as_str().unwrap_or(PUBLIC));
        if let Some(map) = config.as_object() {
            for (key, value) in map {
                if key.starts_with('@')
                    && key.ends_with(":registry")
                    && let Some(url) = value.as_str()
                {
                    add(url);
                }
            }
        }
        if config["replace-registry-host"].as_str().unwrap_or("npmjs") == "npmjs" {
            add(PUBLIC);
        }
        let unknown_flags = ALLOW
            .iter()
            .copied()
            .filter(|k| config.get(*k).is_none())
            .collect();
        Registries {
            prefixes,
            unknown_flags,
        }
    }

    /// Whether `url` is a file of one of these registries.
    fn holds(&self, url: &str) -> bool {
        !url.contains(|c: char| c.is_whitespace() || c.is_control() || c == '\\')
            && self
                .prefixes
                .iter()
                .any(|p| url.len() > p.len() && url.starts_with(p.as_str()))
    }

    fn shown(&self) -> String {
        self.prefixes.join(", ")
    }
}

/// Check the package-lock.json `lock` of `package`: every entry is a registry
/// tarball of `registries` with an integrity hash, and declares only registry
/// versions as dependencies.
pub fn check(package: &str, lock: &[u8], registries: &Registries) -> Result<()> {
    let doc: Value = serde_json::from_slice(lock).map_err(|e| Error::UnexpectedOutput {
        command: "npm install --package-lock-only".into(),
        reason: format!("package-lock.json: {e}"),
    })?;
    let packages = doc["packages"]
        .as_object()
        .ok_or_else(|| Error::UnexpectedOutput {
            command: "npm install --package-lock-only".into(),
            reason: "package-lock.json has no `packages` (lockfileVersion 2 or 3); npm 7 or newer writes it".into(),
        })?;
    for (path, entry) in packages {
        if path.is_empty() {
            continue; // mcpod's own generated package.json
        }
        if let Some(why) = refused(entry, registries) {
            return Err(Error::invalid(
                "package",
                package,
                format!(
                    "its dependency `{}` {why}; mcpod installs packages from the registry only ({}), so nothing else is fetched on the host",
                    shown(path),
                    registries.shown()
                ),
                "the package must depend on registry versions only: provision another version of it, or pin that dependency to a registry version (`pins`)",
            ));
        }
    }
    Ok(())
}

/// Why a lock entry is refused, if it is.
fn refused(entry: &Value, registries: &Registries) -> Option<String> {
    if !entry.is_object() {
        return Some("is not an object in package-lock.json".into());
    }
    let resolved = entry.get("resolved");
    if entry["link"].as_bool() == Some(true) {
        return Some(format!(
            "is a link to `{}` (a `file:` or directory source)",
            shown(resolved.and_then(Value::as_str).unwrap_or(""))
        ));
    }
    match resolved {
        // `omit-lockfile-registry-resolved`: npm fetches NAME@VERSION from
        // the registry.
        None => {}
        Some(Value::String(url)) if registries.holds(url) => {}
        Some(other) => {
            return Some(format!(
                "resolves to `{}`, not a tarball of the registry",
                shown(other.as_str().unwrap_or(&other.to_string()))
            ));
        }
    }
    // A bundled dependency comes inside its parent's tarball.
    let bundled = entry["inBundle"].as_bool() == Some(true);
    if !bundled {
        if entry["integrity"].as_str().is_none_or(str::is_empty) {
            return Some("has no integrity hash (registry tarballs have one)".into());
        }
        if !entry["version"].as_str().is_some_and(is_version) {
            return Some(format!(
                "has the version `{}`, not a registry version",
                shown(&entry["version"].to_string())
            ));
        }
    }
    if let Some(deps) = entry["dependencies"].as_object() {
        for (name, spec) in deps {
            let spec = spec.as_str().unwrap_or("?");
            if !is_registry_spec(spec) {
                return Some(format!(
                    "depends on `{}` from `{}`, which is not a registry version",
                    shown(name),
                    shown(spec)
                ));
            }
        }
    }
    None
}

/// An exact version as a registry serves it (`1.2.3`, `1.0.0-rc.1+b`).
fn is_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.chars().next().is_some_and(|c| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
}

/// What npm reads as a registry version, range, tag or alias (`npm:NAME@RANGE`):
/// nothing it would read as a URL, git source (`user/repo`, `github:`), path
/// (`./x`, `~/x`, `/x`) or tarball file (`x.tgz`).
fn is_registry_spec(spec: &str) -> bool {
    if let Some(alias) = spec.strip_prefix("npm:") {
        let (name, range) = match alias.strip_prefix('@') {
            Some(scoped) => match scoped.find('@') {
                Some(i) => (&alias[..i + 1], &alias[i + 2..]),
                None => (alias, ""),
            },
            None => alias.split_once('@').unwrap_or((alias, "")),
        };
        let parts = name.trim_start_matches('@').split('/').count();
        return !name.is_empty()
            && parts == if name.starts_with('@') { 2 } else { 1 }
            && !name.contains(':')
            && !name.starts_with('.')
            && !range.starts_with("npm:")
            && is_registry_spec(range);
    }
    let lower = spec.to_ascii_lowercase();
    spec.len() <= 256
        && !spec.contains([':', '/', '\\'])
        && !spec.starts_with('.')
        && !spec.chars().any(char::is_control)
        && ![".tgz", ".tar", ".tar.gz"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// Text from a lock, shown in an error: cut, control characters escaped.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(160).collect();
    let mut out = cut.escape_debug().to_string();
    if text.chars().count() > 160 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registries() -> Registries {
        Registries::from_config(&json!({
            "registry": "http://127.0.0.1:4873",
            "@corp:registry": "https://npm.corp.example/api/npm/",
            "replace-registry-host": "npmjs",
            "//npm.corp.example/:_authToken": "(protected)",
        }))
    }

    fn lock(entries: Value) -> Vec<u8> {
        let mut packages =
            json!({"": {"name": "mcpod-provisioned", "dependencies": {"evil-mcp": "1.0.0"}}});
        for (k, v) in entries.as_object().unwrap() {
            packages[k] = v.clone();
        }
        json!({"lockfileVersion": 3, "packages": packages})
            .to_string()
            .into_bytes()
    }

    fn good() -> Value {
        json!({
            "version": "1.0.0",
            "resolved": "http://127.0.0.1:4873/evil-mcp/-/evil-mcp-1.0.0.tgz",
            "integrity": "sha512-abc",
            "dependencies": {"a": "^1.2.3", "b": ">=1 <2 || 3.x", "c": "latest", "d": "npm:string-width@^4.2.0", "e": "npm:@s/x@1", "f": "*", "g": "", "h": "~1.2"}
        })
    }

    #[test]
    fn registry_tarballs_pass() {
        let r = registries();
        let mut entries = json!({
            "node_modules/evil-mcp": good(),
            "node_modules/@corp/x": {"version": "2.0.0-rc.1", "resolved": "https://npm.corp.example/api/npm/@corp/x/-/x-2.0.0-rc.1.tgz", "integrity": "sha512-x"},
            "node_modules/p": {"version": "1.0.0", "resolved": "https://registry.npmjs.org/p/-/p-1.0.0.tgz", "integrity": "sha512-x"},
            // omit-lockfile-registry-resolved
            "node_modules/q": {"version": "1.0.0", "integrity": "sha512-x"},
            // bundled inside its parent's tarball
            "node_modules/evil-mcp/node_modules/r": {"version": "1.0.0", "inBundle": true},
        });
        check("npm:evil-mcp@1.0.0", &lock(entries.clone()), &r).unwrap();
        // Without the scope's registry, or with the public host not replaced,
        // their tarballs are not the registry's.
        let strict = Registries::from_config(
            &json!({"registry": "http://127.0.0.1:4873/", "replace-registry-host": "never"}),
        );
        for path in ["node_modules/@corp/x", "node_modules/p"] {
            let e = check("npm:evil-mcp@1.0.0", &lock(entries.clone()), &strict)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("`{path}` resolves to")), "{e}");
            entries.as_object_mut().unwrap().remove(path);
        }
        check("npm:evil-mcp@1.0.0", &lock(entries), &strict).unwrap();
        // The default registry when none is configured; an npm that lists
        // no `allow-*` setting does not know them.
        let old = Registries::from_config(&json!({"allow-git": "all"}));
        assert_eq!(old.prefixes, [PUBLIC.to_string()]);
        assert_eq!(
            old.unknown_flags,
            ["allow-remote", "allow-file", "allow-directory"]
        );
        assert!(r.unknown_flags.len() == 4 && strict.unknown_flags.len() == 4);
        let known = json!({"allow-git": "all", "allow-remote": "all", "allow-file": "all", "allow-directory": "all"});
        assert!(Registries::from_config(&known).unknown_flags.is_empty());
    }

    #[test]
    fn hostile_lock_entries_are_refused_naming_them() {
        let r = registries();
        let path = "node_modules/evil-mcp/node_modules/evil";
        let with = |dep: Value| json!({"node_modules/evil-mcp": good(), path: dep});
        for (entry, needle) in [
            (
                json!({"version": "1.0.0", "resolved": "git+file:///tmp/repo#4140968b", "integrity": "sha512-x"}),
                "resolves to `git+file:///tmp/repo#4140968b`",
            ),
            (
                json!({"version": "1.0.0", "resolved": "git+ssh://git@github.com/e/v.git#abc"}),
                "git+ssh://git@github.com/e/v.git",
            ),
            (
                json!({"version": "1.0.0", "resolved": "file:../x", "integrity": "sha512-x"}),
                "resolves to `file:../x`",
            ),
            (
                json!({"resolved": "node_modules/x", "link": true}),
                "is a link to `node_modules/x`",
            ),
            (
                json!({"version": "1.0.0", "resolved": "https://127.0.0.1:9/x.tgz", "integrity": "sha512-x"}),
                "resolves to `https://127.0.0.1:9/x.tgz`",
            ),
            // Look-alike hosts and paths of the registry's.
            (
                json!({"version": "1.0.0", "resolved": "http://127.0.0.1:48730/x.tgz", "integrity": "sha512-x"}),
                "not a tarball of the registry",
            ),
            (
                json!({"version": "1.0.0", "resolved": "https://npm.corp.example/api/npmx/x.tgz", "integrity": "sha512-x"}),
                "not a tarball of the registry",
            ),
            (
                json!({"version": "1.0.0", "resolved": "https://registry.npmjs.org.evil.example/x.tgz", "integrity": "sha512-x"}),
                "not a tarball of the registry",
            ),
            (
                json!({"version": "1.0.0", "resolved": "http://127.0.0.1:4873/x.tgz\n", "integrity": "sha512-x"}),
                "x.tgz\\n",
            ),
            (
                json!({"version": "1.0.0", "resolved": 7}),
                "resolves to `7`",
            ),
            // A registry URL without an integrity hash, or a git version.
            (
                json!({"version": "1.0.0", "resolved": "http://127.0.0.1:4873/x/-/x-1.0.0.tgz"}),
                "no integrity hash",
            ),
            (
                json!({"version": "git+ssh://h/r", "integrity": "sha512-x"}),
                "not a registry version",
            ),
            // A bundled dependency that would be fetched from elsewhere.
            (
                json!({"inBundle": true, "resolved": "git+file:///tmp/repo"}),
                "git+file:///tmp/repo",
            ),
            (json!("git+file:///x"), "not an object"),
        ] {
            let e = check("npm:evil-mcp@1.0.0", &lock(with(entry.clone())), &r)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("`{path}`")) && e.contains(needle) && e.contains("Fix:"),
                "{entry}: {e}"
            );
        }
    }

    #[test]
    fn dependencies_declared_as_anything_but_a_registry_version_are_refused() {
        let r = registries();
        for spec in [
            "git+file:///tmp/repo",
            "git+ssh://git@github.com/e/v.git",
            "github:e/v",
            "e/v",
            "file:../x",
            "../x",
            "./x",
            "~/x",
            "/etc",
            "https://127.0.0.1:9/x.tgz",
            "x.tgz",
            "link:../x",
            "npm:x@file:../y",
            "npm:x@npm:y@1",
            "npm:@s/x/y@1",
            "npm:x/y@1",
            "1.0.0\n",
        ] {
            let mut parent = good();
            parent["dependencies"] = json!({"evil": spec});
            let e = check(
                "npm:evil-mcp@1.0.0",
                &lock(json!({"node_modules/evil-mcp": parent})),
                &r,
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("`node_modules/evil-mcp` depends on `evil`"),
                "{spec}: {e}"
            );
        }
    }

    #[test]
    fn unreadable_and_version_1_locks_are_refused() {
        let r = registries();
        for junk in [&b"{"[..], b"{\"lockfileVersion\": 1, \"dependencies\": {}}"] {
            assert!(check("npm:x@1", junk, &r).is_err());
        }
    }
}
