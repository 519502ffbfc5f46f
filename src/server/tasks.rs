//! Long tool calls as 2026-07-28 Tasks (`io.modelcontextprotocol/tasks`),
//! for clients that declared the extension: `build_image`,
//! `launch_session`, `provision_server` and proxied calls start as usual,
//! and one still running after [`HAND_OFF`] becomes a task the client polls
//! (`tasks/get`), with its progress as the task's status message and
//! `tasks/cancel` cancelling it as a cancelled request would. A quick call
//! answers at once, as it would without the extension, so a cache hit or a
//! warm launch costs no polling. Clients that did not declare the extension
//! get today's behaviour. rmcp's `TaskManager` keeps the tasks. A child's
//! request to the agent (elicitation, sampling, roots) during the call hands
//! it off at once, and becomes the task's `input_required` state, answered
//! with `tasks/update`. At most `kept::MAX_RUNNING` tasks run at once,
//! and finished results are kept within bounds (`kept.rs`). Over HTTP a
//! task belongs to the principal whose call it is: `tasks/get`,
//! `tasks/update` and `tasks/cancel` of another principal's task are
//! answered as for a task that does not exist.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CreateTaskResult, NumberOrString,
    ProgressToken, TaskPayload,
};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskContext, TaskExit, TaskManager, TaskOptions};
use rmcp::{ErrorData, RoleServer};
use tokio_util::sync::CancellationToken;

use super::McpodServer;
use super::kept::{Kept, Running};
use super::mrtr::input_request;
use super::progress::HandedOff;
use crate::proxy::upstream::{Asked, Inputs};

/// How long a call runs before it becomes a task.
pub const HAND_OFF: Duration = Duration::from_secs(1);
/// How long a finished task's result is kept for `tasks/get`.
const TTL_MS: u64 = 30 * 60 * 1000;
/// How often a client is asked to poll.
const POLL_MS: u64 = 1000;
/// How long a task's owner is kept: rmcp keeps a task at most for its TTL
/// running and its TTL after it ended, and forgets it then.
const OWNED_FOR: Duration = Duration::from_millis(2 * TTL_MS + 60_000);

/// Where a call that may become a task sends its child's requests to the
/// agent (in the call's request extensions; see `call_proxied`).
#[derive(Clone)]
pub struct TaskInputs(pub Inputs);

/// The tasks of this mcpod, and the requests that became them.
#[derive(Default)]
pub struct Tasks {
    pub manager: TaskManager,
    /// The running count and the finished results.
    pub kept: Arc<Kept>,
    /// The principal whose call each task is, and when the task began, by
    /// task id (tasks of HTTP calls only; stdio's are everyone's).
    owners: Mutex<HashMap<String, (String, Instant)>>,
}

impl Tasks {
    /// `tasks/get` for `principal`: rmcp's state of the task, with its
    /// result from [`Kept`].
    pub fn get(
        &self,
        id: &str,
        principal: Option<&str>,
    ) -> Result<rmcp::model::DetailedTask, ErrorData> {
        self.check(id, principal)?;
        let mut task = self.manager.get_task(id)?;
        if let TaskPayload::Completed { result } = &mut task.payload {
            *result = self.kept.result(id)?;
        }
        Ok(task)
    }

    /// Task `id` is `principal`'s (`None`: stdio's, owned by no one).
    /// Owners of tasks past [`OWNED_FOR`] are forgotten meanwhile.
    fn own(&self, id: &str, principal: Option<&str>) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.retain(|_, (_, began)| began.elapsed() < OWNED_FOR);
        if let Some(principal) = principal {
            owners.insert(id.to_string(), (principal.to_string(), Instant::now()));
        }
    }

    /// Whether `principal` may reach task `id`: stdio (`None`) reaches every
    /// task; an HTTP principal only its own, and another's is refused with
    /// rmcp's error for a task it does not know.
    pub fn check(&self, id: &str, principal: Option<&str>) -> Result<(), ErrorData> {
        let Some(principal) = principal else {
            return Ok(());
        };
        let owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        match owners.get(id) {
            Some((owner, _)) if owner == principal => Ok(()),
            _ => Err(unknown_task(id)),
        }
    }
}

/// rmcp's answer to a task id it does not know (`TaskManager::get_task`).
fn unknown_task(id: &str) -> ErrorData {
    ErrorData::invalid_params(format!("unknown task: {id}"), None)
}

/// Whether a call of `name` may become a task: the meta-tools that can take
/// minutes, and every proxied call (its server decides how long it takes).
pub fn eligible(name: &str, meta_tool: bool) -> bool {
    !meta_tool
        || matches!(
            name,
            "build_image" | "launch_session" | "provision_server" | "call_tool"
        )
}

impl McpodServer {
    /// Run the call; if it is still running after [`HAND_OFF`], hand it to a
    /// task and answer with the task.
    pub(super) async fn call_as_task(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let token = self.progress_token(&mut context);
        let principal = super::http::principal(&context.extensions).map(str::to_string);
        // The call's own cancellation: the request's until it is a task,
        // then the task's.
        let asked = context.ct.clone();
        let cancel = CancellationToken::new();
        context.ct = cancel.clone();
        let (inputs, mut asks) = tokio::sync::mpsc::channel(crate::proxy::child::MAX_ASKS);
        context.extensions.insert(TaskInputs(inputs));
        let server = self.clone();
        let call = async move { server.call_now(request, context).await };
        let mut call = tokio::spawn(crate::telemetry::carried(call));
        let handed = self.handed.clone();
        let answered = |done: Result<_, tokio::task::JoinError>| {
            handed.forget(&token);
            done.unwrap_or_else(|e| Err(lost(e)))
        };
        // A question for the agent hands the call off at once.
        let first = tokio::select! {
            done = &mut call => return answered(done),
            _ = asked.cancelled() => {
                cancel.cancel();
                return answered(call.await);
            }
            Some(asked) = asks.recv() => Some(asked),
            _ = tokio::time::sleep(HAND_OFF) => None,
        };
        let running = match self.tasks.kept.start() {
            Ok(running) => running,
            Err(refused) => {
                cancel.cancel();
                let _ = answered(call.await);
                return Err(refused);
            }
        };
        let call = TaskCall {
            call,
            asks,
            cancel,
            token,
            handed: self.handed.clone(),
            kept: self.tasks.kept.clone(),
            running,
        };
        let options = TaskOptions::new()
            .with_ttl_ms(TTL_MS)
            .with_poll_interval_ms(POLL_MS)
            .with_status_message("running");
        let task = self.tasks.manager.spawn(options, move |task| {
            call.handed.hand(call.token.clone(), task.clone());
            Box::pin(call.run(task, first))
        });
        self.tasks.own(&task.task_id, principal.as_deref());
        Ok(CallToolResponse::Task(CreateTaskResult::new(task)))
    }

    /// The call's progress token, so that progress has somewhere to go once
    /// it is a task: the client's, else one made up (and noted as such).
    fn progress_token(&self, context: &mut RequestContext<RoleServer>) -> ProgressToken {
        match context.meta.get_progress_token() {
            Some(token) => token,
            None => {
                let token = ProgressToken(NumberOrString::String(
                    format!("mcpod-task-{}", crate::engine::nonce()).into(),
                ));
                context.meta.set_progress_token(token.clone());
                self.handed.made_up(token.clone());
                token
            }
        }
    }
}

/// A call handed off to a task: what the task runs it with.
struct TaskCall {
    call: tokio::task::JoinHandle<Result<CallToolResponse, ErrorData>>,
    /// The child's requests to the agent during the call.
    asks: tokio::sync::mpsc::Receiver<Asked>,
    /// Cancels the call.
    cancel: CancellationToken,
    /// The call's progress token, handed to the task.
    token: ProgressToken,
    handed: Arc<HandedOff>,
    kept: Arc<Kept>,
    /// Counts the task as running until the call has answered.
    running: Running,
}

impl TaskCall {
    /// The task: pass the child's requests on as the task's input requests
    /// (`first`, the one that handed the call off, first) until the call
    /// answers or the task is cancelled, which cancels the call.
    async fn run(
        mut self,
        task: TaskContext,
        first: Option<Asked>,
    ) -> Result<CallToolResult, TaskExit> {
        let mut keys = 0u64;
        let mut pass_on = |asked: Asked| {
            keys += 1;
            let key = format!("{}#{keys}", asked.ask.method());
            pass_to_client(&task, key, asked);
        };
        if let Some(first) = first {
            pass_on(first);
        }
        let done = loop {
            tokio::select! {
                done = &mut self.call => break done,
                Some(asked) = self.asks.recv() => pass_on(asked),
                _ = task.cancelled() => {
                    self.cancel.cancel();
                    let _ = self.call.await;
                    self.handed.forget(&self.token);
                    return Err(TaskExit::Cancelled);
                }
            }
        };
        self.handed.forget(&self.token);
        drop(self.running);
        finished(done, &self.kept, task.task_id())
    }
}

/// Ask the client for a child's request as the task's input request under
/// `key`; its answer (or an error, once the task is cancelled) goes back to
/// the child.
fn pass_to_client(task: &TaskContext, key: String, asked: Asked) {
    let task = task.clone();
    tokio::spawn(async move {
        let Some(input) = input_request(asked.request) else {
            return;
        };
        let answer = task
            .request_input(key, input)
            .await
            .map_err(|_| ErrorData::invalid_request("the task was cancelled", None));
        let _ = asked.reply.send(answer);
    });
}

/// The task's end from the call's answer. A result is kept by mcpod, within
/// its bounds, under the task's `id`; rmcp keeps an empty one.
fn finished(
    done: Result<Result<CallToolResponse, ErrorData>, tokio::task::JoinError>,
    kept: &Kept,
    id: &str,
) -> Result<CallToolResult, TaskExit> {
    match done {
        Ok(Ok(CallToolResponse::Complete(result))) => {
            let object = match serde_json::to_value(&result) {
                Ok(serde_json::Value::Object(object)) => object,
                _ => Default::default(),
            };
            drop(result);
            kept.keep(id, object, Duration::from_millis(TTL_MS));
            Ok(CallToolResult::success(Vec::new()))
        }
        Ok(Ok(_)) => Err(TaskExit::Error(ErrorData::internal_error(
            "the call answered with neither a result nor an error",
            None,
        ))),
        Ok(Err(e)) => Err(TaskExit::Error(e)),
        Err(e) => Err(TaskExit::Error(lost(e))),
    }
}

fn lost(e: tokio::task::JoinError) -> ErrorData {
    ErrorData::internal_error(format!("the call's task ended abnormally: {e}"), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task of `principal`'s that runs until cancelled.
    fn spawned(tasks: &Tasks, principal: Option<&str>) -> String {
        let task = tasks.manager.spawn(TaskOptions::new(), |task| {
            Box::pin(async move {
                task.cancelled().await;
                Err(TaskExit::Cancelled)
            })
        });
        tasks.own(&task.task_id, principal);
        task.task_id
    }

    #[tokio::test]
    async fn another_principals_task_is_answered_as_one_that_does_not_exist() {
        let tasks = Tasks::default();
        let alices = spawned(&tasks, Some("alice"));
        let stdios = spawned(&tasks, None);
        // rmcp's answer to an id it never gave, with the id asked for in it.
        let unknown = tasks.manager.get_task("no-such-task").expect_err("unknown");
        let as_unknown = |e: ErrorData, id: &str| {
            assert_eq!(e.code, unknown.code, "{e:?}");
            assert_eq!(e.message, unknown.message.replace("no-such-task", id));
        };
        as_unknown(tasks.get(&alices, Some("bob")).expect_err("get"), &alices);
        as_unknown(
            tasks.check(&alices, Some("bob")).expect_err("update"),
            &alices,
        );
        as_unknown(
            tasks.check(&stdios, Some("bob")).expect_err("cancel"),
            &stdios,
        );
        assert!(tasks.get(&alices, Some("alice")).is_ok());
        // stdio reaches every task.
        assert!(tasks.get(&alices, None).is_ok() && tasks.get(&stdios, None).is_ok());
        tasks.manager.shutdown();
    }
}
