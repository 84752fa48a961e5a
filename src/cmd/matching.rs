//! `sampleid match` adapts [`sampleid_engine::Library::passages`], `sampleid
//! align` adapts [`sampleid_engine::Engine::align`]; `sampleid bench matching`
//! (lab) scores chroma DTW against shingle search on a benchmark.

use std::path::Path;

use anyhow::{Context, Result};
use sampleid_engine::{Passages, Source};

use crate::cli::{AlignArgs, MatchArgs};
use crate::config::Config;

/// The human-readable answer for one clip.
pub fn human(p: &Passages) -> String {
    let mut out = p.query.clone();
    if p.matches.is_empty() {
        out.push_str("\n  no passage matches");
    }
    for (i, m) in p.matches.iter().enumerate() {
        out.push_str(&format!(
            "\n  {}. {}  {:.1}–{:.1} s  cost {:.3}  tempo ×{:.2}  key {:+} st",
            i + 1,
            m.reference,
            m.start,
            m.end,
            m.cost,
            m.tempo_factor,
            m.pitch_shift
        ));
    }
    out
}

/// `sampleid match`; returns the number of files that failed.
pub fn run_match(args: &MatchArgs, cfg: &Config, model: Option<&Path>) -> Result<usize> {
    let lib = super::open_library(&args.db, cfg, model)?;
    let mut failed = 0;
    for file in &args.files {
        match lib.passages(&Source::file(file)) {
            Ok(p) if args.json => println!("{}", serde_json::to_string(&p)?),
            Ok(p) => println!("{}", human(&p)),
            Err(e) => {
                failed += 1;
                super::input_error("query", &file.display().to_string(), &e.into(), args.json);
            }
        }
    }
    Ok(failed)
}

/// `sampleid align`.
pub fn run_align(args: &AlignArgs, cfg: &Config, model: Option<&Path>) -> Result<()> {
    let engine = super::engine(cfg, model)?;
    let al = engine.align(&Source::file(&args.a), &Source::file(&args.b))?;
    let path_s = al.path_s();
    if let Some(out) = &args.plot {
        let m = &al.matrix;
        sampleid_report::cost_matrix(
            out,
            &format!(
                "{} vs {}",
                args.a.file_name().unwrap_or_default().to_string_lossy(),
                args.b.file_name().unwrap_or_default().to_string_lossy()
            ),
            m.rows(),
            m.cols(),
            m.values(),
            al.rate,
            &al.path,
            "A",
            "B",
        )
        .with_context(|| format!("cannot draw {}", out.display()))?;
    }
    if args.json {
        let path: Vec<[f64; 2]> = path_s.iter().map(|&(x, y)| [x, y]).collect();
        println!(
            "{}",
            serde_json::json!({
                "a": args.a.display().to_string(), "b": args.b.display().to_string(),
                "rate": al.rate, "cost": al.cost, "mean_cost": al.mean_cost(), "path": path,
            })
        );
    } else {
        println!(
            "{} ↔ {}: {} path steps at {} features/s, mean cost {:.3}",
            args.a.display(),
            args.b.display(),
            al.path.len(),
            al.rate,
            al.mean_cost()
        );
        // About ten evenly spaced correspondences, and the last one once.
        let every = (path_s.len() / 10).max(1);
        let mut shown: Vec<(f64, f64)> = path_s.iter().step_by(every).copied().collect();
        if let Some(&last) = path_s.last()
            && shown.last() != Some(&last)
        {
            shown.push(last);
        }
        for (x, y) in shown {
            println!("  A {x:7.1} s  ↔  B {y:7.1} s");
        }
        if let Some(out) = &args.plot {
            println!("plot: {}", out.display());
        }
    }
    Ok(())
}
