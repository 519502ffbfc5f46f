//! find_tools over 1,000 tools (10 sessions of the hostile fixture with 100
//! tools each), through the release `mcpod serve`, against a `ping` round
//! trip (the JSON-RPC floor) and a `tools/list` in the same run; and what an
//! answer costs in bytes against the schemas of every tool. Then the ranking
//! alone (`proxy::search`) in this process over the same 1,000 tools against
//! the filter it replaced (every word a substring of the name, the server's
//! name or the description; kept here only as the baseline), same queries.
//!
//! ```text
//! cargo bench --bench find_tools
//! ```
//!
//! Target: find_tools answers in under 5 ms at the median over 1,000 tools.
//! Without `--bench` it runs a small smoke version.

use std::time::{Duration, Instant};

use mcpod::proxy::search;
use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Client = RunningService<RoleClient, ()>;

const MCPOD: &str = env!("CARGO_BIN_EXE_mcpod");
const TARGET_MS: f64 = 5.0;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (sessions, rounds) = if full { (10, 300) } else { (2, 10) };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::from)
        .and_then(|rt| rt.block_on(run(sessions, rounds)));
    if let Err(e) = result {
        eprintln!("find_tools bench failed: {e}");
        std::process::exit(1);
    }
}

async fn call(client: &Client, tool: &str, arguments: Value) -> Result<(Value, usize), Error> {
    let Value::Object(arguments) = arguments else {
        return Err("arguments must be an object".into());
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await?;
    if result.is_error == Some(true) {
        return Err(format!("{tool} failed: {:?}", result.content).into());
    }
    let bytes = serde_json::to_vec(&result)?.len();
    Ok((result.structured_content.unwrap_or_default(), bytes))
}

fn p(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

async fn run(sessions: usize, rounds: usize) -> Result<(), Error> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = tokio::process::Command::new(MCPOD);
    command
        .args(["serve", "--meta-tools-only", "--root"])
        .arg(repo)
        .env("MCPOD_LOG", "error");
    let mcpod = ().serve(TokioChildProcess::new(command)?).await?;
    let (built, _) = call(
        &mcpod,
        "build_image",
        json!({"name": "localhost/mcpod-hostile", "context": "tests/fixtures/hostile"}),
    )
    .await?;
    let image = built["tag"].as_str().ok_or("no tag")?.to_string();
    let mut ids = Vec::new();
    for _ in 0..sessions {
        let (info, _) = call(
            &mcpod,
            "launch_session",
            json!({"image": image, "overrides": {"hostile": {"args": ["--many-tools", "100"]}}}),
        )
        .await?;
        ids.push(info["session"].as_str().ok_or("no session")?.to_string());
    }
    let (all, _) = call(&mcpod, "find_tools", json!({"query": "", "limit": 1})).await?;
    let total = all["total"].as_u64().unwrap_or(0);
    let (every, every_bytes) =
        call(&mcpod, "find_tools", json!({"query": "", "limit": 100})).await?;
    let per_tool =
        every_bytes as f64 / every["tools"].as_array().map_or(1, |t| t.len().max(1)) as f64;

    let mut find = Vec::new();
    let mut ping = Vec::new();
    let mut list = Vec::new();
    let mut sentence = Vec::new();
    let mut answer_bytes = 0;
    for i in 0..rounds {
        let t = Instant::now();
        let (found, bytes) = call(
            &mcpod,
            "find_tools",
            json!({"query": format!("t{}", i % 80), "limit": 5}),
        )
        .await?;
        find.push(t.elapsed());
        answer_bytes = bytes;
        if found["tools"].as_array().is_none_or(|t| t.is_empty()) {
            return Err(format!("find_tools found nothing: {found}").into());
        }
        let t = Instant::now();
        mcpod
            .peer()
            .send_request(rmcp::model::ClientRequest::PingRequest(Default::default()))
            .await?;
        ping.push(t.elapsed());
        let t = Instant::now();
        mcpod.list_all_tools().await?;
        list.push(t.elapsed());
        let t = Instant::now();
        call(
            &mcpod,
            "find_tools",
            json!({"query": sentence_query(i), "limit": 5}),
        )
        .await?;
        sentence.push(t.elapsed());
    }
    find.sort();
    sentence.sort();
    ping.sort();
    list.sort();
    println!(
        "find_tools bench: {total} tools in {sessions} sessions, {rounds} queries (`tN`, limit 5), interleaved"
    );
    println!("                               median      p99");
    println!(
        "   find_tools                 {:>6.2} ms  {:>6.2} ms",
        p(&find, 0.5),
        p(&find, 0.99)
    );
    println!(
        "   ping (the round trip)      {:>6.2} ms  {:>6.2} ms",
        p(&ping, 0.5),
        p(&ping, 0.99)
    );
    println!(
        "   tools/list (meta-only)     {:>6.2} ms  {:>6.2} ms",
        p(&list, 0.5),
        p(&list, 0.99)
    );
    println!(
        "   find_tools, 6 words *      {:>6.2} ms  {:>6.2} ms",
        p(&sentence, 0.5),
        p(&sentence, 0.99)
    );
    println!(
        "   find_tools over ping: {:.2}x; its own work ~{:.2} ms   target < {TARGET_MS} ms at the median: {}",
        p(&find, 0.5) / p(&ping, 0.5),
        p(&find, 0.5) - p(&ping, 0.5),
        if p(&find, 0.5) < TARGET_MS {
            "HOLDS"
        } else {
            "MISSED"
        }
    );
    println!(
        "   an answer of 5 tools: {answer_bytes} bytes; every tool's schema: ~{:.0} bytes ({total} x {per_tool:.0}), {:.0}x more",
        per_tool * total as f64,
        per_tool * total as f64 / answer_bytes as f64
    );
    // The row scripts/perf-table records into docs/performance.md.
    let (f50, f99, p50) = (p(&find, 0.5), p(&find, 0.99), p(&ping, 0.5));
    println!(
        "perf-row {}",
        json!({
            "what": format!("`find_tools` over {total} tools ({sessions} sessions × 100)"),
            "mcpod": format!("{f50:.2} ms median, p99 {f99:.2}"),
            "baseline": format!("a `ping` round trip: {p50:.2} ms"),
            "result": format!("{:.1}x ({:.2} ms of work); an answer of 5 tools is {answer_bytes} bytes against ~{:.0} for every tool's schema", f50 / p50, f50 - p50, per_tool * total as f64),
            "target": format!("< {TARGET_MS} ms: {}", if f50 < TARGET_MS { "met" } else { "missed" }),
        })
    );
    for id in ids {
        let _ = call(&mcpod, "stop_session", json!({"session": id})).await?;
    }
    let _ = mcpod.cancel().await;
    println!(
        "   * `{}`: every tool shares a word with it",
        sentence_query(5)
    );
    in_process(&every, sessions, rounds)
}

/// A query of 6 words, every one in the description of `t<i>` (so the old
/// filter finds it too), and some in every tool's.
fn sentence_query(i: usize) -> String {
    format!("extra tool t{} answers its own name", i % 80)
}

/// The ranking against the old filter, in this process, over `sessions`
/// copies of the tools `every` found (one session's 100).
fn in_process(every: &Value, sessions: usize, rounds: usize) -> Result<(), Error> {
    let one: Vec<Tool> = every["tools"]
        .as_array()
        .ok_or("no tools")?
        .iter()
        .map(|t| {
            serde_json::from_value(json!({
                "name": t["upstream"], "description": t["description"], "inputSchema": t["input_schema"]
            }))
        })
        .collect::<Result<_, _>>()?;
    let tools: Vec<(String, Tool)> = (0..sessions)
        .flat_map(|s| one.iter().map(move |t| (format!("hostile{s}"), t.clone())))
        .collect();
    // What a server's listing builds once (`catalog::list`), not timed per query.
    let docs: Vec<search::Doc> = tools.iter().map(|(s, t)| search::Doc::new(s, t)).collect();
    for (what, query) in [
        ("`tN`", (|i| format!("t{}", i % 80)) as fn(usize) -> String),
        ("6 words", sentence_query),
    ] {
        let (mut old, mut new) = (Vec::new(), Vec::new());
        for i in 0..rounds {
            let query = query(i);
            let t = Instant::now();
            let found = old_filter(&query, &tools);
            old.push(t.elapsed());
            let t = Instant::now();
            let ranked = ranking(&query, &tools, &docs)?;
            new.push(t.elapsed());
            if found.is_empty() || ranked.is_empty() {
                return Err(format!(
                    "`{query}`: the filter found {found:?}, the ranking {ranked:?}"
                )
                .into());
            }
        }
        old.sort();
        new.sort();
        let (o, n) = (p(&old, 0.5), p(&new, 0.5));
        println!(
            "   in process over {} tools, {what}: ranking {:.3} ms median (p99 {:.3}), old filter {:.3} ms (p99 {:.3}): {:.2}x the old filter",
            tools.len(),
            n,
            p(&new, 0.99),
            o,
            p(&old, 0.99),
            n / o
        );
    }
    Ok(())
}

/// find_tools as mcpod ranks (`search::rank`: the terms of every tool
/// tallied, then scored); the best 5 names.
fn ranking(
    query: &str,
    tools: &[(String, Tool)],
    docs: &[search::Doc],
) -> Result<Vec<String>, Error> {
    let query = search::Query::parse(query)?;
    // Every match copied, as the filter below and `Sessions::find_tools` do.
    let found: Vec<Tool> = search::rank(&query, docs)
        .into_iter()
        .map(|(i, _)| tools[i].1.clone())
        .collect();
    Ok(found
        .into_iter()
        .take(5)
        .map(|t| t.name.to_string())
        .collect())
}

/// The filter find_tools used before the ranking: a tool matched only when
/// every word was in its name, its server's name or its description (3, 2
/// or 1 a word); the best 5 names.
fn old_filter(query: &str, tools: &[(String, Tool)]) -> Vec<String> {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    let mut found: Vec<(usize, Tool)> = tools
        .iter()
        .filter_map(|(server, tool)| {
            let name = tool.name.to_lowercase();
            let server = server.to_lowercase();
            let description = tool
                .description
                .as_deref()
                .unwrap_or_default()
                .to_lowercase();
            let mut score = 0;
            for w in &words {
                if name.contains(w.as_str()) {
                    score += 3;
                } else if server.contains(w.as_str()) {
                    score += 2;
                } else if description.contains(w.as_str()) {
                    score += 1;
                } else {
                    return None;
                }
            }
            Some((score, tool.clone()))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
        .into_iter()
        .take(5)
        .map(|(_, t)| t.name.to_string())
        .collect()
}
