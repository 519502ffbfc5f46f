//! Tool schemas every client takes without a warning: schemars' output made
//! portable for `tools/list`, and the check of what a client would flag.

use serde_json::Value;

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

#[cfg(test)]
mod tests {
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
}
