use super::*;
use wire::Tap;

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_string()).expect("raw JSON")
}

fn call(token: bool) -> RawCall {
    RawCall {
        tool: "add".into(),
        arguments: Some(raw(r#"{"a":1,"b":2}"#)),
        agent_id: raw("7"),
        token: token.then(|| raw(r#""t1""#)),
        sink: None,
        complete: false,
        trace: None,
    }
}

fn line_of(reply: Reply) -> Vec<u8> {
    match reply {
        Reply::Line(line) => line,
        Reply::Asked(asked) => panic!("a round, not a line: {asked}"),
    }
}

#[test]
fn a_modern_childs_call_carries_who_asks_and_a_retry_its_round() {
    let lane = Lane::new("hello");
    let client = rmcp::model::ClientConfig::new(
        Default::default(),
        rmcp::model::Implementation::new("mcpod", "1"),
    );
    lane.set_meta(&client);
    let retry = r#","inputResponses":{"q":{"action":"accept"}},"requestState":"s1""#;
    for (token, retry) in [(true, ""), (false, retry)] {
        let (_, line) = lane.send(&call(token), "the call of `add`".into(), retry);
        let out: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
        let meta = &out["params"]["_meta"];
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert_eq!(meta["io.modelcontextprotocol/clientInfo"]["name"], "mcpod");
        assert!(meta["io.modelcontextprotocol/clientCapabilities"].is_object());
        assert_eq!(meta.get("progressToken").is_some(), token, "{out}");
        assert_eq!(out["params"]["arguments"]["a"], 1);
        if !retry.is_empty() {
            assert_eq!(out["params"]["requestState"], "s1");
            assert_eq!(out["params"]["inputResponses"]["q"]["action"], "accept");
        }
    }
    // mcpod's own raw requests say it too, beside their own `_meta`,
    // whose keys stand (a task's call declares the tasks extension).
    let caps = "io.modelcontextprotocol/clientCapabilities";
    let params = serde_json::json!({"taskId": "t1", "_meta": {"k": 1, caps: {"own": {}}}});
    let (_, _, line) = lane.request("tasks/get", &params);
    let out: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
    let meta = &out["params"]["_meta"];
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    assert_eq!(meta["k"], 1);
    assert_eq!(meta[caps], serde_json::json!({"own": {}}));
    assert_eq!(out["params"]["taskId"], "t1");
}

#[test]
fn an_input_required_answer_is_a_round_and_the_word_alone_is_not() {
    let lane = Lane::new("hello");
    let (mut sent, _) = lane.send(&call(false), "the call of `add`".into(), "");
    let asked = br#"{"jsonrpc":"2.0","id":"mcpod-0","result":{"resultType":"input_required","requestState":"s"}}"#;
    assert!(lane.take(asked));
    assert!(matches!(sent.reply.try_recv(), Ok(Reply::Asked(r)) if r.contains("\"s\"")));
    let (mut sent, _) = lane.send(&call(false), "the call of `add`".into(), "");
    let said = br#"{"jsonrpc":"2.0","id":"mcpod-1","result":{"content":[{"type":"text","text":"\"input_required\""}]}}"#;
    assert!(lane.take(said));
    assert!(matches!(sent.reply.try_recv(), Ok(Reply::Line(_))));
}

#[test]
fn a_call_goes_out_under_mcpods_id_and_its_answer_comes_back_under_the_agents() {
    let lane = Lane::new("hello");
    let (mut sent, line) = lane.send(&call(true), "the call of `add`".into(), "");
    let out: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
    assert_eq!(out["id"], "mcpod-0");
    assert_eq!(out["params"]["name"], "add");
    assert_eq!(out["params"]["arguments"]["b"], 2);
    assert_eq!(out["params"]["_meta"]["progressToken"], "mcpod-0");

    let progress = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"mcpod-0","progress":1,"message":"half"}}"#;
    assert!(lane.take(progress));
    let p: serde_json::Value =
        serde_json::from_slice(&sent.progress.try_recv().expect("progress")).expect("JSON");
    assert_eq!(p["params"]["progressToken"], "t1");
    assert_eq!(p["params"]["message"], "half");

    // Someone else's messages go on to rmcp.
    assert!(!lane.take(br#"{"jsonrpc":"2.0","id":0,"result":{}}"#));
    assert!(!lane.take(br#"{"jsonrpc":"2.0","id":"mcpod-x","result":{}}"#));

    let answer =
        br#"{"result":{"content":[{"type":"text","text":"3"}]},"jsonrpc":"2.0","id":"mcpod-0"}"#;
    assert!(lane.take(answer));
    let back: serde_json::Value =
        serde_json::from_slice(&line_of(sent.reply.try_recv().expect("reply"))).expect("JSON");
    assert_eq!(back["id"], 7);
    assert_eq!(back["result"]["content"][0]["text"], "3");
    // Nothing is open any more: lines are not even looked at.
    assert!(!lane.take(answer));
}

#[test]
fn a_childs_error_too_deep_or_odd_answer_fails_the_call_as_the_slow_path_does() {
    let lane = Lane::new("hello");
    let cases = [
        (
            r#"{"jsonrpc":"2.0","id":"mcpod-0","error":{"code":-32602,"message":"no such tool"}}"#
                .to_string(),
            "rejected the call of `add`: no such tool",
        ),
        (
            format!(
                r#"{{"jsonrpc":"2.0","id":"mcpod-1","result":{{"x":{}{}}}}}"#,
                "[".repeat(200),
                "]".repeat(200)
            ),
            "deeper than mcpod's limit",
        ),
        (
            r#"{"jsonrpc":"2.0","id":"mcpod-2","result":5}"#.to_string(),
            "unexpected result",
        ),
    ];
    for (line, says) in cases {
        let (mut sent, _) = lane.send(&call(false), "the call of `add`".into(), "");
        assert!(lane.take(line.as_bytes()));
        let back: serde_json::Value =
            serde_json::from_slice(&line_of(sent.reply.try_recv().expect("reply"))).expect("JSON");
        assert_eq!(back["result"]["isError"], true, "{back}");
        let text = back["result"]["content"][0]["text"].as_str().unwrap_or("");
        assert!(text.contains(says), "{text}");
    }
}

#[test]
fn a_refused_response_fails_its_call() {
    let lane = Lane::new("hello");
    let (mut sent, _) = lane.send(&call(false), "the call of `add`".into(), "");
    let id = RequestId::String("mcpod-0".into());
    assert!(lane.refused(&id, "server `hello` sent a response of 20 bytes"));
    let back: serde_json::Value =
        serde_json::from_slice(&line_of(sent.reply.try_recv().expect("reply"))).expect("JSON");
    let text = back["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(text.contains("20 bytes") && text.contains("Fix:"), "{text}");
    assert!(!lane.refused(&RequestId::Number(0), "x"));
}

#[test]
fn a_listing_notes_the_tools_that_must_be_tasks_and_forgets_them_when_they_change() {
    let lane = Lane::new("everything");
    let page = |tools: &str| format!(r#"{{"jsonrpc":"2.0","id":3,"result":{{"tools":{tools}}}}}"#);
    {
        let _listing = lane.listing();
        let first = page(
            r#"[{"name":"research","execution":{"taskSupport":"required"}},
                {"name":"echo","execution":{"taskSupport":"forbidden"}},{"name":"add"}]"#,
        );
        // rmcp still gets the page.
        assert!(!lane.take(first.replace('\n', "").as_bytes()));
    }
    assert!(lane.task_only("research") && !lane.task_only("echo") && !lane.task_only("add"));
    // Outside a listing, pages are not read.
    let changed = page(r#"[{"name":"research","execution":{"taskSupport":"optional"}}]"#);
    assert!(!lane.take(changed.as_bytes()));
    assert!(lane.task_only("research"));
    let _listing = lane.listing();
    assert!(!lane.take(changed.as_bytes()));
    assert!(!lane.task_only("research"));
}

#[test]
fn a_2026_result_gets_its_result_type_once() {
    assert_eq!(with_result_type("{}"), r#"{"resultType":"complete"}"#);
    assert_eq!(
        with_result_type(r#"{"content":[]}"#),
        r#"{"resultType":"complete","content":[]}"#
    );
    let has = r#"{"resultType":"complete","content":[]}"#;
    assert_eq!(with_result_type(has), has);
    // A null one is one: no second key.
    let null = r#"{"content":[],"resultType":null}"#;
    assert_eq!(with_result_type(null), null);
    // Only a nested one: the top level still gets its own.
    let nested = r#"{"content":[{"type":"text","text":"x"}],"structuredContent":{"resultType":1}}"#;
    assert!(with_result_type(nested).starts_with(r#"{"resultType":"complete","#));
}

#[test]
fn depth_counts_brackets_outside_strings_only() {
    assert!(!deeper_than(br#"{"a":[1,2,{"b":3}]}"#, 3));
    assert!(deeper_than(br#"{"a":[1,2,{"b":[3]}]}"#, 3));
    let quoted = format!(r#"{{"a":"{}"}}"#, "[".repeat(500));
    assert!(!deeper_than(quoted.as_bytes(), 128));
    let escaped = format!(r#"{{"a":"\"{}"}}"#, "[".repeat(500));
    assert!(!deeper_than(escaped.as_bytes(), 128));
}

#[test]
fn a_calls_trace_context_goes_in_its_meta() {
    let lane = Lane::new("hello");
    for token in [false, true] {
        let mut traced = call(token);
        traced.trace = Some(
            r#""traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01""#.into(),
        );
        let (_, line) = lane.send(&traced, "the call".into(), "");
        let sent: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
        let meta = &sent["params"]["_meta"];
        assert_eq!(
            meta["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "{sent}"
        );
        assert_eq!(meta["progressToken"].is_string(), token, "{sent}");
    }
}
