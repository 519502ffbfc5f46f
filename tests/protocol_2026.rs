//! A 2026-07-28 client (server/discover, per-request metadata) through rmcp:
//! the meta-tools work, and `subscriptions/listen` delivers tools/list_changed
//! when a session starts.

mod common;

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ProtocolVersion, ServerNotification, SubscriptionFilter};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::TokioChildProcess;

#[tokio::test]
async fn discover_list_and_listen_for_tool_changes() {
    let image = tokio::task::spawn_blocking(common::hello_image)
        .await
        .expect("image");
    let _host = common::host::HostLock::shared();
    let root = tempfile::tempdir().expect("tempdir");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpod"));
    command
        .arg("serve")
        .arg("--root")
        .arg(root.path())
        .env("MCPOD_LOG", "warn");
    let client = ()
        .serve_with_lifecycle(
            TokioChildProcess::new(command).expect("spawn"),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("discover handshake");
    let info = client.peer_info().expect("server info");
    assert_eq!(info.protocol_version, ProtocolVersion::V_2026_07_28);

    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "launch_session"));

    let mut subscription = client
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .expect("subscriptions/listen");
    let launched = client
        .call_tool(
            CallToolRequestParams::new("launch_session").with_arguments(
                serde_json::json!({"image": image})
                    .as_object()
                    .cloned()
                    .expect("object"),
            ),
        )
        .await
        .expect("launch_session");
    assert_ne!(launched.is_error, Some(true), "{launched:?}");
    let session = launched
        .structured_content
        .as_ref()
        .and_then(|s| s["session"].as_str())
        .expect("session")
        .to_string();

    let note = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("a notification within 10 s")
        .expect("subscription open");
    assert!(
        matches!(
            note,
            Some(ServerNotification::ToolListChangedNotification(_))
        ),
        "{note:?}"
    );
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(
        tools
            .iter()
            .any(|t| t.name == format!("{session}_hello__greet"))
    );

    let sum = client
        .call_tool(
            CallToolRequestParams::new(format!("{session}_hello__add")).with_arguments(
                serde_json::json!({"a": 1, "b": 2})
                    .as_object()
                    .cloned()
                    .expect("object"),
            ),
        )
        .await
        .expect("proxied call");
    assert_eq!(
        sum.structured_content.as_ref().map(|s| s["sum"].clone()),
        Some(serde_json::json!(3))
    );
    drop(subscription);
    client.cancel().await.expect("close");
}

/// A listen stream asking for a thousand resources is honoured for the
/// first `MAX_LISTEN_RESOURCES` (each is subscribed at its server), and the
/// acknowledgement says which.
#[tokio::test]
async fn a_listen_for_a_thousand_resources_is_honoured_for_a_bounded_few() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpod"));
    command
        .arg("serve")
        .arg("--root")
        .arg(root.path())
        .env("MCPOD_LOG", "error");
    let client = ()
        .serve_with_lifecycle(
            TokioChildProcess::new(command).expect("spawn"),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("discover handshake");
    let asked: Vec<String> = (0..1000)
        .map(|i| format!("mcpod://sessions/s{i}/servers/x/demo://r/{i}"))
        .collect();
    let mut filter = SubscriptionFilter::new();
    filter.resource_subscriptions = Some(asked.clone());
    let subscription = tokio::time::timeout(Duration::from_secs(30), client.listen(filter))
        .await
        .expect("acknowledged within 30 s")
        .expect("subscriptions/listen");
    let honoured = subscription
        .acknowledged()
        .resource_subscriptions
        .clone()
        .unwrap_or_default();
    assert_eq!(honoured.len(), mcpod::server::MAX_LISTEN_RESOURCES);
    assert_eq!(honoured[..], asked[..honoured.len()]);
    drop(subscription);
    client.cancel().await.expect("close");
}
