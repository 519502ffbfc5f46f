//! Port forwards at wire speed: on a local engine every server runs under
//! the seccomp filter of `seccomp.rs` (in the library), which holds each
//! `connect` for this process to answer. A `connect` to a port forward
//! becomes mcpod's own dialled socket, put in the server's descriptor in
//! place of its socket: the gate decides and audits in mcpod as for any
//! connection, and then no process relays the bytes. Every other `connect`
//! is made here, on the server's own socket (taken with `pidfd_getfd`), with
//! the address read once from its memory; one on a socket of another network
//! namespace (a handed-in socket: dissolving it with `AF_UNSPEC` would free
//! it to connect anywhere from the host's network) is refused with EPERM.
//!
//! `mcpod connect` starts a server with `podman exec` as
//! `supervisor --wrap ARGV`, which runs it under the same filter and answers
//! its `connect`s the same way, without forwards, so no process of the
//! container can dissolve a socket another handed it.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::time::Duration;

use mcpod_supervisor::handoff::{self, Channel, Waiting};
use mcpod_supervisor::protocol::Forward;
use mcpod_supervisor::seccomp::{self, Filter, Listener, Notice, Support, Waited};

use crate::egress::{self, Gateway, Upstream};

/// How long a held `connect` waits for mcpod's socket after the verdict.
const WAIT: Duration = Duration::from_secs(5);

/// The most `connect`s of one server held at once; past it, EAGAIN.
const MAX_HELD: usize = 64;

/// What answers the filtered servers' `connect`s.
pub struct Intercept {
    filter: Filter,
    /// The container's network namespace: a socket of any other is refused.
    own: u64,
    /// Port forwards by the port they listen on.
    forwards: HashMap<u16, Forward>,
    /// Where forwards' connections are decided, and mcpod's sockets arrive
    /// (none in `--wrap`: nothing is handed in there).
    gateway: Option<Gateway>,
    handed: Arc<Waiting<OwnedFd>>,
}

impl Intercept {
    /// An intercept for `forwards` through `gateway`, on a system that
    /// supports it (`seccomp::supported`).
    pub fn new(support: Support, forwards: Vec<Forward>, gateway: Option<Gateway>) -> Intercept {
        let Support {
            filter,
            own_netns: own,
        } = support;
        let handed: Arc<Waiting<OwnedFd>> = Arc::default();
        if let Some(channel) = gateway.as_ref().and_then(|g| g.handoff.clone()) {
            tokio::spawn(receive(channel, handed.clone()));
        }
        Intercept {
            filter,
            own,
            forwards: forwards.into_iter().map(|f| (f.listen, f)).collect(),
            gateway,
            handed,
        }
    }

    /// Make `command`'s process install the filter before it runs and send
    /// its listener back: (ours, theirs). Drop theirs once spawned, then
    /// [`Intercept::watch`] ours.
    pub fn arm(
        self: &Arc<Self>,
        command: &mut std::process::Command,
    ) -> std::io::Result<(OwnedFd, OwnedFd)> {
        let (ours, theirs) = handoff::pair()?;
        let (ix, to) = (self.clone(), theirs.as_raw_fd());
        // SAFETY: install_and_send allocates nothing and makes only
        // async-signal-safe calls; the filter lives in `ix`, and `to` stays
        // open in the parent until the spawn has returned.
        unsafe {
            command.pre_exec(move || seccomp::install_and_send(&ix.filter, to));
        }
        Ok((ours, theirs))
    }

    /// Answer the `connect`s of the process whose filter's listener comes
    /// on `from` (a thread waits on it; each notice is answered on the
    /// runtime).
    pub fn watch(self: &Arc<Self>, from: &OwnedFd) -> std::io::Result<()> {
        let listener = Arc::new(Listener::new(seccomp::receive_listener(from.as_fd())?));
        let (ix, runtime) = (self.clone(), tokio::runtime::Handle::current());
        let held = Arc::new(tokio::sync::Semaphore::new(MAX_HELD));
        std::thread::Builder::new()
            .name("intercept".into())
            .spawn(move || {
                loop {
                    let notice = match listener.wait() {
                        Ok(Waited::Notice(n)) => n,
                        Ok(Waited::Withdrawn) => continue,
                        Ok(Waited::Ended) | Err(_) => return,
                    };
                    let Ok(permit) = held.clone().try_acquire_owned() else {
                        let _ = listener.answer(notice.id, libc::EAGAIN);
                        continue;
                    };
                    let (ix, listener) = (ix.clone(), listener.clone());
                    runtime.spawn(async move {
                        let errno = ix.answer(&listener, notice).await;
                        let _ = listener.answer(notice.id, errno);
                        drop(permit);
                    });
                }
            })?;
        Ok(())
    }

    /// The errno `notice`'s `connect` returns (0: connected).
    async fn answer(&self, listener: &Listener, notice: Notice) -> i32 {
        let target = match examine(self.own, listener, &notice) {
            Ok(target) => target,
            Err(errno) => return errno,
        };
        if let (Some(forward), Some(gateway)) = (self.forward_of(&target), &self.gateway) {
            return self
                .hand_in(gateway, forward, listener, &notice, target)
                .await;
        }
        let tid = target.tid;
        tokio::task::spawn_blocking(move || connect_on(target.socket.as_fd(), &target.address, tid))
            .await
            .unwrap_or(libc::EINTR)
    }

    /// The forward a stream socket's `connect` to loopback names, if any.
    fn forward_of(&self, target: &Target) -> Option<&Forward> {
        let a = &target.address;
        if handoff::option(target.socket.as_fd(), libc::SO_TYPE).ok() != Some(libc::SOCK_STREAM)
            || a.len() < 8
        {
            return None;
        }
        let family = u16::from_ne_bytes([a[0], a[1]]) as i32;
        let port = u16::from_be_bytes([a[2], a[3]]);
        let loopback = match family {
            libc::AF_INET => a[4..8] == [127, 0, 0, 1],
            libc::AF_INET6 if a.len() >= 24 => {
                let ip = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&a[8..24]).ok()?);
                ip.is_loopback() || ip.to_ipv4_mapped() == Some([127, 0, 0, 1].into())
            }
            _ => false,
        };
        loopback.then(|| self.forwards.get(&port)).flatten()
    }

    /// Ask mcpod for `forward`'s connection as a socket and put it in the
    /// caller's descriptor.
    async fn hand_in(
        &self,
        gateway: &Gateway,
        forward: &Forward,
        listener: &Listener,
        notice: &Notice,
        target: Target,
    ) -> i32 {
        let Ok(pending) = self.handed.expect() else {
            return libc::EAGAIN;
        };
        let token = handoff::to_hex(&pending.token);
        let from = format!("forward:{}", forward.listen);
        let asked = egress::ask(
            gateway,
            &from,
            None,
            (&forward.host, forward.port),
            Some(&token),
        )
        .await;
        if !matches!(asked, Ok(Upstream::HandedIn)) {
            return libc::ECONNREFUSED;
        }
        let Ok(socket) = pending.wait(WAIT).await else {
            return libc::ECONNREFUSED;
        };
        if handoff::check_tcp(socket.as_fd()).is_err()
            || set_nonblocking(socket.as_fd(), is_nonblocking(target.socket.as_fd())).is_err()
        {
            return libc::ECONNREFUSED;
        }
        match listener.place(notice.id, socket.as_fd(), notice.fd, target.cloexec) {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(libc::ECONNREFUSED),
        }
    }
}

/// What a held `connect` is about, taken from its process.
struct Target {
    /// The calling thread.
    tid: i32,
    /// The caller's socket, taken: the same open file, whatever its
    /// descriptor holds by now.
    socket: OwnedFd,
    /// The address, copied once.
    address: Vec<u8>,
    /// Whether the caller's descriptor is close-on-exec.
    cloexec: bool,
}

/// Take `notice`'s socket and address from its process; refuse a socket of
/// a network namespace other than `own`.
fn examine(own: u64, listener: &Listener, notice: &Notice) -> Result<Target, i32> {
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EINVAL);
    let tid = notice.pid;
    // The thread's own descriptor table; before Linux 6.9, its process's.
    let pidfd = match seccomp::pidfd_open_thread(tid) {
        Ok(pidfd) => pidfd,
        Err(_) => seccomp::pidfd_open(thread_group(tid).ok_or(libc::ESRCH)?).map_err(errno)?,
    };
    let length = notice.length as usize;
    if length > std::mem::size_of::<libc::sockaddr_storage>() {
        return Err(libc::EINVAL);
    }
    let socket = seccomp::pidfd_getfd(pidfd.as_fd(), notice.fd).map_err(errno)?;
    let address = seccomp::read_memory(tid, notice.address, length).map_err(errno)?;
    // Checked after the pid was used: the caller still waits, so it is the
    // process the pid named.
    if !listener.valid(notice.id) {
        return Err(libc::EINTR);
    }
    match seccomp::netns_cookie(socket.as_fd()) {
        Ok(cookie) if cookie == own => {}
        Ok(_) => return Err(libc::EPERM),
        Err(e) => return Err(errno(e)),
    }
    let cloexec = fd_flags(tid, notice.fd).is_some_and(|f| f & libc::O_CLOEXEC != 0);
    Ok(Target {
        tid,
        socket,
        address,
        cloexec,
    })
}

/// Connect `socket` to `address` as thread `tid` would: a relative unix
/// path is taken from its working directory. The errno, 0 if connected.
fn connect_on(socket: BorrowedFd<'_>, address: &[u8], tid: i32) -> i32 {
    if address.len() < 2 {
        return libc::EINVAL;
    }
    let family = u16::from_ne_bytes([address[0], address[1]]) as i32;
    let mut address = address.to_vec();
    if family == libc::AF_UNIX && address.len() > 2 && address[2] != 0 && address[2] != b'/' {
        let path = &address[2..];
        let path = &path[..path.iter().position(|&b| b == 0).unwrap_or(path.len())];
        let mut full = format!("/proc/{tid}/cwd/").into_bytes();
        full.extend_from_slice(path);
        if full.len() >= 108 {
            return libc::ENAMETOOLONG;
        }
        let mut rebuilt = address[..2].to_vec();
        rebuilt.extend_from_slice(&full);
        rebuilt.push(0);
        address = rebuilt;
    }
    // SAFETY: the address buffer is live and its length is given.
    let got = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            address.as_ptr().cast(),
            address.len() as libc::socklen_t,
        )
    };
    if got == 0 {
        0
    } else {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL)
    }
}

/// The thread group (process) of thread `tid`.
fn thread_group(tid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// The flags of thread `tid`'s descriptor `fd` (`/proc/TID/fdinfo`, octal).
fn fd_flags(tid: i32, fd: RawFd) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}")).ok()?;
    let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
    i32::from_str_radix(flags.trim(), 8).ok()
}

fn is_nonblocking(fd: BorrowedFd<'_>) -> bool {
    // SAFETY: F_GETFL on a valid descriptor.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    flags != -1 && flags & libc::O_NONBLOCK != 0
}

fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> std::io::Result<()> {
    // SAFETY: F_GETFL and F_SETFL on a valid descriptor.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sockets mcpod sends in, each to the `connect` its token names; one under
/// a token nothing waits for is closed.
async fn receive(channel: Arc<Channel>, handed: Arc<Waiting<OwnedFd>>) {
    while let Ok(Some(message)) = channel.recv().await {
        if let Ok(socket) = message.socket {
            let _ = handed.deliver(&message.token, socket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A program run under the filter, with this process answering its
    /// `connect`s as a session's supervisor does (no forwards here): TCP,
    /// blocking and not, a refusal, a unix socket by a relative path, and
    /// io_uring and TCP Fast Open refused by the filter itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connects_under_the_filter_behave_as_without_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut two = [0u8; 2];
                if stream.read_exact(&mut two).is_ok() {
                    let _ = stream.write_all(&two);
                }
            }
        });
        let dir = tempfile_dir();
        let script = r#"
import ctypes, errno, json, os, socket, sys
port, res = int(sys.argv[1]), {}
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"hi"); res["tcp"] = s.recv(2).decode()
n = socket.socket(); n.setblocking(False)
try:
    n.connect(("127.0.0.1", port)); res["nonblocking"] = "connected"
except BlockingIOError:
    res["nonblocking"] = "in progress"
try:
    socket.create_connection(("127.0.0.1", 1), timeout=2); res["refused"] = "connected"
except OSError as e:
    res["refused"] = errno.errorcode.get(e.errno, str(e.errno))
os.chdir(sys.argv[2])
l = socket.socket(socket.AF_UNIX); l.bind("rel.sock"); l.listen()
c = socket.socket(socket.AF_UNIX); c.connect("rel.sock"); res["unix_relative"] = "ok"
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall(425, 1, None); res["io_uring"] = errno.errorcode.get(ctypes.get_errno())
f = socket.socket()
try:
    f.sendto(b"x", 0x20000000, ("127.0.0.1", port)); res["fastopen"] = "sent"
except OSError as e:
    res["fastopen"] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(res))
"#;
        let support = seccomp::supported().unwrap_or_else(|why| panic!("{why}"));
        let ix = Arc::new(Intercept::new(support, Vec::new(), None));
        let mut command = std::process::Command::new("python3");
        command
            .args(["-c", script, &port.to_string(), &dir])
            .stdout(std::process::Stdio::piped());
        let (ours, theirs) = ix.arm(&mut command).expect("arm");
        let child = command.spawn().expect("python3 runs");
        drop(theirs);
        ix.watch(&ours).expect("watch");
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .expect("join")
            .expect("output");
        let got: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        assert_eq!(
            got,
            serde_json::json!({"tcp": "hi", "nonblocking": "in progress", "refused": "ECONNREFUSED",
                "unix_relative": "ok", "io_uring": "ENOSYS", "fastopen": "ENOTSUP"})
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> String {
        let dir = std::env::temp_dir().join(format!("intercept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir.to_string_lossy().into_owned()
    }
}
