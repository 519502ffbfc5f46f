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
    let info = structured(&server.call(
        1,
        "launch_session",
        json!({"image": DBHUB, "overrides": {"dbhub": {"args": ["--demo"]}}}),
    ));
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
