//! Sessions: an image launched as a hardened container running the MCP servers
//! its labels declare, owned by this mcpod process.
//!
//! - [`policy`]: the operator's policy and what it grants
//! - [`container`]: hardened `podman run` flags, owner labels
//! - [`stream`]: the session's one stream to its supervisor
//! - `pool`: sessions started ahead of launches (`--warm`)
//! - `diagnose`: why a server failed at start, and the fix with mcpod's tools
//! - [`registry`]: launch, list, stop, logs, calls
//! - [`sweep`]: containers whose owner is gone
//! - [`connect`]: a client's own connection to a session's server
//! - [`pod`]: a session as a Kubernetes Pod manifest, and run under `podman kube play`

mod brief;
pub mod connect;
pub mod container;
mod diagnose;
mod known;
mod launch;
mod live;
mod overrides;
pub mod pod;
pub mod policy;
mod pool;
mod recipe;
pub mod registry;
mod servers;
pub mod stream;
mod surface;
pub mod sweep;
mod warm;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use brief::{Launched, LaunchedServer, LaunchedTool, ServerState, SessionLine};
pub use overrides::{ENV_REFERENCE, Overrides, ServerOverride};
pub use policy::{Ask, Isolation, MountRequest, Policy, PolicyReport};
pub use pool::PooledReport;
pub use registry::Sessions;

use crate::labels::Network;
use crate::proxy::child::{Handshake, Status};

/// Arguments of launch_session (and `mcpod launch`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchInput {
    /// The image: a tag from build_image, a local name, or an image ID; or a
    /// package reference, `npm:NAME@VERSION` or `pypi:NAME==VERSION`, built on
    /// a miss (as provision_server does) and then launched.
    #[serde(default)]
    pub image: String,
    /// Instead of a package reference in `image`: what provision_server takes
    /// (a package or a server.json, pins, bin, ...), built on a miss and launched.
    #[serde(default)]
    pub provision: Option<crate::provision::ProvisionRequest>,
    /// Per server by name: a new argv, more arguments, env values or
    /// writable paths over the image's label. When the launch starts one
    /// server, its override may be given without the name (e.g.
    /// `{"args": ["--demo"]}`).
    #[serde(default)]
    pub overrides: Overrides,
    /// Which declared servers to start (default: all of them).
    #[serde(default)]
    pub servers: Option<Vec<String>>,
    #[serde(default)]
    #[schemars(description = overrides::env_description())]
    pub env: BTreeMap<String, String>,
    /// Host directories to mount, within the operator's mount roots.
    #[serde(default)]
    pub mounts: Vec<MountRequest>,
    /// `none` (default) or `egress` (only if the operator allows it).
    #[serde(default)]
    pub network: Option<Network>,
    /// Seconds the session may live (its lease); default and ceiling are the operator's.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    #[serde(default)]
    pub memory_mb: Option<u32>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub pids: Option<u32>,
    /// Destinations the servers need (`HOST:PORT` patterns, as the label's
    /// `egress`), over the image's; each must be within the operator's
    /// --allow-egress (show_policy lists them). `127.0.0.1:PORT`,
    /// `localhost:PORT` and `[::1]:PORT` are the host's loopback, also
    /// forwarded at PORT on the session's, so a server connecting there
    /// directly reaches the host's service.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub egress: Vec<crate::egress::Pattern>,
    /// Ports on the container's loopback forwarded to a fixed `HOST:PORT`,
    /// over the image's.
    #[serde(default)]
    #[schemars(with = "BTreeMap<u16, String>")]
    pub forwards: BTreeMap<u16, crate::egress::Pattern>,
    /// The engine to run on (show_policy lists them); default: the
    /// operator's placement rule (the least loaded engine).
    #[serde(default)]
    pub engine: Option<String>,
    /// The operator's policy as the caller's profile narrows it (`serve
    /// --principals`); set by mcpod, never by the request.
    #[serde(skip)]
    #[schemars(skip)]
    pub policy: Option<std::sync::Arc<Policy>>,
}

impl LaunchInput {
    pub fn ask(&self) -> Ask {
        Ask {
            mounts: self.mounts.clone(),
            network: self.network,
            ttl_secs: self.ttl_secs,
            memory_mb: self.memory_mb,
            cpus: self.cpus,
            pids: self.pids,
            egress: self.egress.clone(),
            forwards: self.forwards.clone(),
            writable_paths: self
                .overrides
                .given()
                .into_iter()
                .flat_map(|(at, o)| {
                    o.writable_paths
                        .iter()
                        .enumerate()
                        .map(move |(i, p)| (format!("{at}.writable_paths[{i}]"), p.clone()))
                })
                .collect(),
        }
    }
}

/// One tool of a child server as mcpod exports it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ToolReport {
    /// The name to call through mcpod: `<session>_<server>__<tool>`.
    pub name: String,
    /// The child's own name for it.
    pub upstream: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A tool find_tools found: enough to call it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FoundTool {
    /// The name to call through mcpod (also when tools/list leaves it out).
    pub name: String,
    pub session: String,
    pub server: String,
    /// The child's own name for it (for call_tool).
    pub upstream: String,
    /// How well it matches the query (BM25; higher is better, 0 for an
    /// empty query); comparable within one answer only.
    pub score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: serde_json::Map<String, serde_json::Value>,
}

/// The result of `find_tools`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FoundTools {
    /// Best matches first.
    pub tools: Vec<FoundTool>,
    /// How many tools matched in all.
    pub total: usize,
    /// When nothing matched: the names to call of the tools whose names are
    /// spelled most like the query's words, nearest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub near: Vec<String>,
    /// When nothing matched: why, and what to ask instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One server of a session.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ServerReport {
    #[serde(flatten)]
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake: Option<Handshake>,
    pub tools: Vec<ToolReport>,
}

/// Whether a session still has a server to talk to.
#[derive(Clone, Copy, Debug, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// At least one server is ready.
    Running,
    /// No server is left (each failed or exited; see `servers`). Its container
    /// has been removed, it no longer counts against the session limit, and
    /// stop_session forgets it.
    Ended,
}

/// A session's whole detail: what `mcpod launch` prints and
/// `list_sessions {"session": ID}` returns (launch_session answers with
/// [`Launched`], list_sessions with a [`SessionLine`] per session).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SessionInfo {
    pub session: String,
    pub state: SessionState,
    /// The engine it runs on (`local`, or a name the operator gave with --engine).
    pub engine: String,
    pub container: String,
    /// Podman's ID for the container. On an engine other than `local` it is
    /// asked for after the launch, so as not to hold it up by one more round
    /// trip there; until then it is left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    pub image: String,
    /// The image it runs, by ID (on an engine other than `local`: the image
    /// with mcpod's supervisor added, pulled there by digest).
    pub image_id: String,
    pub isolation: Isolation,
    /// Unix time at which the lease ends and the container is killed.
    pub lease_until: u64,
    pub servers: BTreeMap<String, ServerReport>,
    /// Why the session ended when mcpod did not end it: its connection to
    /// the container dropped (an engine that went away, a killed podman).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
    /// What was provisioned for this launch (a package reference or server.json).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned: Option<Box<crate::provision::Provisioned>>,
    /// A ready `mcpServers` block that connects a client straight to each
    /// server; empty once the session has ended (its container is gone).
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub client_config: serde_json::Value,
    pub warnings: Vec<String>,
}

/// Arguments of session_logs.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsInput {
    pub session: String,
    /// One server (default: all of the session's servers).
    #[serde(default)]
    pub server: Option<String>,
    /// How many of the last lines (default 100).
    #[serde(default)]
    pub tail: Option<usize>,
}

/// Each server's last stderr lines.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Logs {
    pub session: String,
    pub servers: BTreeMap<String, Vec<String>>,
    /// The session's own lines: its supervisor's (servers started and
    /// exited, the lease) and podman's.
    pub supervisor: Vec<String>,
    /// Every egress connection of the session, a JSON line each (from,
    /// destination, address, verdict and rule, bytes each way, duration).
    pub egress: Vec<String>,
    /// When no connection has reached mcpod's gate: what the session is
    /// granted and where its servers must connect for mcpod to see it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_note: Option<String>,
}
