//! skopeo: labels of an image in a registry, without pulling it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::process::Invocation;
use crate::Result;

const PROGRAM: &str = "skopeo";
const REMOTE: Duration = Duration::from_secs(120);

/// The digest and labels of `docker://REF` (the only transport accepted).
pub async fn remote_labels(reference: &str) -> Result<(String, BTreeMap<String, String>)> {
    #[derive(Deserialize)]
    struct Inspect {
        #[serde(rename = "Digest", default)]
        digest: String,
        #[serde(rename = "Labels", default)]
        labels: Option<BTreeMap<String, String>>,
    }
    let parsed: Inspect = Invocation::new(PROGRAM)
        .args(["inspect", "--no-tags"])
        .arg(format!("docker://{reference}"))
        .timeout(REMOTE)
        .json()
        .await?;
    Ok((parsed.digest, parsed.labels.unwrap_or_default()))
}
