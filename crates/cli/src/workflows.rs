//! `baton workflows apply | list | show`.

use baton_api::ApplyWorkflow;

use crate::args::WorkflowsCommand;
use crate::client::Client;
use crate::exit::{CliError, Exit};
use crate::live::say;
use crate::output::{applied_line, print_json, versions_table, workflows_table, write_stdout};
use crate::validate::load;

/// Runs one `baton workflows` subcommand.
pub async fn workflows(cmd: &WorkflowsCommand, client: &Client) -> Result<Exit, CliError> {
    match cmd {
        WorkflowsCommand::Apply { file, json, .. } => {
            // Checked locally first: the same diagnostics as `baton validate`, no round trip.
            let loaded = load(file)?;
            let version = client
                .apply_workflow(&ApplyWorkflow {
                    filename: loaded.file,
                    source: loaded.source,
                })
                .await?;
            if *json {
                print_json(&version)?;
            } else {
                write_stdout(&format!("{}\n", applied_line(&version)))?;
            }
        }
        WorkflowsCommand::List { json, .. } => {
            let list = client.workflows().await?;
            if *json {
                print_json(&list)?;
            } else if list.is_empty() {
                say("no workflows");
            } else {
                write_stdout(&workflows_table(&list))?;
            }
        }
        WorkflowsCommand::Show {
            name,
            version: None,
            json,
            ..
        } => {
            let doc = client.workflow(name).await?;
            if *json {
                print_json(&doc)?;
            } else {
                write_stdout(&versions_table(&doc.versions))?;
            }
        }
        WorkflowsCommand::Show {
            name,
            version: Some(v),
            json,
            ..
        } => {
            let doc = client.workflow_version(name, *v).await?;
            if *json {
                print_json(&doc)?;
            } else {
                let mut source = doc.source;
                if !source.ends_with('\n') {
                    source.push('\n');
                }
                write_stdout(&source)?;
            }
        }
    }
    Ok(Exit::Success)
}
