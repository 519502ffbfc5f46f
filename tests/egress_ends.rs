//! Egress connections end with their session, however it ends, and are
//! audited when they end; the audit is bounded. Real sessions, real servers on
//! this host's loopback.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::egress::{audit_records, eventually, holding_server, launch, open_fds, session_of};
use common::hostile::hostile_image;
use common::rpc::{Server, initialize, text_of};
use serde_json::json;

/// Connections held open through a session's proxy.
const HELD: u64 = 40;

#[test]
fn egress_connections_end_with_their_session_however_it_ends() {
    let (port, open) = holding_server();
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
