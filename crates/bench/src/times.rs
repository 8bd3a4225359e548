//! Times read from run documents: RFC 3339 stamps with millisecond resolution.

use anyhow::{Context, Result, bail};
use baton_api::{AttemptDoc, RunDoc};

/// Milliseconds since the Unix epoch of a stamp as the server writes them
/// (`2026-11-22T23:00:00.123Z`, see `baton_api::format_time`).
pub(crate) fn parse_ms(stamp: &str) -> Result<i64> {
    let b = stamp.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[10] != b'T' || b[19] != b'.' || b[23] != b'Z' {
        bail!("unexpected time stamp {stamp:?}");
    }
    let num = |from: usize, to: usize| -> Result<i64> {
        stamp[from..to]
            .parse::<i64>()
            .with_context(|| format!("bad time stamp {stamp:?}"))
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, s, ms) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    let days = days_from_civil(y, mo, d);
    Ok(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm, the
/// inverse of the one `format_time` uses).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// When the node's first attempt began: its `started_at`, or its `claimed_at` when it has
/// none (a `noop` reports straight from `pending` and never sends a start).
fn began_ms(attempt: &AttemptDoc) -> Result<i64> {
    parse_ms(attempt.started_at.as_deref().unwrap_or(&attempt.claimed_at))
}

fn finished_ms(attempt: &AttemptDoc) -> Result<Option<i64>> {
    attempt.finished_at.as_deref().map(parse_ms).transpose()
}

/// Per node of a finished run, milliseconds from the node becoming ready (the last of its
/// needs finished, or the run was created for a root) to its first attempt beginning.
///
/// With `roots: false` only nodes that have needs count: for a chain that is the per-hop
/// overhead, the time the engine adds between one node's end and the next one's start.
pub(crate) fn ready_to_start(doc: &RunDoc, roots: bool) -> Result<Vec<f64>> {
    let created = parse_ms(&doc.created_at)?;
    let mut out = Vec::with_capacity(doc.nodes.len());
    for (id, node) in &doc.nodes {
        if node.needs.is_empty() && !roots {
            continue;
        }
        let first = node
            .attempts
            .first()
            .with_context(|| format!("node {id} never ran"))?;
        let mut ready = created;
        for need in &node.needs {
            let up = doc
                .nodes
                .get(need)
                .and_then(|n| n.attempts.last())
                .with_context(|| format!("node {need} never ran"))?;
            let done = finished_ms(up)?.with_context(|| format!("node {need} never finished"))?;
            ready = ready.max(done);
        }
        out.push((began_ms(first)? - ready) as f64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_api_formats() {
        for ms in [0, 951_782_400_000, 1_795_388_400_123, 4_102_444_800_999] {
            assert_eq!(parse_ms(&baton_api::format_time(ms)).unwrap(), ms);
        }
        assert!(parse_ms("2026-11-22 23:00:00Z").is_err());
        assert!(parse_ms("2026-1x-22T23:00:00.000Z").is_err());
    }

    fn doc(json: serde_json::Value) -> RunDoc {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn ready_to_start_uses_claimed_at_without_a_start() {
        let t = baton_api::format_time;
        let d = doc(serde_json::json!({
            "id": "r", "workflow": "w", "version": 1, "status": "success",
            "created_at": t(1000), "finished_at": t(1100), "rev": 9,
            "nodes": {
                "a": {"status": "success", "attempts": [{"number": 1, "status": "success",
                    "agent": "x", "claimed_at": t(1002), "started_at": t(1003), "finished_at": t(1010)}]},
                "b": {"status": "success", "needs": ["a"], "attempts": [{"number": 1,
                    "status": "success", "agent": "x", "claimed_at": t(1014), "finished_at": t(1015)}]},
                "c": {"status": "success", "needs": ["a", "b"], "attempts": [{"number": 1,
                    "status": "success", "agent": "x", "claimed_at": t(1016), "started_at": t(1020),
                    "finished_at": t(1030)}]}
            }
        }));
        assert_eq!(ready_to_start(&d, true).unwrap(), vec![3.0, 4.0, 5.0]);
        assert_eq!(ready_to_start(&d, false).unwrap(), vec![4.0, 5.0]);
    }
}
