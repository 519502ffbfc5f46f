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
    let info = server.launch_detail(1, json!({"image": YFMCP}));
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

/// A real server that runs `git` (GitPython fails at import without it).
const GIT_SERVER: &str = "pypi:mcp-server-git==2026.10.19";

/// A git repository on the host with one committed and one new file.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("repo");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("committed.txt"), "a\n").expect("write");
    git(&["add", "committed.txt"]);
    git(&["commit", "-q", "-m", "first"]);
    std::fs::write(dir.path().join("untracked-file.txt"), "b\n").expect("write");
    dir
}

#[test]
fn a_server_that_runs_git_gets_debian_s_git_when_the_operator_allows_it() {
    let repo = repository();
    let root = tempfile::tempdir().expect("root");
    let repo_text = repo.path().display().to_string();
    let mut server = Server::start_with(
        root.path(),
        &["--allow-system-package", "git", "--allow-mount", &repo_text],
    );
    initialize(&mut server, "2025-11-25");
    let info = server.launch_detail(
        1,
        json!({
            "image": GIT_SERVER,
            "provision": {"system_packages": ["git"], "refresh": true},
            "mounts": [{"source": repo_text, "target": "/repo"}],
            "overrides": {"git": {"env": {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "safe.directory",
                "GIT_CONFIG_VALUE_0": "*"
            }}}
        }),
    );
    let provisioned = &info["provisioned"];
    let packages = provisioned["base"]["debian"]["packages"].to_string();
    assert!(
        packages.contains("\"git=1:"),
        "the base names git at its exact version: {provisioned}"
    );
    assert!(
        provisioned["notes"]
            .to_string()
            .contains("system packages from Debian"),
        "{provisioned}"
    );
    assert_eq!(info["servers"]["git"]["status"], "ready", "{info}");
    let session = info["session"].as_str().expect("session").to_string();
    let status = server.call(
        2,
        "call_tool",
        json!({"session": session, "server": "git", "tool": "git_status",
               "arguments": {"repo_path": "/repo"}}),
    );
    let text = text_of(&status);
    assert!(
        text.contains("untracked-file.txt") && text.contains("main"),
        "git ran in the session: {status}"
    );
    server.call(3, "stop_session", json!({"session": session}));

    // A repeat fetches nothing: the lock, the derived base and the image are reused.
    let again = structured(&server.call(
        4,
        "provision_server",
        json!({"package": GIT_SERVER, "system_packages": ["git"]}),
    ));
    assert_eq!(again["fetched"], false, "{again}");
    assert_eq!(again["base"]["image_id"], provisioned["base"]["image_id"]);
}

#[test]
fn system_packages_outside_the_allow_list_or_debian_s_names_are_refused() {
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start_with(
        root.path(),
        &[
            "--allow-system-package",
            "git",
            "--allow-system-package",
            "texlive-full",
        ],
    );
    initialize(&mut server, "2025-11-25");
    for (id, asked, says) in [
        (1, json!(["curl"]), "--allow-system-package curl"),
        (2, json!(["-oDir=/"]), "not a Debian package name"),
        (3, json!(["git; rm -rf /"]), "not a Debian package name"),
        (4, json!(["Git"]), "not a Debian package name"),
        (
            5,
            json!(["git=0.0.0-no-such-version"]),
            "0.0.0-no-such-version",
        ),
        (6, json!(["texlive-full"]), "more than the 400"),
    ] {
        let refused = server.call(
            id,
            "provision_server",
            json!({"package": GIT_SERVER, "system_packages": asked}),
        );
        let text = text_of(&refused);
        assert_eq!(refused["isError"], true, "{asked}: {refused}");
        assert!(
            text.contains("system_packages") || text.contains(says),
            "{asked}: {text}"
        );
        assert!(text.contains(says), "{asked}: {text}");
    }
    let node = server.call(
        7,
        "provision_server",
        json!({"package": "npm:@modelcontextprotocol/server-memory@2026.8.31",
               "system_packages": ["git"]}),
    );
    assert!(
        text_of(&node).contains("node's official binaries"),
        "{node}"
    );
}
