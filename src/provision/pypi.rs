//! PyPI packages: resolve with pip for the base's Python and platform, wheels
//! only (no sdist is built, so no package code runs on the host), into a lock
//! of exact versions with the sha256 of each wheel; install the lock with
//! `--require-hashes` into `ctx/site`; find the program among the package's
//! console scripts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::bases::Base;
use super::build::sdist;
use super::pip::{pinned_pip_for, target};
use super::reference::{PackageRef, Pin, normalize_pypi};
use super::{Found, Progressed};
use crate::engine::process::{Invocation, tails};
use crate::engine::runtime;
use crate::{Error, Result};

/// Where the staged `site/` sits in the image (on PYTHONPATH).
pub const SITE: &str = "/opt/mcp/site";

/// Resolve in `work` for `base`: the lock (requirements with hashes, then
/// the constraints) and the exact version chosen.
pub async fn resolve(
    package: &PackageRef,
    pins: &[Pin],
    base: &Base,
    work: &Path,
    as_of: Option<(&Path, &str)>,
    progress: &Progressed,
    cancel: CancellationToken,
) -> Result<(Vec<u8>, String)> {
    let request = format!(
        "{}{}\n",
        package.name,
        package.spec.as_deref().unwrap_or_default()
    );
    let constraints: String = pins
        .iter()
        .map(|p| format!("{}{}\n", p.name, p.spec))
        .collect();
    let requirements = work.join("requirements.in");
    let constraints_file = work.join("constraints.txt");
    super::write(&requirements, request.as_bytes())?;
    super::write(&constraints_file, constraints.as_bytes())?;
    let report = work.join("report.json");
    let mut args = dry_run_args(work, &report, requirements, constraints_file);
    args.extend(target(base)?);
    // As of a time: the pinned pip that knows --uploaded-prior-to, run from its wheel.
    let wheel = match as_of {
        Some((wheel, cutoff)) => {
            args.push(super::as_of::pip_flag(cutoff));
            Some(wheel.to_path_buf())
        }
        None => pinned_pip_for(base, cancel.clone()).await?,
    };
    // A dependency with no wheel: its sdist built in a container, then again.
    let mut built = sdist::Wheels::new(work, base)?;
    loop {
        let mut with = args.clone();
        with.extend(built.args());
        let lines = Some(progress.lines("pip"));
        let Err(e) = runtime::pip_from(wheel.as_deref(), with, lines, cancel.clone()).await else {
            break;
        };
        let cutoff = as_of.map(|(_, c)| c);
        if !built.add(&e, base, cutoff, progress, &cancel).await? {
            return Err(explain(package, base, e));
        }
    }
    let (rows, sdists, version) = read_report(&report, package, &built)?;
    let lock: String = rows.concat();
    let sdists = sdist::lock_rows(&sdists);
    let mut files = vec![
        ("requirements.txt", lock.as_bytes()),
        ("constraints.txt", constraints.as_bytes()),
    ];
    // Only when there are some: the locks of wheels only stay as they were.
    if !sdists.is_empty() {
        files.push((sdist::LOCK_FILE, sdists.as_bytes()));
    }
    Ok((super::lock_bytes(&files), version))
}

/// pip's arguments for a resolution that installs nothing: `install
/// --dry-run` of `requirements` under `constraints`, its report written to
/// `report` (the platform's flags are added after).
fn dry_run_args(
    work: &Path,
    report: &Path,
    requirements: PathBuf,
    constraints: PathBuf,
) -> Vec<OsString> {
    vec![
        "install".into(),
        "--quiet".into(),
        "--dry-run".into(),
        "--ignore-installed".into(),
        "--no-warn-conflicts".into(),
        // pip takes --platform only with --target; nothing is installed (--dry-run).
        "--target".into(),
        work.join("unused").into(),
        "--report".into(),
        report.to_path_buf().into(),
        "-r".into(),
        requirements.into(),
        "-c".into(),
        constraints.into(),
    ]
}

/// Read pip's report of a resolution: the lock's rows (`name==version
/// --hash=sha256:…`, sorted), the sdists built for it, and the version of
/// `package` chosen. An entry without a plain name, version or sha256 is
/// refused.
fn read_report(
    report: &Path,
    package: &PackageRef,
    built: &sdist::Wheels,
) -> Result<(Vec<String>, Vec<sdist::Sdist>, String)> {
    let report: serde_json::Value =
        serde_json::from_slice(&super::read_small(report)?).map_err(|e| {
            Error::UnexpectedOutput {
                command: "pip install --dry-run --report".into(),
                reason: e.to_string(),
            }
        })?;
    let mut rows = Vec::new();
    let mut sdists = Vec::new();
    let mut version = None;
    let wanted = package.normalized_name();
    for item in report["install"].as_array().into_iter().flatten() {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let v = item["metadata"]["version"].as_str().unwrap_or_default();
        if let Some(sdist) = built.get(name).filter(|s| s.version == v) {
            if normalize_pypi(name) == wanted {
                version = Some(v.to_string());
            }
            sdists.push(sdist.clone());
            continue;
        }
        let sha = item["download_info"]["archive_info"]["hashes"]["sha256"]
            .as_str()
            .unwrap_or_default();
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+!".contains(&b))
        };
        if !ok(name) || !ok(v) || sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::UnexpectedOutput {
                command: "pip install --dry-run --report".into(),
                reason: format!("an entry without a name, version or sha256: {name} {v}"),
            });
        }
        if normalize_pypi(name) == wanted {
            version = Some(v.to_string());
        }
        rows.push(format!(
            "{}=={v} --hash=sha256:{sha}\n",
            normalize_pypi(name)
        ));
    }
    rows.sort();
    let version = version.ok_or_else(|| Error::UnexpectedOutput {
        command: "pip install --dry-run --report".into(),
        reason: format!("the resolution does not contain {}", package.name),
    })?;
    Ok((rows, sdists, version))
}

fn explain(package: &PackageRef, base: &Base, e: Error) -> Error {
    match e {
        Error::CommandFailed {
            command,
            status,
            stderr_tail,
            ..
        } => {
            let hint = if stderr_tail.contains("No matching distribution")
                || stderr_tail.contains("Could not find a version")
            {
                format!(
                    "\nFix: no wheel of `{package}` (or of a dependency) fits CPython {} on manylinux x86_64 (glibc {}). mcpod resolves wheels only on the host, so that no package's build code runs there, and builds a dependency's sdist in a build container only when pip names it as missing and the index has one; check the name and version (`pip index versions {}`), or pin a dependency that has wheels",
                    base.python_minor().unwrap_or_default(),
                    base.glibc.as_deref().unwrap_or("?"),
                    package.normalized_name()
                )
            } else if stderr_tail.contains("ResolutionImpossible")
                || stderr_tail.contains("conflict")
            {
                "\nFix: the pins conflict with what the package requires; loosen or drop them"
                    .to_string()
            } else {
                String::new()
            };
            Error::CommandFailed {
                command,
                status,
                stderr_tail,
                hint,
            }
        }
        other => other,
    }
}

/// Install the lock into `ctx/site` for `base`, with its bytecode (see
/// [`compile`]). The answer is what to warn of (files that do not compile).
pub async fn stage(
    lock: &[u8],
    base: &Base,
    ctx: &Path,
    progress: &Progressed,
    cancel: CancellationToken,
) -> Result<Vec<String>> {
    let files = super::lock_files(lock)?;
    let work = ctx.with_extension("pip");
    std::fs::create_dir_all(&work).map_err(|e| Error::io("creating", &work, e))?;
    let requirements = work.join("requirements.txt");
    let mut rows = files.first().map(|(_, b)| b.to_vec()).unwrap_or_default();
    // Wheels built from the lock's sdists (cached, else built now), by path.
    let sdists = sdist::in_lock(lock)?;
    for s in &sdists {
        let wheel = sdist::wheel_for(s, base, progress, &cancel).await?;
        let hash = super::build::wheel::sha256_of(&wheel)?;
        rows.extend(format!("{} --hash=sha256:{hash}\n", wheel.display()).as_bytes());
    }
    super::write(&requirements, &rows)?;
    let site = ctx.join("site");
    let mut args: Vec<OsString> = vec![
        "install".into(),
        "--quiet".into(),
        "--no-deps".into(),
        "--require-hashes".into(),
        "--no-compile".into(),
        "--no-warn-script-location".into(),
        "--no-warn-conflicts".into(),
        "--target".into(),
        site.clone().into(),
        "-r".into(),
        requirements.into(),
    ];
    args.extend(target(base)?);
    if !sdists.is_empty() {
        // A wheel built here is tagged `linux_x86_64`, not manylinux.
        args.extend(["--platform".into(), "linux_x86_64".into()]);
    }
    let wheel = pinned_pip_for(base, cancel.clone()).await?;
    let installed =
        runtime::pip_from(wheel.as_deref(), args, Some(progress.lines("pip")), cancel).await;
    let _ = std::fs::remove_dir_all(&work);
    installed?;
    // Console scripts carry the host python's path in their #! line; the label runs python3.
    let _ = std::fs::remove_dir_all(site.join("bin"));
    let host = runtime::probe_python().await.ok();
    let same = host.is_some_and(|h| Some(h.minor) == base.python_minor());
    (progress.say)(format!(
        "compiling bytecode (unchecked-hash .pyc, for a read-only root){}",
        if same {
            ""
        } else {
            " with the base's own python3, in a container"
        }
    ));
    let mut warnings = compile(&site, base, !same).await?;
    warnings.extend(sdists.iter().map(|s| {
        format!(
            "{}=={} has no wheel for Python {}: its sdist was built into one in a build container (network none; the lock records the sdist's sha256)",
            s.name,
            s.version,
            base.python_minor().unwrap_or_default()
        )
    }));
    super::readable(&site)?;
    Ok(warnings)
}

/// Compile `site`'s bytecode, best-effort per file: a file that does not
/// compile (a Python 2 test file, a template with `.py` in its name) keeps
/// its source and no `.pyc`; the answer is a warning naming a few of them.
/// With the host's python3 when it is the base's minor (the same bytecode),
/// else with the base's own python3 in a container (no network, no
/// capabilities, a read-only root, only `site` writable): compileall reads
/// the package's files and runs none of them.
async fn compile(site: &Path, base: &Base, in_base: bool) -> Result<Vec<String>> {
    let compileall = [
        "-I",
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        // The path the image has, not the staging one (which is
        // temporary): the same lock gives the same bytes, and
        // tracebacks name the files as the server sees them.
        "-d",
        SITE,
    ];
    let invocation = if in_base {
        Invocation::new("podman")
            .args([
                "run",
                "--rm",
                "--pull=never",
                "--network=none",
                "--cap-drop=all",
                "--security-opt=no-new-privileges",
                "--read-only",
                "--log-driver=none",
            ])
            .arg(format!("--volume={}:{SITE}:rw", site.display()))
            .arg(&base.image_id)
            .arg("python3")
            .args(compileall)
            .arg(SITE)
    } else {
        Invocation::new("python3").args(compileall).arg(site)
    }
    .timeout(Duration::from_secs(600));
    let printed_site = if in_base { Path::new(SITE) } else { site };
    let display = invocation.display();
    let (status, out) = invocation.status().await?;
    if status.success() {
        return Ok(Vec::new());
    }
    let failed = not_compiled(&out.stdout, printed_site);
    if status.code() != Some(1) || failed.is_empty() {
        return Err(Error::CommandFailed {
            command: display,
            status: status.to_string(),
            stderr_tail: tails(&out.stderr_tail, &out.stdout),
            hint: String::new(),
        });
    }
    const NAMED: usize = 3;
    let mut named = failed
        .iter()
        .take(NAMED)
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if failed.len() > NAMED {
        named.push_str(&format!(" and {} more", failed.len() - NAMED));
    }
    Ok(vec![format!(
        "{} file(s) of the package do not compile for Python {} and are left as source without bytecode: {named}. A server that imports one of them fails when it does",
        failed.len(),
        base.python_minor().unwrap_or_default(),
    )])
}

/// The files compileall says it could not compile (`*** Error compiling
/// 'PATH'...` on stdout), relative to `site`.
fn not_compiled(stdout: &str, site: &Path) -> Vec<String> {
    let site = format!("{}/", site.display());
    let mut out: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("*** Error compiling '"))
        .filter_map(|l| l.strip_suffix("'..."))
        .map(|path| {
            let relative = path.strip_prefix(&site).unwrap_or(path);
            super::cut(&relative.escape_debug().to_string(), 200)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What the staged package says of itself: its console script, summary and
/// `mcp-name:` marker.
pub fn found(package: &PackageRef, ctx: &Path, entry: Option<&str>) -> Result<Found> {
    let site = ctx.join("site");
    let wanted = package.normalized_name();
    let dist_info = std::fs::read_dir(&site)
        .map_err(|e| Error::io("reading", &site, e))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            name.strip_suffix(".dist-info")
                .and_then(|n| n.rsplit_once('-'))
                .is_some_and(|(n, _)| normalize_pypi(n) == wanted)
        })
        .ok_or_else(|| Error::UnexpectedOutput {
            command: "pip install".into(),
            reason: format!("no {wanted}-*.dist-info in {}", site.display()),
        })?;
    let metadata =
        String::from_utf8_lossy(&super::read_small(&dist_info.join("METADATA"))?).to_string();
    let summary = metadata
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Summary: "))
        .map(str::to_string);
    let registry_name = metadata.lines().find_map(|l| {
        let at = l.find("mcp-name:")?;
        let name = l[at + "mcp-name:".len()..]
            .trim()
            .trim_end_matches("-->")
            .trim();
        (!name.is_empty()).then(|| name.to_string())
    });
    let scripts = console_scripts(&String::from_utf8_lossy(
        &super::read_small(&dist_info.join("entry_points.txt")).unwrap_or_default(),
    ));
    let listed = || {
        scripts
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match entry {
        Some(wanted) => scripts.iter().find(|(n, _)| n == wanted).ok_or_else(|| {
            Error::invalid(
                "bin",
                wanted,
                format!("`{package}` has no such console script"),
                format!("choose one of: {}", listed()),
            )
        })?,
        None if scripts.len() == 1 => &scripts[0],
        None => match scripts.iter().find(|(n, _)| normalize_pypi(n) == wanted) {
            Some(found) => found,
            None if scripts.is_empty() => {
                return Err(Error::invalid(
                    "package",
                    package.to_string(),
                    "it declares no console script, so it has no program to run",
                    "is it an MCP server? Its README names the command; build an image with build_image instead",
                ));
            }
            None => {
                return Err(Error::invalid(
                    "bin",
                    "",
                    format!("`{package}` has several console scripts and none is named `{wanted}`"),
                    format!("pass `bin`: one of {}", listed()),
                ));
            }
        },
    };
    let (module, attr) = &chosen.1;
    Ok(Found {
        program: vec![
            "python3".into(),
            "-c".into(),
            format!(
                "import sys; from {module} import {root}; sys.exit({attr}())",
                root = attr.split('.').next().unwrap_or(attr)
            ),
        ],
        description: summary,
        registry_name,
        warnings: Vec::new(),
    })
}

/// `[console_scripts]` of an entry_points.txt: name → (module, attribute),
/// each a dotted Python name (anything else is left out).
fn console_scripts(text: &str) -> Vec<(String, (String, String))> {
    let dotted = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    let mut out = Vec::new();
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[console_scripts]";
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.split('[').next().unwrap_or_default().trim();
        let Some((module, attr)) = value.split_once(':') else {
            continue;
        };
        let (module, attr) = (module.trim(), attr.trim());
        if dotted(module) && dotted(attr) {
            out.push((
                name.trim().to_string(),
                (module.to_string(), attr.to_string()),
            ));
        }
    }
    out
}

/// The generated Containerfile on `base`.
/// `sys`: the staged tree carries libraries its programs load that the base
/// lacks (`sys/`, at their paths in the image).
pub fn containerfile(base: &str, sys: bool) -> String {
    let sys = if sys { "COPY sys/ /\n" } else { "" };
    format!(
        "# Generated by mcpod: a PyPI package installed on the host from its hashed lock (wheels only)\n\
         FROM {base}\n\
         COPY site/ {SITE}/\n\
         {sys}ENV PYTHONPATH={SITE} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp\n\
         WORKDIR /tmp\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_scripts_are_dotted_names_only() {
        let text = "[console_scripts]\nmcp-server-time = mcp_server_time:main\nother = a.b:c.d [extra]\nevil = os:system('x')\nbad = __import__('os'):x\n[gui_scripts]\ng = x:y\n";
        let s = console_scripts(text);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0],
            (
                "mcp-server-time".into(),
                ("mcp_server_time".into(), "main".into())
            )
        );
        assert_eq!(s[1].1, ("a.b".into(), "c.d".into()));
    }

    #[test]
    fn the_program_is_the_console_script() {
        let ctx = tempfile::tempdir().unwrap();
        let info = ctx.path().join("site/mcp_server_time-2026.10.19.dist-info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(info.join("METADATA"), "Name: mcp-server-time\nSummary: Time\n\n<!-- mcp-name: io.github.modelcontextprotocol/server-time -->\n").unwrap();
        std::fs::write(
            info.join("entry_points.txt"),
            "[console_scripts]\nmcp-server-time = mcp_server_time:main\n",
        )
        .unwrap();
        let p = PackageRef::parse("t", "pypi:mcp-server-time==2026.10.19").unwrap();
        let f = found(&p, ctx.path(), None).unwrap();
        assert_eq!(
            f.program[2],
            "import sys; from mcp_server_time import main; sys.exit(main())"
        );
        assert_eq!(
            f.registry_name.as_deref(),
            Some("io.github.modelcontextprotocol/server-time")
        );
        assert_eq!(f.description.as_deref(), Some("Time"));
        assert!(found(&p, ctx.path(), Some("nope")).is_err());
    }

    #[test]
    fn files_that_do_not_compile_are_named_from_compileall_stdout() {
        let stdout = "*** Error compiling '/s/site/pkg/py2.py'...\n  File \"/opt/mcp/site/pkg/py2.py\", line 1\n    print 'x'\nSyntaxError: Missing parentheses\n*** Error compiling '/s/site/a\nb.py'...\nListing '/x'...\n";
        assert_eq!(
            not_compiled(stdout, Path::new("/s/site")),
            ["pkg/py2.py"],
            "a name cut by a newline in it is not taken"
        );
        assert!(not_compiled("Listing '/x'...\n", Path::new("/s/site")).is_empty());
    }

    #[test]
    fn wheels_are_chosen_for_the_base() {
        let base = Base {
            runtime: super::super::bases::Runtime::Python,
            image: "b".into(),
            image_id: "i".into(),
            version: "3.12.1".into(),
            glibc: Some("2.36".into()),
            origin: String::new(),
            id: String::new(),
            headers: None,
            integrity: None,
            debian: None,
        };
        let args: Vec<String> = target(&base)
            .unwrap()
            .iter()
            .map(|a| a.to_string_lossy().to_string())
            .collect();
        assert!(args.windows(2).any(|w| w == ["--python-version", "3.12"]));
        assert!(args.windows(2).any(|w| w == ["--abi", "cp312"]));
        assert!(args.contains(&"manylinux_2_36_x86_64".to_string()));
        assert!(!args.contains(&"manylinux_2_37_x86_64".to_string()));
    }
}
