//! The hostile fixture server itself (examples/hostile_server.rs): its image runs under
//! podman and speaks newline-delimited JSON-RPC, its labels read as one server, its flags
//! work, and the outputs meant to break mcpod are exactly as large, as deep and as shaped
//! as asked (checked on the binary directly, no container).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::hostile::{hostile_binary, hostile_image};
use serde_json::{Value, json};

/// Run `command`, write `messages` to its stdin (one per line), close stdin, and wait:
/// its stdout bytes and stderr text.
fn converse(command: &mut Command, messages: &[Value]) -> (Vec<u8>, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the fixture");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for m in messages {
            writeln!(stdin, "{m}").expect("write a request");
        }
    }
    let out = child.wait_with_output().expect("wait for the fixture");
    assert!(out.status.success(), "the fixture failed: {out:?}");
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every stdout line as JSON.
fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The response with `id` among `lines`.
fn response(lines: &[Value], id: u64) -> &Value {
    lines
        .iter()
        .find(|l| l["id"] == id)
        .unwrap_or_else(|| panic!("no response {id} in {lines:?}"))
}

fn initialize(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "hostile-fixture-test", "version": "1"},
    }})
}

fn initialized() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

fn call(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

fn podman_run(tag: &str, flags: &[&str]) -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(["run", "-i", "--rm", "--network=none"]);
    if !flags.is_empty() {
        let argv: Vec<&str> = std::iter::once("/bin/hostile-server")
            .chain(flags.iter().copied())
            .collect();
        cmd.arg(format!(
            "--entrypoint={}",
            serde_json::to_string(&argv).expect("argv")
        ));
    }
    cmd.arg(tag);
    cmd
}

#[test]
fn the_image_declares_one_server_and_answers_over_stdio() {
    let tag = hostile_image();

    // The labels read as the one `hostile` server.
    let out = Command::new("podman")
        .args(["image", "inspect", "--format", "{{json .Labels}}", &tag])
        .output()
        .expect("podman image inspect");
    assert!(out.status.success(), "{out:?}");
    let labels: BTreeMap<String, String> =
        serde_json::from_slice(&out.stdout).expect("the labels are a JSON object of strings");
    let declared = mcpod::labels::read(&labels).expect("the fixture's labels are valid");
    assert_eq!(declared.servers.len(), 1, "{declared:?}");
    let spec = &declared.servers["hostile"];
    assert_eq!(spec.command, ["/bin/hostile-server"]);
    assert_eq!(spec.call_timeout_secs, Some(60));

    let (stdout, _) = converse(
        &mut podman_run(&tag, &[]),
        &[
            initialize("2025-06-18"),
            initialized(),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            call(3, "echo", json!({"text": "héllo\n`x`"})),
            json!({"jsonrpc": "2.0", "id": 4, "method": "resources/list"}),
            json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}),
        ],
    );
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 5, "one response per request: {lines:?}");

    let init = &response(&lines, 1)["result"];
    assert_eq!(init["protocolVersion"], "2025-06-18");
    assert_eq!(init["capabilities"], json!({"tools": {}}));
    assert_eq!(init["serverInfo"]["name"], "hostile-server");

    let tools = response(&lines, 2)["result"]["tools"]
        .as_array()
        .expect("tools");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "echo",
            "stderr_flood",
            "big_reply",
            "deep_reply",
            "notify_flood",
            "progress_then_ask",
            "whoami",
            "garbage_then_reply",
            "list_changed_flood",
            "ask_flood",
            "tools_list_count",
            "slow",
            "http_via_proxy",
            "hold_via_proxy",
            "tcp_bench",
            "escape_forward",
            "tcp_exchange",
            "attack_supervisor"
        ]
    );
    for t in tools {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }

    assert_eq!(
        response(&lines, 3)["result"]["content"],
        json!([{"type": "text", "text": "héllo\n`x`"}])
    );
    assert_eq!(response(&lines, 4)["error"]["code"], -32601);
    assert_eq!(response(&lines, 5)["result"], json!({}));
}

#[test]
fn duplicate_tools_lists_echo_twice_with_two_descriptions() {
    let tag = hostile_image();
    let (stdout, _) = converse(
        &mut podman_run(&tag, &["--duplicate-tools"]),
        &[
            initialize("2025-11-25"),
            initialized(),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        ],
    );
    let lines = json_lines(&stdout);
    assert_eq!(
        response(&lines, 1)["result"]["protocolVersion"],
        "2025-11-25"
    );
    let echoes: Vec<&Value> = response(&lines, 2)["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter(|t| t["name"] == "echo")
        .collect();
    assert_eq!(echoes.len(), 2, "{echoes:?}");
    assert_ne!(echoes[0]["description"], echoes[1]["description"]);
}

#[test]
fn big_reply_of_20_mib_is_one_line_of_the_exact_length() {
    const BYTES: usize = 20 * 1024 * 1024;
    let (stdout, _) = converse(
        &mut Command::new(hostile_binary()),
        &[
            initialize("1999-01-01"),
            call(2, "big_reply", json!({"bytes": BYTES})),
        ],
    );
    let lines: Vec<&[u8]> = stdout.split_inclusive(|b| *b == b'\n').collect();
    assert_eq!(lines.len(), 2, "initialize's response, then the big one");
    let init: Value = serde_json::from_slice(lines[0]).expect("JSON");
    assert_eq!(
        init["result"]["protocolVersion"], "2025-11-25",
        "an unknown version gets the newest"
    );

    let big = lines[1];
    // Compact JSON has the same length whatever the key order: the response with an empty
    // text, plus the text, plus the newline.
    let empty = json!({"jsonrpc": "2.0", "id": 2, "result": {
        "content": [{"type": "text", "text": ""}], "isError": false}});
    assert_eq!(big.len(), empty.to_string().len() + BYTES + 1);
    assert_eq!(big.last(), Some(&b'\n'));
    let reply: Value = serde_json::from_slice(big).expect("the big line is JSON");
    let text = reply["result"]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert_eq!(text.len(), BYTES);
    assert!(text.bytes().all(|b| b == b'a'));
}

#[test]
fn deep_notify_stderr_and_garbage_outputs_are_as_asked() {
    const DEPTH: usize = 100_000;
    let (stdout, stderr) = converse(
        Command::new(hostile_binary()).args(["--banner", "not json", "--stderr-at-start", "7"]),
        &[
            initialize("2025-06-18"),
            call(2, "deep_reply", json!({"depth": DEPTH})),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
                "name": "notify_flood", "arguments": {"count": 3, "bytes": 1000},
                "_meta": {"progressToken": "tok"}}}),
            call(
                4,
                "stderr_flood",
                json!({"bytes": 200_000, "newline": false}),
            ),
            call(5, "garbage_then_reply", json!({})),
            call(6, "slow", json!({"ms": 1})),
            call(7, "big_reply", json!({"bytes": "many"})),
        ],
    );
    let text = String::from_utf8(stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "not json", "the banner comes first");

    let deep = lines
        .iter()
        .find(|l| l.contains(r#""id":2,"#))
        .expect("the deep reply");
    let field = format!(r#""deep":{}{}}}}}"#, "[".repeat(DEPTH), "]".repeat(DEPTH));
    assert!(deep.ends_with(&field), "nested exactly {DEPTH} deep");
    assert_eq!(
        deep.matches('[').count(),
        DEPTH + 1,
        "and the content array"
    );

    let messages: Vec<Value> = lines
        .iter()
        .filter(|l| l.contains("notifications/"))
        .map(|l| serde_json::from_str(l).expect("a notification is JSON"))
        .collect();
    assert_eq!(messages.len(), 6, "3 log and 3 progress notifications");
    for (i, pair) in messages.chunks(2).enumerate() {
        assert_eq!(pair[0]["method"], "notifications/message");
        assert_eq!(pair[0]["params"]["logger"], "hostile");
        assert_eq!(pair[0]["params"]["data"].as_str().map(str::len), Some(1000));
        assert_eq!(pair[1]["method"], "notifications/progress");
        assert_eq!(pair[1]["params"]["progressToken"], "tok");
        assert_eq!(pair[1]["params"]["progress"], i + 1);
        assert_eq!(
            pair[1]["params"]["message"].as_str().map(str::len),
            Some(1000)
        );
    }

    let garbage = lines
        .iter()
        .position(|l| l.starts_with("this line is not JSON"))
        .expect("the garbage line");
    let after: Value = serde_json::from_str(lines[garbage + 1]).expect("then JSON");
    assert_eq!(after["id"], 5);

    let replies: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("id").is_some())
        .collect();
    assert_eq!(
        response(&replies, 3)["result"]["content"][0]["text"],
        "notified 3"
    );
    assert_eq!(
        response(&replies, 4)["result"]["content"][0]["text"],
        "flooded 200000"
    );
    assert_eq!(
        response(&replies, 6)["result"]["content"][0]["text"],
        "slept"
    );
    assert_eq!(response(&replies, 7)["error"]["code"], -32602);

    assert_eq!(stderr.len(), 7 + 200_000, "no newline, nothing else");
    assert!(stderr.starts_with("yyyyyyyx"));
    assert!(!stderr.contains('\n'));
}
