//! The JSON Schemas of the label formats and of every tool's input and output,
//! generated from the Rust types into `schemas/`.

use std::path::Path;

use schemars::schema_for;
use serde_json::Value;

use crate::image::{Built, Inspected};
use crate::server::tools::{
    BuildImageInput, CallToolInput, FindToolsInput, FoundTools, InspectLabelsInput,
    ListSessionsInput, SessionList, StopSessionInput, Stopped,
};
use crate::session::{LaunchInput, Launched, Logs, LogsInput, PolicyReport};
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
        ("tool.launch_session.output.json", schema_for!(Launched)),
        (
            "tool.list_sessions.input.json",
            schema_for!(ListSessionsInput),
        ),
        ("tool.list_sessions.output.json", schema_for!(SessionList)),
        ("tool.show_policy.output.json", schema_for!(PolicyReport)),
        (
            "tool.stop_session.input.json",
            schema_for!(StopSessionInput),
        ),
        ("tool.stop_session.output.json", schema_for!(Stopped)),
        ("tool.session_logs.input.json", schema_for!(LogsInput)),
        ("tool.session_logs.output.json", schema_for!(Logs)),
        ("tool.call_tool.input.json", schema_for!(CallToolInput)),
        ("tool.find_tools.input.json", schema_for!(FindToolsInput)),
        ("tool.find_tools.output.json", schema_for!(FoundTools)),
        (
            "tool.provision_server.input.json",
            schema_for!(crate::provision::ProvisionRequest),
        ),
        (
            "tool.provision_server.output.json",
            schema_for!(crate::provision::Provisioned),
        ),
        (
            "tool.list_bases.output.json",
            schema_for!(crate::server::tools::BaseList),
        ),
        (
            "tool.read_audit.input.json",
            schema_for!(crate::logging::audit_read::ReadAuditInput),
        ),
        (
            "tool.read_audit.output.json",
            schema_for!(crate::logging::audit_read::AuditView),
        ),
    ];
    out.extend(
        tools
            .into_iter()
            .map(|(name, schema)| (name.to_string(), schema.to_value())),
    );
    for (_, schema) in &mut out {
        crate::server::portable::portable(schema);
    }
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
            let listed = tool == "show_policy"
                || tool == "list_bases"
                || super::all().iter().any(|(n, _)| *n == input);
            assert!(listed, "no {input} among the published schemas");
        }
    }

    /// Every published schema, as checked in and as generated, is one every
    /// client takes without a warning.
    #[test]
    fn schemas_are_portable() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let mut findings = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("schemas/") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            let schema: serde_json::Value = serde_json::from_str(&text).expect("json");
            for f in crate::server::portable::lint(&schema) {
                findings.push(format!("{}: {f}", path.display()));
            }
        }
        for (name, schema) in super::all() {
            for f in crate::server::portable::lint(&schema) {
                findings.push(format!("generated {name}: {f}"));
            }
        }
        // What tools/list serves.
        for tool in crate::server::McpodServer::portable_router().list_all() {
            let schemas = std::iter::once(("input", Some(tool.input_schema.clone())))
                .chain(std::iter::once(("output", tool.output_schema.clone())));
            for (which, schema) in schemas {
                let Some(schema) = schema else { continue };
                let schema = serde_json::Value::Object((*schema).clone());
                for f in crate::server::portable::lint(&schema) {
                    findings.push(format!("tools/list {} {which}: {f}", tool.name));
                }
            }
        }
        assert!(findings.is_empty(), "{findings:#?}");
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
