//! STUB: replaced by the cache work. Interface only.
use std::collections::BTreeMap;

use super::ContextDigest;

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    pub fn compute(inputs: &KeyInputs<'_>) -> CacheKey {
        let mut h = blake3::Hasher::new();
        h.update(inputs.containerfile);
        h.update(&inputs.context.digest);
        CacheKey(*h.finalize().as_bytes())
    }
    /// All 64 hex digits.
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
    /// The first 16 hex digits: the image tag.
    pub fn tag(&self) -> String {
        self.hex()[..16].to_string()
    }
}
