//! Provisioning: from a package reference (`npm:NAME@VERSION`,
//! `pypi:NAME==VERSION`) or an MCP-registry server.json to a built image
//! whose labels declare the server.
//!
//! The pipeline: reference → base → resolve (a lock) → stage (fetch the lock
//! on the host) → generate a Containerfile → build through the cache.
//!
//! - **Resolved once.** A request (package, version or range, pins, and for
//!   PyPI the base's Python and glibc) is resolved once to a lock (exact
//!   versions with integrity hashes); the answer is recorded, so a repeat
//!   runs no npm or pip and needs no network (`refresh` resolves again).
//! - **Content-addressed.** The lock is staged once per lock digest under the
//!   state dir (`provision/<registry>/<digest>/ctx`), written into a
//!   temporary directory and renamed into place, so a cancelled or failed
//!   fetch leaves nothing half-written. The staged tree is the build context,
//!   so the image's cache key covers exactly what was fetched.
//! - **Nothing runs on the host.** npm runs with `--ignore-scripts`, pip with
//!   wheels only; names and versions reach them only in files mcpod wrote.

pub mod as_of;
pub mod bases;
pub mod debian;
pub mod drift;
mod gc;
pub mod npm;
pub mod npm_lock;
mod oci;
pub mod pypi;
pub mod reference;
mod rootfs;
pub mod server_json;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::engine::process::LineSink;
use crate::image::{self, Built, Progress, store};
use crate::labels::{ServerSpec, Servers};
use crate::{Error, Result};
pub use bases::{Base, OperatorBases, Runtime};
pub use gc::{Collected, collect};
pub use reference::{Ecosystem, PackageRef};

/// The label naming the server in the MCP registry.
pub const REGISTRY_NAME_LABEL: &str = "io.modelcontextprotocol.server.name";

/// Whether `image` is a package reference rather than an image.
pub fn is_package_reference(image: &str) -> bool {
    image.starts_with("npm:") || image.starts_with("pypi:")
}

/// What to provision: a package reference or a server.json, and how.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    /// `npm:NAME@VERSION` (e.g. `npm:@modelcontextprotocol/server-memory@2026.8.31`) or
    /// `pypi:NAME==VERSION` (e.g. `pypi:mcp-server-time==2026.10.19`). A range or a bare
    /// name is resolved once to an exact version; the result says which.
    #[serde(default)]
    pub package: Option<String>,
    /// Instead of `package`: an MCP-registry server.json (schema 2025-12-11),
    /// the JSON object itself.
    #[serde(default)]
    pub server_json: Option<serde_json::Map<String, serde_json::Value>>,
    /// Instead of `package`: the path of a server.json file in the workspace.
    #[serde(default)]
    pub server_json_path: Option<String>,
    /// Which of the server.json's `packages` (default: the first npm, pypi
    /// or oci package with stdio transport).
    #[serde(default)]
    pub package_index: Option<usize>,
    /// Values for the server.json's package arguments (by name or valueHint).
    #[serde(default)]
    pub arguments: BTreeMap<String, String>,
    /// Literal values for the server.json's non-secret environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Pins for the package's dependencies: npm `NAME@RANGE` (overrides),
    /// PyPI `NAME<2`-style specifiers (constraints), e.g. `mcp<2`.
    #[serde(default)]
    pub pins: Vec<String>,
    /// Which program of the package to run, when it has several (npm `bin`
    /// names, PyPI console scripts).
    #[serde(default)]
    pub bin: Option<String>,
    /// The server's name in the image's labels (default: from the package).
    #[serde(default)]
    pub server: Option<String>,
    /// Resolve the dependencies as they stood at a time, for an older package
    /// that today's releases of its dependencies break: `published` (when the
    /// package's exact version was published) or a past day, `YYYY-MM-DD`
    /// (UTC, to its end). npm `--before`, pip `--uploaded-prior-to`.
    #[serde(default)]
    pub resolve_as_of: Option<String>,
    /// Resolve the reference again instead of reusing the recorded lock.
    #[serde(default)]
    pub refresh: bool,
}

impl ProvisionRequest {
    /// Read `server_json_path` (inside `workspace`) into `server_json`.
    pub fn read_paths(mut self, workspace: &crate::workspace::Workspace) -> Result<Self> {
        if let Some(path) = self.server_json_path.take() {
            if self.server_json.is_some() {
                return Err(Error::invalid(
                    "server_json_path",
                    path,
                    "both `server_json` and `server_json_path` were given",
                    "give one of them",
                ));
            }
            let file = workspace.resolve("server_json_path", &path)?;
            let root = workspace.root().to_path_buf();
            let bytes = crate::cache::input::read_bounded(
                &file,
                "server_json",
                server_json::MAX_BYTES as u64,
                |real| {
                    if real.starts_with(&root) {
                        Ok(())
                    } else {
                        Err(Error::PathOutsideRoot {
                            input: path.clone(),
                            root: root.clone(),
                        })
                    }
                },
            )?;
            let value = serde_json::from_slice(&bytes).map_err(|e| {
                Error::invalid(
                    "server_json_path",
                    path.as_str(),
                    format!("it is not a JSON object: {e}"),
                    "pass the path of a server.json file",
                )
            })?;
            self.server_json = Some(value);
        }
        Ok(self)
    }
}

/// The result of provisioning.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Provisioned {
    /// The package at its exact version (`npm:NAME@1.2.3`), or the OCI image.
    pub reference: String,
    /// What was asked for, when it was a range or a bare name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_from: Option<String>,
    /// The built image (its tag is what launch_session takes).
    pub image: Built,
    /// The server the image declares.
    pub server: String,
    pub spec: ServerSpec,
    /// The base it runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Base>,
    /// blake3 of the lock (exact versions and integrity hashes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// Whether npm or pip ran (false: the recorded lock and staged files were reused).
    pub fetched: bool,
    /// The MCP-registry name: from the server.json (stamped as
    /// `io.modelcontextprotocol.server.name`), else as the package claims it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_name: Option<String>,
    /// Whether the package's own claim (npm `mcpName`, PyPI `mcp-name:`)
    /// matches the server.json's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<String>,
    /// What was translated or left out.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    pub duration_ms: u64,
}

/// What a staged package says of itself.
#[derive(Debug)]
pub struct Found {
    /// The runtime program, then the package's own entry (script, `-c` code).
    pub program: Vec<String>,
    pub description: Option<String>,
    pub registry_name: Option<String>,
    pub warnings: Vec<String>,
}

/// Progress messages, and npm's and pip's output lines as progress.
pub struct Progressed {
    pub say: Progress,
}

impl Progressed {
    pub fn lines(&self, tool: &'static str) -> LineSink {
        let say = self.say.clone();
        Box::new(move |line| {
            if !line.trim().is_empty() {
                (say)(format!("{tool}: {line}"));
            }
        })
    }
}

/// A lock as recorded: what resolving a request chose.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Resolution {
    version: String,
    lock: String,
    /// What `resolve_as_of` came to (RFC 3339), when it was given.
    #[serde(default)]
    cutoff: Option<String>,
}

/// Provision `spec` on the operator's `bases`. Cancelling stops npm, pip or
/// buildah and leaves nothing half-written.
pub async fn provision(
    request: ProvisionRequest,
    operator: &OperatorBases,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Provisioned> {
    let started = Instant::now();
    let options = &request;
    if let Some(path) = &request.server_json_path {
        return Err(Error::invalid(
            "server_json_path",
            path.as_str(),
            "paths are read at the boundary, and this one was not",
            "pass the server.json object",
        ));
    }
    let server_json = request
        .server_json
        .as_ref()
        .map(|doc| serde_json::to_vec(doc).unwrap_or_default());
    let chosen = match (&request.package, &server_json) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "server_json",
                "server.json",
                "both a package reference and a server.json were given",
                "give one of them",
            ));
        }
        (None, None) => {
            return Err(Error::invalid(
                "package",
                "",
                "neither a package reference nor a server.json was given",
                "give `npm:NAME@VERSION`, `pypi:NAME==VERSION`, or a server.json",
            ));
        }
        (None, Some(bytes)) => Some(server_json::translate(
            bytes,
            &server_json::Given {
                package: options.package_index,
                arguments: options.arguments.clone(),
                env: options.env.clone(),
            },
        )?),
        (Some(_), None) => {
            if !options.arguments.is_empty()
                || !options.env.is_empty()
                || options.package_index.is_some()
            {
                return Err(Error::invalid(
                    "arguments",
                    "",
                    "`arguments`, `env` and `package_index` fill in a server.json's inputs, and none was given",
                    "for a package reference, override args and env at launch (`overrides`)",
                ));
            }
            None
        }
    };
    let package = match (&request.package, &chosen) {
        (Some(text), _) => PackageRef::parse("package", text)?,
        (None, Some(c)) => match &c.source {
            server_json::Source::Package(p) => p.clone(),
            server_json::Source::Image(image) => {
                return oci::oci(image, c, options, progress, cancel, started).await;
            }
        },
        (None, None) => unreachable_input()?,
    };
    let pins = reference::parse_pins(package.ecosystem, &options.pins)?;
    let as_of = options
        .resolve_as_of
        .as_deref()
        .map(as_of::AsOf::parse)
        .transpose()?;
    let runtime = match package.ecosystem {
        Ecosystem::Npm => Runtime::Node,
        Ecosystem::Pypi => Runtime::Python,
    };
    let base = bases::resolve(runtime, operator, progress.clone(), cancel.clone()).await?;
    let progressed = Progressed {
        say: progress.clone(),
    };

    // The request, and what resolving it once chose.
    let target = match package.ecosystem {
        Ecosystem::Npm => String::new(),
        Ecosystem::Pypi => format!(
            "cp{} glibc {}",
            base.python_minor().unwrap_or_default(),
            base.glibc.as_deref().unwrap_or("")
        ),
    };
    let request = request_key(&package, &pins, &target, as_of.as_ref());
    let root = store::state_dir().join("provision");
    let request_path = root.join("requests").join(format!("{request}.json"));
    let recorded = (!options.refresh)
        .then(|| bases::read_json::<Resolution>(&request_path))
        .flatten();
    let eco_dir = root.join(package.ecosystem.as_str());
    let mut fetched = false;
    let (resolution, lock) = match recorded.and_then(|r| {
        let lock = read_small(&root.join("locks").join(&r.lock)).ok()?;
        Some((r, lock))
    }) {
        Some(found) => found,
        None => {
            (progress)(format!("resolving {package}"));
            let work = TempDir::create(&root.join(format!("work-{}", crate::engine::nonce())))?;
            let cutoff = match &as_of {
                Some(a) => Some(a.cutoff(&package, cancel.clone()).await?),
                None => None,
            };
            let (lock, version) = match package.ecosystem {
                Ecosystem::Npm => {
                    if let Some(cutoff) = &cutoff {
                        // npm reads the project's .npmrc from its directory.
                        write(&work.path().join(".npmrc"), as_of::npmrc(cutoff).as_bytes())?;
                    }
                    npm::resolve(&package, &pins, work.path(), &progressed, cancel.clone()).await?
                }
                Ecosystem::Pypi => {
                    let pip = match &cutoff {
                        Some(cutoff) => Some((
                            as_of::pip_wheel(&root.join("pip"), cancel.clone()).await?,
                            cutoff.as_str(),
                        )),
                        None => None,
                    };
                    pypi::resolve(
                        &package,
                        &pins,
                        &base,
                        work.path(),
                        pip.as_ref().map(|(w, c)| (w.as_path(), *c)),
                        &progressed,
                        cancel.clone(),
                    )
                    .await?
                }
            };
            fetched = true;
            let digest = blake3::hash(&lock).to_hex()[..32].to_string();
            atomic_write(&root.join("locks").join(&digest), &lock)?;
            let resolution = Resolution {
                version,
                lock: digest,
                cutoff,
            };
            bases::write_json(&request_path, &resolution)?;
            (resolution, lock)
        }
    };
    let staged = eco_dir.join(&resolution.lock);
    if !staged.join("ctx").is_dir() {
        (progress)(format!(
            "fetching {} into {}",
            package.exact(&resolution.version),
            staged.display()
        ));
        let tmp = TempDir::create(&eco_dir.join(format!(
            "{}.tmp-{}",
            resolution.lock,
            crate::engine::nonce()
        )))?;
        let ctx = tmp.path().join("ctx");
        let staging_warnings = match package.ecosystem {
            Ecosystem::Npm => {
                let exact = package.exact(&resolution.version);
                npm::stage(&exact, &lock, &ctx, &progressed, cancel.clone()).await?;
                Vec::new()
            }
            Ecosystem::Pypi => pypi::stage(&lock, &base, &ctx, &progressed, cancel.clone()).await?,
        };
        // Beside the context (not in it, not in the key): a repeat warns the same.
        bases::write_json(&tmp.path().join(STAGE_WARNINGS), &staging_warnings)?;
        fetched = true;
        let bytes = tree_bytes(&ctx)?;
        if bytes > MAX_STAGED_BYTES {
            return Err(Error::invalid(
                "package",
                package.exact(&resolution.version),
                format!(
                    "it installs {} MB, more than the {} MB a staged package may take",
                    bytes / 1_000_000,
                    MAX_STAGED_BYTES / 1_000_000
                ),
                "provision a smaller package, or build an image for it with build_image",
            ));
        }
        tmp.persist(&staged)?;
    }
    let ctx = staged.join("ctx");
    let found = match package.ecosystem {
        Ecosystem::Npm => npm::found(&package, &lock, &ctx, options.bin.as_deref())?,
        Ecosystem::Pypi => pypi::found(&package, &ctx, options.bin.as_deref())?,
    };
    let exact = package.exact(&resolution.version);

    // The server: the package's program, with what the server.json adds.
    let mut command = vec![found.program[0].clone()];
    if let Some(c) = &chosen {
        command.extend(c.runtime_args.iter().cloned());
    }
    command.extend(found.program[1..].iter().cloned());
    let mut notes = Vec::new();
    if let (Some(a), Some(cutoff)) = (&as_of, &resolution.cutoff) {
        notes.push(format!(
            "dependencies resolved as of {cutoff} (`resolve_as_of`: {})",
            a.key()
        ));
    }
    let mut warnings = found.warnings.clone();
    warnings
        .extend(bases::read_json::<Vec<String>>(&staged.join(STAGE_WARNINGS)).unwrap_or_default());
    let mut env = BTreeMap::new();
    let mut labels = BTreeMap::from([
        ("org.opencontainers.image.title".to_string(), exact.clone()),
        (
            "org.opencontainers.image.version".to_string(),
            resolution.version.clone(),
        ),
        // Which lock (in the state dir) a server that fails at start ran with.
        (drift::LOCK_LABEL.to_string(), resolution.lock.clone()),
    ]);
    let mut ownership = None;
    let registry_name = match &chosen {
        Some(c) => {
            command.extend(c.args.iter().cloned());
            env = c.env.clone();
            notes.extend(c.notes.iter().cloned());
            labels.insert(REGISTRY_NAME_LABEL.to_string(), c.name.clone());
            let (marker, how) = match package.ecosystem {
                Ecosystem::Npm => ("npm `mcpName`", "package.json"),
                Ecosystem::Pypi => ("PyPI `mcp-name:` marker", "README"),
            };
            ownership = Some(match &found.registry_name {
                Some(claimed) if *claimed == c.name => {
                    format!("matches: the package's {marker} is `{claimed}`")
                }
                Some(claimed) => {
                    warnings.push(format!(
                        "the server.json's name `{}` is not the package's {marker} `{claimed}`: the package may not be the one the server.json's publisher owns",
                        c.name
                    ));
                    format!("differs: the package's {marker} is `{claimed}`")
                }
                None => {
                    warnings.push(format!(
                        "the package has no {marker} (in its {how}), so nothing ties it to the server.json's name `{}`",
                        c.name
                    ));
                    format!("unclaimed: the package has no {marker}")
                }
            });
            Some(c.name.clone())
        }
        None => found.registry_name.clone(),
    };
    let description = chosen
        .as_ref()
        .and_then(|c| c.description.clone())
        .or(found.description.clone())
        .map(|d| format!("{} ({exact})", d.trim()))
        .unwrap_or_else(|| exact.clone());
    let server = server_name(
        options.server.as_deref(),
        &package,
        chosen.as_ref().map(|c| c.name.as_str()),
    )?;
    let server_spec = ServerSpec {
        command,
        env,
        workdir: None,
        call_timeout_secs: None,
        description: Some(cut(&description, 512)),
    };
    let containerfile = match package.ecosystem {
        Ecosystem::Npm => npm::containerfile(&base.image),
        Ecosystem::Pypi => pypi::containerfile(&base.image),
    };
    let containerfile_path = staged.join(format!(
        "Containerfile.{}",
        &blake3::hash(containerfile.as_bytes()).to_hex()[..16]
    ));
    if !containerfile_path.is_file() {
        atomic_write(&containerfile_path, containerfile.as_bytes())?;
    }
    let built = image::build_image(
        image::BuildSpec {
            name: image_name(&package),
            containerfile: containerfile_path,
            context: ctx,
            build_args: BTreeMap::new(),
            servers: Servers::from([(server.clone(), server_spec.clone())]),
            labels,
            no_cache: false,
        },
        progress,
        cancel,
    )
    .await?;
    warnings.extend(built.warnings.iter().cloned());
    Ok(Provisioned {
        reference: exact.clone(),
        resolved_from: (package.exact_version().is_none()).then(|| package.to_string()),
        image: built,
        server,
        spec: server_spec,
        base: Some(base),
        lock: Some(resolution.lock),
        fetched,
        registry_name,
        ownership,
        notes,
        warnings,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

fn unreachable_input<T>() -> Result<T> {
    Err(Error::invalid("package", "", "no package", "give one"))
}

/// The request's key: everything that can change what resolving it chooses.
fn request_key(
    package: &PackageRef,
    pins: &[reference::Pin],
    target: &str,
    as_of: Option<&as_of::AsOf>,
) -> String {
    let mut h = blake3::Hasher::new();
    let mut field = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field("mcpod-provision-1");
    field(package.ecosystem.as_str());
    field(&package.normalized_name());
    field(&package.name);
    field(package.spec.as_deref().unwrap_or(""));
    for pin in pins {
        field(&pin.name);
        field(&pin.spec);
    }
    field(target);
    if let Some(as_of) = as_of {
        field("resolve-as-of");
        field(&as_of.key());
    }
    h.finalize().to_hex()[..32].to_string()
}

/// `localhost/npm/modelcontextprotocol/server-memory`, `localhost/pypi/mcp-server-time`.
fn image_name(package: &PackageRef) -> String {
    let name = package.normalized_name();
    let name = name.trim_start_matches('@').replace('~', "-");
    format!(
        "localhost/{}/{}",
        package.ecosystem.as_str(),
        name.replace("_", "-").replace("..", ".")
    )
}

/// The server's name in the labels: given, else the last part of the
/// registry name or the package name, made a valid server name.
fn server_name(
    given: Option<&str>,
    package: &PackageRef,
    registry: Option<&str>,
) -> Result<String> {
    if let Some(name) = given {
        if !crate::labels::is_server_name(name) {
            return Err(Error::invalid(
                "server",
                name,
                "it is not a server name",
                "a letter, then up to 31 letters, digits, `_` or `-`",
            ));
        }
        return Ok(name.to_string());
    }
    let source = registry
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_else(|| package.name.rsplit('/').next().unwrap_or(&package.name))
        .to_ascii_lowercase();
    // What every MCP server's name says is left out of the tool names it makes.
    let mut short = source.as_str();
    for prefix in ["mcp-server-", "server-", "mcp-"] {
        short = short
            .strip_prefix(prefix)
            .filter(|s| !s.is_empty())
            .unwrap_or(short);
    }
    for suffix in ["-mcp-server", "-mcp", "-server"] {
        short = short
            .strip_suffix(suffix)
            .filter(|s| !s.is_empty())
            .unwrap_or(short);
    }
    let mut name: String = short
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_alphabetic())
        .take(32)
        .collect();
    if name.is_empty() {
        name = "server".into();
    }
    Ok(name)
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A directory of mcpod's own that is removed when dropped, unless persisted.
struct TempDir {
    path: Option<PathBuf>,
}

impl TempDir {
    fn create(path: &Path) -> Result<TempDir> {
        std::fs::create_dir_all(path).map_err(|e| Error::io("creating", path, e))?;
        Ok(TempDir {
            path: Some(path.to_path_buf()),
        })
    }

    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new("/nonexistent"))
    }

    /// Rename into `to`; when another provisioning got there first, keep
    /// theirs (same lock, same content) and remove this one.
    fn persist(mut self, to: &Path) -> Result<()> {
        let Some(path) = self.path.take() else {
            return Ok(());
        };
        match std::fs::rename(&path, to) {
            Ok(()) => Ok(()),
            Err(_) if to.join("ctx").is_dir() => {
                let _ = std::fs::remove_dir_all(&path);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&path);
                Err(Error::io("renaming", to, e))
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Write a file of mcpod's own.
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io("writing", path, e))
}

/// Write a file of mcpod's own atomically.
fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", crate::engine::nonce()));
    write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming", &tmp, e))
}

/// What staging a lock warned of, beside its `ctx`.
const STAGE_WARNINGS: &str = "warnings.json";

/// The most a staged package may take on disk.
const MAX_STAGED_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Bytes of the regular files under `dir` (links not followed).
fn tree_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io("reading", &d, e))? {
            let entry = entry.map_err(|e| Error::io("reading", &d, e))?;
            let meta = entry
                .metadata()
                .map_err(|e| Error::io("reading", entry.path(), e))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// The largest file provisioning reads (a lockfile, a report, a manifest).
const MAX_READ: u64 = 16 * 1024 * 1024;

/// Read a file of at most 16 MiB (mcpod's own, or a staged package's:
/// opened non-blocking and refused unless it is a regular file).
fn read_small(path: &Path) -> Result<Vec<u8>> {
    crate::cache::input::read_bounded(path, "file", MAX_READ, |_| Ok(()))
}

/// A lock of several files as one byte string (each `NAME LEN\n` then its bytes).
fn lock_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        out.extend_from_slice(format!("{name} {}\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// The files of a lock made by [`lock_bytes`].
fn lock_files(mut lock: &[u8]) -> Result<Vec<(&str, &[u8])>> {
    let bad = || Error::UnexpectedOutput {
        command: "reading a recorded lock".into(),
        reason: "it is not a lock mcpod wrote (remove it, or provision with `refresh`)".into(),
    };
    let mut out = Vec::new();
    while !lock.is_empty() {
        let nl = lock.iter().position(|&b| b == b'\n').ok_or_else(bad)?;
        let header = std::str::from_utf8(&lock[..nl]).map_err(|_| bad())?;
        let (name, len) = header.rsplit_once(' ').ok_or_else(bad)?;
        let len: usize = len.parse().map_err(|_| bad())?;
        let rest = &lock[nl + 1..];
        if rest.len() < len || name.contains('/') || name.is_empty() {
            return Err(bad());
        }
        out.push((name, &rest[..len]));
        lock = &rest[len..];
    }
    Ok(out)
}

/// Every file and directory under `dir` readable by all, writable by none
/// but the owner (sessions may run as an unmapped uid).
fn readable(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let set = |path: &Path, dir_or_exec: bool| {
            let mode = if dir_or_exec { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("setting the mode of", path, e))
        };
        set(&d, true)?;
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io("reading", &d, e))? {
            let entry = entry.map_err(|e| Error::io("reading", &d, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("reading", entry.path(), e))?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let exec = entry
                    .metadata()
                    .map(|m| m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false);
                set(&entry.path(), exec)?;
            }
        }
    }
    Ok(())
}

/// A progress sink that drops everything (for callers without one).
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
}

#[cfg(test)]
mod tests;
