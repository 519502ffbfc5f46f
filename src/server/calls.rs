//! How a proxied call is made: at once, as a task, or in input rounds
//! (MRTR) for a 2026-07-28 agent, with its progress flushed in order.

use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ProtocolVersion};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use tokio_util::sync::CancellationToken;

use super::progress::forward_progress;
use super::tools::CallToolInput;
use super::{McpodServer, mrtr, progress, tasks};
use crate::proxy::Relay;

impl McpodServer {
    /// The names of the meta-tools (for docs and their checks).
    pub fn tool_names() -> Vec<String> {
        (Self::tool_router() + Self::admin_router())
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect()
    }

    /// A call of a meta-tool or a proxied tool, answered when it is done.
    pub(super) async fn call_now(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Some(refused) = self.refused_by_profile(&request.name, &context.extensions) {
            return Ok(CallToolResponse::Complete(refused));
        }
        // call_tool is the call it names, with that call's input rounds
        // and task; a name that does not resolve gets call_tool's errors.
        if let Some((exported, arguments)) = self.named_by_call_tool(&request) {
            request.name = exported.clone().into();
            request.arguments = arguments;
            return self.call_proxied(&exported, request, context).await;
        }
        if self.tool_router.has_route(&request.name) {
            return self
                .tool_router
                .call(ToolCallContext::new(self, request, context))
                .await;
        }
        let name = request.name.to_string();
        self.call_proxied(&name, request, context).await
    }

    /// The error answering a call of mcpod's tool `name` that the caller's
    /// profile (`serve --principals`) does not allow.
    fn refused_by_profile(
        &self,
        name: &str,
        extensions: &rmcp::model::Extensions,
    ) -> Option<rmcp::model::CallToolResult> {
        let caller = super::http::caller(extensions)?;
        let profile = caller.profile.as_ref()?;
        if !self.tool_router.has_route(name) || profile.allows_tool(name) {
            return None;
        }
        let message = format!(
            "`{}` may not call {name}: the operator's --principals file allows it only {}. \
             Fix: ask the operator to add {name} to its tools",
            caller.name,
            profile.tools.as_deref().unwrap_or_default().join(", ")
        );
        Some(rmcp::model::CallToolResult::error(vec![
            rmcp::model::ContentBlock::text(message),
        ]))
    }

    /// The exported name and arguments of the tool a `call_tool` call
    /// names, when that tool exists.
    pub(super) fn named_by_call_tool(
        &self,
        request: &CallToolRequestParams,
    ) -> Option<(String, Option<rmcp::model::JsonObject>)> {
        if request.name != "call_tool" {
            return None;
        }
        let arguments = serde_json::Value::Object(request.arguments.clone()?);
        let input: CallToolInput = serde_json::from_value(arguments).ok()?;
        let exported = crate::proxy::names::exported(&input.session, &input.server, &input.tool);
        let (session, server, tool) = self.sessions.resolve(&exported)?;
        (session == input.session && server == input.server && tool == input.tool)
            .then_some((exported, input.arguments))
    }

    /// A proxied call under its exported name, as a tool result. The
    /// child's requests to the agent meanwhile go to the task the call is
    /// (see `tasks.rs`), or, for a 2026-07-28 agent, become input requests
    /// of this call (see `mrtr.rs`); an `initialize` agent is asked directly.
    pub(super) async fn call_proxied(
        &self,
        name: &str,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let kind = mrtr::Kind::Tool;
        if let Some(handle) = &request.request_state {
            let answers = request.input_responses.clone();
            return Ok(self
                .resumed((handle, kind), answers, &context)
                .await?
                .into());
        }
        let principal = super::http::principal(&context.extensions);
        let resolved = self.sessions.resolve(name);
        let resolved = resolved.filter(|(session, ..)| self.sessions.visible(session, principal));
        let Some((session, server, tool)) = resolved else {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool `{name}`; list the tools again (sessions may have stopped), or use call_tool"
                ),
                None,
            ));
        };
        let (progress, flush) = forward_progress(&context.meta, context.peer.clone(), &self.handed);
        let task = context.extensions.get::<tasks::TaskInputs>().cloned();
        if modern(&context) && task.is_none() {
            let sessions = self.sessions.clone();
            let arguments = request.arguments;
            let run = move |inputs, cancel| async move {
                let relay = Relay {
                    progress,
                    inputs: Some(inputs),
                };
                let call = sessions.call(&session, &server, &tool, arguments, relay, cancel);
                call.await.map(mrtr::Answer::Tool)
            };
            return Ok(self.in_rounds(kind, &context, flush, run).await.into());
        }
        let result = self
            .sessions
            .call(
                &session,
                &server,
                &tool,
                request.arguments,
                Relay {
                    progress,
                    inputs: task.map(|t| t.0),
                },
                context.ct.clone(),
            )
            .await;
        flush.done().await;
        Ok(mrtr::Outcome::Done(result.map(mrtr::Answer::Tool)).into())
    }

    /// Run a proxied request so that a 2026-07-28 agent answers the child's
    /// questions in input rounds (see `mrtr.rs`): `run` is given where the
    /// questions go and the request's cancellation. The outcome is the
    /// request's answer, or the questions of its first round.
    pub(super) async fn in_rounds<F, Fut>(
        &self,
        kind: mrtr::Kind,
        context: &RequestContext<RoleServer>,
        flush: progress::Flush,
        run: F,
    ) -> mrtr::Outcome
    where
        F: FnOnce(crate::proxy::upstream::Inputs, CancellationToken) -> Fut,
        Fut: Future<Output = Result<mrtr::Answer, String>> + Send + 'static,
    {
        let (inputs, asks) = tokio::sync::mpsc::channel(crate::proxy::child::MAX_ASKS);
        let cancel = CancellationToken::new();
        let call = tokio::spawn(crate::telemetry::carried(run(inputs, cancel.clone())));
        let token = context.meta.get_progress_token();
        let principal = super::http::principal(&context.extensions);
        let routes = (flush, token, self.handed.clone());
        let parked = mrtr::Parked::new((kind, call), asks, cancel, routes).of(principal);
        let caps = context.client_capabilities();
        self.mrtr.drive(parked, caps.as_ref(), &context.ct).await
    }

    /// A retry that carries a `requestState`: the next round of the request
    /// parked under it, when the request is this principal's.
    pub(super) async fn resumed(
        &self,
        (handle, kind): (&str, mrtr::Kind),
        answers: Option<rmcp::model::InputResponses>,
        context: &RequestContext<RoleServer>,
    ) -> Result<mrtr::Outcome, ErrorData> {
        let progress = context.meta.get_progress_token();
        let caps = context.client_capabilities();
        let answers = answers.unwrap_or_default();
        let parked = (handle, kind, super::http::principal(&context.extensions));
        self.mrtr
            .resume(parked, answers, caps.as_ref(), (&context.ct, progress))
            .await
    }
}

impl McpodServer {
    /// A proxied `prompts/get` or `resources/read` (`kind`) that `run`
    /// sends, given where the child's questions go: a retry (`retry`, its
    /// `requestState` and answers) resumes the request parked under it; a
    /// 2026-07-28 agent's request runs in input rounds; any other runs to
    /// its end (the child's questions then go to the agent as requests).
    pub(super) async fn rounds_of<F, Fut>(
        &self,
        kind: mrtr::Kind,
        retry: (Option<String>, Option<rmcp::model::InputResponses>),
        context: &RequestContext<RoleServer>,
        run: F,
    ) -> Result<mrtr::Outcome, ErrorData>
    where
        F: FnOnce(Option<crate::proxy::upstream::Inputs>, CancellationToken) -> Fut,
        Fut: Future<Output = Result<mrtr::Answer, String>> + Send + 'static,
    {
        if let (Some(handle), answers) = retry {
            return self.resumed((&handle, kind), answers, context).await;
        }
        if modern(context) {
            let run = |inputs, cancel| run(Some(inputs), cancel);
            let flush = progress::Flush::none();
            return Ok(self.in_rounds(kind, context, flush, run).await);
        }
        Ok(mrtr::Outcome::Done(run(None, context.ct.clone()).await))
    }
}

/// Whether the request is a 2026-07-28 agent's (no server-to-client requests).
pub(super) fn modern(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
}
