//! The transport's unit tests: limits, refusals, flow control.

use super::*;
use rmcp::{RoleClient, RoleServer};
use std::sync::Mutex;
use std::time::Duration;
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
            .write_all(br#"{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":""#)
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
            let bad = format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"x\",\"params\":[[[\n");
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

fn ping(id: usize) -> String {
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n")
}

fn request_id_of(message: Option<RxJsonRpcMessage<RoleServer>>) -> RequestId {
    match message {
        Some(JsonRpcMessage::Request(r)) => r.id,
        other => panic!("expected a request, got {other:?}"),
    }
}

/// The reply rmcp would send to request `id`.
fn pong(id: RequestId) -> TxJsonRpcMessage<RoleServer> {
    JsonRpcMessage::response(rmcp::model::ServerResult::empty(()), id)
}

#[tokio::test]
async fn a_peer_past_the_bound_is_paused_and_its_answers_and_cancellations_still_read() {
    let (mut t, mut theirs, problems) = transport::<RoleServer>(1 << 20);
    let extra = 10;
    let mut lines = String::new();
    for id in 0..flow::MAX_IN_FLIGHT + extra {
        lines.push_str(&ping(id));
    }
    // Past the pause: the answer to a request of mcpod's, and the
    // cancellation of a request mcpod has not read yet.
    lines.push_str("{\"jsonrpc\":\"2.0\",\"id\":\"mcpod-1\",\"result\":{}}\n");
    lines.push_str(&format!(
        "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{{\"requestId\":{}}}}}\n",
        flow::MAX_IN_FLIGHT + 1
    ));
    theirs.write_all(lines.as_bytes()).await.expect("write");
    let mut ids = Vec::new();
    for _ in 0..flow::MAX_IN_FLIGHT {
        ids.push(request_id_of(t.receive().await));
    }
    assert!(t.flow.paused());
    match t.receive().await {
        Some(JsonRpcMessage::Response(r)) => {
            assert_eq!(r.id, RequestId::String("mcpod-1".into()));
        }
        other => panic!("expected the answer, got {other:?}"),
    }
    let waiting = tokio::time::timeout(Duration::from_millis(300), t.receive()).await;
    assert!(waiting.is_err(), "no request while paused: {waiting:?}");
    assert_eq!(t.held.len(), extra - 1, "the cancelled one is dropped");
    assert!(
        problems.lock().expect("lock")[0].contains("cancelled request 257"),
        "{problems:?}"
    );
    // The replies of half of them are written: the held ones come, in order.
    for id in ids.drain(..flow::MAX_IN_FLIGHT / 2) {
        t.send(pong(id)).await.expect("send");
    }
    let mut next = Vec::new();
    for _ in 0..extra - 1 {
        next.push(request_id_of(t.receive().await));
    }
    let expected: Vec<RequestId> = (flow::MAX_IN_FLIGHT..flow::MAX_IN_FLIGHT + extra)
        .filter(|i| *i != flow::MAX_IN_FLIGHT + 1)
        .map(|i| RequestId::Number(i as i64))
        .collect();
    assert_eq!(next, expected);
    // A cancellation lets its request leave the flight: no reply comes.
    let before = t.flow.in_flight();
    theirs
        .write_all(
            b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":255}}\n",
        )
        .await
        .expect("write");
    assert!(matches!(
        t.receive().await,
        Some(JsonRpcMessage::Notification(_))
    ));
    assert_eq!(t.flow.in_flight(), before - 1);
}

#[tokio::test]
async fn a_request_that_reuses_an_id_in_flight_is_refused() {
    let (mut t, mut theirs, _) = transport::<RoleServer>(1 << 20);
    theirs
        .write_all(format!("{}{}{}", ping(1), ping(1), ping(2)).as_bytes())
        .await
        .expect("write");
    assert_eq!(request_id_of(t.receive().await), RequestId::Number(1));
    assert_eq!(request_id_of(t.receive().await), RequestId::Number(2));
    let err = reply(&mut theirs).await;
    assert_eq!(err["id"], 1, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("is still unanswered"),
        "{err}"
    );
    // Answered, the id may be used again.
    t.send(pong(RequestId::Number(1))).await.expect("send");
    assert_eq!(reply(&mut theirs).await["id"], 1);
    theirs.write_all(ping(1).as_bytes()).await.expect("write");
    assert_eq!(request_id_of(t.receive().await), RequestId::Number(1));
}

#[tokio::test]
async fn an_id_that_is_no_id_and_a_batch_get_a_reply_with_a_null_id() {
    let (mut t, mut theirs, _) = transport::<RoleServer>(1 << 20);
    for id in ["{\"a\":1}", "[1]", "true", "1.5", "null"] {
        theirs
            .write_all(
                format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n").as_bytes(),
            )
            .await
            .expect("write");
    }
    theirs
        .write_all(format!("[{}]\n", ping(1).trim()).as_bytes())
        .await
        .expect("write");
    theirs.write_all(PING.as_bytes()).await.expect("write");
    assert_eq!(request_id_of(t.receive().await), RequestId::Number(99));
    for _ in 0..5 {
        let err = reply(&mut theirs).await;
        assert!(err["id"].is_null() && err.get("id").is_some(), "{err}");
        assert_eq!(err["error"]["code"], -32600, "{err}");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("`id` is not a string"), "{err}");
    }
    let err = reply(&mut theirs).await;
    assert!(err["id"].is_null(), "{err}");
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("batch") && message.contains("Fix:"),
        "{err}"
    );
}

#[tokio::test]
async fn notifications_to_a_peer_that_never_reads_are_bounded_and_counted() {
    // A pipe of 256 bytes that nobody reads yet.
    let (ours, mut theirs) = tokio::io::duplex(256);
    let (read, write) = tokio::io::split(ours);
    let problems: Problems = Arc::default();
    let p = problems.clone();
    let mut t = LineTransport::<RoleServer, _>::new(
        read,
        write,
        Limits::default(),
        Peer {
            name: "the peer".into(),
            on_problem: Arc::new(move |m| p.lock().expect("lock").push(m)),
        },
    );
    let progress = || -> TxJsonRpcMessage<RoleServer> {
        serde_json::from_str(
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#,
        )
        .expect("a notification")
    };
    // As rmcp does: each send's future is spawned.
    let sends: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(t.send(progress())))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pending = sends.iter().filter(|s| !s.is_finished()).count();
    assert!(
        pending <= flow::MAX_WAITING_NOTIFICATIONS,
        "{pending} waiting"
    );
    let told = problems.lock().expect("lock").clone();
    let dropping = told.iter().filter(|m| m.contains("drops more")).count();
    assert!(dropping == 1 && told[0].contains("drops more"), "{told:?}");
    // It reads: the waiting ones are written, and the drop is counted.
    let drain = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = theirs.read_to_end(&mut sink).await;
    });
    for send in sends {
        send.await.expect("joined").expect("sent");
    }
    t.send(progress()).await.expect("sent");
    let told = problems.lock().expect("lock").clone();
    let dropped: usize = told
        .iter()
        .find_map(|m| m.split("dropped ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("a count in {told:?}"));
    assert!(
        dropped >= 1000 - flow::MAX_WAITING_NOTIFICATIONS - 8,
        "{told:?}"
    );
    drop(t);
    drain.abort();
}

#[tokio::test]
async fn a_request_with_an_id_over_256_bytes_is_refused_without_echoing_it() {
    let (mut t, mut theirs, _) = transport::<RoleServer>(1 << 20);
    let long = "i".repeat(MAX_ID_BYTES + 1);
    let request = serde_json::json!({"jsonrpc": "2.0", "id": long, "method": "ping"});
    theirs
        .write_all(format!("{request}\n{PING}").as_bytes())
        .await
        .expect("write");
    assert_eq!(
        request_id_of(t.receive().await),
        RequestId::Number(99),
        "the ping after it is served"
    );
    let err = reply(&mut theirs).await;
    assert!(err["id"].is_null(), "{err}");
    assert_eq!(err["error"]["code"], -32600, "{err}");
    let text = err["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("longer than mcpod's limit of 256"), "{text}");
    assert!(!text.contains(&long), "{text}");
    // 256 bytes is an id.
    let ok = serde_json::json!({"jsonrpc": "2.0", "id": "j".repeat(256), "method": "ping"});
    theirs
        .write_all(format!("{ok}\n").as_bytes())
        .await
        .expect("write");
    assert!(t.receive().await.is_some());
}

#[tokio::test]
async fn a_child_s_json_that_is_no_message_is_dropped_unanswered() {
    let (mut t, mut theirs, problems) = transport::<RoleClient>(1 << 20);
    theirs
        .write_all(
            b"{\"level\":30,\"msg\":\"started\"}\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n",
        )
        .await
        .expect("write");
    assert!(t.receive().await.is_some(), "the response after it");
    assert!(
        problems.lock().expect("lock")[0].contains("dropped it"),
        "{problems:?}"
    );
}
