//! Provisioning end to end: a package reference to its first tool result,
//! against the hand-built example images of the same servers, in one run.
//!
//! ```text
//! cargo bench --bench provision
//! ```
//!
//! Each case is `mcpod launch REFERENCE --call SERVER/TOOL` (the release
//! binary: provision, launch, initialize, tools/list, one call, stop):
//!
//! - **cold**: a fresh state directory and the package's image removed, so
//!   npm or pip resolves and fetches, buildah builds, then the launch (the
//!   base image, made once per host, is made before the clock starts; the
//!   image's tag is learnt from an untimed fresh staging first, which is
//!   byte-identical);
//! - **warm**: the recorded lock and the cached image (no npm, pip or buildah);
//! - **provision**: a warm repeat of `mcpod provision REFERENCE` alone (the
//!   recorded lock read, the staged tree and the cache hit checked; no launch),
//!   whose target is under 1 s;
//! - **baseline**: the same server in its hand-built example image
//!   (`examples/node-reference`, `examples/python-time`), launched the same way
//!   (none for the native-addon case: its ratios print as NaN).
//!
//! `cargo bench --bench provision -- addon` runs only the cases whose name
//! has that word (here: `npm native addon`, an npm server whose sqlite3
//! addon is compiled in the build container; its cold run makes the
//! toolchain in the fresh state dir too).
//!
//! Warm and baseline runs are interleaved (N=5 each, medians printed, with
//! warm / baseline). Without `--bench` (as under `cargo test --benches`) it
//! runs one warm and one baseline run of the npm case. Words after `--`
//! choose cases by name (`cargo bench --bench provision -- platform`).
//!
//! The Debian-Python case runs mcp-server-time on trixie's 3.13
//! (`--runtime python@3.13`: a base made from Debian's packages, not the
//! host's Python); its baseline is the PyPI case's example image.
//!
//! The platform-binary case (`kubernetes-mcp-server`, a Go binary per
//! platform as optional dependencies, a dummy kubeconfig mounted) has no
//! example image of its own: its baseline is the npm case's.

use std::process::Command;
use std::time::Instant;

const MCPOD: &str = env!("CARGO_BIN_EXE_mcpod");

struct Case {
    name: &'static str,
    reference: &'static str,
    extra: &'static [&'static str],
    call: &'static str,
    args: &'static str,
    example_dir: &'static str,
    example_name: &'static str,
    example_server: &'static str,
    example_call: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "npm server-memory",
        reference: "npm:@modelcontextprotocol/server-memory@2026.8.31",
        extra: &[],
        call: "memory/read_graph",
        args: "{}",
        example_dir: "examples/node-reference",
        example_name: "localhost/mcpod-node-reference",
        example_server: "memory",
        example_call: "memory/read_graph",
    },
    Case {
        name: "pypi mcp-server-time",
        reference: "pypi:mcp-server-time==2026.10.19",
        extra: &[
            "--extra-arg",
            "time=--local-timezone",
            "--extra-arg",
            "time=UTC",
        ],
        call: "time/get_current_time",
        args: r#"{"timezone":"UTC"}"#,
        example_dir: "examples/python-time",
        example_name: "localhost/mcpod-python-time",
        example_server: "time",
        example_call: "time/get_current_time",
    },
    Case {
        name: "pypi on python 3.13 (Debian trixie)",
        reference: "pypi:mcp-server-time==2026.10.19",
        extra: &[
            "--runtime",
            "python@3.13",
            "--extra-arg",
            "time=--local-timezone",
            "--extra-arg",
            "time=UTC",
        ],
        call: "time/get_current_time",
        args: r#"{"timezone":"UTC"}"#,
        example_dir: "examples/python-time",
        example_name: "localhost/mcpod-python-time",
        example_server: "time",
        example_call: "time/get_current_time",
    },
    Case {
        name: "npm platform binary",
        reference: "npm:kubernetes-mcp-server@0.0.67",
        extra: &[
            "--allow-mount",
            KUBE_DIR,
            "--mount",
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-kube:/kube"),
            "--extra-arg",
            "kubernetes=--kubeconfig",
            "--extra-arg",
            "kubernetes=/kube/config",
        ],
        call: "kubernetes/configuration_view",
        args: "{}",
        example_dir: "examples/node-reference",
        example_name: "localhost/mcpod-node-reference",
        example_server: "memory",
        example_call: "memory/read_graph",
    },
    Case {
        name: "npm native addon",
        // sqlite3 5.1.7 compiled by its install script in the build container.
        reference: "npm:mcp-server-sqlite-npx@0.8.0",
        extra: &["--extra-arg", "sqlite-npx=/tmp/bench.db"],
        call: "sqlite-npx/list_tables",
        args: "{}",
        // No hand-built example: no baseline.
        example_dir: "",
        example_name: "",
        example_server: "",
        example_call: "",
    },
];

/// The dummy kubeconfig the platform-binary case's server reads at start.
const KUBE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-kube");

fn write_kubeconfig() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::path::Path::new(KUBE_DIR);
    std::fs::create_dir_all(dir).expect("kube dir");
    std::fs::write(
        dir.join("config"),
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster: {server: \"https://127.0.0.1:6443\"}\n  name: dummy\ncontexts:\n- context: {cluster: dummy, user: dummy}\n  name: dummy\ncurrent-context: dummy\nusers:\n- name: dummy\n  user: {token: dummy}\n",
    )
    .expect("kubeconfig");
    for (path, mode) in [(dir.to_path_buf(), 0o755), (dir.join("config"), 0o644)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

fn run(args: &[&str], state: Option<&std::path::Path>) -> (f64, serde_json::Value) {
    let mut command = Command::new(MCPOD);
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(state) = state {
        command.env("MCPOD_STATE_DIR", state);
    }
    let started = Instant::now();
    let out = command.output().expect("mcpod runs");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "mcpod {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        secs,
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
    )
}

fn launch(case: &Case, state: Option<&std::path::Path>) -> (f64, serde_json::Value) {
    let mut args = vec!["launch", case.reference];
    args.extend(case.extra);
    args.extend(["--call", case.call, "--args", case.args, "--json"]);
    run(&args, state)
}

fn baseline(case: &Case, tag: &str) -> f64 {
    run(
        &[
            "launch",
            tag,
            "--server",
            case.example_server,
            "--call",
            case.example_call,
            "--args",
            case.args,
            "--json",
        ],
        None,
    )
    .0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { 5 } else { 1 };
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let cases: Vec<&Case> = if full {
        CASES.iter().collect()
    } else {
        vec![&CASES[0]]
    };
    let cases: Vec<&Case> = cases
        .into_iter()
        .filter(|c| chosen.is_empty() || chosen.iter().any(|w| c.name.contains(w.as_str())))
        .collect();
    write_kubeconfig();
    println!("package reference to first tool result (mcpod launch REF --call), s; N={n}");
    println!(
        "{:<22} {:>8} {:>8} {:>9} {:>8} {:>8} {:>9}",
        "case", "cold", "warm", "baseline", "warm/b", "cold/b", "provision"
    );
    for case in cases {
        let example = (!case.example_dir.is_empty()).then(|| {
            let (_, built) = run(
                &[
                    "build",
                    "--name",
                    case.example_name,
                    "--context",
                    case.example_dir,
                    "--json",
                ],
                None,
            );
            built["tag"].as_str().expect("example tag").to_string()
        });
        // Once, untimed: the lock recorded and the image built (the warm state).
        launch(case, None);
        let cold = if full {
            // The base is made once per host: before the clock, in each state dir.
            let runtime = if case.reference.starts_with("npm:") {
                "node"
            } else {
                "python"
            };
            let fresh = || {
                let state = tempfile::tempdir().expect("state");
                run(&["bases", "--remake", runtime], Some(state.path()));
                state
            };
            // A fresh staging of the lock gives a known tag (it is byte-identical):
            // learn it, remove the image, then time a second fresh state dir.
            let learn = fresh();
            let (_, learned) = launch(case, Some(learn.path()));
            let cold_tag = learned["session"]["provisioned"]["image"]["tag"]
                .as_str()
                .expect("tag")
                .to_string();
            let removed = Command::new("podman")
                .args(["rmi", &cold_tag])
                .output()
                .expect("podman rmi");
            assert!(
                removed.status.success(),
                "{}",
                String::from_utf8_lossy(&removed.stderr)
            );
            let state = fresh();
            let (secs, result) = launch(case, Some(state.path()));
            assert_eq!(result["session"]["provisioned"]["fetched"], true);
            assert_eq!(
                result["session"]["provisioned"]["image"]["cache_hit"],
                false
            );
            // The warm state's image again, in case the cold one was it.
            launch(case, None);
            Some(secs)
        } else {
            None
        };
        let mut warm = Vec::new();
        let mut base = Vec::new();
        let mut provisioned = Vec::new();
        for _ in 0..n {
            provisioned.push(provision(case));
            let (secs, result) = launch(case, None);
            assert_eq!(result["session"]["provisioned"]["fetched"], false);
            assert_eq!(result["session"]["provisioned"]["image"]["cache_hit"], true);
            warm.push(secs);
            if let Some(example) = &example {
                base.push(baseline(case, example));
            }
        }
        let w = median(warm);
        let p = median(provisioned);
        // No baseline: the ratios print as NaN.
        let b = if base.is_empty() {
            f64::NAN
        } else {
            median(base)
        };
        let cold_text = cold
            .map(|c| format!("{c:.2}"))
            .unwrap_or_else(|| "-".into());
        let cold_ratio = cold
            .map(|c| format!("{:.2}x", c / b))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<22} {:>8} {:>8.2} {:>9.2} {:>7.2}x {:>8} {:>9.2}",
            case.name,
            cold_text,
            w,
            b,
            w / b,
            cold_ratio,
            p
        );
        // The row scripts/perf-table records into docs/performance.md.
        println!(
            "perf-row {}",
            serde_json::json!({
                "what": format!("{}: package name → first tool result, cold / warm (median of {n})", case.name),
                "mcpod": format!("{cold_text} s / {w:.2} s"),
                "baseline": if b.is_nan() { "none (no hand-built image)".to_string() } else { format!("hand-built `{}`: {b:.2} s", case.example_dir) },
                "result": if b.is_nan() { "-".to_string() } else { format!("warm {:.2}x", w / b) },
                "target": "",
            })
        );
        println!(
            "perf-row {}",
            serde_json::json!({
                "what": format!("{}: warm repeat of `mcpod provision` alone (median of {n})", case.name),
                "mcpod": format!("{p:.2} s"),
                "baseline": "",
                "result": format!("{p:.2} s"),
                "target": format!("< 1 s: {}", if p < 1.0 { "met" } else { "missed" }),
            })
        );
    }
}

/// A warm `mcpod provision` of the case's reference (on its runtime), in
/// seconds: it must neither fetch nor build.
fn provision(case: &Case) -> f64 {
    let mut args = vec!["provision", case.reference];
    if let Some(i) = case.extra.iter().position(|a| *a == "--runtime") {
        args.extend(&case.extra[i..i + 2]);
    }
    args.push("--json");
    let (secs, result) = run(&args, None);
    assert_eq!(result["fetched"], false, "{result}");
    assert_eq!(result["image"]["cache_hit"], true, "{result}");
    secs
}
