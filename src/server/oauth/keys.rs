//! The issuer's signing keys as this process knows them: found through the
//! issuer's metadata (RFC 8414, then OpenID Connect discovery) or taken from
//! the operator's `--oauth-jwks` URL or file, fetched at start, again when
//! older than [`REFRESH`], and again when a token names a key not in the set
//! (a rotation), but never more often than once per [`MIN_REFETCH`]: a flood
//! of tokens with made-up key ids costs one fetch, not one each.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::fetch::{Fetcher, Url};
use super::jwk::KeySet;
use super::jwt::{self, Claims, Expect, Refused};

/// Age after which the set is fetched again before it is used.
pub const REFRESH: Duration = Duration::from_secs(600);
/// The shortest time between two fetches.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);

/// Where the key set comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// The `jwks_uri` of the issuer's metadata.
    Discover,
    Url(Url),
    File(PathBuf),
}

impl Source {
    /// `--oauth-jwks`: an https:// URL (http:// on loopback) or a file.
    pub fn parse(text: Option<&str>) -> Result<Source, String> {
        match text {
            None => Ok(Source::Discover),
            Some(t) if t.starts_with("http://") || t.starts_with("https://") => {
                Url::parse(t).map(Source::Url)
            }
            Some(t) => Ok(Source::File(PathBuf::from(t))),
        }
    }
}

/// Why a token could not be checked or was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    Invalid(String),
    /// No key set could be had: the token may be good.
    Unavailable(String),
}

/// The set as last fetched, when a fetch was last tried, and why the last
/// one failed: read by every request without waiting for a fetch.
#[derive(Default)]
struct Known {
    set: Arc<KeySet>,
    tried: Option<Instant>,
    error: Option<String>,
}

/// The keys of one issuer, and how to get them again.
pub struct Issuer {
    expect: Expect,
    source: Source,
    fetcher: Fetcher,
    known: RwLock<Known>,
    /// Held while a fetch is under way (one at a time); the set's URL once
    /// discovered.
    fetching: tokio::sync::Mutex<Option<Url>>,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

impl Issuer {
    pub fn new(expect: Expect, source: Source, fetcher: Fetcher) -> Issuer {
        Issuer {
            expect,
            source,
            fetcher,
            known: RwLock::default(),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.expect.issuer
    }

    /// Fetch the set now; the error says why none could be had.
    pub async fn load(&self) -> Result<usize, String> {
        self.refetch().await;
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        match &known.error {
            Some(e) if known.set.keys.is_empty() => Err(e.clone()),
            _ => Ok(known.set.keys.len()),
        }
    }

    /// The claims of `token` if it is a good token of this issuer for this
    /// server now.
    pub async fn check(&self, token: &str) -> Result<Claims, Failure> {
        let stale = {
            let known = self.known.read().unwrap_or_else(|p| p.into_inner());
            known.tried.is_none_or(|at| at.elapsed() >= REFRESH) || known.set.keys.is_empty()
        };
        if stale {
            self.refetch().await;
        }
        let mut retried = false;
        loop {
            let (keys, error) = {
                let known = self.known.read().unwrap_or_else(|p| p.into_inner());
                (known.set.clone(), known.error.clone())
            };
            if keys.keys.is_empty() {
                return Err(Failure::Unavailable(error.unwrap_or_else(|| {
                    "the issuer's key set holds no signing key mcpod can use".into()
                })));
            }
            match jwt::verify(token, &keys, &self.expect, now()) {
                Ok(claims) => return Ok(claims),
                Err(Refused::Invalid(why)) => return Err(Failure::Invalid(why)),
                Err(Refused::UnknownKey(why)) if retried || !self.refetch().await => {
                    return Err(Failure::Invalid(why));
                }
                Err(Refused::UnknownKey(_)) => retried = true,
            }
        }
    }

    /// Fetch the set unless it was fetched (or tried) within
    /// [`MIN_REFETCH`]; true when a new set is in place.
    async fn refetch(&self) -> bool {
        let mut jwks = self.fetching.lock().await;
        {
            let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
            if known.tried.is_some_and(|at| at.elapsed() < MIN_REFETCH) {
                return false;
            }
            known.tried = Some(Instant::now());
        }
        let fetched = self.fetch(&mut jwks).await;
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        match fetched {
            Ok(set) => {
                if set.skipped > 0 {
                    tracing::info!(
                        "oauth: the key set of {} has {} key(s) mcpod cannot use (not for signatures, or of another type); skipped",
                        self.expect.issuer,
                        set.skipped
                    );
                }
                tracing::info!(
                    "oauth: {} signing key(s) of {}",
                    set.keys.len(),
                    self.expect.issuer
                );
                known.set = Arc::new(set);
                known.error = None;
                true
            }
            Err(e) => {
                tracing::warn!("oauth: could not fetch the key set: {e}");
                known.error = Some(e);
                false
            }
        }
    }

    async fn fetch(&self, discovered: &mut Option<Url>) -> Result<KeySet, String> {
        let text = match &self.source {
            Source::File(path) => read_file(path)?,
            Source::Url(url) => self.fetcher.get(url).await?.to_vec(),
            Source::Discover => {
                if discovered.is_none() {
                    *discovered = Some(self.discover().await?);
                }
                let url = discovered.as_ref().ok_or("no jwks_uri")?;
                self.fetcher.get(url).await?.to_vec()
            }
        };
        KeySet::parse(&text)
    }

    /// The `jwks_uri` of the issuer's metadata, whose `issuer` must be
    /// exactly the one configured (RFC 8414 section 3.3).
    async fn discover(&self) -> Result<Url, String> {
        let mut errors = Vec::new();
        for url in metadata_urls(&self.expect.issuer)? {
            let body = match self.fetcher.get(&url).await {
                Ok(body) => body,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let metadata: Metadata = serde_json::from_slice(&body)
                .map_err(|e| format!("the issuer's metadata at {} is not valid: {e}", url.path))?;
            if metadata.issuer != self.expect.issuer {
                return Err(format!(
                    "the metadata names issuer {:?}, not {:?}; fix --oauth-issuer",
                    metadata.issuer, self.expect.issuer
                ));
            }
            return Url::parse(&metadata.jwks_uri);
        }
        Err(format!(
            "no metadata found for issuer {} ({}); name the key set with --oauth-jwks",
            self.expect.issuer,
            errors.join("; ")
        ))
    }
}

/// Where an issuer's metadata may be: RFC 8414's well-known path inserted
/// before the issuer's path, then OpenID Connect's appended to it.
pub fn metadata_urls(issuer: &str) -> Result<Vec<Url>, String> {
    let base = Url::parse(issuer).map_err(|e| format!("--oauth-issuer: {e}"))?;
    let path = base.path.trim_end_matches('/').to_string();
    let mut oauth = base.clone();
    oauth.path = format!("/.well-known/oauth-authorization-server{path}");
    let mut oidc = base;
    oidc.path = format!("{path}/.well-known/openid-configuration");
    Ok(vec![oauth, oidc])
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    crate::cache::input::read_bounded(path, "--oauth-jwks", super::fetch::MAX_BODY as u64, |_| {
        Ok(())
    })
    .map_err(|e| e.to_string())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_looked_for_where_both_standards_put_it() {
        let urls = metadata_urls("https://idp.example/realms/dev").unwrap();
        assert_eq!(
            urls[0].path,
            "/.well-known/oauth-authorization-server/realms/dev"
        );
        assert_eq!(urls[1].path, "/realms/dev/.well-known/openid-configuration");
        let urls = metadata_urls("https://idp.example/").unwrap();
        assert_eq!(urls[0].path, "/.well-known/oauth-authorization-server");
        assert_eq!(urls[1].path, "/.well-known/openid-configuration");
        assert!(metadata_urls("http://idp.example").is_err());
    }

    #[tokio::test]
    async fn a_file_set_is_read_and_unknown_keys_are_fetched_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, br#"{"keys": []}"#).unwrap();
        let expect = Expect {
            issuer: "https://idp.example".into(),
            audiences: vec!["x".into()],
        };
        let issuer = Issuer::new(
            expect,
            Source::File(path.clone()),
            Fetcher::new(None).unwrap(),
        );
        assert_eq!(issuer.load().await, Ok(0));
        // Empty: the answer is "unavailable", and no second read happens
        // within the interval even when the file has keys by then.
        let x =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, [1u8; 32]);
        std::fs::write(
            &path,
            format!(r#"{{"keys": [{{"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": "{x}"}}]}}"#),
        )
        .unwrap();
        assert!(matches!(
            issuer.check("a.b.c").await,
            Err(Failure::Unavailable(_))
        ));
        std::fs::write(&path, b"not json").unwrap();
        let missing = Issuer::new(
            Expect {
                issuer: "i".into(),
                audiences: vec![],
            },
            Source::File(path),
            Fetcher::new(None).unwrap(),
        );
        assert!(
            missing
                .load()
                .await
                .unwrap_err()
                .contains("not a JSON Web Key Set")
        );
    }
}
