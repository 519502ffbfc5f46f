//! What tracing costs a proxied call: the release `mcpod serve` with
//! tracing off, against the same with `--otlp` to a receiver in this
//! process (which takes every `POST /v1/traces` and counts its spans), in
//! one run, calling the hello fixture's `add` (release build) on the
//! pass-through. Traced calls go two ways: plain (a trace of mcpod's own)
//! and with the client's `_meta.traceparent` (mcpod's spans under it, the
//! child told of them). Calls are interleaved in blocks; it prints the
//! median and p99 of each, the traced calls' ratio to the untraced, and
//! mcpod's CPU time per call (schedstat of all its threads, the exporter's
//! included). Timings are printed, never asserted; without `--bench` (as
//! under `cargo test --benches`) it runs a tiny smoke version.
//!
//! ```text
//! scripts/build-hello --release && cargo bench --bench telemetry
//! ```

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, RequestMetaObject};
use rmcp::{Peer, RoleClient};
use serde_json::{Value, json};
use support::{Client, Error, call, cpu_ns, median, pct, row_us, serve, structured, us};

const RELEASE: &str = "target/x86_64-unknown-linux-gnu/release/examples/hello_server";

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (calls, block, warmup) = if full { (3000, 200, 300) } else { (20, 10, 5) };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("telemetry bench failed: {e}");
            std::process::exit(1);
        }
    };
    let mut pids = Vec::new();
    let result = rt.block_on(run(full, (calls, block, warmup), &mut pids));
    for pid in pids {
        support::remove_containers_of(pid);
    }
    if let Err(e) = result {
        eprintln!("telemetry bench failed: {e}");
        std::process::exit(1);
    }
}

/// An OTLP/HTTP receiver on 127.0.0.1: its port, and the spans it got.
fn receiver() -> Result<(u16, Arc<AtomicU64>), Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let spans = Arc::new(AtomicU64::new(0));
    let counted = spans.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                let lower = line.to_ascii_lowercase();
                if let Some(n) = lower.strip_prefix("content-length:") {
                    length = n.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let got: Value = serde_json::from_slice(&body).unwrap_or_default();
            let n = got["resourceSpans"][0]["scopeSpans"][0]["spans"]
                .as_array()
                .map_or(0, Vec::len);
            counted.fetch_add(n as u64, Ordering::Relaxed);
            let _ = (&stream)
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        }
    });
    Ok((port, spans))
}

/// A hello session launched through `mcpod`: the proxied `add`'s name.
async fn hello(mcpod: &Client, context: &str) -> Result<String, Error> {
    let args = json!({"name": "localhost/mcpod-hello", "context": context});
    let built = structured(&call(mcpod, "build_image", args).await?)?;
    let image = built["tag"].as_str().ok_or("build_image: no tag")?;
    let launched = structured(&call(mcpod, "launch_session", json!({"image": image})).await?)?;
    let session = launched["session"].as_str().ok_or("no session id")?;
    Ok(format!("{session}_hello__add"))
}

/// One call of `tool`, with the client's trace context when `traced`.
async fn one(peer: &Peer<RoleClient>, tool: &str, traced: bool, i: usize) -> Result<(), Error> {
    let Value::Object(arguments) = json!({"a": i, "b": 1}) else {
        return Err("arguments must be an object".into());
    };
    let mut params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
    if traced {
        let parent = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{:016x}-01", i + 1);
        let meta: RequestMetaObject = serde_json::from_value(json!({"traceparent": parent}))?;
        params.meta = Some(meta);
    }
    let result = peer.call_tool(params).await?;
    let text = serde_json::to_string(&result.content)?;
    if result.is_error == Some(true) || !text.contains(&(i + 1).to_string()) {
        return Err(format!("{tool} returned {text}").into());
    }
    Ok(())
}

async fn run(
    full: bool,
    (calls, block, warmup): (usize, usize, usize),
    pids: &mut Vec<u32>,
) -> Result<(), Error> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (port, spans) = receiver()?;
    let (off, off_pid, _) = serve(repo, &[]).await?;
    pids.push(off_pid);
    let otlp = vec!["--otlp".to_string(), format!("http://127.0.0.1:{port}")];
    let (on, on_pid, _) = serve(repo, &otlp).await?;
    pids.push(on_pid);
    let context = match full {
        true => support::release_context(repo, "examples/hello", "hello", Some(RELEASE))?,
        false => "examples/hello".to_string(),
    };
    let (off_tool, on_tool) = (hello(&off, &context).await?, hello(&on, &context).await?);
    let before_spans = spans.load(Ordering::Relaxed);
    // Each way: its client, tool, mcpod, and whether the client sends a traceparent.
    let ways = [
        ("tracing off", off.peer(), &off_tool, off_pid, false),
        ("tracing on", on.peer(), &on_tool, on_pid, false),
        (
            "tracing on, client traceparent",
            on.peer(),
            &on_tool,
            on_pid,
            true,
        ),
    ];
    for i in 0..warmup {
        for (_, peer, tool, _, traced) in ways {
            one(peer, tool, traced, i).await?;
        }
    }
    let mut samples: [Vec<Duration>; 3] = Default::default();
    let mut cpu = [0u64; 3];
    let mut done = 0;
    while done < calls {
        let n = block.min(calls - done);
        for (w, (_, peer, tool, pid, traced)) in ways.into_iter().enumerate() {
            let before = cpu_ns(pid);
            for i in done..done + n {
                let t = Instant::now();
                one(peer, tool, traced, i).await?;
                samples[w].push(t.elapsed());
            }
            cpu[w] += cpu_ns(pid).saturating_sub(before);
        }
        done += n;
    }
    let _ = off.cancel().await;
    let _ = on.cancel().await;
    // The last spans are sent at exit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = spans.load(Ordering::Relaxed) - before_spans;
    // Two traced ways, two spans a call, warm-up included.
    let expected = 2 * 2 * (calls + warmup);
    report(&mut samples, &cpu, (received, expected, calls));
    Ok(())
}

fn report(
    samples: &mut [Vec<Duration>; 3],
    cpu: &[u64; 3],
    (spans, expected, calls): (u64, usize, usize),
) {
    for s in samples.iter_mut() {
        s.sort();
    }
    let [off, on, parented] = &*samples;
    println!(
        "hello `add` on the pass-through, N={calls} each             median        p90        p99        max"
    );
    row_us("   tracing off", off);
    row_us("   tracing on", on);
    row_us("   tracing on, client traceparent", parented);
    let per_call = |w: usize| cpu[w] as f64 / 1e3 / calls as f64;
    for (w, (what, s)) in [("tracing on", on), ("with a client traceparent", parented)]
        .into_iter()
        .enumerate()
    {
        let ratio = us(median(s)) / us(median(off));
        println!(
            "   {what:<26} {ratio:.3}x off at the median ({:+.0} us), {:+.0} us at p99; mcpod CPU {:.0} us a call against {:.0} us off",
            us(median(s)) - us(median(off)),
            us(pct(s, 99.0)) - us(pct(off, 99.0)),
            per_call(w + 1),
            per_call(0),
        );
        let row = json!({
            "what": format!("proxied call (hello `add`, pass-through), {what}"),
            "mcpod": format!("{:.0} µs median, p99 {:.0}; {:.0} µs CPU a call", us(median(s)), us(pct(s, 99.0)), per_call(w + 1)),
            "baseline": format!("tracing off: {:.0} µs, p99 {:.0}; {:.0} µs CPU", us(median(off)), us(pct(off, 99.0)), per_call(0)),
            "result": format!("{ratio:.3}x ({:+.0} µs)", us(median(s)) - us(median(off))),
            "target": "",
        });
        println!("perf-row {row}");
    }
    println!(
        "   spans received: {spans}, of {expected} (two a traced call: the request and the proxied call)"
    );
}
