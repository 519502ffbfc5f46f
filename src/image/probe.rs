//! The probe a build makes of local storage: the IDs of its base images, and
//! whether the image of its key is there (a cache hit).
//!
//! Its cost does not grow with the store: it reads containers-storage's image
//! index (`engine::storage`) under the index's lock, with no process started,
//! and trusts what it read only when it found every base there. What a hit
//! found is remembered with the index's version (its lock file's write token
//! and the index file's identity); while the version stays the same, the
//! next probe reads only those (a few hundred bytes), not the index. Otherwise
//! (no index here, a lock held too long, an index it cannot read, a base it
//! did not find) it asks buildah for the whole listing, as before, with that
//! listing's retries.
//!
//! A hit is confirmed before it is used: the image the key's tag named must be
//! the one mcpod recorded when it built the key, and still be in the store (one
//! `stat`). A tag that names another image than the recorded one is a miss
//! (something other than mcpod moved it: the key is built again). With no
//! record (another state directory built it) buildah is asked about the tag,
//! and what the image's own labels declare is recorded. An image gone or
//! changed since the index was read is a miss (the build path, which waits
//! for the key's lock and asks again), never another image's answer.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::reference::{self, Named};
use super::store;
use crate::engine::buildah::{self, LocalImage};
use crate::engine::storage::{self, ImageIndex, IndexRead, StoredImage};
use crate::labels::{self, Declared};
use crate::{Error, Result};

/// The most answers remembered (a hit needs its bases and its tag).
const MAX_ANSWERS: usize = 64;

/// What the probe saw of local storage.
pub struct Probe {
    bases: Vec<String>,
    source: Source,
}

enum Source {
    /// The store's image index, read directly (`images`), or still the
    /// version whose answers were remembered (`known`).
    Index {
        index: ImageIndex,
        version: String,
        images: Option<Vec<StoredImage>>,
        known: BTreeMap<String, String>,
    },
    /// buildah's listing of every image.
    Listing(Vec<LocalImage>),
}

/// The IDs a hit found, for one version of one index.
#[derive(Serialize, Deserialize)]
struct Answers {
    dir: PathBuf,
    version: String,
    ids: BTreeMap<String, String>,
}

fn answers_path() -> PathBuf {
    store::state_dir().join("index-answers.json")
}

impl Answers {
    fn load(index: &ImageIndex) -> Option<Answers> {
        let bytes = std::fs::read(answers_path()).ok()?;
        let answers: Answers = serde_json::from_slice(&bytes).ok()?;
        (answers.dir == index.dir() && answers.ids.len() <= MAX_ANSWERS).then_some(answers)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::UnexpectedOutput {
            command: "reading the image index".into(),
            reason: e.to_string(),
        })?
}

impl Probe {
    /// Probe for `bases`: from the index when it has every one of them, else
    /// from buildah's listing.
    pub async fn take(bases: &[String]) -> Result<Probe> {
        if let Some(index) = storage::image_index().await {
            match Self::from_index(index, bases).await {
                Ok(Some(probe)) => return Ok(probe),
                Ok(None) => {}
                Err(e) => tracing::info!("buildah lists the store instead: {e}"),
            }
        }
        Ok(Probe {
            bases: bases.to_vec(),
            source: Source::Listing(buildah::images().await?),
        })
    }

    async fn from_index(index: ImageIndex, bases: &[String]) -> Result<Option<Probe>> {
        let saved = Answers::load(&index).filter(|a| bases.iter().all(|b| a.ids.contains_key(b)));
        let known_version = saved.as_ref().map(|a| a.version.clone());
        let reader = index.clone();
        let read = blocking(move || reader.read_if_changed(known_version.as_deref())).await?;
        let source = match (read, saved) {
            (IndexRead::Unchanged, Some(saved)) => Source::Index {
                index,
                version: saved.version,
                images: None,
                known: saved.ids,
            },
            (IndexRead::Changed(version, images), _) => Source::Index {
                index,
                version,
                images: Some(images),
                known: BTreeMap::new(),
            },
            // Not asked with a known version: not answered so.
            (IndexRead::Unchanged, None) => return Ok(None),
        };
        let probe = Probe {
            bases: bases.to_vec(),
            source,
        };
        Ok(bases
            .iter()
            .all(|b| probe.id_of(b).is_some())
            .then_some(probe))
    }

    /// Whether the probe read the store's index (not buildah's listing).
    pub fn reads_index(&self) -> bool {
        matches!(self.source, Source::Index { .. })
    }

    /// The full ID of the image `reference` names, if the probe saw it.
    pub fn id_of(&self, reference: &str) -> Option<String> {
        match &self.source {
            Source::Index {
                images: Some(images),
                ..
            } => find_id(images, reference),
            Source::Index { known, .. } => known.get(reference).cloned(),
            Source::Listing(images) => find_id(images, reference),
        }
    }

    /// The ID of `reference`, reading the index when the remembered answers
    /// do not have it.
    async fn resolve(&mut self, reference: &str) -> Result<Option<String>> {
        if let Some(id) = self.id_of(reference) {
            return Ok(Some(id));
        }
        if let Source::Index {
            index,
            version,
            images: images @ None,
            ..
        } = &mut self.source
        {
            let reader = index.clone();
            let (read_version, read) = blocking(move || reader.read()).await?;
            *version = read_version;
            *images = Some(read);
            return Ok(self.id_of(reference));
        }
        Ok(None)
    }

    /// Remember the IDs of the bases and `tag` for this version of the index,
    /// when the probe read the index itself.
    fn remember(&self, tag: &str) {
        let Source::Index {
            index,
            version,
            images: Some(_),
            ..
        } = &self.source
        else {
            return;
        };
        let ids: BTreeMap<String, String> = self
            .bases
            .iter()
            .map(String::as_str)
            .chain([tag])
            .take(MAX_ANSWERS)
            .filter_map(|r| self.id_of(r).map(|id| (r.to_string(), id)))
            .collect();
        let answers = Answers {
            dir: index.dir().to_path_buf(),
            version: version.clone(),
            ids,
        };
        let path = answers_path();
        let written = serde_json::to_vec(&answers)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)
            });
        if let Err(e) = written {
            tracing::warn!(
                "could not remember the probe's answers in {}: {e}",
                path.display()
            );
        }
    }

    /// The cache hit for `tag` (the tag of the key `key_hex`): its image ID
    /// and what it declares; `None` when it is not there, or is no longer
    /// the image the probe saw.
    pub async fn hit(&mut self, key_hex: &str, tag: &str) -> Result<Option<(String, Declared)>> {
        let Some(id) = self.resolve(tag).await? else {
            return Ok(None);
        };
        let still_there = match &self.source {
            Source::Index { index, .. } => index.holds(&id),
            // The listing has no cheaper check than asking again.
            Source::Listing(_) => true,
        };
        match store::record(key_hex) {
            Some(record) if record.image_id == id => {
                if still_there {
                    self.remember(tag);
                    return Ok(Some((id, record.declared)));
                }
                return confirm(tag, &id).await;
            }
            Some(record) => {
                tracing::info!(
                    "{tag} names image {id}, not image {} that mcpod built for this key: building it again",
                    record.image_id
                );
                return Ok(None);
            }
            None => {}
        }
        let confirmed = confirm(tag, &id).await?;
        // Remembered, so the next hit needs no process.
        if let Some((id, declared)) = &confirmed {
            let record = store::Record {
                image_id: id.clone(),
                tag: tag.to_string(),
                declared: declared.clone(),
            };
            if let Err(e) = store::write_record(key_hex, &record) {
                tracing::warn!("could not record what {tag} declares: {e}");
            }
        }
        Ok(confirmed)
    }
}

fn find_id<I: Named>(images: &[I], reference: &str) -> Option<String> {
    reference::find(images, reference).map(|i| i.id().to_string())
}

/// Ask buildah about `tag`: a hit only if it still names image `id`, with
/// what that image's own labels declare.
async fn confirm(tag: &str, id: &str) -> Result<Option<(String, Declared)>> {
    match buildah::inspect_image(tag).await? {
        Some(found) if found.id == id => {
            let declared = labels::read(&found.labels)?;
            Ok(Some((found.id, declared)))
        }
        Some(found) => {
            tracing::info!(
                "{tag} moved from image {id} to {} while it was looked up: not a cache hit",
                found.id
            );
            Ok(None)
        }
        None => {
            tracing::info!("{tag} (image {id}) went away while it was looked up: not a cache hit");
            Ok(None)
        }
    }
}
