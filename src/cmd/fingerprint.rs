//! `sampleid fingerprint` adapts [`sampleid_engine::Engine::fingerprints`];
//! `sampleid model` describes the encoder in use.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use sampleid_engine::{Engine, ModelSource, Source};
use sampleid_features::npy::NpyWriter;
use serde::Serialize;

use crate::cli::{FingerprintArgs, ModelArgs};
use crate::config::Config;
use crate::progress;

/// What one input produced.
#[derive(Debug, Serialize)]
struct Written {
    input: String,
    output: String,
    /// (segments, 128)
    shape: Vec<usize>,
    /// Start of segment i is `i × hop_s` seconds.
    hop_s: f64,
    duration_s: f64,
    model: String,
}

/// Runs the command; returns the number of inputs that failed.
pub fn run(args: &FingerprintArgs, cfg: &Config, model_path: Option<&Path>, quiet: bool) -> Result<usize> {
    if args.out.is_some() && args.files.len() > 1 {
        bail!("--out names one file; use --out-dir for {} inputs", args.files.len());
    }
    let engine = super::engine(cfg, model_path)?;
    let out_dir = args.out_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    if args.out.is_none() {
        std::fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    }
    let bar = progress::files_bar(args.files.len() as u64, quiet);
    let mut taken = HashSet::new();
    let mut results = Vec::new();
    for input in &args.files {
        let out = args.out.clone().unwrap_or_else(|| {
            let stem = input
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            out_dir.join(format!("{stem}.fingerprints.npy"))
        });
        let r = if taken.insert(out.clone()) {
            fingerprint(input, &out, &engine, &bar)
        } else {
            Err(anyhow::anyhow!(
                "{}: output {} is already written by another input",
                input.display(),
                out.display()
            ))
        };
        bar.inc(1);
        results.push(r);
    }
    bar.finish_and_clear();
    super::report(&args.files, &results, args.json, |w: &Written| {
        format!(
            "{} → {} {:?} ({:.1} s of audio)",
            w.input, w.output, w.shape, w.duration_s
        )
    })
}

fn fingerprint(input: &Path, out: &Path, engine: &Engine, bar: &ProgressBar) -> Result<Written> {
    let dim = engine.encoder().config().out_dim;
    let show = |name: &str, pos: f64, declared: Option<f64>| progress::show_position(bar, name, pos, declared);
    let (fps, duration_s) = engine.fingerprints(&Source::file(input), Some(&show))?;
    let mut writer = NpyWriter::create(out, &[dim])?;
    for row in fps.chunks(dim) {
        if let Err(e) = writer.write_row(row) {
            writer.discard();
            return Err(e.into());
        }
    }
    Ok(Written {
        input: input.display().to_string(),
        output: out.display().to_string(),
        shape: writer.finish()?,
        hop_s: engine.settings().hop_s(),
        duration_s,
        model: engine.encoder().info().version.clone(),
    })
}

/// `sampleid model`: the encoder in use.
pub fn model(args: &ModelArgs, model_path: Option<&Path>) -> Result<()> {
    let source = ModelSource::from_option(model_path);
    let encoder = sampleid_engine::models::load_encoder(&source)?;
    let info = encoder.info();
    let source = source.describe();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"source": source, "parameters": encoder.parameters(), "info": info})
        );
    } else {
        let c = &info.config;
        println!("encoder {} ({source})", info.version);
        println!(
            "  {} parameters; graph blocks {}; channels {:?}, blocks {:?}, k {}; {}-d fingerprint, node matrix {} × {}",
            encoder.parameters(),
            if c.graph { "on" } else { "off" },
            c.channels,
            c.blocks,
            c.k,
            c.out_dim,
            c.output_nodes(),
            c.node_dim()
        );
        if !info.training.is_null() {
            println!("  training: {}", info.training);
        }
    }
    Ok(())
}
