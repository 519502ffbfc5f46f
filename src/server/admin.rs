//! What only an admin may do over HTTP (a token of `token create --admin`,
//! or an access token with `--oauth-admin-scope`): read the audit log. On
//! stdio the one client is the operator's, and may read it too. An admin's
//! list_sessions, stop_session and session_logs reach every principal's
//! sessions ([`super::http::viewer`]).

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::Extensions;
use rmcp::{Json, tool, tool_router};

use super::McpodServer;
use crate::logging::audit_read::{AuditView, ReadAuditInput};

#[tool_router(router = admin_router, vis = "pub(super)")]
impl McpodServer {
    #[tool(
        description = "The last records of mcpod's audit log (one per request: time, principal, method, tool, session, server, argument names and sizes but never values, duration, outcome), oldest first, optionally only those of one principal, session or tool. Over HTTP, for admins only.",
        annotations(
            title = "Read the audit log",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn read_audit(
        &self,
        Parameters(input): Parameters<ReadAuditInput>,
        extensions: Extensions,
    ) -> Result<Json<AuditView>, String> {
        if let Some(caller) = super::http::caller(&extensions)
            && !caller.admin
        {
            return Err(format!(
                "read_audit is for admins; `{}` is not one. Fix: ask the operator for an admin token \
                 (`mcpod token create NAME --admin`) or an access token with the admin scope",
                caller.name
            ));
        }
        let Some(audit) = &self.audit else {
            return Err("this mcpod keeps no audit log".to_string());
        };
        let audit = audit.clone();
        tokio::task::spawn_blocking(move || audit.read(&input))
            .await
            .map_err(|e| format!("reading the audit log: {e}"))?
            .map(Json)
            .map_err(|e| format!("reading the audit log: {e}"))
    }
}
