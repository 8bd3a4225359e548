//! Artifact patterns: relative globs over `/`-separated paths.
//!
//! `*` matches any characters but `/`, `?` one character but `/`, and a `**` segment any
//! number of whole segments (none included). A pattern that names a directory takes in
//! everything under it. Absolute patterns and `..` segments match nothing.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    AnyDepth,
    Glob(Vec<char>),
}

impl Pattern {
    /// Compiles a pattern; `None` for one that could reach outside the work dir.
    pub(crate) fn new(pattern: &str) -> Option<Pattern> {
        if pattern.starts_with('/') || pattern.is_empty() {
            return None;
        }
        let mut segments = Vec::new();
        for part in pattern.split('/') {
            match part {
                "" | "." => {}
                ".." => return None,
                "**" => {
                    // `**/**` means the same as `**`.
                    if segments.last() != Some(&Segment::AnyDepth) {
                        segments.push(Segment::AnyDepth);
                    }
                }
                glob => segments.push(Segment::Glob(glob.chars().collect())),
            }
        }
        if segments.is_empty() {
            return None;
        }
        Some(Pattern { segments })
    }

    /// Whether the whole of `path` matches.
    pub(crate) fn matches(&self, path: &[&str]) -> bool {
        self.states(path)[self.segments.len()]
    }

    /// Whether a path below the directory `dir` could match (so the walk must go in).
    pub(crate) fn may_match_below(&self, dir: &[&str]) -> bool {
        let states = self.states(dir);
        states[..self.segments.len()].iter().any(|&s| s)
    }

    /// Which pattern positions are reachable after consuming `path`, with the positions
    /// just past a `**` reachable as soon as the `**` is.
    fn states(&self, path: &[&str]) -> Vec<bool> {
        let n = self.segments.len();
        let mut cur = vec![false; n + 1];
        cur[0] = true;
        self.close(&mut cur);
        for seg in path {
            let mut next = vec![false; n + 1];
            for (i, reachable) in cur.iter().enumerate().take(n) {
                if !reachable {
                    continue;
                }
                match &self.segments[i] {
                    Segment::AnyDepth => next[i] = true,
                    Segment::Glob(g) => {
                        if glob_match(g, seg) {
                            next[i + 1] = true;
                        }
                    }
                }
            }
            self.close(&mut next);
            cur = next;
        }
        cur
    }

    fn close(&self, states: &mut [bool]) {
        for i in 0..self.segments.len() {
            if states[i] && self.segments[i] == Segment::AnyDepth {
                states[i + 1] = true;
            }
        }
    }
}

/// `*` and `?` within one segment (iterative, with one backtrack point).
fn glob_match(pattern: &[char], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some('?') => {
                p += 1;
                n += 1;
            }
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        Pattern::new(pattern).is_some_and(|p| p.matches(&parts))
    }

    #[test]
    fn star_and_question_mark_stay_within_a_segment() {
        assert!(m("*.txt", "a.txt"));
        assert!(m("*.txt", ".txt"));
        assert!(!m("*.txt", "d/a.txt"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(!m("a?c", "a/c"));
        assert!(m("d/*", "d/x"));
        assert!(!m("d/*", "d/x/y"));
        assert!(m("*a*b*", "xaybz"));
        assert!(!m("*a*b*", "xbya"));
    }

    #[test]
    fn double_star_spans_any_depth_including_none() {
        assert!(m("**", "a"));
        assert!(m("**", "a/b/c"));
        assert!(m("dist/**", "dist/a"));
        assert!(m("dist/**", "dist/a/b"));
        assert!(!m("dist/**", "other/a"));
        assert!(m("**/*.log", "x.log"));
        assert!(m("**/*.log", "a/b/x.log"));
        assert!(!m("**/*.log", "a/b/x.txt"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a/x/y/b"));
        assert!(m("./out.txt", "out.txt"));
    }

    #[test]
    fn patterns_cannot_leave_the_work_dir() {
        assert!(Pattern::new("/etc/passwd").is_none());
        assert!(Pattern::new("../x").is_none());
        assert!(Pattern::new("a/../../x").is_none());
        assert!(Pattern::new("").is_none());
    }

    #[test]
    fn the_walk_only_enters_dirs_that_can_hold_a_match() {
        let p = Pattern::new("dist/*.tar").unwrap();
        assert!(p.may_match_below(&[]));
        assert!(p.may_match_below(&["dist"]));
        assert!(!p.may_match_below(&["src"]));
        assert!(!p.may_match_below(&["dist", "sub"]));
        let p = Pattern::new("**/x").unwrap();
        assert!(p.may_match_below(&["a", "b"]));
    }
}
