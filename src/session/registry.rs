//! The sessions this process owns: list, stop, logs and routing calls to their
//! servers (launching is in `launch.rs`). Every container started here is
//! removed by `stop_all`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rmcp::model::{CallToolResult, JsonObject, Tool};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::container::Owner;
use super::live::{Session, end, shut_down};
use super::{Logs, LogsInput, Policy, ServerReport, SessionInfo, SessionState, ToolReport};
use crate::proxy::catalog::Catalog;
use crate::proxy::{Child, Relay, names, search};
use crate::{Error, Result};

/// Near misses find_tools names when nothing matched.
const NEAR_MISSES: usize = 5;
/// How alike a tool's name must be spelled to the query to be a near miss
/// (0 to 1, see `search::Query::nearness`).
const NEAR_ENOUGH: f64 = 0.4;

/// All sessions of this process.
pub struct Sessions {
    pub(super) policy: Policy,
    pub(super) owner: Owner,
    /// Asked of podman once, in the background from the first launch (or
    /// from `start_pool` when serving), not at construction.
    pub(super) local: Arc<tokio::sync::OnceCell<crate::engine::userns::Local>>,
    pub(super) map: Mutex<HashMap<String, Arc<Session>>>,
    /// Tags built by this process: what they named then (see `remember_build`).
    pub(super) resolved: Mutex<HashMap<String, Arc<super::recipe::Resolved>>>,
    /// Other references an inspect resolved, while the store is unchanged.
    pub(super) known: super::known::Known,
    /// Launches under way: they count against `max_sessions` before they are in `map`.
    pub(super) launching: AtomicUsize,
    /// Fires when the set of exported tools may have changed.
    pub(super) changed: crate::proxy::Changes,
    /// Launches under way, each in its own task; `stop_all` cancels them with
    /// `closing` and waits for them to clean up.
    pub(super) launches: TaskTracker,
    pub(super) closing: CancellationToken,
    /// Stops under way (`stop`): `stop_all` waits for them, so a session taken
    /// out of `map` just before it is still removed before the process ends.
    pub(super) stops: TaskTracker,
    /// The task that removes the containers of ended sessions (see `reap`).
    pub(super) reaper: std::sync::Once,
    /// Sessions started ahead of launches (see `pool.rs`).
    pub(super) pool: super::pool::Pool,
    /// The operator's egress audit file (`--egress-log`).
    pub(super) audit: Option<Arc<crate::egress::audit::AuditFile>>,
    /// The principal that launched each session over HTTP (`serve --listen`);
    /// sessions of stdio have none.
    pub(super) owners: Mutex<HashMap<String, String>>,
    /// The agent, as the children see it.
    pub(super) upstream: Arc<crate::proxy::upstream::Upstream>,
    /// Where sessions run, and how they are placed.
    pub(super) engines: crate::engine::engines::Engines,
    /// Images on their way to engines other than the local one.
    pub(super) shipper: crate::image::travel::Shipper,
}

impl Sessions {
    pub fn new(policy: Policy) -> Result<Sessions> {
        let (changed, _) = tokio::sync::broadcast::channel(64);
        let pool = super::pool::Pool::new(policy.pool.max);
        let audit = match &policy.egress_log {
            Some(path) => Some(Arc::new(
                crate::egress::audit::AuditFile::open(path)
                    .map_err(|e| Error::io("opening the egress log", path, e))?,
            )),
            None => None,
        };
        let engines = crate::engine::engines::Engines::new(&policy.engines, &policy.engine_max)?;
        let shipper = crate::image::travel::Shipper::new(policy.registry.clone());
        Ok(Sessions {
            policy,
            owner: Owner::current(),
            local: Arc::default(),
            map: Mutex::new(HashMap::new()),
            resolved: Mutex::new(HashMap::new()),
            known: Default::default(),
            launching: AtomicUsize::new(0),
            launches: TaskTracker::new(),
            closing: CancellationToken::new(),
            stops: TaskTracker::new(),
            reaper: std::sync::Once::new(),
            pool,
            audit,
            changed,
            owners: Mutex::new(HashMap::new()),
            upstream: Arc::default(),
            engines,
            shipper,
        })
    }

    /// The engines sessions run on.
    pub fn engines(&self) -> &crate::engine::engines::Engines {
        &self.engines
    }

    /// The images this process ships to engines (and to Pods).
    pub fn shipper(&self) -> &crate::image::travel::Shipper {
        &self.shipper
    }

    /// Running sessions on the engine `name` (for placement).
    pub(super) fn load_of(&self, name: &str) -> usize {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|s| s.engine.name == name && s.state() == SessionState::Running)
            .count()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The policy a launch of `input` is granted under: the operator's, or
    /// as the caller's profile narrows it.
    pub fn policy_of<'a>(&'a self, input: &'a super::LaunchInput) -> &'a Policy {
        input.policy.as_deref().unwrap_or(&self.policy)
    }

    /// The agent, as the children see it.
    pub fn upstream(&self) -> &crate::proxy::upstream::Upstream {
        &self.upstream
    }

    /// The session `id` belongs to `principal` (an HTTP token's name).
    /// Owners of sessions no longer here are forgotten meanwhile.
    pub fn claim(&self, id: &str, principal: &str) {
        let live: Vec<String> = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.retain(|k, _| live.contains(k));
        owners.insert(id.to_string(), principal.to_string());
        drop(owners);
        // Its owner hears of it now (the launch's own change came before).
        let _ = self.changed.send(crate::proxy::Change {
            session: Some(id.to_string()),
            owner: Some(principal.to_string()),
        });
    }

    /// Whether `id` is a session of this process.
    pub fn exists(&self, id: &str) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    /// The live sessions launched over HTTP, each with its principal.
    pub fn owned(&self) -> Vec<(String, String)> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners
            .iter()
            .filter(|(id, _)| map.contains_key(*id))
            .map(|(id, owner)| (id.clone(), owner.clone()))
            .collect()
    }

    /// How many running sessions `principal` launched.
    pub fn running_of(&self, principal: &str) -> usize {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners
            .iter()
            .filter(|(_, owner)| owner.as_str() == principal)
            .filter_map(|(id, _)| map.get(id))
            .filter(|s| s.state() == super::SessionState::Running)
            .count()
    }

    /// The principal that launched `id` over HTTP.
    pub fn owner_of(&self, id: &str) -> Option<String> {
        let owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.get(id).cloned()
    }

    /// Whether `principal` may see and reach session `id`: stdio's one
    /// implicit principal (`None`) reaches every session; an HTTP principal
    /// only those it launched.
    pub fn visible(&self, id: &str, principal: Option<&str>) -> bool {
        let Some(principal) = principal else {
            return true;
        };
        let owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.get(id).is_some_and(|o| o == principal)
    }

    /// As [`Sessions::get`]'s error when `principal` may not reach `id`:
    /// another principal's session is answered as one that does not exist.
    pub fn check_visible(&self, id: &str, principal: Option<&str>) -> Result<()> {
        if self.visible(id, principal) {
            return Ok(());
        }
        Err(Error::invalid(
            "session",
            id,
            "no such session of this mcpod",
            "list them with list_sessions",
        ))
    }

    /// A receiver that fires whenever the exported tools may have changed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::proxy::Change> {
        self.changed.subscribe()
    }

    /// Wait for the next changes `principal` is told of (what came
    /// meanwhile drained with them); `false` once no more can come.
    pub async fn next_change(
        &self,
        changes: &mut tokio::sync::broadcast::Receiver<crate::proxy::Change>,
        principal: Option<&str>,
    ) -> bool {
        use tokio::sync::broadcast::error::{RecvError, TryRecvError};
        loop {
            let mut told = match changes.recv().await {
                Ok(change) => self.concerns(&change, principal),
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return false,
            };
            loop {
                match changes.try_recv() {
                    Ok(change) => told |= self.concerns(&change, principal),
                    Err(TryRecvError::Lagged(_)) => told = true,
                    Err(_) => break,
                }
            }
            if told {
                return true;
            }
        }
    }

    /// Whether `principal` (`None`: stdio, which sees every session) is
    /// told of `change`: one of a session it owns, or of none in particular.
    pub fn concerns(&self, change: &crate::proxy::Change, principal: Option<&str>) -> bool {
        let (Some(principal), Some(session)) = (principal, &change.session) else {
            return true;
        };
        change
            .owner
            .clone()
            .or_else(|| self.owner_of(session))
            .as_deref()
            == Some(principal)
    }

    pub(super) fn get(&self, id: &str) -> Result<Arc<Session>> {
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

    pub(super) fn all(&self) -> Vec<Arc<Session>> {
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

    pub(super) fn info(&self, s: &Session) -> SessionInfo {
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
        let ended = s.state() == SessionState::Ended;
        SessionInfo {
            session: s.id.clone(),
            state: s.state(),
            engine: s.engine.name.clone(),
            container: s.container.clone(),
            container_id: s.container_id.get().cloned(),
            image: s.image.clone(),
            image_id: s.image_id.clone(),
            isolation: s.isolation.clone(),
            lease_until: s.lease_until.load(Ordering::SeqCst),
            servers,
            lost: s.stream.lost(),
            provisioned: s.provisioned.get().cloned(),
            client_config: if ended {
                json!({})
            } else {
                client_config(s, &self.policy.allowed_env)
            },
            warnings: s
                .warnings
                .iter()
                .cloned()
                .chain(s.servers.values().flat_map(|c| c.warnings()))
                .chain(ended.then(|| ENDED.to_string()))
                .collect(),
        }
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        self.all().iter().map(|s| self.info(s)).collect()
    }

    /// Stop one session (see [`shut_down`]).
    pub async fn stop(&self, id: &str) -> Result<()> {
        let session = self.get(id)?;
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let _ = self.changed.send(crate::proxy::Change {
            session: Some(id.to_string()),
            owner: self.owner_of(id),
        });
        self.stops.track_future(shut_down(&[session])).await
    }

    /// Stop every session of this process at once (see [`shut_down`]), after
    /// cancelling the launches under way and letting them remove what they
    /// had started. Launches asked for after this are cancelled at once.
    pub async fn stop_all(&self) -> Result<usize> {
        self.closing.cancel();
        self.launches.close();
        if tokio::time::timeout(LAUNCH_CLEANUP, self.launches.wait())
            .await
            .is_err()
        {
            tracing::warn!("launches under way did not finish within {LAUNCH_CLEANUP:?}");
        }
        self.stops.close();
        if tokio::time::timeout(LAUNCH_CLEANUP, self.stops.wait())
            .await
            .is_err()
        {
            tracing::warn!("stops under way did not finish within {LAUNCH_CLEANUP:?}");
        }
        let all: Vec<Arc<Session>> = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        let pooled = self.pool.drain();
        let count = all.len() + pooled.len();
        shut_down(&all.into_iter().chain(pooled).collect::<Vec<_>>()).await?;
        Ok(count)
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
        let egress = session
            .stream
            .gate
            .as_ref()
            .map(|g| g.log.tail(tail))
            .unwrap_or_default();
        Ok(Logs {
            session: session.id.clone(),
            servers,
            supervisor: session.stream.log.tail(tail),
            egress_note: egress
                .is_empty()
                .then(|| super::policy::egress_note(&session.isolation)),
            egress,
        })
    }

    /// The tools of ready servers, under their exported names, at most
    /// `room` of them (sessions in order of id); the rest are left out with a
    /// warning, and call_tool still reaches them.
    pub fn tools(&self, room: usize, principal: Option<&str>) -> Vec<Tool> {
        let mut out = Vec::new();
        for s in self.all() {
            if !self.visible(&s.id, principal) {
                continue;
            }
            for (name, child) in &s.servers {
                let tools = child.tools();
                if out.len() + tools.len() > room {
                    tracing::warn!(
                        "tools of session {} server {name} are left out of tools/list: it would list more than {} tools; call_tool reaches them",
                        s.id,
                        crate::proxy::tools::MAX_LISTED
                    );
                    continue;
                }
                for mut tool in tools {
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

    /// The tools of every ready server of the sessions `principal` may see
    /// ranked against `query` (see `proxy::search`): those that share a word
    /// with it, best first, at most `limit`, and how many did in all; when
    /// none did, the names spelled most like it, and a note that says so. An
    /// empty query lists every tool. Other principals' tools count nowhere,
    /// not even in the words' weights.
    pub fn find_tools(
        &self,
        query: &str,
        limit: usize,
        principal: Option<&str>,
    ) -> Result<super::FoundTools> {
        let parsed = search::Query::parse(query).map_err(|reason| {
            Error::invalid(
                "find_tools query",
                format!("of {} bytes", query.len()),
                reason,
                "ask with a few words of what the tool does or is called",
            )
        })?;
        let mut sessions = self.all();
        sessions.retain(|s| self.visible(&s.id, principal));
        let mut stats = parsed.stats();
        for s in &sessions {
            for child in s.servers.values() {
                child.with_catalog(|c| c.docs.iter().for_each(|d| parsed.tally(&mut stats, d)));
            }
        }
        let mut found = Vec::new();
        for s in &sessions {
            for (server, child) in &s.servers {
                child.with_catalog(|c| {
                    for (t, d) in c.tools.iter().zip(&c.docs) {
                        let score = parsed.score(&stats, d);
                        if score > 0.0 || parsed.is_empty() {
                            found.push((score, s, server, t.clone()));
                        }
                    }
                });
            }
        }
        let total = found.len();
        // Best first; among equals, in order of session, server and tool.
        found.sort_by(|a, b| b.0.total_cmp(&a.0));
        let tools = found
            .into_iter()
            .take(limit)
            .map(|(score, s, server, t)| super::FoundTool {
                name: names::exported(&s.id, server, &t.name),
                upstream: t.name.to_string(),
                score: (score * 1000.0).round() / 1000.0,
                description: t.description.as_ref().map(|d| d.to_string()),
                input_schema: (*t.input_schema).clone(),
                session: s.id.clone(),
                server: server.clone(),
            })
            .collect();
        let (near, note) = if total > 0 {
            (Vec::new(), None)
        } else {
            self.near_misses(&parsed, &sessions, stats.docs())
        };
        Ok(super::FoundTools {
            tools,
            total,
            near,
            note,
        })
    }

    /// When no tool of `sessions` (`tools` in all) matched `query`: the names
    /// of the [`NEAR_MISSES`] spelled most like it, and a note saying so.
    fn near_misses(
        &self,
        query: &search::Query,
        sessions: &[Arc<Session>],
        tools: usize,
    ) -> (Vec<String>, Option<String>) {
        if tools == 0 {
            return (
                Vec::new(),
                Some(
                    "no session has a ready server with tools: launch one with launch_session, or see list_sessions for servers that did not start".into(),
                ),
            );
        }
        let mut near = Vec::new();
        for s in sessions {
            for (server, child) in &s.servers {
                child.with_catalog(|c| {
                    for (t, d) in c.tools.iter().zip(&c.docs) {
                        let nearness = query.nearness(d);
                        if nearness >= NEAR_ENOUGH {
                            near.push((nearness, names::exported(&s.id, server, &t.name)));
                        }
                    }
                });
            }
        }
        near.sort_by(|a, b| b.0.total_cmp(&a.0));
        near.truncate(NEAR_MISSES);
        let said = query.words().join(" ");
        let note = if near.is_empty() {
            format!(
                "none of the {tools} tools shares a word with `{said}`, and no tool's name is spelled like it; ask with other words, or with an empty query to list every tool"
            )
        } else {
            format!(
                "none of the {tools} tools shares a word with `{said}`; `near` names the tools whose names are spelled most like it"
            )
        };
        (near.into_iter().map(|(_, name)| name).collect(), Some(note))
    }

    /// Find an exported tool name: (session, server, upstream tool name).
    pub fn resolve(&self, exported: &str) -> Option<(String, String, String)> {
        self.resolve_in(exported, |c| &c.tools, |t| &t.name)
    }

    /// Find an exported `<session>_<server>__<name>` among the items `list`
    /// picks from each server's lists (tools, prompts): (session, server,
    /// the item's upstream `name`).
    pub(super) fn resolve_in<T>(
        &self,
        exported: &str,
        list: fn(&Catalog) -> &[T],
        name: fn(&T) -> &str,
    ) -> Option<(String, String, String)> {
        let (s, server, _, item) = self.find_in(exported, list, name)?;
        Some((s.id.clone(), server, item))
    }

    /// [`Self::resolve_in`], with the session and the server found.
    fn find_in<T>(
        &self,
        exported: &str,
        list: fn(&Catalog) -> &[T],
        name: fn(&T) -> &str,
    ) -> Option<(Arc<Session>, String, Arc<Child>, String)> {
        let (session, _) = exported.split_once('_')?;
        let s = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session)
            .cloned()?;
        let (server, child, item) = s.servers.iter().find_map(|(server, child)| {
            child.with_catalog(|c| {
                list(c)
                    .iter()
                    .map(name)
                    .find(|n| names::is_exported(exported, &s.id, server, n))
                    .map(|n| (server.clone(), child.clone(), n.to_string()))
            })
        })?;
        Some((s, server, child, item))
    }

    /// Call `tool` on `server` of `session`.
    pub async fn call(
        &self,
        session: &str,
        server: &str,
        tool: &str,
        arguments: Option<JsonObject>,
        relay: Relay,
        cancel: CancellationToken,
    ) -> std::result::Result<CallToolResult, String> {
        let (s, child) = self.server_of(session, server)?;
        let _permit = s.permit()?;
        child.call(tool, arguments, relay, cancel).await
    }

    /// Where a call of exported tool `name` goes on the fast path (see
    /// `proxy/fast.rs`): its ready server, the server's name for the tool,
    /// and the call's place among the session's calls in flight. `None`
    /// when any of it is missing: the slow path then says why.
    pub fn fast_target(
        &self,
        name: &str,
    ) -> Option<(Arc<Child>, String, tokio::sync::OwnedSemaphorePermit)> {
        let (s, _, child, tool) = self.find_in(name, |c| &c.tools, |t| &t.name)?;
        if !child.is_ready() || child.task_only(&tool) {
            return None;
        }
        Some((child, tool, s.owned_permit()?))
    }

    /// `server` of `session`, or the error naming the servers it has.
    pub(super) fn server_of(
        &self,
        session: &str,
        server: &str,
    ) -> std::result::Result<(Arc<Session>, Arc<Child>), String> {
        let s = self.get(session).map_err(|e| e.to_string())?;
        let child = s.servers.get(server).cloned().ok_or_else(|| {
            format!(
                "session `{session}` has no server `{server}`; it has: {}",
                s.servers.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        Ok((s, child))
    }
}

/// How long `stop_all` waits for cancelled launches to clean up, and for
/// stops under way.
const LAUNCH_CLEANUP: Duration = Duration::from_secs(30);

/// Whenever a child dies: end the containers of sessions left without a
/// ready server (a hung server would keep running). The session stays
/// listed, `ended`, until stopped.
pub(super) async fn reap(
    sessions: Weak<Sessions>,
    mut changed: tokio::sync::broadcast::Receiver<crate::proxy::Change>,
) {
    loop {
        match changed.recv().await {
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
        let Some(sessions) = sessions.upgrade() else {
            return;
        };
        let ended: Vec<Arc<Session>> = sessions
            .all()
            .into_iter()
            .filter(|s| s.state() == SessionState::Ended && !s.reaped.swap(true, Ordering::SeqCst))
            .collect();
        drop(sessions);
        // A remote engine whose connection dropped may be gone: if it does
        // not answer, placement leaves it out for a while.
        for s in ended
            .iter()
            .filter(|s| !s.engine.is_local() && s.stream.ended_unasked())
        {
            let engine = s.engine.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.podman.ping(Duration::from_secs(5)).await {
                    tracing::warn!(
                        "engine {} does not answer, left out of placement: {e}",
                        engine.name
                    );
                    engine.mark_down();
                }
            });
        }
        if !ended.is_empty() {
            tracing::info!(
                "ending the containers of ended sessions: {}",
                ended
                    .iter()
                    .map(|s| s.container.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Err(e) = end(&ended).await {
                tracing::warn!("could not remove ended sessions' containers: {e}");
            }
        }
    }
}

/// The warning of an ended session, whose `client_config` is gone with its container.
pub const ENDED: &str = "the session has ended (no server is left) and its container was removed, so it has no client_config: launch the image again for a new one, and stop_session to forget this one";

/// A ready `mcpServers` block: each server through `mcpod connect` (see
/// `connect.rs`). Env references stay references (`${NAME}`), and literal
/// values come from the image, so no value is printed or put in argv.
fn client_config(s: &Session, allowed_env: &[String]) -> serde_json::Value {
    let servers: serde_json::Map<String, serde_json::Value> = s
        .specs
        .iter()
        .map(|(name, spec)| {
            (
                format!("{}-{name}", s.id),
                super::connect::client_entry(
                    &s.engine.podman,
                    &s.container,
                    name,
                    spec,
                    allowed_env,
                ),
            )
        })
        .collect();
    json!({ "mcpServers": servers })
}
