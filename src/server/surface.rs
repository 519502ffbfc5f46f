//! What mcpod serves besides tools, for the caller's principal: the
//! sessions' prompts and resources (through `session::surface`, in input
//! rounds for a 2026-07-28 agent), mcpod's own resources (each server's
//! stderr, `mcpod://sessions/<id>/logs/<server>`), and the
//! `subscriptions/listen` stream. A principal sees and reaches only the
//! sessions it launched; another's is answered as one that does not exist.
//! Over stdio (no principal) every session is the caller's.

use rmcp::model::{
    GetPromptRequestParams, GetPromptResponse, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer};

use super::{McpodServer, http, mrtr};
use crate::session::LogsInput;

/// Where mcpod's own resources (each server's stderr) are.
const LOGS_URI: &str = "mcpod://sessions/";

/// The session and server of one of mcpod's own logs URIs.
pub(super) fn logs_of(uri: &str) -> Option<(&str, &str)> {
    (crate::proxy::names::parse_resource_uri(uri).is_none())
        .then(|| uri.strip_prefix(LOGS_URI)?.split_once("/logs/"))
        .flatten()
}

impl McpodServer {
    /// `prompts/get` of an exported prompt name (see `rounds_of`).
    pub(super) async fn prompt_of(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let retry = (request.request_state, request.input_responses);
        let (sessions, name, arguments) = (self.sessions.clone(), request.name, request.arguments);
        let principal = http::principal(&context.extensions).map(str::to_string);
        let run = move |inputs, cancel| async move {
            let named = (name.as_str(), principal.as_deref());
            let got = sessions.get_prompt(named, arguments, inputs, cancel);
            got.await.map(mrtr::Answer::Prompt)
        };
        let kind = mrtr::Kind::Prompt;
        self.rounds_of(kind, retry, &context, run)
            .await?
            .into_prompt()
    }

    /// mcpod's own resources (each server's stderr), then the sessions'
    /// servers', of the sessions `principal` may see.
    pub(super) fn resources_of(&self, principal: Option<&str>) -> Vec<Resource> {
        let mut resources = Vec::new();
        for s in self.sessions.list() {
            if !self.sessions.visible(&s.session, principal) {
                continue;
            }
            for server in s.servers.keys() {
                let uri = format!("{LOGS_URI}{}/logs/{server}", s.session);
                resources.push(
                    Resource::new(uri, format!("{} {server} stderr", s.session))
                        .with_description(format!(
                            "stderr of server `{server}` in session {}",
                            s.session
                        ))
                        .with_mime_type("text/plain"),
                );
            }
        }
        resources.extend(self.sessions.resources(principal));
        resources
    }

    /// `resources/read`: a server's stderr, or a sessions' server's resource
    /// (see `rounds_of`).
    pub(super) async fn resource_of(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.clone();
        let principal = http::principal(&context.extensions);
        let Some((session, server)) = logs_of(&uri) else {
            let retry = (request.request_state, request.input_responses);
            let (sessions, principal) = (self.sessions.clone(), principal.map(str::to_string));
            let run = move |inputs, cancel| async move {
                let read = sessions.read_resource((&uri, principal.as_deref()), inputs, cancel);
                read.await.map(mrtr::Answer::Resource)
            };
            let kind = mrtr::Kind::Resource;
            return self
                .rounds_of(kind, retry, &context, run)
                .await?
                .into_resource();
        };
        let not_found = |e: crate::Error| ErrorData::resource_not_found(e.to_string(), None);
        self.sessions
            .check_visible(session, principal)
            .map_err(not_found)?;
        let logs = self
            .sessions
            .logs(&LogsInput {
                session: session.into(),
                server: Some(server.into()),
                tail: Some(1000),
            })
            .map_err(not_found)?;
        let text = logs
            .servers
            .get(server)
            .map(|l| l.join("\n"))
            .unwrap_or_default();
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri)]).into())
    }

    /// List changes, and updates of the resources the filter names (each
    /// subscribed at its server for the stream's life) that the caller may
    /// hear of.
    pub(super) async fn listen_on(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.sessions.subscribe();
        let mut updates = self.sessions.upstream().updates();
        let accepted = context.accepted().clone();
        let principal = http::principal(&context.request_context().extensions);
        let wants = |b: Option<bool>| b == Some(true);
        let mut uris = accepted.resource_subscriptions.clone().unwrap_or_default();
        for uri in &uris {
            if let Err(e) = self.sessions.subscribe_resource(uri, true, principal).await {
                tracing::warn!("subscriptions/listen: {e}");
            }
        }
        uris.retain(|uri| self.sessions.may_hear(uri, principal));
        let ended = loop {
            tokio::select! {
                told = self.sessions.next_change(&mut changes, principal) => {
                    if !told { break Ok(()); }
                    let sink = context.sink();
                    if (wants(accepted.tools_list_changed) && sink.notify_tool_list_changed().await.is_err())
                        || (wants(accepted.prompts_list_changed) && sink.notify_prompt_list_changed().await.is_err())
                        || (wants(accepted.resources_list_changed) && sink.notify_resource_list_changed().await.is_err())
                    {
                        break Ok(());
                    }
                }
                updated = updates.recv() => match updated {
                    Ok(uri) if uris.contains(&uri) => {
                        if context.sink().notify_resource_updated(uri).await.is_err() { break Ok(()); }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break Ok(()),
                },
                _ = context.cancelled() => break Ok(()),
            }
        };
        for uri in &uris {
            let _ = self
                .sessions
                .subscribe_resource(uri, false, principal)
                .await;
        }
        ended
    }
}
