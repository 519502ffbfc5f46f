//! OpenTelemetry traces, off unless configured: `mcpod serve --otlp URL`,
//! or the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended). Off, a span is a
//! branch and nothing else: no thread, no queue, no allocation.
//!
//! Spans: each MCP request mcpod serves (its parent the client's
//! `traceparent` from the request's `_meta`, SEP-414), each build,
//! provision and launch under it, each request mcpod makes of a child
//! server (whose `_meta.traceparent` then names that span, so the child's
//! own spans hang under it), and each egress connection. A `traceparent`
//! is believed only in its exact version-00 form (`context.rs`); anything
//! else is ignored as if absent. With tracing off, the client's trace
//! context (when valid) is passed on to the child unchanged.
//!
//! Why its own exporter rather than the `opentelemetry` crates: OTLP/HTTP
//! takes JSON (`POST /v1/traces`, `application/json`, the
//! `ExportTraceServiceRequest` mapping with hex ids), which needs only
//! serde_json and an HTTP/1.1 POST on a `TcpStream` (`export.rs`): this
//! folder is about 1,000 lines with its comments, the spans and the
//! context. `opentelemetry` 0.33 with `opentelemetry_sdk`,
//! `opentelemetry-otlp` (http-json, reqwest client) and
//! `tracing-opentelemetry` add 56 crates to mcpod's 132 (reqwest, tower,
//! prost, url with ICU's idna tables, rand) and 6 to 13% to a clean release
//! build's CPU time (docs/telemetry.md has the measurement). What that costs
//! here: no `https://` endpoint (send to a local collector, which forwards
//! over TLS), no protobuf or gRPC, no metrics or logs, no retries.

mod context;
mod export;
mod record;
mod span;

pub use context::{MAX_TRACESTATE, TRACEPARENT, TRACESTATE, TraceContext};
pub use export::{INTERVAL, MAX_BATCH, QUEUE};
pub use record::{Ended, Kind, Value};
pub use span::{MAX_ATTRIBUTES, MAX_VALUE_BYTES, Span, carried, current, within};

use std::time::Duration;

use crate::{Error, Result};

/// Whether traces are exported (a span is recorded only then).
#[inline]
pub fn enabled() -> bool {
    export::running()
}

/// Where spans are sent: an `http://` URL taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The whole URL, for messages.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as the URL gives it (the `Host` header).
    pub authority: String,
    /// The request path (`/v1/traces`).
    pub path: String,
}

/// The longest endpoint URL taken.
const MAX_URL: usize = 2048;

impl Endpoint {
    /// Parse `url` (named `what` in errors), with `/v1/traces` appended to
    /// its path when it is a base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `--otlp`) rather than the traces URL itself.
    pub fn parse(what: &str, url: &str, base: bool) -> Result<Endpoint> {
        let bad = |why: &str, fix: &str| Error::invalid(what, url, why, fix);
        let example = "give the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318";
        if url.len() > MAX_URL || !url.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(bad(
                "it is longer than 2048 bytes or holds spaces or control characters",
                example,
            ));
        }
        let scheme_end = url.find("://").unwrap_or(0);
        let (scheme, rest) = (url[..scheme_end].to_ascii_lowercase(), &url[scheme_end..]);
        if scheme == "https" {
            return Err(bad(
                "mcpod sends traces over plain HTTP only (it carries no TLS library)",
                "run an OpenTelemetry Collector next to mcpod, point mcpod at its http:// receiver (port 4318), and let it forward over TLS",
            ));
        }
        let Some(rest) = rest.strip_prefix("://").filter(|_| scheme == "http") else {
            return Err(bad("it is not an http:// URL", example));
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') || path.contains('#') {
            return Err(bad(
                "it holds credentials or a fragment",
                "give the collector's URL without user:password@ or #",
            ));
        }
        let (host, port) = host_port(authority)
            .ok_or_else(|| bad("its host or port is missing or malformed", example))?;
        let path = match (base, path) {
            (true, p) => format!("{}/v1/traces", p.trim_end_matches('/')),
            (false, "") => "/".to_string(),
            (false, p) => p.to_string(),
        };
        let url = format!("http://{authority}{path}");
        Ok(Endpoint {
            url,
            host,
            port,
            authority: authority.to_string(),
            path,
        })
    }
}

/// `host[:port]` or `[v6][:port]`, port 80 when not given.
fn host_port(authority: &str) -> Option<(String, u16)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0)?,
        None => 80,
    };
    let ok = |c: char| c.is_ascii_alphanumeric() || ".-_:".contains(c);
    (!host.is_empty() && host.chars().all(ok)).then(|| (host.to_string(), port))
}

/// What tracing is configured to: an endpoint, or off. `flag` is `--otlp`;
/// `env` reads the environment.
pub fn configure(
    flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Endpoint>> {
    if let Some(url) = flag {
        return Endpoint::parse("--otlp", url, true).map(Some);
    }
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none")
    {
        return Ok(None);
    }
    let (name, url, base) = match (
        set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        set("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(url), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url, false),
        (None, Some(url)) => ("OTEL_EXPORTER_OTLP_ENDPOINT", url, true),
        (None, None) => return Ok(None),
    };
    for protocol in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(p) = set(protocol).filter(|p| p.trim() == "grpc") {
            return Err(Error::invalid(
                protocol,
                p,
                "mcpod sends OTLP over HTTP (JSON), not gRPC",
                format!(
                    "set {protocol}=http/json and point {name} at the collector's HTTP port (4318)"
                ),
            ));
        }
    }
    Endpoint::parse(name, url.trim(), base).map(Some)
}

/// Start exporting to `endpoint` (a thread of its own). The service name
/// is `OTEL_SERVICE_NAME`, else `mcpod`.
pub fn start(endpoint: Endpoint) -> Result<()> {
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .unwrap_or_else(|| "mcpod".into());
    let url = endpoint.url.clone();
    export::start(endpoint, service)
        .map_err(|e| Error::io("starting the trace exporter's thread", &url, e))?;
    tracing::info!("exporting traces to {url}");
    Ok(())
}

/// The span of one egress connection of `session` to `host:port`: a trace
/// of its own (which of a server's calls opened it cannot be told), ended
/// when the connection is recorded. [`verdict`] adds what was decided.
pub fn connection(session: &str, host: &str, port: u16) -> Span {
    let mut span = Span::start("egress", None, Kind::Client, None);
    if span.is_on() {
        span.set("mcpod.session", session);
        span.set("server.address", host);
        span.set("server.port", port);
    }
    span
}

/// What was decided of an egress connection `span` that `server` opened.
pub fn verdict(span: &mut Span, server: &str, allowed: bool, reason: &str) {
    span.set("mcpod.server", server);
    span.set("mcpod.egress.allowed", allowed);
    if !allowed {
        span.fail(&reason);
    }
}

/// Send the spans that are left, waiting at most `within`; whether all
/// were sent in time. Nothing to do when tracing is off.
pub fn shutdown(within: Duration) -> bool {
    export::shutdown(within)
}

#[cfg(test)]
mod tests {
    use super::*;
    use export::{MAX_BATCH, QUEUE, dropped};

    /// A collector that takes connections and never answers: the exporter
    /// is stuck in a send while spans keep ending.
    #[test]
    fn a_stuck_collector_drops_spans_and_never_blocks_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let held: Vec<_> = listener.incoming().take(4).collect();
            std::thread::sleep(Duration::from_secs(60));
            drop(held);
        });
        let url = format!("http://127.0.0.1:{port}");
        let endpoint = Endpoint::parse("test", &url, true).expect("endpoint");
        export::start(endpoint, "mcpod".into()).expect("the exporter starts");
        let parent = TraceContext::root();
        let spans = QUEUE + 2 * MAX_BATCH + 100;
        for _ in 0..spans {
            let mut span = Span::start("work", None, Kind::Internal, Some(&parent));
            span.set("n", 1u64);
        }
        // Every span ended; those the queue had no room for were counted.
        assert!(dropped() >= 100, "dropped {}", dropped());
        assert!(dropped() < spans as u64, "some were queued");
        // The collector never answers: shutdown gives up at its bound.
        assert!(!shutdown(Duration::from_millis(200)));
    }

    #[test]
    fn endpoints_are_taken_apart_and_v1_traces_appended_to_a_base() {
        let e = Endpoint::parse("x", "http://127.0.0.1:4318", true).expect("parses");
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 4318, "/v1/traces")
        );
        assert_eq!(e.url, "http://127.0.0.1:4318/v1/traces");
        let e = Endpoint::parse("x", "http://collector/otlp/", true).expect("parses");
        assert_eq!((e.port, e.path.as_str()), (80, "/otlp/v1/traces"));
        let e = Endpoint::parse("x", "HTTP://[::1]:4318/custom", false).expect("parses");
        assert_eq!((e.host.as_str(), e.path.as_str()), ("::1", "/custom"));
    }

    #[test]
    fn bad_endpoints_are_refused_with_a_fix() {
        for bad in [
            "https://collector:4318",
            "collector:4318",
            "http://",
            "http://:4318",
            "http://host:0",
            "http://host:99999",
            "http://user:pw@host:4318",
            "http://host:4318/a b",
            "http://host:4318/\r\nX: y",
            "grpc://host:4317",
        ] {
            let e = Endpoint::parse("--otlp", bad, true)
                .expect_err(bad)
                .to_string();
            assert!(e.contains("--otlp") && e.contains("Fix:"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_environment_configures_and_the_flag_wins() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(configure(None, &env(&[])).expect("ok"), None);
        let base = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318")]);
        let got = configure(None, &base).expect("ok").expect("on");
        assert_eq!(got.url, "http://a:4318/v1/traces");
        let both = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:4318/t"),
        ]);
        assert_eq!(
            configure(None, &both).expect("ok").expect("on").url,
            "http://b:4318/t"
        );
        let flag = configure(Some("http://c:1"), &both)
            .expect("ok")
            .expect("on");
        assert_eq!(flag.url, "http://c:1/v1/traces");
        let off = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert_eq!(configure(None, &off).expect("ok"), None);
        let grpc = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        let e = configure(None, &grpc).expect_err("grpc").to_string();
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && e.contains("Fix:"),
            "{e}"
        );
    }
}
