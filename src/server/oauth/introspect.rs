//! Opaque access tokens (RFC 7662): a token that is not a JWT is asked of
//! the operator's introspection endpoint (`--oauth-introspection URL`), as
//! the resource-server client `--oauth-client-id` (HTTP Basic, its secret
//! from a file or `MCPOD_OAUTH_CLIENT_SECRET`, never on argv). The answer
//! must say `active: true` and, like a JWT, name the issuer exactly, an
//! audience of this server and an `exp`; its `sub` (or `client_id`) and
//! `scope` make the principal.
//!
//! Bounds: an answer is cached under the token's SHA-256 (never the token)
//! until its `exp` or [`FRESH`], whichever is first; a refusal for
//! [`REFUSED_FOR`]; at most [`MAX_CACHED`] entries. At most
//! [`IN_FLIGHT`] introspections run at once, each bounded by the fetch's
//! size and time; so a flood of made-up tokens costs the issuer at most that
//! many requests at a time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::fetch::{Fetcher, Url};
use super::jwt::{self, Claims, Expect, RawClaims, Refused};
use super::keys::Failure;

/// How long an accepted token is believed without asking again.
pub const FRESH: Duration = Duration::from_secs(60);
/// How long a refused token stays refused without asking again.
pub const REFUSED_FOR: Duration = Duration::from_secs(30);
/// Answers cached at once.
pub const MAX_CACHED: usize = 4096;
/// Introspections under way at once.
pub const IN_FLIGHT: usize = 8;

/// What asks the introspection endpoint, and what it answered.
pub struct Introspector {
    url: Url,
    authorization: String,
    fetcher: Fetcher,
    expect: Expect,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    slots: tokio::sync::Semaphore,
}

struct Cached {
    claims: Result<Claims, String>,
    until: Instant,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    active: bool,
    #[serde(flatten)]
    claims: RawClaims,
}

impl Introspector {
    /// Ask `url` as client `id` with `secret`, expecting tokens as `expect`.
    pub fn new(
        url: &str,
        id: &str,
        secret: &str,
        expect: Expect,
        fetcher: Fetcher,
    ) -> Result<Introspector, String> {
        let url = Url::parse(url).map_err(|e| format!("--oauth-introspection: {e}"))?;
        if id.is_empty() || secret.is_empty() {
            return Err("--oauth-introspection needs --oauth-client-id and its secret (--oauth-client-secret-file, or MCPOD_OAUTH_CLIENT_SECRET)".into());
        }
        // RFC 6749 2.3.1: each form-encoded, then Basic.
        let pair = format!("{}:{}", encode(id), encode(secret));
        let authorization = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        );
        Ok(Introspector {
            url,
            authorization,
            fetcher,
            expect,
            cache: Mutex::new(HashMap::new()),
            slots: tokio::sync::Semaphore::new(IN_FLIGHT),
        })
    }

    /// The claims of opaque token `token`, from the cache or the endpoint.
    pub async fn check(&self, token: &str) -> Result<Claims, Failure> {
        let key: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| Failure::Unavailable("a digest of the wrong size".into()))?;
        if let Some(known) = self.cached(&key) {
            return known.map_err(Failure::Invalid);
        }
        let _slot = tokio::time::timeout(super::fetch::TIMEOUT, self.slots.acquire())
            .await
            .map_err(|_| Failure::Unavailable("too many introspections under way".into()))?
            .map_err(|_| Failure::Unavailable("closed".into()))?;
        // Another request may have asked meanwhile.
        if let Some(known) = self.cached(&key) {
            return known.map_err(Failure::Invalid);
        }
        let form = format!("token={}&token_type_hint=access_token", encode(token));
        let body = self
            .fetcher
            .post_form(&self.url, form, &self.authorization)
            .await
            .map_err(|e| Failure::Unavailable(format!("token introspection: {e}")))?;
        let claims = judge(&body, &self.expect, now());
        let until = match &claims {
            Ok(c) => {
                Instant::now() + FRESH.min(Duration::from_secs(c.expires.saturating_sub(now())))
            }
            Err(_) => Instant::now() + REFUSED_FOR,
        };
        self.remember(
            key,
            Cached {
                claims: claims.clone(),
                until,
            },
        );
        claims.map_err(Failure::Invalid)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Result<Claims, String>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|c| c.until > Instant::now())
            .map(|c| c.claims.clone())
    }

    fn remember(&self, key: [u8; 32], cached: Cached) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, c| c.until > now);
        }
        if cache.len() < MAX_CACHED {
            cache.insert(key, cached);
        }
    }
}

/// The claims an introspection answer grants, or why none.
fn judge(body: &[u8], expect: &Expect, now: u64) -> Result<Claims, String> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| format!("the introspection answer is not one: {e}"))?;
    if !answer.active {
        return Err("the issuer says it is not active".into());
    }
    jwt::check_claims(answer.claims, expect, now).map_err(|r| match r {
        Refused::Invalid(why) | Refused::UnknownKey(why) => why,
    })
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect() -> Expect {
        Expect {
            issuer: "https://idp.example".into(),
            audiences: vec!["https://mcp.example/mcp".into()],
        }
    }

    #[test]
    fn an_answer_grants_only_when_active_and_for_this_server() {
        let now = 1_800_000_000u64;
        let good = serde_json::json!({"active": true, "iss": "https://idp.example",
            "aud": ["https://mcp.example/mcp"], "sub": "alice", "scope": "mcpod read",
            "exp": now + 300});
        let claims = judge(good.to_string().as_bytes(), &expect(), now).expect("granted");
        assert_eq!(claims.subject, "alice");
        assert_eq!(claims.scopes, ["mcpod", "read"]);
        for (change, says) in [
            (serde_json::json!({"active": false}), "not active"),
            (serde_json::json!({"iss": "https://evil.example"}), "issuer"),
            (
                serde_json::json!({"aud": "https://other.example/mcp"}),
                "audience",
            ),
            (serde_json::json!({"exp": now - 3600}), "expired"),
            (serde_json::json!({"exp": null}), "no `exp`"),
            (serde_json::json!({"sub": null, "client_id": null}), "`sub`"),
        ] {
            let mut answer = good.clone();
            for (k, v) in change.as_object().expect("object") {
                answer[k] = v.clone();
            }
            let why = judge(answer.to_string().as_bytes(), &expect(), now).expect_err(says);
            assert!(why.contains(says), "{says}: {why}");
        }
        assert!(judge(b"{\"active\": true", &expect(), now).is_err());
        assert!(judge(b"[]", &expect(), now).is_err());
    }

    #[test]
    fn client_credentials_are_form_encoded_before_basic() {
        let fetcher = Fetcher::new(None).expect("fetcher");
        let i = Introspector::new(
            "https://idp.example/introspect",
            "rs:1",
            "p@ss word",
            expect(),
            fetcher,
        )
        .expect("introspector");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(i.authorization.trim_start_matches("Basic "))
            .expect("base64");
        assert_eq!(decoded, b"rs%3A1:p%40ss%20word");
        assert!(
            Introspector::new(
                "https://idp.example/i",
                "",
                "s",
                expect(),
                Fetcher::new(None).expect("f")
            )
            .is_err()
        );
        assert!(
            Introspector::new(
                "http://idp.example/i",
                "a",
                "s",
                expect(),
                Fetcher::new(None).expect("f")
            )
            .is_err()
        );
    }
}
