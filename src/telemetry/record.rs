//! What a span records: its kind, its attributes' values, and the span
//! once ended, as the exporter takes it.

use super::context::TraceContext;

/// OTLP's span kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Work inside mcpod (a build, a launch).
    Internal = 1,
    /// A request mcpod serves.
    Server = 2,
    /// A request mcpod makes (to a child server) or a connection it relays.
    Client = 3,
}

/// An attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_string())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Str(v.clone())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::from(v as u64)
    }
}

impl From<u16> for Value {
    fn from(v: u16) -> Value {
        Value::Int(i64::from(v))
    }
}

/// A span that ended, for the exporter.
#[derive(Debug)]
pub struct Ended {
    pub context: TraceContext,
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, Value)>,
    /// Why it failed (OTLP status `ERROR`), or none (status unset).
    pub error: Option<String>,
}
