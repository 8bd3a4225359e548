//! `baton secrets set|list|rm`.

use std::io::{IsTerminal as _, Read as _};

use baton_api::{PutSecret, SecretDoc};

use crate::args::SecretsCommand;
use crate::client::Client;
use crate::exit::{CliError, Exit};
use crate::live::say;
use crate::output::{Table, ago, now_ms, print_json, write_stdout};

/// Runs one `baton secrets` subcommand.
pub async fn secrets(cmd: &SecretsCommand, client: &Client) -> Result<Exit, CliError> {
    match cmd {
        SecretsCommand::Set {
            name,
            workflows,
            json,
            ..
        } => {
            let value = read_value()?;
            let body = PutSecret {
                value,
                workflows: (!workflows.is_empty()).then(|| workflows.clone()),
            };
            let doc = client.put_secret(name, &body).await?;
            if *json {
                print_json(&doc)?;
            } else {
                say(&format!("secret {:?} set", doc.name));
            }
            Ok(Exit::Success)
        }
        SecretsCommand::List { json, .. } => {
            let list = client.secrets().await?;
            if *json {
                print_json(&list)?;
            } else if list.is_empty() {
                say("no secrets");
            } else {
                write_stdout(&secrets_table(&list, now_ms()))?;
            }
            Ok(Exit::Success)
        }
        SecretsCommand::Rm { name, .. } => {
            client.delete_secret(name).await?;
            say(&format!("secret {name:?} removed"));
            Ok(Exit::Success)
        }
    }
}

/// The value from standard input, without one trailing newline (what `echo` and most
/// editors add). Never from a flag or argument, which shell history and `ps` would show.
fn read_value() -> Result<String, CliError> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        say("reading the secret's value from standard input; end it with Ctrl-D");
    }
    let mut bytes = Vec::new();
    stdin
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::Usage(format!("cannot read the value from standard input: {e}")))?;
    let mut value = String::from_utf8(bytes)
        .map_err(|_| CliError::Usage("the secret's value must be UTF-8 text".into()))?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(CliError::Usage(
            "the secret's value is empty: pipe it on standard input, e.g. \
             `printf %s \"$VALUE\" | baton secrets set NAME`"
                .into(),
        ));
    }
    Ok(value)
}

/// `baton secrets list`.
pub fn secrets_table(secrets: &[SecretDoc], now_ms: i64) -> String {
    let mut table = Table::new(vec!["NAME", "WORKFLOWS", "CREATED", "UPDATED"]);
    for s in secrets {
        table.row(vec![
            s.name.clone(),
            s.workflows
                .as_ref()
                .map_or_else(|| "all".to_owned(), |w| w.join(",")),
            ago(&s.created_at, now_ms),
            ago(&s.updated_at, now_ms),
        ]);
    }
    table.render()
}
