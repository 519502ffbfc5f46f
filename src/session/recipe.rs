//! What a launch starts: the image as resolved (its ID and what its labels
//! declare), the launch's overrides over the label specs, and the checked
//! recipe a session (or a pooled one) is started from.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::container;
use crate::engine::engines::Engine;
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
}

impl From<Inspected> for Resolved {
    fn from(i: Inspected) -> Self {
        Resolved {
            id: i.id,
            servers: i.servers,
            requests: i.requests,
            warnings: i.warnings,
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
        }
    }
}

/// The launch's overrides over the chosen servers' label specs, checked as a
/// label's would be (an override of a server not launched is an error).
pub(super) fn apply_overrides(
    mut chosen: BTreeMap<String, ServerSpec>,
    overrides: &BTreeMap<String, super::ServerOverride>,
) -> Result<BTreeMap<String, ServerSpec>> {
    for (server, change) in overrides {
        let Some(spec) = chosen.get_mut(server) else {
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
