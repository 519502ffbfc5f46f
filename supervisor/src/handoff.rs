//! Handing an egress connection's socket out of the container, so that
//! mcpod relays it once instead of the supervisor and mcpod each copying it
//! through the session stream; and mcpod's dialled socket in, for a port
//! forward.
//!
//! On a local engine mcpod passes a second socket in, a unix
//! `SOCK_SEQPACKET` socket at [`HANDOFF_FD`]. When mcpod lets a connection
//! through, its [`Verdict`](crate::protocol::Verdict) carries a token; the
//! supervisor answers the client (a CONNECT's `200`), then sends one message
//! on that socket: the token, the bytes it had already read past the request
//! head (or the rewritten head of a plain HTTP request), and the client's
//! socket as `SCM_RIGHTS`. mcpod takes the socket for the connection that
//! token names and relays it to the destination it dialled.
//!
//! A socket handed out belongs to the container's namespace (`--network
//! none`: its loopback only), and mcpod only reads and writes it, after
//! checking that it is a connected TCP socket ([`check_tcp`]). The other
//! way, mcpod's dialled socket sent in for a server's intercepted `connect`
//! to a port forward (see `intercept.rs` in the supervisor), comes under the
//! token the supervisor put in its offer, and what waits for it is a
//! [`Waiting`].
//!
//! A message is one `recvmsg`: the token, at most [`MAX_LEFTOVER`] bytes, one
//! descriptor. Anything else (no descriptor, several, a longer message, a
//! descriptor that is not a connected TCP socket) is refused and every
//! descriptor it carried is closed.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

/// The descriptor the hand-off socket comes in on, beside
/// [`STREAM_FD`](crate::protocol::STREAM_FD).
pub const HANDOFF_FD: RawFd = 4;

/// The bytes of a token.
pub const TOKEN_LEN: usize = 16;

/// The most bytes a message carries after its token.
pub const MAX_LEFTOVER: usize = 64 * 1024;

/// Names one connection let through, between its verdict and its socket.
pub type Token = [u8; TOKEN_LEN];

/// The most descriptors one `recvmsg` takes in (the first is the message's;
/// any other is closed, and the message refused).
const MAX_FDS: usize = 8;

/// One end of the hand-off socket.
pub struct Channel {
    fd: AsyncFd<OwnedFd>,
}

/// What one message brought.
pub struct Handed {
    pub token: Token,
    pub leftover: Vec<u8>,
    /// The connection's socket, or why the message is refused.
    pub socket: Result<OwnedFd, String>,
}

/// A new token: random, so none can be guessed from another.
pub fn new_token() -> io::Result<Token> {
    let mut token = [0u8; TOKEN_LEN];
    // SAFETY: getrandom fills at most the buffer's length.
    let n = unsafe { libc::getrandom(token.as_mut_ptr().cast(), TOKEN_LEN, 0) };
    if n != TOKEN_LEN as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(token)
}

/// A token as lowercase hex, as a verdict carries it.
pub fn to_hex(token: &Token) -> String {
    token.iter().map(|b| format!("{b:02x}")).collect()
}

/// A token from a verdict's hex; `None` unless exactly [`TOKEN_LEN`] bytes.
pub fn from_hex(text: &str) -> Option<Token> {
    if text.len() != TOKEN_LEN * 2 || !text.is_ascii() {
        return None;
    }
    let mut token = [0u8; TOKEN_LEN];
    for (i, byte) in token.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(token)
}

/// A pair of connected hand-off sockets, close-on-exec: (mcpod's, the
/// container's).
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair fills two descriptors on success, which we then own.
    unsafe {
        if libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        ) == -1
        {
            return Err(io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// What waits for a message under a token: one value each, delivered once.
/// Nothing is queued: a token is known only while its [`Pending`] lives.
pub struct Waiting<T> {
    map: Arc<WaitMap<T>>,
}

type WaitMap<T> = Mutex<HashMap<Token, oneshot::Sender<T>>>;

/// One wait; its token is forgotten when it is dropped.
pub struct Pending<T> {
    pub token: Token,
    rx: oneshot::Receiver<T>,
    map: Arc<WaitMap<T>>,
}

impl<T> Default for Waiting<T> {
    fn default() -> Self {
        Waiting {
            map: Arc::default(),
        }
    }
}

impl<T> Waiting<T> {
    /// A new random token, and its wait.
    pub fn expect(&self) -> io::Result<Pending<T>> {
        let token = new_token()?;
        let (tx, rx) = oneshot::channel();
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, tx);
        Ok(Pending {
            token,
            rx,
            map: self.map.clone(),
        })
    }

    /// Give `value` to what waits under `token`; back if nothing does.
    pub fn deliver(&self, token: &Token, value: T) -> Result<(), T> {
        let waiter = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
        match waiter {
            Some(tx) => tx.send(value),
            None => Err(value),
        }
    }

    /// How many tokens wait.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Pending<T> {
    /// The value, or why it did not come `within`.
    pub async fn wait(mut self, within: Duration) -> Result<T, String> {
        match tokio::time::timeout(within, &mut self.rx).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err("the hand-off socket closed before the connection came".into()),
            Err(_) => Err(format!(
                "the connection was not handed over within {} ms",
                within.as_millis()
            )),
        }
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.token);
    }
}

/// An integer socket option of `fd` (`SOL_SOCKET`).
pub fn option(fd: BorrowedFd<'_>, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid descriptor, and an int-sized buffer with its length.
    let got = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if got == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Whether `fd` is a socket at all.
fn is_socket(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: fstat fills the zeroed struct for a valid descriptor.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) }) == 0
        && stat.st_mode & libc::S_IFMT == libc::S_IFSOCK
}

/// Why `fd` is not a connected TCP socket, if it is not.
pub fn check_tcp(fd: BorrowedFd<'_>) -> Result<(), String> {
    if !is_socket(fd) {
        return Err("the descriptor is not a socket".into());
    }
    let read = |name, what: &str| option(fd, name).map_err(|e| format!("its {what}: {e}"));
    let domain = read(libc::SO_DOMAIN, "domain")?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(format!("the socket is not an IP socket (domain {domain})"));
    }
    if read(libc::SO_TYPE, "type")? != libc::SOCK_STREAM
        || read(libc::SO_PROTOCOL, "protocol")? != libc::IPPROTO_TCP
    {
        return Err("the socket is not a TCP socket".into());
    }
    // SAFETY: a zeroed address buffer of the size given.
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    if unsafe {
        libc::getpeername(
            fd.as_raw_fd(),
            (&mut address as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    } == -1
    {
        return Err(format!(
            "the socket is not connected: {}",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

impl Channel {
    /// A channel on `fd`, which must be a unix `SOCK_SEQPACKET` socket.
    pub fn new(fd: OwnedFd) -> io::Result<Channel> {
        let kind = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
        if !is_socket(fd.as_fd()) {
            return Err(kind("not a socket"));
        }
        if option(fd.as_fd(), libc::SO_DOMAIN)? != libc::AF_UNIX
            || option(fd.as_fd(), libc::SO_TYPE)? != libc::SOCK_SEQPACKET
        {
            return Err(kind("not a unix SOCK_SEQPACKET socket"));
        }
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            if flags == -1
                || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) == -1
                || libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) == -1
            {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: an OwnedFd, kept open and unchanged for the AsyncFd's life.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(Channel { fd })
    }

    /// Send `token`, `leftover` and `socket` as one message.
    pub async fn send(
        &self,
        token: &Token,
        leftover: &[u8],
        socket: BorrowedFd<'_>,
    ) -> io::Result<()> {
        if leftover.len() > MAX_LEFTOVER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("more than {MAX_LEFTOVER} bytes to hand over"),
            ));
        }
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| {
                send_raw(
                    fd.get_ref().as_raw_fd(),
                    &[token, leftover],
                    &[socket.as_raw_fd()],
                )
            }) {
                Ok(sent) => return sent,
                Err(_would_block) => continue,
            }
        }
    }

    /// The next message; `Ok(None)` when the other end has closed.
    pub async fn recv(&self) -> io::Result<Option<Handed>> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_one(fd.get_ref().as_raw_fd())) {
                Ok(got) => return got,
                Err(_would_block) => continue,
            }
        }
    }
}

/// Room for [`MAX_FDS`] descriptors' control message, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; 64]);

/// Send `parts` as one message carrying `fds` (at most [`MAX_FDS`]).
fn send_raw(fd: RawFd, parts: &[&[u8]], fds: &[RawFd]) -> io::Result<()> {
    let mut iov: Vec<libc::iovec> = parts
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    // SAFETY: each iovec points at a live part of its length.
    unsafe { send_iov(fd, &mut iov, fds, libc::MSG_DONTWAIT) }
}

/// Send the buffers `iov` points at as one message carrying `fds` (at most
/// [`MAX_FDS`]), with `flags`; allocates nothing, so it is safe between
/// `fork` and `exec`.
///
/// # Safety
/// Each iovec points at a live buffer of its length; each of `fds` is open.
unsafe fn send_iov(
    fd: RawFd,
    iov: &mut [libc::iovec],
    fds: &[RawFd],
    flags: libc::c_int,
) -> io::Result<()> {
    let mut control = Control([0; 64]);
    let fds = &fds[..fds.len().min(MAX_FDS)];
    let bytes = std::mem::size_of_val(fds);
    // SAFETY: the message points at the caller's live buffers; the control
    // buffer holds one cmsghdr with at most MAX_FDS descriptors
    // (CMSG_SPACE(32) is 48 bytes, within its 64).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len();
        if !fds.is_empty() {
            msg.msg_control = control.0.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(bytes as u32) as usize;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), bytes);
        }
        if libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | flags) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Every descriptor `msg`'s control messages carry, each taken into an
/// `OwnedFd` once (so it is closed when not kept).
///
/// # Safety
/// `msg` is a message `recvmsg` just filled.
unsafe fn take_fds(msg: &libc::msghdr) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    // SAFETY: the control buffer as the kernel filled it, walked with the
    // CMSG macros; each descriptor is read unaligned and owned once.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg);
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let raw = std::ptr::read_unaligned(
                        data.add(i * std::mem::size_of::<RawFd>()).cast::<RawFd>(),
                    );
                    if raw >= 0 {
                        fds.push(OwnedFd::from_raw_fd(raw));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    fds
}

/// Send `fds` (at most [`MAX_FDS`]) with one byte, without allocating: safe
/// between `fork` and `exec`.
///
/// # Safety
/// `to` is a unix socket; each of `fds` is open.
pub unsafe fn send_fds(to: RawFd, fds: &[RawFd]) -> io::Result<()> {
    let mut byte = [b'F'];
    let mut iov = [libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    }];
    // SAFETY: one live byte; the caller's descriptors are open.
    unsafe { send_iov(to, &mut iov, fds, 0) }
}

/// The one descriptor a message [`send_fds`] sent carries (close-on-exec);
/// a message with none or several is an error, and what it carried is closed.
pub fn recv_fd(from: RawFd) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = Control([0; 64]);
    // SAFETY: the message points at live buffers of the lengths given.
    let mut fds = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len();
        if libc::recvmsg(from, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) == -1 {
            return Err(io::Error::last_os_error());
        }
        take_fds(&msg)
    };
    match (fds.pop(), fds.is_empty()) {
        (Some(fd), true) => Ok(fd),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the message does not carry exactly one descriptor",
        )),
    }
}

fn recv_one(fd: RawFd) -> io::Result<Option<Handed>> {
    let mut data = vec![0u8; TOKEN_LEN + MAX_LEFTOVER];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = Control([0; 64]);
    let mut fds: Vec<OwnedFd>;
    // SAFETY: the message points at live buffers of the lengths given.
    let (n, flags) = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control
            .0
            .len()
            .min(libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) as usize);
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT);
        if n == -1 {
            return Err(io::Error::last_os_error());
        }
        fds = take_fds(&msg);
        (n as usize, msg.msg_flags)
    };
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    let mut token = [0u8; TOKEN_LEN];
    let refused = if flags & libc::MSG_TRUNC != 0 {
        Some(format!(
            "the message is longer than {} bytes",
            TOKEN_LEN + MAX_LEFTOVER
        ))
    } else if flags & libc::MSG_CTRUNC != 0 || fds.len() > 1 {
        Some("the message carries more than one descriptor".to_string())
    } else if n < TOKEN_LEN {
        Some("the message is shorter than a token".to_string())
    } else if fds.is_empty() {
        Some("the message carries no descriptor".to_string())
    } else {
        None
    };
    if n >= TOKEN_LEN {
        token.copy_from_slice(&data[..TOKEN_LEN]);
    }
    let socket = match refused {
        Some(why) => Err(why),
        None => fds.pop().ok_or_else(|| "no descriptor".to_string()),
    };
    data.truncate(n.min(data.len()));
    let leftover = data.split_off(TOKEN_LEN.min(data.len()));
    Ok(Some(Handed {
        token,
        leftover,
        socket,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn channels() -> (Channel, Channel) {
        let (a, b) = pair().expect("pair");
        (Channel::new(a).expect("a"), Channel::new(b).expect("b"))
    }

    /// A connected TCP pair on loopback: (client, accepted).
    fn tcp() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        (client, listener.accept().expect("accept").0)
    }

    /// Whether `peer`'s other end is closed (reads end-of-stream).
    fn closed(peer: &mut std::net::TcpStream) -> bool {
        peer.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        matches!(peer.read(&mut [0u8; 1]), Ok(0))
    }

    #[tokio::test]
    async fn a_socket_arrives_under_its_token_with_its_leftover() {
        let (container, mcpod) = channels();
        let (client, mut server) = tcp();
        let token = [7u8; TOKEN_LEN];
        container
            .send(&token, b"GET / HTTP/1.1\r\n\r\n", client.as_fd())
            .await
            .expect("send");
        drop(client);
        let handed = mcpod.recv().await.expect("recv").expect("a message");
        assert_eq!(handed.token, token);
        assert_eq!(handed.leftover, b"GET / HTTP/1.1\r\n\r\n");
        let socket = handed.socket.expect("a socket");
        check_tcp(socket.as_fd()).expect("a connected TCP socket");
        let mut socket = std::net::TcpStream::from(socket);
        socket.write_all(b"through").expect("write");
        let mut got = [0u8; 7];
        server.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"through");
        drop(container);
        assert!(mcpod.recv().await.expect("eof").is_none());
    }

    #[tokio::test]
    async fn a_message_that_is_not_one_token_and_one_descriptor_is_refused_and_closed() {
        let (container, mcpod) = channels();
        let raw = container.fd.get_ref().as_raw_fd();
        let (a, mut a_peer) = tcp();
        let (b, mut b_peer) = tcp();
        let token = [1u8; TOKEN_LEN];
        // Two descriptors in one message: neither is kept.
        send_raw(raw, &[&token], &[a.as_raw_fd(), b.as_raw_fd()]).expect("send");
        drop((a, b));
        let handed = mcpod.recv().await.expect("recv").expect("a message");
        assert!(handed.socket.is_err());
        drop(handed);
        assert!(closed(&mut a_peer) && closed(&mut b_peer));
        // No descriptor; a short token; a message past the bound.
        send_raw(raw, &[&token], &[]).expect("send");
        let (c, mut c_peer) = tcp();
        send_raw(raw, &[b"short"], &[c.as_raw_fd()]).expect("send");
        drop(c);
        let long = vec![0u8; TOKEN_LEN + MAX_LEFTOVER + 1];
        let (d, mut d_peer) = tcp();
        send_raw(raw, &[&long], &[d.as_raw_fd()]).expect("send");
        drop(d);
        for why in ["no descriptor", "shorter than a token", "longer than"] {
            let handed = mcpod.recv().await.expect("recv").expect("a message");
            let refused = handed.socket.expect_err("refused");
            assert!(refused.contains(why), "{refused}");
        }
        assert!(closed(&mut c_peer) && closed(&mut d_peer));
    }

    #[test]
    fn tokens_go_to_hex_and_back_and_nothing_else_parses() {
        let token = new_token().expect("token");
        assert_ne!(token, new_token().expect("another"));
        assert_eq!(from_hex(&to_hex(&token)), Some(token));
        for bad in ["", "00", &"g".repeat(32), &"0".repeat(34), &"é".repeat(16)] {
            assert_eq!(from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_a_connected_tcp_socket_passes_the_check() {
        let (read, _write) = std::os::unix::net::UnixStream::pair().expect("unix");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let file = std::fs::File::open("/dev/null").expect("file");
        for (fd, why) in [
            (read.as_fd(), "not an IP socket"),
            (listener.as_fd(), "not connected"),
            (udp.as_fd(), "not a TCP socket"),
            (file.as_fd(), "not a socket"),
        ] {
            let refused = check_tcp(fd).expect_err(why);
            assert!(refused.contains(why), "{refused}");
        }
        let (client, _server) = tcp();
        assert_eq!(check_tcp(client.as_fd()), Ok(()));
    }

    #[test]
    fn a_channel_is_made_only_on_a_seqpacket_unix_socket() {
        let (stream, _other) = std::os::unix::net::UnixStream::pair().expect("unix");
        assert!(Channel::new(OwnedFd::from(stream)).is_err());
        let (a, _b) = pair().expect("pair");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async { assert!(Channel::new(a).is_ok()) });
    }
}
