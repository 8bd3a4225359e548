//! `baton resources list`.

use baton_api::ResourceDoc;

use crate::args::ResourcesCommand;
use crate::client::Client;
use crate::exit::{CliError, Exit};
use crate::live::say;
use crate::output::{Table, ago, now_ms, print_json, write_stdout};

/// Runs one `baton resources` subcommand.
pub async fn resources(cmd: &ResourcesCommand, client: &Client) -> Result<Exit, CliError> {
    match cmd {
        ResourcesCommand::List { json, .. } => {
            let list = client.resources().await?;
            if *json {
                print_json(&list)?;
            } else if list.is_empty() {
                say("no resource is held or waited for");
            } else {
                write_stdout(&resources_table(&list, now_ms()))?;
            }
            Ok(Exit::Success)
        }
    }
}

/// `baton resources list`: per resource, its holders, then its waiters in the order they
/// would get it.
pub fn resources_table(resources: &[ResourceDoc], now_ms: i64) -> String {
    let mut table = Table::new(vec![
        "RESOURCE", "STATE", "RUN", "NODE", "COUNT", "AGENT", "PRIORITY", "SINCE",
    ]);
    for r in resources {
        for h in &r.holders {
            table.row(vec![
                r.name.clone(),
                "held".to_owned(),
                h.run_id.clone(),
                format!("{}/{}", h.workflow, h.node),
                h.count.to_string(),
                h.agent.clone(),
                "-".to_owned(),
                ago(&h.since, now_ms),
            ]);
        }
        for (i, w) in r.waiters.iter().enumerate() {
            table.row(vec![
                r.name.clone(),
                format!("waiting #{}", i + 1),
                w.run_id.clone(),
                format!("{}/{}", w.workflow, w.node),
                w.count.to_string(),
                "-".to_owned(),
                w.priority.to_string(),
                ago(&w.ready_since, now_ms),
            ]);
        }
        let unlisted = r.waiting.saturating_sub(r.waiters.len() as u64);
        if unlisted > 0 {
            table.row(vec![
                r.name.clone(),
                "waiting".to_owned(),
                format!("+{unlisted} more"),
            ]);
        }
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_api::{ResourceHolder, ResourceWaiter, format_time};

    /// 2026-11-22T23:00:00.000Z.
    const T0: i64 = 1_795_388_400_000;

    #[test]
    fn resources_table_lists_holders_then_waiters_in_order() {
        let list = vec![ResourceDoc {
            name: "db".into(),
            holders: vec![ResourceHolder {
                run_id: "0193a1b2-run".into(),
                workflow: "migrate".into(),
                node: "apply".into(),
                attempt: 1,
                agent: "build-01".into(),
                since: format_time(T0 - 42_000),
                count: 2,
            }],
            waiting: 103,
            waiters: vec![
                ResourceWaiter {
                    run_id: "0193a1b3-run".into(),
                    workflow: "release".into(),
                    node: "schema".into(),
                    priority: 10,
                    ready_since: format_time(T0 - 5_000),
                    count: 1,
                },
                ResourceWaiter {
                    run_id: "0193a1b4-run".into(),
                    workflow: "migrate".into(),
                    node: "apply".into(),
                    priority: 0,
                    ready_since: format_time(T0 - 65_000),
                    count: 2,
                },
            ],
        }];
        insta::assert_snapshot!(resources_table(&list, T0), @r"
        RESOURCE  STATE       RUN           NODE            COUNT  AGENT     PRIORITY  SINCE
        db        held        0193a1b2-run  migrate/apply   2      build-01  -         42s ago
        db        waiting #1  0193a1b3-run  release/schema  1      -         10        5s ago
        db        waiting #2  0193a1b4-run  migrate/apply   2      -         0         1m ago
        db        waiting     +101 more
        ");
    }
}
