//! The operator policy as command-line flags (of `serve`, `launch` and `config`).

use clap::Args;
use mcpod::session::Policy;

/// The operator's policy: what sessions may be granted. No tool can change it.
#[derive(Args, Default, Clone)]
pub struct PolicyArgs {
    /// A host directory sessions may mount: PATH (read-only) or PATH:rw. Repeatable.
    #[arg(long = "allow-mount", value_name = "PATH[:ro|rw]")]
    allow_mount: Vec<mcpod::session::policy::MountRoot>,
    /// Let a session ask for network egress (default: no network at all).
    #[arg(long)]
    allow_network: bool,
    /// Give the RUN steps of builds podman's network (default: none, only
    /// loopback). What they fetch is baked into the image.
    #[arg(long)]
    pub build_network: bool,
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
    /// The size of each writable image path a session is granted (a tmpfs
    /// copy of the image's files there), MiB; default 64; 0 grants none.
    #[arg(long)]
    writable_path_mb: Option<u32>,
    /// The base image packages of a runtime run on: node=IMAGE or python=IMAGE
    /// (e.g. node=docker.io/library/node:22-slim, pulled by the operator).
    /// Default: a base mcpod makes once from the host's own node or python3.
    #[arg(long = "base", value_name = "RUNTIME=IMAGE", value_parser = parse_base)]
    base: Vec<(mcpod::provision::Runtime, String)>,
    /// A Debian package (e.g. git) provision requests may install into their
    /// base (`system_packages`), with its dependencies, from Debian's archive
    /// through the host's apt; no maintainer script runs. Repeatable. Default: none.
    #[arg(long = "allow-system-package", value_name = "NAME", value_parser = parse_debian_name)]
    allow_system_package: Vec<String>,
    /// Keep N sessions of IMAGE's default launch started and initialized
    /// (default N 1), so a launch_session that matches one is handed it at
    /// once. Repeatable.
    #[arg(long = "warm", value_name = "IMAGE[=N]", value_parser = parse_warm)]
    warm: Vec<(String, usize)>,
    /// Ready sessions the pool keeps at once, over every image (default 4).
    #[arg(long)]
    pool_max: Option<usize>,
    /// After a launch, keep one spare of its exact spec for this many seconds
    /// (default 0: none), within --pool-max.
    #[arg(long)]
    spare_secs: Option<u64>,
    /// A destination sessions may be granted, HOST:PORT: a name, *.SUFFIX for
    /// its subdomains, an address, or host.containers.internal:PORT for this
    /// host's loopback. Sessions keep --network=none and reach it through
    /// mcpod. Repeatable.
    #[arg(long = "allow-egress", value_name = "HOST:PORT", value_parser = mcpod::egress::Pattern::parse)]
    allow_egress: Vec<mcpod::egress::Pattern>,
    /// Append every egress connection to FILE, a JSON line each.
    #[arg(long, value_name = "FILE")]
    egress_log: Option<std::path::PathBuf>,
    /// List only mcpod's own tools: an agent finds the sessions' tools with
    /// find_tools (schemas included) and calls them by name or with call_tool,
    /// so it pays for the schemas it uses.
    #[arg(long)]
    meta_tools_only: bool,
    #[command(flatten)]
    pub engines: EngineArgs,
}

/// The engines sessions run on and the registry images travel through
/// (of `serve`, `launch`, `config`, `sessions`, `stop` and `gc`).
#[derive(Args, Default, Clone)]
pub struct EngineArgs {
    /// A remote podman engine sessions may run on, NAME=URL (unix:///PATH,
    /// ssh://USER@HOST[:PORT]/SOCKET or tcp://HOST:PORT, as `podman --url`
    /// takes them), beside the local one (named `local`). Repeatable.
    #[arg(long = "engine", value_name = "NAME=URL", value_parser = mcpod::engine::engines::EngineSpec::parse)]
    engine: Vec<mcpod::engine::engines::EngineSpec>,
    /// The ssh key podman logs in to engine NAME with, NAME=PATH.
    #[arg(long = "engine-key", value_name = "NAME=PATH", value_parser = parse_engine_key)]
    engine_key: Vec<(String, std::path::PathBuf)>,
    /// Sessions engine NAME may hold at once (`local` included; 0 keeps
    /// sessions off it); placement passes over a full engine.
    #[arg(long = "engine-max", value_name = "NAME=N", value_parser = parse_engine_max)]
    engine_max: Vec<(String, usize)>,
    /// The registry images built here are pushed to, for other engines to
    /// pull by digest: HOST[:PORT][/NAMESPACE]. TLS and credentials are the
    /// containers configuration's (registries.conf, REGISTRY_AUTH_FILE).
    #[arg(long, value_name = "HOST[:PORT][/NAMESPACE]", value_parser = mcpod::engine::registry::Registry::parse)]
    registry: Option<mcpod::engine::registry::Registry>,
}

fn parse_engine_key(s: &str) -> Result<(String, std::path::PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=PATH"))?;
    mcpod::engine::engines::check_name(name)?;
    Ok((name.to_string(), std::path::PathBuf::from(path)))
}

fn parse_engine_max(s: &str) -> Result<(String, usize), String> {
    let (name, n) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=N"))?;
    mcpod::engine::engines::check_name(name)?;
    let n = n
        .parse()
        .map_err(|_| format!("`{n}` in `{s}` is not a number of sessions"))?;
    Ok((name.to_string(), n))
}

impl EngineArgs {
    /// The engines, each with its key.
    pub fn specs(&self) -> Result<Vec<mcpod::engine::engines::EngineSpec>, String> {
        let mut specs = self.engine.clone();
        for (name, key) in &self.engine_key {
            let spec = specs
                .iter_mut()
                .find(|s| &s.name == name)
                .ok_or_else(|| format!("--engine-key names `{name}`, which no --engine names"))?;
            spec.identity = Some(key.clone());
        }
        Ok(specs)
    }

    /// The engines, as `Engines` (the local one first).
    pub fn engines(&self) -> Result<mcpod::engine::engines::Engines, String> {
        mcpod::engine::engines::Engines::new(&self.specs()?, &self.engine_max)
            .map_err(|e| e.to_string())
    }

    fn to_args(&self, a: &mut Vec<String>) {
        for e in &self.engine {
            a.push(format!("--engine={}={}", e.name, e.url));
        }
        for (name, key) in &self.engine_key {
            a.push(format!("--engine-key={name}={}", key.display()));
        }
        for (name, n) in &self.engine_max {
            a.push(format!("--engine-max={name}={n}"));
        }
        if let Some(r) = &self.registry {
            a.push(format!("--registry={}", r.prefix()));
        }
    }
}

fn parse_warm(s: &str) -> Result<(String, usize), String> {
    let (image, count) = match s.rsplit_once('=') {
        Some((image, n)) => (
            image,
            n.parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| format!("`{n}` in `{s}` is not a count from 1 to 64"))?,
        ),
        None => (s, 1),
    };
    if !mcpod::provision::is_package_reference(image) {
        mcpod::image::reference::validate_reference(image).map_err(|e| e.to_string())?;
    }
    Ok((image.to_string(), count))
}

fn parse_base(s: &str) -> Result<(mcpod::provision::Runtime, String), String> {
    let (runtime, image) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not RUNTIME=IMAGE (node=IMAGE or python=IMAGE)"))?;
    let runtime = mcpod::provision::Runtime::parse(runtime)
        .ok_or_else(|| format!("`{runtime}` is not a runtime: node or python"))?;
    mcpod::image::reference::validate_reference(image).map_err(|e| e.to_string())?;
    Ok((runtime, image.to_string()))
}

impl PolicyArgs {
    /// The same policy as `mcpod serve` flags.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for root in &self.allow_mount {
            let mode = if root.writable { ":rw" } else { "" };
            a.push(format!("--allow-mount={}{mode}", root.path.display()));
        }
        if self.allow_network {
            a.push("--allow-network".into());
        }
        if self.build_network {
            a.push("--build-network".into());
        }
        for name in &self.allow_env {
            a.push(format!("--allow-env={name}"));
        }
        for (runtime, image) in &self.base {
            a.push(format!("--base={}={image}", runtime.as_str()));
        }
        for name in &self.allow_system_package {
            a.push(format!("--allow-system-package={name}"));
        }
        for (image, n) in &self.warm {
            a.push(format!("--warm={image}={n}"));
        }
        for pattern in &self.allow_egress {
            a.push(format!("--allow-egress={pattern}"));
        }
        if let Some(file) = &self.egress_log {
            a.push(format!("--egress-log={}", file.display()));
        }
        if self.meta_tools_only {
            a.push("--meta-tools-only".into());
        }
        self.engines.to_args(&mut a);
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
            ("--pool-max", self.pool_max.map(|v| v.to_string())),
            ("--spare-secs", self.spare_secs.map(|v| v.to_string())),
            (
                "--writable-path-mb",
                self.writable_path_mb.map(|v| v.to_string()),
            ),
        ];
        for (flag, value) in numbers {
            if let Some(v) = value {
                a.push(format!("{flag}={v}"));
            }
        }
        a
    }

    pub fn policy(self) -> Result<Policy, String> {
        let d = Policy::default();
        Ok(Policy {
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
            bases: self.base.into_iter().collect(),
            system_packages: self.allow_system_package,
            pool: mcpod::session::policy::PoolPolicy {
                warm: self.warm.into_iter().collect(),
                max: self.pool_max.unwrap_or(d.pool.max),
                spare_secs: self.spare_secs.unwrap_or(d.pool.spare_secs),
            },
            allow_egress: self.allow_egress,
            egress_log: self.egress_log,
            meta_tools_only: self.meta_tools_only,
            engines: self.engines.specs()?,
            engine_max: self.engines.engine_max.clone(),
            registry: self.engines.registry,
            writable_path_mb: self.writable_path_mb.unwrap_or(d.writable_path_mb),
            only_engines: None,
        })
    }
}

/// `--allow-system-package NAME`: a Debian package name, no version.
fn parse_debian_name(s: &str) -> Result<String, String> {
    if s.contains('=') || !mcpod::provision::debian::is_package(s) {
        return Err(format!(
            "`{s}` is not a Debian package name (lowercase letters, digits, `+-.`, e.g. git)"
        ));
    }
    Ok(s.to_string())
}
