//! The agent as the children see it: where a child's requests to its client
//! (elicitation; sampling and roots, which 2026-07-28 deprecates), its log
//! messages and its resource updates go. One per mcpod process: it serves
//! one agent over stdio.
//!
//! A child's request reaches the agent only when the agent declared the
//! capability in its `initialize`; otherwise the child gets the error a
//! client without it gives (method not found), naming why. A 2026-07-28 agent
//! connects without `initialize` and forbids server-to-client requests: there
//! a child's request goes to the one call of the agent's that it is serving,
//! as an input request of that call (MRTR, see `server/mrtr.rs`), through an
//! [`Inputs`] channel the call carries.

// Sampling, roots and logging are deprecated by 2026-07-28, and still forwarded.
#![allow(deprecated)]

use std::sync::RwLock;

use rmcp::model::{
    ClientResult, CreateMessageResult, ElicitResult, ErrorCode, ErrorData, ListRootsResult,
    LoggingLevel, LoggingMessageNotificationParam, ResourceUpdatedNotificationParam, ServerRequest,
};
use rmcp::{Peer, RoleServer};
use serde::Deserialize;

/// A child's request to the agent, on its way to the call it belongs to;
/// `reply` takes the agent's answer (its result as JSON) or the error.
pub struct Asked {
    pub ask: Ask,
    pub request: ServerRequest,
    pub reply: tokio::sync::oneshot::Sender<Result<serde_json::Value, ErrorData>>,
}

/// Where a call takes its child's requests to the agent.
pub type Inputs = tokio::sync::mpsc::Sender<Asked>;

/// Bytes of a child's log message data (as JSON) passed to the agent.
pub const LOG_DATA_BYTES: usize = 4096;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ask {
    Elicitation,
    Sampling,
    Roots,
}

impl Ask {
    pub fn method(self) -> &'static str {
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

    /// What a child starting now is told it may ask: what an `initialize`
    /// agent declared, once it has; else everything (a 2026-07-28 agent
    /// declares per request, and a pooled session starts before its agent
    /// is known), each checked again when asked.
    pub fn may_ask(&self, ask: Ask) -> bool {
        match self.peer().and_then(|p| p.peer_info()) {
            Some(_) => self.declared(ask),
            None => true,
        }
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

    /// Pass a child's request to the agent, when it declared the capability:
    /// straight to an `initialize` agent, or as an input request of the one
    /// call in `inputs` (a 2026-07-28 agent's). `from` names the child.
    pub async fn ask(
        &self,
        from: &str,
        ask: Ask,
        request: ServerRequest,
        inputs: &[Inputs],
    ) -> Result<ClientResult, ErrorData> {
        let refused = |why: &str| {
            ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!(
                    "{from}: mcpod cannot ask its client `{}`: {why}",
                    ask.method()
                ),
                None,
            )
        };
        let Some(peer) = self.peer() else {
            let [call] = inputs else {
                return Err(refused(if inputs.is_empty() {
                    "the client did not declare that capability in a call waiting on this server (none of its calls here declared it, or none is waiting), and a 2026-07-28 client takes no server-to-client requests"
                } else {
                    "more than one call of the client's is waiting on this server, and a 2026-07-28 client can only be asked within the call the question belongs to"
                }));
            };
            let (reply, answer) = tokio::sync::oneshot::channel();
            let asked = Asked {
                ask,
                request,
                reply,
            };
            call.send(asked)
                .await
                .map_err(|_| refused("the call it belongs to has ended"))?;
            let value = answer
                .await
                .map_err(|_| refused("the call it belongs to has ended"))??;
            let answered = match ask {
                Ask::Elicitation => {
                    ElicitResult::deserialize(value).map(ClientResult::ElicitResult)
                }
                Ask::Sampling => CreateMessageResult::deserialize(value)
                    .map(|r| ClientResult::CreateMessageResult(Box::new(r))),
                Ask::Roots => {
                    ListRootsResult::deserialize(value).map(ClientResult::ListRootsResult)
                }
            };
            return answered.map_err(|e| {
                ErrorData::invalid_params(
                    format!(
                        "{from}: mcpod's client answered `{}` with what is not its result: {e}",
                        ask.method()
                    ),
                    None,
                )
            });
        };
        if !self.declared(ask) {
            return Err(refused("the client did not declare that capability"));
        }
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

    /// A child's log message, its logger already naming the child: passed
    /// on once the agent has set a level, at that level or above (a child
    /// may ignore the level it was sent), its data cut to [`LOG_DATA_BYTES`].
    pub async fn log(&self, mut message: LoggingMessageNotificationParam) {
        let Some(level) = self.level() else {
            return;
        };
        if (message.level as u8) < (level as u8) {
            return;
        }
        let Some(peer) = self.peer() else {
            return;
        };
        let data = serde_json::to_string(&message.data).unwrap_or_default();
        if data.len() > LOG_DATA_BYTES {
            let mut cut = LOG_DATA_BYTES;
            while !data.is_char_boundary(cut) {
                cut -= 1;
            }
            message.data = serde_json::Value::String(format!(
                "{}… (cut by mcpod: {} bytes in all)",
                &data[..cut],
                data.len()
            ));
        }
        let _ = peer.notify_logging_message(message).await;
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
