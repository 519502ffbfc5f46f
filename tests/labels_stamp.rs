//! The label schema on the way in from an agent and out to an image: validate_servers,
//! ServerSpec deserialisation, stamp and the canonical servers JSON.

mod common;

use std::collections::BTreeMap;

use common::labels::{labels, read_ok};
use mcpod::Error;
use mcpod::labels::{self, Declared, OUTRIG_MCP, REQUESTS, SCHEMA, SERVERS, ServerSpec, Servers};
use proptest::prelude::*;

fn spec(command: &[&str]) -> ServerSpec {
    ServerSpec::argv(command.iter().copied())
}

// ---------------------------------------------------------------------------------------
// Agent input

#[test]
fn validate_servers_reports_input_errors_with_paths() {
    let mut servers = Servers::new();
    servers.insert("fs".into(), spec(&["x"]));
    assert!(labels::validate_servers(&servers).is_ok());

    let check = |servers: &Servers, path: &str, says: &str| {
        let err = labels::validate_servers(servers).err();
        assert!(
            matches!(err, Some(Error::InvalidInput { .. })),
            "not an input error: {err:?}"
        );
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with(&format!("invalid servers `{path}`: ")),
            "{msg}"
        );
        assert!(msg.contains(says), "{msg}");
        assert!(msg.contains(". Fix: "), "{msg}");
    };
    check(
        &[("9x".to_string(), spec(&["x"]))].into(),
        r#"$["9x"]"#,
        "must start with an ASCII letter",
    );
    check(
        &[("fs".to_string(), spec(&[]))].into(),
        "$.fs.command",
        "the command is empty",
    );
    check(
        &[("fs".to_string(), spec(&[""]))].into(),
        "$.fs.command[0]",
        "argv[0]",
    );
    let mut bad = spec(&["x"]);
    bad.env.insert("A B".into(), "v".into());
    check(
        &[("fs".to_string(), bad)].into(),
        r#"$.fs.env["A B"]"#,
        "not a valid environment variable name",
    );
    let mut bad = spec(&["x"]);
    bad.call_timeout_secs = Some(0);
    check(
        &[("fs".to_string(), bad)].into(),
        "$.fs.call_timeout_secs",
        "out of range 1..=3600",
    );
    let mut bad = spec(&["x"]);
    bad.workdir = Some("rel".into());
    check(
        &[("fs".to_string(), bad)].into(),
        "$.fs.workdir",
        "not an absolute path",
    );
    let many: Servers = (0..65).map(|i| (format!("s{i}"), spec(&["x"]))).collect();
    check(&many, "$", "65 servers are declared");
}

#[test]
fn server_spec_deserialises_both_forms_and_refuses_unknown_fields() {
    let servers: Servers =
        serde_json::from_str(r#"{"a":["x","y"],"b":{"command":["x","y"],"call_timeout_secs":9}}"#)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(servers["a"], spec(&["x", "y"]));
    assert_eq!(servers["b"].call_timeout_secs, Some(9));

    let err = serde_json::from_str::<Servers>(r#"{"a":{"command":["x"],"timeout":9}}"#)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("server spec at `$.timeout`: unknown field `timeout`"),
        "{err}"
    );
    let err = serde_json::from_str::<Servers>(r#"{"a":{"command":[1]}}"#)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("at `$.command[0]`: expected a string, found a number"),
        "{err}"
    );

    // Serialisation is the object form with empty fields left out.
    let text = serde_json::to_string(&servers["a"]).unwrap_or_default();
    assert_eq!(text, r#"{"command":["x","y"]}"#);
}

#[test]
fn declared_round_trips_through_json() {
    let d = read_ok(&[
        (SCHEMA, "1"),
        (
            SERVERS,
            r#"{"a":["x"],"b":{"command":["y"],"env":{"K":"${V}"}}}"#,
        ),
        (REQUESTS, r#"{"network":"egress"}"#),
    ]);
    let text = serde_json::to_string(&d).unwrap_or_default();
    let back: Declared = serde_json::from_str(&text).unwrap_or_default();
    assert_eq!(back, d);
}

// ---------------------------------------------------------------------------------------
// Stamping

#[test]
fn stamp_merges_given_servers_over_declared_ones() {
    let existing = labels(&[
        (SCHEMA, "1"),
        (
            SERVERS,
            r#"{"fs":["old-fs"],"time":{"command":["mcp-server-time"],"call_timeout_secs":5}}"#,
        ),
        ("org.opencontainers.image.title", "base"),
    ]);
    let mut given = Servers::new();
    given.insert("fs".into(), spec(&["new-fs", "/data"]));
    given.insert("git".into(), spec(&["mcp-server-git"]));
    let out = labels::stamp(&existing, &given).unwrap_or_default();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[SCHEMA], "1");
    assert_eq!(
        out[SERVERS],
        r#"{"fs":{"command":["new-fs","/data"]},"git":{"command":["mcp-server-git"]},"time":{"call_timeout_secs":5,"command":["mcp-server-time"]}}"#
    );
    // What is stamped reads back as the merge, without warnings.
    let back = labels::read(&out).unwrap_or_default();
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
    assert_eq!(back.servers["fs"], given["fs"]);
    assert_eq!(back.servers["time"].call_timeout_secs, Some(5));
    assert_eq!(back.servers.len(), 3);
}

#[test]
fn stamp_converts_outrig_servers() {
    let existing = labels(&[(
        OUTRIG_MCP,
        r#"{"db":{"command":["db-mcp"],"call-timeout-secs":30}}"#,
    )]);
    let out = labels::stamp(&existing, &Servers::new()).unwrap_or_default();
    assert_eq!(
        out[SERVERS],
        r#"{"db":{"call_timeout_secs":30,"command":["db-mcp"]}}"#
    );
    assert_eq!(out[SCHEMA], "1");
}

#[test]
fn stamp_with_nothing_declared_gives_only_the_schema_label() {
    let out = labels::stamp(&BTreeMap::new(), &Servers::new()).unwrap_or_default();
    assert_eq!(out, labels(&[(SCHEMA, "1")]));
}

#[test]
fn stamp_refuses_bad_input_and_unreadable_existing_labels() {
    let bad: Servers = [("9x".to_string(), spec(&["x"]))].into();
    let err = labels::stamp(&BTreeMap::new(), &bad).err();
    assert!(matches!(err, Some(Error::InvalidInput { .. })), "{err:?}");

    let v2 = labels(&[(SCHEMA, "2"), (SERVERS, r#"{"a":["x"]}"#)]);
    let err = labels::stamp(&v2, &Servers::new())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with("label `io.mcpod.schema` at `$`: "), "{err}");

    // Existing 40 + given 30 distinct servers exceed the limit of 64.
    let existing: Servers = (0..40).map(|i| (format!("e{i}"), spec(&["x"]))).collect();
    let existing = labels(&[
        (SCHEMA, "1"),
        (SERVERS, &labels::canonical_servers_json(&existing)),
    ]);
    let given: Servers = (0..30).map(|i| (format!("g{i}"), spec(&["x"]))).collect();
    let err = labels::stamp(&existing, &given)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("70 servers are declared, more than the limit of 64"),
        "{err}"
    );

    // A merge that would not fit in one label.
    let big: Servers = (0..40)
        .map(|i| {
            let mut s = spec(&["x"]);
            s.description = Some("d".repeat(2000));
            (format!("s{i}"), s)
        })
        .collect();
    let err = labels::stamp(&BTreeMap::new(), &big)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("more than the limit of 65536 bytes"), "{err}");
}

#[test]
fn stamp_is_stable_across_calls() {
    let existing = labels(&[(SCHEMA, "1"), (SERVERS, r#"{"b":["b"],"a":["a"]}"#)]);
    let given: Servers = [("c".to_string(), spec(&["c"]))].into();
    let first = labels::stamp(&existing, &given).unwrap_or_default();
    for _ in 0..3 {
        assert_eq!(labels::stamp(&existing, &given).unwrap_or_default(), first);
    }
    // Restamping what was stamped changes nothing.
    assert_eq!(
        labels::stamp(&first, &Servers::new()).unwrap_or_default(),
        first
    );
}

fn arb_spec() -> impl Strategy<Value = ServerSpec> {
    (
        prop::collection::vec("[a-z/.-]{1,8}", 1..4),
        prop::collection::btree_map("[A-Z_]{1,6}", "[ -~]{0,8}", 0..4),
        prop::option::of("/[a-z]{1,6}"),
        prop::option::of(1u32..=3600),
        prop::option::of("[ -~]{1,12}"),
    )
        .prop_map(
            |(command, env, workdir, call_timeout_secs, description)| ServerSpec {
                command,
                env,
                workdir,
                call_timeout_secs,
                description,
            },
        )
}

proptest! {
    #[test]
    fn canonical_json_ignores_insertion_order_and_round_trips(
        entries in prop::collection::btree_map("[a-z][a-z0-9_-]{0,8}", arb_spec(), 1..6)
            .prop_flat_map(|m| Just(m.into_iter().collect::<Vec<_>>()).prop_shuffle()),
    ) {
        let shuffled: Servers = entries.iter().cloned().collect();
        let reversed: Servers = entries.iter().rev().cloned().collect();
        let text = labels::canonical_servers_json(&shuffled);
        prop_assert_eq!(&text, &labels::canonical_servers_json(&reversed));
        prop_assert_eq!(&text, &labels::canonical_servers_json(&shuffled));
        // Compact, keys sorted: re-serialising the parsed text gives the same bytes.
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        prop_assert_eq!(&serde_json::to_string(&parsed).unwrap_or_default(), &text);

        // What is stamped reads back as the same servers.
        let out = labels::stamp(&BTreeMap::new(), &shuffled);
        prop_assert!(out.is_ok(), "{:?}", out);
        let out = out.unwrap_or_default();
        prop_assert_eq!(&out[SERVERS], &text);
        let back = labels::read(&out);
        prop_assert!(back.is_ok(), "{:?}", back);
        let back = back.unwrap_or_default();
        prop_assert_eq!(&back.servers, &shuffled);
        prop_assert_eq!(back.source.as_deref(), Some(SERVERS));
    }
}
