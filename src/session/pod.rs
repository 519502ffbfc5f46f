//! A session as a Kubernetes Pod: the manifest of what a launch would start,
//! granted exactly as the launch would be, in a Pod that meets the
//! restricted Pod Security Standard; and [`Sessions::play`], which runs it
//! under the local podman's `kube play` (the stand-in here for a cluster) and
//! brings its servers up over the session stream.
//!
//! What maps to what (a session's podman flags → the Pod):
//!
//! - `--read-only`, `--cap-drop=all`, `no-new-privileges` → the container's
//!   `securityContext` (`readOnlyRootFilesystem`, `capabilities.drop: [ALL]`,
//!   `allowPrivilegeEscalation: false`), with `runAsNonRoot`, seccomp
//!   `RuntimeDefault` and a fixed non-root uid and gid (65534, `nobody`:
//!   restricted admission needs a uid it can check before the image runs).
//! - `--tmpfs PATH:size=N` → an `emptyDir` of `medium: Memory` with `sizeLimit`.
//! - `--memory`, `--cpus` → `resources`, limits and requests alike (the
//!   `Guaranteed` class); `ephemeral-storage` bounds what the node keeps of
//!   the container (its log: a cluster logs what the supervisor writes).
//!   `--pids-limit` has no Pod field (it is the kubelet's `podPidsLimit`).
//! - `--timeout` (the lease) → `activeDeadlineSeconds`, and the supervisor's
//!   own lease, sent over the stream as for any session.
//! - the supervisor bind-mounted → the supervised image (the supervisor at
//!   its path in the image, see `image::supervised`), as `command`.
//! - the stream on descriptor 3 → `stdin: true`: the stream is the
//!   container's stdin and stdout, reached by the API's attach.
//! - `--network none` → nothing in a Pod spec: a Pod always has a network
//!   namespace with the cluster's network in it. The manifest comes with a
//!   NetworkPolicy that denies the Pod all ingress and egress (granted
//!   egress goes over the session stream, not the Pod's network), which
//!   holds where the cluster's network plugin enforces NetworkPolicy.
//! - host mounts → refused: a Pod cannot mount the operator's host paths.
//! - server env values → never in the manifest: they travel over the stream
//!   when the servers are started, as they do for every session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::container::{self, Owner};
use super::recipe::{Recipe, Resolved};
use super::stream::SessionStream;
use super::{Isolation, LaunchInput, Sessions};
use crate::engine::kube;
use crate::image::{self, Progress};
use crate::labels::ServerSpec;
use crate::logging::ring::LogRing;
use crate::proxy::Child;
use crate::{Error, Result};

/// The uid and gid a Pod's processes run as: `nobody`, not root, and a number
/// (restricted admission cannot check a user name).
pub const POD_USER: u64 = 65534;

/// The name of the session's container in its Pod.
pub const CONTAINER: &str = "session";

/// Pod labels: who made it, and which session it is (the NetworkPolicy
/// selects the Pod by the second).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const SESSION_LABEL: &str = "io.mcpod/session";

/// What the node may keep of the container: its log (a read-only root and
/// memory-backed emptyDirs leave nothing else on the node's disk). Above
/// the kubelet's default log rotation (5 files of 10 MiB).
pub const EPHEMERAL_STORAGE: &str = "128Mi";

/// A session as a Pod. Its `Debug` and its serialization leave out the
/// servers' env values.
#[derive(Clone, Serialize)]
pub struct Pod {
    pub session: String,
    /// `mcpod-<session>`: the Pod's name (and the NetworkPolicy's).
    pub name: String,
    /// The image the Pod runs, as the manifest names it: the supervised
    /// image in the operator's registry (`REPO@sha256:…`), else its local tag.
    pub image: String,
    /// The image the launch named, and its ID (without the supervisor).
    pub launched_image: String,
    pub launched_image_id: String,
    /// The Pod.
    pub manifest: Value,
    /// The NetworkPolicy that stands for `--network none` (none when the
    /// session was granted the network).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<Value>,
    /// The servers mcpod starts over the stream once the Pod runs: their
    /// argv and the names of their variables (values never leave mcpod but
    /// over the stream).
    pub servers: BTreeMap<String, PodServer>,
    /// What the session is granted, as a launch reports it (`user` says
    /// the Pod's).
    pub isolation: Isolation,
    pub warnings: Vec<String>,
    /// Not serialized: what the servers are started with.
    #[serde(skip)]
    specs: BTreeMap<String, ServerSpec>,
    #[serde(skip)]
    envs: BTreeMap<String, BTreeMap<String, String>>,
}

/// One server of a Pod's session.
#[derive(Clone, Debug, Serialize)]
pub struct PodServer {
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// The names of the variables it is started with.
    pub env: Vec<String>,
}

impl std::fmt::Debug for Pod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pod")
            .field("session", &self.session)
            .field("image", &self.image)
            .field("servers", &self.servers)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

impl Pod {
    /// The manifest as YAML documents: the Pod, then the NetworkPolicy, each
    /// as JSON (YAML is a superset of JSON; `kubectl apply -f` and
    /// `podman kube play` read it).
    pub fn documents(&self) -> String {
        let mut text = String::new();
        for doc in std::iter::once(&self.manifest).chain(self.network_policy.as_ref()) {
            if !text.is_empty() {
                text.push_str("---\n");
            }
            text.push_str(&serde_json::to_string_pretty(doc).unwrap_or_default());
            text.push('\n');
        }
        text
    }

    /// The name of the session's container under `podman kube play`.
    pub fn podman_container(&self) -> String {
        format!("{}-{CONTAINER}", self.name)
    }
}

/// How the cluster gets the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull {
    /// From the operator's registry, by digest, when the node lacks it.
    IfNotPresent,
    /// Only a node that shares this host's storage has it.
    Never,
}

impl Pull {
    fn as_str(self) -> &'static str {
        match self {
            Pull::IfNotPresent => "IfNotPresent",
            Pull::Never => "Never",
        }
    }
}

/// Everything the manifest is made of.
pub struct Manifest<'a> {
    pub session: &'a str,
    pub image: &'a str,
    pub pull: Pull,
    pub isolation: &'a Isolation,
    pub owner: &'a Owner,
}

/// The Pod of a session (pure: the same input, the same manifest).
pub fn render(m: &Manifest<'_>) -> Result<Value> {
    let isolation = m.isolation;
    let name = format!("mcpod-{}", m.session);
    // Each value at most 63 characters: podman's `kube play` (4.3) refuses
    // longer annotation values, as if they were labels. The image is in the
    // spec; what was asked for is in the Pod's report.
    let annotations = BTreeMap::from([
        ("io.mcpod/owner-pid".to_string(), m.owner.pid.to_string()),
        ("io.mcpod/owner-start".to_string(), m.owner.start.clone()),
        ("io.mcpod/boot-id".to_string(), m.owner.boot_id.clone()),
        ("io.mcpod/owner-host".to_string(), m.owner.host.clone()),
        ("io.mcpod/network".to_string(), isolation.network.clone()),
    ]);
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, (path, size)) in isolation.tmpfs.iter().enumerate() {
        // Unique per session: podman's `kube play` makes an emptyDir a
        // volume named as it is, which two Pods would otherwise share.
        let volume = volume_name(m.session, i, path);
        volumes.push(json!({
            "name": volume,
            "emptyDir": {"medium": "Memory", "sizeLimit": quantity(size)?},
        }));
        mounts.push(json!({"name": volume, "mountPath": path}));
    }
    let resources = json!({
        "memory": format!("{}Mi", isolation.memory_mb),
        "cpu": format!("{}m", millicores(isolation.cpus)),
        "ephemeral-storage": EPHEMERAL_STORAGE,
    });
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": labels(m.session),
            "annotations": annotations,
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": isolation.lease_secs,
            "terminationGracePeriodSeconds": 5,
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "hostNetwork": false,
            "hostPID": false,
            "hostIPC": false,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": POD_USER,
                "runAsGroup": POD_USER,
                "fsGroup": POD_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [{
                "name": CONTAINER,
                "image": m.image,
                "imagePullPolicy": m.pull.as_str(),
                "command": [mcpod_supervisor::protocol::PATH_IN_CONTAINER],
                "stdin": true,
                "stdinOnce": false,
                "tty": false,
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "privileged": false,
                    "readOnlyRootFilesystem": true,
                    "runAsNonRoot": true,
                    "capabilities": {"drop": ["ALL"]},
                },
                "resources": {"limits": resources, "requests": resources},
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    }))
}

/// The NetworkPolicy that stands for `--network none`: no ingress and no
/// egress for the session's Pod.
pub fn network_policy(session: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": format!("mcpod-{session}"), "labels": labels(session)},
        "spec": {
            "podSelector": {"matchLabels": {SESSION_LABEL: session}},
            "policyTypes": ["Ingress", "Egress"],
        },
    })
}

fn labels(session: &str) -> Value {
    json!({MANAGED_BY_LABEL: "mcpod", SESSION_LABEL: session})
}

/// An emptyDir's name: a DNS label (a-z, 0-9, `-`, at most 63), unique to
/// the session.
fn volume_name(session: &str, i: usize, path: &str) -> String {
    let slug: String = path
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("{session}-{i}-{}", slug.trim_matches('-'));
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// A podman size (`64m`, `1g`, `512k`, bytes) as a Kubernetes quantity
/// (`64Mi`, …): `64m` would mean 0.064 to Kubernetes.
fn quantity(size: &str) -> Result<String> {
    let s = size.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let suffix = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => "",
        "k" | "kb" => "Ki",
        "m" | "mb" => "Mi",
        "g" | "gb" => "Gi",
        _ => "?",
    };
    if digits.is_empty() || suffix == "?" {
        return Err(Error::invalid(
            "tmpfs size",
            size,
            "it is not a number with an optional k, m or g",
            "give a size such as 64m",
        ));
    }
    Ok(format!("{digits}{suffix}"))
}

/// CPUs as whole millicores, at least one.
fn millicores(cpus: f64) -> u64 {
    ((cpus * 1000.0).round() as u64).max(1)
}

impl Sessions {
    /// The Pod a launch of `input` would be: resolved, checked and granted
    /// as [`Sessions::launch`] would (the policy, the env names, the
    /// overrides), with the image it runs made ready: pushed to the
    /// operator's registry when one is set, else tagged here.
    pub async fn pod(
        &self,
        mut input: LaunchInput,
        progress: Progress,
        cancel: CancellationToken,
    ) -> Result<Pod> {
        refuse_for_a_pod(&input)?;
        self.provision_for(&mut input, &progress, &cancel).await?;
        if input.image.is_empty() {
            return Err(Error::invalid(
                "image",
                "",
                "no image was given",
                "give `image` (a tag, a name, an ID, or a package reference) or `provision`",
            ));
        }
        let resolved = Resolved::from(image::inspect_labels(&input.image).await?);
        let recipe = self.recipe(&input, &resolved, self.engines.local()).await?;
        let mut warnings = recipe.warnings.clone();
        let (image, pull) = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Error::Cancelled { what: "pod".into() }),
            made = self.pod_image(&recipe, &progress) => made?,
        };
        if pull == Pull::Never {
            warnings.push(format!(
                "no registry is set (--registry), so the manifest names {image}, which is only in this host's storage (imagePullPolicy Never): only an engine that shares this storage can run it"
            ));
        }
        let session = format!("s{}", &crate::engine::nonce()[..5]);
        let mut isolation = recipe.isolation.clone();
        isolation.user = format!("runAsUser={POD_USER} runAsGroup={POD_USER}");
        warnings.push(format!(
            "a Pod spec has no process limit: the session's limit of {} processes is not in the manifest (the node's kubelet podPidsLimit applies)",
            isolation.pids_limit
        ));
        if isolation.network == "egress" {
            warnings.push("the session is granted the network: the Pod gets the cluster's, with no NetworkPolicy".into());
        }
        let manifest = render(&Manifest {
            session: &session,
            image: &image,
            pull,
            isolation: &isolation,
            owner: &self.owner,
        })?;
        let servers = pod_servers(&recipe);
        Ok(Pod {
            name: format!("mcpod-{session}"),
            network_policy: (isolation.network != "egress").then(|| network_policy(&session)),
            session,
            image,
            launched_image: recipe.image.clone(),
            launched_image_id: recipe.image_id.clone(),
            manifest,
            servers,
            isolation,
            warnings,
            specs: recipe.chosen.clone(),
            envs: recipe.envs.clone(),
        })
    }

    /// The image a Pod of `recipe` runs, with the supervisor added, and how
    /// the cluster gets it: pushed to the operator's registry when one is
    /// set, else tagged in this host's storage only.
    async fn pod_image(&self, recipe: &Recipe, progress: &Progress) -> Result<(String, Pull)> {
        match self.shipper.registry() {
            Some(registry) => {
                (progress)(format!(
                    "pushing {} with the supervisor to {}",
                    recipe.image,
                    registry.prefix()
                ));
                Ok((
                    self.shipper.publish(&recipe.image_id).await?,
                    Pull::IfNotPresent,
                ))
            }
            None => {
                (progress)(format!("adding the supervisor to {}", recipe.image));
                let (tag, _) = self.shipper.supervised(&recipe.image_id).await?;
                Ok((tag, Pull::Never))
            }
        }
    }

    /// Run `pod` under the local podman (`podman kube play`) and start its
    /// servers over the session stream, each with its MCP handshake. The
    /// Pod stays until [`Played::remove`] (or its lease ends it).
    pub async fn play(&self, pod: &Pod) -> Result<Played> {
        kube::play(&pod.documents(), pod.isolation.network != "egress").await?;
        match self.play_started(pod).await {
            Ok(played) => Ok(played),
            Err(e) => {
                let _ = kube::remove_pod(&pod.name).await;
                Err(e)
            }
        }
    }

    async fn play_started(&self, pod: &Pod) -> Result<Played> {
        let container = pod.podman_container();
        let attached = kube::start_piped(&container)?;
        let log = Arc::new(LogRing::new(200));
        for pipe in attached.output {
            tokio::spawn(super::stream::copy_log(pipe, log.clone()));
        }
        let mut process = attached.process;
        let mut stream = attached.stream;
        let started = tokio::time::timeout(Duration::from_secs(120), process.wait()).await;
        let status = match started {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(Error::io("waiting for", "podman start", e)),
            Err(_) => {
                return Err(Error::Timeout {
                    command: format!("podman start {container}"),
                    secs: 120,
                });
            }
        };
        if !status.success() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(Error::CommandFailed {
                command: format!("podman start {container}"),
                status: status.to_string(),
                stderr_tail: log.tail_text(20),
                hint: String::new(),
            });
        }
        // What came before mcpod speaks is no answer to anything: podman's
        // own line (the container's name) and whatever the supervisor wrote
        // unasked (yamux's first RTT ping). An attach to a running Pod
        // misses the same bytes: they went to the container's log.
        let skipped = drain(&mut stream).await;
        let lease_until = container::from_now(pod.isolation.lease_secs);
        let setup = self.setup(&pod.session, &pod.isolation, lease_until);
        let deadline = Duration::from_secs(self.policy.handshake_secs);
        let stream = SessionStream::over(stream, setup, deadline)
            .await
            .map_err(|reason| Error::UnexpectedOutput {
                command: format!("the supervisor of Pod {}", pod.name),
                reason: format!("{reason}; its stderr ends: {}", log.tail_text(20)),
            })?;
        let stream = Arc::new(stream);
        let quiet: crate::image::Progress = Arc::new(|_| {});
        let servers = self
            .start_servers(
                &pod.session,
                &stream,
                &pod.specs,
                &pod.envs,
                &pod.isolation,
                &quiet,
            )
            .await;
        Ok(Played {
            name: pod.name.clone(),
            container,
            lease_until,
            stream,
            servers,
            log,
            skipped,
        })
    }
}

/// What a launch may ask that a Pod cannot have: host mounts, and an
/// engine of mcpod's.
fn refuse_for_a_pod(input: &LaunchInput) -> Result<()> {
    if let Some(mount) = input.mounts.first() {
        return Err(Error::invalid(
            "mounts",
            &mount.source,
            "a Pod cannot mount the operator's host paths (the node it lands on is not this host, and the restricted standard forbids hostPath volumes)",
            "leave out the mounts (a server's writable paths become emptyDirs), or launch the session here with launch_session",
        ));
    }
    if let Some(engine) = &input.engine {
        return Err(Error::invalid(
            "engine",
            engine,
            "a Pod runs where the cluster places it, on no engine of mcpod's",
            "leave out `engine`",
        ));
    }
    Ok(())
}

/// The servers of `recipe` as a Pod shows them: each one's argv and the
/// names of its variables (never their values).
fn pod_servers(recipe: &Recipe) -> BTreeMap<String, PodServer> {
    recipe
        .chosen
        .iter()
        .map(|(name, spec)| {
            let env = recipe
                .envs
                .get(name)
                .map(|e| e.keys().cloned().collect())
                .unwrap_or_default();
            let server = PodServer {
                command: spec.command.clone(),
                workdir: spec.workdir.clone(),
                env,
            };
            (name.clone(), server)
        })
        .collect()
}

/// A Pod running under the local podman, and its servers.
pub struct Played {
    /// The Pod's name.
    pub name: String,
    /// The session container's name under podman.
    pub container: String,
    pub lease_until: u64,
    pub stream: Arc<SessionStream>,
    pub servers: BTreeMap<String, Arc<Child>>,
    /// The supervisor's and podman's stderr.
    pub log: Arc<LogRing>,
    /// Bytes that came before mcpod spoke, dropped: podman's line and what
    /// the supervisor wrote unasked.
    pub skipped: usize,
}

impl Played {
    /// Stop the servers (the MCP stdio shutdown), end the stream, and remove
    /// the Pod with its containers and volumes.
    pub async fn remove(self) -> Result<()> {
        for child in self.servers.values() {
            child.shut_down(Duration::from_secs(2)).await;
        }
        self.stream.close(Duration::from_secs(2)).await;
        kube::remove_pod(&self.name).await
    }
}

/// Read and drop what is waiting on `stream` until it has been quiet for a
/// moment (at most 64 KiB: it is a line and a frame).
async fn drain(stream: &mut Box<dyn crate::engine::podman::Stream>) -> usize {
    let mut buf = [0u8; 4096];
    let mut dropped = 0;
    while dropped < 64 * 1024 {
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => dropped += n,
            _ => break,
        }
    }
    tracing::debug!("dropped {dropped} bytes written before the session stream began");
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isolation() -> Isolation {
        let label = crate::labels::Requests {
            writable_paths: vec!["/var/cache/app".into()],
            ..Default::default()
        };
        crate::session::Policy::default()
            .grant(&Default::default(), Some(&label), "u".into())
            .expect("grant")
    }

    fn owner() -> Owner {
        Owner {
            pid: 42,
            start: "123".into(),
            boot_id: "b".into(),
            host: "h".into(),
        }
    }

    fn manifest(isolation: &Isolation) -> Value {
        render(&Manifest {
            session: "sab12c",
            image: "localhost/mcpod-session:0123456789abcdef",
            pull: Pull::Never,
            isolation,
            owner: &owner(),
        })
        .expect("renders")
    }

    /// A label key (an optional DNS-subdomain prefix and `/`, then a name of
    /// at most 63) or value (at most 63), as Kubernetes checks them.
    fn label_ok(s: &str, key: bool) -> bool {
        let name_ok = |n: &str| {
            n.len() <= 63
                && (n.is_empty() && !key
                    || n.starts_with(|c: char| c.is_ascii_alphanumeric())
                        && n.ends_with(|c: char| c.is_ascii_alphanumeric())
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        };
        match s.split_once('/') {
            Some((prefix, name)) if key => {
                prefix.len() <= 253
                    && prefix.split('.').all(|p| {
                        !p.is_empty()
                            && p.chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    })
                    && name_ok(name)
            }
            _ => name_ok(s),
        }
    }

    #[test]
    fn the_manifest_is_restricted_and_maps_the_isolation() {
        let iso = isolation();
        let pod = manifest(&iso);
        let spec = &pod["spec"];
        assert_eq!(pod["metadata"]["name"], "mcpod-sab12c");
        assert_eq!(spec["automountServiceAccountToken"], false);
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
        assert_eq!(spec["securityContext"]["runAsUser"], 65534);
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(spec["activeDeadlineSeconds"], iso.lease_secs);
        let c = &spec["containers"][0];
        assert_eq!(c["command"], json!(["/.mcpod/supervisor"]));
        assert_eq!(
            (
                c["stdin"].as_bool(),
                c["stdinOnce"].as_bool(),
                c["tty"].as_bool()
            ),
            (Some(true), Some(false), Some(false))
        );
        assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
        assert_eq!(c["resources"]["limits"]["cpu"], "1000m");
        assert_eq!(c["resources"]["limits"], c["resources"]["requests"]);
        // Every tmpfs an emptyDir in memory, of its size in Kubernetes' units.
        let volumes = spec["volumes"].as_array().expect("volumes");
        assert_eq!(volumes.len(), iso.tmpfs.len());
        for (path, size) in &iso.tmpfs {
            let mount = c["volumeMounts"]
                .as_array()
                .expect("mounts")
                .iter()
                .find(|m| m["mountPath"] == path.as_str())
                .unwrap_or_else(|| panic!("{path} is mounted"));
            let volume = volumes
                .iter()
                .find(|v| v["name"] == mount["name"])
                .expect("its volume");
            assert_eq!(volume["emptyDir"]["medium"], "Memory");
            assert_eq!(
                volume["emptyDir"]["sizeLimit"],
                size.replace('m', "Mi").as_str()
            );
            let name = volume["name"].as_str().expect("name");
            assert!(
                name.starts_with("sab12c-") && label_ok(name, false),
                "{name}"
            );
        }
        for (meta, key) in [("labels", true), ("annotations", true)] {
            for (k, v) in pod["metadata"][meta].as_object().expect(meta) {
                assert!(label_ok(k, key), "{meta} key {k}");
                let v = v.as_str().expect("a string");
                if meta == "labels" {
                    assert!(label_ok(v, false), "{k}={v}");
                }
                assert!(v.len() <= 63, "podman refuses a longer value: {k}={v}");
            }
        }
        let policy = network_policy("sab12c");
        assert_eq!(
            policy["spec"]["podSelector"]["matchLabels"],
            json!({"io.mcpod/session": "sab12c"})
        );
        assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert!(policy["spec"].get("egress").is_none());
    }

    #[test]
    fn sizes_and_cpus_in_kubernetes_units() {
        assert_eq!(quantity("64m").expect("64m"), "64Mi");
        assert_eq!(quantity("1G").expect("1G"), "1Gi");
        assert_eq!(quantity("512k").expect("512k"), "512Ki");
        assert_eq!(quantity("4096").expect("bytes"), "4096");
        for bad in ["", "m", "64x", "1.5g", "-1m"] {
            assert!(quantity(bad).is_err(), "{bad}");
        }
        assert_eq!(millicores(1.0), 1000);
        assert_eq!(millicores(0.25), 250);
        assert_eq!(millicores(0.0001), 1);
        assert_eq!(
            volume_name("s12345", 0, "/var/cache/My App/"),
            "s12345-0-var-cache-my-app"
        );
        assert!(volume_name("s12345", 1, &"/x".repeat(80)).len() <= 63);
    }
}
