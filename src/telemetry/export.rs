//! The exporter: ended spans wait in a bounded queue (a full queue drops
//! the span and counts it; a request never waits), and one thread of its
//! own sends them in batches, every [`INTERVAL`] or at [`MAX_BATCH`], as an
//! OTLP `ExportTraceServiceRequest` in JSON (`POST /v1/traces`) over plain
//! HTTP/1.1. A failure is written to stderr once for each kind (the
//! collector refused the connection, answered an error status, ...), not
//! once a batch; its batch is dropped, not retried. At shutdown what is
//! left is sent, waiting at most as long as the caller says.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::Endpoint;
use super::context::to_hex;
use super::record::{Ended, Value};

/// Ended spans that may wait for the exporter; more are dropped and counted.
pub const QUEUE: usize = 2048;
/// Spans in one request to the collector.
pub const MAX_BATCH: usize = 512;
/// How often what waits is sent.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// How long connecting, writing and reading the answer may each take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of the collector's answer read (its status line is all mcpod needs).
const ANSWER_BYTES: usize = 4096;

enum Message {
    Span(Box<Ended>),
    /// Send what is left and stop; then say so.
    Flush(SyncSender<()>),
}

struct Exporter {
    queue: SyncSender<Message>,
    /// Spans dropped at a full queue.
    dropped: AtomicU64,
    url: String,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Whether the exporter runs.
pub fn running() -> bool {
    EXPORTER.get().is_some()
}

/// Start the exporter thread for `endpoint`, once a process.
pub fn start(endpoint: Endpoint, service: String) -> std::io::Result<()> {
    if running() {
        return Ok(());
    }
    let (queue, spans) = std::sync::mpsc::sync_channel(QUEUE);
    let url = endpoint.url.clone();
    let thread = std::thread::Builder::new()
        .name("mcpod-otlp".into())
        .spawn(move || Batcher::new(endpoint, service).run(spans))?;
    drop(thread);
    let _ = EXPORTER.set(Exporter {
        queue,
        dropped: AtomicU64::new(0),
        url,
    });
    Ok(())
}

/// Hand an ended span to the exporter; dropped (and counted) when the
/// queue is full or the exporter has stopped.
pub fn submit(span: Box<Ended>) {
    let Some(exporter) = EXPORTER.get() else {
        return;
    };
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
        exporter.queue.try_send(Message::Span(span))
    {
        exporter.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Spans dropped so far because the queue was full.
pub fn dropped() -> u64 {
    EXPORTER
        .get()
        .map_or(0, |e| e.dropped.load(Ordering::Relaxed))
}

/// Send what is left and stop the exporter, waiting at most `within`.
/// Whether it finished in time.
pub fn shutdown(within: Duration) -> bool {
    let Some(exporter) = EXPORTER.get() else {
        return true;
    };
    let deadline = Instant::now() + within;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let mut flush = Message::Flush(tx);
    // A full queue is being emptied: try again until the deadline.
    loop {
        match exporter.queue.try_send(flush) {
            Ok(()) => break,
            Err(TrySendError::Disconnected(_)) => return true,
            Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                flush = back;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TrySendError::Full(_)) => return false,
        }
    }
    let finished = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok();
    let dropped = dropped();
    if dropped > 0 {
        tracing::warn!(
            "{dropped} spans were dropped because the export queue ({QUEUE}) was full: the collector at {} did not keep up",
            exporter.url
        );
    }
    finished
}

/// Why a batch could not be sent: each kind is told once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Resolve,
    Connect,
    Io,
    Status,
    Full,
}

/// The exporter thread's state.
struct Batcher {
    endpoint: Endpoint,
    service: String,
    batch: Vec<Ended>,
    told: Vec<Kind>,
}

impl Batcher {
    fn new(endpoint: Endpoint, service: String) -> Batcher {
        Batcher {
            endpoint,
            service,
            batch: Vec::new(),
            told: Vec::new(),
        }
    }

    fn run(mut self, spans: Receiver<Message>) {
        let mut next = Instant::now() + INTERVAL;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            match spans.recv_timeout(wait) {
                Ok(Message::Span(span)) => self.batch.push(*span),
                Ok(Message::Flush(done)) => {
                    self.drain(&spans);
                    let _ = done.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.send();
                    return;
                }
            }
            if self.batch.len() >= MAX_BATCH || Instant::now() >= next {
                self.send();
                self.tell_dropped();
                next = Instant::now() + INTERVAL;
            }
        }
    }

    /// Send everything still queued.
    fn drain(&mut self, spans: &Receiver<Message>) {
        loop {
            match spans.try_recv() {
                Ok(Message::Span(span)) => {
                    self.batch.push(*span);
                    if self.batch.len() >= MAX_BATCH {
                        self.send();
                    }
                }
                Ok(Message::Flush(done)) => {
                    let _ = done.send(());
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        self.send();
    }

    fn send(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let spans = std::mem::take(&mut self.batch);
        let body = request_body(&self.service, &spans);
        if let Err((kind, why)) = post(&self.endpoint, &body) {
            self.tell(
                kind,
                &format!(
                    "could not send {} spans to the OpenTelemetry collector at {}: {why}; they are dropped (further failures of this kind are not logged)",
                    spans.len(),
                    self.endpoint.url
                ),
            );
        }
    }

    fn tell_dropped(&mut self) {
        if dropped() > 0 {
            self.tell(
                Kind::Full,
                &format!(
                    "spans are being dropped: the export queue ({QUEUE}) is full, the collector at {} does not keep up (the count is logged at exit)",
                    self.endpoint.url
                ),
            );
        }
    }

    fn tell(&mut self, kind: Kind, what: &str) {
        if !self.told.contains(&kind) {
            self.told.push(kind);
            tracing::warn!("{what}");
        }
    }
}

/// POST `body` to the endpoint; the kind of failure and why.
fn post(endpoint: &Endpoint, body: &[u8]) -> Result<(), (Kind, String)> {
    let addresses = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| {
            (
                Kind::Resolve,
                format!("could not resolve {}: {e}", endpoint.host),
            )
        })?;
    let mut last = format!("{} resolved to no address", endpoint.host);
    let mut stream = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, IO_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("could not connect to {address}: {e}"),
        }
    }
    let mut stream = stream.ok_or((Kind::Connect, last))?;
    let io = |e: std::io::Error| (Kind::Io, e.to_string());
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: mcpod/{}\r\n\r\n",
        endpoint.path,
        endpoint.authority,
        body.len(),
        env!("CARGO_PKG_VERSION"),
    );
    stream.write_all(head.as_bytes()).map_err(io)?;
    stream.write_all(body).map_err(io)?;
    let mut answer = Vec::with_capacity(256);
    (&mut stream)
        .take(ANSWER_BYTES as u64)
        .read_to_end(&mut answer)
        .map_err(io)?;
    let status = status_of(&answer).ok_or_else(|| {
        (
            Kind::Status,
            "the answer was not HTTP (is the endpoint an OTLP/HTTP receiver, port 4318?)".into(),
        )
    })?;
    if !(200..300).contains(&status) {
        return Err((
            Kind::Status,
            format!(
                "it answered HTTP {status} (is the path {} right?)",
                endpoint.path
            ),
        ));
    }
    Ok(())
}

/// The status code of an HTTP/1.x answer.
fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.trim().parse().ok()
}

/// The OTLP/JSON `ExportTraceServiceRequest` of `spans`: ids in hex, 64-bit
/// numbers as strings, enums as numbers.
pub fn request_body(service: &str, spans: &[Ended]) -> Vec<u8> {
    let spans: Vec<Json> = spans.iter().map(span_json).collect();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [
            attribute("service.name", &Value::Str(service.to_string())),
            attribute("service.version", &Value::Str(env!("CARGO_PKG_VERSION").into())),
        ]},
        "scopeSpans": [{
            "scope": {"name": "mcpod", "version": env!("CARGO_PKG_VERSION")},
            "spans": spans,
        }],
    }]});
    serde_json::to_vec(&body).unwrap_or_default()
}

fn span_json(span: &Ended) -> Json {
    let mut out = json!({
        "traceId": to_hex(&span.context.trace_id),
        "spanId": to_hex(&span.context.span_id),
        "name": span.name,
        "kind": span.kind as u8,
        "startTimeUnixNano": span.start_ns.to_string(),
        "endTimeUnixNano": span.end_ns.to_string(),
        "attributes": span.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
    });
    if let Some(parent) = &span.parent {
        out["parentSpanId"] = to_hex(parent).into();
    }
    if let Some(state) = &span.context.state {
        out["traceState"] = state.to_string().into();
    }
    if let Some(why) = &span.error {
        out["status"] = json!({"code": 2, "message": why});
    }
    out
}

fn attribute(key: &str, value: &Value) -> Json {
    let value = match value {
        Value::Str(s) => json!({"stringValue": s}),
        Value::Int(i) => json!({"intValue": i.to_string()}),
        Value::Bool(b) => json!({"boolValue": b}),
    };
    json!({"key": key, "value": value})
}

#[cfg(test)]
mod tests {
    use super::super::context::TraceContext;
    use super::super::record::Kind;
    use super::*;

    #[test]
    fn spans_are_written_as_otlp_json() {
        let parent = TraceContext::parse(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            Some("k=v"),
        )
        .expect("parses");
        let span = Ended {
            context: parent.child(),
            parent: Some(parent.span_id),
            name: "tools/call add".into(),
            kind: Kind::Server,
            start_ns: 1,
            end_ns: 2,
            attributes: vec![("a", Value::Int(3)), ("b", Value::Bool(true))],
            error: Some("why".into()),
        };
        let body: Json = serde_json::from_slice(&request_body("svc", &[span])).expect("JSON");
        let got = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(got["traceId"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(got["parentSpanId"], "b7ad6b7169203331");
        assert_eq!(got["spanId"].as_str().map(str::len), Some(16));
        assert_eq!(got["traceState"], "k=v");
        assert_eq!(got["kind"], 2);
        assert_eq!(got["startTimeUnixNano"], "1");
        assert_eq!(got["attributes"][0]["value"]["intValue"], "3");
        assert_eq!(got["attributes"][1]["value"]["boolValue"], true);
        assert_eq!(got["status"], json!({"code": 2, "message": "why"}));
        let resource = &body["resourceSpans"][0]["resource"]["attributes"][0];
        assert_eq!(resource["value"]["stringValue"], "svc");
    }

    #[test]
    fn the_status_line_is_read() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r\n\r\n"), Some(200));
        assert_eq!(status_of(b"HTTP/1.0 404 Not Found\r\n"), Some(404));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b""), None);
    }
}
