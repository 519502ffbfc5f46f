//! Build the in-container supervisor (`supervisor/`) as a static binary for
//! the target, so mcpod can embed it and mount it into any image, `FROM
//! scratch` included. It has a target directory of its own (`target/supervisor`),
//! shared by every profile of mcpod, and cargo skips the work when nothing changed.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let target = std::env::var("TARGET").expect("cargo sets it");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target"))
        .join("supervisor");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .arg("build")
        .args([
            "--quiet",
            "--profile",
            "supervisor",
            "-p",
            "mcpod-supervisor",
        ])
        .args(["--bin", "mcpod-supervisor", "--target", &target])
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--manifest-path")
        .arg(manifest.join("Cargo.toml"));
    // A clean environment for the inner build: none of the outer build's
    // flags or wrappers (clippy's among them), only static linking.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let keep = ["CARGO_HOME", "CARGO_MAKEFLAGS"].contains(&name.as_str())
            || [
                "CARGO_NET_",
                "CARGO_HTTP_",
                "CARGO_REGISTRIES_",
                "CARGO_REGISTRY_",
            ]
            .iter()
            .any(|p| name.starts_with(p));
        if (name.starts_with("CARGO_") && !keep)
            || [
                "RUSTFLAGS",
                "RUSTC_WORKSPACE_WRAPPER",
                "RUSTC_WRAPPER",
                "RUSTDOCFLAGS",
            ]
            .contains(&name.as_str())
            || name.starts_with("CLIPPY")
        {
            build.env_remove(name);
        }
    }
    build.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static");
    let status = build.status().expect("running cargo for the supervisor");
    assert!(status.success(), "building the supervisor failed: {status}");
    let binary = target_dir
        .join(&target)
        .join("supervisor")
        .join("mcpod-supervisor");
    println!("cargo:rustc-env=MCPOD_SUPERVISOR_BIN={}", binary.display());
    for path in [
        "supervisor/src",
        "supervisor/Cargo.toml",
        "Cargo.lock",
        "build.rs",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
