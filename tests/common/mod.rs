//! Shared helpers for tests that drive the real buildah and podman.
#![allow(dead_code)]

pub mod egress;
pub mod engines;
pub mod host;
pub mod hostile;
pub mod http;
pub mod labels;
pub mod npm_registry;
pub mod rpc;
pub mod store;

use std::path::Path;
use std::process::Command;

/// Run the mcpod binary with `args` (in the crate's directory), with
/// `path_prefix` before PATH: whether it succeeded, its stdout as JSON (null
/// when it is not), and its stderr.
pub fn mcpod_cli(args: &[&str], path_prefix: Option<&Path>) -> (bool, serde_json::Value, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcpod"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(prefix) = path_prefix {
        let path = std::env::var("PATH").unwrap_or_default();
        command.env("PATH", format!("{}:{path}", prefix.display()));
    }
    let out = command.output().expect("mcpod runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A name no other test (or earlier run) uses: `mcpod-test-<what>-<nonce>`.
pub fn unique(what: &str) -> String {
    format!("mcpod-test-{what}-{}", mcpod::engine::nonce())
}

/// A build context directory with `files` (path, content) in it.
pub fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, content) in files {
        write(dir.path(), path, content);
    }
    dir
}

pub fn write(root: &Path, path: &str, content: &str) {
    let full = root.join(path);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(full, content).expect("write");
}

/// `podman ARGS...`, which must succeed; the lines it prints.
/// The build containers (`mcpod-build-…`) that exist for what `building`
/// names (a package, as their `io.mcpod.build` label shows it): other tests
/// build at the same time, so a test asks only about its own.
pub fn build_containers(building: &str) -> Vec<String> {
    podman_lines(&[
        "ps",
        "--all",
        "--filter",
        "label=io.mcpod.build",
        "--format",
        "{{.Names}} {{index .Labels \"io.mcpod.build\"}}",
    ])
    .into_iter()
    .filter(|line| line.contains(building))
    .collect()
}

pub fn podman_lines(args: &[&str]) -> Vec<String> {
    // A listing can fail while another process removes a container or an
    // image (podman's storage has no lock across it): try it again.
    let mut out = Command::new("podman").args(args).output().expect("podman");
    for _ in 0..10 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        out = Command::new("podman").args(args).output().expect("podman");
    }
    assert!(out.status.success(), "podman {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Containers (any state) carrying the label `KEY=VALUE`.
pub fn containers_labelled(label: &str) -> Vec<String> {
    podman_lines(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("label={label}"),
    ])
}

/// What `program ARGS...` prints, a line each. A listing that fails (buildah
/// races a concurrent image removal) is tried again, so a cleanup that lists
/// first never removes nothing by mistake.
fn lines(program: &str, args: &[&str]) -> Vec<String> {
    let mut out = Command::new(program).args(args).output().expect(program);
    for _ in 0..5 {
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        out = Command::new(program).args(args).output().expect(program);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Local image names containing `needle`.
pub fn images_named(needle: &str) -> Vec<String> {
    lines("buildah", &["images", "--format", "{{.Name}}:{{.Tag}}"])
        .into_iter()
        .filter(|n| n.contains(needle))
        .collect()
}

/// buildah working containers (of any builder) whose name or image contains `needle`.
pub fn containers_named(needle: &str) -> Vec<String> {
    lines(
        "buildah",
        &[
            "containers",
            "--all",
            "--format",
            "{{.ContainerName}} {{.ImageName}}",
        ],
    )
    .into_iter()
    .filter(|n| n.contains(needle))
    .collect()
}

/// Tag the busybox probe image as `localhost/<name>:1`, so a test's working
/// containers carry a name no other test shares.
pub async fn busybox_base(name: &str) -> String {
    mcpod::doctor::ensure_probe_image()
        .await
        .expect("the probe image builds (run scripts/setup)");
    let tag = format!("localhost/{name}:1");
    let status = Command::new("buildah")
        .args(["tag", mcpod::doctor::PROBE_IMAGE, &tag])
        .status()
        .expect("buildah tag");
    assert!(status.success());
    tag
}

/// A build of `ctx` as `localhost/NAME`, its `Containerfile`, nothing else.
pub fn build_spec(name: &str, ctx: &Path) -> mcpod::image::BuildSpec {
    mcpod::image::BuildSpec {
        name: format!("localhost/{name}"),
        containerfile: ctx.join("Containerfile"),
        context: ctx.to_path_buf(),
        build_args: Default::default(),
        servers: Default::default(),
        labels: Default::default(),
        no_cache: false,
    }
}

/// A progress sink that drops everything.
pub fn quiet() -> mcpod::image::Progress {
    std::sync::Arc::new(|_| {})
}

/// Removes every image whose name contains the guard's needle when dropped.
pub struct ImageCleanup(pub String);

impl Drop for ImageCleanup {
    fn drop(&mut self) {
        for name in images_named(&self.0) {
            let _ = Command::new("buildah").args(["rmi", "-f", &name]).output();
        }
    }
}

/// Build `examples/<dir>` as `localhost/<name>` (a cache hit after the first
/// time); its tag. `staged` is a path inside the example that its script makes.
pub fn example_image(dir: &str, name: &str, staged: &str, script: &str) -> String {
    context_image(&format!("examples/{dir}"), name, staged, script)
}

/// Build the context at `dir` (relative to the repository) as `localhost/<name>`
/// (a cache hit after the first time); its tag. `staged` is a path inside the
/// context that `script` makes.
pub fn context_image(dir: &str, name: &str, staged: &str, script: &str) -> String {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let ctx = repo.join(dir);
    assert!(
        ctx.join(staged).exists(),
        "{dir}/{staged} is missing: run {script} (scripts/test does)"
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(mcpod::image::build_image(
            mcpod::image::BuildSpec {
                name: format!("localhost/{name}"),
                containerfile: ctx.join("Containerfile"),
                context: ctx,
                build_args: Default::default(),
                servers: Default::default(),
                labels: Default::default(),
                no_cache: false,
            },
            std::sync::Arc::new(|_| {}),
            tokio_util::sync::CancellationToken::new(),
        ))
        .unwrap_or_else(|e| panic!("the {dir} image builds: {e}"))
        .tag
}

/// The fixture server's image (examples/hello).
pub fn hello_image() -> String {
    example_image(
        "hello",
        "mcpod-hello",
        "bin/hello-server",
        "scripts/build-hello",
    )
}

/// The npm reference servers (examples/node-reference).
pub fn node_reference_image() -> String {
    example_image(
        "node-reference",
        "mcpod-node-reference",
        "stage/app/node_modules",
        "scripts/build-node-reference",
    )
}

/// The PyPI time and git servers (examples/python-time).
pub fn python_time_image() -> String {
    example_image(
        "python-time",
        "mcpod-python-time",
        "stage/site",
        "scripts/build-debian-base && scripts/build-python-time",
    )
}

/// Session containers (any owner, any state) whose session label is `session`.
pub fn containers_of(session: &str) -> Vec<String> {
    containers_labelled(&format!("io.mcpod.session={session}"))
}
