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
pub mod build;
mod choose;
pub mod debian;
pub mod drift;
mod elf;
mod files;
mod gc;
pub mod libraries;
pub mod npm;
pub mod npm_lock;
pub mod npm_platform;
mod oci;
pub mod pip;
mod plan;
pub mod pypi;
mod recall;
pub mod reference;
mod request;
mod rootfs;
pub mod server_json;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::image::{self, Progress, store};
use crate::labels::{ServerSpec, Servers};
use crate::telemetry::{Kind, Span};
use crate::{Error, Result};
pub use bases::{Base, OperatorBases, Runtime};
use files::{
    MAX_STAGED_BYTES, STAGE_WARNINGS, TempDir, atomic_write, lock_bytes, lock_files, read_small,
    readable, tree_bytes, write,
};
pub use gc::{Collected, collect};
use plan::{Plan, Planned};
pub use reference::{Ecosystem, PackageRef};
pub use request::{Found, Progressed, ProvisionRequest, Provisioned};

/// The label naming the server in the MCP registry.
pub const REGISTRY_NAME_LABEL: &str = "io.modelcontextprotocol.server.name";

/// Whether `image` is a package reference rather than an image.
pub fn is_package_reference(image: &str) -> bool {
    image.starts_with("npm:") || image.starts_with("pypi:")
}

/// A lock as recorded: what resolving a request chose.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Resolution {
    version: String,
    lock: String,
    /// What `resolve_as_of` came to (RFC 3339), when it was given.
    #[serde(default)]
    cutoff: Option<String>,
    /// The runtime chosen for it (`node@22.12.0`, `python@host`): a repeat
    /// runs on the same one without asking a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    runtime: Option<String>,
}

/// What the steps of one provision share: the operator's bases, where
/// progress goes, the cancel token, and what the result will say.
struct Steps<'a> {
    operator: &'a OperatorBases,
    progress: Progress,
    progressed: Progressed,
    cancel: CancellationToken,
    notes: Vec<String>,
    warnings: Vec<String>,
}

impl<'a> Steps<'a> {
    fn new(operator: &'a OperatorBases, progress: Progress, cancel: CancellationToken) -> Self {
        Steps {
            operator,
            progressed: Progressed {
                say: progress.clone(),
            },
            progress,
            cancel,
            notes: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// Provision `request` on the operator's bases. Cancelling stops npm, pip or
/// buildah and leaves nothing half-written.
pub async fn provision(
    request: ProvisionRequest,
    operator: &OperatorBases,
    allowed_system: &[String],
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Provisioned> {
    let mut span = Span::under_current("provision", None, Kind::Internal);
    span.set(
        "mcpod.package",
        request.package.as_deref().unwrap_or("server.json"),
    );
    let work = provision_steps(request, operator, allowed_system, progress, cancel);
    let provisioned = span.run(work).await;
    match &provisioned {
        Ok(done) => {
            span.set("mcpod.package", &done.reference);
            span.set("mcpod.image", &done.image.tag);
        }
        Err(e) => span.fail(e),
    }
    provisioned
}

async fn provision_steps(
    request: ProvisionRequest,
    operator: &OperatorBases,
    allowed_system: &[String],
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Provisioned> {
    let started = Instant::now();
    let plan = match plan::plan(&request, operator, allowed_system)? {
        Planned::Package(plan) => plan,
        Planned::Image { image, chosen } => {
            return oci::oci(&image, &chosen, &request, progress, cancel, started).await;
        }
    };
    let mut steps = Steps::new(operator, progress, cancel);
    // A PyPI package's Python is chosen before resolving: wheels are picked for it.
    let python = match plan.package.ecosystem {
        Ecosystem::Npm => None,
        Ecosystem::Pypi => Some(python_base(&plan, &mut steps).await?),
    };
    // npm packages lock for a platform: the made bases are glibc; an
    // operator's node base is asked which.
    let platform = npm_platform(operator_node(&plan, &steps).await?.as_ref());
    let resolved = recall::resolved(&plan, request.refresh, python, &platform, &mut steps).await?;
    let recall::Resolved {
        resolution, lock, ..
    } = &resolved;
    if plan.package.ecosystem == Ecosystem::Npm {
        let mismatch = choose::engines_mismatch(&plan.package, lock, &resolved.base);
        steps.warnings.extend(mismatch);
    }
    let base =
        with_system_packages(resolved.base.clone(), &plan, request.refresh, &mut steps).await?;
    let (staged, staged_now) = stage(&plan, resolution, lock, &base, &platform, &steps).await?;
    let ctx = staged.join("ctx");
    let found = match plan.package.ecosystem {
        Ecosystem::Npm => npm::found(&plan.package, lock, &ctx, request.bin.as_deref())?,
        Ecosystem::Pypi => pypi::found(&plan.package, &ctx, request.bin.as_deref())?,
    };
    let exact = plan.package.exact(&resolution.version);
    let staging = bases::read_json::<Vec<String>>(&staged.join(STAGE_WARNINGS));
    let mut declared = declare(&plan, &found, resolution, &exact, staging, &mut steps);
    let server = server_name(
        request.server.as_deref(),
        &plan.package,
        plan.chosen.as_ref().map(|c| c.name.as_str()),
    )?;
    let libs = libraries::gather(&staged, &base, &steps.progress).await?;
    let sys = libs.apply(&mut steps.notes, &mut steps.warnings, &mut declared.env);
    let warm = warm(&plan, &staged, &base, &declared.command, &mut steps).await?;
    let server_spec = ServerSpec {
        command: declared.command,
        env: declared.env,
        workdir: None,
        call_timeout_secs: None,
        description: Some(cut(&declared.description, 512)),
    };
    let containerfile = match plan.package.ecosystem {
        Ecosystem::Npm => npm::containerfile(&base.image, sys, warm),
        Ecosystem::Pypi => pypi::containerfile(&base.image, sys),
    };
    let built = image::build_image(
        image::BuildSpec {
            name: image_name(&plan.package),
            containerfile: kept(&staged, &containerfile)?,
            context: ctx,
            build_args: BTreeMap::new(),
            servers: Servers::from([(server.clone(), server_spec.clone())]),
            labels: declared.labels,
            no_cache: false,
        },
        steps.progress,
        steps.cancel,
    )
    .await?;
    steps.warnings.extend(built.warnings.iter().cloned());
    Ok(Provisioned {
        reference: exact.clone(),
        resolved_from: (plan.package.exact_version().is_none()).then(|| plan.package.to_string()),
        image: built,
        server,
        spec: server_spec,
        base: Some(base),
        lock: Some(resolved.resolution.lock),
        fetched: resolved.fetched || staged_now,
        registry_name: declared.registry_name,
        ownership: declared.ownership,
        notes: steps.notes,
        warnings: steps.warnings,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// `containerfile` kept beside the staged tree by its digest.
fn kept(staged: &Path, containerfile: &str) -> Result<PathBuf> {
    let path = staged.join(format!(
        "Containerfile.{}",
        &blake3::hash(containerfile.as_bytes()).to_hex()[..16]
    ));
    if !path.is_file() {
        atomic_write(&path, containerfile.as_bytes())?;
    }
    Ok(path)
}

/// The Python a PyPI package is resolved for: the one asked for or chosen,
/// moved to Debian's Python of the same minor when system packages are asked.
async fn python_base(plan: &Plan, steps: &mut Steps<'_>) -> Result<Base> {
    let chosen = bases::choice::python(plan.asked.as_ref()).await?;
    let resolve = |pick| {
        let (operator, progress, cancel) =
            (steps.operator, steps.progress.clone(), steps.cancel.clone());
        async move { bases::resolve(&pick, operator, progress, cancel).await }
    };
    let base = resolve(chosen.pick).await?;
    if plan.system.is_empty() || base.debian.is_some() {
        return Ok(base);
    }
    // System packages go on a tree of Debian's: its Python of the same minor.
    let minor = base.python_minor().unwrap_or_default();
    let pick = bases::choice::debian_python(&minor).ok_or_else(|| {
        Error::invalid(
            "system_packages",
            plan.system.join(" "),
            format!(
                "system packages need a base made from Debian's packages, and no Debian release carries Python {minor} ({})",
                base.id
            ),
            "name a Python Debian carries with `runtime` (python@3.11 or python@3.13)",
        )
    })?;
    steps.notes.push(format!(
        "runs on {} instead of {}: system packages need a base made from Debian's packages",
        pick.id(),
        base.id
    ));
    resolve(pick).await
}

/// The operator's node base, for an npm package when the operator gave one.
async fn operator_node(plan: &Plan, steps: &Steps<'_>) -> Result<Option<Base>> {
    if plan.package.ecosystem != Ecosystem::Npm || !steps.operator.contains_key(&Runtime::Node) {
        return Ok(None);
    }
    let pick = bases::Pick::Host(Runtime::Node);
    let (progress, cancel) = (steps.progress.clone(), steps.cancel.clone());
    Ok(Some(
        bases::resolve(&pick, steps.operator, progress, cancel).await?,
    ))
}

/// `base`, or the base derived from it with the request's system packages.
async fn with_system_packages(
    base: Base,
    plan: &Plan,
    refresh: bool,
    steps: &mut Steps<'_>,
) -> Result<Base> {
    if plan.system.is_empty() {
        return Ok(base);
    }
    let (derived, added) =
        bases::derived::derive(&base, &plan.system, refresh, &steps.progress, &steps.cancel)
            .await?;
    steps.notes.push(format!(
        "system packages from Debian {}: {}",
        derived.debian.as_ref().map_or("", |d| d.suite.as_str()),
        if added.is_empty() {
            "none new (the base has them)".to_string()
        } else {
            added.join(" ")
        }
    ));
    Ok(derived)
}

/// The staged tree of a lock on its base (`provision/<registry>/<digest>…`),
/// fetched, and for a tree whose install scripts run built, unless it is
/// there; whether it was fetched now.
async fn stage(
    plan: &Plan,
    resolution: &Resolution,
    lock: &[u8],
    base: &Base,
    platform: &npm_platform::Platform,
    steps: &Steps<'_>,
) -> Result<(PathBuf, bool)> {
    let package = &plan.package;
    let eco_dir = store::state_dir()
        .join("provision")
        .join(package.ecosystem.as_str());
    // A tree whose install scripts run is built for its base's node; one
    // warmed holds that node's compile cache.
    let built_for = match package.ecosystem {
        Ecosystem::Npm => match build::key(lock, base) {
            none if none.is_empty() => build::warm::key(base),
            built => built,
        },
        Ecosystem::Pypi => build::sdist::key(lock, base),
    };
    let staged = eco_dir.join(format!("{}{built_for}", resolution.lock));
    if staged.join("ctx").is_dir() {
        return Ok((staged, false));
    }
    let exact = package.exact(&resolution.version);
    (steps.progress)(format!("fetching {exact} into {}", staged.display()));
    let tmp = TempDir::create(&eco_dir.join(format!(
        "{}.tmp-{}",
        resolution.lock,
        crate::engine::nonce()
    )))?;
    let ctx = tmp.path().join("ctx");
    let (progressed, cancel) = (&steps.progressed, steps.cancel.clone());
    let staging_warnings = match package.ecosystem {
        Ecosystem::Npm => {
            npm::stage(&exact, lock, platform, &ctx, progressed, cancel.clone()).await?;
            build::npm(&ctx.join("app"), base, progressed, cancel)
                .await?
                .warnings
        }
        Ecosystem::Pypi => pypi::stage(lock, base, &ctx, progressed, cancel).await?,
    };
    // Beside the context (not in it, not in the key): a repeat warns the same.
    bases::write_json(&tmp.path().join(STAGE_WARNINGS), &staging_warnings)?;
    let bytes = tree_bytes(&ctx)?;
    if bytes > MAX_STAGED_BYTES {
        return Err(Error::invalid(
            "package",
            exact,
            format!(
                "it installs {} MB, more than the {} MB a staged package may take",
                bytes / 1_000_000,
                MAX_STAGED_BYTES / 1_000_000
            ),
            "provision a smaller package, or build an image for it with build_image",
        ));
    }
    tmp.persist(&staged)?;
    Ok((staged, true))
}

/// What the image's labels declare: the server's command and env (with what
/// a server.json adds), the image's labels, and its registry name.
struct Declared {
    command: Vec<String>,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    registry_name: Option<String>,
    ownership: Option<String>,
    description: String,
}

/// The server the package's program makes, with what the server.json adds;
/// `staging` is what staging warned.
fn declare(
    plan: &Plan,
    found: &Found,
    resolution: &Resolution,
    exact: &str,
    staging: Option<Vec<String>>,
    steps: &mut Steps<'_>,
) -> Declared {
    let mut command = vec![found.program[0].clone()];
    if let Some(c) = &plan.chosen {
        command.extend(c.runtime_args.iter().cloned());
    }
    command.extend(found.program[1..].iter().cloned());
    steps.warnings.extend(found.warnings.iter().cloned());
    if let (Some(a), Some(cutoff)) = (&plan.as_of, &resolution.cutoff) {
        steps.notes.push(format!(
            "dependencies resolved as of {cutoff} (`resolve_as_of`: {})",
            a.key()
        ));
    }
    steps.warnings.extend(staging.unwrap_or_default());
    let mut labels = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            exact.to_string(),
        ),
        (
            "org.opencontainers.image.version".to_string(),
            resolution.version.clone(),
        ),
        // Which lock (in the state dir) a server that fails at start ran with.
        (drift::LOCK_LABEL.to_string(), resolution.lock.clone()),
    ]);
    let (mut env, mut ownership) = (BTreeMap::new(), None);
    let registry_name = match &plan.chosen {
        Some(c) => {
            command.extend(c.args.iter().cloned());
            env = c.env.clone();
            steps.notes.extend(c.notes.iter().cloned());
            labels.insert(REGISTRY_NAME_LABEL.to_string(), c.name.clone());
            let ecosystem = plan.package.ecosystem;
            ownership = Some(claim(&c.name, ecosystem, found, &mut steps.warnings));
            Some(c.name.clone())
        }
        None => found.registry_name.clone(),
    };
    let description = plan
        .chosen
        .as_ref()
        .and_then(|c| c.description.clone())
        .or(found.description.clone())
        .map(|d| format!("{} ({exact})", d.trim()))
        .unwrap_or_else(|| exact.to_string());
    Declared {
        command,
        env,
        labels,
        registry_name,
        ownership,
        description,
    }
}

/// Whether the package claims the server.json's registry `name` (npm
/// `mcpName`, PyPI `mcp-name:`), warning when it does not.
fn claim(name: &str, ecosystem: Ecosystem, found: &Found, warnings: &mut Vec<String>) -> String {
    let (marker, how) = match ecosystem {
        Ecosystem::Npm => ("npm `mcpName`", "package.json"),
        Ecosystem::Pypi => ("PyPI `mcp-name:` marker", "README"),
    };
    match &found.registry_name {
        Some(claimed) if *claimed == name => {
            format!("matches: the package's {marker} is `{claimed}`")
        }
        Some(claimed) => {
            warnings.push(format!(
                "the server.json's name `{name}` is not the package's {marker} `{claimed}`: the package may not be the one the server.json's publisher owns"
            ));
            format!("differs: the package's {marker} is `{claimed}`")
        }
        None => {
            warnings.push(format!(
                "the package has no {marker} (in its {how}), so nothing ties it to the server.json's name `{name}`"
            ));
            format!("unclaimed: the package has no {marker}")
        }
    }
}

/// On a node with a compile cache, the server's cache, made once per staged
/// tree; whether the image keeps one.
async fn warm(
    plan: &Plan,
    staged: &Path,
    base: &Base,
    command: &[String],
    steps: &mut Steps<'_>,
) -> Result<bool> {
    if plan.package.ecosystem != Ecosystem::Npm || !build::warm::supports(base) {
        return Ok(false);
    }
    let warmed = build::warm::warm(staged, base, command, &steps.progressed, &steps.cancel).await?;
    match &warmed.warning {
        Some(w) => steps.warnings.push(w.clone()),
        None => steps.notes.push(format!(
            "starts warm: node's compile cache for its modules is in the image ({} files, {} KiB, at {})",
            warmed.files,
            warmed.bytes.div_ceil(1024),
            build::warm::CACHE_DIR
        )),
    }
    Ok(warmed.cached())
}

/// The platform npm packages lock for: the made bases are glibc; an
/// operator's base whose node reports no glibc is taken for musl.
fn npm_platform(operator_node: Option<&Base>) -> npm_platform::Platform {
    use npm_platform::{Libc, Platform};
    Platform::host(if operator_node.is_some_and(|b| b.glibc.is_none()) {
        Libc::Musl
    } else {
        Libc::Glibc
    })
}

/// What a request is resolved for, part of its key: npm's platform, PyPI's
/// Python and glibc.
fn target(package: &PackageRef, base: Option<&Base>, platform: &npm_platform::Platform) -> String {
    match (package.ecosystem, base) {
        (Ecosystem::Npm, _) | (Ecosystem::Pypi, None) => format!("npm {}", platform.key()),
        (Ecosystem::Pypi, Some(base)) => format!(
            "cp{} glibc {}",
            base.python_minor().unwrap_or_default(),
            base.glibc.as_deref().unwrap_or("")
        ),
    }
}

/// The request's key: everything that can change what resolving it chooses.
fn request_key(
    package: &PackageRef,
    pins: &[reference::Pin],
    target: &str,
    runtime: &str,
    as_of: Option<&as_of::AsOf>,
    system: &[String],
) -> String {
    let mut h = blake3::Hasher::new();
    let mut field = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field("mcpod-provision-2");
    field(package.ecosystem.as_str());
    field(&package.normalized_name());
    field(&package.name);
    field(package.spec.as_deref().unwrap_or(""));
    for pin in pins {
        field(&pin.name);
        field(&pin.spec);
    }
    field(target);
    if !runtime.is_empty() {
        field("runtime");
        field(runtime);
    }
    if let Some(as_of) = as_of {
        field("resolve-as-of");
        field(&as_of.key());
    }
    let mut system = system.to_vec();
    system.sort();
    system.dedup();
    for name in &system {
        field("system-package");
        field(name);
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

/// A progress sink that drops everything (for callers without one).
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
}

#[cfg(test)]
mod tests;
