//! One egress connection's relay: both ways at once, the bytes counted as
//! they go (so a relay that ends in an error still says what went through),
//! and ended when its session ends. A connection on the session stream is
//! copied through mcpod's buffers ([`relay`]); one handed out of the
//! container as a socket is moved in the kernel ([`relay_sockets`]).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Each direction's relay buffer (tokio's default of 8 KiB costs a quarter
/// of the throughput here).
const RELAY_BUFFER: usize = 64 * 1024;

/// What a relay carried, and how it ended.
pub struct Relayed {
    /// From the session to the destination.
    pub out: u64,
    /// From the destination to the session.
    pub back: u64,
    pub end: String,
}

/// How a relay ended when its session ended.
pub const SESSION_ENDED: &str = "the session ended";

/// Relay between `client` (the session's stream) and `tcp` until both
/// sides have closed, either fails, or `ending` is cancelled.
pub async fn relay<C>(client: C, mut tcp: TcpStream, ending: &CancellationToken) -> Relayed
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let (mut out, mut back) = (0u64, 0u64);
    let (client_read, client_write) = tokio::io::split(client);
    let (tcp_read, tcp_write) = tcp.split();
    let end = {
        let both = async {
            tokio::try_join!(
                pump(client_read, tcp_write, &mut out),
                pump(tcp_read, client_write, &mut back)
            )
        };
        tokio::select! {
            done = both => match done {
                Ok(_) => "closed".to_string(),
                // The session's stream breaks as the session ends.
                Err(_) if ending.is_cancelled() => SESSION_ENDED.to_string(),
                Err(e) => format!("error: {e}"),
            },
            () = ending.cancelled() => SESSION_ENDED.to_string(),
        }
    };
    Relayed { out, back, end }
}

/// Relay between two sockets (a connection handed out of the container and
/// its destination) in the kernel: each way through a pipe with `splice(2)`,
/// so no byte is copied into mcpod's memory. Ends as [`relay`] does.
pub async fn relay_sockets(
    client: TcpStream,
    tcp: TcpStream,
    ending: &CancellationToken,
) -> Relayed {
    let (mut out, mut back) = (0u64, 0u64);
    let end = {
        let both = async {
            tokio::try_join!(
                splice_pump(&client, &tcp, &mut out),
                splice_pump(&tcp, &client, &mut back)
            )
        };
        tokio::select! {
            done = both => match done {
                Ok(_) => "closed".to_string(),
                Err(e) => format!("error: {e}"),
            },
            () = ending.cancelled() => SESSION_ENDED.to_string(),
        }
    };
    Relayed { out, back, end }
}

/// The most bytes one `splice` moves.
const SPLICE_CHUNK: usize = 1 << 20;

/// Move `from`'s bytes to `to` through a pipe of our own, adding each move
/// to `count`; at `from`'s end, end `to`'s writing side.
async fn splice_pump(from: &TcpStream, to: &TcpStream, count: &mut u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;
    let (pipe_read, pipe_write) = crate::engine::fd::pipe()?;
    // SAFETY: fcntl on descriptors we own; a bigger pipe is only faster, so
    // a refusal (past the system's pipe-max-size) is fine.
    unsafe {
        for fd in [pipe_read.as_raw_fd(), pipe_write.as_raw_fd()] {
            libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
        }
        libc::fcntl(
            pipe_write.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            SPLICE_CHUNK as libc::c_int,
        );
    }
    let splice = |source: i32, sink: i32, len: usize| {
        // SAFETY: splice between two descriptors we hold, no offsets.
        let n = unsafe {
            libc::splice(
                source,
                std::ptr::null_mut(),
                sink,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    };
    loop {
        // The pipe is empty here: a would-block is the socket's.
        let n = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || {
                splice(from.as_raw_fd(), pipe_write.as_raw_fd(), SPLICE_CHUNK)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            // SAFETY: shutdown of a socket we hold.
            unsafe { libc::shutdown(to.as_raw_fd(), libc::SHUT_WR) };
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                splice(pipe_read.as_raw_fd(), to.as_raw_fd(), left)
            }) {
                Ok(k) => {
                    left -= k;
                    *count += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Copy `from` to `to`, adding each write to `count`; at `from`'s end, end
/// `to`'s writing side.
async fn pump<R, W>(mut from: R, mut to: W, count: &mut u64) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; RELAY_BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        let mut sent = 0;
        while sent < n {
            let k = to.write(&buf[sent..n]).await?;
            if k == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            sent += k;
            *count += k as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let to = TcpStream::connect(listener.local_addr().expect("addr"));
        let (a, b) = tokio::join!(to, listener.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    #[tokio::test]
    async fn bytes_are_counted_when_the_destination_resets() {
        for spliced in [false, true] {
            resets(spliced).await;
        }
    }

    async fn resets(spliced: bool) {
        let (session_side, mut container) = pair().await;
        let (tcp, destination) = pair().await;
        let ending = CancellationToken::new();
        let relaying = tokio::spawn(async move {
            if spliced {
                relay_sockets(session_side, tcp, &ending).await
            } else {
                relay(session_side, tcp, &ending).await
            }
        });
        container.write_all(&[1u8; 5000]).await.expect("write");
        let mut destination = destination;
        let mut got = vec![0u8; 5000];
        destination.read_exact(&mut got).await.expect("read");
        // A reset (SO_LINGER 0), as a server that fails does.
        let std = destination.into_std().expect("std");
        let socket = socket_of(&std);
        socket_linger_zero(socket);
        drop(std);
        let relayed = relaying.await.expect("join");
        assert_eq!(relayed.out, 5000);
        assert!(relayed.end.starts_with("error:"), "{}", relayed.end);
    }

    #[tokio::test]
    async fn a_relay_ends_when_its_session_ends() {
        for spliced in [false, true] {
            let (session_side, _container) = pair().await;
            let (tcp, _destination) = pair().await;
            let ending = CancellationToken::new();
            let end = ending.clone();
            let relaying = tokio::spawn(async move {
                if spliced {
                    relay_sockets(session_side, tcp, &end).await
                } else {
                    relay(session_side, tcp, &end).await
                }
            });
            ending.cancel();
            let relayed = relaying.await.expect("join");
            assert_eq!(relayed.end, SESSION_ENDED);
        }
    }

    /// Both ways at once, more than a pipe holds, and each side's end
    /// passed on: every byte arrives in order and is counted.
    #[tokio::test]
    async fn a_spliced_relay_carries_every_byte_both_ways() {
        let (session_side, container) = pair().await;
        let (tcp, destination) = pair().await;
        let ending = CancellationToken::new();
        let relaying = tokio::spawn(async move { relay_sockets(session_side, tcp, &ending).await });
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let echo = tokio::spawn(async move {
            let (mut r, mut w) = destination.into_split();
            tokio::io::copy(&mut r, &mut w).await.expect("echo");
            w.shutdown().await.expect("shutdown");
        });
        let (mut r, mut w) = container.into_split();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.expect("write");
            w.shutdown().await.expect("shutdown");
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.expect("read");
        writer.await.expect("writer");
        echo.await.expect("echo");
        let relayed = relaying.await.expect("join");
        assert!(got == data, "the bytes differ");
        assert_eq!((relayed.out, relayed.back), (5_000_000, 5_000_000));
        assert_eq!(relayed.end, "closed");
    }

    fn socket_of(s: &std::net::TcpStream) -> i32 {
        use std::os::fd::AsRawFd;
        s.as_raw_fd()
    }

    fn socket_linger_zero(fd: i32) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket and a linger of the size given.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
}
