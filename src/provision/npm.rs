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
use super::npm_platform::{self, Platform};
use super::reference::{PackageRef, Pin};
use super::{Found, Progressed};
use crate::engine::process::{Invocation, Output};
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
/// Where the image keeps node's compile cache ([`super::build::warm`]
/// makes it), and the sessions' `NODE_COMPILE_CACHE`.
pub const CACHE_DIR: &str = "/var/cache/mcpod-node-compile";
/// The cache's directory in the staged context (`ctx/node-cache`).
pub const STAGED: &str = "node-cache";

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

/// Resolve in `work` for `platform`: the lock's bytes (package.json, then
/// package-lock.json) and the exact version chosen.
pub async fn resolve(
    package: &PackageRef,
    pins: &[Pin],
    platform: &Platform,
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
    let platform_flags = platform.flags();
    let mut args = vec!["install", "--package-lock-only"];
    args.extend(FLAGS);
    args.extend(platform_flags.iter().map(String::as_str));
    if let Err(e) = npm(work, &args, progress, cancel.clone()).await {
        let refused = match &e {
            Error::CommandFailed { stderr_tail, .. }
                if REFUSED.iter().any(|c| stderr_tail.contains(c)) =>
            {
                refused_dependencies(work, &args, cancel).await
            }
            _ => Vec::new(),
        };
        return Err(explain(&package.to_string(), &package.name, e, &refused));
    }
    let lock = super::read_small(&work.join("package-lock.json"))?;
    // Every entry npm wrote is checked, another platform's included; then
    // what the session's platform does not install is left out.
    npm_lock::check(&package.to_string(), &lock, &registries)?;
    let fitted = npm_platform::for_platform(&lock, platform)?;
    let names = |list: &[String]| {
        let shown: Vec<String> = list.iter().take(12).map(|p| cut(p)).collect();
        let more = list.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("{}{more}", shown.join(", "))
    };
    if !fitted.left_out.is_empty() {
        (progress.say)(format!(
            "npm: left out of the lock, as not for {}: {}",
            platform.key(),
            names(&fitted.left_out)
        ));
    }
    if !fitted.not_loaded.is_empty() {
        (progress.say)(format!(
            "npm: optional dependencies npm could not load (no such version in the registry, or a source it refused), left out: {}",
            names(&fitted.not_loaded)
        ));
    }
    let lock = fitted.lock;
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

/// An npm failure's hint: what the reason npm gave means for `package`
/// (its reference as shown, and its name).
fn explain(package: &str, name: &str, mut e: Error, refused: &[String]) -> Error {
    if let Error::CommandFailed {
        stderr_tail, hint, ..
    } = &mut e
    {
        let said = stderr_tail.as_str();
        *hint = if REFUSED.iter().any(|c| said.contains(c)) {
            let which = if refused.is_empty() {
                "one of its dependencies comes from a git repository, a URL, a file or a directory"
                    .to_string()
            } else {
                refused.join("; ")
            };
            format!(
                "\n`{package}` was refused: {which}. mcpod installs packages from the registry only, so nothing else is fetched or cloned on the host.\nFix: the package must depend on registry versions only: provision another version of it, or pin that dependency to a registry version (`pins`)"
            )
        } else if said.contains("E404") || said.contains("ETARGET") {
            format!("\nFix: check the name and version of `{package}` (`npm view {name} versions`)")
        } else if said.contains("ENOTFOUND") || said.contains("EAI_AGAIN") {
            "\nFix: npm could not reach its registry; the operator sets it with npm_config_registry"
                .to_string()
        } else if said.contains("from lock file") {
            format!(
                "\nFix: the recorded lock of `{package}` and its package.json disagree; provision it again with `refresh` to resolve it anew"
            )
        } else {
            std::mem::take(hint)
        };
    }
    e
}

/// Run npm in `dir`, its output lines as progress. A failure quotes npm's
/// own reason (its `npm error` lines) rather than the tail of its stderr,
/// which after a usage error is only npm's usage text.
async fn npm(
    dir: &Path,
    args: &[&str],
    progress: &Progressed,
    cancel: CancellationToken,
) -> Result<Output> {
    let reason = Arc::new(Mutex::new(Reason::default()));
    let into = reason.clone();
    let mut lines = progress.lines("npm");
    let sink = Box::new(move |line: &str| {
        if let Ok(mut reason) = into.lock() {
            reason.take(line);
        }
        lines(line);
    });
    let mut result = runtime::npm(dir, args, sink, cancel).await;
    if let Err(Error::CommandFailed { stderr_tail, .. }) = &mut result
        && let Some(said) = reason.lock().ok().and_then(|r| r.text())
    {
        *stderr_tail = said;
    }
    result
}

/// The most lines and bytes of npm's reason an error quotes.
const REASON_LINES: usize = 24;
const REASON_BYTES: usize = 3072;

/// npm's reason for a failure, gathered from its output: the `npm error`
/// lines (`npm ERR!` before npm 10), without the usage text npm appends to a
/// usage error, the log file's path, or anything past the bounds.
#[derive(Default)]
struct Reason {
    lines: Vec<String>,
    bytes: usize,
    more: usize,
    usage: bool,
}

impl Reason {
    fn take(&mut self, line: &str) {
        let Some(text) = line
            .strip_prefix("npm error")
            .or_else(|| line.strip_prefix("npm ERR!"))
        else {
            return;
        };
        let text = text.trim();
        if self.usage
            || text.starts_with("A complete log of this run")
            || text.starts_with("Log files were not written")
        {
            return;
        }
        if text == "Usage:" {
            // Before the usage: a blank line, the command's one-line
            // summary, a blank line.
            self.usage = true;
            while self.lines.last().is_some_and(String::is_empty) {
                self.lines.pop();
            }
            let n = self.lines.len();
            if n >= 2 && self.lines[n - 2].is_empty() {
                self.lines.pop();
            }
            return;
        }
        if text.is_empty() {
            if self.lines.last().is_some_and(|l| !l.is_empty()) {
                self.lines.push(String::new());
            }
            return;
        }
        let text: String = text
            .chars()
            .take(400)
            .flat_map(|c| {
                let escaped: Vec<char> = if c.is_control() {
                    c.escape_default().collect()
                } else {
                    vec![c]
                };
                escaped
            })
            .collect();
        if self.lines.len() >= REASON_LINES || self.bytes + text.len() > REASON_BYTES {
            self.more += 1;
            return;
        }
        self.bytes += text.len();
        self.lines.push(text);
    }

    /// The reason as quoted, if npm gave one.
    fn text(&self) -> Option<String> {
        let mut lines: Vec<&str> = self
            .lines
            .iter()
            .map(String::as_str)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            return None;
        }
        let more = (self.more > 0).then(|| format!("(and {} more lines of npm's)", self.more));
        lines.extend(more.as_deref());
        Some(lines.join("\n"))
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

/// Install the lock of `package` (its exact reference) into `ctx/app`, for
/// `platform`.
pub async fn stage(
    package: &str,
    lock: &[u8],
    platform: &Platform,
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
    let platform_flags = platform.flags();
    let mut args = vec!["ci", "--omit=dev"];
    args.extend(FLAGS);
    args.extend(platform_flags.iter().map(String::as_str));
    let result = match npm(&app, &args, progress, cancel.clone()).await {
        // A stale packument in npm's shared cache (another npm wrote it while
        // this one read, seen in CI as ETARGET for a version the lock names):
        // once more, asking the registry.
        Err(Error::CommandFailed { stderr_tail, .. }) if stderr_tail.contains("ETARGET") => {
            args.push("--prefer-online");
            npm(&app, &args, progress, cancel).await
        }
        other => other,
    };
    result.map(|_| ()).map_err(|e| {
        let name = package.strip_prefix("npm:").unwrap_or(package);
        let name = name.rsplit_once('@').map_or(name, |(n, _)| n);
        explain(package, name, e, &[])
    })
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
    let (name, path) = program_bin(package, unscoped, &bins, bin)?;
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
    let scripts = with_install_scripts(lock)?;
    let mut warnings = Vec::new();
    if !scripts.is_empty() {
        warnings.push(format!(
            "install scripts ran in a build container (no network, only the package tree writable), never on the host, for: {}",
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

/// The program to run among the package's `bins` (name, path): the one
/// `bin` names, else its only one, else the one named as the package
/// (`unscoped`); none, or several without that name, is an error.
fn program_bin<'a>(
    package: &PackageRef,
    unscoped: &str,
    bins: &'a BTreeMap<String, String>,
    bin: Option<&str>,
) -> Result<(&'a String, &'a String)> {
    let listed = || bins.keys().cloned().collect::<Vec<_>>().join(", ");
    Ok(match bin {
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
    })
}

/// The packages of the lock (its last file, package-lock.json) that have
/// install scripts, by their paths under `node_modules/`.
fn with_install_scripts(lock: &[u8]) -> Result<Vec<String>> {
    let doc: Value = serde_json::from_slice(
        super::lock_files(lock)?
            .last()
            .map(|(_, b)| *b)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    Ok(doc["packages"]
        .as_object()
        .map(|packages| {
            packages
                .iter()
                .filter(|(_, p)| p["hasInstallScript"].as_bool() == Some(true))
                .map(|(k, _)| k.trim_start_matches("node_modules/").to_string())
                .collect()
        })
        .unwrap_or_default())
}

/// The generated Containerfile on `base`.
/// `sys`: the staged tree carries libraries its programs load that the base
/// lacks (`sys/`, at their paths in the image).
/// `warm`: it carries node's compile cache (`node-cache/`, see
/// [`super::build::warm`]), which the server reads from a read-only
/// directory.
pub fn containerfile(base: &str, sys: bool, warm: bool) -> String {
    let sys = if sys { "COPY sys/ /\n" } else { "" };
    let cache = if warm {
        format!("COPY {STAGED}/ {CACHE_DIR}/\nENV NODE_COMPILE_CACHE={CACHE_DIR}\n")
    } else {
        String::new()
    };
    format!(
        "# Generated by mcpod: an npm package installed on the host from its lock (npm ci --omit=dev --ignore-scripts)\n\
         FROM {base}\n\
         COPY app/ {APP}/\n\
         {sys}{cache}ENV NODE_ENV=production HOME=/tmp\n\
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

    /// What `npm ci` prints when the lock lacks an optional dependency: the
    /// reason, then its usage text, which is all a stderr tail showed.
    #[test]
    fn npms_reason_is_quoted_not_its_usage() {
        let mut said = String::from(
            "npm error code EUSAGE\nnpm error\nnpm error `npm ci` can only install packages when your package.json and package-lock.json or npm-shrinkwrap.json are in sync.\nnpm error\nnpm error Missing: kubernetes-mcp-server-darwin-amd64@ from lock file\nnpm error Missing: kubernetes-mcp-server-windows-arm64@ from lock file\nnpm error\nnpm error Clean install a project\nnpm error\nnpm error Usage:\nnpm error npm ci\nnpm error\nnpm error Options:\n",
        );
        for _ in 0..80 {
            said.push_str("npm error   --install-strategy\nnpm error     Sets the strategy for installing packages in node_modules.\n");
        }
        said.push_str("npm warn config something\nnpm error A complete log of this run can be found in: /root/.npm/_logs/x.log\n");
        let mut reason = Reason::default();
        for line in said.lines() {
            reason.take(line);
        }
        assert_eq!(
            reason.text().unwrap(),
            "code EUSAGE\n`npm ci` can only install packages when your package.json and package-lock.json or npm-shrinkwrap.json are in sync.\nMissing: kubernetes-mcp-server-darwin-amd64@ from lock file\nMissing: kubernetes-mcp-server-windows-arm64@ from lock file"
        );

        // Bounded, with control characters escaped; older npm's prefix.
        let mut reason = Reason::default();
        for i in 0..1000 {
            reason.take(&format!("npm ERR! line {i}\u{1b}[31m {}", "x".repeat(1000)));
        }
        let text = reason.text().unwrap();
        assert!(text.len() < REASON_BYTES + 200, "{}", text.len());
        assert!(text.contains("\\u{1b}[31m") && !text.contains('\u{1b}'));
        assert!(text.ends_with("more lines of npm's)"), "{text}");
        assert!(Reason::default().text().is_none());
    }
}
