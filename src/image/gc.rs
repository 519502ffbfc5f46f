//! Garbage collection of the build cache: old cache tags and temporary tags a
//! crashed build left behind.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::Result;
use crate::engine::buildah;

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

/// Keep the newest `keep` cache tags of every image name; remove older ones and
/// every `mcpod-tmp-` tag.
pub async fn collect(keep: usize, dry_run: bool) -> Result<Collected> {
    let images = buildah::images().await?;
    let mut by_name: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    let mut doomed = Vec::new();
    for image in &images {
        for name in image.names() {
            let Some((repo, tag)) = name.rsplit_once(':') else {
                continue;
            };
            if tag.starts_with("mcpod-tmp-") {
                doomed.push(name.clone());
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

#[cfg(test)]
mod tests {
    #[test]
    fn cache_tags() {
        assert!(super::is_cache_tag("0123456789abcdef"));
        assert!(!super::is_cache_tag("0123456789ABCDEF"));
        assert!(!super::is_cache_tag("latest"));
        assert!(!super::is_cache_tag("0123456789abcde"));
    }
}
