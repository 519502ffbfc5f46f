//! A launch's `overrides` without a server's name: taken for the one server
//! a launch starts; on a launch of two, an error naming both before anything
//! starts; unknown keys are named.

mod common;

use common::rpc::{Server, initialize, text_of};
use common::{ImageCleanup, hello_image, podman_lines, unique};
use serde_json::json;

#[test]
fn overrides_without_a_name_need_one_server_and_unknown_keys_are_named() {
    let hello = hello_image();
    let root = tempfile::tempdir().expect("root");
    let ctx = root.path().join("ctx");
    std::fs::create_dir(&ctx).expect("ctx");
    std::fs::write(ctx.join("Containerfile"), format!("FROM {hello}\n")).expect("Containerfile");
    let name = format!("localhost/{}", unique("two-servers"));
    let _cleanup = ImageCleanup(name.clone());
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let command = json!(["/bin/hello-server"]);
    let built = server.call(
        1,
        "build_image",
        json!({"name": name, "context": "ctx", "servers": {
            "one": {"command": command}, "two": {"command": command},
        }}),
    );
    assert_ne!(built["isError"], true, "{built}");
    let tag = built["structuredContent"]["tag"].as_str().expect("tag");

    let refused = [
        (
            json!({"image": tag, "overrides": {"args": ["--x"]}}),
            &["`one`, `two`", "name the server"][..],
        ),
        (
            json!({"image": tag, "overrides": {"argz": ["--x"]}}),
            &["`argz`", "command, args, env, writable_paths"][..],
        ),
        (
            json!({"image": tag, "overrides": {"args": ["--x"], "argz": ["--y"]}}),
            &["`argz`"][..],
        ),
        (
            json!({"image": tag, "overrides": {"one": {"argz": ["--x"]}}}),
            &["unknown field `argz`"][..],
        ),
        (
            json!({"image": tag, "overrides": {"three": {"args": ["--x"]}}}),
            &["no server of that name", "one, two"][..],
        ),
    ];
    for (i, (args, needles)) in refused.iter().enumerate() {
        // A tool error, or invalid params for what does not parse.
        let reply = server.request(
            10 + i as u64,
            "tools/call",
            json!({"name": "launch_session", "arguments": args}),
        );
        let text = match reply["error"]["message"].as_str() {
            Some(message) => message.to_string(),
            None => {
                assert_eq!(reply["result"]["isError"], true, "{args}: {reply}");
                text_of(&reply["result"])
            }
        };
        for needle in *needles {
            assert!(text.contains(needle), "{args}: `{needle}` not in: {text}");
        }
    }
    let started = podman_lines(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &format!("ancestor={tag}"),
    ]);
    assert_eq!(
        started,
        Vec::<String>::new(),
        "a refused launch started a container"
    );

    // One server launched: its override needs no name.
    let launched = server.call(
        20,
        "launch_session",
        json!({"image": tag, "servers": ["two"], "overrides": {"env": {"MODE": "sole"}}}),
    );
    assert_ne!(launched["isError"], true, "{}", text_of(&launched));
    let session = launched["structuredContent"]["session"]
        .as_str()
        .expect("session")
        .to_string();
    let who = server.call(
        21,
        "call_tool",
        json!({"session": session, "server": "two", "tool": "whoami", "arguments": {}}),
    );
    assert!(
        who["structuredContent"]["env"]
            .to_string()
            .contains("MODE=sole"),
        "{who}"
    );
    server.call(22, "stop_session", json!({"session": session}));
}
