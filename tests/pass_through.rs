//! Proxied calls that pass through as bytes (`proxy/fast.rs`,
//! `server/fast.rs`): which calls take that path, seen from the child
//! (tests/fixtures/hostile's `whoami` returns the id and progress token it
//! got), and that the path keeps the proxy's guarantees: the deadline,
//! progress under the agent's token and cut to size, before the result.

mod common;

use common::hostile::{HostileImages, hostile_image, whoami};
use common::rpc::{Server, initialize, initialize_with, text_of};
use serde_json::{Value, json};

/// Launch `image`; the session id. (For a client that declared Tasks, a
/// launch that takes over a second is a task: it is polled to its result.)
fn launch(server: &mut Server, id: u64, image: &str) -> String {
    let mut launched = server.call(id, "launch_session", json!({"image": image}));
    if launched["resultType"] == "task" {
        let task = launched["taskId"].clone();
        for n in 0..300 {
            let got = server.request(id + 1000 + n, "tasks/get", json!({"taskId": task}));
            if got["result"]["status"] != "working" {
                launched = got["result"]["result"].clone();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    assert_ne!(launched["isError"], true, "{launched}");
    launched["structuredContent"]["session"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {launched}"))
        .to_string()
}

fn passed_through(seen: &Value) -> bool {
    seen["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("mcpod-"))
}

#[test]
fn an_initialize_clients_plain_calls_pass_through_and_the_rest_go_through_rmcp() {
    let image = hostile_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-06-18");
    let session = launch(&mut server, 1, &image);

    // A plain call, and one with a progress token: mcpod's id and token.
    let seen = whoami(&mut server, 2, &session, json!({}));
    assert!(passed_through(&seen), "{seen}");
    assert_eq!(seen["token"], Value::Null, "{seen}");
    let seen = whoami(
        &mut server,
        3,
        &session,
        json!({"progressToken": "agent-token"}),
    );
    assert!(passed_through(&seen), "{seen}");
    assert_eq!(seen["token"], seen["id"], "{seen}");

    // `_meta` that the fast path does not carry: rmcp's own numeric ids.
    let seen = whoami(&mut server, 4, &session, json!({"trace": "x"}));
    assert!(seen["id"].is_number(), "{seen}");

    // call_tool, the meta-tool, goes through rmcp too, to the same child.
    let via = server.call(
        5,
        "call_tool",
        json!({"session": session, "server": "hostile", "tool": "whoami"}),
    );
    assert!(text_of(&via).contains("\"id\":"), "{via}");
    assert!(!text_of(&via).contains("mcpod-"), "{via}");

    // A 2026-07-28 client: a plain call passes through, its result with
    // `resultType`; so does one that declares what a child could ask (a
    // question would park it, as `surface.rs` shows); one that declares
    // Tasks goes through rmcp.
    let modern = |caps: Value| {
        json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
               "io.modelcontextprotocol/clientCapabilities": caps,
               "io.modelcontextprotocol/clientInfo": {"name": "mcpod-test", "version": "0"}})
    };
    let mut plain = Server::start(root.path());
    let launched = plain.request(
        1,
        "tools/call",
        json!({"name": "launch_session", "arguments": {"image": image}, "_meta": modern(json!({}))}),
    );
    let other = launched["result"]["structuredContent"]["session"]
        .as_str()
        .unwrap_or_else(|| panic!("{launched}"))
        .to_string();
    for (id, caps) in [
        (2, json!({})),
        (3, json!({"elicitation": {}, "sampling": {}, "roots": {}})),
    ] {
        let response = plain.request(
            id,
            "tools/call",
            json!({"name": format!("{other}_hostile__whoami"), "arguments": {},
                   "_meta": modern(caps)}),
        );
        assert_eq!(response["result"]["resultType"], "complete", "{response}");
        assert!(
            passed_through(&response["result"]["structuredContent"]),
            "{response}"
        );
    }
    let response = plain.request(
        4,
        "tools/call",
        json!({"name": format!("{other}_hostile__whoami"), "arguments": {},
               "_meta": modern(json!({"extensions": {"io.modelcontextprotocol/tasks": {}}}))}),
    );
    assert!(
        response["result"]["structuredContent"]["id"].is_number(),
        "{response}"
    );

    // A client that declared Tasks: every call through rmcp.
    let mut tasks = Server::start(root.path());
    initialize_with(
        &mut tasks,
        "2025-11-25",
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}}),
    );
    let other = launch(&mut tasks, 1, &image);
    let seen = whoami(&mut tasks, 2, &other, json!({}));
    assert!(seen["id"].is_number(), "{seen}");
}

#[test]
fn a_passed_through_call_keeps_its_deadline_and_its_progress_in_order() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-06-18");
    let images = HostileImages::new();
    let image = images.serving(
        &mut server,
        1,
        root.path(),
        json!({"hostile": {"command": ["/bin/hostile-server"], "call_timeout_secs": 1}}),
    );
    let session = launch(&mut server, 2, &image);
    let seen = whoami(&mut server, 3, &session, json!({}));
    assert!(passed_through(&seen), "{seen}");

    // Past its deadline: the failure names it, and the session goes on.
    let slow = server.call(4, &format!("{session}_hostile__slow"), json!({"ms": 1500}));
    assert_eq!(slow["isError"], true, "{slow}");
    let text = text_of(&slow);
    assert!(
        text.contains("did not answer the call of `slow` within 1 s") && text.contains("Fix:"),
        "{text}"
    );
    // (The fixture sleeps on, deaf to the cancellation, for half a second.)
    std::thread::sleep(std::time::Duration::from_millis(800));
    let echoed = server.call(
        5,
        &format!("{session}_hostile__echo"),
        json!({"text": "on"}),
    );
    assert_eq!(text_of(&echoed), "on", "{echoed}");

    // Progress: under the agent's token, each message cut to 4096
    // characters, every one before the result.
    server.send(json!({
        "jsonrpc": "2.0", "id": 6, "method": "tools/call",
        "params": {"name": format!("{session}_hostile__notify_flood"),
                   "arguments": {"count": 3, "bytes": 5000},
                   "_meta": {"progressToken": 77}},
    }));
    let response = server.response(6);
    assert_ne!(response["result"]["isError"], true, "{response}");
    let progress: Vec<Value> = server
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .cloned()
        .collect();
    assert_eq!(
        progress.len(),
        3,
        "all three, before the result: {progress:?}"
    );
    for p in &progress {
        assert_eq!(p["params"]["progressToken"], 77, "{p}");
        let message = p["params"]["message"].as_str().unwrap_or_default();
        assert_eq!(message.chars().count(), 4096, "cut to 4096");
    }
}

/// Hostile calls of a proxied tool from an `initialize` client: what rmcp
/// refuses, the pass-through leaves to it (too deep, arguments that are no
/// object, a progress token that is no token), so the child never sees it
/// and goes on serving; an id in flight reused, and a cancellation of an id
/// mcpod never saw, change nothing.
#[test]
fn what_rmcp_refuses_the_pass_through_does_not_pass() {
    let image = hostile_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-06-18");
    let session = launch(&mut server, 1, &image);
    let echo = format!("{session}_hostile__echo");

    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"{echo}","arguments":{{"text":{}{}}}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    server.send_raw(&deep);
    let reply = server.response(2);
    let said = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(said.contains("deeper"), "{reply}");

    let listed = server.request(3, "tools/call", json!({"name": echo, "arguments": [1, 2]}));
    assert!(
        listed["error"].is_object() || listed["result"]["isError"] == true,
        "{listed}"
    );
    let token = server.request(
        4,
        "tools/call",
        json!({"name": format!("{session}_hostile__whoami"), "arguments": {},
               "_meta": {"progressToken": {"not": "a token"}}}),
    );
    // rmcp answers it: refused, or called under rmcp's own numeric id.
    assert!(
        token["error"].is_object() || token["result"]["structuredContent"]["id"].is_number(),
        "a token that is no token went through: {token}"
    );

    // Two calls under one id at once (JSON-RPC forbids it): the first
    // runs, the second is refused, saying why; each is answered.
    server.send(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                       "params": {"name": format!("{session}_hostile__slow"), "arguments": {"ms": 300}}}));
    server.send(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                       "params": {"name": echo, "arguments": {"text": "twice"}}}));
    server.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                       "params": {"requestId": "never-sent"}}),
    );
    let answers = [server.response(5), server.response(5)];
    let texts: Vec<String> = answers.iter().map(|a| text_of(&a["result"])).collect();
    let refused = answers.iter().any(|a| {
        a["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("request 5 is still unanswered"))
    });
    assert!(
        refused && texts.contains(&"slept".to_string()),
        "{answers:?}"
    );

    let echoed = server.call(6, &echo, json!({"text": "still here"}));
    assert_eq!(text_of(&echoed), "still here", "{echoed}");
}

/// A server that lists a tool as run only as a task, and then answers its
/// call with no task: the call fails saying so, briefly, and the session
/// serves on.
#[test]
fn a_server_that_says_a_tool_needs_a_task_and_makes_none_fails_that_call_alone() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-06-18");
    let images = HostileImages::new();
    let image = images.with(
        &mut server,
        1,
        root.path(),
        json!(["/bin/hostile-server", "--task-only"]),
    );
    let session = launch(&mut server, 2, &image);
    let echoed = server.call(
        3,
        &format!("{session}_hostile__echo"),
        json!({"text": "x".repeat(10_000)}),
    );
    assert_eq!(echoed["isError"], true, "{echoed}");
    let text = text_of(&echoed);
    assert!(
        text.contains("run only as a task") && text.contains("no task") && text.len() < 1000,
        "{text}"
    );
    let seen = whoami(&mut server, 4, &session, json!({}));
    assert!(passed_through(&seen), "{seen}");
}
