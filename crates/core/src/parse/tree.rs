//! A spanned YAML value tree built from parser events, with limits enforced while building.
//!
//! The tree keeps a position for every value and every mapping key, keeps duplicate keys
//! (the model decides what a duplicate means in its context), and shares aliased values
//! instead of copying them.
//!
//! Depth is bounded by [`MAX_DEPTH`], counting the depth an alias brings with it, so every
//! walk over the finished tree (conversion, `Drop`) recurses at most that many levels. The
//! builder itself never recurses: open collections live on an explicit stack.

use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;

use granit_parser::{ErrorKind, Event, Parser, ScalarStyle, ScanError, Span, Tag};

use super::report::{Pos, Report};

/// Deepest nesting of collections accepted, the top-level mapping being level 1.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most values that alias expansion may add to a file (a guard against alias bombs).
pub(crate) const ALIAS_BUDGET: usize = 100_000;

/// One value of the file and where it starts.
#[derive(Debug)]
pub(crate) struct Node<'a> {
    pub(crate) pos: Pos,
    pub(crate) value: Value<'a>,
}

/// The three shapes a YAML value can have.
#[derive(Debug)]
pub(crate) enum Value<'a> {
    Scalar(Scalar<'a>),
    Seq(Vec<Rc<Node<'a>>>),
    Map(Vec<Entry<'a>>),
}

/// A scalar's text and whether YAML's core schema may give it a type.
#[derive(Debug)]
pub(crate) struct Scalar<'a> {
    pub(crate) text: Cow<'a, str>,
    /// Plain (unquoted, untagged as `!!str`): `8080` is a number, `~` is null.
    pub(crate) plain: bool,
}

/// One `key: value` pair of a mapping, duplicates included.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    pub(crate) key: Cow<'a, str>,
    pub(crate) key_pos: Pos,
    pub(crate) value: Rc<Node<'a>>,
}

/// Why building stopped.
pub(crate) enum Stop {
    /// The stream held no document at all.
    Empty,
    /// A refusal, already written to the report.
    Refused,
}

/// A collection still being read.
struct Frame<'a> {
    pos: Pos,
    anchor: usize,
    /// Values in this subtree, counting alias expansions.
    size: usize,
    /// Collection levels in this subtree, itself included.
    height: usize,
    kind: FrameKind<'a>,
}

enum FrameKind<'a> {
    Seq(Vec<Rc<Node<'a>>>),
    Map {
        entries: Vec<Entry<'a>>,
        /// The key read and waiting for its value; `Err(())` for a key that was refused.
        key: Option<Result<(Cow<'a, str>, Pos), ()>>,
    },
}

/// A finished value with the measures its parent needs.
struct Built<'a> {
    node: Rc<Node<'a>>,
    size: usize,
    height: usize,
}

/// Reads the first document of `text` into a tree.
///
/// Problems that leave the tree usable (a collection as a mapping key, an unsupported tag)
/// go to `report` and building goes on; syntax errors, a second document and the limits stop
/// it, and are reported too. Duplicate keys are kept for the model to judge.
pub(crate) fn build<'a>(text: &'a str, report: &mut Report) -> Result<Rc<Node<'a>>, Stop> {
    // The scanner queues a flow collection's tokens until it knows whether they form a key,
    // so deep flow nesting must be stopped by the scanner itself, at our depth.
    let options = granit_parser::options! {
        emit_comments: false,
        flow_nesting_limit: MAX_DEPTH,
        block_nesting_limit: MAX_DEPTH,
    };
    let mut parser = Parser::new_from_str_with_options(text, options);
    let mut builder = Builder::default();
    let mut root = None;
    let mut documents = 0usize;
    loop {
        let (event, span) = match parser.next_event() {
            None => break,
            Some(Ok(item)) => item,
            Some(Err(err)) if *err.kind() == ErrorKind::RecursionLimitExceeded => {
                report.at(scan_pos(&err), None, depth_message());
                return Err(Stop::Refused);
            }
            Some(Err(err)) => {
                report.at(scan_pos(&err), None, syntax_message(&err));
                return Err(Stop::Refused);
            }
        };
        match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    report.at(
                        Pos::of(&span),
                        None,
                        "several yaml documents in one file; put one workflow in each file",
                    );
                    // Only the first document is checked further.
                    break;
                }
            }
            Event::StreamEnd => break,
            Event::Scalar(text, style, anchor, tag) => {
                let plain = style == ScalarStyle::Plain;
                let plain = match tag.as_deref() {
                    None => plain,
                    Some(t) => match t.core_suffix() {
                        Some("str") => false,
                        Some("null" | "bool" | "int" | "float") => plain,
                        _ => {
                            report.at(Pos::of(&span), None, unsupported_tag(t));
                            plain
                        }
                    },
                };
                let node = Node {
                    pos: Pos::of(&span),
                    value: Value::Scalar(Scalar { text, plain }),
                };
                let built = Built {
                    node: Rc::new(node),
                    size: 1,
                    height: 0,
                };
                if let Some(done) = builder.add(built, anchor, report) {
                    root = Some(done);
                }
            }
            Event::SequenceStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "seq", &span, report);
                builder.open(&span, anchor, FrameKind::Seq(Vec::new()), report)?;
            }
            Event::MappingStart(_, anchor, tag) => {
                check_collection_tag(tag.as_deref(), "map", &span, report);
                let kind = FrameKind::Map {
                    entries: Vec::new(),
                    key: None,
                };
                builder.open(&span, anchor, kind, report)?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(done) = builder.close(report) {
                    root = Some(done);
                }
            }
            Event::Alias(id) => {
                let built = builder.alias(id, &span, report)?;
                if let Some(done) = builder.add(built, 0, report) {
                    root = Some(done);
                }
            }
            // Stream and document framing, comments and anchor metadata carry no data.
            _ => {}
        }
    }
    root.ok_or(Stop::Empty)
}

#[derive(Default)]
struct Builder<'a> {
    stack: Vec<Frame<'a>>,
    /// Finished anchored values by anchor id, with their size and height.
    anchors: HashMap<usize, (Rc<Node<'a>>, usize, usize)>,
    /// Values added by alias expansion so far.
    expanded: usize,
}

impl<'a> Builder<'a> {
    fn open(
        &mut self,
        span: &Span,
        anchor: usize,
        kind: FrameKind<'a>,
        report: &mut Report,
    ) -> Result<(), Stop> {
        if self.stack.len() >= MAX_DEPTH {
            report.at(Pos::of(span), None, depth_message());
            return Err(Stop::Refused);
        }
        self.stack.push(Frame {
            pos: Pos::of(span),
            anchor,
            size: 1,
            height: 1,
            kind,
        });
        Ok(())
    }

    /// Ends the innermost collection; returns the root when it was the outermost.
    fn close(&mut self, report: &mut Report) -> Option<Rc<Node<'a>>> {
        let frame = self.stack.pop()?;
        let value = match frame.kind {
            FrameKind::Seq(items) => Value::Seq(items),
            FrameKind::Map { entries, .. } => Value::Map(entries),
        };
        let built = Built {
            node: Rc::new(Node {
                pos: frame.pos,
                value,
            }),
            size: frame.size,
            height: frame.height,
        };
        self.add(built, frame.anchor, report)
    }

    fn alias(&mut self, id: usize, span: &Span, report: &mut Report) -> Result<Built<'a>, Stop> {
        let Some((node, size, height)) = self.anchors.get(&id) else {
            // The parser resolved the name, so the anchor is on a collection still open.
            report.at(
                Pos::of(span),
                None,
                "alias refers to a collection that contains it",
            );
            return Err(Stop::Refused);
        };
        if self.stack.len() + height > MAX_DEPTH {
            report.at(Pos::of(span), None, depth_message());
            return Err(Stop::Refused);
        }
        self.expanded = self.expanded.saturating_add(*size);
        if self.expanded > ALIAS_BUDGET {
            report.at(
                Pos::of(span),
                None,
                format!("aliases expand to more than {ALIAS_BUDGET} values; refusing the file"),
            );
            return Err(Stop::Refused);
        }
        Ok(Built {
            node: Rc::clone(node),
            size: *size,
            height: *height,
        })
    }

    /// Puts a finished value into the open collection; returns it when it is the root.
    fn add(
        &mut self,
        built: Built<'a>,
        anchor: usize,
        report: &mut Report,
    ) -> Option<Rc<Node<'a>>> {
        if anchor != 0 {
            self.anchors
                .insert(anchor, (Rc::clone(&built.node), built.size, built.height));
        }
        let Some(parent) = self.stack.last_mut() else {
            return Some(built.node);
        };
        parent.size = parent.size.saturating_add(built.size);
        parent.height = parent.height.max(built.height + 1);
        match &mut parent.kind {
            FrameKind::Seq(items) => items.push(built.node),
            FrameKind::Map { entries, key } => match key.take() {
                None => {
                    *key = Some(match &built.node.value {
                        Value::Scalar(s) => Ok((s.text.clone(), built.node.pos)),
                        _ => {
                            report.at(
                                built.node.pos,
                                None,
                                "mapping keys must be strings, found a collection",
                            );
                            Err(())
                        }
                    });
                }
                Some(Ok((k, key_pos))) => entries.push(Entry {
                    key: k,
                    key_pos,
                    value: built.node,
                }),
                Some(Err(())) => {}
            },
        }
        None
    }
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str, span: &Span, report: &mut Report) {
    if let Some(t) = tag
        && t.core_suffix() != Some(expected)
    {
        report.at(Pos::of(span), None, unsupported_tag(t));
    }
}

fn unsupported_tag(tag: &Tag) -> String {
    format!("unsupported yaml tag {:?}", tag.original())
}

fn depth_message() -> String {
    format!("values nested deeper than {MAX_DEPTH} levels")
}

fn scan_pos(err: &ScanError) -> Pos {
    let m = err.marker();
    Pos {
        line: m.line().max(1),
        col: m.col() + 1,
    }
}

fn syntax_message(err: &ScanError) -> String {
    let info = err.info();
    if info.is_empty() {
        "yaml syntax error".to_owned()
    } else {
        format!("yaml syntax error: {info}")
    }
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line().max(1),
            col: span.start.col() + 1,
        }
    }
}
