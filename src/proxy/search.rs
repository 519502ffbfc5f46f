//! find_tools' ranking: BM25 over each tool's words (its name split at
//! `_`, `-`, `.` and camelCase, its server's name, its title, its arguments'
//! names, its description and its arguments' descriptions, each field
//! weighted), English stems (Snowball, `rust-stemmers`), and partial words: a
//! query word that begins a tool's word, or a tool's word that begins it,
//! counts half. Common words (a, the, to, …) are left out of both sides.
//!
//! A tool's words are read once, when its server lists it ([`Doc::new`], kept
//! beside the tool in the catalog); a query then costs a binary search per
//! word and tool. The caller walks its tools twice: [`Query::tally`] for the
//! statistics BM25 needs (how many tools have each word), then
//! [`Query::score`]. When nothing scores, [`Query::nearness`] ranks the tools
//! whose names are spelled most like the query's words.

use std::collections::HashMap;
use std::sync::LazyLock;

use rmcp::model::Tool;
use rust_stemmers::{Algorithm, Stemmer};

/// The longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 1024;
/// The most words in a query.
pub const MAX_QUERY_WORDS: usize = 32;
/// The longest word kept, in bytes (a longer one is cut there).
const MAX_WORD_BYTES: usize = 64;
/// Parts of a camelCase word kept beside the whole word.
const MAX_PARTS: usize = 8;
/// Words of a tool read for its search terms; a longer description is
/// searched by its beginning.
const MAX_DOC_WORDS: usize = 512;
/// Bytes of one text field (a description) read for words.
const MAX_FIELD_BYTES: usize = 16 * 1024;
/// Arguments of a tool whose names and descriptions are read.
const MAX_ARGS: usize = 64;
/// Words of a tool's name and server's name kept for a near miss.
const MAX_NAMES: usize = 16;
/// Query words compared by spelling for a near miss.
const MAX_NEAR_WORDS: usize = 8;
/// Characters of a word compared by spelling.
const MAX_NEAR_CHARS: usize = 32;

/// How much a word counts by where it is.
const NAME: f32 = 3.0;
const TITLE: f32 = 2.0;
const ARGUMENT: f32 = 1.5;
const SERVER: f32 = 1.5;
const DESCRIPTION: f32 = 1.0;
const ARGUMENT_DESCRIPTION: f32 = 0.5;
/// What a partial word counts against a whole one.
const PARTIAL: f32 = 0.5;
/// The shortest word that matches as the beginning of another.
const MIN_PARTIAL_CHARS: usize = 3;
/// BM25's term saturation and length normalisation.
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// English words too common to tell tools apart, sorted.
const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "an", "and", "any", "are", "as", "at", "be", "by", "can", "could", "do",
    "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its",
    "me", "my", "need", "of", "on", "or", "our", "please", "should", "so", "some", "that", "the",
    "their", "them", "then", "there", "these", "this", "those", "to", "tool", "tools", "us",
    "want", "was", "we", "what", "when", "which", "who", "will", "with", "would", "you", "your",
];

static STEMMER: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// The words of `text`, lowercased: each run of letters and digits, and when
/// it is camelCase (`readFile`, `HTTPServer`, `SQLite`) also its parts (at most
/// [`MAX_PARTS`]), so that `read file` finds `readFile` and `sqlite` finds
/// `SQLite`; each cut at [`MAX_WORD_BYTES`].
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    runs(text).flat_map(|run| {
        let parts = camel_parts(run);
        let parts = if parts.len() > 1 { parts } else { Vec::new() };
        std::iter::once(run)
            .chain(parts.into_iter().take(MAX_PARTS))
            .map(lowercase_cut)
    })
}

/// The runs of letters and digits of `text`.
fn runs(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|run| !run.is_empty())
}

/// `word` lowercased, cut at [`MAX_WORD_BYTES`] on a character boundary.
fn lowercase_cut(word: &str) -> String {
    let mut word = word.to_lowercase();
    if word.len() > MAX_WORD_BYTES {
        let mut end = MAX_WORD_BYTES;
        while !word.is_char_boundary(end) {
            end -= 1;
        }
        word.truncate(end);
    }
    word
}

/// `run` (letters and digits) split before an upper-case letter that follows
/// a lower-case one, or that begins a word after an acronym.
fn camel_parts(run: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = run.char_indices().collect();
    for i in 1..chars.len() {
        let (at, c) = chars[i];
        let prev = chars[i - 1].1;
        // An acronym ends before a capital that begins a word (`HTTPServer`),
        // but not before a plural's `s` (`URLs`).
        let next_lower = chars.get(i + 1).is_some_and(|(_, n)| n.is_lowercase())
            && !(i + 2 == chars.len() && chars[i + 1].1 == 's');
        if c.is_uppercase() && (prev.is_lowercase() || (prev.is_uppercase() && next_lower)) {
            parts.push(&run[start..at]);
            start = at;
        }
    }
    parts.push(&run[start..]);
    parts
}

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// The search term of a lowercased word: its English stem.
fn term(word: &str) -> String {
    STEMMER.stem(word).into_owned()
}

/// The first [`MAX_FIELD_BYTES`] of `text`, cut at a character boundary.
fn head(text: &str) -> &str {
    if text.len() <= MAX_FIELD_BYTES {
        return text;
    }
    let mut end = MAX_FIELD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// One tool's search terms.
#[derive(Debug, Default)]
pub struct Doc {
    /// Each term and how much it counts here, sorted by term.
    terms: Vec<(Box<str>, f32)>,
    /// Its weighted length, for BM25's normalisation.
    len: f32,
    /// The words of its name and its server's name as written (lowercased),
    /// for a near miss.
    names: Vec<Box<str>>,
}

impl Doc {
    /// The terms of `tool` of `server`, from at most [`MAX_DOC_WORDS`] words.
    pub fn new(server: &str, tool: &Tool) -> Doc {
        let mut weights: HashMap<String, f32> = HashMap::new();
        let mut stems: HashMap<String, String> = HashMap::new();
        let mut budget = MAX_DOC_WORDS;
        let mut len = 0.0;
        let mut names = Vec::new();
        let mut add = |text: &str, weight: f32, names: Option<&mut Vec<Box<str>>>| {
            let mut names = names;
            for word in words(head(text)) {
                if budget == 0 {
                    return;
                }
                budget -= 1;
                if let Some(names) = names.as_deref_mut()
                    && names.len() < MAX_NAMES
                    && !names.iter().any(|n| **n == *word)
                {
                    names.push(word.clone().into());
                }
                if is_stop_word(&word) {
                    continue;
                }
                let stem = match stems.get(&word) {
                    Some(stem) => stem.clone(),
                    None => {
                        let stem = term(&word);
                        stems.insert(word, stem.clone());
                        stem
                    }
                };
                *weights.entry(stem).or_default() += weight;
                len += weight;
            }
        };
        add(&tool.name, NAME, Some(&mut names));
        add(server, SERVER, Some(&mut names));
        if let Some(title) = &tool.title {
            add(title, TITLE, None);
        }
        let arguments = tool
            .input_schema
            .get("properties")
            .and_then(|p| p.as_object());
        for (name, _) in arguments.into_iter().flatten().take(MAX_ARGS) {
            add(name, ARGUMENT, None);
        }
        if let Some(description) = &tool.description {
            add(description, DESCRIPTION, None);
        }
        for (_, spec) in arguments.into_iter().flatten().take(MAX_ARGS) {
            if let Some(text) = spec.get("description").and_then(|d| d.as_str()) {
                add(text, ARGUMENT_DESCRIPTION, None);
            }
        }
        let mut terms: Vec<(Box<str>, f32)> =
            weights.into_iter().map(|(t, w)| (t.into(), w)).collect();
        terms.sort_by(|a, b| a.0.cmp(&b.0));
        Doc { terms, len, names }
    }

    /// How much `term` counts here: whole, or as part of a word (it begins
    /// one of the tool's terms, or one of them begins it).
    fn weight(&self, term: &str) -> f32 {
        let at = self.terms.partition_point(|(t, _)| **t < *term);
        let mut weight = 0.0;
        let mut i = at;
        if self.terms.get(i).is_some_and(|(t, _)| **t == *term) {
            weight += self.terms[i].1;
            i += 1;
        }
        if term.chars().count() >= MIN_PARTIAL_CHARS {
            // The terms that begin with `term` follow it in sorted order.
            while let Some((t, w)) = self.terms.get(i)
                && t.starts_with(term)
            {
                weight += w * PARTIAL;
                i += 1;
            }
            // The tool's terms that `term` begins with, shorter than it.
            for (end, _) in term.char_indices().skip(MIN_PARTIAL_CHARS) {
                let prefix = &term[..end];
                if let Ok(j) = self.terms[..at].binary_search_by(|(t, _)| (**t).cmp(prefix)) {
                    weight += self.terms[j].1 * PARTIAL;
                }
            }
        }
        weight
    }
}

/// A parsed query: its search terms, and its words as written.
#[derive(Debug)]
pub struct Query {
    terms: Vec<String>,
    words: Vec<String>,
}

/// What BM25 needs of the tools searched: how many, their total length, and
/// how many have each of the query's terms.
#[derive(Debug)]
pub struct Stats {
    docs: usize,
    len: f64,
    with: Vec<usize>,
}

impl Stats {
    /// How many tools were counted.
    pub fn docs(&self) -> usize {
        self.docs
    }
}

impl Query {
    /// Parse `text`: an error names the bound it is over.
    pub fn parse(text: &str) -> Result<Query, String> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(format!(
                "a query of {} bytes is over mcpod's limit of {MAX_QUERY_BYTES} bytes (MAX_QUERY_BYTES)",
                text.len()
            ));
        }
        let count = runs(text).count();
        if count > MAX_QUERY_WORDS {
            return Err(format!(
                "a query of {count} words is over mcpod's limit of {MAX_QUERY_WORDS} words (MAX_QUERY_WORDS)"
            ));
        }
        let words: Vec<String> = words(text).collect();
        let mut terms: Vec<String> = Vec::new();
        for word in words.iter().filter(|w| !is_stop_word(w)) {
            let t = term(word);
            if !terms.contains(&t) {
                terms.push(t);
            }
        }
        Ok(Query { terms, words })
    }

    /// No words at all: every tool matches.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The query's words as read (letters and digits, lowercased).
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Statistics over no tools yet; [`Query::tally`] adds each.
    pub fn stats(&self) -> Stats {
        Stats {
            docs: 0,
            len: 0.0,
            with: vec![0; self.terms.len()],
        }
    }

    /// Count `doc` into `stats`.
    pub fn tally(&self, stats: &mut Stats, doc: &Doc) {
        stats.docs += 1;
        stats.len += f64::from(doc.len);
        for (term, with) in self.terms.iter().zip(&mut stats.with) {
            if doc.weight(term) > 0.0 {
                *with += 1;
            }
        }
    }

    /// BM25 of `doc` against the tools `stats` counted: 0 when it shares no
    /// word with the query.
    pub fn score(&self, stats: &Stats, doc: &Doc) -> f64 {
        let docs = stats.docs.max(1) as f32;
        let average = (stats.len / stats.docs.max(1) as f64).max(1.0) as f32;
        let norm = K1 * (1.0 - B + B * doc.len / average);
        let mut score = 0.0;
        for (term, &with) in self.terms.iter().zip(&stats.with) {
            let tf = doc.weight(term);
            if tf > 0.0 {
                let with = with as f32;
                let idf = (1.0 + (docs - with + 0.5) / (with + 0.5)).ln();
                score += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        f64::from(score)
    }

    /// How like the query's words the words of `doc`'s name and server are
    /// spelled, from 0 (nothing alike) to 1 (the same words).
    pub fn nearness(&self, doc: &Doc) -> f64 {
        let words: Vec<&String> = self.words.iter().take(MAX_NEAR_WORDS).collect();
        if words.is_empty() {
            return 0.0;
        }
        let total: f64 = words
            .iter()
            .map(|w| {
                doc.names
                    .iter()
                    .map(|n| similarity(w, n))
                    .fold(0.0, f64::max)
            })
            .sum();
        total / words.len() as f64
    }
}

/// `docs` ranked against `query`, for a list in hand (`Sessions::find_tools`
/// walks its servers' catalogs the same way, a lock at a time): the index
/// and score of each that shares a word with it (every one for an empty
/// query), best first, equals in their order.
pub fn rank(query: &Query, docs: &[Doc]) -> Vec<(usize, f64)> {
    let mut stats = query.stats();
    docs.iter().for_each(|d| query.tally(&mut stats, d));
    let mut ranked: Vec<(usize, f64)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (i, query.score(&stats, d)))
        .filter(|(_, score)| *score > 0.0 || query.is_empty())
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
}

/// 1 less the edit distance of `a` and `b` over the longer's length, each
/// cut at [`MAX_NEAR_CHARS`] characters.
fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().take(MAX_NEAR_CHARS).collect();
    let b: Vec<char> = b.chars().take(MAX_NEAR_CHARS).collect();
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 0.0;
    }
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    1.0 - row[b.len()] as f64 / longest as f64
}

#[cfg(test)]
mod tests {

    use super::*;

    fn tool(name: &str, description: &str, arguments: serde_json::Value) -> Tool {
        let schema = serde_json::json!({"type": "object", "properties": arguments});
        let serde_json::Value::Object(schema) = schema else {
            unreachable!("an object")
        };
        Tool::new(
            name.to_string(),
            description.to_string(),
            std::sync::Arc::new(schema),
        )
    }

    fn words_of(text: &str) -> Vec<String> {
        words(text).collect()
    }

    /// Scores of `query` against `tools` (of server `srv`), best first, as names.
    fn ranked(query: &str, tools: &[Tool]) -> Vec<(String, f64)> {
        let query = Query::parse(query).expect("query");
        let docs: Vec<Doc> = tools.iter().map(|t| Doc::new("srv", t)).collect();
        rank(&query, &docs)
            .into_iter()
            .map(|(i, score)| (tools[i].name.to_string(), score))
            .collect()
    }

    #[test]
    fn names_split_at_snake_kebab_dots_and_camel_case() {
        assert_eq!(words_of("read_query"), ["read", "query"]);
        assert_eq!(
            words_of("list-allowed.directories"),
            ["list", "allowed", "directories"]
        );
        assert_eq!(words_of("readFile"), ["readfile", "read", "file"]);
        assert_eq!(
            words_of("HTTPServer getURLs"),
            ["httpserver", "http", "server", "geturls", "get", "urls"]
        );
        assert_eq!(words_of("SQLite"), ["sqlite", "sq", "lite"]);
        assert_eq!(
            words_of("git_log t50 sha256"),
            ["git", "log", "t50", "sha256"]
        );
        assert_eq!(
            words_of("ReadTextFile"),
            ["readtextfile", "read", "text", "file"]
        );
        assert_eq!(words_of("aBcDeFgHiJkLmN").len(), 1 + MAX_PARTS);
    }

    #[test]
    fn unicode_words_are_kept_and_lowercased_and_long_ones_cut() {
        assert_eq!(
            words_of("Données café_Ünïcode"),
            ["données", "café", "ünïcode"]
        );
        assert_eq!(words_of("数据库 查询"), ["数据库", "查询"]);
        let long = "é".repeat(100);
        let cut = words_of(&long);
        assert_eq!(cut.len(), 1);
        assert!(cut[0].len() <= MAX_WORD_BYTES && cut[0].chars().all(|c| c == 'é'));
    }

    #[test]
    fn an_empty_query_has_no_words_and_matches_every_tool() {
        for text in ["", "   ", "\t\n", "--- ___ ..."] {
            let query = Query::parse(text).expect("empty");
            assert!(query.is_empty(), "{text:?}");
        }
        let query = Query::parse("the a of").expect("stop words");
        assert!(!query.is_empty());
        assert!(
            ranked(
                "the a of",
                &[tool("read", "Read the file", serde_json::json!({}))]
            )
            .is_empty()
        );
    }

    #[test]
    fn stems_and_partial_words_match() {
        let tools = [
            tool(
                "read_query",
                "Execute a SELECT query on the SQLite database",
                serde_json::json!({"query": {"type": "string"}}),
            ),
            tool(
                "list_directory",
                "List the entries of a directory",
                serde_json::json!({"path": {}}),
            ),
            tool(
                "fetch",
                "Fetches a URL from the internet",
                serde_json::json!({"url": {}}),
            ),
        ];
        assert_eq!(ranked("reads a SQLite query", &tools)[0].0, "read_query");
        assert_eq!(ranked("sql", &tools)[0].0, "read_query", "a partial word");
        assert_eq!(ranked("listing directories", &tools)[0].0, "list_directory");
        assert_eq!(ranked("fetching urls", &tools)[0].0, "fetch");
        assert_eq!(ranked("fetching urls", &tools).len(), 1);
    }

    #[test]
    fn a_word_in_the_name_counts_more_than_one_in_a_description() {
        let tools = [
            tool(
                "write_file",
                "Write a file; see also search",
                serde_json::json!({}),
            ),
            tool(
                "search_files",
                "Find files by pattern",
                serde_json::json!({}),
            ),
        ];
        assert_eq!(ranked("search", &tools)[0].0, "search_files");
    }

    #[test]
    fn nothing_scores_and_the_nearest_names_are_spelled_alike() {
        let tools = [
            tool("read_query", "", serde_json::json!({})),
            tool("list_tables", "", serde_json::json!({})),
        ];
        assert!(ranked("raed_qeury", &tools).is_empty());
        let query = Query::parse("raed_qeury").expect("query");
        let near: Vec<f64> = tools
            .iter()
            .map(|t| query.nearness(&Doc::new("srv", t)))
            .collect();
        assert!(near[0] > near[1] && near[0] > 0.4, "{near:?}");
    }

    #[test]
    fn a_query_over_its_bounds_is_refused_naming_the_bound() {
        let long = Query::parse(&"x".repeat(1 << 20)).expect_err("1 MB");
        assert!(
            long.contains("1048576 bytes") && long.contains("MAX_QUERY_BYTES"),
            "{long}"
        );
        let many = Query::parse(&"ab ".repeat(10_000)).expect_err("10,000 words");
        assert!(many.contains("MAX_QUERY_BYTES"), "{many}");
        let words = Query::parse(&"ab ".repeat(MAX_QUERY_WORDS + 1)).expect_err("words");
        assert!(
            words.contains("33 words") && words.contains("MAX_QUERY_WORDS"),
            "{words}"
        );
        assert!(Query::parse(&"ab ".repeat(MAX_QUERY_WORDS)).is_ok());
    }

    /// Hostile inputs: control characters are separators, a 1 MB description
    /// is read by its beginning, and each answers at once.
    #[test]
    fn hostile_queries_and_tools_answer_quickly_within_bounds() {
        let control = Query::parse("\u{0}read\u{1b}[31m\u{7f}query\r\n\u{202e}").expect("control");
        assert_eq!(control.words(), ["read", "31m", "query"]);
        let huge = tool(
            "huge",
            &"lorem ipsum dolor sit amet consectetur ".repeat(1 << 15),
            serde_json::json!({}),
        );
        assert!(huge.description.as_deref().unwrap_or_default().len() > 1 << 20);
        let doc = Doc::new("srv", &huge);
        assert!(doc.terms.len() <= MAX_DOC_WORDS && doc.len <= MAX_DOC_WORDS as f32 * NAME);
        let long_name = tool(&"part_".repeat(1 << 12), "", serde_json::json!({}));
        assert_eq!(Doc::new("srv", &long_name).names.len(), 1, "one word, once");
        let many_names = (0..1000)
            .map(|i| format!("n{i}"))
            .collect::<Vec<_>>()
            .join("_");
        let many = Doc::new("srv", &tool(&many_names, "", serde_json::json!({})));
        assert_eq!(many.names.len(), MAX_NAMES);
        let one_word = "w".repeat(1 << 20);
        let huge_word = tool(&one_word, &one_word, serde_json::json!({}));
        let word_doc = Doc::new("srv", &huge_word);
        assert!(
            word_doc
                .terms
                .iter()
                .all(|(t, _)| t.len() <= MAX_WORD_BYTES)
        );
        let query = Query::parse(&"ipsum ".repeat(MAX_QUERY_WORDS)).expect("query");
        let mut stats = query.stats();
        query.tally(&mut stats, &doc);
        query.tally(&mut stats, &word_doc);
        assert!(query.score(&stats, &doc) > 0.0);
        assert!(query.nearness(&word_doc) >= 0.0);
    }
}
