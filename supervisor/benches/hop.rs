//! What the supervisor adds to a message's round trip, without podman: a
//! line written to `cat` and read back, through the supervisor (yamux both
//! ways, the supervisor's copy to and from the server's pipes) against a
//! `cat` on plain pipes, interleaved, in the same run.
//!
//! ```text
//! cargo bench -p mcpod-supervisor --bench hop
//! ```
//!
//! Without `--bench` (as under `cargo test --benches`) it runs a few rounds.

use std::time::{Duration, Instant};

use mcpod_supervisor::mux::{self, Mode};
use mcpod_supervisor::protocol::{self, Hello, Open, Start, Started};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_mcpod-supervisor");

fn main() {
    let rounds = if std::env::args().any(|a| a == "--bench") {
        5000
    } else {
        50
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(rounds));
}

async fn run(rounds: usize) {
    // Direct: cat on pipes.
    let mut cat = tokio::process::Command::new("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cat");
    let mut direct_in = cat.stdin.take().expect("stdin");
    let mut direct_out = BufReader::new(cat.stdout.take().expect("stdout"));

    // Through the supervisor: cat as its server.
    let mut sup = tokio::process::Command::new(BIN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("supervisor");
    let io = tokio::io::join(
        sup.stdout.take().expect("stdout"),
        sup.stdin.take().expect("stdin"),
    );
    let (opener, _inbound, drive) = mux::connect(io, Mode::Client);
    tokio::spawn(drive);
    let mut control = BufReader::new(opener.open().await.expect("control"));
    control
        .get_mut()
        .write_all(&protocol::line(&Open::Control {
            version: protocol::VERSION,
            lease_until: None,
            forwards: vec![],
        }))
        .await
        .expect("hello");
    let _: Option<Hello> = protocol::read_line(&mut control).await.expect("hello");
    let mut stdio = BufReader::new(opener.open().await.expect("stdio"));
    stdio
        .get_mut()
        .write_all(&protocol::line(&Open::Start(Start {
            id: 1,
            name: "cat".into(),
            argv: vec!["cat".into()],
            env: vec![],
            workdir: None,
            proxy_port: None,
        })))
        .await
        .expect("start");
    let started: Option<Started> = protocol::read_line(&mut stdio).await.expect("started");
    assert!(
        matches!(started, Some(Started::Running { .. })),
        "{started:?}"
    );

    let message = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"sum\":{}}}}}\n",
        "4".repeat(40)
    );
    let mut direct = Vec::with_capacity(rounds);
    let mut through = Vec::with_capacity(rounds);
    let mut line = String::new();
    for _ in 0..rounds {
        let t = Instant::now();
        direct_in
            .write_all(message.as_bytes())
            .await
            .expect("write");
        line.clear();
        direct_out.read_line(&mut line).await.expect("read");
        direct.push(t.elapsed());
        let t = Instant::now();
        stdio
            .get_mut()
            .write_all(message.as_bytes())
            .await
            .expect("write");
        line.clear();
        stdio.read_line(&mut line).await.expect("read");
        through.push(t.elapsed());
        assert_eq!(line, message);
    }
    direct.sort();
    through.sort();
    let p = |v: &[Duration], q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "supervisor hop: a {}-byte line to cat and back, {rounds} rounds, interleaved",
        message.len()
    );
    println!(
        "  plain pipes to cat          median {:>6.1} us   p90 {:>6.1} us   p99 {:>6.1} us",
        us(p(&direct, 0.5)),
        us(p(&direct, 0.9)),
        us(p(&direct, 0.99))
    );
    println!(
        "  through the supervisor      median {:>6.1} us   p90 {:>6.1} us   p99 {:>6.1} us",
        us(p(&through, 0.5)),
        us(p(&through, 0.9)),
        us(p(&through, 0.99))
    );
    println!(
        "  added by the supervisor and yamux: {:+.1} us at the median (ratio {:.2}x)",
        us(p(&through, 0.5)) - us(p(&direct, 0.5)),
        us(p(&through, 0.5)) / us(p(&direct, 0.5))
    );
}
