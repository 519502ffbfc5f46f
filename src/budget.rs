//! The size budget of every meta-tool's result, in one place.
//!
//! An agent reads each result into its context, so each tool answers with
//! what the agent needs next and leaves the rest one call away:
//! launch_session gives the session, each server's state and its tools with
//! their input schemas (the detail is `list_sessions {"session": ID}`, the
//! stderr is `session_logs`); list_sessions gives a line per session.
//! `tests/budgets.rs` launches real servers, prints each tool's typical
//! result size and holds it to these numbers (JSON bytes of the structured
//! result).

/// launch_session: the session and its servers, besides its tools...
pub const LAUNCH_SESSION: usize = 2048;
/// ... each tool's exported name and first sentence ...
pub const LAUNCH_PER_TOOL: usize = 256;
/// ... and their input schemas (which the agent needs to call them, and
/// which the child decides), up to so many bytes in all: past them a tool
/// comes without its schema, which find_tools gives.
pub const LAUNCH_SCHEMAS: usize = 16 * 1024;
/// list_sessions: per session listed, and the list around them.
pub const LIST_SESSIONS_PER_SESSION: usize = 300;
pub const LIST_SESSIONS_BASE: usize = 64;
/// list_sessions with `session`: one session's whole detail.
pub const SESSION_DETAIL: usize = 8 * 1024;
/// build_image, a cache hit of a one-server image.
pub const BUILD_IMAGE: usize = 1536;
/// inspect_labels of a one-server image.
pub const INSPECT_LABELS: usize = 2048;
/// provision_server, a cache hit of a package (its lock digest, base, spec).
pub const PROVISION_SERVER: usize = 3 * 1024;
/// list_bases: every base and what can be made.
pub const LIST_BASES: usize = 4 * 1024;
/// show_policy: the operator's whole policy.
pub const SHOW_POLICY: usize = 6 * 1024;
/// stop_session.
pub const STOP_SESSION: usize = 128;
/// session_logs of a quiet session (the default tail is 100 lines a server).
pub const SESSION_LOGS: usize = 4 * 1024;
/// find_tools, per tool found, besides the tool's input schema and its
/// description (both the child's, and what a search is for).
pub const FIND_TOOLS_PER_TOOL: usize = 400;

/// A tool's description in launch_session: its first sentence, at most so
/// many characters.
pub const DESCRIPTION_CHARS: usize = 160;
/// A line of a result that quotes a child or an engine (a failed server's
/// reason, a warning, why a session was lost): at most so many characters.
pub const LINE_CHARS: usize = 240;
/// Warnings launch_session quotes; the rest are in list_sessions' detail.
pub const LAUNCH_WARNINGS: usize = 4;

/// The first sentence of `text` (up to `. `, `! `, `? ` or a line break) on
/// one line, at most `max` characters (cut with `…`).
pub fn first_sentence(text: &str, max: usize) -> String {
    let text = text.trim();
    let mut end = text.len();
    for (i, c) in text.char_indices() {
        if c == '\n' {
            end = i;
            break;
        }
        if matches!(c, '.' | '!' | '?') && text[i + 1..].starts_with(char::is_whitespace) {
            end = i + 1;
            break;
        }
    }
    one_line(&text[..end], max)
}

/// `text` on one line (runs of whitespace made one space), at most `max`
/// characters (cut with `…`).
pub fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sentence_stops_at_the_sentence_or_the_bound() {
        assert_eq!(
            first_sentence("Adds two numbers. Returns their sum.", 160),
            "Adds two numbers."
        );
        assert_eq!(first_sentence("v1.2 is here\nmore", 160), "v1.2 is here");
        assert_eq!(first_sentence("  no  end  ", 160), "no end");
        assert_eq!(first_sentence(&"é".repeat(300), 10).chars().count(), 10);
        assert!(first_sentence(&"x".repeat(300), 10).ends_with('…'));
        assert_eq!(one_line("a\n  b\tc", 240), "a b c");
    }
}
