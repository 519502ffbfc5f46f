//! Properties of the parsers that read untrusted text: the ignore-file rules
//! and the Containerfile scan. Whatever the input, they return (no panic, no
//! stack overflow) and take time linear-ish in it, never exponential.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mcpod::cache::IgnoreRules;
use mcpod::image::containerfile::{base_images, builds_from_scratch};
use proptest::prelude::*;

/// A hang guard, not a timing: a case takes microseconds to milliseconds,
/// and an exponential matcher would take years on these inputs, so the bound
/// is far above what a loaded machine adds (the old 2 s failed a full local
/// run at 2.3 s while the provisioning tests ran pip beside it).
const BOUND: Duration = Duration::from_secs(30);
/// For the largest inputs allowed (a 4 KiB pattern on a 4 KiB path is 16M
/// steps of the matcher, a few hundred ms in a debug build).
const BOUND_AT_LIMITS: Duration = Duration::from_secs(60);

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    timed_within(BOUND, what, f)
}

fn timed_within<T>(bound: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    assert!(took < bound, "{what} took {took:?}");
    out
}

/// Pieces of ignore patterns, the special ones often.
fn pattern_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "**/", "**", "*", "?", "[a-c]", "[^/]", "[", "]", "\\*", "\\", "!", "^", "a", "b", "/",
        ".", "..", " ", "é", "\n", "#",
    ])
}

fn path_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "/", ".", "é", "*", "\n", "ab/"])
}

fn joined(
    pieces: impl Strategy<Value = &'static str>,
    max: usize,
) -> impl Strategy<Value = String> {
    prop::collection::vec(pieces, 0..max).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ignore_rules_never_panic_on_any_text(text in any::<String>(), path in any::<String>()) {
        if let Ok(rules) = IgnoreRules::parse(&text) {
            timed("matching", || rules.is_excluded(&path));
            timed("matching under", || rules.may_reinclude_under(path.as_bytes()));
        }
    }

    #[test]
    fn ignore_rules_never_panic_on_pattern_syntax(
        text in joined(pattern_piece(), 48),
        path in joined(path_piece(), 48),
    ) {
        if let Ok(rules) = IgnoreRules::parse(&text) {
            timed("matching", || rules.is_excluded(&path));
            let state = rules.root();
            timed("check_dir", || rules.check_dir(path.as_bytes(), &state));
            timed("check_file", || rules.check_file(path.as_bytes(), &state));
            timed("under", || rules.may_reinclude_under(path.as_bytes()));
        }
    }

    #[test]
    fn containerfile_scan_never_panics(
        text in any::<String>(),
        args in prop::collection::btree_map("[A-Z_]{1,3}", any::<String>(), 0..4),
    ) {
        timed("base_images", || base_images(&text, &args));
        timed("builds_from_scratch", || builds_from_scratch(&text));
    }

    #[test]
    fn containerfile_scan_on_instruction_soup(
        lines in prop::collection::vec(
            (
                prop::sample::select(vec!["FROM", "from", "ARG", "COPY", "RUN", "ADD", "#", "", "LABEL"]),
                joined(
                    prop::sample::select(vec![
                        " ", "${A}", "$A", "${A:-x}", "${", "}", "--from=", "--mount=type=bind,from=",
                        "AS", " as ", "b", "=", "\"", "'", "\\", "scratch", "0", "localhost/x:1",
                    ]),
                    16,
                ),
            ),
            0..24,
        ),
    ) {
        let text: String = lines.iter().map(|(op, rest)| format!("{op} {rest}\n")).collect();
        let args = BTreeMap::from([("A".to_string(), "${A}${A}".to_string())]);
        let bases = timed("base_images", || base_images(&text, &args));
        for base in &bases {
            prop_assert!(!base.is_empty());
            prop_assert!(!base.eq_ignore_ascii_case("scratch"));
        }
        timed("builds_from_scratch", || builds_from_scratch(&text));
    }
}

/// Patterns made to blow up a backtracking matcher or a deep recursion.
#[test]
fn pathological_ignore_patterns_are_bounded() {
    let long_path = format!("{}x", "a/".repeat(2000));
    let flat_path = "a".repeat(4000);
    let cases = [
        format!("{}b", "*".repeat(3000)),
        format!("{}b", "*a".repeat(1500)),
        format!("{}b", "**/".repeat(2000)),
        format!("{}b", "a/**/".repeat(800)),
        format!("{}b", "?*".repeat(1500)),
        format!("!{}b", "**/*".repeat(1000)),
        "[a-z]".repeat(3000),
    ];
    for pattern in &cases {
        let rules = timed("parsing", || IgnoreRules::parse(pattern));
        let Ok(rules) = rules else { continue };
        // One match on the longest paths there are (the walk matches each
        // entry once, its parents' results carried down).
        let state = rules.root();
        for path in [&long_path, &flat_path] {
            timed_within(
                BOUND_AT_LIMITS,
                &format!("{:.20}… on a {} byte path", pattern, path.len()),
                || {
                    rules.check_file(path.as_bytes(), &state);
                    rules.check_dir(path.as_bytes(), &state);
                    rules.may_reinclude_under(path.as_bytes());
                },
            );
        }
        // is_excluded matches every parent too: a deep path, not the deepest.
        timed("is_excluded", || rules.is_excluded(&"a/".repeat(100)));
    }
}

/// An ignore file at the 1 MiB read limit parses and matches in bounded time,
/// or is refused as too big a rule set (with the limit in the message).
#[test]
fn a_huge_ignore_file_is_bounded() {
    for text in [
        "a*b\n".repeat(250_000),
        format!("{}\n", "*".repeat(1 << 20)),
        "!**/x\n".repeat(170_000),
    ] {
        match timed("parsing", || IgnoreRules::parse(&text)) {
            Ok(rules) => {
                timed("matching", || rules.is_excluded("some/dir/file.txt"));
            }
            Err(e) => assert!(e.to_string().contains("limit"), "{e}"),
        }
    }
}

/// `${A}` expansions cannot multiply: each word is bounded, whatever the
/// values and however many references a word makes.
#[test]
fn arg_substitution_cannot_blow_up() {
    let big = "x".repeat(64 * 1024);
    let refs = "${A}".repeat(100_000);
    let text = format!("ARG A={big}\nFROM {refs}\nCOPY --from={refs} /a /a\n");
    let args = BTreeMap::from([("A".to_string(), big.clone())]);
    let bases = timed("base_images", || base_images(&text, &args));
    assert!(
        bases.iter().all(|b| b.len() <= 64 * 1024),
        "a base of {} bytes",
        bases.iter().map(String::len).max().unwrap_or(0)
    );

    // A substitution loop: values are not substituted again.
    let text = "ARG A=${A}${A}\nARG B=$A$A\nFROM ${A}${B}\n";
    let args = BTreeMap::from([("A".to_string(), "${A}${A}".to_string())]);
    let bases = timed("loop", || base_images(text, &args));
    assert_eq!(bases, ["${A}${A}$A$A"]);
}

/// Many distinct bases and endless continuation lines stay linear.
#[test]
fn many_bases_and_continuations_are_linear() {
    let many: String = (0..50_000)
        .map(|i| format!("COPY --from=localhost/b{i}:1 /a /a\n"))
        .collect();
    let text = format!("FROM scratch\n{many}");
    let bases = timed("many bases", || base_images(&text, &BTreeMap::new()));
    assert_eq!(bases.len(), 50_000);
    let cont = format!("FROM \\\n{}localhost/x:1\n", "\\\n".repeat(200_000));
    assert_eq!(
        timed("continuations", || base_images(&cont, &BTreeMap::new())),
        ["localhost/x:1"]
    );
}
