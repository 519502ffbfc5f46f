//! Egress by allow-list: a session has no network of its own (`--network
//! none`); its supervisor listens on the container's loopback (an HTTP proxy
//! per server, and granted port forwards) and carries each connection as a
//! stream to mcpod, which checks it against the grant, resolves and dials
//! itself, and audits it.
//!
//! - [`pattern`]: `HOST:PORT` patterns, what a grant covers, special addresses
//! - [`gate`]: one connection: check, resolve, dial, relay, audit
//! - [`host`]: this host's own addresses, refused too
//! - [`relay`]: the bytes both ways, counted, ended with the session
//! - [`handoff`]: on a local engine, the client's socket handed out of the
//!   container for the relay (one copy, no multiplexer), and a port
//!   forward's dialled socket handed in (no relay; the supervisor's
//!   `intercept.rs`)
//! - [`audit`]: the records, refusals limited per session

pub mod audit;
pub mod gate;
pub mod handoff;
pub mod host;
pub mod pattern;
pub mod relay;

pub use pattern::{HOST_ALIAS, Pattern};

/// The first port of the servers' HTTP proxies on a session's loopback: one
/// per server, in order of name; a forward may not take one of them.
pub const PROXY_PORTS: u16 = 41000;

/// Proxy ports kept for servers, one each: the most servers a session may
/// have (`labels::MAX_SERVERS` is this).
pub const MAX_PROXIES: u16 = 64;

/// The variables that point a server at its proxy on `127.0.0.1:port`.
/// `NO_PROXY` keeps the container's own loopback local; node's `fetch` reads
/// the proxy variables only with `NODE_USE_ENV_PROXY` (node 24, and 22.21 on).
pub fn proxy_env(port: u16) -> Vec<(&'static str, String)> {
    let url = format!("http://127.0.0.1:{port}");
    let mut env: Vec<(&'static str, String)> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]
    .into_iter()
    .map(|name| (name, url.clone()))
    .collect();
    for name in ["NO_PROXY", "no_proxy"] {
        env.push((name, "localhost,127.0.0.1,::1".into()));
    }
    env.push(("NODE_USE_ENV_PROXY", "1".into()));
    env
}
