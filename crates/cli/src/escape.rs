//! Text from the server printed on one line, made harmless for a terminal.
//!
//! Names, labels and messages come from agents and workflow files, which Baton treats as
//! untrusted: a raw ESC, CR or BEL could recolour the screen, overwrite a line already
//! printed (hiding a status), or ring the bell. Every table cell and one-line field goes
//! through [`one_line`]; only log bodies, which are the step's own bytes, are printed as
//! they are.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal raw: control characters (C0, DEL, C1), the line
/// and paragraph separators, and the bidirectional overrides and isolates that reorder
/// what is shown.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Appends `c` to `out`, escaped when it must be: `\n`, `\t`, `\r`, else `\u{1b}` style.
pub(crate) fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// `text` with every character a terminal would act on escaped, so it prints as one
/// line of inert text; borrowed when there is nothing to escape.
pub fn one_line(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_escaped() {
        let cases = [
            ("plain name-1.x", "plain name-1.x"),
            ("", ""),
            ("héllo ✓ 日本", "héllo ✓ 日本"),
            ("a\nb", "a\\nb"),
            ("a\tb", "a\\tb"),
            ("ok\rFAKE", "ok\\rFAKE"),
            ("\u{1b}[31mred\u{1b}[0m", "\\u{1b}[31mred\\u{1b}[0m"),
            ("bell\u{7}", "bell\\u{7}"),
            ("nul\u{0}", "nul\\u{0}"),
            ("del\u{7f}", "del\\u{7f}"),
            ("csi\u{9b}2J", "csi\\u{9b}2J"),
            ("evil\u{202e}txt.exe", "evil\\u{202e}txt.exe"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
        ];
        for (raw, shown) in cases {
            assert_eq!(one_line(raw), shown, "{raw:?}");
            assert!(!one_line(raw).chars().any(needs_escape), "{raw:?}");
        }
    }

    #[test]
    fn clean_text_is_not_copied() {
        assert!(matches!(one_line("build-1"), Cow::Borrowed(_)));
    }
}
