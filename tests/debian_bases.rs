//! Bases made from Debian's packages, with real packages: a PyPI package
//! whose Requires-Python excludes the host's Python runs on trixie's 3.13,
//! made from the archive's `python3` and checked in a container.

mod common;

use common::rpc::{Server, initialize, text_of};
use serde_json::{Value, json};

/// Requires-Python `>=3.12` (the host's is 3.11); needs no network at start.
const YFMCP: &str = "pypi:yfmcp==0.14.0";

/// `mcpod provision REFERENCE [ARGS] --json` (no MCP deadline: a cold base
/// and a 60-wheel fetch take longer than a test client waits).
pub fn provision_cli(reference: &str, args: &[&str]) -> Result<Value, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(["provision", reference, "--json"])
        .args(args)
        .output()
        .expect("mcpod runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("json"))
}

fn structured(result: &Value) -> Value {
    assert_ne!(
        result["isError"],
        true,
        "the tool failed: {}",
        text_of(result)
    );
    result["structuredContent"].clone()
}

#[test]
fn a_package_needing_a_newer_python_runs_on_trixie_s_chosen_from_requires_python() {
    let provisioned = provision_cli(YFMCP, &["--refresh"]).expect("provisions");
    let base = &provisioned["base"];
    assert_eq!(base["id"], "python@3.13-trixie", "{provisioned}");
    assert_eq!(
        base["glibc"], "2.41",
        "wheels are chosen for trixie's glibc"
    );
    assert!(
        base["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.13.")),
        "{base}"
    );
    let debian = &base["debian"];
    assert_eq!(debian["suite"], "trixie");
    let packages = debian["packages"].to_string();
    assert!(
        packages.contains("\"python3.13=3.13.") && packages.contains("\"libc6=2.41"),
        "the base names its packages at exact versions: {debian}"
    );
    assert!(
        provisioned["notes"].to_string().contains(">=3.12"),
        "the result says why this Python: {provisioned}"
    );

    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let info = structured(&server.call(1, "launch_session", json!({"image": YFMCP})));
    assert_eq!(
        info["provisioned"]["base"]["id"], "python@3.13-trixie",
        "the launch reuses the recorded choice: {info}"
    );
    assert_eq!(info["servers"]["yfmcp"]["status"], "ready", "{info}");
    assert!(
        info["servers"]["yfmcp"]["tools"]
            .to_string()
            .contains("yfinance"),
        "yfmcp's tools are listed: {info}"
    );
    let session = info["session"].as_str().expect("session").to_string();
    server.call(2, "stop_session", json!({"session": session}));
}
