//! A server that died at start writing where it may not: to the session's
//! read-only root (EROFS: "Read-only file system", Python's `[Errno 30]`),
//! with the path it tried and the option that makes it writable; or denied
//! (EACCES) on a mount, with what the mount and the operator's roots allow.

use super::{Context, Diagnosis, Facts, line_with};

/// The longest path quoted back.
const MAX_PATH: usize = 512;

/// A write that hit the read-only root: the path and `writable_paths`.
pub(super) fn read_only(facts: &Facts) -> Option<Diagnosis> {
    let server = facts.server;
    let line = facts.stderr.lines().rev().find(|l| is_erofs(l))?;
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
    Some(Diagnosis {
        cause: format!("{what} on the session's read-only root file system"),
        fix: format!(
            "make the directory writable for the session (a tmpfs copy of the image's files there; show_policy's writable_paths gives the size): launch with \"overrides\": {{\"{server}\": {{\"writable_paths\": [\"{dir}\"]}}}}, or label the image io.mcpod.requests={{\"writable_paths\": [\"{dir}\"]}}"
        ),
    })
}

/// What runtimes say of a write the file system's permissions refused.
const DENIED: &[&str] = &[
    "EACCES",
    "Permission denied",
    "[Errno 13]",
    "permission denied",
];

/// A write refused by a file's permissions: on a mount, what the mount
/// and the operator's root allow; elsewhere, `writable_paths`.
pub(super) fn denied(facts: &Facts, ctx: &Context) -> Option<Diagnosis> {
    let line = line_with(facts.stderr, DENIED)?;
    let path = path_in(line);
    let at = path.as_deref().unwrap_or("a path");
    let mount = path.as_deref().and_then(|p| {
        ctx.mounts.iter().find(|m| {
            p == m.target || p.starts_with(&format!("{}/", m.target.trim_end_matches('/')))
        })
    });
    let Some(mount) = mount else {
        return Some(Diagnosis {
            cause: format!("it was denied access to `{at}` (permission denied)"),
            fix: match &path {
                Some(p) if !p.starts_with("/tmp") => format!(
                    "if it writes there, make the directory writable for the session: launch with \"overrides\": {{\"{}\": {{\"writable_paths\": [\"{}\"]}}}}; a server runs as an unprivileged user, so a file only root may read in the image stays unreadable (correct the image)",
                    facts.server,
                    p.rsplit_once('/').map(|(d, _)| d).filter(|d| !d.is_empty()).unwrap_or(p)
                ),
                _ => "a server runs as an unprivileged user: give it a path it owns (under /tmp, or an image path made writable with `overrides.SERVER.writable_paths`)".to_string(),
            },
        });
    };
    let root = ctx
        .mount_roots
        .iter()
        .filter(|r| std::path::Path::new(&mount.source).starts_with(&r.path))
        .max_by_key(|r| r.path.as_os_str().len());
    let cause = format!(
        "it was denied access to `{at}` on the mount of `{}` at `{}`",
        mount.source, mount.target
    );
    let fix = match (mount.read_only, root) {
        (true, Some(r)) if r.writable => format!(
            "the mount is read-only: launch with `\"mounts\": [{{\"source\": \"{}\", \"target\": \"{}\", \"read_only\": false}}]` (show_policy's mount_roots allows `{}` writable)",
            mount.source,
            mount.target,
            r.path.display()
        ),
        (true, _) => format!(
            "the mount is read-only and the operator allows its root read-only (show_policy's mount_roots): keep the server's writes elsewhere (a path under /tmp), or the operator must allow the root writable (`--allow-mount {}:rw`)",
            root.map(|r| r.path.display().to_string())
                .unwrap_or_else(|| mount.source.clone())
        ),
        (false, _) => format!(
            "the mount is writable but the host directory's owner or mode does not let the session's user in; the operator must act: make `{}` writable for the session's user (show_policy says how writable mounts map users on this host)",
            mount.source
        ),
    };
    Some(Diagnosis { cause, fix })
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
    use super::super::{Context, Facts};
    use super::*;

    fn facts(stderr: &str) -> Facts<'_> {
        Facts {
            server: "s",
            command: &[],
            exit_code: Some(1),
            reason: "",
            stderr,
            handshake_started: true,
        }
    }

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
            let stderr = format!("Traceback\n{line}\n");
            let said = read_only(&facts(&stderr)).expect(line).said();
            assert!(said.contains(&format!("tried to write `{path}`")), "{said}");
            let dir = path.rsplit_once('/').unwrap().0;
            assert!(
                said.contains(&format!(
                    "\"overrides\": {{\"s\": {{\"writable_paths\": [\"{dir}\"]}}}}"
                )),
                "{said}"
            );
            assert!(said.contains("io.mcpod.requests"), "{said}");
        }
    }

    #[test]
    fn other_failures_and_odd_paths_get_no_path() {
        assert_eq!(read_only(&facts("ModuleNotFoundError: x\n")), None);
        let said = read_only(&facts("Read-only file system (os error 30)"))
            .expect("erofs")
            .said();
        assert!(said.contains("tried to write a file"), "{said}");
        assert!(said.contains("[\"/DIR\"]"), "{said}");
        let long = format!("open /{}: read-only file system", "a".repeat(600));
        assert!(read_only(&facts(&long)).unwrap().cause.contains("a file"));
        let tick = "open '/a`b': read-only file system";
        assert!(read_only(&facts(tick)).unwrap().cause.contains("a file"));
    }

    #[test]
    fn a_denied_write_on_a_mount_says_what_the_mount_and_root_allow() {
        let stderr = "sqlite3.OperationalError: unable to open\nPermissionError: [Errno 13] Permission denied: '/data/db.sqlite'";
        let mut ctx = Context {
            mounts: vec![crate::session::policy::GrantedMount {
                source: "/srv/work".into(),
                target: "/data".into(),
                read_only: true,
                written_as: None,
            }],
            mount_roots: vec![crate::session::policy::MountRoot {
                path: "/srv".into(),
                writable: true,
            }],
            ..Default::default()
        };
        let said = denied(&facts(stderr), &ctx).expect("denied").said();
        assert!(
            said.contains("`/data/db.sqlite` on the mount of `/srv/work`"),
            "{said}"
        );
        assert!(said.contains("\"read_only\": false"), "{said}");
        ctx.mount_roots[0].writable = false;
        let said = denied(&facts(stderr), &ctx).unwrap().said();
        assert!(
            said.contains("operator must allow") && said.contains("/srv:rw"),
            "{said}"
        );
        ctx.mounts[0].read_only = false;
        let said = denied(&facts(stderr), &ctx).unwrap().said();
        assert!(said.contains("the operator must act"), "{said}");
        let elsewhere = "Error: EACCES: permission denied, mkdir '/app/cache'";
        let said = denied(&facts(elsewhere), &Context::default())
            .unwrap()
            .said();
        assert!(said.contains("\"writable_paths\": [\"/app\"]"), "{said}");
    }
}
