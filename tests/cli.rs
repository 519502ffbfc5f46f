//! The CLI mirrors the tools: the real binary, with --json for scripts.

mod common;

use std::process::Command;

use serde_json::Value;

fn mcpod(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("mcpod runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn build_inspect_launch_call_from_the_command_line() {
    let tag = common::hello_image();
    let (ok, built, err) = mcpod(&[
        "build",
        "--name",
        "localhost/mcpod-hello",
        "--context",
        "examples/hello",
        "--json",
    ]);
    assert!(ok, "{err}");
    assert_eq!(built["cache_hit"], true, "{built}");
    assert_eq!(built["tag"], tag.as_str());

    let (ok, inspected, err) = mcpod(&["inspect", &tag, "--json"]);
    assert!(ok, "{err}");
    assert_eq!(
        inspected["servers"]["hello"]["command"][0],
        "/bin/hello-server"
    );

    let (ok, launched, err) = mcpod(&[
        "launch",
        &tag,
        "--call",
        "hello/add",
        "--args",
        r#"{"a": 1, "b": 2}"#,
        "--json",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        launched["call"]["structuredContent"]["sum"], 3,
        "{launched}"
    );
    let session = launched["session"]["session"].as_str().expect("session id");
    assert_eq!(
        common::containers_of(session),
        Vec::<String>::new(),
        "mcpod launch left its container"
    );

    let (ok, _, err) = mcpod(&["launch", &tag, "--call", "hello", "--json"]);
    assert!(!ok && err.contains("SERVER/TOOL"), "{err}");
    let (ok, _, err) = mcpod(&["build", "--name", "Bad Name", "--context", "examples/hello"]);
    assert!(
        !ok && err.contains("image name") && err.contains("Fix:"),
        "{err}"
    );
}

#[test]
fn config_writes_each_client_format_and_keeps_what_is_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("claude_desktop_config.json");
    std::fs::write(&path, r#"{"mcpServers": {"keep": {"command": "x"}}}"#).expect("write");
    let p = path.display().to_string();
    let (ok, _, err) = mcpod(&[
        "config",
        "--client",
        "claude-desktop",
        "--write",
        "--path",
        &p,
        "--allow-env",
        "TOKEN",
    ]);
    assert!(ok, "{err}");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    assert_eq!(doc["mcpServers"]["keep"]["command"], "x");
    let args: Vec<&str> = doc["mcpServers"]["mcpod"]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args[0], "serve");
    assert!(args.contains(&"--allow-env=TOKEN"), "{args:?}");
    assert!(dir.path().join("claude_desktop_config.json.bak").exists());

    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(["config", "--client", "codex"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("[mcp_servers.mcpod]\ncommand = "));
}

#[test]
fn doctor_reports_each_check() {
    let (ok, checks, err) = mcpod(&["doctor", "--json"]);
    assert!(ok, "doctor failed on a set-up machine: {err} {checks}");
    let names: Vec<&str> = checks
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for n in [
        "podman",
        "buildah",
        "skopeo",
        "runtime",
        "container start",
        "session user",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
}

#[test]
fn connect_to_a_container_that_is_no_session_says_so() {
    for name in ["mcpod-snone0", "--help-me", "x;id"] {
        let (ok, _, err) = mcpod(&["connect", "--", name, "hello"]);
        assert!(!ok, "{name}: {err}");
        assert!(
            err.contains("no mcpod session container of that name is running")
                && err.contains("launch_session"),
            "{name}: {err}"
        );
    }
}
