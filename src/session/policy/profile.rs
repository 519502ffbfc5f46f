//! Policy per principal (`mcpod serve --listen --principals FILE`): the
//! operator's flags are the ceiling, and a profile narrows them for some
//! principals. A profile can only take away (fewer tools, sessions, env
//! names, egress destinations, engines, mount roots, no network, lower
//! limits and leases): what a
//! profile names that the flags do not allow is an error when the file is
//! read, so the file never widens the policy by mistake.
//!
//! The file is TOML:
//!
//! ```toml
//! [default]                    # every HTTP principal
//! max_sessions = 4
//!
//! [principal.ci-runner]        # a token's name, or oauth:SUBJECT
//! tools = ["launch_session", "call_tool", "list_sessions", "stop_session"]
//! allow_env = ["GITHUB_TOKEN"]
//! engines = ["local"]
//! allow_network = false
//! mount_roots = ["/srv/ci:rw"]   # within the operator's --allow-mount
//!
//! [scope."mcpod:readonly"]     # every access token with this scope
//! tools = ["list_sessions", "find_tools", "call_tool"]
//! ```
//!
//! A principal gets `[default]`, its own `[principal.NAME]` and one
//! `[scope.S]` for each scope it has, all at once (each narrows the others).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{MountRoot, Policy};
use crate::egress::Pattern;

/// Bytes of a principals file.
pub const MAX_FILE: u64 = 1 << 20;

/// What one principal may do, besides the operator's flags.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Profile {
    /// mcpod's own tools it may call (none named: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Its sessions at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<usize>,
    /// The `--allow-env` names it may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_env: Option<Vec<String>>,
    /// `false`: no network at all, whatever the flags allow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_network: Option<bool>,
    /// The `--allow-egress` destinations it may be granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_egress: Option<Vec<Pattern>>,
    /// The engines (`local` and the operator's `--engine` names) it may launch on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engines: Option<Vec<String>>,
    /// The host directories it may mount: each within one of the
    /// operator's `--allow-mount` roots, writable only where that one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_roots: Option<Vec<MountRoot>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pids: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ttl_secs: Option<u64>,
}

/// Every profile of a principals file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profiles {
    default: Option<Profile>,
    principals: BTreeMap<String, Profile>,
    scopes: BTreeMap<String, Profile>,
}

/// The principals file in effect, read again on request (`serve`'s
/// SIGHUP): a file that no longer reads or checks leaves the one in effect.
/// What a session was granted at launch stays as it was.
#[derive(Debug, Default)]
pub struct LiveProfiles {
    current: std::sync::RwLock<std::sync::Arc<Profiles>>,
    /// Where it is read from, and what it is checked against.
    source: Option<(std::path::PathBuf, Policy, Vec<String>)>,
}

impl LiveProfiles {
    /// Read `path` now, and keep it to read again.
    pub fn read(path: &Path, policy: &Policy, tools: &[String]) -> Result<LiveProfiles, String> {
        let profiles = Profiles::read(path, policy, tools)?;
        Ok(LiveProfiles {
            current: std::sync::RwLock::new(std::sync::Arc::new(profiles)),
            source: Some((path.to_path_buf(), policy.clone(), tools.to_vec())),
        })
    }

    /// The profiles in effect.
    pub fn get(&self) -> std::sync::Arc<Profiles> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Read the file again; what now applies (principals and scopes named),
    /// or why the one in effect stays.
    pub fn reload(&self) -> Result<String, String> {
        let Some((path, policy, tools)) = &self.source else {
            return Err("no --principals file was given".into());
        };
        let profiles = Profiles::read(path, policy, tools)?;
        let said = format!(
            "--principals {}: {} principal(s), {} scope(s){}",
            path.display(),
            profiles.principals.len(),
            profiles.scopes.len(),
            if profiles.default.is_some() {
                ", a [default]"
            } else {
                ""
            }
        );
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(profiles);
        Ok(said)
    }
}

impl Profiles {
    /// Read `path`, checking each profile against `policy` and the names of
    /// mcpod's `tools`.
    pub fn read(path: &Path, policy: &Policy, tools: &[String]) -> Result<Profiles, String> {
        let bytes = crate::cache::input::read_bounded(path, "--principals", MAX_FILE, |_| Ok(()))
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("--principals {}: not UTF-8", path.display()))?;
        Profiles::parse(&text, policy, tools)
            .map_err(|e| format!("--principals {}: {e}", path.display()))
    }

    pub fn parse(text: &str, policy: &Policy, tools: &[String]) -> Result<Profiles, String> {
        let doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("not TOML: {e}"))?;
        let mut profiles = Profiles::default();
        for (key, item) in doc.iter() {
            let table = item
                .as_table_like()
                .ok_or_else(|| format!("`{key}` is not a table"))?;
            match key {
                "default" => profiles.default = Some(profile(key, table, policy, tools)?),
                "principal" | "scope" => {
                    for (name, inner) in table.iter() {
                        let inner = inner
                            .as_table_like()
                            .ok_or_else(|| format!("`{key}.{name}` is not a table"))?;
                        let p = profile(&format!("{key}.{name}"), inner, policy, tools)?;
                        let into = if key == "principal" {
                            &mut profiles.principals
                        } else {
                            &mut profiles.scopes
                        };
                        into.insert(name.to_string(), p);
                    }
                }
                other => {
                    return Err(format!(
                        "unknown table `[{other}]`; the tables are [default], [principal.NAME] and [scope.NAME]"
                    ));
                }
            }
        }
        Ok(profiles)
    }

    /// What applies to `principal` with `scopes`: none when no table does.
    pub fn of(&self, principal: &str, scopes: &[String]) -> Option<Profile> {
        let applying = self
            .default
            .iter()
            .chain(self.principals.get(principal))
            .chain(scopes.iter().filter_map(|s| self.scopes.get(s)));
        applying.fold(None, |acc: Option<Profile>, p| {
            Some(match acc {
                None => p.clone(),
                Some(acc) => acc.and(p),
            })
        })
    }
}

fn both<T: Clone>(a: &Option<T>, b: &Option<T>, pick: impl Fn(&T, &T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

fn common<T: Clone + PartialEq>(a: &[T], b: &[T]) -> Vec<T> {
    a.iter().filter(|x| b.contains(x)).cloned().collect()
}

/// The root among `roots` that `root` lies within and may be as writable
/// as, if any.
fn holder<'a>(root: &MountRoot, roots: &'a [MountRoot]) -> Option<&'a MountRoot> {
    roots
        .iter()
        .filter(|r| root.path.starts_with(&r.path) && (r.writable || !root.writable))
        .max_by_key(|r| r.path.as_os_str().len())
}

/// The directories both `a` and `b` let a session mount: each root of one
/// that lies within a root of the other, writable only where both are.
fn meet(a: &[MountRoot], b: &[MountRoot]) -> Vec<MountRoot> {
    let within = |x: &MountRoot, ys: &[MountRoot]| {
        ys.iter()
            .filter(|y| x.path.starts_with(&y.path))
            .max_by_key(|y| y.path.as_os_str().len())
            .map(|y| MountRoot {
                path: x.path.clone(),
                writable: x.writable && y.writable,
            })
    };
    let mut out: Vec<MountRoot> = a
        .iter()
        .filter_map(|x| within(x, b))
        .chain(b.iter().filter_map(|x| within(x, a)))
        .collect();
    out.sort_by(|x, y| x.path.cmp(&y.path).then(x.writable.cmp(&y.writable)));
    out.dedup_by(|later, kept| later.path == kept.path);
    out
}

impl Profile {
    /// What both `self` and `other` allow.
    pub fn and(&self, other: &Profile) -> Profile {
        Profile {
            tools: both(&self.tools, &other.tools, |a, b| common(a, b)),
            max_sessions: both(&self.max_sessions, &other.max_sessions, |a, b| *a.min(b)),
            allow_env: both(&self.allow_env, &other.allow_env, |a, b| common(a, b)),
            allow_network: both(&self.allow_network, &other.allow_network, |a, b| *a && *b),
            allow_egress: both(&self.allow_egress, &other.allow_egress, |a, b| common(a, b)),
            engines: both(&self.engines, &other.engines, |a, b| common(a, b)),
            mount_roots: both(&self.mount_roots, &other.mount_roots, |a, b| meet(a, b)),
            max_memory_mb: both(&self.max_memory_mb, &other.max_memory_mb, |a, b| *a.min(b)),
            max_cpus: both(&self.max_cpus, &other.max_cpus, |a, b| a.min(*b)),
            max_pids: both(&self.max_pids, &other.max_pids, |a, b| *a.min(b)),
            max_ttl_secs: both(&self.max_ttl_secs, &other.max_ttl_secs, |a, b| *a.min(b)),
        }
    }

    /// Whether it may call mcpod's tool `name`.
    pub fn allows_tool(&self, name: &str) -> bool {
        self.tools
            .as_ref()
            .is_none_or(|tools| tools.iter().any(|t| t == name))
    }

    /// `policy` as this profile narrows it.
    pub fn narrow(&self, policy: &Policy) -> Policy {
        let mut narrowed = policy.clone();
        if let Some(env) = &self.allow_env {
            narrowed.allowed_env = common(&policy.allowed_env, env);
        }
        if self.allow_network == Some(false) {
            narrowed.allow_network = false;
            narrowed.allow_egress.clear();
        }
        if let Some(egress) = &self.allow_egress {
            narrowed.allow_egress = common(&policy.allow_egress, egress);
        }
        if let Some(roots) = &self.mount_roots {
            narrowed.mount_roots = meet(&policy.mount_roots, roots);
        }
        if let Some(engines) = &self.engines {
            narrowed.only_engines = Some(match &policy.only_engines {
                Some(already) => common(already, engines),
                None => engines.clone(),
            });
        }
        if let Some(n) = self.max_memory_mb {
            narrowed.max_memory_mb = n.min(policy.max_memory_mb);
            narrowed.default_memory_mb = narrowed.default_memory_mb.min(narrowed.max_memory_mb);
        }
        if let Some(n) = self.max_cpus {
            narrowed.max_cpus = n.min(policy.max_cpus);
            narrowed.default_cpus = narrowed.default_cpus.min(narrowed.max_cpus);
        }
        if let Some(n) = self.max_pids {
            narrowed.max_pids = n.min(policy.max_pids);
            narrowed.default_pids = narrowed.default_pids.min(narrowed.max_pids);
        }
        if let Some(n) = self.max_ttl_secs {
            narrowed.max_ttl_secs = n.min(policy.max_ttl_secs);
            narrowed.default_ttl_secs = narrowed.default_ttl_secs.min(narrowed.max_ttl_secs);
        }
        narrowed
    }
}

/// `roots` as mount roots, each within one of the operator's `allowed`.
fn mount_roots(
    at: &str,
    key: &str,
    roots: &[String],
    allowed: &[MountRoot],
) -> Result<Vec<MountRoot>, String> {
    let shown = || {
        if allowed.is_empty() {
            "none".to_string()
        } else {
            allowed
                .iter()
                .map(|r| {
                    format!(
                        "{}:{}",
                        r.path.display(),
                        if r.writable { "rw" } else { "ro" }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    roots
        .iter()
        .map(|text| {
            let root: MountRoot = text.parse().map_err(|e| format!("`{at}.{key}`: {e}"))?;
            match holder(&root, allowed) {
                Some(_) => Ok(root),
                None => Err(format!(
                    "`{at}.{key}`: `{text}` is not within the operator's --allow-mount ({}); a profile can only narrow them",
                    shown()
                )),
            }
        })
        .collect()
}

/// One table as a profile: every key known, every value within `policy`.
fn profile(
    at: &str,
    table: &dyn toml_edit::TableLike,
    policy: &Policy,
    known: &[String],
) -> Result<Profile, String> {
    let mut p = Profile::default();
    for (key, item) in table.iter() {
        let value = item
            .as_value()
            .ok_or_else(|| format!("`{at}.{key}` is not a value"))?;
        let wrong = |what: &str| format!("`{at}.{key}` must be {what}");
        match key {
            "tools" => {
                let tools = strings(value).ok_or_else(|| wrong("a list of tool names"))?;
                let whose = format!("mcpod's tools ({})", known.join(", "));
                p.tools = Some(within(at, key, tools, known, &whose)?);
            }
            "max_sessions" => {
                p.max_sessions = Some(whole(value).ok_or_else(|| wrong("a whole number"))?)
            }
            "allow_env" => {
                let env = strings(value).ok_or_else(|| wrong("a list of variable names"))?;
                let whose = "the operator's --allow-env";
                p.allow_env = Some(within(at, key, env, &policy.allowed_env, whose)?);
            }
            "allow_network" => {
                p.allow_network = Some(value.as_bool().ok_or_else(|| wrong("true or false"))?)
            }
            "allow_egress" => {
                let patterns = strings(value)
                    .ok_or_else(|| wrong("a list of HOST:PORT patterns"))?
                    .iter()
                    .map(|s| {
                        s.parse::<Pattern>()
                            .map_err(|e| format!("`{at}.{key}`: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let whose = "the operator's --allow-egress";
                p.allow_egress = Some(within(at, key, patterns, &policy.allow_egress, whose)?);
            }
            "engines" => {
                let engines = strings(value).ok_or_else(|| wrong("a list of engine names"))?;
                let known: Vec<String> = std::iter::once(crate::engine::engines::LOCAL.to_string())
                    .chain(policy.engines.iter().map(|e| e.name.clone()))
                    .collect();
                let whose = format!("the operator's engines ({})", known.join(", "));
                p.engines = Some(within(at, key, engines, &known, &whose)?);
            }
            "mount_roots" => {
                let roots =
                    strings(value).ok_or_else(|| wrong("a list of PATH, PATH:ro or PATH:rw"))?;
                p.mount_roots = Some(mount_roots(at, key, &roots, &policy.mount_roots)?);
            }
            "max_memory_mb" => {
                p.max_memory_mb = Some(whole(value).ok_or_else(|| wrong("a whole number"))?)
            }
            "max_pids" => p.max_pids = Some(whole(value).ok_or_else(|| wrong("a whole number"))?),
            "max_ttl_secs" => {
                p.max_ttl_secs = Some(whole(value).ok_or_else(|| wrong("a whole number"))?)
            }
            "max_cpus" => {
                let cpus = value
                    .as_float()
                    .or_else(|| value.as_integer().map(|i| i as f64));
                p.max_cpus = Some(
                    cpus.filter(|c| *c > 0.0)
                        .ok_or_else(|| wrong("a number above 0"))?,
                );
            }
            other => {
                return Err(format!(
                    "`{at}.{other}` is not a setting; the settings are tools, max_sessions, allow_env, allow_network, allow_egress, engines, mount_roots, max_memory_mb, max_cpus, max_pids, max_ttl_secs"
                ));
            }
        }
    }
    Ok(p)
}

fn strings(value: &toml_edit::Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// A whole number that fits `T` (none for a negative or too large one).
fn whole<T: TryFrom<i64>>(value: &toml_edit::Value) -> Option<T> {
    value.as_integer().and_then(|i| T::try_from(i).ok())
}

/// `items`, when each is among `allowed` (`whose`); else the error naming
/// the first that is not.
fn within<T: PartialEq + std::fmt::Display>(
    at: &str,
    key: &str,
    items: Vec<T>,
    allowed: &[T],
    whose: &str,
) -> Result<Vec<T>, String> {
    match items.iter().find(|i| !allowed.contains(i)) {
        Some(i) => Err(format!(
            "`{at}.{key}`: `{i}` is not one of {whose}; a profile can only narrow"
        )),
        None => Ok(items),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<String> {
        [
            "launch_session",
            "call_tool",
            "list_sessions",
            "build_image",
        ]
        .map(str::to_string)
        .to_vec()
    }

    fn operator() -> Policy {
        Policy {
            allowed_env: vec!["GITHUB_TOKEN".into(), "API_KEY".into()],
            allow_network: true,
            allow_egress: vec![
                "api.github.com:443".parse().unwrap(),
                "pypi.org:443".parse().unwrap(),
            ],
            ..Policy::default()
        }
    }

    #[test]
    fn profiles_narrow_and_combine() {
        let text = r#"
[default]
max_sessions = 4

[principal.ci]
tools = ["launch_session", "call_tool", "list_sessions"]
engines = ["local"]
allow_env = ["GITHUB_TOKEN"]
allow_egress = ["api.github.com:443"]
max_memory_mb = 256

[scope."mcpod:offline"]
allow_network = false
max_sessions = 1
"#;
        let profiles = Profiles::parse(text, &operator(), &tools()).unwrap();
        let ci = profiles.of("ci", &[]).unwrap();
        assert_eq!(ci.max_sessions, Some(4));
        assert!(ci.allows_tool("call_tool") && !ci.allows_tool("build_image"));
        let narrowed = ci.narrow(&operator());
        assert_eq!(narrowed.allowed_env, ["GITHUB_TOKEN"]);
        assert_eq!(narrowed.allow_egress.len(), 1);
        assert_eq!(narrowed.max_memory_mb, 256);
        assert_eq!(narrowed.only_engines, Some(vec!["local".to_string()]));
        assert!(narrowed.default_memory_mb <= 256);
        assert!(narrowed.allow_network);
        let offline = profiles.of("oauth:x", &["mcpod:offline".into()]).unwrap();
        assert_eq!(offline.max_sessions, Some(1));
        let narrowed = offline.narrow(&operator());
        assert!(!narrowed.allow_network && narrowed.allow_egress.is_empty());
        assert!(offline.allows_tool("build_image"));
        assert_eq!(
            Profiles::parse("", &operator(), &tools())
                .unwrap()
                .of("ci", &[]),
            None
        );
    }

    #[test]
    fn a_principals_file_is_read_with_a_bound_and_never_waits() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a FIFO made in a temporary directory.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(Profiles::read(&fifo, &operator(), &tools()).is_err());
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_FILE as usize + 1]).unwrap();
        let e = Profiles::read(&big, &operator(), &tools()).unwrap_err();
        assert!(e.contains("--principals"), "{e}");
        let ok = dir.path().join("ok.toml");
        std::fs::write(&ok, "[default]\nmax_sessions = 2\n").unwrap();
        assert!(Profiles::read(&ok, &operator(), &tools()).is_ok());
    }

    #[test]
    fn a_request_cannot_carry_its_own_narrowed_policy() {
        let asked = serde_json::json!({"image": "x", "policy": {"allowed_env": ["HOME"]}});
        assert!(serde_json::from_value::<crate::session::LaunchInput>(asked).is_err());
        let schema = schemars::schema_for!(crate::session::LaunchInput).to_value();
        assert!(schema["properties"].get("policy").is_none());
    }

    #[test]
    fn a_profile_that_would_widen_or_is_malformed_is_an_error_naming_it() {
        let cases = [
            (
                "[principal.a]\nallow_env = [\"HOME\"]",
                "principal.a.allow_env",
            ),
            (
                "[principal.a]\nallow_egress = [\"evil.example:443\"]",
                "principal.a.allow_egress",
            ),
            ("[principal.a]\ntools = [\"rm_rf\"]", "principal.a.tools"),
            ("[principal.a]\nengines = [\"far\"]", "principal.a.engines"),
            (
                "[principal.a]\nmax_sessions = -1",
                "principal.a.max_sessions",
            ),
            ("[principal.a]\nmax_cpus = 0", "principal.a.max_cpus"),
            (
                "[principal.a]\nmax_memory_mb = 4294967297",
                "principal.a.max_memory_mb",
            ),
            ("[principal.a]\nadmin = true", "principal.a.admin"),
            ("[admins]\nx = 1", "[admins]"),
            ("[principal]\na = 1", "principal.a"),
            ("not toml [", "not TOML"),
        ];
        for (text, named) in cases {
            let e = Profiles::parse(text, &operator(), &tools()).unwrap_err();
            assert!(e.contains(named), "{text}: {e}");
        }
    }
}

#[cfg(test)]
mod mount_tests {
    use super::*;

    /// An operator who allows `<dir>/ro` read-only and `<dir>/rw` writable.
    fn operator(dir: &Path) -> Policy {
        for d in ["ro/a", "rw/a", "elsewhere"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        Policy {
            mount_roots: vec![
                format!("{}:ro", dir.join("ro").display()).parse().unwrap(),
                format!("{}:rw", dir.join("rw").display()).parse().unwrap(),
            ],
            ..Policy::default()
        }
    }

    #[test]
    fn mount_roots_only_narrow_and_combine_to_what_both_allow() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().canonicalize().unwrap();
        let policy = operator(&d);
        let at = |p: &str| d.join(p).display().to_string();
        let parse = |roots: &str| {
            Profiles::parse(
                &format!("[principal.ci]\nmount_roots = {roots}\n"),
                &policy,
                &[],
            )
        };
        // Within a root, writable only under a writable one.
        for (roots, says) in [
            (
                format!("[\"{}\"]", at("elsewhere")),
                "not within the operator's --allow-mount",
            ),
            (
                format!("[\"{}:rw\"]", at("ro/a")),
                "not within the operator's --allow-mount",
            ),
            (format!("[\"{}\"]", at("missing")), "mount root"),
        ] {
            let e = parse(&roots).unwrap_err();
            assert!(
                e.contains(says) && e.contains("principal.ci.mount_roots"),
                "{e}"
            );
        }
        let profiles = parse(&format!("[\"{}:rw\", \"{}\"]", at("rw/a"), at("ro"))).unwrap();
        let narrowed = profiles.of("ci", &[]).unwrap().narrow(&policy);
        let shown: Vec<(String, bool)> = narrowed
            .mount_roots
            .iter()
            .map(|r| (r.path.display().to_string(), r.writable))
            .collect();
        assert_eq!(shown, [(at("ro"), false), (at("rw/a"), true)]);
        // Another table that allows only `ro/a`: the principal gets that.
        let both = Profiles::parse(
            &format!(
                "[default]\nmount_roots = [\"{}\"]\n[principal.ci]\nmount_roots = [\"{}\"]\n",
                at("ro/a"),
                at("ro")
            ),
            &policy,
            &[],
        )
        .unwrap();
        let roots = both.of("ci", &[]).unwrap().narrow(&policy).mount_roots;
        assert_eq!(roots.len(), 1, "{roots:?}");
        assert_eq!(roots[0].path, d.join("ro/a"));
        // Another principal: [default]'s.
        assert_eq!(
            both.of("other", &[])
                .unwrap()
                .narrow(&policy)
                .mount_roots
                .len(),
            1
        );
    }
}
