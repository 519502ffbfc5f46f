//! A bounded HTTP GET for the issuer's metadata and key set (and a POST of
//! a form, for token introspection): HTTPS checked
//! against the host's trust store (plus the operator's `--oauth-ca`), plain
//! HTTP only to a loopback host, no redirects, at most [`MAX_BODY`] bytes in
//! [`TIMEOUT`]. Built on hyper's client connection and rustls (ring) rather
//! than a full HTTP client crate: one GET of a JSON document needs no pool,
//! cookies or redirects, and the tree already has hyper.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// Bytes of a document fetched.
pub const MAX_BODY: usize = 1 << 20;
/// Time for one fetch, connection to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Where the host's trust store may be (Debian, Fedora, Alpine and others).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// A URL mcpod may fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, from the first `/`.
    pub path: String,
}

impl Url {
    /// `https://host[:port]/path`, or `http://` to a loopback host.
    pub fn parse(text: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("`{text}` is not an https:// URL"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let path = path.split('#').next().unwrap_or("");
        if authority.contains('@') || authority.is_empty() {
            return Err(format!("`{text}` needs a host and no user name"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("`{text}`: the port is not a number"))?,
            ),
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback {
            return Err(format!(
                "`{text}` is plain HTTP to a host beyond loopback: use https://"
            ));
        }
        let path = if path.is_empty() || path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(Url {
            tls,
            host,
            port,
            path,
        })
    }

    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (self.tls, self.port) {
            (true, 443) | (false, 80) => host,
            _ => format!("{host}:{}", self.port),
        }
    }
}

/// Fetches documents over HTTPS with the trust it was made with.
#[derive(Clone)]
pub struct Fetcher {
    tls: tokio_rustls::TlsConnector,
}

impl Fetcher {
    /// Trust the host's store, and the PEM certificates in `extra` if given.
    pub fn new(extra: Option<&Path>) -> Result<Fetcher, String> {
        let mut roots = rustls::RootCertStore::empty();
        for bundle in SYSTEM_BUNDLES {
            if let Ok(certs) = CertificateDer::pem_file_iter(bundle) {
                roots.add_parsable_certificates(certs.flatten());
                break;
            }
        }
        if let Some(path) = extra {
            let certs: Vec<_> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--oauth-ca {}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--oauth-ca {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "--oauth-ca {}: no PEM certificate in it",
                    path.display()
                ));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Fetcher {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// The body of a `200` answer to GET `url`.
    pub async fn get(&self, url: &Url) -> Result<Bytes, String> {
        self.send(url, None).await
    }

    /// The body of a `200` answer to a POST of `form`
    /// (`application/x-www-form-urlencoded`) to `url`, with `authorization`.
    pub async fn post_form(
        &self,
        url: &Url,
        form: String,
        authorization: &str,
    ) -> Result<Bytes, String> {
        self.send(url, Some((form, authorization))).await
    }

    async fn send(&self, url: &Url, post: Option<(String, &str)>) -> Result<Bytes, String> {
        let shown = format!(
            "{} {}://{}{}",
            if post.is_some() { "POST" } else { "GET" },
            if url.tls { "https" } else { "http" },
            url.authority(),
            url.path
        );
        let request = build(url, post).map_err(|e| format!("{shown}: {e}"))?;
        match tokio::time::timeout(TIMEOUT, self.send_inner(url, request)).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(e)) => Err(format!("{shown}: {e}")),
            Err(_) => Err(format!("{shown}: no answer in {}s", TIMEOUT.as_secs())),
        }
    }

    async fn send_inner(
        &self,
        url: &Url,
        request: http::Request<Full<Bytes>>,
    ) -> Result<Bytes, String> {
        let tcp = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| e.to_string())?;
        if url.tls {
            let name = ServerName::try_from(url.host.clone()).map_err(|e| e.to_string())?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            exchange(request, stream).await
        } else {
            exchange(request, tcp).await
        }
    }
}

/// The request: a GET, or a POST of a form with its authorization.
fn build(url: &Url, post: Option<(String, &str)>) -> Result<http::Request<Full<Bytes>>, String> {
    let builder = http::Request::builder()
        .uri(url.path.as_str())
        .header(http::header::HOST, url.authority())
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("mcpod/", env!("CARGO_PKG_VERSION")),
        );
    match post {
        None => builder.method(http::Method::GET).body(Full::default()),
        Some((form, authorization)) => builder
            .method(http::Method::POST)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::AUTHORIZATION, authorization)
            .body(Full::new(Bytes::from(form))),
    }
    .map_err(|e| e.to_string())
}

async fn exchange<S>(request: http::Request<Full<Bytes>>, stream: S) -> Result<Bytes, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let answer = sender.send_request(request).await;
    let result = match answer {
        Err(e) => Err(e.to_string()),
        Ok(response) if response.status() != http::StatusCode::OK => {
            Err(format!("answered {}", response.status()))
        }
        Ok(response) => Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|e| format!("{e} (at most {MAX_BODY} bytes are read)")),
    };
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http() {
        let u = Url::parse("https://idp.example/realms/a/protocol/certs?x=1#f").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "idp.example", 443, "/realms/a/protocol/certs?x=1")
        );
        let u = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((u.port, u.path.as_str()), (8080, "/"));
        let u = Url::parse("http://[::1]:9/jwks").unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority()),
            ("::1", "[::1]:9".to_string())
        );
        assert!(Url::parse("http://idp.example/jwks").is_err());
        assert!(Url::parse("http://localhost.evil.example/jwks").is_err());
        assert!(Url::parse("https://user@idp.example/").is_err());
        assert!(Url::parse("https://idp.example:99999/").is_err());
        assert!(Url::parse("file:///etc/passwd").is_err());
        assert!(Url::parse("https:///x").is_err());
    }
}
