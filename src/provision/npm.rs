//! npm packages: resolve with a generated package.json into a lockfile
//! (`npm install --package-lock-only`), fetch with `npm ci --omit=dev`, and
//! find the program in the package's `bin`. npm always runs with
//! `--ignore-scripts`: no package's install script runs on the host.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::reference::{PackageRef, Pin};
use super::{Found, Progressed};
use crate::engine::runtime;
use crate::{Error, Result};

const FLAGS: &[&str] = &[
    "--ignore-scripts",
    "--no-audit",
    "--no-fund",
    "--loglevel=warn",
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
    let mut args = vec!["install", "--package-lock-only"];
    args.extend(FLAGS);
    runtime::npm(work, &args, progress.lines("npm"), cancel)
        .await
        .map_err(|e| explain(package, e))?;
    let lock = super::read_small(&work.join("package-lock.json"))?;
    let version = locked_version(&lock, &package.name)?;
    Ok((
        super::lock_bytes(&[("package.json", &manifest), ("package-lock.json", &lock)]),
        version,
    ))
}

fn explain(package: &PackageRef, e: Error) -> Error {
    match e {
        Error::CommandFailed {
            command,
            status,
            stderr_tail,
            ..
        } => {
            let hint = if stderr_tail.contains("E404") || stderr_tail.contains("ETARGET") {
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

/// Install the lock into `ctx/app`.
pub async fn stage(
    lock: &[u8],
    ctx: &Path,
    progress: &Progressed,
    cancel: CancellationToken,
) -> Result<()> {
    let app = ctx.join("app");
    std::fs::create_dir_all(&app).map_err(|e| Error::io("creating", &app, e))?;
    for (name, bytes) in super::lock_files(lock)? {
        super::write(&app.join(name), bytes)?;
    }
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
