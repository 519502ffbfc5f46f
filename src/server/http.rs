//! mcpod's HTTP face (`mcpod serve --listen ADDR`): MCP's Streamable HTTP
//! transport through rmcp's service, under HTTP/1.1 (hyper). Every request is
//! checked before rmcp sees it, in this order: its `Host` must name the
//! listen address (else 403: DNS rebinding), a browser `Origin` must be one
//! the operator allowed (else 403), and it must carry a bearer token of
//! `mcpod token create` (else 401 with `WWW-Authenticate: Bearer`). A refused
//! request starts nothing. The token's name is the request's principal
//! ([`auth::Principal`]): the sessions it launches are its own, and an MCP
//! session (`Mcp-Session-Id`) answers only the principal that opened it.
//! Revoking a token stops its sessions and closes its MCP sessions within
//! [`REVOCATION_CHECK`] (`revoke.rs`).
//!
//! Bounds, each answered: connections at once ([`HttpOptions::max_connections`],
//! 503), request head bytes and header count (hyper, 431), a body
//! ([`MAX_BODY`], rmcp, 413), time to send the head (10 s), MCP sessions per
//! principal ([`MAX_MCP_SESSIONS`], 429). No TLS: beyond loopback, TLS is a
//! proxy's job in front (`--listen-public`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rmcp::model::Extensions;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::McpodServer;
use super::auth::{Principal, TOKEN_PREFIX, Tokens, bearer};
use super::listen::{ListenAddr, Listener, Stream};
use super::oauth::{Denied, OAuth, OAuthOptions};
use super::revoke::{REVOCATION_CHECK, Revocations};
use super::stdio::{finish, start};
use crate::logging::audit::AuditLog;
use crate::session::policy::profile::LiveProfiles;
use crate::session::{Policy, Sessions};
use crate::workspace::Workspace;

/// The path MCP is served on.
pub const MCP_PATH: &str = "/mcp";
/// Bytes of a request body (a JSON-RPC message).
pub const MAX_BODY: usize = 4 << 20;
/// Bytes of a request's line and headers together.
pub const MAX_HEAD: usize = 64 << 10;
/// Headers of one request.
pub const MAX_HEADERS: usize = 64;
/// MCP sessions (`Mcp-Session-Id`) one principal may hold at once.
pub const MAX_MCP_SESSIONS: usize = 64;
/// Time a client has to send a request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

pub type Body = BoxBody<Bytes, Infallible>;

/// How `serve --listen` listens.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub listen: ListenAddr,
    /// Host names (with or without port) clients may use besides the
    /// address itself (and `localhost` for a loopback address).
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed (`scheme://host:port`); none by default.
    pub allowed_origins: Vec<String>,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    pub tokens: Tokens,
    /// Accept JWT access tokens of an OAuth issuer too (`--oauth-issuer`).
    pub oauth: Option<OAuthOptions>,
    /// The policy per principal (`--principals`), read again on SIGHUP.
    pub profiles: Arc<LiveProfiles>,
    /// Stop a principal's sessions once it has sent no request for this
    /// long (`--idle-timeout`); none: they live out their lease.
    pub idle: Option<Duration>,
}

/// The principal of a request served over HTTP; `None` for stdio.
pub(super) fn caller(extensions: &Extensions) -> Option<&Principal> {
    let parts = extensions.get::<http::request::Parts>()?;
    parts.extensions.get::<Principal>()
}

/// The name of a request's principal, what owns what it launches; `None`
/// for stdio.
pub(super) fn principal(extensions: &Extensions) -> Option<&str> {
    caller(extensions).map(|p| p.name.as_str())
}

/// Whose sessions a request may list and stop: `None` (all) for stdio and
/// for an admin, else its principal's.
pub(super) fn viewer(extensions: &Extensions) -> Option<&str> {
    caller(extensions)
        .filter(|p| !p.admin)
        .map(|p| p.name.as_str())
}

/// What every request is checked against, and where it then goes.
struct Gate {
    mcp: StreamableHttpService<McpodServer, LocalSessionManager>,
    sessions_of_http: Arc<LocalSessionManager>,
    hosts: Vec<String>,
    origins: Vec<String>,
    tokens: Tokens,
    oauth: Option<OAuth>,
    profiles: Arc<LiveProfiles>,
    /// When each principal last sent a request.
    seen: Mutex<HashMap<String, std::time::Instant>>,
    idle: Option<Duration>,
    /// The principal that opened each MCP session.
    owners: Mutex<HashMap<String, Principal>>,
}

/// Serve MCP over HTTP until a signal arrives, then remove every container
/// this process started.
pub async fn serve_http(
    workspace: Workspace,
    policy: Policy,
    options: HttpOptions,
    audit: Arc<AuditLog>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listener = Listener::bind(&options.listen).await?;
    let bound = listener.bound()?;
    let resource = match &bound {
        ListenAddr::Tcp(addr) => format!("http://{addr}{MCP_PATH}"),
        ListenAddr::Unix(_) => format!("http://localhost{MCP_PATH}"),
    };
    let oauth = match &options.oauth {
        Some(o) => Some(OAuth::start(o, &resource).await?),
        None => None,
    };
    let sessions = start(policy)?;
    let server = McpodServer::new(workspace, sessions.clone()).with_audit(audit);
    let stopping = CancellationToken::new();
    let hosts = allowed_hosts(&bound, &options.allowed_hosts);
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts.clone())
        .with_allowed_origins(options.allowed_origins.clone())
        .enforce_origin_validation()
        .with_max_request_body_bytes(MAX_BODY)
        .with_cancellation_token(stopping.child_token());
    let sessions_of_http = Arc::new(LocalSessionManager::default());
    let gate = Arc::new(Gate {
        mcp: StreamableHttpService::new(
            move || Ok(server.for_conversation()),
            sessions_of_http.clone(),
            config,
        ),
        sessions_of_http,
        hosts,
        origins: options.allowed_origins.clone(),
        tokens: options.tokens.clone(),
        oauth,
        profiles: options.profiles.clone(),
        seen: Mutex::new(HashMap::new()),
        idle: options.idle,
        owners: Mutex::new(HashMap::new()),
    });
    tokio::spawn(end_revoked(
        gate.clone(),
        sessions.clone(),
        stopping.child_token(),
    ));
    // The line tests and scripts read the port from.
    tracing::info!(
        "mcpod {} serving MCP over HTTP on {} (tokens in {})",
        env!("CARGO_PKG_VERSION"),
        match &bound {
            ListenAddr::Tcp(_) => resource.clone(),
            ListenAddr::Unix(path) => format!("unix:{} ({resource})", path.display()),
        },
        options.tokens.path().display()
    );
    let connections = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accepting a connection on {bound}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: stopping"); break; }
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = hup.recv() => {
                match gate.profiles.reload() {
                    Ok(said) => tracing::info!("SIGHUP: read again: {said}"),
                    Err(why) => tracing::warn!("SIGHUP: the principals file in effect stays: {why}"),
                }
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tokio::spawn(too_many(stream, options.max_connections));
            continue;
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            gate.clone(),
            stopping.clone(),
            permit,
        ));
    }
    stopping.cancel();
    finish(&sessions).await;
    Ok(())
}

/// Serve one connection's requests through `gate` until it closes, or
/// until `stopping`, when it finishes what is under way.
async fn serve_connection(
    stream: Box<dyn Stream>,
    peer: String,
    gate: Arc<Gate>,
    stopping: CancellationToken,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |request| {
        let gate = gate.clone();
        async move { Ok::<_, Infallible>(gate.answer(request).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        _ = stopping.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        tracing::debug!("connection from {peer}: {e}");
    }
    drop(permit);
}

/// Every [`REVOCATION_CHECK`], stop the sessions and close the MCP sessions
/// of each principal whose token was revoked (see `revoke.rs`), and the
/// sessions of each principal idle past `--idle-timeout`.
async fn end_revoked(gate: Arc<Gate>, sessions: Arc<Sessions>, stopping: CancellationToken) {
    let mut revocations = Revocations::new(gate.tokens.clone());
    let mut every = tokio::time::interval(REVOCATION_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopping.cancelled() => return,
        }
        if let Some(idle) = gate.idle {
            end_idle(&gate, &sessions, idle).await;
        }
        let Some(gone) = revocations.check() else {
            continue;
        };
        for (session, owner) in sessions.owned() {
            if !gone.ends(&owner) {
                continue;
            }
            match sessions.stop(&session).await {
                Ok(()) => tracing::info!(
                    "stopped session {session}: the token `{owner}` that launched it was revoked"
                ),
                Err(e) => tracing::warn!(
                    "could not stop session {session} of revoked token `{owner}`: {e}"
                ),
            }
        }
        let closing: Vec<String> = {
            let owners = gate.owners.lock().unwrap_or_else(|p| p.into_inner());
            owners
                .iter()
                .filter(|(_, owner)| gone.ends(&owner.name))
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in closing {
            gate.owners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let _ = gate.sessions_of_http.close_session(&id.into()).await;
        }
    }
}

/// Stop the sessions of every principal that has sent no request for
/// `idle`; forget principals that have been idle that long and own none.
async fn end_idle(gate: &Gate, sessions: &Sessions, idle: Duration) {
    let owned = sessions.owned();
    let idle_ones: Vec<String> = {
        let mut seen = gate.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|who, at| at.elapsed() < idle || owned.iter().any(|(_, o)| o == who));
        seen.iter()
            .filter(|(_, at)| at.elapsed() >= idle)
            .map(|(who, _)| who.clone())
            .collect()
    };
    for (session, owner) in owned {
        if !idle_ones.contains(&owner) {
            continue;
        }
        match sessions.stop(&session).await {
            Ok(()) => tracing::info!(
                "stopped session {session}: `{owner}` sent no request for {}s (--idle-timeout)",
                idle.as_secs()
            ),
            Err(e) => tracing::warn!("could not stop idle session {session} of `{owner}`: {e}"),
        }
    }
}

impl Gate {
    async fn answer(&self, mut request: Request<Incoming>) -> Response<Body> {
        if let Some(oauth) = &self.oauth
            && OAuth::is_metadata(request.uri().path())
        {
            return match self.check_host_and_origin(request.headers()) {
                Ok(()) => json(oauth.metadata()),
                Err(refused) => refused,
            };
        }
        if request.uri().path() != MCP_PATH {
            return refuse(
                StatusCode::NOT_FOUND,
                &format!("MCP is served on {MCP_PATH}"),
            );
        }
        if let Err(refused) = self.check_host_and_origin(request.headers()) {
            return refused;
        }
        let mut principal = match self.authenticate(request.headers()).await {
            Ok(principal) => principal,
            Err(refused) => return refused,
        };
        principal.profile = self
            .profiles
            .get()
            .of(&principal.name, &principal.scopes)
            .map(Arc::new);
        // Kept only for --idle-timeout, whose sweep also forgets them: an
        // issuer's subjects are not bounded by the token file.
        if self.idle.is_some() {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(principal.name.clone(), std::time::Instant::now());
        }
        let session = request
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(id) = &session {
            let owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
            if owners
                .get(id)
                .is_some_and(|owner| owner.name != principal.name)
            {
                // Another principal's session is one that does not exist.
                return refuse(StatusCode::NOT_FOUND, "Not Found: no such MCP session");
            }
        } else if self.mcp_sessions_of(&principal).await >= MAX_MCP_SESSIONS {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "token `{}` holds {MAX_MCP_SESSIONS} MCP sessions, the most one token may; \
                     close one (HTTP DELETE with its Mcp-Session-Id) or wait for it to idle out",
                    principal.name
                ),
            );
        }
        request.extensions_mut().insert(principal.clone());
        let deleting = request.method() == http::Method::DELETE;
        let mut response = self.mcp.handle(request).await;
        // rmcp answers a session's DELETE with 202; clients expect 200 or
        // 204 (the Python SDK logs any other as a failed termination).
        if deleting && response.status() == StatusCode::ACCEPTED {
            *response.status_mut() = StatusCode::OK;
        }
        if session.is_none()
            && let Some(id) = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
        {
            let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
            owners.insert(id.to_string(), principal);
        }
        response
    }

    /// How many live MCP sessions `principal` opened; the owners of closed
    /// ones are forgotten meanwhile.
    async fn mcp_sessions_of(&self, principal: &Principal) -> usize {
        let live: Vec<String> = self
            .sessions_of_http
            .sessions
            .read()
            .await
            .keys()
            .map(|k| k.to_string())
            .collect();
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.retain(|id, _| live.contains(id));
        owners.values().filter(|p| p.name == principal.name).count()
    }

    fn check_host_and_origin(&self, headers: &HeaderMap) -> Result<(), Response<Body>> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let (Some(host), None) = (hosts.next(), hosts.next()) else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Bad Request: a request needs exactly one Host header",
            ));
        };
        let host = host.to_str().unwrap_or("").to_ascii_lowercase();
        if !self.hosts.contains(&host) {
            tracing::warn!(
                "refused a request for Host `{}`: not this server's (DNS rebinding?)",
                host.escape_debug()
            );
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "Forbidden: the Host header does not name this server; use the address mcpod \
                 listens on, or let the operator add the name with --allow-host",
            ));
        }
        for origin in headers.get_all(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
            if !self.origins.iter().any(|o| o.eq_ignore_ascii_case(&origin)) {
                tracing::warn!(
                    "refused a request from browser origin `{}`: not allowed",
                    origin.escape_debug()
                );
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    "Forbidden: requests from this browser origin are not allowed; the operator \
                     may allow it with --allow-origin",
                ));
            }
        }
        Ok(())
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Response<Body>> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let token = match (values.next(), values.next()) {
            (None, _) => return Err(self.unauthorized(None)),
            (Some(value), None) => bearer(value.as_bytes()),
            (Some(_), Some(_)) => None,
        };
        let Some(token) = token else {
            return Err(
                self.unauthorized(Some("the Authorization header is not one `Bearer <token>`"))
            );
        };
        if let Some(oauth) = &self.oauth
            && !token.starts_with(TOKEN_PREFIX)
        {
            return oauth
                .authenticate(token)
                .await
                .map_err(|denied| self.denied(oauth, denied));
        }
        match self.tokens.verify(token) {
            Ok(Some(principal)) => Ok(principal),
            Ok(None) => Err(self.unauthorized(Some("the token is not valid (or was revoked)"))),
            Err(e) => {
                tracing::error!("checking a bearer token: {e}");
                Err(refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "mcpod could not read its token file; see its log",
                ))
            }
        }
    }

    /// A 401 with the challenge that tells a client how to get a token.
    fn unauthorized(&self, error: Option<&str>) -> Response<Body> {
        let why = match (error, &self.oauth) {
            (Some(why), _) => format!(
                "Unauthorized: {why}; ask the operator for a token (`mcpod token create NAME`)"
            ),
            (None, Some(oauth)) => format!(
                "Unauthorized: send `Authorization: Bearer <token>`: an access token of the \
                 issuer that {} names, or a token of `mcpod token create NAME`",
                oauth.metadata_url()
            ),
            (None, None) => "Unauthorized: send `Authorization: Bearer <token>`; the operator \
                             makes one with `mcpod token create NAME`"
                .to_string(),
        };
        let challenge = match (&self.oauth, error) {
            (Some(oauth), Some(why)) => oauth.challenge(Some(&Denied::Invalid(why.into()))),
            (Some(oauth), None) => oauth.challenge(None),
            (None, Some(_)) => r#"Bearer realm="mcpod", error="invalid_token""#.to_string(),
            (None, None) => r#"Bearer realm="mcpod""#.to_string(),
        };
        challenged(StatusCode::UNAUTHORIZED, &why, &challenge)
    }

    /// The answer to an access token that was not accepted.
    fn denied(&self, oauth: &OAuth, denied: Denied) -> Response<Body> {
        let challenge = oauth.challenge(Some(&denied));
        match denied {
            Denied::Invalid(why) => {
                tracing::info!("refused an access token: {why}");
                challenged(
                    StatusCode::UNAUTHORIZED,
                    &format!("Unauthorized: the access token is not accepted: {why}"),
                    &challenge,
                )
            }
            Denied::Scope(missing) => challenged(
                StatusCode::FORBIDDEN,
                &format!(
                    "Forbidden: the access token lacks the scope(s) {}; ask the issuer for a \
                     token with them",
                    missing.join(" ")
                ),
                &challenge,
            ),
            Denied::Unavailable(why) => {
                tracing::warn!("could not check an access token: {why}");
                refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "mcpod cannot check access tokens now: it has no key set of the issuer; \
                     retry later (the operator sees why in mcpod's log)",
                )
            }
        }
    }
}

/// The `Host` values that name this server: the bound address, and for a
/// loopback address `localhost` with its port (for a unix socket,
/// `localhost`); plus the operator's names.
fn allowed_hosts(bound: &ListenAddr, extra: &[String]) -> Vec<String> {
    let (mut hosts, port) = match bound {
        ListenAddr::Tcp(addr) if addr.ip().is_loopback() => (
            vec![addr.to_string(), format!("localhost:{}", addr.port())],
            Some(addr.port()),
        ),
        ListenAddr::Tcp(addr) => (vec![addr.to_string()], Some(addr.port())),
        ListenAddr::Unix(_) => (vec!["localhost".to_string()], None),
    };
    for h in extra {
        let h = h.to_ascii_lowercase();
        match port {
            Some(port) if !h.contains(':') || h.ends_with(']') => hosts.push(format!("{h}:{port}")),
            _ => hosts.push(h),
        }
    }
    hosts
}

fn refuse(status: StatusCode, why: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{why}\n"))).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn challenged(status: StatusCode, why: &str, challenge: &str) -> Response<Body> {
    let mut response = refuse(status, why);
    if let Ok(value) = header::HeaderValue::from_str(challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn json(text: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text)).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A connection beyond the limit: answered, then closed.
async fn too_many(mut stream: Box<dyn Stream>, limit: usize) {
    let body = format!(
        "mcpod serves at most {limit} connections at once; retry later, or let the operator raise --max-connections\n"
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}
