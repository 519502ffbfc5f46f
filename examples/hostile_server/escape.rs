//! `escape_forward`: what a server that turned hostile can do with the
//! socket a port forward hands it, when that socket is mcpod's own dialled
//! connection of the host's network namespace: dissolve it and connect it
//! elsewhere, race another thread for it, or connect by `io_uring` or TCP
//! Fast Open. Replies with JSON, one field per attempt.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// `SO_NETNS_COOKIE`.
const SO_NETNS_COOKIE: libc::c_int = 71;

fn errno() -> String {
    std::io::Error::last_os_error().to_string()
}

fn cookie(fd: RawFd) -> Option<u64> {
    let mut value = 0u64;
    let mut len = 8 as libc::socklen_t;
    // SAFETY: a u64 buffer with its length.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut value as *mut u64).cast(),
            &mut len,
        )
    };
    (got == 0).then_some(value)
}

fn sockaddr(to: std::net::SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*to.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// `connect(fd, to)`: "ok" or the error.
fn connect_to(fd: RawFd, to: std::net::SocketAddrV4) -> String {
    let address = sockaddr(to);
    // SAFETY: a live sockaddr_in with its size.
    let got = unsafe {
        libc::connect(
            fd,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if got == 0 { "ok".into() } else { errno() }
}

/// `connect(fd, AF_UNSPEC)`: dissolves a TCP socket where it is allowed.
fn dissolve(fd: RawFd) -> String {
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC.
    let mut address: libc::sockaddr = unsafe { std::mem::zeroed() };
    address.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    let got = unsafe {
        libc::connect(
            fd,
            &address,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if got == 0 { "ok".into() } else { errno() }
}

fn tcp_socket() -> OwnedFd {
    // SAFETY: a new socket, owned from here.
    unsafe { OwnedFd::from_raw_fd(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0)) }
}

/// Whether a unix socket connects in the container: abstract, and by a path
/// relative to the working directory when `/tmp` is writable.
fn unix_sockets() -> String {
    use std::os::linux::net::SocketAddrExt;
    let abstract_name = format!("mcpod-escape-{}", std::process::id());
    let abstract_ok = std::os::unix::net::SocketAddr::from_abstract_name(&abstract_name)
        .and_then(|a| std::os::unix::net::UnixListener::bind_addr(&a).map(|l| (l, a)))
        .and_then(|(l, a)| std::os::unix::net::UnixStream::connect_addr(&a).map(|s| (l, s)))
        .map(|_| "ok".to_string())
        .unwrap_or_else(|e| e.to_string());
    let path_ok = std::env::set_current_dir("/tmp")
        .and_then(|()| {
            let name = format!("escape-{}.sock", std::process::id());
            let listener = std::os::unix::net::UnixListener::bind(&name)?;
            let stream = std::os::unix::net::UnixStream::connect(&name);
            let _ = std::fs::remove_file(&name);
            stream.map(|s| (listener, s))
        })
        .map(|_| "ok".to_string())
        .unwrap_or_else(|e| e.to_string());
    format!("\"unix_abstract\":{abstract_ok:?},\"unix_relative_path\":{path_ok:?}")
}

/// Two threads for one second: one swaps the handed socket and a socket of
/// the container's own in and out of one descriptor, the other connects that
/// descriptor with `AF_UNSPEC` and to `escape`. How many of those connects
/// said ok to `escape`.
fn race(handed: RawFd, escape: std::net::SocketAddrV4) -> usize {
    let local = tcp_socket();
    let slot = tcp_socket();
    let slot_fd = slot.as_raw_fd();
    let local_fd = local.as_raw_fd();
    let until = Instant::now() + Duration::from_secs(1);
    let swapper = std::thread::spawn(move || {
        while Instant::now() < until {
            // SAFETY: dup2 onto a descriptor this function owns.
            unsafe {
                libc::dup2(handed, slot_fd);
                libc::dup2(local_fd, slot_fd);
            }
        }
    });
    let mut escaped = 0;
    while Instant::now() < until {
        dissolve(slot_fd);
        if connect_to(slot_fd, escape) == "ok" {
            escaped += 1;
        }
    }
    let _ = swapper.join();
    escaped
}

pub fn escape_forward(to: &str, escape: &str) -> String {
    let (Ok(to), Ok(escape)) = (
        to.parse::<std::net::SocketAddrV4>(),
        escape.parse::<std::net::SocketAddrV4>(),
    ) else {
        return "error: `to` and `escape` are IPv4 HOST:PORT".into();
    };
    let mut stream = match std::net::TcpStream::connect(to) {
        Ok(s) => s,
        Err(e) => return format!("error: connecting to {to}: {e}"),
    };
    let fd = stream.as_raw_fd();
    let own = cookie(tcp_socket().as_raw_fd());
    let handed_in = cookie(fd).is_some() && cookie(fd) != own;
    let echoed = stream
        .write_all(b"ping")
        .and_then(|()| {
            let mut got = [0u8; 4];
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.read_exact(&mut got).map(|()| got == *b"ping")
        })
        .unwrap_or(false);
    let unspec = dissolve(fd);
    let reconnect = connect_to(fd, escape);
    let raced = race(fd, escape);
    // SAFETY: a syscall that only reads its arguments (a null params
    // pointer: ENOSYS when filtered, EFAULT otherwise).
    let uring = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, std::ptr::null_mut::<u8>()) };
    let uring = if uring < 0 { errno() } else { "ok".into() };
    let fresh = tcp_socket();
    let address = sockaddr(escape);
    // SAFETY: a live sockaddr_in with its size.
    let sent = unsafe {
        libc::sendto(
            fresh.as_raw_fd(),
            b"x".as_ptr().cast(),
            1,
            libc::MSG_FASTOPEN,
            (&address as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    let fastopen = if sent < 0 { errno() } else { "ok".into() };
    format!(
        "{{\"handed_in\":{handed_in},\"echoed\":{echoed},\"unspec\":{unspec:?},\"reconnect\":{reconnect:?},\"raced_escapes\":{raced},\"io_uring\":{uring:?},\"fastopen\":{fastopen:?},{}}}",
        unix_sockets()
    )
}
