//! Bearer tokens for `mcpod serve --listen`: the operator creates and revokes
//! them (`mcpod token create|list|revoke`); each is a principal. A token is
//! 256 random bits, shown once; only its sha256 is kept, in
//! `<state dir>/tokens` (mode 0600), one line per token: `NAME HEX CREATED`.
//! The file is read again on each request, so a revoked token is refused at
//! once by a running server.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The prefix of every token, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "mcpod_";
/// Bytes of the token file mcpod reads (about 10,000 tokens).
pub const MAX_TOKEN_FILE: u64 = 1 << 20;
/// Bytes of a bearer token looked at: mcpod's own are 70, an OAuth
/// access token (a JWT) a few hundred to a few thousand.
pub const MAX_BEARER: usize = 16 << 10;
/// Characters of a token's name.
pub const MAX_NAME: usize = 64;

/// Who made a request over HTTP.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// A token's name, or `oauth:` and an access token's subject: what
    /// owns the sessions it launches.
    pub name: String,
    /// An access token's scopes (none for mcpod's own tokens).
    pub scopes: Vec<String>,
    /// Lists and stops every principal's sessions, and reads the audit log.
    pub admin: bool,
    /// What the operator's `--principals` file narrows for it.
    pub profile: Option<std::sync::Arc<crate::session::policy::profile::Profile>>,
}

impl Principal {
    /// The principal of one of mcpod's own tokens.
    pub fn token(name: &str, admin: bool) -> Principal {
        Principal {
            name: name.to_string(),
            scopes: Vec::new(),
            admin,
            profile: None,
        }
    }
}

/// A token as `token list` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenEntry {
    pub name: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// The token's holder is an admin (`token create --admin`).
    pub admin: bool,
    #[serde(skip)]
    hash: [u8; 32],
}

impl TokenEntry {
    /// The sha256 of the token: which token a name stands for (a name
    /// revoked and made again is another token).
    pub fn digest(&self) -> &[u8; 32] {
        &self.hash
    }
}

/// The token file.
#[derive(Clone, Debug)]
pub struct Tokens {
    path: PathBuf,
}

impl Tokens {
    /// The token file in mcpod's state directory.
    pub fn in_state_dir() -> Tokens {
        Tokens::at(crate::engine::home::state_dir().join("tokens"))
    }

    pub fn at(path: impl Into<PathBuf>) -> Tokens {
        Tokens { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every token, oldest first; none when the file does not exist.
    pub fn list(&self) -> Result<Vec<TokenEntry>> {
        let text = match read_bounded(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("reading the token file", &self.path, e)),
        };
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let mut fields = line.split_whitespace();
            let (Some(name), Some(hex), created, role) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Some(hash) = from_hex(hex) else {
                tracing::warn!(
                    "token file {}: line {} has no sha256, skipped",
                    self.path.display(),
                    n + 1
                );
                continue;
            };
            entries.push(TokenEntry {
                name: name.to_string(),
                created: created.and_then(|c| c.parse().ok()).unwrap_or(0),
                admin: role == Some("admin"),
                hash,
            });
        }
        Ok(entries)
    }

    /// Make a token named `name` (an admin's when `admin`); returns the
    /// token, which is kept nowhere.
    pub fn create(&self, name: &str, admin: bool) -> Result<String> {
        check_name(name)?;
        let mut entries = self.list()?;
        if entries.iter().any(|e| e.name == name) {
            return Err(Error::invalid(
                "token name",
                name,
                "a token of that name exists",
                format!("revoke it first (`mcpod token revoke {name}`) or choose another name"),
            ));
        }
        let mut random = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random))
            .map_err(|e| Error::io("reading random bytes for a token", "/dev/urandom", e))?;
        let token = format!("{TOKEN_PREFIX}{}", to_hex(&random));
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        entries.push(TokenEntry {
            name: name.to_string(),
            created,
            admin,
            hash: digest(&token),
        });
        self.write(&entries)?;
        Ok(token)
    }

    /// Remove the token named `name`.
    pub fn revoke(&self, name: &str) -> Result<()> {
        let mut entries = self.list()?;
        let before = entries.len();
        entries.retain(|e| e.name != name);
        if entries.len() == before {
            return Err(Error::invalid(
                "token name",
                name,
                "no token of that name",
                "list them with `mcpod token list`",
            ));
        }
        self.write(&entries)
    }

    /// The principal whose token `token` is, if any: every entry is
    /// compared, each in constant time.
    pub fn verify(&self, token: &str) -> Result<Option<Principal>> {
        let hash = digest(token);
        let mut found = None;
        for entry in self.list()? {
            if same(&entry.hash, &hash) {
                found = Some(Principal::token(&entry.name, entry.admin));
            }
        }
        Ok(found)
    }

    /// Write the whole file anew (mode 0600) and rename it into place.
    fn write(&self, entries: &[TokenEntry]) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("making the state directory", dir, e))?;
        let temporary = self.path.with_extension("new");
        let mut text = String::new();
        for e in entries {
            let role = if e.admin { " admin" } else { "" };
            text.push_str(&format!(
                "{} {} {}{role}\n",
                e.name,
                to_hex(&e.hash),
                e.created
            ));
        }
        let _ = std::fs::remove_file(&temporary);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.sync_all()
            })
            .and_then(|()| {
                std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
            })
            .and_then(|()| std::fs::rename(&temporary, &self.path));
        written.map_err(|e| Error::io("writing the token file", &self.path, e))
    }
}

/// A request's `Authorization` value, when it is `Bearer <token>`.
pub fn bearer(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= MAX_BEARER)
        .then_some(token)
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        return Ok(());
    }
    Err(Error::invalid(
        "token name",
        name,
        format!("a name is 1 to {MAX_NAME} letters, digits, `-`, `_` or `.`"),
        "choose a name such as `ci-runner` or `alice.laptop`",
    ))
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    let file = std::fs::File::open(path)?;
    file.take(MAX_TOKEN_FILE + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TOKEN_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_TOKEN_FILE} bytes; revoke tokens you no longer use"
        )));
    }
    Ok(text)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_tokens_verify_until_revoked_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::at(dir.path().join("tokens"));
        let a = tokens.create("alice", false).unwrap();
        let b = tokens.create("bob", true).unwrap();
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(
            tokens.verify(&a).unwrap(),
            Some(Principal::token("alice", false))
        );
        assert!(tokens.create("alice", false).is_err());
        assert!(tokens.create("no spaces", false).is_err());
        assert!(tokens.create("oauth:x", false).is_err());
        let mode = std::fs::metadata(tokens.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!std::fs::read_to_string(tokens.path()).unwrap().contains(&a));
        tokens.revoke("alice").unwrap();
        assert_eq!(tokens.verify(&a).unwrap(), None);
        assert_eq!(
            tokens.verify(&b).unwrap(),
            Some(Principal::token("bob", true))
        );
        assert!(tokens.list().unwrap()[0].admin);
        assert!(tokens.revoke("alice").is_err());
    }

    #[test]
    fn only_bearer_values_are_tokens() {
        assert_eq!(bearer(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer(b"bearer  abc "), Some("abc"));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(&[0xff, 0xfe]), None);
    }
}
