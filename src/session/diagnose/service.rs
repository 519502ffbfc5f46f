//! A server that cannot start for what it needs around it: a port another
//! holds in the session (EADDRINUSE), a credential (an env variable it says
//! is missing or empty), which only the operator can grant, or the network.

use super::{Context, Diagnosis, Facts, line_with};

/// A port taken: in a session, by another of its servers, a `forwards`
/// entry or an egress proxy (they share the container's loopback).
pub(super) fn port_in_use(facts: &Facts) -> Option<Diagnosis> {
    let line = line_with(
        facts.stderr,
        &[
            "EADDRINUSE",
            "Address already in use",
            "address already in use",
        ],
    )?;
    // `listen EADDRINUSE: address already in use 127.0.0.1:3000`,
    // `[Errno 98] … ('0.0.0.0', 8000)`, Go's `bind 0.0.0.0:8080: …`.
    let port = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|d| d.parse::<u16>().ok())
        .rfind(|p| *p >= 1 && *p != 98 && *p != 48)
        .map(|p| format!("port {p}"))
        .unwrap_or_else(|| "the port".into());
    Some(Diagnosis {
        cause: format!(
            "{port}, which it listens on, is already in use in the session (its servers, `forwards` and egress proxies share the container's loopback)"
        ),
        fix: format!(
            "give it another port (`\"overrides\": {{\"{}\": {{\"args\": [...]}}}}` or `env`, as its documentation says), drop the `forwards` entry on that port, or launch the servers that collide in separate sessions (`servers`)",
            facts.server
        ),
    })
}

/// Words that, beside an upper-case name, say it is an env variable that
/// is missing or empty.
const NEEDS: &[&str] = &[
    "environment variable",
    "env var",
    "is not set",
    "not set",
    "is required",
    "must be set",
    "is missing",
    "KeyError: '",
];

/// A server that says an env variable (a token, a URL) is missing.
pub(super) fn credential(facts: &Facts, ctx: &Context) -> Option<Diagnosis> {
    let name = facts.stderr.lines().rev().find_map(|l| {
        if !NEEDS.iter().any(|n| l.contains(n)) {
            return None;
        }
        l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find(|w| is_env_name(w))
    })?;
    let server = facts.server;
    let take =
        format!("`\"overrides\": {{\"{server}\": {{\"env\": {{\"{name}\": \"${{{name}}}\"}}}}}}`");
    let fix = if ctx.allowed_env.iter().any(|a| a == name) {
        format!(
            "launch with {take}: the server then gets mcpod's own `{name}` (or this launch's `\"env\": {{\"{name}\": \"VALUE\"}}`) in its environment, never in its arguments"
        )
    } else {
        format!(
            "the operator must act: `{name}` is not among the env names they allow (show_policy's allowed_env). Tell them: start mcpod with `--allow-env {name}` and `{name}` set in its environment; then launch with {take}"
        )
    };
    Some(Diagnosis {
        cause: format!(
            "it needs the environment variable `{name}`, which is missing or empty in the session"
        ),
        fix,
    })
}

/// An upper-case env name with an underscore (`GITHUB_TOKEN`), not a
/// runtime's error code (`ERR_…`, `E…` codes have no lower case either).
fn is_env_name(w: &str) -> bool {
    w.len() >= 4
        && w.len() <= 64
        && w.contains('_')
        && !w.starts_with("ERR_")
        && !w.starts_with('_')
        && w.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && w.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// What a runtime says when a name does not resolve or a host cannot be
/// reached: node's fetch and DNS codes, Python's socket and httpx/requests
/// errors, Go's and curl's.
const OFFLINE: &[&str] = &[
    "fetch failed",
    "ENOTFOUND",
    "EAI_AGAIN",
    "ENETUNREACH",
    "getaddrinfo",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Failed to establish a new connection",
    "NameResolutionError",
    "Max retries exceeded with url",
    "Could not resolve host",
    "no such host",
    "ConnectError",
    "ConnectionError",
];

/// A server that reached for the network at start: a session has none but
/// the destinations its launch was granted.
pub(super) fn network(facts: &Facts, ctx: &Context) -> Option<Diagnosis> {
    let line = line_with(facts.stderr, OFFLINE).or_else(|| line_with(facts.reason, OFFLINE))?;
    let line: String = line.trim().chars().take(200).collect();
    let fix = if ctx.allowed_egress.is_empty() {
        "the operator must act: no egress destination is allowed (show_policy's `allow_egress` is empty). Tell them: start mcpod with `--allow-egress HOST:PORT` for the host the server needs; then launch with `\"egress\": [\"HOST:PORT\"]` (a service on this machine: `forwards`)".to_string()
    } else {
        let allowed: Vec<&str> = ctx
            .allowed_egress
            .iter()
            .take(5)
            .map(String::as_str)
            .collect();
        format!(
            "launch with `\"egress\": [\"HOST:PORT\"]` naming the host it needs, among those the operator allows ({}{}); a service on this machine goes through `forwards`; session_logs shows each connection it tried",
            allowed.join(", "),
            if ctx.allowed_egress.len() > 5 {
                ", …"
            } else {
                ""
            }
        )
    };
    Some(Diagnosis {
        cause: format!(
            "it reached for the network at start (`{}`), and a session has no network but the destinations its launch grants",
            line.escape_debug()
        ),
        fix,
    })
}
