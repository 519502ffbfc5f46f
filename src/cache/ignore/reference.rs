//! The glob matcher as it was before the table one (memoised recursion,
//! superlinear on some patterns): the reference the table must agree with.

use proptest::strategy::Strategy;

use super::{Kind, Tok, clean, compile, decode, glob};

/// The matcher before the table one (memoised recursion).
fn glob_reference(toks: &[Tok], s: &[u8], under: bool) -> bool {
    let width = s.len() + 1;
    let mut memo = vec![0u8; (toks.len() + 1) * width];
    let mut m = Matcher {
        toks,
        s,
        under,
        memo: &mut memo,
        width,
    };
    m.at(0, 0)
}

struct Matcher<'a> {
    toks: &'a [Tok],
    s: &'a [u8],
    under: bool,
    memo: &'a mut [u8],
    width: usize,
}

impl Matcher<'_> {
    fn at(&mut self, t: usize, i: usize) -> bool {
        let n = self.s.len();
        if self.under && i == n {
            return t < self.toks.len();
        }
        if t == self.toks.len() {
            return i == n;
        }
        let slot = t * self.width + i;
        if self.memo[slot] != 0 {
            return self.memo[slot] == 1;
        }
        let r = match &self.toks[t] {
            Tok::Lit(b) => i < n && self.s[i] == *b && self.at(t + 1, i + 1),
            Tok::Any => {
                i < n && {
                    let (c, len) = decode(self.s, i);
                    c != '/' && self.at(t + 1, i + len)
                }
            }
            Tok::Class { negated, ranges } => {
                i < n && {
                    let (c, len) = decode(self.s, i);
                    let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                    inside != *negated && self.at(t + 1, i + len)
                }
            }
            Tok::Star => {
                let mut j = i;
                loop {
                    if self.at(t + 1, j) {
                        break true;
                    }
                    if j < n && self.s[j] != b'/' {
                        j += 1;
                    } else {
                        break false;
                    }
                }
            }
            Tok::DirStar if self.under => true,
            Tok::DirStar => {
                self.at(t + 1, i) || {
                    let mut found = false;
                    let mut j = i;
                    while j < n && self.s[j] != b'\n' {
                        if self.s[j] == b'/' && self.at(t + 1, j + 1) {
                            found = true;
                            break;
                        }
                        j += 1;
                    }
                    found
                }
            }
            Tok::Rest => self.under || (!self.s[i..].contains(&b'\n') && self.at(t + 1, n)),
            Tok::Caret => i == 0 && self.at(t + 1, i),
        };
        self.memo[slot] = if r { 1 } else { 2 };
        r
    }
}

fn toks_of(pattern: &str) -> Option<Vec<Tok>> {
    match compile(&clean(pattern)) {
        Ok(Kind::Glob(toks)) => Some(toks),
        _ => None,
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    #[test]
    fn the_table_matcher_agrees_with_the_reference(
        pattern in proptest::collection::vec(proptest::sample::select(vec![
            "**/", "**", "*", "?", "[a-b]", "[^/]", "\\*", "^", "a", "b", "/", "\n", "é",
        ]), 0..10).prop_map(|v| v.concat()),
        path in proptest::collection::vec(proptest::sample::select(vec![
            "a", "b", "/", "\n", "é", "*", "\u{ff}",
        ]), 0..12).prop_map(|v| v.concat()),
    ) {
        if let Some(toks) = toks_of(&pattern) {
            for under in [false, true] {
                proptest::prop_assert_eq!(
                    glob(&toks, path.as_bytes(), under),
                    glob_reference(&toks, path.as_bytes(), under),
                    "{:?} on {:?}, under: {}", pattern, path, under
                );
            }
        }
    }
}
