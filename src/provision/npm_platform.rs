//! The platform an npm lock is resolved and staged for: the session's (os
//! `linux`, the engine's CPU, the base's C library), as npm names them.
//!
//! Packages that ship a native binary per platform (the esbuild / napi-rs
//! pattern) list every platform's package as an optional dependency, each
//! declaring its `os`, `cpu` and `libc`. The lock mcpod records keeps only the
//! ones that fit the session's platform: the others would never be installed,
//! and one the registry does not serve at all (npm leaves a package it could
//! not load out of the lock) makes `npm ci` refuse the lock ("Missing: … from
//! lock file"). What is left out is only ever optional, so a lock never loses
//! what its package needs; what stays is checked like any other entry
//! ([`super::npm_lock::check`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::{Error, Result};

/// The C library of the base a package runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Libc {
    Glibc,
    Musl,
}

impl Libc {
    pub fn as_str(self) -> &'static str {
        match self {
            Libc::Glibc => "glibc",
            Libc::Musl => "musl",
        }
    }
}

/// An npm platform: `os`, `cpu` and `libc` as npm and node name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: &'static str,
    pub cpu: &'static str,
    pub libc: Libc,
}

impl Platform {
    /// Linux on this host's CPU. Images are built on the host from a base
    /// of the host's architecture, so a session's engine runs that CPU.
    pub fn host(libc: Libc) -> Platform {
        Platform {
            os: "linux",
            cpu: node_cpu(std::env::consts::ARCH),
            libc,
        }
    }

    /// `linux-x64-glibc`: part of a request's key.
    pub fn key(&self) -> String {
        format!("{}-{}-{}", self.os, self.cpu, self.libc.as_str())
    }

    /// npm's flags that install for this platform.
    pub fn flags(&self) -> [String; 3] {
        [
            format!("--os={}", self.os),
            format!("--cpu={}", self.cpu),
            format!("--libc={}", self.libc.as_str()),
        ]
    }

    /// Whether a lock entry's `os`, `cpu` and `libc` admit this platform
    /// (npm-install-checks' rule: a list of names, each possibly negated
    /// with `!`, or `any`; `libc` counts on linux only).
    fn fits(&self, entry: &Value) -> bool {
        admits(&entry["os"], self.os)
            && admits(&entry["cpu"], self.cpu)
            && (self.os != "linux" || admits(&entry["libc"], self.libc.as_str()))
    }
}

/// Rust's name of a CPU as node's `process.arch` says it.
fn node_cpu(rust: &'static str) -> &'static str {
    match rust {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        "x86" => "ia32",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

fn admits(list: &Value, value: &str) -> bool {
    let names: Vec<&str> = match list {
        Value::Null => return true,
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        // Not a list npm reads: the entry fits nowhere.
        _ => return false,
    };
    if names.is_empty() || names == ["any"] {
        return true;
    }
    let mut negated = 0;
    let mut matched = false;
    for name in &names {
        match name.strip_prefix('!') {
            Some(not) if not == value => return false,
            Some(_) => negated += 1,
            None => matched |= *name == value,
        }
    }
    matched || negated == names.len()
}

/// A lock fitted to a platform.
#[derive(Debug, PartialEq, Eq)]
pub struct Fitted {
    /// The package-lock.json (the very bytes npm wrote when nothing was
    /// left out).
    pub lock: Vec<u8>,
    /// The lock's entries left out (their paths).
    pub left_out: Vec<String>,
    /// Optional dependencies that were not in the lock at all (npm could not
    /// load them: the registry lacks that version), dropped from their
    /// parents' entries.
    pub not_loaded: Vec<String>,
}

/// The package-lock.json `lock` for `platform`: without the optional
/// packages that do not fit it, the optional packages only they needed, and
/// the optional dependencies that then lead nowhere (npm skips those while
/// installing).
pub fn for_platform(lock: &[u8], platform: &Platform) -> Result<Fitted> {
    let unexpected = |reason: String| Error::UnexpectedOutput {
        command: "npm install --package-lock-only".into(),
        reason,
    };
    let mut doc: Value =
        serde_json::from_slice(lock).map_err(|e| unexpected(format!("package-lock.json: {e}")))?;
    let Some(packages) = doc["packages"].as_object() else {
        return Err(unexpected(
            "package-lock.json has no `packages` (lockfileVersion 2 or 3); npm 7 or newer writes it"
                .into(),
        ));
    };
    let out = not_installed(packages, platform);
    let kept: BTreeSet<String> = packages
        .keys()
        .filter(|path| !out.contains(*path) && !inside(path, &out))
        .cloned()
        .collect();
    let left_out: Vec<String> = packages
        .keys()
        .filter(|path| !kept.contains(*path))
        .cloned()
        .collect();
    let dangling = dangling(packages, &kept);
    if left_out.is_empty() && dangling.is_empty() {
        return Ok(Fitted {
            lock: lock.to_vec(),
            left_out,
            not_loaded: Vec::new(),
        });
    }
    let Some(packages) = doc["packages"].as_object_mut() else {
        return Err(unexpected("package-lock.json has no `packages`".into()));
    };
    packages.retain(|path, _| kept.contains(path));
    let loaded: BTreeSet<String> = left_out
        .iter()
        .filter_map(|p| p.rsplit_once("node_modules/").map(|(_, n)| n.to_string()))
        .collect();
    let mut not_loaded = Vec::new();
    for (path, name) in dangling {
        if let Some(deps) = packages
            .get_mut(&path)
            .and_then(|entry| entry["optionalDependencies"].as_object_mut())
        {
            deps.remove(&name);
        }
        if !loaded.contains(&name) && !not_loaded.contains(&name) {
            not_loaded.push(name);
        }
    }
    let mut bytes = serde_json::to_vec_pretty(&doc)
        .map_err(|e| unexpected(format!("package-lock.json: {e}")))?;
    bytes.push(b'\n');
    Ok(Fitted {
        lock: bytes,
        left_out,
        not_loaded,
    })
}

/// Whether a lock entry is an optional package.
fn optional(entry: &Value) -> bool {
    entry["optional"].as_bool() == Some(true)
}

/// The names a lock entry lists under `field` (`dependencies`, …).
fn names(entry: &Value, field: &str) -> Vec<String> {
    entry[field]
        .as_object()
        .map(|deps| deps.keys().cloned().collect())
        .unwrap_or_default()
}

/// Whether the lock path `path` is a package inside one of `out`.
fn inside(path: &str, out: &BTreeSet<String>) -> bool {
    out.iter()
        .any(|o| path.starts_with(o.as_str()) && path[o.len()..].starts_with("/node_modules/"))
}

/// The lock paths of the packages npm would not install for `platform`
/// (those inside them aside): the optional packages that do not fit it,
/// then, until nothing more goes, each optional package no longer reached
/// from the root or one whose own dependency is gone (npm skips the whole
/// optional set).
fn not_installed(
    packages: &serde_json::Map<String, Value>,
    platform: &Platform,
) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = packages
        .iter()
        .filter(|(path, entry)| !path.is_empty() && optional(entry) && !platform.fits(entry))
        .map(|(path, _)| path.clone())
        .collect();
    loop {
        let kept: BTreeMap<&str, &Value> = packages
            .iter()
            .filter(|(path, _)| !out.contains(*path) && !inside(path, &out))
            .map(|(path, entry)| (path.as_str(), entry))
            .collect();
        let reached = reached(&kept);
        let more: Vec<String> = kept
            .iter()
            .filter(|(path, entry)| {
                !path.is_empty()
                    && optional(entry)
                    && ((kept.contains_key("") && !reached.contains(*path))
                        || names(entry, "dependencies")
                            .iter()
                            .any(|name| resolve(&kept, path, name).is_none()))
            })
            .map(|(path, _)| path.to_string())
            .collect();
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

/// The lock paths the root reaches through every kind of dependency, among
/// the `kept` packages.
fn reached<'a>(kept: &BTreeMap<&'a str, &Value>) -> BTreeSet<&'a str> {
    let mut reached = BTreeSet::from([""]);
    let mut queue = vec![""];
    while let Some(path) = queue.pop() {
        let Some(entry) = kept.get(path) else {
            continue;
        };
        for field in ["dependencies", "optionalDependencies", "peerDependencies"] {
            for name in names(entry, field) {
                if let Some(to) = resolve(kept, path, &name)
                    && reached.insert(to)
                {
                    queue.push(to);
                }
            }
        }
    }
    reached
}

/// Optional dependencies of the `kept` packages that now lead nowhere
/// (parent path, name): left out of their parent's entry too, or `npm ci`
/// asks for them.
fn dangling(
    packages: &serde_json::Map<String, Value>,
    kept: &BTreeSet<String>,
) -> Vec<(String, String)> {
    let present: BTreeMap<&str, &Value> = packages
        .iter()
        .filter(|(path, _)| kept.contains(*path))
        .map(|(path, entry)| (path.as_str(), entry))
        .collect();
    let mut dangling = Vec::new();
    for path in kept {
        for name in names(&packages[path], "optionalDependencies") {
            if resolve(&present, path, &name).is_none() {
                dangling.push((path.clone(), name));
            }
        }
    }
    dangling
}

/// Where node finds `name` from the package at `from`: its own
/// `node_modules`, then each enclosing one's, up to the root's.
fn resolve<'a>(packages: &BTreeMap<&'a str, &Value>, from: &str, name: &str) -> Option<&'a str> {
    let mut base = from;
    loop {
        let candidate = if base.is_empty() {
            format!("node_modules/{name}")
        } else {
            format!("{base}/node_modules/{name}")
        };
        if let Some((path, _)) = packages.get_key_value(candidate.as_str()) {
            return Some(path);
        }
        if base.is_empty() {
            return None;
        }
        base = match base.rfind("/node_modules/") {
            Some(i) => &base[..i],
            None => "",
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn x64() -> Platform {
        Platform {
            os: "linux",
            cpu: "x64",
            libc: Libc::Glibc,
        }
    }

    fn tarball(name: &str) -> Value {
        json!({
            "version": "1.0.0",
            "resolved": format!("https://registry.npmjs.org/{name}/-/{name}-1.0.0.tgz"),
            "integrity": "sha512-x",
            "optional": true,
        })
    }

    fn binary(name: &str, os: &str, cpu: &str, libc: Option<&str>) -> Value {
        let mut entry = tarball(name);
        entry["os"] = json!([os]);
        entry["cpu"] = json!([cpu]);
        if let Some(libc) = libc {
            entry["libc"] = json!([libc]);
        }
        entry
    }

    /// A napi-rs style package: one binary package per platform, one of
    /// them (`win32-arm64`) not in the lock (npm could not load it).
    fn napi() -> Value {
        let mut packages = json!({
            "": {"name": "mcpod-provisioned", "dependencies": {"srv": "1.0.0"}},
            "node_modules/srv": {
                "version": "1.0.0",
                "resolved": "https://registry.npmjs.org/srv/-/srv-1.0.0.tgz",
                "integrity": "sha512-x",
                "dependencies": {"plain": "^1"},
                "optionalDependencies": {
                    "srv-linux-x64-gnu": "1.0.0", "srv-linux-x64-musl": "1.0.0",
                    "srv-linux-arm64-gnu": "1.0.0", "srv-darwin-arm64": "1.0.0",
                    "srv-win32-x64": "1.0.0", "srv-win32-arm64": "1.0.0",
                }
            },
            "node_modules/plain": {"version": "1.2.0", "resolved": "https://registry.npmjs.org/plain/-/plain-1.2.0.tgz", "integrity": "sha512-x"},
        });
        for (name, os, cpu, libc) in [
            ("srv-linux-x64-gnu", "linux", "x64", Some("glibc")),
            ("srv-linux-x64-musl", "linux", "x64", Some("musl")),
            ("srv-linux-arm64-gnu", "linux", "arm64", Some("glibc")),
            ("srv-darwin-arm64", "darwin", "arm64", None),
            ("srv-win32-x64", "win32", "x64", None),
        ] {
            packages[format!("node_modules/{name}")] = binary(name, os, cpu, libc);
        }
        // What only the darwin package needs, nested and hoisted.
        let mut darwin = binary("srv-darwin-arm64", "darwin", "arm64", None);
        darwin["dependencies"] = json!({"fsevents-ish": "1", "helper": "1"});
        packages["node_modules/srv-darwin-arm64"] = darwin;
        packages["node_modules/srv-darwin-arm64/node_modules/fsevents-ish"] =
            tarball("fsevents-ish");
        packages["node_modules/helper"] = tarball("helper");
        json!({"name": "mcpod-provisioned", "lockfileVersion": 3, "packages": packages})
    }

    fn filtered(lock: &Value, platform: &Platform) -> (Value, Fitted) {
        let fitted = for_platform(lock.to_string().as_bytes(), platform).unwrap();
        (serde_json::from_slice(&fitted.lock).unwrap(), fitted)
    }

    fn paths(doc: &Value) -> Vec<&str> {
        doc["packages"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn only_the_platforms_binary_stays_in_the_lock() {
        let (doc, out) = filtered(&napi(), &x64());
        assert_eq!(
            paths(&doc),
            [
                "",
                "node_modules/plain",
                "node_modules/srv",
                "node_modules/srv-linux-x64-gnu"
            ]
        );
        assert_eq!(
            doc["packages"]["node_modules/srv"]["optionalDependencies"],
            json!({"srv-linux-x64-gnu": "1.0.0"})
        );
        assert_eq!(
            out.left_out,
            [
                "node_modules/helper",
                "node_modules/srv-darwin-arm64",
                "node_modules/srv-darwin-arm64/node_modules/fsevents-ish",
                "node_modules/srv-linux-arm64-gnu",
                "node_modules/srv-linux-x64-musl",
                "node_modules/srv-win32-x64",
            ]
        );
        assert_eq!(out.not_loaded, ["srv-win32-arm64"]);

        let arm = Platform {
            cpu: "arm64",
            ..x64()
        };
        let (doc, _) = filtered(&napi(), &arm);
        assert!(paths(&doc).contains(&"node_modules/srv-linux-arm64-gnu"));
        assert!(!paths(&doc).contains(&"node_modules/srv-linux-x64-gnu"));
        let musl = Platform {
            libc: Libc::Musl,
            ..x64()
        };
        let (doc, _) = filtered(&napi(), &musl);
        assert_eq!(paths(&doc)[3..], ["node_modules/srv-linux-x64-musl"]);
    }

    #[test]
    fn what_is_not_optional_or_has_nothing_to_leave_out_stays_as_npm_wrote_it() {
        let mut lock = napi();
        let packages = lock["packages"].as_object_mut().unwrap();
        packages.retain(|p, _| {
            !p.contains("darwin") && !p.contains("win32") && p != "node_modules/helper"
        });
        // A non-optional package for another platform: npm refuses it
        // (EBADPLATFORM) rather than mcpod hiding it.
        let mut hard = binary("srv-linux-arm64-gnu", "linux", "arm64", Some("glibc"));
        hard.as_object_mut().unwrap().remove("optional");
        packages.insert("node_modules/srv-linux-arm64-gnu".into(), hard);
        packages["node_modules/srv"]["optionalDependencies"] =
            json!({"srv-linux-x64-gnu": "1.0.0", "srv-linux-x64-musl": "1.0.0"});
        let (doc, out) = filtered(&lock, &x64());
        assert!(paths(&doc).contains(&"node_modules/srv-linux-arm64-gnu"));
        assert_eq!(out.left_out, ["node_modules/srv-linux-x64-musl"]);
        // Nothing to leave out: the very bytes npm wrote.
        let plain = json!({"lockfileVersion": 3, "packages": {"": {"dependencies": {"plain": "1"}}, "node_modules/plain": tarball("plain")}}).to_string().into_bytes();
        assert_eq!(
            for_platform(&plain, &x64()).unwrap(),
            Fitted {
                lock: plain.clone(),
                left_out: vec![],
                not_loaded: vec![]
            }
        );
        assert!(for_platform(b"{", &x64()).is_err());
        assert!(for_platform(b"{\"lockfileVersion\": 1}", &x64()).is_err());
    }

    #[test]
    fn npms_platform_rule() {
        for (list, fits) in [
            (json!(null), true),
            (json!([]), true),
            (json!(["any"]), true),
            (json!("x64"), true),
            (json!(["arm64", "x64"]), true),
            (json!(["!arm64"]), true),
            (json!(["!x64"]), false),
            (json!(["!arm64", "ia32"]), false),
            (json!(["arm64"]), false),
            (json!(7), false),
        ] {
            assert_eq!(admits(&list, "x64"), fits, "{list}");
        }
        assert_eq!(x64().key(), "linux-x64-glibc");
        assert_eq!(x64().flags(), ["--os=linux", "--cpu=x64", "--libc=glibc"]);
        assert_eq!(node_cpu("aarch64"), "arm64");
        let host = Platform::host(Libc::Glibc);
        assert_eq!(host.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.cpu, "x64");
        }
    }
}
