//! Garbage collection of the build cache: old cache tags and temporary tags a
//! crashed build left behind.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::Result;
use crate::engine::buildah;
use crate::engine::podman::Podman;

/// What gc removed (or, in a dry run, would remove).
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct Collected {
    pub removed: Vec<String>,
    /// Tags that could not be removed (in use by a container, say), with why.
    pub kept: Vec<String>,
}

/// True for the tag part of a cache tag: 16 lowercase hex digits.
fn is_cache_tag(tag: &str) -> bool {
    tag.len() == 16
        && tag
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A temporary tag lives for the seconds between buildah's commit and the
/// label stamp; one older than this was left by a build that crashed. A
/// younger one may be a build under way in another process.
const TEMP_GRACE_SECS: i64 = 3600;

/// Whether a temporary tag on an image created at `created` is left over.
fn left_over(created: i64, now: i64) -> bool {
    now.saturating_sub(created) > TEMP_GRACE_SECS
}

/// Keep the newest `keep` cache tags of every image name; remove older ones and
/// every `mcpod-tmp-` tag older than an hour.
pub async fn collect(keep: usize, dry_run: bool) -> Result<Collected> {
    let images = buildah::images().await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut by_name: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    let mut doomed = Vec::new();
    for image in &images {
        for name in image.names() {
            let Some((repo, tag)) = name.rsplit_once(':') else {
                continue;
            };
            if tag.starts_with("mcpod-tmp-") {
                if left_over(image.created, now) {
                    doomed.push(name.clone());
                }
            } else if is_cache_tag(tag) {
                by_name
                    .entry(repo.to_string())
                    .or_default()
                    .push((image.created, name.clone()));
            }
        }
    }
    for tags in by_name.values_mut() {
        tags.sort_by_key(|t| std::cmp::Reverse(t.0));
        doomed.extend(tags.iter().skip(keep).map(|(_, n)| n.clone()));
    }
    let mut out = Collected::default();
    for name in doomed {
        if dry_run {
            out.removed.push(name);
            continue;
        }
        match buildah::remove_image(&name).await {
            Ok(()) => out.removed.push(name),
            Err(e) => out.kept.push(format!("{name}: {e}")),
        }
    }
    Ok(out)
}

/// On an engine other than the local one: keep the newest `keep` of the
/// supervised images mcpod pulled there (every name of theirs is
/// `…/mcpod-session@sha256:…`), remove the older ones no container uses.
/// Nothing else of the engine's is touched.
pub async fn collect_on(engine: &Podman, keep: usize, dry_run: bool) -> Result<Collected> {
    let suffix = format!("/{}@sha256:", super::supervised::REPOSITORY);
    let mut ours: Vec<_> = engine
        .images()
        .await?
        .into_iter()
        .filter(|i| {
            let names = i.names.as_deref().unwrap_or_default();
            !names.is_empty() && names.iter().all(|n| n.contains(&suffix))
        })
        .collect();
    ours.sort_by_key(|i| std::cmp::Reverse(i.created));
    let mut out = Collected::default();
    for image in ours.into_iter().skip(keep) {
        let name = image
            .names
            .as_ref()
            .and_then(|n| n.first().cloned())
            .unwrap_or(image.id.clone());
        if image.containers > 0 {
            out.kept.push(format!("{name}: a container uses it"));
        } else if dry_run {
            out.removed.push(name);
        } else {
            match engine.remove_image(&image.id).await {
                Ok(()) => out.removed.push(name),
                Err(e) => out.kept.push(format!("{name}: {e}")),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_build_under_way_keeps_its_temporary_tag() {
        let now = 1_800_000_000;
        assert!(!super::left_over(now - 5, now));
        assert!(super::left_over(now - 2 * super::TEMP_GRACE_SECS, now));
    }

    #[test]
    fn cache_tags() {
        assert!(super::is_cache_tag("0123456789abcdef"));
        assert!(!super::is_cache_tag("0123456789ABCDEF"));
        assert!(!super::is_cache_tag("latest"));
        assert!(!super::is_cache_tag("0123456789abcde"));
    }
}
