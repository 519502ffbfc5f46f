//! `${NAME}` references in a server's env. A value that is exactly `${NAME}`, with NAME a
//! valid variable name, is taken from the host at launch, and only if the operator allows
//! NAME. Anything else (`x${A}`, `${A}x`, `$A`, `${}`, `${1A}`) is a literal value.

use std::collections::BTreeMap;

use super::spec::{ServerSpec, Servers};
use crate::{Error, Result};

/// The rule for a variable's name lives with the engine, the lowest module
/// that needs it (it renders a container's env file).
pub use crate::engine::env::is_env_name;

/// The host variable NAME when `value` is exactly `${NAME}`; `None` when it is literal.
pub fn env_ref(value: &str) -> Option<&str> {
    let name = value.strip_prefix("${")?.strip_suffix('}')?;
    is_env_name(name).then_some(name)
}

/// True for a literal value that looks like an attempt at a reference (it contains `${` or
/// starts with `$`), so a label reader can warn that it is passed as is.
pub(crate) fn looks_like_ref(value: &str) -> bool {
    env_ref(value).is_none() && (value.contains("${") || value.starts_with('$'))
}

impl ServerSpec {
    /// The env entries that are references: `(key, NAME)` for each value `${NAME}`, by key.
    pub fn env_refs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env
            .iter()
            .filter_map(|(key, value)| env_ref(value).map(|name| (key.as_str(), name)))
    }

    /// The env of server `server` with its references resolved: each `${NAME}` must be in
    /// `allowed` and `lookup(NAME)` must give a value. Literal values are kept as they are.
    /// The first failure (by key) is an error naming the server, the key and NAME.
    pub fn resolve_env<S, F>(
        &self,
        server: &str,
        allowed: &[S],
        mut lookup: F,
    ) -> Result<BTreeMap<String, String>>
    where
        S: AsRef<str>,
        F: FnMut(&str) -> Option<String>,
    {
        let mut out = BTreeMap::new();
        for (key, value) in &self.env {
            let resolved = match env_ref(value) {
                None => value.clone(),
                Some(name) => {
                    if !allowed.iter().any(|a| a.as_ref() == name) {
                        return Err(Error::invalid(
                            "env reference",
                            value,
                            format!(
                                "server `{server}` sets `{key}` from host variable `{name}`, \
                                 which the operator has not allowed"
                            ),
                            format!(
                                "allow `{name}` in the operator's env allow-list if the server \
                                 may see it, or set `{key}` to a literal value"
                            ),
                        ));
                    }
                    match lookup(name) {
                        Some(v) => v,
                        None => {
                            return Err(Error::invalid(
                                "env reference",
                                value,
                                format!(
                                    "server `{server}` sets `{key}` from host variable \
                                     `{name}`, which is not set on the host (or is not UTF-8)"
                                ),
                                format!("export {name} before starting mcpod"),
                            ));
                        }
                    }
                }
            };
            out.insert(key.clone(), resolved);
        }
        Ok(out)
    }
}

/// Every reference of every server: `(server, key, NAME)`, by server then key.
pub fn all_env_refs(servers: &Servers) -> impl Iterator<Item = (&str, &str, &str)> {
    servers.iter().flat_map(|(server, spec)| {
        spec.env_refs()
            .map(move |(key, name)| (server.as_str(), key, name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(env: &[(&str, &str)]) -> ServerSpec {
        ServerSpec {
            command: vec!["x".into()],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ServerSpec::default()
        }
    }

    #[test]
    fn only_an_exact_reference_is_a_reference() {
        assert_eq!(env_ref("${A}"), Some("A"));
        assert_eq!(env_ref("${_a9}"), Some("_a9"));
        for literal in [
            "x${A}", "${A}x", "$A", "${}", "${1A}", "${A B}", "${A", "{A}", "",
        ] {
            assert_eq!(env_ref(literal), None, "{literal}");
        }
        assert!(looks_like_ref("x${A}"));
        assert!(looks_like_ref("$A"));
        assert!(!looks_like_ref("${A}"));
        assert!(!looks_like_ref("plain"));
    }

    #[test]
    fn env_refs_lists_references_only() {
        let s = spec(&[("TOKEN", "${DB_TOKEN}"), ("HOME", "/root"), ("X", "x${A}")]);
        let refs: Vec<_> = s.env_refs().collect();
        assert_eq!(refs, vec![("TOKEN", "DB_TOKEN")]);
        let servers: Servers = [("db".to_string(), s)].into();
        let all: Vec<_> = all_env_refs(&servers).collect();
        assert_eq!(all, vec![("db", "TOKEN", "DB_TOKEN")]);
    }

    #[test]
    fn resolve_substitutes_allowed_and_set_references() {
        let s = spec(&[("TOKEN", "${DB_TOKEN}"), ("HOME", "/root"), ("L", "$A")]);
        let env = s
            .resolve_env("db", &["DB_TOKEN"], |n| {
                (n == "DB_TOKEN").then(|| "s3cret".to_string())
            })
            .unwrap();
        assert_eq!(env["TOKEN"], "s3cret");
        assert_eq!(env["HOME"], "/root");
        assert_eq!(env["L"], "$A");
    }

    #[test]
    fn resolve_refuses_names_not_allowed() {
        let s = spec(&[("TOKEN", "${DB_TOKEN}")]);
        let mut looked_up = false;
        let err = s
            .resolve_env("db", &["OTHER".to_string()], |_| {
                looked_up = true;
                Some("v".into())
            })
            .unwrap_err()
            .to_string();
        assert!(!looked_up, "a name not allowed must not even be looked up");
        assert!(err.contains("server `db`"), "{err}");
        assert!(err.contains("sets `TOKEN`"), "{err}");
        assert!(err.contains("host variable `DB_TOKEN`"), "{err}");
        assert!(err.contains("not allowed"), "{err}");
        assert!(err.contains("Fix: allow `DB_TOKEN`"), "{err}");
    }

    #[test]
    fn resolve_reports_unset_variables() {
        let s = spec(&[("TOKEN", "${DB_TOKEN}")]);
        let err = s
            .resolve_env("db", &["DB_TOKEN"], |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server `db` sets `TOKEN` from host variable `DB_TOKEN`"),
            "{err}"
        );
        assert!(err.contains("not set"), "{err}");
        assert!(err.contains("Fix: export DB_TOKEN"), "{err}");
    }
}
