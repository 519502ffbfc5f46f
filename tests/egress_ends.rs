//! Egress connections end with their session, however it ends, and are
//! audited when they end; the audit is bounded. Real sessions, real servers on
//! this host's loopback.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::egress::{
    audit_records, egress_log, eventually, holding_server, launch, open_fds, resetting_server,
    session_of,
};
use common::hostile::hostile_image;
use common::rpc::{Server, initialize, text_of};
use serde_json::json;

/// Connections held open through a session's proxy.
const HELD: u64 = 40;

#[test]
fn egress_connections_end_with_their_session_however_it_ends() {
    let holding = holding_server();
    let (port, open) = (holding.port, holding.open.clone());
    let root = tempfile::tempdir().expect("tempdir");
    let audit = root.path().join("egress.jsonl");
    let mut server = Server::start_with(
        root.path(),
        &[
            &format!("--allow-egress=host.containers.internal:{port}"),
            &format!("--egress-log={}", audit.display()),
        ],
    );
    initialize(&mut server, "2025-11-25");
    let pid = server.child.id();
    let baseline = open_fds(pid);
    for (round, end) in ["stop_session", "SIGTERM to PID 1", "SIGKILL"]
        .into_iter()
        .enumerate()
    {
        let id = 10 * round as u64;
        let info = launch(
            &mut server,
            id + 1,
            json!({"image": hostile_image(),
                   "egress": [format!("host.containers.internal:{port}")]}),
        );
        let session = session_of(&info);
        let held = text_of(&server.call(
            id + 2,
            &format!("{session}_hostile__hold_via_proxy"),
            json!({"url": format!("host.containers.internal:{port}"), "count": HELD}),
        ));
        assert_eq!(held, format!("held {HELD}"), "{end}");
        assert!(
            eventually(Duration::from_secs(10), || open.load(Ordering::SeqCst)
                == HELD as usize),
            "{end}: the host server sees {} connections",
            open.load(Ordering::SeqCst)
        );
        assert!(open_fds(pid) >= baseline + HELD as usize, "{end}");
        match end {
            "stop_session" => {
                let stopped = server.call(id + 3, "stop_session", json!({"session": session}));
                assert_ne!(stopped["isError"], true, "{stopped}");
            }
            signal => {
                let container = info["container"].as_str().expect("container");
                let signal = if signal == "SIGKILL" { "KILL" } else { "TERM" };
                let killed = std::process::Command::new("podman")
                    .args(["kill", "--signal", signal, container])
                    .output()
                    .expect("podman kill");
                assert!(killed.status.success(), "{end}: {killed:?}");
            }
        }
        let ended = eventually(Duration::from_secs(10), || {
            open.load(Ordering::SeqCst) == 0 && open_fds(pid) <= baseline
        });
        assert!(
            ended,
            "{end}: after the session ended the host server still has {} connections and mcpod {} descriptors (baseline {baseline})",
            open.load(Ordering::SeqCst),
            open_fds(pid)
        );
        // Each is audited when it ends, as ended with its session.
        let records: Vec<_> = audit_records(&audit)
            .into_iter()
            .filter(|r| r["session"] == session.as_str())
            .collect();
        assert_eq!(records.len(), HELD as usize, "{end}: {records:?}");
        assert!(
            records
                .iter()
                .all(|r| r["verdict"] == "allowed" && r["end"] == "the session ended"),
            "{end}: {records:?}"
        );
        if end != "stop_session" {
            server.call(id + 4, "stop_session", json!({"session": session}));
        }
    }
    server.close(Duration::from_secs(30));
}

/// mcpod exits (stdin closed, SIGTERM) with connections open: each is
/// ended and recorded, with the bytes that went through.
#[test]
fn connections_open_when_mcpod_exits_are_recorded_with_their_bytes() {
    let holding = holding_server();
    let port = holding.port;
    for exit in ["stdin closed", "SIGTERM"] {
        let root = tempfile::tempdir().expect("tempdir");
        let audit = root.path().join("egress.jsonl");
        let mut server = Server::start_with(
            root.path(),
            &[
                &format!("--allow-egress=host.containers.internal:{port}"),
                &format!("--egress-log={}", audit.display()),
            ],
        );
        initialize(&mut server, "2025-11-25");
        let info = launch(
            &mut server,
            1,
            json!({"image": hostile_image(),
                   "egress": [format!("host.containers.internal:{port}")]}),
        );
        let session = session_of(&info);
        let before = holding.bytes.load(Ordering::SeqCst);
        let held = text_of(&server.call(
            2,
            &format!("{session}_hostile__hold_via_proxy"),
            json!({"url": format!("host.containers.internal:{port}"), "count": 5, "body": "0123456789"}),
        ));
        assert_eq!(held, "held 5", "{exit}");
        assert!(
            eventually(Duration::from_secs(10), || holding
                .bytes
                .load(Ordering::SeqCst)
                == before + 50),
            "{exit}: the bytes did not arrive"
        );
        if exit == "SIGTERM" {
            // SAFETY: a signal to the mcpod this test started.
            unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
        }
        let status = server.close(Duration::from_secs(30));
        assert!(status.is_some(), "{exit}: mcpod did not exit");
        let records = audit_records(&audit);
        assert_eq!(records.len(), 5, "{exit}: {records:?}");
        for r in &records {
            assert_eq!(r["verdict"], "allowed", "{exit}: {r}");
            assert_eq!(r["bytes_out"], 10, "{exit}: {r}");
            assert_eq!(r["end"], "the session ended", "{exit}: {r}");
        }
    }
}

/// A destination that resets the connection: the record says so and counts
/// what went through before.
#[test]
fn a_connection_that_ends_in_an_error_records_its_bytes() {
    let port = resetting_server(1000);
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(
        root.path(),
        &[&format!("--allow-egress=host.containers.internal:{port}")],
    );
    initialize(&mut server, "2025-11-25");
    let info = launch(
        &mut server,
        1,
        json!({"image": hostile_image(),
               "egress": [format!("host.containers.internal:{port}")]}),
    );
    let session = session_of(&info);
    let got = text_of(&server.call(
        2,
        &format!("{session}_hostile__http_via_proxy"),
        json!({"method": "CONNECT", "url": format!("host.containers.internal:{port}"),
               "body": "x".repeat(1000)}),
    ));
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let mut records = Vec::new();
    let recorded = eventually(Duration::from_secs(10), || {
        records = egress_log(&mut server, 3, &session);
        !records.is_empty()
    });
    assert!(recorded, "no record");
    let record = &records[0];
    assert_eq!(record["bytes_out"], 1000, "{record}");
    assert!(
        record["end"]
            .as_str()
            .is_some_and(|e| e.starts_with("error:")),
        "{record}"
    );
    server.close(Duration::from_secs(30));
}

/// A server that floods refused connections: the audit records the first
/// ones and counts the rest in `suppressed` records, nothing lost.
#[test]
fn a_flood_of_refused_connections_is_recorded_within_a_bound_and_counted() {
    const FLOOD: u64 = 2000;
    let root = tempfile::tempdir().expect("tempdir");
    let audit = root.path().join("egress.jsonl");
    let mut server = Server::start_with(
        root.path(),
        &[
            "--allow-egress=host.containers.internal:9",
            &format!("--egress-log={}", audit.display()),
        ],
    );
    initialize(&mut server, "2025-11-25");
    let info = launch(
        &mut server,
        1,
        json!({"image": hostile_image(), "egress": ["host.containers.internal:9"]}),
    );
    let session = session_of(&info);
    let got = text_of(&server.call(
        2,
        &format!("{session}_hostile__http_via_proxy"),
        json!({"method": "CONNECT", "url": "refused.example:443", "repeat": FLOOD}),
    ));
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    let stopped = server.call(3, "stop_session", json!({"session": session}));
    assert_ne!(stopped["isError"], true, "{stopped}");
    let records = audit_records(&audit);
    let one_by_one = records.iter().filter(|r| r["verdict"] == "refused").count() as u64;
    let suppressed: u64 = records
        .iter()
        .filter(|r| r["verdict"] == "suppressed")
        .filter_map(|r| r["refused"].as_u64())
        .sum();
    assert_eq!(one_by_one + suppressed, FLOOD, "{records:?}");
    assert!(
        suppressed > 0 && one_by_one < FLOOD / 2,
        "{one_by_one} recorded one by one, {suppressed} counted"
    );
    server.close(Duration::from_secs(30));
}

/// A session holds at most `MAX_OPEN` egress connections at once: each costs
/// mcpod sockets and pipes, and a connection handed out of the container
/// holds no stream of the session's multiplexer to bound it. The next is
/// refused with the reason and audited; once one closes, one opens again.
#[test]
fn a_session_holds_a_bounded_number_of_egress_connections() {
    let most = mcpod::egress::gate::MAX_OPEN as u64;
    let holding = holding_server();
    let (port, open) = (holding.port, holding.open.clone());
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(
        root.path(),
        &[&format!("--allow-egress=host.containers.internal:{port}")],
    );
    initialize(&mut server, "2025-11-25");
    let info = launch(
        &mut server,
        1,
        json!({"image": hostile_image(),
               "egress": [format!("host.containers.internal:{port}")]}),
    );
    let session = session_of(&info);
    let hold = format!("{session}_hostile__hold_via_proxy");
    let url = format!("host.containers.internal:{port}");
    let held = text_of(&server.call(2, &hold, json!({"url": url, "count": most})));
    assert_eq!(held, format!("held {most}"));
    let over = text_of(&server.call(3, &hold, json!({"url": url, "count": 1})));
    assert!(over.starts_with("error: HTTP/1.1 403"), "{over}");
    assert!(
        eventually(Duration::from_secs(10), || open.load(Ordering::SeqCst)
            == most as usize),
        "the host server sees {} connections",
        open.load(Ordering::SeqCst)
    );
    let records = common::egress::egress_log_when(&mut server, 4, &session, |r| {
        r.iter().any(|r| r["verdict"] == "refused")
    });
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r["verdict"] == "refused")
        .collect();
    assert_eq!(refused.len(), 1, "{records:?}");
    assert!(
        refused[0]["rule"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("{most} egress connections open")),
        "{records:?}"
    );
    server.call(5, "stop_session", json!({"session": session}));
    server.close(Duration::from_secs(30));
}
