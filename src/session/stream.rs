//! A session's one stream: `podman run` of the supervisor (the container's
//! PID 1), one yamux connection on a socket podman hands in as its fd 3, the
//! control stream, a stdio and a stderr stream per server, and a stream per
//! egress connection, which goes to the gate (see the supervisor's
//! `protocol.rs`).
//!
//! Everything that comes up this stream is as untrusted as the servers in the
//! container: lines are bounded, streams are capped by the multiplexer, an
//! offer for a server mcpod did not start is dropped.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpod_supervisor::mux::{self, Mode};
use mcpod_supervisor::protocol::{
    self, Command, Event, Forward, Hello, Offer, Open, Start, Started, Verdict,
};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::egress::gate::Gate;
use crate::engine::podman;
use crate::engine::process::BoundedLines;
use crate::logging::ring::{LINE_BYTES, LogRing};
use crate::proxy::{NotStarted, ServerIo};
use crate::{Error, Result};

/// Waiters for what the supervisor reports, by server id.
#[derive(Default)]
struct Routes {
    exits: HashMap<u32, oneshot::Sender<i32>>,
    stderrs: HashMap<u32, oneshot::Sender<BufReader<mux::Stream>>>,
}

pub struct SessionStream {
    opener: mux::Opener,
    commands: mpsc::UnboundedSender<Vec<u8>>,
    routes: Arc<Mutex<Routes>>,
    next_id: AtomicU32,
    podman: tokio::sync::Mutex<Option<tokio::process::Child>>,
    /// Cancelled when the connection ends (the container is ending or gone).
    ended: CancellationToken,
    /// podman's and the supervisor's stderr.
    pub log: Arc<LogRing>,
    /// The session's egress gate, when it has egress.
    pub gate: Option<Arc<Gate>>,
    /// Set when mcpod closes the stream (an end it asked for).
    closing: std::sync::atomic::AtomicBool,
    /// Why the connection ended when mcpod did not end it.
    lost: Arc<Mutex<Option<String>>>,
    /// The cgroup limits the supervisor saw in the container at its start.
    pub limits: protocol::Limits,
}

/// How long the supervisor gets to say it started a server (a spawn).
const START_ANSWER: Duration = Duration::from_secs(10);

/// How long a session's end waits for its egress connections' records.
const RECORDS: Duration = Duration::from_secs(2);

/// Lines of podman's and the supervisor's stderr an error quotes.
const TAIL_LINES: usize = 20;

impl SessionStream {
    /// Run `podman` (a `podman run` of the supervisor) and say hello; an
    /// error when podman or the supervisor does not come up within `deadline`.
    pub async fn start(
        engine: &podman::Podman,
        place: String,
        podman_args: &[OsString],
        setup: Setup,
        deadline: Duration,
    ) -> Result<Arc<SessionStream>> {
        let mut attached = engine.start_attached(
            podman_args,
            protocol::STREAM_FD,
            mcpod_supervisor::handoff::HANDOFF_FD,
        )?;
        let mut setup = setup;
        setup.handoff = attached.handoff.take();
        let mut process = attached.process;
        let log = Arc::new(LogRing::new(200));
        let copies: Vec<_> = attached
            .output
            .into_iter()
            .map(|pipe| tokio::spawn(copy_log(pipe, log.clone())))
            .collect();
        let failed = match Self::over(attached.stream, setup, deadline).await {
            Ok(mut stream) => {
                stream.podman = tokio::sync::Mutex::new(Some(process));
                stream.log = log;
                let stream = Arc::new(stream);
                stream.watch(place);
                return Ok(stream);
            }
            Err(failed) => failed,
        };
        let code = match tokio::time::timeout(Duration::from_secs(5), process.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = process.start_kill();
                None
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            for copy in copies {
                let _ = copy.await;
            }
        })
        .await;
        let tail = log.tail_text(TAIL_LINES);
        Err(match code {
            // podman's own failures (the container never ran).
            Some(code @ 125..=127) => Error::CommandFailed {
                command: "podman run".into(),
                status: format!("exit code {code}"),
                stderr_tail: tail,
                hint: String::new(),
            },
            _ => Error::UnexpectedOutput {
                command: "the session supervisor".into(),
                reason: format!("{failed}; podman's stderr ends: {tail}"),
            },
        })
    }

    /// A session stream over `io` (the supervisor's stdio): the multiplexer,
    /// the hello and the routes; why not, when the other side does not
    /// answer as a supervisor of this protocol within `deadline`.
    pub async fn over<T>(
        io: T,
        setup: Setup,
        deadline: Duration,
    ) -> std::result::Result<SessionStream, String>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (opener, inbound, drive) = mux::connect(io, Mode::Client);
        let ended = CancellationToken::new();
        let end = ended.clone();
        let gate = setup.gate.clone();
        tokio::spawn(async move {
            if let Err(e) = drive.await {
                tracing::debug!("a session stream failed: {e}");
            }
            end.cancel();
            // However the session ended (closed, killed, crashed), its
            // connections end with it and are recorded.
            if let Some(gate) = gate {
                gate.finish(RECORDS).await;
            }
        });
        let hello = say_hello(&opener, setup.lease_until, setup.forwards);
        let (control, hello) = match tokio::time::timeout(deadline, hello).await {
            Ok(Ok(answered)) => answered,
            Ok(Err(reason)) => {
                opener.close();
                return Err(reason);
            }
            Err(_) => {
                opener.close();
                return Err(format!(
                    "the supervisor did not answer within {} s",
                    deadline.as_secs()
                ));
            }
        };
        if let (true, Some(gate), Some(fd)) = (hello.handoff, &setup.gate, setup.handoff)
            && let Err(e) = gate.hand_off_on(fd)
        {
            tracing::warn!("session {}: egress without hand-off: {e}", gate.session);
        }
        let routes = Arc::new(Mutex::new(Routes::default()));
        let (commands, lines) = mpsc::unbounded_channel();
        tokio::spawn(run_control(control, lines, routes.clone()));
        tokio::spawn(take_offers(inbound, routes.clone(), setup.gate.clone()));
        Ok(SessionStream {
            opener,
            commands,
            routes,
            next_id: AtomicU32::new(1),
            podman: tokio::sync::Mutex::new(None),
            ended,
            log: Arc::new(LogRing::new(1)),
            gate: setup.gate,
            closing: std::sync::atomic::AtomicBool::new(false),
            lost: Arc::default(),
            limits: hello.limits,
        })
    }

    /// Watch the connection: an end mcpod did not ask for is recorded with
    /// podman's last words (an engine that went away, a killed podman).
    fn watch(self: &Arc<Self>, place: String) {
        let this = Arc::downgrade(self);
        let ended = self.ended.clone();
        tokio::spawn(async move {
            ended.cancelled().await;
            let Some(this) = this.upgrade() else {
                return;
            };
            if this.closing.load(Ordering::SeqCst) {
                return;
            }
            // podman's last lines arrive just after the connection drops.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let tail = this.log.tail_text(3);
            let why = if tail.is_empty() {
                format!("the connection to its container {place} ended")
            } else {
                format!("the connection to its container {place} ended; podman said: {tail}")
            };
            tracing::warn!("a session's stream ended unasked: {why}");
            *this.lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        });
    }

    /// Whether the connection ended without mcpod ending it.
    pub fn ended_unasked(&self) -> bool {
        self.is_ended() && !self.closing.load(Ordering::SeqCst)
    }

    /// Why the connection ended, when mcpod did not end it.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Start a server; its pipes, or why the supervisor could not start it.
    pub async fn start_server(
        self: &Arc<Self>,
        name: &str,
        argv: &[String],
        env: &BTreeMap<String, String>,
        workdir: Option<&str>,
        proxy_port: Option<u16>,
    ) -> std::result::Result<ServerIo, NotStarted> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (exit_tx, exit) = oneshot::channel();
        let (stderr_tx, stderr) = oneshot::channel();
        {
            let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            routes.exits.insert(id, exit_tx);
            routes.stderrs.insert(id, stderr_tx);
        }
        let refused = |reason: String| NotStarted {
            reason,
            missing: false,
        };
        let stream = self
            .opener
            .open()
            .await
            .map_err(|e| refused(format!("the session stream: {e}")))?;
        let mut stream = BufReader::new(stream);
        let start = Open::Start(Start {
            id,
            name: name.to_string(),
            argv: argv.to_vec(),
            env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            workdir: workdir.map(str::to_string),
            proxy_port,
        });
        let answer = async {
            stream.get_mut().write_all(&protocol::line(&start)).await?;
            stream.get_mut().flush().await?;
            protocol::read_line::<Started, _>(&mut stream).await
        };
        match tokio::time::timeout(START_ANSWER, answer).await {
            Ok(Ok(Some(Started::Running { .. }))) => {}
            Ok(Ok(Some(Started::Failed { reason, missing }))) => {
                return Err(NotStarted { reason, missing });
            }
            Ok(Ok(None)) => return Err(refused("the supervisor closed its stdio stream".into())),
            Ok(Err(e)) => return Err(refused(format!("the supervisor's answer: {e}"))),
            Err(_) => {
                return Err(refused(format!(
                    "the supervisor did not answer the start within {} s",
                    START_ANSWER.as_secs()
                )));
            }
        }
        let (read, write) = tokio::io::split(stream);
        let this = self.clone();
        Ok(ServerIo {
            read: Box::new(read),
            write: Box::new(write),
            stderr: Box::pin(async move {
                stderr
                    .await
                    .ok()
                    .map(|s| Box::new(s) as crate::proxy::child::Pipe)
            }),
            exit,
            kill: Box::new(move || this.signal(id, libc::SIGKILL)),
        })
    }

    fn signal(&self, id: u32, signal: i32) {
        let _ = self
            .commands
            .send(protocol::line(&Command::Signal { id, signal }));
    }

    /// Move the session's lease end (the supervisor ends the session then).
    pub fn set_lease(&self, until: u64) {
        let _ = self
            .commands
            .send(protocol::line(&Command::Lease { until }));
    }

    /// Whether the connection has ended.
    pub fn is_ended(&self) -> bool {
        self.ended.is_cancelled()
    }

    /// End the session: close the stream (the supervisor stops what still
    /// runs and exits, and `podman run --rm` removes the container); true
    /// when podman has exited within `wait`.
    pub async fn close(&self, wait: Duration) -> bool {
        self.closing.store(true, Ordering::SeqCst);
        self.opener.close();
        let exited = {
            let mut podman = self.podman.lock().await;
            match podman.as_mut() {
                None => true,
                Some(process) => {
                    let exited = tokio::time::timeout(wait, process.wait()).await.is_ok();
                    if exited {
                        podman.take();
                    }
                    exited
                }
            }
        };
        // The connection may outlive a podman that did not exit: the relays
        // end here all the same, and are recorded before mcpod goes on (or
        // exits).
        if let Some(gate) = &self.gate {
            gate.finish(RECORDS).await;
        }
        exited
    }
}

impl Drop for SessionStream {
    fn drop(&mut self) {
        if let Some(gate) = &self.gate {
            gate.end_relays();
        }
    }
}

/// What the supervisor is told of its session at the start, and the gate
/// its connections go through.
#[derive(Default)]
pub struct Setup {
    /// Unix time at which the supervisor ends the session.
    pub lease_until: Option<u64>,
    pub forwards: Vec<Forward>,
    /// None: every connection is refused.
    pub gate: Option<Arc<Gate>>,
    /// mcpod's end of the hand-off socket (a local engine): the gate takes
    /// connections back on it when the supervisor says it holds the other.
    pub handoff: Option<std::os::fd::OwnedFd>,
}

/// Open the control stream and exchange versions.
async fn say_hello(
    opener: &mux::Opener,
    lease_until: Option<u64>,
    forwards: Vec<Forward>,
) -> std::result::Result<(BufReader<mux::Stream>, Hello), String> {
    let stream = opener
        .open()
        .await
        .map_err(|e| format!("no session stream: {e}"))?;
    let mut stream = BufReader::new(stream);
    let open = Open::Control {
        version: protocol::VERSION,
        lease_until,
        forwards,
    };
    let io = async {
        stream.get_mut().write_all(&protocol::line(&open)).await?;
        stream.get_mut().flush().await?;
        protocol::read_line::<Hello, _>(&mut stream).await
    };
    match io.await {
        Ok(Some(Hello {
            refused: Some(why), ..
        })) => Err(format!("the supervisor refused the session: {why}")),
        Ok(Some(Hello { version, .. })) if version != protocol::VERSION => Err(format!(
            "the supervisor speaks session protocol {version} and mcpod {}",
            protocol::VERSION
        )),
        Ok(Some(hello)) => Ok((stream, hello)),
        Ok(None) => Err("the container's stream ended before the supervisor answered".into()),
        Err(e) => Err(format!("the supervisor's answer: {e}")),
    }
}

/// Write mcpod's commands, and route the supervisor's events. When the
/// control stream ends, every server still waited for counts as killed.
async fn run_control(
    control: BufReader<mux::Stream>,
    mut commands: mpsc::UnboundedReceiver<Vec<u8>>,
    routes: Arc<Mutex<Routes>>,
) {
    let (read, mut write) = tokio::io::split(control);
    let mut read = BufReader::new(read);
    tokio::spawn(async move {
        while let Some(line) = commands.recv().await {
            if write.write_all(&line).await.is_err() || write.flush().await.is_err() {
                return;
            }
        }
        // Every handle is gone: closing the control stream ends the session.
        let _ = write.shutdown().await;
    });
    loop {
        match protocol::read_line::<Event, _>(&mut read).await {
            Ok(Some(Event::Exited { id, code })) => {
                let waiter = routes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .exits
                    .remove(&id);
                if let Some(tx) = waiter {
                    let _ = tx.send(code);
                }
            }
            Ok(Some(Event::LeaseEnded)) => {
                tracing::info!("a session's lease ended; its supervisor is stopping its servers");
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("a session's control stream: {e}");
                break;
            }
        }
    }
    let mut routes = routes.lock().unwrap_or_else(|p| p.into_inner());
    routes.exits.clear();
    routes.stderrs.clear();
}

/// Streams the supervisor opens: each server's stderr, to whoever waits for
/// it; each connection a server opens, to the gate.
async fn take_offers(
    mut inbound: mpsc::UnboundedReceiver<mux::Stream>,
    routes: Arc<Mutex<Routes>>,
    gate: Option<Arc<Gate>>,
) {
    while let Some(stream) = inbound.recv().await {
        let routes = routes.clone();
        let gate = gate.clone();
        tokio::spawn(async move {
            let mut stream = BufReader::new(stream);
            let offer = tokio::time::timeout(
                Duration::from_secs(10),
                protocol::read_line::<Offer, _>(&mut stream),
            )
            .await;
            let id = match offer {
                Ok(Ok(Some(Offer::Stderr { id }))) => id,
                Ok(Ok(Some(Offer::Connect {
                    from,
                    host,
                    port,
                    peer,
                    hand_in,
                }))) => {
                    match gate {
                        Some(gate) => {
                            gate.handle(stream, &from, peer, (&host, port), hand_in.as_deref())
                                .await
                        }
                        None => {
                            let refused = Verdict {
                                allowed: false,
                                reason: "this session has no egress".into(),
                                handoff: None,
                            };
                            let _ = stream.get_mut().write_all(&protocol::line(&refused)).await;
                        }
                    }
                    return;
                }
                _ => {
                    tracing::warn!(
                        "a session's supervisor opened a stream that is no server's stderr or connection; dropped"
                    );
                    return;
                }
            };
            let waiter = routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .stderrs
                .remove(&id);
            if let Some(tx) = waiter {
                // What the reader buffered past the offer line is stderr too.
                let _ = tx.send(stream);
            }
        });
    }
}

/// Keep podman's and the supervisor's output, a bounded line at a time.
/// Keep podman's and the supervisor's output in `log`, a bounded line at a time.
pub(super) async fn copy_log(stderr: impl tokio::io::AsyncRead + Unpin, log: Arc<LogRing>) {
    let mut lines = BoundedLines::new(stderr, LINE_BYTES);
    while let Some(line) = lines.next_line().await {
        tracing::debug!("session: {line}");
        log.push(&line);
    }
}
