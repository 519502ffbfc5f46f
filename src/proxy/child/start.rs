//! Starting a child: its process (or stream), the MCP handshake in either
//! protocol era, the first listings, and the watch that marks it dead.

use super::*;

/// The connection once the handshake is done.
type Service = RunningService<RoleClient, Handler>;

impl Child {
    /// Start the server and connect. Never fails: a server that cannot start is
    /// returned with a `Failed` status that says why.
    pub async fn start(
        spec: StartSpec,
        io: std::result::Result<ServerIo, NotStarted>,
    ) -> Arc<Child> {
        let log = Arc::new(LogRing::new(1000));
        let start = Starting {
            shared: Arc::new(Shared::new(&spec, log.clone())),
            log,
            spec,
        };
        let mut io = match io {
            Ok(io) => io,
            Err(not_started) => return start.not_started(not_started),
        };
        let mut stderr_done = start.keep_stderr(&mut io);
        let (stdout, stdin, kill, mut exit) = (io.read, io.write, io.kill, io.exit);
        let (transport, junk) = start.transport(stdout, stdin);
        let handshake = start.handshake(transport, junk, &kill, &mut exit, &mut stderr_done);
        let (service, client) = match handshake.await {
            Ok(connected) => connected,
            Err(failed) => return failed,
        };
        let child = match start.first_listing(service, &client, &kill).await {
            Ok(child) => child,
            Err(failed) => return failed,
        };
        // The level the agent set before this child started.
        if let Some(level) = start.shared.upstream.level() {
            child.set_level(level).await;
        }
        watch_exit(&child, exit, stderr_done);
        child
    }
}

impl Shared {
    /// The state a child about to start shares with its handler: empty
    /// lists, no warnings, its log and its lane of pass-through calls.
    fn new(spec: &StartSpec, log: Arc<LogRing>) -> Shared {
        Shared {
            name: spec.name.clone(),
            session: spec.session.clone(),
            catalog: RwLock::new(Catalog::default()),
            upstream: spec.upstream.clone(),
            warnings: RwLock::new(Vec::new()),
            relist: AtomicUsize::new(0),
            log,
            asks: tokio::sync::Semaphore::new(MAX_ASKS),
            inputs: Mutex::new(HashMap::new()),
            changed: spec.changed.clone(),
            lane: Arc::new(Lane::new(&spec.name)),
            listener: Listener::default(),
        }
    }
}

/// A child being started: its spec, its shared state and its log, which
/// each phase reads and a failed start is made of.
struct Starting {
    spec: StartSpec,
    shared: Arc<Shared>,
    log: Arc<LogRing>,
}

impl Starting {
    /// A child that failed to start, saying why, with the tail of its stderr.
    fn failed(&self, reason: String, exit_code: Option<i32>) -> Arc<Child> {
        Arc::new(Child {
            shared: self.shared.clone(),
            log: self.log.clone(),
            status: RwLock::new(Status::Failed {
                reason,
                exit_code,
                stderr_tail: self.log.tail_text(TAIL_LINES),
                command: self.spec.command.clone(),
                handshake_started: true,
            }),
            handshake: None,
            offers: ServerCapabilities::default(),
            modern: false,
            peer: None,
            died: CancellationToken::new(),
            exit_code: Mutex::new(exit_code),
            call_timeout: self.spec.call_timeout,
            probe_failed: Default::default(),
            service: tokio::sync::Mutex::new(None),
        })
    }

    /// A failed child marked as one the `initialize`-only start may help:
    /// it failed a handshake that began with the `server/discover` probe.
    fn failed_probe(&self, reason: String, exit_code: Option<i32>) -> Arc<Child> {
        let child = self.failed(reason, exit_code);
        if !self.spec.legacy {
            child
                .probe_failed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        child
    }

    /// A server whose process never ran: the handshake did not begin.
    fn not_started(&self, NotStarted { reason, missing }: NotStarted) -> Arc<Child> {
        // The supervisor found no such program: the code a shell gives.
        let child = self.failed(
            format!("server `{}` could not start: {reason}", self.spec.name),
            missing.then_some(127),
        );
        if let Status::Failed {
            handshake_started, ..
        } = &mut *child.status.write().unwrap_or_else(|p| p.into_inner())
        {
            *handshake_started = false;
        }
        child
    }

    /// Copy the server's stderr into its log, once it is there; the task
    /// ends when the stderr does.
    fn keep_stderr(&self, io: &mut ServerIo) -> tokio::task::JoinHandle<()> {
        let stderr = std::mem::replace(&mut io.stderr, Box::pin(async { None }));
        let stderr_log = self.log.clone();
        tokio::spawn(async move {
            if let Some(stderr) = stderr.await {
                copy_lines(stderr, stderr_log).await;
            }
        })
    }

    /// The MCP transport on the server's stdio, tapped by its lane. The
    /// receiver holds the first thing the server wrote that is not MCP.
    fn transport(
        &self,
        stdout: Pipe,
        stdin: Box<dyn AsyncWrite + Send + Unpin>,
    ) -> (
        wire::LineTransport<RoleClient, Pipe>,
        tokio::sync::watch::Receiver<Option<String>>,
    ) {
        let (junk_tx, junk) = tokio::sync::watch::channel(None::<String>);
        let report = problem_reporter(&self.spec.name, self.log.clone());
        let transport = wire::LineTransport::new(
            stdout,
            stdin,
            wire::Limits::default(),
            wire::Peer {
                name: format!("server `{}`", self.spec.name),
                on_problem: Arc::new(move |problem: String| {
                    junk_tx.send_if_modified(|first| {
                        first
                            .is_none()
                            .then(|| *first = Some(problem.clone()))
                            .is_some()
                    });
                    report(problem)
                }),
            },
        )
        .with_tap(self.shared.lane.clone());
        self.shared.lane.set_writer(transport.raw_writer());
        (transport, junk)
    }

    /// The MCP handshake: `server/discover` first; an older server's error
    /// (or its silence for rmcp's 10 s) falls back to `initialize`. A server
    /// that died on the probe is started again with `initialize` only
    /// (`legacy`). Returns the connection and what mcpod said it is, or the
    /// failed child.
    async fn handshake(
        &self,
        transport: wire::LineTransport<RoleClient, Pipe>,
        mut junk: tokio::sync::watch::Receiver<Option<String>>,
        kill: &(dyn Fn() + Send + Sync),
        exit: &mut tokio::sync::oneshot::Receiver<i32>,
        stderr_done: &mut tokio::task::JoinHandle<()>,
    ) -> std::result::Result<(Service, ClientConfig), Arc<Child>> {
        let handler = Handler {
            shared: self.shared.clone(),
        };
        // A server that writes something else than MCP (a banner, its input
        // echoed, logs on stdout) gets a moment to answer `initialize` after
        // all; then it fails, quoting what it wrote, not after the deadline.
        let not_mcp = async {
            let first = junk.wait_for(Option::is_some).await.ok()?.clone();
            tokio::time::sleep(JUNK_GRACE).await;
            first
        };
        let lifecycle = if self.spec.legacy {
            ClientLifecycleMode::Initialize
        } else {
            ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                legacy_version: None,
            }
        };
        let client = handler.get_info();
        let connecting = handler.serve_with_lifecycle(transport, lifecycle);
        let connected = tokio::select! {
            connected = tokio::time::timeout(self.spec.handshake, connecting) => connected,
            Some(first) = not_mcp => {
                kill();
                // A banner before an older server that dies of the
                // `server/discover` probe: whether the probe killed it cannot
                // be told within the grace on a loaded host (it may not have
                // read the probe yet), so a server that wrote something else
                // and did not answer gets one start with `initialize` only.
                return Err(self.failed_probe(
                    format!(
                        "server `{}` wrote to stdout what is not MCP and did not answer `initialize`: {first}. \
                         Fix: its command must start an MCP stdio server that writes only JSON-RPC to stdout (logs go to stderr)",
                        self.spec.name
                    ),
                    None,
                ));
            }
        };
        // Said with a failure below, when it explains it.
        let junk_note = || {
            junk.borrow()
                .as_ref()
                .map(|j| format!("; before that, {j}"))
                .unwrap_or_default()
        };
        match connected {
            Ok(Ok(service)) => Ok((service, client)),
            Ok(Err(e)) => {
                // Usually the process exited: report its code and stderr.
                let code = exit_code_soon(exit, kill).await;
                let _ = stderr_done.await;
                let reason = match code {
                    Some(c) => format!(
                        "server `{}` exited with code {c} during the MCP handshake{}",
                        self.spec.name,
                        junk_note(),
                    ),
                    None => format!(
                        "server `{}` failed the MCP handshake: {e}{}",
                        self.spec.name,
                        junk_note()
                    ),
                };
                let missing = matches!(code, Some(126 | 127));
                Err(if missing {
                    self.failed(reason, code)
                } else {
                    self.failed_probe(reason, code)
                })
            }
            Err(_) => {
                kill();
                Err(self.failed(
                    format!(
                        "server `{}` did not answer `server/discover` or `initialize` within {} s",
                        self.spec.name,
                        self.spec.handshake.as_secs()
                    ),
                    None,
                ))
            }
        }
    }

    /// After the handshake: what the server said of itself, its first
    /// lists (within the handshake deadline), and the ready child, which
    /// listens for changes when it speaks 2026-07-28. A failed listing kills
    /// the server and returns the failed child.
    async fn first_listing(
        &self,
        service: Service,
        client: &ClientConfig,
        kill: &(dyn Fn() + Send + Sync),
    ) -> std::result::Result<Arc<Child>, Arc<Child>> {
        let shared = &self.shared;
        let handshake = service.peer_info().map(|info| {
            let server = info.server_info.clone().unwrap_or_default();
            Handshake {
                protocol_version: info.protocol_version.to_string(),
                name: server.name,
                version: server.version,
            }
        });
        let offers = service
            .peer_info()
            .map(|info| info.capabilities.clone())
            .unwrap_or_default();
        let peer = service.peer().clone();
        // mcpod keeps the child's lists itself and must see its errors: no
        // response cache (rmcp's would serve a stale list when one fails).
        peer.set_response_cache_config(ClientCacheConfig::disabled())
            .await;
        let modern = service
            .peer_info()
            .is_some_and(|info| !info.protocol_version.has_initialize());
        if modern {
            // Each request to it says who asks (rmcp adds this to its own).
            shared.lane.set_meta(client);
        }
        let listing = shared.list(&peer, &offers);
        match tokio::time::timeout(self.spec.handshake, listing).await {
            Ok(Ok(listed)) => shared.set_catalog(listed),
            Ok(Err(e)) => {
                kill();
                let reason = format!("server `{}` failed tools/list: {e}", self.spec.name);
                return Err(self.failed(reason, None));
            }
            Err(_) => {
                kill();
                return Err(self.failed(
                    format!(
                        "server `{}` did not answer tools/list within {} s",
                        self.spec.name,
                        self.spec.handshake.as_secs()
                    ),
                    None,
                ));
            }
        }
        let child = Arc::new(Child {
            shared: shared.clone(),
            log: self.log.clone(),
            status: RwLock::new(Status::Ready),
            handshake,
            offers,
            modern,
            peer: Some(peer.clone()),
            died: CancellationToken::new(),
            exit_code: Mutex::new(None),
            call_timeout: self.spec.call_timeout,
            probe_failed: Default::default(),
            service: tokio::sync::Mutex::new(Some(service)),
        });
        if modern {
            listen::start(
                shared.clone(),
                peer,
                child.offers.clone(),
                child.died.clone(),
            );
        }
        Ok(child)
    }
}

/// Notice the child's death: record its exit code, mark it failed (its
/// tools are withdrawn) and say so. The task holds the child weakly.
fn watch_exit(
    child: &Arc<Child>,
    exit: tokio::sync::oneshot::Receiver<i32>,
    stderr_done: tokio::task::JoinHandle<()>,
) {
    let watched = Arc::downgrade(child);
    tokio::spawn(async move {
        let code = exit.await.ok();
        let _ = tokio::time::timeout(Duration::from_secs(2), stderr_done).await;
        let Some(child) = watched.upgrade() else {
            return;
        };
        *child.exit_code.lock().unwrap_or_else(|p| p.into_inner()) = code;
        *child.status.write().unwrap_or_else(|p| p.into_inner()) = Status::Failed {
            reason: match code {
                Some(c) => format!("server `{}` exited with code {c}", child.shared.name),
                None => format!("server `{}` was killed", child.shared.name),
            },
            exit_code: code,
            stderr_tail: child.log.tail_text(TAIL_LINES),
            command: Vec::new(),
            handshake_started: true,
        };
        child.died.cancel();
        let _ = child
            .shared
            .changed
            .send(super::Change::of(&child.shared.session));
    });
}
