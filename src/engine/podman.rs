//! podman: local image labels and commands, versions and host facts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::env;
use super::process::Invocation;
use crate::{Error, Result};

const PROGRAM: &str = "podman";
const QUICK: Duration = Duration::from_secs(120);

/// The labels and ID of a local image; `Ok(None)` when it is not in local storage.
pub async fn image_labels(reference: &str) -> Result<Option<(String, BTreeMap<String, String>)>> {
    Ok(image_facts(reference).await?.map(|f| (f.id, f.labels)))
}

/// What one `podman image inspect` of a local image says that a launch uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageFacts {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    /// Its `USER` (empty: root).
    pub user: String,
}

/// The ID, labels and user of a local image, from one `podman image
/// inspect`; `Ok(None)` when it is not in local storage.
pub async fn image_facts(reference: &str) -> Result<Option<ImageFacts>> {
    #[derive(Deserialize)]
    struct Inspect {
        #[serde(rename = "Id")]
        id: String,
        #[serde(rename = "Labels", default)]
        labels: Option<BTreeMap<String, String>>,
        #[serde(rename = "Config", default)]
        config: Option<ImageRunConfig>,
    }
    let found: Option<Vec<Inspect>> = Invocation::new(PROGRAM)
        .args(["image", "inspect", "--", reference])
        .timeout(QUICK)
        .lookup(&["image not known", "no such"])
        .await?;
    let Some(first) = found.and_then(|mut all| all.pop()) else {
        return Ok(None);
    };
    Ok(Some(ImageFacts {
        id: first.id,
        labels: first.labels.unwrap_or_default(),
        user: first.config.and_then(|c| c.user).unwrap_or_default(),
    }))
}

/// The argv a local image runs by default (its entrypoint, then its cmd);
/// `Ok(None)` when it is not in local storage.
pub async fn image_command(reference: &str) -> Result<Option<Vec<String>>> {
    Ok(image_config(reference).await?.map(|config| {
        let mut argv = config.entrypoint.unwrap_or_default();
        argv.extend(config.cmd.unwrap_or_default());
        argv
    }))
}

/// The user a local image's processes run as (its `USER`; empty: root);
/// `Ok(None)` when it is not in local storage.
pub async fn image_user(reference: &str) -> Result<Option<String>> {
    Ok(image_config(reference)
        .await?
        .map(|config| config.user.unwrap_or_default()))
}

#[derive(Default, Deserialize)]
struct ImageRunConfig {
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
    #[serde(rename = "User", default)]
    user: Option<String>,
}

async fn image_config(reference: &str) -> Result<Option<ImageRunConfig>> {
    #[derive(Deserialize)]
    struct Inspect {
        #[serde(rename = "Config", default)]
        config: Option<ImageRunConfig>,
    }
    let found: Option<Vec<Inspect>> = Invocation::new(PROGRAM)
        .args(["image", "inspect", "--", reference])
        .timeout(QUICK)
        .lookup(&["image not known", "no such"])
        .await?;
    Ok(found
        .and_then(|mut all| all.pop())
        .map(|first| first.config.unwrap_or_default()))
}

/// podman's (major, minor) version.
pub async fn client_version() -> Result<(u32, u32)> {
    let out = Invocation::new(PROGRAM)
        .args(["version", "--format", "{{.Client.Version}}"])
        .timeout(Duration::from_secs(30))
        .run()
        .await?;
    Ok(parse_version(&out.stdout))
}

/// Facts from `podman info` that decide how containers run here.
#[derive(Clone, Debug, Default)]
pub struct HostInfo {
    /// The OCI runtime podman is configured with (`crun`, `runc`).
    pub runtime: String,
    /// `v1` or `v2`.
    pub cgroups: String,
    pub rootless: bool,
    /// The storage driver (`overlay`, `vfs`, …).
    pub storage: String,
}

impl HostInfo {
    /// Whether podman applies memory, pids and cpu limits: rootless podman
    /// on cgroups v1 ignores them (it says so on stderr, and runs the container).
    pub fn enforces_limits(&self) -> bool {
        !(self.rootless && self.cgroups == "v1")
    }
}

pub async fn host_info() -> Result<HostInfo> {
    let inv = Invocation::new(PROGRAM)
        .args([
            "info",
            "--format",
            "{{.Host.OCIRuntime.Name}}|{{.Host.CgroupsVersion}}|{{.Host.Security.Rootless}}|{{.Store.GraphDriverName}}",
        ])
        .timeout(QUICK);
    let out = inv.run().await?;
    let mut parts = out.stdout.trim().split('|');
    Ok(HostInfo {
        runtime: parts.next().unwrap_or_default().to_string(),
        cgroups: parts.next().unwrap_or_default().to_string(),
        rootless: parts.next() == Some("true"),
        storage: parts.next().unwrap_or_default().to_string(),
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

/// One podman engine: the local podman, or a remote one that podman's own
/// client reaches (`--url unix://…` or `ssh://…`, with `--identity` for ssh).
/// Every call about session containers goes through one of these, so what
/// is above it never knows where a session runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Podman {
    url: Option<String>,
    identity: Option<std::path::PathBuf>,
}

/// A session's byte stream to its supervisor, whichever way it travels.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// A started `podman run` of a session: the process, the stream to the
/// supervisor, and what podman (and, locally, the container) print besides.
pub struct Attached {
    pub process: tokio::process::Child,
    pub stream: Box<dyn Stream>,
    /// podman's stderr, and locally its stdout (the stream is elsewhere).
    pub output: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>>,
    /// Locally, mcpod's end of the hand-off socket (see the supervisor's
    /// `handoff.rs`), whose other end the container holds beside the stream.
    pub handoff: Option<std::os::fd::OwnedFd>,
}

impl Podman {
    /// The podman on this host.
    pub fn local() -> Podman {
        Podman::default()
    }

    /// A remote engine at `url` (`unix://PATH`, `ssh://USER@HOST[:PORT]/SOCKET`
    /// or `tcp://HOST:PORT`, as `podman --url` takes them).
    pub fn remote(url: &str, identity: Option<std::path::PathBuf>) -> Result<Podman> {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("unix" | "ssh" | "tcp")) || url.contains(char::is_whitespace) {
            return Err(Error::invalid(
                "engine URL",
                url,
                "it is not a podman remote URL",
                "give unix:///PATH/podman.sock, ssh://USER@HOST[:PORT]/PATH/podman.sock or tcp://HOST:PORT",
            ));
        }
        Ok(Podman {
            url: Some(url.to_string()),
            identity,
        })
    }

    pub fn is_local(&self) -> bool {
        self.url.is_none()
    }

    /// Where it is, for people: `local`, or its URL.
    pub fn location(&self) -> &str {
        self.url.as_deref().unwrap_or("local")
    }

    /// podman's global flags that pick this engine.
    pub fn global_args(&self) -> Vec<std::ffi::OsString> {
        let mut a = Vec::new();
        if let Some(url) = &self.url {
            a.push("--url".into());
            a.push(url.into());
        }
        if let Some(key) = &self.identity {
            a.push("--identity".into());
            a.push(key.into());
        }
        a
    }

    fn command(&self) -> Invocation {
        Invocation::new(PROGRAM)
            .args(self.global_args())
            .timeout(QUICK)
    }

    /// The engine's (major, minor) version, as its server reports it.
    pub async fn server_version(&self) -> Result<(u32, u32)> {
        let out = self
            .command()
            .args(["version", "--format", "{{.Server.Version}}"])
            .timeout(Duration::from_secs(30))
            .run()
            .await?;
        Ok(parse_version(&out.stdout))
    }

    /// Whether the engine answers at all (within `within`).
    pub async fn ping(&self, within: Duration) -> Result<()> {
        self.command()
            .args(["info", "--format", "{{.Host.OCIRuntime.Name}}"])
            .timeout(within)
            .run()
            .await
            .map(drop)
    }

    /// Whether the engine's storage holds the image `id`.
    pub async fn has_image(&self, id: &str) -> Result<bool> {
        let (status, out) = self
            .command()
            .args(["image", "exists", "--", id])
            .status()
            .await?;
        match status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(Error::CommandFailed {
                command: format!("podman {} image exists {id}", self.location()),
                status: format!("{status}"),
                stderr_tail: out.stderr_tail,
                hint: String::new(),
            }),
        }
    }

    /// Pull `reference` (a `REPO@sha256:…` mcpod pushed) into the engine.
    pub async fn pull(&self, reference: &str) -> Result<()> {
        self.command()
            .args(["pull", "--quiet", "--", reference])
            .timeout(Duration::from_secs(900))
            .run()
            .await
            .map(drop)
    }

    /// Every image in the engine's storage.
    pub async fn images(&self) -> Result<Vec<EngineImage>> {
        self.command()
            .args(["images", "--all", "--format", "json"])
            .json_list()
            .await
    }

    /// Remove the image `id` unless a container uses it; "not there" is fine.
    pub async fn remove_image(&self, id: &str) -> Result<()> {
        self.command()
            .args(["rmi", "--", id])
            .run_unless_absent(&["image not known"])
            .await
    }

    /// Remove containers at once, killing what runs in them; missing ones are fine.
    pub async fn remove(&self, containers: &[String]) -> Result<()> {
        if containers.is_empty() {
            return Ok(());
        }
        self.command()
            .args(["rm", "--force", "--ignore", "--time", "0", "--"])
            .args(containers.iter())
            .run()
            .await
            .map(drop)
    }

    /// Every container (running or not) that carries the label `key`.
    pub async fn containers_with_label(&self, key: &str) -> Result<Vec<ContainerSummary>> {
        self.command()
            .args(["ps", "--all", "--format", "json", "--filter"])
            .arg(format!("label={key}"))
            .json_list()
            .await
    }

    /// The container `name`; `Ok(None)` when there is none.
    pub async fn container(&self, name: &str) -> Result<Option<ContainerDetails>> {
        let found: Option<Vec<ContainerDetails>> = self
            .command()
            .args(["container", "inspect", "--", name])
            .lookup(&["no such container", "no such object"])
            .await?;
        Ok(found.and_then(|mut all| all.pop()))
    }

    /// Start `podman ARGS...` (a session's `podman run` of the supervisor)
    /// with its stream: locally a socket podman hands into the container as
    /// descriptor `fd` (`--preserve-fds`, no relay through conmon), and the
    /// hand-off socket as `handoff_at`; remotely
    /// podman's own stdin and stdout (`run -i`, attached over the engine's
    /// connection, which is the only way through to a remote container).
    /// podman gets only the allow-listed environment. Killing the child ends
    /// podman's side, not always the process inside: close the stream, or
    /// remove the container.
    pub fn start_attached(
        &self,
        args: &[std::ffi::OsString],
        fd: std::os::fd::RawFd,
        handoff_at: std::os::fd::RawFd,
    ) -> Result<Attached> {
        use std::os::fd::AsRawFd;
        let mut command = super::process::host_command(PROGRAM);
        command
            .args(self.global_args())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut output: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> = Vec::new();
        if self.is_local() {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair()
                .map_err(|e| Error::io("creating", "a session socket", e))?;
            let (handoff, handing) = mcpod_supervisor::handoff::pair()
                .map_err(|e| Error::io("creating", "a session's hand-off socket", e))?;
            command.stdin(std::process::Stdio::null());
            super::fd::pass_fds(
                &mut command,
                &[(theirs.as_raw_fd(), fd), (handing.as_raw_fd(), handoff_at)],
            );
            let mut process = spawn(command, args, None)?;
            // podman has its copies now (or never will).
            drop((theirs, handing));
            let ours = ours
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixStream::from_std(ours))
                .map_err(|e| Error::io("opening", "a session socket", e))?;
            output.extend(
                process
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            );
            output.extend(process.stderr.take().map(|p| Box::new(p) as _));
            return Ok(Attached {
                process,
                stream: Box::new(ours),
                output,
                handoff: Some(handoff),
            });
        }
        command.stdin(std::process::Stdio::piped());
        let mut process = spawn(command, args, None)?;
        let (Some(stdin), Some(stdout)) = (process.stdin.take(), process.stdout.take()) else {
            return Err(Error::UnexpectedOutput {
                command: "podman run".into(),
                reason: "its pipes could not be opened".into(),
            });
        };
        output.extend(process.stderr.take().map(|p| Box::new(p) as _));
        Ok(Attached {
            process,
            stream: Box::new(tokio::io::join(stdout, stdin)),
            output,
            handoff: None,
        })
    }

    /// Run `podman ARGS...` on this process's own stdin, stdout and stderr; its
    /// exit status. `env`, when given, is the env file ARGS name as
    /// `--env-file` [`env::ENV_FILE`] (`mcpod connect`).
    pub async fn run_inheriting(
        &self,
        args: &[std::ffi::OsString],
        env: Option<&env::EnvFile>,
    ) -> Result<std::process::ExitStatus> {
        let mut command = super::process::host_command(PROGRAM);
        command
            .args(self.global_args())
            .stdin(std::process::Stdio::inherit());
        let mut child = spawn(command, args, env)?;
        child
            .wait()
            .await
            .map_err(|e| Error::io("waiting for", PROGRAM, e))
    }
}

/// Spawn `podman ARGS...` as `command` (a [`super::process::host_command`],
/// its stdio already set), with `env` as its env file when given.
pub(super) fn spawn(
    mut command: tokio::process::Command,
    args: &[std::ffi::OsString],
    env: Option<&env::EnvFile>,
) -> Result<tokio::process::Child> {
    command.args(args);
    let pipe = env.map(|e| e.attach(&mut command)).transpose()?;
    let spawned = command.spawn();
    drop(pipe);
    spawned.map_err(|e| super::process::spawn_error(PROGRAM, e))
}

fn parse_version(text: &str) -> (u32, u32) {
    let mut parts = text
        .trim()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
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

/// An image as `podman images` lists it.
#[derive(Clone, Debug, Deserialize)]
pub struct EngineImage {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Names", default)]
    pub names: Option<Vec<String>>,
    /// Unix seconds.
    #[serde(rename = "Created", default)]
    pub created: i64,
    #[serde(rename = "Containers", default)]
    pub containers: u64,
}

/// A container as `podman container inspect` shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct ContainerDetails {
    #[serde(rename = "Id", default)]
    pub id: String,
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
