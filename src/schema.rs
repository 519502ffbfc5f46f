//! The JSON Schemas of the label formats and of every tool's input and output,
//! generated from the Rust types into `schemas/`.

use std::path::Path;

use schemars::schema_for;
use serde_json::Value;

use crate::image::{Built, Inspected};
use crate::server::tools::{BuildImageInput, InspectLabelsInput};
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
