//! A server that died at start writing to the session's read-only root
//! (EROFS: "Read-only file system", Python's `[Errno 30]`): the path it
//! tried, as its stderr printed it, and the option that makes it writable.

/// The longest path quoted back.
const MAX_PATH: usize = 512;

/// What to add to the start failure of server `server` when its stderr
/// (`stderr`, its last lines) says a write hit the read-only root.
pub(super) fn read_only_hint(server: &str, stderr: &str) -> Option<String> {
    let line = stderr.lines().rev().find(|l| is_erofs(l))?;
    let tried = path_in(line);
    let dir = tried
        .as_deref()
        .and_then(|p| p.rsplit_once('/'))
        .map(|(parent, _)| parent)
        .filter(|parent| !parent.is_empty())
        .unwrap_or("/DIR");
    let what = match &tried {
        Some(path) => format!("it tried to write `{path}`"),
        None => "it tried to write a file".to_string(),
    };
    Some(format!(
        ": {what} on the session's read-only root file system. Fix: make the directory writable for the session (a tmpfs copy of the image's files there; show_policy's writable_paths gives the size): launch with \"overrides\": {{\"{server}\": {{\"writable_paths\": [\"{dir}\"]}}}}, or label the image io.mcpod.requests={{\"writable_paths\": [\"{dir}\"]}}"
    ))
}

fn is_erofs(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    lower.contains("read-only file system")
        || lower.contains("[errno 30]")
        || line.contains("EROFS")
}

/// The absolute path a line names: quoted (Python's and node's `'/p'`), else
/// the first word that starts with `/` (Go's `open /p: …`, a shell's
/// `cannot create /p: …`). None when it names none, or an unprintable one.
fn path_in(line: &str) -> Option<String> {
    let quoted = ['\'', '"'].iter().find_map(|&q| {
        let start = line.find(&format!("{q}/"))? + 1;
        let len = line[start..].find(q)?;
        Some(&line[start..start + len])
    });
    let word = || {
        let start = line.find('/')?;
        let rest = &line[start..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | ')' | '\'' | '"'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    };
    let path = quoted.or_else(word)?;
    let fine = path.len() > 1
        && path.len() <= MAX_PATH
        && !path.contains('`')
        && !path.chars().any(char::is_control);
    fine.then(|| path.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_read_from_each_runtimes_wording() {
        for (line, path) in [
            (
                "OSError: [Errno 30] Read-only file system: '/usr/lib/python3/dist-packages/mcp_grafana/bin/mcp-grafana'",
                "/usr/lib/python3/dist-packages/mcp_grafana/bin/mcp-grafana",
            ),
            (
                "Error: EROFS: read-only file system, open '/app/node_modules/x/cache.json'",
                "/app/node_modules/x/cache.json",
            ),
            (
                "panic: open /srv/state.db: read-only file system",
                "/srv/state.db",
            ),
            (
                "sh: 1: cannot create /opt/app/pid: Read-only file system",
                "/opt/app/pid",
            ),
        ] {
            let hint = read_only_hint("s", &format!("Traceback\n{line}\n")).expect(line);
            assert!(hint.contains(&format!("tried to write `{path}`")), "{hint}");
            let dir = path.rsplit_once('/').unwrap().0;
            assert!(
                hint.contains(&format!(
                    "\"overrides\": {{\"s\": {{\"writable_paths\": [\"{dir}\"]}}}}"
                )),
                "{hint}"
            );
            assert!(hint.contains("io.mcpod.requests"), "{hint}");
        }
    }

    #[test]
    fn other_failures_and_odd_paths_get_no_path() {
        assert_eq!(read_only_hint("s", "ModuleNotFoundError: x\n"), None);
        let hint = read_only_hint("s", "Read-only file system (os error 30)").expect("erofs");
        assert!(hint.contains("tried to write a file"), "{hint}");
        assert!(hint.contains("[\"/DIR\"]"), "{hint}");
        let long = format!("open /{}: read-only file system", "a".repeat(600));
        assert!(read_only_hint("s", &long).unwrap().contains("a file"));
        let tick = "open '/a`b': read-only file system";
        assert!(read_only_hint("s", tick).unwrap().contains("a file"));
    }
}
