//! The JSON Schemas of the label values, generated from the wire types in `spec.rs`.

use schemars::{JsonSchema, SchemaGenerator};
use serde_json::Value;

use super::spec::{OutrigServersLabel, RequestsLabel, SchemaLabel, ServersLabel};

/// `(file name, schema)` for each label value format, e.g.
/// `("label.io.mcpod.servers.json", {...})`, in a fixed order. Deterministic: the same build
/// always gives the same values.
pub fn json_schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("label.io.mcpod.servers.json", schema_of::<ServersLabel>()),
        ("label.io.mcpod.schema.json", schema_of::<SchemaLabel>()),
        ("label.io.mcpod.requests.json", schema_of::<RequestsLabel>()),
        (
            "label.org.outrig.mcp.json",
            schema_of::<OutrigServersLabel>(),
        ),
    ]
}

fn schema_of<T: JsonSchema>() -> Value {
    SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(name: &str) -> Value {
        json_schemas()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s)
            .unwrap_or_else(|| panic!("no schema {name}"))
    }

    #[test]
    fn schemas_are_deterministic_and_named() {
        let a = json_schemas();
        let b = json_schemas();
        assert_eq!(a, b);
        let names: Vec<_> = a.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "label.io.mcpod.servers.json",
                "label.io.mcpod.schema.json",
                "label.io.mcpod.requests.json",
                "label.org.outrig.mcp.json"
            ]
        );
    }

    #[test]
    fn servers_schema_has_the_union_and_the_name_rule() {
        let s = schema("label.io.mcpod.servers.json");
        assert_eq!(s["title"], "io.mcpod.servers");
        assert_eq!(s["type"], "object");
        assert_eq!(
            s["propertyNames"]["pattern"],
            "^[a-zA-Z][a-zA-Z0-9_-]{0,31}$"
        );
        assert_eq!(s["maxProperties"], 64);
        let text = s.to_string();
        assert!(text.contains("anyOf"), "{text}");
        assert!(text.contains("call_timeout_secs"), "{text}");
        assert!(text.contains("\"maximum\":3600"), "{text}");
    }

    #[test]
    fn outrig_schema_uses_the_kebab_case_timeout() {
        let text = schema("label.org.outrig.mcp.json").to_string();
        assert!(text.contains("call-timeout-secs"), "{text}");
        assert!(!text.contains("call_timeout_secs"), "{text}");
    }

    #[test]
    fn requests_schema_lists_the_fields() {
        let s = schema("label.io.mcpod.requests.json");
        let props = s["properties"].as_object().unwrap();
        let mut keys: Vec<_> = props.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "cpus",
                "egress",
                "env",
                "forwards",
                "memory_mb",
                "network",
                "pids",
                "writable_paths"
            ]
        );
    }
}
