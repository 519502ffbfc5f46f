//! A JSON-RPC line client for the real mcpod binary.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::host::HostLock;

/// Request ids [`Server::detail_of`] adds to the launch's, apart from a test's own.
pub const DETAIL_IDS: u64 = 1_000_000;

pub struct Server {
    pub child: Child,
    /// Held shared while this mcpod runs (see [`HostLock`]); `None` when the
    /// test holds it exclusively itself.
    _host: Option<HostLock>,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    /// Notifications seen while waiting for responses.
    pub notifications: Vec<Value>,
    /// Where mcpod's stderr goes, for a server started with [`Server::start_logged`].
    pub stderr: Option<tempfile::NamedTempFile>,
}

impl Server {
    pub fn start(root: &std::path::Path) -> Server {
        Self::start_with(root, &[])
    }

    /// Start `mcpod serve --root ROOT EXTRA...`.
    pub fn start_with(root: &std::path::Path, extra: &[&str]) -> Server {
        Self::start_env(root, extra, &[])
    }

    /// Start `mcpod serve --root ROOT EXTRA...` with extra environment variables.
    pub fn start_env(root: &std::path::Path, extra: &[&str], env: &[(&str, String)]) -> Server {
        Self::spawn(root, extra, env, Some(HostLock::shared()))
    }

    /// Start `mcpod serve --root . EXTRA...` in ROOT, as a user does in their
    /// workspace, with extra environment variables.
    pub fn start_in_root(root: &std::path::Path, extra: &[&str], env: &[(&str, String)]) -> Server {
        Self::spawn_to(
            std::path::Path::new("."),
            extra,
            env,
            Some(HostLock::shared()),
            None,
            Some(root),
        )
    }

    /// Start `mcpod serve --root ROOT EXTRA...` with its stderr kept in a file.
    pub fn start_logged(root: &std::path::Path, extra: &[&str]) -> Server {
        let file = tempfile::NamedTempFile::new().expect("stderr file");
        let mut server = Self::spawn_to(
            root,
            extra,
            &[],
            Some(HostLock::shared()),
            Some(&file),
            None,
        );
        server.stderr = Some(file);
        server
    }

    /// Bytes mcpod has written to stderr (a server from [`Server::start_logged`]).
    pub fn stderr_text(&self) -> String {
        let path = self
            .stderr
            .as_ref()
            .expect("started with start_logged")
            .path();
        std::fs::read_to_string(path).expect("read stderr")
    }

    /// Start `mcpod serve --root ROOT EXTRA...` for a test that holds
    /// [`HostLock::exclusive`] itself.
    pub fn start_holding_host(root: &std::path::Path, extra: &[&str]) -> Server {
        Self::spawn(root, extra, &[], None)
    }

    fn spawn(
        root: &std::path::Path,
        extra: &[&str],
        env: &[(&str, String)],
        host: Option<HostLock>,
    ) -> Server {
        Self::spawn_to(root, extra, env, host, None, None)
    }

    /// Start `mcpod serve --root ROOT` (stderr kept as with
    /// [`Server::start_logged`]) with its stdin and stdout given to the
    /// test as they are: nothing reads its stdout until the test does.
    pub fn start_unread(root: &std::path::Path) -> (Server, ChildStdin, ChildStdout) {
        let file = tempfile::NamedTempFile::new().expect("stderr file");
        let mut child = Self::command(root, &[], &[], Some(&file))
            .spawn()
            .expect("mcpod starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let server = Server {
            child,
            _host: Some(HostLock::shared()),
            stdin: None,
            lines: std::sync::mpsc::channel().1,
            notifications: Vec::new(),
            stderr: Some(file),
        };
        (server, stdin, stdout)
    }

    fn command(
        root: &std::path::Path,
        extra: &[&str],
        env: &[(&str, String)],
        stderr: Option<&tempfile::NamedTempFile>,
    ) -> Command {
        let stderr = match stderr {
            Some(f) => Stdio::from(f.reopen().expect("reopen the stderr file")),
            None => Stdio::null(),
        };
        let mut command = Command::new(env!("CARGO_BIN_EXE_mcpod"));
        command
            .args(["serve", "--root"])
            .arg(root)
            .args(extra)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        command
    }

    /// A memory field of mcpod's /proc status (`VmRSS:`, `VmHWM:`), in MiB.
    pub fn memory_mib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("mcpod's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .map(|kb| kb / 1024)
            .unwrap_or_else(|| panic!("no {field} in mcpod's /proc status"))
    }

    fn spawn_to(
        root: &std::path::Path,
        extra: &[&str],
        env: &[(&str, String)],
        host: Option<HostLock>,
        stderr: Option<&tempfile::NamedTempFile>,
        cwd: Option<&std::path::Path>,
    ) -> Server {
        let mut command = Self::command(root, extra, env, stderr);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let mut child = command.spawn().expect("mcpod starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Every stdout line must be JSON-RPC: stdout is the protocol.
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("non-JSON on stdout ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            _host: host,
            stdin: Some(stdin),
            lines,
            notifications: Vec::new(),
            stderr: None,
        }
    }

    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
    }

    /// Close stdin (the client goes away) and wait for mcpod to exit.
    pub fn close(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.stdin.take();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Answer a request of mcpod's (one `wait_notification` returned).
    pub fn reply(&mut self, request: &Value, result: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": request["id"], "result": result}));
    }

    /// Wait for a notification (or a request of mcpod's) with `method` (seen
    /// before, or arriving within `within`).
    pub fn wait_notification(&mut self, method: &str, within: Duration) -> Option<Value> {
        if let Some(i) = self
            .notifications
            .iter()
            .position(|n| n["method"] == method)
        {
            return Some(self.notifications.remove(i));
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(msg) if msg["method"] == method => return Some(msg),
                Ok(msg) => self.notifications.push(msg),
                Err(_) => return None,
            }
        }
    }

    /// The next message mcpod writes, if one comes within `within`.
    pub fn next_message(&mut self, within: Duration) -> Option<Value> {
        self.lines.recv_timeout(within).ok()
    }

    pub fn send(&mut self, message: Value) {
        self.send_raw(&message.to_string());
    }

    /// Send a request and wait for the response with its id.
    pub fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(id)
    }

    pub fn response(&mut self, id: u64) -> Value {
        // A guard against a hang, not a timing: a launch that provisions for
        // the first time on a loaded machine has taken past 120 s.
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(msg) if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() => {
                    return msg;
                }
                // A notification, or a request of mcpod's (kept for wait_notification).
                Ok(msg) if msg.get("method").is_some() => self.notifications.push(msg),
                Ok(other) => panic!("unexpected message while waiting for {id}: {other}"),
                Err(RecvTimeoutError::Timeout) => panic!("no response to request {id}"),
                Err(RecvTimeoutError::Disconnected) => panic!("mcpod exited before answering {id}"),
            }
        }
    }

    /// Wait for the responses to every id in `ids`, in whatever order they
    /// arrive (for requests sent without waiting); by id.
    pub fn responses(
        &mut self,
        ids: &[u64],
        within: Duration,
    ) -> std::collections::BTreeMap<u64, Value> {
        let mut got = std::collections::BTreeMap::new();
        let deadline = Instant::now() + within;
        while got.len() < ids.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(msg) if msg.get("method").is_some() => self.notifications.push(msg),
                Ok(msg) => match msg.get("id").and_then(Value::as_u64) {
                    Some(id) if ids.contains(&id) && !got.contains_key(&id) => {
                        got.insert(id, msg);
                    }
                    _ => panic!("unexpected message while waiting for {ids:?}: {msg}"),
                },
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no response to {:?} within {within:?}",
                    ids.iter()
                        .filter(|i| !got.contains_key(i))
                        .collect::<Vec<_>>()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("mcpod exited before answering all of {ids:?}")
                }
            }
        }
        got
    }

    /// The names `tools/list` gives now.
    pub fn tool_names(&mut self, id: u64) -> Vec<String> {
        let list = self.request(id, "tools/list", json!({}));
        list["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools/list: {list}"))
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect()
    }

    /// A session's whole detail, `list_sessions {"session": ID}` under
    /// request id `id` (launch_session answers with less: see src/budget.rs).
    pub fn detail(&mut self, id: u64, session: &str) -> Value {
        let listed = self.call(id, "list_sessions", json!({"session": session}));
        let detail = listed["structuredContent"]["detail"].clone();
        assert!(detail.is_object(), "list_sessions of {session}: {listed}");
        detail
    }

    /// The detail of the session a launch_session result names, asked under
    /// request id `id + DETAIL_IDS`; the result itself when it is an error.
    pub fn detail_of(&mut self, id: u64, launched: &Value) -> Value {
        match launched["structuredContent"]["session"].as_str() {
            Some(session) if launched["isError"] != true => {
                let session = session.to_string();
                self.detail(id + DETAIL_IDS, &session)
            }
            _ => launched.clone(),
        }
    }

    /// launch_session, then its session's whole detail (see [`Self::detail_of`]);
    /// panics when the launch failed.
    pub fn launch_detail(&mut self, id: u64, arguments: Value) -> Value {
        let launched = self.call(id, "launch_session", arguments);
        assert_ne!(
            launched["isError"],
            true,
            "launch_session: {}",
            text_of(&launched)
        );
        self.detail_of(id, &launched)
    }

    pub fn call(&mut self, id: u64, tool: &str, arguments: Value) -> Value {
        let response = self.request(
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        );
        response["result"].clone()
    }
}

impl Drop for Server {
    /// Like a client going away: close stdin and let mcpod clean up, then kill.
    fn drop(&mut self) {
        if self.close(Duration::from_secs(15)).is_none() {
            eprintln!("mcpod did not exit within 15 s of stdin EOF; killing it");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn initialize(server: &mut Server, version: &str) -> Value {
    initialize_with(server, version, json!({}))
}

/// `initialize` declaring `capabilities`.
pub fn initialize_with(server: &mut Server, version: &str, capabilities: Value) -> Value {
    let init = server.request(
        0,
        "initialize",
        json!({
            "protocolVersion": version,
            "capabilities": capabilities,
            "clientInfo": {"name": "mcpod-test", "version": "0"}
        }),
    );
    server.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    init
}

pub fn text_of(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Start a client-config entry (`mcpod connect …`) as a client would, with
/// `env` added, call `tool` with `arguments` through it, and end it; the
/// call's result. The connection must exit 0.
pub fn call_through_config(
    entry: &Value,
    env: &[(&str, &str)],
    tool: &str,
    arguments: &Value,
) -> Value {
    use std::io::{BufRead, BufReader, Write};
    let mut child = std::process::Command::new(entry["command"].as_str().expect("command"))
        .args(
            entry["args"]
                .as_array()
                .expect("args")
                .iter()
                .filter_map(Value::as_str),
        )
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the client config's command starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    for message in [
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"}}}),
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}}),
    ] {
        writeln!(stdin, "{message}").expect("write");
    }
    let mut reply = Value::Null;
    for line in lines {
        let v: Value = serde_json::from_str(&line.expect("line")).expect("JSON");
        if v["id"] == 2 {
            reply = v["result"].clone();
            break;
        }
    }
    drop(stdin);
    let status = child.wait().expect("the connection ends");
    assert!(status.success(), "the connection exited with {status}");
    reply
}
