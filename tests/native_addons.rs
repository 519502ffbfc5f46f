//! Native addons and install scripts (`provision::build`): a real MCP server
//! whose sqlite3 addon is compiled in the build container and answers
//! through MCP; and hostile install scripts run by the same code on trees
//! made here (the network, the host's files and paths, a build log without
//! end, a compiler error), with real podman, npm and node-gyp.

mod common;

use std::path::Path;

use common::rpc::{Server, initialize, text_of};
use mcpod::provision::{self, Runtime, build};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// An MCP server on npm whose `sqlite3` dependency (5.1.7) has an install
/// script (`prebuild-install -r napi || node-gyp rebuild`) and no prebuilt
/// platform packages: without the build, `require('sqlite3')` fails at start.
const SQLITE_NPX: &str = "npm:mcp-server-sqlite-npx@0.8.0";

#[test]
fn a_server_with_a_native_addon_is_built_in_a_container_and_answers() {
    // Provisioning first, on the command line: a cold build (the toolchain,
    // then sqlite3's C sources) takes longer than an MCP request is waited for.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(["provision", SQLITE_NPX])
        .output()
        .expect("mcpod runs");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", tail(&said));
    assert!(
        said.contains("running the install scripts of sqlite3@5.1.7 in a build container"),
        "{}",
        tail(&said)
    );

    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let info = server.call(
        1,
        "launch_session",
        json!({"image": SQLITE_NPX, "overrides": {"sqlite-npx": {"args": ["/tmp/t.db"]}}}),
    );
    assert_ne!(info["isError"], true, "{}", text_of(&info));
    let info = &server.detail_of(1, &info);
    assert_eq!(info["servers"]["sqlite-npx"]["status"], "ready", "{info}");
    let warnings = info["provisioned"]["warnings"].to_string();
    assert!(
        warnings.contains("ran in a build container") && warnings.contains("sqlite3"),
        "{warnings}"
    );
    let session = info["session"].as_str().expect("session").to_string();
    let created = server.call(
        2,
        "call_tool",
        json!({"session": session, "server": "sqlite-npx", "tool": "create_table",
               "arguments": {"query": "CREATE TABLE t (x INTEGER)"}}),
    );
    assert_ne!(created["isError"], true, "{created}");
    let tables = server.call(
        3,
        "call_tool",
        json!({"session": session, "server": "sqlite-npx", "tool": "list_tables", "arguments": {}}),
    );
    assert!(text_of(&tables).contains("\"t\""), "{tables}");
    server.call(4, "stop_session", json!({"session": session}));
    assert!(
        common::build_containers("sqlite3@").is_empty(),
        "no build container is left: {:?}",
        common::build_containers("sqlite3@")
    );
}

fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(4000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A staged-like tree: a root package.json and one dependency `name` with
/// `manifest`'s scripts, a `binding.gyp` (so its scripts count as a native
/// build, as any package can claim) and the given extra files.
fn tree(name: &str, scripts: serde_json::Value, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tree");
    let app = dir.path();
    common::write(
        app,
        "package.json",
        &json!({"name": "mcpod-provisioned", "private": true, "dependencies": {name: "1.0.0"}})
            .to_string(),
    );
    let pkg = format!("node_modules/{name}");
    common::write(
        app,
        &format!("{pkg}/package.json"),
        &json!({"name": name, "version": "1.0.0", "scripts": scripts}).to_string(),
    );
    common::write(
        app,
        &format!("{pkg}/binding.gyp"),
        r#"{"targets": [{"target_name": "none", "type": "none"}]}"#,
    );
    for (path, content) in files {
        common::write(app, &format!("{pkg}/{path}"), content);
    }
    dir
}

async fn run(app: &Path) -> mcpod::Result<build::Built> {
    let cancel = CancellationToken::new();
    let progress = common::quiet();
    let base = provision::bases::resolve(
        &provision::bases::Pick::Host(Runtime::Node),
        &Default::default(),
        progress.clone(),
        cancel.clone(),
    )
    .await
    .expect("the node base");
    build::npm(app, &base, &provision::Progressed { say: progress }, cancel).await
}

/// Hostile install scripts, one after another (each starts a build container).
#[tokio::test(flavor = "multi_thread")]
async fn hostile_install_scripts_reach_neither_the_network_nor_the_host() {
    // The network: there is none, and the failed build is set aside with a
    // warning naming the package and quoting it.
    let net = tree(
        "phone-home",
        json!({"install": "node -e \"require('http').get('http://registry.npmjs.org/', () => process.exit(0)).on('error', e => { console.error('phone-home: no network: ' + e.code); process.exit(3) })\""}),
        &[],
    );
    let built = run(net.path()).await.expect("set aside, not fatal");
    assert!(built.built.is_empty(), "{built:?}");
    let err = built.warnings.join("\n");
    eprintln!("{err}\n---");
    assert!(
        err.contains("phone-home@1.0.0") && err.contains("phone-home: no network"),
        "{err}"
    );
    assert!(
        common::build_containers("phone-home@").is_empty(),
        "{:?}",
        common::build_containers("phone-home@")
    );

    // The host: a secret file it names cannot be read, paths outside the
    // tree cannot be written; what it can write is inside the tree.
    let host = tempfile::tempdir().expect("host dir");
    let secret = host.path().join("secret");
    std::fs::write(&secret, "host-secret-42").expect("secret");
    let out = host.path().join("pwned");
    let script = format!(
        "(cat {s}; cat /etc/shadow; echo x > {o}; echo x > /etc/pwned; echo x > /runtime/usr/bin/node; echo x > /usr/bin/pwned; id -u) > leak.txt 2>&1; exit 0",
        s = secret.display(),
        o = out.display()
    );
    let escape = tree("escape", json!({"postinstall": script}), &[]);
    run(escape.path())
        .await
        .expect("the script runs (and exits 0)");
    let leak = std::fs::read_to_string(escape.path().join("node_modules/escape/leak.txt"))
        .expect("the script wrote inside the tree");
    assert!(!leak.contains("host-secret-42"), "{leak}");
    assert!(!out.exists(), "a host path outside the tree was written");
    assert!(
        leak.contains("Read-only file system") || leak.contains("Permission denied"),
        "{leak}"
    );
    assert!(
        leak.lines().last().is_some_and(|uid| uid.trim() != "0"),
        "the scripts run as a non-root uid: {leak}"
    );
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(escape.path().join("node_modules/escape/leak.txt"))
        .expect("leak")
        .uid();
    // SAFETY: geteuid has no preconditions.
    assert_eq!(owner, unsafe { libc::geteuid() }, "the tree is handed back");

    // A log without end: stopped at the bound, which the error names.
    let noisy = tree(
        "noisy",
        json!({"install": "yes 'a chatty build line, again and again and again'"}),
        &[],
    );
    let err = run(noisy.path()).await.expect_err("stopped").to_string();
    eprintln!("{err}\n---");
    assert!(
        err.contains("noisy@1.0.0") && err.contains("more than 64 MiB"),
        "{err}"
    );
    assert!(
        err.len() < 8_000,
        "the error quotes a bounded tail: {}",
        err.len()
    );
    assert!(
        common::build_containers("noisy@").is_empty(),
        "{:?}",
        common::build_containers("noisy@")
    );

    // A compiler error: named and quoted.
    let broken = tree(
        "broken-addon",
        json!({}),
        &[
            (
                "binding.gyp",
                r#"{"targets": [{"target_name": "b", "sources": ["b.cc"]}]}"#,
            ),
            (
                "b.cc",
                "#include <node_api.h>\nint f() { return not_declared_anywhere; }\n",
            ),
        ],
    );
    let built = run(broken.path()).await.expect("set aside, not fatal");
    let err = built.warnings.join("\n");
    assert!(err.contains("left as npm staged it"), "{err}");
    eprintln!("{err}\n---");
    assert!(
        err.contains("broken-addon@1.0.0") && err.contains("not_declared_anywhere"),
        "{err}"
    );
    assert!(err.contains("error:"), "the compiler is quoted: {err}");
}
