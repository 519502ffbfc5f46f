//! Binaries inside a package that link libraries the made base lacks, with
//! real packages from the npm registry, the host's npm, buildah and podman:
//! the library closure of every ELF file in the staged tree is added to the
//! image, and the server answers `tools/list`.

mod common;

use common::rpc::{Server, initialize, text_of};
use serde_json::{Value, json};

/// A .NET single-file server per platform (`@azure/mcp-linux-x64`): its
/// `azmcp` links librt, libstdc++ and more that the node base does not
/// carry, and loads ICU at start unless told to run invariant.
const AZURE: &str = "npm:@azure/mcp@2.0.5";

fn structured(result: &Value) -> Value {
    assert_ne!(result["isError"], true, "failed: {}", text_of(result));
    result["structuredContent"].clone()
}

#[test]
fn a_package_whose_binary_links_libraries_the_base_lacks_lists_its_tools() {
    let root = tempfile::tempdir().expect("root");
    let mut server = Server::start(root.path());
    initialize(&mut server, "2025-11-25");
    let info = server.launch_detail(
        1,
        json!({
            "image": AZURE,
            "overrides": {"mcp": {"args": ["server", "start"]}},
        }),
    );
    let (name, status) = info["servers"]
        .as_object()
        .and_then(|s| s.iter().next())
        .map(|(k, v)| (k.clone(), v["status"].clone()))
        .expect("a server");
    assert_eq!(status, "ready", "{info}");
    let session = info["session"].as_str().expect("session").to_string();
    let tools: Vec<String> = server
        .tool_names(2)
        .into_iter()
        .filter(|t| t.starts_with(&format!("{session}_{name}__")))
        .collect();
    assert!(!tools.is_empty(), "{info}");
    let provisioned = &info["provisioned"];
    let notes = provisioned["notes"].to_string();
    assert!(
        notes.contains("librt.so.1") && notes.contains("libssl.so.3"),
        "{notes}"
    );
    assert_eq!(
        provisioned["spec"]["env"]["DOTNET_SYSTEM_GLOBALIZATION_INVARIANT"], "1",
        "{provisioned}"
    );
    server.call(3, "stop_session", json!({"session": session}));

    // A repeat reads nothing again and builds the same image.
    let again = structured(&server.call(4, "provision_server", json!({"package": AZURE})));
    assert_eq!(again["fetched"], false, "{again}");
    assert_eq!(again["image"]["image_id"], provisioned["image"]["image_id"]);
}
