//! Session commands: `launch`, `sessions`, `stop` and `gc`.

use std::sync::Arc;

use clap::Args;
use mcpod::session::container;
use mcpod::session::{LaunchInput, MountRequest, Sessions, sweep};

use super::output::{cancel_on_ctrl_c, print, progress_to_stderr};
use super::policy::{EngineArgs, PolicyArgs};
use super::provision::ProvisionArgs;
use super::{JsonFlag, parse_key_value};

/// What to launch and what to ask for: the flags `launch` and `pod` share.
#[derive(Args)]
pub struct LaunchSpecArgs {
    /// A local image reference (e.g. a tag `mcpod build` printed), or a package
    /// reference npm:NAME@VERSION / pypi:NAME==VERSION (built on a miss).
    image: Option<String>,
    #[command(flatten)]
    provision: ProvisionArgs,
    /// Arguments appended to a server's argv, SERVER=ARG. Repeatable.
    #[arg(long = "extra-arg", value_parser = parse_key_value)]
    extra_args: Vec<(String, String)>,
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
    /// Ask for egress to HOST:PORT (within the operator's --allow-egress). Repeatable.
    #[arg(long = "egress", value_name = "HOST:PORT", value_parser = mcpod::egress::Pattern::parse)]
    egress: Vec<mcpod::egress::Pattern>,
    /// Forward a port of the container's loopback to HOST:PORT: PORT=HOST:PORT. Repeatable.
    #[arg(long = "forward", value_name = "PORT=HOST:PORT", value_parser = parse_forward)]
    forwards: Vec<(u16, mcpod::egress::Pattern)>,
    /// Lease in seconds.
    #[arg(long)]
    ttl: Option<u64>,
}

#[derive(Args)]
pub struct LaunchArgs {
    #[command(flatten)]
    spec: LaunchSpecArgs,
    /// Call SERVER/TOOL after the launch.
    #[arg(long)]
    call: Option<String>,
    /// JSON arguments for --call.
    #[arg(long, default_value = "{}")]
    args: String,
    /// Run on this engine (`local` or an --engine NAME); default: the least loaded.
    #[arg(long, value_name = "ENGINE")]
    on: Option<String>,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    engines: EngineArgs,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Args)]
pub struct StopArgs {
    /// Session ids.
    sessions: Vec<String>,
    /// Stop every session container on every engine.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    engines: EngineArgs,
}

#[derive(Args)]
pub struct ConnectArgs {
    /// The session's container (`mcpod-<session>`).
    container: String,
    /// The server, as the image declares it.
    server: String,
    /// A host variable the server's `${NAME}` references may take. Repeatable.
    #[arg(long = "allow-env", value_name = "NAME")]
    allow_env: Vec<String>,
    /// The remote engine the container is on, as `podman --url` takes it.
    #[arg(long)]
    url: Option<String>,
    /// The ssh key for --url.
    #[arg(long)]
    identity: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct GcArgs {
    /// Cache tags to keep per image name (newest first).
    #[arg(long, default_value_t = 3)]
    keep: usize,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Collect on this engine only (`local` or an --engine NAME); default: every engine.
    #[arg(long, value_name = "ENGINE")]
    on: Option<String>,
    #[command(flatten)]
    engines: EngineArgs,
    #[command(flatten)]
    out: JsonFlag,
}

impl LaunchSpecArgs {
    /// The launch these flags ask for (on no engine in particular).
    pub fn input(self) -> Result<LaunchInput, String> {
        let mounts = self
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
        let mut overrides: std::collections::BTreeMap<String, mcpod::session::ServerOverride> =
            Default::default();
        for (server, arg) in self.extra_args {
            overrides.entry(server).or_default().args.push(arg);
        }
        let (image, provision) = match self.image {
            Some(image) if !mcpod::provision::is_package_reference(&image) => {
                (image, self.provision.request(None)?)
            }
            package => (String::new(), self.provision.request(package)?),
        };
        Ok(LaunchInput {
            image,
            provision,
            overrides: mcpod::session::Overrides::PerServer(overrides),
            servers: (!self.servers.is_empty()).then_some(self.servers),
            env: self.env.into_iter().collect(),
            mounts,
            network: self.network.then_some(mcpod::labels::Network::Egress),
            ttl_secs: self.ttl,
            memory_mb: None,
            cpus: None,
            pids: None,
            egress: self.egress,
            forwards: self.forwards.into_iter().collect(),
            engine: None,
            policy: None,
        })
    }
}

pub async fn launch(args: LaunchArgs) -> Result<(), String> {
    let mut input = args.spec.input()?;
    input.engine = args.on;
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
    let sessions = Arc::new(Sessions::new(args.policy.policy()?).map_err(|e| e.to_string())?);
    let cancel = cancel_on_ctrl_c();
    let progress = progress_to_stderr(args.out.json);
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
                        Default::default(),
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

pub async fn sessions(args: SessionsArgs) -> Result<(), String> {
    let engines = args.engines.engines()?;
    let (all, failed) = sweep::session_containers(engines.all()).await;
    let rows: Vec<serde_json::Value> = all
        .iter()
        .map(|f| {
            let c = &f.container;
            serde_json::json!({
                "session": c.label(container::SESSION_LABEL),
                "engine": f.engine,
                "container": c.names.first(),
                "state": c.state,
                "owner_pid": c.label(container::OWNER_PID_LABEL),
                "owner_alive": f.alive,
                "lease_until": c.label(container::LEASE_LABEL),
            })
        })
        .collect();
    for failure in &failed {
        eprintln!("could not list {failure}");
    }
    print(&rows, args.out.json, || {
        if rows.is_empty() {
            return "no sessions\n".into();
        }
        rows.iter()
            .map(|r| {
                format!(
                    "{}  {}  {}  {}  owner pid {} ({})\n",
                    r["session"].as_str().unwrap_or("?"),
                    r["engine"].as_str().unwrap_or("?"),
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

pub async fn stop(args: StopArgs) -> Result<(), String> {
    let engines = args.engines.engines()?;
    let (all, failed) = sweep::session_containers(engines.all()).await;
    for failure in &failed {
        eprintln!("could not list {failure}");
    }
    let mut removed = Vec::new();
    for engine in engines.all() {
        let chosen: Vec<String> = all
            .iter()
            .filter(|f| f.engine == engine.name)
            .filter(|f| {
                args.all
                    || f.container
                        .label(container::SESSION_LABEL)
                        .is_some_and(|s| args.sessions.iter().any(|a| a == s))
            })
            .filter_map(|f| f.container.names.first().cloned())
            .collect();
        engine
            .podman
            .remove(&chosen)
            .await
            .map_err(|e| e.to_string())?;
        removed.extend(chosen);
    }
    if removed.is_empty() {
        return Err("no such session container. Fix: list them with `mcpod sessions`".into());
    }
    println!("removed {}", removed.join(", "));
    Ok(())
}

pub async fn gc(args: GcArgs) -> Result<(), String> {
    let engines = args.engines.engines()?;
    let chosen: Vec<_> = match &args.on {
        None => engines.all().to_vec(),
        Some(name) => vec![engines.get(name).cloned().ok_or_else(|| {
            format!(
                "--on `{name}` names no engine. Fix: choose one of {}",
                engines.names().join(", ")
            )
        })?],
    };
    let swept = if args.dry_run {
        Vec::new()
    } else {
        let (swept, failed) = sweep::sweep_orphans(&chosen)
            .await
            .map_err(|e| e.to_string())?;
        for failure in failed {
            eprintln!("could not sweep {failure}");
        }
        swept
    };
    // This host's build cache and staged packages belong to `local`.
    let local = chosen.iter().any(|e| e.is_local());
    let collected = if local {
        mcpod::image::gc::collect(args.keep, args.dry_run)
            .await
            .map_err(|e| e.to_string())?
    } else {
        Default::default()
    };
    let provisioned = if local {
        mcpod::provision::collect(args.dry_run).map_err(|e| e.to_string())?
    } else {
        Default::default()
    };
    let mut on_engines = std::collections::BTreeMap::new();
    for engine in chosen.iter().filter(|e| !e.is_local()) {
        match mcpod::image::gc::collect_on(&engine.podman, args.keep, args.dry_run).await {
            Ok(collected) => {
                on_engines.insert(engine.name.clone(), collected);
            }
            Err(e) => eprintln!(
                "could not collect the images of engine {}: {e}",
                engine.name
            ),
        }
    }
    let report = serde_json::json!({"orphans_removed": swept, "images": collected, "engines": on_engines, "provisioned": provisioned});
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
        for (engine, collected) in &on_engines {
            text.push_str(&format!(
                "engine {engine}: {verb} {} pulled session image(s)\n",
                collected.removed.len()
            ));
            for t in &collected.removed {
                text.push_str(&format!("  {t}\n"));
            }
            for t in &collected.kept {
                text.push_str(&format!("  kept {t}\n"));
            }
        }
        text.push_str(&format!(
            "{verb} {} staged package(s) no request uses and {} leftover provisioning director(ies)\n",
            provisioned.staged.len(),
            provisioned.leftovers.len()
        ));
        for t in provisioned.staged.iter().chain(&provisioned.leftovers) {
            text.push_str(&format!("  {t}\n"));
        }
        text
    })
}

/// `mcpod connect`: exits with the server connection's exit code.
pub async fn connect(args: ConnectArgs) -> Result<(), String> {
    let engine = match &args.url {
        Some(url) => mcpod::engine::podman::Podman::remote(url, args.identity.clone())
            .map_err(|e| e.to_string())?,
        None => mcpod::engine::podman::Podman::local(),
    };
    let code =
        mcpod::session::connect::connect(&engine, &args.container, &args.server, &args.allow_env)
            .await
            .map_err(|e| e.to_string())?;
    std::process::exit(code)
}

fn parse_forward(s: &str) -> Result<(u16, mcpod::egress::Pattern), String> {
    let (port, to) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not PORT=HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{port}` in `{s}` is not a port"))?;
    Ok((port, mcpod::egress::Pattern::parse(to)?))
}
