//! `sampleid fingerprint` and `sampleid model`: the encoder stage on files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use sampleid_audio::AudioStream;
use sampleid_encoder::Encoder;
use sampleid_features::SegmentStream;
use sampleid_features::npy::NpyWriter;
use serde::Serialize;

use crate::cli::{FingerprintArgs, ModelArgs};
use crate::config::Config;
use crate::{model, progress};

/// Segments encoded per forward pass.
const BATCH: usize = 64;

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
    let encoder = model::encoder(model_path)?;
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
            fingerprint(input, &out, &encoder, cfg, &bar)
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

/// Fingerprints of a whole file (`n × dim`, row-major) and its decoded duration.
pub fn fingerprint_file(
    input: &Path,
    encoder: &Encoder,
    cfg: &Config,
    bar: Option<&ProgressBar>,
) -> Result<(Vec<f32>, f64)> {
    let mut stream = AudioStream::open(input, &cfg.audio)?;
    let declared = stream.info().duration_s;
    let name = input.display().to_string();
    let mut seg = SegmentStream::new(&cfg.frontend)?;
    let mut pending: Vec<Vec<f32>> = Vec::new();
    let mut out = Vec::new();
    let flush = |pending: &mut Vec<Vec<f32>>, out: &mut Vec<f32>| -> Result<()> {
        let refs: Vec<&[f32]> = pending.iter().map(|s| s.as_slice()).collect();
        for e in encoder.embed(&refs)? {
            out.extend_from_slice(&e.fingerprint);
        }
        pending.clear();
        Ok(())
    };
    while let Some(block) = stream.next_block()? {
        seg.push(block, &mut |s| pending.push(s.data));
        if pending.len() >= BATCH {
            flush(&mut pending, &mut out)?;
        }
        if let Some(bar) = bar {
            progress::show_position(bar, &name, stream.position_s(), declared);
        }
    }
    seg.finish(&mut |s| pending.push(s.data));
    flush(&mut pending, &mut out)?;
    Ok((out, stream.position_s()))
}

/// Seconds between segment starts.
pub fn hop_s(cfg: &Config) -> f64 {
    cfg.frontend.segment_hop as f64 * cfg.frontend.hop_length as f64 / cfg.frontend.sample_rate as f64
}

fn fingerprint(input: &Path, out: &Path, encoder: &Encoder, cfg: &Config, bar: &ProgressBar) -> Result<Written> {
    let dim = encoder.config().out_dim;
    let (fps, duration_s) = fingerprint_file(input, encoder, cfg, Some(bar))?;
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
        hop_s: hop_s(cfg),
        duration_s,
        model: encoder.info().version.clone(),
    })
}

/// `sampleid model`: the encoder in use.
pub fn model(args: &ModelArgs, model_path: Option<&Path>) -> Result<()> {
    let encoder = model::encoder(model_path)?;
    let info = encoder.info();
    let source = model::encoder_source(model_path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in".into());
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
