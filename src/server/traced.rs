//! A span for each MCP request mcpod answers (`telemetry`): named
//! `<method> <target>` (the tool, prompt or resource), the child of the
//! client's `traceparent` in the request's `_meta` when it carries a valid
//! one, and in effect while the request is answered, so the builds,
//! launches and proxied requests it makes hang under it. With tracing off
//! the client's trace context stays in effect instead, for the children's
//! requests to carry on. rmcp has no hook around every request (and serves
//! HTTP only to a `ServerHandler`), so each handler in `mod.rs` opens its
//! own with [`McpodServer::span`]; the handshake and `ping` have none.
//! Calls that pass through as bytes get theirs in `fast.rs`.

use std::future::Future;

use rmcp::model::{CallToolRequestParams, CallToolResponse};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::McpodServer;
use crate::telemetry::{self, Kind, Span, TraceContext};

/// A request's span, the client's trace context (what stays in effect
/// with tracing off), and its audit record when it has one (`audited.rs`).
pub(super) struct RequestSpan {
    span: Span,
    client: Option<TraceContext>,
    audit: Option<crate::logging::audit::Entry>,
}

impl McpodServer {
    /// The span of request `method` (of `target`) in `context`.
    pub(super) fn span(
        &self,
        method: &str,
        target: Option<&str>,
        context: &RequestContext<RoleServer>,
    ) -> RequestSpan {
        // A map lookup when the client sent none.
        let client = TraceContext::from_meta(&context.meta.0.0);
        let mut span = Span::start(method, target, Kind::Server, client.as_ref());
        if span.is_on() {
            span.set("mcp.method.name", method);
            span.set("jsonrpc.request.id", context.id.to_string());
            let principal = super::http::principal(&context.extensions);
            let transport = if principal.is_some() { "tcp" } else { "pipe" };
            span.set("network.transport", transport);
            span.set("mcpod.principal", principal.unwrap_or("stdio"));
            if let Some(version) = context.protocol_version() {
                span.set("mcp.protocol.version", version.as_str());
            }
        }
        let audit = self.audit_request(method, target, context);
        RequestSpan {
            span,
            client,
            audit,
        }
    }

    /// The span of `tools/call` of `call`: the tool, and the session and
    /// server a proxied call (or `call_tool`) reaches.
    pub(super) fn call_span(
        &self,
        call: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> RequestSpan {
        let mut request = self.span("tools/call", Some(&call.name), context);
        let span = &mut request.span;
        if span.is_on() {
            span.set("gen_ai.tool.name", call.name.as_ref());
            span.set("gen_ai.operation.name", "execute_tool");
            let exported = self
                .named_by_call_tool(call)
                .map(|(exported, _)| exported)
                .unwrap_or_else(|| call.name.to_string());
            if let Some((session, server, _)) = self.sessions.resolve(&exported) {
                span.set("mcpod.session", session);
                span.set("mcpod.server", server);
            }
        }
        request
    }
}

impl RequestSpan {
    /// Answer with `work`, run with this span in effect (with tracing off,
    /// the client's trace context); the span ends failed when the answer
    /// is an error or a failed tool result.
    pub(super) async fn answer<T: Answer>(
        self,
        work: impl Future<Output = Result<T, ErrorData>>,
    ) -> Result<T, ErrorData> {
        let RequestSpan {
            mut span,
            client,
            audit,
        } = self;
        let result = telemetry::within(span.context().cloned().or(client), work).await;
        // Dropped unanswered (cancelled), the record says so itself.
        if let Some(entry) = audit {
            entry.finish(match &result {
                Ok(_) => crate::logging::audit::Outcome::Ok,
                Err(_) => crate::logging::audit::Outcome::Error,
            });
        }
        if span.is_on() {
            match &result {
                Ok(answer) => answer.note(&mut span),
                Err(e) => span.fail(&e.message),
            }
        }
        result
    }
}

/// What an answer adds to its request's span.
pub(super) trait Answer {
    fn note(&self, _span: &mut Span) {}
}

impl Answer for () {}

impl Answer for CallToolResponse {
    /// A tool's failure, and the session a launch started.
    fn note(&self, span: &mut Span) {
        let CallToolResponse::Complete(result) = self else {
            return;
        };
        if result.is_error == Some(true) {
            span.fail(&"the tool answered with isError");
            span.set("error.type", "tool_error");
        }
        let launched = result.structured_content.as_ref();
        if let Some(session) = launched.and_then(|c| c["session"].as_str()) {
            span.set("mcpod.session", session);
        }
    }
}

macro_rules! plain_answers {
    ($($t:ty),* $(,)?) => { $(impl Answer for $t {})* };
}

plain_answers!(
    rmcp::model::ListToolsResult,
    rmcp::model::ListPromptsResult,
    rmcp::model::ListResourcesResult,
    rmcp::model::ListResourceTemplatesResult,
    rmcp::model::GetPromptResponse,
    rmcp::model::ReadResourceResponse,
    rmcp::model::CompleteResult,
    rmcp::model::GetTaskResult,
);
