//! Every host process mcpod starts: made in one place, working in a directory
//! of mcpod's own, and with Python isolated, so nothing an agent or a child
//! plants in the workspace runs on the host.

mod common;

use std::path::{Path, PathBuf};

use common::rpc::{Server, initialize, text_of};
use serde_json::json;

/// The one function allowed to make a host process (`src/engine/process.rs`).
const MAKER: &str = "pub fn host_command(program: &str) -> Command {";

/// Everything under `dir` that ends in `.rs`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Walk every source file of mcpod (the supervisor runs inside containers and
/// is not a host process's maker): a process is made only by `host_command`,
/// which clears the environment to the allow-list and sets mcpod's own working
/// directory; test modules are left out.
#[test]
fn every_host_process_is_made_by_host_command() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let makers = [
        "Command::new(",
        "Command::from(",
        "TokioChildProcess",
        "fork(",
        "execv",
        "posix_spawn",
    ];
    let mut found = Vec::new();
    let mut maker_seen = false;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        // Test modules are at the end of a file.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut in_maker = false;
        for (n, line) in code.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            if line.contains(MAKER) {
                in_maker = true;
                maker_seen = true;
            }
            if in_maker {
                if line == "}" {
                    in_maker = false;
                }
                continue;
            }
            if makers.iter().any(|m| line.contains(m)) && !line.starts_with("use ") {
                found.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(&src).unwrap_or(file).display(),
                    n + 1,
                    trimmed
                ));
            }
        }
    }
    assert!(maker_seen, "engine::process::host_command is gone");
    assert!(
        found.is_empty(),
        "host processes made outside engine::process::host_command:\n{}",
        found.join("\n")
    );

    // Its body sets what every process gets.
    let process = std::fs::read_to_string(src.join("engine/process.rs")).expect("read");
    let body = process
        .split(MAKER)
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("host_command's body");
    for needed in [
        ".env_clear()",
        ".envs(super::env::host_env())",
        ".current_dir(super::home::work_dir())",
    ] {
        assert!(body.contains(needed), "host_command lacks {needed}");
    }
    // And python3 always runs isolated.
    let runtime = std::fs::read_to_string(src.join("engine/runtime.rs")).expect("read");
    for (n, line) in runtime.lines().enumerate() {
        if line.contains("Invocation::new(\"python3\")") {
            let next: String = runtime.lines().skip(n + 1).take(2).collect();
            assert!(
                next.contains("\"-I\""),
                "runtime.rs:{}: python3 without -I",
                n + 1
            );
        }
    }
}

/// Python code that leaves a file named `name` in `markers` when it runs.
fn planted(markers: &Path, name: &str) -> String {
    format!(
        "open({:?}, 'w').write('ran on the host')\n",
        markers.join(name).display().to_string()
    )
}

fn markers_left(markers: &Path) -> Vec<String> {
    std::fs::read_dir(markers)
        .expect("markers")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// `mcpod serve --root .` in a workspace where modules Python would import
/// are planted, two ways: a child server writes `pip.py` into the workspace
/// through a writable mount; the agent (or anyone with the workspace) puts
/// `json.py`, `compileall.py` and pyenv's `.python-version` there. Provisioning
/// PyPI packages runs the host's pip, python probe and compileall: none of
/// the planted files runs, and both provisions work.
#[test]
fn modules_planted_in_the_workspace_never_run_on_the_host() {
    let image = common::node_reference_image();
    let root = tempfile::tempdir().expect("root");
    let state = tempfile::tempdir_in("/var/tmp").expect("state");
    let markers = tempfile::tempdir().expect("markers");
    // The session's uid (from --userns=auto) writes the workspace.
    std::fs::set_permissions(
        root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let root_text = root.path().display().to_string();
    let mut server = Server::start_in_root(
        root.path(),
        &["--allow-mount", &format!("{root_text}:rw")],
        &[("MCPOD_STATE_DIR", state.path().display().to_string())],
    );
    initialize(&mut server, "2025-11-25");

    // 1. A child writes `pip.py` through a writable mount of the workspace.
    let launched = server.call(
        1,
        "launch_session",
        json!({"image": image, "servers": ["filesystem"],
               "mounts": [{"source": root_text, "target": "/data", "read_only": false}]}),
    );
    assert_ne!(launched["isError"], true, "{}", text_of(&launched));
    let session = launched["structuredContent"]["session"]
        .as_str()
        .expect("session")
        .to_string();
    let wrote = server.call(
        2,
        &format!("{session}_filesystem__write_file"),
        json!({"path": "/data/pip.py", "content": planted(markers.path(), "pip")}),
    );
    assert_ne!(wrote["isError"], true, "{}", text_of(&wrote));
    assert!(
        root.path().join("pip.py").exists(),
        "the child wrote pip.py"
    );
    let provisioned = server.call(
        3,
        "provision_server",
        json!({"package": "pypi:mcp-server-time==2026.10.19"}),
    );
    assert_eq!(
        markers_left(markers.path()),
        Vec::<String>::new(),
        "planted code ran on the host"
    );
    assert_ne!(provisioned["isError"], true, "{}", text_of(&provisioned));

    // 2. Modules planted in the workspace by whoever can write it.
    for (file, name) in [("json.py", "json"), ("compileall.py", "compileall")] {
        common::write(root.path(), file, &planted(markers.path(), name));
    }
    common::write(root.path(), ".python-version", "planted\n");
    let provisioned = server.call(
        4,
        "provision_server",
        json!({"package": "pypi:mcp-server-sqlite==2025.4.25"}),
    );
    assert_eq!(
        markers_left(markers.path()),
        Vec::<String>::new(),
        "planted code ran on the host"
    );
    assert_ne!(provisioned["isError"], true, "{}", text_of(&provisioned));
    let _ = server.call(5, "stop_session", json!({"session": session}));
}
