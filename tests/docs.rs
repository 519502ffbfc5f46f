//! The documentation holds: the tool reference is what `mcpod schema
//! --markdown` renders now, and every relative link in README.md,
//! CHANGELOG.md and docs/*.md reaches a file, and its `#anchor` a heading of
//! that file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn reference_is_fresh() {
    let path = root().join("docs/reference.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == mcpod::reference::markdown(),
        "{} is stale: run `cargo run -- schema --markdown > docs/reference.md`",
        path.display()
    );
}

/// The Markdown files whose links are checked.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("CHANGELOG.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// `[text](target)` targets of one line.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// The link targets of a Markdown text, outside fenced code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.extend(links(line));
        }
    }
    out
}

/// GitHub's anchors for the headings of a Markdown file (duplicates get
/// `-1`, `-2`).
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim();
        let heading: String = heading.chars().filter(|c| *c != '`').collect();
        let base = mcpod::reference::slug(&heading);
        let mut slug = base.clone();
        let mut n = 0;
        while seen.contains(&slug) {
            n += 1;
            slug = format!("{base}-{n}");
        }
        seen.insert(slug);
    }
    seen
}

fn check(page: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (file, anchor) = match target.split_once('#') {
        Some((f, a)) => (f, Some(a)),
        None => (target, None),
    };
    let dir = page.parent().unwrap_or(Path::new("."));
    let path = if file.is_empty() {
        page.to_path_buf()
    } else {
        dir.join(file)
    };
    if !path.exists() {
        return Some(format!(
            "{}: `{target}`: no file {}",
            page.display(),
            path.display()
        ));
    }
    let anchor = anchor?;
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    if anchors(&text).contains(anchor) {
        None
    } else {
        Some(format!(
            "{}: `{target}`: no heading with anchor #{anchor} in {}",
            page.display(),
            path.display()
        ))
    }
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let mut count = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("read page");
        for target in link_targets(&text) {
            count += 1;
            broken.extend(check(&page, &target));
        }
    }
    assert!(
        count > 50,
        "only {count} links found: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_follow_github() {
    let a = anchors("# A\n## Platforms: podman 4.3 to 5.x, root or rootless\n## `x_y` z\n## A\n");
    assert!(a.contains("platforms-podman-43-to-5x-root-or-rootless"));
    assert!(a.contains("x_y-z"));
    assert!(a.contains("a-1"));
    assert!(check(Path::new("README.md"), "docs/nowhere.md").is_some());
}
