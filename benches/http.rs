//! `mcpod serve --listen`: what MCP over HTTP costs against stdio, in one run.
//!
//! ```text
//! scripts/build-hello --release && cargo bench --bench http
//! ```
//!
//! (a) The latency HTTP adds to a proxied call: one release `mcpod serve` on
//! stdio and one on `--listen 127.0.0.1:0`, each with a session of the hello
//! image (the release hello-server, as `benches/calls.rs` calls it), the
//! session's `greet` called N times each way, interleaved in blocks: on
//! stdio as an agent calls it (mcpod's pass-through, `server/fast.rs`), on
//! stdio with one more `_meta` key (which the pass-through leaves to rmcp,
//! the path every call over HTTP takes), and over HTTP. Medians, p90 and
//! p99, the time HTTP adds and the ratios, and mcpod's CPU time per call.
//! Both clients are raw, so neither side pays for a client library: JSON
//! lines on the stdio mcpod's pipes, and HTTP/1.1 over one kept-alive
//! TcpStream (an answer read as JSON or as the SSE stream rmcp answers
//! with). rmcp's streamable-HTTP client is not enabled in this crate (only
//! its server side is), hence the raw client.
//!
//! (b) Memory per connected client: the VmRSS of a fresh `mcpod serve
//! --listen` with no client, with one, and with 50, each initialized (its
//! `Mcp-Session-Id` held, `tools/list` asked) and holding its standalone SSE
//! stream open on a second connection, as the SDKs' clients do; (RSS
//! delta)/50.
//!
//! Timings are printed, never asserted. Without `--bench` (as under `cargo
//! test --benches`) it runs a tiny smoke version with the debug hello image.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    Error, Pids, RELEASE_HELLO, cpu_ns, median, pct, release_context, row_us, rss_kib, run_bench,
    us,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const INIT_PARAMS: &str = r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"http-bench","version":"0"}}"#;

struct Plan {
    full: bool,
    calls: usize,
    block: usize,
    warmup: usize,
    clients: usize,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            full,
            calls: 2000,
            block: 100,
            warmup: 200,
            clients: 50,
        }
    } else {
        Plan {
            full,
            calls: 20,
            block: 10,
            warmup: 5,
            clients: 3,
        }
    };
    run_bench("http", |pids| async move { run(&plan, &pids).await });
}

fn binary() -> String {
    std::env::var("MCPOD_BENCH_BIN").unwrap_or_else(|_| support::MCPOD.to_string())
}

async fn run(plan: &Plan, pids: &Pids) -> Result<(), Error> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = tempfile::tempdir()?;
    let mut listening = Listening::start(repo, state.path()).await?;
    pids.push(listening.pid);
    let token = create_token(state.path())?;
    println!(
        "http bench: {} calls each way in blocks of {} after {} warm-up calls; {} clients held",
        plan.calls, plan.block, plan.warmup, plan.clients
    );
    // (b) first, on the fresh process: nothing else has grown its heap.
    let memory = memory(plan, listening.port, &token, listening.pid).await?;

    let mut stdio = Lines::start(repo).await?;
    pids.push(stdio.pid);
    stdio
        .request("initialize", serde_json::from_str(INIT_PARAMS)?)
        .await?;
    stdio.notify("notifications/initialized").await?;
    let release = plan.full.then_some(RELEASE_HELLO);
    let context = release_context(repo, "examples/hello", "hello", release)?;
    let built = stdio
        .tool(
            "build_image",
            json!({"name": "localhost/mcpod-hello", "context": context}),
        )
        .await?;
    let image = built["tag"]
        .as_str()
        .ok_or("build_image: no tag")?
        .to_string();
    let launch = json!({"image": image});
    let stdio_session = session_of(&stdio.tool("launch_session", launch.clone()).await?)?;
    let mut http = Http::connect(listening.port, &token).await?;
    http.initialize().await?;
    let http_session = session_of(&http.tool("launch_session", launch).await?)?;

    let on_stdio = format!("{stdio_session}_hello__greet");
    let ways = [
        Way {
            tool: on_stdio.clone(),
            pid: stdio.pid,
            meta: false,
        },
        Way {
            tool: on_stdio,
            pid: stdio.pid,
            meta: true,
        },
        Way {
            tool: format!("{http_session}_hello__greet"),
            pid: listening.pid,
            meta: false,
        },
    ];
    let (samples, cpu) = latency(plan, &mut stdio, &mut http, &ways).await?;
    report_latency(plan, &context, &samples, &cpu);
    report_memory(plan, &memory);
    http.tool("stop_session", json!({"session": http_session}))
        .await?;
    stdio
        .tool("stop_session", json!({"session": stdio_session}))
        .await?;
    stdio.close().await;
    listening.stop().await;
    Ok(())
}

fn session_of(structured: &Value) -> Result<String, Error> {
    Ok(structured["session"]
        .as_str()
        .ok_or_else(|| format!("launch_session: no session in {structured}"))?
        .to_string())
}

/// One way to call: the proxied tool, the mcpod whose CPU it costs, and
/// whether the call carries a `_meta` key, which mcpod's stdio
/// pass-through (`server/fast.rs`) leaves to rmcp.
struct Way {
    tool: String,
    pid: u32,
    meta: bool,
}

/// The ways, in [`latency`]'s order.
const WAYS: usize = 3;

/// Samples of each way (stdio, stdio through rmcp, HTTP) and each one's
/// mcpod CPU time in ns.
async fn latency(
    plan: &Plan,
    stdio: &mut Lines,
    http: &mut Http,
    ways: &[Way; WAYS],
) -> Result<([Vec<Duration>; WAYS], [u64; WAYS]), Error> {
    for i in 0..plan.warmup {
        greet(&mut *stdio, &ways[0], i).await?;
        greet(&mut *stdio, &ways[1], i).await?;
        greet(&mut *http, &ways[2], i).await?;
    }
    let mut samples: [Vec<Duration>; WAYS] = Default::default();
    let mut cpu = [0u64; WAYS];
    let mut done = 0;
    while done < plan.calls {
        let n = plan.block.min(plan.calls - done);
        for (w, way) in ways.iter().enumerate() {
            let before = cpu_ns(way.pid);
            for i in done..done + n {
                let started = Instant::now();
                match w {
                    0 | 1 => greet(&mut *stdio, way, i).await?,
                    _ => greet(&mut *http, way, i).await?,
                }
                samples[w].push(started.elapsed());
            }
            cpu[w] += cpu_ns(way.pid).saturating_sub(before);
        }
        done += n;
    }
    for s in &mut samples {
        s.sort();
    }
    Ok((samples, cpu))
}

/// A client that sends a JSON-RPC request and returns its response.
trait Rpc {
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, Error>;

    /// `tools/call` of `tool`: its structured content; an error result is an error.
    async fn tool(&mut self, tool: &str, arguments: Value) -> Result<Value, Error> {
        let answer = self
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await?;
        let result = &answer["result"];
        if result.is_null() || result["isError"] == true {
            return Err(format!("{tool}: {answer}").into());
        }
        Ok(result["structuredContent"].clone())
    }
}

/// One call of `greet` the way `way` says, its answer checked.
async fn greet(client: &mut impl Rpc, way: &Way, i: usize) -> Result<(), Error> {
    let name = format!("b{i}");
    let mut params = json!({"name": way.tool, "arguments": {"name": name}});
    if way.meta {
        params["_meta"] = json!({"io.mcpod.bench/path": "rmcp"});
    }
    let answer = client.request("tools/call", params).await?;
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("");
    if text != format!("Hello, {name}!") {
        return Err(format!("{} answered {answer}", way.tool).into());
    }
    Ok(())
}

fn report_latency(plan: &Plan, context: &str, samples: &[Vec<Duration>; WAYS], cpu: &[u64; WAYS]) {
    let [stdio, rmcp, http] = samples;
    println!();
    println!(
        "proxied tools/call, hello greet (N={} each; image from {context})   median        p90        p99        max",
        plan.calls
    );
    row_us("   mcpod serve on stdio (its pass-through)", stdio);
    row_us("   mcpod serve on stdio, rmcp path (extra _meta)", rmcp);
    row_us("   mcpod serve --listen (HTTP/1.1, rmcp)", http);
    let median_of = |s: &[Duration]| us(median(s));
    let p99 = |s: &[Duration]| us(pct(s, 99.0));
    let cpu_per = |w: usize| cpu[w] as f64 / 1e3 / samples[w].len() as f64;
    let (m_stdio, m_rmcp, m_http) = (median_of(stdio), median_of(rmcp), median_of(http));
    println!(
        "   HTTP adds {:.0} us at the median to stdio's call ({:.2}x), {:.0} us at p99; {:.0} us to stdio's rmcp path ({:.2}x)",
        m_http - m_stdio,
        m_http / m_stdio,
        p99(http) - p99(stdio),
        m_http - m_rmcp,
        m_http / m_rmcp
    );
    println!(
        "   mcpod CPU per call: {:.0} us on stdio, {:.0} us on stdio's rmcp path, {:.0} us over HTTP",
        cpu_per(0),
        cpu_per(1),
        cpu_per(2)
    );
    println!(
        "perf-row {}",
        json!({
            "what": "proxied call over HTTP (`mcpod serve --listen`), hello `greet`, raw clients, median",
            "mcpod": format!("{m_http:.0} µs (p99 {:.0}); {:.0} µs CPU a call", p99(http), cpu_per(2)),
            "baseline": format!("the same call on stdio: {m_stdio:.0} µs (p99 {:.0}), {:.0} µs CPU; on stdio's rmcp path: {m_rmcp:.0} µs, {:.0} µs CPU", p99(stdio), cpu_per(0), cpu_per(1)),
            "result": format!("+{:.0} µs, {:.2}x stdio; +{:.0} µs, {:.2}x its rmcp path", m_http - m_stdio, m_http / m_stdio, m_http - m_rmcp, m_http / m_rmcp),
            "target": "",
        })
    );
}

/// VmRSS of the listening mcpod: with no client, one, and `plan.clients`.
struct Memory {
    none: u64,
    one: u64,
    all: u64,
}

/// Connect `plan.clients` clients to the mcpod on `port`, each initialized
/// and holding its SSE stream; the RSS with none, the first, and all.
async fn memory(plan: &Plan, port: u16, token: &str, pid: u32) -> Result<Memory, Error> {
    let settle = || tokio::time::sleep(Duration::from_millis(500));
    settle().await;
    let none = rss_kib(pid)?;
    let mut held = vec![Held::connect(port, token).await?];
    settle().await;
    let one = rss_kib(pid)?;
    while held.len() < plan.clients {
        held.push(Held::connect(port, token).await?);
    }
    settle().await;
    let all = rss_kib(pid)?;
    drop(held);
    Ok(Memory { none, one, all })
}

fn report_memory(plan: &Plan, m: &Memory) {
    let n = plan.clients as f64;
    let per = (m.all as f64 - m.none as f64) / n;
    let per_after_one = (m.all as f64 - m.one as f64) / (n - 1.0);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!();
    println!(
        "mcpod serve --listen VmRSS: {:.1} MiB with no client, {:.1} MiB with one, {:.1} MiB with {} (each initialized, its SSE stream open)",
        mib(m.none),
        mib(m.one),
        mib(m.all),
        plan.clients
    );
    println!(
        "   {per:.0} KiB per client counted from none, {per_after_one:.0} KiB per client counted from the first"
    );
    println!(
        "perf-row {}",
        json!({
            "what": format!("memory per connected HTTP client ({} held: initialized, `Mcp-Session-Id` kept, SSE stream open)", plan.clients),
            "mcpod": format!("{per:.0} KiB a client ((RSS with {} − RSS with none) / {}); {per_after_one:.0} KiB counted from the first", plan.clients, plan.clients),
            "baseline": format!("`mcpod serve --listen` with no client: {:.1} MiB, with one: {:.1} MiB", mib(m.none), mib(m.one)),
            "result": format!("{:.1} MiB with {}", mib(m.all), plan.clients),
            "target": "",
        })
    );
}

/// `mcpod token create bench` in `state`: the token.
fn create_token(state: &Path) -> Result<String, Error> {
    let out = std::process::Command::new(binary())
        .args(["token", "create", "bench"])
        .env("MCPOD_STATE_DIR", state)
        .output()?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !token.starts_with("mcpod_") {
        return Err(format!(
            "mcpod token create: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(token)
}

/// `mcpod serve --listen 127.0.0.1:0`, its state in `state`.
struct Listening {
    child: Child,
    pid: u32,
    port: u16,
}

impl Listening {
    async fn start(repo: &Path, state: &Path) -> Result<Listening, Error> {
        let mut child = Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(repo)
            .env("MCPOD_STATE_DIR", state)
            .env("MCPOD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("mcpod serve --listen has no pid")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let port = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .map_err(|_| "mcpod serve --listen named no port within 30 s")??
                .ok_or("mcpod serve --listen ended before naming its port")?;
            if let Some(rest) = line
                .split("serving MCP over HTTP on http://127.0.0.1:")
                .nth(1)
            {
                break rest.split('/').next().unwrap_or("").parse::<u16>()?;
            }
        };
        // Its later lines are read and dropped, so it never blocks on stderr.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Listening { child, pid, port })
    }

    /// SIGTERM (it removes its containers), and wait.
    async fn stop(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let _ = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await;
    }
}

/// `mcpod serve --root REPO` on stdio, JSON lines both ways.
struct Lines {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Lines {
    async fn start(repo: &Path) -> Result<Lines, Error> {
        let mut child = Command::new(binary())
            .arg("serve")
            .arg("--root")
            .arg(repo)
            .env("MCPOD_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("mcpod serve has no pid")?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        Ok(Lines {
            child,
            pid,
            stdin,
            stdout,
            next_id: 0,
        })
    }

    async fn notify(&mut self, method: &str) -> Result<(), Error> {
        let line = json!({"jsonrpc": "2.0", "method": method}).to_string() + "\n";
        self.stdin.write_all(line.as_bytes()).await?;
        Ok(())
    }

    /// Close its stdin (it removes its containers and ends), and wait.
    async fn close(mut self) {
        let _ = self.stdin.shutdown().await;
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await;
    }
}

impl Rpc for Lines {
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        self.next_id += 1;
        let id = self.next_id;
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            .to_string()
            + "\n";
        self.stdin.write_all(line.as_bytes()).await?;
        let mut answer = String::new();
        loop {
            answer.clear();
            if self.stdout.read_line(&mut answer).await? == 0 {
                return Err(format!("mcpod serve ended before answering {method}").into());
            }
            let message: Value = serde_json::from_str(&answer)?;
            if message["id"] == id {
                return Ok(message);
            }
        }
    }
}

/// A raw HTTP/1.1 client of mcpod's MCP endpoint on one kept-alive connection.
struct Http {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    port: u16,
    token: String,
    session: Option<String>,
    next_id: u64,
}

/// A response's status and its headers (names in lower case).
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Http {
    async fn connect(port: u16, token: &str) -> Result<Http, Error> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        Ok(Http {
            reader: BufReader::new(read),
            writer,
            port,
            token: token.to_string(),
            session: None,
            next_id: 0,
        })
    }

    /// `initialize`, its session id kept, and `notifications/initialized`.
    async fn initialize(&mut self) -> Result<(), Error> {
        self.request("initialize", serde_json::from_str(INIT_PARAMS)?)
            .await?;
        if self.session.is_none() {
            return Err("initialize: no Mcp-Session-Id".into());
        }
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.exchange("notifications/initialized", &note.to_string(), 202)
            .await?;
        Ok(())
    }

    /// The request line and headers every request carries.
    fn head_of(&self, method: &str, accept: &str) -> String {
        let mut head = format!(
            "{method} /mcp HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nauthorization: Bearer {}\r\naccept: {accept}\r\n",
            self.port, self.token
        );
        if let Some(id) = &self.session {
            head.push_str(&format!(
                "mcp-session-id: {id}\r\nmcp-protocol-version: 2025-06-18\r\n"
            ));
        }
        head
    }

    /// POST `body` (a message `what` names), read the whole answer, keep
    /// the session id it gives; an answer other than `want` is an error.
    async fn exchange(
        &mut self,
        what: &str,
        body: &str,
        want: u16,
    ) -> Result<(Head, Vec<u8>), Error> {
        let request = format!(
            "{}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.head_of("POST", "application/json, text/event-stream"),
            body.len()
        );
        self.writer.write_all(request.as_bytes()).await?;
        let head = read_head(&mut self.reader).await?;
        if let Some(session) = head.get("mcp-session-id") {
            self.session = Some(session.to_string());
        }
        let body = read_body(&mut self.reader, &head).await?;
        if head.status != want {
            return Err(format!(
                "{what}: HTTP {}: {}",
                head.status,
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        Ok((head, body))
    }
}

impl Rpc for Http {
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (head, body) = self.exchange(method, &body.to_string(), 200).await?;
        let text = String::from_utf8(body)?;
        if head
            .get("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            return Ok(serde_json::from_str(&text)?);
        }
        // An SSE stream: the event whose data is the response.
        for data in text.split("\n\n").filter_map(|event| {
            let lines: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        }) {
            if let Ok(message) = serde_json::from_str::<Value>(&data)
                && message["id"] == id
            {
                return Ok(message);
            }
        }
        Err(format!("{method}: no response in {text:?}").into())
    }
}

async fn read_head(reader: &mut BufReader<OwnedReadHalf>) -> Result<Head, Error> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Err("mcpod closed the connection".into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("not a status line: {line:?}"))?
        .parse()?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    Ok(Head { status, headers })
}

/// The whole body of a response (content-length or chunked).
async fn read_body(reader: &mut BufReader<OwnedReadHalf>, head: &Head) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    if let Some(length) = head.get("content-length") {
        body.resize(length.parse()?, 0);
        reader.read_exact(&mut body).await?;
        return Ok(body);
    }
    if !head
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        return Ok(body);
    }
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                reader.read_line(&mut line).await?;
                if line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).await?;
    }
}

/// A client as the SDKs hold one: initialized, `tools/list` asked, its
/// standalone SSE stream (GET) open on a second connection.
struct Held {
    _rpc: Http,
    _stream: TcpStream,
}

impl Held {
    async fn connect(port: u16, token: &str) -> Result<Held, Error> {
        let mut rpc = Http::connect(port, token).await?;
        rpc.initialize().await?;
        let tools = rpc.request("tools/list", json!({})).await?;
        if tools["result"]["tools"]
            .as_array()
            .is_none_or(|t| t.is_empty())
        {
            return Err(format!("tools/list: {tools}").into());
        }
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let get = rpc.head_of("GET", "text/event-stream") + "\r\n";
        stream.write_all(get.as_bytes()).await?;
        // Its head: 200 and an event stream, which stays open.
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await?;
        let head = String::from_utf8_lossy(&buf[..n]);
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("GET /mcp: {head}").into());
        }
        Ok(Held {
            _rpc: rpc,
            _stream: stream,
        })
    }
}
