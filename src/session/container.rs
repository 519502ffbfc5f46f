//! The session container: hardened `podman run` flags, the owner labels the
//! sweep reads, start and removal.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::policy::Isolation;
use crate::engine::env::{ENV_FILE, EnvFile};

/// Container labels (on the container, not the image).
pub const SESSION_LABEL: &str = "io.mcpod.session";
pub const OWNER_PID_LABEL: &str = "io.mcpod.owner-pid";
pub const OWNER_START_LABEL: &str = "io.mcpod.owner-start";
pub const BOOT_ID_LABEL: &str = "io.mcpod.boot-id";
pub const LEASE_LABEL: &str = "io.mcpod.lease-until";
/// The host of the owning process (its machine ID), so an engine shared by
/// several hosts' mcpods is swept only by the owner's host.
pub const OWNER_HOST_LABEL: &str = "io.mcpod.owner-host";

pub use crate::engine::owner::Owner;

pub use crate::engine::userns::UserMode;

/// A session container: the supervisor as its PID 1, with everything
/// `podman run` needs.
pub struct Plan<'a> {
    pub session: &'a str,
    pub name: &'a str,
    pub image_id: &'a str,
    pub isolation: &'a Isolation,
    pub user: &'a UserMode,
    pub owner: &'a Owner,
    /// How the supervisor gets into the container.
    pub supervisor: Supervisor<'a>,
    /// Seconds podman's `--timeout` gives the container: the lease, plus the
    /// time a pooled session may wait before it is handed out.
    pub timeout_secs: u64,
}

/// Where a session's supervisor comes from, which also decides how its
/// stream travels.
#[derive(Clone, Copy, Debug)]
pub enum Supervisor<'a> {
    /// The local engine: the host's file, bind-mounted read-only; the stream
    /// is a socket podman hands in as descriptor 3.
    Mounted(&'a std::path::Path),
    /// Any other engine: already in the image (see `image::supervised`); the
    /// stream is `podman run -i`'s attached stdio.
    InImage,
}

/// A server's command, for `podman exec` (`mcpod connect`).
pub struct ServerCommand<'a> {
    pub argv: &'a [String],
    /// Its variables, which podman reads from the env-file pipe.
    pub env: &'a EnvFile,
    pub workdir: Option<&'a str>,
}

impl ServerCommand<'_> {
    fn flags(&self) -> Vec<OsString> {
        let mut a = Vec::new();
        if !self.env.is_empty() {
            a.push(format!("--env-file={ENV_FILE}").into());
        }
        if let Some(dir) = self.workdir {
            a.push("--workdir".into());
            a.push(dir.into());
        }
        a
    }
}

/// Where `podman run` writes the ID of the container `name`.
pub fn cidfile(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}.cid"))
}

/// Unix time `secs` from now.
pub fn from_now(secs: u64) -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        + secs
}

/// The full `podman run` argv of a session container: the supervisor is its
/// entrypoint and PID 1 (it reaps and forwards signals, so no `--init`).
pub fn run_args(plan: &Plan<'_>) -> Vec<OsString> {
    let isolation = plan.isolation;
    let lease_until = from_now(plan.timeout_secs);
    let mut a: Vec<String> = vec!["run".into()];
    match plan.supervisor {
        // The session stream: a socket mcpod holds the other end of, as the
        // container's descriptor 3 (no relay through podman and conmon), and
        // the hand-off socket as descriptor 4.
        Supervisor::Mounted(_) => a.push("--preserve-fds=2".into()),
        // A remote engine passes no descriptor: the stream is stdin and
        // stdout. podman 4.3 takes no empty --detach-keys; its default
        // (ctrl-p ctrl-q) detaches only when each key is a read of one byte
        // alone, and every multiplexer frame mcpod writes starts with a
        // 12-byte header written whole, so no frame can be taken for one.
        Supervisor::InImage => a.push("--interactive".into()),
    }
    a.extend([
        "--rm".into(),
        "--name".into(),
        plan.name.into(),
        "--pull=never".into(),
        format!("--label={SESSION_LABEL}={}", plan.session),
        format!("--label={OWNER_PID_LABEL}={}", plan.owner.pid),
        format!("--label={OWNER_START_LABEL}={}", plan.owner.start),
        format!("--label={BOOT_ID_LABEL}={}", plan.owner.boot_id),
        format!("--label={OWNER_HOST_LABEL}={}", plan.owner.host),
        format!("--label={LEASE_LABEL}={lease_until}"),
        format!(
            "--network={}",
            if isolation.network == "egress" {
                "bridge"
            } else {
                "none"
            }
        ),
        "--cap-drop=all".into(),
        "--security-opt=no-new-privileges".into(),
        "--read-only".into(),
        // podman copies the host's proxy variables into a container by default.
        "--http-proxy=false".into(),
        // conmon would also write every byte of the session stream (and the
        // supervisor's stderr) to a log file on disk: mcpod keeps the logs.
        "--log-driver=none".into(),
        format!("--pids-limit={}", isolation.pids_limit),
        format!("--memory={}m", isolation.memory_mb),
        format!("--cpus={}", isolation.cpus),
        format!("--timeout={}", plan.timeout_secs),
    ]);
    for (path, size) in &isolation.tmpfs {
        a.push(format!("--tmpfs={path}:rw,size={size},mode=1777"));
    }
    a.extend(plan.user.flags());
    for m in &isolation.mounts {
        let mut mode = if m.read_only { "ro" } else { "rw" }.to_string();
        if let Some(owner) = m.written_as.filter(|_| !m.read_only) {
            // To the session's root, the image's user (launch's `runs_as_root`).
            mode = format!("{mode},{}", owner.volume_option());
        }
        a.push(format!("--volume={}:{}:{mode}", m.source, m.target));
    }
    let supervisor = mcpod_supervisor::protocol::PATH_IN_CONTAINER;
    if let Supervisor::Mounted(path) = plan.supervisor {
        a.push(format!("--volume={}:{supervisor}:ro", path.display()));
    }
    a.push(format!("--entrypoint=[\"{supervisor}\"]"));
    let mut a: Vec<OsString> = a.into_iter().map(OsString::from).collect();
    if let Supervisor::Mounted(_) = plan.supervisor {
        a.push("--cidfile".into());
        a.push(cidfile(plan.name).into());
    }
    a.push(plan.image_id.into());
    a
}

/// The `podman exec -i` argv that starts `command` in a running container,
/// through the supervisor's `--wrap`, which runs it under the `connect`
/// filter the session's servers run under (see the supervisor's `wrap.rs`).
pub fn exec_args(container: &str, command: &ServerCommand<'_>) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["exec".into(), "-i".into()];
    a.extend(command.flags());
    a.push("--".into());
    a.push(container.into());
    a.push(mcpod_supervisor::protocol::PATH_IN_CONTAINER.into());
    a.push("--wrap".into());
    a.extend(command.argv.iter().map(OsString::from));
    a
}

/// The isolation as the container holds it: limits podman was asked for but
/// the supervisor does not see in its cgroup (a runtime or cgroup setup that
/// drops them silently) are reported as not enforced, with what was seen.
pub fn as_seen(mut isolation: Isolation, seen: &mcpod_supervisor::protocol::Limits) -> Isolation {
    if !isolation.limits_enforced {
        return isolation;
    }
    let memory = u64::from(isolation.memory_mb) * 1024 * 1024;
    let pids = u64::from(isolation.pids_limit);
    if seen.pids_max == Some(pids) && seen.memory_max == Some(memory) {
        return isolation;
    }
    let shown = |v: Option<u64>| v.map_or("no limit".to_string(), |n| n.to_string());
    isolation.limits_enforced = false;
    isolation.warnings.push(format!(
        "memory, pids and cpu limits are not enforced: podman was asked for pids {pids} and memory {memory} bytes, and the container's cgroup holds pids {} and memory {}",
        shown(seen.pids_max),
        shown(seen.memory_max)
    ));
    isolation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_the_cgroup_does_not_hold_are_reported_as_not_enforced() {
        use mcpod_supervisor::protocol::Limits;
        let policy = super::super::policy::Policy::default();
        let isolation = policy
            .grant(&Default::default(), None, "userns=auto".into())
            .expect("grant");
        let held = Limits {
            pids_max: Some(u64::from(isolation.pids_limit)),
            memory_max: Some(u64::from(isolation.memory_mb) * 1024 * 1024),
        };
        assert!(as_seen(isolation.clone(), &held).limits_enforced);
        let dropped = as_seen(
            isolation.clone(),
            &Limits {
                pids_max: Some(2048),
                memory_max: None,
            },
        );
        assert!(!dropped.limits_enforced);
        let warning = dropped.warnings.last().expect("a warning");
        assert!(
            warning.contains("pids 2048") && warning.contains("memory no limit"),
            "{warning}"
        );
    }
}
