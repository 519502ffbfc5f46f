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

use super::recipe::{Recipe, Resolved};
use super::registry::{Session, Sessions, shut_down};
use super::{LaunchInput, SessionState};
use crate::image::{self, Progress};
use crate::proxy::Status;

/// The longest a pooled session waits to be handed out.
pub const IDLE: Duration = Duration::from_secs(600);

/// How often the pool retires what is stale and fills up again.
const TICK: Duration = Duration::from_secs(15);

struct Pooled {
    key: String,
    session: Arc<Session>,
    born: Instant,
    /// A spare: kept until then. Else a warm session of the operator's.
    spare_until: Option<Instant>,
}

/// A warm image of the operator's, as last resolved.
struct Warm {
    count: usize,
    recipe: Option<Arc<Recipe>>,
    resolved: Option<Arc<Resolved>>,
}

pub(super) struct Pool {
    max: usize,
    entries: Mutex<Vec<Pooled>>,
    /// Fills under way, by key.
    filling: Mutex<HashMap<String, usize>>,
    warm: Mutex<HashMap<String, Warm>>,
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
    fn warm_count(&self, key: &str) -> usize {
        self.warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|w| w.recipe.as_ref().is_some_and(|r| r.key == key))
            .map(|w| w.count)
            .sum()
    }

    /// Pooled and filling sessions of `key`.
    fn count(&self, key: &str) -> usize {
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
    fn reserve(&self, key: &str) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut filling = self.filling.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() + filling.values().sum::<usize>() >= self.max {
            return false;
        }
        *filling.entry(key.to_string()).or_default() += 1;
        true
    }

    fn unreserve(&self, key: &str) {
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
    fn retire(&self) -> Vec<Arc<Session>> {
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
fn all_ready(s: &Session) -> bool {
    !s.stream.is_ended()
        && s.state() == SessionState::Running
        && s.servers.values().all(|c| c.status() == Status::Ready)
}

impl Sessions {
    /// Start the pool's upkeep: fill the operator's warm images now, then
    /// every [`TICK`] retire what is stale and fill up again. Nothing when
    /// the operator keeps no pool.
    pub fn start_pool(self: &Arc<Self>) {
        let pool = &self.policy.pool;
        if pool.warm.is_empty() && pool.spare_secs == 0 {
            return;
        }
        {
            let mut warm = self.pool.warm.lock().unwrap_or_else(|p| p.into_inner());
            for (reference, count) in &pool.warm {
                warm.insert(
                    reference.clone(),
                    Warm {
                        count: *count,
                        recipe: None,
                        resolved: None,
                    },
                );
            }
        }
        let this = Arc::downgrade(self);
        let closing = self.closing.clone();
        tokio::spawn(async move {
            loop {
                let Some(sessions) = this.upgrade() else {
                    return;
                };
                sessions.tend().await;
                drop(sessions);
                tokio::select! {
                    _ = closing.cancelled() => return,
                    _ = tokio::time::sleep(TICK) => {}
                }
            }
        });
    }

    /// Sessions ready ahead of launches, for list_sessions.
    pub fn pooled(&self) -> Vec<PooledReport> {
        self.pool.report()
    }

    /// Retire stale pooled sessions, resolve each warm image again (its tag
    /// may have moved) and fill it up to its count.
    async fn tend(self: &Arc<Self>) {
        let retired = self.pool.retire();
        if !retired.is_empty() {
            let _ = shut_down(&retired).await;
        }
        let references: Vec<String> = self.policy.pool.warm.keys().cloned().collect();
        for reference in references {
            match self.warm_recipe(&reference).await {
                Ok((recipe, resolved)) => {
                    let count = {
                        let mut warm = self.pool.warm.lock().unwrap_or_else(|p| p.into_inner());
                        let Some(w) = warm.get_mut(&reference) else {
                            continue;
                        };
                        w.recipe = Some(recipe.clone());
                        w.resolved = Some(resolved);
                        w.count
                    };
                    self.fill_up(&recipe, count, None);
                }
                Err(e) => tracing::warn!("warm pool: cannot launch {reference}: {e}"),
            }
        }
    }

    /// The recipe of a warm image's default launch, resolved afresh.
    async fn warm_recipe(
        self: &Arc<Self>,
        reference: &str,
    ) -> crate::Result<(Arc<Recipe>, Arc<Resolved>)> {
        let mut input: LaunchInput =
            serde_json::from_value(serde_json::json!({ "image": reference })).map_err(|e| {
                crate::Error::invalid("warm image", reference, e.to_string(), "name an image")
            })?;
        let quiet: Progress = Arc::new(|_| {});
        let cancel = self.closing.child_token();
        self.provision_for(&mut input, &quiet, &cancel).await?;
        let resolved = Arc::new(Resolved::from(image::inspect_labels(&input.image).await?));
        let local = self.engines.local().clone();
        let recipe = Arc::new(self.recipe(&input, &resolved, &local).await?);
        Ok((recipe, resolved))
    }

    /// After a launch of `recipe`: replace what it took of a warm spec, or
    /// keep one spare of it (`--spare-secs`).
    pub(super) fn after_launch(self: &Arc<Self>, recipe: &Arc<Recipe>) {
        let warm = self.pool.warm_count(&recipe.key);
        if warm > 0 {
            self.fill_up(recipe, warm, None);
        } else if self.policy.pool.spare_secs > 0 {
            let until = Instant::now() + Duration::from_secs(self.policy.pool.spare_secs);
            self.fill_up(recipe, 1, Some(until));
        }
    }

    /// Start sessions of `recipe` in the background until the pool holds
    /// `count` of it (or is full).
    fn fill_up(self: &Arc<Self>, recipe: &Arc<Recipe>, count: usize, spare_until: Option<Instant>) {
        while !self.closing.is_cancelled()
            && self.pool.count(&recipe.key) < count
            && self.pool.reserve(&recipe.key)
        {
            let this = self.clone();
            let recipe = recipe.clone();
            self.launches.spawn(async move {
                let quiet: Progress = Arc::new(|_| {});
                let cancel = this.closing.child_token();
                let started = this.start_session(&recipe, &quiet, &cancel, true).await;
                match started {
                    Ok(session) if this.closing.is_cancelled() => {
                        this.pool.unreserve(&recipe.key);
                        let _ = shut_down(std::slice::from_ref(&session)).await;
                    }
                    Ok(session) => {
                        tracing::info!(
                            "warm pool: session {} of {} is ready",
                            session.id,
                            recipe.image
                        );
                        this.pool
                            .entries
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(Pooled {
                                key: recipe.key.clone(),
                                session,
                                born: Instant::now(),
                                spare_until,
                            });
                        this.pool.unreserve(&recipe.key);
                    }
                    Err(_) if this.closing.is_cancelled() => this.pool.unreserve(&recipe.key),
                    Err(e) => {
                        this.pool.unreserve(&recipe.key);
                        tracing::warn!("warm pool: a session of {} failed: {e}", recipe.image)
                    }
                }
            });
        }
    }
}
