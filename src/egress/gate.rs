//! mcpod's side of one egress connection: the destination is checked
//! against the session's grant, the name resolved here (not in the
//! container), every special address refused unless the grant names it, the
//! checked address itself dialled (so a name cannot be rebound to another
//! address between check and dial), the bytes relayed with the stream's flow
//! control, and the connection audited under the server whose process
//! opened it (as the supervisor found it): one that came through another
//! server's proxy port is refused.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mcpod_supervisor::mux;
use mcpod_supervisor::protocol::{self, Peer, Verdict};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::audit::{Audit, AuditFile, Record, now};
use super::handoff::{self, Handoffs};
use super::pattern::{HOST_ALIAS, LOCALHOST, Pattern};
use super::relay::Relayed;
use crate::logging::ring::LogRing;

const RESOLVE: Duration = Duration::from_secs(5);

/// The most connections a session holds open at once. A connection handed
/// out of the container no longer holds a stream of the session's
/// multiplexer (which bounds the others), so this bounds what a session's
/// connections cost mcpod: two sockets and two pipes each.
pub const MAX_OPEN: usize = 128;
const DIAL: Duration = Duration::from_secs(10);

/// A session's gate.
pub struct Gate {
    pub session: String,
    grants: Vec<Pattern>,
    /// Each connection's record, for session_logs.
    pub log: Arc<LogRing>,
    audit: Audit,
    /// Cancelled when the session ends, however it ends: every relay ends.
    ending: CancellationToken,
    /// The connections under way, waited for (to be recorded) at the end.
    relays: TaskTracker,
    /// On a local engine, where connections come back as sockets.
    handoffs: OnceLock<Handoffs>,
    /// A permit per connection open (see [`MAX_OPEN`]).
    open: Arc<tokio::sync::Semaphore>,
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

/// How a connection let through is carried.
enum Carry {
    /// On the session stream (a remote engine).
    Stream,
    /// The client's socket handed out of the container, relayed by mcpod.
    HandedOff(handoff::Pending),
    /// mcpod's dialled socket handed into the server: no relay.
    HandedIn,
}

impl Carry {
    /// The audit record's `via`.
    fn via(&self) -> &'static str {
        match self {
            Carry::Stream => "stream",
            Carry::HandedOff(_) => "socket",
            Carry::HandedIn => "handed in",
        }
    }
}

impl Gate {
    pub fn new(session: &str, grants: Vec<Pattern>, audit: Option<Arc<AuditFile>>) -> Gate {
        let log = Arc::new(LogRing::new(1000));
        Gate {
            session: session.to_string(),
            grants,
            audit: Audit::new(session, log.clone(), audit),
            log,
            ending: CancellationToken::new(),
            relays: TaskTracker::new(),
            handoffs: OnceLock::new(),
            open: Arc::new(tokio::sync::Semaphore::new(MAX_OPEN)),
        }
    }

    /// Take connections let through as sockets on `fd`, the session's
    /// hand-off socket (a local engine whose supervisor holds the other end).
    pub fn hand_off_on(&self, fd: OwnedFd) -> std::io::Result<()> {
        let handoffs = Handoffs::start(&self.session, fd, self.ending.clone())?;
        let _ = self.handoffs.set(handoffs);
        Ok(())
    }

    /// End every connection: the session has ended (a connection still
    /// dialling ends once it is let through).
    pub fn end_relays(&self) {
        self.ending.cancel();
    }

    /// End every connection and wait up to `within` for each to be
    /// recorded; then say what was not recorded one by one.
    pub async fn finish(&self, within: Duration) {
        self.end_relays();
        self.relays.close();
        if tokio::time::timeout(within, self.relays.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "session {}: egress connections were not recorded within {within:?} of its end",
                self.session
            );
        }
        self.audit.flush();
    }

    /// Decide on `host:port` for a connection to `from`'s proxy (or a
    /// forward) that `peer`'s process opened, answer on `stream`, relay, audit.
    /// With `hand_in` (a token the supervisor chose for a server's
    /// intercepted `connect`), the dialled socket goes into the container
    /// instead of being relayed.
    pub async fn handle(
        &self,
        mut stream: BufReader<mux::Stream>,
        from: &str,
        peer: Option<Peer>,
        (host, port): (&str, u16),
        hand_in: Option<&str>,
    ) {
        // Counted until recorded, so the session's end waits for the record.
        let _tracked = self.relays.token();
        let mut span = crate::telemetry::connection(&self.session, host, port);
        let began = Instant::now();
        // What the container names is recorded and quoted cut to a DNS
        // name's length, so a long one cannot swell the audit.
        let (host_said, owner) = (cut(host), cut(from));
        let (from, proxy_of, unverified) = match peer {
            None => (owner, None, None),
            Some(Peer::Server(name)) if name == from => (owner, None, None),
            Some(Peer::Server(name)) => (cut(&name), Some(owner), None),
            Some(Peer::Unknown(why)) => (format!("{owner} (unverified)"), None, Some(cut(&why))),
        };
        let from = from.as_str();
        // Held until the connection is recorded.
        let permit = self.open.clone().try_acquire_owned();
        let decided = if permit.is_err() {
            Err(format!(
                "the session has {MAX_OPEN} egress connections open, the most one may: close one first"
            ))
        } else if let Some(owner) = &proxy_of {
            Err(format!(
                "the connection came from server `{from}` through server `{owner}`'s proxy port: refused, each server's connections go through its own proxy (the HTTP_PROXY in its environment), so that the audit names it"
            ))
        } else if host.len() > MAX_NAME {
            Err(format!(
                "`{host_said}` is longer than a host name ({MAX_NAME} bytes)"
            ))
        } else {
            self.decide(host, port).await
        };
        let mut decided = decided;
        let (verdict, carry) = self.answer(&mut decided, hand_in).await;
        crate::telemetry::verdict(&mut span, from, verdict.allowed, &verdict.reason);
        let answered = async {
            stream
                .get_mut()
                .write_all(&protocol::line(&verdict))
                .await?;
            stream.get_mut().flush().await
        }
        .await;
        let via = carry.via();
        let (address, rule, relayed) = match decided {
            Ok((tcp, address, rule)) => {
                let relayed = match answered {
                    Ok(()) => self.carry(carry, stream, tcp).await,
                    Err(e) => Relayed {
                        out: 0,
                        back: 0,
                        end: format!("error: answering the container: {e}"),
                    },
                };
                (Some(address.to_string()), rule, Some(relayed))
            }
            Err(reason) => (None, reason, None),
        };
        self.audit.record(&Record {
            time: now(),
            session: &self.session,
            from,
            proxy_of: proxy_of.as_deref(),
            unverified: unverified.as_deref(),
            destination: format!("{host_said}:{port}"),
            address,
            verdict: if verdict.allowed {
                "allowed"
            } else {
                "refused"
            },
            rule: &rule,
            bytes_out: relayed.as_ref().map_or(0, |r| r.out),
            bytes_in: relayed.as_ref().map_or(0, |r| r.back),
            duration_ms: began.elapsed().as_millis() as u64,
            via: relayed.as_ref().map(|_| via),
            end: relayed.map(|r| r.end),
        });
    }

    /// Send the connection let through in `decided` into the container
    /// under the supervisor's `token`; whether it went (else `decided`
    /// becomes why not).
    async fn hand_in(&self, decided: &mut Result<Dialled, String>, token: &str) -> bool {
        let Ok((tcp, _, _)) = decided else {
            return false;
        };
        let sent = match (
            mcpod_supervisor::handoff::from_hex(token),
            self.handoffs.get(),
        ) {
            (Some(token), Some(handoffs)) => handoffs
                .hand_in(&token, tcp)
                .await
                .map_err(|e| format!("handing the dialled socket into the container: {e}")),
            _ => Err("the supervisor asked for the dialled socket, which this engine cannot hand in (a remote engine), or gave no token".into()),
        };
        match sent {
            Ok(()) => true,
            Err(why) => {
                *decided = Err(why);
                false
            }
        }
    }

    /// What the container is told of `decided`, and how the connection is
    /// carried: with `hand_in` (the supervisor's token), the dialled socket
    /// goes in now (or `decided` becomes why not); else, on a local engine,
    /// the client's socket comes back out under the verdict's token.
    async fn answer(
        &self,
        decided: &mut Result<Dialled, String>,
        hand_in: Option<&str>,
    ) -> (Verdict, Carry) {
        let carry = match (hand_in, decided.is_ok()) {
            (Some(token), true) if self.hand_in(decided, token).await => Carry::HandedIn,
            (Some(_), _) => Carry::Stream,
            (None, true) => match self.handoffs.get().map(Handoffs::expect) {
                Some(Ok(pending)) => Carry::HandedOff(pending),
                Some(Err(e)) => {
                    tracing::warn!("session {}: no hand-off token: {e}", self.session);
                    Carry::Stream
                }
                None => Carry::Stream,
            },
            (None, false) => Carry::Stream,
        };
        let verdict = match &*decided {
            Ok((_, address, rule)) => Verdict {
                allowed: true,
                reason: format!("{rule}; dialled {address}"),
                handoff: match &carry {
                    Carry::HandedIn => hand_in.map(str::to_string),
                    Carry::HandedOff(p) => Some(mcpod_supervisor::handoff::to_hex(&p.token)),
                    Carry::Stream => None,
                },
            },
            Err(reason) => Verdict {
                allowed: false,
                reason: reason.clone(),
                handoff: None,
            },
        };
        (verdict, carry)
    }

    /// Carry a connection let through and answered: relay it on `stream`,
    /// or relay the socket the container hands out, or (handed in) nothing.
    async fn carry(&self, carry: Carry, stream: BufReader<mux::Stream>, tcp: TcpStream) -> Relayed {
        match carry {
            Carry::HandedIn => Relayed {
                out: 0,
                back: 0,
                end:
                    "handed in: the server holds the dialled socket, and its bytes are not counted"
                        .into(),
            },
            Carry::HandedOff(pending) => {
                drop(stream);
                self.relay_handed(pending, tcp).await
            }
            Carry::Stream => super::relay::relay(stream, tcp, &self.ending).await,
        }
    }

    /// Relay the socket the container hands over for `pending` to `tcp`,
    /// what it read past the request first.
    async fn relay_handed(&self, pending: handoff::Pending, mut tcp: TcpStream) -> Relayed {
        let socket = tokio::select! {
            socket = pending.wait(handoff::WAIT) => socket,
            () = self.ending.cancelled() => Err(super::relay::SESSION_ENDED.to_string()),
        };
        let socket = match socket {
            Ok(socket) => socket,
            Err(why) => {
                return Relayed {
                    out: 0,
                    back: 0,
                    end: format!("error: {why}"),
                };
            }
        };
        if let Err(e) = tcp.write_all(&socket.leftover).await {
            return Relayed {
                out: 0,
                back: 0,
                end: format!("error: writing to the destination: {e}"),
            };
        }
        let mut relayed = super::relay::relay_sockets(socket.stream, tcp, &self.ending).await;
        relayed.out += socket.leftover.len() as u64;
        relayed
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
        // The host alias and `localhost` are the host's loopback, never resolved.
        let addresses: Vec<SocketAddr> =
            if name.eq_ignore_ascii_case(HOST_ALIAS) || name.eq_ignore_ascii_case(LOCALHOST) {
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
            .filter(|a| match super::host::refused(a.ip()) {
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
