//! `sampleid corpus`: build and inspect the training/benchmark corpus.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sampleid_corpus::{BuildOptions, Table, build, manifest};

use crate::cli::{CorpusFetchArgs, CorpusStatsArgs};

pub fn fetch(args: &CorpusFetchArgs, quiet: bool) -> Result<()> {
    let table = match &args.table {
        Some(p) => Table::parse(&std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?)?,
        None => Table::default_table(),
    };
    let opts = BuildOptions {
        dir: args.dir.clone(),
        only: args.only.clone(),
        skip_heavy: args.skip_heavy,
        grooves: args.grooves,
        modules: !args.no_modules,
    };
    let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}")
            .expect("static template"),
    );
    let progress = |stage: &str, done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(stage.to_string());
        if bar.is_hidden() {
            tracing::info!(stage, done, total, "corpus");
        }
    };
    let summary = build(&opts, &table, &progress).context("building the corpus")?;
    bar.finish_and_clear();
    println!(
        "{}: {} files in the manifest, {} left out (see rejected.csv)",
        args.dir.join("manifest.csv").display(),
        summary.entries,
        summary.rejected
    );
    for (kind, h) in &summary.hours {
        println!("  {kind:7} {h:7.2} h");
    }
    let split: Vec<String> = summary
        .music_hours_by_split
        .iter()
        .map(|(s, h)| format!("{s} {h:.2} h"))
        .collect();
    println!("  music by split: {}", split.join(", "));
    Ok(())
}

pub fn stats(args: &CorpusStatsArgs) -> Result<()> {
    let path = args.dir.join("manifest.csv");
    let entries = manifest::read(&path)
        .with_context(|| format!("no corpus at {} (run sampleid corpus fetch)", args.dir.display()))?;
    let mut table: BTreeMap<(String, String), (usize, f64)> = BTreeMap::new();
    for e in &entries {
        let k = (
            format!("{:?}", e.kind).to_lowercase(),
            format!("{:?}", e.split).to_lowercase(),
        );
        let v = table.entry(k).or_default();
        v.0 += 1;
        v.1 += e.duration_s / 3600.0;
    }
    if args.json {
        let rows: Vec<_> = table
            .iter()
            .map(|((k, s), (n, h))| serde_json::json!({"kind": k, "split": s, "files": n, "hours": h}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:8} {:11} {:>7} {:>8}", "kind", "split", "files", "hours");
    for ((k, s), (n, h)) in &table {
        println!("{k:8} {s:11} {n:>7} {h:>8.2}");
    }
    Ok(())
}
