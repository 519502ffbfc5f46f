//! mcpod's stderr log: one line per event, each at most [`EVENT_BYTES`], and
//! at most [`BURST`] events at once and [`PER_SECOND`] a second after that.
//! What is over the rate is counted and said in one line, not written: a
//! child that floods notifications or stderr cannot fill the operator's disk
//! through mcpod (clients often write this stream to a file). [`ring`] keeps
//! the last lines of a server's stderr and of a session's egress for
//! `session_logs`.

pub mod audit;
pub mod audit_read;
pub mod ring;

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Bytes of one event; a longer one is cut.
pub const EVENT_BYTES: usize = 2048;
/// Events written at once before the rate applies.
pub const BURST: f64 = 200.0;
/// Events a second, sustained.
pub const PER_SECOND: f64 = 50.0;

/// A token bucket of events: `burst` at once, `per_second` after that;
/// what is over the rate is counted, for the next event admitted (or
/// [`Bucket::take_dropped`]) to say. The egress audit limits refused
/// connections' records with one too.
pub struct Bucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Option<Instant>,
    dropped: u64,
}

impl Bucket {
    pub const fn new(burst: f64, per_second: f64) -> Bucket {
        Bucket {
            burst,
            per_second,
            tokens: burst,
            last: None,
            dropped: 0,
        }
    }

    /// Whether an event at `now` may be written: `Some(events dropped
    /// before it)`; `None` (counted) when it is over the rate.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let last = *self.last.get_or_insert(now);
        let elapsed = now.saturating_duration_since(last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = Some(now);
        if self.tokens < 1.0 {
            self.dropped += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(self.take_dropped())
    }

    /// Events dropped since the last admitted one (or the last call), now zero.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

static BUCKET: Mutex<Bucket> = Mutex::new(Bucket::new(BURST, PER_SECOND));

/// The default filter: info for mcpod, warnings only for rmcp (whose info
/// events carry whole notifications and the client's initialize parameters).
pub const DEFAULT_FILTER: &str = "info,rmcp=warn";

/// A `tracing_subscriber` writer for stderr, rate-limited.
#[derive(Clone, Copy, Default)]
pub struct LimitedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LimitedStderr {
    type Writer = LimitedStderr;
    fn make_writer(&'a self) -> Self::Writer {
        LimitedStderr
    }
}

impl Write for LimitedStderr {
    /// tracing's fmt layer writes each event with one call.
    fn write(&mut self, event: &[u8]) -> std::io::Result<usize> {
        let Some(dropped) = admit(Instant::now()) else {
            return Ok(event.len());
        };
        let mut out = Vec::with_capacity(event.len().min(EVENT_BYTES) + 80);
        if dropped > 0 {
            out.extend_from_slice(
                format!("mcpod: {dropped} log lines dropped (over {PER_SECOND} a second)\n")
                    .as_bytes(),
            );
        }
        let line = cut(event);
        out.extend_from_slice(line);
        if line.len() < event.len() {
            out.push(b'\n');
        }
        let _ = std::io::stderr().lock().write_all(&out);
        Ok(event.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Whether an event at `now` may be written: `Some(lines dropped before it)`.
fn admit(now: Instant) -> Option<u64> {
    BUCKET.lock().unwrap_or_else(|p| p.into_inner()).admit(now)
}

/// An event cut to [`EVENT_BYTES`], still one line.
fn cut(event: &[u8]) -> &[u8] {
    if event.len() <= EVENT_BYTES {
        return event;
    }
    // Keep the newline: one event, one line.
    &event[..EVENT_BYTES - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flood_is_cut_to_the_rate_and_counted() {
        let start = Instant::now();
        let written = (0..10_000).filter(|_| admit(start).is_some()).count();
        assert_eq!(written, BURST as usize);
        // A second later, PER_SECOND more, the first saying how many were dropped.
        let later = start + Duration::from_secs(1);
        assert_eq!(admit(later), Some(10_000 - BURST as u64));
        let more = (1..10_000).filter(|_| admit(later).is_some()).count();
        assert_eq!(more + 1, PER_SECOND as usize);
    }

    #[test]
    fn a_long_event_is_cut() {
        let long = vec![b'x'; 10 * EVENT_BYTES];
        assert_eq!(cut(&long).len(), EVENT_BYTES - 1);
        assert_eq!(cut(b"short\n"), b"short\n");
    }
}
