//! The command line: `mcpod serve` (the default) speaks MCP over stdio; the
//! other subcommands mirror the MCP tools for humans and scripts.

mod config;
mod doctor;
mod image;
mod output;
mod pod;
mod policy;
mod provision;
mod session;
mod token;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mcpod::logging::audit;
use mcpod::session::policy::profile::LiveProfiles;
use mcpod::workspace::Workspace;
use mcpod::{schema, server, telemetry};

use output::print;
use policy::PolicyArgs;

#[derive(Parser)]
#[command(
    name = "mcpod",
    version,
    about = "Build, inspect and launch isolated MCP-server containers for an agent"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Speak MCP over stdio (the default with no subcommand), or over Streamable HTTP with --listen.
    Serve(Box<ServeArgs>),
    /// Create, list and revoke the bearer tokens of `serve --listen`.
    Token(token::TokenArgs),
    /// Build an image behind the content-addressed cache (the build_image tool).
    Build(image::BuildArgs),
    /// Read an image's labels and the MCP servers they declare (the inspect_labels tool).
    Inspect(image::InspectArgs),
    /// Build an image for an npm or PyPI package or a server.json (the provision_server tool).
    Provision(Box<provision::ProvisionCommand>),
    /// List the base images packages run on (the list_bases tool), or --remake one.
    Bases(provision::BasesCommand),
    /// Launch an image as a session, list its tools, optionally call one, then stop it.
    Launch(Box<session::LaunchArgs>),
    /// Print the Kubernetes Pod (restricted Pod Security Standard) a launch would be, with its NetworkPolicy.
    Pod(Box<pod::PodArgs>),
    /// List the session containers on this host (of every mcpod process).
    Sessions(session::SessionsArgs),
    /// Stop session containers by session id (of any mcpod process).
    Stop(session::StopArgs),
    /// Connect stdio to a server of a running session (what a session's client_config runs).
    Connect(session::ConnectArgs),
    /// Remove orphaned session containers, old cache tags and leftover temporary tags.
    Gc(session::GcArgs),
    /// Print (or --write) the entry that registers mcpod with an MCP client.
    Config(config::ConfigArgs),
    /// Check podman, buildah and skopeo on this host, and say how to fix what is wrong.
    Doctor(doctor::DoctorArgs),
    /// Print the JSON Schemas of the labels and tools, or write them into a directory.
    Schema(SchemaArgs),
}

#[derive(Args, Default)]
pub struct ServeArgs {
    /// The workspace root: paths from the agent resolve inside it.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Rotate the audit log ($MCPOD_STATE_DIR/audit.jsonl, one JSON line per request, argument
    /// names and sizes but never values) when it reaches N MiB; the one before is kept as
    /// audit.jsonl.1. Default 16.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    audit_max_mb: Option<u32>,
    /// Export OpenTelemetry traces over OTLP/HTTP (JSON) to the collector at URL (e.g.
    /// http://127.0.0.1:4318; /v1/traces is appended). Without it, OTEL_EXPORTER_OTLP_ENDPOINT
    /// or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT turn tracing on; with none, it is off.
    #[arg(long, value_name = "URL")]
    otlp: Option<String>,
}

/// `serve --listen`: MCP over Streamable HTTP instead of stdio.
#[derive(Args, Default)]
pub struct HttpArgs {
    /// Serve MCP over Streamable HTTP on ADDR (http://ADDR/mcp) instead of stdio; every request
    /// needs `Authorization: Bearer <token>` of `mcpod token create`. Port 0 picks a free port
    /// (the log line `serving MCP over HTTP on ...` names it). `unix:PATH` listens on a unix
    /// socket that only this user can open (mode 0600), reached as http://localhost/mcp.
    #[arg(long, value_name = "ADDR|unix:PATH", num_args = 0..=1, default_missing_value = "127.0.0.1:8765")]
    listen: Option<server::listen::ListenAddr>,
    /// Allow --listen on an address beyond loopback. mcpod speaks plain HTTP: terminate TLS in a
    /// reverse proxy in front of it (and name the proxy's host with --allow-host), or bearer
    /// tokens cross the network in the clear.
    #[arg(long, requires = "listen")]
    listen_public: bool,
    /// A further Host header value that names this server (e.g. the proxy's `mcp.example.com`);
    /// others are refused with 403 (DNS rebinding). Repeatable.
    #[arg(long, value_name = "HOST", requires = "listen")]
    allow_host: Vec<String>,
    /// A browser origin (`scheme://host:port`) whose requests are accepted; requests with any
    /// other `Origin` are refused with 403. None by default. Repeatable.
    #[arg(long, value_name = "ORIGIN", requires = "listen")]
    allow_origin: Vec<String>,
    /// Connections served at once; more are answered 503.
    #[arg(long, value_name = "N", default_value_t = 256, requires = "listen",
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    max_connections: u32,
    /// Narrow the policy for some principals: a TOML file of [default], [principal.NAME] and
    /// [scope.NAME] tables (tools, max_sessions, allow_env, allow_network, allow_egress,
    /// max_memory_mb, max_cpus, max_pids, max_ttl_secs), each within the flags (docs/http.md).
    #[arg(long, value_name = "FILE", requires = "listen")]
    principals: Option<PathBuf>,
    /// Stop a principal's sessions once it has sent no request for SECS seconds (it may
    /// reconnect and find them until then). Default: they live out their lease.
    #[arg(long, value_name = "SECS", requires = "listen",
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    idle_timeout: Option<u64>,
    #[command(flatten)]
    oauth: OAuthArgs,
}

/// `serve --listen` as an OAuth 2.1 resource server.
#[derive(Args, Default)]
pub struct OAuthArgs {
    /// Accept JWT access tokens of this OAuth issuer (its `iss`, e.g.
    /// https://idp.example.com/realms/dev) besides mcpod's own tokens. Its signing keys are found
    /// through its metadata (RFC 8414 or OpenID discovery) unless --oauth-jwks names them;
    /// clients find the issuer in this server's /.well-known/oauth-protected-resource.
    #[arg(long, value_name = "URL", requires = "listen")]
    oauth_issuer: Option<String>,
    /// The URL clients reach MCP at, as tokens name it in `aud` (RFC 8707); default
    /// http://ADDR/mcp. Set it behind a proxy (e.g. https://mcp.example.com/mcp).
    #[arg(long, value_name = "URL", requires = "oauth_issuer")]
    oauth_resource: Option<String>,
    /// A further `aud` value accepted (e.g. an API identifier the issuer uses). Repeatable.
    #[arg(long, value_name = "AUDIENCE", requires = "oauth_issuer")]
    oauth_audience: Vec<String>,
    /// The issuer's key set: an https:// URL, or a file of JSON Web Keys.
    #[arg(long, value_name = "URL|FILE", requires = "oauth_issuer")]
    oauth_jwks: Option<String>,
    /// PEM certificates to trust for the issuer's HTTPS besides the host's store.
    #[arg(long, value_name = "FILE", requires = "oauth_issuer")]
    oauth_ca: Option<PathBuf>,
    /// A scope every access token must carry (else 403 insufficient_scope). Repeatable.
    #[arg(long, value_name = "SCOPE", requires = "oauth_issuer")]
    oauth_scope: Vec<String>,
    /// A scope that makes its holder an admin (lists and stops every session, reads the audit
    /// log), e.g. mcpod:admin.
    #[arg(long, value_name = "SCOPE", requires = "oauth_issuer")]
    oauth_admin_scope: Option<String>,
    /// Accept opaque access tokens too, asking this RFC 7662 introspection endpoint as
    /// --oauth-client-id (its secret from --oauth-client-secret-file or MCPOD_OAUTH_CLIENT_SECRET).
    #[arg(long, value_name = "URL", requires_all = ["oauth_issuer", "oauth_client_id"])]
    oauth_introspection: Option<String>,
    /// The client mcpod introspects tokens as.
    #[arg(long, value_name = "ID", requires = "oauth_introspection")]
    oauth_client_id: Option<String>,
    /// A file holding that client's secret (one line).
    #[arg(long, value_name = "FILE", requires = "oauth_introspection")]
    oauth_client_secret_file: Option<PathBuf>,
}

impl OAuthArgs {
    fn options(&self) -> Result<Option<server::oauth::OAuthOptions>, String> {
        let Some(issuer) = self.oauth_issuer.clone() else {
            return Ok(None);
        };
        let client_secret = match (&self.oauth_client_secret_file, &self.oauth_introspection) {
            (Some(path), _) => Some(read_secret(path)?),
            (None, Some(_)) => std::env::var("MCPOD_OAUTH_CLIENT_SECRET").ok(),
            (None, None) => None,
        };
        Ok(Some(server::oauth::OAuthOptions {
            issuer,
            resource: self.oauth_resource.clone(),
            audiences: self.oauth_audience.clone(),
            jwks: self.oauth_jwks.clone(),
            ca: self.oauth_ca.clone(),
            scopes: self.oauth_scope.clone(),
            admin_scope: self.oauth_admin_scope.clone(),
            introspection: self.oauth_introspection.clone(),
            client_id: self.oauth_client_id.clone(),
            client_secret,
        }))
    }
}

/// The client secret in `path`: a regular file of at most 4 KiB, its first
/// line.
fn read_secret(path: &std::path::Path) -> Result<String, String> {
    let bytes =
        mcpod::cache::input::read_bounded(path, "--oauth-client-secret-file", 4096, |_| Ok(()))
            .map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("--oauth-client-secret-file {}: not UTF-8", path.display()))?;
    let secret = text.lines().next().unwrap_or_default().trim().to_string();
    if secret.is_empty() {
        return Err(format!(
            "--oauth-client-secret-file {}: empty. Fix: write the client's secret on its first line",
            path.display()
        ));
    }
    Ok(secret)
}

impl HttpArgs {
    fn options(&self) -> Result<Option<server::HttpOptions>, String> {
        let Some(listen) = self.listen.clone() else {
            return Ok(None);
        };
        if let server::listen::ListenAddr::Tcp(addr) = &listen
            && !addr.ip().is_loopback()
            && !self.listen_public
        {
            return Err(format!(
                "--listen {listen} is beyond loopback. Fix: add --listen-public, with a reverse \
                 proxy in front that terminates TLS, or listen on 127.0.0.1"
            ));
        }
        Ok(Some(server::HttpOptions {
            listen,
            allowed_hosts: self.allow_host.clone(),
            allowed_origins: self.allow_origin.clone(),
            max_connections: self.max_connections as usize,
            tokens: server::auth::Tokens::in_state_dir(),
            oauth: self.oauth.options()?,
            profiles: Default::default(),
            idle: self.idle_timeout.map(std::time::Duration::from_secs),
        }))
    }
}

#[derive(Args, Default)]
pub struct JsonFlag {
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SchemaArgs {
    /// Write the schema files into this directory (e.g. schemas/).
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "schemas")]
    write: Option<PathBuf>,
    /// Print the tool reference as Markdown (docs/reference.md).
    #[arg(long, conflicts_with = "write")]
    markdown: bool,
}

/// How long `serve` waits at its end for the last spans to be sent.
const TELEMETRY_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

impl Command {
    /// True for `serve` (and no subcommand): stdout is then the protocol.
    pub fn is_serve(command: &Option<Command>) -> bool {
        matches!(command, None | Some(Command::Serve(_)))
    }
}

pub async fn run(command: Option<Command>) -> Result<(), String> {
    match command.unwrap_or_else(|| Command::Serve(Box::default())) {
        Command::Serve(args) => {
            let workspace = Workspace::new(&args.root).map_err(|e| e.to_string())?;
            let mut http = args.http.options()?;
            if http.is_none() {
                tracing::info!(root = %workspace.root().display(), "mcpod {} serving MCP on stdio", env!("CARGO_PKG_VERSION"));
            }
            let build_network = args.policy.build_network;
            let policy = args.policy.policy()?;
            if let (Some(options), Some(path)) = (&mut http, &args.http.principals) {
                let tools = server::McpodServer::tool_names();
                options.profiles = std::sync::Arc::new(LiveProfiles::read(path, &policy, &tools)?);
            }
            mcpod::image::isolation::set_policy(policy.builds(build_network))
                .map_err(|e| e.to_string())?;
            let max_bytes = args
                .audit_max_mb
                .map_or(audit::DEFAULT_MAX_BYTES, |mb| u64::from(mb) << 20);
            let audit = audit::AuditLog::in_state_dir(max_bytes).map_err(|e| {
                format!(
                    "could not open the audit log in {}: {e}. Fix: make the directory writable, or \
                     set MCPOD_STATE_DIR to one that is",
                    mcpod::engine::home::state_dir().display()
                )
            })?;
            let audit = std::sync::Arc::new(audit);
            let env = |name: &str| std::env::var(name).ok();
            if let Some(endpoint) =
                telemetry::configure(args.otlp.as_deref(), &env).map_err(|e| e.to_string())?
            {
                telemetry::start(endpoint).map_err(|e| e.to_string())?;
            }
            let served = match http {
                Some(options) => server::serve_http(workspace, policy, options, audit).await,
                None => server::serve_stdio(workspace, policy, audit).await,
            };
            if !telemetry::shutdown(TELEMETRY_FLUSH) {
                tracing::warn!(
                    "the last spans were not sent within {TELEMETRY_FLUSH:?} of the end; they are lost"
                );
            }
            served.map_err(|e| e.to_string())
        }
        Command::Token(args) => token::token(args),
        Command::Build(args) => image::build(args).await,
        Command::Inspect(args) => image::inspect(args).await,
        Command::Provision(args) => provision::provision(*args).await,
        Command::Bases(args) => provision::bases(args).await,
        Command::Launch(args) => session::launch(*args).await,
        Command::Pod(args) => pod::pod(*args).await,
        Command::Sessions(args) => session::sessions(args).await,
        Command::Stop(args) => session::stop(args).await,
        Command::Gc(args) => session::gc(args).await,
        Command::Connect(args) => session::connect(args).await,
        Command::Config(args) => config::config(args),
        Command::Doctor(args) => doctor::doctor(args).await,
        Command::Schema(args) if args.markdown => {
            print!("{}", mcpod::reference::markdown());
            Ok(())
        }
        Command::Schema(args) => match args.write {
            Some(dir) => {
                let written = schema::write(&dir).map_err(|e| e.to_string())?;
                eprintln!("wrote {} schema files to {}", written.len(), dir.display());
                Ok(())
            }
            None => {
                let all: BTreeMap<String, serde_json::Value> = schema::all().into_iter().collect();
                print(&all, true, String::new)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
