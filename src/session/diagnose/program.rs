//! A server whose program is not in the image (exit 127, from the
//! supervisor or a shell's "not found"), with the way out for
//! `npx`/`uvx`-style runners: the package to provision; and a program that
//! is there but cannot load a library it links.

use super::{Context, Diagnosis, Facts, line_with};

/// What the dynamic loader (and Python's or node's loading of an extension)
/// says of a library it cannot find.
const NO_LIBRARY: &[&str] = &[
    "error while loading shared libraries",
    "cannot open shared object file",
];

/// The program is not in the image, or a library it links is not.
pub(super) fn missing(facts: &Facts, ctx: &Context) -> Option<Diagnosis> {
    if let Some(line) = line_with(facts.stderr, NO_LIBRARY) {
        return Some(library(line, ctx));
    }
    let said_not_found =
        facts.stderr.contains("not found") || facts.stderr.contains("No such file or directory");
    if facts.exit_code != Some(127) || (facts.handshake_started && !said_not_found) {
        return None;
    }
    let program = facts
        .command
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let fix = match runner_package(facts.command) {
        Some((runner, Some(reference))) => format!(
            "`{runner}` fetches packages when it runs, and a session has no network: provision the package instead, `launch_session {{\"image\": \"{reference}\"}}` (or provision_server {{\"package\": \"{reference}\"}}), which installs it at build time and runs its own program"
        ),
        Some((runner, None)) => format!(
            "`{runner}` fetches packages when it runs, and a session has no network: provision the package instead (launch_session with `image` `npm:NAME@VERSION` or `pypi:NAME==VERSION`), which installs it at build time and runs its own program"
        ),
        None => format!(
            "name a program the image has (an absolute path, or one on the image's PATH): launch with `\"overrides\": {{\"{}\": {{\"command\": [...]}}}}`, or provision the server's package (`image`: `npm:NAME@VERSION` or `pypi:NAME==VERSION`)",
            facts.server
        ),
    };
    Some(Diagnosis {
        cause: format!("the program `{program}` is not in the image"),
        fix,
    })
}

/// A program that could not load a library: the library as the loader
/// named it, and how to get it into the image.
fn library(line: &str, ctx: &Context) -> Diagnosis {
    let lib = line
        .split([' ', ':', '\'', '"'])
        .find(|w| w.contains(".so") && !w.contains('/') && w.len() <= 128)
        .filter(|w| {
            w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
        });
    let named = lib.map(|l| format!(" `{l}`")).unwrap_or_default();
    let stem = lib.and_then(|l| l.split(".so").next()).unwrap_or("libNAME");
    let fix = match ctx.package() {
        Some((package, _)) => format!(
            "provision it again with the Debian package that carries{named}: `launch_session {{\"provision\": {{\"package\": \"{package}\", \"system_packages\": [\"DEBIAN-PACKAGE\"]}}}}` (Debian names it after the library, e.g. `{stem}…`; only packages the operator allows with --allow-system-package, which show_policy lists; if none fits, the operator must allow it)",
        ),
        None => "provision the package with this mcpod (`image`: `npm:NAME@VERSION` or `pypi:NAME==VERSION`), which adds the libraries a package's programs link to the bases it makes and warns of any it could not find, naming more with `system_packages`; otherwise name a base that carries the library (--base)".to_string(),
    };
    Diagnosis {
        cause: format!(
            "a program it runs is in the image but could not load the library{named} it links"
        ),
        fix,
    }
}

/// For an `npx`/`uvx`-style command: the runner, and the package reference
/// it would have fetched (`npm:PKG`, `pypi:PKG`), when it names one.
fn runner_package(command: &[String]) -> Option<(&str, Option<String>)> {
    let runner = std::path::Path::new(command.first()?)
        .file_name()?
        .to_str()?;
    let registry = match runner {
        "npx" | "bunx" | "pnpx" => "npm",
        "uvx" | "pipx" => "pypi",
        _ => return None,
    };
    let mut args = command[1..].iter();
    let mut package = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--from" | "--package" | "-p" => {
                package = args.next().cloned();
                break;
            }
            a if a.starts_with('-') => continue,
            a => {
                package = Some(a.to_string());
                break;
            }
        }
    }
    let reference = package
        .map(|p| format!("{registry}:{p}"))
        .filter(|r| crate::provision::PackageRef::parse("command", r).is_ok());
    Some((runner, reference))
}

#[cfg(test)]
mod tests {
    use super::super::{Context, Facts};
    use super::runner_package;

    fn facts<'a>(command: &'a [String], code: Option<i32>, stderr: &'a str) -> Facts<'a> {
        Facts {
            server: "s",
            command,
            exit_code: code,
            reason: "",
            stderr,
            handshake_started: true,
        }
    }

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn a_library_the_loader_cannot_find_is_not_a_missing_program() {
        let command = argv("node /app/index.js");
        let ctx = Context::default();
        let said = super::missing(
            &facts(
                &command,
                Some(127),
                "/app/dist/azmcp: error while loading shared libraries: librt.so.1: cannot open shared object file: No such file or directory",
            ),
            &ctx,
        )
        .unwrap();
        assert!(!said.cause.contains("is not in the image"), "{said:?}");
        assert!(
            said.cause
                .contains("could not load the library `librt.so.1`"),
            "{said:?}"
        );
        assert!(said.fix.contains("system_packages"), "{said:?}");
        let mut started = facts(&command, Some(127), "");
        started.handshake_started = false;
        let missing = super::missing(&started, &ctx).unwrap();
        assert!(
            missing.cause.contains("`node` is not in the image"),
            "{missing:?}"
        );
        // 127 from a server that ran and said nothing of a program: not this.
        assert_eq!(
            super::missing(&facts(&command, Some(127), "boom"), &ctx),
            None
        );
    }

    #[test]
    fn an_npx_or_uvx_command_names_the_package_to_provision() {
        assert_eq!(
            runner_package(&argv(
                "npx -y @modelcontextprotocol/server-memory@2026.8.31"
            )),
            Some((
                "npx",
                Some("npm:@modelcontextprotocol/server-memory@2026.8.31".into())
            ))
        );
        assert_eq!(
            runner_package(&argv(
                "/usr/bin/uvx mcp-server-time==2026.10.19 --local-timezone UTC"
            )),
            Some(("uvx", Some("pypi:mcp-server-time==2026.10.19".into())))
        );
        assert_eq!(
            runner_package(&argv("uvx --from mcp-server-git mcp-server-git")),
            Some(("uvx", Some("pypi:mcp-server-git".into())))
        );
        assert_eq!(
            runner_package(&argv("npx -y ../../etc")),
            Some(("npx", None))
        );
        assert_eq!(runner_package(&argv("node /app/x.js")), None);
    }
}
