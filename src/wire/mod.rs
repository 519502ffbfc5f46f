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
//! A [`Tap`] sees each line before it is parsed and may take it: that is
//! how proxied calls pass through as bytes (`proxy/fast.rs`), written with
//! a [`RawWriter`] between the lines rmcp sends.

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

/// The error code of a reply mcpod makes up for a message over the limit.
pub const TOO_LARGE: ErrorCode = ErrorCode(-32010);
/// The error code of a reply mcpod makes up for a message it cannot parse.
pub const UNPARSABLE: ErrorCode = ErrorCode(-32011);

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
pub struct RawWriter(Writer);

impl RawWriter {
    /// Write `line` (a JSON-RPC message without its newline) and a newline.
    pub async fn line(&self, mut line: Vec<u8>) -> std::io::Result<()> {
        line.push(b'\n');
        write_bytes(&self.0, &line).await
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
        RawWriter(self.write.clone())
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
            (Some(id), true) => {
                let reply = serde_json::json!({
                    "jsonrpc": "2.0", "id": id,
                    "error": {"code": code.0, "message": format!("{sentence}; mcpod refused it")},
                });
                use std::sync::atomic::Ordering;
                // A peer that floods bad requests and never reads its
                // replies costs a bounded number of them, not a task each.
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
        async move {
            let mut bytes = serde_json::to_vec(&item).map_err(std::io::Error::other)?;
            {
                let mut sent = sent.lock().unwrap_or_else(|p| p.into_inner());
                if sent.len() < ECHO_WINDOW {
                    sent.push(blake3::hash(&bytes));
                }
            }
            bytes.push(b'\n');
            write_bytes(&write, &bytes).await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<Role>> {
        loop {
            if let Some(message) = self.injected.pop_front() {
                return Some(message);
            }
            match self.next_line().await? {
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
            let text = line.strip_suffix(b"\r").unwrap_or(&line);
            let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
            if text.iter().all(u8::is_ascii_whitespace) {
                self.line = line;
                self.line.clear();
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
            if let Some(tap) = &self.tap
                && tap.take(text)
            {
                if line.capacity() <= READ_BUF {
                    self.line = line;
                    self.line.clear();
                }
                continue;
            }
            let parsed = serde_json::from_slice::<RxJsonRpcMessage<Role>>(text);
            match parsed {
                Ok(message) => {
                    // Keep the buffer's memory only while it is small.
                    if line.capacity() <= READ_BUF {
                        self.line = line;
                        self.line.clear();
                    }
                    return Some(message);
                }
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
                }
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

/// The first bytes of a line, quoted, for a message.
fn quote_start(text: &[u8]) -> String {
    let head = &text[..text.len().min(80)];
    format!("{:?}", String::from_utf8_lossy(head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::{RoleClient, RoleServer};
    use std::sync::Mutex;
    use tokio::io::AsyncReadExt;

    type Problems = Arc<Mutex<Vec<String>>>;

    fn transport<Role: ServiceRole>(
        max: usize,
    ) -> (
        LineTransport<Role, tokio::io::ReadHalf<tokio::io::DuplexStream>>,
        tokio::io::DuplexStream,
        Problems,
    ) {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let (read, write) = tokio::io::split(ours);
        let problems: Problems = Arc::default();
        let p = problems.clone();
        let t = LineTransport::new(
            read,
            write,
            Limits { max_message: max },
            Peer {
                name: "the peer".into(),
                on_problem: Arc::new(move |m| p.lock().expect("lock").push(m)),
            },
        );
        (t, theirs, problems)
    }

    async fn reply(theirs: &mut tokio::io::DuplexStream) -> serde_json::Value {
        let mut got = Vec::new();
        let mut byte = [0u8];
        while theirs.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
            got.push(byte[0]);
        }
        serde_json::from_slice(&got).expect("a JSON reply")
    }

    const PING: &str = "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"ping\"}\n";

    #[tokio::test]
    async fn an_oversized_request_is_answered_and_the_next_one_served() {
        let (mut t, mut theirs, problems) = transport::<RoleServer>(1000);
        let big = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{{\"x\":\"{}\"}},\"id\":5}}\n",
            "a".repeat(5000)
        );
        theirs.write_all(big.as_bytes()).await.expect("write");
        theirs.write_all(PING.as_bytes()).await.expect("write");
        let next = t.receive().await.expect("the ping");
        assert!(matches!(next, JsonRpcMessage::Request(r) if r.id == RequestId::Number(99)));
        let err = reply(&mut theirs).await;
        assert_eq!(err["id"], 5, "{err}");
        let text = err["error"]["message"].as_str().unwrap_or_default();
        assert!(
            text.contains(&format!("of {} bytes", big.len() - 1)),
            "{text}"
        );
        assert!(text.contains("limit of 1000 bytes"), "{text}");
        assert!(text.contains("`tools/call`"), "{text}");
        assert_eq!(problems.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn a_too_deep_request_is_answered() {
        let (mut t, mut theirs, _) = transport::<RoleServer>(1 << 20);
        let deep = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":\"d\",\"method\":\"tools/call\",\"params\":{}{}}}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        theirs.write_all(deep.as_bytes()).await.expect("write");
        theirs.write_all(PING.as_bytes()).await.expect("write");
        assert!(t.receive().await.is_some());
        let err = reply(&mut theirs).await;
        assert_eq!(err["id"], "d", "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("deeper"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_oversized_response_fails_its_request() {
        let (mut t, mut theirs, problems) = transport::<RoleClient>(1000);
        let big = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{}\"}}]}}}}\n",
            "a".repeat(5000)
        );
        theirs.write_all(big.as_bytes()).await.expect("write");
        match t.receive().await {
            Some(JsonRpcMessage::Error(e)) => {
                assert_eq!(e.id, Some(RequestId::Number(3)));
                assert_eq!(e.error.code, TOO_LARGE);
                assert!(
                    e.error.message.contains("the peer sent a response of"),
                    "{e:?}"
                );
            }
            other => panic!("expected an error response, got {other:?}"),
        }
        assert!(problems.lock().expect("lock")[0].contains("failed the request"));
    }

    #[tokio::test]
    async fn a_response_that_never_ends_fails_its_request_at_once() {
        let (mut t, mut theirs, _) = transport::<RoleClient>(1000);
        let writer = tokio::spawn(async move {
            theirs
                .write_all(
                    br#"{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":""#,
                )
                .await
                .expect("write");
            // Then a never-ending text, and no newline.
            loop {
                if theirs.write_all(&[b'a'; 64 * 1024]).await.is_err() {
                    break;
                }
            }
        });
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), t.receive())
            .await
            .expect("an answer before the line ends");
        match got {
            Some(JsonRpcMessage::Error(e)) => {
                assert_eq!(e.id, Some(RequestId::Number(4)));
                assert!(e.error.message.contains("limit of 1000 bytes"), "{e:?}");
            }
            other => panic!("expected an error response, got {other:?}"),
        }
        writer.abort();
    }

    #[tokio::test]
    async fn an_echo_of_what_was_sent_is_dropped_and_told() {
        let (mut t, mut theirs, problems) = transport::<RoleClient>(1 << 20);
        let ping: TxJsonRpcMessage<RoleClient> =
            serde_json::from_str(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).expect("a ping");
        t.send(ping).await.expect("sent");
        // Copy back the very bytes that came.
        let mut line = Vec::new();
        let mut byte = [0u8];
        while theirs.read_exact(&mut byte).await.is_ok() {
            line.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        theirs.write_all(&line).await.expect("echo");
        theirs
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n")
            .await
            .expect("write");
        assert!(matches!(
            t.receive().await,
            Some(JsonRpcMessage::Response(_))
        ));
        let problems = problems.lock().expect("lock").clone();
        assert!(
            problems.len() == 1 && problems[0].contains("echoed back"),
            "{problems:?}"
        );
    }

    #[tokio::test]
    async fn a_flood_of_bad_requests_that_never_reads_its_replies_is_bounded() {
        // A pipe of 256 bytes that nobody reads: replies cannot be written.
        let (ours, mut theirs) = tokio::io::duplex(256);
        let (read, write) = tokio::io::split(ours);
        let problems: Problems = Arc::default();
        let p = problems.clone();
        let mut t = LineTransport::<RoleServer, _>::new(
            read,
            write,
            Limits {
                max_message: 1 << 20,
            },
            Peer {
                name: "the peer".into(),
                on_problem: Arc::new(move |m| p.lock().expect("lock").push(m)),
            },
        );
        let writer = tokio::spawn(async move {
            for i in 0..1000 {
                let bad =
                    format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"x\",\"params\":[[[\n");
                if theirs.write_all(bad.as_bytes()).await.is_err() {
                    break;
                }
            }
            theirs.write_all(PING.as_bytes()).await.expect("ping");
            theirs
        });
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), t.receive())
            .await
            .expect("the ping after the flood");
        assert!(matches!(next, Some(JsonRpcMessage::Request(_))));
        let pending = t.pending_replies.load(std::sync::atomic::Ordering::SeqCst);
        assert!(pending <= MAX_PENDING_REPLIES, "{pending} replies pending");
        let dropped = problems
            .lock()
            .expect("lock")
            .iter()
            .filter(|m| m.contains("unanswered"))
            .count();
        assert!(dropped >= 1000 - MAX_PENDING_REPLIES - 1, "{dropped}");
        drop(writer);
    }

    #[tokio::test]
    async fn junk_is_dropped_and_told() {
        let (mut t, mut theirs, problems) = transport::<RoleServer>(1000);
        theirs
            .write_all(b"hello, I am not JSON\n\n{\"no\":\n")
            .await
            .expect("write");
        theirs.write_all(PING.as_bytes()).await.expect("write");
        assert!(t.receive().await.is_some());
        let problems = problems.lock().expect("lock").clone();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("not JSON") && problems[0].contains("hello, I am"),
            "{problems:?}"
        );
    }

    #[tokio::test]
    async fn a_line_with_no_end_is_never_buffered() {
        let (mut t, mut theirs, _) = transport::<RoleServer>(1000);
        let writer = tokio::spawn(async move {
            for _ in 0..64 {
                theirs.write_all(&[b'x'; 64 * 1024]).await.expect("write");
            }
            theirs
        });
        // 4 MiB without a newline: the transport keeps nothing of it.
        let got = tokio::time::timeout(std::time::Duration::from_millis(500), t.receive()).await;
        assert!(got.is_err(), "no message yet");
        assert!(
            t.line.capacity() <= 1000 + READ_BUF,
            "{}",
            t.line.capacity()
        );
        drop(writer);
    }
}
