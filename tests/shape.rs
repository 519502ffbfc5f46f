//! The shape docs/architecture.md promises, checked on the source: the
//! top-level modules of the pipeline import only to their right, the files of
//! every folder import one way (no circles), no file passes 800 lines and no
//! function 100.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pipeline, left to right; a module uses only those to its right
/// (`labels` and `cache` share a place).
const PIPELINE: &[&[&str]] = &[
    &["cli"],
    &["server"],
    &["session"],
    &["provision"],
    &["image"],
    &["labels", "cache"],
    &["proxy"],
    &["engine"],
];

/// Imports against the pipeline still to be undone (none: a server's start
/// failure is diagnosed in `session`, which may ask `provision`).
const KNOWN_AGAINST: &[&str] = &[];

/// The longest a source file may be.
const MAX_LINES: usize = 800;

/// The longest a function may be, from its `fn` line to its closing brace.
const MAX_FN_LINES: usize = 100;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every `.rs` file under `dir`, with the module path it defines.
fn modules(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(dir).expect("under src");
            let mut segs: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if matches!(
                segs.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                segs.pop();
            }
            out.push((path, segs));
        }
    }
    out.sort();
    out
}

/// The text of a file without its unit tests (by convention a trailing
/// `#[cfg(test)] mod tests`) and without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every module path the code names through `crate::`, `super::` or
/// `self::` (with `{a, b::c}` groups opened one level), resolved against
/// the module `at`.
fn paths(code: &str, at: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start).map(|i| i + from) {
            from = i + start.len();
            if i > 0 && (is_ident(bytes[i - 1] as char) || bytes[i - 1] == b':') {
                continue;
            }
            // Resolve the head.
            let mut resolved: Vec<String> = match start {
                "crate::" => Vec::new(),
                "self::" => at.to_vec(),
                _ => at[..at.len().saturating_sub(1)].to_vec(),
            };
            let mut rest = &code[from..];
            while let Some(r) = rest.strip_prefix("super::") {
                resolved.pop();
                rest = r;
            }
            let mut segs = resolved;
            loop {
                let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
                if end == 0 {
                    break;
                }
                segs.push(rest[..end].to_string());
                rest = &rest[end..];
                match rest.strip_prefix("::") {
                    Some(r) => rest = r,
                    None => break,
                }
            }
            if let Some(group) = rest.strip_prefix('{') {
                for item in top_level_items(group) {
                    let name: String = item.trim().chars().take_while(|c| is_ident(*c)).collect();
                    if !name.is_empty() && name != "self" {
                        let mut p = segs.clone();
                        p.push(name);
                        out.push(p);
                    }
                }
            }
            out.push(segs);
        }
    }
    out
}

/// The items of a `{…}` group (its text after the `{`), split at the commas
/// outside nested groups, up to the group's closing brace.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

/// Per folder (a module path), the imports between its parts.
fn graph(src: &Path) -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let mods = modules(src);
    let known: BTreeSet<Vec<String>> = mods.iter().map(|(_, m)| m.clone()).collect();
    let mut graph: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (path, at) in &mods {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        for p in paths(&code(path), at) {
            let common = at.iter().zip(&p).take_while(|(a, b)| a == b).count();
            let (Some(from), Some(to)) = (at.get(common), p.get(common)) else {
                continue;
            };
            let folder = at[..common].to_vec();
            let mut target = folder.clone();
            target.push(to.clone());
            if !known.contains(&target) {
                continue;
            }
            graph
                .entry(folder)
                .or_default()
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
        }
    }
    graph
}

/// The circles of one folder's graph (each a strongly connected set of
/// more than one part), by Tarjan's algorithm.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_folder_imports_in_a_circle() {
    for src in [root().join("src"), root().join("supervisor/src")] {
        let mut found = Vec::new();
        for (folder, edges) in graph(&src) {
            for circle in circles(&edges) {
                let detail: Vec<String> = circle
                    .iter()
                    .map(|m| {
                        let to: Vec<&str> = edges[m]
                            .iter()
                            .filter(|t| circle.contains(t))
                            .map(String::as_str)
                            .collect();
                        format!("{m} -> {}", to.join(", "))
                    })
                    .collect();
                found.push(format!(
                    "{}/{}: {}",
                    src.display(),
                    folder.join("/"),
                    detail.join("; ")
                ));
            }
        }
        assert!(
            found.is_empty(),
            "files import each other in a circle (docs/architecture.md, the pipeline): {found:#?}"
        );
    }
}

#[test]
fn the_pipeline_imports_only_to_its_right() {
    let rank = |m: &str| PIPELINE.iter().position(|place| place.contains(&m));
    let graph = graph(&root().join("src"));
    let mut against = Vec::new();
    for (from, to) in graph.get(&Vec::new()).into_iter().flatten() {
        let Some(r) = rank(from) else { continue };
        for t in to {
            let edge = format!("{from} -> {t}");
            if rank(t).is_some_and(|rt| rt < r) && !KNOWN_AGAINST.contains(&edge.as_str()) {
                against.push(edge);
            }
        }
    }
    assert!(
        against.is_empty(),
        "imports against the pipeline (docs/architecture.md): {against:?}"
    );
}

#[test]
fn no_file_is_over_the_limit() {
    let mut long = Vec::new();
    for src in [root().join("src"), root().join("supervisor/src")] {
        for (path, _) in modules(&src) {
            let lines = std::fs::read_to_string(&path)
                .expect("read")
                .lines()
                .count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines; split them by job: {long:?}"
    );
}

/// `text` with its comments, strings and character literals blanked (line
/// breaks kept), so that only the code's own braces are left.
fn skeleton(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Blank `c[from..to]`, keeping line breaks.
    let blank = |out: &mut String, from: usize, to: usize| {
        for &ch in &c[from..to.min(c.len())] {
            out.push(if ch == '\n' { '\n' } else { ' ' });
        }
    };
    while i < c.len() {
        let at = |k: usize| c.get(i + k).copied().unwrap_or('\0');
        let end = if c[i] == '/' && at(1) == '/' {
            (i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len())
        } else if c[i] == '/' && at(1) == '*' {
            let mut depth = 0;
            let mut k = i;
            while k < c.len() {
                match (c[k], c.get(k + 1).copied().unwrap_or('\0')) {
                    ('/', '*') => (depth, k) = (depth + 1, k + 2),
                    ('*', '/') => (depth, k) = (depth - 1, k + 2),
                    _ => k += 1,
                }
                if depth == 0 {
                    break;
                }
            }
            k
        } else if c[i] == 'r' && (at(1) == '"' || at(1) == '#') && (i == 0 || !is_ident(c[i - 1])) {
            let hashes = (1..).take_while(|&k| at(k) == '#').count();
            if at(1 + hashes) != '"' {
                out.push(c[i]);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let rest: String = c[i + 2 + hashes..].iter().collect();
            i + 2
                + hashes
                + rest
                    .find(&close)
                    .map_or(rest.len(), |k| rest[..k].chars().count() + close.len())
        } else if c[i] == '"' {
            let mut k = i + 1;
            while k < c.len() && c[k] != '"' {
                k += if c[k] == '\\' { 2 } else { 1 };
            }
            k + 1
        } else if c[i] == '\'' && (at(1) == '\\' || at(2) == '\'') {
            let mut k = i + 2;
            while k < c.len() && c[k] != '\'' {
                k += 1;
            }
            k + 1
        } else {
            out.push(c[i]);
            i += 1;
            continue;
        };
        blank(&mut out, i, end);
        i = end;
    }
    out
}

/// Each function in `text` longer than `max` lines: its name and length.
fn long_functions(text: &str, max: usize) -> Vec<(String, usize)> {
    let code = skeleton(text);
    let lines: Vec<&str> = code.lines().collect();
    let mut long = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line
            .split_whitespace()
            .skip_while(|w| w.starts_with("pub") || ["async", "const", "unsafe"].contains(w))
            .collect::<Vec<_>>()
            .split_first()
            .filter(|(first, _)| **first == "fn")
            .and_then(|(_, rest)| rest.first())
            .map(|n| {
                n.split(|ch: char| !is_ident(ch))
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
        else {
            continue;
        };
        let (mut depth, mut opened) = (0i64, false);
        for (j, body) in lines[i..].iter().enumerate() {
            if !opened && body.contains(';') && !body.contains('{') {
                break;
            }
            for ch in body.chars() {
                match ch {
                    '{' => (depth, opened) = (depth + 1, true),
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth <= 0 {
                if j + 1 > max {
                    long.push((name.clone(), j + 1));
                }
                break;
            }
        }
    }
    long
}

#[test]
fn no_function_is_over_the_limit() {
    let mut long = Vec::new();
    for src in [root().join("src"), root().join("supervisor/src")] {
        for (path, _) in modules(&src) {
            let text = std::fs::read_to_string(&path).expect("read");
            for (name, lines) in long_functions(&text, MAX_FN_LINES) {
                long.push(format!("{}: {name} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines; name their steps: {long:?}"
    );
}

#[test]
fn the_function_checker_sees_braces_only_in_code() {
    let body = "    let x = 1;\n".repeat(4);
    let text = format!(
        "pub async fn short() {{\n{body}}}\n\
         fn tricky<'a>(s: &'a str) -> char {{\n    let _ = \"{{\"; let _ = r#\"}}\"#; // }}\n    /* {{ */ '{{'\n}}\n\
         fn declared();\n\
         pub(crate) fn long() {{\n{body}{body}}}\n"
    );
    assert_eq!(long_functions(&text, 6), vec![("long".to_string(), 10)]);
    assert_eq!(long_functions(&text, 3).len(), 3);
}

#[test]
fn the_checker_sees_a_circle_and_a_grouped_import() {
    let at: Vec<String> = vec!["proxy".into(), "fast".into()];
    let found = paths(
        "use super::{child::{A, B}, names};\nlet x = crate::engine::podman::X;",
        &at,
    );
    assert!(found.contains(&vec!["proxy".to_string(), "child".to_string()]));
    assert!(found.contains(&vec!["proxy".to_string(), "names".to_string()]));
    assert!(found.contains(&vec![
        "engine".to_string(),
        "podman".to_string(),
        "X".to_string()
    ]));
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("a".into());
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        circles(&edges),
        vec![vec!["a".to_string(), "b".to_string()]]
    );
}
