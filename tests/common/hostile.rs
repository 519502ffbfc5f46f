//! The hostile fixture server (examples/hostile_server.rs): its image, and its binary
//! for the tests that run it directly.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::rpc::Server;
use super::{ImageCleanup, unique};

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

/// The hostile images one test builds: named under a prefix of the test's
/// own and removed when it ends. (One prefix shared by every test let a test
/// that ended remove the images of another still running: seen in CI.)
pub struct HostileImages {
    prefix: String,
    _cleanup: ImageCleanup,
}

impl HostileImages {
    pub fn new() -> Self {
        let prefix = unique("hostile-flags");
        HostileImages {
            _cleanup: ImageCleanup(prefix.clone()),
            prefix,
        }
    }

    /// Build the hostile image with its server started as `command`.
    pub fn with(
        &self,
        server: &mut Server,
        id: u64,
        root: &std::path::Path,
        command: Value,
    ) -> String {
        self.serving(server, id, root, json!({"hostile": {"command": command}}))
    }

    /// Build the hostile image declaring `servers`.
    pub fn serving(
        &self,
        server: &mut Server,
        id: u64,
        root: &std::path::Path,
        servers: Value,
    ) -> String {
        let ctx = root.join(format!("ctx{id}"));
        std::fs::create_dir(&ctx).expect("ctx");
        std::fs::write(
            ctx.join("Containerfile"),
            format!("FROM {}\n", hostile_image()),
        )
        .expect("Containerfile");
        let built = server.call(
            id,
            "build_image",
            json!({"name": format!("localhost/{}-{id}", self.prefix),
                "context": format!("ctx{id}"),
                "servers": servers}),
        );
        assert_ne!(built["isError"], true, "{built}");
        built["structuredContent"]["tag"]
            .as_str()
            .expect("tag")
            .to_string()
    }
}

/// The fixture's `whoami` of `session` called with `meta` as the request's
/// `_meta`: what the child saw (its id, token, protocol version and trace
/// context).
pub fn whoami(server: &mut Server, id: u64, session: &str, meta: Value) -> Value {
    let response = server.request(
        id,
        "tools/call",
        json!({"name": format!("{session}_hostile__whoami"), "arguments": {}, "_meta": meta}),
    );
    assert_eq!(response["id"], id, "{response}");
    let result = &response["result"];
    assert_ne!(result["isError"], true, "{result}");
    result["structuredContent"].clone()
}
