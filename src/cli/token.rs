//! `mcpod token create|list|revoke`: the bearer tokens of `serve --listen`.

use clap::{Args, Subcommand};
use mcpod::server::auth::Tokens;

use super::JsonFlag;
use super::output::print;

#[derive(Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token named NAME and print it once (only its sha256 is kept).
    Create {
        /// The token's name: the principal its requests act as (letters, digits, `-`, `_`, `.`).
        name: String,
        /// The token's holder is an admin: list_sessions and stop_session reach every
        /// principal's sessions, and read_audit reads the audit log.
        #[arg(long)]
        admin: bool,
    },
    /// List the tokens by name (never the tokens themselves).
    List(JsonFlag),
    /// Revoke the token named NAME: a running `serve --listen` refuses it at once and stops its sessions within a second.
    Revoke { name: String },
}

pub fn token(args: TokenArgs) -> Result<(), String> {
    let tokens = Tokens::in_state_dir();
    match args.command {
        TokenCommand::Create { name, admin } => {
            let token = tokens.create(&name, admin).map_err(|e| e.to_string())?;
            println!("{token}");
            eprintln!(
                "made token `{name}` ({}); it is shown only now: give it to the client as \
                 `Authorization: Bearer <token>`",
                tokens.path().display()
            );
            Ok(())
        }
        TokenCommand::List(flag) => {
            let list = tokens.list().map_err(|e| e.to_string())?;
            print(&list, flag.json, || {
                list.iter()
                    .map(|t| {
                        let role = if t.admin { "\tadmin" } else { "" };
                        format!("{}\tcreated {}{role}\n", t.name, t.created)
                    })
                    .collect()
            })
        }
        TokenCommand::Revoke { name } => {
            tokens.revoke(&name).map_err(|e| e.to_string())?;
            eprintln!("revoked token `{name}`");
            Ok(())
        }
    }
}
