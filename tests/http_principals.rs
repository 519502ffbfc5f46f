//! `serve --listen --principals FILE`: the operator's policy narrowed per
//! principal (tools, sessions at once, env names), with the real binary and
//! the Python SDK's streamable-HTTP client.

mod common;

use common::http::Serve;
use serde_json::{Value, json};

fn attempt(serve: &Serve, token: &str, tool: &str, arguments: Value) -> Value {
    let call = json!({"tool": tool, "arguments": arguments}).to_string();
    serve.client(token, "try", Some(&call))["result"].clone()
}

fn refused(result: &Value, says: &str) {
    assert_eq!(result["isError"], true, "{result}");
    let text = result["text"].as_str().unwrap_or_default();
    assert!(text.contains(says), "wanted {says:?} in {result}");
}

#[test]
fn a_profile_narrows_tools_sessions_and_env_for_its_principal_only() {
    let hello = common::hello_image();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("principals.toml");
    std::fs::write(
        &file,
        r#"
[principal.ci]
tools = ["launch_session", "list_sessions", "stop_session", "call_tool"]
max_sessions = 1
allow_env = []
max_memory_mb = 128
"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let serve = Serve::start_with(&["--principals", file, "--allow-env", "HOME"]);
    let ci = serve.create("ci");
    let other = serve.create("other");

    // Its one session, then no second, under its own limits.
    let first = attempt(&serve, &ci, "launch_session", json!({"image": hello}));
    let session = first["session"].as_str().expect("a session").to_string();
    refused(
        &attempt(&serve, &ci, "launch_session", json!({"image": hello})),
        "max_sessions = 1",
    );
    let detail = attempt(&serve, &ci, "list_sessions", json!({"session": session}));
    assert_eq!(
        detail["detail"]["isolation"]["memory_mb"], 128,
        "the profile's memory ceiling: {detail}"
    );
    // Tools it is not given, and env names the flags allow but it may not use.
    refused(
        &attempt(&serve, &ci, "show_policy", json!({})),
        "may not call show_policy",
    );
    refused(
        &attempt(
            &serve,
            &ci,
            "build_image",
            json!({"name": "x", "context": "hello"}),
        ),
        "may not call build_image",
    );
    let stopped = attempt(&serve, &ci, "stop_session", json!({"session": session}));
    assert_eq!(stopped["stopped"], true, "{stopped}");
    let with_env = json!({"image": hello,
                          "overrides": {"env": {"SECRET": "${HOME}"}}});
    refused(
        &attempt(&serve, &ci, "launch_session", with_env.clone()),
        "HOME",
    );

    // Another token has the flags' policy, untouched.
    let theirs = attempt(&serve, &other, "launch_session", with_env);
    assert!(theirs["session"].is_string(), "{theirs}");
    let policy = attempt(&serve, &other, "show_policy", json!({}));
    assert!(policy.to_string().contains("HOME"), "{policy}");
    assert!(serve.stop().success());
}

#[test]
fn a_principals_file_that_would_widen_the_policy_stops_serve_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("principals.toml");
    std::fs::write(&file, "[principal.ci]\nallow_env = [\"HOME\"]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(["serve", "--listen", "127.0.0.1:0", "--principals"])
        .arg(&file)
        .env("MCPOD_STATE_DIR", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("principal.ci.allow_env") && err.contains("HOME") && err.contains("narrow"),
        "{err}"
    );
}

/// Wait for a log line containing `says`.
fn logged(serve: &Serve, says: &str) -> String {
    loop {
        let line = serve
            .log
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no log line says {says:?}"));
        if line.contains(says) {
            return line;
        }
    }
}

#[test]
fn sighup_reads_the_principals_file_again_and_a_broken_one_leaves_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("principals.toml");
    std::fs::write(&path, "[principal.ci]\ntools = [\"list_sessions\"]\n").unwrap();
    let serve = Serve::start_with(&["--principals", path.to_str().unwrap()]);
    let ci = serve.create("ci");
    let hup = || {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(serve.child.id() as i32, libc::SIGHUP) };
    };
    refused(
        &attempt(&serve, &ci, "show_policy", json!({})),
        "may not call show_policy",
    );

    // Given the tool, then read again: it applies to the next request.
    std::fs::write(
        &path,
        "[principal.ci]\ntools = [\"list_sessions\", \"show_policy\"]\n",
    )
    .unwrap();
    hup();
    logged(&serve, "SIGHUP: read again: --principals");
    let policy = attempt(&serve, &ci, "show_policy", json!({}));
    assert_ne!(policy["isError"], true, "{policy}");

    // A file that would widen the flags, or is not TOML: the last one stays.
    for broken in ["[principal.ci]\nallow_env = [\"HOME\"]\n", "not toml ["] {
        std::fs::write(&path, broken).unwrap();
        hup();
        let line = logged(&serve, "SIGHUP: the principals file in effect stays");
        assert!(line.contains("--principals"), "{line}");
        let policy = attempt(&serve, &ci, "show_policy", json!({}));
        assert_ne!(policy["isError"], true, "{broken}: {policy}");
        // Still narrowed: a file dropped for nothing would allow it.
        refused(
            &attempt(
                &serve,
                &ci,
                "build_image",
                json!({"name": "x", "context": "hello"}),
            ),
            "may not call build_image",
        );
    }
    serve.stop();
}
