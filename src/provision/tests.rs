use super::*;

#[test]
fn locks_round_trip_and_reject_junk() {
    let lock = lock_bytes(&[("a.json", b"{\n}"), ("b.txt", b"")]);
    let files = lock_files(&lock).unwrap();
    assert_eq!(files, [("a.json", &b"{\n}"[..]), ("b.txt", &b""[..])]);
    for junk in [&b"x"[..], b"a 99\nshort", b"../x 1\na", b"a nope\n"] {
        assert!(lock_files(junk).is_err());
    }
}

#[test]
fn names_from_packages() {
    let p = PackageRef::parse("t", "npm:@modelcontextprotocol/server-memory@1.0.0").unwrap();
    assert_eq!(
        image_name(&p),
        "localhost/npm/modelcontextprotocol/server-memory"
    );
    assert_eq!(server_name(None, &p, None).unwrap(), "memory");
    let t = PackageRef::parse("t", "pypi:mcp-server-time==1").unwrap();
    assert_eq!(server_name(None, &t, None).unwrap(), "time");
    let g = PackageRef::parse("t", "npm:github-mcp-server@1.0.0").unwrap();
    assert_eq!(server_name(None, &g, None).unwrap(), "github");
    let m = PackageRef::parse("t", "npm:mcp@1.0.0").unwrap();
    assert_eq!(server_name(None, &m, None).unwrap(), "mcp");
    assert_eq!(
        server_name(None, &p, Some("io.github.x/9time")).unwrap(),
        "time"
    );
    assert_eq!(server_name(Some("mem"), &p, None).unwrap(), "mem");
    assert!(server_name(Some("bad name"), &p, None).is_err());
    let p = PackageRef::parse("t", "pypi:Mcp_Server.Time==1").unwrap();
    assert_eq!(image_name(&p), "localhost/pypi/mcp-server-time");
    crate::image::reference::validate_name(&image_name(&p)).unwrap();
    let scoped = PackageRef::parse("t", "npm:@a.b/c~d@1.0.0").unwrap();
    crate::image::reference::validate_name(&image_name(&scoped)).unwrap();
}

#[test]
fn request_keys_cover_every_input() {
    let p = |s| PackageRef::parse("t", s).unwrap();
    let pin = |n: &str, s: &str| reference::Pin {
        name: n.into(),
        spec: s.into(),
    };
    let key = |p: &PackageRef, pins: &[reference::Pin], target: &str, runtime: &str| {
        request_key(p, pins, target, runtime, None, &[])
    };
    let base = key(&p("npm:a@1.0.0"), &[], "", "");
    assert_ne!(base, key(&p("npm:a@1.0.1"), &[], "", ""));
    assert_ne!(base, key(&p("npm:a@1.0.0"), &[pin("b", "1")], "", ""));
    assert_ne!(base, key(&p("npm:a@1.0.0"), &[], "cp3.11", ""));
    assert_ne!(base, key(&p("pypi:a==1.0.0"), &[], "", ""));
    assert_ne!(base, key(&p("npm:a@1.0.0"), &[], "", "node@22"));
    assert_eq!(base, key(&p("npm:a@1.0.0"), &[], "", ""));
    let published = super::as_of::AsOf::Published;
    let day = super::as_of::AsOf::Day(2025, 4, 25);
    let with = |a| request_key(&p("npm:a@1.0.0"), &[], "", "", Some(a), &[]);
    assert_ne!(base, with(&published));
    assert_ne!(with(&published), with(&day));
}

/// A lock resolved for one CPU or C library is not reused for another: the
/// npm platform is part of the request's key.
#[test]
fn the_npm_platform_is_part_of_the_request_key() {
    use npm_platform::{Libc, Platform};
    let base = Base {
        runtime: Runtime::Node,
        id: "node@20.20.2".into(),
        image: "localhost/mcpod-base-node:x".into(),
        image_id: "x".into(),
        version: "v20.20.2".into(),
        glibc: None,
        origin: "made".into(),
        headers: None,
        integrity: None,
        debian: None,
    };
    let p = PackageRef::parse("t", "npm:kubernetes-mcp-server@0.0.67").unwrap();
    let on = |cpu, libc| Platform {
        os: "linux",
        cpu,
        libc,
    };
    let keys: Vec<String> = [
        on("x64", Libc::Glibc),
        on("arm64", Libc::Glibc),
        on("x64", Libc::Musl),
    ]
    .iter()
    .map(|platform| request_key(&p, &[], &target(&p, Some(&base), platform), "", None, &[]))
    .collect();
    assert!(
        keys[0] != keys[1] && keys[0] != keys[2] && keys[1] != keys[2],
        "{keys:?}"
    );
    // The made base is glibc; an operator's base whose node has no glibc is musl.
    assert_eq!(npm_platform(None).libc, Libc::Glibc);
    assert_eq!(npm_platform(Some(&base)).libc, Libc::Musl);
    let glibc = Base {
        glibc: Some("2.36".into()),
        ..base
    };
    assert_eq!(npm_platform(Some(&glibc)).libc, Libc::Glibc);
}
