//! Ignore rules of a build context (the Containerfile's own ignore file, else
//! the context's `.containerignore`, else `.dockerignore`; see `context.rs`),
//! with the semantics buildah applies when it sends the context:
//!
//! - the file is read like imagebuilder's `ParseIgnore`: split on `\n`, a line
//!   that is empty or starts with `#` is skipped, `/` is trimmed from both ends;
//! - each pattern is then compiled like the containers/storage (moby)
//!   `PatternMatcher`: whitespace trimmed, Go `filepath.Clean`ed, a leading `!`
//!   makes it a re-include, the syntax is that of Go `filepath.Match` (`*`, `?`,
//!   `[...]`, `\` escapes) plus `**` for any number of directories;
//! - a path is excluded when the last pattern that matches it *or one of its
//!   parent directories* is not a `!` pattern (`MatchesOrParentMatches`).
//!
//! Where buildah's behaviour is accidental, the matcher leans towards treating a
//! file as part of the context (an extra file in the cache key costs a rebuild;
//! a missing one could serve a stale image): a `!` pattern is also tried with
//! surrounding spaces and a leading `/` removed, and an excluded directory is
//! walked whenever any `!` pattern could match something inside it.

use crate::{Error, Result};

/// The most patterns an ignore file may hold: every entry of the context is
/// matched against each (real files hold tens).
pub const MAX_PATTERNS: usize = 10_000;
/// The longest pattern, in bytes: no path is longer.
pub const MAX_PATTERN_BYTES: usize = 4096;

/// The compiled rules of one ignore file.
#[derive(Clone, Debug, Default)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
    has_exclusions: bool,
}

/// Per pattern: whether it matched a directory or one of its ancestors. Carried
/// down the walk so that each path is matched once per pattern, not once per
/// parent directory.
#[derive(Clone, Debug, Default)]
pub struct ParentMatches(Vec<bool>);

#[derive(Clone, Debug)]
struct Pattern {
    /// The cleaned pattern text, without the `!`.
    text: String,
    /// A `!` pattern (buildah calls these "exclusions": they re-include).
    reinclude: bool,
    kind: Kind,
}

/// How a pattern matches; mirrors moby's fast paths so that their quirks
/// (`**foo` is a plain suffix test) are reproduced.
#[derive(Clone, Debug)]
enum Kind {
    /// No wildcard: the path equals the text.
    Exact,
    /// `prefix**`: the path starts with the prefix.
    Prefix(String),
    /// `**suffix` with a literal suffix.
    Suffix(String),
    /// Anything else: the token sequence of moby's regular expression.
    Glob(Vec<Tok>),
}

#[derive(Clone, Debug)]
enum Tok {
    /// One literal byte of the pattern's UTF-8 text.
    Lit(u8),
    /// `*`: any run of characters except `/`.
    Star,
    /// `?`: one character except `/`.
    Any,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**/` or an inner `**`: `(.*/)?`.
    DirStar,
    /// A trailing `**` after a wildcard: `.*`.
    Rest,
    /// An unescaped `^`, which moby passes through to the regexp as an anchor.
    Caret,
}

impl IgnoreRules {
    /// Parse the text of an ignore file. An invalid pattern is an error (buildah
    /// refuses it too).
    pub fn parse(text: &str) -> Result<IgnoreRules> {
        let lines = text
            .split('\n')
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| line.trim_matches('/'))
            .filter(|line| !line.is_empty());
        IgnoreRules::from_patterns(lines)
    }

    /// Compile patterns as they come out of the ignore-file reader. At most
    /// [`MAX_PATTERNS`] of at most [`MAX_PATTERN_BYTES`] each.
    pub fn from_patterns<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<IgnoreRules> {
        let mut rules = IgnoreRules::default();
        let mut count = 0usize;
        for raw in patterns {
            let p = raw.trim();
            if p.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_PATTERNS {
                return Err(Error::invalid(
                    "ignore file",
                    format!("{MAX_PATTERNS}+ patterns"),
                    format!("it has more than the limit of {MAX_PATTERNS} patterns"),
                    "merge patterns (a `**` or `*` covers many paths), or exclude whole directories",
                ));
            }
            if p.len() > MAX_PATTERN_BYTES {
                let start: String = p.chars().take(64).collect();
                return Err(invalid(
                    &format!("{start}…"),
                    &format!(
                        "the pattern is {} bytes, over the limit of {MAX_PATTERN_BYTES} bytes",
                        p.len()
                    ),
                ));
            }
            let cleaned = clean(p);
            let Some(rest) = cleaned.strip_prefix('!') else {
                rules.patterns.push(Pattern::new(cleaned, false, raw)?);
                continue;
            };
            if rest.is_empty() {
                return Err(invalid(raw, "a `!` with no pattern after it"));
            }
            rules.has_exclusions = true;
            let lenient = clean(rest.trim().trim_start_matches('/'));
            let exact = rest.to_string();
            if lenient != exact && !lenient.is_empty() && lenient != "." {
                rules.patterns.push(Pattern::new(lenient, true, raw)?);
            }
            rules.patterns.push(Pattern::new(exact, true, raw)?);
        }
        Ok(rules)
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any `!` (re-include) pattern exists.
    pub fn has_exclusions(&self) -> bool {
        self.has_exclusions
    }

    /// The state for entries directly in the context root.
    pub fn root(&self) -> ParentMatches {
        ParentMatches(vec![false; self.patterns.len()])
    }

    /// Whether `rel` (a `/`-separated path relative to the context root) is
    /// excluded, checking its parent directories too.
    pub fn is_excluded(&self, rel: &str) -> bool {
        let mut state = self.root();
        let mut parts = rel.split('/').peekable();
        let mut prefix = String::new();
        while let Some(part) = parts.next() {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if parts.peek().is_none() {
                return self.check_file(prefix.as_bytes(), &state);
            }
            state = self.check_dir(prefix.as_bytes(), &state).1;
        }
        false
    }

    /// Whether the non-directory `rel` is excluded, given its parent's state.
    pub fn check_file(&self, rel: &[u8], parent: &ParentMatches) -> bool {
        for (i, p) in self.patterns.iter().enumerate().rev() {
            if parent.0.get(i).copied().unwrap_or(false) || p.matches(rel) {
                return !p.reinclude;
            }
        }
        false
    }

    /// Whether the directory `rel` is excluded, and the state for its entries.
    pub fn check_dir(&self, rel: &[u8], parent: &ParentMatches) -> (bool, ParentMatches) {
        let bits: Vec<bool> = self
            .patterns
            .iter()
            .enumerate()
            .map(|(i, p)| parent.0.get(i).copied().unwrap_or(false) || p.matches(rel))
            .collect();
        let excluded = match bits.iter().rposition(|&b| b) {
            Some(i) => !self.patterns[i].reinclude,
            None => false,
        };
        (excluded, ParentMatches(bits))
    }

    /// Whether some `!` pattern could match a path strictly inside the directory
    /// `rel`; when none can, an excluded directory need not be walked.
    pub fn may_reinclude_under(&self, rel: &[u8]) -> bool {
        if !self.has_exclusions {
            return false;
        }
        let mut dir = rel.to_vec();
        dir.push(b'/');
        self.patterns
            .iter()
            .filter(|p| p.reinclude)
            .any(|p| p.may_match_under(&dir))
    }
}

impl Pattern {
    fn new(text: String, reinclude: bool, raw: &str) -> Result<Pattern> {
        let kind = compile(&text).map_err(|reason| invalid(raw, reason))?;
        Ok(Pattern {
            text,
            reinclude,
            kind,
        })
    }

    fn matches(&self, path: &[u8]) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text.as_bytes(),
            Kind::Prefix(prefix) => path.starts_with(prefix.as_bytes()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_bytes())
                    || suffix
                        .strip_prefix('/')
                        .is_some_and(|s| path == s.as_bytes())
            }
            Kind::Glob(toks) => glob(toks, path, false),
        }
    }

    /// Could this pattern match some path that starts with `dir` (which ends in `/`)?
    fn may_match_under(&self, dir: &[u8]) -> bool {
        match &self.kind {
            Kind::Exact => self.text.as_bytes().starts_with(dir),
            Kind::Prefix(prefix) => {
                dir.starts_with(prefix.as_bytes()) || prefix.as_bytes().starts_with(dir)
            }
            Kind::Suffix(_) => true,
            Kind::Glob(toks) => glob(toks, dir, true),
        }
    }
}

fn invalid(pattern: &str, reason: &str) -> Error {
    Error::invalid(
        "ignore pattern",
        pattern,
        reason,
        "correct the line in the ignore file (Go filepath.Match syntax)",
    )
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|last| *last != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// Translate a cleaned pattern like moby's `Pattern.compile`, validating it like
/// Go's `filepath.Match` does.
fn compile(pattern: &str) -> std::result::Result<Kind, &'static str> {
    #[derive(PartialEq)]
    enum Ty {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut ty = Ty::Exact;
    let mut pos = 0;
    let mut first = true;
    let lit = |toks: &mut Vec<Tok>, c: char| {
        let mut buf = [0u8; 4];
        toks.extend(c.encode_utf8(&mut buf).bytes().map(Tok::Lit));
    };
    while pos < chars.len() {
        let c = chars[pos];
        pos += 1;
        match c {
            '*' if chars.get(pos) == Some(&'*') => {
                pos += 1;
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos == chars.len() {
                    if ty == Ty::Exact {
                        ty = Ty::Prefix;
                    } else {
                        toks.push(Tok::Rest);
                        ty = Ty::Regexp;
                    }
                } else {
                    toks.push(Tok::DirStar);
                    ty = Ty::Regexp;
                }
                if first {
                    ty = Ty::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                ty = Ty::Regexp;
            }
            '?' => {
                toks.push(Tok::Any);
                ty = Ty::Regexp;
            }
            '\\' => match chars.get(pos) {
                Some(&next) => {
                    pos += 1;
                    lit(&mut toks, next);
                    ty = Ty::Regexp;
                }
                None => return Err("a trailing `\\` escapes nothing"),
            },
            '[' => {
                let (tok, next) = class(&chars, pos)?;
                toks.push(tok);
                pos = next;
                ty = Ty::Regexp;
            }
            ']' => {
                lit(&mut toks, ']');
                ty = Ty::Regexp;
            }
            '^' => toks.push(Tok::Caret),
            // Everything else is literal (moby escapes `.+()|{}$` for the regexp).
            c => lit(&mut toks, c),
        }
        first = false;
    }
    Ok(match ty {
        Ty::Exact => Kind::Exact,
        // The text ends in `**`; keep what comes before.
        Ty::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        Ty::Suffix => Kind::Suffix(pattern[2..].to_string()),
        Ty::Regexp => Kind::Glob(toks),
    })
}

/// Parse a character class starting after its `[`, with the rules of Go's
/// `filepath.Match`; returns the token and the position after the `]`.
fn class(chars: &[char], mut pos: usize) -> std::result::Result<(Tok, usize), &'static str> {
    const UNCLOSED: &str = "a `[` character class is not closed by `]`";
    let negated = chars.get(pos) == Some(&'^');
    if negated {
        pos += 1;
    }
    let mut ranges = Vec::new();
    let esc = |pos: &mut usize| -> std::result::Result<char, &'static str> {
        let c = *chars.get(*pos).ok_or(UNCLOSED)?;
        if c == '-' || c == ']' {
            return Err("a character class has an empty range or an unescaped `-`/`]`");
        }
        *pos += 1;
        let c = if c == '\\' {
            let e = *chars.get(*pos).ok_or(UNCLOSED)?;
            *pos += 1;
            e
        } else {
            c
        };
        if *pos >= chars.len() {
            return Err(UNCLOSED);
        }
        Ok(c)
    };
    loop {
        if chars.get(pos) == Some(&']') && !ranges.is_empty() {
            return Ok((Tok::Class { negated, ranges }, pos + 1));
        }
        let lo = esc(&mut pos)?;
        let mut hi = lo;
        if chars.get(pos) == Some(&'-') {
            pos += 1;
            hi = esc(&mut pos)?;
            if hi < lo {
                return Err("a character class range runs backwards");
            }
        }
        ranges.push((lo, hi));
    }
}

/// Decode one character at `s[i..]`; an invalid byte counts as one character.
fn decode(s: &[u8], i: usize) -> (char, usize) {
    let len = match s[i] {
        b if b < 0x80 => 1,
        b if b >> 5 == 0b110 => 2,
        b if b >> 4 == 0b1110 => 3,
        b if b >> 3 == 0b11110 => 4,
        _ => 1,
    };
    match s.get(i..i + len).and_then(|b| std::str::from_utf8(b).ok()) {
        Some(text) => (
            text.chars().next().unwrap_or(char::REPLACEMENT_CHARACTER),
            len,
        ),
        None => (char::REPLACEMENT_CHARACTER, 1),
    }
}

/// Match `toks` against the whole of `s`, like the anchored regexp moby builds.
/// With `under`, answer instead whether some string that starts with `s` and
/// continues past it could match (used to decide whether to walk an excluded
/// directory; it errs on the side of "yes").
///
/// A table of "tokens `t..` match `s[i..]`", filled from the last token back,
/// one row at a time: time O(tokens × bytes), memory O(bytes), no recursion,
/// so no pattern can make a match exponential or deep.
fn glob(toks: &[Tok], s: &[u8], under: bool) -> bool {
    let n = s.len();
    // Past the last token: the whole string must be used (never, `under`).
    let mut next: Vec<bool> = (0..=n).map(|i| !under && i == n).collect();
    let mut cur = vec![false; n + 1];
    for tok in toks.iter().rev() {
        // Running values, from the end of `s` back to `i`: `*` matching from
        // `i`; a `/` then the rest matching, from `i` with no newline before
        // it; no newline in `s[i..]`.
        let mut star = next[n];
        let mut slash_then_rest = false;
        let mut no_newline = true;
        for i in (0..=n).rev() {
            if i < n {
                star = next[i] || (s[i] != b'/' && star);
                slash_then_rest =
                    s[i] != b'\n' && ((s[i] == b'/' && next[i + 1]) || slash_then_rest);
                no_newline &= s[i] != b'\n';
            }
            cur[i] = if under && i == n {
                // The continuation past `s` is free to match the rest.
                true
            } else {
                match tok {
                    Tok::Lit(b) => i < n && s[i] == *b && next[i + 1],
                    Tok::Any => {
                        i < n && {
                            let (c, len) = decode(s, i);
                            c != '/' && next[i + len]
                        }
                    }
                    Tok::Class { negated, ranges } => {
                        i < n && {
                            let (c, len) = decode(s, i);
                            let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                            inside != *negated && next[i + len]
                        }
                    }
                    Tok::Star => star,
                    Tok::DirStar if under => true,
                    Tok::DirStar => next[i] || slash_then_rest,
                    Tok::Rest => under || (no_newline && next[n]),
                    Tok::Caret => i == 0 && next[i],
                }
            };
        }
        std::mem::swap(&mut cur, &mut next);
    }
    next[0]
}

#[cfg(test)]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        match IgnoreRules::parse(text) {
            Ok(r) => r,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn pat(p: &str, path: &str) -> bool {
        rules(p).is_excluded(path)
    }

    #[test]
    fn clean_like_go() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("a/./b", "a/b"),
            ("a//b/", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("/", "/"),
            ("a/b/../..", "."),
            ("!a/../b", "b"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn plain_exclusion() {
        let r = rules("target\n*.log\n");
        assert!(r.is_excluded("target"));
        assert!(r.is_excluded("target/debug/x"));
        assert!(r.is_excluded("build.log"));
        assert!(!r.is_excluded("src/build.log"), "`*` does not cross `/`");
        assert!(!r.is_excluded("targets"));
        assert!(!r.is_excluded("src/target"));
    }

    #[test]
    fn single_char_and_classes() {
        assert!(pat("file?.txt", "file1.txt"));
        assert!(!pat("file?.txt", "file10.txt"));
        assert!(!pat("a?b", "a/b"));
        assert!(
            pat("file?.txt", "fileé.txt"),
            "`?` is one character, not one byte"
        );
        assert!(pat("[a-c]x", "bx"));
        assert!(!pat("[a-c]x", "dx"));
        assert!(pat("[^a-c]x", "dx"));
        assert!(!pat("[^a-c]x", "ax"));
        assert!(pat("[\\]]x", "]x"));
        assert!(pat("a\\*b", "a*b"));
        assert!(!pat("a\\*b", "axb"));
    }

    #[test]
    fn double_star() {
        assert!(pat("**/*.go", "main.go"));
        assert!(pat("**/*.go", "a/b/main.go"));
        assert!(!pat("**/*.go", "main.rs"));
        assert!(pat("a/**/b", "a/b"));
        assert!(pat("a/**/b", "a/x/y/b"));
        assert!(!pat("a/**/b", "a/x/c"));
        assert!(pat("a/**", "a/x/y"));
        assert!(pat("**/node_modules", "web/node_modules/x/y.js"));
        assert!(pat("**", "anything/at/all"));
        // moby's fast path: `**suffix` is a plain suffix test.
        assert!(pat("**.bak", "dir/file.bak"));
        assert!(pat("a*/**", "ab/c"));
        assert!(pat("a**", "abc/d"));
    }

    #[test]
    fn reinclude_last_match_wins() {
        let r = rules("*.md\n!README.md\n");
        assert!(r.is_excluded("CHANGES.md"));
        assert!(!r.is_excluded("README.md"));
        let r = rules("*.md\n!README.md\nREADME.md\n");
        assert!(r.is_excluded("README.md"), "the last matching pattern wins");
        let r = rules("!README.md\n*.md\n");
        assert!(r.is_excluded("README.md"));
    }

    #[test]
    fn excluded_dir_with_reinclude_inside() {
        let r = rules("docs\n!docs/keep.md\n");
        assert!(r.is_excluded("docs"));
        assert!(r.is_excluded("docs/other.md"));
        assert!(!r.is_excluded("docs/keep.md"));
        assert!(r.may_reinclude_under(b"docs"));
        assert!(!r.may_reinclude_under(b"src"));
        let r = rules("vendor\n!**/*.go\n");
        assert!(
            r.may_reinclude_under(b"vendor"),
            "a wildcard re-include reaches into any directory"
        );
        assert!(!r.is_excluded("vendor/x/y.go"));
        assert!(r.is_excluded("vendor/x/y.c"));
        let r = rules("*\n!src/*.rs\n");
        assert!(r.may_reinclude_under(b"src"));
        assert!(!r.may_reinclude_under(b"target"));
        assert!(
            !r.may_reinclude_under(b"src/nested"),
            "`*` does not cross `/`"
        );
        assert!(!r.is_excluded("src/main.rs"));
        assert!(r.is_excluded("src/nested/x.rs"));
        // No `!` pattern at all: excluded directories are never walked.
        assert!(!rules("docs\n").may_reinclude_under(b"docs"));
        // A re-include of a directory re-includes everything in it.
        let r = rules("*\n!src\n");
        assert!(!r.is_excluded("src/a/b.rs"));
        assert!(r.is_excluded("other/b.rs"));
    }

    #[test]
    fn comments_blank_lines_and_spaces() {
        let r = rules("# a comment\n\n   \n  secret.txt  \r\n#*.md\n");
        assert!(r.is_excluded("secret.txt"));
        assert!(!r.is_excluded("README.md"), "`#` lines are comments");
        assert!(!r.is_excluded("# a comment"));
        assert_eq!(r.patterns.len(), 1);
        // Only a `#` in the first column starts a comment.
        assert!(pat("  #x", "#x"));
    }

    #[test]
    fn slashes_trimmed_and_cleaned() {
        assert!(pat("/build", "build/out"));
        assert!(pat("build/", "build/out"));
        assert!(pat("./a/../build//x", "build/x"));
        assert!(!pat("/build", "src/build"));
        let r = rules("*.txt\n!/keep.txt\n");
        assert!(
            !r.is_excluded("keep.txt"),
            "a `!/` pattern re-includes from the root"
        );
        let r = rules("*.txt\n! keep.txt\n");
        assert!(!r.is_excluded("keep.txt"));
    }

    #[test]
    fn limits_are_errors_naming_them() {
        let many = "a\n".repeat(MAX_PATTERNS + 1);
        let err = IgnoreRules::parse(&many).expect_err("too many").to_string();
        assert!(err.contains("limit of 10000 patterns"), "{err}");
        assert!(IgnoreRules::parse(&"a\n".repeat(MAX_PATTERNS)).is_ok());
        let long = "*".repeat(MAX_PATTERN_BYTES + 1);
        let err = IgnoreRules::parse(&long).expect_err("too long").to_string();
        assert!(err.contains("over the limit of 4096 bytes"), "{err}");
        // Comments and blank lines do not count.
        let commented = format!("{}a\n", "# c\n\n".repeat(MAX_PATTERNS));
        assert!(IgnoreRules::parse(&commented).is_ok());
    }

    #[test]
    fn invalid_patterns_are_errors() {
        for bad in ["a[", "[]", "[a-]", "x\\", "!", "[z-a]"] {
            assert!(
                IgnoreRules::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(IgnoreRules::parse("").is_ok_and(|r| r.is_empty()));
    }

    #[test]
    fn caret_is_an_anchor_in_wildcard_patterns() {
        // moby hands `^` to the regexp unescaped: a no-op at the start, never
        // matching elsewhere; without wildcards the text is compared as is.
        assert!(pat("^a*", "abc"));
        assert!(!pat("a^*", "a^b"));
        assert!(pat("a^b", "a^b"));
    }

    #[test]
    fn non_utf8_paths() {
        let r = rules("*.bin\n");
        assert!(r.check_file(b"\xff\xfe.bin", &r.root()));
        assert!(!r.check_file(b"\xff\xfe.txt", &r.root()));
        let r = rules("?.bin\n");
        assert!(r.check_file(b"\xff.bin", &r.root()));
    }
}
