//! npm provisioning takes packages from the operator's registry only: a
//! registry package whose dependencies (or their dependencies) come from a
//! git repository, a `file:` path, a directory or a URL is refused, naming
//! the dependency, before anything of it is cloned, fetched or staged. The
//! registry is a real one on 127.0.0.1 (tests/fixtures/npm_registry.py),
//! reached the way the operator points npm at one (`npm_config_registry`);
//! npm, git and buildah are the real ones.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::npm_registry::Registry;

use serde_json::{Value, json};

/// `git` and `ssh` first on PATH that note each run in `ran`, then do what
/// the real ones do (git) or fail (ssh).
fn noting_shims(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let real_git = Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .expect("sh");
    let real_git = String::from_utf8_lossy(&real_git.stdout).trim().to_string();
    assert!(!real_git.is_empty(), "git is installed");
    let ran = dir.join("ran");
    for (name, then) in [
        ("git", format!("exec {real_git} \"$@\"")),
        ("ssh", "exit 255".to_string()),
    ] {
        let path = bin.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{name} $*\" >> {}\n{then}\n",
                ran.display()
            ),
        )
        .expect("write shim");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    bin
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

/// Whether `needle` is in any file under `dir` (links not followed).
fn found_in(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file()
                && std::fs::read(entry.path())
                    .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                hits.push(entry.path());
            }
        }
    }
    hits
}

fn images_named(name: &str) -> Vec<String> {
    common::podman_lines(&[
        "images",
        "--noheading",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        &format!("reference={name}"),
    ])
}

/// Removes the images this test's packages could make, whatever happened.
struct RemoveImages(&'static [&'static str]);

impl Drop for RemoveImages {
    fn drop(&mut self) {
        for name in self.0 {
            for image in images_named(name) {
                let _ = Command::new("podman")
                    .args(["rmi", "--force", &image])
                    .output();
            }
        }
    }
}

/// A registry package whose dependency (or a dependency's dependency) is a
/// git repository on the host, a `file:` path, a host directory, a URL or a
/// `git+ssh:` remote: each is refused naming it; no git or ssh runs, the URL
/// is never requested, the marker in those sources is in no staged file, npm
/// cache or image, and nothing is left half-written. A clean package from the
/// same registry, its lock with the registry's tarball URLs, provisions.
#[test]
fn a_dependency_from_outside_the_registry_is_refused_before_anything_is_fetched() {
    let _images = RemoveImages(&["localhost/npm/evil-mcp", "localhost/npm/good-mcp"]);
    let t = tempfile::tempdir().expect("tmp");
    let marker = format!("mcpod-host-secret-{}", mcpod::engine::nonce());

    // The host's files a dependency points at, each holding the marker.
    let repo = t.path().join("repo");
    let dir = t.path().join("x");
    for d in [&repo, &dir] {
        std::fs::create_dir_all(d).expect("mkdir");
        std::fs::write(
            d.join("package.json"),
            json!({"name": "hostdep", "version": "1.0.0"}).to_string(),
        )
        .expect("write");
        std::fs::write(d.join("marker.txt"), &marker).expect("write");
    }
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "x"]);
    let git_url = format!("git+file://{}", repo.display());
    let dir_url = format!("file:{}", dir.display());

    let hostile = |deps: Value| json!({"dependencies": deps});
    let registry = Registry::start(
        t.path(),
        &json!({
            "packages": {
                "evil-mcp": {
                    "1.0.0": hostile(json!({"gitdep": git_url})),
                    "1.0.1": hostile(json!({"filedep": "file:../x"})),
                    "1.0.2": hostile(json!({"dirdep": dir_url})),
                    "1.0.3": hostile(json!({"urldep": "{registry}/x.tgz"})),
                    "1.0.4": hostile(json!({"sshdep": "git+ssh://git@127.0.0.1:1/evil/repo.git"})),
                    "1.1.0": hostile(json!({"middle": "1.0.0"})),
                },
                "middle": {"1.0.0": hostile(json!({"gitdep": git_url}))},
                "good-mcp": {"1.0.0": hostile(json!({"leaf": "^1.0.0"}))},
                "leaf": {"1.0.0": {}},
            },
            "tarballs": {
                "/x.tgz": {
                    "package.json": json!({"name": "urldep", "version": "1.0.0"}).to_string(),
                    "marker.txt": marker,
                },
            },
        }),
    );
    let bin = noting_shims(t.path());
    let state = t.path().join("state");
    let cache = t.path().join("npm-cache");
    let provision = |package: &str, extra: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mcpod"));
        command
            .args(["provision", package, "--json"])
            .env("MCPOD_STATE_DIR", &state)
            .env("npm_config_registry", format!("{}/", registry.url))
            .env("npm_config_cache", &cache)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            );
        for (k, v) in extra {
            command.env(k, v);
        }
        let out = command.output().expect("mcpod runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    for (version, dependency, source) in [
        ("1.0.0", "gitdep", git_url.as_str()),
        ("1.0.1", "filedep", "file:../x"),
        ("1.0.2", "dirdep", dir_url.as_str()),
        ("1.0.3", "urldep", "/x.tgz"),
        ("1.0.4", "sshdep", "git+ssh://git@127.0.0.1:1/evil/repo.git"),
        ("1.1.0", "gitdep", git_url.as_str()),
    ] {
        let package = format!("npm:evil-mcp@{version}");
        let (ok, _, err) = provision(&package, &[]);
        assert!(!ok, "{package} was provisioned");
        assert!(
            err.contains(&format!("`{dependency}`"))
                && err.contains(source)
                && err.contains("registry versions only")
                && err.contains("Fix:"),
            "{package}: the error names the dependency, its source and the fix: {err}"
        );
        if version == "1.1.0" {
            assert!(err.contains("`middle@1.0.0` depends on `gitdep`"), "{err}");
        }
        assert!(
            !t.path().join("ran").exists(),
            "{package}: git or ssh ran: {}",
            std::fs::read_to_string(t.path().join("ran")).unwrap_or_default()
        );
    }
    assert!(
        !registry.requested().contains("/x.tgz"),
        "the URL dependency was fetched: {}",
        registry.requested()
    );
    for place in [&state, &cache] {
        let hits = found_in(place, marker.as_bytes());
        assert!(hits.is_empty(), "the host's marker was copied: {hits:?}");
    }
    assert!(
        images_named("localhost/npm/evil-mcp").is_empty(),
        "an image was built"
    );
    let provisioned = state.join("provision");
    for entry in std::fs::read_dir(&provisioned)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        assert!(
            !name.starts_with("work-") && name != "npm",
            "left behind: {}",
            entry.path().display()
        );
    }

    // A clean package from the same registry, with the tarball URLs in its
    // lock (the check reads them against the configured registry).
    let (ok, out, err) = provision(
        "npm:good-mcp@1.0.0",
        &[("npm_config_omit_lockfile_registry_resolved", "false")],
    );
    assert!(ok, "{err}");
    let done: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(done["reference"], "npm:good-mcp@1.0.0", "{done}");
    let lock = found_in(&provisioned.join("locks"), registry.url.as_bytes());
    assert_eq!(lock.len(), 1, "the lock names the registry's tarballs");
    assert!(!t.path().join("ran").exists(), "git ran");
}

/// A recorded lock (one written before the check, or by another npm) whose
/// dependency is a git repository on the host: staging refuses it, naming its
/// place in the tree, before npm ci runs, whatever npm's flags would do.
#[test]
fn a_recorded_lock_with_a_git_source_is_refused_before_npm_ci() {
    let t = tempfile::tempdir().expect("tmp");
    let repo = format!(
        "git+file://{}/repo#4140968b23b203e4436c957bb708a183322f601b",
        t.path().display()
    );
    let manifest = json!({"name": "mcpod-provisioned", "private": true, "dependencies": {"evil-mcp": "1.0.0"}}).to_string();
    let package_lock = json!({"name": "mcpod-provisioned", "lockfileVersion": 3, "requires": true, "packages": {
        "": {"name": "mcpod-provisioned", "dependencies": {"evil-mcp": "1.0.0"}},
        "node_modules/evil-mcp": {"version": "1.0.0", "resolved": "https://registry.npmjs.org/evil-mcp/-/evil-mcp-1.0.0.tgz",
                                  "integrity": "sha512-x", "dependencies": {"gitdep": "1.0.0"}},
        "node_modules/evil-mcp/node_modules/gitdep": {"version": "1.0.0", "resolved": repo},
    }})
    .to_string();
    let mut lock = Vec::new();
    for (name, bytes) in [
        ("package.json", &manifest),
        ("package-lock.json", &package_lock),
    ] {
        lock.extend_from_slice(format!("{name} {}\n", bytes.len()).as_bytes());
        lock.extend_from_slice(bytes.as_bytes());
    }
    let ctx = t.path().join("ctx");
    let progress = mcpod::provision::Progressed {
        say: mcpod::provision::no_progress(),
    };
    let err = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(mcpod::provision::npm::stage(
            "npm:evil-mcp@1.0.0",
            &lock,
            &mcpod::provision::npm_platform::Platform::host(
                mcpod::provision::npm_platform::Libc::Glibc,
            ),
            &ctx,
            &progress,
            tokio_util::sync::CancellationToken::new(),
        ))
        .expect_err("the lock is refused")
        .to_string();
    assert!(
        err.contains(&format!(
            "`node_modules/evil-mcp/node_modules/gitdep` resolves to `{repo}`"
        )) && err.contains("Fix:"),
        "{err}"
    );
    assert!(
        !ctx.join("app/node_modules").exists(),
        "npm ci ran: {:?}",
        std::fs::read_dir(ctx.join("app/node_modules")).map(|d| d.count())
    );
}
