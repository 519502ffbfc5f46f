//! What the agent is told when a child answers one of its requests with an
//! error or with more than mcpod carries.

/// A request failed because the child's answer was over mcpod's limits (`why`).
pub(super) fn too_big(why: &str, what: &str) -> String {
    format!("{why}; {what} failed. Fix: ask for less at once (a smaller range, page or file)")
}

/// The child answered `what` with an error saying `message`.
pub(super) fn rejected(server: &str, what: &str, message: &str) -> String {
    format!("server `{server}` rejected {what}: {message}")
}
