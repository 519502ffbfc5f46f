//! mcpod's side of one egress connection: the destination is checked
//! against the session's grant, the name resolved here (not in the
//! container), every special address refused unless the grant names it, the
//! checked address itself dialled (so a name cannot be rebound to another
//! address between check and dial), the bytes relayed with the stream's flow
//! control, and the connection audited.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcpod_supervisor::mux;
use mcpod_supervisor::protocol::{self, Verdict};
use serde::Serialize;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::pattern::{HOST_ALIAS, Pattern, special};
use crate::proxy::log::LogRing;

const RESOLVE: Duration = Duration::from_secs(5);
const DIAL: Duration = Duration::from_secs(10);

/// Each direction's relay buffer (tokio's default of 8 KiB costs a quarter
/// of the throughput here).
const RELAY_BUFFER: usize = 64 * 1024;

/// The operator's audit file (`--egress-log`): one JSON line per connection.
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
struct Record<'a> {
    time: u64,
    session: &'a str,
    /// The server (through its proxy) or `forward:PORT`.
    from: &'a str,
    destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    verdict: &'static str,
    rule: &'a str,
    bytes_out: u64,
    bytes_in: u64,
    duration_ms: u64,
}

/// A session's gate.
pub struct Gate {
    pub session: String,
    grants: Vec<Pattern>,
    /// Each connection's record, for session_logs.
    pub log: Arc<LogRing>,
    audit: Option<Arc<AuditFile>>,
}

/// The longest host name (and server name) a connection may give.
const MAX_NAME: usize = 253;

/// `text`, cut to [`MAX_NAME`] bytes (with `…` when cut).
fn cut(text: &str) -> String {
    if text.len() <= MAX_NAME {
        return text.to_string();
    }
    let mut end = MAX_NAME;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A connection let through: the socket, the address, the rule.
type Dialled = (TcpStream, SocketAddr, String);

impl Gate {
    pub fn new(session: &str, grants: Vec<Pattern>, audit: Option<Arc<AuditFile>>) -> Gate {
        Gate {
            session: session.to_string(),
            grants,
            log: Arc::new(LogRing::new(1000)),
            audit,
        }
    }

    /// Decide on `host:port` for `from`, answer on `stream`, relay, audit.
    pub async fn handle(
        &self,
        mut stream: BufReader<mux::Stream>,
        from: &str,
        host: &str,
        port: u16,
    ) {
        let began = Instant::now();
        // What the container names is recorded and quoted cut to a DNS
        // name's length, so a long one cannot swell the audit.
        let (host_said, from) = (cut(host), cut(from));
        let from = from.as_str();
        let decided = if host.len() > MAX_NAME {
            Err(format!(
                "`{host_said}` is longer than a host name ({MAX_NAME} bytes)"
            ))
        } else {
            self.decide(host, port).await
        };
        let verdict = match &decided {
            Ok((_, address, rule)) => Verdict {
                allowed: true,
                reason: format!("{rule}; dialled {address}"),
            },
            Err(reason) => Verdict {
                allowed: false,
                reason: reason.clone(),
            },
        };
        let answered = async {
            stream
                .get_mut()
                .write_all(&protocol::line(&verdict))
                .await?;
            stream.get_mut().flush().await
        }
        .await;
        let (address, rule, bytes) = match decided {
            Ok((mut tcp, address, rule)) => {
                let bytes = match answered {
                    Ok(()) => tokio::io::copy_bidirectional_with_sizes(
                        &mut stream,
                        &mut tcp,
                        RELAY_BUFFER,
                        RELAY_BUFFER,
                    )
                    .await
                    .unwrap_or((0, 0)),
                    Err(_) => (0, 0),
                };
                (Some(address.to_string()), rule, bytes)
            }
            Err(reason) => (None, reason, (0, 0)),
        };
        let record = Record {
            time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            session: &self.session,
            from,
            destination: format!("{host_said}:{port}"),
            address,
            verdict: if verdict.allowed {
                "allowed"
            } else {
                "refused"
            },
            rule: &rule,
            bytes_out: bytes.0,
            bytes_in: bytes.1,
            duration_ms: began.elapsed().as_millis() as u64,
        };
        let line = serde_json::to_string(&record).unwrap_or_default();
        tracing::info!(session = %self.session, "egress: {line}");
        self.log.push(&line);
        if let Some(audit) = &self.audit {
            audit.write(&line);
        }
    }

    /// The grant that covers `host:port`, resolved and dialled; or why not.
    async fn decide(&self, host: &str, port: u16) -> Result<Dialled, String> {
        let Some(grant) = self.grants.iter().find(|g| g.matches(host, port)) else {
            return Err(format!(
                "`{host}:{port}` is not in this session's egress grant ({}); the operator grants with --allow-egress and the image or launch asks with `egress`",
                if self.grants.is_empty() {
                    "it has none".to_string()
                } else {
                    self.grants
                        .iter()
                        .map(|g| g.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        };
        let rule = format!("granted by {grant}");
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = if name.eq_ignore_ascii_case(HOST_ALIAS) {
            vec![SocketAddr::from(([127, 0, 0, 1], port))]
        } else if let Ok(ip) = name.parse::<IpAddr>() {
            vec![SocketAddr::new(ip, port)]
        } else {
            match tokio::time::timeout(RESOLVE, tokio::net::lookup_host((name, port))).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => return Err(format!("`{name}` does not resolve: {e} ({rule})")),
                Err(_) => {
                    return Err(format!(
                        "`{name}` did not resolve within {} s ({rule})",
                        RESOLVE.as_secs()
                    ));
                }
            }
        };
        let mut refused = None;
        let allowed: Vec<SocketAddr> = addresses
            .into_iter()
            .filter(|a| match special(a.ip()) {
                Some(why) if !grant.names_address(a.ip()) => {
                    refused.get_or_insert((*a, why));
                    false
                }
                _ => true,
            })
            .collect();
        if allowed.is_empty() {
            return Err(match refused {
                Some((address, why)) => format!(
                    "`{name}` resolves to {}, {why}: refused unless a grant names that address (e.g. --allow-egress {address}) ({rule} does not)",
                    address.ip()
                ),
                None => format!("`{name}` resolves to no address ({rule})"),
            });
        }
        let mut last = String::new();
        for address in allowed {
            match tokio::time::timeout(DIAL, TcpStream::connect(address)).await {
                Ok(Ok(tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok((tcp, address, rule));
                }
                Ok(Err(e)) => last = format!("{address}: {e}"),
                Err(_) => last = format!("{address}: no answer within {} s", DIAL.as_secs()),
            }
        }
        Err(format!(
            "could not connect to `{host}:{port}` ({last}; {rule})"
        ))
    }
}
