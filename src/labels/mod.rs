//! STUB: replaced by the labels work. Interface only.
//! The v1 label schema: `io.mcpod.servers`, `io.mcpod.schema`, `io.mcpod.requests`,
//! and outrig's `org.outrig.mcp` read as a compatible source.
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Result;

pub const SERVERS: &str = "io.mcpod.servers";
pub const SCHEMA: &str = "io.mcpod.schema";
pub const REQUESTS: &str = "io.mcpod.requests";
pub const OUTRIG_MCP: &str = "org.outrig.mcp";

/// One declared MCP server, normalised (an argv array in a label becomes `command`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServerSpec {
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

pub type Servers = BTreeMap<String, ServerSpec>;

/// What an image asks of its session; the operator's policy grants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Requests {}

/// What a set of image labels declares.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Declared {
    pub servers: Servers,
    pub requests: Option<Requests>,
    /// Which label the servers came from.
    pub source: Option<String>,
    pub warnings: Vec<String>,
}

/// Read and validate what `labels` declare.
pub fn read(labels: &BTreeMap<String, String>) -> Result<Declared> {
    let _ = labels;
    Ok(Declared::default())
}

/// Validate servers an agent passes in.
pub fn validate_servers(servers: &Servers) -> Result<()> {
    let _ = servers;
    Ok(())
}

/// The labels to stamp: `servers` merged over what `existing` already declares.
pub fn stamp(existing: &BTreeMap<String, String>, servers: &Servers) -> Result<BTreeMap<String, String>> {
    let _ = (existing, servers);
    Ok(BTreeMap::new())
}
