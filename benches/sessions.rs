//! Sessions end to end: the release `mcpod serve` binary under an rmcp client,
//! against podman driven by hand with the same hardening flags, in one run.
//!
//! ```text
//! cargo bench --bench sessions
//! ```
//!
//! It builds the `examples/hello` image through mcpod's `build_image` (a cache
//! hit after the first time), then measures
//!
//! 1. launch to "tools listed": `launch_session` + `tools/list` through mcpod
//!    (N=10, after one warm-up) against `podman run -i --rm` + `initialize` +
//!    `tools/list` (N=10, interleaved). A one-server session runs its server
//!    as the container's process, so the baseline's flags are the exact
//!    `podman run -i` argv mcpod used (podman's `CreateCommand` of the warm-up
//!    session) minus what only an owned session needs: its name, the
//!    `io.mcpod.*` labels, its cidfile and the entrypoint (the baseline names
//!    the same command). Stopping is timed separately (`stop_session` against
//!    the baseline's stdin EOF to exit). In the same loop, a session of the
//!    image with a second server declared (a paused container, each server
//!    started with `podman exec -i`) shows what several servers cost.
//! 2. a proxied `tools/call` of `<session>_hello__add`, 2000 times in a row,
//!    against the same call on a direct `podman exec -i <container>
//!    /bin/hello-server` connection into the same container (interleaved in
//!    blocks of 200), with the CPU time mcpod spent per call (schedstat of all
//!    its threads); then calls/s with 8 concurrent callers for 3 s, both ways.
//! 3. the serve process's VmRSS: idle after `initialize`, and with 10 hello
//!    sessions; then every session is stopped and no container may be left.
//!
//! It prints a table, the ratios, and whether each target holds (launch
//! overhead <= 15 %, added call latency at the median <= 200 us, >= 2000
//! calls/s through one session, RSS < 30 MiB with 10 sessions). Every
//! container it started (mcpod's sessions, by owner pid; the baseline's, by
//! the `io.mcpod.bench` label) is removed on every path, panics included.
//! Without `--bench` (as under `cargo test --benches`) it runs a tiny smoke
//! version. `MCPOD_BENCH_BIN` runs another mcpod binary (e.g. an unstripped
//! build, or a `perf record` wrapper; then RSS and CPU figures are the wrapper's).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{Peer, RoleClient, ServiceExt};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Client = RunningService<RoleClient, ()>;

const MCPOD: &str = env!("CARGO_BIN_EXE_mcpod");
const IMAGE_NAME: &str = "localhost/mcpod-hello";
/// The hello image with a second server declared.
const TWO_SERVER_IMAGE: &str = "localhost/mcpod-bench-two-servers";
/// Baseline containers carry this label (value: the bench's pid).
const BENCH_LABEL: &str = "io.mcpod.bench";
const OWNER_PID_LABEL: &str = "io.mcpod.owner-pid";

const TARGET_LAUNCH_OVERHEAD_PCT: f64 = 15.0;
const TARGET_ADDED_US: f64 = 200.0;
const TARGET_CALLS_PER_SEC: f64 = 2000.0;
const TARGET_RSS_MIB: f64 = 30.0;

struct Plan {
    launches: usize,
    calls: usize,
    block: usize,
    warmup_calls: usize,
    callers: usize,
    throughput_for: Duration,
    sessions: usize,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            launches: 10,
            calls: 2000,
            block: 200,
            warmup_calls: 200,
            callers: 8,
            throughput_for: Duration::from_secs(3),
            sessions: 10,
        }
    } else {
        Plan {
            launches: 1,
            calls: 20,
            block: 10,
            warmup_calls: 5,
            callers: 2,
            throughput_for: Duration::from_millis(300),
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

/// Removes every container this bench caused, on every path: the sessions of
/// the mcpod it started (by owner pid) and the baseline's (by bench label).
#[derive(Default)]
struct Cleanup {
    mcpod_pid: AtomicU32,
}

impl Cleanup {
    fn filters(&self) -> Vec<String> {
        let mut filters = vec![format!("label={BENCH_LABEL}={}", std::process::id())];
        let pid = self.mcpod_pid.load(Ordering::SeqCst);
        if pid != 0 {
            filters.push(format!("label={OWNER_PID_LABEL}={pid}"));
        }
        filters
    }

    /// Containers (running or not) left by this bench.
    fn leftovers(&self) -> Vec<String> {
        let mut names = Vec::new();
        for filter in self.filters() {
            names.extend(podman_ps(&filter));
        }
        names
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let left = self.leftovers();
        if !left.is_empty() {
            eprintln!(
                "cleanup: removing {} container(s): {}",
                left.len(),
                left.join(", ")
            );
            let _ = Command::new("podman")
                .args(["rm", "--force", "--ignore", "--time", "0", "--"])
                .args(&left)
                .stdout(Stdio::null())
                .status();
        }
        let pid = self.mcpod_pid.load(Ordering::SeqCst);
        if pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists() {
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    }
}

fn podman_ps(filter: &str) -> Vec<String> {
    Command::new("podman")
        .args(["ps", "--all", "--format", "{{.Names}}", "--filter", filter])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

async fn run(plan: &Plan, cleanup: &Cleanup) -> Result<(), Error> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    if !repo.join("examples/hello/bin/hello-server").is_file() {
        return Err("examples/hello/bin/hello-server is missing: run scripts/build-hello".into());
    }

    // mcpod serve, as an MCP client would start it.
    let binary = std::env::var("MCPOD_BENCH_BIN").unwrap_or_else(|_| MCPOD.to_string());
    let mut command = tokio::process::Command::new(&binary);
    command
        .arg("serve")
        .arg("--root")
        .arg(repo)
        .env("MCPOD_LOG", "warn");
    let transport = TokioChildProcess::new(command)?;
    let pid = transport.id().ok_or("mcpod serve has no pid")?;
    cleanup.mcpod_pid.store(pid, Ordering::SeqCst);
    let started = Instant::now();
    let mcpod = ().serve(transport).await?;
    let connected_in = started.elapsed();
    let protocol = mcpod
        .peer_info()
        .map(|i| i.protocol_version.to_string())
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kib(pid)?;

    let built = structured(
        &call(
            &mcpod,
            "build_image",
            json!({"name": IMAGE_NAME, "context": "examples/hello"}),
        )
        .await?,
    )?;
    let image = built["tag"]
        .as_str()
        .ok_or("build_image returned no tag")?
        .to_string();
    let two = structured(
        &call(
            &mcpod,
            "build_image",
            json!({"name": TWO_SERVER_IMAGE, "context": "examples/hello",
                   "servers": {"second": {"command": ["/bin/hello-server"]}}}),
        )
        .await?,
    )?;
    let two_image = two["tag"]
        .as_str()
        .ok_or("build_image returned no tag")?
        .to_string();

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
        if built["cache_hit"] == true {
            "cache hit"
        } else {
            "built"
        }
    );

    // Warm-up of both paths; the launch also tells us the isolation mcpod grants.
    let warm = launch(&mcpod, &image).await?;
    let create = create_command(&warm.container).await?;
    let (flags, _) = hardening_flags(&create);
    stop(&mcpod, &warm.session).await?;
    println!("mcpod ran:    {}", shell_words(&create));
    println!(
        "baseline: podman run -i {} {image} /bin/hello-server",
        shell_words(&flags)
    );
    baseline_once(&flags, &image, 0).await?;
    let warm = launch(&mcpod, &two_image).await?;
    stop(&mcpod, &warm.session).await?;

    // 1. Launch to tools listed, interleaved.
    let mut m_ready = Vec::new();
    let mut m_stop = Vec::new();
    let mut b_ready = Vec::new();
    let mut b_stop = Vec::new();
    let mut two_ready = Vec::new();
    for i in 0..plan.launches {
        let t = Instant::now();
        let s = launch(&mcpod, &image).await?;
        let tools = mcpod.list_all_tools().await?;
        let add = format!("{}_hello__add", s.session);
        if !tools.iter().any(|t| t.name == add) {
            return Err(format!("tools/list after launch lacks {add}").into());
        }
        m_ready.push(t.elapsed());
        let t = Instant::now();
        stop(&mcpod, &s.session).await?;
        m_stop.push(t.elapsed());

        let (ready, teardown) = baseline_once(&flags, &image, i + 1).await?;
        b_ready.push(ready);
        b_stop.push(teardown);

        let t = Instant::now();
        let s = launch(&mcpod, &two_image).await?;
        let tools = mcpod.list_all_tools().await?;
        let second = format!("{}_second__add", s.session);
        if !tools.iter().any(|t| t.name == second) {
            return Err(format!("tools/list after launch lacks {second}").into());
        }
        two_ready.push(t.elapsed());
        stop(&mcpod, &s.session).await?;
    }

    // 2. Proxied calls against a direct connection into the same container.
    let s = launch(&mcpod, &image).await?;
    let proxied = format!("{}_hello__add", s.session);
    let mut exec = tokio::process::Command::new("podman");
    exec.args(["exec", "-i", &s.container, "/bin/hello-server"]);
    let direct = connect(exec).await?;
    let (mp, dp) = (mcpod.peer().clone(), direct.peer().clone());
    for i in 0..plan.warmup_calls {
        add(&mp, &proxied, i as i64).await?;
        add(&dp, "add", i as i64).await?;
    }
    let mut m_call = Vec::with_capacity(plan.calls);
    let mut d_call = Vec::with_capacity(plan.calls);
    let mut m_cpu_ns = 0;
    let mut done = 0;
    while done < plan.calls {
        let n = plan.block.min(plan.calls - done);
        let cpu = cpu_ns(pid);
        for i in done..done + n {
            let t = Instant::now();
            add(&mp, &proxied, i as i64).await?;
            m_call.push(t.elapsed());
        }
        m_cpu_ns += cpu_ns(pid).saturating_sub(cpu);
        for i in done..done + n {
            let t = Instant::now();
            add(&dp, "add", i as i64).await?;
            d_call.push(t.elapsed());
        }
        done += n;
    }
    let cpu = cpu_ns(pid);
    let m_tput = throughput(&mp, &proxied, plan.callers, plan.throughput_for).await?;
    let m_tput_cpu_ns = cpu_ns(pid).saturating_sub(cpu);
    let d_tput = throughput(&dp, "add", plan.callers, plan.throughput_for).await?;
    let _ = direct.cancel().await;
    stop(&mcpod, &s.session).await?;

    // 3. Memory with N sessions.
    let rss_before = rss_kib(pid)?;
    let t = Instant::now();
    let mut sessions = Vec::new();
    for _ in 0..plan.sessions {
        sessions.push(launch(&mcpod, &image).await?.session);
    }
    let launch_all = t.elapsed();
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
    let left_running = cleanup.leftovers();

    let t = Instant::now();
    let _ = mcpod.cancel().await;
    let exit = t.elapsed();
    let left_after_exit = cleanup.leftovers();

    // The report.
    m_ready.sort();
    b_ready.sort();
    m_stop.sort();
    b_stop.sort();
    two_ready.sort();
    m_call.sort();
    d_call.sort();
    let overhead = (median(&m_ready).as_secs_f64() / median(&b_ready).as_secs_f64() - 1.0) * 100.0;
    let added_us = us(median(&m_call)) - us(median(&d_call));
    let m_rate = m_tput.0 as f64 / m_tput.1.as_secs_f64();
    let d_rate = d_tput.0 as f64 / d_tput.1.as_secs_f64();
    let rss_mib = rss_sessions as f64 / 1024.0;

    println!();
    println!(
        "1. launch -> tools listed (N={}, interleaved)      median        p90        min        max",
        plan.launches
    );
    row_ms("   mcpod launch_session + tools/list", &m_ready);
    row_ms("   podman run -i + initialize + tools/list", &b_ready);
    println!(
        "   mcpod overhead at the median: {:+.1} % ({:+.0} ms; ratio {:.3})   target <= {TARGET_LAUNCH_OVERHEAD_PCT} %: {}",
        overhead,
        ms(median(&m_ready)) - ms(median(&b_ready)),
        median(&m_ready).as_secs_f64() / median(&b_ready).as_secs_f64(),
        verdict(overhead <= TARGET_LAUNCH_OVERHEAD_PCT)
    );
    row_ms("   stop: mcpod stop_session (not in the above)", &m_stop);
    row_ms("   stop: baseline stdin EOF -> podman exits", &b_stop);
    row_ms(
        "   two servers: mcpod launch_session + tools/list",
        &two_ready,
    );
    println!(
        "   two servers (paused container + podman exec each) against the one-server baseline: {:+.1} % at the median",
        (median(&two_ready).as_secs_f64() / median(&b_ready).as_secs_f64() - 1.0) * 100.0
    );
    println!();
    println!(
        "2. tools/call add, sequential (N={} each, blocks of {})   median        p90        p99        max",
        plan.calls, plan.block
    );
    row_us(&format!("   mcpod {proxied}"), &m_call);
    row_us("   direct podman exec -i, same container", &d_call);
    println!(
        "   added at the median: {added_us:.0} us (ratio {:.2}x); at p99: {:.0} us   target <= {TARGET_ADDED_US} us: {}",
        us(median(&m_call)) / us(median(&d_call)),
        us(pct(&m_call, 99.0)) - us(pct(&d_call, 99.0)),
        verdict(added_us <= TARGET_ADDED_US)
    );
    println!(
        "   mcpod serve CPU per proxied call: {:.0} us sequential, {:.0} us under {} callers ({:.0} % of one core)",
        m_cpu_ns as f64 / 1e3 / m_call.len() as f64,
        m_tput_cpu_ns as f64 / 1e3 / m_tput.0 as f64,
        plan.callers,
        m_tput_cpu_ns as f64 / m_tput.1.as_nanos() as f64 * 100.0
    );
    println!(
        "   throughput, {} concurrent callers for {:.1} s: mcpod {:.0} calls/s ({} calls), direct {:.0} calls/s (ratio {:.2})   target >= {TARGET_CALLS_PER_SEC}: {}",
        plan.callers,
        plan.throughput_for.as_secs_f64(),
        m_rate,
        m_tput.0,
        d_rate,
        m_rate / d_rate,
        verdict(m_rate >= TARGET_CALLS_PER_SEC)
    );

    println!();
    println!("3. mcpod serve resident memory (VmRSS)");
    println!(
        "   idle after initialize               {:>8.1} MiB",
        rss_idle as f64 / 1024.0
    );
    println!(
        "   after 1-2 (0 sessions)              {:>8.1} MiB",
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
    println!(
        "   containers left after stop_session: {}; after mcpod exit: {}   {}",
        list_or_none(&left_running),
        list_or_none(&left_after_exit),
        verdict(left_running.is_empty() && left_after_exit.is_empty())
    );
    if !left_running.is_empty() || !left_after_exit.is_empty() {
        return Err("containers were left behind".into());
    }
    Ok(())
}

struct Launched {
    session: String,
    container: String,
}

async fn launch(client: &Client, image: &str) -> Result<Launched, Error> {
    let info = structured(&call(client, "launch_session", json!({"image": image})).await?)?;
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

/// The exact `podman run -i` argv mcpod used for `container` (podman keeps it).
async fn create_command(container: &str) -> Result<Vec<String>, Error> {
    let out = tokio::process::Command::new("podman")
        .args([
            "inspect",
            "--format",
            "{{json .Config.CreateCommand}}",
            "--",
            container,
        ])
        .output()
        .await?;
    let argv: Vec<String> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("podman inspect {container}: {e}"))?;
    if argv.len() < 4 || argv[1..3] != ["run", "-i"] {
        return Err(format!("unexpected create command of {container}: {argv:?}").into());
    }
    Ok(argv)
}

/// Split mcpod's `podman run -i` argv (`podman run -i FLAGS... IMAGE`) into
/// what only an owned session needs (its name, `io.mcpod.*` labels, cidfile
/// and entrypoint) and the rest: (the rest of the flags, image).
fn hardening_flags(create: &[String]) -> (Vec<String>, String) {
    let flags = &create[3..create.len() - 1];
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
            || f.starts_with("--entrypoint="))
        {
            kept.push(f.clone());
        }
    }
    (kept, create[create.len() - 1].clone())
}

/// One baseline run: time to tools listed, then time from stdin EOF to exit.
async fn baseline_once(
    flags: &[String],
    image: &str,
    i: usize,
) -> Result<(Duration, Duration), Error> {
    let bench = std::process::id();
    let mut command = tokio::process::Command::new("podman");
    command
        .args(["run", "-i"])
        .args(flags)
        .arg(format!("--name=mcpod-bench-{bench}-{i}"))
        .arg(format!("--label={BENCH_LABEL}={bench}"))
        .arg(image)
        .arg("/bin/hello-server");
    let t = Instant::now();
    let client = connect(command).await?;
    let tools = client.list_all_tools().await?;
    if !tools.iter().any(|t| t.name == "add") {
        return Err("the baseline's tools/list lacks add".into());
    }
    let ready = t.elapsed();
    let t = Instant::now();
    client.cancel().await?;
    Ok((ready, t.elapsed()))
}

/// An rmcp client on `command`'s stdio; a failed handshake quotes its stderr.
async fn connect(command: tokio::process::Command) -> Result<Client, Error> {
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
    match ().serve(transport).await {
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

async fn add(peer: &Peer<RoleClient>, tool: &str, a: i64) -> Result<(), Error> {
    let Value::Object(arguments) = json!({"a": a, "b": 1}) else {
        unreachable!()
    };
    let result = peer
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await?;
    let sum = result
        .structured_content
        .as_ref()
        .and_then(|s| s["sum"].as_i64());
    if result.is_error == Some(true) || sum != Some(a + 1) {
        return Err(format!("{tool}({a}, 1) returned {result:?}").into());
    }
    Ok(())
}

/// Calls completed by `callers` concurrent loops for `span`, and the wall time.
async fn throughput(
    peer: &Peer<RoleClient>,
    tool: &str,
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
                add(&peer, &tool, (c * 1_000_000 + n) as i64).await?;
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

async fn call(client: &Client, tool: &str, arguments: Value) -> Result<CallToolResult, Error> {
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

fn structured(result: &CallToolResult) -> Result<Value, Error> {
    result
        .structured_content
        .clone()
        .ok_or_else(|| "the tool returned no structured content".into())
}

fn status_field(pid: u32, field: &str) -> Result<String, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status").into())
}

fn status_kib(pid: u32, field: &str) -> Result<u64, Error> {
    let value = status_field(pid, field)?;
    Ok(value.trim_end_matches("kB").trim().parse()?)
}

/// CPU time of every thread of `pid` so far (/proc/PID/task/*/schedstat), in ns.
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn rss_kib(pid: u32) -> Result<u64, Error> {
    status_kib(pid, "VmRSS:")
}

fn podman_version() -> String {
    Command::new("podman")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(sorted: &[Duration]) -> Duration {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn row_ms(label: &str, sorted: &[Duration]) {
    println!(
        "{label:<48} {:>7.1} ms {:>7.1} ms {:>7.1} ms {:>7.1} ms",
        ms(median(sorted)),
        ms(pct(sorted, 90.0)),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1])
    );
}

fn row_us(label: &str, sorted: &[Duration]) {
    println!(
        "{label:<48} {:>7.0} us {:>7.0} us {:>7.0} us {:>7.0} us",
        us(median(sorted)),
        us(pct(sorted, 90.0)),
        us(pct(sorted, 99.0)),
        us(sorted[sorted.len() - 1])
    );
}

fn verdict(holds: bool) -> &'static str {
    if holds { "HOLDS" } else { "MISSED" }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn shell_words(args: &[String]) -> String {
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
