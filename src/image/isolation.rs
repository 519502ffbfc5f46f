//! What a build's RUN steps may reach: the flags `buildah build` gets besides
//! its inputs. RUN steps run the agent's commands, so they get what a
//! session gets where buildah can give it: no network unless the operator
//! allows it, a small capability set, memory, process and CPU limits, and
//! none of the host's proxy variables. Only the operator sets this (`mcpod
//! serve --build-network` and the session ceilings); no tool argument
//! reaches it.
//!
//! Not a user namespace: buildah 1.28 takes `--userns-uid-map` and
//! `--userns-gid-map` (it has no `--userns=auto`), and its RUN steps then do
//! run as an unprivileged host uid, but what they write is committed with
//! the host IDs (measured on this host's overlay storage: a file a step
//! chowns to 1000 is owned by 2147484647 in the image, and the directories
//! buildah makes by 2147483647, so the next step cannot write `/run`).
//! A RUN step is therefore uid 0 of the host's user namespace, with the
//! capabilities below, no network and its own mount and PID namespaces.

use std::sync::OnceLock;

use crate::{Error, Result};

/// The largest memory (MiB), processes and CPUs a container may have unless
/// the operator says otherwise: a session's ceilings, and a build's.
pub const CEILING_MEMORY_MB: u32 = 2048;
pub const CEILING_PROCESSES: u32 = 1024;
pub const CEILING_CPUS: f64 = 2.0;

/// The operator's settings for builds.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildPolicy {
    /// RUN steps get podman's default network (bridge, DNS, a default
    /// route); otherwise only a loopback interface.
    pub network: bool,
    /// Memory of a RUN step, MiB (and no swap beyond it).
    pub memory_mb: u32,
    /// Processes of a RUN step's user (`ulimit -u`): buildah 1.28 has no
    /// pids cgroup limit.
    pub processes: u32,
    pub cpus: f64,
}

impl Default for BuildPolicy {
    /// The default ceilings, and no network.
    fn default() -> Self {
        BuildPolicy {
            network: false,
            memory_mb: CEILING_MEMORY_MB,
            processes: CEILING_PROCESSES,
            cpus: CEILING_CPUS,
        }
    }
}

static POLICY: OnceLock<BuildPolicy> = OnceLock::new();

/// Set this process's build policy, once, before the first build (the
/// command line does). An error if a different one is already in force.
pub fn set_policy(policy: BuildPolicy) -> Result<()> {
    let set = POLICY.get_or_init(|| policy.clone());
    if *set == policy {
        return Ok(());
    }
    Err(Error::invalid(
        "build policy",
        format!("{policy:?}"),
        format!("this process already builds with {set:?}"),
        "set it once, at start",
    ))
}

/// This process's build policy (the default unless the command line set one).
pub fn policy() -> &'static BuildPolicy {
    POLICY.get_or_init(BuildPolicy::default)
}

/// The capabilities a RUN step keeps (buildah's default set without
/// SETPCAP, NET_BIND_SERVICE, SYS_CHROOT and SETFCAP). Each is needed by
/// something common, measured with buildah 1.28 on
/// localhost/mcpod-debian:bookworm: CHOWN (useradd), DAC_OVERRIDE (mkdir in
/// a directory root does not own), FOWNER (chmod of another user's file),
/// FSETID (chmod g+s keeps the bit on a group root is not in), SETUID and
/// SETGID (apt-get drops to `_apt`, `su`), KILL (stopping a process of
/// another user).
pub const RUN_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
];

/// `buildah build`'s flags for RUN steps under `policy`.
pub fn flags(policy: &BuildPolicy) -> Vec<String> {
    vec![
        format!(
            "--network={}",
            if policy.network { "private" } else { "none" }
        ),
        // buildah copies the host's proxy variables into RUN steps by
        // default, and a step can write them into the image.
        "--http-proxy=false".into(),
        "--cap-drop=all".into(),
        format!("--cap-add={}", RUN_CAPABILITIES.join(",")),
        format!("--memory={}m", policy.memory_mb),
        format!("--memory-swap={}m", policy.memory_mb),
        format!("--ulimit=nproc={0}:{0}", policy.processes),
        // buildah's own default, which any --ulimit replaces.
        "--ulimit=nofile=20000:20000".into(),
        "--cpu-period=100000".into(),
        format!(
            "--cpu-quota={}",
            ((policy.cpus * 100_000.0).round() as i64).max(1000)
        ),
    ]
}

/// The fix a failed RUN step's error carries when builds have no network.
pub fn offline_hint(policy: &BuildPolicy, stderr: &str) -> Option<String> {
    (!policy.network && stderr.contains("building at STEP \"RUN")).then(|| {
        "\nFix: if this RUN step needs the network: RUN steps have none (mcpod builds with \
--network=none). Put what it downloads in the build context and COPY it, or provision the package \
from npm or PyPI with provision_server; the operator can give builds the network with \
`mcpod serve --build-network`."
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_steps_get_no_network_and_few_capabilities_by_default() {
        let f = flags(&BuildPolicy::default());
        for expected in [
            "--network=none",
            "--http-proxy=false",
            "--cap-drop=all",
            "--cap-add=CHOWN,DAC_OVERRIDE,FOWNER,FSETID,KILL,SETGID,SETUID",
            "--memory=2048m",
            "--ulimit=nproc=1024:1024",
            "--cpu-quota=200000",
        ] {
            assert!(f.iter().any(|a| a == expected), "{expected} not in {f:?}");
        }
        let networked = BuildPolicy {
            network: true,
            ..BuildPolicy::default()
        };
        assert!(flags(&networked).contains(&"--network=private".to_string()));
    }

    #[test]
    fn only_a_failed_run_step_of_an_offline_build_gets_the_hint() {
        let failed = "Error: building at STEP \"RUN curl x\": exit status 6";
        let offline = BuildPolicy::default();
        assert!(offline_hint(&offline, failed).is_some_and(|h| h.contains("--build-network")));
        assert!(offline_hint(&offline, "Error: COPY missing.txt").is_none());
        let online = BuildPolicy {
            network: true,
            ..offline
        };
        assert!(offline_hint(&online, failed).is_none());
    }
}
