//! The v1 label schema: `io.mcpod.servers`, `io.mcpod.schema`, `io.mcpod.requests`,
//! and outrig's `org.outrig.mcp`, read as a compatible source of servers.
//!
//! The data flows one way through the files of this module:
//!
//! - `spec`: the types. The normalised [`ServerSpec`], [`Requests`], [`Declared`], and the
//!   wire types of each label value (serde + schemars) from which the JSON Schemas are made.
//! - `json`: JSON paths, type names and the canonical writer the other files share.
//! - `env`: `${NAME}` references in a spec's env, and their resolution on the host.
//! - `validate`: the rules a server name, a spec and a request must satisfy.
//! - `parse`: walks one label value (a `serde_json::Value`) into the normalised types,
//!   reporting errors and warnings with the JSON path they concern.
//! - `read`: a whole label set into a [`Declared`] (schema version, precedence, outrig).
//! - `stamp`: the labels to stamp on a built image, serialised canonically.
//! - `schema`: the JSON Schemas of the label values.

mod env;
mod json;
mod parse;
mod read;
mod schema;
mod spec;
mod stamp;
mod validate;

pub use env::{all_env_refs, env_ref, is_env_name};
pub use read::read;
pub use schema::json_schemas;
pub use spec::{
    Declared, Network, OutrigServerSpecWire, OutrigServersLabel, Requests, RequestsLabel,
    SchemaLabel, ServerSpec, ServerSpecObject, ServerSpecWire, Servers, ServersLabel,
};
pub use stamp::{canonical_servers_json, stamp};
pub use validate::{RESERVED_TOPS, check_writable_input, is_server_name, validate_servers};

/// The label holding the servers an image declares (JSON object, name → spec).
pub const SERVERS: &str = "io.mcpod.servers";
/// The label holding the schema version of the `io.mcpod.*` labels.
pub const SCHEMA: &str = "io.mcpod.schema";
/// The label holding what an image asks of its session (JSON object).
pub const REQUESTS: &str = "io.mcpod.requests";
/// outrig's servers label, read when an image has no `io.mcpod.servers`.
pub const OUTRIG_MCP: &str = "org.outrig.mcp";

/// The schema version this build stamps.
pub const SCHEMA_VERSION: &str = "1";
/// The largest label value read, in bytes; checked before parsing.
pub const MAX_LABEL_BYTES: usize = 64 * 1024;
/// The most servers one image may declare: one egress proxy port each.
pub const MAX_SERVERS: usize = crate::egress::MAX_PROXIES as usize;
/// The longest server name.
pub const MAX_SERVER_NAME_LEN: usize = 32;
/// The range of `call_timeout_secs`.
pub const CALL_TIMEOUT_SECS: std::ops::RangeInclusive<u32> = 1..=3600;
/// The server name outrig reserves for itself (an error in `org.outrig.mcp` only).
pub const OUTRIG_RESERVED_NAME: &str = "outrig";
