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
//! and finished results are kept within bounds (`kept.rs`).

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CreateTaskResult, NumberOrString,
    ProgressToken, TaskPayload,
};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskExit, TaskManager, TaskOptions};
use rmcp::{ErrorData, RoleServer};
use tokio_util::sync::CancellationToken;

use super::McpodServer;
use super::kept::Kept;
use super::mrtr::input_request;
use super::progress::HandedOff;
use crate::proxy::upstream::{Asked, Inputs};

/// How long a call runs before it becomes a task.
pub const HAND_OFF: Duration = Duration::from_secs(1);
/// How long a finished task's result is kept for `tasks/get`.
const TTL_MS: u64 = 30 * 60 * 1000;
/// How often a client is asked to poll.
const POLL_MS: u64 = 1000;

/// Where a call that may become a task sends its child's requests to the
/// agent (in the call's request extensions; see `call_proxied`).
#[derive(Clone)]
pub struct TaskInputs(pub Inputs);

/// The tasks of this mcpod, and the requests that became them.
#[derive(Default)]
pub struct Tasks {
    pub manager: TaskManager,
    pub handed: Arc<HandedOff>,
    /// The running count and the finished results.
    pub kept: Arc<Kept>,
}

impl Tasks {
    /// `tasks/get`: rmcp's state of the task, with its result from [`Kept`].
    pub fn get(&self, id: &str) -> Result<rmcp::model::DetailedTask, ErrorData> {
        let mut task = self.manager.get_task(id)?;
        if let TaskPayload::Completed { result } = &mut task.payload {
            *result = self.kept.result(id)?;
        }
        Ok(task)
    }
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
        // A token, so that progress has somewhere to go once it is a task.
        let token = match context.meta.get_progress_token() {
            Some(token) => token,
            None => {
                let token = ProgressToken(NumberOrString::String(
                    format!("mcpod-task-{}", crate::engine::nonce()).into(),
                ));
                context.meta.set_progress_token(token.clone());
                self.tasks.handed.made_up(token.clone());
                token
            }
        };
        // The call's own cancellation: the request's until it is a task,
        // then the task's.
        let asked = context.ct.clone();
        let cancel = CancellationToken::new();
        context.ct = cancel.clone();
        let (inputs, mut asks) = tokio::sync::mpsc::channel(crate::proxy::child::MAX_ASKS);
        context.extensions.insert(TaskInputs(inputs));
        let server = self.clone();
        let mut call = tokio::spawn(async move { server.call_now(request, context).await });
        let handed = self.tasks.handed.clone();
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
        let kept = self.tasks.kept.clone();
        let handed = self.tasks.handed.clone();
        let options = TaskOptions::new()
            .with_ttl_ms(TTL_MS)
            .with_poll_interval_ms(POLL_MS)
            .with_status_message("running");
        let task = self.tasks.manager.spawn(options, move |task| {
            handed.hand(token.clone(), task.clone());
            Box::pin(async move {
                let mut keys = 0u64;
                let mut pass_on = |asked: Asked| {
                    keys += 1;
                    let key = format!("{}#{keys}", asked.ask.method());
                    let task = task.clone();
                    tokio::spawn(async move {
                        let Some(input) = input_request(asked.request) else {
                            return;
                        };
                        let answer = task.request_input(key, input).await.map_err(|_| {
                            ErrorData::invalid_request("the task was cancelled", None)
                        });
                        let _ = asked.reply.send(answer);
                    });
                };
                if let Some(first) = first {
                    pass_on(first);
                }
                let done = loop {
                    tokio::select! {
                        done = &mut call => break done,
                        Some(asked) = asks.recv() => pass_on(asked),
                        _ = task.cancelled() => {
                            cancel.cancel();
                            let _ = call.await;
                            handed.forget(&token);
                            return Err(TaskExit::Cancelled);
                        }
                    }
                };
                handed.forget(&token);
                drop(running);
                match done {
                    // Kept by mcpod, within its bounds; rmcp keeps an empty one.
                    Ok(Ok(CallToolResponse::Complete(result))) => {
                        let object = match serde_json::to_value(&result) {
                            Ok(serde_json::Value::Object(object)) => object,
                            _ => Default::default(),
                        };
                        drop(result);
                        kept.keep(task.task_id(), object, Duration::from_millis(TTL_MS));
                        Ok(CallToolResult::success(Vec::new()))
                    }
                    Ok(Ok(_)) => Err(TaskExit::Error(ErrorData::internal_error(
                        "the call answered with neither a result nor an error",
                        None,
                    ))),
                    Ok(Err(e)) => Err(TaskExit::Error(e)),
                    Err(e) => Err(TaskExit::Error(lost(e))),
                }
            })
        });
        Ok(CallToolResponse::Task(CreateTaskResult::new(task)))
    }
}

fn lost(e: tokio::task::JoinError) -> ErrorData {
    ErrorData::internal_error(format!("the call's task ended abnormally: {e}"), None)
}
