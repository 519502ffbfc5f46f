//! The multiplexer: one yamux connection over a byte stream, driven by one
//! task, with a handle that opens streams and a channel of the streams the
//! other side opens. Each stream has yamux's own flow control (a 256 KiB
//! window), so a server that floods its stderr cannot stall another's stdio.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

pub use yamux::Mode;

/// Streams open at once on one connection, each side's together (yamux
/// counts them so): a side at the limit gets an error when it opens one more,
/// and the connection goes on. 64 servers take 129 (stdio, stderr, control);
/// the rest is room for egress connections.
pub const MAX_STREAMS: usize = 192;

/// yamux's own limit: past it yamux ends the whole connection (also when
/// this side opens one more), so it sits above [`MAX_STREAMS`] with room
/// for streams dropped but not yet collected. With its 256 KiB window each,
/// what the other side can make this side buffer is bounded by
/// `YAMUX_STREAMS * 256 KiB` (64 MiB).
const YAMUX_STREAMS: usize = MAX_STREAMS + 64;

/// A stream of the connection, as tokio's `AsyncRead + AsyncWrite`; counted
/// against [`MAX_STREAMS`] until dropped.
pub struct Stream {
    inner: Compat<yamux::Stream>,
    live: Arc<AtomicUsize>,
}

impl Stream {
    fn new(inner: yamux::Stream, live: &Arc<AtomicUsize>) -> Stream {
        live.fetch_add(1, Ordering::SeqCst);
        Stream {
            inner: inner.compat(),
            live: live.clone(),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

enum Request {
    Open(oneshot::Sender<std::io::Result<Stream>>),
    Close,
}

/// Opens streams on the connection; cheap to clone.
#[derive(Clone)]
pub struct Opener(mpsc::UnboundedSender<Request>);

impl Opener {
    /// A new stream, or an error once the connection has ended.
    pub async fn open(&self) -> std::io::Result<Stream> {
        let (tx, rx) = oneshot::channel();
        self.0.send(Request::Open(tx)).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Close the connection (the other side sees every stream end).
    pub fn close(&self) {
        let _ = self.0.send(Request::Close);
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the session stream has ended",
    )
}

/// Start a connection over `io`: the opener, the streams the other side
/// opens, and the future that drives it (spawn it; it ends with the
/// connection, with the reason when it failed).
pub fn connect<T>(
    io: T,
    mode: Mode,
) -> (
    Opener,
    mpsc::UnboundedReceiver<Stream>,
    impl Future<Output = Result<(), String>>,
)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut config = yamux::Config::default();
    // The stream count first: yamux checks the window against it.
    // Frames of up to 64 KiB (yamux's default is 16 KiB): four times fewer
    // frames for bulk egress, at most 64 KiB ahead of another stream's message.
    config
        .set_max_num_streams(YAMUX_STREAMS)
        .set_max_connection_receive_window(Some(YAMUX_STREAMS * 256 * 1024))
        .set_split_send_size(64 * 1024);
    // Buffered both ways: yamux writes a frame's header and body separately
    // and flushes after each batch, so one write per batch (not two per
    // frame) crosses podman, conmon and the supervisor; reads the same.
    let io = tokio::io::BufStream::with_capacity(64 * 1024, 64 * 1024, io);
    let mut connection = yamux::Connection::new(io.compat(), config, mode);
    let (requests_tx, mut requests) = mpsc::unbounded_channel();
    let (inbound_tx, inbound) = mpsc::unbounded_channel();
    let live = Arc::new(AtomicUsize::new(0));
    let drive = async move {
        let mut pending: Option<oneshot::Sender<std::io::Result<Stream>>> = None;
        let mut closing = false;
        let mut requests_open = true;
        std::future::poll_fn(move |cx| {
            loop {
                if closing {
                    return match connection.poll_close(cx) {
                        Poll::Ready(result) => Poll::Ready(result.map_err(|e| e.to_string())),
                        Poll::Pending => Poll::Pending,
                    };
                }
                let mut progressed = false;
                if pending.is_none() && requests_open {
                    match requests.poll_recv(cx) {
                        Poll::Ready(Some(Request::Open(tx))) => pending = Some(tx),
                        Poll::Ready(Some(Request::Close)) => {
                            closing = true;
                            continue;
                        }
                        // Every opener is gone; the connection goes on for the
                        // streams already open.
                        Poll::Ready(None) => requests_open = false,
                        Poll::Pending => {}
                    }
                }
                if let Some(tx) = pending.take() {
                    if live.load(Ordering::SeqCst) >= MAX_STREAMS {
                        let _ = tx.send(Err(std::io::Error::other(format!(
                            "the session stream has {MAX_STREAMS} streams open, its limit"
                        ))));
                        progressed = true;
                    } else {
                        match connection.poll_new_outbound(cx) {
                            Poll::Ready(stream) => {
                                let _ = tx.send(
                                    stream
                                        .map(|s| Stream::new(s, &live))
                                        .map_err(|e| std::io::Error::other(e.to_string())),
                                );
                                progressed = true;
                            }
                            Poll::Pending => pending = Some(tx),
                        }
                    }
                }
                match connection.poll_next_inbound(cx) {
                    Poll::Ready(Some(Ok(stream))) => {
                        // Nobody listening: the stream is dropped (reset).
                        let _ = inbound_tx.send(Stream::new(stream, &live));
                        progressed = true;
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.to_string())),
                    Poll::Ready(None) => return Poll::Ready(Ok(())),
                    Poll::Pending => {}
                }
                if !progressed {
                    return Poll::Pending;
                }
            }
        })
        .await
    };
    (Opener(requests_tx), inbound, drive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn streams_both_ways_and_the_end_of_the_connection() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (open_a, mut inbound_a, drive_a) = connect(a, Mode::Client);
        let (open_b, mut inbound_b, drive_b) = connect(b, Mode::Server);
        let driven_a = tokio::spawn(drive_a);
        tokio::spawn(drive_b);

        let mut s = open_a.open().await.expect("open");
        s.write_all(b"ping").await.expect("write");
        s.flush().await.expect("flush");
        let mut t = inbound_b.recv().await.expect("inbound");
        let mut buf = [0u8; 4];
        t.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");

        // More than a stream's window: the writer waits for the reader.
        let mut u = open_b.open().await.expect("open back");
        let writer = tokio::spawn(async move {
            u.write_all(&vec![7u8; 1 << 20]).await.expect("a MiB");
            u.shutdown().await.expect("close");
        });
        let mut v = inbound_a.recv().await.expect("inbound back");
        let mut got = Vec::new();
        v.read_to_end(&mut got).await.expect("read to end");
        assert_eq!(got.len(), 1 << 20);
        writer.await.expect("writer");

        // At the limit an open fails and the connection goes on.
        let mut held = Vec::new();
        while let Ok(s) = open_a.open().await {
            held.push(s);
            assert!(held.len() <= MAX_STREAMS, "past the limit");
        }
        held.pop();
        let mut again = open_a.open().await.expect("a stream once one is let go");
        again.write_all(b"still").await.expect("write");
        again.flush().await.expect("flush");
        drop(held);
        drop(again);
        // Let a's resets of the dropped streams reach b before b goes.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;

        open_b.close();
        let ended = driven_a.await.expect("join");
        assert!(ended.is_ok(), "{ended:?}");
        assert!(open_a.open().await.is_err(), "no stream after the end");
    }
}
