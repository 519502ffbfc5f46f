//! What provisioning is asked ([`ProvisionRequest`]) and answers
//! ([`Provisioned`]), and what its steps hand each other.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bases::Base;
use super::server_json;
use crate::engine::process::LineSink;
use crate::image::{Built, Progress};
use crate::labels::ServerSpec;
use crate::{Error, Result};

/// What to provision: a package reference or a server.json, and how.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    /// `npm:NAME@VERSION` (e.g. `npm:@modelcontextprotocol/server-memory@2026.8.31`) or
    /// `pypi:NAME==VERSION` (e.g. `pypi:mcp-server-time==2026.10.19`). A range or a bare
    /// name is resolved once to an exact version; the result says which.
    #[serde(default)]
    pub package: Option<String>,
    /// Instead of `package`: an MCP-registry server.json (schema 2025-12-11),
    /// the JSON object itself.
    #[serde(default)]
    pub server_json: Option<serde_json::Map<String, serde_json::Value>>,
    /// Instead of `package`: the path of a server.json file in the workspace.
    #[serde(default)]
    pub server_json_path: Option<String>,
    /// Which of the server.json's `packages` (default: the first npm, pypi
    /// or oci package with stdio transport).
    #[serde(default)]
    pub package_index: Option<usize>,
    /// Values for the server.json's package arguments (by name or valueHint).
    #[serde(default)]
    pub arguments: BTreeMap<String, String>,
    /// Literal values for the server.json's non-secret environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Pins for the package's dependencies: npm `NAME@RANGE` (overrides),
    /// PyPI `NAME<2`-style specifiers (constraints), e.g. `mcp<2`.
    #[serde(default)]
    pub pins: Vec<String>,
    /// Which program of the package to run, when it has several (npm `bin`
    /// names, PyPI console scripts).
    #[serde(default)]
    pub bin: Option<String>,
    /// The server's name in the image's labels (default: from the package).
    #[serde(default)]
    pub server: Option<String>,
    /// Resolve the dependencies as they stood at a time, for an older package
    /// that today's releases of its dependencies break: `published` (when the
    /// package's exact version was published) or a past day, `YYYY-MM-DD`
    /// (UTC, to its end). npm `--before`, pip `--uploaded-prior-to`.
    #[serde(default)]
    pub resolve_as_of: Option<String>,
    /// Resolve the reference again instead of reusing the recorded lock.
    #[serde(default)]
    pub refresh: bool,
    /// The runtime to run on: `node@22` (the newest 22.x), `node@22.5.1`,
    /// `python@3.13`, or `node@host` / `python@host` (the host's own).
    /// Default: node from the package's engines.node, else the current LTS;
    /// the host's Python, another when the package's Requires-Python
    /// excludes it. list_bases shows what can be made.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Debian packages the server runs (`git`), installed with their
    /// dependencies into a base made from Debian's packages, at exact
    /// versions the result names: only those the operator allows
    /// (`--allow-system-package`). A PyPI package on the host's Python moves
    /// to Debian's Python of the same minor.
    #[serde(default)]
    pub system_packages: Vec<String>,
}

impl ProvisionRequest {
    /// Read `server_json_path` (inside `workspace`) into `server_json`.
    pub fn read_paths(mut self, workspace: &crate::workspace::Workspace) -> Result<Self> {
        if let Some(path) = self.server_json_path.take() {
            if self.server_json.is_some() {
                return Err(Error::invalid(
                    "server_json_path",
                    path,
                    "both `server_json` and `server_json_path` were given",
                    "give one of them",
                ));
            }
            let file = workspace.resolve("server_json_path", &path)?;
            let root = workspace.root().to_path_buf();
            let bytes = crate::cache::input::read_bounded(
                &file,
                "server_json",
                server_json::MAX_BYTES as u64,
                |real| {
                    if real.starts_with(&root) {
                        Ok(())
                    } else {
                        Err(Error::PathOutsideRoot {
                            input: path.clone(),
                            root: root.clone(),
                        })
                    }
                },
            )?;
            let value = serde_json::from_slice(&bytes).map_err(|e| {
                Error::invalid(
                    "server_json_path",
                    path.as_str(),
                    format!("it is not a JSON object: {e}"),
                    "pass the path of a server.json file",
                )
            })?;
            self.server_json = Some(value);
        }
        Ok(self)
    }
}

/// The result of provisioning.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Provisioned {
    /// The package at its exact version (`npm:NAME@1.2.3`), or the OCI image.
    pub reference: String,
    /// What was asked for, when it was a range or a bare name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_from: Option<String>,
    /// The built image (its tag is what launch_session takes).
    pub image: Built,
    /// The server the image declares.
    pub server: String,
    pub spec: ServerSpec,
    /// The base it runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Base>,
    /// blake3 of the lock (exact versions and integrity hashes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// Whether npm or pip ran (false: the recorded lock and staged files were reused).
    pub fetched: bool,
    /// The MCP-registry name: from the server.json (stamped as
    /// `io.modelcontextprotocol.server.name`), else as the package claims it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_name: Option<String>,
    /// Whether the package's own claim (npm `mcpName`, PyPI `mcp-name:`)
    /// matches the server.json's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<String>,
    /// What was translated or left out.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    pub duration_ms: u64,
}

/// What a staged package says of itself.
#[derive(Debug)]
pub struct Found {
    /// The runtime program, then the package's own entry (script, `-c` code).
    pub program: Vec<String>,
    pub description: Option<String>,
    pub registry_name: Option<String>,
    pub warnings: Vec<String>,
}

/// Progress messages, and npm's and pip's output lines as progress.
pub struct Progressed {
    pub say: Progress,
}

impl Progressed {
    pub fn lines(&self, tool: &'static str) -> LineSink {
        let say = self.say.clone();
        Box::new(move |line| {
            if !line.trim().is_empty() {
                (say)(format!("{tool}: {line}"));
            }
        })
    }
}
