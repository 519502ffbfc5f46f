//! A build killed mid-RUN (SIGKILL to mcpod and its buildah) leaves buildah's
//! working containers; the next mcpod's start-up sweep removes them, and no
//! buildah container that is not a dead mcpod's.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn buildah(args: &[&str]) -> String {
    let out = Command::new("buildah")
        .args(args)
        .output()
        .expect("buildah");
    assert!(out.status.success(), "buildah {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn id_of(container: &str) -> String {
    buildah(&[
        "inspect",
        "--type",
        "container",
        "--format",
        "{{.ContainerID}}",
        container,
    ])
}

/// Every buildah container's ID.
fn container_ids() -> Vec<String> {
    buildah(&["containers", "--all", "--quiet", "--notruncate"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether the image of container `id` was made by a step that printed `nonce`
/// (the working container `--layers` makes for the step after it), or the
/// container is the first one, named after the base.
fn is_this_builds(id: &str, base_name: &str, nonce: &str) -> bool {
    let Ok(out) = Command::new("buildah")
        .args(["inspect", "--type", "container", id])
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains(&format!("\"Container\": \"{base_name}-working-container"))
        || text.contains(&format!("echo one-{nonce}"))
}

/// Pids of `parent`'s children named `comm`.
fn children(parent: u32, comm: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid = stat[close + 1..].split_whitespace().nth(1);
        if &stat[open + 1..close] == comm && ppid == Some(&parent.to_string()) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_killed_builds_working_containers_are_swept_and_no_one_elses() {
    let name = unique("killed");
    let _cleanup = ImageCleanup(name.clone());
    let state = tempfile::tempdir_in("/var/tmp").expect("state dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let base = runtime.block_on(busybox_base(&format!("{name}-bb")));
    let base_name = format!("{name}-bb");
    let nonce = mcpod::engine::nonce();
    let root = context(&[(
        "Containerfile",
        &format!(
            "FROM {base}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo one-{nonce}\"]\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo started-{nonce}; sleep 30\"]\n"
        ),
    )]);

    // Containers that are not a dead mcpod's: one made outside mcpod, and one
    // carrying the marker of a live mcpod (this process) in the same state dir.
    let foreign = buildah(&[
        "from",
        "--pull=never",
        "--name",
        &format!("{name}-foreign"),
        &base,
    ]);
    let foreign = id_of(&foreign);
    let me = mcpod::session::container::Owner::current();
    let live_marker = state
        .path()
        .join("owners")
        .join(format!("{}_{}_{}", me.pid, me.start, me.boot_id));
    std::fs::create_dir_all(&live_marker).expect("marker dir");
    let live_marker = live_marker.join("mounts.conf");
    std::fs::write(&live_marker, "").expect("marker");
    let live = buildah(&[
        "--default-mounts-file",
        live_marker.to_str().expect("utf-8"),
        "from",
        "--pull=never",
        "--name",
        &format!("{name}-live"),
        &base,
    ]);
    let live = id_of(&live);

    let before = container_ids();
    let mut build = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(["build", "--name"])
        .arg(format!("localhost/{name}"))
        .arg("--root")
        .arg(root.path())
        .env("MCPOD_STATE_DIR", state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mcpod build");
    let stderr = build.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let started = format!("started-{nonce}");
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains(&started))),
        "the RUN step never started"
    );
    // SIGKILL mcpod and its buildah, mid-RUN.
    let buildahs = children(build.id(), "buildah");
    assert!(!buildahs.is_empty(), "no buildah under mcpod");
    let _ = build.kill();
    for pid in buildahs {
        // SAFETY: kill(2) of a buildah this test's mcpod started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let _ = build.wait();

    let left: Vec<String> = container_ids()
        .into_iter()
        .filter(|id| !before.contains(id) && is_this_builds(id, &base_name, &nonce))
        .collect();
    assert!(
        !left.is_empty(),
        "the killed build left no working container"
    );

    // The next mcpod sweeps at start-up.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(["serve", "--root"])
        .arg(root.path())
        .env("MCPOD_STATE_DIR", state.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mcpod serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let remaining = loop {
        let now = container_ids();
        let remaining: Vec<&String> = left.iter().filter(|id| now.contains(id)).collect();
        if remaining.is_empty() || Instant::now() > deadline {
            break remaining.into_iter().cloned().collect::<Vec<_>>();
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = serve.kill();
    let _ = serve.wait();
    let now = container_ids();
    let kept = (now.contains(&foreign), now.contains(&live));
    let _ = Command::new("buildah")
        .args(["rm", &foreign, &live])
        .output();
    for id in &remaining {
        let _ = Command::new("buildah").args(["rm", id]).output();
    }
    assert_eq!(
        remaining,
        Vec::<String>::new(),
        "left behind after the sweep"
    );
    assert_eq!(
        kept,
        (true, true),
        "the sweep removed a container that was not a dead mcpod's"
    );
}
