//! The content-addressed cache key: what goes in ([`key`]) and the build
//! context walk ([`context`], with the ignore rules of [`ignore`] from the
//! ignore file `ignore_file` finds), the bounded reads of the files around it
//! ([`input`]), and the checks that a build read what was hashed (`verify`).
//! Knows nothing of podman or buildah.

pub mod context;
pub mod ignore;
mod ignore_file;
pub mod input;
pub mod key;
mod statcache;
mod verify;

pub use context::HashedContext;
pub use context::{ContextDigest, hash_context, hash_context_for_build};
pub use ignore::IgnoreRules;
pub use ignore_file::{CONTAINERFILE_IGNORE_SUFFIXES, IGNORE_FILES};
pub use key::{CacheKey, KeyInputs};
pub use verify::PinnedContext;
