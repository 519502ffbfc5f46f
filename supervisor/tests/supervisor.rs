//! The supervisor binary, run as a process on the host (no container): the
//! protocol as mcpod speaks it, servers' stdio and stderr, exit codes,
//! signals, orphans, the lease, and the end of the stream.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcpod_supervisor::mux::{self, Mode};
use mcpod_supervisor::protocol::{self, Command, Event, Hello, Offer, Open, Peer, Start, Started};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;

const BIN: &str = env!("CARGO_BIN_EXE_mcpod-supervisor");

struct Supervisor {
    process: Child,
    opener: mux::Opener,
    inbound: tokio::sync::mpsc::UnboundedReceiver<mux::Stream>,
    control: Option<BufReader<mux::Stream>>,
    next: u32,
}

impl Supervisor {
    fn spawn() -> Supervisor {
        let mut process = tokio::process::Command::new(BIN)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the supervisor runs");
        let io = tokio::io::join(
            process.stdout.take().expect("stdout"),
            process.stdin.take().expect("stdin"),
        );
        let (opener, inbound, drive) = mux::connect(io, Mode::Client);
        tokio::spawn(drive);
        Supervisor {
            process,
            opener,
            inbound,
            control: None,
            next: 1,
        }
    }

    /// The control stream, as mcpod opens it; the supervisor's hello.
    async fn hello(&mut self, version: u32, lease_until: Option<u64>) -> Hello {
        let mut control = BufReader::new(self.opener.open().await.expect("control stream"));
        control
            .get_mut()
            .write_all(&protocol::line(&Open::Control {
                version,
                lease_until,
                forwards: vec![],
            }))
            .await
            .expect("write");
        let hello: Hello = protocol::read_line(&mut control)
            .await
            .expect("read")
            .expect("a hello");
        self.control = Some(control);
        hello
    }

    async fn started(mut self) -> Supervisor {
        let hello = self.hello(protocol::VERSION, None).await;
        assert_eq!(hello.refused, None);
        self
    }

    /// Start `argv`; its id, the answer and its stdio stream.
    async fn start(&mut self, argv: &[&str]) -> (u32, Started, BufReader<mux::Stream>) {
        let id = self.next;
        self.next += 1;
        let mut stream = BufReader::new(self.opener.open().await.expect("stdio stream"));
        let start = Open::Start(Start {
            id,
            name: format!("s{id}"),
            argv: argv.iter().map(|a| a.to_string()).collect(),
            env: vec![("GREETING".into(), "hi there".into())],
            workdir: None,
            proxy_port: None,
        });
        stream
            .get_mut()
            .write_all(&protocol::line(&start))
            .await
            .expect("write");
        let started: Started = protocol::read_line(&mut stream)
            .await
            .expect("read")
            .expect("an answer");
        (id, started, stream)
    }

    async fn event(&mut self) -> Option<Event> {
        let control = self.control.as_mut().expect("hello first");
        tokio::time::timeout(Duration::from_secs(10), protocol::read_line(control))
            .await
            .expect("an event within 10 s")
            .expect("a valid line")
    }

    async fn command(&mut self, command: &Command) {
        let control = self.control.as_mut().expect("hello first");
        control
            .get_mut()
            .write_all(&protocol::line(command))
            .await
            .expect("write");
        control.get_mut().flush().await.expect("flush");
    }

    /// The next stderr stream the supervisor offers: its server's id and text.
    async fn stderr(&mut self) -> (u32, String) {
        let stream = tokio::time::timeout(Duration::from_secs(10), self.inbound.recv())
            .await
            .expect("a stderr stream within 10 s")
            .expect("a stream");
        let mut stream = BufReader::new(stream);
        let Some(Offer::Stderr { id }) = protocol::read_line(&mut stream).await.expect("offer")
        else {
            panic!("no offer line");
        };
        let mut text = String::new();
        stream.read_to_string(&mut text).await.expect("stderr");
        (id, text)
    }

    async fn exits(mut self) -> i32 {
        tokio::time::timeout(Duration::from_secs(10), self.process.wait())
            .await
            .expect("the supervisor exits within 10 s")
            .expect("wait")
            .code()
            .unwrap_or(-1)
    }
}

async fn read_all(stream: &mut BufReader<mux::Stream>) -> String {
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut text))
        .await
        .expect("stdout ends within 10 s")
        .expect("read");
    text
}

#[tokio::test]
async fn a_server_gets_its_env_stdin_and_reports_stdout_stderr_and_exit() {
    let mut sup = Supervisor::spawn().started().await;
    let (id, started, mut stdio) = sup
        .start(&[
            "/bin/sh",
            "-c",
            r#"read line; echo "$GREETING, $line"; echo oops >&2; exit 3"#,
        ])
        .await;
    assert!(matches!(started, Started::Running { .. }), "{started:?}");
    stdio.get_mut().write_all(b"world\n").await.expect("stdin");
    assert_eq!(read_all(&mut stdio).await, "hi there, world\n");
    assert_eq!(sup.stderr().await, (id, "oops\n".to_string()));
    assert_eq!(sup.event().await, Some(Event::Exited { id, code: 3 }));
    // The end of mcpod's side ends the supervisor.
    drop(sup.control.take());
    sup.opener.close();
    assert_eq!(sup.exits().await, 0);
}

#[tokio::test]
async fn closing_a_servers_stream_closes_its_stdin() {
    let mut sup = Supervisor::spawn().started().await;
    let (id, _, mut stdio) = sup.start(&["/bin/cat"]).await;
    stdio.get_mut().write_all(b"echoed\n").await.expect("stdin");
    stdio.get_mut().shutdown().await.expect("close stdin");
    assert_eq!(read_all(&mut stdio).await, "echoed\n");
    assert_eq!(sup.event().await, Some(Event::Exited { id, code: 0 }));
}

#[tokio::test]
async fn a_missing_program_or_workdir_is_refused_and_says_which() {
    let mut sup = Supervisor::spawn().started().await;
    let (_, started, _) = sup.start(&["/no/such/program"]).await;
    match started {
        Started::Failed { reason, missing } => {
            assert!(missing, "{reason}");
            assert!(reason.contains("/no/such/program"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let (_, started, _) = sup.start(&[]).await;
    assert!(
        matches!(&started, Started::Failed { missing: false, reason } if reason.contains("empty")),
        "{started:?}"
    );
    // The supervisor goes on: another server starts.
    let (_, started, _) = sup.start(&["/bin/true"]).await;
    assert!(matches!(started, Started::Running { .. }), "{started:?}");
}

#[tokio::test]
async fn another_protocol_version_is_refused_naming_both() {
    let mut sup = Supervisor::spawn();
    let hello = sup.hello(protocol::VERSION + 1, None).await;
    let refused = hello.refused.expect("refused");
    assert!(
        refused.contains(&format!("protocol {}", protocol::VERSION + 1))
            && refused.contains(&protocol::VERSION.to_string()),
        "{refused}"
    );
    assert_eq!(sup.exits().await, 0);
}

#[tokio::test]
async fn sigterm_reaches_every_server_and_ends_the_supervisor() {
    let mut sup = Supervisor::spawn().started().await;
    let trap = r#"trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done"#;
    let (a, _, mut one) = sup.start(&["/bin/sh", "-c", trap]).await;
    let (b, _, mut two) = sup.start(&["/bin/sh", "-c", trap]).await;
    for stdio in [&mut one, &mut two] {
        let mut line = String::new();
        tokio::io::AsyncBufReadExt::read_line(stdio, &mut line)
            .await
            .expect("ready");
        assert_eq!(line, "ready\n");
    }
    let pid = sup.process.id().expect("pid") as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(read_all(&mut one).await, "got-term\n");
    assert_eq!(read_all(&mut two).await, "got-term\n");
    let mut exits = vec![sup.event().await, sup.event().await];
    exits.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        exits,
        vec![
            Some(Event::Exited { id: a, code: 7 }),
            Some(Event::Exited { id: b, code: 7 })
        ]
    );
    assert_eq!(sup.exits().await, 0);
}

#[tokio::test]
async fn a_signal_command_reaches_the_servers_group_and_a_kill_is_reported() {
    let mut sup = Supervisor::spawn().started().await;
    let (id, _, _stdio) = sup.start(&["/bin/sh", "-c", "sleep 30 & wait"]).await;
    sup.command(&Command::Signal {
        id,
        signal: libc::SIGKILL,
    })
    .await;
    assert_eq!(
        sup.event().await,
        Some(Event::Exited {
            id,
            code: 128 + libc::SIGKILL
        })
    );
}

/// (state, comm) of each process whose parent is `parent`.
fn children_of(parent: u32) -> Vec<(String, String)> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.ok()?.path().join("stat")).ok()?;
            let comm = stat[stat.find('(')? + 1..stat.rfind(')')?].to_string();
            let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
            (fields.get(1) == Some(&parent.to_string().as_str()))
                .then(|| (fields[0].to_string(), comm))
        })
        .collect()
}

#[tokio::test]
async fn orphans_come_to_the_supervisor_and_are_reaped() {
    let mut sup = Supervisor::spawn().started().await;
    let (id, _, _stdio) = sup
        .start(&[
            "/bin/sh",
            "-c",
            "sleep 1 >/dev/null 2>&1 </dev/null & exit 0",
        ])
        .await;
    assert_eq!(sup.event().await, Some(Event::Exited { id, code: 0 }));
    let pid = sup.process.id().expect("pid");
    // The server's orphan is the supervisor's now (a subreaper, as PID 1 is).
    assert!(
        children_of(pid).iter().any(|(_, comm)| comm == "sleep"),
        "{:?}",
        children_of(pid)
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        children_of(pid).is_empty(),
        "unreaped: {:?}",
        children_of(pid)
    );
}

#[tokio::test]
async fn the_lease_ends_the_servers_and_the_supervisor() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut sup = Supervisor::spawn();
    assert_eq!(
        sup.hello(protocol::VERSION, Some(now + 60)).await.refused,
        None
    );
    let (id, _, _stdio) = sup.start(&["/bin/sleep", "30"]).await;
    // A new lease, as a pooled session's hand-out sends it.
    sup.command(&Command::Lease { until: now + 1 }).await;
    let mut events = vec![sup.event().await, sup.event().await];
    events.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        events,
        vec![
            Some(Event::Exited {
                id,
                code: 128 + libc::SIGTERM
            }),
            Some(Event::LeaseEnded),
        ]
    );
    assert_eq!(sup.exits().await, 0);
}

#[tokio::test]
async fn a_broken_line_from_mcpod_is_refused_and_the_supervisor_goes_on() {
    let mut sup = Supervisor::spawn().started().await;
    let mut bad = sup.opener.open().await.expect("stream");
    // The supervisor stops reading at the bound, so the write may fail.
    let _ = bad.write_all(&vec![b'x'; protocol::MAX_LINE + 10]).await;
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest).await;
    let (_, started, _) = sup.start(&["/bin/true"]).await;
    assert!(matches!(started, Started::Running { .. }), "{started:?}");
}

/// The next stream the supervisor opens that is a connection (stderr
/// streams are skipped): its offer and the stream.
async fn next_connection(sup: &mut Supervisor) -> (String, String, u16, BufReader<mux::Stream>) {
    let (from, host, port, _, stream) = next_offer(sup).await;
    (from, host, port, stream)
}

/// [`next_connection`], with the server the supervisor found opened it.
async fn next_offer(
    sup: &mut Supervisor,
) -> (String, String, u16, Option<Peer>, BufReader<mux::Stream>) {
    loop {
        let stream = tokio::time::timeout(Duration::from_secs(10), sup.inbound.recv())
            .await
            .expect("a stream within 10 s")
            .expect("a stream");
        let mut stream = BufReader::new(stream);
        match protocol::read_line(&mut stream).await.expect("offer") {
            Some(Offer::Connect {
                from,
                host,
                port,
                peer,
                ..
            }) => return (from, host, port, peer, stream),
            Some(Offer::Stderr { .. }) => continue,
            None => panic!("no offer"),
        }
    }
}

async fn answer(stream: &mut BufReader<mux::Stream>, allowed: bool, reason: &str) {
    let verdict = protocol::Verdict {
        allowed,
        reason: reason.to_string(),
        handoff: None,
    };
    stream
        .get_mut()
        .write_all(&protocol::line(&verdict))
        .await
        .expect("verdict");
    stream.get_mut().flush().await.expect("flush");
}

async fn client(port: u16, request: &[u8]) -> tokio::net::TcpStream {
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the proxy listens");
    c.write_all(request).await.expect("request");
    c
}

async fn head(c: &mut tokio::net::TcpStream) -> String {
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), c.read(&mut b)).await {
            Ok(Ok(1)) => got.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_servers_proxy_asks_mcpod_and_relays_or_refuses_with_the_rule() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut sup = Supervisor::spawn().started().await;
    let id = sup.next;
    sup.next += 1;
    let mut stdio = BufReader::new(sup.opener.open().await.expect("stdio"));
    let start = Open::Start(Start {
        id,
        name: "web".into(),
        argv: vec!["/bin/sleep".into(), "30".into()],
        env: vec![],
        workdir: None,
        proxy_port: Some(port),
    });
    stdio
        .get_mut()
        .write_all(&protocol::line(&start))
        .await
        .expect("start");
    let started: Started = protocol::read_line(&mut stdio)
        .await
        .expect("read")
        .expect("answer");
    assert!(matches!(started, Started::Running { .. }), "{started:?}");

    // Refused: a 403 naming mcpod's rule.
    let mut c = client(
        port,
        b"CONNECT blocked.example:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let (from, host, p, mut s) = next_connection(&mut sup).await;
    assert_eq!(
        (from.as_str(), host.as_str(), p),
        ("web", "blocked.example", 443)
    );
    answer(&mut s, false, "not in the grant").await;
    let mut text = String::new();
    c.read_to_string(&mut text).await.expect("response");
    assert!(text.starts_with("HTTP/1.1 403 Forbidden"), "{text}");
    assert!(
        text.contains("X-Mcpod-Egress: refused; not in the grant"),
        "{text}"
    );
    assert!(text.ends_with("mcpod egress: not in the grant\n"), "{text}");

    // Allowed: 200, then the bytes both ways.
    let mut c = client(port, b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\nearly").await;
    let (_, host, p, mut s) = next_connection(&mut sup).await;
    assert_eq!((host.as_str(), p), ("::1", 8443));
    answer(&mut s, true, "granted").await;
    assert_eq!(
        head(&mut c).await,
        "HTTP/1.1 200 Connection established\r\n\r\n"
    );
    let mut early = [0u8; 5];
    s.read_exact(&mut early)
        .await
        .expect("bytes sent with the request");
    assert_eq!(&early, b"early");
    c.write_all(b"ping").await.expect("ping");
    let mut ping = [0u8; 4];
    s.read_exact(&mut ping).await.expect("ping");
    s.get_mut().write_all(b"pong").await.expect("pong");
    let mut pong = [0u8; 4];
    c.read_exact(&mut pong).await.expect("pong");
    assert_eq!((&ping, &pong), (b"ping", b"pong"));

    // Plain HTTP: origin form, no proxy headers, to the host and port named.
    let _c = client(
        port,
        b"GET http://api.example:8080/v1/x?q=1 HTTP/1.1\r\nHost: api.example:8080\r\nProxy-Connection: keep-alive\r\n\r\n",
    )
    .await;
    let (_, host, p, mut s) = next_connection(&mut sup).await;
    assert_eq!((host.as_str(), p), ("api.example", 8080));
    answer(&mut s, true, "granted").await;
    let mut forwarded = String::new();
    while !forwarded.ends_with("\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.expect("head");
        forwarded.push(b[0] as char);
    }
    assert_eq!(
        forwarded,
        "GET /v1/x?q=1 HTTP/1.1\r\nHost: api.example:8080\r\n\r\n"
    );

    // What the proxy does not take is refused before mcpod is asked.
    for (request, status) in [
        (
            b"GET https://api.example/ HTTP/1.1\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (b"\x16\x03\x01 not http\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        (
            [
                b"GET http://a.example/ HTTP/1.1\r\nX: ".as_slice(),
                &[b'a'; 20 * 1024],
            ]
            .concat(),
            "HTTP/1.1 431",
        ),
    ] {
        let mut c = client(port, &request).await;
        let mut text = String::new();
        let _ = c.read_to_string(&mut text).await;
        assert!(text.starts_with(status), "{status}: {text}");
    }
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Start `argv` as server `name` with its proxy on `port`.
async fn start_proxied(sup: &mut Supervisor, name: &str, argv: &[&str], port: u16) {
    let id = sup.next;
    sup.next += 1;
    let mut stdio = BufReader::new(sup.opener.open().await.expect("stdio"));
    let start = Open::Start(Start {
        id,
        name: name.into(),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        env: vec![],
        workdir: None,
        proxy_port: Some(port),
    });
    stdio
        .get_mut()
        .write_all(&protocol::line(&start))
        .await
        .expect("start");
    let started: Started = protocol::read_line(&mut stdio)
        .await
        .expect("read")
        .expect("answer");
    assert!(matches!(started, Started::Running { .. }), "{started:?}");
    // The stdio stream stays open with the server.
    std::mem::forget(stdio);
}

/// The supervisor finds which server's process holds a proxy connection
/// (its socket in /proc, the holder's parents): server `a` connecting to
/// `b`'s proxy, itself and from a child, is named as `a`; a process of no
/// server (this test) is not attributed.
#[tokio::test]
async fn a_proxy_connection_names_the_server_whose_process_opened_it() {
    let (pa, pb) = (free_port(), free_port());
    let mut sup = Supervisor::spawn().started().await;
    start_proxied(&mut sup, "b", &["/bin/sleep", "30"], pb).await;
    let connect = |fd: u8, host: &str| {
        format!(
            "exec {fd}<>/dev/tcp/127.0.0.1/{pb}; printf 'CONNECT {host}:1 HTTP/1.1\\r\\n\\r\\n' >&{fd}; cat <&{fd} >/dev/null"
        )
    };
    // The shell itself, then a subshell: a process the shell forked.
    let script = format!(
        "{}; exec 3<&-; ({}); sleep 30",
        connect(3, "itself.example"),
        connect(4, "child.example")
    );
    start_proxied(&mut sup, "a", &["/bin/bash", "-c", &script], pa).await;
    for host in ["itself.example", "child.example"] {
        let (from, got, _, peer, mut s) = next_offer(&mut sup).await;
        assert_eq!((from.as_str(), got.as_str()), ("b", host));
        assert_eq!(peer, Some(Peer::Server("a".into())), "{host}");
        answer(&mut s, false, "refused").await;
    }
    // This test's own connection: its process descends from no server.
    let _c = client(pa, b"CONNECT mine.example:1 HTTP/1.1\r\n\r\n").await;
    let (from, _, _, peer, _s) = next_offer(&mut sup).await;
    assert_eq!(from, "a");
    match peer {
        Some(Peer::Unknown(why)) => assert!(why.contains("descends from no server"), "{why}"),
        other => panic!("{other:?}"),
    }
}
