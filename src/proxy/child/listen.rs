//! A 2026-07-28 child tells of changes only on a `subscriptions/listen`
//! stream: its tool, prompt and resource lists changing (each only when it
//! says it can tell), and updates of the resources the agent subscribed to.
//! One stream per child, opened again (the new one first, then the old one
//! dropped) whenever the agent's resource subscriptions at that child
//! change; a stream that ends or falls behind is opened again after a
//! moment, and the lists are read again, since changes may have been missed.
//! A child that refuses streams, or ends each soon after it opened, is
//! tried [`MAX_FAILURES`] times in a row, then left until the agent's
//! subscriptions there change.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{ServerCapabilities, ServerNotification, SubscriptionFilter};
use rmcp::service::Subscription;
use rmcp::{Peer, RoleClient};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Shared;

/// Resources of one child the agent may subscribe to at once.
pub const MAX_RESOURCES: usize = 256;
/// Failed opens in a row after which mcpod stops trying, until the agent's
/// subscriptions change.
const MAX_FAILURES: u32 = 5;
/// How long after a stream ended or failed it is opened again.
const AGAIN_AFTER: Duration = Duration::from_secs(1);
/// A stream that ends sooner than this after it opened counts as a failed
/// open (a child that ends every stream is not reopened, and its lists
/// read again, once a second for ever).
const STEADY: Duration = Duration::from_secs(10);

/// The agent's resource subscriptions at one child, as its stream asks for them.
#[derive(Default)]
pub struct Listener {
    uris: Mutex<BTreeSet<String>>,
    changed: Notify,
}

impl Listener {
    /// Subscribe to (`on`) or unsubscribe from updates of the child's `uri`.
    pub fn resource(&self, uri: &str, on: bool) -> Result<(), String> {
        let mut uris = self.uris.lock().unwrap_or_else(|p| p.into_inner());
        let changed = if on {
            if uris.len() >= MAX_RESOURCES && !uris.contains(uri) {
                return Err(format!(
                    "already subscribed to {MAX_RESOURCES} resources of this server, mcpod's limit; unsubscribe from one first"
                ));
            }
            uris.insert(uri.to_string())
        } else {
            uris.remove(uri)
        };
        if changed {
            self.changed.notify_one();
        }
        Ok(())
    }

    /// What the stream asks for, given what the child offers.
    fn filter(&self, offers: &ServerCapabilities) -> SubscriptionFilter {
        let told = |list_changed: Option<bool>| list_changed.filter(|c| *c);
        let uris: Vec<String> = match offers.resources.as_ref().and_then(|r| r.subscribe) {
            Some(true) => self
                .uris
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let mut filter = SubscriptionFilter::new();
        filter.tools_list_changed = told(offers.tools.as_ref().and_then(|t| t.list_changed));
        filter.prompts_list_changed = told(offers.prompts.as_ref().and_then(|p| p.list_changed));
        filter.resources_list_changed =
            told(offers.resources.as_ref().and_then(|r| r.list_changed));
        filter.resource_subscriptions = (!uris.is_empty()).then_some(uris);
        filter
    }
}

/// Keep a stream open at the child while it lives (until `died`).
pub fn start(
    shared: Arc<Shared>,
    peer: Peer<RoleClient>,
    offers: ServerCapabilities,
    died: CancellationToken,
) {
    tokio::spawn(async move {
        tokio::select! {
            _ = run(&shared, &peer, &offers) => {}
            _ = died.cancelled() => {}
        }
    });
}

async fn run(shared: &Arc<Shared>, peer: &Peer<RoleClient>, offers: &ServerCapabilities) {
    let listener = &shared.listener;
    let mut current: Option<Subscription> = None;
    let mut failures = 0;
    // After a stream broke, changes may have been missed.
    let mut missed = false;
    loop {
        let filter = listener.filter(offers);
        if filter == SubscriptionFilter::new() {
            drop(current.take());
            listener.changed.notified().await;
            continue;
        }
        let stream = match peer.listen(filter).await {
            Ok(opened) => {
                if std::mem::take(&mut missed) {
                    shared.relist(peer.clone());
                }
                // The old stream goes only now that the new one is there.
                current.insert(opened)
            }
            Err(rmcp::ServiceError::TransportClosed) => return,
            Err(e) => {
                shared.note(&format!("subscriptions/listen failed: {e}"));
                failures = back_off(shared, failures + 1).await;
                continue;
            }
        };
        let opened = Instant::now();
        tokio::select! {
            ended = follow(shared, peer, stream) => {
                shared.note(&format!("its subscriptions/listen stream ended ({ended})"));
                drop(current.take());
                missed = true;
                // One that ended soon after it opened counts on from the last.
                let failed = if opened.elapsed() < STEADY { failures + 1 } else { 1 };
                failures = back_off(shared, failed).await;
            }
            _ = listener.changed.notified() => failures = 0,
        }
    }
}

/// After the `failures`-th failure in a row (a refused or short-lived
/// stream): wait a moment, or, at [`MAX_FAILURES`], until the agent's
/// subscriptions change. Returns the failures to count on with.
async fn back_off(shared: &Shared, failures: u32) -> u32 {
    let changed = shared.listener.changed.notified();
    if failures >= MAX_FAILURES {
        shared.note(&format!(
            "subscriptions/listen was refused or ended early {MAX_FAILURES} times in a row; changes are not followed until the client's subscriptions change"
        ));
        changed.await;
        return 0;
    }
    tokio::select! {
        _ = tokio::time::sleep(AGAIN_AFTER) => failures,
        _ = changed => 0,
    }
}

/// Act on the stream's notifications until it ends; says how it ended.
async fn follow(
    shared: &Arc<Shared>,
    peer: &Peer<RoleClient>,
    stream: &mut Subscription,
) -> String {
    loop {
        match stream.next().await {
            Ok(Some(notification)) => match notification {
                ServerNotification::ToolListChangedNotification(_)
                | ServerNotification::PromptListChangedNotification(_)
                | ServerNotification::ResourceListChangedNotification(_) => {
                    shared.relist(peer.clone());
                }
                ServerNotification::ResourceUpdatedNotification(n) => {
                    shared.updated(&n.params.uri).await;
                }
                _ => {}
            },
            Ok(None) => return "by the server".into(),
            Err(e) => return e.to_string(),
        }
    }
}
