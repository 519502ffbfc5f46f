//! The warm pool against the real podman: `--warm IMAGE[=N]` keeps sessions
//! ready, a matching launch is handed one and a replacement starts, anything
//! else launches cold, the ceiling holds, spares expire, and nothing is left
//! when mcpod exits.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::rpc::{Server, initialize, text_of};
use serde_json::{Value, json};

fn serve(root: &std::path::Path, extra: &[&str]) -> Server {
    let mut server = Server::start_with(root, extra);
    initialize(&mut server, "2025-11-25");
    server
}

fn pool_of(server: &mut Server, id: u64) -> Vec<Value> {
    let listed = server.call(id, "list_sessions", json!({}));
    assert_ne!(listed["isError"], true, "{listed}");
    listed["structuredContent"]["pool"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Wait until the pool holds `n` sessions; the pool then.
fn pool_reaches(server: &mut Server, first_id: u64, n: usize, within: Duration) -> Vec<Value> {
    let until = Instant::now() + within;
    let mut id = first_id;
    loop {
        let pool = pool_of(server, id);
        if pool.len() == n {
            return pool;
        }
        assert!(
            Instant::now() < until,
            "the pool did not reach {n} within {within:?}: {pool:?}"
        );
        id += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ids(pool: &[Value]) -> Vec<String> {
    pool.iter()
        .map(|p| p["session"].as_str().expect("session").to_string())
        .collect()
}

fn launch(server: &mut Server, id: u64, args: Value) -> Value {
    let result = server.call(id, "launch_session", args);
    assert_ne!(result["isError"], true, "launch failed: {result}");
    server.detail_of(id, &result)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn owned_by(pid: u32) -> Vec<String> {
    common::containers_labelled(&format!("io.mcpod.owner-pid={pid}"))
}

#[test]
fn a_matching_launch_takes_a_warm_session_and_the_pool_fills_again() {
    let image = common::hello_image();
    let root = tempfile::tempdir().expect("tempdir");
    let warm = format!("--warm={image}=2");
    let mut server = serve(root.path(), &[&warm, "--default-ttl=120"]);
    let pid = server.child.id();
    let pool = pool_reaches(&mut server, 100, 2, Duration::from_secs(60));
    for p in &pool {
        assert_eq!(p["kind"], "warm", "{p}");
        assert_eq!(p["image"], image.as_str(), "{p}");
        assert_eq!(p["servers"], json!(["hello"]), "{p}");
    }
    let pooled = ids(&pool);
    // Pooled containers are owned like any session's (the sweep finds them),
    // and none is exported: no tool of theirs is listed.
    assert_eq!(owned_by(pid).len(), 2);
    assert!(
        !server
            .tool_names(200)
            .iter()
            .any(|n| pooled.iter().any(|s| n.starts_with(&format!("{s}_")))),
        "a pooled session's tools are listed"
    );

    // The default launch of the image: handed a pooled session.
    let asked = now_secs();
    let info = launch(&mut server, 1, json!({"image": image}));
    let session = info["session"].as_str().expect("session").to_string();
    assert!(
        pooled.contains(&session),
        "{session} is not one of {pooled:?}"
    );
    assert_eq!(info["servers"]["hello"]["status"], "ready", "{info}");
    // Its lease starts now, not when it was pooled (with the pool's margin).
    let lease_until = info["lease_until"].as_u64().expect("lease_until");
    assert!(
        (asked + 120..=now_secs() + 120).contains(&lease_until),
        "lease_until {lease_until} is not 120 s after {asked}"
    );
    let sum = server.call(
        2,
        &format!("{session}_hello__add"),
        json!({"a": 20, "b": 22}),
    );
    assert_eq!(sum["structuredContent"]["sum"], 42, "{sum}");

    // A replacement is started; the one handed out is no longer pooled.
    let pool = pool_reaches(&mut server, 300, 2, Duration::from_secs(60));
    assert!(!ids(&pool).contains(&session));

    // Another spec (other limits, other servers' env) launches cold.
    let cold = launch(&mut server, 3, json!({"image": image, "memory_mb": 300}));
    let cold_id = cold["session"].as_str().expect("session").to_string();
    assert!(
        !ids(&pool).contains(&cold_id),
        "{cold_id} came from the pool"
    );
    assert_eq!(
        pool_of(&mut server, 4).len(),
        2,
        "a cold launch took from the pool"
    );

    // Stopping mcpod removes every container it owns, pooled ones included.
    assert_eq!(owned_by(pid).len(), 4);
    server.close(Duration::from_secs(30));
    assert!(
        owned_by(pid).is_empty(),
        "left after mcpod exited: {:?}",
        owned_by(pid)
    );
}

#[test]
fn the_pool_keeps_to_its_ceiling_apart_from_max_sessions() {
    let image = common::hello_image();
    let root = tempfile::tempdir().expect("tempdir");
    let warm = format!("--warm={image}=5");
    let mut server = serve(root.path(), &[&warm, "--pool-max=2", "--max-sessions=3"]);
    let pid = server.child.id();
    pool_reaches(&mut server, 100, 2, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pool_of(&mut server, 1).len(), 2, "past --pool-max");
    assert_eq!(owned_by(pid).len(), 2);

    // Pooled sessions do not count against --max-sessions: three launches
    // of another spec still fit, and the fourth is refused.
    let mut launched = Vec::new();
    for id in 2..5 {
        let info = launch(&mut server, id, json!({"image": image, "pids": 100}));
        launched.push(info["session"].as_str().expect("session").to_string());
    }
    let refused = server.call(5, "launch_session", json!({"image": image}));
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(text_of(&refused).contains("sessions at once"), "{refused}");
    for (i, s) in launched.iter().enumerate() {
        let stopped = server.call(10 + i as u64, "stop_session", json!({"session": s}));
        assert_ne!(stopped["isError"], true, "{stopped}");
    }
    server.close(Duration::from_secs(30));
    assert!(owned_by(pid).is_empty(), "{:?}", owned_by(pid));
}

#[test]
fn a_recent_launch_leaves_a_spare_that_the_next_one_takes() {
    let image = common::hello_image();
    let root = tempfile::tempdir().expect("tempdir");
    let mut server = serve(root.path(), &["--spare-secs=4"]);
    let pid = server.child.id();
    assert!(pool_of(&mut server, 1).is_empty());
    let first = launch(&mut server, 2, json!({"image": image, "cpus": 0.5}));
    let pool = pool_reaches(&mut server, 100, 1, Duration::from_secs(60));
    assert_eq!(pool[0]["kind"], "spare", "{pool:?}");
    let spare = ids(&pool)[0].clone();
    assert_ne!(first["session"], spare.as_str());
    let second = launch(&mut server, 3, json!({"image": image, "cpus": 0.5}));
    assert_eq!(second["session"], spare.as_str(), "{second}");
    // The launch left a new spare; unused, it goes after --spare-secs (at
    // the pool's next upkeep, every 15 s).
    pool_reaches(&mut server, 200, 1, Duration::from_secs(60));
    pool_reaches(&mut server, 300, 0, Duration::from_secs(40));
    // The retired spare's container goes just after it leaves the list.
    let until = Instant::now() + Duration::from_secs(15);
    while owned_by(pid).len() != 2 {
        assert!(
            Instant::now() < until,
            "the expired spare's container is left: {:?}",
            owned_by(pid)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.close(Duration::from_secs(30));
    assert!(owned_by(pid).is_empty(), "{:?}", owned_by(pid));
}

#[test]
fn a_warm_image_that_cannot_launch_leaves_mcpod_serving() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut server =
        Server::start_logged(root.path(), &["--warm=localhost/mcpod-no-such-image:1=2"]);
    initialize(&mut server, "2025-11-25");
    std::thread::sleep(Duration::from_secs(2));
    assert!(pool_of(&mut server, 1).is_empty());
    let policy = server.call(2, "show_policy", json!({}));
    assert_eq!(
        policy["structuredContent"]["pool"]["warm"]["localhost/mcpod-no-such-image:1"], 2,
        "{policy}"
    );
    server.close(Duration::from_secs(30));
    let stderr = server.stderr_text();
    assert!(
        stderr.contains("warm pool: cannot launch localhost/mcpod-no-such-image:1"),
        "{stderr}"
    );
}

#[test]
fn a_bad_warm_flag_is_refused_naming_it() {
    for (flag, says) in [
        ("--warm=localhost/x:1=0", "is not a count from 1 to 64"),
        ("--warm=localhost/x:1=many", "is not a count"),
        ("--warm=bad ref", "bad ref"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcpod"))
            .args(["serve", flag])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("mcpod");
        assert!(!out.status.success(), "{flag} was taken");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{flag}: {stderr}");
    }
}

/// A pooled container waits under a longer lease (its session's plus the
/// pool's wait); handed out, the supervisor ends it at the session's own.
#[test]
fn a_handed_out_session_ends_with_its_own_lease() {
    let image = common::hello_image();
    let root = tempfile::tempdir().expect("tempdir");
    let warm = format!("--warm={image}");
    let mut server = serve(root.path(), &[&warm, "--default-ttl=3"]);
    let pooled = ids(&pool_reaches(&mut server, 100, 1, Duration::from_secs(60)));
    // Past the 3 s lease while pooled: it is still there.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(ids(&pool_of(&mut server, 1)), pooled);
    let began = Instant::now();
    let info = launch(&mut server, 2, json!({"image": image}));
    let session = info["session"].as_str().expect("session").to_string();
    assert_eq!(vec![session.clone()], pooled);
    while !common::containers_of(&session).is_empty() {
        assert!(
            began.elapsed() < Duration::from_secs(20),
            "the handed-out session outlived its 3 s lease by far"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        began.elapsed() >= Duration::from_secs(2),
        "ended {:?} after the hand-out, before its lease",
        began.elapsed()
    );
    server.close(Duration::from_secs(30));
}
