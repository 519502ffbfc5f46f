//! JSON helpers shared by the label files: JSON paths (`$.fs.command[0]`), the name of a
//! value's type for messages, quoting of untrusted text, and the canonical writer.

use serde_json::Value;

/// The root path.
pub(crate) const ROOT: &str = "$";

/// The longest key written out whole in a path.
const MAX_PLAIN_KEY: usize = 64;

/// `parent.key`, or `parent["key"]` when the key is not a plain name of at most 64
/// characters. The key is untrusted: in brackets it is shortened to 64 characters, so a
/// message does not grow with the label, and written as a JSON string with the control
/// characters JSON leaves as they are (DEL, U+0080..U+009F) escaped too, so a path is one
/// line of text whatever the key holds.
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && key.len() <= MAX_PLAIN_KEY;
    if plain {
        format!("{parent}.{key}")
    } else {
        let mut quoted = String::new();
        for c in Value::String(shorten(key, MAX_PLAIN_KEY))
            .to_string()
            .chars()
        {
            if c.is_control() {
                quoted.push_str(&format!("\\u{:04x}", u32::from(c)));
            } else {
                quoted.push(c);
            }
        }
        format!("{parent}[{quoted}]")
    }
}

/// `parent[index]`.
pub(crate) fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// "a string", "a number", … for "expected X, found Y" messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `text` cut to at most `max` characters (with `…` when cut), for messages.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Untrusted text made safe to put between backticks in a one-line message: control
/// characters and backticks escaped, long text shortened.
pub(crate) fn quote(text: &str) -> String {
    let short = shorten(text, 80);
    let mut out = String::with_capacity(short.len());
    for c in short.chars() {
        if c == '`' {
            out.push_str("\\`");
        } else if c == '\\' || c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Compact JSON with the keys of every object sorted, whatever map type serde_json was
/// built with: the same value always gives the same bytes.
pub(crate) fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_use_dots_for_plain_keys_and_brackets_otherwise() {
        assert_eq!(key_path("$", "fs"), "$.fs");
        assert_eq!(
            key_path("$.db", "call-timeout-secs"),
            "$.db.call-timeout-secs"
        );
        assert_eq!(key_path("$", "9x"), r#"$["9x"]"#);
        assert_eq!(key_path("$", "a b"), r#"$["a b"]"#);
        assert_eq!(key_path("$", ""), r#"$[""]"#);
        assert_eq!(key_path("$", "a\"b"), r#"$["a\"b"]"#);
        assert_eq!(
            key_path("$", "a\n\u{7f}\u{85}\u{9b}b"),
            r#"$["a\n\u007f\u0085\u009bb"]"#
        );
        assert_eq!(index_path("$.fs.command", 0), "$.fs.command[0]");
        let long = "k".repeat(65);
        assert_eq!(key_path("$", &long[..64]), format!("$.{}", &long[..64]));
        assert_eq!(key_path("$", &long), format!("$[\"{}…\"]", &long[..64]));
    }

    #[test]
    fn quote_escapes_and_shortens() {
        assert_eq!(quote("a`b\nc"), "a\\`b\\nc");
        let long = "x".repeat(200);
        let q = quote(&long);
        assert_eq!(q.chars().count(), 81);
        assert!(q.ends_with('…'));
        assert_eq!(shorten("héllo", 2), "hé…");
    }

    #[test]
    fn canonical_sorts_keys_and_is_compact() {
        let v = json!({"b": [1, {"z": null, "a": "x\"y"}], "a": true});
        assert_eq!(canonical(&v), r#"{"a":true,"b":[1,{"a":"x\"y","z":null}]}"#);
    }
}
