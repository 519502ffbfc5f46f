//! mcpod's side of a session stream against a peer that is no honest
//! supervisor. The real supervisor never does this; what is in a container
//! could, if it ever reached the stream (see hostile_child's
//! `a_server_cannot_reach_the_session_stream_or_kill_its_supervisor`), so the
//! peer here is in-process: a fake only for faults that cannot be produced
//! on demand.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mcpod::session::stream::{SessionStream, Setup};
use mcpod_supervisor::mux::{self, Mode};
use mcpod_supervisor::protocol::{self, Event, Hello, Offer, Open, Started};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

const DEADLINE: Duration = Duration::from_secs(2);

#[tokio::test]
async fn garbage_instead_of_a_supervisor_is_an_error_at_once() {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let peer = tokio::spawn(async move {
        let _ = theirs.write_all(&[0xff; 64 * 1024]).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let began = Instant::now();
    let Err(reason) = SessionStream::over(ours, Setup::default(), Duration::from_secs(20)).await
    else {
        panic!("garbage was taken for a supervisor");
    };
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    assert!(
        reason.contains("supervisor") || reason.contains("stream"),
        "{reason}"
    );
    peer.abort();
}

#[tokio::test]
async fn a_silent_peer_fails_at_the_deadline() {
    let (ours, _theirs) = tokio::io::duplex(64 * 1024);
    let began = Instant::now();
    let Err(reason) = SessionStream::over(ours, Setup::default(), DEADLINE).await else {
        panic!("silence was taken for a supervisor");
    };
    assert!(began.elapsed() < DEADLINE + Duration::from_secs(2));
    assert!(reason.contains("did not answer within 2 s"), "{reason}");
}

/// A peer that speaks the multiplexer and answers the hello with `hello`;
/// then runs `then` with its opener and the streams mcpod opens.
fn fake_supervisor<F, Fut>(io: tokio::io::DuplexStream, hello: Hello, then: F)
where
    F: FnOnce(
            mux::Opener,
            tokio::sync::mpsc::UnboundedReceiver<mux::Stream>,
            BufReader<mux::Stream>,
        ) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let (opener, mut inbound, drive) = mux::connect(io, Mode::Server);
        tokio::spawn(drive);
        let Some(control) = inbound.recv().await else {
            return;
        };
        let mut control = BufReader::new(control);
        let _: Option<Open> = protocol::read_line(&mut control).await.ok().flatten();
        let _ = control.get_mut().write_all(&protocol::line(&hello)).await;
        then(opener, inbound, control).await;
    });
}

#[tokio::test]
async fn another_protocol_version_is_refused_naming_both() {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let version = protocol::VERSION + 7;
    fake_supervisor(
        theirs,
        Hello {
            version,
            refused: None,
            limits: Default::default(),
            handoff: false,
        },
        |_, _, _| async { tokio::time::sleep(Duration::from_secs(30)).await },
    );
    let Err(reason) = SessionStream::over(ours, Setup::default(), DEADLINE).await else {
        panic!("another version was taken");
    };
    assert!(
        reason.contains(&format!("protocol {version}"))
            && reason.contains(&format!("mcpod {}", protocol::VERSION)),
        "{reason}"
    );
}

#[tokio::test]
async fn what_no_server_asked_for_is_dropped_and_a_broken_control_line_ends_the_session() {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (go_tx, go) = tokio::sync::oneshot::channel::<()>();
    fake_supervisor(
        theirs,
        Hello {
            version: protocol::VERSION,
            refused: None,
            limits: Default::default(),
            handoff: false,
        },
        move |opener, mut inbound, mut control| async move {
            // Events and offers for servers nobody started, and a stream
            // that is no offer.
            let junk = [
                protocol::line(&Event::Exited { id: 999, code: 0 }),
                protocol::line(&Event::LeaseEnded),
            ]
            .concat();
            let _ = control.get_mut().write_all(&junk).await;
            if let Ok(mut s) = opener.open().await {
                let _ = s
                    .write_all(&protocol::line(&Offer::Stderr { id: 999 }))
                    .await;
            }
            if let Ok(mut s) = opener.open().await {
                let _ = s.write_all(b"not an offer\n").await;
            }
            // An honest answer to the one server mcpod starts: it echoes.
            let Some(stdio) = inbound.recv().await else {
                return;
            };
            let mut stdio = BufReader::new(stdio);
            let _: Option<Open> = protocol::read_line(&mut stdio).await.ok().flatten();
            let _ = stdio
                .get_mut()
                .write_all(&protocol::line(&Started::Running { pid: 2 }))
                .await;
            let mut buf = [0u8; 5];
            if stdio.read_exact(&mut buf).await.is_ok() {
                let _ = stdio.get_mut().write_all(&buf).await;
            }
            // Then a control line past the bound.
            let _ = go.await;
            let _ = control
                .get_mut()
                .write_all(&vec![b'{'; protocol::MAX_LINE + 100])
                .await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        },
    );
    let stream = std::sync::Arc::new(
        SessionStream::over(ours, Setup::default(), DEADLINE)
            .await
            .expect("a session stream"),
    );
    let (argv, env) = (vec!["/bin/echo".to_string()], BTreeMap::new());
    let mut io = match stream.start_server("echo", &argv, &env, None, None).await {
        Ok(io) => io,
        Err(refused) => panic!("the server did not start: {}", refused.reason),
    };
    io.write.write_all(b"hello").await.expect("write");
    let mut buf = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), io.read.read_exact(&mut buf))
        .await
        .expect("the echo within 5 s")
        .expect("read");
    assert_eq!(&buf, b"hello");
    // The exit of another id did not reach this server.
    assert!(io.exit.try_recv().is_err());
    let _ = go_tx.send(());
    // A control line past the bound ends the control stream: the server
    // counts as gone at once, not at some deadline.
    let exit = tokio::time::timeout(Duration::from_secs(10), io.exit)
        .await
        .expect("the server's end is reported within 10 s");
    assert!(exit.is_err(), "{exit:?}");
}

/// A peer that holds every stream the multiplexer allows: mcpod's next
/// start fails at once naming the limit (no hang, and the session is not
/// torn down); once the peer lets them go, a server starts.
#[tokio::test]
async fn a_peer_holding_every_stream_gets_no_more_and_the_session_goes_on() {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (held_tx, held) = tokio::sync::oneshot::channel::<usize>();
    let (release_tx, release) = tokio::sync::oneshot::channel::<()>();
    fake_supervisor(
        theirs,
        Hello {
            version: protocol::VERSION,
            refused: None,
            limits: Default::default(),
            handoff: false,
        },
        |opener, mut inbound, _control| async move {
            // Each with a byte of an unfinished line, so it reaches mcpod
            // (yamux opens a stream lazily) and mcpod keeps it, waiting.
            let mut kept = Vec::new();
            for _ in 0..(mux::MAX_STREAMS * 2) {
                if let Ok(mut s) = opener.open().await {
                    let _ = s.write_all(b"{").await;
                    let _ = s.flush().await;
                    kept.push(s);
                }
            }
            let _ = held_tx.send(kept.len());
            let _ = release.await;
            drop(kept);
            // Then an honest answer to the start.
            let Some(stdio) = inbound.recv().await else {
                return;
            };
            let mut stdio = BufReader::new(stdio);
            let _: Option<Open> = protocol::read_line(&mut stdio).await.ok().flatten();
            let _ = stdio
                .get_mut()
                .write_all(&protocol::line(&Started::Running { pid: 2 }))
                .await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        },
    );
    let stream = std::sync::Arc::new(
        SessionStream::over(ours, Setup::default(), DEADLINE)
            .await
            .expect("a session stream"),
    );
    let kept = held.await.expect("held");
    assert!(kept <= mux::MAX_STREAMS, "the peer got {kept} streams");
    // Until mcpod's side has taken them all in.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (argv, env) = (vec!["/bin/echo".to_string()], BTreeMap::new());
    match tokio::time::timeout(
        Duration::from_secs(5),
        stream.start_server("x", &argv, &env, None, None),
    )
    .await
    {
        Ok(Err(refused)) => assert!(
            refused.reason.contains("streams open"),
            "{}",
            refused.reason
        ),
        Ok(Ok(_)) => panic!("a server started past the multiplexer's limit"),
        Err(_) => panic!("a start hung on a full multiplexer"),
    }
    assert!(!stream.is_ended(), "the limit tore the session down");
    let _ = release_tx.send(());
    let began = Instant::now();
    loop {
        match stream.start_server("x", &argv, &env, None, None).await {
            Ok(_) => break,
            Err(refused) => {
                assert!(
                    began.elapsed() < Duration::from_secs(15),
                    "no stream came back: {}",
                    refused.reason
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
