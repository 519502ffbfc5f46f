//! The only code that spawns host programs: podman, buildah and skopeo, and for
//! provisioning npm, pip, ldd, node and python3. Knows nothing of MCP.

pub mod buildah;
pub mod engines;
pub mod env;
pub mod fd;
pub mod home;
pub mod kube;
pub mod owner;
pub mod podman;
pub mod process;
pub mod registry;
pub mod runtime;
pub mod skopeo;
pub mod storage;
pub mod userns;

/// `PROGRAM --version`, trimmed (for doctor).
pub async fn version(program: &'static str) -> crate::Result<String> {
    let out = process::Invocation::new(program)
        .arg("--version")
        .timeout(std::time::Duration::from_secs(30))
        .run()
        .await?;
    Ok(out.stdout.trim().to_string())
}

/// A short random-enough suffix for temporary names (pid, time, counter).
pub fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let h = blake3::hash(format!("{}-{t}-{n}", std::process::id()).as_bytes());
    h.to_hex()[..12].to_string()
}
