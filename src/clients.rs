//! Registering mcpod in MCP clients: the entry each client expects, in its own
//! format and file, merged into what is there (with a backup). An entry either
//! starts mcpod (stdio) or points the client at a running `mcpod serve
//! --listen` (HTTP, `http.rs`).
//!
//! Merging edits the user's document in place: TOML through `toml_edit` (every
//! spelling of `mcp_servers.mcpod` is the same table to it, comments and order
//! stay), JSON through an order-keeping tree. The entry's own keys (`command`,
//! `args`, `type`; `url`, `headers`' `Authorization`) are replaced, and the
//! other transport's keys dropped; any other key the user put in the entry is
//! kept, and so is every other entry.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

mod http;
mod json;

pub use http::{DEFAULT_TOKEN_ENV, Remote, check_env_name, check_url};
use json::J;

/// The clients mcpod knows how to register with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    ClaudeCode,
    ClaudeDesktop,
    Cursor,
    Codex,
    Vscode,
    Gemini,
}

/// Whose file: the project's (meant to be committed, so its entry is portable)
/// or the user's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    Project,
    User,
}

/// How the client should start mcpod.
#[derive(Clone, Debug)]
pub struct Launch {
    pub command: String,
    pub args: Vec<String>,
}

/// What the entry makes the client do: start mcpod itself (stdio), or reach
/// a running `mcpod serve --listen` over Streamable HTTP.
#[derive(Clone, Debug)]
pub enum Entry {
    Stdio(Launch),
    Http(Remote),
}

impl Entry {
    /// The keys of the other transport, dropped from the user's entry.
    fn foreign_keys(&self, toml: bool) -> &'static [&'static str] {
        match (self, toml) {
            (Entry::Stdio(_), false) => http::JSON_HTTP_KEYS,
            (Entry::Http(_), false) => http::JSON_STDIO_KEYS,
            (Entry::Stdio(_), true) => http::TOML_HTTP_KEYS,
            (Entry::Http(_), true) => http::TOML_STDIO_KEYS,
        }
    }
}

/// The server name mcpod registers under.
pub const NAME: &str = "mcpod";

/// Codex's `tool_timeout_sec` (and Gemini's `timeout`) in the entry: a cold
/// `build_image` runs buildah for minutes, longer than Codex's default 60 s.
pub const TOOL_TIMEOUT_SECS: u64 = 900;

impl Client {
    /// The scopes the client has, the default first.
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Client::ClaudeCode | Client::Vscode => &[Scope::Project],
            Client::ClaudeDesktop => &[Scope::User],
            Client::Cursor | Client::Gemini => &[Scope::Project, Scope::User],
            Client::Codex => &[Scope::User, Scope::Project],
        }
    }

    /// The scope used when none is asked for.
    pub fn default_scope(self) -> Scope {
        self.scopes()[0]
    }

    /// The file the client reads its MCP servers from in `scope` (project
    /// files are relative to the current directory), or why it has none.
    pub fn path(self, scope: Scope) -> Result<PathBuf> {
        if !self.scopes().contains(&scope) {
            return Err(Error::invalid(
                "--scope",
                format!("{scope:?}").to_lowercase(),
                format!("{self:?} has no file of that scope"),
                format!(
                    "use --scope {}",
                    format!("{:?}", self.default_scope()).to_lowercase()
                ),
            ));
        }
        let home = || {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| {
                    Error::invalid(
                        "HOME",
                        "",
                        "it is not set, so the user's file cannot be found",
                        "set HOME, or pass --path",
                    )
                })
        };
        Ok(match (self, scope) {
            (Client::ClaudeCode, _) => PathBuf::from(".mcp.json"),
            (Client::Vscode, _) => PathBuf::from(".vscode/mcp.json"),
            (Client::ClaudeDesktop, _) => {
                if cfg!(target_os = "macos") {
                    home()?.join("Library/Application Support/Claude/claude_desktop_config.json")
                } else {
                    home()?.join(".config/Claude/claude_desktop_config.json")
                }
            }
            (Client::Cursor, Scope::Project) => PathBuf::from(".cursor/mcp.json"),
            (Client::Cursor, Scope::User) => home()?.join(".cursor/mcp.json"),
            (Client::Codex, Scope::Project) => PathBuf::from(".codex/config.toml"),
            (Client::Codex, Scope::User) => std::env::var_os("CODEX_HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .map_or_else(|| home().map(|h| h.join(".codex")), Ok)?
                .join("config.toml"),
            (Client::Gemini, Scope::Project) => PathBuf::from(".gemini/settings.json"),
            (Client::Gemini, Scope::User) => home()?.join(".gemini/settings.json"),
        })
    }

    /// How a project-scoped entry names the workspace root: a variable the
    /// client expands, or `.` where the client starts servers in the project.
    pub fn project_root(self) -> &'static str {
        match self {
            Client::Vscode | Client::Cursor => "${workspaceFolder}",
            _ => ".",
        }
    }

    /// How the client comes to run a server from this file (approval, trust),
    /// and what it supports of mcpod.
    pub fn approval(self, scope: Scope, path: &Path) -> String {
        let p = path.display();
        match (self, scope) {
            (Client::ClaudeCode, _) => format!(
                "Claude Code starts a server from a project's {p} only once the folder is \
trusted and the server approved (until then `claude mcp list` shows mcpod \"Pending \
approval\"): run `claude` in the project and accept both prompts (or /mcp), or, without a \
prompt, approve it in .claude/settings.local.json (not committed): \
{{\"enabledMcpjsonServers\": [\"mcpod\"]}} in a folder you trusted before (the trust prompt \
stores projects.<dir>.hasTrustDialogAccepted in ~/.claude.json). `claude mcp get mcpod` then \
says Connected. Claude Code follows tools/list_changed."
            ),
            (Client::ClaudeDesktop, _) => format!(
                "Claude Desktop needs no approval: restart it and mcpod is listed under the \
tools. Reads {p}."
            ),
            (Client::Cursor, _) => format!(
                "Cursor shows mcpod under Settings → MCP; turn it on there (a project's \
.cursor/mcp.json server is off until enabled). Reads {p}."
            ),
            (Client::Codex, Scope::Project) => format!(
                "Codex reads {p} only in a trusted project: trust it at Codex's first start in \
the folder, or add to ~/.codex/config.toml: [projects.\"/abs/path/of/project\"] \
trust_level = \"trusted\". Codex ignores tools/list_changed (session tools reach it through \
call_tool) unless its feature mcp_tool_list_changed is on (`codex --enable \
mcp_tool_list_changed`, or [features] mcp_tool_list_changed = true). `codex mcp list` shows \
the entry; tool_timeout_sec is 900 s unless you set one (a cold build_image outlasts Codex's \
60 s default)."
            ),
            (Client::Codex, Scope::User) => format!(
                "Codex needs no approval for {p}: `codex mcp list` shows the entry. Codex \
ignores tools/list_changed (session tools reach it through call_tool) unless its feature \
mcp_tool_list_changed is on (`codex --enable mcp_tool_list_changed`, or [features] \
mcp_tool_list_changed = true). tool_timeout_sec is 900 s unless you set one (a cold \
build_image outlasts Codex's 60 s default)."
            ),
            (Client::Vscode, _) => format!(
                "VS Code asks to trust a workspace's MCP server the first time it starts it \
(Start in {p}, or the MCP: List Servers command)."
            ),
            (Client::Gemini, Scope::Project) => format!(
                "Gemini CLI reads {p} only in a trusted folder: answer its trust prompt, or add \
the folder to ~/.gemini/trustedFolders.json: {{\"/abs/path/of/project\": \"TRUST_FOLDER\"}}. \
`gemini mcp list` then shows mcpod connected."
            ),
            (Client::Gemini, Scope::User) => format!(
                "Gemini CLI needs no approval for {p}, but with folder trust on it starts no \
MCP server in an untrusted folder (~/.gemini/trustedFolders.json). `gemini mcp list` shows \
mcpod connected."
            ),
        }
    }

    /// The entry alone, as the client's file would hold it.
    pub fn render(self, entry: &Entry) -> Result<String> {
        if let Entry::Http(_) = entry {
            self.check_http()?;
        }
        Ok(match self {
            Client::Codex => merge_toml("", entry).unwrap_or_default(),
            _ => json::to_string(&self.merge_json(J::Obj(Vec::new()), entry), "  "),
        })
    }

    /// The entry's own keys for a JSON client.
    fn json_entry(self, entry: &Entry) -> Vec<(String, J)> {
        let mut fields = match entry {
            Entry::Stdio(launch) => {
                let mut fields = Vec::new();
                if matches!(self, Client::ClaudeCode | Client::Vscode) {
                    fields.push(("type".to_string(), J::Str("stdio".into())));
                }
                fields.push(("command".to_string(), J::Str(launch.command.clone())));
                fields.push((
                    "args".to_string(),
                    J::Arr(launch.args.iter().cloned().map(J::Str).collect()),
                ));
                fields
            }
            Entry::Http(remote) => remote.json_entry(self),
        };
        if self == Client::Gemini {
            fields.push((
                "timeout".to_string(),
                J::Num((TOOL_TIMEOUT_SECS * 1000).into()),
            ));
        }
        fields
    }

    fn merge_json(self, mut doc: J, new: &Entry) -> J {
        let key = if self == Client::Vscode {
            "servers"
        } else {
            "mcpServers"
        };
        let J::Obj(top) = &mut doc else {
            return doc;
        };
        let servers = json::last_mut(top, key).filter(|v| matches!(v, J::Obj(_)));
        let servers = match servers {
            Some(s) => s,
            None => {
                json::set(top, key, J::Obj(Vec::new()));
                match json::last_mut(top, key) {
                    Some(s) => s,
                    None => return doc,
                }
            }
        };
        let J::Obj(servers) = servers else {
            return doc;
        };
        // Every spelling of the key ("mcpod", "mcp\u006fd") decodes the same;
        // the last is the one a client reads. Its extra keys are kept.
        let old = servers
            .iter()
            .rposition(|(k, _)| k == NAME)
            .map(|i| servers[i].1.clone());
        let first = servers.iter().position(|(k, _)| k == NAME);
        let mut entry = match old {
            Some(J::Obj(fields)) => fields,
            _ => Vec::new(),
        };
        let fields = self.json_entry(new);
        // The other transport's keys go, and so does a `type` this client's
        // entry does not set (it would name the other transport).
        let ours_type = fields.iter().any(|(k, _)| k == "type");
        entry.retain(|(k, _)| !new.foreign_keys(false).contains(&k.as_str()));
        entry.retain(|(k, _)| ours_type || k != "type");
        for (k, v) in fields {
            // Gemini's timeout is the user's if they set one.
            if k == "timeout" && entry.iter().any(|(e, _)| e == "timeout") {
                continue;
            }
            // The user's other headers stay; only Authorization is ours.
            let v = if k == "headers" {
                http::merge_headers(
                    entry
                        .iter()
                        .rev()
                        .find(|(e, _)| e == "headers")
                        .map(|(_, v)| v),
                    v,
                )
            } else {
                v
            };
            json::set(&mut entry, &k, v);
        }
        servers.retain(|(k, _)| k != NAME);
        let at = first.unwrap_or(servers.len()).min(servers.len());
        servers.insert(at, (NAME.to_string(), J::Obj(entry)));
        doc
    }

    /// The file's merged text.
    fn merged(self, path: &Path, existing: Option<&str>, entry: &Entry) -> Result<String> {
        if let Entry::Http(_) = entry {
            self.check_http()?;
        }
        if self == Client::Codex {
            return merge_toml(existing.unwrap_or_default(), entry).map_err(|e| {
                Error::invalid(
                    "client config",
                    path.display().to_string(),
                    format!("it is not valid TOML ({})", e.trim()),
                    "fix or move the file, then run again; nothing was written",
                )
            });
        }
        let (doc, indent) = match existing.map(str::trim) {
            None | Some("") => (J::Obj(Vec::new()), "  ".to_string()),
            Some(text) => (
                json::parse(text).map_err(|e| {
                    Error::invalid(
                        "client config",
                        path.display().to_string(),
                        format!("it is not valid JSON ({e})"),
                        "fix or move the file, then run again; nothing was written",
                    )
                })?,
                json::indent_of(text),
            ),
        };
        if !matches!(doc, J::Obj(_)) {
            return Err(Error::invalid(
                "client config",
                path.display().to_string(),
                "its top level is not a JSON object",
                "fix or move the file; nothing was written",
            ));
        }
        Ok(json::to_string(&self.merge_json(doc, entry), &indent))
    }

    /// Merge the entry into `path` (created if missing), keeping everything else
    /// there; the previous file is kept as `<path>.bak`, and the new one
    /// replaces it atomically. Returns the backup path.
    pub fn write(self, path: &Path, entry: &Entry) -> Result<Option<PathBuf>> {
        // A symlinked file (dotfiles) is written where it points.
        let path = match std::fs::canonicalize(path) {
            Ok(real) => real,
            Err(_) => path.to_path_buf(),
        };
        let path = path.as_path();
        let existing = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        let merged = self.merged(path, existing.as_deref(), entry)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        }
        let backup = match &existing {
            Some(text) => {
                let backup = PathBuf::from(format!("{}.bak", path.display()));
                std::fs::write(&backup, text)
                    .map_err(|e| Error::io("writing the backup", &backup, e))?;
                Some(backup)
            }
            None => None,
        };
        let tmp = PathBuf::from(format!("{}.mcpod-tmp", path.display()));
        std::fs::write(&tmp, merged).map_err(|e| Error::io("writing", &tmp, e))?;
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = std::fs::set_permissions(&tmp, meta.permissions());
        }
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io("replacing", path, e)
        })?;
        Ok(backup)
    }
}

/// Set `mcp_servers.mcpod` in a Codex config, however the document spells it
/// (a `[mcp_servers.mcpod]` header, quoted keys, dotted keys, an inline table),
/// keeping the user's other keys in it, and everything else, as written.
fn merge_toml(doc: &str, new: &Entry) -> std::result::Result<String, String> {
    use toml_edit::{Array, DocumentMut, Item, Table, value};

    let mut doc: DocumentMut = doc
        .parse()
        .map_err(|e: toml_edit::TomlError| e.to_string())?;
    let root = doc.as_table_mut();
    if !root.contains_key("mcp_servers") {
        let mut servers = Table::new();
        servers.set_implicit(true);
        root.insert("mcp_servers", Item::Table(servers));
    }
    let fresh = |e: Option<&Item>| e.is_none_or(|e| e.as_table_like().is_none());
    let entry = match root.get_mut("mcp_servers") {
        Some(Item::Table(servers)) => {
            if fresh(servers.get(NAME)) {
                servers.insert(NAME, Item::Table(Table::new()));
            }
            servers.get_mut(NAME).and_then(Item::as_table_like_mut)
        }
        Some(Item::Value(toml_edit::Value::InlineTable(servers))) => {
            if servers
                .get(NAME)
                .is_none_or(|e| e.as_inline_table().is_none())
            {
                servers.insert(NAME, toml_edit::Value::InlineTable(Default::default()));
            }
            servers
                .get_mut(NAME)
                .and_then(toml_edit::Value::as_inline_table_mut)
                .map(|t| t as &mut dyn toml_edit::TableLike)
        }
        _ => return Err("`mcp_servers` is not a table".into()),
    };
    let entry = entry.ok_or("`mcp_servers.mcpod` is not a table")?;
    for key in new.foreign_keys(true) {
        entry.remove(key);
    }
    match new {
        Entry::Stdio(launch) => {
            let mut args = Array::new();
            for a in &launch.args {
                args.push(a.as_str());
            }
            entry.insert("command", value(launch.command.as_str()));
            entry.insert("args", value(args));
        }
        // Codex sends `Authorization: Bearer` with the variable's value.
        Entry::Http(remote) => {
            entry.insert("url", value(remote.url()));
            entry.insert("bearer_token_env_var", value(remote.token_env()));
        }
    }
    if entry.get("tool_timeout_sec").is_none() {
        entry.insert("tool_timeout_sec", value(TOOL_TIMEOUT_SECS as i64));
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> Entry {
        Entry::Stdio(Launch {
            command: "/usr/local/bin/mcpod".into(),
            args: vec!["serve".into(), "--root".into(), "/work/p \"q\"".into()],
        })
    }

    fn parse(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("json")
    }

    #[test]
    fn each_client_gets_its_own_format() {
        let cc = parse(&Client::ClaudeCode.render(&launch()).expect("renders"));
        assert_eq!(cc["mcpServers"]["mcpod"]["type"], "stdio");
        assert_eq!(cc["mcpServers"]["mcpod"]["args"][2], "/work/p \"q\"");
        let vs = parse(&Client::Vscode.render(&launch()).expect("renders"));
        assert_eq!(vs["servers"]["mcpod"]["command"], "/usr/local/bin/mcpod");
        let desk = parse(&Client::ClaudeDesktop.render(&launch()).expect("renders"));
        assert!(desk["mcpServers"]["mcpod"]["type"].is_null());
        let gemini = parse(&Client::Gemini.render(&launch()).expect("renders"));
        assert_eq!(gemini["mcpServers"]["mcpod"]["timeout"], 900_000);
        let codex = Client::Codex.render(&launch()).expect("renders");
        assert_eq!(
            codex,
            "[mcp_servers.mcpod]\ncommand = \"/usr/local/bin/mcpod\"\nargs = [\"serve\", \"--root\", '/work/p \"q\"']\ntool_timeout_sec = 900\n"
        );
    }

    #[test]
    fn write_merges_and_backs_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/mcp.json");
        assert_eq!(
            Client::Cursor.write(&path, &launch()).expect("new file"),
            None
        );
        std::fs::write(
            &path,
            r#"{"mcpServers": {"other": {"command": "x"}}, "theme": "dark"}"#,
        )
        .expect("write");
        let backup = Client::Cursor
            .write(&path, &launch())
            .expect("merge")
            .expect("backup");
        let doc = parse(&std::fs::read_to_string(&path).expect("read"));
        assert_eq!(doc["mcpServers"]["other"]["command"], "x");
        assert_eq!(doc["theme"], "dark");
        assert_eq!(doc["mcpServers"]["mcpod"]["args"][0], "serve");
        assert!(
            std::fs::read_to_string(backup)
                .expect("backup")
                .contains("\"theme\": \"dark\"")
        );

        std::fs::write(&path, "{not json").expect("write");
        let err = Client::Cursor
            .write(&path, &launch())
            .expect_err("bad json")
            .to_string();
        assert!(
            err.contains("not valid JSON") && err.contains("nothing was written"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{not json");
    }

    /// Every TOML spelling of the entry is the one table: replaced, never a
    /// second `[mcp_servers.mcpod]` (which Codex refuses as a duplicate key).
    #[test]
    fn codex_toml_every_spelling_is_replaced_once() {
        let other = "[mcp_servers.other]\ncommand = \"x\"\n\n";
        let spellings = [
            format!("{other}[mcp_servers.mcpod]\ncommand = \"old\"\nargs = []\ntool_timeout_sec = 30\nenabled = false\n"),
            format!("{other}[mcp_servers.\"mcpod\"]\ncommand = \"old\"\ntool_timeout_sec = 30\nenabled = false\n"),
            format!("{other}[ mcp_servers . 'mcpod' ]\ncommand = \"old\"\ntool_timeout_sec = 30\nenabled = false\n"),
            "[mcp_servers]\nother = { command = \"x\" }\nmcpod = { command = \"old\", tool_timeout_sec = 30, enabled = false }\n".to_string(),
            "mcp_servers.other.command = \"x\"\nmcp_servers.mcpod.command = \"old\"\nmcp_servers.mcpod.tool_timeout_sec = 30\nmcp_servers.mcpod.enabled = false\n".to_string(),
            "mcp_servers = { other = { command = \"x\" }, mcpod = { command = \"old\", tool_timeout_sec = 30, enabled = false } }\n".to_string(),
            format!("{other}[mcp_servers.mcpod]\ncommand = \"old\"\ntool_timeout_sec = 30\nenabled = false\n[mcp_servers.mcpod.env]\nA = \"1\"\n"),
        ];
        for spelling in spellings {
            let doc = format!("# mine\nmodel = \"o3\"\n{spelling}\n[profiles.a]\nmodel = \"b\"\n");
            let merged = merge_toml(&doc, &launch()).expect("merges");
            let again = merge_toml(&merged, &launch()).expect("merges again");
            assert_eq!(merged, again, "a re-run changes nothing");
            let parsed: toml_edit::DocumentMut = merged.parse().expect("valid TOML");
            let entry = &parsed["mcp_servers"]["mcpod"];
            assert_eq!(
                entry["command"].as_str(),
                Some("/usr/local/bin/mcpod"),
                "{merged}"
            );
            assert_eq!(entry["args"].as_array().map(|a| a.len()), Some(3));
            assert_eq!(
                entry["tool_timeout_sec"].as_integer(),
                Some(30),
                "kept: {merged}"
            );
            assert_eq!(entry["enabled"].as_bool(), Some(false), "kept");
            assert_eq!(
                parsed["mcp_servers"]["other"]["command"].as_str(),
                Some("x")
            );
            assert_eq!(parsed["profiles"]["a"]["model"].as_str(), Some("b"));
            assert!(merged.starts_with("# mine\nmodel = \"o3\"\n"), "{merged}");
            assert!(!merged.contains("\"old\""), "{merged}");
            if spelling.contains("env") {
                assert_eq!(entry["env"]["A"].as_str(), Some("1"));
            }
        }
        let appended = merge_toml("model = \"o3\"\n", &launch()).expect("merges");
        assert!(
            appended.starts_with("model = \"o3\"\n\n[mcp_servers.mcpod]")
                || appended.starts_with("model = \"o3\"\n[mcp_servers.mcpod]"),
            "{appended}"
        );
        assert!(merge_toml("[a]\nb = 1\n[a]\nb = 2\n", &launch()).is_err());
    }

    /// JSON keeps the user's key order and spacing, replaces every spelling of
    /// the entry in place, and keeps the user's own keys in it.
    #[test]
    fn json_keeps_order_and_the_users_keys() {
        let text = "{\n    \"zeta\": 1,\n    \"mcpServers\": {\n        \"zz\": {\"command\": \"z\"},\n        \"mcpod\": {\"command\": \"old\", \"disabled\": true, \"env\": {\"B\": \"2\", \"A\": \"1\"}},\n        \"aa\": {\"command\": \"a\"},\n        \"mcp\\u006fd\": {\"command\": \"older\", \"alwaysAllow\": [\"x\"]}\n    },\n    \"alpha\": [3, 1.5, null, false]\n}\n";
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".mcp.json");
        std::fs::write(&path, text).expect("write");
        Client::ClaudeCode.write(&path, &launch()).expect("merge");
        let out = std::fs::read_to_string(&path).expect("read");
        let order = |s: &str, keys: &[&str]| {
            let at: Vec<usize> = keys
                .iter()
                .map(|k| s.find(k).unwrap_or(usize::MAX))
                .collect();
            at.windows(2).all(|w| w[0] < w[1])
        };
        assert!(
            order(&out, &["\"zeta\"", "\"mcpServers\"", "\"alpha\""]),
            "{out}"
        );
        assert!(order(&out, &["\"zz\"", "\"mcpod\"", "\"aa\""]), "{out}");
        assert_eq!(out.matches("\"mcpod\"").count(), 1, "{out}");
        assert!(!out.contains("u006f") && !out.contains("old"), "{out}");
        assert!(
            out.contains("\n    \"zeta\": 1"),
            "four-space indent kept: {out}"
        );
        let doc = parse(&out);
        let entry = &doc["mcpServers"]["mcpod"];
        assert_eq!(entry["command"], "/usr/local/bin/mcpod");
        assert_eq!(
            entry["alwaysAllow"][0], "x",
            "the last spelling's keys are kept"
        );
        assert_eq!(doc["alpha"], serde_json::json!([3, 1.5, null, false]));
        let again = {
            Client::ClaudeCode.write(&path, &launch()).expect("merge");
            std::fs::read_to_string(&path).expect("read")
        };
        assert_eq!(out, again, "a re-run changes nothing");
    }
}
