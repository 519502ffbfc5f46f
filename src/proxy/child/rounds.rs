//! A 2026-07-28 child's questions (MRTR, SEP-2322). Such a child asks
//! within its answer: its `tools/call`, `prompts/get` or `resources/read`
//! returns an `InputRequiredResult`. mcpod puts each of its `inputRequests`
//! to the agent as an older child's request would go (`upstream.rs`:
//! straight to an `initialize` agent, or into the input round of the agent's
//! own request), then retries the child's request with the answers and the
//! child's `requestState`, untouched. That state never leaves mcpod, so the
//! agent can neither read nor forge it.

// Sampling and roots are deprecated by 2026-07-28, and still forwarded.
#![allow(deprecated)]

use std::time::Duration;

use rmcp::model::{
    ClientRequest, InputRequest, InputRequiredResult, InputResponses, ServerRequest,
};

use super::{MAX_ASKS, Shared};
use crate::proxy::upstream::{Ask, Inputs};

/// Rounds one request may take (rmcp's own default for its clients).
pub const MAX_ROUNDS: usize = rmcp::model::DEFAULT_MRTR_MAX_ROUNDS;

/// What the retry carries: the answers, and the child's state.
pub struct Retry {
    pub responses: Option<InputResponses>,
    pub state: Option<String>,
}

impl Retry {
    /// The retry's members as JSON, to go into a raw request's params
    /// (`,"inputResponses":…,"requestState":…`).
    pub fn members(&self) -> String {
        let mut out = String::new();
        for (key, value) in [
            ("inputResponses", serde_json::to_string(&self.responses)),
            ("requestState", serde_json::to_string(&self.state)),
        ] {
            match value {
                Ok(value) if value != "null" => {
                    out.push_str(&format!(",\"{key}\":{value}"));
                }
                _ => {}
            }
        }
        out
    }

    /// Put the retry into `request`; false for a request that takes no rounds.
    pub fn into_request(self, request: &mut ClientRequest) -> bool {
        let (responses, state) = match request {
            ClientRequest::CallToolRequest(r) => {
                (&mut r.params.input_responses, &mut r.params.request_state)
            }
            ClientRequest::GetPromptRequest(r) => {
                (&mut r.params.input_responses, &mut r.params.request_state)
            }
            ClientRequest::ReadResourceRequest(r) => {
                (&mut r.params.input_responses, &mut r.params.request_state)
            }
            _ => return false,
        };
        *responses = self.responses;
        *state = self.state;
        true
    }
}

/// Answer the child's round `round` (from 0) of `what`: its questions go to
/// the agent (through `inputs`, the call's own, for a 2026-07-28 agent).
/// Errs, saying why, when the child asks too often or too much at once, or
/// a question cannot be put or is not answered.
pub async fn answer(
    shared: &Shared,
    what: &str,
    asked: InputRequiredResult,
    inputs: &[Inputs],
    round: usize,
) -> Result<Retry, String> {
    let from = shared.from();
    if round + 1 >= MAX_ROUNDS {
        return Err(format!(
            "{from} asked for input {MAX_ROUNDS} times during {what}, mcpod's limit per request; it was stopped"
        ));
    }
    let requests = asked.input_requests.unwrap_or_default();
    if requests.is_empty() {
        if asked.request_state.is_none() {
            return Err(format!(
                "{from} answered {what} with input_required, but asked nothing and gave no requestState"
            ));
        }
        // Nothing to ask: the child only wants its state back, a little later.
        tokio::time::sleep(Duration::from_millis(50 << round.min(3))).await;
    }
    if requests.len() > MAX_ASKS {
        return Err(format!(
            "{from} asked {} questions at once during {what}; mcpod's limit is {MAX_ASKS}",
            requests.len()
        ));
    }
    let Ok(_waiting) = shared.asks.try_acquire_many(requests.len() as u32) else {
        return Err(format!(
            "{from} already has questions waiting for mcpod's client, up to mcpod's limit of {MAX_ASKS}; {what} was stopped"
        ));
    };
    let from = from.as_str();
    let asking = requests.into_iter().map(|(key, request)| async move {
        let (ask, request) = match request {
            InputRequest::Elicitation(r) => (Ask::Elicitation, ServerRequest::ElicitRequest(r)),
            InputRequest::CreateMessage(r) => {
                (Ask::Sampling, ServerRequest::CreateMessageRequest(r))
            }
            InputRequest::ListRoots(r) => (Ask::Roots, ServerRequest::ListRootsRequest(r)),
            _ => {
                return Err(format!(
                    "{from} asked for input of a kind mcpod does not know"
                ));
            }
        };
        let answer = shared
            .upstream
            .ask(from, ask, request, inputs)
            .await
            .map_err(|e| e.message.into_owned())?;
        // `ClientResult` is untagged: the answer's own JSON.
        let value = serde_json::to_value(answer).map_err(|e| {
            format!(
                "{from}: the answer to `{}` did not serialise: {e}",
                ask.method()
            )
        })?;
        Ok((key, value))
    });
    let answers = futures::future::try_join_all(asking)
        .await
        .map_err(|e| format!("{e}; {what} failed"))?;
    Ok(Retry {
        responses: (!answers.is_empty()).then(|| answers.into_iter().collect()),
        state: asked.request_state,
    })
}
