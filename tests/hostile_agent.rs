//! Hostile input, the client class, through the real mcpod binary: a client
//! that never reads what mcpod writes, and malformed JSON-RPC (ids that are
//! no ids, batches). Every case is answered or paced, never buffered
//! without a bound.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use common::rpc::{Server, initialize};
use serde_json::{Value, json};

/// mcpod's CPU time so far (user and system, in clock ticks).
fn cpu_ticks(server: &Server) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.child.id()))
        .expect("mcpod's /proc stat");
    // The fields after the command name, which is in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    field(11).unwrap_or(0) + field(12).unwrap_or(0)
}

#[test]
fn a_client_that_never_reads_costs_bounded_memory_and_a_slow_reader_loses_nothing() {
    // Each reply of mcpod's (a `ping`'s, a `tools/list`'s of about 66 KiB)
    // that waits to be written would cost a task and its bytes without flow
    // control: 40,000 requests would grow mcpod by more than 500 MiB.
    const REQUESTS: u64 = 40_000;
    const LIST_EVERY: u64 = 40;
    const BOUND_MIB: u64 = 200;
    let root = tempfile::tempdir().expect("tempdir");
    let (server, mut stdin, stdout) = Server::start_unread(root.path());
    let writer = std::thread::spawn(move || {
        let mut lines = String::new();
        lines.push_str(&format!(
            "{}\n{}\n",
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "never-reads", "version": "0"}}}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        ));
        for id in 1..=REQUESTS {
            let method = if id % LIST_EVERY == 0 {
                "tools/list"
            } else {
                "ping"
            };
            lines.push_str(&format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\"}}\n"
            ));
        }
        // Blocks once mcpod stops reading, until the test reads.
        stdin
            .write_all(lines.as_bytes())
            .expect("write the requests");
        stdin.flush().expect("flush");
        stdin
    });
    // Watch until mcpod is idle (it has read what it will) or over the bound.
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut last = (cpu_ticks(&server), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let peak = server.memory_mib("VmHWM:");
        if peak > BOUND_MIB || Instant::now() > give_up {
            break;
        }
        let ticks = cpu_ticks(&server);
        if ticks != last.0 {
            last = (ticks, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    let peak = server.memory_mib("VmHWM:");
    eprintln!("mcpod's peak RSS with {REQUESTS} requests unread: {peak} MiB");
    assert!(
        peak <= BOUND_MIB,
        "mcpod's peak RSS reached {peak} MiB with {REQUESTS} requests unread (bound {BOUND_MIB} MiB)"
    );
    assert!(
        !writer.is_finished(),
        "mcpod read all {REQUESTS} requests while their replies went unread"
    );
    // Now an honest, slow reader: every request is answered, once.
    let mut answered = BTreeSet::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line from mcpod");
        let reply: Value = serde_json::from_str(&line).expect("JSON-RPC on stdout");
        if let Some(id) = reply["id"].as_u64() {
            assert!(reply.get("result").is_some(), "{line:.300}");
            if id % LIST_EVERY == 0 && id > 0 {
                assert!(reply["result"]["tools"].is_array(), "{line:.300}");
            }
            assert!(answered.insert(id), "answered twice: {id}");
        }
        if answered.len() as u64 == REQUESTS + 1 {
            break;
        }
    }
    assert_eq!(
        answered.len() as u64,
        REQUESTS + 1,
        "every request answered"
    );
    let stdin = writer.join().expect("the writer");
    let peak = server.memory_mib("VmHWM:");
    assert!(peak <= BOUND_MIB, "{peak} MiB while read");
    drop(stdin);
}

#[test]
fn a_request_with_an_id_that_is_no_id_or_a_batch_is_answered_with_a_null_id() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    for id in [json!({"a": 1}), json!([1]), json!(true), json!(1.5)] {
        server.send(json!({"jsonrpc": "2.0", "id": id, "method": "ping"}));
        let reply = null_id_reply(&mut server);
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(reply["error"]["code"], -32600, "{reply}");
        assert!(
            message.contains("`id` is not a string or an integer") && message.contains("Fix:"),
            "{reply}"
        );
    }
    server.send_raw(
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
    );
    let reply = null_id_reply(&mut server);
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("batch") && message.contains("2025-06-18"),
        "{reply}"
    );
    // Still serving.
    let pong = server.request(9, "ping", json!({}));
    assert!(pong.get("result").is_some(), "{pong}");
}

/// The one error reply with a null id that comes for what was just sent
/// (told apart from the reply to a `ping` sent after it).
fn null_id_reply(server: &mut Server) -> Value {
    server.send_raw(r#"{"jsonrpc":"2.0","id":"after","method":"ping"}"#);
    let mut null_ids = Vec::new();
    let mut pong = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while (null_ids.is_empty() || !pong) && Instant::now() < deadline {
        let Some(reply) = server.next_message(Duration::from_secs(5)) else {
            continue;
        };
        match &reply["id"] {
            Value::Null => null_ids.push(reply),
            id if id == "after" => pong = true,
            _ => panic!("unexpected: {reply}"),
        }
    }
    assert!(pong, "the ping after it is answered");
    assert_eq!(null_ids.len(), 1, "one reply with a null id: {null_ids:?}");
    let reply = null_ids.remove(0);
    assert!(reply.get("id").is_some(), "{reply}");
    reply
}

#[test]
fn large_requests_in_flight_cost_bounded_memory() {
    // Each request in flight kept its whole message: 40 build_image calls
    // carrying 8 MiB of `_meta` each, all waiting on the first one's build
    // lock, were all read and held (a request was counted, not its bytes;
    // 256 in flight allowed 4 GiB).
    const REQUESTS: u64 = 40;
    const JUNK: usize = 8 * 1024 * 1024;
    // 110 MiB with the byte budget here, 206 MiB without it.
    const BOUND_MIB: u64 = 160;
    let root = tempfile::tempdir().expect("tempdir");
    common::write(
        root.path(),
        "slow/Containerfile",
        &format!(
            "FROM {}\nRUN [\"/bin/busybox\", \"sleep\", \"8\"]\n",
            mcpod::doctor::PROBE_IMAGE
        ),
    );
    let name = common::unique("held");
    let _cleanup = common::ImageCleanup(name.clone());
    let (server, mut stdin, stdout) = Server::start_unread(root.path());
    let junk = "x".repeat(JUNK);
    let writer = std::thread::spawn(move || {
        let start = format!(
            "{}\n{}\n",
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "large-requests", "version": "0"}}}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        );
        stdin.write_all(start.as_bytes()).expect("initialize");
        for id in 1..=REQUESTS {
            let line = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "build_image",
                    "arguments": {"name": format!("localhost/{name}"), "context": "slow"},
                    "_meta": {"junk": junk}}});
            // Blocks once mcpod stops reading, until the test reads.
            if stdin.write_all(format!("{line}\n").as_bytes()).is_err() {
                break;
            }
        }
        let _ = stdin.flush();
        stdin
    });
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut last = (cpu_ticks(&server), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if server.memory_mib("VmHWM:") > BOUND_MIB || Instant::now() > give_up {
            break;
        }
        let ticks = cpu_ticks(&server);
        if ticks != last.0 {
            last = (ticks, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    let peak = server.memory_mib("VmHWM:");
    eprintln!("mcpod's peak RSS with {REQUESTS} requests of 8 MiB waiting: {peak} MiB");
    assert!(
        peak <= BOUND_MIB,
        "mcpod's peak RSS reached {peak} MiB with {REQUESTS} requests of 8 MiB in flight (bound {BOUND_MIB} MiB)"
    );
    // A reader gets every reply, once.
    let mut answered = BTreeSet::new();
    for line in BufReader::new(stdout).lines() {
        let reply: Value = serde_json::from_str(&line.expect("a line")).expect("JSON-RPC");
        if let Some(id) = reply["id"].as_u64() {
            assert!(reply.get("result").is_some(), "{reply:.300}");
            assert_ne!(reply["result"]["isError"], true, "{reply:.300}");
            assert!(answered.insert(id), "answered twice: {id}");
        }
        if answered.len() as u64 == REQUESTS + 1 {
            break;
        }
    }
    assert_eq!(
        answered.len() as u64,
        REQUESTS + 1,
        "every request answered"
    );
    drop(writer.join().expect("the writer"));
}
