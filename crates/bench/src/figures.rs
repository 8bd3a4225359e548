//! Measured figures, one sample per repeat, and how they are printed.

use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::Summary;

/// One thing measured, with a sample per repeat.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    /// The workload it belongs to (its CLI name).
    pub(crate) workload: &'static str,
    /// What it is, e.g. `chain-40 noop: wall`.
    pub(crate) name: String,
    /// `ms`, `nodes/s`, `MiB`, `CPU s / 1k nodes`.
    pub(crate) unit: &'static str,
    /// How it was measured.
    pub(crate) method: &'static str,
    /// One value per repeat.
    pub(crate) samples: Vec<f64>,
}

/// The figures of one workload, in the order they were first recorded.
#[derive(Debug)]
pub(crate) struct Figures {
    workload: &'static str,
    list: Vec<Figure>,
}

impl Figures {
    /// An empty set for `workload`.
    pub(crate) fn new(workload: &'static str) -> Figures {
        Figures {
            workload,
            list: Vec::new(),
        }
    }

    /// Adds one sample of the figure called `name`.
    pub(crate) fn add(
        &mut self,
        name: impl Into<String>,
        unit: &'static str,
        method: &'static str,
        value: f64,
    ) {
        let name = name.into();
        match self.list.iter_mut().find(|f| f.name == name) {
            Some(f) => f.samples.push(value),
            None => self.list.push(Figure {
                workload: self.workload,
                name,
                unit,
                method,
                samples: vec![value],
            }),
        }
    }

    /// The figures.
    pub(crate) fn into_vec(self) -> Vec<Figure> {
        self.list
    }
}

/// The machine the figures were taken on.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) cpus: usize,
    pub(crate) memory_gib: f64,
    pub(crate) os: String,
}

impl Machine {
    /// This machine, from `/proc/meminfo` and `/etc/os-release`.
    pub(crate) fn detect() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        let kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
                line.split_whitespace().nth(1)?.parse::<f64>().ok()
            })
            .unwrap_or(0.0);
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                let line = t.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
                Some(line["PRETTY_NAME=".len()..].trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| std::env::consts::OS.to_owned());
        Machine {
            cpus,
            memory_gib: (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            os,
        }
    }
}

/// The settings a report was made with.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Settings {
    pub(crate) quick: bool,
    pub(crate) repeats: usize,
    pub(crate) slots: u32,
    pub(crate) db: String,
    pub(crate) baton_version: String,
}

/// A figure as it is printed in JSON.
#[derive(Debug, Serialize)]
struct Row<'a> {
    workload: &'a str,
    figure: &'a str,
    unit: &'a str,
    method: &'a str,
    repeats: usize,
    #[serde(flatten)]
    summary: Summary,
    samples: &'a [f64],
}

/// The whole report as JSON.
pub(crate) fn to_json(machine: &Machine, settings: &Settings, figures: &[Figure]) -> String {
    let rows: Vec<Row<'_>> = figures
        .iter()
        .filter_map(|f| {
            Some(Row {
                workload: f.workload,
                figure: &f.name,
                unit: f.unit,
                method: f.method,
                repeats: f.samples.len(),
                summary: Summary::of(&f.samples)?,
                samples: &f.samples,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "machine": machine,
        "settings": settings,
        "figures": rows,
    });
    // A tree of plain values: serialising it cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The whole report as a Markdown table, with the methods as numbered notes below it.
pub(crate) fn to_table(machine: &Machine, settings: &Settings, figures: &[Figure]) -> String {
    let mut methods: Vec<&str> = Vec::new();
    let mut rows = vec![[
        "figure".to_owned(),
        "unit".to_owned(),
        "median".to_owned(),
        "p95".to_owned(),
        "min".to_owned(),
        "max".to_owned(),
        "how".to_owned(),
    ]];
    for f in figures {
        let Some(s) = Summary::of(&f.samples) else {
            continue;
        };
        let note = match methods.iter().position(|m| *m == f.method) {
            Some(i) => i + 1,
            None => {
                methods.push(f.method);
                methods.len()
            }
        };
        rows.push([
            f.name.clone(),
            f.unit.to_owned(),
            number(s.median),
            number(s.p95),
            number(s.min),
            number(s.max),
            format!("[{note}]"),
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = format!(
        "machine: {} CPUs, {} GiB, {}; baton {}; repeats {}{}; agent slots {}; db {}\n\n",
        machine.cpus,
        machine.memory_gib,
        machine.os,
        settings.baton_version,
        settings.repeats,
        if settings.quick { " (quick)" } else { "" },
        settings.slots,
        settings.db,
    );
    for (i, r) in rows.iter().enumerate() {
        out.push('|');
        for (c, (cell, w)) in r.iter().zip(widths).enumerate() {
            // Names and units left, numbers right.
            if c < 2 || c == 6 {
                let _ = write!(out, " {cell:<w$} |");
            } else {
                let _ = write!(out, " {cell:>w$} |");
            }
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for (c, w) in widths.iter().enumerate() {
                let dashes = "-".repeat(*w);
                if c < 2 || c == 6 {
                    let _ = write!(out, " {dashes} |");
                } else {
                    let _ = write!(out, " {}: |", &dashes[1..]);
                }
            }
            out.push('\n');
        }
    }
    out.push('\n');
    for (i, m) in methods.iter().enumerate() {
        let _ = writeln!(out, "- [{}] {m}", i + 1);
    }
    out
}

/// Three significant digits, without exponent notation.
fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Machine, Settings, Vec<Figure>) {
        let mut figs = Figures::new("chain");
        figs.add("chain-40 noop: wall", "ms", "client wall time", 30.0);
        figs.add("chain-40 noop: wall", "ms", "client wall time", 10.0);
        figs.add("chain-40 noop: per hop", "ms", "wall / nodes", 0.25);
        let machine = Machine {
            cpus: 2,
            memory_gib: 24.0,
            os: "Debian".into(),
        };
        let settings = Settings {
            quick: false,
            repeats: 2,
            slots: 16,
            db: "sqlite".into(),
            baton_version: "0.1.0".into(),
        };
        (machine, settings, figs.into_vec())
    }

    #[test]
    fn json_has_one_row_per_figure_with_its_summary() {
        let (m, s, f) = sample();
        let v: serde_json::Value = serde_json::from_str(&to_json(&m, &s, &f)).unwrap();
        let rows = v["figures"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["figure"], "chain-40 noop: wall");
        assert_eq!(rows[0]["median"], 20.0);
        assert_eq!(rows[0]["max"], 30.0);
        assert_eq!(rows[0]["repeats"], 2);
        assert_eq!(rows[0]["samples"], serde_json::json!([30.0, 10.0]));
        assert_eq!(v["machine"]["cpus"], 2);
    }

    #[test]
    fn table_numbers_methods_once() {
        let (m, s, f) = sample();
        let t = to_table(&m, &s, &f);
        assert!(
            t.contains("| chain-40 noop: wall    | ms   |   20.0 |"),
            "{t}"
        );
        assert!(
            t.contains("- [1] client wall time\n- [2] wall / nodes\n"),
            "{t}"
        );
        assert_eq!(number(1234.5), "1234");
        assert_eq!(number(0.01234), "0.012");
    }
}
