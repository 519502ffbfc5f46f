//! Progress toward the caller: messages from the library, and a child's own
//! progress re-addressed to the caller's token.

use std::sync::Arc;

use rmcp::model::{ProgressNotificationParam, RequestMetaObject};
use rmcp::{Peer, RoleServer};

use crate::image::Progress;
use crate::proxy::ProgressSink;

/// Library progress messages become `notifications/progress` when the caller
/// sent a progress token; without one they only go to the log.
pub fn progress_messages(meta: RequestMetaObject, peer: Peer<RoleServer>) -> Progress {
    let Some(token) = meta.get_progress_token() else {
        return Arc::new(|msg: String| tracing::debug!("{msg}"));
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut step = 0u32;
        while let Some(message) = rx.recv().await {
            step += 1;
            let param = ProgressNotificationParam::new(token.clone(), f64::from(step))
                .with_message(message);
            if peer.notify_progress(param).await.is_err() {
                break;
            }
        }
    });
    Arc::new(move |msg: String| {
        let _ = tx.send(msg);
    })
}

/// A child's progress notifications, in order, under the caller's token.
pub fn forward_progress(meta: &RequestMetaObject, peer: Peer<RoleServer>) -> Option<ProgressSink> {
    let token = meta.get_progress_token()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ProgressNotificationParam>();
    tokio::spawn(async move {
        while let Some(mut param) = rx.recv().await {
            param.progress_token = token.clone();
            if peer.notify_progress(param).await.is_err() {
                break;
            }
        }
    });
    Some(Arc::new(move |param| {
        let _ = tx.send(param);
    }))
}
