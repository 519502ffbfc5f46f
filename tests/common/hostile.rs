//! The hostile fixture server (examples/hostile_server.rs): its image, and its binary
//! for the tests that run it directly.

use std::path::PathBuf;

/// The hostile fixture's image (tests/fixtures/hostile), cached by tag like hello's.
pub fn hostile_image() -> String {
    super::context_image(
        "tests/fixtures/hostile",
        "mcpod-hostile",
        "bin/hostile-server",
        "scripts/build-hello",
    )
}

/// The statically linked fixture binary scripts/build-hello builds (not stripped), in
/// `$CARGO_TARGET_DIR` when that is set, else in the repository's `target/`.
pub fn hostile_binary() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| repo.join(dir))
        .unwrap_or_else(|| repo.join("target"));
    let path = target.join("x86_64-unknown-linux-gnu/debug/examples/hostile_server");
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-hello (scripts/test does)",
        path.display()
    );
    path
}
