//! Packages that worked when published and fail on mcpod's way today, with
//! real packages from PyPI and npm, real pip and npm, real buildah and
//! podman: a file that does not compile, dependencies that drifted.

mod common;

use common::mcpod_cli as mcpod;

/// markitdown-mcp's dependency olefile ships `olefile2.py`, which is
/// Python 2: bytecode for it fails, and that file alone keeps its source;
/// the provision goes on and warns naming it, on a repeat too.
#[test]
fn a_file_that_does_not_compile_keeps_its_source_and_is_named() {
    for _ in 0..2 {
        let (ok, provisioned, err) = mcpod(
            &["provision", "pypi:markitdown-mcp==0.0.1a8", "--json"],
            None,
        );
        assert!(ok, "{err}");
        let warnings = provisioned["warnings"].to_string();
        assert!(
            warnings.contains("do not compile") && warnings.contains("`olefile/olefile2.py`"),
            "{warnings}"
        );
        assert_eq!(provisioned["server"], "markitdown", "{provisioned}");
    }
}

const SQLITE: &str = "pypi:mcp-server-sqlite==2025.4.25";
const SQLITE_DB: [&str; 4] = [
    "--extra-arg",
    "sqlite=--db-path",
    "--extra-arg",
    "sqlite=/tmp/test.db",
];

/// mcp-server-sqlite resolved today gets mcp 2.x and dies at start with an
/// AttributeError. Launched from its image, the error names the installed
/// mcp and the way out (`resolve_as_of`, or the pin), not the labels;
/// launched from its package reference, mcpod takes that way itself: it
/// provisions it again as of its publication, and the server answers.
#[test]
fn a_server_that_fails_on_todays_dependencies_names_them_and_resolve_as_of() {
    let (ok, provisioned, err) = mcpod(&["provision", SQLITE, "--json"], None);
    assert!(ok, "{err}");
    let tag = provisioned["image"]["tag"]
        .as_str()
        .expect("tag")
        .to_string();
    let mut args = vec!["launch", tag.as_str()];
    args.extend(SQLITE_DB);
    let (ok, _, err) = mcpod(&args, None);
    assert!(!ok, "mcp 2.x is resolved and the server cannot start");
    assert!(err.contains("list_resources"), "the child's error: {err}");
    let fix = err.rsplit("Fix: ").next().unwrap_or_default();
    assert!(fix.contains("installed: mcp 2."), "{fix}");
    assert!(fix.contains("\"resolve_as_of\": \"published\""), "{fix}");
    assert!(fix.contains("\"pins\": [\"mcp<2\"]"), "{fix}");
    assert!(!fix.contains("labels"), "{fix}");

    let mut args = vec!["launch", SQLITE];
    args.extend(SQLITE_DB);
    args.extend(["--call", "sqlite/list_tables", "--json"]);
    let (ok, launched, err) = mcpod(&args, None);
    assert!(
        ok,
        "the package reference is provisioned again as of its publication: {err}"
    );
    let notes = launched["session"]["provisioned"]["notes"].to_string();
    assert!(notes.contains("resolved as of its publication"), "{notes}");
    assert_ne!(launched["call"]["isError"], true, "{launched}");
}

/// The same package resolved as of a past day (npm's and pip's view of the
/// registry then) gets that day's mcp, starts and answers tools/list and a
/// call; hostile days are refused before anything is resolved.
#[test]
fn resolved_as_of_a_day_an_older_server_starts_and_hostile_days_are_refused() {
    let mut args = vec!["launch", SQLITE, "--as-of", "2025-10-01"];
    args.extend(SQLITE_DB);
    args.extend(["--call", "sqlite/list_tables", "--json"]);
    let (ok, launched, err) = mcpod(&args, None);
    assert!(ok, "{err}");
    let session = &launched["session"];
    assert!(
        session["provisioned"]["notes"]
            .to_string()
            .contains("dependencies resolved as of 2025-10-02T00:00:00Z"),
        "{session}"
    );
    assert!(
        session["servers"]["sqlite"]["tools"]
            .to_string()
            .contains("list_tables"),
        "{session}"
    );
    assert_ne!(launched["call"]["isError"], true, "{launched}");

    for hostile in [
        "9999-12-31",
        "1970-01-01",
        "2025-02-30",
        "yesterday",
        "--index-url=x",
    ] {
        let as_of = format!("--as-of={hostile}");
        let (ok, _, err) = mcpod(&["provision", SQLITE, &as_of, "--json"], None);
        assert!(
            !ok && err.contains("invalid resolve_as_of"),
            "{hostile}: {err}"
        );
    }
}

/// npm resolves as the registry stood when the package was published
/// (`before` in the work directory's .npmrc): server-memory 0.6.2 gets the
/// zod of then, not today's.
#[test]
fn npm_resolves_as_of_publication() {
    let (ok, provisioned, err) = mcpod(
        &[
            "provision",
            "npm:@modelcontextprotocol/server-memory@0.6.2",
            "--as-of",
            "published",
            "--json",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(
        provisioned["notes"]
            .to_string()
            .contains("dependencies resolved as of 2025-05-08T02:03:11Z"),
        "{provisioned}"
    );
    let state = std::env::var("MCPOD_STATE_DIR").expect("tests run with MCPOD_STATE_DIR");
    let lock_id = provisioned["lock"].as_str().expect("lock");
    let lock = std::fs::read(format!("{state}/provision/locks/{lock_id}")).expect("lock");
    let lock = String::from_utf8_lossy(&lock);
    let zod = lock
        .split_once("\"node_modules/zod\": {")
        .and_then(|(_, rest)| rest.split_once("\"version\": \""))
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(version, _)| version);
    assert_eq!(zod, Some("3.24.4"), "zod as of 2025-05-08");
}

/// Resolved as of its own publication, mcp-server-sqlite gets mcp 1.6, whose
/// server exits on a request it does not know: it dies on the
/// `server/discover` probe, and is started again with `initialize` only.
#[test]
fn an_old_sdk_server_that_dies_on_the_discover_probe_starts_on_initialize() {
    let mut args = vec!["launch", SQLITE, "--as-of", "published"];
    args.extend(SQLITE_DB);
    args.extend(["--call", "sqlite/list_tables", "--json"]);
    let (ok, launched, err) = mcpod(&args, None);
    assert!(ok, "{err}");
    let session = &launched["session"];
    let sqlite = &session["servers"]["sqlite"];
    assert_eq!(sqlite["status"], "ready", "{session}");
    assert!(
        sqlite["handshake"]["protocol_version"]
            .as_str()
            .is_some_and(|v| v < "2026"),
        "an older protocol, by initialize: {sqlite}"
    );
    assert_ne!(launched["call"]["isError"], true, "{launched}");
}

/// The same old server behind a banner on stdout (as chroma-mcp prints
/// "Starting MCP server" before serving): the banner is dropped, the probe
/// still kills it, and it is still started again with `initialize` only.
#[test]
fn an_old_sdk_server_with_a_banner_that_dies_on_the_probe_starts_on_initialize() {
    use common::rpc::{Server, initialize, text_of};
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let launched = server.call(
        1,
        "launch_session",
        serde_json::json!({
            "provision": {"package": SQLITE, "resolve_as_of": "published"},
            "overrides": {"command": ["python3", "-c",
                "print('Starting the server', flush=True); import sys; \
                 sys.argv[1:] = ['--db-path', '/tmp/test.db']; \
                 from mcp_server_sqlite import main; sys.exit(main())"]},
        }),
    );
    assert_ne!(launched["isError"], true, "{}", text_of(&launched));
    let servers = &launched["structuredContent"]["servers"];
    let (_, sqlite) = servers
        .as_object()
        .and_then(|s| s.iter().next())
        .expect("a server");
    assert_eq!(sqlite["status"], "ready", "{launched}");
    let detail = server.detail_of(2, &launched);
    let handshake = detail["servers"]
        .as_object()
        .and_then(|s| s.values().next())
        .map(|s| s["handshake"]["protocol_version"].clone());
    assert!(
        handshake
            .as_ref()
            .and_then(|v| v.as_str())
            .is_some_and(|v| v < "2026"),
        "an older protocol, by initialize: {detail}"
    );
}
