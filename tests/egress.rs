//! Egress by allow-list against real servers and real clients: sessions stay
//! on `--network=none` and reach only what the operator granted, through
//! mcpod. The test servers run on this host's loopback, named in the
//! container as `host.containers.internal`.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::egress::{echo_server, egress_log, http_server, launch, session_of};
use common::hostile::hostile_image;
use common::rpc::{Server, initialize, text_of};
use serde_json::json;

#[test]
fn the_hostile_server_reaches_only_what_is_granted_and_nothing_directly() {
    let (web, seen) = http_server("granted page");
    let (other, other_seen) = http_server("never");
    let echo = echo_server();
    let root = tempfile::tempdir().expect("tempdir");
    let audit = root.path().join("egress.jsonl");
    let grant_web = format!("--allow-egress=host.containers.internal:{web}");
    let grant_lo = format!("--allow-egress=127.0.0.1:{web}");
    let grant_name = format!("--allow-egress=localhost:{web}");
    let grant_echo = format!("--allow-egress=127.0.0.1:{echo}");
    let audit_flag = format!("--egress-log={}", audit.display());
    let mut server = Server::start_with(
        root.path(),
        &[&grant_web, &grant_lo, &grant_name, &grant_echo, &audit_flag],
    );
    initialize(&mut server, "2025-11-25");
    let info = launch(
        &mut server,
        1,
        json!({"image": hostile_image(),
               "egress": [format!("host.containers.internal:{web}"), format!("127.0.0.1:{web}"),
                          format!("localhost:{web}")],
               "forwards": {"15432": format!("127.0.0.1:{echo}")}}),
    );
    let session = session_of(&info);
    let isolation = &info["isolation"];
    assert_eq!(isolation["network"], "none", "{isolation}");
    assert_eq!(isolation["forwards"]["15432"], format!("127.0.0.1:{echo}"));
    assert!(
        isolation["egress_proxy"]
            .as_str()
            .is_some_and(|p| p.contains("http://127.0.0.1:41000")),
        "{isolation}"
    );
    let tool = |t: &str| format!("{session}_hostile__{t}");

    // Granted, by the host alias: the page, through the gate.
    let got = text_of(&server.call(
        2,
        &tool("http_via_proxy"),
        json!({"url": format!("http://host.containers.internal:{web}/page")}),
    ));
    assert!(
        got.starts_with("HTTP/1.1 200") && got.ends_with("granted page"),
        "{got}"
    );
    assert!(
        seen.lock()
            .expect("seen")
            .iter()
            .any(|l| l == "GET /page HTTP/1.1"),
        "origin form: {seen:?}"
    );
    // CONNECT, granted by address.
    let got = text_of(&server.call(
        3,
        &tool("http_via_proxy"),
        json!({"method": "CONNECT", "url": format!("127.0.0.1:{web}")}),
    ));
    assert!(
        got.starts_with("HTTP/1.1 200 Connection established"),
        "{got}"
    );

    // Not granted: a 403 whose header and body name the rule; nothing sent.
    let got = text_of(&server.call(
        4,
        &tool("http_via_proxy"),
        json!({"url": format!("http://host.containers.internal:{other}/")}),
    ));
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    assert!(got.contains("X-Mcpod-Egress: refused;"), "{got}");
    assert!(
        got.contains(&format!(
            "`host.containers.internal:{other}` is not in this session's egress grant"
        )),
        "{got}"
    );
    assert!(
        other_seen.lock().expect("seen").is_empty(),
        "bytes reached a destination outside the grant"
    );
    // `localhost`, granted: the host's loopback, pinned, never resolved.
    let got = text_of(&server.call(
        5,
        &tool("http_via_proxy"),
        json!({"url": format!("http://localhost:{web}/")}),
    ));
    assert!(
        got.starts_with("HTTP/1.1 200") && got.ends_with("granted page"),
        "{got}"
    );

    // A host name past any DNS name's length: refused, and recorded cut.
    let long = "a".repeat(10_000);
    let got = text_of(&server.call(
        50,
        &tool("http_via_proxy"),
        json!({"method": "CONNECT", "url": format!("{long}:{web}")}),
    ));
    assert!(
        got.starts_with("HTTP/1.1 403") && got.contains("longer than a host name"),
        "{}",
        &got[..got.len().min(300)]
    );
    let records = egress_log(&mut server, 51, &session);
    let last = records.last().expect("a record of the long name");
    assert!(
        last["destination"].as_str().is_some_and(|d| d.len() < 300),
        "{last}"
    );

    // No way around the proxy: the session has no network.
    for to in [
        format!("host.containers.internal:{web}"),
        "1.1.1.1:80".to_string(),
    ] {
        let got = text_of(&server.call(6, &tool("tcp_exchange"), json!({"to": to, "text": "x"})));
        assert!(got.starts_with("error: connecting"), "{to}: {got}");
    }
    // The port forward reaches the echo server.
    let got = text_of(&server.call(
        7,
        &tool("tcp_exchange"),
        json!({"to": "127.0.0.1:15432", "text": "ping through the forward"}),
    ));
    assert_eq!(got, "ping through the forward");

    // Every connection is audited: in session_logs and in the operator's file.
    let records = common::egress::egress_log_when(&mut server, 8, &session, |r| {
        r.iter().any(|r| r["from"] == "forward:15432")
    });
    let verdicts: Vec<(&str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["destination"].as_str().unwrap_or(""),
                r["verdict"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for (destination, verdict) in [
        (format!("host.containers.internal:{web}"), "allowed"),
        (format!("127.0.0.1:{web}"), "allowed"),
        (format!("host.containers.internal:{other}"), "refused"),
        (format!("localhost:{web}"), "allowed"),
        (format!("127.0.0.1:{echo}"), "allowed"),
    ] {
        assert!(
            verdicts.contains(&(destination.as_str(), verdict)),
            "{destination} {verdict}: {records:?}"
        );
    }
    let forward = records
        .iter()
        .find(|r| r["from"] == "forward:15432")
        .expect("the forward's record");
    assert_eq!(forward["address"], format!("127.0.0.1:{echo}"));
    // On a local engine a forward's connection is mcpod's dialled socket,
    // handed into the server (its bytes not counted: no process relays
    // them); each proxy connection let through is handed out of the
    // container as a socket and relayed once (the supervisor's handoff.rs).
    assert_eq!(forward["via"], "handed in", "{forward}");
    for record in records
        .iter()
        .filter(|r| r["verdict"] == "allowed" && r["from"] != "forward:15432")
    {
        assert_eq!(record["via"], "socket", "{record}");
    }
    let web_record = records
        .iter()
        .find(|r| r["from"] == "hostile")
        .expect("the server's record");
    assert_eq!(web_record["session"], session.as_str());
    let file = std::fs::read_to_string(&audit).expect("the audit file");
    assert_eq!(file.lines().count(), records.len(), "{file}");
    server.close(Duration::from_secs(30));
}

#[test]
fn what_the_operator_does_not_grant_is_refused_or_left_out() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(root.path(), &["--allow-egress=*.example.com:443"]);
    initialize(&mut server, "2025-11-25");
    for (args, says) in [
        (
            json!({"egress": ["example.com:443"]}),
            "not within the operator's --allow-egress patterns (*.example.com:443)",
        ),
        (json!({"egress": ["*.com:443"]}), "not within"),
        (json!({"egress": ["api.example.com:80"]}), "not within"),
        (json!({"egress": ["nope"]}), "no port"),
        (
            json!({"forwards": {"41000": "api.example.com:443"}}),
            "egress proxies",
        ),
        (
            json!({"forwards": {"5432": "db.internal:5432"}}),
            "not within",
        ),
    ] {
        let mut args = args.clone();
        args["image"] = json!(hostile_image());
        let result = server.call(1, "launch_session", args.clone());
        assert_eq!(result["isError"], true, "{args}: {result}");
        assert!(
            text_of(&result).contains(says),
            "{args}: {}",
            text_of(&result)
        );
    }
    // Within the grant: granted and shown; show_policy lists the grant.
    let info = launch(
        &mut server,
        2,
        json!({"image": hostile_image(), "egress": ["api.example.com:443", "*.cdn.example.com:443"]}),
    );
    assert_eq!(
        info["isolation"]["egress"],
        json!(["api.example.com:443", "*.cdn.example.com:443"])
    );
    let policy = server.call(3, "show_policy", json!({}));
    assert_eq!(
        policy["structuredContent"]["allow_egress"],
        json!(["*.example.com:443"])
    );
    server.close(Duration::from_secs(30));
}

/// mcp-server-fetch (PyPI; httpx, which honours the proxy variables) fetches
/// a page over HTTP and one over HTTPS (CONNECT, TLS end to end with a
/// certificate the session trusts) from this host's loopback.
#[test]
fn a_python_server_fetches_over_http_and_https_through_the_gate() {
    let (web, seen) = http_server("<html><body><p>hello through the gate</p></body></html>");
    let root = tempfile::tempdir().expect("tempdir");
    let certs = root.path().join("certs");
    std::fs::create_dir(&certs).expect("certs");
    let (tls, _tls_server) = tls_server(&certs);
    let mut server = Server::start_with(
        root.path(),
        &[
            &format!("--allow-egress=host.containers.internal:{web}"),
            &format!("--allow-egress=host.containers.internal:{tls}"),
            &format!("--allow-mount={}", certs.display()),
        ],
    );
    initialize(&mut server, "2025-11-25");
    let info = launch(
        &mut server,
        1,
        json!({
            "image": "pypi:mcp-server-fetch==2026.10.24",
            "egress": [format!("host.containers.internal:{web}"), format!("host.containers.internal:{tls}")],
            "mounts": [{"source": certs.display().to_string(), "target": "/certs"}],
            // The alias resolves to podman's 192.0.2.2 inside the container,
            // which the server's own private-address guard refuses.
            "overrides": {"fetch": {"args": ["--allow-private-ips", "--ignore-robots-txt"],
                                     "env": {"SSL_CERT_FILE": "/certs/cert.pem"}}},
        }),
    );
    let session = session_of(&info);
    let fetch = format!("{session}_fetch__fetch");
    let page = server.call(
        2,
        &fetch,
        json!({"url": format!("http://host.containers.internal:{web}/page.html")}),
    );
    assert_ne!(page["isError"], true, "{page}");
    assert!(text_of(&page).contains("hello through the gate"), "{page}");
    assert!(!seen.lock().expect("seen").is_empty());
    let secure = server.call(
        3,
        &fetch,
        json!({"url": format!("https://host.containers.internal:{tls}/")}),
    );
    assert_ne!(secure["isError"], true, "{secure}");
    assert!(text_of(&secure).contains("hello over TLS"), "{secure}");
    let records = egress_log(&mut server, 4, &session);
    assert!(
        records
            .iter()
            .all(|r| r["verdict"] == "allowed" && r["from"] == "fetch"),
        "{records:?}"
    );
    server.close(Duration::from_secs(30));
}

/// A TLS server on 127.0.0.1 (python3's http.server behind ssl) with a
/// certificate for the host alias, written to `dir/cert.pem`; its port, and
/// the guard that stops it.
fn tls_server(dir: &Path) -> (u16, KillOnDrop) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=host.containers.internal",
        ])
        .args(["-addext", "subjectAltName=DNS:host.containers.internal"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    std::fs::write(
        dir.join("index.html"),
        "<html><body>hello over TLS</body></html>",
    )
    .expect("index");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let script = format!(
        "import http.server, ssl, functools\n\
         h = functools.partial(http.server.SimpleHTTPRequestHandler, directory={dir:?})\n\
         s = http.server.ThreadingHTTPServer(('127.0.0.1', {port}), h)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain({cert:?}, {key:?})\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n",
        dir = dir.display().to_string(),
        cert = cert.display().to_string(),
        key = key.display().to_string(),
    );
    let child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let guard = KillOnDrop(child);
    for _ in 0..50 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (port, guard);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the TLS server did not start");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// One of this host's own addresses is refused unless a grant names it,
/// whatever range the address is in; its decimal form, which a resolver
/// reads as the address, is no destination to grant at all (the gate's
/// refusal of a name that resolves to the host is `egress::host`'s unit test).
#[test]
fn the_hosts_own_address_is_refused_unless_a_grant_names_it() {
    let listed = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .expect("ip addr");
    let text = String::from_utf8_lossy(&listed.stdout);
    let Some(own) = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
    else {
        panic!("this host has no global IPv4 address: {text}");
    };
    let name = u32::from(own).to_string();
    let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    listener.set_nonblocking(true).expect("nonblocking");
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_with(root.path(), &[&format!("--allow-egress={own}:{port}")]);
    initialize(&mut server, "2025-11-25");
    let refused = server.call(
        1,
        "launch_session",
        json!({"image": hostile_image(), "egress": [format!("{name}:{port}")]}),
    );
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(
        text_of(&refused).contains("shorthand"),
        "{}",
        text_of(&refused)
    );
    let info = launch(
        &mut server,
        1,
        json!({"image": hostile_image(), "egress": [format!("{own}:{port}")]}),
    );
    let session = session_of(&info);
    // Not granted by a grant of another port.
    let got = text_of(&server.call(
        2,
        &format!("{session}_hostile__http_via_proxy"),
        json!({"method": "CONNECT", "url": format!("{own}:{}", port + 1)}),
    ));
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    assert!(listener.accept().is_err(), "a connection reached the host");
    // A grant of the address itself lets it through.
    let got = text_of(&server.call(
        3,
        &format!("{session}_hostile__http_via_proxy"),
        json!({"method": "CONNECT", "url": format!("{own}:{port}")}),
    ));
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        listener.accept().is_ok(),
        "the granted address was not dialled"
    );
    server.close(Duration::from_secs(30));
}
