//! Printing results: JSON for scripts, text for people.

use mcpod::labels::Servers;
use serde::Serialize;

pub fn servers_text(servers: &Servers, source: Option<&str>) -> String {
    if servers.is_empty() {
        return "declares no MCP servers\n".into();
    }
    let mut text = format!("MCP servers ({}):\n", source.unwrap_or("labels"));
    for (name, spec) in servers {
        text.push_str(&format!("  {name}: {}\n", spec.command.join(" ")));
    }
    text
}

pub fn warnings_text(warnings: &[String]) -> String {
    warnings.iter().map(|w| format!("warning: {w}\n")).collect()
}

pub fn print<T: Serialize>(
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

/// A token cancelled by Ctrl-C, so a long command stops cleanly.
pub fn cancel_on_ctrl_c() -> tokio_util::sync::CancellationToken {
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    cancel
}

/// Progress lines to stderr, unless the output is JSON for a script.
pub fn progress_to_stderr(quiet: bool) -> mcpod::image::Progress {
    std::sync::Arc::new(move |line: String| {
        if !quiet {
            eprintln!("  {line}");
        }
    })
}
