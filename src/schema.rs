//! The JSON Schemas of the label formats and of every tool's input and output,
//! generated from the Rust types into `schemas/`.

use std::path::Path;

use schemars::schema_for;
use serde_json::Value;

use crate::image::{Built, Inspected};
use crate::server::tools::{
    BuildImageInput, CallToolInput, InspectLabelsInput, SessionList, StopSessionInput, Stopped,
};
use crate::session::{LaunchInput, Logs, LogsInput, SessionInfo};
use crate::{Error, Result, labels};

/// Every schema mcpod publishes: (file name, schema).
pub fn all() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = labels::json_schemas()
        .into_iter()
        .map(|(name, schema)| (name.to_string(), schema))
        .collect();
    let tools = [
        ("tool.build_image.input.json", schema_for!(BuildImageInput)),
        ("tool.build_image.output.json", schema_for!(Built)),
        (
            "tool.inspect_labels.input.json",
            schema_for!(InspectLabelsInput),
        ),
        ("tool.inspect_labels.output.json", schema_for!(Inspected)),
        ("tool.launch_session.input.json", schema_for!(LaunchInput)),
        ("tool.launch_session.output.json", schema_for!(SessionInfo)),
        ("tool.list_sessions.output.json", schema_for!(SessionList)),
        (
            "tool.stop_session.input.json",
            schema_for!(StopSessionInput),
        ),
        ("tool.stop_session.output.json", schema_for!(Stopped)),
        ("tool.session_logs.input.json", schema_for!(LogsInput)),
        ("tool.session_logs.output.json", schema_for!(Logs)),
        ("tool.call_tool.input.json", schema_for!(CallToolInput)),
    ];
    out.extend(
        tools
            .into_iter()
            .map(|(name, schema)| (name.to_string(), schema.to_value())),
    );
    out
}

fn render(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Write every schema into `dir`.
pub fn write(dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let mut written = Vec::new();
    for (name, schema) in all() {
        let path = dir.join(&name);
        std::fs::write(&path, render(&schema)).map_err(|e| Error::io("writing", &path, e))?;
        written.push(name);
    }
    Ok(written)
}

/// The schema files in `dir` that are missing or differ from the generated ones.
pub fn stale(dir: &Path) -> Vec<String> {
    all()
        .into_iter()
        .filter(|(name, schema)| {
            std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(render(schema).as_str())
        })
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    /// README's tool reference names every tool the server offers, and each has
    /// its input schema in schemas/.
    #[test]
    fn readme_and_schemas_cover_every_tool() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
        for tool in crate::server::McpodServer::tool_names() {
            assert!(
                readme.contains(&format!("| `{tool}` |")),
                "README's tool table lacks `{tool}`"
            );
            let input = format!("tool.{tool}.input.json");
            let listed = tool == "list_sessions" || super::all().iter().any(|(n, _)| *n == input);
            assert!(listed, "no {input} among the published schemas");
        }
    }

    #[test]
    fn checked_in_schemas_are_fresh() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let stale = super::stale(&dir);
        assert!(
            stale.is_empty(),
            "stale schema files {stale:?}: run `cargo run -- schema --write`"
        );
    }
}
