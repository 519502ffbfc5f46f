//! Walks one label value (parsed as a `serde_json::Value`) into the normalised types, so that
//! every error and warning names the JSON path it concerns. Type errors, bad values and
//! structural problems are errors; unknown fields are warnings for a label (an image may have
//! been built for a newer minor version) and errors for agent input (most likely a typo).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::env::looks_like_ref;
use super::json::{ROOT, index_path, key_path, quote};
use super::spec::{Network, Requests, ServerSpec, Servers};
use super::validate::{self, MEMORY_MB, MILLICPUS, PIDS, Problem, SpecPaths};
use super::{CALL_TIMEOUT_SECS, MAX_LABEL_BYTES, OUTRIG_RESERVED_NAME};

/// Which servers label a value comes from: the field names differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `io.mcpod.servers`: `command`, `env`, `workdir`, `call_timeout_secs`, `description`.
    Mcpod,
    /// `org.outrig.mcp`: `command`, `env`, `call-timeout-secs`.
    Outrig,
}

/// Serde reads a server given as JSON (`#[serde(try_from)]` on the spec)
/// through the same checks as a label's.
impl TryFrom<serde_json::Value> for ServerSpec {
    type Error = String;

    fn try_from(value: serde_json::Value) -> Result<Self, Self::Error> {
        spec_from_input(&value)
    }
}

impl Dialect {
    fn fields(self) -> &'static [&'static str] {
        match self {
            Dialect::Mcpod => &[
                "command",
                "env",
                "workdir",
                "call_timeout_secs",
                "description",
            ],
            Dialect::Outrig => &["command", "env", "call-timeout-secs"],
        }
    }

    fn timeout_field(self) -> &'static str {
        match self {
            Dialect::Mcpod => "call_timeout_secs",
            Dialect::Outrig => "call-timeout-secs",
        }
    }
}

/// Fields outrig knows but refuses in a label: mcpod refuses them too rather than run
/// something other than what the image meant.
const OUTRIG_FORBIDDEN: &[&str] = &["sidecar", "image", "args", "view"];

const REQUEST_FIELDS: &[&str] = &[
    "network",
    "writable_paths",
    "memory_mb",
    "cpus",
    "pids",
    "env",
    "egress",
    "forwards",
];

/// Warnings one label gives, at most (then one saying there were more).
const MAX_WARNINGS: usize = 20;

/// Where a value comes from, and where its warnings go.
pub(crate) struct Ctx {
    /// The label key; `None` for agent input, where unknown fields are errors.
    label: Option<&'static str>,
    pub warnings: Vec<String>,
}

impl Ctx {
    pub(crate) fn label(key: &'static str) -> Self {
        Ctx {
            label: Some(key),
            warnings: Vec::new(),
        }
    }

    fn input() -> Self {
        Ctx {
            label: None,
            warnings: Vec::new(),
        }
    }

    fn warn(&mut self, path: &str, message: String) {
        let Some(key) = self.label else { return };
        // A label of thousands of unknown fields gives a handful of warnings.
        match self.warnings.len() {
            n if n < MAX_WARNINGS => self
                .warnings
                .push(format!("label `{key}` at `{path}`: {message}")),
            MAX_WARNINGS => self.warnings.push(format!(
                "label `{key}`: more warnings than {MAX_WARNINGS}; the rest are not shown"
            )),
            _ => {}
        }
    }

    fn unknown(&mut self, path: &str, field: &str, known: &[&'static str]) -> Result<(), Problem> {
        let hint = did_you_mean(field, known)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        let known = known
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if self.label.is_some() {
            self.warn(
                path,
                format!(
                    "unknown field `{}` ignored{hint}; known fields: {known}",
                    quote(field)
                ),
            );
            Ok(())
        } else {
            Err(Problem::new(
                path,
                format!("unknown field `{}`{hint}", quote(field)),
                format!("remove it; the known fields are {known}"),
            ))
        }
    }
}

/// A known field that differs from `field` only in case or in `-` versus `_`.
fn did_you_mean(field: &str, known: &[&'static str]) -> Option<&'static str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let f = norm(field);
    known.iter().copied().find(|k| norm(k) == f)
}

/// The value of label `key` as JSON: size checked first, syntax errors with line and column.
pub(crate) fn label_json(raw: &str, example: &str) -> Result<Value, Problem> {
    if raw.len() > MAX_LABEL_BYTES {
        return Err(Problem::new(
            ROOT,
            format!(
                "the value is {} bytes, more than the limit of {MAX_LABEL_BYTES} bytes (64 KiB); it was not parsed",
                raw.len()
            ),
            "declare less in the label: fewer servers, shorter descriptions",
        ));
    }
    serde_json::from_str(raw).map_err(|e| {
        Problem::new(
            ROOT,
            format!("the value is not valid JSON: {e}"),
            format!(
                "write the value as JSON; in a Containerfile, single-quote all of it: {example}"
            ),
        )
    })
}

/// A servers label (`io.mcpod.servers` or `org.outrig.mcp`) into servers.
pub(crate) fn servers(value: &Value, dialect: Dialect, ctx: &mut Ctx) -> Result<Servers, Problem> {
    let Value::Object(map) = value else {
        return Err(Problem::wrong_type(
            ROOT,
            "an object (server name → spec)",
            value,
        ));
    };
    validate::check_server_count(map.len(), ROOT)?;
    let mut out = Servers::new();
    for (name, spec_value) in map {
        let path = key_path(ROOT, name);
        validate::check_server_name(name, &path)?;
        if dialect == Dialect::Outrig && name == OUTRIG_RESERVED_NAME {
            return Err(Problem::new(
                path,
                "server name `outrig` is reserved by outrig",
                "rename the server: outrig itself refuses an image that declares `outrig`, so the label is not valid as written",
            ));
        }
        let (spec, paths) = spec(spec_value, &path, dialect, ctx)?;
        validate::check_spec(&spec, &paths)?;
        for (key, value) in &spec.env {
            if looks_like_ref(value) {
                ctx.warn(
                    &key_path(&paths.env, key),
                    format!(
                        "`{}` is passed literally: only a value that is exactly `${{NAME}}` is taken from the host",
                        quote(value)
                    ),
                );
            }
        }
        out.insert(name.clone(), spec);
    }
    Ok(out)
}

/// One spec, short or object form, at `path`.
fn spec(
    value: &Value,
    path: &str,
    dialect: Dialect,
    ctx: &mut Ctx,
) -> Result<(ServerSpec, SpecPaths), Problem> {
    let mut paths = SpecPaths {
        command: key_path(path, "command"),
        env: key_path(path, "env"),
        workdir: key_path(path, "workdir"),
        call_timeout: key_path(path, dialect.timeout_field()),
        call_timeout_field: dialect.timeout_field(),
    };
    match value {
        Value::Array(_) => {
            paths.command = path.to_string();
            Ok((ServerSpec::argv(strings(value, path)?), paths))
        }
        Value::Object(map) => Ok((spec_object(map, path, dialect, ctx)?, paths)),
        other => Err(Problem::wrong_type(
            path,
            "an argv array or an object with `command`",
            other,
        )),
    }
}

fn spec_object(
    map: &Map<String, Value>,
    path: &str,
    dialect: Dialect,
    ctx: &mut Ctx,
) -> Result<ServerSpec, Problem> {
    let mut spec = ServerSpec::default();
    let mut command = None;
    for (field, value) in map {
        let fpath = key_path(path, field);
        match (dialect, field.as_str()) {
            (_, "command") => command = Some(strings(value, &fpath)?),
            (_, "env") => spec.env = string_map(value, &fpath)?,
            (Dialect::Mcpod, "workdir") => spec.workdir = opt_string(value, &fpath)?,
            (Dialect::Mcpod, "description") => {
                spec.description = opt_string(value, &fpath)?.filter(|d| !d.is_empty());
            }
            (Dialect::Mcpod, "call_timeout_secs") | (Dialect::Outrig, "call-timeout-secs") => {
                spec.call_timeout_secs =
                    whole(value, &fpath, dialect.timeout_field(), &CALL_TIMEOUT_SECS)?;
            }
            (Dialect::Outrig, f) if OUTRIG_FORBIDDEN.contains(&f) => {
                return Err(Problem::new(
                    fpath,
                    format!("`{f}` is not allowed in an image label (outrig refuses it there too)"),
                    format!("remove `{f}`: a label can only run a command inside its own image"),
                ));
            }
            (_, f) => ctx.unknown(&fpath, f, dialect.fields())?,
        }
    }
    spec.command = command.ok_or_else(|| {
        Problem::new(
            path,
            "the spec has no `command`",
            "add \"command\": [\"program\", \"arg\", …], or give the argv array alone",
        )
    })?;
    Ok(spec)
}

/// A spec an agent passed in (either form, unknown fields refused). Semantic checks are
/// `validate_servers`' job.
pub(crate) fn spec_from_input(value: &Value) -> Result<ServerSpec, String> {
    let mut ctx = Ctx::input();
    spec(value, ROOT, Dialect::Mcpod, &mut ctx)
        .map(|(spec, _)| spec)
        .map_err(|p| format!("server spec at `{}`: {}. Fix: {}", p.path, p.reason, p.fix))
}

/// The `io.mcpod.requests` label into requests.
pub(crate) fn requests(value: &Value, ctx: &mut Ctx) -> Result<Requests, Problem> {
    let Value::Object(map) = value else {
        return Err(Problem::wrong_type(ROOT, "an object", value));
    };
    let mut out = Requests::default();
    for (field, value) in map {
        let path = key_path(ROOT, field);
        match field.as_str() {
            "network" => out.network = network(value, &path)?,
            "writable_paths" => {
                let mut set = BTreeSet::new();
                for (i, p) in strings(value, &path)?.into_iter().enumerate() {
                    validate::check_writable_path(&p, &index_path(&path, i))?;
                    set.insert(p.trim_end_matches('/').to_string());
                }
                out.writable_paths = set.into_iter().collect();
            }
            "memory_mb" => out.memory_mb = whole(value, &path, "memory_mb", &MEMORY_MB)?,
            "cpus" => out.millicpus = cpus(value, &path)?,
            "pids" => out.pids = whole(value, &path, "pids", &PIDS)?,
            "env" => {
                let mut set = BTreeSet::new();
                for (i, name) in strings(value, &path)?.into_iter().enumerate() {
                    if !super::env::is_env_name(&name) {
                        return Err(Problem::new(
                            index_path(&path, i),
                            format!(
                                "`{}` is not a valid environment variable name",
                                quote(&name)
                            ),
                            "use a name matching ^[A-Za-z_][A-Za-z0-9_]*$, e.g. API_TOKEN",
                        ));
                    }
                    set.insert(name);
                }
                out.env = set.into_iter().collect();
            }
            "egress" => {
                let mut set = BTreeSet::new();
                for (i, text) in strings(value, &path)?.into_iter().enumerate() {
                    let pattern = crate::egress::Pattern::parse(&text).map_err(|why| {
                        Problem::new(index_path(&path, i), why, "fix or remove it")
                    })?;
                    set.insert(pattern);
                }
                out.egress = set.into_iter().collect();
            }
            "forwards" => out.forwards = forwards(value, &path)?,
            f => ctx.unknown(&path, f, REQUEST_FIELDS)?,
        }
    }
    Ok(out)
}

/// `{"PORT": "HOST:PORT"}`: literal destinations, ports 1..=65535.
fn forwards(
    value: &Value,
    path: &str,
) -> Result<std::collections::BTreeMap<u16, crate::egress::Pattern>, Problem> {
    let Value::Object(map) = value else {
        return Err(Problem::wrong_type(
            path,
            "an object of port → HOST:PORT",
            value,
        ));
    };
    let mut out = std::collections::BTreeMap::new();
    for (port, to) in map {
        let at = key_path(path, port);
        let listen: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            Problem::new(
                at.clone(),
                format!("`{}` is not a port (1 to 65535)", quote(port)),
                "key each forward by the port its clients connect to in the container",
            )
        })?;
        let Value::String(to) = to else {
            return Err(Problem::wrong_type(&at, "a HOST:PORT string", to));
        };
        let pattern = crate::egress::Pattern::parse(to)
            .map_err(|why| Problem::new(at.clone(), why, "fix or remove it"))?;
        if !pattern.is_literal() {
            return Err(Problem::new(
                at,
                format!(
                    "`{}` is a wildcard; a forward goes to one destination",
                    quote(to)
                ),
                "name one host",
            ));
        }
        out.insert(listen, pattern);
    }
    Ok(out)
}

fn network(value: &Value, path: &str) -> Result<Network, Problem> {
    match value {
        Value::Null => Ok(Network::None),
        Value::String(s) if s == "none" => Ok(Network::None),
        Value::String(s) if s == "egress" => Ok(Network::Egress),
        Value::String(s) => Err(Problem::new(
            path,
            format!("network `{}` is not one of `none`, `egress`", quote(s)),
            "ask for \"none\" or \"egress\"",
        )),
        other => Err(Problem::wrong_type(path, "a string", other)),
    }
}

fn cpus(value: &Value, path: &str) -> Result<Option<u32>, Problem> {
    let n = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n,
        other => return Err(Problem::wrong_type(path, "a number of CPUs", other)),
    };
    let millis = n.as_f64().map(|f| (f * 1000.0).round());
    match millis {
        Some(m) if m >= f64::from(*MILLICPUS.start()) && m <= f64::from(*MILLICPUS.end()) => {
            // In range of u32 by the check above.
            Ok(Some(m as u32))
        }
        _ => Err(Problem::new(
            path,
            format!("cpus {n} is out of range 0.001..=1024"),
            "ask for a number of CPUs such as 0.5 or 2, or leave it out",
        )),
    }
}

/// A whole number within `range`; `null` counts as absent.
fn whole(
    value: &Value,
    path: &str,
    what: &str,
    range: &std::ops::RangeInclusive<u32>,
) -> Result<Option<u32>, Problem> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(v) => validate::check_range(v, range, what, path).map(Some),
            None => Err(Problem::new(
                path,
                format!("{what} {n} is not a whole number"),
                format!(
                    "give {what} as a whole number between {} and {}",
                    range.start(),
                    range.end()
                ),
            )),
        },
        other => Err(Problem::wrong_type(path, "a whole number", other)),
    }
}

fn strings(value: &Value, path: &str) -> Result<Vec<String>, Problem> {
    let Value::Array(items) = value else {
        return Err(Problem::wrong_type(path, "an array of strings", value));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(Problem::wrong_type(&index_path(path, i), "a string", other)),
        })
        .collect()
}

fn string_map(value: &Value, path: &str) -> Result<BTreeMap<String, String>, Problem> {
    let Value::Object(map) = value else {
        return Err(Problem::wrong_type(
            path,
            "an object of strings (name → value)",
            value,
        ));
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(Problem::wrong_type(&key_path(path, k), "a string", other)),
        })
        .collect()
}

fn opt_string(value: &Value, path: &str) -> Result<Option<String>, Problem> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(Problem::wrong_type(path, "a string", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mcpod(v: Value) -> (Result<Servers, Problem>, Vec<String>) {
        let mut ctx = Ctx::label(super::super::SERVERS);
        let r = servers(&v, Dialect::Mcpod, &mut ctx);
        (r, ctx.warnings)
    }

    #[test]
    fn short_and_object_forms_normalise_alike() {
        let (r, w) = mcpod(json!({
            "a": ["srv", "--x"],
            "b": {"command": ["srv", "--x"]},
        }));
        let s = r.unwrap();
        assert_eq!(s["a"], s["b"]);
        assert_eq!(s["a"], ServerSpec::argv(["srv", "--x"]));
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn wrong_types_name_the_path() {
        let cases = [
            (
                json!({"fs": {"command": [1]}}),
                "$.fs.command[0]",
                "expected a string, found a number",
            ),
            (
                json!({"fs": [true]}),
                "$.fs[0]",
                "expected a string, found a boolean",
            ),
            (
                json!({"fs": 3}),
                "$.fs",
                "expected an argv array or an object with `command`, found a number",
            ),
            (
                json!({"fs": {"command": "x"}}),
                "$.fs.command",
                "expected an array of strings, found a string",
            ),
            (
                json!({"fs": {"command": ["x"], "env": {"A": 1}}}),
                "$.fs.env.A",
                "expected a string, found a number",
            ),
            (
                json!({"fs": {"command": ["x"], "env": []}}),
                "$.fs.env",
                "found an array",
            ),
            (
                json!({"fs": {"command": ["x"], "workdir": 1}}),
                "$.fs.workdir",
                "expected a string",
            ),
            (
                json!({"fs": {"command": ["x"], "call_timeout_secs": "30"}}),
                "$.fs.call_timeout_secs",
                "expected a whole number, found a string",
            ),
            (
                json!({"fs": {"command": ["x"], "call_timeout_secs": 1.5}}),
                "$.fs.call_timeout_secs",
                "1.5 is not a whole number",
            ),
            (
                json!({"fs": {"command": ["x"], "call_timeout_secs": -1}}),
                "$.fs.call_timeout_secs",
                "-1 is not a whole number",
            ),
            (
                json!({"fs": {"env": {}}}),
                "$.fs",
                "the spec has no `command`",
            ),
            (
                json!([]),
                "$",
                "expected an object (server name → spec), found an array",
            ),
        ];
        for (v, path, says) in cases {
            let p = mcpod(v.clone()).0.unwrap_err();
            assert_eq!(p.path, path, "{v}");
            assert!(p.reason.contains(says), "{v}: {p:?}");
        }
    }

    #[test]
    fn nulls_count_as_absent_for_optional_fields() {
        let (r, _) = mcpod(
            json!({"fs": {"command": ["x"], "workdir": null, "call_timeout_secs": null, "description": null}}),
        );
        assert_eq!(r.unwrap()["fs"], ServerSpec::argv(["x"]));
    }

    #[test]
    fn near_miss_fields_get_a_hint() {
        let (r, w) = mcpod(json!({"fs": {"command": ["x"], "call-timeout-secs": 5}}));
        assert_eq!(r.unwrap()["fs"].call_timeout_secs, None);
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("label `io.mcpod.servers` at `$.fs.call-timeout-secs`: unknown field `call-timeout-secs` ignored (did you mean `call_timeout_secs`?)"), "{w:?}");
    }

    #[test]
    fn thousands_of_unknown_fields_give_a_handful_of_warnings() {
        let mut spec = serde_json::Map::new();
        spec.insert("command".into(), json!(["x"]));
        for i in 0..6000 {
            spec.insert(format!("u{i}"), json!(1));
        }
        let (r, w) = mcpod(json!({ "fs": spec }));
        assert!(r.is_ok());
        assert_eq!(w.len(), MAX_WARNINGS + 1, "{}", w.len());
        assert!(w[MAX_WARNINGS].contains("more warnings than 20"), "{w:?}");
    }

    #[test]
    fn literal_lookalike_references_warn() {
        let (r, w) = mcpod(json!({"fs": {"command": ["x"], "env": {"A": "x${B}", "C": "${D}"}}}));
        assert!(r.is_ok());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("at `$.fs.env.A`: `x${B}` is passed literally"),
            "{w:?}"
        );
    }

    #[test]
    fn agent_input_refuses_unknown_fields() {
        let err = spec_from_input(&json!({"command": ["x"], "call_timeout_sec": 5})).unwrap_err();
        assert!(
            err.starts_with(
                "server spec at `$.call_timeout_sec`: unknown field `call_timeout_sec`"
            ),
            "{err}"
        );
        let err = spec_from_input(&json!({"command": ["x"], "Command": 1})).unwrap_err();
        assert!(err.contains("(did you mean `command`?)"), "{err}");
        let s = spec_from_input(&json!(["x", "y"])).unwrap();
        assert_eq!(s, ServerSpec::argv(["x", "y"]));
    }

    #[test]
    fn requests_normalise() {
        let mut ctx = Ctx::label(super::super::REQUESTS);
        let r = requests(
            &json!({"network": "egress", "writable_paths": ["/b/", "/a", "/b"], "memory_mb": 512,
                    "cpus": 1.5, "pids": 128, "env": ["B", "A", "B"],
                    "egress": ["*.pypi.org:443", "API.github.com:443", "api.github.com:443"],
                    "forwards": {"5432": "db.internal:5432"}}),
            &mut ctx,
        )
        .unwrap();
        assert_eq!(
            r,
            Requests {
                network: Network::Egress,
                writable_paths: vec!["/a".into(), "/b".into()],
                memory_mb: Some(512),
                millicpus: Some(1500),
                pids: Some(128),
                env: vec!["A".into(), "B".into()],
                egress: ["api.github.com:443", "*.pypi.org:443"]
                    .map(|p| crate::egress::Pattern::parse(p).expect(p))
                    .into_iter()
                    .collect(),
                forwards: [(
                    5432,
                    crate::egress::Pattern::parse("db.internal:5432").expect("p")
                )]
                .into(),
            }
        );
        assert!(ctx.warnings.is_empty());
    }

    #[test]
    fn request_errors_name_the_path() {
        let cases = [
            (json!({"egress": ["github.com"]}), "$.egress[0]", "no port"),
            (
                json!({"forwards": {"x": "a.com:1"}}),
                "$.forwards.x",
                "is not a port",
            ),
            (
                json!({"forwards": {"80": "*.a.com:1"}}),
                "$.forwards[\"80\"]",
                "a wildcard",
            ),
            (
                json!({"network": "host"}),
                "$.network",
                "network `host` is not one of `none`, `egress`",
            ),
            (
                json!({"network": 1}),
                "$.network",
                "expected a string, found a number",
            ),
            (
                json!({"writable_paths": ["/a", "rel"]}),
                "$.writable_paths[1]",
                "not absolute",
            ),
            (
                json!({"writable_paths": "/a"}),
                "$.writable_paths",
                "expected an array of strings",
            ),
            (
                json!({"memory_mb": 0}),
                "$.memory_mb",
                "memory_mb 0 is out of range 1..=1048576",
            ),
            (
                json!({"memory_mb": 5_000_000_000u64}),
                "$.memory_mb",
                "out of range",
            ),
            (
                json!({"cpus": 0}),
                "$.cpus",
                "cpus 0 is out of range 0.001..=1024",
            ),
            (json!({"cpus": 0.0001}), "$.cpus", "out of range"),
            (json!({"cpus": 2000}), "$.cpus", "out of range"),
            (
                json!({"cpus": "2"}),
                "$.cpus",
                "expected a number of CPUs, found a string",
            ),
            (
                json!({"pids": -3}),
                "$.pids",
                "pids -3 is not a whole number",
            ),
            (
                json!({"env": ["OK", "1BAD"]}),
                "$.env[1]",
                "`1BAD` is not a valid environment variable name",
            ),
            (json!("x"), "$", "expected an object, found a string"),
        ];
        for (v, path, says) in cases {
            let mut ctx = Ctx::label(super::super::REQUESTS);
            let p = requests(&v, &mut ctx).unwrap_err();
            assert_eq!(p.path, path, "{v}");
            assert!(p.reason.contains(says), "{v}: {p:?}");
        }
    }

    #[test]
    fn label_json_reports_line_and_column() {
        let p = label_json("{\n  \"fs\": [\"x\",]\n}", "x").unwrap_err();
        assert_eq!(p.path, "$");
        assert!(p.reason.contains("not valid JSON"), "{p:?}");
        assert!(p.reason.contains("line 2 column"), "{p:?}");
    }
}
