//! Writes a speed-changed copy (pitch and tempo together, as a turntable
//! does) of each input file as 16 kHz mono WAV. Used by `scripts/bench-100h`
//! to grow a benchmark library beyond the corpus's 37 h of music with
//! material that is real music yet not a duplicate of any indexed file.
//!
//! `cargo run --release --example speed_copy -- FACTOR OUT_DIR FILE...`
//! (a file that fails to decode is reported and skipped).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use sampleid_audio::{AudioConfig, decode_file};
use sampleid_transform::speed;

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 3 {
        bail!("usage: speed_copy FACTOR OUT_DIR FILE...");
    }
    let factor: f64 = a[0].parse().context("FACTOR must be a number such as 0.94")?;
    let out = PathBuf::from(&a[1]);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let cfg = AudioConfig::default();
    a[2..].par_iter().enumerate().for_each(|(i, file)| {
        let stem = Path::new(file).file_stem().and_then(|s| s.to_str()).unwrap_or("audio");
        let dest = out.join(format!("{i:05}-{stem}-x{factor}.wav"));
        if dest.exists() {
            return;
        }
        let r = (|| -> Result<()> {
            let src = decode_file(Path::new(file), &cfg)?;
            let y = speed(&src.samples, factor)?;
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: src.sample_rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let tmp = dest.with_extension("part");
            let mut w = hound::WavWriter::create(&tmp, spec)?;
            for v in y {
                w.write_sample((v.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
            }
            w.finalize()?;
            std::fs::rename(&tmp, &dest)?;
            Ok(())
        })();
        if let Err(e) = r {
            eprintln!("speed_copy: {file}: {e:#}");
        }
    });
    Ok(())
}
