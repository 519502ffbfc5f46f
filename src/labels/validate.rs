//! The rules a server name, a server spec and a request must satisfy. Each check returns a
//! [`Problem`] naming the JSON path it concerns; the caller turns it into a label error (the
//! value came from an image) or an input error (it came from the agent).

use std::collections::BTreeMap;

use super::env::is_env_name;
use super::json::{self, index_path, key_path, quote};
use super::spec::{ServerSpec, Servers};
use super::{CALL_TIMEOUT_SECS, MAX_SERVER_NAME_LEN, MAX_SERVERS};
use crate::{Error, Result};

/// The range of `memory_mb` in a request (1 MiB to 1 TiB).
pub(crate) const MEMORY_MB: std::ops::RangeInclusive<u32> = 1..=1_048_576;
/// The range of a CPU request, in thousandths of a CPU.
pub(crate) const MILLICPUS: std::ops::RangeInclusive<u32> = 1..=1_024_000;
/// The range of `pids` in a request.
pub(crate) const PIDS: std::ops::RangeInclusive<u32> = 1..=1_000_000;
/// The longest path accepted.
const MAX_PATH_LEN: usize = 4096;

/// What is wrong, where (a JSON path into a label value or into the agent's `servers`), and
/// what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub path: String,
    pub reason: String,
    pub fix: String,
}

impl Problem {
    pub(crate) fn new(
        path: impl Into<String>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Problem {
            path: path.into(),
            reason: reason.into(),
            fix: fix.into(),
        }
    }

    /// `expected X, found Y` at `path`.
    pub(crate) fn wrong_type(path: &str, expected: &str, found: &serde_json::Value) -> Self {
        Problem::new(
            path,
            format!("expected {expected}, found {}", json::type_name(found)),
            format!("make `{path}` {expected}"),
        )
    }

    /// The problem as found in the value of label `key`.
    pub(crate) fn in_label(self, key: &str) -> Error {
        Error::label(key, self.path, self.reason, self.fix)
    }

    /// The problem as found in the `servers` an agent passed in.
    pub(crate) fn in_input(self) -> Error {
        Error::invalid("servers", self.path, self.reason, self.fix)
    }
}

/// Where each field of one spec sits, for messages (the short and the object form, and the
/// outrig spelling, put them in different places).
#[derive(Clone, Debug)]
pub(crate) struct SpecPaths {
    pub command: String,
    pub env: String,
    pub workdir: String,
    pub call_timeout: String,
    /// The name of the timeout field (`call_timeout_secs` or outrig's `call-timeout-secs`).
    pub call_timeout_field: &'static str,
}

impl SpecPaths {
    /// The object form of `io.mcpod.servers` for the server at `path`.
    pub(crate) fn object(path: &str) -> Self {
        SpecPaths {
            command: key_path(path, "command"),
            env: key_path(path, "env"),
            workdir: key_path(path, "workdir"),
            call_timeout: key_path(path, "call_timeout_secs"),
            call_timeout_field: "call_timeout_secs",
        }
    }
}

/// True when `name` matches `^[a-zA-Z][a-zA-Z0-9_-]{0,31}$`.
pub fn is_server_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= MAX_SERVER_NAME_LEN
}

pub(crate) fn check_server_count(count: usize, path: &str) -> Result<(), Problem> {
    if count > MAX_SERVERS {
        return Err(Problem::new(
            path,
            format!("{count} servers are declared, more than the limit of {MAX_SERVERS}"),
            format!("declare at most {MAX_SERVERS} servers per image, or split them over images"),
        ));
    }
    Ok(())
}

pub(crate) fn check_server_name(name: &str, path: &str) -> Result<(), Problem> {
    if is_server_name(name) {
        return Ok(());
    }
    let why = if name.is_empty() {
        "is empty".to_string()
    } else if name.len() > MAX_SERVER_NAME_LEN {
        format!(
            "is {} bytes long, more than {MAX_SERVER_NAME_LEN}",
            name.len()
        )
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        "must start with an ASCII letter".to_string()
    } else {
        "may contain only ASCII letters, digits, `_` and `-`".to_string()
    };
    Err(Problem::new(
        path,
        format!("server name `{}` {why}", quote(name)),
        format!(
            "rename the server to match {} (a letter, then up to {} letters, digits, `_` or `-`)",
            super::spec::SERVER_NAME_PATTERN,
            MAX_SERVER_NAME_LEN - 1
        ),
    ))
}

/// `command_path` is the path of the argv array itself.
pub(crate) fn check_command(command: &[String], command_path: &str) -> Result<(), Problem> {
    let Some(program) = command.first() else {
        return Err(Problem::new(
            command_path,
            "the command is empty",
            "give the argv of the server process, e.g. [\"mcp-server-time\"]",
        ));
    };
    if program.trim().is_empty() {
        return Err(Problem::new(
            index_path(command_path, 0),
            "the program name (argv[0]) is empty",
            "put the program to run first, e.g. [\"mcp-server-time\", \"--local-timezone\", \"UTC\"]",
        ));
    }
    for (i, arg) in command.iter().enumerate() {
        if arg.contains('\0') {
            return Err(Problem::new(
                index_path(command_path, i),
                "the argument contains a NUL character",
                "remove the NUL character; a process argument cannot hold one",
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_env(env: &BTreeMap<String, String>, env_path: &str) -> Result<(), Problem> {
    for (key, value) in env {
        let path = key_path(env_path, key);
        if !is_env_name(key) {
            return Err(Problem::new(
                path,
                format!("`{}` is not a valid environment variable name", quote(key)),
                "use a name matching ^[A-Za-z_][A-Za-z0-9_]*$, e.g. API_TOKEN",
            ));
        }
        if value.contains('\0') {
            return Err(Problem::new(
                path,
                "the value contains a NUL character",
                "remove the NUL character; an environment value cannot hold one",
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_workdir(workdir: Option<&str>, path: &str) -> Result<(), Problem> {
    let Some(dir) = workdir else {
        return Ok(());
    };
    if !dir.starts_with('/') {
        return Err(Problem::new(
            path,
            format!("workdir `{}` is not an absolute path", quote(dir)),
            "give an absolute path inside the container, e.g. /workspace",
        ));
    }
    check_path_chars(dir, path)
}

/// `field` is the name the field has where the value came from (`call_timeout_secs`, or
/// outrig's `call-timeout-secs`).
pub(crate) fn check_call_timeout(
    secs: Option<u32>,
    field: &str,
    path: &str,
) -> Result<(), Problem> {
    match secs {
        Some(s) => check_range(u64::from(s), &CALL_TIMEOUT_SECS, field, path).map(drop),
        None => Ok(()),
    }
}

/// Everything about one spec except its name.
pub(crate) fn check_spec(spec: &ServerSpec, paths: &SpecPaths) -> Result<(), Problem> {
    check_command(&spec.command, &paths.command)?;
    check_env(&spec.env, &paths.env)?;
    check_workdir(spec.workdir.as_deref(), &paths.workdir)?;
    check_call_timeout(
        spec.call_timeout_secs,
        paths.call_timeout_field,
        &paths.call_timeout,
    )
}

/// Validate servers an agent passes in (for `build_image`). Paths in messages are those of
/// the object form, e.g. `$.fs.command[0]`.
pub fn validate_servers(servers: &Servers) -> Result<()> {
    check_server_count(servers.len(), json::ROOT).map_err(Problem::in_input)?;
    for (name, spec) in servers {
        let path = key_path(json::ROOT, name);
        check_server_name(name, &path).map_err(Problem::in_input)?;
        check_spec(spec, &SpecPaths::object(&path)).map_err(Problem::in_input)?;
    }
    Ok(())
}

/// A writable path an agent passes in (a launch's `overrides.SERVER.writable_paths[i]`,
/// named by `field`): the rules of the label's `writable_paths`, as an input error.
pub fn check_writable_input(field: &str, p: &str) -> Result<()> {
    check_writable_path(p, field).map_err(|e| Error::invalid(field, p, e.reason, e.fix))
}

/// A path a session may be asked to make writable.
pub(crate) fn check_writable_path(p: &str, path: &str) -> Result<(), Problem> {
    let fix = "give an absolute directory such as /data or /home/app/.cache";
    if !p.starts_with('/') {
        return Err(Problem::new(
            path,
            format!("writable path `{}` is not absolute", quote(p)),
            fix,
        ));
    }
    if p.trim_end_matches('/').is_empty() {
        return Err(Problem::new(
            path,
            "the root `/` cannot be requested writable",
            "list the directories that need to be writable instead",
        ));
    }
    if p.split('/').any(|c| c == "." || c == "..") {
        return Err(Problem::new(
            path,
            format!("writable path `{}` has a `.` or `..` component", quote(p)),
            fix,
        ));
    }
    if let Some(c) = p.chars().find(|c| matches!(c, ':' | ',')) {
        return Err(Problem::new(
            path,
            format!(
                "writable path `{}` contains `{c}`, which mount options would misread",
                quote(p)
            ),
            "choose a directory whose path has no `:` or `,`",
        ));
    }
    if let Some(top) = reserved_top(p) {
        return Err(Problem::new(
            path,
            format!(
                "writable path `{}` is under `{top}`, which {}",
                quote(p),
                if top == RESERVED_TOPS[0] {
                    "holds mcpod's supervisor"
                } else {
                    "the container runtime provides (kernel file systems, devices, or the runtime's own tmpfs)"
                }
            ),
            "name the directory of the image the server writes to, such as /usr/lib/python3/dist-packages/PKG/bin (/tmp is always writable)",
        ));
    }
    check_path_chars(p, path)
}

/// Top-level directories no writable path may be at or under: mcpod's
/// supervisor (`/.mcpod`, first), and what the runtime mounts itself.
pub const RESERVED_TOPS: &[&str] = &["/.mcpod", "/proc", "/sys", "/dev", "/run"];

/// The reserved directory `p` is at or under, if any (`//proc` and `/proc/`
/// included).
fn reserved_top(p: &str) -> Option<&'static str> {
    let first = p.split('/').find(|c| !c.is_empty())?;
    RESERVED_TOPS
        .iter()
        .copied()
        .find(|top| top.trim_start_matches('/') == first)
}

fn check_path_chars(p: &str, path: &str) -> Result<(), Problem> {
    if p.len() > MAX_PATH_LEN {
        return Err(Problem::new(
            path,
            format!(
                "the path is {} bytes long, more than {MAX_PATH_LEN}",
                p.len()
            ),
            "use a shorter path",
        ));
    }
    if p.chars().any(char::is_control) {
        return Err(Problem::new(
            path,
            format!("path `{}` contains a control character", quote(p)),
            "remove control characters (NUL, newline, …) from the path",
        ));
    }
    Ok(())
}

/// `value` within `range`, or a problem saying so in `unit`.
pub(crate) fn check_range(
    value: u64,
    range: &std::ops::RangeInclusive<u32>,
    what: &str,
    path: &str,
) -> Result<u32, Problem> {
    match u32::try_from(value) {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(Problem::new(
            path,
            format!(
                "{what} {value} is out of range {}..={}",
                range.start(),
                range.end()
            ),
            format!(
                "give {what} between {} and {}, or leave it out",
                range.start(),
                range.end()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        for ok in ["a", "fs", "A9", "my-server_2", &"a".repeat(32)] {
            assert!(is_server_name(ok), "{ok}");
        }
        for bad in [
            "",
            "9x",
            "_x",
            "-x",
            "a b",
            "a.b",
            "é",
            "a/b",
            &"a".repeat(33),
        ] {
            assert!(!is_server_name(bad), "{bad}");
        }
    }

    #[test]
    fn server_name_messages_say_why() {
        let p = check_server_name("9x", r#"$["9x"]"#).unwrap_err();
        assert_eq!(p.path, r#"$["9x"]"#);
        assert!(
            p.reason.contains("`9x` must start with an ASCII letter"),
            "{p:?}"
        );
        let p = check_server_name("a.b", "$").unwrap_err();
        assert!(p.reason.contains("only ASCII letters, digits"), "{p:?}");
        let p = check_server_name(&"a".repeat(33), "$").unwrap_err();
        assert!(p.reason.contains("33 bytes long, more than 32"), "{p:?}");
        let p = check_server_name("", "$").unwrap_err();
        assert!(p.reason.contains("is empty"), "{p:?}");
    }

    #[test]
    fn commands() {
        assert!(check_command(&["x".into()], "$.a").is_ok());
        let p = check_command(&[], "$.a.command").unwrap_err();
        assert_eq!(
            (p.path.as_str(), p.reason.as_str()),
            ("$.a.command", "the command is empty")
        );
        let p = check_command(&[" ".into(), "x".into()], "$.a").unwrap_err();
        assert_eq!(p.path, "$.a[0]");
        assert!(p.reason.contains("argv[0]"));
        let p = check_command(&["x".into(), "a\0b".into()], "$.a").unwrap_err();
        assert_eq!(p.path, "$.a[1]");
        assert!(p.reason.contains("NUL"));
    }

    #[test]
    fn writable_paths() {
        assert!(
            mcpod_supervisor::protocol::PATH_IN_CONTAINER
                .starts_with(&format!("{}/", RESERVED_TOPS[0])),
            "the supervisor's directory is the first reserved one"
        );
        assert!(check_writable_path("/tmp/cache", "$").is_ok());
        assert!(check_writable_path("/runner", "$").is_ok());
        assert!(check_writable_path("/data", "$").is_ok());
        assert!(check_writable_path("/home/app/.cache/", "$").is_ok());
        for (bad, says) in [
            ("data", "not absolute"),
            ("/", "root"),
            ("//", "root"),
            ("/a/../etc", "`..`"),
            ("/a/./b", "`.`"),
            ("/tmp:exec", "contains `:`"),
            ("/tmp,size=1g", "contains `,`"),
            ("/a\nb", "control character"),
            ("/proc", "under `/proc`"),
            ("/proc/self/root", "under `/proc`"),
            ("//sys/fs", "under `/sys`"),
            ("/dev/", "under `/dev`"),
            ("/run/secrets", "under `/run`"),
            ("/.mcpod", "supervisor"),
            ("/.mcpod/x", "supervisor"),
        ] {
            let p = check_writable_path(bad, "$.writable_paths[0]").unwrap_err();
            assert!(p.reason.contains(says), "{bad}: {p:?}");
            assert_eq!(p.path, "$.writable_paths[0]");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(check_range(5, &PIDS, "pids", "$.pids"), Ok(5));
        let p = check_range(0, &PIDS, "pids", "$.pids").unwrap_err();
        assert!(
            p.reason.contains("pids 0 is out of range 1..=1000000"),
            "{p:?}"
        );
        assert!(check_range(u64::MAX, &MEMORY_MB, "memory_mb", "$").is_err());
        let p = check_call_timeout(Some(3601), "call_timeout_secs", "$.x.call_timeout_secs")
            .unwrap_err();
        assert!(
            p.reason
                .contains("call_timeout_secs 3601 is out of range 1..=3600"),
            "{p:?}"
        );
        assert!(check_call_timeout(Some(3600), "t", "$").is_ok());
        assert!(check_call_timeout(Some(1), "t", "$").is_ok());
        assert!(check_call_timeout(Some(0), "t", "$").is_err());
        assert!(check_call_timeout(None, "t", "$").is_ok());
    }
}
