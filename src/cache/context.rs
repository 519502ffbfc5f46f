//! STUB: replaced by the cache work. Interface only.
use std::path::{Path, PathBuf};

use crate::Result;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextDigest {
    pub digest: [u8; 32],
    /// Regular files hashed (after ignore rules).
    pub files: u64,
    /// Bytes of regular-file content hashed or taken from the stat cache.
    pub bytes: u64,
    /// The ignore file that applied, if any.
    pub ignore_file: Option<PathBuf>,
}

/// Hash the build context at `root` as buildah would send it.
/// `stat_cache`: where to keep the persistent (path,size,mtime,inode)→digest cache, if any.
pub fn hash_context(root: &Path, stat_cache: Option<&Path>) -> Result<ContextDigest> {
    let _ = (root, stat_cache);
    Ok(ContextDigest { digest: [0; 32], files: 0, bytes: 0, ignore_file: None })
}
