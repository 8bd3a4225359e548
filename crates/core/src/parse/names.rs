//! Name rules of the format, and "did you mean" suggestions for misspelled names.

/// Longest workflow name or node id accepted, in characters.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// One kind of name: what it is called in messages and which characters it may use.
pub(crate) struct NameRule {
    /// What the name is, for messages (`node id`).
    pub(crate) what: &'static str,
    /// The rule in words, for messages.
    pub(crate) rule: &'static str,
    /// Longest length allowed, if any.
    pub(crate) max_len: Option<usize>,
    first: fn(char) -> bool,
    rest: fn(char) -> bool,
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn lower_name_char(c: char) -> bool {
    lower_alnum(c) || c == '_' || c == '-'
}

fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn env_first(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn env_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

fn resource_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// `name:` of a workflow.
pub(crate) const WORKFLOW_NAME: NameRule = NameRule {
    what: "workflow name",
    rule: "use lowercase letters, digits, \"_\" and \"-\", starting with a letter or digit",
    max_len: Some(MAX_NAME_LEN),
    first: lower_alnum,
    rest: lower_name_char,
};

/// Keys of `nodes:`.
pub(crate) const NODE_ID: NameRule = NameRule {
    what: "node id",
    rule: "use letters, digits, \"_\" and \"-\"",
    max_len: Some(MAX_NAME_LEN),
    first: id_char,
    rest: id_char,
};

/// `uses:` of a node.
pub(crate) const FUNCTION: NameRule = NameRule {
    what: "function name",
    rule: "use lowercase letters, digits, \"_\" and \"-\", starting with a letter or digit",
    max_len: Some(MAX_NAME_LEN),
    first: lower_alnum,
    rest: lower_name_char,
};

/// Keys of `env:`.
pub(crate) const ENV_NAME: NameRule = NameRule {
    what: "environment variable name",
    rule: "use letters, digits and \"_\", not starting with a digit",
    max_len: None,
    first: env_first,
    rest: env_char,
};

/// Keys of `selector:`.
pub(crate) const LABEL_KEY: NameRule = NameRule {
    what: "label key",
    rule: "use letters, digits, \"_\", \".\", \"/\" and \"-\"",
    max_len: None,
    first: label_char,
    rest: label_char,
};

/// Items of `resources:`.
pub(crate) const RESOURCE: NameRule = NameRule {
    what: "resource name",
    rule: "use letters, digits, \"_\", \".\", \":\" and \"-\"",
    max_len: None,
    first: resource_char,
    rest: resource_char,
};

/// Keys of outputs (`key=value` lines in `$BATON_OUTPUT`); ASCII only, so characters are
/// bytes.
pub(crate) const OUTPUT_KEY: NameRule = NameRule {
    what: "output key",
    rule: "use letters, digits, \"_\" and \"-\", starting with a letter or \"_\"",
    max_len: Some(crate::outputs::MAX_OUTPUT_KEY_BYTES),
    first: env_first,
    rest: id_char,
};

/// Names of secrets (`baton secrets set NAME`, `env: {X: {secret: NAME}}`).
pub(crate) const SECRET_NAME: NameRule = NameRule {
    what: "secret name",
    rule: "use letters, digits and \"_\", not starting with a digit",
    max_len: Some(128),
    first: env_first,
    rest: env_char,
};

fn token_char(c: char) -> bool {
    lower_name_char(c) || c == '.'
}

/// Names of named tokens (`baton tokens create NAME`).
pub(crate) const TOKEN_NAME: NameRule = NameRule {
    what: "token name",
    rule: "use lowercase letters, digits, \"_\", \".\" and \"-\", starting with a letter or digit",
    max_len: Some(MAX_NAME_LEN),
    first: lower_alnum,
    rest: token_char,
};

/// Checks a secret's name; the error says what is wrong with it.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    SECRET_NAME.check(name)
}

/// Checks a named token's name; the error says what is wrong with it.
pub fn check_token_name(name: &str) -> Result<(), String> {
    TOKEN_NAME.check(name)
}

/// Checks a workflow's name; the error says what is wrong with it.
pub fn check_workflow_name(name: &str) -> Result<(), String> {
    WORKFLOW_NAME.check(name)
}

impl NameRule {
    /// Checks `name`, returning the message to report when it breaks the rule.
    pub(crate) fn check(&self, name: &str) -> Result<(), String> {
        let mut chars = name.chars();
        let ok = chars.next().is_some_and(self.first) && chars.all(self.rest);
        if !ok {
            let limit = match self.max_len {
                Some(n) => format!(", at most {n} characters"),
                None => String::new(),
            };
            return Err(format!(
                "bad {} {}: {}{limit}",
                self.what,
                quote(name),
                self.rule
            ));
        }
        if let Some(max) = self.max_len {
            let len = name.chars().count();
            if len > max {
                return Err(format!(
                    "{} {} is {len} characters long; the limit is {max}",
                    self.what,
                    quote(name)
                ));
            }
        }
        Ok(())
    }
}

/// Longest label key or value an agent may offer, in characters.
pub const MAX_LABEL_LEN: usize = 256;

/// Checks one `key=value` label an agent offers, so that a `selector:` can ask for it: the
/// key by the rule of `selector:` keys, the value as text a selector can hold (no control
/// characters), each at most [`MAX_LABEL_LEN`] characters. Returns the message to report.
pub fn check_label(key: &str, value: &str) -> Result<(), String> {
    LABEL_KEY.check(key)?;
    if key.chars().count() > MAX_LABEL_LEN {
        return Err(format!(
            "label key {} is longer than {MAX_LABEL_LEN} characters",
            quote(key)
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "bad label value for {}: control characters are not allowed",
            quote(key)
        ));
    }
    if value.chars().count() > MAX_LABEL_LEN {
        return Err(format!(
            "label value for {} is longer than {MAX_LABEL_LEN} characters",
            quote(key)
        ));
    }
    Ok(())
}

/// Checks a function name by the rule of `uses:`; returns the message to report.
pub fn check_function_name(name: &str) -> Result<(), String> {
    FUNCTION.check(name)
}

/// Quotes text taken from the file for a message, shortening it when it is long.
pub(crate) fn quote(text: &str) -> String {
    const SHOWN: usize = 40;
    match text.char_indices().nth(SHOWN) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
    }
}

/// The candidate closest to `word`, when one is close enough to be a likely typo; of
/// equally close candidates, the first.
pub(crate) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let len = word.chars().count();
    if len == 0 || len > MAX_NAME_LEN {
        return None;
    }
    // One edit per three characters, so `tset` finds `test` but `run` does not find `uses`.
    let limit = len.div_ceil(3).min(3);
    let word: Vec<char> = word.chars().collect();
    let mut best: Option<(usize, &str)> = None;
    let mut buf = Distance::default();
    for cand in candidates {
        let cand_len = cand.chars().count();
        if cand_len.abs_diff(len) > limit || cand_len > MAX_NAME_LEN {
            continue;
        }
        let bound = best.map_or(limit, |(d, _)| d.saturating_sub(1));
        if let Some(d) = buf.within(&word, cand, bound) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// Reused buffers for the optimal-string-alignment distance (edits plus transpositions).
#[derive(Default)]
struct Distance {
    cand: Vec<char>,
    rows: [Vec<usize>; 3],
}

impl Distance {
    /// The distance between `a` and `b` when it is at most `bound`.
    fn within(&mut self, a: &[char], b: &str, bound: usize) -> Option<usize> {
        self.cand.clear();
        self.cand.extend(b.chars());
        let b = &self.cand;
        let [prev2, prev, cur] = &mut self.rows;
        prev2.clear();
        prev.clear();
        prev.extend(0..=b.len());
        for i in 1..=a.len() {
            cur.clear();
            cur.push(i);
            let mut row_min = i;
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    d = d.min(prev2[j - 2] + 1);
                }
                cur.push(d);
                row_min = row_min.min(d);
            }
            if row_min > bound {
                return None;
            }
            std::mem::swap(prev2, prev);
            std::mem::swap(prev, cur);
        }
        prev.last().copied().filter(|&d| d <= bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["needs", "run", "uses", "with", "timeout"];
        assert_eq!(suggest("tset", ["test", "build"]), Some("test"));
        assert_eq!(suggest("need", keys), Some("needs"));
        assert_eq!(suggest("runs", keys), Some("run"));
        assert_eq!(suggest("timeuot", keys), Some("timeout"));
        assert_eq!(suggest("deploy", keys), None);
        assert_eq!(suggest("", keys), None);
    }

    #[test]
    fn prefers_the_closest_candidate() {
        assert_eq!(suggest("buidl", ["build-all", "build"]), Some("build"));
    }

    #[test]
    fn rules_accept_and_refuse() {
        assert!(WORKFLOW_NAME.check("release-2_x").is_ok());
        assert!(WORKFLOW_NAME.check("Release").is_err());
        assert!(WORKFLOW_NAME.check("-release").is_err());
        assert!(WORKFLOW_NAME.check("").is_err());
        assert!(NODE_ID.check("Build_1-x").is_ok());
        assert!(NODE_ID.check("a b").is_err());
        assert!(NODE_ID.check(&"a".repeat(65)).is_err());
        assert!(NODE_ID.check(&"a".repeat(64)).is_ok());
        assert!(ENV_NAME.check("_PATH2").is_ok());
        assert!(ENV_NAME.check("2PATH").is_err());
        assert!(LABEL_KEY.check("kubernetes.io/os").is_ok());
        assert!(RESOURCE.check("db:prod.1").is_ok());
        assert!(RESOURCE.check("db prod").is_err());
    }

    #[test]
    fn labels_are_checked_as_selectors_read_them() {
        assert!(check_label("kubernetes.io/os", "linux 6.1").is_ok());
        assert!(check_label("gpu", "").is_ok());
        assert!(check_label("", "x").unwrap_err().contains("label key"));
        assert!(check_label("a\nb", "x").unwrap_err().contains("label key"));
        assert!(
            check_label("os", "li\nnux")
                .unwrap_err()
                .contains("control")
        );
        assert!(
            check_label("os", "\u{1b}[31m")
                .unwrap_err()
                .contains("control")
        );
        let long = "x".repeat(MAX_LABEL_LEN + 1);
        assert!(check_label(&long, "v").unwrap_err().contains("longer"));
        assert!(check_label("k", &long).unwrap_err().contains("longer"));
        assert!(check_label("k", &"x".repeat(MAX_LABEL_LEN)).is_ok());
    }

    #[test]
    fn function_names_follow_the_rule_of_uses() {
        assert!(check_function_name("my-fn_2").is_ok());
        assert!(check_function_name("").is_err());
        assert!(check_function_name("Shell").is_err());
        assert!(check_function_name("a\0").is_err());
        assert!(check_function_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn quote_shortens_long_text() {
        assert_eq!(quote("ab"), "\"ab\"");
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("{:?}…", "x".repeat(40)));
    }
}
