//! HTTP JSON request and response types shared by Baton's server, agent and CLI.
//!
//! Everything under `/api/v1`. People's routes take a token with a [`Role`] (the admin
//! token file, or a named token); the agent protocol (`/api/v1/agent/...`) takes an agent's
//! own token, except `register`, which takes the enrollment token. Times are RFC 3339 strings in
//! documents people read and milliseconds since the Unix epoch where noted.

mod agent;
mod audit;
mod error;
mod resource;
mod run;
mod security;
mod workflow;

pub use agent::*;
pub use audit::*;
pub use error::*;
pub use resource::*;
pub use run::*;
pub use security::*;
pub use workflow::*;

/// The path prefix of every API route.
pub const API_PREFIX: &str = "/api/v1";

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC with millisecond precision.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_millis_as_rfc3339() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(1_795_388_400_123), "2026-11-22T23:00:00.123Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
