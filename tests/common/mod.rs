//! Helpers shared by the binary's integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A bundled audio fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/audio").join(name)
}

/// Runs the `sampleid` binary to completion.
pub fn sampleid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sampleid"))
        .args(args)
        .env_remove("SAMPLEID_LOG")
        .output()
        .expect("the binary runs")
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes mono 16-bit WAV (samples in [-1, 1], clamped).
pub fn write_wav(path: &Path, rate: u32, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &v in samples {
        w.write_sample((v.clamp(-1.0, 1.0) * 32_767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}
