//! npm packages: resolve with a generated package.json into a lockfile
//! (`npm install --package-lock-only`), fetch with `npm ci --omit=dev`, and
//! find the program in the package's `bin`. npm always runs with
//! `--ignore-scripts`: no package's install script runs on the host.
//!
//! Only the operator's registry is a source, at two gates: npm itself refuses
//! git, URL, `file:` and directory sources (the `--allow-*=none` flags) and
//! has no git to run (`--git`, a path that cannot exist), so nothing is cloned
//! or fetched even while resolving; and the lock npm wrote is checked
//! ([`npm_lock::check`]) before `npm ci` fetches anything, whatever npm's
//! version did with the flags.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::npm_lock::{self, Registries};
use super::reference::{PackageRef, Pin};
use super::{Found, Progressed};
use crate::engine::process::Invocation;
use crate::engine::runtime;
use crate::{Error, Result};

const FLAGS: &[&str] = &[
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--loglevel=warn",
    // Registry packages only, a dependency's dependencies included (npm
    // 11.10 knows `--allow-git`, later 11.x the others; an older npm ignores
    // them, and the lock check still refuses before anything is installed).
    "--allow-git=none",
    "--allow-remote=none",
    "--allow-file=none",
    "--allow-directory=none",
    // No git process, whatever npm's version and flags: no clone of a host
    // repository, no ssh with the operator's keys. `/dev/null` is a file, so
    // this path can never exist.
    "--git=/dev/null/git",
];
/// The `--allow-*` flags' refusals, as npm names them.
const REFUSED: &[&str] = &[
    "EALLOWGIT",
    "EALLOWREMOTE",
    "EALLOWFILE",
    "EALLOWDIRECTORY",
    "spawn ENOTDIR",
];
/// Where the staged `app/` sits in the image.
pub const APP: &str = "/app";

/// The package.json that asks for `package` with `pins` as overrides.
fn manifest(package: &PackageRef, pins: &[Pin]) -> Value {
    let mut doc = json!({
        "name": "mcpod-provisioned",
        "private": true,
        "dependencies": { package.name.clone(): package.spec.clone().unwrap_or_else(|| "latest".into()) },
    });
    if !pins.is_empty() {
        let overrides: serde_json::Map<String, Value> = pins
            .iter()
            .map(|p| (p.name.clone(), Value::String(p.spec.clone())))
            .collect();
        doc["overrides"] = Value::Object(overrides);
    }
    doc
}

/// Resolve in `work`: the lock's bytes (package.json, then package-lock.json)
/// and the exact version chosen.
pub async fn resolve(
    package: &PackageRef,
    pins: &[Pin],
    work: &Path,
    progress: &Progressed,
    cancel: CancellationToken,
) -> Result<(Vec<u8>, String)> {
    let manifest = serde_json::to_vec_pretty(&manifest(package, pins)).unwrap_or_default();
    super::write(&work.join("package.json"), &manifest)?;
    let registries = registries(work, cancel.clone()).await?;
    if !registries.unknown_flags.is_empty() {
        tracing::warn!(
            "this npm does not know --{}: while resolving {package} it may fetch a dependency's URL or read a file: path on the host (never a git source: npm has no git to run), and the lock check refuses the package before anything is installed; upgrade npm to a version that knows them",
            registries.unknown_flags.join(", --")
        );
    }
    let mut args = vec!["install", "--package-lock-only"];
    args.extend(FLAGS);
    if let Err(e) = runtime::npm(work, &args, progress.lines("npm"), cancel.clone()).await {
        let refused = match &e {
            Error::CommandFailed { stderr_tail, .. }
                if REFUSED.iter().any(|c| stderr_tail.contains(c)) =>
            {
                refused_dependencies(work, &args, cancel).await
            }
            _ => Vec::new(),
        };
        return Err(explain(package, e, &refused));
    }
    let lock = super::read_small(&work.join("package-lock.json"))?;
    npm_lock::check(&package.to_string(), &lock, &registries)?;
    let version = locked_version(&lock, &package.name)?;
    Ok((
        super::lock_bytes(&[("package.json", &manifest), ("package-lock.json", &lock)]),
        version,
    ))
}

/// The registries npm is configured with for processes run in `dir` (the
/// operator's npmrc files and `npm_config_*` variables).
async fn registries(dir: &Path, cancel: CancellationToken) -> Result<Registries> {
    let config: Value = Invocation::new("npm")
        .args(["config", "list", "--json"])
        .current_dir(dir)
        .timeout(Duration::from_secs(60))
        .cancel_on(cancel)
        .json()
        .await?;
    Ok(Registries::from_config(&config))
}

/// After npm refused a source: which dependencies it refused, from its
/// placement log (`placeDep WHERE NAME@ OK for: PARENT want: SPEC`, a node
/// with no version is one that failed to load), asked once more at `silly`.
/// Best effort: empty when this npm says it otherwise.
async fn refused_dependencies(
    work: &Path,
    args: &[&str],
    cancel: CancellationToken,
) -> Vec<String> {
    let found = Arc::new(Mutex::new(Vec::new()));
    let into = found.clone();
    let sink = Box::new(move |line: &str| {
        let Some((_, rest)) = line.split_once(" placeDep ") else {
            return;
        };
        let mut words = rest.splitn(3, ' ');
        let (Some(_), Some(node), Some(tail)) = (words.next(), words.next(), words.next()) else {
            return;
        };
        let (Some(name), Some((parent, spec))) = (
            node.strip_suffix('@'),
            tail.strip_prefix("OK for: ")
                .and_then(|t| t.split_once(" want: ")),
        ) else {
            return;
        };
        if let Ok(mut found) = into.lock()
            && found.len() < 8
        {
            found.push(format!(
                "`{}` depends on `{}` from `{}`",
                cut(parent),
                cut(name),
                cut(spec)
            ));
        }
    });
    let mut args: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| !a.starts_with("--loglevel"))
        .collect();
    args.push("--loglevel=silly");
    let _ = runtime::npm(work, &args, sink, cancel).await;
    found.lock().map(|f| f.clone()).unwrap_or_default()
}

/// Text from npm's output shown in an error: cut, control characters escaped.
fn cut(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(160)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if text.chars().count() > 160 {
        out.push('…');
    }
    out
}

fn explain(package: &PackageRef, e: Error, refused: &[String]) -> Error {
    match e {
        Error::CommandFailed {
            command,
            status,
            stderr_tail,
            ..
        } => {
            let hint = if REFUSED.iter().any(|c| stderr_tail.contains(c)) {
                let which = if refused.is_empty() {
                    "one of its dependencies comes from a git repository, a URL, a file or a directory".to_string()
                } else {
                    refused.join("; ")
                };
                format!(
                    "\n`{package}` was refused: {which}. mcpod installs packages from the registry only, so nothing else is fetched or cloned on the host.\nFix: the package must depend on registry versions only: provision another version of it, or pin that dependency to a registry version (`pins`)"
                )
            } else if stderr_tail.contains("E404") || stderr_tail.contains("ETARGET") {
                format!(
                    "\nFix: check the name and version of `{package}` (`npm view {} versions`)",
                    package.name
                )
            } else if stderr_tail.contains("ENOTFOUND") || stderr_tail.contains("EAI_AGAIN") {
                "\nFix: npm could not reach its registry; the operator sets it with npm_config_registry".to_string()
            } else {
                String::new()
            };
            Error::CommandFailed {
                command,
                status,
                stderr_tail,
                hint,
            }
        }
        other => other,
    }
}

fn locked_version(lock: &[u8], name: &str) -> Result<String> {
    let doc: Value = serde_json::from_slice(lock).map_err(|e| Error::UnexpectedOutput {
        command: "npm install --package-lock-only".into(),
        reason: format!("package-lock.json: {e}"),
    })?;
    doc["packages"][format!("node_modules/{name}")]["version"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::UnexpectedOutput {
            command: "npm install --package-lock-only".into(),
            reason: format!("package-lock.json has no version of {name}"),
        })
}

/// Install the lock of `package` (its exact reference) into `ctx/app`.
pub async fn stage(
    package: &str,
    lock: &[u8],
    ctx: &Path,
    progress: &Progressed,
    cancel: CancellationToken,
) -> Result<()> {
    let app = ctx.join("app");
    std::fs::create_dir_all(&app).map_err(|e| Error::io("creating", &app, e))?;
    let files = super::lock_files(lock)?;
    for (name, bytes) in &files {
        super::write(&app.join(name), bytes)?;
    }
    // A recorded lock is checked again before npm fetches from it (one
    // recorded before this check, or with another registry configured now).
    let registries = registries(&app, cancel.clone()).await?;
    let package_lock = files.last().map(|(_, b)| *b).unwrap_or_default();
    npm_lock::check(package, package_lock, &registries)?;
    let mut args = vec!["ci", "--omit=dev"];
    args.extend(FLAGS);
    match runtime::npm(&app, &args, progress.lines("npm"), cancel.clone()).await {
        // A stale packument in npm's shared cache (another npm wrote it while
        // this one read, seen in CI as ETARGET for a version the lock names):
        // once more, asking the registry.
        Err(Error::CommandFailed { stderr_tail, .. }) if stderr_tail.contains("ETARGET") => {
            args.push("--prefer-online");
            runtime::npm(&app, &args, progress.lines("npm"), cancel).await?;
        }
        other => {
            other?;
        }
    }
    Ok(())
}

/// What the staged package says of itself: its program, description and
/// registry name (`mcpName`), and the packages whose install scripts were
/// skipped.
pub fn found(package: &PackageRef, lock: &[u8], ctx: &Path, bin: Option<&str>) -> Result<Found> {
    let dir = ctx.join("app/node_modules").join(&package.name);
    let manifest: Value = serde_json::from_slice(&super::read_small(&dir.join("package.json"))?)
        .map_err(|e| Error::UnexpectedOutput {
            command: format!("reading {}", dir.display()),
            reason: e.to_string(),
        })?;
    let unscoped = package.name.rsplit('/').next().unwrap_or(&package.name);
    let bins: BTreeMap<String, String> = match &manifest["bin"] {
        Value::String(path) => BTreeMap::from([(unscoped.to_string(), path.clone())]),
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    };
    let listed = || bins.keys().cloned().collect::<Vec<_>>().join(", ");
    let (name, path) = match bin {
        Some(wanted) => bins.get_key_value(wanted).ok_or_else(|| {
            Error::invalid(
                "bin",
                wanted,
                format!("`{package}` has no such program"),
                format!("choose one of: {}", listed()),
            )
        })?,
        None if bins.len() == 1 => bins
            .iter()
            .next()
            .ok_or_else(|| Error::invalid("bin", "", "none", "none"))?,
        None => match bins.get_key_value(unscoped) {
            Some(found) => found,
            None if bins.is_empty() => {
                return Err(Error::invalid(
                    "package",
                    package.to_string(),
                    "its package.json declares no `bin`, so it has no program to run",
                    "is it an MCP server? Its README names the command; build an image with build_image instead",
                ));
            }
            None => {
                return Err(Error::invalid(
                    "bin",
                    "",
                    format!("`{package}` has several programs and none is named `{unscoped}`"),
                    format!("pass `bin`: one of {}", listed()),
                ));
            }
        },
    };
    let relative = Path::new(path.trim_start_matches("./"));
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Error::invalid(
            "package",
            package.to_string(),
            format!("its bin `{name}` points to `{path}`, outside the package"),
            "use another package",
        ));
    }
    let real = dir.join(relative);
    if !real.is_file() {
        return Err(Error::invalid(
            "package",
            package.to_string(),
            format!("its bin `{name}` points to `{path}`, which the package does not contain"),
            "use another version of the package",
        ));
    }
    let doc: Value = serde_json::from_slice(
        super::lock_files(lock)?
            .last()
            .map(|(_, b)| *b)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let scripts: Vec<String> = doc["packages"]
        .as_object()
        .map(|packages| {
            packages
                .iter()
                .filter(|(_, p)| p["hasInstallScript"].as_bool() == Some(true))
                .map(|(k, _)| k.trim_start_matches("node_modules/").to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut warnings = Vec::new();
    if !scripts.is_empty() {
        warnings.push(format!(
            "install scripts were not run (npm --ignore-scripts, so no package code runs on the host) for: {}; a package that needs one to build a native part may fail at start",
            scripts.join(", ")
        ));
    }
    Ok(Found {
        program: vec![
            "node".into(),
            format!("{APP}/node_modules/{}/{}", package.name, relative.display()),
        ],
        description: manifest["description"].as_str().map(str::to_string),
        registry_name: manifest["mcpName"].as_str().map(str::to_string),
        warnings,
    })
}

/// The generated Containerfile on `base`.
pub fn containerfile(base: &str) -> String {
    format!(
        "# Generated by mcpod: an npm package installed on the host from its lock (npm ci --omit=dev --ignore-scripts)\n\
         FROM {base}\n\
         COPY app/ {APP}/\n\
         ENV NODE_ENV=production HOME=/tmp\n\
         WORKDIR {APP}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_pins_are_overrides() {
        let p = PackageRef::parse("t", "npm:@a/b@^1").unwrap();
        let m = manifest(
            &p,
            &[Pin {
                name: "zod".into(),
                spec: "3.25.76".into(),
            }],
        );
        assert_eq!(m["dependencies"]["@a/b"], "^1");
        assert_eq!(m["overrides"]["zod"], "3.25.76");
        let bare = manifest(&PackageRef::parse("t", "npm:x").unwrap(), &[]);
        assert_eq!(bare["dependencies"]["x"], "latest");
        assert!(bare.get("overrides").is_none());
    }

    fn staged(manifest: Value, files: &[&str]) -> tempfile::TempDir {
        let ctx = tempfile::tempdir().unwrap();
        let dir = ctx.path().join("app/node_modules/@s/pkg");
        std::fs::create_dir_all(dir.join("dist")).unwrap();
        std::fs::write(dir.join("package.json"), manifest.to_string()).unwrap();
        for f in files {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        ctx
    }

    fn lock() -> Vec<u8> {
        let l = json!({"packages": {"node_modules/@s/pkg": {"version": "1.0.0"}, "node_modules/esbuild": {"hasInstallScript": true}}});
        super::super::lock_bytes(&[
            ("package.json", b"{}"),
            ("package-lock.json", l.to_string().as_bytes()),
        ])
    }

    #[test]
    fn the_program_comes_from_bin() {
        let p = PackageRef::parse("t", "npm:@s/pkg@1.0.0").unwrap();
        let ctx = staged(
            json!({"bin": {"pkg": "./dist/index.js"}, "mcpName": "io.github.s/pkg"}),
            &["dist/index.js"],
        );
        let f = found(&p, &lock(), ctx.path(), None).unwrap();
        assert_eq!(
            f.program,
            ["node", "/app/node_modules/@s/pkg/dist/index.js"]
        );
        assert_eq!(f.registry_name.as_deref(), Some("io.github.s/pkg"));
        assert!(f.warnings[0].contains("esbuild"));
        assert_eq!(
            locked_version(super::super::lock_files(&lock()).unwrap()[1].1, "@s/pkg").unwrap(),
            "1.0.0"
        );

        let ctx = staged(
            json!({"bin": {"a": "dist/a.js", "b": "dist/b.js"}}),
            &["dist/a.js", "dist/b.js"],
        );
        let e = found(&p, &lock(), ctx.path(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pass `bin`") && e.contains("a, b"), "{e}");
        assert_eq!(
            found(&p, &lock(), ctx.path(), Some("b")).unwrap().program[1],
            "/app/node_modules/@s/pkg/dist/b.js"
        );

        for hostile in ["../../../etc/passwd", "/etc/passwd", "dist/../../x"] {
            let ctx = staged(json!({"bin": hostile}), &[]);
            assert!(
                found(&p, &lock(), ctx.path(), None)
                    .unwrap_err()
                    .to_string()
                    .contains("outside the package"),
                "{hostile}"
            );
        }
        let ctx = staged(json!({"bin": "dist/missing.js"}), &[]);
        assert!(found(&p, &lock(), ctx.path(), None).is_err());
        let ctx = staged(json!({"main": "index.js"}), &[]);
        assert!(
            found(&p, &lock(), ctx.path(), None)
                .unwrap_err()
                .to_string()
                .contains("no `bin`")
        );
    }
}
