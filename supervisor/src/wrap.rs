//! `supervisor --wrap PROGRAM ARGS…`: a server started beside the session's
//! own (`mcpod connect` runs it with `podman exec`), under the same
//! `connect` filter, answered here (see `intercept.rs`). Where the system
//! can intercept, the session's servers may hold sockets of the host's
//! network namespace, so a process of the container outside the filter
//! could dissolve one it is handed; this one cannot. It exits with the
//! program's code, and passes on SIGTERM, SIGINT, SIGHUP and SIGQUIT.

use std::sync::Arc;

use mcpod_supervisor::seccomp;
use tokio::signal::unix::{SignalKind, signal};

use crate::intercept::Intercept;

/// The first argument that makes the supervisor a wrapper.
pub const FLAG: &str = "--wrap";

pub async fn run(argv: &[String]) -> i32 {
    let say = |line: &str| eprintln!("mcpod-supervisor --wrap: {line}");
    let Some(program) = argv.first() else {
        say("no program to run");
        return 2;
    };
    // Where the session could intercept, so does this: no way round it.
    let intercept = seccomp::supported()
        .ok()
        .map(|support| Arc::new(Intercept::new(support, Vec::new(), None)));
    let mut command = std::process::Command::new(program);
    command.args(&argv[1..]);
    let armed = match intercept
        .as_ref()
        .map(|ix| ix.arm(&mut command))
        .transpose()
    {
        Ok(armed) => armed,
        Err(e) => {
            say(&format!("its connect filter: {e}"));
            return 1;
        }
    };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            say(&format!("`{program}`: {e}"));
            return if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    let pid = child.id() as i32;
    if let (Some(ix), Some((ours, theirs))) = (&intercept, armed) {
        drop(theirs);
        if let Err(e) = ix.watch(&ours) {
            say(&format!("its connect filter's listener: {e}"));
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = child.wait();
            return 1;
        }
    }
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
        SignalKind::quit(),
    ] {
        if let Ok(mut signals) = signal(kind) {
            tokio::spawn(async move {
                while signals.recv().await.is_some() {
                    // SAFETY: kill on our child's pid.
                    unsafe { libc::kill(pid, kind.as_raw_value()) };
                }
            });
        }
    }
    match tokio::task::spawn_blocking(move || child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(libc::SIGKILL))
        }
        _ => 1,
    }
}
