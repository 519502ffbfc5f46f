//! `serve --listen` as an OAuth 2.1 resource server (MCP's authorization,
//! RFC 9728): a bearer token that is not one of `mcpod token create` is
//! taken as a JWT access token of the operator's issuer, checked against the
//! issuer's key set ([`keys`]), its claims ([`jwt`]) and the scopes the
//! operator requires. Clients find the issuer from the protected-resource
//! metadata this server publishes at [`METADATA_PATH`] and from the
//! `resource_metadata` of each 401's challenge.
//!
//! A token that is not a JWT is asked of the issuer's introspection
//! endpoint when the operator names one ([`introspect`]).
//!
//! - [`fetch`]: a bounded HTTPS GET for the issuer's metadata and keys
//! - [`jwk`]: the key set's signing keys
//! - [`jwt`]: a token's signature and claims
//! - [`keys`]: the key set as known now, refreshed with a bound
//! - [`introspect`]: opaque tokens (RFC 7662), answers cached with a bound

pub mod fetch;
pub mod introspect;
pub mod jwk;
pub mod jwt;
pub mod keys;

use std::path::PathBuf;

use super::auth::Principal;
use keys::{Failure, Issuer, Source};

/// RFC 9728's well-known path; the resource's path follows it.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";
/// The prefix of an OAuth principal's name (token names have no `:`).
pub const PRINCIPAL_PREFIX: &str = "oauth:";

/// The operator's `--oauth-*` flags.
#[derive(Clone, Debug, Default)]
pub struct OAuthOptions {
    /// The issuer URL, exactly as its tokens' `iss`.
    pub issuer: String,
    /// The resource's URL as clients reach it (default: http://ADDR/mcp).
    pub resource: Option<String>,
    /// Audiences accepted besides the resource URL.
    pub audiences: Vec<String>,
    /// The key set's URL or file; default: the issuer's metadata names it.
    pub jwks: Option<String>,
    /// PEM certificates trusted besides the host's store.
    pub ca: Option<PathBuf>,
    /// Scopes every token must carry.
    pub scopes: Vec<String>,
    /// A scope that makes its holder an admin.
    pub admin_scope: Option<String>,
    /// The introspection endpoint for opaque tokens (RFC 7662).
    pub introspection: Option<String>,
    /// The client mcpod introspects as, and its secret.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// Why a request's token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// 401 `invalid_token`.
    Invalid(String),
    /// 403 `insufficient_scope`: the scopes that were missing.
    Scope(Vec<String>),
    /// 503: the issuer's keys could not be had.
    Unavailable(String),
}

/// The resource server: its issuer and what it publishes.
pub struct OAuth {
    issuer: Issuer,
    introspector: Option<introspect::Introspector>,
    resource: String,
    required: Vec<String>,
    admin_scope: Option<String>,
    metadata_url: String,
}

impl OAuth {
    /// Set up from the flags; `default_resource` is the URL clients reach
    /// MCP at. The key set is fetched once now: a failure is logged, and
    /// requests are answered 503 until a later fetch succeeds.
    pub async fn start(options: &OAuthOptions, default_resource: &str) -> Result<OAuth, String> {
        keys::metadata_urls(&options.issuer)?;
        let resource = options
            .resource
            .clone()
            .unwrap_or_else(|| default_resource.to_string());
        fetch::Url::parse(&resource)
            .map_err(|e| format!("--oauth-resource: {e}; give the URL clients reach /mcp at"))?;
        let mut audiences = vec![resource.clone()];
        audiences.extend(options.audiences.iter().cloned());
        let expect = jwt::Expect {
            issuer: options.issuer.clone(),
            audiences,
        };
        let fetcher = fetch::Fetcher::new(options.ca.as_deref())?;
        let introspector = match &options.introspection {
            Some(url) => Some(introspect::Introspector::new(
                url,
                options.client_id.as_deref().unwrap_or_default(),
                options.client_secret.as_deref().unwrap_or_default(),
                expect.clone(),
                fetcher.clone(),
            )?),
            None => None,
        };
        let source = Source::parse(options.jwks.as_deref())?;
        let issuer = Issuer::new(expect, source, fetcher);
        match issuer.load().await {
            Ok(n) => tracing::info!("oauth: accepting tokens of {} ({n} key(s))", options.issuer),
            Err(e) => tracing::warn!(
                "oauth: no key set of {} yet ({e}); its tokens are answered 503 until one is fetched",
                options.issuer
            ),
        }
        // RFC 9728 section 3.1: the well-known path goes between the
        // resource's origin and its path.
        let after_scheme = resource.find("://").map_or(0, |i| i + 3);
        let split = resource[after_scheme..]
            .find('/')
            .map_or(resource.len(), |i| after_scheme + i);
        let (origin, path) = resource.split_at(split);
        let path = path.split(['?', '#']).next().unwrap_or("");
        Ok(OAuth {
            issuer,
            introspector,
            metadata_url: format!("{origin}{METADATA_PATH}{}", path.trim_end_matches('/')),
            resource,
            required: options.scopes.clone(),
            admin_scope: options.admin_scope.clone(),
        })
    }

    /// The URL of this server's protected-resource metadata.
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// Whether a request for `path` is one for the metadata.
    pub fn is_metadata(path: &str) -> bool {
        path == METADATA_PATH
            || path
                .strip_prefix(METADATA_PATH)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// RFC 9728's document.
    pub fn metadata(&self) -> String {
        let mut doc = serde_json::json!({
            "resource": self.resource,
            "authorization_servers": [self.issuer.issuer()],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcpod",
        });
        let mut scopes = self.required.clone();
        scopes.extend(self.admin_scope.iter().cloned());
        if !scopes.is_empty() {
            doc["scopes_supported"] = serde_json::json!(scopes);
        }
        doc.to_string()
    }

    /// The `WWW-Authenticate` value of a 401 or 403.
    pub fn challenge(&self, denied: Option<&Denied>) -> String {
        let mut value = format!(r#"Bearer resource_metadata="{}""#, self.metadata_url);
        if !self.required.is_empty() {
            value.push_str(&format!(r#", scope="{}""#, self.required.join(" ")));
        }
        match denied {
            Some(Denied::Invalid(_)) => value.push_str(r#", error="invalid_token""#),
            Some(Denied::Scope(_)) => value.push_str(r#", error="insufficient_scope""#),
            _ => {}
        }
        value
    }

    /// The principal of an access token: a JWT checked here, any other
    /// asked of the introspection endpoint when there is one.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, Denied> {
        let checked = match &self.introspector {
            Some(introspector) if token.split('.').count() != 3 => introspector.check(token).await,
            _ => self.issuer.check(token).await,
        };
        let claims = checked.map_err(|f| match f {
            Failure::Invalid(why) => Denied::Invalid(why),
            Failure::Unavailable(why) => Denied::Unavailable(why),
        })?;
        let missing: Vec<String> = self
            .required
            .iter()
            .filter(|s| !claims.scopes.contains(s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Denied::Scope(missing));
        }
        let admin = self
            .admin_scope
            .as_ref()
            .is_some_and(|s| claims.scopes.contains(s));
        Ok(Principal {
            name: format!("{PRINCIPAL_PREFIX}{}", claims.subject),
            scopes: claims.scopes,
            admin,
            profile: None,
        })
    }
}
