//! Where `serve --listen` listens: a TCP address, or `unix:PATH`, a unix
//! socket that only its file's permissions let others reach (made 0600, so
//! only the user mcpod runs as, and root). A socket file left by an mcpod
//! that is gone is replaced; one that answers, or any other file there, is
//! left alone and named in the error. The socket is removed at the end.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

/// An address `--listen` takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl std::str::FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() || path.len() > 100 {
                return Err(format!(
                    "`{s}`: a unix socket's path is 1 to 100 bytes (the kernel's limit is 107)"
                ));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        s.parse()
            .map(ListenAddr::Tcp)
            .map_err(|_| format!("`{s}` is not ADDR:PORT (e.g. 127.0.0.1:8765) or unix:PATH"))
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A connection of either kind.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// A bound listener.
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    /// The socket, and its path to remove at the end.
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    pub async fn bind(addr: &ListenAddr) -> Result<Listener, String> {
        match addr {
            ListenAddr::Tcp(a) => tokio::net::TcpListener::bind(a)
                .await
                .map(Listener::Tcp)
                .map_err(|e| {
                    format!(
                        "could not listen on {a}: {e}. Fix: choose a free address with --listen (port 0 picks one)"
                    )
                }),
            ListenAddr::Unix(path) => bind_unix(path).map(|l| Listener::Unix(l, path.clone())),
        }
    }

    /// What the listener is bound to (a TCP port 0 made definite).
    pub fn bound(&self) -> std::io::Result<ListenAddr> {
        Ok(match self {
            Listener::Tcp(l) => ListenAddr::Tcp(l.local_addr()?),
            Listener::Unix(_, path) => ListenAddr::Unix(path.clone()),
        })
    }

    /// The next connection and who it is from.
    pub async fn accept(&self) -> std::io::Result<(Box<dyn Stream>, String)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                // An answer goes out in several writes (head, SSE priming
                // event, message): with Nagle's algorithm on, each after the
                // first waits for the client's delayed ACK, ~40 ms a call.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!("TCP_NODELAY on the connection from {peer}: {e}");
                }
                Ok((Box::new(stream), peer.to_string()))
            }
            Listener::Unix(l, path) => {
                let (stream, _) = l.accept().await?;
                Ok((Box::new(stream), format!("unix:{}", path.display())))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!(
                "--listen unix:{}: a file that is not a socket is there. Fix: choose another path",
                path.display()
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "--listen unix:{}: another server answers on it. Fix: stop it, or choose another path",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| {
            format!(
                "--listen unix:{}: removing the stale socket: {e}",
                path.display()
            )
        })?;
    }
    // Made 0600 from the start: bound under a umask that lets no one else in.
    // SAFETY: umask only changes this process's file-creation mask; it is
    // put back at once, and nothing else creates files in the meantime.
    let before = unsafe { libc::umask(0o177) };
    let bound = tokio::net::UnixListener::bind(path);
    unsafe { libc::umask(before) };
    let listener = bound.map_err(|e| {
        format!(
            "could not listen on unix:{}: {e}. Fix: choose a path in a directory you may write",
            path.display()
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("--listen unix:{}: {e}", path.display()))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_tcp_or_unix_paths() {
        assert_eq!(
            "127.0.0.1:0".parse::<ListenAddr>(),
            Ok(ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()))
        );
        assert_eq!(
            "unix:/run/mcpod.sock".parse::<ListenAddr>(),
            Ok(ListenAddr::Unix("/run/mcpod.sock".into()))
        );
        assert!("unix:".parse::<ListenAddr>().is_err());
        assert!(
            format!("unix:/{}", "a".repeat(200))
                .parse::<ListenAddr>()
                .is_err()
        );
        assert!("localhost:80".parse::<ListenAddr>().is_err());
    }

    #[tokio::test]
    async fn a_socket_is_private_a_stale_one_replaced_and_another_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mcpod.sock");
        let addr = ListenAddr::Unix(path.clone());
        let first = Listener::bind(&addr).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let e = Listener::bind(&addr).await.err().unwrap();
        assert!(e.contains("another server answers"), "{e}");
        // A socket file whose server is gone.
        let stale = std::os::unix::net::UnixListener::bind(dir.path().join("stale.sock")).unwrap();
        drop(stale);
        assert!(
            Listener::bind(&ListenAddr::Unix(dir.path().join("stale.sock")))
                .await
                .is_ok()
        );
        drop(first);
        assert!(!path.exists(), "removed at the end");
        std::fs::write(&path, "data").unwrap();
        let e = Listener::bind(&addr).await.err().unwrap();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    }
}
