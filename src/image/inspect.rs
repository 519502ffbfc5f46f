//! inspect_labels: read an image's labels (local storage through podman, a
//! registry through skopeo) and what they declare.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::reference;
use crate::engine::{podman, skopeo};
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
}

/// Read the labels of `reference`: `docker://REF` from a registry, else local storage.
pub async fn inspect_labels(reference: &str) -> Result<Inspected> {
    let (source, id, raw) =
        if let Some(remote) = reference.strip_prefix(REGISTRY_PREFIX) {
            reference::validate_reference(remote)?;
            let (digest, labels) = skopeo::remote_labels(remote).await?;
            ("registry", digest, labels)
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
            let (id, labels) = podman::image_labels(reference).await?.ok_or_else(|| {
                Error::ImageNotFound {
                reference: reference.to_string(),
                place: "in local storage",
                fix: "build it with build_image, or pass `docker://REF` to read it from a registry"
                    .into(),
            }
            })?;
            ("local", id, labels)
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
    })
}
