//! Collects the problems of one file and hands them back in file order.

use std::collections::HashSet;

use crate::diag::{Diagnostic, Diagnostics};

/// Most problems reported for one file; past this the rest is summarised in one line.
const MAX_DIAGNOSTICS: usize = 1_000;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) col: usize,
}

/// The problems found so far in one file.
pub(crate) struct Report<'f> {
    file: &'f str,
    diags: Vec<Diagnostic>,
    dropped: usize,
}

impl<'f> Report<'f> {
    pub(crate) fn new(file: &'f str) -> Self {
        Report {
            file,
            diags: Vec::new(),
            dropped: 0,
        }
    }

    /// A problem at a place in the file, in a node when `node` is given.
    pub(crate) fn at(&mut self, pos: Pos, node: Option<&str>, message: impl Into<String>) {
        self.push(Some(pos), node, message.into());
    }

    /// A problem with the file as a whole.
    pub(crate) fn file(&mut self, message: impl Into<String>) {
        self.push(None, None, message.into());
    }

    /// A problem at a line and column the caller computed itself.
    pub(crate) fn at_line(&mut self, line: usize, col: usize, message: impl Into<String>) {
        self.push(Some(Pos { line, col }), None, message.into());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.diags.is_empty()
    }

    /// Problems reported so far, those beyond the cap included.
    pub(crate) fn len(&self) -> usize {
        self.diags.len() + self.dropped
    }

    fn push(&mut self, pos: Option<Pos>, node: Option<&str>, message: String) {
        if self.diags.len() >= MAX_DIAGNOSTICS {
            self.dropped += 1;
            return;
        }
        self.diags.push(Diagnostic {
            file: self.file.to_owned(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.col),
            node: node.map(shorten),
            message,
        });
    }

    /// Every problem in file order (problems of the whole file first), each once.
    pub(crate) fn finish(mut self) -> Diagnostics {
        // Stable: problems found at the same place keep the order they were found in.
        self.diags.sort_by_key(|d| (d.line, d.column));
        // An aliased value is checked at every use; its problems are reported once.
        let mut seen = HashSet::new();
        self.diags
            .retain(|d| seen.insert((d.line, d.column, d.node.clone(), d.message.clone())));
        if self.dropped > 0 {
            let message = format!(
                "{} more problems not shown (at most {MAX_DIAGNOSTICS} are reported)",
                self.dropped
            );
            self.diags.push(Diagnostic {
                file: self.file.to_owned(),
                line: None,
                column: None,
                node: None,
                message,
            });
        }
        Diagnostics(self.diags)
    }
}

/// A node id as shown in a problem: a refused id can be as long as the file, and is
/// repeated in every problem of its node, so only its start is kept.
fn shorten(id: &str) -> String {
    const SHOWN: usize = 64;
    match id.char_indices().nth(SHOWN) {
        None => id.to_owned(),
        Some((cut, _)) => format!("{}…", &id[..cut]),
    }
}
