//! `mcpod config`: register mcpod with an MCP client.

use std::path::{Path, PathBuf};

use clap::Args;
use mcpod::clients::{Client, DEFAULT_TOKEN_ENV, Entry, Launch, Remote, Scope};

use super::policy::PolicyArgs;

#[derive(Args)]
pub struct ConfigArgs {
    /// The client to register with.
    #[arg(long, value_enum)]
    client: Client,
    /// The project's file (committed: the entry runs `mcpod` from PATH on the
    /// project's own root) or the user's (this binary, no fixed root). Default:
    /// the client's project file where it has one (Codex: the user's).
    #[arg(long, value_enum)]
    scope: Option<Scope>,
    /// The workspace root mcpod serves. A project entry keeps a relative root
    /// relative to the project; a user entry has none unless this is given.
    #[arg(long)]
    root: Option<PathBuf>,
    /// The command the client runs (default: `mcpod` in a project file, this
    /// binary's absolute path in a user file).
    #[arg(long)]
    command: Option<String>,
    /// Merge the entry into the client's file (keeping what is there, with a .bak backup).
    #[arg(long)]
    write: bool,
    /// The file to write instead of the client's default.
    #[arg(long)]
    path: Option<PathBuf>,
    /// Print how the client approves or trusts the entry, and what it supports, instead.
    #[arg(long)]
    print_approval: bool,
    /// Shared mode: point the client at a running `mcpod serve --listen`
    /// (http://127.0.0.1:PORT/mcp; https:// for any host but loopback)
    /// instead of starting mcpod.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// With --url: the environment variable the client reads the token from
    /// when it starts. The file holds this name, never the token.
    #[arg(long, value_name = "NAME", requires = "url", default_value = DEFAULT_TOKEN_ENV)]
    token_env: String,
    #[command(flatten)]
    policy: PolicyArgs,
}

/// The entry for `client` in `scope`.
fn launch(args: &ConfigArgs, scope: Scope) -> Result<Launch, String> {
    let command = match &args.command {
        Some(c) => c.clone(),
        None if scope == Scope::Project => "mcpod".to_string(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot tell where the mcpod binary is: {e} (pass --command)"))?
            .display()
            .to_string(),
    };
    let mut mcpod_args = vec!["serve".to_string()];
    let root = match (&args.root, scope) {
        (None, Scope::Project) => Some(args.client.project_root().to_string()),
        (None, Scope::User) => None,
        (Some(r), Scope::Project) if r.is_relative() => Some(portable(args.client, r)),
        (Some(r), _) => Some(
            r.canonicalize()
                .map_err(|e| format!("--root `{}`: {e}", r.display()))?
                .display()
                .to_string(),
        ),
    };
    if let Some(root) = root {
        mcpod_args.extend(["--root".to_string(), root]);
    }
    mcpod_args.extend(args.policy.to_args());
    Ok(Launch {
        command,
        args: mcpod_args,
    })
}

/// The shared-mode entry, refused with what the stdio entry alone takes:
/// these flags configure the mcpod a client starts, and with --url the client
/// starts none.
fn remote(args: &ConfigArgs, url: &str) -> Result<Remote, String> {
    let mut stdio_only: Vec<String> = Vec::new();
    if args.root.is_some() {
        stdio_only.push("--root".into());
    }
    if args.command.is_some() {
        stdio_only.push("--command".into());
    }
    for arg in args.policy.to_args() {
        let flag = arg.split('=').next().unwrap_or(&arg).to_string();
        if !stdio_only.contains(&flag) {
            stdio_only.push(flag);
        }
    }
    if !stdio_only.is_empty() {
        return Err(format!(
            "--url cannot be used with {}: with --url the client starts no mcpod, so these \
flags have nothing to configure. Pass them to `mcpod serve --listen` instead, or drop --url for \
the stdio entry",
            stdio_only.join(", ")
        ));
    }
    args.client.check_http().map_err(|e| e.to_string())?;
    Remote::new(url, &args.token_env).map_err(|e| e.to_string())
}

/// A relative root as a project entry spells it.
fn portable(client: Client, root: &Path) -> String {
    let rel = root.display().to_string();
    let rel = rel.trim_start_matches("./");
    match client.project_root() {
        "." if rel.is_empty() => ".".to_string(),
        "." => rel.to_string(),
        var if rel.is_empty() || rel == "." => var.to_string(),
        var => format!("{var}/{rel}"),
    }
}

fn on_path(command: &str) -> bool {
    if command.contains('/') {
        return Path::new(command).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(command).is_file()))
}

pub fn config(args: ConfigArgs) -> Result<(), String> {
    let client = args.client;
    let scope = args.scope.unwrap_or(client.default_scope());
    let path = match &args.path {
        Some(p) => p.clone(),
        None => client.path(scope).map_err(|e| e.to_string())?,
    };
    let remote = match &args.url {
        Some(url) => Some(remote(&args, url)?),
        None => None,
    };
    let approval = match &remote {
        Some(r) => format!("{} {}", client.approval(scope, &path), client.http_note(r)),
        None => client.approval(scope, &path),
    };
    if args.print_approval {
        println!("{approval}");
        return Ok(());
    }
    let entry = match remote {
        Some(r) => Entry::Http(r),
        None => Entry::Stdio(launch(&args, scope)?),
    };
    if !args.write {
        print!("{}", client.render(&entry).map_err(|e| e.to_string())?);
        return Ok(());
    }
    let backup = client.write(&path, &entry).map_err(|e| e.to_string())?;
    match backup {
        Some(b) => eprintln!(
            "registered mcpod in {} (previous file kept as {})",
            path.display(),
            b.display()
        ),
        None => eprintln!("registered mcpod in {} (new file)", path.display()),
    }
    match &entry {
        Entry::Stdio(launch) if !on_path(&launch.command) => eprintln!(
            "note: the entry runs `{}`, which is not on this PATH: install mcpod (`cargo install --path .`) or pass --command",
            launch.command
        ),
        Entry::Http(r) if std::env::var_os(r.token_env()).is_none() => eprintln!(
            "note: {} is not set here: the client reads the token from it when it starts",
            r.token_env()
        ),
        _ => {}
    }
    eprintln!("{approval}");
    Ok(())
}
