//! Versions of runtimes and the ranges packages ask for: npm's `engines.node`
//! ranges (`>=22.5.0`, `^20 || >=22`, `20.x`, `1.2 - 2.3`) and Python's
//! `Requires-Python` specifiers (`>=3.12`, `~=3.11`, `!=3.9.*`), over plain
//! release versions (a runtime's releases carry no pre-release tags).

use std::cmp::Ordering;
use std::fmt;

/// The longest range or specifier read (a package's `engines.node`, a
/// `Requires-Python`): longer ones are refused, not parsed.
pub const MAX_RANGE_LEN: usize = 256;
/// The largest version number taken in a part (a major, minor or patch).
const MAX_PART: u64 = 100_000;

/// `22.12.0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64, pub u64, pub u64);

impl Version {
    /// A plain `X.Y.Z` (a leading `v` allowed), nothing else.
    pub fn parse(text: &str) -> Option<Version> {
        let parts = parts(text.strip_prefix('v').unwrap_or(text))?;
        match parts[..] {
            [a, b, c] => Some(Version(a, b, c)),
            _ => None,
        }
    }

    pub fn major(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// `1`, `1.2`, `1.2.3`: each part a number of at most six digits.
fn parts(text: &str) -> Option<Vec<u64>> {
    let parts: Option<Vec<u64>> = text
        .split('.')
        .map(|p| {
            if p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok().filter(|n| *n <= MAX_PART)
        })
        .collect();
    parts.filter(|p| (1..=3).contains(&p.len()))
}

/// One comparator: `OP VERSION`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

type Comparator = (Op, Version);

/// An npm range: comparator sets joined by `||`, any one of which matches.
#[derive(Clone, Debug)]
pub struct NodeRange {
    sets: Vec<Vec<Comparator>>,
}

impl NodeRange {
    /// Parse an npm range (the syntax `engines.node` uses). Errors say what
    /// could not be read.
    pub fn parse(text: &str) -> Result<NodeRange, String> {
        if text.len() > MAX_RANGE_LEN {
            return Err(format!(
                "it is {} bytes, more than the {MAX_RANGE_LEN} a range may take",
                text.len()
            ));
        }
        let mut sets = Vec::new();
        for alternative in text.split("||") {
            let alternative = alternative.trim();
            let mut set = Vec::new();
            if let Some((low, high)) = alternative.split_once(" - ") {
                let (low, high) = (low.trim(), high.trim());
                set.push((Op::Ge, partial(low)?.floor()));
                set.extend(partial(high)?.at_most());
            } else {
                let mut words = alternative.split_whitespace().peekable();
                while let Some(word) = words.next() {
                    // `>= 18` (a space after the operator) is common in engines.
                    let word = if matches!(word, ">=" | "<=" | ">" | "<" | "=" | "^" | "~") {
                        match words.next() {
                            Some(next) => format!("{word}{next}"),
                            None => return Err(format!("`{word}` has no version after it")),
                        }
                    } else {
                        word.to_string()
                    };
                    set.extend(comparator(&word)?);
                }
            }
            sets.push(set);
        }
        Ok(NodeRange { sets })
    }

    pub fn matches(&self, v: Version) -> bool {
        self.sets.iter().any(|set| {
            set.iter().all(|(op, bound)| match op {
                Op::Ge => v >= *bound,
                Op::Gt => v > *bound,
                Op::Le => v <= *bound,
                Op::Lt => v < *bound,
                Op::Eq => v == *bound,
            })
        })
    }
}

/// A version with some parts left out or wild (`22`, `22.x`, `*`).
struct Partial(Vec<u64>);

impl Partial {
    fn floor(&self) -> Version {
        let p = &self.0;
        Version(
            p.first().copied().unwrap_or(0),
            p.get(1).copied().unwrap_or(0),
            p.get(2).copied().unwrap_or(0),
        )
    }

    /// Below the next version after everything this partial names.
    fn ceiling(&self) -> Option<Version> {
        let p = &self.0;
        match p.len() {
            0 => None,
            1 => Some(Version(p[0] + 1, 0, 0)),
            2 => Some(Version(p[0], p[1] + 1, 0)),
            _ => Some(Version(p[0], p[1], p[2] + 1)),
        }
    }

    fn at_most(&self) -> Vec<Comparator> {
        match (self.0.len(), self.ceiling()) {
            (3, _) => vec![(Op::Le, self.floor())],
            (_, Some(c)) => vec![(Op::Lt, c)],
            _ => Vec::new(),
        }
    }
}

fn partial(text: &str) -> Result<Partial, String> {
    let text = text.strip_prefix('v').unwrap_or(text);
    if matches!(text, "" | "*" | "x" | "X") {
        return Ok(Partial(Vec::new()));
    }
    let mut out = Vec::new();
    for part in text.split('.') {
        if matches!(part, "x" | "X" | "*") {
            break;
        }
        let n = parts(part)
            .and_then(|p| p.first().copied())
            .ok_or_else(|| format!("`{text}` is not a version"))?;
        out.push(n);
    }
    if out.len() > 3 || text.split('.').count() > 3 {
        return Err(format!("`{text}` is not a version"));
    }
    Ok(Partial(out))
}

fn comparator(word: &str) -> Result<Vec<Comparator>, String> {
    let (op, rest) = [">=", "<=", ">", "<", "=", "^", "~"]
        .iter()
        .find_map(|op| word.strip_prefix(op).map(|rest| (*op, rest)))
        .unwrap_or(("", word));
    let p = partial(rest)?;
    let floor = p.floor();
    Ok(match op {
        ">=" => vec![(Op::Ge, floor)],
        ">" => match p.ceiling() {
            Some(c) if p.0.len() < 3 => vec![(Op::Ge, c)],
            _ if p.0.is_empty() => vec![(Op::Lt, Version(0, 0, 0))],
            _ => vec![(Op::Gt, floor)],
        },
        "<" => vec![(Op::Lt, floor)],
        "<=" => p.at_most(),
        "~" => {
            let top = match p.0.len() {
                0 => None,
                1 => Some(Version(floor.0 + 1, 0, 0)),
                _ => Some(Version(floor.0, floor.1 + 1, 0)),
            };
            let mut out = vec![(Op::Ge, floor)];
            out.extend(top.map(|t| (Op::Lt, t)));
            out
        }
        "^" => {
            let top = match (p.0.len(), floor) {
                (0, _) => None,
                (_, Version(0, 0, _)) if p.0.len() == 3 => Some(Version(0, 0, floor.2 + 1)),
                (_, Version(0, m, _)) if p.0.len() >= 2 => Some(Version(0, m + 1, 0)),
                (_, Version(a, _, _)) => Some(Version(a + 1, 0, 0)),
            };
            let mut out = vec![(Op::Ge, floor)];
            out.extend(top.map(|t| (Op::Lt, t)));
            out
        }
        // `=1.2.3`, `1.2.3`, `1.2`, `1.x`, `*`.
        _ if p.0.len() == 3 => vec![(Op::Eq, floor)],
        _ => {
            let mut out = vec![(Op::Ge, floor)];
            out.extend(p.ceiling().map(|c| (Op::Lt, c)));
            out
        }
    })
}

/// Whether `version` (`3.13.5`) satisfies a `Requires-Python` specifier
/// (`>=3.10,<4`, `~=3.11`, `!=3.9.*`, `==3.12.*`). Errors say what could
/// not be read.
pub fn python_satisfies(spec: &str, version: Version) -> Result<bool, String> {
    if spec.len() > MAX_RANGE_LEN {
        return Err(format!(
            "it is {} bytes, more than the {MAX_RANGE_LEN} a specifier may take",
            spec.len()
        ));
    }
    let have = [version.0, version.1, version.2];
    for clause in spec.split(',') {
        let clause = clause.trim();
        if clause.is_empty() {
            continue;
        }
        let (op, rest) = ["~=", "==", "!=", ">=", "<=", ">", "<"]
            .iter()
            .find_map(|op| clause.strip_prefix(op).map(|rest| (*op, rest.trim())))
            .ok_or_else(|| format!("`{clause}` has no comparison operator"))?;
        let (text, wild) = match rest.strip_suffix(".*") {
            Some(t) => (t, true),
            None => (rest, false),
        };
        let want = parts(text).ok_or_else(|| format!("`{rest}` is not a version"))?;
        let cmp = |n: usize| -> Ordering {
            (0..n)
                .map(|i| have.get(i).unwrap_or(&0).cmp(want.get(i).unwrap_or(&0)))
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        };
        let ok = match (op, wild) {
            ("==", true) => cmp(want.len()) == Ordering::Equal,
            ("!=", true) => cmp(want.len()) != Ordering::Equal,
            ("==", false) => cmp(3) == Ordering::Equal,
            ("!=", false) => cmp(3) != Ordering::Equal,
            (">=", false) => cmp(3) != Ordering::Less,
            ("<=", false) => cmp(3) != Ordering::Greater,
            (">", false) => cmp(3) == Ordering::Greater,
            ("<", false) => cmp(3) == Ordering::Less,
            ("~=", false) if want.len() >= 2 => {
                cmp(3) != Ordering::Less && cmp(want.len() - 1) == Ordering::Equal
            }
            _ => return Err(format!("`{clause}` is not a specifier mcpod reads")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn npm_ranges_as_engines_write_them() {
        for (range, yes, no) in [
            (
                ">=22.5.0",
                &["22.5.0", "26.1.0"][..],
                &["22.4.9", "20.20.2"][..],
            ),
            (">= 18", &["18.0.0", "24.1.0"], &["16.20.2"]),
            ("^20 || >=22", &["20.1.0", "22.0.0"], &["21.7.3", "19.0.0"]),
            ("20.x", &["20.20.2"], &["21.0.0"]),
            ("~22.1", &["22.1.9"], &["22.2.0"]),
            (">=18 <25", &["24.9.9"], &["25.0.0"]),
            ("18 - 20", &["20.9.0"], &["21.0.0", "17.0.0"]),
            ("*", &["4.0.0"], &[]),
            ("", &["4.0.0"], &[]),
            ("22.12.0", &["22.12.0"], &["22.12.1"]),
            (">22", &["23.0.0"], &["22.9.0"]),
            ("<=20", &["20.9.0"], &["21.0.0"]),
        ] {
            let r = NodeRange::parse(range).unwrap();
            for y in yes {
                assert!(r.matches(v(y)), "{range} {y}");
            }
            for n in no {
                assert!(!r.matches(v(n)), "{range} {n}");
            }
        }
        for bad in [
            "latest",
            ">=abc",
            ">=1.2.3.4",
            ">= ",
            &"9".repeat(300),
            ">=9999999",
        ] {
            assert!(NodeRange::parse(bad).is_err(), "{bad}");
        }
        assert!(!NodeRange::parse(">=99").unwrap().matches(v("26.12.1")));
    }

    #[test]
    fn python_specifiers() {
        for (spec, yes, no) in [
            (">=3.12", &["3.12.0", "3.13.5"][..], &["3.11.2"][..]),
            (">=3.10,<4", &["3.11.2"], &["4.0.0", "3.9.1"]),
            ("~=3.11", &["3.11.2", "3.13.0"], &["3.10.9"]),
            ("!=3.11.*", &["3.13.5"], &["3.11.2"]),
            ("==3.13.*", &["3.13.5"], &["3.11.2"]),
            ("", &["3.11.2"], &[]),
        ] {
            for y in yes {
                assert!(python_satisfies(spec, v(y)).unwrap(), "{spec} {y}");
            }
            for n in no {
                assert!(!python_satisfies(spec, v(n)).unwrap(), "{spec} {n}");
            }
        }
        assert!(python_satisfies("3.11", v("3.11.0")).is_err());
        assert!(python_satisfies(&">=3".repeat(100), v("3.11.0")).is_err());
    }
}
