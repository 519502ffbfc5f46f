//! Hostile input, the env class: nothing a label or an agent says reaches the
//! environment or argv of a host process. A label that sets `LD_PRELOAD` to a
//! library the agent built, `PATH` and podman's own `CONTAINERS_CONF` must
//! reach only the container; a secret value must appear in no host process's
//! argv or environment; `client_config` carries references only.

mod common;

use std::process::Command;
use std::time::Duration;

use common::rpc::{Server, call_through_config, initialize, text_of};
use common::{ImageCleanup, containers_of, hello_image, unique};
use serde_json::{Value, json};

/// A shared library whose constructor appends its pid to `marker`.
fn preload_library(dir: &std::path::Path, marker: &std::path::Path) -> std::path::PathBuf {
    let source = dir.join("evil.c");
    std::fs::write(
        &source,
        format!(
            "#include <stdio.h>\n#include <unistd.h>\n\
             __attribute__((constructor)) static void pwn(void) {{\n\
               FILE *f = fopen(\"{}\", \"a\");\n\
               if (f) {{ fprintf(f, \"%d\\n\", getpid()); fclose(f); }}\n\
             }}\n",
            marker.display()
        ),
    )
    .expect("write evil.c");
    let lib = dir.join("evil.so");
    let out = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&source)
        .output()
        .expect("gcc runs");
    assert!(out.status.success(), "gcc: {out:?}");
    // The library works: it runs in any dynamically linked host program.
    let _ = Command::new("true").env("LD_PRELOAD", &lib).status();
    assert!(
        marker.exists(),
        "the preload library must work on the host for this test to mean anything"
    );
    std::fs::remove_file(marker).expect("reset the marker");
    lib
}

/// Processes of this host in the test's own pid namespace (not in a container).
fn host_processes() -> Vec<u32> {
    let ours = std::fs::read_link("/proc/self/ns/pid").ok();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok() == ours)
        .collect()
}

/// Host processes whose argv or environment holds `needle`: (pid, where, comm).
fn processes_holding(needle: &str) -> Vec<(u32, &'static str, String)> {
    let mut found = Vec::new();
    for pid in host_processes() {
        for what in ["cmdline", "environ"] {
            let Ok(bytes) = std::fs::read(format!("/proc/{pid}/{what}")) else {
                continue;
            };
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                found.push((pid, what, comm.trim().to_string()));
            }
        }
    }
    found
}

fn hostile_env(lib: &std::path::Path) -> Value {
    json!({
        "LD_PRELOAD": lib.display().to_string(),
        "PATH": "/nonexistent",
        "CONTAINERS_CONF": "/nonexistent/containers.conf",
        "TOKEN": "${TOKEN}",
        "LITERAL": "$(id)",
    })
}

fn env_of(whoami: &Value) -> Vec<String> {
    whoami["structuredContent"]["env"]
        .as_array()
        .unwrap_or_else(|| panic!("whoami reports env: {whoami}"))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[test]
fn label_env_reaches_only_the_container_and_no_host_process() {
    let hello = hello_image();
    let root = tempfile::tempdir().expect("tempdir");
    let ctx = root.path().join("ctx");
    std::fs::create_dir(&ctx).expect("ctx");
    std::fs::write(ctx.join("Containerfile"), format!("FROM {hello}\n")).expect("Containerfile");
    let marker = root.path().join("preloaded");
    let lib = preload_library(&ctx, &marker);
    let name = format!("localhost/{}", unique("hostile-env"));
    let _cleanup = ImageCleanup(name.clone());

    let mut server = Server::start_with(root.path(), &["--allow-env", "TOKEN"]);
    initialize(&mut server, "2025-11-25");
    let env = hostile_env(&lib);
    let command = json!(["/bin/hello-server"]);
    let built = server.call(
        1,
        "build_image",
        json!({"name": name, "context": "ctx", "servers": {
            "one": {"command": command, "env": env},
            "two": {"command": command, "env": env},
        }}),
    );
    assert_ne!(built["isError"], true, "{built}");
    let tag = built["structuredContent"]["tag"]
        .as_str()
        .expect("tag")
        .to_string();

    // Both ways a server starts: as the container's process, and exec'd in.
    let secret = format!("agent-secret-{}", mcpod::engine::nonce());
    for (id, servers) in [(2, json!(["one"])), (3, json!(["one", "two"]))] {
        let launched = server.call(
            id,
            "launch_session",
            json!({"image": tag, "servers": servers, "env": {"TOKEN": secret}}),
        );
        assert_ne!(launched["isError"], true, "{launched}");
        let info = &server.detail_of(id, &launched);
        let session = info["session"].as_str().expect("session").to_string();
        for s in servers.as_array().expect("names") {
            let s = s.as_str().expect("name");
            assert_eq!(info["servers"][s]["status"], "ready", "{info}");
            // The values did reach the container.
            let seen = env_of(&server.call(id * 10, &format!("{session}_{s}__whoami"), json!({})));
            for want in [
                format!("LD_PRELOAD={}", lib.display()),
                "PATH=/nonexistent".to_string(),
                format!("TOKEN={secret}"),
                "LITERAL=$(id)".to_string(),
            ] {
                assert!(seen.contains(&want), "{want} missing from {seen:?}");
            }
        }
        // ...and nothing on the host: no preload ran, no argv or environment holds the secret.
        assert!(
            !marker.exists(),
            "the label's LD_PRELOAD ran on the host in pids {:?}",
            std::fs::read_to_string(&marker).unwrap_or_default()
        );
        assert_eq!(processes_holding(&secret), Vec::new(), "the secret leaked");

        // client_config: references only, and a connection that works.
        let config = &info["client_config"]["mcpServers"][format!("{session}-one")];
        let args: Vec<String> = config["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        assert!(
            !args
                .iter()
                .any(|a| a.contains("$(id)") || a.contains(&secret)),
            "client_config puts a value in argv: {args:?}"
        );
        assert_eq!(config["env"], json!({"TOKEN": "${TOKEN}"}), "{config}");
        let client_secret = format!("client-secret-{}", mcpod::engine::nonce());
        let seen = whoami_through(config, &[("TOKEN", client_secret.as_str())]);
        assert!(seen.contains(&format!("TOKEN={client_secret}")), "{seen:?}");
        assert!(seen.contains(&"LITERAL=$(id)".to_string()), "{seen:?}");
        assert!(
            !marker.exists(),
            "client_config's connection ran the preload"
        );

        let stopped = server.call(id * 10 + 1, "stop_session", json!({"session": session}));
        assert_ne!(stopped["isError"], true, "{stopped}");
        assert_eq!(containers_of(&session), Vec::<String>::new());
    }
    assert!(server.close(Duration::from_secs(20)).is_some());
}

/// Start a client-config entry as a client would, and call `whoami` through it.
fn whoami_through(entry: &Value, env: &[(&str, &str)]) -> Vec<String> {
    env_of(&call_through_config(entry, env, "whoami", &json!({})))
}

#[test]
fn an_env_value_the_env_file_cannot_carry_is_an_error_and_leaves_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(root.path(), &["--allow-env", "TOKEN"]);
    initialize(&mut server, "2025-11-25");
    let (tag, _cleanup) = token_image(&mut server, root.path(), "hostile-envfile");
    // A line break would add a line of its own to podman's env file: a bare
    // `NAME` line imports podman's own variable of that name.
    for (id, value) in [(2, "x\nHOME".to_string()), (3, "v".repeat(40 * 1024))] {
        let launched = server.call(
            id,
            "launch_session",
            json!({"image": tag, "env": {"TOKEN": value}}),
        );
        assert_eq!(launched["isError"], true, "{launched}");
        let text = text_of(&launched);
        assert!(
            text.contains("TOKEN") && text.contains("server `one`"),
            "{text}"
        );
    }
    let left = common::podman_lines(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("ancestor={tag}"),
    ]);
    assert_eq!(
        left,
        Vec::<String>::new(),
        "a refused launch left containers"
    );
    // mcpod still serves.
    let listed = server.call(4, "list_sessions", json!({}));
    assert_ne!(listed["isError"], true, "{listed}");
    assert!(server.close(Duration::from_secs(20)).is_some());
}

#[test]
fn a_build_arg_takes_only_host_variables_the_operator_allowed() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("Containerfile"), "FROM scratch\nARG X\n")
        .expect("Containerfile");
    let name = format!("localhost/{}", unique("hostile-buildarg"));
    let _cleanup = ImageCleanup(name.clone());
    let mut server = Server::start_env(
        root.path(),
        &["--allow-env", "TOKEN"],
        &[("MCPOD_TEST_HOST_SECRET", "s3cret".into())],
    );
    initialize(&mut server, "2025-11-25");
    // The image could carry the value out: an agent may not pick any host variable.
    let built = server.call(
        1,
        "build_image",
        json!({"name": name, "build_args": {"X": "a-${MCPOD_TEST_HOST_SECRET}"}}),
    );
    assert_eq!(built["isError"], true, "{built}");
    let text = text_of(&built);
    assert!(
        text.contains("`MCPOD_TEST_HOST_SECRET`")
            && text.contains("not allowed")
            && text.contains("--allow-env"),
        "{text}"
    );
    assert_eq!(
        common::images_named(&name),
        Vec::<String>::new(),
        "buildah ran"
    );
}

#[test]
fn a_launch_env_value_no_server_takes_is_an_error_naming_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(
        root.path(),
        &["--allow-env", "TOKEN", "--allow-env", "TOKNE"],
    );
    initialize(&mut server, "2025-11-25");
    let (tag, _cleanup) = token_image(&mut server, root.path(), "hostile-unused-env");
    // A misspelt name was dropped without a word; now it is an error.
    let launched = server.call(
        2,
        "launch_session",
        json!({"image": tag, "env": {"TOKNE": "v"}}),
    );
    assert_eq!(launched["isError"], true, "{launched}");
    let text = text_of(&launched);
    assert!(
        text.contains("TOKNE") && text.contains("they reference: TOKEN"),
        "{text}"
    );
    let ok = server.call(
        3,
        "launch_session",
        json!({"image": tag, "env": {"TOKEN": "v"}}),
    );
    assert_ne!(ok["isError"], true, "{ok}");
    let session = ok["structuredContent"]["session"]
        .as_str()
        .expect("session")
        .to_string();
    let stopped = server.call(4, "stop_session", json!({"session": session}));
    assert_ne!(stopped["isError"], true, "{stopped}");
}

/// The hello server in an image of its own whose one server `one` takes
/// `TOKEN` from `${TOKEN}`: its tag, and the guard that removes it.
fn token_image(server: &mut Server, root: &std::path::Path, what: &str) -> (String, ImageCleanup) {
    let ctx = root.join("ctx");
    std::fs::create_dir(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Containerfile"),
        format!("FROM {}\n", hello_image()),
    )
    .expect("Containerfile");
    let name = format!("localhost/{}", unique(what));
    let cleanup = ImageCleanup(name.clone());
    let built = server.call(
        1,
        "build_image",
        json!({"name": name, "context": "ctx", "servers": {
            "one": {"command": ["/bin/hello-server"], "env": {"TOKEN": "${TOKEN}"}}}}),
    );
    let tag = built["structuredContent"]["tag"]
        .as_str()
        .unwrap_or_else(|| panic!("built: {built}"))
        .to_string();
    (tag, cleanup)
}
