//! The remote engines tests run against: two podman services with storage of
//! their own (`a`, and `b` both locally and over ssh) and a registry, all on
//! this machine, started by `scripts/engines` (see there).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Where the engines are, as `scripts/engines start` wrote them in `DIR/env`.
#[derive(Clone, Debug)]
pub struct TestEngines {
    /// `unix://DIR/a/podman.sock`
    pub a: String,
    /// `ssh://root@127.0.0.1:PORT/DIR/b/podman.sock` (needs `ssh_key`)
    pub b_ssh: String,
    /// `unix://DIR/b/podman.sock`: engine b, without ssh
    pub b_local: String,
    /// The identity that logs in to `b_ssh` (podman's `--identity`).
    pub ssh_key: PathBuf,
    /// `127.0.0.1:PORT`, a plain-HTTP registry (`--tls-verify=false`).
    pub registry: String,
    /// DIR: `$MCPOD_TEST_ENGINES_DIR`, or `/var/tmp/mcpod-engines`.
    pub dir: PathBuf,
}

/// Start (or find running) the test engines and registry; panics with the
/// script's output if that fails. The script runs once per test process: it is
/// a no-op (tens of milliseconds) when everything already answers, and it
/// takes a lock, so test processes running at once are safe.
pub fn engines() -> TestEngines {
    static ENGINES: OnceLock<TestEngines> = OnceLock::new();
    ENGINES.get_or_init(start).clone()
}

fn start() -> TestEngines {
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
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} start {} failed ({}):\n{}{}",
        script.display(),
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let env_file = dir.join("env");
    let text = std::fs::read_to_string(&env_file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", env_file.display()));
    let vars = parse_env(&text);
    let var = |key: &str| -> String {
        vars.get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{} has no {key}:\n{text}", env_file.display()))
    };
    TestEngines {
        a: var("MCPOD_TEST_ENGINE_A"),
        b_ssh: var("MCPOD_TEST_ENGINE_B"),
        b_local: var("MCPOD_TEST_ENGINE_B_LOCAL"),
        ssh_key: PathBuf::from(var("MCPOD_TEST_SSH_KEY")),
        registry: var("MCPOD_TEST_REGISTRY"),
        dir,
    }
}

/// `KEY=VALUE` lines (no quotes, no `export`); blank lines and `#` comments
/// are skipped.
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `podman --url URL [--identity KEY] ARGS...`, which must succeed; the lines
/// it prints (like `podman_lines`, tried again a few times the same way).
pub fn remote_lines(url: &str, key: Option<&Path>, args: &[&str]) -> Vec<String> {
    let run = || {
        let mut cmd = Command::new("podman");
        cmd.arg("--url").arg(url);
        if let Some(key) = key {
            cmd.arg("--identity").arg(key);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .output()
            .expect("podman")
    };
    let mut out = run();
    for _ in 0..10 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        out = run();
    }
    assert!(
        out.status.success(),
        "podman --url {url} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}
