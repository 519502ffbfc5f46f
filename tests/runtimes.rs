//! Runtimes by version, with real packages: a package whose `engines.node`
//! asks for a newer node than the host's runs on one the npm registry's
//! official binaries give; a request may name one, and a mismatch says so.

mod common;

use common::rpc::{Server, initialize, text_of};
use serde_json::{Value, json};

/// Needs `node:sqlite` (node ≥ 22.5; engines.node `>=22.5.0`): dies at
/// start on the host's node 20.
const DBHUB: &str = "npm:@bytebase/dbhub@1.4.0";

fn structured(result: &Value) -> Value {
    assert_ne!(
        result["isError"],
        true,
        "the tool failed: {}",
        text_of(result)
    );
    result["structuredContent"].clone()
}

/// `mcpod provision REFERENCE [ARGS] --json`: the CLI has no MCP deadline
/// (a cold node download and base take longer than a test client waits).
fn provision_cli(reference: &str, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(["provision", reference, "--json"])
        .args(args)
        .output()
        .expect("mcpod runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// From engines.node to a running server: dbhub's demo mode opens its
/// sample database with `node:sqlite`, which only node ≥ 22.5 has.
#[test]
fn a_package_runs_on_the_node_its_engines_ask_for() {
    let provisioned = provision_cli(DBHUB, &["--refresh"]);
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let info = server.launch_detail(
        1,
        json!({"image": DBHUB, "overrides": {"dbhub": {"args": ["--demo"]}}}),
    );
    assert_eq!(
        info["provisioned"]["base"]["id"], provisioned["base"]["id"],
        "the launch reuses the recorded choice: {info}"
    );
    let version = provisioned["base"]["version"].as_str().unwrap_or_default();
    let major: u64 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(major >= 22, "node {version} was chosen: {info}");
    assert!(
        provisioned["notes"].to_string().contains("engines.node"),
        "the result says why this node: {info}"
    );
    assert!(
        provisioned["base"]["integrity"]
            .as_str()
            .is_some_and(|i| i.starts_with("sha512-")),
        "{info}"
    );
    assert_eq!(info["servers"]["dbhub"]["status"], "ready", "{info}");
    let session = info["session"].as_str().expect("session").to_string();
    let tools = structured(&server.call(2, "find_tools", json!({"query": "dbhub"})));
    assert!(
        tools.to_string().contains("execute_sql"),
        "dbhub's tools are listed: {tools}"
    );
    server.call(3, "stop_session", json!({"session": session}));
}

/// A request that names a node the package's engines exclude is warned,
/// and an absurd one is refused naming what exists.
#[test]
fn a_requested_node_is_checked_against_engines_and_the_registry() {
    let done = provision_cli(DBHUB, &["--runtime", "node@20"]);
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    assert!(
        done["base"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("v20.")),
        "{done}"
    );
    let warnings = done["warnings"].to_string();
    assert!(
        warnings.contains(">=22.5.0") && warnings.contains("node 20."),
        "{done}"
    );
    for (runtime, says) in [
        ("node@99", "no node 99"),
        ("python@3.13", "runs on node"),
        ("node@>=22", "not a version"),
    ] {
        let refused = server.call(
            2,
            "provision_server",
            json!({"package": DBHUB, "runtime": runtime}),
        );
        let text = text_of(&refused);
        assert_eq!(refused["isError"], true, "{runtime}: {refused}");
        assert!(
            text.contains(says) && text.contains(runtime),
            "{runtime}: {text}"
        );
    }
    let huge = server.call(
        3,
        "provision_server",
        json!({"package": DBHUB, "runtime": format!("node@{}", "2".repeat(1 << 20))}),
    );
    assert!(text_of(&huge).contains("more than the 64"), "{huge}");
}

/// A real MCP server, pinned, on a node with a compile cache.
const MEMORY: &str = "npm:@modelcontextprotocol/server-memory@2025.11.25";

/// On node ≥ 22.1 the provisioned image carries the server's compile cache
/// (made by a warm-up run at provision time), the image's environment
/// points node at it, the session's server reads it (the directory node
/// reads is the session uid's), and the server answers.
#[test]
fn a_server_on_node_22_starts_with_its_compile_cache() {
    let done = provision_cli(MEMORY, &["--runtime", "node@22"]);
    let notes = done["notes"].to_string();
    assert!(notes.contains("starts warm"), "{done}");
    let image = done["image"]["image_id"].as_str().expect("image id");
    // What node in the image sees: the variable, and the cache's files in
    // the directories it reads as root (a user namespace) and as nobody.
    let script = "const fs=require('fs');const d=process.env.NODE_COMPILE_CACHE;\
                  const out={dir:d,subdirs:{}};\
                  for(const s of fs.readdirSync(d)){out.subdirs[s]=fs.readdirSync(d+'/'+s).length}\
                  console.log(JSON.stringify(out))";
    let out = std::process::Command::new("podman")
        .args([
            "run",
            "--rm",
            "--network=none",
            "--read-only",
            "--user=65534:65534",
        ])
        .args([image, "node", "-e", script])
        .output()
        .expect("podman runs");
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "the image lists its cache: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(seen["dir"], "/var/cache/mcpod-node-compile", "{seen}");
    let subdirs = seen["subdirs"].as_object().expect("subdirs");
    for uid in ["-0", "-65534"] {
        let files = subdirs
            .iter()
            .find(|(name, _)| name.ends_with(uid))
            .map(|(_, n)| n.as_u64().unwrap_or(0))
            .unwrap_or(0);
        assert!(
            files > 50,
            "the cache for uid {uid} holds the modules: {seen}"
        );
    }
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let info = server.launch_detail(1, json!({"image": MEMORY}));
    assert_eq!(info["servers"]["memory"]["status"], "ready", "{info}");
    let session = info["session"].as_str().expect("session").to_string();
    let tools = structured(&server.call(2, "find_tools", json!({"query": "entities"})));
    assert!(
        tools.to_string().contains("create_entities"),
        "the server answers tools/list: {tools}"
    );
    server.call(3, "stop_session", json!({"session": session}));
}
