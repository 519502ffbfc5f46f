//! The cache key: what goes into it, and how it is framed.
//!
//! The key is blake3 over a domain tag and every input, each framed so that the
//! byte stream decodes in exactly one way: a byte string is written as its
//! length (u64, little endian) followed by its bytes, and a collection as its
//! element count (u64, little endian) followed by its framed elements. No value
//! can therefore forge another field (moving bytes from a build-arg key into its
//! value, or from the Containerfile into the first arg, always changes the key).

use std::collections::BTreeMap;
use std::fmt;

use super::ContextDigest;

/// Domain separation: a key can never equal a hash made for another purpose.
const DOMAIN: &[u8] = b"mcpod-cache-key-v1";

/// Everything that goes into the cache key.
pub struct KeyInputs<'a> {
    pub containerfile: &'a [u8],
    /// Resolved build args (values already substituted from the host).
    pub build_args: &'a BTreeMap<String, String>,
    /// The labels that will be stamped on the image.
    pub labels: &'a BTreeMap<String, String>,
    /// (base reference as written after FROM, local image ID) for every local base.
    pub base_images: &'a [(String, String)],
    pub context: &'a ContextDigest,
    /// Whether RUN steps have the network (the operator's `--build-network`):
    /// what they fetch is in the image, so an image built online is never
    /// what an offline build of the same inputs finds. Hashed only when
    /// true, so offline keys are those of before.
    pub network: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// blake3 over the domain tag and every input, each framed (see the module docs).
    pub fn compute(inputs: &KeyInputs<'_>) -> CacheKey {
        let mut h = blake3::Hasher::new();
        frame(&mut h, DOMAIN);
        frame(&mut h, inputs.containerfile);
        map(&mut h, inputs.build_args);
        map(&mut h, inputs.labels);
        count(&mut h, inputs.base_images.len());
        for (reference, id) in inputs.base_images {
            frame(&mut h, reference.as_bytes());
            frame(&mut h, id.as_bytes());
        }
        frame(&mut h, &inputs.context.digest);
        if inputs.network {
            frame(&mut h, b"network");
        }
        CacheKey(*h.finalize().as_bytes())
    }

    /// All 64 hex digits.
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The first 16 hex digits: the image tag.
    pub fn tag(&self) -> String {
        let mut hex = self.hex();
        hex.truncate(16);
        hex
    }

    /// Parse the 64 hex digits written by [`CacheKey::hex`]; `None` for anything else.
    pub fn from_hex(text: &str) -> Option<CacheKey> {
        blake3::Hash::from_hex(text)
            .ok()
            .map(|h| CacheKey(*h.as_bytes()))
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

fn count(h: &mut blake3::Hasher, n: usize) {
    h.update(&(n as u64).to_le_bytes());
}

fn frame(h: &mut blake3::Hasher, bytes: &[u8]) {
    count(h, bytes.len());
    h.update(bytes);
}

fn map(h: &mut blake3::Hasher, map: &BTreeMap<String, String>) {
    count(h, map.len());
    for (k, v) in map {
        frame(h, k.as_bytes());
        frame(h, v.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(
        cf: &[u8],
        args: &[(&str, &str)],
        labels: &[(&str, &str)],
        bases: &[(&str, &str)],
    ) -> CacheKey {
        let args: BTreeMap<String, String> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let bases: Vec<(String, String)> = bases
            .iter()
            .map(|(r, i)| (r.to_string(), i.to_string()))
            .collect();
        let context = ContextDigest::default();
        CacheKey::compute(&KeyInputs {
            containerfile: cf,
            build_args: &args,
            labels: &labels,
            base_images: &bases,
            context: &context,
            network: false,
        })
    }

    #[test]
    fn hex_and_tag() {
        let k = key(b"FROM scratch\n", &[], &[], &[]);
        assert_eq!(k.hex().len(), 64);
        assert!(
            k.hex()
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(k.tag(), k.hex()[..16]);
        assert_eq!(CacheKey::from_hex(&k.hex()), Some(k));
        assert_eq!(CacheKey::from_hex("xyz"), None);
        assert_eq!(k.to_string(), k.hex());
    }

    #[test]
    fn deterministic_and_sensitive() {
        let a = key(
            b"FROM scratch\n",
            &[("A", "1")],
            &[("l", "v")],
            &[("base", "sha256:1")],
        );
        assert_eq!(
            a,
            key(
                b"FROM scratch\n",
                &[("A", "1")],
                &[("l", "v")],
                &[("base", "sha256:1")]
            )
        );
        assert_ne!(
            a,
            key(
                b"FROM scratch \n",
                &[("A", "1")],
                &[("l", "v")],
                &[("base", "sha256:1")]
            )
        );
        assert_ne!(
            a,
            key(
                b"FROM scratch\n",
                &[("A", "2")],
                &[("l", "v")],
                &[("base", "sha256:1")]
            )
        );
        assert_ne!(
            a,
            key(
                b"FROM scratch\n",
                &[("A", "1")],
                &[("l", "w")],
                &[("base", "sha256:1")]
            )
        );
        assert_ne!(
            a,
            key(
                b"FROM scratch\n",
                &[("A", "1")],
                &[("l", "v")],
                &[("base", "sha256:2")]
            )
        );
    }

    #[test]
    fn fields_cannot_forge_each_other() {
        // Same bytes, different split between key and value.
        assert_ne!(
            key(b"", &[("ab", "c")], &[], &[]),
            key(b"", &[("a", "bc")], &[], &[])
        );
        // The same pair as a build arg or as a label.
        assert_ne!(
            key(b"", &[("a", "b")], &[], &[]),
            key(b"", &[], &[("a", "b")], &[])
        );
        // Containerfile bytes moved into the first arg key.
        assert_ne!(
            key(b"FROM x", &[("A", "1")], &[], &[]),
            key(b"FROM ", &[("xA", "1")], &[], &[])
        );
        // One entry versus two.
        assert_ne!(
            key(b"", &[("a", "b")], &[], &[]),
            key(b"", &[("a", ""), ("b", "")], &[], &[])
        );
        // A retagged base (same reference, new ID) invalidates.
        assert_ne!(
            key(b"", &[], &[], &[("r", "id1")]),
            key(b"", &[], &[], &[("r", "id2")])
        );
    }

    #[test]
    fn context_digest_counts() {
        let args = BTreeMap::new();
        let a = ContextDigest::default();
        let b = ContextDigest {
            digest: [1; 32],
            ..ContextDigest::default()
        };
        let k = |c: &ContextDigest| {
            CacheKey::compute(&KeyInputs {
                containerfile: b"",
                build_args: &args,
                labels: &args,
                base_images: &[],
                context: c,
                network: false,
            })
        };
        assert_ne!(k(&a), k(&b));
        // Statistics of the walk are not part of the key, only the digest.
        let c = ContextDigest {
            files: 7,
            cached_files: 3,
            ..ContextDigest::default()
        };
        assert_eq!(k(&a), k(&c));
    }

    #[test]
    fn a_build_with_the_network_has_its_own_key_and_offline_keys_are_unchanged() {
        let args = BTreeMap::new();
        let context = ContextDigest::default();
        let k = |network| {
            CacheKey::compute(&KeyInputs {
                containerfile: b"FROM x\nRUN fetch\n",
                build_args: &args,
                labels: &args,
                base_images: &[],
                context: &context,
                network,
            })
        };
        assert_ne!(k(true), k(false));
        // The offline key is the one of before the network was an input.
        let mut h = blake3::Hasher::new();
        for field in [DOMAIN, b"FROM x\nRUN fetch\n"] {
            frame(&mut h, field);
        }
        count(&mut h, 0);
        count(&mut h, 0);
        count(&mut h, 0);
        frame(&mut h, &context.digest);
        assert_eq!(k(false), CacheKey(*h.finalize().as_bytes()));
    }
}
