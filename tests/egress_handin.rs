//! A port forward on a local engine hands mcpod's dialled socket into the
//! server (no relay), and what a server that turned hostile can then do
//! with a socket of the host's network namespace: dissolve it and connect
//! it elsewhere, race another thread for its descriptor, connect by
//! io_uring or TCP Fast Open. Each is refused, and a listener it tries to
//! reach never sees a connection. A server started with `mcpod connect`
//! (the client config) runs under the same filter.

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::egress::{echo_server, egress_log, launch, session_of};
use common::hostile::hostile_image;
use common::rpc::{Server, call_through_config, initialize, text_of};
use serde_json::{Value, json};

/// A listener on the host's loopback that only counts the connections it
/// gets: none may come from the session.
fn escape_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, accepted)
}

fn attempts(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// What every filtered process gets, handed a socket or not.
fn assert_filtered(got: &Value) {
    let said = |field: &str| got[field].as_str().unwrap_or_default().to_string();
    assert_eq!(got["echoed"], true, "{got}");
    assert!(
        said("io_uring").contains("Function not implemented"),
        "{got}"
    );
    assert!(said("fastopen").contains("not supported"), "{got}");
    assert_eq!(got["unix_abstract"], "ok", "{got}");
    assert_eq!(got["raced_escapes"], 0, "{got}");
}

#[test]
fn a_handed_in_socket_goes_nowhere_else() {
    let echo = echo_server();
    let (escape, accepted) = escape_listener();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server =
        Server::start_with(root.path(), &[&format!("--allow-egress=127.0.0.1:{echo}")]);
    initialize(&mut server, "2025-11-25");
    let info = launch(
        &mut server,
        1,
        json!({"image": hostile_image(), "egress": [format!("127.0.0.1:{echo}")]}),
    );
    let session = session_of(&info);
    let args = json!({"to": format!("127.0.0.1:{echo}"), "escape": format!("127.0.0.1:{escape}")});
    let got = attempts(&text_of(&server.call(
        2,
        &format!("{session}_hostile__escape_forward"),
        args.clone(),
    )));
    assert_eq!(got["handed_in"], true, "the forward relayed: {got}");
    assert_filtered(&got);
    for field in ["unspec", "reconnect"] {
        assert!(
            got[field]
                .as_str()
                .is_some_and(|s| s.contains("Operation not permitted")),
            "{field}: {got}"
        );
    }
    assert_eq!(
        got["unix_relative_path"], "ok",
        "a unix socket by a path relative to the working directory: {got}"
    );
    let records = egress_log(&mut server, 3, &session);
    assert!(
        records
            .iter()
            .any(|r| r["from"] == format!("forward:{echo}")
                && r["verdict"] == "allowed"
                && r["via"] == "handed in"),
        "{records:?}"
    );

    // The client config's own connection (`podman exec`) is filtered too.
    let entry = &info["client_config"]["mcpServers"][format!("{session}-hostile")];
    let through = call_through_config(entry, &[], "escape_forward", &args);
    assert_filtered(&attempts(&text_of(&through)));

    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a connection reached the listener outside the grant"
    );
    server.close(Duration::from_secs(30));
}
