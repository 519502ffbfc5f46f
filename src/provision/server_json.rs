//! An MCP-registry `server.json` (schema 2025-12-11) turned into what a
//! provisioned server needs: the package, the argv after the program, the env
//! of the label, and the name mcpod stamps as
//! `io.modelcontextprotocol.server.name`.
//!
//! A server.json is input like any other: bounded, every name and version
//! checked by the same grammar as a package reference, and nothing in it
//! reaches a host process (its arguments and env go into the image's label,
//! to be run inside the session).
//!
//! Translation:
//! - `runtimeHint` `npx`/`uvx` is translated to the installed program, never
//!   run: their `runtimeArguments` are theirs (`-y`, `--from`) and dropped;
//!   `node`/`python` runtime arguments are interpreter flags and kept.
//! - `packageArguments`: a `value`, else a `default`, else a value given in
//!   `arguments` (by the argument's `name`, else its `valueHint`); a required
//!   one with none is an error naming it. Named arguments give `NAME VALUE`.
//!   `{var}` in a value takes `variables` (their value or default, or
//!   `arguments`). `choices` are checked.
//! - `environmentVariables`: a secret, or a required one without a default,
//!   becomes a `${NAME}` reference (the operator grants it with --allow-env,
//!   the launch gives the value); a `value` or `default` is literal, unless
//!   `env` gives another (a secret is never given literally); an optional one
//!   without either is left unset and named in the notes. `choices` are
//!   checked.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::reference::PackageRef;
use crate::{Error, Result};

/// The largest server.json read.
pub const MAX_BYTES: usize = 1024 * 1024;
const MAX_PACKAGES: usize = 32;
const MAX_ITEMS: usize = 128;
const MAX_VALUE: usize = 4096;

/// What a server.json's chosen package provides.
#[derive(Clone, Debug, PartialEq)]
pub struct Chosen {
    /// The registry name (`io.github.owner/server`).
    pub name: String,
    pub description: Option<String>,
    pub version: Option<String>,
    pub source: Source,
    /// Interpreter flags, before the program's own path.
    pub runtime_args: Vec<String>,
    /// The argv after the program.
    pub args: Vec<String>,
    /// The label's env: literal values and `${NAME}` references.
    pub env: BTreeMap<String, String>,
    /// What was translated, dropped or left unset, for the caller.
    pub notes: Vec<String>,
}

/// Where the server's code comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Package(PackageRef),
    /// An OCI image reference (`registryType: oci`).
    Image(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServerJson {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    packages: Vec<Package>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    registry_type: String,
    identifier: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    runtime_hint: Option<String>,
    #[serde(default)]
    transport: Option<Transport>,
    #[serde(default)]
    runtime_arguments: Vec<Argument>,
    #[serde(default)]
    package_arguments: Vec<Argument>,
    #[serde(default)]
    environment_variables: Vec<Variable>,
}

#[derive(Deserialize)]
struct Transport {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Argument {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_hint: Option<String>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    choices: Vec<String>,
    #[serde(default)]
    is_required: bool,
    #[serde(default)]
    is_secret: bool,
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Variable {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    choices: Vec<String>,
    #[serde(default)]
    is_required: bool,
    #[serde(default)]
    is_secret: bool,
}

/// Values the caller gives for a server.json's inputs.
#[derive(Clone, Debug, Default)]
pub struct Given {
    /// Which of `packages[]` (default: the first whose transport is stdio and
    /// registry type npm, pypi or oci).
    pub package: Option<usize>,
    /// Values of package arguments and their variables, by name or valueHint.
    pub arguments: BTreeMap<String, String>,
    /// Literal values of non-secret environment variables.
    pub env: BTreeMap<String, String>,
}

fn bad(reason: impl Into<String>, fix: impl Into<String>) -> Error {
    Error::invalid("server_json", "server.json", reason, fix)
}

fn bounded(what: &str, s: &str) -> Result<()> {
    if s.len() > MAX_VALUE {
        return Err(bad(
            format!("{what} is {} bytes, more than {MAX_VALUE}", s.len()),
            "shorten it",
        ));
    }
    if s.contains(['\0', '\n', '\r']) {
        return Err(bad(
            format!("{what} has a NUL or a line break"),
            "keep it on one line",
        ));
    }
    Ok(())
}

/// Read `bytes` as a server.json and translate the chosen package.
pub fn translate(bytes: &[u8], given: &Given) -> Result<Chosen> {
    let doc = read(bytes)?;
    let (index, package) = choose(&doc, given)?;
    let mut notes = Vec::new();
    if doc.packages.len() > 1 {
        notes.push(format!(
            "used packages[{index}] ({} {})",
            package.registry_type, package.identifier
        ));
    }
    let source = source(index, package)?;
    let runtime_args = runtime_args(package, given, &mut notes)?;
    let args = arguments("packageArguments", &package.package_arguments, given)?;
    let env = environment(&package.environment_variables, given, &mut notes)?;
    if let Some(d) = &doc.description {
        bounded("`description`", d)?;
    }
    Ok(Chosen {
        name: doc.name,
        description: doc.description,
        version: doc.version,
        source,
        runtime_args,
        args,
        env,
        notes,
    })
}

/// Parse `bytes` as a server.json within the bounds: its size, its `name`
/// (`namespace/server`) and how many packages it lists.
fn read(bytes: &[u8]) -> Result<ServerJson> {
    if bytes.len() > MAX_BYTES {
        return Err(bad(
            format!("it is {} bytes, more than {MAX_BYTES}", bytes.len()),
            "pass the server.json of one server",
        ));
    }
    let doc: ServerJson = serde_json::from_slice(bytes).map_err(|e| {
        bad(
            format!("it is not a server.json: {e}"),
            "pass an MCP-registry server.json (schema 2025-12-11) with `name` and `packages`",
        )
    })?;
    bounded("`name`", &doc.name)?;
    if doc.name.is_empty() || !doc.name.contains('/') {
        return Err(bad(
            format!(
                "`name` `{}` is not `namespace/server`",
                doc.name.escape_debug()
            ),
            "use the registry name, e.g. `io.github.owner/server`",
        ));
    }
    if doc.packages.len() > MAX_PACKAGES {
        return Err(bad(
            format!(
                "it lists {} packages, more than {MAX_PACKAGES}",
                doc.packages.len()
            ),
            "list fewer",
        ));
    }
    Ok(doc)
}

/// The package to provision, with its index: the one `given` names (refused
/// unless it is an npm, pypi or oci package over stdio), else the first
/// that is.
fn choose<'a>(doc: &'a ServerJson, given: &Given) -> Result<(usize, &'a Package)> {
    let usable = |p: &Package| {
        matches!(p.registry_type.as_str(), "npm" | "pypi" | "oci")
            && p.transport.as_ref().is_none_or(|t| t.kind == "stdio")
    };
    Ok(match given.package {
        Some(i) => match doc.packages.get(i) {
            Some(p) if usable(p) => (i, p),
            Some(p) => {
                return Err(bad(
                    format!(
                        "packages[{i}] is registryType `{}` with transport `{}`; mcpod runs npm, pypi and oci packages over stdio",
                        p.registry_type.escape_debug(),
                        p.transport.as_ref().map(|t| t.kind.as_str()).unwrap_or("stdio").escape_debug()
                    ),
                    "choose another package, or connect to a remote server directly (it needs no container)",
                ));
            }
            None => return Err(bad(format!("it has no packages[{i}]"), format!("choose 0..{}", doc.packages.len()))),
        },
        None => doc.packages.iter().enumerate().find(|(_, p)| usable(p)).ok_or_else(|| {
            bad(
                "none of its packages is an npm, pypi or oci package with stdio transport",
                "mcpod provisions stdio servers; a remote (streamable-http) server needs no container",
            )
        })?,
    })
}

/// Where packages[`index`]'s code comes from: an npm or pypi package at its
/// exact version (checked by the package reference's grammar), or an image
/// reference.
fn source(index: usize, package: &Package) -> Result<Source> {
    bounded("`identifier`", &package.identifier)?;
    let version = package.version.as_deref().unwrap_or_default();
    bounded("`version`", version)?;
    Ok(match package.registry_type.as_str() {
        "npm" | "pypi" => {
            if version.is_empty() {
                return Err(bad(
                    format!("packages[{index}] has no `version`"),
                    "give the exact version the server was published at",
                ));
            }
            let text = if package.registry_type == "npm" {
                format!("npm:{}@{version}", package.identifier)
            } else {
                format!("pypi:{}=={version}", package.identifier)
            };
            let parsed = PackageRef::parse("server_json", &text)?;
            if parsed.exact_version().is_none() {
                return Err(bad(
                    format!(
                        "packages[{index}] version `{}` is not an exact version",
                        version.escape_debug()
                    ),
                    "a server.json names the exact version it was published at",
                ));
            }
            Source::Package(parsed)
        }
        _ => {
            crate::image::reference::validate_reference(&package.identifier).map_err(|e| {
                bad(
                    format!("packages[{index}] identifier is not an image reference: {e}"),
                    "name an image",
                )
            })?;
            Source::Image(package.identifier.clone())
        }
    })
}

/// The interpreter flags before the program's path: none for a launcher's
/// `runtimeHint` (`npx`, `uvx`, `docker`, `dnx`: mcpod runs the installed
/// program itself and drops the launcher's own arguments, with a note), else
/// the `runtimeArguments`.
fn runtime_args(package: &Package, given: &Given, notes: &mut Vec<String>) -> Result<Vec<String>> {
    let hint = package.runtime_hint.as_deref().unwrap_or_default();
    bounded("`runtimeHint`", hint)?;
    Ok(match hint {
        "npx" | "uvx" | "docker" | "dnx" => {
            notes.push(format!(
                "runtimeHint `{hint}` translated: mcpod installs the package at build time and runs its program directly{}",
                if package.runtime_arguments.is_empty() {
                    String::new()
                } else {
                    format!(" (the {} runtimeArguments for {hint} are dropped)", package.runtime_arguments.len())
                }
            ));
            Vec::new()
        }
        _ => arguments("runtimeArguments", &package.runtime_arguments, given)?,
    })
}

fn check_choice(what: &str, value: &str, choices: &[String]) -> Result<()> {
    if !choices.is_empty() && !choices.iter().any(|c| c == value) {
        return Err(Error::invalid(
            what,
            value.escape_debug().to_string(),
            format!("it is not one of the choices {}", choices.join(", ")),
            "give one of them",
        ));
    }
    Ok(())
}

fn arguments(field: &str, list: &[Argument], given: &Given) -> Result<Vec<String>> {
    if list.len() > MAX_ITEMS {
        return Err(bad(
            format!(
                "`{field}` has {} entries, more than {MAX_ITEMS}",
                list.len()
            ),
            "list fewer",
        ));
    }
    let mut argv = Vec::new();
    for (i, arg) in list.iter().enumerate() {
        let named = arg.kind.as_deref() == Some("named");
        let label = arg
            .name
            .as_deref()
            .or(arg.value_hint.as_deref())
            .map(str::to_string)
            .unwrap_or_else(|| format!("{field}[{i}]"));
        if named && arg.name.as_deref().is_none_or(str::is_empty) {
            return Err(bad(
                format!("{field}[{i}] is named but has no `name`"),
                "give the flag, e.g. `--port`",
            ));
        }
        let from_caller = arg
            .name
            .as_deref()
            .and_then(|n| given.arguments.get(n))
            .or_else(|| {
                arg.value_hint
                    .as_deref()
                    .and_then(|h| given.arguments.get(h))
            });
        if arg.is_secret && (from_caller.is_some() || arg.is_required) {
            return Err(bad(
                format!(
                    "argument `{label}` is secret, and mcpod puts arguments in the image's label, where anyone can read them"
                ),
                "ask the server's authors for an environment variable instead (secrets travel only as env references)",
            ));
        }
        let raw = from_caller.or(arg.value.as_ref()).or(arg.default.as_ref());
        let Some(raw) = raw else {
            if arg.is_required {
                return Err(Error::invalid(
                    "arguments",
                    label.clone(),
                    format!(
                        "the server.json's {field}[{i}] `{label}` is required and has no value or default"
                    ),
                    format!("pass `arguments: {{\"{label}\": VALUE}}`"),
                ));
            }
            continue;
        };
        let value = substitute(&label, raw, &arg.variables, given)?;
        bounded(&format!("argument `{label}`"), &value)?;
        check_choice(&format!("argument {label}"), &value, &arg.choices)?;
        if named {
            let name = arg.name.clone().unwrap_or_default();
            bounded(&format!("argument name `{name}`"), &name)?;
            argv.push(name);
        }
        argv.push(value);
    }
    Ok(argv)
}

/// `{var}` placeholders from `variables`.
fn substitute(
    label: &str,
    raw: &str,
    variables: &BTreeMap<String, Variable>,
    given: &Given,
) -> Result<String> {
    if variables.is_empty() || !raw.contains('{') {
        return Ok(raw.to_string());
    }
    let mut out = raw.to_string();
    for (key, var) in variables {
        let placeholder = format!("{{{key}}}");
        if !out.contains(&placeholder) {
            continue;
        }
        if var.is_secret {
            return Err(bad(
                format!(
                    "argument `{label}` takes the secret variable `{key}`; arguments are in the image's label"
                ),
                "ask for an environment variable instead",
            ));
        }
        let value = given
            .arguments
            .get(key)
            .or(var.value.as_ref())
            .or(var.default.as_ref())
            .ok_or_else(|| {
                Error::invalid(
                    "arguments",
                    key.clone(),
                    format!("argument `{label}` needs the variable `{key}`, which has no value or default"),
                    format!("pass `arguments: {{\"{key}\": VALUE}}`"),
                )
            })?;
        check_choice(&format!("variable {key}"), value, &var.choices)?;
        out = out.replace(&placeholder, value);
    }
    Ok(out)
}

fn environment(
    list: &[Variable],
    given: &Given,
    notes: &mut Vec<String>,
) -> Result<BTreeMap<String, String>> {
    if list.len() > MAX_ITEMS {
        return Err(bad(
            format!(
                "`environmentVariables` has {} entries, more than {MAX_ITEMS}",
                list.len()
            ),
            "list fewer",
        ));
    }
    let mut env = BTreeMap::new();
    for (i, var) in list.iter().enumerate() {
        let name = var.name.clone().unwrap_or_default();
        if !crate::labels::is_env_name(&name) {
            return Err(bad(
                format!(
                    "environmentVariables[{i}] name `{}` is not a variable name",
                    name.escape_debug()
                ),
                "use letters, digits and `_`, not starting with a digit",
            ));
        }
        if let Some(value) = given.env.get(&name) {
            if var.is_secret {
                return Err(Error::invalid(
                    "env",
                    name.clone(),
                    "it is a secret variable: its value is never written into an image",
                    format!(
                        "leave it out here; the operator grants it (--allow-env {name}) and the launch's `env` gives its value"
                    ),
                ));
            }
            bounded(&format!("env `{name}`"), value)?;
            check_choice(&format!("env {name}"), value, &var.choices)?;
            env.insert(name, value.clone());
            continue;
        }
        let literal = var.value.as_ref().or(var.default.as_ref());
        if var.is_secret || (var.is_required && literal.is_none()) {
            env.insert(name.clone(), format!("${{{name}}}"));
            continue;
        }
        match literal {
            Some(value) => {
                bounded(&format!("env `{name}`"), value)?;
                check_choice(&format!("env {name}"), value, &var.choices)?;
                env.insert(name, value.clone());
            }
            None => notes.push(format!(
                "optional variable {name} is left unset (give it with `env` here, or as a launch override)"
            )),
        }
    }
    if let Some(extra) = given
        .env
        .keys()
        .find(|k| !list.iter().any(|v| v.name.as_deref() == Some(k.as_str())))
    {
        return Err(Error::invalid(
            "env",
            extra.clone(),
            "the server.json declares no such variable",
            format!(
                "give only declared variables: {}",
                list.iter()
                    .filter_map(|v| v.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tr(doc: serde_json::Value, given: &Given) -> Result<Chosen> {
        translate(doc.to_string().as_bytes(), given)
    }

    fn memory() -> serde_json::Value {
        json!({
            "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
            "name": "io.github.modelcontextprotocol/server-memory",
            "description": "Knowledge-graph memory",
            "version": "2026.1.26",
            "packages": [{
                "registryType": "npm",
                "identifier": "@modelcontextprotocol/server-memory",
                "version": "2026.1.26",
                "runtimeHint": "npx",
                "runtimeArguments": [{"type": "positional", "value": "-y"}],
                "transport": {"type": "stdio"},
                "packageArguments": [
                    {"type": "named", "name": "--mode", "default": "fast", "choices": ["fast", "slow"]},
                    {"type": "positional", "valueHint": "target_dir", "isRequired": true, "value": "/data/{sub}",
                     "variables": {"sub": {"default": "x"}}}
                ],
                "environmentVariables": [
                    {"name": "MEMORY_FILE_PATH", "default": "/tmp/memory.json"},
                    {"name": "API_TOKEN", "isSecret": true, "isRequired": true},
                    {"name": "REGION", "isRequired": true},
                    {"name": "OPTIONAL_THING"},
                    {"name": "LEVEL", "default": "info", "choices": ["info", "debug"]}
                ]
            }]
        })
    }

    #[test]
    fn npm_server_json() {
        let c = tr(memory(), &Given::default()).unwrap();
        assert_eq!(c.name, "io.github.modelcontextprotocol/server-memory");
        assert_eq!(
            c.source,
            Source::Package(
                PackageRef::parse("t", "npm:@modelcontextprotocol/server-memory@2026.1.26")
                    .unwrap()
            )
        );
        assert!(c.runtime_args.is_empty(), "npx's -y is npx's");
        assert_eq!(c.args, ["--mode", "fast", "/data/x"]);
        assert_eq!(c.env["MEMORY_FILE_PATH"], "/tmp/memory.json");
        assert_eq!(c.env["API_TOKEN"], "${API_TOKEN}");
        assert_eq!(c.env["REGION"], "${REGION}");
        assert_eq!(c.env["LEVEL"], "info");
        assert!(!c.env.contains_key("OPTIONAL_THING"));
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("npx") && n.contains("dropped")),
            "{:?}",
            c.notes
        );
        assert!(c.notes.iter().any(|n| n.contains("OPTIONAL_THING")));
    }

    #[test]
    fn given_values_are_checked() {
        let mut given = Given::default();
        given.arguments.insert("--mode".into(), "slow".into());
        given.arguments.insert("sub".into(), "y".into());
        given.env.insert("LEVEL".into(), "debug".into());
        let c = tr(memory(), &given).unwrap();
        assert_eq!(c.args, ["--mode", "slow", "/data/y"]);
        assert_eq!(c.env["LEVEL"], "debug");

        given.env.insert("LEVEL".into(), "loud".into());
        let e = tr(memory(), &given).unwrap_err().to_string();
        assert!(e.contains("loud") && e.contains("info, debug"), "{e}");

        let mut given = Given::default();
        given.env.insert("API_TOKEN".into(), "s3cret".into());
        let e = tr(memory(), &given).unwrap_err().to_string();
        assert!(
            e.contains("secret") && e.contains("--allow-env API_TOKEN") && !e.contains("s3cret"),
            "{e}"
        );

        let mut given = Given::default();
        given.env.insert("NOPE".into(), "1".into());
        assert!(
            tr(memory(), &given)
                .unwrap_err()
                .to_string()
                .contains("declares no such variable")
        );

        let mut given = Given::default();
        given.arguments.insert("--mode".into(), "medium".into());
        assert!(tr(memory(), &given).is_err());
    }

    #[test]
    fn pypi_and_oci() {
        let doc = json!({
            "name": "io.github.modelcontextprotocol/time",
            "packages": [
                {"registryType": "pypi", "identifier": "mcp-server-time", "version": "2026.10.19", "runtimeHint": "uvx",
                 "transport": {"type": "stdio"},
                 "packageArguments": [{"type": "named", "name": "--local-timezone", "value": "UTC"}]},
                {"registryType": "oci", "identifier": "localhost/mcpod-hello:1", "transport": {"type": "stdio"}}
            ]
        });
        let c = tr(doc.clone(), &Given::default()).unwrap();
        assert!(
            matches!(&c.source, Source::Package(p) if p.to_string() == "pypi:mcp-server-time==2026.10.19")
        );
        assert_eq!(c.args, ["--local-timezone", "UTC"]);
        let c = tr(
            doc,
            &Given {
                package: Some(1),
                ..Given::default()
            },
        )
        .unwrap();
        assert_eq!(c.source, Source::Image("localhost/mcpod-hello:1".into()));
    }

    #[test]
    fn required_argument_without_value_names_it() {
        let doc = json!({"name": "a/b", "packages": [{"registryType": "npm", "identifier": "x", "version": "1.0.0",
            "packageArguments": [{"type": "positional", "valueHint": "directory", "isRequired": true}]}]});
        let e = tr(doc.clone(), &Given::default()).unwrap_err().to_string();
        assert!(e.contains("directory") && e.contains("arguments"), "{e}");
        let mut given = Given::default();
        given.arguments.insert("directory".into(), "/data".into());
        assert_eq!(tr(doc, &given).unwrap().args, ["/data"]);
    }

    /// A hostile server.json: names that npm or pip would read as paths or
    /// URLs, ranges instead of versions, remote transports, secrets in
    /// arguments, line breaks, oversize.
    #[test]
    fn hostile_server_json_is_refused() {
        let pkg = |p: serde_json::Value| json!({"name": "a/b", "packages": [p]});
        for doc in [
            json!({"packages": []}),
            json!({"name": "noslash", "packages": [{"registryType": "npm", "identifier": "x", "version": "1.0.0"}]}),
            json!({"name": "a/b", "packages": []}),
            pkg(json!({"registryType": "npm", "identifier": "../../etc", "version": "1.0.0"})),
            pkg(json!({"registryType": "npm", "identifier": "x", "version": "file:../x"})),
            pkg(json!({"registryType": "npm", "identifier": "x", "version": "^1"})),
            pkg(json!({"registryType": "npm", "identifier": "x"})),
            pkg(
                json!({"registryType": "pypi", "identifier": "x", "version": "1 --index-url http://evil"}),
            ),
            pkg(json!({"registryType": "pypi", "identifier": "-r/etc/shadow", "version": "1"})),
            pkg(
                json!({"registryType": "npm", "identifier": "x", "version": "1.0.0", "transport": {"type": "streamable-http"}}),
            ),
            pkg(json!({"registryType": "nuget", "identifier": "x", "version": "1.0.0"})),
            pkg(json!({"registryType": "oci", "identifier": "bad ref!"})),
            pkg(
                json!({"registryType": "npm", "identifier": "x", "version": "1.0.0",
                "packageArguments": [{"type": "named", "name": "--token", "isSecret": true, "isRequired": true}]}),
            ),
            pkg(
                json!({"registryType": "npm", "identifier": "x", "version": "1.0.0",
                "packageArguments": [{"type": "positional", "value": "a\nb"}]}),
            ),
            pkg(
                json!({"registryType": "npm", "identifier": "x", "version": "1.0.0",
                "packageArguments": [{"type": "named", "value": "v"}]}),
            ),
            pkg(
                json!({"registryType": "npm", "identifier": "x", "version": "1.0.0",
                "environmentVariables": [{"name": "BAD NAME", "default": "1"}]}),
            ),
            pkg(
                json!({"registryType": "npm", "identifier": "x", "version": "1.0.0",
                "environmentVariables": [{"name": "X", "default": "line\nbreak"}]}),
            ),
            pkg(
                json!({"registryType": "npm", "identifier": "x", "version": "1.0.0",
                "packageArguments": [{"type": "positional", "value": "{t}", "variables": {"t": {"isSecret": true, "default": "s"}}}]}),
            ),
        ] {
            let shown = doc.to_string();
            let e = tr(doc, &Given::default()).expect_err(&shown).to_string();
            assert!(e.contains("Fix:"), "{shown}: {e}");
        }
        let big = format!(
            "{{\"name\": \"a/b\", \"description\": \"{}\", \"packages\": []}}",
            "x".repeat(MAX_BYTES)
        );
        assert!(
            translate(big.as_bytes(), &Given::default())
                .unwrap_err()
                .to_string()
                .contains("more than")
        );
        assert!(translate(b"not json", &Given::default()).is_err());
        let many: Vec<_> = (0..200)
            .map(|_| json!({"type": "positional", "value": "a"}))
            .collect();
        let doc = pkg(
            json!({"registryType": "npm", "identifier": "x", "version": "1.0.0", "packageArguments": many}),
        );
        assert!(tr(doc, &Given::default()).is_err());
    }
}
