//! One child MCP server: an rmcp client on its stdio (a stream of its
//! session, see `session/stream.rs`), its stderr kept, its exit noticed, and
//! calls passed through with progress, cancellation and a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotificationParam,
    ClientCapabilities, ClientConfig, ClientRequest, Implementation, JsonObject,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ProtocolVersion, ResultType,
    ServerResult, Tool,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use schemars::JsonSchema;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::log::{self, LogRing};
use super::tools;
use crate::engine::process::BoundedLines;
use crate::wire;

/// Receives the child's progress for one call, already re-addressed to the caller.
pub type ProgressSink = Arc<dyn Fn(ProgressNotificationParam) + Send + Sync>;

/// How long a starting server that wrote something other than MCP still
/// gets to answer `initialize`.
const JUNK_GRACE: Duration = Duration::from_secs(1);

/// Lines of stderr an error message quotes.
const TAIL_LINES: usize = 20;

/// How a child server is doing.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Ready,
    Failed {
        /// Why, in one sentence.
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        stderr_tail: String,
    },
}

/// What the child said about itself in the handshake.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Handshake {
    pub protocol_version: String,
    pub name: String,
    pub version: String,
}

/// State shared between the child's connection handler and its owner.
struct Shared {
    name: String,
    tools: RwLock<Vec<Tool>>,
    /// list_changed notifications not yet answered by a re-listing.
    relist: AtomicUsize,
    /// What `tools::admit` left out of the last tool list, and why.
    warnings: RwLock<Vec<String>>,
    log: Arc<LogRing>,
    routes: Mutex<HashMap<ProgressToken, ProgressSink>>,
    /// Fires whenever this child's tool list changes or the child dies.
    changed: tokio::sync::broadcast::Sender<()>,
}

/// Pages of `tools/list` asked of a child; a child that always has another
/// page would otherwise be asked for ever, and its tools kept without bound.
const MAX_TOOL_PAGES: usize = 16;

/// A child's tools, page after page up to [`MAX_TOOL_PAGES`] or until there
/// are more than `tools::admit` keeps; and whether pages were left unread.
async fn list_tools(peer: &Peer<RoleClient>) -> Result<(Vec<Tool>, bool), rmcp::ServiceError> {
    let mut tools = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_TOOL_PAGES {
        let page = peer
            .list_tools(Some(PaginatedRequestParams::default().with_cursor(cursor)))
            .await?;
        tools.extend(page.tools);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok((tools, false));
        }
        if tools.len() > tools::MAX_PER_SERVER {
            break;
        }
    }
    Ok((tools, true))
}

impl Shared {
    /// Take a tool list from the child, as far as `tools::admit` lets it in.
    fn set_tools(&self, (listed, unread): (Vec<Tool>, bool)) {
        let (tools, mut warnings) = tools::admit(&self.name, listed);
        if unread {
            warnings.push(format!(
                "server `{}` has more pages of tools than mcpod reads ({MAX_TOOL_PAGES} pages, or past {} tools); the rest are not exported",
                self.name,
                tools::MAX_PER_SERVER
            ));
        }
        for w in &warnings {
            self.log.push(&format!("mcpod: {w}"));
            tracing::warn!("{w}");
        }
        *self.tools.write().unwrap_or_else(|p| p.into_inner()) = tools;
        *self.warnings.write().unwrap_or_else(|p| p.into_inner()) = warnings;
    }
}

/// The rmcp client side of the child's connection.
struct Handler {
    shared: Arc<Shared>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcpod", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        let sink = self
            .shared
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&params.progress_token)
            .cloned();
        if let Some(sink) = sink {
            sink(params);
        }
    }

    /// Re-list the child's tools: one re-listing at a time, however many
    /// notifications arrive (those that come meanwhile make one more).
    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        let shared = self.shared.clone();
        if shared.relist.fetch_add(1, Ordering::SeqCst) > 0 {
            return;
        }
        tokio::spawn(async move {
            loop {
                let asked = shared.relist.load(Ordering::SeqCst);
                match list_tools(&context.peer).await {
                    Ok(tools) => {
                        shared.set_tools(tools);
                        let _ = shared.changed.send(());
                    }
                    Err(e) => tracing::warn!(server = %shared.name, "re-listing tools failed: {e}"),
                }
                // Done unless more notifications came while listing.
                if shared
                    .relist
                    .compare_exchange(asked, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return;
                }
                shared.relist.store(1, Ordering::SeqCst);
            }
        });
    }
}

/// A started (or failed) child server.
pub struct Child {
    shared: Arc<Shared>,
    pub log: Arc<LogRing>,
    status: RwLock<Status>,
    pub handshake: Option<Handshake>,
    peer: Option<Peer<RoleClient>>,
    /// Cancelled when the child process exits.
    died: CancellationToken,
    exit_code: Mutex<Option<i32>>,
    call_timeout: Duration,
    /// Kept so the connection lives as long as the child; closing it ends the server.
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, Handler>>>,
}

/// A byte stream from a server.
pub type Pipe = Box<dyn AsyncRead + Send + Unpin>;

/// A started server's pipes, wherever it runs.
pub struct ServerIo {
    /// Its stdout.
    pub read: Pipe,
    /// Its stdin; shutting it down is the MCP stdio shutdown.
    pub write: Box<dyn AsyncWrite + Send + Unpin>,
    /// Its stderr, once it is there (`None`: there will be none).
    pub stderr: Pin<Box<dyn Future<Output = Option<Pipe>> + Send>>,
    /// Its exit code (128 + the signal that killed it) once it has exited
    /// and its output has drained; an error when its session ended first.
    pub exit: tokio::sync::oneshot::Receiver<i32>,
    /// SIGKILL it.
    pub kill: Box<dyn Fn() + Send + Sync>,
}

/// Why a server could not be started.
pub struct NotStarted {
    pub reason: String,
    /// Its program does not exist in the image.
    pub missing: bool,
}

/// How to talk to one server.
pub struct StartSpec {
    pub name: String,
    /// The server's command (its argv), for messages.
    pub command: Vec<String>,
    pub handshake: Duration,
    pub call_timeout: Duration,
    pub changed: tokio::sync::broadcast::Sender<()>,
}

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
            tools: RwLock::new(Vec::new()),
            warnings: RwLock::new(Vec::new()),
            relist: AtomicUsize::new(0),
            log: log.clone(),
            routes: Mutex::new(HashMap::new()),
            changed: spec.changed,
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
                peer: None,
                died: CancellationToken::new(),
                exit_code: Mutex::new(exit_code),
                call_timeout: spec.call_timeout,
                service: tokio::sync::Mutex::new(None),
            })
        };

        let mut io = match io {
            Ok(io) => io,
            Err(NotStarted { reason, missing }) => {
                let missing = missing
                    .then(|| missing_program(&spec.command, Some(127)))
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
        );
        // A server that writes something else than MCP (a banner, its input
        // echoed, logs on stdout) gets a moment to answer `initialize` after
        // all; then it fails, quoting what it wrote, not after the deadline.
        let not_mcp = async {
            let first = junk.wait_for(Option::is_some).await.ok()?.clone();
            tokio::time::sleep(JUNK_GRACE).await;
            first
        };
        let connected = tokio::select! {
            connected = tokio::time::timeout(spec.handshake, handler.serve(transport)) => connected,
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
                    _ if let Some(missing) = missing_program(&spec.command, code) => {
                        format!("server `{}` could not start: {missing}", spec.name)
                    }
                    Some(c) => format!(
                        "server `{}` exited with code {c} during the MCP handshake{}",
                        spec.name,
                        junk_note()
                    ),
                    None => format!(
                        "server `{}` failed the MCP handshake: {e}{}",
                        spec.name,
                        junk_note()
                    ),
                };
                return failed(reason, code, &log);
            }
            Err(_) => {
                kill();
                return failed(
                    format!(
                        "server `{}` did not answer `initialize` within {} s",
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
        let peer = service.peer().clone();
        match tokio::time::timeout(spec.handshake, list_tools(&peer)).await {
            Ok(Ok(tools)) => shared.set_tools(tools),
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
            peer: Some(peer),
            died: CancellationToken::new(),
            exit_code: Mutex::new(None),
            call_timeout: spec.call_timeout,
            service: tokio::sync::Mutex::new(Some(service)),
        });
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

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn status(&self) -> Status {
        self.status
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.status(), Status::Ready)
    }

    /// What was left out of the child's tool list, and why.
    pub fn warnings(&self) -> Vec<String> {
        self.shared
            .warnings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The child's tools (empty once it has died).
    pub fn tools(&self) -> Vec<Tool> {
        self.with_tools(<[Tool]>::to_vec)
    }

    /// Look at the child's tools (none once it has died) without copying them.
    pub fn with_tools<R>(&self, f: impl FnOnce(&[Tool]) -> R) -> R {
        if !self.is_ready() {
            return f(&[]);
        }
        f(&self.shared.tools.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Call `tool`; progress goes to `progress`, `cancel` cancels the child's request.
    pub async fn call(
        &self,
        tool: &str,
        arguments: Option<JsonObject>,
        progress: Option<ProgressSink>,
        cancel: CancellationToken,
    ) -> Result<CallToolResult, String> {
        let name = &self.shared.name;
        let Some(peer) = self.peer.as_ref().filter(|_| self.is_ready()) else {
            return Err(self.dead_message(tool));
        };
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = arguments;
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = peer
            .send_cancellable_request(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| format!("could not send the call to server `{name}`: {e}"))?;
        let token = handle.progress_token.clone();
        let id = handle.id.clone();
        if let Some(sink) = progress {
            self.shared
                .routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(token.clone(), sink);
        }
        let cancel_child = |reason: String| {
            let peer = peer.clone();
            let id = id.clone();
            async move {
                let _ = peer
                    .notify_cancelled(CancelledNotificationParam::new(Some(id), Some(reason)))
                    .await;
            }
        };
        let outcome = tokio::select! {
            response = handle.await_response() => match response {
                Ok(ServerResult::CallToolResult(mut result)) => {
                    // Older children leave resultType out; newer callers need it.
                    result.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(result)
                }
                Ok(other) => Err(format!("server `{name}` answered tools/call with an unexpected result: {other:?}")),
                Err(rmcp::ServiceError::McpError(e)) if e.code == wire::TOO_LARGE || e.code == wire::UNPARSABLE => Err(format!(
                    "{}; the call of `{tool}` failed. Fix: ask for less at once (a smaller range, page or file)",
                    e.message
                )),
                Err(rmcp::ServiceError::McpError(e)) => Err(format!("server `{name}` rejected the call of `{tool}`: {}", e.message)),
                Err(_) => {
                    // The connection closed: wait a moment for the exit code.
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.died.cancelled()).await;
                    Err(self.dead_message(tool))
                }
            },
            _ = cancel.cancelled() => {
                cancel_child("cancelled by the caller".into()).await;
                Err(format!("the call of `{tool}` on server `{name}` was cancelled; the server was told to stop it"))
            }
            _ = self.died.cancelled() => Err(self.dead_message(tool)),
            _ = tokio::time::sleep(self.call_timeout) => {
                cancel_child("mcpod call deadline".into()).await;
                Err(format!(
                    "server `{name}` did not answer `{tool}` within {} s; the call was cancelled. Fix: raise call_timeout_secs in the image's label, or make the call smaller",
                    self.call_timeout.as_secs()
                ))
            }
        };
        self.shared
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&token);
        outcome
    }

    fn dead_message(&self, tool: &str) -> String {
        let name = &self.shared.name;
        let tail = self.log.tail_text(TAIL_LINES);
        let code = *self.exit_code.lock().unwrap_or_else(|p| p.into_inner());
        let how = match code {
            Some(137) => "was killed (exit code 137: its container was stopped or removed, its lease ended, or it ran out of memory)".to_string(),
            Some(c) => format!("exited with code {c}"),
            None => "is not running".to_string(),
        };
        format!("server `{name}` {how}; the call of `{tool}` failed. Its stderr ends with:\n{tail}")
    }

    /// Close the connection (the server sees EOF on stdin) and give the
    /// server `grace` to exit, as the MCP stdio shutdown asks. A server that
    /// never connected is not waited for.
    pub async fn shut_down(&self, grace: Duration) {
        if let Some(service) = self.service.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), service.cancel()).await;
        }
        if self.peer.is_some() {
            let _ = tokio::time::timeout(grace, self.died.cancelled()).await;
        }
    }
}

/// Why a server's program did not start, when its exit code says the image
/// has no such program (127: the supervisor found none, or a shell said
/// "command not found"); with the way out for `npx`/`uvx`-style runners.
fn missing_program(command: &[String], code: Option<i32>) -> Option<String> {
    let program = command.first().map(String::as_str).unwrap_or_default();
    if code != Some(127) {
        return None;
    }
    let fix = match runner_package(command) {
        Some((runner, Some(reference))) => format!(
            "`{runner}` fetches packages when it runs, and a session has no network: provision the package instead, `launch_session {{\"image\": \"{reference}\"}}` (or provision_server {{\"package\": \"{reference}\"}}), which installs it at build time and runs its own program"
        ),
        Some((runner, None)) => format!(
            "`{runner}` fetches packages when it runs, and a session has no network: provision the package instead (launch_session with `image` `npm:NAME@VERSION` or `pypi:NAME==VERSION`), which installs it at build time and runs its own program"
        ),
        None => "name a program the image has (an absolute path, or one on the image's PATH)"
            .to_string(),
    };
    Some(format!(
        "the program `{program}` is not in the image. Fix: {fix}"
    ))
}

/// For an `npx`/`uvx`-style command: the runner, and the package reference
/// it would have fetched (`npm:PKG`, `pypi:PKG`), when it names one.
fn runner_package(command: &[String]) -> Option<(&str, Option<String>)> {
    let runner = std::path::Path::new(command.first()?)
        .file_name()?
        .to_str()?;
    let registry = match runner {
        "npx" | "bunx" | "pnpx" => "npm",
        "uvx" | "pipx" => "pypi",
        _ => return None,
    };
    let mut args = command[1..].iter();
    let mut package = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--from" | "--package" | "-p" => {
                package = args.next().cloned();
                break;
            }
            a if a.starts_with('-') => continue,
            a => {
                package = Some(a.to_string());
                break;
            }
        }
    }
    let reference = package
        .map(|p| format!("{registry}:{p}"))
        .filter(|r| crate::provision::PackageRef::parse("command", r).is_ok());
    Some((runner, reference))
}

/// The exit code if the process ends within a moment (else it is killed).
async fn exit_code_soon(
    exit: &mut tokio::sync::oneshot::Receiver<i32>,
    kill: &(dyn Fn() + Send + Sync),
) -> Option<i32> {
    match tokio::time::timeout(Duration::from_secs(3), exit).await {
        Ok(Ok(code)) => Some(code),
        _ => {
            kill();
            None
        }
    }
}

/// Where a child's refused messages are told: its log (what session_logs
/// shows), and mcpod's stderr.
fn problem_reporter(server: &str, log: Arc<LogRing>) -> wire::OnProblem {
    let server = server.to_string();
    Arc::new(move |problem: String| {
        log.push(&format!("mcpod: {problem}"));
        tracing::warn!(server = %server, "{problem}");
    })
}

/// Keep the child's stderr in its ring, a bounded line at a time.
async fn copy_lines(stderr: impl AsyncRead + Unpin, log: Arc<LogRing>) {
    let mut lines = BoundedLines::new(stderr, log::LINE_BYTES);
    while let Some(line) = lines.next_line().await {
        log.push(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::runner_package;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn an_npx_or_uvx_command_names_the_package_to_provision() {
        assert_eq!(
            runner_package(&argv(
                "npx -y @modelcontextprotocol/server-memory@2026.8.31"
            )),
            Some((
                "npx",
                Some("npm:@modelcontextprotocol/server-memory@2026.8.31".into())
            ))
        );
        assert_eq!(
            runner_package(&argv(
                "/usr/bin/uvx mcp-server-time==2026.10.19 --local-timezone UTC"
            )),
            Some(("uvx", Some("pypi:mcp-server-time==2026.10.19".into())))
        );
        assert_eq!(
            runner_package(&argv("uvx --from mcp-server-git mcp-server-git")),
            Some(("uvx", Some("pypi:mcp-server-git".into())))
        );
        assert_eq!(
            runner_package(&argv("npx -y ../../etc")),
            Some(("npx", None))
        );
        assert_eq!(runner_package(&argv("node /app/x.js")), None);
    }
}
