//! `baton runs list | show | logs | cancel | retry`.

use std::io::Write as _;
use std::time::Duration;

use baton_api::{LogQuery, RetryRun, RunDoc, RunFilter};
use tokio_util::sync::CancellationToken;

use crate::args::RunsCommand;
use crate::client::Client;
use crate::exit::{CliError, Exit};
use crate::live::say;
use crate::logs::LogWriter;
use crate::output::{node_order, now_ms, print_json, runs_table, show_run, write_stdout};
use crate::run::{OnInterrupt, Watch, watch};

/// How long `runs logs --follow` waits for the run to change before it looks for new output.
///
/// Log appends do not bump the run's `rev`, so new output is looked for at least this often.
const FOLLOW_WAIT: Duration = Duration::from_millis(500);

/// Runs one `baton runs` subcommand. `interrupt` is canceled on the first Ctrl-C: a
/// subcommand that follows a run then stops following it.
pub async fn runs(
    cmd: &RunsCommand,
    client: &Client,
    interrupt: &CancellationToken,
) -> Result<Exit, CliError> {
    match cmd {
        RunsCommand::List {
            workflow,
            status,
            limit,
            json,
            ..
        } => {
            let filter = RunFilter {
                workflow: workflow.clone(),
                status: *status,
                limit: Some(*limit),
            };
            let list = client.runs(&filter).await?;
            if *json {
                print_json(&list)?;
            } else if list.is_empty() {
                say("no runs");
            } else {
                write_stdout(&runs_table(&list, now_ms()))?;
            }
            Ok(Exit::Success)
        }
        RunsCommand::Show { run, json, .. } => {
            let doc = client.run(run).await?;
            if *json {
                print_json(&doc)?;
            } else {
                let order = definition_order(client, &doc).await;
                write_stdout(&show_run(&doc, order.as_deref(), now_ms()))?;
            }
            Ok(Exit::Success)
        }
        RunsCommand::Logs {
            run, node, follow, ..
        } => logs(client, run, node.as_deref(), *follow).await,
        RunsCommand::Cancel { run, json, .. } => cancel(client, run, *json).await,
        RunsCommand::Retry {
            run,
            from,
            json,
            detach,
            ..
        } => {
            let how = Watch {
                json: *json,
                detach: *detach,
            };
            retry(client, run, from.as_deref(), how, interrupt).await
        }
    }
}

/// `baton runs retry RUN [--from NODE]`: starts the re-run and follows it like `baton run`.
async fn retry(
    client: &Client,
    run: &str,
    from: Option<&str>,
    how: Watch,
    interrupt: &CancellationToken,
) -> Result<Exit, CliError> {
    let body = RetryRun {
        from: from.map(str::to_owned),
    };
    let doc = client.retry_run(run, &body).await?;
    let order = match definition_order(client, &doc).await {
        Some(order) => order,
        None => node_order(&doc, None)
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    watch(client, doc, order, how, OnInterrupt::Detach, interrupt).await
}

/// Node ids in the order of the workflow file the run was made from; `None` when the
/// version cannot be read (the caller falls back to dependency order).
async fn definition_order(client: &Client, doc: &RunDoc) -> Option<Vec<String>> {
    let version = client
        .workflow_version(&doc.workflow, doc.version)
        .await
        .ok()?;
    Some(version.definition.nodes.into_iter().map(|n| n.id).collect())
}

/// `baton runs logs RUN [NODE] [--follow]`.
async fn logs(
    client: &Client,
    run: &str,
    node: Option<&str>,
    follow: bool,
) -> Result<Exit, CliError> {
    let mut doc = client.run(run).await?;
    if let Some(n) = node
        && !doc.nodes.contains_key(n)
    {
        return Err(CliError::Usage(format!("run {run} has no node {n:?}")));
    }
    let mut writer = LogWriter::new(node.is_none() && doc.nodes.len() > 1);
    let mut query = LogQuery {
        node: node.map(str::to_owned),
        after: None,
        limit: None,
    };
    loop {
        loop {
            let page = client.logs(run, &query).await?;
            if page.chunks.is_empty() {
                break;
            }
            let mut out = std::io::stdout().lock();
            for chunk in &page.chunks {
                writer.write(&mut out, chunk)?;
            }
            out.flush()?;
            if query.after == Some(page.next) {
                break;
            }
            query.after = Some(page.next);
        }
        // Checked after draining, so output stored before the run ended is never missed.
        if !follow || doc.status.is_terminal() {
            break;
        }
        doc = client.wait_run(run, doc.rev, FOLLOW_WAIT).await?;
    }
    let mut out = std::io::stdout().lock();
    writer.finish(&mut out)?;
    out.flush()?;
    Ok(Exit::Success)
}

/// `baton runs cancel RUN`: 0 when the cancel was accepted, 1 when the run had finished.
async fn cancel(client: &Client, run: &str, json: bool) -> Result<Exit, CliError> {
    match client.cancel_run(run).await {
        Ok(doc) => {
            if json {
                print_json(&doc)?;
            } else {
                say(&format!(
                    "cancel requested for run {} (status {})",
                    doc.id, doc.status
                ));
            }
            Ok(Exit::Success)
        }
        Err(CliError::Api {
            status: 409,
            code,
            message,
            details,
        }) => {
            let message = match client.run(run).await {
                Ok(doc) => format!(
                    "run {run} already finished ({}); nothing to cancel",
                    doc.status
                ),
                Err(_) => format!("cannot cancel run {run}: {message}"),
            };
            Err(CliError::Api {
                status: 409,
                code,
                message,
                details,
            })
        }
        Err(e) => Err(e),
    }
}
