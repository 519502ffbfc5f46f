//! OpenTelemetry traces (`src/telemetry/`): a real OTLP/HTTP receiver in
//! the test (a TcpListener taking `POST /v1/traces` and keeping the JSON)
//! gets the spans of `mcpod serve`; the hostile fixture's `whoami` says
//! which `traceparent` its child got. One launch-then-call is one trace
//! across the client, mcpod and the child; a hostile `traceparent` is
//! ignored; with no endpoint nothing is sent and no exporter thread runs.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::hostile::{hostile_image, whoami};
use common::rpc::{Server, initialize};
use serde_json::{Value, json};

/// The trace the client's spans are in.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A collector's OTLP/HTTP receiver on 127.0.0.1: every body POSTed to
/// `/v1/traces`, parsed.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || receive(stream, &kept));
            }
        });
        Receiver { port, bodies }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Value> {
        let bodies = self.bodies.lock().expect("bodies");
        let mut spans = Vec::new();
        for body in bodies.iter() {
            for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                assert_eq!(
                    resource["resource"]["attributes"][0],
                    json!({"key": "service.name", "value": {"stringValue": "mcpod"}}),
                    "{resource}"
                );
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    spans.extend(scope["spans"].as_array().into_iter().flatten().cloned());
                }
            }
        }
        spans
    }
}

/// One request: its head, then `Content-Length` bytes of JSON; answered 200.
fn receive(stream: TcpStream, bodies: &Mutex<Vec<Value>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let mut length = 0;
    let mut json_type = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("content-length:") {
            length = n.trim().parse().expect("a content length");
        }
        json_type |= lower.starts_with("content-type: application/json");
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("the body");
    assert_eq!(first.trim(), "POST /v1/traces HTTP/1.1");
    assert!(json_type, "sent as application/json");
    let body: Value = serde_json::from_slice(&body).expect("the body is JSON");
    bodies.lock().expect("bodies").push(body);
    let mut stream = stream;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
}

/// A span id of the client's (16 hex), distinct for each `n`.
fn client_span(n: u8) -> String {
    format!("00f067aa0ba902{n:02x}")
}

fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

/// The span named `name` whose parent is `parent`, in the client's trace.
fn span_under<'a>(spans: &'a [Value], name: &str, parent: &str) -> &'a Value {
    let span = spans
        .iter()
        .find(|s| s["name"] == name && s["parentSpanId"] == parent)
        .unwrap_or_else(|| panic!("no span `{name}` under {parent} in {spans:#?}"));
    assert_eq!(span["traceId"], TRACE, "{span}");
    span
}

/// A span's attribute, as text.
fn attribute(span: &Value, key: &str) -> Value {
    span["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == key)
        .map(|a| a["value"]["stringValue"].clone())
        .unwrap_or(Value::Null)
}

/// Launch the hostile fixture with the client's span `parent` in `_meta`;
/// the session id.
fn launch(server: &mut Server, id: u64, parent: &str) -> String {
    let launched = server.request(
        id,
        "tools/call",
        json!({"name": "launch_session", "arguments": {"image": hostile_image()},
               "_meta": {"traceparent": parent}}),
    );
    let session = &launched["result"]["structuredContent"]["session"];
    session
        .as_str()
        .unwrap_or_else(|| panic!("launched: {launched}"))
        .to_string()
}

#[test]
fn a_launch_then_a_call_is_one_trace_across_the_client_mcpod_and_its_child() {
    let receiver = Receiver::start();
    let root = tempfile::tempdir().expect("tempdir");
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url())];
    let mut server = Server::start_env(root.path(), &[], &env);
    initialize(&mut server, "2025-06-18");

    // The launch: mcpod's request span under the client's, the launch under it.
    let session = launch(&mut server, 1, &traceparent(TRACE, &client_span(1)));
    // A call that passes through as bytes (the pass-through carries the
    // trace context), and one through rmcp (one more `_meta` key).
    let fast = whoami(
        &mut server,
        2,
        &session,
        json!({"traceparent": traceparent(TRACE, &client_span(2)),
        "tracestate": "vendor=opaque"}),
    );
    let slow = whoami(
        &mut server,
        3,
        &session,
        json!({"traceparent": traceparent(TRACE, &client_span(3)),
        "x-other": 1}),
    );
    assert!(
        fast["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("mcpod-")),
        "{fast}"
    );
    assert!(slow["id"].is_number(), "{slow}");
    // The last spans are sent when mcpod ends.
    assert!(
        server.close(Duration::from_secs(30)).is_some(),
        "mcpod ends"
    );
    let spans = receiver.spans();

    let request = span_under(&spans, "tools/call launch_session", &client_span(1));
    assert_eq!(request["kind"], 2, "a server span: {request}");
    assert_eq!(attribute(request, "mcpod.session"), session.as_str());
    let launched = span_under(&spans, "launch", request["spanId"].as_str().expect("id"));
    assert_eq!(attribute(launched, "mcpod.session"), session.as_str());

    let exported = format!("tools/call {session}_hostile__whoami");
    for (n, seen) in [(2, &fast), (3, &slow)] {
        let request = span_under(&spans, &exported, &client_span(n));
        assert_eq!(
            attribute(request, "gen_ai.tool.name"),
            format!("{session}_hostile__whoami").as_str()
        );
        let proxied = span_under(
            &spans,
            "tools/call whoami",
            request["spanId"].as_str().expect("id"),
        );
        assert_eq!(proxied["kind"], 3, "a client span: {proxied}");
        assert_eq!(attribute(proxied, "mcpod.server"), "hostile");
        // The child's parent is the proxied call's span.
        let proxied_id = proxied["spanId"].as_str().expect("id");
        assert_eq!(
            seen["traceparent"],
            traceparent(TRACE, proxied_id),
            "{seen}"
        );
    }
    assert_eq!(
        fast["tracestate"], "vendor=opaque",
        "the trace state goes on: {fast}"
    );
}

#[test]
fn hostile_trace_context_is_ignored_and_the_call_still_works() {
    let receiver = Receiver::start();
    let root = tempfile::tempdir().expect("tempdir");
    let url = receiver.url();
    let mut server = Server::start_with(root.path(), &["--otlp", &url]);
    initialize(&mut server, "2025-06-18");
    let session = launch(&mut server, 1, "not a traceparent");
    let valid = client_span(9);
    let huge_state = "k=".to_string() + &"v".repeat(10 * 1024);
    let cases = [
        json!({"traceparent": format!("00-{TRACE}-{}-01", &valid[..15])}),
        json!({"traceparent": format!("00-{TRACE}-{valid}-01-extra")}),
        json!({"traceparent": traceparent(&TRACE.to_uppercase(), &client_span(10))}),
        json!({"traceparent": traceparent(&"0".repeat(32), &client_span(11))}),
        json!({"traceparent": traceparent(TRACE, &"0".repeat(16))}),
        json!({"traceparent": format!("ff-{TRACE}-{}-01", client_span(12))}),
        json!({"traceparent": 7}),
        json!({"traceparent": format!("00-{TRACE}-{}-01\u{0}", client_span(13))}),
    ];
    let mut id = 10;
    for meta in &cases {
        let seen = whoami(&mut server, id, &session, meta.clone());
        id += 1;
        // The child's parent is mcpod's span, in a trace of mcpod's own.
        let child = seen["traceparent"]
            .as_str()
            .unwrap_or_else(|| panic!("{meta}: {seen}"));
        assert!(
            !child.contains(TRACE) && !child.contains(&TRACE.to_uppercase()),
            "{meta}: {seen}"
        );
    }
    // A valid parent with 10 KB of trace state: the parent holds, the state is dropped.
    let meta = json!({"traceparent": traceparent(TRACE, &valid), "tracestate": huge_state});
    let seen = whoami(&mut server, id, &session, meta);
    assert_eq!(seen["tracestate"], Value::Null, "{seen}");
    assert!(
        seen["traceparent"]
            .as_str()
            .is_some_and(|t| t.contains(TRACE)),
        "{seen}"
    );
    assert!(
        server.close(Duration::from_secs(30)).is_some(),
        "mcpod ends"
    );

    let spans = receiver.spans();
    let parents: Vec<&Value> = spans.iter().map(|s| &s["parentSpanId"]).collect();
    for n in 10..=13 {
        assert!(
            !parents.contains(&&json!(client_span(n))),
            "span {n} claimed: {spans:#?}"
        );
    }
    let under_valid: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parentSpanId"] == valid)
        .collect();
    assert_eq!(
        under_valid.len(),
        1,
        "only the valid parent is used: {spans:#?}"
    );
    assert_eq!(under_valid[0]["traceId"], TRACE);
    assert_eq!(
        under_valid[0]["traceState"],
        Value::Null,
        "{:?}",
        under_valid[0]
    );
    let from_client = spans.iter().filter(|s| s["traceId"] == TRACE).count();
    assert_eq!(
        from_client, 2,
        "the request and the proxied call of the valid one: {spans:#?}"
    );
}

/// The names of the threads of process `pid`.
fn threads(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}

#[test]
fn with_no_endpoint_nothing_is_sent_no_thread_runs_and_the_clients_context_goes_on() {
    let receiver = Receiver::start();
    let root = tempfile::tempdir().expect("tempdir");
    let unset = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", String::new()),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", String::new()),
    ];
    let disabled = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()),
        ("OTEL_SDK_DISABLED", "true".to_string()),
    ];
    let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url())];
    let mut traced = Server::start_env(root.path(), &[], &on);
    initialize(&mut traced, "2025-06-18");
    traced.request(1, "tools/list", json!({}));
    assert!(
        threads(traced.child.id()).contains(&"mcpod-otlp".to_string()),
        "the exporter runs when on"
    );
    drop(traced);
    let before = receiver.spans().len();
    assert!(before > 0, "the traced mcpod sent its requests' spans");

    for env in [&unset[..], &disabled[..]] {
        let mut server = Server::start_env(root.path(), &[], env);
        initialize(&mut server, "2025-06-18");
        let names = threads(server.child.id());
        assert!(
            !names.contains(&"mcpod-otlp".to_string()),
            "{env:?}: {names:?}"
        );
        let session = launch(&mut server, 1, &traceparent(TRACE, &client_span(1)));
        let parent = traceparent(TRACE, &client_span(2));
        for (id, meta) in [
            (2, json!({"traceparent": parent})),
            (3, json!({"traceparent": parent, "x": 1})),
        ] {
            let seen = whoami(&mut server, id, &session, meta);
            assert_eq!(
                seen["traceparent"],
                parent.as_str(),
                "passed on unchanged: {seen}"
            );
        }
        assert!(
            server.close(Duration::from_secs(30)).is_some(),
            "mcpod ends"
        );
    }
    // Each mcpod has ended: what it would send, it has sent.
    assert_eq!(
        receiver.spans().len(),
        before,
        "nothing was sent with tracing off"
    );
}

#[test]
fn an_endpoint_mcpod_cannot_use_is_refused_with_a_fix() {
    for (args, env, named) in [
        (
            vec!["serve", "--otlp", "https://collector:4318"],
            vec![],
            "--otlp",
        ),
        (vec!["serve", "--otlp", "collector:4318"], vec![], "--otlp"),
        (
            vec!["serve"],
            vec![(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://user:pw@collector/v1/traces",
            )],
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (
            vec!["serve"],
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcpod"))
            .args(&args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("mcpod runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?}");
        assert!(
            stderr.contains(named) && stderr.contains("Fix:"),
            "{args:?} {env:?}: {stderr}"
        );
    }
}
