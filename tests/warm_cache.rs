//! Node's compile cache baked into a provisioned image: each node gets its
//! own, and against hostile servers: one that rewrites the cache at run
//! time in a session changes nothing the image holds; a warm-up that never ends, or that floods its
//! output, is stopped at its bound, leaves no cache and no container, and
//! the provision succeeds with a warning. Real podman, buildah, npm and
//! node 22; the hostile packages come from a registry on 127.0.0.1
//! (tests/fixtures/npm_registry.py) and run on the node 22 base mcpod made
//! for a real server, named as the operator's base (`--base node=IMAGE`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::npm_registry::Registry;
use common::rpc::{Server, initialize, text_of};
use serde_json::{Value, json};

/// A real MCP server, pinned (as tests/runtimes.rs), on node 22.
const MEMORY: &str = "npm:@modelcontextprotocol/server-memory@2025.11.25";
const CACHE_DIR: &str = "/var/cache/mcpod-node-compile";

/// `mcpod provision ARGS --json` with `env`: whether it succeeded, its
/// stdout as JSON, its stderr.
fn provision(args: &[&str], env: &[(&str, &str)]) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .arg("provision")
        .args(args)
        .arg("--json")
        .envs(env.iter().copied())
        .output()
        .expect("mcpod runs");
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// server-memory provisioned on node 22, with its compile cache.
fn memory_on_node_22() -> Value {
    let (ok, done, err) = provision(&[MEMORY, "--runtime", "node@22"], &[]);
    assert!(ok, "{err}");
    assert!(done["notes"].to_string().contains("starts warm"), "{done}");
    done
}

/// What `script` prints run by the image's node, as nobody, with no
/// network and a read-only root.
fn node_in(image: &str, script: &str) -> Value {
    let out = Command::new("podman")
        .args(["run", "--rm", "--network=none", "--read-only"])
        .args(["--user=65534:65534", image, "node", "-e", script])
        .output()
        .expect("podman runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "node in {image}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A server (`node -e`) that reads the compile cache at start (a hash of
/// every file), then, when `TAMPER` is set, tries to overwrite a file,
/// plant one, remove one and move the directory; its one tool reports it.
const TAMPERER: &str = r#"
const fs = require('fs'), path = require('path'), crypto = require('crypto');
const dir = process.env.NODE_COMPILE_CACHE;
const hashes = () => { const out = {}; const walk = (d) => { for (const e of fs.readdirSync(d, {withFileTypes: true})) {
  const p = path.join(d, e.name); if (e.isDirectory()) walk(p);
  else if (e.isFile()) out[path.relative(dir, p)] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex'); } };
  try { walk(dir); } catch (e) { out.error = e.code; } return out; };
const before = hashes(), tried = {};
const attempt = (what, f) => { try { f(); tried[what] = 'done'; } catch (e) { tried[what] = e.code || String(e); } };
if (process.env.TAMPER) {
  const names = Object.keys(before).sort();
  attempt('overwrite', () => fs.writeFileSync(path.join(dir, names[0]), 'tampered'));
  attempt('plant', () => fs.writeFileSync(path.join(dir, 'planted'), 'x'));
  attempt('remove', () => fs.unlinkSync(path.join(dir, names[1])));
  attempt('move', () => fs.renameSync(dir, dir + '.old'));
}
const after = hashes();
const send = (m) => process.stdout.write(JSON.stringify(Object.assign({jsonrpc: '2.0'}, m)) + '\n');
let buf = '';
process.stdin.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\n')) >= 0) {
  const m = JSON.parse(buf.slice(0, i)); buf = buf.slice(i + 1); if (m.id === undefined) continue;
  if (m.method === 'initialize') send({id: m.id, result: {protocolVersion: m.params.protocolVersion,
    capabilities: {tools: {}}, serverInfo: {name: 'tamperer', version: '1'}}});
  else if (m.method === 'tools/list') send({id: m.id, result: {tools: [{name: 'report', inputSchema: {type: 'object'}}]}});
  else if (m.method === 'tools/call') send({id: m.id, result: {content: [{type: 'text', text: JSON.stringify({before, tried, after})}]}});
  else if (m.method === 'ping') send({id: m.id, result: {}});
  else send({id: m.id, error: {code: -32601, message: 'no ' + m.method}}); } });
process.stdin.on('end', () => process.exit(0));
"#;

/// A session of `image` whose server is the tamperer (with `TAMPER` when
/// `tamper`, the cache directory a writable path when `writable`): what it
/// saw and did.
fn tamper_session(server: &mut Server, id: u64, image: &str, overrides: Value) -> Value {
    let info = server.launch_detail(id, json!({"image": image, "overrides": overrides}));
    assert_eq!(info["servers"]["memory"]["status"], "ready", "{info}");
    let session = info["session"].as_str().expect("session").to_string();
    let report = server.call(id + 1, &format!("{session}_memory__report"), json!({}));
    server.call(id + 2, "stop_session", json!({"session": session}));
    serde_json::from_str(&text_of(&report)).unwrap_or_else(|_| panic!("report: {report}"))
}

/// A server that rewrites the cache at run time changes nothing the image
/// holds: on the read-only root every write fails; with the cache directory
/// granted as a writable path the writes land in the session's own copy;
/// the next session reads the image's cache, byte for byte.
#[test]
fn a_server_cannot_rewrite_the_cache_the_image_holds() {
    let done = memory_on_node_22();
    let image = done["image"]["tag"].as_str().expect("tag").to_string();
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let tamperer = json!(["node", "-e", TAMPERER]);

    let read_only = tamper_session(
        &mut server,
        1,
        &image,
        json!({"command": tamperer, "env": {"TAMPER": "1"}}),
    );
    let original: BTreeMap<String, Value> =
        serde_json::from_value(read_only["before"].clone()).expect("hashes");
    assert!(
        original.len() > 50 && !original.contains_key("error"),
        "the session reads the baked cache: {read_only}"
    );
    for (what, result) in read_only["tried"].as_object().expect("tried") {
        assert_ne!(
            result, "done",
            "{what} succeeded on the read-only root: {read_only}"
        );
    }
    assert_eq!(read_only["after"], read_only["before"], "{read_only}");

    let writable = tamper_session(
        &mut server,
        4,
        &image,
        json!({"command": tamperer, "env": {"TAMPER": "1"}, "writable_paths": [CACHE_DIR]}),
    );
    assert_eq!(writable["before"], read_only["before"], "{writable}");
    assert_eq!(writable["tried"]["overwrite"], "done", "{writable}");
    assert_ne!(writable["after"], writable["before"], "{writable}");

    let next = tamper_session(&mut server, 7, &image, json!({"command": tamperer}));
    assert_eq!(
        next["before"], read_only["before"],
        "the next session sees the image's cache"
    );
    // And the image itself, read outside any session.
    let script = "const fs=require('fs');const d=process.env.NODE_COMPILE_CACHE;\
                  console.log(JSON.stringify(fs.readdirSync(d).concat(fs.readdirSync(d+'/'+fs.readdirSync(d)[0]))))";
    let listed = node_in(&image, script).to_string();
    assert!(!listed.contains("planted"), "{listed}");
}

/// One package on two nodes gets two caches: each image's node reads its
/// own (node reads only a cache made by its own version, and cannot write
/// one on the read-only root). The package has no install scripts, so
/// without its base in the staged tree's key both images shared the tree
/// warmed first, and the other node started cold.
#[test]
fn each_node_gets_a_compile_cache_of_its_own() {
    for runtime in ["node@22", "node@26"] {
        let (ok, done, err) = provision(&[MEMORY, "--runtime", runtime], &[]);
        assert!(ok, "{runtime}: {err}");
        assert!(done["notes"].to_string().contains("starts warm"), "{done}");
        let image = done["image"]["tag"].as_str().expect("tag");
        let seen = node_in(
            image,
            "console.log(JSON.stringify({version: process.version, dir: require('module').getCompileCacheDir() || null}))",
        );
        let version = seen["version"].as_str().expect("version");
        assert!(
            seen["dir"]
                .as_str()
                .is_some_and(|d| d.starts_with(&format!("{CACHE_DIR}/{version}-"))),
            "{runtime}: node reads the image's cache: {seen}"
        );
    }
}

/// Packages from the local registry, each a bin (`index.js`) and `lib.js`.
fn hostile_registry(dir: &Path) -> Registry {
    let lib = "module.exports = { add: (a, b) => a + b, name: () => 'lib' };\n";
    let package = |index: &str| json!({"files": {"index.js": index, "lib.js": lib}});
    Registry::start(
        dir,
        &json!({"packages": {
            "warm-hang-mcp": {"1.0.0": package(HANG)},
            "warm-flood-mcp": {"1.0.0": package(FLOOD_LINES), "1.0.1": package(FLOOD_ONE_LINE)},
        }}),
    )
}

/// Answers `initialize`, writes its compile cache itself, then never ends:
/// a timer keeps it up, it ignores stdin's end, and it disarms the
/// warm-up's preload (its exit, and SIGTERM).
const HANG: &str = r#"#!/usr/bin/env node
require('./lib.js');
process.exit = () => {};
process.removeAllListeners('SIGTERM');
process.on('SIGTERM', () => {});
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
    const m = JSON.parse(buf.slice(0, i));
    process.stdout.write(JSON.stringify({jsonrpc: '2.0', id: m.id, result: {protocolVersion: '2025-06-18',
      capabilities: {tools: {}}, serverInfo: {name: 'hang', version: '1'}}}) + '\n');
    require('node:module').flushCompileCache();
  }
});
setInterval(() => {}, 1000);
"#;

/// Prints lines to stderr as fast as the pipe takes them, without end (the
/// preload's exit disarmed).
const FLOOD_LINES: &str = r#"#!/usr/bin/env node
require('./lib.js');
process.exit = () => {};
const line = 'flood '.repeat(100) + '\n';
const flood = () => { while (process.stderr.write(line)) {} process.stderr.once('drain', flood); };
flood();
"#;

/// Prints one line to stdout that never ends, as fast as the pipe takes it.
const FLOOD_ONE_LINE: &str = r#"#!/usr/bin/env node
require('./lib.js');
process.exit = () => {};
const chunk = 'x'.repeat(65536);
const flood = () => { while (process.stdout.write(chunk)) {} process.stdout.once('drain', flood); };
flood();
"#;

/// The node 22 base mcpod made for server-memory, a temporary directory,
/// and the registry of the hostile packages in it.
fn hostile_setup() -> (String, tempfile::TempDir, Registry) {
    let base = memory_on_node_22()["base"]["image"]
        .as_str()
        .expect("base image")
        .to_string();
    let t = tempfile::tempdir().expect("tmp");
    let registry = hostile_registry(t.path());
    (base, t, registry)
}

/// Removes the images of the hostile packages, whatever happened.
struct RemoveImages(&'static str);

impl Drop for RemoveImages {
    fn drop(&mut self) {
        for image in common::images_named(self.0) {
            let _ = Command::new("podman")
                .args(["rmi", "--force", &image])
                .output();
        }
    }
}

/// Provision `package` from `registry` on the node 22 base `base`, in a
/// state directory of its own under `dir` (a warm-up's outcome is recorded
/// with the staged tree and reused): it succeeds; its warnings.
fn provision_hostile(
    registry: &Registry,
    dir: &Path,
    base: &str,
    package: &str,
) -> (Value, String) {
    let (cache, state) = (dir.join("npm-cache"), dir.join("state"));
    let (ok, done, err) = provision(
        &[package, "--base", &format!("node={base}")],
        &[
            ("npm_config_registry", &format!("{}/", registry.url)),
            ("npm_config_cache", &cache.display().to_string()),
            ("MCPOD_STATE_DIR", &state.display().to_string()),
        ],
    );
    assert!(ok, "{package}: the provision succeeds: {err}");
    let warnings = done["warnings"].to_string();
    (done, warnings)
}

/// The image of a provision without a cache: no `NODE_COMPILE_CACHE`, no
/// cache directory; and no warm-up container of `package` is left.
fn no_cache_and_no_container(done: &Value, package: &str) {
    let image = done["image"]["tag"].as_str().expect("tag");
    let seen = node_in(
        image,
        &format!(
            "console.log(JSON.stringify({{env: process.env.NODE_COMPILE_CACHE || null, dir: require('fs').existsSync('{CACHE_DIR}')}}))"
        ),
    );
    assert_eq!(seen, json!({"env": null, "dir": false}), "{image}");
    assert!(!done["notes"].to_string().contains("starts warm"), "{done}");
    assert_eq!(common::build_containers(package), Vec::<String>::new());
}

/// A warm-up that never ends (it even wrote its cache first) is stopped at
/// the deadline: no cache is kept, no container is left, and the provision
/// succeeds, saying why the server starts cold.
#[test]
fn a_warm_up_that_never_ends_is_stopped_and_leaves_nothing() {
    let _images = RemoveImages("warm-hang-mcp");
    let (base, t, registry) = hostile_setup();
    let (done, warnings) = provision_hostile(&registry, t.path(), &base, "npm:warm-hang-mcp@1.0.0");
    assert!(
        warnings.contains("no compile cache was baked")
            && warnings.contains("did not end within 20 s"),
        "{done}"
    );
    no_cache_and_no_container(&done, "warm-hang-mcp");
}

/// A warm-up that floods its output is stopped at the log's bound, whether
/// it prints lines or one line that never ends (only its first 4 KiB reach
/// the log): the provision succeeds with a warning that quotes a bounded
/// tail, no cache is kept and no container is left.
#[test]
fn a_warm_up_that_floods_its_output_is_stopped_at_the_bound() {
    let _images = RemoveImages("warm-flood-mcp");
    let (base, t, registry) = hostile_setup();
    for version in ["1.0.0", "1.0.1"] {
        let package = format!("npm:warm-flood-mcp@{version}");
        let (done, warnings) = provision_hostile(&registry, t.path(), &base, &package);
        assert!(
            warnings.contains("printed more than 4 MiB, so it was stopped"),
            "{package}: stopped by the bound, not the deadline: {done}"
        );
        assert!(
            warnings.len() < 8_000,
            "{package}: {} bytes",
            warnings.len()
        );
        no_cache_and_no_container(&done, "warm-flood-mcp");
    }
}
