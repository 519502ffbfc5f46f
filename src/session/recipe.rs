//! What a launch starts: the image as resolved (its ID and what its labels
//! declare), the servers chosen with the launch's overrides over their label
//! specs and their env resolved, and the checked recipe a session (or a
//! pooled one) is started from, with its key.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Isolation, LaunchInput, container};
use crate::engine::engines::Engine;
use crate::engine::env::EnvFile;
use crate::image::{Built, Inspected};
use crate::labels::{Requests, ServerSpec, Servers};
use crate::{Error, Result};

/// A checked launch: what its session starts, and the key of that spec.
pub(super) struct Recipe {
    pub(super) key: String,
    /// The image as asked for.
    pub(super) image: String,
    pub(super) image_id: String,
    pub(super) chosen: BTreeMap<String, ServerSpec>,
    pub(super) envs: BTreeMap<String, BTreeMap<String, String>>,
    pub(super) isolation: super::Isolation,
    pub(super) warnings: Vec<String>,
    /// The engine its sessions start on.
    pub(super) engine: Arc<Engine>,
    pub(super) user: container::UserMode,
}

/// What a launch needs of an image: its ID and what its labels declare.
pub(super) struct Resolved {
    pub(super) id: String,
    pub(super) servers: Servers,
    pub(super) requests: Option<Requests>,
    pub(super) warnings: Vec<String>,
    /// The user the image's processes run as (empty: root), when the inspect
    /// that resolved it said; `None` when it did not (a build's record).
    pub(super) user: Option<String>,
}

impl From<Inspected> for Resolved {
    fn from(i: Inspected) -> Self {
        Resolved {
            id: i.id,
            servers: i.servers,
            requests: i.requests,
            warnings: i.warnings,
            user: i.user,
        }
    }
}

impl From<&Built> for Resolved {
    fn from(b: &Built) -> Self {
        Resolved {
            id: b.image_id.clone(),
            servers: b.servers.clone(),
            requests: b.requests.clone(),
            warnings: b.label_warnings.clone(),
            user: None,
        }
    }
}

/// The launch's overrides over the chosen servers' label specs, checked as a
/// label's would be (an override of a server not launched is an error).
pub(super) fn apply_overrides(
    mut chosen: BTreeMap<String, ServerSpec>,
    overrides: &super::Overrides,
) -> Result<BTreeMap<String, ServerSpec>> {
    let launched: Vec<&String> = chosen.keys().collect();
    let overrides = overrides.by_server(&launched)?;
    for (server, change) in &overrides {
        let Some(spec) = chosen.get_mut(server.as_str()) else {
            return Err(Error::invalid(
                "overrides",
                server,
                "no server of that name is launched",
                format!(
                    "override one of: {}",
                    chosen.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        if let Some(command) = &change.command {
            spec.command = command.clone();
        }
        spec.command.extend(change.args.iter().cloned());
        spec.env.extend(change.env.clone());
    }
    if !overrides.is_empty() {
        crate::labels::validate_servers(&chosen)?;
    }
    Ok(chosen)
}

/// The servers a launch starts: each that `input.servers` names (which the
/// image must declare), or every server the image declares.
pub(super) fn choose_servers(
    input: &LaunchInput,
    image: &Resolved,
) -> Result<BTreeMap<String, ServerSpec>> {
    if image.servers.is_empty() {
        return Err(Error::invalid(
            "image",
            &input.image,
            "its labels declare no MCP servers",
            "build it with build_image and `servers`, or add an io.mcpod.servers label",
        ));
    }
    Ok(match &input.servers {
        None => image.servers.clone(),
        Some(names) => names
            .iter()
            .map(|n| {
                image
                    .servers
                    .get(n)
                    .map(|s| (n.clone(), s.clone()))
                    .ok_or_else(|| {
                        Error::invalid(
                            "server",
                            n,
                            "the image does not declare it",
                            format!(
                                "choose from: {}",
                                image.servers.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        )
                    })
            })
            .collect::<Result<_>>()?,
    })
}

/// Refuse a value of the launch's `env` that no chosen server takes through
/// a `${NAME}` reference: it is a mistake (a misspelt name, a server left
/// out), said rather than dropped.
pub(super) fn check_env_taken(
    env: &BTreeMap<String, String>,
    chosen: &BTreeMap<String, ServerSpec>,
) -> Result<()> {
    let referenced: std::collections::BTreeSet<&str> = chosen
        .values()
        .flat_map(|spec| spec.env_refs().map(|(_, name)| name))
        .collect();
    if let Some(unused) = env.keys().find(|k| !referenced.contains(k.as_str())) {
        return Err(Error::invalid(
            "env",
            unused,
            if referenced.is_empty() {
                "no server of this launch takes a value from `env` (none has a `${NAME}` reference)"
                    .to_string()
            } else {
                format!(
                    "no server of this launch references `${{{unused}}}`; they reference: {}",
                    referenced.iter().copied().collect::<Vec<_>>().join(", ")
                )
            },
            format!(
                "`env` only gives values to the `${{NAME}}` references the servers already have (inspect_labels shows them); to set a server's variable, use `overrides`: {{\"env\": {{\"{unused}\": \"${{{unused}}}\"}}}} (the server's name first when the launch starts more than one), where `${{{unused}}}` is read from mcpod's environment as the operator's --allow-env permits, or give a literal value"
            ),
        ));
    }
    Ok(())
}

/// Each chosen server's env, its `${NAME}` references resolved from the
/// launch's `env`, else from mcpod's environment (only names in `allowed`),
/// and held to the bounds `mcpod connect`'s env file has, so what launches
/// here also connects straight from a client.
pub(super) fn resolve_envs(
    chosen: &BTreeMap<String, ServerSpec>,
    given: &BTreeMap<String, String>,
    allowed: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let mut envs = BTreeMap::new();
    for (name, spec) in chosen {
        let env = spec.resolve_env(name, allowed, |var| {
            given.get(var).cloned().or_else(|| std::env::var(var).ok())
        })?;
        EnvFile::new(name, &env)?;
        envs.insert(name.clone(), env);
    }
    Ok(envs)
}

/// The key of a launch's effective spec: what a pooled session must have
/// been started with to stand in for the launch. Env values are hashed with
/// the rest, never kept in the key.
pub(super) fn recipe_key(
    image_id: &str,
    chosen: &BTreeMap<String, ServerSpec>,
    envs: &BTreeMap<String, BTreeMap<String, String>>,
    isolation: &Isolation,
    user: &container::UserMode,
    engine: &str,
) -> String {
    let mut key = blake3::Hasher::new();
    let spec = serde_json::json!([image_id, chosen, envs, isolation, user.describe(), engine]);
    key.update(spec.to_string().as_bytes());
    key.finalize().to_hex().to_string()
}
