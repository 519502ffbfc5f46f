//! Pods on the local podman: `podman kube play` of a session's Pod manifest,
//! the stand-in here for a Kubernetes API (no cluster is reachable).
//!
//! A Kubernetes engine needs three calls, and each function here is one of
//! them, taking or giving what the session layer already works with (a
//! manifest, a [`super::podman::Attached`] byte stream to the supervisor, a
//! name), so an engine over a cluster's API fits beside this one:
//!
//! - [`play`] (`podman kube play --start=false`): `POST
//!   /api/v1/namespaces/NS/pods` (and the NetworkPolicy beside it).
//! - [`start_piped`] (`podman start`, the container's stdio on our pipes):
//!   `GET …/pods/NAME/attach?container=session&stdin=true&stdout=true&stderr=true`
//!   once the Pod runs (a WebSocket of `v5.channel.k8s.io`, stdin, stdout
//!   and stderr each a channel), wrapped as the same byte stream.
//! - [`remove_pod`] (`podman pod rm --force`): `DELETE …/pods/NAME`.
//!
//! Why `start` and not `attach` here: podman 4.3.1's `kube play` drops a
//! container's `stdin: true` (the container is made without an open stdin,
//! so its supervisor reads EOF at once and exits, and `podman attach` then
//! finds nothing running; `podman start --attach --interactive` carries its
//! stdout but not its stdin). Made with `--log-driver=passthrough` and
//! started by `podman start`, the container's stdin, stdout and stderr are
//! that `podman start`'s own, which are our pipes: no relay through conmon,
//! and nothing of the stream in a log.

use std::process::Stdio;
use std::time::Duration;

use super::podman::Attached;
use super::process::Invocation;
use crate::{Error, Result};

const PROGRAM: &str = "podman";

/// `podman kube play` of `manifest` (JSON or YAML documents; kinds podman
/// does not play, such as a NetworkPolicy, are skipped), created and not
/// started, each container's stdio passed through to whoever starts it.
/// `no_network`: the Pod gets no network namespace but loopback (podman's
/// `--network=none`, which a Pod spec cannot say).
pub async fn play(manifest: &str, no_network: bool) -> Result<()> {
    let mut inv = Invocation::new(PROGRAM).args([
        "kube",
        "play",
        "--start=false",
        "--log-driver=passthrough",
        "--quiet",
    ]);
    if no_network {
        inv = inv.arg("--network=none");
    }
    inv.arg("-")
        .stdin(manifest.as_bytes().to_vec())
        .timeout(Duration::from_secs(120))
        .run()
        .await
        .map(drop)
}

/// Start `container` (made by [`play`]) with this process's pipes as its
/// stdin, stdout and stderr. The process is `podman start`, which exits once
/// the container runs, after printing the container's name on the same
/// stdout the container writes to: what was written before the caller first
/// writes is not the container's answer to anything (see `session::pod`).
pub fn start_piped(container: &str) -> Result<Attached> {
    let mut command = super::process::host_command(PROGRAM);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut process = super::podman::spawn(
        command,
        &["start".into(), "--".into(), container.into()],
        None,
    )?;
    let (Some(stdin), Some(stdout), Some(stderr)) = (
        process.stdin.take(),
        process.stdout.take(),
        process.stderr.take(),
    ) else {
        return Err(Error::UnexpectedOutput {
            command: format!("podman start {container}"),
            reason: "its pipes could not be opened".into(),
        });
    };
    Ok(Attached {
        process,
        stream: Box::new(tokio::io::join(stdout, stdin)),
        output: vec![Box::new(stderr)],
        handoff: None,
    })
}

/// Remove the Pod `name` with its containers and the volumes of its
/// emptyDirs, killing what runs in it; a Pod that is not there is fine.
pub async fn remove_pod(name: &str) -> Result<()> {
    Invocation::new(PROGRAM)
        .args([
            "pod", "rm", "--force", "--ignore", "--time", "0", "--", name,
        ])
        .timeout(Duration::from_secs(120))
        .run()
        .await
        .map(drop)
}
