//! The base images packages run on: one with node for npm packages, one with
//! Python for PyPI packages.
//!
//! By default mcpod makes them itself, once, from the host's own runtime (no
//! registry is needed): the `node` or `python3` on PATH, the libraries `ldd`
//! lists, Python's standard library, in an image `FROM scratch` built through
//! the content-addressed cache (`localhost/mcpod-base-node:<key>`). The image
//! made is recorded and reused; `mcpod bases --remake` makes it again (after a
//! host upgrade). The operator may name other bases instead (`--base
//! node=IMAGE`, e.g. `node:22-slim` where a registry is reachable); mcpod
//! asks such an image once what runtime it carries, and remembers the answer
//! by image ID.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::rootfs::Rootfs;
use crate::engine::{buildah, podman, runtime};
use crate::image::{self, Progress, reference, store};
use crate::{Error, Result};

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
    /// The reference a generated Containerfile builds `FROM`.
    pub image: String,
    pub image_id: String,
    /// The runtime's version (`v20.20.2`, `3.11.7`).
    pub version: String,
    /// The C library's version (`2.36`): the newest manylinux wheels it can load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glibc: Option<String>,
    /// Who provides it: made by mcpod from a host program, or the operator's.
    pub origin: String,
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

/// The base for `runtime`: the operator's, else the one mcpod made (making it
/// now, on first use).
pub async fn resolve(
    runtime: Runtime,
    operator: &OperatorBases,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Base> {
    if let Some(reference) = operator.get(&runtime) {
        return operator_base(runtime, reference).await;
    }
    if let Some(made) = recorded(runtime).await? {
        return Ok(made);
    }
    make(runtime, progress, cancel).await
}

/// Every runtime's base as it stands; makes and probes nothing new but the
/// host program's version for a base not made yet.
pub async fn list(operator: &OperatorBases) -> Result<Vec<BaseReport>> {
    let mut out = Vec::new();
    for runtime in Runtime::ALL {
        let for_packages = match runtime {
            Runtime::Node => "npm:NAME@VERSION, server.json packages of registryType npm",
            Runtime::Python => "pypi:NAME==VERSION, server.json packages of registryType pypi",
        }
        .to_string();
        let ready = match operator.get(&runtime) {
            Some(reference) => Some(operator_base(runtime, reference).await?),
            None => recorded(runtime).await?,
        };
        let report = match ready {
            Some(base) => BaseReport {
                runtime,
                state: "ready".into(),
                base: Some(base),
                will_be_made_from: None,
                for_packages,
            },
            None => BaseReport {
                runtime,
                state: "made on first use".into(),
                base: None,
                will_be_made_from: Some(match host_program(runtime).await {
                    Ok((exe, version)) => format!("the host's {} {version}", exe.display()),
                    Err(e) => format!("nothing: {e}"),
                }),
                for_packages,
            },
        };
        out.push(report);
    }
    Ok(out)
}

/// Make `runtime`'s base again from the host's program (after an upgrade).
pub async fn remake(
    runtime: Runtime,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Base> {
    make(runtime, progress, cancel).await
}

pub(super) fn bases_dir() -> PathBuf {
    store::state_dir().join("bases")
}

fn record_path(runtime: Runtime) -> PathBuf {
    bases_dir().join(format!("{}.json", runtime.as_str()))
}

/// The base mcpod made for `runtime`, if it is still in local storage.
async fn recorded(runtime: Runtime) -> Result<Option<Base>> {
    let Some(base) = read_json::<Base>(&record_path(runtime)) else {
        return Ok(None);
    };
    let images = buildah::images().await?;
    Ok(reference::find(&images, &base.image)
        .filter(|i| i.id == base.image_id)
        .map(|_| base))
}

/// The operator's image for `runtime`, asked once (by image ID) what it carries.
async fn operator_base(runtime: Runtime, reference_text: &str) -> Result<Base> {
    let images = buildah::images().await?;
    let Some(found) = reference::find(&images, reference_text) else {
        return Err(Error::ImageNotFound {
            reference: reference_text.to_string(),
            place: "in local storage",
            fix: format!(
                "the operator named it as the {} base (--base {}={reference_text}): pull it with `podman pull {reference_text}`, or drop the flag to let mcpod make one from the host's {}",
                runtime.as_str(),
                runtime.as_str(),
                runtime.program()
            ),
        });
    };
    let probe_path = bases_dir().join(format!(
        "probe-{}.json",
        &found.id[..found.id.len().min(16)]
    ));
    if let Some(base) = read_json::<Base>(&probe_path).filter(|b| b.runtime == runtime) {
        return Ok(Base {
            image: reference_text.to_string(),
            ..base
        });
    }
    let argv: Vec<String> = match runtime {
        Runtime::Node => vec![
            "node".into(),
            "-e".into(),
            "console.log(JSON.stringify({version:process.version,glibc:(process.report&&process.report.getReport().header.glibcVersionRuntime)||''}))".into(),
        ],
        Runtime::Python => vec!["python3".into(), "-c".into(), runtime::PYTHON_PROBE.into()],
    };
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let flags = [
        "--network=none",
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        "--read-only",
        "--user=65534:65534",
    ];
    let refused = |reason: String| {
        Error::invalid(
            "--base",
            format!("{}={reference_text}", runtime.as_str()),
            format!("`{}` could not be run in it: {reason}", runtime.program()),
            format!("name an image that has `{}` on its PATH", runtime.program()),
        )
    };
    let (status, output) = podman::run_probe(&flags, &found.id, &argv)
        .await
        .map_err(|e| refused(e.to_string()))?;
    if !status.success() {
        return Err(refused(format!("{status}: {}", output.stderr_tail)));
    }
    let stdout = output.stdout;
    #[derive(Deserialize)]
    struct Said {
        version: String,
        #[serde(default)]
        glibc: String,
    }
    let said: Said = crate::engine::process::parse_json("the base probe", &stdout)?;
    let base = Base {
        runtime,
        image: reference_text.to_string(),
        image_id: found.id.clone(),
        version: said.version,
        glibc: (!said.glibc.is_empty()).then_some(said.glibc),
        origin: format!(
            "the operator's (--base {}={reference_text})",
            runtime.as_str()
        ),
    };
    write_json(&probe_path, &base)?;
    Ok(base)
}

/// The host program a base would be made from, and its version.
async fn host_program(runtime: Runtime) -> Result<(PathBuf, String)> {
    Ok(match runtime {
        Runtime::Node => {
            let p = runtime::probe_node().await?;
            (p.exe, p.version)
        }
        Runtime::Python => {
            let p = runtime::probe_python().await?;
            (p.exe, p.version)
        }
    })
}

/// Directories of Python's standard library a server never needs (tests,
/// GUI toolkits, the static library, the host's installed packages).
fn skip_in_stdlib(rel: &Path) -> bool {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().to_string());
    let Some(first) = first else { return false };
    if rel.components().count() == 1 {
        let name = first.as_str();
        return matches!(
            name,
            "site-packages"
                | "dist-packages"
                | "test"
                | "idlelib"
                | "tkinter"
                | "turtledemo"
                | "ensurepip"
                | "lib2to3"
                | "__phello__"
        ) || name.starts_with("config-3")
            || name == "turtle.py";
    }
    // The Tk extension module pulls in X11.
    first == "lib-dynload"
        && rel
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("_tkinter"))
}

/// The system libraries a manylinux wheel may link without carrying them
/// (PEP 600's list, less the graphics ones), from the directory the host's
/// libc is in: native wheels (Rust- and C++-built) load libgcc_s and libstdc++.
fn manylinux_libraries(libs: &std::collections::BTreeSet<PathBuf>) -> Vec<PathBuf> {
    const ALLOWED: &[&str] = &[
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "libm.so.6",
        "libdl.so.2",
        "librt.so.1",
        "libpthread.so.0",
        "libutil.so.1",
        "libresolv.so.2",
        "libcrypt.so.1",
        "libz.so.1",
    ];
    let Some(dir) = libs
        .iter()
        .find(|l| l.file_name().is_some_and(|n| n == "libc.so.6"))
        .and_then(|l| l.parent())
    else {
        return Vec::new();
    };
    ALLOWED
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.exists())
        .collect()
}

async fn make(runtime: Runtime, progress: Progress, cancel: CancellationToken) -> Result<Base> {
    // Each maker stages its own copy (several mcpod processes may make the
    // same base at once); the build cache then builds it once.
    let stage = bases_dir().join(format!(
        "{}-stage-{}",
        runtime.as_str(),
        crate::engine::nonce()
    ));
    let made = make_in(runtime, &stage, progress, cancel).await;
    let _ = fs::remove_dir_all(&stage);
    let _ = fs::remove_file(store::stat_cache_path(&stage));
    let base = made?;
    write_json(&record_path(runtime), &base)?;
    Ok(base)
}

async fn make_in(
    runtime: Runtime,
    stage: &Path,
    progress: Progress,
    cancel: CancellationToken,
) -> Result<Base> {
    let mut rootfs = Rootfs::create(&stage.join("rootfs"))?;
    let (version, glibc, from, env) = match runtime {
        Runtime::Node => {
            let probe = runtime::probe_node().await?;
            (progress)(format!(
                "making the node base from the host's {} {}",
                probe.exe.display(),
                probe.version
            ));
            let libs = runtime::libraries(std::slice::from_ref(&probe.exe)).await?;
            let exe = probe.exe.clone();
            blocking(move || {
                rootfs.copy_file(&exe, Path::new("/usr/bin/node"))?;
                for lib in &libs {
                    rootfs.copy_file(lib, lib)?;
                }
                rootfs.dir(Path::new("/tmp"), 0o1777)?;
                Ok(rootfs.size())
            })
            .await
            .map(|size| staged(&progress, size))?;
            (probe.version, None, probe.exe, "NODE_ENV=production")
        }
        Runtime::Python => {
            let probe = runtime::probe_python().await?;
            if probe.implementation != "cpython" {
                return Err(Error::invalid(
                    "python3",
                    probe.exe.display().to_string(),
                    format!(
                        "it is {}, not CPython (wheels are chosen for CPython)",
                        probe.implementation
                    ),
                    "put a CPython python3 first on mcpod's PATH, or name a base with --base python=IMAGE",
                ));
            }
            (progress)(format!(
                "making the python base from the host's {} {}",
                probe.exe.display(),
                probe.version
            ));
            let mut elves = vec![probe.exe.clone()];
            if let Ok(entries) = fs::read_dir(&probe.dynload) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().to_string();
                    if name.ends_with(".so") && !name.starts_with("_tkinter") {
                        elves.push(entry.path());
                    }
                }
            }
            let mut libs = runtime::libraries(&elves).await?;
            libs.extend(manylinux_libraries(&libs));
            let p = probe.clone();
            blocking(move || {
                rootfs.copy_file(&p.exe, &p.exe)?;
                if p.exe != Path::new("/usr/bin/python3") {
                    rootfs.symlink(Path::new("/usr/bin/python3"), &p.exe)?;
                }
                rootfs.copy_tree(&p.stdlib, &skip_in_stdlib)?;
                if !p.dynload.starts_with(&p.stdlib) && p.dynload.is_dir() {
                    rootfs.copy_tree(&p.dynload, &|rel| {
                        rel.to_string_lossy().starts_with("_tkinter")
                    })?;
                }
                for lib in &libs {
                    rootfs.copy_file(lib, lib)?;
                }
                let certs = Path::new("/etc/ssl/certs/ca-certificates.crt");
                if certs.is_file() {
                    rootfs.copy_file(certs, certs)?;
                }
                rootfs.dir(Path::new("/tmp"), 0o1777)?;
                Ok(rootfs.size())
            })
            .await
            .map(|size| staged(&progress, size))?;
            (
                probe.version,
                Some(probe.glibc),
                probe.exe,
                "PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
            )
        }
    };
    let description = format!(
        "{} {version} from the host's {} (made by mcpod)",
        runtime.as_str(),
        from.display()
    );
    let containerfile = format!(
        "# Made by mcpod from the host's own files: {}\nFROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/tmp {env}\nWORKDIR /tmp\nLABEL org.opencontainers.image.description={}\n",
        from.display(),
        serde_json::to_string(&description).unwrap_or_default(),
    );
    let path = stage.join("Containerfile");
    fs::write(&path, containerfile).map_err(|e| Error::io("writing", &path, e))?;
    let built = image::build_image(
        image::BuildSpec {
            name: format!("localhost/mcpod-base-{}", runtime.as_str()),
            containerfile: path,
            context: stage.to_path_buf(),
            build_args: BTreeMap::new(),
            servers: Default::default(),
            labels: BTreeMap::new(),
            no_cache: false,
        },
        progress,
        cancel,
    )
    .await?;
    Ok(Base {
        runtime,
        image: built.tag,
        image_id: built.image_id,
        version,
        glibc,
        origin: format!("made by mcpod from the host's {}", from.display()),
    })
}

fn staged(progress: &Progress, (files, bytes): (u64, u64)) {
    (progress)(format!(
        "staged {files} host files, {} MB",
        bytes / 1_000_000
    ));
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stdlib_keeps_what_servers_import() {
        for skipped in [
            "site-packages",
            "test",
            "tkinter",
            "config-3.11-x86_64-linux-gnu",
            "lib-dynload/_tkinter.cpython-311-x86_64-linux-gnu.so",
        ] {
            assert!(skip_in_stdlib(Path::new(skipped)), "{skipped}");
        }
        for kept in [
            "json",
            "asyncio",
            "os.py",
            "lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
            "unittest",
            "json/tests",
        ] {
            assert!(!skip_in_stdlib(Path::new(kept)), "{kept}");
        }
    }
}
