//! Sessions on several podman engines: the local one, one on a unix socket
//! and one over ssh (both `podman system service` with storage of their own,
//! started by `scripts/engines`), images pushed once to a real registry
//! (Debian's docker-registry) and pulled by digest.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::engines::{TestEngines, engines, remote_lines};
use common::host::HostLock;
use common::rpc::{Server, initialize, text_of};
use serde_json::{Value, json};

/// A fresh image of the hello fixture (a label of its own gives it an ID no
/// engine has), removed here and on the engines when dropped.
struct FreshImage {
    tag: String,
    id: String,
}

impl FreshImage {
    fn new(what: &str) -> FreshImage {
        let base = common::hello_image();
        let name = common::unique(what);
        let tag = format!("localhost/{name}:1");
        let out = |args: &[&str]| {
            let out = Command::new("buildah")
                .args(args)
                .output()
                .expect("buildah");
            assert!(out.status.success(), "buildah {args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let working = out(&["from", "--pull=never", "--quiet", &base]);
        out(&[
            "config",
            "--label",
            &format!("io.mcpod.test={name}"),
            &working,
        ]);
        let id = out(&["commit", "--rm", "--quiet", &working, &tag]);
        FreshImage { tag, id }
    }
}

impl Drop for FreshImage {
    fn drop(&mut self) {
        forget_on_engines(&self.id);
        let _ = Command::new("podman")
            .args(["rmi", "--force", &self.tag])
            .output();
    }
}

/// Remove the supervised image made of image `id` (which the engines pulled
/// by its ID) here and on the engines.
fn forget_on_engines(id: &str) {
    let supervised = mcpod::image::supervised::tag_for(id);
    if let Ok(out) = Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Id}}", &supervised])
        .output()
    {
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let te = engines();
        for url in [&te.a, &te.b_local] {
            let _ = Command::new("podman")
                .args(["--url", url, "rmi", "--force", &id])
                .output();
        }
    }
    let _ = Command::new("podman")
        .args(["rmi", "--force", &supervised])
        .output();
}

/// `mcpod serve` with the test engines and registry.
fn serve(te: &TestEngines, extra: &[&str]) -> Server {
    let mut args = vec![
        format!("--engine=a={}", te.a),
        format!("--engine=b={}", te.b_ssh),
        format!("--engine-key=b={}", te.ssh_key.display()),
        format!("--registry={}/mcpod-test", te.registry),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start_logged(root.path(), &args);
    initialize(&mut server, "2025-11-25");
    server
}

/// Session containers (any state) on engine `url` whose session is one of `sessions`.
fn left_on(url: &str, key: Option<&std::path::Path>, sessions: &[String]) -> Vec<String> {
    remote_lines(
        url,
        key,
        &[
            "ps",
            "-a",
            "--filter",
            "label=io.mcpod.session",
            "--format",
            "{{.Names}} {{index .Labels \"io.mcpod.session\"}}",
        ],
    )
    .into_iter()
    .filter(|l| sessions.iter().any(|s| l.ends_with(&format!(" {s}"))))
    .collect()
}

/// What remains of `sessions` on every engine, waiting up to `within` for it to go.
fn remains(te: &TestEngines, sessions: &[String], within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let mut left: Vec<String> = sessions
            .iter()
            .flat_map(|s| common::containers_of(s))
            .map(|c| format!("local: {c}"))
            .collect();
        left.extend(
            left_on(&te.b_local, None, sessions)
                .into_iter()
                .map(|c| format!("b: {c}")),
        );
        left.extend(
            left_on(&te.a, None, sessions)
                .into_iter()
                .map(|c| format!("a: {c}")),
        );
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The `REPO@DIGEST`s the image `id` on engine `url` was pulled by.
fn pulled_by(url: &str, id: &str) -> Vec<String> {
    remote_lines(
        url,
        None,
        &[
            "image",
            "inspect",
            "--format",
            "{{range .RepoDigests}}{{println .}}{{end}}",
            id,
        ],
    )
}

#[test]
fn twelve_sessions_spread_over_three_engines_built_once_pulled_by_digest_and_nothing_left() {
    let te = engines();
    let image = FreshImage::new("engines-twelve");
    let mut server = serve(&te, &["--max-sessions=16"]);

    // Twelve launches at once.
    let ids: Vec<u64> = (10..22).collect();
    for id in &ids {
        server.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "launch_session", "arguments": {"image": image.tag}}}));
    }
    let launched = server.responses(&ids, Duration::from_secs(300));
    let mut sessions = Vec::new();
    let mut per_engine = std::collections::BTreeMap::<String, usize>::new();
    for (id, response) in &launched {
        let info = &response["result"]["structuredContent"];
        assert_eq!(info["state"], "running", "launch {id}: {response}");
        sessions.push(info["session"].as_str().expect("session").to_string());
        *per_engine
            .entry(info["engine"].as_str().expect("engine").to_string())
            .or_default() += 1;
    }
    // The rule: the fewest sessions and launches under way, local first on a tie.
    assert_eq!(
        per_engine,
        [
            ("a".to_string(), 4),
            ("b".to_string(), 4),
            ("local".to_string(), 4)
        ]
        .into(),
        "{per_engine:?}"
    );

    // Each is reachable: a call through each.
    for (i, session) in sessions.iter().enumerate() {
        let result = server.call(
            100 + i as u64,
            &format!("{session}_hello__greet"),
            json!({"name": session}),
        );
        assert_eq!(text_of(&result), format!("Hello, {session}!"), "{result}");
    }

    // Built once, pushed once, pulled by digest on each engine.
    let repository = format!("{}/mcpod-test/mcpod-session", te.registry);
    let tags: Value = serde_json::from_slice(
        &Command::new("curl")
            .args([
                "-fsS",
                &format!(
                    "http://{}/v2/mcpod-test/mcpod-session/tags/list",
                    te.registry
                ),
            ])
            .output()
            .expect("curl")
            .stdout,
    )
    .expect("the registry lists the tags");
    let supervised = mcpod::image::supervised::tag_for(&image.id);
    let key = supervised.rsplit_once(':').expect("a tag").1;
    assert!(
        tags["tags"]
            .as_array()
            .is_some_and(|t| t.contains(&json!(key))),
        "{tags}"
    );
    let remote: Vec<String> = launched
        .values()
        .map(|r| &r["result"]["structuredContent"])
        .filter(|info| info["engine"] != "local")
        .map(|info| info["session"].as_str().expect("session").to_string())
        .collect();
    let remote_ids: std::collections::BTreeSet<String> = remote
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let info = server.detail(400 + i as u64, s);
            info["image_id"].as_str().expect("image_id").to_string()
        })
        .collect();
    assert_eq!(remote_ids.len(), 1, "one supervised image: {remote_ids:?}");
    let id = remote_ids.first().expect("one");
    for (name, url) in [("a", &te.a), ("b", &te.b_local)] {
        let digests = pulled_by(url, id);
        assert_eq!(digests.len(), 1, "engine {name}: {digests:?}");
        assert!(
            digests[0].starts_with(&format!("{repository}@sha256:")),
            "{digests:?}"
        );
    }

    // list_sessions says where each runs.
    let listed = server.call(200, "list_sessions", json!({}));
    let rows = listed["structuredContent"]["sessions"]
        .as_array()
        .expect("sessions")
        .clone();
    assert_eq!(rows.len(), 12, "{listed}");
    assert!(
        rows.iter()
            .all(|r| ["local", "a", "b"].contains(&r["engine"].as_str().unwrap_or("")))
    );
    // And by which container ID: a remote engine is asked after the launch,
    // in the background, so it may take a moment to show.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut id = 10_000;
    loop {
        let details: Vec<Value> = sessions
            .iter()
            .map(|s| {
                id += 1;
                server.detail(id, s)
            })
            .collect();
        let listed = json!(details);
        let ids: std::collections::BTreeSet<String> = details
            .iter()
            .filter_map(|r| r["container_id"].as_str())
            .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_string)
            .collect();
        if ids.len() == 12 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every session has its container ID: {listed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Half stopped by stop_session, the rest by mcpod's exit.
    for (i, session) in sessions.iter().take(6).enumerate() {
        let stopped = server.call(1300 + i as u64, "stop_session", json!({"session": session}));
        assert_eq!(stopped["structuredContent"]["stopped"], true, "{stopped}");
    }
    assert_eq!(
        remains(&te, &sessions[..6], Duration::from_secs(20)),
        Vec::<String>::new()
    );
    assert!(
        server
            .close(Duration::from_secs(60))
            .is_some_and(|s| s.success())
    );
    assert_eq!(
        remains(&te, &sessions, Duration::from_secs(20)),
        Vec::<String>::new()
    );
}

#[test]
fn a_killed_mcpod_leaves_nothing_on_any_engine() {
    let te = engines();
    let image = FreshImage::new("engines-killed");
    let mut server = serve(&te, &[]);
    let mut sessions = Vec::new();
    for (i, engine) in ["a", "b", "local"].iter().enumerate() {
        let info = server.call(
            10 + i as u64,
            "launch_session",
            json!({"image": image.tag, "engine": engine}),
        );
        assert_eq!(info["structuredContent"]["engine"], *engine, "{info}");
        sessions.push(
            info["structuredContent"]["session"]
                .as_str()
                .expect("id")
                .to_string(),
        );
    }
    server.child.kill().expect("SIGKILL mcpod");
    let _ = server.child.wait();
    // Each container's stream ends with mcpod (its podman's stdin closes),
    // and the supervisor ends the container.
    assert_eq!(
        remains(&te, &sessions, Duration::from_secs(30)),
        Vec::<String>::new()
    );
}

#[test]
fn bad_engine_requests_are_refused_naming_the_fix() {
    let te = engines();
    let image = common::hello_image();
    let mut server = serve(&te, &[]);
    let refused = |server: &mut Server, id: u64, args: Value| -> String {
        let result = server.call(id, "launch_session", args);
        assert_eq!(result["isError"], true, "{result}");
        text_of(&result)
    };
    // An agent names engines only by the operator's names: never a URL.
    for (i, engine) in [
        "nope",
        "ssh://root@127.0.0.1/run/podman/podman.sock",
        "a; rm -rf /",
        "",
    ]
    .iter()
    .enumerate()
    {
        let text = refused(
            &mut server,
            10 + i as u64,
            json!({"image": image, "engine": engine}),
        );
        assert!(text.contains("local, a, b"), "{text}");
    }
    // A host mount names this host's files: only the local engine has them.
    let dir = tempfile::tempdir().expect("dir");
    let mut mounted = serve(&te, &[&format!("--allow-mount={}", dir.path().display())]);
    let text = refused(
        &mut mounted,
        20,
        json!({"image": image, "engine": "a",
               "mounts": [{"source": dir.path(), "target": "/data"}]}),
    );
    assert!(text.contains("only on the local engine"), "{text}");

    // A remote engine without a registry: the image cannot get there.
    let fresh = FreshImage::new("engines-noregistry");
    let root = tempfile::tempdir().expect("root");
    let mut bare = Server::start_with(root.path(), &[&format!("--engine=a={}", te.a)]);
    initialize(&mut bare, "2025-11-25");
    let text = refused(&mut bare, 30, json!({"image": fresh.tag, "engine": "a"}));
    assert!(text.contains("--registry"), "{text}");
    // Nothing reached the engine: no container of this image, and no image.
    let image_id = podman_out(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &mcpod::image::supervised::tag_for(&fresh.id),
    ]);
    let on_a = Command::new("podman")
        .args(["--url", &te.a, "image", "exists", &image_id])
        .status()
        .expect("podman image exists");
    assert_eq!(on_a.code(), Some(1), "engine a has {image_id}");
}

/// `podman ARGS...`, which must succeed; its stdout, trimmed.
fn podman_out(args: &[&str]) -> String {
    let out = Command::new("podman").args(args).output().expect("podman");
    assert!(out.status.success(), "podman {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_operator_sees_and_steers_placement_and_a_remote_client_config_connects() {
    let te = engines();
    let image = common::hello_image();
    // No sessions on this host, at most one on b.
    let mut server = serve(&te, &["--engine-max=local=0", "--engine-max=b=1"]);
    let policy = server.call(10, "show_policy", json!({}))["structuredContent"].clone();
    let engines: Vec<(&str, &Value)> = policy["engines"]
        .as_array()
        .expect("engines")
        .iter()
        .map(|e| (e["name"].as_str().unwrap_or(""), &e["max_sessions"]))
        .collect();
    assert_eq!(
        engines,
        [("local", &json!(0)), ("a", &Value::Null), ("b", &json!(1))],
        "{policy}"
    );
    assert_eq!(policy["engines"][1]["url"], te.a.as_str());
    assert!(
        policy["placement"]
            .as_str()
            .is_some_and(|p| p.contains("fewest sessions") && p.contains("--engine-max"))
    );
    assert_eq!(policy["registry"], format!("{}/mcpod-test", te.registry));

    // a, b, then only a: local takes none, b one.
    let placed: Vec<String> = (0..3)
        .map(|i| {
            let info = server.call(20 + i, "launch_session", json!({"image": image}));
            info["structuredContent"]["engine"]
                .as_str()
                .unwrap_or_else(|| panic!("{info}"))
                .to_string()
        })
        .collect();
    assert_eq!(placed, ["a", "b", "a"]);
    let full = server.call(30, "launch_session", json!({"image": image, "engine": "b"}));
    assert!(text_of(&full).contains("--engine-max"), "{full}");

    // The client_config of a session on b connects to it over ssh.
    let listed = server.call(31, "list_sessions", json!({}));
    let on_b = listed["structuredContent"]["sessions"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["engine"] == "b").cloned())
        .expect("a session on b");
    let on_b = server.detail(32, on_b["session"].as_str().expect("session"));
    let entry = on_b["client_config"]["mcpServers"]
        .as_object()
        .and_then(|servers| servers.values().next().cloned())
        .expect("an entry");
    let args: Vec<String> = entry["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    assert!(args.contains(&te.b_ssh), "{args:?}");
    let mut child = Command::new(entry["command"].as_str().expect("command"))
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mcpod connect");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(
            stdin,
            "{}",
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"}}})
        )
        .expect("write");
    }
    let out = child.wait_with_output().expect("connect ends");
    let first: Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().expect("a line"))
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(
        first["result"]["serverInfo"]["name"], "hello-server",
        "{first}"
    );
}

#[test]
fn inspect_labels_reads_an_image_in_the_registry() {
    let te = engines();
    let image = FreshImage::new("engines-inspect");
    let target = format!("{}/mcpod-test/inspect:1", te.registry);
    let pushed = Command::new("podman")
        .args(["push", "--quiet", &image.tag, &format!("docker://{target}")])
        .output()
        .expect("podman push");
    assert!(pushed.status.success(), "{pushed:?}");
    let mut server = serve(&te, &[]);
    let inspected = server.call(
        10,
        "inspect_labels",
        json!({"reference": format!("docker://{target}")}),
    );
    let info = &inspected["structuredContent"];
    assert_eq!(info["source"], "registry", "{inspected}");
    assert!(info["servers"]["hello"].is_object(), "{inspected}");
    assert_eq!(
        info["labels"]["io.mcpod.test"],
        image
            .tag
            .trim_start_matches("localhost/")
            .trim_end_matches(":1")
    );
}

#[test]
fn gc_removes_the_session_images_an_engine_pulled_and_nothing_else() {
    // gc --keep 0 removes every unused pulled session image: no other test's.
    let _host = HostLock::exclusive();
    let te = engines();
    let image = FreshImage::new("engines-gc");
    // An image of the engine's own, which gc must leave.
    let own = format!("{}/mcpod-test-own/hello:1", te.registry);
    let pushed = Command::new("podman")
        .args(["push", "--quiet", &image.tag, &format!("docker://{own}")])
        .output()
        .expect("push");
    assert!(pushed.status.success(), "{pushed:?}");
    remote_lines(&te.a, None, &["pull", "--quiet", &own]);

    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start_holding_host(
        root.path(),
        &[
            &format!("--engine=a={}", te.a),
            &format!("--registry={}/mcpod-test", te.registry),
        ],
    );
    initialize(&mut server, "2025-11-25");
    let info = server.call(
        10,
        "launch_session",
        json!({"image": image.tag, "engine": "a"}),
    );
    let id = server.detail_of(10, &info)["image_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{info}"))
        .to_string();
    let session = info["structuredContent"]["session"]
        .as_str()
        .expect("session")
        .to_string();
    server.call(11, "stop_session", json!({"session": session}));
    assert_eq!(pulled_by(&te.a, &id).len(), 1);

    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args([
            "gc",
            "--keep",
            "0",
            "--on",
            "a",
            "--json",
            &format!("--engine=a={}", te.a),
        ])
        .env("MCPOD_STATE_DIR", root.path())
        .output()
        .expect("mcpod gc");
    assert!(out.status.success(), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        report["images"]["removed"],
        json!([]),
        "local untouched: {report}"
    );
    let removed = report["engines"]["a"]["removed"]
        .as_array()
        .expect("removed")
        .clone();
    assert!(
        removed.iter().any(|n| n
            .as_str()
            .is_some_and(|n| n.contains("/mcpod-session@sha256:"))),
        "{report}"
    );
    let left = remote_lines(
        &te.a,
        None,
        &["images", "--format", "{{.Id}} {{.Repository}}"],
    );
    assert!(!left.iter().any(|l| l.starts_with(&id)), "{left:?}");
    assert!(
        left.iter().any(|l| l.ends_with("/mcpod-test-own/hello")),
        "the engine's own image stays: {left:?}"
    );
    remote_lines(&te.a, None, &["rmi", "--force", &own]);

    // The serving mcpod took the image to be on a; it is gone, and the
    // next launch there ships it again instead of failing.
    let again = server.call(
        12,
        "launch_session",
        json!({"image": image.tag, "engine": "a"}),
    );
    assert_ne!(again["isError"], true, "{again}");
    let session = again["structuredContent"]["session"]
        .as_str()
        .expect("session")
        .to_string();
    assert_eq!(pulled_by(&te.a, &id).len(), 1);
    server.call(13, "stop_session", json!({"session": session}));
}

/// A podman engine of this test's own, to take away.
struct OwnEngine {
    dir: std::path::PathBuf,
    service: std::process::Child,
}

impl OwnEngine {
    fn start() -> OwnEngine {
        // podman refuses a runroot path longer than 50 characters.
        let dir = std::path::PathBuf::from(format!(
            "/var/tmp/mcpod-gone-{}",
            &mcpod::engine::nonce()[..8]
        ));
        let sub = |s: &str| dir.join(s).display().to_string();
        for s in ["root", "run", "tmp"] {
            std::fs::create_dir_all(dir.join(s)).expect("engine dirs");
        }
        let service = Command::new("podman")
            .args([
                "--root",
                &sub("root"),
                "--runroot",
                &sub("run"),
                "--tmpdir",
                &sub("tmp"),
            ])
            .args([
                "system",
                "service",
                "--time=0",
                &format!("unix://{}", sub("podman.sock")),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).expect("log"))
            .spawn()
            .expect("podman system service");
        let engine = OwnEngine { dir, service };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = Command::new("podman")
                .args([
                    "--url",
                    &engine.url(),
                    "info",
                    "--format",
                    "{{.Version.Version}}",
                ])
                .output()
                .expect("podman info");
            if info.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the test's own engine does not answer: {info:?}; its log: {}",
                std::fs::read_to_string(engine.dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        engine
    }

    fn url(&self) -> String {
        format!("unix://{}", self.dir.join("podman.sock").display())
    }

    fn go_away(&mut self) {
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

impl Drop for OwnEngine {
    fn drop(&mut self) {
        self.go_away();
        let sub = |s: &str| self.dir.join(s).display().to_string();
        let _ = Command::new("podman")
            .args([
                "--root",
                &sub("root"),
                "--runroot",
                &sub("run"),
                "--tmpdir",
                &sub("tmp"),
            ])
            .args(["rm", "--all", "--force", "--time", "0"])
            .output();
        // What podman left mounted under the directory, deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = format!("{}/", self.dir.display());
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        under.sort_by(|a, b| b.cmp(a));
        for m in under {
            let _ = Command::new("umount").args(["-l", m]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn an_engine_that_goes_away_ends_its_sessions_and_mcpod_goes_on() {
    let te = engines();
    let image = common::hello_image();
    let mut own = OwnEngine::start();
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start_with(
        root.path(),
        &[
            &format!("--engine=c={}", own.url()),
            &format!("--registry={}/mcpod-test", te.registry),
        ],
    );
    initialize(&mut server, "2025-11-25");
    let info = server.call(10, "launch_session", json!({"image": image, "engine": "c"}));
    assert_eq!(info["structuredContent"]["engine"], "c", "{info}");
    let gone = info["structuredContent"]["session"]
        .as_str()
        .expect("id")
        .to_string();

    own.go_away();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let listed = server.call(11, "list_sessions", json!({}));
        let row = listed["structuredContent"]["sessions"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["session"] == gone.as_str()).cloned())
            .expect("still listed");
        if row["state"] == "ended" && row["lost"].is_string() {
            break row;
        }
        assert!(Instant::now() < deadline, "not ended: {row}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let lost = ended["lost"].as_str().unwrap_or_default();
    assert!(lost.contains("engine `c`"), "{lost}");

    // mcpod goes on, and places nothing on the engine that went away: two
    // launches both land on `local` (else the second would go to `c`).
    for id in [20, 21] {
        let info = server.call(id, "launch_session", json!({"image": image}));
        assert_eq!(info["structuredContent"]["engine"], "local", "{info}");
        let session = info["structuredContent"]["session"].as_str().expect("id");
        let result = server.call(
            id + 10,
            &format!("{session}_hello__greet"),
            json!({"name": "still here"}),
        );
        assert_eq!(text_of(&result), "Hello, still here!");
    }
    let stopped = server.call(40, "stop_session", json!({"session": gone}));
    assert_eq!(stopped["structuredContent"]["stopped"], true, "{stopped}");
    assert!(server.close(Duration::from_secs(60)).is_some());
}

/// On a remote engine the session stream is the supervisor's own stdin and
/// stdout (podman's `run -i`): a server inherits no copy of them, so it
/// cannot forge the supervisor's events or egress offers.
#[test]
fn a_server_on_a_remote_engine_inherits_nothing_of_the_session_stream() {
    let te = engines();
    let root = tempfile::tempdir().expect("root");
    let images = common::hostile::HostileImages::new();
    let mut server = Server::start_with(
        root.path(),
        &[
            &format!("--engine=a={}", te.a),
            &format!("--registry={}/mcpod-test", te.registry),
        ],
    );
    initialize(&mut server, "2025-11-25");
    let image = images.serving(
        &mut server,
        1,
        root.path(),
        json!({"hostile": {"command": ["/bin/hostile-server"]}}),
    );
    let info = server.call(2, "launch_session", json!({"image": image, "engine": "a"}));
    assert_eq!(info["structuredContent"]["engine"], "a", "{info}");
    let session = info["structuredContent"]["session"]
        .as_str()
        .expect("id")
        .to_string();
    let attack = server.call(
        3,
        &format!("{session}_hostile__attack_supervisor"),
        json!({}),
    );
    let text = text_of(&attack);
    for refused in [
        "extra fds: none",
        "write /proc/1/fd/1: refused",
        "write /proc/1/fd/0: refused",
    ] {
        assert!(text.contains(refused), "{refused}: {text}");
    }
    let echo = server.call(
        4,
        &format!("{session}_hostile__echo"),
        json!({"text": "still here"}),
    );
    assert_eq!(text_of(&echo), "still here", "{echo}");
    let stopped = server.call(5, "stop_session", json!({"session": session}));
    assert_eq!(stopped["structuredContent"]["stopped"], true, "{stopped}");
    assert!(remains(&te, &[session], Duration::from_secs(30)).is_empty());
    let id = podman_out(&["image", "inspect", "--format", "{{.Id}}", &image]);
    forget_on_engines(id.trim());
}

#[test]
fn doctor_says_which_engines_answer() {
    let te = engines();
    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args([
            "doctor",
            "--json",
            &format!("--engine=b={}", te.b_ssh),
            &format!("--engine-key=b={}", te.ssh_key.display()),
            "--engine=gone=unix:///nonexistent/podman.sock",
        ])
        .output()
        .expect("mcpod doctor");
    assert!(
        !out.status.success(),
        "an engine that does not answer fails doctor"
    );
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}: {checks:?}"))
    };
    let b = check("engine b");
    assert_eq!(b["ok"], true, "{b}");
    assert!(
        b["detail"]
            .as_str()
            .is_some_and(|d| d.contains("answers: podman")),
        "{b}"
    );
    let gone = check("engine gone");
    assert_eq!(gone["ok"], false, "{gone}");
    assert!(
        gone["fix"]
            .as_str()
            .is_some_and(|f| f.contains("podman system service")),
        "{gone}"
    );
}
