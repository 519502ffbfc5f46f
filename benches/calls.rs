//! Proxied `tools/call` through the release `mcpod serve`, against the same
//! call on a direct `podman exec -i` connection into the same container, in
//! one run, for the hello fixture (`add`) and a node server
//! (server-everything's `echo`, from `examples/node-reference`).
//!
//! ```text
//! cargo bench --bench calls
//! ```
//!
//! Each call is timed three ways, interleaved in blocks of 200: mcpod's
//! pass-through path (`proxy/fast.rs`: a plain call), mcpod's rmcp path
//! (the same call with one more `_meta` key, which the pass-through does
//! not carry, so rmcp parses and re-serialises it as before), and direct.
//! Then calls/s with 8 concurrent callers for 3 s, each way, and mcpod's
//! CPU time per call (schedstat of all its threads). It prints p50/p90/p99,
//! the latency added at p50 and p99, and whether the pass-through adds at
//! most 50 us at the median. Timings are printed, never asserted; without
//! `--bench` (as under `cargo test --benches`) it runs a tiny smoke version.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, RequestMetaObject};
use rmcp::{Peer, RoleClient};
use serde_json::{Value, json};
use support::{
    Client, Error, call, connect, cpu_ns, median, pct, row_us, serve, structured, us, verdict,
};

const TARGET_ADDED_US: f64 = 50.0;
const OWNER_PID_LABEL: &str = "io.mcpod.owner-pid";
const EVERYTHING: &str = "/app/node_modules/@modelcontextprotocol/server-everything/dist/index.js";

struct Plan {
    calls: usize,
    block: usize,
    warmup: usize,
    callers: usize,
    span: Duration,
}

/// One server to call: the image, its server, the tool and its arguments,
/// and how to start the same server directly in the session's container.
struct Case {
    label: &'static str,
    context: &'static str,
    image: &'static str,
    server: &'static str,
    tool: &'static str,
    direct: &'static [&'static str],
}

const CASES: [Case; 2] = [
    Case {
        label: "hello (static Rust server)",
        context: "examples/hello",
        image: "localhost/mcpod-hello",
        server: "hello",
        tool: "add",
        direct: &["/bin/hello-server"],
    },
    Case {
        label: "node server-everything",
        context: "examples/node-reference",
        image: "localhost/mcpod-node-reference",
        server: "everything",
        tool: "echo",
        direct: &["/usr/bin/node", EVERYTHING, "stdio"],
    },
];

/// How a call goes.
#[derive(Clone, Copy)]
enum Way {
    /// Through mcpod, a plain call: the pass-through.
    Fast,
    /// Through mcpod with an extra `_meta` key: rmcp's parse and re-serialisation.
    Rmcp,
    /// Straight to the server in the container.
    Direct,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            calls: 2000,
            block: 200,
            warmup: 300,
            callers: 8,
            span: Duration::from_secs(3),
        }
    } else {
        Plan {
            calls: 20,
            block: 10,
            warmup: 5,
            callers: 2,
            span: Duration::from_millis(300),
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("calls bench failed: {e}");
            std::process::exit(1);
        }
    };
    let mut pid = None;
    let result = rt.block_on(run(&plan, &mut pid));
    // Whatever happened, nothing this mcpod started stays.
    if let Some(pid) = pid {
        remove_containers_of(pid);
    }
    if let Err(e) = result {
        eprintln!("calls bench failed: {e}");
        std::process::exit(1);
    }
}

async fn run(plan: &Plan, pid_out: &mut Option<u32>) -> Result<(), Error> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mcpod, pid, _) = serve(repo, &[]).await?;
    *pid_out = Some(pid);
    println!(
        "calls bench: {} calls each way per case in blocks of {}, after {} warm-up calls; {} callers for {:.1} s",
        plan.calls,
        plan.block,
        plan.warmup,
        plan.callers,
        plan.span.as_secs_f64()
    );
    let mut held = Vec::new();
    for case in &CASES {
        held.push(bench_case(plan, &mcpod, pid, case).await?);
    }
    let _ = mcpod.cancel().await;
    println!();
    for (case, added, ok) in held {
        println!(
            "pass-through adds {added:.0} us at the median for {case}   target <= {TARGET_ADDED_US} us: {}",
            verdict(ok)
        );
    }
    Ok(())
}

async fn bench_case(
    plan: &Plan,
    mcpod: &Client,
    pid: u32,
    case: &'static Case,
) -> Result<(&'static str, f64, bool), Error> {
    let built = structured(
        &call(
            mcpod,
            "build_image",
            json!({"name": case.image, "context": case.context}),
        )
        .await?,
    )?;
    let image = built["tag"].as_str().ok_or("build_image: no tag")?;
    let info = structured(&call(mcpod, "launch_session", json!({"image": image})).await?)?;
    let session = info["session"].as_str().ok_or("no session id")?.to_string();
    let container = info["container"].as_str().ok_or("no container")?;
    if info["servers"][case.server]["status"] != "ready" {
        return Err(format!("{} is not ready: {info}", case.server).into());
    }
    let proxied = format!("{session}_{}__{}", case.server, case.tool);
    let mut exec = tokio::process::Command::new("podman");
    exec.args(["exec", "-i", container]).args(case.direct);
    let direct = connect(exec).await?;
    let (mp, dp) = (mcpod.peer().clone(), direct.peer().clone());
    let target = |way: Way| match way {
        Way::Fast | Way::Rmcp => (&mp, proxied.as_str()),
        Way::Direct => (&dp, case.tool),
    };
    let ways = [Way::Fast, Way::Rmcp, Way::Direct];

    for i in 0..plan.warmup {
        for way in ways {
            let (peer, tool) = target(way);
            one(peer, case, tool, way, i).await?;
        }
    }
    let mut samples: [Vec<Duration>; 3] = Default::default();
    let mut cpu = [0u64; 2];
    let mut done = 0;
    while done < plan.calls {
        let n = plan.block.min(plan.calls - done);
        for (w, way) in ways.into_iter().enumerate() {
            let (peer, tool) = target(way);
            let before = cpu_ns(pid);
            for i in done..done + n {
                let t = Instant::now();
                one(peer, case, tool, way, i).await?;
                samples[w].push(t.elapsed());
            }
            if w < 2 {
                cpu[w] += cpu_ns(pid).saturating_sub(before);
            }
        }
        done += n;
    }
    let mut rates = [0.0f64; 3];
    let mut tput_cpu = [0.0f64; 2];
    for (w, way) in ways.into_iter().enumerate() {
        let (peer, tool) = target(way);
        let before = cpu_ns(pid);
        let (n, took) = throughput(peer, case, tool, way, plan.callers, plan.span).await?;
        rates[w] = n as f64 / took.as_secs_f64();
        if w < 2 {
            tput_cpu[w] = cpu_ns(pid).saturating_sub(before) as f64 / 1e3 / n as f64;
        }
    }
    let _ = direct.cancel().await;
    let stopped = structured(&call(mcpod, "stop_session", json!({"session": session})).await?)?;
    if stopped["stopped"] != true {
        return Err(format!("stop_session {session}: {stopped}").into());
    }

    for s in &mut samples {
        s.sort();
    }
    let [fast, rmcp, direct] = &samples;
    println!();
    println!(
        "{} — tools/call {} (N={} each)                 median        p90        p99        max",
        case.label, case.tool, plan.calls
    );
    row_us("   mcpod, pass-through", fast);
    row_us("   mcpod, rmcp path (extra _meta)", rmcp);
    row_us("   direct podman exec -i, same container", direct);
    let added = |s: &[Duration], p: f64| us(pct(s, p)) - us(pct(direct, p));
    let fast_added = us(median(fast)) - us(median(direct));
    for (what, s, w) in [("pass-through", fast, 0), ("rmcp path", rmcp, 1)] {
        println!(
            "   {what:<13} adds {:>5.0} us at the median ({:.2}x direct), {:>5.0} us at p99; mcpod CPU {:>4.0} us per call sequential, {:>4.0} us under {} callers",
            us(median(s)) - us(median(direct)),
            us(median(s)) / us(median(direct)),
            added(s, 99.0),
            cpu[w] as f64 / 1e3 / s.len() as f64,
            tput_cpu[w],
            plan.callers
        );
    }
    println!(
        "   {} callers: pass-through {:.0} calls/s, rmcp path {:.0} calls/s, direct {:.0} calls/s (pass-through {:.2}x direct)",
        plan.callers,
        rates[0],
        rates[1],
        rates[2],
        rates[0] / rates[2]
    );
    Ok((case.label, fast_added, fast_added <= TARGET_ADDED_US))
}

/// One call of `tool` (`i` makes its arguments), checked.
async fn one(
    peer: &Peer<RoleClient>,
    case: &Case,
    tool: &str,
    way: Way,
    i: usize,
) -> Result<(), Error> {
    let (arguments, expect) = match case.tool {
        "add" => (json!({"a": i, "b": 1}), (i + 1).to_string()),
        _ => (json!({"message": format!("m{i}")}), format!("m{i}")),
    };
    let Value::Object(arguments) = arguments else {
        return Err("arguments must be an object".into());
    };
    let mut params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
    if let Way::Rmcp = way {
        let meta: RequestMetaObject =
            serde_json::from_value(json!({"io.mcpod.bench/path": "rmcp"}))?;
        params.meta = Some(meta);
    }
    let result = peer.call_tool(params).await?;
    let text = serde_json::to_string(&result.content)?;
    let structured = result
        .structured_content
        .map(|s| s.to_string())
        .unwrap_or_default();
    if result.is_error == Some(true) || !(text.contains(&expect) || structured.contains(&expect)) {
        return Err(format!("{tool} returned {text} {structured}, not {expect}").into());
    }
    Ok(())
}

/// Calls completed by `callers` concurrent loops for `span`, and the wall time.
async fn throughput(
    peer: &Peer<RoleClient>,
    case: &'static Case,
    tool: &str,
    way: Way,
    callers: usize,
    span: Duration,
) -> Result<(usize, Duration), Error> {
    let start = Instant::now();
    let deadline = start + span;
    let mut set = tokio::task::JoinSet::new();
    for c in 0..callers {
        let (peer, tool) = (peer.clone(), tool.to_string());
        set.spawn(async move {
            let mut n = 0usize;
            while Instant::now() < deadline {
                one(&peer, case, &tool, way, c * 1_000_000 + n).await?;
                n += 1;
            }
            Ok::<usize, Error>(n)
        });
    }
    let mut total = 0;
    while let Some(joined) = set.join_next().await {
        total += joined??;
    }
    Ok((total, start.elapsed()))
}

/// Remove every container mcpod `pid` started (it does on a clean exit).
fn remove_containers_of(pid: u32) {
    let listed = std::process::Command::new("podman")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label={OWNER_PID_LABEL}={pid}"))
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
