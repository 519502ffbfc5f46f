//! The workspace root: every path an agent passes resolves inside it.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// `root` must be an existing directory; it is canonicalised once.
    pub fn new(root: &Path) -> Result<Self> {
        let root = root
            .canonicalize()
            .map_err(|e| Error::io("opening the workspace root", root, e))?;
        if !root.is_dir() {
            return Err(Error::invalid(
                "workspace root",
                root.display().to_string(),
                "it is not a directory",
                "pass --root with a directory",
            ));
        }
        Ok(Workspace { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolve `input` (relative to the root, or absolute) to an existing path
    /// inside the root. `..` and symlinks are resolved before the check, so
    /// neither can lead outside.
    pub fn resolve(&self, field: &str, input: &str) -> Result<PathBuf> {
        if input.is_empty() || input.contains('\0') {
            return Err(Error::invalid(
                field,
                input,
                "it is empty or contains a NUL byte",
                "pass a path relative to the workspace root",
            ));
        }
        let joined = self.root.join(input);
        let resolved = joined.canonicalize().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::invalid(
                    field,
                    input,
                    format!("`{}` does not exist", joined.display()),
                    format!(
                        "pass a path that exists, relative to the workspace root `{}`",
                        self.root.display()
                    ),
                )
            } else {
                Error::io("resolving", &joined, e)
            }
        })?;
        if !resolved.starts_with(&self.root) {
            return Err(Error::PathOutsideRoot {
                input: input.to_string(),
                root: self.root.clone(),
            });
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("ctx")).expect("mkdir");
        std::fs::write(dir.path().join("secret"), "x").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).expect("symlink");
        let ws = Workspace::new(&root).expect("root");

        assert_eq!(
            ws.resolve("context", "ctx").expect("inside"),
            ws.root().join("ctx")
        );
        assert_eq!(
            ws.resolve("context", "ctx/../ctx").expect("inside"),
            ws.root().join("ctx")
        );
        for outside in ["..", "../secret", "link", "/etc"] {
            let err = ws.resolve("context", outside).expect_err(outside);
            assert!(
                matches!(err, Error::PathOutsideRoot { .. }),
                "{outside}: {err}"
            );
        }
        let err = ws
            .resolve("containerfile", "nope/Containerfile")
            .expect_err("missing");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
