//! The operator's registry (`--registry HOST[:PORT][/NAMESPACE]`): where
//! images built here are pushed, once, for other engines to pull by digest.
//! How to reach it (TLS, an insecure local registry, credentials) is the
//! operator's containers configuration: registries.conf and the auth file
//! (`REGISTRY_AUTH_FILE`), never anything an agent says.

use std::time::Duration;

use super::process::Invocation;
use crate::{Error, Result};

/// How long a push may take.
const PUSH: Duration = Duration::from_secs(900);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    /// `HOST[:PORT][/NAMESPACE]`, without a trailing slash.
    prefix: String,
}

impl Registry {
    pub fn parse(s: &str) -> std::result::Result<Registry, String> {
        let prefix = s.trim_end_matches('/');
        let host = prefix.split('/').next().unwrap_or_default();
        let ok = !host.is_empty()
            && prefix.len() <= 200
            && !prefix.starts_with('-')
            && !prefix.contains("//")
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
            && (host.contains(['.', ':']) || host == "localhost");
        if !ok {
            return Err(format!(
                "`{s}` is not a registry: give HOST[:PORT][/NAMESPACE] in lower case, e.g. registry.example.com/mcpod or 127.0.0.1:5000 (no scheme: TLS and credentials come from registries.conf and the auth file)"
            ));
        }
        Ok(Registry {
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The registry's name for a repository of mcpod's.
    pub fn repository(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// Whether `reference` lives in this registry.
    pub fn holds(&self, reference: &str) -> bool {
        reference
            .strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Push the local image `local` as `target` (`REPO:TAG` of this
    /// registry); `REPO@DIGEST`, the reference engines pull.
    pub async fn push(&self, local: &str, target: &str) -> Result<String> {
        let file = std::env::temp_dir().join(format!("mcpod-digest-{}", super::nonce()));
        let pushed = Invocation::new("podman")
            .args(["push", "--quiet", "--digestfile"])
            .arg(&file)
            .args(["--", local])
            .arg(format!("docker://{target}"))
            .timeout(PUSH)
            .run()
            .await;
        let digest = std::fs::read_to_string(&file);
        let _ = std::fs::remove_file(&file);
        pushed?;
        let digest = digest.map_err(|e| Error::io("reading", &file, e))?;
        let digest = digest.trim();
        if !digest.starts_with("sha256:") || digest.len() != 71 {
            return Err(Error::UnexpectedOutput {
                command: format!("podman push {local} {target}"),
                reason: format!("its digest file says `{digest}`"),
            });
        }
        let repo = target.rsplit_once(':').map_or(target, |(r, _)| r);
        Ok(format!("{repo}@{digest}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_host_port_and_namespace() {
        let r = Registry::parse("127.0.0.1:5000/mcpod/").expect("ok");
        assert_eq!(
            r.repository("mcpod-session"),
            "127.0.0.1:5000/mcpod/mcpod-session"
        );
        assert!(r.holds("127.0.0.1:5000/mcpod/x@sha256:00"));
        assert!(!r.holds("127.0.0.1:5000/mcpodx/y"));
        assert!(Registry::parse("localhost:5000").is_ok());
        for bad in [
            "",
            "http://x:5000",
            "x",
            "-x.io",
            "X.io",
            "a.io//b",
            "a.io/b c",
        ] {
            assert!(Registry::parse(bad).is_err(), "{bad}");
        }
    }
}
