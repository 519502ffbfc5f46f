//! Orphans: session containers whose owning mcpod process is gone.

use super::container::{BOOT_ID_LABEL, OWNER_PID_LABEL, OWNER_START_LABEL, Owner, SESSION_LABEL};
use crate::Result;
use crate::engine::podman::{self, ContainerSummary};

/// The owner a container's labels name, if they name one.
pub fn owner_of(c: &ContainerSummary) -> Option<Owner> {
    Some(Owner {
        pid: c.label(OWNER_PID_LABEL)?.parse().ok()?,
        start: c.label(OWNER_START_LABEL)?.to_string(),
        boot_id: c.label(BOOT_ID_LABEL)?.to_string(),
    })
}

/// Every session container on this host, with whether its owner still runs.
pub async fn session_containers() -> Result<Vec<(ContainerSummary, bool)>> {
    let all = podman::containers_with_label(SESSION_LABEL).await?;
    Ok(all
        .into_iter()
        .map(|c| {
            let alive = owner_of(&c).is_some_and(|o| o.is_alive());
            (c, alive)
        })
        .collect())
}

/// Remove session containers whose owner is dead; their names.
pub async fn sweep_orphans() -> Result<Vec<String>> {
    let orphans: Vec<String> = session_containers()
        .await?
        .into_iter()
        .filter(|(_, alive)| !alive)
        .map(|(c, _)| c.names.first().cloned().unwrap_or(c.id))
        .collect();
    podman::remove(&orphans).await?;
    Ok(orphans)
}
