//! podman: local image labels, versions and host facts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::process::Invocation;
use crate::{Error, Result};

const PROGRAM: &str = "podman";
const QUICK: Duration = Duration::from_secs(60);

/// The labels and ID of a local image; `Ok(None)` when it is not in local storage.
pub async fn image_labels(reference: &str) -> Result<Option<(String, BTreeMap<String, String>)>> {
    #[derive(Deserialize)]
    struct Inspect {
        #[serde(rename = "Id")]
        id: String,
        #[serde(rename = "Labels", default)]
        labels: Option<BTreeMap<String, String>>,
    }
    let inv = Invocation::new(PROGRAM)
        .args(["image", "inspect", "--", reference])
        .timeout(QUICK);
    let display = inv.display();
    let (status, out) = inv.status().await?;
    if !status.success() {
        if out.stderr_tail.contains("image not known") || out.stderr_tail.contains("no such") {
            return Ok(None);
        }
        return Err(Error::CommandFailed {
            command: display,
            status: format!("{status}"),
            stderr_tail: out.stderr_tail,
            hint: String::new(),
        });
    }
    let mut parsed: Vec<Inspect> =
        serde_json::from_str(&out.stdout).map_err(|e| Error::UnexpectedOutput {
            command: display.clone(),
            reason: e.to_string(),
        })?;
    let first = parsed.pop().ok_or_else(|| Error::UnexpectedOutput {
        command: display,
        reason: "empty result".into(),
    })?;
    Ok(Some((first.id, first.labels.unwrap_or_default())))
}

/// `podman --version`.
pub async fn version() -> Result<String> {
    let out = Invocation::new(PROGRAM)
        .arg("--version")
        .timeout(QUICK)
        .run()
        .await?;
    Ok(out.stdout.trim().to_string())
}

/// Facts from `podman info` that decide whether containers can run here.
#[derive(Clone, Debug, Default)]
pub struct HostInfo {
    pub runtime: String,
    pub cgroups: String,
    pub rootless: bool,
}

pub async fn host_info() -> Result<HostInfo> {
    let inv = Invocation::new(PROGRAM)
        .args([
            "info",
            "--format",
            "{{.Host.OCIRuntime.Name}}|{{.Host.CgroupsVersion}}|{{.Host.Security.Rootless}}",
        ])
        .timeout(QUICK);
    let out = inv.run().await?;
    let mut parts = out.stdout.trim().split('|');
    Ok(HostInfo {
        runtime: parts.next().unwrap_or_default().to_string(),
        cgroups: parts.next().unwrap_or_default().to_string(),
        rootless: parts.next() == Some("true"),
    })
}

/// Run `podman run --rm` with `args` after the image; the exit status and output.
pub async fn run_probe(
    run_flags: &[&str],
    image: &str,
    command: &[&str],
) -> Result<(std::process::ExitStatus, super::process::Output)> {
    Invocation::new(PROGRAM)
        .args(["run", "--rm", "--pull=never"])
        .args(run_flags.iter().copied())
        .arg(image)
        .args(command.iter().copied())
        .timeout(QUICK)
        .status()
        .await
}
