//! Node output: the tail shown after a failed run, and line prefixes for `runs logs`.

use std::collections::{HashMap, VecDeque};
use std::io::Write;

use baton_api::{LogChunk, LogQuery};

use crate::client::Client;
use crate::exit::CliError;

/// The last `n` lines of a stream of chunks, in bounded memory.
pub(crate) struct LineTail {
    n: usize,
    lines: VecDeque<String>,
    partial: String,
}

impl LineTail {
    pub(crate) fn new(n: usize) -> LineTail {
        LineTail {
            n,
            lines: VecDeque::with_capacity(n + 1),
            partial: String::new(),
        }
    }

    pub(crate) fn push(&mut self, data: &str) {
        let mut rest = data;
        while let Some(i) = rest.find('\n') {
            self.partial.push_str(&rest[..i]);
            let line = std::mem::take(&mut self.partial);
            self.lines
                .push_back(line.strip_suffix('\r').map(str::to_owned).unwrap_or(line));
            if self.lines.len() > self.n {
                self.lines.pop_front();
            }
            rest = &rest[i + 1..];
        }
        self.partial.push_str(rest);
    }

    /// The kept lines, with an unterminated last line counted as a line.
    pub(crate) fn into_lines(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            self.lines.push_back(std::mem::take(&mut self.partial));
            if self.lines.len() > self.n {
                self.lines.pop_front();
            }
        }
        self.lines.into()
    }
}

/// The last `n` lines of one attempt of a node, reading every page of its log.
pub(crate) async fn fetch_tail(
    client: &Client,
    run: &str,
    node: &str,
    attempt: u32,
    n: usize,
) -> Result<Vec<String>, CliError> {
    let mut tail = LineTail::new(n);
    let mut query = LogQuery {
        node: Some(node.to_owned()),
        after: None,
        limit: None,
    };
    loop {
        let page = client.logs(run, &query).await?;
        if page.chunks.is_empty() {
            break;
        }
        for chunk in page.chunks.iter().filter(|c| c.attempt == attempt) {
            tail.push(&chunk.data);
        }
        if query.after == Some(page.next) {
            break;
        }
        query.after = Some(page.next);
    }
    Ok(tail.into_lines())
}

/// Writes chunks of many nodes as whole lines prefixed with `node | ` (`node#2 | ` for later
/// attempts), or as they came when there is no prefix.
pub(crate) struct LogWriter {
    prefix: bool,
    partial: HashMap<(String, u32), String>,
}

impl LogWriter {
    pub(crate) fn new(prefix: bool) -> LogWriter {
        LogWriter {
            prefix,
            partial: HashMap::new(),
        }
    }

    pub(crate) fn write(&mut self, out: &mut impl Write, chunk: &LogChunk) -> std::io::Result<()> {
        if !self.prefix {
            return out.write_all(chunk.data.as_bytes());
        }
        let label = label(&chunk.node, chunk.attempt);
        let buf = self
            .partial
            .entry((chunk.node.clone(), chunk.attempt))
            .or_default();
        let mut rest = chunk.data.as_str();
        while let Some(i) = rest.find('\n') {
            writeln!(out, "{label} | {buf}{}", &rest[..i])?;
            buf.clear();
            rest = &rest[i + 1..];
        }
        buf.push_str(rest);
        Ok(())
    }

    /// Ends every unterminated line.
    pub(crate) fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let mut left: Vec<_> = self
            .partial
            .drain()
            .filter(|(_, buf)| !buf.is_empty())
            .collect();
        left.sort();
        for ((node, attempt), buf) in left {
            writeln!(out, "{} | {buf}", label(&node, attempt))?;
        }
        Ok(())
    }
}

/// The prefix of a log line: the node id from the server, escaped (the body is not).
fn label(node: &str, attempt: u32) -> String {
    let node = crate::escape::one_line(node);
    if attempt > 1 {
        format!("{node}#{attempt}")
    } else {
        node.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_api::Stream;

    #[test]
    fn tail_keeps_the_last_lines_across_chunks() {
        let mut tail = LineTail::new(2);
        tail.push("one\ntw");
        tail.push("o\r\nthree\nfour");
        assert_eq!(tail.into_lines(), ["three", "four"]);
        let mut short = LineTail::new(20);
        short.push("only\n");
        assert_eq!(short.into_lines(), ["only"]);
        assert!(LineTail::new(3).into_lines().is_empty());
    }

    fn chunk(node: &str, attempt: u32, data: &str) -> LogChunk {
        LogChunk {
            id: 0,
            node: node.into(),
            attempt,
            stream: Stream::Stdout,
            data: data.into(),
        }
    }

    #[test]
    fn prefixed_output_joins_lines_split_across_chunks() {
        let mut w = LogWriter::new(true);
        let mut out = Vec::new();
        for c in [
            chunk("build", 1, "compil"),
            chunk("test", 1, "ok 1\nok "),
            chunk("build", 1, "ing\ndone"),
            chunk("test", 2, "retry\n"),
            chunk("test", 1, "2\n"),
        ] {
            w.write(&mut out, &c).unwrap();
        }
        w.finish(&mut out).unwrap();
        insta::assert_snapshot!(String::from_utf8(out).unwrap(), @r"
        test | ok 1
        build | compiling
        test#2 | retry
        test | ok 2
        build | done
        ");
    }

    #[test]
    fn unprefixed_output_is_written_as_it_came() {
        let mut w = LogWriter::new(false);
        let mut out = Vec::new();
        w.write(&mut out, &chunk("a", 1, "x")).unwrap();
        w.write(&mut out, &chunk("a", 1, "y\n")).unwrap();
        w.finish(&mut out).unwrap();
        assert_eq!(out, b"xy\n");
    }
}
