//! mcpod's own stdin and stdout, as the agent's connection, without a
//! thread hop per message where the kernel allows it.
//!
//! rmcp's `stdio_pipes` makes pipes non-blocking and falls back to tokio's
//! blocking stdio (each read and each write handed to a thread of its pool)
//! for anything else. Clients on node (Claude Code, Gemini CLI, the
//! Inspector, VS Code) give their servers UNIX sockets for stdio (libuv's
//! socketpairs), so they got the thread hop both ways. A stream socket is
//! taken here as a tokio `UnixStream` on a duplicate of the descriptor; its
//! reads and writes are the same system calls a pipe's are.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use tokio::io::{AsyncRead, AsyncWrite};

pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// mcpod's stdin and stdout.
pub fn stdio() -> (Reader, Writer) {
    if let (Some(read), Some(write)) = (stream_socket(0), stream_socket(1)) {
        tracing::debug!("stdio: non-blocking stream sockets");
        return (Box::new(read), Box::new(write));
    }
    let (read, write) = rmcp::transport::io::stdio_pipes();
    (Box::new(read), Box::new(write))
}

/// `fd` as a non-blocking tokio stream, when it is a stream socket.
///
/// Unlike a pipe, a socket cannot be reopened through /proc for an open
/// file description of its own, so `O_NONBLOCK` is set on the one `fd`
/// shares: nothing else in mcpod reads its stdin or writes its stdout, and
/// the children it spawns never inherit either.
fn stream_socket(fd: RawFd) -> Option<tokio::net::UnixStream> {
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `kind` and `len` are valid for writes of their sizes; a
    // descriptor that is not a socket only makes the call fail.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&raw mut kind).cast(),
            &raw mut len,
        )
    };
    if got != 0 || kind != libc::SOCK_STREAM {
        return None;
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that nothing else owns.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return None;
    }
    // SAFETY: `dup` is open and owned only here.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    let stream = std::os::unix::net::UnixStream::from(owned);
    stream.set_nonblocking(true).ok()?;
    tokio::net::UnixStream::from_std(stream).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_socket_is_taken_and_a_pipe_or_file_is_not() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().expect("pair");
        let mut stream = stream_socket(ours.as_raw_fd()).expect("a stream socket");
        std::io::Write::write_all(&mut theirs, b"ping\n").expect("write");
        let mut got = [0u8; 5];
        stream.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping\n");
        stream.write_all(b"pong\n").await.expect("write");
        let mut back = [0u8; 5];
        std::io::Read::read_exact(&mut theirs, &mut back).expect("read");
        assert_eq!(&back, b"pong\n");

        let file = tempfile::tempfile().expect("file");
        assert!(stream_socket(file.as_raw_fd()).is_none());
        let datagram = std::os::unix::net::UnixDatagram::unbound().expect("datagram");
        assert!(stream_socket(datagram.as_raw_fd()).is_none());
    }
}
