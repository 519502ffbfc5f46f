//! The audit log (`$MCPOD_STATE_DIR/audit.jsonl`) of the real binary over
//! stdio: a record per tool call on both of its paths (rmcp's and the
//! pass-through), argument names and sizes but never values, hostile names
//! bounded and escaped, rotation at `--audit-max-mb`.

mod common;

use std::path::{Path, PathBuf};

use common::rpc::{Server, initialize};
use serde_json::{Value, json};

const SECRET: &str = "s3cr3t-Value-that-must-never-be-logged-7f9c";

fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect()
}

#[test]
fn tool_calls_are_audited_without_values_bounded_and_rotated() {
    let hello = common::hello_image();
    let state = tempfile::tempdir().expect("state dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let env = [("MCPOD_STATE_DIR", state.path().display().to_string())];
    let mut server = Server::start_env(&root, &["--audit-max-mb", "1"], &env);
    initialize(&mut server, "2025-06-18");
    let log: PathBuf = state.path().join("audit.jsonl");
    let previous = state.path().join("audit.jsonl.1");

    let launched = server.call(1, "launch_session", json!({"image": hello}));
    let session = launched["structuredContent"]["session"]
        .as_str()
        .unwrap_or_else(|| panic!("launch: {launched}"))
        .to_string();
    let greet = format!("{session}_hello__greet");
    // The pass-through (an `initialize` client without Tasks), then rmcp's
    // path (call_tool), each with the secret as a value.
    let fast = server.call(2, &greet, json!({"name": SECRET}));
    assert!(fast.to_string().contains(SECRET), "{fast}");
    let slow = server.call(
        3,
        "call_tool",
        json!({"session": session, "server": "hello", "tool": "greet", "arguments": {"name": SECRET}}),
    );
    assert!(slow.to_string().contains(SECRET), "{slow}");
    // Hostile names: a huge one with control characters, and 100 of them.
    let mut hostile = serde_json::Map::new();
    hostile.insert(
        format!("{}\u{1b}[31m\nforged\"}}", "n".repeat(10_000)),
        json!(SECRET),
    );
    for i in 0..99 {
        hostile.insert(format!("arg{i:03}"), json!(SECRET));
    }
    let listed = server.call(4, "list_sessions", Value::Object(hostile));
    let _ = listed;
    // Requests besides tools/call that reach a session: the method, the
    // session and server, never the URI or a prompt's arguments.
    let logs_uri = format!("mcpod://sessions/{session}/logs/hello");
    for (id, method, params) in [
        (5, "resources/read", json!({"uri": logs_uri})),
        (
            6,
            "prompts/get",
            json!({"name": "no_such_prompt", "arguments": {"x": SECRET}}),
        ),
    ] {
        server.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let _ = server.response(id);
    }

    let all = records(&log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(SECRET), "a value reached the audit log");
    let of = |tool: &str| {
        all.iter()
            .find(|r| r["tool"] == tool)
            .unwrap_or_else(|| panic!("no record of {tool}: {text}"))
    };
    let by_method = |method: &str| {
        all.iter()
            .find(|r| r["method"] == method)
            .unwrap_or_else(|| panic!("no record of {method}: {text}"))
    };
    let read = by_method("resources/read");
    assert_eq!(
        (&read["session"], &read["server"], &read["outcome"]),
        (&json!(session), &json!("hello"), &json!("ok")),
        "{read}"
    );
    assert!(
        !text.contains(&logs_uri),
        "a resource URI reached the audit log"
    );
    let prompt = by_method("prompts/get");
    assert_eq!(prompt["outcome"], "error", "{prompt}");
    assert_eq!(prompt["principal"], "stdio", "{prompt}");
    let launch = of("launch_session");
    assert_eq!(launch["session"], session.as_str(), "{launch}");
    assert_eq!(launch["outcome"], "ok", "{launch}");
    let fast = of(&greet);
    assert_eq!(fast["principal"], "stdio", "{fast}");
    assert_eq!(fast["method"], "tools/call", "{fast}");
    assert_eq!(fast["session"], session.as_str(), "{fast}");
    assert_eq!(fast["server"], "hello", "{fast}");
    assert_eq!(
        fast["arguments"],
        json!([{"name": "name", "bytes": SECRET.len() + 2}]),
        "{fast}"
    );
    assert_eq!(fast["outcome"], "ok", "{fast}");
    assert!(fast["duration_ms"].is_u64(), "{fast}");
    let slow = of("call_tool");
    assert_eq!(slow["session"], session.as_str(), "{slow}");
    assert_eq!(slow["server"], "hello", "{slow}");
    assert_eq!(slow["outcome"], "ok", "{slow}");
    let names: Vec<&str> = slow["arguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{slow}");
    let hostile = of("list_sessions");
    let arguments = hostile["arguments"].as_array().unwrap();
    assert_eq!(arguments.len(), 32, "{hostile}");
    assert_eq!(hostile["arguments_more"], 68, "{hostile}");
    for a in arguments {
        let name = a["name"].as_str().unwrap();
        assert!(name.chars().count() <= 129, "{name:.200}");
        assert!(!name.chars().any(char::is_control), "{name:?}");
    }
    assert!(
        text.lines().all(|l| l.len() < 16 << 10),
        "a record over 16 KiB"
    );

    // Rotation at 1 MiB: records of 32 long names, until audit.jsonl.1
    // appears (about 240 of them); both files stay within the bound.
    let long: serde_json::Map<String, Value> = (0..32)
        .map(|i| (format!("{i:02}{}", "x".repeat(200)), json!(SECRET)))
        .collect();
    let mut id = 100;
    while !previous.exists() {
        assert!(id < 1_000, "no rotation after {} calls", id - 100);
        server.call(id, "no_such_tool", Value::Object(long.clone()));
        id += 1;
    }
    server.call(id, "no_such_tool", Value::Object(long.clone()));
    for file in [&log, &previous] {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(size <= 1 << 20, "{} is {size} bytes", file.display());
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(SECRET), "a value reached {}", file.display());
    }
    let rotated = records(&previous);
    let fresh = records(&log);
    assert!(!fresh.is_empty() && rotated.len() > 200);
    assert!(
        fresh
            .iter()
            .chain(&rotated)
            .filter(|r| r["tool"] == "no_such_tool")
            .all(|r| r["outcome"] == "error" && r["arguments"].as_array().unwrap().len() == 32)
    );
}
