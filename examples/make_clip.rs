//! Makes a query clip the way a producer samples a record: an excerpt of
//! one file, pitch-shifted, mixed under another file at a target-to-background
//! ratio, written as 16 kHz WAV. Used to make `fixtures/audio/query-*.wav`.
//!
//! `cargo run --release --example make_clip -- SOURCE START_S DURATION_S SEMITONES BACKGROUND TBR_DB OUT.wav`

use std::path::Path;

use anyhow::{Context, Result, bail};
use sampleid_audio::{AudioConfig, decode_file};
use sampleid_transform::level::normalise_peak;
use sampleid_transform::{mix_at_ratio, pitch_shift};

fn main() -> Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 7 {
        bail!("usage: make_clip SOURCE START_S DURATION_S SEMITONES BACKGROUND TBR_DB OUT.wav");
    }
    let num = |i: usize| -> Result<f64> { a[i].parse().with_context(|| format!("argument {i}: {}", a[i])) };
    let cfg = AudioConfig::default();
    let src = decode_file(Path::new(&a[0]), &cfg)?;
    let sr = src.sample_rate as f64;
    let (start, len) = ((num(1)? * sr) as usize, (num(2)? * sr) as usize);
    let excerpt = src
        .samples
        .get(start..start + len)
        .context("the excerpt runs past the end of the source")?;
    let shifted = pitch_shift(excerpt, num(3)?)?;
    let bg = decode_file(Path::new(&a[4]), &cfg)?;
    let (mut mix, _) = mix_at_ratio(&shifted, &bg.samples, 0, num(5)?)?;
    normalise_peak(&mut mix, 0.99);
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: src.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&a[6], spec)?;
    for v in mix {
        w.write_sample((v * 32767.0).round() as i16)?;
    }
    w.finalize()?;
    Ok(())
}
