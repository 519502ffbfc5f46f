//! Install scripts and native builds, run where they cannot reach the host.
//!
//! npm stages a package with `--ignore-scripts`, so nothing of the package
//! runs on the host. When the staged tree has packages with install scripts
//! (`preinstall`, `install`, `postinstall`, or a `binding.gyp`, which npm
//! builds with `node-gyp rebuild`), `npm rebuild` runs them in a throwaway
//! build container: the toolchain image ([`toolchain`]), network none, no
//! capabilities, a read-only root with only the package tree (`/app`, the
//! staged `app/`) writable and a small `/tmp`, a non-root uid, the build
//! policy's memory, process and CPU limits, and a deadline. Prebuilt-binary
//! downloaders (prebuild-install, node-pre-gyp) are told to build from
//! source (`npm_config_build_from_source`); they could not download anyway.
//!
//! What the scripts write is part of the staged tree, and so of the build
//! context and the image's key. A failed build names the package npm was
//! building and quotes the first compiler error and the log's tail (the log
//! is streamed, never kept whole; past [`MAX_LOG_BYTES`] the build is
//! stopped).

pub mod sdist;
pub mod toolchain;
pub mod warm;
pub mod wheel;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::Progressed;
use super::bases::Base;
use crate::engine::process::Invocation;
use crate::engine::userns::UserMode;
use crate::image::isolation::{self, BuildPolicy};
use crate::{Error, Result};

/// How long one tree's install scripts may take, all together.
pub const DEADLINE: Duration = Duration::from_secs(20 * 60);
/// The most a build may print before it is stopped.
pub const MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;
/// How long past a build's deadline podman itself stops its container (when
/// mcpod could not: it died), so a stopped build is always mcpod's.
const BACKSTOP: Duration = Duration::from_secs(60);
/// How much of a failed build's log its error quotes.
const TAIL_BYTES: usize = 3000;
/// How many of the log's lines are shown as progress.
const PROGRESS_LINES: usize = 200;
/// The most packages with install scripts one tree may have.
const MAX_PACKAGES: usize = 200;
/// Where the tree is mounted (where the image has it: [`super::npm::APP`]).
const MOUNT: &str = super::npm::APP;
/// The uid and gid scripts run as inside the container.
const BUILD_USER: &str = "1000:1000";

/// What in an install script marks a native build (or a prebuilt addon's
/// download, which falls back to building it).
const NATIVE_TOOLS: &[&str] = &[
    "node-gyp",
    "prebuild-install",
    "node-pre-gyp",
    "cmake-js",
    "prebuildify",
];

/// A package with a native addon whose install scripts run in the build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scripted {
    /// `name@version`
    pub package: String,
    /// Its name, as `npm rebuild` takes it.
    pub name: String,
    /// Its directory relative to the tree (`node_modules/sqlite3`).
    pub dir: PathBuf,
}

/// What a staged tree's key adds for the builds in it: nothing when the
/// lock has no install scripts, else the base (the node an addon is built
/// for) and the toolchain's recipe.
pub fn key(lock: &[u8], base: &Base) -> String {
    let Ok(files) = super::lock_files(lock) else {
        return String::new();
    };
    let doc: Value = serde_json::from_slice(files.last().map(|(_, b)| *b).unwrap_or_default())
        .unwrap_or_default();
    let scripted = doc["packages"].as_object().is_some_and(|p| {
        p.values()
            .any(|p| p["hasInstallScript"].as_bool() == Some(true))
    });
    if !scripted {
        return String::new();
    }
    let mut h = blake3::Hasher::new();
    h.update(toolchain::RECIPE.as_bytes());
    h.update(b"\0");
    h.update(base.image_id.as_bytes());
    format!("-b{}", &h.finalize().to_hex()[..16])
}

/// The packages under `app/node_modules` with install scripts.
pub fn with_scripts(app: &Path) -> Result<Vec<Scripted>> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("node_modules")];
    while let Some(rel) = stack.pop() {
        let dir = app.join(&rel);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("reading", &dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Links (workspaces) and files are not packages npm installed here.
            if name.starts_with('.') || !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let rel = rel.join(&*name);
            if name.starts_with('@') {
                // A scope: its packages are one level down.
                let scope = app.join(&rel);
                for inner in
                    std::fs::read_dir(&scope).map_err(|e| Error::io("reading", &scope, e))?
                {
                    let inner = inner.map_err(|e| Error::io("reading", &scope, e))?;
                    if inner.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        visit(app, &rel.join(inner.file_name()), &mut found, &mut stack)?;
                    }
                }
            } else {
                visit(app, &rel, &mut found, &mut stack)?;
            }
        }
    }
    found.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(found)
}

fn visit(
    app: &Path,
    rel: &Path,
    found: &mut Vec<Scripted>,
    stack: &mut Vec<PathBuf>,
) -> Result<()> {
    let dir = app.join(rel);
    stack.push(rel.join("node_modules"));
    let Ok(bytes) = super::read_small(&dir.join("package.json")) else {
        return Ok(());
    };
    let manifest: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let script = |name: &str| {
        manifest["scripts"][name]
            .as_str()
            .is_some_and(|s| !s.trim().is_empty())
    };
    // npm's default: a binding.gyp and no install or preinstall script is
    // `node-gyp rebuild` (unless `gypfile: false`).
    let gyp = !script("install")
        && !script("preinstall")
        && manifest["gypfile"].as_bool() != Some(false)
        && dir.join("binding.gyp").is_file();
    // Only native builds run: a binding.gyp, or a script that builds or
    // fetches an addon (which, with no network, builds it). Other scripts
    // (a browser download, a banner) are skipped as npm's --ignore-scripts
    // skipped them: with no network most could only fail.
    let native_tool = ["preinstall", "install", "postinstall"].iter().any(|name| {
        manifest["scripts"][*name]
            .as_str()
            .is_some_and(|s| NATIVE_TOOLS.iter().any(|tool| s.contains(tool)))
    });
    let scripted = script("preinstall") || script("install") || script("postinstall");
    let native = gyp || native_tool || (scripted && dir.join("binding.gyp").is_file());
    let name = manifest["name"].as_str().unwrap_or_default();
    if native && is_npm_name(name) {
        found.push(Scripted {
            package: format!("{name}@{}", manifest["version"].as_str().unwrap_or("?")),
            name: name.to_string(),
            dir: rel.to_path_buf(),
        });
        if found.len() > MAX_PACKAGES {
            return Err(Error::invalid(
                "package",
                found
                    .iter()
                    .map(|s| s.package.as_str())
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(", "),
                format!("more than {MAX_PACKAGES} of its packages have install scripts"),
                "provision a package with fewer native dependencies",
            ));
        }
    }
    Ok(())
}

/// What the builds of a tree came to.
#[derive(Debug, Default)]
pub struct Built {
    /// The packages whose native builds ran (`name@version`).
    pub built: Vec<String>,
    /// One per package whose build failed: it is left as npm staged it.
    pub warnings: Vec<String>,
}

/// How many packages' failed builds are set aside before the tree's build
/// itself counts as failed.
const MAX_SET_ASIDE: usize = 8;

/// Run the native builds of the npm tree at `app` (the staged `app/`) in a
/// build container on `base`'s node (none, and no container, when no
/// package has one). A package whose build fails is left as npm staged it,
/// without its addon, with a warning naming it and quoting the compiler (as
/// npm treats an optional dependency's failed build; a server that loads the
/// addon then fails at start, naming it), and the others are built again
/// without it. The build's bounds (the deadline, the log) fail it.
pub async fn npm(
    app: &Path,
    base: &Base,
    progress: &Progressed,
    cancel: CancellationToken,
) -> Result<Built> {
    let mut scripted = with_scripts(app)?;
    if scripted.is_empty() {
        return Ok(Built::default());
    }
    let toolchain = toolchain::for_base(base, &progress.say, &cancel).await?;
    let user = UserMode::detect().await;
    user.usable()?;
    let mut warnings = Vec::new();
    loop {
        match build_once(app, base, &scripted, &toolchain, &user, progress, &cancel).await? {
            None => {
                let built = scripted.into_iter().map(|s| s.package).collect();
                return Ok(Built { built, warnings });
            }
            Some((package, failed)) if warnings.len() < MAX_SET_ASIDE => {
                (progress.say)(format!(
                    "the native build of {package} failed; it is left without its addon"
                ));
                warnings.push(format!(
                    "{failed}; it is left as npm staged it, without what its build makes: the server fails at start only if it loads it"
                ));
                scripted.retain(|s| s.package != package);
                if scripted.is_empty() {
                    return Ok(Built {
                        built: Vec::new(),
                        warnings,
                    });
                }
            }
            Some((_, failed)) => return Err(failed),
        }
    }
}

/// One build container over `scripted`: `None` when it succeeded, else the
/// package that failed and the error naming it.
async fn build_once(
    app: &Path,
    base: &Base,
    scripted: &[Scripted],
    toolchain: &toolchain::Toolchain,
    user: &UserMode,
    progress: &Progressed,
    cancel: &CancellationToken,
) -> Result<Option<(String, Error)>> {
    let names: Vec<String> = scripted.iter().map(|s| s.package.clone()).collect();
    let mut rebuild: Vec<String> = scripted.iter().map(|s| s.name.clone()).collect();
    rebuild.dedup();
    (progress.say)(format!(
        "running the install scripts of {} in a build container (network none, only the package tree writable)",
        names.join(", ")
    ));
    let container = format!("mcpod-build-{}", crate::engine::nonce());
    let args = run_args(app, &toolchain.image_id, &container, user, &rebuild, &names);
    let (ran, log) = run_logged(args, &container, DEADLINE, progress, cancel).await;
    let handed_back = hand_back(app).await;
    let status = match ran {
        Ok(status) => status,
        Err(Error::Cancelled { .. }) if !cancel.is_cancelled() => {
            return Err(Error::invalid(
                "package",
                names.join(", "),
                format!(
                    "its install scripts printed more than {} MiB in the build container, so the build was stopped; the log ends:\n{}",
                    MAX_LOG_BYTES >> 20,
                    log.tail()
                ),
                "provision another version of the package; a build this noisy is not one mcpod runs",
            ));
        }
        Err(Error::Timeout { .. }) => {
            return Err(Error::invalid(
                "package",
                names.join(", "),
                format!(
                    "its install scripts did not finish within {} s in the build container and were stopped; the log ends:\n{}",
                    DEADLINE.as_secs(),
                    log.tail()
                ),
                "provision another version of the package (one with prebuilt platform packages builds nothing)",
            ));
        }
        Err(other) => return Err(other),
    };
    handed_back?;
    if status.success() {
        return Ok(None);
    }
    let named = log
        .failed_dir()
        .and_then(|dir| scripted.iter().find(|s| s.dir == dir))
        .map(|s| s.package.clone());
    let failed = named.clone().unwrap_or_else(|| names.join(", "));
    let first_error = log
        .first_error
        .as_deref()
        .map(|e| format!("; the first error: `{e}`"))
        .unwrap_or_default();
    let error = Error::invalid(
        "package",
        failed.clone(),
        format!(
            "its install script failed in mcpod's build container (node {}, Debian {} toolchain, no network){first_error}; the build log ends:\n{}",
            base.version,
            toolchain::SUITE,
            log.tail()
        ),
        format!(
            "a script that downloads (a prebuilt binary, a library's sources) cannot: the build has no network. Provision a version whose `{failed}` builds from its own sources or ships prebuilt platform packages, or pin one (`pins`)"
        ),
    );
    match named {
        Some(package) => Ok(Some((package, error))),
        None => Err(error),
    }
}

/// `podman run`'s argv for the build: the build policy's limits with no
/// network and no capabilities (the scripts run as a non-root uid, which
/// capabilities would not reach anyway), a read-only root, `/app` the only
/// writable tree besides a small `/tmp`, and podman's own deadline.
fn run_args(
    app: &Path,
    image: &str,
    container: &str,
    user: &UserMode,
    packages: &[String],
    shown: &[String],
) -> Vec<String> {
    let mut a = sandbox_args(
        container,
        &shown.join(","),
        &[
            // `U`: podman hands the tree to the build's uid (and back after).
            format!("--volume={}:{MOUNT}:rw,U", app.display()),
            format!("--workdir={MOUNT}"),
            // npm's debug log would be in the container's /tmp, gone with it.
            "--env=npm_config_logs_max=0".into(),
        ],
        DEADLINE,
        user,
    );
    a.push(image.into());
    a.extend(["npm".into(), "rebuild".into(), "--".into()]);
    a.extend(packages.iter().cloned());
    a
}

/// An npm package name (`name`, `@scope/name`): lowercase letters, digits,
/// `-._~`, at most 214 bytes; never an option to npm.
fn is_npm_name(name: &str) -> bool {
    let bare = |s: &str| {
        !s.is_empty()
            && !s.starts_with(['.', '_', '-'])
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b))
    };
    name.len() <= 214
        && match name.strip_prefix('@').map(|s| s.split_once('/')) {
            Some(Some((scope, bare_name))) => bare(scope) && bare(bare_name),
            Some(None) => false,
            None => bare(name),
        }
}

/// Give the tree back to mcpod's uid (the build's uid owns what it wrote).
async fn hand_back(app: &Path) -> Result<()> {
    // SAFETY: geteuid and getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid != 0 {
        // Rootless: the build's uid is a subordinate one, which only the
        // user's namespace may chown.
        Invocation::new("podman")
            .args(["unshare", "chown", "-R", "--no-dereference", "0:0", "--"])
            .arg(app)
            .timeout(Duration::from_secs(300))
            .run()
            .await?;
        return Ok(());
    }
    let app = app.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut stack = vec![app];
        while let Some(path) = stack.pop() {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(|e| Error::io("giving back", &path, e))?;
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| Error::io("reading", &path, e))?;
            if meta.is_dir() {
                for entry in std::fs::read_dir(&path).map_err(|e| Error::io("reading", &path, e))? {
                    stack.push(entry.map_err(|e| Error::io("reading", &path, e))?.path());
                }
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::UnexpectedOutput {
        command: "giving the built tree back".into(),
        reason: e.to_string(),
    })?
}

/// `podman run`'s argv up to the image, for a build container: the build
/// policy's limits with no network and no capabilities (the build runs as a
/// non-root uid, which capabilities would not reach anyway), a read-only
/// root, a small `/tmp`, the given volumes and options, and podman's own
/// deadline. Its `io.mcpod.build` label names what it builds (`building`),
/// for `podman ps --filter label=io.mcpod.build`.
fn sandbox_args(
    container: &str,
    building: &str,
    volumes: &[String],
    deadline: Duration,
    user: &UserMode,
) -> Vec<String> {
    let policy = BuildPolicy {
        network: false,
        ..isolation::policy().clone()
    };
    let mut a: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--name".into(),
        container.into(),
        format!("--label=io.mcpod.build={building}"),
        "--pull=never".into(),
        "--read-only".into(),
        "--security-opt=no-new-privileges".into(),
        "--log-driver=none".into(),
        format!("--pids-limit={}", policy.processes),
        // A backstop: the run's deadline is mcpod's ([`run_bounded`]).
        format!("--timeout={}", (deadline + BACKSTOP).as_secs()),
        "--tmpfs=/tmp:rw,exec,size=512m,mode=1777".into(),
    ];
    a.extend(volumes.iter().cloned());
    a.extend(
        isolation::flags(&policy)
            .into_iter()
            .filter(|f| !f.starts_with("--cap-add")),
    );
    a.extend(user.flags());
    if *user != UserMode::Nobody {
        a.push(format!("--user={BUILD_USER}"));
    }
    a
}

/// Run a build container (`podman` with `args`, named `container`), its
/// log streamed into a bounded [`Log`] and its first lines shown as
/// progress; stopped past [`MAX_LOG_BYTES`] (an `Error::Cancelled` while
/// `cancel` is not), at `deadline`, or when cancelled, and then removed.
async fn run_logged(
    args: Vec<String>,
    container: &str,
    deadline: Duration,
    progress: &Progressed,
    cancel: &CancellationToken,
) -> (Result<std::process::ExitStatus>, Log) {
    run_bounded(
        args,
        container,
        deadline,
        None,
        MAX_LOG_BYTES,
        progress,
        cancel,
    )
    .await
}

/// [`run_logged`] with `stdin` written to the container (then closed) and
/// the log stopped past `max_log` bytes.
async fn run_bounded(
    args: Vec<String>,
    container: &str,
    deadline: Duration,
    stdin: Option<Vec<u8>>,
    max_log: u64,
    progress: &Progressed,
    cancel: &CancellationToken,
) -> (Result<std::process::ExitStatus>, Log) {
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = cancel.child_token();
    let sink = {
        let (log, say) = (log.clone(), progress.say.clone());
        Box::new(move |line: &str| {
            let Ok(mut log) = log.lock() else { return };
            if let Some(shown) = log.push(line) {
                (say)(shown);
            }
        })
    };
    let mut invocation = Invocation::new("podman");
    if let Some(bytes) = stdin {
        invocation = invocation.stdin(bytes);
    }
    // The deadline is ours: podman's own (`--timeout`, [`BACKSTOP`] later)
    // would end the run as if the program had exited.
    let ran = invocation
        .args(args)
        .timeout(deadline)
        // Every byte counts, a line cut for the log included.
        .stop_past(max_log, stop.clone())
        .cancel_on(stop)
        .on_line(sink)
        .status()
        .await;
    if ran.is_err() {
        // Stopped (deadline, cancel, log bound): podman may not have removed it.
        let _ = Invocation::new("podman")
            .args(["rm", "--force", "--ignore", "--time=0", "--", container])
            .timeout(Duration::from_secs(120))
            .run()
            .await;
    }
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    (ran.map(|(status, _)| status), log)
}

/// A build's log as it streams by: its size, the first compiler error, the
/// last few KB, and the first lines as progress.
#[derive(Clone, Debug, Default)]
struct Log {
    bytes: u64,
    lines: usize,
    tail: VecDeque<String>,
    tail_bytes: usize,
    first_error: Option<String>,
    /// The last `npm error path /app/…` line's directory.
    failed: Option<String>,
}

impl Log {
    /// Take `line`; what to show as progress, if anything.
    fn push(&mut self, line: &str) -> Option<String> {
        self.bytes += line.len() as u64 + 1;
        // npm 11 on the variables prebuild-install and node-pre-gyp read.
        if line.starts_with("npm warn Unknown env config") {
            return None;
        }
        self.lines += 1;
        let npm_line = line.starts_with("npm error") || line.starts_with("npm ERR!");
        if let Some(path) = npm_line
            .then(|| line.split_once(" path ").map(|(_, p)| p.trim()))
            .flatten()
        {
            self.failed = Some(path.to_string());
        }
        if self.first_error.is_none()
            && !npm_line
            && (line.contains("error:") || line.contains("Error:") || line.contains("ERR!"))
        {
            self.first_error = Some(cut(line.trim(), 400));
        }
        let kept = cut(line, 400);
        self.tail_bytes += kept.len() + 1;
        self.tail.push_back(kept);
        while self.tail_bytes > TAIL_BYTES {
            match self.tail.pop_front() {
                Some(old) => self.tail_bytes -= old.len() + 1,
                None => break,
            }
        }
        match self.lines {
            n if n < PROGRESS_LINES => Some(format!("build: {}", cut(line, 400))),
            n if n == PROGRESS_LINES => {
                Some("build: … (more output; a failure quotes its tail)".into())
            }
            _ => None,
        }
    }

    fn tail(&self) -> String {
        let cut_note = if self.bytes as usize > self.tail_bytes {
            format!(
                "[… {} earlier bytes not shown]\n",
                self.bytes as usize - self.tail_bytes
            )
        } else {
            String::new()
        };
        let mut out = cut_note;
        for line in &self.tail {
            out.push_str(line);
            out.push('\n');
        }
        out.trim_end().to_string()
    }

    /// The directory, relative to the tree, of the package npm said failed.
    fn failed_dir(&self) -> Option<PathBuf> {
        let path = self.failed.as_deref()?;
        let rel = path.strip_prefix(MOUNT)?.trim_start_matches('/');
        Some(PathBuf::from(rel))
    }
}

/// `text` cut to `max` bytes at a character boundary, control characters escaped.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = text[..end]
        .chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect();
    if end < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_container_is_labelled_with_what_it_builds() {
        let args = run_args(
            Path::new("/app"),
            "image",
            "mcpod-build-x",
            &UserMode::Nobody,
            &["a".into()],
            &["a@1.0.0".into(), "b@2.0.0".into()],
        );
        assert!(
            args.contains(&"--label=io.mcpod.build=a@1.0.0,b@2.0.0".to_string()),
            "{args:?}"
        );
    }

    #[test]
    fn packages_with_native_builds_are_found_and_other_scripts_skipped() {
        let app = tempfile::tempdir().unwrap();
        let put = |rel: &str, manifest: &str, gyp: bool| {
            let dir = app.path().join(rel);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("package.json"), manifest).unwrap();
            if gyp {
                std::fs::write(dir.join("binding.gyp"), "{}").unwrap();
            }
        };
        put(
            "node_modules/plain",
            r#"{"name":"plain","version":"1.0.0"}"#,
            false,
        );
        put(
            "node_modules/a",
            r#"{"name":"a","version":"1.0.0","scripts":{"install":"prebuild-install || node-gyp rebuild"}}"#,
            true,
        );
        put(
            "node_modules/@s/g",
            r#"{"name":"@s/g","version":"2.0.0"}"#,
            true,
        );
        put(
            "node_modules/@s/off",
            r#"{"name":"@s/off","version":"1.0.0","gypfile":false}"#,
            true,
        );
        put(
            "node_modules/plain/node_modules/p",
            r#"{"name":"p","version":"3.0.0","scripts":{"postinstall":"node x.js","test":"t"}}"#,
            false,
        );
        let found: Vec<String> = with_scripts(app.path())
            .unwrap()
            .into_iter()
            .map(|s| s.package)
            .collect();
        // `p`'s postinstall builds nothing native: skipped, as npm's
        // --ignore-scripts skipped it.
        assert_eq!(found, ["@s/g@2.0.0", "a@1.0.0"]);
    }

    #[test]
    fn only_npm_names_reach_npm_rebuild() {
        for good in ["sqlite3", "@scope/better-sqlite3", "a.b_c~d-e"] {
            assert!(is_npm_name(good), "{good}");
        }
        for bad in [
            "", "--global", "-x", "@scope", "@/x", "A", "a b", ".hidden", "a/b",
        ] {
            assert!(!is_npm_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_log_keeps_a_bounded_tail_the_first_error_and_the_failed_path() {
        let mut log = Log::default();
        log.push("gyp info it worked");
        log.push("../src/x.cc:3:10: fatal error: nope.h: No such file or directory");
        for i in 0..100_000 {
            log.push(&format!("noise {i} {}", "x".repeat(100)));
        }
        log.push("npm error path /app/node_modules/@s/g");
        log.push(&"y".repeat(10_000));
        assert!(log.tail().len() < TAIL_BYTES + 100, "{}", log.tail().len());
        assert!(log.tail().contains("earlier bytes not shown"));
        assert!(log.first_error.as_deref().unwrap().contains("nope.h"));
        assert_eq!(log.failed_dir(), Some(PathBuf::from("node_modules/@s/g")));
    }
}
