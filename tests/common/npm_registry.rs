//! A small npm registry on 127.0.0.1 for tests (tests/fixtures/npm_registry.py),
//! reached the way the operator points npm at one (`npm_config_registry`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The registry server, stopped when dropped.
pub struct Registry {
    child: Child,
    pub url: String,
    log: PathBuf,
}

impl Registry {
    pub fn start(dir: &Path, spec: &Value) -> Registry {
        let spec_path = dir.join("registry.json");
        std::fs::write(&spec_path, spec.to_string()).expect("write spec");
        let log = dir.join("requests.log");
        let mut child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/npm_registry.py"
            ))
            .arg(&spec_path)
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the registry's port");
        let port: u16 = line.trim().parse().expect("a port");
        Registry {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    pub fn requested(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
