//! An egress connection is audited under the server whose process opened
//! it, not the owner of the proxy port it came to: the supervisor finds the
//! connecting socket's holder in the container's /proc and walks its parents
//! (or its session) up to a server. A real session of two hostile servers,
//! a real HTTP server on this host's loopback.

mod common;

use std::time::Duration;

use common::egress::{audit_records, egress_log, http_server, launch, session_of};
use common::hostile::HostileImages;
use common::rpc::{Server, initialize, text_of};
use serde_json::{Value, json};

#[test]
fn a_server_using_another_servers_proxy_port_is_refused_and_audited_as_itself() {
    let (web, seen) = http_server("page");
    let root = tempfile::tempdir().expect("tempdir");
    let audit = root.path().join("egress.jsonl");
    let mut server = Server::start_with(
        root.path(),
        &[
            &format!("--allow-egress=host.containers.internal:{web}"),
            &format!("--egress-log={}", audit.display()),
        ],
    );
    initialize(&mut server, "2025-11-25");
    let images = HostileImages::new();
    let image = images.serving(
        &mut server,
        1,
        root.path(),
        json!({"ant": {"command": ["/bin/hostile-server"]},
               "bee": {"command": ["/bin/hostile-server"]}}),
    );
    let info = launch(
        &mut server,
        2,
        json!({"image": image, "egress": [format!("host.containers.internal:{web}")]}),
    );
    let session = session_of(&info);
    let url = format!("http://host.containers.internal:{web}/page");
    // The proxies' ports, in order of name: ant's 41000, bee's 41001 (the base image's hostile: 41002).
    let mut call = |id: u64, from: &str, args: Value| {
        let mut args = args;
        args["url"] = json!(url);
        text_of(&server.call(id, &format!("{session}_{from}__http_via_proxy"), args))
    };
    // Honest: through its own proxy, by the server, its child, its orphan.
    for (id, from, args) in [
        (3, "ant", json!({})),
        (4, "ant", json!({"spawn": "child"})),
        (5, "ant", json!({"spawn": "orphan"})),
        (6, "bee", json!({})),
    ] {
        let got = call(id, from, args.clone());
        assert!(
            got.starts_with("HTTP/1.1 200") && got.ends_with("page"),
            "{from} {args}: {got}"
        );
    }
    // ant through bee's port, itself and from a child: refused.
    for (id, args) in [
        (7, json!({"proxy": 41001})),
        (8, json!({"proxy": 41001, "spawn": "child"})),
    ] {
        let got = call(id, "ant", args.clone());
        assert!(got.starts_with("HTTP/1.1 403"), "{args}: {got}");
        assert!(
            got.contains("came from server `ant` through server `bee`'s proxy port"),
            "{args}: {got}"
        );
    }
    // A process whose descriptors the supervisor cannot read (it made itself
    // non-dumpable): let through, audited as unverified.
    let got = call(9, "ant", json!({"spawn": "hidden"}));
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(seen.lock().expect("seen").len(), 5, "all but the refused");

    let records = egress_log(&mut server, 10, &session);
    let said: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            (text("from"), text("verdict"), text("proxy_of"))
        })
        .collect();
    let want = |from: &str, verdict: &str, proxy_of: &str| {
        (from.to_string(), verdict.to_string(), proxy_of.to_string())
    };
    assert_eq!(
        said,
        vec![
            want("ant", "allowed", "-"),
            want("ant", "allowed", "-"),
            want("ant", "allowed", "-"),
            want("bee", "allowed", "-"),
            want("ant", "refused", "bee"),
            want("ant", "refused", "bee"),
            want("ant (unverified)", "allowed", "-"),
        ],
        "{records:?}"
    );
    let unverified = records[6]["unverified"].as_str().unwrap_or_default();
    assert!(unverified.contains("non-dumpable"), "{}", records[6]);
    // The operator's file says the same.
    let file = audit_records(&audit);
    assert_eq!(file.len(), records.len(), "{file:?}");
    assert_eq!(file[4]["from"], "ant", "{file:?}");
    assert_eq!(file[4]["proxy_of"], "bee", "{file:?}");
    server.close(Duration::from_secs(30));
}
