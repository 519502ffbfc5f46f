//! Starting a child: its process (or stream), the MCP handshake in either
//! protocol era, the first listings, and the watch that marks it dead.

use super::*;

impl Child {
    /// Start the server and connect. Never fails: a server that cannot start is
    /// returned with a `Failed` status that says why.
    pub async fn start(
        spec: StartSpec,
        io: std::result::Result<ServerIo, NotStarted>,
    ) -> Arc<Child> {
        let log = Arc::new(LogRing::new(1000));
        let shared = Arc::new(Shared {
            name: spec.name.clone(),
            session: spec.session.clone(),
            catalog: RwLock::new(Catalog::default()),
            upstream: spec.upstream.clone(),
            warnings: RwLock::new(Vec::new()),
            relist: AtomicUsize::new(0),
            log: log.clone(),
            asks: tokio::sync::Semaphore::new(MAX_ASKS),
            inputs: Mutex::new(HashMap::new()),
            changed: spec.changed,
            lane: Arc::new(Lane::new(&spec.name)),
            listener: Listener::default(),
        });
        let failed = |reason: String, exit_code: Option<i32>, log: &Arc<LogRing>| {
            Arc::new(Child {
                shared: shared.clone(),
                log: log.clone(),
                status: RwLock::new(Status::Failed {
                    reason,
                    exit_code,
                    stderr_tail: log.tail_text(TAIL_LINES),
                }),
                handshake: None,
                offers: ServerCapabilities::default(),
                modern: false,
                peer: None,
                died: CancellationToken::new(),
                exit_code: Mutex::new(exit_code),
                call_timeout: spec.call_timeout,
                probe_failed: Default::default(),
                service: tokio::sync::Mutex::new(None),
            })
        };

        let mut io = match io {
            Ok(io) => io,
            Err(NotStarted { reason, missing }) => {
                let missing = missing
                    .then(|| missing_program(&spec.command, Some(127), ""))
                    .flatten();
                let (reason, code) = match missing {
                    Some(missing) => (missing, Some(127)),
                    None => (reason, None),
                };
                return failed(
                    format!("server `{}` could not start: {reason}", spec.name),
                    code,
                    &log,
                );
            }
        };
        let stderr = std::mem::replace(&mut io.stderr, Box::pin(async { None }));
        let stderr_log = log.clone();
        let stderr_done = tokio::spawn(async move {
            if let Some(stderr) = stderr.await {
                copy_lines(stderr, stderr_log).await;
            }
        });
        let (stdout, stdin, kill, mut exit) = (io.read, io.write, io.kill, io.exit);
        let handler = Handler {
            shared: shared.clone(),
        };
        // What the server wrote that is not MCP, first, while it starts.
        let (junk_tx, mut junk) = tokio::sync::watch::channel(None::<String>);
        let report = problem_reporter(&spec.name, log.clone());
        let transport = wire::LineTransport::new(
            stdout,
            stdin,
            wire::Limits::default(),
            wire::Peer {
                name: format!("server `{}`", spec.name),
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
        .with_tap(shared.lane.clone());
        shared.lane.set_writer(transport.raw_writer());
        // A server that writes something else than MCP (a banner, its input
        // echoed, logs on stdout) gets a moment to answer `initialize` after
        // all; then it fails, quoting what it wrote, not after the deadline.
        let not_mcp = async {
            let first = junk.wait_for(Option::is_some).await.ok()?.clone();
            tokio::time::sleep(JUNK_GRACE).await;
            first
        };
        // `server/discover` first; an older server's error (or its silence
        // for rmcp's 10 s) falls back to `initialize`. A server that died on
        // the probe is started again with `initialize` only (`legacy`).
        let lifecycle = if spec.legacy {
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
            connected = tokio::time::timeout(spec.handshake, connecting) => connected,
            Some(first) = not_mcp => {
                kill();
                return failed(
                    format!(
                        "server `{}` wrote to stdout what is not MCP and did not answer `initialize`: {first}. \
                         Fix: its command must start an MCP stdio server that writes only JSON-RPC to stdout (logs go to stderr)",
                        spec.name
                    ),
                    None,
                    &log,
                );
            }
        };
        // Said with a failure below, when it explains it.
        let junk_note = || {
            junk.borrow()
                .as_ref()
                .map(|j| format!("; before that, {j}"))
                .unwrap_or_default()
        };
        let service = match connected {
            Ok(Ok(service)) => service,
            Ok(Err(e)) => {
                // Usually the process exited: report its code and stderr.
                let code = exit_code_soon(&mut exit, &kill).await;
                let _ = stderr_done.await;
                let reason = match code {
                    _ if let Some(missing) =
                        missing_program(&spec.command, code, &log.tail_text(TAIL_LINES)) =>
                    {
                        format!("server `{}` could not start: {missing}", spec.name)
                    }
                    Some(c) => format!(
                        "server `{}` exited with code {c} during the MCP handshake{}{}",
                        spec.name,
                        junk_note(),
                        read_only_hint(&spec.name, &log.tail_text(TAIL_LINES)).unwrap_or_default()
                    ),
                    None => format!(
                        "server `{}` failed the MCP handshake: {e}{}",
                        spec.name,
                        junk_note()
                    ),
                };
                let child = failed(reason, code, &log);
                let missing = matches!(code, Some(126 | 127));
                if !spec.legacy && !missing && junk.borrow().is_none() {
                    child
                        .probe_failed
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
                return child;
            }
            Err(_) => {
                kill();
                return failed(
                    format!(
                        "server `{}` did not answer `server/discover` or `initialize` within {} s",
                        spec.name,
                        spec.handshake.as_secs()
                    ),
                    None,
                    &log,
                );
            }
        };
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
            shared.lane.set_meta(&client);
        }
        let listing = shared.list(&peer, &offers);
        match tokio::time::timeout(spec.handshake, listing).await {
            Ok(Ok(listed)) => shared.set_catalog(listed),
            Ok(Err(e)) => {
                kill();
                return failed(
                    format!("server `{}` failed tools/list: {e}", spec.name),
                    None,
                    &log,
                );
            }
            Err(_) => {
                kill();
                return failed(
                    format!(
                        "server `{}` did not answer tools/list within {} s",
                        spec.name,
                        spec.handshake.as_secs()
                    ),
                    None,
                    &log,
                );
            }
        }

        let child = Arc::new(Child {
            shared: shared.clone(),
            log: log.clone(),
            status: RwLock::new(Status::Ready),
            handshake,
            offers,
            modern,
            peer: Some(peer.clone()),
            died: CancellationToken::new(),
            exit_code: Mutex::new(None),
            call_timeout: spec.call_timeout,
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
        // The level the agent set before this child started.
        if let Some(level) = shared.upstream.level() {
            child.set_level(level).await;
        }
        // Notice the child's death: withdraw its tools and say so.
        let watched = Arc::downgrade(&child);
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
            };
            child.died.cancel();
            let _ = child.shared.changed.send(());
        });
        child
    }
}
