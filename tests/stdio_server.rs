//! The real mcpod binary over stdio, spoken to in raw JSON-RPC lines.

mod common;

use common::rpc::{Server, initialize, text_of};
use common::*;
use serde_json::{Value, json};

#[test]
fn initialize_negotiates_the_supported_versions() {
    let root = tempfile::tempdir().expect("tempdir");
    for version in ["2025-06-18", "2025-11-25"] {
        let mut server = Server::start(root.path());
        let init = initialize(&mut server, version);
        assert_eq!(init["result"]["protocolVersion"], version, "{init}");
        assert_eq!(init["result"]["serverInfo"]["name"], "mcpod");
        assert_eq!(
            init["result"]["serverInfo"]["version"],
            env!("CARGO_PKG_VERSION")
        );
    }
    // An unknown older version is answered with one mcpod speaks.
    let mut server = Server::start(root.path());
    let init = initialize(&mut server, "2024-11-05");
    let offered = init["result"]["protocolVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        ["2025-06-18", "2025-11-25", "2026-07-28"].contains(&offered.as_str()),
        "{init}"
    );
}

#[test]
fn build_inspect_and_bad_requests_over_stdio() {
    let name = unique("stdio");
    let _cleanup = ImageCleanup(name.clone());
    let root = tempfile::tempdir().expect("tempdir");
    write(
        root.path(),
        "hello/Containerfile",
        "FROM scratch\nCOPY greeting.txt /greeting.txt\n",
    );
    write(root.path(), "hello/greeting.txt", "hi");
    std::fs::write(
        root.path()
            .parent()
            .expect("parent")
            .join(format!("{name}-outside")),
        "x",
    )
    .ok();

    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");

    // tools/list: both tools with input and output schemas and annotations.
    let list = server.request(1, "tools/list", json!({}));
    let tools = list["result"]["tools"].as_array().expect("tools").clone();
    let tool = |n: &str| {
        tools
            .iter()
            .find(|t| t["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("no {n} in {list}"))
    };
    let build = tool("build_image");
    assert_eq!(build["inputSchema"]["type"], "object");
    assert!(build["inputSchema"]["properties"]["context"].is_object());
    assert!(build["outputSchema"]["properties"]["cache_hit"].is_object());
    assert_eq!(build["annotations"]["idempotentHint"], true);
    let inspect = tool("inspect_labels");
    assert_eq!(inspect["annotations"]["readOnlyHint"], true);
    assert!(inspect["outputSchema"]["properties"]["servers"].is_object());

    // build_image: a miss (with progress), then a hit.
    let args = json!({
        "name": format!("localhost/{name}"),
        "context": "hello",
        "servers": {"greeter": {"command": ["/bin/greet", "--stdio"], "call_timeout_secs": 30}}
    });
    server.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "build_image", "arguments": args, "_meta": {"progressToken": "build-1"}}}));
    let miss = server.response(2)["result"].clone();
    assert_ne!(miss["isError"], true, "{miss}");
    let built = &miss["structuredContent"];
    assert_eq!(built["cache_hit"], false, "{miss}");
    assert_eq!(
        built["servers"]["greeter"]["command"],
        json!(["/bin/greet", "--stdio"])
    );
    let tag = built["tag"].as_str().expect("tag").to_string();
    assert!(tag.starts_with(&format!("localhost/{name}:")), "{tag}");
    let progress: Vec<&Value> = server
        .notifications
        .iter()
        .filter(|n| {
            n["method"] == "notifications/progress" && n["params"]["progressToken"] == "build-1"
        })
        .collect();
    assert!(
        !progress.is_empty(),
        "no progress notifications for the build"
    );
    assert!(
        progress.iter().any(|p| p["params"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("STEP")),
        "buildah's lines are not in the progress messages: {progress:?}"
    );

    let hit = server.call(3, "build_image", args.clone());
    assert_eq!(hit["structuredContent"]["cache_hit"], true, "{hit}");
    assert_eq!(hit["structuredContent"]["tag"], tag.as_str());

    // inspect_labels reads the servers back.
    let inspected = server.call(4, "inspect_labels", json!({"reference": tag}));
    assert_eq!(
        inspected["structuredContent"]["servers"]["greeter"]["call_timeout_secs"], 30,
        "{inspected}"
    );
    assert_eq!(inspected["structuredContent"]["source"], "local");

    // Bad requests get errors, and the server keeps serving after each.
    let unknown = server.request(
        5,
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    );
    assert!(
        unknown["error"].is_object() || unknown["result"]["isError"] == true,
        "{unknown}"
    );

    let wrong_type = server.request(
        6,
        "tools/call",
        json!({"name": "build_image", "arguments": {"name": 42}}),
    );
    assert!(
        wrong_type["error"].is_object() || wrong_type["result"]["isError"] == true,
        "{wrong_type}"
    );

    let outside = server.call(7, "build_image", json!({"name": "x", "context": ".."}));
    assert_eq!(outside["isError"], true, "{outside}");
    assert!(
        text_of(&outside).contains("outside the workspace root"),
        "{outside}"
    );
    // The person who reads it runs a client, not mcpod: the fix is the
    // registration's root.
    assert!(
        text_of(&outside).contains("mcpod config --client CLIENT --root DIR")
            && !text_of(&outside).contains("start mcpod with"),
        "{outside}"
    );

    let absolute = server.call(8, "build_image", json!({"name": "x", "context": "/etc"}));
    assert!(
        text_of(&absolute).contains("outside the workspace root"),
        "{absolute}"
    );

    let missing = server.call(
        9,
        "build_image",
        json!({"name": "x", "context": "hello", "containerfile": "hello/Nope"}),
    );
    assert_eq!(missing["isError"], true);
    assert!(
        text_of(&missing).contains("hello/Nope") && text_of(&missing).contains("does not exist"),
        "{missing}"
    );

    let not_there = server.call(
        10,
        "inspect_labels",
        json!({"reference": format!("localhost/{name}:nope")}),
    );
    assert_eq!(not_there["isError"], true);
    assert!(text_of(&not_there).contains("not found"), "{not_there}");

    server.send_raw("{this is not json");
    let bad_name = server.call(
        11,
        "build_image",
        json!({"name": "Bad Name", "context": "hello"}),
    );
    assert!(text_of(&bad_name).contains("image name"), "{bad_name}");

    // Still alive and correct after all of that.
    let again = server.call(12, "build_image", args);
    assert_eq!(again["structuredContent"]["cache_hit"], true, "{again}");
}

/// A podman that answers slowly (a fault a real engine cannot be made to
/// produce on demand: a storage lock held elsewhere) must not delay the handshake.
#[test]
fn the_handshake_does_not_wait_for_podman() {
    let root = tempfile::tempdir().expect("tempdir");
    let bin = tempfile::tempdir().expect("bin dir");
    let real = ["/usr/bin/podman", "/usr/local/bin/podman"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("podman is installed");
    let fake = bin.path().join("podman");
    let marker = bin.path().join("a-podman-call-finished");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nsleep 8\ntouch {}\nexec {real} \"$@\"\n",
            marker.display()
        ),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut server = Server::start_env(root.path(), &[], &[("PATH", path)]);
    let init = initialize(&mut server, "2025-11-25");
    assert_eq!(init["result"]["serverInfo"]["name"], "mcpod");
    // No podman call had finished: the answer did not wait for one.
    assert!(
        !marker.exists(),
        "initialize was answered only after a podman call finished"
    );
    let list = server.request(1, "tools/list", json!({}));
    assert!(
        list["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.len() >= 7),
        "{list}"
    );
}

/// Cancelling build_image over the wire (`notifications/cancelled` once
/// buildah's RUN step has started) stops buildah and leaves no image or
/// working container; the server goes on serving.
#[test]
fn cancelling_build_image_over_stdio_leaves_nothing() {
    let name = unique("wire-cancel");
    let _cleanup = ImageCleanup(name.clone());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let base = runtime.block_on(busybox_base(&format!("{name}-bb")));
    let root = tempfile::tempdir().expect("tempdir");
    write(
        root.path(),
        "slow/Containerfile",
        &format!(
            "FROM {base}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo started; sleep 60\"]\n"
        ),
    );
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let started = std::time::Instant::now();
    server.send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "build_image",
        "arguments": {"name": format!("localhost/{name}"), "context": "slow"},
        "_meta": {"progressToken": "slow"}}}),
    );
    let mut running = false;
    while !running && started.elapsed() < std::time::Duration::from_secs(120) {
        let Some(progress) =
            server.wait_notification("notifications/progress", std::time::Duration::from_secs(5))
        else {
            continue;
        };
        running = progress["params"]["message"]
            .as_str()
            .is_some_and(|m| m.trim() == "started");
    }
    assert!(running, "buildah never reported the RUN step");
    server.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 2, "reason": "test"}}),
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    while std::time::Instant::now() < deadline
        && !(images_named(&format!("{name}:")).is_empty() && containers_named(&name).is_empty())
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(images_named(&format!("{name}:")), Vec::<String>::new());
    assert_eq!(containers_named(&name), Vec::<String>::new());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(55),
        "cancellation did not stop buildah's 60 s RUN"
    );
    let listed = server.request(3, "tools/list", json!({}));
    assert!(listed["result"]["tools"].is_array(), "{listed}");
}

#[test]
fn show_policy_reports_the_operators_policy_and_refusals_say_what_is_allowed() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("mount root");
    let data_path = data.path().canonicalize().expect("canonical");
    let allow = format!("{}:rw", data_path.display());
    let mut server = Server::start_with(
        root.path(),
        &[
            "--allow-mount",
            &allow,
            "--allow-env",
            "API_TOKEN",
            "--max-sessions",
            "3",
        ],
    );
    initialize(&mut server, "2025-11-25");
    let policy = server.call(1, "show_policy", json!({}));
    let p = &policy["structuredContent"];
    assert_eq!(
        p["mount_roots"],
        json!([{"path": data_path.display().to_string(), "writable": true}]),
        "{p}"
    );
    assert_eq!(p["allowed_env"], json!(["API_TOKEN"]), "{p}");
    assert_eq!(
        (p["allow_network"].as_bool(), p["max_sessions"].as_u64()),
        (Some(false), Some(3))
    );
    assert_eq!(p["ceilings"]["memory_mb"], 2048, "{p}");
    assert_eq!(p["fixed"]["max_message_bytes"], 16 * 1024 * 1024, "{p}");

    // A refusal says what is allowed now.
    let hello = hello_image();
    let launched = server.call(
        2,
        "launch_session",
        json!({"image": hello, "env": {"OTHER": "x"}}),
    );
    let text = text_of(&launched);
    assert!(text.contains("allowed now: API_TOKEN"), "{text}");
    let elsewhere = tempfile::tempdir().expect("elsewhere");
    let launched = server.call(
        3,
        "launch_session",
        json!({"image": hello, "mounts": [{"source": elsewhere.path(), "target": "/data"}]}),
    );
    let text = text_of(&launched);
    assert!(
        text.contains(&format!("{} (rw)", data_path.display())),
        "{text}"
    );
}

/// Clients on node (Claude Code, Gemini CLI, the Inspector) give a server
/// UNIX sockets for stdin and stdout, not pipes; mcpod serves them without
/// a thread hop (`wire/stdio.rs`), calls pass through, and it exits on EOF.
#[test]
fn a_client_that_gives_sockets_for_stdio_is_served() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    let root = tempfile::tempdir().expect("tempdir");
    let (to_mcpod, their_stdin) = UnixStream::pair().expect("socketpair");
    let stderr = tempfile::NamedTempFile::new().expect("stderr file");
    let (from_mcpod, their_stdout) = UnixStream::pair().expect("socketpair");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(["serve", "--root"])
        .arg(root.path())
        .stdin(std::os::fd::OwnedFd::from(their_stdin))
        .stdout(std::os::fd::OwnedFd::from(their_stdout))
        .stderr(stderr.reopen().expect("reopen"))
        .env("MCPOD_LOG", "warn,mcpod::wire::stdio=debug")
        .spawn()
        .expect("mcpod serve");
    from_mcpod
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("timeout");
    let mut lines = BufReader::new(from_mcpod);
    let mut writer = to_mcpod.try_clone().expect("clone");
    let mut ask = |id: u64, method: &str, params: Value| -> Value {
        let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(writer, "{line}").expect("write");
        loop {
            let mut got = String::new();
            assert_ne!(
                lines.read_line(&mut got).expect("read"),
                0,
                "mcpod closed stdout"
            );
            let message: Value = serde_json::from_str(&got).expect("JSON");
            if message["id"] == id {
                return message;
            }
        }
    };
    let init = ask(
        0,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "socket-client", "version": "0"}}),
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "mcpod", "{init}");
    writeln!(
        &to_mcpod,
        "{}",
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
    )
    .expect("write");
    let launched = ask(
        1,
        "tools/call",
        json!({"name": "launch_session", "arguments": {"image": hello_image()}}),
    );
    let session = launched["result"]["structuredContent"]["session"]
        .as_str()
        .unwrap_or_else(|| panic!("{launched}"))
        .to_string();
    let sum = ask(
        2,
        "tools/call",
        json!({"name": format!("{session}_hello__add"), "arguments": {"a": 2, "b": 3}}),
    );
    assert_eq!(sum["result"]["structuredContent"]["sum"], 5, "{sum}");
    // EOF on stdin: mcpod removes the session and exits.
    to_mcpod
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert_eq!(containers_of(&session), Vec::<String>::new());
    let said = std::fs::read_to_string(stderr.path()).expect("stderr");
    assert!(said.contains("non-blocking stream sockets"), "{said}");
}
