//! `baton audit`: the audit trail, newest first.

use std::fmt::Write as _;

use baton_api::{AuditEntry, AuditPage, AuditQuery};

use crate::args::AuditArgs;
use crate::client::Client;
use crate::exit::{CliError, Exit};
use crate::live::say;
use crate::output::{Table, write_stdout};

/// The most characters of an entry's detail a table shows.
const DETAIL_CHARS: usize = 120;

/// Runs `baton audit`.
pub async fn audit(args: &AuditArgs, client: &Client) -> Result<Exit, CliError> {
    let query = AuditQuery {
        limit: args.limit,
        before: args.before,
        actor: args.actor.clone(),
        action: args.action.map(|a| a.as_str().to_owned()),
    };
    let page = client.audit(&query).await?;
    if args.json {
        write_stdout(&audit_json(&page)?)?;
        return Ok(Exit::Success);
    }
    if page.entries.is_empty() {
        say("no audit entries");
    } else {
        write_stdout(&audit_table(&page.entries))?;
    }
    if let Some(before) = page.next_before {
        say(&format!("older entries: baton audit --before {before}"));
    }
    Ok(Exit::Success)
}

/// The page as pretty JSON (the API's field names), with nothing a terminal would act on.
///
/// JSON escapes C0 controls itself but leaves DEL and the C1 controls (U+0080 to U+009F,
/// which some terminals take as escape sequences) as they are; those only ever occur
/// inside strings, where `\uXXXX` means the same character, so escaping them keeps the
/// JSON the same value.
pub fn audit_json(page: &AuditPage) -> Result<String, CliError> {
    let text = serde_json::to_string_pretty(page)
        .map_err(|e| CliError::Output(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if c.is_control() && u32::from(c) >= 0x7f {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    Ok(out)
}

/// `baton audit`: one line per entry; the detail as compact JSON, cut when long.
pub fn audit_table(entries: &[AuditEntry]) -> String {
    let mut table = Table::new(vec!["ID", "TIME", "ACTOR", "ACTION", "TARGET", "DETAIL"]);
    for e in entries {
        let detail = match e.detail.as_object() {
            Some(o) if o.is_empty() => "-".to_owned(),
            _ => e.detail.to_string(),
        };
        table.row(vec![
            e.id.to_string(),
            escaped(&e.at, usize::MAX),
            escaped(&e.actor, usize::MAX),
            escaped(&e.action, usize::MAX),
            escaped(&e.target, usize::MAX),
            escaped(&detail, DETAIL_CHARS),
        ]);
    }
    table.render()
}

/// `text` on one line with its control characters escaped (a server's text must not move
/// the cursor or recolour the terminal), cut after `max` characters.
// A private copy until the shared escaping helper of `output` lands; switch to it then.
fn escaped(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(
        id: i64,
        actor: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            id,
            at: format!("2027-01-15T08:00:{:02}.000Z", id),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail,
        }
    }

    #[test]
    fn table_lists_entries_with_compact_detail() {
        let entries = vec![
            entry(
                12,
                "ci-bot",
                "run.create",
                "r-0193",
                json!({"workflow": "deploy", "version": 3}),
            ),
            entry(
                11,
                "admin",
                "token.create",
                "ci-bot",
                json!({"role": "operator"}),
            ),
            entry(10, "admin", "workflow.apply", "deploy", json!({})),
        ];
        insta::assert_snapshot!(audit_table(&entries), @r#"
        ID  TIME                      ACTOR   ACTION          TARGET  DETAIL
        12  2027-01-15T08:00:12.000Z  ci-bot  run.create      r-0193  {"version":3,"workflow":"deploy"}
        11  2027-01-15T08:00:11.000Z  admin   token.create    ci-bot  {"role":"operator"}
        10  2027-01-15T08:00:10.000Z  admin   workflow.apply  deploy  -
        "#);
    }

    #[test]
    fn table_escapes_control_characters_and_cuts_long_detail() {
        let entries = vec![entry(
            1,
            "ev\u{1b}[31mil",
            "run.cancel",
            "r\n1\u{9b}2J",
            json!({"x": "y".repeat(200)}),
        )];
        let table = audit_table(&entries);
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "{table:?}"
        );
        assert_eq!(table.lines().count(), 2, "{table}");
        let row = table.lines().nth(1).unwrap();
        assert!(row.contains("ev\\u{1b}[31mil"), "{row}");
        assert!(row.contains("r\\n1\\u{9b}2J"), "{row}");
        let detail = row.split("  ").last().unwrap();
        assert_eq!(detail.chars().count(), DETAIL_CHARS + 1, "{detail}");
        assert!(detail.ends_with('…'), "{detail}");
    }

    #[test]
    fn json_is_the_api_page_with_c1_and_del_escaped() {
        let page = AuditPage {
            entries: vec![entry(
                5,
                "admin",
                "secret.set",
                "db\u{9b}\u{7f}\u{1b}",
                json!({"note": "a\nb"}),
            )],
            next_before: Some(5),
        };
        let text = audit_json(&page).unwrap();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(
            text.contains(r#""target": "db\u009b\u007f\u001b""#),
            "{text}"
        );
        let back: AuditPage = serde_json::from_str(&text).unwrap();
        assert_eq!(back, page);
    }
}
