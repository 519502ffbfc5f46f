//! Servers on this host's loopback for egress tests (a session names the
//! host as `host.containers.internal`), and what to read of a session's
//! egress.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::rpc::Server;

/// An HTTP server on 127.0.0.1 answering every request with `body`; the
/// request lines it saw.
pub fn http_server(body: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || serve_http(stream, body, &log));
        }
    });
    (port, seen)
}

fn serve_http(stream: TcpStream, body: &str, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    log.lock().expect("log").push(first.trim().to_string());
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A TCP server on 127.0.0.1 that sends back what it reads.
pub fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A TCP server on 127.0.0.1 that keeps every connection open, even once
/// its peer has stopped sending (a server that never closes an idle
/// connection of its own accord).
pub struct Holding {
    pub port: u16,
    /// Connections whose peer has not yet closed its side.
    pub open: Arc<AtomicUsize>,
    /// Bytes received, all connections together.
    pub bytes: Arc<AtomicUsize>,
}

pub fn holding_server() -> Holding {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (open, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (count, got) = (open.clone(), bytes.clone());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let (count, got) = (count.clone(), got.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    got.fetch_add(n, Ordering::SeqCst);
                }
                count.fetch_sub(1, Ordering::SeqCst);
                // Never closed from this side.
                std::mem::forget(stream);
            });
        }
    });
    Holding { port, open, bytes }
}

/// A TCP server on 127.0.0.1 that reads `take` bytes of each connection,
/// then resets it (SO_LINGER 0).
pub fn resetting_server(take: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut got = vec![0u8; take];
                let _ = stream.read_exact(&mut got);
                reset(&stream);
            });
        }
    });
    port
}

/// Close `stream` with a reset (SO_LINGER 0) when it is dropped.
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a linger of the size given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Descriptors `pid` has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the process's descriptors")
        .count()
}

/// Wait up to `within` for `done`; whether it came true.
pub fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn launch(server: &mut Server, id: u64, args: Value) -> Value {
    let result = server.call(id, "launch_session", args);
    assert_ne!(result["isError"], true, "launch failed: {result}");
    server.detail_of(id, &result)
}

pub fn session_of(info: &Value) -> String {
    info["session"].as_str().expect("session").to_string()
}

/// The session's egress records (session_logs).
pub fn egress_log(server: &mut Server, id: u64, session: &str) -> Vec<Value> {
    let logs = server.call(id, "session_logs", json!({"session": session}));
    logs["structuredContent"]["egress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| serde_json::from_str(l.as_str()?).ok())
        .collect()
}

/// A session's egress records once `done` holds of them: a connection's
/// record is written when it closes, which may come a moment after the
/// exchange through it returned. At most 10 s, then the records as they are.
pub fn egress_log_when(
    server: &mut Server,
    id: u64,
    session: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut records = egress_log(server, id, session);
    for _ in 0..50 {
        if done(&records) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        records = egress_log(server, id, session);
    }
    records
}

/// The records of the audit file at `path`.
pub fn audit_records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
