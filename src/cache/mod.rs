//! The content-addressed cache key: what goes in ([`key`]) and the build
//! context walk ([`context`], with the ignore rules of [`ignore`]), the
//! bounded reads of the files around it ([`input`]), and the checks that a
//! build read what was hashed (`verify`). Knows nothing of podman or buildah.

pub mod context;
pub mod ignore;
pub mod input;
pub mod key;
mod statcache;
mod verify;

pub use context::{
    CONTAINERFILE_IGNORE_SUFFIXES, ContextDigest, IGNORE_FILES, hash_context,
    hash_context_for_build,
};
pub use ignore::IgnoreRules;
pub use key::{CacheKey, KeyInputs};
pub use verify::{HashedContext, PinnedContext};
