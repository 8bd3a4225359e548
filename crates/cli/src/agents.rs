//! `baton agents list`.

use crate::args::AgentsCommand;
use crate::client::Client;
use crate::exit::{CliError, Exit};
use crate::live::say;
use crate::output::{agents_table, now_ms, print_json, write_stdout};

/// Runs one `baton agents` subcommand.
pub async fn agents(cmd: &AgentsCommand, client: &Client) -> Result<Exit, CliError> {
    match cmd {
        AgentsCommand::List { json, .. } => {
            let list = client.agents().await?;
            if *json {
                print_json(&list)?;
            } else if list.is_empty() {
                say("no agents");
            } else {
                write_stdout(&agents_table(&list, now_ms()))?;
            }
            Ok(Exit::Success)
        }
    }
}
