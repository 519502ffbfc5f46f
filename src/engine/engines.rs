//! The engines sessions run on (the local podman and the operator's remote
//! ones) and the rule that places a session on one of them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::podman::Podman;
use crate::{Error, Result};

/// The name of the local podman among the engines.
pub const LOCAL: &str = "local";

/// The placement rule, as `show_policy` says it.
pub const PLACEMENT: &str = "the engine a launch names; else the engine with the fewest sessions and launches under way, the first listed on a tie, leaving out an engine at its --engine-max and for 30 s one that failed to answer; a launch that mounts host directories runs on `local`";

/// How long an engine that failed to answer is left out of placement.
const DOWN_FOR: Duration = Duration::from_secs(30);

/// An engine as the operator names it: `--engine NAME=URL`, and for an
/// `ssh://` one the key podman logs in with (`--engine-key NAME=PATH`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSpec {
    pub name: String,
    pub url: String,
    pub identity: Option<PathBuf>,
}

impl EngineSpec {
    /// `NAME=URL`.
    pub fn parse(s: &str) -> std::result::Result<EngineSpec, String> {
        let (name, url) = s.split_once('=').ok_or_else(|| {
            format!("`{s}` is not NAME=URL (e.g. b=ssh://root@host/run/podman/podman.sock)")
        })?;
        check_name(name)?;
        if name == LOCAL {
            return Err(format!(
                "`{LOCAL}` is the local podman's name, always an engine; name a remote one otherwise"
            ));
        }
        Podman::remote(url, None).map_err(|e| e.to_string())?;
        Ok(EngineSpec {
            name: name.to_string(),
            url: url.to_string(),
            identity: None,
        })
    }
}

/// An engine name: what `launch_session`'s `engine` and `list_sessions` say.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an engine name: 1 to 32 of a-z, 0-9, `-` and `_`"
        ))
    }
}

/// One engine and what placement knows of it.
#[derive(Debug)]
pub struct Engine {
    pub name: String,
    pub podman: Podman,
    /// Launches placed here that have not yet become sessions.
    starting: AtomicUsize,
    /// Left out of placement until then (it failed to answer).
    down_until: Mutex<Option<Instant>>,
    /// The engine's podman version, asked once.
    version: tokio::sync::OnceCell<(u32, u32)>,
    /// Sessions (and launches under way) it may hold at once (`--engine-max`).
    pub max: Option<usize>,
}

impl Engine {
    fn new(name: &str, podman: Podman) -> Engine {
        Engine {
            name: name.to_string(),
            podman,
            starting: AtomicUsize::new(0),
            down_until: Mutex::new(None),
            version: tokio::sync::OnceCell::new(),
            max: None,
        }
    }

    pub fn is_local(&self) -> bool {
        self.podman.is_local()
    }

    /// Leave the engine out of placement for a while: it did not answer.
    pub fn mark_down(&self) {
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + DOWN_FOR);
    }

    fn is_down(&self) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| Instant::now() < until)
    }

    /// The engine's podman (major, minor) version.
    pub async fn version(&self) -> Result<(u32, u32)> {
        self.version
            .get_or_try_init(|| async {
                let v = if self.is_local() {
                    super::podman::client_version().await
                } else {
                    self.podman.server_version().await
                };
                if v.is_err() {
                    self.mark_down();
                }
                v
            })
            .await
            .copied()
    }
}

/// A launch placed on an engine: it counts against the engine's load until dropped.
pub struct Placed {
    pub engine: Arc<Engine>,
}

impl Drop for Placed {
    fn drop(&mut self) {
        self.engine.starting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Every engine of this mcpod: the local podman first, then the operator's
/// in the order given.
#[derive(Debug)]
pub struct Engines {
    all: Vec<Arc<Engine>>,
    /// Placement decisions one at a time, so launches at once spread.
    placing: Mutex<()>,
}

impl Engines {
    /// The local engine and `specs`, each holding at most what `max` says
    /// of it (`--engine-max NAME=N`).
    pub fn new(specs: &[EngineSpec], max: &[(String, usize)]) -> Result<Engines> {
        let mut all = vec![Engine::new(LOCAL, Podman::local())];
        for spec in specs {
            if all.iter().any(|e| e.name == spec.name) {
                return Err(Error::invalid(
                    "engine",
                    &spec.name,
                    "two engines have this name",
                    "give each --engine a name of its own",
                ));
            }
            let podman = Podman::remote(&spec.url, spec.identity.clone())?;
            all.push(Engine::new(&spec.name, podman));
        }
        for (name, n) in max {
            let engine = all.iter_mut().find(|e| &e.name == name).ok_or_else(|| {
                Error::invalid(
                    "--engine-max",
                    name,
                    "no engine has this name",
                    "name `local` or an --engine NAME",
                )
            })?;
            engine.max = Some(*n);
        }
        Ok(Engines {
            all: all.into_iter().map(Arc::new).collect(),
            placing: Mutex::new(()),
        })
    }

    pub fn all(&self) -> &[Arc<Engine>] {
        &self.all
    }

    /// The local podman.
    pub fn local(&self) -> &Arc<Engine> {
        &self.all[0]
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Engine>> {
        self.all.iter().find(|e| e.name == name)
    }

    /// Whether there is any engine but the local one.
    pub fn any_remote(&self) -> bool {
        self.all.len() > 1
    }

    /// Place a launch. The rule: the engine it names; else, of the engines
    /// that answered lately, the one with the fewest sessions (`sessions`:
    /// running there) plus launches under way, the first listed on a tie
    /// (local first). `local_only` (the launch mounts host directories,
    /// which name this host's files) allows only the local engine; `only`
    /// (a principal's profile), only the engines it names.
    pub fn place(
        &self,
        requested: Option<&str>,
        local_only: bool,
        only: Option<&[String]>,
        sessions: impl Fn(&str) -> usize,
    ) -> Result<Placed> {
        let allowed = |name: &str| only.is_none_or(|only| only.iter().any(|o| o == name));
        if let Some(name) = requested.filter(|n| !allowed(n)) {
            return Err(Error::invalid(
                "engine",
                name,
                "the operator's --principals file does not let this principal launch there",
                format!("choose one of: {}", only.unwrap_or_default().join(", ")),
            ));
        }
        let _one_at_a_time = self.placing.lock().unwrap_or_else(|p| p.into_inner());
        let load = |e: &Engine| sessions(&e.name) + e.starting.load(Ordering::SeqCst);
        let full = |e: &Engine| e.max.is_some_and(|max| load(e) >= max);
        let engine = match requested {
            Some(name) => {
                let engine = self.get(name).ok_or_else(|| {
                    Error::invalid(
                        "engine",
                        name,
                        "no engine has this name",
                        format!("choose one of: {}", self.names().join(", ")),
                    )
                })?;
                if local_only && !engine.is_local() {
                    return Err(mounts_are_local(name));
                }
                if full(engine) {
                    return Err(Error::invalid(
                        "engine",
                        name,
                        format!(
                            "it holds {} sessions, as many as the operator allows it (--engine-max)",
                            load(engine)
                        ),
                        "launch on another engine (or without `engine`), or stop a session there",
                    ));
                }
                engine.clone()
            }
            None => {
                let open = self
                    .all
                    .iter()
                    .filter(|e| !local_only || e.is_local())
                    .filter(|e| allowed(&e.name))
                    .filter(|e| !full(e));
                let chosen = open
                    .clone()
                    .filter(|e| !e.is_down())
                    .min_by_key(|e| load(e))
                    // Every open engine failed lately: try one anyway.
                    .or_else(|| open.min_by_key(|e| load(e)));
                chosen.cloned().ok_or_else(|| {
                    Error::invalid(
                        "engine",
                        "",
                        if local_only {
                            "the launch mounts host directories, and the local engine holds as many sessions as the operator allows it (--engine-max)"
                        } else {
                            "every engine holds as many sessions as the operator allows it (--engine-max)"
                        },
                        "stop a session first (stop_session)",
                    )
                })?
            }
        };
        engine.starting.fetch_add(1, Ordering::SeqCst);
        Ok(Placed { engine })
    }

    pub fn names(&self) -> Vec<String> {
        self.all.iter().map(|e| e.name.clone()).collect()
    }
}

fn mounts_are_local(name: &str) -> Error {
    Error::invalid(
        "engine",
        name,
        "the launch mounts host directories, which exist only on the local engine",
        format!("launch it on `{LOCAL}` (or without `engine`), or without mounts"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engines() -> Engines {
        let specs: Vec<EngineSpec> = ["a=unix:///run/a.sock", "b=ssh://root@h/run/b.sock"]
            .iter()
            .map(|s| EngineSpec::parse(s).expect("parses"))
            .collect();
        Engines::new(&specs, &[]).expect("engines")
    }

    #[test]
    fn names_and_urls_are_checked() {
        assert!(EngineSpec::parse("a=unix:///x.sock").is_ok());
        for bad in [
            "a",
            "=unix:///x",
            "A=unix:///x",
            "local=unix:///x",
            "a=http://x",
            "a=/x.sock",
            "a=unix:///x y",
        ] {
            assert!(EngineSpec::parse(bad).is_err(), "{bad}");
        }
        let twice = [
            EngineSpec::parse("a=unix:///x").expect("ok"),
            EngineSpec::parse("a=unix:///y").expect("ok"),
        ];
        assert!(Engines::new(&twice, &[]).is_err());
        assert!(Engines::new(&[], &[("nope".into(), 1)]).is_err());
    }

    #[test]
    fn a_principal_is_placed_only_on_its_engines() {
        let engines = engines();
        let only = ["b".to_string()];
        for _ in 0..3 {
            let p = engines
                .place(None, false, Some(&only), |_| 0)
                .expect("placed");
            assert_eq!(p.engine.name, "b");
        }
        let e = engines
            .place(Some("a"), false, Some(&only), |_| 0)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("--principals"), "{e}");
        assert!(engines.place(None, true, Some(&only), |_| 0).is_err());
    }

    #[test]
    fn launches_at_once_spread_over_the_engines() {
        let engines = engines();
        let placed: Vec<Placed> = (0..6)
            .map(|_| engines.place(None, false, None, |_| 0).expect("placed"))
            .collect();
        let names: Vec<&str> = placed.iter().map(|p| p.engine.name.as_str()).collect();
        assert_eq!(names, ["local", "a", "b", "local", "a", "b"]);
        drop(placed);
        // Sessions count: the least loaded wins.
        let p = engines
            .place(None, false, None, |n| if n == "local" { 2 } else { 1 })
            .expect("placed");
        assert_eq!(p.engine.name, "a");
    }

    #[test]
    fn a_named_engine_a_down_engine_and_mounts() {
        let engines = engines();
        assert_eq!(
            engines
                .place(Some("b"), false, None, |_| 0)
                .expect("b")
                .engine
                .name,
            "b"
        );
        let err = engines
            .place(Some("c"), false, None, |_| 0)
            .err()
            .expect("no c")
            .to_string();
        assert!(err.contains("local, a, b"), "{err}");
        let err = engines
            .place(Some("a"), true, None, |_| 0)
            .err()
            .expect("mounts")
            .to_string();
        assert!(err.contains("mounts host directories"), "{err}");
        assert_eq!(
            engines
                .place(None, true, None, |n| if n == "local" { 9 } else { 0 })
                .expect("local")
                .engine
                .name,
            "local"
        );
        engines.get("a").expect("a").mark_down();
        assert_eq!(
            engines
                .place(Some("a"), false, None, |_| 0)
                .expect("named, though down")
                .engine
                .name,
            "a"
        );
        let p = engines
            .place(None, false, None, |n| if n == "local" { 1 } else { 0 })
            .expect("placed");
        assert_eq!(p.engine.name, "b");
    }
}

#[cfg(test)]
mod max_tests {
    use super::*;

    #[test]
    fn an_engine_at_its_max_takes_nothing_more() {
        let specs = [EngineSpec::parse("a=unix:///a.sock").expect("a")];
        let engines = Engines::new(&specs, &[("local".into(), 0), ("a".into(), 2)]).expect("ok");
        let first = engines.place(None, false, None, |_| 0).expect("a");
        let second = engines.place(None, false, None, |_| 0).expect("a");
        assert_eq!(
            (first.engine.name.as_str(), second.engine.name.as_str()),
            ("a", "a")
        );
        let err = engines
            .place(None, false, None, |_| 0)
            .err()
            .expect("full")
            .to_string();
        assert!(err.contains("--engine-max"), "{err}");
        let err = engines
            .place(Some("local"), false, None, |_| 0)
            .err()
            .expect("local is 0")
            .to_string();
        assert!(err.contains("--engine-max"), "{err}");
        drop(first);
        assert_eq!(
            engines
                .place(None, false, None, |_| 0)
                .expect("room again")
                .engine
                .name,
            "a"
        );
        // Sessions running count as much as launches under way.
        drop(second);
        assert!(
            engines
                .place(None, false, None, |n| if n == "a" { 2 } else { 0 })
                .is_err()
        );
    }
}
