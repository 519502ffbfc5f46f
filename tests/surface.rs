//! Everything a child offers besides tools, through mcpod, against the npm
//! reference server-everything (examples/node-reference): prompts, resources
//! and templates under names that keep two sessions of one image apart,
//! completions, subscriptions, log messages, and the child's requests to the
//! client (elicitation, sampling, roots), each only when the client declared
//! the capability.

mod common;

use std::time::Duration;

use common::containers_of;
use common::rpc::{Server, initialize, initialize_with, text_of};
use serde_json::{Value, json};

fn launch(server: &mut Server, id: u64, image: &str) -> String {
    let launched = server.call(
        id,
        "launch_session",
        json!({"image": image, "servers": ["everything", "memory"]}),
    );
    assert_ne!(launched["isError"], true, "{launched}");
    let info = &launched["structuredContent"];
    assert_eq!(info["servers"]["everything"]["status"], "ready", "{info}");
    info["session"].as_str().expect("session").to_string()
}

fn result(response: &Value) -> &Value {
    assert!(response["error"].is_null(), "{response}");
    &response["result"]
}

fn strings<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .filter_map(|v| v[key].as_str())
        .collect()
}

const CAPABILITIES: &str = r#"{"elicitation": {}, "sampling": {}, "roots": {}}"#;

#[test]
fn prompts_resources_and_completions_of_two_sessions_stay_apart() {
    let image = common::node_reference_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    let init = initialize(&mut server, "2025-11-25");
    let caps = &init["result"]["capabilities"];
    for cap in ["prompts", "resources", "completions", "logging"] {
        assert!(caps[cap].is_object(), "{cap}: {caps}");
    }
    assert_eq!(caps["resources"]["subscribe"], true, "{caps}");
    let a = launch(&mut server, 1, &image);
    let b = launch(&mut server, 2, &image);

    // Prompts: namespaced like tools, one per session; memory offers none.
    let prompts = server.request(3, "prompts/list", json!({}));
    let names = strings(&result(&prompts)["prompts"], "name");
    for s in [&a, &b] {
        for p in ["simple-prompt", "args-prompt", "completable-prompt"] {
            assert!(
                names.contains(&format!("{s}_everything__{p}").as_str()),
                "{names:?}"
            );
        }
    }
    assert!(!names.iter().any(|n| n.contains("_memory__")), "{names:?}");
    let got = server.request(
        4,
        "prompts/get",
        json!({"name": format!("{a}_everything__args-prompt"), "arguments": {"city": "Lisbon"}}),
    );
    assert!(
        result(&got)["messages"].to_string().contains("Lisbon"),
        "{got}"
    );
    let unknown = server.request(5, "prompts/get", json!({"name": "s000000_x__y"}));
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown prompt"),
        "{unknown}"
    );

    // Resources and templates: the child's URI after a prefix naming the session.
    let listed = server.request(6, "resources/list", json!({}));
    let uris = strings(&result(&listed)["resources"], "uri");
    let doc = "demo://resource/static/document/architecture.md";
    let (doc_a, doc_b) = (
        format!("mcpod://sessions/{a}/servers/everything/{doc}"),
        format!("mcpod://sessions/{b}/servers/everything/{doc}"),
    );
    assert!(
        uris.contains(&doc_a.as_str()) && uris.contains(&doc_b.as_str()),
        "{uris:?}"
    );
    assert!(uris.contains(&format!("mcpod://sessions/{a}/logs/everything").as_str()));
    let read = server.request(7, "resources/read", json!({"uri": doc_a}));
    let contents = &result(&read)["contents"][0];
    assert_eq!(contents["uri"], doc_a, "{read}");
    assert!(
        contents["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Architecture"),
        "{read}"
    );
    let templates = server.request(8, "resources/templates/list", json!({}));
    let template = format!(
        "mcpod://sessions/{b}/servers/everything/demo://resource/dynamic/text/{{resourceId}}"
    );
    assert!(
        strings(&result(&templates)["resourceTemplates"], "uriTemplate")
            .contains(&template.as_str()),
        "{templates}"
    );
    let expanded = template.replace("{resourceId}", "3");
    let read = server.request(9, "resources/read", json!({"uri": expanded}));
    assert_eq!(result(&read)["contents"][0]["uri"], expanded, "{read}");
    // The child's own URI is on both sessions: mcpod names the two to choose from.
    let ambiguous = server.request(10, "resources/read", json!({"uri": doc}));
    let message = ambiguous["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&doc_a) && message.contains(&doc_b),
        "{ambiguous}"
    );

    // Completions, routed by the prompt's exported name, context kept.
    let complete = server.request(
        11,
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": format!("{b}_everything__completable-prompt")},
               "argument": {"name": "name", "value": "A"},
               "context": {"arguments": {"department": "Engineering"}}}),
    );
    assert_eq!(
        result(&complete)["completion"]["values"],
        json!(["Alice"]),
        "{complete}"
    );

    // Stopping one session takes its prompts and resources away, not the other's.
    let stopped = server.call(12, "stop_session", json!({"session": a}));
    assert_ne!(stopped["isError"], true, "{stopped}");
    let prompts = server.request(13, "prompts/list", json!({}));
    let names = strings(&result(&prompts)["prompts"], "name");
    assert!(names.iter().all(|n| !n.starts_with(&a)) && names.iter().any(|n| n.starts_with(&b)));
    let gone = server.request(14, "resources/read", json!({"uri": doc_a}));
    assert!(gone["error"].is_object(), "{gone}");
    // With one session left, its server takes the child's own URI.
    let read = server.request(15, "resources/read", json!({"uri": doc}));
    assert_eq!(result(&read)["contents"][0]["uri"], doc_b, "{read}");
    server.call(16, "stop_session", json!({"session": b}));
    assert!(containers_of(&b).is_empty());
}

#[test]
fn subscriptions_logs_and_the_childs_requests_reach_a_client_that_declared_them() {
    let image = common::node_reference_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    let caps: Value = serde_json::from_str(CAPABILITIES).expect("json");
    initialize_with(&mut server, "2025-11-25", caps);
    let s = launch(&mut server, 1, &image);
    let within = Duration::from_secs(20);

    // Roots: server-everything asks for them after its handshake.
    let roots = server
        .wait_notification("roots/list", within)
        .expect("roots/list");
    server.reply(
        &roots,
        json!({"roots": [{"uri": "file:///work/project", "name": "project"}]}),
    );
    std::thread::sleep(Duration::from_millis(300));
    let listed = server.call(2, &format!("{s}_everything__get-roots-list"), json!({}));
    assert!(
        listed.to_string().contains("file:///work/project"),
        "{listed}"
    );

    // Elicitation: the child's request reaches the client, the answer goes back.
    server.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": format!("{s}_everything__trigger-elicitation-request"), "arguments": {}}}));
    let ask = server
        .wait_notification("elicitation/create", within)
        .expect("elicitation");
    assert!(
        ask["params"]["requestedSchema"]["properties"]["name"].is_object(),
        "{ask}"
    );
    server.reply(
        &ask,
        json!({"action": "accept", "content": {"name": "Ada Lovelace"}}),
    );
    let answered = server.response(3);
    assert!(answered.to_string().contains("Ada Lovelace"), "{answered}");

    // Sampling, the same way.
    server.send(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": format!("{s}_everything__trigger-sampling-request"),
                   "arguments": {"prompt": "say hi", "maxTokens": 20}}}));
    let ask = server
        .wait_notification("sampling/createMessage", within)
        .expect("sampling");
    server.reply(
        &ask,
        json!({"role": "assistant", "content": {"type": "text", "text": "hi from the model"},
               "model": "test-model", "stopReason": "endTurn"}),
    );
    let answered = server.response(4);
    assert!(
        answered.to_string().contains("hi from the model"),
        "{answered}"
    );

    // Log messages, under a logger naming session and server, at the level set.
    let set = server.request(5, "logging/setLevel", json!({"level": "debug"}));
    result(&set);
    server.call(
        6,
        &format!("{s}_everything__toggle-simulated-logging"),
        json!({}),
    );
    let log = server
        .wait_notification("notifications/message", within)
        .expect("a log message");
    assert!(
        log["params"]["logger"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("{s}/everything")),
        "{log}"
    );
    server.call(
        7,
        &format!("{s}_everything__toggle-simulated-logging"),
        json!({}),
    );

    // A resource subscription: updates come back under the exported URI.
    let uri = format!("mcpod://sessions/{s}/servers/everything/demo://resource/dynamic/text/1");
    let subscribed = server.request(8, "resources/subscribe", json!({"uri": uri}));
    result(&subscribed);
    server.call(
        9,
        &format!("{s}_everything__toggle-subscriber-updates"),
        json!({}),
    );
    let updated = server
        .wait_notification("notifications/resources/updated", within)
        .expect("an update");
    assert_eq!(updated["params"]["uri"], uri, "{updated}");
    let unsubscribed = server.request(10, "resources/unsubscribe", json!({"uri": uri}));
    result(&unsubscribed);
    // Another server of the session: memory's graph, updated by a tool call.
    let graph = format!("mcpod://sessions/{s}/servers/memory/memory://knowledge-graph");
    result(&server.request(11, "resources/subscribe", json!({"uri": graph})));
    server.call(
        12,
        &format!("{s}_memory__create_entities"),
        json!({"entities": [{"name": "mcpod", "entityType": "project", "observations": []}]}),
    );
    let deadline = std::time::Instant::now() + within;
    loop {
        let updated = server
            .wait_notification("notifications/resources/updated", within)
            .expect("the graph's update");
        if updated["params"]["uri"] == graph {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no update of {graph}");
    }
    // A server the session does not have is named.
    let nowhere = format!("mcpod://sessions/{s}/servers/nosuch/x://y");
    let refused = server.request(13, "resources/subscribe", json!({"uri": nowhere}));
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("has no server `nosuch`"),
        "{refused}"
    );
    server.call(14, "stop_session", json!({"session": s}));
}

/// An `initialize` client that declared none of elicitation, sampling and
/// roots: children that start after it are not offered them (server-everything
/// then registers none of its tools that ask), and nothing asks the client.
/// A child that asks anyway is refused (the hostile fixture's flood, below).
#[test]
fn a_client_that_declared_nothing_is_never_asked() {
    let image = common::node_reference_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let s = launch(&mut server, 1, &image);
    let names = server.tool_names(2);
    for asking in [
        "trigger-elicitation-request",
        "trigger-sampling-request",
        "get-roots-list",
    ] {
        assert!(
            !names.contains(&format!("{s}_everything__{asking}")),
            "{asking} is offered: {names:?}"
        );
    }
    assert!(
        server
            .wait_notification("roots/list", Duration::from_millis(800))
            .is_none(),
        "the client was asked for roots"
    );
    let hostile = common::hostile::hostile_image();
    let launched = server.call(3, "launch_session", json!({"image": hostile}));
    let h = launched["structuredContent"]["session"]
        .as_str()
        .expect("session")
        .to_string();
    let asked = server.call(4, &format!("{h}_hostile__ask_flood"), json!({"count": 3}));
    assert_eq!(text_of(&asked), "asked 3", "{asked}");
    assert!(
        server
            .wait_notification("elicitation/create", Duration::from_millis(800))
            .is_none(),
        "the client was asked"
    );
    // The sessions go on.
    let echo = server.call(
        5,
        &format!("{s}_everything__echo"),
        json!({"message": "still here"}),
    );
    assert!(text_of(&echo).contains("still here"), "{echo}");
    server.call(6, "stop_session", json!({"session": s}));
    server.call(7, "stop_session", json!({"session": h}));
}

/// A 2026-07-28 client (no handshake, capabilities per request) takes no
/// server-to-client requests: a child's question comes back as an input
/// request of the call it belongs to, and the retry with the answer and the
/// `requestState` finishes that same call, called by its exported name or
/// through `call_tool`. Within a task, the question is the task's
/// `input_required` state, answered with `tasks/update`.
#[test]
fn a_2026_client_answers_a_childs_question_within_its_call_or_task() {
    let image = common::node_reference_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    let meta = |caps: Value| {
        json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
               "io.modelcontextprotocol/clientCapabilities": caps,
               "io.modelcontextprotocol/clientInfo": {"name": "mcpod-test", "version": "0"}})
    };
    let call = |server: &mut Server, id: u64, params: Value| {
        let response = server.request(id, "tools/call", params);
        assert!(response["error"].is_null(), "{response}");
        response["result"].clone()
    };
    let launched = call(
        &mut server,
        1,
        json!({"name": "launch_session", "_meta": meta(json!({})),
               "arguments": {"image": image, "servers": ["everything"]}}),
    );
    let s = launched["structuredContent"]["session"]
        .as_str()
        .expect("session")
        .to_string();
    let tool = format!("{s}_everything__trigger-elicitation-request");
    let asking = meta(json!({"elicitation": {}}));

    // Within the call: input_required, then the retry.
    let first = call(
        &mut server,
        2,
        json!({"name": tool, "arguments": {}, "_meta": asking}),
    );
    assert_eq!(first["resultType"], "input_required", "{first}");
    let requests = first["inputRequests"].as_object().expect("inputRequests");
    let (key, request) = requests.iter().next().expect("one request");
    assert_eq!(request["method"], "elicitation/create", "{first}");
    let state = first["requestState"]
        .as_str()
        .expect("requestState")
        .to_string();
    let answer = json!({"action": "accept", "content": {"name": "Ada Lovelace"}});
    let done = call(
        &mut server,
        3,
        json!({"name": tool, "arguments": {}, "_meta": asking,
               "inputResponses": {key.clone(): answer}, "requestState": state}),
    );
    assert!(done.to_string().contains("Ada Lovelace"), "{done}");
    // A state used once, or made up, is refused.
    let again = server.request(
        4,
        "tools/call",
        json!({"name": tool, "arguments": {}, "_meta": asking,
               "inputResponses": {key.clone(): answer}, "requestState": state}),
    );
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("requestState"),
        "{again}"
    );
    let made_up = server.request(
        41,
        "tools/call",
        json!({"name": tool, "arguments": {}, "_meta": asking,
               "inputResponses": {key.clone(): answer}, "requestState": "0".repeat(32)}),
    );
    assert!(made_up["error"].is_object(), "{made_up}");
    // An answer that is no answer reaches the child as an error, and the call ends.
    let first = call(
        &mut server,
        42,
        json!({"name": tool, "arguments": {}, "_meta": asking}),
    );
    let state = first["requestState"]
        .as_str()
        .expect("requestState")
        .to_string();
    let key2 = first["inputRequests"]
        .as_object()
        .and_then(|r| r.keys().next().cloned())
        .expect("key");
    let garbage = call(
        &mut server,
        43,
        json!({"name": tool, "arguments": {}, "_meta": asking,
               "inputResponses": {key2: {"not": "an ElicitResult"}}, "requestState": state}),
    );
    assert!(
        garbage.to_string().contains("not its result") || garbage["isError"] == true,
        "{garbage}"
    );
    // Through the call_tool meta-tool: the same rounds.
    let named = json!({"session": s, "server": "everything",
                       "tool": "trigger-elicitation-request", "arguments": {}});
    let first = call(
        &mut server,
        44,
        json!({"name": "call_tool", "arguments": named, "_meta": asking}),
    );
    assert_eq!(first["resultType"], "input_required", "{first}");
    let state = first["requestState"].as_str().expect("requestState");
    let key3 = first["inputRequests"]
        .as_object()
        .and_then(|r| r.keys().next().cloned())
        .expect("key");
    let done = call(
        &mut server,
        45,
        json!({"name": "call_tool", "arguments": named, "_meta": asking,
               "inputResponses": {key3: answer}, "requestState": state}),
    );
    assert!(done.to_string().contains("Ada Lovelace"), "{done}");
    // Without the capability in the request, the child hears why.
    let undeclared = call(
        &mut server,
        5,
        json!({"name": tool, "arguments": {}, "_meta": meta(json!({}))}),
    );
    assert!(
        undeclared["isError"] == true && undeclared.to_string().contains("did not declare"),
        "{undeclared}"
    );

    // Within a task: the question is the task's input_required state.
    let tasking =
        meta(json!({"elicitation": {}, "extensions": {"io.modelcontextprotocol/tasks": {}}}));
    let handle = call(
        &mut server,
        6,
        json!({"name": tool, "arguments": {}, "_meta": tasking}),
    );
    assert_eq!(handle["resultType"], "task", "{handle}");
    let task = handle["taskId"].as_str().expect("taskId").to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut id = 100;
    let key = loop {
        let got = server.request(id, "tasks/get", json!({"taskId": task, "_meta": tasking}));
        id += 1;
        if got["result"]["status"] == "input_required" {
            let requests = got["result"]["inputRequests"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            break requests.keys().next().cloned().expect("a key");
        }
        assert!(std::time::Instant::now() < deadline, "{got}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let updated = server.request(
        7,
        "tasks/update",
        json!({"taskId": task, "inputResponses": {key: answer}, "_meta": tasking}),
    );
    assert!(updated["error"].is_null(), "{updated}");
    let done = loop {
        let got = server.request(id, "tasks/get", json!({"taskId": task, "_meta": tasking}));
        id += 1;
        if got["result"]["status"] == "completed" {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "{got}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(done.to_string().contains("Ada Lovelace"), "{done}");
    call(
        &mut server,
        8,
        json!({"name": "stop_session", "_meta": meta(json!({})), "arguments": {"session": s}}),
    );
}

/// A child's question during `prompts/get` or `resources/read` reaches a
/// 2026-07-28 client as an input round of that request (the hostile
/// fixture's `--asks` prompt and resource ask before they answer), and a
/// `requestState` of one kind of request is no answer to another.
#[test]
fn a_2026_client_answers_a_childs_question_within_a_prompt_or_a_read() {
    let root = tempfile::tempdir().expect("tempdir");
    // The image is built by an initialize client (builds need no rounds).
    let mut builder = Server::start(root.path());
    initialize(&mut builder, "2025-06-18");
    let images = common::hostile::HostileImages::new();
    let image = images.with(
        &mut builder,
        1,
        root.path(),
        json!(["/bin/hostile-server", "--asks"]),
    );
    let mut server = Server::start(root.path());
    let meta = |caps: Value| {
        json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
               "io.modelcontextprotocol/clientCapabilities": caps,
               "io.modelcontextprotocol/clientInfo": {"name": "mcpod-test", "version": "0"}})
    };
    let asking = meta(json!({"elicitation": {}}));
    let launched = server.request(
        1,
        "tools/call",
        json!({"name": "launch_session", "_meta": meta(json!({})), "arguments": {"image": image}}),
    );
    let s = result(&launched)["structuredContent"]["session"]
        .as_str()
        .unwrap_or_else(|| panic!("{launched}"))
        .to_string();
    let answer = json!({"action": "accept", "content": {"name": "Ada Lovelace"}});
    let round = |first: &Value| {
        let first = result(first);
        assert_eq!(first["resultType"], "input_required", "{first}");
        let (key, request) = first["inputRequests"]
            .as_object()
            .and_then(|r| r.iter().next())
            .expect("one request");
        assert_eq!(request["method"], "elicitation/create", "{first}");
        let state = first["requestState"].as_str().expect("requestState");
        (key.clone(), state.to_string())
    };

    let prompt = json!({"name": format!("{s}_hostile__ask"), "_meta": asking});
    let (key, state) = round(&server.request(2, "prompts/get", prompt.clone()));
    // That state is no answer to a read; the prompt's retry still works.
    let uri = format!("mcpod://sessions/{s}/servers/hostile/hostile://ask");
    let wrong = server.request(
        3,
        "resources/read",
        json!({"uri": uri, "_meta": asking, "requestState": state,
               "inputResponses": {key.clone(): answer}}),
    );
    let said = wrong["error"]["message"].as_str().unwrap_or_default();
    assert!(said.contains("belongs to a prompts/get request"), "{wrong}");
    let mut retry = prompt;
    retry["requestState"] = json!(state);
    retry["inputResponses"] = json!({key: answer});
    let got = server.request(4, "prompts/get", retry);
    let text = &result(&got)["messages"][0]["content"]["text"];
    assert!(text.to_string().contains("Ada Lovelace"), "{got}");

    let read = json!({"uri": uri, "_meta": asking});
    let (key, state) = round(&server.request(5, "resources/read", read.clone()));
    let mut retry = read;
    retry["requestState"] = json!(state);
    retry["inputResponses"] = json!({key: answer});
    let got = server.request(6, "resources/read", retry);
    let contents = &result(&got)["contents"][0];
    assert!(
        contents["text"].to_string().contains("Ada Lovelace"),
        "{got}"
    );
    assert_eq!(contents["uri"], uri, "{got}");

    let stopped = server.request(
        7,
        "tools/call",
        json!({"name": "stop_session", "_meta": meta(json!({})), "arguments": {"session": s}}),
    );
    result(&stopped);
    assert_eq!(containers_of(&s), Vec::<String>::new());
}

/// A call's progress goes on under the retry's token once the 2026-07-28
/// client has answered the child's question (the hostile fixture's
/// `progress_then_ask`: progress 1, the question, progress 2, the result),
/// each notification before the response it precedes. Both for an older
/// child, which asks with a request mid-call, and a 2026-07-28 one
/// (`--modern`), which asks in an input round of its own: its
/// `requestState` stays in mcpod. And both for a call that passed through
/// as bytes (parked at the question) and one through rmcp (one more
/// `_meta` key, which the pass-through does not carry).
#[test]
fn progress_after_an_input_round_goes_under_the_retrys_token() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut builder = Server::start(root.path());
    initialize(&mut builder, "2025-11-25");
    let images = common::hostile::HostileImages::new();
    let modern = images.with(
        &mut builder,
        1,
        root.path(),
        json!(["/bin/hostile-server", "--modern"]),
    );
    for image in [common::hostile::hostile_image(), modern] {
        for rmcp in [false, true] {
            progress_after_an_input_round(root.path(), &image, rmcp);
        }
    }
}

fn progress_after_an_input_round(root: &std::path::Path, image: &str, rmcp: bool) {
    let mut server = Server::start(root);
    let meta = |token: &str| {
        let mut meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
               "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
               "io.modelcontextprotocol/clientInfo": {"name": "mcpod-test", "version": "0"},
               "progressToken": token});
        if rmcp {
            meta["x-mcpod-test"] = json!("the rmcp path");
        }
        meta
    };
    let launched = server.request(
        1,
        "tools/call",
        json!({"name": "launch_session", "_meta": meta("launch"), "arguments": {"image": image}}),
    );
    let s = result(&launched)["structuredContent"]["session"]
        .as_str()
        .unwrap_or_else(|| panic!("{launched}"))
        .to_string();
    let tool = format!("{s}_hostile__progress_then_ask");
    let progress_of = |server: &mut Server, token: &str| -> Vec<String> {
        server
            .notifications
            .drain(..)
            .filter(|n| n["method"] == "notifications/progress")
            .filter(|n| n["params"]["progressToken"] == token)
            .map(|n| n["params"]["message"].as_str().unwrap_or("").to_string())
            .collect()
    };
    server.notifications.clear();

    let first = server.request(
        2,
        "tools/call",
        json!({"name": tool, "arguments": {}, "_meta": meta("first")}),
    );
    let first = result(&first);
    assert_eq!(first["resultType"], "input_required", "{first}");
    assert!(!first.to_string().contains("hostile-state"), "{first}");
    let (key, _) = first["inputRequests"]
        .as_object()
        .and_then(|r| r.iter().next())
        .expect("one request");
    let state = first["requestState"].as_str().expect("requestState");
    assert_eq!(progress_of(&mut server, "first"), ["step 1 of 2"]);

    let done = server.request(
        3,
        "tools/call",
        json!({"name": tool, "arguments": {}, "_meta": meta("second"),
               "requestState": state,
               "inputResponses": {key.clone(): {"action": "accept", "content": {"name": "Ada"}}}}),
    );
    assert!(text_of(result(&done)).contains("Ada"), "{done}");
    let notified: Vec<Value> = server.notifications.clone();
    assert_eq!(
        progress_of(&mut server, "second"),
        ["step 2 of 2"],
        "{notified:?}"
    );
    assert!(
        !notified
            .iter()
            .any(|n| n["params"]["progressToken"] == "first"),
        "{notified:?}"
    );
}

/// A tool its child runs only as a task (server-everything's
/// `simulate-research-query`, `taskSupport: "required"`, the TypeScript SDK's
/// 2025-11-25 tasks) is called as one: its status messages reach the client
/// as progress, the question it asks during the task reaches the client as
/// an elicitation, and the answer shapes the result.
#[test]
fn a_tool_its_child_runs_only_as_a_task_is_called_as_one() {
    let image = common::node_reference_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize_with(&mut server, "2025-06-18", json!({"elicitation": {}}));
    let s = launch(&mut server, 1, &image);
    let tool = format!("{s}_everything__simulate-research-query");

    server.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": tool, "arguments": {"topic": "tide pools"},
                   "_meta": {"progressToken": "research"}}}));
    let done = server.response(2);
    assert_ne!(done["result"]["isError"], true, "{done}");
    assert!(done.to_string().contains("tide pools"), "{done}");
    let progress: Vec<String> = server
        .notifications
        .drain(..)
        .filter(|n| n["method"] == "notifications/progress")
        .filter(|n| n["params"]["progressToken"] == "research")
        .filter_map(|n| n["params"]["message"].as_str().map(String::from))
        .collect();
    assert!(
        progress.iter().any(|m| m.contains("Gathering sources")),
        "the task's status as progress: {progress:?}"
    );

    server.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": tool, "arguments": {"topic": "python", "ambiguous": true}}}));
    let ask = server
        .wait_notification("elicitation/create", Duration::from_secs(30))
        .expect("the task's question");
    server.reply(
        &ask,
        json!({"action": "accept", "content": {"interpretation": "the snake"}}),
    );
    let answered = server.response(3);
    assert_ne!(answered["result"]["isError"], true, "{answered}");
    assert!(answered.to_string().contains("the snake"), "{answered}");
}
