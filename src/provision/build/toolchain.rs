//! The image install scripts run in: a C and C++ toolchain made once from
//! Debian's packages (fetched and unpacked by [`super::super::debian`], no
//! maintainer script run), with the node the package runs on, npm, and
//! node's headers, so node-gyp compiles offline against a local `--nodedir`.
//!
//! Layers, `FROM scratch` through the content-addressed cache like the made
//! bases: the Debian tree (the same for every base), then the node side
//! (npm and headers), then the base's own files under `/runtime` with
//! `/usr/local/bin/node` pointing at its node. The toolchain is Debian
//! bookworm: glibc 2.36, the C library the made bases carry on this host
//! (Debian 12), so an addon built here links no symbol newer than the base
//! has.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::super::bases::{self, Base};
use super::super::debian::{self, Suite};
use super::super::rootfs::Rootfs;
use crate::engine::{buildah, runtime};
use crate::image::{Progress, reference, store};
use crate::{Error, Result};

/// The Debian release the toolchain comes from (glibc 2.36).
pub const SUITE: Suite = Suite::Bookworm;
/// What install scripts and node-gyp need: compilers, make, python3 for
/// gyp, and the shell tools a script calls.
const PACKAGES: &[&str] = &[
    "g++",
    "make",
    "python3",
    "dash",
    "coreutils",
    "sed",
    "grep",
    "findutils",
    "tar",
    "gzip",
];
/// Changes whenever what the toolchain holds changes: part of the staged
/// tree's key for packages with install scripts.
pub const RECIPE: &str = "mcpod-toolchain-1 bookworm g++ make python3 node-headers npm";
/// Where the base's files are in the toolchain image.
const RUNTIME: &str = "/runtime";

/// A toolchain image for one base.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Toolchain {
    pub image: String,
    pub image_id: String,
    /// The base it carries the node of.
    pub base_id: String,
}

fn dir() -> PathBuf {
    store::state_dir().join("toolchains")
}

fn record_path(base: &Base) -> PathBuf {
    let id = &base.image_id[..base.image_id.len().min(16)];
    dir().join(format!("node-{id}.json"))
}

/// The toolchain for `base`: the one made before, else made now.
pub async fn for_base(
    base: &Base,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Toolchain> {
    if let Some(made) =
        bases::read_json::<Toolchain>(&record_path(base)).filter(|t| t.base_id == base.image_id)
    {
        let images = buildah::images().await?;
        if reference::find(&images, &made.image).is_some_and(|i| i.id == made.image_id) {
            return Ok(made);
        }
    }
    let stage = dir().join(format!("stage-{}", crate::engine::nonce()));
    let made = make(base, &stage, progress, cancel).await;
    let _ = fs::remove_dir_all(&stage);
    let _ = fs::remove_file(store::stat_cache_path(&stage));
    let made = made?;
    bases::write_json(&record_path(base), &made)?;
    Ok(made)
}

async fn make(
    base: &Base,
    stage: &Path,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Toolchain> {
    let headers = node_headers(base)?;
    let npm = npm_dir().await?;
    (progress)(format!(
        "making the build toolchain (Debian {SUITE}: {}) for {}",
        PACKAGES.join(" "),
        base.image
    ));
    debian_tree(SUITE, PACKAGES, &[], stage, progress, cancel).await?;
    let node = stage.join("node");
    tokio::task::spawn_blocking({
        let node = node.clone();
        move || -> Result<()> {
            let mut side = Rootfs::create(&node)?;
            copy_tree_to(&mut side, &headers, Path::new("/usr/include/node"))?;
            copy_tree_to(&mut side, &npm, Path::new("/usr/lib/node_modules/npm"))?;
            side.symlink(
                Path::new("/usr/bin/npm"),
                Path::new("../lib/node_modules/npm/bin/npm-cli.js"),
            )?;
            side.symlink(
                Path::new("/usr/local/bin/node"),
                &Path::new(RUNTIME).join("usr/bin/node"),
            )?;
            Ok(())
        }
    })
    .await
    .map_err(|e| Error::UnexpectedOutput {
        command: "staging the build toolchain".into(),
        reason: e.to_string(),
    })??;
    let containerfile = format!(
        "# Made by mcpod: Debian {SUITE}'s {} (no maintainer scripts run), npm and node's headers, and the base's node\n\
         FROM scratch\n\
         COPY rootfs/ /\n\
         COPY node/ /\n\
         COPY --from={} / {RUNTIME}/\n\
         ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/tmp \
         npm_config_nodedir=/usr npm_config_build_from_source=true npm_config_offline=true \
         npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false \
         npm_config_cache=/tmp/.npm npm_config_foreground_scripts=true npm_config_loglevel=warn\n\
         WORKDIR /tmp\n",
        PACKAGES.join(" "),
        base.image,
    );
    let name = "localhost/mcpod-toolchain".to_string();
    let built =
        super::super::bases::build_stage(name, stage, containerfile, progress, cancel).await?;
    Ok(Toolchain {
        image: built.tag,
        image_id: built.image_id,
        base_id: base.image_id.clone(),
    })
}

/// What building a Python sdist needs besides the Python: compilers, make,
/// and the shell tools a setup.py calls.
const PYTHON_PACKAGES: &[&str] = &[
    "g++",
    "make",
    "dash",
    "coreutils",
    "sed",
    "grep",
    "findutils",
    "tar",
    "gzip",
];
/// Changes whenever what the Python toolchain holds changes: part of a
/// built wheel's cache key and of the staged tree's key.
pub const PYTHON_RECIPE: &str = "mcpod-python-toolchain-1 g++ make pythonX.Y pythonX.Y-dev";

/// The Debian release whose Python is `base`'s minor version and whose C
/// library is no newer than the base's: a wheel built with it loads on the
/// base.
pub fn python_suite(base: &Base) -> Result<Suite> {
    let minor = base.python_minor().unwrap_or_default();
    let glibc = |v: &str| -> (u32, u32) {
        let mut parts = v.split('.').map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    };
    let base_glibc = base.glibc.as_deref().map(glibc);
    Suite::ALL
        .into_iter()
        .find(|s| s.python_minor() == minor && base_glibc.is_none_or(|g| g >= glibc(s.glibc())))
        .ok_or_else(|| {
            Error::invalid(
                "runtime",
                &base.id,
                format!(
                    "building a wheel from an sdist needs a Debian release with Python {minor} and a C library no newer than the base's (glibc {}); Debian {} carry Python {}",
                    base.glibc.as_deref().unwrap_or("?"),
                    Suite::ALL.map(|s| s.as_str()).join(" and "),
                    Suite::ALL.map(|s| s.python_minor()).join(" and "),
                ),
                "run on a Python Debian carries (`runtime`: python@3.11 or python@3.13), or pin the dependency to a version with wheels (`pins`)",
            )
        })
}

/// The Python build toolchain for `base` (Debian's Python of its minor
/// version, with its headers, and a C and C++ toolchain): the one made
/// before, else made now. It carries nothing of the base: a wheel is built
/// for the Python ABI, which Debian's Python of the same minor shares.
pub async fn for_python(
    base: &Base,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<(Toolchain, String)> {
    let suite = python_suite(base)?;
    let python = format!("python{}", suite.python_minor());
    let recipe = format!("{PYTHON_RECIPE} {suite} {python}");
    let record = dir().join(format!("python-{suite}.json"));
    if let Some(made) = bases::read_json::<Toolchain>(&record).filter(|t| t.base_id == recipe) {
        let images = buildah::images().await?;
        if reference::find(&images, &made.image).is_some_and(|i| i.id == made.image_id) {
            return Ok((made, python));
        }
    }
    (progress)(format!(
        "making the Python build toolchain (Debian {suite}: {python} {python}-dev {})",
        PYTHON_PACKAGES.join(" ")
    ));
    let stage = dir().join(format!("stage-{}", crate::engine::nonce()));
    let made = async {
        let mut packages = PYTHON_PACKAGES.to_vec();
        let dev = format!("{python}-dev");
        packages.extend([python.as_str(), dev.as_str()]);
        let links = [("/usr/bin/python3", python.clone())];
        debian_tree(suite, &packages, &links, &stage, progress, cancel).await?;
        let containerfile = format!(
            "# Made by mcpod: Debian {suite}'s {} (no maintainer scripts run), to build wheels from sdists
             FROM scratch
             COPY rootfs/ /
             ENV PATH=/usr/bin:/bin LANG=C.UTF-8 HOME=/tmp PYTHONDONTWRITEBYTECODE=1              PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 SOURCE_DATE_EPOCH=315532800
             WORKDIR /tmp
",
            packages.join(" "),
        );
        let name = "localhost/mcpod-python-toolchain".to_string();
        bases::build_stage(name, &stage, containerfile, progress, cancel).await
    }
    .await;
    let _ = fs::remove_dir_all(&stage);
    let _ = fs::remove_file(store::stat_cache_path(&stage));
    let built = made?;
    let made = Toolchain {
        image: built.tag,
        image_id: built.image_id,
        base_id: recipe,
    };
    bases::write_json(&record, &made)?;
    Ok((made, python))
}

/// Debian `suite`'s `packages` unpacked into `stage/rootfs` (no maintainer
/// script run), with the links a maintainer script would have made
/// (`cc`, `c++`, `sh`, and `links`) and a `/tmp`.
async fn debian_tree(
    suite: Suite,
    packages: &[&str],
    links: &[(&'static str, String)],
    stage: &Path,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<PathBuf> {
    let want: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
    let debs = debian::fetch(suite, &want, &[], progress, cancel).await?;
    let rootfs = stage.join("rootfs");
    debian::unpack(&debs, &rootfs, cancel).await?;
    let at = |abs: &str| rootfs.join(abs.trim_start_matches('/'));
    let mut made: Vec<(PathBuf, String)> = vec![
        (at("/usr/bin/cc"), "gcc".into()),
        (at("/usr/bin/c++"), "g++".into()),
        (at("/usr/bin/sh"), "dash".into()),
    ];
    made.extend(
        links
            .iter()
            .map(|(link, target)| (at(link), target.clone())),
    );
    let tree = rootfs.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        for (link, target) in made {
            if fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(target, &link)
                    .map_err(|e| Error::io("linking", &link, e))?;
            }
        }
        let tmp = tree.join("tmp");
        fs::create_dir_all(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))
            .map_err(|e| Error::io("setting the mode of", &tmp, e))
    })
    .await
    .map_err(|e| Error::UnexpectedOutput {
        command: "staging the build toolchain".into(),
        reason: e.to_string(),
    })??;
    Ok(rootfs)
}

/// Copy the host tree `src` to `abs` in `side` (not at its host path).
fn copy_tree_to(side: &mut Rootfs, src: &Path, abs: &Path) -> Result<()> {
    // Rootfs copies a tree to its own host path; stage it there, then move.
    side.copy_tree(src, &|_| false)?;
    let root = side.path();
    let from = root.join(src.strip_prefix("/").unwrap_or(src));
    let to = root.join(abs.strip_prefix("/").unwrap_or(abs));
    if from == to {
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
    }
    fs::rename(&from, &to).map_err(|e| Error::io("moving", &from, e))
}

/// node's headers for the node `base` runs: those kept with a base made
/// from node's official binaries, else the host node's
/// (`<prefix>/include/node`, beside the node a host-made base was made
/// from), refused unless they are of the base's node version (an addon built
/// against other headers would not load).
pub fn node_headers(base: &Base) -> Result<PathBuf> {
    // A base made from node's official binaries kept their headers.
    if let Some(headers) = base
        .headers
        .as_ref()
        .filter(|h| h.join("node_version.h").is_file())
    {
        return Ok(headers.clone());
    }
    let node = which("node").ok_or_else(|| {
        Error::invalid(
            "node",
            "node",
            "there is no `node` on mcpod's PATH, whose headers a native addon is built against",
            "install node (with its headers, as the official tarballs and NodeSource packages have them)",
        )
    })?;
    let real = fs::canonicalize(&node).map_err(|e| Error::io("resolving", &node, e))?;
    let headers = real
        .parent()
        .and_then(Path::parent)
        .map(|prefix| prefix.join("include/node"))
        .unwrap_or_default();
    let version_h = headers.join("node_version.h");
    let text = fs::read_to_string(&version_h).map_err(|e| Error::io("reading", &version_h, e))?;
    let version = header_version(&text).unwrap_or_default();
    if version != base.version {
        return Err(Error::invalid(
            "package",
            &base.image,
            format!(
                "it needs a native addon built, and the node headers on this host ({}) are of node {version}, not of the base's node {}",
                headers.display(),
                base.version
            ),
            "run on the base mcpod makes from the host's node (drop --base node=…), or install the headers of that node version",
        ));
    }
    Ok(headers)
}

/// `v20.20.2` from node_version.h's defines.
fn header_version(text: &str) -> Option<String> {
    let get = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("#define ")?.strip_prefix(name)?;
            let value = rest.trim();
            value
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| value.to_string())
                .filter(|v| !v.is_empty())
        })
    };
    Some(format!(
        "v{}.{}.{}",
        get("NODE_MAJOR_VERSION")?,
        get("NODE_MINOR_VERSION")?,
        get("NODE_PATCH_VERSION")?
    ))
}

/// The host npm's own directory (npm is JavaScript: the same files run in
/// the toolchain on the base's node).
async fn npm_dir() -> Result<PathBuf> {
    let probe = runtime::probe_node().await?;
    let npm = which("npm").ok_or_else(|| Error::ToolMissing {
        program: "npm".into(),
        package: "npm".into(),
    })?;
    let real = fs::canonicalize(&npm).map_err(|e| Error::io("resolving", &npm, e))?;
    // `…/npm/bin/npm-cli.js`
    let dir = real
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .filter(|d| d.join("node_modules/node-gyp").is_dir())
        .ok_or_else(|| {
            Error::invalid(
                "npm",
                real.display().to_string(),
                format!(
                    "it is not an npm directory with node-gyp inside (next to node {})",
                    probe.version
                ),
                "install npm from the npm registry or node's tarball",
            )
        })?;
    Ok(dir)
}

/// The first `program` on mcpod's PATH (the allow-listed host environment's).
fn which(program: &str) -> Option<PathBuf> {
    let path = crate::engine::env::host_env()
        .into_iter()
        .find(|(k, _)| k.as_os_str() == "PATH")
        .map(|(_, v)| v)?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_version_is_read_from_its_defines() {
        let h = "#define NODE_MAJOR_VERSION 20\n#define NODE_MINOR_VERSION 20\n#define NODE_PATCH_VERSION 2\n#define NODE_VERSION_IS_RELEASE 1\n";
        assert_eq!(header_version(h).as_deref(), Some("v20.20.2"));
        assert_eq!(header_version("#define NODE_MAJOR_VERSION x"), None);
    }
}
