//! The labels to stamp on a built image, and the canonical serialisation of servers (also
//! used in the build cache key, so it must never depend on insertion order or map type).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::json::{self, ROOT};
use super::read::read;
use super::spec::{ServerSpec, Servers};
use super::validate::{self, Problem};
use super::{MAX_LABEL_BYTES, SCHEMA, SCHEMA_VERSION, SERVERS};
use crate::Result;

/// The labels to stamp on a built image.
///
/// The servers `existing` already declares (its `io.mcpod.servers`, else its `org.outrig.mcp`
/// converted), with `servers` merged over them by name (a given server replaces a declared
/// one of the same name whole, it is not merged field by field), as canonical JSON in
/// `io.mcpod.servers`, plus `io.mcpod.schema` = "1".
///
/// When neither declares a server, only `io.mcpod.schema` is returned: the image is marked as
/// built by mcpod, and reading it later warns that it declares no servers.
///
/// Errors: `servers` invalid (an input error), `existing` invalid or of another schema major
/// version (a label error: it cannot be merged), or the merged result over the limits.
pub fn stamp(
    existing: &BTreeMap<String, String>,
    servers: &Servers,
) -> Result<BTreeMap<String, String>> {
    validate::validate_servers(servers)?;
    let mut merged = read(existing)?.servers;
    merged.extend(servers.iter().map(|(k, v)| (k.clone(), v.clone())));
    validate::check_server_count(merged.len(), ROOT).map_err(Problem::in_input)?;

    let mut labels = BTreeMap::new();
    labels.insert(SCHEMA.to_string(), SCHEMA_VERSION.to_string());
    if !merged.is_empty() {
        let value = canonical_servers_json(&merged);
        if value.len() > MAX_LABEL_BYTES {
            return Err(Problem::new(
                ROOT,
                format!(
                    "the merged `{SERVERS}` label would be {} bytes, more than the limit of \
                     {MAX_LABEL_BYTES} bytes (64 KiB) an image label may have",
                    value.len()
                ),
                "declare fewer servers, or shorten their descriptions and arguments",
            )
            .in_input());
        }
        labels.insert(SERVERS.to_string(), value);
    }
    Ok(labels)
}

/// Servers as canonical JSON: compact, every object's keys sorted, each spec in the object
/// form with empty fields omitted. The same servers always give the same string.
pub fn canonical_servers_json(servers: &Servers) -> String {
    let map: Map<String, Value> = servers
        .iter()
        .map(|(name, spec)| (name.clone(), spec_value(spec)))
        .collect();
    json::canonical(&Value::Object(map))
}

/// The object form of a spec, empty fields omitted.
fn spec_value(spec: &ServerSpec) -> Value {
    let mut o = Map::new();
    o.insert(
        "command".into(),
        Value::Array(spec.command.iter().cloned().map(Value::String).collect()),
    );
    if !spec.env.is_empty() {
        o.insert(
            "env".into(),
            Value::Object(
                spec.env
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        );
    }
    if let Some(dir) = spec.workdir.as_ref().filter(|d| !d.is_empty()) {
        o.insert("workdir".into(), Value::String(dir.clone()));
    }
    if let Some(secs) = spec.call_timeout_secs {
        o.insert("call_timeout_secs".into(), Value::from(secs));
    }
    if let Some(d) = spec.description.as_ref().filter(|d| !d.is_empty()) {
        o.insert("description".into(), Value::String(d.clone()));
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_sorted_compact_and_omits_empty_fields() {
        let servers: Servers = [
            (
                "z".to_string(),
                ServerSpec {
                    command: vec!["b".into()],
                    env: [
                        ("Y".to_string(), "1".to_string()),
                        ("X".into(), "${T}".into()),
                    ]
                    .into(),
                    workdir: Some("/w".into()),
                    call_timeout_secs: Some(30),
                    description: Some(String::new()),
                },
            ),
            ("a".to_string(), ServerSpec::argv(["a", "--x"])),
        ]
        .into();
        assert_eq!(
            canonical_servers_json(&servers),
            r#"{"a":{"command":["a","--x"]},"z":{"call_timeout_secs":30,"command":["b"],"env":{"X":"${T}","Y":"1"},"workdir":"/w"}}"#
        );
    }

    #[test]
    fn canonical_form_agrees_with_serialize() {
        let spec = ServerSpec {
            command: vec!["b".into()],
            env: [("X".to_string(), "1".to_string())].into(),
            workdir: Some("/w".into()),
            call_timeout_secs: Some(30),
            description: Some("d".into()),
        };
        let via_serde = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json::canonical(&via_serde),
            json::canonical(&spec_value(&spec))
        );
    }
}
