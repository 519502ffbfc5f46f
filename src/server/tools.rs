//! The inputs of the meta-tools (their outputs are the library's result types).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::labels::Servers;

/// Arguments of `build_image`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildImageInput {
    /// Image name without a tag, e.g. `localhost/my-tools`; the tag is the cache key.
    pub name: String,
    /// The build context directory, relative to the workspace root. Default: the root.
    #[serde(default = "default_context")]
    pub context: String,
    /// The Containerfile, relative to the workspace root. Default: `Containerfile`,
    /// else `Dockerfile`, in the context.
    #[serde(default)]
    pub containerfile: Option<String>,
    /// Build args. A value may use `${NAME}` to take a variable from mcpod's
    /// environment, if the operator allowed NAME (--allow-env).
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// MCP servers to declare in the image's labels, merged over (and winning against)
    /// what the Containerfile's labels already declare.
    #[serde(default)]
    pub servers: Servers,
    /// Build even when the cache has the image.
    #[serde(default)]
    pub no_cache: bool,
}

fn default_context() -> String {
    ".".to_string()
}

/// Arguments of `inspect_labels`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectLabelsInput {
    /// A local image reference (a tag from build_image, a name, or an ID), or
    /// `docker://REF` to read the labels from a registry with skopeo.
    pub reference: String,
}

impl BuildImageInput {
    /// Resolve the paths against the workspace root into a library build spec.
    pub fn into_spec(
        self,
        workspace: &crate::workspace::Workspace,
    ) -> crate::Result<crate::image::BuildSpec> {
        let context = workspace.resolve("context", &self.context)?;
        if !context.is_dir() {
            return Err(crate::Error::invalid(
                "context",
                &self.context,
                "it is not a directory",
                "pass the build context directory",
            ));
        }
        let containerfile = match &self.containerfile {
            Some(path) => workspace.resolve("containerfile", path)?,
            None => default_containerfile(workspace, &context, &self.context)?,
        };
        if !containerfile.is_file() {
            return Err(crate::Error::invalid(
                "containerfile",
                self.containerfile.as_deref().unwrap_or_default(),
                "it is not a file",
                "pass the path of a Containerfile",
            ));
        }
        Ok(crate::image::BuildSpec {
            name: self.name,
            containerfile,
            context,
            build_args: self.build_args,
            servers: self.servers,
            labels: Default::default(),
            no_cache: self.no_cache,
        })
    }
}

/// The context's `Containerfile`, else its `Dockerfile`, resolved like a path
/// the caller named: a symlink may not lead out of the workspace root.
fn default_containerfile(
    workspace: &crate::workspace::Workspace,
    context: &std::path::Path,
    input: &str,
) -> crate::Result<std::path::PathBuf> {
    for name in ["Containerfile", "Dockerfile"] {
        let path = context.join(name);
        if std::fs::symlink_metadata(&path).is_err() {
            continue;
        }
        let shown = format!("{}/{name}", input.trim_end_matches('/'));
        let resolved = match path.canonicalize() {
            Ok(resolved) => resolved,
            // A dangling symlink: as if there were none.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::Error::io("resolving", &path, e)),
        };
        if !resolved.starts_with(workspace.root()) {
            return Err(crate::Error::invalid(
                "containerfile",
                shown,
                format!(
                    "it is a symlink to `{}`, outside the workspace root `{}`",
                    resolved.display(),
                    workspace.root().display()
                ),
                "replace the symlink with the Containerfile itself, or pass `containerfile`",
            ));
        }
        if resolved.is_file() {
            return Ok(resolved);
        }
    }
    Err(crate::Error::invalid(
        "containerfile",
        format!("{input}/Containerfile"),
        "the context has neither a Containerfile nor a Dockerfile",
        "add one, or pass `containerfile`",
    ))
}

/// Arguments of `stop_session`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopSessionInput {
    /// The session id from launch_session.
    pub session: String,
}

/// Arguments of `call_tool`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallToolInput {
    pub session: String,
    pub server: String,
    /// The tool's own name on that server (not the exported one).
    pub tool: String,
    #[serde(default)]
    pub arguments: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Arguments of `find_tools`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindToolsInput {
    /// Words of what the tool does or is called (any case, any order): tools
    /// are ranked by the words they share with it in their name, their
    /// server's name, their description and their arguments, whole, by stem
    /// (`reads` finds `read`) or by beginning (`sql` finds `sqlite`); at most
    /// 1024 bytes and 32 words; empty lists every tool.
    pub query: String,
    /// At most this many results (default 20, at most 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The result of `find_tools`.
pub use crate::session::FoundTools;

/// Arguments of `list_sessions`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSessionsInput {
    /// One session's id: list it with its whole detail (isolation, client
    /// config, each server's handshake, exit code and stderr tail, tools,
    /// what was provisioned, warnings). Default: a line per session.
    #[serde(default)]
    pub session: Option<String>,
}

/// The result of `list_sessions`.
#[derive(Clone, Debug, serde::Serialize, JsonSchema)]
pub struct SessionList {
    /// A line per session (with `session`: that one).
    pub sessions: Vec<crate::session::SessionLine>,
    /// Sessions started ahead of launches (the warm pool): a launch_session
    /// of the same spec is handed one at once.
    pub pool: Vec<crate::session::PooledReport>,
    /// With `session`: that session's whole detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Box<crate::session::SessionInfo>>,
}

/// The result of `stop_session`.
#[derive(Clone, Debug, serde::Serialize, JsonSchema)]
pub struct Stopped {
    pub session: String,
    /// The container is removed, with everything that ran in it.
    pub stopped: bool,
}

/// The result of `list_bases`.
#[derive(Clone, Debug, serde::Serialize, JsonSchema)]
pub struct BaseList {
    pub bases: Vec<crate::provision::bases::BaseReport>,
    /// What a request's `runtime` may name, by runtime (node versions as
    /// the npm registry last listed them).
    pub can_be_made: Vec<crate::provision::bases::Makeable>,
}
