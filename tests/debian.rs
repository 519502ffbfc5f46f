//! Debian's packages fetched and unpacked without running their code
//! (`provision::debian`), against the real archive through the host's apt.

mod common;

use std::path::Path;

use mcpod::provision::debian::{self, Suite};
use tokio_util::sync::CancellationToken;

/// Run `argv` in `rootfs` as a container's root file system (network none).
fn run_in(rootfs: &Path, argv: &[&str]) -> String {
    let out = std::process::Command::new("podman")
        .args(["run", "--rm", "--network=none", "--rootfs"])
        .arg(rootfs)
        .args(argv)
        .output()
        .expect("podman runs");
    assert!(
        out.status.success(),
        "{argv:?} in the unpacked tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_python_unpacks_and_runs_and_a_second_fetch_brings_only_what_is_new() {
    if let Some(why) = debian::unavailable().await {
        panic!("this host cannot fetch Debian packages: {why}");
    }
    let cancel = CancellationToken::new();
    let progress = common::quiet();
    let base = debian::fetch(
        Suite::Trixie,
        &["python3".to_string()],
        &[],
        &progress,
        &cancel,
    )
    .await
    .expect("python3 and its closure fetch");
    let names: Vec<&str> = base.iter().map(|d| d.name.as_str()).collect();
    assert!(names.contains(&"libc6"), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("python3.13")),
        "{names:?}"
    );
    assert!(base.iter().all(|d| d.sha256.len() == 64));
    // Again, from the download cache: the same packages, none left out.
    let again = debian::fetch(
        Suite::Trixie,
        &["python3".to_string()],
        &[],
        &progress,
        &cancel,
    )
    .await
    .expect("fetches again");
    assert_eq!(again, base, "a repeat names every package, cached or not");

    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = dir.path().join("rootfs");
    debian::unpack(&base, &rootfs, &cancel)
        .await
        .expect("unpacks");
    assert!(
        std::fs::symlink_metadata(rootfs.join("lib"))
            .expect("/lib")
            .file_type()
            .is_symlink(),
        "/lib links into /usr"
    );
    let version = run_in(
        &rootfs,
        &[
            "/usr/bin/python3",
            "-c",
            "import sys, ssl, sqlite3, json; print('%d.%d' % sys.version_info[:2])",
        ],
    );
    assert_eq!(version, Suite::Trixie.python_minor());

    // On top of that tree, git brings git and what python3 did not.
    let more = debian::fetch(
        Suite::Trixie,
        &["git".to_string()],
        &base,
        &progress,
        &cancel,
    )
    .await
    .expect("git fetches on top");
    let more_names: Vec<&str> = more.iter().map(|d| d.name.as_str()).collect();
    assert!(more_names.contains(&"git"), "{more_names:?}");
    assert!(
        !more_names.contains(&"libc6") && !more_names.contains(&"python3.13"),
        "what the tree holds is not fetched again: {more_names:?}"
    );
    debian::unpack(&more, &rootfs, &cancel)
        .await
        .expect("unpacks");
    let git = run_in(&rootfs, &["/usr/bin/git", "--version"]);
    assert!(git.starts_with("git version"), "{git}");
}

#[tokio::test]
async fn names_that_are_not_debian_packages_are_refused_before_apt_runs() {
    let cancel = CancellationToken::new();
    for hostile in ["-oDir=/", "git; rm -rf /", "Git", "git=", "../../etc"] {
        let err = debian::fetch(
            Suite::Bookworm,
            &[hostile.to_string()],
            &[],
            &common::quiet(),
            &cancel,
        )
        .await
        .expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("not a Debian package name") && text.contains(hostile),
            "{text}"
        );
    }
}
