//! The demo: an MCP client (rmcp) that starts `mcpod serve` over stdio and walks
//! through the tools on the bundled `examples/hello` image, printing a transcript.
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
    for attempt in ["first build", "second build"] {
        let result = call(&client, "build_image", build_args.clone()).await?;
        let built = structured(&result)?;
        println!(
            "\n> build_image ({attempt}): {} -> {} in {} ms",
            if built["cache_hit"] == true {
                "cache HIT"
            } else {
                "cache miss, built"
            },
            built["tag"].as_str().unwrap_or("?"),
            built["duration_ms"]
        );
    }

    let tag = structured(&call(&client, "build_image", build_args).await?)?["tag"].clone();
    let inspected =
        structured(&call(&client, "inspect_labels", json!({ "reference": tag })).await?)?;
    println!("\n> inspect_labels {}", tag.as_str().unwrap_or("?"));
    println!(
        "  servers declared in `{}`:",
        inspected["servers_source"].as_str().unwrap_or("-")
    );
    if let Some(servers) = inspected["servers"].as_object() {
        for (name, spec) in servers {
            println!("    {name}: {}", spec["command"]);
        }
    }
    for warning in inspected["warnings"].as_array().into_iter().flatten() {
        println!("  warning: {warning}");
    }
    client.cancel().await?;
    println!("\ndone in {} ms", started.elapsed().as_millis());
    Ok(())
}

async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &'static str,
    arguments: Value,
) -> Result<CallToolResult, Error> {
    let Value::Object(arguments) = arguments else {
        return Err("arguments must be an object".into());
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
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
