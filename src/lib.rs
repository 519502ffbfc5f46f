//! mcpod: build, inspect and launch isolated MCP-server containers for an agent.
//!
//! The pipeline flows one way; a module uses only the modules listed below it:
//!
//! - [`server`]: the MCP stdio server (rmcp), translating requests into library calls
//! - [`session`]: launch_session and the lifecycle of session containers
//! - [`proxy`]: child MCP connections, tool names, call routing
//! - [`wire`]: JSON-RPC lines with answered size and depth limits (under server and proxy)
//! - [`provision`]: package references and server.json → base → lock → staged files → image
//! - [`image`]: build_image (cache probe, buildah build, label stamping) and inspect
//! - [`labels`]: the `io.mcpod.*` label schema (and outrig's `org.outrig.mcp`)
//! - [`cache`]: the content-addressed cache key and the build-context walk
//! - [`engine`]: the only code that spawns podman, buildah and skopeo
//! - [`error`]: the one error type
//! - [`budget`]: the size budget of each tool's result (used by server and session)
//! - [`telemetry`]: OpenTelemetry spans and the trace context in `_meta`, beside the line

pub mod budget;
pub mod cache;
pub mod clients;
pub mod doctor;
pub mod egress;
pub mod engine;
pub mod error;
pub mod image;
pub mod labels;
pub mod logging;
pub mod provision;
pub mod proxy;
pub mod reference;
pub mod schema;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod wire;
pub mod workspace;

pub use error::{Error, Result};
