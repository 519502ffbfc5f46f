//! The egress audit: one JSON line per connection, in the session's log
//! (session_logs), in mcpod's stderr and in the operator's file
//! (`--egress-log`). Refused connections cost a container nothing, so their
//! records are limited per session ([`REFUSED_BURST`] at once, then
//! [`REFUSED_PER_SECOND`]); what is over the limit is counted and said in one
//! `suppressed` record, before the next record let through and when the
//! session ends. Connections let through are each recorded: each is a dial
//! of a granted destination, at most [`crate::egress`]'s stream limit at once.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::logging::Bucket;
use crate::logging::ring::LogRing;

/// Refused connections recorded one by one at once, per session.
pub const REFUSED_BURST: f64 = 100.0;
/// Refused connections recorded one by one a second after that, per session.
pub const REFUSED_PER_SECOND: f64 = 10.0;

/// The operator's audit file (`--egress-log`): one JSON line per record.
pub struct AuditFile(Mutex<std::fs::File>);

impl AuditFile {
    pub fn open(path: &Path) -> std::io::Result<AuditFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(AuditFile(Mutex::new(file)))
    }

    fn write(&self, line: &str) {
        use std::io::Write;
        let mut file = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = writeln!(file, "{line}") {
            tracing::warn!("cannot write the egress audit file: {e}");
        }
    }
}

/// One connection, as audited.
#[derive(Serialize)]
pub struct Record<'a> {
    pub time: u64,
    pub session: &'a str,
    /// The server whose process opened it (through a proxy; `NAME
    /// (unverified)`: the proxy's owner, when the supervisor could not tell)
    /// or `forward:PORT`.
    pub from: &'a str,
    /// The server whose proxy port it came through, when not `from`'s own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_of: Option<&'a str>,
    /// Why the supervisor could not tell which server opened it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unverified: Option<&'a str>,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub verdict: &'static str,
    pub rule: &'a str,
    /// Bytes relayed each way, counted as they went.
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub duration_ms: u64,
    /// How a connection let through was carried: `socket` (handed out of
    /// the container, relayed once: a local engine) or `stream` (over the
    /// session stream).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<&'static str>,
    /// How a connection let through ended: `closed` (both sides), `error:
    /// ...`, or `the session ended` (mcpod ended it with its session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// What a `suppressed` record says.
#[derive(Serialize)]
struct Suppressed<'a> {
    time: u64,
    session: &'a str,
    verdict: &'static str,
    /// Refused connections not recorded one by one.
    refused: u64,
    rule: String,
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A session's audit trail.
pub struct Audit {
    session: String,
    log: Arc<LogRing>,
    file: Option<Arc<AuditFile>>,
    refused: Mutex<Bucket>,
}

impl Audit {
    pub fn new(session: &str, log: Arc<LogRing>, file: Option<Arc<AuditFile>>) -> Audit {
        Audit {
            session: session.to_string(),
            log,
            file,
            refused: Mutex::new(Bucket::new(REFUSED_BURST, REFUSED_PER_SECOND)),
        }
    }

    /// Record `record` (a refused one within the limit).
    pub fn record(&self, record: &Record<'_>) {
        self.record_at(record, Instant::now());
    }

    fn record_at(&self, record: &Record<'_>, now: Instant) {
        let refused = record.verdict == "refused";
        let mut bucket = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let dropped = if refused {
            match bucket.admit(now) {
                Some(dropped) => dropped,
                None => return,
            }
        } else {
            bucket.take_dropped()
        };
        drop(bucket);
        self.suppressed(dropped);
        self.write(&serde_json::to_string(record).unwrap_or_default());
    }

    /// Say how many refused connections were not recorded one by one, if any
    /// (the session is ending).
    pub fn flush(&self) {
        let dropped = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_dropped();
        self.suppressed(dropped);
    }

    fn suppressed(&self, refused: u64) {
        if refused == 0 {
            return;
        }
        let record = Suppressed {
            time: now(),
            session: &self.session,
            verdict: "suppressed",
            refused,
            rule: format!(
                "over {REFUSED_BURST} refused connections at once or {REFUSED_PER_SECOND} a second in this session: not recorded one by one"
            ),
        };
        self.write(&serde_json::to_string(&record).unwrap_or_default());
    }

    fn write(&self, line: &str) {
        tracing::info!(session = %self.session, "egress: {line}");
        self.log.push(line);
        if let Some(file) = &self.file {
            file.write(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn refused<'a>(session: &'a str) -> Record<'a> {
        Record {
            time: 0,
            session,
            from: "s",
            proxy_of: None,
            unverified: None,
            destination: "x.example:443".into(),
            address: None,
            verdict: "refused",
            rule: "not granted",
            bytes_out: 0,
            bytes_in: 0,
            duration_ms: 0,
            via: None,
            end: None,
        }
    }

    fn lines(log: &LogRing) -> Vec<serde_json::Value> {
        log.tail(100_000)
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    #[test]
    fn a_flood_of_refusals_is_cut_to_the_limit_and_counted() {
        let log = Arc::new(LogRing::new(100_000));
        let audit = Audit::new("s1", log.clone(), None);
        let start = Instant::now();
        for _ in 0..3000 {
            audit.record_at(&refused("s1"), start);
        }
        assert_eq!(lines(&log).len(), REFUSED_BURST as usize);
        // A connection let through is recorded, after the count of what was not.
        let mut allowed = refused("s1");
        allowed.verdict = "allowed";
        audit.record_at(&allowed, start);
        let all = lines(&log);
        let summary = &all[all.len() - 2];
        assert_eq!(summary["verdict"], "suppressed", "{summary}");
        assert_eq!(summary["refused"], 3000 - REFUSED_BURST as u64);
        assert_eq!(all[all.len() - 1]["verdict"], "allowed");
        // A second on: the rate; the session's end says what is left.
        let later = start + Duration::from_secs(1);
        for _ in 0..100 {
            audit.record_at(&refused("s1"), later);
        }
        audit.flush();
        let all = lines(&log);
        let last = all.last().expect("a summary");
        assert_eq!(last["refused"], 100 - REFUSED_PER_SECOND as u64, "{last}");
        audit.flush();
        assert_eq!(lines(&log).len(), all.len(), "nothing more to say");
    }
}
