//! Properties of reading labels an image controls (`mcpod::labels::read`): whatever the
//! image puts under `io.mcpod.servers`, `io.mcpod.schema`, `io.mcpod.requests` and
//! `org.outrig.mcp` (arbitrary text, arbitrary and deeply nested JSON, huge strings, many
//! keys, non-string env values, odd unicode, `${...}` look-alikes, outrig's dialect,
//! unknown schema versions), reading never panics, returns quickly, fails with a
//! one-line message of bounded size that names the label key, and accepts only specs
//! that satisfy every rule (server names, env names, commands, timeouts, requests).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::labels::labels;
use mcpod::Error;
use mcpod::labels::{
    self, CALL_TIMEOUT_SECS, Declared, MAX_LABEL_BYTES, MAX_SERVERS, OUTRIG_MCP,
    OUTRIG_RESERVED_NAME, REQUESTS, SCHEMA, SERVERS,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const KEYS: [&str; 4] = [SERVERS, SCHEMA, REQUESTS, OUTRIG_MCP];
/// What "returns within a bounded time" means for one label set (a debug build, on a
/// shared machine: the real figure is well under a millisecond for most cases).
const DEADLINE: Duration = Duration::from_secs(1);
/// The longest error message or warning accepted: untrusted text in messages is quoted
/// and shortened, so a message never grows with the label.
const MAX_MESSAGE: usize = 2048;

// ---------------------------------------------------------------------------------------
// The checks every read must pass

/// `^[A-Za-z_][A-Za-z0-9_]*$`, written out here rather than taken from the crate.
fn env_name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `^[a-zA-Z][a-zA-Z0-9_-]{0,31}$`, written out here.
fn server_name_ok(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=32).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

fn one_line_and_short(text: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        text.len() <= MAX_MESSAGE,
        "a message of {} bytes: {}…",
        text.len(),
        text.chars().take(200).collect::<String>()
    );
    prop_assert!(
        !text.chars().any(char::is_control),
        "a control character in: {text:?}"
    );
    Ok(())
}

/// Read `labels` and check the outcome; the outcome, for properties that want more.
fn read_checked(
    labels: &BTreeMap<String, String>,
) -> Result<Result<Declared, Error>, TestCaseError> {
    let start = Instant::now();
    let result = labels::read(labels);
    let took = start.elapsed();
    prop_assert!(took < DEADLINE, "read took {took:?}");
    match &result {
        Err(e) => check_error(labels, e)?,
        Ok(d) => check_declared(labels, d)?,
    }
    Ok(result)
}

/// Read `labels` and check the outcome.
fn check(labels: &BTreeMap<String, String>) -> Result<(), TestCaseError> {
    read_checked(labels).map(drop)
}

fn check_error(labels: &BTreeMap<String, String>, e: &Error) -> Result<(), TestCaseError> {
    let Error::Label { key, .. } = e else {
        return Err(TestCaseError::fail(format!("not a label error: {e:?}")));
    };
    prop_assert!(KEYS.contains(&key.as_str()), "unknown key {key:?}");
    prop_assert!(
        labels.contains_key(key),
        "names a label that is not there: {key}"
    );
    let msg = e.to_string();
    prop_assert!(
        msg.starts_with(&format!("label `{key}` at `$")),
        "the message does not start with the key and a path: {msg}"
    );
    prop_assert!(msg.contains(". Fix: "), "no fix in: {msg}");
    one_line_and_short(&msg)
}

fn check_declared(labels: &BTreeMap<String, String>, d: &Declared) -> Result<(), TestCaseError> {
    let expected_source = if labels.contains_key(SERVERS) {
        Some(SERVERS)
    } else if labels.contains_key(OUTRIG_MCP) {
        Some(OUTRIG_MCP)
    } else {
        None
    };
    prop_assert_eq!(d.source.as_deref(), expected_source);
    prop_assert!(d.servers.len() <= MAX_SERVERS);
    for (name, spec) in &d.servers {
        prop_assert!(server_name_ok(name), "accepted server name {name:?}");
        prop_assert!(labels::is_server_name(name));
        if expected_source == Some(OUTRIG_MCP) {
            prop_assert_ne!(name.as_str(), OUTRIG_RESERVED_NAME);
        }
        let program = spec.command.first();
        prop_assert!(
            program.is_some_and(|p| !p.trim().is_empty()),
            "accepted command {:?}",
            spec.command
        );
        prop_assert!(spec.command.iter().all(|a| !a.contains('\0')));
        for (key, value) in &spec.env {
            prop_assert!(env_name_ok(key), "accepted env name {key:?} in {name}");
            prop_assert!(labels::is_env_name(key));
            prop_assert!(!value.contains('\0'), "a NUL in env {key}");
            if let Some(var) = labels::env_ref(value) {
                prop_assert!(env_name_ok(var), "accepted reference {value:?}");
            }
        }
        if let Some(dir) = &spec.workdir {
            prop_assert!(dir.starts_with('/'), "accepted workdir {dir:?}");
            prop_assert!(!dir.chars().any(char::is_control));
        }
        if let Some(secs) = spec.call_timeout_secs {
            prop_assert!(CALL_TIMEOUT_SECS.contains(&secs));
        }
        prop_assert!(spec.description.as_deref() != Some(""));
    }
    prop_assert_eq!(d.requests.is_some(), labels.contains_key(REQUESTS));
    if let Some(r) = &d.requests {
        for name in &r.env {
            prop_assert!(env_name_ok(name), "accepted requested env {name:?}");
        }
        for p in &r.writable_paths {
            prop_assert!(p.starts_with('/') && p.len() > 1, "accepted path {p:?}");
            prop_assert!(!p.split('/').any(|c| c == "." || c == ".."), "{p:?}");
            prop_assert!(!p.contains([':', ',']), "{p:?}");
            prop_assert!(!p.chars().any(char::is_control), "{p:?}");
        }
        prop_assert!(r.memory_mb.is_none_or(|m| m >= 1));
        prop_assert!(r.millicpus.is_none_or(|m| m >= 1));
        prop_assert!(r.pids.is_none_or(|m| m >= 1));
    }
    if let Some(v) = &d.schema_version {
        prop_assert!(labels.contains_key(SCHEMA));
        prop_assert!(v.len() <= MAX_LABEL_BYTES);
    }
    for w in &d.warnings {
        prop_assert!(
            KEYS.iter().any(|k| w.contains(k)),
            "a warning that names no label: {w}"
        );
        one_line_and_short(w)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Hostile values

const WEIRD: &[char] = &[
    '\0', '\n', '\r', '\t', '\u{1b}', '\u{7f}', '\u{85}', '\u{200b}', '\u{200e}', '\u{202e}',
    '\u{2028}', '\u{feff}', 'é', 'İ', 'ı', 'ß', '𝔘', '😀', '`', '"', '\\', '$', '{', '}', '/', '.',
    ':', ',', '=', ' ', '-', '_', 'a', 'Z', '0',
];

fn weird_string() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WEIRD), 0..10).prop_map(String::from_iter)
}

fn hostile_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<String>(),
        4 => weird_string(),
        3 => "[A-Za-z_][A-Za-z0-9_]{0,6}",
        2 => "\\$\\{[A-Za-z0-9_{}$ ]{0,6}\\}?",
        2 => "\\$\\{[A-Za-z_][A-Za-z0-9_]{0,6}\\}",
        2 => "[a-z]{0,2}\\$\\{?[A-Z_][A-Z0-9_]{0,3}\\}?[a-z]{0,2}",
        1 => Just(OUTRIG_RESERVED_NAME.to_string()),
        1 => (1usize..3000).prop_map(|n| "h".repeat(n)),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        prop::sample::select(vec![
            0u64,
            1,
            60,
            3600,
            3601,
            1_048_576,
            u64::from(u32::MAX) + 1
        ])
        .prop_map(Value::from),
        hostile_string().prop_map(Value::String),
    ]
    .boxed()
}

fn any_json() -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((hostile_string(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// JSON text nested `kinds.len()` deep (`true` an array, `false` an object), around the
/// parser's depth limit.
fn deep_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<bool>(), 100..200).prop_map(|kinds| {
        let mut s = String::new();
        for &array in &kinds {
            s.push_str(if array { "[" } else { r#"{"k":"# });
        }
        s.push_str("[\"x\"]");
        for &array in kinds.iter().rev() {
            s.push(if array { ']' } else { '}' });
        }
        s
    })
}

fn object(pairs: Vec<(String, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect::<Map<String, Value>>())
}

/// Mostly the expected type, sometimes anything.
fn typed_or_any(typed: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![12 => typed, 1 => any_json()].boxed()
}

fn argv() -> BoxedStrategy<Value> {
    let arg = || prop_oneof![6 => "[a-z/][a-z/-]{0,8}", 1 => hostile_string()];
    prop_oneof![
        9 => prop::collection::vec(arg(), 1..4),
        1 => prop::collection::vec(arg(), 0..1),
    ]
    .prop_map(|v| json!(v))
    .boxed()
}

fn env_key() -> BoxedStrategy<String> {
    prop_oneof![6 => "[A-Za-z_][A-Za-z0-9_]{0,8}", 1 => hostile_string()].boxed()
}

fn env_map() -> BoxedStrategy<Value> {
    prop::collection::vec(
        (
            env_key(),
            prop_oneof![10 => hostile_string().prop_map(Value::String), 1 => any_json()],
        ),
        0..4,
    )
    .prop_map(object)
    .boxed()
}

fn field_name() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "command", "env", "workdir", "call_timeout_secs", "description",
            "call-timeout-secs", "Command", "CALL_TIMEOUT_SECS", "sidecar", "image", "args",
            "view",
        ])
        .prop_map(str::to_string),
        1 => hostile_string(),
    ]
    .boxed()
}

/// One server spec: the argv form, an object (fields mostly of the right type, in either
/// dialect's spelling, plus stray fields), or anything.
fn spec() -> BoxedStrategy<Value> {
    let timeout_field = prop::sample::select(vec!["call_timeout_secs", "call-timeout-secs"]);
    let timeout = prop_oneof![6 => (0u64..4000).prop_map(Value::from), 1 => leaf()];
    let workdir = prop_oneof![4 => "/[a-z./]{0,8}", 1 => hostile_string()].prop_map(Value::String);
    let description = hostile_string().prop_map(Value::String);
    let object_form = (
        prop::option::weighted(0.9, typed_or_any(argv())),
        prop::option::weighted(0.7, typed_or_any(env_map())),
        prop::option::of(typed_or_any(workdir)),
        prop::option::of((timeout_field, typed_or_any(timeout))),
        prop::option::of(typed_or_any(description)),
        prop_oneof![
            3 => Just(vec![]),
            1 => prop::collection::vec((field_name(), any_json()), 1..3),
        ],
    )
        .prop_map(|(command, env, workdir, timeout, description, extra)| {
            let mut m = Map::new();
            for (k, v) in extra {
                m.insert(k, v);
            }
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            };
            put("command", command);
            put("env", env);
            put("workdir", workdir);
            put("description", description);
            if let Some((field, v)) = timeout {
                put(field, Some(v));
            }
            Value::Object(m)
        });
    prop_oneof![3 => argv(), 5 => object_form, 1 => any_json()].boxed()
}

fn server_name() -> BoxedStrategy<String> {
    prop_oneof![
        5 => "[a-zA-Z][a-zA-Z0-9_-]{0,31}",
        1 => "[a-zA-Z][a-zA-Z0-9_-]{32,34}",
        1 => Just(OUTRIG_RESERVED_NAME.to_string()),
        2 => hostile_string(),
    ]
    .boxed()
}

fn servers_value() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => prop::collection::vec((server_name(), spec()), 0..3).prop_map(object),
        2 => prop::collection::vec((server_name(), spec()), 3..8).prop_map(object),
        1 => (60usize..80).prop_map(|n| object(
            (0..n).map(|i| (format!("s{i}"), json!(["x"]))).collect()
        )),
        1 => any_json(),
    ]
    .boxed()
}

fn requests_value() -> BoxedStrategy<Value> {
    let network = prop_oneof![
        6 => prop::sample::select(vec!["none", "egress", "host", "Egress", ""]).prop_map(Value::from),
        1 => leaf(),
    ];
    let paths = prop::collection::vec(
        prop_oneof![8 => "/[a-z][a-z./]{0,8}", 1 => "/[a-z./:,]{0,8}", 1 => hostile_string()],
        0..4,
    )
    .prop_map(|v| json!(v));
    let number = prop_oneof![
        4 => (0u64..2_000_000).prop_map(Value::from),
        2 => (-10.0f64..3000.0).prop_map(Value::from),
        1 => leaf(),
    ];
    let env = prop::collection::vec(env_key(), 0..4).prop_map(|v| json!(v));
    let fields = (
        prop::option::of(typed_or_any(network)),
        prop::option::of(typed_or_any(paths)),
        prop::option::of(typed_or_any(number.clone())),
        prop::option::of(typed_or_any(number.clone())),
        prop::option::of(typed_or_any(number)),
        prop::option::of(typed_or_any(env)),
        prop_oneof![
            3 => Just(vec![]),
            1 => prop::collection::vec((hostile_string(), any_json()), 1..3),
        ],
    )
        .prop_map(|(network, paths, memory, cpus, pids, env, extra)| {
            let mut m: Map<String, Value> = extra.into_iter().collect();
            for (k, v) in [
                ("network", network),
                ("writable_paths", paths),
                ("memory_mb", memory),
                ("cpus", cpus),
                ("pids", pids),
                ("env", env),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            }
            Value::Object(m)
        });
    prop_oneof![6 => fields, 1 => any_json()].boxed()
}

/// The text of a label: the JSON of `value` (often), cut short, or anything at all.
fn label_text(value: BoxedStrategy<Value>) -> BoxedStrategy<String> {
    prop_oneof![
        16 => value.clone().prop_map(|v| v.to_string()),
        1 => (value, any::<prop::sample::Index>()).prop_map(|(v, at)| {
            let s = v.to_string();
            let cut = at.index(s.len() + 1);
            let cut = (0..=cut).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            s[..cut].to_string()
        }),
        1 => deep_text(),
        1 => hostile_string(),
    ]
    .boxed()
}

fn schema_text() -> BoxedStrategy<String> {
    prop_oneof![
        10 => prop::sample::select(vec!["1", "1.0", "1.7", "01", " 1 ", "1.00"])
            .prop_map(str::to_string),
        3 => prop::sample::select(vec![
            "1.", ".1", "2", "0", "10", "1.x", "1.2.3", "", "v1", "١", "1\u{0}",
        ])
        .prop_map(str::to_string),
        2 => "[0-9]{1,5}(\\.[0-9]{0,4})?",
        2 => hostile_string(),
        1 => (1usize..70_000).prop_map(|n| "1".repeat(n)),
        1 => (1usize..70_000).prop_map(|n| format!("1.{}", "9".repeat(n))),
    ]
    .boxed()
}

/// A whole label set: any of the four keys, plus unrelated labels.
fn label_set() -> impl Strategy<Value = BTreeMap<String, String>> {
    (
        prop::option::weighted(0.8, schema_text()),
        prop::option::weighted(0.7, label_text(servers_value())),
        prop::option::weighted(0.4, label_text(requests_value())),
        prop::option::weighted(0.4, label_text(servers_value())),
        prop::collection::vec((hostile_string(), hostile_string()), 0..2),
    )
        .prop_map(|(schema, servers, requests, outrig, other)| {
            let mut m: BTreeMap<String, String> = other.into_iter().collect();
            for (k, v) in [
                (SCHEMA, schema),
                (SERVERS, servers),
                (REQUESTS, requests),
                (OUTRIG_MCP, outrig),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            }
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn any_label_set_is_read_quickly_and_soundly(labels in label_set()) {
        check(&labels)?;
    }

    /// The servers label alone (schema 1), in either dialect: these reach every rule of a
    /// spec more often than whole label sets do.
    #[test]
    fn any_servers_label_is_read_soundly(
        text in label_text(servers_value()),
        outrig in any::<bool>(),
    ) {
        let key = if outrig { OUTRIG_MCP } else { SERVERS };
        check(&labels(&[(SCHEMA, "1"), (key, &text)]))?;
    }

    #[test]
    fn any_requests_label_is_read_soundly(text in label_text(requests_value())) {
        check(&labels(&[(SCHEMA, "1"), (SERVERS, "{}"), (REQUESTS, &text)]))?;
    }

    #[test]
    fn any_text_in_any_label_is_read_soundly(
        key in prop::sample::select(KEYS.to_vec()),
        text in any::<String>(),
    ) {
        check(&labels(&[(key, &text)]))?;
    }

    /// An env entry is accepted exactly when its name is valid and its value a string
    /// without NUL; a `${NAME}` value stays as written.
    #[test]
    fn env_entries_are_accepted_only_when_valid(
        key in env_key(),
        value in prop_oneof![5 => hostile_string().prop_map(Value::String), 1 => any_json()],
        outrig in any::<bool>(),
    ) {
        let label = json!({"srv": {"command": ["x"], "env": {key.clone(): value.clone()}}});
        let label_key = if outrig { OUTRIG_MCP } else { SERVERS };
        let text = label.to_string();
        let result = read_checked(&labels(&[(SCHEMA, "1"), (label_key, &text)]))?;
        let valid = env_name_ok(&key) && value.as_str().is_some_and(|v| !v.contains('\0'));
        match result {
            Ok(d) => {
                prop_assert!(valid, "accepted {key:?} = {value}");
                prop_assert_eq!(Some(d.servers["srv"].env[&key].as_str()), value.as_str());
            }
            Err(e) => prop_assert!(!valid, "refused a valid entry {key:?} = {value}: {e}"),
        }
    }

    /// A server name is accepted exactly when it is valid (and, for outrig, not `outrig`).
    #[test]
    fn server_names_are_accepted_only_when_valid(name in server_name(), outrig in any::<bool>()) {
        let label_key = if outrig { OUTRIG_MCP } else { SERVERS };
        let text = json!({name.clone(): ["x"]}).to_string();
        let result = read_checked(&labels(&[(SCHEMA, "1"), (label_key, &text)]))?;
        let valid = server_name_ok(&name) && !(outrig && name == OUTRIG_RESERVED_NAME);
        prop_assert_eq!(result.is_ok(), valid, "{:?}: {:?}", name, result);
    }
}

// ---------------------------------------------------------------------------------------
// Explicit hostile cases

/// Read `labels`, which must fail on `key`, within the deadline; the message.
fn refused(pairs: &[(&str, &str)], key: &str) -> String {
    let map = labels(pairs);
    let start = Instant::now();
    let result = labels::read(&map);
    let took = start.elapsed();
    assert!(took < DEADLINE, "read took {took:?}");
    match result {
        Ok(d) => panic!("accepted: {d:?}"),
        Err(e) => {
            let Error::Label { key: k, .. } = &e else {
                panic!("not a label error: {e:?}")
            };
            assert_eq!(k, key, "{e}");
            let msg = e.to_string();
            assert!(msg.len() <= MAX_MESSAGE, "a {}-byte message", msg.len());
            assert!(!msg.chars().any(char::is_control), "{msg:?}");
            msg
        }
    }
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

#[test]
fn a_100_000_deep_array_is_refused_under_every_key() {
    let deep = nested_arrays(100_000);
    for key in KEYS {
        let msg = refused(&[(SCHEMA, "1"), (key, &deep)], key);
        assert!(msg.contains(&format!("label `{key}` at `$`")), "{msg}");
    }
    // And at the largest size read, as deep as that allows: the JSON parser's own depth
    // limit refuses it, without recursing 32,000 deep.
    let deep = nested_arrays(MAX_LABEL_BYTES / 2);
    assert_eq!(deep.len(), MAX_LABEL_BYTES);
    for key in [SERVERS, REQUESTS, OUTRIG_MCP] {
        let msg = refused(&[(SCHEMA, "1"), (key, &deep)], key);
        assert!(msg.contains("not valid JSON"), "{msg}");
    }
    let deep = nested_objects((MAX_LABEL_BYTES - 1) / 6);
    for key in [SERVERS, REQUESTS, OUTRIG_MCP] {
        let msg = refused(&[(SCHEMA, "1"), (key, &deep)], key);
        assert!(msg.contains("not valid JSON"), "{msg}");
    }
}

#[test]
fn deep_values_inside_a_spec_are_refused_or_ignored_with_a_warning() {
    // Past the parser's limit inside an otherwise valid spec: refused.
    let label = format!(
        r#"{{"s":{{"command":["x"],"extra":{}}}}}"#,
        nested_arrays(30_000)
    );
    refused(&[(SCHEMA, "1"), (SERVERS, &label)], SERVERS);
    // Within it, in an unknown field: read, with a warning.
    let label = format!(
        r#"{{"s":{{"command":["x"],"extra":{}}}}}"#,
        nested_arrays(100)
    );
    let d = labels::read(&labels(&[(SCHEMA, "1"), (SERVERS, &label)])).expect("read");
    assert_eq!(d.servers["s"].command, ["x"]);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    // Within it, where a string is expected: refused, naming the path.
    let label = format!(r#"{{"s":{{"command":{}}}}}"#, nested_arrays(100));
    let msg = refused(&[(SCHEMA, "1"), (SERVERS, &label)], SERVERS);
    assert!(msg.contains("at `$.s.command[0]`"), "{msg}");
}

#[test]
fn a_10_mb_label_is_refused_under_every_key() {
    const TEN_MB: usize = 10 * 1024 * 1024;
    let filler = "x".repeat(TEN_MB - 10);
    let values = [
        "a".repeat(TEN_MB),
        format!(r#"{{"s":["{filler}"]}}"#),
        nested_arrays(TEN_MB / 2),
        "1".repeat(TEN_MB),
        format!("1.{}", "0".repeat(TEN_MB)),
        format!("1.{}", "7".repeat(TEN_MB)),
    ];
    for key in KEYS {
        for value in &values {
            refused(&[(SCHEMA, "1"), (key, value)], key);
        }
    }
}

#[test]
fn many_keys_are_bounded() {
    // As many servers as fit in a label: refused by count, quickly.
    let entries: Vec<String> = (0..4000).map(|i| format!(r#""s{i}":["x"]"#)).collect();
    let text = format!("{{{}}}", entries.join(","));
    assert!(text.len() <= MAX_LABEL_BYTES);
    let msg = refused(&[(SCHEMA, "1"), (SERVERS, &text)], SERVERS);
    assert!(msg.contains("more than the limit of 64"), "{msg}");

    // As many unknown fields as fit in one spec: read, each field a short warning.
    let fields: Vec<String> = (0..6000).map(|i| format!(r#""f{i}":0"#)).collect();
    let text = format!(r#"{{"s":{{"command":["x"],{}}}}}"#, fields.join(","));
    assert!(text.len() <= MAX_LABEL_BYTES);
    let map = labels(&[(SCHEMA, "1"), (SERVERS, &text)]);
    let start = Instant::now();
    let d = labels::read(&map).expect("read");
    assert!(start.elapsed() < DEADLINE);
    assert_eq!(d.servers["s"].command, ["x"]);
    for w in &d.warnings {
        assert!(w.len() <= MAX_MESSAGE, "{w}");
    }
}

#[test]
fn unknown_schema_versions_are_refused_naming_the_key() {
    for version in [
        "2",
        "0",
        "1.x",
        "v1",
        "",
        "1.2.3",
        "١",
        "1\u{0}",
        "999999999999999999999",
    ] {
        let msg = refused(&[(SCHEMA, version), (SERVERS, r#"{"s":["x"]}"#)], SCHEMA);
        assert!(msg.starts_with("label `io.mcpod.schema` at `$`"), "{msg}");
    }
}

/// The cases the properties first found: a key with DEL or a C1 control in a path, a
/// plain key as long as a label, and a schema version as long as a label each made a
/// message that was not one short line.
#[test]
fn messages_found_by_the_properties_stay_one_short_line() {
    for (key, value) in [
        (SERVERS, "{\"\u{7f}\":[\"x\"]}".to_string()),
        (
            SERVERS,
            "{\"A\":{\"command\":[\"x\"],\"env\":{\"\u{9b}\":null}}}".to_string(),
        ),
        (REQUESTS, "{\"env\":[\"\u{85}\"]}".to_string()),
        (SERVERS, format!(r#"{{"{}":["x"]}}"#, "h".repeat(60_000))),
        (
            SERVERS,
            format!(
                r#"{{"s":{{"command":["x"],"env":{{"{}":1}}}}}}"#,
                "H".repeat(60_000)
            ),
        ),
        (SCHEMA, "1".repeat(60_000)),
        (SCHEMA, format!("1.{}", "0".repeat(60_000))),
    ] {
        let msg = refused(&[(SCHEMA, "1"), (key, &value)], key);
        assert!(msg.len() < 600, "{msg}");
    }
    // Warnings too: an unknown field with a control character, a newer minor version.
    let d = labels::read(&labels(&[
        (SCHEMA, "1.99999"),
        (
            SERVERS,
            "{\"s\":{\"command\":[\"x\"],\"\u{7f}\u{9b}31m\":1}}",
        ),
    ]))
    .expect("read");
    assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
    for w in &d.warnings {
        assert!(!w.chars().any(char::is_control), "{w:?}");
    }
}
