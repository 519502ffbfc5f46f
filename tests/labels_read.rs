//! Reading image labels through the public API: both spec forms, outrig compatibility,
//! schema versions, warnings, every validation rule with its message, env references.

mod common;

use common::labels::{labels, read_ok};
use mcpod::Error;
use mcpod::labels::{
    self, Network, OUTRIG_MCP, OutrigServersLabel, REQUESTS, Requests, SCHEMA, SERVERS, ServerSpec,
    Servers, ServersLabel,
};

fn read_err(pairs: &[(&str, &str)]) -> String {
    match labels::read(&labels(pairs)) {
        Ok(d) => panic!("read succeeded: {d:?}"),
        Err(e) => {
            assert!(matches!(e, Error::Label { .. }), "not a label error: {e:?}");
            e.to_string()
        }
    }
}

/// The message of reading `io.mcpod.servers` = `value` (schema 1).
fn servers_err(value: &str) -> String {
    read_err(&[(SCHEMA, "1"), (SERVERS, value)])
}

fn assert_at(msg: &str, key: &str, path: &str, says: &str) {
    let prefix = format!("label `{key}` at `{path}`: ");
    assert!(
        msg.starts_with(&prefix),
        "expected prefix {prefix:?} in: {msg}"
    );
    assert!(msg.contains(says), "expected {says:?} in: {msg}");
    assert!(msg.contains(". Fix: "), "no fix hint in: {msg}");
}

fn spec(command: &[&str]) -> ServerSpec {
    ServerSpec::argv(command.iter().copied())
}

// ---------------------------------------------------------------------------------------
// Reading servers

#[test]
fn both_spec_forms_are_read_and_normalised() {
    let d = read_ok(&[
        (SCHEMA, "1"),
        (
            SERVERS,
            r#"{
                "fs": ["mcp-server-filesystem", "/data"],
                "db": {
                    "command": ["db-mcp", "--ro"],
                    "env": {"TOKEN": "${DB_TOKEN}", "MODE": "ro"},
                    "workdir": "/srv",
                    "call_timeout_secs": 30,
                    "description": "the database"
                }
            }"#,
        ),
    ]);
    assert_eq!(d.source.as_deref(), Some(SERVERS));
    assert_eq!(d.schema_version.as_deref(), Some("1"));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert_eq!(d.requests, None);
    assert_eq!(d.servers["fs"], spec(&["mcp-server-filesystem", "/data"]));
    assert_eq!(
        d.servers["db"],
        ServerSpec {
            command: vec!["db-mcp".into(), "--ro".into()],
            env: [
                ("TOKEN".to_string(), "${DB_TOKEN}".to_string()),
                ("MODE".to_string(), "ro".to_string())
            ]
            .into(),
            workdir: Some("/srv".into()),
            call_timeout_secs: Some(30),
            description: Some("the database".into()),
        }
    );
    assert_eq!(d.servers.len(), 2);
}

#[test]
fn outrig_label_is_read_with_its_kebab_case_timeout() {
    let outrig = r#"{"build":{"command":["cargo-mcp"],"env":{"CARGO_HOME":"/workspace/.cargo"}},"db":{"command":["db-mcp"],"env":{"TOKEN":"${DB_TOKEN}"},"call-timeout-secs":30},"fs":["mcp-server-filesystem","/workspace"]}"#;
    let d = read_ok(&[(OUTRIG_MCP, outrig), ("org.outrig.schema", "1")]);
    assert_eq!(d.source.as_deref(), Some(OUTRIG_MCP));
    assert_eq!(d.schema_version, None);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert_eq!(d.servers.len(), 3);
    assert_eq!(d.servers["db"].call_timeout_secs, Some(30));
    assert_eq!(d.servers["db"].env["TOKEN"], "${DB_TOKEN}");
    assert_eq!(
        d.servers["fs"],
        spec(&["mcp-server-filesystem", "/workspace"])
    );
    assert_eq!(d.servers["build"].env["CARGO_HOME"], "/workspace/.cargo");
}

#[test]
fn outrig_label_validation_uses_outrig_names() {
    let msg = read_err(&[(
        OUTRIG_MCP,
        r#"{"db":{"command":["x"],"call-timeout-secs":0}}"#,
    )]);
    assert_at(
        &msg,
        OUTRIG_MCP,
        "$.db.call-timeout-secs",
        "call-timeout-secs 0 is out of range 1..=3600",
    );
    // The mcpod spelling in an outrig label is unknown: a warning with a hint, not a timeout.
    let d = read_ok(&[(
        OUTRIG_MCP,
        r#"{"db":{"command":["x"],"call_timeout_secs":5}}"#,
    )]);
    assert_eq!(d.servers["db"].call_timeout_secs, None);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(
        d.warnings[0].starts_with(
            "label `org.outrig.mcp` at `$.db.call_timeout_secs`: unknown field `call_timeout_secs` ignored (did you mean `call-timeout-secs`?)"
        ),
        "{:?}",
        d.warnings
    );
}

#[test]
fn outrig_reserved_name_is_an_error_in_outrig_labels_only() {
    let msg = read_err(&[(OUTRIG_MCP, r#"{"outrig":["x"]}"#)]);
    assert_at(
        &msg,
        OUTRIG_MCP,
        "$.outrig",
        "server name `outrig` is reserved by outrig",
    );
    let d = read_ok(&[(SCHEMA, "1"), (SERVERS, r#"{"outrig":["x"]}"#)]);
    assert_eq!(d.servers["outrig"], spec(&["x"]));
}

#[test]
fn outrig_fields_refused_in_labels_are_refused() {
    let msg = read_err(&[(OUTRIG_MCP, r#"{"db":{"command":["x"],"sidecar":true}}"#)]);
    assert_at(
        &msg,
        OUTRIG_MCP,
        "$.db.sidecar",
        "`sidecar` is not allowed in an image label",
    );
}

#[test]
fn mcpod_servers_take_precedence_over_outrig_with_a_warning() {
    let d = read_ok(&[
        (SCHEMA, "1"),
        (SERVERS, r#"{"a":["from-mcpod"]}"#),
        (OUTRIG_MCP, r#"{"b":["from-outrig"]}"#),
    ]);
    assert_eq!(d.source.as_deref(), Some(SERVERS));
    assert_eq!(d.servers.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(
        d.warnings,
        [
            "label `org.outrig.mcp` was ignored because `io.mcpod.servers` is present and takes precedence"
        ]
    );
    // The ignored label is not even parsed: a broken one does not fail the read.
    let d = read_ok(&[
        (SCHEMA, "1"),
        (SERVERS, r#"{"a":["x"]}"#),
        (OUTRIG_MCP, "not json"),
    ]);
    assert_eq!(d.servers.len(), 1);
}

#[test]
fn an_image_without_server_labels_declares_nothing_with_a_warning() {
    let d = read_ok(&[("org.opencontainers.image.title", "x")]);
    assert!(d.servers.is_empty());
    assert_eq!(d.source, None);
    assert_eq!(d.schema_version, None);
    assert_eq!(d.warnings.len(), 1);
    assert!(
        d.warnings[0].contains("declares no MCP servers"),
        "{:?}",
        d.warnings
    );

    let d = read_ok(&[(SCHEMA, "1"), (SERVERS, "{}")]);
    assert!(d.servers.is_empty());
    assert_eq!(d.source.as_deref(), Some(SERVERS));
    assert_eq!(
        d.warnings,
        ["label `io.mcpod.servers` declares no MCP servers"]
    );
}

// ---------------------------------------------------------------------------------------
// Schema version

#[test]
fn unknown_schema_major_is_an_error_quoting_the_key() {
    for v in ["2", "2.1", "0"] {
        let msg = read_err(&[(SCHEMA, v), (SERVERS, r#"{"a":["x"]}"#)]);
        assert_at(
            &msg,
            SCHEMA,
            "$",
            &format!("schema version `{v}` has major version"),
        );
        assert!(msg.contains("reads major version 1 only"), "{msg}");
    }
    let msg = read_err(&[(SCHEMA, "one")]);
    assert_at(&msg, SCHEMA, "$", "`one` is not a schema version");
}

#[test]
fn schema_1_and_1_minor_are_accepted() {
    let d = read_ok(&[(SCHEMA, "1"), (SERVERS, r#"{"a":["x"]}"#)]);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let d = read_ok(&[(SCHEMA, " 1.0 "), (SERVERS, r#"{"a":["x"]}"#)]);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert_eq!(d.schema_version.as_deref(), Some("1.0"));
    let d = read_ok(&[
        (SCHEMA, "1.4"),
        (SERVERS, r#"{"a":{"command":["x"],"sandbox":"strict"}}"#),
    ]);
    assert_eq!(d.schema_version.as_deref(), Some("1.4"));
    assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
    assert!(
        d.warnings[0].contains("`1.4`, newer than the 1.0"),
        "{:?}",
        d.warnings
    );
    assert!(
        d.warnings[1].starts_with(
            "label `io.mcpod.servers` at `$.a.sandbox`: unknown field `sandbox` ignored"
        ),
        "{:?}",
        d.warnings
    );
}

#[test]
fn missing_schema_label_is_read_as_1_with_a_warning() {
    let d = read_ok(&[(SERVERS, r#"{"a":["x"]}"#)]);
    assert_eq!(d.servers["a"], spec(&["x"]));
    assert_eq!(d.schema_version, None);
    assert_eq!(d.warnings.len(), 1);
    assert!(
        d.warnings[0].contains(
            "label `io.mcpod.schema` is missing; the io.mcpod.* labels were read as schema 1"
        ),
        "{:?}",
        d.warnings
    );
}

// ---------------------------------------------------------------------------------------
// Unknown fields are warnings

#[test]
fn unknown_fields_are_warnings_with_their_path() {
    let d = read_ok(&[
        (SCHEMA, "1"),
        (
            SERVERS,
            r#"{"fs":{"command":["x"],"restart":"always","Env":{}}}"#,
        ),
        (REQUESTS, r#"{"network":"egress","gpu":true}"#),
    ]);
    assert_eq!(d.servers["fs"], spec(&["x"]));
    assert_eq!(
        d.requests.as_ref().map(|r| r.network),
        Some(Network::Egress)
    );
    assert_eq!(d.warnings.len(), 3, "{:?}", d.warnings);
    assert!(
        d.warnings[0].starts_with("label `io.mcpod.servers` at `$.fs.Env`: unknown field `Env` ignored (did you mean `env`?)"),
        "{:?}",
        d.warnings
    );
    assert!(
        d.warnings[1].starts_with("label `io.mcpod.servers` at `$.fs.restart`: unknown field `restart` ignored; known fields: `command`, `env`"),
        "{:?}",
        d.warnings
    );
    assert!(
        d.warnings[2]
            .starts_with("label `io.mcpod.requests` at `$.gpu`: unknown field `gpu` ignored"),
        "{:?}",
        d.warnings
    );
}

#[test]
fn a_bad_server_name_is_still_an_error_not_an_unknown_key() {
    let msg = servers_err(r#"{"my srv":["y"]}"#);
    assert_at(
        &msg,
        SERVERS,
        r#"$["my srv"]"#,
        "server name `my srv` may contain only ASCII letters, digits, `_` and `-`",
    );
}

// ---------------------------------------------------------------------------------------
// Validation rules, each with its message

#[test]
fn wrong_type_message_has_key_path_and_fix() {
    let msg = servers_err(r#"{"fs":{"command":[1]}}"#);
    assert_eq!(
        msg,
        "label `io.mcpod.servers` at `$.fs.command[0]`: expected a string, found a number. \
         Fix: make `$.fs.command[0]` a string"
    );
}

#[test]
fn malformed_json_reports_line_and_column() {
    let msg = servers_err("{\"fs\": [\"x\"],\n \"db\": }");
    assert_at(&msg, SERVERS, "$", "the value is not valid JSON");
    assert!(msg.contains("line 2 column"), "{msg}");
    assert!(msg.contains("LABEL io.mcpod.servers='"), "{msg}");
    let msg = read_err(&[(SCHEMA, "1"), (REQUESTS, "{")]);
    assert_at(&msg, REQUESTS, "$", "the value is not valid JSON");
    assert!(msg.contains("line 1 column 1"), "{msg}");
}

#[test]
fn server_names_are_checked() {
    assert_at(
        &servers_err(r#"{"9x":["x"]}"#),
        SERVERS,
        r#"$["9x"]"#,
        "server name `9x` must start with an ASCII letter",
    );
    assert_at(
        &servers_err(r#"{"_x":["x"]}"#),
        SERVERS,
        "$._x",
        "server name `_x` must start with an ASCII letter",
    );
    assert_at(
        &servers_err(r#"{"a.b":["x"]}"#),
        SERVERS,
        r#"$["a.b"]"#,
        "may contain only ASCII letters",
    );
    let long = "a".repeat(33);
    assert_at(
        &servers_err(&format!(r#"{{"{long}":["x"]}}"#)),
        SERVERS,
        &format!("$.{long}"),
        "is 33 bytes long, more than 32",
    );
    assert_at(
        &servers_err(r#"{"":["x"]}"#),
        SERVERS,
        r#"$[""]"#,
        "server name `` is empty",
    );
    // The longest allowed name is fine.
    let ok = "a".repeat(32);
    assert_eq!(
        read_ok(&[(SCHEMA, "1"), (SERVERS, &format!(r#"{{"{ok}":["x"]}}"#))])
            .servers
            .len(),
        1
    );
}

#[test]
fn commands_are_checked() {
    assert_at(
        &servers_err(r#"{"fs":[]}"#),
        SERVERS,
        "$.fs",
        "the command is empty",
    );
    assert_at(
        &servers_err(r#"{"fs":{"command":[]}}"#),
        SERVERS,
        "$.fs.command",
        "the command is empty",
    );
    assert_at(
        &servers_err(r#"{"fs":[""]}"#),
        SERVERS,
        "$.fs[0]",
        "the program name (argv[0]) is empty",
    );
    assert_at(
        &servers_err(r#"{"fs":{"command":["", "x"]}}"#),
        SERVERS,
        "$.fs.command[0]",
        "the program name (argv[0]) is empty",
    );
    assert_at(
        &servers_err(r#"{"fs":{"env":{}}}"#),
        SERVERS,
        "$.fs",
        "the spec has no `command`",
    );
    assert_at(
        &servers_err(r#"{"fs":["x","a\u0000b"]}"#),
        SERVERS,
        "$.fs[1]",
        "NUL character",
    );
}

#[test]
fn env_keys_are_checked() {
    assert_at(
        &servers_err(r#"{"fs":{"command":["x"],"env":{"1A":"v"}}}"#),
        SERVERS,
        r#"$.fs.env["1A"]"#,
        "`1A` is not a valid environment variable name",
    );
    assert_at(
        &servers_err(r#"{"fs":{"command":["x"],"env":{"A-B":"v"}}}"#),
        SERVERS,
        "$.fs.env.A-B",
        "`A-B` is not a valid environment variable name",
    );
    assert_at(
        &servers_err(r#"{"fs":{"command":["x"],"env":{"A":5}}}"#),
        SERVERS,
        "$.fs.env.A",
        "expected a string, found a number",
    );
}

#[test]
fn call_timeouts_are_checked() {
    for bad in ["0", "3601", "99999999999"] {
        assert_at(
            &servers_err(&format!(
                r#"{{"fs":{{"command":["x"],"call_timeout_secs":{bad}}}}}"#
            )),
            SERVERS,
            "$.fs.call_timeout_secs",
            &format!("call_timeout_secs {bad} is out of range 1..=3600"),
        );
    }
    assert_at(
        &servers_err(r#"{"fs":{"command":["x"],"call_timeout_secs":2.5}}"#),
        SERVERS,
        "$.fs.call_timeout_secs",
        "call_timeout_secs 2.5 is not a whole number",
    );
    for ok in [1, 3600] {
        let d = read_ok(&[
            (SCHEMA, "1"),
            (
                SERVERS,
                &format!(r#"{{"fs":{{"command":["x"],"call_timeout_secs":{ok}}}}}"#),
            ),
        ]);
        assert_eq!(d.servers["fs"].call_timeout_secs, Some(ok));
    }
}

#[test]
fn workdir_must_be_absolute() {
    assert_at(
        &servers_err(r#"{"fs":{"command":["x"],"workdir":"srv"}}"#),
        SERVERS,
        "$.fs.workdir",
        "workdir `srv` is not an absolute path",
    );
    assert_at(
        &servers_err(r#"{"fs":{"command":["x"],"workdir":""}}"#),
        SERVERS,
        "$.fs.workdir",
        "is not an absolute path",
    );
}

#[test]
fn label_size_is_checked_before_parsing() {
    // Not even JSON: the size check comes first.
    let huge = "x".repeat(64 * 1024 + 1);
    let msg = servers_err(&huge);
    assert_at(
        &msg,
        SERVERS,
        "$",
        "the value is 65537 bytes, more than the limit of 65536 bytes (64 KiB); it was not parsed",
    );
    let msg = read_err(&[(SCHEMA, "1"), (REQUESTS, &huge)]);
    assert_at(&msg, REQUESTS, "$", "65537 bytes");
    // Exactly at the limit is parsed.
    let desc = "d".repeat(64 * 1024 - r#"{"a":{"command":["x"],"description":""}}"#.len());
    let at_limit = format!(r#"{{"a":{{"command":["x"],"description":"{desc}"}}}}"#);
    assert_eq!(at_limit.len(), 64 * 1024);
    assert_eq!(
        read_ok(&[(SCHEMA, "1"), (SERVERS, &at_limit)])
            .servers
            .len(),
        1
    );
}

#[test]
fn server_count_is_limited() {
    let many = |n: usize| {
        let entries: Vec<String> = (0..n).map(|i| format!(r#""s{i}":["x"]"#)).collect();
        format!("{{{}}}", entries.join(","))
    };
    assert_eq!(
        read_ok(&[(SCHEMA, "1"), (SERVERS, &many(64))])
            .servers
            .len(),
        64
    );
    assert_at(
        &servers_err(&many(65)),
        SERVERS,
        "$",
        "65 servers are declared, more than the limit of 64",
    );
}

#[test]
fn requests_are_read_and_checked() {
    let d = read_ok(&[
        (SCHEMA, "1"),
        (
            REQUESTS,
            r#"{"network":"egress","writable_paths":["/data/","/cache"],"memory_mb":512,"cpus":0.5,"pids":256,"env":["API_KEY"]}"#,
        ),
    ]);
    assert_eq!(
        d.requests,
        Some(Requests {
            network: Network::Egress,
            writable_paths: vec!["/cache".into(), "/data".into()],
            memory_mb: Some(512),
            millicpus: Some(500),
            pids: Some(256),
            env: vec!["API_KEY".into()],
            egress: vec![],
            forwards: Default::default(),
        })
    );
    assert!(d.servers.is_empty());
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("declares no MCP servers"))
    );

    let empty = read_ok(&[(SCHEMA, "1"), (REQUESTS, "{}")]);
    assert_eq!(empty.requests, Some(Requests::default()));
    assert_eq!(Requests::default().network, Network::None);

    for (value, path, says) in [
        (
            r#"{"network":"host"}"#,
            "$.network",
            "network `host` is not one of `none`, `egress`",
        ),
        (
            r#"{"writable_paths":["/ok","tmp"]}"#,
            "$.writable_paths[1]",
            "writable path `tmp` is not absolute",
        ),
        (
            r#"{"writable_paths":["/tmp:exec"]}"#,
            "$.writable_paths[0]",
            "contains `:`",
        ),
        (
            r#"{"writable_paths":["/"]}"#,
            "$.writable_paths[0]",
            "the root `/` cannot be requested writable",
        ),
        (
            r#"{"writable_paths":["/a/../etc"]}"#,
            "$.writable_paths[0]",
            "`..` component",
        ),
        (
            r#"{"memory_mb":0}"#,
            "$.memory_mb",
            "memory_mb 0 is out of range",
        ),
        (r#"{"cpus":-1}"#, "$.cpus", "cpus -1 is out of range"),
        (
            r#"{"pids":1.5}"#,
            "$.pids",
            "pids 1.5 is not a whole number",
        ),
        (
            r#"{"env":["GOOD","BAD-NAME"]}"#,
            "$.env[1]",
            "`BAD-NAME` is not a valid environment variable name",
        ),
        (r#"["egress"]"#, "$", "expected an object, found an array"),
    ] {
        let msg = read_err(&[(SCHEMA, "1"), (REQUESTS, value)]);
        assert_at(&msg, REQUESTS, path, says);
    }
}

// ---------------------------------------------------------------------------------------
// Env references

#[test]
fn only_exact_references_are_references() {
    let d = read_ok(&[
        (SCHEMA, "1"),
        (
            SERVERS,
            r#"{"s":{"command":["x"],"env":{"R":"${A}","P":"x${A}","S":"${A}x","D":"$A","E":"${}","N":"${1A}","L":"plain"}}}"#,
        ),
    ]);
    let refs: Vec<(&str, &str)> = d.servers["s"].env_refs().collect();
    assert_eq!(refs, [("R", "A")]);
    for literal in ["x${A}", "${A}x", "$A", "${}", "${1A}"] {
        assert_eq!(labels::env_ref(literal), None, "{literal}");
    }
    assert_eq!(labels::env_ref("${A}"), Some("A"));
    // Look-alikes are read, with a warning each, and resolve to themselves.
    assert_eq!(d.warnings.len(), 5, "{:?}", d.warnings);
    assert!(d.warnings.iter().all(|w| w.contains("is passed literally")));
    let env = d.servers["s"]
        .resolve_env("s", &["A"], |n| (n == "A").then(|| "value".to_string()))
        .map_err(|e| e.to_string());
    let env = env.as_ref().map_err(String::as_str);
    let env = env.ok().cloned().unwrap_or_default();
    assert_eq!(env["R"], "value");
    assert_eq!(env["P"], "x${A}");
    assert_eq!(env["N"], "${1A}");
    assert_eq!(env["L"], "plain");
}

#[test]
fn resolution_errors_name_server_key_and_variable() {
    let d = read_ok(&[
        (SCHEMA, "1"),
        (
            SERVERS,
            r#"{"db":{"command":["x"],"env":{"TOKEN":"${DB_TOKEN}"}}}"#,
        ),
    ]);
    let db = &d.servers["db"];
    let no_allow: [&str; 0] = [];
    let err = db
        .resolve_env("db", &no_allow, |_| Some("v".into()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("server `db` sets `TOKEN` from host variable `DB_TOKEN`, which the operator has not allowed"),
        "{err}"
    );
    let err = db
        .resolve_env("db", &["DB_TOKEN"], |_| None)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("server `db` sets `TOKEN` from host variable `DB_TOKEN`, which is not set"),
        "{err}"
    );
    let all: Vec<_> = labels::all_env_refs(&d.servers).collect();
    assert_eq!(all, [("db", "TOKEN", "DB_TOKEN")]);
}

// ---------------------------------------------------------------------------------------
// The wire types and the reader agree on valid labels

#[test]
fn wire_types_agree_with_the_reader() {
    let mcpod = r#"{"a":["x","--y"],"b":{"command":["z"],"env":{"K":"${V}","L":"l"},"workdir":"/w","call_timeout_secs":7,"description":"d"}}"#;
    let via_serde: ServersLabel = serde_json::from_str(mcpod).unwrap_or_default();
    let via_serde: Servers = via_serde
        .0
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect();
    assert_eq!(
        via_serde,
        read_ok(&[(SCHEMA, "1"), (SERVERS, mcpod)]).servers
    );
    assert_eq!(via_serde.len(), 2);

    let outrig = r#"{"a":["x"],"db":{"command":["db-mcp"],"env":{"TOKEN":"${DB_TOKEN}"},"call-timeout-secs":30}}"#;
    let via_serde: OutrigServersLabel = serde_json::from_str(outrig).unwrap_or_default();
    let via_serde: Servers = via_serde
        .0
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect();
    assert_eq!(via_serde, read_ok(&[(OUTRIG_MCP, outrig)]).servers);
    assert_eq!(via_serde["db"].call_timeout_secs, Some(30));
}
