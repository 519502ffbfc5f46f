//! `mcpod connect`: a client's own connection to a server of a running
//! session (the command `client_config` hands out). It reads the server's
//! declaration from the session's image, resolves its `${NAME}` references
//! from this process's environment (only names the operator allowed, which
//! `client_config` passes as `--allow-env`), and runs `podman exec -i` with
//! the values in an env file, on this process's stdio. Nothing is baked into
//! the client's config but references.

use std::ffi::OsString;

use super::container::{self, SESSION_LABEL};
use crate::engine::env::EnvFile;
use crate::engine::podman::{self, Podman};
use crate::labels;
use crate::{Error, Result};

/// Connect this process's stdio to `server` of session container `container`
/// on `engine`; podman's exit code.
pub async fn connect(
    engine: &Podman,
    container: &str,
    server: &str,
    allowed_env: &[String],
) -> Result<i32> {
    let details = engine.container(container).await?;
    let Some(details) = details.filter(|d| {
        d.config
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(SESSION_LABEL))
    }) else {
        return Err(Error::invalid(
            "session container",
            container,
            "no mcpod session container of that name is running (the session ended or was stopped)",
            "launch the image again with launch_session and use the new client_config",
        ));
    };
    let (_, raw) =
        podman::image_labels(&details.image)
            .await?
            .ok_or_else(|| Error::ImageNotFound {
                reference: details.image.clone(),
                place: "in local storage",
                fix: "launch the image again with launch_session".into(),
            })?;
    let declared = labels::read(&raw)?;
    let spec = declared.servers.get(server).ok_or_else(|| {
        Error::invalid(
            "server",
            server,
            "the session's image does not declare it",
            format!(
                "choose from: {}",
                declared
                    .servers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let env = spec.resolve_env(server, allowed_env, |var| std::env::var(var).ok())?;
    let env = EnvFile::new(server, &env)?;
    let args = container::exec_args(
        container,
        &container::ServerCommand {
            argv: &spec.command,
            env: &env,
            workdir: spec.workdir.as_deref(),
        },
    );
    let status = engine
        .run_inheriting(&args, Some(&env).filter(|e| !e.is_empty()))
        .await?;
    Ok(status.code().unwrap_or(128 + 9))
}

/// The client-config entry that connects to `server` of `container` on
/// `engine` with [`connect`]: the references of `spec` stay `${NAME}`, for
/// the client to fill.
pub fn client_entry(
    engine: &Podman,
    container: &str,
    server: &str,
    spec: &labels::ServerSpec,
    allowed_env: &[String],
) -> serde_json::Value {
    let program: OsString = std::env::current_exe()
        .map(OsString::from)
        .unwrap_or_else(|_| "mcpod".into());
    let mut args = vec![
        "connect".to_string(),
        container.to_string(),
        server.to_string(),
    ];
    args.extend(
        engine
            .global_args()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned()),
    );
    let mut env = serde_json::Map::new();
    for (_, name) in spec.env_refs() {
        if allowed_env.iter().any(|a| a == name) && !env.contains_key(name) {
            args.push(format!("--allow-env={name}"));
            env.insert(name.to_string(), format!("${{{name}}}").into());
        }
    }
    let mut entry = serde_json::json!({
        "command": program.to_string_lossy(),
        "args": args,
    });
    if !env.is_empty() {
        entry["env"] = serde_json::Value::Object(env);
    }
    entry
}
