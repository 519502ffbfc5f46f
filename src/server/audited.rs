//! Every tool call an agent makes, in the audit log (`logging/audit.rs`):
//! rmcp's calls (stdio and HTTP) are recorded around
//! `ServerHandler::call_tool`, the stdio fast path's in `fast.rs`.

use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, CallToolResponse};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::McpodServer;
use crate::logging::audit::{AuditLog, Entry, Outcome};

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
