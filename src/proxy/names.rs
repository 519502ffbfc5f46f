//! Exported tool names: `<session>_<server>__<tool>`, always matching
//! `^[a-zA-Z0-9_-]{1,64}$`.

const MAX: usize = 64;

/// The upstream name of a child's tool. Names that would not fit the pattern are
/// sanitised (other characters become `_`) and, if still too long, shortened;
/// either way a hash of the full original is appended, so the result is
/// deterministic and two different tools never share a name.
pub fn exported(session: &str, server: &str, tool: &str) -> String {
    let raw = format!("{session}_{server}__{tool}");
    let valid = raw.len() <= MAX && raw.bytes().all(allowed);
    if valid {
        return raw;
    }
    let hash = blake3::hash(raw.as_bytes()).to_hex();
    let suffix = format!("_{}", &hash[..8]);
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii() && allowed(c as u8) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let keep = MAX - suffix.len();
    let mut out: String = clean.chars().take(keep).collect();
    out.push_str(&suffix);
    out
}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

#[cfg(test)]
mod tests {
    use super::exported;

    fn fits(name: &str) -> bool {
        (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    #[test]
    fn plain_names_pass_through() {
        assert_eq!(exported("s1a2b", "hello", "greet"), "s1a2b_hello__greet");
    }

    #[test]
    fn bad_characters_and_long_names_are_fixed_deterministically() {
        let dotted = exported("s1", "fs", "read.file");
        assert!(
            fits(&dotted) && dotted.starts_with("s1_fs__read_file_"),
            "{dotted}"
        );
        // The sanitised form of a different tool does not collide.
        assert_ne!(dotted, exported("s1", "fs", "read_file"));
        let long = exported("s1", "server", &"x".repeat(100));
        assert!(fits(&long), "{long}");
        assert_eq!(long, exported("s1", "server", &"x".repeat(100)));
        assert_ne!(long, exported("s1", "server", &"x".repeat(101)));
        let unicode = exported("s1", "srv", "héllo wörld");
        assert!(fits(&unicode), "{unicode}");
    }
}
