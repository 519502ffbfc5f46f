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
    // The name without its tag: build_image never tags `:latest`, so the hint
    // is the tag of a build of that name, not "build it".
    let (ok, _, err) = mcpod(&["launch", "localhost/mcpod-hello"]);
    assert!(
        !ok && err.contains("launch `localhost/mcpod-hello:") && !err.contains("build it with"),
        "{err}"
    );
    let (ok, _, err) = mcpod(&["inspect", "localhost/mcpod-no-such-image"]);
    assert!(!ok && err.contains("build it with build_image"), "{err}");
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

    assert_eq!(
        doc["mcpServers"]["mcpod"]["command"],
        env!("CARGO_BIN_EXE_mcpod"),
        "a user file runs this binary"
    );
    assert!(
        !args.contains(&"--root"),
        "no fixed root in a user file: {args:?}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(["config", "--client", "codex"])
        .output()
        .expect("runs");
    let codex = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        codex.starts_with("[mcp_servers.mcpod]\ncommand = "),
        "{codex}"
    );
    assert!(codex.contains("\ntool_timeout_sec = 900\n"), "{codex}");

    // Re-running over the user's own keys keeps them, and every other entry.
    let toml = dir.path().join("config.toml");
    std::fs::write(
        &toml,
        "[mcp_servers.\"mcpod\"]\ncommand = \"old\"\ntool_timeout_sec = 1200\nenabled = true\n\n[mcp_servers.x]\ncommand = \"y\"\n",
    )
    .expect("write");
    let t = toml.display().to_string();
    for _ in 0..2 {
        let (ok, _, err) = mcpod(&["config", "--client", "codex", "--write", "--path", &t]);
        assert!(ok, "{err}");
    }
    let merged = std::fs::read_to_string(&toml).expect("read");
    assert_eq!(
        merged.matches("mcpod").count(),
        2,
        "one table, one command: {merged}"
    );
    assert!(
        merged.contains("tool_timeout_sec = 1200\nenabled = true\n")
            && merged.contains("[mcp_servers.x]\ncommand = \"y\""),
        "{merged}"
    );
}

/// Project files are committed: their entry runs `mcpod` from PATH on the
/// project's own root, never this machine's paths.
#[test]
fn config_project_entries_are_portable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let here = env!("CARGO_MANIFEST_DIR");
    for (client, file, servers, root) in [
        ("claude-code", ".mcp.json", "mcpServers", "."),
        (
            "vscode",
            ".vscode/mcp.json",
            "servers",
            "${workspaceFolder}",
        ),
        (
            "cursor",
            ".cursor/mcp.json",
            "mcpServers",
            "${workspaceFolder}",
        ),
        ("gemini", ".gemini/settings.json", "mcpServers", "."),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
            .args(["config", "--client", client, "--write"])
            .current_dir(dir.path())
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join(file)).expect(file);
        assert!(
            !text.contains(here) && !text.contains(&dir.path().display().to_string()),
            "{client}: an absolute path in a shared file: {text}"
        );
        let doc: Value = serde_json::from_str(&text).expect("json");
        let entry = &doc[servers]["mcpod"];
        assert_eq!(entry["command"], "mcpod", "{client}: {text}");
        assert_eq!(
            entry["args"],
            serde_json::json!(["serve", "--root", root]),
            "{client}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("registered mcpod in"), "{stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args([
            "config", "--client", "codex", "--scope", "project", "--root", "sub",
        ])
        .current_dir(dir.path())
        .output()
        .expect("runs");
    let codex = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        codex.contains("command = \"mcpod\"\nargs = [\"serve\", \"--root\", \"sub\"]"),
        "{codex}"
    );
    let (ok, _, err) = mcpod(&["config", "--client", "claude-desktop", "--scope", "project"]);
    assert!(!ok && err.contains("--scope user"), "{err}");
    let (ok, _, _) = mcpod(&["config", "--client", "claude-code", "--print-approval"]);
    assert!(ok);
}

/// Shared mode: `--url` writes an entry that reaches a running `mcpod serve
/// --listen` with the token read from a variable, and is refused with the
/// flags only a started mcpod takes, and for Claude Desktop.
#[test]
fn config_url_writes_an_http_entry_and_refuses_stdio_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = format!("mcpod_{}", "5e".repeat(32));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mcpod"))
            .arg("config")
            .args(args)
            .current_dir(dir.path())
            .env("TEAM_TOKEN", &token)
            .output()
            .expect("runs")
    };
    let url = "http://127.0.0.1:8765/mcp";
    let out = run(&[
        "--client",
        "claude-code",
        "--url",
        url,
        "--token-env",
        "TEAM_TOKEN",
        "--write",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = std::fs::read_to_string(dir.path().join(".mcp.json")).expect(".mcp.json");
    assert!(!text.contains(&token) && !stderr.contains(&token), "{text}");
    let doc: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        doc["mcpServers"]["mcpod"],
        serde_json::json!({"type": "http", "url": url, "headers": {"Authorization": "Bearer ${TEAM_TOKEN}"}})
    );
    assert!(stderr.contains("TEAM_TOKEN"), "{stderr}");

    for (args, says) in [
        (
            vec!["--client", "cursor", "--url", url, "--root", "."],
            "--root",
        ),
        (
            vec!["--client", "cursor", "--url", url, "--allow-network"],
            "--allow-network",
        ),
        (
            vec!["--client", "cursor", "--url", url, "--command", "x"],
            "--command",
        ),
        (
            vec!["--client", "claude-desktop", "--url", url],
            "only starts commands",
        ),
        (
            vec!["--client", "gemini", "--url", "http://10.1.2.3:8765/mcp"],
            "TLS",
        ),
        (
            vec!["--client", "gemini", "--url", url, "--token-env", "a b"],
            "[A-Z_][A-Z0-9_]*",
        ),
        (vec!["--client", "gemini", "--token-env", "T"], "--url"),
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
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
        "mode",
        "oci runtime",
        "storage",
        "limits",
        "container start",
        "user namespace",
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
