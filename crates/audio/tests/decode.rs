//! Decoding real files: every supported format of the same excerpt must give
//! the same 16 kHz mono signal (same length, same alignment), and every kind of
//! damaged input must give one clear error naming the file.

use std::path::{Path, PathBuf};

use sampleid_audio::{AudioConfig, AudioError, AudioStream, decode_bytes, decode_file, is_silent};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/audio")
        .join(name)
}

fn reference() -> Vec<f32> {
    decode_file(&fixture("awakening-8s-16k.wav"), &AudioConfig::default())
        .unwrap()
        .samples
}

/// Normalised cross-correlation of `a` and `b` at the lag in `-max_lag..=max_lag`
/// where it peaks: (lag, correlation). A positive lag means `b` is late.
fn best_lag(a: &[f32], b: &[f32], max_lag: i64) -> (i64, f64) {
    let n = a.len().min(b.len());
    let margin = max_lag as usize + 1;
    let mut best = (0, -1.0);
    for lag in -max_lag..=max_lag {
        let (mut num, mut ea, mut eb) = (0.0f64, 0.0f64, 0.0f64);
        for i in margin..n - margin {
            let x = a[i] as f64;
            let y = b[(i as i64 + lag) as usize] as f64;
            num += x * y;
            ea += x * x;
            eb += y * y;
        }
        let c = num / (ea * eb).sqrt().max(1e-12);
        if c > best.1 {
            best = (lag, c);
        }
    }
    best
}

#[test]
fn sixteen_bit_wav_is_read_exactly() {
    let decoded = decode_file(&fixture("awakening-8s-16k.wav"), &AudioConfig::default()).unwrap();
    let mut reader = hound::WavReader::open(fixture("awakening-8s-16k.wav")).unwrap();
    let raw: Vec<f32> = reader.samples::<i16>().map(|s| s.unwrap() as f32 / 32768.0).collect();
    assert_eq!(
        decoded.samples, raw,
        "int16 PCM must map to s / 32768 with no resampling at 16 kHz"
    );
    assert_eq!(decoded.info.codec, "pcm_s16le");
    assert_eq!(decoded.info.duration_s, Some(8.0));
}

#[test]
fn every_format_decodes_to_the_same_aligned_signal() {
    let reference = reference();
    // (file, expected codec, minimum correlation with the reference). Lossy codecs
    // at low bitrates (Opus 64 kb/s) correlate less, but must still be aligned.
    let cases = [
        ("awakening-8s-f32.wav", "pcm_f32le", 0.999),
        ("awakening-8s.flac", "flac", 0.999),
        ("awakening-8s.mp3", "mp3", 0.999),
        ("awakening-8s.m4a", "aac", 0.998),
        ("awakening-8s.opus", "opus", 0.97),
    ];
    for (name, codec, min_corr) in cases {
        let d = decode_file(&fixture(name), &AudioConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.info.codec, codec, "{name}");
        assert_eq!(d.sample_rate, 16_000);
        // Opus and AAC encode whole frames, so a few ms of padding may remain at the end.
        assert!((d.duration_s() - 8.0).abs() < 0.02, "{name}: {} s", d.duration_s());
        let (lag, corr) = best_lag(&reference, &d.samples, 400);
        assert!(
            lag.abs() <= 1,
            "{name}: misaligned by {lag} samples (encoder delay not removed?)"
        );
        assert!(corr > min_corr, "{name}: correlation {corr}");
    }
}

#[test]
fn surround_opus_is_decoded_and_downmixed() {
    // 5.1, mapping family 1: four streams, two of them coupled.
    let d = decode_file(&fixture("awakening-4s-5.1.opus"), &AudioConfig::default()).unwrap();
    assert_eq!(d.info.channels, Some(6));
    assert!((d.duration_s() - 4.0).abs() < 0.01, "{}", d.duration_s());
    let reference = reference();
    let (lag, corr) = best_lag(&reference[..64_000], &d.samples, 400);
    assert!(lag.abs() <= 1, "misaligned by {lag}");
    assert!(corr > 0.97, "correlation {corr} with the stereo source");
}

#[test]
fn stereo_48k_vorbis_is_downmixed_and_resampled() {
    let d = decode_file(&fixture("nebula-20s.ogg"), &AudioConfig::default()).unwrap();
    assert_eq!(d.info.codec, "vorbis");
    assert_eq!(d.info.sample_rate, Some(48_000));
    assert_eq!(d.info.channels, Some(2));
    let expected = (d.info.duration_s.unwrap() * 16_000.0).ceil() as usize;
    assert!((d.samples.len() as i64 - expected as i64).abs() <= 1);
}

#[test]
fn ffmpeg_vorbis_with_shifted_granules_loses_no_audio() {
    // Encoded by ffmpeg straight from a seek: some Ogg pages carry granule
    // positions 448 frames off, and symphonia alone trims real audio there
    // (9.99 s instead of 10.00 s; 6.7 s lost over a 3 h file).
    let d = decode_file(&fixture("coherence-10s-ffmpeg-seek.ogg"), &AudioConfig::default()).unwrap();
    assert_eq!(d.info.duration_s, Some(10.0));
    assert!((d.duration_s() - 10.0).abs() < 0.002, "{} s", d.duration_s());
}

#[test]
fn streaming_blocks_concatenate_to_the_whole_decode() {
    let cfg = AudioConfig {
        block_samples: 1000,
        ..AudioConfig::default()
    };
    let whole = decode_file(&fixture("media-threat-3s-44k.wav"), &AudioConfig::default()).unwrap();
    let mut stream = AudioStream::open(&fixture("media-threat-3s-44k.wav"), &cfg).unwrap();
    let mut joined = Vec::new();
    let mut blocks = 0;
    while let Some(block) = stream.next_block().unwrap() {
        assert!(block.len() <= 1000 + 4096, "block of {} samples", block.len());
        joined.extend_from_slice(block);
        blocks += 1;
    }
    assert!(blocks > 10);
    assert_eq!(joined.len(), whole.samples.len());
    assert_eq!(joined.len(), 48_000);
    let max_diff = joined
        .iter()
        .zip(&whole.samples)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-4, "block size changed the signal by {max_diff}");
}

#[test]
fn bytes_decode_like_the_file() {
    let bytes = std::fs::read(fixture("awakening-8s.mp3")).unwrap();
    let from_bytes = decode_bytes(bytes, "upload", None, &AudioConfig::default()).unwrap();
    let from_file = decode_file(&fixture("awakening-8s.mp3"), &AudioConfig::default()).unwrap();
    assert_eq!(from_bytes.samples, from_file.samples);
}

#[test]
fn duration_limit_is_enforced() {
    let cfg = AudioConfig {
        max_duration_s: Some(5.0),
        ..AudioConfig::default()
    };
    let err = decode_file(&fixture("awakening-8s.flac"), &cfg).unwrap_err();
    assert!(matches!(err, AudioError::TooLong { .. }), "{err}");
}

fn damaged(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn expect_error(path: &Path) -> AudioError {
    match decode_file(path, &AudioConfig::default()) {
        Ok(d) => panic!("{} decoded to {} s instead of failing", path.display(), d.duration_s()),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&path.display().to_string()),
                "error does not name the file: {msg}"
            );
            assert_eq!(e.name(), path.display().to_string());
            e
        }
    }
}

#[test]
fn truncated_files_are_reported_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "awakening-8s-16k.wav",
        "awakening-8s-f32.wav",
        "awakening-8s.flac",
        "awakening-8s.mp3",
        "awakening-8s.opus",
        "awakening-8s.m4a",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let cut = damaged(dir.path(), name, &bytes[..bytes.len() / 2]);
        match expect_error(&cut) {
            AudioError::Truncated { decoded_s, .. } => {
                assert!(decoded_s > 3.0 && decoded_s < 5.0, "{name}: {decoded_s}")
            }
            // MP4 keeps its index at the end: without it nothing can be decoded.
            AudioError::Corrupt { reason, .. } if name.ends_with(".m4a") => {
                assert!(reason.contains("truncated"), "{reason}")
            }
            other => panic!("{name}: {other}"),
        }
        let head = damaged(dir.path(), &format!("head-{name}"), &bytes[..60]);
        let e = expect_error(&head);
        assert!(
            matches!(
                e,
                AudioError::TruncatedHeader { .. } | AudioError::Truncated { .. } | AudioError::Corrupt { .. }
            ),
            "{name}: {e}"
        );
    }
}

#[test]
fn damaged_compressed_streams_are_corrupt_not_shifted() {
    // Random bytes over the middle third: the decoders skip the damage, which
    // would silently shift every later timestamp. It must be an error instead.
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "awakening-8s.flac",
        "awakening-8s.opus",
        "awakening-8s.mp3",
        "awakening-8s.m4a",
    ] {
        let mut bytes = std::fs::read(fixture(name)).unwrap();
        let n = bytes.len();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for b in &mut bytes[n / 3..2 * n / 3] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let p = damaged(dir.path(), name, &bytes);
        let e = expect_error(&p);
        assert!(
            matches!(e, AudioError::Corrupt { .. } | AudioError::Truncated { .. }),
            "{name}: {e}"
        );
    }
}

#[test]
fn float_wav_full_of_nan_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nan.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&p, spec).unwrap();
    for i in 0..16_000 {
        w.write_sample(if i % 10 == 0 { f32::NAN } else { 0.1 }).unwrap();
    }
    w.finalize().unwrap();
    let e = expect_error(&p);
    assert!(e.to_string().contains("not finite"), "{e}");
}

#[test]
fn non_audio_inputs_are_rejected_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let empty = damaged(dir.path(), "empty.mp3", b"");
    assert!(matches!(expect_error(&empty), AudioError::Empty { .. }));

    let text = damaged(dir.path(), "notes.mp3", b"these are my notes, not a song\n");
    assert!(matches!(expect_error(&text), AudioError::UnknownFormat { .. }));

    let mut x = 12345u32;
    let noise: Vec<u8> = (0..20_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    let random = damaged(dir.path(), "random.bin", &noise);
    let e = expect_error(&random);
    assert!(
        matches!(e, AudioError::UnknownFormat { .. } | AudioError::Corrupt { .. }),
        "{e}"
    );

    let missing = dir.path().join("missing.ogg");
    assert!(matches!(expect_error(&missing), AudioError::Io { .. }));
    assert!(matches!(expect_error(dir.path()), AudioError::Io { .. }));

    let e = decode_bytes(Vec::new(), "upload", None, &AudioConfig::default()).unwrap_err();
    assert!(matches!(e, AudioError::Empty { .. }));
}

#[test]
fn silence_detection() {
    assert!(is_silent(&[], 1e-6));
    assert!(is_silent(&[0.0; 100], 1e-6));
    assert!(is_silent(&[0.25; 100], 1e-6), "DC only counts as silent");
    assert!(!is_silent(&reference(), 1e-4));
}

/// Offsets of the Ogg pages of `bytes` (walked by their headers).
fn ogg_pages(bytes: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 27 <= bytes.len() && &bytes[at..at + 4] == b"OggS" {
        out.push(at);
        let n = bytes[at + 26] as usize;
        at += 27 + n + bytes[at + 27..at + 27 + n].iter().map(|&l| l as usize).sum::<usize>();
    }
    out
}

/// Rewrites the Ogg page checksum of the page at `at` (RFC 3533's CRC-32).
fn reseal(bytes: &mut [u8], at: usize, len: usize) {
    bytes[at + 22..at + 26].fill(0);
    let mut c = 0u32;
    for &b in &bytes[at..at + len] {
        c ^= (b as u32) << 24;
        for _ in 0..8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
        }
    }
    bytes[at + 22..at + 26].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn ogg_files_without_an_end_of_stream_page_decode_whole_and_cut_ones_say_what_is_missing() {
    // trackballs-data 1.3.4's music lacks the end-of-stream flag (ffmpeg
    // plays it whole): the same here, made from a fixture.
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("nebula-20s.ogg")).unwrap();
    let whole = decode_file(&fixture("nebula-20s.ogg"), &AudioConfig::default()).unwrap();
    let pages = ogg_pages(&bytes);
    let last = *pages.last().unwrap();
    assert_eq!(bytes[last + 5] & 4, 4, "the fixture's last page ends the stream");
    let mut unflagged = bytes.clone();
    unflagged[last + 5] &= !4;
    reseal(&mut unflagged, last, bytes.len() - last);
    let p = damaged(dir.path(), "no-eos.ogg", &unflagged);
    let got = decode_file(&p, &AudioConfig::default()).unwrap();
    assert_eq!(got.samples.len(), whole.samples.len(), "every sample of the stream");
    // Cut after a whole page: the container promised nothing more.
    let at_page = pages[pages.len() - 3];
    let p = damaged(dir.path(), "page-cut.ogg", &bytes[..at_page]);
    let got = decode_file(&p, &AudioConfig::default()).unwrap();
    assert!(
        got.duration_s() > 15.0 && got.duration_s() < whole.duration_s(),
        "{}",
        got.duration_s()
    );
    // Cut inside a page: truncated, with what the page promised.
    let inside = pages[pages.len() / 2] + 100;
    let p = damaged(dir.path(), "mid-page.ogg", &bytes[..inside]);
    match expect_error(&p) {
        e @ AudioError::Truncated {
            decoded_s,
            expected_s: Some(promised),
            ..
        } => {
            assert!(decoded_s > 5.0 && decoded_s < promised && promised < 15.0, "{e}");
            assert!(e.to_string().contains("where the file promises"), "{e}");
        }
        other => panic!("{other}"),
    }
}

/// Inputs that fuzzing or review found troublesome (`fuzz/regressions/`), and
/// every seed of the fuzz targets (`fuzz/seeds/`): each decodes or fails with
/// a typed error, never a panic. (The first two declared odd sample rates
/// whose resampler took 14 and 30 s to set up.)
#[test]
fn fuzz_seeds_and_regressions_decode_or_fail_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("regressions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for dir in std::fs::read_dir(root.join("seeds")).unwrap() {
        files.extend(
            std::fs::read_dir(dir.unwrap().path())
                .unwrap()
                .map(|e| e.unwrap().path()),
        );
    }
    assert!(files.len() >= 13, "{files:?}");
    let cfg = AudioConfig {
        max_duration_s: Some(30.0),
        ..AudioConfig::default()
    };
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let ext = f.extension().and_then(|e| e.to_str());
        let name = f.display().to_string();
        match sampleid_audio::AudioStream::from_bytes(bytes, &name, ext, &cfg) {
            Ok(mut s) => loop {
                match s.next_block() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        assert_eq!(e.name(), name);
                        break;
                    }
                }
            },
            Err(e) => assert_eq!(e.name(), name, "{e}"),
        }
    }
}

#[test]
fn a_wav_whose_riff_size_undercounts_its_chunks_decodes_whole() {
    // pingus-data's sounds/letsgo.wav: the RIFF size is 4 bytes short of its
    // data chunk. ffmpeg plays it; so must we, every sample.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("media-threat-3s-44k.wav")).unwrap();
    let whole = decode_file(&fixture("media-threat-3s-44k.wav"), &AudioConfig::default()).unwrap();
    let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
    bytes[4..8].copy_from_slice(&(riff - 4).to_le_bytes());
    let p = damaged(dir.path(), "short-riff.wav", &bytes);
    let got = decode_file(&p, &AudioConfig::default()).unwrap();
    assert_eq!(got.samples, whole.samples);
}
