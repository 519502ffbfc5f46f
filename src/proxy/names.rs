//! Exported names: tools and prompts as `<session>_<server>__<name>`, always
//! matching `^[a-zA-Z0-9_-]{1,52}$`; resource URIs and URI templates as
//! `mcpod://sessions/<session>/servers/<server>/<the child's URI>`.
//!
//! Resource URIs keep the child's URI whole after the prefix, so a template
//! stays a template (a client expands `{id}` in the child's part) and the
//! way back is a prefix strip, with no table. Two sessions of one image offer
//! the same URIs; the prefix keeps them apart, as the session in a tool name
//! does. A URI that arrives without the prefix (one a child put in a tool
//! result, say) is routed by `Sessions::read_resource` when one server lists it.
//!
//! Why 52: clients put their own prefix in front of a server's tool names and
//! hold the result to the model APIs' 64 characters. Claude Code and Codex
//! call mcpod's `add` `mcp__mcpod__add` (12 characters more); Gemini CLI calls
//! it `mcp_mcpod_add` (10 more) and cuts names over 63 to 30 + `...` + 30. So
//! 64 − 12 = 52 survives all three unmangled under the name `mcpod`, and
//! mcpod's own shortening (with its hash) is the only one a name goes through.

/// The longest exported name (see the module's note).
pub const MAX: usize = 64 - CLIENT_PREFIX.len();

/// The longest prefix a known client adds: Claude Code's and Codex's.
pub const CLIENT_PREFIX: &str = "mcp__mcpod__";

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

/// Whether `name` is `exported(session, server, tool)`, without building
/// it when it needs no shortening (the pass-through asks on every call).
pub fn is_exported(name: &str, session: &str, server: &str, tool: &str) -> bool {
    let len = session.len() + 1 + server.len() + 2 + tool.len();
    let plain = len <= MAX
        && [session, server, tool]
            .iter()
            .all(|p| p.bytes().all(allowed));
    if !plain {
        return exported(session, server, tool) == name;
    }
    name.len() == len
        && name
            .strip_prefix(session)
            .and_then(|r| r.strip_prefix('_'))
            .and_then(|r| r.strip_prefix(server))
            .and_then(|r| r.strip_prefix("__"))
            == Some(tool)
}

/// Where every exported resource URI starts.
pub const URI_PREFIX: &str = "mcpod://sessions/";

/// The exported form of a child's resource URI (or URI template).
pub fn resource_uri(session: &str, server: &str, uri: &str) -> String {
    format!("{URI_PREFIX}{session}/servers/{server}/{uri}")
}

/// An exported resource URI, taken apart: (session, server, the child's URI).
pub fn parse_resource_uri(exported: &str) -> Option<(&str, &str, &str)> {
    let rest = exported.strip_prefix(URI_PREFIX)?;
    let (session, rest) = rest.split_once("/servers/")?;
    let (server, uri) = rest.split_once('/')?;
    (!session.contains('/') && !server.is_empty() && !uri.is_empty())
        .then_some((session, server, uri))
}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

#[cfg(test)]
mod tests {
    use super::{exported, is_exported, parse_resource_uri, resource_uri};

    #[test]
    fn a_name_is_recognised_as_exported_exactly_when_it_is() {
        let long = "t".repeat(80);
        let cases = [
            ("s1", "hello", "add"),
            ("s1", "hello", "a.b"),
            ("s1", "hello", long.as_str()),
            ("s1", "héllo", "add"),
            ("s1", "hello", ""),
        ];
        for (session, server, tool) in cases {
            let name = exported(session, server, tool);
            assert!(is_exported(&name, session, server, tool), "{name}");
            for other in [
                format!("{name}x"),
                name[..name.len() - 1].to_string(),
                exported("s2", server, tool),
                exported(session, server, "other"),
                "s1_hello_add".to_string(),
            ] {
                assert!(
                    !is_exported(&other, session, server, tool),
                    "{other} for {name}"
                );
            }
        }
        // Where the parts meet is part of the name.
        assert!(!is_exported("s1_a__b__c", "s1", "a__b", "d"));
        assert!(is_exported("s1_a__b__c", "s1", "a__b", "c"));
        assert!(is_exported("s1_a__b__c", "s1", "a", "b__c"));
    }

    #[test]
    fn resource_uris_round_trip_and_keep_templates_whole() {
        let uri = resource_uri("s1a2b3", "everything", "demo://resource/dynamic/text/{id}");
        assert_eq!(
            uri,
            "mcpod://sessions/s1a2b3/servers/everything/demo://resource/dynamic/text/{id}"
        );
        assert_eq!(
            parse_resource_uri(&uri.replace("{id}", "7")),
            Some(("s1a2b3", "everything", "demo://resource/dynamic/text/7"))
        );
        for not_ours in [
            "demo://resource/static/document/x",
            "mcpod://sessions/s1/logs/hello",
            "mcpod://sessions/s1/servers/everything/",
            "mcpod://sessions/a/b/servers/x/y",
        ] {
            assert_eq!(parse_resource_uri(not_ours), None, "{not_ours}");
        }
    }

    fn fits(name: &str) -> bool {
        (1..=52).contains(&name.len())
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

    /// A name at the budget passes as it is; one character more is shortened,
    /// and with each client's prefix every name stays within the client's
    /// limit (Claude Code and Codex 64, Gemini CLI 63), so no client cuts it.
    #[test]
    fn names_leave_room_for_client_prefixes() {
        let session = "s1a2b3";
        let at = exported(session, "srv", &"t".repeat(52 - "s1a2b3_srv__".len()));
        assert_eq!(at.len(), 52);
        assert!(
            !at.contains("tttt_") && at.ends_with("ttt"),
            "untouched: {at}"
        );
        let over = exported(session, "srv", &"t".repeat(53 - "s1a2b3_srv__".len()));
        assert_eq!(over.len(), 52, "{over}");
        assert_ne!(over, at);
        for len in [1, 20, 40, 41, 60, 100] {
            let name = exported(session, "filesystem", &"x".repeat(len));
            assert!(fits(&name), "{name}");
            assert!(format!("mcp__mcpod__{name}").len() <= 64);
            assert!(format!("mcp_mcpod_{name}").len() <= 63);
        }
        // Two long tools that share their first 60 characters stay apart.
        let a = exported(session, "fs", &format!("{}a", "x".repeat(60)));
        let b = exported(session, "fs", &format!("{}b", "x".repeat(60)));
        assert_ne!(a, b);
    }
}
