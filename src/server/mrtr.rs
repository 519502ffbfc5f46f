//! A child's requests to a 2026-07-28 agent (elicitation, sampling, roots),
//! which takes no server-to-client requests: they become input requests of
//! the agent's request that the child is serving (MRTR, SEP-2322): a
//! `tools/call` (by its exported name or through `call_tool`), a
//! `prompts/get` or a `resources/read`.
//!
//! The proxied call runs on; mcpod answers the agent's `tools/call` with an
//! `InputRequiredResult` carrying the child's requests and a `requestState`,
//! and parks the running call under it. The agent's retry (same call, with
//! `inputResponses` and that `requestState`) hands each answer to the child
//! and waits on the same call, which may ask again. `requestState` is an
//! opaque handle of 128 random bits to state that stays in mcpod, so a client
//! can present only one mcpod gave it, and only once; over HTTP only the
//! principal whose request it is may present it (another's is answered as a
//! `requestState` mcpod never gave, and the call stays parked for its own
//! retry). A parked call that is
//! not resumed within [`PARKED_FOR`] is cancelled at its child; at most
//! [`MAX_PARKED`] wait at once. Within a task (see `tasks.rs`), the same
//! requests become the task's `input_required` state instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolResult, ClientCapabilities, ErrorData, GetPromptResponse, GetPromptResult,
    InputRequest, InputRequests, InputRequiredResult, InputResponses, ReadResourceResponse,
    ReadResourceResult, ServerRequest,
};
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use rmcp::model::ProgressToken;

use super::progress::{Flush, HandedOff};
use crate::proxy::upstream::{Ask, Asked};

/// How long a parked call waits for the agent's retry.
const PARKED_FOR: Duration = Duration::from_secs(600);
/// Parked calls at once.
const MAX_PARKED: usize = 64;

/// What a request that may take input rounds comes to.
pub enum Answer {
    Tool(CallToolResult),
    Prompt(GetPromptResult),
    Resource(ReadResourceResult),
}

/// The kinds of request that take input rounds, by their method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tool,
    Prompt,
    Resource,
}

impl Kind {
    fn method(self) -> &'static str {
        match self {
            Kind::Tool => "tools/call",
            Kind::Prompt => "prompts/get",
            Kind::Resource => "resources/read",
        }
    }
}

/// A proxied request under way, and what it asked that awaits the agent.
pub struct Parked {
    pub call: JoinHandle<Result<Answer, String>>,
    kind: Kind,
    pub asks: Receiver<Asked>,
    /// A question already taken from `asks` (see [`Parked::asked_first`]).
    first: Option<Asked>,
    pub cancel: CancellationToken,
    pub flush: Flush,
    /// The first request's progress token, which the call's progress names.
    token: Option<ProgressToken>,
    /// Its conversation's progress routes, where a retry sends it on.
    handed: Arc<HandedOff>,
    /// The principal whose request it is (`None` over stdio): only its
    /// retry resumes the call.
    principal: Option<String>,
    waiting: HashMap<String, tokio::sync::oneshot::Sender<Result<serde_json::Value, ErrorData>>>,
    keys: u64,
    since: Instant,
}

impl Parked {
    pub fn new(
        (kind, call): (Kind, JoinHandle<Result<Answer, String>>),
        asks: Receiver<Asked>,
        cancel: CancellationToken,
        (flush, token, handed): (Flush, Option<ProgressToken>, Arc<HandedOff>),
    ) -> Self {
        Parked {
            call,
            kind,
            asks,
            first: None,
            cancel,
            flush,
            token,
            handed,
            principal: None,
            waiting: HashMap::new(),
            keys: 0,
            since: Instant::now(),
        }
    }

    /// The call's first question, already taken from `asks` (a call that
    /// passed through as bytes is parked only once it asks, see
    /// `server/fast.rs`).
    pub fn asked_first(mut self, asked: Asked) -> Self {
        self.first = Some(asked);
        self
    }

    /// The request is `principal`'s (an HTTP token's name; `None` over
    /// stdio): only its retry resumes it.
    pub fn of(mut self, principal: Option<&str>) -> Self {
        self.principal = principal.map(str::to_string);
        self
    }
}

/// What a call came to: its result (or why it failed), or requests for the agent.
pub enum Outcome {
    Done(Result<Answer, String>),
    InputRequired(InputRequiredResult),
}

/// The calls parked until the agent answers.
pub struct Mrtr {
    parked: Mutex<HashMap<String, Parked>>,
    secret: [u8; 32],
    count: std::sync::atomic::AtomicU64,
}

impl Mrtr {
    pub fn new() -> Self {
        let mut secret = [0u8; 32];
        let random = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut secret));
        if random.is_err() {
            secret = *blake3::hash(crate::engine::nonce().as_bytes()).as_bytes();
        }
        Mrtr {
            parked: Mutex::new(HashMap::new()),
            secret,
            count: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// Whether the agent declared what `ask` needs, in this request.
fn declared(caps: Option<&ClientCapabilities>, ask: Ask) -> bool {
    caps.is_some_and(|c| match ask {
        Ask::Elicitation => c.elicitation.is_some(),
        Ask::Sampling => c.sampling.is_some(),
        Ask::Roots => c.roots.is_some(),
    })
}

/// A child's request as an input request, when it is one of the three kinds.
pub fn input_request(request: ServerRequest) -> Option<InputRequest> {
    match request {
        ServerRequest::ElicitRequest(r) => Some(InputRequest::Elicitation(r)),
        ServerRequest::CreateMessageRequest(r) => Some(InputRequest::CreateMessage(r)),
        ServerRequest::ListRootsRequest(r) => Some(InputRequest::ListRoots(r)),
        _ => None,
    }
}

impl Mrtr {
    fn handle(&self) -> String {
        let n = self
            .count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        blake3::keyed_hash(&self.secret, &n.to_le_bytes()).to_hex()[..32].to_string()
    }

    /// Run `parked` on until it is done or asks the agent something; then
    /// park it and return the requests. `caps` is what this request declared;
    /// `cancelled` is the request's own cancellation.
    pub async fn drive(
        &self,
        mut parked: Parked,
        caps: Option<&ClientCapabilities>,
        cancelled: &CancellationToken,
    ) -> Outcome {
        loop {
            let asked = if let Some(first) = parked.first.take() {
                Some(first)
            } else {
                tokio::select! {
                done = &mut parked.call => return self.finish(parked, done).await,
                asked = parked.asks.recv() => asked,
                _ = cancelled.cancelled() => {
                    parked.cancel.cancel();
                    let done = (&mut parked.call).await;
                    return self.finish(parked, done).await;
                }
                }
            };
            let Some(first) = asked else {
                let done = (&mut parked.call).await;
                return self.finish(parked, done).await;
            };
            let mut batch = vec![first];
            while let Ok(more) = parked.asks.try_recv() {
                batch.push(more);
            }
            let room = self.sweep() < MAX_PARKED;
            let mut requests = InputRequests::new();
            for Asked {
                ask,
                request,
                reply,
            } in batch
            {
                let refusal = if !room {
                    Some(format!(
                        "mcpod has {MAX_PARKED} calls waiting for its client's answers, its limit"
                    ))
                } else if !declared(caps, ask) {
                    Some("the client did not declare that capability in this request".to_string())
                } else {
                    None
                };
                let input = input_request(request);
                match (refusal, input) {
                    (None, Some(input)) => {
                        parked.keys += 1;
                        let key = format!("{}#{}", ask.method(), parked.keys);
                        requests.insert(key.clone(), input);
                        parked.waiting.insert(key, reply);
                    }
                    (why, _) => {
                        let why = why.unwrap_or_else(|| "not an input request".into());
                        let message =
                            format!("mcpod cannot ask its client `{}`: {why}", ask.method());
                        let _ = reply.send(Err(ErrorData::invalid_request(message, None)));
                    }
                }
            }
            if requests.is_empty() {
                continue;
            }
            // What the child reported before asking goes out before the round.
            parked.flush.settle().await;
            let handle = self.handle();
            parked.since = Instant::now();
            self.parked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(handle.clone(), parked);
            return Outcome::InputRequired(InputRequiredResult::new(Some(requests), Some(handle)));
        }
    }

    /// The agent's retry (of `principal`, `None` over stdio): hand its
    /// answers to the child and drive on, the call's progress now under the
    /// retry's token (`progress`).
    pub async fn resume(
        &self,
        (handle, kind, principal): (&str, Kind, Option<&str>),
        mut answers: InputResponses,
        caps: Option<&ClientCapabilities>,
        (cancelled, progress): (&CancellationToken, Option<ProgressToken>),
    ) -> Result<Outcome, ErrorData> {
        let parked = {
            let mut all = self.parked.lock().unwrap_or_else(|p| p.into_inner());
            match all.remove(handle) {
                // Another principal's state: answered as one never given,
                // and left for its own retry.
                Some(other) if other.principal.as_deref() != principal => {
                    all.insert(handle.to_string(), other);
                    None
                }
                // Another kind of request's state: left for its own retry.
                Some(other) if other.kind != kind => {
                    let theirs = other.kind.method();
                    all.insert(handle.to_string(), other);
                    return Err(ErrorData::invalid_params(
                        format!(
                            "requestState belongs to a {theirs} request, not this {}; retry that request with it",
                            kind.method()
                        ),
                        None,
                    ));
                }
                parked => parked,
            }
        };
        let Some(mut parked) = parked else {
            return Err(ErrorData::invalid_params(
                "requestState is not one mcpod gave, or its request has ended or waited too long; send the request again without it",
                None,
            ));
        };
        if let Some(token) = &parked.token {
            parked.handed.retry(token.clone(), progress);
        }
        for (key, reply) in parked.waiting.drain() {
            let answer = answers.remove(&key).ok_or_else(|| {
                ErrorData::invalid_params(format!("the client sent no answer for `{key}`"), None)
            });
            let _ = reply.send(answer);
        }
        Ok(self.drive(parked, caps, cancelled).await)
    }

    async fn finish(
        &self,
        parked: Parked,
        done: Result<Result<Answer, String>, tokio::task::JoinError>,
    ) -> Outcome {
        parked.flush.done().await;
        if let Some(token) = &parked.token {
            parked.handed.forget(token);
        }
        Outcome::Done(done.unwrap_or_else(|e| Err(format!("the call ended abnormally: {e}"))))
    }

    /// Cancel parked calls that waited too long; how many still wait.
    fn sweep(&self) -> usize {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        parked.retain(|_, p| {
            let keep = p.since.elapsed() < PARKED_FOR;
            if !keep {
                p.cancel.cancel();
            }
            keep
        });
        parked.len()
    }
}

impl From<Outcome> for rmcp::model::CallToolResponse {
    fn from(outcome: Outcome) -> Self {
        let failed =
            |message: String| CallToolResult::error(vec![rmcp::model::ContentBlock::text(message)]);
        match outcome {
            Outcome::Done(Ok(Answer::Tool(result))) => result.into(),
            Outcome::Done(Ok(_)) => failed(MIXED.into()).into(),
            Outcome::Done(Err(message)) => failed(message).into(),
            Outcome::InputRequired(input) => rmcp::model::CallToolResponse::InputRequired(input),
        }
    }
}

/// A parked request that came back as another kind (`resume` prevents it).
pub const MIXED: &str = "mcpod mixed up two requests' input rounds; send the request again";

impl Outcome {
    /// As `prompts/get`'s answer: its failure is an invalid-params error.
    pub fn into_prompt(self) -> Result<GetPromptResponse, ErrorData> {
        match self {
            Outcome::Done(Ok(Answer::Prompt(result))) => Ok(result.into()),
            Outcome::Done(Ok(_)) => Err(ErrorData::internal_error(MIXED, None)),
            Outcome::Done(Err(message)) => Err(ErrorData::invalid_params(message, None)),
            Outcome::InputRequired(input) => Ok(input.into()),
        }
    }

    /// As `resources/read`'s answer: its failure is a resource-not-found error.
    pub fn into_resource(self) -> Result<ReadResourceResponse, ErrorData> {
        match self {
            Outcome::Done(Ok(Answer::Resource(result))) => Ok(result.into()),
            Outcome::Done(Ok(_)) => Err(ErrorData::internal_error(MIXED, None)),
            Outcome::Done(Err(message)) => Err(ErrorData::resource_not_found(message, None)),
            Outcome::InputRequired(input) => Ok(input.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ContentBlock, ListRootsRequest};

    /// A call of `principal`'s that asks the agent for its roots once, and
    /// answers with what it got.
    fn asking(principal: Option<&str>) -> Parked {
        let (inputs, asks) = tokio::sync::mpsc::channel(4);
        let call = tokio::spawn(async move {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let request = ServerRequest::ListRootsRequest(ListRootsRequest::default());
            let asked = Asked {
                ask: Ask::Roots,
                request,
                reply,
            };
            inputs.send(asked).await.map_err(|e| e.to_string())?;
            let roots = answer.await.map_err(|e| e.to_string())?;
            let roots = roots.map_err(|e| e.message.to_string())?;
            let text = ContentBlock::text(roots.to_string());
            Ok(Answer::Tool(CallToolResult::success(vec![text])))
        });
        let (cancel, flush) = (CancellationToken::new(), Flush::none());
        Parked::new(
            (Kind::Tool, call),
            asks,
            cancel,
            (flush, None, Arc::default()),
        )
        .of(principal)
    }

    #[tokio::test]
    async fn only_the_principal_whose_request_it_is_resumes_it() {
        let mrtr = Mrtr::new();
        let caps = ClientCapabilities::builder().enable_roots().build();
        let (caps, cancelled) = (Some(&caps), CancellationToken::new());
        let Outcome::InputRequired(round) =
            mrtr.drive(asking(Some("alice")), caps, &cancelled).await
        else {
            panic!("no input round");
        };
        let handle = round.request_state.expect("a requestState");
        let key = round.input_requests.expect("requests").into_keys().next();
        let answers: InputResponses = [(key.expect("a key"), serde_json::json!({"roots": []}))]
            .into_iter()
            .collect();
        let resume = |principal| {
            let (handle, answers) = (handle.clone(), answers.clone());
            let (mrtr, cancelled) = (&mrtr, &cancelled);
            async move {
                let parked = (handle.as_str(), Kind::Tool, principal);
                mrtr.resume(parked, answers, caps, (cancelled, None)).await
            }
        };
        // One never given, and alice's presented by bob or by stdio, are
        // answered alike; hers stays parked.
        let never = mrtr
            .resume(
                ("0", Kind::Tool, Some("bob")),
                answers.clone(),
                caps,
                (&cancelled, None),
            )
            .await
            .err()
            .expect("refused");
        for other in [Some("bob"), None] {
            let refused = resume(other).await.err().expect("refused");
            assert_eq!(
                (refused.code, &refused.message),
                (never.code, &never.message)
            );
        }
        let Ok(Outcome::Done(Ok(Answer::Tool(result)))) = resume(Some("alice")).await else {
            panic!("alice's retry did not resume her call");
        };
        assert!(format!("{result:?}").contains("roots"), "{result:?}");
    }
}
