//! W3C Trace Context as MCP carries it (SEP-414: `traceparent` and
//! `tracestate` in a request's `_meta`): parsed strictly, so a hostile value
//! is ignored rather than believed, and written for what mcpod sends on.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `_meta` key of the parent's trace context.
pub const TRACEPARENT: &str = "traceparent";
/// The `_meta` key of vendors' trace state.
pub const TRACESTATE: &str = "tracestate";
/// Bytes of a `tracestate` passed on (W3C asks that at least 512 be kept);
/// a longer one is dropped whole, the `traceparent` kept.
pub const MAX_TRACESTATE: usize = 512;
/// List members of a `tracestate` (W3C's limit).
const MAX_TRACESTATE_MEMBERS: usize = 32;
/// The length of a version-00 `traceparent`.
const TRACEPARENT_LEN: usize = 55;

/// Where a span sits in a trace: the trace, the span, whether it is sampled,
/// and the vendors' `tracestate` it carries on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The W3C `sampled` flag: spans under an unsampled parent are not exported.
    pub sampled: bool,
    pub state: Option<Arc<str>>,
}

impl TraceContext {
    /// Parse a `traceparent` (and a `tracestate`, kept only when it is well
    /// formed and at most [`MAX_TRACESTATE`] bytes). Only version `00` in its
    /// exact form: 55 characters, lowercase hex, neither id all zeros.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        let bytes = traceparent.as_bytes();
        if bytes.len() != TRACEPARENT_LEN
            || !bytes.starts_with(b"00-")
            || bytes[35] != b'-'
            || bytes[52] != b'-'
        {
            return None;
        }
        let trace_id: [u8; 16] = hex(&bytes[3..35])?;
        let span_id: [u8; 8] = hex(&bytes[36..52])?;
        let [flags]: [u8; 1] = hex(&bytes[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
            state: tracestate.filter(|s| state_ok(s)).map(Arc::from),
        })
    }

    /// The context of `_meta` (a request's), when it carries a valid one.
    pub fn from_meta(meta: &serde_json::Map<String, serde_json::Value>) -> Option<TraceContext> {
        let parent = meta.get(TRACEPARENT)?.as_str()?;
        let state = meta.get(TRACESTATE).and_then(serde_json::Value::as_str);
        TraceContext::parse(parent, state)
    }

    /// A new span under this one: same trace, flags and state, a new id.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: new_span_id(),
            ..self.clone()
        }
    }

    /// The first span of a new trace (sampled).
    pub fn root() -> TraceContext {
        TraceContext {
            trace_id: new_trace_id(),
            span_id: new_span_id(),
            sampled: true,
            state: None,
        }
    }

    /// The `traceparent` naming this span as the parent.
    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(TRACEPARENT_LEN);
        out.push_str("00-");
        out.push_str(&to_hex(&self.trace_id));
        out.push('-');
        out.push_str(&to_hex(&self.span_id));
        out.push_str(if self.sampled { "-01" } else { "-00" });
        out
    }

    /// Put this span in `meta` as the parent of what it is sent with: its
    /// `traceparent`, and its `tracestate` (or none).
    pub fn into_meta(&self, meta: &mut serde_json::Map<String, serde_json::Value>) {
        meta.insert(TRACEPARENT.into(), self.traceparent().into());
        match &self.state {
            Some(state) => meta.insert(TRACESTATE.into(), state.to_string().into()),
            None => meta.remove(TRACESTATE),
        };
    }

    /// The members `"traceparent":"…"` (and `,"tracestate":"…"`) of a JSON
    /// object, for a request written as bytes.
    pub fn meta_members(&self) -> String {
        let mut out = format!("\"{TRACEPARENT}\":\"{}\"", self.traceparent());
        if let Some(state) = &self.state {
            // Checked printable ASCII; serde_json escapes `"` and `\`.
            let quoted = serde_json::to_string(&**state).unwrap_or_default();
            let _ = write!(out, ",\"{TRACESTATE}\":{quoted}");
        }
        out
    }
}

/// A `tracestate` mcpod passes on: at most [`MAX_TRACESTATE`] bytes of
/// printable ASCII in at most 32 list members.
fn state_ok(state: &str) -> bool {
    state.len() <= MAX_TRACESTATE
        && state.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && state.split(',').count() <= MAX_TRACESTATE_MEMBERS
}

/// Lowercase hex of exactly `N` bytes (uppercase is refused, as W3C asks).
fn hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// 64 bits never given before in this process, nonzero, and unpredictable
/// without the seed: splitmix64 (a bijection) of a random seed plus a count.
fn next_id() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(1);
    let seed = *SEED.get_or_init(random_seed);
    loop {
        let mut z = seed.wrapping_add(
            COUNT
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        if z != 0 {
            return z;
        }
    }
}

fn new_span_id() -> [u8; 8] {
    next_id().to_be_bytes()
}

fn new_trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&next_id().to_be_bytes());
    id[8..].copy_from_slice(&next_id().to_be_bytes());
    id
}

/// A seed from the kernel's random source; the clock and the process id if
/// that cannot be read (ids then stay unique, only guessable).
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into `bytes`.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got == 8 {
        return u64::from_ne_bytes(bytes);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_good_traceparent_is_read_and_written_back_the_same() {
        let context = TraceContext::parse(GOOD, Some("rojo=00f067aa0ba902b7")).expect("parses");
        assert!(context.sampled);
        assert_eq!(context.traceparent(), GOOD);
        assert_eq!(context.state.as_deref(), Some("rojo=00f067aa0ba902b7"));
        let child = context.child();
        assert_eq!(child.trace_id, context.trace_id);
        assert_ne!(child.span_id, context.span_id);
    }

    #[test]
    fn hostile_traceparents_are_ignored() {
        let upper = GOOD.to_uppercase();
        let long = format!("{GOOD}-00");
        for bad in [
            "",
            "00",
            &GOOD[..54],
            long.as_str(),
            &upper,
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319cXb7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c8031é-b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceContext::parse(bad, None), None, "{bad}");
        }
    }

    #[test]
    fn a_tracestate_too_long_or_not_ascii_is_dropped_and_the_parent_kept() {
        let long = "a=b,".repeat(3000);
        for bad in [long.as_str(), "k=v\u{7f}", "k=\u{e9}", &"k=v,".repeat(33)] {
            let context = TraceContext::parse(GOOD, Some(bad)).expect("the parent is kept");
            assert_eq!(context.state, None, "{bad}");
        }
    }

    #[test]
    fn ids_are_nonzero_and_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = new_span_id();
            assert_ne!(id, [0; 8]);
            assert!(seen.insert(id));
        }
        assert_ne!(new_trace_id(), new_trace_id());
    }

    #[test]
    fn meta_members_are_json() {
        let mut context = TraceContext::root();
        context.state = Some(Arc::from("k=\"v\\"));
        let object: serde_json::Value =
            serde_json::from_str(&format!("{{{}}}", context.meta_members())).expect("JSON");
        assert_eq!(object[TRACEPARENT], context.traceparent());
        assert_eq!(object[TRACESTATE], "k=\"v\\");
    }
}
