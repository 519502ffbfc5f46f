//! The compact views of sessions an agent reads (see [`crate::budget`]):
//! what launch_session answers (each server's state and its tools with
//! their input schemas) and list_sessions' line per session. The whole
//! detail is [`SessionInfo`], one call away.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use schemars::JsonSchema;
use serde::Serialize;

use super::live::Session;
use super::registry::Sessions;
use super::{SessionInfo, SessionState};
use crate::budget::{self, DESCRIPTION_CHARS, LAUNCH_SCHEMAS, LAUNCH_WARNINGS, LINE_CHARS};
use crate::proxy::{Status, names};

/// What launch_session returns: the session, each server's state and its
/// tools, ready to call. Its isolation, client config, handshakes and
/// stderr are in `list_sessions {"session": ID}` and `session_logs`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Launched {
    pub session: String,
    pub state: SessionState,
    /// The image it runs (for a package reference: the tag provisioned).
    pub image: String,
    /// The engine it runs on (`local`, or a name the operator gave with --engine).
    pub engine: String,
    pub servers: BTreeMap<String, LaunchedServer>,
    /// The first few warnings, one line each; all of them are in
    /// list_sessions' detail.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One server of a launched session.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct LaunchedServer {
    pub status: ServerState,
    /// Why it is not ready, on one line (its exit code and stderr are in
    /// list_sessions' detail and session_logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub tools: Vec<LaunchedTool>,
}

/// A tool, enough to call it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct LaunchedTool {
    /// The name to call through mcpod: `<session>_<server>__<tool>`.
    pub name: String,
    /// The first sentence of its description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Left out past the launch's budget for schemas (a warning says so);
    /// find_tools gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A server's state, in a word.
#[derive(Clone, Copy, Debug, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    Ready,
    Failed,
}

/// One session, as list_sessions lists it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SessionLine {
    pub session: String,
    pub state: SessionState,
    pub image: String,
    pub engine: String,
    /// Each server's state.
    pub servers: BTreeMap<String, ServerState>,
    /// How many tools its servers export.
    pub tools: usize,
    /// Seconds left of its lease.
    pub lease_left_secs: u64,
    /// Why it ended when mcpod did not end it, on one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<String>,
    /// The principal that launched it over HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Sessions {
    /// What launch_session answers for the session `info` describes.
    pub fn launched(&self, info: &SessionInfo) -> Launched {
        let session = self.get(&info.session).ok();
        let mut room = LAUNCH_SCHEMAS;
        let mut left_out = 0;
        let servers = info
            .servers
            .iter()
            .map(|(name, report)| {
                let (status, reason) = match &report.status {
                    Status::Ready => (ServerState::Ready, None),
                    Status::Failed { reason, .. } => (
                        ServerState::Failed,
                        Some(budget::one_line(reason, LINE_CHARS)),
                    ),
                };
                let child = session.as_ref().and_then(|s| s.servers.get(name));
                let tools = child.map_or_else(Vec::new, |c| {
                    c.with_tools(|tools| {
                        tools
                            .iter()
                            .map(|t| LaunchedTool {
                                name: names::exported(&info.session, name, &t.name),
                                description: t
                                    .description
                                    .as_deref()
                                    .map(|d| budget::first_sentence(d, DESCRIPTION_CHARS))
                                    .filter(|d| !d.is_empty()),
                                input_schema: within(&mut room, &t.input_schema).or_else(|| {
                                    left_out += 1;
                                    None
                                }),
                            })
                            .collect()
                    })
                });
                let server = LaunchedServer {
                    status,
                    reason,
                    tools,
                };
                (name.clone(), server)
            })
            .collect();
        let mut warnings: Vec<String> = info
            .warnings
            .iter()
            .take(LAUNCH_WARNINGS)
            .map(|w| budget::one_line(w, LINE_CHARS))
            .collect();
        if left_out > 0 {
            warnings.push(format!(
                "{left_out} tools come without their input schema (past {LAUNCH_SCHEMAS} bytes of schemas); find_tools gives them"
            ));
        }
        if info.warnings.len() > LAUNCH_WARNINGS {
            warnings.push(format!(
                "{} more warnings: list_sessions {{\"session\": \"{}\"}}",
                info.warnings.len() - LAUNCH_WARNINGS,
                info.session
            ));
        }
        Launched {
            session: info.session.clone(),
            state: info.state,
            image: info.image.clone(),
            engine: info.engine.clone(),
            servers,
            warnings,
        }
    }

    /// A line per session, in order of id.
    pub fn lines(&self) -> Vec<SessionLine> {
        self.all()
            .iter()
            .map(|s| SessionLine {
                owner: self.owner_of(&s.id),
                ..line(s)
            })
            .collect()
    }

    /// One session's whole detail.
    pub fn detail(&self, id: &str) -> crate::Result<SessionInfo> {
        self.get(id).map(|s| self.info(&s))
    }
}

/// `schema` when it fits in `room` (which it then takes from).
fn within(
    room: &mut usize,
    schema: &serde_json::Map<String, serde_json::Value>,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let size = serde_json::to_string(schema).map_or(usize::MAX, |s| s.len());
    *room = room.checked_sub(size)?;
    Some(schema.clone())
}

fn line(s: &Session) -> SessionLine {
    let now = super::container::from_now(0);
    SessionLine {
        session: s.id.clone(),
        state: s.state(),
        image: s.image.clone(),
        engine: s.engine.name.clone(),
        servers: s
            .servers
            .iter()
            .map(|(name, child)| {
                let state = if child.is_ready() {
                    ServerState::Ready
                } else {
                    ServerState::Failed
                };
                (name.clone(), state)
            })
            .collect(),
        tools: s.servers.values().map(|c| c.with_tools(<[_]>::len)).sum(),
        lease_left_secs: s.lease_until.load(Ordering::SeqCst).saturating_sub(now),
        lost: s.stream.lost().map(|l| budget::one_line(&l, LINE_CHARS)),
        owner: None,
    }
}
