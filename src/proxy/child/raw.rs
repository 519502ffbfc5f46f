//! Calls that pass through as bytes (`proxy/fast.rs`), the child's side:
//! each round written to the child's stdin as the agent's own bytes with
//! mcpod's id, token and trace context, the answer awaited under the call's
//! deadline, cancellation and the child's death.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{CANCELLED, Child, DEADLINE};
use crate::proxy::fast::{self, RawCall};
use crate::proxy::upstream::Inputs;
use crate::telemetry::{self, Span};
use crate::wire;

impl Child {
    /// Call `call.tool` with the agent's bytes, as `call` does (see
    /// `fast.rs`); `progress` is the agent's writer. Returns the agent's
    /// response line: the child's result, or a failed tool result saying
    /// why; none when the agent cancelled the call (it expects no answer).
    /// The child's questions go to `inputs` when given (a 2026-07-28
    /// agent's call, see `server/fast.rs`), else to an `initialize` agent;
    /// a 2026-07-28 child's questions are put so, and the call goes on in
    /// another round (`rounds.rs`).
    pub async fn call_raw(
        &self,
        mut call: RawCall,
        progress: &wire::RawWriter,
        cancel: CancellationToken,
        inputs: Option<Inputs>,
    ) -> Option<Vec<u8>> {
        let span = self.span("tools/call", Some(&call.tool));
        let context = span.context().cloned().or_else(telemetry::current);
        call.trace = context.map(|c| c.meta_members());
        let line = self.raw_rounds(call, progress, cancel, inputs).await;
        if let Some(line) = &line {
            failed(span, line);
        }
        line
    }

    /// [`Child::call_raw`]'s rounds.
    async fn raw_rounds(
        &self,
        call: RawCall,
        progress: &wire::RawWriter,
        cancel: CancellationToken,
        inputs: Option<Inputs>,
    ) -> Option<Vec<u8>> {
        // Most calls have no `inputs`: they spare the registry's lock.
        let _asking = inputs.is_some().then(|| self.asking(inputs.clone()));
        let inputs: Vec<Inputs> = inputs.into_iter().collect();
        let what = format!("the call of `{}`", call.tool);
        let fail = |text: String| fast::error_line(&call.agent_id, text);
        let mut retry = String::new();
        let mut round = 0;
        loop {
            let asked = match self
                .raw_round(&call, &what, &retry, progress, &cancel)
                .await?
            {
                fast::Reply::Line(line) => return Some(line),
                fast::Reply::Asked(asked) => asked,
            };
            let asked = match serde_json::from_str(&asked) {
                Ok(asked) => asked,
                Err(e) => {
                    return Some(fail(format!(
                        "server `{}` answered {what} with an input_required result mcpod cannot read: {e}",
                        self.shared.name
                    )));
                }
            };
            match self.round(&what, asked, &inputs, round, &cancel).await {
                Ok(next) => retry = next.members(),
                Err(None) => return None,
                Err(Some(why)) => return Some(fail(why)),
            }
            round += 1;
        }
    }

    /// One round of a raw call (`retry`: its retry's members, see
    /// `rounds::Retry::members`); none when the agent cancelled it.
    async fn raw_round(
        &self,
        call: &RawCall,
        what: &str,
        retry: &str,
        progress: &wire::RawWriter,
        cancel: &CancellationToken,
    ) -> Option<fast::Reply> {
        let lane = &self.shared.lane;
        let fail = |text: String| Some(fast::Reply::Line(fast::error_line(&call.agent_id, text)));
        let Some(writer) = lane.writer().filter(|_| self.is_ready()) else {
            return fail(self.dead_message(what));
        };
        let (mut sent, line) = lane.send(call, what.to_string(), retry);
        let number = sent.number;
        let cancel_child = |reason: &str| writer.line(fast::cancel_line(number, reason));
        if writer.line(line).await.is_err() {
            lane.forget(number);
            let _ = tokio::time::timeout(Duration::from_secs(2), self.died.cancelled()).await;
            return fail(self.dead_message(what));
        }
        let deadline = tokio::time::sleep(self.call_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                biased;
                answer = &mut sent.reply => {
                    // Progress the child sent before its answer goes first.
                    while let Ok(p) = sent.progress.try_recv() {
                        let _ = progress.line(p).await;
                    }
                    return match answer {
                        Ok(reply) => Some(reply),
                        Err(_) => fail(self.dead_message(what)),
                    };
                }
                Some(p) = sent.progress.recv() => {
                    let _ = progress.line(p).await;
                }
                _ = cancel.cancelled() => {
                    lane.forget(number);
                    let _ = cancel_child(CANCELLED).await;
                    return None;
                }
                _ = self.died.cancelled() => {
                    lane.forget(number);
                    return fail(self.dead_message(what));
                }
                _ = &mut deadline => {
                    lane.forget(number);
                    let _ = cancel_child(DEADLINE).await;
                    return fail(self.deadline_message(what));
                }
            }
        }
    }
}

/// End a passed-through call's span, failed when its answer `line` is an
/// error or a failed tool result.
fn failed(mut span: Span, line: &[u8]) {
    if span.is_on()
        && crate::logging::audit::outcome_of_response(line) != crate::logging::audit::Outcome::Ok
    {
        span.fail(&"the call failed");
    }
}
