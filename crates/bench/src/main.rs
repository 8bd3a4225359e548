//! `baton-bench`: Baton's load harness.
//!
//! Starts a real `baton server` (embedded SQLite in a temp data dir unless `--db` says
//! otherwise) and real `baton agent` processes, drives each workload through the HTTP API
//! with the admin token, and prints a table (or, with `--json`, JSON) of median, p95, min
//! and max over `--repeats` for every figure. Each workload gets a fresh cluster, so one's
//! leftovers never slow the next. See the crate's README for the workloads and methods.
//!
//! Modules: [`cluster`] (the processes), [`api`] (the HTTP client), [`wait`] (following
//! runs to their end), [`workloads`] (what is measured), [`figures`] and [`stats`] (the
//! report), [`times`] and [`procfs`] (where the numbers come from), [`graphs`] (workflow
//! files of each shape).

mod api;
mod cluster;
mod figures;
mod graphs;
mod procfs;
mod stats;
mod times;
mod wait;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use crate::cluster::Options;
use crate::figures::{Machine, Settings};
use crate::workloads::{Ctx, Sizes, Workload};

/// Runs Baton's benchmark workloads against real server and agent processes and prints
/// median, p95, min and max of every figure.
#[derive(Debug, Parser)]
#[command(name = "baton-bench", version)]
struct Args {
    /// Workloads to run, in this order [default: all]
    #[arg(value_enum)]
    workloads: Vec<Workload>,
    /// The `baton` binary [default: `baton` beside this executable, e.g. target/release/baton]
    #[arg(long, value_name = "PATH")]
    baton: Option<PathBuf>,
    /// The server's database URL, passed through as `baton server --db` [default: a SQLite
    /// file in a fresh temp data dir per workload]
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// Times each workload is measured [default: 5, or 1 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeats: Option<u32>,
    /// Small sizes and one repeat: every workload in well under a minute, even in a debug build
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON on stdout instead of a table
    #[arg(long)]
    json: bool,
    /// Slots of every agent (`baton agent --slots`)
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    slots: u32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let baton = match args.baton {
        Some(p) => p,
        None => std::env::current_exe()
            .context("finding this executable")?
            .with_file_name("baton"),
    };
    if !baton.is_file() {
        anyhow::bail!(
            "no baton binary at {}: build it (cargo build --release -p baton-baton) or pass --baton PATH",
            baton.display()
        );
    }
    let baton_version = version_of(&baton).await?;
    let repeats = args
        .repeats
        .map_or(if args.quick { 1 } else { 5 }, |r| r as usize);
    let ctx = Ctx {
        opts: Options {
            baton,
            db: args.db.clone(),
            slots: args.slots,
            secrets_key: std::env::var("BATON_SECRETS_KEY")
                .unwrap_or_else(|_| cluster::BENCH_SECRETS_KEY.to_owned()),
        },
        repeats,
        sizes: if args.quick {
            Sizes::quick()
        } else {
            Sizes::full()
        },
    };
    let selected = if args.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        args.workloads
    };
    let mut figures = Vec::new();
    for w in selected {
        eprintln!("{}", w.name());
        figures.extend(w.run(&ctx).await?);
    }
    let machine = Machine::detect();
    let settings = Settings {
        quick: args.quick,
        repeats,
        slots: args.slots,
        db: args
            .db
            .unwrap_or_else(|| "embedded SQLite (default)".to_owned()),
        baton_version,
    };
    if args.json {
        println!("{}", figures::to_json(&machine, &settings, &figures));
    } else {
        print!("{}", figures::to_table(&machine, &settings, &figures));
    }
    Ok(())
}

/// `baton --version`, e.g. `baton 0.1.0`, without the program name.
async fn version_of(baton: &std::path::Path) -> Result<String> {
    let out = tokio::process::Command::new(baton)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("running {} --version", baton.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.trim().trim_start_matches("baton").trim().to_owned())
}
