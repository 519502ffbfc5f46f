//! Images that travel. A session on an engine that does not share this
//! host's storage runs the supervised image (see `supervised.rs`): built
//! here once, pushed once to the operator's registry, and pulled by digest by
//! each engine that lacks it. Nothing else is ever pulled: a session still
//! runs with `--pull=never`, by image ID.
//!
//! An engine is asked whether it has the image once per process; after
//! that the image is taken to be there (over ssh each question is a
//! connection, ~220 ms). A launch that finds it gone (a `gc` there, say)
//! forgets what this process knew of that engine and is placed again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::supervised;
use crate::engine::engines::Engine;
use crate::engine::podman;
use crate::engine::registry::Registry;
use crate::{Error, Result};

type Once<T> = Arc<OnceCell<T>>;

/// What this process has built, pushed and pulled, so launches at once of
/// one image do each step once.
#[derive(Default)]
pub struct Shipper {
    registry: Option<Registry>,
    /// Image ID → its supervised image's (tag, ID) here.
    built: Mutex<HashMap<String, Once<(String, String)>>>,
    /// Supervised image ID → `REPO@DIGEST` in the registry.
    pushed: Mutex<HashMap<String, Once<String>>>,
    /// (engine, supervised image ID) → pulls under way.
    pulled: Mutex<HashMap<(String, String), Once<()>>>,
    /// (engine, supervised image ID) known to be on that engine.
    present: Mutex<std::collections::HashSet<(String, String)>>,
}

fn cell<K: std::hash::Hash + Eq, T>(map: &Mutex<HashMap<K, Once<T>>>, key: K) -> Once<T> {
    map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default()
        .clone()
}

impl Shipper {
    pub fn new(registry: Option<Registry>) -> Shipper {
        Shipper {
            registry,
            ..Shipper::default()
        }
    }

    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }

    /// The supervised image of `image_id` here: its (tag, ID).
    pub async fn supervised(&self, image_id: &str) -> Result<(String, String)> {
        cell(&self.built, image_id.to_string())
            .get_or_try_init(|| async {
                let tag = supervised::supervised(image_id).await?;
                let (id, _) =
                    podman::image_labels(&tag)
                        .await?
                        .ok_or_else(|| Error::UnexpectedOutput {
                            command: format!("buildah commit {tag}"),
                            reason: "the image it made is not in local storage".into(),
                        })?;
                Ok((tag, id))
            })
            .await
            .cloned()
    }

    /// The supervised image of `image_id` in the registry: `REPO@DIGEST`,
    /// pushed on the first call.
    pub async fn publish(&self, image_id: &str) -> Result<String> {
        let registry = self.registry.as_ref().ok_or_else(|| {
            Error::invalid(
                "registry",
                "",
                "images reach other engines through the operator's registry, and none is set",
                "start mcpod with --registry HOST[:PORT][/NAMESPACE]",
            )
        })?;
        let (tag, id) = self.supervised(image_id).await?;
        cell(&self.pushed, id)
            .get_or_try_init(|| async {
                let key = tag.rsplit_once(':').map_or("", |(_, k)| k);
                let target = format!("{}:{key}", registry.repository(supervised::REPOSITORY));
                registry.push(&tag, &target).await
            })
            .await
            .cloned()
    }

    /// The image a session of `image_id` runs on `engine`, by ID: the
    /// supervised image, pulled there by digest when the engine lacks it.
    pub async fn onto(&self, engine: &Engine, image_id: &str) -> Result<String> {
        let (_, id) = self.supervised(image_id).await?;
        let key = (engine.name.clone(), id.clone());
        if self.known(&key) {
            return Ok(id);
        }
        if engine.podman.has_image(&id).await? {
            self.present
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
            return Ok(id);
        }
        let reference = self.publish(image_id).await.map_err(|e| match e {
            Error::InvalidInput { reason, fix, .. } => Error::invalid(
                "engine",
                &engine.name,
                format!("it lacks the image, and {reason}"),
                fix,
            ),
            e => e,
        })?;
        // Launches at once share one pull; a later launch asks the engine
        // again (its image may have been removed since).
        let key = (engine.name.clone(), id.clone());
        let pulled = cell(&self.pulled, key.clone())
            .get_or_try_init(|| async {
                engine.podman.pull(&reference).await?;
                if engine.podman.has_image(&id).await? {
                    Ok(())
                } else {
                    Err(Error::UnexpectedOutput {
                        command: format!("podman pull {reference} on engine {}", engine.name),
                        reason: format!("the engine has no image {id} after it"),
                    })
                }
            })
            .await
            .map(drop);
        self.pulled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        if pulled.is_ok() {
            self.present
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
        }
        pulled.map(|()| id)
    }

    fn known(&self, key: &(String, String)) -> bool {
        self.present
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }

    /// The images this process took to be on `engine` may be gone: ask again.
    /// Whether it knew any.
    pub fn forget(&self, engine: &str) -> bool {
        let mut present = self.present.lock().unwrap_or_else(|p| p.into_inner());
        let before = present.len();
        present.retain(|(e, _)| e != engine);
        present.len() != before
    }
}
