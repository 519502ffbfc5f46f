//! A call of a tool that its child runs only as a task (`execution.taskSupport:
//! "required"`, the 2025-11-25 tasks of the TypeScript SDK; server-everything's
//! `simulate-research-query` is one). mcpod asks for the task, passes its status
//! messages on as progress, and takes the result with `tasks/result`, during which
//! the child asks its questions (elicitation) as requests of its own, which go
//! where the call's questions go. To the agent it is a call like any other (or
//! mcpod's own task, for an agent that declared Tasks). Cancellation, the
//! deadline and the child's death cancel the child's task with `tasks/cancel`.
//!
//! rmcp's types know neither the `task` parameter of `tools/call` nor the
//! 2025-11-25 task methods, so these go as raw requests on the child's lane
//! (`fast.rs`), which also read which tools need them from the listing.

use std::sync::Mutex;
use std::time::Duration;

use rmcp::model::{
    CallToolResult, JsonObject, NumberOrString, ProgressNotificationParam, ProgressToken,
    ResultType,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::child::{CANCELLED, Child, DEADLINE, rejected, too_big};
use super::fast::RawAnswer;
use super::{ProgressSink, Relay};

/// How long the child keeps a task of mcpod's (its `ttl`, in ms).
const TTL_MS: u64 = 10 * 60 * 1000;
/// How often the task's status is asked for, while a caller takes progress.
const STATUS_EVERY: Duration = Duration::from_millis(500);

impl Child {
    pub(super) async fn call_as_task(
        &self,
        tool: &str,
        arguments: Option<JsonObject>,
        relay: Relay,
        cancel: CancellationToken,
    ) -> Result<CallToolResult, String> {
        let what = format!("the call of `{tool}` (a task of the server's)");
        let Relay { progress, inputs } = relay;
        let _asking = self.asking(inputs);
        let task = Mutex::new(None::<String>);
        let (what, task) = (&what, &task);
        let run = async {
            let params = json!({"name": tool, "arguments": arguments, "task": {"ttl": TTL_MS}});
            let created: Value = parse(&self.raw(what, "tools/call", params).await?, what)?;
            let id = created
                .pointer("/task/taskId")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    let start: String = created.to_string().chars().take(200).collect();
                    format!(
                        "server `{}` lists the tool as run only as a task, and answered {what} with no task: {start}",
                        self.shared.name
                    )
                })?
                .to_string();
            *task.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
            let result = self.raw(what, "tasks/result", json!({"taskId": id}));
            tokio::pin!(result);
            let mut status = Status::new(progress);
            let mut every = tokio::time::interval(STATUS_EVERY);
            loop {
                tokio::select! {
                    done = &mut result => break done,
                    _ = every.tick(), if status.wanted() => {
                        if let Ok(state) = self.raw(what, "tasks/get", json!({"taskId": id})).await {
                            status.saw(&state);
                        }
                    }
                }
            }
        };
        let cancel_task = |reason: &'static str| async move {
            let id = task.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(id) = id {
                let params = json!({"taskId": id});
                let stop = self.raw(what, "tasks/cancel", params);
                let _ = tokio::time::timeout(Duration::from_secs(2), stop).await;
                self.log
                    .push(&format!("mcpod: cancelled task {id}: {reason}"));
            }
        };
        let outcome = tokio::select! {
            outcome = run => outcome,
            _ = cancel.cancelled() => {
                cancel_task(CANCELLED).await;
                return Err(self.cancelled_message(what));
            }
            _ = self.died.cancelled() => return Err(self.dead_message(what)),
            _ = tokio::time::sleep(self.call_timeout) => {
                cancel_task(DEADLINE).await;
                return Err(self.deadline_message(what));
            }
        };
        let mut result: CallToolResult = parse(&outcome?, what)?;
        result.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(result)
    }

    /// A raw request of mcpod's to the child: its raw result, or why not.
    async fn raw(&self, what: &str, method: &str, params: Value) -> Result<String, String> {
        let lane = &self.shared.lane;
        let Some(writer) = lane.writer().filter(|_| self.is_ready()) else {
            return Err(self.dead_message(what));
        };
        let (number, answer, line) = lane.request(method, &params);
        // However this ends (answered, or given up), nothing waits on.
        struct Forget<'a>(&'a super::fast::Lane, u64);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.forget(self.1);
            }
        }
        let _forget = Forget(lane, number);
        if writer.line(line).await.is_err() {
            return Err(self.dead_message(what));
        }
        match answer.await {
            Ok(RawAnswer::Result(result)) => Ok(result),
            Ok(RawAnswer::OverLimit(why)) => Err(too_big(&why, what)),
            Ok(RawAnswer::Rejected(why)) => Err(rejected(
                &self.shared.name,
                &format!("{method} of {what}"),
                &why,
            )),
            Err(_) => Err(self.dead_message(what)),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(raw: &str, what: &str) -> Result<T, String> {
    serde_json::from_str(raw).map_err(|e| format!("{what}: the server's answer did not parse: {e}"))
}

/// The task's status messages, as progress for the caller.
struct Status {
    sink: Option<ProgressSink>,
    last: Option<String>,
    count: u32,
}

impl Status {
    fn new(sink: Option<ProgressSink>) -> Self {
        Status {
            sink,
            last: None,
            count: 0,
        }
    }

    /// Whether anyone takes the progress (else the status is not asked for).
    fn wanted(&self) -> bool {
        self.sink.is_some()
    }

    /// A `tasks/get` answer: a new status message is progress.
    fn saw(&mut self, state: &str) {
        let Some(sink) = &self.sink else {
            return;
        };
        let Ok(state) = serde_json::from_str::<Value>(state) else {
            return;
        };
        let Some(message) = state.get("statusMessage").and_then(Value::as_str) else {
            return;
        };
        if self.last.as_deref() == Some(message) {
            return;
        }
        self.last = Some(message.to_string());
        self.count += 1;
        let token = ProgressToken(NumberOrString::Number(0));
        sink(ProgressNotificationParam::new(token, f64::from(self.count)).with_message(message));
    }
}
