//! Egress by allow-list: a session has no network of its own (`--network
//! none`); its supervisor listens on the container's loopback (an HTTP proxy
//! per server, and granted port forwards) and carries each connection as a
//! stream to mcpod, which checks it against the grant, resolves and dials
//! itself, and audits it.
//!
//! - [`pattern`]: `HOST:PORT` patterns, what a grant covers, special addresses
//! - [`gate`]: one connection: check, resolve, dial, relay, audit

pub mod gate;
pub mod pattern;

pub use pattern::{HOST_ALIAS, Pattern};
