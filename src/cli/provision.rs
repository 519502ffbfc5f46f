//! Provisioning commands: `provision` (the provision_server tool) and `bases`
//! (the list_bases tool), and the provisioning flags `launch` shares.

use std::path::PathBuf;

use clap::Args;
use mcpod::provision::{self, ProvisionRequest};
use mcpod::workspace::Workspace;

use super::output::{cancel_on_ctrl_c, print, progress_to_stderr, warnings_text};
use super::policy::PolicyArgs;
use super::{JsonFlag, parse_key_value};

/// How to provision a package or a server.json (shared by `provision` and `launch`).
#[derive(Args, Default, Clone)]
pub struct ProvisionArgs {
    /// An MCP-registry server.json file (relative to --root), instead of a package reference.
    #[arg(long, value_name = "FILE")]
    server_json: Option<String>,
    /// Which of the server.json's packages (0-based).
    #[arg(long)]
    package_index: Option<usize>,
    /// A value for a server.json package argument, NAME=VALUE. Repeatable.
    #[arg(long = "argument", value_parser = parse_key_value)]
    arguments: Vec<(String, String)>,
    /// A literal value for a server.json (non-secret) environment variable, NAME=VALUE. Repeatable.
    #[arg(long = "variable", value_parser = parse_key_value)]
    variables: Vec<(String, String)>,
    /// A pin for a dependency: npm NAME@RANGE, PyPI e.g. `mcp<2`. Repeatable.
    #[arg(long = "pin")]
    pins: Vec<String>,
    /// The package's program to run, when it has several.
    #[arg(long)]
    bin: Option<String>,
    /// The server's name in the image's labels.
    #[arg(long = "server-name")]
    server_name: Option<String>,
    /// Resolve the dependencies as they stood when the package was published
    /// (`published`) or at the end of a past day (YYYY-MM-DD).
    #[arg(long = "as-of", value_name = "published|YYYY-MM-DD")]
    resolve_as_of: Option<String>,
    /// Resolve again instead of reusing the recorded lock.
    #[arg(long)]
    refresh: bool,
    /// The runtime to run on: node@22, node@22.5.1, python@3.13, node@host
    /// (default: from the package's engines.node or Requires-Python).
    #[arg(long, value_name = "NAME@VERSION")]
    runtime: Option<String>,
    /// A Debian package the server runs (e.g. git), installed into its base
    /// at an exact version; needs --allow-system-package NAME. Repeatable.
    #[arg(long = "system-package", value_name = "NAME")]
    system_packages: Vec<String>,
    /// The workspace root a --server-json path resolves in.
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

impl ProvisionArgs {
    /// The request for `package` (or the server.json), if there is anything to provision.
    pub fn request(self, package: Option<String>) -> Result<Option<ProvisionRequest>, String> {
        if package.is_none() && self.server_json.is_none() {
            return Ok(None);
        }
        let request = ProvisionRequest {
            package,
            server_json: None,
            server_json_path: self.server_json,
            package_index: self.package_index,
            arguments: self.arguments.into_iter().collect(),
            env: self.variables.into_iter().collect(),
            pins: self.pins,
            bin: self.bin,
            server: self.server_name,
            resolve_as_of: self.resolve_as_of,
            refresh: self.refresh,
            runtime: self.runtime,
            system_packages: self.system_packages,
        };
        let workspace = Workspace::new(&self.root).map_err(|e| e.to_string())?;
        request
            .read_paths(&workspace)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

#[derive(Args)]
pub struct ProvisionCommand {
    /// npm:NAME@VERSION or pypi:NAME==VERSION (a range or a bare name is resolved once).
    package: Option<String>,
    #[command(flatten)]
    how: ProvisionArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Args)]
pub struct BasesCommand {
    /// Make a base again: node or python (from the host's program, e.g. after an upgrade),
    /// or a version as a request's runtime names it (node@22, python@3.13).
    #[arg(long, value_name = "RUNTIME")]
    remake: Option<String>,
    /// Ask the npm registry now which node versions can be made.
    #[arg(long)]
    refresh: bool,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    out: JsonFlag,
}

pub async fn provision(args: ProvisionCommand) -> Result<(), String> {
    let request = args.how.request(args.package)?.ok_or_else(|| {
        "nothing to provision. Fix: pass npm:NAME@VERSION, pypi:NAME==VERSION, or --server-json FILE".to_string()
    })?;
    let policy = args.policy.policy()?;
    let done = provision::provision(
        request,
        &policy.bases,
        &policy.system_packages,
        progress_to_stderr(args.out.json),
        cancel_on_ctrl_c(),
    )
    .await
    .map_err(|e| e.to_string())?;
    print(&done, args.out.json, || {
        let mut text = format!(
            "{}: {} ({}, {} ms{})\n  server {}: {}\n",
            done.reference,
            done.image.tag,
            if done.image.cache_hit {
                "cache hit"
            } else {
                "built"
            },
            done.duration_ms,
            if done.fetched {
                ", fetched"
            } else {
                ", nothing fetched"
            },
            done.server,
            done.spec.command.join(" "),
        );
        if let Some(from) = &done.resolved_from {
            text.push_str(&format!("  resolved from {from}\n"));
        }
        for note in &done.notes {
            text.push_str(&format!("  note: {note}\n"));
        }
        text.push_str(&warnings_text(&done.warnings));
        text
    })
}

pub async fn bases(args: BasesCommand) -> Result<(), String> {
    let policy = args.policy.policy()?;
    let cancel = cancel_on_ctrl_c();
    if let Some(runtime) = &args.remake {
        let pick = provision::bases::choice::named(runtime, cancel.clone())
            .await
            .map_err(|e| e.to_string())?;
        provision::bases::remake(&pick, progress_to_stderr(args.out.json), cancel.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    let bases = provision::bases::list(&policy.bases)
        .await
        .map_err(|e| e.to_string())?;
    let can_be_made = provision::bases::makeable(args.refresh, cancel).await;
    let list = mcpod::server::tools::BaseList { bases, can_be_made };
    print(&list, args.out.json, || {
        let made: String = list
            .bases
            .iter()
            .map(|b| match &b.base {
                Some(base) => format!(
                    "{}: {} {} ({}), {}\n",
                    b.runtime.as_str(),
                    base.image,
                    base.version,
                    base.origin,
                    b.state
                ),
                None => format!(
                    "{}: {}, from {}\n",
                    b.runtime.as_str(),
                    b.state,
                    b.will_be_made_from.as_deref().unwrap_or("?")
                ),
            })
            .collect();
        let makeable: String = list
            .can_be_made
            .iter()
            .map(|m| {
                format!(
                    "can be made, {}: {}\n  default: {}\n  from: {}\n",
                    m.runtime.as_str(),
                    m.versions.join(", "),
                    m.default,
                    m.source
                )
            })
            .collect();
        made + &makeable
    })
}
