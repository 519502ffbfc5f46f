//! Sessions on remote podman engines, end to end: the release `mcpod serve`
//! with two remote engines and a registry, under an rmcp client, against
//! podman driven by hand with the same hardening flags, in one run.
//!
//! ```text
//! cargo bench --bench engines
//! ```
//!
//! The engines are the tests' (`scripts/engines start DIR`, DIR being
//! `$MCPOD_TEST_ENGINES_DIR` or `/var/tmp/mcpod-engines`; see
//! tests/common/engines.rs), all on this machine: `a`, a `podman system
//! service` on a unix socket; `b`, another, reached over ssh to 127.0.0.1;
//! and a plain-HTTP registry. mcpod runs as `mcpod serve --engine a=unix://…
//! --engine b=ssh://… --engine-key b=KEY --registry REGISTRY/mcpod-bench`.
//! It measures
//!
//! 1. a warm launch to "tools listed" (`launch_session` of the hello image +
//!    `tools/list`) on `local`, `a` and `b`, N=10 each after a warm-up,
//!    interleaved with the baseline on the same engine: a bare `podman run -i
//!    --rm` (`podman --url A run -i`, `podman --url B --identity KEY run -i`)
//!    of the same image (on a remote engine: the supervised image mcpod runs
//!    there) running `/bin/hello-server` itself, + `initialize` +
//!    `tools/list`, with the hardening flags mcpod used on that engine
//!    (podman's `CreateCommand` of the warm-up session minus what only an
//!    owned session needs: its name, `io.mcpod.*` labels, cidfile, the
//!    supervisor's mount and entrypoint, the stream's `--preserve-fds` or
//!    `--interactive`). Stopping is timed separately. Then one more launch
//!    per engine is traced: the programs mcpod ran for it (children of the
//!    serve process, sampled from /proc every 2 ms) and its progress messages.
//! 2. the first launch of an image an engine lacks: a fresh image (hello plus
//!    a unique label, so its ID is new; its layers are hello's, which the
//!    registry and the engines already hold, so only a config and a manifest
//!    travel), launched on `a` (build the supervised image here, push it once,
//!    the engine pulls it by digest), then on `b` (pull only: the push is not
//!    repeated); with `--bench` also a fresh image with a 7 MB layer of its
//!    own (hello's binary with a unique tail, copied over it), whose layer
//!    does travel. Its phases come from the launch's progress messages and
//!    the traced programs. Against it, interleaved: a rebuild on `a`
//!    (`podman --url A build --no-cache` of examples/hello with a unique
//!    label) + the same bare run + handshake.
//!
//! It prints tables and ratios; the issue sets no targets. Everything it made
//! is removed on every path, panics included: mcpod's sessions (by owner pid,
//! on every engine), the baseline's containers (by the `io.mcpod.bench`
//! label), the fresh images here and their supervised images here and on
//! both engines, and the rebuilt images on `a`. The registry keeps what was
//! pushed to `REGISTRY/mcpod-bench` (as the tests' pushes stay). Without
//! `--bench` (as under `cargo test --benches`) it runs a tiny smoke version.
//! `MCPOD_BENCH_BIN` runs another mcpod binary.

#[path = "support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use support::{
    Error, MCPOD, call, connect, list_or_none, median, ms, pct, shell_words, structured,
};

type Client = RunningService<RoleClient, Recorder>;

const IMAGE_NAME: &str = "localhost/mcpod-hello";
/// Baseline containers carry this label (value: the bench's pid); fresh and
/// rebuilt images carry `io.mcpod.bench-image=<pid>-<nonce>`.
const BENCH_LABEL: &str = "io.mcpod.bench";
const OWNER_PID_LABEL: &str = "io.mcpod.owner-pid";
/// The registry namespace mcpod pushes to.
const NAMESPACE: &str = "mcpod-bench";
/// No launch or handshake may take longer.
const PATIENCE: Duration = Duration::from_secs(300);

struct Plan {
    rounds: usize,
    fresh: usize,
    own_layer: bool,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            rounds: 10,
            fresh: 5,
            own_layer: true,
        }
    } else {
        Plan {
            rounds: 1,
            fresh: 1,
            own_layer: false,
        }
    };
    let cleanup = Cleanup::default();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::from)
        .and_then(|rt| rt.block_on(run(&plan, &cleanup)));
    drop(cleanup);
    if let Err(e) = result {
        eprintln!("engines bench failed: {e}");
        std::process::exit(1);
    }
}

/// The tests' engines, from `scripts/engines start DIR` and its `DIR/env`.
struct TestEngines {
    a: String,
    b_ssh: String,
    b_local: String,
    key: PathBuf,
    registry: String,
}

fn test_engines() -> Result<TestEngines, Error> {
    let dir = PathBuf::from(
        std::env::var_os("MCPOD_TEST_ENGINES_DIR")
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/var/tmp/mcpod-engines".into()),
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/engines");
    let out = Command::new(&script)
        .arg("start")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{} start {} failed ({}):\n{}",
            script.display(),
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = std::fs::read_to_string(dir.join("env"))?;
    let vars: HashMap<&str, &str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let var = |key: &str| -> Result<String, Error> {
        Ok(vars
            .get(key)
            .ok_or_else(|| format!("{}/env has no {key}", dir.display()))?
            .to_string())
    };
    Ok(TestEngines {
        a: var("MCPOD_TEST_ENGINE_A")?,
        b_ssh: var("MCPOD_TEST_ENGINE_B")?,
        b_local: var("MCPOD_TEST_ENGINE_B_LOCAL")?,
        key: PathBuf::from(var("MCPOD_TEST_SSH_KEY")?),
        registry: var("MCPOD_TEST_REGISTRY")?,
    })
}

/// An engine as the bench reaches it: `url` and `key` are what mcpod and the
/// baseline use; `admin` is how the bench inspects and cleans it (engine b
/// by its unix socket, so cleanup never needs ssh).
struct Engine {
    name: &'static str,
    url: Option<String>,
    key: Option<PathBuf>,
    admin: Option<String>,
}

impl Engine {
    fn client_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(url) = &self.url {
            a.extend(["--url".to_string(), url.clone()]);
        }
        if let Some(key) = &self.key {
            a.extend(["--identity".to_string(), key.display().to_string()]);
        }
        a
    }
}

fn admin_podman(admin: Option<&str>) -> Command {
    let mut c = Command::new("podman");
    if let Some(url) = admin {
        c.args(["--url", url]);
    }
    c.stdin(Stdio::null());
    c
}

/// Everything this bench made, removed on every path (`Drop`) or on request.
#[derive(Default)]
struct Cleanup(Mutex<Owned>);

#[derive(Default)]
struct Owned {
    mcpod_pids: Vec<u32>,
    /// The engines to sweep, by admin URL (`None`: local).
    engines: Vec<Option<String>>,
    /// buildah working containers.
    working: Vec<String>,
    /// Fresh image tags here; their supervised images go with them.
    fresh: Vec<String>,
    /// Images on an engine (admin URL, `None`: local), by tag or ID.
    images: Vec<(Option<String>, String)>,
}

impl Cleanup {
    fn with<T>(&self, f: impl FnOnce(&mut Owned) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Containers (any state) this bench caused, on every engine.
    fn leftovers(&self) -> Vec<(Option<String>, String)> {
        let (engines, pids) = self.with(|o| (o.engines.clone(), o.mcpod_pids.clone()));
        let mut filters = vec![format!("label={BENCH_LABEL}={}", std::process::id())];
        filters.extend(
            pids.iter()
                .map(|pid| format!("label={OWNER_PID_LABEL}={pid}")),
        );
        let mut left = Vec::new();
        for engine in &engines {
            for filter in &filters {
                let out = admin_podman(engine.as_deref())
                    .args(["ps", "--all", "--format", "{{.Names}}", "--filter", filter])
                    .output();
                for name in out.iter().flat_map(|o| lines(&o.stdout)) {
                    left.push((engine.clone(), name));
                }
            }
        }
        left
    }

    fn remove_containers(&self) {
        for (engine, name) in self.leftovers() {
            eprintln!(
                "cleanup: removing container {name} on {}",
                engine.as_deref().unwrap_or("local")
            );
            let _ = admin_podman(engine.as_deref())
                .args(["rm", "--force", "--ignore", "--time", "0", "--", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Remove every image (and working container) this bench made; what is
    /// still there after, as `engine: reference`.
    fn remove_images(&self) -> Vec<String> {
        let (working, fresh, mut images, engines) = self.with(|o| {
            (
                std::mem::take(&mut o.working),
                std::mem::take(&mut o.fresh),
                std::mem::take(&mut o.images),
                o.engines.clone(),
            )
        });
        for name in &working {
            let _ = Command::new("buildah")
                .args(["rm", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // A fresh image's supervised image (by its tag here, by ID on every
        // engine: pulled by digest, it has the same ID there), before it.
        for tag in &fresh {
            let Some(id) = image_id(None, tag) else {
                continue;
            };
            let supervised = mcpod::image::supervised::tag_for(&id);
            if let Some(sid) = image_id(None, &supervised) {
                for engine in &engines {
                    images.push((engine.clone(), sid.clone()));
                }
            }
        }
        images.extend(fresh.iter().map(|t| (None, t.clone())));
        let mut left = Vec::new();
        let mut done = HashSet::new();
        for (engine, reference) in &images {
            if !done.insert((engine.clone(), reference.clone())) {
                continue;
            }
            let where_ = engine.as_deref().unwrap_or("local");
            if image_id(engine.as_deref(), reference).is_none() {
                continue;
            }
            let out = admin_podman(engine.as_deref())
                .args(["rmi", "--force", "--", reference])
                .output();
            if image_id(engine.as_deref(), reference).is_some() {
                left.push(format!(
                    "{where_}: {reference} ({})",
                    out.map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
                        .unwrap_or_default()
                ));
            }
        }
        left
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.remove_containers();
        for pid in self.with(|o| o.mcpod_pids.clone()) {
            if Path::new(&format!("/proc/{pid}")).exists() {
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
        }
        for left in self.remove_images() {
            eprintln!("cleanup: could not remove image {left}");
        }
    }
}

/// The ID of `reference` on an engine, if it has it.
fn image_id(engine: Option<&str>, reference: &str) -> Option<String> {
    let out = admin_podman(engine)
        .args(["image", "inspect", "--format", "{{.Id}}", "--", reference])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !id.is_empty()).then_some(id)
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// An rmcp client that keeps every progress notification's message, with
/// its arrival. (rmcp puts a progress token of its own on every request, so
/// a launch's messages are those that arrive while it runs: launches here
/// run one at a time, and mcpod sends a request's progress before its answer.)
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Instant, String)>>>);

impl ClientHandler for Recorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((Instant::now(), params.message.unwrap_or_default()));
    }
}

async fn run(plan: &Plan, cleanup: &Cleanup) -> Result<(), Error> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hello_bin = repo.join("examples/hello/bin/hello-server");
    if !hello_bin.is_file() {
        return Err("examples/hello/bin/hello-server is missing: run scripts/build-hello".into());
    }
    let te = test_engines()?;
    cleanup.with(|o| o.engines = vec![None, Some(te.a.clone()), Some(te.b_local.clone())]);
    let engines = [
        Engine {
            name: "local",
            url: None,
            key: None,
            admin: None,
        },
        Engine {
            name: "a",
            url: Some(te.a.clone()),
            key: None,
            admin: Some(te.a.clone()),
        },
        Engine {
            name: "b",
            url: Some(te.b_ssh.clone()),
            key: Some(te.key.clone()),
            admin: Some(te.b_local.clone()),
        },
    ];
    let names = Names::new(&te);

    let serve_args = vec![
        format!("--engine=a={}", te.a),
        format!("--engine=b={}", te.b_ssh),
        format!("--engine-key=b={}", te.key.display()),
        format!("--registry={}/{NAMESPACE}", te.registry),
    ];
    let recorder = Recorder::default();
    let (mcpod, pid) = serve(repo, &serve_args, recorder.clone(), cleanup).await?;
    let built = structured(
        &call(
            &mcpod,
            "build_image",
            json!({"name": IMAGE_NAME, "context": "examples/hello"}),
        )
        .await?,
    )?;
    let image = built["tag"]
        .as_str()
        .ok_or("build_image returned no tag")?
        .to_string();

    println!(
        "mcpod engines bench: {} cores (shared with other work: numbers are noisy), load avg {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_avg()
    );
    for e in &engines {
        println!(
            "   engine {:<5} {} (podman {})",
            e.name,
            e.url.as_deref().unwrap_or("this host's podman"),
            engine_version(e)
        );
    }
    println!(
        "   registry {}/{NAMESPACE}; mcpod serve pid {pid} ({}); image {image} ({})",
        te.registry,
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release"
        },
        if built["cache_hit"] == true {
            "cache hit"
        } else {
            "built"
        }
    );

    // Warm-up on each engine: on a remote one the first launch may pull the
    // supervised hello image (not timed). The session tells us the flags.
    let mut flags = Vec::new();
    let mut bare_image = Vec::new();
    for e in &engines {
        let t = Instant::now();
        let l = launch(&mcpod, &recorder, &image, e.name).await?;
        let first = t.elapsed();
        let create = create_command(e.admin.as_deref(), &l.container)?;
        stop(&mcpod, &l.session).await?;
        let (kept, _) = support::hardening_flags(&create, &["--interactive", "-i"]);
        println!(
            "   warm-up on {} (a remote engine may pull here): {:.0} ms; mcpod ran: {}",
            e.name,
            ms(first),
            names.short(&create, 0)
        );
        // Locally the hello image itself; elsewhere the image mcpod ran there.
        bare_image.push(if e.url.is_some() {
            l.image_id.clone()
        } else {
            image.clone()
        });
        flags.push(kept);
    }
    println!(
        "   baseline: podman [--url URL [--identity KEY]] run -i {} IMAGE /bin/hello-server",
        shell_words(&flags[1])
    );
    if flags[0] != flags[1] {
        println!(
            "   (locally: {}; a remote engine's podman 4.3 gets --user=65534:65534 where this host's gets a uid map)",
            shell_words(&flags[0])
        );
    }
    for (k, e) in engines.iter().enumerate() {
        bare(e, &flags[k], &bare_image[k], &format!("warm-{}", e.name)).await?;
    }

    // 1. Warm launches, interleaved per engine with the baseline (which goes
    // first alternates by round).
    let n = engines.len();
    let (mut m_ready, mut m_answer, mut m_stop) =
        (vec![vec![]; n], vec![vec![]; n], vec![vec![]; n]);
    let (mut b_ready, mut b_stop) = (vec![vec![]; n], vec![vec![]; n]);
    for i in 0..plan.rounds {
        for (k, e) in engines.iter().enumerate() {
            for mcpod_turn in [i % 2 == 0, i % 2 == 1] {
                if mcpod_turn {
                    let l = launch(&mcpod, &recorder, &image, e.name).await?;
                    m_ready[k].push(l.listed);
                    m_answer[k].push(l.answered);
                    let t = Instant::now();
                    stop(&mcpod, &l.session).await?;
                    m_stop[k].push(t.elapsed());
                } else {
                    let (ready, down) =
                        bare(e, &flags[k], &bare_image[k], &format!("{}-{i}", e.name)).await?;
                    b_ready[k].push(ready);
                    b_stop[k].push(down);
                }
            }
        }
    }
    for v in [
        &mut m_ready,
        &mut m_answer,
        &mut m_stop,
        &mut b_ready,
        &mut b_stop,
    ] {
        v.iter_mut().for_each(|s| s.sort());
    }
    println!();
    println!(
        "1. warm launch -> tools listed (N={} each, interleaved)               median      p90      min      max",
        plan.rounds
    );
    for (k, e) in engines.iter().enumerate() {
        let via = match e.name {
            "local" => "podman run -i".to_string(),
            "a" => "podman --url $A run -i".to_string(),
            _ => "podman --url $B --identity $KEY run -i".to_string(),
        };
        row(
            &format!("   {:<5} mcpod launch_session + tools/list", e.name),
            &m_ready[k],
        );
        row("           of which launch_session answered", &m_answer[k]);
        row(
            &format!("   {:<5} bare {via} + init + list", e.name),
            &b_ready[k],
        );
    }
    for (k, e) in engines.iter().enumerate() {
        row(
            &format!("   stop on {}: mcpod stop_session", e.name),
            &m_stop[k],
        );
        row(
            &format!("   stop on {}: bare stdin EOF -> podman exits", e.name),
            &b_stop[k],
        );
    }
    let ratio = |x: &[Duration], y: &[Duration]| median(x).as_secs_f64() / median(y).as_secs_f64();
    println!("   ratios of medians (launch -> tools listed):");
    for (k, e) in engines.iter().enumerate().skip(1) {
        println!(
            "     mcpod-on-{0} / bare-on-{0}: {1:.2}x   mcpod-on-{0} / mcpod-local: {2:.2}x   bare-on-{0} / bare-local: {3:.2}x   mcpod-on-{0} - bare-on-{0}: {4:+.0} ms",
            e.name,
            ratio(&m_ready[k], &b_ready[k]),
            ratio(&m_ready[k], &m_ready[0]),
            ratio(&b_ready[k], &b_ready[0]),
            ms(median(&m_ready[k])) - ms(median(&b_ready[k]))
        );
    }
    println!(
        "     (mcpod-local / bare-local: {:.2}x)",
        ratio(&m_ready[0], &b_ready[0])
    );
    println!("   target: none set");

    // Where a warm launch's time goes: one more, traced, per engine.
    println!();
    println!(
        "   one traced warm launch per engine: mcpod's progress (\"> ...\") and the programs it ran (start +ms, ran ms)"
    );
    for e in &engines {
        let tracer = Tracer::start(pid);
        let l = launch(&mcpod, &recorder, &image, e.name).await?;
        let procs = tracer.stop();
        println!(
            "   on {}: answered {:.0} ms, tools listed {:.0} ms",
            e.name,
            ms(l.answered),
            ms(l.listed)
        );
        print_timeline(&l, &procs, &names);
        stop(&mcpod, &l.session).await?;
    }

    // 2. First launches of images the engines lack, against a rebuild on a.
    let kinds: &[Kind] = if plan.own_layer {
        &[Kind::Label, Kind::Layer]
    } else {
        &[Kind::Label]
    };
    let mut firsts: Vec<(Vec<Phases>, Vec<Phases>)> =
        kinds.iter().map(|_| (vec![], vec![])).collect();
    let (mut r_build, mut r_run, mut r_total) = (vec![], vec![], vec![]);
    let scratch = tempfile::tempdir()?;
    for j in 0..plan.fresh {
        for (k, kind) in kinds.iter().enumerate() {
            let fresh = fresh_image(*kind, &image, &hello_bin, scratch.path(), cleanup).await?;
            let mut sessions = Vec::new();
            let (on_a, on_b) = &mut firsts[k];
            for (engine, out) in [("a", on_a), ("b", on_b)] {
                let tracer = Tracer::start(pid);
                let l = launch(&mcpod, &recorder, &fresh, engine).await;
                let procs = tracer.stop();
                let l = l?;
                // Its supervised image, on the engine that ran it.
                let admin = if engine == "a" { &te.a } else { &te.b_local };
                cleanup.with(|o| o.images.push((Some(admin.clone()), l.image_id.clone())));
                if j == 0 && (engine == "a" || k == 0) {
                    println!();
                    println!(
                        "   first launch of fresh image {} ({}) on {engine}: answered {:.0} ms, tools listed {:.0} ms",
                        fresh,
                        kind.describe(),
                        ms(l.answered),
                        ms(l.listed)
                    );
                    print_timeline(&l, &procs, &names);
                }
                out.push(Phases::of(&l, &procs));
                sessions.push(l.session);
            }
            for s in &sessions {
                stop(&mcpod, s).await?;
            }
        }
        // The rebuild there: a fresh build of examples/hello (no cache, a
        // label of its own so no layer matches), then the bare run.
        let tag = format!(
            "localhost/mcpod-bench-rebuild-{}-{}:1",
            std::process::id(),
            mcpod::engine::nonce()
        );
        cleanup.with(|o| o.images.push((Some(te.a.clone()), tag.clone())));
        let t = Instant::now();
        let built = rebuild(&engines[1], repo, &tag).await?;
        let build = t.elapsed();
        // The intermediate images podman build kept (--layers) are ours too.
        for parent in parents(&te.a, &built) {
            cleanup.with(|o| o.images.push((Some(te.a.clone()), parent)));
        }
        let (ready, _) = bare(&engines[1], &flags[1], &tag, &format!("rebuilt-{j}")).await?;
        r_build.push(build);
        r_run.push(ready);
        r_total.push(build + ready);
    }
    r_build.sort();
    r_run.sort();
    r_total.sort();
    println!();
    println!(
        "2. first launch of an image the engine lacks (N={} fresh images each)  median      p90      min      max",
        plan.fresh
    );
    for (k, kind) in kinds.iter().enumerate() {
        println!("   {}:", kind.describe());
        let (on_a, on_b) = &firsts[k];
        Phases::rows(
            "mcpod first launch on a (build here, push, pull by digest)",
            on_a,
            "a",
        );
        Phases::rows(
            "then on b, over ssh (registry has it: pull only)",
            on_b,
            "b",
        );
    }
    row(
        "   rebuild on a: podman --url $A build --no-cache + bare run -> listed",
        &r_total,
    );
    row(
        "      podman --url $A build --no-cache examples/hello",
        &r_build,
    );
    row("      bare podman --url $A run -i + init + list", &r_run);
    for (k, kind) in kinds.iter().enumerate() {
        let mut a: Vec<Duration> = firsts[k].0.iter().map(|p| p.listed).collect();
        a.sort();
        println!(
            "   ratio of medians, mcpod first launch on a / rebuild on a ({}): {:.2}x",
            kind.short(),
            ratio(&a, &r_total)
        );
    }
    println!("   target: none set");

    // mcpod's exit ends its sessions on every engine; then nothing may be left.
    let left_running: Vec<String> = cleanup
        .leftovers()
        .into_iter()
        .map(|(e, c)| format!("{}: {c}", e.as_deref().unwrap_or("local")))
        .collect();
    let t = Instant::now();
    let _ = mcpod.cancel().await;
    let exit = t.elapsed();
    let left_after_exit: Vec<String> = cleanup
        .leftovers()
        .into_iter()
        .map(|(e, c)| format!("{}: {c}", e.as_deref().unwrap_or("local")))
        .collect();
    let images_left = cleanup.remove_images();
    println!();
    println!(
        "3. cleanup: mcpod exit on EOF {:.0} ms; containers left after stop_session: {}; after mcpod's exit: {}; images of this run left: {}",
        ms(exit),
        list_or_none(&left_running),
        list_or_none(&left_after_exit),
        list_or_none(&images_left)
    );
    if !left_running.is_empty() || !left_after_exit.is_empty() || !images_left.is_empty() {
        return Err("containers or images were left behind".into());
    }
    Ok(())
}

/// What a fresh image has that no engine has yet.
#[derive(Clone, Copy)]
enum Kind {
    /// hello + a unique label: a new config, hello's layers.
    Label,
    /// hello + a copy of its binary with a unique tail: a 7 MB layer of its own.
    Layer,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Label => {
                "hello + a unique label (a new image ID; its layers are already in the registry and on the engines)"
            }
            Kind::Layer => {
                "hello + its 7 MB binary with a unique tail on top (a new layer travels)"
            }
        }
    }

    fn short(self) -> &'static str {
        match self {
            Kind::Label => "new label",
            Kind::Layer => "new layer",
        }
    }
}

/// A new image here, FROM `base`, owned by `cleanup`: its tag.
async fn fresh_image(
    kind: Kind,
    base: &str,
    hello_bin: &Path,
    scratch: &Path,
    cleanup: &Cleanup,
) -> Result<String, Error> {
    let nonce = format!("{}-{}", std::process::id(), mcpod::engine::nonce());
    let working = format!("mcpod-bench-fresh-{nonce}");
    let tag = format!("localhost/mcpod-bench-fresh-{nonce}:1");
    cleanup.with(|o| {
        o.working.push(working.clone());
        o.fresh.push(tag.clone());
    });
    let label = format!("{BENCH_LABEL}-image={nonce}");
    run_out(
        "buildah",
        &["from", "--pull=never", "--quiet", "--name", &working, base],
    )
    .await?;
    run_out("buildah", &["config", "--label", &label, &working]).await?;
    if let Kind::Layer = kind {
        let mut bytes = std::fs::read(hello_bin)?;
        bytes.extend_from_slice(format!("\nmcpod-bench {nonce}\n").as_bytes());
        let file = scratch.join(format!("hello-server-{nonce}"));
        std::fs::write(&file, bytes)?;
        let file = file.display().to_string();
        run_out(
            "buildah",
            &[
                "copy",
                "--quiet",
                "--chmod",
                "0755",
                &working,
                &file,
                "/bin/hello-server",
            ],
        )
        .await?;
    }
    run_out("buildah", &["commit", "--rm", "--quiet", &working, &tag]).await?;
    Ok(tag)
}

/// `podman --url A build --no-cache` of examples/hello as `tag`: its ID.
async fn rebuild(engine: &Engine, repo: &Path, tag: &str) -> Result<String, Error> {
    let label = format!(
        "{BENCH_LABEL}-image={}-{}",
        std::process::id(),
        mcpod::engine::nonce()
    );
    let context = repo.join("examples/hello").display().to_string();
    let mut args = engine.client_args();
    args.extend(
        [
            "build",
            "--no-cache",
            "--quiet",
            "--label",
            &label,
            "--tag",
            tag,
            &context,
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_out("podman", &args).await?;
    Ok(out.lines().last().unwrap_or_default().trim().to_string())
}

/// The parent chain of image `id` on the engine at `admin` (podman build
/// keeps an image per step).
fn parents(admin: &str, id: &str) -> Vec<String> {
    let mut chain = Vec::new();
    let mut current = id.to_string();
    while chain.len() < 10 {
        let out = admin_podman(Some(admin))
            .args([
                "image",
                "inspect",
                "--format",
                "{{.Parent}}",
                "--",
                &current,
            ])
            .output();
        let parent = out
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if parent.is_empty() {
            break;
        }
        chain.push(parent.clone());
        current = parent;
    }
    chain
}

async fn run_out(program: &str, args: &[&str]) -> Result<String, Error> {
    let out = tokio::time::timeout(
        PATIENCE,
        tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| format!("{program} {args:?} took over {PATIENCE:?}"))??;
    if !out.status.success() {
        return Err(format!(
            "{program} {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Start `mcpod serve --root REPO EXTRA...` under an rmcp client that
/// records progress: the client and its pid (registered for cleanup).
async fn serve(
    repo: &Path,
    extra: &[String],
    recorder: Recorder,
    cleanup: &Cleanup,
) -> Result<(Client, u32), Error> {
    let binary = std::env::var("MCPOD_BENCH_BIN").unwrap_or_else(|_| MCPOD.to_string());
    let mut command = tokio::process::Command::new(&binary);
    command
        .arg("serve")
        .arg("--root")
        .arg(repo)
        .args(extra)
        .env("MCPOD_LOG", "warn");
    let transport = TokioChildProcess::new(command)?;
    let pid = transport.id().ok_or("mcpod serve has no pid")?;
    cleanup.with(|o| o.mcpod_pids.push(pid));
    let client = recorder.serve(transport).await?;
    Ok((client, pid))
}

/// A launch through mcpod, timed from the request.
struct Launched {
    session: String,
    container: String,
    image_id: String,
    start: Instant,
    answered: Duration,
    listed: Duration,
    /// Progress messages, by arrival since `start`.
    progress: Vec<(Duration, String)>,
}

/// `launch_session` of `image` on `engine`, then `tools/list`, which must
/// show the session's `hello__add`.
async fn launch(
    client: &Client,
    recorder: &Recorder,
    image: &str,
    engine: &str,
) -> Result<Launched, Error> {
    let Value::Object(arguments) = json!({"image": image, "engine": engine}) else {
        unreachable!()
    };
    let params = CallToolRequestParams::new("launch_session").with_arguments(arguments);
    recorder.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let start = Instant::now();
    let result = tokio::time::timeout(PATIENCE, client.call_tool(params))
        .await
        .map_err(|_| format!("launch_session on {engine} took over {PATIENCE:?}"))??;
    let answered = start.elapsed();
    if result.is_error == Some(true) {
        return Err(format!("launch_session on {engine} failed: {:?}", result.content).into());
    }
    let info = structured(&result)?;
    let session = info["session"].as_str().ok_or("no session id")?.to_string();
    if info["servers"]["hello"]["status"] != "ready" || info["engine"] != engine {
        return Err(format!("launch on {engine}: {info}").into());
    }
    let tools = client.list_all_tools().await?;
    let listed = start.elapsed();
    let want = format!("{session}_hello__add");
    if !tools.iter().any(|t| t.name == want) {
        return Err(format!("tools/list after the launch on {engine} lacks {want}").into());
    }
    // Its container and image are in the session's detail (after the timing).
    let detail = call(client, "list_sessions", json!({"session": session})).await?;
    let info = structured(&detail)?["detail"].clone();
    let progress = {
        let mut all = recorder.0.lock().unwrap_or_else(|p| p.into_inner());
        all.drain(..)
            .map(|(at, m)| (at.saturating_duration_since(start), m))
            .collect()
    };
    Ok(Launched {
        session,
        container: info["container"]
            .as_str()
            .ok_or("no container")?
            .to_string(),
        image_id: info["image_id"].as_str().ok_or("no image_id")?.to_string(),
        start,
        answered,
        listed,
        progress,
    })
}

async fn stop(client: &Client, session: &str) -> Result<(), Error> {
    let stopped = structured(&call(client, "stop_session", json!({"session": session})).await?)?;
    if stopped["stopped"] != true {
        return Err(format!("stop_session {session}: {stopped}").into());
    }
    Ok(())
}

/// A first launch split into phases, from its progress messages and the
/// programs mcpod ran for it.
struct Phases {
    listed: Duration,
    /// Until "making … ready" (the image resolved, the engine chosen).
    resolve: Option<Duration>,
    /// "making … ready" to "starting container".
    ship: Option<Duration>,
    /// buildah runs (the supervised image built here), first start to last end.
    supervise: Duration,
    push: Duration,
    pull: Duration,
    /// The rest of the ship step: mcpod's checks (podman image inspect here,
    /// image exists on the engine).
    checks: Option<Duration>,
    pushes: usize,
    pulls: usize,
    /// "starting container" to the launch's answer.
    start: Option<Duration>,
    list: Duration,
}

impl Phases {
    fn of(l: &Launched, procs: &[Spawned]) -> Phases {
        let at = |prefix: &str| {
            l.progress
                .iter()
                .find(|(_, m)| m.starts_with(prefix))
                .map(|(d, _)| *d)
        };
        let ready = at("making ");
        let starting = at("starting container");
        let span = |pick: &dyn Fn(&Spawned) -> bool| {
            let chosen: Vec<&Spawned> = procs.iter().filter(|p| pick(p)).collect();
            let first = chosen.iter().map(|p| p.start).min();
            let last = chosen.iter().map(|p| p.end).max();
            let span = match (first, last) {
                (Some(f), Some(l)) => l.saturating_duration_since(f),
                _ => Duration::ZERO,
            };
            (span, chosen.len())
        };
        let (supervise, _) = span(&|p| p.argv.first().is_some_and(|a| a.ends_with("buildah")));
        let (push, pushes) = span(&|p| p.has("push"));
        let (pull, pulls) = span(&|p| p.has("pull"));
        let ship = ready.zip(starting).map(|(r, s)| s.saturating_sub(r));
        Phases {
            listed: l.listed,
            resolve: ready,
            ship,
            supervise,
            push,
            pull,
            checks: ship.map(|s| s.saturating_sub(supervise + push + pull)),
            pushes,
            pulls,
            start: starting.map(|s| l.answered.saturating_sub(s)),
            list: l.listed - l.answered,
        }
    }

    fn rows(title: &str, all: &[Phases], engine: &str) {
        let col = |f: &dyn Fn(&Phases) -> Option<Duration>| {
            let mut v: Vec<Duration> = all.iter().filter_map(f).collect();
            v.sort();
            v
        };
        row(&format!("     {title}"), &col(&|p| Some(p.listed)));
        let pull = format!(
            "  in it: podman --url ${} pull by digest",
            engine.to_uppercase()
        );
        let parts = [
            (
                "until \"making ready\" (resolve, place)",
                col(&|p| p.resolve),
            ),
            (
                "\"making ready\" -> \"starting container\"",
                col(&|p| p.ship),
            ),
            (
                "  in it: supervised image built here (buildah)",
                col(&|p| Some(p.supervise)),
            ),
            (
                "  in it: podman push to the registry",
                col(&|p| Some(p.push)),
            ),
            (pull.as_str(), col(&|p| Some(p.pull))),
            (
                "  in it: the rest (mcpod's podman inspect/exists checks)",
                col(&|p| p.checks),
            ),
            (
                "\"starting container\" -> answered (run, handshake)",
                col(&|p| p.start),
            ),
            ("tools/list", col(&|p| Some(p.list))),
        ];
        for (what, v) in &parts {
            // A step none of these launches took (no build or push on b).
            if v.iter().any(|d| !d.is_zero()) {
                row(&format!("       {what}"), v);
            }
        }
        println!(
            "       podman push runs: {}, pull runs: {} (over {} launches)",
            all.iter().map(|p| p.pushes).sum::<usize>(),
            all.iter().map(|p| p.pulls).sum::<usize>(),
            all.len()
        );
    }
}

/// One bare baseline: `podman [--url …] run -i FLAGS IMAGE /bin/hello-server`,
/// `initialize` + `tools/list`; then stdin EOF until podman exits.
async fn bare(
    engine: &Engine,
    flags: &[String],
    image: &str,
    what: &str,
) -> Result<(Duration, Duration), Error> {
    let bench = std::process::id();
    let mut command = tokio::process::Command::new("podman");
    command
        .args(engine.client_args())
        .args(["run", "-i"])
        .args(flags)
        .arg(format!("--name=mcpod-bench-{bench}-{what}"))
        .arg(format!("--label={BENCH_LABEL}={bench}"))
        .arg(image)
        .arg("/bin/hello-server");
    let t = Instant::now();
    let client = tokio::time::timeout(PATIENCE, connect(command))
        .await
        .map_err(|_| format!("bare run on {} took over {PATIENCE:?}", engine.name))??;
    let tools = client.list_all_tools().await?;
    if !tools.iter().any(|t| t.name == "add") {
        return Err("the baseline's tools/list lacks add".into());
    }
    let ready = t.elapsed();
    let t = Instant::now();
    client.cancel().await?;
    Ok((ready, t.elapsed()))
}

/// The `podman … run` argv mcpod used for `container` (podman keeps it).
fn create_command(admin: Option<&str>, container: &str) -> Result<Vec<String>, Error> {
    let out = admin_podman(admin)
        .args([
            "inspect",
            "--format",
            "{{json .Config.CreateCommand}}",
            "--",
            container,
        ])
        .output()?;
    let argv: Vec<String> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("podman inspect {container}: {e}"))?;
    if !argv.iter().any(|a| a == "run") || argv.len() < 4 {
        return Err(format!("unexpected create command of {container}: {argv:?}").into());
    }
    Ok(argv)
}

/// A program mcpod ran, as seen in /proc.
struct Spawned {
    argv: Vec<String>,
    comm: String,
    start: Instant,
    /// Last seen running (its end is within one sample after).
    end: Instant,
    /// Still running when the trace stopped.
    running: bool,
}

impl Spawned {
    fn has(&self, word: &str) -> bool {
        self.argv.iter().any(|a| a == word)
    }
}

/// Samples the children of a process from /proc every 2 ms: which programs
/// it ran, when, for how long (a program shorter than a sample may be missed).
struct Tracer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Spawned>>,
}

const SAMPLE: Duration = Duration::from_millis(2);

impl Tracer {
    fn start(parent: u32) -> Tracer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            // Processes running now (a running session's podman) are not new.
            let mut seen: HashSet<u32> = pids().collect();
            let _ = ready_tx.send(());
            let mut live: HashMap<u32, usize> = HashMap::new();
            let mut out: Vec<Spawned> = Vec::new();
            loop {
                let done = flag.load(Ordering::Relaxed);
                let now = Instant::now();
                for pid in pids() {
                    if seen.insert(pid)
                        && let Some((ppid, comm, _)) = stat(pid)
                        && ppid == parent
                    {
                        live.insert(pid, out.len());
                        out.push(Spawned {
                            argv: cmdline(pid),
                            comm,
                            start: now,
                            end: now,
                            running: true,
                        });
                    }
                }
                live.retain(|pid, i| match stat(*pid) {
                    Some((_, comm, state)) if state != 'Z' => {
                        let p = &mut out[*i];
                        p.end = now;
                        // Seen between fork and exec: read it again once it is the program.
                        if comm != p.comm || p.argv.is_empty() {
                            p.argv = cmdline(*pid);
                            p.comm = comm;
                        }
                        true
                    }
                    _ => {
                        out[*i].running = false;
                        false
                    }
                });
                if done {
                    return out;
                }
                std::thread::sleep(SAMPLE);
            }
        });
        let _ = ready_rx.recv();
        Tracer { stop, thread }
    }

    fn stop(self) -> Vec<Spawned> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

/// (ppid, comm, state) of a process.
fn stat(pid: u32) -> Option<(u32, String, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (open, close) = (s.find('(')?, s.rfind(')')?);
    let mut fields = s[close + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, s[open + 1..close].to_string(), state))
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Long words of the engines' setup, shortened for the timeline.
struct Names(Vec<(String, &'static str)>);

impl Names {
    fn new(te: &TestEngines) -> Names {
        Names(vec![
            (te.a.clone(), "$A"),
            (te.b_ssh.clone(), "$B"),
            (te.key.display().to_string(), "$KEY"),
            (format!("{}/{NAMESPACE}", te.registry), "$REG"),
        ])
    }

    /// `argv` with the engines' URLs, key and registry named, a `run`'s
    /// flags elided, long words cut; at most `width` characters (0: any).
    fn short(&self, argv: &[String], width: usize) -> String {
        let word = |a: &String| {
            let mut a = a.clone();
            for (long, short) in &self.0 {
                a = a.replace(long.as_str(), short);
            }
            if a.len() > 48 && !a.starts_with("--label=") {
                format!("{}…", cut(&a, 47))
            } else {
                a
            }
        };
        let mut words: Vec<String> = argv.iter().map(word).collect();
        if width > 0
            && let Some(run) = words.iter().position(|a| a == "run")
            && words.len() > run + 2
        {
            let last = words[words.len() - 1].clone();
            words.truncate(run + 1);
            words.extend(["[flags]".to_string(), last]);
        }
        if let Some(w) = words.first_mut() {
            *w = w.rsplit('/').next().unwrap_or(w).to_string();
        }
        let text = words.join(" ");
        if width > 0 && text.len() > width {
            format!("{}…", cut(&text, width - 1))
        } else {
            text
        }
    }
}

/// The first `n` characters of `s`.
fn cut(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

fn print_timeline(l: &Launched, procs: &[Spawned], names: &Names) {
    let mut events: Vec<(Duration, String)> = l
        .progress
        .iter()
        .map(|(at, m)| (*at, format!("> {m}")))
        .collect();
    for p in procs {
        let at = p.start.saturating_duration_since(l.start);
        let ran = if p.running {
            "running".to_string()
        } else {
            format!(
                "{:>4.0} ms",
                ms(p.end.saturating_duration_since(p.start) + SAMPLE)
            )
        };
        events.push((at, format!("{ran:>7}  {}", names.short(&p.argv, 100))));
    }
    events.push((l.answered, "> (launch_session answered)".into()));
    events.push((l.listed, "> (tools/list answered)".into()));
    events.sort_by_key(|(at, _)| *at);
    for (at, what) in events {
        println!("     +{:>6.0} ms  {what}", ms(at));
    }
}

fn engine_version(e: &Engine) -> String {
    admin_podman(e.admin.as_deref())
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "?".into())
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn row(label: &str, sorted: &[Duration]) {
    if sorted.is_empty() {
        return;
    }
    println!(
        "{label:<72} {:>7.1} ms {:>7.1} ms {:>7.1} ms {:>7.1} ms",
        ms(median(sorted)),
        ms(pct(sorted, 90.0)),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1])
    );
}
