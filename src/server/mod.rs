//! The MCP stdio server: translation between MCP requests and the library.
//! No container logic lives here.

// Logging is deprecated by 2026-07-28, and still offered and forwarded.
#![allow(deprecated)]

mod admin;
mod audited;
pub mod auth;
mod calls;
mod fast;
mod http;
mod kept;
pub mod listen;
mod mrtr;
pub mod oauth;
pub mod portable;
mod profiled;
mod progress;
mod revoke;
mod stdio;
mod surface;
mod tasks;
pub mod tools;
mod traced;

pub use http::{HttpOptions, serve_http};
pub use stdio::serve_stdio;

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
    CompleteRequestParams, CompleteResult, Extensions, GetPromptRequestParams, GetPromptResponse,
    GetTaskParams, GetTaskResult, Implementation, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, RequestMetaObject, ResultType,
    ServerCapabilities, ServerConfig, SetLevelRequestParams, SubscribeRequestParams,
    SubscriptionFilter, Tool, UnsubscribeRequestParams, UpdateTaskParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, Json, Peer, RoleServer, ServerHandler, tool, tool_router};
use tokio_util::sync::CancellationToken;

use crate::image::{self, Built, Inspected};
use crate::provision::{self, ProvisionRequest, Provisioned};
use crate::proxy::Relay;
use crate::session::{LaunchInput, Launched, Logs, LogsInput, PolicyReport, Sessions};
use crate::workspace::Workspace;
use progress::{forward_progress, progress_messages};
use tools::{
    BaseList, BuildImageInput, CallToolInput, FindToolsInput, FoundTools, InspectLabelsInput,
    ListSessionsInput, SessionList, StopSessionInput, Stopped,
};

/// The protocol versions mcpod speaks.
pub const PROTOCOL_VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

const INSTRUCTIONS: &str = "mcpod builds container images that carry MCP servers \
(build_image, content-addressed: a repeat build is a cache hit), reads the MCP servers an \
image declares in its labels (inspect_labels), and launches an image as a hardened session \
(launch_session) whose servers' tools then appear here as `<session>_<server>__<tool>`; \
call_tool reaches them too. Stop sessions with stop_session. Paths are relative to the \
workspace root the operator gave mcpod.";

/// Resources one `subscriptions/listen` stream may subscribe to.
pub const MAX_LISTEN_RESOURCES: usize = 64;

/// A whole list (tools, prompts, resources, templates) that changes with
/// sessions: never cached by a 2026-07-28 client.
macro_rules! uncached {
    ($list:ty, $items:expr, $context:expr) => {{
        let mut result = <$list>::with_all_items($items);
        if $context
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
        {
            result.ttl_ms = Some(0);
            result.cache_scope = Some(CacheScope::Private);
        }
        result.result_type = Some(ResultType::COMPLETE);
        Ok(result)
    }};
}

#[derive(Clone)]
pub struct McpodServer {
    workspace: Arc<Workspace>,
    sessions: Arc<Sessions>,
    tool_router: ToolRouter<Self>,
    tasks: Arc<tasks::Tasks>,
    mrtr: Arc<mrtr::Mrtr>,
    /// Proxied calls that pass through as bytes.
    fast: Arc<fast::Agent>,
    audit: Option<Arc<crate::logging::audit::AuditLog>>,
    /// Where progress of this conversation's requests goes once handed to
    /// a task or a retry, by progress token: one per MCP session over HTTP
    /// ([`McpodServer::for_conversation`]), so one client's tokens never
    /// route another's progress.
    handed: Arc<progress::HandedOff>,
    /// Launches under way per principal (`profiled.rs`).
    launching: Arc<profiled::Launching>,
}

fn text_error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

#[tool_router]
impl McpodServer {
    pub fn new(workspace: Workspace, sessions: Arc<Sessions>) -> Self {
        let tasks: Arc<tasks::Tasks> = Arc::default();
        let tool_router = Self::portable_router();
        let meta_tools = tool_router
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string());
        let handed: Arc<progress::HandedOff> = Arc::default();
        let mrtr = Arc::new(mrtr::Mrtr::new());
        let rounds = (mrtr.clone(), handed.clone());
        McpodServer {
            workspace: Arc::new(workspace),
            fast: Arc::new(fast::Agent::new(
                sessions.clone(),
                meta_tools.collect(),
                rounds,
            )),
            sessions,
            tool_router,
            mrtr,
            tasks,
            audit: None,
            handed,
            launching: Arc::default(),
        }
    }

    /// This server for one more conversation (an MCP session over HTTP):
    /// everything shared but its progress routes.
    pub(super) fn for_conversation(&self) -> Self {
        McpodServer {
            handed: Arc::default(),
            ..self.clone()
        }
    }

    /// The meta-tools with their schemas made portable (see
    /// [`portable::portable`]), as `tools/list` serves them.
    pub fn portable_router() -> ToolRouter<Self> {
        let mut router = Self::tool_router() + Self::admin_router();
        for route in router.map.values_mut() {
            let tool = &mut route.attr;
            let mut input = serde_json::Value::Object((*tool.input_schema).clone());
            portable::portable(&mut input);
            if let serde_json::Value::Object(input) = input {
                tool.input_schema = Arc::new(input);
            }
            if let Some(output) = &tool.output_schema {
                let mut output = serde_json::Value::Object((**output).clone());
                portable::portable(&mut output);
                if let serde_json::Value::Object(output) = output {
                    tool.output_schema = Some(Arc::new(output));
                }
            }
        }
        router
    }

    /// Build a container image with buildah behind a content-addressed cache.
    #[tool(
        description = "Build a container image with buildah behind a content-addressed cache. \
The tag is <name>:<16 hex of a blake3 key over the Containerfile, build args, labels, base image IDs \
and the build context (honouring .containerignore/.dockerignore)>, so a repeat build of unchanged \
inputs is a near-instant cache hit. `servers` declares MCP servers in the image's io.mcpod.servers \
label. Sends buildah's output as progress notifications when the request has a progress token; \
cancelling the request stops buildah and removes what it created.",
        annotations(
            title = "Build image",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn build_image(
        &self,
        Parameters(input): Parameters<BuildImageInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        cancel: CancellationToken,
    ) -> Result<Json<Built>, String> {
        self.sessions
            .policy()
            .check_build_args(&input.build_args)
            .map_err(text_error)?;
        let spec = input.into_spec(&self.workspace).map_err(text_error)?;
        let (progress, flush) = progress_messages(&meta, peer, &self.handed);
        let built = image::build_image(spec, progress, cancel).await;
        flush.done().await;
        if let Ok(built) = &built {
            self.sessions.remember_build(built);
        }
        built.map(Json).map_err(text_error)
    }

    /// Read an image's labels and the MCP servers they declare.
    #[tool(
        description = "Read the labels of a local image (podman) or, with `docker://REF`, of an image \
in a registry (skopeo), and return the MCP server configs they declare (io.mcpod.servers, or \
outrig's org.outrig.mcp), validated, with the session requests and any warnings.",
        annotations(
            title = "Inspect image labels",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn inspect_labels(
        &self,
        Parameters(input): Parameters<InspectLabelsInput>,
    ) -> Result<Json<Inspected>, String> {
        image::inspect_labels(&input.reference)
            .await
            .map(Json)
            .map_err(text_error)
    }

    /// Launch an image as a hardened session and start its MCP servers.
    #[tool(
        description = "Start an image as a hardened podman container (no network, all capabilities \
dropped, no-new-privileges, read-only root, pids/memory/cpu limits, a lease, never host root), start \
the MCP servers its labels declare inside it, and connect to them. Their tools then appear in this \
server's tool list as `<session>_<server>__<tool>` (also reachable with call_tool). Returns the \
session id, each server's status (with a one-line reason when it is not ready) and its tools with \
their input schemas, ready to call; the effective isolation, the `mcpServers` block for connecting \
directly, handshakes and exit codes are in list_sessions with `session`, stderr in session_logs. \
Mounts, network egress and env values are granted only within the operator's policy.",
        annotations(
            title = "Launch session",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn launch_session(
        &self,
        Parameters(input): Parameters<LaunchInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        cancel: CancellationToken,
        extensions: Extensions,
    ) -> Result<Json<Launched>, String> {
        let mut input = input;
        let _place = self.profiled(&mut input, &extensions)?;
        if let Some(request) = input.provision.take() {
            input.provision = Some(request.read_paths(&self.workspace).map_err(text_error)?);
        }
        let (progress, flush) = progress_messages(&meta, peer, &self.handed);
        let launched = self.sessions.launch(input, progress, cancel).await;
        flush.done().await;
        if let (Ok(info), Some(principal)) = (&launched, http::principal(&extensions)) {
            self.sessions.claim(&info.session, principal);
        }
        launched
            .map(|info| Json(self.sessions.launched(&info)))
            .map_err(text_error)
    }

    /// Provision a server from a package or a server.json.
    #[tool(
        description = "Build an image that runs an MCP server straight from a package: `npm:NAME@VERSION` \
(e.g. npm:@modelcontextprotocol/server-memory@2026.8.31) or `pypi:NAME==VERSION` (e.g. \
pypi:mcp-server-time==2026.10.19), or an MCP-registry `server_json`. A range or bare name is resolved \
once to an exact version. The package is resolved and fetched on the host (npm --ignore-scripts, pip \
wheels only) into a lock with integrity hashes, put on a base with its runtime (list_bases), and its \
program (package.json bin, console script) declared in the image's labels; `pins` pin dependencies \
(e.g. `mcp<2`). A repeat is a cache hit that runs no npm or pip. Returns the image tag for \
launch_session (which also takes the package reference directly).",
        annotations(
            title = "Provision a server from a package",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn provision_server(
        &self,
        Parameters(input): Parameters<ProvisionRequest>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        cancel: CancellationToken,
    ) -> Result<Json<Provisioned>, String> {
        let request = input.read_paths(&self.workspace).map_err(text_error)?;
        let (progress, flush) = progress_messages(&meta, peer, &self.handed);
        let policy = self.sessions.policy();
        let done = provision::provision(
            request,
            &policy.bases,
            &policy.system_packages,
            progress,
            cancel,
        )
        .await;
        flush.done().await;
        if let Ok(done) = &done {
            self.sessions.remember_build(&done.image);
        }
        done.map(Json).map_err(text_error)
    }

    #[tool(
        description = "The base images packages run on: for node (npm packages) and python (PyPI \
packages), the image, its runtime version and C library, and who provides it (made by mcpod once \
from node's official binaries on the npm registry, a Debian release's Python, the host's own runtime, \
or the operator's --base). `can_be_made` lists what provision_server's `runtime` may name (node \
majors, Python minors) and the default; listing makes nothing and asks no registry.",
        annotations(
            title = "List base images",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_bases(&self) -> Result<Json<BaseList>, String> {
        let bases = provision::bases::list(&self.sessions.policy().bases)
            .await
            .map_err(text_error)?;
        let can_be_made =
            provision::bases::makeable(false, tokio_util::sync::CancellationToken::new()).await;
        Ok(Json(BaseList { bases, can_be_made }))
    }

    #[tool(
        description = "The operator's effective policy: the host directories sessions may mount (and whether writably), whether network egress is allowed, the host variables `${NAME}` references, launch env and build args may use, the session limit, each session's default and ceiling resources and lease, the handshake and call deadlines, and the bounds mcpod holds every session to. What launch_session asks beyond it is refused.",
        annotations(
            title = "Show the operator's policy",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn show_policy(&self, extensions: Extensions) -> Json<PolicyReport> {
        let writable_mounts = self.sessions.writable_mounts().await;
        let profile = http::caller(&extensions).and_then(|c| c.profile.as_ref());
        match profile {
            Some(p) => Json(p.narrow(self.sessions.policy()).report(writable_mounts)),
            None => Json(self.sessions.policy().report(writable_mounts)),
        }
    }

    #[tool(
        description = "List this mcpod's sessions, a line each: its state (running, or ended once no server is left), image, engine, each server's state, its tool count and the seconds left of its lease. With `session`, that session's whole detail: isolation, the `mcpServers` block for connecting directly, each server's handshake, exit code, stderr tail and tools, what was provisioned, and every warning.",
        annotations(
            title = "List sessions",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_sessions(
        &self,
        Parameters(input): Parameters<ListSessionsInput>,
        extensions: Extensions,
    ) -> Result<Json<SessionList>, String> {
        let principal = http::viewer(&extensions);
        let pool = self.sessions.pooled();
        let mut sessions = self.sessions.lines();
        sessions.retain(|l| self.sessions.visible(&l.session, principal));
        let Some(id) = input.session else {
            return Ok(Json(SessionList {
                sessions,
                pool,
                detail: None,
            }));
        };
        self.sessions
            .check_visible(&id, principal)
            .map_err(text_error)?;
        let detail = self.sessions.detail(&id).map_err(text_error)?;
        Ok(Json(SessionList {
            sessions: sessions.into_iter().filter(|l| l.session == id).collect(),
            pool,
            detail: Some(Box::new(detail)),
        }))
    }

    #[tool(
        description = "Stop a session: each server's stdin is closed and it gets a second to exit, then its container is removed with whatever still runs in it, and its tools are withdrawn. Also forgets an ended session.",
        annotations(
            title = "Stop session",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn stop_session(
        &self,
        Parameters(input): Parameters<StopSessionInput>,
        extensions: Extensions,
    ) -> Result<Json<Stopped>, String> {
        self.sessions
            .check_visible(&input.session, http::viewer(&extensions))
            .map_err(text_error)?;
        self.sessions
            .stop(&input.session)
            .await
            .map_err(text_error)?;
        Ok(Json(Stopped {
            session: input.session,
            stopped: true,
        }))
    }

    #[tool(
        description = "The last lines each server of a session wrote to stderr (also readable as the resource mcpod://sessions/<id>/logs/<server>).",
        annotations(
            title = "Session logs",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn session_logs(
        &self,
        Parameters(input): Parameters<LogsInput>,
        extensions: Extensions,
    ) -> Result<Json<Logs>, String> {
        self.sessions
            .check_visible(&input.session, http::viewer(&extensions))
            .map_err(text_error)?;
        self.sessions.logs(&input).map(Json).map_err(text_error)
    }

    #[tool(
        description = "Find the tools of every session by what they do: ranks them by the words they share with the query in their name, their server's name, their description and their arguments (whole words, stems and word beginnings), best first, with the name to call and the input schema; when none shares a word, says so and names the nearest. For clients that do not refresh their tool list, and for sessions whose tools are left out of it.",
        annotations(
            title = "Find session tools",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn find_tools(
        &self,
        Parameters(input): Parameters<FindToolsInput>,
        extensions: Extensions,
    ) -> Result<Json<FoundTools>, String> {
        let limit = input.limit.map_or(20, |l| l.clamp(1, 100)) as usize;
        self.sessions
            .find_tools(&input.query, limit, http::principal(&extensions))
            .map(Json)
            .map_err(text_error)
    }

    #[tool(
        description = "Call a tool of a session's server by session, server and the tool's own name: the same as \
calling its exported `<session>_<server>__<tool>` name, for clients that do not refresh their tool list.",
        annotations(
            title = "Call a session tool",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn call_tool(
        &self,
        Parameters(input): Parameters<CallToolInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
        cancel: CancellationToken,
        extensions: Extensions,
    ) -> Result<CallToolResult, String> {
        self.sessions
            .check_visible(&input.session, http::principal(&extensions))
            .map_err(text_error)?;
        let (progress, flush) = forward_progress(&meta, peer, &self.handed);
        let result = self
            .sessions
            .call(
                &input.session,
                &input.server,
                &input.tool,
                input.arguments,
                Relay {
                    progress,
                    inputs: None,
                },
                cancel,
            )
            .await;
        flush.done().await;
        result
    }
}

impl ServerHandler for McpodServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .enable_completions()
                .enable_logging()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new("mcpod", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(PROTOCOL_VERSIONS)
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let span = self.span("tools/list", None, &context);
        span.answer(async {
            let mut tools = self.tool_router.list_all();
            if !self.sessions.policy().meta_tools_only {
                let room = crate::proxy::tools::MAX_LISTED.saturating_sub(tools.len());
                let principal = http::principal(&context.extensions);
                tools.extend(self.sessions.tools(room, principal));
            }
            uncached!(ListToolsResult, tools, context)
        })
        .await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tool_router.get(name).cloned()
    }

    /// A long call becomes a task for a client that declared the extension.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let span = self.call_span(&request, &context);
        span.answer(async {
            let declared = context
                .client_capabilities()
                .is_some_and(|c| c.supports_tasks());
            let eligible =
                tasks::eligible(&request.name, self.tool_router.has_route(&request.name));
            let (entry, ct) = (self.audit_call(&request, &context), context.ct.clone());
            let response = match declared && eligible {
                true => self.call_as_task(request, context).await,
                false => self.call_now(request, context).await,
            };
            self.audited(entry, &response, &ct);
            response
        })
        .await
    }

    /// Tasks answer only the principal that made them (see `tasks.rs`).
    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let span = self.span("tasks/get", None, &context);
        span.answer(async {
            let principal = http::principal(&context.extensions);
            let task = self.tasks.get(&request.task_id, principal)?;
            Ok(GetTaskResult::new(task))
        })
        .await
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let span = self.span("tasks/update", None, &context);
        span.answer(async {
            let principal = http::principal(&context.extensions);
            self.tasks.check(&request.task_id, principal)?;
            self.tasks
                .manager
                .update_task(&request.task_id, request.input_responses)
        })
        .await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let span = self.span("tasks/cancel", None, &context);
        span.answer(async {
            let principal = http::principal(&context.extensions);
            self.tasks.check(&request.task_id, principal)?;
            self.tasks.manager.cancel_task(&request.task_id)
        })
        .await
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let span = self.span("prompts/list", None, &context);
        span.answer(async {
            let prompts = self.sessions.prompts(http::principal(&context.extensions));
            uncached!(ListPromptsResult, prompts, context)
        })
        .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let span = self.span("prompts/get", Some(&request.name), &context);
        span.answer(async { self.prompt_of(request, context).await })
            .await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let span = self.span("completion/complete", None, &context);
        span.answer(async {
            let principal = http::principal(&context.extensions);
            self.sessions
                .complete(request, principal, context.ct.clone())
                .await
                .map_err(|e| ErrorData::invalid_params(e, None))
        })
        .await
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let span = self.span("logging/setLevel", None, &context);
        span.answer(async {
            let principal = http::principal(&context.extensions);
            self.sessions.set_level(request.level, principal).await;
            Ok(())
        })
        .await
    }

    /// 2025-11-25 clients; 2026-07-28 ones subscribe with `subscriptions/listen`.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let span = self.span("resources/subscribe", Some(&request.uri), &context);
        span.answer(async {
            let principal = http::principal(&context.extensions);
            self.sessions
                .subscribe_resource(&request.uri, true, principal)
                .await
                .map_err(|e| ErrorData::invalid_params(e, None))
        })
        .await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let span = self.span("resources/unsubscribe", Some(&request.uri), &context);
        span.answer(async {
            let principal = http::principal(&context.extensions);
            self.sessions
                .subscribe_resource(&request.uri, false, principal)
                .await
                .map_err(|e| ErrorData::invalid_params(e, None))
        })
        .await
    }

    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let span = self.span("resources/templates/list", None, &context);
        span.answer(async {
            let templates = self
                .sessions
                .templates(http::principal(&context.extensions));
            uncached!(ListResourceTemplatesResult, templates, context)
        })
        .await
    }

    /// mcpod's own (each server's stderr), then the sessions' servers'.
    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let span = self.span("resources/list", None, &context);
        span.answer(async {
            let resources = self.resources_of(http::principal(&context.extensions));
            uncached!(ListResourcesResult, resources, context)
        })
        .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let span = self.span("resources/read", Some(&request.uri), &context);
        span.answer(async { self.resource_of(request, context).await })
            .await
    }

    /// Clients of the initialize handshake get the list_changed
    /// notifications of their own sessions, and the children's requests,
    /// log messages and resource updates.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let (sessions, mut changes) = (self.sessions.clone(), self.sessions.subscribe());
        let peer = context.peer;
        if let Some(info) = peer.peer_info() {
            self.fast
                .connected(&info.protocol_version, &info.capabilities);
        }
        // Over HTTP each agent is one of many: children's requests are not
        // sent to whichever connected last (see `http.rs`).
        let who = http::principal(&context.extensions).map(str::to_string);
        if who.is_none() {
            self.sessions.upstream().connect(peer.clone());
        }
        tokio::spawn(async move {
            while sessions.next_change(&mut changes, who.as_deref()).await {
                if peer.notify_tool_list_changed().await.is_err()
                    || peer.notify_prompt_list_changed().await.is_err()
                    || peer.notify_resource_list_changed().await.is_err()
                {
                    break;
                }
            }
        });
    }

    /// 2026-07-28 clients listen for list changes with `subscriptions/listen`.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Each resource is subscribed at its server: at most so many per
        // stream; the acknowledgement names those honoured.
        let mut accepted = requested.clone();
        if let Some(uris) = accepted.resource_subscriptions.as_mut() {
            uris.truncate(MAX_LISTEN_RESOURCES);
        }
        Some(accepted)
    }

    /// List changes, and updates of the resources the filter names (see
    /// `surface.rs`).
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        self.listen_on(context).await
    }
}
