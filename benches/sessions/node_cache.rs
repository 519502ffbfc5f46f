//! Node servers that start warm: three node 22 servers in one session, with
//! the compile cache mcpod bakes into a provisioned image and without it,
//! against one bare `podman run -i` of the same server without it (the
//! target: within 1.15x), and one with it.
//!
//! `mcpod provision PACKAGE --runtime node@22` makes the image (a cache hit
//! after the first time); two images FROM it declare its server three
//! times, one of them with node's compile cache turned off
//! (`NODE_DISABLE_COMPILE_CACHE=1`, which node ≥ 22.8 reads; the cache's
//! files stay). Each launch is `launch_session` + `tools/list` through the
//! bench's cold mcpod, interleaved with the bare runs (mcpod's hardening
//! flags; without the cache by the same variable).

use std::time::Instant;

use serde_json::{Value, json};

use super::podman::baseline_once;
use super::{Case, TARGET_THREE_SERVER_RATIO, launch_case, node_variant, stop};
use crate::support::{Client, Error, MCPOD, median, ms, pct, perf_row, row_ms, verdict};

/// A real server, at the version the reference image pins.
const PACKAGE: &str = "npm:@modelcontextprotocol/server-everything@2026.8.31";
const THREE: &str = "localhost/mcpod-bench-node22-three";
const THREE_NO_CACHE: &str = "localhost/mcpod-bench-node22-three-no-cache";
/// What turns node's compile cache off.
const NO_CACHE: &str = "NODE_DISABLE_COMPILE_CACHE=1";
/// The tool the listing must show, of the third server.
const TOOL: &str = "echo";

/// The provisioned image: its tag, its one server's name and label spec,
/// and what the provision said of the cache.
struct Provisioned {
    tag: String,
    name: String,
    spec: Value,
    cache: String,
}

/// `mcpod provision PACKAGE --runtime node@22`; the image must carry the
/// compile cache.
fn provision() -> Result<Provisioned, Error> {
    let out = std::process::Command::new(MCPOD)
        .args(["provision", PACKAGE, "--runtime", "node@22", "--json"])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "mcpod provision {PACKAGE}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let done: Value = serde_json::from_slice(&out.stdout)?;
    let cache = done["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|n| n.starts_with("starts warm"))
        .ok_or_else(|| format!("{PACKAGE} on node 22 has no compile cache: {done}"))?
        .to_string();
    let tag = done["image"]["tag"]
        .as_str()
        .ok_or("provision returned no tag")?
        .to_string();
    let labels = std::process::Command::new("podman")
        .args(["image", "inspect", "--format", "{{json .Labels}}", &tag])
        .output()?;
    let labels: Value = serde_json::from_slice(&labels.stdout)?;
    let servers: Value = serde_json::from_str(
        labels["io.mcpod.servers"]
            .as_str()
            .ok_or("no servers label")?,
    )?;
    let (name, spec) = servers
        .as_object()
        .and_then(|s| s.iter().next())
        .ok_or("the servers label is empty")?;
    Ok(Provisioned {
        tag,
        name: name.clone(),
        spec: spec.clone(),
        cache,
    })
}

/// The server's argv, and its label's literal env as `--env` flags.
fn argv_and_env(spec: &Value) -> (Vec<String>, Vec<String>) {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut argv = strings(&spec["command"]);
    argv.extend(strings(&spec["args"]));
    let env = spec["env"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("--env={k}={v}")))
        .collect();
    (argv, env)
}

/// What a run measured (each sample list sorted), to print with the rest.
pub struct Measured {
    p: Provisioned,
    launches: usize,
    three_cached: Vec<std::time::Duration>,
    three_uncached: Vec<std::time::Duration>,
    bare_uncached: Vec<std::time::Duration>,
    bare_cached: Vec<std::time::Duration>,
}

/// Measure; `flags` are mcpod's hardening flags for the bare runs.
pub async fn measure(
    mcpod: &Client,
    repo: &std::path::Path,
    flags: &[String],
    launches: usize,
) -> Result<Measured, Error> {
    let p = provision()?;
    let three: serde_json::Map<String, Value> = (1..=3)
        .map(|k| (format!("{}{k}", p.name), p.spec.clone()))
        .collect();
    let cached = node_variant(mcpod, repo, THREE, &p.tag, json!(three), "").await?;
    let uncached = node_variant(
        mcpod,
        repo,
        THREE_NO_CACHE,
        &p.tag,
        json!(three),
        &format!("ENV {NO_CACHE}\n"),
    )
    .await?;
    let tool = format!("{}3__{TOOL}", p.name);
    let cases = [
        Case::new("node 22, 3 servers, cache", &cached, &tool),
        Case::new("node 22, 3 servers, no cache", &uncached, &tool),
    ];
    let (argv, env) = argv_and_env(&p.spec);
    let with_cache: Vec<String> = flags.iter().chain(&env).cloned().collect();
    let mut without = with_cache.clone();
    without.push(format!("--env={NO_CACHE}"));

    // One untimed round first.
    for case in &cases {
        stop(mcpod, &launch_case(mcpod, case).await?.0).await?;
    }
    baseline_once(&without, &p.tag, &argv, TOOL, 1000).await?;
    baseline_once(&with_cache, &p.tag, &argv, TOOL, 2000).await?;
    let mut s = Measured {
        p,
        launches,
        three_cached: Vec::new(),
        three_uncached: Vec::new(),
        bare_uncached: Vec::new(),
        bare_cached: Vec::new(),
    };
    for i in 1..=launches {
        for (c, case) in cases.iter().enumerate() {
            let t = Instant::now();
            let (session, _) = launch_case(mcpod, case).await?;
            let took = t.elapsed();
            stop(mcpod, &session).await?;
            [&mut s.three_cached, &mut s.three_uncached][c].push(took);
        }
        s.bare_uncached.push(
            baseline_once(&without, &s.p.tag, &argv, TOOL, 1000 + i)
                .await?
                .0,
        );
        s.bare_cached.push(
            baseline_once(&with_cache, &s.p.tag, &argv, TOOL, 2000 + i)
                .await?
                .0,
        );
    }
    for v in [
        &mut s.three_cached,
        &mut s.three_uncached,
        &mut s.bare_uncached,
        &mut s.bare_cached,
    ] {
        v.sort();
    }
    Ok(s)
}

impl Measured {
    pub fn print(&self) {
        let (p, s, launches) = (&self.p, self, self.launches);
        let base = median(&s.bare_uncached).as_secs_f64();
        let ratio = |v: &[std::time::Duration]| median(v).as_secs_f64() / base;
        println!();
        println!(
            "4. node servers that start warm: {PACKAGE} on node 22 ({})",
            p.cache
        );
        println!(
            "   launch -> tools listed (N={launches}, interleaved)      median        p90        min        max   ratio to one bare run without the cache"
        );
        row_ms("   baseline: one podman run -i, no cache", &s.bare_uncached);
        row_ms("   one podman run -i, with the cache", &s.bare_cached);
        println!("{:>96}", format!("{:.3}x", ratio(&s.bare_cached)));
        row_ms("   mcpod, 3 servers in one session, cache", &s.three_cached);
        println!("{:>96}", format!("{:.3}x", ratio(&s.three_cached)));
        row_ms(
            "   mcpod, 3 servers in one session, no cache",
            &s.three_uncached,
        );
        println!("{:>96}", format!("{:.3}x", ratio(&s.three_uncached)));
        let holds = ratio(&s.three_cached) <= TARGET_THREE_SERVER_RATIO;
        println!(
            "   3 node servers with the cache within {TARGET_THREE_SERVER_RATIO}x of one bare run without it: {:.3}x: {}",
            ratio(&s.three_cached),
            verdict(holds)
        );
        let mid = |v: &[std::time::Duration]| {
            format!(
                "{:.1} ms median (p90 {:.1})",
                ms(median(v)),
                ms(pct(v, 90.0))
            )
        };
        let baseline = format!(
            "one bare `podman run -i` of it without the cache: {:.1} ms",
            ms(median(&s.bare_uncached))
        );
        perf_row(
            "node 22 `server-everything` ×3 in one session, compile cache baked, cold",
            &mid(&s.three_cached),
            &baseline,
            &format!("{:.3}x", ratio(&s.three_cached)),
            &format!(
                "≤ {TARGET_THREE_SERVER_RATIO}x: {}",
                if holds { "met" } else { "missed" }
            ),
        );
        perf_row(
            "same, without the cache",
            &mid(&s.three_uncached),
            &baseline,
            &format!("{:.3}x", ratio(&s.three_uncached)),
            "",
        );
        perf_row(
            "one bare `podman run -i` of it, with the cache",
            &mid(&s.bare_cached),
            &baseline,
            &format!("{:.3}x", ratio(&s.bare_cached)),
            "",
        );
    }
}
