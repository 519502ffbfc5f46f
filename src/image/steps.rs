//! What a Containerfile's steps may ask of the host, checked before buildah
//! sees it. buildah does some of a step's work on the host, outside the
//! RUN container's isolation:
//!
//! - `ADD URL` (and `ADD git@…`) is fetched by buildah on the host's network,
//!   so `--network=none` does not hold for it: loopback services, the
//!   host's neighbours and cloud metadata would be reachable, and what came
//!   back baked into the image. Refused: files come from the context (`COPY`).
//! - `RUN --mount` is resolved by buildah on the host: buildah 1.28 joins a
//!   cache mount's `id` to its cache directory unchecked (CVE-2024-9675), so
//!   `id=../../…` mounts any host directory read-write. Only tmpfs, cache
//!   (no `id`, `source` or `from`) and bind mounts (a relative source inside
//!   the context or a `from` image) are taken, with no `$` substitution in
//!   the spec; secret, ssh and other kinds are refused.
//! - Any other `RUN` flag (`--network=host`, `--security=insecure`) is refused.

use crate::{Error, Result};

/// Check every instruction of `containerfile` (at `path`, for messages).
pub fn check(path: &str, containerfile: &str) -> Result<()> {
    for (line, instruction) in super::containerfile::numbered_instructions(containerfile) {
        let mut words = instruction.split_whitespace();
        let Some(op) = words.next() else { continue };
        let rest: Vec<&str> = words.collect();
        let refused = |reason: String, fix: &str| {
            Err(Error::invalid(
                "Containerfile",
                format!("{path}, line {line}"),
                reason,
                fix,
            ))
        };
        match op.to_ascii_uppercase().as_str() {
            "ADD" => {
                if let Some(source) = rest.iter().find_map(|w| fetched(w)) {
                    return refused(
                        format!(
                            "`ADD {source}` would be fetched on the host's network by buildah, outside the build's isolation (RUN steps have no network)"
                        ),
                        "download the file into the build context and COPY it, or provision the package from npm or PyPI with provision_server",
                    );
                }
            }
            "RUN" => {
                for flag in rest.iter().take_while(|w| w.starts_with("--")) {
                    let Some(spec) = flag.strip_prefix("--mount=") else {
                        return refused(
                            format!("`RUN {flag}`: mcpod's builds take no RUN flag but --mount"),
                            "remove the flag (builds have no network; the operator can give them one with `mcpod serve --build-network`)",
                        );
                    };
                    if let Err(why) = mount(spec) {
                        return refused(
                            format!("`RUN --mount={spec}`: {why}"),
                            "mount a tmpfs, a cache by its target only, or a path inside the build context (source=relative/path), or COPY what the step needs",
                        );
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The source `word` of an ADD names, when buildah would fetch it (a URL or
/// a git remote), or cannot be told from one (`$` substitution).
fn fetched(word: &str) -> Option<String> {
    // Exec form: ["src", "dest"].
    let bare = word.trim_matches(|c| matches!(c, '[' | ']' | ',' | '"' | '\''));
    if bare.starts_with("--") {
        return None;
    }
    let lower = bare.to_ascii_lowercase();
    (lower.contains("://") || lower.starts_with("git@") || bare.contains('$'))
        .then(|| bare.to_string())
}

/// Whether a `--mount` spec stays inside what the build may touch.
fn mount(spec: &str) -> std::result::Result<(), String> {
    if spec.contains('$') {
        return Err("a mount spec cannot take `$` substitution".into());
    }
    let mut kind = "bind";
    let mut keys = Vec::new();
    for option in spec.split(',') {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        let key = key.trim().to_ascii_lowercase();
        if key == "type" {
            kind = value;
        }
        keys.push((key, value.trim()));
    }
    let allowed: &[&str] = match kind {
        "tmpfs" => &[
            "type",
            "target",
            "dst",
            "destination",
            "size",
            "tmpfs-size",
            "tmpfs-mode",
        ],
        "cache" => &[
            "type",
            "target",
            "dst",
            "destination",
            "sharing",
            "mode",
            "uid",
            "gid",
            "readonly",
            "ro",
            "rw",
            "readwrite",
        ],
        "bind" => &[
            "type",
            "target",
            "dst",
            "destination",
            "source",
            "src",
            "from",
            "readonly",
            "ro",
            "rw",
            "readwrite",
        ],
        other => return Err(format!("mounts of type `{other}` read from the host")),
    };
    for (key, value) in keys {
        if !allowed.contains(&key.as_str()) {
            return Err(format!(
                "`{key}` is not taken for a {kind} mount (buildah resolves it on the host)"
            ));
        }
        if matches!(key.as_str(), "source" | "src")
            && (value.starts_with('/')
                || std::path::Path::new(value)
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir)))
        {
            return Err(format!(
                "the source `{value}` is not a path inside the build context"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(containerfile: &str) -> String {
        check("Containerfile", containerfile)
            .expect_err(containerfile)
            .to_string()
    }

    #[test]
    fn what_buildah_does_on_the_host_is_refused_naming_the_line() {
        let err =
            refused("FROM x\nRUN --mount=type=cache,id=../../../../etc/cron.d,target=/c true\n");
        assert!(err.contains("line 2") && err.contains("`id`"), "{err}");
        for cf in [
            "FROM x\nADD http://127.0.0.1:8080/secret /s\n",
            "FROM x\nADD [\"https://169.254.169.254/latest\", \"/m\"]\n",
            "FROM x\nADD git@github.com:a/b.git /b\n",
            "FROM x\nARG U\nADD ${U} /u\n",
            "FROM x\nRUN --network=host true\n",
            "FROM x\nRUN --security=insecure true\n",
            "FROM x\nRUN --mount=type=secret,id=aws,target=/s true\n",
            "FROM x\nRUN --mount=type=ssh true\n",
            "FROM x\nRUN --mount=type=cache,target=/c,source=/etc true\n",
            "FROM x\nRUN --mount=type=cache,target=/c,from=img true\n",
            "FROM x\nRUN --mount=type=bind,source=../..,target=/h true\n",
            "FROM x\nRUN --mount=type=bind,src=/root,target=/h true\n",
            "FROM x\nARG I=../../x\nRUN --mount=type=cache,target=/c,id=$I true\n",
            "FROM x\nRUN \\\n  --mount=type=cache,target=/c,ID=../x true\n",
        ] {
            let err = refused(cf);
            assert!(err.contains("Containerfile"), "{cf}: {err}");
        }
    }

    #[test]
    fn ordinary_steps_pass() {
        check(
            "Containerfile",
            "FROM x AS build\n\
             ADD --chown=1:1 files.tar.gz /opt/\n\
             ADD [\"a b\", \"/c\"]\n\
             COPY --from=build /a /b\n\
             RUN --mount=type=cache,target=/root/.cache/pip pip install ./w.whl\n\
             RUN --mount=type=tmpfs,target=/scratch --mount=type=bind,source=src,target=/s make\n\
             RUN --mount=type=bind,from=build,source=out,target=/o cp /o/x /x\n\
             RUN echo --mount=anything --network=host is an argument here\n",
        )
        .expect("ordinary steps");
    }
}
