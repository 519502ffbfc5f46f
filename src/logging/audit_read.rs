//! Reading the audit log back (the `read_audit` tool of an admin): the last
//! records, newest last, that match a principal, a session or a tool. Only
//! the last [`MAX_SCAN`] bytes of the log and of the one before it are read,
//! so the answer costs a bounded amount whatever the log's size; a line that
//! is not a record (cut by the scan's start, or written by something else)
//! is skipped.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::audit::AuditLog;

/// Bytes read from the end of each of the two files.
pub const MAX_SCAN: u64 = 4 << 20;
/// Records one answer holds at most.
pub const MAX_RECORDS: usize = 500;
/// Records an answer holds when the request names no number.
pub const DEFAULT_RECORDS: usize = 50;

/// Arguments of read_audit.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadAuditInput {
    /// Only records of this principal (a token's name, `oauth:SUBJECT` or `stdio`).
    #[serde(default)]
    pub principal: Option<String>,
    /// Only records of calls that reached this session.
    #[serde(default)]
    pub session: Option<String>,
    /// Only records of calls of this tool.
    #[serde(default)]
    pub tool: Option<String>,
    /// How many of the last matching records (default 50, at most 500).
    #[serde(default)]
    pub last: Option<usize>,
}

/// The last matching records of the audit log.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AuditView {
    /// Oldest first; each as the log has it (time_ms, principal, method,
    /// tool, session, server, argument names and sizes, duration_ms, outcome).
    pub records: Vec<serde_json::Map<String, serde_json::Value>>,
    /// More records matched than were returned (ask for more with `last`,
    /// or narrow the filter).
    pub more: bool,
    /// The log file.
    pub path: String,
}

impl AuditLog {
    /// The last records that match `input`.
    pub fn read(&self, input: &ReadAuditInput) -> std::io::Result<AuditView> {
        let want = input.last.unwrap_or(DEFAULT_RECORDS).clamp(1, MAX_RECORDS);
        let mut records = matching(&tail(self.path())?, input);
        if records.len() <= want {
            let mut older = matching(&tail(&self.previous_path())?, input);
            older.append(&mut records);
            records = older;
        }
        let more = records.len() > want;
        let records = records.split_off(records.len().saturating_sub(want));
        Ok(AuditView {
            records,
            more,
            path: self.path().display().to_string(),
        })
    }
}

type Record = serde_json::Map<String, serde_json::Value>;

fn matching(text: &str, input: &ReadAuditInput) -> Vec<Record> {
    let is = |record: &Record, key: &str, want: &Option<String>| {
        want.as_ref()
            .is_none_or(|w| record.get(key).and_then(|v| v.as_str()) == Some(w.as_str()))
    };
    text.lines()
        .filter_map(|line| serde_json::from_str::<Record>(line).ok())
        .filter(|r| r.get("time_ms").is_some() && r.get("principal").is_some())
        .filter(|r| {
            is(r, "principal", &input.principal)
                && is(r, "session", &input.session)
                && is(r, "tool", &input.tool)
        })
        .collect()
}

/// The last [`MAX_SCAN`] bytes of `path`; nothing when it does not exist.
fn tail(path: &Path) -> std::io::Result<String> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    file.seek(SeekFrom::Start(size.saturating_sub(MAX_SCAN)))?;
    let mut bytes = Vec::new();
    file.take(MAX_SCAN).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::audit::Outcome;
    use super::*;

    #[test]
    fn the_last_matching_records_across_a_rotation_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(AuditLog::open(&dir.path().join("audit.jsonl"), 600).unwrap());
        for i in 0..12 {
            let who = if i % 2 == 0 { "alice" } else { "bob" };
            let mut entry = log.begin(who, "tools/call");
            entry.tool(&format!("t{i}"));
            entry.finish(Outcome::Ok);
        }
        assert!(log.previous_path().exists(), "the log was rotated");
        std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"garbage\n{\"x\":1}\n"))
            .unwrap();
        let alice = log
            .read(&ReadAuditInput {
                principal: Some("alice".into()),
                last: Some(2),
                ..Default::default()
            })
            .unwrap();
        let tools: Vec<_> = alice.records.iter().map(|r| r["tool"].clone()).collect();
        assert_eq!(tools, ["t8", "t10"]);
        assert!(alice.more);
        let one = log
            .read(&ReadAuditInput {
                tool: Some("t11".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((one.records.len(), one.more), (1, false));
        assert_eq!(one.records[0]["principal"], "bob");
    }
}
