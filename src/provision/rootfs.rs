//! A root file system staged from the host's own files: a program, the
//! libraries it loads and the trees it reads, each at its host path, so the
//! program finds everything where it was built to look (its RPATH, its
//! compiled-in prefix). What a base image made by mcpod is made of.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

pub struct Rootfs {
    root: PathBuf,
    files: u64,
    bytes: u64,
}

impl Rootfs {
    /// An empty root at `root` (created; it must not exist yet).
    pub fn create(root: &Path) -> Result<Rootfs> {
        fs::create_dir_all(root).map_err(|e| Error::io("creating", root, e))?;
        Ok(Rootfs {
            root: root.to_path_buf(),
            files: 0,
            bytes: 0,
        })
    }

    /// The staging root on the host.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Files and bytes staged so far.
    pub fn size(&self) -> (u64, u64) {
        (self.files, self.bytes)
    }

    /// Where the absolute path `abs` of the image is in the staging root.
    fn at(&self, abs: &Path) -> PathBuf {
        self.root.join(abs.strip_prefix("/").unwrap_or(abs))
    }

    fn parent(&self, dst: &Path) -> Result<()> {
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        }
        Ok(())
    }

    /// Copy the host file `src` (symlinks followed) to `abs` in the image,
    /// readable by every user (sessions may run as an unmapped uid).
    pub fn copy_file(&mut self, src: &Path, abs: &Path) -> Result<()> {
        let dst = self.at(abs);
        if dst.exists() {
            return Ok(());
        }
        self.parent(&dst)?;
        let bytes = fs::copy(src, &dst).map_err(|e| Error::io("copying", src, e))?;
        let mode = fs::metadata(&dst)
            .map_err(|e| Error::io("reading", &dst, e))?
            .permissions()
            .mode();
        let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting the mode of", &dst, e))?;
        // The modification time goes along: Python checks its bytecode caches against it.
        let modified = fs::metadata(src)
            .and_then(|m| m.modified())
            .map_err(|e| Error::io("reading", src, e))?;
        fs::File::options()
            .write(true)
            .open(&dst)
            .and_then(|f| f.set_modified(modified))
            .map_err(|e| Error::io("setting the time of", &dst, e))?;
        self.files += 1;
        self.bytes += bytes;
        Ok(())
    }

    /// Copy the host tree `src` to the same path in the image, leaving out
    /// every entry `skip` names (by its path relative to `src`). Symlinks are
    /// kept as links.
    pub fn copy_tree(&mut self, src: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = src.join(&rel);
            let entries = fs::read_dir(&dir).map_err(|e| Error::io("reading", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("reading", &dir, e))?;
                let rel = rel.join(entry.file_name());
                if skip(&rel) {
                    continue;
                }
                let path = src.join(&rel);
                let kind = entry
                    .file_type()
                    .map_err(|e| Error::io("reading", &path, e))?;
                if kind.is_dir() {
                    fs::create_dir_all(self.at(&path))
                        .map_err(|e| Error::io("creating", &path, e))?;
                    stack.push(rel);
                } else if kind.is_symlink() {
                    let target =
                        fs::read_link(&path).map_err(|e| Error::io("reading", &path, e))?;
                    self.symlink(&path, &target)?;
                } else if kind.is_file() {
                    self.copy_file(&path, &path)?;
                }
            }
        }
        Ok(())
    }

    /// A symlink at `abs` in the image pointing to `target`.
    pub fn symlink(&mut self, abs: &Path, target: &Path) -> Result<()> {
        let dst = self.at(abs);
        if fs::symlink_metadata(&dst).is_ok() {
            return Ok(());
        }
        self.parent(&dst)?;
        symlink(target, &dst).map_err(|e| Error::io("linking", &dst, e))
    }

    /// An empty directory at `abs` in the image with `mode`.
    pub fn dir(&mut self, abs: &Path, mode: u32) -> Result<()> {
        let dst = self.at(abs);
        fs::create_dir_all(&dst).map_err(|e| Error::io("creating", &dst, e))?;
        fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting the mode of", &dst, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_trees_and_links_land_at_their_host_paths() {
        let host = tempfile::tempdir().unwrap();
        let tree = host.path().join("lib/py");
        fs::create_dir_all(tree.join("test")).unwrap();
        fs::create_dir_all(tree.join("json")).unwrap();
        fs::write(tree.join("os.py"), "x").unwrap();
        fs::write(tree.join("json/__init__.py"), "y").unwrap();
        fs::write(tree.join("test/big.py"), "z").unwrap();
        symlink("os.py", tree.join("alias.py")).unwrap();
        let exe = host.path().join("bin/prog");
        fs::create_dir_all(exe.parent().unwrap()).unwrap();
        fs::write(&exe, "elf").unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o700)).unwrap();

        let out = tempfile::tempdir().unwrap();
        let mut rootfs = Rootfs::create(&out.path().join("r")).unwrap();
        rootfs.copy_file(&exe, &exe).unwrap();
        rootfs
            .copy_tree(&tree, &|rel| rel == Path::new("test"))
            .unwrap();
        rootfs.symlink(Path::new("/usr/bin/prog"), &exe).unwrap();
        rootfs.dir(Path::new("/tmp"), 0o1777).unwrap();
        let r = out.path().join("r");
        let staged = |p: &Path| r.join(p.strip_prefix("/").unwrap());
        assert_eq!(
            fs::read_to_string(staged(&tree.join("json/__init__.py"))).unwrap(),
            "y"
        );
        assert!(!staged(&tree.join("test")).exists());
        assert_eq!(
            fs::read_link(staged(&tree.join("alias.py"))).unwrap(),
            Path::new("os.py")
        );
        let mode = fs::metadata(staged(&exe)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "an executable is readable and runnable by all");
        assert_eq!(fs::read_link(r.join("usr/bin/prog")).unwrap(), exe);
        assert_eq!(
            fs::metadata(r.join("tmp")).unwrap().permissions().mode() & 0o7777,
            0o1777
        );
        assert_eq!(rootfs.size().0, 3);
    }
}
