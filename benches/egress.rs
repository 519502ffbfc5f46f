//! Egress through mcpod's gate against a direct loopback connection, in one
//! run: the same client (the hostile fixture's `tcp_bench` tool) against the
//! same echo server on this host's 127.0.0.1, once from inside a session
//! (`--network=none`, a port forward: the supervisor, the session stream
//! through podman, the gate's check and dial) and once run straight on the host.
//!
//! ```text
//! cargo bench --bench egress
//! ```
//!
//! It prints connection setup (connect, one byte there and back) at p50 and
//! p90, and throughput (MiB/s echoed on one connection), each as a ratio to
//! the direct run, and whether the targets hold (>= 80% of direct throughput,
//! < 1 ms added to setup). Without `--bench` it runs a tiny smoke version.

use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Client = RunningService<RoleClient, ()>;

const MCPOD: &str = env!("CARGO_BIN_EXE_mcpod");
const FORWARD: u16 = 15000;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (rounds, mib, connects) = if full { (3, 256, 300) } else { (1, 4, 10) };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::from)
        .and_then(|rt| rt.block_on(run(rounds, mib, connects)));
    if let Err(e) = result {
        eprintln!("egress bench failed: {e}");
        std::process::exit(1);
    }
}

async fn echo_server() -> Result<u16, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let (mut r, mut w) = stream.into_split();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if w.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = w.shutdown().await;
            });
        }
    });
    Ok(port)
}

async fn call(client: &Client, tool: &str, arguments: Value) -> Result<Value, Error> {
    let Value::Object(arguments) = arguments else {
        return Err("arguments must be an object".into());
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await?;
    if result.is_error == Some(true) {
        return Err(format!("{tool} failed: {:?}", result.content).into());
    }
    Ok(result.structured_content.unwrap_or_else(|| {
        let text = result
            .content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone())
            .unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }))
}

async fn run(rounds: usize, mib: u64, connects: u64) -> Result<(), Error> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = repo.join("tests/fixtures/hostile/bin/hostile-server");
    if !fixture.is_file() {
        return Err(
            "tests/fixtures/hostile/bin/hostile-server is missing: run scripts/build-hello".into(),
        );
    }
    let echo = echo_server().await?;
    let grant = format!("--allow-egress=127.0.0.1:{echo}");
    let mut command = tokio::process::Command::new(MCPOD);
    command
        .args(["serve", "--root"])
        .arg(repo)
        .arg(&grant)
        .env("MCPOD_LOG", "warn");
    let mcpod = ().serve(TokioChildProcess::new(command)?).await?;
    let built = call(
        &mcpod,
        "build_image",
        json!({"name": "localhost/mcpod-hostile", "context": "tests/fixtures/hostile"}),
    )
    .await?;
    let image = built["tag"].as_str().ok_or("no tag")?.to_string();
    let info = call(
        &mcpod,
        "launch_session",
        json!({"image": image, "egress": [format!("127.0.0.1:{echo}")],
               "forwards": {FORWARD.to_string(): format!("127.0.0.1:{echo}")}}),
    )
    .await?;
    let session = info["session"].as_str().ok_or("no session")?.to_string();
    let through = format!("{session}_hostile__tcp_bench");
    let direct = ()
        .serve(TokioChildProcess::new(tokio::process::Command::new(
            &fixture,
        ))?)
        .await?;

    println!(
        "mcpod egress bench: {} cores, load avg {}; {connects} connects and {mib} MiB echoed per run, {rounds} rounds interleaved",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut gate = Vec::new();
    let mut bare = Vec::new();
    let args = |to: String| json!({"to": to, "megabytes": mib, "connects": connects});
    for _ in 0..rounds {
        gate.push(call(&mcpod, &through, args(format!("127.0.0.1:{FORWARD}"))).await?);
        bare.push(call(&direct, "tcp_bench", args(format!("127.0.0.1:{echo}"))).await?);
    }
    let median = |runs: &[Value], key: &str| {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    for r in gate.iter().chain(&bare) {
        if r["echoed_bytes"].as_u64() != Some(mib * 1024 * 1024) {
            return Err(format!("a run did not echo every byte: {r}").into());
        }
    }
    let (g50, g90, gt) = (
        median(&gate, "connect_p50_us"),
        median(&gate, "connect_p90_us"),
        median(&gate, "mib_per_s"),
    );
    let (d50, d90, dt) = (
        median(&bare, "connect_p50_us"),
        median(&bare, "connect_p90_us"),
        median(&bare, "mib_per_s"),
    );
    println!("                                   setup p50    setup p90    throughput");
    println!("   through the gate (in a session) {g50:>7.0} us   {g90:>7.0} us   {gt:>7.1} MiB/s");
    println!("   direct loopback (on the host)   {d50:>7.0} us   {d90:>7.0} us   {dt:>7.1} MiB/s");
    let added = g50 - d50;
    let ratio = gt / dt;
    println!(
        "   added to setup at p50: {added:.0} us ({:.1}x)   target < 1000 us: {}",
        g50 / d50,
        if added < 1000.0 { "HOLDS" } else { "MISSED" }
    );
    println!(
        "   throughput through the gate: {:.0}% of direct   target >= 80%: {}",
        ratio * 100.0,
        if ratio >= 0.8 { "HOLDS" } else { "MISSED" }
    );
    // The rows scripts/perf-table records into docs/performance.md.
    for (what, mcpod_text, base, result, target) in [
        (
            "egress connection setup, p50",
            format!("{g50:.0} µs from inside a session, through a port forward and the gate"),
            format!("the same client on the host, direct: {d50:.0} µs"),
            format!("+{added:.0} µs"),
            format!(
                "< 1 ms added: {}",
                if added < 1000.0 { "met" } else { "missed" }
            ),
        ),
        (
            "egress throughput, one connection, echoed",
            format!("{gt:.0} MiB/s"),
            format!("direct loopback: {dt:.0} MiB/s"),
            format!("{:.0}%", ratio * 100.0),
            format!("≥ 80%: {}", if ratio >= 0.8 { "met" } else { "missed" }),
        ),
    ] {
        println!(
            "perf-row {}",
            json!({"what": what, "mcpod": mcpod_text, "baseline": base, "result": result, "target": target})
        );
    }
    let logs = call(
        &mcpod,
        "session_logs",
        json!({"session": session, "tail": 1}),
    )
    .await?;
    if let Some(last) = logs["egress"].as_array().and_then(|a| a.last()) {
        println!(
            "   last audit record: {}",
            last.as_str().unwrap_or_default()
        );
    }
    let _ = call(&mcpod, "stop_session", json!({"session": session})).await?;
    let _ = direct.cancel().await;
    let _ = mcpod.cancel().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
