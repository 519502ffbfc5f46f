//! `mcpod serve --listen` under load: 50 clients at once, each with a token
//! of its own, over real HTTP with the Python SDK's streamable-HTTP client
//! (tests/interop/http_load.py, every client in one asyncio process).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{Serve, end_within, interop, python};
use serde_json::Value;

const CLIENTS: usize = 50;

/// http_load.py's clients, holding their MCP sessions open between commands.
struct Load {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Load {
    fn start(serve: &Serve, image: &str, tokens: &[String]) -> (Load, tempfile::NamedTempFile) {
        let mut file = tempfile::NamedTempFile::new().expect("a tokens file");
        file.write_all(tokens.join("\n").as_bytes())
            .expect("write the tokens");
        let mut child = Command::new(python())
            .arg(interop().join("http_load.py"))
            .args([&serve.url(), image])
            .arg(file.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python runs");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let stdin = child.stdin.take();
        let load = Load {
            child,
            stdin,
            stdout,
        };
        (load, file)
    }

    /// Its next JSON line.
    fn answer(&mut self) -> Value {
        let mut line = String::new();
        let read = self.stdout.read_line(&mut line).expect("read http_load.py");
        assert!(read > 0, "http_load.py ended early (its stderr is above)");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    fn command(&mut self, line: &str) -> Value {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to http_load.py");
        stdin.flush().expect("flush");
        self.answer()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // EOF ends it; a minute later, it is killed.
        self.stdin.take();
        end_within(&mut self.child, Duration::from_secs(60));
    }
}

/// Session containers this mcpod started (any state), by session.
fn containers_by_session(pid: u32) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for session in common::podman_lines(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=io.mcpod.owner-pid={pid}"),
        "--format",
        "{{index .Labels \"io.mcpod.session\"}}",
    ]) {
        *by.entry(session).or_insert(0) += 1;
    }
    by
}

/// What client `i` saw is its own session alone: its greet answered, its
/// session the only one listed, and every exported tool its session's.
fn sees_only_its_own(i: usize, seen: &Value, session: &str) {
    assert!(seen.get("error").is_none(), "client {i}: {seen}");
    assert_eq!(seen["session"], session, "client {i}: {seen}");
    assert_eq!(seen["greet_error"], false, "client {i}: {seen}");
    assert_eq!(seen["greet"], format!("Hello, c{i}!"), "client {i}: {seen}");
    assert_eq!(
        seen["sessions"],
        serde_json::json!([session]),
        "client {i} lists another's session: {seen}"
    );
    let tools = seen["tools"].as_array().expect("tools listed");
    let exported: Vec<&str> = tools
        .iter()
        .filter_map(Value::as_str)
        .filter(|t| t.contains("__"))
        .collect();
    let mine = format!("{session}_hello__");
    assert!(
        exported.contains(&format!("{mine}greet").as_str()),
        "client {i}: {seen}"
    );
    assert!(
        exported.iter().all(|t| t.starts_with(&mine)),
        "client {i} is offered another session's tools: {exported:?}"
    );
}

/// 50 clients with tokens of their own launch a session each at once and
/// call its tool; each sees only its own session in list_sessions and
/// tools/list. Revoking one token ends its session (its container gone)
/// while the 49 others still answer on their open MCP sessions; after
/// SIGTERM no container of any of the 50 is left.
#[test]
fn fifty_clients_with_their_own_tokens_each_see_only_their_own_session() {
    let hello = common::hello_image();
    // The default allows 16 sessions at once.
    let serve = Serve::start_with(&["--max-sessions", &(CLIENTS + 4).to_string()]);
    let pid = serve.child.id();
    let tokens: Vec<String> = (0..CLIENTS)
        .map(|i| serve.create(&format!("c{i}")))
        .collect();
    let started = Instant::now();
    let (mut load, _tokens_file) = Load::start(&serve, &hello, &tokens);
    let first = load.answer();
    eprintln!(
        "{CLIENTS} clients launched and called their sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let first = first.as_array().expect("one answer per client");
    assert_eq!(first.len(), CLIENTS);
    let sessions: Vec<String> = first
        .iter()
        .enumerate()
        .map(|(i, seen)| {
            let session = seen["session"]
                .as_str()
                .unwrap_or_else(|| panic!("client {i} has no session: {seen}"));
            sees_only_its_own(i, seen, session);
            session.to_string()
        })
        .collect();
    let distinct: BTreeSet<&String> = sessions.iter().collect();
    assert_eq!(distinct.len(), CLIENTS, "sessions shared: {sessions:?}");
    let running = containers_by_session(pid);
    let want: BTreeMap<String, usize> = sessions.iter().map(|s| (s.clone(), 1)).collect();
    assert_eq!(running, want, "one container per session, no other");

    // Client 0's token revoked: its session ends; the others answer.
    let (ok, _) = serve.token(&["revoke", "c0"]);
    assert!(ok);
    // Not a timing assertion: mcpod checks every second; a minute is room.
    let gone = common::egress::eventually(Duration::from_secs(60), || {
        common::containers_of(&sessions[0]).is_empty()
    });
    assert!(gone, "client 0's session outlived its token");
    let others: Vec<String> = (1..CLIENTS).map(|i| i.to_string()).collect();
    let again = load.command(&format!("call {}", others.join(" ")));
    for (i, session) in sessions.iter().enumerate().skip(1) {
        sees_only_its_own(i, &again[i.to_string()], session);
    }
    let mut left = containers_by_session(pid);
    assert_eq!(left.remove(&sessions[0]), None);
    assert_eq!(left.len(), CLIENTS - 1, "{left:?}");

    // The 49 close cleanly; then SIGTERM leaves nothing.
    let ended = load.command("end");
    for i in 1..CLIENTS {
        assert_eq!(ended[i.to_string()]["closed"], true, "client {i}: {ended}");
    }
    drop(load);
    assert!(serve.stop().success());
    let left = containers_by_session(pid);
    assert!(left.is_empty(), "left after SIGTERM: {left:?}");
    for session in &sessions {
        assert_eq!(common::containers_of(session), Vec::<String>::new());
    }
}
