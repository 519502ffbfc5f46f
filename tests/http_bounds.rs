//! `mcpod serve --listen` against clients that misbehave on purpose: more
//! connections than allowed, a head that never ends, and a client that
//! sends requests and never reads the answers. Each is answered or cut off,
//! and the others are still served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http::{Serve, session_id, status};

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

/// The status line of the first answer on a new connection that sends `request`.
fn first_status(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.write_all(request.as_bytes());
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).unwrap_or(0);
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn connections_beyond_the_bound_are_answered_503_and_served_again_once_closed() {
    let serve = Serve::start_with(&["--max-connections", "4"]);
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", serve.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let over = first_status(serve.port, "");
    assert!(over.contains("503"), "the fifth connection: {over:?}");
    drop(idle);
    let token = serve.create("after");
    let request = format!(
        "POST /mcp HTTP/1.1\r\n{}authorization: Bearer {token}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n{INIT}",
        serve.host(),
        INIT.len()
    );
    // Closed connections give their places back (a hang guard, not a timing).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = first_status(serve.port, &request);
        if answer.contains("200") {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {answer:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(serve.stop().success());
}

#[test]
fn a_head_that_never_ends_is_cut_off() {
    let serve = Serve::start();
    let mut stream = TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(format!("POST /mcp HTTP/1.1\r\n{}", serve.host()).as_bytes())
        .unwrap();
    let mut rest = Vec::new();
    // mcpod closes the connection (after its 10 s head timeout); a read
    // timeout here would mean it kept it open.
    let read = stream.read_to_end(&mut rest);
    assert!(read.is_ok(), "the connection was not closed: {read:?}");
    assert!(serve.stop().success());
}

#[test]
fn a_client_that_never_reads_its_answers_does_not_stall_others_or_grow_mcpod() {
    let serve = Serve::start();
    let token = serve.create("slow");
    let auth = format!("{}authorization: Bearer {token}\r\n", serve.host());
    let answer = serve.raw(&auth, INIT);
    assert_eq!(status(&answer), "HTTP/1.1 200 OK", "{answer}");
    let id = session_id(&answer);
    let before = resident_kib(serve.child.id());
    // 5,000 tools/list requests in one stream, none of their answers read.
    let body = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;
    let one = format!(
        "POST /mcp HTTP/1.1\r\n{auth}mcp-session-id: {id}\r\nmcp-protocol-version: 2025-06-18\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut slow = TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
    slow.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..5000 {
            if slow.write_all(one.as_bytes()).is_err() {
                break;
            }
        }
        slow
    });
    std::thread::sleep(Duration::from_secs(2));
    // Another client is served meanwhile.
    let other = serve.create("other");
    let listed = serve.client(&other, "list", None);
    assert_eq!(listed["sessions"], serde_json::json!([]), "{listed}");
    let grown = resident_kib(serve.child.id()).saturating_sub(before);
    eprintln!("mcpod grew by {grown} KiB for 5,000 unread answers");
    assert!(
        grown < 64 * 1024,
        "mcpod grew by {grown} KiB for a client that does not read"
    );
    drop(writer.join());
    assert!(serve.stop().success());
}
