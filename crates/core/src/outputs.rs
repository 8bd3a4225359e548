//! Outputs: the `key=value` pairs a node's work hands to the nodes that need it.
//!
//! The work writes them to the file named by `$BATON_OUTPUT`; the agent reads that file
//! with [`parse_outputs`] once the work exited, and the server checks what an agent reports
//! with [`check_outputs`], since it never trusts one. Both apply the same limits, so an
//! agent that parsed a file never has its report refused.
//!
//! The file format (documented in `docs/workflow-format.md`):
//!
//! - `key=value`: the value is the rest of the line, `=` and all;
//! - `key<<DELIMITER`, then lines up to one that is exactly `DELIMITER`: a value of several
//!   lines (the newline before the delimiter line is not part of it);
//! - blank lines are ignored; a line may end `\r\n`; a key given again replaces the earlier
//!   value;
//! - keys: an ASCII letter or `_`, then letters, digits, `_` and `-`, at most
//!   [`MAX_OUTPUT_KEY_BYTES`]; values: UTF-8 without NUL;
//! - at most [`MAX_OUTPUT_KEYS`] keys and [`MAX_OUTPUT_BYTES`] in all.
//!
//! Downstream nodes see each value as `BATON_<NODE>_<KEY>` ([`input_env_name`]).

use std::collections::BTreeMap;
use std::fmt;

/// The outputs of one attempt, by key.
pub type Outputs = BTreeMap<String, String>;

/// Most bytes of outputs an attempt may write: the size of the `$BATON_OUTPUT` file, and of
/// every key and value together in a report.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// Most distinct keys an attempt may write.
pub const MAX_OUTPUT_KEYS: usize = 100;

/// Longest output key, in bytes.
pub const MAX_OUTPUT_KEY_BYTES: usize = 128;

/// Why outputs were refused, and where in the file when they came from one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputError {
    /// The 1-based line of the output file, when the error is about one.
    pub line: Option<usize>,
    /// What is wrong.
    pub problem: OutputProblem,
}

/// What is wrong with outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputProblem {
    /// A key breaks the key rule.
    BadKey(String),
    /// A line is neither `key=value` nor `key<<DELIMITER`.
    NoSeparator,
    /// `key<<` with nothing after it.
    EmptyDelimiter(String),
    /// A multi-line value whose delimiter line never came.
    Unterminated {
        /// The value's key.
        key: String,
        /// The missing delimiter.
        delimiter: String,
    },
    /// A value (or a line) holds a NUL byte, which no environment variable can carry.
    Nul(String),
    /// The file is not UTF-8.
    NotUtf8,
    /// More than [`MAX_OUTPUT_KEYS`] keys; names the first one past the limit.
    TooManyKeys(String),
    /// More than [`MAX_OUTPUT_BYTES`] in all.
    TooLarge(usize),
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        match &self.problem {
            OutputProblem::BadKey(key) => write!(
                f,
                "{key:?} is not an output key: use ASCII letters, digits, \"_\" and \"-\", \
                 starting with a letter or \"_\", at most {MAX_OUTPUT_KEY_BYTES} bytes"
            ),
            OutputProblem::NoSeparator => f.write_str("expected `key=value` or `key<<DELIMITER`"),
            OutputProblem::EmptyDelimiter(key) => {
                write!(f, "{key:?}: `<<` must be followed by a delimiter")
            }
            OutputProblem::Unterminated { key, delimiter } => write!(
                f,
                "the value of {key:?} never ends: no line {delimiter:?} follows"
            ),
            OutputProblem::Nul(key) => write!(f, "the value of {key:?} holds a NUL byte"),
            OutputProblem::NotUtf8 => f.write_str("not valid UTF-8"),
            OutputProblem::TooManyKeys(key) => write!(
                f,
                "{key:?} is one key too many: at most {MAX_OUTPUT_KEYS} outputs"
            ),
            OutputProblem::TooLarge(size) => write!(
                f,
                "outputs of {size} bytes are too large: at most {MAX_OUTPUT_BYTES} bytes"
            ),
        }
    }
}

impl std::error::Error for OutputError {}

fn at(line: usize, problem: OutputProblem) -> OutputError {
    OutputError {
        line: Some(line),
        problem,
    }
}

/// Whether `key` follows the key rule.
pub fn is_output_key(key: &str) -> bool {
    crate::parse::names::OUTPUT_KEY.check(key).is_ok()
}

/// Parses the content of an output file, within the limits.
pub fn parse_outputs(bytes: &[u8]) -> Result<Outputs, OutputError> {
    if bytes.len() > MAX_OUTPUT_BYTES {
        return Err(OutputError {
            line: None,
            problem: OutputProblem::TooLarge(bytes.len()),
        });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(at(line, OutputProblem::NotUtf8));
        }
    };
    let mut out = Outputs::new();
    let mut lines = text.split('\n').map(strip_cr).enumerate();
    while let Some((i, line)) = lines.next() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<").filter(|&h| eq.is_none_or(|e| h < e));
        let (key, value) = if let Some(h) = heredoc {
            let (key, delimiter) = (&line[..h], &line[h + 2..]);
            check_key(key, number)?;
            if delimiter.is_empty() {
                return Err(at(number, OutputProblem::EmptyDelimiter(key.to_owned())));
            }
            let mut value: Option<String> = None;
            loop {
                let Some((_, next)) = lines.next() else {
                    return Err(at(
                        number,
                        OutputProblem::Unterminated {
                            key: key.to_owned(),
                            delimiter: delimiter.to_owned(),
                        },
                    ));
                };
                if next == delimiter {
                    break;
                }
                match &mut value {
                    Some(v) => {
                        v.push('\n');
                        v.push_str(next);
                    }
                    None => value = Some(next.to_owned()),
                }
            }
            (key, value.unwrap_or_default())
        } else if let Some(e) = eq {
            let key = &line[..e];
            check_key(key, number)?;
            (key, line[e + 1..].to_owned())
        } else {
            return Err(at(number, OutputProblem::NoSeparator));
        };
        if value.contains('\0') {
            return Err(at(number, OutputProblem::Nul(key.to_owned())));
        }
        if out.len() >= MAX_OUTPUT_KEYS && !out.contains_key(key) {
            return Err(at(number, OutputProblem::TooManyKeys(key.to_owned())));
        }
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

fn strip_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

fn check_key(key: &str, line: usize) -> Result<(), OutputError> {
    if is_output_key(key) {
        Ok(())
    } else {
        Err(at(line, OutputProblem::BadKey(key.to_owned())))
    }
}

/// Checks outputs that did not come from a file (an agent's report, a Rust function's)
/// against the same rules and limits.
pub fn check_outputs(outputs: &Outputs) -> Result<(), OutputError> {
    let fail = |problem| {
        Err(OutputError {
            line: None,
            problem,
        })
    };
    if let Some((key, _)) = outputs.iter().nth(MAX_OUTPUT_KEYS) {
        return fail(OutputProblem::TooManyKeys(key.clone()));
    }
    let mut size = 0usize;
    for (key, value) in outputs {
        if !is_output_key(key) {
            return fail(OutputProblem::BadKey(key.clone()));
        }
        if value.contains('\0') {
            return fail(OutputProblem::Nul(key.clone()));
        }
        size = size.saturating_add(key.len() + value.len());
    }
    if size > MAX_OUTPUT_BYTES {
        return fail(OutputProblem::TooLarge(size));
    }
    Ok(())
}

/// The environment variable that carries output `key` of upstream node `node`:
/// `BATON_<NODE>_<KEY>`, upper case, with every character other than `A-Z`, `0-9` and
/// `_` turned into `_`.
///
/// Distinct pairs can give one name (`a-b`/`c` and `a_b`/`c`, or `a`/`b_c` and `a_b`/`c`);
/// `$BATON_INPUTS` always has every value under its exact names.
pub fn input_env_name(node: &str, key: &str) -> String {
    let mut name = String::with_capacity(7 + node.len() + key.len());
    name.push_str("BATON_");
    push_mangled(&mut name, node);
    name.push('_');
    push_mangled(&mut name, key);
    name
}

fn push_mangled(name: &mut String, part: &str) {
    name.extend(part.chars().map(|c| {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Outputs {
        parse_outputs(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn refused(text: &str) -> String {
        match parse_outputs(text.as_bytes()) {
            Ok(o) => panic!("{text:?} was accepted as {o:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> Outputs {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn key_value_lines_keep_the_rest_of_the_line() {
        let out = parsed("a=1\n\nurl=http://x/?q=1&r=2\nempty=\n  \nquote=\"; rm -rf / #\n");
        assert_eq!(
            out,
            map(&[
                ("a", "1"),
                ("url", "http://x/?q=1&r=2"),
                ("empty", ""),
                ("quote", "\"; rm -rf / #")
            ])
        );
    }

    #[test]
    fn a_later_duplicate_wins_and_crlf_is_one_line_end() {
        assert_eq!(parsed("k=1\r\nk=2\r\n"), map(&[("k", "2")]));
    }

    #[test]
    fn heredoc_values_span_lines() {
        let text = "notes<<EOF\nline one\n\nk=not a key\nEOF\nafter=1\nnone<<END\nEND\n";
        assert_eq!(
            parsed(text),
            map(&[
                ("notes", "line one\n\nk=not a key"),
                ("after", "1"),
                ("none", "")
            ])
        );
        // `=` before `<<` makes a plain value.
        assert_eq!(parsed("k=a<<b\n"), map(&[("k", "a<<b")]));
    }

    #[test]
    fn an_unterminated_heredoc_names_its_line_and_delimiter() {
        let e = refused("a=1\nbody<<EOT\nnever ends\n");
        assert_eq!(
            e,
            "line 2: the value of \"body\" never ends: no line \"EOT\" follows"
        );
        assert!(refused("k<<\nx\n").contains("line 1"), "empty delimiter");
    }

    #[test]
    fn bad_keys_and_lines_are_refused_with_their_line() {
        for (text, line) in [
            ("ok=1\n1abc=2\n", 2),
            ("a b=1\n", 1),
            ("=value\n", 1),
            ("x\n", 1),
            ("ok=1\n\nkey with no separator\n", 3),
            ("clé=1\n", 1),
        ] {
            let e = refused(text);
            assert!(e.starts_with(&format!("line {line}: ")), "{text:?}: {e}");
        }
        let long = format!("{}=1", "k".repeat(MAX_OUTPUT_KEY_BYTES + 1));
        assert!(refused(&long).contains("at most 128 bytes"));
        assert!(is_output_key(&"k".repeat(MAX_OUTPUT_KEY_BYTES)));
        assert!(is_output_key("_a-b_9"));
    }

    #[test]
    fn nul_and_invalid_utf8_are_refused() {
        assert_eq!(
            refused("a=1\nb=x\0y\n"),
            "line 2: the value of \"b\" holds a NUL byte"
        );
        let e = parse_outputs(b"a=1\nb=\xff\n").expect_err("not UTF-8");
        assert_eq!(e.to_string(), "line 2: not valid UTF-8");
    }

    #[test]
    fn limits_on_keys_and_size() {
        let text: String = (0..MAX_OUTPUT_KEYS).map(|i| format!("k{i}=v\n")).collect();
        assert_eq!(parsed(&text).len(), MAX_OUTPUT_KEYS);
        // Replacing a key is not a new one.
        assert_eq!(parsed(&format!("{text}k0=w\n")).len(), MAX_OUTPUT_KEYS);
        let e = refused(&format!("{text}extra=1\n"));
        assert_eq!(
            e,
            "line 101: \"extra\" is one key too many: at most 100 outputs"
        );

        let big = format!("big={}", "x".repeat(MAX_OUTPUT_BYTES));
        assert_eq!(
            refused(&big),
            format!(
                "outputs of {} bytes are too large: at most 65536 bytes",
                MAX_OUTPUT_BYTES + 4
            )
        );
        let fits = format!("big={}", "x".repeat(MAX_OUTPUT_BYTES - 4));
        assert_eq!(parsed(&fits)["big"].len(), MAX_OUTPUT_BYTES - 4);
    }

    #[test]
    fn check_applies_the_same_rules_to_a_map() {
        assert_eq!(check_outputs(&map(&[("a", "1"), ("b-c", "x\ny")])), Ok(()));
        let e = check_outputs(&map(&[("bad key", "1")])).expect_err("bad key");
        assert!(
            e.to_string()
                .starts_with("\"bad key\" is not an output key")
        );
        let e = check_outputs(&map(&[("k", "a\0b")])).expect_err("nul");
        assert_eq!(e.to_string(), "the value of \"k\" holds a NUL byte");
        let many: Outputs = (0..=MAX_OUTPUT_KEYS)
            .map(|i| (format!("k{i:03}"), String::new()))
            .collect();
        let e = check_outputs(&many).expect_err("too many");
        assert_eq!(e.problem, OutputProblem::TooManyKeys("k100".into()));
        let big = map(&[("a", &"x".repeat(MAX_OUTPUT_BYTES))]);
        assert_eq!(
            check_outputs(&big).expect_err("too big").problem,
            OutputProblem::TooLarge(MAX_OUTPUT_BYTES + 1)
        );
    }

    #[test]
    fn env_names_are_upper_case_with_underscores() {
        assert_eq!(input_env_name("build", "version"), "BATON_BUILD_VERSION");
        assert_eq!(
            input_env_name("web-app", "out-dir"),
            "BATON_WEB_APP_OUT_DIR"
        );
        assert_eq!(input_env_name("a_b", "c"), input_env_name("a", "b_c"));
        assert_eq!(input_env_name("n1", "é"), "BATON_N1__");
    }
}
