//! `baton-bench --quick --json` against the workspace's own `baton` binary: every workload
//! runs and reports well-formed figures. Timings are never asserted.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const WORKLOADS: [&str; 7] = [
    "chain",
    "fanout",
    "throughput",
    "latency",
    "big-dag",
    "peers",
    "footprint",
];

/// The `baton` binary of the same build, beside the harness (nextest builds every binary of
/// the workspace before running tests; a bare `cargo test -p baton-bench` does not).
fn baton_binary() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_baton-bench"));
    let baton = bench.with_file_name("baton");
    assert!(
        baton.is_file(),
        "no baton binary at {}: run `cargo build -p baton-baton` first (scripts/test.sh does)",
        baton.display()
    );
    baton
}

#[test]
fn quick_mode_reports_every_workload() {
    let out = Command::new(env!("CARGO_BIN_EXE_baton-bench"))
        .args(["--quick", "--json", "--baton"])
        .arg(baton_binary())
        .env_remove("BATON_SERVER")
        .env_remove("BATON_TOKEN")
        .output()
        .expect("run baton-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "baton-bench failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));

    assert_eq!(report["settings"]["quick"], true);
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
    let figures = report["figures"].as_array().expect("figures");
    let seen: BTreeSet<&str> = figures
        .iter()
        .map(|f| f["workload"].as_str().expect("workload name"))
        .collect();
    assert_eq!(seen, WORKLOADS.into_iter().collect());

    for f in figures {
        let name = f["figure"].as_str().expect("figure name");
        assert!(!f["method"].as_str().unwrap_or("").is_empty(), "{name}");
        assert_eq!(f["repeats"], 1, "{name}");
        let stats: Vec<f64> = ["median", "p95", "min", "max"]
            .iter()
            .map(|k| f[k].as_f64().unwrap_or_else(|| panic!("{name}: no {k}")))
            .collect();
        assert!(
            stats.iter().all(|v| v.is_finite() && *v >= 0.0),
            "{name}: {stats:?}"
        );
        assert!(
            stats[2] <= stats[0] && stats[0] <= stats[3],
            "{name}: {stats:?}"
        );
        // Times at 1 ms resolution and CPU at 10 ms ticks may be 0; nothing else may.
        let coarse = name.contains("(run doc)")
            || name.contains("ready-to-start")
            || f["unit"] == "CPU s / 1k nodes";
        if !coarse {
            assert!(stats[0] > 0.0, "{name} is not positive: {stats:?}");
        }
    }
    for expected in ["W1:", "W2:", "W3:", "W4:"] {
        assert!(
            figures
                .iter()
                .any(|f| f["figure"].as_str().unwrap_or("").starts_with(expected)),
            "no {expected} figure"
        );
    }
}
