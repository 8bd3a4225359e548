//! Human durations (`500ms`, `2s`, `10m`, `1h30m`) as milliseconds.

/// Parses a duration such as `500ms`, `2s`, `1.5s`, `10m`, `1h30m` or `2d` into milliseconds.
///
/// A bare number is refused: a unit is required so `timeout: 10` cannot silently mean
/// ten milliseconds to one reader and ten seconds to another.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "bad duration {text:?}: expected a number, as in 30s, 10m or 1h30m"
            ));
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| {
            format!(
                "bad duration {text:?}: {:?} is not a number",
                &rest[..num_len]
            )
        })?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor = match unit {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            "" => {
                return Err(format!(
                    "bad duration {text:?}: missing unit (use ms, s, m, h or d)"
                ));
            }
            other => {
                return Err(format!(
                    "bad duration {text:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                ));
            }
        };
        total += number * factor;
    }
    // A year is far beyond any sane timeout or back-off; larger values are typos.
    if !total.is_finite() || total > 366.0 * 86_400_000.0 {
        return Err(format!("bad duration {text:?}: longer than a year"));
    }
    Ok(total.round() as u64)
}

/// Formats milliseconds compactly for people: `850ms`, `2.4s`, `3m05s`, `1h02m`.
pub fn format_duration(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1_000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1_000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("2s"), Ok(2_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500));
        assert_eq!(parse_duration("10m"), Ok(600_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
    }

    #[test]
    fn refuses_bad_durations_with_reason() {
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit"));
        assert!(
            parse_duration("m")
                .unwrap_err()
                .contains("expected a number")
        );
        assert!(
            parse_duration("1.2.3s")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(parse_duration("999999d").unwrap_err().contains("year"));
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_duration(850), "850ms");
        assert_eq!(format_duration(2_400), "2.4s");
        assert_eq!(format_duration(185_000), "3m05s");
        assert_eq!(format_duration(3_720_000), "1h02m");
    }
}
