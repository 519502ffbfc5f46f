//! Image commands: `build` and `inspect` (the build_image and inspect_labels tools).

use std::path::PathBuf;

use clap::Args;
use mcpod::image;
use mcpod::labels::Servers;
use mcpod::server::tools::BuildImageInput;
use mcpod::workspace::Workspace;

use super::output::{cancel_on_ctrl_c, print, progress_to_stderr, servers_text, warnings_text};
use super::{JsonFlag, parse_key_value};

#[derive(Args)]
pub struct BuildArgs {
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
    /// Give the RUN steps podman's network (default: none, only loopback).
    #[arg(long)]
    build_network: bool,
    #[arg(long, default_value = ".")]
    root: PathBuf,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Args)]
pub struct InspectArgs {
    /// A local reference, or docker://REF for a registry.
    reference: String,
    #[command(flatten)]
    out: JsonFlag,
}

pub async fn build(args: BuildArgs) -> Result<(), String> {
    image::isolation::set_policy(image::isolation::BuildPolicy {
        network: args.build_network,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
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
    let cancel = cancel_on_ctrl_c();
    let progress = progress_to_stderr(args.out.json);
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

pub async fn inspect(args: InspectArgs) -> Result<(), String> {
    let inspected = image::inspect_labels(&args.reference)
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
