//! The sessions this process owns: launch, list, stop, logs and routing calls
//! to their servers. Every container started here is removed by `stop_all`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmcp::model::{CallToolResult, JsonObject, Tool};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::container::{self, Owner};
use super::{
    Isolation, LaunchInput, Logs, LogsInput, Policy, ServerReport, SessionInfo, ToolReport,
};
use crate::engine::{self, podman};
use crate::image::{self, Progress};
use crate::labels::ServerSpec;
use crate::proxy::{Child, ProgressSink, StartSpec, names};
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
}

/// All sessions of this process.
pub struct Sessions {
    policy: Policy,
    owner: Owner,
    /// Decided on the first launch (it asks podman), not at start-up.
    user: tokio::sync::OnceCell<container::UserMode>,
    pause: String,
    map: Mutex<HashMap<String, Arc<Session>>>,
    /// Launches under way: they count against `max_sessions` before they are in `map`.
    launching: AtomicUsize,
    /// Fires when the set of exported tools may have changed.
    changed: tokio::sync::broadcast::Sender<()>,
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
            launching: AtomicUsize::new(0),
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
            let running = map.len() + self.launching.load(Ordering::SeqCst);
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
        let inspected = image::inspect_labels(&input.image).await?;
        if inspected.servers.is_empty() {
            return Err(Error::invalid(
                "image",
                &input.image,
                "its labels declare no MCP servers",
                "build it with build_image and `servers`, or add an io.mcpod.servers label",
            ));
        }
        let chosen: BTreeMap<String, ServerSpec> = match &input.servers {
            None => inspected.servers.clone(),
            Some(names) => names
                .iter()
                .map(|n| {
                    inspected
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
                                    inspected
                                        .servers
                                        .keys()
                                        .cloned()
                                        .collect::<Vec<_>>()
                                        .join(", ")
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
                .grant(&input.ask(), inspected.requests.as_ref(), user.describe())?;

        let id = format!("s{}", &engine::nonce()[..5]);
        let name = format!("mcpod-{id}");
        let args = container::run_args(
            &id,
            &name,
            &inspected.id,
            &isolation,
            user,
            &self.owner,
            &self.pause,
        );
        (progress)(format!("starting container {name} from {}", input.image));
        let container_id = tokio::select! {
            started = container::start(args) => match started {
                Ok(cid) => cid,
                Err(e) => {
                    let _ = podman::remove(std::slice::from_ref(&name)).await;
                    return Err(e);
                }
            },
            _ = cancel.cancelled() => {
                let _ = podman::remove(std::slice::from_ref(&name)).await;
                return Err(Error::Cancelled { what: "launch_session".into() });
            }
        };

        let started = tokio::select! {
            servers = self.start_servers(&name, &chosen, &envs, &progress) => servers,
            _ = cancel.cancelled() => {
                let _ = podman::remove(std::slice::from_ref(&name)).await;
                return Err(Error::Cancelled { what: "launch_session".into() });
            }
        };
        let lease_until = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
            + isolation.lease_secs;
        let mut warnings = inspected.warnings.clone();
        warnings.extend(isolation.warnings.iter().cloned());
        let session = Arc::new(Session {
            id: id.clone(),
            container: name,
            container_id,
            image: input.image.clone(),
            image_id: inspected.id.clone(),
            isolation,
            lease_until,
            specs: chosen,
            servers: started,
            warnings,
        });
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, session.clone());
        let _ = self.changed.send(());
        Ok(self.info(&session))
    }

    /// Start every server in parallel; report each as it comes up.
    async fn start_servers(
        &self,
        container: &str,
        specs: &BTreeMap<String, ServerSpec>,
        envs: &BTreeMap<String, BTreeMap<String, String>>,
        progress: &Progress,
    ) -> BTreeMap<String, Arc<Child>> {
        let mut set = tokio::task::JoinSet::new();
        for (name, spec) in specs {
            let (name, spec, container) = (name.clone(), spec.clone(), container.to_string());
            let env = envs.get(&name).cloned().unwrap_or_default();
            let handshake = Duration::from_secs(self.policy.handshake_secs);
            let call_timeout = Duration::from_secs(
                spec.call_timeout_secs
                    .map(u64::from)
                    .unwrap_or(self.policy.default_call_secs),
            );
            let changed = self.changed.clone();
            set.spawn(async move {
                let child = Child::start(StartSpec {
                    name: &name,
                    container: &container,
                    argv: &spec.command,
                    env: &env,
                    workdir: spec.workdir.as_deref(),
                    handshake,
                    call_timeout,
                    changed,
                })
                .await;
                (name, child)
            });
        }
        let mut started = BTreeMap::new();
        while let Some(joined) = set.join_next().await {
            if let Ok((name, child)) = joined {
                let state = match child.status() {
                    crate::proxy::Status::Ready => {
                        format!("ready with {} tools", child.tools().len())
                    }
                    crate::proxy::Status::Failed { reason, .. } => format!("failed: {reason}"),
                };
                (progress)(format!("server {name}: {state}"));
                started.insert(name, child);
            }
        }
        started
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
