//! A call of a tool that its child runs only as a task (`execution.taskSupport:
//! "required"`, the 2025-11-25 tasks of the TypeScript SDK; server-everything's
//! `simulate-research-query` is one). mcpod asks for the task, passes its status
//! messages on as progress, and takes the result with `tasks/result`, during which
//! the child asks its questions (elicitation) as requests of its own, which go
//! where the call's questions go. To the agent it is a call like any other (or
//! mcpod's own task, for an agent that declared Tasks). Cancellation, the
//! deadline and the child's death cancel the child's task with `tasks/cancel`.
//!
//! A 2026-07-28 child's tool that needs a task runs in the tasks extension
//! (`io.modelcontextprotocol/tasks`), which mcpod declares on that call
//! alone (a task answered to any other call would have nowhere to go): the
//! call answers with a task, which mcpod polls with `tasks/get` (at the
//! interval the child asks, within 100 ms to 5 s) until it completes, with
//! the result inline; its questions (`input_required`) go where the call's
//! questions go, at most [`MAX_ROUNDS`](super::rounds::MAX_ROUNDS) times, and their answers back with
//! `tasks/update`.
//!
//! rmcp's types know neither the `task` parameter of `tools/call` nor the
//! 2025-11-25 task methods, so these go as raw requests on the child's lane
//! (`fast.rs`), which also read which tools need them from the listing; the
//! 2026-07-28 ones go the same way.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use rmcp::model::{
    CallToolResult, InputRequiredResult, JsonObject, NumberOrString, ProgressNotificationParam,
    ProgressToken, ResultType, TASKS_EXTENSION_ID,
};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::answers::{rejected, too_big};
use super::child::{CANCELLED, Child, DEADLINE};
use super::fast::RawAnswer;
use super::upstream::Inputs;
use super::{ProgressSink, Relay};

/// How long the child keeps a task of mcpod's (its `ttl`, in ms).
const TTL_MS: u64 = 10 * 60 * 1000;
/// How often the task's status is asked for, while a caller takes progress
/// (and a 2026-07-28 task's, when the child does not say).
const STATUS_EVERY: Duration = Duration::from_millis(500);
/// The bounds of the polling interval a 2026-07-28 child may ask for.
const POLL_MS: (u64, u64) = (100, 5000);

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
        let inputs: Vec<Inputs> = inputs.into_iter().collect();
        let _asking = self.asking(inputs.first().cloned());
        let task = Mutex::new(None::<String>);
        let (what, task) = (&what, &task);
        let extension = self.shared.lane.meta_object();
        let run = async {
            if let Some(meta) = extension {
                let call = json!({"name": tool, "arguments": arguments});
                let mut status = Status::new(progress);
                let asked = Asked {
                    inputs: &inputs,
                    cancel: &cancel,
                };
                return self
                    .extension_task(what, call, meta, task, &mut status, asked)
                    .await;
            }
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
                            status.saw(&serde_json::from_str(&state).unwrap_or_default());
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
                let id: String = id.chars().take(100).collect();
                self.log
                    .push(&format!("mcpod: cancelled task {id:?}: {reason}"));
            }
        };
        // Cancellation first: a task's question that the cancel cut short
        // ends `run` too, and the child's task must still be cancelled.
        let outcome = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                cancel_task(CANCELLED).await;
                return Err(self.cancelled_message(what));
            }
            _ = self.died.cancelled() => return Err(self.dead_message(what)),
            outcome = run => outcome,
            _ = tokio::time::sleep(self.call_timeout) => {
                cancel_task(DEADLINE).await;
                return Err(self.deadline_message(what));
            }
        };
        let mut result: CallToolResult = parse(&outcome?, what)?;
        result.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(result)
    }

    /// A 2026-07-28 task: `call` with the extension declared in `meta` (the
    /// child's per-request `_meta`), then polled until it ends; its raw
    /// result (a `CallToolResult`), or why not.
    async fn extension_task(
        &self,
        what: &str,
        mut call: Value,
        mut meta: Map<String, Value>,
        task: &Mutex<Option<String>>,
        status: &mut Status,
        asked: Asked<'_>,
    ) -> Result<String, String> {
        let capabilities = meta
            .entry("io.modelcontextprotocol/clientCapabilities")
            .or_insert_with(|| json!({}));
        capabilities["extensions"][TASKS_EXTENSION_ID] = json!({});
        call["_meta"] = Value::Object(meta);
        let created: Value = parse(&self.raw(what, "tools/call", call).await?, what)?;
        if created.get("resultType") != Some(&json!("task")) {
            // It answered at once.
            return Ok(created.to_string());
        }
        let id = created["taskId"]
            .as_str()
            .ok_or_else(|| format!("{what}: the server made a task without a `taskId`"))?
            .to_string();
        *task.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        let mut every = poll_interval(&created);
        // The questions put to the agent already, by the child's keys.
        let mut answered = HashSet::new();
        let mut round = 0;
        loop {
            tokio::time::sleep(every).await;
            let state: Value = parse(
                &self.raw(what, "tasks/get", json!({"taskId": id})).await?,
                what,
            )?;
            every = poll_interval(&state);
            status.saw(&state);
            match state["status"].as_str().unwrap_or_default() {
                "working" => {}
                "completed" => {
                    return match state.get("result") {
                        Some(result @ Value::Object(_)) => Ok(result.to_string()),
                        _ => Err(format!(
                            "{what}: the server's task completed without a result"
                        )),
                    };
                }
                "failed" => {
                    let why = state["error"]["message"]
                        .as_str()
                        .unwrap_or("no reason given");
                    let why: String = why.chars().take(500).collect();
                    return Err(format!(
                        "server `{}` says its task for {what} failed: {why}",
                        self.shared.name
                    ));
                }
                "cancelled" => {
                    return Err(format!(
                        "server `{}` cancelled its task for {what}",
                        self.shared.name
                    ));
                }
                "input_required" => {
                    let mut requests = match state.get("inputRequests") {
                        Some(Value::Object(requests)) => requests.clone(),
                        _ => Map::new(),
                    };
                    requests.retain(|key, _| !answered.contains(key));
                    if requests.is_empty() {
                        continue;
                    }
                    answered.extend(requests.keys().cloned());
                    let round_of: InputRequiredResult = serde_json::from_value(json!({
                        "resultType": "input_required", "inputRequests": requests,
                    }))
                    .map_err(|e| format!("{what}: the server's questions did not parse: {e}"))?;
                    let retry = self
                        .round(what, round_of, asked.inputs, round, asked.cancel)
                        .await
                        .map_err(|why| why.unwrap_or_else(|| self.cancelled_message(what)))?;
                    round += 1;
                    let update = json!({"taskId": id, "inputResponses": retry.responses});
                    self.raw(what, "tasks/update", update).await?;
                }
                other => {
                    let other: String = other.chars().take(40).collect();
                    return Err(format!(
                        "{what}: the server's task has a status mcpod does not know: `{other}`"
                    ));
                }
            }
        }
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
    fn saw(&mut self, state: &Value) {
        let Some(sink) = &self.sink else {
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

/// Where a 2026-07-28 task's questions go, and what cancels waiting for
/// their answers.
struct Asked<'a> {
    inputs: &'a [Inputs],
    cancel: &'a CancellationToken,
}

/// The polling interval a task (or its state) asks for, within [`POLL_MS`].
fn poll_interval(task: &Value) -> Duration {
    let ms = task["pollIntervalMs"]
        .as_u64()
        .map_or(STATUS_EVERY.as_millis() as u64, |ms| {
            ms.clamp(POLL_MS.0, POLL_MS.1)
        });
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child cannot make mcpod poll its task in a tight loop, nor put it
    /// off for ever: its interval is kept within 100 ms and 5 s.
    #[test]
    fn a_tasks_poll_interval_is_bounded() {
        let ms = |task: Value| poll_interval(&task).as_millis();
        assert_eq!(ms(json!({"pollIntervalMs": 0})), 100);
        assert_eq!(ms(json!({"pollIntervalMs": 1_000_000_000_000u64})), 5000);
        assert_eq!(ms(json!({"pollIntervalMs": 250})), 250);
        assert_eq!(ms(json!({"pollIntervalMs": -1})), 500);
        assert_eq!(ms(json!({"pollIntervalMs": "0"})), 500);
        assert_eq!(ms(json!({})), 500);
    }
}
