//! buildah working containers that a killed mcpod left behind.
//!
//! A build stopped by SIGKILL (of mcpod, or of buildah with it) leaves its
//! working containers, which buildah never removes by itself. Every buildah
//! command of mcpod that makes one (`build`, `from`) gets the global
//! `--default-mounts-file` of its process: an empty file (so RUN steps get
//! no default mounts either) at `STATE/owners/PID_START_BOOT/mounts.conf`.
//! buildah stores that path in every working container it makes, also the
//! ones `--layers` makes for later steps, so a later mcpod (its start-up
//! sweep, `mcpod gc`) tells the containers of a dead mcpod of this state
//! directory apart from everyone else's, and removes only those.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::engine::buildah;
use crate::engine::owner::{Owner, machine_id};
use crate::{Error, Result};

const FILE: &str = "mounts.conf";

fn owners_dir() -> PathBuf {
    super::store::state_dir().join("owners")
}

fn dir_name(owner: &Owner) -> String {
    format!("{}_{}_{}", owner.pid, owner.start, owner.boot_id)
}

/// The owner a marker directory's name names.
fn parse_dir_name(name: &str) -> Option<Owner> {
    let mut parts = name.splitn(3, '_');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.to_string();
    let boot_id = parts.next()?.to_string();
    (!start.is_empty() && !boot_id.is_empty()).then(|| Owner {
        pid,
        start,
        boot_id,
        host: machine_id(),
    })
}

/// This process's marker file, created on first use.
pub fn marker() -> Result<PathBuf> {
    static MARKER: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    MARKER
        .get_or_init(|| {
            let dir = owners_dir().join(dir_name(&Owner::current()));
            let file = dir.join(FILE);
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&file, b""))
                .map(|()| file)
                .map_err(|e| Error::io("creating", &dir, e).to_string())
        })
        .clone()
        .map_err(|reason| Error::UnexpectedOutput {
            command: "marking this process's buildah containers".into(),
            reason,
        })
}

/// The owner of a working container whose marker is `path`, if it is a
/// marker of this state directory.
fn owner_of(path: &Path) -> Option<Owner> {
    let rest = path.strip_prefix(owners_dir()).ok()?;
    let mut parts = rest.iter();
    let name = parts.next()?.to_str()?;
    (parts.next()? == FILE && parts.next().is_none()).then_some(())?;
    parse_dir_name(name)
}

/// Remove the working containers of dead mcpod processes of this state
/// directory, then their marker directories; what was removed, each
/// named with whose it was.
pub async fn sweep() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for c in buildah::containers()
        .await?
        .into_iter()
        .filter(|c| c.builder)
    {
        let Some(marker) = buildah::container_marker(&c.id).await? else {
            continue;
        };
        let Some(owner) = owner_of(&marker) else {
            continue;
        };
        if owner.is_alive() {
            continue;
        }
        buildah::remove_container(&c.id).await;
        removed.push(format!(
            "{} (buildah working container of mcpod process {})",
            c.name, owner.pid
        ));
    }
    let Ok(entries) = std::fs::read_dir(owners_dir()) else {
        return Ok(removed);
    };
    for entry in entries.flatten() {
        let dead = entry
            .file_name()
            .to_str()
            .and_then(parse_dir_name)
            .is_some_and(|o| !o.is_alive());
        if dead && let Err(e) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a dead process's marker");
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_names_its_owner_and_only_this_state_directorys_count() {
        let me = Owner::current();
        let path = owners_dir().join(dir_name(&me)).join(FILE);
        assert_eq!(owner_of(&path), Some(me));
        assert_eq!(
            owner_of(Path::new("/elsewhere/owners/1_2_3/mounts.conf")),
            None
        );
        assert_eq!(owner_of(&owners_dir().join("1_2_3").join("other")), None);
        assert_eq!(owner_of(&owners_dir().join("x_2_3").join(FILE)), None);
        let gone = owners_dir().join("1_2_a-b_c").join(FILE);
        let owner = owner_of(&gone).expect("parses");
        assert_eq!((owner.pid, owner.boot_id.as_str()), (1, "a-b_c"));
        assert!(!owner.is_alive());
    }
}
