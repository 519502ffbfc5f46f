//! A derived base: a base made from Debian's packages plus a layer of the
//! Debian packages a request names (`system_packages`, within the
//! operator's allow-list). Their closure is fetched with the base's own
//! packages named as installed, so only what is new comes; it is unpacked
//! without maintainer scripts and built `FROM` the base through the
//! content-addressed cache. What was fetched (every package at its exact
//! version) is recorded by the base's image and what was asked, so a repeat
//! runs no apt and fetches nothing.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::super::debian;
use super::{Base, DebianTree, bases_dir, blocking, read_json, write_json};
use crate::engine::buildah;
use crate::image::{Progress, reference};
use crate::{Error, Result};

/// The flag an operator allows a Debian package with.
pub const ALLOW_FLAG: &str = "--allow-system-package";

/// Directories of the unpacked layer no server reads.
const DROPPED: &[&str] = &["usr/share/doc", "usr/share/man", "usr/share/locale"];

/// A derived base as recorded: the base, and what its layer holds.
#[derive(Serialize, Deserialize)]
struct Recorded {
    base: Base,
    /// `name=version` of every package the layer added, sorted.
    added: Vec<String>,
}

/// Check `asked` against Debian's name syntax and the operator's `allowed`
/// names (a `name=version` is allowed by its name).
pub fn check(asked: &[String], allowed: &[String]) -> Result<()> {
    if asked.len() > 64 {
        return Err(Error::invalid(
            "system_packages",
            format!("{} packages", asked.len()),
            "a request may name at most 64 system packages",
            "name fewer (their dependencies come with them)",
        ));
    }
    for spec in asked {
        if !debian::is_package(spec) {
            return Err(Error::invalid(
                "system_packages",
                spec.chars()
                    .take(120)
                    .collect::<String>()
                    .escape_debug()
                    .to_string(),
                "it is not a Debian package name",
                "name packages as Debian does (`git`, `libsqlite3-0`), optionally `NAME=VERSION`",
            ));
        }
        let name = spec.split_once('=').map_or(spec.as_str(), |(n, _)| n);
        if !allowed.iter().any(|a| a == name) {
            return Err(Error::invalid(
                "system_packages",
                spec.as_str(),
                format!(
                    "the operator does not allow the Debian package `{name}` (allowed: {})",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
                format!("the operator may allow it with `{ALLOW_FLAG} {name}` on `mcpod serve`"),
            ));
        }
    }
    Ok(())
}

/// `base` with `asked` installed on it (names or `name=version`), made once
/// (`refresh`: fetched and built again). Errors when `base` is not made from
/// Debian's packages.
pub async fn derive(
    base: &Base,
    asked: &[String],
    refresh: bool,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<(Base, Vec<String>)> {
    let mut wanted = asked.to_vec();
    wanted.sort();
    wanted.dedup();
    let key = {
        let mut h = blake3::Hasher::new();
        for part in std::iter::once(&base.image_id).chain(&wanted) {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().to_hex()[..32].to_string()
    };
    let record = bases_dir().join("derived").join(format!("{key}.json"));
    if !refresh && let Some(made) = read_json::<Recorded>(&record) {
        let images = buildah::images().await?;
        if reference::find(&images, &made.base.image).is_some_and(|i| i.id == made.base.image_id) {
            return Ok((made.base, made.added));
        }
    }
    let Some((suite, installed)) = super::debian_packages(base, progress, cancel).await? else {
        return Err(Error::invalid(
            "system_packages",
            wanted.join(" "),
            format!(
                "system packages are installed on a base made from Debian's packages, and {} is {}",
                base.id, base.origin
            ),
            match base.runtime {
                super::Runtime::Python => {
                    "ask for a Python Debian carries (`runtime`: python@3.11 or python@3.13)"
                }
                super::Runtime::Node => {
                    "node bases are made from node's official binaries, not Debian's packages: name an operator base that carries the programs (--base node=IMAGE)"
                }
            },
        ));
    };
    (progress)(format!(
        "adding Debian {suite} packages {} to {}",
        wanted.join(", "),
        base.id
    ));
    let fetched = debian::fetch(suite, &wanted, &installed, progress, cancel).await?;
    let mut added: Vec<String> = fetched.iter().map(debian::Deb::pinned).collect();
    added.sort();
    let stage = bases_dir().join(format!("derived-stage-{}", crate::engine::nonce()));
    let made = build(base, &fetched, &stage, progress, cancel).await;
    let _ = std::fs::remove_dir_all(&stage);
    let _ = std::fs::remove_file(crate::image::store::stat_cache_path(&stage));
    let (image, image_id) = made?;
    let mut all = installed.clone();
    all.extend(fetched);
    let mut packages: Vec<String> = all.iter().map(debian::Deb::pinned).collect();
    packages.sort();
    let derived = Base {
        id: format!("{}+{}", base.id, wanted.join("+")),
        image,
        image_id,
        origin: format!(
            "{} with the Debian {suite} packages {} (made by mcpod)",
            base.origin,
            added.join(" ")
        ),
        debian: Some(DebianTree {
            suite: suite.as_str().to_string(),
            packages,
        }),
        ..base.clone()
    };
    write_json(&super::debs_path(&derived.image_id), &all)?;
    write_json(
        &record,
        &Recorded {
            base: derived.clone(),
            added: added.clone(),
        },
    )?;
    Ok((derived, added))
}

/// Unpack `debs` into `stage/layer` and build it `FROM` `base`.
async fn build(
    base: &Base,
    debs: &[debian::Deb],
    stage: &Path,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<(String, String)> {
    let layer = stage.join("layer");
    debian::unpack(debs, &layer, cancel).await?;
    let dir = layer.clone();
    blocking(move || {
        for d in DROPPED {
            let path = dir.join(d);
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(|e| Error::io("removing", &path, e))?;
            }
        }
        Ok(())
    })
    .await?;
    let containerfile = format!(
        "# Made by mcpod: {} with Debian packages\nFROM {}\nCOPY layer/ /\n",
        base.id, base.image
    );
    let name = format!("localhost/mcpod-base-{}-system", base.runtime.as_str());
    let built = super::build_stage(name, stage, containerfile, progress, cancel).await?;
    Ok((built.tag, built.image_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_debian_names_pass() {
        let allowed = vec!["git".to_string()];
        assert!(check(&["git".into()], &allowed).is_ok());
        assert!(check(&["git=1:2.47.3-0+deb13u1".into()], &allowed).is_ok());
        let e = check(&["curl".into()], &allowed).unwrap_err().to_string();
        assert!(
            e.contains("does not allow") && e.contains("--allow-system-package curl"),
            "{e}"
        );
        let e = check(&["git".into()], &[]).unwrap_err().to_string();
        assert!(e.contains("allowed: none"), "{e}");
        for hostile in ["-oDir=/", "git;rm -rf /", "Git", "../x", "git="] {
            let e = check(&[hostile.into()], &allowed).unwrap_err().to_string();
            assert!(e.contains("not a Debian package name"), "{hostile}: {e}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("p{i}")).collect();
        assert!(
            check(&many, &allowed)
                .unwrap_err()
                .to_string()
                .contains("at most 64")
        );
    }
}
