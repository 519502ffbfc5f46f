//! npm packages that ship a native binary per platform as optional
//! dependencies (the esbuild / napi-rs pattern), with real packages from the
//! npm registry, the host's npm, buildah and podman: the lock holds the
//! session's platform's binary and no other's, `npm ci` stages it, the
//! server answers `tools/list`; a failing npm's error quotes npm's reason;
//! an optional dependency that fits the platform but is not a registry
//! tarball with an integrity hash is still refused.

mod common;

use std::path::Path;

use common::rpc::{Server, initialize, text_of};
use mcpod::provision::npm_platform::{Libc, Platform};
use serde_json::{Value, json};

/// A Go binary per platform (`kubernetes-mcp-server-linux-amd64`, …); the
/// registry serves no darwin, windows or linux-arm64 package of this version,
/// so npm leaves them out of its lock and `npm ci` used to refuse it.
const KUBERNETES: &str = "npm:kubernetes-mcp-server@0.0.67";
/// One binary package per platform, every one of them in the registry.
const ESBUILD: &str = "npm:esbuild@0.25.0";

fn structured(result: &Value) -> Value {
    assert_ne!(result["isError"], true, "failed: {}", text_of(result));
    result["structuredContent"].clone()
}

/// The package-lock.json of a recorded lock (`NAME LEN\n` then the bytes,
/// package.json first).
fn recorded_lock(digest: &str) -> Value {
    let path = mcpod::engine::home::state_dir()
        .join("provision/locks")
        .join(digest);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rest = &bytes[..];
    let mut last = Value::Null;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let header = std::str::from_utf8(&rest[..nl]).expect("header");
        let len: usize = header
            .rsplit_once(' ')
            .expect("NAME LEN")
            .1
            .parse()
            .expect("LEN");
        last = serde_json::from_slice(&rest[nl + 1..nl + 1 + len]).expect("a JSON file");
        rest = &rest[nl + 1 + len..];
    }
    last
}

fn lock_paths(lock: &Value) -> Vec<String> {
    lock["packages"]
        .as_object()
        .expect("packages")
        .keys()
        .cloned()
        .collect()
}

fn other_platforms(paths: &[String]) -> Vec<&String> {
    paths
        .iter()
        .filter(|p| {
            [
                "darwin", "win32", "windows", "freebsd", "android", "arm64", "musl",
            ]
            .iter()
            .any(|other| p.contains(other))
        })
        .collect()
}

/// From the reference to `tools/list` in one launch: the platform binary is
/// locked and staged, the others are left out, and the repeat fetches nothing.
#[test]
fn a_package_with_platform_binaries_launches_and_lists_its_tools() {
    let root = tempfile::tempdir().expect("root");
    // The server reads a kubeconfig at start (a dummy one, as its README's
    // quick start has the user's); it reaches no cluster to list its tools.
    let kube = root.path().join("kube");
    std::fs::create_dir(&kube).expect("kube");
    std::fs::write(
        kube.join("config"),
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster: {server: \"https://127.0.0.1:6443\"}\n  name: dummy\ncontexts:\n- context: {cluster: dummy, user: dummy}\n  name: dummy\ncurrent-context: dummy\nusers:\n- name: dummy\n  user: {token: dummy}\n",
    )
    .expect("kubeconfig");
    use std::os::unix::fs::PermissionsExt;
    for (path, mode) in [(&kube, 0o755), (&kube.join("config"), 0o644)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    let mut server =
        Server::start_with(root.path(), &[&format!("--allow-mount={}", kube.display())]);
    initialize(&mut server, "2025-11-25");
    let info = server.launch_detail(
        1,
        json!({
            "image": KUBERNETES,
            "mounts": [{"source": kube.display().to_string(), "target": "/kube"}],
            "overrides": {"kubernetes": {"args": ["--kubeconfig", "/kube/config"]}},
        }),
    );
    assert_eq!(info["servers"]["kubernetes"]["status"], "ready", "{info}");
    let session = info["session"].as_str().expect("session").to_string();
    let tools: Vec<String> = server
        .tool_names(2)
        .into_iter()
        .filter(|t| t.starts_with(&format!("{session}_kubernetes__")))
        .collect();
    assert!(
        tools.iter().any(|t| t.ends_with("__configuration_view")),
        "{tools:?}"
    );

    let provisioned = &info["provisioned"];
    let lock = recorded_lock(provisioned["lock"].as_str().expect("lock"));
    let paths = lock_paths(&lock);
    assert!(
        paths.contains(&"node_modules/kubernetes-mcp-server-linux-amd64".to_string()),
        "{paths:?}"
    );
    assert!(other_platforms(&paths).is_empty(), "{paths:?}");
    assert_eq!(
        lock["packages"]["node_modules/kubernetes-mcp-server"]["optionalDependencies"],
        json!({"kubernetes-mcp-server-linux-amd64": "0.0.67"}),
        "optional dependencies npm could not load are left out of their parent's entry"
    );
    server.call(3, "stop_session", json!({"session": session}));

    let again = structured(&server.call(4, "provision_server", json!({"package": KUBERNETES})));
    assert_eq!(again["fetched"], false, "{again}");
    assert_eq!(again["lock"], provisioned["lock"]);
}

/// A package whose every platform's binary is in the registry: the lock
/// keeps the session's platform's only, and only it is staged (an arm64
/// lock would hold the arm64 binary: see npm_platform's unit tests).
#[test]
fn only_the_sessions_platform_binary_is_locked_and_staged() {
    let host = Platform::host(Libc::Glibc);
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let done = structured(&server.call(1, "provision_server", json!({"package": ESBUILD})));
    let digest = done["lock"].as_str().expect("lock");
    let paths = lock_paths(&recorded_lock(digest));
    let binaries: Vec<&String> = paths.iter().filter(|p| p.contains("@esbuild/")).collect();
    assert_eq!(
        binaries,
        [&format!("node_modules/@esbuild/linux-{}", host.cpu)],
        "{paths:?}"
    );
    // The staged tree is the lock's digest, with a suffix when the lock has
    // install scripts (esbuild's postinstall; builds run per base).
    let npm_dir = mcpod::engine::home::state_dir().join("provision/npm");
    let tree = std::fs::read_dir(&npm_dir)
        .expect("staged trees")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(digest))
                && p.join("ctx").is_dir()
        })
        .expect("the lock's staged tree");
    let staged = tree.join("ctx/app/node_modules/@esbuild");
    let dirs: Vec<String> = std::fs::read_dir(&staged)
        .expect("staged @esbuild")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(dirs, [format!("linux-{}", host.cpu)]);
}

/// The lock npm writes for kubernetes-mcp-server@0.0.67 as it was recorded
/// before locks were fitted to the platform: the parent names six optional
/// binaries, the lock holds one.
fn unfitted_kubernetes_lock() -> Vec<u8> {
    let optional: serde_json::Map<String, Value> = [
        "darwin-amd64",
        "darwin-arm64",
        "linux-amd64",
        "linux-arm64",
        "windows-amd64",
        "windows-arm64",
    ]
    .iter()
    .map(|p| (format!("kubernetes-mcp-server-{p}"), json!("0.0.67")))
    .collect();
    let manifest = json!({"name": "mcpod-provisioned", "private": true, "dependencies": {"kubernetes-mcp-server": "0.0.67"}});
    let package_lock = json!({"name": "mcpod-provisioned", "lockfileVersion": 3, "requires": true, "packages": {
        "": {"name": "mcpod-provisioned", "dependencies": {"kubernetes-mcp-server": "0.0.67"}},
        "node_modules/kubernetes-mcp-server": {"version": "0.0.67",
            "integrity": "sha512-+pAaMnXnDueuiqm3nOWSVhBAY9/voqW6bjJajFdVmm9dwWUbszJIUjkHkFq6f4ULlOajifX+PfJLi6ltmZOEfw==",
            "bin": {"kubernetes-mcp-server": "bin/index.js"}, "optionalDependencies": optional},
        "node_modules/kubernetes-mcp-server-linux-amd64": {"version": "0.0.67",
            "integrity": "sha512-VW5wRdetbJmfCHkCEBA808bgJJRL1GCfkSZ17J+SJJuNiKcvjibcGR32272WKtwd3Td4ZVrOPomExKgCNE16jA==",
            "cpu": ["x64"], "optional": true, "os": ["linux"]},
    }});
    lock_of(&manifest, &package_lock)
}

fn lock_of(manifest: &Value, package_lock: &Value) -> Vec<u8> {
    let mut lock = Vec::new();
    for (name, bytes) in [
        ("package.json", manifest.to_string()),
        ("package-lock.json", package_lock.to_string()),
    ] {
        lock.extend_from_slice(format!("{name} {}\n", bytes.len()).as_bytes());
        lock.extend_from_slice(bytes.as_bytes());
    }
    lock
}

fn stage(package: &str, lock: &[u8], ctx: &Path) -> mcpod::Result<()> {
    let progress = mcpod::provision::Progressed {
        say: mcpod::provision::no_progress(),
    };
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(mcpod::provision::npm::stage(
            package,
            lock,
            &Platform::host(Libc::Glibc),
            ctx,
            &progress,
            tokio_util::sync::CancellationToken::new(),
        ))
}

/// `npm ci` refusing a lock: the error quotes npm's reason (its `npm error`
/// lines), not the tail of the usage text npm prints after it.
#[test]
fn a_failing_npm_is_quoted_by_its_reason_not_its_usage() {
    let t = tempfile::tempdir().expect("tmp");
    let err = stage(
        KUBERNETES,
        &unfitted_kubernetes_lock(),
        &t.path().join("ctx"),
    )
    .expect_err("npm ci refuses a lock that lacks optional dependencies")
    .to_string();
    assert!(
        err.contains("Missing: kubernetes-mcp-server-darwin-amd64@ from lock file")
            && err.contains("code EUSAGE")
            && err.contains("Fix:")
            && err.contains("`refresh`"),
        "{err}"
    );
    assert!(
        !err.contains("--install-strategy") && !err.contains("A complete log"),
        "{err}"
    );
}

/// An optional dependency that claims the session's platform, so it is kept
/// in the fitted lock, but is not a registry tarball with an integrity hash:
/// refused before npm ci fetches anything.
#[test]
fn a_fitting_optional_binary_from_outside_the_registry_is_refused() {
    let host = Platform::host(Libc::Glibc);
    let manifest = json!({"name": "mcpod-provisioned", "private": true, "dependencies": {"evil-mcp": "1.0.0"}});
    for (binary, needle) in [
        (
            json!({"version": "1.0.0", "resolved": "git+file:///tmp/evil-repo#4140968b", "integrity": "sha512-x"}),
            "resolves to `git+file:///tmp/evil-repo#4140968b`",
        ),
        (
            json!({"version": "1.0.0", "resolved": "https://registry.npmjs.org.evil.example/b/-/b-1.0.0.tgz", "integrity": "sha512-x"}),
            "not a tarball of the registry",
        ),
        (
            json!({"version": "1.0.0", "resolved": "https://registry.npmjs.org/evil-bin/-/evil-bin-1.0.0.tgz"}),
            "no integrity hash",
        ),
    ] {
        let mut binary = binary;
        binary["optional"] = json!(true);
        binary["os"] = json!(["linux"]);
        binary["cpu"] = json!([host.cpu]);
        binary["libc"] = json!(["glibc"]);
        let package_lock = json!({"name": "mcpod-provisioned", "lockfileVersion": 3, "packages": {
            "": {"name": "mcpod-provisioned", "dependencies": {"evil-mcp": "1.0.0"}},
            "node_modules/evil-mcp": {"version": "1.0.0", "integrity": "sha512-x",
                "optionalDependencies": {format!("evil-linux-{}", host.cpu): "1.0.0"}},
            format!("node_modules/evil-linux-{}", host.cpu): binary,
        }});
        // What resolving keeps for the platform is what stage is handed.
        let fitted = mcpod::provision::npm_platform::for_platform(
            package_lock.to_string().as_bytes(),
            &host,
        )
        .expect("fitted");
        assert!(fitted.left_out.is_empty(), "{:?}", fitted.left_out);
        let fitted: Value = serde_json::from_slice(&fitted.lock).expect("lock");
        let t = tempfile::tempdir().expect("tmp");
        let ctx = t.path().join("ctx");
        let err = stage("npm:evil-mcp@1.0.0", &lock_of(&manifest, &fitted), &ctx)
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains(&format!("`node_modules/evil-linux-{}`", host.cpu))
                && err.contains(needle)
                && err.contains("Fix:"),
            "{err}"
        );
        assert!(!ctx.join("app/node_modules").exists(), "npm ci ran");
    }
}
