//! Following a run on stderr: a live view on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use baton_api::{NodeDoc, RunDoc};
use baton_core::{AttemptState, NodeState, Reason, format_duration};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::escape::one_line;
use crate::output::{self, attempt_duration, clock, now_ms, symbol};

/// How a followed run is shown on stderr.
pub(crate) enum Progress {
    /// One line per node, redrawn in place (stderr is a terminal).
    Live(Live),
    /// One line per node state change (stderr is a file or a pipe).
    Plain(Plain),
}

impl Progress {
    /// The live view when `terminal`, else plain lines; nodes shown in `order`.
    pub(crate) fn new(order: Vec<String>, terminal: bool) -> Progress {
        if terminal {
            Progress::Live(Live::new(order))
        } else {
            Progress::Plain(Plain::new(order))
        }
    }

    /// Shows what changed in `doc`.
    pub(crate) fn update(&mut self, doc: &RunDoc) {
        match self {
            Progress::Live(l) => l.update(doc),
            Progress::Plain(p) => {
                for line in p.changes(doc, now_ms()) {
                    say(&line);
                }
            }
        }
    }

    /// A message between updates, printed above the live lines.
    pub(crate) fn message(&self, line: &str) {
        match self {
            Progress::Live(l) => {
                if l.multi.println(one_line(line)).is_err() {
                    say(line);
                }
            }
            Progress::Plain(_) => say(line),
        }
    }

    /// Stops redrawing and leaves the last state on screen.
    pub(crate) fn finish(self) {
        if let Progress::Live(l) = self {
            l.finish();
        }
    }
}

/// Writes a line to stderr; a closed stderr is not worth failing over.
/// Prints a message line on stderr, escaped onto one line: it carries names and messages
/// from the server.
pub(crate) fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", one_line(line));
}

/// Prints a line of a step's log on stderr as it is: the step's own bytes.
pub(crate) fn say_log(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// What the plain view last showed of a node.
#[derive(PartialEq, Eq)]
struct Seen {
    status: NodeState,
    attempts: usize,
    waiting_for: Option<String>,
}

/// The plain-lines view: remembers each node's last shown state and attempt count.
pub(crate) struct Plain {
    order: Vec<String>,
    seen: HashMap<String, Seen>,
}

impl Plain {
    pub(crate) fn new(order: Vec<String>) -> Plain {
        Plain {
            order,
            seen: HashMap::new(),
        }
    }

    /// One line per node whose state (or attempt) changed since the last call:
    /// `12:00:01.123 build running on agent-1`. Initial `waiting` states are not news.
    pub(crate) fn changes(&mut self, doc: &RunDoc, now_ms: i64) -> Vec<String> {
        let time = clock(now_ms);
        let mut lines = Vec::new();
        for id in output::node_order(doc, Some(&self.order)) {
            let Some(node) = doc.nodes.get(id) else {
                continue;
            };
            let now = Seen {
                status: node.status,
                attempts: node.attempts.len(),
                waiting_for: node.waiting_for.clone(),
            };
            let news = match self.seen.get_mut(id) {
                Some(before) => {
                    let changed = *before != now;
                    *before = now;
                    changed
                }
                None => {
                    let news = node.status != NodeState::Waiting;
                    self.seen.insert(id.to_owned(), now);
                    news
                }
            };
            if news {
                lines.push(format!(
                    "{time} {id} {}{}",
                    node.status,
                    detail(node, now_ms)
                ));
            }
        }
        lines
    }
}

/// What follows a node's state in a plain line: agent, attempt, exit code, duration.
fn detail(node: &NodeDoc, now_ms: i64) -> String {
    if let Some(w) = &node.waiting_for {
        return format!(" (waiting for: {w})");
    }
    if let Some(run) = &node.reused_from {
        return format!(" (kept from run {run})");
    }
    let Some(last) = node.attempts.last() else {
        // A node that ended without an attempt (no agent claimed it) says why.
        return node
            .message
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
    };
    let attempt = if last.number > 1 {
        format!(" (attempt {})", last.number)
    } else {
        String::new()
    };
    match node.status {
        NodeState::Pending | NodeState::Running => format!(" on {}{attempt}", last.agent),
        NodeState::Ready | NodeState::Waiting => {
            format!(" (attempt {} ended {})", last.number, ending(last))
        }
        NodeState::Success | NodeState::Failure | NodeState::Error | NodeState::Canceled => {
            let took = attempt_duration(last, now_ms)
                .map(|ms| format!(" in {}", format_duration(ms)))
                .unwrap_or_default();
            let how = ending(last);
            let why = if node.status == NodeState::Success || how == node.status.as_str() {
                String::new()
            } else {
                format!(" ({how})")
            };
            format!("{why}{took}{attempt}")
        }
        NodeState::Skipped => String::new(),
    }
}

/// How an attempt ended, in a few words: `exit 1`, `lost`, `timeout`, or the agent's message.
fn ending(a: &baton_api::AttemptDoc) -> String {
    match (a.status, a.reason, a.exit_code, &a.message) {
        (_, _, Some(code), _) if a.status != AttemptState::Success => format!("exit {code}"),
        (_, Some(Reason::Exit) | None, None, Some(m)) => m.clone(),
        (_, Some(r), _, _) if r != Reason::Exit => r.as_str().to_owned(),
        (s, _, _, _) => s.as_str().to_owned(),
    }
}

/// The live view: one indicatif line per node.
pub(crate) struct Live {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
    states: HashMap<String, NodeState>,
    order: Vec<String>,
    width: usize,
}

/// How often a running node's spinner and duration are redrawn.
const TICK: Duration = Duration::from_millis(100);

impl Live {
    fn new(order: Vec<String>) -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let width = order.iter().map(|id| id.chars().count()).max().unwrap_or(0);
        Live {
            multi,
            bars: HashMap::new(),
            states: HashMap::new(),
            order,
            width,
        }
    }

    fn update(&mut self, doc: &RunDoc) {
        let now = now_ms();
        for id in output::node_order(doc, Some(&self.order)) {
            let Some(node) = doc.nodes.get(id) else {
                continue;
            };
            let bar = match self.bars.get(id) {
                Some(b) => b.clone(),
                None => {
                    let b = self.multi.add(ProgressBar::new_spinner());
                    self.bars.insert(id.to_owned(), b.clone());
                    self.width = self.width.max(id.chars().count());
                    b
                }
            };
            let previous = self.states.insert(id.to_owned(), node.status);
            let last = node.attempts.last();
            let running = matches!(node.status, NodeState::Running | NodeState::Pending);
            if previous != Some(node.status) {
                bar.set_style(style(node.status));
                if running {
                    let elapsed = last
                        .and_then(|a| attempt_duration(a, now))
                        .map_or(Duration::ZERO, Duration::from_millis);
                    bar.set_elapsed(elapsed);
                    bar.enable_steady_tick(TICK);
                } else {
                    bar.disable_steady_tick();
                }
            }
            let extra = if running {
                last.map(|a| format!("on {}", a.agent)).unwrap_or_default()
            } else {
                detail(node, now).trim_start().to_owned()
            };
            let msg = format!(
                "{id:<w$}  {state:<8}  {extra}",
                w = self.width,
                state = node.status.as_str()
            );
            bar.set_prefix(symbol(node.status));
            bar.set_message(one_line(msg.trim_end()).into_owned());
            if !running {
                bar.tick();
            }
        }
    }

    fn finish(self) {
        for id in &self.order {
            if let Some(bar) = self.bars.get(id) {
                bar.disable_steady_tick();
                bar.finish();
            }
        }
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.finish();
            }
        }
    }
}

/// The line template of a node state: a spinner and a running clock while it runs.
fn template(state: NodeState) -> &'static str {
    match state {
        NodeState::Running | NodeState::Pending => "{spinner:.cyan} {msg}  {dur}",
        NodeState::Success => "{prefix:.green} {msg}",
        NodeState::Failure | NodeState::Error => "{prefix:.red} {msg}",
        NodeState::Canceled | NodeState::Skipped => "{prefix:.yellow} {msg}",
        NodeState::Waiting | NodeState::Ready => "{prefix:.dim} {msg}",
    }
}

/// The line style of a node state.
fn style(state: NodeState) -> ProgressStyle {
    // The templates are constants checked by `every_state_has_a_valid_style`.
    ProgressStyle::with_template(template(state))
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("dur", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let ms = u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX);
            let _ = w.write_str(&format_duration(ms));
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::failed_run;

    #[test]
    fn every_state_has_a_valid_style() {
        for s in NodeState::ALL {
            assert!(ProgressStyle::with_template(template(*s)).is_ok(), "{s}");
        }
    }

    #[test]
    fn plain_lines_show_each_change_once() {
        let order = vec![
            "checkout".to_owned(),
            "test".to_owned(),
            "deploy".to_owned(),
        ];
        let mut plain = Plain::new(order);
        let mut doc = failed_run();
        // As first seen: checkout running, test and deploy waiting.
        let finished = doc.clone();
        if let Some(n) = doc.nodes.get_mut("checkout") {
            n.status = NodeState::Running;
            n.attempts[0].status = AttemptState::Running;
            n.attempts[0].finished_at = None;
            n.attempts[0].exit_code = None;
        }
        for id in ["test", "deploy"] {
            if let Some(n) = doc.nodes.get_mut(id) {
                n.status = NodeState::Waiting;
                n.attempts.clear();
            }
        }
        let t = 1_795_388_400_000;
        let mut lines = plain.changes(&doc, t + 500);
        assert!(
            plain.changes(&doc, t + 600).is_empty(),
            "no change, no line"
        );
        let mut retry = finished.clone();
        if let Some(n) = retry.nodes.get_mut("test") {
            n.status = NodeState::Ready;
            n.attempts.truncate(1);
        }
        if let Some(n) = retry.nodes.get_mut("deploy") {
            n.status = NodeState::Waiting;
        }
        lines.extend(plain.changes(&retry, t + 2_050));
        if let Some(n) = retry.nodes.get_mut("test") {
            n.waiting_for = Some("no online agent has the label gpu=yes".into());
        }
        lines.extend(plain.changes(&retry, t + 2_060));
        assert!(
            plain.changes(&retry, t + 2_070).is_empty(),
            "no change, no line"
        );
        lines.extend(plain.changes(&finished, t + 42_300));
        insta::assert_snapshot!(lines.join("\n"), @r"
        23:00:00.500 checkout running on build-01
        23:00:02.050 checkout success in 1.2s
        23:00:02.050 test ready (attempt 1 ended lost)
        23:00:02.060 test ready (waiting for: no online agent has the label gpu=yes)
        23:00:42.300 test failure (exit 101) in 40.1s (attempt 2)
        23:00:42.300 deploy skipped
        ");
    }
}
