//! Revoking a token ends what it owns. A request is checked against the
//! token file when it arrives (`auth.rs`), so a revoked token's next request
//! is refused at once; what it already started lives on in this process, so
//! every [`REVOCATION_CHECK`] the file is looked at again (read only when its
//! inode, size or mtime changed) and the sessions and MCP sessions of each
//! principal that no longer has its token are stopped.
//!
//! Why a timer and not a file watch: `mcpod token` replaces the file by a
//! rename, which ends an inotify watch on the file itself, and a watch of the
//! directory needs a dependency and still misses a file on another host's
//! mount; a `stat` a second costs nothing. A launch that finishes after its
//! token was revoked is caught the same way on the next check (its owner has
//! no token). A name revoked and made again within one check is another
//! token (its sha256 differs): the old token's sessions end too.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use super::auth::Tokens;

/// How often a running `serve --listen` looks for revoked tokens: the most
/// a revoked token's sessions outlive it (plus the time they take to stop).
pub const REVOCATION_CHECK: Duration = Duration::from_secs(1);

/// What the token file said when last read.
pub(super) struct Revocations {
    tokens: Tokens,
    /// inode, size and mtime (ns) of the file last read; none before the
    /// first read or when it did not exist.
    stamp: Option<Option<(u64, u64, i128)>>,
    /// Each token's name and sha256.
    known: HashMap<String, [u8; 32]>,
}

/// Whose sessions end now.
pub(super) struct Gone {
    /// Names whose token was revoked (or revoked and made again) since the
    /// last check.
    revoked: HashSet<String>,
    /// Names that have a token now.
    valid: HashSet<String>,
}

impl Gone {
    /// Whether what `principal` owns ends. An OAuth principal has no token here: its access tokens expire on
    /// their own, and what it launched lives out its lease.
    pub(super) fn ends(&self, principal: &str) -> bool {
        if principal.starts_with(super::oauth::PRINCIPAL_PREFIX) {
            return false;
        }
        self.revoked.contains(principal) || !self.valid.contains(principal)
    }
}

impl Revocations {
    pub(super) fn new(tokens: Tokens) -> Revocations {
        let mut revocations = Revocations {
            tokens,
            stamp: None,
            known: HashMap::new(),
        };
        // What exists at start-up is no revocation.
        let _ = revocations.check();
        revocations
    }

    /// The token file now: `None` when it could not be read (then nothing
    /// ends: a file mcpod cannot read refuses every request anyway).
    pub(super) fn check(&mut self) -> Option<Gone> {
        let stamp = match std::fs::metadata(self.tokens.path()) {
            Ok(m) => Some((
                m.ino(),
                m.len(),
                i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(
                    "looking for revoked tokens in {}: {e}",
                    self.tokens.path().display()
                );
                return None;
            }
        };
        let mut revoked = HashSet::new();
        if self.stamp != Some(stamp) {
            let entries = match self.tokens.list() {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!("looking for revoked tokens: {e}");
                    return None;
                }
            };
            let now: HashMap<String, [u8; 32]> = entries
                .into_iter()
                .map(|e| (e.name.clone(), *e.digest()))
                .collect();
            for (name, hash) in &self.known {
                if now.get(name) != Some(hash) {
                    revoked.insert(name.clone());
                }
            }
            self.known = now;
            self.stamp = Some(stamp);
        }
        Some(Gone {
            revoked,
            valid: self.known.keys().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_or_remade_token_ends_its_principal_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::at(dir.path().join("tokens"));
        tokens.create("alice", false).unwrap();
        tokens.create("bob", false).unwrap();
        let mut revocations = Revocations::new(tokens.clone());
        let gone = revocations.check().unwrap();
        assert!(!gone.ends("alice") && !gone.ends("bob"));
        assert!(gone.ends("carol"), "a name with no token");
        assert!(!gone.ends("oauth:carol"), "an OAuth principal has no token");

        tokens.revoke("alice").unwrap();
        let gone = revocations.check().unwrap();
        assert!(gone.ends("alice") && !gone.ends("bob"));

        // Revoked and made again between two checks: the old token's
        // sessions end, once.
        tokens.revoke("bob").unwrap();
        tokens.create("bob", false).unwrap();
        assert!(revocations.check().unwrap().ends("bob"));
        assert!(!revocations.check().unwrap().ends("bob"));

        std::fs::remove_file(tokens.path()).unwrap();
        assert!(revocations.check().unwrap().ends("bob"));
    }
}
