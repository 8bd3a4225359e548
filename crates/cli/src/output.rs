//! Text for people: tables, the run summary, `runs show`, times and durations.
//!
//! Every function here is pure (the current time comes in as an argument), so the exact
//! text is pinned by snapshot tests.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;

use baton_api::{
    AgentDoc, AttemptDoc, NodeDoc, RunDoc, RunSummary, WorkflowSummary, WorkflowVersion,
};
use baton_core::{NodeState, Reason, format_duration};

use crate::escape::{one_line, push_escaped};
use crate::exit::CliError;

/// Writes data to stdout; a closed pipe becomes [`CliError::ClosedOutput`].
pub(crate) fn write_stdout(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Prints a value as pretty JSON on stdout (the API's field names), one document.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Output(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    text.push('\n');
    write_stdout(&text)
}

/// Milliseconds since the Unix epoch, from the system clock.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Parses the API's RFC 3339 times (`2026-11-22T23:00:00.123Z`, or with an offset) into
/// milliseconds since the Unix epoch.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, s) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        let frac = &text[start..pos];
        if frac.is_empty() {
            return None;
        }
        let padded = format!("{frac:0<3}");
        millis = padded[..3].parse::<i64>().ok()?;
    }
    let offset_min = match b.get(pos)? {
        b'Z' | b'z' if pos + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if pos + 6 == b.len() && b[pos + 3] == b':' => {
            let m = num(pos + 1, 2)? * 60 + num(pos + 4, 2)?;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm), the inverse of `baton_api::format_time`.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// `HH:MM:SS.mmm` (UTC) of a time in milliseconds, for the plain progress lines.
pub(crate) fn clock(ms: i64) -> String {
    let full = baton_api::format_time(ms);
    full.get(11..23).unwrap_or(&full).to_owned()
}

/// Milliseconds from `from` to `to` (RFC 3339, or now when `to` is absent), if both parse.
fn span(from: Option<&str>, to: Option<&str>, now_ms: i64) -> Option<u64> {
    let start = parse_time(from?)?;
    let end = match to {
        Some(t) => parse_time(t)?,
        None => now_ms,
    };
    Some(u64::try_from(end - start).unwrap_or(0))
}

/// How long a run took (or has taken so far).
pub(crate) fn run_duration(doc: &RunDoc, now_ms: i64) -> Option<u64> {
    span(Some(&doc.created_at), doc.finished_at.as_deref(), now_ms)
}

/// How long an attempt ran (or has run so far); `None` before it started.
pub(crate) fn attempt_duration(attempt: &AttemptDoc, now_ms: i64) -> Option<u64> {
    span(
        attempt.started_at.as_deref(),
        attempt.finished_at.as_deref(),
        now_ms,
    )
}

/// `3s ago`, `5m ago`, `2h ago`, `4d ago`.
pub(crate) fn ago(time: &str, now_ms: i64) -> String {
    let Some(then) = parse_time(time) else {
        return time.to_owned();
    };
    let secs = (now_ms - then).max(0) / 1000;
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// The mark of a node state in the live view and `runs show`.
pub(crate) fn symbol(state: NodeState) -> &'static str {
    match state {
        NodeState::Waiting => "·",
        NodeState::Ready => "○",
        NodeState::Pending => "◌",
        NodeState::Running => "▶",
        NodeState::Success => "✓",
        NodeState::Failure => "✗",
        NodeState::Error => "!",
        NodeState::Canceled => "⊘",
        NodeState::Skipped => "↷",
    }
}

/// The nodes of a run in workflow order: `order` (the definition's file order) when given,
/// else dependencies first with ties by id. Nodes missing from `order` come last.
pub(crate) fn node_order<'a>(doc: &'a RunDoc, order: Option<&[String]>) -> Vec<&'a str> {
    if let Some(order) = order {
        let mut out: Vec<&str> = order
            .iter()
            .filter_map(|id| {
                doc.nodes
                    .get_key_value(id.as_str())
                    .map(|(k, _)| k.as_str())
            })
            .collect();
        let listed: std::collections::HashSet<&str> = out.iter().copied().collect();
        out.extend(
            doc.nodes
                .keys()
                .map(String::as_str)
                .filter(|k| !listed.contains(k)),
        );
        return out;
    }
    topological(&doc.nodes)
}

/// Kahn's algorithm over the run's `needs`, smallest id first among the ready ones; any
/// node left over (a cycle could only come from a broken server) follows in id order.
fn topological(nodes: &BTreeMap<String, NodeDoc>) -> Vec<&str> {
    let mut pending: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, node) in nodes {
        let known = node.needs.iter().filter(|n| nodes.contains_key(*n));
        pending.insert(id, known.clone().count());
        for need in known {
            children.entry(need.as_str()).or_default().push(id);
        }
    }
    let mut ready: std::collections::BTreeSet<&str> = pending
        .iter()
        .filter_map(|(id, n)| (*n == 0).then_some(*id))
        .collect();
    let mut out = Vec::with_capacity(nodes.len());
    while let Some(id) = ready.pop_first() {
        out.push(id);
        for child in children.get(id).into_iter().flatten() {
            if let Some(n) = pending.get_mut(child) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(child);
                }
            }
        }
    }
    if out.len() < nodes.len() {
        let placed: std::collections::HashSet<&str> = out.iter().copied().collect();
        out.extend(
            nodes
                .keys()
                .map(String::as_str)
                .filter(|k| !placed.contains(k)),
        );
    }
    out
}

/// Node counts of a finished run, for the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    pub(crate) canceled: usize,
    pub(crate) unfinished: usize,
}

impl Counts {
    fn of(states: impl IntoIterator<Item = NodeState>) -> Counts {
        let mut c = Counts::default();
        for s in states {
            match s {
                NodeState::Success => c.succeeded += 1,
                NodeState::Failure | NodeState::Error => c.failed += 1,
                NodeState::Skipped => c.skipped += 1,
                NodeState::Canceled => c.canceled += 1,
                _ => c.unfinished += 1,
            }
        }
        c
    }

    /// `5 succeeded, 0 failed, 1 skipped`, then canceled and unfinished only when present.
    fn describe(self) -> String {
        let mut s = format!(
            "{} succeeded, {} failed, {} skipped",
            self.succeeded, self.failed, self.skipped
        );
        if self.canceled > 0 {
            let _ = write!(s, ", {} canceled", self.canceled);
        }
        if self.unfinished > 0 {
            let _ = write!(s, ", {} unfinished", self.unfinished);
        }
        s
    }
}

/// `run <id> success in 1.2s: 5 succeeded, 0 failed, 1 skipped`.
pub fn summary_line(doc: &RunDoc, now_ms: i64) -> String {
    let counts = Counts::of(doc.nodes.values().map(|n| n.status));
    let took = run_duration(doc, now_ms)
        .map_or_else(String::new, |ms| format!(" in {}", format_duration(ms)));
    format!(
        "run {} {}{took}: {}",
        one_line(&doc.id),
        doc.status,
        counts.describe()
    )
}

/// A note for a node in `runs show`: why it waits, or how its last attempt ended.
fn node_note(node: &NodeDoc) -> Option<String> {
    if let Some(w) = &node.waiting_for {
        return Some(format!("waiting for: {w}"));
    }
    if let Some(run) = &node.reused_from {
        return Some(format!("kept from run {run}"));
    }
    let Some(last) = node.attempts.last() else {
        return node.message.clone();
    };
    if let Some(m) = &last.message {
        return Some(m.clone());
    }
    match last.reason {
        Some(Reason::Exit) | None => None,
        Some(r) => Some(r.as_str().to_owned()),
    }
}

/// Columns of plain text, aligned, two spaces apart, with a header row.
pub(crate) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: Vec<&'static str>) -> Table {
        Table {
            headers,
            rows: Vec::new(),
        }
    }

    /// Adds a row; cells come from the server, so each is escaped onto one line.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        let cells = cells
            .into_iter()
            .map(|c| match one_line(&c) {
                Cow::Borrowed(_) => c,
                Cow::Owned(escaped) => escaped,
            })
            .collect();
        self.rows.push(cells);
    }

    /// The table, one line per row, each ending in a newline; trailing blanks trimmed.
    pub(crate) fn render(&self) -> String {
        let cols = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let headers = self
            .headers
            .iter()
            .map(|h| (*h).to_owned())
            .collect::<Vec<_>>();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(cols) {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `-` for absent values in tables.
fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".to_owned())
}

/// `baton runs show`: the run's header, then one row per node in workflow order.
pub fn show_run(doc: &RunDoc, order: Option<&[String]>, now_ms: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run       {}", one_line(&doc.id));
    let _ = writeln!(
        out,
        "workflow  {} (version {})",
        one_line(&doc.workflow),
        doc.version
    );
    let cancel = if doc.cancel_requested && !doc.status.is_terminal() {
        " (cancel requested)"
    } else {
        ""
    };
    let why = match doc.reason {
        Some(Reason::Timeout) => " (the run's timeout passed)".to_owned(),
        Some(r) => format!(" ({r})"),
        None => String::new(),
    };
    let _ = writeln!(out, "status    {}{cancel}{why}", doc.status);
    if let Some(m) = &doc.message {
        let _ = writeln!(out, "note      {}", one_line(m));
    }
    if doc.priority != 0 {
        let _ = writeln!(out, "priority  {}", doc.priority);
    }
    if let Some(old) = &doc.retry_of {
        let _ = writeln!(out, "retry of  {}", one_line(old));
    }
    for new in &doc.retried_by {
        let _ = writeln!(out, "retried   by run {}", one_line(new));
    }
    let _ = writeln!(out, "created   {}", one_line(&doc.created_at));
    if let Some(f) = &doc.finished_at {
        let took = run_duration(doc, now_ms)
            .map_or_else(String::new, |ms| format!(" ({})", format_duration(ms)));
        let _ = writeln!(out, "finished  {}{took}", one_line(f));
    } else if let Some(ms) = run_duration(doc, now_ms) {
        let _ = writeln!(out, "elapsed   {}", format_duration(ms));
    }
    out.push('\n');
    let notes = doc.nodes.values().any(|n| node_note(n).is_some());
    let mut headers = vec!["NODE", "STATE", "ATTEMPTS", "AGENT", "EXIT", "DURATION"];
    if notes {
        headers.push("NOTE");
    }
    let mut table = Table::new(headers);
    for id in node_order(doc, order) {
        let Some(node) = doc.nodes.get(id) else {
            continue;
        };
        let last = node.attempts.last();
        let mut row = vec![
            id.to_owned(),
            format!("{} {}", symbol(node.status), node.status),
            node.attempts.len().to_string(),
            or_dash(last.map(|a| a.agent.clone())),
            or_dash(last.and_then(|a| a.exit_code).map(|c| c.to_string())),
            or_dash(
                last.and_then(|a| attempt_duration(a, now_ms))
                    .map(format_duration),
            ),
        ];
        if notes {
            row.push(node_note(node).unwrap_or_default());
        }
        table.row(row);
    }
    out.push_str(&table.render());
    out.push_str(&outputs_table(doc, order));
    out
}

/// Longest output value `runs show` prints in full, in characters; `--json` has them all.
const SHOWN_VALUE_CHARS: usize = 120;

/// The nodes' outputs under `runs show`'s node table, one row per key; empty when no node
/// has any.
fn outputs_table(doc: &RunDoc, order: Option<&[String]>) -> String {
    if doc.nodes.values().all(|n| n.outputs.is_empty()) {
        return String::new();
    }
    let mut table = Table::new(vec!["NODE", "OUTPUT", "VALUE"]);
    for id in node_order(doc, order) {
        let Some(node) = doc.nodes.get(id) else {
            continue;
        };
        for (key, value) in &node.outputs {
            table.row(vec![id.to_owned(), key.clone(), shown_value(value)]);
        }
    }
    format!("\n{}", table.render())
}

/// A value on one line: control characters escaped, a long one cut.
fn shown_value(value: &str) -> String {
    let mut shown = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == SHOWN_VALUE_CHARS {
            let _ = write!(shown, "… ({} bytes in all)", value.len());
            break;
        }
        push_escaped(&mut shown, c);
    }
    shown
}

/// `baton runs list`.
pub fn runs_table(runs: &[RunSummary], now_ms: i64) -> String {
    let mut table = Table::new(vec![
        "RUN", "WORKFLOW", "VERSION", "STATUS", "CREATED", "DURATION", "NODES",
    ]);
    for r in runs {
        let took = span(Some(&r.created_at), r.finished_at.as_deref(), now_ms).map(format_duration);
        let counts: Vec<String> = r
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        table.row(vec![
            r.id.clone(),
            r.workflow.clone(),
            r.version.to_string(),
            r.status.to_string(),
            r.created_at.clone(),
            or_dash(took),
            counts.join(", "),
        ]);
    }
    table.render()
}

/// `baton agents list`.
pub fn agents_table(agents: &[AgentDoc], now_ms: i64) -> String {
    let mut table = Table::new(vec!["NAME", "STATUS", "SLOTS", "LABELS", "LAST SEEN"]);
    for a in agents {
        let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        table.row(vec![
            a.name.clone(),
            a.status.clone(),
            format!("{}/{}", a.used_slots, a.slots),
            or_dash((!labels.is_empty()).then(|| labels.join(","))),
            ago(&a.last_seen_at, now_ms),
        ]);
    }
    table.render()
}

/// `baton workflows list`.
pub fn workflows_table(workflows: &[WorkflowSummary]) -> String {
    let mut table = Table::new(vec!["NAME", "LATEST", "UPDATED", "RUNS"]);
    for w in workflows {
        table.row(vec![
            w.name.clone(),
            w.latest_version.to_string(),
            w.updated_at.clone(),
            w.runs.to_string(),
        ]);
    }
    table.render()
}

/// `baton workflows show NAME`: the versions, newest first.
pub fn versions_table(versions: &[WorkflowVersion]) -> String {
    let mut table = Table::new(vec!["VERSION", "CREATED", "NODES"]);
    for v in versions {
        table.row(vec![
            v.version.to_string(),
            v.created_at.clone(),
            v.nodes.to_string(),
        ]);
    }
    table.render()
}

/// The line `baton workflows apply` prints.
pub fn applied_line(v: &WorkflowVersion) -> String {
    let what = if v.created { "applied" } else { "unchanged" };
    let nodes = if v.nodes == 1 { "node" } else { "nodes" };
    format!(
        "workflow {} version {} {what} ({} {nodes})",
        one_line(&v.name),
        v.version,
        v.nodes
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use baton_api::format_time;
    use baton_core::{AttemptState, RunState};

    /// 2026-11-22T23:00:00.000Z.
    const T0: i64 = 1_795_388_400_000;

    fn at(offset_ms: i64) -> String {
        format_time(T0 + offset_ms)
    }

    fn attempt(
        n: u32,
        status: AttemptState,
        exit: Option<i32>,
        from: i64,
        to: Option<i64>,
    ) -> AttemptDoc {
        AttemptDoc {
            number: n,
            status,
            reason: Some(match status {
                AttemptState::Error => Reason::Lost,
                _ => Reason::Exit,
            }),
            agent: "build-01".into(),
            exit_code: exit,
            message: None,
            claimed_at: at(from - 5),
            started_at: Some(at(from)),
            finished_at: to.map(at),
        }
    }

    fn node(status: NodeState, needs: &[&str], attempts: Vec<AttemptDoc>) -> NodeDoc {
        NodeDoc {
            status,
            needs: needs.iter().map(|s| (*s).to_owned()).collect(),
            waiting_for: None,
            reason: None,
            message: None,
            reused_from: None,
            outputs: Default::default(),
            attempts,
        }
    }

    /// A finished run: checkout ok, test failed after a retry, deploy skipped.
    pub(crate) fn failed_run() -> RunDoc {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "checkout".into(),
            node(
                NodeState::Success,
                &[],
                vec![attempt(1, AttemptState::Success, Some(0), 100, Some(1_300))],
            ),
        );
        nodes.insert(
            "test".into(),
            node(
                NodeState::Failure,
                &["checkout"],
                vec![
                    attempt(1, AttemptState::Error, None, 1_400, Some(2_000)),
                    attempt(2, AttemptState::Failure, Some(101), 2_100, Some(42_200)),
                ],
            ),
        );
        nodes.insert("deploy".into(), node(NodeState::Skipped, &["test"], vec![]));
        RunDoc {
            id: "0193a1b2-run".into(),
            workflow: "release".into(),
            version: 3,
            status: RunState::Failure,
            created_at: at(0),
            started_at: Some(at(100)),
            finished_at: Some(at(42_250)),
            cancel_requested: false,
            reason: None,
            retry_of: None,
            priority: 0,
            message: None,
            retried_by: Vec::new(),
            rev: 17,
            nodes,
        }
    }

    #[test]
    fn parses_the_times_the_api_formats() {
        assert_eq!(parse_time(&format_time(T0 + 123)), Some(T0 + 123));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2000-02-29T00:00:00.5Z"), Some(951_782_400_500));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_time("1970-01-01T00:00:00-00:30"), Some(1_800_000));
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-22T23:00:00",
            "2026-11-22T23:00:00.Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(clock(T0 + 61_123), "23:01:01.123");
    }

    #[test]
    fn summary_counts_every_ending() {
        insta::assert_snapshot!(summary_line(&failed_run(), T0), @"run 0193a1b2-run failure in 42.2s: 1 succeeded, 1 failed, 1 skipped");
        let mut canceled = failed_run();
        canceled.status = RunState::Canceled;
        if let Some(n) = canceled.nodes.get_mut("deploy") {
            n.status = NodeState::Canceled;
        }
        insta::assert_snapshot!(summary_line(&canceled, T0), @"run 0193a1b2-run canceled in 42.2s: 1 succeeded, 1 failed, 0 skipped, 1 canceled");
    }

    #[test]
    fn show_lists_nodes_in_workflow_order() {
        let order = vec![
            "checkout".to_owned(),
            "test".to_owned(),
            "deploy".to_owned(),
        ];
        insta::assert_snapshot!(show_run(&failed_run(), Some(&order), T0 + 60_000));
    }

    #[test]
    fn show_without_order_puts_dependencies_first_and_notes_waits() {
        let mut doc = failed_run();
        doc.status = RunState::Running;
        doc.finished_at = None;
        if let Some(n) = doc.nodes.get_mut("deploy") {
            n.status = NodeState::Ready;
            n.waiting_for = Some("no online agent has the label env=prod".into());
        }
        insta::assert_snapshot!(show_run(&doc, None, T0 + 60_000));
    }

    #[test]
    fn show_says_why_a_run_waits_and_its_priority() {
        let mut doc = failed_run();
        doc.status = RunState::Created;
        doc.finished_at = None;
        doc.started_at = None;
        doc.priority = -5;
        doc.message = Some("queued: workflow release has 1 active run (limit 1)".into());
        let shown = show_run(&doc, None, T0 + 60_000);
        let header: Vec<&str> = shown.lines().take(5).collect();
        assert_eq!(
            header,
            [
                "run       0193a1b2-run",
                "workflow  release (version 3)",
                "status    created",
                "note      queued: workflow release has 1 active run (limit 1)",
                "priority  -5",
            ]
        );
        doc.priority = 0;
        doc.message = None;
        assert!(!show_run(&doc, None, T0).contains("priority"));
    }

    #[test]
    fn show_names_kept_nodes_the_retry_link_and_why_a_node_had_no_agent() {
        let mut doc = failed_run();
        doc.id = "0193a1b2-again".into();
        doc.status = RunState::Error;
        doc.reason = Some(Reason::Timeout);
        doc.retry_of = Some("0193a1b2-run".into());
        doc.retried_by = vec!["0193a1b2-third".into()];
        if let Some(n) = doc.nodes.get_mut("checkout") {
            n.attempts.clear();
            n.reused_from = Some("0193a1b2-run".into());
        }
        if let Some(n) = doc.nodes.get_mut("test") {
            n.status = NodeState::Error;
            n.attempts.clear();
            n.reason = Some(Reason::NoAgent);
            n.message = Some(
                "no agent claimed it within 1h: no online agent implementing \"shell\" has \
                 all of the labels gpu=yes"
                    .into(),
            );
        }
        let order = vec![
            "checkout".to_owned(),
            "test".to_owned(),
            "deploy".to_owned(),
        ];
        insta::assert_snapshot!(show_run(&doc, Some(&order), T0 + 60_000));
    }

    #[test]
    fn show_lists_outputs_on_one_line_each() {
        let mut doc = failed_run();
        if let Some(n) = doc.nodes.get_mut("checkout") {
            n.outputs.insert("sha".into(), "0a1b2c".into());
            n.outputs
                .insert("notes".into(), "line one\nline\ttwo\u{7}".into());
        }
        if let Some(n) = doc.nodes.get_mut("test") {
            n.outputs.insert("log".into(), "x".repeat(200));
            n.outputs.insert("empty".into(), String::new());
        }
        let order = vec![
            "checkout".to_owned(),
            "test".to_owned(),
            "deploy".to_owned(),
        ];
        let shown = show_run(&doc, Some(&order), T0 + 60_000);
        let (_, outputs) = shown
            .split_once("\nNODE      OUTPUT")
            .expect("outputs table");
        insta::assert_snapshot!(outputs, @r"
          VALUE
        checkout  notes   line one\nline\ttwo\u{7}
        checkout  sha     0a1b2c
        test      empty
        test      log     xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… (200 bytes in all)
        ");
        // Without outputs, no table.
        assert!(!show_run(&failed_run(), Some(&order), T0).contains("OUTPUT"));
    }

    #[test]
    fn topological_order_breaks_ties_by_id() {
        let mut doc = failed_run();
        doc.nodes.insert(
            "a-lint".into(),
            node(NodeState::Waiting, &["checkout"], vec![]),
        );
        doc.nodes
            .insert("zz".into(), node(NodeState::Waiting, &[], vec![]));
        assert_eq!(
            node_order(&doc, None),
            ["checkout", "a-lint", "test", "deploy", "zz"]
        );
        let partial = vec!["test".to_owned()];
        assert_eq!(
            node_order(&doc, Some(&partial)),
            ["test", "a-lint", "checkout", "deploy", "zz"]
        );
    }

    #[test]
    fn tables_escape_control_characters_from_the_server() {
        let agent = AgentDoc {
            id: "a1".into(),
            name: "evil\u{1b}[2J\rname".into(),
            status: "online".into(),
            labels: [("os".to_owned(), "linux\nfake row\u{7}".to_owned())].into(),
            functions: vec!["shell".into()],
            slots: 2,
            used_slots: 0,
            version: "0.1.0".into(),
            registered_at: at(0),
            last_seen_at: at(0),
        };
        let text = agents_table(&[agent], 0);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("evil\\u{1b}[2J\\rname"), "{text}");
        assert!(text.contains("os=linux\\nfake row\\u{7}"), "{text}");
    }

    #[test]
    fn tables_align_columns() {
        let mut counts = BTreeMap::new();
        counts.insert(NodeState::Success, 2);
        counts.insert(NodeState::Failure, 1);
        counts.insert(NodeState::Running, 0);
        let runs = vec![RunSummary {
            id: "0193a1b2-run".into(),
            workflow: "release".into(),
            version: 3,
            status: RunState::Failure,
            priority: 0,
            created_at: at(0),
            finished_at: Some(at(42_250)),
            counts,
        }];
        let mut labels = BTreeMap::new();
        labels.insert("os".into(), "linux".into());
        labels.insert("gpu".into(), "yes".into());
        let agents = vec![
            AgentDoc {
                id: "a1".into(),
                name: "build-01".into(),
                status: "online".into(),
                labels,
                functions: vec!["shell".into()],
                slots: 4,
                used_slots: 1,
                version: "0.1.0".into(),
                registered_at: at(0),
                last_seen_at: at(-3_000),
            },
            AgentDoc {
                id: "a2".into(),
                name: "b2".into(),
                status: "gone".into(),
                labels: BTreeMap::new(),
                functions: vec![],
                slots: 2,
                used_slots: 0,
                version: "0.1.0".into(),
                registered_at: at(0),
                last_seen_at: at(-7_300_000),
            },
        ];
        let text = format!(
            "{}\n{}\n{}",
            runs_table(&runs, T0),
            agents_table(&agents, T0),
            workflows_table(&[WorkflowSummary {
                name: "release".into(),
                latest_version: 3,
                updated_at: at(0),
                runs: 12,
            }])
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn apply_line_says_whether_a_version_was_made() {
        let mut v = WorkflowVersion {
            name: "release".into(),
            version: 4,
            created_at: at(0),
            nodes: 5,
            created: true,
        };
        assert_eq!(
            applied_line(&v),
            "workflow release version 4 applied (5 nodes)"
        );
        v.created = false;
        v.nodes = 1;
        assert_eq!(
            applied_line(&v),
            "workflow release version 4 unchanged (1 node)"
        );
    }
}
