//! Checking an OAuth access token that is a JWT (RFC 7519, RFC 9068): a
//! compact JWS signed by a key of the issuer's set, then its claims. Written
//! here rather than taken from a JWT crate because what a resource server
//! must refuse is the whole job: only the algorithms below, each only with a
//! key of its own type (no `alg: none`, no HMAC with a public key as the
//! secret), keys only from the operator's issuer (a token's `jku`, `x5u` or
//! `jwk` is never fetched or used), no `crit` extension, and exact `iss`,
//! `aud`, `exp` and `nbf`. The signatures are ring's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use super::jwk::{Key, KeySet, Material};

/// Bytes of a token mcpod looks at.
pub const MAX_TOKEN: usize = crate::server::auth::MAX_BEARER;
/// Seconds of clock difference allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 60;
/// Bytes of a subject mcpod takes as a principal's name.
pub const MAX_SUBJECT: usize = 200;
/// Scopes of one token mcpod keeps.
pub const MAX_SCOPES: usize = 64;

/// What a token must say to be accepted.
#[derive(Clone, Debug)]
pub struct Expect {
    pub issuer: String,
    /// One of these must be in `aud`.
    pub audiences: Vec<String>,
}

/// What an accepted token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// `sub`, or `client_id` for a client's own token when it has no `sub`.
    pub subject: String,
    pub scopes: Vec<String>,
    /// Seconds since the epoch.
    pub expires: u64,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a token of this issuer for this server, or out of date.
    Invalid(String),
    /// Its `kid` names no key of the set as last fetched: fetching the set
    /// again may find it.
    UnknownKey(String),
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde_json::Value>,
}

/// The claims of a token, as a JWT or an introspection answer says them.
#[derive(Deserialize)]
pub(super) struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    client_id: Option<String>,
    aud: Option<Audience>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    scope: Option<String>,
    scp: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

fn invalid(why: impl Into<String>) -> Refused {
    Refused::Invalid(why.into())
}

/// Check `token` against `keys` and `expect` at `now` (seconds since the epoch).
pub fn verify(token: &str, keys: &KeySet, expect: &Expect, now: u64) -> Result<Claims, Refused> {
    if token.len() > MAX_TOKEN {
        return Err(invalid(format!("longer than {MAX_TOKEN} bytes")));
    }
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a JWT (three base64url parts joined by `.`)"));
    };
    let header: Header = json_part(head, "header")?;
    if header.crit.is_some() {
        return Err(invalid("its header has `crit`: no extension is understood"));
    }
    if let Some(typ) = &header.typ {
        let typ = typ.to_ascii_lowercase();
        if !["jwt", "at+jwt", "application/at+jwt"].contains(&typ.as_str()) {
            return Err(invalid(format!("`typ` {typ:?} is not an access token's")));
        }
    }
    let signature = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| invalid("its signature is not base64url"))?;
    let signed = &token.as_bytes()[..head.len() + 1 + body.len()];
    check_signature(&header, keys, signed, &signature)?;
    let claims: RawClaims = json_part(body, "claims")?;
    check_claims(claims, expect, now)
}

fn json_part<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, Refused> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| invalid(format!("its {what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("its {what} is not valid: {e}")))
}

/// How a signature of an accepted algorithm is checked.
enum Check {
    Rsa(&'static signature::RsaParameters),
    Point(&'static dyn signature::VerificationAlgorithm, Kind),
}

impl Check {
    fn needs(&self) -> Kind {
        match self {
            Check::Rsa(_) => Kind::Rsa,
            Check::Point(_, kind) => *kind,
        }
    }
}

/// The algorithms accepted, each with the kind of key it needs.
fn algorithm(alg: &str) -> Option<Check> {
    use signature as s;
    Some(match alg {
        "RS256" => Check::Rsa(&s::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => Check::Rsa(&s::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => Check::Rsa(&s::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => Check::Rsa(&s::RSA_PSS_2048_8192_SHA256),
        "PS384" => Check::Rsa(&s::RSA_PSS_2048_8192_SHA384),
        "PS512" => Check::Rsa(&s::RSA_PSS_2048_8192_SHA512),
        "ES256" => Check::Point(&s::ECDSA_P256_SHA256_FIXED, Kind::P256),
        "ES384" => Check::Point(&s::ECDSA_P384_SHA384_FIXED, Kind::P384),
        "EdDSA" | "Ed25519" => Check::Point(&s::ED25519, Kind::Ed25519),
        _ => return None,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

fn kind(material: &Material) -> Kind {
    match material {
        Material::Rsa { .. } => Kind::Rsa,
        Material::P256(_) => Kind::P256,
        Material::P384(_) => Kind::P384,
        Material::Ed25519(_) => Kind::Ed25519,
    }
}

fn check_signature(
    header: &Header,
    keys: &KeySet,
    signed: &[u8],
    signature: &[u8],
) -> Result<(), Refused> {
    let Some(check) = algorithm(&header.alg) else {
        return Err(invalid(format!(
            "`alg` {:?} is not accepted (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA)",
            header.alg
        )));
    };
    let needs = check.needs();
    let usable = |key: &&Key| {
        kind(&key.material) == needs && key.alg.as_ref().is_none_or(|a| *a == header.alg)
    };
    let candidates: Vec<&Key> = match &header.kid {
        Some(kid) => keys
            .keys
            .iter()
            .filter(|k| k.kid.as_ref() == Some(kid))
            .collect(),
        None => keys.keys.iter().filter(usable).collect(),
    };
    if candidates.is_empty() {
        return Err(match &header.kid {
            Some(kid) => Refused::UnknownKey(format!(
                "no key `{}` in the issuer's key set",
                kid.escape_debug()
            )),
            None => invalid("it names no `kid` and no key of the set fits its `alg`"),
        });
    }
    let fitting: Vec<&Key> = candidates.into_iter().filter(usable).collect();
    if fitting.is_empty() {
        return Err(invalid(format!(
            "its key is not one for `alg` {:?}",
            header.alg
        )));
    }
    let good = fitting.iter().any(|key| match (&check, &key.material) {
        (Check::Rsa(params), Material::Rsa { n, e }) => RsaPublicKeyComponents { n, e }
            .verify(params, signed, signature)
            .is_ok(),
        (Check::Point(algorithm, _), Material::P256(point))
        | (Check::Point(algorithm, _), Material::P384(point))
        | (Check::Point(algorithm, _), Material::Ed25519(point)) => {
            UnparsedPublicKey::new(*algorithm, point)
                .verify(signed, signature)
                .is_ok()
        }
        _ => false,
    });
    if good {
        Ok(())
    } else {
        Err(invalid("its signature does not verify"))
    }
}

/// The claims `raw` makes, if they are what `expect` asks of a token now.
pub(super) fn check_claims(raw: RawClaims, expect: &Expect, now: u64) -> Result<Claims, Refused> {
    if raw.iss.as_deref() != Some(expect.issuer.as_str()) {
        return Err(invalid(format!(
            "its issuer {:?} is not {:?}",
            raw.iss.unwrap_or_default(),
            expect.issuer
        )));
    }
    let audiences = match raw.aud {
        Some(Audience::One(a)) => vec![a],
        Some(Audience::Many(many)) => many,
        None => Vec::new(),
    };
    if !audiences.iter().any(|a| expect.audiences.contains(a)) {
        return Err(invalid(format!(
            "its audience {audiences:?} is not this server ({:?})",
            expect.audiences
        )));
    }
    let Some(exp) = raw.exp.filter(|e| e.is_finite() && *e >= 0.0) else {
        return Err(invalid("it has no `exp`"));
    };
    let exp = exp as u64;
    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(invalid("it has expired"));
    }
    if raw
        .nbf
        .is_some_and(|nbf| later_than(nbf, now + LEEWAY_SECS))
    {
        return Err(invalid("it is not valid yet (`nbf`)"));
    }
    if raw
        .iat
        .is_some_and(|iat| later_than(iat, now + LEEWAY_SECS))
    {
        return Err(invalid("it was issued in the future (`iat`)"));
    }
    let subject = raw.sub.or(raw.client_id).unwrap_or_default();
    if subject.is_empty() || subject.len() > MAX_SUBJECT || subject.chars().any(char::is_control) {
        return Err(invalid(format!(
            "its `sub` must be 1 to {MAX_SUBJECT} bytes without control characters"
        )));
    }
    let mut scopes: Vec<String> = match (raw.scope, raw.scp) {
        (Some(scope), _) => scope.split_whitespace().map(str::to_string).collect(),
        (None, Some(scp)) => scp,
        (None, None) => Vec::new(),
    };
    scopes.truncate(MAX_SCOPES);
    Ok(Claims {
        subject,
        scopes,
        expires: exp,
    })
}

/// Whether the claimed time `t` is after `limit` (or is no time at all).
fn later_than(t: f64, limit: u64) -> bool {
    !matches!(
        t.partial_cmp(&(limit as f64)),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
