//! A launch's failures name their cause and a fix the agent can apply with
//! mcpod's tools (issue 26, item 2), with real packages: what the policy
//! refuses is refused before any package is resolved, and a server that
//! dies at start is diagnosed from what it said.

mod common;

use common::rpc::{Server, initialize, text_of};
use serde_json::json;

/// Needs `node:sqlite` (node >= 22.5).
const DBHUB: &str = "npm:@bytebase/dbhub@1.4.0";

/// A package no test provisions otherwise, so nothing of it is cached.
const UNCACHED: &str = "npm:@modelcontextprotocol/server-everything@2025.9.25";

/// Every file under `dir`, for the message when one is there.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

/// A launch through a fresh `mcpod serve` (with the operator's `flags` and
/// `env`) that must fail: its whole error text and what follows its "Fix: ".
fn failed_launch(
    flags: &[&str],
    env: &[(&str, String)],
    launch: serde_json::Value,
) -> (String, String) {
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start_env(root.path(), flags, env);
    initialize(&mut server, "2025-11-25");
    let failed = server.call(1, "launch_session", launch);
    let text = text_of(&failed);
    assert_eq!(failed["isError"], true, "{text}");
    let fix = text.rsplit("Fix: ").next().unwrap_or_default().to_string();
    (text, fix)
}

/// A launch of a package reference whose mounts, env names, egress, engine
/// or limits the policy refuses is refused before any resolution: the
/// state dir of this mcpod holds no lock, no staged package, nothing
/// provisioned, after each refusal.
#[test]
fn what_the_policy_refuses_is_refused_before_any_resolution() {
    let root = tempfile::tempdir().expect("root");
    let state = tempfile::tempdir().expect("state");
    let mut server = Server::start_env(
        root.path(),
        &[],
        &[("MCPOD_STATE_DIR", state.path().display().to_string())],
    );
    initialize(&mut server, "2025-11-25");
    let outside = tempfile::tempdir().expect("outside the roots");
    for (id, (extra, says)) in [
        (
            json!({"mounts": [{"source": outside.path(), "target": "/data", "read_only": false}]}),
            "mount source",
        ),
        (
            json!({"env": {"NOT_ALLOWED_TOKEN": "x"}}),
            "NOT_ALLOWED_TOKEN",
        ),
        (json!({"egress": ["example.com:443"]}), "egress"),
        (json!({"engine": "nowhere"}), "no engine has this name"),
        (json!({"memory_mb": 1_000_000}), "memory_mb"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut args = json!({"image": UNCACHED});
        args.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        let refused = server.call(id as u64 + 1, "launch_session", args);
        let text = text_of(&refused);
        assert_eq!(refused["isError"], true, "{text}");
        assert!(text.contains(says), "{says}: {text}");
        let provision = state.path().join("provision");
        assert!(
            files_under(&provision).is_empty(),
            "{says}: the policy refused it after provisioning began: {:?}",
            &files_under(&provision)[..3.min(files_under(&provision).len())]
        );
    }
}

/// dbhub 1.4.0 provisioned on node 20 dies at start without `node:sqlite`:
/// the error names the module, the node it ran on, and the runtime to ask
/// for with the package's exact reference.
#[test]
fn a_node_built_in_the_runtime_lacks_names_the_runtime_to_ask_for() {
    // The CLI has no MCP deadline (a cold node download and base take
    // longer than a test client waits); the launch then reuses its build.
    let (ok, _, err) = common::mcpod_cli(
        &["provision", DBHUB, "--runtime", "node@20", "--json"],
        None,
    );
    assert!(ok, "{err}");
    let (text, fix) = failed_launch(
        &[],
        &[],
        json!({
            "provision": {"package": DBHUB, "runtime": "node@20"},
            "overrides": {"dbhub": {"args": ["--demo"]}}
        }),
    );
    assert!(
        text.contains("the built-in module `node:sqlite` is not in node 20."),
        "the cause: {text}"
    );
    assert!(
        fix.contains(
            r#"{"provision": {"package": "npm:@bytebase/dbhub@1.4.0", "runtime": "node@22"}}"#
        ),
        "the fix: {fix}"
    );
}

/// Asks its API at the first tools/list.
const SUPABASE: &str = "npm:@supabase/mcp-server-supabase@0.13.0";

/// A server that reaches for the network at start, in a session granted
/// none: the error says so and names `egress` with what the operator allows.
#[test]
fn a_server_that_reaches_for_the_network_at_start_names_egress() {
    let token = "sbp_0000000000000000000000000000000000000000".to_string();
    let (text, fix) = failed_launch(
        &[
            "--allow-egress=api.supabase.com:443",
            "--allow-env=SUPABASE_ACCESS_TOKEN",
        ],
        &[("SUPABASE_ACCESS_TOKEN", token)],
        json!({
            "image": SUPABASE,
            "overrides": {
                "args": ["--read-only", "--project-ref=abcdefghijklmnopqrst"],
                "env": {"SUPABASE_ACCESS_TOKEN": "${SUPABASE_ACCESS_TOKEN}"}
            }
        }),
    );
    assert!(
        text.contains("it reached for the network at start (`"),
        "the cause: {text}"
    );
    assert!(
        fix.contains(r#""egress": ["HOST:PORT"]"#) && fix.contains("api.supabase.com:443"),
        "the fix: {fix}"
    );
}

/// Exits at start without its key ("BRAVE_API_KEY environment variable is
/// required").
const BRAVE: &str = "npm:@modelcontextprotocol/server-brave-search@0.6.2";

/// A server that says its credential is missing: the error names the
/// variable and, since the operator allows no such env name, what to ask
/// of them.
#[test]
fn a_server_without_its_credential_names_the_variable_and_the_operator() {
    let (text, fix) = failed_launch(&[], &[], json!({"image": BRAVE}));
    assert!(
        text.contains("it needs the environment variable `BRAVE_API_KEY`"),
        "the cause: {text}"
    );
    assert!(
        fix.contains("the operator must act") && fix.contains("--allow-env BRAVE_API_KEY"),
        "the fix: {fix}"
    );
}
