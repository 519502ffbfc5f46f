//! Node servers that start warm: V8's compile cache, baked into the image.
//!
//! On a node that has it (≥ 22.1), the provisioned server is run once in a
//! throwaway build container with `NODE_COMPILE_CACHE` pointing at an empty
//! directory, sent one MCP `initialize` on stdin (which then closes), so
//! node compiles the modules the server loads and writes their code cache
//! when it exits. The container is the build's ([`super::sandbox_args`]):
//! network none, no capabilities, a read-only root with the package tree
//! mounted read-only, a non-root uid, the build policy's limits; only the
//! cache directory is writable. A preload ([`FLUSH`]) makes a server that
//! keeps running after stdin closes exit (writing the cache) after a few
//! seconds; the run has a deadline ([`DEADLINE`]) and a log bound
//! ([`MAX_LOG_BYTES`]).
//!
//! What the run wrote is checked (only directories and regular files, at
//! most [`MAX_CACHE_BYTES`] and [`MAX_FILES`]), made readable by the
//! session's uid, and moved into the staged tree (`ctx/node-cache`), which
//! the image copies to [`CACHE_DIR`]: it is part of the build context, so
//! of the image's key, and belongs to this staged tree only, which is one
//! lock on one base ([`key`]: a pure-JS tree is otherwise staged once for
//! every node). The cache's bytes are not reproducible run to run, so it is
//! made once per staged tree and recorded ([`RECORD`]); a repeat reuses it.
//! A warm-up that fails any bound leaves no cache and a warning: the server
//! then starts cold, as before. Sessions run servers with a read-only root,
//! so nothing a server does at run time changes the cache; node reads it
//! and skips writing (the entries are the same, or the write fails quietly).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::super::bases::{self, Base};
use super::super::files::TempDir;
use super::super::{Progressed, no_progress};
use crate::engine::userns::UserMode;
use crate::{Error, Result};

pub use super::super::npm::{CACHE_DIR, STAGED};
/// Beside the context: what the warm-up came to, so a repeat says the same.
const RECORD: &str = "node-cache.json";
/// How long the warm-up may take.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// The most the warm-up may print (stdout and stderr) before it is stopped.
pub const MAX_LOG_BYTES: u64 = 4 << 20;
/// The largest cache kept, and its most files.
pub const MAX_CACHE_BYTES: u64 = 64 << 20;
pub const MAX_FILES: usize = 20_000;
/// Where the preload is mounted in the warm-up container.
const FLUSH_PATH: &str = "/mcpod-warm-flush.cjs";
/// The warm-up's preload: a server still running a few seconds after its
/// `initialize` (stdin closed) exits, so node writes the cache (it writes at
/// exit, and a signal would kill it before that).
const FLUSH: &str = "'use strict';\n\
const flush = () => { try { require('node:module').flushCompileCache?.(); } catch {} process.exit(0); };\n\
setTimeout(flush, 3000).unref();\n\
process.on('SIGTERM', flush);\n";
/// The MCP request the warm-up is sent: servers load their handlers' modules
/// by the time they answer it.
const INITIALIZE: &str = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"mcpod-warm-up\",\"version\":\"1\"}}}\n";

/// What the warm-up of a staged tree came to.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Warmed {
    /// The cache's files and bytes (0 when none is kept).
    pub files: usize,
    pub bytes: u64,
    /// Why no cache is kept, when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl Warmed {
    pub fn cached(&self) -> bool {
        self.files > 0
    }
}

/// Whether `base`'s node has a compile cache (≥ 22.1).
pub fn supports(base: &Base) -> bool {
    if base.runtime != bases::Runtime::Node {
        return false;
    }
    let mut parts = base.version.trim_start_matches('v').split('.');
    let major: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (22, 1)
}

/// What a staged tree's key adds for its compile cache: the base, when its
/// node has one (the cache is that node's: another node neither reads it
/// nor can write its own on the read-only root), else nothing.
pub fn key(base: &Base) -> String {
    if !supports(base) {
        return String::new();
    }
    format!(
        "-w{}",
        &blake3::hash(base.image_id.as_bytes()).to_hex()[..16]
    )
}

/// The compile cache of the staged tree at `staged` (its `ctx/app` the
/// package tree) for `command` on `base`: made once (a warm-up run in a
/// build container), then recorded. Only cancelling is an error; any other
/// failure is a warning and no cache.
pub async fn warm(
    staged: &Path,
    base: &Base,
    command: &[String],
    progress: &Progressed,
    cancel: &CancellationToken,
) -> Result<Warmed> {
    let record = staged.join(RECORD);
    if let Some(done) = bases::read_json::<Warmed>(&record)
        && (!done.cached() || staged.join("ctx").join(STAGED).is_dir())
    {
        return Ok(done);
    }
    (progress.say)(format!(
        "warming node {}'s compile cache: running the server once in a build container (network none, only the cache writable, {} s at most)",
        base.version,
        DEADLINE.as_secs()
    ));
    let warmed = match run(staged, base, command, cancel).await {
        Ok(w) => w,
        Err(Error::Cancelled { what }) if cancel.is_cancelled() => {
            return Err(Error::Cancelled { what });
        }
        Err(e) => Warmed {
            warning: Some(format!(
                "no compile cache was baked (the server starts cold): {e}"
            )),
            ..Warmed::default()
        },
    };
    bases::write_json(&record, &warmed)?;
    Ok(warmed)
}

/// Run the server once in a build container to write its compile cache,
/// check what it wrote and move it into the staged tree.
async fn run(
    staged: &Path,
    base: &Base,
    command: &[String],
    cancel: &CancellationToken,
) -> Result<Warmed> {
    let user = UserMode::detect().await;
    user.usable()?;
    let tmp = TempDir::create(&staged.join(format!("warm.tmp-{}", crate::engine::nonce())))?;
    let cache = tmp.path().join("cache");
    let flush = tmp.path().join("flush.cjs");
    std::fs::create_dir(&cache).map_err(|e| Error::io("creating", &cache, e))?;
    std::fs::write(&flush, FLUSH).map_err(|e| Error::io("writing", &flush, e))?;
    set_mode(&flush, 0o644)?;
    let app = staged.join("ctx").join("app");
    let container = format!("mcpod-build-{}", crate::engine::nonce());
    let mounts = Mounts {
        app: &app,
        flush: &flush,
        cache: &cache,
    };
    let args = warm_up_args(&container, base, command, &mounts, &user);
    let quiet = Progressed { say: no_progress() };
    let (ran, log) = super::run_bounded(
        args,
        &container,
        DEADLINE,
        Some(INITIALIZE.as_bytes().to_vec()),
        MAX_LOG_BYTES,
        &quiet,
        cancel,
    )
    .await;
    let handed_back = super::hand_back(&cache).await;
    ran_within_bounds(ran, &log, command, cancel)?;
    handed_back?;
    let (files, bytes) = check(&cache)?;
    if files == 0 {
        return Err(Error::invalid(
            "package",
            command.join(" "),
            format!(
                "its warm-up run wrote no compile cache; it ends:\n{}",
                log.tail()
            ),
            "nothing to do: the server runs, without a compile cache",
        ));
    }
    for_session_uids(&cache)?;
    let into = staged.join("ctx").join(STAGED);
    match std::fs::rename(&cache, &into) {
        Ok(()) => {}
        // Another provisioning of the same tree got there first: keep theirs.
        Err(_) if into.is_dir() => {}
        Err(e) => return Err(Error::io("renaming", &into, e)),
    }
    drop(tmp);
    Ok(Warmed {
        files,
        bytes,
        warning: None,
    })
}

/// The host paths the warm-up container mounts.
struct Mounts<'a> {
    /// The package tree (read-only).
    app: &'a Path,
    /// The preload [`FLUSH`] (read-only).
    flush: &'a Path,
    /// The empty cache directory, the one writable place.
    cache: &'a Path,
}

/// `podman run`'s arguments for the warm-up: the build's sandbox with the
/// mounts, `NODE_COMPILE_CACHE` and the preload, then `base`'s image and the
/// server's `command`.
fn warm_up_args(
    container: &str,
    base: &Base,
    command: &[String],
    mounts: &Mounts<'_>,
    user: &UserMode,
) -> Vec<String> {
    let mut args = super::sandbox_args(
        container,
        &format!(
            "compile cache {}",
            command.last().map_or("", String::as_str)
        ),
        &[
            "--interactive".into(),
            format!("--volume={}:{}:ro", mounts.app.display(), super::MOUNT),
            format!("--volume={}:{FLUSH_PATH}:ro", mounts.flush.display()),
            // `U`: podman hands the directory to the warm-up's uid.
            format!("--volume={}:{CACHE_DIR}:rw,U", mounts.cache.display()),
            format!("--workdir={}", super::MOUNT),
            format!("--env=NODE_COMPILE_CACHE={CACHE_DIR}"),
            format!("--env=NODE_OPTIONS=--require={FLUSH_PATH}"),
        ],
        DEADLINE,
        user,
    );
    args.push(base.image_id.clone());
    args.extend(command.iter().cloned());
    args
}

/// The warm-up run's end as an error when it was stopped: for printing more
/// than [`MAX_LOG_BYTES`] (a stop that is not the caller's cancelling) or
/// passing [`DEADLINE`], quoting the tail of its `log`; its own exit status
/// does not matter.
fn ran_within_bounds(
    ran: Result<std::process::ExitStatus>,
    log: &super::Log,
    command: &[String],
    cancel: &CancellationToken,
) -> Result<()> {
    match ran {
        Ok(_) => Ok(()),
        Err(Error::Cancelled { .. }) if !cancel.is_cancelled() => Err(Error::invalid(
            "package",
            command.join(" "),
            format!(
                "its warm-up run printed more than {} MiB, so it was stopped; it ends:\n{}",
                MAX_LOG_BYTES >> 20,
                log.tail()
            ),
            "nothing to do: the server runs, without a compile cache",
        )),
        Err(Error::Timeout { .. }) => Err(Error::invalid(
            "package",
            command.join(" "),
            format!(
                "its warm-up run did not end within {} s (the server neither exited nor let the preload end it), so it was stopped; it ends:\n{}",
                DEADLINE.as_secs(),
                log.tail()
            ),
            "nothing to do: the server runs, without a compile cache",
        )),
        Err(other) => Err(other),
    }
}

/// Check what the warm-up wrote at `dir`: only directories and regular
/// files, within the bounds; made readable by any uid (node writes 0600,
/// and the session runs as another uid). Its files and bytes.
fn check(dir: &Path) -> Result<(usize, u64)> {
    let mut stack = vec![dir.to_path_buf()];
    // Every entry counts against the bound as it is listed (directories
    // too: a run that made only empty ones is as unbounded as one that made
    // files), so the walk holds at most MAX_FILES paths.
    let (mut files, mut bytes, mut entries) = (0usize, 0u64, 0usize);
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("reading", &path, e))?;
        let shown = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        if meta.is_dir() {
            set_mode(&path, 0o755)?;
            for entry in std::fs::read_dir(&path).map_err(|e| Error::io("reading", &path, e))? {
                entries += 1;
                if entries > MAX_FILES {
                    break;
                }
                stack.push(entry.map_err(|e| Error::io("reading", &path, e))?.path());
            }
        } else if meta.is_file() {
            set_mode(&path, 0o644)?;
            files += 1;
            bytes += meta.len();
        } else {
            return Err(Error::invalid(
                "package",
                shown,
                "its warm-up run left something other than a file or a directory in the compile cache",
                "nothing to do: the server runs, without a compile cache",
            ));
        }
        if entries > MAX_FILES || bytes > MAX_CACHE_BYTES {
            return Err(Error::invalid(
                "package",
                shown,
                format!(
                    "its warm-up run wrote more than {MAX_FILES} files and directories or {} MiB of compile cache",
                    MAX_CACHE_BYTES >> 20
                ),
                "nothing to do: the server runs, without a compile cache",
            ));
        }
    }
    Ok((files, bytes))
}

/// The uids a session runs a provisioned server as: the image's root in
/// the session's user namespace, or `nobody` where podman cannot map one.
const SESSION_UIDS: [u32; 2] = [0, 65534];

/// node keeps its cache in a directory named for the uid that wrote it
/// (`v22.12.0-x64-FLAGS-UID`) and reads only its own uid's: the warm-up's
/// is renamed for the session's first uid, and the others link to it.
fn for_session_uids(cache: &Path) -> Result<()> {
    let entries: Vec<_> = std::fs::read_dir(cache)
        .map_err(|e| Error::io("reading", cache, e))?
        .filter_map(|e| e.ok())
        .collect();
    for entry in entries {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some((prefix, uid)) = name.rsplit_once('-') else {
            continue;
        };
        if uid.is_empty() || !uid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let [first, rest @ ..] = SESSION_UIDS;
        let target = format!("{prefix}-{first}");
        if name != target {
            let to = cache.join(&target);
            std::fs::rename(entry.path(), &to).map_err(|e| Error::io("renaming", &to, e))?;
        }
        for uid in rest {
            let link = cache.join(format!("{prefix}-{uid}"));
            std::os::unix::fs::symlink(&target, &link)
                .map_err(|e| Error::io("linking", &link, e))?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting the mode of", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(version: &str) -> Base {
        Base {
            runtime: bases::Runtime::Node,
            id: String::new(),
            image: String::new(),
            image_id: String::new(),
            version: version.into(),
            glibc: None,
            origin: String::new(),
            headers: None,
            integrity: None,
            debian: None,
        }
    }

    #[test]
    fn only_a_node_with_a_compile_cache_is_warmed() {
        for (version, yes) in [
            ("v20.20.2", false),
            ("v22.0.0", false),
            ("v22.1.0", true),
            ("v22.12.0", true),
            ("v26.12.1", true),
            ("", false),
        ] {
            assert_eq!(supports(&base(version)), yes, "{version}");
        }
    }

    #[test]
    fn a_cache_with_a_link_or_too_much_is_refused_and_files_are_made_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("v22-x64");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("a"), b"x").unwrap();
        set_mode(&sub.join("a"), 0o600).unwrap();
        assert_eq!(check(dir.path()).unwrap(), (1, 1));
        let mode = std::fs::metadata(sub.join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        std::os::unix::fs::symlink("/etc/shadow", sub.join("b")).unwrap();
        let e = check(dir.path()).unwrap_err().to_string();
        assert!(e.contains("other than a file"), "{e}");
    }

    #[test]
    fn a_cache_of_only_empty_directories_is_bounded_too() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..MAX_FILES {
            std::fs::create_dir(dir.path().join(i.to_string())).unwrap();
        }
        assert_eq!(check(dir.path()).unwrap(), (0, 0));
        std::fs::create_dir(dir.path().join("one-more")).unwrap();
        let e = check(dir.path()).unwrap_err().to_string();
        assert!(e.contains("files and directories"), "{e}");
    }
}
