//! A seccomp filter that sends every `connect(2)` of a server's processes to
//! the supervisor (user notification), and the calls the supervisor answers
//! it with. It is what lets a port forward's connection be mcpod's dialled
//! socket itself, in the server's own descriptor, instead of a relay (see
//! `intercept.rs` in the supervisor).
//!
//! Why every `connect`: a handed-in socket belongs to the host's network
//! namespace, and a TCP socket is dissolved by `connect(AF_UNSPEC)` and can
//! then connect anywhere. So no `connect` of a filtered process reaches the
//! kernel on its own: the supervisor takes the socket (`pidfd_getfd`), reads
//! the address once into its own memory, refuses any `connect` on a socket
//! that is not of the container's namespace, and makes every other one
//! itself on the socket it took. Nothing is left to `CONTINUE`, so neither a
//! descriptor swapped by another thread nor an address rewritten after it
//! was read can change what the kernel does.
//!
//! The filter also refuses `io_uring` (whose `IORING_OP_CONNECT` passes no
//! filter), `MSG_FASTOPEN` (a connect inside `sendto`/`sendmsg`), x32 system
//! calls, and every system call of another architecture's ABI (ENOSYS).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `SO_NETNS_COOKIE` (Linux 5.14): the network namespace a socket lives in.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The ABI a filter is built for, and its system call numbers.
struct Abi {
    arch: u32,
    connect: u32,
    sendto: u32,
    sendmsg: u32,
    sendmmsg: u32,
    /// x32 system calls carry this bit (x86_64 only; 0 elsewhere).
    x32_bit: u32,
}

#[cfg(target_arch = "x86_64")]
const ABI: Option<Abi> = Some(Abi {
    arch: 0xC000_003E, // AUDIT_ARCH_X86_64
    connect: 42,
    sendto: 44,
    sendmsg: 46,
    sendmmsg: 307,
    x32_bit: 0x4000_0000,
});

#[cfg(target_arch = "aarch64")]
const ABI: Option<Abi> = Some(Abi {
    arch: 0xC000_00B7, // AUDIT_ARCH_AARCH64
    connect: 203,
    sendto: 206,
    sendmsg: 211,
    sendmmsg: 269,
    x32_bit: 0,
});

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ABI: Option<Abi> = None;

/// `io_uring_setup`, `io_uring_enter`, `io_uring_register`: one number on
/// every architecture.
const IO_URING: [u32; 3] = [425, 426, 427];

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

/// A filter program, built before `fork` (the child may not allocate).
pub struct Filter(Vec<libc::sock_filter>);

fn statement(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const JEQ: u16 = 0x15;
const JSET: u16 = 0x45;
const RET: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
fn arg_low(index: u32) -> u32 {
    16 + 8 * index
}

impl Filter {
    /// The filter for this architecture; `None` where there is none.
    pub fn new() -> Option<Filter> {
        let abi = ABI.as_ref()?;
        let enosys = RET_ERRNO | libc::ENOSYS as u32;
        let mut p = vec![
            statement(LD_W_ABS, ARCH),
            jump(JEQ, abi.arch, 1, 0),
            statement(RET, enosys),
            statement(LD_W_ABS, NR),
        ];
        if abi.x32_bit != 0 {
            p.push(jump(JSET, abi.x32_bit, 0, 1));
            p.push(statement(RET, enosys));
        }
        p.push(jump(JEQ, abi.connect, 0, 1));
        p.push(statement(RET, libc::SECCOMP_RET_USER_NOTIF));
        for nr in IO_URING {
            p.push(jump(JEQ, nr, 0, 1));
            p.push(statement(RET, enosys));
        }
        // MSG_FASTOPEN in the flags argument of each send call.
        let fastopen = RET_ERRNO | libc::EOPNOTSUPP as u32;
        for (nr, flags) in [(abi.sendto, 3), (abi.sendmsg, 2), (abi.sendmmsg, 3)] {
            p.push(jump(JEQ, nr, 0, 4));
            p.push(statement(LD_W_ABS, arg_low(flags)));
            p.push(jump(JSET, libc::MSG_FASTOPEN as u32, 0, 1));
            p.push(statement(RET, fastopen));
            p.push(statement(RET, RET_ALLOW));
        }
        p.push(statement(RET, RET_ALLOW));
        Some(Filter(p))
    }
}

/// What intercepting takes on this system: the filter, and this process's
/// network namespace (a socket of any other is refused).
pub struct Support {
    pub filter: Filter,
    pub own_netns: u64,
}

/// Whether this kernel and system can intercept: the filter exists for this
/// architecture, sockets tell their namespace (Linux 5.14, after every call
/// used here), and this process may take a descriptor from a child of its
/// own, as it must from every server (Yama, AppArmor or SELinux may forbid).
pub fn supported() -> Result<Support, String> {
    let filter = Filter::new().ok_or("no filter for this architecture")?;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("a socket: {e}"))?;
    let own_netns = netns_cookie(std::os::fd::AsFd::as_fd(&socket))
        .map_err(|e| format!("SO_NETNS_COOKIE (Linux 5.14): {e}"))?;
    take_from_child(socket.as_raw_fd())
        .map_err(|e| format!("taking a descriptor from a child (pidfd_getfd): {e}"))?;
    Ok(Support { filter, own_netns })
}

/// Take descriptor `fd` from a forked child that made itself dumpable, as a
/// server is.
fn take_from_child(fd: RawFd) -> io::Result<()> {
    let mut ready = [0 as RawFd; 2];
    // SAFETY: pipe fills two descriptors, owned from here.
    if unsafe { libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (read, write) = unsafe {
        (
            OwnedFd::from_raw_fd(ready[0]),
            OwnedFd::from_raw_fd(ready[1]),
        )
    };
    // SAFETY: the child makes only async-signal-safe calls, then waits to
    // be killed.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        unsafe {
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
            libc::write(write.as_raw_fd(), b"r".as_ptr().cast(), 1);
            loop {
                libc::pause();
            }
        }
    }
    drop(write);
    let mut byte = [0u8; 1];
    // SAFETY: one byte into a live buffer.
    let got = unsafe { libc::read(read.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
    let taken = if got == 1 {
        pidfd_open(pid).and_then(|p| pidfd_getfd(std::os::fd::AsFd::as_fd(&p), fd).map(drop))
    } else {
        Err(io::Error::other("the child did not start"))
    };
    // SAFETY: our own child, killed and collected (or collected by the
    // supervisor's reaper first: then ECHILD here).
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    taken
}

/// In a child between `fork` and `exec` (async-signal-safe, no allocation):
/// set no-new-privileges, install `filter` with a listener, send the
/// listener on `to` (a unix socket) and close this copy.
///
/// # Safety
/// Only in a freshly forked child; `to` must be a connected unix socket.
pub unsafe fn install_and_send(filter: &Filter, to: RawFd) -> io::Result<()> {
    let program = libc::sock_fprog {
        len: filter.0.len() as libc::c_ushort,
        filter: filter.0.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl and seccomp on this process; the program outlives the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        let listener = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &program as *const libc::sock_fprog,
        );
        if listener < 0 {
            return Err(io::Error::last_os_error());
        }
        let listener = listener as RawFd;
        let sent = crate::handoff::send_fds(to, &[listener]);
        libc::close(listener);
        sent
    }
}

/// The listener a child sent on `from` with [`install_and_send`].
pub fn receive_listener(from: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    crate::handoff::recv_fd(from.as_raw_fd())
}

/// One intercepted `connect`.
#[derive(Clone, Copy, Debug)]
pub struct Notice {
    pub id: u64,
    /// The caller, in the listener's reader's PID namespace.
    pub pid: i32,
    pub fd: RawFd,
    pub address: u64,
    pub length: u32,
}

/// A filter's listener.
pub struct Listener(OwnedFd);

/// What [`Listener::wait`] found.
pub enum Waited {
    Notice(Notice),
    /// A notice withdrawn before it was read (its caller took a signal).
    Withdrawn,
    /// Every filtered process is gone.
    Ended,
}

impl Listener {
    pub fn new(fd: OwnedFd) -> Listener {
        Listener(fd)
    }

    /// Block until the next notice (a thread of its own: the kernel's read
    /// blocks whatever the descriptor's flags).
    pub fn wait(&self) -> io::Result<Waited> {
        let mut poll = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one pollfd, no timeout.
            let n = unsafe { libc::poll(&mut poll, 1, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if poll.revents & libc::POLLIN != 0 {
                break;
            }
            if poll.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                return Ok(Waited::Ended);
            }
        }
        // SAFETY: the kernel fills the zeroed struct (it must be zeroed).
        let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        let got = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut notif as *mut libc::seccomp_notif,
            )
        };
        if got != 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::EINTR) => Ok(Waited::Withdrawn),
                _ => Err(e),
            };
        }
        Ok(Waited::Notice(Notice {
            id: notif.id,
            pid: notif.pid as i32,
            fd: notif.data.args[0] as i32,
            address: notif.data.args[1],
            length: notif.data.args[2] as u32,
        }))
    }

    /// Whether `id`'s caller still waits (so its pid still names it).
    pub fn valid(&self, id: u64) -> bool {
        // SAFETY: the ioctl reads one u64.
        unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
                &id as *const u64,
            ) == 0
        }
    }

    /// Answer `id`: `connect` returns 0, or fails with `errno`.
    pub fn answer(&self, id: u64, errno: i32) -> io::Result<()> {
        let mut resp = libc::seccomp_notif_resp {
            id,
            val: 0,
            error: if errno == 0 { 0 } else { -errno },
            flags: 0,
        };
        // SAFETY: the ioctl reads the struct.
        if unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp as *mut libc::seccomp_notif_resp,
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Put `socket` in `id`'s caller at descriptor `at`, in place of what is
    /// there (Linux 5.9).
    pub fn place(
        &self,
        id: u64,
        socket: BorrowedFd<'_>,
        at: RawFd,
        cloexec: bool,
    ) -> io::Result<()> {
        let mut add = libc::seccomp_notif_addfd {
            id,
            flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
            srcfd: socket.as_raw_fd() as u32,
            newfd: at as u32,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: the ioctl reads the struct.
        if unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ADDFD,
                &mut add as *mut libc::seccomp_notif_addfd,
            )
        } < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A pidfd of `pid` (a process).
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    pidfd_open_flags(pid, 0)
}

/// A pidfd of thread `tid` itself (`PIDFD_THREAD`, Linux 6.9), whose
/// descriptors `pidfd_getfd` then takes from that thread's own table.
pub fn pidfd_open_thread(tid: i32) -> io::Result<OwnedFd> {
    pidfd_open_flags(tid, libc::O_EXCL)
}

fn pidfd_open_flags(pid: i32, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: the syscall returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just made, owned from here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A copy of the process's descriptor `fd` (the same open file).
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: the syscall returns a new descriptor or -1.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just made, owned from here.
    Ok(unsafe { OwnedFd::from_raw_fd(got as RawFd) })
}

/// `length` bytes at `address` in `pid`'s memory, copied once.
pub fn read_memory(pid: i32, address: u64, length: usize) -> io::Result<Vec<u8>> {
    let mut buffer = vec![0u8; length];
    let local = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: length,
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: length,
    };
    // SAFETY: one local buffer of `length` bytes; the remote side is only read.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != length {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(buffer)
}

/// The network namespace `socket` lives in.
pub fn netns_cookie(socket: BorrowedFd<'_>) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: a u64 buffer with its length.
    if unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_system_can_intercept() {
        if let Err(why) = supported() {
            panic!("{why}");
        }
    }

    #[test]
    fn the_filter_is_built_for_this_architecture_and_jumps_stay_inside() {
        let Some(filter) = Filter::new() else {
            return;
        };
        let len = filter.0.len();
        assert!(len < 64, "{len} instructions");
        for (i, op) in filter.0.iter().enumerate() {
            if op.code & 0x07 == 0x05 {
                assert!(i + 1 + (op.jt.max(op.jf) as usize) < len, "jump at {i}");
            }
        }
        assert_eq!(filter.0.last().map(|op| op.k), Some(RET_ALLOW));
    }
}
