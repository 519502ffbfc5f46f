//! The session stream's protocol, version [`VERSION`].
//!
//! One yamux connection, on the socket mcpod passes in as [`STREAM_FD`] (else
//! on the supervisor's stdin and stdout); mcpod is the client, the
//! supervisor the server. Every stream begins with one JSON line (at most
//! [`MAX_LINE`] bytes) that says what it is:
//!
//! - mcpod opens the **control** stream first ([`Open::Control`]); the
//!   supervisor answers [`Hello`] (or [`Hello`] with `refused` set, when the
//!   versions differ) and then writes an [`Event`] line whenever a server
//!   exits; mcpod writes [`Command`] lines. When the control stream or the
//!   connection ends, the supervisor stops every server and exits, so the
//!   container ends with mcpod's side of the stream.
//! - mcpod opens one **stdio** stream per server ([`Open::Start`]); the
//!   supervisor answers [`Started`] and from then on the stream's bytes are
//!   the server's stdin (from mcpod) and stdout (to mcpod). mcpod closing its
//!   side closes the server's stdin: the MCP stdio shutdown.
//! - the supervisor opens one **stderr** stream per started server
//!   ([`Offer::Stderr`]) carrying its stderr bytes, and one stream per
//!   connection a server opens through its egress proxy or a port forward
//!   ([`Offer::Connect`]): mcpod answers a [`Verdict`], then the stream
//!   carries the connection.

use serde::{Deserialize, Serialize};

/// The protocol version; mcpod and the supervisor refuse each other's
/// control stream when theirs differ. 2: a connection's offer says which
/// server's process opened it ([`Peer`]). 3: a connection let through may
/// be handed to mcpod as a descriptor ([`Hello::handoff`], [`Verdict::handoff`]).
/// 4: a server's intercepted `connect` to a port forward asks for mcpod's
/// dialled socket ([`Offer::Connect::hand_in`]).
pub const VERSION: u32 = 4;

/// The longest first line of a stream, and of a control line (a start
/// carries a server's argv and env: 256 KiB of env at most, see mcpod).
pub const MAX_LINE: usize = 1024 * 1024;

/// The descriptor the session stream comes in on (a socket mcpod passes
/// through podman's `--preserve-fds`); without it, the supervisor's stdin
/// and stdout carry the stream.
pub const STREAM_FD: i32 = 3;

/// Where mcpod mounts the supervisor in every session container.
pub const PATH_IN_CONTAINER: &str = "/.mcpod/supervisor";

/// The first line of a stream mcpod opens.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Open {
    Control {
        version: u32,
        /// Unix time at which the supervisor stops every server and exits
        /// (the session's lease); none: no lease of its own.
        #[serde(default)]
        lease_until: Option<u64>,
        /// Ports on the container's loopback whose connections go to a
        /// fixed destination (for protocols that ignore proxies).
        #[serde(default)]
        forwards: Vec<Forward>,
    },
    Start(Start),
}

/// A port forward: connections to `127.0.0.1:listen` in the container go
/// to `host:port`, through mcpod's gate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    pub listen: u16,
    pub host: String,
    pub port: u16,
}

/// Start one server.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// mcpod's number for it, unique in the session.
    pub id: u32,
    /// Its name, for the supervisor's own log lines.
    pub name: String,
    pub argv: Vec<String>,
    /// Set over the container's environment.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub workdir: Option<String>,
    /// Listen on `127.0.0.1:PORT` in the container as this server's HTTP
    /// proxy (CONNECT and plain HTTP), each connection through mcpod's gate.
    #[serde(default)]
    pub proxy_port: Option<u16>,
}

/// The supervisor's answer on the control stream.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub version: u32,
    /// Set when the versions differ: why, and the supervisor then closes.
    #[serde(default)]
    pub refused: Option<String>,
    /// The limits the container's cgroup holds, as the supervisor reads them.
    #[serde(default)]
    pub limits: Limits,
    /// Whether the supervisor holds a hand-off socket at
    /// [`HANDOFF_FD`](crate::handoff::HANDOFF_FD) (a local engine), so a
    /// connection let through can be handed to mcpod (see `handoff.rs`).
    #[serde(default)]
    pub handoff: bool,
}

/// A container's cgroup limits as seen from inside (`None`: no limit, or
/// nothing to read), so mcpod reports what holds, not what it asked for.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub pids_max: Option<u64>,
    #[serde(default)]
    pub memory_max: Option<u64>,
}

impl Limits {
    /// Read from the cgroup files (v2, else v1) under `root` (`/sys/fs/cgroup`).
    pub fn read(root: &std::path::Path) -> Limits {
        let first = |files: &[&str]| {
            files.iter().find_map(|f| {
                let text = std::fs::read_to_string(root.join(f)).ok()?;
                let text = text.trim();
                // "max", or v1's "no limit" (a page-rounded i64::MAX).
                match text.parse::<u64>() {
                    Ok(n) if n < (1 << 62) => Some(Some(n)),
                    _ => Some(None),
                }
            })
        };
        Limits {
            pids_max: first(&["pids.max", "pids/pids.max"]).flatten(),
            memory_max: first(&["memory.max", "memory/memory.limit_in_bytes"]).flatten(),
        }
    }
}

/// The supervisor's answer on a stdio stream.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Started {
    /// The server runs with this pid (in the container).
    Running { pid: u32 },
    /// It could not be started; `missing` when its program does not exist.
    Failed { reason: String, missing: bool },
}

/// The first line of a stream the supervisor opens.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Offer {
    Stderr {
        id: u32,
    },
    /// A connection a server opened to `host:port` (through its proxy, or a
    /// port forward); mcpod answers a [`Verdict`], then the stream carries
    /// the connection's bytes.
    Connect {
        /// The server whose proxy port it came to, or `forward:PORT`.
        from: String,
        host: String,
        port: u16,
        /// Which server's process opened it, as the supervisor found it
        /// (proxy connections; none for a port forward).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<Peer>,
        /// A server's `connect` the supervisor holds (see `intercept.rs`):
        /// a token (hex) under which mcpod sends its dialled socket on the
        /// hand-off socket, to be put in the server's own descriptor.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hand_in: Option<String>,
    },
}

/// The server whose process holds a proxy connection: found by its socket
/// in `/proc` and the holder's parents (see the supervisor's `peer.rs`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Peer {
    /// A process of this server (itself or a descendant) holds it.
    Server(String),
    /// It could not be attributed: why.
    Unknown(String),
}

/// mcpod's answer to a connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub allowed: bool,
    /// The rule that decided (and, allowed, the address dialled).
    pub reason: String,
    /// Allowed, and to be handed over: the token (hex) to send with the
    /// client's socket on the hand-off socket instead of carrying the
    /// connection on this stream (see `handoff.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<String>,
}

/// A control line from the supervisor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// A server's process ended: its exit code, or 128 + the signal that killed it.
    Exited { id: u32, code: i32 },
    /// The lease ended: every server is being stopped.
    LeaseEnded,
}

/// A control line from mcpod.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Send `signal` to the server's process group.
    Signal { id: u32, signal: i32 },
    /// A new lease end (a pooled session handed out).
    Lease { until: u64 },
}

/// One JSON line, newline included.
pub fn line<T: Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Read one line of at most [`MAX_LINE`] bytes and parse it; `Ok(None)` at a
/// clean end of the stream. Reads through `reader`'s buffer, so the bytes
/// after the line stay there for whoever reads next.
pub async fn read_line<T, R>(reader: &mut R) -> std::io::Result<Option<T>>
where
    T: for<'de> Deserialize<'de>,
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    let mut buf = Vec::new();
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(invalid("the stream ended inside a line"));
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > MAX_LINE + 1 {
            return Err(invalid(&format!("a line is longer than {MAX_LINE} bytes")));
        }
        buf.extend_from_slice(&chunk[..take]);
        reader.consume(take);
        if done {
            buf.pop();
            return serde_json::from_slice(&buf)
                .map(Some)
                .map_err(|e| invalid(&format!("a line is not what the protocol says: {e}")));
        }
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_from_cgroup_v2_or_v1_files() {
        let v2 = std::env::temp_dir().join(format!("mcpod-limits-v2-{}", std::process::id()));
        std::fs::create_dir_all(&v2).expect("dir");
        std::fs::write(v2.join("pids.max"), "64\n").expect("write");
        std::fs::write(v2.join("memory.max"), "max\n").expect("write");
        assert_eq!(
            Limits::read(&v2),
            Limits {
                pids_max: Some(64),
                memory_max: None
            }
        );
        let v1 = v2.join("v1");
        std::fs::create_dir_all(v1.join("memory")).expect("dir");
        std::fs::write(
            v1.join("memory/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .expect("write");
        assert_eq!(Limits::read(&v1), Limits::default());
        std::fs::write(v1.join("memory/memory.limit_in_bytes"), "134217728\n").expect("write");
        assert_eq!(Limits::read(&v1).memory_max, Some(134217728));
        let _ = std::fs::remove_dir_all(&v2);
    }

    #[tokio::test]
    async fn lines_round_trip_and_leave_what_follows() {
        let open = Open::Start(Start {
            id: 3,
            name: "x".into(),
            argv: vec!["/bin/x".into(), "a b".into()],
            env: vec![("K".into(), "v\nw".into())],
            workdir: None,
            proxy_port: None,
        });
        let mut bytes = line(&open);
        bytes.extend_from_slice(b"raw");
        let mut reader = tokio::io::BufReader::new(&bytes[..]);
        let got: Option<Open> = read_line(&mut reader).await.expect("line");
        assert_eq!(got, Some(open));
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut rest)
            .await
            .expect("rest");
        assert_eq!(rest, b"raw");
    }

    #[tokio::test]
    async fn a_line_without_end_or_over_the_bound_is_refused() {
        let long = vec![b'a'; MAX_LINE + 2];
        let mut reader = tokio::io::BufReader::new(&long[..]);
        let err = read_line::<Open, _>(&mut reader).await.expect_err("bound");
        assert!(err.to_string().contains("longer than"), "{err}");
        let mut reader = tokio::io::BufReader::new(&b"{\"control\":"[..]);
        assert!(read_line::<Open, _>(&mut reader).await.is_err());
        let mut reader = tokio::io::BufReader::new(&b"{\"nope\":1}\n"[..]);
        assert!(read_line::<Open, _>(&mut reader).await.is_err());
        let mut reader = tokio::io::BufReader::new(&b""[..]);
        assert_eq!(read_line::<Open, _>(&mut reader).await.expect("eof"), None);
    }
}
