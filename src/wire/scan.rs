//! Reading the `id` and `method` of a JSON-RPC message that will not be
//! parsed: one over the size limit (scanned as it streams past, never
//! buffered) or one serde refuses (too deep, malformed). A byte-at-a-time
//! scanner of the top-level object's keys, with no recursion and bounded
//! memory, so that the error reply can carry the request's id.
//!
//! serde_json cannot do this: a streaming deserializer needs a blocking
//! `io::Read`, and an invalid message anywhere fails the whole parse.

/// The top-level field whose value is being captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Id,
    Method,
}

/// Bytes of a key that are kept (longer keys are neither `id` nor `method`).
const KEY_BYTES: usize = 8;
/// Bytes of a captured value (an id or a method name); longer ones are dropped.
const VALUE_BYTES: usize = 256;

/// What the scan has learnt so far.
#[derive(Debug, Default)]
pub struct Scan {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// At depth 1 of an object, the next string is a key.
    expect_key: bool,
    key: Option<Vec<u8>>,
    /// The key just read, until its `:`.
    key_done: Option<Vec<u8>>,
    /// The field whose value comes next.
    pending: Option<Field>,
    /// The value being captured, raw JSON.
    capture: Option<(Field, Vec<u8>)>,
    id: Option<Vec<u8>>,
    method: Option<Vec<u8>>,
    /// The message has a `method` key (even one too long to keep).
    has_method: bool,
    /// The message has a `result` or `error` key: a response.
    has_outcome: bool,
    /// The message has an `id` key (whatever its value).
    has_id: bool,
    /// The message is an array (a JSON-RPC batch).
    batch: bool,
    /// The first byte that is not white space has been seen.
    started: bool,
    /// Bytes seen.
    pub bytes: usize,
}

impl Scan {
    pub fn feed(&mut self, chunk: &[u8]) {
        self.bytes = self.bytes.saturating_add(chunk.len());
        for &b in chunk {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        if !self.started && !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            self.started = true;
            self.batch = b == b'[';
        }
        if self.in_string {
            if let Some(key) = self.key.as_mut()
                && key.len() <= KEY_BYTES
            {
                key.push(b);
            }
            self.push_capture(b);
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                if let Some(mut key) = self.key.take() {
                    key.pop();
                    self.key_done = Some(key);
                }
                if matches!(&self.capture, Some((_, v)) if v.first() == Some(&b'"')) {
                    self.finish_capture();
                }
            }
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                if self.depth == 1 && self.expect_key {
                    self.expect_key = false;
                    self.key = Some(Vec::new());
                } else if self.depth == 1
                    && let Some(field) = self.pending.take()
                {
                    self.capture = Some((field, vec![b'"']));
                }
            }
            b'{' | b'[' => {
                // A compound id or method is no id or method: drop it.
                if self.depth == 1 {
                    self.pending = None;
                }
                if self.depth == 0 && b == b'{' {
                    self.expect_key = true;
                }
                self.depth = self.depth.saturating_add(1);
            }
            b'}' | b']' => {
                self.finish_capture();
                self.depth = self.depth.saturating_sub(1);
            }
            b':' if self.depth == 1 => {
                if let Some(key) = self.key_done.take() {
                    self.pending = match key.as_slice() {
                        b"id" => {
                            self.has_id = true;
                            Some(Field::Id)
                        }
                        b"method" => {
                            self.has_method = true;
                            Some(Field::Method)
                        }
                        b"result" | b"error" => {
                            self.has_outcome = true;
                            None
                        }
                        _ => None,
                    };
                }
            }
            b',' if self.depth == 1 => {
                self.finish_capture();
                self.expect_key = true;
            }
            b' ' | b'\t' | b'\n' | b'\r' => self.finish_capture(),
            _ if self.depth == 1 => {
                // A bare value: a number, true, false or null.
                if let Some(field) = self.pending.take() {
                    self.capture = Some((field, Vec::new()));
                }
                self.push_capture(b);
            }
            _ => {}
        }
    }

    fn push_capture(&mut self, b: u8) {
        if let Some((_, value)) = self.capture.as_mut() {
            if value.len() < VALUE_BYTES {
                value.push(b);
            } else {
                self.capture = None;
            }
        }
    }

    fn finish_capture(&mut self) {
        if let Some((field, value)) = self.capture.take() {
            match field {
                Field::Id => self.id = Some(value),
                Field::Method => self.method = Some(value),
            }
        }
    }

    /// The message's id, if it has a string or integer one.
    pub fn id(&self) -> Option<rmcp::model::RequestId> {
        serde_json::from_slice(self.id.as_deref()?).ok()
    }

    /// The method name, if it is short enough to have been kept.
    pub fn method(&self) -> Option<String> {
        serde_json::from_slice(self.method.as_deref()?).ok()
    }

    /// A request or a notification (else a response).
    pub fn has_method(&self) -> bool {
        self.has_method
    }

    /// Whether the message has a `result` or `error` key: a response.
    pub fn has_outcome(&self) -> bool {
        self.has_outcome
    }

    /// Whether the message has an `id` key, usable as an id or not.
    pub fn has_id(&self) -> bool {
        self.has_id
    }

    /// Whether the message is an array: a JSON-RPC batch.
    pub fn batch(&self) -> bool {
        self.batch
    }

    /// Whether what the message is, and whom it concerns, is known before
    /// its end: an id, and a `method` (a request) or a `result` or `error`
    /// (a response). Keys come in any order, so until then it is not.
    pub fn decided(&self) -> bool {
        self.id.is_some() && (self.has_method || self.has_outcome)
    }
}

/// Scan a whole message.
pub fn scan(message: &[u8]) -> Scan {
    let mut s = Scan::default();
    s.feed(message);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::NumberOrString;

    #[test]
    fn finds_the_id_and_method_wherever_they_are() {
        let s = scan(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"id":9}}"#);
        assert_eq!(s.id(), Some(NumberOrString::Number(7)));
        assert_eq!(s.method().as_deref(), Some("tools/call"));
        // Last, as the TypeScript SDK writes it; nested ids do not count.
        let s =
            scan(br#"{"method":"x","params":{"id":1,"a":[{"id":2}]},"jsonrpc":"2.0","id":"a\"b"}"#);
        assert_eq!(s.id(), Some(NumberOrString::String("a\"b".into())));
        assert!(s.has_method());
        let s = scan(br#"{ "result" : {"method": "no"} , "id" : 12 }"#);
        assert_eq!(s.id(), Some(NumberOrString::Number(12)));
        assert!(!s.has_method());
    }

    #[test]
    fn survives_what_no_parser_accepts() {
        let deep = format!(
            r#"{{"id":3,"method":"m","params":{}}}"#,
            "[".repeat(100_000)
        );
        let s = scan(deep.as_bytes());
        assert_eq!(s.id(), Some(NumberOrString::Number(3)));
        for junk in [
            &b"\"\\"[..],
            b"}}}]]]",
            b"{\"id\":",
            b"{\"id\":[1]}",
            b"\xff\xfe{",
            b"",
        ] {
            let s = scan(junk);
            assert_eq!(s.id(), None);
        }
        let s = scan(br#"{"id":null,"method":"m"}"#);
        assert_eq!(s.id(), None);
        assert!(s.has_id() && !s.batch());
    }

    #[test]
    fn tells_a_batch_and_an_id_it_cannot_use() {
        for bad in [
            &br#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#[..],
            br#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
        ] {
            let s = scan(bad);
            assert!(s.has_id() && s.has_method() && s.id().is_none(), "{bad:?}");
            assert!(!s.batch());
        }
        let s = scan(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert!(!s.has_id());
        let s = scan(b" \n[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]");
        assert!(s.batch() && !s.has_id() && s.id().is_none());
        assert!(!scan(b"{\"a\":[1]}").batch());
    }

    #[test]
    fn fed_in_pieces_it_finds_the_same() {
        let msg = br#"{"jsonrpc":"2.0","method":"tools/call","params":{"s":"}\"{"},"id":"x-1"}"#;
        for cut in 0..msg.len() {
            let mut s = Scan::default();
            s.feed(&msg[..cut]);
            s.feed(&msg[cut..]);
            assert_eq!(
                s.id(),
                Some(NumberOrString::String("x-1".into())),
                "cut at {cut}"
            );
            assert_eq!(s.bytes, msg.len());
        }
    }
}
