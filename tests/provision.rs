//! Provisioning with real packages from the registries (npm and PyPI, pinned
//! here), real npm and pip on the host, real buildah and podman: from a
//! package reference or a server.json to a tool result, through MCP and the CLI.

mod common;

use std::path::Path;
use std::process::Command;

use common::mcpod_cli as mcpod;
use common::rpc::{Server, initialize, text_of};
use serde_json::{Value, json};

const THINKING: &str = "npm:@modelcontextprotocol/server-sequential-thinking@2026.8.31";
const MEMORY: &str = "@modelcontextprotocol/server-memory";
const MEMORY_VERSION: &str = "2026.8.31";
const SQLITE: &str = "pypi:mcp-server-sqlite==2025.4.25";

fn structured(result: &Value) -> Value {
    assert_ne!(
        result["isError"],
        true,
        "the tool failed: {}",
        text_of(result)
    );
    result["structuredContent"].clone()
}

/// One call from an npm package name to a tool result: launch_session takes
/// the reference, provisions it (resolve, fetch, build) and launches it.
#[test]
fn an_npm_package_reference_launches_in_one_call() {
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let info = server.launch_detail(1, json!({"image": THINKING}));
    let provisioned = &info["provisioned"];
    assert_eq!(provisioned["reference"], THINKING, "{info}");
    assert_eq!(provisioned["server"], "sequential-thinking");
    assert_eq!(
        provisioned["registry_name"], "io.github.modelcontextprotocol/server-sequential-thinking",
        "the package's own mcpName is reported"
    );
    let command = provisioned["spec"]["command"].as_array().expect("command");
    assert_eq!(
        command[0], "node",
        "the program comes from package.json bin: {command:?}"
    );
    assert!(
        command[1]
            .as_str()
            .unwrap_or_default()
            .ends_with("/dist/index.js"),
        "{command:?}"
    );
    assert_eq!(
        info["servers"]["sequential-thinking"]["status"], "ready",
        "{info}"
    );
    let session = info["session"].as_str().expect("session").to_string();
    let result = server.call(
        2,
        "call_tool",
        json!({"session": session, "server": "sequential-thinking", "tool": "sequentialthinking",
               "arguments": {"thought": "provisioned from npm", "nextThoughtNeeded": false,
                             "thoughtNumber": 1, "totalThoughts": 1}}),
    );
    assert!(text_of(&result).contains("thoughtNumber"), "{result}");

    // The same reference again is a cache hit that fetched nothing.
    let again = structured(&server.call(3, "provision_server", json!({"package": THINKING})));
    assert_eq!(again["fetched"], false, "{again}");
    assert_eq!(again["image"]["cache_hit"], true, "{again}");
    assert_eq!(again["image"]["tag"], provisioned["image"]["tag"]);
    server.call(4, "stop_session", json!({"session": session}));
}

fn memory_server_json() -> Value {
    json!({
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
        "name": "io.github.modelcontextprotocol/server-memory",
        "description": "Knowledge-graph memory for an agent",
        "version": MEMORY_VERSION,
        "packages": [{
            "registryType": "npm",
            "identifier": MEMORY,
            "version": MEMORY_VERSION,
            "runtimeHint": "npx",
            "runtimeArguments": [{"type": "positional", "value": "-y"}],
            "transport": {"type": "stdio"},
            "environmentVariables": [
                {"name": "MEMORY_FILE_PATH", "description": "Where the graph is kept", "default": "/tmp/memory.json"},
                {"name": "API_TOKEN", "description": "A token", "isSecret": true, "isRequired": true}
            ]
        }]
    })
}

/// A server.json (npm): its secret becomes a `${NAME}` reference the
/// operator grants, its default a literal, its name the registry label; the
/// package's mcpName is checked against it; npx is translated, not run.
#[test]
fn a_server_json_with_a_secret_becomes_a_reference_and_its_name_a_label() {
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start_env(
        root.path(),
        &["--allow-env", "API_TOKEN"],
        &[("API_TOKEN", "operator-token".to_string())],
    );
    initialize(&mut server, "2025-11-25");
    let done = structured(&server.call(
        1,
        "provision_server",
        json!({"server_json": memory_server_json()}),
    ));
    assert_eq!(done["server"], "memory", "{done}");
    assert_eq!(done["spec"]["env"]["API_TOKEN"], "${API_TOKEN}", "{done}");
    assert_eq!(done["spec"]["env"]["MEMORY_FILE_PATH"], "/tmp/memory.json");
    assert!(
        done["ownership"]
            .as_str()
            .unwrap_or_default()
            .starts_with("matches"),
        "{done}"
    );
    assert!(
        done["notes"].to_string().contains("npx"),
        "the npx hint is translated and said so: {done}"
    );
    let tag = done["image"]["tag"].as_str().expect("tag").to_string();
    let label = common::podman_lines(&[
        "image",
        "inspect",
        "--format",
        "{{index .Labels \"io.modelcontextprotocol.server.name\"}}",
        &tag,
    ]);
    assert_eq!(label, ["io.github.modelcontextprotocol/server-memory"]);

    let info = server.launch_detail(2, json!({"image": tag}));
    let session = info["session"].as_str().expect("session").to_string();
    let call = |server: &mut Server, id, tool: &str, arguments: Value| {
        server.call(
            id,
            "call_tool",
            json!({"session": session, "server": "memory", "tool": tool, "arguments": arguments}),
        )
    };
    let created = call(
        &mut server,
        3,
        "create_entities",
        json!({"entities": [{"name": "mcpod", "entityType": "tool", "observations": ["provisioned"]}]}),
    );
    assert_ne!(created["isError"], true, "{created}");
    let graph = call(&mut server, 4, "read_graph", json!({}));
    assert!(
        text_of(&graph).contains("provisioned"),
        "the graph was kept in /tmp: {graph}"
    );
    server.call(5, "stop_session", json!({"session": session}));
}

/// Programs that fail loudly and leave a mark, first on PATH.
fn failing_programs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("bin");
    for program in [
        "npm", "npx", "node", "pip", "pip3", "python3", "python", "uvx", "ldd",
    ] {
        let path = dir.path().join(program);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$0 $*\" >> {}/ran\nexit 97\n",
                dir.path().display()
            ),
        )
        .expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir
}

/// A PyPI server.json (uvx hint, a named argument, a secret) through the CLI;
/// then the same request again with failing npm, node, pip and python3 first
/// on PATH: a cache hit that runs none of them.
#[test]
fn a_pypi_server_json_and_its_repeat_runs_neither_npm_nor_pip() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("server.json");
    std::fs::write(
        &file,
        json!({
            "name": "io.github.modelcontextprotocol/server-time",
            "description": "Time and timezone conversion",
            "version": "2026.10.19",
            "packages": [{
                "registryType": "pypi", "identifier": "mcp-server-time", "version": "2026.10.19",
                "runtimeHint": "uvx", "transport": {"type": "stdio"},
                "packageArguments": [{"type": "named", "name": "--local-timezone", "default": "UTC"}],
                "environmentVariables": [{"name": "TIME_TOKEN", "isSecret": true}]
            }]
        })
        .to_string(),
    )
    .expect("write");
    let file = file.to_string_lossy().to_string();
    let root = dir.path().to_string_lossy().to_string();
    let args = [
        "provision",
        "--server-json",
        &file,
        "--root",
        &root,
        "--json",
    ];
    let (ok, done, err) = mcpod(&args, None);
    assert!(ok, "{err}");
    let command: Vec<&str> = done["spec"]["command"]
        .as_array()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command[0], "python3", "{command:?}");
    assert!(
        command[2].contains("from mcp_server_time import main"),
        "the console script: {command:?}"
    );
    assert_eq!(&command[3..], ["--local-timezone", "UTC"]);
    assert_eq!(done["spec"]["env"]["TIME_TOKEN"], "${TIME_TOKEN}");
    assert!(
        done["ownership"]
            .as_str()
            .unwrap_or_default()
            .starts_with("matches"),
        "the README's mcp-name marker: {done}"
    );

    let fake = failing_programs();
    let (ok, again, err) = mcpod(&args, Some(fake.path()));
    assert!(
        ok,
        "the repeat needs none of npm, pip, node, python3: {err}"
    );
    assert!(
        !fake.path().join("ran").exists(),
        "the repeat ran: {}",
        std::fs::read_to_string(fake.path().join("ran")).unwrap_or_default()
    );
    assert_eq!(again["fetched"], false, "{again}");
    assert_eq!(again["image"]["cache_hit"], true, "{again}");
    assert_eq!(again["image"]["tag"], done["image"]["tag"]);

    let tag = done["image"]["tag"].as_str().expect("tag");
    let (ok, launched, err) = mcpod(
        &[
            "launch",
            tag,
            "--allow-env",
            "TIME_TOKEN",
            "--env",
            "TIME_TOKEN=t",
            "--call",
            "time/get_current_time",
            "--args",
            r#"{"timezone":"Asia/Tokyo"}"#,
            "--json",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(
        launched["call"].to_string().contains("Asia/Tokyo"),
        "{launched}"
    );
}

/// mcp-server-sqlite crashes on the mcp 2.x SDK that its loose requirement
/// resolves to; its `mcp<2` pin, given as a pin, makes it work; without it,
/// mcpod resolves it again as of its publication (the child's own error is
/// quoted in tests/provision_drift.rs, launched from its image).
#[test]
fn a_pypi_package_runs_with_the_pin_it_needs_and_fails_clearly_without() {
    let db = [
        "--extra-arg",
        "sqlite=--db-path",
        "--extra-arg",
        "sqlite=/tmp/test.db",
    ];
    let mut args = vec!["launch", SQLITE, "--pin", "mcp<2"];
    args.extend(db);
    args.extend(["--call", "sqlite/list_tables", "--json"]);
    let (ok, launched, err) = mcpod(&args, None);
    assert!(ok, "{err}");
    assert_eq!(
        launched["session"]["provisioned"]["server"], "sqlite",
        "{launched}"
    );
    assert_ne!(launched["call"]["isError"], true, "{launched}");

    let mut args = vec!["launch", SQLITE];
    args.extend(db);
    args.extend(["--json"]);
    let (ok, launched, err) = mcpod(&args, None);
    assert!(
        ok,
        "without the pin, it is resolved as of its publication: {err}"
    );
    let notes = launched["session"]["provisioned"]["notes"].to_string();
    assert!(notes.contains("resolved as of its publication"), "{notes}");
}

/// A server.json's OCI package: the local image, with the server declared
/// over its entrypoint and cmd.
#[test]
fn a_server_json_oci_package_declares_the_images_own_command() {
    let hello = common::hello_image();
    let ctx = common::context(&[(
        "Containerfile",
        &format!("FROM {hello}\nCMD [\"/bin/hello-server\"]\n"),
    )]);
    let built = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(mcpod::image::build_image(
            common::build_spec("localhost/mcpod-test-oci", ctx.path()),
            common::quiet(),
            tokio_util::sync::CancellationToken::new(),
        ))
        .expect("build");
    let _cleanup = common::ImageCleanup(built.tag.clone());
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let doc = json!({"name": "io.github.mcpod/hello", "description": "hello", "version": "1.0.0",
        "packages": [{"registryType": "oci", "identifier": built.tag, "runtimeHint": "docker",
                      "transport": {"type": "stdio"}}]});
    let done = structured(&server.call(1, "provision_server", json!({"server_json": doc})));
    assert_eq!(done["server"], "hello", "{done}");
    assert_eq!(done["spec"]["command"], json!(["/bin/hello-server"]));
    let info = server.launch_detail(2, json!({"image": done["image"]["tag"]}));
    assert_eq!(info["servers"]["hello"]["status"], "ready", "{info}");
    let _cleanup2 = common::ImageCleanup(
        done["image"]["tag"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    server.call(3, "stop_session", json!({"session": info["session"]}));

    // An image that is not local is not pulled for an agent.
    let missing = json!({"name": "a/b", "packages": [{"registryType": "oci",
        "identifier": "docker.io/nobody/not-here:1", "transport": {"type": "stdio"}}]});
    let result = server.call(4, "provision_server", json!({"server_json": missing}));
    assert_eq!(result["isError"], true);
    assert!(text_of(&result).contains("podman pull"), "{result}");
}

/// Hostile input at the MCP boundary: names npm or pip would read as paths,
/// URLs or options; a server.json path outside the root or a FIFO; a
/// cancelled fetch. Each is a clear error naming the input, and nothing is
/// left behind.
#[test]
fn hostile_provisioning_input_is_refused_and_leaves_nothing() {
    let root = tempfile::tempdir().expect("root");
    let state = tempfile::tempdir().expect("state");
    let fifo = root.path().join("server.json");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let mut server = Server::start_env(
        root.path(),
        &[],
        &[(
            "MCPOD_STATE_DIR",
            state.path().to_string_lossy().to_string(),
        )],
    );
    initialize(&mut server, "2025-11-25");
    for (id, args, needle) in [
        (
            1,
            json!({"package": "npm:x@file:../../etc"}),
            "invalid package",
        ),
        (
            2,
            json!({"package": "pypi:-r /etc/shadow"}),
            "invalid package",
        ),
        (
            3,
            json!({"package": "pypi:x @ https://evil/x.whl"}),
            "invalid package",
        ),
        (
            4,
            json!({"package": "npm:x@1.0.0", "pins": ["zod@git+https://evil/z"]}),
            "invalid pins",
        ),
        (
            5,
            json!({"package": "pypi:x==1", "pins": ["--index-url=http://evil"]}),
            "invalid pins",
        ),
        (
            6,
            json!({"server_json_path": "/etc/passwd"}),
            "outside the workspace root",
        ),
        (
            7,
            json!({"server_json_path": "server.json"}),
            "not a regular file",
        ),
        (
            8,
            json!({}),
            "neither a package reference nor a server.json",
        ),
        (
            9,
            json!({"package": "npm:x@1.0.0", "server_json": {"name": "a/b"}}),
            "both",
        ),
    ] {
        let result = server.call(id, "provision_server", args.clone());
        assert_eq!(result["isError"], true, "{args}: {result}");
        let text = text_of(&result);
        assert!(
            text.contains(needle) && text.contains("Fix:"),
            "{args}: {text}"
        );
    }
    let result = server.call(10, "launch_session", json!({"image": "npm:../x"}));
    assert!(text_of(&result).contains("invalid package"), "{result}");
    drop(server);
    no_half_written_staging(&state.path().join("provision"));
}

/// Cancelling a fetch mid-way (Ctrl-C to the CLI) stops npm and leaves no
/// staging or work directory, in a state directory of its own.
#[test]
fn a_cancelled_fetch_leaves_nothing_half_written() {
    let state = tempfile::tempdir().expect("state");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mcpod"))
            .args(args)
            .env("MCPOD_STATE_DIR", state.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("mcpod runs")
    };
    let made = run(&["bases", "--remake", "node"])
        .wait_with_output()
        .expect("bases");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let child = run(&[
        "provision",
        "npm:@modelcontextprotocol/server-everything@2026.1.26",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: kill(2) on the child this test started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().expect("provision");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "it finished before the cancel: {err}"
    );
    assert!(err.contains("cancelled"), "{err}");
    no_half_written_staging(&state.path().join("provision"));
}

fn no_half_written_staging(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            assert!(
                !name.starts_with("work-") && !name.contains(".tmp-"),
                "left behind: {}",
                entry.path().display()
            );
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) && d.ends_with("provision") {
                stack.push(entry.path());
            }
        }
    }
}

/// An operator's base (`--base python=IMAGE`): asked once what Python it
/// carries, and the package built on it; list_bases and show_policy say so.
#[test]
fn an_operator_base_is_probed_and_used() {
    let debian = "localhost/mcpod-debian:bookworm";
    let (ok, done, err) = mcpod(
        &[
            "provision",
            "pypi:mcp-server-time==2026.10.19",
            "--base",
            &format!("python={debian}"),
            "--json",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(done["base"]["image"], debian, "{done}");
    assert!(
        done["base"]["origin"]
            .as_str()
            .unwrap_or_default()
            .contains("operator"),
        "{done}"
    );
    assert_eq!(done["base"]["glibc"], "2.36", "{done}");
    let tag = done["image"]["tag"].as_str().expect("tag");
    let (ok, launched, err) = mcpod(
        &[
            "launch",
            tag,
            "--extra-arg",
            "time=--local-timezone",
            "--extra-arg",
            "time=UTC",
            "--call",
            "time/get_current_time",
            "--args",
            r#"{"timezone":"UTC"}"#,
            "--json",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(
        launched["call"].to_string().contains("\"UTC\""),
        "{launched}"
    );

    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start_with(root.path(), &["--base", &format!("python={debian}")]);
    initialize(&mut server, "2025-11-25");
    let bases = structured(&server.call(1, "list_bases", json!({})));
    let python = bases["bases"]
        .as_array()
        .expect("bases")
        .iter()
        .find(|b| b["runtime"] == "python")
        .cloned()
        .expect("python");
    assert_eq!(python["state"], "ready", "{bases}");
    assert_eq!(python["image"], debian);
    assert!(
        python["version"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.11"),
        "{bases}"
    );
    let policy = structured(&server.call(2, "show_policy", json!({})));
    assert_eq!(policy["bases"]["python"], debian, "{policy}");

    // A base that is not there says who can fix it.
    let (ok, _, err) = mcpod(
        &[
            "provision",
            "pypi:mcp-server-time==2026.10.19",
            "--base",
            "python=localhost/no-such-base:1",
        ],
        None,
    );
    assert!(!ok);
    assert!(
        err.contains("--base python=") && err.contains("podman pull"),
        "{err}"
    );
}

/// Launch-time overrides: more args, literal env and `${NAME}` references
/// (granted like a label's), for a server of the launch only.
#[test]
fn launch_overrides_change_args_and_env_within_policy() {
    let hello = common::hello_image();
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start_env(
        root.path(),
        &["--allow-env", "HELLO_SECRET"],
        &[("HELLO_SECRET", "from-the-host".to_string())],
    );
    initialize(&mut server, "2025-11-25");
    let info = server.launch_detail(1,
        json!({"image": hello, "overrides": {"hello": {"env": {"MODE": "literal", "TOKEN": "${HELLO_SECRET}"}}}}),
    );
    let session = info["session"].as_str().expect("session").to_string();
    let who = server.call(
        2,
        "call_tool",
        json!({"session": session, "server": "hello", "tool": "whoami", "arguments": {}}),
    );
    let env = who["structuredContent"]["env"].to_string();
    assert!(
        env.contains("MODE=literal") && env.contains("TOKEN=from-the-host"),
        "{who}"
    );
    server.call(3, "stop_session", json!({"session": session}));

    for (id, overrides, needle) in [
        (
            4,
            json!({"nope": {"args": ["x"]}}),
            "no server of that name",
        ),
        (
            5,
            json!({"hello": {"env": {"T": "${NOT_ALLOWED}"}}}),
            "NOT_ALLOWED",
        ),
        (6, json!({"hello": {"env": {"BAD NAME": "x"}}}), "BAD NAME"),
        (7, json!({"hello": {"command": []}}), "empty"),
    ] {
        let result = server.call(
            id,
            "launch_session",
            json!({"image": hello, "overrides": overrides}),
        );
        assert_eq!(result["isError"], true, "{overrides}: {result}");
        assert!(
            text_of(&result).contains(needle),
            "{overrides}: {}",
            text_of(&result)
        );
    }
}

/// `mcpod gc` removes staged packages no recorded request names and
/// provisioning leftovers older than an hour; a recorded one stays, staged
/// for a base too (a native build's `-b…`, an sdist build's `-s…`, a
/// compile cache's `-w…`).
#[test]
fn gc_removes_unused_staged_packages_and_old_leftovers() {
    let state = tempfile::tempdir().expect("state");
    let root = state.path().join("provision");
    for dir in [
        "npm/kept0123",
        "npm/kept0123-b00ff/ctx",
        "npm/kept0123-w00ff/ctx",
        "pypi/kept0123-s00ff/ctx",
        "npm/unused0123/ctx",
        "npm/unused0123-w00ff/ctx",
        "npm/abc.tmp-1",
        "work-old",
        "work-new",
        "requests",
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    std::fs::create_dir_all(state.path().join("bases/node-stage-x1")).expect("mkdir");
    std::fs::write(
        root.join("requests/r.json"),
        r#"{"version": "1.0.0", "lock": "kept0123"}"#,
    )
    .expect("record");
    let hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for old in [
        "provision/work-old",
        "provision/npm/abc.tmp-1",
        "bases/node-stage-x1",
    ] {
        std::fs::File::open(state.path().join(old))
            .and_then(|f| f.set_modified(hours_ago))
            .expect("age it");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(["gc", "--dry-run", "--json"])
        .env("MCPOD_STATE_DIR", state.path())
        .output()
        .expect("gc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let listed = report["provisioned"].to_string();
    assert!(
        listed.contains("unused0123\"")
            && listed.contains("unused0123-w00ff")
            && listed.contains("work-old")
            && listed.contains("abc.tmp-1"),
        "{report}"
    );
    assert!(
        !listed.contains("kept0123") && !listed.contains("work-new"),
        "{report}"
    );
    assert!(
        root.join("npm/unused0123").exists(),
        "a dry run removes nothing"
    );
}

/// Staging the same lock again (a fresh state directory: pip runs again)
/// gives byte-identical files, so the same image tag: nothing of the
/// temporary staging path ends up in the bytecode.
#[test]
fn a_restaged_lock_is_byte_identical() {
    let tag = |state: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
            .args(["provision", "pypi:mcp-server-time==2026.10.19", "--json"])
            .env("MCPOD_STATE_DIR", state)
            .output()
            .expect("mcpod runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let done: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(done["fetched"], true, "{done}");
        done["image"]["tag"].as_str().expect("tag").to_string()
    };
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    assert_eq!(tag(a.path()), tag(b.path()));
}
