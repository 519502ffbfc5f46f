//! mcpod-supervisor: PID 1 of a session container. It starts the servers
//! mcpod asks for, carries their stdio and stderr (and their egress
//! connections, see `egress.rs`) as streams of the one yamux connection to
//! mcpod (the socket at fd 3, else its own stdin and stdout), reports their
//! exits, reaps every process of the container, forwards signals, and ends
//! the container when mcpod's side of the stream (or the lease) ends. See
//! `protocol.rs`.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod egress;
mod intercept;
mod peer;
mod wrap;

use mcpod_supervisor::handoff;
use mcpod_supervisor::mux::{self, Mode};
use mcpod_supervisor::protocol::{
    self, Command, Event, Forward, Hello, Offer, Open, Start, Started,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// How long servers get to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// How long an exited server's stdout and stderr get to drain (a background
/// process of its own may hold them open) before its exit is reported.
const DRAIN: Duration = Duration::from_secs(2);

fn main() {
    // Not dumpable: a server (same uid, no capabilities) cannot open
    // /proc/1/fd/* to write into the session stream, nor read this
    // process's memory, where the servers' env values pass.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            say(&format!("cannot start: {e}"));
            std::process::exit(1);
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(wrap::FLAG) {
        std::process::exit(runtime.block_on(wrap::run(&args[1..])));
    }
    // The servers' orphans come to this process even when it is not PID 1
    // (a pod that shares its PID namespace, a test): it reaps them.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let code = runtime.block_on(run());
    std::process::exit(code);
}

/// One line on the supervisor's stderr (podman's stderr, which mcpod logs).
fn say(line: &str) {
    eprintln!("mcpod-supervisor: {line}");
}

struct State {
    /// Live servers: pid → (id, where its exit status goes).
    live: Mutex<HashMap<i32, (u32, oneshot::Sender<i32>)>>,
    /// The process group of each server by id (for signals), while it lives.
    groups: Mutex<HashMap<u32, i32>>,
    /// Lines for the control stream's writer.
    control: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    /// Fired to end the session (the control stream ended, or the lease did).
    end: Notify,
    lease: watch::Sender<Option<u64>>,
    /// Live servers by pid, to attribute proxy connections to.
    servers: peer::Servers,
    /// The hand-off socket, on a local engine (see `handoff.rs`).
    handoff: Option<Arc<handoff::Channel>>,
    /// What answers the servers' `connect`s, decided once, before the first
    /// server starts (see `intercept.rs`); none: forwards are relayed.
    intercept: OnceLock<Option<Arc<intercept::Intercept>>>,
}

impl State {
    fn event(&self, event: &Event) {
        if let Some(tx) = self
            .control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = tx.send(protocol::line(event));
        }
    }

    /// Where egress connections go: `opener`'s streams, and the hand-off socket.
    fn gateway(&self, opener: &mux::Opener) -> egress::Gateway {
        egress::Gateway {
            opener: opener.clone(),
            handoff: self.handoff.clone(),
        }
    }

    fn signal_all(&self, signal: i32) -> usize {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        for pgid in groups.values() {
            unsafe { libc::kill(-pgid, signal) };
        }
        groups.len()
    }
}

async fn run() -> i32 {
    // Before any child exists, so no SIGCHLD is missed.
    let Ok(children) = signal(SignalKind::child()) else {
        say("cannot watch SIGCHLD");
        return 1;
    };
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        say("cannot handle signals");
        return 1;
    };
    let (opener, mut inbound, drive) = mux::connect(stdio(), Mode::Server);
    let driver = tokio::spawn(drive);
    let state = Arc::new(State {
        live: Mutex::new(HashMap::new()),
        groups: Mutex::new(HashMap::new()),
        control: Mutex::new(None),
        end: Notify::new(),
        lease: watch::channel(None).0,
        servers: peer::Servers::default(),
        handoff: handoff_socket().map(Arc::new),
        intercept: OnceLock::new(),
    });
    tokio::spawn(reap(state.clone(), children));
    tokio::spawn(lease(state.clone()));
    let why = loop {
        tokio::select! {
            stream = inbound.recv() => match stream {
                Some(stream) => { tokio::spawn(serve(stream, state.clone(), opener.clone())); }
                None => break "the session stream ended",
            },
            _ = state.end.notified() => break "mcpod closed the session",
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => break "SIGHUP",
        }
    };
    say(&format!("{why}: stopping every server"));
    stop_all(&state).await;
    opener.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), driver).await;
    0
}

/// SIGTERM every server's process group, SIGKILL what is left after [`GRACE`].
async fn stop_all(state: &State) {
    if state.signal_all(libc::SIGTERM) == 0 {
        return;
    }
    let deadline = tokio::time::Instant::now() + GRACE;
    while tokio::time::Instant::now() < deadline {
        if state
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    state.signal_all(libc::SIGKILL);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The yamux connection's socket: the socket mcpod passed in as
/// [`protocol::STREAM_FD`] when there is one (made close-on-exec, so no
/// server inherits it); else stdin and stdout, as pipes when they are
/// (podman's `-i` gives pipes; copied close-on-exec, and a server's own
/// stdio is its pipes), else through tokio's blocking stdio.
fn stdio() -> Box<dyn Stream> {
    let fd = protocol::STREAM_FD;
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFSOCK {
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        let socket = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
        if let Ok(socket) = socket
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixStream::from_std(socket))
        {
            return Box::new(socket);
        }
    }
    // The copy is close-on-exec (dup(2) would clear the flag): a server
    // must not inherit the stream, or it could write into it.
    fn fifo<T>(fd: i32, make: fn(OwnedFd) -> std::io::Result<T>) -> Option<T> {
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if copy < 0 {
            return None;
        }
        make(unsafe { OwnedFd::from_raw_fd(copy) }).ok()
    }
    let input: Box<dyn AsyncRead + Unpin + Send> = match fifo(0, pipe::Receiver::from_owned_fd) {
        Some(r) => Box::new(r),
        None => Box::new(tokio::io::stdin()),
    };
    let output: Box<dyn AsyncWrite + Unpin + Send> = match fifo(1, pipe::Sender::from_owned_fd) {
        Some(w) => Box::new(w),
        None => Box::new(tokio::io::stdout()),
    };
    Box::new(tokio::io::join(input, output))
}

/// The hand-off socket mcpod passed in as [`handoff::HANDOFF_FD`], when it
/// did: a unix `SOCK_SEQPACKET` socket (made close-on-exec by the channel).
/// A remote engine passes none, and a descriptor of another kind is left
/// alone.
fn handoff_socket() -> Option<handoff::Channel> {
    let fd = handoff::HANDOFF_FD;
    // SAFETY: F_GETFD only asks whether the descriptor is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return None;
    }
    // A copy, so a descriptor that is not the hand-off socket stays as it was.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return None;
    }
    // SAFETY: a descriptor F_DUPFD_CLOEXEC just made, owned from here.
    let channel = handoff::Channel::new(unsafe { OwnedFd::from_raw_fd(copy) }).ok()?;
    // SAFETY: the hand-off socket lives on as the copy; close the original
    // so no server inherits it.
    unsafe { libc::close(fd) };
    Some(channel)
}

/// Whether servers' `connect`s are intercepted, so that connections to
/// `forwards` are mcpod's own sockets: with forwards, on a local engine (a
/// hand-off socket), where the system allows it.
fn intercepting(
    forwards: Vec<Forward>,
    gateway: egress::Gateway,
) -> Option<Arc<intercept::Intercept>> {
    if forwards.is_empty() || gateway.handoff.is_none() {
        return None;
    }
    match mcpod_supervisor::seccomp::supported() {
        Ok(support) => Some(Arc::new(intercept::Intercept::new(
            support,
            forwards,
            Some(gateway),
        ))),
        Err(why) => {
            say(&format!(
                "port forwards are relayed: connects cannot be intercepted here ({why})"
            ));
            None
        }
    }
}

/// A byte stream both ways.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Reap every child (PID 1 inherits the container's orphans); a server's
/// exit status goes to whoever waits for it.
async fn reap(state: Arc<State>, mut sigchld: tokio::signal::unix::Signal) {
    loop {
        loop {
            let mut status = 0;
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            let waiter = state
                .live
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&pid);
            if let Some((id, tx)) = waiter {
                state.servers.remove(pid);
                state
                    .groups
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                let _ = tx.send(code);
            }
        }
        tokio::select! {
            _ = sigchld.recv() => {}
            // A SIGCHLD coalesced with one already handled: look again soon.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// End the session when its lease ends.
async fn lease(state: Arc<State>) {
    let mut lease = state.lease.subscribe();
    loop {
        let until = *lease.borrow_and_update();
        let wait = async {
            match until {
                Some(until) => {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or_default();
                    tokio::time::sleep(Duration::from_secs(until.saturating_sub(now))).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wait => {
                say("the session's lease ended");
                state.event(&Event::LeaseEnded);
                state.end.notify_one();
                return;
            }
            changed = lease.changed() => if changed.is_err() { return },
        }
    }
}

/// A stream mcpod opened: the control stream, or a server to start.
async fn serve(stream: mux::Stream, state: Arc<State>, opener: mux::Opener) {
    let mut stream = BufReader::new(stream);
    match protocol::read_line::<Open, _>(&mut stream).await {
        Ok(Some(Open::Control {
            version,
            lease_until,
            forwards,
        })) => {
            state.intercept.get_or_init(|| {
                let gateway = state.gateway(&opener);
                intercepting(forwards.clone(), gateway)
            });
            for f in forwards {
                let listen = f.listen;
                if let Err(e) = egress::forward(f, state.gateway(&opener)).await {
                    say(&format!(
                        "cannot listen on 127.0.0.1:{listen} for a port forward: {e}"
                    ));
                }
            }
            control(stream, version, lease_until, state).await
        }
        Ok(Some(Open::Start(start))) => run_server(stream, start, state, opener).await,
        Ok(None) => {}
        Err(e) => say(&format!("refused a stream: {e}")),
    }
}

async fn control(
    stream: BufReader<mux::Stream>,
    version: u32,
    lease_until: Option<u64>,
    state: Arc<State>,
) {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = BufReader::new(reader);
    let refused = if version != protocol::VERSION {
        Some(format!(
            "mcpod speaks session protocol {version} and this supervisor {}: mcpod mounts the supervisor it was built with, so the two come from different builds",
            protocol::VERSION
        ))
    } else if state
        .control
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some()
    {
        Some("the session has a control stream already".to_string())
    } else {
        None
    };
    let hello = protocol::line(&Hello {
        version: protocol::VERSION,
        refused: refused.clone(),
        limits: protocol::Limits::read(std::path::Path::new("/sys/fs/cgroup")),
        handoff: state.handoff.is_some(),
    });
    if writer.write_all(&hello).await.is_err() || refused.is_some() {
        let _ = writer.shutdown().await;
        if refused.is_some() {
            say(refused.as_deref().unwrap_or_default());
            state.end.notify_one();
        }
        return;
    }
    let _ = writer.flush().await;
    let (tx, mut lines) = mpsc::unbounded_channel::<Vec<u8>>();
    *state.control.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    state.lease.send_replace(lease_until);
    tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            if writer.write_all(&line).await.is_err() || writer.flush().await.is_err() {
                return;
            }
        }
    });
    loop {
        match protocol::read_line::<Command, _>(&mut reader).await {
            Ok(Some(Command::Signal { id, signal })) => {
                let group = state
                    .groups
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&id)
                    .copied();
                if let Some(pgid) = group {
                    unsafe { libc::kill(-pgid, signal) };
                }
            }
            Ok(Some(Command::Lease { until })) => {
                state.lease.send_replace(Some(until));
            }
            Ok(None) => break,
            Err(e) => {
                say(&format!("control stream: {e}"));
                break;
            }
        }
    }
    state.end.notify_one();
}

/// Start `start`'s server and carry its stdio on `stream`, its stderr on a
/// stream of its own; report its exit once its output has drained.
async fn run_server(
    stream: BufReader<mux::Stream>,
    start: Start,
    state: Arc<State>,
    opener: mux::Opener,
) {
    let (mut from_mcpod, mut to_mcpod) = tokio::io::split(stream);
    if let Some(port) = start.proxy_port
        && let Err(e) = egress::proxy(
            port,
            start.name.clone(),
            state.gateway(&opener),
            state.servers.clone(),
        )
        .await
    {
        let reason = format!("cannot listen on 127.0.0.1:{port} as its egress proxy: {e}");
        say(&format!("server {}: {reason}", start.name));
        let _ = to_mcpod
            .write_all(&protocol::line(&Started::Failed {
                reason,
                missing: false,
            }))
            .await;
        let _ = to_mcpod.shutdown().await;
        return;
    }
    let (exit_tx, exit_rx) = oneshot::channel();
    let intercept = state.intercept.get_or_init(|| None).clone();
    let spawned = spawn(&start, intercept.as_ref()).map(|(pid, pipes)| {
        // No await since the spawn: the reaper cannot have seen it exit yet.
        state
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, (start.id, exit_tx));
        state
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(start.id, pid);
        state.servers.insert(pid, &start.name);
        (pid, pipes)
    });
    let (pid, (mut stdin, mut stdout, mut stderr)) = match spawned {
        Ok(ok) => ok,
        Err((reason, missing)) => {
            say(&format!("server {} could not start: {reason}", start.name));
            let _ = to_mcpod
                .write_all(&protocol::line(&Started::Failed { reason, missing }))
                .await;
            let _ = to_mcpod.shutdown().await;
            return;
        }
    };
    if to_mcpod
        .write_all(&protocol::line(&Started::Running { pid: pid as u32 }))
        .await
        .is_err()
    {
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let _ = to_mcpod.flush().await;
    let id = start.id;
    let input = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_mcpod, &mut stdin).await;
        // Dropping stdin closes the server's: the MCP stdio shutdown.
    });
    let output = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut stdout, &mut to_mcpod).await;
        let _ = to_mcpod.shutdown().await;
    });
    let errors = tokio::spawn(async move {
        let Ok(mut stream) = opener.open().await else {
            return;
        };
        if stream
            .write_all(&protocol::line(&Offer::Stderr { id }))
            .await
            .is_ok()
        {
            let _ = tokio::io::copy(&mut stderr, &mut stream).await;
        }
        let _ = stream.shutdown().await;
    });
    let code = exit_rx.await.unwrap_or(128 + libc::SIGKILL);
    let _ = tokio::time::timeout(DRAIN, async {
        let _ = output.await;
        let _ = errors.await;
    })
    .await;
    input.abort();
    say(&format!("server {} exited with code {code}", start.name));
    state.event(&Event::Exited { id, code });
}

type Pipes = (pipe::Sender, pipe::Receiver, pipe::Receiver);

/// Start the server in a session (so a process group) of its own; its pid
/// and pipes, or why not (and whether its program is missing). The session
/// attributes its orphans' proxy connections to it: a process cannot join
/// another process's session (see `peer.rs`). Under `intercept`, it runs
/// under the filter, and its `connect`s are answered from here.
fn spawn(
    start: &Start,
    intercept: Option<&Arc<intercept::Intercept>>,
) -> Result<(i32, Pipes), (String, bool)> {
    let Some(program) = start.argv.first() else {
        return Err(("its command is empty".into(), false));
    };
    let mut command = std::process::Command::new(program);
    command
        .args(&start.argv[1..])
        .envs(start.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setsid is async-signal-safe; it cannot fail in a fresh child,
    // which leads no group yet.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    if let Some(dir) = &start.workdir {
        command.current_dir(dir);
    }
    let armed = match intercept.map(|ix| ix.arm(&mut command)).transpose() {
        Ok(armed) => armed,
        Err(e) => return Err((format!("its connect filter: {e}"), false)),
    };
    let mut child = command.spawn().map_err(|e| {
        let missing = e.kind() == std::io::ErrorKind::NotFound
            && start
                .workdir
                .as_ref()
                .is_none_or(|d| std::path::Path::new(d).is_dir());
        (format!("`{program}`: {e}"), missing)
    })?;
    let pid = child.id() as i32;
    if let (Some(ix), Some((ours, theirs))) = (intercept, armed) {
        drop(theirs);
        if let Err(e) = ix.watch(&ours) {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            drop(child);
            return Err((format!("its connect filter's listener: {e}"), false));
        }
    }
    let pipes = (|| {
        let stdin = pipe::Sender::from_owned_fd(OwnedFd::from(child.stdin.take()?)).ok()?;
        let stdout = pipe::Receiver::from_owned_fd(OwnedFd::from(child.stdout.take()?)).ok()?;
        let stderr = pipe::Receiver::from_owned_fd(OwnedFd::from(child.stderr.take()?)).ok()?;
        Some((stdin, stdout, stderr))
    })();
    // The std handle is dropped unwaited: the reaper collects the status.
    drop(child);
    match pipes {
        Some(p) => Ok((pid, p)),
        None => {
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            Err(("its pipes could not be set up".into(), false))
        }
    }
}
