//! A launch by a principal the operator's `--principals` file narrows: at
//! most its `max_sessions` at once (its running sessions and its launches
//! under way, counted under one lock), granted under the operator's policy
//! as its profile narrows it (env names, network, egress, limits, lease).
//! The narrowed policy travels with the launch in `LaunchInput::policy`,
//! which no request can set.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::model::Extensions;

use super::McpodServer;
use crate::session::LaunchInput;

/// Launches under way, per principal.
#[derive(Default)]
pub(super) struct Launching(Mutex<HashMap<String, usize>>);

/// A principal's place for one launch, given back when dropped.
pub(super) struct Place {
    launching: Arc<Launching>,
    principal: String,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut map = self.launching.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.principal);
            }
        }
    }
}

impl McpodServer {
    /// Check and prepare `input` for the caller's profile; the place it
    /// returns is to be held until the launch is claimed or has failed.
    pub(super) fn profiled(
        &self,
        input: &mut LaunchInput,
        extensions: &Extensions,
    ) -> Result<Option<Place>, String> {
        let Some(caller) = super::http::caller(extensions) else {
            return Ok(None);
        };
        let Some(profile) = caller.profile.as_ref() else {
            return Ok(None);
        };
        input.policy = Some(Arc::new(profile.narrow(self.sessions.policy())));
        let Some(max) = profile.max_sessions else {
            return Ok(None);
        };
        let mut map = self.launching.0.lock().unwrap_or_else(|p| p.into_inner());
        let running = self.sessions.running_of(&caller.name);
        let under_way = map.get(&caller.name).copied().unwrap_or(0);
        if running + under_way >= max {
            return Err(format!(
                "`{}` holds {} session(s), the most the operator allows it (--principals: \
                 max_sessions = {max}). Fix: stop one (stop_session) first",
                caller.name,
                running + under_way
            ));
        }
        *map.entry(caller.name.clone()).or_default() += 1;
        Ok(Some(Place {
            launching: self.launching.clone(),
            principal: caller.name.clone(),
        }))
    }
}
