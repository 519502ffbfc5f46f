//! Long calls as 2026-07-28 Tasks, over the wire: a client that declared
//! `io.modelcontextprotocol/tasks` (at `initialize`, or per request in
//! `_meta` without a handshake) gets a task for a call still running after a
//! second, polls it with `tasks/get` (progress shows as its status message),
//! and can cancel it with `tasks/cancel`; a quick call answers at once; a
//! client that did not declare the extension gets the plain result.

mod common;

use std::time::{Duration, Instant};

use common::rpc::{Server, initialize, initialize_with};
use common::{ImageCleanup, containers_named, images_named, unique};
use serde_json::{Value, json};

const TASKS: &str = "io.modelcontextprotocol/tasks";

fn declaring() -> Value {
    json!({"extensions": {TASKS: {}}})
}

/// A tools/call's result (the task handle, or the plain result).
fn call(server: &mut Server, id: u64, tool: &str, arguments: Value) -> Value {
    let response = server.request(
        id,
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    );
    assert!(response["error"].is_null(), "{response}");
    response["result"].clone()
}

/// Poll `tasks/get` (with `meta`, when not null) until the task is no longer
/// working; its last state, and every status message seen.
fn settle(
    server: &mut Server,
    id: u64,
    task: &str,
    within: Duration,
    meta: &Value,
) -> (Value, Vec<String>) {
    let deadline = Instant::now() + within;
    let mut messages = Vec::new();
    let mut params = json!({"taskId": task});
    if !meta.is_null() {
        params["_meta"] = meta.clone();
    }
    for n in 0.. {
        let got = server.request(id + n, "tasks/get", params.clone());
        let state = got["result"].clone();
        assert!(got["error"].is_null(), "{got}");
        if let Some(m) = state["statusMessage"].as_str()
            && messages.last().map(String::as_str) != Some(m)
        {
            messages.push(m.to_string());
        }
        if state["status"] != "working" {
            return (state, messages);
        }
        assert!(Instant::now() < deadline, "still working: {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
    unreachable!()
}

/// Launch the hello fixture; a launch that took over a second is a task,
/// polled to its result, for a client that declared the extension.
fn launch_hello(server: &mut Server, id: u64) -> String {
    launch(server, id, &common::hello_image(), "hello")
}

/// Launch `image`, whose server `name` must be ready, as [`launch_hello`].
fn launch(server: &mut Server, id: u64, image: &str, name: &str) -> String {
    let mut launched = call(server, id, "launch_session", json!({"image": image}));
    if launched["resultType"] == "task" {
        let task = launched["taskId"].as_str().expect("taskId").to_string();
        let (done, _) = settle(
            server,
            id * 1000,
            &task,
            Duration::from_secs(60),
            &Value::Null,
        );
        launched = done["result"].clone();
    }
    assert_eq!(
        launched["structuredContent"]["servers"][name]["status"], "ready",
        "{launched}"
    );
    launched["structuredContent"]["session"]
        .as_str()
        .expect("session")
        .to_string()
}

#[test]
fn a_long_proxied_call_becomes_a_task_that_is_polled_or_cancelled() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    let init = initialize_with(&mut server, "2025-11-25", declaring());
    assert!(
        init["result"]["capabilities"]["extensions"][TASKS].is_object(),
        "{init}"
    );
    let s = launch_hello(&mut server, 1);
    let slow = format!("{s}_hello__slow");

    // Quick: the plain result.
    let quick = call(&mut server, 2, &slow, json!({"steps": 1}));
    assert_eq!(quick["structuredContent"]["completed_steps"], 1, "{quick}");

    // Long: a task, polled to its result; its progress is the status message.
    let handle = call(&mut server, 3, &slow, json!({"steps": 25}));
    assert_eq!(handle["resultType"], "task", "{handle}");
    let task = handle["taskId"].as_str().expect("taskId").to_string();
    let (done, messages) = settle(
        &mut server,
        100,
        &task,
        Duration::from_secs(60),
        &Value::Null,
    );
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["result"]["structuredContent"]["completed_steps"], 25,
        "{done}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("step ")),
        "{messages:?}"
    );

    // Cancelled: the child hears it, the task says so, the session goes on.
    let handle = call(&mut server, 4, &slow, json!({"steps": 600}));
    let task = handle["taskId"].as_str().expect("taskId").to_string();
    let cancelled = server.request(5, "tasks/cancel", json!({"taskId": task}));
    assert!(cancelled["error"].is_null(), "{cancelled}");
    let (done, _) = settle(
        &mut server,
        200,
        &task,
        Duration::from_secs(30),
        &Value::Null,
    );
    assert_eq!(done["status"], "cancelled", "{done}");
    // The child says so on its stderr, a moment after it hears.
    let heard = (0..50).any(|n| {
        let logs = call(&mut server, 1000 + n, "session_logs", json!({"session": s}));
        let heard = logs.to_string().contains("slow cancelled at step");
        if !heard {
            std::thread::sleep(Duration::from_millis(100));
        }
        heard
    });
    assert!(heard, "the child was not told the call was cancelled");
    let unknown = server.request(7, "tasks/get", json!({"taskId": "no-such-task"}));
    assert!(unknown["error"].is_object(), "{unknown}");
    let again = call(&mut server, 8, &slow, json!({"steps": 1}));
    assert_eq!(again["structuredContent"]["completed_steps"], 1, "{again}");
    call(&mut server, 9, "stop_session", json!({"session": s}));
}

#[test]
fn without_the_extension_a_long_call_answers_as_before() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let s = launch_hello(&mut server, 1);
    let result = call(
        &mut server,
        2,
        &format!("{s}_hello__slow"),
        json!({"steps": 15}),
    );
    assert_eq!(
        result["structuredContent"]["completed_steps"], 15,
        "{result}"
    );
    assert!(result.get("taskId").is_none(), "{result}");
    let refused = server.request(3, "tasks/get", json!({"taskId": "x"}));
    assert!(refused["error"].is_object(), "{refused}");
    call(&mut server, 4, "stop_session", json!({"session": s}));
}

/// A build that takes seconds, as a task: polled to its tag with buildah's
/// output as the status; and one cancelled, which leaves no image and no
/// working container. A 2026-07-28 client with no handshake declares the
/// extension per request.
#[test]
fn a_slow_build_is_a_task_for_a_client_without_a_handshake() {
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": declaring(),
        "io.modelcontextprotocol/clientInfo": {"name": "mcpod-test", "version": "0"},
    });
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    // A build of `name` whose RUN step takes `seconds`, its context in the root.
    let build = |server: &mut Server, id: u64, name: &str, seconds: u32| {
        let dir = root.path().join(name);
        std::fs::create_dir(&dir).expect("context");
        std::fs::write(
            dir.join("Containerfile"),
            format!("FROM localhost/mcpod-debian:bookworm\nRUN echo building && sleep {seconds}\n"),
        )
        .expect("Containerfile");
        let response = server.request(
            id,
            "tools/call",
            json!({"name": "build_image", "_meta": meta,
                   "arguments": {"name": format!("localhost/{name}"), "context": name, "no_cache": true}}),
        );
        assert!(response["error"].is_null(), "{response}");
        response["result"].clone()
    };
    let name = unique("task-build");
    let _cleanup = ImageCleanup(name.clone());
    let handle = build(&mut server, 1, &name, 3);
    assert_eq!(handle["resultType"], "task", "{handle}");
    let task = handle["taskId"].as_str().expect("taskId").to_string();
    let (done, messages) = settle(&mut server, 100, &task, Duration::from_secs(120), &meta);
    assert!(
        messages.iter().any(|m| m != "running"),
        "buildah's output as the status: {messages:?}"
    );
    assert_eq!(done["status"], "completed", "{done}");
    let tag = done["result"]["structuredContent"]["tag"]
        .as_str()
        .unwrap_or_default();
    assert!(tag.starts_with(&format!("localhost/{name}:")), "{done}");

    let other = unique("task-cancel");
    let _cleanup2 = ImageCleanup(other.clone());
    let handle = build(&mut server, 2, &other, 60);
    let task2 = handle["taskId"].as_str().expect("taskId").to_string();
    let cancelled = server.request(3, "tasks/cancel", json!({"taskId": task2, "_meta": meta}));
    assert!(cancelled["error"].is_null(), "{cancelled}");
    let (done, _) = settle(&mut server, 300, &task2, Duration::from_secs(60), &meta);
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(
        images_named(&other).is_empty(),
        "{:?}",
        images_named(&other)
    );
    assert!(
        containers_named(&other).is_empty(),
        "{:?}",
        containers_named(&other)
    );
}

/// Finished results are kept within bounds: 40 calls of 4 MiB results,
/// each a task, leave mcpod holding at most 64 MiB of them (the oldest are
/// dropped, and a `tasks/get` of one says so and what to do), not 160 MiB
/// for 30 minutes.
#[test]
fn finished_task_results_are_capped_and_a_dropped_one_says_so() {
    const CALLS: u64 = 40;
    const BYTES: u64 = 4 << 20;
    const BOUND_MIB: u64 = 140;
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize_with(&mut server, "2025-11-25", declaring());
    let s = launch(&mut server, 1, &common::hostile::hostile_image(), "hostile");
    let rss_before = server.memory_mib("VmRSS:");
    // The child answers one call at a time: behind a slow one, every call
    // runs past the hand-off and becomes a task.
    let send_call = |server: &mut Server, id: u64, tool: &str, arguments: Value| {
        server.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                           "params": {"name": format!("{s}_hostile__{tool}"), "arguments": arguments}}));
    };
    send_call(&mut server, 10, "slow", json!({"ms": 2500}));
    let ids: Vec<u64> = (100..100 + CALLS).collect();
    for id in &ids {
        send_call(&mut server, *id, "big_reply", json!({"bytes": BYTES}));
    }
    let all: Vec<u64> = std::iter::once(10).chain(ids.iter().copied()).collect();
    let handles = server.responses(&all, Duration::from_secs(60));
    let tasks: Vec<String> = ids
        .iter()
        .map(|id| {
            let result = &handles[id]["result"];
            assert_eq!(result["resultType"], "task", "{result:.300}");
            result["taskId"].as_str().expect("taskId").to_string()
        })
        .collect();
    // The child answers in order: once the last is done, all are.
    let last = tasks.last().expect("tasks");
    let (done, _) = settle(
        &mut server,
        1000,
        last,
        Duration::from_secs(120),
        &Value::Null,
    );
    assert_eq!(done["status"], "completed", "{:.300}", done.to_string());
    let text = done["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(text.len() as u64, BYTES);
    // mcpod gives freed memory back every 2 s.
    std::thread::sleep(Duration::from_secs(3));
    let rss = server.memory_mib("VmRSS:");
    eprintln!(
        "mcpod's RSS: {rss_before} MiB before, {rss} MiB with {CALLS} results of {BYTES} bytes finished"
    );
    assert!(
        rss <= BOUND_MIB,
        "{rss} MiB with {CALLS} finished results of {BYTES} bytes (bound {BOUND_MIB} MiB)"
    );
    let first = server.request(5000, "tasks/get", json!({"taskId": tasks[0]}));
    let said = first["error"]["message"].as_str().unwrap_or_default();
    assert!(
        said.contains("no longer has its result")
            && said.contains("64 MiB")
            && said.contains("Fix:"),
        "{:.300}",
        first.to_string()
    );
    call(&mut server, 5001, "stop_session", json!({"session": s}));
}
