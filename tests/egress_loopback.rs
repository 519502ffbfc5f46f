//! Loopback destinations against real servers: a granted `127.0.0.1:PORT`
//! or `localhost:PORT` is what a server dials on its container's own
//! loopback (NO_PROXY keeps it off the proxy), so mcpod forwards that port
//! there to the host's, through the gate and its audit; what it cannot
//! forward, or what is no destination, is refused naming what to ask for.

mod common;

use std::time::Duration;

use common::egress::{echo_server, egress_log, http_server, launch, session_of};
use common::hostile::hostile_image;
use common::rpc::{Server, initialize, text_of};
use serde_json::json;

/// mcp-server-fetch (PyPI) fetches `http://localhost:PORT/` directly, as
/// NO_PROXY tells it to: the page of a web server on this host's loopback.
#[test]
fn a_python_server_reaches_a_granted_loopback_service_directly() {
    let (web, seen) =
        http_server("<html><body><p>hello from the host's loopback</p></body></html>");
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(root.path(), &[&format!("--allow-egress=127.0.0.1:{web}")]);
    initialize(&mut server, "2025-11-25");
    let info = launch(
        &mut server,
        1,
        json!({
            "image": "pypi:mcp-server-fetch==2026.10.24",
            "egress": [format!("127.0.0.1:{web}")],
            // The server's own guard refuses loopback addresses without it.
            "overrides": {"fetch": {"args": ["--allow-private-ips", "--ignore-robots-txt"]}},
        }),
    );
    let session = session_of(&info);
    assert_eq!(
        info["isolation"]["forwards"][web.to_string()],
        format!("127.0.0.1:{web}"),
        "the grant is forwarded at its own port: {}",
        info["isolation"]
    );
    // Before any connection, session_logs says what is granted and where.
    let logs = server.call(2, "session_logs", json!({"session": session}));
    let note = logs["structuredContent"]["egress_note"]
        .as_str()
        .unwrap_or("");
    assert!(
        note.contains(&format!("localhost:{web} → 127.0.0.1:{web}")),
        "{logs}"
    );
    let page = server.call(
        3,
        &format!("{session}_fetch__fetch"),
        json!({"url": format!("http://localhost:{web}/page.html")}),
    );
    assert_ne!(page["isError"], true, "{page}");
    assert!(
        text_of(&page).contains("hello from the host's loopback"),
        "{page}"
    );
    assert!(
        seen.lock()
            .expect("seen")
            .iter()
            .any(|l| l == "GET /page.html HTTP/1.1"),
        "{seen:?}"
    );
    let records = egress_log(&mut server, 4, &session);
    assert!(
        records.iter().any(|r| r["from"] == format!("forward:{web}")
            && r["verdict"] == "allowed"
            && r["address"] == format!("127.0.0.1:{web}")),
        "{records:?}"
    );
    server.close(Duration::from_secs(30));
}

#[test]
fn a_loopback_grant_reaches_only_its_port_and_what_cannot_be_forwarded_is_refused() {
    let echo = echo_server();
    let (other, other_seen) = http_server("never");
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(
        root.path(),
        &[
            &format!("--allow-egress=127.0.0.1:{echo}"),
            "--allow-egress=127.0.0.1:41000",
        ],
    );
    initialize(&mut server, "2025-11-25");
    for (egress, says) in [
        // A port the operator did not grant.
        (
            format!("127.0.0.1:{other}"),
            format!(
                "not within the operator's --allow-egress patterns (127.0.0.1:{echo}, 127.0.0.1:41000)"
            ),
        ),
        // Granted, but a server's proxy port on the session's loopback.
        (
            "127.0.0.1:41000".to_string(),
            r#""forwards": {"42000": "127.0.0.1:41000"}"#.to_string(),
        ),
        // Addresses that are not one destination, or IPv4 in another spelling.
        (format!("0.0.0.0:{echo}"), format!("write 127.0.0.1:{echo}")),
        (format!("127.1:{echo}"), "write all four parts".to_string()),
        (
            format!("[::ffff:127.0.0.1]:{echo}"),
            format!("write the IPv4 address, 127.0.0.1:{echo}"),
        ),
    ] {
        let result = server.call(
            1,
            "launch_session",
            json!({"image": hostile_image(), "egress": [egress]}),
        );
        assert_eq!(result["isError"], true, "{egress}: {result}");
        assert!(
            text_of(&result).contains(&says),
            "{egress}: {}",
            text_of(&result)
        );
    }
    // A forward already taking the port to elsewhere.
    let result = server.call(
        2,
        "launch_session",
        json!({"image": hostile_image(), "egress": [format!("localhost:{echo}")],
               "forwards": {echo.to_string(): "127.0.0.1:41000"}}),
    );
    assert!(
        text_of(&result).contains(&format!(
            "port {echo} there is already forwarded to 127.0.0.1:41000"
        )),
        "{result}"
    );

    // `localhost` asked, `127.0.0.1` granted: the same port of the host.
    let info = launch(
        &mut server,
        3,
        json!({"image": hostile_image(), "egress": [format!("localhost:{echo}")]}),
    );
    let session = session_of(&info);
    let tool = format!("{session}_hostile__tcp_exchange");
    for to in [
        format!("localhost:{echo}"),
        format!("127.0.0.1:{echo}"),
        format!("[::1]:{echo}"),
    ] {
        let got = text_of(&server.call(4, &tool, json!({"to": to, "text": "over the loopback"})));
        assert_eq!(got, "over the loopback", "{to}");
    }
    // Another port of the container's loopback reaches nothing, on the host neither.
    let got = text_of(&server.call(
        5,
        &tool,
        json!({"to": format!("127.0.0.1:{other}"), "text": "x"}),
    ));
    assert!(got.starts_with("error: connecting"), "{got}");
    // Through the proxy, refused and recorded with the destination and the rule.
    let got = text_of(&server.call(
        6,
        &format!("{session}_hostile__http_via_proxy"),
        json!({"url": format!("http://127.0.0.1:{other}/")}),
    ));
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    assert!(other_seen.lock().expect("seen").is_empty());
    let records = egress_log(&mut server, 7, &session);
    let refused = records
        .iter()
        .find(|r| r["verdict"] == "refused")
        .expect("the refusal's record");
    assert_eq!(refused["destination"], format!("127.0.0.1:{other}"));
    assert!(
        refused["rule"]
            .as_str()
            .is_some_and(|r| r.contains("is not in this session's egress grant")),
        "{refused}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["from"] == format!("forward:{echo}") && r["verdict"] == "allowed")
            .count(),
        3,
        "{records:?}"
    );
    server.close(Duration::from_secs(30));
}
