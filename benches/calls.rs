//! Proxied `tools/call` through the release `mcpod serve`, against the same
//! call on a direct `podman exec -i` connection into the same container, in
//! one run, for the hello fixture (`add`) and a node server
//! (server-everything's `echo`, from `examples/node-reference`).
//!
//! ```text
//! scripts/build-hello --release && cargo bench --bench calls
//! ```
//!
//! The full run calls a release build of the hello fixture (the tests' debug
//! one costs ~300 us of CPU a call, which on two cores swamps what is measured).
//!
//! Each call is timed five ways, interleaved in blocks of 200: mcpod's
//! pass-through path (`proxy/fast.rs`: a plain call) for an `initialize`
//! client, the same for a 2026-07-28 client (a second mcpod, greeted with
//! `server/discover`, its own session of the image: every request carries
//! its own `_meta`, and every result gets `resultType`), mcpod's rmcp path
//! (the `initialize` client's call with one more `_meta` key, which the
//! pass-through does not carry, so rmcp parses and re-serialises it as
//! before), and direct into each mcpod's container (see [`connect_direct`]):
//! each way is compared with the direct call into its own container. Then
//! calls/s with 8 concurrent callers for 3 s, each way, and mcpod's CPU time
//! per call (schedstat of all its threads). It prints p50/p90/p99, the
//! latency added at p50 and p99, and whether the pass-through adds at most
//! 50 us at the median. Timings are printed, never asserted; without
//! `--bench` (as under `cargo test --benches`) it runs a tiny smoke version.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, RequestMetaObject,
};
use rmcp::service::RunningService;
use rmcp::{ClientLifecycleMode, Peer, RoleClient};
use serde_json::{Value, json};
use support::{
    Client, Error, Pids, call, connect_as, cpu_ns, median, pct, release_context, row_us, run_bench,
    serve, serve_as, structured, us, verdict,
};

const TARGET_ADDED_US: f64 = 50.0;
const EVERYTHING: &str = "/app/node_modules/@modelcontextprotocol/server-everything/dist/index.js";

struct Plan {
    /// The full run (`--bench`), not the smoke one.
    full: bool,
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
    /// For the full run, the release build that replaces the context's
    /// `bin/<server>-server` (see [`release_context`]).
    release: Option<&'static str>,
}

const CASES: [Case; 2] = [
    Case {
        label: "hello (static Rust server)",
        context: "examples/hello",
        image: "localhost/mcpod-hello",
        server: "hello",
        tool: "add",
        direct: &["/bin/hello-server"],
        release: Some(support::RELEASE_HELLO),
    },
    Case {
        label: "node server-everything",
        context: "examples/node-reference",
        image: "localhost/mcpod-node-reference",
        server: "everything",
        tool: "echo",
        direct: &["/usr/bin/node", EVERYTHING, "stdio"],
        release: None,
    },
];

/// How a call goes.
#[derive(Clone, Copy)]
enum Way {
    /// Through mcpod, a plain call: the pass-through.
    Fast,
    /// The same, from a 2026-07-28 client (the second mcpod).
    Modern,
    /// Through mcpod with an extra `_meta` key: rmcp's parse and re-serialisation.
    Rmcp,
    /// Straight to the server in the first mcpod's container.
    Direct,
    /// Straight to the server in the second mcpod's container: the 2026-07-28
    /// client's baseline (two processes of one server differ by tens of us).
    ModernDirect,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            full,
            calls: 2000,
            block: 200,
            warmup: 300,
            callers: 8,
            span: Duration::from_secs(3),
        }
    } else {
        Plan {
            full,
            calls: 20,
            block: 10,
            warmup: 5,
            callers: 2,
            span: Duration::from_millis(300),
        }
    };
    run_bench("calls", |pids| async move { run(&plan, &pids).await });
}

/// The two mcpods: one greeted with `initialize`, one as a 2026-07-28 client.
struct Mcpods {
    old: (Client, u32),
    modern: (Client, u32),
}

async fn run(plan: &Plan, pids: &Pids) -> Result<(), Error> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (old, pid, _) = serve(repo, &[]).await?;
    pids.push(pid);
    let discover = ClientLifecycleMode::Discover {
        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
    };
    let (modern, modern_pid, _) = serve_as(repo, &[], discover).await?;
    pids.push(modern_pid);
    let mcpods = Mcpods {
        old: (old, pid),
        modern: (modern, modern_pid),
    };
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
        held.push(bench_case(plan, &mcpods, case).await?);
    }
    let _ = mcpods.old.0.cancel().await;
    let _ = mcpods.modern.0.cancel().await;
    println!();
    for (case, added) in held {
        for (client, added) in [
            ("an initialize client", added[0]),
            ("a 2026-07-28 client", added[1]),
        ] {
            println!(
                "pass-through adds {added:.0} us at the median for {case}, {client}   target <= {TARGET_ADDED_US} us: {}",
                verdict(added <= TARGET_ADDED_US)
            );
        }
    }
    Ok(())
}

/// A session of `case`'s image, built from `context`, launched through
/// `mcpod`: its id, its container, the proxied tool's name, and the protocol
/// mcpod speaks to the server.
async fn launch(
    mcpod: &Client,
    case: &Case,
    context: &str,
) -> Result<(String, String, String, String), Error> {
    let built = structured(
        &call(
            mcpod,
            "build_image",
            json!({"name": case.image, "context": context}),
        )
        .await?,
    )?;
    let image = built["tag"].as_str().ok_or("build_image: no tag")?;
    let launched = structured(&call(mcpod, "launch_session", json!({"image": image})).await?)?;
    let session = launched["session"]
        .as_str()
        .ok_or("no session id")?
        .to_string();
    // The container and handshakes are in the session's detail.
    let listed = call(mcpod, "list_sessions", json!({"session": session})).await?;
    let info = structured(&listed)?["detail"].clone();
    let container = info["container"]
        .as_str()
        .ok_or("no container")?
        .to_string();
    if info["servers"][case.server]["status"] != "ready" {
        return Err(format!("{} is not ready: {info}", case.server).into());
    }
    let proxied = format!("{session}_{}__{}", case.server, case.tool);
    let era = &info["servers"][case.server]["handshake"]["protocol_version"];
    Ok((
        session,
        container,
        proxied,
        era.as_str().unwrap_or("?").to_string(),
    ))
}

/// The same server started with `podman exec -i` in `container`, greeted as
/// mcpod greets it (`server/discover` first, declaring what mcpod declares
/// to it), so both speak the same protocol to the server, the server does the
/// same work, and only mcpod's own cost differs. mcpod declares elicitation,
/// sampling and roots to a child when its agent may give them: always for a
/// 2026-07-28 agent (each request declares its own), never for the bench's
/// `initialize` agent. server-everything registers more tools when they are
/// declared and answers `echo` 20-60 us slower.
async fn connect_direct(
    case: &Case,
    container: &str,
    asks: bool,
) -> Result<RunningService<RoleClient, ClientConfig>, Error> {
    let mut exec = tokio::process::Command::new("podman");
    exec.args(["exec", "-i", container]).args(case.direct);
    let auto = ClientLifecycleMode::Auto {
        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
        legacy_version: None,
    };
    let mut capabilities = ClientCapabilities::default();
    if asks {
        capabilities.elicitation = Some(Default::default());
        capabilities.sampling = Some(Default::default());
        capabilities.roots = Some(Default::default());
    }
    let config = ClientConfig::new(capabilities, Implementation::new("calls-bench", "0"));
    connect_as(exec, auto, config).await
}

async fn stop(mcpod: &Client, session: &str) -> Result<(), Error> {
    let stopped = structured(&call(mcpod, "stop_session", json!({"session": session})).await?)?;
    if stopped["stopped"] != true {
        return Err(format!("stop_session {session}: {stopped}").into());
    }
    Ok(())
}

async fn bench_case(
    plan: &Plan,
    mcpods: &Mcpods,
    case: &'static Case,
) -> Result<(&'static str, [f64; 2]), Error> {
    let (old, pid) = (&mcpods.old.0, mcpods.old.1);
    let (modern, modern_pid) = (&mcpods.modern.0, mcpods.modern.1);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let release = case.release.filter(|_| plan.full);
    let context = release_context(repo, case.context, case.server, release)?;
    let (session, container, proxied, era) = launch(old, case, &context).await?;
    let (modern_session, modern_container, modern_proxied, _) =
        launch(modern, case, &context).await?;
    let direct = connect_direct(case, &container, false).await?;
    let modern_direct = connect_direct(case, &modern_container, true).await?;
    let direct_era = direct
        .peer_info()
        .map_or("?".to_string(), |i| i.protocol_version.to_string());
    let (op, mp, dp, mdp) = (
        old.peer().clone(),
        modern.peer().clone(),
        direct.peer().clone(),
        modern_direct.peer().clone(),
    );
    // Each way's client, tool name, and the mcpod whose CPU it costs.
    let target = |way: Way| match way {
        Way::Fast | Way::Rmcp => (&op, proxied.as_str(), Some(pid)),
        Way::Modern => (&mp, modern_proxied.as_str(), Some(modern_pid)),
        Way::Direct => (&dp, case.tool, None),
        Way::ModernDirect => (&mdp, case.tool, None),
    };
    let ways = [
        Way::Fast,
        Way::Modern,
        Way::Rmcp,
        Way::Direct,
        Way::ModernDirect,
    ];

    for i in 0..plan.warmup {
        for way in ways {
            let (peer, tool, _) = target(way);
            one(peer, case, tool, way, i).await?;
        }
    }
    let mut samples: [Vec<Duration>; 5] = Default::default();
    let mut cpu = [0u64; 3];
    let mut done = 0;
    while done < plan.calls {
        let n = plan.block.min(plan.calls - done);
        for (w, way) in ways.into_iter().enumerate() {
            let (peer, tool, mcpod) = target(way);
            let before = mcpod.map(cpu_ns);
            for i in done..done + n {
                let t = Instant::now();
                one(peer, case, tool, way, i).await?;
                samples[w].push(t.elapsed());
            }
            if let (Some(mcpod), Some(before)) = (mcpod, before) {
                cpu[w] += cpu_ns(mcpod).saturating_sub(before);
            }
        }
        done += n;
    }
    let mut rates = [0.0f64; 5];
    let mut tput_cpu = [0.0f64; 3];
    for (w, way) in ways.into_iter().enumerate() {
        let (peer, tool, mcpod) = target(way);
        let before = mcpod.map(cpu_ns);
        let (n, took) = throughput(peer, case, tool, way, plan.callers, plan.span).await?;
        rates[w] = n as f64 / took.as_secs_f64();
        if let (Some(mcpod), Some(before)) = (mcpod, before) {
            tput_cpu[w] = cpu_ns(mcpod).saturating_sub(before) as f64 / 1e3 / n as f64;
        }
    }
    let _ = direct.cancel().await;
    let _ = modern_direct.cancel().await;
    stop(old, &session).await?;
    stop(modern, &modern_session).await?;

    for s in &mut samples {
        s.sort();
    }
    let [fast, modern_fast, rmcp, direct, modern_direct] = &samples;
    println!();
    println!(
        "{} — tools/call {} (N={} each)                 median        p90        p99        max",
        case.label, case.tool, plan.calls
    );
    println!(
        "   (image from {context}; mcpod speaks {era} to the server, the direct client {direct_era})"
    );
    row_us("   mcpod, pass-through", fast);
    row_us("   mcpod, pass-through, 2026-07-28 client", modern_fast);
    row_us("   mcpod, rmcp path (extra _meta)", rmcp);
    row_us("   direct podman exec -i, same container", direct);
    row_us(
        "   direct, the 2026-07-28 client's container",
        modern_direct,
    );
    let added = |s: &[Duration], base: &[Duration]| us(median(s)) - us(median(base));
    let added_p99 = |s: &[Duration], base: &[Duration]| us(pct(s, 99.0)) - us(pct(base, 99.0));
    // Each way against the direct call into its own container.
    let named = [
        ("pass-through", fast, direct),
        ("2026 pass", modern_fast, modern_direct),
        ("rmcp path", rmcp, direct),
    ];
    for (w, (what, s, base)) in named.into_iter().enumerate() {
        println!(
            "   {what:<13} adds {:>5.0} us at the median ({:.2}x direct), {:>5.0} us at p99; mcpod CPU {:>4.0} us per call sequential, {:>4.0} us under {} callers",
            added(s, base),
            us(median(s)) / us(median(base)),
            added_p99(s, base),
            cpu[w] as f64 / 1e3 / s.len() as f64,
            tput_cpu[w],
            plan.callers
        );
    }
    println!(
        "   {} callers: pass-through {:.0} calls/s, 2026 pass-through {:.0} calls/s, rmcp path {:.0} calls/s, direct {:.0} and {:.0} calls/s (pass-through {:.2}x direct)",
        plan.callers,
        rates[0],
        rates[1],
        rates[2],
        rates[3],
        rates[4],
        rates[0] / rates[3]
    );
    let fast_added = [added(fast, direct), added(modern_fast, modern_direct)];
    Ok((case.label, fast_added))
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
