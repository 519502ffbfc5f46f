//! The content-addressed cache key: what goes in ([`key`]) and the build
//! context walk ([`context`], with the ignore rules of [`ignore`]). Knows
//! nothing of podman or buildah.

pub mod context;
pub mod ignore;
pub mod key;
mod statcache;

pub use context::{CONTAINERFILE_IGNORE_SUFFIXES, ContextDigest, IGNORE_FILES, hash_context};
pub use ignore::IgnoreRules;
pub use key::{CacheKey, KeyInputs};
