//! Image references an inspect resolved, reused while the store's image index
//! says nothing changed: launching a tag this process did not build (`mcpod
//! build` on the command line, another mcpod) starts no `podman image
//! inspect` after the first launch of it.
//!
//! An answer is kept with the version of containers-storage's image index
//! (`engine::storage`: its lock file's write token and the index file's
//! identity), read after the inspect, and only when that index names the same
//! image for the reference as podman did (so it is the store podman reads).
//! While the version holds, no image was added, removed, tagged or untagged:
//! the reference still names that image, and an image's labels and user are
//! its content's. Another version, or an index that cannot be read, drops the
//! answer and the launch inspects again; nothing is guessed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::recipe::Resolved;
use crate::engine::storage::{self, ImageIndex, IndexRead};
use crate::image::reference;

/// The most references kept (each a few hundred bytes).
const MAX_KNOWN: usize = 64;

#[derive(Default)]
pub(super) struct Known {
    /// The store's index; `None` when it cannot be read directly.
    index: tokio::sync::OnceCell<Option<ImageIndex>>,
    answers: Mutex<HashMap<String, Answer>>,
}

#[derive(Clone)]
struct Answer {
    /// The index's version when the answer was checked against it.
    version: String,
    resolved: Arc<Resolved>,
}

impl Known {
    async fn index(&self) -> Option<ImageIndex> {
        self.index.get_or_init(storage::image_index).await.clone()
    }

    /// What an inspect resolved `reference` to, while the store's index is
    /// still the version it was checked against.
    pub(super) async fn get(&self, reference: &str) -> Option<Arc<Resolved>> {
        let answer = self
            .answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(reference)
            .cloned()?;
        let index = self.index().await?;
        let known = answer.version.clone();
        let read = tokio::task::spawn_blocking(move || index.read_if_changed(Some(&known))).await;
        if let Ok(Ok(IndexRead::Unchanged)) = read {
            return Some(answer.resolved);
        }
        self.forget(reference);
        None
    }

    pub(super) fn forget(&self, reference: &str) {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(reference);
    }

    /// Keep what an inspect resolved `reference` to, when the store's index
    /// (read now, after the inspect) names the same image for it.
    pub(super) async fn keep(&self, reference: &str, resolved: Arc<Resolved>) {
        if reference.contains("://") {
            return;
        }
        let Some(index) = self.index().await else {
            return;
        };
        let Ok(Ok((version, images))) = tokio::task::spawn_blocking(move || index.read()).await
        else {
            return;
        };
        if reference::find(&images, reference).map(|i| i.id.as_str()) != Some(resolved.id.as_str())
        {
            return;
        }
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        if answers.len() >= MAX_KNOWN && !answers.contains_key(reference) {
            answers.clear();
        }
        answers.insert(reference.to_string(), Answer { version, resolved });
    }

    /// Answers checked against the index in `dir` (tests).
    #[cfg(test)]
    pub(super) fn at(dir: &std::path::Path) -> Known {
        Known {
            index: tokio::sync::OnceCell::new_with(Some(Some(ImageIndex::at(dir)))),
            answers: Mutex::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f9fda2b233f25ba8d09463d318c83daa0e41521a41a987345753a99c8be3a10";
    const OTHER: &str = "9ea48f78a09e0f4c5e3a2b1d8c7f6e5d4c3b2a1908f7e6d5c4b3a2918f7e6d5c";
    const TAG: &str = "localhost/mcpod-hello:a03ec789f3446498";

    fn store(dir: &std::path::Path, token: &str, id: &str) {
        std::fs::write(dir.join("images.lock"), token).expect("lock");
        let index = serde_json::json!([{"id": id, "names": [TAG]}]);
        std::fs::write(dir.join("images.json"), index.to_string()).expect("index");
    }

    fn resolved(id: &str) -> Arc<Resolved> {
        Arc::new(Resolved {
            id: id.to_string(),
            servers: Default::default(),
            requests: None,
            warnings: Vec::new(),
            user: Some(String::new()),
        })
    }

    #[tokio::test]
    async fn an_answer_holds_while_the_index_is_unchanged_and_not_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        store(dir.path(), "token-1", ID);
        let known = Known::at(dir.path());
        known.keep(TAG, resolved(ID)).await;
        let got = known.get(TAG).await.expect("kept while unchanged");
        assert_eq!(got.id, ID);
        // A writer (a tag moved, an image built or removed) takes the lock
        // and leaves a new token: the answer is dropped, not trusted.
        store(dir.path(), "token-2", OTHER);
        assert!(known.get(TAG).await.is_none());
        // And stays dropped even were the index to read as before.
        store(dir.path(), "token-1", ID);
        assert!(known.get(TAG).await.is_none());
    }

    #[tokio::test]
    async fn an_answer_the_index_does_not_confirm_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        store(dir.path(), "token-1", OTHER);
        let known = Known::at(dir.path());
        // podman said ID; the index names another image for the tag (the
        // tag moved since, or another store): asked again next time.
        known.keep(TAG, resolved(ID)).await;
        assert!(known.get(TAG).await.is_none());
        known.keep("localhost/not-there:1", resolved(OTHER)).await;
        assert!(known.get("localhost/not-there:1").await.is_none());
        known
            .keep(&format!("docker://{TAG}"), resolved(OTHER))
            .await;
        assert!(known.get(&format!("docker://{TAG}")).await.is_none());
    }

    #[tokio::test]
    async fn no_index_keeps_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let known = Known::at(&dir.path().join("absent"));
        known.keep(TAG, resolved(ID)).await;
        assert!(known.get(TAG).await.is_none());
    }
}
