//! Registering mcpod in MCP clients: the entry each client expects, in its own
//! format and file, merged into what is there (with a backup).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{Error, Result};

/// The clients mcpod knows how to register with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    ClaudeCode,
    ClaudeDesktop,
    Cursor,
    Codex,
    Vscode,
}

/// How the client should start mcpod.
#[derive(Clone, Debug)]
pub struct Launch {
    pub command: String,
    pub args: Vec<String>,
}

/// The server name mcpod registers under.
const NAME: &str = "mcpod";

impl Client {
    /// The file the client reads its MCP servers from (project files are
    /// relative to the current directory).
    pub fn default_path(self) -> PathBuf {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        match self {
            Client::ClaudeCode => PathBuf::from(".mcp.json"),
            Client::ClaudeDesktop => {
                if cfg!(target_os = "macos") {
                    home.join("Library/Application Support/Claude/claude_desktop_config.json")
                } else {
                    home.join(".config/Claude/claude_desktop_config.json")
                }
            }
            Client::Cursor => home.join(".cursor/mcp.json"),
            Client::Codex => home.join(".codex/config.toml"),
            Client::Vscode => PathBuf::from(".vscode/mcp.json"),
        }
    }

    /// The entry alone, as the client's file would hold it.
    pub fn render(self, launch: &Launch) -> String {
        match self {
            Client::Codex => codex_table(launch),
            _ => {
                serde_json::to_string_pretty(&self.merge_json(json!({}), launch))
                    .unwrap_or_default()
                    + "\n"
            }
        }
    }

    fn merge_json(self, mut doc: Value, launch: &Launch) -> Value {
        let (key, entry) = match self {
            Client::Vscode => (
                "servers",
                json!({"type": "stdio", "command": launch.command, "args": launch.args}),
            ),
            Client::ClaudeCode => (
                "mcpServers",
                json!({"type": "stdio", "command": launch.command, "args": launch.args, "env": {}}),
            ),
            _ => (
                "mcpServers",
                json!({"command": launch.command, "args": launch.args, "env": {}}),
            ),
        };
        if !doc[key].is_object() {
            doc[key] = json!({});
        }
        doc[key][NAME] = entry;
        doc
    }

    /// Merge the entry into `path` (created if missing), keeping everything else
    /// there; the previous file is kept as `<path>.bak`. Returns the backup path.
    pub fn write(self, path: &Path, launch: &Launch) -> Result<Option<PathBuf>> {
        let existing = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        let merged = match self {
            Client::Codex => merge_toml(
                existing.as_deref().unwrap_or_default(),
                &codex_table(launch),
            ),
            _ => {
                let doc = match existing.as_deref().map(str::trim) {
                    None | Some("") => json!({}),
                    Some(text) => serde_json::from_str::<Value>(text).map_err(|e| {
                        Error::invalid(
                            "client config",
                            path.display().to_string(),
                            format!("it is not valid JSON ({e})"),
                            "fix or move the file, then run again; nothing was written",
                        )
                    })?,
                };
                if !doc.is_object() {
                    return Err(Error::invalid(
                        "client config",
                        path.display().to_string(),
                        "its top level is not a JSON object",
                        "fix or move the file; nothing was written",
                    ));
                }
                serde_json::to_string_pretty(&self.merge_json(doc, launch)).unwrap_or_default()
                    + "\n"
            }
        };
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
        std::fs::rename(&tmp, path).map_err(|e| Error::io("replacing", path, e))?;
        Ok(backup)
    }
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn codex_table(launch: &Launch) -> String {
    let args: Vec<String> = launch.args.iter().map(|a| toml_string(a)).collect();
    format!(
        "[mcp_servers.{NAME}]\ncommand = {}\nargs = [{}]\n",
        toml_string(&launch.command),
        args.join(", ")
    )
}

/// Replace the `[mcp_servers.mcpod]` table of a TOML document (up to the next
/// table header), or append it.
fn merge_toml(doc: &str, table: &str) -> String {
    let header = format!("[mcp_servers.{NAME}]");
    let mut out = String::new();
    let mut skipping = false;
    let mut replaced = false;
    for line in doc.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            skipping = trimmed == header || trimmed.starts_with(&format!("[mcp_servers.{NAME}."));
            if trimmed == header {
                out.push_str(table);
                replaced = true;
            }
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(table);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> Launch {
        Launch {
            command: "/usr/local/bin/mcpod".into(),
            args: vec!["serve".into(), "--root".into(), "/work/p \"q\"".into()],
        }
    }

    #[test]
    fn each_client_gets_its_own_format() {
        let cc: Value = serde_json::from_str(&Client::ClaudeCode.render(&launch())).expect("json");
        assert_eq!(cc["mcpServers"]["mcpod"]["type"], "stdio");
        assert_eq!(cc["mcpServers"]["mcpod"]["args"][2], "/work/p \"q\"");
        let vs: Value = serde_json::from_str(&Client::Vscode.render(&launch())).expect("json");
        assert_eq!(vs["servers"]["mcpod"]["command"], "/usr/local/bin/mcpod");
        let desk: Value =
            serde_json::from_str(&Client::ClaudeDesktop.render(&launch())).expect("json");
        assert!(desk["mcpServers"]["mcpod"]["type"].is_null());
        let codex = Client::Codex.render(&launch());
        assert_eq!(
            codex,
            "[mcp_servers.mcpod]\ncommand = \"/usr/local/bin/mcpod\"\nargs = [\"serve\", \"--root\", \"/work/p \\\"q\\\"\"]\n"
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
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
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

    #[test]
    fn codex_toml_replaces_only_its_table() {
        let doc = "model = \"o3\"\n\n[mcp_servers.other]\ncommand = \"x\"\n\n[mcp_servers.mcpod]\ncommand = \"old\"\nargs = []\n\n[profiles.a]\nmodel = \"b\"\n";
        let merged = merge_toml(doc, &codex_table(&launch()));
        assert!(
            merged.contains("model = \"o3\"")
                && merged.contains("[mcp_servers.other]")
                && merged.contains("[profiles.a]")
        );
        assert!(!merged.contains("\"old\"") && merged.contains("/usr/local/bin/mcpod"));
        assert_eq!(merged.matches("[mcp_servers.mcpod]").count(), 1);
        let appended = merge_toml("model = \"o3\"\n", &codex_table(&launch()));
        assert!(
            appended.starts_with("model = \"o3\"\n\n[mcp_servers.mcpod]"),
            "{appended}"
        );
    }
}
