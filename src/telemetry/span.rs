//! One span: started under a parent (the request's, the caller's, or none),
//! given attributes, ended when dropped and handed to the exporter. With
//! tracing off a span is `None` inside: starting, naming and ending it cost
//! a branch each, and nothing is allocated.
//!
//! The trace context in effect (what a child's request names as its
//! parent) follows the work in a task-local: [`within`] sets it for a
//! future, [`current`] reads it. Work moved to another task takes it along
//! explicitly ([`current`] before the spawn, [`within`] around it).

use std::borrow::Cow;
use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::Either;

use super::context::TraceContext;
use super::record::{Ended, Kind, Value};

/// Attributes a span keeps; more are left out.
pub const MAX_ATTRIBUTES: usize = 32;
/// Bytes of an attribute's text, or of a status message; longer ones are cut.
pub const MAX_VALUE_BYTES: usize = 1024;

/// A span under way; ended (and exported, when sampled) when dropped.
#[must_use = "a span ends when dropped"]
pub struct Span(Option<Box<Ended>>);

impl Span {
    /// A span `name` (with ` target` after it, when given) under `parent`,
    /// or the first of a new trace; a span of nothing while tracing is off.
    pub fn start(
        name: &str,
        target: Option<&str>,
        kind: Kind,
        parent: Option<&TraceContext>,
    ) -> Span {
        if !super::enabled() {
            return Span(None);
        }
        let context = match parent {
            Some(parent) => parent.child(),
            None => TraceContext::root(),
        };
        let name = match target {
            Some(target) => format!("{} {}", cut(name), cut(target)),
            None => cut(name).into_owned(),
        };
        Span(Some(Box::new(Ended {
            context,
            parent: parent.map(|p| p.span_id),
            name,
            kind,
            start_ns: now_ns(),
            end_ns: 0,
            attributes: Vec::new(),
            error: None,
        })))
    }

    /// A span under the trace context in effect ([`current`]).
    pub fn under_current(name: &str, target: Option<&str>, kind: Kind) -> Span {
        if !super::enabled() {
            return Span(None);
        }
        Span::start(name, target, kind, current().as_ref())
    }

    /// A span that records nothing.
    pub fn none() -> Span {
        Span(None)
    }

    /// Whether it records (tracing is on).
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Set attribute `key` (the value is converted only when tracing is on).
    pub fn set<V: Into<Value>>(&mut self, key: &'static str, value: V) {
        let Some(span) = &mut self.0 else {
            return;
        };
        if span.attributes.len() >= MAX_ATTRIBUTES {
            return;
        }
        let value = match value.into() {
            Value::Str(s) if s.len() > MAX_VALUE_BYTES => Value::Str(cut(&s).into_owned()),
            other => other,
        };
        match span.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(kept) => kept.1 = value,
            None => span.attributes.push((key, value)),
        }
    }

    /// Mark it failed, saying why.
    pub fn fail(&mut self, why: &dyn std::fmt::Display) {
        if let Some(span) = &mut self.0 {
            span.error = Some(cut(&why.to_string()).into_owned());
        }
    }

    /// Where it sits: what a request it makes names as its parent.
    pub fn context(&self) -> Option<&TraceContext> {
        self.0.as_ref().map(|s| &s.context)
    }

    /// Run `work` with this span as the trace context in effect (with
    /// tracing off, the one in effect stays).
    pub fn run<F: Future>(&self, work: F) -> impl Future<Output = F::Output> + use<F> {
        within(self.context().cloned(), work)
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(mut span) = self.0.take()
            && span.context.sampled
        {
            span.end_ns = now_ns().max(span.start_ns);
            super::export::submit(span);
        }
    }
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// The trace context in effect: the innermost span of mcpod's own, or with
/// tracing off the client's (passed on to children unchanged).
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Run `work` with `context` in effect (none: the one in effect stays).
pub fn within<F: Future>(
    context: Option<TraceContext>,
    work: F,
) -> impl Future<Output = F::Output> {
    match context {
        Some(context) => Either::Left(CURRENT.scope(context, work)),
        None => Either::Right(work),
    }
}

/// `work` with the trace context in effect now: for work handed to a task
/// of its own, which starts with none.
pub fn carried<F: Future>(work: F) -> impl Future<Output = F::Output> {
    within(current(), work)
}

/// `text` cut to [`MAX_VALUE_BYTES`] at a character boundary.
fn cut(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_VALUE_BYTES {
        return Cow::Borrowed(text);
    }
    let mut end = MAX_VALUE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
