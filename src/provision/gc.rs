//! `mcpod gc`'s part in provisioning: staged packages no recorded request
//! uses, and work or temporary directories a killed mcpod left.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Ecosystem, Resolution, bases};
use crate::Result;
use crate::image::store;

/// What `mcpod gc` removed (or would remove) of provisioning's state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Collected {
    /// Staged packages no recorded request uses any more (after `refresh`).
    pub staged: Vec<String>,
    /// Work and temporary directories left by a killed mcpod (older than an hour).
    pub leftovers: Vec<String>,
}

/// Remove staged packages that no recorded request names, and work or
/// temporary directories older than an hour (a running provisioning's are
/// younger).
pub fn collect(dry_run: bool) -> Result<Collected> {
    let root = store::state_dir().join("provision");
    let mut out = Collected::default();
    let used: std::collections::HashSet<String> = std::fs::read_dir(root.join("requests"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| bases::read_json::<Resolution>(&e.path()))
        .map(|r| r.lock)
        .collect();
    let old = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600))
    };
    let remove = |path: PathBuf, into: &mut Vec<String>| {
        into.push(path.display().to_string());
        if !dry_run {
            let _ = std::fs::remove_dir_all(&path);
        }
    };
    let toolchains = store::state_dir().join("toolchains");
    for entry in std::fs::read_dir(bases::bases_dir())
        .into_iter()
        .chain(std::fs::read_dir(toolchains))
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if (name.contains("-stage-") || name.starts_with("stage-")) && old(&entry.path()) {
            remove(entry.path(), &mut out.leftovers);
        }
    }
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("work-") && old(&entry.path()) {
            remove(entry.path(), &mut out.leftovers);
        }
    }
    for registry in [Ecosystem::Npm, Ecosystem::Pypi] {
        for entry in std::fs::read_dir(root.join(registry.as_str()))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.contains(".tmp-") {
                if old(&entry.path()) {
                    remove(entry.path(), &mut out.leftovers);
                }
            } else if !used.contains(staged_lock(&name)) && entry.path().is_dir() {
                remove(entry.path(), &mut out.staged);
            }
        }
    }
    Ok(out)
}

/// The lock digest a staged tree's directory is named for: its name up to
/// what its key adds for the base (`-b…` a native build, `-s…` an sdist
/// build, `-w…` a compile cache; a digest is hex, never `-`).
fn staged_lock(name: &str) -> &str {
    name.split_once('-').map_or(name, |(lock, _)| lock)
}
