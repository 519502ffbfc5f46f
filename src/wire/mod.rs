//! Newline-delimited JSON-RPC over a byte stream, with limits that are
//! answered: the transport under mcpod's own stdio server and under every
//! child connection. Knows JSON-RPC, nothing of sessions or podman.
//!
//! rmcp's stdio transport drops a line over its size limit, and a line it
//! cannot parse (100,000 levels deep, say), with a log line and no reply: the
//! peer's request then waits for ever, or for its whole deadline. Here:
//!
//! - a line is never buffered past [`Limits::max_message`] (the rest streams
//!   through [`scan::Scan`], which finds its `id` and `method`);
//! - a *request* that is too large or cannot be parsed gets a JSON-RPC error
//!   reply with its id, naming the size and the limit;
//! - a *response* that is too large or cannot be parsed becomes an error
//!   response to the request it answers, so that request fails at once with
//!   the reason, not after its deadline;
//! - anything else (a notification, non-JSON) is dropped and reported to the
//!   owner's `on_problem`, which decides how loudly to say so.
//!
//! - a request with an id that is no id (an object, an array, a boolean, a
//!   fraction, null), or a batch (an array of messages, which MCP removed in
//!   2025-06-18), gets a JSON-RPC error reply whose id is null;
//! - a peer that sends requests and never reads the replies is paused
//!   ([`flow`]): memory stays bounded, an honest slow reader loses nothing.
//!
//! A [`Tap`] sees each line before it is parsed and may take it: that is
//! how proxied calls pass through as bytes (`proxy/fast.rs`), written with
//! a [`RawWriter`] between the lines rmcp sends.

pub mod flow;
pub mod scan;
pub mod stdio;

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;

use rmcp::model::{
    ErrorCode, ErrorData, JsonRpcError, JsonRpcMessage, JsonRpcVersion2_0, RequestId,
};
use rmcp::service::{RxJsonRpcMessage, ServiceRole, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use flow::{Flow, MAX_HELD, MAX_HELD_BYTES, MAX_IN_FLIGHT, Notice, Slot};

/// The error code of a reply mcpod makes up for a message over the limit.
pub const TOO_LARGE: ErrorCode = ErrorCode(-32010);
/// The error code of a reply mcpod makes up for a message it cannot parse.
pub const UNPARSABLE: ErrorCode = ErrorCode(-32011);

/// The longest string id a request may have (as JSON, without its quotes):
/// a longer one is refused with a null id, never echoed.
pub const MAX_ID_BYTES: usize = 256;

/// The first messages each way that are checked for an echo (a "server"
/// that copies its stdin to its stdout, `cat` say, never answers).
const ECHO_WINDOW: usize = 4;

/// Error replies to refused requests that may wait to be written at once.
const MAX_PENDING_REPLIES: usize = 64;

/// Bytes read from the stream at a time.
const READ_BUF: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest message (one line, without its newline) that is parsed.
    pub max_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message: 16 * 1024 * 1024,
        }
    }
}

/// Told of each message that was refused, in one sentence.
pub type OnProblem = Arc<dyn Fn(String) + Send + Sync>;

/// Who is at the other end, for messages ("the client", "server `fs`").
pub struct Peer {
    pub name: String,
    pub on_problem: OnProblem,
}

/// Looks at each whole line a transport reads, before it is parsed.
pub trait Tap: Send + Sync {
    /// Take `line` (one JSON-RPC message, no newline): true if the tap
    /// handles it, and rmcp never sees it.
    fn take(&self, line: &[u8]) -> bool;

    /// A response to `id` was refused (`why`: too large, or not parsable):
    /// true if `id` is a request of the tap's, which it now fails.
    fn refused(&self, _id: &RequestId, _why: &str) -> bool {
        false
    }
}

/// Writes whole lines to a transport's peer, between the messages the
/// transport itself sends (one lock: lines never interleave).
#[derive(Clone)]
pub struct RawWriter {
    write: Writer,
    flow: Arc<Flow>,
}

impl RawWriter {
    /// Write `line` (a JSON-RPC message without its newline) and a newline.
    pub async fn line(&self, mut line: Vec<u8>) -> std::io::Result<()> {
        line.push(b'\n');
        write_bytes(&self.write, &line).await
    }

    /// A request a [`Tap`] took (a line of `bytes`), in flight until the
    /// slot is dropped (after [`RawWriter::answer`]); none when its id is in
    /// flight already.
    pub fn enter(&self, id: RequestId, bytes: usize) -> Option<Slot> {
        Slot::enter(&self.flow, id, bytes)
    }

    /// Write `line`, the reply to a request the peer sent: its bytes count
    /// towards the pause while it waits.
    pub async fn answer(&self, line: Vec<u8>) -> std::io::Result<()> {
        let _waiting = self.flow.reply(line.len() + 1);
        self.line(line).await
    }
}

/// What [`LineTransport::next_line`] found.
enum Read {
    /// A whole line, in `line`.
    Line,
    /// An oversized line whose id and kind are known: refuse it now.
    OversizedKnown,
    /// An oversized line has ended (refused already, or not).
    OversizedEnded { refused: bool },
}

type Writer = Arc<tokio::sync::Mutex<Option<Box<dyn AsyncWrite + Send + Unpin>>>>;

pub struct LineTransport<Role: ServiceRole, R> {
    read: BufReader<R>,
    line: Vec<u8>,
    /// Set while the rest of an oversized line streams past (and whether it
    /// has been refused already).
    oversized: Option<(scan::Scan, bool)>,
    /// Made-up error responses, delivered before the next line is read.
    injected: VecDeque<RxJsonRpcMessage<Role>>,
    /// Requests in flight, and the pause.
    flow: Arc<Flow>,
    /// Requests read while paused (with their ids), for when it ends.
    held: VecDeque<(Option<RequestId>, Vec<u8>)>,
    /// Bytes of `held`.
    held_bytes: usize,
    write: Writer,
    /// Digests of the first messages sent, to tell a peer that echoes them.
    sent: Arc<std::sync::Mutex<Vec<blake3::Hash>>>,
    /// Error replies written or waiting to be (at most [`MAX_PENDING_REPLIES`]).
    pending_replies: Arc<std::sync::atomic::AtomicUsize>,
    /// Lines received so far (counted up to [`ECHO_WINDOW`]).
    received: usize,
    limits: Limits,
    peer: Arc<Peer>,
    tap: Option<Arc<dyn Tap>>,
    _role: PhantomData<fn() -> Role>,
}

impl<Role: ServiceRole, R: AsyncRead + Send + Unpin> LineTransport<Role, R> {
    pub fn new<W>(read: R, write: W, limits: Limits, peer: Peer) -> Self
    where
        W: AsyncWrite + Send + Unpin + 'static,
    {
        LineTransport {
            read: BufReader::with_capacity(READ_BUF, read),
            line: Vec::new(),
            oversized: None,
            injected: VecDeque::new(),
            flow: Arc::default(),
            held: VecDeque::new(),
            held_bytes: 0,
            write: Arc::new(tokio::sync::Mutex::new(Some(Box::new(write)))),
            sent: Arc::default(),
            pending_replies: Arc::default(),
            received: 0,
            limits,
            peer: Arc::new(peer),
            tap: None,
            _role: PhantomData,
        }
    }

    /// Show each line to `tap` first.
    pub fn with_tap(mut self, tap: Arc<dyn Tap>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// A writer to the peer, for lines that rmcp does not send.
    pub fn raw_writer(&self) -> RawWriter {
        RawWriter {
            write: self.write.clone(),
            flow: self.flow.clone(),
        }
    }

    /// Read until a whole line is in `self.line` ([`Read::Line`]), an
    /// oversized line can be refused or has ended, or the stream ends (`None`).
    /// Cancel-safe: all state is in `self`.
    async fn next_line(&mut self) -> Option<Read> {
        loop {
            let available = match self.read.fill_buf().await {
                Ok([]) | Err(_) => return None,
                Ok(available) => available,
            };
            let newline = memchr::memchr(b'\n', available);
            let take = newline.map_or(available.len(), |i| i + 1);
            let chunk = &available[..newline.unwrap_or(available.len())];
            let ended = newline.is_some();
            if let Some((scan, _)) = self.oversized.as_mut() {
                scan.feed(chunk);
            } else if self.line.len() + chunk.len() > self.limits.max_message {
                let mut scan = scan::scan(&self.line);
                scan.feed(chunk);
                self.line = Vec::new();
                self.oversized = Some((scan, false));
            } else {
                self.line.extend_from_slice(chunk);
            }
            self.read.consume(take);
            match &mut self.oversized {
                None if ended => return Some(Read::Line),
                None => {}
                Some((_, refused)) if ended => {
                    let refused = *refused;
                    return Some(Read::OversizedEnded { refused });
                }
                // Known to be a request or a response: refuse it now, not
                // after however many more bytes (a line may never end).
                Some((scan, refused @ false)) if scan.decided() => {
                    *refused = true;
                    return Some(Read::OversizedKnown);
                }
                Some(_) => {}
            }
        }
    }

    /// A message that will not be delivered: reply, inject, or report it.
    fn refuse(&mut self, scan: &scan::Scan, what: &str, code: ErrorCode) {
        let peer = &self.peer.name;
        let kind = if scan.has_method() {
            match scan.method() {
                Some(m) => format!("`{m}` message"),
                None => "message".to_string(),
            }
        } else {
            "response".to_string()
        };
        let sentence = format!("{peer} sent a {kind} {what}");
        match (scan.id(), scan.has_method()) {
            // A request: tell the peer why it gets no answer.
            (Some(id), true) => self.reply_error(Some(id), code, &sentence, ""),
            // JSON-RPC's answer to a request whose id cannot be read, and
            // to a batch: an Invalid Request error with a null id.
            (None, _) if scan.batch() => {
                let sentence = format!(
                    "{peer} sent a JSON-RPC batch (an array of messages), which MCP does not support since 2025-06-18"
                );
                let fix = ". Fix: send each message on a line of its own";
                self.reply_error(None, ErrorCode::INVALID_REQUEST, &sentence, fix);
            }
            (None, true) if scan.has_id() => {
                let sentence = format!(
                    "{sentence}; its `id` is not a string or an integer (or is longer than 256 bytes)"
                );
                let fix =
                    ", and this reply has a null id. Fix: give each request a string or integer id";
                self.reply_error(None, ErrorCode::INVALID_REQUEST, &sentence, fix);
            }
            // A response to a request a tap wrote: the tap fails it.
            (Some(id), false) if self.tap.as_ref().is_some_and(|t| t.refused(&id, &sentence)) => {
                (self.peer.on_problem)(format!("{sentence}; failed the request it answers"));
            }
            // A response: fail the request it answers, now.
            (Some(id), false) => {
                self.injected
                    .push_back(error_response::<Role>(id, code, sentence.clone()));
                (self.peer.on_problem)(format!("{sentence}; failed the request it answers"));
            }
            (None, _) => (self.peer.on_problem)(format!("{sentence}; dropped it")),
        }
    }
}

impl<Role: ServiceRole, R: AsyncRead + Send + Unpin> LineTransport<Role, R> {
    /// Parse `line` (or let the tap take it) and count a request in: the
    /// message for rmcp, if any.
    fn deliver(&mut self, line: Vec<u8>) -> Option<RxJsonRpcMessage<Role>> {
        let text = message_text(&line);
        if let Some(tap) = &self.tap
            && tap.take(text)
        {
            self.reuse(line);
            return None;
        }
        let parsed = serde_json::from_slice::<RxJsonRpcMessage<Role>>(text);
        let message = match parsed {
            Ok(message) => message,
            Err(e) => {
                let scan = scan::scan(text);
                let why = if e.to_string().contains("recursion limit") {
                    "nested deeper than mcpod's limit of 128 levels".to_string()
                } else if serde_json::from_slice::<serde::de::IgnoredAny>(text).is_err() {
                    format!("that is not JSON ({e}), starting {}", quote_start(text))
                } else {
                    format!("that is not a valid JSON-RPC message ({e})")
                };
                self.refuse(&scan, &why, UNPARSABLE);
                return None;
            }
        };
        let bytes = line.len();
        self.reuse(line);
        match message {
            JsonRpcMessage::Request(request) if too_long(&request.id) => {
                let sentence = format!(
                    "{} sent a request whose `id` is a string of {} bytes, longer than mcpod's limit of {MAX_ID_BYTES}",
                    self.peer.name,
                    id_len(&request.id)
                );
                let fix = ", and this reply has a null id. Fix: give each request an id of at most 256 bytes";
                self.reply_error(None, ErrorCode::INVALID_REQUEST, &sentence, fix);
                None
            }
            JsonRpcMessage::Request(request) if !self.flow.enter(&request.id, bytes) => {
                let sentence = format!(
                    "{} sent a request with id {} while its request {} is still unanswered",
                    self.peer.name, request.id, request.id
                );
                let fix = ". Fix: give each request in flight an id of its own";
                self.reply_error(Some(request.id), ErrorCode::INVALID_REQUEST, &sentence, fix);
                None
            }
            // A cancelled request gets no reply: it leaves the flight now.
            JsonRpcMessage::Notification(mut n) => {
                n.notification = match n.notification.try_into() {
                    Ok(cancelled) => {
                        let cancelled: rmcp::model::CancelledNotification = cancelled;
                        if let Some(id) = &cancelled.params.request_id {
                            self.flow.leave(id);
                        }
                        cancelled.into()
                    }
                    Err(other) => other,
                };
                Some(JsonRpcMessage::Notification(n))
            }
            message => Some(message),
        }
    }

    /// While paused: keep `line` for later if it is a request (none back),
    /// drop it with the held request it cancels (none back), else give it
    /// back to be delivered now (an answer, a notification).
    fn hold(&mut self, mut line: Vec<u8>) -> Option<Vec<u8>> {
        let scan = scan::scan(message_text(&line));
        if scan.has_method() && scan.has_id() {
            line.shrink_to_fit();
            self.held_bytes += line.len();
            self.held.push_back((scan.id(), line));
            return None;
        }
        if scan.method().as_deref() == Some("notifications/cancelled")
            && let Some(id) = cancelled_id(message_text(&line))
            && let Some(i) = self
                .held
                .iter()
                .position(|(held, _)| held.as_ref() == Some(&id))
            && let Some((_, request)) = self.held.remove(i)
        {
            self.held_bytes -= request.len();
            (self.peer.on_problem)(format!(
                "{} cancelled request {id} before mcpod read it (it had {MAX_IN_FLIGHT} requests in flight); dropped both",
                self.peer.name
            ));
            return None;
        }
        Some(line)
    }

    /// Keep a line's buffer for the next line while it is small.
    fn reuse(&mut self, mut line: Vec<u8>) {
        if line.capacity() <= READ_BUF {
            line.clear();
            self.line = line;
        }
    }

    /// Answer a request mcpod will not serve with an error reply (`id`
    /// none: a null id). A peer that floods bad requests and never reads
    /// its replies costs [`MAX_PENDING_REPLIES`] of them, not a task each.
    /// `fix` follows "mcpod refused it" in the reply.
    fn reply_error(&self, id: Option<RequestId>, code: ErrorCode, sentence: &str, fix: &str) {
        use std::sync::atomic::Ordering;
        let reply = serde_json::json!({
            "jsonrpc": "2.0", "id": id,
            "error": {"code": code.0, "message": format!("{sentence}; mcpod refused it{fix}")},
        });
        let pending = self.pending_replies.clone();
        if pending.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_REPLIES {
            pending.fetch_sub(1, Ordering::SeqCst);
            (self.peer.on_problem)(format!(
                "{sentence}; dropped it unanswered ({MAX_PENDING_REPLIES} error replies are already waiting to be read)"
            ));
            return;
        }
        let write = self.write.clone();
        tokio::spawn(async move {
            let _ = write_line(&write, &reply).await;
            pending.fetch_sub(1, Ordering::SeqCst);
        });
        (self.peer.on_problem)(format!("{sentence}; refused it with an error reply"));
    }
}

fn error_response<Role: ServiceRole>(
    id: RequestId,
    code: ErrorCode,
    message: String,
) -> RxJsonRpcMessage<Role> {
    JsonRpcMessage::Error(JsonRpcError {
        jsonrpc: JsonRpcVersion2_0,
        id: Some(id),
        error: ErrorData::new(code, message, None),
    })
}

/// Write one message and its newline in one go.
async fn write_line<T: serde::Serialize>(write: &Writer, item: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(item).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_bytes(write, &bytes).await
}

/// Write a whole line in one go.
async fn write_bytes(write: &Writer, bytes: &[u8]) -> std::io::Result<()> {
    let mut guard = write.lock().await;
    let Some(w) = guard.as_mut() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the transport is closed",
        ));
    };
    w.write_all(bytes).await?;
    w.flush().await
}

impl<Role: ServiceRole, R: AsyncRead + Send + Unpin> Transport<Role> for LineTransport<Role, R> {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<Role>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = self.write.clone();
        let sent = self.sent.clone();
        let flow = self.flow.clone();
        let peer = self.peer.clone();
        // A reply: its request leaves the flight once it is written.
        let answers = match &item {
            JsonRpcMessage::Response(r) => Some(r.id.clone()),
            JsonRpcMessage::Error(e) => e.id.clone(),
            _ => None,
        };
        // A notification waits with a bounded number of others, or is dropped.
        let mut ticket = None;
        let mut item = Some(item);
        if matches!(item, Some(JsonRpcMessage::Notification(_))) {
            match flow.notification() {
                Notice::Write(t) => ticket = Some(t),
                Notice::DroppedFirst => {
                    item = None;
                    (peer.on_problem)(format!(
                        "{} is not reading what mcpod writes: {} notifications wait to be written, so mcpod drops more (progress, list changes, log messages) until it reads",
                        peer.name,
                        flow::MAX_WAITING_NOTIFICATIONS
                    ));
                }
                Notice::Dropped => item = None,
            }
        }
        async move {
            let Some(item) = item else { return Ok(()) };
            let mut bytes = serde_json::to_vec(&item).map_err(std::io::Error::other)?;
            drop(item);
            {
                let mut sent = sent.lock().unwrap_or_else(|p| p.into_inner());
                if sent.len() < ECHO_WINDOW {
                    sent.push(blake3::hash(&bytes));
                }
            }
            bytes.push(b'\n');
            let waiting = answers.as_ref().map(|_| flow.reply(bytes.len()));
            let written = write_bytes(&write, &bytes).await;
            drop((waiting, ticket));
            if let Some(id) = &answers {
                flow.leave(id);
            }
            if written.is_ok() {
                let dropped = flow.take_dropped();
                if dropped > 0 {
                    (peer.on_problem)(format!(
                        "mcpod dropped {dropped} notifications to {} while {} waited to be written (it was not reading)",
                        peer.name,
                        flow::MAX_WAITING_NOTIFICATIONS
                    ));
                }
            }
            written
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<Role>> {
        loop {
            if let Some(message) = self.injected.pop_front() {
                return Some(message);
            }
            let paused = self.flow.paused();
            if !paused && let Some((_, line)) = self.held.pop_front() {
                self.held_bytes -= line.len();
                if let Some(message) = self.deliver(line) {
                    return Some(message);
                }
                continue;
            }
            let flow = self.flow.clone();
            if paused && (self.held.len() >= MAX_HELD || self.held_bytes >= MAX_HELD_BYTES) {
                flow.until_open().await;
                continue;
            }
            let read = if self.held.is_empty() {
                self.next_line().await?
            } else {
                // Held requests go on as soon as the pause ends.
                tokio::select! {
                    read = self.next_line() => read?,
                    () = flow.until_open() => continue,
                }
            };
            match read {
                Read::Line => {}
                Read::OversizedKnown => {
                    if let Some((scan, _)) = self.oversized.take() {
                        let what = format!(
                            "over mcpod's limit of {} bytes per message (refused before its end)",
                            self.limits.max_message
                        );
                        self.refuse(&scan, &what, TOO_LARGE);
                        // The rest of it is read past, unkept.
                        self.oversized = Some((scan, true));
                    }
                    continue;
                }
                Read::OversizedEnded { refused } => {
                    if let Some((scan, _)) = self.oversized.take()
                        && !refused
                    {
                        let what = format!(
                            "of {} bytes, over mcpod's limit of {} bytes per message",
                            scan.bytes, self.limits.max_message
                        );
                        self.refuse(&scan, &what, TOO_LARGE);
                    }
                    continue;
                }
            }
            let line = std::mem::take(&mut self.line);
            let text = message_text(&line);
            if text.iter().all(u8::is_ascii_whitespace) {
                self.reuse(line);
                continue;
            }
            if self.received < ECHO_WINDOW {
                self.received += 1;
                let digest = blake3::hash(text);
                let echoed = self
                    .sent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&digest);
                if echoed {
                    (self.peer.on_problem)(format!(
                        "{} echoed back what mcpod sent it, starting {}; dropped it",
                        self.peer.name,
                        quote_start(text)
                    ));
                    continue;
                }
            }
            let line = match self.flow.paused() {
                true => match self.hold(line) {
                    Some(line) => line,
                    None => continue,
                },
                false => line,
            };
            if let Some(message) = self.deliver(line) {
                return Some(message);
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        if let Some(mut w) = self.write.lock().await.take() {
            let _ = w.shutdown().await;
        }
        Ok(())
    }
}

/// Whether `id` is a string longer than [`MAX_ID_BYTES`].
fn too_long(id: &RequestId) -> bool {
    id_len(id) > MAX_ID_BYTES
}

/// The bytes of a string id (0 for a number).
fn id_len(id: &RequestId) -> usize {
    match id {
        rmcp::model::NumberOrString::String(s) => s.len(),
        rmcp::model::NumberOrString::Number(_) => 0,
    }
}

/// A line without its `\r` and byte-order mark.
fn message_text(line: &[u8]) -> &[u8] {
    let text = line.strip_suffix(b"\r").unwrap_or(line);
    text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text)
}

/// The `requestId` of a `notifications/cancelled` line.
fn cancelled_id(text: &[u8]) -> Option<RequestId> {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "requestId")]
        id: RequestId,
    }
    #[derive(serde::Deserialize)]
    struct Cancel {
        params: Params,
    }
    serde_json::from_slice::<Cancel>(text)
        .ok()
        .map(|c| c.params.id)
}

/// The first bytes of a line, quoted, for a message.
fn quote_start(text: &[u8]) -> String {
    let head = &text[..text.len().min(80)];
    format!("{:?}", String::from_utf8_lossy(head))
}

#[cfg(test)]
mod tests;
