//! The label types: the normalised forms the rest of mcpod uses ([`ServerSpec`], [`Requests`],
//! [`Declared`]) and the wire types of each label value, from which the JSON Schemas in
//! `schemas/` are generated. Labels are read by walking JSON by hand (see `parse.rs`) so that
//! every error names its JSON path; the wire types document the same shapes and also
//! deserialise them (a test keeps the two in step).

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// The pattern of a server name (checked by hand in `validate.rs`; here for the schemas).
pub(crate) const SERVER_NAME_PATTERN: &str = "^[a-zA-Z][a-zA-Z0-9_-]{0,31}$";
/// The pattern of an environment variable name.
pub(crate) const ENV_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// One declared MCP server, normalised: an argv array in a label becomes `command`.
///
/// Serialises to the object form, empty fields omitted. Deserialises from either form (an
/// argv array, or an object) with unknown fields rejected: that is the path for specs an agent
/// passes in; labels are read by `labels::read`, which warns on unknown fields instead.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value")]
pub struct ServerSpec {
    /// The argv of the server process; `command[0]` is the program.
    pub command: Vec<String>,
    /// Environment of the server process. A value that is exactly `${NAME}` is resolved from
    /// the host variable NAME at launch, and only if the operator allows NAME.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Absolute working directory inside the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Deadline of one tool call, in seconds (1..=3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_timeout_secs: Option<u32>,
    /// What the server is for, in a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl JsonSchema for ServerSpec {
    fn schema_name() -> Cow<'static, str> {
        "ServerSpec".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        ServerSpecWire::json_schema(generator)
    }
}

impl ServerSpec {
    /// A spec that runs `argv` with nothing else set.
    pub fn argv<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ServerSpec {
            command: argv.into_iter().map(Into::into).collect(),
            ..ServerSpec::default()
        }
    }
}

/// Servers by name.
pub type Servers = BTreeMap<String, ServerSpec>;

/// The network an image asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No network at all (the default).
    #[default]
    None,
    /// Outbound connections.
    Egress,
}

/// What an image asks of its session, normalised. A request only: the operator's policy
/// decides what is granted, and nothing here can widen it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Requests {
    /// The network the servers need; `none` when not asked.
    #[serde(default)]
    pub network: Network,
    /// Absolute paths the servers need to write to (sorted, without duplicates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writable_paths: Vec<String>,
    /// Memory, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// CPU, in thousandths of a CPU (the label's `cpus: 1.5` is 1500 here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millicpus: Option<u32>,
    /// Process count limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u32>,
    /// Host variables the servers would like passed in (sorted, without duplicates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Destinations the servers need to reach (`HOST:PORT` patterns, sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub egress: Vec<crate::egress::Pattern>,
    /// Ports on the container's loopback forwarded to a fixed destination.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<u16, String>")]
    pub forwards: BTreeMap<u16, crate::egress::Pattern>,
}

/// What a set of image labels declares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Declared {
    /// The servers, by name; empty when the image declares none.
    pub servers: Servers,
    /// The `io.mcpod.requests` label, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Requests>,
    /// The label the servers came from (`io.mcpod.servers` or `org.outrig.mcp`); none when
    /// the image has neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The value of `io.mcpod.schema` as the image declares it; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
    /// Things the image declares that were ignored or look wrong, each naming the label and
    /// the JSON path.
    #[serde(default)]
    pub warnings: Vec<String>,
}

// ----------------------------------------------------------------------------------------
// Wire types: the label values as written in a Containerfile. Used for the JSON Schemas.

/// The value of the `io.mcpod.servers` label: server name → spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(
    title = "io.mcpod.servers",
    description = "The MCP servers an image carries (label value, schema 1): server name → spec.",
    extend("propertyNames" = { "pattern": SERVER_NAME_PATTERN }, "maxProperties" = 64)
)]
pub struct ServersLabel(pub BTreeMap<String, ServerSpecWire>);

/// One server spec as a label writes it: the argv alone, or an object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ServerSpecWire {
    /// Short form: the argv of the server process.
    Argv(#[schemars(length(min = 1))] Vec<String>),
    /// Long form.
    Object(ServerSpecObject),
}

/// The object form of a server spec in `io.mcpod.servers`. Unknown fields are ignored with a
/// warning.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerSpecObject {
    /// The argv of the server process; `command[0]` is the program.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Environment; a value that is exactly `${NAME}` is taken from host variable NAME at
    /// launch, if the operator allows NAME. Anything else is literal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": ENV_NAME_PATTERN }))]
    pub env: BTreeMap<String, String>,
    /// Absolute working directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern("^/"))]
    pub workdir: Option<String>,
    /// Deadline of one tool call, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub call_timeout_secs: Option<u32>,
    /// What the server is for, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl From<ServerSpecWire> for ServerSpec {
    fn from(wire: ServerSpecWire) -> Self {
        match wire {
            ServerSpecWire::Argv(argv) => ServerSpec::argv(argv),
            ServerSpecWire::Object(o) => ServerSpec {
                command: o.command,
                env: o.env,
                workdir: o.workdir,
                call_timeout_secs: o.call_timeout_secs,
                description: o.description.filter(|d| !d.is_empty()),
            },
        }
    }
}

/// The value of outrig's `org.outrig.mcp` label, read when `io.mcpod.servers` is absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(
    title = "org.outrig.mcp",
    description = "outrig's servers label, read by mcpod when an image has no io.mcpod.servers. The name `outrig` is reserved.",
    extend("propertyNames" = { "pattern": SERVER_NAME_PATTERN, "not": { "const": "outrig" } }, "maxProperties" = 64)
)]
pub struct OutrigServersLabel(pub BTreeMap<String, OutrigServerSpecWire>);

/// One server spec in `org.outrig.mcp`: the argv alone, or an object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OutrigServerSpecWire {
    /// Short form: the argv of the server process.
    Argv(#[schemars(length(min = 1))] Vec<String>),
    /// Long form (note the kebab-case `call-timeout-secs`).
    Object {
        #[schemars(length(min = 1))]
        command: Vec<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        #[schemars(extend("propertyNames" = { "pattern": ENV_NAME_PATTERN }))]
        env: BTreeMap<String, String>,
        #[serde(
            rename = "call-timeout-secs",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        #[schemars(range(min = 1, max = 3600))]
        call_timeout_secs: Option<u32>,
    },
}

impl From<OutrigServerSpecWire> for ServerSpec {
    fn from(wire: OutrigServerSpecWire) -> Self {
        match wire {
            OutrigServerSpecWire::Argv(argv) => ServerSpec::argv(argv),
            OutrigServerSpecWire::Object {
                command,
                env,
                call_timeout_secs,
            } => ServerSpec {
                command,
                env,
                call_timeout_secs,
                ..ServerSpec::default()
            },
        }
    }
}

/// The value of the `io.mcpod.requests` label: what the image asks of its session. The
/// operator's policy grants; unknown fields are ignored with a warning.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "io.mcpod.requests")]
pub struct RequestsLabel {
    /// `none` (the default) or `egress`.
    #[serde(default)]
    pub network: Network,
    /// Absolute paths the servers need to write to. Not `/`; no `.` or `..` components; no
    /// `:` or `,`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern("^/[^:,]+$")))]
    pub writable_paths: Vec<String>,
    /// Memory, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_048_576))]
    pub memory_mb: Option<u32>,
    /// CPUs, e.g. `0.5` or `2` (resolution 0.001).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001, max = 1024.0))]
    pub cpus: Option<f64>,
    /// Process count limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub pids: Option<u32>,
    /// Names of host variables the servers would like passed in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(pattern(ENV_NAME_PATTERN)))]
    pub env: Vec<String>,
    /// Destinations the servers need to reach, as `HOST:PORT`: a name
    /// (`api.github.com:443`), a wildcard for its subdomains (`*.pypi.org:443`),
    /// an address (`10.0.0.5:5432`, `[fd00::1]:80`), or
    /// `host.containers.internal:PORT` for the host's loopback. The operator
    /// grants them (`--allow-egress`); the session still has no network, and
    /// its servers reach them through an HTTP proxy (`HTTP_PROXY`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<String>,
    /// For protocols that ignore proxies: a port on the container's loopback
    /// → the fixed `HOST:PORT` its connections go to, e.g. `{"5432": "db.example.com:5432"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub forwards: BTreeMap<String, String>,
}

/// The value of the `io.mcpod.schema` label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(
    title = "io.mcpod.schema",
    description = "The schema version of the io.mcpod.* labels: `1`, or `1.<minor>`."
)]
pub struct SchemaLabel(#[schemars(pattern(r"^1(\.[0-9]+)?$"))] pub String);
