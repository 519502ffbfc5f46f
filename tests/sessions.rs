//! Sessions end to end through the real mcpod binary over stdio, with the real
//! podman and the repo's fixture server (`examples/hello`, FROM scratch).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::rpc::{Server, initialize, text_of};
use common::{containers_of, hello_image};
use serde_json::{Value, json};

fn launch(server: &mut Server, id: u64, args: Value) -> Value {
    let result = server.call(id, "launch_session", args);
    assert_ne!(result["isError"], true, "launch failed: {result}");
    server.detail_of(id, &result)
}

#[test]
fn launch_call_progress_cancel_stop() {
    let image = hello_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");

    server.send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "launch_session", "arguments": {"image": image}, "_meta": {"progressToken": "launch"}}}));
    let launched = server.response(1)["result"].clone();
    assert_ne!(launched["isError"], true, "{launched}");
    // The launch answers with each tool's input schema: callable at once.
    let greet = &launched["structuredContent"]["servers"]["hello"]["tools"]
        .as_array()
        .and_then(|t| {
            t.iter()
                .find(|t| t["name"].as_str().is_some_and(|n| n.ends_with("__greet")))
                .cloned()
        })
        .unwrap_or_else(|| panic!("no greet tool: {launched}"));
    assert!(
        greet["input_schema"]["properties"]["name"].is_object(),
        "{greet}"
    );
    // The rest is one call away.
    let info = server.detail_of(1, &launched);
    let session = info["session"].as_str().expect("session id").to_string();
    let hello = &info["servers"]["hello"];
    assert_eq!(hello["status"], "ready", "{info}");
    assert_eq!(hello["handshake"]["name"], "hello-server");
    // rmcp's server answers `server/discover`: mcpod speaks 2026-07-28 to it.
    assert_eq!(
        hello["handshake"]["protocol_version"], "2026-07-28",
        "{info}"
    );
    let exported: Vec<&str> = hello["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        exported.contains(&format!("{session}_hello__greet").as_str()),
        "{exported:?}"
    );
    // The effective isolation is reported.
    let iso = &info["isolation"];
    assert_eq!(
        (
            iso["network"].as_str(),
            iso["cap_drop"].as_str(),
            iso["read_only_root"].as_bool()
        ),
        (Some("none"), Some("all"), Some(true))
    );
    // A ready client config: `mcpod connect` to the container's server.
    let direct = &info["client_config"]["mcpServers"][format!("{session}-hello")];
    assert_eq!(direct["command"], env!("CARGO_BIN_EXE_mcpod"), "{direct}");
    assert_eq!(
        direct["args"],
        json!(["connect", format!("mcpod-{session}"), "hello"])
    );
    // Progress reported each server as it came up.
    assert!(
        server
            .notifications
            .iter()
            .any(|n| n["params"]["progressToken"] == "launch"
                && n["params"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("server hello: ready")),
        "{:?}",
        server.notifications
    );
    // The session's start changed the tool list.
    assert!(
        server
            .wait_notification("notifications/tools/list_changed", Duration::from_secs(5))
            .is_some()
    );

    // tools/list shows the proxied tools next to the meta-tools.
    let names = server.tool_names(2);
    for t in [
        "launch_session",
        "call_tool",
        "stop_session",
        &format!("{session}_hello__add"),
    ] {
        assert!(names.iter().any(|n| n == t), "{t} missing from {names:?}");
    }

    // A proxied call with structured output.
    let sum = server.call(
        3,
        &format!("{session}_hello__add"),
        json!({"a": 40, "b": 2}),
    );
    assert_eq!(sum["structuredContent"]["sum"], 42, "{sum}");
    // The call_tool fallback does the same.
    let greet = server.call(4, "call_tool", json!({"session": session, "server": "hello", "tool": "greet", "arguments": {"name": "mcpod"}}));
    assert_eq!(text_of(&greet), "Hello, mcpod!", "{greet}");

    // Progress passes through with the caller's token.
    server.send(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": format!("{session}_hello__slow"), "arguments": {"steps": 3}, "_meta": {"progressToken": 77}}}));
    let slow = server.response(5)["result"].clone();
    assert_eq!(slow["structuredContent"]["completed_steps"], 3, "{slow}");
    let steps: Vec<String> = server
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress" && n["params"]["progressToken"] == 77)
        .filter_map(|n| n["params"]["message"].as_str().map(str::to_string))
        .collect();
    assert!(
        steps.contains(&"step 1 of 3".to_string()) && steps.contains(&"step 3 of 3".to_string()),
        "{steps:?}"
    );

    // Cancelling a long call cancels it in the child (its stderr says so).
    server.send(
        json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {
        "name": format!("{session}_hello__slow"), "arguments": {"steps": 600}}}),
    );
    std::thread::sleep(Duration::from_millis(500));
    server.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 6, "reason": "test"}}));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut cancelled_in_child = false;
    while Instant::now() < deadline && !cancelled_in_child {
        let logs = server.call(
            7,
            "session_logs",
            json!({"session": session, "server": "hello"}),
        );
        cancelled_in_child = logs["structuredContent"]["servers"]["hello"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| l.as_str().unwrap_or_default().contains("slow cancelled"));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cancelled_in_child, "the child never saw the cancellation");

    // The same logs as a resource.
    let resource = server.request(
        8,
        "resources/read",
        json!({"uri": format!("mcpod://sessions/{session}/logs/hello")}),
    );
    assert!(
        resource["result"]["contents"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("slow cancelled"),
        "{resource}"
    );

    // Stop: the container is gone and the tools are withdrawn.
    let stopped = server.call(9, "stop_session", json!({"session": session}));
    assert_eq!(stopped["structuredContent"]["stopped"], true, "{stopped}");
    assert_eq!(containers_of(&session), Vec::<String>::new());
    assert!(
        !server
            .tool_names(10)
            .iter()
            .any(|n| n.starts_with(&session))
    );
    assert!(
        server.close(Duration::from_secs(20)).is_some(),
        "mcpod did not exit on stdin EOF"
    );
}

#[test]
fn isolation_is_observed_from_inside() {
    let image = hello_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let info = launch(
        &mut server,
        1,
        json!({"image": image, "pids": 64, "memory_mb": 128}),
    );
    let session = info["session"].as_str().expect("session").to_string();
    let seen = server.call(2, &format!("{session}_hello__whoami"), json!({}));
    let s = &seen["structuredContent"];
    assert_eq!(s["network_interfaces"], json!(["lo"]), "{s}");
    assert_eq!(s["cap_eff"], "0000000000000000", "{s}");
    assert_eq!(s["no_new_privs"], "1", "{s}");
    assert_eq!(s["root_writable"], false, "{s}");
    // Limits hold, or the session says they do not (rootless podman on cgroups v1).
    let isolation = &info["isolation"];
    if isolation["limits_enforced"] == true {
        assert_eq!(s["pids_max"], "64", "{s}");
        assert_eq!(s["memory_max"], (128u64 * 1024 * 1024).to_string(), "{s}");
    } else {
        assert_eq!(isolation["limits_enforced"], false, "{isolation}");
        assert!(
            isolation["warnings"]
                .to_string()
                .contains("limits are not enforced"),
            "{isolation}"
        );
    }
    // Container root maps to an unprivileged host uid (userns=auto), or runs as a non-root uid.
    let uid_map: Vec<&str> = s["uid_map"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let uid: Vec<&str> = s["uid"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let host_root =
        uid_map.first() == Some(&"0") && uid_map.get(1) == Some(&"0") && uid.first() == Some(&"0");
    assert!(
        !host_root,
        "server runs as host root (or, rootless, as the user): uid {uid:?}, uid_map {uid_map:?}"
    );
    // Seen from the host: no process of the session is root or the user.
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() }.to_string();
    let containers = containers_of(&session);
    let hosts = common::podman_lines(&["top", &containers[0], "hpid", "huser"]);
    assert!(hosts.len() > 1, "{hosts:?}");
    for line in &hosts[1..] {
        let user = line.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            !["0", "root", me.as_str()].contains(&user),
            "a session process runs as host user {user}: {hosts:?}"
        );
    }
    assert!(server.close(Duration::from_secs(20)).is_some());
    assert_eq!(
        containers_of(&session),
        Vec::<String>::new(),
        "stdin EOF left the container"
    );
}

#[test]
fn npm_reference_servers_through_mcpod() {
    let image = common::node_reference_image();
    let root = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("data dir");
    std::fs::write(data.path().join("notes.txt"), "hello from the host").expect("write");
    let allow = data.path().display().to_string();
    let mut server = Server::start_with(root.path(), &["--allow-mount", &allow]);
    initialize(&mut server, "2025-06-18");
    let info = launch(
        &mut server,
        1,
        json!({
            "image": image,
            "mounts": [{"source": allow, "target": "/data"}]
        }),
    );
    let session = info["session"].as_str().expect("session").to_string();
    for name in ["everything", "memory", "filesystem"] {
        assert_eq!(info["servers"][name]["status"], "ready", "{name}: {info}");
        // They answer `server/discover` with an error: mcpod falls back.
        let handshake = &info["servers"][name]["handshake"];
        assert_eq!(
            handshake["protocol_version"], "2025-11-25",
            "{name}: {info}"
        );
    }
    assert_eq!(info["isolation"]["mounts"][0]["read_only"], true);

    let echo = server.call(
        2,
        &format!("{session}_everything__echo"),
        json!({"message": "through mcpod"}),
    );
    assert!(text_of(&echo).contains("through mcpod"), "{echo}");
    let sum = server.call(
        3,
        &format!("{session}_everything__get-sum"),
        json!({"a": 2, "b": 3}),
    );
    assert!(text_of(&sum).contains('5'), "{sum}");

    let created = server.call(
        4,
        &format!("{session}_memory__create_entities"),
        json!({"entities": [
        {"name": "mcpod", "entityType": "project", "observations": ["proxies MCP servers"]}]}),
    );
    assert_ne!(created["isError"], true, "{created}");
    let graph = server.call(5, &format!("{session}_memory__read_graph"), json!({}));
    assert!(graph.to_string().contains("proxies MCP servers"), "{graph}");

    let file = server.call(
        6,
        &format!("{session}_filesystem__read_text_file"),
        json!({"path": "/data/notes.txt"}),
    );
    assert!(text_of(&file).contains("hello from the host"), "{file}");
    // The mount is read-only: writing fails inside the container.
    let write = server.call(
        7,
        &format!("{session}_filesystem__write_file"),
        json!({"path": "/data/new.txt", "content": "x"}),
    );
    assert_eq!(write["isError"], true, "{write}");
    assert!(!data.path().join("new.txt").exists());

    // A long-running operation reports progress through mcpod and can be cancelled.
    server.send(
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {
        "name": format!("{session}_everything__trigger-long-running-operation"),
        "arguments": {"duration": 30, "steps": 30}, "_meta": {"progressToken": "long"}}}),
    );
    assert!(
        server
            .wait_notification("notifications/progress", Duration::from_secs(10))
            .is_some(),
        "no progress from server-everything"
    );
    server.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 8}}),
    );

    let stopped = server.call(9, "stop_session", json!({"session": session}));
    assert_eq!(stopped["structuredContent"]["stopped"], true);
    assert_eq!(containers_of(&session), Vec::<String>::new());
}

#[test]
fn pypi_time_and_git_servers_through_mcpod() {
    let image = common::python_time_image();
    let root = tempfile::tempdir().expect("tempdir");
    // A small git repository for mcp-server-git, mounted read-only at /repo.
    let repos = tempfile::tempdir().expect("repos");
    let repo = repos.path().join("repo");
    std::fs::create_dir(&repo).expect("mkdir");
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .status()
            .expect("git");
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    std::fs::write(repo.join("a.txt"), "one\n").expect("write");
    git(&["add", "a.txt"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@e",
        "commit",
        "-qm",
        "first commit",
    ]);
    std::fs::write(repo.join("a.txt"), "two\n").expect("write");
    let allow = repos.path().display().to_string();

    let mut server = Server::start_with(root.path(), &["--allow-mount", &allow]);
    initialize(&mut server, "2025-11-25");
    let info = launch(
        &mut server,
        1,
        json!({
            "image": image,
            "mounts": [{"source": repo.display().to_string(), "target": "/repo"}]
        }),
    );
    let session = info["session"].as_str().expect("session").to_string();
    assert_eq!(info["servers"]["time"]["status"], "ready", "{info}");
    assert_eq!(info["servers"]["git"]["status"], "ready", "{info}");
    // Python's mcp 2.x answers `server/discover`; the node servers (the
    // other test) answer it with an error and are spoken to with `initialize`.
    for server in ["time", "git"] {
        let handshake = &info["servers"][server]["handshake"];
        assert_eq!(handshake["protocol_version"], "2026-07-28", "{info}");
    }

    let now = server.call(
        2,
        &format!("{session}_time__get_current_time"),
        json!({"timezone": "UTC"}),
    );
    assert_ne!(now["isError"], true, "{now}");
    assert!(
        now.to_string().contains("\"timezone\":\"UTC\"") || text_of(&now).contains("UTC"),
        "{now}"
    );

    let log = server.call(
        3,
        &format!("{session}_git__git_log"),
        json!({"repo_path": "/repo"}),
    );
    assert!(text_of(&log).contains("first commit"), "{log}");
    let status = server.call(
        4,
        &format!("{session}_git__git_status"),
        json!({"repo_path": "/repo"}),
    );
    assert!(text_of(&status).contains("a.txt"), "{status}");

    let stopped = server.call(5, "stop_session", json!({"session": session}));
    assert_eq!(stopped["structuredContent"]["stopped"], true);
    assert_eq!(containers_of(&session), Vec::<String>::new());
}

/// A writable mount the session's root cannot write is refused at launch,
/// naming the uid and the fix, not left to fail inside the server. Under
/// `userns=auto` the uid is not known before the container starts.
/// A writable mount works without anyone's chown where podman can id-map it
/// (podman 5 with crun, as root): the server writes there as the directory's
/// owner, and a directory root owns is refused. Elsewhere the launch is
/// refused before it starts, naming the fix, as show_policy said beforehand;
/// made writable, it is granted and written.
#[test]
fn a_writable_mount_is_written_as_its_owner_or_refused_naming_the_fix() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let image = common::node_reference_image();
    let root = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("data");
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // SAFETY: geteuid has no preconditions.
    let as_root = unsafe { libc::geteuid() } == 0;
    if as_root {
        std::os::unix::fs::chown(data.path(), Some(4242), Some(4343)).expect("chown");
    }
    let allow = format!("{}:rw", data.path().display());
    let mut server = Server::start_with(root.path(), &["--allow-mount", &allow]);
    initialize(&mut server, "2025-11-25");
    let policy = server.call(1, "show_policy", json!({}));
    let how = policy["structuredContent"]["writable_mounts"]
        .as_str()
        .expect("writable_mounts")
        .to_string();
    eprintln!("writable mounts here: {how}");
    let mount = json!([{"source": data.path(), "target": "/data", "read_only": false}]);
    let write = |server: &mut Server, id: u64, session: &str| {
        let wrote = server.call(
            id,
            &format!("{session}_filesystem__write_file"),
            json!({"path": "/data/new.txt", "content": "from the session"}),
        );
        assert_ne!(wrote["isError"], true, "{wrote}");
        let file = data.path().join("new.txt");
        assert_eq!(
            std::fs::read_to_string(&file).expect("written"),
            "from the session"
        );
        std::fs::metadata(&file).expect("meta")
    };
    let refused = |server: &mut Server, id: u64| {
        let refused = server.call(
            id,
            "launch_session",
            json!({"image": image, "mounts": mount}),
        );
        assert_eq!(refused["isError"], true, "{refused}");
        text_of(&refused)
    };
    if how.starts_with("id-mapped") {
        assert!(as_root, "id-mapped mounts are for root's podman only");
        let info = launch(&mut server, 2, json!({"image": image, "mounts": mount}));
        assert_eq!(
            info["isolation"]["mounts"][0]["written_as"],
            json!({"uid": 4242, "gid": 4343}),
            "{info}"
        );
        let session = info["session"].as_str().expect("session").to_string();
        let meta = write(&mut server, 3, &session);
        assert_eq!(
            (meta.uid(), meta.gid()),
            (4242, 4343),
            "written as the owner"
        );
        let dir = std::fs::metadata(data.path()).expect("dir");
        assert_eq!(
            (dir.uid(), dir.mode() & 0o7777),
            (4242, 0o755),
            "not chowned"
        );
        server.call(4, "stop_session", json!({"session": session}));
        // Root's directory is never id-mapped: refused before a launch.
        std::os::unix::fs::chown(data.path(), Some(0), Some(0)).expect("chown");
        let text = refused(&mut server, 5);
        assert!(
            text.contains("root owns this directory") && text.contains("chown"),
            "{text}"
        );
        assert!(containers_of(&session).is_empty(), "the first one ended");
        return;
    }
    // No id-mapped mounts: show_policy said what a writable mount needs,
    // and the launch is refused naming the same.
    assert!(how.contains("must let"), "{how}");
    let text = refused(&mut server, 2);
    assert!(
        text.contains("mode 755") && text.contains("chmod o+w"),
        "{text}"
    );
    // Made writable, it is granted and written.
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let info = launch(&mut server, 3, json!({"image": image, "mounts": mount}));
    assert!(
        info["isolation"]["mounts"][0]["written_as"].is_null(),
        "{info}"
    );
    let session = info["session"].as_str().expect("session").to_string();
    write(&mut server, 4, &session);
    let stopped = server.call(5, "stop_session", json!({"session": session}));
    assert_ne!(stopped["isError"], true, "{stopped}");
}

/// With `--meta-tools-only` tools/list shows mcpod's own tools alone; a
/// session's tools are found with find_tools and called by name or with
/// call_tool, and show_policy says so.
#[test]
fn meta_tools_only_lists_none_of_the_sessions_tools_and_they_still_work() {
    let image = hello_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(root.path(), &["--meta-tools-only"]);
    initialize(&mut server, "2025-11-25");
    let own = server.tool_names(1);
    let launched = server.call(2, "launch_session", json!({"image": image}));
    let session = launched["structuredContent"]["session"]
        .as_str()
        .expect("session")
        .to_string();
    assert_eq!(server.tool_names(3), own, "a session's tools were listed");
    assert!(own.iter().all(|n| !n.starts_with(&format!("{session}_"))));
    let found = server.call(4, "find_tools", json!({"query": "add"}));
    let name = found["structuredContent"]["tools"][0]["name"]
        .as_str()
        .expect("found")
        .to_string();
    assert_eq!(name, format!("{session}_hello__add"));
    let sum = server.call(5, &name, json!({"a": 20, "b": 22}));
    assert_eq!(sum["structuredContent"]["sum"], 42, "{sum}");
    let via = server.call(
        6,
        "call_tool",
        json!({"session": session, "server": "hello", "tool": "add", "arguments": {"a": 1, "b": 1}}),
    );
    assert_eq!(via["structuredContent"]["sum"], 2, "{via}");
    let policy = server.call(7, "show_policy", json!({}));
    assert_eq!(
        policy["structuredContent"]["meta_tools_only"], true,
        "{policy}"
    );
    let stopped = server.call(8, "stop_session", json!({"session": session}));
    assert_ne!(stopped["isError"], true, "{stopped}");
}

/// find_tools reaches every session's tools by words, with what it takes to
/// call them; a query that shares one word with a tool finds it; one that
/// shares none says so and names the tools spelled like it; a bad query is
/// an error naming its bound, not an exit.
#[test]
fn find_tools_finds_a_session_tool_by_words_and_it_can_be_called() {
    let image = hello_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let launched = server.call(1, "launch_session", json!({"image": image}));
    let session = launched["structuredContent"]["session"]
        .as_str()
        .expect("session")
        .to_string();
    let found = server.call(2, "find_tools", json!({"query": "ADD integers"}));
    let f = &found["structuredContent"];
    let add = &f["tools"][0];
    assert_eq!(add["name"], format!("{session}_hello__add"), "{f}");
    assert_eq!(
        (add["server"].as_str(), add["upstream"].as_str()),
        (Some("hello"), Some("add"))
    );
    assert_eq!(add["input_schema"]["type"], "object", "{add}");
    let sum = server.call(
        3,
        add["name"].as_str().expect("name"),
        json!({"a": 2, "b": 3}),
    );
    assert_eq!(sum["structuredContent"]["sum"], 5, "{sum}");
    // Every tool for an empty query, within the limit.
    let all = server.call(4, "find_tools", json!({"query": "", "limit": 2}));
    assert_eq!(
        all["structuredContent"]["tools"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(all["structuredContent"]["total"], 5, "{all}");
    // One shared word is enough (the filter before wanted every word).
    let one = server.call(5, "find_tools", json!({"query": "add nonsense"}));
    let one = &one["structuredContent"];
    assert_eq!(one["tools"][0]["upstream"], "add", "{one}");
    assert!(one["note"].is_null(), "{one}");
    // None shared: said plainly, with the names spelled like it.
    let none = server.call(6, "find_tools", json!({"query": "gret"}));
    let none = &none["structuredContent"];
    assert_eq!(none["total"], 0, "{none}");
    assert!(
        none["note"]
            .as_str()
            .is_some_and(|n| n.contains("shares a word with `gret`")),
        "{none}"
    );
    assert_eq!(none["near"][0], format!("{session}_hello__greet"), "{none}");
    let long = server.call(7, "find_tools", json!({"query": "x".repeat(5000)}));
    assert_eq!(long["isError"], true, "{long}");
    assert!(text_of(&long).contains("MAX_QUERY_BYTES"), "{long}");
    let stopped = server.call(8, "stop_session", json!({"session": session}));
    assert_ne!(stopped["isError"], true, "{stopped}");
}

/// A tag this mcpod did not build is inspected once and then launched from
/// what it knew while the store is unchanged; moved to another image, the
/// next launch runs the image it names now.
#[test]
fn a_tag_moved_to_another_image_launches_the_image_it_names_now() {
    let hello = hello_image();
    let ctx = common::context(&[(
        "Containerfile",
        &format!(
            "FROM {hello}\nLABEL io.mcpod.servers='{{\"other\": {{\"command\": [\"/bin/hello-server\"]}}}}'\n"
        ),
    )]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let name = common::unique("moved-other");
    let other = runtime
        .block_on(mcpod::image::build_image(
            common::build_spec(&name, ctx.path()),
            common::quiet(),
            tokio_util::sync::CancellationToken::new(),
        ))
        .expect("the other image builds")
        .tag;
    let tag = format!("localhost/{}:1", common::unique("moved"));
    common::podman_lines(&["tag", &hello, &tag]);
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let servers_of = |server: &mut Server, id: u64| {
        let info = launch(server, id, json!({"image": tag}));
        let session = info["session"].as_str().expect("session").to_string();
        let stopped = server.call(id + 1, "stop_session", json!({"session": session}));
        assert_ne!(stopped["isError"], true, "{stopped}");
        info["servers"]
            .as_object()
            .expect("servers")
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(servers_of(&mut server, 1), ["hello"]);
    // Again, from what the first launch read (the store is unchanged).
    assert_eq!(servers_of(&mut server, 3), ["hello"]);
    common::podman_lines(&["tag", &other, &tag]);
    let now = servers_of(&mut server, 5);
    common::podman_lines(&["untag", &other, &tag]);
    assert_eq!(
        now,
        ["other"],
        "the launch ran the image the tag named before"
    );
    assert!(server.close(Duration::from_secs(20)).is_some());
    common::podman_lines(&["rmi", &other]);
}
