//! Which ignore file a build applies, as buildah finds it: the
//! Containerfile's own (beside it, which may be outside the context), else the
//! first of [`IGNORE_FILES`] in the context root; read with a bound and
//! refused when it resolves outside where it may live.

use std::path::{Path, PathBuf};

use super::ignore::IgnoreRules;
use super::input::{self, MAX_IGNORE_FILE};
use crate::{Error, Result};

/// Ignore files looked for in the context root, in order, when the
/// Containerfile has none of its own; the first one found applies.
pub const IGNORE_FILES: [&str; 2] = [".containerignore", ".dockerignore"];

/// Suffixes of a Containerfile's own ignore file (`Containerfile.dockerignore`
/// beside it), in buildah's order of precedence. One found replaces the
/// context's: buildah checks `.containerignore`, then lets `.dockerignore`
/// override it.
pub const CONTAINERFILE_IGNORE_SUFFIXES: [&str; 2] = [".dockerignore", ".containerignore"];

/// The ignore file buildah applies, compiled, and its text as parsed: the
/// Containerfile's own, else the first that exists in the root. `canonical`
/// is the root, resolved.
pub(super) fn load_ignore(
    root: &Path,
    canonical: &Path,
    containerfile: Option<&Path>,
) -> Result<(IgnoreRules, Option<PathBuf>, String)> {
    // The Containerfile's own ignore file may live beside it, outside the context.
    let cf_dir = containerfile
        .and_then(|cf| root.join(cf).parent().map(Path::to_path_buf))
        .and_then(|dir| std::fs::canonicalize(dir).ok());
    let own = containerfile.into_iter().flat_map(|cf| {
        let cf = root.join(cf);
        CONTAINERFILE_IGNORE_SUFFIXES.map(|suffix| {
            let mut path = cf.clone().into_os_string();
            path.push(suffix);
            (PathBuf::from(path), true)
        })
    });
    let in_root = IGNORE_FILES.map(|name| (root.join(name), false));
    for (path, is_own) in own.chain(in_root) {
        let (roots, place): (Vec<&Path>, String) = match (&cf_dir, is_own) {
            (Some(dir), true) => (
                vec![canonical, dir],
                format!(
                    "the context `{}` and the Containerfile's directory `{}`",
                    root.display(),
                    dir.display()
                ),
            ),
            _ => (vec![canonical], format!("the context `{}`", root.display())),
        };
        let read = input::read_bounded(&path, "ignore file", MAX_IGNORE_FILE, |real| {
            input::inside("ignore file", &path, real, &roots, &place)
        });
        let bytes = match read {
            Ok(bytes) => bytes,
            // Absent, or a dangling symlink: buildah looks further too.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                continue;
            }
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let rules = IgnoreRules::parse(&text).map_err(|e| match e {
            Error::InvalidInput {
                value, reason, fix, ..
            } => Error::InvalidInput {
                field: format!("pattern in {}", path.display()),
                value,
                reason,
                fix,
            },
            other => other,
        })?;
        return Ok((rules, Some(path), text));
    }
    Ok((IgnoreRules::default(), None, String::new()))
}
