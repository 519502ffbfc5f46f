//! A session's servers: starting each as a stream of the session's
//! container (once more with `initialize` only when one failed the
//! `server/discover` probe); each failure diagnosed (`diagnose`), and, when
//! none came up, why and what to do: for a provisioned package that failed
//! on today's dependencies, the launch resolved as of its publication.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::LaunchInput;
use super::diagnose::{self, Diagnosis};
use super::live::Session;
use super::registry::Sessions;
use super::stream::SessionStream;
use crate::Error;
use crate::image::Progress;
use crate::labels::ServerSpec;
use crate::proxy::{Child, StartSpec, Status};

impl Sessions {
    /// Diagnose each server of `servers` that failed to start (the image's
    /// labels asked of podman only then) and add the cause and fix to its
    /// reason, as `list_sessions` and the launch's error show it.
    pub(super) async fn diagnose(
        &self,
        servers: &BTreeMap<String, Arc<Child>>,
        image_id: &str,
        isolation: &super::Isolation,
    ) -> BTreeMap<String, Diagnosis> {
        if servers.values().all(|c| c.is_ready()) {
            return BTreeMap::new();
        }
        let labels = crate::image::inspect_labels(image_id)
            .await
            .map(|i| i.labels)
            .unwrap_or_default();
        let ctx = diagnose::Context {
            labels,
            mounts: isolation.mounts.clone(),
            mount_roots: self.policy.mount_roots.clone(),
            allowed_env: self.policy.allowed_env.clone(),
            allowed_egress: self
                .policy
                .allow_egress
                .iter()
                .map(|p| p.to_string())
                .collect(),
        };
        let found = diagnose::each(servers, &ctx);
        for (name, d) in &found {
            if let Some(child) = servers.get(name) {
                child.explain(&d.said());
            }
        }
        found
    }

    /// Start each server of `chosen` as a stream of `stream`, in parallel;
    /// one failing leaves the others.
    pub(super) async fn start_servers(
        &self,
        session: &str,
        stream: &Arc<SessionStream>,
        chosen: &BTreeMap<String, ServerSpec>,
        envs: &BTreeMap<String, BTreeMap<String, String>>,
        isolation: &super::Isolation,
        progress: &Progress,
    ) -> BTreeMap<String, Arc<Child>> {
        let egress = !isolation.egress.is_empty();
        let mut set = tokio::task::JoinSet::new();
        for (i, (server, spec)) in chosen.iter().enumerate() {
            let start = self.child_spec(session, server, spec);
            let stream = stream.clone();
            let (server, spec) = (server.clone(), spec.clone());
            let mut env = envs.get(&server).cloned().unwrap_or_default();
            // Each server's own proxy, so the audit names the server.
            let proxy_port = egress.then(|| crate::egress::PROXY_PORTS + i as u16);
            if let Some(port) = proxy_port {
                for (name, value) in crate::egress::proxy_env(port) {
                    // The label's own setting wins; it cannot reach further.
                    env.entry(name.into()).or_insert(value);
                }
            }
            let progress = progress.clone();
            set.spawn(async move {
                let open = || {
                    stream.start_server(
                        &server,
                        &spec.command,
                        &env,
                        spec.workdir.as_deref(),
                        proxy_port,
                    )
                };
                let again = StartSpec {
                    legacy: true,
                    ..start.clone()
                };
                let child = Child::start(start, open().await).await;
                if !child.probe_failed() {
                    return (server, child);
                }
                (progress)(format!(
                    "server {server}: failed the handshake that probed with server/discover; starting it again with initialize only"
                ));
                (server.clone(), Child::start(again, open().await).await)
            });
        }
        let mut started = BTreeMap::new();
        while let Some(joined) = set.join_next().await {
            if let Ok((server, child)) = joined {
                report(progress, &server, &child);
                started.insert(server, child);
            }
        }
        started
    }

    /// How to start and talk to `server`.
    fn child_spec(&self, session: &str, server: &str, spec: &ServerSpec) -> StartSpec {
        StartSpec {
            name: server.to_string(),
            session: session.to_string(),
            upstream: self.upstream.clone(),
            command: spec.command.clone(),
            handshake: Duration::from_secs(self.policy.handshake_secs),
            call_timeout: Duration::from_secs(
                spec.call_timeout_secs
                    .map(u64::from)
                    .unwrap_or(self.policy.default_call_secs),
            ),
            changed: self.changed.clone(),
            legacy: false,
        }
    }
}

/// Why each server of a session failed: its reason (with the cause
/// `diagnoses` found, its fix left to the error's), exit code and stderr tail.
pub(super) fn no_server_ready(
    session: &Session,
    diagnoses: &BTreeMap<String, Diagnosis>,
) -> String {
    session
        .servers
        .iter()
        .map(|(name, child)| match child.status() {
            Status::Ready => format!("server `{name}` is ready"),
            Status::Failed {
                reason,
                exit_code,
                stderr_tail,
                ..
            } => {
                let reason = match diagnoses.get(name) {
                    Some(d) => reason
                        .strip_suffix(&d.said())
                        .map(|r| format!("{r}: {}", d.cause))
                        .unwrap_or(reason),
                    None => reason,
                };
                let mut line = format!("server `{name}`: {reason}");
                if let Some(code) = exit_code
                    && !reason.contains(&format!("code {code}"))
                {
                    line.push_str(&format!(" (exit code {code})"));
                }
                let tail = stderr_tail.trim();
                if tail.is_empty() {
                    line.push_str("; it wrote nothing to stderr");
                } else {
                    line.push_str(&format!(
                        "; its stderr ends: {}",
                        crate::engine::process::tail(tail, 1024)
                    ));
                }
                line
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The fix for a session none of whose servers came up: each diagnosed
/// server's fix (named by server when they differ), else the generic one.
pub(super) fn start_failure_fix(diagnoses: &BTreeMap<String, Diagnosis>) -> String {
    let mut fixes: Vec<(&String, &String)> = Vec::new();
    for (server, d) in diagnoses {
        if !fixes.iter().any(|(_, f)| **f == d.fix) {
            fixes.push((server, &d.fix));
        }
    }
    match fixes.as_slice() {
        [] => Error::NO_SERVER_READY_FIX.to_string(),
        [(_, fix)] => fix.to_string(),
        many => many
            .iter()
            .map(|(server, fix)| format!("for server `{server}`, {fix}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// The launch to try again when a package provisioned with today's
/// dependencies failed on them: the same request resolved as of the
/// package's publication, unless the request already chose its dependencies
/// (`resolve_as_of`, `pins`) or was no package.
pub(super) fn as_of_publication(
    mut asked: LaunchInput,
    provisioned: Option<&crate::provision::Provisioned>,
    failed: &Error,
) -> Option<LaunchInput> {
    let provisioned = provisioned?;
    let Error::NoServerReady { fix, .. } = failed else {
        return None;
    };
    if !fix.contains("resolve_as_of") || provisioned.lock.is_none() {
        return None;
    }
    let mut request = asked.provision.take().unwrap_or_default();
    if request.resolve_as_of.is_some() || !request.pins.is_empty() {
        return None;
    }
    // The exact version it resolved to: `published` needs one.
    if request.server_json.is_none() {
        request.package = Some(provisioned.reference.clone());
        asked.image = String::new();
    }
    request.resolve_as_of = Some("published".into());
    asked.provision = Some(request);
    Some(asked)
}

/// Say how a server came up.
fn report(progress: &Progress, server: &str, child: &Child) {
    let state = match child.status() {
        Status::Ready => format!("ready with {} tools", child.tools().len()),
        Status::Failed { reason, .. } => format!("failed: {reason}"),
    };
    (progress)(format!("server {server}: {state}"));
}
