//! CPU time and memory of a process, from Linux's `/proc`.

use anyhow::{Context, Result, bail};

/// Clock ticks per second of `utime`/`stime` in `/proc/PID/stat`. Linux reports these in
/// USER_HZ, which is 100 on every architecture it exposes to user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds the process has used so far (10 ms resolution).
pub(crate) fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_ticks(&text)
        .map(|ticks| ticks as f64 / TICKS_PER_SECOND)
        .with_context(|| format!("unexpected {path}: {text:?}"))
}

/// `utime + stime` of a `/proc/PID/stat` line. The command name (field 2) may hold spaces
/// and parentheses, so the fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, utime field 14, stime field 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory now (`VmRSS`), in MiB.
pub(crate) fn rss_mib(pid: u32) -> Result<f64> {
    status_kib(pid, "VmRSS:").map(|k| k as f64 / 1024.0)
}

/// Peak resident memory over the process's life (`VmHWM`), in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> Result<f64> {
    status_kib(pid, "VmHWM:").map(|k| k as f64 / 1024.0)
}

/// Starts the process's `VmHWM` over from its current resident memory (Linux 4.0+:
/// writing 5 to `/proc/PID/clear_refs`), so the next peak read covers only what follows.
pub(crate) fn reset_peak_rss(pid: u32) -> Result<()> {
    let path = format!("/proc/{pid}/clear_refs");
    std::fs::write(&path, "5").with_context(|| format!("writing {path}"))
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    match parse_status_kib(&text, key) {
        Some(v) => Ok(v),
        None => bail!("{path} has no {key} line"),
    }
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_past_an_odd_command_name() {
        let stat = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 5 1000 10";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_status_lines() {
        let status = "Name:\tbaton\nVmHWM:\t   12345 kB\nVmRSS:\t    6789 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(6789));
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(12345));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_cpu_and_memory() {
        let me = std::process::id();
        assert!(cpu_seconds(me).unwrap() >= 0.0);
        assert!(rss_mib(me).unwrap() > 0.0);
        assert!(peak_rss_mib(me).unwrap() >= rss_mib(me).unwrap() - 1.0);
    }

    #[test]
    fn a_reset_peak_starts_over_near_the_current_size() {
        let me = std::process::id();
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        drop(big);
        let before = peak_rss_mib(me).unwrap();
        reset_peak_rss(me).unwrap();
        let after = peak_rss_mib(me).unwrap();
        assert!(after < before - 32.0, "peak {before} MiB, then {after} MiB");
    }
}
