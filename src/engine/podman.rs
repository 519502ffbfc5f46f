//! podman: local image labels and commands, versions and host facts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::env;
use super::process::Invocation;
use crate::Result;

const PROGRAM: &str = "podman";
const QUICK: Duration = Duration::from_secs(120);

/// The labels and ID of a local image; `Ok(None)` when it is not in local storage.
pub async fn image_labels(reference: &str) -> Result<Option<(String, BTreeMap<String, String>)>> {
    #[derive(Deserialize)]
    struct Inspect {
        #[serde(rename = "Id")]
        id: String,
        #[serde(rename = "Labels", default)]
        labels: Option<BTreeMap<String, String>>,
    }
    let found: Option<Vec<Inspect>> = Invocation::new(PROGRAM)
        .args(["image", "inspect", "--", reference])
        .timeout(QUICK)
        .lookup(&["image not known", "no such"])
        .await?;
    let Some(first) = found.and_then(|mut all| all.pop()) else {
        return Ok(None);
    };
    Ok(Some((first.id, first.labels.unwrap_or_default())))
}

/// The argv a local image runs by default (its entrypoint, then its cmd);
/// `Ok(None)` when it is not in local storage.
pub async fn image_command(reference: &str) -> Result<Option<Vec<String>>> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "Entrypoint", default)]
        entrypoint: Option<Vec<String>>,
        #[serde(rename = "Cmd", default)]
        cmd: Option<Vec<String>>,
    }
    #[derive(Deserialize)]
    struct Inspect {
        #[serde(rename = "Config", default)]
        config: Option<Config>,
    }
    let found: Option<Vec<Inspect>> = Invocation::new(PROGRAM)
        .args(["image", "inspect", "--", reference])
        .timeout(QUICK)
        .lookup(&["image not known", "no such"])
        .await?;
    let Some(first) = found.and_then(|mut all| all.pop()) else {
        return Ok(None);
    };
    let config = first.config.unwrap_or(Config {
        entrypoint: None,
        cmd: None,
    });
    let mut argv = config.entrypoint.unwrap_or_default();
    argv.extend(config.cmd.unwrap_or_default());
    Ok(Some(argv))
}

/// podman's (major, minor) version.
pub async fn client_version() -> Result<(u32, u32)> {
    let out = Invocation::new(PROGRAM)
        .args(["version", "--format", "{{.Client.Version}}"])
        .timeout(Duration::from_secs(30))
        .run()
        .await?;
    let mut parts = out
        .stdout
        .trim()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
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

/// `podman run -d ...` (`args` from `run` on); the new container's ID.
pub async fn run_detached(args: Vec<std::ffi::OsString>) -> Result<String> {
    let out = Invocation::new(PROGRAM)
        .args(args)
        .timeout(QUICK)
        .run()
        .await?;
    Ok(out.stdout.trim().to_string())
}

/// Take the name `name` off its image, and nothing else: unlike `rmi`, the
/// image stays even when this was its last name, so a concurrent build whose
/// layer cache just picked the same image is not robbed of it. A name that is
/// not there is fine.
pub async fn untag(name: &str) -> Result<()> {
    Invocation::new(PROGRAM)
        .args(["untag", "--", name, name])
        .timeout(QUICK)
        .run_unless_absent(&["image not known"])
        .await
}

/// Remove containers at once, killing what runs in them; missing ones are fine.
pub async fn remove(containers: &[String]) -> Result<()> {
    if containers.is_empty() {
        return Ok(());
    }
    Invocation::new(PROGRAM)
        .args(["rm", "--force", "--ignore", "--time", "0", "--"])
        .args(containers.iter())
        .timeout(QUICK)
        .run()
        .await
        .map(drop)
}

/// A container as `podman ps` lists it.
#[derive(Clone, Debug, Deserialize)]
pub struct ContainerSummary {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Names", default)]
    pub names: Vec<String>,
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "State", default)]
    pub state: String,
    #[serde(rename = "Image", default)]
    pub image: String,
}

impl ContainerSummary {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key).map(String::as_str)
    }
}

/// Every container (running or not) that carries the label `key`.
pub async fn containers_with_label(key: &str) -> Result<Vec<ContainerSummary>> {
    Invocation::new(PROGRAM)
        .args(["ps", "--all", "--format", "json", "--filter"])
        .arg(format!("label={key}"))
        .timeout(QUICK)
        .json_list()
        .await
}

/// Start `podman ARGS...` (a session's `podman run --preserve-fds=1`) with
/// `stream` as its descriptor `at`, which podman hands into the container;
/// stdout and stderr piped, stdin empty. podman gets only the allow-listed
/// environment. Killing the returned child ends podman's side, not always
/// the process inside: close the stream, or remove the container.
pub fn spawn_with_stream(
    args: &[std::ffi::OsString],
    stream: std::os::fd::OwnedFd,
    at: std::os::fd::RawFd,
) -> Result<tokio::process::Child> {
    use std::os::fd::AsRawFd;
    let mut command = tokio::process::Command::new(PROGRAM);
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    super::process::pass_fd(&mut command, stream.as_raw_fd(), at);
    let spawned = spawn(command, args, None);
    // podman has its copy now (or never will).
    drop(stream);
    spawned
}

/// Run `podman ARGS...` on this process's own stdin, stdout and stderr; its
/// exit status. `env`, when given, is the env file ARGS name as
/// `--env-file` [`env::ENV_FILE`] (`mcpod connect`).
pub async fn run_inheriting(
    args: &[std::ffi::OsString],
    env: Option<&env::EnvFile>,
) -> Result<std::process::ExitStatus> {
    let mut child = spawn(tokio::process::Command::new(PROGRAM), args, env)?;
    child
        .wait()
        .await
        .map_err(|e| crate::Error::io("waiting for", PROGRAM, e))
}

fn spawn(
    mut command: tokio::process::Command,
    args: &[std::ffi::OsString],
    env: Option<&env::EnvFile>,
) -> Result<tokio::process::Child> {
    command.args(args).env_clear().envs(env::host_env());
    let pipe = env.map(|e| e.attach(&mut command)).transpose()?;
    let spawned = command.spawn();
    drop(pipe);
    spawned.map_err(|e| super::process::spawn_error(PROGRAM, e))
}

/// A container as `podman container inspect` shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct ContainerDetails {
    /// The image ID.
    #[serde(rename = "Image")]
    pub image: String,
    #[serde(rename = "Config")]
    pub config: ContainerConfig,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// The container `name`; `Ok(None)` when there is none.
pub async fn container(name: &str) -> Result<Option<ContainerDetails>> {
    let found: Option<Vec<ContainerDetails>> = Invocation::new(PROGRAM)
        .args(["container", "inspect", "--", name])
        .timeout(QUICK)
        .lookup(&["no such container", "no such object"])
        .await?;
    Ok(found.and_then(|mut all| all.pop()))
}
