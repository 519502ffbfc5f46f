//! `mcpod config`: register mcpod with an MCP client.

use std::path::PathBuf;

use clap::Args;

use super::policy::PolicyArgs;

#[derive(Args)]
pub struct ConfigArgs {
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

pub fn config(args: ConfigArgs) -> Result<(), String> {
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
