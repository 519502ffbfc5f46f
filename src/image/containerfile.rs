//! Reading a Containerfile for what the cache key needs: its bytes (bounded,
//! and only from where it may be), and the images it builds from (`FROM` and
//! `COPY --from=`), after `ARG` substitution.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::Result;
use crate::cache::input::{self, MAX_CONTAINERFILE};

/// The bytes of the Containerfile at `path`, at most [`MAX_CONTAINERFILE`].
///
/// It must resolve inside `context`, unless `path` is itself a real file
/// elsewhere (no symlink on the way; the caller resolved it, as the tools do
/// against the workspace root): a symlink in the context cannot make buildah
/// read a host file. Errors name the file and where it leads.
pub fn read(path: &Path, context: &Path) -> Result<Vec<u8>> {
    let context = std::fs::canonicalize(context)
        .map_err(|e| crate::Error::io("resolving the build context", context, e))?;
    let given = std::path::absolute(path)
        .map_err(|e| crate::Error::io("resolving the Containerfile", path, e))?;
    input::read_bounded(path, "Containerfile", MAX_CONTAINERFILE, |real| {
        if real == given {
            return Ok(());
        }
        input::inside(
            "Containerfile",
            path,
            real,
            &[&context],
            &format!("the context `{}`", context.display()),
        )
    })
}

/// Whether a stage of the Containerfile starts `FROM scratch` (buildah then
/// names its working container `working-container`).
pub fn builds_from_scratch(containerfile: &str) -> bool {
    instructions(containerfile).iter().any(|instruction| {
        let mut words = instruction.split_whitespace();
        words
            .next()
            .is_some_and(|op| op.eq_ignore_ascii_case("FROM"))
            && words
                .find(|w| !w.starts_with("--"))
                .is_some_and(|image| image.eq_ignore_ascii_case("scratch"))
    })
}

/// The longest word an `ARG` substitution makes: references cannot multiply
/// a value without bound (no image reference is this long; buildah refuses
/// what is cut short).
pub const MAX_WORD: usize = 64 * 1024;

/// The external images a Containerfile uses, in order of first use, without
/// `scratch` and without references to its own stages.
pub fn base_images(containerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<String> {
    let mut global_args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: HashSet<String> = HashSet::new();
    let mut bases: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut seen_from = false;
    let mut push = |base: String, stages: &HashSet<String>, bases: &mut Vec<String>| {
        let lower = base.to_ascii_lowercase();
        let is_stage_index = !base.is_empty() && base.bytes().all(|b| b.is_ascii_digit());
        if base.is_empty() || lower == "scratch" || stages.contains(&lower) || is_stage_index {
            return;
        }
        if seen.insert(base.clone()) {
            bases.push(base);
        }
    };
    for instruction in instructions(containerfile) {
        let mut words = instruction.split_whitespace();
        let Some(op) = words.next() else { continue };
        let rest: Vec<&str> = words.collect();
        match op.to_ascii_uppercase().as_str() {
            "ARG" if !seen_from => {
                for decl in &rest {
                    let (name, default) = match decl.split_once('=') {
                        Some((n, d)) => (n, unquote(d)),
                        None => (*decl, String::new()),
                    };
                    let value = build_args.get(name).cloned().unwrap_or(default);
                    global_args.insert(name.to_string(), value);
                }
            }
            "FROM" => {
                seen_from = true;
                let mut args = rest.iter().filter(|w| !w.starts_with("--"));
                if let Some(image) = args.next() {
                    push(substitute(image, &global_args), &stages, &mut bases);
                }
                if let (Some(kw), Some(name)) = (args.next(), args.next())
                    && kw.eq_ignore_ascii_case("as")
                {
                    stages.insert(name.to_ascii_lowercase());
                }
            }
            "COPY" | "ADD" | "RUN" => {
                for w in &rest {
                    let from = w
                        .strip_prefix("--from=")
                        .or_else(|| w.strip_prefix("--mount=").and_then(mount_from));
                    if let Some(image) = from {
                        push(substitute(image, &global_args), &stages, &mut bases);
                    }
                }
            }
            _ => {}
        }
    }
    bases
}

/// `from=IMAGE` inside a `--mount=type=bind,from=IMAGE,...` option.
fn mount_from(spec: &str) -> Option<&str> {
    spec.split(',').find_map(|kv| kv.strip_prefix("from="))
}

/// Logical instructions: continuation lines joined, comments and blanks dropped.
fn instructions(text: &str) -> Vec<String> {
    numbered_instructions(text)
        .into_iter()
        .map(|(_, instruction)| instruction)
        .collect()
}

/// [`instructions`], each with the line (from 1) it starts on.
pub fn numbered_instructions(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if !current.is_empty() && trimmed.starts_with('#') {
            continue;
        }
        if current.is_empty() {
            start = n + 1;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push((start, std::mem::take(&mut current)));
        }
    }
    if !current.trim().is_empty() {
        out.push((start, current));
    }
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    s.to_string()
}

/// Expand `$NAME`, `${NAME}` and `${NAME:-default}` from `vars` (unknown:
/// empty). Values are not expanded again; the result is cut at [`MAX_WORD`].
fn substitute(word: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if out.len() >= MAX_WORD {
            let mut end = MAX_WORD;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
            break;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            let inner: String = chars.by_ref().take_while(|&c| c != '}').collect();
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner.as_str(), None),
            };
            match (vars.get(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {}
            }
        } else {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    name.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            if name.is_empty() {
                out.push('$');
            } else if let Some(v) = vars.get(&name) {
                out.push_str(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tells_a_scratch_stage() {
        assert!(builds_from_scratch("FROM scratch\nCOPY a /a\n"));
        assert!(builds_from_scratch(
            "FROM localhost/x:1 AS b\nfrom --platform=linux/amd64 SCRATCH\n"
        ));
        assert!(!builds_from_scratch(
            "FROM localhost/scratchy:1\nRUN echo scratch\n"
        ));
    }

    #[test]
    fn finds_bases_and_skips_scratch_and_stages() {
        let cf = "# syntax=docker/dockerfile:1\n\
                  ARG BASE=localhost/base:1\n\
                  FROM --platform=linux/amd64 ${BASE} AS build\n\
                  RUN echo hi \\\n  && echo there\n\
                  FROM scratch\n\
                  COPY --from=build /a /a\n\
                  COPY --from=localhost/tools:2 /t /t\n\
                  COPY --from=0 /b /b\n\
                  from build as again\n";
        assert_eq!(
            base_images(cf, &args(&[])),
            ["localhost/base:1", "localhost/tools:2"]
        );
    }

    #[test]
    fn build_args_override_arg_defaults() {
        let cf = "ARG TAG=1\nARG NAME\nFROM localhost/${NAME:-x}:$TAG\n";
        assert_eq!(base_images(cf, &args(&[("TAG", "9")])), ["localhost/x:9"]);
        assert_eq!(base_images(cf, &args(&[("NAME", "y")])), ["localhost/y:1"]);
    }

    #[test]
    fn substitution_is_bounded() {
        let big = "x".repeat(MAX_WORD / 2 + 1);
        let cf = format!("ARG A\nFROM {}\n", "${A}".repeat(1000));
        let bases = base_images(&cf, &args(&[("A", &big)]));
        assert_eq!(bases.len(), 1);
        assert_eq!(bases[0].len(), MAX_WORD);
        // Multi-byte text is cut on a character boundary.
        let wide = "é".repeat(MAX_WORD / 2 + 1);
        let bases = base_images(&cf, &args(&[("A", &wide)]));
        assert!(bases[0].len() <= MAX_WORD && bases[0].chars().all(|c| c == 'é'));
    }

    #[test]
    fn mount_from_counts() {
        let cf = "FROM scratch\nRUN --mount=type=bind,from=localhost/src:1,target=/s true\n";
        assert_eq!(base_images(cf, &args(&[])), ["localhost/src:1"]);
    }
}
