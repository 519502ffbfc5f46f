//! `mcpod pod`: a session as a Kubernetes Pod manifest.

use clap::Args;
use mcpod::session::Sessions;

use super::JsonFlag;
use super::output::{cancel_on_ctrl_c, progress_to_stderr, warnings_text};
use super::policy::PolicyArgs;
use super::session::LaunchSpecArgs;

#[derive(Args)]
pub struct PodArgs {
    #[command(flatten)]
    spec: LaunchSpecArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// Print the Pod as a JSON report (manifest, network policy, session,
    /// servers, isolation, warnings) instead of the manifest documents.
    #[command(flatten)]
    out: JsonFlag,
}

/// Print the manifest: the Pod, then (unless the session has the network)
/// the NetworkPolicy that stands for `--network none`, as `---`-separated
/// YAML documents, each written as JSON.
pub async fn pod(args: PodArgs) -> Result<(), String> {
    let input = args.spec.input()?;
    let sessions = Sessions::new(args.policy.policy()?).map_err(|e| e.to_string())?;
    let pod = sessions
        .pod(input, progress_to_stderr(args.out.json), cancel_on_ctrl_c())
        .await
        .map_err(|e| e.to_string())?;
    if args.out.json {
        let text = serde_json::to_string_pretty(&pod).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        eprint!("{}", warnings_text(&pod.warnings));
        print!("{}", pod.documents());
    }
    Ok(())
}
