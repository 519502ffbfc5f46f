//! mcpod's stdio face: serve MCP on stdin and stdout until the client goes
//! away or a signal arrives, then remove every container this process started.

use std::sync::Arc;

use rmcp::ServiceExt;

use super::McpodServer;
use crate::logging::audit::AuditLog;
use crate::session::{Policy, Sessions, sweep};
use crate::wire;
use crate::workspace::Workspace;

/// Serve MCP on stdin/stdout until the client goes away or a signal arrives,
/// then remove every container this process started.
pub async fn serve_stdio(
    workspace: Workspace,
    policy: Policy,
    audit: Arc<AuditLog>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sessions = start(policy)?;
    let server = McpodServer::new(workspace, sessions.clone()).with_audit(audit);
    let served = async {
        let (stdin, stdout) = wire::stdio::stdio();
        let transport = wire::LineTransport::new(
            stdin,
            stdout,
            wire::Limits::default(),
            wire::Peer {
                name: "the client".into(),
                on_problem: Arc::new(|problem| tracing::warn!("{problem}")),
            },
        )
        .with_tap(server.fast.clone());
        server.fast.set_writer(transport.raw_writer());
        let fast = server.fast.clone();
        let running = server.serve(transport).await?;
        fast.set_peer(running.peer().clone());
        running.waiting().await?;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        r = served => r,
        _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: stopping"); Ok(()) }
        _ = term.recv() => { tracing::info!("SIGTERM: stopping"); Ok(()) }
    };
    finish(&sessions).await;
    result
}

/// The sessions of a serving mcpod: orphans of earlier runs are swept and
/// the pool filled in the background (the handshake must not wait for
/// podman), and freed memory is given back now and then.
pub(super) fn start(
    policy: Policy,
) -> Result<Arc<Sessions>, Box<dyn std::error::Error + Send + Sync>> {
    let sessions = Arc::new(Sessions::new(policy)?);
    // In the background: the handshake must not wait for podman. The pool
    // fills once the orphans are gone.
    let pool = sessions.clone();
    tokio::spawn(async move {
        match sweep::sweep_orphans(pool.engines().all()).await {
            Ok((swept, failed)) => {
                if !swept.is_empty() {
                    tracing::info!(
                        "removed {} orphaned session container(s): {}",
                        swept.len(),
                        swept.join(", ")
                    );
                }
                for failure in failed {
                    tracing::warn!(
                        "could not sweep an engine, left out of placement for now: {failure}"
                    );
                }
            }
            Err(e) => tracing::warn!("could not sweep orphaned session containers: {e}"),
        }
        pool.start_pool();
    });
    tokio::spawn(release_freed_memory());
    Ok(sessions)
}

/// Remove every container this process started.
pub(super) async fn finish(sessions: &Sessions) {
    match sessions.stop_all().await {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} session container(s)"),
        Err(e) => tracing::error!("could not remove every session container: {e}"),
    }
}

/// Every few seconds, give the memory freed since back to the system: after
/// a burst of requests glibc keeps its heap at the peak (measured: 17 MiB
/// idle, 74 MiB for good after 10,000 calls at once). A trim of a small,
/// mostly free heap takes well under a millisecond.
async fn release_freed_memory() {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free memory of the allocator.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
