//! What mcpod keeps of its tasks (`tasks.rs`), with bounds: at most
//! [`MAX_RUNNING`] tasks run at once (one more is refused), and the results
//! of finished tasks are kept here, not in rmcp's `TaskManager` (which keeps
//! each for its whole TTL and has no way to drop one): at most [`MAX_KEPT`]
//! of them and [`MAX_KEPT_BYTES`] in all, for at most the TTL, the oldest
//! dropped first. rmcp's store holds an empty result in its place; a
//! `tasks/get` of a task whose result was dropped is an error naming the
//! bound.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::model::JsonObject;

/// Tasks that may run at once: four times the 64 proxied calls one session
/// may run, as the agent's transport allows 256 requests in flight.
pub const MAX_RUNNING: usize = 256;
/// Results of finished tasks kept, at most.
pub const MAX_KEPT: usize = 256;
/// Bytes (as JSON) of the results kept, at most: eight results of 8 MiB.
pub const MAX_KEPT_BYTES: usize = 64 * 1024 * 1024;

#[derive(Default)]
pub struct Kept {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: usize,
    /// By task id: the result, its bytes, when it was kept.
    results: HashMap<String, (JsonObject, usize, Instant)>,
    /// Task ids of `results`, oldest first.
    order: VecDeque<String>,
    bytes: usize,
}

/// A running task's place under [`MAX_RUNNING`], left when dropped.
pub struct Running(Arc<Kept>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.running = state.running.saturating_sub(1);
    }
}

impl Kept {
    /// A place for one more running task, or the error that refuses it.
    pub fn start(self: &Arc<Self>) -> Result<Running, ErrorData> {
        let mut state = self.lock();
        if state.running >= MAX_RUNNING {
            return Err(ErrorData::invalid_request(
                format!(
                    "mcpod runs at most {MAX_RUNNING} tasks at once, and {MAX_RUNNING} are running; this call was cancelled. Fix: wait for a task to finish (tasks/get) or cancel one (tasks/cancel), then call again"
                ),
                None,
            ));
        }
        state.running += 1;
        Ok(Running(self.clone()))
    }

    /// Keep the result of task `id` (finished now), dropping the oldest
    /// results past the bounds or older than `ttl`.
    pub fn keep(&self, id: &str, result: JsonObject, ttl: Duration) {
        let bytes = serde_json::to_string(&result).map_or(0, |s| s.len());
        let mut state = self.lock();
        let state = &mut *state;
        state.order.push_back(id.to_string());
        state.bytes += bytes;
        state
            .results
            .insert(id.to_string(), (result, bytes, Instant::now()));
        while let Some(oldest) = state.order.front() {
            let over = state.order.len() > MAX_KEPT || state.bytes > MAX_KEPT_BYTES;
            let expired = state
                .results
                .get(oldest)
                .is_none_or(|(_, _, at)| at.elapsed() > ttl);
            // The newest stays, even alone over the bytes.
            if state.order.len() <= 1 || !(expired || over) {
                break;
            }
            if let Some(oldest) = state.order.pop_front()
                && let Some((_, bytes, _)) = state.results.remove(&oldest)
            {
                state.bytes -= bytes;
            }
        }
    }

    /// The result of finished task `id`, or the error saying it was dropped.
    pub fn result(&self, id: &str) -> Result<JsonObject, ErrorData> {
        match self.lock().results.get(id) {
            Some((result, _, _)) => Ok(result.clone()),
            None => Err(ErrorData::invalid_params(
                format!(
                    "task {id} completed, but mcpod no longer has its result: it keeps the results of at most {MAX_KEPT} finished tasks and {} MiB of them, dropping the oldest first. Fix: fetch a task's result with tasks/get soon after it completes",
                    MAX_KEPT_BYTES >> 20
                ),
                None,
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(bytes: usize) -> JsonObject {
        let mut object = JsonObject::new();
        object.insert("text".into(), "a".repeat(bytes).into());
        object
    }

    const TTL: Duration = Duration::from_secs(1800);

    #[test]
    fn the_oldest_results_go_first_past_the_count_or_the_bytes() {
        let kept = Kept::default();
        for i in 0..MAX_KEPT + 3 {
            kept.keep(&format!("t{i}"), result(10), TTL);
        }
        for i in 0..3 {
            let err = kept.result(&format!("t{i}")).expect_err("dropped");
            assert!(
                err.message.contains("at most 256 finished tasks"),
                "{err:?}"
            );
            assert!(err.message.contains("Fix:"), "{err:?}");
        }
        assert!(kept.result("t3").is_ok());
        // 8 MiB results: eight fit in 64 MiB, the ninth drops the oldest.
        let big = 8 * 1024 * 1024 - 100;
        for i in 0..9 {
            kept.keep(&format!("b{i}"), result(big), TTL);
        }
        assert!(kept.result("b0").is_err());
        assert!(kept.result("b8").is_ok() && kept.result("b1").is_ok());
        assert!(kept.lock().bytes <= MAX_KEPT_BYTES);
        // One result over the whole budget is kept alone.
        kept.keep("huge", result(MAX_KEPT_BYTES + 1), TTL);
        assert!(kept.result("huge").is_ok() && kept.result("b8").is_err());
        assert_eq!(kept.lock().order.len(), 1);
    }

    #[test]
    fn results_older_than_the_ttl_go() {
        let kept = Kept::default();
        kept.keep("old", result(1), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        kept.keep("new", result(1), Duration::ZERO);
        assert!(kept.result("old").is_err() && kept.result("new").is_ok());
    }

    #[test]
    fn past_the_running_bound_a_task_is_refused() {
        let kept = Arc::new(Kept::default());
        let running: Vec<Running> = (0..MAX_RUNNING)
            .map(|_| kept.start().expect("a place"))
            .collect();
        let err = kept.start().err().expect("refused");
        assert!(err.message.contains("at most 256 tasks at once"), "{err:?}");
        drop(running);
        assert!(kept.start().is_ok());
    }
}
