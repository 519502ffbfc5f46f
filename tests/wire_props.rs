//! Property tests of the JSON-RPC framing (src/wire): the scan that finds a
//! refused message's id agrees with serde_json on every well-formed message,
//! whatever the key order, nesting or escapes; and arbitrary bytes, cut
//! anywhere, never panic the transport, never hang it and never make it
//! buffer past its limit.

use mcpod::wire::scan::{Scan, scan};
use mcpod::wire::{Limits, LineTransport, Peer};
use proptest::prelude::*;
use rmcp::RoleServer;
use rmcp::model::NumberOrString;
use rmcp::transport::Transport;
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        // Strings that look like structure, and keys named id or method.
        "[\\PC\"\\\\{}\\[\\]:,]{0,12}".prop_map(Value::String),
        Just(json!("id")),
        Just(json!("\"id\":1,")),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("id".to_string()),
                        Just("method".to_string()),
                        "[a-z\"]{0,6}"
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn id() -> impl Strategy<Value = NumberOrString> {
    prop_oneof![
        any::<i64>().prop_map(NumberOrString::Number),
        "[\\PC\"\\\\]{0,20}".prop_map(|s| NumberOrString::String(s.into())),
    ]
}

/// A message with `fields` written in the order given (serde_json keeps
/// insertion order only with a feature, so it is written by hand).
fn write_object(fields: &[(&str, Value)], spaced: bool) -> String {
    let sep = if spaced { " , " } else { "," };
    let colon = if spaced { " : " } else { ":" };
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}{colon}{v}", json!(k)))
        .collect();
    format!("{{{}}}", body.join(sep))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_scan_finds_the_id_serde_finds(
        id in id(),
        params in value(),
        request in any::<bool>(),
        order in prop::collection::vec(any::<u8>(), 4),
        spaced in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let id_json = serde_json::to_value(&id).expect("id");
        let mut fields: Vec<(&str, Value)> = vec![("jsonrpc", json!("2.0")), ("id", id_json)];
        if request {
            fields.push(("method", json!("tools/call")));
            fields.push(("params", params));
        } else {
            fields.push(("result", params));
        }
        // A shuffle driven by `order`.
        let mut keyed: Vec<(u8, (&str, Value))> = order.into_iter().zip(fields).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let fields: Vec<(&str, Value)> = keyed.into_iter().map(|(_, f)| f).collect();
        let text = write_object(&fields, spaced);
        // It is valid JSON, and serde agrees on the id.
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        prop_assert_eq!(serde_json::from_value::<NumberOrString>(parsed["id"].clone()).ok(), Some(id.clone()));

        let whole = scan(text.as_bytes());
        prop_assert_eq!(whole.id(), Some(id.clone()));
        prop_assert_eq!(whole.has_method(), request);
        // Fed in two pieces, the same.
        let at = cut.index(text.len() + 1);
        let mut pieces = Scan::default();
        pieces.feed(&text.as_bytes()[..at]);
        pieces.feed(&text.as_bytes()[at..]);
        prop_assert_eq!(pieces.id(), Some(id));
    }

    #[test]
    fn the_scan_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let s = scan(&bytes);
        prop_assert_eq!(s.bytes, bytes.len());
        let _ = (s.id(), s.method(), s.has_method());
    }

    #[test]
    fn the_transport_takes_any_bytes_in_any_chunks(
        lines in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                Just(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec()),
                Just(br#"{"jsonrpc":"2.0","id":2,"method":"ping","params":[[[[[[[[[[]]]]]]]]]]}"#.to_vec()),
            ],
            0..20,
        ),
        chunk in 1usize..64,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let (ours, mut theirs) = tokio::io::duplex(1 << 16);
            let (read, write) = tokio::io::split(ours);
            let mut t = LineTransport::<RoleServer, _>::new(read, write, Limits { max_message: 200 }, Peer {
                name: "the fuzzer".into(),
                on_problem: std::sync::Arc::new(|_| {}),
            });
            let mut stream: Vec<u8> = Vec::new();
            for l in &lines {
                stream.extend(l.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
                stream.push(b'\n');
            }
            let writer = tokio::spawn(async move {
                for piece in stream.chunks(chunk) {
                    if theirs.write_all(piece).await.is_err() {
                        break;
                    }
                }
                drop(theirs);
            });
            // Every message is delivered or refused, then the stream ends.
            let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                while t.receive().await.is_some() {}
            })
            .await;
            assert!(ended.is_ok(), "the transport hung");
            let _ = writer.await;
        });
    }
}
