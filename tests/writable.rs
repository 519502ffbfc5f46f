//! Writable image paths (issue 24, class 8), with real parts: a real PyPI
//! server that writes beside its own code at start (mcp-grafana chmods the
//! binary it ships), real podman sessions, and what the host holds after.

mod common;

use common::rpc::{Server, initialize, text_of};
use serde_json::{Value, json};

const GRAFANA: &str = "pypi:mcp-grafana==2.1.1";

fn launch(server: &mut Server, id: u64, args: Value) -> Value {
    let result = server.call(id, "launch_session", args);
    assert_ne!(
        result["isError"],
        true,
        "launch failed: {}",
        text_of(&result)
    );
    server.detail_of(id, &result)
}

/// The first thing a text quotes between backticks after `after`.
fn quoted_after<'a>(text: &'a str, after: &str) -> &'a str {
    let rest = &text[text
        .find(after)
        .unwrap_or_else(|| panic!("{after}: {text}"))
        + after.len()..];
    let start = rest.find('`').expect("a quote") + 1;
    let len = rest[start..].find('`').expect("its end");
    &rest[start..start + len]
}

/// mcp-grafana dies at start on the read-only root; the error names the
/// file it tried to chmod and the override that helps; with its directory
/// writable it starts and lists its tools.
#[test]
fn a_server_that_writes_beside_its_code_is_told_the_path_and_runs_with_it_writable() {
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let result = server.call(1, "launch_session", json!({"image": GRAFANA}));
    let text = text_of(&result);
    let tried = quoted_after(&text, "tried to write ");
    assert!(
        tried.ends_with("/mcp_grafana/bin/mcp-grafana"),
        "the path from the server's own [Errno 30]: {text}"
    );
    let dir = tried.rsplit_once('/').expect("a directory").0.to_string();
    let overrides = "\"overrides\": {\"";
    let at = text
        .find(overrides)
        .unwrap_or_else(|| panic!("the override: {text}"))
        + overrides.len();
    let name = &text[at..at + text[at..].find('"').expect("the name's end")];
    assert!(text.contains(&format!("server `{name}` exited")), "{text}");
    assert!(
        text.contains(&format!(
            "\"overrides\": {{\"{name}\": {{\"writable_paths\": [\"{dir}\"]}}}}"
        )) && text.contains("io.mcpod.requests"),
        "the fix names the override and the label: {text}"
    );

    let info = launch(
        &mut server,
        2,
        json!({"image": GRAFANA, "overrides": {name: {"writable_paths": [dir]}}}),
    );
    assert_eq!(info["isolation"]["tmpfs"][&dir], "64m", "{info}");
    let session = info["session"].as_str().expect("session").to_string();
    let tools = server.tool_names(3);
    assert!(
        tools
            .iter()
            .any(|t| t.starts_with(&format!("{session}_{name}__"))),
        "its tools are listed: {tools:?}"
    );
    server.call(4, "stop_session", json!({"session": session}));
}

/// Each refused form of a writable path is an error naming it and the fix,
/// and show_policy says what is allowed.
#[test]
fn hostile_writable_paths_are_refused() {
    let hello = common::hello_image();
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let policy = server.call(1, "show_policy", json!({}));
    let writable = &policy["structuredContent"]["writable_paths"];
    assert_eq!(writable["path_mb"], 64, "{policy}");
    assert_eq!(
        writable["refused"],
        json!(["/.mcpod", "/proc", "/sys", "/dev", "/run"])
    );
    for (id, path, says) in [
        (2, "opt/app", "not absolute"),
        (3, "/", "root `/`"),
        (4, "/opt/../etc", "`..`"),
        (5, "/proc", "under `/proc`"),
        (6, "/sys/fs/cgroup", "under `/sys`"),
        (7, "/dev", "under `/dev`"),
        (8, "/run", "under `/run`"),
        (9, "/.mcpod", "supervisor"),
        (10, "/bin,size=100g", "contains `,`"),
    ] {
        let result = server.call(
            id,
            "launch_session",
            json!({"image": hello, "overrides": {"hello": {"writable_paths": [path]}}}),
        );
        let text = text_of(&result);
        assert_eq!(result["isError"], true, "{path}: {text}");
        assert!(
            text.contains("overrides.hello.writable_paths[0]")
                && text.contains(says)
                && text.contains("Fix: "),
            "{path}: {text}"
        );
    }
}

/// What a server writes in a writable path stays in the container's memory:
/// writing through a symlink the image has there still meets the read-only
/// root, the image and the host's storage hold nothing of it, a write past
/// the size fails in the container, and mcpod answers on.
#[test]
fn a_writable_paths_content_stays_in_the_container_and_is_bounded() {
    let image = common::python_time_image();
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let info = launch(
        &mut server,
        1,
        json!({"image": image, "servers": ["time"],
               "overrides": {"time": {"writable_paths": ["/etc/alternatives"]}}}),
    );
    let session = info["session"].as_str().expect("session").to_string();
    let container = common::containers_of(&session)
        .into_iter()
        .next()
        .expect("the session's container");
    let marker = common::unique("writable-marker");
    let exec = |script: &str| {
        let out = std::process::Command::new("podman")
            .args(["exec", &container, "sh", "-c", script])
            .output()
            .expect("podman exec");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // The image's files are there and writable by the servers' user.
    let (ok, out) = exec(&format!(
        "test -f /etc/alternatives/README && echo x >> /etc/alternatives/README && echo hi > /etc/alternatives/{marker} && cat /etc/alternatives/{marker}"
    ));
    assert!(ok && out.contains("hi"), "{out}");
    // A symlink the image has there points into the read-only root.
    let (ok, out) = exec("echo x > /etc/alternatives/awk");
    assert!(!ok && out.contains("Read-only file system"), "{out}");
    // Past the size: the tmpfs is full, in the container.
    let (ok, out) = exec("dd if=/dev/zero of=/etc/alternatives/big bs=1M count=100");
    assert!(!ok && out.contains("No space left on device"), "{out}");
    // mcpod and the server answer on.
    let now = server.call(
        2,
        "call_tool",
        json!({"session": session, "server": "time", "tool": "get_current_time", "arguments": {"timezone": "UTC"}}),
    );
    assert_ne!(now["isError"], true, "{now}");
    server.call(3, "stop_session", json!({"session": session}));

    // The image, run again, has neither file; the host's container storage
    // holds no file of that name.
    let fresh = common::podman_lines(&["run", "--rm", &image, "ls", "/etc/alternatives"]);
    assert!(
        !fresh.iter().any(|l| l.contains(&marker) || l == "big"),
        "{fresh:?}"
    );
    let graph = common::podman_lines(&["info", "--format", "{{.Store.GraphRoot}}"]);
    let found = std::process::Command::new("find")
        .args([graph[0].as_str(), "-name", &marker, "-print", "-quit"])
        .output()
        .expect("find");
    assert!(
        found.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&found.stdout)
    );
}
