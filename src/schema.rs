//! The JSON Schemas of the label formats and of every tool's input and output,
//! generated from the Rust types into `schemas/`.

use std::path::Path;

use schemars::schema_for;
use serde_json::Value;

use crate::image::{Built, Inspected};
use crate::server::tools::{
    BuildImageInput, CallToolInput, FindToolsInput, FoundTools, InspectLabelsInput, SessionList,
    StopSessionInput, Stopped,
};
use crate::session::{LaunchInput, Logs, LogsInput, PolicyReport, SessionInfo};
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
    ];
    out.extend(
        tools
            .into_iter()
            .map(|(name, schema)| (name.to_string(), schema.to_value())),
    );
    for (_, schema) in &mut out {
        portable(schema);
    }
    out
}

/// The formats JSON Schema 2020-12 defines; clients warn about any other
/// (Gemini CLI at every start, the Inspector at every validated result).
pub const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Keywords that say something of the value (the Inspector's list): a schema
/// with none of them accepts anything.
const CONSTRAINING: &[&str] = &[
    "type",
    "enum",
    "const",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "format",
    "contentMediaType",
    "contentEncoding",
    "contentSchema",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxContains",
    "minContains",
    "maxProperties",
    "minProperties",
    "required",
    "dependentRequired",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "items",
    "prefixItems",
    "contains",
    "additionalItems",
    "unevaluatedItems",
    "properties",
    "patternProperties",
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "dependentSchemas",
    "dependencies",
    "$ref",
    "$dynamicRef",
    "$recursiveRef",
];

/// Keywords that annotate rather than validate: they stay on the outer schema
/// when a type array is split into `anyOf` branches.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "$schema",
    "$id",
    "$defs",
    "definitions",
];

/// Rewrite a schema (as schemars makes it) into what every client accepts
/// without a warning: schemars' Rust formats (`uint32`, `uint64`, `uint`,
/// `int32`, `double`) become `minimum`/`maximum` or go, and a type array
/// (`["integer", "null"]`) becomes `anyOf` branches of one type each.
pub fn portable(schema: &mut Value) {
    let Value::Object(node) = schema else {
        return;
    };
    if let Some(format) = node
        .get("format")
        .and_then(Value::as_str)
        .map(str::to_string)
        && !STANDARD_FORMATS.contains(&format.as_str())
    {
        node.remove("format");
        let (min, max): (Option<Value>, Option<Value>) = match format.as_str() {
            "uint8" => (Some(0.into()), Some(u8::MAX.into())),
            "uint16" => (Some(0.into()), Some(u16::MAX.into())),
            "uint32" => (Some(0.into()), Some(u32::MAX.into())),
            "uint64" | "uint" | "uint128" => (Some(0.into()), None),
            "int8" => (Some(i8::MIN.into()), Some(i8::MAX.into())),
            "int16" => (Some(i16::MIN.into()), Some(i16::MAX.into())),
            "int32" => (Some(i32::MIN.into()), Some(i32::MAX.into())),
            _ => (None, None),
        };
        if let Some(min) = min {
            node.entry("minimum").or_insert(min);
        }
        if let Some(max) = max {
            node.entry("maximum").or_insert(max);
        }
    }
    if let Some(Value::Array(types)) = node.get("type").cloned() {
        node.remove("type");
        let moved: Vec<(String, Value)> = node
            .iter()
            .filter(|(k, _)| !ANNOTATIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, _) in &moved {
            node.remove(k);
        }
        let branches: Vec<Value> = types
            .into_iter()
            .map(|t| {
                let mut branch = serde_json::Map::new();
                if t != "null" {
                    branch.extend(moved.iter().cloned());
                }
                branch.insert("type".into(), t);
                Value::Object(branch)
            })
            .collect();
        if let [one] = branches.as_slice() {
            if let Value::Object(one) = one.clone() {
                node.extend(one);
            }
        } else {
            node.insert("anyOf".into(), Value::Array(branches));
        }
    }
    for (_, child) in node.iter_mut() {
        match child {
            Value::Object(_) => portable(child),
            Value::Array(items) => items.iter_mut().for_each(portable),
            _ => {}
        }
    }
}

/// What a client would warn about in `schema`: a non-standard `format`, a type
/// array, a schema with no validation keyword (the Inspector's `--strict`
/// rules), a bare boolean schema. Each finding names its JSON path.
pub fn lint(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    lint_at(schema, "$", None, &mut out);
    out
}

const SUBSCHEMA: &[&str] = &[
    "items",
    "contains",
    "not",
    "propertyNames",
    "if",
    "then",
    "else",
    "additionalProperties",
    "unevaluatedProperties",
    "additionalItems",
    "unevaluatedItems",
    "contentSchema",
];
const SUBSCHEMA_ARRAYS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
const SUBSCHEMA_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "dependentSchemas",
    "dependencies",
    "$defs",
    "definitions",
];

fn lint_at(node: &Value, path: &str, keyword: Option<&str>, out: &mut Vec<String>) {
    let node = match node {
        Value::Bool(_) => {
            let allowed = [
                "additionalProperties",
                "unevaluatedProperties",
                "additionalItems",
                "unevaluatedItems",
            ];
            if !keyword.is_some_and(|k| allowed.contains(&k)) {
                out.push(format!("{path}: a bare boolean schema"));
            }
            return;
        }
        Value::Object(node) => node,
        _ => return,
    };
    if let Some(Value::Array(_)) = node.get("type") {
        out.push(format!("{path}: `type` is an array"));
    }
    if let Some(format) = node.get("format").and_then(Value::as_str)
        && !STANDARD_FORMATS.contains(&format)
    {
        out.push(format!("{path}: non-standard format `{format}`"));
    }
    let constrains = node.keys().any(|k| CONSTRAINING.contains(&k.as_str()))
        || (node.contains_key("if") && (node.contains_key("then") || node.contains_key("else")));
    if !constrains && keyword != Some("not") {
        out.push(format!("{path}: no validation keyword (accepts anything)"));
    }
    for key in SUBSCHEMA {
        if let Some(child) = node.get(*key) {
            match child {
                Value::Array(items) if *key == "items" => {
                    for (i, item) in items.iter().enumerate() {
                        lint_at(item, &format!("{path}.{key}[{i}]"), Some(key), out);
                    }
                }
                _ => lint_at(child, &format!("{path}.{key}"), Some(key), out),
            }
        }
    }
    for key in SUBSCHEMA_ARRAYS {
        if let Some(Value::Array(items)) = node.get(*key) {
            for (i, item) in items.iter().enumerate() {
                lint_at(item, &format!("{path}.{key}[{i}]"), Some(key), out);
            }
        }
    }
    for key in SUBSCHEMA_MAPS {
        if let Some(Value::Object(map)) = node.get(*key) {
            for (name, sub) in map {
                lint_at(sub, &format!("{path}.{key}.{name}"), Some(key), out);
            }
        }
    }
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
            let listed = tool == "list_sessions"
                || tool == "show_policy"
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
            for f in super::lint(&schema) {
                findings.push(format!("{}: {f}", path.display()));
            }
        }
        for (name, schema) in super::all() {
            for f in super::lint(&schema) {
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
                for f in super::lint(&schema) {
                    findings.push(format!("tools/list {} {which}: {f}", tool.name));
                }
            }
        }
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn portable_rewrites_what_clients_flag() {
        let mut s = serde_json::json!({
            "type": "object",
            "properties": {
                "n": {"type": ["integer", "null"], "format": "uint32", "minimum": 0, "default": null, "description": "d"},
                "x": {"type": "number", "format": "double"},
                "i": {"type": "integer", "format": "int32"},
                "u": {"type": "integer", "format": "uint64", "minimum": 0},
                "l": {"type": ["array", "null"], "items": {"type": "string"}},
                "t": {"type": "string", "format": "date-time"}
            }
        });
        assert_eq!(super::lint(&s).len(), 6, "{:?}", super::lint(&s));
        super::portable(&mut s);
        assert_eq!(super::lint(&s), Vec::<String>::new());
        assert_eq!(
            s["properties"]["n"],
            serde_json::json!({"anyOf": [{"type": "integer", "minimum": 0, "maximum": 4294967295u32}, {"type": "null"}], "default": null, "description": "d"})
        );
        assert_eq!(s["properties"]["x"], serde_json::json!({"type": "number"}));
        assert_eq!(s["properties"]["i"]["minimum"], i32::MIN);
        assert_eq!(
            s["properties"]["u"],
            serde_json::json!({"type": "integer", "minimum": 0})
        );
        assert_eq!(s["properties"]["l"]["anyOf"][0]["items"]["type"], "string");
        assert_eq!(s["properties"]["t"]["format"], "date-time");
        assert!(!super::lint(&serde_json::json!({"properties": {"a": {}}})).is_empty());
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
