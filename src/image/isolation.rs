//! What a build's RUN steps may reach: the flags `buildah build` gets besides
//! its inputs. RUN steps run the agent's commands, so they get what a
//! session gets where buildah can give it: no network unless the operator
//! allows it, never host root, a small capability set, memory, process and
//! CPU limits, and none of the host's proxy variables. Only the operator
//! sets this (`mcpod serve --build-network` and the session ceilings); no
//! tool argument reaches it.

use std::sync::OnceLock;

use crate::session::Policy;
use crate::session::container::{MAPPED, subordinate_ids};
use crate::{Error, Result};

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
    /// A session's ceilings, and no network.
    fn default() -> Self {
        BuildPolicy::from_session_policy(&Policy::default(), false)
    }
}

impl BuildPolicy {
    /// A build gets what the largest session may have.
    pub fn from_session_policy(policy: &Policy, network: bool) -> BuildPolicy {
        BuildPolicy {
            network,
            memory_mb: policy.max_memory_mb,
            processes: policy.max_pids,
            cpus: policy.max_cpus,
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

/// Who a RUN step's root is on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunUser {
    /// mcpod is not root: buildah runs rootless, its root is mcpod's user.
    Rootless,
    /// The fixed subordinate range sessions use on podman < 4.4
    /// (`session::container::UserMode::Map`). Not `--userns=auto`, which
    /// buildah 1.28 does not have and which would give every step its own
    /// range (podman#18031); a fixed map also lets containers-storage keep
    /// one ID-shifted copy of each base for sessions and builds alike.
    Map { uid_base: u64, gid_base: u64 },
    /// Root without subordinate IDs: a RUN step would be host root, so
    /// Containerfiles with RUN steps are refused.
    HostRoot,
}

impl RunUser {
    /// Decide from this host, as sessions do.
    pub fn detect() -> RunUser {
        // SAFETY: geteuid(2) cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return RunUser::Rootless;
        }
        match subordinate_ids() {
            Some((uid_base, gid_base)) => RunUser::Map { uid_base, gid_base },
            None => RunUser::HostRoot,
        }
    }

    /// Refuse a Containerfile with RUN steps when they would run as host root.
    pub fn check(&self, image: &str, runs_commands: bool) -> Result<()> {
        if *self != RunUser::HostRoot || !runs_commands {
            return Ok(());
        }
        Err(Error::invalid(
            "Containerfile of image",
            image,
            "it has RUN steps, and on this host they would run as host root: mcpod runs as root and /etc/subuid or /etc/subgid has no range of 65536 IDs for the user `containers`",
            "build without RUN steps (COPY what they would make from the build context), or have the operator add the ranges (`usermod --add-subuids 2147483647-4294967294 --add-subgids 2147483647-4294967294 containers`)",
        ))
    }
}

/// `buildah build`'s flags for RUN steps under `policy` as `user`.
pub fn flags(policy: &BuildPolicy, user: &RunUser) -> Vec<String> {
    let mut f = vec![
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
    ];
    if let RunUser::Map { uid_base, gid_base } = user {
        f.push(format!("--userns-uid-map=0:{uid_base}:{MAPPED}"));
        f.push(format!("--userns-gid-map=0:{gid_base}:{MAPPED}"));
    }
    f
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
    fn run_steps_get_no_network_a_map_and_few_capabilities_by_default() {
        let user = RunUser::Map {
            uid_base: 100000,
            gid_base: 200000,
        };
        let f = flags(&BuildPolicy::default(), &user);
        for expected in [
            "--network=none",
            "--http-proxy=false",
            "--cap-drop=all",
            "--cap-add=CHOWN,DAC_OVERRIDE,FOWNER,FSETID,KILL,SETGID,SETUID",
            "--memory=2048m",
            "--ulimit=nproc=1024:1024",
            "--cpu-quota=200000",
            "--userns-uid-map=0:100000:65536",
            "--userns-gid-map=0:200000:65536",
        ] {
            assert!(f.iter().any(|a| a == expected), "{expected} not in {f:?}");
        }
        let networked = BuildPolicy {
            network: true,
            ..BuildPolicy::default()
        };
        assert!(flags(&networked, &RunUser::Rootless).contains(&"--network=private".to_string()));
        assert!(
            !flags(&networked, &RunUser::Rootless)
                .iter()
                .any(|a| a.starts_with("--userns"))
        );
    }

    #[test]
    fn run_steps_that_would_be_host_root_are_refused() {
        let err = RunUser::HostRoot
            .check("localhost/x", true)
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("host root") && err.contains("usermod"),
            "{err}"
        );
        assert!(RunUser::HostRoot.check("localhost/x", false).is_ok());
        assert!(RunUser::Rootless.check("localhost/x", true).is_ok());
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
