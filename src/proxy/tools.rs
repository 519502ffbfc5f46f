//! What of a child's tools mcpod exports: the first of each name, at most
//! [`MAX_PER_SERVER`] of them, none larger than [`MAX_TOOL_BYTES`], with a
//! warning naming the server for everything left out. The whole list mcpod
//! serves is capped at [`MAX_LISTED`] (see `Sessions::tools`).

use std::collections::HashSet;

use rmcp::model::Tool;

/// Tools of one server that are exported.
pub const MAX_PER_SERVER: usize = 100;
/// Tools in mcpod's `tools/list`, its own included: VS Code and the OpenAI
/// API take at most 128 tools, and every client pays for each schema.
pub const MAX_LISTED: usize = 128;
/// The largest tool definition (name, description, schemas) exported, as JSON.
pub const MAX_TOOL_BYTES: usize = 64 * 1024;

/// The tools of `server` that are exported, and a warning for each kind of
/// tool left out.
pub fn admit(server: &str, listed: Vec<Tool>) -> (Vec<Tool>, Vec<String>) {
    let mut seen = HashSet::new();
    let mut duplicates = Vec::new();
    let mut oversized = Vec::new();
    let mut over_count = 0usize;
    let mut tools = Vec::new();
    for tool in listed {
        if !seen.insert(tool.name.clone()) {
            duplicates.push(tool.name.to_string());
            continue;
        }
        let bytes = serde_json::to_vec(&tool).map_or(usize::MAX, |v| v.len());
        if bytes > MAX_TOOL_BYTES {
            oversized.push(format!("{} ({bytes} bytes)", tool.name));
            continue;
        }
        if tools.len() == MAX_PER_SERVER {
            over_count += 1;
            continue;
        }
        tools.push(tool);
    }
    let mut warnings = Vec::new();
    if !duplicates.is_empty() {
        duplicates.dedup();
        warnings.push(format!(
            "server `{server}` lists these tool names more than once; the first of each is exported: {}",
            shortlist(&duplicates)
        ));
    }
    if !oversized.is_empty() {
        warnings.push(format!(
            "server `{server}` lists tools larger than mcpod's limit of {MAX_TOOL_BYTES} bytes each; they are not exported: {}",
            shortlist(&oversized)
        ));
    }
    if over_count > 0 {
        warnings.push(format!(
            "server `{server}` lists {} tools; mcpod exports the first {MAX_PER_SERVER}",
            MAX_PER_SERVER + over_count
        ));
    }
    (tools, warnings)
}

/// The first few of `names`, and how many more.
fn shortlist(names: &[String]) -> String {
    let mut s = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        s.push_str(&format!(" and {} more", names.len() - 5));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, description: &str) -> Tool {
        Tool::new(
            name.to_string(),
            description.to_string(),
            std::sync::Arc::new(serde_json::Map::new()),
        )
    }

    #[test]
    fn the_first_of_a_duplicated_name_is_exported_once() {
        let (tools, warnings) = admit(
            "fs",
            vec![tool("a", "first"), tool("b", ""), tool("a", "second")],
        );
        assert_eq!(tools.len(), 2);
        assert_eq!(tools[0].description.as_deref(), Some("first"));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("server `fs`") && warnings[0].contains(": a"),
            "{warnings:?}"
        );
    }

    #[test]
    fn too_many_or_too_large_tools_are_left_out_with_a_warning() {
        let mut listed: Vec<Tool> = (0..150).map(|i| tool(&format!("t{i}"), "")).collect();
        listed.push(tool("huge", &"x".repeat(MAX_TOOL_BYTES)));
        let (tools, warnings) = admit("many", listed);
        assert_eq!(tools.len(), MAX_PER_SERVER);
        assert_eq!(tools[0].name, "t0");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("huge") && w.contains("bytes")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("lists 150 tools")),
            "{warnings:?}"
        );
    }
}
