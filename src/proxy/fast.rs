//! Proxied calls at wire speed: the child's half. A `tools/call` the agent
//! sent (see `server/fast.rs`) goes to the child as bytes under an id of
//! mcpod's (`"mcpod-N"`), and the child's answer comes back as bytes with
//! only its id changed: no rmcp parse of either, no re-serialisation.
//!
//! A [`Lane`] is a child's [`wire::Tap`]: it takes the child's responses to
//! those ids and its progress under those tokens, and hands them to the
//! call waiting in `Child::call_raw`, which keeps the proxy's guarantees
//! (deadline, cancellation, the child's death, size and depth limits).
//!
//! It also takes the progress of requests sent through rmcp (their
//! [`ProgressSink`]s, see [`Lane::route`]) and hands it on at once, in the
//! order the child wrote it: rmcp handles each notification in a task of
//! its own, so progress could otherwise overtake the request it precedes
//! (an input round) or arrive after the response that ends its route.
//! Everything else the child says goes on to rmcp.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use rmcp::model::{
    CallToolResult, ContentBlock, ErrorData, NumberOrString, ProgressNotificationParam,
    ProgressToken, RequestId,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::ProgressSink;
use crate::wire::{self, RawWriter};

/// Progress notifications of one call that may wait to be written; more are
/// dropped (each is superseded by the next), as on the slow path.
pub const PROGRESS_QUEUE: usize = 64;
/// Characters of a progress message that are forwarded.
pub const MESSAGE_CHARS: usize = 4096;
/// Nesting a child's result may have (serde_json's own limit, which the
/// slow path parses under).
pub const MAX_DEPTH: usize = 128;

/// What the agent asked, in its own bytes.
pub struct RawCall {
    /// The child's name for the tool.
    pub tool: String,
    pub arguments: Option<Box<RawValue>>,
    /// The agent's request id, copied into the response.
    pub agent_id: Box<RawValue>,
    /// The agent's progress token, if it sent one.
    pub token: Option<Box<RawValue>>,
    /// Where the call's progress goes instead of straight to the agent
    /// under `token` (rmcp's forwarder, for a call that may be parked in
    /// input rounds: its progress then follows the retry's token).
    pub sink: Option<ProgressSink>,
    /// The agent needs `resultType` in the result (2026-07-28).
    pub complete: bool,
    /// The trace context the child gets in `_meta` (its parent span), as
    /// the members of a JSON object (`TraceContext::meta_members`).
    pub trace: Option<String>,
}

/// A call waiting for the child's answer.
struct Waiting {
    agent_id: Box<RawValue>,
    complete: bool,
    token: Option<Box<RawValue>>,
    sink: Option<ProgressSink>,
    /// "the call of `tool`", for messages.
    what: String,
    reply: oneshot::Sender<Reply>,
    progress: mpsc::Sender<Vec<u8>>,
}

/// What a fast call comes to.
pub enum Reply {
    /// The agent's response line.
    Line(Vec<u8>),
    /// The child's `InputRequiredResult` (a 2026-07-28 child's questions,
    /// see `rounds.rs`), as raw JSON: the call goes on in another round.
    Asked(String),
}

/// What the child answered a raw request of mcpod's (see [`Lane::request`]).
pub enum RawAnswer {
    /// Its result, as raw JSON.
    Result(String),
    /// Its error's message.
    Rejected(String),
    /// Its answer was over mcpod's size or depth limit (why, in a sentence).
    OverLimit(String),
}

/// A call sent down a lane: its number, and where its answer and progress come.
pub struct Sent {
    pub number: u64,
    pub reply: oneshot::Receiver<Reply>,
    pub progress: mpsc::Receiver<Vec<u8>>,
}

/// One child's calls in flight on the fast path.
pub struct Lane {
    /// The child's name, for messages.
    server: String,
    calls: Mutex<HashMap<u64, Waiting>>,
    /// mcpod's own raw requests (see [`Lane::request`]) waiting for their answer.
    raw: Mutex<HashMap<u64, oneshot::Sender<RawAnswer>>>,
    /// Tool listings under way, whose `execution.taskSupport` is read.
    listing: AtomicUsize,
    /// The tools whose calls must be tasks (`taskSupport: "required"`), as
    /// the pages of tool listings said (at most [`MAX_TASK_ONLY`]).
    task_only: Mutex<HashSet<String>>,
    /// Where the progress of requests sent through rmcp goes, by token.
    routes: Mutex<HashMap<ProgressToken, ProgressSink>>,
    /// Fast calls and routes, read without a lock on every line the child sends.
    open: AtomicUsize,
    next: AtomicU64,
    /// The child's stdin, once its transport exists.
    writer: OnceLock<RawWriter>,
    /// A 2026-07-28 child's per-request `_meta`, as the members of a JSON
    /// object (see [`Lane::set_meta`]).
    meta: OnceLock<String>,
}

impl Lane {
    pub fn new(server: &str) -> Self {
        Lane {
            server: server.to_string(),
            calls: Mutex::default(),
            raw: Mutex::default(),
            listing: AtomicUsize::new(0),
            task_only: Mutex::default(),
            routes: Mutex::default(),
            open: AtomicUsize::new(0),
            next: AtomicU64::new(0),
            writer: OnceLock::new(),
            meta: OnceLock::new(),
        }
    }

    /// The child speaks 2026-07-28: every request of the lane's carries
    /// who asks (the protocol version, mcpod and its capabilities), as
    /// rmcp's requests to it do.
    pub fn set_meta(&self, client: &rmcp::model::ClientConfig) {
        let meta = rmcp::model::RequestMetaObject::with_client_context(
            rmcp::model::ProtocolVersion::V_2026_07_28,
            client.client_info.clone(),
            client.capabilities.clone(),
        );
        let Ok(text) = serde_json::to_string(&meta) else {
            return;
        };
        // An object's text without its braces is its members.
        if let Some(members) = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            let _ = self.meta.set(members.to_string());
        }
    }

    pub fn set_writer(&self, writer: RawWriter) {
        let _ = self.writer.set(writer);
    }

    pub fn writer(&self) -> Option<&RawWriter> {
        self.writer.get()
    }

    /// Register `call`; returns its request line for the child. `retry`
    /// holds the members an input round's retry adds to the params
    /// (`rounds::Retry::members`), or is empty.
    pub fn send(&self, call: &RawCall, what: String, retry: &str) -> (Sent, Vec<u8>) {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply) = oneshot::channel();
        let (progress_tx, progress) = mpsc::channel(PROGRESS_QUEUE);
        let meta = self.meta.get().map(String::as_str);
        let line = request_line(number, call, meta, retry);
        let waiting = Waiting {
            agent_id: call.agent_id.clone(),
            complete: call.complete,
            token: call.token.clone(),
            sink: call.sink.clone(),
            what,
            reply: reply_tx,
            progress: progress_tx,
        };
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(number, waiting);
        self.open.fetch_add(1, Ordering::AcqRel);
        let sent = Sent {
            number,
            reply,
            progress,
        };
        (sent, line)
    }

    /// Forget call `number` (answered, cancelled, timed out).
    pub fn forget(&self, number: u64) {
        self.take_call(number);
        if self
            .raw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&number)
            .is_some()
        {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// A 2026-07-28 child's per-request `_meta` as an object; none for an
    /// older child.
    pub fn meta_object(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        match serde_json::from_str(&format!("{{{}}}", self.meta.get()?)) {
            Ok(serde_json::Value::Object(meta)) => Some(meta),
            _ => None,
        }
    }

    /// A request of mcpod's own to the child, `method` with `params`, for
    /// what rmcp's types cannot say (a 2025-11-25 task): its number, where
    /// its raw result (or why it failed) comes, and its line.
    pub fn request(
        &self,
        method: &str,
        params: &serde_json::Value,
    ) -> (u64, oneshot::Receiver<RawAnswer>, Vec<u8>) {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut params = params.clone();
        if let (Some(meta), Some(object)) = (self.meta_object(), params.as_object_mut()) {
            let own = object
                .entry("_meta")
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            // What the request says of itself stands.
            if let Some(own) = own.as_object_mut() {
                for (key, value) in meta {
                    own.entry(key).or_insert(value);
                }
            }
        }
        let line = serde_json::json!({
            "jsonrpc": "2.0", "id": format!("{ID_PREFIX}{number}"),
            "method": method, "params": params,
        });
        self.raw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(number, tx);
        self.open.fetch_add(1, Ordering::AcqRel);
        (number, rx, serde_json::to_vec(&line).unwrap_or_default())
    }

    fn take_raw(&self, number: u64) -> Option<oneshot::Sender<RawAnswer>> {
        let taken = self
            .raw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&number);
        if taken.is_some() {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
        taken
    }

    /// A tool listing starts: the tools' `execution.taskSupport`, which
    /// rmcp's `Tool` does not keep, is read from the pages that come until
    /// the returned guard is dropped.
    pub fn listing(&self) -> Listing<'_> {
        self.listing.fetch_add(1, Ordering::AcqRel);
        self.open.fetch_add(1, Ordering::AcqRel);
        Listing { lane: self }
    }

    /// Whether the child said a call of `tool` must be a task.
    pub fn task_only(&self, tool: &str) -> bool {
        self.task_only
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(tool)
    }

    /// A page of a tool listing: note the tools that must be called as tasks.
    fn listed(&self, result: &RawValue) {
        let Ok(page) = serde_json::from_str::<ToolsPage>(result.get()) else {
            return;
        };
        // Listings may overlap (a change noticed during the first), so each
        // page updates the tools it names, and no listing replaces another.
        let mut task_only = self.task_only.lock().unwrap_or_else(|p| p.into_inner());
        for tool in page.tools {
            let required = tool
                .execution
                .and_then(|e| e.task_support)
                .is_some_and(|s| s == "required");
            if !required {
                task_only.remove(&tool.name);
            } else if task_only.len() < MAX_TASK_ONLY {
                task_only.insert(tool.name);
            }
        }
    }

    /// Answer raw request `number` with the child's result or error.
    fn answered_raw(&self, number: u64, head: &Head<'_>) -> bool {
        let Some(tx) = self.take_raw(number) else {
            return false;
        };
        let answer = match (head.result, head.error) {
            (Some(result), _) if deeper_than(result.get().as_bytes(), MAX_DEPTH) => {
                RawAnswer::OverLimit(format!(
                    "server `{}` sent a response nested deeper than mcpod's limit of {MAX_DEPTH} levels",
                    self.server
                ))
            }
            (Some(result), _) => RawAnswer::Result(result.get().to_string()),
            (None, Some(error)) => RawAnswer::Rejected(
                serde_json::from_str::<ErrorData>(error.get())
                    .map(|e| e.message.into_owned())
                    .unwrap_or_else(|_| quote(error.get())),
            ),
            (None, None) => RawAnswer::Rejected("neither a result nor an error".into()),
        };
        let _ = tx.send(answer);
        true
    }

    fn take_call(&self, number: u64) -> Option<Waiting> {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = calls.remove(&number);
        if waiting.is_some() {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
        waiting
    }

    /// The progress of a request sent through rmcp under `token` goes to `sink`.
    pub fn route(&self, token: ProgressToken, sink: ProgressSink) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if routes.insert(token, sink).is_none() {
            self.open.fetch_add(1, Ordering::AcqRel);
        }
    }

    pub fn unroute(&self, token: &ProgressToken) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if routes.remove(token).is_some() {
            self.open.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Progress of a request sent through rmcp: to its sink, now.
    fn routed(&self, params: &RawValue) -> bool {
        let Ok(params) = serde_json::from_str::<ProgressNotificationParam>(params.get()) else {
            return false;
        };
        let sink = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&params.progress_token)
            .cloned();
        match sink {
            Some(sink) => {
                sink(params);
                true
            }
            None => false,
        }
    }

    /// Answer `number` with an error result saying `text`.
    fn fail(&self, number: u64, text: String) {
        if let Some(w) = self.take_call(number) {
            let _ = w.reply.send(Reply::Line(error_line(&w.agent_id, text)));
        }
    }

    /// The child answered call `number`.
    fn answered(&self, number: u64, head: &Head<'_>) {
        let Some(w) = self.take_call(number) else {
            // Answered after its deadline or cancellation: nobody waits.
            return;
        };
        let line = match (head.result, head.error) {
            (Some(result), _) if deeper_than(result.get().as_bytes(), MAX_DEPTH) => error_line(
                &w.agent_id,
                super::answers::too_big(
                    &format!(
                        "server `{}` sent a response nested deeper than mcpod's limit of {MAX_DEPTH} levels",
                        self.server
                    ),
                    &w.what,
                ),
            ),
            (Some(result), _) if asks_for_input(result.get()) => {
                let _ = w.reply.send(Reply::Asked(result.get().to_string()));
                return;
            }
            (Some(result), _) if result.get().starts_with('{') => match w.complete {
                true => response_line(&w.agent_id, &with_result_type(result.get())),
                false => response_line(&w.agent_id, result.get()),
            },
            (Some(result), _) => error_line(
                &w.agent_id,
                format!(
                    "server `{}` answered tools/call with an unexpected result: {}",
                    self.server,
                    quote(result.get())
                ),
            ),
            (None, Some(error)) => {
                let message = serde_json::from_str::<ErrorData>(error.get())
                    .map(|e| e.message.into_owned())
                    .unwrap_or_else(|_| quote(error.get()));
                error_line(
                    &w.agent_id,
                    super::answers::rejected(&self.server, &w.what, &message),
                )
            }
            (None, None) => error_line(
                &w.agent_id,
                format!(
                    "server `{}` answered {} with neither a result nor an error",
                    self.server, w.what
                ),
            ),
        };
        let _ = w.reply.send(Reply::Line(line));
    }

    /// The child's progress under call `number`'s token.
    fn progress(&self, number: u64, params: &RawValue) {
        // Only what is needed is taken under the lock; the JSON work is not.
        let (token, queue) = {
            let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            match calls.get(&number) {
                Some(Waiting {
                    sink: Some(sink), ..
                }) => {
                    let sink = sink.clone();
                    drop(calls);
                    if let Ok(params) = serde_json::from_str(params.get()) {
                        sink(params);
                    }
                    return;
                }
                Some(Waiting {
                    token: Some(token),
                    progress,
                    ..
                }) => (token.clone(), progress.clone()),
                _ => return,
            }
        };
        let Ok(mut params) =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(params.get())
        else {
            return;
        };
        if let Some(serde_json::Value::String(m)) = params.get_mut("message")
            && let Some((cut, _)) = m.char_indices().nth(MESSAGE_CHARS)
        {
            m.truncate(cut);
        }
        let Ok(token) = serde_json::from_str(token.get()) else {
            return;
        };
        params.insert("progressToken".into(), token);
        let line = serde_json::json!({
            "jsonrpc": "2.0", "method": "notifications/progress", "params": params,
        });
        if let Ok(line) = serde_json::to_vec(&line) {
            let _ = queue.try_send(line);
        }
    }
}

/// The top level of a message from the child, its values unparsed.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// A tool listing under way (see [`Lane::listing`]).
pub struct Listing<'a> {
    lane: &'a Lane,
}

impl Drop for Listing<'_> {
    fn drop(&mut self) {
        self.lane.listing.fetch_sub(1, Ordering::AcqRel);
        self.lane.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Tools of one server noted as task-only; more are called plainly (and
/// their server says why not).
const MAX_TASK_ONLY: usize = 1000;

/// A page of `tools/list`, as far as `execution.taskSupport` goes.
#[derive(Deserialize)]
struct ToolsPage {
    tools: Vec<ListedTool>,
}

#[derive(Deserialize)]
struct ListedTool {
    name: String,
    #[serde(default)]
    execution: Option<Execution>,
}

#[derive(Deserialize)]
struct Execution {
    #[serde(rename = "taskSupport", default)]
    task_support: Option<String>,
}

#[derive(Deserialize)]
struct ProgressHead<'a> {
    #[serde(rename = "progressToken", borrow)]
    token: &'a RawValue,
}

impl wire::Tap for Lane {
    fn take(&self, line: &[u8]) -> bool {
        if self.open.load(Ordering::Acquire) == 0 {
            return false;
        }
        let Ok(head) = serde_json::from_slice::<Head>(line) else {
            return false;
        };
        match head.method.as_deref() {
            None => match head.id.and_then(|id| ours(id.get())) {
                Some(number) => {
                    if !self.answered_raw(number, &head) {
                        self.answered(number, &head);
                    }
                    true
                }
                None => {
                    if self.listing.load(Ordering::Acquire) > 0
                        && let Some(result) = head.result
                    {
                        self.listed(result);
                    }
                    false
                }
            },
            Some("notifications/progress") => {
                let Some(params) = head.params else {
                    return false;
                };
                let number = serde_json::from_str::<ProgressHead>(params.get())
                    .ok()
                    .and_then(|p| ours(p.token.get()));
                match number {
                    Some(number) => {
                        self.progress(number, params);
                        true
                    }
                    None => self.routed(params),
                }
            }
            Some(_) => false,
        }
    }

    fn refused(&self, id: &RequestId, why: &str) -> bool {
        let RequestId::String(id) = id else {
            return false;
        };
        let Some(number) = id.strip_prefix(ID_PREFIX).and_then(|n| n.parse().ok()) else {
            return false;
        };
        if let Some(tx) = self.take_raw(number) {
            let _ = tx.send(RawAnswer::OverLimit(why.to_string()));
            return true;
        }
        let what = {
            let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            match calls.get(&number) {
                Some(w) => w.what.clone(),
                None => return true,
            }
        };
        self.fail(number, super::answers::too_big(why, &what));
        true
    }
}

const ID_PREFIX: &str = "mcpod-";

/// The number of one of mcpod's ids (`"mcpod-N"`, as raw JSON).
fn ours(raw: &str) -> Option<u64> {
    raw.strip_prefix('"')?
        .strip_suffix('"')?
        .strip_prefix(ID_PREFIX)?
        .parse()
        .ok()
}

/// `tools/call` of `call.tool` under id and progress token `"mcpod-N"`,
/// with the per-request `meta` members and an input round's `retry`
/// members, when given.
fn request_line(number: u64, call: &RawCall, meta: Option<&str>, retry: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(
        128 + call.tool.len()
            + call.arguments.as_ref().map_or(0, |a| a.get().len())
            + meta.map_or(0, str::len)
            + call.trace.as_ref().map_or(0, String::len)
            + retry.len(),
    );
    line.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":\"mcpod-");
    line.extend_from_slice(number.to_string().as_bytes());
    line.extend_from_slice(b"\",\"method\":\"tools/call\",\"params\":{\"name\":");
    // A String always serialises.
    line.extend_from_slice(&serde_json::to_vec(&call.tool).unwrap_or_default());
    if let Some(arguments) = &call.arguments {
        line.extend_from_slice(b",\"arguments\":");
        line.extend_from_slice(arguments.get().as_bytes());
    }
    let token = call.token.is_some() || call.sink.is_some();
    if token || meta.is_some() || call.trace.is_some() {
        line.extend_from_slice(b",\"_meta\":{");
        let mut first = true;
        if token {
            line.extend_from_slice(b"\"progressToken\":\"mcpod-");
            line.extend_from_slice(number.to_string().as_bytes());
            line.push(b'"');
            first = false;
        }
        for members in [meta, call.trace.as_deref()].into_iter().flatten() {
            if !first {
                line.push(b',');
            }
            line.extend_from_slice(members.as_bytes());
            first = false;
        }
        line.push(b'}');
    }
    line.extend_from_slice(retry.as_bytes());
    line.extend_from_slice(b"}}");
    line
}

/// Whether a result (raw JSON) is an `InputRequiredResult`: a 2026-07-28
/// child's questions. The text is looked for first, so nearly every result
/// is only scanned.
fn asks_for_input(result: &str) -> bool {
    #[derive(Deserialize)]
    struct Type<'a> {
        #[serde(rename = "resultType", borrow, default)]
        result_type: Option<Cow<'a, str>>,
    }
    memchr::memmem::find(result.as_bytes(), b"\"input_required\"").is_some()
        && serde_json::from_str::<Type<'_>>(result)
            .is_ok_and(|t| t.result_type.as_deref() == Some("input_required"))
}

/// `notifications/cancelled` of call `number`, for the child.
pub fn cancel_line(number: u64, reason: &str) -> Vec<u8> {
    let line = serde_json::json!({
        "jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": format!("{ID_PREFIX}{number}"), "reason": reason},
    });
    serde_json::to_vec(&line).unwrap_or_default()
}

/// The agent's response carrying `result` (raw JSON) under `id`.
pub fn response_line(id: &RawValue, result: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(40 + id.get().len() + result.len());
    line.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    line.extend_from_slice(id.get().as_bytes());
    line.extend_from_slice(b",\"result\":");
    line.extend_from_slice(result.as_bytes());
    line.push(b'}');
    line
}

/// A result object with `"resultType":"complete"` when it has none at its
/// top level (older children leave it out; 2026-07-28 clients need it).
fn with_result_type(result: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow as C;
    /// Whether the top level has `resultType` (even `null`), the rest
    /// skipped unread.
    #[derive(Deserialize)]
    struct Top {
        #[serde(rename = "resultType", default)]
        result_type: Present,
    }
    #[derive(Default)]
    struct Present(bool);
    impl<'de> Deserialize<'de> for Present {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            serde::de::IgnoredAny::deserialize(d).map(|_| Present(true))
        }
    }
    if memchr::memmem::find(result.as_bytes(), b"\"resultType\"").is_some() {
        let top = serde_json::from_str::<Top>(result);
        if top.is_ok_and(|top| top.result_type.0) {
            return C::Borrowed(result);
        }
    }
    let rest = result[1..].trim_start();
    let sep = if rest.starts_with('}') { "" } else { "," };
    C::Owned(format!("{{\"resultType\":\"complete\"{sep}{rest}"))
}

/// The agent's response under `id`: a tool result that failed with `text`,
/// as the slow path answers.
pub fn error_line(id: &RawValue, text: String) -> Vec<u8> {
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.result_type = Some(rmcp::model::ResultType::COMPLETE);
    let result = serde_json::to_string(&result).unwrap_or_else(|_| "{}".into());
    response_line(id, &result)
}

/// The start of a raw value, quoted, for a message.
fn quote(raw: &str) -> String {
    let end = raw.char_indices().nth(80).map_or(raw.len(), |(i, _)| i);
    format!("{:?}", &raw[..end])
}

/// Whether JSON `bytes` nest deeper than `limit` arrays and objects.
/// Counting brackets first (vectorised) spares the scan for nearly every
/// message: fewer brackets than the limit cannot nest past it.
pub fn deeper_than(bytes: &[u8], limit: usize) -> bool {
    if memchr::memchr2_iter(b'[', b'{', bytes).nth(limit).is_none() {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The agent's id as rmcp's type (to match its cancellations).
pub fn request_id(raw: &RawValue) -> Option<RequestId> {
    serde_json::from_str::<NumberOrString>(raw.get()).ok()
}

#[cfg(test)]
mod tests;
