//! A launch's `overrides`: per server by name, or, when the launch starts
//! one server, that server's override without its name. And the one
//! description of a `${NAME}` value that `env` and `overrides.env` share.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use crate::{Error, Result};

/// What a `${NAME}` value is, in launch_session's `env` and in
/// `overrides.env` alike.
pub const ENV_REFERENCE: &str = "A value `${NAME}` is a reference: NAME must be a variable the operator allowed (--allow-env; show_policy lists them), and the server gets the value of this launch's `env.NAME` when given, else of mcpod's own environment variable NAME, as a variable of the server's environment, never in its arguments.";

/// The description of launch_session's `env`.
pub fn env_description() -> String {
    format!(
        "Values for the `${{NAME}}` references of the servers (their labels' env and `overrides.env`), by NAME. {ENV_REFERENCE}"
    )
}

/// The description of `overrides.env`.
pub fn override_env_description() -> String {
    format!(
        "Variables of the server's environment over its label's, by variable: a literal value, or a `${{NAME}}` reference. {ENV_REFERENCE}"
    )
}

/// A launch-time change to one server's label spec.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerOverride {
    /// The whole argv instead of the label's.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Arguments appended to the argv.
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    #[schemars(description = override_env_description())]
    pub env: BTreeMap<String, String>,
    /// Directories of the image this server writes to (e.g. beside its own
    /// code at start), made writable for the session: each a tmpfs copy of
    /// the image's files there, of the operator's size (show_policy's
    /// writable_paths). Absolute; not `/`, nor under /proc, /sys, /dev, /run
    /// or /.mcpod.
    #[serde(default)]
    pub writable_paths: Vec<String>,
}

/// The fields of a [`ServerOverride`]: a map of only these is one
/// server's override without its name.
const FIELDS: &[&str] = &["command", "args", "env", "writable_paths"];

/// launch_session's `overrides`.
#[derive(Clone, Debug, JsonSchema)]
#[serde(untagged)]
pub enum Overrides {
    /// The override of the one server the launch starts, without its name
    /// (e.g. `{"args": ["--demo"]}`); an error when it starts more.
    Sole(ServerOverride),
    /// Per server, by the name the image's labels give it
    /// (e.g. `{"fetch": {"args": ["--ignore-robots-txt"]}}`).
    PerServer(BTreeMap<String, ServerOverride>),
}

impl Default for Overrides {
    fn default() -> Self {
        Overrides::PerServer(BTreeMap::new())
    }
}

impl<'de> Deserialize<'de> for Overrides {
    /// Keys all of which are override fields make one server's override;
    /// any other key is a server's name, whose value is an object.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        if !map.is_empty() && map.keys().all(|k| FIELDS.contains(&k.as_str())) {
            return serde_json::from_value(serde_json::Value::Object(map))
                .map(Overrides::Sole)
                .map_err(|e| D::Error::custom(format!("overrides: {e}")));
        }
        // A server's name with no object, the unknown keys first.
        let stray = map.iter().filter(|(_, v)| !v.is_object());
        let unknown = stray.clone().find(|(k, _)| !FIELDS.contains(&k.as_str()));
        if let Some((key, _)) = unknown.or(stray.clone().next()) {
            return Err(D::Error::custom(format!(
                "overrides: `{key}` is neither a field of a server's override ({}) beside only other fields, nor a server's name followed by an object of them; e.g. {{\"args\": [\"--flag\"]}} for the one server launched, or {{\"SERVER\": {{\"args\": [\"--flag\"]}}}}",
                FIELDS.join(", ")
            )));
        }
        let value = serde_json::Value::Object(map);
        serde_json::from_value(value)
            .map(Overrides::PerServer)
            .map_err(|e| D::Error::custom(format!("overrides: {e}")))
    }
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        matches!(self, Overrides::PerServer(m) if m.is_empty())
    }

    /// Each override with where it was given (`overrides.SERVER`, or
    /// `overrides` for the sole server's).
    pub fn given(&self) -> Vec<(String, &ServerOverride)> {
        match self {
            Overrides::Sole(o) => vec![("overrides".into(), o)],
            Overrides::PerServer(m) => m
                .iter()
                .map(|(server, o)| (format!("overrides.{server}"), o))
                .collect(),
        }
    }

    /// The overrides by server, for the servers a launch starts.
    pub fn by_server<'a>(
        &'a self,
        launched: &[&String],
    ) -> Result<BTreeMap<String, &'a ServerOverride>> {
        match self {
            Overrides::PerServer(m) => Ok(m.iter().map(|(k, v)| (k.clone(), v)).collect()),
            Overrides::Sole(o) => match launched {
                [one] => Ok(BTreeMap::from([((*one).clone(), o)])),
                _ => Err(Error::invalid(
                    "overrides",
                    serde_json::to_string(&FIELDS).unwrap_or_default(),
                    format!(
                        "an override without a server's name needs a launch of one server, and this one starts {}: {}",
                        launched.len(),
                        names(launched)
                    ),
                    format!(
                        "name the server: \"overrides\": {{\"{}\": {{...}}}}, or launch one with `servers`",
                        launched.first().map_or("SERVER", |s| s.as_str())
                    ),
                )),
            },
        }
    }
}

fn names(servers: &[&String]) -> String {
    servers
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> std::result::Result<Overrides, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn a_map_of_fields_is_the_sole_servers_override() {
        let sole = parse(serde_json::json!({"args": ["--demo"], "env": {"A": "b"}}));
        assert!(matches!(sole, Ok(Overrides::Sole(o)) if o.args == ["--demo"]));
        let named = parse(serde_json::json!({"fetch": {"args": ["x"]}}));
        assert!(matches!(named, Ok(Overrides::PerServer(m)) if m["fetch"].args == ["x"]));
        assert!(parse(serde_json::json!({})).is_ok_and(|o| o.is_empty()));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = parse(serde_json::json!({"argz": ["x"]})).unwrap_err();
        assert!(
            err.contains("`argz`") && err.contains("writable_paths"),
            "{err}"
        );
        let err = parse(serde_json::json!({"args": ["x"], "argz": ["y"]})).unwrap_err();
        assert!(err.contains("`argz`"), "{err}");
        let err = parse(serde_json::json!({"s": {"argz": ["x"]}})).unwrap_err();
        assert!(err.contains("unknown field `argz`"), "{err}");
        let err = parse(serde_json::json!({"args": "x"})).unwrap_err();
        assert!(err.contains("overrides"), "{err}");
    }

    #[test]
    fn the_sole_override_needs_one_server() {
        let o = Overrides::Sole(ServerOverride::default());
        let (a, b) = ("a".to_string(), "b".to_string());
        assert!(o.by_server(&[&a]).is_ok_and(|m| m.contains_key("a")));
        let err = o.by_server(&[&a, &b]).unwrap_err().to_string();
        assert!(err.contains("`a`, `b`") && err.contains("servers"), "{err}");
    }

    #[test]
    fn env_and_override_env_say_the_same_of_references() {
        assert!(env_description().ends_with(ENV_REFERENCE));
        assert!(override_env_description().ends_with(ENV_REFERENCE));
    }
}
