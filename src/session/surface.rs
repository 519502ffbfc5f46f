//! What the sessions offer besides tools, under exported names: prompts
//! (`<session>_<server>__<prompt>`), resources and templates
//! (`mcpod://sessions/<session>/servers/<server>/<uri>`), completions routed
//! by their reference, resource subscriptions and the log level. Tools and
//! calls are in `registry.rs`.
//!
//! Each takes the caller's principal (`None` over stdio, which reaches every
//! session): lists hold only the items of sessions it may see, and a name or
//! URI of another principal's session is answered as one of a session that
//! does not exist (see [`Sessions::visible`]).

// Logging is deprecated by 2026-07-28, and still forwarded.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::model::{
    ClientRequest, CompleteRequest, CompleteRequestParams, CompleteResult, GetPromptRequest,
    GetPromptRequestParams, GetPromptResult, JsonObject, LoggingLevel, Prompt, ReadResourceRequest,
    ReadResourceRequestParams, ReadResourceResult, Reference, Resource, ResourceContents,
    ResourceTemplate, ResultType, ServerResult,
};
use tokio_util::sync::CancellationToken;

use super::registry::Sessions;
use crate::proxy::upstream::Inputs;
use crate::proxy::{Child, Relay, names};

/// A request answered by the wrong kind of result.
fn unexpected(server: &str, method: &str, other: &ServerResult) -> String {
    format!("server `{server}` answered {method} with an unexpected result: {other:?}")
}

fn note(session: &str, server: &str, upstream: &str) -> String {
    format!("[mcpod session {session} server {server}: `{upstream}`]")
}

impl Sessions {
    /// The prompts of every ready server `principal` may see, under their
    /// exported names.
    pub fn prompts(&self, principal: Option<&str>) -> Vec<Prompt> {
        self.each_child(principal, |session, server, child| {
            child
                .prompts()
                .into_iter()
                .map(|mut p| {
                    let note = note(session, server, &p.name);
                    p.name = names::exported(session, server, &p.name);
                    p.description = Some(match p.description.take() {
                        Some(d) => format!("{d} {note}"),
                        None => note,
                    });
                    p
                })
                .collect()
        })
    }

    /// The resources of every ready server `principal` may see, under their
    /// exported URIs.
    pub fn resources(&self, principal: Option<&str>) -> Vec<Resource> {
        self.each_child(principal, |session, server, child| {
            child
                .resources()
                .into_iter()
                .map(|mut r| {
                    r.uri = names::resource_uri(session, server, &r.uri);
                    r
                })
                .collect()
        })
    }

    /// The resource templates of every ready server `principal` may see,
    /// under their exported URIs.
    pub fn templates(&self, principal: Option<&str>) -> Vec<ResourceTemplate> {
        self.each_child(principal, |session, server, child| {
            child
                .templates()
                .into_iter()
                .map(|mut t| {
                    t.uri_template = names::resource_uri(session, server, &t.uri_template);
                    t
                })
                .collect()
        })
    }

    /// `f` of each server of each session `principal` may see, in order,
    /// joined.
    fn each_child<T>(
        &self,
        principal: Option<&str>,
        f: impl Fn(&str, &str, &Child) -> Vec<T>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for s in self.all() {
            if !self.visible(&s.id, principal) {
                continue;
            }
            for (name, child) in &s.servers {
                out.extend(f(&s.id, name, child));
            }
        }
        out
    }

    /// The session and server a request for `target` goes to (a prompt's
    /// exported name for `prompts/*`, else a resource URI), when it names
    /// one `principal` may see: what the audit log records of it.
    pub fn reaches(
        &self,
        method: &str,
        target: &str,
        principal: Option<&str>,
    ) -> Option<(String, String)> {
        let found = if method.starts_with("prompts/") {
            self.resolve_prompt(target, principal)
        } else {
            self.route_uri(target, principal)
        };
        found.ok().map(|(session, server, _)| (session, server))
    }

    /// An exported prompt name of a session `principal` may see: (session,
    /// server, the child's name).
    fn resolve_prompt(
        &self,
        exported: &str,
        principal: Option<&str>,
    ) -> Result<(String, String, String), String> {
        let found = self.resolve_in(exported, |c| &c.prompts, |p| &p.name);
        let found = found.filter(|(session, ..)| self.visible(session, principal));
        found.ok_or_else(|| {
            format!(
                "unknown prompt `{exported}`; list the prompts again (sessions may have stopped)"
            )
        })
    }

    /// Where a resource URI goes: (session, server, the child's URI). An
    /// exported URI names them (another principal's session is refused as
    /// one that does not exist); any other is routed to the one server of
    /// the sessions `principal` may see that lists it, or the one that
    /// offers resources at all.
    fn route_uri(
        &self,
        uri: &str,
        principal: Option<&str>,
    ) -> Result<(String, String, String), String> {
        if let Some((session, server, inner)) = names::parse_resource_uri(uri) {
            self.check_visible(session, principal)
                .map_err(|e| e.to_string())?;
            return Ok((session.into(), server.into(), inner.into()));
        }
        let mut listing = Vec::new();
        let mut offering = Vec::new();
        for s in self.all() {
            if !self.visible(&s.id, principal) {
                continue;
            }
            for (name, child) in &s.servers {
                if !child.is_ready() || child.offers().resources.is_none() {
                    continue;
                }
                let here = (s.id.clone(), name.clone(), uri.to_string());
                if child.with_catalog(|c| c.resources.iter().any(|r| r.uri == uri)) {
                    listing.push(here.clone());
                }
                offering.push(here);
            }
        }
        let candidates = if listing.is_empty() {
            offering
        } else {
            listing
        };
        match candidates.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(format!(
                "no resource `{uri}`: no running server offers it. Resources of sessions are mcpod://sessions/<session>/servers/<server>/<uri>; list the resources again"
            )),
            many => Err(format!(
                "resource `{uri}` could be on more than one server; name one: {}",
                many.iter()
                    .map(|(s, srv, u)| names::resource_uri(s, srv, u))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Send `request` to `server` of `session`, within its calls in flight.
    async fn forward(
        &self,
        (session, server): (&str, &str),
        what: &str,
        request: ClientRequest,
        relay: Relay,
        cancel: CancellationToken,
    ) -> Result<ServerResult, String> {
        let (s, child) = self.server_of(session, server)?;
        let _permit = s.permit()?;
        child.request(what, request, relay, cancel).await
    }

    /// `prompts/get` of an exported prompt name of a session `principal`
    /// may see. The child's requests to the agent meanwhile go to `inputs`,
    /// when given.
    pub async fn get_prompt(
        &self,
        (exported, principal): (&str, Option<&str>),
        arguments: Option<JsonObject>,
        inputs: Option<Inputs>,
        cancel: CancellationToken,
    ) -> Result<GetPromptResult, String> {
        let (session, server, prompt) = self.resolve_prompt(exported, principal)?;
        let mut params = GetPromptRequestParams::new(&prompt);
        params.arguments = arguments;
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(params));
        let what = format!("prompts/get of `{prompt}`");
        let relay = Relay {
            progress: None,
            inputs,
        };
        match self
            .forward((&session, &server), &what, request, relay, cancel)
            .await?
        {
            ServerResult::GetPromptResult(mut result) => {
                result.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(result)
            }
            other => Err(unexpected(&server, "prompts/get", &other)),
        }
    }

    /// `resources/read` of a resource URI, for `principal` (see
    /// `route_uri`); the contents come back under exported URIs.
    pub async fn read_resource(
        &self,
        (uri, principal): (&str, Option<&str>),
        inputs: Option<Inputs>,
        cancel: CancellationToken,
    ) -> Result<ReadResourceResult, String> {
        let (session, server, inner) = self.route_uri(uri, principal)?;
        let request = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(
            ReadResourceRequestParams::new(&inner),
        ));
        let what = format!("resources/read of `{inner}`");
        let relay = Relay {
            progress: None,
            inputs,
        };
        match self
            .forward((&session, &server), &what, request, relay, cancel)
            .await?
        {
            ServerResult::ReadResourceResult(mut result) => {
                for contents in &mut result.contents {
                    if let ResourceContents::TextResourceContents { uri, .. }
                    | ResourceContents::BlobResourceContents { uri, .. } = contents
                    {
                        *uri = names::resource_uri(&session, &server, uri);
                    }
                }
                result.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(result)
            }
            other => Err(unexpected(&server, "resources/read", &other)),
        }
    }

    /// `completion/complete`, to the server its prompt or resource names
    /// (of a session `principal` may see).
    pub async fn complete(
        &self,
        mut params: CompleteRequestParams,
        principal: Option<&str>,
        cancel: CancellationToken,
    ) -> Result<CompleteResult, String> {
        let (session, server) = match &mut params.r#ref {
            Reference::Prompt(prompt) => {
                let (session, server, upstream) = self.resolve_prompt(&prompt.name, principal)?;
                prompt.name = upstream;
                (session, server)
            }
            Reference::Resource(resource) => {
                let (session, server, inner) = self.route_uri(&resource.uri, principal)?;
                resource.uri = inner;
                (session, server)
            }
            _ => return Err("completion/complete of an unknown kind of reference".into()),
        };
        params.meta = None;
        let request = ClientRequest::CompleteRequest(CompleteRequest::new(params));
        match self
            .forward(
                (&session, &server),
                "completion/complete",
                request,
                Relay::default(),
                cancel,
            )
            .await?
        {
            ServerResult::CompleteResult(mut result) => {
                result.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(result)
            }
            other => Err(unexpected(&server, "completion/complete", &other)),
        }
    }

    /// Subscribe to (or unsubscribe from) a resource's updates at its
    /// server, for `principal` (see `route_uri`).
    pub async fn subscribe_resource(
        &self,
        uri: &str,
        on: bool,
        principal: Option<&str>,
    ) -> Result<(), String> {
        let (session, server, inner) = self.route_uri(uri, principal)?;
        let (s, child) = self.server_of(&session, &server)?;
        if child.offers().resources.as_ref().and_then(|r| r.subscribe) != Some(true) {
            return Err(format!(
                "server `{server}` of session {session} does not offer resource subscriptions"
            ));
        }
        let _permit = s.permit()?;
        child.subscribe_resource(&inner, on).await
    }

    /// Whether `principal` may hear of updates of `uri`: updates carry
    /// exported URIs, and one of a session it may not see is not its to hear.
    pub fn may_hear(&self, uri: &str, principal: Option<&str>) -> bool {
        names::parse_resource_uri(uri).is_none_or(|(session, ..)| self.visible(session, principal))
    }

    /// The agent's log level: on stdio kept for servers that start later,
    /// and sent to every ready server that offers logging; over HTTP sent
    /// only to the servers of the caller's own sessions.
    pub async fn set_level(&self, level: LoggingLevel, principal: Option<&str>) {
        if principal.is_none() {
            self.upstream.set_level(level);
        }
        let children: Vec<Arc<Child>> = self
            .all()
            .iter()
            .filter(|s| self.visible(&s.id, principal))
            .flat_map(|s| s.servers.values().cloned())
            .collect();
        for child in children {
            child.set_level(level).await;
        }
    }
}
