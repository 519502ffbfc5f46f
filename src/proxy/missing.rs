//! A server whose program is not in the image: the message that names it
//! and the way out, for `npx`/`uvx`-style runners the package to provision.

/// Why a server's program did not start, when its exit code says the image
/// has no such program (127: the supervisor found none, or a shell said
/// "command not found"); with the way out for `npx`/`uvx`-style runners.
/// `stderr`: the end of what the child said, which tells a program that is
/// there but cannot load a library (the dynamic loader exits 127 too).
pub(super) fn missing_program(
    command: &[String],
    code: Option<i32>,
    stderr: &str,
) -> Option<String> {
    let program = command.first().map(String::as_str).unwrap_or_default();
    if code != Some(127) {
        return None;
    }
    if stderr.contains("error while loading shared libraries") {
        return Some(
            "a program it runs is in the image but could not load a library it links (its stderr below names both). Fix: provision the package with this mcpod, which adds the libraries a package's programs link to the bases it makes and warns of any it could not find; otherwise name a base that carries the library (--base)"
                .to_string(),
        );
    }
    let fix = match runner_package(command) {
        Some((runner, Some(reference))) => format!(
            "`{runner}` fetches packages when it runs, and a session has no network: provision the package instead, `launch_session {{\"image\": \"{reference}\"}}` (or provision_server {{\"package\": \"{reference}\"}}), which installs it at build time and runs its own program"
        ),
        Some((runner, None)) => format!(
            "`{runner}` fetches packages when it runs, and a session has no network: provision the package instead (launch_session with `image` `npm:NAME@VERSION` or `pypi:NAME==VERSION`), which installs it at build time and runs its own program"
        ),
        None => "name a program the image has (an absolute path, or one on the image's PATH)"
            .to_string(),
    };
    Some(format!(
        "the program `{program}` is not in the image. Fix: {fix}"
    ))
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
    use super::runner_package;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn a_library_the_loader_cannot_find_is_not_a_missing_program() {
        let command = argv("node /app/index.js");
        let said = super::missing_program(
            &command,
            Some(127),
            "/app/dist/azmcp: error while loading shared libraries: librt.so.1: cannot open shared object file: No such file or directory",
        )
        .unwrap();
        assert!(!said.contains("is not in the image"), "{said}");
        assert!(said.contains("could not load a library"), "{said}");
        let missing = super::missing_program(&command, Some(127), "").unwrap();
        assert!(missing.contains("`node` is not in the image"), "{missing}");
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
