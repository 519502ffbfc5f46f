//! Proxied calls at wire speed: the agent's half. A tap on mcpod's own
//! stdio takes each `tools/call` of a proxied tool before rmcp parses it,
//! and passes it to its child as bytes (`proxy/fast.rs`); the child's
//! answer is written back with only its id changed. The agent's
//! `notifications/cancelled` for such a call is taken too.
//!
//! Only what needs nothing but that goes this way: a call that carries
//! nothing but a name, object arguments, a progress token and a trace
//! context (`traceparent`, `tracestate`: its span is made here), from an
//! agent that connected with `initialize` (before 2026-07-28, where a
//! child's questions go to the agent as requests of their own) and did not
//! declare Tasks; or from a 2026-07-28 agent whose request's metadata does
//! not declare Tasks. Its result gets `resultType: "complete"` when the
//! child left it out. When such a request declares what a child could ask
//! (elicitation, sampling, roots), the child's first question parks the
//! call as the rmcp path would (`mrtr.rs`): its agent gets the input round,
//! and the retry, which carries a `requestState`, goes through rmcp. Its
//! progress goes through rmcp's forwarder then, so it follows the retry's
//! token and precedes the round.
//! Anything else (a task, an MRTR retry, other `_meta`, a meta-tool, a
//! server that is not ready, a session at its limit of calls, and what rmcp
//! would refuse: arguments that are no object or nest too deep, a progress
//! token that is neither string nor number) goes to rmcp as before, which
//! answers it or says why not.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rmcp::model::{ClientCapabilities, ProtocolVersion, RequestId};
use rmcp::{Peer, RoleServer};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::mrtr::{self, Mrtr, Outcome};
use super::progress::{self, HandedOff};
use crate::logging::audit::{self, AuditLog, Entry, outcome_of_response};
use crate::proxy::Child;
use crate::proxy::child::MAX_ASKS;
use crate::proxy::fast::{self, MAX_DEPTH, RawCall, deeper_than, request_id};
use crate::session::Sessions;
use crate::telemetry::{self, Kind, Span, TraceContext};
use crate::wire::{RawWriter, Tap};

/// The agent's calls on the fast path, by the agent's request id.
type Calls = Arc<Mutex<HashMap<RequestId, CancellationToken>>>;

pub struct Agent {
    sessions: Arc<Sessions>,
    /// Set once the agent has connected in a way the fast path serves.
    open: AtomicBool,
    /// mcpod's stdout.
    writer: OnceLock<RawWriter>,
    calls: Calls,
    /// mcpod's own tools, which rmcp serves.
    meta_tools: HashSet<String>,
    /// Where calls that ask wait for the agent's retry, and their progress.
    mrtr: Arc<Mrtr>,
    handed: Arc<HandedOff>,
    /// rmcp's side of the agent, once it serves: progress of calls that may ask.
    peer: OnceLock<Peer<RoleServer>>,
    /// The audit log, which records each call passed through.
    audit: OnceLock<Arc<AuditLog>>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// `tools/call`'s params, when they hold nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta<'a> {
    #[serde(rename = "progressToken", borrow, default)]
    token: Option<&'a RawValue>,
    /// A 2026-07-28 client's per-request metadata.
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", default)]
    version: Option<ProtocolVersion>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", default)]
    capabilities: Option<ClientCapabilities>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo", borrow, default)]
    _info: Option<&'a RawValue>,
    /// The client's trace context (SEP-414), parsed strictly (`telemetry`).
    #[serde(borrow, default)]
    traceparent: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tracestate: Option<Cow<'a, str>>,
}

impl Meta<'_> {
    /// The client's trace context, when it sent a valid one.
    fn trace(&self) -> Option<TraceContext> {
        TraceContext::parse(self.traceparent.as_deref()?, self.tracestate.as_deref())
    }

    /// Whether a 2026-07-28 request needs nothing the pass-through does not
    /// do: no Tasks.
    fn plain_2026(&self) -> bool {
        let tasks = self
            .capabilities
            .as_ref()
            .is_some_and(|c| c.supports_tasks());
        !tasks
            && self
                .version
                .as_ref()
                .is_some_and(|v| *v >= ProtocolVersion::V_2026_07_28)
    }

    /// Whether the request declares something a child could ask of the
    /// agent: its questions would become input rounds of this request.
    fn may_be_asked(&self) -> bool {
        self.capabilities
            .as_ref()
            .is_some_and(|c| c.elicitation.is_some() || c.sampling.is_some() || c.roots.is_some())
    }
}

#[derive(Deserialize)]
struct CancelParams {
    #[serde(rename = "requestId")]
    id: RequestId,
}

impl Agent {
    pub fn new(
        sessions: Arc<Sessions>,
        meta_tools: Vec<String>,
        (mrtr, handed): (Arc<Mrtr>, Arc<HandedOff>),
    ) -> Self {
        Agent {
            sessions,
            open: AtomicBool::new(false),
            writer: OnceLock::new(),
            calls: Calls::default(),
            meta_tools: meta_tools.into_iter().collect(),
            mrtr,
            handed,
            peer: OnceLock::new(),
            audit: OnceLock::new(),
        }
    }

    pub fn set_audit(&self, log: Arc<AuditLog>) {
        let _ = self.audit.set(log);
    }

    /// The audit record and the span of a call passed through, and the
    /// trace context its child gets (the span's, or with tracing off the
    /// client's).
    fn record(&self, id: &RawValue, params: &CallParams) -> (Record, Option<TraceContext>) {
        let reached = self.sessions.resolve(&params.name);
        let entry = self.audit.get().map(|log| {
            let mut entry = log.begin("stdio", "tools/call");
            entry.tool(&params.name);
            if let Some(arguments) = params.arguments {
                entry.raw_arguments(arguments);
            }
            if let Some((session, server, _)) = &reached {
                entry.reached(session, Some(server));
            }
            entry
        });
        let parent = params.meta.as_ref().and_then(Meta::trace);
        let mut span = Span::start(
            "tools/call",
            Some(&params.name),
            Kind::Server,
            parent.as_ref(),
        );
        if span.is_on() {
            for (key, value) in [
                ("mcp.method.name", "tools/call"),
                ("gen_ai.operation.name", "execute_tool"),
                ("gen_ai.tool.name", params.name.as_ref()),
                ("jsonrpc.request.id", id.get().trim_matches('"')),
                ("network.transport", "pipe"),
                ("mcpod.principal", "stdio"),
            ] {
                span.set(key, value);
            }
            if let Some((session, server, _)) = reached {
                span.set("mcpod.session", session);
                span.set("mcpod.server", server);
            }
        }
        let context = span.context().cloned().or(parent);
        (Record { entry, span }, context)
    }

    pub fn set_writer(&self, writer: RawWriter) {
        let _ = self.writer.set(writer);
    }

    /// rmcp serves the agent: calls that may ask can pass through now.
    pub fn set_peer(&self, peer: Peer<RoleServer>) {
        let _ = self.peer.set(peer);
    }

    /// The agent connected with `version` and `capabilities`: open the fast
    /// path if nothing it declared needs the slow one.
    pub fn connected(&self, version: &ProtocolVersion, capabilities: &ClientCapabilities) {
        let open = *version < ProtocolVersion::V_2026_07_28 && !capabilities.supports_tasks();
        self.open.store(open, Ordering::Release);
    }

    /// Whether a call of `params` can pass through, and how; none (rmcp's
    /// path) for what rmcp would refuse, a meta-tool, an agent or request
    /// the fast path is not open to, and a request that may be asked before
    /// rmcp serves the agent.
    fn way(&self, params: &CallParams) -> Option<Way> {
        // What rmcp would refuse, it refuses: arguments that are not an
        // object or nest past serde's limit, a token that is no token.
        let objects = params.arguments.is_none_or(|a| {
            (a.get().starts_with('{') && !deeper_than(a.get().as_bytes(), MAX_DEPTH))
                || a.get() == "null"
        });
        let token = params.meta.as_ref().and_then(|m| m.token);
        let token_ok = token.is_none_or(|t| request_id(t).is_some());
        if !objects || !token_ok || self.meta_tools.contains(params.name.as_ref()) {
            return None;
        }
        // An `initialize` client that opened the way, or a plain 2026-07-28
        // request (which also wants `resultType` in the result).
        let modern = params.meta.as_ref().is_some_and(|m| m.version.is_some());
        let allowed = if modern {
            params.meta.as_ref().is_some_and(Meta::plain_2026)
        } else {
            self.open.load(Ordering::Acquire)
        };
        if !allowed {
            return None;
        }
        // A request that may be asked needs rmcp's progress forwarder.
        let asked = modern && params.meta.as_ref().is_some_and(Meta::may_be_asked);
        let peer = match (asked, self.peer.get()) {
            (false, _) => None,
            (true, Some(peer)) => Some(peer.clone()),
            (true, None) => return None,
        };
        Some(Way { modern, peer })
    }

    /// Start a call of `params` under the agent's `id`, if it can go fast.
    fn call(&self, id: &RawValue, params: &RawValue, bytes: usize) -> bool {
        // An id too long to echo: the transport refuses it.
        if id.get().len() > crate::wire::MAX_ID_BYTES + 2 {
            return false;
        }
        let Ok(params) = serde_json::from_str::<CallParams>(params.get()) else {
            return false;
        };
        let Some(Way { modern, peer }) = self.way(&params) else {
            return false;
        };
        let token = params.meta.as_ref().and_then(|m| m.token);
        let (Some(writer), Some(agent_id)) = (self.writer.get(), request_id(id)) else {
            return false;
        };
        let Some((child, tool, permit)) = self.sessions.fast_target(&params.name) else {
            return false;
        };
        // In the transport's flight until answered (the agent's reads pace it).
        let Some(slot) = writer.enter(agent_id.clone(), bytes) else {
            // The agent reused an id still in flight: rmcp's path refuses it.
            return false;
        };
        let cancel = CancellationToken::new();
        let Some(in_flight) = InFlight::enter(&self.calls, agent_id, &cancel) else {
            // The agent reused an id still in flight: rmcp decides.
            return false;
        };
        let mut call = RawCall {
            tool,
            arguments: params
                .arguments
                .filter(|a| a.get() != "null")
                .map(ToOwned::to_owned),
            agent_id: id.to_owned(),
            token: token.map(ToOwned::to_owned),
            sink: None,
            complete: modern,
            trace: None,
        };
        let writer = writer.clone();
        let (record, trace) = self.record(id, &params);
        let Some(peer) = peer else {
            tokio::spawn(telemetry::within(trace, async move {
                let line = child.call_raw(call, &writer, cancel, None).await;
                drop((in_flight, permit));
                if let Some(line) = line {
                    record.answered(&line);
                    write(&writer, line).await;
                }
                drop(slot);
            }));
            return true;
        };
        // Progress through rmcp's forwarder, under the agent's token until a
        // retry takes the call over.
        let token = token.and_then(|t| serde_json::from_str(t.get()).ok());
        let (sink, flush) = match token.clone() {
            Some(token) => progress::forward_progress_to(token, peer, &self.handed),
            None => (None, progress::Flush::none()),
        };
        call.sink = sink;
        let capabilities = params.meta.and_then(|m| m.capabilities);
        let asking = Asking {
            child,
            call,
            permit,
            cancel,
            writer,
            mrtr: self.mrtr.clone(),
            handed: self.handed.clone(),
            record,
        };
        tokio::spawn(telemetry::within(trace, async move {
            asking.run(capabilities, (flush, token)).await;
            drop((in_flight, slot));
        }));
        true
    }

    /// The agent cancelled `params.requestId`: take it if it is on the fast path.
    fn cancel(&self, params: &RawValue) -> bool {
        let Ok(params) = serde_json::from_str::<CancelParams>(params.get()) else {
            return false;
        };
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        match calls.get(&params.id) {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }
}

/// How a call that can pass through goes.
struct Way {
    /// A 2026-07-28 request, which also wants `resultType` in the result.
    modern: bool,
    /// rmcp's side of the agent, for a request that may be asked: its
    /// progress goes through rmcp's forwarder.
    peer: Option<Peer<RoleServer>>,
}

/// A call's place in [`Calls`] (where the agent's cancellation finds it),
/// left when dropped.
struct InFlight {
    calls: Calls,
    id: RequestId,
}

impl InFlight {
    /// Enter `id` with `cancel`; none when the id is in flight already.
    fn enter(calls: &Calls, id: RequestId, cancel: &CancellationToken) -> Option<Self> {
        let mut map = calls.lock().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(&id) {
            return None;
        }
        map.insert(id.clone(), cancel.clone());
        Some(InFlight {
            calls: calls.clone(),
            id,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// A passed-through call's audit record and span; dropped unfinished, the
/// call was cancelled.
struct Record {
    entry: Option<Entry>,
    span: Span,
}

impl Record {
    /// The call ended with the agent's response `line`.
    fn answered(self, line: &[u8]) {
        if self.entry.is_some() || self.span.is_on() {
            self.finish(outcome_of_response(line));
        }
    }

    fn finish(mut self, outcome: audit::Outcome) {
        if outcome == audit::Outcome::Error {
            self.span.fail(&"the call failed");
        }
        if let Some(entry) = self.entry {
            entry.finish(outcome);
        }
    }
}

/// A passed-through call of a 2026-07-28 request that declared what a child
/// could ask: parked in input rounds at the child's first question.
struct Asking {
    child: Arc<Child>,
    call: RawCall,
    permit: tokio::sync::OwnedSemaphorePermit,
    cancel: CancellationToken,
    writer: RawWriter,
    mrtr: Arc<Mrtr>,
    /// The conversation's progress routes.
    handed: Arc<HandedOff>,
    record: Record,
}

impl Asking {
    /// Run the call and answer the agent: with its result, or with the
    /// input round its child's question makes (the rest of the call then
    /// belongs to the retry, through rmcp).
    async fn run(
        self,
        capabilities: Option<ClientCapabilities>,
        (flush, token): (progress::Flush, Option<rmcp::model::ProgressToken>),
    ) {
        let Asking {
            child,
            call,
            permit,
            cancel,
            writer,
            mrtr,
            handed,
            record,
        } = self;
        let agent_id = call.agent_id.clone();
        let (inputs, mut asks) = tokio::sync::mpsc::channel(MAX_ASKS);
        let mut running = {
            let (writer, cancel) = (writer.clone(), cancel.clone());
            tokio::spawn(telemetry::carried(async move {
                let line = child.call_raw(call, &writer, cancel, Some(inputs)).await;
                drop(permit);
                line
            }))
        };
        let first = tokio::select! {
            biased;
            line = &mut running => {
                // Its progress goes out before its result.
                flush.done().await;
                if let Ok(Some(line)) = line {
                    record.answered(&line);
                    write(&writer, line).await;
                }
                return;
            }
            Some(first) = asks.recv() => first,
        };
        let call = tokio::spawn(async move {
            match running.await {
                Ok(Some(line)) => answer_of(&line),
                Ok(None) => Err("the call was cancelled".to_string()),
                Err(e) => Err(format!("the call ended abnormally: {e}")),
            }
        });
        let parked = mrtr::Parked::new(
            (mrtr::Kind::Tool, call),
            asks,
            cancel.clone(),
            (flush, token, handed),
        )
        .asked_first(first);
        let outcome = mrtr.drive(parked, capabilities.as_ref(), &cancel).await;
        if cancel.is_cancelled() {
            // The agent cancelled: it expects no answer.
            return;
        }
        record.finish(match &outcome {
            Outcome::InputRequired(_) => audit::Outcome::InputRequired,
            Outcome::Done(Ok(mrtr::Answer::Tool(r))) if r.is_error != Some(true) => {
                audit::Outcome::Ok
            }
            Outcome::Done(_) => audit::Outcome::Error,
        });
        write(&writer, outcome_line(&agent_id, outcome)).await;
    }
}

/// A raw response line's tool result, for a parked call's retry.
fn answer_of(line: &[u8]) -> Result<mrtr::Answer, String> {
    #[derive(Deserialize)]
    struct Response {
        result: rmcp::model::CallToolResult,
    }
    serde_json::from_slice::<Response>(line)
        .map(|r| mrtr::Answer::Tool(r.result))
        .map_err(|e| format!("mcpod could not read the call's result: {e}"))
}

/// The agent's response line for what a call came to.
fn outcome_line(agent_id: &RawValue, outcome: Outcome) -> Vec<u8> {
    let result = match outcome {
        Outcome::InputRequired(round) => serde_json::to_string(&round),
        Outcome::Done(Ok(mrtr::Answer::Tool(mut result))) => {
            result
                .result_type
                .get_or_insert(rmcp::model::ResultType::COMPLETE);
            serde_json::to_string(&result)
        }
        Outcome::Done(Ok(_)) => return fast::error_line(agent_id, mrtr::MIXED.into()),
        Outcome::Done(Err(message)) => return fast::error_line(agent_id, message),
    };
    match result {
        Ok(result) => fast::response_line(agent_id, &result),
        Err(e) => fast::error_line(agent_id, format!("mcpod could not write the answer: {e}")),
    }
}

/// Write the agent's reply `line`.
async fn write(writer: &RawWriter, line: Vec<u8>) {
    if let Err(e) = writer.answer(line).await {
        tracing::debug!("could not answer a call: {e}");
    }
}

impl Tap for Agent {
    fn take(&self, line: &[u8]) -> bool {
        let call = memchr::memmem::find(line, b"\"tools/call\"").is_some();
        if !call && memchr::memmem::find(line, b"\"notifications/cancelled\"").is_none() {
            return false;
        }
        let Ok(head) = serde_json::from_slice::<Head>(line) else {
            return false;
        };
        match (head.method.as_ref(), head.id, head.params) {
            ("tools/call", Some(id), Some(params)) => self.call(id, params, line.len()),
            ("notifications/cancelled", None, Some(params)) => self.cancel(params),
            _ => false,
        }
    }
}
