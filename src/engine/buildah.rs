//! buildah: list and inspect local images, build, stamp labels, remove.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::process::{Invocation, LineSink, parse_json};
use crate::{Error, Result};

const PROGRAM: &str = "buildah";
/// Quick metadata commands (list, inspect, config, rm).
const QUICK: Duration = Duration::from_secs(120);

/// An image in local storage.
#[derive(Clone, Debug, Deserialize)]
pub struct LocalImage {
    pub id: String,
    #[serde(default)]
    pub names: Option<Vec<String>>,
    /// Creation time, Unix seconds.
    #[serde(default)]
    pub created: i64,
}

impl LocalImage {
    pub fn names(&self) -> &[String] {
        self.names.as_deref().unwrap_or_default()
    }
}

/// The part of an image's configuration mcpod reads.
#[derive(Clone, Debug, Default)]
pub struct ImageConfig {
    pub id: String,
    pub labels: BTreeMap<String, String>,
}

/// Every image in local storage, with its full ID and names (one process).
pub async fn images() -> Result<Vec<LocalImage>> {
    let list = || {
        Invocation::new(PROGRAM)
            .args(["images", "--json", "--no-trunc"])
            .timeout(QUICK)
    };
    let display = list().display();
    // buildah fails the whole listing when another process removes an image
    // while it reads ("locating image with ID ...: image not known", or
    // "locating item named \"manifest\" ...: file does not exist"): retry.
    let mut attempt = 0;
    let out = loop {
        attempt += 1;
        match list().run().await {
            Err(Error::CommandFailed { stderr_tail, .. })
                if attempt < 4
                    && (stderr_tail.contains("image not known")
                        || stderr_tail.contains("locating item named")) =>
            {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            other => break other?,
        }
    };
    let mut images: Vec<LocalImage> = if out.stdout.trim().is_empty() {
        Vec::new()
    } else {
        parse_json::<Option<Vec<LocalImage>>>(&display, &out.stdout)?.unwrap_or_default()
    };
    for image in &mut images {
        if let Some(id) = image.id.strip_prefix("sha256:") {
            image.id = id.to_string();
        }
    }
    Ok(images)
}

/// The ID and labels of a local image; `Ok(None)` when it is not there.
pub async fn inspect_image(reference: &str) -> Result<Option<ImageConfig>> {
    #[derive(Deserialize)]
    struct Inspect {
        #[serde(rename = "FromImageID")]
        id: String,
        #[serde(rename = "OCIv1")]
        oci: Oci,
    }
    #[derive(Deserialize)]
    struct Oci {
        #[serde(default)]
        config: OciConfig,
    }
    #[derive(Default, Deserialize)]
    struct OciConfig {
        #[serde(rename = "Labels", default)]
        labels: Option<BTreeMap<String, String>>,
    }
    let parsed: Option<Inspect> = Invocation::new(PROGRAM)
        .args(["inspect", "--type", "image", "--", reference])
        .timeout(QUICK)
        .lookup(&["image not known", "not found"])
        .await?;
    let Some(parsed) = parsed else {
        return Ok(None);
    };
    Ok(Some(ImageConfig {
        id: parsed.id,
        labels: parsed.oci.config.labels.unwrap_or_default(),
    }))
}

/// What to build.
pub struct BuildRequest<'a> {
    pub containerfile: &'a Path,
    /// The ignore rules to apply, in place of any ignore file buildah would look for.
    pub ignorefile: &'a Path,
    pub context: &'a Path,
    pub tag: &'a str,
    pub build_args: &'a BTreeMap<String, String>,
    pub no_cache: bool,
    /// What RUN steps get (network, user namespace, capabilities, limits):
    /// `image::isolation`'s flags.
    pub run_flags: &'a [String],
    /// This process's `--default-mounts-file`, which buildah records in
    /// every working container it makes (see `image::leftovers`).
    pub marker: &'a Path,
}

/// `buildah build`, streaming its output lines to `on_line`.
pub async fn build(
    req: &BuildRequest<'_>,
    cancel: CancellationToken,
    on_line: LineSink,
) -> Result<()> {
    let on_line = std::sync::Arc::new(std::sync::Mutex::new(on_line));
    let attempt = || {
        let sink = on_line.clone();
        let mut inv = Invocation::new(PROGRAM)
            .arg("--default-mounts-file")
            .arg(req.marker)
            .args(["build", "--layers", "--pull=missing", "--force-rm"])
            .args(req.run_flags)
            .arg("-f")
            .arg(req.containerfile)
            .arg("--ignorefile")
            .arg(req.ignorefile)
            .args(["-t", req.tag]);
        for (k, v) in req.build_args {
            inv = inv.arg("--build-arg").arg(format!("{k}={v}"));
        }
        if req.no_cache {
            inv = inv.arg("--no-cache");
        }
        inv.arg("--")
            .arg(req.context)
            .cancel_on(cancel.clone())
            .on_line(Box::new(move |line| {
                if let Ok(mut f) = sink.lock() {
                    f(line)
                }
            }))
            .run()
    };
    match attempt().await {
        // Its layers are cached, so building again is cheap.
        Err(Error::CommandFailed { stderr_tail, .. }) if raced_a_removal(&stderr_tail) => {
            attempt().await.map(drop)
        }
        done => done.map(drop),
    }
}

/// Whether buildah failed because another process removed an image or a
/// layer while it worked (containers-storage has no lock across the whole
/// build): it commits and then cannot find what it committed, or loses the
/// layer its cache lookup was reading. Seen here under concurrent builds and
/// removals; the build did nothing wrong.
fn raced_a_removal(stderr: &str) -> bool {
    stderr.contains("locating just-written image")
        || (stderr.contains("checking if cached image exists")
            && stderr.contains("layer not known"))
}

/// Commit `from` with `labels` set as `to`: a metadata-only change.
/// The working container is removed on every path.
pub async fn stamp_labels(
    from: &str,
    labels: &BTreeMap<String, String>,
    to: &str,
    marker: &Path,
    cancel: CancellationToken,
) -> Result<()> {
    commit_changed(from, to, "stamp", marker, cancel, |name| {
        let mut config = Invocation::new(PROGRAM).arg("config");
        for (k, v) in labels {
            config = config.arg("--label").arg(format!("{k}={v}"));
        }
        config.arg(name)
    })
    .await
}

/// Commit `from` with the host file `file` added at `dest` as `to`: one
/// small layer. The working container is removed on every path.
pub async fn add_file(from: &str, file: &Path, dest: &str, to: &str, marker: &Path) -> Result<()> {
    commit_changed(from, to, "add", marker, CancellationToken::new(), |name| {
        Invocation::new(PROGRAM)
            .args(["copy", "--quiet", name])
            .arg(file)
            .arg(dest)
    })
    .await
}

/// `buildah from` `from`, the one change `change` makes to the working
/// container it names, and `commit` as `to`; the working container is
/// removed on every path (and carries `marker`, as a build's do).
async fn commit_changed(
    from: &str,
    to: &str,
    what: &str,
    marker: &Path,
    cancel: CancellationToken,
    change: impl FnOnce(&str) -> Invocation,
) -> Result<()> {
    let name = format!("mcpod-{what}-{}", super::nonce());
    Invocation::new(PROGRAM)
        .arg("--default-mounts-file")
        .arg(marker)
        .args([
            "from",
            "--pull=never",
            "--quiet",
            "--name",
            &name,
            "--",
            from,
        ])
        .timeout(QUICK)
        .cancel_on(cancel.clone())
        .run()
        .await?;
    let result = async {
        change(&name)
            .timeout(QUICK)
            .cancel_on(cancel.clone())
            .run()
            .await?;
        Invocation::new(PROGRAM)
            .args(["commit", "--rm", "--quiet", &name, to])
            .timeout(QUICK)
            .cancel_on(cancel)
            .run()
            .await
            .map(drop)
    }
    .await;
    if result.is_err() {
        remove_container(&name).await;
    }
    result
}

/// Remove a working container, ignoring "not there".
pub async fn remove_container(name: &str) {
    let _ = Invocation::new(PROGRAM)
        .args(["rm", name])
        .timeout(QUICK)
        .run()
        .await;
}

/// Remove an image name (the image goes with its last name); "not there" is fine.
pub async fn remove_image(reference: &str) -> Result<()> {
    Invocation::new(PROGRAM)
        .args(["rmi", "--", reference])
        .timeout(QUICK)
        .run_unless_absent(&["image not known"])
        .await
}

/// A buildah working container.
#[derive(Clone, Debug, Deserialize)]
pub struct WorkingContainer {
    pub id: String,
    #[serde(rename = "containername")]
    pub name: String,
    /// False for podman's containers, which `--all` lists too.
    #[serde(default)]
    pub builder: bool,
}

/// Every buildah working container (one process).
pub async fn containers() -> Result<Vec<WorkingContainer>> {
    // A container removed while buildah reads the list (a build or a
    // session ending at the same moment) fails the listing with "container
    // not known": the list is asked for again, a few times.
    let mut tries = 0;
    loop {
        // buildah prints `null` (or nothing) when there are none.
        let listed = Invocation::new(PROGRAM)
            .args(["containers", "--all", "--json"])
            .timeout(QUICK)
            .json_list()
            .await;
        match listed {
            Err(e) if tries < 5 && e.to_string().contains("container not known") => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 * tries)).await;
            }
            other => return other,
        }
    }
}

/// The `--default-mounts-file` a working container was made with, if any;
/// `Ok(None)` also when it is gone.
pub async fn container_marker(container: &str) -> Result<Option<std::path::PathBuf>> {
    #[derive(Deserialize)]
    struct Inspect {
        #[serde(rename = "DefaultMountsFilePath", default)]
        marker: String,
    }
    let found: Option<Inspect> = Invocation::new(PROGRAM)
        .args(["inspect", "--type", "container", "--", container])
        .timeout(QUICK)
        .lookup(&["container not known"])
        .await?;
    Ok(found
        .map(|f| f.marker)
        .filter(|m| !m.is_empty())
        .map(Into::into))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_removal_races_seen_here_are_told_apart_from_failures() {
        for seen in [
            r#"Error: locating just-written image "containers-storage:[overlay@/var/lib/containers/storage]localhost/x:tmp": image not known"#,
            "Error: checking if cached image exists from a previous build: getting top layer info: layer not known",
        ] {
            assert!(super::raced_a_removal(seen), "{seen}");
        }
        for failure in [
            "Error: building at STEP \"RUN false\": exit status 1",
            "Error: creating build container: image not known",
        ] {
            assert!(!super::raced_a_removal(failure), "{failure}");
        }
    }
}
