//! A JSON Web Key Set (RFC 7517) as the keys it holds for checking
//! signatures: RSA, EC on P-256 and P-384, and Ed25519. A key that is not a
//! signing key, is of another type or curve, or does not parse is skipped
//! (and counted), never an error for the whole set: one odd key of an
//! identity provider must not refuse every token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// Keys one set may hold; the rest are skipped.
pub const MAX_KEYS: usize = 64;

/// The public half of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Material {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point (`04 || x || y`) on P-256.
    P256(Vec<u8>),
    /// The uncompressed point on P-384.
    P384(Vec<u8>),
    /// The 32-byte Ed25519 public key.
    Ed25519(Vec<u8>),
}

/// One signing key of the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub kid: Option<String>,
    /// The only algorithm the key may be used with, when the set says.
    pub alg: Option<String>,
    pub material: Material,
}

/// The keys of one set, and how many were skipped.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    pub keys: Vec<Key>,
    pub skipped: usize,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl KeySet {
    /// Parse a JWKS document; an error only when it is not one at all.
    pub fn parse(text: &[u8]) -> Result<KeySet, String> {
        let raw: RawSet = serde_json::from_slice(text)
            .map_err(|e| format!("not a JSON Web Key Set (`{{\"keys\": [...]}}`): {e}"))?;
        let mut set = KeySet::default();
        for value in raw.keys {
            if set.keys.len() == MAX_KEYS {
                set.skipped += 1;
                continue;
            }
            match serde_json::from_value::<RawKey>(value)
                .ok()
                .and_then(signing_key)
            {
                Some(key) => set.keys.push(key),
                None => set.skipped += 1,
            }
        }
        Ok(set)
    }
}

fn signing_key(raw: RawKey) -> Option<Key> {
    if raw.usage.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return None;
    }
    let material = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => {
            let n = strip_zeros(decode(raw.n.as_deref()?)?);
            let e = strip_zeros(decode(raw.e.as_deref()?)?);
            // ring takes 2048 to 8192 bits; a smaller key is refused there.
            (!n.is_empty() && !e.is_empty()).then_some(Material::Rsa { n, e })?
        }
        ("EC", Some("P-256")) => Material::P256(point(&raw, 32)?),
        ("EC", Some("P-384")) => Material::P384(point(&raw, 48)?),
        ("OKP", Some("Ed25519")) => {
            let x = decode(raw.x.as_deref()?)?;
            (x.len() == 32).then_some(Material::Ed25519(x))?
        }
        _ => return None,
    };
    let kid = raw.kid.filter(|k| k.len() <= 256);
    Some(Key {
        kid,
        alg: raw.alg,
        material,
    })
}

/// `04 || x || y` from a key whose coordinates are `size` bytes each.
fn point(raw: &RawKey, size: usize) -> Option<Vec<u8>> {
    let x = decode(raw.x.as_deref()?)?;
    let y = decode(raw.y.as_deref()?)?;
    if x.len() != size || y.len() != size {
        return None;
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(4);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Some(point)
}

fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// A big-endian integer without its leading zero bytes (some sets pad `n`).
fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_keys_are_kept_and_others_skipped() {
        let x = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let y = URL_SAFE_NO_PAD.encode([9u8; 32]);
        let text = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": URL_SAFE_NO_PAD.encode([0, 0, 1, 2]), "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "kid": "e", "x": x, "y": y, "alg": "ES256"},
            {"kty": "OKP", "crv": "Ed25519", "x": x},
            {"kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "enc"},
            {"kty": "EC", "crv": "P-256", "x": x, "y": y, "key_ops": ["encrypt"]},
            {"kty": "EC", "crv": "P-521", "x": x, "y": y},
            {"kty": "oct", "k": x},
            {"kty": "OKP", "crv": "Ed25519", "x": "short"},
            {"kty": "EC", "crv": "P-384", "x": x, "y": y},
            "not an object"
        ]});
        let set = KeySet::parse(text.to_string().as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 3);
        assert_eq!(set.skipped, 7);
        assert_eq!(
            set.keys[0].material,
            Material::Rsa {
                n: vec![1, 2],
                e: vec![1, 0, 1]
            }
        );
        assert_eq!(set.keys[1].alg.as_deref(), Some("ES256"));
        assert!(matches!(&set.keys[1].material, Material::P256(p) if p.len() == 65 && p[0] == 4));
        assert!(matches!(set.keys[2].material, Material::Ed25519(_)));
    }

    #[test]
    fn a_set_is_bounded_and_garbage_is_an_error() {
        let key = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([1u8; 32])});
        let many = serde_json::json!({ "keys": vec![key; MAX_KEYS + 5] });
        let set = KeySet::parse(many.to_string().as_bytes()).unwrap();
        assert_eq!((set.keys.len(), set.skipped), (MAX_KEYS, 5));
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"{\"keys\": 1}").is_err());
        assert!(KeySet::parse(&[0xff; 10]).is_err());
    }
}
