//! Hostile input, the child and client classes: what a child server writes on
//! its stdout and stderr, and what a client sends to mcpod, is read with a
//! bound, and every limit is an answer (an error naming the size and the
//! limit, at once), never a hang, a flood of mcpod's stderr or unbounded
//! memory. The child is tests/fixtures/hostile (examples/hostile_server.rs).

mod common;

use std::time::{Duration, Instant};

use common::containers_of;
use common::hostile::{HostileImages, hostile_image};
use common::rpc::{Server, initialize, initialize_with, text_of};
use serde_json::{Value, json};

/// mcpod's peak resident memory so far, in MiB (VmHWM).
fn peak_rss_mib(server: &Server) -> u64 {
    server.memory_mib("VmHWM:")
}

fn rss_mib(server: &Server) -> u64 {
    server.memory_mib("VmRSS:")
}

/// Launch the hostile image (or `image`); the session id.
fn launch(server: &mut Server, id: u64, image: &str) -> String {
    let launched = server.call(id, "launch_session", json!({"image": image}));
    assert_ne!(launched["isError"], true, "{launched}");
    let info = &launched["structuredContent"];
    assert_eq!(info["servers"]["hostile"]["status"], "ready", "{info}");
    info["session"].as_str().expect("session").to_string()
}

/// A proxied call that must answer within `within`; the result and how long it took.
fn timed_call(server: &mut Server, id: u64, tool: &str, args: Value) -> (Value, Duration) {
    let started = Instant::now();
    let result = server.call(id, tool, args);
    (result, started.elapsed())
}

fn stop(server: &mut Server, id: u64, session: &str) {
    let stopped = server.call(id, "stop_session", json!({"session": session}));
    assert_ne!(stopped["isError"], true, "{stopped}");
    assert_eq!(containers_of(session), Vec::<String>::new());
}

#[test]
fn a_stderr_line_with_no_end_keeps_mcpod_small() {
    let image = hostile_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let session = launch(&mut server, 1, &image);
    let before = peak_rss_mib(&server);
    // 300 MiB on one line: buffered whole, mcpod would grow by as much.
    let bytes = 300u64 << 20;
    let flooded = server.call(
        2,
        &format!("{session}_hostile__stderr_flood"),
        json!({"bytes": bytes, "newline": false}),
    );
    assert_eq!(text_of(&flooded), format!("flooded {bytes}"), "{flooded}");
    let echoed = server.call(
        3,
        &format!("{session}_hostile__echo"),
        json!({"text": "still here"}),
    );
    assert_eq!(text_of(&echoed), "still here");
    let peak = peak_rss_mib(&server);
    eprintln!("peak RSS: {before} MiB before, {peak} MiB after a {bytes}-byte stderr line");
    assert!(
        peak < before + 64,
        "mcpod's peak RSS went from {before} MiB to {peak} MiB reading one stderr line"
    );
    // The log keeps the line's start, cut.
    let logs = server.call(4, "session_logs", json!({"session": session}));
    let lines = logs["structuredContent"]["servers"]["hostile"].clone();
    let first = lines[0].as_str().unwrap_or_default();
    assert!(
        first.starts_with("xxxx") && first.len() <= 4096,
        "{}",
        first.len()
    );
    stop(&mut server, 5, &session);
}

#[test]
fn a_reply_over_the_limit_fails_the_call_at_once_and_the_session_goes_on() {
    let image = hostile_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let session = launch(&mut server, 1, &image);
    let bytes = 20u64 << 20;
    let (result, took) = timed_call(
        &mut server,
        2,
        &format!("{session}_hostile__big_reply"),
        json!({"bytes": bytes}),
    );
    assert_eq!(result["isError"], true, "{result}");
    let text = text_of(&result);
    assert!(
        text.contains("server `hostile` sent a response")
            && text.contains("limit of 16777216 bytes")
            && text.contains("`big_reply`"),
        "{text}"
    );
    // Not the 60 s call deadline: the reply's end is the answer.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // Too deep to parse: the same, at once.
    let (result, _) = timed_call(
        &mut server,
        3,
        &format!("{session}_hostile__deep_reply"),
        json!({"depth": 100_000}),
    );
    assert_eq!(result["isError"], true, "{result}");
    assert!(text_of(&result).contains("deeper than"), "{result}");
    // A non-JSON line before a reply is dropped; the reply still arrives.
    let garbled = server.call(
        4,
        &format!("{session}_hostile__garbage_then_reply"),
        json!({}),
    );
    assert_ne!(garbled["isError"], true, "{garbled}");
    let echoed = server.call(
        5,
        &format!("{session}_hostile__echo"),
        json!({"text": "ok"}),
    );
    assert_eq!(text_of(&echoed), "ok");
    // What was refused is in the session's log.
    let logs = server.call(6, "session_logs", json!({"session": session}));
    let log = logs["structuredContent"]["servers"]["hostile"].to_string();
    assert!(
        log.contains("mcpod: server `hostile` sent a response"),
        "{log}"
    );
    assert!(log.contains("not JSON"), "{log}");
    stop(&mut server, 7, &session);
}

#[test]
fn a_request_over_the_limit_or_too_deep_gets_an_error_reply() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    // The id comes last, as the TypeScript SDK writes it.
    let big = format!(
        r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"list_sessions","arguments":{{"x":"{}"}}}},"id":7}}"#,
        "a".repeat(17 << 20)
    );
    server.send_raw(&big);
    let reply = server.response(7);
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("of {} bytes", big.len()))
            && message.contains("limit of 16777216"),
        "{reply}"
    );
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{{"name":"list_sessions","arguments":{{"x":{}{}}}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    server.send_raw(&deep);
    let reply = server.response(8);
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("deeper"),
        "{reply}"
    );
    // Still serving.
    let listed = server.call(9, "list_sessions", json!({}));
    assert_ne!(listed["isError"], true, "{listed}");
}

#[test]
fn a_notification_flood_does_not_flood_mcpods_stderr() {
    let image = hostile_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_logged(root.path(), &[]);
    initialize(&mut server, "2025-11-25");
    let session = launch(&mut server, 1, &image);
    // 100 notifications of 1 MiB (and as many progress notifications).
    server.send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": format!("{session}_hostile__notify_flood"),
        "arguments": {"count": 100, "bytes": 1 << 20},
        "_meta": {"progressToken": "flood"}}}),
    );
    let result = server.response(2)["result"].clone();
    assert_eq!(text_of(&result), "notified 100", "{result}");
    // What reaches the client is bounded too: each progress message cut.
    let progress: Vec<&Value> = server
        .notifications
        .iter()
        .filter(|n| n["params"]["progressToken"] == "flood")
        .collect();
    assert!(
        !progress.is_empty() && progress.len() <= 100,
        "{}",
        progress.len()
    );
    for p in &progress {
        let len = p["params"]["message"]
            .as_str()
            .map_or(0, |m| m.chars().count());
        assert!(
            len <= 4096,
            "a progress message of {len} characters reached the client"
        );
    }
    let stderr = server.stderr_text();
    eprintln!(
        "mcpod's stderr: {} bytes, {} lines for 100 x 1 MiB notifications and as many progress",
        stderr.len(),
        stderr.lines().count()
    );
    assert!(
        stderr.len() < 256 * 1024,
        "mcpod wrote {} bytes to stderr for 200 MiB of notifications",
        stderr.len()
    );
    assert!(
        stderr
            .lines()
            .all(|l| l.len() <= mcpod::logging::EVENT_BYTES),
        "an event over {} bytes",
        mcpod::logging::EVENT_BYTES
    );
    stop(&mut server, 3, &session);
}

#[test]
fn a_duplicate_tool_name_exports_once_and_too_many_tools_are_capped() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = HostileImages::new();
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let dup = images.with(
        &mut server,
        1,
        root.path(),
        json!(["/bin/hostile-server", "--duplicate-tools"]),
    );
    let launched = server.call(2, "launch_session", json!({"image": dup}));
    let info = launched["structuredContent"].clone();
    let session = info["session"].as_str().expect("session").to_string();
    let names = server.tool_names(3);
    let echo = format!("{session}_hostile__echo");
    assert_eq!(names.iter().filter(|n| **n == echo).count(), 1, "{names:?}");
    assert!(
        info["warnings"].to_string().contains("more than once"),
        "{}",
        info["warnings"]
    );

    let many = images.with(
        &mut server,
        4,
        root.path(),
        json!(["/bin/hostile-server", "--many-tools", "300"]),
    );
    let launched = server.call(5, "launch_session", json!({"image": many}));
    let info = launched["structuredContent"].clone();
    let crowd = info["session"].as_str().expect("session").to_string();
    assert_eq!(
        info["servers"]["hostile"]["tools"].as_array().map(Vec::len),
        Some(mcpod::proxy::tools::MAX_PER_SERVER),
        "{}",
        info["warnings"]
    );
    assert!(
        info["warnings"].to_string().contains("exports the first"),
        "{}",
        info["warnings"]
    );
    let names = server.tool_names(6);
    assert!(
        names.len() <= mcpod::proxy::tools::MAX_LISTED,
        "{}",
        names.len()
    );
    // A tool left out of tools/list is still reachable.
    let t = server.call(
        7,
        "call_tool",
        json!({"session": crowd, "server": "hostile", "tool": "t5", "arguments": {}}),
    );
    assert_ne!(t["isError"], true, "{t}");
    // A child whose every page has another: read a bounded number of pages.
    let endless = images.with(
        &mut server,
        10,
        root.path(),
        json!([
            "/bin/hostile-server",
            "--endless-pages",
            "--many-tools",
            "20"
        ]),
    );
    let launched = server.call(11, "launch_session", json!({"image": endless}));
    let info = launched["structuredContent"].clone();
    assert_eq!(info["servers"]["hostile"]["status"], "ready", "{launched}");
    let pager = info["session"].as_str().expect("session").to_string();
    assert!(
        info["warnings"].to_string().contains("more pages of tools"),
        "{}",
        info["warnings"]
    );
    stop(&mut server, 8, &session);
    stop(&mut server, 9, &crowd);
    stop(&mut server, 12, &pager);
}

#[test]
fn a_burst_of_calls_is_capped_and_memory_comes_back() {
    let image = hostile_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let session = launch(&mut server, 1, &image);
    let idle = rss_mib(&server);
    let ids: Vec<u64> = (100..10_100).collect();
    for id in &ids {
        server.send(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": format!("{session}_hostile__slow"), "arguments": {"ms": 200}}}),
        );
    }
    let replies = server.responses(&ids, Duration::from_secs(120));
    let refused = replies
        .values()
        .filter(|r| text_of(&r["result"]).contains("calls in flight"))
        .count();
    let done = replies
        .values()
        .filter(|r| text_of(&r["result"]) == "slept")
        .count();
    assert_eq!(
        done + refused,
        ids.len(),
        "every call answered one way or the other"
    );
    assert!(done >= 1 && refused >= 1, "done {done}, refused {refused}");
    let peak = peak_rss_mib(&server);
    // mcpod gives freed memory back every few seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = rss_mib(&server);
    while after >= idle + 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        after = rss_mib(&server);
    }
    eprintln!("RSS: idle {idle} MiB, peak {peak} MiB, after the burst {after} MiB");
    assert!(
        after < idle + 16,
        "RSS stayed at {after} MiB after the burst (idle {idle} MiB, peak {peak} MiB)"
    );
    stop(&mut server, 2, &session);
}

#[test]
fn a_list_changed_flood_costs_a_bounded_number_of_relistings() {
    let image = hostile_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let session = launch(&mut server, 1, &image);
    let sent = server.call(
        2,
        &format!("{session}_hostile__list_changed_flood"),
        json!({"count": 10_000}),
    );
    assert_eq!(text_of(&sent), "sent 10000", "{sent}");
    // One re-listing at a time: the notifications that arrive meanwhile
    // make one more, not one each.
    std::thread::sleep(Duration::from_secs(1));
    let count = server.call(
        3,
        &format!("{session}_hostile__tools_list_count"),
        json!({}),
    );
    let lists: u64 = text_of(&count).parse().expect("a count");
    assert!(
        lists < 100,
        "10,000 list_changed made {lists} tools/list requests"
    );
    let echoed = server.call(
        4,
        &format!("{session}_hostile__echo"),
        json!({"text": "ok"}),
    );
    assert_eq!(text_of(&echoed), "ok");
    stop(&mut server, 5, &session);
}

#[test]
fn a_server_that_writes_no_mcp_at_start_fails_at_once_quoting_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = HostileImages::new();
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    // A banner before a good handshake is only noted.
    let banner = images.with(
        &mut server,
        1,
        root.path(),
        json!([
            "/bin/hostile-server",
            "--banner",
            "Starting hostile server v1"
        ]),
    );
    let session = launch(&mut server, 2, &banner);
    let logs = server.call(3, "session_logs", json!({"session": session}));
    assert!(
        logs.to_string().contains("Starting hostile server v1"),
        "the banner is noted in the log: {logs}"
    );
    stop(&mut server, 4, &session);

    // Junk and no answer, or the input echoed: a failure after the junk
    // grace (with one more start with `initialize` only, as an older server
    // behind a banner needs), not at the 30 s handshake deadline, saying what
    // it wrote.
    for (id, command, says) in [
        (
            10,
            json!(["/bin/hostile-server", "--banner", "oops, not MCP", "--mute"]),
            "oops, not MCP",
        ),
        (
            20,
            json!(["/bin/hostile-server", "--echo-stdin"]),
            "initialize",
        ),
    ] {
        let image = images.with(&mut server, id, root.path(), command);
        let (result, took) = timed_call(
            &mut server,
            id + 1,
            "launch_session",
            json!({"image": image}),
        );
        assert_eq!(result["isError"], true, "{result}");
        let text = text_of(&result);
        assert!(
            text.contains(says)
                && text.contains("server `hostile`")
                && text.contains("wrote to stdout what is not MCP")
                && !text.contains("within 30 s"),
            "took {took:?}: {text}"
        );
    }
    let listed = server.call(30, "list_sessions", json!({}));
    assert_ne!(listed["isError"], true, "{listed}");
}

#[test]
fn a_program_the_image_lacks_is_named_with_the_way_out() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = HostileImages::new();
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    // What every server's README shows, in an image with no node.
    let npx = json!(["npx", "-y", "@modelcontextprotocol/server-memory"]);
    let alone = images.with(&mut server, 1, root.path(), npx.clone());
    let launched = server.call(2, "launch_session", json!({"image": alone}));
    assert_eq!(launched["isError"], true, "{launched}");
    let text = text_of(&launched);
    // The supervisor says so itself: nothing depends on podman keeping stderr.
    assert!(
        text.contains("the program `npx` is not in the image")
            && text.contains("provision the package instead")
            && text.contains(r#""image": "npm:@modelcontextprotocol/server-memory""#),
        "{text}"
    );
    // Beside a working server.
    let pair = images.serving(
        &mut server,
        3,
        root.path(),
        json!({"hostile": {"command": ["/bin/hostile-server"]}, "memory": {"command": npx}}),
    );
    let launched = server.call(4, "launch_session", json!({"image": pair}));
    let info = launched["structuredContent"].clone();
    assert_eq!(info["servers"]["hostile"]["status"], "ready", "{launched}");
    let reason = info["servers"]["memory"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("the program `npx` is not in the image"),
        "{info}"
    );
    let session = info["session"].as_str().expect("session").to_string();
    stop(&mut server, 5, &session);
}

/// A server shares its session's container and uid with the supervisor
/// (PID 1), whose stdio is the session stream. It cannot write into that
/// stream, read the supervisor's memory (the servers' env values pass there)
/// or environment, or kill it; the session and its other server go on.
#[test]
fn a_server_cannot_reach_the_session_stream_or_kill_its_supervisor() {
    let root = tempfile::tempdir().expect("tempdir");
    let images = HostileImages::new();
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let image = images.serving(
        &mut server,
        1,
        root.path(),
        json!({"hostile": {"command": ["/bin/hostile-server"]},
               "other": {"command": ["/bin/hostile-server"]}}),
    );
    let session = launch(&mut server, 2, &image);
    let attack = server.call(
        3,
        &format!("{session}_hostile__attack_supervisor"),
        json!({}),
    );
    let text = text_of(&attack);
    for refused in [
        "write /proc/1/fd/1: refused",
        "write /proc/1/fd/3: refused",
        "own fd 3: refused",
        "open /proc/1/mem: refused",
        "read /proc/1/environ: refused",
        "extra fds: none",
    ] {
        assert!(text.contains(refused), "{refused}: {text}");
    }
    // The kernel drops a SIGKILL sent to a namespace's init from inside it.
    std::thread::sleep(Duration::from_millis(500));
    for (id, name) in [(4, "hostile"), (5, "other")] {
        let echo = server.call(
            id,
            &format!("{session}_{name}__echo"),
            json!({"text": "still here"}),
        );
        assert_eq!(text_of(&echo), "still here", "{echo}");
    }
    let listed = server.call(6, "list_sessions", json!({}));
    assert_eq!(
        listed["structuredContent"]["sessions"][0]["state"], "running",
        "{listed}"
    );
    stop(&mut server, 7, &session);
    assert!(containers_of(&session).is_empty());
}

/// A child that asks the client question after question: at most
/// `MAX_ASKS` reach the client at once, the rest are refused at once (the
/// child hears why), and the session goes on.
#[test]
fn a_flood_of_questions_reaches_the_client_a_few_at_a_time() {
    let image = hostile_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize_with(&mut server, "2025-11-25", json!({"elicitation": {}}));
    let session = launch(&mut server, 1, &image);
    let asked = server.call(
        2,
        &format!("{session}_hostile__ask_flood"),
        json!({"count": 50}),
    );
    assert_eq!(text_of(&asked), "asked 50", "{asked}");
    let mut seen = Vec::new();
    while let Some(ask) = server.wait_notification("elicitation/create", Duration::from_secs(2)) {
        seen.push(ask);
    }
    assert_eq!(seen.len(), mcpod::proxy::child::MAX_ASKS, "{seen:?}");
    for ask in &seen {
        server.reply(ask, json!({"action": "decline"}));
    }
    let echo = server.call(
        3,
        &format!("{session}_hostile__echo"),
        json!({"text": "still here"}),
    );
    assert_eq!(text_of(&echo), "still here", "{echo}");
    stop(&mut server, 4, &session);
}

/// A child's log messages reach the client only once it has set a level,
/// only at that level or above (the child may ignore the level it was sent),
/// and each cut to `LOG_DATA_BYTES`: a flood of 1 MiB messages reaches it as
/// small ones, and none before it asked.
#[test]
fn a_childs_log_flood_reaches_the_client_only_as_asked_and_cut() {
    let image = hostile_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let session = launch(&mut server, 1, &image);
    let flood = format!("{session}_hostile__notify_flood");
    let logs = |server: &mut Server| {
        let n = server
            .notifications
            .iter()
            .filter(|n| n["method"] == "notifications/message")
            .count();
        server
            .notifications
            .retain(|n| n["method"] != "notifications/message");
        n
    };
    let sent = server.call(2, &flood, json!({"count": 20, "bytes": 1 << 20}));
    assert_eq!(text_of(&sent), "notified 20", "{sent}");
    server.call(
        3,
        &format!("{session}_hostile__echo"),
        json!({"text": "sync"}),
    );
    assert_eq!(
        logs(&mut server),
        0,
        "log messages before any level was set"
    );

    let set = server.request(4, "logging/setLevel", json!({"level": "error"}));
    assert!(set["error"].is_null(), "{set}");
    server.call(5, &flood, json!({"count": 20, "bytes": 1 << 20}));
    server.call(
        6,
        &format!("{session}_hostile__echo"),
        json!({"text": "sync"}),
    );
    assert_eq!(logs(&mut server), 0, "info messages under an error level");

    let set = server.request(7, "logging/setLevel", json!({"level": "info"}));
    assert!(set["error"].is_null(), "{set}");
    server.call(8, &flood, json!({"count": 5, "bytes": 1 << 20}));
    let mut got = Vec::new();
    while let Some(n) = server.wait_notification("notifications/message", Duration::from_secs(5)) {
        got.push(n);
        if got.len() == 5 {
            break;
        }
    }
    assert_eq!(got.len(), 5);
    for n in &got {
        let data = n["params"]["data"].to_string();
        assert!(
            data.len() <= mcpod::proxy::upstream::LOG_DATA_BYTES + 128
                && data.contains("cut by mcpod"),
            "{} bytes",
            data.len()
        );
        assert_eq!(n["params"]["logger"], format!("{session}/hostile/hostile"));
    }
    stop(&mut server, 9, &session);
}
