//! The environment of every host process mcpod starts, and how a container's
//! env values reach podman without touching that environment, argv or disk.
//!
//! - [`host_env`]: podman, buildah, skopeo, npm, pip and ldd get an environment built from
//!   mcpod's own, through a short allow-list (locale, home, temp dirs, the
//!   operator's container and proxy settings). Nothing else passes: no `LD_*`,
//!   nothing a label, a tool argument, a child or an image said.
//! - [`EnvFile`]: a container's variables travel as podman's `--env-file`,
//!   read from a pipe at a fixed descriptor ([`ENV_FILE`]). The values are in
//!   kernel memory only until podman has read them: not in any argv or
//!   environment (`ps`, `/proc/PID/environ`), never on disk, so a killed mcpod
//!   leaves no secret behind (a file would need removing).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::{Error, Result};

/// True when `name` matches `^[A-Za-z_][A-Za-z0-9_]*$`.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Variables of mcpod's own environment that its host processes inherit. All
/// are the operator's: mcpod's environment is set by whoever started it.
const PASSED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "DBUS_SESSION_BUS_ADDRESS",
    // The operator's container settings, when set for mcpod.
    "CONTAINERS_CONF",
    "CONTAINERS_CONF_OVERRIDE",
    "CONTAINERS_REGISTRIES_CONF",
    "CONTAINERS_STORAGE_CONF",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINER_SSHKEY",
    "REGISTRY_AUTH_FILE",
    "STORAGE_DRIVER",
    "STORAGE_OPTS",
    "BUILDAH_ISOLATION",
    // Pulls through the operator's proxy (sessions get --http-proxy=false).
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    // The operator's trust store, for npm and pip behind a TLS-inspecting proxy.
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    // pyenv's shims pick the python they run by these.
    "PYENV_ROOT",
    "PYENV_VERSION",
];

/// Locale categories, and the operator's npm and pip settings (a registry
/// mirror, a cache directory) for provisioning.
const PASSED_PREFIXES: &[&str] = &["LC_", "npm_config_", "NPM_CONFIG_", "PIP_"];

/// The environment for a host process: mcpod's own, allow-listed.
pub fn host_env() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(name, _)| {
            name.to_str().is_some_and(|n| {
                PASSED.contains(&n) || PASSED_PREFIXES.iter().any(|p| n.starts_with(p))
            })
        })
        .collect()
}

/// The descriptor podman reads a session's env file from.
pub const ENV_FILE_FD: RawFd = 3;
/// The `--env-file` argument that goes with an [`EnvFile`].
pub const ENV_FILE: &str = "/dev/fd/3";

/// podman reads an env file line by line with a 64 KiB line buffer; a longer
/// line fails the launch. Values are held well under it.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;
/// All variables of one server together.
pub const MAX_TOTAL_BYTES: usize = 256 * 1024;

/// A server's variables, checked and rendered as podman's env-file format
/// (`NAME=VALUE` per line; a line without `=` would import podman's own
/// variable, so none is ever written).
#[derive(Clone, Debug, Default)]
pub struct EnvFile {
    text: Vec<u8>,
}

impl EnvFile {
    /// No variables.
    pub const EMPTY: EnvFile = EnvFile { text: Vec::new() };

    /// Check and render `env` for server `server`: names must be variable
    /// names, values one line each, within the size limits.
    pub fn new(server: &str, env: &BTreeMap<String, String>) -> Result<EnvFile> {
        let mut text = Vec::new();
        for (name, value) in env {
            if !is_env_name(name) {
                return Err(Error::invalid(
                    "env name",
                    name,
                    format!("server `{server}`: it is not a variable name"),
                    "use a name matching ^[A-Za-z_][A-Za-z0-9_]*$",
                ));
            }
            if value.contains(['\n', '\r', '\0']) {
                return Err(Error::invalid(
                    "env value",
                    name,
                    format!(
                        "server `{server}`: the value of `{name}` holds a line break or NUL, which podman's env file cannot carry"
                    ),
                    "pass a one-line value (encode a multi-line secret, e.g. as base64)",
                ));
            }
            if value.len() > MAX_VALUE_BYTES {
                return Err(Error::invalid(
                    "env value",
                    name,
                    format!(
                        "server `{server}`: the value of `{name}` is {} bytes, over the limit of {MAX_VALUE_BYTES}",
                        value.len()
                    ),
                    "pass a shorter value, or mount a file with the data",
                ));
            }
            text.extend_from_slice(name.as_bytes());
            text.push(b'=');
            text.extend_from_slice(value.as_bytes());
            text.push(b'\n');
        }
        if text.len() > MAX_TOTAL_BYTES {
            return Err(Error::invalid(
                "env",
                server,
                format!(
                    "the variables of server `{server}` come to {} bytes, over the limit of {MAX_TOTAL_BYTES}",
                    text.len()
                ),
                "pass fewer or shorter values",
            ));
        }
        Ok(EnvFile { text })
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Give `command` the env file at [`ENV_FILE_FD`]: a pipe whose write end
    /// a thread fills while podman reads. Returns the guard that keeps the
    /// parent's read end open until the process has started; drop it then.
    pub fn attach(&self, command: &mut tokio::process::Command) -> Result<PipeGuard> {
        let (read, write) =
            super::fd::pipe().map_err(|e| Error::io("creating", "an env-file pipe", e))?;
        super::fd::pass_fd(command, read.as_raw_fd(), ENV_FILE_FD);
        let text = self.text.clone();
        // A full pipe blocks until podman reads; once podman is gone (and the
        // guard dropped), the write fails with EPIPE and the thread ends.
        std::thread::spawn(move || {
            let mut file = std::fs::File::from(write);
            let _ = file.write_all(&text);
        });
        Ok(PipeGuard(read))
    }
}

/// The parent's copy of the env-file pipe's read end.
pub struct PipeGuard(#[allow(dead_code)] OwnedFd);

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn host_env_passes_only_the_allow_list() {
        // SAFETY: tests in this module do not read these variables concurrently.
        unsafe {
            std::env::set_var("LD_PRELOAD_MCPOD_TEST", "x");
            std::env::set_var("LC_MCPOD_TEST", "y");
        }
        let names: Vec<String> = host_env()
            .into_iter()
            .map(|(n, _)| n.to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.starts_with("LD_")), "{names:?}");
        assert!(names.iter().any(|n| n == "LC_MCPOD_TEST"), "{names:?}");
        assert!(names.iter().any(|n| n == "PATH"), "{names:?}");
    }

    #[test]
    fn renders_one_line_per_variable() {
        let f = EnvFile::new("s", &env(&[("B", "2 two"), ("A", "x=y")])).expect("valid");
        assert_eq!(f.text, b"A=x=y\nB=2 two\n");
        assert!(
            EnvFile::new("s", &BTreeMap::new())
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn refuses_what_the_env_file_cannot_carry() {
        for (name, value, says) in [
            ("A", "line\nINJECTED", "line break"),
            ("A", "cr\rx", "line break"),
            ("1A", "x", "not a variable name"),
            ("A-B", "x", "not a variable name"),
            ("", "x", "not a variable name"),
        ] {
            let err = EnvFile::new("srv", &env(&[(name, value)]))
                .expect_err(value)
                .to_string();
            assert!(err.contains(says) && err.contains("srv"), "{err}");
        }
        let big = "v".repeat(MAX_VALUE_BYTES + 1);
        let err = EnvFile::new("srv", &env(&[("A", &big)]))
            .expect_err("too big")
            .to_string();
        assert!(err.contains(&format!("{} bytes", big.len())), "{err}");
        assert!(err.contains(&MAX_VALUE_BYTES.to_string()), "{err}");
    }

    #[tokio::test]
    async fn the_child_reads_the_values_at_the_fixed_descriptor() {
        let f = EnvFile::new("s", &env(&[("SECRET", "s3cret value")])).expect("valid");
        let mut command = tokio::process::Command::new("cat");
        command
            .arg(ENV_FILE)
            .env_clear()
            .stdout(std::process::Stdio::piped());
        let guard = f.attach(&mut command).expect("pipe");
        let child = command.spawn().expect("cat runs");
        drop(guard);
        let out = child.wait_with_output().await.expect("cat ends");
        assert_eq!(out.stdout, b"SECRET=s3cret value\n");
    }
}
