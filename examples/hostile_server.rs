//! `hostile-server`: a child MCP server that misbehaves on request, for the tests that
//! harden mcpod against what a hostile image can send. Statically linked into the
//! `tests/fixtures/hostile` image (FROM scratch) by scripts/build-hello.
//!
//! Not rmcp: a hand-rolled, synchronous, newline-delimited JSON-RPC server on stdin and
//! stdout (serde_json and std only), because its output must be byte-exact and as large as
//! asked, which a real SDK refuses to produce. Large outputs are streamed in 64 KiB chunks,
//! so the fixture's own memory stays small whatever it is asked to write.
//!
//! It answers `initialize` (echoing the client's protocolVersion when it is 2025-06-18 or
//! 2025-11-25, else 2025-11-25), `ping`, `tools/list` and `tools/call`; it ignores
//! notifications and responses; any other method gets a JSON-RPC -32601 error, a line that
//! is not JSON a -32700 error and a message that is not a request object a -32600 error.
//! Tool arguments that are missing or of the wrong type get a -32602 error.
//!
//! Tools:
//! - `echo {text}`: returns `text`.
//! - `stderr_flood {bytes, newline?}`: writes `bytes` bytes of `x` to stderr (a newline
//!   after them only if `newline` is true), then returns `flooded N`.
//! - `big_reply {bytes}`: one response line whose text content is `bytes` bytes of `a`.
//! - `deep_reply {depth}`: a response whose result carries, besides its content, a field
//!   `deep` nested `depth` arrays deep (`[[[]]]` for 3; `null` for 0).
//! - `notify_flood {count, bytes}`: `count` `notifications/message` whose data is `bytes`
//!   bytes of `n` and, when the request has `_meta.progressToken`, as many
//!   `notifications/progress` whose message is `bytes` bytes of `p`; then `notified N`.
//! - `garbage_then_reply`: one line of non-JSON text on stdout, then the response.
//! - `slow {ms}`: sleeps `ms` milliseconds (cancellation is not heard), then `slept`.
//! - `list_changed_flood {count}`: `count` `notifications/tools/list_changed`, then `sent N`.
//! - `tools_list_count`: how many `tools/list` requests it has answered.
//! - `ask_flood {count}`: `count` `elicitation/create` requests to the client (their
//!   answers are ignored), then `asked N`.
//! - `progress_then_ask`: a `notifications/progress` (1 of 2, when the request has a
//!   progress token), then an `elicitation/create` to the client; once it is answered, the
//!   second progress (2 of 2) under the same token, then the answer as text.
//! - `whoami`: the request's `id`, and its `_meta`'s `progressToken`, protocol version,
//!   `traceparent` and `tracestate` as they arrived (structured content `{id, token,
//!   protocol_version, traceparent, tracestate}`): which ids, tokens and trace context mcpod
//!   gives its children.
//!
//! Flags: `--duplicate-tools` (`echo` listed twice, with two descriptions),
//! `--many-tools N` (extra tools `t0`..`t{N-1}`, each answering its own name),
//! `--stderr-at-start BYTES` (`y`s on stderr, no newline, before reading stdin),
//! `--banner TEXT` (TEXT as a line on stdout before anything else),
//! `--echo-stdin` (every line read is written back verbatim, nothing is answered),
//! `--endless-pages` (every `tools/list` page has a `nextCursor`: pagination never ends),
//! `--mute` (read stdin, answer nothing: with `--banner`, a server that only prints junk),
//! `--task-only` (lists `echo` with `execution.taskSupport: "required"`, and answers its
//! calls plainly all the same: a server that says its tool needs a task and makes none),
//! `--asks` (it also offers a prompt `ask` and a resource `hostile://ask`, whose
//! `prompts/get` and `resources/read` first ask the client an `elicitation/create` and
//! answer with the client's answer, as text), `--modern` (a 2026-07-28 server: it answers
//! `server/discover` and refuses `initialize`; it refuses every other request whose `_meta`
//! lacks the 2026-07-28 protocol version; it asks its questions as input rounds, an
//! `InputRequiredResult` whose `requestState` is `hostile-state-N`, accepted once; it tells
//! of list changes and resource updates only on `subscriptions/listen` streams; and it has
//! the tools `touch {uri}` (a `notifications/resources/updated` of `uri` on every stream
//! subscribed to it, then `touched N`, the streams told), `listens` (its open streams'
//! filters, as structured content `{listens: [...]}`), `ask_many {count}` (an input round
//! of `count` questions, then `answered N` on the retry) and `ask_forever` (an input round
//! that asks nothing and only wants its state back, every time)), `--listen fails` (with
//! `--modern`: every `subscriptions/listen` is refused) or `--listen ends` (every stream is
//! acknowledged and ended at once, with its final result); `listens` also says how many
//! streams were asked for (`attempts`). `--modern --task-only` runs `echo` only as a task of
//! the 2026-07-28 tasks extension (`io.modelcontextprotocol/tasks`; a call that does not
//! declare it gets -32021): the call answers `resultType: "task"`; `tasks/get` says
//! `working` once, then `completed` with the result inline; `text` `ask` first makes the task
//! `input_required` with an elicitation (answered with `tasks/update`, then `answered: …`),
//! `stall` keeps it working, `fail` fails it, `strange` gives it the status `exploded`;
//! `tasks/cancel` cancels it; the tool `tasks` says each task's
//! status, as structured content `{tasks: {id: status}}`.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Map, Value, json};

#[path = "hostile_server/escape.rs"]
mod escape;

/// The size of each write of a streamed output.
const CHUNK: usize = 64 * 1024;
const PROTOCOL_VERSIONS: &[&str] = &["2025-06-18", "2025-11-25"];
const DEFAULT_PROTOCOL_VERSION: &str = "2025-11-25";

#[derive(Default)]
struct Flags {
    duplicate_tools: bool,
    many_tools: u64,
    stderr_at_start: u64,
    banner: Option<String>,
    echo_stdin: bool,
    endless_pages: bool,
    mute: bool,
    asks: bool,
    task_only: bool,
    modern: bool,
    /// `--listen`: what becomes of `subscriptions/listen` streams.
    listen: Listen,
}

/// What a `--modern` server does with a `subscriptions/listen` request.
#[derive(Default, PartialEq)]
enum Listen {
    /// Keep the stream open (the default).
    #[default]
    Keep,
    /// Refuse it.
    Fails,
    /// Acknowledge it, then end it at once.
    Ends,
}

impl Flags {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Flags, String> {
        let mut flags = Flags::default();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--duplicate-tools" => flags.duplicate_tools = true,
                "--echo-stdin" => flags.echo_stdin = true,
                "--endless-pages" => flags.endless_pages = true,
                "--mute" => flags.mute = true,
                "--asks" => flags.asks = true,
                "--task-only" => flags.task_only = true,
                "--modern" => flags.modern = true,
                "--many-tools" => flags.many_tools = number(&value(&arg)?, &arg)?,
                "--stderr-at-start" => flags.stderr_at_start = number(&value(&arg)?, &arg)?,
                "--banner" => flags.banner = Some(value(&arg)?),
                "--listen" => {
                    flags.listen = match value(&arg)?.as_str() {
                        "fails" => Listen::Fails,
                        "ends" => Listen::Ends,
                        other => {
                            return Err(format!("--listen wants fails or ends, not `{other}`"));
                        }
                    }
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(flags)
    }
}

fn number(text: &str, flag: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{flag} wants a whole number, not `{text}`"))
}

/// Write `len` bytes of `byte` to `out` in chunks of at most [`CHUNK`].
fn repeat(out: &mut impl Write, byte: u8, len: u64) -> io::Result<()> {
    let chunk = [byte; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// A JSON-RPC failure to send back as an error response.
struct RpcError {
    code: i64,
    message: String,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }

    fn params(message: impl Into<String>) -> Self {
        RpcError::new(-32602, message)
    }
}

/// A request of the client's waiting for the answer to the server's question.
struct Asking {
    id: Value,
    /// `prompts/get`, `resources/read` or `tools/call`.
    method: &'static str,
    /// Its progress token, if it had one.
    token: Option<Value>,
}

struct Server {
    flags: Flags,
    out: io::Stdout,
    /// `tools/list` requests answered so far.
    lists: u64,
    /// `--asks`: the client's requests waiting for its question's answer,
    /// by the question's id: (their id, `prompts/get` or `resources/read`).
    asking: std::collections::HashMap<String, Asking>,
    /// Questions asked so far.
    questions: u64,
    /// `--modern`: the `requestState`s given out and not yet used, with the
    /// method of the request that was given each.
    states: std::collections::HashMap<String, &'static str>,
    /// `--modern`: the open `subscriptions/listen` streams, by their request's id
    /// (as JSON text): (their id, their filter).
    listens: std::collections::BTreeMap<String, (Value, Value)>,
    /// `--modern`: the `subscriptions/listen` requests received.
    listen_attempts: u64,
    /// `--modern --task-only`: the tasks made, by id.
    tasks: std::collections::BTreeMap<String, HostileTask>,
}

/// `--modern --task-only`: a task of `echo`.
struct HostileTask {
    text: String,
    polls: u64,
    answer: Option<Value>,
    cancelled: bool,
}

const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

impl Server {
    /// One complete message, as one line.
    fn send(&mut self, message: &Value) -> io::Result<()> {
        let mut out = self.out.lock();
        serde_json::to_writer(&mut out, message)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    fn reply(&mut self, id: &Value, result: Value) -> io::Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}))
    }

    fn error(&mut self, id: &Value, error: RpcError) -> io::Result<()> {
        self.send(&json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": error.code, "message": error.message},
        }))
    }

    fn text_result(text: impl Into<String>) -> Value {
        json!({"content": [{"type": "text", "text": text.into()}], "isError": false})
    }

    /// `seen` as structured content, and as its text.
    fn structured_result(seen: Value) -> Value {
        let mut result = Self::text_result(seen.to_string());
        result["structuredContent"] = seen;
        result
    }

    /// Handle one line read from stdin.
    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        if self.flags.mute {
            return Ok(());
        }
        if self.flags.echo_stdin {
            let mut out = self.out.lock();
            out.write_all(line)?;
            return out.flush();
        }
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let message: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                return self.error(
                    &Value::Null,
                    RpcError::new(-32700, format!("parse error: {e}")),
                );
            }
        };
        let Value::Object(message) = message else {
            return self.error(
                &Value::Null,
                RpcError::new(-32600, "a message must be a JSON object"),
            );
        };
        if let (Some(Value::String(asked)), None) = (message.get("id"), message.get("method"))
            && let Some(asking) = self.asking.remove(asked)
        {
            return self.answered(asking, &message);
        }
        if message.get("method").and_then(Value::as_str) == Some("notifications/cancelled") {
            let id = message
                .get("params")
                .and_then(|p| p.get("requestId"))
                .map(Value::to_string);
            if let Some(id) = id {
                self.listens.remove(&id);
            }
            return Ok(());
        }
        let (Some(id), Some(method)) = (message.get("id"), message.get("method")) else {
            // A notification, or a response to nothing we asked: ignored.
            return Ok(());
        };
        let id = id.clone();
        let Some(method) = method.as_str() else {
            return self.error(&id, RpcError::new(-32600, "`method` must be a string"));
        };
        let params = message.get("params").cloned().unwrap_or(Value::Null);
        if self.flags.modern {
            return self.modern(&id, method, &params);
        }
        self.request(&id, method, &params)
    }

    /// `--modern`: what a 2026-07-28 server does before a request is handled.
    fn modern(&mut self, id: &Value, method: &str, params: &Value) -> io::Result<()> {
        if method == "initialize" {
            return self.error(
                id,
                RpcError::new(
                    -32600,
                    "this server speaks only 2026-07-28: use server/discover",
                ),
            );
        }
        let version = params.pointer("/_meta/io.modelcontextprotocol~1protocolVersion");
        if version != Some(&json!("2026-07-28")) {
            return self.error(
                id,
                RpcError::params(format!(
                    "{method}: `_meta` must carry io.modelcontextprotocol/protocolVersion 2026-07-28"
                )),
            );
        }
        match method {
            "server/discover" => {
                let mut capabilities = json!({"tools": {"listChanged": true}});
                if self.flags.asks {
                    capabilities["prompts"] = json!({"listChanged": true});
                    capabilities["resources"] = json!({"listChanged": true, "subscribe": true});
                }
                self.reply(
                    id,
                    json!({
                        "resultType": "complete",
                        "supportedVersions": ["2026-07-28"],
                        "capabilities": capabilities,
                        "ttlMs": 0, "cacheScope": "private",
                        "_meta": {"io.modelcontextprotocol/serverInfo":
                            {"name": "hostile-server", "version": env!("CARGO_PKG_VERSION")}},
                    }),
                )
            }
            "subscriptions/listen" => {
                self.listen_attempts += 1;
                if self.flags.listen == Listen::Fails {
                    return self.error(id, RpcError::new(-32603, "this server refuses streams"));
                }
                let filter = params.get("notifications").cloned().unwrap_or(json!({}));
                self.send(&json!({
                    "jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                    "params": {"notifications": filter,
                               "_meta": {"io.modelcontextprotocol/subscriptionId": id}},
                }))?;
                if self.flags.listen == Listen::Ends {
                    return self.reply(
                        id,
                        json!({"resultType": "complete",
                               "_meta": {"io.modelcontextprotocol/subscriptionId": id}}),
                    );
                }
                self.listens
                    .insert(id.to_string(), (id.clone(), filter.clone()));
                Ok(())
            }
            "tools/call" | "tasks/get" | "tasks/update" | "tasks/cancel"
                if self.flags.task_only =>
            {
                match self.task(method, params) {
                    Some(Ok(result)) => self.reply(id, result),
                    Some(Err(e)) => self.error(id, e),
                    None => self.request(id, method, params),
                }
            }
            _ => self.request(id, method, params),
        }
    }

    /// `--modern --task-only`: the tasks extension's requests, and calls of
    /// `echo` (none: an ordinary request).
    fn task(&mut self, method: &str, params: &Value) -> Option<Result<Value, RpcError>> {
        let task_id = || params["taskId"].as_str().unwrap_or_default().to_string();
        match method {
            "tools/call" => {
                if params["name"] != "echo" {
                    return None;
                }
                let declared = params
                    .pointer("/_meta/io.modelcontextprotocol~1clientCapabilities/extensions")
                    .and_then(|e| e.get(TASKS_EXTENSION))
                    .is_some();
                if !declared {
                    return Some(Err(RpcError::new(
                        -32021,
                        "echo runs only as a task: declare the io.modelcontextprotocol/tasks extension",
                    )));
                }
                let text = params["arguments"]["text"].as_str().unwrap_or_default();
                let made = format!("hostile-task-{}", self.tasks.len() + 1);
                self.tasks.insert(
                    made.clone(),
                    HostileTask {
                        text: text.to_string(),
                        polls: 0,
                        answer: None,
                        cancelled: false,
                    },
                );
                Some(Ok(
                    json!({"resultType": "task", "taskId": made, "status": "working",
                    "createdAt": "2026-12-01T00:00:00Z", "lastUpdatedAt": "2026-12-01T00:00:00Z",
                    "ttlMs": 60000, "pollIntervalMs": 100}),
                ))
            }
            _ => {
                let Some(task) = self.tasks.get_mut(&task_id()) else {
                    return Some(Err(RpcError::params(format!("no task `{}`", task_id()))));
                };
                let ack = json!({"resultType": "complete"});
                match method {
                    "tasks/cancel" => {
                        task.cancelled = true;
                        return Some(Ok(ack));
                    }
                    "tasks/update" => {
                        task.answer = params["inputResponses"].get("hostile-q1").cloned();
                        return Some(Ok(ack));
                    }
                    _ => {}
                }
                task.polls += 1;
                let mut state = json!({"resultType": "complete", "taskId": task_id(),
                    "createdAt": "2026-12-01T00:00:00Z", "lastUpdatedAt": "2026-12-01T00:00:00Z",
                    "ttlMs": 60000, "pollIntervalMs": 100});
                let (status, more) = if task.cancelled {
                    ("cancelled", json!({}))
                } else if task.text == "stall" || task.polls == 1 {
                    (
                        "working",
                        json!({"statusMessage": format!("poll {}", task.polls)}),
                    )
                } else if task.text == "fail" {
                    let error = json!({"code": -32000, "message": "it broke"});
                    ("failed", json!({"error": error}))
                } else if task.text == "strange" {
                    ("exploded", json!({}))
                } else if task.text == "ask" && task.answer.is_none() {
                    let ask = json!({"method": "elicitation/create", "params": {
                        "message": "say something",
                        "requestedSchema": {"type": "object", "properties": {}}}});
                    (
                        "input_required",
                        json!({"inputRequests": {"hostile-q1": ask}}),
                    )
                } else {
                    let text = match &task.answer {
                        Some(answer) => format!("answered: {answer}"),
                        None => task.text.clone(),
                    };
                    ("completed", json!({"result": Self::text_result(text)}))
                };
                state["status"] = json!(status);
                if let (Some(state), Value::Object(more)) = (state.as_object_mut(), more) {
                    state.extend(more);
                }
                Some(Ok(state))
            }
        }
    }

    /// `--modern`: send `method` (with `params`) on every open stream whose filter has
    /// `wants`; returns how many.
    fn tell(
        &mut self,
        method: &str,
        params: Value,
        wants: impl Fn(&Value) -> bool,
    ) -> io::Result<u64> {
        let ids: Vec<Value> = self
            .listens
            .values()
            .filter(|(_, filter)| wants(filter))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            let mut params = params.clone();
            params["_meta"] = json!({"io.modelcontextprotocol/subscriptionId": id});
            self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))?;
        }
        Ok(ids.len() as u64)
    }

    /// Handle request `method` (`id`, `params`).
    fn request(&mut self, id: &Value, method: &str, params: &Value) -> io::Result<()> {
        let id = id.clone();
        let params = params.clone();
        match method {
            "initialize" => {
                let asked = params.get("protocolVersion").and_then(Value::as_str);
                let version = asked
                    .filter(|v| PROTOCOL_VERSIONS.contains(v))
                    .unwrap_or(DEFAULT_PROTOCOL_VERSION);
                let capabilities = if self.flags.asks {
                    json!({"tools": {}, "prompts": {}, "resources": {}})
                } else {
                    json!({"tools": {}})
                };
                self.reply(
                    &id,
                    json!({
                        "protocolVersion": version,
                        "capabilities": capabilities,
                        "serverInfo": {"name": "hostile-server", "version": env!("CARGO_PKG_VERSION")},
                    }),
                )
            }
            "ping" => self.reply(&id, json!({})),
            "tools/list" => {
                self.lists += 1;
                self.tools_list(&id)
            }
            "tools/call" => match self.tools_call(&id, &params) {
                Ok(()) => Ok(()),
                Err(Failure::Rpc(e)) => self.error(&id, e),
                Err(Failure::Io(e)) => Err(e),
            },
            "prompts/list" if self.flags.asks => self.reply(
                &id,
                json!({"prompts": [{"name": "ask", "description": "Asks the client first"}]}),
            ),
            "resources/list" if self.flags.asks => self.reply(
                &id,
                json!({"resources": [{"uri": "hostile://ask", "name": "ask"}]}),
            ),
            "resources/templates/list" if self.flags.asks => {
                self.reply(&id, json!({"resourceTemplates": []}))
            }
            "prompts/get" | "resources/read" if self.flags.asks => {
                let method = if method == "prompts/get" {
                    "prompts/get"
                } else {
                    "resources/read"
                };
                if self.flags.modern
                    && let Some(answer) = self.retried(&params, method)
                {
                    return self.answered(
                        Asking {
                            id,
                            method,
                            token: None,
                        },
                        &answer,
                    );
                }
                self.ask(Asking {
                    id,
                    method,
                    token: None,
                })
            }
            other => self.error(
                &id,
                RpcError::new(-32601, format!("method not found: {other}")),
            ),
        }
    }

    /// Ask the client for a name on behalf of `asking`, which waits for the answer
    /// (`--modern`: answer `asking` with an input round that asks it).
    fn ask(&mut self, asking: Asking) -> io::Result<()> {
        self.questions += 1;
        let asked = format!("question-{}", self.questions);
        let message = format!("{} wants a name", asking.method);
        let params = json!({"message": message,
                            "requestedSchema": {"type": "object",
                                "properties": {"name": {"type": "string"}}}});
        if self.flags.modern {
            let state = format!("hostile-state-{}", self.questions);
            self.states.insert(state.clone(), asking.method);
            return self.reply(
                &asking.id,
                json!({
                    "resultType": "input_required",
                    "inputRequests": {"name": {"method": "elicitation/create", "params": params}},
                    "requestState": state,
                }),
            );
        }
        self.asking.insert(asked.clone(), asking);
        self.send(&json!({
            "jsonrpc": "2.0", "id": asked, "method": "elicitation/create", "params": params,
        }))
    }

    /// `--modern`: the retry of an input round of `method`, as the response a client
    /// would have sent (`result`: the answer to `name`); none for a first request. A
    /// state this server did not give, gave another method, or took back already is
    /// answered as refused.
    fn retried(&mut self, params: &Value, method: &str) -> Option<Map<String, Value>> {
        let state = params.get("requestState")?.as_str().unwrap_or_default();
        let mut answer = Map::new();
        match self.states.remove(state) {
            Some(given) if given == method => match params.pointer("/inputResponses/name") {
                Some(name) => answer.insert("result".into(), name.clone()),
                None => answer.insert("error".into(), json!("no inputResponses.name")),
            },
            _ => answer.insert(
                "error".into(),
                json!(format!("unknown requestState `{state}`")),
            ),
        };
        Some(answer)
    }

    fn progress(&mut self, token: &Option<Value>, progress: u64) -> io::Result<()> {
        let Some(token) = token else {
            return Ok(());
        };
        self.send(&json!({
            "jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": token, "progress": progress, "total": 2,
                       "message": format!("step {progress} of 2")},
        }))
    }

    /// The client answered the question `asking` waited for.
    fn answered(&mut self, asking: Asking, response: &Map<String, Value>) -> io::Result<()> {
        let text = match (response.get("result"), response.get("error")) {
            (Some(result), _) => format!("answered: {result}"),
            (None, Some(error)) => format!("refused: {error}"),
            (None, None) => "no answer".to_string(),
        };
        let id = &asking.id;
        match asking.method {
            "prompts/get" => self.reply(
                id,
                json!({"messages": [{"role": "user", "content": {"type": "text", "text": text}}]}),
            ),
            "resources/read" => self.reply(
                id,
                json!({"contents": [{"uri": "hostile://ask", "mimeType": "text/plain", "text": text}]}),
            ),
            _ => {
                self.progress(&asking.token, 2)?;
                self.reply(id, Self::text_result(text))
            }
        }
    }

    /// The tools, streamed one by one (`--many-tools` may ask for very many).
    fn tools_list(&mut self, id: &Value) -> io::Result<()> {
        let mut out = self.out.lock();
        write!(out, r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":["#)?;
        let mut first = true;
        let mut tool = |out: &mut io::StdoutLock, tool: Value| -> io::Result<()> {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            serde_json::to_writer(out, &tool).map_err(io::Error::from)
        };
        let task_only = self.flags.task_only;
        for mut t in tools() {
            if task_only && t["name"] == "echo" {
                t["execution"] = json!({"taskSupport": "required"});
            }
            tool(&mut out, t)?;
        }
        if self.flags.modern {
            let modern = [
                (
                    "touch",
                    "Tell the streams subscribed to `uri` that it was updated.",
                    schema(&[("uri", "string")], &["uri"]),
                ),
                (
                    "listens",
                    "Say the filters of the open subscriptions/listen streams.",
                    schema(&[], &[]),
                ),
                (
                    "ask_many",
                    "Ask `count` questions in one input round.",
                    schema(&[("count", "integer")], &["count"]),
                ),
                (
                    "ask_forever",
                    "Want the request state back, every time.",
                    schema(&[], &[]),
                ),
                ("tasks", "Say each task's status.", schema(&[], &[])),
            ];
            for (name, description, input) in modern {
                tool(
                    &mut out,
                    json!({"name": name, "description": description, "inputSchema": input}),
                )?;
            }
        }
        if self.flags.duplicate_tools {
            tool(
                &mut out,
                json!({
                    "name": "echo",
                    "description": "A second `echo`, with another description.",
                    "inputSchema": schema(&[("text", "string")], &["text"]),
                }),
            )?;
        }
        for i in 0..self.flags.many_tools {
            tool(
                &mut out,
                json!({
                    "name": format!("t{i}"),
                    "description": format!("Extra tool {i}: answers its own name."),
                    "inputSchema": {"type": "object", "properties": {}},
                }),
            )?;
        }
        if self.flags.endless_pages {
            // Every page says there is another.
            out.write_all(br#"],"nextCursor":"more"}}"#)?;
            out.write_all(b"\n")?;
        } else {
            out.write_all(b"]}}\n")?;
        }
        out.flush()
    }

    fn tools_call(&mut self, id: &Value, params: &Value) -> Result<(), Failure> {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::params("tools/call needs a string `name`"))?;
        let empty = Map::new();
        let args = match params.get("arguments") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(map)) => map,
            Some(_) => return Err(RpcError::params("`arguments` must be an object").into()),
        };
        match name {
            "echo" => {
                let text = args
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| RpcError::params("echo needs a string `text`"))?;
                self.reply(id, Self::text_result(text))?;
            }
            "stderr_flood" => {
                let bytes = whole(args, "bytes")?;
                let newline = match args.get("newline") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(RpcError::params("`newline` must be a boolean").into()),
                };
                let mut err = io::stderr().lock();
                repeat(&mut err, b'x', bytes)?;
                if newline {
                    err.write_all(b"\n")?;
                }
                err.flush()?;
                drop(err);
                self.reply(id, Self::text_result(format!("flooded {bytes}")))?;
            }
            "big_reply" => {
                let bytes = whole(args, "bytes")?;
                let mut out = self.out.lock();
                write!(
                    out,
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":""#
                )?;
                repeat(&mut out, b'a', bytes)?;
                out.write_all(b"\"}],\"isError\":false}}\n")?;
                out.flush()?;
            }
            "deep_reply" => {
                let depth = whole(args, "depth")?;
                let mut out = self.out.lock();
                write!(
                    out,
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"deep {depth}"}}],"isError":false,"deep":"#
                )?;
                if depth == 0 {
                    out.write_all(b"null")?;
                } else {
                    repeat(&mut out, b'[', depth)?;
                    repeat(&mut out, b']', depth)?;
                }
                out.write_all(b"}}\n")?;
                out.flush()?;
            }
            "notify_flood" => {
                let count = whole(args, "count")?;
                let bytes = whole(args, "bytes")?;
                let token = params
                    .get("_meta")
                    .and_then(|m| m.get("progressToken"))
                    .filter(|t| t.is_string() || t.is_number())
                    .cloned();
                let mut out = self.out.lock();
                for i in 0..count {
                    out.write_all(
                        br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","logger":"hostile","data":""#,
                    )?;
                    repeat(&mut out, b'n', bytes)?;
                    out.write_all(b"\"}}\n")?;
                    if let Some(token) = &token {
                        write!(
                            out,
                            r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{token},"progress":{},"total":{count},"message":""#,
                            i + 1
                        )?;
                        repeat(&mut out, b'p', bytes)?;
                        out.write_all(b"\"}}\n")?;
                    }
                    out.flush()?;
                }
                drop(out);
                self.reply(id, Self::text_result(format!("notified {count}")))?;
            }
            "list_changed_flood" if self.flags.modern => {
                let count = whole(args, "count")?;
                let mut told = 0;
                let wants = |f: &Value| f["toolsListChanged"] == json!(true);
                for _ in 0..count {
                    told = self.tell("notifications/tools/list_changed", json!({}), wants)?;
                }
                self.reply(
                    id,
                    Self::text_result(format!("sent {count} to {told} streams")),
                )?;
            }
            "touch" if self.flags.modern => {
                let uri = text_arg(args, "uri")?;
                let wants = |f: &Value| {
                    f["resourceSubscriptions"]
                        .as_array()
                        .is_some_and(|uris| uris.contains(&json!(uri)))
                };
                let params = json!({"uri": uri});
                let told = self.tell("notifications/resources/updated", params, wants)?;
                self.reply(id, Self::text_result(format!("touched {told}")))?;
            }
            "ask_many" if self.flags.modern => {
                let count = whole(args, "count")?;
                if let Some(answer) = self.retried(params, "tools/call") {
                    let answered = params["inputResponses"].as_object().map_or(0, Map::len);
                    let text = format!("answered {answered}: {answer:?}");
                    self.reply(id, Self::text_result(text))?;
                    return Ok(());
                }
                self.questions += 1;
                let state = format!("hostile-state-{}", self.questions);
                self.states.insert(state.clone(), "tools/call");
                let requests: Map<String, Value> = (0..count)
                    .map(|i| {
                        let ask = json!({"method": "elicitation/create", "params": {
                            "message": format!("question {i}"),
                            "requestedSchema": {"type": "object", "properties": {}}}});
                        (
                            if i == 0 {
                                "name".to_string()
                            } else {
                                format!("q{i}")
                            },
                            ask,
                        )
                    })
                    .collect();
                self.reply(
                    id,
                    json!({"resultType": "input_required", "inputRequests": requests,
                           "requestState": state}),
                )?;
            }
            "ask_forever" if self.flags.modern => {
                self.questions += 1;
                self.reply(
                    id,
                    json!({"resultType": "input_required",
                           "requestState": format!("hostile-state-{}", self.questions)}),
                )?;
            }
            "tasks" if self.flags.modern => {
                let tasks: Map<String, Value> = self
                    .tasks
                    .iter()
                    .map(|(id, t)| {
                        let status = if t.cancelled { "cancelled" } else { "open" };
                        (id.clone(), json!(status))
                    })
                    .collect();
                let seen = json!({"tasks": tasks});
                self.reply(id, Self::structured_result(seen))?;
            }
            "listens" if self.flags.modern => {
                let listens: Vec<Value> = self.listens.values().map(|(_, f)| f.clone()).collect();
                let seen = json!({"listens": listens, "attempts": self.listen_attempts});
                self.reply(id, Self::structured_result(seen))?;
            }
            "list_changed_flood" => {
                let count = whole(args, "count")?;
                {
                    let mut out = self.out.lock();
                    for _ in 0..count {
                        out.write_all(
                            b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n",
                        )?;
                    }
                    out.flush()?;
                }
                self.reply(id, Self::text_result(format!("sent {count}")))?;
            }
            "ask_flood" => {
                let count = whole(args, "count")?;
                {
                    let mut out = self.out.lock();
                    for i in 0..count {
                        let ask = json!({"jsonrpc": "2.0", "id": format!("ask-{i}"),
                            "method": "elicitation/create",
                            "params": {"message": format!("question {i}"),
                                "requestedSchema": {"type": "object", "properties": {}}}});
                        out.write_all(format!("{ask}\n").as_bytes())?;
                    }
                    out.flush()?;
                }
                self.reply(id, Self::text_result(format!("asked {count}")))?;
            }
            "tools_list_count" => {
                let lists = self.lists;
                self.reply(id, Self::text_result(lists.to_string()))?;
            }
            "garbage_then_reply" => {
                {
                    let mut out = self.out.lock();
                    out.write_all(b"this line is not JSON-RPC {{{ \x01 garbage\n")?;
                    out.flush()?;
                }
                self.reply(id, Self::text_result("after garbage"))?;
            }
            "progress_then_ask" => {
                let token = params.pointer("/_meta/progressToken").cloned();
                if self.flags.modern
                    && let Some(answer) = self.retried(params, "tools/call")
                {
                    let asking = Asking {
                        id: id.clone(),
                        method: "tools/call",
                        token,
                    };
                    return Ok(self.answered(asking, &answer)?);
                }
                self.progress(&token, 1)?;
                self.ask(Asking {
                    id: id.clone(),
                    method: "tools/call",
                    token,
                })?;
            }
            "whoami" => {
                let token = params.pointer("/_meta/progressToken").cloned();
                let version = params.pointer("/_meta/io.modelcontextprotocol~1protocolVersion");
                let traceparent = params.pointer("/_meta/traceparent");
                let tracestate = params.pointer("/_meta/tracestate");
                let seen = json!({"id": id, "token": token, "protocol_version": version,
                    "traceparent": traceparent, "tracestate": tracestate});
                self.reply(id, Self::structured_result(seen))?;
            }
            "slow" => {
                let ms = whole(args, "ms")?;
                std::thread::sleep(Duration::from_millis(ms));
                self.reply(id, Self::text_result("slept"))?;
            }
            "attack_supervisor" => {
                self.reply(id, Self::text_result(attack_supervisor()))?;
            }
            "http_via_proxy" => {
                let url = text_arg(args, "url")?;
                let method = args.get("method").and_then(Value::as_str).unwrap_or("GET");
                let to = Proxied {
                    proxy: args.get("proxy").and_then(Value::as_u64),
                    body: args.get("body").and_then(Value::as_str).unwrap_or(""),
                };
                let repeat = args.get("repeat").and_then(Value::as_u64).unwrap_or(1);
                let spawn = args.get("spawn").and_then(Value::as_str);
                let mut got = String::new();
                for _ in 0..repeat.max(1) {
                    got = match spawn {
                        Some(how) => via_spawned(how, method, &url, &to),
                        None => via_proxy(method, &url, &to),
                    };
                }
                self.reply(id, Self::text_result(got))?;
            }
            "hold_via_proxy" => {
                let url = text_arg(args, "url")?;
                let count = whole(args, "count")?;
                let body = args.get("body").and_then(Value::as_str).unwrap_or("");
                self.reply(id, Self::text_result(hold_via_proxy(&url, count, body)))?;
            }
            "tcp_bench" => {
                let to = text_arg(args, "to")?;
                let mib = whole(args, "megabytes")?;
                let connects = whole(args, "connects")?;
                self.reply(id, Self::text_result(tcp_bench(&to, mib, connects)))?;
            }
            "escape_forward" => {
                let to = text_arg(args, "to")?;
                let escape = text_arg(args, "escape")?;
                self.reply(id, Self::text_result(escape::escape_forward(&to, &escape)))?;
            }
            "tcp_exchange" => {
                let to = text_arg(args, "to")?;
                let text = text_arg(args, "text")?;
                self.reply(id, Self::text_result(tcp_exchange(&to, &text)))?;
            }
            extra if self.is_extra_tool(extra) => {
                self.reply(id, Self::text_result(extra))?;
            }
            other => return Err(RpcError::params(format!("unknown tool `{other}`")).into()),
        }
        Ok(())
    }

    /// `t<i>` with `i` below `--many-tools`.
    fn is_extra_tool(&self, name: &str) -> bool {
        name.strip_prefix('t')
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
            .is_some_and(|i| i < self.flags.many_tools)
    }
}

/// Why a tool call did not produce its reply.
enum Failure {
    Rpc(RpcError),
    Io(io::Error),
}

impl From<RpcError> for Failure {
    fn from(e: RpcError) -> Self {
        Failure::Rpc(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

fn whole(args: &Map<String, Value>, name: &str) -> Result<u64, RpcError> {
    args.get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| RpcError::params(format!("`{name}` must be a whole number")))
}

/// An object schema with `props` (name, JSON type) and the `required` ones.
fn schema(props: &[(&str, &str)], required: &[&str]) -> Value {
    let properties: Map<String, Value> = props
        .iter()
        .map(|(name, ty)| {
            let mut p = json!({"type": ty});
            if *ty == "integer" {
                p["minimum"] = json!(0);
            }
            (name.to_string(), p)
        })
        .collect();
    json!({"type": "object", "properties": properties, "required": required})
}

fn tools() -> Vec<Value> {
    let tool = |name: &str, description: &str, input: Value| json!({"name": name, "description": description, "inputSchema": input});
    vec![
        tool(
            "echo",
            "Return `text`.",
            schema(&[("text", "string")], &["text"]),
        ),
        tool(
            "stderr_flood",
            "Write `bytes` bytes of `x` to stderr, then a newline if `newline`.",
            schema(&[("bytes", "integer"), ("newline", "boolean")], &["bytes"]),
        ),
        tool(
            "big_reply",
            "Reply with one line whose text is `bytes` bytes of `a`.",
            schema(&[("bytes", "integer")], &["bytes"]),
        ),
        tool(
            "deep_reply",
            "Reply with a result field nested `depth` arrays deep.",
            schema(&[("depth", "integer")], &["depth"]),
        ),
        tool(
            "notify_flood",
            "Send `count` log notifications (and progress notifications when asked) of `bytes` bytes each.",
            schema(
                &[("count", "integer"), ("bytes", "integer")],
                &["count", "bytes"],
            ),
        ),
        tool(
            "progress_then_ask",
            "Report progress 1 of 2, ask the client for a name, report 2 of 2, return the answer.",
            schema(&[], &[]),
        ),
        tool(
            "whoami",
            "Return the request's id, progress token and trace context as they arrived.",
            schema(&[], &[]),
        ),
        tool(
            "garbage_then_reply",
            "Write a line that is not JSON on stdout, then reply.",
            schema(&[], &[]),
        ),
        tool(
            "list_changed_flood",
            "Send `count` notifications/tools/list_changed, then reply.",
            schema(&[("count", "integer")], &["count"]),
        ),
        tool(
            "ask_flood",
            "Send `count` elicitation/create requests to the client, then reply.",
            schema(&[("count", "integer")], &["count"]),
        ),
        tool(
            "tools_list_count",
            "Reply with how many tools/list requests this server has answered.",
            schema(&[], &[]),
        ),
        tool(
            "slow",
            "Sleep `ms` milliseconds, then reply.",
            schema(&[("ms", "integer")], &["ms"]),
        ),
        tool(
            "http_via_proxy",
            "Send `method` (default GET) `url` through $HTTP_PROXY, or 127.0.0.1:`proxy` (absolute form, or CONNECT for `method` CONNECT with `url` HOST:PORT), then `body`; `repeat` times (default 1); reply with what came back the last time, or the error. `spawn`: from a process of its own, `child` (this program run again), `orphan` (a child's child, once the child has exited) or `hidden` (a child that made itself non-dumpable).",
            schema(
                &[
                    ("url", "string"),
                    ("method", "string"),
                    ("proxy", "integer"),
                    ("body", "string"),
                    ("repeat", "integer"),
                    ("spawn", "string"),
                ],
                &["url"],
            ),
        ),
        tool(
            "hold_via_proxy",
            "Open `count` CONNECT tunnels to `url` (HOST:PORT) through $HTTP_PROXY and keep them open after replying; reply `held N`, or the error.",
            schema(
                &[("url", "string"), ("count", "integer")],
                &["url", "count"],
            ),
        ),
        tool(
            "tcp_bench",
            "Against an echo server at `to`: `connects` times connect, send a byte and read it back (setup latency), then send `megabytes` MiB on one connection while reading the echo (throughput); reply with JSON.",
            schema(
                &[
                    ("to", "string"),
                    ("megabytes", "integer"),
                    ("connects", "integer"),
                ],
                &["to", "megabytes", "connects"],
            ),
        ),
        tool(
            "escape_forward",
            "Connect to the port forward `to` (IPv4 HOST:PORT), echo a ping, then try to take the socket elsewhere: dissolve it (`AF_UNSPEC`) and connect it to `escape`, race a thread for it, and connect by io_uring and TCP Fast Open; connect unix sockets in the container; reply with JSON.",
            schema(&[("to", "string"), ("escape", "string")], &["to", "escape"]),
        ),
        tool(
            "tcp_exchange",
            "Connect straight to `to` (HOST:PORT), write `text`, reply with what comes back before EOF or 2 s, or the error.",
            schema(&[("to", "string"), ("text", "string")], &["to", "text"]),
        ),
        tool(
            "attack_supervisor",
            "Try to write into the session stream through PID 1's stdout, read PID 1's memory and environment, and kill PID 1; say what happened.",
            schema(&[], &[]),
        ),
    ]
}

fn text_arg(args: &Map<String, Value>, name: &str) -> Result<String, RpcError> {
    args.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| RpcError::params(format!("`{name}` must be a string")))
}

/// Write `request`, read until EOF or 2 s (at most 64 KiB).
fn exchange(stream: &mut std::net::TcpStream, request: &[u8]) -> io::Result<String> {
    use std::io::Read;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(request)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while got.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if got.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// Which proxy (None: $HTTP_PROXY) and what to send after the head.
struct Proxied<'a> {
    proxy: Option<u64>,
    body: &'a str,
}

/// A connection to 127.0.0.1:`port`, or to $HTTP_PROXY.
fn to_proxy(port: Option<u64>) -> Result<std::net::TcpStream, String> {
    let proxy = match port {
        Some(port) => format!("127.0.0.1:{port}"),
        None => match std::env::var("HTTP_PROXY") {
            Ok(p) => p.trim_start_matches("http://").trim_end_matches('/').into(),
            Err(_) => return Err("error: no HTTP_PROXY".into()),
        },
    };
    std::net::TcpStream::connect(&proxy)
        .map_err(|e| format!("error: connecting to the proxy {proxy}: {e}"))
}

/// Connections [`hold_via_proxy`] keeps open until the process ends.
static HELD: std::sync::Mutex<Vec<std::net::TcpStream>> = std::sync::Mutex::new(Vec::new());

fn hold_via_proxy(url: &str, count: u64, body: &str) -> String {
    use std::io::Read;
    for _ in 0..count {
        let mut stream = match to_proxy(None) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let head = format!("CONNECT {url} HTTP/1.1\r\nHost: {url}\r\n\r\n");
        let mut answer = [0u8; 39];
        let answered = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.read_exact(&mut answer))
            .and_then(|()| stream.write_all(body.as_bytes()));
        if let Err(e) = answered {
            return format!("error: {e}");
        }
        if !answer.starts_with(b"HTTP/1.1 200") {
            return format!("error: {}", String::from_utf8_lossy(&answer));
        }
        HELD.lock().unwrap_or_else(|p| p.into_inner()).push(stream);
    }
    format!(
        "held {}",
        HELD.lock().unwrap_or_else(|p| p.into_inner()).len()
    )
}

fn via_proxy(method: &str, url: &str, to: &Proxied<'_>) -> String {
    let mut stream = match to_proxy(to.proxy) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let request = if method.eq_ignore_ascii_case("CONNECT") {
        format!("CONNECT {url} HTTP/1.1\r\nHost: {url}\r\n\r\n{}", to.body)
    } else {
        let host = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        format!(
            "{method} {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n{}",
            to.body
        )
    };
    exchange(&mut stream, request.as_bytes()).unwrap_or_else(|e| format!("error: {e}"))
}

/// [`via_proxy`] from a process of its own: this program run again as
/// `--via-proxy` (`child`), or run by such a child that exits at once
/// (`orphan`: the supervisor adopts it); what it printed.
fn via_spawned(how: &str, method: &str, url: &str, to: &Proxied<'_>) -> String {
    let flag = match how {
        "child" => "--via-proxy",
        "orphan" => "--via-proxy-orphan",
        "hidden" => "--via-proxy-hidden",
        other => return format!("error: spawn wants child, orphan or hidden, not `{other}`"),
    };
    let proxy = to.proxy.map(|p| p.to_string()).unwrap_or_default();
    // The orphan holds stdout: output() reads until it has exited too.
    match std::process::Command::new("/proc/self/exe")
        .args([flag, method, url, &proxy, to.body])
        .stderr(std::process::Stdio::inherit())
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("error: spawning: {e}"),
    }
}

/// `--via-proxy METHOD URL PROXY BODY` (PROXY empty: $HTTP_PROXY): print
/// what came back. `--via-proxy-orphan`: the same from a child of this
/// process, once this process has exited. `--via-proxy-hidden`: the same,
/// non-dumpable (its /proc/PID/fd unreadable to others).
fn spawned(flag: &str, args: &[String]) -> ExitCode {
    let [method, url, proxy, body] = args else {
        eprintln!("hostile-server: {flag} wants METHOD URL PROXY BODY");
        return ExitCode::from(2);
    };
    if flag == "--via-proxy-orphan" {
        let spawned = std::process::Command::new("/proc/self/exe")
            .arg("--via-proxy")
            .args(args)
            .arg(std::process::id().to_string())
            .spawn();
        return match spawned {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                println!("error: spawning: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if flag == "--via-proxy-hidden" {
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    }
    let to = Proxied {
        proxy: proxy.parse().ok(),
        body,
    };
    print!("{}", via_proxy(method, url, &to));
    ExitCode::SUCCESS
}

/// Wait (up to 5 s) until process `parent` is no longer this one's parent.
fn orphaned(parent: &str) {
    let parent: u32 = parent.parse().unwrap_or(0);
    for _ in 0..500 {
        if std::os::unix::process::parent_id() != parent {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tcp_bench(to: &str, mib: u64, connects: u64) -> String {
    use std::io::Read;
    let mut setup = Vec::new();
    for _ in 0..connects {
        let began = std::time::Instant::now();
        let echoed = std::net::TcpStream::connect(to).and_then(|mut s| {
            s.set_nodelay(true)?;
            s.write_all(b"x")?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)
        });
        if let Err(e) = echoed {
            return format!("error: {to}: {e}");
        }
        setup.push(began.elapsed().as_micros() as u64);
    }
    setup.sort_unstable();
    let at = |q: f64| {
        setup
            .get(((setup.len() as f64 * q) as usize).min(setup.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let bytes = mib * 1024 * 1024;
    let began = std::time::Instant::now();
    let stream = match std::net::TcpStream::connect(to) {
        Ok(s) => s,
        Err(e) => return format!("error: {to}: {e}"),
    };
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => return format!("error: {e}"),
    };
    let sent = std::thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if writer.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let mut reader = stream;
    let mut got = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while got < bytes {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n as u64,
        }
    }
    let _ = sent.join();
    let secs = began.elapsed().as_secs_f64();
    format!(
        "{{\"connect_p50_us\":{},\"connect_p90_us\":{},\"echoed_bytes\":{got},\"mib_per_s\":{:.1}}}",
        at(0.5),
        at(0.9),
        got as f64 / 1048576.0 / secs
    )
}

fn tcp_exchange(to: &str, text: &str) -> String {
    use std::net::ToSocketAddrs;
    let addresses = match to.to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => return format!("error: resolving {to}: {e}"),
    };
    let Some(address) = addresses.first() else {
        return format!("error: {to} resolves to nothing");
    };
    match std::net::TcpStream::connect_timeout(address, Duration::from_secs(2)) {
        Ok(mut stream) => {
            exchange(&mut stream, text.as_bytes()).unwrap_or_else(|e| format!("error: {e}"))
        }
        Err(e) => format!("error: connecting to {to}: {e}"),
    }
}

/// What a server that turned hostile can do to its session's supervisor
/// (PID 1, same uid): one `name: ok|refused (why)` per attempt.
fn attack_supervisor() -> String {
    let outcome = |name: &str, result: io::Result<()>| match result {
        Ok(()) => format!("{name}: ok"),
        Err(e) => format!("{name}: refused ({e})"),
    };
    let write_to = |fd: &str| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/1/fd/{fd}"))
            .and_then(|mut f| f.write_all(b"\x00\x00\x00\x00 not yamux, from a server\n"))
    };
    // The session stream is PID 1's descriptor 3; it must not be this one's.
    let inherited = if std::fs::metadata("/proc/self/fd/3").is_ok() {
        Ok(())
    } else {
        Err(io::Error::other("not inherited"))
    };
    // Nothing of the supervisor's beyond stdio: a copy of the session stream
    // (on a remote engine, the supervisor's own stdin and stdout) would let
    // this server write into it.
    let extra_fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| {
                    let fd: u32 = e.file_name().to_str()?.parse().ok()?;
                    let target = std::fs::read_link(e.path()).ok()?;
                    // Not the listing's own directory descriptor.
                    (fd > 2 && !target.starts_with("/proc"))
                        .then(|| format!("{fd} -> {}", target.display()))
                })
                .collect()
        })
        .unwrap_or_default();
    let read_mem = std::fs::File::open("/proc/1/mem").map(drop);
    let read_env = std::fs::read("/proc/1/environ").map(drop);
    let kill = |signal| {
        if unsafe { libc::kill(1, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    [
        outcome("write /proc/1/fd/0", write_to("0")),
        outcome("write /proc/1/fd/1", write_to("1")),
        outcome("write /proc/1/fd/3", write_to("3")),
        outcome("own fd 3", inherited),
        outcome("open /proc/1/mem", read_mem),
        outcome("read /proc/1/environ", read_env),
        outcome("SIGKILL pid 1", kill(libc::SIGKILL)),
        format!(
            "extra fds: {}",
            if extra_fds.is_empty() {
                "none".to_string()
            } else {
                extra_fds.join(", ")
            }
        ),
    ]
    .join("; ")
}

fn run(flags: Flags) -> io::Result<()> {
    if let Some(banner) = &flags.banner {
        let mut out = io::stdout().lock();
        out.write_all(banner.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    if flags.stderr_at_start > 0 {
        let mut err = io::stderr().lock();
        repeat(&mut err, b'y', flags.stderr_at_start)?;
        err.flush()?;
    }
    let mut server = Server {
        flags,
        lists: 0,
        out: io::stdout(),
        asking: std::collections::HashMap::new(),
        questions: 0,
        states: std::collections::HashMap::new(),
        listens: std::collections::BTreeMap::new(),
        listen_attempts: 0,
        tasks: std::collections::BTreeMap::new(),
    };
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        server.line(&line)?;
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let first = args.first().map(String::as_str);
    if let Some(flag @ ("--via-proxy" | "--via-proxy-orphan" | "--via-proxy-hidden")) = first {
        if let Some(parent) = args.get(5) {
            orphaned(parent);
        }
        return spawned(flag, &args[1..args.len().min(5)]);
    }
    let flags = match Flags::parse(args.into_iter()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("hostile-server: {e}");
            return ExitCode::from(2);
        }
    };
    match run(flags) {
        Ok(()) => ExitCode::SUCCESS,
        // The client went away mid-write: nothing left to say to it.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostile-server: {e}");
            ExitCode::FAILURE
        }
    }
}
