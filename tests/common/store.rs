//! A containers-storage store of its own in a temp dir (its own graphroot and
//! runroot, named by a `storage.conf` that `CONTAINERS_STORAGE_CONF` points
//! at), so a test or bench can fill, break or corrupt it without touching the
//! shared store. Removed, with every working container in it, when dropped.
//! Self-contained: the cache_hit bench includes it by path.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub struct TempStore {
    pub dir: PathBuf,
    pub driver: String,
}

impl TempStore {
    /// A new empty store using `driver` (`overlay`, `vfs`).
    pub fn new(driver: &str) -> TempStore {
        // Short: podman refuses a runroot path longer than 50 characters.
        let dir = PathBuf::from(format!("/var/tmp/mcpod-st-{}", mcpod::engine::nonce()));
        std::fs::create_dir_all(dir.join("root")).expect("mkdir root");
        std::fs::create_dir_all(dir.join("run")).expect("mkdir run");
        std::fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"{driver}\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                dir.join("root").display(),
                dir.join("run").display()
            ),
        )
        .expect("write storage.conf");
        TempStore {
            dir,
            driver: driver.to_string(),
        }
    }

    /// The `CONTAINERS_STORAGE_CONF` that selects this store.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("storage.conf")
    }

    /// Its image index (which exists once the store has been opened).
    pub fn images_json(&self) -> PathBuf {
        self.dir
            .join("root")
            .join(format!("{}-images", self.driver))
            .join("images.json")
    }

    /// `program` working on this store.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("CONTAINERS_STORAGE_CONF", self.conf())
            .stdin(std::process::Stdio::null());
        c
    }

    /// `program ARGS` on this store, which must succeed; its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program).args(args).output().expect(program);
        assert!(
            out.status.success(),
            "{program} {args:?} on {}: {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Rewrite the index with `edit` (nothing else uses this store).
    pub fn edit_index(&self, edit: impl FnOnce(&mut Vec<serde_json::Value>)) {
        let path = self.images_json();
        let mut images: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&path).expect("read images.json"))
                .expect("images.json is a list");
        edit(&mut images);
        std::fs::write(&path, serde_json::to_vec(&images).expect("json")).expect("write");
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = self.command("buildah").args(["rm", "--all"]).output();
        // A rootless store holds files of the user's subordinate IDs.
        // SAFETY: geteuid has no preconditions.
        let removed = if unsafe { libc::geteuid() } == 0 {
            std::fs::remove_dir_all(&self.dir).map_err(|e| e.to_string())
        } else {
            self.command("buildah")
                .args(["unshare", "rm", "-rf", "--"])
                .arg(&self.dir)
                .status()
                .map_err(|e| e.to_string())
                .and_then(|s| s.success().then_some(()).ok_or(s.to_string()))
        };
        if let Err(e) = removed {
            eprintln!(
                "warning: removing the temp store {}: {e}",
                self.dir.display()
            );
        }
    }
}
