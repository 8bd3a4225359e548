//! `baton run FILE`: apply the file, start a run, follow it to its end.
//!
//! The embedded server and agents of a self-contained run are started by the binary; this
//! module only talks HTTP, so it behaves the same against a local or a remote server.

use std::io::IsTerminal as _;
use std::time::Duration;

use baton_api::{ApplyWorkflow, CreateRun, RunDoc};
use baton_core::{NodeState, RunState};
use tokio_util::sync::CancellationToken;

use crate::args::RunArgs;
use crate::client::Client;
use crate::exit::{CliError, Exit};
use crate::live::{Progress, say};
use crate::logs::fetch_tail;
use crate::output::{now_ms, print_json, summary_line, write_stdout};
use crate::validate::LoadedWorkflow;

/// How long one long poll of the run may be held by the server.
const LONG_POLL: Duration = Duration::from_secs(25);

/// Lines of output shown for each failed node after a failed run.
const TAIL_LINES: usize = 20;

/// What an interrupt (the first Ctrl-C) does while a run is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// Stop following; the run goes on on the server (client mode). Exits 130.
    Detach,
    /// Cancel the run, wait for it to end, exit 1 (self-contained mode, where the server
    /// ends with the command).
    Cancel,
}

/// How following ended.
enum Followed {
    /// The run reached a terminal state.
    Ended(RunDoc),
    /// The user stopped following.
    Detached(RunDoc),
}

/// Applies `loaded`, starts a run of that version and, unless `--detach`, follows it until
/// it ends: exit 0 for `success`, 1 otherwise. `interrupt` is canceled on the first Ctrl-C.
pub async fn run(
    loaded: &LoadedWorkflow,
    args: &RunArgs,
    client: &Client,
    on_interrupt: OnInterrupt,
    interrupt: &CancellationToken,
) -> Result<Exit, CliError> {
    let version = client
        .apply_workflow(&ApplyWorkflow {
            filename: loaded.file.clone(),
            source: loaded.source.clone(),
        })
        .await?;
    let doc = client
        .create_run(&CreateRun {
            workflow: version.name.clone(),
            version: Some(version.version),
            priority: args.priority,
        })
        .await?;
    watch(
        client,
        doc,
        loaded.node_order(),
        Watch {
            json: args.json,
            detach: args.detach,
        },
        on_interrupt,
        interrupt,
    )
    .await
}

/// How a started run is followed: the `--json` and `--detach` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watch {
    /// Print the final run document as JSON on stdout.
    pub(crate) json: bool,
    /// Print the run and return at once.
    pub(crate) detach: bool,
}

/// Follows a run that was just started (`baton run`, `baton runs retry`) until it ends,
/// showing nodes in `order`: exit 0 for `success`, 1 otherwise. With `detach`, prints the
/// run (its id, or with `json` its document) and returns at once.
pub(crate) async fn watch(
    client: &Client,
    doc: RunDoc,
    order: Vec<String>,
    how: Watch,
    on_interrupt: OnInterrupt,
    interrupt: &CancellationToken,
) -> Result<Exit, CliError> {
    if how.detach {
        if how.json {
            print_json(&doc)?;
        } else {
            write_stdout(&format!("{}\n", doc.id))?;
        }
        return Ok(Exit::Success);
    }
    let retry_of = doc
        .retry_of
        .as_deref()
        .map_or_else(String::new, |old| format!(", a retry of run {old}"));
    say(&format!(
        "run {} of workflow {} version {}{retry_of}",
        doc.id, doc.workflow, doc.version
    ));
    let mut progress = Progress::new(order.clone(), std::io::stderr().is_terminal());
    let followed = follow(client, doc, &mut progress, on_interrupt, interrupt).await;
    progress.finish();
    match followed? {
        Followed::Detached(doc) => {
            say(&format!(
                "stopped following run {id}; it goes on on the server (baton runs show {id})",
                id = doc.id
            ));
            Ok(Exit::Interrupted)
        }
        Followed::Ended(doc) => {
            if doc.status != RunState::Success {
                print_failed_logs(client, &doc, &order).await;
            }
            say(&summary_line(&doc, now_ms()));
            if how.json {
                print_json(&doc)?;
            }
            Ok(if doc.status == RunState::Success {
                Exit::Success
            } else {
                Exit::Failure
            })
        }
    }
}

/// Long-polls the run until it ends, showing every change; handles the first interrupt.
async fn follow(
    client: &Client,
    mut doc: RunDoc,
    progress: &mut Progress,
    on_interrupt: OnInterrupt,
    interrupt: &CancellationToken,
) -> Result<Followed, CliError> {
    progress.update(&doc);
    let mut said = None;
    say_message(&doc, &mut said, progress);
    let mut canceling = false;
    while !doc.status.is_terminal() {
        tokio::select! {
            biased;
            () = interrupt.cancelled(), if !canceling => match on_interrupt {
                OnInterrupt::Detach => return Ok(Followed::Detached(doc)),
                OnInterrupt::Cancel => {
                    canceling = true;
                    progress.message(&format!(
                        "canceling run {} (press Ctrl-C again to quit at once)",
                        doc.id
                    ));
                    match client.cancel_run(&doc.id).await {
                        Ok(next) => doc = newer(doc, next, progress),
                        // Finished meanwhile: the next poll brings the final document.
                        Err(CliError::Api { status: 409, .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            },
            next = client.wait_run(&doc.id, doc.rev, LONG_POLL) => {
                doc = newer(doc, next?, progress);
            }
        }
        say_message(&doc, &mut said, progress);
    }
    Ok(Followed::Ended(doc))
}

/// Shows the run's message (why it waits for a place, why its concurrency limit canceled
/// it) once each time it changes.
fn say_message(doc: &RunDoc, said: &mut Option<String>, progress: &Progress) {
    if doc.message != *said {
        if let Some(m) = &doc.message {
            progress.message(&format!("run {}: {m}", doc.id));
        }
        said.clone_from(&doc.message);
    }
}

/// Keeps the newer of two documents of the same run, showing it when it is new.
fn newer(current: RunDoc, next: RunDoc, progress: &mut Progress) -> RunDoc {
    if next.rev > current.rev || (next.status.is_terminal() && !current.status.is_terminal()) {
        progress.update(&next);
        next
    } else {
        current
    }
}

/// Prints the last lines of output of every failed or errored node, in workflow order.
async fn print_failed_logs(client: &Client, doc: &RunDoc, order: &[String]) {
    for id in crate::output::node_order(doc, Some(order)) {
        let Some(node) = doc.nodes.get(id) else {
            continue;
        };
        if !matches!(node.status, NodeState::Failure | NodeState::Error) {
            continue;
        }
        let Some(last) = node.attempts.last() else {
            let why = node.message.as_deref().unwrap_or("never started");
            say(&format!("==> {id}: {} ({why})", node.status));
            continue;
        };
        let how = match (last.exit_code, &last.message, last.reason) {
            (Some(code), _, _) => format!("exit code {code}"),
            (None, Some(m), _) => m.clone(),
            (None, None, Some(r)) => r.as_str().to_owned(),
            (None, None, None) => node.status.as_str().to_owned(),
        };
        match fetch_tail(client, &doc.id, id, last.number, TAIL_LINES).await {
            Ok(lines) if lines.is_empty() => {
                say(&format!("==> {id}: {} ({how}), no output", node.status));
            }
            Ok(lines) => {
                say(&format!(
                    "==> {id}: {} ({how}), last {} lines of attempt {}:",
                    node.status,
                    lines.len(),
                    last.number
                ));
                for line in lines {
                    crate::live::say_log(&line);
                }
            }
            Err(e) => say(&format!("error: cannot read the output of {id}: {e}")),
        }
    }
}
