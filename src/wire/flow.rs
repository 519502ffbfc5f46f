//! Flow control of one [`LineTransport`](super::LineTransport): a peer that
//! sends requests and never reads the replies costs a bounded amount of
//! memory, and a peer that reads slowly is only slowed.
//!
//! Each request read enters the transport's set of requests *in flight*
//! and leaves it when its reply has been written (or the peer cancelled it:
//! then no reply comes). Once [`MAX_IN_FLIGHT`] requests, or requests of
//! [`MAX_REQUEST_BYTES`] (the size of each line as read: a request waiting
//! on a lock keeps its whole message), are in flight, or replies of
//! [`MAX_REPLY_BYTES`] wait to be written, the transport reads
//! no new request until one leaves. It still reads what the peer sends past
//! them (answers to mcpod's own requests, cancellations), keeping at most
//! [`MAX_HELD`] requests of [`MAX_HELD_BYTES`] for later: a peer whose
//! requests wait on its own answers is not deadlocked by the pause. The
//! pause ends when half the requests (and half the bytes) have left, so a
//! peer that reads again gets its replies in batches, not in lockstep.
//!
//! Notifications mcpod sends (progress, list changes, log messages) do not
//! wait on anything: at most [`MAX_WAITING_NOTIFICATIONS`] wait to be
//! written; more are dropped and counted in one line when writing resumes.
//!
//! Only replies pause reading. mcpod's own requests to the peer (a call to a
//! child, a question to the agent) that wait to be written do not: the peer
//! may be blocked writing its answers, which mcpod must go on reading.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::RequestId;
use tokio::sync::Notify;

/// Requests read and not yet answered, at most. A client in use keeps a few
/// in flight; the TypeScript SDK has no limit, and an agent running tools in
/// parallel (or a burst of `tools/list` on reconnection) may send dozens.
/// 256 is four times the 64 proxied calls a session may run, so a busy agent
/// is never paused by it, and 256 replies of a typical size (a `tools/list`
/// of mcpod's tools is about 30 KiB) are a few MiB.
pub const MAX_IN_FLIGHT: usize = 256;
/// Bytes of replies waiting to be written that pause reading: a few large
/// results (a child may answer with up to 16 MiB) pause sooner than 256.
pub const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of requests in flight that pause reading. One request may be
/// 16 MiB (the line limit), and a request waiting (on a build lock, on its
/// unread reply) keeps its whole message: counted, 256 of them could hold
/// 4 GiB. An agent's requests are a few KiB, so 64 MiB (four requests at
/// the line limit, as much as replies may hold) never pauses honest use.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;
/// Requests read past the pause, kept for when it ends.
pub const MAX_HELD: usize = 64;
/// Bytes of requests read past the pause (one more line may cross it).
pub const MAX_HELD_BYTES: usize = 16 * 1024 * 1024;
/// Notifications mcpod sends that may wait to be written at once.
pub const MAX_WAITING_NOTIFICATIONS: usize = 256;

#[derive(Default)]
pub struct Flow {
    in_flight: Mutex<InFlight>,
    /// Bytes of replies being written or waiting to be.
    reply_bytes: AtomicUsize,
    /// Notifications being written or waiting to be.
    notifications: AtomicUsize,
    /// Notifications dropped since one was last written.
    dropped: AtomicUsize,
    /// Told when the pause may have ended.
    freed: Notify,
}

#[derive(Default)]
struct InFlight {
    /// Each request's bytes as read.
    ids: HashMap<RequestId, usize>,
    /// Their sum.
    bytes: usize,
    /// Set at a bound, cleared at half of it.
    paused: bool,
}

/// What [`Flow::notification`] decided.
pub enum Notice {
    /// Write it; the ticket frees its place when dropped.
    Write(NotificationTicket),
    /// Dropped; the first of a run (say so).
    DroppedFirst,
    /// Dropped, after others.
    Dropped,
}

impl Flow {
    /// Request `id`, a line of `bytes`, was read: true, unless it is in
    /// flight already (an id reused while its first request is unanswered,
    /// which JSON-RPC forbids).
    pub fn enter(&self, id: &RequestId, bytes: usize) -> bool {
        let mut in_flight = self.lock();
        if in_flight.ids.contains_key(id) {
            return false;
        }
        in_flight.ids.insert(id.clone(), bytes);
        in_flight.bytes += bytes;
        true
    }

    /// Request `id` was answered (its reply written) or cancelled.
    pub fn leave(&self, id: &RequestId) {
        let freed = {
            let mut in_flight = self.lock();
            match in_flight.ids.remove(id) {
                Some(bytes) => {
                    in_flight.bytes -= bytes;
                    // `until_open` checks again: a wake-up too many is harmless.
                    in_flight.paused
                        && in_flight.ids.len() <= MAX_IN_FLIGHT / 2
                        && in_flight.bytes <= MAX_REQUEST_BYTES / 2
                }
                None => false,
            }
        };
        if freed {
            self.freed.notify_waiters();
        }
    }

    /// How many requests are in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().ids.len()
    }

    /// Bytes of the requests in flight.
    pub fn in_flight_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Whether no new request may be read now: from when a bound is
    /// reached until half of it is left.
    pub fn paused(&self) -> bool {
        let bytes = self.reply_bytes.load(Ordering::Acquire);
        let mut in_flight = self.lock();
        in_flight.paused = if in_flight.paused {
            in_flight.ids.len() > MAX_IN_FLIGHT / 2
                || in_flight.bytes > MAX_REQUEST_BYTES / 2
                || bytes > MAX_REPLY_BYTES / 2
        } else {
            in_flight.ids.len() >= MAX_IN_FLIGHT
                || in_flight.bytes >= MAX_REQUEST_BYTES
                || bytes >= MAX_REPLY_BYTES
        };
        in_flight.paused
    }

    /// Wait until the pause ends (at once if there is none).
    pub async fn until_open(&self) {
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.paused() {
                return;
            }
            notified.await;
        }
    }

    /// A reply of `bytes` starts waiting to be written: it counts until the
    /// ticket is dropped.
    pub fn reply(self: &Arc<Self>, bytes: usize) -> ReplyTicket {
        self.reply_bytes.fetch_add(bytes, Ordering::AcqRel);
        ReplyTicket {
            flow: self.clone(),
            bytes,
        }
    }

    /// A notification is to be written: a ticket, or dropped.
    pub fn notification(self: &Arc<Self>) -> Notice {
        let waiting = self.notifications.fetch_add(1, Ordering::AcqRel);
        if waiting >= MAX_WAITING_NOTIFICATIONS {
            self.notifications.fetch_sub(1, Ordering::AcqRel);
            return match self.dropped.fetch_add(1, Ordering::AcqRel) {
                0 => Notice::DroppedFirst,
                _ => Notice::Dropped,
            };
        }
        Notice::Write(NotificationTicket { flow: self.clone() })
    }

    /// Notifications dropped since the last one written, now counted as
    /// told: the number, if any.
    pub fn take_dropped(&self) -> usize {
        if self.dropped.load(Ordering::Acquire) == 0 {
            return 0;
        }
        self.dropped.swap(0, Ordering::AcqRel)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A reply's bytes, counted while it waits to be written.
pub struct ReplyTicket {
    flow: Arc<Flow>,
    bytes: usize,
}

impl Drop for ReplyTicket {
    fn drop(&mut self) {
        let before = self
            .flow
            .reply_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
        let half = MAX_REPLY_BYTES / 2;
        if before > half && before - self.bytes <= half {
            self.flow.freed.notify_waiters();
        }
    }
}

/// A notification's place among those waiting to be written.
pub struct NotificationTicket {
    flow: Arc<Flow>,
}

impl Drop for NotificationTicket {
    fn drop(&mut self) {
        self.flow.notifications.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request taken by a [`Tap`](super::Tap), in flight until dropped (after
/// its reply was written, or when it ends without one).
pub struct Slot {
    flow: Arc<Flow>,
    id: RequestId,
}

impl Slot {
    /// Enter `id`, a line of `bytes`; none when it is in flight already.
    pub fn enter(flow: &Arc<Flow>, id: RequestId, bytes: usize) -> Option<Slot> {
        flow.enter(&id, bytes).then(|| Slot {
            flow: flow.clone(),
            id,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.flow.leave(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::NumberOrString;

    #[tokio::test]
    async fn the_pause_ends_when_a_request_leaves() {
        let flow = Arc::new(Flow::default());
        for i in 0..MAX_IN_FLIGHT as i64 {
            assert!(flow.enter(&NumberOrString::Number(i), 10));
        }
        assert!(!flow.enter(&NumberOrString::Number(0), 10), "a reused id");
        assert!(flow.paused());
        let waiting = tokio::spawn({
            let flow = flow.clone();
            async move { flow.until_open().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // Leaving twice (answered, then a late cancellation) counts once.
        flow.leave(&NumberOrString::Number(7));
        flow.leave(&NumberOrString::Number(7));
        assert_eq!(flow.in_flight(), MAX_IN_FLIGHT - 1);
        assert!(flow.paused(), "paused until half have left");
        for i in 8..MAX_IN_FLIGHT as i64 / 2 + 6 {
            flow.leave(&NumberOrString::Number(i));
        }
        assert_eq!(flow.in_flight(), MAX_IN_FLIGHT / 2 + 1);
        tokio::task::yield_now().await;
        assert!(flow.paused() && !waiting.is_finished());
        let slot = Slot::enter(&flow, NumberOrString::String("s".into()), 10).expect("a slot");
        assert!(Slot::enter(&flow, NumberOrString::String("s".into()), 10).is_none());
        drop(slot);
        flow.leave(&NumberOrString::Number(0));
        waiting.await.expect("open again");
        assert_eq!(flow.in_flight(), MAX_IN_FLIGHT / 2);
        assert!(!flow.paused());
    }

    #[tokio::test]
    async fn reply_bytes_pause_until_written() {
        let flow = Arc::new(Flow::default());
        let big = flow.reply(MAX_REPLY_BYTES);
        assert!(flow.paused());
        let waiting = tokio::spawn({
            let flow = flow.clone();
            async move { flow.until_open().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(big);
        waiting.await.expect("open again");
    }

    #[tokio::test]
    async fn request_bytes_in_flight_pause_until_half_have_left() {
        let flow = Arc::new(Flow::default());
        let quarter = MAX_REQUEST_BYTES / 4;
        for i in 0..3 {
            assert!(flow.enter(&NumberOrString::Number(i), quarter));
            assert!(!flow.paused(), "3 requests, under the byte budget");
        }
        assert!(flow.enter(&NumberOrString::Number(3), quarter));
        assert_eq!(flow.in_flight_bytes(), MAX_REQUEST_BYTES);
        assert!(flow.paused(), "4 requests of a quarter each: paused");
        let waiting = tokio::spawn({
            let flow = flow.clone();
            async move { flow.until_open().await }
        });
        tokio::task::yield_now().await;
        flow.leave(&NumberOrString::Number(0));
        tokio::task::yield_now().await;
        assert!(
            flow.paused() && !waiting.is_finished(),
            "until half have left"
        );
        flow.leave(&NumberOrString::Number(1));
        waiting.await.expect("open again");
        assert_eq!(flow.in_flight_bytes(), MAX_REQUEST_BYTES / 2);
        assert_eq!(flow.in_flight(), 2);
    }

    #[test]
    fn notifications_past_the_bound_are_dropped_and_counted() {
        let flow = Arc::new(Flow::default());
        let tickets: Vec<NotificationTicket> = (0..MAX_WAITING_NOTIFICATIONS)
            .filter_map(|_| match flow.notification() {
                Notice::Write(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(tickets.len(), MAX_WAITING_NOTIFICATIONS);
        assert!(matches!(flow.notification(), Notice::DroppedFirst));
        assert!(matches!(flow.notification(), Notice::Dropped));
        drop(tickets);
        assert!(matches!(flow.notification(), Notice::Write(_)));
        assert_eq!(flow.take_dropped(), 2);
        assert_eq!(flow.take_dropped(), 0);
    }
}
