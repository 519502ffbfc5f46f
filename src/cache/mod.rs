//! The content-addressed cache key: what goes in ([`key`]) and the build
//! context walk ([`context`]). Knows nothing of podman or buildah.

pub mod context;
pub mod key;

pub use context::{ContextDigest, hash_context};
pub use key::{CacheKey, KeyInputs};
