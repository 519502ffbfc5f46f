//! The warm pool: sessions started and initialized ahead of launches. The
//! operator names images to keep ready (`--warm IMAGE[=N]`), and optionally
//! one spare of each spec launched lately (`--spare-secs`). A launch whose
//! effective spec (image ID, servers, env, isolation: the recipe's key) is a
//! pooled session's takes it, and a replacement starts in the background.
//!
//! Bounds: at most `--pool-max` pooled sessions at once, fills under way
//! included, apart from `max_sessions`; a pooled session waits at most
//! [`IDLE`] (then it is replaced), and its container's lease is its
//! session's lease plus [`IDLE`], so a pooled container never outlives what a
//! launched one could. Pooled containers carry the owner labels, so a dead
//! mcpod's are swept as any session's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;

use super::SessionState;
use super::live::Session;
use super::recipe::{Recipe, Resolved};
use crate::proxy::Status;

/// The longest a pooled session waits to be handed out.
pub const IDLE: Duration = Duration::from_secs(600);

/// How often the pool retires what is stale and fills up again.
pub(super) const TICK: Duration = Duration::from_secs(15);

pub(super) struct Pooled {
    pub(super) key: String,
    pub(super) session: Arc<Session>,
    pub(super) born: Instant,
    /// A spare: kept until then. Else a warm session of the operator's.
    pub(super) spare_until: Option<Instant>,
}

/// A warm image of the operator's, as last resolved.
pub(super) struct Warm {
    pub(super) count: usize,
    pub(super) recipe: Option<Arc<Recipe>>,
    pub(super) resolved: Option<Arc<Resolved>>,
}

pub(super) struct Pool {
    pub(super) max: usize,
    pub(super) entries: Mutex<Vec<Pooled>>,
    /// Fills under way, by key.
    pub(super) filling: Mutex<HashMap<String, usize>>,
    pub(super) warm: Mutex<HashMap<String, Warm>>,
}

/// A pooled session, as list_sessions shows it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PooledReport {
    pub session: String,
    pub container: String,
    pub image: String,
    pub image_id: String,
    /// `warm` (an image the operator keeps ready) or `spare` (of a recent launch).
    pub kind: String,
    /// Seconds it has been ready.
    pub ready_secs: u64,
    /// The servers it runs.
    pub servers: Vec<String>,
}

impl Pool {
    pub(super) fn new(max: usize) -> Pool {
        Pool {
            max,
            entries: Mutex::new(Vec::new()),
            filling: Mutex::new(HashMap::new()),
            warm: Mutex::new(HashMap::new()),
        }
    }

    /// A ready pooled session of `key`, out of the pool.
    pub(super) fn take(&self, key: &str) -> Option<Arc<Session>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let at = entries
            .iter()
            .position(|p| p.key == key && all_ready(&p.session))?;
        Some(entries.remove(at).session)
    }

    /// Every pooled session, out of the pool (to stop them).
    pub(super) fn drain(&self) -> Vec<Arc<Session>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.drain(..).map(|p| p.session).collect()
    }

    /// The image a warm reference named when the pool last resolved it.
    pub(super) fn resolution(&self, reference: &str) -> Option<Arc<Resolved>> {
        self.warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(reference)?
            .resolved
            .clone()
    }

    pub(super) fn forget_resolution(&self, reference: &str) {
        if let Some(w) = self
            .warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(reference)
        {
            w.resolved = None;
        }
    }

    /// How many of `key` the operator keeps warm (0: not a warm spec).
    pub(super) fn warm_count(&self, key: &str) -> usize {
        self.warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|w| w.recipe.as_ref().is_some_and(|r| r.key == key))
            .map(|w| w.count)
            .sum()
    }

    /// Pooled and filling sessions of `key`.
    pub(super) fn count(&self, key: &str) -> usize {
        let pooled = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|p| p.key == key)
            .count();
        pooled
            + self
                .filling
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key)
                .copied()
                .unwrap_or(0)
    }

    /// Count a fill of `key` against the ceiling; false when the pool is full.
    pub(super) fn reserve(&self, key: &str) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut filling = self.filling.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() + filling.values().sum::<usize>() >= self.max {
            return false;
        }
        *filling.entry(key.to_string()).or_default() += 1;
        true
    }

    pub(super) fn unreserve(&self, key: &str) {
        let mut filling = self.filling.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = filling.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                filling.remove(key);
            }
        }
    }

    /// Out of the pool: sessions no longer all ready, waiting past [`IDLE`],
    /// spares past their time, and warm sessions of a spec no longer warm
    /// (the image's tag moved).
    pub(super) fn retire(&self) -> Vec<Arc<Session>> {
        let warm: Vec<String> = self
            .warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|w| w.recipe.as_ref().map(|r| r.key.clone()))
            .collect();
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (keep, retire): (Vec<Pooled>, Vec<Pooled>) = entries.drain(..).partition(|p| {
            all_ready(&p.session)
                && now.duration_since(p.born) < IDLE
                && match p.spare_until {
                    Some(until) => now < until,
                    None => warm.contains(&p.key),
                }
        });
        *entries = keep;
        retire.into_iter().map(|p| p.session).collect()
    }

    pub(super) fn report(&self) -> Vec<PooledReport> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|p| PooledReport {
                session: p.session.id.clone(),
                container: p.session.container.clone(),
                image: p.session.image.clone(),
                image_id: p.session.image_id.clone(),
                kind: if p.spare_until.is_some() {
                    "spare"
                } else {
                    "warm"
                }
                .into(),
                ready_secs: p.born.elapsed().as_secs(),
                servers: p.session.servers.keys().cloned().collect(),
            })
            .collect()
    }
}

/// Every server of a pooled session is ready and its stream is up.
pub(super) fn all_ready(s: &Session) -> bool {
    !s.stream.is_ended()
        && s.state() == SessionState::Running
        && s.servers.values().all(|c| c.status() == Status::Ready)
}
