//! End to end: a cache hit of `mcpod build` (the real binary, timed as a whole
//! process) in a store of its own holding 0, 100 and 1,000 other images, each
//! against buildah's own layer cache on the same context in the same store and
//! run.
//!
//! ```text
//! cargo bench --bench cache_hit
//! ```
//!
//! The store is a temp dir of its own (`CONTAINERS_STORAGE_CONF` naming its
//! graphroot and runroot, the host store's driver), so the shared store is
//! untouched; the probe image is copied in with skopeo. The context
//! (`FROM localhost/mcpod-probe:1`, two COPYed files, one RUN) is built once
//! by mcpod to populate its cache; then, with the store filled to each size
//! (other images, each with a one-file layer of its own, loaded from one
//! generated docker-archive per step), it times
//! - `mcpod build --json` hits (30 runs: min / median / p90 wall);
//! - `buildah images --json --no-trunc`, the listing a hit made before (10 runs);
//! - `buildah build --layers` with every step cached (10 runs, after one warm-up);
//!
//! and prints each size's ratio and whether the targets hold (a hit under 10 ms
//! at 1,000 images, and flat from 0 to 1,000). `MCPOD_STATE_DIR` points at a
//! temp dir. The store is removed at the end, on every path. Without `--bench`
//! (as under `cargo test --benches`) it runs a tiny smoke version.

#[path = "../tests/common/store.rs"]
mod store;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use store::TempStore;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const MCPOD: &str = env!("CARGO_BIN_EXE_mcpod");
const NAME: &str = "localhost/mcpod-bench-hit";
const BASELINE_TAG: &str = "localhost/mcpod-bench-baseline:1";
const PROBE_IMAGE: &str = "localhost/mcpod-probe:1";
const TARGET_HIT_MS: f64 = 10.0;
/// How much the median hit may grow from the smallest store to the largest
/// and still count as flat (this machine's run-to-run noise).
const FLAT_MS: f64 = 2.0;

fn main() {
    if let Err(e) = run() {
        eprintln!("cache_hit bench failed: {e}");
        std::process::exit(1);
    }
}

struct Runs {
    sizes: Vec<usize>,
    hits: usize,
    listings: usize,
    baseline: usize,
}

fn run() -> BoxResult<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let runs = if full {
        Runs {
            sizes: vec![0, 100, 1000],
            hits: 30,
            listings: 10,
            baseline: 10,
        }
    } else {
        Runs {
            sizes: vec![0, 3],
            hits: 2,
            listings: 1,
            baseline: 1,
        }
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(mcpod::doctor::ensure_probe_image())
        .map_err(|e| format!("the probe image {PROBE_IMAGE}: {e} (run scripts/setup)"))?;
    let host = HostStore::ask()?;
    let store = TempStore::new(&host.driver);
    measure(&store, &host, &runs)
}

/// The store buildah uses without `CONTAINERS_STORAGE_CONF` of ours.
struct HostStore {
    graph_root: String,
    run_root: String,
    driver: String,
}

impl HostStore {
    fn ask() -> BoxResult<HostStore> {
        let out = Command::new("buildah")
            .arg("info")
            .stdin(Stdio::null())
            .output()?;
        check(&out, "buildah info")?;
        let info: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let field = |k: &str| {
            info["store"][k]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("buildah info has no store.{k}"))
        };
        Ok(HostStore {
            graph_root: field("GraphRoot")?,
            run_root: field("RunRoot")?,
            driver: field("GraphDriverName")?,
        })
    }
}

struct Row {
    size: usize,
    hit: Stats,
    listing: Stats,
    baseline: Stats,
}

fn measure(store: &TempStore, host: &HostStore, runs: &Runs) -> BoxResult<()> {
    let root = store.dir.join("bench");
    let ctx = root.join("ctx");
    let state = root.join("state");
    let (files, bytes) = write_context(&ctx)?;
    std::fs::create_dir_all(&state)?;
    let containerfile = ctx.join("Containerfile");

    let source = format!(
        "containers-storage:[{}@{}+{}]{PROBE_IMAGE}",
        host.driver, host.graph_root, host.run_root
    );
    let (out, _) = timed(
        store
            .command("skopeo")
            .args(["copy", "--quiet", &source])
            .arg(format!("containers-storage:{PROBE_IMAGE}")),
    )?;
    check(
        &out,
        "skopeo copy of the probe image into the bench's store",
    )?;

    // Populate: must be a real build.
    let (first, first_wall) = mcpod_build(store, &root, &state)?;
    if first.cache_hit {
        return Err(format!("the populating build of {} was a cache hit", first.tag).into());
    }

    let mut rows = Vec::new();
    let mut filled = 0;
    for &size in &runs.sizes {
        let load = fill(store, filled, size)?;
        filled = size;
        let mut wall = Vec::with_capacity(runs.hits);
        for i in 0..runs.hits {
            let (hit, elapsed) = mcpod_build(store, &root, &state)?;
            if !hit.cache_hit || hit.tag != first.tag {
                return Err(format!(
                    "{size} images, hit run {i}: expected a cache hit of {}, got cache_hit={} tag={}",
                    first.tag, hit.cache_hit, hit.tag
                )
                .into());
            }
            wall.push(ms(elapsed));
        }
        let mut listing = Vec::with_capacity(runs.listings);
        for _ in 0..runs.listings {
            let (out, elapsed) =
                timed(
                    store
                        .command("buildah")
                        .args(["images", "--json", "--no-trunc"]),
                )?;
            check(&out, "buildah images --json --no-trunc")?;
            listing.push(ms(elapsed));
        }
        let baseline_cmd = || {
            let mut c = store.command("buildah");
            c.args(["build", "--layers", "--force-rm", "-t", BASELINE_TAG, "-f"])
                .arg(&containerfile)
                .arg(&ctx);
            c
        };
        let (out, _) = timed(&mut baseline_cmd())?;
        check(&out, "buildah build (warm-up)")?;
        let mut baseline = Vec::with_capacity(runs.baseline);
        for _ in 0..runs.baseline {
            let (out, elapsed) = timed(&mut baseline_cmd())?;
            check(&out, "buildah build --layers")?;
            baseline.push(ms(elapsed));
        }
        if let Some(load) = load {
            eprintln!(
                "cache_hit: {size} other images (loaded in {:.1} s)",
                load.as_secs_f64()
            );
        }
        rows.push(Row {
            size,
            hit: Stats::of(&wall),
            listing: Stats::of(&listing),
            baseline: Stats::of(&baseline),
        });
    }

    println!();
    println!(
        "cache_hit: {files} files, {bytes} B context; {}; a store of its own ({} driver); {} cores",
        first.tag,
        store.driver,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "populate (mcpod build, cache miss): {:.0} ms wall",
        ms(first_wall)
    );
    println!();
    println!(
        "{:>14} {:>28} {:>16} {:>18} {:>8}",
        "other images", "mcpod hit ms (min/med/p90)", "buildah images", "buildah build ms", "ratio"
    );
    for r in &rows {
        println!(
            "{:>14} {:>28} {:>16.1} {:>18.1} {:>7.1}x",
            r.size,
            format!("{:.1} / {:.1} / {:.1}", r.hit.min, r.hit.median, r.hit.p90),
            r.listing.median,
            r.baseline.median,
            r.baseline.median / r.hit.median
        );
    }
    println!(
        "(runs per size: {} hits, {} listings, {} cached builds; medians unless said)",
        runs.hits, runs.listings, runs.baseline
    );
    let (Some(smallest), Some(largest)) = (rows.first(), rows.last()) else {
        return Ok(());
    };
    let growth = largest.hit.median - smallest.hit.median;
    println!();
    println!(
        "target hit < {TARGET_HIT_MS:.0} ms at {} images: {} ({:.1} ms)",
        largest.size,
        verdict(largest.hit.median < TARGET_HIT_MS),
        largest.hit.median
    );
    println!(
        "target flat from {} to {} images (median grows < {FLAT_MS:.0} ms): {} ({growth:+.1} ms)",
        smallest.size,
        largest.size,
        verdict(growth < FLAT_MS)
    );
    // The rows scripts/perf-table records into docs/performance.md.
    for r in &rows {
        let ratio = r.baseline.median / r.hit.median;
        println!(
            "perf-row {}",
            serde_json::json!({
                "what": format!("cache hit, whole `mcpod build` process, {files}-file context, {} other images in the store", r.size),
                "mcpod": format!("{:.1} ms median (min {:.1}, p90 {:.1})", r.hit.median, r.hit.min, r.hit.p90),
                "baseline": format!("`buildah build --layers`, all cached: {:.0} ms", r.baseline.median),
                "result": format!("{ratio:.1}x"),
                "target": format!(
                    "< {TARGET_HIT_MS:.0} ms at 1,000 images, flat: {}",
                    if r.hit.median < TARGET_HIT_MS && growth < FLAT_MS { "met" } else { "missed" }
                ),
            })
        );
    }
    Ok(())
}

/// Load images `from..to` into the store: each `localhost/mcpod-bench-filler:N`
/// with a one-file layer of its own, from one generated docker-archive (one
/// `podman load`). The time it took, when there were any.
fn fill(store: &TempStore, from: usize, to: usize) -> BoxResult<Option<Duration>> {
    use sha2::Digest as _;
    if to <= from {
        return Ok(None);
    }
    let started = Instant::now();
    let sha = |b: &[u8]| -> String {
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let dir = store.dir.join(format!("archive-{from}"));
    std::fs::create_dir_all(&dir)?;
    let mut manifest = Vec::new();
    for i in from..to {
        let layer = ustar("filler.txt", format!("{i}\n").as_bytes());
        let layer_id = sha(&layer);
        std::fs::write(dir.join(format!("{layer_id}.tar")), &layer)?;
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Labels": {"mcpod.bench.filler": i.to_string()}},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_id}")]},
        }))?;
        let config_id = sha(&config);
        std::fs::write(dir.join(format!("{config_id}.json")), &config)?;
        manifest.push(serde_json::json!({
            "Config": format!("{config_id}.json"),
            "RepoTags": [format!("localhost/mcpod-bench-filler:{i}")],
            "Layers": [format!("{layer_id}.tar")],
        }));
    }
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
    let archive = store.dir.join(format!("archive-{from}.tar"));
    let out = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .output()?;
    check(&out, "tar of the filler images")?;
    let out = store
        .command("podman")
        .args(["load", "--quiet", "-i"])
        .arg(&archive)
        .output()?;
    check(&out, "podman load of the filler images")?;
    std::fs::remove_dir_all(&dir)?;
    std::fs::remove_file(&archive)?;
    Ok(Some(started.elapsed()))
}

/// A tar stream holding one regular file.
fn ustar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let mut octal = |off: usize, len: usize, v: u64| {
        let s = format!("{v:0w$o}\0", w = len - 1);
        h[off..off + len].copy_from_slice(s.as_bytes());
    };
    octal(100, 8, 0o644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, data.len() as u64);
    octal(136, 12, 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok { "holds" } else { "MISSED" }
}

struct Stats {
    min: f64,
    median: f64,
    p90: f64,
}

impl Stats {
    fn of(samples: &[f64]) -> Stats {
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Stats {
                min: f64::NAN,
                median: f64::NAN,
                p90: f64::NAN,
            };
        }
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        // Nearest rank.
        let p90 = v[((n as f64 * 0.9).ceil() as usize).clamp(1, n) - 1];
        Stats {
            min: v[0],
            median,
            p90,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Hit {
    tag: String,
    cache_hit: bool,
}

/// One `mcpod build` process, timed from spawn to exit.
fn mcpod_build(store: &TempStore, root: &Path, state: &Path) -> BoxResult<(Hit, Duration)> {
    let mut cmd = store.command(MCPOD);
    cmd.args(["build", "--name", NAME, "--context", "ctx", "--root"])
        .arg(root)
        .arg("--json")
        .env("MCPOD_STATE_DIR", state);
    let (out, elapsed) = timed(&mut cmd)?;
    check(&out, "mcpod build")?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "mcpod build --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let hit = Hit {
        tag: json["tag"]
            .as_str()
            .ok_or("no `tag` in the JSON")?
            .to_string(),
        cache_hit: json["cache_hit"]
            .as_bool()
            .ok_or("no `cache_hit` in the JSON")?,
    };
    Ok((hit, elapsed))
}

fn timed(cmd: &mut Command) -> BoxResult<(Output, Duration)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    Ok((out, start.elapsed()))
}

fn check(out: &Output, what: &str) -> BoxResult<()> {
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!("{what} failed ({}):\n{}", out.status, tail.join("\n")).into())
}

/// The context: a Containerfile, two small files COPYed in, and a RUN step so
/// buildah's layer cache matters. A nonce file makes every bench run a new key.
fn write_context(ctx: &Path) -> BoxResult<(usize, usize)> {
    std::fs::create_dir_all(ctx.join("app"))?;
    let nonce = format!("{}-{}\n", std::process::id(), now_nanos());
    let files: [(&str, String); 4] = [
        (
            "Containerfile",
            [
                "FROM localhost/mcpod-probe:1",
                "COPY app/hello.txt /app/hello.txt",
                "COPY app/config.json nonce.txt /app/",
                r#"RUN ["/bin/busybox","sh","-c","echo built > /built.txt"]"#,
                "",
            ]
            .join("\n"),
        ),
        (
            "app/hello.txt",
            "hello from the cache_hit bench\n".repeat(8),
        ),
        (
            "app/config.json",
            "{\"greeting\": \"hello\", \"retries\": 3}\n".into(),
        ),
        ("nonce.txt", nonce),
    ];
    let mut bytes = 0;
    for (path, text) in &files {
        std::fs::write(ctx.join(path), text)?;
        bytes += text.len();
    }
    Ok((files.len(), bytes))
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
