//! Package references (`npm:NAME@SPEC`, `pypi:NAME==VERSION`) and dependency
//! pins, checked against a strict grammar before anything reads them.
//!
//! The grammar is narrower than what npm and pip accept on purpose: a name is a
//! registry name, a version spec is versions and operators only. Nothing that
//! npm or pip would read as a path, a URL, a git source, an option (`-r`,
//! `--index-url`) or a second requirement can pass, so a reference can only
//! ever name a package in the operator's registry. The checked text reaches npm
//! and pip only inside files mcpod writes (package.json, requirements files),
//! never in their argv or environment.

use std::fmt;

use schemars::JsonSchema;
use serde::Serialize;

use crate::{Error, Result};

/// The package registries mcpod provisions from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    Npm,
    Pypi,
}

impl Ecosystem {
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Npm => "npm",
            Ecosystem::Pypi => "pypi",
        }
    }
}

/// A package in a registry, with the version asked for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PackageRef {
    pub ecosystem: Ecosystem,
    /// The registry name as given (npm: `@scope/name` or `name`; PyPI: as typed).
    pub name: String,
    /// The version or range asked for; `None` takes the newest release.
    /// npm: a version, a range or a dist-tag; PyPI: PEP 440 specifiers.
    pub spec: Option<String>,
}

/// A pin for a dependency of the package: npm `NAME@RANGE` (an override),
/// PyPI `NAME<2`-style specifiers (a constraint).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pin {
    pub name: String,
    pub spec: String,
}

const MAX_NAME: usize = 214;
const MAX_SPEC: usize = 128;
/// At most this many pins per request.
pub const MAX_PINS: usize = 64;

impl PackageRef {
    /// Parse `npm:NAME[@SPEC]` or `pypi:NAME[SPEC]`; `field` names the input in errors.
    pub fn parse(field: &str, input: &str) -> Result<PackageRef> {
        let bad = |reason: &str| {
            Error::invalid(
                field,
                shown(input),
                reason,
                "write `npm:NAME@VERSION` (e.g. `npm:@modelcontextprotocol/server-memory@2026.1.26`) or `pypi:NAME==VERSION` (e.g. `pypi:mcp-server-time==2026.10.19`); a range or a bare name is resolved once to an exact version",
            )
        };
        let (prefix, rest) = input
            .split_once(':')
            .ok_or_else(|| bad("it has no `npm:` or `pypi:` prefix"))?;
        match prefix {
            "npm" => {
                let (name, spec) = split_npm(rest);
                check_npm_name(name).map_err(|r| bad(&r))?;
                if let Some(spec) = spec {
                    check_npm_spec(spec).map_err(|r| bad(&r))?;
                }
                Ok(PackageRef {
                    ecosystem: Ecosystem::Npm,
                    name: name.to_string(),
                    spec: spec.map(str::to_string),
                })
            }
            "pypi" => {
                let (name, spec) = split_pypi(rest);
                check_pypi_name(name).map_err(|r| bad(&r))?;
                let spec = spec.trim();
                if !spec.is_empty() {
                    check_pypi_spec(spec).map_err(|r| bad(&r))?;
                }
                Ok(PackageRef {
                    ecosystem: Ecosystem::Pypi,
                    name: name.to_string(),
                    spec: (!spec.is_empty()).then(|| spec.to_string()),
                })
            }
            _ => Err(bad("the prefix is neither `npm` nor `pypi`")),
        }
    }

    /// A reference to this package at an exact version.
    pub fn exact(&self, version: &str) -> String {
        match self.ecosystem {
            Ecosystem::Npm => format!("npm:{}@{version}", self.name),
            Ecosystem::Pypi => format!("pypi:{}=={version}", self.name),
        }
    }

    /// The exact version the spec names, if it names one.
    pub fn exact_version(&self) -> Option<&str> {
        let spec = self.spec.as_deref()?;
        match self.ecosystem {
            Ecosystem::Npm => is_semver(spec).then_some(spec),
            Ecosystem::Pypi => {
                let v = spec.strip_prefix("==")?.trim();
                (!v.contains(['*', ','])).then_some(v)
            }
        }
    }

    /// The name as the registry compares it (PyPI: PEP 503 normalised).
    pub fn normalized_name(&self) -> String {
        match self.ecosystem {
            Ecosystem::Npm => self.name.clone(),
            Ecosystem::Pypi => normalize_pypi(&self.name),
        }
    }
}

impl fmt::Display for PackageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ecosystem, &self.spec) {
            (Ecosystem::Npm, Some(spec)) => write!(f, "npm:{}@{spec}", self.name),
            (Ecosystem::Pypi, Some(spec)) => write!(f, "pypi:{}{spec}", self.name),
            (e, None) => write!(f, "{}:{}", e.as_str(), self.name),
        }
    }
}

/// Parse the pins of a request for `ecosystem`.
pub fn parse_pins(ecosystem: Ecosystem, pins: &[String]) -> Result<Vec<Pin>> {
    if pins.len() > MAX_PINS {
        return Err(Error::invalid(
            "pins",
            format!("{} pins", pins.len()),
            format!("at most {MAX_PINS} pins are accepted"),
            "pin only the dependencies that need it",
        ));
    }
    let mut out: Vec<Pin> = Vec::with_capacity(pins.len());
    for pin in pins {
        let bad = |reason: String| {
            let fix = match ecosystem {
                Ecosystem::Npm => "write `NAME@RANGE`, e.g. `zod@3.25.76` or `zod@^3`",
                Ecosystem::Pypi => {
                    "write `NAME` and specifiers, e.g. `mcp<2` or `pydantic==2.11.7`"
                }
            };
            Error::invalid("pins", shown(pin), reason, fix)
        };
        let parsed = match ecosystem {
            Ecosystem::Npm => {
                let (name, spec) = split_npm(pin);
                check_npm_name(name).map_err(bad)?;
                let spec = spec.ok_or_else(|| bad("it has no `@RANGE`".into()))?;
                check_npm_spec(spec).map_err(bad)?;
                Pin {
                    name: name.to_string(),
                    spec: spec.to_string(),
                }
            }
            Ecosystem::Pypi => {
                let (name, spec) = split_pypi(pin);
                check_pypi_name(name).map_err(bad)?;
                let spec = spec.trim();
                if spec.is_empty() {
                    return Err(bad("it has no version specifier".into()));
                }
                check_pypi_spec(spec).map_err(bad)?;
                Pin {
                    name: normalize_pypi(name),
                    spec: spec.to_string(),
                }
            }
        };
        if out.iter().any(|p| p.name == parsed.name) {
            return Err(bad(format!("`{}` is pinned twice", parsed.name)));
        }
        out.push(parsed);
    }
    out.sort();
    Ok(out)
}

/// An input shown in an error: cut, with control characters escaped.
fn shown(input: &str) -> String {
    let cut: String = input.chars().take(120).collect();
    let mut out = cut.escape_debug().to_string();
    if input.chars().count() > 120 {
        out.push('…');
    }
    out
}

/// `@scope/name@spec` / `name@spec` → (name, spec).
fn split_npm(rest: &str) -> (&str, Option<&str>) {
    let at = if let Some(scoped) = rest.strip_prefix('@') {
        scoped.find('@').map(|i| i + 1)
    } else {
        rest.find('@')
    };
    match at {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    }
}

/// `name[extras]>=1,<2` → (`name[extras]`, `>=1,<2`).
fn split_pypi(rest: &str) -> (&str, &str) {
    let end = rest
        .find(|c: char| {
            !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '[' | ']' | ','))
        })
        .unwrap_or(rest.len());
    // A comma belongs to extras only inside brackets.
    let end = match rest[..end].find(']') {
        Some(close) => close + 1,
        None => rest[..end].find(',').unwrap_or(end),
    };
    (&rest[..end], &rest[end..])
}

/// A requirement as mcpod reads one from a package (a build requirement, a
/// name in pip's message): `NAME[extras]` and optional version specifiers,
/// nothing else (no URL, no option, no marker). The normalized name and the
/// specifiers.
pub(crate) fn requirement(text: &str) -> Result<(String, String), String> {
    let (name, spec) = split_pypi(text.trim());
    check_pypi_name(name)?;
    let spec = spec.trim();
    if !spec.is_empty() {
        check_pypi_spec(spec)?;
    }
    Ok((normalize_pypi(name), spec.replace(' ', "")))
}

fn check_npm_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the package name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!("the package name is longer than {MAX_NAME} bytes"));
    }
    let part_ok = |part: &str| {
        !part.is_empty()
            && !part.starts_with(['.', '_', '-'])
            && part.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'-' | b'.' | b'_' | b'~')
            })
    };
    let ok = match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, pkg)) => part_ok(scope) && part_ok(pkg),
            None => false,
        },
        None => part_ok(name),
    };
    if ok && name != "node_modules" && name != "favicon.ico" {
        Ok(())
    } else {
        Err("it is not an npm package name (lowercase letters, digits, `-._~`, optionally `@scope/`; no path, URL or git source)".into())
    }
}

fn check_npm_spec(spec: &str) -> Result<(), String> {
    if spec.is_empty() {
        return Err("the version after `@` is empty".into());
    }
    if spec.len() > MAX_SPEC {
        return Err(format!("the version is longer than {MAX_SPEC} bytes"));
    }
    // Versions, ranges (^ ~ < > = || - x *) and dist-tags; no `:` or `/`, so no
    // file:, git+, http(s):, github: or alias (npm:) specs.
    let ok = !spec.starts_with('-')
        && spec.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'.' | b'^' | b'~' | b'<' | b'>' | b'=' | b'|' | b'*' | b'+' | b'-' | b' '
                )
        });
    if ok {
        Ok(())
    } else {
        Err("the version is not a version, a range or a dist-tag (only letters, digits, spaces and `.^~<>=|*+-`)".into())
    }
}

fn check_pypi_name(name: &str) -> Result<(), String> {
    let (base, extras) = match name.split_once('[') {
        Some((base, rest)) => match rest.strip_suffix(']') {
            Some(extras) => (base, Some(extras)),
            None => return Err("its extras are not closed with `]`".into()),
        },
        None => (name, None),
    };
    let ident = |s: &str| {
        !s.is_empty()
            && s.len() <= MAX_NAME
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
    };
    if !ident(base) {
        return Err("it is not a PyPI project name (letters, digits and `._-`, starting and ending with a letter or digit; no path or URL)".into());
    }
    if let Some(extras) = extras
        && !extras.split(',').all(|e| ident(e.trim()))
    {
        return Err("its extras are not names".into());
    }
    Ok(())
}

fn check_pypi_spec(spec: &str) -> Result<(), String> {
    if spec.len() > MAX_SPEC {
        return Err(format!(
            "the version specifiers are longer than {MAX_SPEC} bytes"
        ));
    }
    for clause in spec.split(',') {
        let clause = clause.trim();
        let shown = clause.escape_debug();
        let op_len = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"]
            .iter()
            .find(|op| clause.starts_with(**op))
            .map(|op| op.len())
            .ok_or_else(|| {
                format!("`{shown}` does not start with a comparison (== != <= >= < > ~= ===)")
            })?;
        let version = clause[op_len..].trim();
        let ok = !version.is_empty()
            && version.as_bytes()[0].is_ascii_alphanumeric()
            && version.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'*' | b'+' | b'!' | b'_' | b'-')
            });
        if !ok {
            return Err(format!("`{shown}` does not compare with a version"));
        }
    }
    Ok(())
}

/// A full semver version (`1.2.3`, `1.2.3-rc.1`, `1.2.3+build`).
fn is_semver(s: &str) -> bool {
    let core = s.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && !s.contains(' ')
}

/// PEP 503: lowercase, runs of `-_.` as one `-`.
pub fn normalize_pypi(name: &str) -> String {
    let base = name.split('[').next().unwrap_or(name);
    let mut out = String::with_capacity(base.len());
    let mut sep = false;
    for c in base.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> PackageRef {
        PackageRef::parse("package", s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn npm_references() {
        let r = ok("npm:@modelcontextprotocol/server-memory@2026.1.26");
        assert_eq!(r.name, "@modelcontextprotocol/server-memory");
        assert_eq!(r.exact_version(), Some("2026.1.26"));
        let r = ok("npm:is-number");
        assert_eq!((r.name.as_str(), r.spec.as_deref()), ("is-number", None));
        assert_eq!(ok("npm:zod@^3").exact_version(), None);
        assert_eq!(ok("npm:zod@latest").exact_version(), None);
        assert_eq!(ok("npm:a@>=1.0.0 <2 || 3.x").exact_version(), None);
        assert_eq!(ok("npm:a@1.2.3-rc.1").exact_version(), Some("1.2.3-rc.1"));
        assert_eq!(ok("npm:@s/p@1.0.0").exact("1.0.0"), "npm:@s/p@1.0.0");
    }

    #[test]
    fn pypi_references() {
        let r = ok("pypi:mcp-server-time==2026.10.19");
        assert_eq!(r.exact_version(), Some("2026.10.19"));
        assert_eq!(r.exact("1"), "pypi:mcp-server-time==1");
        let r = ok("pypi:Mcp_Server.Time>=1,<2");
        assert_eq!(r.spec.as_deref(), Some(">=1,<2"));
        assert_eq!(r.normalized_name(), "mcp-server-time");
        assert_eq!(r.exact_version(), None);
        assert_eq!(ok("pypi:x==1.*").exact_version(), None);
        let r = ok("pypi:mcp[cli]==1.2");
        assert_eq!(
            (r.name.as_str(), r.normalized_name().as_str()),
            ("mcp[cli]", "mcp")
        );
        assert_eq!(ok("pypi:mcp").spec, None);
    }

    /// Everything npm or pip would read as a path, URL, git source, option or
    /// a second requirement is refused, with the input named.
    #[test]
    fn hostile_references_are_refused() {
        for bad in [
            "",
            "npm",
            "docker:alpine",
            "npm:",
            "npm:../../etc/passwd",
            "npm:/etc/passwd",
            "npm:file:../x",
            "npm:x@file:../x",
            "npm:x@git+https://evil/x.git",
            "npm:x@github:evil/x",
            "npm:x@https://evil/x.tgz",
            "npm:x@npm:other@1",
            "npm:x@--registry=http://evil",
            "npm:x@-1",
            "npm:Upper",
            "npm:.hidden",
            "npm:@scope",
            "npm:@scope/",
            "npm:x@",
            "npm:x@1\n",
            "npm:x y",
            "npm:node_modules",
            "pypi:",
            "pypi:-r /etc/shadow",
            "pypi:--index-url=http://evil",
            "pypi:x @ https://evil/x.whl",
            "pypi:x@https://evil",
            "pypi:./local",
            "pypi:/abs/path",
            "pypi:x==1; python_version>'3'",
            "pypi:x==1 --hash=sha256:00",
            "pypi:x==1\ny==2",
            "pypi:x[extra",
            "pypi:x[../..]==1",
            "pypi:x==",
            "pypi:x~1",
            "pypi:_x",
        ] {
            let err = PackageRef::parse("package", bad)
                .expect_err(bad)
                .to_string();
            assert!(err.contains("invalid package"), "{bad}: {err}");
            assert!(err.contains("Fix:"), "{bad}: {err}");
            assert!(
                !err.contains('\n'),
                "{bad}: the error carries the line break raw: {err}"
            );
        }
        let long = format!("npm:{}", "a".repeat(300));
        assert!(PackageRef::parse("package", &long).is_err());
    }

    #[test]
    fn pins() {
        let pins = parse_pins(
            Ecosystem::Pypi,
            &["mcp<2".into(), "Pydantic_Core==2.33.2".into()],
        )
        .unwrap();
        assert_eq!(
            pins[0],
            Pin {
                name: "mcp".into(),
                spec: "<2".into()
            }
        );
        assert_eq!(pins[1].name, "pydantic-core");
        let pins = parse_pins(Ecosystem::Npm, &["zod@^3".into(), "@s/p@1.0.0".into()]).unwrap();
        assert_eq!(pins[0].name, "@s/p");
        for bad in [
            "mcp",
            "mcp @ file:///x",
            "-c /etc/x",
            "mcp<2\n--index-url x",
        ] {
            assert!(parse_pins(Ecosystem::Pypi, &[bad.into()]).is_err(), "{bad}");
        }
        for bad in ["zod", "zod@file:../x", "zod@git+ssh://x"] {
            assert!(parse_pins(Ecosystem::Npm, &[bad.into()]).is_err(), "{bad}");
        }
        assert!(parse_pins(Ecosystem::Npm, &["a@1".into(), "a@2".into()]).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("p{i}@1")).collect();
        assert!(parse_pins(Ecosystem::Npm, &many).is_err());
    }

    #[test]
    fn pep503() {
        assert_eq!(normalize_pypi("Foo.Bar__baz-Qux"), "foo-bar-baz-qux");
    }
}
