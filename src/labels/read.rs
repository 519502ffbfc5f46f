//! A whole label set into a [`Declared`]: the schema version first, then the servers
//! (`io.mcpod.servers`, else outrig's `org.outrig.mcp`), then the requests.

use std::collections::BTreeMap;

use super::json::{ROOT, quote};
use super::parse::{self, Ctx, Dialect};
use super::spec::Declared;
use super::validate::Problem;
use super::{OUTRIG_MCP, REQUESTS, SCHEMA, SERVERS};
use crate::Result;

const SERVERS_EXAMPLE: &str =
    r#"LABEL io.mcpod.servers='{"fs":["mcp-server-filesystem","/data"]}'"#;
const REQUESTS_EXAMPLE: &str = r#"LABEL io.mcpod.requests='{"network":"egress"}'"#;

/// Read and validate what `labels` declare.
///
/// - An unknown schema major version, malformed JSON, a wrong type or an invalid value is an
///   error naming the label key and the JSON path.
/// - Unknown fields, a missing `io.mcpod.schema`, an ignored `org.outrig.mcp` and an image
///   that declares no servers are warnings in [`Declared::warnings`].
pub fn read(labels: &BTreeMap<String, String>) -> Result<Declared> {
    let mut declared = Declared::default();

    let mcpod_labels_present = labels.contains_key(SERVERS) || labels.contains_key(REQUESTS);
    match labels.get(SCHEMA) {
        Some(raw) => {
            let version = raw.trim();
            if let Some(warning) = schema_version(version).map_err(|p| p.in_label(SCHEMA))? {
                declared.warnings.push(warning);
            }
            declared.schema_version = Some(version.to_string());
        }
        None if mcpod_labels_present => declared.warnings.push(format!(
            "label `{SCHEMA}` is missing; the io.mcpod.* labels were read as schema 1. \
             Fix: add LABEL {SCHEMA}=1"
        )),
        None => {}
    }

    let source = if labels.contains_key(SERVERS) {
        if labels.contains_key(OUTRIG_MCP) {
            declared.warnings.push(format!(
                "label `{OUTRIG_MCP}` was ignored because `{SERVERS}` is present and takes precedence"
            ));
        }
        Some((SERVERS, Dialect::Mcpod))
    } else if labels.contains_key(OUTRIG_MCP) {
        Some((OUTRIG_MCP, Dialect::Outrig))
    } else {
        None
    };

    if let Some((key, dialect)) = source {
        let raw = labels.get(key).map(String::as_str).unwrap_or_default();
        let mut ctx = Ctx::label(key);
        let value = parse::label_json(raw, SERVERS_EXAMPLE).map_err(|p| p.in_label(key))?;
        declared.servers =
            parse::servers(&value, dialect, &mut ctx).map_err(|p| p.in_label(key))?;
        declared.warnings.append(&mut ctx.warnings);
        declared.source = Some(key.to_string());
        if declared.servers.is_empty() {
            declared
                .warnings
                .push(format!("label `{key}` declares no MCP servers"));
        }
    } else {
        declared.warnings.push(format!(
            "the image declares no MCP servers (it has no `{SERVERS}` or `{OUTRIG_MCP}` label)"
        ));
    }

    if let Some(raw) = labels.get(REQUESTS) {
        let mut ctx = Ctx::label(REQUESTS);
        let value = parse::label_json(raw, REQUESTS_EXAMPLE).map_err(|p| p.in_label(REQUESTS))?;
        declared.requests =
            Some(parse::requests(&value, &mut ctx).map_err(|p| p.in_label(REQUESTS))?);
        declared.warnings.append(&mut ctx.warnings);
    }

    Ok(declared)
}

/// The longest schema version read (`1.<minor>` is a few bytes); a longer value is not a
/// version, and is not repeated in messages.
const MAX_SCHEMA_VERSION_LEN: usize = 16;

/// Accept `1` and `1.<minor>`; a newer minor is read with a warning. Anything else is an
/// error: another major version, or not a version at all.
fn schema_version(version: &str) -> Result<Option<String>, Problem> {
    let (major, minor) = match version.split_once('.') {
        Some((major, minor)) => (major, Some(minor)),
        None => (version, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if version.len() > MAX_SCHEMA_VERSION_LEN || !digits(major) || minor.is_some_and(|m| !digits(m))
    {
        return Err(Problem::new(
            ROOT,
            format!(
                "`{}` is not a schema version (expected `1` or `1.<minor>`)",
                quote(version)
            ),
            format!("set LABEL {SCHEMA}=1"),
        ));
    }
    if major.trim_start_matches('0') != "1" {
        return Err(Problem::new(
            ROOT,
            format!(
                "schema version `{version}` has major version {major}, but this mcpod reads \
                 major version 1 only"
            ),
            "upgrade mcpod to a version that reads it, or rebuild the image with schema 1 labels",
        ));
    }
    match minor {
        Some(m) if m.trim_start_matches('0').is_empty() => Ok(None),
        Some(_) => Ok(Some(format!(
            "label `{SCHEMA}` is `{version}`, newer than the 1.0 this mcpod reads: \
             fields it does not know are ignored (each with a warning)"
        ))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_versions() {
        assert_eq!(schema_version("1"), Ok(None));
        assert_eq!(schema_version("1.0"), Ok(None));
        assert_eq!(schema_version("1.00000000000000"), Ok(None));
        let w = schema_version("1.3").unwrap().unwrap();
        assert!(w.contains("`1.3`, newer than the 1.0"), "{w}");
        for (bad, says) in [
            ("2", "major version 2"),
            ("2.1", "major version 2"),
            ("0", "major version 0"),
            ("10", "major version 10"),
            ("", "is not a schema version"),
            ("v1", "is not a schema version"),
            ("1.x", "is not a schema version"),
            ("1.2.3", "is not a schema version"),
            ("1.", "is not a schema version"),
            ("1.00000000000000000", "is not a schema version"),
            (&"1".repeat(17), "is not a schema version"),
        ] {
            let p = schema_version(bad).unwrap_err();
            assert!(p.reason.contains(says), "{bad}: {p:?}");
        }
    }
}
