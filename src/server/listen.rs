//! Where `serve --listen` listens: a TCP address, or `unix:PATH`, a unix
//! socket that only its file's permissions let others reach (made 0600, so
//! only the user mcpod runs as, and root). A socket file left by an mcpod
//! that is gone is replaced; one that answers, or any other file there, is
//! left alone and named in the error. The socket is removed at the end. It
//! is bound in a private directory beside its path and moved into place
//! once 0600, so no umask of the whole process is changed to make it.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
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
    // Made 0600 before anyone can reach it: bound in a private directory
    // beside it (0700), made 0600 there, then moved into place (never over
    // a file that appeared meanwhile). No process-wide umask is changed.
    let fix = |e: std::io::Error| {
        format!(
            "could not listen on unix:{}: {e}. Fix: choose a path in a directory you may write",
            path.display()
        )
    };
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let private = parent.join(format!(".mcpod-listen.{}", crate::engine::nonce()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(fix)?;
    let staged = private.join("socket");
    let placed = tokio::net::UnixListener::bind(&staged)
        .and_then(|listener| {
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
            rename_no_replace(&staged, path)?;
            Ok(listener)
        })
        .map_err(fix);
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    placed
}

/// Move `from` to `to` unless something is at `to` (`RENAME_NOREPLACE`).
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: two NUL-terminated paths that live across the call.
    let got = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if got != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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
        // Bound in a private directory beside it, which is gone again.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().starts_with(".mcpod-listen"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // Never over a file that appears between the check and the move.
        let raced = dir.path().join("raced.sock");
        let staged = dir.path().join("staged");
        std::fs::write(&staged, "").unwrap();
        std::fs::write(&raced, "theirs").unwrap();
        assert!(rename_no_replace(&staged, &raced).is_err());
        assert_eq!(std::fs::read_to_string(&raced).unwrap(), "theirs");
    }
}
