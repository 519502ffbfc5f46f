//! One running session: its container, its one stream and its servers, and
//! how sessions end (the MCP stdio shutdown, then the container).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::container;
use super::policy::MAX_CALLS;
use super::{Isolation, SessionState};
use crate::Result;
use crate::labels::ServerSpec;
use crate::proxy::Child;

/// One running session.
pub(super) struct Session {
    pub(super) id: String,
    /// The engine the container runs on.
    pub(super) engine: Arc<crate::engine::engines::Engine>,
    pub(super) container: String,
    /// Podman's ID for it, once known (see `launch.rs`).
    pub(super) container_id: Arc<std::sync::OnceLock<String>>,
    pub(super) image: String,
    pub(super) image_id: String,
    pub(super) isolation: Isolation,
    /// Unix time the lease ends (moved when a pooled session is handed out).
    pub(super) lease_until: std::sync::atomic::AtomicU64,
    pub(super) specs: BTreeMap<String, ServerSpec>,
    pub(super) servers: BTreeMap<String, Arc<Child>>,
    pub(super) warnings: Vec<String>,
    /// The container's one stream: its supervisor and every server on it.
    pub(super) stream: Arc<super::stream::SessionStream>,
    /// Set once its container has been removed because no server is left.
    pub(super) reaped: AtomicBool,
    /// Calls in flight (at most [`MAX_CALLS`]).
    pub(super) calls: Arc<tokio::sync::Semaphore>,
    /// What was provisioned for its launch (a package reference or server.json).
    pub(super) provisioned: std::sync::OnceLock<Box<crate::provision::Provisioned>>,
}

impl Session {
    /// A pooled session becomes a session: its lease starts now (the
    /// supervisor ends the container then).
    pub(super) fn hand_out(&self) {
        let until = container::from_now(self.isolation.lease_secs);
        self.lease_until.store(until, Ordering::SeqCst);
        self.stream.set_lease(until);
    }

    /// A place among the calls in flight, or the error that says there is none.
    pub(super) fn permit(&self) -> std::result::Result<tokio::sync::SemaphorePermit<'_>, String> {
        self.calls.try_acquire().map_err(|_| {
            format!(
                "session `{}` has {MAX_CALLS} calls in flight, mcpod's limit per session; wait for one to finish",
                self.id
            )
        })
    }

    /// A place among the calls in flight that the call owns, if there is one.
    pub(super) fn owned_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.calls.clone().try_acquire_owned().ok()
    }

    /// Running while at least one server is ready.
    pub(super) fn state(&self) -> SessionState {
        if self.servers.values().any(|c| c.is_ready()) {
            SessionState::Running
        } else {
            SessionState::Ended
        }
    }
}

/// How long a stopped server gets to exit after its stdin closes.
const GRACE: Duration = Duration::from_secs(1);

/// How long a closed session's podman gets to exit (its supervisor stops
/// what still runs within 2 s) before the container is removed by force.
const END: Duration = Duration::from_secs(5);

/// The MCP stdio shutdown, for every server of `sessions` at once: close its
/// stdin and give it [`GRACE`] to exit; then close each session's stream (its
/// supervisor stops what still runs and exits, and `podman run --rm` removes
/// the container). A container whose podman does not exit is removed by force.
pub(super) async fn shut_down(sessions: &[Arc<Session>]) -> Result<()> {
    let mut exits = tokio::task::JoinSet::new();
    for child in sessions.iter().flat_map(|s| s.servers.values()) {
        let child = child.clone();
        exits.spawn(async move { child.shut_down(GRACE).await });
    }
    while exits.join_next().await.is_some() {}
    end(sessions).await
}

/// Close the streams of `sessions`, and remove the containers whose podman
/// did not exit within [`END`].
pub(super) async fn end(sessions: &[Arc<Session>]) -> Result<()> {
    let mut closed = tokio::task::JoinSet::new();
    for s in sessions {
        let s = s.clone();
        closed.spawn(async move {
            (!s.stream.close(END).await).then(|| (s.engine.clone(), s.container.clone()))
        });
    }
    let mut remove: Vec<(Arc<crate::engine::engines::Engine>, String)> = Vec::new();
    while let Some(joined) = closed.join_next().await {
        if let Ok(Some(left)) = joined {
            remove.push(left);
        }
    }
    let mut result = Ok(());
    for (engine, names) in by_engine(remove) {
        if let Err(e) = engine.podman.remove(&names).await {
            result = Err(e);
        }
    }
    result
}

/// Container names grouped by the engine they are on.
pub(super) fn by_engine(
    all: Vec<(Arc<crate::engine::engines::Engine>, String)>,
) -> Vec<(Arc<crate::engine::engines::Engine>, Vec<String>)> {
    let mut grouped: Vec<(Arc<crate::engine::engines::Engine>, Vec<String>)> = Vec::new();
    for (engine, name) in all {
        match grouped.iter_mut().find(|(e, _)| Arc::ptr_eq(e, &engine)) {
            Some((_, names)) => names.push(name),
            None => grouped.push((engine, vec![name])),
        }
    }
    grouped
}
