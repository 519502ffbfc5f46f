//! The sessions this process owns: launch, list, stop, logs and routing calls
//! to their servers. Every container started here is removed by `stop_all`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmcp::model::{CallToolResult, JsonObject, Tool};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::container::{self, Owner};
use super::{
    Isolation, LaunchInput, Logs, LogsInput, Policy, ServerReport, SessionInfo, SessionState,
    ToolReport,
};
use crate::engine::{self, podman};
use crate::image::{self, Built, Inspected, Progress};
use crate::labels::{Requests, ServerSpec, Servers};
use crate::proxy::{Child, ProgressSink, StartSpec, Status, names};
use crate::{Error, Result};

/// One running session.
struct Session {
    id: String,
    container: String,
    container_id: String,
    image: String,
    image_id: String,
    isolation: Isolation,
    lease_until: u64,
    specs: BTreeMap<String, ServerSpec>,
    servers: BTreeMap<String, Arc<Child>>,
    warnings: Vec<String>,
    /// Set once its container has been removed because no server is left.
    reaped: AtomicBool,
}

impl Session {
    /// Running while at least one server is ready.
    fn state(&self) -> SessionState {
        if self.servers.values().any(|c| c.is_ready()) {
            SessionState::Running
        } else {
            SessionState::Ended
        }
    }
}

/// All sessions of this process.
pub struct Sessions {
    policy: Policy,
    owner: Owner,
    /// Decided on the first launch (it asks podman), not at start-up.
    user: tokio::sync::OnceCell<container::UserMode>,
    pause: String,
    map: Mutex<HashMap<String, Arc<Session>>>,
    /// Tags built by this process: what they named then (see `remember_build`).
    resolved: Mutex<HashMap<String, Arc<Resolved>>>,
    /// Launches under way: they count against `max_sessions` before they are in `map`.
    launching: AtomicUsize,
    /// Fires when the set of exported tools may have changed.
    changed: tokio::sync::broadcast::Sender<()>,
    /// The task that removes the containers of ended sessions (see `reap`).
    reaper: std::sync::Once,
}

impl Sessions {
    pub fn new(policy: Policy) -> Result<Sessions> {
        let (changed, _) = tokio::sync::broadcast::channel(64);
        Ok(Sessions {
            policy,
            owner: Owner::current(),
            user: tokio::sync::OnceCell::new(),
            pause: container::pause_binary()?,
            map: Mutex::new(HashMap::new()),
            resolved: Mutex::new(HashMap::new()),
            launching: AtomicUsize::new(0),
            reaper: std::sync::Once::new(),
            changed,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A receiver that fires whenever the exported tools may have changed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<()> {
        self.changed.subscribe()
    }

    fn get(&self, id: &str) -> Result<Arc<Session>> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| {
                Error::invalid(
                    "session",
                    id,
                    "no such session of this mcpod",
                    "list them with list_sessions",
                )
            })
    }

    fn all(&self) -> Vec<Arc<Session>> {
        let mut all: Vec<_> = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Launch a session. Cancelling (or dropping the future) removes the container.
    pub async fn launch(
        self: &Arc<Self>,
        input: LaunchInput,
        progress: Progress,
        cancel: CancellationToken,
    ) -> Result<SessionInfo> {
        self.reaper.call_once(|| {
            tokio::spawn(reap(Arc::downgrade(self), self.changed.subscribe()));
        });
        let token = cancel.child_token();
        let guard = token.clone().drop_guard();
        let this = self.clone();
        let result =
            tokio::spawn(async move { this.launch_inner(input, progress, token).await }).await;
        guard.disarm();
        result.map_err(|e| Error::UnexpectedOutput {
            command: "launch_session".into(),
            reason: e.to_string(),
        })?
    }

    async fn launch_inner(
        &self,
        input: LaunchInput,
        progress: Progress,
        cancel: CancellationToken,
    ) -> Result<SessionInfo> {
        // Checked and reserved under the map's lock, so launches at once cannot
        // all pass the check before any of them is in the map.
        let _slot = {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            let running = map
                .values()
                .filter(|s| s.state() == SessionState::Running)
                .count()
                + self.launching.load(Ordering::SeqCst);
            if running >= self.policy.max_sessions {
                return Err(Error::invalid(
                    "session count",
                    running.to_string(),
                    format!(
                        "the operator allows {} sessions at once",
                        self.policy.max_sessions
                    ),
                    "stop a session first (stop_session)",
                ));
            }
            self.launching.fetch_add(1, Ordering::SeqCst);
            LaunchSlot(&self.launching)
        };
        let key = image::reference::qualified(&input.image);
        let remembered = self
            .resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(image) = remembered {
            match self.launch_image(&input, &image, &progress, &cancel).await {
                // The image this tag named when it was built may be gone (gc,
                // a rebuild elsewhere): ask podman again, once.
                Err(Error::CommandFailed { .. }) => {
                    self.resolved
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&key);
                }
                done => return done,
            }
        }
        let image = Resolved::from(image::inspect_labels(&input.image).await?);
        self.launch_image(&input, &image, &progress, &cancel).await
    }

    /// Remember what a build produced, so launching its tag needs no
    /// `podman image inspect`: the tag is content-addressed and the image ID
    /// names immutable content (labels included).
    pub fn remember_build(&self, built: &Built) {
        self.resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(built.tag.clone(), Arc::new(Resolved::from(built)));
    }

    async fn launch_image(
        &self,
        input: &LaunchInput,
        image: &Resolved,
        progress: &Progress,
        cancel: &CancellationToken,
    ) -> Result<SessionInfo> {
        if image.servers.is_empty() {
            return Err(Error::invalid(
                "image",
                &input.image,
                "its labels declare no MCP servers",
                "build it with build_image and `servers`, or add an io.mcpod.servers label",
            ));
        }
        let chosen: BTreeMap<String, ServerSpec> = match &input.servers {
            None => image.servers.clone(),
            Some(names) => names
                .iter()
                .map(|n| {
                    image
                        .servers
                        .get(n)
                        .map(|s| (n.clone(), s.clone()))
                        .ok_or_else(|| {
                            Error::invalid(
                                "server",
                                n,
                                "the image does not declare it",
                                format!(
                                    "choose from: {}",
                                    image.servers.keys().cloned().collect::<Vec<_>>().join(", ")
                                ),
                            )
                        })
                })
                .collect::<Result<_>>()?,
        };
        self.policy.check_env_names(input.env.keys())?;
        let mut envs = BTreeMap::new();
        for (name, spec) in &chosen {
            let env = spec.resolve_env(name, &self.policy.allowed_env, |var| {
                input
                    .env
                    .get(var)
                    .cloned()
                    .or_else(|| std::env::var(var).ok())
            })?;
            envs.insert(name.clone(), env);
        }
        let user = self.user.get_or_init(container::UserMode::detect).await;
        let isolation =
            self.policy
                .grant(&input.ask(), image.requests.as_ref(), user.describe())?;

        let id = format!("s{}", &engine::nonce()[..5]);
        let name = format!("mcpod-{id}");
        let plan = container::Plan {
            session: &id,
            name: &name,
            image_id: &image.id,
            isolation: &isolation,
            user,
            owner: &self.owner,
        };
        (progress)(format!("starting container {name} from {}", input.image));
        let started = tokio::select! {
            started = self.start_container(&plan, &chosen, &envs, progress) => started,
            _ = cancel.cancelled() => Err(Error::Cancelled { what: "launch_session".into() }),
        };
        let (container_id, servers) = match started {
            Ok(started) => started,
            Err(e) => {
                let _ = podman::remove(std::slice::from_ref(&name)).await;
                let _ = std::fs::remove_file(container::cidfile(&name));
                return Err(e);
            }
        };
        let lease_until = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
            + isolation.lease_secs;
        let mut warnings = image.warnings.clone();
        warnings.extend(isolation.warnings.iter().cloned());
        let session = Arc::new(Session {
            id: id.clone(),
            container: name,
            container_id,
            image: input.image.clone(),
            image_id: image.id.clone(),
            isolation,
            lease_until,
            specs: chosen,
            servers,
            warnings,
            reaped: AtomicBool::new(false),
        });
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, session.clone());
        let _ = self.changed.send(());
        Ok(self.info(&session))
    }

    /// Start the container and its servers: the container ID and each server.
    /// One server runs as the container's own process; several share a paused
    /// container and start with `podman exec`, so one failing leaves the others.
    async fn start_container(
        &self,
        plan: &container::Plan<'_>,
        chosen: &BTreeMap<String, ServerSpec>,
        envs: &BTreeMap<String, BTreeMap<String, String>>,
        progress: &Progress,
    ) -> Result<(String, BTreeMap<String, Arc<Child>>)> {
        let no_env = BTreeMap::new();
        if let (1, Some((server, spec))) = (chosen.len(), chosen.iter().next()) {
            let env = envs.get(server).unwrap_or(&no_env);
            let command = server_command(spec, env);
            let cidfile = container::cidfile(plan.name);
            let _ = std::fs::remove_file(&cidfile);
            let podman = container::run_args(plan, &container::Entry::Server(&command));
            let child = Child::start(self.child_spec(server, spec, podman, env.clone())).await;
            let container_id = std::fs::read_to_string(&cidfile)
                .map(|id| id.trim().to_string())
                .unwrap_or_default();
            let _ = std::fs::remove_file(&cidfile);
            // 125: podman itself failed (the container never ran).
            if let Status::Failed {
                exit_code: Some(125),
                stderr_tail,
                ..
            } = child.status()
            {
                return Err(Error::CommandFailed {
                    command: "podman run".into(),
                    status: "exit code 125".into(),
                    stderr_tail,
                    hint: String::new(),
                });
            }
            report(progress, server, &child);
            return Ok((container_id, BTreeMap::from([(server.clone(), child)])));
        }

        let pause = container::Entry::Pause {
            binary: &self.pause,
        };
        let container_id = podman::run_detached(container::run_args(plan, &pause)).await?;
        let mut set = tokio::task::JoinSet::new();
        for (server, spec) in chosen {
            let env = envs.get(server).cloned().unwrap_or_default();
            let podman = container::exec_args(plan.name, &server_command(spec, &env));
            let start = self.child_spec(server, spec, podman, env);
            let server = server.clone();
            set.spawn(async move { (server, Child::start(start).await) });
        }
        let mut started = BTreeMap::new();
        while let Some(joined) = set.join_next().await {
            if let Ok((server, child)) = joined {
                report(progress, &server, &child);
                started.insert(server, child);
            }
        }
        Ok((container_id, started))
    }

    /// How to start and talk to `server`.
    fn child_spec(
        &self,
        server: &str,
        spec: &ServerSpec,
        podman: Vec<OsString>,
        env: BTreeMap<String, String>,
    ) -> StartSpec {
        StartSpec {
            name: server.to_string(),
            podman,
            env,
            handshake: Duration::from_secs(self.policy.handshake_secs),
            call_timeout: Duration::from_secs(
                spec.call_timeout_secs
                    .map(u64::from)
                    .unwrap_or(self.policy.default_call_secs),
            ),
            changed: self.changed.clone(),
        }
    }

    fn info(&self, s: &Session) -> SessionInfo {
        let servers = s
            .servers
            .iter()
            .map(|(name, child)| {
                let tools = child
                    .tools()
                    .iter()
                    .map(|t| ToolReport {
                        name: names::exported(&s.id, name, &t.name),
                        upstream: t.name.to_string(),
                        description: t.description.as_ref().map(|d| d.to_string()),
                    })
                    .collect();
                (
                    name.clone(),
                    ServerReport {
                        status: child.status(),
                        handshake: child.handshake.clone(),
                        tools,
                    },
                )
            })
            .collect();
        SessionInfo {
            session: s.id.clone(),
            state: s.state(),
            container: s.container.clone(),
            container_id: s.container_id.clone(),
            image: s.image.clone(),
            image_id: s.image_id.clone(),
            isolation: s.isolation.clone(),
            lease_until: s.lease_until,
            servers,
            client_config: client_config(s),
            warnings: s.warnings.clone(),
        }
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        self.all().iter().map(|s| self.info(s)).collect()
    }

    /// Stop one session: its container is removed with everything in it.
    pub async fn stop(&self, id: &str) -> Result<()> {
        let session = self.get(id)?;
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let _ = self.changed.send(());
        podman::remove(std::slice::from_ref(&session.container)).await
    }

    /// Stop every session of this process (one podman call).
    pub async fn stop_all(&self) -> Result<usize> {
        let all: Vec<Arc<Session>> = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        let names: Vec<String> = all.iter().map(|s| s.container.clone()).collect();
        podman::remove(&names).await?;
        Ok(names.len())
    }

    pub fn logs(&self, input: &LogsInput) -> Result<Logs> {
        let session = self.get(&input.session)?;
        let tail = input.tail.unwrap_or(100);
        let servers = session
            .servers
            .iter()
            .filter(|(name, _)| input.server.as_ref().is_none_or(|s| s == *name))
            .map(|(name, child)| (name.clone(), child.log.tail(tail)))
            .collect::<BTreeMap<_, _>>();
        if let Some(server) = &input.server
            && servers.is_empty()
        {
            return Err(Error::invalid(
                "server",
                server,
                "the session has no such server",
                "list them with list_sessions",
            ));
        }
        Ok(Logs {
            session: session.id.clone(),
            servers,
        })
    }

    /// Every tool of every ready server, under its exported name.
    pub fn tools(&self) -> Vec<Tool> {
        let mut out = Vec::new();
        for s in self.all() {
            for (name, child) in &s.servers {
                for mut tool in child.tools() {
                    let upstream = tool.name.to_string();
                    tool.name = names::exported(&s.id, name, &upstream).into();
                    let note = format!("[mcpod session {} server {name}: `{upstream}`]", s.id);
                    tool.description = Some(match tool.description {
                        Some(d) => format!("{d} {note}").into(),
                        None => note.into(),
                    });
                    out.push(tool);
                }
            }
        }
        out
    }

    /// Find an exported tool name: (session, server, upstream tool name).
    pub fn resolve(&self, exported: &str) -> Option<(String, String, String)> {
        let (session, _) = exported.split_once('_')?;
        let s = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session)
            .cloned()?;
        s.servers.iter().find_map(|(name, child)| {
            child.with_tools(|tools| {
                tools
                    .iter()
                    .find(|t| names::exported(&s.id, name, &t.name) == exported)
                    .map(|t| (s.id.clone(), name.clone(), t.name.to_string()))
            })
        })
    }

    /// Call `tool` on `server` of `session`.
    pub async fn call(
        &self,
        session: &str,
        server: &str,
        tool: &str,
        arguments: Option<JsonObject>,
        progress: Option<ProgressSink>,
        cancel: CancellationToken,
    ) -> std::result::Result<CallToolResult, String> {
        let s = self.get(session).map_err(|e| e.to_string())?;
        let child = s.servers.get(server).ok_or_else(|| {
            format!(
                "session `{session}` has no server `{server}`; it has: {}",
                s.servers.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        child.call(tool, arguments, progress, cancel).await
    }
}

/// Whenever a child dies: remove the containers of sessions left without a
/// ready server (a paused container would idle until its lease; a hung one
/// would keep running). The session stays listed, `ended`, until stopped.
async fn reap(sessions: Weak<Sessions>, mut changed: tokio::sync::broadcast::Receiver<()>) {
    loop {
        match changed.recv().await {
            Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
        let Some(sessions) = sessions.upgrade() else {
            return;
        };
        let ended: Vec<String> = sessions
            .all()
            .iter()
            .filter(|s| s.state() == SessionState::Ended && !s.reaped.swap(true, Ordering::SeqCst))
            .map(|s| s.container.clone())
            .collect();
        drop(sessions);
        if !ended.is_empty() {
            tracing::info!(
                "removing the containers of ended sessions: {}",
                ended.join(", ")
            );
            if let Err(e) = podman::remove(&ended).await {
                tracing::warn!("could not remove ended sessions' containers: {e}");
            }
        }
    }
}

/// A server's command as the container runs it.
fn server_command<'a>(
    spec: &'a ServerSpec,
    env: &'a BTreeMap<String, String>,
) -> container::ServerCommand<'a> {
    container::ServerCommand {
        argv: &spec.command,
        env,
        workdir: spec.workdir.as_deref(),
    }
}

/// Say how a server came up.
fn report(progress: &Progress, server: &str, child: &Child) {
    let state = match child.status() {
        Status::Ready => format!("ready with {} tools", child.tools().len()),
        Status::Failed { reason, .. } => format!("failed: {reason}"),
    };
    (progress)(format!("server {server}: {state}"));
}

/// What a launch needs of an image: its ID and what its labels declare.
struct Resolved {
    id: String,
    servers: Servers,
    requests: Option<Requests>,
    warnings: Vec<String>,
}

impl From<Inspected> for Resolved {
    fn from(i: Inspected) -> Self {
        Resolved {
            id: i.id,
            servers: i.servers,
            requests: i.requests,
            warnings: i.warnings,
        }
    }
}

impl From<&Built> for Resolved {
    fn from(b: &Built) -> Self {
        Resolved {
            id: b.image_id.clone(),
            servers: b.servers.clone(),
            requests: b.requests.clone(),
            warnings: b.label_warnings.clone(),
        }
    }
}

/// A launch under way, counted in `Sessions::launching` until it ends (the
/// session is in the map by then, or the launch failed).
struct LaunchSlot<'a>(&'a AtomicUsize);

impl Drop for LaunchSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A ready `mcpServers` block: each server through `podman exec -i`. Env
/// references stay references (`${NAME}`), so no secret is printed.
fn client_config(s: &Session) -> serde_json::Value {
    let mut servers = serde_json::Map::new();
    for (name, spec) in &s.specs {
        let mut args = vec!["exec".to_string(), "-i".to_string()];
        let mut env = serde_json::Map::new();
        for (key, value) in &spec.env {
            match crate::labels::env_ref(value) {
                Some(var) => {
                    args.push("--env".into());
                    args.push(key.clone());
                    env.insert(key.clone(), json!(format!("${{{var}}}")));
                }
                None => {
                    args.push("--env".into());
                    args.push(format!("{key}={value}"));
                }
            }
        }
        if let Some(dir) = &spec.workdir {
            args.push("--workdir".into());
            args.push(dir.clone());
        }
        args.push(s.container.clone());
        args.extend(spec.command.iter().cloned());
        let mut entry = json!({"command": "podman", "args": args});
        if !env.is_empty() {
            entry["env"] = serde_json::Value::Object(env);
        }
        servers.insert(format!("{}-{name}", s.id), entry);
    }
    json!({ "mcpServers": servers })
}
