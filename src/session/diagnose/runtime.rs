//! A node server that needs a built-in module its node lacks (`node:sqlite`
//! came in node 22.5): the node it ran on and the runtime to ask for.

use super::{Context, Diagnosis, Facts, line_with};

/// What node says of a built-in it does not have: `import` and `require`.
const NO_BUILTIN: &[&str] = &[
    "ERR_UNKNOWN_BUILTIN_MODULE",
    "No such built-in module",
    "Cannot find module 'node:",
    "Cannot find package 'node:",
];

/// The built-in module named, the node that ran, and the runtime to ask for.
pub(super) fn node_builtin(facts: &Facts, ctx: &Context) -> Option<Diagnosis> {
    line_with(facts.stderr, NO_BUILTIN)?;
    // The module, from whichever of those lines names it.
    let module = facts
        .stderr
        .lines()
        .filter(|l| NO_BUILTIN.iter().any(|n| l.contains(n)))
        .flat_map(|l| l.split(['\'', '"', ' ']))
        .map(|w| w.trim_end_matches([',', '.', ':']))
        .find(|w| {
            w.len() > 5
                && w.len() <= 64
                && w.starts_with("node:")
                && w[5..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_-".contains(c))
        });
    // Node prints its version last when an error ends it (`Node.js
    // v20.20.2`); a provisioned image's description names its node.
    let described = ctx
        .labels
        .get("org.opencontainers.image.description")
        .and_then(|d| d.strip_prefix("node v"))
        .and_then(|d| d.split_whitespace().next());
    let ran = facts
        .stderr
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Node.js v"))
        .or(described)
        .filter(|v| v.len() <= 32 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'))
        .and_then(|v| {
            let major: u32 = v.split('.').next()?.parse().ok()?;
            Some((v.trim().to_string(), major))
        });
    let wanted = match ran {
        Some((_, major)) if major >= 22 => 24,
        _ => 22,
    };
    let runtime = format!("node@{wanted}");
    let on = ran
        .map(|(v, _)| format!(" node {v}"))
        .unwrap_or_else(|| " its node".into());
    let what = module
        .map(|m| format!("the built-in module `{m}`"))
        .unwrap_or_else(|| "a built-in module".into());
    let fix = match ctx.package() {
        Some((package, _)) => format!(
            "run it on a newer node: `launch_session {{\"provision\": {{\"package\": \"{package}\", \"runtime\": \"{runtime}\"}}}}` (CLI `--runtime {runtime}`; `runtime` takes `node@MAJOR` or an exact `node@22.12.0`)"
        ),
        None => format!(
            "run it on a newer node: provision its package with `\"runtime\": \"{runtime}\"` (launch_session `provision`), or use an image whose node has {what}"
        ),
    };
    Some(Diagnosis {
        cause: format!("{what} is not in{on}, which it ran on"),
        fix,
    })
}
