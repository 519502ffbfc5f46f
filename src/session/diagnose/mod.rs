//! Why a server failed at start, and what to do about it with mcpod's own
//! tools. The proxy reports the facts (its command, exit code, stderr tail,
//! whether the handshake began); this reads them against what the session
//! knows (the image's provisioned package and lock, its mounts, the
//! operator's policy) and names the cause and a fix: a pin or
//! `resolve_as_of`, a runtime, `writable_paths`, `system_packages`, `egress`, or, when
//! only the operator can act, what to ask of them.

use std::collections::BTreeMap;

use super::policy::{GrantedMount, MountRoot};
use crate::proxy::Status;

mod files;
mod program;
mod runtime;
mod service;

/// What the proxy saw of one server's failed start.
pub(crate) struct Facts<'a> {
    pub server: &'a str,
    pub command: &'a [String],
    pub exit_code: Option<i32>,
    /// The proxy's reason (a failed `tools/list` carries the server's error).
    pub reason: &'a str,
    pub stderr: &'a str,
    /// False when its process never ran (the supervisor refused the start).
    pub handshake_started: bool,
}

/// What the session knows that the diagnosis reads.
#[derive(Default)]
pub(crate) struct Context {
    /// The image's labels (a provisioned image names its package and lock).
    pub labels: BTreeMap<String, String>,
    /// The session's mounts.
    pub mounts: Vec<GrantedMount>,
    /// The operator's mount roots (show_policy's `mount_roots`).
    pub mount_roots: Vec<MountRoot>,
    /// The env names the operator allowed (`--allow-env`).
    pub allowed_env: Vec<String>,
    /// The egress destinations the operator allows (`--allow-egress`).
    pub allowed_egress: Vec<String>,
}

impl Context {
    /// The package the image was provisioned from, as its exact reference
    /// (`npm:NAME@1.2.3`), and its ecosystem, when mcpod provisioned it
    /// (its lock label is there).
    pub(crate) fn package(&self) -> Option<(String, crate::provision::Ecosystem)> {
        self.labels.get(crate::provision::drift::LOCK_LABEL)?;
        let title = self.labels.get(crate::provision::drift::TITLE_LABEL)?;
        let package = crate::provision::PackageRef::parse("label", title).ok()?;
        Some((title.clone(), package.ecosystem))
    }
}

/// A failure's cause and its fix, each a sentence for the agent.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Diagnosis {
    pub cause: String,
    pub fix: String,
}

impl Diagnosis {
    /// What is added to the proxy's reason.
    pub(crate) fn said(&self) -> String {
        format!(": {}. Fix: {}", self.cause, self.fix)
    }
}

/// The cause of a failed start and its fix; None when nothing in the facts
/// is one mcpod knows. The first that matches wins, most specific first.
pub(crate) fn diagnose(facts: &Facts, ctx: &Context) -> Option<Diagnosis> {
    program::missing(facts, ctx)
        .or_else(|| runtime::node_builtin(facts, ctx))
        .or_else(|| dependency(facts, ctx))
        .or_else(|| files::read_only(facts))
        .or_else(|| files::denied(facts, ctx))
        .or_else(|| service::port_in_use(facts))
        .or_else(|| service::credential(facts, ctx))
        .or_else(|| service::network(facts, ctx))
}

/// A provisioned package that failed importing or using a dependency: the
/// installed versions from its staged lock, and `resolve_as_of` or a pin.
fn dependency(facts: &Facts, ctx: &Context) -> Option<Diagnosis> {
    if !crate::provision::drift::looks_like_drift(facts.stderr) {
        return None;
    }
    let (cause, fix) = crate::provision::drift::fix(&ctx.labels, facts.stderr)?;
    Some(Diagnosis { cause, fix })
}

/// The diagnosis of each failed server of `servers` (by name).
pub(crate) fn each(
    servers: &BTreeMap<String, std::sync::Arc<crate::proxy::Child>>,
    ctx: &Context,
) -> BTreeMap<String, Diagnosis> {
    let mut out = BTreeMap::new();
    for (name, child) in servers {
        if let Status::Failed {
            reason,
            exit_code,
            stderr_tail,
            command,
            handshake_started,
            ..
        } = child.status()
        {
            let facts = Facts {
                server: name,
                command: &command,
                exit_code,
                reason: &reason,
                stderr: &stderr_tail,
                handshake_started,
            };
            if let Some(d) = diagnose(&facts, ctx) {
                out.insert(name.clone(), d);
            }
        }
    }
    out
}

/// The last line of `stderr` that contains any of `needles`.
fn line_with<'a>(stderr: &'a str, needles: &[&str]) -> Option<&'a str> {
    stderr
        .lines()
        .rev()
        .find(|l| needles.iter().any(|n| l.contains(n)))
}

#[cfg(test)]
mod tests;
