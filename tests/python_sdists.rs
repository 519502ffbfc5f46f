//! PyPI dependencies that ship only an sdist (`provision::build::sdist`): a
//! real MCP server whose dependency has no wheel is provisioned (the sdist
//! built in a build container, never on the host), answers tools/list, and a
//! repeat is offline and builds nothing; hostile sdists served from a local
//! find-links directory (the operator's pip configuration, which mcpod
//! respects) fail with an error naming them, and leave no build container
//! and no image. Real pip, podman and buildah.

mod common;

use std::path::Path;
use std::process::Command;

/// arxiv-mcp-server with the arxiv and feedparser of before feedparser
/// 6.0.12: feedparser 6.0.11 needs `sgmllib3k`, which PyPI has only as an
/// sdist (a setup.py, no pyproject.toml).
const ARXIV: &str = "pypi:arxiv-mcp-server==0.8.2";
const PINS: [&str; 4] = ["--pin", "arxiv==2.1.3", "--pin", "feedparser==6.0.11"];

fn mcpod(args: &[&str], env: &[(&str, &str)]) -> (bool, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("mcpod runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The built wheels in the state dir's sdist cache, with their mtimes.
fn built_wheels() -> Vec<(String, std::time::SystemTime)> {
    let state = std::env::var("MCPOD_STATE_DIR").expect("MCPOD_STATE_DIR is set (scripts/test)");
    let mut out = Vec::new();
    let cache = Path::new(&state).join("provision/sdists");
    for sdist in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
        for built in std::fs::read_dir(sdist.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for wheel in std::fs::read_dir(built.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = wheel.file_name().to_string_lossy().to_string();
                if name.ends_with(".whl") {
                    let mtime = wheel.metadata().and_then(|m| m.modified()).expect("mtime");
                    out.push((name, mtime));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_server_whose_dependency_is_only_an_sdist_is_built_in_a_container_and_answers() {
    let mut args = vec!["provision", ARXIV, "--json"];
    args.extend(PINS);
    let (ok, provisioned, err) = mcpod(&args, &[]);
    assert!(ok, "{err}");
    let warnings = provisioned["warnings"].to_string();
    assert!(
        warnings.contains("sgmllib3k==1.0.0 has no wheel") && warnings.contains("build container"),
        "{warnings}"
    );
    let wheels = built_wheels();
    assert!(
        wheels
            .iter()
            .any(|(n, _)| n.starts_with("sgmllib3k-1.0.0-")),
        "{wheels:?}"
    );
    let left = common::build_containers("sgmllib3k==");
    assert!(left.is_empty(), "{left:?}");
    let tag = provisioned["image"]["tag"]
        .as_str()
        .expect("tag")
        .to_string();

    // The server starts (sgmllib is imported through feedparser) and lists its tools.
    let (ok, launched, err) = mcpod(&["launch", &tag, "--json"], &[]);
    assert!(ok, "{err}");
    let server = &launched["session"]["servers"]["arxiv"];
    assert_eq!(server["status"], "ready", "{launched}");
    let tools: Vec<&str> = server["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tools.iter().any(|t| t.ends_with("search_papers")),
        "{tools:?}"
    );

    // A repeat: offline (pip's index unreachable) and nothing rebuilt.
    let dead = [
        ("PIP_INDEX_URL", "http://127.0.0.1:9/simple"),
        ("PIP_FIND_LINKS", ""),
    ];
    let (ok, again, err) = mcpod(&args, &dead);
    assert!(ok, "a repeat needs no index: {err}");
    assert_eq!(again["image"]["tag"], tag.as_str(), "{again}");
    assert_eq!(built_wheels(), wheels, "the wheel was not built again");
    assert!(
        again["warnings"]
            .to_string()
            .contains("sgmllib3k==1.0.0 has no wheel"),
        "a repeat warns the same: {again}"
    );
}

/// An sdist `NAME-1.0.tar.gz` in `links` with `files` (path in its top
/// directory, content), and a PKG-INFO.
fn sdist(links: &Path, name: &str, files: &[(&str, &str)]) {
    let top = format!("{}-1.0", name.replace('-', "_"));
    let tree = tempfile::tempdir().expect("tree");
    common::write(
        tree.path(),
        &format!("{top}/PKG-INFO"),
        &format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"),
    );
    for (path, content) in files {
        common::write(tree.path(), &format!("{top}/{path}"), content);
    }
    let archive = links.join(format!("{top}.tar.gz"));
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(tree.path())
        .arg(&top)
        .status()
        .expect("tar");
    assert!(status.success());
}

/// Provision `name` (only an sdist, in `links`): the error, with no build
/// container left and no image made.
fn refused(links: &Path, name: &str) -> String {
    let reference = format!("pypi:{name}==1.0");
    let links = links.to_string_lossy().to_string();
    let (ok, out, err) = mcpod(
        &["provision", &reference, "--json"],
        &[("PIP_FIND_LINKS", links.as_str())],
    );
    assert!(!ok, "{out}");
    eprintln!("{err}\n---");
    let left = common::build_containers(&format!("{name}=="));
    assert!(left.is_empty(), "{left:?}");
    assert!(
        common::images_named(&format!("pypi/{name}")).is_empty(),
        "no image of {name}"
    );
    err
}

/// Hostile sdists, one after another: a build that reaches for the network
/// and fails, a build requirement that is itself only an sdist, a huge and
/// a malformed pyproject.toml.
#[test]
fn hostile_sdists_are_refused_by_name_and_leave_nothing_behind() {
    let links = tempfile::tempdir().expect("links");
    let fails = common::unique("sdist-fails");
    sdist(
        links.path(),
        &fails,
        &[(
            "setup.py",
            "import sys, urllib.request\n\
             try:\n    urllib.request.urlopen('https://pypi.org/simple/', timeout=5)\n    print('HOSTILE: reached the network', file=sys.stderr)\n\
             except Exception as e:\n    print('HOSTILE: no network:', type(e).__name__, file=sys.stderr)\n\
             open('/etc/hostile', 'w')\n",
        )],
    );
    let err = refused(links.path(), &fails);
    assert!(err.contains(&format!("{fails}==1.0 (sdist)")), "{err}");
    assert!(err.contains("HOSTILE: no network"), "{err}");
    assert!(!err.contains("reached the network"), "{err}");
    assert!(
        err.contains("Read-only file system") || err.contains("Permission denied"),
        "{err}"
    );
    assert!(err.contains("Fix:") && err.contains("pins"), "{err}");

    let sdist_req = common::unique("sdist-req");
    sdist(
        links.path(),
        &sdist_req,
        &[(
            "pyproject.toml",
            "[build-system]\nrequires = [\"sgmllib3k\"]\nbuild-backend = \"x\"\n",
        )],
    );
    let err = refused(links.path(), &sdist_req);
    assert!(err.contains(&format!("{sdist_req}==1.0 (sdist)")), "{err}");
    assert!(
        err.contains("not all available as wheels") && err.contains("sgmllib3k"),
        "{err}"
    );

    let huge = common::unique("sdist-huge");
    let big = format!(
        "[project]\nname = \"x\"\ndescription = \"{}\"\n",
        "x".repeat(300 << 10)
    );
    sdist(links.path(), &huge, &[("pyproject.toml", &big)]);
    let err = refused(links.path(), &huge);
    assert!(
        err.contains(&huge) && err.contains("more than the 256 KiB"),
        "{err}"
    );

    let malformed = common::unique("sdist-toml");
    sdist(
        links.path(),
        &malformed,
        &[(
            "pyproject.toml",
            "[build-system\nrequires = [\"--index-url http://evil\"",
        )],
    );
    let err = refused(links.path(), &malformed);
    assert!(
        err.contains(&format!("{malformed}==1.0 (sdist)")) && err.contains("not TOML"),
        "{err}"
    );
}
