//! The shared-mode entry: a client reaching a running `mcpod serve --listen`
//! over Streamable HTTP instead of starting mcpod. The token goes in
//! `Authorization: Bearer`, read by the client from an environment variable
//! when it starts; the file holds the URL and the variable's name, never a
//! token. Each client's own syntax for that reference is in `authorization`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Client;
use super::json::J;
use crate::{Error, Result};

/// The variable the token is read from unless `--token-env` names another.
pub const DEFAULT_TOKEN_ENV: &str = "MCPOD_TOKEN";

const MAX_URL: usize = 2048;
const MAX_ENV_NAME: usize = 128;

/// Keys only a stdio entry has. A JSON entry switched to HTTP drops them: a
/// client that finds `command` and `url` together picks one of its own.
pub(super) const JSON_STDIO_KEYS: &[&str] = &["command", "args", "env", "cwd", "envFile"];
/// Keys only an HTTP (or SSE) entry has, dropped when it becomes stdio again.
pub(super) const JSON_HTTP_KEYS: &[&str] = &["url", "httpUrl", "headers"];
/// Codex refuses a table that mixes the two (`url is not supported for
/// stdio`, `env is not supported for streamable_http`), and an inline
/// `bearer_token` in either.
pub(super) const TOML_STDIO_KEYS: &[&str] =
    &["command", "args", "env", "env_vars", "cwd", "bearer_token"];
pub(super) const TOML_HTTP_KEYS: &[&str] = &[
    "url",
    "bearer_token_env_var",
    "bearer_token",
    "http_headers",
    "env_http_headers",
    "http_headers_helper",
    "oauth_resource",
];

/// Where a client reaches mcpod, and the variable holding its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    url: String,
    token_env: String,
}

impl Remote {
    /// A checked URL and variable name (see `check_url`, `check_env_name`).
    pub fn new(url: &str, token_env: &str) -> Result<Remote> {
        check_url(url)?;
        check_env_name(token_env)?;
        Ok(Remote {
            url: url.to_string(),
            token_env: token_env.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token_env(&self) -> &str {
        &self.token_env
    }

    /// The `Authorization` header as the client's file spells it: a
    /// reference the client expands from its environment when it starts.
    fn authorization(&self, client: Client) -> String {
        let name = &self.token_env;
        match client {
            // Claude Code expands `${VAR}` in .mcp.json (command, args, env,
            // url, headers); Gemini CLI every string of settings.json.
            Client::ClaudeCode | Client::Gemini => format!("Bearer ${{{name}}}"),
            // Cursor and VS Code: `${env:NAME}`.
            Client::Cursor | Client::Vscode => format!("Bearer ${{env:{name}}}"),
            // Codex names the variable (`bearer_token_env_var`); Claude
            // Desktop is refused before an entry is made.
            Client::Codex | Client::ClaudeDesktop => String::new(),
        }
    }

    /// The entry's own keys for a JSON client (Claude Desktop has none:
    /// `Client::check_http` refuses it first).
    pub(super) fn json_entry(&self, client: Client) -> Vec<(String, J)> {
        let url = J::Str(self.url.clone());
        let mut entry = Vec::new();
        match client {
            Client::ClaudeCode | Client::Vscode => {
                entry.push(("type".to_string(), J::Str("http".into())));
                entry.push(("url".to_string(), url));
            }
            Client::Cursor => entry.push(("url".to_string(), url)),
            // `url` is Gemini CLI's SSE transport; Streamable HTTP is `httpUrl`.
            Client::Gemini => entry.push(("httpUrl".to_string(), url)),
            Client::Codex | Client::ClaudeDesktop => return entry,
        }
        let auth = self.authorization(client);
        entry.push((
            "headers".to_string(),
            J::Obj(vec![("Authorization".to_string(), J::Str(auth))]),
        ));
        entry
    }
}

impl Client {
    /// Whether the client's file can point it at a URL. Claude Desktop's
    /// file only starts commands; its remote servers (Connectors) are added
    /// in its settings and reached from Anthropic's cloud, not this machine.
    pub fn check_http(self) -> Result<()> {
        if self != Client::ClaudeDesktop {
            return Ok(());
        }
        Err(Error::invalid(
            "--client",
            "claude-desktop",
            "Claude Desktop takes no --url: its claude_desktop_config.json only starts commands \
(stdio), and its Connectors are reached from Anthropic's cloud, not from this machine",
            "register the stdio entry (`mcpod config --client claude-desktop --write`, without \
--url: Claude Desktop then starts its own mcpod), or use a client that speaks HTTP \
(claude-code, cursor, codex, vscode, gemini)",
        ))
    }

    /// What to do before the client starts, besides its approval: the token
    /// in its environment, and mcpod listening.
    pub fn http_note(self, remote: &Remote) -> String {
        let name = remote.token_env();
        let client = match self {
            Client::ClaudeCode => "Claude Code",
            Client::ClaudeDesktop => "Claude Desktop",
            Client::Cursor => "Cursor",
            Client::Codex => "Codex",
            Client::Vscode => "VS Code",
            Client::Gemini => "Gemini CLI",
        };
        format!(
            "The entry reaches {url} with Authorization: Bearer and the token from ${name}, \
which {client} reads from its environment when it starts (the file holds only the name): \
start `mcpod serve --listen` first, and set {name} where {client} starts, e.g. `export \
{name}=$(mcpod token create NAME)`.",
            url = remote.url(),
        )
    }
}

/// `headers` set to `new`'s members and keeping the user's others: a member
/// of `old` whose name matches one of `new`'s (ignoring case, as HTTP does)
/// is replaced where it stood.
pub(super) fn merge_headers(old: Option<&J>, new: J) -> J {
    let (Some(J::Obj(old)), J::Obj(new)) = (old, &new) else {
        return new;
    };
    let mut merged = old.clone();
    for (name, value) in new {
        let same = |k: &String| k.eq_ignore_ascii_case(name);
        let at = merged.iter().position(|(k, _)| same(k));
        merged.retain(|(k, _)| !same(k));
        let at = at.unwrap_or(merged.len()).min(merged.len());
        merged.insert(at, (name.clone(), value.clone()));
    }
    J::Obj(merged)
}

/// The URL as an error quotes it: no credentials, no control characters,
/// bounded.
fn shown(url: &str) -> String {
    let redacted = match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    };
    let escaped: String = redacted
        .chars()
        .map(|c| match c {
            c if c.is_ascii_graphic() || c == '…' => c.to_string(),
            c => c.escape_default().to_string(),
        })
        .collect();
    match escaped.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped,
    }
}

fn bad_url(url: &str, reason: impl Into<String>, fix: impl Into<String>) -> Error {
    Error::invalid("--url", shown(url), reason, fix)
}

const URL_FIX: &str = "pass the URL `mcpod serve --listen` prints, e.g. http://127.0.0.1:8765/mcp";

/// An `http://` or `https://` URL with a host and nothing a client would
/// read as more than an address: no credentials (they would be written into
/// the file), no whitespace or control characters, no `$` (clients expand
/// variables in the entry). Plain http only to a loopback host: anywhere
/// else the token would cross the network in the clear.
pub fn check_url(url: &str) -> Result<()> {
    if url.len() > MAX_URL {
        return Err(bad_url(
            url,
            format!("it is longer than {MAX_URL} bytes"),
            URL_FIX,
        ));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad_url(
            url,
            "it holds whitespace or a control character",
            URL_FIX,
        ));
    }
    if !url.is_ascii() {
        return Err(bad_url(
            url,
            "it holds a character that is not ASCII",
            "write the host in punycode (xn--…) and percent-encode the path",
        ));
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => {
            return Err(bad_url(
                url,
                "it is not an http:// or https:// URL (MCP's Streamable HTTP)",
                URL_FIX,
            ));
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(bad_url(
            url,
            "it holds credentials (a name or password before @), which would be written into the client's file",
            "drop them from the URL: the token comes from the variable --token-env names",
        ));
    }
    let host = check_authority(url, authority)?;
    check_tail(url, tail)?;
    if host.is_unspecified() {
        return Err(bad_url(
            url,
            "0.0.0.0 and [::] are addresses to listen on, not to connect to",
            "name the address mcpod listens on, e.g. http://127.0.0.1:8765/mcp",
        ));
    }
    if !https && !host.is_loopback() {
        return Err(bad_url(
            url,
            "plain http to a host that is not loopback sends the token across the network in \
the clear",
            "put TLS in front of mcpod (a reverse proxy, named with `mcpod serve --listen-public \
--allow-host`, docs/http.md) and use its https:// URL, or use http://127.0.0.1:PORT/mcp on \
this machine",
        ));
    }
    Ok(())
}

/// What the host of a URL is, as far as loopback goes.
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl Host {
    fn is_loopback(&self) -> bool {
        match self {
            Host::Ip(IpAddr::V6(ip)) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            Host::Ip(ip) => ip.is_loopback(),
            Host::Name(name) => name.eq_ignore_ascii_case("localhost"),
        }
    }

    fn is_unspecified(&self) -> bool {
        matches!(self, Host::Ip(ip) if ip.is_unspecified())
    }
}

/// `host[:port]`, the host a DNS name, an IPv4 address or a bracketed IPv6
/// address (no zone), the port 1-65535.
fn check_authority(url: &str, authority: &str) -> Result<Host> {
    let bad_host = || {
        bad_url(
            url,
            "its host is not a DNS name, an IPv4 address or a bracketed IPv6 address",
            URL_FIX,
        )
    };
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (ip, after) = inner.split_once(']').ok_or_else(bad_host)?;
        let ip: Ipv6Addr = ip.parse().map_err(|_| bad_host())?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad_host)?),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (name, port) = match authority.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() {
            return Err(bad_url(url, "it has no host", URL_FIX));
        }
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(bad_host());
        }
        match name.parse::<Ipv4Addr>() {
            Ok(ip) => (Host::Ip(IpAddr::V4(ip)), port),
            Err(_) => (Host::Name(name.to_string()), port),
        }
    };
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !ok {
            return Err(bad_url(url, "its port is not a number 1-65535", URL_FIX));
        }
    }
    Ok(host)
}

/// Path, query and fragment: the characters RFC 3986 allows there, `%`
/// followed by two hex digits, and no `$`.
fn check_tail(url: &str, tail: &str) -> Result<()> {
    if tail.contains('$') {
        return Err(bad_url(
            url,
            "it holds `$`, and clients expand $NAME and ${NAME} in the entry",
            "percent-encode it as %24",
        ));
    }
    let bytes = tail.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ok = b.is_ascii_alphanumeric() || b"-._~:/?#[]@!&'()*+,;=%".contains(&b);
        let escape_ok = b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit));
        if !ok || !escape_ok {
            return Err(bad_url(
                url,
                format!(
                    "its path or query holds `{}`, which a URL spells percent-encoded",
                    b as char
                ),
                "percent-encode it (%XX)",
            ));
        }
    }
    Ok(())
}

/// An environment variable's name as every client reads it: `[A-Z_][A-Z0-9_]*`,
/// at most 128 bytes. Anything else could end the client's `${…}` early.
pub fn check_env_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ENV_NAME
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        return Ok(());
    }
    let shown: String = name
        .chars()
        .take(MAX_ENV_NAME)
        .flat_map(char::escape_default)
        .collect();
    Err(Error::invalid(
        "--token-env",
        shown,
        format!(
            "it is not an environment variable's name ([A-Z_][A-Z0-9_]*, at most {MAX_ENV_NAME} \
bytes)"
        ),
        format!("name the variable that holds the token, e.g. {DEFAULT_TOKEN_ENV}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::{Entry, Launch, merge_toml};

    const URL: &str = "http://127.0.0.1:8765/mcp";

    fn http(token_env: &str) -> Entry {
        Entry::Http(Remote::new(URL, token_env).expect("valid"))
    }

    fn stdio() -> Entry {
        Entry::Stdio(Launch {
            command: "mcpod".into(),
            args: vec!["serve".into()],
        })
    }

    fn parse(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("json")
    }

    fn render(client: Client, entry: &Entry) -> String {
        client.render(entry).expect("renders")
    }

    #[test]
    fn each_client_gets_its_own_http_entry() {
        use serde_json::json;
        let auth = |v: &str| json!({"Authorization": format!("Bearer {v}")});
        assert_eq!(
            parse(&render(Client::ClaudeCode, &http("MCPOD_TOKEN"))),
            json!({"mcpServers": {"mcpod": {"type": "http", "url": URL, "headers": auth("${MCPOD_TOKEN}")}}})
        );
        assert_eq!(
            parse(&render(Client::Vscode, &http("MCPOD_TOKEN"))),
            json!({"servers": {"mcpod": {"type": "http", "url": URL, "headers": auth("${env:MCPOD_TOKEN}")}}})
        );
        assert_eq!(
            parse(&render(Client::Cursor, &http("MCPOD_TOKEN"))),
            json!({"mcpServers": {"mcpod": {"url": URL, "headers": auth("${env:MCPOD_TOKEN}")}}})
        );
        assert_eq!(
            parse(&render(Client::Gemini, &http("MY_TOKEN_2"))),
            json!({"mcpServers": {"mcpod": {"httpUrl": URL, "headers": auth("${MY_TOKEN_2}"), "timeout": 900_000}}})
        );
        assert_eq!(
            render(Client::Codex, &http("MCPOD_TOKEN")),
            format!(
                "[mcp_servers.mcpod]\nurl = \"{URL}\"\nbearer_token_env_var = \"MCPOD_TOKEN\"\ntool_timeout_sec = 900\n"
            )
        );
    }

    #[test]
    fn claude_desktop_is_refused_with_the_reason_and_the_fix() {
        let err = Client::ClaudeDesktop
            .render(&http("MCPOD_TOKEN"))
            .expect_err("no HTTP entry")
            .to_string();
        assert!(
            err.contains("--client `claude-desktop`")
                && err.contains("only starts commands")
                && err.contains("without --url"),
            "{err}"
        );
        assert!(
            err.contains("claude-code, cursor, codex, vscode, gemini"),
            "{err}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("claude_desktop_config.json");
        assert!(
            Client::ClaudeDesktop
                .write(&path, &http("MCPOD_TOKEN"))
                .is_err()
        );
        assert!(!path.exists(), "nothing written");
        assert!(Client::ClaudeDesktop.write(&path, &stdio()).is_ok());
    }

    /// stdio → HTTP → stdio in the user's file: the other transport's keys go,
    /// the user's own keys (and other headers, servers, settings) stay, the
    /// previous file is the .bak, and a re-run changes nothing.
    #[test]
    fn json_switches_transport_and_keeps_the_users_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mcp.json");
        let before = r#"{"theme": "dark", "mcpServers": {"other": {"command": "x"}, "mcpod": {"type": "stdio", "command": "old", "args": ["serve"], "env": {"A": "1"}, "disabled": true, "headers": {"X-Trace": "1", "authorization": "Bearer old"}}}}"#;
        std::fs::write(&path, before).expect("write");
        let backup = Client::Cursor
            .write(&path, &http("MCPOD_TOKEN"))
            .expect("merge")
            .expect("backup");
        assert_eq!(std::fs::read_to_string(backup).expect("bak"), before);
        let text = std::fs::read_to_string(&path).expect("read");
        let doc = parse(&text);
        let entry = &doc["mcpServers"]["mcpod"];
        assert_eq!(
            entry,
            &serde_json::json!({"disabled": true, "headers": {"X-Trace": "1", "Authorization": "Bearer ${env:MCPOD_TOKEN}"}, "url": URL}),
            "{text}"
        );
        assert_eq!(doc["mcpServers"]["other"]["command"], "x");
        assert_eq!(doc["theme"], "dark");
        Client::Cursor
            .write(&path, &http("MCPOD_TOKEN"))
            .expect("again");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text);

        Client::Cursor.write(&path, &stdio()).expect("back");
        let doc = parse(&std::fs::read_to_string(&path).expect("read"));
        assert_eq!(
            doc["mcpServers"]["mcpod"],
            serde_json::json!({"disabled": true, "command": "mcpod", "args": ["serve"]})
        );
    }

    #[test]
    fn codex_switches_transport_and_keeps_the_users_keys() {
        let doc = "model = \"o3\"\n[mcp_servers.mcpod]\ncommand = \"old\"\nargs = []\nenabled = false\ntool_timeout_sec = 30\nbearer_token = \"x\"\n[mcp_servers.mcpod.env]\nA = \"1\"\n";
        let merged = merge_toml(doc, &http("MCPOD_TOKEN")).expect("merges");
        assert_eq!(
            merge_toml(&merged, &http("MCPOD_TOKEN")).expect("again"),
            merged
        );
        let parsed: toml_edit::DocumentMut = merged.parse().expect("valid TOML");
        let entry = parsed["mcp_servers"]["mcpod"].as_table().expect("table");
        let keys: Vec<&str> = entry.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["enabled", "tool_timeout_sec", "url", "bearer_token_env_var"],
            "{merged}"
        );
        assert_eq!(entry["url"].as_str(), Some(URL));
        assert!(merged.starts_with("model = \"o3\"\n"), "{merged}");

        let back = merge_toml(&merged, &stdio()).expect("back");
        let parsed: toml_edit::DocumentMut = back.parse().expect("valid TOML");
        let entry = parsed["mcp_servers"]["mcpod"].as_table().expect("table");
        let keys: Vec<&str> = entry.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["enabled", "tool_timeout_sec", "command", "args"],
            "{back}"
        );
    }

    /// The file holds the variable's name; its value, set here, is nowhere in
    /// what any client's entry prints or writes.
    #[test]
    fn the_token_is_never_written() {
        let name = "MCPOD_TEST_TOKEN_7F3A";
        let token = format!("mcpod_{}", "7f3a".repeat(16));
        // SAFETY: no other test reads or writes this variable.
        unsafe { std::env::set_var(name, &token) };
        let dir = tempfile::tempdir().expect("tempdir");
        for client in [
            Client::ClaudeCode,
            Client::Cursor,
            Client::Codex,
            Client::Vscode,
            Client::Gemini,
        ] {
            let shown = render(client, &http(name));
            let path = dir.path().join(format!("{client:?}"));
            client.write(&path, &http(name)).expect("writes");
            let written = std::fs::read_to_string(&path).expect("read");
            for text in [&shown, &written] {
                assert!(!text.contains(&token), "{client:?}: {text}");
                assert!(!text.contains("7f3a7f3a"), "{client:?}: {text}");
                assert!(text.contains(name), "{client:?}: {text}");
            }
        }
    }

    #[test]
    fn good_urls_pass() {
        for url in [
            "http://127.0.0.1:8765/mcp",
            "http://localhost:8765/mcp",
            "HTTP://LOCALHOST:8765/mcp",
            "http://[::1]:8765/mcp",
            "http://[::ffff:127.0.0.1]:8765/mcp",
            "http://127.0.0.2/mcp",
            "https://mcpod.example.com/mcp",
            "https://10.0.0.1:443/mcp?team=a%20b",
            "https://[2001:db8::1]/mcp",
        ] {
            check_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn hostile_urls_are_refused_with_the_fix() {
        let long = format!("http://127.0.0.1/{}", "a".repeat(MAX_URL));
        for (url, says) in [
            ("http://user:pass@127.0.0.1:8765/mcp", "credentials"),
            ("http://user@127.0.0.1/mcp", "credentials"),
            ("http://:pass@127.0.0.1/mcp", "credentials"),
            ("https://a@b@example.com/mcp", "credentials"),
            ("http://127.0.0.1:8765/mcp\r\nX-Evil: 1", "control"),
            ("http://127.0.0.1:8765/m cp", "whitespace"),
            ("http://127.0.0.1:8765/mcp\t", "whitespace"),
            ("http://127.0.0.1\0/mcp", "control"),
            ("http://127.0.0.1/\u{7f}", "control"),
            ("http://127.0.0.1/\u{2028}", "whitespace"),
            ("http://bücher.example/mcp", "punycode"),
            ("ftp://127.0.0.1/mcp", "not an http"),
            ("javascript:alert(1)", "not an http"),
            ("file:///etc/passwd", "not an http"),
            ("127.0.0.1:8765/mcp", "not an http"),
            ("http://", "no host"),
            ("http:///mcp", "no host"),
            ("http://:8765/mcp", "no host"),
            ("http://127.0.0.1:0/mcp", "port"),
            ("http://127.0.0.1:65536/mcp", "port"),
            ("http://127.0.0.1:/mcp", "port"),
            ("http://127.0.0.1:+80/mcp", "port"),
            ("http://127.0.0.1:80:80/mcp", "port"),
            ("http://[::1/mcp", "host"),
            ("http://[fe80::1%25eth0]/mcp", "host"),
            ("http://[::1]x/mcp", "host"),
            ("http://a..b/mcp", "host"),
            ("http://evil.com%2f@127.0.0.1/", "credentials"),
            ("http://127.0.0.1\\@evil.com/mcp", "credentials"),
            ("http://evil.com\\127.0.0.1/mcp", "host"),
            ("http://127.0.0.1/${HOME}", "expand"),
            ("http://127.0.0.1/$HOME", "expand"),
            ("http://127.0.0.1/\"}", "percent-encoded"),
            ("http://127.0.0.1/a\\b", "percent-encoded"),
            ("http://127.0.0.1/%zz", "percent-encoded"),
            ("http://127.0.0.1/%4", "percent-encoded"),
            ("http://mcpod.example.com/mcp", "TLS"),
            ("http://10.0.0.1:8765/mcp", "TLS"),
            ("http://127.0.0.1.evil.com/mcp", "TLS"),
            ("http://localhost.evil.com/mcp", "TLS"),
            ("http://127.1/mcp", "TLS"),
            ("http://0.0.0.0:8765/mcp", "listen on"),
            ("https://[::]:8765/mcp", "listen on"),
            (long.as_str(), "longer than"),
        ] {
            let err = check_url(url).expect_err(url).to_string();
            assert!(err.contains(says), "{url:?}: {err}");
            assert!(err.contains("Fix:"), "{url:?}: {err}");
            assert!(!err.contains("pass@") && !err.contains("user:"), "{err}");
            assert!(!err.chars().any(char::is_control), "{url:?}: {err:?}");
            assert!(err.len() < 1000, "{url:?}: {} bytes", err.len());
        }
    }

    #[test]
    fn env_names_are_names() {
        for name in ["MCPOD_TOKEN", "_T", "T2", "A_B_C"] {
            check_env_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let long = "A".repeat(MAX_ENV_NAME + 1);
        for name in [
            "",
            "mcpod_token",
            "1TOKEN",
            "A-B",
            "A B",
            "A$B",
            "${HOME}",
            "A}B",
            "A:-x",
            "env:A",
            "A\nB",
            "TÖKEN",
            long.as_str(),
        ] {
            let err = check_env_name(name).expect_err(name).to_string();
            assert!(err.contains("[A-Z_][A-Z0-9_]*"), "{name:?}: {err}");
            assert!(!err.chars().any(char::is_control), "{name:?}: {err:?}");
            assert!(Remote::new(URL, name).is_err());
        }
    }

    #[test]
    fn headers_merge_ignores_case_and_keeps_the_rest() {
        let old = J::Obj(vec![
            ("A".into(), J::Str("1".into())),
            ("AUTHORIZATION".into(), J::Str("x".into())),
            ("B".into(), J::Str("2".into())),
            ("authorization".into(), J::Str("y".into())),
        ]);
        let new = J::Obj(vec![("Authorization".into(), J::Str("z".into()))]);
        assert_eq!(
            merge_headers(Some(&old), new.clone()),
            J::Obj(vec![
                ("A".into(), J::Str("1".into())),
                ("Authorization".into(), J::Str("z".into())),
                ("B".into(), J::Str("2".into())),
            ])
        );
        assert_eq!(merge_headers(Some(&J::Str("?".into())), new.clone()), new);
        assert_eq!(merge_headers(None, new.clone()), new);
    }
}
