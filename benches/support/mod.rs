//! What the benches that drive `mcpod serve` share: starting it and other MCP
//! servers under an rmcp client, calling tools, reading a process's CPU time
//! and memory, and the statistics and rows they print. Included with
//! `#[path = "support/mod.rs"] mod support;` (a bench is its own crate).
#![allow(dead_code)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientLifecycleMode, ClientServiceExt, Peer, RoleClient};
use serde_json::Value;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Client = RunningService<RoleClient, ()>;

pub const MCPOD: &str = env!("CARGO_BIN_EXE_mcpod");

/// Start `mcpod serve --root REPO EXTRA...` (or `MCPOD_BENCH_BIN`'s) under
/// an rmcp client: the client, its pid, and the handshake's time.
pub async fn serve(
    repo: &std::path::Path,
    extra: &[String],
) -> Result<(Client, u32, Duration), Error> {
    serve_as(repo, extra, ClientLifecycleMode::Initialize).await
}

/// [`serve`], the client greeting mcpod as `lifecycle` says (`Discover`: a
/// 2026-07-28 client, whose every request carries its own `_meta`).
pub async fn serve_as(
    repo: &std::path::Path,
    extra: &[String],
    lifecycle: ClientLifecycleMode,
) -> Result<(Client, u32, Duration), Error> {
    let binary = std::env::var("MCPOD_BENCH_BIN").unwrap_or_else(|_| MCPOD.to_string());
    let mut command = tokio::process::Command::new(&binary);
    command
        .arg("serve")
        .arg("--root")
        .arg(repo)
        .args(extra)
        .env("MCPOD_LOG", "warn");
    let transport = TokioChildProcess::new(command)?;
    let pid = transport.id().ok_or("mcpod serve has no pid")?;
    let started = Instant::now();
    let client = ().serve_with_lifecycle(transport, lifecycle).await?;
    Ok((client, pid, started.elapsed()))
}

/// An MCP client on `command`'s stdio; a failure quotes its stderr.
pub async fn connect(command: tokio::process::Command) -> Result<Client, Error> {
    connect_as(command, ClientLifecycleMode::Initialize, ()).await
}

/// [`connect`], greeting the server as `lifecycle` says, as `handler`
/// (`()`, or a `ClientConfig` that declares capabilities).
pub async fn connect_as<H: rmcp::ClientHandler>(
    command: tokio::process::Command,
    lifecycle: ClientLifecycleMode,
    handler: H,
) -> Result<RunningService<RoleClient, H>, Error> {
    let shown = format!("{:?}", command.as_std());
    let (transport, stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::piped())
        .spawn()?;
    let collected = tokio::spawn(async move {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        }
        text
    });
    match handler.serve_with_lifecycle(transport, lifecycle).await {
        Ok(client) => Ok(client),
        Err(e) => {
            let text = tokio::time::timeout(Duration::from_secs(5), collected)
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_default();
            Err(format!("{shown}: {e}; its stderr: {}", text.trim()).into())
        }
    }
}

/// Call `tool`; an error result is an error.
pub async fn call(
    client: &Peer<RoleClient>,
    tool: &str,
    arguments: Value,
) -> Result<CallToolResult, Error> {
    let Value::Object(arguments) = arguments else {
        return Err("arguments must be an object".into());
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await?;
    if result.is_error == Some(true) {
        return Err(format!("{tool} failed: {:?}", result.content).into());
    }
    Ok(result)
}

pub fn structured(result: &CallToolResult) -> Result<Value, Error> {
    result
        .structured_content
        .clone()
        .ok_or_else(|| "the tool returned no structured content".into())
}

/// CPU time of every thread of `pid` so far (/proc/PID/task/*/schedstat), in ns.
pub fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

pub fn status_field(pid: u32, field: &str) -> Result<String, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status").into())
}

pub fn status_kib(pid: u32, field: &str) -> Result<u64, Error> {
    let value = status_field(pid, field)?;
    Ok(value.trim_end_matches("kB").trim().parse()?)
}

pub fn rss_kib(pid: u32) -> Result<u64, Error> {
    status_kib(pid, "VmRSS:")
}

/// Nearest-rank percentile of sorted samples.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(sorted: &[Duration]) -> Duration {
    let n = sorted.len();
    if n == 0 {
        Duration::ZERO
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

pub fn row_ms(label: &str, sorted: &[Duration]) {
    println!(
        "{label:<48} {:>7.1} ms {:>7.1} ms {:>7.1} ms {:>7.1} ms",
        ms(median(sorted)),
        ms(pct(sorted, 90.0)),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1])
    );
}

pub fn row_us(label: &str, sorted: &[Duration]) {
    println!(
        "{label:<48} {:>7.0} us {:>7.0} us {:>7.0} us {:>7.0} us",
        us(median(sorted)),
        us(pct(sorted, 90.0)),
        us(pct(sorted, 99.0)),
        us(sorted[sorted.len() - 1])
    );
}

/// A row scripts/perf-table records into docs/performance.md's table.
pub fn perf_row(what: &str, mcpod: &str, baseline: &str, result: &str, target: &str) {
    println!(
        "perf-row {}",
        serde_json::json!({"what": what, "mcpod": mcpod, "baseline": baseline, "result": result, "target": target})
    );
}

pub fn verdict(holds: bool) -> &'static str {
    if holds { "HOLDS" } else { "MISSED" }
}

pub fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// `args` as one line a shell would take back.
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains(['"', ' ', '[']) {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The build context a full run uses for the fixture server `server` (its
/// context `context`, its release build at `release` under `repo`): with no
/// `release`, the context itself; else a copy of it under `target/bench/`
/// with the release build in place of the debug one the tests use. A debug
/// hello-server spends ~300 us of CPU a call, which on two cores swamps
/// mcpod's own cost (it reads as +100 us for a 2026-07-28 child).
pub fn release_context(
    repo: &std::path::Path,
    context: &str,
    server: &str,
    release: Option<&str>,
) -> Result<String, Error> {
    let Some(release) = release else {
        return Ok(context.to_string());
    };
    let built = repo.join(release);
    if !built.exists() {
        return Err(format!(
            "{} is missing: run scripts/build-hello --release",
            built.display()
        )
        .into());
    }
    let copy = format!("target/bench/{server}");
    let from = repo.join(context);
    let to = repo.join(&copy);
    std::fs::create_dir_all(to.join("bin"))?;
    for file in ["Containerfile", ".containerignore"] {
        std::fs::copy(from.join(file), to.join(file))?;
    }
    let binary = to.join(format!("bin/{server}-server"));
    // Copied only when it changed, so the build cache sees the same file.
    if std::fs::read(&binary).ok() != Some(std::fs::read(&built)?) {
        std::fs::copy(&built, &binary)?;
    }
    Ok(copy)
}

/// The release hello-server `scripts/build-hello --release` builds.
pub const RELEASE_HELLO: &str = "target/x86_64-unknown-linux-gnu/release/examples/hello_server";

/// The pids of the mcpods a bench starts (see [`run_bench`]).
#[derive(Clone, Default)]
pub struct Pids(std::sync::Arc<std::sync::Mutex<Vec<u32>>>);

impl Pids {
    pub fn push(&self, pid: u32) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
    }
}

/// Run bench `name`'s `body` on a multi-threaded runtime. Whatever happens,
/// every container the mcpods it noted in its [`Pids`] started is removed
/// after; a failure is printed (`NAME bench failed: ...`) and exits 1.
pub fn run_bench<F>(name: &str, body: impl FnOnce(Pids) -> F)
where
    F: std::future::Future<Output = Result<(), Error>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name} bench failed: {e}");
            std::process::exit(1);
        }
    };
    let pids = Pids::default();
    let result = rt.block_on(body(pids.clone()));
    let started = pids.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for pid in started {
        remove_containers_of(pid);
    }
    if let Err(e) = result {
        eprintln!("{name} bench failed: {e}");
        std::process::exit(1);
    }
}

/// Remove every container mcpod `pid` started (it does on a clean exit).
pub fn remove_containers_of(pid: u32) {
    let listed = std::process::Command::new("podman")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=io.mcpod.owner-pid={pid}"))
        .output();
    let ids: Vec<String> = listed
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if !ids.is_empty() {
        let _ = std::process::Command::new("podman")
            .args(["rm", "-f"])
            .args(&ids)
            .output();
    }
}

/// Split mcpod's `podman [GLOBAL...] run FLAGS... IMAGE` into what only an
/// owned session needs (its name, `io.mcpod.*` labels, cidfile, the
/// supervisor's mount and entrypoint, how its stream travels), the flags in
/// `also`, and the rest: (the rest of the flags, image). The benches run the
/// rest by hand as their baseline.
pub fn hardening_flags(create: &[String], also: &[&str]) -> (Vec<String>, String) {
    let run = create.iter().position(|a| a == "run").unwrap_or(1);
    let flags = &create[run + 1..create.len() - 1];
    let mut kept = Vec::new();
    let mut skip_next = false;
    for f in flags {
        if skip_next {
            skip_next = false;
        } else if f == "--name" || f == "--cidfile" {
            skip_next = true;
        } else if !(f.starts_with("--name=")
            || f.starts_with("--cidfile=")
            || f.starts_with("--label=io.mcpod.")
            || f.starts_with("--entrypoint=")
            || f.ends_with(":/.mcpod/supervisor:ro")
            || f.starts_with("--preserve-fds")
            || also.contains(&f.as_str()))
        {
            kept.push(f.clone());
        }
    }
    (kept, create[create.len() - 1].clone())
}
