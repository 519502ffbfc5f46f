//! Every tool call an agent makes, in the audit log (`logging/audit.rs`):
//! rmcp's calls (stdio and HTTP) are recorded around
//! `ServerHandler::call_tool`, the stdio fast path's in `fast.rs`. The other
//! requests that reach a session or change what one sends
//! ([`AUDITED`]) are recorded with their request's span (`traced.rs`):
//! the method, and the session and server they reach, never the prompt's
//! arguments or the resource's URI (either may carry a value).

use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, CallToolResponse};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::McpodServer;
use crate::logging::audit::{AuditLog, Entry, Outcome};

/// The requests besides `tools/call` the audit log records.
pub(super) const AUDITED: [&str; 6] = [
    "prompts/get",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
];

impl McpodServer {
    /// Record every tool call in `log` (the fast path's too).
    pub(super) fn with_audit(mut self, log: Arc<AuditLog>) -> Self {
        self.fast.set_audit(log.clone());
        self.audit = Some(log);
        self
    }

    /// The record of a `tools/call` about to be made: the principal (the
    /// token's name, or `stdio`), the tool, its arguments' names and sizes,
    /// and the session and server it reaches (a session only when it is one:
    /// an argument's value is kept only when it names a session here).
    pub(super) fn audit_call(
        &self,
        call: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Option<Entry> {
        let principal = super::http::principal(&context.extensions).unwrap_or("stdio");
        let mut entry = self.audit.as_ref()?.begin(principal, "tools/call");
        entry.tool(&call.name);
        if let Some(arguments) = &call.arguments {
            entry.arguments(arguments);
        }
        let exported = self
            .named_by_call_tool(call)
            .map(|(exported, _)| exported)
            .unwrap_or_else(|| call.name.to_string());
        if let Some((session, server, _)) = self.sessions.resolve(&exported) {
            entry.reached(&session, Some(&server));
            return Some(entry);
        }
        let named = call
            .arguments
            .as_ref()
            .and_then(|a| a.get("session"))
            .and_then(|s| s.as_str());
        if let Some(session) = named.filter(|s| self.sessions.exists(s)) {
            entry.reached(session, None);
        }
        Some(entry)
    }

    /// The record of request `method` (of `target`: a prompt's exported
    /// name, a resource URI), when it is one of [`AUDITED`].
    pub(super) fn audit_request(
        &self,
        method: &str,
        target: Option<&str>,
        context: &RequestContext<RoleServer>,
    ) -> Option<Entry> {
        if !AUDITED.contains(&method) {
            return None;
        }
        let principal = super::http::principal(&context.extensions);
        let mut entry = self
            .audit
            .as_ref()?
            .begin(principal.unwrap_or("stdio"), method);
        let reached = target.and_then(|t| match super::surface::logs_of(t) {
            Some((session, server)) => self
                .sessions
                .visible(session, principal)
                .then(|| (session.to_string(), server.to_string())),
            None => self.sessions.reaches(method, t, principal),
        });
        if let Some((session, server)) = reached {
            entry.reached(&session, Some(&server));
        }
        Some(entry)
    }

    /// Write `entry` with how `response` ended (a session launched is named).
    pub(super) fn audited(
        &self,
        entry: Option<Entry>,
        response: &Result<CallToolResponse, ErrorData>,
        cancelled: &tokio_util::sync::CancellationToken,
    ) {
        let Some(mut entry) = entry else {
            return;
        };
        let outcome = match response {
            Err(_) if cancelled.is_cancelled() => Outcome::Cancelled,
            Err(_) => Outcome::Error,
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => Outcome::Error,
            Ok(CallToolResponse::InputRequired(_)) => Outcome::InputRequired,
            Ok(_) => Outcome::Ok,
        };
        if let Ok(CallToolResponse::Complete(r)) = response {
            let launched = r
                .structured_content
                .as_ref()
                .and_then(|c| c["session"].as_str());
            if let Some(session) = launched.filter(|s| self.sessions.exists(s)) {
                entry.reached(session, None);
            }
        }
        entry.finish(outcome);
    }
}
