//! An agent with only mcpod does six everyday tasks through MCP alone, with
//! real servers written by others: fetch a page from a local docs site, keep
//! a SQLite database in a workspace folder, run the GitHub server with the
//! operator's token, convert a file with markitdown, find a tool among
//! several sessions, and clean up. Each task prints the calls it took, the
//! bytes mcpod returned and its wall time; each must succeed with no step
//! outside mcpod (the operator's flags and files are set up first, as an
//! operator would).

mod common;

use std::time::{Duration, Instant};

use common::egress::http_server;
use common::rpc::{Server, initialize, text_of};
use serde_json::{Value, json};

const FETCH: &str = "pypi:mcp-server-fetch==2026.10.24";
const SQLITE: &str = "pypi:mcp-server-sqlite==2025.4.25";
const GITHUB: &str = "npm:@modelcontextprotocol/server-github@2025.4.8";
const MARKITDOWN: &str = "pypi:markitdown-mcp==0.0.1a8";
const TOKEN: &str = "ghp_agentflowtokenvalue0000000000000000";

/// The agent's side: every call counted, with the bytes of its result.
struct Agent {
    server: Server,
    next: u64,
    calls: usize,
    bytes: usize,
    started: Instant,
}

impl Agent {
    fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.next += 1;
        self.calls += 1;
        let result = self.server.call(self.next, tool, arguments);
        self.bytes += result.to_string().len();
        result
    }

    /// A call that must succeed.
    fn ok(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments);
        assert_ne!(result["isError"], true, "{tool}: {}", text_of(&result));
        result
    }

    /// Print the task's figures and start the next task's.
    fn done(&mut self, task: &str, report: &mut Vec<String>) {
        let line = format!(
            "{task:<28} {:>2} calls {:>7} bytes {:>6.1} s",
            self.calls,
            self.bytes,
            self.started.elapsed().as_secs_f64()
        );
        eprintln!("agent flow: {line}");
        report.push(line);
        self.calls = 0;
        self.bytes = 0;
        self.started = Instant::now();
    }
}

/// A launched session's id and the exported name of its tool `tool`, read
/// from the launch result alone (no listing).
fn tool_of(launched: &Value, tool: &str) -> (String, String) {
    let s = &launched["structuredContent"];
    let session = s["session"].as_str().expect("session").to_string();
    let servers = s["servers"].as_object().expect("servers");
    let name = servers
        .values()
        .flat_map(|server| server["tools"].as_array().into_iter().flatten())
        .filter_map(|t| t["name"].as_str())
        .find(|n| n.ends_with(&format!("__{tool}")))
        .unwrap_or_else(|| panic!("no `{tool}` in the launch result: {launched}"))
        .to_string();
    (session, name)
}

#[test]
fn six_everyday_tasks_through_mcpod_alone() {
    // The operator: a docs site on this host, a workspace folder the
    // sessions may write, a folder of files to convert, a token.
    let (docs_port, _seen) =
        http_server("<html><body><h1>Install</h1><p>Run the installer.</p></body></html>");
    let root = tempfile::tempdir().expect("root");
    let workspace = root.path().join("workspace");
    let files = root.path().join("files");
    std::fs::create_dir_all(&workspace).expect("workspace");
    std::fs::create_dir_all(&files).expect("files");
    std::fs::set_permissions(
        &workspace,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    common::write(
        &files,
        "notes.html",
        "<html><body><h2>Release notes</h2><ul><li>faster</li></ul></body></html>",
    );
    let docs = format!("host.containers.internal:{docs_port}");
    let mut server = Server::start_env(
        root.path(),
        &[
            &format!("--allow-egress={docs}"),
            &format!("--allow-mount={}:rw", workspace.display()),
            &format!("--allow-mount={}", files.display()),
            "--allow-env=GITHUB_PERSONAL_ACCESS_TOKEN",
        ],
        &[("GITHUB_PERSONAL_ACCESS_TOKEN", TOKEN.to_string())],
    );
    initialize(&mut server, "2025-11-25");
    let mut agent = Agent {
        server,
        next: 0,
        calls: 0,
        bytes: 0,
        started: Instant::now(),
    };
    let mut report = Vec::new();

    // 1. Fetch a page from the local docs site.
    let launched = agent.ok(
        "launch_session",
        json!({"image": FETCH, "egress": [docs],
               "overrides": {"args": ["--allow-private-ips", "--ignore-robots-txt"]}}),
    );
    let (_, fetch) = tool_of(&launched, "fetch");
    let page = agent.ok(
        &fetch,
        json!({"url": format!("http://{docs}/install.html")}),
    );
    assert!(text_of(&page).contains("Run the installer"), "{page}");
    agent.done("fetch a local docs page", &mut report);

    // 2. Keep a SQLite database in the workspace folder.
    let launched = agent.ok(
        "launch_session",
        json!({"image": SQLITE,
               "mounts": [{"source": workspace.display().to_string(), "target": "/data", "read_only": false}],
               "overrides": {"args": ["--db-path", "/data/notes.db"]}}),
    );
    let (_, write) = tool_of(&launched, "write_query");
    let (_, create) = tool_of(&launched, "create_table");
    agent.ok(
        &create,
        json!({"query": "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"}),
    );
    agent.ok(
        &write,
        json!({"query": "INSERT INTO notes (body) VALUES ('kept on the host')"}),
    );
    assert!(
        workspace.join("notes.db").exists(),
        "the database is in the workspace"
    );
    agent.done("a SQLite db in the workspace", &mut report);

    // 3. The GitHub server with the operator's token, which never reaches
    // the agent. A first try that puts it in `env` is told what to send.
    let wrong = agent.call(
        "launch_session",
        json!({"image": GITHUB,
               "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_PERSONAL_ACCESS_TOKEN}"}}),
    );
    assert!(
        text_of(&wrong).contains(
            r#"`overrides`: {"env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_PERSONAL_ACCESS_TOKEN}"}}"#
        ),
        "{}",
        text_of(&wrong)
    );
    let launched = agent.ok(
        "launch_session",
        json!({"image": GITHUB,
               "overrides": {"env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${GITHUB_PERSONAL_ACCESS_TOKEN}"}}}),
    );
    let (github, _) = tool_of(&launched, "search_repositories");
    let detail = agent.ok("list_sessions", json!({"session": github}));
    assert!(
        !launched.to_string().contains(TOKEN) && !detail.to_string().contains(TOKEN),
        "the token stays out of what the agent reads"
    );
    agent.done("GitHub with the operator's token", &mut report);

    // 4. Convert a file with markitdown.
    let launched = agent.ok(
        "launch_session",
        json!({"image": MARKITDOWN,
               "mounts": [{"source": files.display().to_string(), "target": "/files"}]}),
    );
    let (_, convert) = tool_of(&launched, "convert_to_markdown");
    let markdown = agent.ok(&convert, json!({"uri": "file:///files/notes.html"}));
    assert!(text_of(&markdown).contains("Release notes"), "{markdown}");
    agent.done("convert a file with markitdown", &mut report);

    // 5. Find a tool among the sessions by what it does, and call it.
    let found = agent.ok("find_tools", json!({"query": "reads a SQLite query"}));
    let first = found["structuredContent"]["tools"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("nothing found: {found}"))
        .to_string();
    assert!(first.ends_with("__read_query"), "{found}");
    let rows = agent.ok(&first, json!({"query": "SELECT body FROM notes"}));
    assert!(text_of(&rows).contains("kept on the host"), "{rows}");
    agent.done("find a tool across sessions", &mut report);

    // 6. Clean up: every session stopped, nothing left.
    let listed = agent.ok("list_sessions", json!({}));
    let sessions: Vec<String> = listed["structuredContent"]["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["session"].as_str().map(str::to_string))
        .collect();
    assert_eq!(sessions.len(), 4, "{listed}");
    for s in &sessions {
        agent.ok("stop_session", json!({"session": s}));
    }
    let listed = agent.ok("list_sessions", json!({}));
    assert_eq!(
        listed["structuredContent"]["sessions"],
        json!([]),
        "{listed}"
    );
    for s in &sessions {
        assert!(common::containers_of(s).is_empty(), "{s} left a container");
    }
    agent.done("clean up", &mut report);

    eprintln!("agent flow:\n{}", report.join("\n"));
    agent.server.close(Duration::from_secs(30));
}
