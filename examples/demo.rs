//! The demo: an MCP client (rmcp) that starts `mcpod serve` over stdio and walks
//! through a whole session on the bundled `examples/hello` image — build (a
//! fresh build, then a cache hit), inspect, launch, list the proxied tools, call
//! them, stop — then goes from an npm package name to a tool result in one
//! launch_session, printing a transcript with timings.
//!
//! Run with `scripts/demo` (which sets the host up first), or
//! `cargo run --example demo -- [path to the mcpod binary]`.

use std::time::Instant;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = std::env::args()
        .nth(1)
        .unwrap_or_else(|| repo.join("target/debug/mcpod").display().to_string());
    let mut command = tokio::process::Command::new(&binary);
    command
        .arg("serve")
        .arg("--root")
        .arg(repo)
        .env("MCPOD_LOG", "warn");
    println!("$ {binary} serve --root {}", repo.display());

    let started = Instant::now();
    let client = ().serve(TokioChildProcess::new(command)?).await?;
    let info = client.peer_info().ok_or("mcpod sent no server info")?;
    let server = info
        .server_info
        .clone()
        .ok_or("mcpod sent no server info")?;
    println!(
        "connected to {} {} (protocol {}) in {} ms",
        server.name,
        server.version,
        info.protocol_version,
        started.elapsed().as_millis()
    );
    let tools = client.list_all_tools().await?;
    println!(
        "tools: {}",
        tools
            .iter()
            .map(|t| t.name.as_ref())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let build_args = json!({
        "name": "localhost/mcpod-hello",
        "context": "examples/hello",
    });
    let mut tag = Value::Null;
    for (attempt, no_cache) in [("first build, no_cache", true), ("second build", false)] {
        let mut args = build_args.clone();
        args["no_cache"] = json!(no_cache);
        let t = Instant::now();
        let built = structured(&call(&client, "build_image", args).await?)?;
        println!(
            "\n> build_image ({attempt}): {} {} in {} ms",
            if built["cache_hit"] == true {
                "cache HIT"
            } else {
                "cache miss, built"
            },
            built["tag"].as_str().unwrap_or("?"),
            t.elapsed().as_millis()
        );
        tag = built["tag"].clone();
    }

    let t = Instant::now();
    let inspected =
        structured(&call(&client, "inspect_labels", json!({ "reference": tag })).await?)?;
    println!(
        "\n> inspect_labels {} ({} ms)",
        tag.as_str().unwrap_or("?"),
        t.elapsed().as_millis()
    );
    if let Some(servers) = inspected["servers"].as_object() {
        for (name, spec) in servers {
            println!("  declares {name}: {}", spec["command"]);
        }
    }

    let t = Instant::now();
    let launched = structured(&call(&client, "launch_session", json!({ "image": tag })).await?)?;
    let id = launched["session"].as_str().unwrap_or("?").to_string();
    let elapsed = t.elapsed().as_millis();
    // The launch answers with the servers and their tools; the rest is one call away.
    let listed = call(&client, "list_sessions", json!({ "session": id })).await?;
    let session = structured(&listed)?["detail"].clone();
    println!(
        "\n> launch_session: session {id} in container {} ({elapsed} ms, {} bytes)",
        session["container"].as_str().unwrap_or("?"),
        launched.to_string().len()
    );
    let iso = &session["isolation"];
    println!(
        "  isolation: network {}, cap-drop {}, read-only root {}, {}, pids {}, memory {} MiB, lease {} s",
        text(&iso["network"]),
        text(&iso["cap_drop"]),
        iso["read_only_root"],
        text(&iso["user"]),
        iso["pids_limit"],
        iso["memory_mb"],
        iso["lease_secs"]
    );
    for (name, server) in session["servers"].as_object().into_iter().flatten() {
        println!(
            "  server {name}: {} ({} {}, protocol {})",
            text(&server["status"]),
            text(&server["handshake"]["name"]),
            text(&server["handshake"]["version"]),
            text(&server["handshake"]["protocol_version"])
        );
    }

    let t = Instant::now();
    let proxied: Vec<String> = client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .filter(|n| n.starts_with(&id))
        .collect();
    println!(
        "\n> tools/list ({} ms): {}",
        t.elapsed().as_millis(),
        proxied.join(", ")
    );

    let t = Instant::now();
    let sum = call(
        &client,
        &format!("{id}_hello__add"),
        json!({"a": 40, "b": 2}),
    )
    .await?;
    println!(
        "\n> {id}_hello__add {{a: 40, b: 2}} -> {} ({} ms)",
        sum.structured_content.clone().unwrap_or_default(),
        t.elapsed().as_millis()
    );
    let t = Instant::now();
    let seen = structured(&call(&client, &format!("{id}_hello__whoami"), json!({})).await?)?;
    println!(
        "> {id}_hello__whoami -> interfaces {}, CapEff {}, NoNewPrivs {}, uid map {} ({} ms)",
        seen["network_interfaces"],
        text(&seen["cap_eff"]),
        text(&seen["no_new_privs"]),
        text(&seen["uid_map"]),
        t.elapsed().as_millis()
    );

    let t = Instant::now();
    call(&client, "stop_session", json!({ "session": id })).await?;
    println!("\n> stop_session {id} ({} ms)", t.elapsed().as_millis());

    provision(&client).await?;
    client.cancel().await?;
    println!("\ndone in {} ms", started.elapsed().as_millis());
    Ok(())
}

/// From a package name to a tool result: the bases, then one launch_session
/// of an npm reference (resolved, fetched, built on a miss), two calls, stop.
async fn provision(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
) -> Result<(), Error> {
    let t = Instant::now();
    let bases = structured(&call(client, "list_bases", json!({})).await?)?;
    println!("\n> list_bases ({} ms)", t.elapsed().as_millis());
    for base in bases["bases"].as_array().into_iter().flatten() {
        println!(
            "  {}: {} {} ({})",
            text(&base["runtime"]),
            base["image"].as_str().unwrap_or(text(&base["state"])),
            base["version"].as_str().unwrap_or(""),
            base["origin"]
                .as_str()
                .or(base["will_be_made_from"].as_str())
                .unwrap_or("?")
        );
    }
    let package = "npm:@modelcontextprotocol/server-memory@2026.8.31";
    let t = Instant::now();
    // server-memory keeps its graph beside its code by default; the root is
    // read-only. Its one server's override needs no name.
    let overrides = json!({"env": {"MEMORY_FILE_PATH": "/tmp/memory.json"}});
    let launched = structured(
        &call(
            client,
            "launch_session",
            json!({ "image": package, "overrides": overrides }),
        )
        .await?,
    )?;
    let id = launched["session"].as_str().unwrap_or("?").to_string();
    let listed = call(client, "list_sessions", json!({ "session": id })).await?;
    let session = structured(&listed)?["detail"].clone();
    let p = &session["provisioned"];
    println!(
        "\n> launch_session {{image: {package}, overrides: {overrides}}}: session {id} ({} ms)",
        t.elapsed().as_millis()
    );
    println!(
        "  provisioned {} as {} ({}, {}; lock {})",
        text(&p["reference"]),
        text(&p["image"]["tag"]),
        if p["image"]["cache_hit"] == true {
            "cache hit"
        } else {
            "built"
        },
        if p["fetched"] == true {
            "fetched with npm"
        } else {
            "nothing fetched"
        },
        text(&p["lock"])
    );
    println!("  server {}: {}", text(&p["server"]), p["spec"]["command"]);
    for (name, server) in session["servers"].as_object().into_iter().flatten() {
        println!(
            "  server {name}: {}, {} tools",
            text(&server["status"]),
            server["tools"].as_array().map(Vec::len).unwrap_or(0)
        );
    }
    let t = Instant::now();
    let entity = json!({"entities": [{"name": "mcpod", "entityType": "tool", "observations": ["provisioned from npm in one call"]}]});
    call(client, &format!("{id}_memory__create_entities"), entity).await?;
    let graph = call(client, &format!("{id}_memory__read_graph"), json!({})).await?;
    println!(
        "\n> {id}_memory__create_entities, then {id}_memory__read_graph -> {} ({} ms)",
        graph.structured_content.clone().unwrap_or_default(),
        t.elapsed().as_millis()
    );
    let t = Instant::now();
    call(client, "stop_session", json!({ "session": id })).await?;
    println!("\n> stop_session {id} ({} ms)", t.elapsed().as_millis());
    Ok(())
}

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
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

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

fn structured(result: &CallToolResult) -> Result<Value, Error> {
    result
        .structured_content
        .clone()
        .ok_or_else(|| "the tool returned no structured content".into())
}
