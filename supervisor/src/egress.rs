//! The container's side of egress: an HTTP proxy per server on the
//! container's loopback (CONNECT, and plain HTTP in absolute form) and the
//! granted port forwards. Each connection becomes a stream to mcpod, which
//! decides ([`Verdict`]) and dials; a refusal is an HTTP 403 naming the rule.
//! A proxy connection's offer says which server's process opened it
//! ([`peer`](crate::peer)), so mcpod refuses one that came through another
//! server's port and audits the server that really connected.

use std::os::fd::AsFd;
use std::sync::Arc;

use mcpod_supervisor::handoff::{self, Channel, Token};
use mcpod_supervisor::mux;
use mcpod_supervisor::protocol::{self, Forward, Offer, Peer, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

use crate::peer::{self, Servers};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head the proxy reads.
const MAX_HEAD: usize = 16 * 1024;

/// How long mcpod gets to decide and dial.
const VERDICT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where connections go: a stream to mcpod for each, and on a local engine
/// the socket the client's connection is handed over on once let through
/// (see `handoff.rs` in the library).
#[derive(Clone)]
pub struct Gateway {
    pub opener: mux::Opener,
    pub handoff: Option<Arc<Channel>>,
}

/// A connection let through: carried on its stream, handed to mcpod, or
/// (an intercepted `connect`) mcpod's socket sent in under our token.
pub enum Upstream {
    Stream(BufReader<mux::Stream>),
    Handoff(Token),
    HandedIn,
}

/// Listen on `127.0.0.1:port` as `from`'s HTTP proxy; returns once bound.
/// Each connection is attributed to the server among `servers` whose
/// process opened it.
pub async fn proxy(
    port: u16,
    from: String,
    gateway: Gateway,
    servers: Servers,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    tokio::spawn(async move {
        while let Ok((client, address)) = listener.accept().await {
            // At accept, while the connection is open: its holder exists.
            let peer = match client.local_addr() {
                Ok(local) => {
                    let servers = servers.clone();
                    tokio::spawn(async move { peer::attribute(&servers, address, local).await })
                }
                Err(e) => {
                    let why = format!("the proxy's own address: {e}");
                    tokio::spawn(async move { Peer::Unknown(why) })
                }
            };
            tokio::spawn(proxy_connection(
                client,
                from.clone(),
                peer,
                gateway.clone(),
            ));
        }
    });
    Ok(())
}

/// Listen on `127.0.0.1:listen` (and `[::1]:listen` where the container
/// has IPv6 loopback, so a client that dials `localhost` as `::1` first
/// reaches it too) and send every connection to the forward's destination;
/// returns once bound.
pub async fn forward(forward: Forward, gateway: Gateway) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", forward.listen)).await?;
    match TcpListener::bind(("::1", forward.listen)).await {
        Ok(v6) => accept_forward(v6, forward.clone(), gateway.clone()),
        Err(e) => eprintln!(
            "mcpod-supervisor: port forward {}: not on [::1] ({e}); on 127.0.0.1 only",
            forward.listen
        ),
    }
    accept_forward(listener, forward, gateway);
    Ok(())
}

fn accept_forward(listener: TcpListener, forward: Forward, gateway: Gateway) {
    tokio::spawn(async move {
        let from = format!("forward:{}", forward.listen);
        while let Ok((client, _)) = listener.accept().await {
            let (gateway, from, host) = (gateway.clone(), from.clone(), forward.host.clone());
            let port = forward.port;
            tokio::spawn(async move {
                if let Ok(upstream) = ask(&gateway, &from, None, (&host, port), None).await {
                    carry(&gateway, upstream, client, &[]).await;
                }
            });
        }
    });
}

/// Carry a connection let through: hand the client's socket to mcpod with
/// `leftover` (what goes to the destination first), or write `leftover` to
/// its stream and relay.
async fn carry(gateway: &Gateway, upstream: Upstream, mut client: TcpStream, leftover: &[u8]) {
    match upstream {
        Upstream::Handoff(token) => {
            let Some(channel) = &gateway.handoff else {
                return;
            };
            if let Err(e) = channel.send(&token, leftover, client.as_fd()).await {
                eprintln!("mcpod-supervisor: handing a connection to mcpod: {e}");
            }
            // mcpod holds it now (or it failed): this copy closes.
        }
        Upstream::Stream(mut stream) => {
            if stream.get_mut().write_all(leftover).await.is_ok() {
                relay(&mut client, &mut stream).await;
            }
        }
        // Asked for by an intercepted `connect` only, never here.
        Upstream::HandedIn => {}
    }
}

/// A stream to `host:port` through mcpod's gate, or the rule that refused
/// it; with `hand_in` (a token, hex), mcpod's dialled socket instead, sent on
/// the hand-off socket under that token.
pub async fn ask(
    gateway: &Gateway,
    from: &str,
    peer: Option<Peer>,
    (host, port): (&str, u16),
    hand_in: Option<&str>,
) -> Result<Upstream, String> {
    let stream = gateway
        .opener
        .open()
        .await
        .map_err(|e| format!("the session stream: {e}"))?;
    let mut stream = BufReader::new(stream);
    let offer = Offer::Connect {
        from: from.to_string(),
        host: host.to_string(),
        port,
        peer,
        hand_in: hand_in.map(str::to_string),
    };
    let verdict = tokio::time::timeout(VERDICT, async {
        stream.get_mut().write_all(&protocol::line(&offer)).await?;
        stream.get_mut().flush().await?;
        protocol::read_line::<Verdict, _>(&mut stream).await
    })
    .await;
    match verdict {
        Ok(Ok(Some(Verdict {
            allowed: true,
            handoff: None,
            ..
        }))) => Ok(Upstream::Stream(stream)),
        Ok(Ok(Some(Verdict {
            allowed: true,
            handoff: Some(token),
            ..
        }))) if hand_in == Some(token.as_str()) => Ok(Upstream::HandedIn),
        Ok(Ok(Some(Verdict {
            allowed: true,
            handoff: Some(token),
            ..
        }))) => match (handoff::from_hex(&token), &gateway.handoff) {
            (Some(token), Some(_)) => Ok(Upstream::Handoff(token)),
            _ => Err("mcpod asked for a hand-off this supervisor cannot make".into()),
        },
        Ok(Ok(Some(Verdict { reason, .. }))) => Err(reason),
        Ok(Ok(None)) => Err("mcpod closed the connection".into()),
        Ok(Err(e)) => Err(format!("mcpod's answer: {e}")),
        Err(_) => Err(format!(
            "mcpod did not answer within {} s",
            VERDICT.as_secs()
        )),
    }
}

/// One client of the proxy: read its request head (while `peer` looks for
/// who opened it), ask mcpod, then relay.
async fn proxy_connection(
    mut client: TcpStream,
    from: String,
    peer: tokio::task::JoinHandle<Peer>,
    gateway: Gateway,
) {
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        let mut chunk = [0u8; 4096];
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > MAX_HEAD {
            return refuse(&mut client, 431, "the request head is longer than 16 KiB").await;
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(
        request.parse(&buf[..end]),
        Ok(httparse::Status::Complete(_))
    ) {
        return refuse(&mut client, 400, "not an HTTP request").await;
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return refuse(&mut client, 400, "not an HTTP request").await;
    };
    let connect = method.eq_ignore_ascii_case("CONNECT");
    let parsed = if connect {
        authority(target, None)
    } else if let Some(rest) = target.strip_prefix("http://") {
        authority(&rest[..rest.find('/').unwrap_or(rest.len())], Some(80))
    } else {
        return refuse(
            &mut client,
            400,
            "the proxy takes CONNECT host:port, or plain HTTP with an absolute http:// URL",
        )
        .await;
    };
    let Some((host, port)) = parsed else {
        return refuse(
            &mut client,
            400,
            &format!("`{target}` names no host and port"),
        )
        .await;
    };
    let peer = peer
        .await
        .unwrap_or_else(|e| Peer::Unknown(format!("the lookup failed: {e}")));
    let upstream = match ask(&gateway, &from, Some(peer), (&host, port), None).await {
        Ok(upstream) => upstream,
        Err(reason) => return refuse(&mut client, 403, &reason).await,
    };
    let leftover = if connect {
        let ok = client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await;
        if ok.is_err() {
            return;
        }
        buf[end..].to_vec()
    } else {
        let mut out = origin_form(&request, target).into_bytes();
        out.extend_from_slice(&buf[end..]);
        out
    };
    carry(&gateway, upstream, client, &leftover).await;
}

/// The request head for the origin: the path only in the request line, and
/// no proxy headers.
fn origin_form(request: &httparse::Request<'_, '_>, target: &str) -> String {
    let rest = target.strip_prefix("http://").unwrap_or(target);
    let path = match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    };
    let mut head = format!(
        "{} {} HTTP/1.{}\r\n",
        request.method.unwrap_or("GET"),
        path,
        request.version.unwrap_or(1)
    );
    for h in request.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if name == "proxy-connection" || name == "proxy-authorization" {
            continue;
        }
        head.push_str(h.name);
        head.push_str(": ");
        head.push_str(&String::from_utf8_lossy(h.value));
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

/// `host:port` or `[v6]:port`; with `default`, also a bare `host` or `[v6]`.
fn authority(text: &str, default: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(port) => (host, port.parse().ok()?),
            None if after.is_empty() => (host, default?),
            None => return None,
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (text, default?),
        }
    };
    let bare_v6 = !text.starts_with('[') && host.contains(':');
    (!host.is_empty() && !bare_v6 && port > 0).then(|| (host.to_string(), port))
}

/// Relay both ways with 64 KiB buffers (tokio's default is 8 KiB).
async fn relay(client: &mut TcpStream, upstream: &mut BufReader<mux::Stream>) {
    let _ = tokio::io::copy_bidirectional_with_sizes(client, upstream, 64 * 1024, 64 * 1024).await;
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP error whose header and body name the reason, then close.
async fn refuse(client: &mut TcpStream, status: u16, reason: &str) {
    let text = match status {
        403 => "Forbidden",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    };
    let header: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let body = format!("mcpod egress: {reason}\n");
    let response = format!(
        "HTTP/1.1 {status} {text}\r\nX-Mcpod-Egress: refused; {header}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn authorities_parse_with_and_without_a_port() {
        let a = |t: &str, d| authority(t, d);
        assert_eq!(
            a("api.example:443", None),
            Some(("api.example".into(), 443))
        );
        assert_eq!(a("[::1]:8443", None), Some(("::1".into(), 8443)));
        assert_eq!(a("[::1]", Some(80)), Some(("::1".into(), 80)));
        assert_eq!(a("api.example", Some(80)), Some(("api.example".into(), 80)));
        for bad in [
            "api.example",
            "api.example:0",
            "api.example:x",
            ":443",
            "[::1]x",
            "[::1",
        ] {
            assert_eq!(a(bad, None), None, "{bad}");
        }
        assert_eq!(a("::1", Some(80)), None, "an IPv6 address needs brackets");
    }
}
