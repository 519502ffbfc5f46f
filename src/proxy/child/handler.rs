//! The rmcp client side of a child's connection: what the child asks of
//! mcpod (elicitation, sampling, roots, passed to the agent a few at a
//! time) and what it tells (log messages, resource updates, list changes).

use super::*;

/// The rmcp client side of the child's connection.
pub(super) struct Handler {
    pub(super) shared: Arc<Shared>,
}

impl ClientHandler for Handler {
    /// Children may ask for what the agent can give (see `Upstream::may_ask`);
    /// whether it can is checked again per request.
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        let may = |ask| self.shared.upstream.may_ask(ask);
        capabilities.elicitation = may(Ask::Elicitation).then(ElicitationCapability::default);
        capabilities.sampling = may(Ask::Sampling).then(SamplingCapability::default);
        capabilities.roots = may(Ask::Roots).then(RootsCapabilities::default);
        ClientConfig::new(
            capabilities,
            Implementation::new("mcpod", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
        match self.ask(Ask::Elicitation, request).await? {
            ClientResult::ElicitResult(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let request = ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params));
        match self.ask(Ask::Sampling, request).await? {
            ClientResult::CreateMessageResult(result) => Ok(*result),
            other => Err(unexpected(other)),
        }
    }

    async fn list_roots(
        &self,
        _: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let request = ServerRequest::ListRootsRequest(ListRootsRequest::default());
        match self.ask(Ask::Roots, request).await? {
            ClientResult::ListRootsResult(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    /// Kept in the server's log, and passed to the agent under a logger
    /// that names the session and server.
    async fn on_logging_message(
        &self,
        mut params: LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        let shared = &self.shared;
        let logger = format!("{}/{}", shared.session, shared.name);
        params.logger = Some(match params.logger.take() {
            Some(own) => format!("{logger}/{own}"),
            None => logger,
        });
        let line = serde_json::to_string(&params.data).unwrap_or_default();
        shared
            .log
            .push(&format!("mcp log {:?}: {line}", params.level));
        shared.upstream.log(params).await;
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.shared.updated(&params.uri).await;
    }

    async fn on_prompt_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.shared.relist(context.peer);
    }

    async fn on_resource_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.shared.relist(context.peer);
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.shared.relist(context.peer);
    }
}

impl Handler {
    /// Pass a request of the child's to the agent.
    /// One more than [`MAX_ASKS`] waiting is refused at once: a child cannot
    /// pile questions on the agent's user, or requests in mcpod's memory.
    async fn ask(&self, ask: Ask, request: ServerRequest) -> Result<ClientResult, ErrorData> {
        let from = self.shared.from();
        let Ok(_waiting) = self.shared.asks.try_acquire() else {
            return Err(ErrorData::invalid_request(
                format!(
                    "{from}: already has {MAX_ASKS} requests waiting for mcpod's client, mcpod's limit per server; wait for an answer"
                ),
                None,
            ));
        };
        let inputs: Vec<Inputs> = self
            .shared
            .inputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        self.shared.upstream.ask(&from, ask, request, &inputs).await
    }
}

fn unexpected(result: ClientResult) -> ErrorData {
    ErrorData::internal_error(
        format!("mcpod's client answered with an unexpected result: {result:?}"),
        None,
    )
}
