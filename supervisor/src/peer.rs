//! Which server opened a connection to a proxy port, so that mcpod's audit
//! names the server that really connected, not the port's owner. At accept,
//! while the connection is open:
//!
//! 1. the connecting socket's inode: the socket whose local end is the
//!    peer's address and whose remote end is the proxy's, asked of the
//!    kernel by that exact address pair (sock_diag netlink, a hash lookup),
//!    else found in `/proc/net/tcp` (or `tcp6`: an IPv6 socket connected to
//!    `::ffff:127.0.0.1`), which lists every bucket of the host's table (ms);
//! 2. the processes holding it: those whose `/proc/PID/fd` has a link to
//!    `socket:[INODE]` (same uid as the supervisor; a process that made
//!    itself non-dumpable cannot be read, and is not found);
//! 3. each holder's server: its parents (`/proc/PID/stat`) up to a server
//!    the supervisor started, else its session, for an orphan (servers are
//!    session leaders and a process cannot join another session).
//!
//! The scan covers the supervisor's PID namespace (the container's) and is
//! bounded: past [`MAX_PROCESSES`] processes or [`MAX_FDS`] descriptors (or
//! [`MAX_SOCKETS`] sockets) it stops and the connection is not attributed.
//! One scan runs at a time, on a blocking thread.

use std::collections::{BTreeSet, HashMap};
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use mcpod_supervisor::protocol::Peer;

/// The most processes one lookup looks through (a session's pids limit is
/// at most 1024 too).
pub const MAX_PROCESSES: usize = 1024;
/// The most descriptors (all processes together) one lookup reads: a
/// readlink costs ~14 us here, so a lookup takes at most ~60 ms.
pub const MAX_FDS: usize = 4096;
/// The most sockets of `/proc/net/tcp` and `tcp6` one lookup reads.
pub const MAX_SOCKETS: usize = 64 * 1024;
/// The most parents walked up from a holder.
const MAX_DEPTH: usize = 256;

/// One lookup at a time: a flood of connections queues here, not in threads.
static SCANS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// The live servers the supervisor started: pid → name.
#[derive(Clone, Default)]
pub struct Servers(Arc<Mutex<HashMap<i32, String>>>);

impl Servers {
    pub fn insert(&self, pid: i32, name: &str) {
        self.lock().insert(pid, name.to_string());
    }

    pub fn remove(&self, pid: i32) {
        self.lock().remove(&pid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The server whose process opened the connection from `peer` to `local`
/// (the proxy's address), or why none could be found.
pub async fn attribute(servers: &Servers, peer: SocketAddr, local: SocketAddr) -> Peer {
    let _one = SCANS.acquire().await;
    let servers = servers.lock().clone();
    let me = std::process::id() as i32;
    let found =
        tokio::task::spawn_blocking(move || find(Path::new("/proc"), peer, local, &servers, me))
            .await;
    match found {
        Ok(Ok(name)) => Peer::Server(name),
        Ok(Err(why)) => Peer::Unknown(why),
        Err(e) => Peer::Unknown(format!("the lookup failed: {e}")),
    }
}

/// [`attribute`]'s work, under `proc`; `me` (the supervisor) is skipped.
pub fn find(
    proc: &Path,
    peer: SocketAddr,
    local: SocketAddr,
    servers: &HashMap<i32, String>,
    me: i32,
) -> Result<String, String> {
    let inode = socket_inode(proc, peer, local)?;
    let holders = holders(proc, inode, me, (MAX_PROCESSES, MAX_FDS))?;
    let mut names = BTreeSet::new();
    for pid in &holders {
        match server_of(proc, *pid, servers) {
            Some(name) => names.insert(name),
            None => {
                return Err(format!(
                    "process {pid}, which holds the connection, descends from no server the supervisor started"
                ));
            }
        };
    }
    let mut names = names.into_iter();
    match (names.next(), names.next()) {
        (Some(name), None) => Ok(name),
        (Some(a), Some(b)) => Err(format!(
            "processes of more than one server hold the connection (`{a}`, `{b}`)"
        )),
        (None, _) => Err("no process holds the connection".into()),
    }
}

/// The inode of the socket whose local end is `peer` and remote end `local`:
/// by sock_diag, else (no sock_diag in the kernel) in `/proc/net/tcp*`.
fn socket_inode(proc: &Path, peer: SocketAddr, local: SocketAddr) -> Result<u64, String> {
    let (peer, local) = (plain(peer), plain(local));
    match diag_inode(peer, local) {
        Ok(Some(0)) | Ok(None) => {
            Err("the connecting socket was closed before the proxy looked".into())
        }
        Ok(Some(inode)) => Ok(inode),
        Err(_) => listed_inode(proc, peer, local),
    }
}

/// sock_diag's ids, requests and answers (linux/inet_diag.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct DiagId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [u8; 16],
    dst: [u8; 16],
    interface: u32,
    cookie: [u32; 2],
}

#[repr(C)]
struct DiagRequest {
    header: libc::nlmsghdr,
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: DiagId,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct DiagMessage {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: DiagId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;

/// The inode of the TCP socket from `peer` to `local`, asked of the kernel
/// by that exact pair; `None` when there is none; `Err` when sock_diag
/// cannot be asked.
fn diag_inode(peer: SocketAddr, local: SocketAddr) -> Result<Option<u64>, String> {
    let (IpAddr::V4(from), IpAddr::V4(to)) = (peer.ip(), local.ip()) else {
        return Err("an IPv6 pair".into());
    };
    let mut id = DiagId {
        sport: peer.port().to_be_bytes(),
        dport: local.port().to_be_bytes(),
        src: [0; 16],
        dst: [0; 16],
        interface: 0,
        // INET_DIAG_NOCOOKIE: any socket of that pair.
        cookie: [u32::MAX; 2],
    };
    id.src[..4].copy_from_slice(&from.octets());
    id.dst[..4].copy_from_slice(&to.octets());
    let request = DiagRequest {
        header: libc::nlmsghdr {
            nlmsg_len: std::mem::size_of::<DiagRequest>() as u32,
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: libc::NLM_F_REQUEST as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        family: libc::AF_INET as u8,
        protocol: libc::IPPROTO_TCP as u8,
        ext: 0,
        pad: 0,
        states: u32::MAX,
        id,
    };
    // SAFETY: a socket of our own, closed by OwnedFd; the request and the
    // answer's buffer are valid for their sizes; the answer is read with
    // read_unaligned within the bytes received.
    unsafe {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let wait = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&wait as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as u16;
        let sent = libc::sendto(
            fd.as_raw_fd(),
            (&request as *const DiagRequest).cast(),
            std::mem::size_of::<DiagRequest>(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        if sent < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let mut answer = [0u8; 1024];
        let got = libc::recv(fd.as_raw_fd(), answer.as_mut_ptr().cast(), answer.len(), 0);
        if got < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let got = got as usize;
        let head = std::mem::size_of::<libc::nlmsghdr>();
        if got < head {
            return Err("a short answer".into());
        }
        let header: libc::nlmsghdr = std::ptr::read_unaligned(answer.as_ptr().cast());
        if header.nlmsg_type == libc::NLMSG_ERROR as u16 && got >= head + 4 {
            let error: i32 = std::ptr::read_unaligned(answer[head..].as_ptr().cast());
            return if error == -libc::ENOENT {
                Ok(None)
            } else {
                Err(std::io::Error::from_raw_os_error(-error).to_string())
            };
        }
        if header.nlmsg_type != SOCK_DIAG_BY_FAMILY
            || got < head + std::mem::size_of::<DiagMessage>()
        {
            return Err("an answer that is no socket".into());
        }
        let message: DiagMessage = std::ptr::read_unaligned(answer[head..].as_ptr().cast());
        Ok(Some(u64::from(message.inode)))
    }
}

/// [`socket_inode`] by the lines of `/proc/net/tcp` and `tcp6`.
fn listed_inode(proc: &Path, peer: SocketAddr, local: SocketAddr) -> Result<u64, String> {
    let mut lines = 0;
    for table in ["net/tcp", "net/tcp6"] {
        let file = match std::fs::File::open(proc.join(table)) {
            Ok(f) => f,
            // No IPv6 in the kernel: no tcp6.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read /proc/{table}: {e}")),
        };
        for line in std::io::BufReader::new(file).lines().skip(1) {
            let line = line.map_err(|e| format!("cannot read /proc/{table}: {e}"))?;
            lines += 1;
            if lines > MAX_SOCKETS {
                return Err(format!(
                    "the container has more than {MAX_SOCKETS} TCP sockets, more than the proxy looks through"
                ));
            }
            match parse_tcp_line(&line) {
                Some((from, to, inode)) if from == peer && to == local => {
                    return if inode == 0 {
                        Err("the connecting socket was closed before the proxy looked".into())
                    } else {
                        Ok(inode)
                    };
                }
                _ => {}
            }
        }
    }
    Err(format!(
        "no socket of the container connects from {peer} to {local} (it was closed before the proxy looked)"
    ))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn plain(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), address.port()),
            None => address,
        },
        IpAddr::V4(_) => address,
    }
}

/// A socket line of `/proc/net/tcp` or `tcp6`: its local and remote ends
/// (IPv4-mapped addresses as IPv4) and its inode (0 once closed).
pub fn parse_tcp_line(line: &str) -> Option<(SocketAddr, SocketAddr, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let local = plain(endpoint(fields.get(1)?)?);
    let remote = plain(endpoint(fields.get(2)?)?);
    let inode = fields.get(9)?.parse().ok()?;
    Some((local, remote, inode))
}

/// `0100007F:A028` (IPv4) or 32 hex digits and a port (IPv6): the kernel
/// prints the address as 32-bit words in host byte order, the port as is.
fn endpoint(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = address.get(i * 8..(i + 1) * 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..(i + 1) * 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The processes (but `me`) with a descriptor on socket `inode`, looking
/// through at most `bounds` processes and descriptors.
fn holders(proc: &Path, inode: u64, me: i32, bounds: (usize, usize)) -> Result<Vec<i32>, String> {
    let (max_processes, max_fds) = bounds;
    let target = format!("socket:[{inode}]");
    let entries = std::fs::read_dir(proc).map_err(|e| format!("cannot list /proc: {e}"))?;
    let (mut processes, mut fds) = (0, 0);
    let (mut found, mut unreadable) = (Vec::new(), Vec::new());
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        processes += 1;
        if processes > max_processes {
            return Err(format!(
                "the container has more than {max_processes} processes, more than the proxy looks through"
            ));
        }
        let dir = match std::fs::read_dir(entry.path().join("fd")) {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                unreadable.push(pid);
                continue;
            }
            // Gone since the listing.
            Err(_) => continue,
        };
        for fd in dir.flatten() {
            fds += 1;
            if fds > max_fds {
                return Err(format!(
                    "the container's processes hold more than {max_fds} descriptors, more than the proxy looks through"
                ));
            }
            match std::fs::read_link(fd.path()) {
                Ok(link) if link.as_os_str() == target.as_str() => {
                    found.push(pid);
                    break;
                }
                // Listed (its owner is the supervisor's uid) but not to be
                // read: the process is not dumpable.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    unreadable.push(pid);
                    break;
                }
                // Another descriptor, or one closed since the listing.
                _ => {}
            }
        }
    }
    if found.is_empty() {
        return Err(if unreadable.is_empty() {
            "no process holds the connection any more".into()
        } else {
            let some: Vec<String> = unreadable.iter().take(5).map(i32::to_string).collect();
            format!(
                "no process whose descriptors the supervisor can read holds it ({} process(es) made themselves non-dumpable: {}{})",
                unreadable.len(),
                some.join(", "),
                if unreadable.len() > some.len() {
                    ", ..."
                } else {
                    ""
                }
            )
        });
    }
    Ok(found)
}

/// The server `pid` belongs to: the first of its ancestors (itself
/// included) that is a server, else the server that leads its session.
fn server_of(proc: &Path, pid: i32, servers: &HashMap<i32, String>) -> Option<String> {
    let (_, session) = stat(proc, pid)?;
    let mut at = pid;
    for _ in 0..MAX_DEPTH {
        if let Some(name) = servers.get(&at) {
            return Some(name.clone());
        }
        match stat(proc, at) {
            Some((parent, _)) if parent > 0 && parent != at => at = parent,
            _ => break,
        }
    }
    servers.get(&session).cloned()
}

/// `pid`'s parent and session, from `/proc/PID/stat`.
fn stat(proc: &Path, pid: i32) -> Option<(i32, i32)> {
    let text = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&text)
}

/// The parent and session of a `/proc/PID/stat` line: after the command
/// name (in parentheses, which may hold anything), state, ppid, pgrp, session.
pub fn parse_stat(text: &str) -> Option<(i32, i32)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(1);
    let parent = fields.next()?.parse().ok()?;
    let session = fields.nth(1)?.parse().ok()?;
    Some((parent, session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_lines_parse_on_this_host_and_from_the_kernels_text() {
        let v4 = "   3: 0100007F:9C4A 0100007F:A028 01 00000000:00000000 00:00000000 00000000  1000        0 345678 1 0000000000000000 20 4 30 10 -1";
        let (local, remote, inode) = parse_tcp_line(v4).expect("a v4 line");
        // The words are in host byte order; the port as is.
        if cfg!(target_endian = "little") {
            assert_eq!(local, "127.0.0.1:40010".parse().expect("addr"));
            assert_eq!(remote, "127.0.0.1:41000".parse().expect("addr"));
        }
        assert_eq!(inode, 345678);
        let v6 = "   0: 0000000000000000FFFF00000100007F:9C4B 0000000000000000FFFF00000100007F:A028 01 00000000:00000000 00:00000000 00000000  1000        0 99 1 0000000000000000 20 4 30 10 -1";
        if cfg!(target_endian = "little") {
            let (local, remote, inode) = parse_tcp_line(v6).expect("a v6 line");
            // An IPv4-mapped address is the IPv4 address.
            assert_eq!(local, "127.0.0.1:40011".parse().expect("addr"));
            assert_eq!(remote, "127.0.0.1:41000".parse().expect("addr"));
            assert_eq!(inode, 99);
        }
        for bad in [
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
            "   3: 0100007F 0100007F:A028 01 0 0 0 0 0 1",
            "   3: 0100007F:9C4A 0100007F:A028 01",
            "   3: 0100007Z:9C4A 0100007F:A028 01 0 0 0 0 0 1",
            "   3: 00007F:9C4A 0100007F:A028 01 0 0 0 0 0 1",
            "",
        ] {
            assert_eq!(parse_tcp_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn stat_lines_give_the_parent_and_session_whatever_the_name() {
        let line = "4242 (a) b) (c) S 17 4242 99 0 -1 4194560 100 0 0 0";
        assert_eq!(parse_stat(line), Some((17, 99)));
        assert_eq!(parse_stat("1 (init) S 0 1 1 0"), Some((0, 1)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("7 (x) S 1"), None);
    }

    /// The real thing on this host: a connection this process opens is
    /// found held by this process, which the "servers" name.
    #[test]
    fn a_connection_on_this_host_is_found_held_by_its_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let local = listener.local_addr().expect("addr");
        let client = std::net::TcpStream::connect(local).expect("connect");
        let (_accepted, peer) = listener.accept().expect("accept");
        assert_eq!(client.local_addr().expect("addr"), peer);
        let me = std::process::id() as i32;
        let servers = HashMap::from([(me, "self".to_string())]);
        let proc = Path::new("/proc");
        assert_eq!(find(proc, peer, local, &servers, -1), Ok("self".into()));
        // The servers' parent walk: a server above this process.
        let (parent, _) = stat(proc, me).expect("own stat");
        let above = HashMap::from([(parent, "parent".to_string())]);
        assert_eq!(find(proc, peer, local, &above, -1), Ok("parent".into()));
        // Skipping the holder (as the supervisor skips itself): not found.
        let err = find(proc, peer, local, &servers, me).expect_err("skipped");
        assert!(err.contains("no process"), "{err}");
        // A process of no server.
        let err = find(proc, peer, local, &HashMap::new(), -1).expect_err("no server");
        assert!(err.contains("descends from no server"), "{err}");
        // sock_diag and /proc/net/tcp agree; the accepted side is another socket.
        let inode = diag_inode(peer, local).expect("sock_diag").expect("found");
        assert!(inode > 0);
        assert_eq!(listed_inode(proc, peer, local), Ok(inode));
        assert_ne!(diag_inode(local, peer).expect("sock_diag"), Some(inode));
        // Past a bound the lookup stops and says which.
        let err = holders(proc, inode, -1, (1, MAX_FDS)).expect_err("processes");
        assert!(err.contains("more than 1 processes"), "{err}");
        let err = holders(proc, inode, -1, (MAX_PROCESSES, 2)).expect_err("fds");
        assert!(err.contains("more than 2 descriptors"), "{err}");
        // Closed: nothing to attribute.
        drop(client);
        let err = find(proc, peer, local, &servers, -1).expect_err("closed");
        assert!(err.contains("closed before the proxy looked"), "{err}");
    }
}
