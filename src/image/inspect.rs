//! inspect_labels: read an image's labels (local storage through podman, a
//! registry through skopeo) and what they declare.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::reference;
use crate::engine::{buildah, podman, skopeo};
use crate::labels::{self, Requests, Servers};
use crate::{Error, Result};

/// The prefix that selects the registry (skopeo) instead of local storage.
pub const REGISTRY_PREFIX: &str = "docker://";

/// What an image's labels declare.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Inspected {
    /// The reference as given.
    pub reference: String,
    /// `local` (podman storage) or `registry` (skopeo).
    pub source: String,
    /// The local image ID, or the registry manifest digest.
    pub id: String,
    /// Every label on the image, raw.
    pub labels: BTreeMap<String, String>,
    /// The MCP servers the labels declare, validated.
    pub servers: Servers,
    /// The label key the servers came from, if any.
    pub servers_source: Option<String>,
    /// What the image asks of a session (granted only within the operator's policy).
    pub requests: Option<Requests>,
    pub warnings: Vec<String>,
    /// The user its processes run as (its `USER`; empty: root), when the
    /// inspect that read the labels said (local storage does).
    #[serde(skip)]
    #[schemars(skip)]
    pub user: Option<String>,
}

/// Read the labels of `reference`: `docker://REF` from a registry, else local storage.
pub async fn inspect_labels(reference: &str) -> Result<Inspected> {
    let (source, id, raw, user) = if let Some(remote) = reference.strip_prefix(REGISTRY_PREFIX) {
        reference::validate_reference(remote)?;
        let (digest, labels) = skopeo::remote_labels(remote).await?;
        ("registry", digest, labels, None)
    } else {
        if let Some((transport, _)) = reference.split_once("://") {
            return Err(Error::invalid(
                "image reference",
                reference,
                format!("the `{transport}://` transport is not supported"),
                "pass a local reference, or `docker://REF` for a registry",
            ));
        }
        reference::validate_reference(reference)?;
        let Some(facts) = podman::image_facts(reference).await? else {
            return Err(Error::ImageNotFound {
                reference: reference.to_string(),
                place: "in local storage",
                fix: not_found_fix(reference).await,
            });
        };
        ("local", facts.id, facts.labels, Some(facts.user))
    };
    let declared = labels::read(&raw)?;
    Ok(Inspected {
        reference: reference.to_string(),
        source: source.to_string(),
        id,
        labels: raw,
        servers: declared.servers,
        servers_source: declared.source,
        requests: declared.requests,
        warnings: declared.warnings,
        user,
    })
}

/// What to do about a local reference that is not there: a name without a tag
/// whose builds exist gets the tag of the newest (build_image tags by content,
/// never `:latest`).
async fn not_found_fix(reference: &str) -> String {
    const BUILD: &str =
        "build it with build_image, or pass `docker://REF` to read it from a registry";
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') || reference.contains('@') {
        return BUILD.into();
    }
    let prefix = format!("{}:", reference::qualified(reference));
    let Ok(images) = buildah::images().await else {
        return BUILD.into();
    };
    newest_tag(&images, &prefix).map_or_else(
        || BUILD.into(),
        |(tag, count)| {
            format!(
                "build_image tags by content (`{prefix}<key>`), not `:latest`: launch `{tag}`, \
the newest of {count} build(s) of that name (build_image returns the tag as `tag`)"
            )
        },
    )
}

/// The newest tag that starts with `prefix`, and how many there are.
fn newest_tag(images: &[buildah::LocalImage], prefix: &str) -> Option<(String, usize)> {
    let mut tagged: Vec<(i64, &String)> = images
        .iter()
        .flat_map(|i| {
            i.names()
                .iter()
                .filter(|n| n.starts_with(prefix) && !n.ends_with(":latest"))
                .map(move |n| (i.created, n))
        })
        .collect();
    tagged.sort();
    let count = tagged.len();
    tagged.last().map(|(_, n)| ((*n).clone(), count))
}

#[cfg(test)]
mod not_found_tests {
    use super::*;

    #[test]
    fn the_newest_build_of_a_name_is_suggested() {
        let image = |id: &str, created: i64, names: &[&str]| buildah::LocalImage {
            id: id.into(),
            names: Some(names.iter().map(|n| n.to_string()).collect()),
            created,
        };
        let images = [
            image("a", 10, &["localhost/bb:1111111111111111"]),
            image(
                "b",
                30,
                &["localhost/bb:2222222222222222", "localhost/bbb:x"],
            ),
            image("c", 20, &["localhost/bb:3333333333333333"]),
        ];
        assert_eq!(
            newest_tag(&images, "localhost/bb:"),
            Some(("localhost/bb:2222222222222222".to_string(), 3))
        );
        assert_eq!(newest_tag(&images, "localhost/cc:"), None);
    }
}
