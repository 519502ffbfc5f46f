//! The MCP stdio server: translation between MCP requests and the library.
//! No container logic lives here.

pub mod tools;

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    Implementation, ProgressNotificationParam, ProtocolVersion, RequestMetaObject,
    ServerCapabilities, ServerConfig,
};
use rmcp::{Json, Peer, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use tokio_util::sync::CancellationToken;

use crate::image::{self, Built, Inspected, Progress};
use crate::workspace::Workspace;
use tools::{BuildImageInput, InspectLabelsInput};

/// The protocol versions mcpod speaks.
pub const PROTOCOL_VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

const INSTRUCTIONS: &str = "mcpod builds container images that carry MCP servers \
(build_image, content-addressed: a repeat build is a cache hit), reads the MCP server \
configs an image declares in its labels (inspect_labels). Paths are relative to the \
workspace root the operator gave mcpod.";

#[derive(Clone)]
pub struct McpodServer {
    workspace: Arc<Workspace>,
    tool_router: ToolRouter<Self>,
}

/// Serve MCP on stdin/stdout until the client goes away.
pub async fn serve_stdio(
    workspace: Workspace,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let running = McpodServer::new(workspace)
        .serve(rmcp::transport::io::stdio_pipes())
        .await?;
    running.waiting().await?;
    Ok(())
}

#[tool_router]
impl McpodServer {
    pub fn new(workspace: Workspace) -> Self {
        McpodServer {
            workspace: Arc::new(workspace),
            tool_router: Self::tool_router(),
        }
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
        let spec = input
            .into_spec(&self.workspace)
            .map_err(|e| e.to_string())?;
        let progress = progress_sender(meta, peer);
        image::build_image(spec, progress, cancel)
            .await
            .map(Json)
            .map_err(|e| e.to_string())
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
            .map_err(|e| e.to_string())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpodServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcpod", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(PROTOCOL_VERSIONS)
    }
}

/// Progress messages become `notifications/progress` when the caller sent a
/// progress token; without one they only go to the log.
fn progress_sender(meta: RequestMetaObject, peer: Peer<RoleServer>) -> Progress {
    let Some(token) = meta.get_progress_token() else {
        return Arc::new(|msg: String| tracing::debug!("{msg}"));
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut step = 0u32;
        while let Some(message) = rx.recv().await {
            step += 1;
            let param = ProgressNotificationParam::new(token.clone(), f64::from(step))
                .with_message(message);
            if peer.notify_progress(param).await.is_err() {
                break;
            }
        }
    });
    Arc::new(move |msg: String| {
        let _ = tx.send(msg);
    })
}
