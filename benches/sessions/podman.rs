//! The bench's podman side: the baseline runs (a bare `podman run -i` with
//! mcpod's hardening flags), the cleanup of every container the bench
//! caused, and what it reads from podman and /proc.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{BENCH_LABEL, OWNER_PID_LABEL};
use crate::support::{Client, Error, call, connect, structured};

/// Removes every container this bench caused, on every path: the sessions of
/// the mcpods it started (by owner pid) and the baseline's (by bench label).
#[derive(Default)]
pub struct Cleanup {
    pub mcpod_pids: std::sync::Mutex<Vec<u32>>,
}

impl Cleanup {
    fn pids(&self) -> Vec<u32> {
        self.mcpod_pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn filters(&self) -> Vec<String> {
        let mut filters = vec![format!("label={BENCH_LABEL}={}", std::process::id())];
        for pid in self.pids() {
            filters.push(format!("label={OWNER_PID_LABEL}={pid}"));
        }
        filters
    }

    /// Containers (running or not) left by this bench.
    pub fn leftovers(&self) -> Vec<String> {
        let mut names = Vec::new();
        for filter in self.filters() {
            names.extend(podman_ps(&filter));
        }
        names
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let left = self.leftovers();
        if !left.is_empty() {
            eprintln!(
                "cleanup: removing {} container(s): {}",
                left.len(),
                left.join(", ")
            );
            let _ = Command::new("podman")
                .args(["rm", "--force", "--ignore", "--time", "0", "--"])
                .args(&left)
                .stdout(Stdio::null())
                .status();
        }
        for pid in self.pids() {
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
        }
    }
}

pub fn podman_ps(filter: &str) -> Vec<String> {
    Command::new("podman")
        .args(["ps", "--all", "--format", "{{.Names}}", "--filter", filter])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// podman and conmon processes on the host that serve `sessions` (their
/// argv names the session's container, by name or ID: each session's
/// detail has them, the listing of all does not).
pub async fn host_processes(client: &Client, sessions: &[String]) -> Result<(usize, usize), Error> {
    let mut names: Vec<String> = Vec::new();
    for session in sessions {
        let listed = call(client, "list_sessions", json!({"session": session})).await?;
        let detail = &structured(&listed)?["detail"];
        for key in ["container", "container_id"] {
            if let Some(v) = detail[key].as_str() {
                names.push(v.to_string());
            }
        }
    }
    if names.len() < sessions.len() {
        return Err(format!("list_sessions named no container for some of {sessions:?}").into());
    }
    let mut counts = (0, 0);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let slot = match comm.trim() {
            "podman" => &mut counts.0,
            "conmon" => &mut counts.1,
            _ => continue,
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| names.iter().any(|n| arg == n.as_bytes()))
        {
            *slot += 1;
        }
    }
    Ok(counts)
}

/// The exact `podman run -i` argv mcpod used for `container` (podman keeps it).
pub async fn create_command(container: &str) -> Result<Vec<String>, Error> {
    let out = tokio::process::Command::new("podman")
        .args([
            "inspect",
            "--format",
            "{{json .Config.CreateCommand}}",
            "--",
            container,
        ])
        .output()
        .await?;
    let argv: Vec<String> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("podman inspect {container}: {e}"))?;
    if argv.len() < 4 || argv[1] != "run" {
        return Err(format!("unexpected create command of {container}: {argv:?}").into());
    }
    Ok(argv)
}

/// One baseline run: time to tools listed, then time from stdin EOF to exit.
pub async fn baseline_once(
    flags: &[String],
    image: &str,
    command_argv: &[String],
    tool: &str,
    i: usize,
) -> Result<(Duration, Duration), Error> {
    let bench = std::process::id();
    let mut command = tokio::process::Command::new("podman");
    command
        .args(["run", "-i"])
        .args(flags)
        .arg(format!("--name=mcpod-bench-{bench}-{}-{i}", tool))
        .arg(format!("--label={BENCH_LABEL}={bench}"))
        .arg(image)
        .args(command_argv);
    let t = Instant::now();
    let client = connect(command).await?;
    let tools = client.list_all_tools().await?;
    if !tools.iter().any(|t| t.name == tool) {
        return Err(format!("the baseline's tools/list lacks {tool}").into());
    }
    let ready = t.elapsed();
    let t = Instant::now();
    client.cancel().await?;
    Ok((ready, t.elapsed()))
}

pub fn podman_version() -> String {
    Command::new("podman")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
