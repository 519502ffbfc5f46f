//! The audit log of `mcpod serve` (stdio and HTTP): one JSON line per
//! request an agent sent, in `<state dir>/audit.jsonl`: when, who (the
//! token's name, or `stdio`), the method, for a tool call the tool, the
//! session and server it reached, each argument's name and size in bytes
//! (never its value), how long it took and how it ended (`ok`, `error`,
//! `input_required` or `cancelled`). No error text is kept: a tool's error
//! may quote what it was given.
//!
//! Bounds: the file grows to [`DEFAULT_MAX_BYTES`] (`--audit-max-mb`), is
//! then renamed to `audit.jsonl.1` (replacing the one before) and begun
//! anew, so the log takes at most twice the bound. A record names at most
//! [`MAX_ARGUMENTS`] arguments (and counts the rest); a name or tool is cut
//! to [`MAX_NAME_CHARS`] characters with its control characters written as
//! `\u{..}`, so a record is at most a few KiB and a decoded name cannot
//! steer a terminal. Several mcpod processes may share a state directory:
//! each appends whole lines, and reopens the file when another rotated it.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::value::RawValue;

/// The audit log's name in the state directory.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// Bytes the audit log grows to before it is rotated (`--audit-max-mb 16`).
pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;
/// Arguments one record names; the rest are counted.
pub const MAX_ARGUMENTS: usize = 32;
/// Characters of an argument's name, a tool's or a method's, as recorded.
pub const MAX_NAME_CHARS: usize = 128;

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error,
    /// A 2026-07-28 request answered with an input round (its retry is
    /// recorded again).
    InputRequired,
    Cancelled,
}

/// One argument, as recorded.
#[derive(Debug, Serialize)]
pub struct Argument {
    pub name: String,
    /// Bytes of its value as JSON.
    pub bytes: usize,
}

#[derive(Debug, Serialize)]
struct Record {
    time_ms: u64,
    principal: String,
    method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    arguments: Vec<Argument>,
    /// Arguments beyond [`MAX_ARGUMENTS`], not named.
    #[serde(skip_serializing_if = "is_zero")]
    arguments_more: usize,
    duration_ms: u64,
    outcome: Outcome,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The audit log file.
pub struct AuditLog {
    path: PathBuf,
    previous: PathBuf,
    max_bytes: u64,
    file: Mutex<Option<File>>,
}

impl AuditLog {
    /// The audit log in mcpod's state directory.
    pub fn in_state_dir(max_bytes: u64) -> std::io::Result<AuditLog> {
        let dir = crate::engine::home::state_dir();
        std::fs::create_dir_all(&dir)?;
        AuditLog::open(&dir.join(AUDIT_FILE), max_bytes)
    }

    /// The audit log at `path`, rotated at `max_bytes`.
    pub fn open(path: &Path, max_bytes: u64) -> std::io::Result<AuditLog> {
        let file = append(path)?;
        let mut previous = path.as_os_str().to_owned();
        previous.push(".1");
        Ok(AuditLog {
            path: path.to_path_buf(),
            previous: previous.into(),
            max_bytes,
            file: Mutex::new(Some(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The log before the last rotation.
    pub fn previous_path(&self) -> PathBuf {
        self.previous.clone()
    }

    /// A record of a request by `principal` of `method`, written when it is
    /// finished (or, dropped unfinished, as `cancelled`).
    pub fn begin(self: &Arc<Self>, principal: &str, method: &str) -> Entry {
        Entry {
            log: Some(self.clone()),
            started: Instant::now(),
            record: Record {
                time_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                principal: bounded(principal),
                method: bounded(method),
                tool: None,
                session: None,
                server: None,
                arguments: Vec::new(),
                arguments_more: 0,
                duration_ms: 0,
                outcome: Outcome::Cancelled,
            },
        }
    }

    fn write(&self, record: &Record) {
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!("could not write an audit record: {e}");
                return;
            }
        };
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.append(&mut file, &line) {
            tracing::warn!("could not write the audit log {}: {e}", self.path.display());
        }
    }

    /// Append `line`, first reopening the file if another process rotated
    /// it and rotating it if `line` would take it past the bound.
    fn append(&self, file: &mut Option<File>, line: &[u8]) -> std::io::Result<()> {
        let here = std::fs::metadata(&self.path).ok();
        let same = match (file.as_ref(), &here) {
            (Some(f), Some(here)) => f.metadata()?.ino() == here.ino(),
            _ => false,
        };
        if !same {
            *file = Some(append(&self.path)?);
        }
        let size = here.filter(|_| same).map_or(0, |m| m.len());
        if size > 0 && size + line.len() as u64 > self.max_bytes {
            std::fs::rename(&self.path, &self.previous)?;
            *file = Some(append(&self.path)?);
        }
        match file.as_mut() {
            Some(f) => f.write_all(line),
            None => Ok(()),
        }
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// A request under way; see [`AuditLog::begin`].
pub struct Entry {
    log: Option<Arc<AuditLog>>,
    started: Instant,
    record: Record,
}

impl Entry {
    pub fn tool(&mut self, name: &str) {
        self.record.tool = Some(bounded(name));
    }

    /// The session and server the request reached.
    pub fn reached(&mut self, session: &str, server: Option<&str>) {
        self.record.session = Some(bounded(session));
        self.record.server = server.map(bounded);
    }

    /// The names and sizes of a call's arguments.
    pub fn arguments(&mut self, arguments: &serde_json::Map<String, serde_json::Value>) {
        self.record.arguments.clear();
        self.record.arguments_more = 0;
        for (name, value) in arguments {
            self.argument(name, json_bytes(value));
        }
    }

    /// The same, from the raw JSON of the arguments (the fast path's);
    /// nothing when it is not an object.
    pub fn raw_arguments(&mut self, arguments: &RawValue) {
        type Pairs<'a> = std::collections::BTreeMap<std::borrow::Cow<'a, str>, &'a RawValue>;
        let Ok(map) = serde_json::from_str::<Pairs>(arguments.get()) else {
            return;
        };
        for (name, value) in map {
            self.argument(&name, value.get().len());
        }
    }

    fn argument(&mut self, name: &str, bytes: usize) {
        if self.record.arguments.len() >= MAX_ARGUMENTS {
            self.record.arguments_more += 1;
            return;
        }
        self.record.arguments.push(Argument {
            name: bounded(name),
            bytes,
        });
    }

    /// Write the record with `outcome`.
    pub fn finish(mut self, outcome: Outcome) {
        self.record.outcome = outcome;
        self.write();
    }

    fn write(&mut self) {
        let Some(log) = self.log.take() else {
            return;
        };
        self.record.duration_ms = self.started.elapsed().as_millis() as u64;
        log.write(&self.record);
    }
}

impl Drop for Entry {
    /// Dropped unfinished: the request's future was dropped (cancelled).
    fn drop(&mut self) {
        self.record.outcome = Outcome::Cancelled;
        self.write();
    }
}

/// Bytes of `value` as JSON, counted without keeping them.
fn json_bytes(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// `s` cut to [`MAX_NAME_CHARS`] characters, control characters as `\u{..}`.
fn bounded(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == MAX_NAME_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// How a JSON-RPC response line (a passed-through call's) ended.
pub fn outcome_of_response(line: &[u8]) -> Outcome {
    #[derive(serde::Deserialize)]
    struct Response<'a> {
        #[serde(borrow, default)]
        error: Option<&'a RawValue>,
        #[serde(borrow, default)]
        result: Option<&'a RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Result {
        #[serde(rename = "isError", default)]
        is_error: Option<bool>,
    }
    let Ok(response) = serde_json::from_slice::<Response>(line) else {
        return Outcome::Error;
    };
    let failed = response.error.is_some()
        || response.result.is_none_or(|r| {
            serde_json::from_str::<Result>(r.get()).map_or(true, |r| r.is_error == Some(true))
        });
    if failed { Outcome::Error } else { Outcome::Ok }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_names_and_sizes_never_values_and_rotate_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUDIT_FILE);
        let log = Arc::new(AuditLog::open(&path, 4096).unwrap());
        let mut entry = log.begin("alice", "tools/call");
        entry.tool("t\u{1b}[2J");
        let mut arguments = serde_json::Map::new();
        arguments.insert("secret".into(), serde_json::json!("hunter2"));
        arguments.insert("x".repeat(1000), serde_json::json!(1));
        entry.arguments(&arguments);
        entry.finish(Outcome::Ok);
        drop(log.begin("bob", "tools/call"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["tool"], "t\\u{1b}[2J");
        assert_eq!(lines[0]["arguments"][0]["name"], "secret");
        assert_eq!(lines[0]["arguments"][0]["bytes"], 9);
        let long = lines[0]["arguments"][1]["name"].as_str().unwrap();
        assert_eq!(long.chars().count(), MAX_NAME_CHARS + 1);
        assert_eq!(lines[1]["outcome"], "cancelled");

        let raw = RawValue::from_string(r#"{"b": [1, 2], "a": "hunter2"}"#.into()).unwrap();
        for _ in 0..40 {
            let mut entry = log.begin("stdio", "tools/call");
            entry.raw_arguments(&raw);
            entry.finish(outcome_of_response(
                br#"{"id":1,"result":{"isError":true}}"#,
            ));
        }
        let previous = dir.path().join("audit.jsonl.1");
        for file in [&path, &previous] {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(text.len() <= 4096 && !text.contains("hunter2"));
            assert!(text.lines().all(|l| l.contains(r#""outcome":"error""#)
                || l.contains("alice")
                || l.contains("bob")));
        }
        assert_eq!(outcome_of_response(br#"{"id":1,"result":{}}"#), Outcome::Ok);
        assert_eq!(
            outcome_of_response(br#"{"id":1,"error":{}}"#),
            Outcome::Error
        );
    }
}
