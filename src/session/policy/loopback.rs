//! Loopback destinations. A granted `127.0.0.1:PORT`, `localhost:PORT` or
//! `[::1]:PORT` is one a client in the session dials on the container's own
//! loopback: `NO_PROXY` keeps it off the proxy, and with `--network=none`
//! nothing else listens there. So each is granted as a forward of the same
//! port on the container's loopback to the host's, through the same gate and
//! audit as every other connection. A port a forward cannot take (a server's
//! egress proxy, or a port already forwarded elsewhere) is refused, naming
//! the `forwards` entry to ask for instead.

use std::collections::BTreeMap;

use crate::egress::{MAX_PROXIES, PROXY_PORTS, Pattern};
use crate::{Error, Result};

/// Whether `port` is one of the servers' egress proxies.
pub(super) fn proxy_port(port: u16) -> bool {
    (PROXY_PORTS..PROXY_PORTS + MAX_PROXIES).contains(&port)
}

/// Add a forward for each destination of `egress` on the container's
/// loopback to `forwards`. What a launch asked that cannot be forwarded is
/// an error; what a label asked is left out of both with a warning.
pub(super) fn forward_loopback(
    egress: &mut Vec<Pattern>,
    forwards: &mut BTreeMap<u16, Pattern>,
    asked: bool,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let mut keep = Vec::with_capacity(egress.len());
    for p in std::mem::take(egress) {
        if !p.on_container_loopback() {
            keep.push(p);
            continue;
        }
        let why = if proxy_port(p.port) {
            Some(format!(
                "a client in the session dials {p} on the container's own loopback, where ports {PROXY_PORTS} to {} are the servers' egress proxies, so it cannot be forwarded at the same port",
                PROXY_PORTS + MAX_PROXIES - 1
            ))
        } else {
            match forwards.get(&p.port) {
                Some(to) if (to.pinned(), to.port) != (p.pinned(), p.port) => Some(format!(
                    "a client in the session dials {p} on the container's own loopback, and port {} there is already forwarded to {to}",
                    p.port
                )),
                _ => None,
            }
        };
        let Some(why) = why else {
            forwards.entry(p.port).or_insert_with(|| p.clone());
            keep.push(p);
            continue;
        };
        let other = spare_port(p.port, forwards);
        if asked {
            *egress = keep;
            return Err(Error::invalid(
                "egress",
                p.to_string(),
                why,
                format!(
                    "ask for it as a forward of another port instead, `\"forwards\": {{\"{other}\": \"{p}\"}}`, and point the server at localhost:{other}"
                ),
            ));
        }
        warnings.push(format!(
            "the image requests egress to {p}; left out: {why} (a launch can ask for `\"forwards\": {{\"{other}\": \"{p}\"}}`)"
        ));
    }
    *egress = keep;
    Ok(())
}

/// What session_logs says when no connection of the session has reached
/// mcpod's gate: what it is granted, and that a connection made anywhere
/// else fails inside the container, unseen by mcpod.
pub fn egress_note(isolation: &crate::session::Isolation) -> String {
    if isolation.network != "none" {
        return format!(
            "the session has the network `{}`: its connections do not pass mcpod's gate and are not recorded",
            isolation.network
        );
    }
    if isolation.egress.is_empty() {
        return "no egress connection: the session is granted no destination, so every connection a server makes fails inside the container (network none) and is not recorded; ask launch_session for `egress` (or `forwards`) within show_policy's allow_egress".into();
    }
    let list = |items: Vec<String>| items.join(", ");
    format!(
        "no connection has reached mcpod's gate yet. Granted: {}{}. A server reaches a destination through its HTTP proxy (HTTP_PROXY, 127.0.0.1:{PROXY_PORTS} and up) or a forwarded port on 127.0.0.1; a connection made any other way fails inside the container (network none) and is not recorded here",
        list(isolation.egress.iter().map(|p| p.to_string()).collect()),
        if isolation.forwards.is_empty() {
            String::new()
        } else {
            format!(
                "; forwarded: {}",
                list(
                    isolation
                        .forwards
                        .iter()
                        .map(|(port, to)| format!("localhost:{port} → {to}"))
                        .collect()
                )
            )
        }
    )
}

/// A port near `port` that neither a proxy nor a forward takes.
fn spare_port(port: u16, forwards: &BTreeMap<u16, Pattern>) -> u16 {
    let start = if proxy_port(port) {
        port + 1000
    } else {
        port.saturating_add(1)
    };
    (start..=u16::MAX)
        .chain(1024..start)
        .find(|q| !proxy_port(*q) && !forwards.contains_key(q))
        .unwrap_or(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).expect(s)
    }

    #[test]
    fn each_loopback_destination_is_forwarded_at_its_own_port() {
        let mut egress = vec![
            p("localhost:8765"),
            p("127.0.0.1:8765"),
            p("[::1]:9000"),
            p("api.github.com:443"),
            p("host.containers.internal:8080"),
        ];
        let mut forwards = BTreeMap::from([(15432, p("db.internal:5432"))]);
        let mut warnings = Vec::new();
        forward_loopback(&mut egress, &mut forwards, true, &mut warnings).expect("granted");
        assert_eq!(egress.len(), 5, "{egress:?}");
        assert_eq!(
            forwards,
            BTreeMap::from([
                (8765, p("localhost:8765")),
                (9000, p("[::1]:9000")),
                (15432, p("db.internal:5432")),
            ])
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn a_port_a_forward_cannot_take_is_refused_naming_the_forward_to_ask_for() {
        for (egress, forwards, says) in [
            (
                "127.0.0.1:41003",
                BTreeMap::new(),
                r#""forwards": {"42003": "127.0.0.1:41003"}"#,
            ),
            (
                "localhost:5432",
                BTreeMap::from([(5432, p("db.internal:5432"))]),
                r#""forwards": {"5433": "localhost:5432"}"#,
            ),
            (
                "[::1]:8765",
                BTreeMap::from([(8765, p("127.0.0.1:8765"))]),
                "already forwarded to 127.0.0.1:8765",
            ),
            (
                "localhost:8765",
                BTreeMap::from([(8765, p("127.0.0.1:9000"))]),
                "already forwarded to 127.0.0.1:9000",
            ),
        ] {
            let (mut e, mut f) = (vec![p(egress)], forwards.clone());
            let err = forward_loopback(&mut e, &mut f, true, &mut Vec::new())
                .expect_err(egress)
                .to_string();
            assert!(err.contains(says), "{egress}: {err}");
            // A label's is left out, with the same advice.
            let (mut e, mut f, mut warnings) = (vec![p(egress)], forwards.clone(), Vec::new());
            forward_loopback(&mut e, &mut f, false, &mut warnings).expect("a warning");
            assert!(e.is_empty() && f == forwards, "{e:?} {f:?}");
            assert!(warnings[0].contains("forwards"), "{warnings:?}");
        }
    }
}
