//! Sessions end to end: the release `mcpod serve` binary under an rmcp client,
//! against podman driven by hand with the same hardening flags, in one run.
//!
//! ```text
//! cargo bench --bench sessions
//! ```
//!
//! It builds, through mcpod's `build_image` (cache hits after the first
//! time), the `examples/hello` image and three variants: hello with three
//! servers, and the npm reference image (`examples/node-reference`) with only
//! `server-everything`, and with three node servers. Then it measures
//!
//! 1. launch to "tools listed" for 1 and 3 servers, hello and node, cold and
//!    warm: `launch_session` + `tools/list` through a cold mcpod (no pool;
//!    N=10 each, after one warm-up), interleaved with the baseline, a bare
//!    `podman run -i --rm` + `initialize` + `tools/list` of the one server,
//!    with the hardening flags mcpod used (podman's `CreateCommand` of the
//!    warm-up session minus what only an owned session needs: its name, the
//!    `io.mcpod.*` labels, its cidfile, the supervisor's mount and
//!    entrypoint, the stream's `--preserve-fds`; the baseline runs the
//!    server itself on `-i`); and through a second
//!    mcpod that keeps two of each image warm (`--warm IMAGE=2`), each launch
//!    timed once the pool has one ready. Stopping is timed separately.
//!    The hello one-server launch is also timed through a third mcpod that
//!    did not build the image (as after `mcpod build` on the command line),
//!    so its launches resolve the tag themselves.
//! 2. the serve process's VmRSS: idle after `initialize`, and with 10 hello
//!    sessions; then every session is stopped and no container may be left.
//! 3. host processes per session: podman and conmon processes on the host
//!    with 10 one-server and with 5 three-server hello sessions up, per session.
//! 4. node servers that start warm (`sessions/node_cache.rs`): three node 22
//!    `server-everything` servers in one session, with the compile cache
//!    provisioning baked into the image and without it, against one bare
//!    `podman run -i` of the server without it, and one with it (N=10 each,
//!    interleaved).
//!
//! It prints a table, the ratios, and whether each target holds (a 3-server
//! cold launch within 1.15x of the 1-server baseline, a warm launch under
//! 25 ms at the median and >= 10x faster than the baseline, one podman and
//! one conmon per session, RSS < 30 MiB with 10 sessions, three node 22
//! servers with the cache within 1.15x of one bare run without it), and a
//! `perf-row` line per figure for scripts/perf-table. Proxied calls
//! have their own bench, `benches/calls.rs`. Every
//! container it started (mcpod's sessions, by owner pid; the baseline's, by
//! the `io.mcpod.bench` label) is removed on every path, panics included.
//! Without `--bench` (as under `cargo test --benches`) it runs a tiny smoke
//! version. `MCPOD_BENCH_BIN` runs another mcpod binary (e.g. an unstripped
//! build, or a `perf record` wrapper; then RSS and CPU figures are the wrapper's).

#[path = "sessions/node_cache.rs"]
mod node_cache;
#[path = "sessions/podman.rs"]
mod podman;
#[path = "sessions/rows.rs"]
mod rows;
#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use podman::{Cleanup, baseline_once, create_command, host_processes, podman_ps, podman_version};
use serde_json::{Value, json};
use support::{
    Client, Error, call, list_or_none, median, ms, row_ms, rss_kib, shell_words, status_field,
    status_kib, structured, verdict,
};

const IMAGE_NAME: &str = "localhost/mcpod-hello";
/// The hello image with three servers declared.
const THREE_SERVER_IMAGE: &str = "localhost/mcpod-bench-three-servers";
/// The npm reference image with only server-everything, and with three node servers.
const NODE_ONE_IMAGE: &str = "localhost/mcpod-bench-node-one";
const NODE_THREE_IMAGE: &str = "localhost/mcpod-bench-node-three";
const EVERYTHING: &str = "/app/node_modules/@modelcontextprotocol/server-everything/dist/index.js";
const MEMORY: &str = "/app/node_modules/@modelcontextprotocol/server-memory/dist/index.js";
/// Baseline containers carry this label (value: the bench's pid).
const BENCH_LABEL: &str = "io.mcpod.bench";
const OWNER_PID_LABEL: &str = "io.mcpod.owner-pid";

const TARGET_THREE_SERVER_RATIO: f64 = 1.15;
const TARGET_WARM_MS: f64 = 25.0;
const TARGET_WARM_SPEEDUP: f64 = 10.0;
const TARGET_RSS_MIB: f64 = 30.0;

struct Plan {
    launches: usize,
    sessions: usize,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            launches: 10,
            sessions: 10,
        }
    } else {
        Plan {
            launches: 1,
            sessions: 2,
        }
    };
    let cleanup = Cleanup::default();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::from)
        .and_then(|rt| rt.block_on(run(&plan, &cleanup)));
    drop(cleanup);
    if let Err(e) = result {
        eprintln!("sessions bench failed: {e}");
        std::process::exit(1);
    }
}

async fn run(plan: &Plan, cleanup: &Cleanup) -> Result<(), Error> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    if !repo.join("examples/hello/bin/hello-server").is_file() {
        return Err("examples/hello/bin/hello-server is missing: run scripts/build-hello".into());
    }

    // mcpod serve, as an MCP client would start it: one without a pool
    // (cold launches, calls, memory), and below one keeping images warm.
    let (mcpod, pid, connected_in) = serve(repo, &[], cleanup).await?;
    let protocol = mcpod
        .peer_info()
        .map(|i| i.protocol_version.to_string())
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kib(pid)?;

    let build = |name: &str, context: &str, servers: Value| {
        let mcpod = &mcpod;
        let (name, context) = (name.to_string(), context.to_string());
        async move {
            let mut args = json!({"name": name, "context": context});
            if !servers.is_null() {
                args["servers"] = servers;
            }
            let built = structured(&call(mcpod, "build_image", args).await?)?;
            let tag = built["tag"]
                .as_str()
                .ok_or("build_image returned no tag")?
                .to_string();
            Ok::<(String, bool), Error>((tag, built["cache_hit"] == true))
        }
    };
    let (image, hit) = build(IMAGE_NAME, "examples/hello", Value::Null).await?;
    let (three_image, _) = build(
        THREE_SERVER_IMAGE,
        "examples/hello",
        json!({"second": {"command": ["/bin/hello-server"]},
               "third": {"command": ["/bin/hello-server"]}}),
    )
    .await?;
    let (node, _) = build(
        "localhost/mcpod-node-reference",
        "examples/node-reference",
        Value::Null,
    )
    .await?;
    let node_one_image = node_variant(
        &mcpod,
        repo,
        NODE_ONE_IMAGE,
        &node,
        json!({"everything": {"command": ["/usr/bin/node", EVERYTHING, "stdio"]}}),
        "",
    )
    .await?;
    let node_three_image = node_variant(
        &mcpod,
        repo,
        NODE_THREE_IMAGE,
        &node,
        json!({"everything": {"command": ["/usr/bin/node", EVERYTHING, "stdio"]},
               "everything2": {"command": ["/usr/bin/node", EVERYTHING, "stdio"]},
               "memory": {"command": ["/usr/bin/node", MEMORY],
                          "env": {"MEMORY_FILE_PATH": "/tmp/memory.json"}}}),
        "",
    )
    .await?;

    println!(
        "mcpod sessions bench: {} cores, {}, load avg {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        podman_version(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "mcpod serve pid {pid} (release), connected in {:.1} ms, protocol {protocol}; image {image} ({})",
        ms(connected_in),
        if hit { "cache hit" } else { "built" }
    );

    // Warm-up of both paths; the launch also tells us the isolation mcpod grants.
    let warm = launch(&mcpod, &image).await?;
    let create = create_command(&warm.container).await?;
    let (flags, _) = support::hardening_flags(&create, &[]);
    stop(&mcpod, &warm.session).await?;
    println!("mcpod ran:    {}", shell_words(&create));
    println!(
        "baseline: podman run -i {} {image} /bin/hello-server",
        shell_words(&flags)
    );
    let hello_cmd = vec!["/bin/hello-server".to_string()];
    let node_cmd: Vec<String> = ["/usr/bin/node", EVERYTHING, "stdio"]
        .map(String::from)
        .to_vec();
    baseline_once(&flags, &image, &hello_cmd, "add", 0).await?;
    baseline_once(&flags, &node_one_image, &node_cmd, "echo", 0).await?;
    let cases = [
        Case::new("hello, 1 server", &image, "hello__add"),
        Case::new("hello, 3 servers", &three_image, "third__add"),
        Case::new("node, 1 server", &node_one_image, "everything__echo"),
        Case::new("node, 3 servers", &node_three_image, "memory__read_graph"),
    ];
    for case in &cases {
        let s = launch_case(&mcpod, case).await?;
        stop(&mcpod, &s.0).await?;
    }
    // A tag this mcpod did not build (as after `mcpod build` on the command
    // line, or by another mcpod): its launches resolve the tag themselves.
    let (elsewhere, _, _) = serve(repo, &[], cleanup).await?;
    let s = launch_case(&elsewhere, &cases[0]).await?;
    stop(&elsewhere, &s.0).await?;

    // 1. Launch to tools listed, cold (interleaved with the baselines).
    let mut cold: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut cold_elsewhere = Vec::new();
    let mut m_stop = Vec::new();
    let mut b_hello = Vec::new();
    let mut b_node = Vec::new();
    let mut b_node3 = Vec::new();
    let mut b_stop = Vec::new();
    for i in 0..plan.launches {
        for (c, case) in cases.iter().enumerate() {
            let t = Instant::now();
            let (session, _) = launch_case(&mcpod, case).await?;
            cold[c].push(t.elapsed());
            let t = Instant::now();
            stop(&mcpod, &session).await?;
            if c == 0 {
                m_stop.push(t.elapsed());
            }
        }
        let t = Instant::now();
        let (session, _) = launch_case(&elsewhere, &cases[0]).await?;
        cold_elsewhere.push(t.elapsed());
        stop(&elsewhere, &session).await?;
        let (ready, teardown) = baseline_once(&flags, &image, &hello_cmd, "add", i + 1).await?;
        b_hello.push(ready);
        b_stop.push(teardown);
        let (ready, _) = baseline_once(&flags, &node_one_image, &node_cmd, "echo", i + 1).await?;
        b_node.push(ready);
        // What three node servers cost without mcpod: three bare runs at once.
        let t = Instant::now();
        let runs: Vec<_> = (0..3)
            .map(|k| {
                baseline_once(
                    &flags,
                    &node_one_image,
                    &node_cmd,
                    "echo",
                    100 * (i + 1) + k,
                )
            })
            .collect();
        for run in futures::future::join_all(runs).await {
            run?;
        }
        b_node3.push(t.elapsed());
    }
    let _ = elsewhere.cancel().await;

    // ... and warm, from an mcpod that keeps two of each ready.
    let warm_flags: Vec<String> = cases
        .iter()
        .map(|c| format!("--warm={}=2", c.image))
        .chain(["--pool-max=8".to_string()])
        .collect();
    let (pooled, warm_pid, _) = serve(repo, &warm_flags, cleanup).await?;
    let mut warm: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for _ in 0..plan.launches {
        for (c, case) in cases.iter().enumerate() {
            pool_has(&pooled, &case.image, Duration::from_secs(120)).await?;
            let t = Instant::now();
            let (session, handed) = launch_case(&pooled, case).await?;
            warm[c].push(t.elapsed());
            if !handed {
                return Err(format!(
                    "a warm launch of {} was not handed a pooled session",
                    case.label
                )
                .into());
            }
            stop(&pooled, &session).await?;
        }
    }
    let _ = pooled.cancel().await;
    let left = podman_ps(&format!("label={OWNER_PID_LABEL}={warm_pid}"));
    if !left.is_empty() {
        return Err(format!("the warm mcpod left containers: {left:?}").into());
    }

    // 2. Memory with N sessions.
    let rss_before = rss_kib(pid)?;
    let t = Instant::now();
    let mut sessions = Vec::new();
    for _ in 0..plan.sessions {
        sessions.push(launch(&mcpod, &image).await?.session);
    }
    let launch_all = t.elapsed();
    let procs_one = host_processes(&mcpod, &sessions).await?;
    let t = Instant::now();
    let listed = mcpod.list_all_tools().await?.len();
    let list_time = t.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_sessions = rss_kib(pid)?;
    let hwm = status_kib(pid, "VmHWM:")?;
    let threads = status_field(pid, "Threads:")?;
    let t = Instant::now();
    for s in &sessions {
        stop(&mcpod, s).await?;
    }
    let stop_all = t.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after = rss_kib(pid)?;

    // 3. Host processes per session, with three servers each.
    let mut three = Vec::new();
    for _ in 0..plan.sessions / 2 {
        three.push(launch_case(&mcpod, &cases[1]).await?.0);
    }
    let procs_three = host_processes(&mcpod, &three).await?;
    for s in &three {
        stop(&mcpod, s).await?;
    }

    // 4. Node servers that start warm: node 22's compile cache.
    let node_cache = node_cache::measure(&mcpod, repo, &flags, plan.launches).await?;
    let left_running = cleanup.leftovers();

    let t = Instant::now();
    let _ = mcpod.cancel().await;
    let exit = t.elapsed();
    let left_after_exit = cleanup.leftovers();

    // The report.
    m_stop.sort();
    b_stop.sort();
    b_hello.sort();
    b_node.sort();
    b_node3.sort();
    cold_elsewhere.sort();
    for samples in cold.iter_mut().chain(warm.iter_mut()) {
        samples.sort();
    }
    let rss_mib = rss_sessions as f64 / 1024.0;

    println!();
    println!(
        "1. launch -> tools listed (N={}, interleaved)      median        p90        min        max   ratio to its 1-server baseline",
        plan.launches
    );
    let mut holds = Vec::new();
    for (c, case) in cases.iter().enumerate() {
        let baseline = if c < 2 { &b_hello } else { &b_node };
        if c == 0 || c == 2 {
            row_ms(
                &format!(
                    "   baseline {}: podman run -i + init + list",
                    if c == 0 { "hello" } else { "node" }
                ),
                baseline,
            );
        }
        let cold_ratio = median(&cold[c]).as_secs_f64() / median(baseline).as_secs_f64();
        let warm_ratio = median(&warm[c]).as_secs_f64() / median(baseline).as_secs_f64();
        row_ms(&format!("   mcpod cold, {}", case.label), &cold[c]);
        println!("{:>96}", format!("{cold_ratio:.3}x"));
        row_ms(&format!("   mcpod warm, {}", case.label), &warm[c]);
        println!(
            "{:>96}",
            format!("{warm_ratio:.3}x ({:.0}x faster)", 1.0 / warm_ratio)
        );
        if c == 3 {
            row_ms(
                "   baseline node x3: three bare podman run -i at once",
                &b_node3,
            );
            println!(
                "{:>96}",
                format!(
                    "mcpod cold {:.3}x of it",
                    median(&cold[c]).as_secs_f64() / median(&b_node3).as_secs_f64()
                )
            );
        }
        if case.label.contains("3 servers") {
            holds.push((
                format!("3-server cold launch ({}) within {TARGET_THREE_SERVER_RATIO}x of the 1-server baseline: {cold_ratio:.3}x", case.label),
                cold_ratio <= TARGET_THREE_SERVER_RATIO,
            ));
        }
        holds.push((
            format!(
                "warm launch ({}) under {TARGET_WARM_MS} ms p50 and >= {TARGET_WARM_SPEEDUP}x faster than the baseline: {:.1} ms, {:.0}x",
                case.label,
                ms(median(&warm[c])),
                1.0 / warm_ratio
            ),
            ms(median(&warm[c])) < TARGET_WARM_MS && 1.0 / warm_ratio >= TARGET_WARM_SPEEDUP,
        ));
    }
    row_ms(
        "   hello, 1 server, cold, a tag that mcpod did not build",
        &cold_elsewhere,
    );
    println!(
        "{:>96}",
        format!(
            "{:.3}x",
            median(&cold_elsewhere).as_secs_f64() / median(&b_hello).as_secs_f64()
        )
    );
    row_ms(
        "   stop: mcpod stop_session, hello (not in the above)",
        &m_stop,
    );
    row_ms("   stop: baseline stdin EOF -> podman exits", &b_stop);
    for (what, ok) in &holds {
        println!("   {what}: {}", verdict(*ok));
    }
    println!();
    println!("2. mcpod serve resident memory (VmRSS)");
    println!(
        "   idle after initialize               {:>8.1} MiB",
        rss_idle as f64 / 1024.0
    );
    println!(
        "   after 1 (0 sessions)                {:>8.1} MiB",
        rss_before as f64 / 1024.0
    );
    println!(
        "   with {} sessions                     {:>8.1} MiB (VmHWM {:.1} MiB, {threads} threads)   target < {TARGET_RSS_MIB} MiB: {}",
        plan.sessions,
        rss_mib,
        hwm as f64 / 1024.0,
        verdict(rss_mib < TARGET_RSS_MIB)
    );
    println!(
        "   after stopping them                 {:>8.1} MiB",
        rss_after as f64 / 1024.0
    );
    println!(
        "   {} sequential launches {:.0} ms, tools/list of {listed} tools {:.1} ms, {} stop_session {:.0} ms, mcpod exit on EOF {:.0} ms",
        plan.sessions,
        ms(launch_all),
        ms(list_time),
        plan.sessions,
        ms(stop_all),
        ms(exit)
    );
    println!();
    println!("3. host processes per session (podman, conmon)");
    let per = |with: (usize, usize), n: usize| (with.0 as f64 / n as f64, with.1 as f64 / n as f64);
    let one = per(procs_one, plan.sessions);
    let three_per = per(procs_three, (plan.sessions / 2).max(1));
    println!(
        "   1 server:  {:.2} podman, {:.2} conmon per session ({} sessions)",
        one.0, one.1, plan.sessions
    );
    println!(
        "   3 servers: {:.2} podman, {:.2} conmon per session ({} sessions)   target one of each: {}",
        three_per.0,
        three_per.1,
        plan.sessions / 2,
        verdict((three_per.0 - 1.0).abs() < 0.01 && (three_per.1 - 1.0).abs() < 0.01)
    );
    println!(
        "   containers left after stop_session: {}; after mcpod exit: {}   {}",
        list_or_none(&left_running),
        list_or_none(&left_after_exit),
        verdict(left_running.is_empty() && left_after_exit.is_empty())
    );
    rows::print(&rows::Figures {
        cold: &cold,
        cold_elsewhere: &cold_elsewhere,
        warm: &warm,
        b_hello: &b_hello,
        b_node: &b_node,
        b_node3: &b_node3,
        m_stop: &m_stop,
        b_stop: &b_stop,
        procs: [one, three_per],
        rss: (rss_idle as f64 / 1024.0, rss_mib),
        sessions: plan.sessions,
    });
    node_cache.print();
    if !left_running.is_empty() || !left_after_exit.is_empty() {
        return Err("containers were left behind".into());
    }
    Ok(())
}

/// `support::serve`, its pid registered for cleanup.
async fn serve(
    repo: &std::path::Path,
    extra: &[String],
    cleanup: &Cleanup,
) -> Result<(Client, u32, Duration), Error> {
    let served = support::serve(repo, extra).await?;
    cleanup
        .mcpod_pids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(served.1);
    Ok(served)
}

/// A launch to time: an image whose default launch is the case, and a tool
/// the listing must show.
struct Case {
    label: &'static str,
    image: String,
    tool: String,
}

impl Case {
    fn new(label: &'static str, image: &str, tool: &str) -> Case {
        Case {
            label,
            image: image.to_string(),
            tool: tool.to_string(),
        }
    }
}

/// Launch `case` and list the tools; the session, and whether it came from
/// the pool (its progress said so, or its id was pooled).
async fn launch_case(client: &Client, case: &Case) -> Result<(String, bool), Error> {
    let pooled: Vec<String> = pool_sessions(client, &case.image).await?;
    let info = structured(&call(client, "launch_session", json!({"image": case.image})).await?)?;
    let session = info["session"].as_str().ok_or("no session id")?.to_string();
    let servers = info["servers"].as_object().ok_or("no servers")?;
    if let Some((name, s)) = servers.iter().find(|(_, s)| s["status"] != "ready") {
        return Err(format!("{}: server {name} is not ready: {s}", case.label).into());
    }
    let tools = client.list_all_tools().await?;
    let want = format!("{session}_{}", case.tool);
    if !tools.iter().any(|t| t.name == want) {
        return Err(format!("tools/list after launch lacks {want}").into());
    }
    let handed = pooled.contains(&session);
    Ok((session, handed))
}

/// The ids of pooled sessions of `image` (none when the list is cheap to skip).
async fn pool_sessions(client: &Client, image: &str) -> Result<Vec<String>, Error> {
    let listed = structured(&call(client, "list_sessions", json!({})).await?)?;
    Ok(listed["pool"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["image"] == image)
        .filter_map(|p| p["session"].as_str().map(str::to_string))
        .collect())
}

/// Wait until the pool holds a session of `image`.
async fn pool_has(client: &Client, image: &str, within: Duration) -> Result<(), Error> {
    let until = Instant::now() + within;
    while pool_sessions(client, image).await?.is_empty() {
        if Instant::now() > until {
            return Err(format!("the pool had no session of {image} within {within:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// An image FROM `base` whose label declares exactly `servers`, with
/// `more` Containerfile lines.
async fn node_variant(
    client: &Client,
    repo: &std::path::Path,
    name: &str,
    base: &str,
    servers: Value,
    more: &str,
) -> Result<String, Error> {
    let dir = format!(
        "target/bench-contexts/{}",
        name.rsplit('/').next().unwrap_or(name)
    );
    std::fs::create_dir_all(repo.join(&dir))?;
    let label = serde_json::to_string(&servers)?.replace('\'', "");
    std::fs::write(
        repo.join(&dir).join("Containerfile"),
        format!("FROM {base}\nLABEL io.mcpod.servers='{label}'\n{more}"),
    )?;
    let built =
        structured(&call(client, "build_image", json!({"name": name, "context": dir})).await?)?;
    Ok(built["tag"]
        .as_str()
        .ok_or("build_image returned no tag")?
        .to_string())
}

struct Launched {
    session: String,
    container: String,
}

async fn launch(client: &Client, image: &str) -> Result<Launched, Error> {
    let launched = structured(&call(client, "launch_session", json!({"image": image})).await?)?;
    let session = launched["session"].as_str().ok_or("no session id")?;
    // Its container is in the session's detail.
    let listed = call(client, "list_sessions", json!({"session": session})).await?;
    let info = structured(&listed)?["detail"].clone();
    let hello = &info["servers"]["hello"];
    if hello["status"] != "ready" {
        return Err(format!("the hello server is not ready: {hello}").into());
    }
    Ok(Launched {
        session: info["session"].as_str().ok_or("no session id")?.to_string(),
        container: info["container"]
            .as_str()
            .ok_or("no container")?
            .to_string(),
    })
}

async fn stop(client: &Client, session: &str) -> Result<(), Error> {
    let stopped = structured(&call(client, "stop_session", json!({"session": session})).await?)?;
    if stopped["stopped"] != true {
        return Err(format!("stop_session {session}: {stopped}").into());
    }
    Ok(())
}
