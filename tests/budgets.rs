//! Every meta-tool's typical result within its budget (src/budget.rs),
//! measured through MCP with real sessions: the hello fixture, an npm server
//! and a PyPI one. Prints each result's bytes (`--no-capture` shows them).

mod common;

use common::rpc::{Server, initialize, text_of};
use mcpod::budget;
use serde_json::{Value, json};

const THINKING: &str = "npm:@modelcontextprotocol/server-sequential-thinking@2026.8.31";
const SQLITE: &str = "pypi:mcp-server-sqlite==2025.4.25";

/// The bytes of a JSON value as sent.
fn bytes(v: &Value) -> usize {
    serde_json::to_string(v).map_or(0, |s| s.len())
}

/// A tool's structured result and its size, printed.
fn measured(server: &mut Server, id: u64, tool: &str, args: Value) -> (Value, usize) {
    let result = server.call(id, tool, args.clone());
    assert_ne!(
        result["isError"],
        true,
        "{tool} {args}: {}",
        text_of(&result)
    );
    let structured = result["structuredContent"].clone();
    let n = bytes(&structured);
    eprintln!(
        "budget: {tool} {args}: {n} bytes structured, {} bytes in all",
        bytes(&result)
    );
    (structured, n)
}

/// The input schemas of a launch result's tools, in bytes.
fn schema_bytes(launched: &Value) -> usize {
    launched["servers"]
        .as_object()
        .into_iter()
        .flat_map(|s| s.values())
        .flat_map(|s| s["tools"].as_array().into_iter().flatten())
        .map(|t| bytes(&t["input_schema"]))
        .sum()
}

/// Notes `what` in `over` when its `n` bytes are over `budget`.
fn within(over: &mut Vec<String>, what: &str, n: usize, budget: usize) {
    if n > budget {
        over.push(format!("{what}: {n} bytes, over its budget of {budget}"));
    }
}

#[test]
fn each_tools_typical_result_is_within_its_budget() {
    let hello = common::hello_image();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut server = Server::start(&repo.join("examples/hello"));
    initialize(&mut server, "2025-11-25");
    let mut over = Vec::new();

    let (built, n) = measured(
        &mut server,
        1,
        "build_image",
        json!({"name": "localhost/mcpod-hello"}),
    );
    assert_eq!(built["tag"], hello.as_str(), "{built}");
    within(&mut over, "build_image", n, budget::BUILD_IMAGE);
    let (_, n) = measured(
        &mut server,
        2,
        "inspect_labels",
        json!({"reference": hello}),
    );
    within(&mut over, "inspect_labels", n, budget::INSPECT_LABELS);
    let (_, n) = measured(
        &mut server,
        3,
        "provision_server",
        json!({"package": THINKING}),
    );
    within(&mut over, "provision_server", n, budget::PROVISION_SERVER);
    let (_, n) = measured(&mut server, 4, "list_bases", json!({}));
    within(&mut over, "list_bases", n, budget::LIST_BASES);
    let (_, n) = measured(&mut server, 5, "show_policy", json!({}));
    within(&mut over, "show_policy", n, budget::SHOW_POLICY);

    // Four sessions: the fixture twice, an npm server, and a PyPI server
    // with its pin and its one server's arguments (no server name needed).
    let launches = [
        json!({"image": hello}),
        json!({"image": THINKING}),
        json!({"provision": {"package": SQLITE, "pins": ["mcp<2"]},
               "overrides": {"args": ["--db-path", "/tmp/budget.db"]}}),
        json!({"image": hello}),
    ];
    let mut sessions = Vec::new();
    for (i, args) in launches.into_iter().enumerate() {
        let (launched, n) = measured(&mut server, 10 + i as u64, "launch_session", args);
        let schemas = schema_bytes(&launched);
        eprintln!("budget:   of which {schemas} bytes are the tools' input schemas");
        let tools = launched["servers"]
            .as_object()
            .into_iter()
            .flat_map(|s| s.values())
            .flat_map(|s| s["tools"].as_array().into_iter().flatten())
            .count();
        within(
            &mut over,
            "launch_session",
            n,
            budget::LAUNCH_SESSION + tools * budget::LAUNCH_PER_TOOL + schemas,
        );
        assert!(schemas <= budget::LAUNCH_SCHEMAS, "{launched}");
        for (name, s) in launched["servers"].as_object().expect("servers") {
            assert_eq!(s["status"], "ready", "{name}: {launched}");
            let tools = s["tools"].as_array().expect("tools");
            assert!(!tools.is_empty(), "{name}: {launched}");
            if !tools.iter().all(|t| t["input_schema"]["type"] == "object") {
                over.push(format!("launch_session: {name}'s tools lack input schemas"));
            }
        }
        sessions.push(launched);
    }

    // The launch result is enough to call a tool: no tools/list first.
    let sqlite = &sessions[2];
    let call = sqlite["servers"]["sqlite"]["tools"]
        .as_array()
        .and_then(|t| {
            t.iter().find(|t| {
                t["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("__list_tables"))
            })
        })
        .and_then(|t| t["name"].as_str())
        .expect("list_tables")
        .to_string();
    let listed = server.call(20, &call, json!({}));
    assert_ne!(listed["isError"], true, "{listed}");

    let (list, n) = measured(&mut server, 21, "list_sessions", json!({}));
    assert_eq!(list["sessions"].as_array().map(Vec::len), Some(4), "{list}");
    let line = &list["sessions"][0];
    assert!(
        line["tools"].as_u64() > Some(0) && line["servers"].is_object(),
        "{list}"
    );
    within(
        &mut over,
        "list_sessions of 4",
        n,
        budget::LIST_SESSIONS_BASE + 4 * budget::LIST_SESSIONS_PER_SESSION,
    );
    let id = sessions[0]["session"]
        .as_str()
        .expect("session")
        .to_string();
    let (one, n) = measured(&mut server, 22, "list_sessions", json!({"session": id}));
    let detail = &one["detail"];
    assert!(
        detail["isolation"].is_object() && detail["client_config"]["mcpServers"].is_object(),
        "{one}"
    );
    within(&mut over, "list_sessions of one", n, budget::SESSION_DETAIL);
    let (_, n) = measured(&mut server, 23, "session_logs", json!({"session": id}));
    within(&mut over, "session_logs", n, budget::SESSION_LOGS);
    let (found, n) = measured(&mut server, 24, "find_tools", json!({"query": "add"}));
    let tools = found["tools"].as_array().expect("tools");
    let schemas: usize = tools
        .iter()
        .map(|t| bytes(&t["input_schema"]) + bytes(&t["description"]))
        .sum();
    within(
        &mut over,
        "find_tools",
        n,
        64 + tools.len() * budget::FIND_TOOLS_PER_TOOL + schemas,
    );
    for (i, s) in sessions.iter().enumerate() {
        let (_, n) = measured(
            &mut server,
            30 + i as u64,
            "stop_session",
            json!({"session": s["session"]}),
        );
        within(&mut over, "stop_session", n, budget::STOP_SESSION);
    }
    assert!(over.is_empty(), "{over:#?}");
}
