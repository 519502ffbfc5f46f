//! The agent as the children see it: where a child's requests to its client
//! (elicitation; sampling and roots, which 2026-07-28 deprecates), its log
//! messages and its resource updates go. One per mcpod process: it serves
//! one agent over stdio.
//!
//! A child's request reaches the agent only when the agent declared the
//! capability in its `initialize`; otherwise the child gets the error a
//! client without it gives (method not found), naming why. A 2026-07-28 agent
//! connects without `initialize` and forbids server-to-client requests (MRTR
//! replaces them), so children get that error from it too.

// Sampling, roots and logging are deprecated by 2026-07-28, and still forwarded.
#![allow(deprecated)]

use std::sync::RwLock;

use rmcp::model::{
    ClientResult, ErrorCode, ErrorData, LoggingLevel, LoggingMessageNotificationParam,
    ResourceUpdatedNotificationParam, ServerRequest,
};
use rmcp::{Peer, RoleServer};

/// The agent's side of mcpod, for children.
pub struct Upstream {
    /// The agent, once it has initialized (2025-11-25 and older).
    peer: RwLock<Option<Peer<RoleServer>>>,
    /// The level the agent asked for with `logging/setLevel`.
    level: RwLock<Option<LoggingLevel>>,
    /// Exported URIs of resources a child said were updated.
    updates: tokio::sync::broadcast::Sender<String>,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            peer: RwLock::new(None),
            level: RwLock::new(None),
            updates: tokio::sync::broadcast::channel(256).0,
        }
    }
}

/// What a child asks of its client, for messages and the capability check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ask {
    Elicitation,
    Sampling,
    Roots,
}

impl Ask {
    fn method(self) -> &'static str {
        match self {
            Ask::Elicitation => "elicitation/create",
            Ask::Sampling => "sampling/createMessage",
            Ask::Roots => "roots/list",
        }
    }
}

impl Upstream {
    /// The agent has initialized: children's requests may go to it.
    pub fn connect(&self, peer: Peer<RoleServer>) {
        *self.peer.write().unwrap_or_else(|p| p.into_inner()) = Some(peer);
    }

    fn peer(&self) -> Option<Peer<RoleServer>> {
        self.peer.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the agent declared what `ask` needs.
    pub fn declared(&self, ask: Ask) -> bool {
        let Some(peer) = self.peer() else {
            return false;
        };
        let Some(info) = peer.peer_info() else {
            return false;
        };
        let caps = &info.capabilities;
        match ask {
            Ask::Elicitation => caps.elicitation.is_some(),
            Ask::Sampling => caps.sampling.is_some(),
            Ask::Roots => caps.roots.is_some(),
        }
    }

    /// Pass a child's request to the agent, when it declared the capability.
    /// `from` names the child in the error.
    pub async fn ask(
        &self,
        from: &str,
        ask: Ask,
        request: ServerRequest,
    ) -> Result<ClientResult, ErrorData> {
        let peer = self.peer().filter(|_| self.declared(ask)).ok_or_else(|| {
            ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!(
                    "{from}: mcpod's client did not declare the capability `{}` needs (or connected with 2026-07-28, which takes no server-to-client requests), so mcpod cannot ask it",
                    ask.method()
                ),
                None,
            )
        })?;
        peer.send_request(request).await.map_err(|e| match e {
            rmcp::ServiceError::McpError(e) => e,
            other => ErrorData::internal_error(
                format!(
                    "{from}: mcpod's client did not answer `{}`: {other}",
                    ask.method()
                ),
                None,
            ),
        })
    }

    /// The level the agent set, if it did.
    pub fn level(&self) -> Option<LoggingLevel> {
        *self.level.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_level(&self, level: LoggingLevel) {
        *self.level.write().unwrap_or_else(|p| p.into_inner()) = Some(level);
    }

    /// A child's log message, its logger already naming the child.
    pub async fn log(&self, message: LoggingMessageNotificationParam) {
        if let Some(peer) = self.peer() {
            let _ = peer.notify_logging_message(message).await;
        }
    }

    /// A child's resource was updated (`uri` is the exported one): tell the
    /// agent (an `initialize` one subscribed with `resources/subscribe`) and
    /// every `subscriptions/listen` stream.
    pub async fn updated(&self, uri: String) {
        let _ = self.updates.send(uri.clone());
        if let Some(peer) = self.peer() {
            let _ = peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                .await;
        }
    }

    /// Updated resources' exported URIs, from now on.
    pub fn updates(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.updates.subscribe()
    }
}
