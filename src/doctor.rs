//! `mcpod doctor`: can this host build and run what mcpod needs, and if not,
//! what fixes it.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;

use crate::engine::process::Invocation;
use crate::engine::{buildah, podman};
use crate::session::container::UserMode;

/// The image the run probes use: busybox-static in a scratch image, built locally.
pub const PROBE_IMAGE: &str = "localhost/mcpod-probe:1";
const BUSYBOX: &str = "/bin/busybox";

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when the check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }
    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

const SETUP: &str = "run scripts/setup";

/// Check the host, in order: the tools, podman's mode, runtime, storage and
/// limits, the supervisor, then a container start and the way sessions map
/// users. Stops where a failed check leaves the later ones nothing to try.
pub async fn run() -> Vec<Check> {
    let mut checks = tool_versions().await;
    if !checks[0].ok {
        return checks;
    }
    let info = match podman::host_info().await {
        Ok(info) => info,
        Err(e) => {
            checks.push(Check::fail("podman info", e.to_string(), SETUP));
            return checks;
        }
    };
    checks.push(mode_check(&info));
    checks.push(runtime_check(&info));
    checks.push(storage_check(&info));
    checks.push(limits_check(&info));
    checks.push(supervisor_check());
    if let Err(e) = ensure_probe_image().await {
        checks.push(Check::fail(
            "probe image",
            e,
            format!("install busybox-static ({SETUP}), then retry"),
        ));
        return checks;
    }
    checks.push(container_start_check().await);
    // The way sessions map users, probed as they run it: on podman before 4.4
    // that is a fixed uid map, and a live `--userns=auto` probe could deadlock
    // this host's podman against a concurrent cleanup (podman#16062).
    let mode = UserMode::detect().await;
    if let Err(e) = mode.usable() {
        checks.push(Check::fail("session user", mode.describe(), e.to_string()));
        return checks;
    }
    checks.push(user_namespace_check(&mode, &info).await);
    checks.push(session_user_check(&mode));
    checks
}

/// Whether podman, buildah and skopeo run, with their versions (podman's
/// first: the checks after it need it).
async fn tool_versions() -> Vec<Check> {
    let mut checks = Vec::new();
    for (name, version) in [
        ("podman", crate::engine::version("podman").await),
        ("buildah", crate::engine::version("buildah").await),
        ("skopeo", crate::engine::version("skopeo").await),
    ] {
        checks.push(match version {
            Ok(v) => Check::pass(name, v),
            Err(e) => Check::fail(name, e.to_string(), SETUP),
        });
    }
    checks
}

/// How podman runs: rootless or root, cgroups, storage, runtime.
fn mode_check(info: &podman::HostInfo) -> Check {
    Check::pass(
        "mode",
        format!(
            "{}, cgroups {}, storage {}, runtime {}",
            if info.rootless { "rootless" } else { "root" },
            info.cgroups,
            info.storage,
            info.runtime
        ),
    )
}

/// Whether the OCI runtime podman is configured with is on PATH.
fn runtime_check(info: &podman::HostInfo) -> Check {
    match which(&info.runtime) {
        Some(path) => Check::pass("oci runtime", format!("{} ({path})", info.runtime)),
        None => Check::fail(
            "oci runtime",
            format!(
                "podman is configured with `{}`, which is not on PATH",
                info.runtime
            ),
            format!("install {} ({SETUP})", info.runtime),
        ),
    }
}

/// Whether sessions' memory, pids and cpu limits are enforced (said, never
/// failed: a lease still ends a session).
fn limits_check(info: &podman::HostInfo) -> Check {
    Check::pass(
        "limits",
        if info.enforces_limits() {
            "memory, pids and cpu limits are enforced".to_string()
        } else {
            "memory, pids and cpu limits are NOT enforced: rootless podman on cgroups v1 ignores them (each session's isolation says so; its lease still ends it); cgroups v2 with delegation enforces them".to_string()
        },
    )
}

/// Whether the supervisor binary could be written where sessions mount it.
fn supervisor_check() -> Check {
    match crate::image::supervised::binary() {
        Ok(path) => Check::pass("supervisor", path.display().to_string()),
        Err(e) => Check::fail(
            "supervisor",
            e.to_string(),
            "let mcpod write its state directory (MCPOD_STATE_DIR, else ~/.cache/mcpod)",
        ),
    }
}

/// A container as sessions start one: no network (rootless podman's
/// default network would need /dev/net/tun, which sessions never use).
async fn container_start_check() -> Check {
    match podman::run_probe(&["--network=none"], PROBE_IMAGE, &[BUSYBOX, "true"]).await {
        Ok((status, _)) if status.success() => {
            Check::pass("container start", "a container ran (--network=none)")
        }
        Ok((_, out)) => Check::fail(
            "container start",
            out.stderr_tail,
            "run scripts/setup: it detects crun on hybrid cgroups and ulimits above the hard limit, and writes the containers.conf override that fixes them",
        ),
        Err(e) => Check::fail("container start", e.to_string(), SETUP),
    }
}

/// A container run with the user flags of `mode`: container root must map
/// away from root (or, with no subordinate IDs, the container runs at all).
async fn user_namespace_check(mode: &UserMode, info: &podman::HostInfo) -> Check {
    let mut flags = mode.flags();
    flags.push("--network=none".into());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    match podman::run_probe(&flags, PROBE_IMAGE, &[BUSYBOX, "cat", "/proc/self/uid_map"]).await {
        Ok((status, out)) if status.success() && maps_root_away(&out.stdout, info.rootless) => {
            Check::pass(
                "user namespace",
                format!(
                    "{}: container root is {} uid {}",
                    mode.describe(),
                    if info.rootless {
                        "your namespace's"
                    } else {
                        "host"
                    },
                    out.stdout.split_whitespace().nth(1).unwrap_or("?")
                ),
            )
        }
        Ok((status, _)) if status.success() && *mode == UserMode::Nobody => {
            Check::pass("user namespace", "none: sessions run as --user 65534:65534")
        }
        Ok((_, out)) => Check::fail(
            "user namespace",
            format!("{} not available: {}", mode.describe(), out.stderr_tail),
            if info.rootless {
                "check your range in /etc/subuid and /etc/subgid (scripts/setup adds one), then `podman system migrate`"
            } else {
                "add subordinate IDs for the `containers` user to /etc/subuid and /etc/subgid (scripts/setup does); sessions fall back to a non-root --user"
            },
        ),
        Err(e) => Check::fail("user namespace", e.to_string(), SETUP),
    }
}

/// Which user sessions run as: a fixed `--user` without subordinate IDs
/// fails, with the fix.
fn session_user_check(mode: &UserMode) -> Check {
    match mode {
        UserMode::Nobody => Check::fail(
            "session user",
            "user=65534:65534 (no subordinate IDs for podman)",
            "run scripts/setup: it adds a `containers` range to /etc/subuid and /etc/subgid",
        ),
        UserMode::Map { .. } => Check::pass(
            "session user",
            format!(
                "{} (podman before 4.4: --userns=auto can deadlock, podman#16062)",
                mode.describe()
            ),
        ),
        UserMode::Auto | UserMode::Unavailable { .. } => {
            Check::pass("session user", mode.describe())
        }
    }
}

/// The storage driver: vfs works, but copies every layer whole.
fn storage_check(info: &podman::HostInfo) -> Check {
    if info.storage != "vfs" {
        return Check::pass("storage", info.storage.clone());
    }
    let conf = if info.rootless {
        "~/.config/containers/storage.conf"
    } else {
        "/etc/containers/storage.conf"
    };
    Check::pass(
        "storage",
        format!(
            "vfs: works, but every layer is a full copy (slow builds and launches); for overlay, install fuse-overlayfs or use a kernel that allows rootless overlay (5.13+), set `driver = \"overlay\"` in {conf}, and `podman system reset` (it removes your images)"
        ),
    )
}

/// Whether each engine other than the local one answers, with its podman
/// version and how its sessions would map users.
pub async fn engines(engines: &crate::engine::engines::Engines) -> Vec<Check> {
    let mut checks = Vec::new();
    for engine in engines.all().iter().filter(|e| !e.is_local()) {
        let name = format!("engine {}", engine.name);
        checks.push(match engine.version().await {
            Ok(version) => Check::pass(
                &name,
                format!(
                    "{} answers: podman {}.{}, sessions {}",
                    engine.podman.location(),
                    version.0,
                    version.1,
                    UserMode::remote(version).describe()
                ),
            ),
            Err(e) => Check::fail(
                &name,
                e.to_string(),
                "start the engine's podman service (`podman system service`), and check its URL and --engine-key",
            ),
        });
    }
    checks
}

/// True when a `/proc/self/uid_map` maps container uid 0 away from root
/// (and, rootless, from the user: 0 in the user's namespace is the user).
fn maps_root_away(uid_map: &str, _rootless: bool) -> bool {
    let mut fields = uid_map.split_whitespace();
    fields.next() == Some("0") && fields.next().is_some_and(|outer| outer != "0")
}

fn which(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// Build the probe image from the host's busybox-static if it is not there.
pub async fn ensure_probe_image() -> Result<(), String> {
    if buildah::inspect_image(PROBE_IMAGE)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(());
    }
    if !std::path::Path::new(BUSYBOX).is_file() {
        return Err(format!("{BUSYBOX} is missing"));
    }
    let quick = Duration::from_secs(60);
    let name = format!("mcpod-probe-{}", crate::engine::nonce());
    let steps: [Vec<&str>; 3] = [
        vec!["from", "--quiet", "--name", &name, "scratch"],
        vec!["copy", &name, BUSYBOX, BUSYBOX],
        vec!["commit", "--rm", "--quiet", &name, PROBE_IMAGE],
    ];
    for step in steps {
        if let Err(e) = Invocation::new("buildah")
            .args(step)
            .timeout(quick)
            .run()
            .await
        {
            buildah::remove_container(&name).await;
            return Err(e.to_string());
        }
    }
    Ok(())
}
