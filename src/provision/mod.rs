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
pub mod pypi;
pub mod reference;
mod request;
mod rootfs;
pub mod server_json;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::image::{self, Progress, store};
use crate::labels::{ServerSpec, Servers};
use crate::{Error, Result};
pub use bases::{Base, OperatorBases, Runtime};
use files::{
    MAX_STAGED_BYTES, STAGE_WARNINGS, TempDir, atomic_write, lock_bytes, lock_files, read_small,
    readable, tree_bytes, write,
};
pub use gc::{Collected, collect};
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

/// Provision `spec` on the operator's `bases`. Cancelling stops npm, pip or
/// buildah and leaves nothing half-written.
pub async fn provision(
    request: ProvisionRequest,
    operator: &OperatorBases,
    allowed_system: &[String],
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
    let asked = options
        .runtime
        .as_deref()
        .map(|text| bases::choice::parse(text, runtime))
        .transpose()?;
    if let (Some(text), Some(image)) = (&options.runtime, operator.get(&runtime)) {
        return Err(Error::invalid(
            "runtime",
            text.as_str(),
            format!(
                "the operator runs every {} package on its own base (--base {}={image})",
                runtime.as_str(),
                runtime.as_str()
            ),
            "drop `runtime`",
        ));
    }
    let system = &options.system_packages;
    if !system.is_empty() {
        bases::derived::check(system, allowed_system)?;
        if let Some(image) = operator.get(&runtime) {
            return Err(Error::invalid(
                "system_packages",
                system.join(" "),
                format!(
                    "the operator runs every {} package on its own base (--base {}={image}), and system packages are installed only on a base mcpod makes from Debian's packages",
                    runtime.as_str(),
                    runtime.as_str()
                ),
                "drop `system_packages` (the operator's base may carry the programs)",
            ));
        }
        if runtime == Runtime::Node {
            return Err(Error::invalid(
                "system_packages",
                system.join(" "),
                "system packages are installed on a base made from Debian's packages, and node bases are made from node's official binaries",
                "drop `system_packages`, or ask the operator for a node base that carries the programs (--base node=IMAGE)",
            ));
        }
    }
    let progressed = Progressed {
        say: progress.clone(),
    };
    let mut notes = Vec::new();
    let mut warnings = Vec::new();

    // A PyPI package's Python is chosen before resolving: wheels are picked for it.
    let mut base = match package.ecosystem {
        Ecosystem::Npm => None,
        Ecosystem::Pypi => {
            let chosen = bases::choice::python(asked.as_ref()).await?;
            let mut base =
                bases::resolve(&chosen.pick, operator, progress.clone(), cancel.clone()).await?;
            if !system.is_empty() && base.debian.is_none() {
                // System packages go on a tree of Debian's: its Python of the same minor.
                let minor = base.python_minor().unwrap_or_default();
                let pick = bases::choice::debian_python(&minor).ok_or_else(|| {
                    Error::invalid(
                        "system_packages",
                        system.join(" "),
                        format!(
                            "system packages need a base made from Debian's packages, and no Debian release carries Python {minor} ({})",
                            base.id
                        ),
                        "name a Python Debian carries with `runtime` (python@3.11 or python@3.13)",
                    )
                })?;
                notes.push(format!(
                    "runs on {} instead of {}: system packages need a base made from Debian's packages",
                    pick.id(),
                    base.id
                ));
                base = bases::resolve(&pick, operator, progress.clone(), cancel.clone()).await?;
            }
            Some(base)
        }
    };

    // The request, and what resolving it once chose.
    // npm packages lock for a platform: the made bases are glibc; an
    // operator's node base is asked which.
    let operator_node = match (package.ecosystem, operator.contains_key(&Runtime::Node)) {
        (Ecosystem::Npm, true) => Some(
            bases::resolve(
                &bases::Pick::Host(Runtime::Node),
                operator,
                progress.clone(),
                cancel.clone(),
            )
            .await?,
        ),
        _ => None,
    };
    let platform = npm_platform(operator_node.as_ref());
    let target = target(&package, base.as_ref(), &platform);
    let request = request_key(
        &package,
        &pins,
        &target,
        options.runtime.as_deref().unwrap_or(""),
        as_of.as_ref(),
        system,
    );
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
        Some((resolution, lock)) => {
            // The runtime recorded with the lock (none: recorded before
            // runtimes were chosen, on the host's).
            let pick = resolution
                .runtime
                .as_deref()
                .and_then(bases::Pick::from_id)
                .unwrap_or(bases::Pick::Host(runtime));
            notes.push(format!(
                "runs on {}, as chosen when the lock was recorded (`refresh` chooses again)",
                pick.id()
            ));
            if base.as_ref().is_none_or(|b| b.id != pick.id()) {
                base =
                    Some(bases::resolve(&pick, operator, progress.clone(), cancel.clone()).await?);
            }
            (resolution, lock)
        }
        None => {
            (progress)(format!("resolving {package}"));
            let work = TempDir::create(&root.join(format!("work-{}", crate::engine::nonce())))?;
            let cutoff = match &as_of {
                Some(a) => Some(a.cutoff(&package, cancel.clone()).await?),
                None => None,
            };
            if let (Ecosystem::Npm, Some(cutoff)) = (package.ecosystem, &cutoff) {
                // npm reads the project's .npmrc from its directory.
                write(&work.path().join(".npmrc"), as_of::npmrc(cutoff).as_bytes())?;
            }
            let pip = match (package.ecosystem, &cutoff) {
                (Ecosystem::Pypi, Some(cutoff)) => Some((
                    as_of::pip_wheel(&root.join("pip"), cancel.clone()).await?,
                    cutoff.as_str(),
                )),
                _ => None,
            };
            let (lock, version, chosen) = match (package.ecosystem, &base) {
                (Ecosystem::Pypi, Some(first)) => {
                    let (lock, version, other) = choose::pypi(
                        &package,
                        &pins,
                        first,
                        asked.is_none() && !operator.contains_key(&runtime),
                        work.path(),
                        pip.as_ref().map(|(w, c)| (w.as_path(), *c)),
                        &progressed,
                        operator,
                        cancel.clone(),
                    )
                    .await?;
                    if let Some((why, other)) = other {
                        notes.push(why);
                        base = Some(other);
                    }
                    (lock, version, None)
                }
                _ => {
                    let (work, stop) = (work.path(), cancel.clone());
                    let (lock, version) =
                        npm::resolve(&package, &pins, &platform, work, &progressed, stop).await?;
                    let chosen = choose::node(
                        &package,
                        &lock,
                        asked.as_ref(),
                        operator,
                        progress.clone(),
                        cancel.clone(),
                    )
                    .await?;
                    (lock, version, Some(chosen))
                }
            };
            if let Some((chosen_base, why, more)) = chosen {
                notes.extend(why);
                warnings.extend(more);
                base = Some(chosen_base);
            }
            fetched = true;
            let digest = blake3::hash(&lock).to_hex()[..32].to_string();
            atomic_write(&root.join("locks").join(&digest), &lock)?;
            let resolution = Resolution {
                version,
                lock: digest,
                cutoff,
                runtime: base.as_ref().map(|b| b.id.clone()),
            };
            bases::write_json(&request_path, &resolution)?;
            (resolution, lock)
        }
    };
    let base = base.ok_or_else(|| Error::UnexpectedOutput {
        command: "provisioning".into(),
        reason: "no base was chosen".into(),
    })?;
    if package.ecosystem == Ecosystem::Npm {
        warnings.extend(choose::engines_mismatch(&package, &lock, &base));
    }
    let base = if system.is_empty() {
        base
    } else {
        let (derived, added) =
            bases::derived::derive(&base, system, options.refresh, &progress, &cancel).await?;
        notes.push(format!(
            "system packages from Debian {}: {}",
            derived.debian.as_ref().map_or("", |d| d.suite.as_str()),
            if added.is_empty() {
                "none new (the base has them)".to_string()
            } else {
                added.join(" ")
            }
        ));
        derived
    };
    // A tree whose install scripts run is built for its base's node.
    let built_for = match package.ecosystem {
        Ecosystem::Npm => build::key(&lock, &base),
        Ecosystem::Pypi => String::new(),
    };
    let staged = eco_dir.join(format!("{}{built_for}", resolution.lock));
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
                npm::stage(&exact, &lock, &platform, &ctx, &progressed, cancel.clone()).await?;
                build::npm(&ctx.join("app"), &base, &progressed, cancel.clone())
                    .await?
                    .warnings
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
    warnings.extend(found.warnings.iter().cloned());
    if let (Some(a), Some(cutoff)) = (&as_of, &resolution.cutoff) {
        notes.push(format!(
            "dependencies resolved as of {cutoff} (`resolve_as_of`: {})",
            a.key()
        ));
    }
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
    let libs = libraries::gather(&staged, &base, &progress).await?;
    let sys = libs.apply(&mut notes, &mut warnings, &mut env);
    let server_spec = ServerSpec {
        command,
        env,
        workdir: None,
        call_timeout_secs: None,
        description: Some(cut(&description, 512)),
    };
    let containerfile = match package.ecosystem {
        Ecosystem::Npm => npm::containerfile(&base.image, sys),
        Ecosystem::Pypi => pypi::containerfile(&base.image, sys),
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

fn unreachable_input<T>() -> Result<T> {
    Err(Error::invalid("package", "", "no package", "give one"))
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
