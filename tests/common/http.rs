//! `mcpod serve --listen 127.0.0.1:0` for the HTTP tests (tests/http_*.rs):
//! the process, its tokens, the Python SDK clients in tests/interop and raw
//! requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::host::HostLock;

/// A Python with the `mcp` 1.x SDK (the scripts in tests/interop use its
/// API): $MCPOD_TEST_PYTHON, else the venv tests/interop/run makes.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MCPOD_TEST_PYTHON") {
        return p.into();
    }
    let p = interop().join(".venv-mcp1").join("bin/python");
    if p.exists() {
        return p;
    }
    panic!(
        "no Python with the mcp SDK: run tests/interop/run once (it makes tests/interop/.venv-mcp1), or set MCPOD_TEST_PYTHON"
    );
}

/// tests/interop, where the Python clients are.
pub fn interop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// `mcpod serve --listen 127.0.0.1:0` with its own state directory.
pub struct Serve {
    pub child: Child,
    pub port: u16,
    pub state: tempfile::TempDir,
    pub log: mpsc::Receiver<String>,
    /// Held shared while this mcpod runs (see [`HostLock`]).
    _host: HostLock,
}

impl Serve {
    pub fn start() -> Serve {
        Self::start_with(&[])
    }

    /// `mcpod serve --listen 127.0.0.1:0 --root examples EXTRA...`.
    pub fn start_with(extra: &[&str]) -> Serve {
        Self::start_at("127.0.0.1:0", extra)
    }

    /// `mcpod serve --listen LISTEN --root examples EXTRA...`; `port` is 0
    /// for a unix socket.
    pub fn start_at(listen: &str, extra: &[&str]) -> Serve {
        let host = HostLock::shared();
        let state = tempfile::tempdir().expect("state dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcpod"))
            .args(["serve", "--listen", listen, "--root"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"))
            .args(extra)
            .env("MCPOD_STATE_DIR", state.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mcpod serve starts");
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("mcpod: {line}");
                let _ = tx.send(line);
            }
        });
        let port = loop {
            let line = log
                .recv_timeout(Duration::from_secs(30))
                .expect("mcpod names its port");
            if let Some(rest) = line
                .split("serving MCP over HTTP on http://127.0.0.1:")
                .nth(1)
            {
                break rest.split('/').next().unwrap().parse().expect("a port");
            }
            if line.contains("serving MCP over HTTP on unix:") {
                break 0;
            }
        };
        Serve {
            child,
            port,
            state,
            log,
            _host: host,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn token(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
            .arg("token")
            .args(args)
            .env("MCPOD_STATE_DIR", self.state.path())
            .output()
            .expect("mcpod token runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    }

    pub fn create(&self, name: &str) -> String {
        let (ok, token) = self.token(&["create", name]);
        assert!(
            ok && token.starts_with("mcpod_"),
            "token create {name}: {token}"
        );
        token
    }

    /// One Python SDK client run (see tests/interop/http_client.py).
    pub fn client(&self, token: &str, step: &str, arg: Option<&str>) -> Value {
        self.client_with(token, step, arg, &[])
    }

    /// [`Serve::client`] with more environment (e.g. its OAuth client's).
    pub fn client_with(
        &self,
        token: &str,
        step: &str,
        arg: Option<&str>,
        env: &[(&str, &str)],
    ) -> Value {
        let mut command = Command::new(python());
        command
            .arg(interop().join("http_client.py"))
            .args([&self.url(), token, step])
            .envs(env.iter().copied());
        command.args(arg);
        let out = command.output().expect("python runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "http_client.py {step}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim()).expect("JSON from http_client.py")
    }

    /// A raw request (`head` without the request line's end); the status
    /// line and headers, or what happened instead.
    pub fn raw(&self, head: &str, body: &str) -> String {
        let request = format!(
            "POST /mcp HTTP/1.1\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\n{head}\r\n{body}",
            body.len()
        );
        self.send(&request, false)
    }

    /// A GET of `path` with `head`: the whole answer (the server closes).
    pub fn get(&self, path: &str, head: &str) -> String {
        self.get_with("GET", path, head)
    }

    /// A bodiless `method` request of `path` with `head`: the whole answer.
    pub fn get_with(&self, method: &str, path: &str, head: &str) -> String {
        self.send(
            &format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n{head}\r\n"),
            true,
        )
    }

    /// Send `request`; read the answer's head, or all of it when `whole`.
    fn send(&self, request: &str, whole: bool) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let _ = stream.write_all(request.as_bytes());
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if !whole && answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Err(e) if answer.is_empty() => return format!("error: {e}"),
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&answer).to_string()
    }

    pub fn host(&self) -> String {
        format!("host: 127.0.0.1:{}\r\n", self.port)
    }

    /// SIGTERM, and wait for it to end.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("mcpod ends");
        while self.log.try_recv().is_ok() {}
        status
    }
}

impl Drop for Serve {
    /// On a failed assertion too: SIGTERM, so mcpod removes its containers,
    /// then SIGKILL if it has not ended within a minute.
    fn drop(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        end_within(&mut self.child, Duration::from_secs(60));
    }
}

/// Wait up to `within` for `child` to end, then kill it.
pub fn end_within(child: &mut Child, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// An HTTP answer's status line.
/// The `Mcp-Session-Id` an answer's head gives.
pub fn session_id(answer: &str) -> String {
    answer
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("mcp-session-id: ")
                .map(str::to_string)
        })
        .expect("a session id")
}

pub fn status(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}
