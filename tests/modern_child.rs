//! A 2026-07-28 child (the hostile fixture's `--modern`: it answers
//! `server/discover`, refuses `initialize` and any request without the
//! per-request protocol version, asks in input rounds and tells of changes
//! only on `subscriptions/listen` streams) through mcpod: discovered, spoken
//! to with per-request `_meta` on both paths (rmcp's and the pass-through),
//! its questions put to an `initialize` client (a 2026-07-28 client's input
//! rounds are in `surface.rs`), its state kept from the client, and its
//! changes and resource updates followed on its stream.
//! The real 2026-07-28 children (rmcp's hello, Python's mcp 2.x servers) are
//! in `sessions.rs`; this fixture can ask and be hostile, which they cannot.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::containers_of;
use common::hostile::HostileImages;
use common::rpc::{Server, initialize_with, text_of};
use serde_json::{Value, json};

const MODERN: [&str; 3] = ["/bin/hostile-server", "--modern", "--asks"];

/// A fresh mcpod with an `initialize` client that declared `capabilities`:
/// its root, the client, and the hostile images its test builds.
fn start(capabilities: Value) -> (tempfile::TempDir, Server, HostileImages) {
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize_with(&mut server, "2025-11-25", capabilities);
    (root, server, HostileImages::new())
}

/// Build the fixture run as `entrypoint` (request `id`) and launch it
/// (request `id + 1`) as a 2026-07-28 child: the session's id.
fn launch(
    server: &mut Server,
    images: &HostileImages,
    root: &Path,
    id: u64,
    entrypoint: &[&str],
) -> String {
    let image = images.with(server, id, root, json!(entrypoint));
    let launched = server.call(id + 1, "launch_session", json!({"image": image}));
    assert_ne!(launched["isError"], true, "{launched}");
    let info = &server.detail_of(id + 1, &launched);
    let hostile = &info["servers"]["hostile"];
    assert_eq!(hostile["status"], "ready", "{info}");
    assert_eq!(
        hostile["handshake"]["protocol_version"], "2026-07-28",
        "{info}"
    );
    info["session"].as_str().expect("session").to_string()
}

/// Call `tool` until `done` holds for its structured content (the child's
/// stream is opened and changed in the background), for at most 10 s.
fn until(server: &mut Server, id: &mut u64, tool: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        *id += 1;
        let got = server.call(*id, tool, json!({}));
        let seen = got["structuredContent"].clone();
        if done(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "never came to pass: {got}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The messages of the progress the client got under `token`.
fn progress<'a>(server: &'a Server, token: &str) -> Vec<&'a str> {
    server
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .filter(|n| n["params"]["progressToken"] == token)
        .filter_map(|n| n["params"]["message"].as_str())
        .collect()
}

/// An `initialize` client is asked the child's questions as requests, on
/// either path of a call, and in a prompt; the child's `requestState` never
/// reaches it; too many questions at once or rounds without end fail the call.
#[test]
fn an_initialize_client_is_asked_a_2026_childs_questions_as_requests() {
    let (root, mut server, images) = start(json!({"elicitation": {}}));
    let s = launch(&mut server, &images, root.path(), 1, &MODERN);
    let mut seen = Vec::new();

    // Both paths say who asks, as a 2026-07-28 request must (the fixture
    // refuses a request without it): the pass-through under mcpod's id,
    // rmcp's (one more `_meta` key) under its own.
    let whoami = format!("{s}_hostile__whoami");
    let fast = server.call(3, &whoami, json!({}));
    assert_eq!(
        fast["structuredContent"]["protocol_version"], "2026-07-28",
        "{fast}"
    );
    let id = fast["structuredContent"]["id"].as_str().unwrap_or_default();
    assert!(id.starts_with("mcpod-"), "{fast}");
    let slow = server.request(
        4,
        "tools/call",
        json!({"name": whoami, "arguments": {}, "_meta": {"x-test": 1}}),
    );
    let slow = &slow["result"]["structuredContent"];
    assert_eq!(slow["protocol_version"], "2026-07-28", "{slow}");
    assert!(slow["id"].is_number(), "{slow}");

    // A passed-through call's question: asked, answered, and the call goes on
    // in a second round, its progress under the client's one token.
    server.send(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": format!("{s}_hostile__progress_then_ask"), "arguments": {},
        "_meta": {"progressToken": "p"}}}),
    );
    let ask = server
        .wait_notification("elicitation/create", Duration::from_secs(30))
        .expect("the child's question");
    seen.push(ask.clone());
    assert!(
        ask["params"]["message"].to_string().contains("tools/call"),
        "{ask}"
    );
    server.reply(
        &ask,
        json!({"action": "accept", "content": {"name": "Ada"}}),
    );
    let done = server.response(5);
    seen.push(done.clone());
    assert!(text_of(&done["result"]).contains("Ada"), "{done}");
    assert_eq!(progress(&server, "p"), ["step 1 of 2", "step 2 of 2"]);

    // rmcp's path: a prompt's question.
    server.send(json!({"jsonrpc": "2.0", "id": 6, "method": "prompts/get",
        "params": {"name": format!("{s}_hostile__ask")}}));
    let ask = server
        .wait_notification("elicitation/create", Duration::from_secs(30))
        .expect("the prompt's question");
    seen.push(ask.clone());
    server.reply(
        &ask,
        json!({"action": "accept", "content": {"name": "Grace"}}),
    );
    let prompt = server.response(6);
    seen.push(prompt.clone());
    assert!(prompt["result"].to_string().contains("Grace"), "{prompt}");

    // Two questions in one round are both asked, and both answers go back.
    server.send(
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": format!("{s}_hostile__ask_many"), "arguments": {"count": 2}}}),
    );
    for _ in 0..2 {
        let ask = server
            .wait_notification("elicitation/create", Duration::from_secs(30))
            .expect("one of two questions");
        server.reply(&ask, json!({"action": "decline"}));
    }
    let both = server.response(7);
    assert!(text_of(&both["result"]).starts_with("answered 2"), "{both}");

    // Hostile: more questions at once than mcpod passes on, and rounds that
    // never end, fail that call alone, saying why.
    let many = server.call(8, &format!("{s}_hostile__ask_many"), json!({"count": 5}));
    assert_eq!(many["isError"], true, "{many}");
    assert!(text_of(&many).contains("5 questions at once"), "{many}");
    let forever = server.call(9, &format!("{s}_hostile__ask_forever"), json!({}));
    assert_eq!(forever["isError"], true, "{forever}");
    assert!(
        text_of(&forever).contains("asked for input 10 times"),
        "{forever}"
    );
    seen.push(many);
    seen.push(forever);
    let echo = server.call(
        10,
        &format!("{s}_hostile__echo"),
        json!({"text": "still here"}),
    );
    assert_eq!(text_of(&echo), "still here", "{echo}");

    // The child's state stays in mcpod.
    seen.extend(server.notifications.iter().cloned());
    let all = serde_json::to_string(&seen).expect("JSON");
    assert!(!all.contains("hostile-state"), "{all}");

    let stopped = server.call(11, "stop_session", json!({"session": s}));
    assert_ne!(stopped["isError"], true, "{stopped}");
    assert_eq!(containers_of(&s), Vec::<String>::new());
}

/// The child's list changes and the updates of the resources the client
/// subscribed to come on its `subscriptions/listen` stream, which follows
/// the client's subscriptions (a new stream, the old one closed), up to
/// mcpod's limit of resources per server.
#[test]
fn a_2026_childs_changes_and_updates_come_on_its_listen_stream() {
    let (root, mut server, images) = start(json!({}));
    let s = launch(&mut server, &images, root.path(), 1, &MODERN);
    let mut id = 10;
    let listens = format!("{s}_hostile__listens");
    let streams = |seen: &Value| seen["listens"].as_array().cloned().unwrap_or_default();

    // One stream for the lists, opened after the launch.
    let seen = until(&mut server, &mut id, &listens, |seen| {
        streams(seen).len() == 1
    });
    let stream = &streams(&seen)[0];
    assert_eq!(stream["toolsListChanged"], true, "{seen}");
    assert_eq!(stream["promptsListChanged"], true, "{seen}");
    assert!(stream.get("resourceSubscriptions").is_none(), "{seen}");

    let uri = format!("mcpod://sessions/{s}/servers/hostile/hostile://ask");
    let subscribed = server.request(100, "resources/subscribe", json!({"uri": uri}));
    assert!(subscribed["error"].is_null(), "{subscribed}");
    let seen = until(&mut server, &mut id, &listens, |seen| {
        let streams = streams(seen);
        streams.len() == 1 && streams[0]["resourceSubscriptions"] == json!(["hostile://ask"])
    });
    assert_eq!(streams(&seen)[0]["toolsListChanged"], true, "{seen}");

    let touched = server.call(
        101,
        &format!("{s}_hostile__touch"),
        json!({"uri": "hostile://ask"}),
    );
    assert_eq!(text_of(&touched), "touched 1", "{touched}");
    let updated = server
        .wait_notification("notifications/resources/updated", Duration::from_secs(10))
        .expect("the update");
    assert_eq!(updated["params"]["uri"], uri, "{updated}");

    // A list change on the stream makes mcpod read the lists again.
    let count = format!("{s}_hostile__tools_list_count");
    let before: u64 = text_of(&server.call(102, &count, json!({})))
        .parse()
        .expect("count");
    let flood = server.call(
        103,
        &format!("{s}_hostile__list_changed_flood"),
        json!({"count": 3}),
    );
    assert_eq!(text_of(&flood), "sent 3 to 1 streams", "{flood}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        id += 1;
        let now: u64 = text_of(&server.call(id, &count, json!({})))
            .parse()
            .expect("count");
        if now > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lists were not read again ({now})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Hostile: subscriptions beyond mcpod's limit per server are refused.
    let mut refused = None;
    for i in 0..300u64 {
        let many = format!("mcpod://sessions/{s}/servers/hostile/hostile://many/{i}");
        let got = server.request(1000 + i, "resources/subscribe", json!({"uri": many}));
        if !got["error"].is_null() {
            refused = Some((i, got));
            break;
        }
    }
    let (at, got) = refused.expect("a limit");
    // hostile://ask and 255 more.
    assert_eq!(at, 255, "{got}");
    assert!(
        got["error"]["message"].to_string().contains("limit"),
        "{got}"
    );

    for i in 0..255u64 {
        let many = format!("mcpod://sessions/{s}/servers/hostile/hostile://many/{i}");
        let got = server.request(2000 + i, "resources/unsubscribe", json!({"uri": many}));
        assert!(got["error"].is_null(), "{got}");
    }
    let gone = server.request(3000, "resources/unsubscribe", json!({"uri": uri}));
    assert!(gone["error"].is_null(), "{gone}");
    until(&mut server, &mut id, &listens, |seen| {
        let streams = streams(seen);
        streams.len() == 1 && streams[0].get("resourceSubscriptions").is_none()
    });

    let stopped = server.call(3001, "stop_session", json!({"session": s}));
    assert_ne!(stopped["isError"], true, "{stopped}");
}

/// Hostile: a child that refuses every `subscriptions/listen`, or ends each
/// stream as soon as it opened, is tried 5 times in a row (once a second)
/// and then left alone, saying why in its log, until the client's
/// subscriptions there change; its tools go on working throughout.
#[test]
fn a_2026_child_that_refuses_or_ends_its_streams_is_tried_5_times_then_left() {
    let (root, mut server, images) = start(json!({}));
    let mut id = 10;
    for (n, mode) in ["fails", "ends"].into_iter().enumerate() {
        let mut entrypoint = MODERN.to_vec();
        entrypoint.extend(["--listen", mode]);
        let s = launch(
            &mut server,
            &images,
            root.path(),
            1 + 2 * n as u64,
            &entrypoint,
        );
        let listens = format!("{s}_hostile__listens");
        let attempts = |seen: &Value| seen["attempts"].as_u64().unwrap_or_default();

        let seen = until(&mut server, &mut id, &listens, |seen| attempts(seen) >= 5);
        assert_eq!(attempts(&seen), 5, "{mode}: {seen}");
        // Left alone: a retry would come within a second.
        std::thread::sleep(Duration::from_secs(3));
        id += 1;
        let later = server.call(id, &listens, json!({}));
        assert_eq!(attempts(&later["structuredContent"]), 5, "{mode}: {later}");
        assert_eq!(later["structuredContent"]["listens"], json!([]), "{later}");
        id += 1;
        let logs = server.call(id, "session_logs", json!({"session": s}));
        let log = logs["structuredContent"]["servers"]["hostile"].to_string();
        assert!(
            log.contains("subscriptions/listen was refused or ended early 5 times in a row"),
            "{mode}: {log}"
        );

        // The client's subscriptions change: mcpod tries again.
        let uri = format!("mcpod://sessions/{s}/servers/hostile/hostile://ask");
        id += 1;
        let subscribed = server.request(id, "resources/subscribe", json!({"uri": uri}));
        assert!(subscribed["error"].is_null(), "{mode}: {subscribed}");
        until(&mut server, &mut id, &listens, |seen| attempts(seen) > 5);

        id += 1;
        let whoami = server.call(id, &format!("{s}_hostile__whoami"), json!({}));
        assert_eq!(
            whoami["structuredContent"]["protocol_version"], "2026-07-28",
            "{mode}: {whoami}"
        );
        id += 1;
        let stopped = server.call(id, "stop_session", json!({"session": s}));
        assert_ne!(stopped["isError"], true, "{mode}: {stopped}");
    }
}

/// A 2026-07-28 child's tool that runs only as a task (the tasks extension,
/// declared by mcpod on that call alone): polled to its result with its
/// status as progress, its question put to the client and the answer sent
/// back with `tasks/update`, and cancelled at the child (`tasks/cancel`)
/// when the client cancels the call. The client sees plain calls.
#[test]
fn a_2026_childs_task_only_tool_runs_as_its_task() {
    let (root, mut server, images) = start(json!({"elicitation": {}}));
    let entrypoint = ["/bin/hostile-server", "--modern", "--task-only"];
    let s = launch(&mut server, &images, root.path(), 1, &entrypoint);
    let echo = format!("{s}_hostile__echo");

    server.send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": echo, "arguments": {"text": "hi"}, "_meta": {"progressToken": "t"}}}),
    );
    let done = server.response(3);
    assert_eq!(text_of(&done["result"]), "hi", "{done}");
    assert_eq!(progress(&server, "t"), ["poll 1"], "{done}");

    server.send(
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": echo, "arguments": {"text": "ask"}}}),
    );
    let ask = server
        .wait_notification("elicitation/create", Duration::from_secs(30))
        .expect("the task's question");
    assert!(
        ask["params"]["message"]
            .to_string()
            .contains("say something"),
        "{ask}"
    );
    server.reply(
        &ask,
        json!({"action": "accept", "content": {"name": "Ada"}}),
    );
    let answered = server.response(4);
    let text = text_of(&answered["result"]);
    assert!(
        text.starts_with("answered:") && text.contains("Ada"),
        "{answered}"
    );

    // Hostile: a task that fails, or takes a status no one knows, fails the
    // call, saying why.
    let failed = server.call(6, &echo, json!({"text": "fail"}));
    assert_eq!(failed["isError"], true, "{failed}");
    assert!(text_of(&failed).contains("failed: it broke"), "{failed}");
    let strange = server.call(7, &echo, json!({"text": "strange"}));
    assert_eq!(strange["isError"], true, "{strange}");
    assert!(text_of(&strange).contains("`exploded`"), "{strange}");

    // The client cancels: so does mcpod, at the child.
    server.send(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": echo, "arguments": {"text": "stall"}}}),
    );
    let tasks = format!("{s}_hostile__tasks");
    let mut id = 10;
    until(&mut server, &mut id, &tasks, |seen| {
        seen["tasks"]["hostile-task-5"] == "open"
    });
    server.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 5}}),
    );
    until(&mut server, &mut id, &tasks, |seen| {
        seen["tasks"]["hostile-task-5"] == "cancelled"
    });
    // The same while the task's question waits for the client.
    server.send(
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {
        "name": echo, "arguments": {"text": "ask"}}}),
    );
    server
        .wait_notification("elicitation/create", Duration::from_secs(30))
        .expect("the task's question");
    server.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 8}}),
    );
    until(&mut server, &mut id, &tasks, |seen| {
        seen["tasks"]["hostile-task-6"] == "cancelled"
    });

    id += 1;
    let after = server.call(id, &echo, json!({"text": "after"}));
    assert_eq!(text_of(&after), "after", "{after}");
    id += 1;
    let stopped = server.call(id, "stop_session", json!({"session": s}));
    assert_ne!(stopped["isError"], true, "{stopped}");
}
