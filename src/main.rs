//! The mcpod command line: `mcpod serve` (the default) speaks MCP over stdio;
//! the other subcommands mirror the MCP tools for humans and scripts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use mcpod::labels::Servers;
use mcpod::server::tools::{BuildImageInput, InspectLabelsInput};
use mcpod::session::container;
use mcpod::session::{LaunchInput, MountRequest, Policy, Sessions, sweep};
use mcpod::workspace::Workspace;
use mcpod::{doctor, image, schema, server};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "mcpod",
    version,
    about = "Build, inspect and launch isolated MCP-server containers for an agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Speak MCP over stdio (the default with no subcommand).
    Serve(ServeArgs),
    /// Build an image behind the content-addressed cache (the build_image tool).
    Build(BuildArgs),
    /// Read an image's labels and the MCP servers they declare (the inspect_labels tool).
    Inspect(InspectArgs),
    /// Launch an image as a session, list its tools, optionally call one, then stop it.
    Launch(LaunchArgs),
    /// List the session containers on this host (of every mcpod process).
    Sessions(JsonFlag),
    /// Stop session containers by session id (of any mcpod process).
    Stop(StopArgs),
    /// Remove orphaned session containers, old cache tags and leftover temporary tags.
    Gc(GcArgs),
    /// Print (or --write) the entry that registers mcpod with an MCP client.
    Config(ConfigArgs),
    /// Check podman, buildah and skopeo on this host, and say how to fix what is wrong.
    Doctor(JsonFlag),
    /// Print the JSON Schemas of the labels and tools, or write them into a directory.
    Schema(SchemaArgs),
}

#[derive(Args, Default)]
struct ServeArgs {
    /// The workspace root: paths from the agent resolve inside it.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    #[command(flatten)]
    policy: PolicyArgs,
}

/// The operator's policy: what sessions may be granted. No tool can change it.
#[derive(Args, Default, Clone)]
struct PolicyArgs {
    /// A host directory sessions may mount: PATH (read-only) or PATH:rw. Repeatable.
    #[arg(long = "allow-mount", value_name = "PATH[:ro|rw]")]
    allow_mount: Vec<mcpod::session::policy::MountRoot>,
    /// Let a session ask for network egress (default: no network at all).
    #[arg(long)]
    allow_network: bool,
    /// A host variable a label's ${NAME} or a launch may use. Repeatable.
    #[arg(long = "allow-env", value_name = "NAME")]
    allow_env: Vec<String>,
    /// Sessions at once.
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Memory ceiling per session, MiB.
    #[arg(long)]
    max_memory_mb: Option<u32>,
    /// CPU ceiling per session.
    #[arg(long)]
    max_cpus: Option<f64>,
    /// Process ceiling per session.
    #[arg(long)]
    max_pids: Option<u32>,
    /// Lease of a session when it asks for none, seconds.
    #[arg(long)]
    default_ttl: Option<u64>,
    /// Longest lease a session may ask for, seconds.
    #[arg(long)]
    max_ttl: Option<u64>,
    /// Seconds each server gets to answer `initialize`.
    #[arg(long)]
    handshake_timeout: Option<u64>,
}

impl PolicyArgs {
    /// The same policy as `mcpod serve` flags.
    fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for root in &self.allow_mount {
            let mode = if root.writable { ":rw" } else { "" };
            a.push(format!("--allow-mount={}{mode}", root.path.display()));
        }
        if self.allow_network {
            a.push("--allow-network".into());
        }
        for name in &self.allow_env {
            a.push(format!("--allow-env={name}"));
        }
        let numbers = [
            ("--max-sessions", self.max_sessions.map(|v| v.to_string())),
            ("--max-memory-mb", self.max_memory_mb.map(|v| v.to_string())),
            ("--max-cpus", self.max_cpus.map(|v| v.to_string())),
            ("--max-pids", self.max_pids.map(|v| v.to_string())),
            ("--default-ttl", self.default_ttl.map(|v| v.to_string())),
            ("--max-ttl", self.max_ttl.map(|v| v.to_string())),
            (
                "--handshake-timeout",
                self.handshake_timeout.map(|v| v.to_string()),
            ),
        ];
        for (flag, value) in numbers {
            if let Some(v) = value {
                a.push(format!("{flag}={v}"));
            }
        }
        a
    }

    fn policy(self) -> Policy {
        let d = Policy::default();
        Policy {
            mount_roots: self.allow_mount,
            allow_network: self.allow_network,
            allowed_env: self.allow_env,
            max_sessions: self.max_sessions.unwrap_or(d.max_sessions),
            max_memory_mb: self.max_memory_mb.unwrap_or(d.max_memory_mb),
            max_cpus: self.max_cpus.unwrap_or(d.max_cpus),
            max_pids: self.max_pids.unwrap_or(d.max_pids),
            default_memory_mb: d
                .default_memory_mb
                .min(self.max_memory_mb.unwrap_or(u32::MAX)),
            default_cpus: d.default_cpus.min(self.max_cpus.unwrap_or(f64::MAX)),
            default_pids: d.default_pids.min(self.max_pids.unwrap_or(u32::MAX)),
            default_ttl_secs: self.default_ttl.unwrap_or(d.default_ttl_secs),
            max_ttl_secs: self.max_ttl.unwrap_or(d.max_ttl_secs),
            handshake_secs: self.handshake_timeout.unwrap_or(d.handshake_secs),
            default_call_secs: d.default_call_secs,
        }
    }
}

#[derive(Args)]
struct BuildArgs {
    /// Image name without a tag.
    #[arg(long)]
    name: String,
    /// Build context, relative to --root.
    #[arg(long, default_value = ".")]
    context: String,
    /// Containerfile, relative to --root (default: Containerfile or Dockerfile in the context).
    #[arg(long, short = 'f')]
    containerfile: Option<String>,
    /// A build arg, KEY=VALUE (VALUE may use ${NAME} from the environment). Repeatable.
    #[arg(long = "build-arg", value_parser = parse_key_value)]
    build_args: Vec<(String, String)>,
    /// MCP servers to declare, as JSON: {"name": ["argv", ...]} or {"name": {"command": [...], ...}}.
    #[arg(long)]
    servers: Option<String>,
    /// Build even when the cache has the image.
    #[arg(long)]
    no_cache: bool,
    #[arg(long, default_value = ".")]
    root: PathBuf,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Args)]
struct LaunchArgs {
    /// A local image reference (e.g. a tag `mcpod build` printed).
    image: String,
    /// Start only these declared servers. Repeatable.
    #[arg(long = "server")]
    servers: Vec<String>,
    /// A value for a `${NAME}` reference, NAME=VALUE (NAME must be --allow-env'ed). Repeatable.
    #[arg(long = "env", value_parser = parse_key_value)]
    env: Vec<(String, String)>,
    /// Mount SRC:TARGET[:rw] (read-only by default; SRC inside an --allow-mount root). Repeatable.
    #[arg(long = "mount")]
    mounts: Vec<String>,
    /// Ask for network egress (needs --allow-network).
    #[arg(long)]
    network: bool,
    /// Lease in seconds.
    #[arg(long)]
    ttl: Option<u64>,
    /// Call SERVER/TOOL after the launch.
    #[arg(long)]
    call: Option<String>,
    /// JSON arguments for --call.
    #[arg(long, default_value = "{}")]
    args: String,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Args)]
struct ConfigArgs {
    /// The client to register with.
    #[arg(long, value_enum)]
    client: mcpod::clients::Client,
    /// The workspace root mcpod serves (made absolute).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Merge the entry into the client's file (keeping what is there, with a .bak backup).
    #[arg(long)]
    write: bool,
    /// The file to write instead of the client's default.
    #[arg(long)]
    path: Option<PathBuf>,
    #[command(flatten)]
    policy: PolicyArgs,
}

#[derive(Args)]
struct StopArgs {
    /// Session ids.
    sessions: Vec<String>,
    /// Stop every session container on this host.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct GcArgs {
    /// Cache tags to keep per image name (newest first).
    #[arg(long, default_value_t = 3)]
    keep: usize,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Args)]
struct InspectArgs {
    /// A local reference, or docker://REF for a registry.
    reference: String,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Args, Default)]
struct JsonFlag {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SchemaArgs {
    /// Write the schema files into this directory (e.g. schemas/).
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "schemas")]
    write: Option<PathBuf>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, None | Some(Command::Serve(_)));
    init_logging(serving);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpod: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli
        .command
        .unwrap_or(Command::Serve(ServeArgs::default()))));
    // Do not wait for a blocking stdin read that can never finish.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mcpod: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCPOD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve(args) => {
            let workspace = Workspace::new(&args.root).map_err(|e| e.to_string())?;
            tracing::info!(root = %workspace.root().display(), "mcpod {} serving MCP on stdio", env!("CARGO_PKG_VERSION"));
            server::serve_stdio(workspace, args.policy.policy())
                .await
                .map_err(|e| e.to_string())
        }
        Command::Build(args) => build(args).await,
        Command::Inspect(args) => {
            let input = InspectLabelsInput {
                reference: args.reference,
            };
            let inspected = image::inspect_labels(&input.reference)
                .await
                .map_err(|e| e.to_string())?;
            print(&inspected, args.out.json, || {
                let mut text = format!(
                    "{} ({}, {})\n",
                    inspected.reference, inspected.source, inspected.id
                );
                text.push_str(&servers_text(
                    &inspected.servers,
                    inspected.servers_source.as_deref(),
                ));
                text.push_str(&warnings_text(&inspected.warnings));
                text
            })
        }
        Command::Launch(args) => launch(args).await,
        Command::Config(args) => config(args),
        Command::Sessions(out) => {
            let all = sweep::session_containers()
                .await
                .map_err(|e| e.to_string())?;
            let rows: Vec<serde_json::Value> = all
                .iter()
                .map(|(c, alive)| {
                    serde_json::json!({
                        "session": c.label(container::SESSION_LABEL),
                        "container": c.names.first(),
                        "state": c.state,
                        "owner_pid": c.label(container::OWNER_PID_LABEL),
                        "owner_alive": alive,
                        "lease_until": c.label(container::LEASE_LABEL),
                    })
                })
                .collect();
            print(&rows, out.json, || {
                if rows.is_empty() {
                    return "no sessions\n".into();
                }
                rows.iter()
                    .map(|r| {
                        format!(
                            "{}  {}  {}  owner pid {} ({})\n",
                            r["session"].as_str().unwrap_or("?"),
                            r["container"].as_str().unwrap_or("?"),
                            r["state"].as_str().unwrap_or("?"),
                            r["owner_pid"].as_str().unwrap_or("?"),
                            if r["owner_alive"] == true {
                                "alive"
                            } else {
                                "gone: an orphan"
                            }
                        )
                    })
                    .collect()
            })
        }
        Command::Stop(args) => {
            let all = sweep::session_containers()
                .await
                .map_err(|e| e.to_string())?;
            let chosen: Vec<String> = all
                .iter()
                .filter(|(c, _)| {
                    args.all
                        || c.label(container::SESSION_LABEL)
                            .is_some_and(|s| args.sessions.iter().any(|a| a == s))
                })
                .filter_map(|(c, _)| c.names.first().cloned())
                .collect();
            if chosen.is_empty() {
                return Err(
                    "no such session container. Fix: list them with `mcpod sessions`".into(),
                );
            }
            mcpod::engine::podman::remove(&chosen)
                .await
                .map_err(|e| e.to_string())?;
            println!("removed {}", chosen.join(", "));
            Ok(())
        }
        Command::Gc(args) => {
            let swept = if args.dry_run {
                Vec::new()
            } else {
                sweep::sweep_orphans().await.map_err(|e| e.to_string())?
            };
            let collected = mcpod::image::gc::collect(args.keep, args.dry_run)
                .await
                .map_err(|e| e.to_string())?;
            let report = serde_json::json!({"orphans_removed": swept, "images": collected});
            print(&report, args.out.json, || {
                let verb = if args.dry_run {
                    "would remove"
                } else {
                    "removed"
                };
                let mut text = format!("{} orphaned session container(s) removed\n", swept.len());
                text.push_str(&format!(
                    "{verb} {} image tag(s)\n",
                    collected.removed.len()
                ));
                for t in &collected.removed {
                    text.push_str(&format!("  {t}\n"));
                }
                for t in &collected.kept {
                    text.push_str(&format!("  kept {t}\n"));
                }
                text
            })
        }
        Command::Doctor(out) => {
            let checks = doctor::run().await;
            let failed = checks.iter().filter(|c| !c.ok).count();
            print(&checks, out.json, || {
                checks
                    .iter()
                    .map(|c| {
                        let mark = if c.ok { "ok  " } else { "FAIL" };
                        let fix = c
                            .fix
                            .as_deref()
                            .map(|f| format!("\n       fix: {f}"))
                            .unwrap_or_default();
                        format!("{mark} {:<16} {}{fix}\n", c.name, c.detail)
                    })
                    .collect()
            })?;
            if failed > 0 {
                return Err(format!("{failed} check(s) failed"));
            }
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

async fn build(args: BuildArgs) -> Result<(), String> {
    let workspace = Workspace::new(&args.root).map_err(|e| e.to_string())?;
    let servers: Servers = match &args.servers {
        Some(json) => serde_json::from_str(json).map_err(|e| {
            format!("invalid --servers `{json}`: {e}. Fix: pass a JSON object such as '{{\"hello\": [\"/bin/hello\"]}}'")
        })?,
        None => Servers::new(),
    };
    let input = BuildImageInput {
        name: args.name,
        context: args.context,
        containerfile: args.containerfile,
        build_args: args.build_args.into_iter().collect(),
        servers,
        no_cache: args.no_cache,
    };
    let spec = input.into_spec(&workspace).map_err(|e| e.to_string())?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let quiet = args.out.json;
    let progress: image::Progress = Arc::new(move |line: String| {
        if !quiet {
            eprintln!("  {line}");
        }
    });
    let built = image::build_image(spec, progress, cancel)
        .await
        .map_err(|e| e.to_string())?;
    print(&built, args.out.json, || {
        let what = if built.cache_hit {
            "cache hit"
        } else {
            "built"
        };
        let mut text = format!("{what}: {} in {} ms\n", built.tag, built.duration_ms);
        text.push_str(&servers_text(
            &built.servers,
            built.servers_source.as_deref(),
        ));
        text.push_str(&warnings_text(&built.warnings));
        text
    })
}

fn config(args: ConfigArgs) -> Result<(), String> {
    let root = args
        .root
        .canonicalize()
        .map_err(|e| format!("--root `{}`: {e}", args.root.display()))?;
    let command = std::env::current_exe()
        .map_err(|e| format!("cannot tell where the mcpod binary is: {e}"))?
        .display()
        .to_string();
    let mut mcpod_args = vec![
        "serve".to_string(),
        "--root".to_string(),
        root.display().to_string(),
    ];
    mcpod_args.extend(args.policy.to_args());
    let launch = mcpod::clients::Launch {
        command,
        args: mcpod_args,
    };
    if !args.write {
        print!("{}", args.client.render(&launch));
        return Ok(());
    }
    let path = args.path.unwrap_or_else(|| args.client.default_path());
    let backup = args
        .client
        .write(&path, &launch)
        .map_err(|e| e.to_string())?;
    match backup {
        Some(b) => eprintln!(
            "registered mcpod in {} (previous file kept as {})",
            path.display(),
            b.display()
        ),
        None => eprintln!("registered mcpod in {} (new file)", path.display()),
    }
    Ok(())
}

async fn launch(args: LaunchArgs) -> Result<(), String> {
    let mounts = args
        .mounts
        .iter()
        .map(|m| {
            let parts: Vec<&str> = m.split(':').collect();
            match parts.as_slice() {
                [source, target] => Ok(MountRequest {
                    source: source.to_string(),
                    target: target.to_string(),
                    read_only: true,
                }),
                [source, target, "rw"] => Ok(MountRequest {
                    source: source.to_string(),
                    target: target.to_string(),
                    read_only: false,
                }),
                [source, target, "ro"] => Ok(MountRequest {
                    source: source.to_string(),
                    target: target.to_string(),
                    read_only: true,
                }),
                _ => Err(format!(
                    "invalid --mount `{m}`. Fix: pass SRC:TARGET or SRC:TARGET:rw"
                )),
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    let input = LaunchInput {
        image: args.image,
        servers: (!args.servers.is_empty()).then_some(args.servers),
        env: args.env.into_iter().collect(),
        mounts,
        network: args.network.then_some(mcpod::labels::Network::Egress),
        ttl_secs: args.ttl,
        memory_mb: None,
        cpus: None,
        pids: None,
    };
    let call = match &args.call {
        Some(c) => {
            let (server, tool) = c
                .split_once('/')
                .ok_or_else(|| format!("invalid --call `{c}`. Fix: pass SERVER/TOOL"))?;
            let arguments: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&args.args).map_err(|e| {
                    format!(
                        "invalid --args `{}`: {e}. Fix: pass a JSON object",
                        args.args
                    )
                })?;
            Some((server.to_string(), tool.to_string(), arguments))
        }
        None => None,
    };
    let sessions = Arc::new(Sessions::new(args.policy.policy()).map_err(|e| e.to_string())?);
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let quiet = args.out.json;
    let progress: image::Progress = Arc::new(move |line: String| {
        if !quiet {
            eprintln!("  {line}");
        }
    });
    let info = sessions
        .launch(input, progress, cancel.clone())
        .await
        .map_err(|e| e.to_string())?;
    let outcome = async {
        let result = match call {
            Some((server, tool, arguments)) => Some(
                sessions
                    .call(
                        &info.session,
                        &server,
                        &tool,
                        Some(arguments),
                        None,
                        cancel.clone(),
                    )
                    .await?,
            ),
            None => None,
        };
        let report = serde_json::json!({"session": info, "call": result});
        print(&report, args.out.json, || {
            let mut text = format!("session {} in container {}\n", info.session, info.container);
            for (name, server) in &info.servers {
                match &server.status {
                    mcpod::proxy::Status::Ready => {
                        text.push_str(&format!("  {name}: ready, {} tools\n", server.tools.len()));
                        for t in &server.tools {
                            text.push_str(&format!("    {}\n", t.upstream));
                        }
                    }
                    mcpod::proxy::Status::Failed {
                        reason,
                        stderr_tail,
                        ..
                    } => {
                        text.push_str(&format!("  {name}: FAILED: {reason}\n{stderr_tail}\n"));
                    }
                }
            }
            if let Some(result) = &result {
                text.push_str(&format!(
                    "call result:\n{}\n",
                    serde_json::to_string_pretty(result).unwrap_or_default()
                ));
            }
            text
        })
    }
    .await;
    let stopped = sessions.stop_all().await.map_err(|e| e.to_string());
    outcome?;
    stopped.map(drop)
}

fn servers_text(servers: &Servers, source: Option<&str>) -> String {
    if servers.is_empty() {
        return "declares no MCP servers\n".into();
    }
    let mut text = format!("MCP servers ({}):\n", source.unwrap_or("labels"));
    for (name, spec) in servers {
        text.push_str(&format!("  {name}: {}\n", spec.command.join(" ")));
    }
    text
}

fn warnings_text(warnings: &[String]) -> String {
    warnings.iter().map(|w| format!("warning: {w}\n")).collect()
}

fn print<T: Serialize>(
    value: &T,
    json: bool,
    human: impl FnOnce() -> String,
) -> Result<(), String> {
    if json {
        let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", human());
    }
    Ok(())
}
