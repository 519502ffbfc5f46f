//! One child MCP server: an rmcp client on its stdio (a stream of its
//! session, see `session/stream.rs`), its stderr kept, its exit noticed, its
//! lists kept (`catalog.rs`), requests passed through with progress,
//! cancellation and a deadline, and its own requests, log messages and
//! resource updates passed up to the agent (`upstream.rs`).

// Sampling, roots and logging are deprecated by 2026-07-28, and still forwarded.
#![allow(deprecated)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotificationParam,
    ClientCapabilities, ClientConfig, ClientRequest, ClientResult, CreateMessageRequest,
    CreateMessageRequestParams, CreateMessageResult, ElicitRequest, ElicitRequestParams,
    ElicitResult, ElicitationCapability, ErrorData, GetMeta, Implementation, JsonObject,
    ListRootsRequest, ListRootsResult, LoggingLevel, LoggingMessageNotificationParam,
    ProgressNotificationParam, Prompt, ProtocolVersion, Resource, ResourceTemplate,
    ResourceUpdatedNotificationParam, ResultType, RootsCapabilities, SamplingCapability,
    ServerCapabilities, ServerRequest, ServerResult, SetLevelRequest, SetLevelRequestParams,
    SubscribeRequest, SubscribeRequestParams, Tool, UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext, RunningService};
use rmcp::{
    ClientCacheConfig, ClientHandler, ClientLifecycleMode, ClientServiceExt, Peer, RoleClient,
};
use schemars::JsonSchema;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::answers::{rejected, too_big};
use super::catalog::{self, Catalog};
use super::fast::Lane;
use super::names;
use super::upstream::{Ask, Inputs, Upstream};
use crate::engine::process::BoundedLines;
use crate::logging::ring::{self as log, LogRing};
use crate::telemetry::{self, Kind, Span};
use crate::wire;
use handler::Handler;

mod handler;
mod listen;
mod raw;
mod rounds;
mod start;

use listen::Listener;

/// Receives the child's progress for one call, already re-addressed to the caller.
pub type ProgressSink = Arc<dyn Fn(ProgressNotificationParam) + Send + Sync>;

/// Where what a child sends toward the agent during one call goes: its
/// progress, and its requests (for a 2026-07-28 agent, or a task).
#[derive(Default)]
pub struct Relay {
    pub progress: Option<ProgressSink>,
    pub inputs: Option<Inputs>,
}

/// How long a starting server that wrote something other than MCP still
/// gets to answer `initialize`: a banner on stdout before a slow import
/// (`office-word-mcp-server` prints "Loading configuration…" and answers
/// seconds later) is dropped and the server still comes up; one that writes
/// only junk fails well before the handshake deadline.
const JUNK_GRACE: Duration = Duration::from_secs(10);

/// A child's requests to the agent (elicitation, sampling, roots) that may
/// wait for an answer at once.
pub const MAX_ASKS: usize = 4;

/// Lines of stderr an error message quotes.
const TAIL_LINES: usize = 20;

/// How a child server is doing.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Ready,
    Failed {
        /// Why, in one sentence.
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        stderr_tail: String,
        /// The server's command (its argv), for the diagnosis (`session`).
        #[serde(skip)]
        #[schemars(skip)]
        command: Vec<String>,
        /// Whether its process ran and the MCP handshake began (false: it
        /// never started, e.g. its program is not in the image).
        #[serde(skip)]
        #[schemars(skip)]
        handshake_started: bool,
    },
}

/// What the child said about itself in the handshake.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Handshake {
    pub protocol_version: String,
    pub name: String,
    pub version: String,
}

/// State shared between the child's connection handler and its owner.
pub(super) struct Shared {
    pub(super) name: String,
    /// The session it serves, for the names it is exported under.
    session: String,
    catalog: RwLock<Catalog>,
    /// Where its requests, log messages and resource updates go.
    pub(super) upstream: Arc<Upstream>,
    /// list_changed notifications not yet answered by a re-listing.
    relist: AtomicUsize,
    /// What the last listing left out, and why.
    warnings: RwLock<Vec<String>>,
    log: Arc<LogRing>,
    /// Its requests to the agent waiting for an answer (at most [`MAX_ASKS`]).
    pub(super) asks: tokio::sync::Semaphore,
    /// The requests in flight that take its requests to a 2026-07-28 agent
    /// (or a task), by the number of the request.
    inputs: Mutex<HashMap<u64, Inputs>>,
    /// Fires whenever this child's tool list changes or the child dies.
    changed: Changes,
    /// Its calls that pass through as bytes (`fast.rs`).
    pub(super) lane: Arc<Lane>,
    /// The agent's resource subscriptions at a 2026-07-28 child (`listen.rs`).
    pub(super) listener: Listener,
}

impl Shared {
    /// Take the child's lists, as far as `catalog::list` let them in.
    fn set_catalog(&self, (catalog, warnings): (Catalog, Vec<String>)) {
        for w in &warnings {
            self.log.push(&format!("mcpod: {w}"));
            tracing::warn!("{w}");
        }
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = catalog;
        *self.warnings.write().unwrap_or_else(|p| p.into_inner()) = warnings;
    }

    /// List the child's lists; the lane reads which tools must be tasks.
    async fn list(
        &self,
        peer: &Peer<RoleClient>,
        offers: &ServerCapabilities,
    ) -> Result<(Catalog, Vec<String>), rmcp::ServiceError> {
        let _listing = self.lane.listing();
        catalog::list(&self.name, peer, offers).await
    }

    /// Note `what` happened in the child's log and on mcpod's stderr.
    pub(super) fn note(&self, what: &str) {
        self.log.push(&format!("mcpod: {what}"));
        tracing::warn!(server = %self.name, "{what}");
    }

    /// The child's resource `uri` was updated: tell the agent, under the
    /// URI it knows.
    pub(super) async fn updated(&self, uri: &str) {
        let uri = names::resource_uri(&self.session, &self.name, uri);
        self.upstream.updated(uri).await;
    }

    /// Where a child's request came from, for the agent's errors.
    pub(super) fn from(&self) -> String {
        format!("server `{}` of session {}", self.name, self.session)
    }

    /// Re-list the child's lists: one re-listing at a time, however many
    /// notifications arrive (those that come meanwhile make one more).
    pub(super) fn relist(self: &Arc<Self>, peer: Peer<RoleClient>) {
        if self.relist.fetch_add(1, Ordering::SeqCst) > 0 {
            return;
        }
        let shared = self.clone();
        tokio::spawn(async move {
            let offers = peer
                .peer_info()
                .map(|i| i.capabilities.clone())
                .unwrap_or_default();
            loop {
                let asked = shared.relist.load(Ordering::SeqCst);
                match shared.list(&peer, &offers).await {
                    Ok(listed) => {
                        shared.set_catalog(listed);
                        let _ = shared.changed.send(Change::of(&shared.session));
                    }
                    Err(e) => tracing::warn!(server = %shared.name, "re-listing failed: {e}"),
                }
                // Done unless more notifications came while listing.
                if shared
                    .relist
                    .compare_exchange(asked, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return;
                }
                shared.relist.store(1, Ordering::SeqCst);
            }
        });
    }
}

/// A started (or failed) child server.
pub struct Child {
    pub(super) shared: Arc<Shared>,
    pub log: Arc<LogRing>,
    status: RwLock<Status>,
    pub handshake: Option<Handshake>,
    /// What it said it offers in the handshake.
    offers: ServerCapabilities,
    /// It speaks 2026-07-28 (`server/discover`): it asks in input rounds
    /// (`rounds.rs`) and tells of changes only to listeners (`listen.rs`).
    modern: bool,
    peer: Option<Peer<RoleClient>>,
    /// Cancelled when the child process exits.
    pub(super) died: CancellationToken,
    exit_code: Mutex<Option<i32>>,
    pub(super) call_timeout: Duration,
    /// It failed the handshake that probed with `server/discover`: an older
    /// server may have died on the unknown method, or answered it late.
    probe_failed: std::sync::atomic::AtomicBool,
    /// Kept so the connection lives as long as the child; closing it ends the server.
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, Handler>>>,
}

/// A byte stream from a server.
pub type Pipe = Box<dyn AsyncRead + Send + Unpin>;

/// A started server's pipes, wherever it runs.
pub struct ServerIo {
    /// Its stdout.
    pub read: Pipe,
    /// Its stdin; shutting it down is the MCP stdio shutdown.
    pub write: Box<dyn AsyncWrite + Send + Unpin>,
    /// Its stderr, once it is there (`None`: there will be none).
    pub stderr: Pin<Box<dyn Future<Output = Option<Pipe>> + Send>>,
    /// Its exit code (128 + the signal that killed it) once it has exited
    /// and its output has drained; an error when its session ended first.
    pub exit: tokio::sync::oneshot::Receiver<i32>,
    /// SIGKILL it.
    pub kill: Box<dyn Fn() + Send + Sync>,
}

/// Why a server could not be started.
pub struct NotStarted {
    pub reason: String,
    /// Its program does not exist in the image.
    pub missing: bool,
}

/// What may have changed in the lists clients see: a session's (its tools,
/// prompts or resources, or the session itself), and the principal that
/// owns it when the sender knows; so each client hears only of its own.
#[derive(Clone, Debug, Default)]
pub struct Change {
    pub session: Option<String>,
    pub owner: Option<String>,
}

impl Change {
    /// A change of `session` (its owner looked up by whoever hears it).
    pub fn of(session: &str) -> Change {
        Change {
            session: Some(session.to_string()),
            owner: None,
        }
    }
}

/// Where changes go.
pub type Changes = tokio::sync::broadcast::Sender<Change>;

/// How to talk to one server.
#[derive(Clone)]
pub struct StartSpec {
    pub name: String,
    /// The session it serves.
    pub session: String,
    pub upstream: Arc<Upstream>,
    /// The server's command (its argv), for messages.
    pub command: Vec<String>,
    pub handshake: Duration,
    pub call_timeout: Duration,
    pub changed: Changes,
    /// Handshake with `initialize` only, without the `server/discover` probe.
    pub legacy: bool,
}

impl Child {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn status(&self) -> Status {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the child runs `tool` only as a task (see `child_task.rs`).
    pub fn task_only(&self, tool: &str) -> bool {
        self.shared.lane.task_only(tool)
    }

    /// Whether starting it again with `initialize` only may succeed: it
    /// failed the handshake that began with the `server/discover` probe
    /// (servers on older SDKs exit on a method they do not know, and a slow
    /// one's late answer to the probe confuses the fallback).
    pub fn probe_failed(&self) -> bool {
        self.probe_failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Add what the failure means to a failed child's reason (`session`
    /// diagnoses it: the cause and its fix). A ready child is left alone.
    pub fn explain(&self, diagnosis: &str) {
        let mut status = self.status.write().unwrap_or_else(|p| p.into_inner());
        if let Status::Failed { reason, .. } = &mut *status {
            reason.push_str(diagnosis);
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.status(), Status::Ready)
    }

    /// What was left out of the child's tool list, and why.
    pub fn warnings(&self) -> Vec<String> {
        self.shared
            .warnings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What it said it offers in the handshake.
    pub fn offers(&self) -> &ServerCapabilities {
        &self.offers
    }

    /// The child's tools (empty once it has died).
    pub fn tools(&self) -> Vec<Tool> {
        self.with_tools(<[Tool]>::to_vec)
    }

    /// Look at the child's tools (none once it has died) without copying them.
    pub fn with_tools<R>(&self, f: impl FnOnce(&[Tool]) -> R) -> R {
        self.with_catalog(|c| f(&c.tools))
    }

    pub fn prompts(&self) -> Vec<Prompt> {
        self.with_catalog(|c| c.prompts.clone())
    }

    pub fn resources(&self) -> Vec<Resource> {
        self.with_catalog(|c| c.resources.clone())
    }

    pub fn templates(&self) -> Vec<ResourceTemplate> {
        self.with_catalog(|c| c.templates.clone())
    }

    /// Look at the child's lists (empty once it has died).
    pub fn with_catalog<R>(&self, f: impl FnOnce(&Catalog) -> R) -> R {
        if !self.is_ready() {
            return f(&Catalog::default());
        }
        f(&self
            .shared
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner()))
    }

    /// Call `tool`; progress goes to `relay.progress`, `cancel` cancels the
    /// child's request. Its requests to the agent meanwhile go to
    /// `relay.inputs`, when given.
    pub async fn call(
        &self,
        tool: &str,
        arguments: Option<JsonObject>,
        relay: Relay,
        cancel: CancellationToken,
    ) -> Result<CallToolResult, String> {
        if self.task_only(tool) {
            return self.call_as_task(tool, arguments, relay, cancel).await;
        }
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = arguments;
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let what = format!("the call of `{tool}`");
        match self.request(&what, request, relay, cancel).await? {
            ServerResult::CallToolResult(mut result) => {
                // Older children leave resultType out; newer callers need it.
                result.result_type.get_or_insert(ResultType::COMPLETE);
                Ok(result)
            }
            other => Err(format!(
                "server `{}` answered tools/call with an unexpected result: {other:?}",
                self.shared.name
            )),
        }
    }

    /// Send `request` (`what` names it in messages) under the child's call
    /// deadline; progress goes to `relay.progress`, the child's requests to
    /// the agent meanwhile to `relay.inputs`; `cancel` cancels it at the child.
    /// Its span's trace context (or with tracing off, the one in effect)
    /// goes in its `_meta`, for the child's own spans.
    pub async fn request(
        &self,
        what: &str,
        request: ClientRequest,
        relay: Relay,
        cancel: CancellationToken,
    ) -> Result<ServerResult, String> {
        let mut request = request;
        let mut span = self.span(request.method(), target(&request));
        if let Some(context) = span.context().cloned().or_else(telemetry::current) {
            context.into_meta(&mut request.get_meta_mut().0.0);
        }
        let result = self.rounds_of(what, request, relay, cancel).await;
        if let Err(why) = &result {
            span.fail(why);
        }
        result
    }

    /// The span of a request of mcpod's to the child: `method target`,
    /// under the trace context in effect.
    fn span(&self, method: &str, target: Option<&str>) -> Span {
        let mut span = Span::under_current(method, target, Kind::Client);
        if span.is_on() {
            span.set("mcp.method.name", method);
            span.set("mcpod.session", &self.shared.session);
            span.set("mcpod.server", &self.shared.name);
            if let (Some(tool), "tools/call") = (target, method) {
                span.set("gen_ai.tool.name", tool);
            }
        }
        span
    }

    /// [`Child::request`]'s rounds: a 2026-07-28 child's input rounds are
    /// answered and the request sent again, until it answers.
    async fn rounds_of(
        &self,
        what: &str,
        request: ClientRequest,
        relay: Relay,
        cancel: CancellationToken,
    ) -> Result<ServerResult, String> {
        let Relay { progress, inputs } = relay;
        let _asking = self.asking(inputs.clone());
        let inputs: Vec<Inputs> = inputs.into_iter().collect();
        let mut request = request;
        let mut round = 0;
        loop {
            // Only a child that may answer with a round needs the request again.
            let again = self.modern.then(|| request.clone());
            let result = self
                .send(what, request, progress.clone(), cancel.clone())
                .await?;
            let asked = match (result, again) {
                (ServerResult::InputRequiredResult(asked), Some(again)) => {
                    request = again;
                    asked
                }
                (result, _) => return Ok(result),
            };
            let retry = match self.round(what, asked, &inputs, round, &cancel).await {
                Ok(retry) => retry,
                Err(None) => return Err(self.cancelled_message(what)),
                Err(Some(why)) => return Err(why),
            };
            if !retry.into_request(&mut request) {
                return Err(format!(
                    "server `{}` answered {what} with input_required, which only tools/call, prompts/get and resources/read may",
                    self.shared.name
                ));
            }
            round += 1;
        }
    }

    /// Answer a 2026-07-28 child's round `round` of `what` (`rounds.rs`),
    /// unless the caller cancels first (`Err(None)`) or the child dies.
    pub(super) async fn round(
        &self,
        what: &str,
        asked: rmcp::model::InputRequiredResult,
        inputs: &[Inputs],
        round: usize,
        cancel: &CancellationToken,
    ) -> Result<rounds::Retry, Option<String>> {
        tokio::select! {
            retry = rounds::answer(&self.shared, what, asked, inputs, round) => retry.map_err(Some),
            _ = cancel.cancelled() => Err(None),
            _ = self.died.cancelled() => Err(Some(self.dead_message(what))),
        }
    }

    /// The child's requests to the agent go to `inputs` (when given) until
    /// the guard is dropped.
    pub(super) fn asking(&self, inputs: Option<Inputs>) -> Asking<'_> {
        static REQUESTS: AtomicU64 = AtomicU64::new(0);
        let number = REQUESTS.fetch_add(1, Ordering::Relaxed);
        if let Some(inputs) = inputs {
            self.shared
                .inputs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(number, inputs);
        }
        Asking {
            registry: &self.shared.inputs,
            number,
        }
    }

    async fn send(
        &self,
        what: &str,
        request: ClientRequest,
        progress: Option<ProgressSink>,
        cancel: CancellationToken,
    ) -> Result<ServerResult, String> {
        let name = &self.shared.name;
        let Some(peer) = self.peer.as_ref().filter(|_| self.is_ready()) else {
            return Err(self.dead_message(what));
        };
        let handle = peer
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| format!("could not send {what} to server `{name}`: {e}"))?;
        let token = handle.progress_token.clone();
        let id = handle.id.clone();
        if let Some(sink) = progress {
            self.shared.lane.route(token.clone(), sink);
        }
        let cancel_child = |reason: String| {
            let peer = peer.clone();
            let id = id.clone();
            async move {
                let _ = peer
                    .notify_cancelled(CancelledNotificationParam::new(Some(id), Some(reason)))
                    .await;
            }
        };
        let outcome = tokio::select! {
            response = handle.await_response() => match response {
                Ok(result) => Ok(result),
                Err(rmcp::ServiceError::McpError(e)) if e.code == wire::TOO_LARGE || e.code == wire::UNPARSABLE => Err(too_big(&e.message, what)),
                Err(rmcp::ServiceError::McpError(e)) => Err(rejected(name, what, &e.message)),
                Err(_) => {
                    // The connection closed: wait a moment for the exit code.
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.died.cancelled()).await;
                    Err(self.dead_message(what))
                }
            },
            _ = cancel.cancelled() => {
                cancel_child(CANCELLED.into()).await;
                Err(self.cancelled_message(what))
            }
            _ = self.died.cancelled() => Err(self.dead_message(what)),
            _ = tokio::time::sleep(self.call_timeout) => {
                cancel_child(DEADLINE.into()).await;
                Err(self.deadline_message(what))
            }
        };
        self.shared.lane.unroute(&token);
        outcome
    }

    /// Subscribe to (`on`) or unsubscribe from updates of the child's
    /// resource `uri`: `resources/subscribe` or `resources/unsubscribe`, or
    /// for a 2026-07-28 child, its `subscriptions/listen` stream.
    pub async fn subscribe_resource(&self, uri: &str, on: bool) -> Result<(), String> {
        if self.modern {
            return self.shared.listener.resource(uri, on);
        }
        let (request, what) = if on {
            let params = SubscribeRequestParams::new(uri);
            (
                ClientRequest::SubscribeRequest(SubscribeRequest::new(params)),
                format!("resources/subscribe of `{uri}`"),
            )
        } else {
            let params = UnsubscribeRequestParams::new(uri);
            (
                ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(params)),
                format!("resources/unsubscribe of `{uri}`"),
            )
        };
        let cancel = CancellationToken::new();
        self.request(&what, request, Relay::default(), cancel)
            .await
            .map(drop)
    }

    /// `logging/setLevel` at this child, when it offers logging; a failure
    /// is only noted in its log.
    pub async fn set_level(&self, level: LoggingLevel) {
        // 2026-07-28 removed logging/setLevel.
        if !self.is_ready() || self.offers.logging.is_none() || self.modern {
            return;
        }
        let request =
            ClientRequest::SetLevelRequest(SetLevelRequest::new(SetLevelRequestParams::new(level)));
        let cancel = CancellationToken::new();
        if let Err(e) = self
            .request("logging/setLevel", request, Relay::default(), cancel)
            .await
        {
            self.log.push(&format!("mcpod: {e}"));
        }
    }

    pub(super) fn cancelled_message(&self, what: &str) -> String {
        let name = &self.shared.name;
        format!("{what} on server `{name}` was cancelled; the server was told to stop it")
    }

    pub(super) fn deadline_message(&self, what: &str) -> String {
        format!(
            "server `{}` did not answer {what} within {} s; it was cancelled. Fix: raise call_timeout_secs in the image's label, or ask for less",
            self.shared.name,
            self.call_timeout.as_secs()
        )
    }

    pub(super) fn dead_message(&self, what: &str) -> String {
        let name = &self.shared.name;
        let tail = self.log.tail_text(TAIL_LINES);
        let code = *self.exit_code.lock().unwrap_or_else(|p| p.into_inner());
        let how = match code {
            Some(137) => "was killed (exit code 137: its container was stopped or removed, its lease ended, or it ran out of memory)".to_string(),
            Some(c) => format!("exited with code {c}"),
            None => "is not running".to_string(),
        };
        format!("server `{name}` {how}; {what} failed. Its stderr ends with:\n{tail}")
    }

    /// Close the connection (the server sees EOF on stdin) and give the
    /// server `grace` to exit, as the MCP stdio shutdown asks. A server that
    /// never connected is not waited for.
    pub async fn shut_down(&self, grace: Duration) {
        if let Some(service) = self.service.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), service.cancel()).await;
        }
        if self.peer.is_some() {
            let _ = tokio::time::timeout(grace, self.died.cancelled()).await;
        }
    }
}

/// Where a child's requests to the agent go during one request of mcpod's
/// (see [`Child::asking`]).
pub(super) struct Asking<'a> {
    registry: &'a Mutex<HashMap<u64, Inputs>>,
    number: u64,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.number);
    }
}

/// What a request names besides its method: the tool, prompt or resource.
fn target(request: &ClientRequest) -> Option<&str> {
    match request {
        ClientRequest::CallToolRequest(r) => Some(&r.params.name),
        ClientRequest::GetPromptRequest(r) => Some(&r.params.name),
        ClientRequest::ReadResourceRequest(r) => Some(&r.params.uri),
        ClientRequest::SubscribeRequest(r) => Some(&r.params.uri),
        ClientRequest::UnsubscribeRequest(r) => Some(&r.params.uri),
        _ => None,
    }
}

/// Why a request of mcpod's was cancelled at the child.
pub(super) const CANCELLED: &str = "cancelled by the caller";
pub(super) const DEADLINE: &str = "mcpod call deadline";

/// The exit code if the process ends within a moment (else it is killed).
async fn exit_code_soon(
    exit: &mut tokio::sync::oneshot::Receiver<i32>,
    kill: &(dyn Fn() + Send + Sync),
) -> Option<i32> {
    match tokio::time::timeout(Duration::from_secs(3), exit).await {
        Ok(Ok(code)) => Some(code),
        _ => {
            kill();
            None
        }
    }
}

/// Where a child's refused messages are told: its log (what session_logs
/// shows), and mcpod's stderr.
fn problem_reporter(server: &str, log: Arc<LogRing>) -> wire::OnProblem {
    let server = server.to_string();
    Arc::new(move |problem: String| {
        log.push(&format!("mcpod: {problem}"));
        tracing::warn!(server = %server, "{problem}");
    })
}

/// Keep the child's stderr in its ring, a bounded line at a time.
async fn copy_lines(stderr: impl AsyncRead + Unpin, log: Arc<LogRing>) {
    let mut lines = BoundedLines::new(stderr, log::LINE_BYTES);
    while let Some(line) = lines.next_line().await {
        log.push(&line);
    }
}
