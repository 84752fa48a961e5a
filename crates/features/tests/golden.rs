//! The front end against the published one: reference values written by
//! torchaudio (`scripts/golden/make_goldens.py`) from the committed clips.
//!
//! Tolerances (measured differences in brackets; they come from float32
//! rounding in torch's STFT and matrix products):
//! - mel filterbank weights: 1e-5 [5.2e-6]
//! - log-mel: 0.005 dB [8.9e-4 dB at 16 kHz; 2.1e-4 dB after resampling]
//! - normalised segments: 1e-4 [1.1e-5]
//! - resampled waveform: 1e-5 [8.3e-7, i.e. 128.8 dB SNR]
//!
//! They are tight: a one-frame shift moves the log-mel by 33.6 dB, the Slaney
//! mel scale by 36.0 dB, a periodic/symmetric Hann mix-up and rubato's
//! resampler by more than 0.01 dB. Each of those is checked below to fail.

use std::path::{Path, PathBuf};

use sampleid_audio::{AudioConfig, ResamplerKind, decode_file};
use sampleid_features::npy::{NpyArray, read_npy};
use sampleid_features::{FrontendConfig, MelFilterbank, MelScale, WindowKind, log_mel, segments};

const MEL_TOL_DB: f32 = 0.005;
const SEGMENT_TOL: f32 = 1e-4;

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(dir)
        .join(name)
}

fn golden(name: &str) -> NpyArray {
    read_npy(&fixture("golden", name)).unwrap()
}

fn audio(name: &str, resampler: ResamplerKind) -> Vec<f32> {
    let cfg = AudioConfig {
        resampler,
        ..AudioConfig::default()
    };
    decode_file(&fixture("audio", name), &cfg).unwrap().samples
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn mel_filterbank_matches_torchaudio() {
    let g = golden("melscale_fbanks.npy");
    assert_eq!(g.shape, vec![513, 64]);
    let ours = MelFilterbank::new(&FrontendConfig::default()).dense();
    let mut diff = 0.0f32;
    for (k, row) in g.data.chunks(64).enumerate() {
        for (m, &w) in row.iter().enumerate() {
            diff = diff.max((ours[m][k] - w).abs());
        }
    }
    assert!(diff < 1e-5, "filterbank differs by {diff}");
}

#[test]
fn log_mel_matches_torchaudio() {
    let cfg = FrontendConfig::default();
    let x = audio("awakening-8s-16k.wav", ResamplerKind::Sinc);
    let g = golden("awakening-8s-16k.mel.npy");
    let ours = log_mel(&x, &cfg).unwrap();
    // 8 s at 16 kHz, centred frames: 1 + 128000 / 512 = 251.
    assert_eq!(vec![ours.n_frames, ours.n_mels], g.shape);
    assert_eq!(ours.n_frames, 251);
    let diff = max_abs_diff(&ours.data, &g.data);
    assert!(diff < MEL_TOL_DB, "log-mel differs by {diff} dB");
}

#[test]
fn the_tolerance_catches_off_by_one_frames_and_wrong_mel_scales() {
    let cfg = FrontendConfig::default();
    let x = audio("awakening-8s-16k.wav", ResamplerKind::Sinc);
    let g = golden("awakening-8s-16k.mel.npy");
    let ours = log_mel(&x, &cfg).unwrap();
    let n = g.data.len();
    assert!(
        max_abs_diff(&ours.data[64..], &g.data[..n - 64]) > 1.0,
        "a one-frame shift must fail"
    );

    let slaney = FrontendConfig {
        mel_scale: MelScale::Slaney,
        ..cfg.clone()
    };
    assert!(max_abs_diff(&log_mel(&x, &slaney).unwrap().data, &g.data) > 1.0);

    let symmetric = FrontendConfig {
        window: WindowKind::HannSymmetric,
        ..cfg.clone()
    };
    assert!(max_abs_diff(&log_mel(&x, &symmetric).unwrap().data, &g.data) > MEL_TOL_DB);

    // Half a hop of delay (what an untrimmed filter delay looks like).
    let mut late = vec![0.0f32; 256];
    late.extend_from_slice(&x[..x.len() - 256]);
    assert!(max_abs_diff(&log_mel(&late, &cfg).unwrap().data, &g.data) > 1.0);
}

#[test]
fn encoder_segments_match_the_published_cutting_and_normalisation() {
    let cfg = FrontendConfig::default();
    let x = audio("awakening-8s-16k.wav", ResamplerKind::Sinc);
    let g = golden("awakening-8s-16k.segments.npy");
    let ours = segments(&x, &cfg).unwrap();
    // 251 frames, windows of 128 every 16 frames: starts 0, 16, …, 112.
    assert_eq!(g.shape, vec![8, 64, 128]);
    assert_eq!(ours.len(), 8);
    for (i, s) in ours.iter().enumerate() {
        assert_eq!(s.start_frame, 16 * i);
        assert!((s.start_s - 0.512 * i as f64).abs() < 1e-9);
        let diff = max_abs_diff(&s.data, &g.data[i * 8192..(i + 1) * 8192]);
        assert!(diff < SEGMENT_TOL, "segment {i} differs by {diff}");
        let (lo, hi) = s
            .data
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert_eq!((lo, hi), (0.0, 1.0));
    }
}

#[test]
fn a_clip_shorter_than_a_segment_is_zero_padded_to_one() {
    let cfg = FrontendConfig::default();
    let x = audio("nebula-2.5s-16k.wav", ResamplerKind::Sinc);
    assert_eq!(x.len(), 40_000);
    let g = golden("nebula-2.5s-16k.segments.npy");
    let ours = segments(&x, &cfg).unwrap();
    assert_eq!(ours.len(), 1);
    let diff = max_abs_diff(&ours[0].data, &g.data);
    assert!(diff < SEGMENT_TOL, "padded segment differs by {diff}");
}

#[test]
fn resampling_matches_torchaudio() {
    let x = audio("media-threat-3s-44k.wav", ResamplerKind::Sinc);
    let g = golden("media-threat-3s-44k.resampled.npy");
    assert_eq!(x.len(), 48_000);
    let diff = max_abs_diff(&x, &g.data);
    assert!(diff < 1e-5, "resampled waveform differs by {diff}");

    let mel = log_mel(&x, &FrontendConfig::default()).unwrap();
    let gm = golden("media-threat-3s-44k.mel.npy");
    let diff = max_abs_diff(&mel.data, &gm.data);
    assert!(diff < MEL_TOL_DB, "log-mel after resampling differs by {diff} dB");
}

#[test]
fn the_fft_resampler_is_not_the_published_front_end() {
    let x = audio("media-threat-3s-44k.wav", ResamplerKind::Fft);
    let mel = log_mel(&x, &FrontendConfig::default()).unwrap();
    let gm = golden("media-threat-3s-44k.mel.npy");
    assert!(max_abs_diff(&mel.data, &gm.data) > MEL_TOL_DB);
}
