//! The operator's policy (flags of `mcpod serve`) and how it grants what a
//! launch request and an image's labels ask for. Nothing an agent or a label
//! says can widen it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::egress::{MAX_PROXIES, PROXY_PORTS, Pattern};
use crate::image::isolation::{self, BuildPolicy};
use crate::labels::{Network, Requests};
use crate::{Error, Result};

/// Proxied calls in flight per session; one more is refused at once, so a
/// burst costs mcpod a bounded amount of memory.
pub const MAX_CALLS: usize = 64;

/// A host directory the operator lets sessions mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MountRoot {
    pub path: PathBuf,
    pub writable: bool,
}

impl std::str::FromStr for MountRoot {
    type Err = String;
    /// `PATH`, `PATH:ro` or `PATH:rw`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (path, writable) = match s.rsplit_once(':') {
            Some((p, "rw")) => (p, true),
            Some((p, "ro")) => (p, false),
            _ => (s, false),
        };
        let path = Path::new(path)
            .canonicalize()
            .map_err(|e| format!("mount root `{path}`: {e}"))?;
        Ok(MountRoot { path, writable })
    }
}

/// What the operator allows. Built once from `mcpod serve` flags.
#[derive(Clone, Debug)]
pub struct Policy {
    pub mount_roots: Vec<MountRoot>,
    pub allow_network: bool,
    /// Env names a label's `${NAME}` (or a launch request) may use.
    pub allowed_env: Vec<String>,
    pub max_sessions: usize,
    pub max_memory_mb: u32,
    pub max_cpus: f64,
    pub max_pids: u32,
    pub default_memory_mb: u32,
    pub default_cpus: f64,
    pub default_pids: u32,
    pub default_ttl_secs: u64,
    pub max_ttl_secs: u64,
    /// Seconds each server gets to answer `initialize`.
    pub handshake_secs: u64,
    /// Seconds a proxied call may take when the label sets no call timeout.
    pub default_call_secs: u64,
    /// The operator's base images for provisioned packages (`--base
    /// RUNTIME=IMAGE`); a runtime not named gets a base mcpod makes.
    pub bases: crate::provision::OperatorBases,
    /// Debian packages a provision request may install into its base
    /// (`--allow-system-package NAME`); none by default.
    pub system_packages: Vec<String>,
    /// The warm pool: images to keep ready sessions of, and how many.
    pub pool: PoolPolicy,
    /// Destinations a session may be granted (`--allow-egress`).
    pub allow_egress: Vec<Pattern>,
    /// Where every egress connection is recorded, a JSON line each (`--egress-log`).
    pub egress_log: Option<PathBuf>,
    /// `tools/list` shows only mcpod's own tools; sessions' tools are found
    /// with find_tools and called by name or with call_tool (`--meta-tools-only`).
    pub meta_tools_only: bool,
    /// Remote podman engines sessions may run on, beside the local one (`--engine`).
    pub engines: Vec<crate::engine::engines::EngineSpec>,
    /// Sessions an engine may hold at once (`--engine-max NAME=N`, `local` included).
    pub engine_max: Vec<(String, usize)>,
    /// Where images built here go for other engines to pull (`--registry`).
    pub registry: Option<crate::engine::registry::Registry>,
    /// The size of each writable image path's tmpfs, MiB (`--writable-path-mb`; 0: none granted).
    pub writable_path_mb: u32,
    /// The engines (by name, `local` included) a launch may be placed on;
    /// none: every engine. Set only by a profile (`serve --principals`).
    pub only_engines: Option<Vec<String>>,
}

/// The warm pool (`--warm IMAGE[=N]`, `--pool-max`, `--spare-secs`).
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct PoolPolicy {
    /// Image → how many ready sessions of its default launch to keep.
    pub warm: BTreeMap<String, usize>,
    /// Ready sessions kept at once, over every image (they do not count
    /// against `max_sessions` until handed out).
    pub max: usize,
    /// After a launch, keep one spare of its exact spec for this many
    /// seconds (0: none), so the next launch like it is warm.
    pub spare_secs: u64,
}

impl Default for PoolPolicy {
    fn default() -> Self {
        PoolPolicy {
            warm: BTreeMap::new(),
            max: 4,
            spare_secs: 0,
        }
    }
}

impl Policy {
    /// What builds may use: what the largest session may have.
    pub fn builds(&self, network: bool) -> BuildPolicy {
        BuildPolicy {
            network,
            memory_mb: self.max_memory_mb,
            processes: self.max_pids,
            cpus: self.max_cpus,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mount_roots: Vec::new(),
            allow_network: false,
            allowed_env: Vec::new(),
            max_sessions: 16,
            max_memory_mb: isolation::CEILING_MEMORY_MB,
            max_cpus: isolation::CEILING_CPUS,
            max_pids: isolation::CEILING_PROCESSES,
            default_memory_mb: 512,
            default_cpus: 1.0,
            default_pids: 256,
            default_ttl_secs: 3600,
            max_ttl_secs: 24 * 3600,
            handshake_secs: 30,
            default_call_secs: 300,
            bases: Default::default(),
            system_packages: Vec::new(),
            pool: PoolPolicy::default(),
            allow_egress: Vec::new(),
            egress_log: None,
            meta_tools_only: false,
            engines: Vec::new(),
            engine_max: Vec::new(),
            registry: None,
            writable_path_mb: writable::DEFAULT_PATH_MB,
            only_engines: None,
        }
    }
}

/// The operator's effective policy, as `show_policy` reports it: what a
/// launch may ask for, and the limits mcpod holds every session to.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PolicyReport {
    /// Host directories sessions may mount (`--allow-mount`), and whether writably.
    pub mount_roots: Vec<MountRootReport>,
    /// What a writable mount needs on this host: id-mapped to its
    /// directory's owner, or a directory the session's uid may write.
    pub writable_mounts: String,
    /// Whether a session may have network egress (`--allow-network`).
    pub allow_network: bool,
    /// Host variables a `${NAME}` reference, a launch's `env` or a build arg may use (`--allow-env`).
    pub allowed_env: Vec<String>,
    /// Sessions at once.
    pub max_sessions: usize,
    /// What a session gets when it asks for nothing.
    pub defaults: Limits,
    /// The most a session may ask for.
    pub ceilings: Limits,
    /// Seconds each server gets to answer `initialize`.
    pub handshake_secs: u64,
    /// Seconds a proxied call may take when the image's label sets none.
    pub default_call_secs: u64,
    /// The operator's base images for packages (`--base RUNTIME=IMAGE`);
    /// a runtime not named runs on a base mcpod makes from the host's own
    /// runtime (list_bases shows both).
    pub bases: BTreeMap<String, String>,
    /// The warm pool.
    pub pool: PoolPolicy,
    /// Destinations a session may be granted (`--allow-egress`).
    pub allow_egress: Vec<String>,
    /// Whether `tools/list` leaves the sessions' tools out (`--meta-tools-only`):
    /// find_tools finds them, and their names or call_tool call them.
    pub meta_tools_only: bool,
    /// The engines sessions run on: `local` and the operator's (`--engine`).
    pub engines: Vec<EngineReport>,
    /// How a launch that names no engine is placed.
    pub placement: String,
    /// The operator's registry (`--registry`), through which images reach
    /// engines other than `local`.
    pub registry: Option<String>,
    /// Directories of the image a session's servers may write to (a tmpfs
    /// copy of the image's files there): how they are asked for and bounded.
    pub writable_paths: writable::WritableReport,
    /// Bounds mcpod holds to whatever the operator says.
    pub fixed: FixedLimits,
}

/// An engine, as `show_policy` names it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct EngineReport {
    pub name: String,
    /// `local`, or the podman URL.
    pub url: String,
    /// Sessions it may hold at once (`--engine-max`); none: no limit of its own.
    pub max_sessions: Option<usize>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MountRootReport {
    pub path: String,
    pub writable: bool,
}

/// A session's resources.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Limits {
    pub memory_mb: u32,
    pub cpus: f64,
    pub pids: u32,
    /// The lease: the container is killed after this many seconds.
    pub ttl_secs: u64,
}

/// Limits that are not the operator's to set.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FixedLimits {
    /// The largest JSON-RPC message read, either way.
    pub max_message_bytes: usize,
    pub max_tools_per_server: usize,
    /// mcpod's `tools/list`, its own tools included.
    pub max_listed_tools: usize,
    pub max_calls_in_flight_per_session: usize,
    pub max_env_value_bytes: usize,
}

/// A mount an agent asks for.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MountRequest {
    /// Host path; must lie inside a mount root the operator allowed.
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    /// Read-only unless set to false (and the root allows writing).
    #[serde(default = "yes")]
    pub read_only: bool,
}

fn yes() -> bool {
    true
}

/// What the agent asks for at launch (besides the image and servers).
#[derive(Clone, Debug, Default)]
pub struct Ask {
    pub mounts: Vec<MountRequest>,
    pub network: Option<Network>,
    pub ttl_secs: Option<u64>,
    pub memory_mb: Option<u32>,
    pub cpus: Option<f64>,
    pub pids: Option<u32>,
    /// Destinations (over the label's, when given).
    pub egress: Vec<Pattern>,
    /// Port forwards (over the label's, when given).
    pub forwards: BTreeMap<u16, Pattern>,
    /// Image paths to make writable, each with where it was asked
    /// (`overrides.SERVER.writable_paths[I]`), besides the label's.
    pub writable_paths: Vec<(String, String)>,
}

/// The isolation a session actually gets; every field is visible to the agent.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
pub struct Isolation {
    /// `none` (only loopback), or `egress` (podman's default network).
    pub network: String,
    pub cap_drop: String,
    pub no_new_privileges: bool,
    pub read_only_root: bool,
    /// Writable tmpfs mounts (path → size).
    pub tmpfs: BTreeMap<String, String>,
    /// `userns=auto` or `uidmap=0:BASE:COUNT` (container root is an unprivileged
    /// host uid), or `user=65534:65534` where the host has no subordinate IDs.
    pub user: String,
    pub pids_limit: u32,
    pub memory_mb: u32,
    pub cpus: f64,
    /// Whether podman applies `pids_limit`, `memory_mb` and `cpus`: false
    /// under rootless podman on cgroups v1, which ignores them (the lease
    /// still ends the session).
    pub limits_enforced: bool,
    /// The container is killed after this many seconds, even if mcpod is gone.
    pub lease_secs: u64,
    pub mounts: Vec<GrantedMount>,
    /// Destinations the servers may reach, through mcpod (the label's or the
    /// launch's requests that the operator's `--allow-egress` covers); the
    /// network stays `none`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub egress: Vec<Pattern>,
    /// Ports on the container's loopback forwarded to a fixed destination.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<u16, String>")]
    pub forwards: BTreeMap<u16, Pattern>,
    /// Where each server's HTTP proxy listens (its `HTTP_PROXY`), when the
    /// session has egress: `http://127.0.0.1:41000` for the first server by name, and up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<String>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq, Eq)]
pub struct GrantedMount {
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// A writable mount id-mapped to the directory's owner: the session
    /// writes there as this host uid and gid (on this mount only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_as: Option<crate::engine::userns::Owner>,
}

impl Policy {
    /// The effective policy, for `show_policy`; `writable_mounts` as the
    /// local engine says (`Local::writable_mounts`).
    pub fn report(&self, writable_mounts: String) -> PolicyReport {
        PolicyReport {
            writable_mounts,
            mount_roots: self
                .mount_roots
                .iter()
                .map(|r| MountRootReport {
                    path: r.path.display().to_string(),
                    writable: r.writable,
                })
                .collect(),
            allow_network: self.allow_network,
            allowed_env: self.allowed_env.clone(),
            max_sessions: self.max_sessions,
            defaults: Limits {
                memory_mb: self.default_memory_mb,
                cpus: self.default_cpus,
                pids: self.default_pids,
                ttl_secs: self.default_ttl_secs,
            },
            ceilings: Limits {
                memory_mb: self.max_memory_mb,
                cpus: self.max_cpus,
                pids: self.max_pids,
                ttl_secs: self.max_ttl_secs,
            },
            handshake_secs: self.handshake_secs,
            default_call_secs: self.default_call_secs,
            bases: self
                .bases
                .iter()
                .map(|(runtime, image)| (runtime.as_str().to_string(), image.clone()))
                .collect(),
            pool: self.pool.clone(),
            allow_egress: self.allow_egress.iter().map(|p| p.to_string()).collect(),
            meta_tools_only: self.meta_tools_only,
            engines: std::iter::once((crate::engine::engines::LOCAL, "local"))
                .chain(
                    self.engines
                        .iter()
                        .map(|e| (e.name.as_str(), e.url.as_str())),
                )
                .map(|(name, url)| EngineReport {
                    name: name.into(),
                    url: url.into(),
                    max_sessions: self
                        .engine_max
                        .iter()
                        .rfind(|(n, _)| n == name)
                        .map(|(_, max)| *max),
                })
                .collect(),
            placement: crate::engine::engines::PLACEMENT.into(),
            registry: self.registry.as_ref().map(|r| r.prefix().to_string()),
            writable_paths: self.writable_report(),
            fixed: FixedLimits {
                max_message_bytes: crate::wire::Limits::default().max_message,
                max_tools_per_server: crate::proxy::tools::MAX_PER_SERVER,
                max_listed_tools: crate::proxy::tools::MAX_LISTED,
                max_calls_in_flight_per_session: MAX_CALLS,
                max_env_value_bytes: crate::engine::env::MAX_VALUE_BYTES,
            },
        }
    }

    /// The allowed env names, for messages.
    pub fn allowed_env_text(&self) -> String {
        if self.allowed_env.is_empty() {
            "none".to_string()
        } else {
            self.allowed_env.join(", ")
        }
    }

    /// Grant `ask` and the image's `requests` within this policy. An explicit
    /// ask beyond the policy is an error; a label's request beyond it is a warning.
    pub fn grant(&self, ask: &Ask, requests: Option<&Requests>, user: String) -> Result<Isolation> {
        let mut warnings = Vec::new();
        let label = requests.cloned().unwrap_or_default();

        let wants_egress = self.grant_network(ask, &label, &mut warnings)?;

        let memory_mb = self.limit(
            "memory_mb",
            ask.memory_mb.or(label.memory_mb),
            self.default_memory_mb,
            self.max_memory_mb,
            &mut warnings,
            ask.memory_mb.is_some(),
        )?;
        let pids = self.limit(
            "pids",
            ask.pids.or(label.pids),
            self.default_pids,
            self.max_pids,
            &mut warnings,
            ask.pids.is_some(),
        )?;
        let cpus = self.grant_cpus(ask, &label, &mut warnings)?;
        let lease_secs = self.grant_lease(ask)?;

        let mut tmpfs = BTreeMap::from([
            ("/tmp".to_string(), "64m".to_string()),
            ("/run".to_string(), "16m".to_string()),
        ]);
        self.grant_writable(
            &ask.writable_paths,
            &label,
            memory_mb,
            &mut tmpfs,
            &mut warnings,
        )?;

        let mut mounts = Vec::new();
        for m in &ask.mounts {
            mounts.push(self.grant_mount(m)?);
        }
        // With the whole network there is nothing to gate.
        let (egress, forwards) = if wants_egress {
            (Vec::new(), BTreeMap::new())
        } else {
            self.grant_egress(ask, &label, &mut warnings)?
        };
        let egress_proxy = (!egress.is_empty()).then(|| {
            format!("http://127.0.0.1:{PROXY_PORTS} for the first server by name, one port up for each next")
        });

        Ok(Isolation {
            network: if wants_egress { "egress" } else { "none" }.into(),
            cap_drop: "all".into(),
            no_new_privileges: true,
            read_only_root: true,
            tmpfs,
            user,
            pids_limit: pids,
            memory_mb,
            cpus,
            limits_enforced: true,
            lease_secs,
            mounts,
            egress,
            forwards,
            egress_proxy,
            warnings,
        })
    }

    /// Whether the session gets the network (podman's default, `egress`):
    /// a launch asking for it where the operator does not allow it is
    /// refused; a label's request is granted only where allowed.
    fn grant_network(
        &self,
        ask: &Ask,
        label: &Requests,
        warnings: &mut Vec<String>,
    ) -> Result<bool> {
        Ok(match ask.network {
            Some(Network::Egress) => {
                if !self.allow_network {
                    return Err(Error::invalid(
                        "network",
                        "egress",
                        "the operator does not allow network egress",
                        "launch without `network`, or ask the operator to start mcpod with --allow-network",
                    ));
                }
                true
            }
            Some(Network::None) => false,
            None => {
                if label.network == Network::Egress && !self.allow_network {
                    warnings.push("the image requests network egress; the operator's policy does not allow it, so the session has no network".into());
                }
                label.network == Network::Egress && self.allow_network
            }
        })
    }

    /// The cpus granted: the launch's or else the label's, within the
    /// operator's ceiling (a launch's beyond it is refused, a label's is
    /// cut to it with a warning), or the default.
    fn grant_cpus(&self, ask: &Ask, label: &Requests, warnings: &mut Vec<String>) -> Result<f64> {
        let label_cpus = label.millicpus.map(|m| f64::from(m) / 1000.0);
        Ok(match ask.cpus.or(label_cpus) {
            None => self.default_cpus,
            Some(c) if c > 0.0 && c <= self.max_cpus => c,
            Some(c) if ask.cpus.is_some() => {
                return Err(Error::invalid(
                    "cpus",
                    c.to_string(),
                    format!("it must be above 0 and at most {}", self.max_cpus),
                    "ask for fewer cpus",
                ));
            }
            Some(c) => {
                warnings.push(format!(
                    "the image requests {c} cpus; granted {}",
                    self.max_cpus
                ));
                self.max_cpus
            }
        })
    }

    /// The lease in seconds: the launch's `ttl_secs` within the operator's
    /// ceiling, or the default.
    fn grant_lease(&self, ask: &Ask) -> Result<u64> {
        match ask.ttl_secs {
            None => Ok(self.default_ttl_secs),
            Some(t) if (1..=self.max_ttl_secs).contains(&t) => Ok(t),
            Some(t) => Err(Error::invalid(
                "ttl_secs",
                t.to_string(),
                format!("it must be 1..={}", self.max_ttl_secs),
                "ask for a shorter time to live",
            )),
        }
    }

    /// The destinations (and forwards) asked for that the operator's
    /// `--allow-egress` covers. What a launch asks beyond it is an error;
    /// what a label asks beyond it is left out with a warning.
    fn grant_egress(
        &self,
        ask: &Ask,
        label: &Requests,
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<Pattern>, BTreeMap<u16, Pattern>)> {
        let asked = !ask.egress.is_empty() || !ask.forwards.is_empty();
        let (wanted, forwards) = if asked {
            (&ask.egress, &ask.forwards)
        } else {
            (&label.egress, &label.forwards)
        };
        let allowed = |p: &Pattern| self.allow_egress.iter().any(|g| p.within(g));
        let refuse = |what: &str, p: &Pattern| {
            Error::invalid(
                what,
                p.to_string(),
                if self.allow_egress.is_empty() {
                    "the operator allows no egress".to_string()
                } else {
                    format!(
                        "it is not within the operator's --allow-egress patterns ({})",
                        self.allow_egress
                            .iter()
                            .map(|g| g.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                "ask for destinations show_policy's allow_egress covers, or ask the operator to add one (--allow-egress)",
            )
        };
        let mut egress = Vec::new();
        for p in wanted {
            if allowed(p) {
                egress.push(p.clone());
            } else if asked {
                return Err(refuse("egress", p));
            } else {
                warnings.push(format!(
                    "the image requests egress to {p}; the operator's policy does not grant it"
                ));
            }
        }
        let mut granted_forwards = BTreeMap::new();
        for (listen, to) in forwards {
            if loopback::proxy_port(*listen) {
                return Err(Error::invalid(
                    "forwards",
                    listen.to_string(),
                    format!(
                        "ports {PROXY_PORTS} to {} are the servers' egress proxies",
                        PROXY_PORTS + MAX_PROXIES - 1
                    ),
                    "forward another port",
                ));
            }
            if allowed(to) {
                granted_forwards.insert(*listen, to.clone());
            } else if asked {
                return Err(refuse("forwards", to));
            } else {
                warnings.push(format!(
                    "the image requests port {listen} forwarded to {to}; the operator's policy does not grant it"
                ));
            }
        }
        // Destinations a client dials on the container's own loopback reach
        // the host only by a forward of their port (before the forwards'
        // own destinations join the grant, which are reached at their ports).
        egress.sort();
        egress.dedup();
        loopback::forward_loopback(&mut egress, &mut granted_forwards, asked, warnings)?;
        egress.extend(granted_forwards.values().cloned());
        egress.sort();
        egress.dedup();
        Ok((egress, granted_forwards))
    }

    fn limit(
        &self,
        field: &str,
        asked: Option<u32>,
        default: u32,
        max: u32,
        warnings: &mut Vec<String>,
        explicit: bool,
    ) -> Result<u32> {
        match asked {
            None => Ok(default),
            Some(v) if v >= 1 && v <= max => Ok(v),
            Some(v) if explicit => Err(Error::invalid(
                field,
                v.to_string(),
                format!("the operator allows 1..={max}"),
                format!("ask for at most {max}"),
            )),
            Some(v) => {
                warnings.push(format!("the image requests {field} {v}; granted {max}"));
                Ok(max)
            }
        }
    }

    fn grant_mount(&self, m: &MountRequest) -> Result<GrantedMount> {
        let target_ok = m.target.starts_with('/')
            && m.target != "/"
            && !m.target.contains([':', ',', '\0'])
            && !m.target.split('/').any(|c| c == ".." || c == ".");
        if !target_ok {
            return Err(Error::invalid(
                "mount target",
                &m.target,
                "it must be an absolute path other than `/`, without `.`, `..`, `:` or `,`",
                "pass a path such as /data",
            ));
        }
        let source = Path::new(&m.source).canonicalize().map_err(|e| {
            Error::invalid(
                "mount source",
                &m.source,
                e.to_string(),
                "pass an existing host path inside a mount root the operator allowed",
            )
        })?;
        if source.to_string_lossy().contains([':', ',']) {
            return Err(Error::invalid(
                "mount source",
                &m.source,
                "it contains `:` or `,`",
                "rename the directory",
            ));
        }
        let root = self
            .mount_roots
            .iter()
            .filter(|r| source.starts_with(&r.path))
            .max_by_key(|r| r.path.as_os_str().len())
            .ok_or_else(|| {
                Error::invalid(
                    "mount source",
                    &m.source,
                    if self.mount_roots.is_empty() {
                        "the operator allows no mounts".to_string()
                    } else {
                        format!(
                            "it is outside every mount root the operator allowed: {}",
                            self.mount_roots
                                .iter()
                                .map(|r| format!(
                                    "{} ({})",
                                    r.path.display(),
                                    if r.writable { "rw" } else { "ro" }
                                ))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                    "ask the operator to start mcpod with --allow-mount covering it",
                )
            })?;
        if !m.read_only && !root.writable {
            return Err(Error::invalid(
                "mount read_only",
                "false",
                format!("the operator allows `{}` read-only", root.path.display()),
                "mount it read-only",
            ));
        }
        Ok(GrantedMount {
            source: source.display().to_string(),
            target: m.target.clone(),
            read_only: m.read_only,
            written_as: None,
        })
    }

    /// Check that every `${NAME}` an agent's build args reference is a
    /// variable the operator allowed: an image can carry a build arg's value
    /// out to whoever runs it.
    pub fn check_build_args(&self, args: &BTreeMap<String, String>) -> Result<()> {
        for (arg, value) in args {
            let denied = std::cell::RefCell::new(None);
            let _ = crate::image::build::resolve_build_args(
                "",
                &BTreeMap::from([(arg.clone(), value.clone())]),
                |var| {
                    if !self.allowed_env.iter().any(|a| a == var) {
                        denied.borrow_mut().get_or_insert_with(|| var.to_string());
                    }
                    Some(String::new())
                },
            );
            if let Some(var) = denied.into_inner() {
                return Err(Error::invalid(
                    "build arg",
                    arg,
                    format!(
                        "its value takes host variable `{var}`, which the operator has not allowed"
                    ),
                    format!(
                        "pass a literal value, or ask the operator to start mcpod with --allow-env {var}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Check that every env name a launch request passes is allowed.
    pub fn check_env_names<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Result<()> {
        for name in names {
            if !self.allowed_env.contains(name) {
                return Err(Error::invalid(
                    "env",
                    name,
                    format!(
                        "the operator does not allow this variable (allowed now: {}; show_policy lists the policy)",
                        self.allowed_env_text()
                    ),
                    "ask the operator to start mcpod with --allow-env NAME",
                ));
            }
        }
        Ok(())
    }
}

mod loopback;
pub mod profile;
#[cfg(test)]
mod tests;
mod writable;

pub use loopback::egress_note;
pub use writable::WritableReport;
