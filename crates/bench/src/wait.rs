//! Waiting for runs to end, and what each way of waiting costs the server.
//!
//! A held `GET /runs/{id}?wait_after=REV` answers the instant the run changes, but with the
//! whole run document: cheap for a few nodes, and for thousands a real load on the server
//! that would be measured with the engine. So small runs are followed that way, and large
//! ones by asking for the one-row run summary every [`POLL`], which bounds the error of a
//! wall time to that interval.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use baton_api::RunDoc;
use baton_core::RunState;

use crate::api::Api;

/// How often a large run's summary is read.
pub(crate) const POLL: Duration = Duration::from_millis(2);

/// Runs with at most this many nodes are followed with the held read.
const HELD_READ_MAX_NODES: usize = 10;

/// The longest any single run may take before the harness gives up.
const RUN_DEADLINE: Duration = Duration::from_secs(600);

/// Waits until the run `created` (as `POST /runs` answered) ends, and returns its final
/// document and the instant its end was seen. A run that did not succeed is an error: the
/// figures of a broken run mean nothing.
pub(crate) async fn until_done(api: &Api, created: &RunDoc) -> Result<(RunDoc, Instant)> {
    let deadline = Instant::now() + RUN_DEADLINE;
    let (doc, seen) = if created.nodes.len() <= HELD_READ_MAX_NODES {
        held_reads(api, created, deadline).await?
    } else {
        summaries(api, created, deadline).await?
    };
    check_success(&doc)?;
    Ok((doc, seen))
}

async fn held_reads(api: &Api, created: &RunDoc, deadline: Instant) -> Result<(RunDoc, Instant)> {
    let mut rev = created.rev;
    loop {
        let doc = api.run_after(&created.id, rev, 10_000).await?;
        if doc.status.is_terminal() {
            return Ok((doc, Instant::now()));
        }
        rev = doc.rev;
        if Instant::now() > deadline {
            bail!("run {} did not end in {RUN_DEADLINE:?}", created.id);
        }
    }
}

async fn summaries(api: &Api, created: &RunDoc, deadline: Instant) -> Result<(RunDoc, Instant)> {
    loop {
        // The harness runs one run of a workflow at a time here, so the newest is this one.
        let newest = api.runs(&created.workflow, None, 1).await?;
        match newest.first() {
            Some(s) if s.id != created.id => {
                bail!("run {} is not the newest of its workflow", created.id)
            }
            Some(s) if s.status.is_terminal() => {
                let seen = Instant::now();
                return Ok((api.run(&created.id).await?, seen));
            }
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("run {} did not end in {RUN_DEADLINE:?}", created.id);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until no run of `workflow` is still going, and returns the instant that was seen.
pub(crate) async fn until_all_done(api: &Api, workflow: &str) -> Result<Instant> {
    let deadline = Instant::now() + RUN_DEADLINE;
    let going = [RunState::Created, RunState::Pending, RunState::Running];
    'poll: loop {
        for s in going {
            if !api.runs(workflow, Some(s), 1).await?.is_empty() {
                if Instant::now() > deadline {
                    bail!("runs of {workflow} did not end in {RUN_DEADLINE:?}");
                }
                tokio::time::sleep(POLL).await;
                continue 'poll;
            }
        }
        let seen = Instant::now();
        let failed = api.runs(workflow, Some(RunState::Failure), 1).await?;
        let errored = api.runs(workflow, Some(RunState::Error), 1).await?;
        if let Some(r) = failed.first().or(errored.first()) {
            bail!("run {} of {workflow} ended {}", r.id, r.status);
        }
        return Ok(seen);
    }
}

fn check_success(doc: &RunDoc) -> Result<()> {
    if doc.status == RunState::Success {
        return Ok(());
    }
    let bad: Vec<String> = doc
        .nodes
        .iter()
        .filter(|(_, n)| n.status != baton_core::NodeState::Success)
        .take(5)
        .map(|(id, n)| {
            let why = n
                .attempts
                .last()
                .and_then(|a| a.message.clone())
                .unwrap_or_default();
            format!("{id} {} {why}", n.status)
        })
        .collect();
    bail!("run {} ended {}: {}", doc.id, doc.status, bad.join("; "))
}
