//! `mcpod serve --listen`: the real binary over Streamable HTTP, driven by
//! the Python SDK's streamable-HTTP client (tests/interop/http_client.py)
//! and by raw HTTP for what a client should not send.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::http::{Serve, session_id, status};
use serde_json::Value;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

#[test]
fn each_token_sees_and_reaches_only_its_own_sessions() {
    let hello = common::hello_image();
    let serve = Serve::start();
    let alice = serve.create("alice");
    let bob = serve.create("bob");

    // initialize, tools/list, launch, the session's tool, list_sessions.
    let a = serve.client(&alice, "launch", Some(&hello));
    assert_eq!(a["server"], "mcpod", "{a}");
    assert!(
        a["tools"]
            .as_array()
            .unwrap()
            .contains(&"launch_session".into()),
        "{a}"
    );
    let session = a["session"].as_str().expect("a session").to_string();
    assert_eq!(a["greet"], "Hello, http!", "{a}");
    let greet = format!("{session}_hello__greet");
    assert!(
        a["tools_after"]
            .as_array()
            .unwrap()
            .contains(&greet.clone().into()),
        "{a}"
    );
    assert_eq!(a["sessions"], serde_json::json!([session]), "{a}");

    // Bob sees none of it, and cannot call or stop it.
    let b = serve.client(&bob, "list", None);
    assert_eq!(b["sessions"], serde_json::json!([]), "{b}");
    assert!(
        !b["tools"]
            .as_array()
            .unwrap()
            .contains(&greet.clone().into()),
        "{b}"
    );
    let b = serve.client(&bob, "call", Some(&session));
    // Refused as a tool that does not exist.
    for call in ["call", "call_exported"] {
        assert_eq!(b[call]["isError"], true, "{b}");
        assert!(
            b[call]["text"].as_str().unwrap().contains("unknown tool"),
            "{b}"
        );
    }
    let b = serve.client(&bob, "stop", Some(&session));
    assert!(
        b["stop"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("no such session"),
        "{b}"
    );
    assert_eq!(
        common::containers_of(&session).len(),
        1,
        "bob's stop left it running"
    );

    // Alice still has it; once her token is revoked, she is refused.
    let a = serve.client(&alice, "list", None);
    assert_eq!(a["sessions"], serde_json::json!([session]), "{a}");
    let (ok, _) = serve.token(&["revoke", "alice"]);
    assert!(ok);
    let refused = serve.raw(
        &format!("{}authorization: Bearer {alice}\r\n", serve.host()),
        INIT,
    );
    assert_eq!(status(&refused), "HTTP/1.1 401 Unauthorized", "{refused}");
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{refused}"
    );

    // SIGTERM: nothing is left.
    assert!(serve.stop().success());
    assert_eq!(common::containers_of(&session), Vec::<String>::new());
}

/// What another token's session offers besides tools is hidden too: bob's
/// find_tools, prompts, resources and templates name none of alice's, and
/// his prompts/get, resources/read (of a resource and of a server's stderr),
/// completion/complete and resources/subscribe naming her session are
/// answered word for word as for a session that does not exist; so are his
/// tasks/get and tasks/cancel of her task. Alice reaches all of it.
#[test]
fn another_tokens_prompts_resources_and_tasks_are_as_if_absent() {
    let image = common::node_reference_image();
    let serve = Serve::start();
    let alice = serve.create("alice");
    let bob = serve.create("bob");
    let input = serde_json::json!({"image": image, "servers": ["everything"]}).to_string();
    let a = serve.client(&alice, "open", Some(&input));
    let s = a["session"].as_str().expect("a session").to_string();
    let mine = serve.client(&alice, "surface", Some(&s));
    let everything = format!("mcpod://sessions/{s}/servers/everything/");
    let listed = |key: &str, item: String| {
        let items = mine[key].as_array().expect("a list");
        assert!(items.contains(&item.into()), "{key}: {mine}");
    };
    listed("found", format!("{s}_everything__echo"));
    listed("prompts", format!("{s}_everything__simple-prompt"));
    listed("resources", format!("mcpod://sessions/{s}/logs/everything"));
    listed(
        "resources",
        format!("{everything}demo://resource/static/document/architecture.md"),
    );
    listed(
        "templates",
        format!("{everything}demo://resource/dynamic/text/{{resourceId}}"),
    );
    const REACHED: [&str; 6] = [
        "get_prompt",
        "read",
        "read_log",
        "complete",
        "subscribe",
        "unsubscribe",
    ];
    for key in REACHED {
        assert!(mine[key]["ok"].is_object(), "alice's {key}: {mine}");
    }

    // Bob, who launched nothing, sees nothing; what he asks of alice's
    // session is answered as of one that never was.
    let ghost = "sghost";
    let theirs = serve.client(&bob, "surface", Some(&s));
    let none = serve.client(&bob, "surface", Some(ghost));
    for key in ["found", "prompts", "resources", "templates"] {
        assert_eq!(theirs[key], serde_json::json!([]), "bob's {key}: {theirs}");
    }
    for key in REACHED {
        let refused = theirs[key]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("bob's {key} of alice's session was not refused: {theirs}"));
        let absent = none[key]["error"].as_str().expect("refused");
        assert_eq!(refused, absent.replace(ghost, &s), "bob's {key}");
    }

    // A call that runs past a second is a task of alice's, for a client
    // that declared Tasks: bob can neither poll nor cancel it.
    let a = serve.client(&alice, "task", Some(&s));
    assert_eq!(a["task"]["resultType"], "task", "{a}");
    let task = a["task"]["taskId"].as_str().expect("a task id").to_string();
    let theirs = serve.client(&bob, "task_reach", Some(&task));
    let none = serve.client(&bob, "task_reach", Some("no-such-task"));
    for method in ["get", "cancel"] {
        let refused = theirs[method]["error"].as_str().unwrap_or_else(|| {
            panic!("bob's tasks/{method} of alice's task was not refused: {theirs}")
        });
        let absent = none[method]["error"].as_str().expect("refused");
        assert_eq!(refused, absent.replace("no-such-task", &task), "{method}");
    }
    let mine = serve.client(&alice, "task_reach", Some(&task));
    assert_ne!(mine["get"]["ok"]["status"], "cancelled", "{mine}");
    assert!(mine["get"]["ok"]["taskId"] == task.as_str(), "{mine}");
    assert!(mine["cancel"]["ok"].is_object(), "{mine}");
    assert!(serve.stop().success());
    assert_eq!(common::containers_of(&s), Vec::<String>::new());
}

/// Revoking a token while mcpod serves ends its sessions (their containers
/// are removed) and refuses its next request; another token's session
/// still answers.
#[test]
fn revoking_a_token_ends_its_sessions_and_no_others() {
    let hello = common::hello_image();
    let serve = Serve::start();
    let alice = serve.create("alice");
    let bob = serve.create("bob");
    let a = serve.client(&alice, "launch", Some(&hello));
    let alices = a["session"].as_str().expect("a session").to_string();
    let b = serve.client(&bob, "launch", Some(&hello));
    let bobs = b["session"].as_str().expect("a session").to_string();
    assert_eq!(common::containers_of(&alices).len(), 1);

    let (ok, _) = serve.token(&["revoke", "alice"]);
    assert!(ok);
    // Not a timing assertion: mcpod checks every second; a minute is room.
    let mut left = common::containers_of(&alices);
    for _ in 0..600 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = common::containers_of(&alices);
    }
    assert_eq!(
        left,
        Vec::<String>::new(),
        "alice's session outlived her token"
    );
    let refused = serve.raw(
        &format!("{}authorization: Bearer {alice}\r\n", serve.host()),
        INIT,
    );
    assert_eq!(status(&refused), "HTTP/1.1 401 Unauthorized", "{refused}");

    // Bob's session is untouched and answers.
    assert_eq!(common::containers_of(&bobs).len(), 1);
    let b = serve.client(&bob, "call", Some(&bobs));
    assert_eq!(b["sessions"], serde_json::json!([bobs]), "{b}");
    assert_ne!(b["call"]["isError"], true, "{b}");
    assert!(
        b["call_exported"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("Hello, x"),
        "{b}"
    );
    // The audit log names each call's principal.
    let audit = std::fs::read_to_string(serve.state.path().join("audit.jsonl")).unwrap();
    let records: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    for (principal, session) in [("alice", &alices), ("bob", &bobs)] {
        assert!(
            records.iter().any(|r| r["principal"] == principal
                && r["tool"] == "launch_session"
                && r["session"] == session.as_str()
                && r["outcome"] == "ok"),
            "no launch by {principal} in {audit}"
        );
    }
    assert!(serve.stop().success());
    assert_eq!(common::containers_of(&bobs), Vec::<String>::new());
}

#[test]
fn refused_requests_are_answered_and_start_nothing() {
    let serve = Serve::start();
    let token = serve.create("carol");
    let auth = format!("authorization: Bearer {token}\r\n");
    let host = serve.host();

    let cases = [
        ("no token", host.clone(), "401 Unauthorized"),
        (
            "a malformed Authorization",
            format!("{host}authorization: Bearer\r\n"),
            "401",
        ),
        (
            "a token that is not one",
            format!("{host}authorization: Bearer mcpod_00\r\n"),
            "401",
        ),
        (
            "two Authorization headers",
            format!("{host}{auth}{auth}"),
            "401",
        ),
        (
            "a Host of another name",
            format!("host: evil.example:{}\r\n{auth}", serve.port),
            "403",
        ),
        (
            "a browser Origin not allowed",
            format!("{host}{auth}origin: http://evil.example\r\n"),
            "403",
        ),
        (
            "a 1 MB header",
            format!("{host}{auth}x-big: {}\r\n", "a".repeat(1 << 20)),
            "431",
        ),
        (
            "1,000 repeated headers",
            format!("{host}{auth}{}", "x-r: 1\r\n".repeat(1000)),
            "431",
        ),
    ];
    for (what, head, want) in cases {
        let answer = serve.raw(&head, INIT);
        assert!(
            status(&answer).contains(want),
            "{what}: wanted {want}, got {:?}",
            status(&answer)
        );
        if want.starts_with("401") {
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains("www-authenticate: bearer"),
                "{what}: {answer}"
            );
        }
        assert!(
            !answer.to_ascii_lowercase().contains("mcp-session-id"),
            "{what} opened a session: {answer}"
        );
    }
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(5 << 20));
    let answer = serve.raw(&format!("{host}{auth}"), &big);
    assert!(
        status(&answer).contains("413"),
        "a 5 MiB body: {:?}",
        status(&answer)
    );

    // Still serving, and a good request opens an MCP session.
    let answer = serve.raw(&format!("{host}{auth}"), INIT);
    assert_eq!(status(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("mcp-session-id"),
        "{answer}"
    );
    assert!(serve.stop().success());
}

/// An address beyond loopback needs --listen-public, and the refusal says
/// why (plain HTTP: TLS belongs in a proxy in front).
#[test]
fn listening_beyond_loopback_needs_the_explicit_flag() {
    let state = tempfile::tempdir().expect("state");
    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env("MCPOD_STATE_DIR", state.path())
        .stdin(Stdio::null())
        .output()
        .expect("run mcpod");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--listen-public") && stderr.contains("reverse"),
        "{stderr}"
    );
}

/// A stop under way when mcpod is told to end still removes its container:
/// the revoked token's first session is stopped (its line is logged), the
/// second is being stopped (out of the session table, its container still
/// there) when SIGTERM arrives, and mcpod waits for that stop before it
/// exits.
#[test]
fn a_stop_under_way_at_exit_still_removes_its_container() {
    let hello = common::hello_image();
    let serve = Serve::start();
    let alice = serve.create("alice");
    let sessions: Vec<String> = (0..2)
        .map(|_| {
            let a = serve.client(&alice, "launch", Some(&hello));
            a["session"].as_str().expect("a session").to_string()
        })
        .collect();
    let (ok, _) = serve.token(&["revoke", "alice"]);
    assert!(ok);
    // Not a timing assertion: the first stop's line, within a minute.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = serve
            .log
            .recv_timeout(left)
            .expect("the revoked token's first session is stopped");
        if line.contains("stopped session") {
            break;
        }
    }
    assert!(serve.stop().success());
    for session in &sessions {
        assert_eq!(
            common::containers_of(session),
            Vec::<String>::new(),
            "{session} was left behind"
        );
    }
}

/// `--listen unix:PATH`: a socket only its user may open, the same checks
/// (Host, token) over it, the SDK's client through it, and no socket left.
#[test]
fn a_unix_socket_serves_its_user_with_the_same_checks_and_is_removed() {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let hello = common::hello_image();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mcpod.sock");
    let serve = Serve::start_at(&format!("unix:{}", socket.display()), &[]);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only its user may connect");
    let token = serve.create("uds");

    let raw = |head: &str| {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        let request = format!(
            "POST /mcp HTTP/1.1\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nconnection: close\r\ncontent-length: {}\r\n{head}\r\n{INIT}",
            INIT.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    assert!(status(&raw("host: localhost\r\n")).contains("401"));
    let auth = format!("authorization: Bearer {token}\r\n");
    assert!(status(&raw(&format!("host: evil.example\r\n{auth}"))).contains("403"));
    assert!(status(&raw(&format!("host: localhost\r\n{auth}"))).contains("200"));

    let uds = socket.to_str().unwrap();
    let mut client = Command::new(common::http::python());
    client
        .arg(common::http::interop().join("http_client.py"))
        .args(["http://localhost/mcp", &token, "launch", &hello])
        .env("MCPOD_UDS", uds);
    let out = client.output().unwrap();
    let said: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(said["greet"], "Hello, http!", "{said}");
    let session = said["session"].as_str().unwrap().to_string();

    assert!(serve.stop().success());
    assert!(!socket.exists(), "the socket is removed at the end");
    assert_eq!(common::containers_of(&session), Vec::<String>::new());
}

/// `--idle-timeout`: a principal that sends nothing for that long loses
/// its sessions; one that keeps sending keeps them, and a client that
/// reconnects in time finds its own.
#[test]
fn an_idle_principals_sessions_end_and_an_active_ones_stay() {
    let hello = common::hello_image();
    let serve = Serve::start_with(&["--idle-timeout", "4"]);
    let quiet = serve.create("quiet");
    let busy = serve.create("busy");
    let q = serve.client(&quiet, "launch", Some(&hello))["session"]
        .as_str()
        .unwrap()
        .to_string();
    let b = serve.client(&busy, "launch", Some(&hello))["session"]
        .as_str()
        .unwrap()
        .to_string();
    // A new connection of the same token finds its session.
    let again = serve.client(&busy, "list", None);
    assert_eq!(again["sessions"], serde_json::json!([b]), "{again}");
    // A request that opens nothing (an MCP session id that is no one's).
    let ping = format!(
        "{}authorization: Bearer {busy}\r\nmcp-session-id: none\r\n",
        serve.host()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !common::containers_of(&q).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle principal's session is still there"
        );
        let answer = serve.raw(&ping, INIT);
        assert!(status(&answer).contains("404"), "{answer}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(common::containers_of(&b).len(), 1, "the busy one's stays");
    let later = serve.client(&quiet, "list", None);
    assert_eq!(later["sessions"], serde_json::json!([]), "{later}");
    assert!(serve.stop().success());
}

/// A client's DELETE of its MCP session is answered 200 and ends it;
/// another token's DELETE of it is answered as for no such session.
#[test]
fn deleting_an_mcp_session_is_answered_200_and_only_for_its_owner() {
    let serve = Serve::start();
    let mine = serve.create("mine");
    let theirs = serve.create("theirs");
    let answer = serve.raw(
        &format!("{}authorization: Bearer {mine}\r\n", serve.host()),
        INIT,
    );
    let id = session_id(&answer);
    let delete = |token: &str| {
        status(&serve.get_with(
            "DELETE",
            "/mcp",
            &format!(
                "{}authorization: Bearer {token}\r\nmcp-session-id: {id}\r\n",
                serve.host()
            ),
        ))
        .to_string()
    };
    assert!(delete(&theirs).contains("404"));
    assert_eq!(delete(&mine), "HTTP/1.1 200 OK");
    let used = serve.raw(
        &format!(
            "{}authorization: Bearer {mine}\r\nmcp-session-id: {id}\r\nmcp-protocol-version: 2025-06-18\r\n",
            serve.host()
        ),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#,
    );
    assert!(status(&used).contains("404"), "ended: {used}");
    assert!(serve.stop().success());
}

/// Progress tokens are each client's own: alice's call that became a task
/// holds progress token 2 while bob's call uses token 2 too (the id the
/// SDK gives a client's third request); bob still hears his own progress,
/// none of it diverted into alice's task.
#[test]
fn another_clients_progress_token_does_not_route_mine() {
    let image = common::node_reference_image();
    let serve = Serve::start();
    let alice = serve.create("alice");
    let bob = serve.create("bob");
    let input = serde_json::json!({"image": image, "servers": ["everything"]}).to_string();
    let a = serve.client(&alice, "open", Some(&input))["session"]
        .as_str()
        .unwrap()
        .to_string();
    let b = serve.client(&bob, "open", Some(&input))["session"]
        .as_str()
        .unwrap()
        .to_string();
    let task = serve.client(&alice, "task_token", Some(&a));
    assert!(task["task"].to_string().contains("taskId"), "{task}");
    let heard = serve.client(&bob, "progress", Some(&b));
    assert!(
        heard["progress"].as_u64().unwrap_or(0) > 0,
        "bob heard none of his own progress: {heard}"
    );
    assert!(serve.stop().success());
}

/// A listener's lines.
type Lines = std::io::Lines<std::io::BufReader<std::process::ChildStdout>>;

#[test]
fn list_changes_reach_only_the_principal_whose_session_changed() {
    let hello = common::hello_image();
    let serve = Serve::start();
    let alice = serve.create("alice");
    let bob = serve.create("bob");
    // Two listeners, one a connection of alice's own, one of bob's: each
    // counts the tools/list_changed notifications it hears until its stdin
    // closes.
    let listen = |token: &str| {
        let mut child = Command::new(common::http::python())
            .arg(common::http::interop().join("http_client.py"))
            .args([&serve.url(), token, "listen", "120"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python runs");
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
            child.stdout.take().expect("stdout"),
        ));
        let ready = lines.next().and_then(Result::ok);
        assert_eq!(
            ready.as_deref(),
            Some("ready"),
            "the listener did not start"
        );
        (child, lines)
    };
    let (alices, bobs) = (listen(&alice), listen(&bob));
    // Alice launches (and owns) a session, then stops it.
    let launched = serve.client(&alice, "launch", Some(&hello));
    let session = launched["session"].as_str().expect("a session").to_string();
    let stopped = serve.client(&alice, "stop", Some(&session));
    assert_eq!(stopped["sessions"], serde_json::json!([]), "{stopped}");
    // Time for what was sent to arrive, then each listener says what it heard.
    std::thread::sleep(Duration::from_secs(2));
    let heard = |(mut child, mut lines): (std::process::Child, Lines)| -> u64 {
        drop(child.stdin.take());
        let line: String = lines
            .next()
            .and_then(Result::ok)
            .expect("the listener's JSON");
        let _ = child.wait();
        let said: Value = serde_json::from_str(&line).expect("JSON");
        said["tools_list_changed"].as_u64().expect("a count")
    };
    assert!(heard(alices) >= 1, "alice heard nothing of her own session");
    assert_eq!(heard(bobs), 0, "bob heard of alice's session");
    assert!(serve.stop().success());
}
