//! `baton tokens create|list|revoke`.

use baton_api::{CreateToken, TokenDoc};

use crate::args::TokensCommand;
use crate::client::Client;
use crate::exit::{CliError, Exit};
use crate::live::say;
use crate::output::{Table, ago, now_ms, print_json, write_stdout};

/// Runs one `baton tokens` subcommand.
pub async fn tokens(cmd: &TokensCommand, client: &Client) -> Result<Exit, CliError> {
    match cmd {
        TokensCommand::Create {
            name,
            role,
            expires,
            json,
            ..
        } => {
            let expires_in_secs = match expires {
                Some(d) if d.as_secs() == 0 => {
                    return Err(CliError::Usage(
                        "--expires must be at least one second".into(),
                    ));
                }
                d => d.map(|d| d.as_secs()),
            };
            let created = client
                .create_token(&CreateToken {
                    name: name.clone(),
                    role: *role,
                    expires_in_secs,
                })
                .await?;
            if *json {
                print_json(&created)?;
            } else {
                // The token alone on stdout, so `$(baton tokens create …)` captures it.
                write_stdout(&format!("{}\n", created.token))?;
                let until = created
                    .info
                    .expires_at
                    .as_deref()
                    .map_or_else(|| "does not expire".to_owned(), |t| format!("expires {t}"));
                say(&format!(
                    "token {:?} ({}) created; {until}. It is shown only this once.",
                    created.info.name, created.info.role
                ));
            }
            Ok(Exit::Success)
        }
        TokensCommand::List { json, .. } => {
            let list = client.tokens().await?;
            if *json {
                print_json(&list)?;
            } else if list.is_empty() {
                say("no named tokens (the admin token file is not listed)");
            } else {
                write_stdout(&tokens_table(&list, now_ms()))?;
            }
            Ok(Exit::Success)
        }
        TokensCommand::Revoke { name, json, .. } => {
            let doc = client.revoke_token(name).await?;
            if *json {
                print_json(&doc)?;
            } else {
                say(&format!("token {:?} revoked", doc.name));
            }
            Ok(Exit::Success)
        }
    }
}

/// `baton tokens list`.
pub fn tokens_table(tokens: &[TokenDoc], now_ms: i64) -> String {
    let mut table = Table::new(vec![
        "NAME", "ROLE", "PREFIX", "STATUS", "CREATED", "BY", "EXPIRES",
    ]);
    for t in tokens {
        table.row(vec![
            t.name.clone(),
            t.role.to_string(),
            t.prefix.clone(),
            t.status.clone(),
            ago(&t.created_at, now_ms),
            t.created_by.clone(),
            t.expires_at.clone().unwrap_or_else(|| "never".into()),
        ]);
    }
    table.render()
}
