//! mcpod's session supervisor as a file: on this host, written once for the
//! local engine to bind-mount read-only; in an image, for engines that do
//! not share this host's files (a remote podman, a Kubernetes Pod).

use std::path::PathBuf;

use crate::engine::{buildah, podman};
use crate::{Error, Result};

/// The supervisor mcpod was built with.
static SUPERVISOR: &[u8] = include_bytes!(env!("MCPOD_SUPERVISOR_BIN"));

/// The repository of supervised images, here and in the operator's registry.
pub const REPOSITORY: &str = "mcpod-session";

/// The supervisor on the host, written once per build under the state
/// directory (named by its digest, so builds never share a file), for podman
/// to bind-mount read-only.
pub fn binary() -> Result<PathBuf> {
    static PATH: std::sync::OnceLock<std::result::Result<PathBuf, String>> =
        std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let digest = blake3::hash(SUPERVISOR).to_hex();
        let dir = super::store::state_dir().join("supervisor");
        let path = dir.join(format!("mcpod-supervisor-{}", &digest[..16]));
        if std::fs::read(&path).is_ok_and(|b| b == SUPERVISOR) {
            return Ok(path);
        }
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".{}.{}", &digest[..16], crate::engine::nonce()));
            std::fs::write(&tmp, SUPERVISOR)?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
            std::fs::rename(&tmp, &path)
        };
        write()
            .map(|()| path.clone())
            .map_err(|e| Error::io("writing", &path, e).to_string())
    })
    .clone()
    .map_err(|reason| Error::UnexpectedOutput {
        command: "installing the session supervisor".into(),
        reason,
    })
}

/// The tag of `image_id` with this build's supervisor added: content
/// addressed, so the same image and supervisor always give the same tag.
pub fn tag_for(image_id: &str) -> String {
    let mut key = blake3::Hasher::new();
    key.update(image_id.as_bytes());
    key.update(&[0]);
    key.update(blake3::hash(SUPERVISOR).as_bytes());
    format!("localhost/{REPOSITORY}:{}", &key.finalize().to_hex()[..16])
}

/// `image_id` with the supervisor at its path in the container, in local
/// storage: built on a miss (one small layer), found on a hit. Its tag.
pub async fn supervised(image_id: &str) -> Result<String> {
    let tag = tag_for(image_id);
    if podman::image_labels(&tag).await?.is_some() {
        return Ok(tag);
    }
    let binary = binary()?;
    buildah::add_file(
        image_id,
        &binary,
        mcpod_supervisor::protocol::PATH_IN_CONTAINER,
        &tag,
        &super::leftovers::marker()?,
    )
    .await?;
    Ok(tag)
}
