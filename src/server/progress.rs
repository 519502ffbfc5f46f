//! Progress toward the caller: messages from the library, and a child's own
//! progress re-addressed to the caller's token. Each forwarder is flushed
//! before the response goes out, so no progress arrives after its result.
//! A request that became a task has no response left to precede: its
//! progress becomes the task's status message (see `tasks.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{ProgressNotificationParam, ProgressToken, RequestMetaObject};
use rmcp::task_manager::TaskContext;
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc::{Sender, WeakSender};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::image::Progress;
use crate::proxy::ProgressSink;

/// Waits until every progress notification of one request has been sent.
pub struct Flush {
    task: Option<JoinHandle<()>>,
    /// The forwarder's queue, without keeping it open.
    queue: Option<WeakSender<Item>>,
}

/// What a forwarder's queue carries.
enum Item {
    Progress(ProgressNotificationParam),
    /// Answered once everything queued before it has been sent.
    Settle(oneshot::Sender<()>),
}

impl Flush {
    /// Nothing to wait for: a request without progress.
    pub fn none() -> Self {
        Flush {
            task: None,
            queue: None,
        }
    }

    /// Call once the library has returned (and dropped its progress callback).
    pub async fn done(self) {
        if let Some(task) = self.task {
            // A callback kept alive elsewhere must not hold the response back.
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
    }

    /// Wait until what was queued so far has been sent (the request goes
    /// on): progress before an input round's response precedes it.
    pub async fn settle(&self) {
        let Some(queue) = self.queue.as_ref().and_then(WeakSender::upgrade) else {
            return;
        };
        let (tx, rx) = oneshot::channel();
        if queue.send(Item::Settle(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
    }
}

/// Notifications of one request waiting to go out; more are dropped (a
/// progress notification is superseded by the next), so a child that floods
/// progress faster than the client reads costs mcpod a bounded queue.
const QUEUE: usize = 64;
/// Characters of a progress message that are forwarded.
const MESSAGE_CHARS: usize = 4096;

/// Where progress under a request's token goes instead of that request.
#[derive(Clone)]
enum Route {
    /// A token mcpod made up (the request had none): nowhere, until the
    /// request becomes a task.
    MadeUp,
    /// The request became a task: its status message.
    Task(TaskContext),
    /// The request ended with an MRTR input request: the retry's token.
    Retry(ProgressToken),
}

/// Requests whose progress goes elsewhere, by their progress token.
#[derive(Default)]
pub struct HandedOff(Mutex<HashMap<ProgressToken, Route>>);

impl HandedOff {
    fn route(&self, token: ProgressToken, route: Route) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, route);
    }

    /// A token mcpod made up for a request that may become a task.
    pub fn made_up(&self, token: ProgressToken) {
        self.route(token, Route::MadeUp);
    }

    pub fn hand(&self, token: ProgressToken, task: TaskContext) {
        self.route(token, Route::Task(task));
    }

    /// The call of `token`'s request goes on under a retry with `retry`'s
    /// token (or none: its progress is dropped).
    pub fn retry(&self, token: ProgressToken, retry: Option<ProgressToken>) {
        self.route(token, retry.map_or(Route::MadeUp, Route::Retry));
    }

    pub fn forget(&self, token: &ProgressToken) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    fn get(&self, token: &ProgressToken) -> Option<Route> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }
}

/// Forward notifications from a channel to the caller under `token`, in
/// order; or where `handed` routes that token.
fn forwarder(
    token: ProgressToken,
    peer: Peer<RoleServer>,
    handed: Arc<HandedOff>,
) -> (Queue, Flush) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(QUEUE);
    let queue = Some(tx.downgrade());
    let task = tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            let mut param = match item {
                Item::Progress(param) => param,
                Item::Settle(done) => {
                    let _ = done.send(());
                    continue;
                }
            };
            param.progress_token = match handed.get(&token) {
                Some(Route::Task(task)) => {
                    if let Some(message) = param.message {
                        task.set_status_message(message);
                    }
                    continue;
                }
                Some(Route::MadeUp) => continue,
                Some(Route::Retry(retry)) => retry,
                None => token.clone(),
            };
            if peer.notify_progress(param).await.is_err() {
                break;
            }
        }
    });
    (
        Queue(tx),
        Flush {
            task: Some(task),
            queue,
        },
    )
}

/// The sending end of a forwarder: a notification that does not fit is dropped.
struct Queue(Sender<Item>);

impl Queue {
    fn offer(&self, param: ProgressNotificationParam) {
        let _ = self.0.try_send(Item::Progress(param));
    }
}

/// Library progress messages become `notifications/progress` when the caller
/// sent a progress token; without one they only go to the log.
pub fn progress_messages(
    meta: &RequestMetaObject,
    peer: Peer<RoleServer>,
    handed: &Arc<HandedOff>,
) -> (Progress, Flush) {
    let Some(token) = meta.get_progress_token() else {
        return (
            Arc::new(|msg: String| tracing::debug!("{msg}")),
            Flush::none(),
        );
    };
    let (tx, flush) = forwarder(token.clone(), peer, handed.clone());
    let step = std::sync::atomic::AtomicU32::new(0);
    let progress: Progress = Arc::new(move |message: String| {
        let n = step.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        tx.offer(ProgressNotificationParam::new(token.clone(), f64::from(n)).with_message(message));
    });
    (progress, flush)
}

/// A child's progress notifications, in order, under the caller's token.
pub fn forward_progress(
    meta: &RequestMetaObject,
    peer: Peer<RoleServer>,
    handed: &Arc<HandedOff>,
) -> (Option<ProgressSink>, Flush) {
    match meta.get_progress_token() {
        Some(token) => forward_progress_to(token, peer, handed),
        None => (None, Flush::none()),
    }
}

/// [`forward_progress`] under `token`.
pub fn forward_progress_to(
    token: ProgressToken,
    peer: Peer<RoleServer>,
    handed: &Arc<HandedOff>,
) -> (Option<ProgressSink>, Flush) {
    let (tx, flush) = forwarder(token, peer, handed.clone());
    let sink: ProgressSink = Arc::new(move |mut param: ProgressNotificationParam| {
        if let Some(m) = param.message.as_mut()
            && let Some((cut, _)) = m.char_indices().nth(MESSAGE_CHARS)
        {
            m.truncate(cut);
        }
        tx.offer(param);
    });
    (Some(sink), flush)
}
