//! Keeping the warm pool full: the task that tends it, and the sessions
//! started ahead of launches like the ones just made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::LaunchInput;
use super::live::shut_down;
use super::pool::{Pooled, PooledReport, TICK, Warm};
use super::recipe::{Recipe, Resolved};
use super::registry::Sessions;
use crate::image::{self, Progress};

impl Sessions {
    /// Start the pool's upkeep: fill the operator's warm images now, then
    /// every [`TICK`] retire what is stale and fill up again. Nothing when
    /// the operator keeps no pool, but the local host's facts are asked
    /// either way, so the first launch does not wait for `podman info`.
    pub fn start_pool(self: &Arc<Self>) {
        self.learn_local_soon();
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
