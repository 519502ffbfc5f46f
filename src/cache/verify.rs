//! The context buildah read is the context that was hashed: a build checks it
//! twice, with walks that stat but do not read.
//!
//! - [`HashedContext::pin`], just before buildah runs: the listing, every
//!   file's stat (size, mtime, ctime, inode, mode) and every symlink's target
//!   are those of the walk that hashed the context; directories and symlinks
//!   are statted too, and so is the root.
//! - [`PinnedContext::verify`], after buildah finished and before anything is
//!   tagged: a third walk finds every stat as pinned. Files that were modified
//!   less than [`RACY_NS`](super::statcache::RACY_NS) before the hashing walk
//!   are read again and their digests compared, since a write within one
//!   timestamp tick leaves the stat as it was.
//!
//! Replacing a file or directory by rename changes its inode, renaming one
//! back changes its ctime, and any write changes mtime and ctime: a swap
//! during the build leaves a trace, even when it is undone before the end. A
//! directory whose entries were added or removed (ignored ones too) counts as
//! changed. Not seen: a directory above the context root renamed away and
//! back during the build.

use std::path::Path;

use super::context::{self, HashedContext, Kind, Tree, Walker};
use super::statcache::FileStat;
use crate::{Error, Result};

/// The context as pinned before buildah runs.
pub struct PinnedContext {
    hashed: HashedContext,
    root_stat: FileStat,
    /// Sorted, every entry statted, files with the digests that were hashed.
    tree: Tree,
}

impl HashedContext {
    /// The text of the ignore rules that applied, as parsed (empty when none
    /// did). Handing it to buildah as its `--ignorefile` makes it apply the
    /// same rules whatever happens to the files in the context.
    pub fn ignore_text(&self) -> &str {
        &self.ignore_text
    }

    /// Walk again just before buildah runs (see the module docs). Errors:
    /// [`Error::InvalidInput`] naming the first entry that changed since the
    /// context was hashed.
    pub fn pin(self) -> Result<PinnedContext> {
        let root_stat = root_stat(&self.root)?;
        let mut tree = self.walk()?;
        if let Some((rel, how)) = first_change(&self.tree, &tree, false) {
            return Err(changed(&self.root, &rel, how));
        }
        // Same listing: carry the digests over, entry for entry.
        for (pinned, hashed) in tree.entries.iter_mut().zip(&self.tree.entries) {
            if let (Kind::File { digest, .. }, Kind::File { digest: d, .. }) =
                (&mut pinned.kind, &hashed.kind)
            {
                *digest = *d;
            }
        }
        Ok(PinnedContext {
            hashed: self,
            root_stat,
            tree,
        })
    }

    fn walk(&self) -> Result<Tree> {
        let walker = Walker {
            root: &self.root,
            rules: &self.rules,
            skip: self.skip.as_deref(),
            stat_all: true,
        };
        context::walk(&walker, self.threads).map_err(|e| self.vanished(e))
    }

    /// A walk that fails because an entry went away: the context changed.
    fn vanished(&self, e: Error) -> Error {
        match e {
            Error::Io { path, source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                let rel = path
                    .strip_prefix(&self.root)
                    .map_or_else(|_| path.clone(), Path::to_path_buf);
                changed(&self.root, rel.as_os_str().as_encoded_bytes(), "went away")
            }
            other => other,
        }
    }
}

impl PinnedContext {
    /// After buildah finished: every entry is as pinned, and recently written
    /// files still hold what was hashed (see the module docs). Errors:
    /// [`Error::InvalidInput`] naming the first entry that changed.
    pub fn verify(&self) -> Result<()> {
        let h = &self.hashed;
        let now = h.walk()?;
        if let Some((rel, how)) = first_change(&self.tree, &now, true) {
            return Err(changed(&h.root, &rel, how));
        }
        // Last, so that an entry is named when one changed.
        if root_stat(&h.root)? != self.root_stat {
            return Err(changed(
                &h.root,
                b"",
                "(the context directory itself) had an entry renamed, added or removed, or was replaced,",
            ));
        }
        let entries = &self.tree.entries;
        let racy: Vec<usize> = (0..entries.len())
            .filter(|&i| match &entries[i].kind {
                Kind::File { stat, .. } => !stat.settled_before(h.scanned_ns),
                _ => false,
            })
            .collect();
        let rehashed = context::hash_files(&h.root, &self.tree.names, entries, &racy, h.threads)
            .map_err(|e| h.vanished(e))?;
        for (idx, digest, _) in rehashed {
            if let Kind::File {
                digest: Some(d), ..
            } = &entries[idx].kind
                && *d != digest
            {
                let rel = entries[idx].rel(&self.tree.names);
                return Err(changed(&h.root, rel, "was rewritten"));
            }
        }
        Ok(())
    }
}

fn root_stat(root: &Path) -> Result<FileStat> {
    let meta =
        std::fs::metadata(root).map_err(|e| Error::io("reading the metadata of", root, e))?;
    Ok(context::file_stat(&meta))
}

/// The first difference between two sorted walks: (path, what happened).
/// `full` compares the stats of directories and symlinks too. A directory
/// whose own stat changed is named only when nothing in it did: a rename into
/// it changes it too, and the file is the better name.
fn first_change(old: &Tree, new: &Tree, full: bool) -> Option<(Vec<u8>, &'static str)> {
    let (mut i, mut j) = (0, 0);
    let mut dir_change = None;
    loop {
        let a = old.entries.get(i);
        let b = new.entries.get(j);
        let (a, b) = match (a, b) {
            (None, None) => return dir_change,
            (Some(a), None) => return Some((a.rel(&old.names).to_vec(), "went away")),
            (None, Some(b)) => return Some((b.rel(&new.names).to_vec(), "appeared")),
            (Some(a), Some(b)) => (a, b),
        };
        let (ra, rb) = (a.rel(&old.names), b.rel(&new.names));
        match ra.cmp(rb) {
            std::cmp::Ordering::Less => return Some((ra.to_vec(), "went away")),
            std::cmp::Ordering::Greater => return Some((rb.to_vec(), "appeared")),
            std::cmp::Ordering::Equal => {}
        }
        let same = match (&a.kind, &b.kind) {
            (Kind::Dir(x), Kind::Dir(y)) => {
                if full && x != y && dir_change.is_none() {
                    dir_change = Some((
                        ra.to_vec(),
                        "had an entry renamed, added or removed, or was replaced",
                    ));
                }
                true
            }
            (Kind::Symlink(t, x), Kind::Symlink(u, y)) => t == u && (!full || x == y),
            (Kind::File { stat: x, .. }, Kind::File { stat: y, .. }) => x == y,
            _ => false,
        };
        if !same {
            return Some((ra.to_vec(), "was modified or replaced"));
        }
        i += 1;
        j += 1;
    }
}

fn changed(root: &Path, rel: &[u8], how: &str) -> Error {
    let rel = if rel.is_empty() {
        ".".into()
    } else {
        String::from_utf8_lossy(rel)
    };
    Error::invalid(
        "build context",
        root.display().to_string(),
        format!(
            "the context changed during the build: `{rel}` {how} after it was hashed, so the image could hold other content than the cache key says; nothing was stored under the key"
        ),
        "build again once nothing writes to the context",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::hash_context_for_build;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }

    fn pinned(root: &Path) -> PinnedContext {
        let (_, hashed) = hash_context_for_build(root, None, None).expect("hash");
        hashed.pin().expect("pin")
    }

    #[test]
    fn an_unchanged_context_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.txt", "a");
        write(dir.path(), "sub/b.txt", "b");
        std::os::unix::fs::symlink("a.txt", dir.path().join("link")).expect("symlink");
        let pin = pinned(dir.path());
        assert!(pin.verify().is_ok());
        // Reading does not count as a change.
        let _ = std::fs::read(dir.path().join("sub/b.txt"));
        assert!(pin.verify().is_ok());
    }

    #[test]
    fn every_kind_of_change_is_named() {
        type Change = fn(&Path);
        let cases: [(&str, Change, &str); 6] = [
            (
                "a rename over a file",
                |r| {
                    write(r, "tmp", "B");
                    std::fs::rename(r.join("tmp"), r.join("sub/b.txt")).expect("rename");
                },
                "`sub/b.txt`",
            ),
            (
                "a file swapped away and back",
                |r| {
                    std::fs::rename(r.join("a.txt"), r.join("keep")).expect("away");
                    write(r, "a.txt", "other");
                    std::fs::rename(r.join("keep"), r.join("a.txt")).expect("back");
                },
                "`a.txt`",
            ),
            (
                "a directory swapped away and back",
                |r| {
                    std::fs::rename(r.join("sub"), r.join("../sub-away")).expect("away");
                    write(r, "sub/b.txt", "other");
                    std::fs::remove_dir_all(r.join("sub")).expect("rm");
                    std::fs::rename(r.join("../sub-away"), r.join("sub")).expect("back");
                },
                "`sub`",
            ),
            ("a new file", |r| write(r, "sub/new", "n"), "`sub"),
            (
                "a removed file",
                |r| {
                    std::fs::remove_file(r.join("a.txt")).expect("rm");
                },
                "`a.txt`",
            ),
            (
                "a symlink repointed",
                |r| {
                    std::fs::remove_file(r.join("link")).expect("rm");
                    std::os::unix::fs::symlink("sub/b.txt", r.join("link")).expect("symlink");
                },
                "`link`",
            ),
        ];
        for (what, change, named) in cases {
            let outer = tempfile::tempdir().expect("tempdir");
            let root = outer.path().join("ctx");
            write(&root, "a.txt", "a");
            write(&root, "sub/b.txt", "b");
            std::os::unix::fs::symlink("a.txt", root.join("link")).expect("symlink");
            let pin = pinned(&root);
            change(&root);
            let err = pin.verify().expect_err(what).to_string();
            assert!(
                err.contains("changed during the build") && err.contains(named),
                "{what}: {err}"
            );
        }
    }

    #[test]
    fn a_change_before_the_pin_is_caught_by_the_pin() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.txt", "a");
        let (_, hashed) = hash_context_for_build(dir.path(), None, None).expect("hash");
        write(dir.path(), "tmp", "b");
        std::fs::rename(dir.path().join("tmp"), dir.path().join("a.txt")).expect("rename");
        let err = hashed.pin().err().expect("changed").to_string();
        assert!(err.contains("`a.txt`"), "{err}");
    }

    #[test]
    fn a_recent_file_is_read_again() {
        // A write within one timestamp tick of the hashing read leaves the stat
        // as it was; stand for one by making the hashed digest differ from
        // what the file holds.
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.txt", "aaaa");
        let mut pin = pinned(dir.path());
        assert!(pin.verify().is_ok());
        for entry in &mut pin.tree.entries {
            if let Kind::File { digest, .. } = &mut entry.kind {
                *digest = Some([0; 32]);
            }
        }
        let err = pin.verify().expect_err("rewritten").to_string();
        assert!(err.contains("`a.txt` was rewritten"), "{err}");
    }
}
