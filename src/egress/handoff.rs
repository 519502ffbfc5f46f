//! mcpod's end of a session's hand-off socket (see the supervisor's
//! `handoff.rs`): each connection let through on a local engine waits here,
//! under a random token its verdict carried, for the client's socket the
//! supervisor sends back with that token; the gate then relays it to the
//! destination it dialled, one copy instead of two and no multiplexer. For
//! a server's intercepted `connect` to a port forward, mcpod's dialled
//! socket goes the other way, under the token the supervisor's offer
//! carried ([`Handoffs::hand_in`]).
//!
//! What comes back is as untrusted as the container: a message is read
//! whole into a bounded buffer, a socket that is not a connected TCP socket
//! is refused, one under a token nothing waits for (never given, already
//! used, or given up on) is closed. Nothing is queued: a token waits only
//! while its connection does, so what waits is bounded by the session
//! stream's own limit on connections.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcpod_supervisor::handoff::{self, Channel, Token, Waiting};
use tokio_util::sync::CancellationToken;

/// How long a connection waits for its socket after its verdict.
pub const WAIT: Duration = Duration::from_secs(5);

/// A connection's socket and what goes to the destination before its bytes.
pub struct Socket {
    pub stream: tokio::net::TcpStream,
    pub leftover: Vec<u8>,
}

/// A session's hand-off socket and the connections waiting on it.
pub struct Handoffs {
    waiting: Arc<Waiting<Socket>>,
    channel: Arc<Channel>,
}

/// One connection's wait; given up (and its token forgotten) when dropped.
pub type Pending = handoff::Pending<Socket>;

impl Handoffs {
    /// Take sockets from `fd` until the session ends (`ending`) or the
    /// supervisor closes its end.
    pub fn start(
        session: &str,
        fd: OwnedFd,
        ending: CancellationToken,
    ) -> std::io::Result<Handoffs> {
        let channel = Arc::new(Channel::new(fd)?);
        let waiting: Arc<Waiting<Socket>> = Arc::default();
        tokio::spawn(receive(
            session.to_string(),
            channel.clone(),
            waiting.clone(),
            ending,
        ));
        Ok(Handoffs { waiting, channel })
    }

    /// A token for a connection let through, and its wait.
    pub fn expect(&self) -> std::io::Result<Pending> {
        self.waiting.expect()
    }

    /// Hand `socket`, mcpod's dialled connection, into the container under
    /// the supervisor's `token` (see the supervisor's `intercept.rs`).
    pub async fn hand_in(
        &self,
        token: &Token,
        socket: &tokio::net::TcpStream,
    ) -> std::io::Result<()> {
        self.channel.send(token, &[], socket.as_fd()).await
    }
}

/// Route each message to the connection its token names.
async fn receive(
    session: String,
    channel: Arc<Channel>,
    waiting: Arc<Waiting<Socket>>,
    ending: CancellationToken,
) {
    let refused = AtomicU64::new(0);
    let refuse = |why: &str| {
        // One line for the first, then only a count at the end.
        if refused.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!("session {session}: refused a hand-off from its supervisor: {why}");
        }
    };
    loop {
        let handed = tokio::select! {
            handed = channel.recv() => handed,
            () = ending.cancelled() => break,
        };
        let handed = match handed {
            Ok(Some(handed)) => handed,
            Ok(None) => break,
            Err(e) => {
                refuse(&format!("reading the hand-off socket: {e}"));
                break;
            }
        };
        let socket = match handed
            .socket
            .and_then(|fd| handoff::check_tcp(fd.as_fd()).map(|()| fd))
            .and_then(|fd| {
                let std = std::net::TcpStream::from(fd);
                std.set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpStream::from_std(std))
                    .map_err(|e| format!("the socket: {e}"))
            }) {
            Ok(socket) => socket,
            Err(why) => {
                refuse(&why);
                continue;
            }
        };
        let socket = Socket {
            stream: socket,
            leftover: handed.leftover,
        };
        if waiting.deliver(&handed.token, socket).is_err() {
            refuse("a socket under a token no connection waits for");
        }
    }
    let n = refused.load(Ordering::Relaxed);
    if n > 1 {
        tracing::warn!("session {session}: refused {n} hand-offs from its supervisor in all");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn tcp() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let to = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"));
        let (a, b) = tokio::join!(to, listener.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    /// A socket reaches the connection its token names and no other; a
    /// token given up on is forgotten, and a socket sent under it is closed.
    #[tokio::test]
    async fn a_socket_reaches_only_the_connection_its_token_names_and_only_once() {
        let (ours, theirs) = handoff::pair().expect("pair");
        let ending = CancellationToken::new();
        let handoffs = Handoffs::start("s1", ours, ending.clone()).expect("start");
        let container = Channel::new(theirs).expect("channel");
        let (first, second) = (handoffs.expect().expect("a"), handoffs.expect().expect("b"));
        let (client, mut server) = tcp().await;
        container
            .send(&second.token, b"hi", client.as_fd())
            .await
            .expect("send");
        drop(client);
        let token = first.token;
        let got = second.wait(WAIT).await.expect("the second's socket");
        assert_eq!(got.leftover, b"hi");
        let mut stream = got.stream;
        stream.write_all(b"x").await.expect("write");
        let mut one = [0u8; 1];
        server.read_exact(&mut one).await.expect("read");
        // Given up on (dropped): its token is forgotten, its socket closed.
        drop(first);
        let (late, mut late_peer) = tcp().await;
        container
            .send(&token, b"", late.as_fd())
            .await
            .expect("send");
        drop(late);
        let read = tokio::time::timeout(Duration::from_secs(5), late_peer.read(&mut one)).await;
        assert!(matches!(read, Ok(Ok(0))), "{read:?}");
        assert!(handoffs.waiting.is_empty());
    }

    #[tokio::test]
    async fn a_connection_whose_socket_never_comes_is_told_why() {
        let (ours, _theirs) = handoff::pair().expect("pair");
        let handoffs = Handoffs::start("s1", ours, CancellationToken::new()).expect("start");
        let why = handoffs
            .expect()
            .expect("a")
            .wait(Duration::from_millis(50))
            .await
            .err()
            .expect("no socket");
        assert!(why.contains("was not handed over"), "{why}");
    }
}
