//! What a build's RUN steps reach: observed from inside a RUN step, whose
//! report is baked into the image and read back with `podman run`.

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::*;
use mcpod::image::build_image;
use tokio_util::sync::CancellationToken;

/// A RUN step's report on itself: its uid map, effective capabilities,
/// network interfaces and default route, and a connection to a listener on
/// the host's 0.0.0.0 (by the host's address, and by the default gateway),
/// written to /report.json. It never fails, so the image always builds.
const PROBE: &str = r#"
import json, socket, sys
def read(path):
    try:
        return open(path).read()
    except Exception as e:
        return "error: %s" % e
def connect(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)
status = read("/proc/self/status")
gateway = None
for line in read("/proc/net/route").splitlines()[1:]:
    f = line.split()
    if len(f) > 2 and f[1] == "00000000":
        gateway = socket.inet_ntoa(bytes.fromhex(f[2])[::-1])
port = int(sys.argv[2])
json.dump({
    "uid_map": read("/proc/self/uid_map").split(),
    "cap_eff": [l.split()[1] for l in status.splitlines() if l.startswith("CapEff:")],
    "interfaces": [l.split(":")[0].strip() for l in read("/proc/net/dev").splitlines()[2:]],
    "gateway": gateway,
    "host": connect(sys.argv[1], port),
    "gateway_connect": connect(gateway, port) if gateway else "no default route",
    "metadata": connect("169.254.169.254", 80),
}, open("/report.json", "w"))
"#;

/// The host's first address other than loopback (`hostname -I`).
fn host_address() -> String {
    let out = Command::new("hostname")
        .arg("-I")
        .output()
        .expect("hostname");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.contains('.'))
        .expect("the host has an IPv4 address")
        .to_string()
}

fn read_report(tag: &str) -> serde_json::Value {
    let lines = podman_lines(&[
        "run",
        "--rm",
        "--network=none",
        "--entrypoint=cat",
        tag,
        "/report.json",
    ]);
    serde_json::from_str(&lines.join("\n")).expect("the report is JSON")
}

/// The capability mask of `names` (bit numbers from linux/capability.h).
fn mask(names: &[&str]) -> String {
    let bit = |n: &str| match n {
        "CHOWN" => 0,
        "DAC_OVERRIDE" => 1,
        "FOWNER" => 3,
        "FSETID" => 4,
        "KILL" => 5,
        "SETGID" => 6,
        "SETUID" => 7,
        other => panic!("no bit for {other}"),
    };
    format!("{:016x}", names.iter().fold(0u64, |m, n| m | 1 << bit(n)))
}

#[tokio::test]
async fn run_steps_keep_few_capabilities_and_reach_no_network() {
    let name = unique("isolated");
    let _cleanup = ImageCleanup(name.clone());
    let listener = TcpListener::bind("0.0.0.0:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let ctx = context(&[
        (
            "Containerfile",
            "FROM localhost/mcpod-debian:bookworm\nARG HOST_ADDR\nARG PORT\nCOPY probe.py /probe.py\nRUN python3 /probe.py \"$HOST_ADDR\" \"$PORT\"\n",
        ),
        ("probe.py", PROBE),
    ]);
    let mut spec = build_spec(&name, ctx.path());
    spec.build_args.insert("HOST_ADDR".into(), host_address());
    spec.build_args.insert("PORT".into(), port.to_string());
    let built = build_image(spec, quiet(), CancellationToken::new())
        .await
        .expect("the probe builds");
    let report = read_report(&built.tag);
    eprintln!("the RUN step saw: {report}");

    // Not asserted: the RUN step is uid 0 of the host's user namespace
    // (buildah 1.28 commits a mapped step's files with host IDs; see
    // image::isolation).
    assert_eq!(
        report["cap_eff"][0],
        mask(&[
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "FSETID",
            "KILL",
            "SETGID",
            "SETUID"
        ])
    );
    assert_eq!(report["interfaces"], serde_json::json!(["lo"]));
    assert_eq!(report["gateway"], serde_json::Value::Null);
    for attempt in ["host", "gateway_connect", "metadata"] {
        assert_ne!(report[attempt], "connected", "{attempt}: {report}");
    }
    // Nothing reached the listener (a connection would wait in its backlog).
    listener.set_nonblocking(true).expect("nonblocking");
    assert!(
        listener.accept().is_err(),
        "the RUN step connected to the host"
    );
}

#[tokio::test]
async fn a_failed_run_step_says_builds_have_no_network_and_who_can_allow_it() {
    let name = unique("offline");
    let _cleanup = ImageCleanup(name.clone());
    let ctx = context(&[(
        "Containerfile",
        "FROM localhost/mcpod-debian:bookworm\nRUN python3 -c 'import urllib.request; urllib.request.urlopen(\"http://deb.debian.org/\", timeout=5)'\n",
    )]);
    let err = build_image(
        build_spec(&name, ctx.path()),
        quiet(),
        CancellationToken::new(),
    )
    .await
    .expect_err("no network");
    let msg = err.to_string();
    assert!(
        msg.contains("RUN steps have none") && msg.contains("mcpod serve --build-network"),
        "{msg}"
    );
    assert!(msg.contains("provision_server"), "{msg}");
}

/// `mcpod build --build-network` (an operator's flag, no tool argument)
/// gives RUN steps podman's network, under a key of its own.
#[test]
fn the_operator_can_give_builds_the_network() {
    let name = unique("online");
    let _cleanup = ImageCleanup(name.clone());
    let ctx = context(&[(
        "Containerfile",
        // The nonce keeps buildah's layer cache from reusing another build's step.
        &format!(
            "FROM localhost/mcpod-debian:bookworm\nRUN echo {name}; cat /proc/net/dev > /report\n"
        ),
    )]);
    let build = |network: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcpod"));
        cmd.args(["build", "--json", "--name"])
            .arg(format!("localhost/{name}"))
            .arg("--root")
            .arg(ctx.path());
        if network {
            cmd.arg("--build-network");
        }
        let out = cmd.output().expect("mcpod build");
        assert!(out.status.success(), "{out:?}");
        let built: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        built["tag"].as_str().expect("tag").to_string()
    };
    let online = build(true);
    let interfaces = |tag: &str| {
        podman_lines(&[
            "run",
            "--rm",
            "--network=none",
            "--entrypoint=cat",
            tag,
            "/report",
        ])
        .iter()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|i| i.trim().to_string()))
        .collect::<Vec<_>>()
    };
    assert!(interfaces(&online).len() > 1, "{:?}", interfaces(&online));
    // An offline build of the same inputs does not find the online image.
    // (buildah's own layer cache still hands it the step's layer: it keys a
    // step by its parent and command only.)
    assert_ne!(
        build(false),
        online,
        "an online build must not share the key"
    );
}

/// What buildah does on the host for a step is refused before buildah runs:
/// a cache mount whose `id` climbs out of buildah's cache directory (buildah
/// 1.28 mounts that host directory read-write, CVE-2024-9675), and `ADD URL`
/// (fetched on the host's network). Nothing reaches the host directory or
/// the host's server, and no image is made.
#[tokio::test]
async fn steps_buildah_would_do_on_the_host_are_refused() {
    let victim = tempfile::tempdir().expect("victim");
    std::fs::write(victim.path().join("private"), "ROOT-ONLY").expect("write");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let climb = "../".repeat(12);
    let victim_path = victim.path().display().to_string();
    for (what, containerfile) in [
        (
            "a cache mount out of buildah's cache",
            format!(
                "FROM localhost/mcpod-debian:bookworm\nRUN --mount=type=cache,id={climb}{},target=/c cp /c/private /stolen; echo x > /c/planted\n",
                victim_path.trim_start_matches('/')
            ),
        ),
        (
            "ADD of a URL on the host",
            format!(
                "FROM localhost/mcpod-debian:bookworm\nADD http://127.0.0.1:{port}/secret /secret\n"
            ),
        ),
    ] {
        let name = unique("hostside");
        let _cleanup = ImageCleanup(name.clone());
        let ctx = context(&[("Containerfile", &containerfile)]);
        let err = build_image(
            build_spec(&name, ctx.path()),
            quiet(),
            CancellationToken::new(),
        )
        .await
        .expect_err(what)
        .to_string();
        assert!(err.contains("line 2"), "{what}: {err}");
        assert!(images_named(&name).is_empty(), "{what}: an image was made");
    }
    assert!(
        !victim.path().join("planted").exists(),
        "the host directory was written"
    );
    assert!(
        listener.accept().is_err(),
        "the host's server was asked for the URL"
    );
}
