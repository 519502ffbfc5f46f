//! Orphans: session containers whose owning mcpod process is gone, on every
//! engine, and the buildah working containers of its builds.

use super::container::{
    BOOT_ID_LABEL, OWNER_HOST_LABEL, OWNER_PID_LABEL, OWNER_START_LABEL, Owner, SESSION_LABEL,
};
use crate::Result;
use std::sync::Arc;

use crate::engine::engines::Engine;
use crate::engine::podman::ContainerSummary;

/// The owner a container's labels name, if they name one.
pub fn owner_of(c: &ContainerSummary) -> Option<Owner> {
    Some(Owner {
        pid: c.label(OWNER_PID_LABEL)?.parse().ok()?,
        start: c.label(OWNER_START_LABEL)?.to_string(),
        boot_id: c.label(BOOT_ID_LABEL)?.to_string(),
        host: c.label(OWNER_HOST_LABEL).unwrap_or_default().to_string(),
    })
}

/// A session container and where it is.
pub struct Found {
    pub engine: String,
    pub container: ContainerSummary,
    /// Whether its owner still runs (or runs on another host).
    pub alive: bool,
}

/// Every session container on every engine; an engine that does not answer
/// is left out and named in the second list, with why.
pub async fn session_containers(engines: &[Arc<Engine>]) -> (Vec<Found>, Vec<String>) {
    let mut set = tokio::task::JoinSet::new();
    for engine in engines {
        let engine = engine.clone();
        set.spawn(async move {
            let listed = engine.podman.containers_with_label(SESSION_LABEL).await;
            (engine, listed)
        });
    }
    let (mut found, mut failed) = (Vec::new(), Vec::new());
    while let Some(joined) = set.join_next().await {
        let Ok((engine, listed)) = joined else {
            continue;
        };
        match listed {
            Ok(listed) => found.extend(listed.into_iter().map(|c| Found {
                engine: engine.name.clone(),
                alive: owner_of(&c).is_some_and(|o| o.is_alive()),
                container: c,
            })),
            Err(e) => {
                engine.mark_down();
                failed.push(format!("engine {}: {e}", engine.name));
            }
        }
    }
    found.sort_by(|a, b| (&a.engine, &a.container.names).cmp(&(&b.engine, &b.container.names)));
    (found, failed)
}

/// Remove session containers whose owner is dead, on every engine that
/// answers; their names (`ENGINE/NAME` off the local engine), and the
/// engines that did not answer.
pub async fn sweep_orphans(engines: &[Arc<Engine>]) -> Result<(Vec<String>, Vec<String>)> {
    let (found, failed) = session_containers(engines).await;
    let mut removed = Vec::new();
    // The local engine's storage is buildah's: working containers of builds
    // a killed mcpod left.
    if engines.iter().any(|e| e.is_local()) {
        match crate::image::leftovers::sweep().await {
            Ok(left) => removed.extend(left),
            Err(e) => tracing::warn!("could not sweep buildah working containers: {e}"),
        }
    }
    for engine in engines {
        let orphans: Vec<String> = found
            .iter()
            .filter(|f| f.engine == engine.name && !f.alive)
            .map(|f| {
                f.container
                    .names
                    .first()
                    .cloned()
                    .unwrap_or(f.container.id.clone())
            })
            .collect();
        engine.podman.remove(&orphans).await?;
        removed.extend(orphans.into_iter().map(|n| {
            if engine.is_local() {
                n
            } else {
                format!("{}/{n}", engine.name)
            }
        }));
    }
    Ok((removed, failed))
}
